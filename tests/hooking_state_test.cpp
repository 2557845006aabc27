// What close() does for a combinator's future (gather's, shield's) and the
// pending futures it watches, which hold each other: a pending future's hook
// holds the combinator's future, which holds the future. A closed loop can
// never run those futures' done callbacks, so close() destroys them, and the
// pair goes with its last handle. Before, a task destroyed by close() while
// it awaited qi::gather / qi::shield of a plain future left the pair alive
// for good (LeakSanitizer found it). A done callback holding a token shows
// whether the watched future's callbacks were destroyed (its token expired)
// or are still held.
#include <qiloop/structured/gather.h>
#include <qiloop/structured/shield.h>

#include <gmock/gmock.h>

#include "on_destroy.h"

#include <cstdlib>
#include <functional>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <tuple>
#include <vector>

using testing::ElementsAre;
using testing::HasSubstr;
using Strings = std::vector<std::string>;

// Allocation failure on demand: the Nth allocation of this thread from the
// moment countdown is set throws std::bad_alloc (0: none fails). Replaces
// the global operator new of this test binary.
namespace fail_alloc {
inline thread_local long countdown = 0;
}  // namespace fail_alloc

void* operator new(std::size_t n) {
  if (fail_alloc::countdown > 0 && --fail_alloc::countdown == 0) throw std::bad_alloc();
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

// Whether call() throws std::bad_alloc when this thread's nth allocation
// from now on fails.
template <class F>
bool fails_at(long n, F call) {
  fail_alloc::countdown = n;
  bool threw = false;
  try {
    call();
  } catch (const std::bad_alloc&) {
    threw = true;
  }
  fail_alloc::countdown = 0;
  return threw;
}

// A pending future of `loop` whose done callback holds a token.
struct Watched {
  explicit Watched(QiEventLoop& loop) : f(loop.create_future<int>()) {
    auto held = std::make_shared<int>(0);
    token = held;
    f.add_done_callback([held] {});
  }
  qi::Future<int> f;
  std::weak_ptr<int> token;
};

void record_reports(QiEventLoop& loop, Strings& into) {
  loop.set_exception_handler([&into](QiEventLoop&, const qi::ExceptionContext& c) { into.push_back(c.message); });
}

// One iteration: the tasks made so far take their first step.
void first_steps(QiEventLoop& loop) {
  loop.run_until_complete([]() -> qi::Coro<void> { co_await qi::sleep(0); }());
}

const auto kDestroyedPending = HasSubstr("Task was destroyed but it is pending!");

}  // namespace

namespace {

// close() destroys a task suspended in a combinator of a pending future
// (`awaiting(f)` makes it): the combinator's future and f let go of each
// other. f is not completed, and may still be (nothing is left to run).
template <class Awaiting>
void expect_close_lets_go(Awaiting awaiting, const char* combinator) {
  Strings reports;
  QiEventLoop loop;
  record_reports(loop, reports);
  Watched w(loop);
  qi::Task<void> t = loop.create_task(awaiting(w.f));
  first_steps(loop);
  EXPECT_FALSE(w.token.expired());
  loop.close();
  EXPECT_TRUE(w.token.expired()) << "the " << combinator << " and the future it watches still hold each other";
  EXPECT_TRUE(t.cancelled());
  EXPECT_FALSE(w.f.done());
  w.f.set_result(1);
  EXPECT_THAT(reports, ElementsAre(kDestroyedPending));
}

}  // namespace

TEST(HookingState, CloseLetsGoOfAGatherOfAPendingFutureWhoseAwaiterItDestroys) {
  expect_close_lets_go([](qi::Future<int> f) -> qi::Coro<void> { (void)co_await qi::gather(f); }, "gather");
}

TEST(HookingState, CloseLetsGoOfAShieldOfAPendingFutureWhoseAwaiterItDestroys) {
  expect_close_lets_go([](qi::Future<int> f) -> qi::Coro<void> { (void)co_await qi::shield(f); }, "shield");
}

