// The scheduler's contract, in both run modes: FIFO, next-iteration
// semantics, timer ordering, stop(), the exception handler.
#include "log_capture.h"
#include "test_util.h"

#include <QtCore/QtGlobal>

#include <functional>
#include <limits>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using qt::Log;
using qt::Mode;
using qt::Strings;

namespace {

using log_capture::LogCapture;

class EventLoopTest : public qt::ModeTest {};

TEST_P(EventLoopTest, CallSoonRunsInFifoOrder) {
  QiEventLoop loop;
  Log log;
  for (int i = 0; i < 5; ++i) loop.call_soon(log.recorder(std::to_string(i)));
  loop.call_soon([&] { loop.stop(); });
  run(loop);
  EXPECT_EQ(log.items, (Strings{"0", "1", "2", "3", "4"}));
}

TEST_P(EventLoopTest, WhatACallbackSchedulesRunsOnTheNextIteration) {
  QiEventLoop loop;
  Log log;
  loop.call_soon([&] {
    log("a");
    loop.call_soon(log.recorder("c (scheduled by a)"));
  });
  loop.call_soon(log.recorder("b"));
  loop.call_soon([&] { loop.call_soon([&] { loop.stop(); }); });
  run(loop);
  EXPECT_EQ(log.items, (Strings{"a", "b", "c (scheduled by a)"}));
}

TEST_P(EventLoopTest, ArgumentsAreCopiedAndMoveOnlyCallablesWork) {
  QiEventLoop loop;
  std::string seen;
  std::string arg = "copied";
  auto owned = std::make_unique<int>(7);
  loop.call_soon([&seen](std::string s, int n) { seen = s + ":" + std::to_string(n); }, arg, 3);
  arg = "changed after scheduling";
  int moved_value = 0;
  loop.call_soon([p = std::move(owned), &moved_value] { moved_value = *p; });
  loop.call_soon([&moved_value](std::unique_ptr<int> p) { moved_value += *p; }, std::make_unique<int>(100));
  loop.call_soon([&] { loop.stop(); });
  run(loop);
  EXPECT_EQ(seen, "copied:3");
  EXPECT_EQ(moved_value, 107);
}

TEST_P(EventLoopTest, CancelledHandleNeverRunsAndReleasesItsCapturesAtOnce) {
  QiEventLoop loop;
  Log log;
  auto token = std::make_shared<int>(1);
  std::weak_ptr<int> weak = token;
  qi::Handle h = loop.call_soon([&log, token] { log("cancelled one ran"); });
  token.reset();
  qi::TimerHandle t = loop.call_later(1ms, log.recorder("cancelled timer ran"));
  EXPECT_FALSE(h.cancelled());
  h.cancel();
  h.cancel();  // idempotent
  t.cancel();
  EXPECT_TRUE(h.cancelled());
  EXPECT_TRUE(t.cancelled());
  EXPECT_TRUE(weak.expired()) << "cancel() must drop the callback's captures";
  qi::Handle copy = h;
  EXPECT_TRUE(copy.cancelled());
  EXPECT_TRUE(copy == h);
  loop.call_later(5ms, [&] { loop.stop(); });
  run(loop);
  EXPECT_TRUE(log.items.empty());
}

TEST_P(EventLoopTest, TimersRunInDeadlineOrderAndEqualDeadlinesInSchedulingOrder) {
  QiEventLoop loop;
  Log log;
  auto t0 = loop.time() + 3ms;
  loop.call_at(t0 + 2ms, log.recorder("late"));
  loop.call_at(t0, log.recorder("tie 1"));
  loop.call_at(t0, log.recorder("tie 2"));
  loop.call_at(t0 + 1ms, log.recorder("middle"));
  loop.call_at(t0, log.recorder("tie 3"));
  loop.call_at(t0 + 3ms, [&] { loop.stop(); });
  run(loop);
  EXPECT_EQ(log.items, (Strings{"tie 1", "tie 2", "tie 3", "middle", "late"}));
}

TEST_P(EventLoopTest, TimerHandleWhenIsTheDeadlineAndTheCallbackNeverRunsBeforeIt) {
  QiEventLoop loop;
  std::vector<std::chrono::nanoseconds> early;
  int fired = 0;
  for (int i = 0; i < 30; ++i) {
    auto delay = std::chrono::microseconds(37 * i);
    auto handle = std::make_shared<qi::TimerHandle>();
    auto before = loop.time();
    *handle = loop.call_later(delay, [&, handle] {
      auto now = loop.time();
      if (now < handle->when()) early.push_back(handle->when() - now);
      if (++fired == 30) loop.stop();
    });
    // when() is time() at the call plus the delay (the upper bound only
    // guards against nonsense: a loaded machine may pause us for long).
    EXPECT_GE(handle->when() - before, delay);
    EXPECT_LE(handle->when() - before, delay + 1s);
  }
  run(loop);
  EXPECT_EQ(fired, 30);
  EXPECT_TRUE(early.empty()) << early.size() << " timers fired early";
}

TEST_P(EventLoopTest, ZeroOrNegativeDelayIsATimerDueNowAfterTheReadyCallbacks) {
  QiEventLoop loop;
  Log log;
  loop.call_later(0ms, log.recorder("timer 0"));
  loop.call_later(-5ms, log.recorder("timer -5ms"));
  loop.call_later(0.0, log.recorder("timer 0.0 s"));
  loop.call_soon(log.recorder("soon 1"));
  loop.call_soon([&] {
    log("soon 2");
    loop.call_later(0ms, [&] {
      log("timer from soon 2");
      loop.stop();  // not a timer: a loaded machine may start the loop late
    });
    loop.call_soon(log.recorder("soon 3 (from soon 2)"));
  });
  run(loop);
  // Iteration 1: ready = soon 1, soon 2 plus the due timers (moved after them),
  // ordered by deadline: -5 ms first. Iteration 2: soon 3, then the new timer.
  EXPECT_EQ(log.items, (Strings{"soon 1", "soon 2", "timer -5ms", "timer 0", "timer 0.0 s", "soon 3 (from soon 2)",
                                "timer from soon 2"}));
}

TEST_P(EventLoopTest, StopLetsTheCurrentIterationFinish) {
  QiEventLoop loop;
  Log log;
  loop.call_soon([&] {
    log("a");
    loop.stop();
    loop.call_soon(log.recorder("next iteration"));
  });
  loop.call_soon(log.recorder("b (same iteration)"));
  // Attached mode: leaving the runner drains what is still ready, so look at
  // the log when the loop reports that it stopped.
  Strings at_stop;
  QObject::connect(&loop, &QiEventLoop::stopped, [&] { at_stop = log.items; });
  run(loop);
  EXPECT_EQ(at_stop, (Strings{"a", "b (same iteration)"}));
  EXPECT_FALSE(loop.is_running());
}

TEST_P(EventLoopTest, StopBeforeRunRunsExactlyOneIteration) {
  QiEventLoop loop;
  Log log;
  loop.call_soon([&] {
    log("1");
    loop.call_soon(log.recorder("2 (second iteration)"));
  });
  loop.stop();
  auto before = loop.stats().iterations;
  Strings at_stop;
  uint64_t iterations = 0;
  QObject::connect(&loop, &QiEventLoop::stopped, [&] {
    at_stop = log.items;
    iterations = loop.stats().iterations - before;
  });
  run(loop);
  EXPECT_EQ(at_stop, (Strings{"1"}));
  EXPECT_EQ(iterations, 1u);
}

TEST_P(EventLoopTest, IsRunningAndGetRunningLoopInsideCallbacks) {
  QiEventLoop loop;
  bool running_inside = false;
  QiEventLoop* current = nullptr;
  EXPECT_FALSE(loop.is_running());
  EXPECT_THROW(qi::get_running_loop(), qi::RuntimeError);
  loop.call_soon([&] {
    running_inside = loop.is_running();
    current = &qi::get_running_loop();
    loop.stop();
  });
  run(loop);
  EXPECT_TRUE(running_inside);
  EXPECT_EQ(current, &loop);
  EXPECT_FALSE(loop.is_running());
  EXPECT_EQ(qi::running_loop(), nullptr);
}

TEST_P(EventLoopTest, ExceptionInCallbackGoesToTheHandlerAndTheLoopContinues) {
  QiEventLoop loop;
  Log log;
  std::vector<std::string> contexts;
  loop.set_exception_handler([&](QiEventLoop& l, const qi::ExceptionContext& ctx) {
    EXPECT_EQ(&l, &loop);
    std::string what;
    try {
      std::rethrow_exception(ctx.exception);
    } catch (const std::runtime_error& e) {
      what = e.what();
    } catch (const qi::CancelledError& e) {
      what = std::string("cancelled:") + e.what();
    } catch (...) {
      what = "other";
    }
    contexts.push_back(ctx.message + "|" + what + "|" + (ctx.handle ? "handle" : "no handle"));
    log("handler");
  });
  loop.call_soon([&] {
    log("throws");
    throw std::runtime_error("boom");
  });
  loop.call_soon(log.recorder("after"));
  loop.call_soon([] { throw qi::CancelledError("not a std::exception"); });
  loop.call_soon([] { throw 42; });
  loop.call_soon([&] { loop.stop(); });
  run(loop);
  EXPECT_EQ(log.items, (Strings{"throws", "handler", "after", "handler", "handler"}));
  ASSERT_EQ(contexts.size(), 3u);
  EXPECT_EQ(contexts[0], "Exception in callback|boom|handle");
  EXPECT_EQ(contexts[1], "Exception in callback|cancelled:not a std::exception|handle");
  EXPECT_EQ(contexts[2], "Exception in callback|other|handle");
}

TEST_P(EventLoopTest, AThrowingExceptionHandlerIsLoggedNotFatal) {
  QiEventLoop loop;
  int calls = 0;
  bool after = false;
  loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext&) {
    ++calls;
    throw std::logic_error("the handler itself fails");
  });
  loop.call_soon([] { throw std::runtime_error("first"); });
  loop.call_soon([&] { after = true; });
  loop.call_soon([&] { loop.stop(); });
  LogCapture log;
  run(loop);
  EXPECT_EQ(calls, 1);
  EXPECT_TRUE(after);
  // Both are logged: the handler's failure, then the report it failed to handle.
  EXPECT_TRUE(log.has("Unhandled error in exception handler: the handler itself fails")) << log.text();
  EXPECT_TRUE(log.has("Exception in callback: first")) << log.text();
  EXPECT_LT(log.text().find("the handler itself fails"), log.text().find("Exception in callback: first")) << log.text();
  loop.set_exception_handler(nullptr);
  EXPECT_FALSE(loop.get_exception_handler());
}

