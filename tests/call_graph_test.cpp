// The await graph: a task's chain of coroutines (innermost first, each
// co_await's file:line), the tasks awaiting it, asyncio 3.14's layout, the
// reports that include it, and dump_tasks / all_tasks.
#include "log_capture.h"

#include <qiloop/call_graph.h>
#include <qiloop/testing.h>

#include <gmock/gmock.h>

#include <QtCore/QtGlobal>

#include <cstdio>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using testing::HasSubstr;
using testing::Not;

namespace {

using log_capture::LogCapture;

// Each co_await sits on the line of the constant after it.
qi::Coro<void> leaf(qi::Future<void> f) { co_await f; } constexpr int kLeafLine = __LINE__;
qi::Coro<void> middle(qi::Future<void> f) { co_await leaf(f); } constexpr int kMiddleLine = __LINE__;
qi::Coro<void> job(qi::Future<void> f) { co_await middle(f); } constexpr int kJobLine = __LINE__;
qi::Coro<void> await_task(qi::Task<void> t) { co_await t; } constexpr int kAwaitTaskLine = __LINE__;
qi::Coro<void> sleeper() { co_await qi::sleep(1h); } constexpr int kSleeperLine = __LINE__;

qi::Coro<void> thrower(qi::Future<void> f) { co_await f; throw std::runtime_error("boom"); } constexpr int kThrowerLine = __LINE__;
qi::Coro<void> fails(qi::Future<void> f) { co_await thrower(f); } constexpr int kFailsLine = __LINE__;

bool ends_with(const std::string& s, const std::string& tail) {
  return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

void expect_entry(const qi::FrameCallGraphEntry& e, const char* function, int line) {
  EXPECT_THAT(e.function, HasSubstr(function));
  EXPECT_TRUE(ends_with(e.file, "call_graph_test.cpp")) << e.file;
  EXPECT_EQ(e.line, static_cast<uint32_t>(line)) << function;
}

std::string id_of(const qi::FutureRef& f) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%#llx", static_cast<unsigned long long>(reinterpret_cast<uintptr_t>(f.state())));
  return buf;
}

}  // namespace

QILOOP_TEST_MODES_VT(CallGraph, ChainIsInnermostFirstWithEachCoAwaitsLine) {
  auto& loop = qi::get_running_loop();
  auto f = loop.create_future<void>();
  auto t = qi::create_task(job(f), "job");
  co_await qi::sleep(0);
  qi::FutureCallGraph g = qi::capture_call_graph(t);
  EXPECT_EQ(g.future, t);
  QILOOP_CO_ASSERT(ASSERT_EQ(g.call_stack.size(), 3u));
  expect_entry(g.call_stack[0], "leaf", kLeafLine);
  expect_entry(g.call_stack[1], "middle", kMiddleLine);
  expect_entry(g.call_stack[2], "job", kJobLine);
  EXPECT_FALSE(g.call_stack[0].last_await);
  EXPECT_TRUE(g.awaited_by.empty());
  f.set_result();
  co_await t;
  EXPECT_TRUE(qi::capture_call_graph(t).call_stack.empty());  // finished with a value
}

