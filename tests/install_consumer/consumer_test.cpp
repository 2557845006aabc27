// Built against an installed qiloop::testing, with GoogleTest's own main
// (the kit makes the QCoreApplication).
#include <qiloop/testing.h>

using namespace std::chrono_literals;

QILOOP_TEST_VT(Consumer, SleepsAnHourOnVirtualTime) {
  auto& loop = qi::get_running_loop();
  const auto t0 = loop.time();
  co_await qi::sleep(1h);
  EXPECT_EQ(loop.time() - t0, 1h);
}
