// qi::Lock and qi::LockGuard: FIFO hand-off, no barging past a woken
// waiter, cancellation (also while being woken), the guard, misuse, loop
// binding, and an uncontended acquire/release that allocates nothing.
// Orders are asyncio's (3.11 and 3.13 agree on Lock).
#include <qiloop/sync/lock.h>

#include "alloc_count.h"
#include "sync/sync_test_util.h"

#include <atomic>
#include <cstdlib>
#include <new>
#include <type_traits>

using namespace std::chrono_literals;
using sync_test::Strings;


namespace {

// Acquires, logs, holds the lock for one iteration, releases.
qi::Coro<void> worker(qi::Lock& lock, std::string name, Strings& log) {
  try {
    co_await lock.acquire();
  } catch (const qi::CancelledError&) {
    log.push_back(name + " cancelled");
    throw;
  }
  log.push_back(name);
  co_await qi::sleep(0);
  lock.release();
}

}  // namespace

QILOOP_TEST_MODES_VT(Lock, UncontendedAcquireAndReleaseNeitherSuspendNorAllocate) {
  static_assert(!std::is_same_v<decltype(std::declval<qi::Lock&>().acquire()), qi::Coro<void>>,
                "acquire() returns a hand-written awaiter, not a coroutine");
  qi::Lock lock;
  bool other_ran = false;
  auto other = qi::create_task([](bool& ran) -> qi::Coro<void> {
    ran = true;
    co_return;
  }(other_ran));
  long before = alloc_count::now();
  for (int i = 0; i < 100; ++i) {
    co_await lock.acquire();
    EXPECT_TRUE(lock.locked());
    lock.release();
    auto guard = co_await lock.scoped();
    EXPECT_TRUE(guard.owns_lock());
  }
  EXPECT_EQ(alloc_count::now() - before, 0);
  EXPECT_FALSE(other_ran);  // never suspended
  // From a cold pool: the run in the other mode left a state in it.
  qi::detail::trim_frame_pool();
  before = alloc_count::now();
  { auto f = qi::get_running_loop().create_future<void>(); }  // the counter sees a waiter's future
  EXPECT_EQ(alloc_count::now() - before, 1);
  EXPECT_FALSE(lock.locked());
  co_await other;
}

// await lock.acquire(); ts = [create_task(worker(n)) for n in "bcd"]
// await sleep(0); log.append("release"); lock.release(); await gather(*ts)
// -> ['release', 'b', 'c', 'd']
QILOOP_TEST_MODES_VT(Lock, WaitersGetTheLockInTheOrderTheyCame) {
  qi::Lock lock;
  Strings log;
  co_await lock.acquire();
  auto b = qi::create_task(worker(lock, "b", log));
  auto c = qi::create_task(worker(lock, "c", log));
  auto d = qi::create_task(worker(lock, "d", log));
  co_await qi::sleep(0);
  EXPECT_EQ(lock.waiters(), 3u);
  log.push_back("release");
  lock.release();
  co_await d;
  co_await c;
  co_await b;
  EXPECT_EQ(log, (Strings{"release", "b", "c", "d"}));
  EXPECT_FALSE(lock.locked());
}

// await lock.acquire(); b = create_task(worker("b")); await sleep(0)
// lock.release(); await lock.acquire(); log.append("body")   -> ['b', 'body']
QILOOP_TEST_MODES_VT(Lock, ANewcomerDoesNotBargePastTheWokenWaiter) {
  qi::Lock lock;
  Strings log;
  co_await lock.acquire();
  auto b = qi::create_task(worker(lock, "b", log));
  co_await qi::sleep(0);
  lock.release();
  EXPECT_FALSE(lock.locked());  // unlocked, but b's wake-up is on its way
  co_await lock.acquire();
  log.push_back("body");
  lock.release();
  co_await b;
  EXPECT_EQ(log, (Strings{"b", "body"}));
}

// Every waiter cancelled: asyncio takes the lock at once (its optimisation).
QILOOP_TEST_MODES_VT(Lock, TakesTheLockAtOncePastWaitersThatAreAllCancelled) {
  qi::Lock lock;
  Strings log;
  co_await lock.acquire();
  auto b = qi::create_task(worker(lock, "b", log));
  co_await qi::sleep(0);
  b.cancel();  // b's entry stays until b runs
  lock.release();
  EXPECT_EQ(lock.waiters(), 1u);
  bool other_ran = false;
  auto other = qi::create_task([](bool& ran) -> qi::Coro<void> {
    ran = true;
    co_return;
  }(other_ran));
  co_await lock.acquire();
  EXPECT_FALSE(other_ran);  // did not suspend
  lock.release();
  co_await other;
  co_await qi::sleep(0);
  EXPECT_TRUE(b.cancelled());
  EXPECT_EQ(log, (Strings{"b cancelled"}));
}

QILOOP_TEST_MODES_VT(Lock, AWaiterCancelledWhileWaitingLeavesWithoutTheLock) {
  qi::Lock lock;
  Strings log;
  co_await lock.acquire();
  auto b = qi::create_task(worker(lock, "b", log));
  auto c = qi::create_task(worker(lock, "c", log));
  co_await qi::sleep(0);
  b.cancel("stop");
  co_await qi::sleep(0);
  EXPECT_TRUE(b.cancelled());
  EXPECT_TRUE(lock.locked());  // still the body's
  EXPECT_EQ(lock.waiters(), 1u);
  lock.release();
  co_await c;
  EXPECT_EQ(log, (Strings{"b cancelled", "c"}));
}

