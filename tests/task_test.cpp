// qi::Task<T>: when steps run (create_task, run_task, resumption through the
// ready queue, sleep), current_task(), names, done callbacks, many awaiters,
// run_until_complete / qi::run, lifetime and never-retrieved reporting.
#include "test_util.h"

#include <qiloop/testing.h>

#include <QtCore/QObject>
#include <QtCore/QTimer>

#include <algorithm>
#include <array>
#include <chrono>
#include <coroutine>
#include <exception>
#include <functional>
#include <limits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using qt::Log;
using qt::Mode;
using qt::Strings;

namespace {

struct CustomError {
  int code;
};

qi::Coro<int> value_now(int v) { co_return v; }

template <class T>
qi::Coro<T> value_after_yield(T v) {
  co_await qi::sleep(0ms);
  co_return std::move(v);
}

template <class E>
qi::Coro<int> throw_now(E e) {
  throw e;
  co_return 0;
}

qi::Coro<void> yield_once() { co_await qi::sleep(0ms); }

template <class E>
qi::Coro<int> throw_after_yield(E e) {
  co_await qi::sleep(0ms);
  throw e;
}

// Awaits `t`; true when it threw E.
template <class E, class T>
qi::Coro<bool> throws(qi::Task<T> t) {
  try {
    co_await t;
  } catch (const E&) {
    co_return true;
  }
  co_return false;
}

// Logs around one yield to the loop.
qi::Coro<void> two_steps(Log& log, std::string name) {
  log(name + " step 1");
  co_await qi::sleep(0ms);
  log(name + " step 2");
}

// Stops the loop once `task` is done (the done callback runs on a later
// iteration, so what the task's completion scheduled has run too).
template <class T>
void stop_when_done(QiEventLoop& loop, const qi::Task<T>& task) {
  task.add_done_callback([&loop] { loop.stop(); });
}

// Collects what the loop's exception handler receives.
struct Reports {
  explicit Reports(QiEventLoop& loop) {
    loop.set_exception_handler([this](QiEventLoop&, const qi::ExceptionContext& ctx) { contexts.push_back(ctx); });
  }
  std::vector<qi::ExceptionContext> contexts;
};

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

class TaskTest : public qt::ModeTest {};

TEST_P(TaskTest, CreateTaskStartsOnALaterIterationAfterWhatIsAlreadyReady) {
  QiEventLoop loop;
  Log log;
  loop.call_soon(log.recorder("ready before create_task"));
  qi::Task<void> first = loop.create_task(two_steps(log, "first"));
  log("create_task returned");
  loop.call_soon([&] {
    log("callback");
    // Created during an iteration: its first step waits for the next one.
    qi::Task<void> second = loop.create_task(two_steps(log, "second"));
    stop_when_done(loop, second);
  });
  loop.call_soon(log.recorder("ready after create_task"));
  run(loop);
  EXPECT_EQ(log.items, (Strings{"create_task returned", "ready before create_task", "first step 1", "callback",
                                "ready after create_task", "first step 2", "second step 1", "second step 2"}));
}

TEST_P(TaskTest, RunTaskRunsTheFirstStepInsideACallback) {
  QiEventLoop loop;
  Log log;
  qi::Task<void> task;
  loop.call_soon([&] {
    log("callback begins");
    task = loop.run_task(two_steps(log, "task"));
    log("run_task returned");
    stop_when_done(loop, task);
  });
  loop.call_soon(log.recorder("next callback"));
  run(loop);
  EXPECT_EQ(log.items, (Strings{"callback begins", "task step 1", "run_task returned", "next callback", "task step 2"}));
}

TEST_P(TaskTest, RunTaskRunsTheFirstStepInsideASignalEmittedFromAQTimerSlot) {
  // qtinter's use: a slot that starts a coroutine does its synchronous part
  // (disable a button, say) before the emission returns.
  QiEventLoop loop;
  Log log;
  qi::Task<void> task;
  QObject sender;
  QObject::connect(&sender, &QObject::objectNameChanged, [&] {
    log("slot begins");
    task = loop.run_task(two_steps(log, "task"));
    log("slot returns");
    stop_when_done(loop, task);
  });
  QTimer timer;
  timer.setSingleShot(true);
  QObject::connect(&timer, &QTimer::timeout, [&] {
    log("timer fires");
    sender.setObjectName("emit");
    log("emission returned");
  });
  timer.start(0);
  run(loop);
  EXPECT_EQ(log.items,
            (Strings{"timer fires", "slot begins", "task step 1", "slot returns", "emission returned", "task step 2"}));
}

TEST(TaskNotRunning, RunTaskWithoutARunningLoopThrowsAndRunsNothing) {
  QiEventLoop loop;
  Log log;
  try {
    (void)loop.run_task(two_steps(log, "task"));
    ADD_FAILURE() << "run_task on a loop that is not running must throw";
  } catch (const qi::RuntimeError& e) {
    EXPECT_TRUE(contains(e.what(), "create_task")) << e.what();
  }
  // Another loop running on the thread does not make this one running.
  QiEventLoop other;
  other.call_soon([&] {
    EXPECT_THROW((void)loop.run_task(two_steps(log, "task")), qi::RuntimeError);
    other.stop();
  });
  other.run_forever();
  EXPECT_TRUE(log.items.empty());
}

TEST_P(TaskTest, AnExceptionInRunTasksFirstStepIsStoredInTheTask) {
  QiEventLoop loop;
  Reports reports(loop);
  bool returned = false;
  qi::Task<int> task;
  loop.call_soon([&] {
    task = loop.run_task(throw_now(std::out_of_range("first step")));
    returned = true;
    EXPECT_TRUE(task.done());
    loop.stop();
  });
  run(loop);
  EXPECT_TRUE(returned);
  EXPECT_THROW(task.result(), std::out_of_range);
  EXPECT_TRUE(reports.contexts.empty());
}

TEST_P(TaskTest, CurrentTaskIsEmptyOutsideTasksAndInPlainCallbacks) {
  QiEventLoop loop;
  std::vector<qi::TaskRef> in_task;
  bool in_callback = true;
  bool in_done_callback = true;
  EXPECT_FALSE(qi::current_task());
  auto body = [&]() -> qi::Coro<void> {
    in_task.push_back(qi::current_task());
    co_await qi::sleep(0ms);
    in_task.push_back(qi::current_task());
  };
  qi::Task<void> task = loop.create_task(body());
  loop.call_soon([&] { in_callback = static_cast<bool>(qi::current_task()); });
  task.add_done_callback([&] {
    in_done_callback = static_cast<bool>(qi::current_task());
    loop.stop();
  });
  run(loop);
  EXPECT_FALSE(in_callback);
  EXPECT_FALSE(in_done_callback);
  ASSERT_EQ(in_task.size(), 2u);
  EXPECT_TRUE(task == in_task[0]) << "current_task() in the first step";
  EXPECT_TRUE(task == in_task[1]) << "current_task() after a suspension";
  EXPECT_TRUE(in_task[0] == task.ref());
  EXPECT_FALSE(qi::current_task());
}

TEST_P(TaskTest, CurrentTaskIsRightInARunTaskStartedFromAnotherTaskAndRestoredAfter) {
  QiEventLoop loop;
  // What current_task() was at each point; named once the handles exist
  // (run_task's first step runs before its handle is returned).
  std::vector<std::pair<std::string, qi::TaskRef>> seen;
  auto note = [&](std::string where) { seen.emplace_back(std::move(where), qi::current_task()); };
  qi::Task<void> outer;
  qi::Task<void> inner;
  qi::Task<void> from_callback;
  auto inner_body = [&](std::string name) -> qi::Coro<void> {
    note(name + " first step");
    co_await qi::sleep(0ms);
    note(name + " second step");
  };
  auto outer_body = [&]() -> qi::Coro<void> {
    note("outer before run_task");
    inner = loop.run_task(inner_body("inner"));
    note("outer after run_task");
    co_await inner;
    note("outer after awaiting inner");
  };
  outer = loop.create_task(outer_body());
  stop_when_done(loop, outer);
  loop.call_soon([&] {
    from_callback = loop.run_task(inner_body("from callback"));
    note("callback after run_task");
  });
  run(loop);
  Strings named;
  for (auto& [where, ref] : seen) {
    const char* who = ref == outer.ref()           ? "outer"
                      : ref == inner.ref()         ? "inner"
                      : ref == from_callback.ref() ? "from callback"
                      : ref                        ? "another task"
                                                   : "none";
    named.push_back(where + ": " + who);
  }
  EXPECT_EQ(named, (Strings{"outer before run_task: outer", "inner first step: inner", "outer after run_task: outer",
                            "from callback first step: from callback", "callback after run_task: none",
                            "inner second step: inner", "from callback second step: from callback",
                            "outer after awaiting inner: outer"}));
}

TEST_P(TaskTest, QiCreateTaskUsesTheRunningLoop) {
  QiEventLoop loop;
  Log log;
  // get_running_loop()'s error: the same as asyncio's create_task outside a loop.
  try {
    (void)qi::create_task(two_steps(log, "nowhere"));
    ADD_FAILURE() << "qi::create_task with no running loop must throw";
  } catch (const qi::RuntimeError& e) {
    EXPECT_TRUE(contains(e.what(), "no running event loop in this thread")) << e.what();
    EXPECT_TRUE(contains(e.what(), "create a QiRunner")) << e.what();
  }
  QiEventLoop* task_loop = nullptr;
  loop.call_soon([&] {
    qi::Task<void> t = qi::create_task(two_steps(log, "task"));
    task_loop = t.get_loop();
    log("create_task returned");
    stop_when_done(loop, t);
  });
  run(loop);
  EXPECT_EQ(task_loop, &loop);
  EXPECT_EQ(log.items, (Strings{"create_task returned", "task step 1", "task step 2"}));
}

TEST_P(TaskTest, TaskStepsInterleaveFairlyWithACallbackChain) {
  // Every resumption goes through the ready queue, one step per iteration.
  QiEventLoop loop;
  Log log;
  auto yielder = [&](std::string name) -> qi::Coro<void> {
    for (int i = 0; i < 3; ++i) {
      log(name + std::to_string(i));
      co_await qi::sleep(0ms);
    }
    log(name + " done");
  };
  qi::Task<void> a = loop.create_task(yielder("A"));
  qi::Task<void> b = loop.create_task(yielder("B"));
  std::function<void(int)> chain = [&](int i) {
    log("C" + std::to_string(i));
    if (i == 3)
      loop.stop();
    else
      loop.call_soon(chain, i + 1);
  };
  loop.call_soon(chain, 0);
  run(loop);
  EXPECT_EQ(log.items, (Strings{"A0", "B0", "C0", "A1", "B1", "C1", "A2", "B2", "C2", "A done", "B done", "C3"}));
}

TEST_P(TaskTest, AWakeUpByAFutureIsQueuedWhereTheFutureCompleted) {
  QiEventLoop loop;
  Log log;
  auto first = loop.create_future<void>();
  auto second = loop.create_future<void>();
  auto body = [&]() -> qi::Coro<void> {
    co_await first;
    log("task resumed (first)");
    co_await second;
    log("task resumed (second)");
  };
  qi::Task<void> task = loop.create_task(body());
  stop_when_done(loop, task);
  loop.call_soon([&] {
    // The wake-up is queued by set_result: before what is scheduled after it,
    // after what was scheduled before.
    first.set_result();
    loop.call_soon([&] {
      log("scheduled after set_result");
      loop.call_soon(log.recorder("scheduled before set_result"));
      second.set_result();
    });
  });
  run(loop);
  EXPECT_EQ(log.items, (Strings{"task resumed (first)", "scheduled after set_result", "scheduled before set_result",
                                "task resumed (second)"}));
}

TEST_P(TaskTest, SleepZeroYieldsExactlyOneIteration) {
  QiEventLoop loop;
  std::vector<uint64_t> spent;
  auto body = [&]() -> qi::Coro<void> {
    for (auto d : {qi::sleep(0ms), qi::sleep(-1s), qi::sleep(0.0), qi::sleep(0ms)}) {
      const uint64_t before = loop.stats().iterations;
      co_await d;
      spent.push_back(loop.stats().iterations - before);
    }
  };
  qi::Task<void> task = loop.create_task(body());
  stop_when_done(loop, task);
  run(loop);
  EXPECT_EQ(spent, (std::vector<uint64_t>{1, 1, 1, 1}));
}

TEST_P(TaskTest, SleepNeverWakesEarlyAndSleepersWakeInDeadlineOrder) {
  QiEventLoop loop;
  Log log;
  std::vector<std::string> early;
  // Deadline order is start + d: a loaded machine may stall between the
  // sleepers' first steps, so the order of the delays alone is not a rule.
  std::vector<std::pair<QiEventLoop::time_point, std::string>> deadlines;
  auto sleeper = [&](std::chrono::microseconds d) -> qi::Coro<void> {
    const auto start = loop.time();
    deadlines.emplace_back(start + d, std::to_string(d.count()) + "us");
    co_await qi::sleep(d);
    const auto slept = loop.time() - start;
    if (slept < d) early.push_back(std::to_string(d.count()) + "us woke after " + std::to_string(slept.count()) + "ns");
    // Generous: only a wake-up that never came would be this late.
    EXPECT_LT(slept, d + 2s);
    log(std::to_string(d.count()) + "us");
  };
  std::vector<qi::Task<void>> sleepers;
  for (auto d : {8000us, 300us, 2000us, 4000us}) sleepers.push_back(loop.create_task(sleeper(d)));
  auto await_all = [&]() -> qi::Coro<void> {
    for (auto& t : sleepers) co_await t;
  };
  qi::Task<void> all = loop.create_task(await_all());
  stop_when_done(loop, all);
  run(loop);
  EXPECT_TRUE(early.empty()) << (early.empty() ? "" : early.front());
  std::stable_sort(deadlines.begin(), deadlines.end(),
                   [](const auto& a, const auto& b) { return a.first < b.first; });
  Strings by_deadline;
  for (const auto& [when, name] : deadlines) by_deadline.push_back(name);
  EXPECT_EQ(log.items, by_deadline);
  EXPECT_EQ(log.items.size(), 4u);
}

TEST(TaskName, DefaultsToAUniqueTaskNAndCanBeSet) {
  QiEventLoop loop;
  qi::Task<int> a = loop.create_task(value_now(1));
  qi::Task<int> b = loop.create_task(value_now(2));
  qi::Task<int> named = loop.create_task(value_now(3), "worker");
  auto number = [](const std::string& name) {
    EXPECT_EQ(name.rfind("Task-", 0), 0u) << name;
    return std::stoull(name.substr(5));
  };
  EXPECT_LT(number(a.get_name()), number(b.get_name()));
  EXPECT_EQ(named.get_name(), "worker");
  a.set_name("renamed");
  qi::Task<int> copy = a;
  EXPECT_EQ(copy.get_name(), "renamed") << "copies share one task";
  EXPECT_EQ(loop.run_until_complete(named), 3);
  EXPECT_EQ(a.get_name(), "renamed");
  EXPECT_EQ(named.get_name(), "worker") << "a finished task keeps its name";
}

TEST_P(TaskTest, DoneCallbacksAreScheduledInOrderAndReceiveTheTask) {
  QiEventLoop loop;
  Log log;
  auto body = [&]() -> qi::Coro<int> {
    co_await qi::sleep(0ms);
    // Scheduled before the task completes, so it runs before the callbacks.
    loop.call_soon(log.recorder("scheduled by the last step"));
    log("task returns");
    co_return 5;
  };
  qi::Task<int> task = loop.create_task(body());
  for (std::string name : {"cb1", "cb2", "cb3"})
    task.add_done_callback([&, name](qi::Future<int> f) {
      log(name + " got " + std::to_string(f.result()) + (f == task ? " from the task" : " from something else"));
    });
  const uint64_t removed = task.add_done_callback(log.recorder("removed callback"));
  EXPECT_EQ(task.remove_done_callback(removed), 1u);
  task.add_done_callback([&] {
    // Added to a done task: scheduled, not run here.
    task.add_done_callback([&] {
      log("added when done");
      loop.stop();
    });
    log("after adding to a done task");
  });
  run(loop);
  EXPECT_EQ(log.items, (Strings{"task returns", "scheduled by the last step", "cb1 got 5 from the task",
                                "cb2 got 5 from the task", "cb3 got 5 from the task", "after adding to a done task",
                                "added when done"}));
}

TEST_P(TaskTest, ManyCoroutinesAwaitOneTaskAndAllGetItsValue) {
  QiEventLoop loop;
  Log log;
  auto produce = [&]() -> qi::Coro<std::string> {
    co_await qi::sleep(1ms);
    co_return std::string("shared value");
  };
  qi::Task<std::string> shared = loop.create_task(produce());
  auto waiter = [&](std::string name) -> qi::Coro<void> {
    std::string v = co_await shared;
    log(name + ": " + v);
  };
  std::vector<qi::Task<void>> waiters;
  for (std::string name : {"w1", "w2", "w3"}) waiters.push_back(loop.create_task(waiter(name)));
  auto late_body = [&]() -> qi::Coro<void> {
    for (auto& w : waiters) co_await w;
    // Done by now: awaiting it again yields at once.
    log("late: " + co_await shared);
    loop.stop();
  };
  qi::Task<void> late = loop.create_task(late_body());
  run(loop);
  EXPECT_EQ(log.items,
            (Strings{"w1: shared value", "w2: shared value", "w3: shared value", "late: shared value"}));
  EXPECT_EQ(shared.result(), "shared value");
}

TEST_P(TaskTest, ManyCoroutinesAwaitOneFailingTaskAndAllGetTheOriginalType) {
  QiEventLoop loop;
  Reports reports(loop);
  qi::Task<int> failing = loop.create_task(throw_after_yield(CustomError{9}));
  std::vector<qi::Task<bool>> waiters;
  for (int i = 0; i < 3; ++i) waiters.push_back(loop.create_task(throws<CustomError>(failing)));
  stop_when_done(loop, waiters.back());
  run(loop);
  for (auto& w : waiters) EXPECT_TRUE(w.result());
  EXPECT_TRUE(reports.contexts.empty());
}

TEST_P(TaskTest, AwaitingATaskAsAnRvalueMovesItsResultOut) {
  QiEventLoop loop;
  qi::Task<std::unique_ptr<int>> task = loop.create_task(value_after_yield(std::make_unique<int>(12)));
  qi::Task<std::unique_ptr<int>> other_handle = task;
  int got = 0;
  auto take = [&]() -> qi::Coro<void> {
    std::unique_ptr<int> p = co_await std::move(task);
    got = p ? *p : -1;
  };
  qi::Task<void> taker = loop.create_task(take());
  stop_when_done(loop, taker);
  run(loop);
  EXPECT_EQ(got, 12);
  EXPECT_EQ(other_handle.result(), nullptr);
}


TEST(TaskResult, PendingAndFinishedTasksAnswerDoneResultAndException) {
  QiEventLoop loop;
  Reports reports(loop);
  qi::Task<int> value = loop.create_task(value_after_yield(6));
  qi::Task<int> failed = loop.create_task(throw_after_yield(std::out_of_range("failed")));
  qi::Task<void> nothing = loop.create_task(yield_once());
  EXPECT_FALSE(value.done());
  EXPECT_THROW(value.result(), qi::InvalidStateError);
  EXPECT_THROW(value.exception(), qi::InvalidStateError);
  loop.run_until_complete(value);
  loop.run_until_complete(nothing);
  EXPECT_TRUE(value.done());
  EXPECT_FALSE(value.cancelled());
  EXPECT_EQ(value.result(), 6);
  EXPECT_EQ(value.exception(), nullptr);
  nothing.result();
  EXPECT_EQ(nothing.exception(), nullptr);
  EXPECT_TRUE(failed.done());
  EXPECT_FALSE(failed.cancelled());
  EXPECT_THROW(failed.result(), std::out_of_range);
  EXPECT_THROW(failed.result(), std::out_of_range) << "the exception stays stored";
  std::exception_ptr e = failed.exception();
  ASSERT_TRUE(e);
  EXPECT_THROW(std::rethrow_exception(e), std::out_of_range);
  EXPECT_TRUE(reports.contexts.empty());
}

// A task's result comes from its coroutine only.
template <class F>
concept ResultSettable = requires(const F& f) { f.set_result(std::declval<typename F::value_type>()); };
template <class F>
concept ExceptionSettable = requires(const F& f) { f.set_exception(std::exception_ptr()); };
static_assert(ResultSettable<qi::Future<int>> && ExceptionSettable<qi::Future<int>>);
static_assert(!ResultSettable<qi::Task<int>> && !ExceptionSettable<qi::Task<int>>);

TEST(TaskNested, RunUntilCompleteTakesACoroATaskAndAFuture) {
  QiEventLoop loop;
  EXPECT_EQ(loop.run_until_complete(value_after_yield(std::string("coro"))), "coro");
  qi::Task<int> task = loop.create_task(value_after_yield(2));
  EXPECT_EQ(loop.run_until_complete(task), 2);
  EXPECT_EQ(task.result(), 2) << "the task keeps its value for its other handles";
  auto fut = loop.create_future<int>();
  loop.call_soon([fut] { fut.set_result(3); });
  EXPECT_EQ(loop.run_until_complete(fut), 3);
  loop.run_until_complete(yield_once());
  std::unique_ptr<int> p = loop.run_until_complete(value_after_yield(std::make_unique<int>(4)));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 4);
}