// A vector, Outcomes, and a task among the children (close() destroys the
// task, whose callbacks go with its dropped completion).
TEST(HookingState, CloseLetsGoOfAGatherSettledOfPendingFuturesAndATask) {
  Strings reports;
  QiEventLoop loop;
  record_reports(loop, reports);
  Watched a(loop), b(loop);
  qi::Task<void> t = loop.create_task([](std::vector<qi::Future<int>> fs) -> qi::Coro<void> {
    auto sleeper = qi::create_task([]() -> qi::Coro<int> {
      co_await qi::sleep(std::chrono::hours(1));
      co_return 0;
    }());
    fs.push_back(sleeper);
    (void)co_await qi::gather_settled(fs);
  }({a.f, b.f}));
  first_steps(loop);
  loop.close();
  EXPECT_TRUE(a.token.expired());
  EXPECT_TRUE(b.token.expired());
  EXPECT_THAT(reports, ElementsAre(kDestroyedPending, kDestroyedPending));
}

// Combinators of combinators: the outer gather watches a shield and a
// gather, which watch the plain futures. Whatever order close() takes them
// in, every pair lets go.
TEST(HookingState, CloseLetsGoOfNestedCombinators) {
  Strings reports;
  QiEventLoop loop;
  record_reports(loop, reports);
  Watched a(loop), b(loop), c(loop);
  qi::Task<void> t = loop.create_task([](qi::Future<int> a, qi::Future<int> b, qi::Future<int> c) -> qi::Coro<void> {
    (void)co_await qi::gather(qi::shield(a), qi::gather(b, qi::shield(c)));
  }(a.f, b.f, c.f));
  first_steps(loop);
  loop.close();
  EXPECT_TRUE(a.token.expired());
  EXPECT_TRUE(b.token.expired());
  EXPECT_TRUE(c.token.expired());
}

// No task at all: the handles to the combinators' futures were dropped, so
// the cycles are all that keeps them.
TEST(HookingState, CloseLetsGoOfCombinatorsNobodyHolds) {
  QiEventLoop loop;
  Watched a(loop), b(loop);
  (void)qi::gather(a.f, b.f);
  (void)qi::shield(b.f);
  loop.close();
  EXPECT_TRUE(a.token.expired());
  EXPECT_TRUE(b.token.expired());
}

// gather() of a pending future is accepted on a closed loop (the future may
// still be completed); the loop's destructor lets go of what close() could
// not have seen.
TEST(HookingState, TheLoopsDestructorLetsGoOfAGatherMadeAfterClose) {
  std::weak_ptr<int> token;
  {
    QiEventLoop loop;
    Watched w(loop);
    token = w.token;
    loop.close();
    (void)qi::gather(w.f);
    EXPECT_FALSE(token.expired());
  }
  EXPECT_TRUE(token.expired());
}

// close() drops the callbacks of the futures that combinators still watch,
// and no others: a gather that failed early still watches its other
// children (to retrieve what they end with, as asyncio's does), while a
// shield lets go of its inner once the outer is done.
TEST(HookingState, CloseDropsTheCallbacksOfWatchedFuturesOnly) {
  QiEventLoop loop;
  Watched gathered(loop), shielded(loop), alone(loop);
  auto failing = loop.create_future<int>();
  qi::Future<std::tuple<int, int>> g = qi::gather(gathered.f, failing);
  qi::Future<int> outer = qi::shield(shielded.f);
  failing.set_exception(std::make_exception_ptr(std::runtime_error("the first failure ends the gather")));
  outer.cancel();
  first_steps(loop);
  ASSERT_TRUE(g.done());
  EXPECT_THROW(g.result(), std::runtime_error);
  loop.close();
  EXPECT_TRUE(gathered.token.expired());
  EXPECT_FALSE(shielded.token.expired());
  EXPECT_FALSE(alone.token.expired());
}