// asyncio 3.14:
//   async def main():
//       t = asyncio.create_task(job(), name='job')
//       w1 = asyncio.create_task(waiter(t), name='w1')
//       w2 = asyncio.create_task(waiter(t), name='w2')
//       await asyncio.sleep(0)
//       asyncio.print_call_graph(t)   # job's stack, then awaited by w1 and w2
QILOOP_TEST_MODES_VT(CallGraph, AwaitedByListsTheTasksAwaitingItOldestFirst) {
  auto& loop = qi::get_running_loop();
  auto f = loop.create_future<void>();
  auto t = qi::create_task(job(f), "job");
  auto w1 = qi::create_task(await_task(t), "w1");
  auto w2 = qi::create_task(await_task(t), "w2");
  auto outer = qi::create_task(await_task(w1), "outer");
  co_await qi::sleep(0);
  qi::FutureCallGraph g = qi::capture_call_graph(t);
  QILOOP_CO_ASSERT(ASSERT_EQ(g.awaited_by.size(), 2u));
  EXPECT_EQ(g.awaited_by[0].future, w1);
  EXPECT_EQ(g.awaited_by[1].future, w2);
  QILOOP_CO_ASSERT(ASSERT_EQ(g.awaited_by[0].call_stack.size(), 1u));
  expect_entry(g.awaited_by[0].call_stack[0], "await_task", kAwaitTaskLine);
  QILOOP_CO_ASSERT(ASSERT_EQ(g.awaited_by[0].awaited_by.size(), 1u));  // recursively
  EXPECT_EQ(g.awaited_by[0].awaited_by[0].future, outer);
  EXPECT_TRUE(g.awaited_by[1].awaited_by.empty());
  // A plain future's graph: no stack, its awaiter.
  qi::FutureCallGraph gf = qi::capture_call_graph(f);
  EXPECT_TRUE(gf.call_stack.empty());
  QILOOP_CO_ASSERT(ASSERT_EQ(gf.awaited_by.size(), 1u));
  EXPECT_EQ(gf.awaited_by[0].future, t);
  f.set_result();
  co_await outer;
  co_await w2;
}

QILOOP_TEST_MODES_VT(CallGraph, FormatFollowsAsyncioLayout) {
  auto& loop = qi::get_running_loop();
  auto f = loop.create_future<void>();
  auto t = qi::create_task(middle(f), "job");
  auto w = qi::create_task(await_task(t), "waiter");
  co_await qi::sleep(0);
  qi::FutureCallGraph g = qi::capture_call_graph(t);
  QILOOP_CO_ASSERT(ASSERT_EQ(g.call_stack.size(), 2u));
  QILOOP_CO_ASSERT(ASSERT_EQ(g.awaited_by.size(), 1u));
  auto fn = [](const qi::FrameCallGraphEntry& e) {
    return e.function.find('(') == std::string::npos ? e.function + "()" : e.function;
  };
  const std::string file = g.call_stack[0].file;
  const std::string expected =
      "* Task(name='job', id=" + id_of(t.ref()) + ")\n"
      "  + Call stack:\n"
      "  |   File '" + file + "', line " + std::to_string(kLeafLine) + ", in async " + fn(g.call_stack[0]) + "\n"
      "  |   File '" + file + "', line " + std::to_string(kMiddleLine) + ", in async " + fn(g.call_stack[1]) + "\n"
      "  + Awaited by:\n"
      "    * Task(name='waiter', id=" + id_of(w.ref()) + ")\n"
      "      + Call stack:\n"
      "      |   File '" + file + "', line " + std::to_string(kAwaitTaskLine) + ", in async " +
      fn(g.awaited_by[0].call_stack[0]);
  EXPECT_EQ(qi::format_call_graph(g), expected);
  EXPECT_EQ(qi::format_call_graph(t), expected);
  EXPECT_EQ(qi::format_call_graph(t.ref()), expected);
  // print_call_graph: the same and a newline, to a FILE* or an ostream.
  std::ostringstream os;
  qi::print_call_graph(t.ref(), os);
  EXPECT_EQ(os.str(), expected + "\n");
  std::FILE* tmp = std::tmpfile();
  qi::print_call_graph(t, tmp);
  std::rewind(tmp);
  std::string printed(expected.size() + 1, '\0');
  EXPECT_EQ(std::fread(printed.data(), 1, printed.size(), tmp), printed.size());
  std::fclose(tmp);
  EXPECT_EQ(printed, expected + "\n");
  f.set_result();
  co_await w;
}