TEST_P(EventLoopTest, CallExceptionHandlerUsesTheDefaultWhenNoneIsSet) {
  QiEventLoop loop;
  // Must not throw or crash; logs through Qt.
  qi::ExceptionContext ctx;
  ctx.message = "custom message";
  ctx.exception = std::make_exception_ptr(std::runtime_error("x"));
  loop.call_exception_handler(ctx);
  loop.default_exception_handler(ctx);
  int got = 0;
  loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& c) {
    EXPECT_EQ(c.message, "custom message");
    ++got;
  });
  loop.call_exception_handler(ctx);
  EXPECT_EQ(got, 1);
  loop.call_soon([&] { loop.stop(); });
  run(loop);
}

TEST_P(EventLoopTest, RunUntilCompleteReturnsTheFuturesResult) {
  QiEventLoop loop;
  auto fut = loop.create_future<std::string>();
  loop.call_later(1ms, [fut] { fut.set_result("done"); });
  if (mode() == Mode::kNested) {
    EXPECT_EQ(loop.run_until_complete(fut), "done");
  } else {
    QiRunner runner(loop);
    EXPECT_THROW(loop.run_until_complete(fut), qi::RuntimeError);
  }
}

TEST(EventLoopNested, RunUntilCompleteRethrowsTheOriginalType) {
  QiEventLoop loop;
  auto fut = loop.create_future<int>();
  loop.call_soon([fut] { fut.set_exception(std::make_exception_ptr(std::out_of_range("range"))); });
  EXPECT_THROW(loop.run_until_complete(fut), std::out_of_range);
  auto cancelled = loop.create_future<void>();
  loop.call_soon([cancelled] { cancelled.cancel("why"); });
  try {
    loop.run_until_complete(cancelled);
    ADD_FAILURE() << "no exception";
  } catch (const qi::CancelledError& e) {
    EXPECT_EQ(e.message(), "why");
  }
  // The loop is reusable afterwards.
  auto again = loop.create_future<int>();
  loop.call_soon([again] { again.set_result(5); });
  EXPECT_EQ(loop.run_until_complete(again), 5);
}

