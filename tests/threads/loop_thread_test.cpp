// qi::LoopThread: a worker QThread running its own QiEventLoop, started by
// the constructor and shut down (leftovers cancelled and finished) by the
// destructor. Label `thread`.
#include <qiloop/qiloop.h>

#include <gtest/gtest.h>

#include <QtCore/QEventLoop>
#include <QtCore/QThread>
#include <QtCore/QTimer>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <thread>
#include <vector>

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

// A future of the worker's loop, handed to the main thread: awaited from
// the main thread's loop it is "of another event loop" while the worker
// runs, and of a destroyed loop once stop() joined it (the worker cleared
// the future's loop pointer; the join orders that before this read).
TEST(LoopThread, AFutureOfItsLoopIsRefusedElsewhereAsForeignThenAsOfADestroyedLoop) {
  qi::LoopThread worker;
  auto make = []() -> qi::Coro<qi::Future<int>> { co_return qi::get_running_loop().create_future<int>(); };
  qi::Future<int> theirs = qi::run_coroutine_threadsafe(make(), worker.loop()).result(5s);
  QiEventLoop here;
  auto await_it = [&here](qi::Future<int> f) {
    std::string error;
    here.run_until_complete([](qi::Future<int> f, std::string& error) -> qi::Coro<void> {
      try {
        (void)co_await f;
        ADD_FAILURE() << "awaited";
      } catch (const qi::RuntimeError& e) {
        error = e.what();
      }
    }(std::move(f), error));
    return error;
  };
  EXPECT_EQ(await_it(theirs).rfind("co_await: the future belongs to another event loop", 0), 0u);
  worker.stop();
  EXPECT_EQ(theirs.get_loop(), nullptr);
  const std::string error = await_it(theirs);
  EXPECT_EQ(error.rfind("co_await: Future belongs to an event loop that was destroyed", 0), 0u) << error;
  EXPECT_FALSE(theirs.done());
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
      [](qi::LoopThread& w) -> qi::Coro<std::string> {
        try {
          w.stop();
        } catch (const qi::RuntimeError& e) {
          co_return e.what();
        }
        co_return "no error";
      }(worker),
      worker.loop());
  const std::string error = cf.result(5s);
  EXPECT_NE(error.find("qi::LoopThread::stop: called from the worker's own thread, which cannot join itself"),
            std::string::npos)
      << error;
}

// The destructor cannot throw: from the worker's own thread it is fatal,
// with the fix, rather than a deadlock joining itself.
TEST(LoopThreadDeathTest, DestroyingItFromItsOwnWorkerThreadIsFatal) {
  EXPECT_DEATH(
      {
        auto* worker = new qi::LoopThread;
        worker->loop().call_soon_threadsafe([worker] { delete worker; });
        std::this_thread::sleep_for(10s);  // the death comes first; a bound if it never does
      },
      "qi::LoopThread destroyed from its own worker thread, which cannot join itself; destroy it from the thread "
      "that made it");
}

namespace {

qi::Coro<int> doubled(int v) {
  co_await qi::sleep(0ms);
  co_return 2 * v;
}

// A modal call on the worker's loop: its nested QEventLoop polls `quit`
// (bounded by `cap`), and says when it runs.
qi::Coro<int> modal_on_worker(std::shared_ptr<std::atomic<bool>> inside, std::shared_ptr<std::atomic<bool>> quit) {
  // Named: GCC 12 destroys a lambda temporary with by-value captures twice
  // when it is an argument inside a co_await (tests/qt/modal_test.cpp).
  auto fn = [inside, quit] {
    QEventLoop nested;
    QTimer poll;
    QObject::connect(&poll, &QTimer::timeout, &nested, [&] {
      if (*quit) nested.quit();
    });
    poll.start(1);
    QTimer::singleShot(10s, &nested, &QEventLoop::quit);
    *inside = true;
    nested.exec();
    *inside = false;
    return 42;
  };
  co_return co_await qi::modal(std::move(fn));
}

}  // namespace

// qi::modal from a task of a LoopThread's loop, while other threads keep
// submitting coroutines there: they run inside the modal call's nested loop
// on the worker's thread, and the modal's value comes back.
TEST(LoopThread, AModalCallOnTheWorkersLoopKeepsServingCoroutinesFromOtherThreads) {
  qi::LoopThread worker;
  auto inside = std::make_shared<std::atomic<bool>>(false);
  auto quit = std::make_shared<std::atomic<bool>>(false);
  auto modal = qi::run_coroutine_threadsafe(modal_on_worker(inside, quit), worker.loop());
  for (int i = 0; i < 5000 && !*inside; ++i) std::this_thread::sleep_for(1ms);
  ASSERT_TRUE(inside->load()) << "the modal call never started";
  std::vector<std::thread> submitters;
  std::atomic<int> right{0};
  for (int t = 0; t < 2; ++t)
    submitters.emplace_back([&worker, &right, t] {
      for (int i = 0; i < 200; ++i)
        if (qi::run_coroutine_threadsafe(doubled(t * 1000 + i), worker.loop()).result(5s) == 2 * (t * 1000 + i))
          ++right;
    });
  for (auto& s : submitters) s.join();
  EXPECT_EQ(right.load(), 400);
  EXPECT_TRUE(inside->load()) << "the coroutines waited for the modal call to end";
  *quit = true;
  EXPECT_EQ(modal.result(5s), 42);
}

