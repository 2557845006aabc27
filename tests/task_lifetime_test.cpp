// Who keeps a task's coroutine alive, and what happens to it at the end: the
// loop holds a pending task; qi::run and QiRunner cancel leftovers and let
// them clean up; close() destroys the frames of what is left and reports it;
// failures nobody looked at are reported. Frames are observed directly (a
// probe object in the frame), so "destroyed" means its destructor ran.
#include "log_capture.h"
#include "outside_task.h"
#include "test_util.h"

#include <gmock/gmock.h>

#include <algorithm>
#include <chrono>
#include <coroutine>
#include <exception>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using qt::Log;
using qt::Mode;
using qt::Strings;
using testing::AllOf;
using testing::ElementsAre;
using testing::HasSubstr;
using testing::StartsWith;
using testing::UnorderedElementsAre;

namespace {

// Lives in a coroutine frame (as a local or a by-value parameter) and logs
// when the frame is destroyed. `live` counts the frames not yet destroyed.
class Probe {
 public:
  Probe(Log& log, std::string name) : log_(&log), name_(std::move(name)) { ++live; }
  Probe(Probe&& o) noexcept : log_(std::exchange(o.log_, nullptr)), name_(std::move(o.name_)) {}
  Probe& operator=(Probe&&) = delete;
  ~Probe() {
    if (!log_) return;
    --live;
    (*log_)(name_ + " frame destroyed");
  }
  static inline int live = 0;

