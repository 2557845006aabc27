// Unix signals: loop.add_signal_handler / remove_signal_handler and Ctrl+C
// in qi::run (<qiloop/net/signals.h>). Signals come from the loop's thread,
// from code Qt runs between the loop's callbacks, and from other threads;
// Ctrl+C goes to a child process (signals_ctrl_c_helper). Label `thread`.
#include "error_text.h"

#include <qiloop/qiloop.h>
#include <qiloop/testing.h>

#include <gtest/gtest.h>

#include <QtCore/QThread>
#include <QtCore/QTimer>

#include <atomic>
#include <chrono>
#include <csignal>
#include <filesystem>
#include <future>
#include <string>
#include <thread>

#include <fcntl.h>
#include <poll.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

extern char** environ;

using namespace std::chrono_literals;

// See tests/threads/loop_thread_test.cpp: ~QThread (qi::LoopThread's) under
// TSan, which cannot see Qt's own synchronisation.
#if defined(__SANITIZE_THREAD__)
extern "C" const char* __tsan_default_suppressions() { return "race:QWaitCondition::~QWaitCondition\n"; }
#endif

namespace {

using Disposition = void (*)(int);

Disposition disposition_of(int sig) {
  struct sigaction current {};
  sigaction(sig, nullptr, &current);
  return current.sa_handler;
}

int open_fds() {
  int n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) ++n;
  return n;
}

// Counts handler runs; done() is set once `target` runs happened.
struct Runs {
  explicit Runs(int target = 1) : target(target) {}
  void operator()() {
    if (++count == target) done.set();
  }
  int target;
  int count = 0;
  qi::Event done;
};

qi::Coro<void> wait_event(qi::Event& e) { co_await e.wait(); }

// Waits (real time, bounded) for runs.count to reach its target.
qi::Coro<void> wait_runs(Runs& runs) { co_await qi::timeout(10s, wait_event(runs.done)); }

// A few loop iterations with real time for the pipe to be read, so that a
// delivery that was going to run has run.
qi::Coro<void> settle() {
  for (int i = 0; i < 5; ++i) co_await qi::sleep(10ms);
}

}  // namespace

// --- Delivery ----------------------------------------------------------------

// The handler is an ordinary callback of the loop: raise() returns first
// (the signal handler only wrote a byte), and it runs on the loop's thread.
QILOOP_TEST_MODES(Signals, RaiseOnTheLoopThreadRunsTheHandlerAsACallback) {
  auto& loop = qi::get_running_loop();
  Runs runs;
  bool raise_returned = false;
  bool in_loop = false;
  bool after_raise = false;
  loop.add_signal_handler(SIGUSR1, [&] {
    after_raise = raise_returned;
    in_loop = qi::running_loop() == &loop && QThread::currentThread() == loop.thread();
    runs();
  });
  EXPECT_NE(disposition_of(SIGUSR1), SIG_DFL);
  EXPECT_EQ(::raise(SIGUSR1), 0);
  raise_returned = true;
  EXPECT_EQ(runs.count, 0);  // not inside the signal handler
  co_await wait_runs(runs);
  EXPECT_TRUE(after_raise);
  EXPECT_TRUE(in_loop);
  EXPECT_TRUE(loop.remove_signal_handler(SIGUSR1));
}

QILOOP_TEST_MODES(Signals, ArgumentsArePassedOnEveryRun) {
  auto& loop = qi::get_running_loop();
  std::string seen;
  Runs runs(2);
  loop.add_signal_handler(
      SIGUSR2,
      [&](const std::string& word, int n) {
        seen += word + std::to_string(n);
        runs();
      },
      std::string("x"), 7);
  ::raise(SIGUSR2);
  ::raise(SIGUSR2);
  co_await wait_runs(runs);
  EXPECT_EQ(seen, "x7x7");
  loop.remove_signal_handler(SIGUSR2);
}