// A future whose loop is gone is refused naming the destroyed loop, as
// co_await and the combinators do ("another event loop" would send the
// caller looking for a loop to run), pending or done (as asyncio refuses a
// future of another loop), before this loop runs: a completion later drops
// no callback of ours.
TEST(EventLoopNested, RunUntilCompleteOfAFutureOfADestroyedLoopNamesTheDestroyedLoop) {
  qi::Future<int> orphan;
  {
    QiEventLoop gone;
    orphan = gone.create_future<int>();
  }
  QiEventLoop loop;
  bool ran = false;
  loop.call_soon([&] { ran = true; });
  LogCapture log;
  for (bool done : {false, true}) {
    try {
      loop.run_until_complete(orphan);
      ADD_FAILURE() << "no error";
    } catch (const qi::RuntimeError& e) {
      EXPECT_EQ(
          std::string(e.what()).rfind("run_until_complete: Future belongs to an event loop that was destroyed", 0), 0u)
          << e.what();
    }
    if (!done) orphan.set_result(1);
  }
  EXPECT_EQ(log.text(), "") << "a callback was left on the future";
  EXPECT_FALSE(ran) << "the loop ran";
  EXPECT_EQ(orphan.result(), 1);
}

TEST(EventLoopNested, RunUntilCompleteStoppedEarlyThrows) {
  QiEventLoop loop;
  auto fut = loop.create_future<int>();
  loop.call_soon([&] { loop.stop(); });
  try {
    loop.run_until_complete(fut);
    ADD_FAILURE() << "no error";
  } catch (const qi::RuntimeError& e) {
    EXPECT_STREQ(e.what(), "Event loop stopped before Future completed.");
  }
  QiEventLoop other;
  auto foreign = other.create_future<int>();
  try {
    loop.run_until_complete(foreign);
    ADD_FAILURE() << "no error";
  } catch (const qi::RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("belongs to another event loop"), std::string::npos) << e.what();
  }
}

