// qi::run_coroutine_threadsafe, qi::ConcurrentFuture and qi::wrap_future
// (asyncio's run_coroutine_threadsafe / concurrent.futures.Future /
// wrap_future): results, original exception types, timeouts that leave the
// coroutine running, cancellation both ways, done callbacks, the deadlock
// result() would be on the loop's own thread, loops closed under a pending
// future, and moving a coroutine between two loops' threads. Label `thread`.
#include <qiloop/qiloop.h>
#include <qiloop/testing.h>

#include "outside_task.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <stdexcept>
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

namespace {

struct Boom : std::runtime_error {
  using std::runtime_error::runtime_error;
};

qi::Coro<int> answer_later(std::chrono::milliseconds d, int v) {
  co_await qi::sleep(d);
  co_return v;
}

qi::Coro<int> throws_later() {
  co_await qi::sleep(1ms);
  throw Boom("remote");
}

// Sleeps "forever"; says whether it started and whether it was cancelled.
qi::Coro<int> sleeps_until_cancelled(std::shared_ptr<std::atomic<bool>> cancelled,
                                     std::shared_ptr<std::atomic<bool>> started = nullptr) {
  if (started) *started = true;
  try {
    co_await qi::sleep(1h);
  } catch (const qi::CancelledError&) {
    *cancelled = true;
    throw;
  }
  co_return 0;
}

qi::Coro<std::thread::id> where_am_i() {
  co_await qi::sleep(1ms);
  co_return std::this_thread::get_id();
}

// Polls `flag` on the running loop, bounded.
qi::Coro<bool> eventually(const std::atomic<bool>& flag) {
  for (int i = 0; i < 5000 && !flag; ++i) co_await qi::sleep(1ms);
  co_return flag.load();
}

}  // namespace

// --- ConcurrentFuture from a plain thread ------------------------------------

TEST(ConcurrentFuture, ResultBlocksUntilTheCoroutineOnTheOtherLoopReturns) {
  qi::LoopThread worker;
  qi::ConcurrentFuture<int> cf = qi::run_coroutine_threadsafe(answer_later(5ms, 42), worker.loop());
  EXPECT_EQ(cf.result(5s), 42);
  EXPECT_TRUE(cf.done());
  EXPECT_FALSE(cf.cancelled());
  EXPECT_EQ(cf.exception(), nullptr);
  EXPECT_EQ(cf.result(), 42);  // again, at once
}

TEST(ConcurrentFuture, VoidCoroutine) {
  qi::LoopThread worker;
  std::atomic<bool> ran{false};
  auto cf = qi::run_coroutine_threadsafe(
      [](std::atomic<bool>& ran) -> qi::Coro<void> {
        co_await qi::sleep(1ms);
        ran = true;
      }(ran),
      worker.loop());
  cf.result(5s);
  EXPECT_TRUE(ran.load());
}

TEST(ConcurrentFuture, TheCoroutinesExceptionKeepsItsType) {
  qi::LoopThread worker;
  auto cf = qi::run_coroutine_threadsafe(throws_later(), worker.loop());
  EXPECT_THROW(cf.result(5s), Boom);
  std::exception_ptr e = cf.exception(0s);
  ASSERT_TRUE(e);
  EXPECT_THROW(std::rethrow_exception(e), Boom);
}

TEST(ConcurrentFuture, ATimeoutLeavesTheCoroutineRunning) {
  qi::LoopThread worker;
  auto cf = qi::run_coroutine_threadsafe(answer_later(100ms, 7), worker.loop());
  std::string msg;
  try {
    cf.result(1ms);
  } catch (const qi::TimeoutError& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find("keeps running"), std::string::npos) << msg;
  EXPECT_FALSE(cf.done());
  EXPECT_THROW(cf.exception(0ms), qi::TimeoutError);
  EXPECT_EQ(cf.result(5s), 7);
}

