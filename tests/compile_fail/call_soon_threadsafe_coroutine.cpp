#include <qiloop/qiloop.h>

void f(QiEventLoop& loop) {
  loop.call_soon_threadsafe([]() -> qi::Coro<void> { co_return; });
}