QILOOP_TEST_MODES_VT(CallGraph, FunctionNamesAreQualifiedWhereTheCompilerSaysSo) {
  auto& loop = qi::get_running_loop();
  auto f = loop.create_future<void>();
  auto t = qi::create_task(leaf(f));
  co_await qi::sleep(0);
  const std::string fn = qi::capture_call_graph(t).call_stack.at(0).function;
#if defined(__clang__) && !defined(__cpp_lib_source_location)
  EXPECT_EQ(fn, "leaf");  // clang 14: __builtin_FUNCTION's bare name
#else
  EXPECT_EQ(fn, "(anonymous namespace)::leaf(qi::Future<void>)");  // demangled from g++'s frame name
#endif
  f.set_result();
  co_await t;
}

// asyncio 3.14's limit: positive keeps the outermost entries, negative the
// innermost, 0 none.
QILOOP_TEST_MODES_VT(CallGraph, LimitKeepsTheOutermostOrInnermostEntries) {
  auto& loop = qi::get_running_loop();
  auto f = loop.create_future<void>();
  auto t = qi::create_task(job(f));
  co_await qi::sleep(0);
  auto lines = [&](std::optional<int> limit) {
    std::vector<uint32_t> v;
    for (auto& e : qi::capture_call_graph(t, limit).call_stack) v.push_back(e.line);
    return v;
  };
  using L = std::vector<uint32_t>;
  EXPECT_EQ(lines(std::nullopt), (L{kLeafLine, kMiddleLine, kJobLine}));
  EXPECT_EQ(lines(2), (L{kMiddleLine, kJobLine}));
  EXPECT_EQ(lines(-2), (L{kLeafLine, kMiddleLine}));
  EXPECT_EQ(lines(10), (L{kLeafLine, kMiddleLine, kJobLine}));
  EXPECT_EQ(lines(0), L{});
  EXPECT_THAT(qi::format_call_graph(t, 0), Not(HasSubstr("Call stack")));
  f.set_result();
  co_await t;
}

qi::Coro<qi::FutureCallGraph> capture_here(int& line) {
  co_await qi::sleep(0);
  line = __LINE__; co_return *qi::capture_call_graph();
}
constexpr int kCaptureCallerLine = __LINE__ + 3;
qi::Coro<void> capture_caller(qi::FutureCallGraph& g, int& line) {
  co_await qi::sleep(0);
  g = co_await capture_here(line);
}

QILOOP_TEST_MODES_VT(CallGraph, CurrentTaskEndsWhereTheCaptureIsCalled) {
  qi::FutureCallGraph g;
  int line = 0;
  auto t = qi::create_task(capture_caller(g, line), "self");
  co_await t;
  EXPECT_EQ(g.future, t);
  QILOOP_CO_ASSERT(ASSERT_EQ(g.call_stack.size(), 2u));
  expect_entry(g.call_stack[0], "capture_here", line);
  expect_entry(g.call_stack[1], "capture_caller", kCaptureCallerLine);
  // The test body itself, through current_task() or no argument.
  const int here = __LINE__; auto mine = qi::capture_call_graph(qi::current_task());
  QILOOP_CO_ASSERT(ASSERT_GE(mine.call_stack.size(), 1u));  // the body, then the kit's wrapper
  EXPECT_EQ(mine.call_stack[0].line, static_cast<uint32_t>(here));
  EXPECT_EQ(qi::capture_call_graph()->future, qi::current_task());
  EXPECT_THAT(qi::format_call_graph(), HasSubstr("* Task(name="));
}

QILOOP_TEST_MODES_VT(CallGraph, OutsideATaskThereIsNoCurrentGraph) {
  auto& loop = qi::get_running_loop();
  bool ran = false;
  loop.call_soon([&] {
    EXPECT_FALSE(qi::capture_call_graph().has_value());
    EXPECT_EQ(qi::format_call_graph(), "");
    ran = true;
  });
  co_await qi::sleep(0);
  EXPECT_TRUE(ran);
  EXPECT_THAT([] { (void)qi::capture_call_graph(qi::FutureRef()); },
              testing::ThrowsMessage<std::invalid_argument>(HasSubstr("the future is empty (default-constructed)")));
}