TEST(ConcurrentFuture, CancelCancelsTheRemoteTaskAndTheFutureAtOnce) {
  qi::LoopThread worker;
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  auto started = std::make_shared<std::atomic<bool>>(false);
  auto cf = qi::run_coroutine_threadsafe(sleeps_until_cancelled(cancelled, started), worker.loop());
  for (int i = 0; i < 5000 && !*started; ++i) std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(cf.cancel());
  EXPECT_TRUE(cf.done());
  EXPECT_TRUE(cf.cancelled());
  EXPECT_FALSE(cf.cancel());
  bool threw = false;
  try {
    cf.result(0s);
  } catch (const qi::CancelledError&) {
    threw = true;
  }
  EXPECT_TRUE(threw);
  for (int i = 0; i < 5000 && !*cancelled; ++i) std::this_thread::sleep_for(1ms);
  EXPECT_TRUE(cancelled->load()) << "the remote coroutine was not cancelled";
}

TEST(ConcurrentFuture, DoneCallbacksRunOnTheCompletingThreadOrAtOnceWhenDone) {
  qi::LoopThread worker;
  std::promise<std::pair<int, std::thread::id>> seen;
  auto cf = qi::run_coroutine_threadsafe(where_am_i(), worker.loop());
  cf.add_done_callback([&seen](qi::ConcurrentFuture<std::thread::id> f) {
    seen.set_value({1, std::this_thread::get_id()});
    EXPECT_TRUE(f.done());
  });
  auto got = seen.get_future();
  ASSERT_EQ(got.wait_for(5s), std::future_status::ready);
  auto [n, on] = got.get();
  EXPECT_EQ(n, 1);
  EXPECT_EQ(on, cf.result());  // the worker's thread, where the coroutine ended
  bool now = false;
  cf.add_done_callback([&now] { now = true; });
  EXPECT_TRUE(now);
}

TEST(ConcurrentFuture, ACallbackThatThrowsIsLoggedAndTheOthersStillRun) {
  qi::LoopThread worker;
  auto cf = qi::run_coroutine_threadsafe(answer_later(20ms, 1), worker.loop());
  std::atomic<int> ran{0};
  cf.add_done_callback([] { throw std::runtime_error("callback"); });
  cf.add_done_callback([&ran] { ++ran; });
  EXPECT_EQ(cf.result(5s), 1);
  for (int i = 0; i < 1000 && ran == 0; ++i) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(ran.load(), 1);
}

// Blocking on the loop's own thread for a coroutine of that loop would wait
// forever: refused with the fix in the message.
TEST(ConcurrentFuture, ResultOnTheLoopsOwnThreadThrowsInsteadOfDeadlocking) {
  qi::LoopThread worker;
  QiEventLoop& wl = worker.loop();
  auto outer = qi::run_coroutine_threadsafe(
      [](QiEventLoop& wl) -> qi::Coro<std::string> {
        auto inner = qi::run_coroutine_threadsafe(answer_later(1ms, 3), wl);
        std::string msg;
        try {
          inner.result(1s);
        } catch (const qi::RuntimeError& e) {
          msg = e.what();
        }
        EXPECT_EQ(co_await qi::wrap_future(inner), 3);  // the fix
        co_return msg;
      }(wl),
      wl);
  std::string msg = outer.result(5s);
  EXPECT_NE(msg.find("co_await qi::wrap_future"), std::string::npos) << msg;
}

TEST(ConcurrentFuture, ALoopClosedBeforeTheCoroutineRanFailsTheFutureAndFreesIt) {
  auto token = std::make_shared<int>(0);
  qi::ConcurrentFuture<int> cf;
  {
    QiEventLoop loop;  // never runs
    cf = qi::run_coroutine_threadsafe(
        [](std::shared_ptr<int> t) -> qi::Coro<int> { co_return *t; }(token), loop);
    EXPECT_EQ(token.use_count(), 2);
    EXPECT_FALSE(cf.done());
    loop.close();
  }
  EXPECT_TRUE(cf.done());
  EXPECT_EQ(token.use_count(), 1) << "the coroutine's frame leaked";
  std::string msg;
  try {
    cf.result(0s);
  } catch (const qi::RuntimeError& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find("closed before the coroutine ran"), std::string::npos) << msg;
}

