// qi::TaskGroup (asyncio 3.13's taskgroups.py): 0, 1 and 2+ failures, the
// parent's cancellation by the group taken back, an outside cancel staying
// CancelledError, children added while wait() waits, refusals, and a group
// destroyed with children pending. The Python programs give 3.13's outcome
// (read from its taskgroups.py; 3.11 differs in the cancel bookkeeping, and
// raises an ExceptionGroup for one failure where qiloop rethrows it).
#include <qiloop/structured/task_group.h>
#include <qiloop/testing.h>

#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using Strings = std::vector<std::string>;

namespace {

QiEventLoop::time_point now() { return qi::get_running_loop().time(); }

qi::Coro<int> value_after(std::chrono::seconds d, int v) {
  co_await qi::sleep(d);
  co_return v;
}

qi::Coro<void> fail_after(std::chrono::seconds d, std::string name, Strings& log) {
  co_await qi::sleep(d);
  log.push_back(name + " fails");
  throw std::runtime_error(name);
}

qi::Coro<void> sleeper(std::chrono::seconds d, std::string name, Strings& log) {
  try {
    co_await qi::sleep(d);
    log.push_back(name + " done");
  } catch (const qi::CancelledError&) {
    log.push_back(name + " cancelled");
    throw;
  }
}

// Fails when cancelled.
qi::Coro<void> stubborn(std::string name, Strings& log) {
  bool cancelled = false;
  try {
    co_await qi::sleep(1h);
  } catch (const qi::CancelledError&) {
    cancelled = true;
  }
  if (cancelled) {
    log.push_back(name + " raises");
    throw std::logic_error(name);
  }
}

std::string what_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "?";
  }
}

}  // namespace

QILOOP_TEST_MODES_VT(TaskGroup, WaitsForEveryChild) {
  const auto t0 = now();
  qi::TaskGroup empty;
  co_await empty.wait();
  EXPECT_EQ(now(), t0);

  qi::TaskGroup g;
  qi::Task<int> a = g.create_task(value_after(1s, 1));
  qi::Task<int> b = g.create_task(value_after(3s, 2), "b");
  EXPECT_EQ(b.get_name(), "b");
  co_await g.wait();
  EXPECT_EQ(now() - t0, 3s);
  EXPECT_EQ(a.result() + b.result(), 3);
  EXPECT_EQ(qi::current_task().cancelling(), 0);
}

// async with asyncio.TaskGroup() as g:
//     g.create_task(fail(1, "a")); g.create_task(sleeper(10, "c"))
// # c cancelled; the failure of a is raised (3.13: ExceptionGroup([ValueError('a')]));
// # asyncio.current_task().cancelling() == 0
QILOOP_TEST_MODES_VT(TaskGroup, OneFailureCancelsTheSiblingsAndIsRethrownAsItself) {
  const auto t0 = now();
  Strings log;
  qi::TaskGroup g;
  g.create_task(fail_after(1s, "a", log));
  qi::Task<void> c = g.create_task(sleeper(10s, "c", log));
  std::string error;
  try {
    co_await g.wait();
  } catch (const std::runtime_error& e) {
    error = e.what();
  }
  EXPECT_EQ(error, "a");
  EXPECT_TRUE(c.cancelled());
  EXPECT_EQ(log, (Strings{"a fails", "c cancelled"}));
  EXPECT_EQ(now() - t0, 1s);
  EXPECT_EQ(qi::current_task().cancelling(), 0) << "the group's cancel of its parent was taken back";
  co_await qi::sleep(1s);  // and nothing lands later
}

