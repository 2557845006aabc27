// qi::Condition (asyncio 3.13): notify order, the lock held around wait(),
// re-acquiring it when cancelled, a notify passed on by a cancelled waiter,
// a shared lock, misuse, loop binding.
#include <qiloop/sync/condition.h>

#include "sync/sync_test_util.h"

using namespace std::chrono_literals;
using sync_test::Strings;

namespace {

// async with cond: await cond.wait(); log.append(name)
// Logs "name cancelled: message (lock held: 1)" when cancelled.
qi::Coro<void> waiter(qi::Condition& cond, std::string name, Strings& log) {
  auto guard = co_await cond.scoped();
  try {
    co_await cond.wait();
  } catch (const qi::CancelledError& e) {
    log.push_back(name + " cancelled: " + e.what() + " (lock held: " + std::to_string(cond.locked()) + ")");
    throw;
  }
  EXPECT_TRUE(cond.locked());
  log.push_back(name);
}

}  // namespace

QILOOP_TEST_MODES_VT(Condition, WaitAndNotifyWithoutTheLockThrow) {
  qi::Condition cond;
  for (bool all : {false, true}) {
    try {
      all ? cond.notify_all() : cond.notify();
      ADD_FAILURE() << "no error";
    } catch (const qi::RuntimeError& e) {
      EXPECT_NE(std::string(e.what()).find("cannot notify on an un-acquired lock"), std::string::npos) << e.what();
    }
  }
  try {
    co_await cond.wait();
    ADD_FAILURE() << "no error";
  } catch (const qi::RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("un-acquired lock"), std::string::npos) << e.what();
  }
  // asyncio's wait_for checks the predicate first: a true one needs no lock.
  EXPECT_EQ(co_await cond.wait_for([] { return 7; }), 7);
  EXPECT_FALSE(cond.locked());
}

// cond = Condition(); ts = [create_task(waiter(n)) for n in "abc"]; await sleep(0)
// async with cond: cond.notify(2); log.append("notify 2")
// for _ in range(5): await sleep(0)
// async with cond: cond.notify_all(); log.append("notify all")
// await gather(*ts)   -> ['notify 2', 'a', 'b', 'notify all', 'c']
QILOOP_TEST_MODES_VT(Condition, NotifyWakesTheFirstWaitersAndEachReturnsHoldingTheLock) {
  qi::Condition cond;
  Strings log;
  auto a = qi::create_task(waiter(cond, "a", log));
  auto b = qi::create_task(waiter(cond, "b", log));
  auto c = qi::create_task(waiter(cond, "c", log));
  co_await qi::sleep(0);
  EXPECT_EQ(cond.waiters(), 3u);
  EXPECT_FALSE(cond.locked());  // every waiter released it
  {
    auto guard = co_await cond.scoped();
    cond.notify(2);
    log.push_back("notify 2");
  }
  for (int i = 0; i < 5; ++i) co_await qi::sleep(0);
  EXPECT_EQ(cond.waiters(), 1u);
  {
    auto guard = co_await cond.scoped();
    cond.notify_all();
    log.push_back("notify all");
  }
  co_await a;
  co_await b;
  co_await c;
  EXPECT_EQ(log, (Strings{"notify 2", "a", "b", "notify all", "c"}));
}

// A notified waiter returns only once it has the lock: the notifier keeps it
// for an hour.
QILOOP_TEST_MODES_VT(Condition, ANotifiedWaiterWaitsForTheLock) {
  qi::Condition cond;
  Strings log;
  auto a = qi::create_task(waiter(cond, "a", log));
  co_await qi::sleep(0);
  co_await cond.acquire();
  cond.notify();
  co_await qi::sleep(1h);
  EXPECT_TRUE(log.empty());
  cond.release();
  co_await a;
  EXPECT_EQ(log, (Strings{"a"}));
}

QILOOP_TEST_MODES_VT(Condition, WaitForReturnsThePredicatesValueAfterSpuriousWakeUps) {
  qi::Condition cond;
  int items = 0;
  int wakes = 0;
  auto consumer = qi::create_task([](qi::Condition& cond, int& items, int& wakes) -> qi::Coro<int> {
    auto guard = co_await cond.scoped();
    int got = co_await cond.wait_for([&] {
      ++wakes;
      return items >= 2 ? items : 0;
    });
    EXPECT_TRUE(cond.locked());
    co_return got;
  }(cond, items, wakes));
  for (int i = 0; i < 2; ++i) {
    co_await qi::sleep(1s);
    auto guard = co_await cond.scoped();
    ++items;
    cond.notify_all();
  }
  EXPECT_EQ(co_await consumer, 2);
  EXPECT_EQ(wakes, 3);  // at the start, after each notify
}