TEST(ConcurrentFuture, ALoopClosedWhileTheCoroutineRanFailsTheFuture) {
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  qi::ConcurrentFuture<int> cf;
  std::vector<std::string> reports;
  {
    QiEventLoop loop;
    loop.set_exception_handler([&reports](QiEventLoop&, const qi::ExceptionContext& c) { reports.push_back(c.message); });
    cf = qi::run_coroutine_threadsafe(sleeps_until_cancelled(cancelled), loop);
    loop.run_until_complete(answer_later(5ms, 0));
    EXPECT_FALSE(cf.done());
    loop.close();  // no shutdown(): the task is destroyed pending
  }
  EXPECT_EQ(reports, std::vector<std::string>{"Task was destroyed but it is pending!"});
  EXPECT_TRUE(cf.done());
  std::string msg;
  try {
    cf.result(0s);
  } catch (const qi::RuntimeError& e) {
    msg = e.what();
  }
  EXPECT_NE(msg.find("closed while the coroutine was still running"), std::string::npos) << msg;
}

TEST(ConcurrentFuture, ScheduledOnAClosedLoopThrowsAtTheCall) {
  auto token = std::make_shared<int>(0);
  QiEventLoop loop;
  loop.close();
  EXPECT_THROW(qi::run_coroutine_threadsafe([](std::shared_ptr<int> t) -> qi::Coro<int> { co_return *t; }(token), loop),
               qi::RuntimeError);
  EXPECT_EQ(token.use_count(), 1);
}

TEST(ConcurrentFuture, CancelledBeforeItsTaskStartedTheCoroutineNeverRuns) {
  std::atomic<bool> ran{false};
  QiEventLoop loop;
  auto cf = qi::run_coroutine_threadsafe(
      [](std::atomic<bool>& ran) -> qi::Coro<void> {
        ran = true;
        co_return;
      }(ran),
      loop);
  EXPECT_TRUE(cf.cancel());
  loop.run_until_complete(answer_later(5ms, 0));
  EXPECT_FALSE(ran.load());
  EXPECT_TRUE(cf.cancelled());
  loop.shutdown();
}

// --- wrap_future from another loop ---------------------------------------------

QILOOP_TEST_MODES(WrapFuture, AwaitsTheRemoteResultAndResumesOnThisLoopsThread) {
  qi::LoopThread worker;
  const auto here = std::this_thread::get_id();
  std::thread::id there = co_await qi::wrap_future(qi::run_coroutine_threadsafe(where_am_i(), worker.loop()));
  EXPECT_NE(there, here);
  EXPECT_EQ(std::this_thread::get_id(), here);
}

// Moving a coroutine between two loops' threads: each part runs where it
// should, and the caller ends where it began.
QILOOP_TEST_MODES(WrapFuture, ACoroutineMovesBetweenTwoLoopsThreadsAndBack) {
  qi::LoopThread a("a");
  qi::LoopThread b("b");
  const auto here = std::this_thread::get_id();
  auto on = [](qi::LoopThread& t) { return qi::run_coroutine_threadsafe(where_am_i(), t.loop()); };
  std::thread::id ta = co_await qi::wrap_future(on(a));
  EXPECT_EQ(std::this_thread::get_id(), here);
  std::thread::id tb = co_await qi::wrap_future(on(b));
  EXPECT_EQ(std::this_thread::get_id(), here);
  // From a's loop, hop to b's and back to a's.
  auto hop = [](QiEventLoop& b_loop) -> qi::Coro<std::pair<bool, std::thread::id>> {
    const auto start = std::this_thread::get_id();
    std::thread::id mid = co_await qi::wrap_future(qi::run_coroutine_threadsafe(where_am_i(), b_loop));
    co_return std::pair{std::this_thread::get_id() == start && mid != start, mid};
  };
  auto [back_on_a, via] = co_await qi::wrap_future(qi::run_coroutine_threadsafe(hop(b.loop()), a.loop()));
  EXPECT_NE(ta, here);
  EXPECT_NE(tb, here);
  EXPECT_NE(ta, tb);
  EXPECT_TRUE(back_on_a);
  EXPECT_EQ(via, tb);
  EXPECT_EQ(a.loop().thread(), a.thread());
}

QILOOP_TEST_MODES(WrapFuture, TheRemoteExceptionKeepsItsType) {
  qi::LoopThread worker;
  bool caught = false;
  try {
    co_await qi::wrap_future(qi::run_coroutine_threadsafe(throws_later(), worker.loop()));
  } catch (const Boom&) {
    caught = true;
  }
  EXPECT_TRUE(caught);
}