// async with asyncio.TaskGroup() as g:
//     g.create_task(fail(1, "a")); g.create_task(stubborn("b")); g.create_task(sleeper(10, "c"))
// # ['a fails', 'b raises', 'c cancelled'], ExceptionGroup([ValueError('a'), KeyError('b')])
QILOOP_TEST_MODES_VT(TaskGroup, TwoFailuresMakeAnExceptionGroupInTheOrderTheyFailed) {
  Strings log;
  qi::TaskGroup g;
  g.create_task(fail_after(1s, "a", log));
  g.create_task(stubborn("b", log));
  g.create_task(sleeper(10s, "c", log));
  Strings errors;
  try {
    co_await g.wait();
  } catch (const qi::ExceptionGroup& eg) {
    for (const auto& e : eg.exceptions()) errors.push_back(what_of(e));
  }
  EXPECT_EQ(errors, (Strings{"a", "b"}));
  EXPECT_EQ(log, (Strings{"a fails", "b raises", "c cancelled"}));
  EXPECT_EQ(qi::current_task().cancelling(), 0);

  // Failing in the same iteration: in the order their tasks finished.
  qi::TaskGroup g2;
  g2.create_task(fail_after(1s, "x", log));
  g2.create_task(fail_after(1s, "y", log));
  errors.clear();
  try {
    co_await g2.wait();
  } catch (const qi::ExceptionGroup& eg) {
    for (const auto& e : eg.exceptions()) errors.push_back(what_of(e));
  }
  EXPECT_EQ(errors, (Strings{"x", "y"}));
}

// The parent's body is interrupted by the group (its sleep gets
// CancelledError), hands that to wait(), and gets the failure instead:
// async with asyncio.TaskGroup() as g:
//     g.create_task(fail(1, "a")); await asyncio.sleep(10)   # ValueError('a') (in a group), at t0 + 1
QILOOP_TEST_MODES_VT(TaskGroup, TheParentsBodyIsCancelledAndGetsTheFailure) {
  const auto t0 = now();
  Strings log;
  qi::TaskGroup g;
  g.create_task(fail_after(1s, "a", log));
  std::exception_ptr body;
  try {
    co_await qi::sleep(10s);
  } catch (...) {
    body = std::current_exception();
  }
  QILOOP_CO_ASSERT(ASSERT_TRUE(body));
  std::string error;
  try {
    co_await g.wait(body);
  } catch (const std::runtime_error& e) {
    error = e.what();
  }
  EXPECT_EQ(error, "a");
  EXPECT_EQ(now() - t0, 1s);
  EXPECT_EQ(qi::current_task().cancelling(), 0);
}

// A body error cancels the children and is one more failure, listed last:
// async with asyncio.TaskGroup() as g:
//     g.create_task(stubborn("b")); await asyncio.sleep(1); raise ZeroDivisionError
// # ExceptionGroup([KeyError('b'), ZeroDivisionError()])
QILOOP_TEST_MODES_VT(TaskGroup, ABodyErrorCancelsTheChildrenAndComesLast) {
  Strings log;
  qi::TaskGroup g;
  g.create_task(stubborn("b", log));
  co_await qi::sleep(1s);
  Strings errors;
  try {
    co_await g.wait(std::make_exception_ptr(std::domain_error("body")));
  } catch (const qi::ExceptionGroup& eg) {
    for (const auto& e : eg.exceptions()) errors.push_back(what_of(e));
  }
  EXPECT_EQ(errors, (Strings{"b", "body"}));

  // Alone, it is rethrown as itself.
  qi::TaskGroup g2;
  qi::Task<void> c = g2.create_task(sleeper(10s, "c", log));
  std::string error;
  try {
    co_await g2.wait(std::make_exception_ptr(std::domain_error("body2")));
  } catch (const std::domain_error& e) {
    error = e.what();
  }
  EXPECT_EQ(error, "body2");
  EXPECT_TRUE(c.cancelled());
}

// async def parent():
//     async with asyncio.TaskGroup() as g: g.create_task(sleeper(10, "c"))
// p = asyncio.create_task(parent()); await asyncio.sleep(1); p.cancel()
// await p    # CancelledError; c cancelled; p.cancelling() == 1
QILOOP_TEST_MODES_VT(TaskGroup, AnOutsideCancelCancelsTheChildrenAndStaysCancelled) {
  Strings log;
  int cancelling = -1;
  auto parent = qi::create_task([](Strings& log, int& cancelling) -> qi::Coro<void> {
    qi::TaskGroup g;
    g.create_task(sleeper(10s, "c", log));
    g.create_task(sleeper(20s, "d", log));
    try {
      co_await g.wait();
    } catch (const qi::CancelledError&) {
      cancelling = qi::current_task().cancelling();
      throw;
    }
  }(log, cancelling));
  co_await qi::sleep(1s);
  parent.cancel();
  bool cancelled = false;
  try {
    co_await parent;
  } catch (const qi::CancelledError&) {
    cancelled = true;
  }
  EXPECT_TRUE(cancelled);
  EXPECT_EQ(cancelling, 1);
  EXPECT_EQ(log, (Strings{"c cancelled", "d cancelled"}));
}

