// qi::Event: the flag, waking every waiter in order, cancellation, loop
// binding. Orders are asyncio's (3.11 and 3.13 agree on Event).
#include <qiloop/sync/event.h>

#include "sync/sync_test_util.h"

using namespace std::chrono_literals;
using sync_test::Strings;

namespace {

qi::Coro<void> waiter(qi::Event& ev, std::string name, Strings& log) {
  try {
    co_await ev.wait();
    log.push_back(name);
  } catch (const qi::CancelledError&) {
    log.push_back(name + " cancelled");
    throw;
  }
}

}  // namespace

QILOOP_TEST_MODES_VT(Event, WaitOnASetEventReturnsWithoutSuspending) {
  qi::Event ev;
  EXPECT_FALSE(ev.is_set());
  ev.set();
  EXPECT_TRUE(ev.is_set());
  bool other_ran = false;
  auto other = qi::create_task([](bool& ran) -> qi::Coro<void> {
    ran = true;
    co_return;
  }(other_ran));
  co_await ev.wait();
  EXPECT_FALSE(other_ran);  // no trip through the loop
  co_await other;
}

// async def waiter(e, name): await e.wait(); log.append(name)
// e = asyncio.Event(); ts = [create_task(waiter(e, n)) for n in "abc"]
// await asyncio.sleep(0); e.set(); log.append("set"); await gather(*ts)
// -> ['set', 'a', 'b', 'c']
QILOOP_TEST_MODES_VT(Event, SetWakesEveryWaiterInTheOrderTheyCame) {
  qi::Event ev;
  Strings log;
  auto a = qi::create_task(waiter(ev, "a", log));
  auto b = qi::create_task(waiter(ev, "b", log));
  auto c = qi::create_task(waiter(ev, "c", log));
  co_await qi::sleep(0);
  EXPECT_EQ(ev.waiters(), 3u);
  ev.set();
  log.push_back("set");
  co_await c;
  co_await b;
  co_await a;
  EXPECT_EQ(log, (Strings{"set", "a", "b", "c"}));
  EXPECT_EQ(ev.waiters(), 0u);
}

// A clear() right after set() does not take the wake-up back: the waiters
// were woken (asyncio: their futures are done).
QILOOP_TEST_MODES_VT(Event, ClearAfterSetStillLetsTheWokenWaitersGoButBlocksNewOnes) {
  qi::Event ev;
  Strings log;
  auto a = qi::create_task(waiter(ev, "a", log));
  co_await qi::sleep(0);
  ev.set();
  ev.clear();
  auto late = qi::create_task(waiter(ev, "late", log));
  co_await a;
  co_await qi::sleep(1h);
  EXPECT_FALSE(late.done());
  ev.set();
  co_await late;
  EXPECT_EQ(log, (Strings{"a", "late"}));
}

QILOOP_TEST_MODES_VT(Event, ACancelledWaiterLeavesAndTheOthersStillWake) {
  qi::Event ev;
  Strings log;
  auto a = qi::create_task(waiter(ev, "a", log));
  auto b = qi::create_task(waiter(ev, "b", log));
  co_await qi::sleep(0);
  a.cancel();
  co_await qi::sleep(0);
  EXPECT_TRUE(a.cancelled());
  EXPECT_EQ(ev.waiters(), 1u);
  ev.set();
  co_await b;
  EXPECT_EQ(log, (Strings{"a cancelled", "b"}));
}

// e.set(); a.cancel() before a runs: a gets CancelledError (asyncio's
// _must_cancel), b still wakes.
QILOOP_TEST_MODES_VT(Event, AWaiterCancelledWhileBeingWokenDoesNotTakeTheWakeUpFromOthers) {
  qi::Event ev;
  Strings log;
  auto a = qi::create_task(waiter(ev, "a", log));
  auto b = qi::create_task(waiter(ev, "b", log));
  co_await qi::sleep(0);
  ev.set();
  a.cancel();
  co_await b;
  co_await qi::sleep(0);
  EXPECT_TRUE(a.cancelled());
  EXPECT_EQ(log, (Strings{"a cancelled", "b"}));
  EXPECT_EQ(ev.waiters(), 0u);
}

TEST(Event, IsBoundToTheFirstLoopThatWaitsOnIt) {
  qi::Event ev;  // no loop runs yet
  sync_test::expect_bound_to_first_loop(
      "qi::Event", [&]() -> qi::Coro<void> { co_await ev.wait(); },
      [&]() -> qi::Coro<void> {
        ev.set();
        ev.clear();  // so that the second loop's wait blocks
        co_return;
      });
}
