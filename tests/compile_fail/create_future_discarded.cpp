#include <qiloop/qiloop.h>

void f(QiEventLoop& loop) { loop.create_future<int>(); }
