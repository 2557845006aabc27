// testing.cpp — run_test(): a coroutine test body on a fresh loop, with a
// watchdog and the checks that turn leftovers into failures.
#include <qiloop/testing.h>

#include <QtCore/QCoreApplication>
#include <QtCore/QTimer>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>

namespace qi::testing {
namespace {

std::string what(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return std::string("std::exception: ") + x.what();
  } catch (const qi::CancelledError& c) {
    return std::string("qi::CancelledError: ") + c.what();
  } catch (const detail::AbortBody&) {
    return "a failed QILOOP_CO_ASSERT (reported above)";
  } catch (...) {
    return "an exception of unknown type";
  }
}

std::string seconds(std::chrono::milliseconds d) {
  std::ostringstream s;
  s << std::chrono::duration<double>(d).count() << " s";
  return s.str();
}

std::string current_test_name() {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return info ? std::string(info->test_suite_name()) + "." + info->name() : std::string("a qiloop test body");
}

// The last resort: a thread whose test never gives control back to Qt (a
// blocking callback) cannot be stopped, so the process ends with a message
// instead of hanging.
class HardWatchdog {
 public:
  HardWatchdog() : thread_([this] { watch(); }) {}
  ~HardWatchdog() {
    {
      std::lock_guard lock(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void arm(std::chrono::milliseconds soft) {
    std::lock_guard lock(mu_);
    limit_ = soft + std::max(soft, std::chrono::milliseconds(std::chrono::seconds(1)));
    deadline_ = std::chrono::steady_clock::now() + limit_;
    name_ = current_test_name();
    cv_.notify_all();
  }

 private:
  void watch() {
    std::unique_lock lock(mu_);
    while (!quit_) {
      if (deadline_ && std::chrono::steady_clock::now() >= *deadline_) {
        std::fprintf(stderr,
                     "\nqiloop testing: %s did not finish within %s and its thread never returned to the event "
                     "loop (a callback or the body blocks it), so the watchdog cannot stop it; aborting\n",
                     name_.c_str(), seconds(limit_).c_str());
        std::fflush(stderr);
        std::abort();
      }
      if (deadline_)
        cv_.wait_until(lock, *deadline_);
      else
        cv_.wait(lock);
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool quit_ = false;
  std::optional<std::chrono::steady_clock::time_point> deadline_;
  std::chrono::milliseconds limit_{};
  std::string name_;
  std::thread thread_;
};

// The longest watchdog QTimer can run (an int of milliseconds, ~24.8 days):
// a longer timeout is as good as none, and capping it keeps the hard
// watchdog's sums from overflowing.
constexpr std::chrono::milliseconds kLongestTimeout{std::numeric_limits<int>::max()};

void check_timeout(std::chrono::milliseconds d, const char* api) {
  if (d <= std::chrono::milliseconds::zero())
    throw std::invalid_argument(std::string(api) +
                                ": the timeout is not positive; pass the real time the body may take (e.g. 5s)");
}

// The running body's watchdog, for set_timeout().
struct Watchdog {
  QTimer timer;
  HardWatchdog hard;
  std::chrono::milliseconds timeout{};
  RunMode mode = RunMode::kNested;
  bool fired = false;
  void arm(std::chrono::milliseconds d) {
    timeout = d;
    d = std::min(d, kLongestTimeout);
    timer.start(d);
    hard.arm(d);
  }
};
thread_local Watchdog* t_watchdog = nullptr;

void ensure_application() {
  if (QCoreApplication::instance()) return;
  static int argc = 1;
  static char name[] = "qiloop-test";
  static char* argv[] = {name, nullptr};
  // Kept until the process ends (reachable through instance()).
  new QCoreApplication(argc, argv);
}

std::string describe(const qi::ExceptionContext& ctx) {
  std::string text = ctx.message.empty() ? "an exception" : ctx.message;
  if (ctx.exception) text += ": " + what(ctx.exception);
  if (ctx.task) text += " [" + ctx.task.describe() + "]";
  return text;
}

// The body, then the kit's handler back: a handler the body installed may
// capture the body's locals, which go with its frame, while shutdown may
// still report. Restored right after the frame is destroyed (locals go in
// reverse order), before anything else runs.
qi::Coro<void> body_then_kit_handler(qi::Coro<void> body, QiEventLoop::ExceptionHandler kit) {
  struct Restore {
    QiEventLoop& loop;
    QiEventLoop::ExceptionHandler& kit;
    ~Restore() { loop.set_exception_handler(std::move(kit)); }
  } restore{qi::get_running_loop(), kit};
  qi::Coro<void> frame = std::move(body);
  co_await frame;
}

}  // namespace

void run_test(qi::Coro<void> body, const TestOptions& options) {
  if (qi::running_loop()) {
    ADD_FAILURE() << "qi::testing::run_test: a QiEventLoop already runs on this thread; run_test runs the body on "
                     "a loop of its own: call it from a plain test, not from a loop's callback";
    return;
  }
  try {
    check_timeout(options.timeout, "qi::testing::run_test");
  } catch (const std::invalid_argument& e) {
    ADD_FAILURE() << e.what();
    return;
  }
  ensure_application();
  std::optional<VirtualClock> clock;
  if (options.virtual_time) clock.emplace();
  QiEventLoop loop;  // after the clock: destroyed before it
  if (clock) loop.set_clock(&*clock);
  QiEventLoop::ExceptionHandler kit_handler = [](QiEventLoop&, const qi::ExceptionContext& ctx) {
    ADD_FAILURE() << "the event loop reported " << describe(ctx);
  };
  loop.set_exception_handler(kit_handler);

  Watchdog watchdog;
  watchdog.timer.setSingleShot(true);
  watchdog.timer.setTimerType(Qt::PreciseTimer);
  const bool attached = options.mode == RunMode::kAttached;
  QObject::connect(&watchdog.timer, &QTimer::timeout, [&] {
    watchdog.fired = true;
    loop.stop();
    if (attached) QCoreApplication::exit(1);
  });
  watchdog.mode = options.mode;
  watchdog.arm(options.timeout);
  t_watchdog = &watchdog;
  struct Clear {
    ~Clear() { t_watchdog = nullptr; }
  } clear;

  std::optional<QiRunner> runner;
  if (attached) runner.emplace(loop);
  qi::Task<void> task = loop.create_task(body_then_kit_handler(std::move(body), kit_handler), "test body");
  try {
    if (attached) {
      // The application's exec() drives the loop until the body is done.
      task.add_done_callback([] { QCoreApplication::exit(0); });
      QCoreApplication::exec();
      if (watchdog.fired) throw qi::RuntimeError("the watchdog stopped the loop");
      task.result();
    } else {
      loop.run_until_complete(task);
    }
  } catch (const detail::AbortBody&) {
    // A QILOOP_CO_ASSERT failed and said so.
  } catch (...) {
    if (watchdog.fired)
      ADD_FAILURE() << "the test body did not finish within " << seconds(watchdog.timeout)
                    << " (the watchdog stopped it): it waits for something that never happens"
                    << (clock && !clock->autojump() ? " (autojump is off: advance the clock)" : "")
                    << "; qi::testing::set_timeout() gives a slow test more time";
    else
      ADD_FAILURE() << "the test body threw " << what(std::current_exception());
  }
  watchdog.timer.stop();
  if (!watchdog.fired) {
    if (std::size_t left = loop.pending_tasks())
      ADD_FAILURE() << left << " task(s) still pending when the test body returned: await or cancel every task "
                    << "the test starts (they are cancelled now)";
  }
  task.cancel();  // the watchdog stopped the loop: the body is still pending
  // Shutdown's own time limits must pass, even on a clock moved by hand.
  if (clock) clock->set_autojump(true);
  if (runner) {
    runner.reset();  // shuts the loop down as an application's runner does
  } else {
    loop.shutdown();
  }
}

VirtualClock& clock() {
  QiEventLoop* loop = qi::running_loop();
  auto* c = loop ? dynamic_cast<VirtualClock*>(loop->get_clock()) : nullptr;
  if (!c)
    throw qi::RuntimeError(
        "qi::testing::clock(): the running loop has no VirtualClock; write the test as QILOOP_TEST_VT (or "
        "QILOOP_TEST_F_VT), or give the loop one with set_clock()");
  return *c;
}

RunMode run_mode() {
  if (!t_watchdog)
    throw qi::RuntimeError("qi::testing::run_mode(): no test body is running; call it from a QILOOP_TEST body");
  return t_watchdog->mode;
}

void set_timeout(std::chrono::milliseconds d) {
  if (!t_watchdog)
    throw qi::RuntimeError("qi::testing::set_timeout(): no test body is running; call it from a QILOOP_TEST body");
  check_timeout(d, "qi::testing::set_timeout()");
  t_watchdog->arm(d);
}

}  // namespace qi::testing