QILOOP_TEST_MODES_VT(CallGraph, ATaskNotStartedHasNoStack) {
  auto t = qi::create_task(sleeper(), "later");
  qi::FutureCallGraph g = qi::capture_call_graph(t);
  EXPECT_TRUE(g.call_stack.empty());
  EXPECT_EQ(qi::format_call_graph(t), "* Task(name='later', id=" + id_of(t.ref()) + ")\n  + Not started yet");
  co_await qi::sleep(0);
  QILOOP_CO_ASSERT(ASSERT_EQ(qi::capture_call_graph(t).call_stack.size(), 1u));
  expect_entry(qi::capture_call_graph(t).call_stack[0], "sleeper", kSleeperLine);  // a sleep is a co_await too
  t.cancel();
  co_await qi::sleep(0);
  EXPECT_TRUE(t.cancelled());
}

QILOOP_TEST_MODES_VT(CallGraph, AFailedTaskKeepsTheChainItsExceptionEscapedFrom) {
  auto& loop = qi::get_running_loop();
  auto f = loop.create_future<void>();
  auto t = qi::create_task(fails(f), "failing");
  co_await qi::sleep(0);
  f.set_result();
  co_await qi::sleep(0);
  QILOOP_CO_ASSERT(ASSERT_TRUE(t.done()));
  qi::FutureCallGraph g = qi::capture_call_graph(t);
  QILOOP_CO_ASSERT(ASSERT_EQ(g.call_stack.size(), 2u));
  expect_entry(g.call_stack[0], "thrower", kThrowerLine);
  EXPECT_TRUE(g.call_stack[0].last_await);
  expect_entry(g.call_stack[1], "fails", kFailsLine);
  EXPECT_FALSE(g.call_stack[1].last_await);
  const std::string text = qi::format_call_graph(t);
  EXPECT_THAT(text, HasSubstr("  + Call stack (when its exception escaped):\n"));
  EXPECT_THAT(text, HasSubstr("line " + std::to_string(kThrowerLine) + " (its last co_await), in async "));
  EXPECT_THROW(t.result(), std::runtime_error);
}

qi::Coro<void> catches_and_throws_anew(qi::Future<void> f) {
  try {
    co_await thrower(f);
  } catch (const std::runtime_error&) {
  }
  co_await qi::sleep(0);
  throw std::logic_error("another");
}

QILOOP_TEST_MODES_VT(CallGraph, ANewExceptionIsRecordedWhereItEscapes) {
  auto& loop = qi::get_running_loop();
  auto f = loop.create_future<void>();
  auto t = qi::create_task(catches_and_throws_anew(f));
  co_await qi::sleep(0);
  f.set_result();
  bool thrown = false;
  try {
    co_await t;
  } catch (const std::logic_error&) {
    thrown = true;
  }
  EXPECT_TRUE(thrown);
  qi::FutureCallGraph g = qi::capture_call_graph(t);
  QILOOP_CO_ASSERT(ASSERT_EQ(g.call_stack.size(), 1u));  // not thrower's earlier chain
  EXPECT_THAT(g.call_stack[0].function, HasSubstr("catches_and_throws_anew"));
  EXPECT_TRUE(g.call_stack[0].last_await);
}

QILOOP_TEST_MODES_VT(CallGraph, NeverRetrievedReportIncludesTheChain) {
  auto& loop = qi::get_running_loop();
  std::vector<std::string> reports;
  LogCapture log;
  loop.set_exception_handler([&](QiEventLoop& l, const qi::ExceptionContext& ctx) {
    reports.push_back(ctx.message);
    l.default_exception_handler(ctx);
  });
  auto f = loop.create_future<void>();
  {
    auto t = qi::create_task(fails(f), "dropped");
    co_await qi::sleep(0);
  }
  f.set_result();
  co_await qi::sleep(0);
  co_await qi::sleep(0);
  QILOOP_CO_ASSERT(ASSERT_EQ(reports.size(), 1u));
  EXPECT_EQ(reports[0], "Task 'dropped' exception was never retrieved");
  EXPECT_THAT(log.text(), HasSubstr("Task 'dropped' exception was never retrieved: boom [Task 'dropped']\n"
                                    "* Task(name='dropped', id="));
  EXPECT_THAT(log.text(), HasSubstr("  + Call stack (when its exception escaped):\n"));
  EXPECT_THAT(log.text(), HasSubstr("line " + std::to_string(kFailsLine) + ", in async "));
}

