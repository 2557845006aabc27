#include <qiloop/qiloop.h>

#include <csignal>

void f(QiEventLoop& loop) {
  loop.add_signal_handler(SIGUSR1, []() -> qi::Coro<void> { co_return; });
}