// await lock.acquire(); b, c = create_task(worker("b")), create_task(worker("c"))
// await sleep(0); lock.release(); b.cancel(); await c
// -> ['b cancelled', 'c']: b passes the wake-up on to c
QILOOP_TEST_MODES_VT(Lock, AWaiterCancelledWhileBeingWokenPassesTheLockOn) {
  qi::Lock lock;
  Strings log;
  co_await lock.acquire();
  auto b = qi::create_task(worker(lock, "b", log));
  auto c = qi::create_task(worker(lock, "c", log));
  co_await qi::sleep(0);
  lock.release();
  b.cancel();
  co_await c;
  co_await qi::sleep(0);
  EXPECT_TRUE(b.cancelled());
  EXPECT_FALSE(lock.locked());
  EXPECT_EQ(log, (Strings{"b cancelled", "c"}));
}

QILOOP_TEST_MODES_VT(Lock, ReleasingAnUnlockedLockThrows) {
  qi::Lock lock;
  try {
    lock.release();
    ADD_FAILURE() << "no error";
  } catch (const qi::RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("not acquired"), std::string::npos) << e.what();
  }
  co_return;
}

QILOOP_TEST_MODES_VT(Lock, TheGuardReleasesAtTheEndOfItsScopeAndOnAnException) {
  qi::Lock lock;
  {
    auto guard = co_await lock.scoped();
    EXPECT_TRUE(lock.locked());
    EXPECT_TRUE(guard);
    EXPECT_EQ(guard.lock(), &lock);
  }
  EXPECT_FALSE(lock.locked());
  try {
    auto guard = co_await lock.scoped();
    throw std::runtime_error("boom");
  } catch (const std::runtime_error&) {
  }
  EXPECT_FALSE(lock.locked());
}

QILOOP_TEST_MODES_VT(Lock, TheGuardMovesAndReleasesEarlyOnce) {
  qi::Lock lock;
  qi::LockGuard outer;
  EXPECT_FALSE(outer.owns_lock());
  {
    auto guard = co_await lock.scoped();
    outer = std::move(guard);
    EXPECT_FALSE(guard.owns_lock());
  }
  EXPECT_TRUE(lock.locked());  // outer holds it
  qi::LockGuard moved(std::move(outer));
  EXPECT_TRUE(moved.owns_lock());
  moved.release();
  EXPECT_FALSE(lock.locked());
  EXPECT_FALSE(moved.owns_lock());
  EXPECT_THROW(moved.release(), qi::RuntimeError);
  // A lock released behind the guard's back is not released twice.
  {
    auto guard = co_await lock.scoped();
    lock.release();
  }
  EXPECT_FALSE(lock.locked());
  // Adopting a lock acquired by hand.
  co_await lock.acquire();
  { qi::LockGuard adopted(lock, std::adopt_lock); }
  EXPECT_FALSE(lock.locked());
}

QILOOP_TEST_MODES_VT(Lock, ScopedWaitsItsTurnAndACancelledOneHoldsNothing) {
  qi::Lock lock;
  Strings log;
  auto held = co_await lock.scoped();
  auto scoped_waiter = [](qi::Lock& lock, std::string name, Strings& log) -> qi::Coro<void> {
    try {
      auto guard = co_await lock.scoped();
      log.push_back(name);
    } catch (const qi::CancelledError&) {
      log.push_back(name + " cancelled");
      throw;
    }
  };
  auto b = qi::create_task(scoped_waiter(lock, "b", log));
  auto c = qi::create_task(scoped_waiter(lock, "c", log));
  co_await qi::sleep(0);
  b.cancel();
  co_await qi::sleep(0);
  EXPECT_TRUE(lock.locked());
  held.release();
  co_await c;
  EXPECT_TRUE(b.cancelled());
  EXPECT_FALSE(lock.locked());
  EXPECT_EQ(log, (Strings{"b cancelled", "c"}));
}

// A task that acquires a lock it holds waits for itself until cancelled.
QILOOP_TEST_MODES_VT(Lock, IsNotRecursive) {
  qi::Lock lock;
  auto t = qi::create_task([](qi::Lock& lock) -> qi::Coro<void> {
    co_await lock.acquire();
    co_await lock.acquire();
  }(lock));
  co_await qi::sleep(1h);
  EXPECT_FALSE(t.done());
  t.cancel();
  co_await qi::sleep(0);
  EXPECT_TRUE(t.cancelled());
  EXPECT_TRUE(lock.locked());
}

TEST(Lock, IsBoundToTheFirstLoopThatWaitsOnIt) {
  qi::Lock lock;  // no loop runs yet
  sync_test::expect_bound_to_first_loop(
      "qi::Lock",
      [&]() -> qi::Coro<void> {
        if (!lock.locked()) co_await lock.acquire();
        co_await lock.acquire();  // blocks: held
      },
      [&]() -> qi::Coro<void> {
        lock.release();  // the waiter takes it, and keeps it
        co_return;
      });
}


// A lock destroyed while a task waits on it (user error): when that task is
// cancelled later (qi::run cancels the tasks left over), its acquire() ends
// with a qi::RuntimeError naming the lock, and the lock's bookkeeping is not
// done on freed memory (ASan saw a use after free there).
QILOOP_TEST_MODES_VT(Lock, AWaiterCancelledAfterTheLockWasDestroyedDoesNotTouchIt) {
  auto lock = std::make_unique<qi::Lock>();
  co_await lock->acquire();
  auto t = qi::create_task([](qi::Lock& l) -> qi::Coro<void> { co_await l.acquire(); }(*lock));
  co_await qi::sleep(0);
  lock.reset();
  co_await sync_test::expect_orphaned_waiter_fails(std::move(t), "qi::Lock");
}