QILOOP_TEST_MODES_VT(CallGraph, DefaultHandlerShowsAPendingTasksChain) {
  auto& loop = qi::get_running_loop();
  auto f = loop.create_future<void>();
  auto t = qi::create_task(job(f), "stuck");
  co_await qi::sleep(0);
  LogCapture log;
  qi::ExceptionContext ctx;
  ctx.message = "look here";
  ctx.task = t.ref();
  loop.default_exception_handler(ctx);
  EXPECT_THAT(log.text(), HasSubstr("look here [Task 'stuck']\n* Task(name='stuck', id=" + id_of(t.ref()) +
                                    ")\n  + Call stack:\n"));
  EXPECT_THAT(log.text(), HasSubstr("line " + std::to_string(kJobLine) + ", in async "));
  f.set_result();
  co_await t;
}

QILOOP_TEST_MODES_VT(CallGraph, AddAwaitedByLinksACombinatorsWaiter) {
  auto& loop = qi::get_running_loop();
  auto f = loop.create_future<void>();
  auto inner = loop.create_future<void>();
  auto t = qi::create_task(leaf(inner), "waiter");
  co_await qi::sleep(0);
  EXPECT_TRUE(qi::capture_call_graph(f).awaited_by.empty());
  qi::detail::add_awaited_by(f.ref(), t.ref());
  qi::detail::add_awaited_by(f.ref(), t.ref());  // a set: once
  qi::detail::add_awaited_by(t.ref(), t.ref());  // itself: ignored
  qi::FutureCallGraph g = qi::capture_call_graph(f);
  QILOOP_CO_ASSERT(ASSERT_EQ(g.awaited_by.size(), 1u));
  EXPECT_EQ(g.awaited_by[0].future, t);
  expect_entry(g.awaited_by[0].call_stack.at(0), "leaf", kLeafLine);
  EXPECT_TRUE(qi::capture_call_graph(t).awaited_by.empty());
  qi::detail::remove_awaited_by(f.ref(), t.ref());
  qi::detail::remove_awaited_by(f.ref(), t.ref());  // not linked: nothing
  EXPECT_TRUE(qi::capture_call_graph(f).awaited_by.empty());
  EXPECT_THROW(qi::detail::add_awaited_by(f.ref(), qi::TaskRef()), std::invalid_argument);
  // A link left in place holds the task until the future's state goes.
  qi::detail::add_awaited_by(f.ref(), t.ref());
  inner.set_result();
  co_await t;
  EXPECT_EQ(qi::capture_call_graph(f).awaited_by.at(0).future, t);
  f = qi::Future<void>();
}

QILOOP_TEST_MODES_VT(CallGraph, ACycleOfAwaitersIsCut) {
  auto& loop = qi::get_running_loop();
  auto f = loop.create_future<void>();
  auto b = qi::create_task(leaf(f), "b");
  auto a = qi::create_task(await_task(b), "a");
  co_await qi::sleep(0);
  qi::detail::add_awaited_by(a.ref(), b.ref());  // b "waits" for a, which awaits b
  qi::FutureCallGraph g = qi::capture_call_graph(b);
  QILOOP_CO_ASSERT(ASSERT_EQ(g.awaited_by.size(), 1u));
  QILOOP_CO_ASSERT(ASSERT_EQ(g.awaited_by[0].awaited_by.size(), 1u));
  const qi::FutureCallGraph& again = g.awaited_by[0].awaited_by[0];
  EXPECT_EQ(again.future, b);
  EXPECT_TRUE(again.awaited_by.empty());
  EXPECT_TRUE(again.awaited_by_cut);
  EXPECT_THAT(qi::format_call_graph(g), HasSubstr("+ Awaited by: (not followed: a cycle"));
  qi::detail::remove_awaited_by(a.ref(), b.ref());
  f.set_result();
  co_await a;
}

