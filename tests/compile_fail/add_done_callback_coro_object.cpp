// A Coro object (not a function) handed to add_done_callback.
#include <qiloop/qiloop.h>

qi::Coro<void> work() { co_return; }

void f(qi::Future<int> fut) {
  fut.add_done_callback(work());
}
