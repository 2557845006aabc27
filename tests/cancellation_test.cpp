// Cancellation as asyncio 3.11+ has it, in both run modes: where a cancel
// request lands for each kind of suspension point, what the coroutine sees
// there (qi::CancelledError carrying cancel(msg)'s message), and how the task
// ends when its coroutine lets the error through or swallows it.
#include "test_util.h"

#include <chrono>
#include <exception>
#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using qt::Log;
using qt::Mode;
using qt::Strings;

namespace {

// As asyncio's CancelledError is a BaseException: generic handlers written
// for errors must not swallow cancellation.
static_assert(!std::is_base_of_v<std::exception, qi::CancelledError>);

// How a future ended, as text, so that tests compare outcomes exactly.
template <class T>
std::string outcome(const qi::Future<T>& f) {
  if (!f.done()) return "pending";
  try {
    f.result();
    return "finished";
  } catch (const qi::CancelledError& e) {
    return "cancelled: " + e.message();
  } catch (const std::exception& e) {
    return std::string("failed: ") + e.what();
  }
}

// The task under test: suspends in whatever `suspend()` returns, and logs
// how it came back.
template <class Suspend>
qi::Coro<void> victim(Log& log, std::string name, Suspend suspend) {
  log(name + " suspends");
  try {
    co_await suspend();
    log(name + " resumed normally");
  } catch (const qi::CancelledError& e) {
    log(name + " caught: " + e.message());
    throw;
  }
}

// The log of a victim cancelled with `msg` by cancel_then_await: the error
// reaches the victim first, then its awaiter.
Strings cancelled_victim(const std::string& msg) {
  return {"victim suspends", "main cancels", "victim caught: " + msg, "main sees: " + msg};
}

// The test's main task. Created after the victim, so it runs right after the
// victim's first step, in the same iteration: the victim is then suspended at
// its first suspension point.
template <class T>
qi::Coro<void> cancel_then_await(Log& log, qi::Future<T> victim, std::function<void()> cancel) {
  log("main cancels");
  cancel();
  try {
    co_await victim;
    log("main: victim finished");
  } catch (const qi::CancelledError& e) {
    log("main sees: " + e.message());
  }
}

// Suspends `depth` coroutines deep, each logging the cancellation on its way out.
qi::Coro<void> nested(Log& log, int depth, qi::Future<void> fut) {
  try {
    if (depth == 0)
      co_await fut;
    else
      co_await nested(log, depth - 1, fut);
  } catch (const qi::CancelledError& e) {
    log("level " + std::to_string(depth) + " caught: " + e.message());
    throw;
  }
}

// Swallows the first cancellation, then awaits once more.
qi::Coro<int> swallow(Log& log, qi::Future<void> fut) {
  log("victim suspends");
  try {
    co_await fut;
  } catch (const qi::CancelledError& e) {
    log("swallowed: " + e.message());
  }
  co_await qi::sleep(0);
  log("yielded again");
  co_return 42;
}

qi::Coro<void> catch_std_exception_only(Log& log, qi::Future<void> fut) {
  try {
    co_await fut;
  } catch (const std::exception& e) {
    log(std::string("std::exception handler caught: ") + e.what());
  }
}

qi::Coro<void> cancel_self(Log& log, qi::Task<void>* self) {
  log("cancels itself");
  EXPECT_TRUE(self->cancel("self"));
  log("runs on until it suspends");
  try {
    co_await qi::sleep(0);
    log("resumed normally");
  } catch (const qi::CancelledError& e) {
    log("caught at its next suspension: " + e.message());
    throw;
  }
}

qi::Coro<void> cancel_self_then_await_done(Log& log, qi::Task<void>* self, qi::Future<int> ready) {
  EXPECT_TRUE(self->cancel("self"));
  int v = co_await ready;
  log("the done future gave " + std::to_string(v));
  try {
    co_await qi::sleep(0);
    log("resumed normally");
  } catch (const qi::CancelledError& e) {
    log("caught at sleep(0): " + e.message());
    throw;
  }
}

class CancellationTest : public qt::ModeTest {
 protected:
  CancellationTest() {
    // Reports land in the log, so that an unexpected one fails the exact
    // comparisons.
    loop_.set_exception_handler(
        [this](QiEventLoop&, const qi::ExceptionContext& ctx) { log_("report: " + ctx.message); });
  }