// asyncio's _chain_future: cancelling the awaiting task cancels the
// concurrent future, and so the remote task.
QILOOP_TEST_MODES(WrapFuture, CancellingTheAwaitingTaskCancelsTheRemoteTask) {
  qi::LoopThread worker;
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  auto started = std::make_shared<std::atomic<bool>>(false);
  auto cf = qi::run_coroutine_threadsafe(sleeps_until_cancelled(cancelled, started), worker.loop());
  auto waiter = qi::create_task(qi::wrap_future(cf));
  co_await qi::sleep(0);  // the waiter's first step: it awaits cf now
  EXPECT_TRUE(co_await eventually(*started));  // else the cancel stops the remote one before it runs
  waiter.cancel();
  bool got_cancel = false;
  try {
    co_await waiter;
  } catch (const qi::CancelledError&) {
    got_cancel = true;
  }
  EXPECT_TRUE(got_cancel);
  EXPECT_TRUE(cf.cancelled());
  EXPECT_TRUE(co_await eventually(*cancelled)) << "the remote coroutine was not cancelled";
}

QILOOP_TEST_MODES(WrapFuture, ARemoteCancellationReachesTheAwaiter) {
  qi::LoopThread worker;
  auto cancelled = std::make_shared<std::atomic<bool>>(false);
  auto cf = qi::run_coroutine_threadsafe(sleeps_until_cancelled(cancelled), worker.loop());
  qi::get_running_loop().call_later(5ms, [cf] { cf.cancel(); });
  bool got_cancel = false;
  try {
    co_await qi::wrap_future(cf);
  } catch (const qi::CancelledError&) {
    got_cancel = true;
  }
  EXPECT_TRUE(got_cancel);
  EXPECT_EQ(qi::current_task().cancelling(), 0);  // not this task's own cancellation
}

QILOOP_TEST_MODES(WrapFuture, ADoneFutureDoesNotSuspend) {
  qi::LoopThread worker;
  auto cf = qi::run_coroutine_threadsafe(answer_later(0ms, 9), worker.loop());
  std::thread([cf] { cf.result(5s); }).join();
  bool other_ran = false;
  auto other = qi::create_task([](bool& ran) -> qi::Coro<void> {
    ran = true;
    co_return;
  }(other_ran));
  int v = co_await qi::wrap_future(cf);
  EXPECT_EQ(v, 9);
  EXPECT_FALSE(other_ran);
  co_await other;
}

QILOOP_TEST_MODES(WrapFuture, AMoveOnlyResultIsMovedOut) {
  qi::LoopThread worker;
  auto cf = qi::run_coroutine_threadsafe(
      []() -> qi::Coro<std::unique_ptr<int>> {
        co_await qi::sleep(1ms);
        co_return std::make_unique<int>(5);
      }(),
      worker.loop());
  std::unique_ptr<int> p = co_await qi::wrap_future(cf);
  QILOOP_CO_ASSERT(ASSERT_TRUE(p));
  EXPECT_EQ(*p, 5);
}

// A coroutine of the same loop, awaited through its ConcurrentFuture.
QILOOP_TEST_MODES(WrapFuture, WorksOnTheSameLoopToo) {
  auto cf = qi::run_coroutine_threadsafe(answer_later(1ms, 11), qi::get_running_loop());
  EXPECT_EQ(co_await qi::wrap_future(cf), 11);
}

namespace {
qi::Coro<int> answer_now(int v) {
  co_await qi::sleep(0);
  co_return v;
}
}  // namespace

QILOOP_TEST_MODES(WrapFuture, ACancelFromAThirdThreadRacingCompletionEndsEitherWayOnce) {
  qi::LoopThread worker;
  int ok = 0, cancelled = 0;
  for (int i = 0; i < 300; ++i) {
    auto cf = qi::run_coroutine_threadsafe(answer_now(i), worker.loop());
    std::thread canceller([cf, i] {
      if (i % 3) std::this_thread::yield();
      cf.cancel();
    });
    try {
      int v = co_await qi::wrap_future(cf);
      EXPECT_EQ(v, i);
      ++ok;
    } catch (const qi::CancelledError&) {
      ++cancelled;
    }
    canceller.join();
    std::atomic<int> calls{0};
    cf.add_done_callback([&calls] { ++calls; });
    EXPECT_EQ(calls.load(), 1);
  }
  EXPECT_EQ(ok + cancelled, 300);
}

