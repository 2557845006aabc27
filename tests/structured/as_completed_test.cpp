// qi::as_completed: completion order, the original handles (3.13), the
// timeout, cancellation at the await without losing a completion, an
// abandoned iteration, moved results.
#include <qiloop/structured/as_completed.h>
#include <qiloop/testing.h>

#include "combinator_util.h"

#include <memory>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using namespace combinator_test;

namespace {

std::vector<qi::Task<int>> tasks_after(std::vector<int> seconds) {
  std::vector<qi::Task<int>> v;
  for (int s : seconds) v.push_back(qi::create_task(value_after(std::chrono::seconds(s), s)));
  return v;
}

}  // namespace

// ts = tasks sleeping 3, 1, 2 (returning that number)
// for nxt in as_completed(ts): log((await nxt, elapsed))
// -> (1, 1.0), (2, 2.0), (3, 3.0)
QILOOP_TEST_MODES_VT(AsCompleted, YieldsResultsInCompletionOrder) {
  const auto t0 = qi::get_running_loop().time();
  auto ts = tasks_after({3, 1, 2});
  std::vector<int> got;
  auto ac = qi::as_completed(ts);
  EXPECT_EQ(ac.size(), 3u);
  for (auto next : ac) {
    got.push_back(co_await next);
    EXPECT_EQ(since(t0), std::chrono::seconds(got.back()));
  }
  EXPECT_EQ(got, (std::vector<int>{1, 2, 3}));
  EXPECT_EQ(ts[0].result(), 3);  // copied: the handles still hold their results
}

// 3.13: async for t in as_completed(ts): the original tasks.
QILOOP_TEST_MODES_VT(AsCompleted, TaskYieldsTheOriginalHandles) {
  auto ts = tasks_after({2, 1});
  std::vector<qi::Task<int>> order;
  for (auto next : qi::as_completed(ts)) order.push_back(co_await next.task());
  QILOOP_CO_ASSERT(ASSERT_EQ(order.size(), 2u));
  EXPECT_TRUE(order[0] == ts[1]);
  EXPECT_TRUE(order[1] == ts[0]);
}

QILOOP_TEST_MODES_VT(AsCompleted, ExceptionsKeepTheirTypeAndCancelledChildrenRaiseCancelledError) {
  std::vector<qi::Task<int>> ts;
  ts.push_back(qi::create_task(boom_after(1s, "first")));
  ts.push_back(qi::create_task(value_after(2s, 2)));
  ts.push_back(qi::create_task(value_after(3s, 3)));
  ts[2].cancel("gone");
  Strings log;
  for (auto next : qi::as_completed(ts)) {
    try {
      log.push_back(std::to_string(co_await next));
    } catch (const Boom& e) {
      log.push_back(std::string("boom ") + e.what());
    } catch (const qi::CancelledError& e) {
      log.push_back("cancelled " + e.message());
    }
  }
  EXPECT_EQ(log, (Strings{"cancelled gone", "boom first", "2"}));
}

// for nxt in as_completed(ts, timeout=2.5) with ts sleeping 3, 1, 2:
// -> ('b', 1.0), ('c', 2.0), ('timeout', 2.5)   (3.11 and 3.13 agree)
QILOOP_TEST_MODES_VT(AsCompleted, AfterTheTimeoutTheRestRaiseTimeoutError) {
  const auto t0 = qi::get_running_loop().time();
  auto ts = tasks_after({3, 1, 2});
  Strings log;
  for (auto next : qi::as_completed(ts, 2500ms)) {
    try {
      int v = co_await next;
      log.push_back(std::to_string(v) + " at " + std::to_string(since(t0).count()));
    } catch (const qi::TimeoutError&) {
      log.push_back("timeout at " + std::to_string(since(t0).count()));
    }
  }
  EXPECT_EQ(log, (Strings{"1 at 1000", "2 at 2000", "timeout at 2500"}));
  EXPECT_FALSE(ts[0].cancelled());  // nothing is cancelled
  co_await ts[0];
}

// Completions that arrived before the timeout are still handed out first.
QILOOP_TEST_MODES_VT(AsCompleted, CompletionsBeforeTheTimeoutComeFirst) {
  auto ts = tasks_after({1, 2, 9});
  auto ac = qi::as_completed(ts, 5.0);
  co_await qi::sleep(6s);
  Strings log;
  for (auto next : ac) {
    try {
      log.push_back(std::to_string(co_await next));
    } catch (const qi::TimeoutError&) {
      log.push_back("timeout");
    }
  }
  EXPECT_EQ(log, (Strings{"1", "2", "timeout"}));
  co_await ts[2];
}

