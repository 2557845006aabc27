// qi::sleep without co_await does nothing: a warning (an error here).
#include <qiloop/qiloop.h>

using namespace std::chrono_literals;

qi::Coro<void> f() {
  qi::sleep(50ms);
  co_return;
}
