// Misuse gives a clear error whose message names the fix — never a crash or a
// hang — and the loop stays usable afterwards where that makes sense.
#include "test_util.h"

#include <QtCore/QThread>

#include <gmock/gmock.h>

#include <absl/functional/any_invocable.h>

#include <cmath>
#include <exception>
#include <functional>
#include <future>
#include <limits>
#include <stdexcept>
#include <string_view>
#include <thread>

#include <fcntl.h>
#include <unistd.h>

using namespace std::chrono_literals;
using qt::Mode;
using testing::HasSubstr;

namespace {

constexpr auto kGuard = 2s;

// Expects f() to throw E with `phrase` in its message. (A macro supplies the
// call site: clang 14 with libstdc++ 12 has no std::source_location.)
template <class E, class F>
void expect_error_impl(const char* file, int line, F&& f, std::string_view phrase) {
  testing::ScopedTrace trace(file, line, "expect_error");
  try {
    std::forward<F>(f)();
    ADD_FAILURE() << "no exception; expected one saying \"" << phrase << "\"";
  } catch (const E& e) {
    EXPECT_THAT(e.what(), HasSubstr(std::string(phrase)));
  } catch (const std::exception& e) {
    ADD_FAILURE() << "an exception of another type: " << e.what();
  } catch (...) {
    ADD_FAILURE() << "an exception that is not a std::exception";
  }
}

#define EXPECT_ERROR(E, ...) expect_error_impl<E>(__FILE__, __LINE__, __VA_ARGS__)

// Runs f on a new thread and rethrows here whatever it threw there.
template <class F>
void on_other_thread(F f) {
  std::exception_ptr error;
  std::thread([&] {
    try {
      f();
    } catch (...) {
      error = std::current_exception();
    }
  }).join();
  if (error) std::rethrow_exception(error);
}

// A loop that runs one callback and stops: proof that it still works.
void expect_still_runs(QiEventLoop& loop, Mode mode = Mode::kNested) {
  bool ran = false;
  loop.call_soon([&] {
    ran = true;
    loop.stop();
  });
  qt::run_until_stopped(loop, mode, kGuard);
  EXPECT_TRUE(ran) << "the loop no longer runs";
}

class MisuseTest : public qt::ModeTest {
 protected:
  void run(QiEventLoop& loop) { qt::run_until_stopped(loop, mode(), kGuard); }
};

// --- A closed loop ---------------------------------------------------------------

TEST(Misuse, SchedulingOnAClosedLoopThrows) {
  QiEventLoop loop;
  loop.close();
  constexpr std::string_view kFix = "create a new QiEventLoop";
  EXPECT_ERROR(qi::RuntimeError, [&] { loop.call_soon([] {}); }, kFix);
  EXPECT_ERROR(qi::RuntimeError, [&] { loop.call_later(1ms, [] {}); }, kFix);
  EXPECT_ERROR(qi::RuntimeError, [&] { loop.call_later(0.001, [] {}); }, kFix);
  EXPECT_ERROR(qi::RuntimeError, [&] { loop.call_at(loop.time(), [] {}); }, kFix);
  EXPECT_ERROR(qi::RuntimeError, [&] { loop.call_soon_threadsafe([] {}); }, kFix);
  EXPECT_ERROR(qi::RuntimeError, [&] { on_other_thread([&] { loop.call_soon_threadsafe([] {}); }); }, kFix);
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  EXPECT_ERROR(qi::RuntimeError, [&] { loop.add_reader(fds[0], [] {}); }, kFix);
  EXPECT_ERROR(qi::RuntimeError, [&] { loop.add_writer(fds[1], [] {}); }, kFix);
  EXPECT_FALSE(loop.remove_reader(fds[0]));
  ::close(fds[0]);
  ::close(fds[1]);
  EXPECT_ERROR(qi::RuntimeError, [&] { loop.run_forever(); }, kFix);
  EXPECT_ERROR(qi::RuntimeError, [&] { QiRunner runner(loop); }, kFix);
  EXPECT_TRUE(loop.is_closed());
}

// --- Running what already runs -------------------------------------------------

TEST_P(MisuseTest, RunningARunningLoopFromItsCallbackThrows) {
  QiEventLoop loop;
  auto fut = loop.create_future<int>();
  bool after = false;
  loop.call_soon([&] {
    EXPECT_ERROR(qi::RuntimeError, [&] { loop.run_forever(); }, "instead of running the loop again");
    EXPECT_ERROR(qi::RuntimeError, [&] { loop.run_until_complete(fut); }, "instead of running the loop again");
    loop.call_soon([&] {
      after = true;
      loop.stop();
    });
  });
  run(loop);
  EXPECT_TRUE(after) << "the loop must keep going after the error";
}

TEST(Misuse, RunForeverAndRunUntilCompleteThrowInAttachedMode) {
  QiEventLoop loop;
  QiRunner runner(loop);
  auto fut = loop.create_future<int>();
  // While the logical loop runs, it is simply already running.
  EXPECT_ERROR(qi::RuntimeError, [&] { loop.run_forever(); }, "call_soon");
  // Once stopped, the runner still owns it: exec() drives it, not run_*.
  loop.call_soon([&] { loop.stop(); });
  QObject::connect(&loop, &QiEventLoop::stopped, [] { QCoreApplication::exit(0); });
  QObject guard_context;
  QTimer::singleShot(kGuard, &guard_context, [] { QCoreApplication::exit(1); });
  ASSERT_EQ(QCoreApplication::exec(), 0);
  ASSERT_FALSE(loop.is_running());
  EXPECT_ERROR(qi::RuntimeError, [&] { loop.run_forever(); }, "attached mode");
  EXPECT_ERROR(qi::RuntimeError, [&] { loop.run_until_complete(fut); }, "attached mode");
  EXPECT_ERROR(qi::RuntimeError, [&] { QiRunner second(loop); }, "attached mode");
}

TEST_P(MisuseTest, CloseWhileRunningThrows) {
  QiEventLoop loop;
  bool after = false;
  loop.call_soon([&] {
    EXPECT_ERROR(qi::RuntimeError, [&] { loop.close(); }, "call stop()");
    EXPECT_FALSE(loop.is_closed());
    loop.call_soon([&] {
      after = true;
      loop.stop();
    });
  });
  run(loop);
  EXPECT_TRUE(after);
}

// One running loop per thread: loop B cannot run inside loop A's callback,
// nor can a QiRunner start there; both loops work afterwards.
TEST_P(MisuseTest, ASecondLoopCannotRunOnTheSameThread) {
  QiEventLoop a;
  QiEventLoop b;
  auto fut = b.create_future<int>();
  constexpr std::string_view kFix = "only one loop runs per thread";
  a.call_soon([&] {
    EXPECT_ERROR(qi::RuntimeError, [&] { b.run_forever(); }, kFix);
    EXPECT_ERROR(qi::RuntimeError, [&] { b.run_until_complete(fut); }, kFix);
    EXPECT_ERROR(qi::RuntimeError, [&] { QiRunner runner(b); }, kFix);
    EXPECT_ERROR(qi::RuntimeError, [&] { QiRunner runner; }, kFix);
    EXPECT_EQ(&qi::get_running_loop(), &a);
    EXPECT_FALSE(b.is_running());
    a.stop();
  });
  run(a);
  expect_still_runs(b);
}

TEST(Misuse, ASecondRunnerCannotStartWhileAnotherLoopIsAttached) {
  QiRunner first;
  EXPECT_ERROR(qi::RuntimeError, [] { QiRunner second; }, "only one loop runs per thread");
  QiEventLoop other;
  EXPECT_ERROR(qi::RuntimeError, [&] { other.run_forever(); }, "only one loop runs per thread");
  EXPECT_EQ(&qi::get_running_loop(), &first.loop());
}

// --- The wrong thread ----------------------------------------------------------

TEST_P(MisuseTest, RunStopAndCloseFromAnotherThreadThrow) {
  QiEventLoop loop;
  constexpr std::string_view kFix = "use call_soon_threadsafe";
  // Idle, and then running: neither may be driven from another thread.
  EXPECT_ERROR(qi::RuntimeError, [&] { on_other_thread([&] { loop.run_forever(); }); }, kFix);
  EXPECT_ERROR(qi::RuntimeError, [&] { on_other_thread([&] { loop.close(); }); }, kFix);
  bool after = false;
  loop.call_soon([&] {
    EXPECT_ERROR(qi::RuntimeError, [&] { on_other_thread([&] { loop.stop(); }); }, kFix);
    EXPECT_ERROR(qi::RuntimeError, [&] { on_other_thread([&] { loop.close(); }); }, kFix);
    EXPECT_ERROR(qi::RuntimeError, [&] { on_other_thread([&] { loop.run_forever(); }); }, kFix);
    // The fix the message names works.
    on_other_thread([&] {
      loop.call_soon_threadsafe([&] {
        after = true;
        loop.stop();
      });
    });
  });
  run(loop);
  EXPECT_TRUE(after);
  if (mode() == Mode::kNested) expect_still_runs(loop);
}

TEST(Misuse, DebugModeRejectsLoopCallsFromAnotherThread) {
  QiEventLoop loop;
  loop.set_debug(true);
  constexpr std::string_view kFix = "use call_soon_threadsafe";
  EXPECT_ERROR(qi::RuntimeError, [&] { on_other_thread([&] { loop.call_soon([] {}); }); }, kFix);
  EXPECT_ERROR(qi::RuntimeError, [&] { on_other_thread([&] { loop.call_later(1ms, [] {}); }); }, kFix);
  EXPECT_ERROR(qi::RuntimeError, [&] { on_other_thread([&] { loop.call_at(loop.time(), [] {}); }); }, kFix);
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  EXPECT_ERROR(qi::RuntimeError, [&] { on_other_thread([&] { loop.add_reader(fds[0], [] {}); }); }, kFix);
  EXPECT_ERROR(qi::RuntimeError, [&] { on_other_thread([&] { loop.remove_reader(fds[0]); }); }, kFix);
  ::close(fds[0]);
  ::close(fds[1]);
  bool threadsafe_ran = false;
  on_other_thread([&] { loop.call_soon_threadsafe([&] { threadsafe_ran = true; }); });
  expect_still_runs(loop);
  EXPECT_TRUE(threadsafe_ran);
}

// --- Bad arguments --------------------------------------------------------------

template <class Sig>
using FunctionPointer = Sig*;

// Every scheduling API rejects an empty callable of family Empty (with and
// without extra arguments), leaving nothing scheduled.
template <template <class> class Empty>
void expect_empty_callables_rejected(QiEventLoop& loop, int rd, int wr) {
  constexpr std::string_view kFix = "pass a callable";
  using None = Empty<void()>;
  using One = Empty<void(int)>;
  EXPECT_ERROR(std::invalid_argument, [&] { loop.call_soon(None{}); }, kFix);
  EXPECT_ERROR(std::invalid_argument, [&] { loop.call_soon(One{}, 1); }, kFix);
  EXPECT_ERROR(std::invalid_argument, [&] { loop.call_later(1ms, None{}); }, kFix);
  EXPECT_ERROR(std::invalid_argument, [&] { loop.call_later(0.001, One{}, 1); }, kFix);
  EXPECT_ERROR(std::invalid_argument, [&] { loop.call_at(loop.time(), None{}); }, kFix);
  EXPECT_ERROR(std::invalid_argument, [&] { loop.call_soon_threadsafe(None{}); }, kFix);
  EXPECT_ERROR(std::invalid_argument, [&] { loop.call_soon_threadsafe(One{}, 1); }, kFix);
  EXPECT_ERROR(std::invalid_argument, [&] { loop.add_reader(rd, None{}); }, kFix);
  EXPECT_ERROR(std::invalid_argument, [&] { loop.add_writer(wr, One{}, 1); }, kFix);
  EXPECT_FALSE(loop.remove_reader(rd));
  EXPECT_FALSE(loop.remove_writer(wr));
}

TEST(Misuse, EmptyCallablesAreRejected) {
  QiEventLoop loop;
  int fds[2];
  ASSERT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  {
    SCOPED_TRACE("null function pointer");
    expect_empty_callables_rejected<FunctionPointer>(loop, fds[0], fds[1]);
  }
  {
    SCOPED_TRACE("empty std::function");
    expect_empty_callables_rejected<std::function>(loop, fds[0], fds[1]);
  }
  {
    SCOPED_TRACE("empty absl::AnyInvocable");
    expect_empty_callables_rejected<absl::AnyInvocable>(loop, fds[0], fds[1]);
  }
  ::close(fds[0]);
  ::close(fds[1]);
  expect_still_runs(loop);
}

TEST(Misuse, NanDelayIsRejected) {
  QiEventLoop loop;
  EXPECT_ERROR(std::invalid_argument, 
      [&] { loop.call_later(std::numeric_limits<double>::quiet_NaN(), [] {}); }, "the delay is NaN");
  EXPECT_ERROR(std::invalid_argument, [&] { loop.call_later(std::nan(""), [](int) {}, 1); },
                                      "pass a number of seconds");
  expect_still_runs(loop);
}

TEST(Misuse, NonPositiveSliceBudgetIsRejected) {
  QiEventLoop loop;
  const auto before = loop.slice_budget();
  EXPECT_ERROR(std::invalid_argument, [&] { loop.set_slice_budget(0ms); }, "must be positive");
  EXPECT_ERROR(std::invalid_argument, [&] { loop.set_slice_budget(-1ms); }, "must be positive");
  EXPECT_EQ(loop.slice_budget(), before) << "a rejected budget must not be applied";
  expect_still_runs(loop);
}

TEST(Misuse, NegativeExecutorShutdownTimeoutIsRejected) {
  QiEventLoop loop;
  const auto before = loop.executor_shutdown_timeout();
  EXPECT_ERROR(std::invalid_argument, [&] { loop.set_executor_shutdown_timeout(-1ms); },
               "set_executor_shutdown_timeout: the timeout is negative; pass a duration >= 0");
  EXPECT_EQ(loop.executor_shutdown_timeout(), before) << "a rejected timeout must not be applied";
  loop.set_executor_shutdown_timeout(0ms);  // zero: do not wait at all
  EXPECT_EQ(loop.executor_shutdown_timeout(), 0ms);
}

// Asking for the running loop where none runs names the ways to have one.
TEST(Misuse, GetRunningLoopWithNoRunningLoopNamesTheFix) {
  EXPECT_ERROR(qi::RuntimeError, [] { (void)qi::get_running_loop(); }, "no running event loop in this thread");
  EXPECT_ERROR(qi::RuntimeError, [] { (void)qi::get_running_loop(); }, "create a QiRunner");
  EXPECT_ERROR(qi::RuntimeError, [] { on_other_thread([] { (void)qi::get_running_loop(); }); },
               "no running event loop in this thread");
  EXPECT_EQ(qi::running_loop(), nullptr);
}

// run_until_complete refuses a future it cannot wait for before it runs, and
// says so when the loop stopped before the future was done (asyncio's words).
TEST(Misuse, RunUntilCompleteRefusesAnEmptyAForeignOrAnUnfinishedFuture) {
  QiEventLoop loop;
  EXPECT_ERROR(std::invalid_argument, [&] { loop.run_until_complete(qi::Future<int>()); },
               "run_until_complete: the future is empty (default-constructed)");
  QiEventLoop other;
  auto foreign = other.create_future<int>();
  EXPECT_ERROR(qi::RuntimeError, [&] { loop.run_until_complete(foreign); },
               "the future belongs to another event loop; run that loop, or create the future with this loop's "
               "create_future()");
  EXPECT_FALSE(foreign.done());
  auto never = loop.create_future<int>();
  loop.call_soon([&] { loop.stop(); });
  EXPECT_ERROR(qi::RuntimeError, [&] { loop.run_until_complete(never); }, "Event loop stopped before Future completed.");
  EXPECT_FALSE(never.done());
  EXPECT_FALSE(loop.is_running());
  never.set_result(3);  // the stop-callback is gone: completing it schedules nothing
  EXPECT_EQ(loop.run_until_complete(never), 3);
}

// shutdown() runs the loop itself: from a running loop's callback it is
// refused, and the loop goes on.
TEST_P(MisuseTest, ShutdownWhileRunningThrowsAndTheLoopGoesOn) {
  QiEventLoop loop;
  bool after = false;
  loop.call_soon([&] {
    EXPECT_ERROR(qi::RuntimeError, [&] { loop.shutdown(); },
                 "shutdown: the loop is running; stop it first (shutdown runs it itself)");
    loop.call_soon([&] {
      after = true;
      loop.stop();
    });
  });
  run(loop);
  EXPECT_TRUE(after) << "the loop went on after the refused shutdown()";
}

INSTANTIATE_TEST_SUITE_P(Modes, MisuseTest, testing::Values(Mode::kNested, Mode::kAttached), qt::mode_name);

// --- Fatal: destroying what runs -------------------------------------------------

// Destroying a running loop would leave its QEventLoop and callbacks
// dangling; qFatal says what to do instead.
TEST(MisuseDeathTest, DestroyingALoopFromItsOwnCallbackIsFatal) {
  EXPECT_DEATH(
      {
        auto* loop = new QiEventLoop;
        loop->call_soon([loop] { delete loop; });
        loop->run_forever();
      },
      "QiEventLoop destroyed while running: call stop\\(\\)");
}

TEST(MisuseDeathTest, DestroyingAnAttachedLoopIsFatal) {
  EXPECT_DEATH(
      {
        auto* loop = new QiEventLoop;
        QiRunner runner(*loop);
        delete loop;
      },
      "QiEventLoop destroyed while running.*destroy the QiRunner");
  EXPECT_DEATH(
      {
        auto* loop = new QiEventLoop;
        QiRunner runner(*loop);
        loop->stop();
        QCoreApplication::processEvents();
        delete loop;
      },
      "destroyed while a QiRunner is attached to it: destroy the QiRunner first");
}

TEST(MisuseDeathTest, DestroyingALoopFromAnotherThreadIsFatal) {
  EXPECT_DEATH(
      {
        auto* loop = new QiEventLoop;
        std::thread([loop] { delete loop; }).join();
      },
      "destroyed from a thread that does not own it: destroy it on its own thread");
}

TEST(MisuseDeathTest, DestroyingARunnerFromItsOwnLoopsCallbackIsFatal) {
  EXPECT_DEATH(
      {
        auto* runner = new QiRunner;
        runner->loop().call_soon([runner] { delete runner; });
        QCoreApplication::exec();
      },
      "QiRunner destroyed from inside a callback of its own loop");
}

TEST(MisuseDeathTest, DestroyingARunnerOnAnotherThreadIsFatal) {
  EXPECT_DEATH(
      {
        auto* runner = new QiRunner;
        std::thread([runner] { delete runner; }).join();
      },
      "QiRunner destroyed on a thread that does not own its loop: destroy it where it was created");
}


// --- Debug mode: a rejected call from another thread changes nothing ------------

// A worker completing a future that a task awaits: debug mode rejects every
// call before it touches the future, so the task still waits, and the same
// call made properly (on the loop's thread) then wakes it.
TEST_P(MisuseTest, DebugModeRejectsFutureCallsFromAnotherThreadAndChangesNothing) {
  QiEventLoop loop;
  loop.set_debug(true);
  constexpr std::string_view kFix = "use call_soon_threadsafe";
  auto fut = loop.create_future<int>();
  int got = 0;
  bool callback_ran = false;
  const uint64_t id = fut.add_done_callback([&] { callback_ran = true; });
  auto waiter = [&]() -> qi::Coro<void> {
    got = co_await fut;
    loop.stop();
  };
  qi::Task<void> task = loop.create_task(waiter());
  loop.call_soon([&] {  // the task awaits fut by now
    EXPECT_ERROR(qi::RuntimeError, [&] { on_other_thread([&] { fut.set_result(1); }); }, kFix);
    EXPECT_ERROR(qi::RuntimeError, [&] { on_other_thread([&] { fut.set_exception(std::make_exception_ptr(1)); }); },
                 kFix);
    EXPECT_ERROR(qi::RuntimeError, [&] { on_other_thread([&] { fut.cancel(); }); }, kFix);
    EXPECT_ERROR(qi::RuntimeError, [&] { on_other_thread([&] { fut.add_done_callback([] {}); }); }, kFix);
    EXPECT_ERROR(qi::RuntimeError, [&] { on_other_thread([&] { fut.remove_done_callback(id); }); }, kFix);
    EXPECT_FALSE(fut.done()) << "a rejected call must leave the future pending";
    EXPECT_FALSE(task.done());
    fut.set_result(7);  // the retry, on the loop's thread
  });
  run(loop);
  EXPECT_EQ(got, 7) << "the awaiting task must resume";
  EXPECT_TRUE(task.done());
  EXPECT_TRUE(callback_ran);
}

// The same for cancelling a sleeping task from another thread: the sleep
// goes on, and cancel() on the loop's thread still lands.
TEST_P(MisuseTest, DebugModeRejectsCancellingATaskFromAnotherThreadAndChangesNothing) {
  QiEventLoop loop;
  loop.set_debug(true);
  std::string outcome;
  auto sleeper = [&]() -> qi::Coro<void> {
    try {
      co_await qi::sleep(1h);
      outcome = "slept";
    } catch (const qi::CancelledError& e) {
      outcome = "cancelled: " + e.message();
    }
    loop.stop();
  };
  qi::Task<void> task = loop.create_task(sleeper());
  loop.call_soon([&] {  // the task sleeps by now
    EXPECT_ERROR(qi::RuntimeError, [&] { on_other_thread([&] { task.cancel("from a worker"); }); },
                 "use call_soon_threadsafe");
    EXPECT_EQ(task.cancelling(), 0) << "a rejected cancel must not count";
    EXPECT_TRUE(task.cancel("from the loop"));
  });
  run(loop);
  EXPECT_EQ(outcome, "cancelled: from the loop");
}

// Completing a future whose loop is closed cannot schedule its done
// callbacks: the call is refused before the future changes.
TEST(Misuse, CompletingAFutureOfAClosedLoopWithCallbacksChangesNothing) {
  QiEventLoop loop;
  auto fut = loop.create_future<int>();
  fut.add_done_callback([] {});
  loop.close();
  constexpr std::string_view kFix = "create a new QiEventLoop";
  EXPECT_ERROR(qi::RuntimeError, [&] { fut.set_result(1); }, kFix);
  EXPECT_ERROR(qi::RuntimeError, [&] { fut.set_exception(std::make_exception_ptr(1)); }, kFix);
  EXPECT_ERROR(qi::RuntimeError, [&] { fut.cancel(); }, kFix);
  EXPECT_FALSE(fut.done());
  auto plain = loop.create_future<int>();  // no callbacks: nothing to schedule, so allowed (as in asyncio)
  plain.set_result(2);
  EXPECT_EQ(plain.result(), 2);
}

// restart() runs only the runner's own stopped loop, on its thread, and not
// beside another running loop; a refused restart changes nothing.
TEST(Misuse, RestartIsRefusedWhileRunningBesideAnotherLoopAndOffThread) {
  QiEventLoop loop;
  QiRunner runner(loop);
  EXPECT_ERROR(qi::RuntimeError, [&] { runner.restart(); }, "already running");
  loop.call_soon([&] { loop.stop(); });
  {
    QObject context;  // the slots go with it: exit() with no exec() running would end later loops
    QObject::connect(&loop, &QiEventLoop::stopped, &context, [] { QCoreApplication::exit(0); });
    QTimer::singleShot(kGuard, &context, [] { QCoreApplication::exit(1); });
    ASSERT_EQ(QCoreApplication::exec(), 0);
  }
  ASSERT_FALSE(loop.is_running());
  EXPECT_ERROR(qi::RuntimeError, [&] { on_other_thread([&] { runner.restart(); }); }, "thread");
  {
    QiEventLoop other;
    other.call_soon([&] {
      EXPECT_ERROR(qi::RuntimeError, [&] { runner.restart(); }, "another QiEventLoop is already running");
      other.stop();
    });
    other.run_forever();
  }
  EXPECT_FALSE(loop.is_running());
  runner.restart();
  EXPECT_TRUE(loop.is_running());
}

// Moving a loop to another thread while it runs would leave it half on each
// (callbacks on the new thread, the old thread's running loop still set):
// Qt cannot refuse a move, so it is fatal, with a message naming the fix.
TEST(MisuseDeathTest, MovingARunningLoopToAnotherThreadIsFatal) {
  EXPECT_DEATH(
      {
        QThread other;
        QiEventLoop loop;
        loop.call_soon([&] { loop.moveToThread(&other); });
        loop.run_forever();
      },
      "QiEventLoop moved to another thread while running");
}

TEST(MisuseDeathTest, MovingAnAttachedLoopToAnotherThreadIsFatal) {
  EXPECT_DEATH(
      {
        QThread other;
        QiEventLoop loop;
        QiRunner runner(loop);
        loop.moveToThread(&other);
      },
      "QiEventLoop moved to another thread while running or attached to a QiRunner");
}

// A loop moved while idle runs on its new thread (ThreadsafeQThread moves one
// and back); so does a loop that has run and stopped here.
TEST(Misuse, MovingALoopThatRanAndStoppedWorks) {
  QiEventLoop loop;
  loop.call_soon([&] { loop.stop(); });
  loop.run_forever();
  QThread* main_thread = QThread::currentThread();
  std::promise<bool> ran;
  QThread other;
  QObject::connect(&other, &QThread::started, &loop, [&] {
    loop.call_soon([&] {
      ran.set_value(QThread::currentThread() == &other);
      loop.stop();
    });
    loop.run_forever();
    loop.moveToThread(main_thread);
    other.quit();
  }, Qt::DirectConnection);
  loop.moveToThread(&other);
  other.start();
  auto f = ran.get_future();
  ASSERT_EQ(f.wait_for(5s), std::future_status::ready);
  EXPECT_TRUE(f.get());
  EXPECT_TRUE(other.wait(QDeadlineTimer(5000)));
  EXPECT_EQ(loop.thread(), main_thread);
}

// Debug mode checks the thread before it reads the future: a worker calling
// on a future (or task) that is already done gets the wrong-thread error too,
// not a silent false from cancel() or an InvalidStateError that only says
// what it read while the loop's thread may have been changing it.
TEST(Misuse, DebugModeChecksTheThreadBeforeReadingTheFuture) {
  QiEventLoop loop;
  loop.set_debug(true);
  constexpr std::string_view kFix = "use call_soon_threadsafe";
  auto fut = loop.create_future<int>();
  fut.set_result(1);
  auto answer = []() -> qi::Coro<int> { co_return 42; };
  qi::Task<int> task = loop.create_task(answer());
  loop.run_until_complete(task);
  EXPECT_ERROR(qi::RuntimeError, [&] { on_other_thread([&] { fut.cancel(); }); }, kFix);
  EXPECT_ERROR(qi::RuntimeError, [&] { on_other_thread([&] { fut.set_result(2); }); }, kFix);
  EXPECT_ERROR(qi::RuntimeError, [&] { on_other_thread([&] { fut.set_exception(std::make_exception_ptr(1)); }); },
               kFix);
  EXPECT_ERROR(qi::RuntimeError, [&] { on_other_thread([&] { fut.add_done_callback([] {}); }); }, kFix);
  EXPECT_ERROR(qi::RuntimeError, [&] { on_other_thread([&] { task.cancel(); }); }, kFix);
  // On the loop's thread, as before.
  EXPECT_FALSE(fut.cancel());
  EXPECT_THROW(fut.set_result(2), qi::InvalidStateError);
  EXPECT_FALSE(task.cancel());
  EXPECT_EQ(fut.result(), 1);
  EXPECT_EQ(task.result(), 42);
}

}  // namespace
