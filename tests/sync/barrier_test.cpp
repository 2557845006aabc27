// qi::Barrier (asyncio 3.13; 3.11 has the same Barrier and printed these
// orders): arrival indices, draining, cancellation, abort, reset, loop
// binding.
#include <qiloop/sync/barrier.h>

#include "sync/sync_test_util.h"

#include <memory>
#include <string>

using namespace std::chrono_literals;
using sync_test::Strings;

namespace {

// i = await b.wait(); log.append(f"{name} {i}"), or "name cancelled" / "name broken".
qi::Coro<void> party(qi::Barrier& b, std::string name, Strings& log) {
  try {
    std::size_t i = co_await b.wait();
    log.push_back(name + " " + std::to_string(i));
  } catch (const qi::CancelledError&) {
    log.push_back(name + " cancelled");
    throw;
  } catch (const qi::BrokenBarrierError&) {
    log.push_back(name + " broken");
    throw;
  }
}

// Awaits t, swallowing the error it ends with (each test logs it).
template <class T>
qi::Coro<void> settle(qi::Task<T>& t) {
  try {
    co_await t;
  } catch (const qi::CancelledError&) {
  } catch (const qi::BrokenBarrierError&) {
  }
}

}  // namespace

TEST(Barrier, NeedsAtLeastOneParty) {
  EXPECT_THROW(qi::Barrier(0), qi::ValueError);
  // A negative count was taken as a huge unsigned one: a barrier that never trips.
  EXPECT_THROW(qi::Barrier(-1), qi::ValueError);
  EXPECT_EQ(qi::Barrier(1).parties(), 1u);
}

// A barrier destroyed while tasks waited in it used to leave them suspended
// in its freed memory (found by the attack round): now they throw
// BrokenBarrierError and their frames unwind cleanly.
QILOOP_TEST_MODES_VT(Barrier, DestroyingItBreaksItForTheTasksWaiting) {
  auto b = std::make_unique<qi::Barrier>(3);
  auto waiter = [](qi::Barrier& bar) -> qi::Coro<std::string> {
    try {
      co_await bar.wait();
      co_return "passed";
    } catch (const qi::BrokenBarrierError& e) {
      co_return e.what();
    }
  };
  auto x = qi::create_task(waiter(*b));
  auto y = qi::create_task(waiter(*b));
  co_await qi::sleep(0);
  EXPECT_EQ(b->n_waiting(), 2u);
  b.reset();
  EXPECT_EQ(co_await x, "qi::Barrier destroyed while waiting");
  EXPECT_EQ(co_await y, "qi::Barrier destroyed while waiting");
}

QILOOP_TEST_MODES_VT(Barrier, OnePartyPassesAtOnce) {
  qi::Barrier b(1);
  EXPECT_EQ(co_await b.wait(), 0u);
  EXPECT_EQ(co_await b.wait(), 0u);
}

// b = Barrier(3); ts = [create_task(party(n)) for n in "abc"]; await sleep(0)
//   log == ['c 2'], b.n_waiting == 0 (draining)
// d = create_task(party("d")); await gather(*ts)  -> d waits for the next round
//   b.n_waiting == 1
// e, f = ...; await gather(d, e, f)
// -> ['c 2', 'a 0', 'b 1', 'f 2', 'd 0', 'e 1']
QILOOP_TEST_MODES_VT(Barrier, ReleasesEveryPartyWithItsArrivalIndexAndFillsAgain) {
  qi::Barrier b(3);
  Strings log;
  auto a = qi::create_task(party(b, "a", log));
  auto bb = qi::create_task(party(b, "b", log));
  auto c = qi::create_task(party(b, "c", log));
  co_await qi::sleep(0);
  EXPECT_EQ(log, (Strings{"c 2"}));
  EXPECT_EQ(b.n_waiting(), 0u);  // draining
  auto d = qi::create_task(party(b, "d", log));
  co_await a;
  co_await bb;
  co_await c;
  EXPECT_EQ(b.n_waiting(), 1u);  // d, in the next round
  auto e = qi::create_task(party(b, "e", log));
  auto f = qi::create_task(party(b, "f", log));
  co_await d;
  co_await e;
  co_await f;
  EXPECT_EQ(log, (Strings{"c 2", "a 0", "b 1", "f 2", "d 0", "e 1"}));
  EXPECT_EQ(b.n_waiting(), 0u);
  EXPECT_FALSE(b.broken());
}

// ts = [create_task(party(n)) for n in "ab"]; await sleep(0)
// ts[0].cancel(); await sleep(0)  -> n_waiting 1, not broken
// ts += [create_task(party(n)) for n in "cd"]; ...
// -> ['a cancelled', 'd 2', 'b 1', 'c 1']  (the index is the count on arrival:
//    after a left, c arrives as the second one again)
QILOOP_TEST_MODES_VT(Barrier, ACancelledPartyLeavesWithoutBreakingIt) {
  qi::Barrier b(3);
  Strings log;
  auto a = qi::create_task(party(b, "a", log));
  auto bb = qi::create_task(party(b, "b", log));
  co_await qi::sleep(0);
  EXPECT_EQ(b.n_waiting(), 2u);
  a.cancel();
  co_await qi::sleep(0);
  EXPECT_EQ(b.n_waiting(), 1u);
  EXPECT_FALSE(b.broken());
  auto c = qi::create_task(party(b, "c", log));
  auto d = qi::create_task(party(b, "d", log));
  co_await settle(a);
  co_await bb;
  co_await c;
  co_await d;
  EXPECT_TRUE(a.cancelled());
  EXPECT_EQ(log, (Strings{"a cancelled", "d 2", "b 1", "c 1"}));
}

