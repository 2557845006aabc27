// qi::shield: the awaiter's cancellation stops at the shield, the inner task
// runs on; results, exceptions and the inner's own cancellation pass through.
#include <qiloop/structured/shield.h>
#include <qiloop/structured/timeout.h>
#include <qiloop/testing.h>

#include "combinator_util.h"

#include <memory>
#include <string>

using namespace std::chrono_literals;
using namespace combinator_test;

// inner = create_task(child("inner", 2, log))
// async def outer(): try: await shield(inner) except CancelledError: log("outer cancelled"); raise
// o = create_task(outer()); await sleep(1); o.cancel(); await sleep(2)
// -> inner start, outer cancelled, inner end   (3.11 and 3.13 agree)
QILOOP_TEST_MODES_VT(Shield, TheInnerTaskRunsOnWhenTheAwaiterIsCancelled) {
  Strings log;
  auto inner = qi::create_task(child("inner", 2s, log));
  auto outer = qi::create_task([](qi::Task<std::string> inner, Strings& log) -> qi::Coro<void> {
    try {
      co_await qi::shield(inner);
    } catch (const qi::CancelledError&) {
      log.push_back("outer cancelled");
      throw;
    }
  }(inner, log));
  co_await qi::sleep(1s);
  outer.cancel();
  co_await qi::sleep(0);
  EXPECT_TRUE(outer.cancelled());  // at once, not when the inner finishes
  EXPECT_FALSE(inner.done());
  EXPECT_EQ(co_await inner, "inner");
  EXPECT_EQ(log, (Strings{"inner start", "outer cancelled", "inner end"}));
}

QILOOP_TEST_MODES_VT(Shield, AShieldedCoroutineBecomesATaskThatRunsToItsEnd) {
  Strings log;
  auto outer = qi::create_task([](Strings& log) -> qi::Coro<std::string> {
    co_return co_await qi::shield(child("c", 2s, log));
  }(log));
  co_await qi::sleep(1s);
  outer.cancel();
  co_await qi::sleep(2s);
  EXPECT_TRUE(outer.cancelled());
  EXPECT_EQ(log, (Strings{"c start", "c end"}));
}

QILOOP_TEST_MODES_VT(Shield, ResultsAndExceptionsPassThrough) {
  EXPECT_EQ(co_await qi::shield(value_after(1s, 4)), 4);
  EXPECT_THROW(co_await qi::shield(boom_after(1s, "x")), Boom);
  auto t = qi::create_task(value_after(1s, 5));
  EXPECT_EQ(co_await qi::shield(t), 5);
  EXPECT_EQ(t.result(), 5);  // copied from an lvalue handle
  auto p = co_await qi::shield([]() -> qi::Coro<std::unique_ptr<int>> {
    co_await qi::sleep(1ms);
    co_return std::make_unique<int>(6);
  }());
  EXPECT_EQ(*p, 6);
  co_await qi::shield(nothing_after(1s));
}

QILOOP_TEST_MODES_VT(Shield, TheInnerCancelledCancelsTheAwaiter) {
  auto inner = qi::create_task(value_after(2s, 1));
  auto s = qi::shield(inner);
  co_await qi::sleep(1s);
  inner.cancel("inner gone");
  try {
    co_await s;
    ADD_FAILURE() << "not cancelled";
  } catch (const qi::CancelledError& e) {
    EXPECT_EQ(e.message(), "inner gone");
  }
  EXPECT_TRUE(s.cancelled());
}

QILOOP_TEST_MODES_VT(Shield, ADoneInnerIsReturnedItself) {
  auto& loop = qi::get_running_loop();
  auto f = loop.create_future<int>();
  f.set_result(3);
  auto s = qi::shield(qi::Future<int>(f));  // an rvalue handle: its own state
  EXPECT_TRUE(s == f);
  EXPECT_EQ(co_await s, 3);
  auto copy = qi::shield(f);  // an lvalue handle: a done copy, so f keeps its result
  EXPECT_TRUE(copy.done());
  EXPECT_EQ(co_await copy, 3);
}