// gather(pending, done) on a closed loop: the hook on the done child throws
// (a closed loop schedules nothing), after the one on the pending child was
// made. That hook must not be left holding a gather its failed constructor
// freed: it was, and destroying the pending future's callbacks then
// released a freed state (AddressSanitizer: heap-use-after-free, here when
// the loop's destructor or the last handle drops them). Tuple and vector.
TEST(HookingState, AGatherThatThrowsAtADoneChildOfAClosedLoopLeavesNoHookOnAFreedState) {
  std::vector<qi::Future<int>> kept;
  {
    QiEventLoop loop;
    Watched a(loop), b(loop);
    auto done = loop.create_future<int>();
    done.set_result(1);
    loop.close();
    EXPECT_THROW((void)qi::gather(a.f, done), qi::RuntimeError);
    EXPECT_THROW((void)qi::gather_settled(std::vector<qi::Future<int>>{b.f, done}), qi::RuntimeError);
    kept = {a.f, b.f};
  }
  for (auto& f : kept) EXPECT_FALSE(f.done());
  kept.clear();  // their callbacks go: nothing they hold may be freed already
}

// A long chain of pending shields (each the inner of the next), its top
// still held when the loop closes. close() drops each shield's own callback,
// which is what let go of its inner: so the inner goes with it. It stayed,
// and dropping the top handle then destroyed the chain one nested call per
// shield, past the end of the stack.
TEST(HookingState, AChainOfShieldsHeldAtCloseGoesWithoutRecursingPerLink) {
  QiEventLoop loop;
  Watched w(loop);
  auto top = std::make_unique<qi::Future<int>>(qi::shield(w.f));
  for (int i = 0; i < 200000; ++i) *top = qi::shield(*top);
  loop.close();
  EXPECT_TRUE(w.token.expired());
  top.reset();
}

// Each allocation of gather(a, b) fails in turn, b's hook among them (b
// holds two callbacks already, so a third one allocates), which comes after
// a's hook was made. The gather that threw is held by a's hook alone: it
// must not be freed (a's callbacks would release freed memory), nor report
// anything when a and b then fail (it was pending: a's failure failed it,
// and nobody could retrieve that).
TEST(HookingState, AGatherWhoseHookFailsToAllocateLeavesNothingFreedOrReportedBehind) {
  int failed = 0;
  for (long n = 1;; ++n) {
    ASSERT_LT(n, 1000) << "gather(a, b) never stopped allocating";
    Strings reports;
    QiEventLoop loop;
    record_reports(loop, reports);
    auto a = loop.create_future<int>();
    auto b = loop.create_future<int>();
    b.add_done_callback([] {});
    b.add_done_callback([] {});
    if (!fails_at(n, [&] { (void)qi::gather(a, b); })) break;  // past its last allocation
    ++failed;
    a.set_exception(std::make_exception_ptr(std::runtime_error("a")));
    b.set_exception(std::make_exception_ptr(std::runtime_error("b")));
    first_steps(loop);
    EXPECT_NE(a.exception(), nullptr);  // their own outcomes are read: only a gather's could be reported
    EXPECT_NE(b.exception(), nullptr);
    loop.close();
    EXPECT_THAT(reports, testing::IsEmpty()) << "allocation " << n;
  }
  // The sweep ends at the first run with no failure: so the last allocation
  // of gather(a, b), b's hook (after a's, which allocates nothing), failed.
  EXPECT_GE(failed, 1);
}

