// A coroutine lambda as a plain callback would never run its body.
#include <qiloop/qiloop.h>

void f(QiEventLoop& loop) {
  loop.call_soon([]() -> qi::Coro<void> { co_return; });
}
