// qi::ThreadPoolExecutor on its own (the loop's side is in to_thread_test):
// the bound, FIFO starts, lazy named threads that exit when idle, shutdown.
#include <qiloop/threads/thread_pool_executor.h>
#include <qiloop/errors.h>

#include <gtest/gtest.h>

#include "threads/bounded_flags.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#if defined(__linux__)
#include <pthread.h>
#endif

using namespace std::chrono_literals;

using qi::testing_threads::Countdown;
using qi::testing_threads::eventually;
using qi::testing_threads::Flag;

namespace {

// A work that calls fn, or on_discard when the executor drops it.
struct FnWork final : qi::ExecutorWork {
  std::function<void()> fn;
  std::function<void()> on_discard;
  void run() noexcept override {
    fn();
    delete this;
  }
  void discard() noexcept override {
    if (on_discard) on_discard();
    delete this;
  }
};

void submit(qi::Executor& ex, std::function<void()> fn, std::function<void()> on_discard = {}) {
  auto* w = new FnWork;
  w->fn = std::move(fn);
  w->on_discard = std::move(on_discard);
  try {
    ex.submit(*w);
  } catch (...) {
    delete w;
    throw;
  }
}

TEST(ThreadPoolExecutor, RefusesASizeBelowOneNamingTheFix) {
  for (int n : {0, -3}) {
    try {
      qi::ThreadPoolExecutor pool(n);
      ADD_FAILURE() << "no exception for " << n;
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("at least 1"), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("default_max_workers"), std::string::npos) << e.what();
    }
  }
}

TEST(ThreadPoolExecutor, RefusesANonPositiveIdleTimeoutNamingTheFix) {
  for (auto idle : {0ms, -1ms}) {
    try {
      qi::ThreadPoolExecutor pool(1, "x", idle);
      ADD_FAILURE() << "no exception for an idle timeout of " << idle.count() << " ms";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("ThreadPoolExecutor: idle_timeout must be positive"), std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find("kDefaultIdleTimeout"), std::string::npos) << e.what();
    }
  }
}

TEST(ThreadPoolExecutor, StartsThreadsLazilyAndNamesThem) {
  qi::ThreadPoolExecutor pool(3, "qtest");
  EXPECT_EQ(pool.threads(), 0);
  Flag ran;
  std::string name;
  submit(pool, [&] {
#if defined(__linux__)
    char buf[16] = {};
    pthread_getname_np(pthread_self(), buf, sizeof buf);
    name = buf;
#else
    name = "qtest-1";
#endif
    ran.set();
  });
  ASSERT_TRUE(ran.wait());
  EXPECT_EQ(name, "qtest-1");
  EXPECT_EQ(pool.threads(), 1);  // one work needed one thread
}

TEST(ThreadPoolExecutor, RunsAtMostMaxWorkersAtOnce) {
  constexpr int kWorkers = 3;
  qi::ThreadPoolExecutor pool(kWorkers);
  std::atomic<int> active{0}, high_water{0};
  Countdown all(40);
  for (int i = 0; i < 40; ++i) {
    submit(pool, [&] {
      const int now = ++active;
      int hw = high_water.load();
      while (now > hw && !high_water.compare_exchange_weak(hw, now)) {
      }
      std::this_thread::sleep_for(2ms);
      --active;
      all.done();
    });
  }
  ASSERT_TRUE(all.wait());
  EXPECT_LE(high_water.load(), kWorkers);
  EXPECT_GE(high_water.load(), 2);  // it does run works side by side
  EXPECT_LE(pool.threads(), kWorkers);
}

TEST(ThreadPoolExecutor, StartsWorksInSubmissionOrder) {
  qi::ThreadPoolExecutor pool(1);
  Flag release, started;
  submit(pool, [&] {
    started.set();
    release.wait();
  });  // holds the thread while the rest queue up
  ASSERT_TRUE(started.wait());
  std::vector<int> order;
  Countdown all(50);
  for (int i = 0; i < 50; ++i) {
    submit(pool, [&, i] {
      order.push_back(i);  // one thread: no race
      all.done();
    });
  }
  EXPECT_EQ(pool.queued(), 50u);
  release.set();
  ASSERT_TRUE(all.wait());
  std::vector<int> expected(50);
  for (int i = 0; i < 50; ++i) expected[i] = i;
  EXPECT_EQ(order, expected);
}

TEST(ThreadPoolExecutor, CompletesTenThousandSmallWorks) {
  qi::ThreadPoolExecutor pool(4);
  std::atomic<int> sum{0};
  Countdown all(10'000);
  for (int i = 0; i < 10'000; ++i) {
    submit(pool, [&, i] {
      sum += i;
      all.done();
    });
  }
  ASSERT_TRUE(all.wait(30s));
  EXPECT_EQ(sum.load(), 10'000 * 9'999 / 2);
}

TEST(ThreadPoolExecutor, IdleThreadsExitAndComeBack) {
  qi::ThreadPoolExecutor pool(2, "idle", 20ms);
  Flag a;
  submit(pool, [&] { a.set(); });
  ASSERT_TRUE(a.wait());
  EXPECT_TRUE(eventually([&] { return pool.threads() == 0; })) << pool.threads();
  Flag b;
  submit(pool, [&] { b.set(); });
  EXPECT_TRUE(b.wait());
}

TEST(ThreadPoolExecutor, ShutdownRefusesNewWorkButRunsQueuedWork) {
  qi::ThreadPoolExecutor pool(1);
  Flag release;
  std::atomic<int> ran{0};
  submit(pool, [&] {
    release.wait();
    ++ran;
  });
  for (int i = 0; i < 5; ++i) submit(pool, [&] { ++ran; });
  pool.shutdown(false);
  try {
    submit(pool, [] {});
    ADD_FAILURE() << "submit after shutdown did not throw";
  } catch (const qi::RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("after shutdown"), std::string::npos) << e.what();
  }
  release.set();
  pool.shutdown(true);  // waits for the queued works too
  EXPECT_EQ(ran.load(), 6);
  EXPECT_EQ(pool.threads(), 0);
}