// An unbounded budget saturates instead of overflowing into the past: the
// whole batch runs in the first slice.
TEST_P(EventLoopTest, AnUnboundedSliceBudgetMeansOneSlice) {
  QiEventLoop loop;
  loop.set_slice_budget(QiEventLoop::duration::max());
  EXPECT_EQ(loop.slice_budget(), QiEventLoop::duration::max());
  int ran = 0;
  for (int i = 0; i < 100000; ++i) loop.call_soon([&] { ++ran; });
  loop.stop();
  run(loop);
  EXPECT_EQ(ran, 100000);
  EXPECT_EQ(loop.stats().slices, 1u);
}

TEST_P(EventLoopTest, SliceBudgetLetsQtEventsInterleaveWithALongChain) {
  QiEventLoop loop;
  loop.set_slice_budget(200us);
  int steps = 0;
  int qt_timer_fired_at = -1;
  std::function<void()> step = [&] {
    if (++steps == 200000) {
      loop.stop();
      return;
    }
    loop.call_soon(step);
  };
  loop.call_soon(step);
  QTimer::singleShot(0, [&] { qt_timer_fired_at = steps; });
  run(loop);
  EXPECT_EQ(steps, 200000);
  EXPECT_GE(qt_timer_fired_at, 0) << "a Qt timer must run while the chain does";
  EXPECT_LT(qt_timer_fired_at, 200000);
  EXPECT_GT(loop.stats().slices, 1u);
}

