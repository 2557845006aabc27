// call_soon_threadsafe: other threads feeding a running loop, in both run
// modes, and a loop running in a QThread. Runs under ThreadSanitizer (label
// "thread"): everything shared between threads below goes through the loop
// or through std primitives, never through Qt's (which TSan cannot see).
#include "test_util.h"

#include <qiloop/structured/gather.h>
#include <qiloop/structured/shield.h>

#include <QtCore/QEventLoop>
#include <QtCore/QThread>

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <latch>
#include <memory>
#include <string>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using qt::Mode;

namespace {

class ThreadsafeTest : public qt::ModeTest {};

// Starts `threads` threads once the loop runs; each sends `each` callbacks.
// Checks that every callback ran exactly once, on the loop's thread, and
// that each thread's callbacks ran in the order it sent them.
void feed_from_threads(QiEventLoop& loop, Mode mode, int threads, int each) {
  const auto loop_thread = std::this_thread::get_id();
  std::vector<std::vector<int>> got(threads);  // touched on the loop's thread only
  int total = 0;
  bool on_loop_thread = true;
  std::vector<std::thread> workers;
  loop.call_soon([&] {
    for (int t = 0; t < threads; ++t)
      workers.emplace_back([&, t] {
        for (int i = 0; i < each; ++i)
          loop.call_soon_threadsafe([&, t, i] {
            on_loop_thread = on_loop_thread && std::this_thread::get_id() == loop_thread;
            got[t].push_back(i);
            if (++total == threads * each) loop.stop();
          });
      });
  });
  qt::run_until_stopped(loop, mode, 10s);
  for (auto& w : workers) w.join();
  EXPECT_EQ(total, threads * each);
  EXPECT_TRUE(on_loop_thread);
  for (int t = 0; t < threads; ++t) {
    ASSERT_EQ(got[t].size(), static_cast<std::size_t>(each)) << "thread " << t;
    for (int i = 0; i < each; ++i) ASSERT_EQ(got[t][i], i) << "thread " << t << ": out of order or duplicated";
  }
}

TEST_P(ThreadsafeTest, FromOneThreadEveryCallbackRunsOnceInOrder) {
  QiEventLoop loop;
  feed_from_threads(loop, mode(), 1, 20000);
}

TEST_P(ThreadsafeTest, FromFourThreadsEachThreadsCallbacksRunOnceInOrder) {
  QiEventLoop loop;
  feed_from_threads(loop, mode(), 4, 10000);
}

// Causal order across threads, as asyncio keeps it (one ready queue): a
// worker calls call_soon_threadsafe(x1), then raises a flag; a loop callback
// that sees the flag calls call_soon(x2) — x2 must run after x1. Many trials,
// with the loop busy polling the flag, so that the flag is often seen in the
// same iteration in which x1 arrives.
TEST_P(ThreadsafeTest, ACallSoonMadeAfterSeeingAThreadsafeCallsEffectRunsAfterIt) {
  // Before the fix, 2-10% of trials reordered; each trial needs the worker
  // scheduled, which a loaded 2-core machine may take milliseconds to do.
  constexpr int kTrials = 1000;
  QiEventLoop loop;
  std::atomic<int> started{-1};  // the trial the worker may run
  std::atomic<int> flag{-1};     // the trial whose x1 has been sent
  std::vector<char> x1_ran(kTrials, 0);  // loop thread only
  int reordered = 0;
  int done = 0;
  std::function<void(int)> watch;
  auto start_trial = [&](int t) {
    started.store(t, std::memory_order_release);
    loop.call_soon(watch, t);
  };
  watch = [&](int t) {
    if (flag.load(std::memory_order_acquire) != t) {
      loop.call_soon(watch, t);
      return;
    }
    loop.call_soon([&, t] {
      if (!x1_ran[t]) ++reordered;
      if (++done == kTrials)
        loop.stop();
      else
        start_trial(t + 1);
    });
  };
  std::thread worker([&] {
    for (int t = 0; t < kTrials; ++t) {
      int s;
      while ((s = started.load(std::memory_order_acquire)) < t) std::this_thread::yield();
      if (s != t) break;  // the loop gave up
      loop.call_soon_threadsafe([&, t] { x1_ran[t] = 1; });
      flag.store(t, std::memory_order_release);
    }
  });
  start_trial(0);
  qt::run_until_stopped(loop, mode(), 30s);
  if (done != kTrials) started.store(kTrials, std::memory_order_release);  // free a waiting worker
  worker.join();
  EXPECT_EQ(done, kTrials);
  EXPECT_EQ(reordered, 0) << "x2 ran before x1 in " << reordered << " of " << kTrials << " trials";
}

TEST_P(ThreadsafeTest, AnIdleLoopWithNoTimersIsWokenPromptly) {
  QiEventLoop loop;
  std::thread worker;
  std::chrono::steady_clock::duration latency{};
  uint64_t slices_at_start = 0, slices_at_wake = 0;
  loop.call_soon([&] {
    slices_at_start = loop.stats().slices;
    worker = std::thread([&] {
      // Long enough for the loop to go idle: nothing ready, no timer armed.
      std::this_thread::sleep_for(50ms);
      auto sent = std::chrono::steady_clock::now();
      loop.call_soon_threadsafe([&, sent] {
        latency = std::chrono::steady_clock::now() - sent;
        slices_at_wake = loop.stats().slices;
        loop.stop();
      });
    });
  });
  qt::run_until_stopped(loop, mode(), 3s);
  worker.join();
  EXPECT_LT(latency, 1s) << "the wake-up was lost or late";
  // An idle loop sleeps in Qt; it does not poll for the inbox.
  EXPECT_LE(slices_at_wake - slices_at_start, 3u);
}

TEST_P(ThreadsafeTest, AHandleCancelledFromTheSendingThreadNeverRuns) {
  QiEventLoop loop;
  std::vector<int> ran;
  std::vector<char> cancelled;  // written by the worker, read after join
  std::thread worker;
  loop.call_soon([&] {
    // The loop waits here until the worker has sent and cancelled, so every
    // cancel lands before its callback could start.
    std::latch sent(1);
    worker = std::thread([&] {
      std::vector<qi::Handle> handles;
      for (int i = 0; i < 100; ++i) handles.push_back(loop.call_soon_threadsafe([&ran, i] { ran.push_back(i); }));
      for (int i = 0; i < 100; i += 2) handles[i].cancel();
      for (const auto& h : handles) cancelled.push_back(h.cancelled());
      loop.call_soon_threadsafe([&] { loop.stop(); });
      sent.count_down();
      // The handles are dropped here, on this thread, maybe while the loop
      // holds the same nodes.
    });
    sent.wait();
  });
  run(loop);
  worker.join();
  std::vector<int> odd;
  for (int i = 1; i < 100; i += 2) odd.push_back(i);
  EXPECT_EQ(ran, odd);
  ASSERT_EQ(cancelled.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(cancelled[i], i % 2 == 0) << i;
}

TEST_P(ThreadsafeTest, CancellingWhileTheLoopRunsTheCallbacksIsSafe) {
  // Whether each callback runs depends on who gets there first; the
  // contract is only that nothing runs twice, nothing is torn, and every
  // callable is destroyed.
  QiEventLoop loop;
  constexpr int kCount = 5000;
  auto token = std::make_shared<int>(0);
  std::vector<int> runs(kCount, 0);
  std::thread worker;
  loop.call_soon([&] {
    worker = std::thread([&, token] {
      for (int i = 0; i < kCount; ++i) {
        qi::Handle h = loop.call_soon_threadsafe([&runs, i, token] { ++runs[i]; });
        if (i % 3 != 0) h.cancel();
        EXPECT_EQ(h.cancelled(), i % 3 != 0);
      }
      loop.call_soon_threadsafe([&] { loop.stop(); });
    });
  });
  run(loop);
  worker.join();
  for (int i = 0; i < kCount; ++i) {
    EXPECT_LE(runs[i], 1) << i;
    if (i % 3 == 0) {
      EXPECT_EQ(runs[i], 1) << "never cancelled, yet it did not run: " << i;
    }
  }
  loop.close();
  EXPECT_EQ(token.use_count(), 1) << "a callable outlived its callback";
}

INSTANTIATE_TEST_SUITE_P(Modes, ThreadsafeTest, testing::Values(Mode::kNested, Mode::kAttached), qt::mode_name);

TEST(ThreadsafeClosed, CallSoonThreadsafeAfterCloseThrowsOnAnyThread) {
  QiEventLoop loop;
  loop.close();
  auto token = std::make_shared<int>(0);
  EXPECT_THROW(loop.call_soon_threadsafe([token] {}), qi::RuntimeError);
  bool threw = false;
  std::thread([&] {
    try {
      loop.call_soon_threadsafe([token] {});
    } catch (const qi::RuntimeError&) {
      threw = true;
    }
  }).join();
  EXPECT_TRUE(threw);
  EXPECT_EQ(token.use_count(), 1) << "a refused callable must be destroyed, not leaked";
}

TEST(ThreadsafeClosed, SendingWhileTheLoopClosesEitherSucceedsOrThrows) {
  // A thread keeps sending while the loop's thread stops and closes the
  // loop. Every call must either be accepted (and then run or be destroyed
  // by close()) or throw qi::RuntimeError; nothing crashes or leaks.
  for (int round = 0; round < 20; ++round) {
    QiEventLoop loop;
    auto token = std::make_shared<int>(0);
    std::atomic<bool> go{false};
    long accepted = 0;
    bool refused = false, other_error = false;
    int ran = 0;
    std::thread sender([&, token] {
      while (!go.load()) std::this_thread::yield();
      for (;;) {
        try {
          loop.call_soon_threadsafe([&ran, &loop, token] {
            if (++ran == 100) loop.stop();
          });
          ++accepted;
        } catch (const qi::RuntimeError&) {
          refused = true;
          return;
        } catch (...) {
          other_error = true;
          return;
        }
      }
    });
    loop.call_soon([&] { go.store(true); });
    loop.run_forever();
    loop.close();  // the sender is still sending
    sender.join();
    ASSERT_TRUE(refused) << "round " << round;
    ASSERT_FALSE(other_error) << "round " << round;
    EXPECT_GE(ran, 100);
    EXPECT_LE(ran, accepted);
    EXPECT_EQ(token.use_count(), 1) << "round " << round << ": a callable was leaked";
  }
}

// --- A loop in a QThread --------------------------------------------------------

// A QThread whose run() is `body`. The tests hand results back through std
// primitives set at the end of body, so ThreadSanitizer sees the hand-over.
class BodyThread : public QThread {
 public:
  explicit BodyThread(std::function<void()> body) : body_(std::move(body)) {}

 protected:
  void run() override { body_(); }

 private:
  std::function<void()> body_;
};

// Ends a finished QThread's life. Qt is not built for ThreadSanitizer:
// ~QThread destroys a wait condition that the exiting thread signalled under
// Qt's own mutex, which TSan cannot see, so TSan reports a race inside Qt.
// Under TSan the object is therefore kept until the process exits.
void retire(std::unique_ptr<QThread> thread) {
#if defined(__SANITIZE_THREAD__)
  static auto* kept = new std::vector<std::unique_ptr<QThread>>;
  kept->push_back(std::move(thread));
#else
  thread.reset();
#endif
}

struct Received {
  std::vector<int> values;
  bool on_loop_thread = true;
};

// Sends `count` callbacks from this thread, then one that stops the loop.
void feed(QiEventLoop& loop, std::thread::id loop_thread, Received& into, int count) {
  for (int i = 0; i < count; ++i)
    loop.call_soon_threadsafe([&into, loop_thread, i] {
      into.on_loop_thread = into.on_loop_thread && std::this_thread::get_id() == loop_thread;
      into.values.push_back(i);
    });
  loop.call_soon_threadsafe([&loop] { loop.stop(); });
}

void expect_all_in_order(const Received& r, int count) {
  EXPECT_TRUE(r.on_loop_thread);
  ASSERT_EQ(r.values.size(), static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i) ASSERT_EQ(r.values[i], i);
}

TEST(ThreadsafeQThread, ALoopCreatedInAQThreadRunsWhatTheMainThreadSends) {
  constexpr int kCount = 5000;
  Received received;
  std::promise<std::pair<QiEventLoop*, std::thread::id>> running;
  std::latch main_done(1);
  std::promise<void> finished;
  auto thread = std::make_unique<BodyThread>([&] {
    QiEventLoop loop;
    EXPECT_EQ(loop.thread(), QThread::currentThread());
    loop.call_soon([&] { running.set_value({&loop, std::this_thread::get_id()}); });
    loop.run_forever();
    // The main thread may still be inside its last call_soon_threadsafe.
    main_done.wait();
    loop.close();
    finished.set_value();
  });
  thread->start();
  auto [loop, loop_thread] = running.get_future().get();
  EXPECT_NE(loop_thread, std::this_thread::get_id());
  feed(*loop, loop_thread, received, kCount);
  main_done.count_down();
  ASSERT_EQ(finished.get_future().wait_for(5s), std::future_status::ready) << "the loop did not stop";
  EXPECT_TRUE(thread->wait(QDeadlineTimer(5000)));
  retire(std::move(thread));
  expect_all_in_order(received, kCount);
}

// What a worker thread's shutdown reported through the exception handler.
struct ShutdownReport {
  int cleaned = 0;
  std::vector<std::string> reports;
  void watch(QiEventLoop& loop) {
    loop.set_exception_handler([this](QiEventLoop&, const qi::ExceptionContext& ctx) { reports.push_back(ctx.message); });
  }
};

// QThread::quit() is how a worker ends; it leaves the thread's quit flag set,
// which ends every new QEventLoop at once. The runner's shutdown must still
// let the leftovers' clean-up awaits complete.
TEST(ThreadsafeQThread, ARunnerLeftAfterQThreadQuitLetsLeftoversCleanUp) {
  std::promise<ShutdownReport> result;
  auto thread = std::make_unique<BodyThread>([&] {
    ShutdownReport report;
    {
      QiRunner runner;
      report.watch(runner.loop());
      for (int i = 0; i < 3; ++i) runner.loop().create_task(qt::cleans_up_with_awaits(report.cleaned));
      runner.loop().call_later(10ms, [] { QThread::currentThread()->quit(); });
      QEventLoop().exec();  // what QThread::exec() runs
    }
    result.set_value(std::move(report));
  });
  thread->start();
  auto future = result.get_future();
  ASSERT_EQ(future.wait_for(10s), std::future_status::ready) << "the worker did not end";
  EXPECT_TRUE(thread->wait(QDeadlineTimer(5000)));
  retire(std::move(thread));
  ShutdownReport report = future.get();
  EXPECT_EQ(report.cleaned, 3) << "clean-up awaits did not complete";
  EXPECT_EQ(report.reports, std::vector<std::string>{});
}

// qi::run in a worker whose QThread is told to quit: run_until_complete says
// Qt ended the loop, and the shutdown still lets the main task and the
// leftovers clean up.
TEST(ThreadsafeQThread, QiRunEndedByQThreadQuitLetsTasksCleanUp) {
  std::promise<std::pair<ShutdownReport, std::string>> result;
  auto thread = std::make_unique<BodyThread>([&] {
    ShutdownReport report;
    std::string error;
    auto main = [](ShutdownReport& report) -> qi::Coro<void> {
      report.watch(qi::get_running_loop());
      qi::create_task(qt::cleans_up_with_awaits(report.cleaned));
      qi::get_running_loop().call_later(10ms, [] { QThread::currentThread()->quit(); });
      co_await qt::cleans_up_with_awaits(report.cleaned);
    };
    try {
      qi::run(main(report));
    } catch (const qi::RuntimeError& e) {
      error = e.what();
    }
    result.set_value({std::move(report), std::move(error)});
  });
  thread->start();
  auto future = result.get_future();
  ASSERT_EQ(future.wait_for(10s), std::future_status::ready) << "the worker did not end";
  EXPECT_TRUE(thread->wait(QDeadlineTimer(5000)));
  retire(std::move(thread));
  auto [report, error] = future.get();
  EXPECT_NE(error.find("QThread::quit()"), std::string::npos) << error;
  EXPECT_EQ(report.cleaned, 2) << "clean-up awaits did not complete";
  EXPECT_EQ(report.reports, std::vector<std::string>{});
}

TEST(ThreadsafeQThread, ALoopMovedToAQThreadRunsWhatTheMainThreadSends) {
  constexpr int kCount = 5000;
  Received received;
  QiEventLoop loop;  // made here, run there
  std::promise<std::thread::id> running;
  std::promise<void> finished;
  QThread* main_thread = QThread::currentThread();
  auto thread = std::make_unique<BodyThread>([&] {
    loop.call_soon([&] { running.set_value(std::this_thread::get_id()); });
    loop.run_forever();
    loop.close();
    // Hand the loop back so that it is destroyed on the thread it belongs to.
    loop.moveToThread(main_thread);
    finished.set_value();
  });
  loop.moveToThread(thread.get());
  EXPECT_THROW(loop.run_forever(), qi::RuntimeError) << "the main thread no longer owns the loop";
  thread->start();
  std::thread::id loop_thread = running.get_future().get();
  feed(loop, loop_thread, received, kCount);
  ASSERT_EQ(finished.get_future().wait_for(5s), std::future_status::ready) << "the loop did not stop";
  EXPECT_TRUE(thread->wait(QDeadlineTimer(5000)));
  retire(std::move(thread));
  EXPECT_EQ(loop.thread(), main_thread);
  EXPECT_TRUE(loop.is_closed());
  expect_all_in_order(received, kCount);
}

TEST(ThreadsafeSameThread, FromTheLoopsOwnThreadItRunsOnALaterIteration) {
  // call_soon_threadsafe from the loop's own thread behaves as call_soon
  // plus a wake-up: it runs on a later iteration.
  QiEventLoop loop;
  std::vector<std::string> log;
  loop.call_soon([&] {
    loop.call_soon_threadsafe([&] {
      log.push_back("threadsafe");
      loop.stop();
    });
    log.push_back("first");
  });
  loop.run_forever();
  EXPECT_EQ(log, (std::vector<std::string>{"first", "threadsafe"}));
}

}  // namespace

namespace {

TEST(ThreadsafeSameThread, OnTheLoopsOwnThreadItKeepsCallSoonOrder) {
  // asyncio appends both to the same ready queue: a, b, c.
  QiEventLoop loop;
  std::vector<std::string> log;
  loop.call_soon([&] { log.push_back("a"); });
  loop.call_soon_threadsafe([&] { log.push_back("b (threadsafe)"); });
  loop.call_soon([&] { log.push_back("c"); });
  loop.call_soon([&] {
    loop.call_soon([&] { log.push_back("d"); });
    loop.call_soon_threadsafe([&] { log.push_back("e (threadsafe)"); });
    loop.call_soon([&] {
      log.push_back("f");
      loop.stop();
    });
  });
  loop.run_forever();
  EXPECT_EQ(log, (std::vector<std::string>{"a", "b (threadsafe)", "c", "d", "e (threadsafe)", "f"}));
}

// Debug mode's wrong-thread check on a future must not itself race: a worker
// keeps calling on a future whose done callbacks the loop keeps changing;
// every call is refused before it reads the future (TSan saw the reads of
// its state and callback count racing with the loop), and nothing changes.
TEST(ThreadsafeDebug, RejectedFutureCallsFromAWorkerReadNothingTheLoopChanges) {
  QiEventLoop loop;
  loop.set_debug(true);
  auto fut = loop.create_future<int>();
  auto answer = []() -> qi::Coro<int> { co_return 42; };
  qi::Task<int> task = loop.create_task(answer());  // done (and read) by the time the worker runs
  std::atomic<bool> stop{false};
  std::atomic<int> rejected{0};
  std::atomic<int> other{0};
  std::latch started(1);
  std::thread worker([&] {
    auto attempt = [&](auto call) {
      try {
        call();
        ++other;
      } catch (const qi::RuntimeError&) {
        ++rejected;
      } catch (...) {
        ++other;
      }
    };
    started.count_down();
    while (!stop.load()) {
      attempt([&] { fut.set_result(1); });
      attempt([&] { fut.cancel(); });
      attempt([&] { fut.add_done_callback([] {}); });
      attempt([&] { task.cancel(); });
    }
  });
  int rounds = 0;
  // At least 2000 rounds, and on until the worker was rejected once: on a
  // loaded machine it may not be scheduled at all during the first ones.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  std::function<void()> churn = [&] {
    const uint64_t id = fut.add_done_callback([] {});
    EXPECT_EQ(fut.remove_done_callback(id), 1u);
    if (++rounds < 2000 || (rejected.load() == 0 && std::chrono::steady_clock::now() < give_up))
      loop.call_soon(churn);
    else
      loop.stop();
  };
  EXPECT_EQ(loop.run_until_complete(task), 42);
  started.wait();
  loop.call_soon(churn);
  loop.run_forever();
  stop = true;
  worker.join();
  EXPECT_FALSE(fut.done()) << "a rejected call must leave the future pending";
  EXPECT_GT(rejected.load(), 0);
  EXPECT_EQ(other.load(), 0) << "a call from the worker got through, or failed with another error";
  fut.set_result(7);
  EXPECT_EQ(fut.result(), 7);
}

}  // namespace

