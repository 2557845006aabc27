// qi::Semaphore and qi::BoundedSemaphore (asyncio 3.13): FIFO, the value
// handed to a woken waiter, no lost wake-ups on cancellation, over-release,
// loop binding. The orders below follow 3.13's locks.py (3.11's Semaphore
// differs: it decrements in the woken task, and can lose a wake-up).
#include <qiloop/sync/semaphore.h>

#include "sync/sync_test_util.h"

#include <gmock/gmock.h>

#include <limits>

using namespace std::chrono_literals;
using sync_test::Strings;

namespace {

// Acquires, logs, holds it for one iteration, releases.
qi::Coro<void> worker(qi::Semaphore& sem, std::string name, Strings& log) {
  try {
    co_await sem.acquire();
  } catch (const qi::CancelledError&) {
    log.push_back(name + " cancelled");
    throw;
  }
  log.push_back(name);
  co_await qi::sleep(0);
  sem.release();
}

}  // namespace

TEST(Semaphore, ANegativeInitialValueIsRefused) {
  EXPECT_THROW(qi::Semaphore(-1), qi::ValueError);
  EXPECT_THROW(qi::BoundedSemaphore(-1), qi::ValueError);
  EXPECT_NO_THROW(qi::Semaphore(0));
}

// A plain Semaphore released past long long's range is refused with its own
// message (it named BoundedSemaphore, which the user never made).
TEST(Semaphore, AReleaseThatWouldOverflowIsRefusedNamingSemaphore) {
  qi::Semaphore s(std::numeric_limits<long long>::max());
  try {
    s.release();
    ADD_FAILURE() << "release() past the range was accepted";
  } catch (const qi::ValueError& e) {
    EXPECT_THAT(e.what(), ::testing::HasSubstr("qi::Semaphore::release()"));
    EXPECT_THAT(e.what(), ::testing::Not(::testing::HasSubstr("Bounded")));
  }
  EXPECT_FALSE(s.locked());
}

QILOOP_TEST_MODES_VT(Semaphore, AcquiresWithoutSuspendingWhileTheValueAllows) {
  qi::Semaphore sem(2);
  bool other_ran = false;
  auto other = qi::create_task([](bool& ran) -> qi::Coro<void> {
    ran = true;
    co_return;
  }(other_ran));
  co_await sem.acquire();
  EXPECT_FALSE(sem.locked());
  co_await sem.acquire();
  EXPECT_TRUE(sem.locked());
  EXPECT_EQ(sem.value(), 0);
  EXPECT_FALSE(other_ran);
  sem.release();
  sem.release();
  EXPECT_EQ(sem.value(), 2);
  co_await other;
}

// sem = Semaphore(2); ts = [create_task(worker(n)) for n in "abcde"]; gather
// -> ['a', 'b', 'c', 'd', 'e'], at most two inside at a time
QILOOP_TEST_MODES_VT(Semaphore, LetsValueTasksInAtATimeInTheOrderTheyCame) {
  qi::Semaphore sem(2);
  Strings log;
  std::vector<qi::Task<void>> ts;
  for (const char* n : {"a", "b", "c", "d", "e"}) ts.push_back(qi::create_task(worker(sem, n, log)));
  co_await qi::sleep(0);
  EXPECT_EQ(log, (Strings{"a", "b"}));
  EXPECT_EQ(sem.waiters(), 3u);
  for (auto& t : ts) co_await t;
  EXPECT_EQ(log, (Strings{"a", "b", "c", "d", "e"}));
  EXPECT_EQ(sem.value(), 2);
}

// release() hands the one to the first waiter at once: the value stays 0
// and a newcomer queues behind it.
QILOOP_TEST_MODES_VT(Semaphore, ReleaseHandsTheValueToTheFirstWaiterSoANewcomerQueues) {
  qi::Semaphore sem(0);
  Strings log;
  auto b = qi::create_task(worker(sem, "b", log));
  co_await qi::sleep(0);
  sem.release();
  EXPECT_EQ(sem.value(), 0);
  EXPECT_TRUE(sem.locked());
  auto c = qi::create_task(worker(sem, "c", log));
  co_await b;
  co_await c;
  EXPECT_EQ(log, (Strings{"b", "c"}));
  EXPECT_EQ(sem.value(), 1);
}