TEST_P(EventLoopTest, StoppedSignalIsEmittedOnce) {
  QiEventLoop loop;
  int emitted = 0;
  QObject::connect(&loop, &QiEventLoop::stopped, [&] { ++emitted; });
  loop.call_soon([&] { loop.stop(); });
  run(loop);
  EXPECT_EQ(emitted, 1);
}

TEST_P(EventLoopTest, AHandlerMayReplaceItselfWhileItRuns) {
  QiEventLoop loop;
  std::vector<std::string> seen;
  loop.set_exception_handler([&](QiEventLoop& l, const qi::ExceptionContext& ctx) {
    l.set_exception_handler(nullptr);  // destroys the stored handler...
    seen.push_back(ctx.message);       // ...while this copy still runs
  });
  loop.call_soon([] { throw std::runtime_error("once"); });
  loop.call_soon([&] { loop.stop(); });
  run(loop);
  EXPECT_EQ(seen, (Strings{"Exception in callback"}));
  EXPECT_FALSE(loop.get_exception_handler());
}

TEST_P(EventLoopTest, HugeDelaysMeanNeverAndHugeNegativeOnesMeanNow) {
  QiEventLoop loop;
  Log log;
  using namespace std::chrono;
  loop.call_later(seconds::max(), log.recorder("seconds::max"));
  loop.call_later(nanoseconds::max(), log.recorder("nanoseconds::max"));
  loop.call_later(hours(24 * 365 * 1000), log.recorder("a millennium"));
  loop.call_later(1e300, log.recorder("1e300 s"));
  loop.call_at(time_point<steady_clock, seconds>::max(), log.recorder("time_point max"));
  qi::TimerHandle t = loop.call_later(seconds::max(), [] {});
  EXPECT_EQ(t.when(), QiEventLoop::time_point::max());
  loop.call_later(seconds::min(), log.recorder("seconds::min"));
  loop.call_later(-1e300, log.recorder("-1e300 s"));
  loop.call_later(5ms, [&] { loop.stop(); });
  run(loop);
  EXPECT_EQ(log.items, (Strings{"seconds::min", "-1e300 s"}));
}

// One deadline helper serves call_later and call_at (and qi::sleep,
// task_test.cpp): NaN is refused naming the call, infinities and what
// steady_clock cannot hold saturate, whole-nanosecond delays stay exact.
TEST(EventLoopDeadlines, CallLaterRefusesNaNAndSaturatesInfiniteOrHugeDelays) {
  QiEventLoop loop;
  using namespace std::chrono;
  using time_point = QiEventLoop::time_point;
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (auto call : std::vector<std::function<void()>>{
           [&] { loop.call_later(nan, [] {}); },
           [&] { loop.call_later(duration<float, std::milli>(nan), [] {}); }}) {
    try {
      call();
      ADD_FAILURE() << "a NaN delay was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("call_later: the delay is NaN"), std::string::npos) << e.what();
    }
  }
  EXPECT_EQ(loop.call_later(inf, [] {}).when(), time_point::max());
  EXPECT_EQ(loop.call_later(duration<double, std::milli>(inf), [] {}).when(), time_point::max());
  EXPECT_EQ(loop.call_later(QiEventLoop::duration::max(), [] {}).when(), time_point::max());
  EXPECT_EQ(loop.call_later(hours::max(), [] {}).when(), time_point::max());
  EXPECT_EQ(loop.call_later(1e300, [] {}).when(), time_point::max());
  // A delay that a double cannot hold to the nanosecond.
  const nanoseconds odd((int64_t{1} << 53) + 1);
  const time_point before = loop.time();
  const time_point when = loop.call_later(odd, [] {}).when();
  const time_point after = loop.time();
  EXPECT_GE(when - before, odd);
  EXPECT_LE(when - after, odd);
  loop.close();
}