// A child fails on the outside cancel: the failure wins, and the outside
// request is put back on the parent (3.13: "un-cancel and re-cancel"):
// async def parent():
//     try:
//         async with asyncio.TaskGroup() as g: g.create_task(stubborn("s"))
//     except* KeyError: log.append("parent got s"), log.append(cancelling())
//     await asyncio.sleep(1)    # CancelledError
QILOOP_TEST_MODES_VT(TaskGroup, AChildFailureWinsOverAnOutsideCancelWhichLandsNext) {
  Strings log;
  auto parent = qi::create_task([](Strings& log) -> qi::Coro<void> {
    qi::TaskGroup g;
    g.create_task(stubborn("s", log));
    try {
      co_await g.wait();
    } catch (const std::logic_error& e) {
      log.push_back(std::string("parent got ") + e.what());
      log.push_back("cancelling " + std::to_string(qi::current_task().cancelling()));
    }
    try {
      co_await qi::sleep(1s);
      log.push_back("slept");
    } catch (const qi::CancelledError&) {
      log.push_back("next co_await cancelled");
      throw;
    }
  }(log));
  co_await qi::sleep(500ms);
  parent.cancel();
  bool cancelled = false;
  try {
    co_await parent;
  } catch (const qi::CancelledError&) {
    cancelled = true;
  }
  EXPECT_TRUE(cancelled);
  EXPECT_EQ(log, (Strings{"s raises", "parent got s", "cancelling 1", "next co_await cancelled"}));
}

// Children added while wait() waits — by a child — are waited for too.
QILOOP_TEST_MODES_VT(TaskGroup, ChildrenAddedDuringWaitAreAwaited) {
  const auto t0 = now();
  qi::TaskGroup g;
  qi::Task<int> late;
  g.create_task([](qi::TaskGroup& g, qi::Task<int>& late) -> qi::Coro<void> {
    co_await qi::sleep(1s);
    late = g.create_task(value_after(2s, 5));
  }(g, late));
  co_await g.wait();
  EXPECT_EQ(now() - t0, 3s);
  QILOOP_CO_ASSERT(ASSERT_TRUE(late.valid()));
  EXPECT_EQ(late.result(), 5);

  // A failure of a child added during wait() still takes the group down.
  Strings log;
  qi::TaskGroup g2;
  qi::Task<void> other = g2.create_task(sleeper(10s, "other", log));
  g2.create_task([](qi::TaskGroup& g, Strings& log) -> qi::Coro<void> {
    co_await qi::sleep(1s);
    g.create_task(fail_after(1s, "late", log));
  }(g2, log));
  std::string error;
  try {
    co_await g2.wait();
  } catch (const std::runtime_error& e) {
    error = e.what();
  }
  EXPECT_EQ(error, "late");
  EXPECT_TRUE(other.cancelled());
}

// g.create_task(coro) after the exit, or while aborting: RuntimeError, and the
// coroutine is closed without running.
QILOOP_TEST_MODES_VT(TaskGroup, AddingToAFinishedOrAbortingGroupThrowsAndClosesTheCoro) {
  auto token = std::make_shared<int>(0);
  bool ran = false;
  auto probe = [](std::shared_ptr<int>, bool& ran) -> qi::Coro<void> {
    ran = true;
    co_return;
  };
  qi::TaskGroup g;
  co_await g.wait();
  std::string error;
  try {
    g.create_task(probe(token, ran));
  } catch (const qi::RuntimeError& e) {
    error = e.what();
  }
  EXPECT_NE(error.find("is finished"), std::string::npos) << error;
  EXPECT_EQ(token.use_count(), 1) << "the frame (holding a copy) is destroyed";

  Strings log;
  qi::TaskGroup g2;
  g2.create_task(fail_after(1s, "a", log));
  g2.create_task([](qi::TaskGroup& g, std::shared_ptr<int> token, Strings& log, bool& ran,
                    auto probe) -> qi::Coro<void> {
    try {
      co_await qi::sleep(10s);
    } catch (const qi::CancelledError&) {
      try {
        g.create_task(probe(token, ran));
      } catch (const qi::RuntimeError& e) {
        log.push_back(e.what());
      }
    }
  }(g2, token, log, ran, probe));
  bool failed = false;
  try {
    co_await g2.wait();
  } catch (const std::runtime_error&) {
    failed = true;
  }
  EXPECT_TRUE(failed);
  QILOOP_CO_ASSERT(ASSERT_EQ(log.size(), 2u));
  EXPECT_NE(log[1].find("is shutting down"), std::string::npos) << log[1];
  EXPECT_FALSE(ran);
  EXPECT_EQ(token.use_count(), 1);
}

