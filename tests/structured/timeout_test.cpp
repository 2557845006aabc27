// qi::timeout / timeout_at / Timeout / wait_for: exact deadlines on virtual
// time, whose cancellation a timeout turns into TimeoutError (and whose
// not), reschedule, nesting, the same-iteration races, wait_for's delay <= 0.
// The Python programs beside the tests give asyncio's outcome (run on 3.11,
// whose timeouts.py agrees with 3.13's on each of them).
#include <qiloop/structured/timeout.h>
#include <qiloop/testing.h>

#include "outside_task.h"

#include <chrono>
#include <cmath>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using Strings = std::vector<std::string>;

namespace {

qi::Coro<int> value_after(std::chrono::milliseconds d, int v) {
  co_await qi::sleep(d);
  co_return v;
}

// Sleeps; logs how the sleep ended, then lets the error go on.
qi::Coro<void> logged_sleep(std::chrono::seconds d, std::string name, Strings& log) {
  try {
    co_await qi::sleep(d);
    log.push_back(name + " slept");
  } catch (const qi::CancelledError&) {
    log.push_back(name + " CancelledError");
    throw;
  }
}

QiEventLoop::time_point now() { return qi::get_running_loop().time(); }

}  // namespace

// async with asyncio.timeout(1): await asyncio.sleep(10)   # TimeoutError at t0 + 1
QILOOP_TEST_MODES_VT(Timeout, ExpiresAtTheDeadlineAsTimeoutError) {
  const auto t0 = now();
  bool timed_out = false;
  try {
    co_await qi::timeout(1s, qi::sleep(10s));
  } catch (const qi::TimeoutError&) {
    timed_out = true;
  }
  EXPECT_TRUE(timed_out);
  EXPECT_EQ(now() - t0, 1s);
  EXPECT_EQ(qi::current_task().cancelling(), 0) << "the timeout took its cancel request back";
  co_await qi::sleep(5s);  // no cancellation left behind
}

QILOOP_TEST_MODES_VT(Timeout, YieldsTheResultBeforeTheDeadlineAndDisarms) {
  const auto t0 = now();
  EXPECT_EQ(co_await qi::timeout(1s, value_after(500ms, 42)), 42);
  EXPECT_EQ(now() - t0, 500ms);
  EXPECT_EQ(co_await qi::timeout(0.75, value_after(700ms, 7)), 7) << "seconds as a double";
  co_await qi::sleep(2s);  // the timers are gone: nothing cancels this
  EXPECT_EQ(now() - t0, 500ms + 700ms + 2s);
  co_await qi::timeout(std::nullopt, qi::sleep(1h));  // none: never
  co_await qi::timeout_at(std::nullopt, qi::sleep(1h));
  EXPECT_EQ(now() - t0, 500ms + 700ms + 2s + 2h);
}

QILOOP_TEST_MODES_VT(Timeout, ExceptionsOfTheAwaitablePassThrough) {
  bool caught = false;
  try {
    co_await qi::timeout(1s, []() -> qi::Coro<int> {
      co_await qi::sleep(1ms);
      throw std::out_of_range("inner");
      co_return 0;
    }());
  } catch (const std::out_of_range& e) {
    caught = std::string(e.what()) == "inner";
  }
  EXPECT_TRUE(caught);
}

QILOOP_TEST_MODES_VT(Timeout, TimeoutAtAbsoluteDeadline) {
  const auto t0 = now();
  bool timed_out = false;
  try {
    co_await qi::timeout_at(t0 + 3s, qi::sleep(10s));
  } catch (const qi::TimeoutError&) {
    timed_out = true;
  }
  EXPECT_TRUE(timed_out);
  EXPECT_EQ(now() - t0, 3s);
  // A deadline of any duration type.
  EXPECT_EQ(co_await qi::timeout_at(std::chrono::time_point<std::chrono::steady_clock, std::chrono::duration<double>>(
                                        now() + 1s),
                                    value_after(10ms, 5)),
            5);
}