TEST(ThreadPoolExecutor, ShutdownWithCancelPendingDiscardsQueuedWork) {
  qi::ThreadPoolExecutor pool(1);
  Flag started, release;
  std::atomic<int> ran{0}, discarded{0};
  submit(pool, [&] {
    started.set();
    release.wait();
    ++ran;
  });
  ASSERT_TRUE(started.wait());
  for (int i = 0; i < 5; ++i) submit(pool, [&] { ++ran; }, [&] { ++discarded; });
  pool.shutdown(false, true);
  EXPECT_EQ(discarded.load(), 5);  // at once, by shutdown
  release.set();
  pool.shutdown(true);
  EXPECT_EQ(ran.load(), 1);  // the running one ran on
}

TEST(ThreadPoolExecutor, DestructorWaitsForRunningAndQueuedWork) {
  std::atomic<int> ran{0};
  {
    qi::ThreadPoolExecutor pool(2);
    for (int i = 0; i < 6; ++i) {
      submit(pool, [&] {
        std::this_thread::sleep_for(5ms);
        ++ran;
      });
    }
  }
  EXPECT_EQ(ran.load(), 6);
}

TEST(ThreadPoolExecutor, ShutdownFromItsOwnWorkDoesNotDeadlock) {
  auto pool = std::make_shared<qi::ThreadPoolExecutor>(2);
  Flag done;
  submit(*pool, [&] {
    pool->shutdown(true);  // waits for the other thread, not for itself
    done.set();
  });
  EXPECT_TRUE(done.wait());
  pool->shutdown(true);
}

// Two works calling shutdown(true) at once (or one racing the destructor):
// the first joined the second, which waited for the first's join_mutex — a
// deadlock. A work's shutdown no longer waits for another shutdown's join.
TEST(ThreadPoolExecutor, TwoWorksShuttingDownAtOnceDoNotDeadlock) {
  auto pool = std::make_shared<qi::ThreadPoolExecutor>(2);
  Countdown both(2), done(2);
  for (int i = 0; i < 2; ++i)
    submit(*pool, [&] {
      both.done();
      both.wait();
      pool->shutdown(true);
      done.done();
    });
  EXPECT_TRUE(done.wait(3s));
  pool->shutdown(true);
}

TEST(ThreadPoolExecutor, AWorkShuttingDownWhileTheOwnerShutsDownDoesNotDeadlock) {
  auto pool = std::make_shared<qi::ThreadPoolExecutor>(1);
  Flag started, returned;
  submit(*pool, [&] {
    started.set();
    std::this_thread::sleep_for(50ms);  // the owner's shutdown is joining this thread by now
    pool->shutdown(true);
  });
  ASSERT_TRUE(started.wait());
  std::thread owner([&] {
    pool->shutdown(true);
    returned.set();
  });
  const bool in_time = returned.wait(3s);
  EXPECT_TRUE(in_time);
  if (in_time) owner.join(); else owner.detach();
}

// The destructor run by one of the pool's own works, with works still
// queued behind it: its thread is left to go on with the queue.
TEST(ThreadPoolExecutor, DestroyedFromItsOwnWorkStillRunsTheQueuedWorks) {
  auto* pool = new qi::ThreadPoolExecutor(1);
  std::atomic<int> ran{0};
  Countdown all(4);
  Flag submitted;
  submit(*pool, [&] {
    submitted.wait();
    delete pool;  // its own thread: detached, goes on with the queue
    ++ran;
    all.done();
  });
  for (int i = 0; i < 3; ++i)
    submit(*pool, [&] {
      ++ran;
      all.done();
    });
  submitted.set();
  EXPECT_TRUE(all.wait());
  EXPECT_EQ(ran.load(), 4);
}

// An idle timeout of milliseconds::max() ("never exit") overflowed inside
// condition_variable::wait_for (signed overflow: UBSan; in practice a
// wrapped deadline). It is now capped at a century.
TEST(ThreadPoolExecutor, AHugeIdleTimeoutMeansNeverAndDoesNotOverflow) {
  qi::ThreadPoolExecutor pool(1, "huge", std::chrono::milliseconds::max());
  Flag ran;
  submit(pool, [&] { ran.set(); });
  EXPECT_TRUE(ran.wait());
  std::this_thread::sleep_for(50ms);
  EXPECT_EQ(pool.threads(), 1);  // idle, not exited
  Flag again;
  submit(pool, [&] { again.set(); });
  EXPECT_TRUE(again.wait());
}

TEST(ThreadPoolExecutor, DefaultSizeIsAsyncios) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  EXPECT_EQ(qi::ThreadPoolExecutor::default_max_workers(), std::min(32, cores + 4));
}

}  // namespace