// kill() of the process from another thread: the kernel picks any thread
// that does not block the signal (here the sender, the watchdog, Qt's).
QILOOP_TEST_MODES(Signals, KillFromAnotherThreadReachesTheLoop) {
  auto& loop = qi::get_running_loop();
  Runs runs;
  std::atomic<bool> on_loop_thread{false};
  loop.add_signal_handler(SIGUSR2, [&] {
    on_loop_thread = QThread::currentThread() == loop.thread();
    runs();
  });
  std::thread sender([] { ::kill(::getpid(), SIGUSR2); });
  co_await wait_runs(runs);
  sender.join();
  EXPECT_TRUE(on_loop_thread);
  loop.remove_signal_handler(SIGUSR2);
}

// raise() on another thread delivers to that very thread.
QILOOP_TEST_MODES(Signals, RaiseOnAnotherThreadReachesTheLoop) {
  auto& loop = qi::get_running_loop();
  Runs runs;
  loop.add_signal_handler(SIGUSR1, std::ref(runs));
  std::thread sender([] { ::raise(SIGUSR1); });
  co_await wait_runs(runs);
  sender.join();
  EXPECT_EQ(runs.count, 1);
  loop.remove_signal_handler(SIGUSR1);
}

// Injected code: a Qt timer's slot, between the loop's callbacks (attached:
// in QCoreApplication::exec(); nested: in the loop's QEventLoop).
QILOOP_TEST_MODES(Signals, RaiseFromInjectedCodeReachesTheLoop) {
  auto& loop = qi::get_running_loop();
  Runs runs;
  loop.add_signal_handler(SIGUSR1, std::ref(runs));
  bool slot_ran = false;
  QTimer::singleShot(0, [&] {
    slot_ran = true;
    ::raise(SIGUSR1);
  });
  co_await wait_runs(runs);
  EXPECT_TRUE(slot_ran);
  loop.remove_signal_handler(SIGUSR1);
}

// One run per delivery: 1000 raise() calls are 1000 deliveries.
QILOOP_TEST_MODES(Signals, ABurstOfRaisesRunsTheHandlerOncePerDelivery) {
  auto& loop = qi::get_running_loop();
  Runs runs(1000);
  loop.add_signal_handler(SIGUSR1, std::ref(runs));
  for (int i = 0; i < 1000; ++i) ::raise(SIGUSR1);
  co_await wait_runs(runs);
  co_await settle();
  EXPECT_EQ(runs.count, 1000);
  loop.remove_signal_handler(SIGUSR1);
}

// From other threads the kernel may merge deliveries still pending: at least
// one run per burst, never more runs than signals.
QILOOP_TEST_MODES(Signals, ABurstFromOtherThreadsRunsTheHandlerAtLeastOnce) {
  auto& loop = qi::get_running_loop();
  Runs runs;
  int total = 0;
  loop.add_signal_handler(SIGUSR2, [&] {
    ++total;
    runs();
  });
  std::thread a([] {
    for (int i = 0; i < 500; ++i) ::kill(::getpid(), SIGUSR2);
  });
  std::thread b([] {
    for (int i = 0; i < 500; ++i) ::kill(::getpid(), SIGUSR2);
  });
  a.join();
  b.join();
  co_await wait_runs(runs);
  co_await settle();
  EXPECT_GE(total, 1);
  EXPECT_LE(total, 1000);
  loop.remove_signal_handler(SIGUSR2);
}

// Deliveries run in the order they reached the pipe, each as its own callback.
QILOOP_TEST_MODES(Signals, DeliveriesRunInOrder) {
  auto& loop = qi::get_running_loop();
  std::string order;
  Runs runs(3);
  loop.add_signal_handler(SIGUSR1, [&] {
    order += "1";
    runs();
  });
  loop.add_signal_handler(SIGUSR2, [&] {
    order += "2";
    runs();
  });
  ::raise(SIGUSR2);
  ::raise(SIGUSR1);
  ::raise(SIGUSR2);
  co_await wait_runs(runs);
  EXPECT_EQ(order, "212");
  loop.remove_signal_handler(SIGUSR1);
  loop.remove_signal_handler(SIGUSR2);
}

// --- Replacing and removing ---------------------------------------------------

