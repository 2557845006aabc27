// A done callback taking another future type than the one it is added to.
#include <qiloop/qiloop.h>

void f(qi::Future<int> fut) {
  fut.add_done_callback([](qi::Future<double>) {});
}
