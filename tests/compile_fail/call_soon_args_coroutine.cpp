// The same with arguments bound to the callback.
#include <qiloop/qiloop.h>

void f(QiEventLoop& loop) {
  loop.call_soon([](int) -> qi::Coro<void> { co_return; }, 1);
}