TEST(TaskNested, RunUntilCompleteRethrowsTheCoroutinesExceptionWithItsType) {
  QiEventLoop loop;
  Reports reports(loop);
  try {
    loop.run_until_complete(throw_after_yield(CustomError{21}));
    ADD_FAILURE() << "no exception";
  } catch (const CustomError& e) {
    EXPECT_EQ(e.code, 21);
  }
  qi::Task<int> task = loop.create_task(throw_now(std::out_of_range("task")));
  EXPECT_THROW(loop.run_until_complete(task), std::out_of_range);
  EXPECT_TRUE(reports.contexts.empty()) << "rethrowing counts as retrieving";
}

TEST(QiRun, ReturnsTheValueOrRethrowsTheOriginalType) {
  EXPECT_EQ(qi::run(value_after_yield(std::string("ran"))), "ran");
  qi::run(yield_once());
  try {
    qi::run(throw_after_yield(CustomError{4}));
    ADD_FAILURE() << "no exception";
  } catch (const CustomError& e) {
    EXPECT_EQ(e.code, 4);
  }
  EXPECT_THROW(qi::run(throw_now(std::out_of_range("x"))), std::out_of_range);
  EXPECT_EQ(qi::running_loop(), nullptr);
}

TEST(QiRun, CancelsTheTasksLeftBehindAndLetsThemCleanUp) {
  Log log;
  auto leftover = [&]() -> qi::Coro<void> {
    try {
      co_await qi::sleep(10s);
      log("leftover slept");
    } catch (const qi::CancelledError&) {
      log("leftover cancelled");
      throw;
    }
  };
  qi::run([&]() -> qi::Coro<void> {
    (void)qi::create_task(leftover());
    co_await qi::sleep(0ms);
    log("main returns");
  }());
  EXPECT_EQ(log.items, (Strings{"main returns", "leftover cancelled"}));
}

