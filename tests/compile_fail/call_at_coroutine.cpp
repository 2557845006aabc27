#include <qiloop/qiloop.h>

void f(QiEventLoop& loop) {
  loop.call_at(loop.time(), []() -> qi::Coro<void> { co_return; });
}