// The barrier trips and a is cancelled before it runs: a gets
// CancelledError, b its index, and the barrier fills again.
// -> ['c 2', 'a cancelled', 'b 1'], n_waiting 0, filling
QILOOP_TEST_MODES_VT(Barrier, APartyCancelledAsTheBarrierTripsDoesNotHoldUpTheOthers) {
  qi::Barrier b(3);
  Strings log;
  auto a = qi::create_task(party(b, "a", log));
  auto bb = qi::create_task(party(b, "b", log));
  co_await qi::sleep(0);
  auto c = qi::create_task(party(b, "c", log));
  co_await qi::sleep(0);
  a.cancel();
  co_await settle(a);
  co_await bb;
  co_await c;
  EXPECT_EQ(log, (Strings{"c 2", "a cancelled", "b 1"}));
  EXPECT_EQ(b.n_waiting(), 0u);
  // The next round works.
  auto x = qi::create_task(party(b, "x", log));
  auto y = qi::create_task(party(b, "y", log));
  auto z = qi::create_task(party(b, "z", log));
  co_await x;
  co_await y;
  co_await z;
  EXPECT_EQ(log.size(), 6u);
}

// A task arriving while the barrier drains waits in block(); cancelled
// there, it leaves without ever counting.
// a, b = create_task(party("a")), create_task(party("b")); await sleep(0)
// c, late = create_task(party("c")), create_task(party("late")); await sleep(0)
//   draining; late waits to get in
// late.cancel(); ...  -> ['c 2', 'a 0', 'b 1', 'late cancelled'], n_waiting 0
QILOOP_TEST_MODES_VT(Barrier, APartyCancelledWhileTheBarrierDrainsNeverCounts) {
  qi::Barrier b(3);
  Strings log;
  auto a = qi::create_task(party(b, "a", log));
  auto bb = qi::create_task(party(b, "b", log));
  co_await qi::sleep(0);
  auto c = qi::create_task(party(b, "c", log));
  auto late = qi::create_task(party(b, "late", log));
  co_await qi::sleep(0);
  EXPECT_EQ(b.n_waiting(), 0u);  // draining
  late.cancel();
  co_await settle(late);
  co_await a;
  co_await bb;
  co_await c;
  EXPECT_TRUE(late.cancelled());
  EXPECT_EQ(b.n_waiting(), 0u);
  EXPECT_EQ(log, (Strings{"c 2", "a 0", "b 1", "late cancelled"}));
}

// ts = [create_task(party(n)) for n in "ab"]; await sleep(0)
// await b.abort(); log.append("aborted"); ...; await party("late")
// -> ['aborted', 'a broken', 'b broken', 'late broken'], broken, n_waiting 0
// await b.reset() -> not broken, usable
QILOOP_TEST_MODES_VT(Barrier, AbortBreaksItForWaitingAndLaterPartiesUntilReset) {
  qi::Barrier b(3);
  Strings log;
  auto a = qi::create_task(party(b, "a", log));
  auto bb = qi::create_task(party(b, "b", log));
  co_await qi::sleep(0);
  co_await b.abort();
  log.push_back("aborted");
  EXPECT_TRUE(b.broken());
  co_await settle(a);
  co_await settle(bb);
  EXPECT_THROW(co_await b.wait(), qi::BrokenBarrierError);
  log.push_back("late broken");
  EXPECT_EQ(log, (Strings{"aborted", "a broken", "b broken", "late broken"}));
  EXPECT_EQ(b.n_waiting(), 0u);
  co_await b.reset();
  EXPECT_FALSE(b.broken());
  qi::Barrier one(1);
  co_await one.abort();
  co_await one.reset();
  EXPECT_EQ(co_await one.wait(), 0u);
}

// ts = [create_task(party(n)) for n in "ab"]; await sleep(0)
// await b.reset(); log.append("reset"); c = create_task(party("c"))
// ... d, e = ...; -> ['reset', 'a broken', 'b broken', 'e 2', 'c 0', 'd 1']
QILOOP_TEST_MODES_VT(Barrier, ResetBreaksTheWaitingPartiesAndStartsAFreshRound) {
  qi::Barrier b(3);
  Strings log;
  auto a = qi::create_task(party(b, "a", log));
  auto bb = qi::create_task(party(b, "b", log));
  co_await qi::sleep(0);
  co_await b.reset();
  log.push_back("reset");
  auto c = qi::create_task(party(b, "c", log));
  co_await settle(a);
  co_await settle(bb);
  EXPECT_EQ(b.n_waiting(), 1u);
  auto d = qi::create_task(party(b, "d", log));
  auto e = qi::create_task(party(b, "e", log));
  co_await c;
  co_await d;
  co_await e;
  EXPECT_EQ(log, (Strings{"reset", "a broken", "b broken", "e 2", "c 0", "d 1"}));
}

TEST(Barrier, IsBoundToTheFirstLoopThatWaitsOnIt) {
  qi::Barrier b(2);  // no loop runs yet
  sync_test::expect_bound_to_first_loop(
      "qi::Barrier", [&]() -> qi::Coro<void> { co_await b.wait(); },
      [&]() -> qi::Coro<void> { co_await b.wait(); });
  EXPECT_EQ(b.n_waiting(), 0u);  // the refused wait left
}