 private:
  Log* log_;
  std::string name_;
};

std::string what_of(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (const qi::CancelledError& c) {
    return std::string("CancelledError: ") + c.what();
  }
}

// Sends the loop's reports into `log`, with the task they concern.
void report_into(QiEventLoop& loop, Log& log) {
  loop.set_exception_handler([&log](QiEventLoop&, const qi::ExceptionContext& ctx) {
    std::string s = "report: " + ctx.message;
    if (ctx.task) s += " [" + ctx.task.state()->describe() + "]";
    if (ctx.exception) s += " (" + what_of(ctx.exception) + ")";
    log(s);
  });
}

// Ends a program the two ways an application does. Nested: qi::run(main).
// Attached: a QiRunner whose loop QCoreApplication::exec() drives; main's end
// stops the loop, exec() returns, and the runner goes out of scope.
void run_program(Mode mode, qi::Coro<void> main) {
  if (mode == Mode::kNested) {
    qi::run(std::move(main));
    return;
  }
  QiEventLoop loop;
  qi::Task<void> task = loop.create_task(std::move(main), "main");
  task.add_done_callback([&loop] { loop.stop(); });
  qt::run_until_stopped(loop, Mode::kAttached);
  EXPECT_TRUE(loop.is_closed());
  task.result();
}

qi::Coro<void> holding([[maybe_unused]] Probe probe) {
  co_await qi::sleep(0);
}

template <class Suspend>
qi::Coro<void> suspended(Log& log, std::string name, Suspend suspend) {
  Probe probe(log, name);
  co_await suspend();
  log(name + " resumed");
}

qi::Coro<void> outlive_handles(Log& log) {
  Probe probe(log, "worker");
  log("worker starts");
  co_await qi::sleep(1ms);
  log("worker finishes");
  qi::get_running_loop().stop();
}

// Cleans up after cancellation, awaiting while it does (a C++ catch block
// cannot co_await, so the error is kept and rethrown after).
qi::Coro<void> leftover(Log& log) {
  Probe probe(log, "leftover");
  std::exception_ptr cancelled;
  try {
    co_await qi::sleep(1h);
  } catch (const qi::CancelledError&) {
    cancelled = std::current_exception();
  }
  log("leftover cleans up");
  co_await qi::sleep(1ms);
  log("leftover cleanup done");
  if (cancelled) std::rethrow_exception(cancelled);
}

template <class Suspend>
qi::Coro<void> stubborn(Log& log, int& refusals, Suspend suspend) {
  Probe probe(log, "stubborn");
  for (;;) {
    try {
      co_await suspend();
    } catch (const qi::CancelledError&) {
      ++refusals;
    }
  }
}

// A program's main: starts `left`, lets it reach its first suspension and
// returns without awaiting it. The loop's reports and its destruction go to
// the log.
qi::Coro<void> leave_behind(Log& log, qi::Coro<void> left, std::string name) {
  QiEventLoop& loop = qi::get_running_loop();
  report_into(loop, log);
  QObject::connect(&loop, &QObject::destroyed, [&log] { log("loop destroyed"); });
  qi::create_task(std::move(left), std::move(name));
  co_await qi::sleep(0);
  log("main returns");
}

qi::Coro<void> fail(Log& log, std::string name) {
  log(name + " throws");
  throw std::runtime_error("boom from " + name);
  co_return;
}

qi::Coro<void> await_foreign(Log& log, std::string& error, qi::Future<int> foreign) {
  try {
    co_await foreign;
    log("foreign future awaited");
  } catch (const qi::RuntimeError& e) {
    error = e.what();
    log("RuntimeError");
  }
  co_await qi::sleep(0);
  log("the task goes on");
}

qi::Coro<void> await_self(Log& log, qi::Task<void>* self) {
  try {
    co_await *self;
  } catch (const qi::RuntimeError& e) {
    log(std::string("RuntimeError: ") + e.what());
  }
}

// A coroutine type that is not qiloop's (a QCoro task, a hand-rolled one).
using outside_task::Detached;

Detached await_outside_tasks(Log& log, qi::Future<int> fut) {
  try {
    co_await fut;
    log("future awaited");
  } catch (const qi::RuntimeError& e) {
    log(std::string("future: ") + e.what());
  }
  try {
    co_await qi::sleep(0);
    log("slept");
  } catch (const qi::RuntimeError& e) {
    log(std::string("sleep: ") + e.what());
  }
}

class TaskLifetimeTest : public qt::ModeTest {
 protected:
  void SetUp() override { Probe::live = 0; }
  void TearDown() override { EXPECT_EQ(Probe::live, 0) << "coroutine frames were not destroyed"; }
};

TEST_P(TaskLifetimeTest, DroppingTheLastHandleDoesNotDestroyARunningTask) {
  Log log;
  QiEventLoop loop;
  { qi::Task<void> t = loop.create_task(outlive_handles(log), "worker"); }
  log("last handle dropped");
  run(loop);
  EXPECT_EQ(log.items, (Strings{"last handle dropped", "worker starts", "worker finishes", "worker frame destroyed"}));
  EXPECT_EQ(loop.pending_tasks(), 0u);
}

// The QCoro trap: a coroutine slot started from a signal, its task handle
// discarded at once.
TEST_P(TaskLifetimeTest, ATaskStartedFromAQtSlotWithItsHandleDiscardedRunsToTheEnd) {
  Log log;
  QiEventLoop loop;
  QTimer::singleShot(0, &loop, [&] {
    (void)loop.run_task(outlive_handles(log), "worker");
    log("slot returns");
  });
  run(loop);
  EXPECT_EQ(log.items, (Strings{"worker starts", "slot returns", "worker finishes", "worker frame destroyed"}));
}

TEST_P(TaskLifetimeTest, AtTheEndLeftoverTasksAreCancelledAndTheirCleanupRunsBeforeTheLoopCloses) {
  Log log;
  const auto start = std::chrono::steady_clock::now();
  run_program(mode(), leave_behind(log, leftover(log), "leftover"));
  log("program ended");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s) << "the leftover's 1 h sleep must not be waited for";
  EXPECT_EQ(log.items, (Strings{"main returns", "leftover cleans up", "leftover cleanup done",
                                "leftover frame destroyed", "loop destroyed", "program ended"}));
}

// Shutdown cancels a refusing task a bounded number of times, reports it,
// and close() then destroys its frame anyway.
template <class Suspend>
void expect_refusal_is_bounded(Mode mode, Suspend suspend) {
  Log log;
  int refusals = 0;
  const auto start = std::chrono::steady_clock::now();
  run_program(mode, leave_behind(log, stubborn(log, refusals, std::move(suspend)), "stubborn"));
  log("program ended");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  EXPECT_EQ(refusals, QiEventLoop::kShutdownCancelRounds);
  EXPECT_THAT(log.items, ElementsAre("main returns",
                                     AllOf(StartsWith("report: Task 'stubborn'"), HasSubstr("did not finish"),
                                           HasSubstr("[Task 'stubborn']")),
                                     "report: Task was destroyed but it is pending! [Task 'stubborn']",
                                     "stubborn frame destroyed", "loop destroyed", "program ended"));
}

