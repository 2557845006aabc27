// qi::wait: the three return conditions, the timeout, input order, never
// cancelling (also when the waiting task is), misuse.
#include <qiloop/structured/wait.h>
#include <qiloop/testing.h>

#include "combinator_util.h"

#include <cmath>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using namespace combinator_test;

namespace {

std::vector<qi::Task<int>> three_tasks(milliseconds da, milliseconds db, milliseconds dc) {
  std::vector<qi::Task<int>> v;
  v.push_back(qi::create_task(value_after(da, 1)));
  v.push_back(qi::create_task(value_after(db, 2)));
  v.push_back(qi::create_task(value_after(dc, 3)));
  return v;
}

}  // namespace

// a, b, c = tasks sleeping 3, 1, 2
// done, pending = await wait([a, b, c], return_when=FIRST_COMPLETED)
// -> after 1 s: done == {b}, pending == {a, c}, nothing cancelled (3.11 = 3.13)
QILOOP_TEST_MODES_VT(Wait, FirstCompletedReturnsAtTheFirstAndKeepsInputOrder) {
  const auto t0 = qi::get_running_loop().time();
  auto ts = three_tasks(3s, 1s, 2s);
  auto waited = co_await qi::wait(ts, qi::FIRST_COMPLETED);
  auto& done = waited.done;  // not a structured binding: clang 14 cannot capture one in a lambda
  auto& pending = waited.pending;
  EXPECT_EQ(since(t0), 1s);
  QILOOP_CO_ASSERT(ASSERT_EQ(done.size(), 1u));
  EXPECT_TRUE(done[0] == ts[1]);
  QILOOP_CO_ASSERT(ASSERT_EQ(pending.size(), 2u));
  EXPECT_TRUE(pending[0] == ts[0]);  // input order
  EXPECT_TRUE(pending[1] == ts[2]);
  EXPECT_FALSE(ts[0].cancelled());
  auto all = co_await qi::wait(ts);  // ALL_COMPLETED
  EXPECT_EQ(since(t0), 3s);
  EXPECT_EQ(all.done.size(), 3u);
  EXPECT_TRUE(all.pending.empty());
}

// x cancelled, y raises after 2 s, z sleeps 5 s:
// await wait([x, y, z], return_when=FIRST_EXCEPTION) -> after 2 s, done ==
// {x, y}: the cancellation did not count as an exception.
QILOOP_TEST_MODES_VT(Wait, FirstExceptionIgnoresCancellations) {
  const auto t0 = qi::get_running_loop().time();
  std::vector<qi::Task<int>> ts;
  ts.push_back(qi::create_task(value_after(1s, 1)));
  ts.push_back(qi::create_task(boom_after(2s, "y")));
  ts.push_back(qi::create_task(value_after(5s, 3)));
  ts[0].cancel();
  auto waited = co_await qi::wait(ts, qi::FIRST_EXCEPTION);
  auto& done = waited.done;  // not a structured binding: clang 14 cannot capture one in a lambda
  auto& pending = waited.pending;
  EXPECT_EQ(since(t0), 2s);
  EXPECT_EQ(done.size(), 2u);
  EXPECT_EQ(pending.size(), 1u);
  EXPECT_THROW(done[1].result(), Boom);
  // No exception at all: FIRST_EXCEPTION waits for everything.
  auto rest = co_await qi::wait(pending, qi::FIRST_EXCEPTION);
  EXPECT_EQ(since(t0), 5s);
  EXPECT_TRUE(rest.pending.empty());
}

// done, pending = await wait([a, c, z], timeout=1.5): no TimeoutError.
QILOOP_TEST_MODES_VT(Wait, TheTimeoutReturnsWhatIsPendingWithoutRaising) {
  const auto t0 = qi::get_running_loop().time();
  auto ts = three_tasks(1s, 2s, 3s);
  auto waited = co_await qi::wait(ts, 1500ms);
  auto& done = waited.done;  // not a structured binding: clang 14 cannot capture one in a lambda
  auto& pending = waited.pending;
  EXPECT_EQ(since(t0), 1500ms);
  EXPECT_EQ(done.size(), 1u);
  EXPECT_EQ(pending.size(), 2u);
  auto r2 = co_await qi::wait(pending, 0.75, qi::ALL_COMPLETED);  // double seconds
  EXPECT_EQ(since(t0), 2250ms);
  EXPECT_EQ(r2.done.size(), 1u);
  auto r3 = co_await qi::wait(r2.pending, 10s);  // finishes before the timeout
  EXPECT_EQ(since(t0), 3s);
  EXPECT_EQ(r3.done.size(), 1u);
  EXPECT_FALSE(ts[2].cancelled());
}

QILOOP_TEST_MODES_VT(Wait, CancellingTheWaiterCancelsNoChild) {
  auto ts = three_tasks(1s, 2s, 3s);
  auto waiter = qi::create_task(qi::wait(ts));
  co_await qi::sleep(1500ms);
  waiter.cancel("stop");
  try {
    co_await waiter;
    ADD_FAILURE() << "not cancelled";
  } catch (const qi::CancelledError& e) {
    EXPECT_EQ(e.message(), "stop");
  }
  EXPECT_FALSE(ts[1].done());
  auto r = co_await qi::wait(ts);  // they finish normally
  EXPECT_EQ(r.done.size(), 3u);
  EXPECT_EQ(ts[2].result(), 3);
}

// Done futures: still one iteration (their callbacks), as asyncio.
QILOOP_TEST_MODES_VT(Wait, AcceptsFuturesAndTypeErasedRefs) {
  auto& loop = qi::get_running_loop();
  auto f = loop.create_future<std::string>();
  f.set_result("done");
  auto t = qi::create_task(nothing_after(1s));
  std::vector<qi::FutureRef> refs{f.ref(), t.ref()};
  auto waited = co_await qi::wait(refs, qi::FIRST_COMPLETED);
  auto& done = waited.done;  // not a structured binding: clang 14 cannot capture one in a lambda
  auto& pending = waited.pending;
  EXPECT_EQ(done.size(), 1u);
  EXPECT_TRUE(done[0] == f);
  EXPECT_TRUE(pending[0] == t);
  std::vector<qi::Future<std::string>> fs{f};
  auto r = co_await qi::wait(fs);
  EXPECT_EQ(r.done.size(), 1u);
  co_await t;
}

QILOOP_TEST_MODES_VT(Wait, MisuseThrowsWhereAwaited) {
  auto w = qi::wait(std::vector<qi::Task<int>>{});  // a lazy coroutine: nothing yet
  EXPECT_THROW(co_await std::move(w), qi::ValueError);
  auto ts = three_tasks(1ms, 1ms, 1ms);
  EXPECT_THROW(co_await qi::wait(ts, static_cast<qi::ReturnWhen>(7)), qi::ValueError);
  std::vector<qi::Task<int>> empty_handle(1);
  EXPECT_THROW(co_await qi::wait(empty_handle), std::invalid_argument);
  EXPECT_THROW((void)qi::wait(ts, std::chrono::duration<double>(std::nan(""))), std::invalid_argument);
  {
    QiEventLoop other;
    std::vector<qi::Future<int>> foreign{other.create_future<int>()};
    EXPECT_THROW(co_await qi::wait(foreign), qi::ValueError);
  }
  co_await qi::wait(ts);
}
