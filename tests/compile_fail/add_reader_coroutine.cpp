#include <qiloop/qiloop.h>

void f(QiEventLoop& loop, int fd) {
  loop.add_reader(fd, []() -> qi::Coro<void> { co_return; });
}