TEST_P(TaskTest, QiRunInsideARunningLoopThrows) {
  QiEventLoop loop;
  Log log;
  std::string message;
  loop.call_soon([&] {
    try {
      qi::run(two_steps(log, "never"));
    } catch (const qi::RuntimeError& e) {
      message = e.what();
    }
    loop.stop();
  });
  run(loop);
  EXPECT_TRUE(contains(message, "already running")) << message;
  EXPECT_TRUE(log.items.empty());
}

// Logs when the coroutine frame that holds it is destroyed.
class FrameGuard {
 public:
  explicit FrameGuard(Log& log) : log_(&log) {}
  FrameGuard(FrameGuard&& o) noexcept : log_(std::exchange(o.log_, nullptr)) {}
  FrameGuard& operator=(FrameGuard&&) = delete;
  ~FrameGuard() {
    if (log_) (*log_)("frame destroyed");
  }

 private:
  Log* log_;
};

qi::Coro<void> outlive_handles(QiEventLoop& loop, Log& log, qi::Future<int> fut, FrameGuard) {
  co_await qi::sleep(1ms);
  log("slept");
  log("got " + std::to_string(co_await fut));
  loop.stop();
}

TEST_P(TaskTest, ATaskKeepsItsCoroutineAliveAfterItsLastHandleGoes) {
  QiEventLoop loop;
  Log log;
  auto fut = loop.create_future<int>();
  { qi::Task<void> dropped = loop.create_task(outlive_handles(loop, log, fut, FrameGuard(log))); }
  EXPECT_TRUE(log.items.empty()) << "dropping the handle must not destroy the frame";
  loop.call_later(100ms, [&] {  // well after the 1 ms sleep, even on a loaded machine
    log("future set");
    fut.set_result(1);
  });
  run(loop);
  EXPECT_EQ(log.items, (Strings{"slept", "future set", "got 1", "frame destroyed"}));
}