// sem = Semaphore(0); b = create_task(worker("b")); await sleep(0)
// sem.release(); sem.release()  # b woken (value 0), then value 1, nobody to wake
// sem.locked() -> True: b (woken, not run yet) goes first, so
// await sem.acquire(); log.append("body")  # queues; b takes its one, wakes us
// -> ['b', 'body']
QILOOP_TEST_MODES_VT(Semaphore, AWokenWaiterLetsInTheNewcomersTheValueAllows) {
  qi::Semaphore sem(0);
  Strings log;
  auto b = qi::create_task(worker(sem, "b", log));
  co_await qi::sleep(0);
  sem.release();
  sem.release();
  EXPECT_EQ(sem.value(), 1);
  EXPECT_TRUE(sem.locked());  // FIFO: b has not run yet
  co_await sem.acquire();     // suspends: woken by b, with the one left
  log.push_back("body");
  EXPECT_EQ(sem.value(), 0);
  sem.release();
  co_await b;
  EXPECT_EQ(log, (Strings{"b", "body"}));
  EXPECT_EQ(sem.value(), 2);
}

QILOOP_TEST_MODES_VT(Semaphore, AWaiterCancelledWhileWaitingTakesNothing) {
  qi::Semaphore sem(0);
  Strings log;
  auto b = qi::create_task(worker(sem, "b", log));
  auto c = qi::create_task(worker(sem, "c", log));
  co_await qi::sleep(0);
  b.cancel();
  co_await qi::sleep(0);
  EXPECT_TRUE(b.cancelled());
  EXPECT_EQ(sem.value(), 0);
  EXPECT_EQ(sem.waiters(), 1u);
  sem.release();
  co_await c;
  EXPECT_EQ(log, (Strings{"b cancelled", "c"}));
  EXPECT_EQ(sem.value(), 1);
}

// 3.13 (gh-90155): sem = Semaphore(0); b, c wait; sem.release(); b.cancel()
// b gives the one back (value 1) and wakes c.   -> ['b cancelled', 'c']
QILOOP_TEST_MODES_VT(Semaphore, AWaiterCancelledWhileBeingWokenPassesTheValueOn) {
  qi::Semaphore sem(0);
  Strings log;
  auto b = qi::create_task(worker(sem, "b", log));
  auto c = qi::create_task(worker(sem, "c", log));
  co_await qi::sleep(0);
  sem.release();
  b.cancel();
  co_await c;
  co_await qi::sleep(0);
  EXPECT_TRUE(b.cancelled());
  EXPECT_EQ(log, (Strings{"b cancelled", "c"}));
  EXPECT_EQ(sem.value(), 1);
}

// Two releases to two waiters, both cancelled as they are woken: both ones
// reach the third and fourth waiters.
QILOOP_TEST_MODES_VT(Semaphore, NoWakeUpIsLostWhenSeveralWokenWaitersAreCancelled) {
  qi::Semaphore sem(0);
  Strings log;
  std::vector<qi::Task<void>> ts;
  for (const char* n : {"a", "b", "c", "d"}) ts.push_back(qi::create_task(worker(sem, n, log)));
  co_await qi::sleep(0);
  sem.release();
  sem.release();
  ts[0].cancel();
  ts[1].cancel();
  co_await ts[2];
  co_await ts[3];
  co_await qi::sleep(0);
  EXPECT_EQ(log, (Strings{"a cancelled", "b cancelled", "c", "d"}));
  EXPECT_EQ(sem.value(), 2);
}

QILOOP_TEST_MODES_VT(Semaphore, ABoundedSemaphoreRefusesAReleaseAboveItsInitialValue) {
  qi::BoundedSemaphore sem(1);
  try {
    sem.release();
    ADD_FAILURE() << "no error";
  } catch (const qi::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("released too many times"), std::string::npos) << e.what();
  }
  EXPECT_EQ(sem.value(), 1);
  qi::Semaphore& plain = sem;  // the bound holds through the base too
  EXPECT_THROW(plain.release(), qi::ValueError);
  co_await sem.acquire();
  sem.release();
  EXPECT_EQ(sem.value(), 1);
  qi::Semaphore unbounded(1);
  unbounded.release();
  EXPECT_EQ(unbounded.value(), 2);
}

TEST(Semaphore, IsBoundToTheFirstLoopThatWaitsOnIt) {
  qi::Semaphore sem(0);  // no loop runs yet
  sync_test::expect_bound_to_first_loop(
      "qi::Semaphore", [&]() -> qi::Coro<void> { co_await sem.acquire(); },
      [&]() -> qi::Coro<void> {
        sem.release();
        co_return;
      });
}

// As Lock's: a waiter cancelled after its semaphore was destroyed does not
// give the value back to freed memory.
QILOOP_TEST_MODES_VT(Semaphore, AWaiterCancelledAfterTheSemaphoreWasDestroyedDoesNotTouchIt) {
  auto sem = std::make_unique<qi::Semaphore>(0);
  auto t = qi::create_task([](qi::Semaphore& s) -> qi::Coro<void> { co_await s.acquire(); }(*sem));
  co_await qi::sleep(0);
  sem.reset();
  co_await sync_test::expect_orphaned_waiter_fails(std::move(t), "qi::Semaphore");
}