QILOOP_TEST_MODES(Signals, ASecondHandlerReplacesTheFirst) {
  auto& loop = qi::get_running_loop();
  Runs first, second;
  loop.add_signal_handler(SIGUSR1, std::ref(first));
  loop.add_signal_handler(SIGUSR1, std::ref(second));
  ::raise(SIGUSR1);
  co_await wait_runs(second);
  co_await settle();
  EXPECT_EQ(first.count, 0);
  EXPECT_EQ(second.count, 1);
  EXPECT_TRUE(loop.remove_signal_handler(SIGUSR1));
  EXPECT_FALSE(loop.remove_signal_handler(SIGUSR1));
}

// A delivery still in the pipe when the handler is replaced runs the new one.
QILOOP_TEST_MODES(Signals, ADeliveryPendingWhenReplacedRunsTheNewHandler) {
  auto& loop = qi::get_running_loop();
  Runs first, second;
  loop.add_signal_handler(SIGUSR1, std::ref(first));
  ::raise(SIGUSR1);  // the byte waits in the pipe: this body still runs
  loop.add_signal_handler(SIGUSR1, std::ref(second));
  co_await wait_runs(second);
  co_await settle();
  EXPECT_EQ(first.count, 0);
  EXPECT_EQ(second.count, 1);
  loop.remove_signal_handler(SIGUSR1);
}

// Removed while the delivery is still in the pipe: it never runs.
QILOOP_TEST_MODES(Signals, ADeliveryPendingWhenRemovedNeverRuns) {
  auto& loop = qi::get_running_loop();
  Runs runs;
  loop.add_signal_handler(SIGUSR1, std::ref(runs));
  loop.add_signal_handler(SIGUSR2, [] {});  // keeps the pipe open
  ::raise(SIGUSR1);
  EXPECT_TRUE(loop.remove_signal_handler(SIGUSR1));
  co_await settle();
  EXPECT_EQ(runs.count, 0);
  loop.remove_signal_handler(SIGUSR2);
}

// Removed after the loop read the delivery but before it ran: two deliveries
// read together, the first one's handler removes the second's — and adds a
// new one, which that delivery (older than the removal) does not run either.
QILOOP_TEST_MODES(Signals, ADeliveryAlreadyReadWhenRemovedNeverRuns) {
  auto& loop = qi::get_running_loop();
  Runs usr1;
  Runs usr1_again;
  Runs usr2;
  bool removed = false;
  loop.add_signal_handler(SIGUSR1, std::ref(usr1));
  loop.add_signal_handler(SIGUSR2, [&] {
    removed = loop.remove_signal_handler(SIGUSR1);
    loop.add_signal_handler(SIGUSR1, std::ref(usr1_again));
    usr2();
  });
  ::raise(SIGUSR2);
  ::raise(SIGUSR1);
  co_await wait_runs(usr2);
  co_await settle();
  EXPECT_TRUE(removed);
  EXPECT_EQ(usr1.count, 0);
  EXPECT_EQ(usr1_again.count, 0);
  loop.remove_signal_handler(SIGUSR1);
  loop.remove_signal_handler(SIGUSR2);
}

// A handler may replace or remove itself while it runs (its callable stays
// alive until it returns: ASan would see the use after free otherwise).
QILOOP_TEST_MODES(Signals, AHandlerMayReplaceAndRemoveItself) {
  auto& loop = qi::get_running_loop();
  Runs replaced;
  auto big = std::make_shared<std::string>(1000, 'x');
  std::string seen;
  loop.add_signal_handler(SIGUSR1, [&loop, &seen, &replaced, big] {
    loop.add_signal_handler(SIGUSR1, [&loop, &replaced] {
      EXPECT_TRUE(loop.remove_signal_handler(SIGUSR1));
      replaced();
    });
    seen = *big;  // captures still alive after the replacement
  });
  big.reset();
  ::raise(SIGUSR1);
  co_await settle();
  EXPECT_EQ(seen.size(), 1000u);
  ::raise(SIGUSR1);
  co_await wait_runs(replaced);
  EXPECT_EQ(disposition_of(SIGUSR1), SIG_DFL);
}

// --- Dispositions ----------------------------------------------------------------