QILOOP_TEST_MODES_VT(TaskGroup, MisuseThrows) {
  auto& loop = qi::get_running_loop();
  // Outside a task.
  std::string error;
  loop.call_soon([&] {
    try {
      qi::TaskGroup g;
    } catch (const qi::RuntimeError& e) {
      error = e.what();
    }
  });
  co_await qi::sleep(0);
  EXPECT_NE(error.find("cannot determine the parent task"), std::string::npos) << error;

  // wait() from another task, and twice.
  qi::TaskGroup g;
  auto other = qi::create_task([](qi::TaskGroup& g) -> qi::Coro<void> { co_await g.wait(); }(g));
  error.clear();
  try {
    co_await other;
  } catch (const qi::RuntimeError& e) {
    error = e.what();
  }
  EXPECT_NE(error.find("must be awaited by the task that created the group"), std::string::npos) << error;
  co_await g.wait();
  error.clear();
  try {
    co_await g.wait();
  } catch (const qi::RuntimeError& e) {
    error = e.what();
  }
  EXPECT_NE(error.find("already awaited"), std::string::npos) << error;
}

// No child outlives the group unnoticed: destroyed with children pending, it
// cancels them and reports it; a failure it could not rethrow is reported.
QILOOP_TEST_MODES_VT(TaskGroup, DestroyedWithChildrenPendingCancelsAndReports) {
  auto& loop = qi::get_running_loop();
  std::vector<qi::ExceptionContext> reports;
  loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& ctx) { reports.push_back(ctx); });
  Strings log;
  qi::Task<void> c;
  {
    qi::TaskGroup g;
    c = g.create_task(sleeper(10s, "c", log));
    g.create_task(sleeper(20s, "d", log));
    co_await qi::sleep(1s);
  }
  QILOOP_CO_ASSERT(ASSERT_EQ(reports.size(), 1u));
  EXPECT_NE(reports[0].message.find("qi::TaskGroup destroyed before wait() finished: cancelled 2 pending"),
            std::string::npos)
      << reports[0].message;
  EXPECT_TRUE(reports[0].task == qi::current_task());
  co_await qi::sleep(0);
  EXPECT_TRUE(c.cancelled());
  EXPECT_EQ(log, (Strings{"c cancelled", "d cancelled"}));

  // The body never reaches wait(): the group's cancel escapes it, and the
  // failure the group could not rethrow is reported.
  reports.clear();
  log.clear();
  auto owner = qi::create_task([](Strings& log) -> qi::Coro<void> {
    qi::TaskGroup g;
    g.create_task(fail_after(1s, "lost", log));
    g.create_task(sleeper(10s, "other", log));
    co_await qi::sleep(10s);  // cancelled by the group at 1 s
  }(log));
  bool cancelled = false;
  try {
    co_await owner;
  } catch (const qi::CancelledError&) {
    cancelled = true;
  }
  EXPECT_TRUE(cancelled);
  // "other" was cancelled with the owner (and finished first): only the
  // failure is left to report.
  QILOOP_CO_ASSERT(ASSERT_EQ(reports.size(), 1u));
  EXPECT_NE(reports[0].message.find("destroyed before wait() could rethrow it"), std::string::npos)
      << reports[0].message;
  EXPECT_EQ(what_of(reports[0].exception), "lost");
  EXPECT_TRUE(reports[0].task == owner);
  co_await qi::sleep(0);
  EXPECT_EQ(log, (Strings{"lost fails", "other cancelled"}));
}
