#include <qiloop/qiloop.h>

void f(QiEventLoop& loop) {
  qi::Future<int&> fut = loop.create_future<int&>();
  (void)fut;
}
