// qi::Handle and qi::TimerHandle: value semantics, cancellation, and
// lifetime against the loop that made them.
#include "test_util.h"

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

using namespace std::chrono_literals;
using qt::Log;
using qt::Strings;

namespace {

static_assert(std::is_nothrow_copy_constructible_v<qi::Handle>);
static_assert(std::is_nothrow_move_constructible_v<qi::Handle>);
static_assert(std::is_nothrow_copy_constructible_v<qi::TimerHandle>);
static_assert(std::is_convertible_v<qi::TimerHandle, qi::Handle>);

// Runs every iteration up to and including the one in which `stop` is
// scheduled: what is ready now runs, what it schedules does not.
void run_one_iteration(QiEventLoop& loop) {
  loop.call_soon([&loop] { loop.stop(); });
  loop.run_forever();
}

// A callback capture whose lifetime the test can watch.
struct Token {
  std::shared_ptr<int> strong = std::make_shared<int>(0);
  std::weak_ptr<int> weak = strong;
  // Hands the only strong reference to a callback.
  std::shared_ptr<int> give() { return std::move(strong); }
  bool released() const { return weak.expired(); }
};

TEST(HandleTest, DefaultConstructedHandlesAreEmpty) {
  qi::Handle h;
  EXPECT_FALSE(h);
  EXPECT_FALSE(h.cancelled());
  h.cancel();  // a no-op, not a crash
  EXPECT_FALSE(h.cancelled()) << "there is nothing to mark";
  EXPECT_TRUE(h == qi::Handle());
  qi::Handle copy = h;
  EXPECT_FALSE(copy);
  EXPECT_TRUE(copy == h);

  qi::TimerHandle t;
  EXPECT_FALSE(t);
  EXPECT_EQ(t.when(), qi::TimerHandle::time_point{});
  t.cancel();
  EXPECT_FALSE(t.cancelled());
}

TEST(HandleTest, CopiesReferToTheSameCallback) {
  QiEventLoop loop;
  Log log;
  qi::Handle h = loop.call_soon(log.recorder("a"));
  qi::Handle copy = h;
  qi::Handle assigned;
  assigned = h;
  EXPECT_TRUE(copy);
  EXPECT_TRUE(copy == h);
  EXPECT_TRUE(assigned == h);
  copy.cancel();
  EXPECT_TRUE(h.cancelled()) << "cancelled() is shared by every copy";
  EXPECT_TRUE(assigned.cancelled());
  qi::Handle late_copy = h;
  EXPECT_TRUE(late_copy.cancelled()) << "a copy made after cancel() sees it too";
  run_one_iteration(loop);
  EXPECT_TRUE(log.items.empty());
}

TEST(HandleTest, DistinctCallbacksHaveUnequalHandles) {
  QiEventLoop loop;
  qi::Handle a = loop.call_soon([] {});
  qi::Handle b = loop.call_soon([] {});
  qi::TimerHandle t = loop.call_later(1h, [] {});
  EXPECT_FALSE(a == b);
  EXPECT_FALSE(a == t);
  EXPECT_FALSE(a == qi::Handle());
  qi::Handle sliced = t;
  EXPECT_TRUE(sliced == t) << "a TimerHandle seen as a Handle is the same callback";
  sliced.cancel();
  EXPECT_TRUE(t.cancelled());
  loop.close();
}

TEST(HandleTest, MovingLeavesTheSourceEmpty) {
  QiEventLoop loop;
  Log log;
  qi::Handle h = loop.call_soon(log.recorder("moved"));
  qi::Handle witness = h;
  qi::Handle moved = std::move(h);
  EXPECT_FALSE(h);  // NOLINT(bugprone-use-after-move): the moved-from state is specified
  EXPECT_TRUE(moved == witness);
  qi::Handle move_assigned;
  move_assigned = std::move(moved);
  EXPECT_FALSE(moved);  // NOLINT(bugprone-use-after-move)
  EXPECT_TRUE(move_assigned == witness);
  h.cancel();  // cancelling the empty source touches nothing
  EXPECT_FALSE(witness.cancelled());
  run_one_iteration(loop);
  EXPECT_EQ(log.items, (Strings{"moved"}));
}

TEST(HandleTest, DroppingEveryHandleDoesNotCancel) {
  // A handle is a reference, not an owner: as in asyncio, a callback runs
  // whether or not anyone keeps its handle.
  QiEventLoop loop;
  Log log;
  { qi::Handle h = loop.call_soon(log.recorder("soon")); }
  loop.call_soon(log.recorder("never held"));
  qi::Handle reassigned = loop.call_soon(log.recorder("reassigned away"));
  reassigned = loop.call_soon(log.recorder("second"));
  { qi::TimerHandle t = loop.call_later(0ms, log.recorder("timer")); }
  qi::Handle self = loop.call_soon(log.recorder("self-assigned"));
  auto& alias = self;
  self = alias;
  EXPECT_TRUE(self);
  run_one_iteration(loop);
  EXPECT_EQ(log.items, (Strings{"soon", "never held", "reassigned away", "second", "self-assigned", "timer"}));
}

TEST(HandleTest, AHandleKeptAfterTheCallbackRanStaysValidButHoldsNoCaptures) {
  QiEventLoop loop;
  Token token;
  int ran = 0;
  qi::Handle h = loop.call_soon([&ran, p = token.give()] { ran += *p + 1; });
  qi::Handle copy = h;
  run_one_iteration(loop);
  EXPECT_EQ(ran, 1);
  EXPECT_TRUE(token.released()) << "captures go when the callback has run, not when the last handle does";
  EXPECT_FALSE(h.cancelled());
  // asyncio: cancel() after the callback ran only marks the handle.
  h.cancel();
  EXPECT_TRUE(copy.cancelled());
  run_one_iteration(loop);
  EXPECT_EQ(ran, 1);
}

TEST(HandleTest, CancelIsIdempotentThroughAnyCopy) {
  QiEventLoop loop;
  int ran = 0;
  qi::TimerHandle t = loop.call_later(0ms, [&] { ++ran; });
  qi::TimerHandle copy = t;
  t.cancel();
  copy.cancel();
  t.cancel();
  EXPECT_TRUE(t.cancelled());
  EXPECT_TRUE(copy.cancelled());
  loop.call_later(1ms, [&] { loop.stop(); });
  loop.run_forever();
  EXPECT_EQ(ran, 0);
}

TEST(HandleTest, TimerHandleWhenIsTheScheduledDeadline) {
  QiEventLoop loop;
  auto deadline = loop.time() + 3ms;
  qi::TimerHandle t = loop.call_at(deadline, [&] { loop.stop(); });
  EXPECT_EQ(t.when(), deadline);
  qi::TimerHandle copy = t;
  EXPECT_EQ(copy.when(), deadline);
  auto before = loop.time();
  qi::TimerHandle later = loop.call_later(1h, [] {});
  EXPECT_GE(later.when(), before + 1h);
  EXPECT_LE(later.when(), loop.time() + 1h);
  loop.run_forever();
  EXPECT_EQ(t.when(), deadline) << "when() survives the callback";
  auto later_when = later.when();
  later.cancel();
  EXPECT_EQ(later.when(), later_when) << "and cancellation";
}

TEST(HandleTest, CancelReleasesCapturesImmediately) {
  QiEventLoop loop;
  Token soon_token, timer_token, at_token;
  qi::Handle h = loop.call_soon([p = soon_token.give()] {});
  qi::TimerHandle t = loop.call_later(1h, [p = timer_token.give()] {});
  qi::TimerHandle a = loop.call_at(loop.time() + 1h, [](const std::shared_ptr<int>&) {}, at_token.give());
  EXPECT_FALSE(soon_token.released());
  h.cancel();
  t.cancel();
  a.cancel();
  EXPECT_TRUE(soon_token.released()) << "call_soon: captures must go at cancel(), not when the loop runs";
  EXPECT_TRUE(timer_token.released()) << "call_later: a far timer must not pin its captures until it surfaces";
  EXPECT_TRUE(at_token.released()) << "bound arguments count as captures";
  loop.close();
}

TEST(HandleTest, CallbackCancellingItselfFinishesNormally) {
  QiEventLoop loop;
  auto self = std::make_shared<qi::Handle>();
  std::string captured = "still alive after cancel()";
  std::string seen;
  bool cancelled_inside = false;
  int runs = 0;
  *self = loop.call_soon([&, self, captured] {
    ++runs;
    self->cancel();
    cancelled_inside = self->cancelled();
    // Cancelling a running callback must not destroy it under our feet.
    seen = captured;
  });
  run_one_iteration(loop);
  EXPECT_EQ(runs, 1);
  EXPECT_TRUE(cancelled_inside);
  EXPECT_EQ(seen, captured);
  EXPECT_TRUE(self->cancelled());
  run_one_iteration(loop);
  EXPECT_EQ(runs, 1);
}

TEST(HandleTest, CancellingALaterCallbackOfTheSameIterationPreventsIt) {
  QiEventLoop loop;
  Log log;
  Token token;
  qi::Handle victim;
  bool released_at_cancel = false;
  loop.call_soon([&] {
    log("a");
    victim.cancel();
    released_at_cancel = token.released();
  });
  victim = loop.call_soon([&log, p = token.give()] { log("b (cancelled)"); });
  loop.call_soon(log.recorder("c"));
  run_one_iteration(loop);
  EXPECT_EQ(log.items, (Strings{"a", "c"}));
  EXPECT_TRUE(victim.cancelled());
  EXPECT_TRUE(released_at_cancel) << "already in the ready queue, its captures still go at cancel()";
}

TEST(HandleTest, CancellingADueTimerOfTheSameIterationPreventsIt) {
  QiEventLoop loop;
  Log log;
  auto when = loop.time() + 1ms;
  qi::TimerHandle second;
  loop.call_at(when, [&] {
    log("first");
    second.cancel();
  });
  second = loop.call_at(when, log.recorder("second (cancelled)"));
  loop.call_at(when, log.recorder("third"));
  loop.call_at(when + 1ms, [&] { loop.stop(); });
  loop.run_forever();
  EXPECT_EQ(log.items, (Strings{"first", "third"}));
}

TEST(HandleTest, CancellingAnEarlierCallbackFromALaterOneIsOnlyAMark) {
  QiEventLoop loop;
  Log log;
  qi::Handle first = loop.call_soon(log.recorder("first"));
  loop.call_soon([&] {
    first.cancel();
    log(first.cancelled() ? "marked" : "unmarked");
  });
  run_one_iteration(loop);
  EXPECT_EQ(log.items, (Strings{"first", "marked"}));
}

TEST(HandleTest, TheExceptionHandlerReceivesTheSameHandle) {
  QiEventLoop loop;
  std::optional<qi::Handle> reported;
  loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& ctx) { reported = ctx.handle; });
  qi::Handle h = loop.call_soon([] { throw std::runtime_error("boom"); });
  run_one_iteration(loop);
  ASSERT_TRUE(reported.has_value());
  EXPECT_TRUE(*reported == h);
  reported->cancel();  // the reported copy is a real handle
  EXPECT_TRUE(h.cancelled());
}