QILOOP_TEST_MODES(Signals, RemoveGivesBackTheDefaultDisposition) {
  auto& loop = qi::get_running_loop();
  EXPECT_EQ(disposition_of(SIGUSR1), SIG_DFL);
  loop.add_signal_handler(SIGUSR1, [] {});
  EXPECT_NE(disposition_of(SIGUSR1), SIG_DFL);
  EXPECT_TRUE(loop.remove_signal_handler(SIGUSR1));
  EXPECT_EQ(disposition_of(SIGUSR1), SIG_DFL);
  EXPECT_FALSE(loop.remove_signal_handler(SIGUSR1));
  EXPECT_FALSE(loop.remove_signal_handler(SIGUSR2));  // never set
  EXPECT_FALSE(loop.remove_signal_handler(SIGKILL));
  co_return;
}

// SIGINT too: SIG_DFL (asyncio restores Python's default_int_handler).
QILOOP_TEST_MODES(Signals, SigintCanBeHandledAndGoesBackToTheDefault) {
  auto& loop = qi::get_running_loop();
  Runs runs;
  loop.add_signal_handler(SIGINT, std::ref(runs));
  ::raise(SIGINT);
  co_await wait_runs(runs);
  EXPECT_TRUE(loop.remove_signal_handler(SIGINT));
  EXPECT_EQ(disposition_of(SIGINT), SIG_DFL);
}

// A disposition the program had set (ignored, or its own handler) comes back.
QILOOP_TEST_MODES(Signals, RemoveGivesBackTheDispositionTheProgramHadSet) {
  auto& loop = qi::get_running_loop();
  std::signal(SIGUSR1, SIG_IGN);
  loop.add_signal_handler(SIGUSR1, [] {});
  EXPECT_NE(disposition_of(SIGUSR1), SIG_IGN);
  loop.remove_signal_handler(SIGUSR1);
  EXPECT_EQ(disposition_of(SIGUSR1), SIG_IGN);
  std::signal(SIGUSR1, SIG_DFL);
  co_return;
}

// The handler is installed with SA_RESTART (asyncio: siginterrupt(sig, False)).
QILOOP_TEST_MODES(Signals, TheHandlerRestartsInterruptedSystemCalls) {
  auto& loop = qi::get_running_loop();
  loop.add_signal_handler(SIGUSR1, [] {});
  struct sigaction current {};
  sigaction(SIGUSR1, nullptr, &current);
  EXPECT_TRUE(current.sa_flags & SA_RESTART);
  EXPECT_FALSE(current.sa_flags & SA_RESETHAND);
  loop.remove_signal_handler(SIGUSR1);
  co_return;
}

// --- Lifetime -----------------------------------------------------------------------

// close() removes the handlers, gives back the previous dispositions and
// closes the pipe (no descriptor left behind).
TEST(Signals, CloseRemovesTheHandlersAndLeavesNoDescriptor) {
  std::signal(SIGUSR2, SIG_IGN);
  const int before = open_fds();
  {
    QiEventLoop loop;
    const int with_loop = open_fds();  // its own descriptors
    loop.add_signal_handler(SIGUSR1, [] {});
    loop.add_signal_handler(SIGUSR2, [] {});
    EXPECT_EQ(open_fds(), with_loop + 2);  // the pipe, whatever the number of signals
    EXPECT_TRUE(loop.remove_signal_handler(SIGUSR1));
    EXPECT_EQ(open_fds(), with_loop + 2);
    ::raise(SIGUSR2);  // left unread in the pipe
    loop.close();
    EXPECT_EQ(disposition_of(SIGUSR1), SIG_DFL);
    EXPECT_EQ(disposition_of(SIGUSR2), SIG_IGN);
    EXPECT_EQ(open_fds(), before);
    EXPECT_FALSE(loop.remove_signal_handler(SIGUSR2));
    EXPECT_EQ(error_text::what_of<qi::RuntimeError>([&] { loop.add_signal_handler(SIGUSR1, [] {}); }),
              "add_signal_handler: the event loop is closed; add signal handlers before close(), or create a new "
              "QiEventLoop");
    EXPECT_EQ(disposition_of(SIGUSR1), SIG_DFL);
  }
  std::signal(SIGUSR2, SIG_DFL);
  // Removing the last handler closes the pipe too; so does the destructor.
  {
    QiEventLoop loop;
    const int with_loop = open_fds();
    loop.add_signal_handler(SIGUSR1, [] {});
    EXPECT_TRUE(loop.remove_signal_handler(SIGUSR1));
    EXPECT_EQ(open_fds(), with_loop);
    loop.add_signal_handler(SIGUSR1, [] {});
  }
  EXPECT_EQ(open_fds(), before);
  EXPECT_EQ(disposition_of(SIGUSR1), SIG_DFL);
}