namespace {

// QCoreApplication::removePostedEvents is thread-safe: another thread may
// delete the loop's wake event. Its record is cleared without a data race
// (TSan) and each removed wake-up is recovered: every callback runs.
TEST(ThreadsafeQThread, WakeEventsRemovedFromAnotherThreadAreRecovered) {
  constexpr int kCount = 5000;
  std::promise<QiEventLoop*> running;
  std::promise<void> finished;
  std::atomic<int> ran{0};
  auto thread = std::make_unique<BodyThread>([&] {
    QiEventLoop loop;
    loop.call_soon([&] { running.set_value(&loop); });
    loop.run_forever();
    loop.close();
    finished.set_value();
  });
  thread->start();
  QiEventLoop* loop = running.get_future().get();
  for (int i = 0; i < kCount; ++i) {
    loop->call_soon_threadsafe([&] { ran.fetch_add(1, std::memory_order_relaxed); });
    QCoreApplication::removePostedEvents(loop);
  }
  loop->call_soon_threadsafe([loop] { loop->stop(); });
  ASSERT_EQ(finished.get_future().wait_for(10s), std::future_status::ready) << "the loop did not stop";
  EXPECT_TRUE(thread->wait(QDeadlineTimer(5000)));
  retire(std::move(thread));
  EXPECT_EQ(ran.load(), kCount);
}

// Handles of a future, its shield and a gather of both, copied to another
// thread and dropped there while the loop completes the future (and the
// shield and gather with it): their hooks and the loop's list of watchers
// are only ever touched on the loop's thread (TSan).
TEST(ThreadsafeCombinators, GatherAndShieldHandlesDroppedOnAnotherThread) {
  QiEventLoop loop;
  loop.run_until_complete([]() -> qi::Coro<void> {
    QiEventLoop& l = qi::get_running_loop();
    for (int i = 0; i < 200; ++i) {
      auto f = l.create_future<int>();
      auto s = qi::shield(f);
      auto g = qi::gather(s, f);
      std::thread dropper([f, s, g, &l]() mutable {
        l.call_soon_threadsafe([f]() mutable { f.set_result(1); });
        f = {};
        s = {};
        g = {};
      });
      f = {};
      s = {};
      auto [a, b] = co_await g;
      g = {};
      dropper.join();
      EXPECT_EQ(a + b, 2);
    }
  }());
  loop.close();
}

}  // namespace