// The never-retrieved report in `contexts`, or null.
const qi::ExceptionContext* never_retrieved(const std::vector<qi::ExceptionContext>& contexts) {
  for (auto& c : contexts)
    if (contains(c.message, "exception was never retrieved")) return &c;
  return nullptr;
}

TEST_P(TaskTest, AnExceptionNeverRetrievedIsReportedWithTheNameWhenTheLastHandleGoes) {
  QiEventLoop loop;
  Reports reports(loop);
  auto task = std::make_optional(loop.create_task(throw_after_yield(std::runtime_error("lost")), "doomed"));
  stop_when_done(loop, *task);
  run(loop);
  EXPECT_TRUE(reports.contexts.empty()) << "a handle remains: someone may still look";
  task.reset();
  ASSERT_EQ(reports.contexts.size(), 1u);
  const qi::ExceptionContext& ctx = reports.contexts[0];
  EXPECT_TRUE(contains(ctx.message, "exception was never retrieved")) << ctx.message;
  EXPECT_TRUE(contains(ctx.message, "doomed")) << ctx.message;
  try {
    std::rethrow_exception(ctx.exception);
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "lost");
  } catch (...) {
    ADD_FAILURE() << "the report must carry the original exception";
  }
}

// A report about the task's run fills ctx.task; the never-retrieved report,
// like asyncio's, names the task in ctx.future (a task is a future). The
// kept context keeps the task alive.
TEST_P(TaskTest, TheNeverRetrievedReportNamesTheTaskInContextFuture) {
  QiEventLoop loop;
  Reports reports(loop);
  auto doomed = std::make_optional(loop.create_task(throw_after_yield(std::runtime_error("lost")), "doomed"));
  stop_when_done(loop, *doomed);
  run(loop);
  doomed.reset();
  const qi::ExceptionContext* lost = never_retrieved(reports.contexts);
  ASSERT_NE(lost, nullptr);
  ASSERT_TRUE(lost->future);
  EXPECT_EQ(lost->future.describe(), "Task 'doomed'");
  EXPECT_TRUE(lost->future.done());
  EXPECT_FALSE(lost->task);
}

