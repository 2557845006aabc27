// The waiter FIFO every primitive is built on: wake order, removal of
// cancelled waiters, a cancellation right after a wake-up, loop binding.
#include <qiloop/detail/waiter_queue.h>
#include <qiloop/testing.h>

#include <optional>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using qi::detail::WaiterQueue;
using Strings = std::vector<std::string>;

namespace {

// Waits once; logs "name woken", or "name cancelled (woken=…)".
qi::Coro<void> waiter(WaiterQueue& q, std::string name, Strings& log) {
  WaiterQueue::Entry w(q, "test queue");
  try {
    co_await w;
    log.push_back(name + " woken");
  } catch (const qi::CancelledError&) {
    log.push_back(name + " cancelled (woken=" + std::to_string(w.woken()) + ")");
    throw;
  }
}

}  // namespace

QILOOP_TEST_MODES_VT(WaiterQueue, WakesInFifoOrderAndUnlinksWhenResumed) {
  WaiterQueue q;
  Strings log;
  auto a = qi::create_task(waiter(q, "a", log));
  auto b = qi::create_task(waiter(q, "b", log));
  auto c = qi::create_task(waiter(q, "c", log));
  co_await qi::sleep(0);
  EXPECT_EQ(q.size(), 3u);
  EXPECT_TRUE(q.wake_next());
  EXPECT_FALSE(q.wake_first());  // the first is woken already: its wake-up is on its way
  EXPECT_EQ(q.size(), 3u);       // and it stays linked until it runs
  EXPECT_TRUE(q.wake_next());
  co_await qi::sleep(0);
  EXPECT_EQ(q.size(), 1u);
  EXPECT_EQ(q.wake_all(), 1u);
  co_await c;
  co_await a;
  co_await b;
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(log, (Strings{"a woken", "b woken", "c woken"}));
}

QILOOP_TEST_MODES_VT(WaiterQueue, ACancelledWaiterLeavesTheQueue) {
  WaiterQueue q;
  Strings log;
  auto a = qi::create_task(waiter(q, "a", log));
  auto b = qi::create_task(waiter(q, "b", log));
  co_await qi::sleep(0);
  a.cancel();
  co_await qi::sleep(0);
  EXPECT_EQ(q.size(), 1u);
  EXPECT_FALSE(q.all_cancelled());
  EXPECT_TRUE(q.wake_first());  // b is first now
  co_await b;
  EXPECT_TRUE(a.cancelled());
  EXPECT_EQ(log, (Strings{"a cancelled (woken=0)", "b woken"}));
}

QILOOP_TEST_MODES_VT(WaiterQueue, ACancelRightAfterTheWakeUpIsDeliveredAndSaysItWasWoken) {
  WaiterQueue q;
  Strings log;
  auto a = qi::create_task(waiter(q, "a", log));
  co_await qi::sleep(0);
  EXPECT_TRUE(q.wake_first());
  a.cancel();  // the wake-up is on its way: the cancel lands at the resumption
  co_await qi::sleep(0);
  EXPECT_TRUE(a.cancelled());
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(log, (Strings{"a cancelled (woken=1)"}));
}

QILOOP_TEST_MODES_VT(WaiterQueue, CancelAllCancelsEveryPendingWaiter) {
  WaiterQueue q;
  Strings log;
  auto a = qi::create_task(waiter(q, "a", log));
  auto b = qi::create_task(waiter(q, "b", log));
  co_await qi::sleep(0);
  EXPECT_TRUE(q.wake_first());
  EXPECT_EQ(q.cancel_all(), 1u);
  co_await qi::sleep(0);
  EXPECT_TRUE(a.done() && !a.cancelled());
  EXPECT_TRUE(b.cancelled());
  EXPECT_EQ(log, (Strings{"a woken", "b cancelled (woken=0)"}));
}

// The binding outlives the loop: a second loop made where the first one
// was (the same storage, as a loop on the stack of successive qi::run calls
// often is) is refused as any other loop is, not taken for the first.
TEST(WaiterQueue, ALoopMadeWhereTheBoundOneWasIsRefusedAsAnother) {
  WaiterQueue q;
  std::optional<QiEventLoop> loop;
  loop.emplace().run_until_complete([](WaiterQueue& q) -> qi::Coro<void> {
    WaiterQueue::Entry w(q, "qi::Thing");
    w.wake();
    co_await w;
  }(q));
  const QiEventLoop* first = &*loop;
  loop.reset();
  ASSERT_EQ(&loop.emplace(), first);
  bool waited = false;
  try {
    loop->run_until_complete([](WaiterQueue& q, bool& waited) -> qi::Coro<void> {
      WaiterQueue::Entry w(q, "qi::Thing");
      w.wake();
      co_await w;
      waited = true;
    }(q, waited));
    ADD_FAILURE() << "no error";
  } catch (const qi::RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("qi::Thing is bound to another event loop (the one that first waited on it, "
                                         "since destroyed)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(waited);
  EXPECT_TRUE(q.empty());
}

TEST(WaiterQueue, IsBoundToTheFirstLoopThatWaitsAndRefusesAnother) {
  WaiterQueue q;
  {
    QiEventLoop first;
    first.run_until_complete([](WaiterQueue& q) -> qi::Coro<void> {
      WaiterQueue::Entry w(q, "qi::Thing");
      w.wake();
      co_await w;
    }(q));
  }
  QiEventLoop second;
  try {
    second.run_until_complete([](WaiterQueue& q) -> qi::Coro<void> {
      WaiterQueue::Entry w(q, "qi::Thing");
      co_await w;
    }(q));
    ADD_FAILURE() << "no error";
  } catch (const qi::RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("qi::Thing is bound to another event loop"), std::string::npos) << e.what();
  }
  try {
    WaiterQueue::Entry w(q, "qi::Thing");  // no loop runs
    ADD_FAILURE() << "no error";
  } catch (const qi::RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("qi::Thing: no event loop runs on this thread"), std::string::npos)
        << e.what();
  }
}