// async with asyncio.timeout_at(loop.time() - 1): await asyncio.sleep(0)   # TimeoutError
QILOOP_TEST_MODES_VT(Timeout, APastDeadlineExpiresOnTheNextIteration) {
  const auto t0 = now();
  bool timed_out = false;
  try {
    co_await qi::timeout_at(t0 - 1s, qi::sleep(0));
  } catch (const qi::TimeoutError&) {
    timed_out = true;
  }
  EXPECT_TRUE(timed_out);
  EXPECT_EQ(now(), t0);
  // A delay <= 0 alike.
  timed_out = false;
  try {
    co_await qi::timeout(-5s, qi::sleep(0));
  } catch (const qi::TimeoutError&) {
    timed_out = true;
  }
  EXPECT_TRUE(timed_out);
}

// The delay of the one-call form counts from when its Coro starts.
QILOOP_TEST_MODES_VT(Timeout, TheDelayCountsFromTheStart) {
  const auto t0 = now();
  auto c = qi::timeout(2s, qi::sleep(10s));
  co_await qi::sleep(5s);
  bool timed_out = false;
  try {
    co_await std::move(c);
  } catch (const qi::TimeoutError&) {
    timed_out = true;
  }
  EXPECT_TRUE(timed_out);
  EXPECT_EQ(now() - t0, 7s);
}

// Cancelling the task inside the block (its only waiting point) is not the
// timeout's: CancelledError, the request still counted, the timer disarmed.
QILOOP_TEST_MODES_VT(Timeout, AnOuterCancelInsideTheBlockStaysCancelled) {
  const auto t0 = now();
  auto body = qi::create_task([]() -> qi::Coro<int> {
    int n = -1;
    try {
      co_await qi::timeout(2s, qi::sleep(10s));
    } catch (const qi::CancelledError&) {
      n = qi::current_task().cancelling();
    }
    co_await qi::sleep(5s);  // past the deadline: the timer is disarmed
    co_return n;
  }());
  co_await qi::sleep(1s);
  body.cancel();
  EXPECT_EQ(co_await body, 1);
  EXPECT_EQ(now() - t0, 6s);
}

// async def body():
//     async with asyncio.timeout(1): await asyncio.sleep(10)
// b = asyncio.create_task(body()); loop.call_at(t0 + 1, b.cancel)   # before or after the timer
// await b   # CancelledError either way: b.cancelled() is True
QILOOP_TEST_MODES_VT(Timeout, AnOuterCancelAtTheDeadlineStaysCancelled) {
  auto& loop = qi::get_running_loop();
  auto body = [](int& cancelling) -> qi::Coro<void> {
    try {
      co_await qi::timeout(1s, qi::sleep(10s));
    } catch (const qi::CancelledError&) {
      cancelling = qi::current_task().cancelling();
      throw;
    }
  };
  for (bool cancel_first : {true, false}) {
    const auto t0 = now();
    int cancelling = -1;
    qi::Task<void> b;
    if (cancel_first) {
      // The outer cancel's timer is due with the deadline and was armed first.
      qi::TimerHandle h = loop.call_at(t0 + 1s, [&] { b.cancel(); });
      b = qi::create_task(body(cancelling));
    } else {
      b = qi::create_task(body(cancelling));
      co_await qi::sleep(0);  // the block began: its timer is armed first
      loop.call_at(t0 + 1s, [&] { b.cancel(); });
    }
    bool cancelled = false;
    try {
      co_await b;
    } catch (const qi::CancelledError&) {
      cancelled = true;
    }
    EXPECT_TRUE(cancelled) << "cancel_first=" << cancel_first;
    EXPECT_TRUE(b.cancelled());
    EXPECT_EQ(cancelling, 1) << "the outer request is left, the timeout's taken back";
    EXPECT_EQ(now() - t0, 1s);
  }
}

