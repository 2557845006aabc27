#include <qiloop/structured/task_group.h>
#include <qiloop/testing.h>
QILOOP_TEST_MODES_VT(TaskGroup, Smoke) {
  qi::TaskGroup g;
  auto t = g.create_task([]() -> qi::Coro<int> { co_return 1; }());
  co_await g.wait();
  EXPECT_EQ(t.result(), 1);
}