TEST(ConcurrentFuture, ADoneCallbackMayCancelAddCallbacksAndReadTheResult) {
  qi::LoopThread worker;
  auto cf = qi::run_coroutine_threadsafe(answer_later(5ms, 7), worker.loop());
  std::atomic<int> inner{0};
  std::atomic<bool> cancel_result{true};
  cf.add_done_callback([cf, &inner, &cancel_result]() mutable {
    cancel_result = cf.cancel();                       // done already: false
    cf.add_done_callback([&inner] { ++inner; });       // runs at once
    EXPECT_EQ(cf.result(), 7);                        // on the worker's loop thread, but done: no throw
  });
  EXPECT_EQ(cf.result(5s), 7);
  worker.stop();
  EXPECT_EQ(inner.load(), 1);
  EXPECT_FALSE(cancel_result.load());
}

// Stress, for ThreadSanitizer: 10,000 coroutines submitted from 4 threads to
// one loop thread, a third of them cancelled by their submitter racing the
// completion, each with a done callback, every result read with a timeout
// by its submitter and by a reader thread. Every future ends once, its
// callback runs once, and a value that arrives is the right one.
TEST(ConcurrentFuture, TenThousandSubmissionsFromFourThreadsWithRacingCancelsEndOnce) {
  constexpr int kThreads = 4;
  constexpr int kEach = 2500;
  qi::LoopThread worker;
  std::atomic<int> callbacks{0}, values{0}, cancels{0}, wrong{0};
  std::vector<std::vector<qi::ConcurrentFuture<int>>> all(kThreads);
  std::vector<std::thread> submitters;
  for (int t = 0; t < kThreads; ++t) {
    submitters.emplace_back([&, t] {
      auto& mine = all[t];
      mine.reserve(kEach);
      for (int i = 0; i < kEach; ++i) {
        const int v = t * kEach + i;
        auto cf = qi::run_coroutine_threadsafe(answer_now(v), worker.loop());
        cf.add_done_callback([&callbacks] { ++callbacks; });
        if (i % 3 == 0) cf.cancel();
        mine.push_back(cf);
      }
      for (int i = 0; i < kEach; ++i) {
        try {
          if (mine[i].result(5s) != t * kEach + i) ++wrong;
          ++values;
        } catch (const qi::CancelledError&) {
          ++cancels;
        }
      }
    });
  }
  for (auto& s : submitters) s.join();
  std::thread reader([&] {
    for (auto& mine : all)
      for (auto& cf : mine)
        if (!cf.cancelled()) (void)cf.result(5s);
  });
  reader.join();
  EXPECT_EQ(values + cancels, kThreads * kEach);
  EXPECT_GE(cancels.load(), 1);
  EXPECT_EQ(wrong.load(), 0);
  for (int i = 0; i < 5000 && callbacks < kThreads * kEach; ++i) std::this_thread::sleep_for(1ms);
  EXPECT_EQ(callbacks.load(), kThreads * kEach);
}

// wrap_future awaited by a coroutine no task runs (another library's):
// nothing could resume it on a loop when the future completes.
TEST(WrapFuture, AwaitedOutsideATaskThrowsNamingTheFix) {
  qi::ConcurrentFuture<int> cf;
  std::string error;
  {
    QiEventLoop target;  // never runs: the future stays pending until it closes
    cf = qi::run_coroutine_threadsafe([]() -> qi::Coro<int> { co_return 1; }(), target);
    outside_task::await_outside_a_task([&] { return qi::wrap_future(cf); }, error);
  }
  EXPECT_NE(error.find("co_await qi::wrap_future: no task is running"), std::string::npos) << error;
  EXPECT_NE(error.find("loop.create_task"), std::string::npos) << error;
  EXPECT_TRUE(cf.done());  // failed when its loop closed, as it never ran
}