TEST_P(EventLoopTest, CallLaterOfANegativeOrMinusInfiniteDelayIsDueNow) {
  QiEventLoop loop;
  Log log;
  using namespace std::chrono;
  const auto now = loop.time();
  EXPECT_LE(loop.call_later(-std::numeric_limits<double>::infinity(), log.recorder("-inf")).when(), now);
  EXPECT_LE(loop.call_later(QiEventLoop::duration::min(), log.recorder("duration::min")).when(), now);
  EXPECT_LE(loop.call_later(-1h, log.recorder("-1h")).when(), now);
  loop.call_later(5ms, [&] { loop.stop(); });
  run(loop);
  EXPECT_EQ(log.items, (Strings{"-inf", "duration::min", "-1h"}));
}

TEST_P(EventLoopTest, CallAtRefusesNaNAndSaturatesTimesBeyondTheClock) {
  QiEventLoop loop;
  Log log;
  using namespace std::chrono;
  using time_point = QiEventLoop::time_point;
  using DoubleTime = std::chrono::time_point<steady_clock, duration<double>>;
  const double inf = std::numeric_limits<double>::infinity();
  try {
    loop.call_at(DoubleTime(duration<double>(std::numeric_limits<double>::quiet_NaN())), [] {});
    ADD_FAILURE() << "a NaN time was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("call_at: the time is NaN"), std::string::npos) << e.what();
  }
  EXPECT_EQ(loop.call_at(DoubleTime(duration<double>(inf)), log.recorder("+inf")).when(), time_point::max());
  EXPECT_EQ(loop.call_at(std::chrono::time_point<steady_clock, hours>::max(), log.recorder("hours")).when(),
            time_point::max());
  EXPECT_EQ(loop.call_at(time_point::max(), log.recorder("max")).when(), time_point::max());
  EXPECT_EQ(loop.call_at(DoubleTime(duration<double>(-inf)), log.recorder("-inf")).when(), time_point::min());
  EXPECT_EQ(loop.call_at(std::chrono::time_point<steady_clock, hours>::min(), log.recorder("hours::min")).when(),
            time_point::min());
  EXPECT_EQ(loop.call_at(time_point::min(), log.recorder("min")).when(), time_point::min());
  loop.call_later(5ms, [&] { loop.stop(); });
  run(loop);
  EXPECT_EQ(log.items, (Strings{"-inf", "hours::min", "min"}));
}

TEST_P(EventLoopTest, StoppedIsEmittedOutsideTheLoopsCallbacks) {
  // A stopped() slot is application code, not a loop callback: it may, for
  // instance, destroy the runner in attached mode.
  QiEventLoop loop;
  bool running_loop_in_slot = true;
  QObject::connect(&loop, &QiEventLoop::stopped, [&] { running_loop_in_slot = qi::running_loop() == &loop; });
  loop.call_soon([&] { loop.stop(); });
  run(loop);
  EXPECT_FALSE(running_loop_in_slot);
}

INSTANTIATE_TEST_SUITE_P(Modes, EventLoopTest, testing::Values(Mode::kNested, Mode::kAttached), qt::mode_name);

TEST(EventLoopAttached, AStoppedSlotMayDestroyTheRunner) {
  QiEventLoop loop;
  auto runner = std::make_unique<QiRunner>(loop);
  QObject::connect(&loop, &QiEventLoop::stopped, [&] {
    runner.reset();
    QCoreApplication::exit(0);
  });
  loop.call_soon([&] { loop.stop(); });
  QCoreApplication::exec();
  EXPECT_EQ(runner, nullptr);
  EXPECT_TRUE(loop.is_closed());
}

// An owning runner destroyed from stopped() takes its loop with it, inside
// the loop's own event handler: nothing may touch the loop after the signal.
TEST(EventLoopAttached, AStoppedSlotMayDestroyAnOwningRunner) {
  auto runner = std::make_unique<QiRunner>();
  bool destroyed = false;
  QObject::connect(&runner->loop(), &QObject::destroyed, [&] { destroyed = true; });
  QObject::connect(&runner->loop(), &QiEventLoop::stopped, [&] {
    runner.reset();
    QCoreApplication::exit(0);
  });
  runner->loop().call_soon([&] { runner->loop().stop(); });
  QTimer guard;
  QObject::connect(&guard, &QTimer::timeout, [] { QCoreApplication::exit(1); });
  guard.start(2s);
  EXPECT_EQ(QCoreApplication::exec(), 0);
  EXPECT_TRUE(destroyed);
}