// A task cancelled at `co_await next` gets CancelledError; a completion
// that arrives meanwhile goes to the next await (nothing lost).
QILOOP_TEST_MODES_VT(AsCompleted, CancellingTheAwaiterLosesNoCompletion) {
  auto ts = tasks_after({1, 2});
  auto ac = qi::as_completed(ts);
  auto it = ac.begin();
  auto first = qi::create_task([](qi::AsCompleted<qi::Task<int>, false>::Next n) -> qi::Coro<int> {
    co_return co_await n;
  }(*it));
  ++it;
  co_await qi::sleep(500ms);
  first.cancel();
  co_await qi::sleep(0);
  EXPECT_TRUE(first.cancelled());
  // Woken and cancelled in the same iteration: the wake-up is passed on.
  auto second = qi::create_task([](qi::AsCompleted<qi::Task<int>, false>::Next n) -> qi::Coro<int> {
    co_return co_await n;
  }(*it));
  EXPECT_EQ(co_await second, 1);
  co_await ts[1];
}

QILOOP_TEST_MODES_VT(AsCompleted, AWakeUpCancelledInFlightPassesToTheNextWaiter) {
  auto& loop = qi::get_running_loop();
  std::vector<qi::Future<int>> fs;
  fs.push_back(loop.create_future<int>());
  fs.push_back(loop.create_future<int>());
  auto ac = qi::as_completed(fs);
  auto it = ac.begin();
  auto await_one = [](qi::AsCompleted<qi::Future<int>, false>::Next n) -> qi::Coro<int> { co_return co_await n; };
  auto a = qi::create_task(await_one(*it));
  ++it;
  auto b = qi::create_task(await_one(*it));
  co_await qi::sleep(0);
  fs[0].set_result(10);
  co_await qi::sleep(0);  // the done callback runs: a is woken
  a.cancel();             // ... and cancelled before it runs
  EXPECT_EQ(co_await b, 10);
  EXPECT_TRUE(a.cancelled());
  fs[1].set_result(11);  // nobody awaits it any more
}

QILOOP_TEST_MODES_VT(AsCompleted, BreakingOutEarlyLeavesTheTasksRunning) {
  auto ts = tasks_after({1, 2, 3});
  for (auto next : qi::as_completed(ts, 10s)) {
    EXPECT_EQ(co_await next, 1);
    break;
  }
  co_await qi::sleep(5s);
  EXPECT_EQ(ts[2].result(), 3);
  // A plain future nobody will complete: dropping the range unhooks it, so
  // nothing keeps the other alive (ASan checks there is no cycle).
  auto& loop = qi::get_running_loop();
  std::vector<qi::Future<int>> never{loop.create_future<int>()};
  { auto ac = qi::as_completed(never); }
}

QILOOP_TEST_MODES_VT(AsCompleted, CorosBecomeTasksAndTheirResultsAreMoved) {
  auto make = [](int v) -> qi::Coro<std::unique_ptr<int>> {
    co_await qi::sleep(std::chrono::seconds(v));
    co_return std::make_unique<int>(v);
  };
  std::vector<qi::Coro<std::unique_ptr<int>>> coros;
  coros.push_back(make(2));
  coros.push_back(make(1));
  std::vector<int> got;
  for (auto next : qi::as_completed(std::move(coros))) got.push_back(*co_await next);
  EXPECT_EQ(got, (std::vector<int>{1, 2}));
  std::vector<qi::Coro<int>> none;
  EXPECT_EQ(qi::as_completed(std::move(none)).size(), 0u);
}

QILOOP_TEST_MODES_VT(AsCompleted, MisuseThrowsAtTheCall) {
  std::vector<qi::Task<int>> empty_handle(1);
  EXPECT_THROW((void)qi::as_completed(empty_handle), std::invalid_argument);
  std::vector<qi::Coro<int>> coros;
  coros.push_back(value_after(1s, 1));
  coros.push_back(qi::Coro<int>());
  EXPECT_THROW((void)qi::as_completed(std::move(coros)), std::invalid_argument);
  EXPECT_TRUE(coros[0].valid());  // nothing was started
  co_await coros[0];
}

// for f in as_completed([t, t]): await f -> t's result twice (as gather).
// A vector handed over as an rvalue moved it out once per occurrence.
QILOOP_TEST_MODES_VT(AsCompleted, TheSameTaskTwiceYieldsItsResultTwice) {
  auto t = qi::create_task([]() -> qi::Coro<std::string> {
    co_await qi::sleep(1ms);
    co_return std::string(40, 'x');
  }());
  std::vector<qi::Task<std::string>> v{t, t};
  std::vector<std::string> got;
  for (auto next : qi::as_completed(std::move(v))) got.push_back(co_await next);
  EXPECT_EQ(got, (std::vector<std::string>(2, std::string(40, 'x'))));
  EXPECT_EQ(t.result(), std::string(40, 'x'));
  // A result that cannot be copied cannot be yielded twice: refused at the call.
  auto p = qi::create_task([]() -> qi::Coro<std::unique_ptr<int>> { co_return std::make_unique<int>(1); }());
  std::vector<qi::Task<std::unique_ptr<int>>> ps{p, p};
  try {
    (void)qi::as_completed(std::move(ps));
    ADD_FAILURE() << "no error";
  } catch (const qi::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("qi::as_completed: the same task or future is passed twice and its result "
                                         "type cannot be copied"),
              std::string::npos)
        << e.what();
  }
  EXPECT_EQ(*(co_await std::move(p)), 1);
}