// log = []
// async def inner():
//     try:
//         async with asyncio.timeout(1): await asyncio.sleep(10)
//     except BaseException as e: log.append("inner " + type(e).__name__); raise
// async with asyncio.timeout(1): await inner()    # ['inner CancelledError', 'outer TimeoutError']
QILOOP_TEST_MODES_VT(Timeout, NestedTimeoutsExpiringTogetherTheOuterReports) {
  Strings log;
  auto inner = [&]() -> qi::Coro<void> {
    try {
      co_await qi::timeout(1s, qi::sleep(10s));
    } catch (const qi::CancelledError&) {
      log.push_back("inner CancelledError");
      throw;
    } catch (const qi::TimeoutError&) {
      log.push_back("inner TimeoutError");
      throw;
    }
  };
  try {
    co_await qi::timeout(1s, inner());
  } catch (const qi::TimeoutError&) {
    log.push_back("outer TimeoutError");
  }
  EXPECT_EQ(log, (Strings{"inner CancelledError", "outer TimeoutError"}));
  EXPECT_EQ(qi::current_task().cancelling(), 0);

  // The inner one alone expires: it reports, the outer one stays quiet.
  log.clear();
  qi::Timeout outer = qi::Timeout::after(5s);
  co_await outer.run([&]() -> qi::Coro<void> {
    try {
      co_await qi::timeout(1s, logged_sleep(10s, "inner", log));
    } catch (const qi::TimeoutError&) {
      log.push_back("inner TimeoutError");
    }
  }());
  EXPECT_FALSE(outer.expired());
  EXPECT_EQ(log, (Strings{"inner CancelledError", "inner TimeoutError"}));
}

QILOOP_TEST_MODES_VT(Timeout, RescheduleEarlierLaterAndToNever) {
  const auto t0 = now();
  // Earlier.
  qi::Timeout a = qi::Timeout::after(10s);
  EXPECT_EQ(a.when(), t0 + 10s);
  bool timed_out = false;
  try {
    co_await a.run([&]() -> qi::Coro<void> {
      co_await qi::sleep(1s);
      a.reschedule(now() + 1s);
      co_await qi::sleep(10s);
    }());
  } catch (const qi::TimeoutError&) {
    timed_out = true;
  }
  EXPECT_TRUE(timed_out);
  EXPECT_TRUE(a.expired());
  EXPECT_EQ(a.when(), t0 + 2s);
  EXPECT_EQ(now() - t0, 2s);

  // Later.
  qi::Timeout b = qi::Timeout::after(1s);
  co_await b.run([&]() -> qi::Coro<void> {
    b.reschedule(now() + 5s);
    co_await qi::sleep(3s);
  }());
  EXPECT_FALSE(b.expired());
  EXPECT_EQ(b.when(), t0 + 7s);

  // To never, from another task.
  qi::Timeout c(now() + 1s);
  qi::get_running_loop().call_later(500ms, [&] { c.reschedule(std::nullopt); });
  co_await c.run(qi::sleep(1h));
  EXPECT_FALSE(c.expired());
  EXPECT_EQ(c.when(), std::nullopt);

  // Into the past: expires on the next iteration.
  qi::Timeout d(std::nullopt);
  timed_out = false;
  try {
    co_await d.run([&]() -> qi::Coro<void> {
      d.reschedule(now() - 1h);
      co_await qi::sleep(1s);
    }());
  } catch (const qi::TimeoutError&) {
    timed_out = true;
  }
  EXPECT_TRUE(timed_out);
  EXPECT_EQ(now() - t0, 5s + 1h) << "no time passed in the last block";
}

// async with asyncio.timeout(1) as t:
//     try: await asyncio.sleep(2)
//     except asyncio.CancelledError: t.reschedule(None)  # Cannot change state of expiring Timeout
// t.reschedule(None)                                      # Cannot change state of expired Timeout
QILOOP_TEST_MODES_VT(Timeout, RescheduleOutsideTheActiveBlockThrows) {
  Strings errors;
  auto note = [&](auto&& f) {
    try {
      f();
    } catch (const qi::RuntimeError& e) {
      errors.push_back(e.what());
    }
  };
  qi::Timeout t = qi::Timeout::after(1s);
  note([&] { t.reschedule(std::nullopt); });
  bool timed_out = false;
  try {
    co_await t.run([&]() -> qi::Coro<void> {
      try {
        co_await qi::sleep(2s);
      } catch (const qi::CancelledError&) {
        note([&] { t.reschedule(std::nullopt); });
        throw;
      }
    }());
  } catch (const qi::TimeoutError&) {
    timed_out = true;
  }
  EXPECT_TRUE(timed_out);
  note([&] { t.reschedule(std::nullopt); });
  qi::Timeout done_one = qi::Timeout::after(1s);
  co_await done_one.run(qi::sleep(0));
  note([&] { done_one.reschedule(std::nullopt); });
  QILOOP_CO_ASSERT(ASSERT_EQ(errors.size(), 4u));
  EXPECT_NE(errors[0].find("has not been entered"), std::string::npos) << errors[0];
  EXPECT_NE(errors[1].find("Cannot change state of expiring"), std::string::npos) << errors[1];
  EXPECT_NE(errors[2].find("Cannot change state of expired"), std::string::npos) << errors[2];
  EXPECT_NE(errors[3].find("Cannot change state of finished"), std::string::npos) << errors[3];
  // Running a Timeout twice.
  bool refused = false;
  try {
    co_await t.run(qi::sleep(0));
  } catch (const qi::RuntimeError& e) {
    refused = std::string(e.what()).find("already been entered") != std::string::npos;
  }
  EXPECT_TRUE(refused);
}