// Handlers added before the loop runs: what arrives meanwhile waits in the
// pipe and runs once the loop does.
TEST(Signals, HandlersAddedBeforeTheLoopRunsWorkOnceItRuns) {
  QiEventLoop loop;
  Runs runs(2);
  loop.add_signal_handler(SIGUSR1, std::ref(runs));
  ::raise(SIGUSR1);
  EXPECT_EQ(runs.count, 0);
  loop.run_until_complete([](Runs& runs) -> qi::Coro<void> {
    ::raise(SIGUSR1);
    co_await wait_runs(runs);
  }(runs));
  EXPECT_EQ(runs.count, 2);
  loop.shutdown();
  EXPECT_EQ(disposition_of(SIGUSR1), SIG_DFL);
}

// --- Errors -------------------------------------------------------------------------

QILOOP_TEST_MODES(Signals, AnExceptionFromAHandlerGoesToTheExceptionHandler) {
  auto& loop = qi::get_running_loop();
  std::vector<std::string> reports;
  Runs runs(2);
  loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& ctx) {
    try {
      std::rethrow_exception(ctx.exception);
    } catch (const std::runtime_error& e) {
      reports.push_back(e.what());
    }
  });
  loop.add_signal_handler(SIGUSR1, [&] {
    runs();
    throw std::runtime_error("boom " + std::to_string(runs.count));
  });
  ::raise(SIGUSR1);
  co_await settle();
  ::raise(SIGUSR1);  // still installed
  co_await wait_runs(runs);
  co_await settle();
  EXPECT_EQ(reports, (std::vector<std::string>{"boom 1", "boom 2"}));
  loop.remove_signal_handler(SIGUSR1);
  loop.set_exception_handler(nullptr);
}

QILOOP_TEST_MODES(Signals, BadSignalNumbersAreRefusedWithTheFix) {
  auto& loop = qi::get_running_loop();
  auto message_of = [&](int sig) -> std::string {
    try {
      loop.add_signal_handler(sig, [] {});
    } catch (const qi::ValueError& e) {
      return std::string("ValueError: ") + e.what();
    } catch (const qi::RuntimeError& e) {
      return std::string("RuntimeError: ") + e.what();
    }
    return "nothing";
  };
  for (int sig : {0, -1, NSIG, 1000}) {
    std::string m = message_of(sig);
    EXPECT_EQ(m.rfind("ValueError: add_signal_handler: signal " + std::to_string(sig) + " is out of range", 0), 0u)
        << m;
    EXPECT_NE(m.find("SIGUSR1"), std::string::npos) << m;
    EXPECT_THROW(loop.remove_signal_handler(sig), qi::ValueError);
  }
  for (int sig : {SIGKILL, SIGSTOP}) {
    std::string m = message_of(sig);
    EXPECT_EQ(m.rfind("RuntimeError: add_signal_handler: signal " + std::to_string(sig), 0), 0u) << m;
    EXPECT_NE(m.find("cannot be caught"), std::string::npos) << m;
    EXPECT_NE(m.find("SIGTERM"), std::string::npos) << m;
    EXPECT_EQ(disposition_of(sig), SIG_DFL);
  }
  // glibc keeps the signals below SIGRTMIN for its threads.
  if (SIGRTMIN > 32) {
    std::string m = message_of(32);
    EXPECT_EQ(m.rfind("RuntimeError: add_signal_handler: signal 32 cannot be caught", 0), 0u) << m;
  }
  // An empty callable.
  EXPECT_THROW(loop.add_signal_handler(SIGUSR1, std::function<void()>()), std::invalid_argument);
  EXPECT_EQ(disposition_of(SIGUSR1), SIG_DFL);
  // Real-time signals are fine.
  Runs runs;
  loop.add_signal_handler(SIGRTMIN + 1, std::ref(runs));
  ::raise(SIGRTMIN + 1);
  co_await wait_runs(runs);
  EXPECT_TRUE(loop.remove_signal_handler(SIGRTMIN + 1));
}