TEST(TaskReports, ATaskDestroyedPendingIsNamedInContextTask) {
  QiEventLoop loop;
  Reports reports(loop);
  qi::Task<void> stuck = loop.create_task([]() -> qi::Coro<void> { co_await qi::sleep(1h); }(), "stuck");
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  loop.close();
  ASSERT_EQ(reports.contexts.size(), 1u);
  EXPECT_TRUE(contains(reports.contexts[0].message, "destroyed but it is pending")) << reports.contexts[0].message;
  EXPECT_TRUE(stuck == reports.contexts[0].task);
  EXPECT_FALSE(reports.contexts[0].future);
}

TEST_P(TaskTest, ATaskWithNoHandleLeftIsReportedWhenItFails) {
  QiEventLoop loop;
  Reports reports(loop);
  std::string name;
  bool reported_before_stop = false;
  {
    qi::Task<int> task = loop.create_task(throw_after_yield(CustomError{1}));
    name = task.get_name();
  }
  loop.call_later(100ms, [&] {  // the task fails on its second iteration; a loaded machine may start late
    reported_before_stop = never_retrieved(reports.contexts) != nullptr;
    loop.stop();
  });
  run(loop);
  EXPECT_TRUE(reported_before_stop);
  const qi::ExceptionContext* ctx = never_retrieved(reports.contexts);
  ASSERT_NE(ctx, nullptr);
  EXPECT_TRUE(contains(ctx->message, name)) << ctx->message << " should name " << name;
  EXPECT_EQ(reports.contexts.size(), 1u);
}