// The same for shield(b): its hook on b fails to allocate after its hook on
// itself was made. Nothing is left hooked, freed or reported, and b's own
// callbacks run.
TEST(HookingState, AShieldWhoseHookFailsToAllocateLeavesNothingBehind) {
  int failed = 0;
  for (long n = 1;; ++n) {
    ASSERT_LT(n, 1000) << "shield(b) never stopped allocating";
    Strings reports;
    QiEventLoop loop;
    record_reports(loop, reports);
    auto b = loop.create_future<int>();
    int ran = 0;
    b.add_done_callback([&ran] { ++ran; });
    b.add_done_callback([&ran] { ++ran; });
    if (!fails_at(n, [&] { (void)qi::shield(b); })) break;
    ++failed;
    b.set_exception(std::make_exception_ptr(std::runtime_error("b")));
    first_steps(loop);
    EXPECT_EQ(ran, 2);
    EXPECT_NE(b.exception(), nullptr);
    loop.close();
    EXPECT_THAT(reports, testing::IsEmpty()) << "allocation " << n;
  }
  EXPECT_GE(failed, 1);
}

// What a callback's destructor may do while close() walks its watchers:
// close() again, make new gathers and shields (linked during the walk),
// complete a watched future, cancel another gather, drop the last handles
// of a gather and of a future another one watches. Every pair still lets go.
TEST(HookingState, CallbacksDestroyedByTheWalkMayCloseMakeCompleteCancelAndDrop) {
  QiEventLoop loop;
  Watched a(loop), b(loop), c(loop);
  auto d = std::make_unique<qi::Future<int>>(loop.create_future<int>());
  auto g2 = std::make_unique<qi::Future<std::tuple<int, int>>>(qi::gather(b.f, c.f));
  std::weak_ptr<int> made_token;
  bool ran = false;
  a.f.add_done_callback(OnDestroy([&] {
    ran = true;
    loop.close();
    Watched fresh(loop);
    made_token = fresh.token;
    (void)qi::gather(fresh.f);
    (void)qi::shield(fresh.f);
    b.f.set_result(5);  // schedules nothing now: its callbacks go
    EXPECT_TRUE(g2->cancel());
    g2.reset();
    d.reset();
  }));
  (void)qi::gather(a.f, *d);
  (void)qi::gather(a.f, a.f, a.f);
  for (int i = 0; i < 10; ++i) (void)qi::shield(a.f);
  loop.close();
  EXPECT_TRUE(ran);
  EXPECT_TRUE(a.token.expired());
  EXPECT_TRUE(b.token.expired());
  EXPECT_TRUE(c.token.expired());
  EXPECT_TRUE(made_token.expired());
}

// One future watched by many gathers and shields, each also watching a
// future of its own: close() lets go of all of them.
TEST(HookingState, CloseLetsGoOfManyCombinatorsWatchingOneFuture) {
  QiEventLoop loop;
  Watched shared(loop);
  std::vector<std::weak_ptr<int>> tokens;
  for (int i = 0; i < 20000; ++i) {
    Watched own(loop);
    tokens.push_back(own.token);
    if (i % 2 == 0)
      (void)qi::gather(own.f, shared.f);
    else
      (void)qi::gather(qi::shield(own.f), qi::shield(shared.f));
  }
  loop.close();
  EXPECT_TRUE(shared.token.expired());
  for (const auto& t : tokens) ASSERT_TRUE(t.expired());
}

// Handles of a future, its shield and a gather of that shield outlive their
// loop: its destructor unhooked them, and they go later in any order.
TEST(HookingState, CombinatorsHandlesOutliveTheirLoop) {
  std::unique_ptr<qi::Future<int>> f, s;
  std::unique_ptr<qi::Future<std::tuple<int>>> g;
  std::weak_ptr<int> token;
  {
    QiEventLoop loop;
    Watched w(loop);
    token = w.token;
    f = std::make_unique<qi::Future<int>>(w.f);
    s = std::make_unique<qi::Future<int>>(qi::shield(*f));
    g = std::make_unique<qi::Future<std::tuple<int>>>(qi::gather(*s));
  }
  EXPECT_TRUE(token.expired());
  EXPECT_FALSE(f->done());
  s.reset();
  f->set_result(1);  // no loop: nothing to run
  g.reset();
  f.reset();
}