QILOOP_TEST_MODES(Signals, OnlyTheLoopsThreadMayAddOrRemove) {
  auto& loop = qi::get_running_loop();
  std::string add_error, remove_error;
  std::thread other([&] {
    try {
      loop.add_signal_handler(SIGUSR1, [] {});
    } catch (const qi::RuntimeError& e) {
      add_error = e.what();
    }
    try {
      loop.remove_signal_handler(SIGUSR1);
    } catch (const qi::RuntimeError& e) {
      remove_error = e.what();
    }
  });
  other.join();
  EXPECT_NE(add_error.find("add_signal_handler: called from a thread that does not own"), std::string::npos)
      << add_error;
  EXPECT_NE(remove_error.find("remove_signal_handler"), std::string::npos) << remove_error;
  EXPECT_EQ(disposition_of(SIGUSR1), SIG_DFL);
  co_return;
}

// One loop per process owns a signal: a second loop gets qi::RuntimeError
// naming the owner's thread; other signals stay free; once the owner lets
// go, the signal can be taken.
QILOOP_TEST_MODES(Signals, ASignalBelongsToOneLoopAtATime) {
  auto& loop = qi::get_running_loop();
  qi::LoopThread worker("signal-owner");
  auto on_worker = [&worker](auto f) {
    std::promise<void> done;
    worker.loop().call_soon_threadsafe([&] {
      f(worker.loop());
      done.set_value();
    });
    done.get_future().wait();
  };
  on_worker([](QiEventLoop& l) { l.add_signal_handler(SIGUSR1, [] {}); });
  std::string error;
  try {
    loop.add_signal_handler(SIGUSR1, [] {});
  } catch (const qi::RuntimeError& e) {
    error = e.what();
  }
  EXPECT_NE(error.find("signal " + std::to_string(SIGUSR1) + " (SIGUSR1) is already handled by the event loop of "
                       "thread 'signal-owner'"),
            std::string::npos)
      << error;
  EXPECT_NE(error.find("remove_signal_handler(" + std::to_string(SIGUSR1) + ")"), std::string::npos) << error;
  EXPECT_FALSE(loop.remove_signal_handler(SIGUSR1));  // not ours: the owner keeps it
  EXPECT_NE(disposition_of(SIGUSR1), SIG_DFL);
  Runs runs;
  loop.add_signal_handler(SIGUSR2, std::ref(runs));  // another signal is free
  bool removed = false;
  on_worker([&removed](QiEventLoop& l) { removed = l.remove_signal_handler(SIGUSR1); });
  EXPECT_TRUE(removed);
  loop.add_signal_handler(SIGUSR1, std::ref(runs));
  ::raise(SIGUSR1);
  co_await wait_runs(runs);
  loop.remove_signal_handler(SIGUSR1);
  loop.remove_signal_handler(SIGUSR2);
}

// --- Ctrl+C in qi::run, in this process -------------------------------------------

// A SIGINT while qi::run runs cancels the main task, whose clean-up runs;
// qi::run throws qi::KeyboardInterrupt and SIGINT is back to SIG_DFL.
TEST(CtrlC, SigintCancelsTheMainTaskAndRunThrowsKeyboardInterrupt) {
  ASSERT_EQ(disposition_of(SIGINT), SIG_DFL);
  bool cleaned_up = false;
  bool installed = false;
  Disposition during_cleanup = nullptr;  // a second Ctrl+C would kill: SIG_DFL
  EXPECT_THROW(qi::run([](bool& cleaned_up, bool& installed, Disposition& during_cleanup) -> qi::Coro<void> {
                 installed = disposition_of(SIGINT) != SIG_DFL;
                 ::raise(SIGINT);
                 try {
                   co_await qi::sleep(30s);
                 } catch (const qi::CancelledError&) {
                   cleaned_up = true;
                   during_cleanup = disposition_of(SIGINT);
                   throw;
                 }
               }(cleaned_up, installed, during_cleanup)),
               qi::KeyboardInterrupt);
  EXPECT_TRUE(installed);
  EXPECT_TRUE(cleaned_up);
  EXPECT_EQ(during_cleanup, SIG_DFL);
  EXPECT_EQ(disposition_of(SIGINT), SIG_DFL);
}