// A waiter cancelled while it waits takes the lock back before it throws:
// here it waits an hour for it.
QILOOP_TEST_MODES_VT(Condition, ACancelledWaitReacquiresTheLockBeforeItThrows) {
  qi::Condition cond;
  Strings log;
  auto a = qi::create_task(waiter(cond, "a", log));
  co_await qi::sleep(0);
  co_await cond.acquire();
  a.cancel("stop");
  co_await qi::sleep(1h);
  EXPECT_FALSE(a.done());
  EXPECT_TRUE(log.empty());
  cond.release();
  co_await qi::sleep(0);
  co_await qi::sleep(0);
  EXPECT_TRUE(a.cancelled());
  EXPECT_EQ(log, (Strings{"a cancelled: stop (lock held: 1)"}));
  EXPECT_FALSE(cond.locked());  // a's guard released it
}

// Cancelled again while it takes the lock back: it keeps trying, and
// throws the latest CancelledError once it has the lock.
QILOOP_TEST_MODES_VT(Condition, CancelsWhileReacquiringAreAbsorbedUntilItHasTheLock) {
  qi::Condition cond;
  Strings log;
  auto a = qi::create_task(waiter(cond, "a", log));
  co_await qi::sleep(0);
  co_await cond.acquire();
  cond.notify();
  co_await qi::sleep(0);  // a is woken and queues for the lock
  a.cancel("first");
  co_await qi::sleep(0);
  a.cancel("second");
  co_await qi::sleep(1h);
  EXPECT_FALSE(a.done());
  cond.release();
  co_await qi::sleep(0);
  co_await qi::sleep(0);
  EXPECT_TRUE(a.cancelled());
  EXPECT_EQ(log, (Strings{"a cancelled: second (lock held: 1)"}));
}

// 3.13 (gh-112202): a, b wait; async with cond: cond.notify(1); a.cancel()
// a re-acquires, then passes the notify on to b.   -> ['a cancelled...', 'b']
// (3.11 loses it: b waits forever.)
QILOOP_TEST_MODES_VT(Condition, AWaiterCancelledAfterItsNotifyPassesItOn) {
  qi::Condition cond;
  Strings log;
  auto a = qi::create_task(waiter(cond, "a", log));
  auto b = qi::create_task(waiter(cond, "b", log));
  co_await qi::sleep(0);
  {
    auto guard = co_await cond.scoped();
    cond.notify(1);
    a.cancel("stop");
  }
  co_await b;
  co_await qi::sleep(0);
  EXPECT_TRUE(a.cancelled());
  EXPECT_EQ(log, (Strings{"a cancelled: stop (lock held: 1)", "b"}));
  EXPECT_EQ(cond.waiters(), 0u);
}

QILOOP_TEST_MODES_VT(Condition, ConditionsMayShareALockPassedByReference) {
  qi::Lock lock;
  qi::Condition first(lock);
  qi::Condition second(lock);
  EXPECT_EQ(&first.lock(), &lock);
  Strings log;
  auto a = qi::create_task(waiter(first, "a", log));
  auto b = qi::create_task(waiter(second, "b", log));
  co_await qi::sleep(0);
  EXPECT_FALSE(lock.locked());
  {
    auto guard = co_await lock.scoped();
    EXPECT_TRUE(first.locked() && second.locked());
    second.notify();  // only b
  }
  co_await b;
  co_await qi::sleep(1h);
  EXPECT_FALSE(a.done());
  {
    auto guard = co_await first.scoped();
    first.notify();
  }
  co_await a;
  EXPECT_EQ(log, (Strings{"b", "a"}));
}

TEST(Condition, IsBoundToTheFirstLoopThatWaitsOnIt) {
  qi::Condition cond;  // no loop runs yet
  sync_test::expect_bound_to_first_loop(
      "qi::Condition",
      [&]() -> qi::Coro<void> {
        auto guard = co_await cond.scoped();
        co_await cond.wait();
      },
      [&]() -> qi::Coro<void> {
        auto guard = co_await cond.scoped();
        cond.notify();
      });
  EXPECT_FALSE(cond.locked());  // the refused wait left the lock as it found it
}

// As Lock's: a waiter cancelled after its condition (and the lock it owns)
// was destroyed does not re-acquire the freed lock.
QILOOP_TEST_MODES_VT(Condition, AWaiterCancelledAfterTheConditionWasDestroyedDoesNotTouchIt) {
  auto cond = std::make_unique<qi::Condition>();
  auto t = qi::create_task([](qi::Condition& c) -> qi::Coro<void> {
    co_await c.acquire();
    co_await c.wait();
  }(*cond));
  co_await qi::sleep(0);
  cond.reset();
  co_await sync_test::expect_orphaned_waiter_fails(std::move(t), "qi::Condition");
}