  // Runs the loop in this test's mode until `task` is done.
  template <class T>
  void run_until_done(const qi::Task<T>& task) {
    task.add_done_callback([this] { loop_.stop(); });
    run(loop_);
    EXPECT_TRUE(task.done());
  }

  // Runs cancel_then_await(victim, cancel) as the main task.
  template <class T>
  void cancel_from_main(const qi::Task<T>& victim, std::function<void()> cancel) {
    run_until_done(loop_.create_task(cancel_then_await<T>(log_, victim, std::move(cancel)), "main"));
  }

  // A victim task that will suspend in `suspend()`.
  template <class Suspend>
  qi::Task<void> start_victim(Suspend suspend, const std::string& name = "victim") {
    return loop_.create_task(victim(log_, name, std::move(suspend)), name);
  }
  template <class T>
  qi::Task<void> victim_awaiting(const qi::Future<T>& fut, const std::string& name = "victim") {
    return start_victim([fut] { return fut; }, name);
  }

  // The common case: a victim suspended in `suspend()` is cancelled with
  // `msg` by main, which then awaits it.
  template <class Suspend>
  qi::Task<void> cancel_victim(Suspend suspend, const std::string& msg = "stop now") {
    qi::Task<void> v = start_victim(std::move(suspend));
    cancel_from_main(v, [v, msg] { EXPECT_TRUE(v.cancel(msg)); });
    return v;
  }

  // cancel(victim, msg) through some handle must cancel the task itself:
  // its coroutine hears of it at its co_await, and the future it awaited is
  // cancelled in turn.
  void expect_cancels_the_task(std::function<bool(const qi::Task<void>&, const std::string&)> cancel) {
    auto fut = loop_.create_future<void>();
    qi::Task<void> v = victim_awaiting(fut);
    cancel_from_main(v, [v, cancel] { EXPECT_TRUE(cancel(v, "through a handle")); });
    EXPECT_EQ(log_.items, cancelled_victim("through a handle"));
    EXPECT_EQ(outcome(fut), "cancelled: through a handle");
    EXPECT_EQ(v.cancelling(), 1);
  }