// Leaving a runner of a loop that still runs emits stopped() last, once the
// loop is closed: a slot may then destroy the (borrowed) loop.
TEST(EventLoopAttached, AStoppedSlotMayDestroyTheLoopWhenTheRunnerGoes) {
  auto* loop = new QiEventLoop;
  bool destroyed = false;
  bool closed_in_slot = false;
  QObject::connect(loop, &QObject::destroyed, [&] { destroyed = true; });
  QObject::connect(loop, &QiEventLoop::stopped, [&] {
    closed_in_slot = loop->is_closed();
    delete loop;
  });
  {
    QiRunner runner(*loop);
    loop->create_task([]() -> qi::Coro<void> { co_await qi::sleep(10s); }());
    loop->call_soon([] { QCoreApplication::exit(0); });
    QCoreApplication::exec();
  }
  EXPECT_TRUE(destroyed);
  EXPECT_TRUE(closed_in_slot);
}

TEST(EventLoopAttached, RunUntilCompleteOfADoneFutureThrowsAndLeavesTheLoopAlone) {
  QiEventLoop loop;
  QiRunner runner(loop);
  auto done = loop.create_future<int>();
  done.set_result(1);
  EXPECT_THROW(loop.run_until_complete(done), qi::RuntimeError);
  // The failed call must not have scheduled a stop().
  int ticks = 0;
  loop.call_soon([&] { ++ticks; });
  loop.call_soon([&] { loop.call_soon([&] { ++ticks; QCoreApplication::exit(0); }); });
  QCoreApplication::exec();
  EXPECT_EQ(ticks, 2);
  EXPECT_TRUE(loop.is_running());
}

TEST(EventLoopNested, RunUntilCompleteLeavesTheFuturesValueForItsOtherHandles) {
  QiEventLoop loop;
  auto f = loop.create_future<std::string>();
  loop.call_soon([f] { f.set_result("kept"); });
  EXPECT_EQ(loop.run_until_complete(f), "kept");
  EXPECT_EQ(f.result(), "kept");
}

TEST(EventLoopNested, IsRunningUntilRunForeverReturns) {
  // As asyncio's: stop() ends the loop at the iteration's end, but it is
  // still running until run_forever() returns.
  QiEventLoop loop;
  bool running_after_stop_iteration = false;
  loop.call_soon([&] {
    loop.stop();
    QTimer::singleShot(0, &loop, [&] { running_after_stop_iteration = loop.is_running(); });
  });
  loop.run_forever();
  EXPECT_FALSE(loop.is_running());
  // The Qt timer ran either inside the exiting QEventLoop (running) or not at
  // all before exec() returned; either way nothing threw.
  (void)running_after_stop_iteration;
}

// A stopped() slot may destroy the loop: run_forever touches nothing of it
// after the signal (run under ASan).
TEST(EventLoopNested, AStoppedSlotMayDestroyTheLoop) {
  auto* loop = new QiEventLoop;
  bool destroyed = false;
  QObject::connect(loop, &QObject::destroyed, [&] { destroyed = true; });
  QObject::connect(loop, &QiEventLoop::stopped, [&] { delete loop; });
  loop->call_soon([&] { loop->stop(); });
  loop->run_forever();
  EXPECT_TRUE(destroyed);
}

TEST(EventLoopNested, AStoppedSlotMayDestroyTheLoopInRunUntilComplete) {
  auto* loop = new QiEventLoop;
  bool destroyed = false;
  QObject::connect(loop, &QObject::destroyed, [&] { destroyed = true; });
  QObject::connect(loop, &QiEventLoop::stopped, [&] { delete loop; });
  auto f = loop->create_future<int>();
  loop->call_soon([f] { f.set_result(5); });
  EXPECT_EQ(loop->run_until_complete(f), 5);
  EXPECT_TRUE(destroyed);
}

