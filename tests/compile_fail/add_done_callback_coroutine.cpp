#include <qiloop/qiloop.h>

void f(qi::Future<int> fut) {
  fut.add_done_callback([](qi::Future<int>) -> qi::Coro<void> { co_return; });
}
