// qi::LoopThread: a worker QThread running its own QiEventLoop, started by
// the constructor and shut down (leftovers cancelled and finished) by the
// destructor. Label `thread`.
#include <qiloop/qiloop.h>

#include <gtest/gtest.h>

#include <QtCore/QThread>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <thread>

using namespace std::chrono_literals;

// Qt is not built for ThreadSanitizer: ~QThread (qi::LoopThread's) destroys
// a wait condition the finished thread signalled under Qt's own mutex,
// which TSan cannot see (tests/threadsafe_test.cpp's retire() has the same
// reason). That one Qt frame is suppressed here.
#if defined(__SANITIZE_THREAD__)
extern "C" const char* __tsan_default_suppressions() { return "race:QWaitCondition::~QWaitCondition\n"; }
#endif

TEST(LoopThread, ItsLoopRunsOnItsOwnThread) {
  qi::LoopThread worker("worker");
  EXPECT_EQ(worker.thread()->objectName(), QString("worker"));
  EXPECT_EQ(worker.loop().thread(), worker.thread());
  std::promise<std::pair<std::thread::id, bool>> seen;
  worker.loop().call_soon_threadsafe([&seen, &worker] {
    seen.set_value({std::this_thread::get_id(), qi::running_loop() == &worker.loop()});
  });
  auto [id, running] = seen.get_future().get();
  EXPECT_NE(id, std::this_thread::get_id());
  EXPECT_TRUE(running);
}

// The destructor shuts the loop down as qi::run does: a task still pending
// is cancelled and its clean-up (which awaits) runs to the end.
TEST(LoopThread, TheDestructorCancelsWhatStillRunsAndLetsItCleanUp) {
  auto cleaned = std::make_shared<std::atomic<bool>>(false);
  qi::ConcurrentFuture<void> cf;
  {
    qi::LoopThread worker;
    cf = qi::run_coroutine_threadsafe(
        [](std::shared_ptr<std::atomic<bool>> cleaned) -> qi::Coro<void> {
          bool cancelled = false;
          try {
            co_await qi::sleep(1h);
          } catch (const qi::CancelledError&) {
            cancelled = true;
          }
          if (cancelled) {
            co_await qi::sleep(1ms);  // clean-up that awaits
            *cleaned = true;
            throw qi::CancelledError();
          }
        }(cleaned),
        worker.loop());
    // Sent after cf: once it ran, cf's task made its first step (FIFO).
    qi::run_coroutine_threadsafe([]() -> qi::Coro<void> { co_return; }(), worker.loop()).result(5s);
  }
  EXPECT_TRUE(cleaned->load());
  EXPECT_TRUE(cf.cancelled());
}

// A coroutine whose task had not made its first step when the worker shut
// down never runs, and its future ends cancelled (not failed).
TEST(LoopThread, WorkPendingAtShutdownEndsCancelledWhetherItStartedOrNot) {
  for (int round = 0; round < 20; ++round) {
    std::atomic<bool> ran{false};
    qi::ConcurrentFuture<void> cf;
    {
      qi::LoopThread worker;
      cf = qi::run_coroutine_threadsafe(
          [](std::atomic<bool>& ran) -> qi::Coro<void> {
            ran = true;
            co_await qi::sleep(1h);
          }(ran),
          worker.loop());
    }
    ASSERT_TRUE(cf.done());
    EXPECT_TRUE(cf.cancelled()) << "round " << round;
  }
}

// Only stop() ends the worker: a loop.stop() from inside ends one run.
TEST(LoopThread, ALoopStopFromInsideDoesNotEndTheWorker) {
  qi::LoopThread worker;
  auto first = qi::run_coroutine_threadsafe(
      []() -> qi::Coro<int> {
        qi::get_running_loop().stop();
        co_return 1;
      }(),
      worker.loop());
  EXPECT_EQ(first.result(5s), 1);
  auto second = qi::run_coroutine_threadsafe(
      []() -> qi::Coro<int> {
        co_await qi::sleep(1ms);
        co_return 2;
      }(),
      worker.loop());
  EXPECT_EQ(second.result(5s), 2);
}

TEST(LoopThread, StopIsIdempotent) {
  qi::LoopThread worker;
  worker.stop();
  worker.stop();
  EXPECT_FALSE(worker.thread());
}

TEST(LoopThread, StopFromTheWorkersOwnThreadThrows) {
  qi::LoopThread worker;
  auto cf = qi::run_coroutine_threadsafe(
      [](qi::LoopThread& w) -> qi::Coro<bool> {
        try {
          w.stop();
        } catch (const qi::RuntimeError&) {
          co_return true;
        }
        co_return false;
      }(worker),
      worker.loop());
  EXPECT_TRUE(cf.result(5s));
}