  Log log_;
  QiEventLoop loop_;
};

TEST_P(CancellationTest, AtAFutureCancelsThatFutureAndThrowsAtTheAwaitWithTheMessage) {
  auto fut = loop_.create_future<int>();
  qi::Task<void> v = cancel_victim([fut] { return fut; });
  EXPECT_EQ(log_.items, cancelled_victim("stop now"));
  EXPECT_EQ(outcome(fut), "cancelled: stop now");
  EXPECT_EQ(outcome(v), "cancelled: stop now");
  EXPECT_TRUE(v.cancelled());
}

TEST_P(CancellationTest, AtASleepWakesTheTaskAtOnceNotWhenItsTimerWouldFire) {
  const auto start = std::chrono::steady_clock::now();
  qi::Task<void> v = cancel_victim([] { return qi::sleep(30s); });
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_EQ(log_.items, cancelled_victim("stop now"));
  EXPECT_EQ(outcome(v), "cancelled: stop now");
}

TEST_P(CancellationTest, AtSleepZeroLandsWhenTheTaskResumes) {
  qi::Task<void> v = cancel_victim([] { return qi::sleep(0); });
  EXPECT_EQ(log_.items, cancelled_victim("stop now"));
  EXPECT_EQ(outcome(v), "cancelled: stop now");
}

TEST_P(CancellationTest, InANestedCoroThrowsAtTheInnermostAwaitAndUnwindsThroughEveryParent) {
  auto fut = loop_.create_future<void>();
  qi::Task<void> v = cancel_victim([this, fut] { return nested(log_, 2, fut); });
  EXPECT_EQ(log_.items, (Strings{"victim suspends", "main cancels", "level 0 caught: stop now",
                                 "level 1 caught: stop now", "level 2 caught: stop now", "victim caught: stop now",
                                 "main sees: stop now"}));
  EXPECT_EQ(outcome(fut), "cancelled: stop now");
  EXPECT_EQ(outcome(v), "cancelled: stop now");
}

// asyncio: cancelling a task that awaits another task cancels the awaited
// one too; the error then travels back up to the awaiter.
TEST_P(CancellationTest, OfATaskAwaitingAnotherTaskCancelsTheAwaitedTaskToo) {
  auto fut = loop_.create_future<void>();
  qi::Task<void> inner = victim_awaiting(fut, "inner");
  qi::Task<void> v = cancel_victim([inner] { return inner; });
  EXPECT_EQ(log_.items, (Strings{"inner suspends", "victim suspends", "main cancels", "inner caught: stop now",
                                 "victim caught: stop now", "main sees: stop now"}));
  EXPECT_EQ(outcome(fut), "cancelled: stop now");
  EXPECT_EQ(outcome(inner), "cancelled: stop now");
  EXPECT_EQ(outcome(v), "cancelled: stop now");
}

// The other direction: the awaiter was never cancelled itself
// (cancelling() == 0), but the error it did not catch ends it as cancelled.
TEST_P(CancellationTest, OfAnAwaitedTaskPropagatesToItsAwaiter) {
  auto fut = loop_.create_future<void>();
  qi::Task<void> inner = victim_awaiting(fut, "inner");
  qi::Task<void> v = start_victim([inner] { return inner; });
  cancel_from_main(v, [inner] { EXPECT_TRUE(inner.cancel("inner only")); });
  EXPECT_EQ(log_.items, (Strings{"inner suspends", "victim suspends", "main cancels", "inner caught: inner only",
                                 "victim caught: inner only", "main sees: inner only"}));
  EXPECT_EQ(outcome(v), "cancelled: inner only");
  EXPECT_EQ(v.cancelling(), 0);
}

TEST_P(CancellationTest, BeforeTheFirstStepTheBodyNeverRunsAndTheTaskIsCancelled) {
  qi::Task<void> v = start_victim([] { return qi::sleep(0); });
  EXPECT_TRUE(v.cancel("too early"));
  EXPECT_FALSE(v.done()) << "cancel() only requests; the task ends on its step";
  v.add_done_callback([this](qi::Future<void> f) { log_("done: " + outcome(f)); });
  run_until_done(v);
  EXPECT_EQ(log_.items, (Strings{"done: cancelled: too early"}));
  EXPECT_EQ(v.cancelling(), 1);
}

TEST_P(CancellationTest, FromInsideTheTaskItselfLandsAtItsNextSuspension) {
  qi::Task<void> self;
  self = loop_.create_task(cancel_self(log_, &self), "self");
  run_until_done(self);
  EXPECT_EQ(log_.items, (Strings{"cancels itself", "runs on until it suspends", "caught at its next suspension: self"}));
  EXPECT_EQ(outcome(self), "cancelled: self");
}

// asyncio's `await fut` on a done future returns without yielding to the
// loop, so a pending cancel request waits for the next real suspension.
TEST_P(CancellationTest, AwaitingADoneFutureIsNotASuspensionSoAPendingCancelWaitsForTheNextOne) {
  auto ready = loop_.create_future<int>();
  ready.set_result(7);
  qi::Task<void> self;
  self = loop_.create_task(cancel_self_then_await_done(log_, &self, ready), "self");
  run_until_done(self);
  EXPECT_EQ(log_.items, (Strings{"the done future gave 7", "caught at sleep(0): self"}));
  EXPECT_EQ(outcome(self), "cancelled: self");
}

TEST_P(CancellationTest, ACoroutineThatSwallowsItFinishesWithItsResultAndTheTaskIsNotCancelled) {
  auto fut = loop_.create_future<void>();
  qi::Task<int> v = loop_.create_task(swallow(log_, fut), "victim");
  cancel_from_main(v, [v] { EXPECT_TRUE(v.cancel("stop now")); });
  EXPECT_EQ(log_.items,
            (Strings{"victim suspends", "main cancels", "swallowed: stop now", "yielded again", "main: victim finished"}));
  EXPECT_FALSE(v.cancelled());
  EXPECT_EQ(v.result(), 42);
  EXPECT_EQ(v.cancelling(), 1) << "the request still counts";
  EXPECT_EQ(v.uncancel(), 0);
  EXPECT_EQ(v.cancelling(), 0);
}

// asyncio: every request while pending returns true and counts; the task
// sees one CancelledError, the one its awaited future was cancelled with
// (the first request's message); cancel() on a done task returns false.
TEST_P(CancellationTest, CancelTwiceReturnsTrueBothTimesCountsBothAndDeliversOneError) {
  auto fut = loop_.create_future<void>();
  qi::Task<int> v = loop_.create_task(swallow(log_, fut), "victim");
  cancel_from_main(v, [v] {
    EXPECT_TRUE(v.cancel("first"));
    EXPECT_TRUE(v.cancel("second"));
    EXPECT_EQ(v.cancelling(), 2);
  });
  EXPECT_EQ(log_.items,
            (Strings{"victim suspends", "main cancels", "swallowed: first", "yielded again", "main: victim finished"}));
  EXPECT_EQ(v.result(), 42);
  EXPECT_FALSE(v.cancel("after the end"));
  EXPECT_EQ(v.cancelling(), 2) << "a refused request does not count";
  EXPECT_EQ(v.uncancel(), 1);
  EXPECT_EQ(v.uncancel(), 0);
}

// The future the task awaited completed, so its wake-up is already queued
// when the request comes: the request cannot cancel the future and lands at
// the resumption instead (asyncio's _must_cancel).
TEST_P(CancellationTest, AfterTheAwaitedFutureCompletedLandsAtTheResumption) {
  auto fut = loop_.create_future<int>();
  qi::Task<void> v = victim_awaiting(fut);
  cancel_from_main(v, [v, fut] {
    fut.set_result(1);
    EXPECT_TRUE(v.cancel("late"));
  });
  EXPECT_EQ(log_.items, cancelled_victim("late"));
  EXPECT_EQ(outcome(fut), "finished");
  EXPECT_EQ(outcome(v), "cancelled: late");
}

// Taking the request back before the task resumes does not make a cancelled
// sleep return early: the sleep was cut short, so the task must hear of it
// (asyncio: the sleep's future is cancelled; uncancel() cannot undo that).
TEST_P(CancellationTest, UncancelAfterCancellingASleepDoesNotTurnItIntoAnEarlyReturn) {
  qi::Task<void> v = start_victim([] { return qi::sleep(30s); });
  const auto start = std::chrono::steady_clock::now();
  cancel_from_main(v, [v] {
    EXPECT_TRUE(v.cancel("stop now"));
    EXPECT_EQ(v.uncancel(), 0);
  });
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  EXPECT_EQ(log_.items, cancelled_victim("stop now"));
}

TEST_P(CancellationTest, CatchingStdExceptionDoesNotCatchIt) {
  auto fut = loop_.create_future<void>();
  qi::Task<void> v = cancel_victim([this, fut] { return catch_std_exception_only(log_, fut); });
  EXPECT_EQ(log_.items, cancelled_victim("stop now"));
  EXPECT_TRUE(v.cancelled());
}

// cancel() is virtual: a Future<T> copy or a TaskRef of a task reaches the
// task's own cancel(), not just its result slot.
TEST_P(CancellationTest, ThroughAFutureCopyCancelsTheTask) {
  expect_cancels_the_task([](const qi::Task<void>& v, const std::string& msg) {
    qi::Future<void> as_future = v;
    return as_future.cancel(msg);
  });
}

TEST_P(CancellationTest, ThroughATaskRefCancelsTheTask) {
  expect_cancels_the_task(
      [](const qi::Task<void>& v, const std::string& msg) { return v.ref().state()->cancel(msg); });
}

TEST_P(CancellationTest, DoneCallbacksOfACancelledTaskRunInOrderAndResultThrowsWithTheMessage) {
  auto fut = loop_.create_future<void>();
  qi::Task<void> v = victim_awaiting(fut);
  v.add_done_callback([this](qi::Future<void> f) { log_("callback 1: " + outcome(f)); });
  v.add_done_callback([this] { log_("callback 2"); });
  cancel_from_main(v, [v] { EXPECT_TRUE(v.cancel("stop now")); });
  EXPECT_EQ(log_.items, (Strings{"victim suspends", "main cancels", "victim caught: stop now",
                                 "callback 1: cancelled: stop now", "callback 2", "main sees: stop now"}));
  try {
    v.exception();
    ADD_FAILURE() << "exception() of a cancelled task must throw";
  } catch (const qi::CancelledError& e) {
    EXPECT_EQ(e.message(), "stop now");
  }
}

// Tasks awaiting each other are a deadlock asyncio lets one write. A cancel
// request goes round the cycle once: each task counts it, nobody wakes (what
// would wake them is each other), a second request stops at the task the
// first one already reached, and shutdown reports both and ends. It used to
// recurse between the two until the stack overflowed.
TEST_P(CancellationTest, OfTasksAwaitingEachOtherReachesEachOnceAndShutdownReportsTheDeadlock) {
  qi::Task<void> a, b;
  a = start_victim([&b] { return b; }, "a");
  b = start_victim([&a] { return a; }, "b");
  auto main = [&]() -> qi::Coro<void> {
    log_("main cancels");
    EXPECT_TRUE(a.cancel("cycle"));
    EXPECT_EQ(a.cancelling(), 1);
    EXPECT_EQ(b.cancelling(), 1);
    EXPECT_TRUE(b.cancel("again"));
    EXPECT_EQ(a.cancelling(), 1);
    EXPECT_EQ(b.cancelling(), 2);
    co_await qi::sleep(20ms);
    log_("main returns");
  };
  const auto start = std::chrono::steady_clock::now();
  run_until_done(loop_.create_task(main(), "main"));
  if (mode() == Mode::kNested) {
    EXPECT_FALSE(a.done());
    EXPECT_FALSE(b.done());
    loop_.shutdown();  // what qi::run does; attached mode's runner did it
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  const std::string refused = " did not finish after being cancelled at shutdown";
  EXPECT_EQ(log_.items, (Strings{"a suspends", "b suspends", "main cancels", "main returns",
                                 "report: Task 'b'" + refused, "report: Task 'a'" + refused,
                                 "report: Task was destroyed but it is pending!",
                                 "report: Task was destroyed but it is pending!"}));
  EXPECT_EQ(outcome(a), "cancelled: the event loop was closed");
  EXPECT_EQ(outcome(b), "cancelled: the event loop was closed");
}

// A request stops at an awaited task that a request already reached since it
// last ran (what cuts cycles and keeps chains linear), but it is not lost: if
// that task swallows its own cancellation and returns, the awaiter still
// gets its CancelledError when it resumes.
TEST_P(CancellationTest, StoppingAtAnAwaitedTaskAlreadyBeingCancelledStillReachesTheAwaiter) {
  auto fut = loop_.create_future<void>();
  qi::Task<int> inner = loop_.create_task(swallow(log_, fut), "inner");
  qi::Task<void> outer = start_victim([inner] { return inner; }, "outer");
  cancel_from_main(outer, [inner, outer] {
    EXPECT_TRUE(inner.cancel("inner first"));
    EXPECT_TRUE(outer.cancel("outer"));
    EXPECT_EQ(inner.cancelling(), 1) << "not cancelled again";
    EXPECT_EQ(outer.cancelling(), 1);
  });
  EXPECT_EQ(log_.items, (Strings{"victim suspends", "outer suspends", "main cancels", "swallowed: inner first",
                                 "yielded again", "outer caught: outer", "main sees: outer"}));
  EXPECT_EQ(inner.result(), 42);
  EXPECT_EQ(outcome(outer), "cancelled: outer");
}

qi::Coro<void> await_link(qi::Task<void> next) { co_await next; }
qi::Coro<void> await_end(qi::Future<void> fut) { co_await fut; }

// Each task awaits the next; the last awaits a future. Cancelling the head
// reaches the future through every task, then the error travels back up one
// wake-up at a time. The request used to recurse once per task (SIGSEGV).
TEST_P(CancellationTest, OfTheHeadOfAHundredThousandTaskChainReachesItsEndWithoutRecursion) {
  constexpr int kTasks = 100'000;
  auto fut = loop_.create_future<void>();
  std::vector<qi::Task<void>> chain;
  chain.reserve(kTasks);
  chain.push_back(loop_.create_task(await_end(fut)));
  for (int i = 1; i < kTasks; ++i) chain.push_back(loop_.create_task(await_link(chain.back())));
  cancel_from_main(chain.back(), [head = chain.back()] { EXPECT_TRUE(head.cancel("chain")); });
  EXPECT_EQ(log_.items, (Strings{"main cancels", "main sees: chain"}));
  EXPECT_EQ(outcome(fut), "cancelled: chain");
  int wrong = 0;
  for (const qi::Task<void>& t : chain) wrong += outcome(t) != "cancelled: chain" || t.cancelling() != 1;
  EXPECT_EQ(wrong, 0);
}

// Swallows its first cancellation and takes it back with uncancel() (what a
// timeout helper does when the deadline was its own), then awaits again.
qi::Coro<void> take_back_then_await(Log& log, qi::Task<void>* self, qi::Future<void> first, qi::Future<void> next) {
  try {
    co_await first;
  } catch (const qi::CancelledError& e) {
    log("inner took back: " + e.message() + ", left " + std::to_string(self->uncancel()));
  }
  try {
    co_await next;
    log("inner resumed normally");
  } catch (const qi::CancelledError& e) {
    log("inner caught: " + e.message());
    throw;
  }
}

// A request that stopped at an awaited task whose own cancellation was in
// flight still counts there (as asyncio's inner cancel() would): when that
// task takes its own request back with uncancel() and awaits again, the
// stopped one lands at that await. It used to be dropped: the awaiter,
// cancelled, stayed pending until the awaited task finished by itself.
TEST_P(CancellationTest, ARequestStoppedAtAnAwaitedTaskLandsThereWhenItUncancelsItsOwn) {
  auto first = loop_.create_future<void>();
  auto next = loop_.create_future<void>();
  qi::Task<void> inner;
  inner = loop_.create_task(take_back_then_await(log_, &inner, first, next), "inner");
  qi::Task<void> outer = start_victim([inner] { return inner; }, "outer");
  cancel_from_main(outer, [inner, outer] {
    EXPECT_TRUE(inner.cancel("inner's own"));
    EXPECT_TRUE(outer.cancel("outer"));
  });
  EXPECT_EQ(log_.items, (Strings{"outer suspends", "main cancels", "inner took back: inner's own, left 1",
                                 "inner caught: outer", "outer caught: outer", "main sees: outer"}));
  EXPECT_EQ(outcome(next), "cancelled: outer");
  EXPECT_EQ(outcome(inner), "cancelled: outer");
  EXPECT_EQ(outcome(outer), "cancelled: outer");
}

INSTANTIATE_TEST_SUITE_P(Modes, CancellationTest, testing::Values(Mode::kNested, Mode::kAttached), qt::mode_name);

}  // namespace
