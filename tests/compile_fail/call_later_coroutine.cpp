#include <qiloop/qiloop.h>

using namespace std::chrono_literals;

void f(QiEventLoop& loop) {
  loop.call_later(10ms, []() -> qi::Coro<int> { co_return 1; });
}
