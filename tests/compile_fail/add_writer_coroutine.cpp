#include <qiloop/qiloop.h>

void f(QiEventLoop& loop, int fd) {
  loop.add_writer(fd, [](int) -> qi::Coro<void> { co_return; }, 1);
}