qi::Coro<void> await_chain(int n, qi::Future<void> f, std::vector<qi::Task<void>>& tasks) {
  if (n == 0) {
    co_await f;
  } else {
    tasks.push_back(qi::create_task(await_chain(n - 1, f, tasks)));
    co_await tasks.back();
  }
}

QILOOP_TEST_MODES_VT(CallGraph, AwaitedByStopsAtTheMaximumDepth) {
  auto& loop = qi::get_running_loop();
  auto f = loop.create_future<void>();
  std::vector<qi::Task<void>> tasks;
  auto top = qi::create_task(await_chain(qi::kMaxAwaitedByDepth + 10, f, tasks));
  for (int i = 0; i < qi::kMaxAwaitedByDepth + 12; ++i) co_await qi::sleep(0);
  QILOOP_CO_ASSERT(ASSERT_EQ(tasks.size(), static_cast<std::size_t>(qi::kMaxAwaitedByDepth + 10)));
  qi::FutureCallGraph g = qi::capture_call_graph(tasks.back());
  int depth = 0;
  const qi::FutureCallGraph* n = &g;
  while (!n->awaited_by.empty()) {
    n = &n->awaited_by[0];
    ++depth;
  }
  EXPECT_EQ(depth, qi::kMaxAwaitedByDepth);
  EXPECT_TRUE(n->awaited_by_cut);
  f.set_result();
  co_await top;
}

QILOOP_TEST_MODES_VT(CallGraph, AllTasksAndDumpTasksListEveryPendingTask) {
  auto& loop = qi::get_running_loop();
  auto f = loop.create_future<void>();
  auto t = qi::create_task(job(f), "job");
  auto w = qi::create_task(await_task(t), "waiter");
  auto s = qi::create_task(sleeper(), "sleeper");
  co_await qi::sleep(0);
  std::vector<qi::TaskRef> all = qi::all_tasks(loop);
  QILOOP_CO_ASSERT(ASSERT_EQ(all.size(), 4u));  // with the test body, first
  EXPECT_EQ(all[0], qi::current_task());
  EXPECT_EQ(all[1], t);
  EXPECT_EQ(all[2], w);
  EXPECT_EQ(all[3], s);
  const std::string dump = loop.dump_tasks();
  EXPECT_THAT(dump, HasSubstr("4 pending tasks\n* Task(name='test body'"));
  // job: its stack, and its awaiter named one level up without its stack.
  EXPECT_THAT(dump, HasSubstr("\n* Task(name='job', id=" + id_of(t.ref()) + ")\n  + Call stack:\n"));
  EXPECT_THAT(dump, HasSubstr("  + Awaited by:\n    * Task(name='waiter', id=" + id_of(w.ref()) + ")\n* Task(name='waiter'"));
  EXPECT_THAT(dump, HasSubstr("line " + std::to_string(kSleeperLine) + ", in async "));
  f.set_result();
  co_await w;
  s.cancel();
  co_await qi::sleep(0);
  EXPECT_THAT(loop.dump_tasks(), HasSubstr("1 pending task\n"));
}

namespace {

// Copyable, and counts on itself: a copy would count elsewhere.
struct CountingAwaiter {
  int resumed = 0;
  bool await_ready() const noexcept { return true; }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  int await_resume() noexcept { return ++resumed; }
};

struct NonCopyableAwaiter {
  int resumed = 0;
  NonCopyableAwaiter() = default;
  NonCopyableAwaiter(const NonCopyableAwaiter&) = delete;
  NonCopyableAwaiter& operator=(const NonCopyableAwaiter&) = delete;
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<>) noexcept { return false; }
  int await_resume() noexcept { return ++resumed; }
};