// A main task that takes the cancellation back and returns: qi::run returns.
TEST(CtrlC, AMainTaskThatSwallowsTheCancellationReturnsNormally) {
  int result = qi::run([]() -> qi::Coro<int> {
    ::raise(SIGINT);
    try {
      co_await qi::sleep(30s);
    } catch (const qi::CancelledError&) {
      co_return 7;
    }
    co_return 0;
  }());
  EXPECT_EQ(result, 7);
  EXPECT_EQ(disposition_of(SIGINT), SIG_DFL);
}

// A cancellation that is not Ctrl+C's stays a qi::CancelledError.
TEST(CtrlC, AnotherCancellationStaysACancelledError) {
  EXPECT_THROW(qi::run([]() -> qi::Coro<void> {
                 qi::current_task().cancel();
                 co_await qi::sleep(30s);
               }()),
               qi::CancelledError);
  EXPECT_EQ(disposition_of(SIGINT), SIG_DFL);
}

// SIGINT is restored when qi::run returns, before the shutdown.
TEST(CtrlC, SigintIsRestoredWhenRunReturns) {
  struct sigaction during {};
  qi::run([](struct sigaction& during) -> qi::Coro<void> {
    sigaction(SIGINT, nullptr, &during);
    co_return;
  }(during));
  EXPECT_NE(during.sa_handler, SIG_DFL);
  EXPECT_TRUE(during.sa_flags & SA_RESETHAND);  // the kernel resets it on the first Ctrl+C
  EXPECT_EQ(disposition_of(SIGINT), SIG_DFL);
}

// A SIGINT handler the program adds replaces qi::run's (asyncio's rule).
TEST(CtrlC, AHandlerTheProgramAddsReplacesCtrlC) {
  bool handled = qi::run([]() -> qi::Coro<bool> {
    auto& loop = qi::get_running_loop();
    Runs runs;
    loop.add_signal_handler(SIGINT, std::ref(runs));
    ::raise(SIGINT);
    co_await wait_runs(runs);
    co_return runs.count == 1;
  }());
  EXPECT_TRUE(handled);
  EXPECT_EQ(disposition_of(SIGINT), SIG_DFL);
}

// A program that ignores SIGINT keeps it ignored; so does one off the main
// thread (asyncio.Runner installs its handler only on the main thread).
TEST(CtrlC, LeftAloneWhenIgnoredOrOffTheMainThread) {
  std::signal(SIGINT, SIG_IGN);
  Disposition during = SIG_DFL;
  qi::run([](Disposition& during) -> qi::Coro<void> {
    during = disposition_of(SIGINT);
    co_return;
  }(during));
  EXPECT_EQ(during, SIG_IGN);
  EXPECT_EQ(disposition_of(SIGINT), SIG_IGN);
  std::signal(SIGINT, SIG_DFL);

  Disposition on_worker = SIG_IGN;
  std::thread t([&on_worker] {
    qi::run([](Disposition& seen) -> qi::Coro<void> {
      seen = disposition_of(SIGINT);
      co_return;
    }(on_worker));
  });
  t.join();
  EXPECT_EQ(on_worker, SIG_DFL);
}

// --- Ctrl+C in qi::run, a real process -------------------------------------------------

namespace {

struct Child {
  pid_t pid = -1;
  int out = -1;  // its stdout
  std::string seen;