TEST(EventLoopNested, QtEndingTheLoopIsAnErrorNamingStop) {
  QiEventLoop loop;
  loop.call_soon([] { QCoreApplication::exit(0); });
  try {
    loop.run_forever();
    ADD_FAILURE() << "run_forever ended by Qt must throw";
  } catch (const qi::RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("Call loop.stop()"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(loop.is_running());
  // QCoreApplication::exec() resets Qt's quit state; the loop runs again.
  QTimer::singleShot(0, [] { QCoreApplication::exit(0); });
  QCoreApplication::exec();
  int ran = 0;
  loop.call_soon([&] {
    ++ran;
    loop.stop();
  });
  loop.run_forever();
  EXPECT_EQ(ran, 1);
}

TEST(EventLoopNested, CloseSurvivesACaptureThatCancelsItsOwnHandle) {
  // The usual self-referencing timeout: the capture owns the handle.
  struct Owner {
    qi::TimerHandle timer;
    qi::Handle soon;
    ~Owner() {
      timer.cancel();
      soon.cancel();
    }
  };
  QiEventLoop loop;
  auto owner = std::make_shared<Owner>();
  owner->timer = loop.call_later(5s, [owner] {});
  owner->soon = loop.call_soon([owner] {});
  owner.reset();
  loop.close();  // destroys both callables: each cancels its own handle
  SUCCEED();
}

TEST(EventLoopNested, CloseDestroysPendingCallbacksAndIgnoresSchedulingFromTheirDestructors) {
  QiEventLoop loop;
  struct Reschedules {
    QiEventLoop* loop;
    int* destroyed;
    Reschedules(QiEventLoop* l, int* d) : loop(l), destroyed(d) {}
    Reschedules(Reschedules&& o) noexcept : loop(std::exchange(o.loop, nullptr)), destroyed(o.destroyed) {}
    ~Reschedules() {
      if (!loop) return;
      ++*destroyed;
      loop->call_soon([] {});
      loop->call_later(1ms, [] {});
      loop->call_soon_threadsafe([] {});
    }
    void operator()() {}
  };
  int destroyed = 0;
  loop.call_soon(Reschedules(&loop, &destroyed));
  loop.call_later(1s, Reschedules(&loop, &destroyed));
  loop.call_soon_threadsafe(Reschedules(&loop, &destroyed));
  qi::Handle kept = loop.call_soon([] {});
  loop.close();
  EXPECT_EQ(destroyed, 3);
  EXPECT_TRUE(loop.is_closed());
  loop.close();  // idempotent
  EXPECT_THROW(loop.call_soon([] {}), qi::RuntimeError);
  kept.cancel();  // a handle outlives the close
}

TEST(EventLoopNested, HandlesOutliveTheirLoop) {
  qi::Handle h;
  qi::TimerHandle t;
  {
    QiEventLoop loop;
    h = loop.call_soon([] {});
    t = loop.call_later(10ms, [] {});
  }
  h.cancel();
  t.cancel();
  EXPECT_TRUE(t.cancelled());
}

TEST(EventLoopNested, RunForeverAgainAfterStop) {
  QiEventLoop loop;
  int runs = 0;
  for (int i = 0; i < 3; ++i) {
    loop.call_soon([&] {
      ++runs;
      loop.stop();
    });
    loop.run_forever();
  }
  EXPECT_EQ(runs, 3);
}

TEST(EventLoopNested, ManyTimersWithCancellationFireInOrder) {
  QiEventLoop loop;
  std::vector<int> fired;
  std::vector<qi::TimerHandle> handles;
  auto base = loop.time() + 2ms;
  for (int i = 0; i < 2000; ++i) handles.push_back(loop.call_at(base + std::chrono::microseconds(i % 500), [&fired, i] { fired.push_back(i); }));
  for (int i = 0; i < 2000; i += 2) handles[i].cancel();
  loop.call_at(base + 1ms, [&] { loop.stop(); });
  loop.run_forever();
  ASSERT_EQ(fired.size(), 1000u);
  for (std::size_t k = 1; k < fired.size(); ++k) {
    int a = fired[k - 1], b = fired[k];
    EXPECT_TRUE(a % 500 < b % 500 || (a % 500 == b % 500 && a < b)) << a << " before " << b;
    EXPECT_EQ(b % 2, 1);
  }
}

}  // namespace
