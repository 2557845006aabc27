// A Coro object (not a function) handed to call_soon.
#include <qiloop/qiloop.h>

qi::Coro<void> work() { co_return; }

void f(QiEventLoop& loop) {
  loop.call_soon(work());
}