TEST(HandleTest, HandlesOutliveTheirLoop) {
  Token soon_token, timer_token, threadsafe_token;
  qi::Handle soon;
  qi::TimerHandle timer;
  qi::Handle threadsafe;
  auto deadline = std::chrono::steady_clock::now() + 1h;
  {
    QiEventLoop loop;
    soon = loop.call_soon([p = soon_token.give()] {});
    timer = loop.call_at(deadline, [p = timer_token.give()] {});
    threadsafe = loop.call_soon_threadsafe([p = threadsafe_token.give()] {});
  }
  EXPECT_TRUE(soon_token.released()) << "destroying the loop destroys its pending callbacks";
  EXPECT_TRUE(timer_token.released());
  EXPECT_TRUE(threadsafe_token.released());
  EXPECT_FALSE(soon.cancelled());
  EXPECT_EQ(timer.when(), deadline);
  // Neither cancel() nor copying may reach into the destroyed loop (a
  // timer's cancel() would otherwise update the loop's heap).
  qi::TimerHandle timer_copy = timer;
  soon.cancel();
  timer.cancel();
  threadsafe.cancel();
  EXPECT_TRUE(soon.cancelled());
  EXPECT_TRUE(timer_copy.cancelled());
  EXPECT_TRUE(threadsafe.cancelled());
  soon = qi::Handle();
  timer = qi::TimerHandle();
  EXPECT_TRUE(timer_copy.cancelled()) << "the last copy keeps the state readable";
}