// The block swallows its own cancellation: no TimeoutError, but expired().
QILOOP_TEST_MODES_VT(Timeout, ABlockThatSwallowsTheCancellationReturnsNormally) {
  qi::Timeout t = qi::Timeout::after(1s);
  const int v = co_await t.run([]() -> qi::Coro<int> {
    try {
      co_await qi::sleep(10s);
    } catch (const qi::CancelledError&) {
      co_return 3;
    }
    co_return 0;
  }());
  EXPECT_EQ(v, 3);
  EXPECT_TRUE(t.expired());
  EXPECT_EQ(qi::current_task().cancelling(), 0);
}

// A task awaited is cancelled at the deadline, and waited for.
// t = asyncio.create_task(asyncio.sleep(5))
// await asyncio.wait_for(t, 1)      # TimeoutError at t0 + 1; t.cancelled()
QILOOP_TEST_MODES_VT(WaitFor, CancelsTheAwaitedTaskAtTheDeadline) {
  const auto t0 = now();
  auto t = qi::create_task(value_after(5s, 1));
  bool timed_out = false;
  try {
    co_await qi::wait_for(t, 1s);
  } catch (const qi::TimeoutError&) {
    timed_out = true;
  }
  EXPECT_TRUE(timed_out);
  EXPECT_TRUE(t.cancelled());
  EXPECT_EQ(now() - t0, 1s);
  // A plain future too; and a Coro, awaited directly.
  auto f = qi::get_running_loop().create_future<int>();
  timed_out = false;
  try {
    co_await qi::wait_for(f, 1.5);
  } catch (const qi::TimeoutError&) {
    timed_out = true;
  }
  EXPECT_TRUE(timed_out);
  EXPECT_TRUE(f.cancelled());
  timed_out = false;
  try {
    co_await qi::wait_for(value_after(10s, 2), 2s);
  } catch (const qi::TimeoutError&) {
    timed_out = true;
  }
  EXPECT_TRUE(timed_out);
  EXPECT_EQ(now() - t0, 4500ms);
  EXPECT_EQ(co_await qi::wait_for(value_after(10s, 9), std::nullopt), 9);
}

// async def stubborn():
//     try: await asyncio.sleep(5)
//     except asyncio.CancelledError: return 8
// await asyncio.wait_for(asyncio.create_task(stubborn()), 1)   # 8, no TimeoutError
QILOOP_TEST_MODES_VT(WaitFor, ATaskThatSwallowsTheCancelYieldsItsValue) {
  auto t = qi::create_task([]() -> qi::Coro<int> {
    try {
      co_await qi::sleep(5s);
    } catch (const qi::CancelledError&) {
      co_return 8;
    }
    co_return 0;
  }());
  EXPECT_EQ(co_await qi::wait_for(t, 1s), 8);
  EXPECT_EQ(t.result(), 8) << "an lvalue task's result is copied, not moved out";
}