  explicit Child(const char* mode) {
    int fds[2];
    EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
    char* argv[] = {const_cast<char*>(QILOOP_SIGNALS_HELPER), const_cast<char*>(mode), nullptr};
    EXPECT_EQ(posix_spawn(&pid, QILOOP_SIGNALS_HELPER, &actions, nullptr, argv, environ), 0);
    posix_spawn_file_actions_destroy(&actions);
    ::close(fds[1]);
    out = fds[0];
  }
  ~Child() {
    if (pid > 0) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, nullptr, 0);
    }
    ::close(out);
  }

  // Reads stdout until it holds `word` (true) or EOF / 20 s (false).
  bool read_until(const std::string& word) {
    auto deadline = std::chrono::steady_clock::now() + 20s;
    while (seen.find(word) == std::string::npos) {
      auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      if (left <= 0ms) return false;
      pollfd p{out, POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
      char buf[256];
      ssize_t n = ::read(out, buf, sizeof buf);
      if (n <= 0) return seen.find(word) != std::string::npos;
      seen.append(buf, static_cast<std::size_t>(n));
    }
    return true;
  }

  // The wait status once it exits (bounded: 20 s, then SIGKILL).
  int wait() {
    auto deadline = std::chrono::steady_clock::now() + 20s;
    int status = 0;
    while (::waitpid(pid, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        ADD_FAILURE() << "the helper did not exit; output so far: " << seen;
        ::kill(pid, SIGKILL);
        ::waitpid(pid, &status, 0);
        break;
      }
      std::this_thread::sleep_for(5ms);
    }
    pid = -1;
    read_until("\x01");  // the rest of the output, up to EOF
    return status;
  }
};

}  // namespace

TEST(CtrlCProcess, CtrlCCancelsTheMainTaskAndTheProgramEndsWithKeyboardInterrupt) {
  Child child("cancel");
  ASSERT_TRUE(child.read_until("ready\n")) << child.seen;
  auto sent = std::chrono::steady_clock::now();
  ::kill(child.pid, SIGINT);
  int status = child.wait();
  EXPECT_LT(std::chrono::steady_clock::now() - sent, 5s);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 3) << child.seen;  // KeyboardInterrupt, SIGINT restored
  EXPECT_EQ(child.seen, "ready\ncleanup\nkeyboard-interrupt\n");
}

TEST(CtrlCProcess, ASecondCtrlCKillsTheProcess) {
  Child child("stubborn");
  ASSERT_TRUE(child.read_until("ready\n")) << child.seen;
  ::kill(child.pid, SIGINT);
  ASSERT_TRUE(child.read_until("cleanup\n")) << child.seen;
  ::kill(child.pid, SIGINT);
  int status = child.wait();
  ASSERT_TRUE(WIFSIGNALED(status)) << status << " " << child.seen;
  EXPECT_EQ(WTERMSIG(status), SIGINT);
}

TEST(CtrlCProcess, AMainTaskThatTakesTheCancellationBackReturns) {
  Child child("swallow");
  ASSERT_TRUE(child.read_until("ready\n")) << child.seen;
  ::kill(child.pid, SIGINT);
  int status = child.wait();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0) << child.seen;
  EXPECT_EQ(child.seen, "ready\ncleanup\nreturned\n");
}

TEST(CtrlCProcess, AnIgnoredSigintStaysIgnored) {
  Child child("ignored");
  ASSERT_TRUE(child.read_until("ready\n")) << child.seen;
  ::kill(child.pid, SIGINT);
  int status = child.wait();
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0) << child.seen;
  EXPECT_EQ(child.seen, "ready\nreturned\n");
}

// add_signal_handler / remove_signal_handler belong to the loop's thread:
// from another thread they are refused before anything changes, naming the
// fix (the handler would otherwise be installed for a loop that thread does
// not run).
TEST(Signals, HandlersFromAnotherThreadAreRefusedAndChangeNothing) {
  QiEventLoop loop;
  std::string added, removed;
  std::thread([&] {
    try {
      loop.add_signal_handler(SIGUSR1, [] {});
    } catch (const qi::RuntimeError& e) {
      added = e.what();
    }
    try {
      (void)loop.remove_signal_handler(SIGUSR1);
    } catch (const qi::RuntimeError& e) {
      removed = e.what();
    }
  }).join();
  EXPECT_NE(added.find("add_signal_handler: called from a thread that does not own this QiEventLoop"),
            std::string::npos)
      << added;
  EXPECT_NE(added.find("use call_soon_threadsafe"), std::string::npos) << added;
  EXPECT_NE(removed.find("remove_signal_handler: called from a thread that does not own this QiEventLoop"),
            std::string::npos)
      << removed;
  EXPECT_FALSE(loop.remove_signal_handler(SIGUSR1)) << "the refused call installed a handler";
}