TEST(HandleTest, HandlesOfAClosedLoopCanBeCancelled) {
  QiEventLoop loop;
  Token token;
  qi::TimerHandle t = loop.call_later(1h, [p = token.give()] {});
  loop.close();
  EXPECT_TRUE(token.released());
  t.cancel();
  EXPECT_TRUE(t.cancelled());
}

TEST(HandleTest, CancelledThreadsafeHandleNeverRuns) {
  QiEventLoop loop;
  Token token;
  int ran = 0;
  qi::Handle h = loop.call_soon_threadsafe([&ran, p = token.give()] { ++ran; });
  EXPECT_TRUE(h);
  h.cancel();
  h.cancel();
  EXPECT_TRUE(h.cancelled());
  run_one_iteration(loop);
  EXPECT_EQ(ran, 0);
  // Its callable may be read by the loop's thread at any time, so the loop
  // (not cancel()) destroys it; by now the loop has seen it.
  EXPECT_TRUE(token.released());
  EXPECT_TRUE(h.cancelled());
}

TEST(HandleTest, CancelledThreadsafeHandleOfAClosedLoopReleasesItsCaptures) {
  QiEventLoop loop;
  Token token;
  qi::Handle h = loop.call_soon_threadsafe([p = token.give()] {});
  h.cancel();
  loop.close();
  EXPECT_TRUE(token.released());
}

}  // namespace