// The result is ready in the iteration of the deadline, its timer first:
// qiloop returns it (DESIGN: nothing a caller obtained is lost). asyncio
// 3.12+ raises TimeoutError here and leaves the value in the future:
// f = loop.create_future(); loop.call_at(t0 + 1, f.set_result, 7)
// async with asyncio.timeout_at(t0 + 1): await f   # TimeoutError; f.result() == 7
QILOOP_TEST_MODES_VT(WaitFor, AResultOfTheDeadlineIterationIsReturned) {
  auto& loop = qi::get_running_loop();
  const auto t0 = now();
  auto f = loop.create_future<int>();
  loop.call_at(t0 + 1s, [f] { f.set_result(7); });
  EXPECT_EQ(co_await qi::wait_for(f, 1s), 7);
  EXPECT_EQ(now() - t0, 1s);
  EXPECT_EQ(qi::current_task().cancelling(), 0);

  // A task finishing then; moved in, its value is moved out.
  auto t = qi::create_task([]() -> qi::Coro<std::unique_ptr<int>> {
    co_await qi::sleep(1s);
    co_return std::make_unique<int>(11);
  }());
  co_await qi::sleep(0);  // its sleep's timer is armed before the deadline's
  std::unique_ptr<int> p = co_await qi::wait_for(std::move(t), 1s);
  QILOOP_CO_ASSERT(ASSERT_TRUE(p));
  EXPECT_EQ(*p, 11);

  // With qi::Timeout, expired() tells that the deadline did pass.
  auto g = loop.create_future<void>();
  loop.call_at(now() + 1s, [g] { g.set_result(); });
  qi::Timeout tm = qi::Timeout::after(1s);
  co_await tm.run(g);
  EXPECT_TRUE(tm.expired());

  // A failure of that iteration is rethrown as itself, not as TimeoutError.
  auto h = loop.create_future<int>();
  loop.call_at(now() + 1s, [h] { h.set_exception(std::make_exception_ptr(std::logic_error("late"))); });
  bool caught = false;
  try {
    co_await qi::wait_for(h, 1s);
  } catch (const std::logic_error&) {
    caught = true;
  }
  EXPECT_TRUE(caught);
}

// await asyncio.wait_for(done_future, 0)            # its result, no suspension
// await asyncio.wait_for(coro(), 0)                 # TimeoutError; coro never ran
// await asyncio.wait_for(pending_future, 0)         # TimeoutError; the future cancelled
QILOOP_TEST_MODES_VT(WaitFor, ANonPositiveDelayAsAsyncio) {
  auto& loop = qi::get_running_loop();
  auto done = loop.create_future<int>();
  done.set_result(4);
  const auto iterations = loop.stats().iterations;
  EXPECT_EQ(co_await qi::wait_for(done, 0s), 4);
  EXPECT_EQ(loop.stats().iterations, iterations) << "a done future: no suspension";

  bool ran = false;
  bool timed_out = false;
  try {
    co_await qi::wait_for([&]() -> qi::Coro<int> {
      ran = true;
      co_return 1;
    }(), 0.0);
  } catch (const qi::TimeoutError&) {
    timed_out = true;
  }
  EXPECT_TRUE(timed_out);
  EXPECT_FALSE(ran);

  auto pending = loop.create_future<int>();
  timed_out = false;
  try {
    co_await qi::wait_for(pending, -1s);
  } catch (const qi::TimeoutError&) {
    timed_out = true;
  }
  EXPECT_TRUE(timed_out);
  EXPECT_TRUE(pending.cancelled());

  // A task that swallows the cancel yields its value.
  auto stubborn = qi::create_task([]() -> qi::Coro<int> {
    try {
      co_await qi::sleep(5s);
    } catch (const qi::CancelledError&) {
      co_return 6;
    }
    co_return 0;
  }());
  co_await qi::sleep(0);
  EXPECT_EQ(co_await qi::wait_for(stubborn, 0s), 6);
}

// While wait_for(delay <= 0) waits for the cancelled task to finish, a
// cancel of the waiting task stays a CancelledError (asyncio's
// _cancel_and_wait awaits a waiter, not the task).
QILOOP_TEST_MODES_VT(WaitFor, ACancelDuringTheNonPositiveWaitStaysCancelled) {
  auto slow_to_die = qi::create_task([]() -> qi::Coro<int> {
    try {
      co_await qi::sleep(5s);
    } catch (const qi::CancelledError&) {
    }
    co_await qi::sleep(1s);  // takes its time to finish
    co_return 1;
  }());
  co_await qi::sleep(0);
  auto waiter = qi::create_task([](qi::Task<int> t) -> qi::Coro<int> { co_return co_await qi::wait_for(t, 0s); }(
      slow_to_die));
  co_await qi::sleep(100ms);
  waiter.cancel();
  bool cancelled = false;
  try {
    co_await waiter;
  } catch (const qi::CancelledError&) {
    cancelled = true;
  }
  EXPECT_TRUE(cancelled);
  EXPECT_EQ(co_await slow_to_die, 1);
}