TEST_P(TaskLifetimeTest, ATaskThatSwallowsCancellationForeverDoesNotHangTheEnd) {
  expect_refusal_is_bounded(mode(), [] { return qi::sleep(1h); });
}

// The refusing task never lets the loop idle: the rounds must still end.
TEST_P(TaskLifetimeTest, ATaskThatSwallowsCancellationAndSpinsDoesNotHangTheEnd) {
  expect_refusal_is_bounded(mode(), [] { return qi::sleep(0); });
}

TEST(TaskLifetime, QiRunRethrowsMainsExceptionAfterTheLeftoversCleanedUp) {
  Log log;
  Probe::live = 0;
  try {
    qi::run([](Log& log) -> qi::Coro<void> {
      co_await leave_behind(log, leftover(log), "leftover");
      throw std::range_error("main failed");
    }(log));
    ADD_FAILURE() << "qi::run must rethrow";
  } catch (const std::range_error& e) {
    log(std::string("caught: ") + e.what());
  }
  EXPECT_EQ(log.items, (Strings{"main returns", "leftover cleans up", "leftover cleanup done",
                                "leftover frame destroyed", "loop destroyed", "caught: main failed"}));
  EXPECT_EQ(Probe::live, 0);
}

// Without QiRunner or qi::run nobody cancels: close() destroys the frames of
// whatever is still suspended, reports each task, and leaves every handle
// cancelled, so whoever holds one never waits forever.
TEST(TaskLifetime, CloseDestroysTheFramesOfSuspendedTasksAndReportsEach) {
  Log log;
  Probe::live = 0;
  auto loop = std::make_unique<QiEventLoop>();
  report_into(*loop, log);
  auto fut = loop->create_future<int>();
  qi::Task<void> a = loop->create_task(suspended(log, "a", [fut] { return fut; }), "a");
  qi::Task<void> b = loop->create_task(suspended(log, "b", [] { return qi::sleep(1h); }), "b");
  qi::Task<void> c = loop->create_task(suspended(log, "c", [a] { return a; }), "c");
  // Its next step is in the ready queue when the loop closes.
  qi::Task<void> d = loop->create_task(suspended(log, "d", [] { return qi::sleep(0); }), "d");
  qi::Future<void> a_copy = a;
  loop->call_soon([&] { loop->stop(); });  // after the tasks' first steps
  loop->run_forever();
  qi::Task<void> e = loop->create_task(holding(Probe(log, "e")), "e");  // never started
  EXPECT_EQ(loop->pending_tasks(), 5u);
  EXPECT_EQ(Probe::live, 5);
  EXPECT_TRUE(log.items.empty());

  loop->close();
  EXPECT_EQ(Probe::live, 0);
  EXPECT_THAT(log.items, UnorderedElementsAre("report: Task was destroyed but it is pending! [Task 'a']",
                                              "report: Task was destroyed but it is pending! [Task 'b']",
                                              "report: Task was destroyed but it is pending! [Task 'c']",
                                              "report: Task was destroyed but it is pending! [Task 'd']",
                                              "report: Task was destroyed but it is pending! [Task 'e']",
                                              "a frame destroyed", "b frame destroyed", "c frame destroyed",
                                              "d frame destroyed", "e frame destroyed"));
  EXPECT_EQ(loop->pending_tasks(), 0u);
  fut.set_result(1);  // a's wait is gone with its frame: nothing resumes

  // Handles outlive their loop.
  loop.reset();
  for (const qi::Future<void>& h : {qi::Future<void>(a), a_copy, qi::Future<void>(b), qi::Future<void>(c),
                                    qi::Future<void>(d), qi::Future<void>(e)}) {
    EXPECT_TRUE(h.cancelled());
    EXPECT_THROW(h.result(), qi::CancelledError);
  }
  EXPECT_EQ(log.items.size(), 10u) << "nothing may resume after close()";
}

// --- Deep chains ----------------------------------------------------------------