// Awaitables whose operator co_await returns a reference to an awaiter they
// hold: that awaiter is the one awaited.
struct HoldsAnAwaiter {
  NonCopyableAwaiter inner;
  NonCopyableAwaiter& operator co_await() & { return inner; }
};
struct HoldsAnAwaiterForAFreeOperator {
  NonCopyableAwaiter inner;
};
NonCopyableAwaiter& operator co_await(HoldsAnAwaiterForAFreeOperator& h) { return h.inner; }

}  // namespace

// Recording the site must leave every co_await as it was: an lvalue awaiter
// is awaited itself, not a copy (g++ 12 copies one that await_transform
// returns by reference).
QILOOP_TEST_MODES_VT(CallGraph, RecordingTheSiteAwaitsTheAwaiterItself) {
  CountingAwaiter a;
  EXPECT_EQ(co_await a, 1);
  EXPECT_EQ(co_await a, 2);
  EXPECT_EQ(a.resumed, 2);
  EXPECT_EQ(co_await CountingAwaiter{}, 1);
  co_await std::suspend_never{};
}

QILOOP_TEST_MODES_VT(CallGraph, AnOperatorCoAwaitReturningAReferenceAwaitsThatAwaiter) {
  NonCopyableAwaiter a;
  EXPECT_EQ(co_await a, 1);
  EXPECT_EQ(co_await NonCopyableAwaiter{}, 1);
  HoldsAnAwaiter member;
  EXPECT_EQ(co_await member, 1);
  EXPECT_EQ(co_await member, 2);
  EXPECT_EQ(member.inner.resumed, 2);
  HoldsAnAwaiterForAFreeOperator free;
  EXPECT_EQ(co_await free, 1);
  EXPECT_EQ(co_await free, 2);
  EXPECT_EQ(free.inner.resumed, 2);
}


// An operator co_await that only the awaiting code's scope sees (declared
// after qiloop's headers, for a type of another namespace, so neither the
// library's lookup nor ADL finds it) is found as it is without the await graph.
namespace app_scope {

struct Seconds {
  std::chrono::seconds d;
  bool await_ready() const noexcept { return true; }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  long await_resume() const noexcept { return static_cast<long>(d.count()); }
};
Seconds operator co_await(std::chrono::seconds d) { return {d}; }

qi::Coro<long> awaits_a_duration() { co_return co_await std::chrono::seconds(7); }

}  // namespace app_scope

QILOOP_TEST_MODES_VT(CallGraph, AnOperatorCoAwaitSeenOnlyFromTheAwaitingScopeIsFound) {
  EXPECT_EQ(co_await app_scope::awaits_a_duration(), 7);
}

// A name is written as Python's repr() writes it (asyncio formats
// `name={task.get_name()!r}`): a newline in it cannot break the layout.
//     t = asyncio.create_task(sleeper(), name="a\nb'c\\d\t")
//     asyncio.format_call_graph(t).splitlines()[0] -> * Task(name="a\nb'c\\d\t", id=0x...)
QILOOP_TEST_MODES_VT(CallGraph, ANameIsQuotedAsPythonsReprQuotesIt) {
  auto odd = qi::create_task(sleeper(), "a\nb'c\\d\t");
  auto plain = qi::create_task(sleeper(), "say \"hi\"\x01");
  auto both = qi::create_task(sleeper(), "it's \"x\"");
  EXPECT_EQ(qi::format_call_graph(odd), "* Task(name=\"a\\nb'c\\\\d\\t\", id=" + id_of(odd.ref()) + ")\n  + Not started yet");
  EXPECT_EQ(qi::format_call_graph(plain),
            "* Task(name='say \"hi\"\\x01', id=" + id_of(plain.ref()) + ")\n  + Not started yet");
  EXPECT_EQ(qi::format_call_graph(both),
            "* Task(name='it\\'s \"x\"', id=" + id_of(both.ref()) + ")\n  + Not started yet");
  for (auto* t : {&odd, &plain, &both}) t->cancel();
  for (auto* t : {&odd, &plain, &both}) EXPECT_THROW(co_await *t, qi::CancelledError);
}