// A NaN delay or deadline can mean nothing: refused at the call, naming it.
// A future whose loop was destroyed could never end the block: each form
// refuses it at once with the loop's error (co_await's, or for wait_for's
// delay <= 0 that of the done callback it would wait with), the deadline is
// disarmed with the block, and the task goes on uncancelled past it.
QILOOP_TEST_MODES_VT(WaitFor, AFutureOfADestroyedLoopIsRefusedAtOnceAndTheDeadlineDisarmed) {
  qi::Future<int> orphan;
  {
    QiEventLoop gone;
    orphan = gone.create_future<int>();
  }
  auto& loop = qi::get_running_loop();
  const auto t0 = loop.time();
  qi::Timeout block = qi::Timeout::after(1s);
  Strings errors;
  for (int form = 0; form < 4; ++form) {
    try {
      if (form == 0)
        (void)co_await qi::timeout(1s, orphan);
      else if (form == 1)
        (void)co_await qi::wait_for(orphan, 1s);
      else if (form == 2)
        (void)co_await qi::wait_for(orphan, 0s);
      else
        (void)co_await block.run(orphan);
      errors.push_back("no error");
    } catch (const qi::RuntimeError& e) {
      errors.push_back(e.what());
    }
  }
  EXPECT_EQ(loop.time(), t0) << "a refusal waited";
  const Strings apis{"co_await", "co_await", "add_done_callback", "co_await"};
  QILOOP_CO_ASSERT(ASSERT_EQ(errors.size(), apis.size()));
  for (std::size_t i = 0; i < apis.size(); ++i)
    EXPECT_EQ(errors[i].rfind(apis[i] + ": Future belongs to an event loop that was destroyed", 0), 0u) << errors[i];
  EXPECT_FALSE(block.expired());
  co_await qi::sleep(2s);  // past every deadline: none cancels this task
  EXPECT_EQ(qi::current_task().cancelling(), 0);
  EXPECT_FALSE(orphan.done());
}

QILOOP_TEST_VT(Timeout, ANaNDelayOrDeadlineIsRefusedAtTheCallNamingIt) {
  const double nan = std::nan("");
  Strings errors;
  auto note = [&](auto&& f) {
    try {
      f();
      errors.push_back("no error");
    } catch (const std::invalid_argument& e) {
      errors.push_back(e.what());
    }
  };
  note([&] { (void)qi::Timeout::after(nan); });
  note([&] { (void)qi::Timeout::after(std::chrono::duration<double>(nan)); });
  note([&] {
    (void)qi::timeout_at(std::chrono::time_point<std::chrono::steady_clock, std::chrono::duration<double>>(
                             std::chrono::duration<double>(nan)),
                         qi::sleep(0));
  });
  note([&] { (void)qi::timeout(nan, qi::sleep(0)); });
  QILOOP_CO_ASSERT(ASSERT_EQ(errors.size(), 4u));
  EXPECT_NE(errors[0].find("qi::Timeout::after: the delay is NaN"), std::string::npos) << errors[0];
  EXPECT_NE(errors[1].find("qi::Timeout::after: the delay is NaN"), std::string::npos) << errors[1];
  EXPECT_NE(errors[2].find("qi::timeout_at: the time is NaN"), std::string::npos) << errors[2];
  EXPECT_NE(errors[3].find("qi::timeout: the delay is NaN"), std::string::npos) << errors[3];
  co_return;
}

// run() awaited by a coroutine no task runs (another library's): nothing
// could cancel it at the deadline.
TEST(Timeout, RunOutsideATaskThrowsNamingTheFix) {
  qi::Timeout t(std::nullopt);
  std::string error;
  outside_task::await_outside_a_task([&] { return t.run(qi::sleep(0)); }, error);
  EXPECT_NE(error.find("qi::Timeout should be used inside a task"), std::string::npos) << error;
  EXPECT_NE(error.find("create_task"), std::string::npos) << error;
}