// One level of a deep chain of nested awaits. Its frame's destruction is
// checked against the order the recursive destruction has: innermost first.
struct Chain {
  qi::Future<void> never;
  int next_destroyed = 0;  // the depth whose frame must go next
  int out_of_order = 0;
};

struct Level {
  Chain* chain;
  int depth;
  ~Level() {
    if (depth != chain->next_destroyed++) ++chain->out_of_order;
  }
};

qi::Coro<void> nest(Chain& chain, int depth) {
  Level level{&chain, depth};
  // Where symmetric transfer is not a tail call (g++ -O0, sanitizers) each
  // nested await takes stack until something suspends: suspending every
  // 1000 levels keeps building the chain shallow.
  if (depth % 1000 == 0) co_await qi::sleep(0);
  if (depth > 0) {
    co_await nest(chain, depth - 1);
  } else {
    qi::get_running_loop().stop();
    co_await chain.never;
  }
}

constexpr int kChainDepth = 1'000'000;  // a recursive destruction overflowed at about 130,000

// close() destroys a task's frames; a suspended chain of nested awaits used
// to be destroyed recursively, one stack frame per level (SIGSEGV past about
// 130,000 levels).
TEST(TaskLifetime, CloseDestroysAMillionDeepSuspendedChainInnermostFirstInConstantStack) {
  Log log;
  QiEventLoop loop;
  report_into(loop, log);
  Chain chain{loop.create_future<void>()};
  qi::Task<void> t = loop.create_task(nest(chain, kChainDepth - 1), "deep");
  loop.run_forever();  // until the innermost level awaits `never`
  ASSERT_EQ(chain.next_destroyed, 0);
  loop.close();
  EXPECT_EQ(chain.next_destroyed, kChainDepth);
  EXPECT_EQ(chain.out_of_order, 0);
  EXPECT_EQ(log.items, (Strings{"report: Task was destroyed but it is pending! [Task 'deep']"}));
  EXPECT_TRUE(t.cancelled());
}

// Tasks awaiting each other never finish: shutdown cancels them (each request
// goes round the cycle once), reports both after its rounds and closes the
// loop, which destroys their frames. The cancel used to recurse round the
// cycle until the stack overflowed.
qi::Coro<void> await_other(Log& log, std::string name, const qi::Task<void>* other) {
  Probe probe(log, name);
  co_await *other;
  log(name + " resumed");
}

TEST_P(TaskLifetimeTest, TasksDeadlockedAwaitingEachOtherAreReportedAtShutdownAndTheProgramEnds) {
  Log log;
  qi::Task<void> a, b;
  const auto start = std::chrono::steady_clock::now();
  run_program(mode(), [](Log& log, qi::Task<void>& a, qi::Task<void>& b) -> qi::Coro<void> {
    QiEventLoop& loop = qi::get_running_loop();
    report_into(loop, log);
    QObject::connect(&loop, &QObject::destroyed, [&log] { log("loop destroyed"); });
    a = qi::create_task(await_other(log, "a", &b), "a");
    b = qi::create_task(await_other(log, "b", &a), "b");
    co_await qi::sleep(0);
    log("main returns");
  }(log, a, b));
  log("program ended");
  EXPECT_LT(std::chrono::steady_clock::now() - start, 5s);
  const std::string refused = " did not finish after being cancelled at shutdown";
  EXPECT_EQ(log.items, (Strings{"main returns", "report: Task 'b'" + refused + " [Task 'b']",
                                "report: Task 'a'" + refused + " [Task 'a']",
                                "report: Task was destroyed but it is pending! [Task 'b']", "b frame destroyed",
                                "report: Task was destroyed but it is pending! [Task 'a']", "a frame destroyed",
                                "loop destroyed", "program ended"}));
  EXPECT_TRUE(a.cancelled());
  EXPECT_TRUE(b.cancelled());
}

qi::Coro<void> await_next(qi::Task<void> next) { co_await next; }