TEST_P(TaskTest, ARetrievedOrAwaitedExceptionIsNotReported) {
  QiEventLoop loop;
  Reports reports(loop);
  qi::Task<bool> awaiter;
  {
    qi::Task<int> by_result = loop.create_task(throw_after_yield(std::out_of_range("result")));
    qi::Task<int> by_exception = loop.create_task(throw_after_yield(std::out_of_range("exception")));
    qi::Task<int> awaited = loop.create_task(throw_after_yield(std::out_of_range("awaited")));
    by_result.add_done_callback([](qi::Future<int> f) { EXPECT_THROW(f.result(), std::out_of_range); });
    by_exception.add_done_callback([](qi::Future<int> f) { EXPECT_TRUE(f.exception()); });
    awaiter = loop.create_task(throws<std::out_of_range>(awaited));
    stop_when_done(loop, awaiter);
  }
  run(loop);
  EXPECT_TRUE(awaiter.result());
  EXPECT_TRUE(reports.contexts.empty()) << reports.contexts.front().message;
}

INSTANTIATE_TEST_SUITE_P(Modes, TaskTest, testing::Values(Mode::kNested, Mode::kAttached), qt::mode_name);

}  // namespace

namespace {

qi::Coro<int> waits_on(qi::Future<int> f) { co_return co_await f; }

TEST(TaskFromFutureHandle, SetResultThroughAFutureHandleOfATaskThrows) {
  // asyncio: "Task does not support set_result() operation". Completing the
  // slot behind the coroutine's back would strand the coroutine.
  QiEventLoop loop;
  auto gate = loop.create_future<int>();
  qi::Task<int> t = loop.create_task(waits_on(gate));
  qi::Future<int> as_future = t;
  EXPECT_THROW(as_future.set_result(7), qi::RuntimeError);
  EXPECT_THROW(as_future.set_exception(std::make_exception_ptr(std::runtime_error("x"))), qi::RuntimeError);
  loop.call_soon([gate] { gate.set_result(5); });
  EXPECT_EQ(loop.run_until_complete(t), 5);
  EXPECT_EQ(loop.pending_tasks(), 0u);
}

TEST(TaskDoneCallbacks, CallbacksThatKeepAddingCallbacksToADoneFutureAllRunInOrder) {
  QiEventLoop loop;
  auto f = loop.create_future<int>();
  f.set_result(1);
  int remaining = 5000;
  std::vector<int> order;
  std::function<void()> again = [&] {
    order.push_back(remaining);
    if (--remaining > 0)
      f.add_done_callback(again);
    else
      loop.stop();
  };
  f.add_done_callback(again);
  loop.run_forever();
  ASSERT_EQ(order.size(), 5000u);
  for (std::size_t i = 0; i < order.size(); ++i) EXPECT_EQ(order[i], 5000 - static_cast<int>(i));
}

// A result type whose second move throws: co_return's move into the promise
// succeeds, the task's move from the promise into its result slot fails.
struct ThrowsOnMove {
  int moves = 0;
  ThrowsOnMove() = default;
  ThrowsOnMove(const ThrowsOnMove&) = default;
  ThrowsOnMove(ThrowsOnMove&& o) : moves(o.moves + 1) {
    if (moves == 2) throw std::runtime_error("move failed");
  }
};

qi::Coro<ThrowsOnMove> returns_armed() {
  co_await qi::sleep(0ms);
  co_return ThrowsOnMove();
}

TEST(TaskCompletion, AResultThatCannotBeStoredBecomesTheTasksException) {
  QiEventLoop loop;
  std::vector<std::string> reports;
  loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& c) { reports.push_back(c.message); });
  qi::Task<ThrowsOnMove> t;
  try {
    t = loop.create_task(returns_armed());
  } catch (...) {
    FAIL() << "creating the task must not throw";
  }
  loop.call_later(20ms, [&] { loop.stop(); });
  loop.run_forever();
  ASSERT_TRUE(t.done()) << "the task must not stay pending";
  EXPECT_THROW(t.result(), std::runtime_error);
  EXPECT_EQ(loop.pending_tasks(), 0u);
  EXPECT_FALSE(reports.empty());
}

qi::Coro<void> fails_when_cancelled() {
  bool cancelled = false;
  try {
    co_await qi::sleep(1h);
  } catch (const qi::CancelledError&) {
    cancelled = true;
  }
  if (cancelled) throw std::logic_error("cleanup failed");
}

TEST(TaskShutdown, ALeftoverThatFailsWhileBeingCancelledIsReported) {
  QiEventLoop loop;
  std::vector<std::string> reports;
  loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& c) { reports.push_back(c.message); });
  loop.create_task(fails_when_cancelled(), "fragile");
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  loop.shutdown();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_NE(reports[0].find("unhandled exception during shutdown in Task 'fragile'"), std::string::npos)
      << reports[0];
}

}  // namespace