// async def outer(): return await shield(boom())   # raises after 2 s
// o = create_task(outer()); await sleep(1); o.cancel(); await sleep(2)
// -> the handler gets "Task exception was never retrieved" (3.11 = 3.13):
// once the awaiter gave up, shield unhooks, and the failure is the inner
// task's own.
QILOOP_TEST_MODES_VT(Shield, AFailureAfterTheAwaiterGaveUpIsTheInnerTasksOwn) {
  auto& loop = qi::get_running_loop();
  Strings reports;
  loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& c) { reports.push_back(c.message); });
  auto outer = qi::create_task([]() -> qi::Coro<int> { co_return co_await qi::shield(boom_after(2s, "late")); }());
  co_await qi::sleep(1s);
  outer.cancel();
  co_await qi::sleep(2s);
  EXPECT_TRUE(outer.cancelled());
  QILOOP_CO_ASSERT(ASSERT_EQ(reports.size(), 1u));
  EXPECT_NE(reports[0].find("exception was never retrieved"), std::string::npos) << reports[0];
}

QILOOP_TEST_MODES_VT(Shield, MisuseThrowsAtTheCall) {
  EXPECT_THROW((void)qi::shield(qi::Task<int>()), std::invalid_argument);
  EXPECT_THROW((void)qi::shield(qi::Coro<int>()), std::invalid_argument);
  co_return;
}

// A done lvalue handle: `co_await qi::shield(t)` awaits an rvalue future, so
// returning t's own state let it move t's result out, and a throwing copy
// (done or not) left the outer future never finished. asyncio has no moves:
// t.result() is intact after `await shield(t)`.
QILOOP_TEST_MODES_VT(Shield, AnLvalueHandleKeepsItsResultAndAThrowingCopyFailsTheOuter) {
  auto t = qi::create_task([]() -> qi::Coro<std::string> { co_return std::string(40, 'x'); }());
  co_await t;
  EXPECT_EQ(co_await qi::shield(t), std::string(40, 'x'));
  EXPECT_EQ(t.result(), std::string(40, 'x'));

  struct CopyThrows {
    CopyThrows() = default;
    CopyThrows(const CopyThrows&) { throw Boom("copy"); }
    CopyThrows(CopyThrows&&) noexcept = default;
  };
  auto c = qi::create_task([]() -> qi::Coro<CopyThrows> {
    co_await qi::sleep(1ms);
    co_return CopyThrows{};
  }());
  auto pending = qi::shield(c);
  EXPECT_THROW(co_await qi::wait_for(pending, 1s), Boom);  // was: qi::TimeoutError
  EXPECT_THROW(co_await qi::shield(c), Boom);              // done: was no copy at all
}

// outer = shield(f); outer.cancel(); f.set_exception(...) in the same step:
// f's callback is still hooked (the outer's own callback, which unhooks it,
// has not run yet), so it runs and asyncio marks f's exception retrieved:
// nothing is reported when f goes.
QILOOP_TEST_MODES_VT(Shield, AnInnerFailingBeforeTheCancelledOutersCallbackRanIsRetrieved) {
  auto& loop = qi::get_running_loop();
  Strings reports;
  loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& c) { reports.push_back(c.message); });
  {
    auto f = loop.create_future<int>();
    auto outer = qi::shield(f);
    outer.cancel();
    f.set_exception(std::make_exception_ptr(Boom("late")));
    co_await qi::sleep(0);
    EXPECT_TRUE(outer.cancelled());
  }
  co_await qi::sleep(0);
  EXPECT_TRUE(reports.empty()) << reports[0];
}

// Once the outer is done (here cancelled) and its callback ran, the shield
// holds nothing of the inner: the inner goes with its last handle while the
// outer is still held.
QILOOP_TEST_MODES_VT(Shield, TheOuterLetsGoOfTheInnerOnceItIsDone) {
  auto& loop = qi::get_running_loop();
  auto inner = std::make_unique<qi::Future<int>>(loop.create_future<int>());
  auto held = std::make_shared<int>(0);
  std::weak_ptr<int> token = held;
  inner->add_done_callback([held = std::move(held)] {});
  qi::Future<int> outer = qi::shield(*inner);
  outer.cancel();
  co_await qi::sleep(0);
  inner.reset();
  EXPECT_TRUE(token.expired()) << "the cancelled outer still holds the inner";
  EXPECT_TRUE(outer.cancelled());
}