// A long chain of tasks, each awaiting the next, left behind: shutdown
// cancels every one of them. Each request reaches what the task awaits only
// if no request reached that already, so the whole round is linear (it was
// a recursion per task; a walk to the end of the chain per task would be
// quadratic) and no task counts more than one request per round beyond the
// first walk's.
TEST_P(TaskLifetimeTest, ALongChainOfTasksLeftBehindIsCancelledAtShutdownInLinearTime) {
  constexpr int kTasks = 2'000;
  Log log;
  std::vector<qi::Task<void>> chain;
  run_program(mode(), [](Log& log, std::vector<qi::Task<void>>& chain) -> qi::Coro<void> {
    QiEventLoop& loop = qi::get_running_loop();
    report_into(loop, log);
    chain.push_back(loop.create_task(suspended(log, "end", [] { return qi::sleep(1h); }), "end"));
    for (int i = 1; i < kTasks; ++i) chain.push_back(loop.create_task(await_next(chain.back())));
    co_await qi::sleep(0);
    log("main returns");
  }(log, chain));
  EXPECT_EQ(log.items, (Strings{"main returns", "end frame destroyed"}));
  int most = 0, pending = 0;
  for (const qi::Task<void>& t : chain) {
    most = std::max(most, t.cancelling());
    pending += !t.cancelled();
  }
  EXPECT_EQ(pending, 0);
  EXPECT_LE(most, QiEventLoop::kShutdownCancelRounds + 1);
}

// "exception was never retrieved", named after the task, when its last
// handle goes; not for a task whose exception was looked at, nor for a
// cancelled one.
TEST_P(TaskLifetimeTest, AnExceptionNobodyRetrievedIsReportedWithTheTaskNameWhenTheTaskGoes) {
  Log log;
  QiEventLoop loop;
  report_into(loop, log);
  { qi::Task<void> dropped = loop.create_task(fail(log, "dropped"), "dropped"); }
  EXPECT_TRUE(loop.create_task(fail(log, "cancelled"), "cancelled").cancel());
  qi::Task<void> kept = loop.create_task(fail(log, "kept"), "kept");
  qi::Task<void> looked_at = loop.create_task(fail(log, "looked at"), "looked at");
  looked_at.add_done_callback([&](qi::Future<void> f) { log("looked at: " + what_of(f.exception())); });
  looked_at.add_done_callback([&] { loop.stop(); });
  run(loop);
  EXPECT_EQ(log.items,
            (Strings{"dropped throws", "report: Task 'dropped' exception was never retrieved (boom from dropped)",
                     "kept throws", "looked at throws", "looked at: boom from looked at"}));
  log.items.clear();
  looked_at = {};
  EXPECT_TRUE(log.items.empty());
  kept = {};
  EXPECT_EQ(log.items, (Strings{"report: Task 'kept' exception was never retrieved (boom from kept)"}));
}

TEST(TaskLifetime, RunTaskWithoutARunningLoopThrowsAndSaysToUseCreateTask) {
  Log log;
  Probe::live = 0;
  QiEventLoop loop;
  try {
    (void)loop.run_task(holding(Probe(log, "unstarted")));
    ADD_FAILURE() << "run_task must throw";
  } catch (const qi::RuntimeError& e) {
    EXPECT_THAT(e.what(), HasSubstr("create_task"));
  }
  EXPECT_EQ(log.items, (Strings{"unstarted frame destroyed"}));
  EXPECT_EQ(loop.pending_tasks(), 0u);
  EXPECT_THAT([&] { (void)qi::create_task(holding(Probe(log, "no loop"))); },
              testing::ThrowsMessage<qi::RuntimeError>(HasSubstr("no running event loop in this thread")));
  EXPECT_EQ(Probe::live, 0);
}

TEST_P(TaskLifetimeTest, AwaitingAFutureOfAnotherLoopThrowsRuntimeError) {
  Log log;
  QiEventLoop other;
  QiEventLoop loop;
  std::string error;
  qi::Task<void> t = loop.create_task(await_foreign(log, error, other.create_future<int>()));
  t.add_done_callback([&] { loop.stop(); });
  run(loop);
  EXPECT_EQ(log.items, (Strings{"RuntimeError", "the task goes on"}));
  EXPECT_THAT(error, HasSubstr("another event loop"));
  t.result();
}

