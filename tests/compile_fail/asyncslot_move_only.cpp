// Each call's task owns a copy of the callable: it must be copyable.
#include <qiloop/qiloop.h>

#include <memory>

void f() {
  auto slot = qi::asyncslot([p = std::make_unique<int>(1)]() -> qi::Coro<void> { co_return; });
  (void)slot;
}