namespace {

// --- Coros that cannot run -------------------------------------------------------

qi::Coro<void> await_lvalue(qi::Coro<int>& c) { (void)co_await c; }

// Every entry point that takes a Coro refuses `make()`'s with E, its message
// naming the entry point and `part`.
template <class E, class Make>
void expect_every_entry_point_refuses(Make make, const std::string& part) {
  QiEventLoop loop;
  auto refused = [&](const std::string& api, auto&& call) {
    try {
      call();
      ADD_FAILURE() << api << " accepted it";
    } catch (const E& e) {
      EXPECT_EQ(std::string(e.what()).rfind(api + ": ", 0), 0u) << e.what();
      EXPECT_TRUE(contains(e.what(), part)) << e.what();
    }
  };
  refused("create_task", [&] { (void)loop.create_task(make(loop)); });
  refused("run_until_complete", [&] { loop.run_until_complete(make(loop)); });
  refused("qi::run", [&] { qi::run(make(loop)); });
  // The other two need the loop running.
  bool inside = false;
  loop.run_until_complete([&]() -> qi::Coro<void> {
    refused("run_task", [&] { (void)loop.run_task(make(loop)); });
    refused("create_task", [&] { (void)qi::create_task(make(loop)); });
    inside = true;
    co_return;
  }());
  EXPECT_TRUE(inside);
  EXPECT_EQ(loop.pending_tasks(), 0u);
}

// A Coro runs once: one that was awaited (as an lvalue, so it survives) used
// to be accepted and its finished frame resumed (SIGSEGV).
TEST(TaskEntryPoints, ACoroThatAlreadyRanIsRefusedWithRuntimeErrorNamingTheFix) {
  expect_every_entry_point_refuses<qi::RuntimeError>(
      [](QiEventLoop& loop) {
        qi::Coro<int> c = value_now(1);
        if (loop.is_running()) {
          // run_task's first step awaits it to the end, here and now.
          EXPECT_TRUE(loop.run_task(await_lvalue(c)).done());
        } else {
          loop.run_until_complete(await_lvalue(c));
        }
        return c;
      },
      "already ran");
}

TEST(TaskEntryPoints, AnEmptyOrMovedFromCoroIsRefusedWithInvalidArgument) {
  expect_every_entry_point_refuses<std::invalid_argument>(
      [](QiEventLoop&) {
        qi::Coro<int> c = value_now(1);
        qi::Coro<int> taken = std::move(c);
        return c;  // NOLINT(bugprone-use-after-move): the point of the test
      },
      "empty");
}

// --- A coroutine of another library inside a task's step ---------------------------

// QCoro's shape: starts at once, keeps its frame until its handle goes, and
// resumes whoever awaits it when it finishes.
class Eager {
 public:
  struct promise_type {
    std::coroutine_handle<> awaiter;
    Eager get_return_object() noexcept { return Eager(std::coroutine_handle<promise_type>::from_promise(*this)); }
    std::suspend_never initial_suspend() noexcept { return {}; }
    auto final_suspend() noexcept {
      struct Final {
        bool await_ready() noexcept { return false; }
        std::coroutine_handle<> await_suspend(std::coroutine_handle<promise_type> h) noexcept {
          return h.promise().awaiter ? h.promise().awaiter : std::noop_coroutine();
        }
        void await_resume() noexcept {}
      };
      return Final{};
    }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
  explicit Eager(std::coroutine_handle<promise_type> h) noexcept : h_(h) {}
  Eager(Eager&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  ~Eager() {
    if (h_) h_.destroy();
  }
  bool await_ready() const noexcept { return h_.done(); }
  void await_suspend(std::coroutine_handle<> h) noexcept { h_.promise().awaiter = h; }
  void await_resume() const noexcept {}

 private:
  std::coroutine_handle<promise_type> h_;
};

Eager foreign_wait(Log& log, qi::Future<void> fut) {
  co_await fut;
  log("foreign coroutine resumed");
}

long ms_since(std::chrono::steady_clock::time_point start) {
  return static_cast<long>(
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - start).count());
}

// The foreign coroutine's await takes the task's wait slot first; the task's
// own sleep in the same step used to replace it silently, so the foreign
// future's completion (5 ms) woke the sleep early and the sleep's stale timer
// later resumed whatever the task awaited next.
qi::Coro<void> mixes_waits(Log& log, qi::Future<void> fast, qi::Future<void> never) {
  Eager foreign = foreign_wait(log, fast);
  auto start = std::chrono::steady_clock::now();
  try {
    co_await qi::sleep(50ms);
    log("the first sleep returned");
  } catch (const qi::RuntimeError& e) {
    log(std::string("refused: ") + e.what());
  }
  EXPECT_LT(ms_since(start), 40) << "refused at once";
  co_await foreign;  // what the slot is for: the foreign coroutine resumes, then the task
  log("foreign coroutine awaited");
  start = std::chrono::steady_clock::now();
  co_await qi::sleep(50ms);
  const long slept = ms_since(start);
  log(slept >= 50 ? "slept at least 50 ms" : "woke after " + std::to_string(slept) + " ms");
  try {
    co_await never;
    log("the never-completing future returned");
  } catch (const qi::CancelledError&) {
    log("cancelled while awaiting the never-completing future");
    throw;
  }
}

TEST_P(TaskTest, ASecondWaitInOneStepIsRefusedAndTheTasksOwnSleepsKeepTheirLength) {
  QiEventLoop loop;
  Log log;
  Reports reports(loop);
  auto fast = loop.create_future<void>();
  auto never = loop.create_future<void>();
  loop.call_later(5ms, [fast] { fast.set_result(); });
  qi::Task<void> t = loop.create_task(mixes_waits(log, fast, never), "mixer");
  // Cancels the task 100 ms after it started awaiting `never`: long after
  // any stale timer of the sleeps would have fired.
  loop.call_later(250ms, [t] { t.cancel(); });
  stop_when_done(loop, t);
  run(loop);
  ASSERT_EQ(log.items.size(), 5u) << testing::PrintToString(log.items);
  EXPECT_TRUE(log.items[0].starts_with("refused: qi::sleep: Task 'mixer' already waits")) << log.items[0];
  EXPECT_TRUE(contains(log.items[0], "co_await that coroutine first")) << log.items[0];
  EXPECT_EQ(Strings(log.items.begin() + 1, log.items.end()),
            (Strings{"foreign coroutine resumed", "foreign coroutine awaited", "slept at least 50 ms",
                     "cancelled while awaiting the never-completing future"}));
  EXPECT_TRUE(t.cancelled());
  EXPECT_TRUE(reports.contexts.empty());
}

// The task returns without awaiting the foreign coroutine that holds its wait:
// the wait is unhooked (the future's completion must not step a finished,
// destroyed task) and the misuse is reported.
qi::Coro<void> abandons(Log& log, qi::Future<void> fut) {
  Eager foreign = foreign_wait(log, fut);
  log("task returns");
  co_return;
}

TEST(TaskForeignCoroutine, ATaskThatReturnsWhileAForeignCoroutineHoldsItsWaitUnhooksItAndSaysSo) {
  QiEventLoop loop;
  Log log;
  Reports reports(loop);
  auto fut = loop.create_future<void>();
  {
    qi::Task<void> t = loop.create_task(abandons(log, fut), "abandoner");
    stop_when_done(loop, t);
    loop.run_forever();
    EXPECT_TRUE(t.done());
  }
  // The task is gone with its last handle; its former wait completes.
  fut.set_result();
  loop.call_soon([&] { loop.call_soon([&] { loop.stop(); }); });
  loop.run_forever();
  EXPECT_EQ(log.items, (Strings{"task returns"}));
  ASSERT_EQ(reports.contexts.size(), 1u);
  EXPECT_TRUE(contains(reports.contexts[0].message, "Task 'abandoner' finished while a coroutine it did not await"))
      << reports.contexts[0].message;
}

// --- Results of any size -------------------------------------------------------------

struct Huge {
  std::array<unsigned char, 2 << 20> bytes;  // 2 MiB
};

qi::Coro<Huge> huge(unsigned char fill) {
  co_await qi::sleep(0ms);
  auto h = std::make_unique<Huge>();  // not on the stack
  h->bytes.fill(fill);
  co_return *h;
}

// UBSan (asan-ubsan preset) used to abort: the result lay inline before the
// task's polymorphic base, more than 1 MiB from the object's start.
TEST(TaskResult, AResultOfTwoMebibytesIsStoredAndReadBack) {
  QiEventLoop loop;
  qi::Task<Huge> t = loop.create_task(huge(7), "huge");
  stop_when_done(loop, t);
  loop.run_forever();
  ASSERT_TRUE(t.done());
  const Huge& r = t.result();
  EXPECT_EQ(r.bytes.front(), 7);
  EXPECT_EQ(r.bytes.back(), 7);
  EXPECT_EQ(t.get_name(), "huge");
  EXPECT_FALSE(t.cancel());
}

}  // namespace

// --- qi::sleep's delay, on virtual time -----------------------------------------------
// One deadline helper serves sleep, call_later and call_at (event_loop_test.cpp).

QILOOP_TEST_VT(TaskSleep, ANaNDelayIsRefusedWhereSleepIsCalledNamingIt) {
  for (auto make : std::vector<std::function<void()>>{
           [] { (void)qi::sleep(std::numeric_limits<double>::quiet_NaN()); },
           [] { (void)qi::sleep(std::chrono::duration<float>(std::numeric_limits<float>::quiet_NaN())); }}) {
    try {
      make();
      ADD_FAILURE() << "a NaN delay was accepted";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("qi::sleep: the delay is NaN"), std::string::npos) << e.what();
    }
  }
  co_return;
}