// Its loop gone, the future can wake nobody: the await fails at once
// instead of hanging the task for ever.
TEST_P(TaskLifetimeTest, AwaitingAPendingFutureOfADestroyedLoopThrowsRuntimeError) {
  Log log;
  qi::Future<int> orphan;
  {
    QiEventLoop gone;
    orphan = gone.create_future<int>();
  }
  QiEventLoop loop;
  std::string error;
  qi::Task<void> t = loop.create_task(await_foreign(log, error, orphan));
  t.add_done_callback([&] { loop.stop(); });
  run(loop);
  EXPECT_EQ(log.items, (Strings{"RuntimeError", "the task goes on"}));
  EXPECT_THAT(error, HasSubstr("co_await: Future belongs to an event loop that was destroyed"));
  t.result();
}

// The refused await leaves nothing half done: no wake-up on the orphan
// (completing it drops no callback), and the task's one wait slot is free,
// so it awaits its own loop's future next, in debug mode too.
TEST_P(TaskLifetimeTest, ARefusedAwaitOfADestroyedLoopsFutureLeavesNoWaitBehind) {
  qi::Future<int> orphan;
  {
    QiEventLoop gone;
    orphan = gone.create_future<int>();
  }
  QiEventLoop loop;
  loop.set_debug(true);
  qi::Future<int> own = loop.create_future<int>();
  Log log;
  qi::Task<void> t = loop.create_task([](Log& log, qi::Future<int> orphan, qi::Future<int> own) -> qi::Coro<void> {
    for (int i = 0; i < 2; ++i) {
      try {
        (void)co_await orphan;
      } catch (const qi::RuntimeError&) {
        log("refused");
      }
    }
    log("own " + std::to_string(co_await own));
  }(log, orphan, own));
  loop.call_soon([own] { own.set_result(7); });
  t.add_done_callback([&] { loop.stop(); });
  run(loop);
  t.result();
  EXPECT_EQ(log.items, (Strings{"refused", "refused", "own 7"}));
  log_capture::LogCapture captured;
  orphan.set_result(1);
  EXPECT_EQ(captured.text(), "") << "a wake-up was left on the orphan";
}

TEST_P(TaskLifetimeTest, ATaskAwaitingItselfThrowsRuntimeError) {
  Log log;
  QiEventLoop loop;
  qi::Task<void> self;
  self = loop.create_task(await_self(log, &self));
  self.add_done_callback([&] { loop.stop(); });
  run(loop);
  EXPECT_THAT(log.items, ElementsAre(StartsWith("RuntimeError: ")));
  self.result();
}

// A plain callback is not a task: there is nobody to resume the coroutine.
TEST_P(TaskLifetimeTest, AwaitingOutsideAnyTaskThrowsRuntimeErrorNamingTheFix) {
  Log log;
  QiEventLoop loop;
  auto fut = loop.create_future<int>();
  loop.call_soon([&] {
    EXPECT_FALSE(qi::current_task());
    await_outside_tasks(log, fut);
    loop.stop();
  });
  run(loop);
  EXPECT_THAT(log.items, ElementsAre(AllOf(StartsWith("future: "), HasSubstr("create_task")),
                                     AllOf(StartsWith("sleep: "), HasSubstr("create_task"))));
}

TEST_P(TaskLifetimeTest, ACoroNeverAwaitedIsReportedInDebugModeOnly) {
  Log log;
  QiEventLoop loop;
  report_into(loop, log);
  loop.call_soon([&] {
    loop.set_debug(false);
    { qi::Coro<void> quiet = holding(Probe(log, "quiet")); }
    loop.set_debug(true);
    { qi::Coro<void> dropped = holding(Probe(log, "dropped")); }
    qi::Coro<void> moved = holding(Probe(log, "task"));
    qi::Coro<void> from = std::move(moved);  // a moved-from Coro is not a coroutine: not reported
    qi::Task<void> t = loop.create_task(std::move(from));
    loop.set_debug(false);
    t.add_done_callback([&] { loop.stop(); });
  });
  run(loop);
  EXPECT_THAT(log.items, ElementsAre("quiet frame destroyed", StartsWith("report: coroutine was never awaited"),
                                     "dropped frame destroyed", "task frame destroyed"));
}

INSTANTIATE_TEST_SUITE_P(Modes, TaskLifetimeTest, testing::Values(Mode::kNested, Mode::kAttached), qt::mode_name);

}  // namespace