QILOOP_TEST_VT(TaskSleep, InfiniteOrHugeDelaysNeverFireAndTimeStillJumpsToOtherDeadlines) {
  QiEventLoop& loop = qi::get_running_loop();
  const auto t0 = loop.time();
  std::vector<qi::Task<void>> sleepers;
  sleepers.push_back(qi::create_task([]() -> qi::Coro<void> {
    co_await qi::sleep(std::numeric_limits<double>::infinity());
  }()));
  sleepers.push_back(qi::create_task([]() -> qi::Coro<void> { co_await qi::sleep(1e300); }()));
  sleepers.push_back(qi::create_task([]() -> qi::Coro<void> { co_await qi::sleep(std::chrono::hours::max()); }()));
  sleepers.push_back(
      qi::create_task([]() -> qi::Coro<void> { co_await qi::sleep(QiEventLoop::duration::max()); }()));
  co_await qi::sleep(1h);
  EXPECT_EQ(loop.time() - t0, 1h) << "autojump went to the next real deadline, not to 'never'";
  for (auto& t : sleepers) {
    EXPECT_FALSE(t.done());
    t.cancel();
  }
  for (auto& t : sleepers) {
    try {
      co_await t;
    } catch (const qi::CancelledError&) {
    }
    EXPECT_TRUE(t.cancelled());
  }
  EXPECT_EQ(loop.time() - t0, 1h);
}

QILOOP_TEST_VT(TaskSleep, NegativeDelaysYieldOneIterationWithoutTimePassing) {
  QiEventLoop& loop = qi::get_running_loop();
  const auto t0 = loop.time();
  std::vector<uint64_t> spent;
  for (auto d : {qi::sleep(-1ns), qi::sleep(-std::numeric_limits<double>::infinity()), qi::sleep(-1e300),
                 qi::sleep(QiEventLoop::duration::min()), qi::sleep(std::chrono::hours::min())}) {
    const uint64_t before = loop.stats().iterations;
    co_await d;
    spent.push_back(loop.stats().iterations - before);
  }
  EXPECT_EQ(spent, (std::vector<uint64_t>{1, 1, 1, 1, 1}));
  EXPECT_EQ(loop.time(), t0);
}

QILOOP_TEST_VT(TaskSleep, SleepsExactlyItsDelayWhateverTheUnit) {
  QiEventLoop& loop = qi::get_running_loop();
  const std::chrono::nanoseconds odd((int64_t{1} << 53) + 1);  // beyond a double's precision
  auto t = loop.time();
  co_await qi::sleep(odd);
  EXPECT_EQ(loop.time() - t, odd);
  t = loop.time();
  co_await qi::sleep(1.5);
  EXPECT_EQ(loop.time() - t, 1500ms);
  t = loop.time();
  co_await qi::sleep(std::chrono::duration<int, std::ratio<1, 3>>(1));  // a third of a second, truncated
  EXPECT_EQ(loop.time() - t, std::chrono::nanoseconds(333333333));
}
