// The injected-code wakeup model (docs/wakeup-model.md), in both run modes.
//
// Injected code is code Qt runs outside any qiloop callback: a timer's slot, a
// slot of some signal, code inside a nested QEventLoop such a slot started.
// For the logical loop it runs while the loop is "blocked in select", so each
// loop call that changes what the loop waits for must wake it. Every case
// starts from an idle loop (nothing ready, no timer, no fd): without the
// wake-up nothing would ever get it going, and the guard would fire.
//
// The second half is the nested-loop rule: a qiloop callback that runs a
// nested QEventLoop blocks the loop until it returns, and what injected code
// does meanwhile takes effect right after, without busy-waiting.
#include "fd_channel.h"
#include "test_util.h"

#include <gmock/gmock.h>

#include <QtCore/QAbstractEventDispatcher>
#include <QtCore/QEventLoop>
#include <QtCore/QObject>
#include <QtCore/QTimer>

#include <algorithm>
#include <array>
#include <functional>
#include <optional>
#include <thread>

#include <dlfcn.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace std::chrono_literals;
using qt::Log;
using qt::Mode;
using qt::Strings;

namespace {

using Clock = std::chrono::steady_clock;

// Long enough for the loop to finish its first slice and go idle before the
// injected code runs.
constexpr auto kIdle = 20ms;
// A wake-up takes microseconds. This bound only tells "prompt" from "missed,
// then rescued by something else"; it stays well below kGuard.
constexpr auto kPrompt = 500ms;
// A missed wake-up leaves the loop idle forever: the guard turns that into a
// failure quickly.
constexpr auto kGuard = 1500ms;
// How long a nested QEventLoop started by injected code waits for the effect.
constexpr auto kNestedCap = 1s;
// How long a blocking qiloop callback keeps its nested QEventLoop running.
constexpr auto kBlock = 50ms;
// "No busy-waiting": an honest implementation needs zero slices or posted
// wake-ups while a callback blocks; a spinning one needs thousands.
constexpr uint64_t kFewWakeups = 10;

enum class Source { kSingleShot, kRepeatingTimer, kSignal, kNestedQEventLoop };
constexpr std::array kSources = {Source::kSingleShot, Source::kRepeatingTimer, Source::kSignal,
                                 Source::kNestedQEventLoop};

const char* source_name(Source s) {
  switch (s) {
    case Source::kSingleShot: return "from a QTimer::singleShot slot";
    case Source::kRepeatingTimer: return "from a repeating QTimer's slot";
    case Source::kSignal: return "from a slot of a signal emitted by a QTimer";
    case Source::kNestedQEventLoop: return "from inside a nested QEventLoop started by a slot";
  }
  return "?";
}

// Runs a nested QEventLoop until `cap` passes or someone quits it; `current`
// points to it meanwhile. This is what a modal dialog or a synchronous wait does.
void run_nested_qeventloop(std::chrono::milliseconds cap, QEventLoop** current = nullptr) {
  QEventLoop nested;
  QTimer::singleShot(cap, &nested, &QEventLoop::quit);
  if (current) *current = &nested;
  nested.exec();
  if (current) *current = nullptr;
}

// Runs code once, kIdle from now, from Qt and outside any qiloop callback, the
// way `source` says; the test reports when the code's loop call took effect.
class Injector {
 public:
  explicit Injector(Source source) : source_(source) {}

  void inject(std::function<void()> code) {
    code_ = std::move(code);
    switch (source_) {
      case Source::kSingleShot:
        QTimer::singleShot(kIdle, &context_, [this] { fire(); });
        break;
      case Source::kRepeatingTimer:
        // Runs on the second tick, and the timer keeps ticking: ticks that
        // touch nothing of the loop must not disturb it.
        QObject::connect(&repeating_, &QTimer::timeout, &context_, [this] {
          if (++ticks_ == 2) fire();
        });
        repeating_.start(kIdle / 2);
        break;
      case Source::kSignal:
        // objectNameChanged is a signal every QObject has (tests get no moc).
        QObject::connect(&emitter_, &QObject::objectNameChanged, &context_, [this] { fire(); });
        QTimer::singleShot(kIdle, &context_, [this] { emitter_.setObjectName("fire"); });
        break;
      case Source::kNestedQEventLoop:
        QTimer::singleShot(kIdle, &context_, [this] {
          QTimer::singleShot(0, &context_, [this] { fire(); });
          run_nested_qeventloop(kNestedCap, &nested_);
        });
        break;
    }
  }

  // Called by the test when the injected call has taken effect; ends the
  // nested QEventLoop, if any. Only the first call counts.
  void took_effect() {
    if (effect_at_) return;
    effect_at_ = Clock::now();
    effect_inside_nested_ = nested_ != nullptr;
    if (nested_) nested_->quit();
  }

  void expect_prompt() const {
    ASSERT_TRUE(fired_at_) << "the injected code never ran";
    ASSERT_TRUE(effect_at_) << "the injected call never took effect";
    EXPECT_LT(*effect_at_ - *fired_at_, kPrompt);
    // Nested loops entered from injected code run qiloop normally.
    if (source_ == Source::kNestedQEventLoop) {
      EXPECT_TRUE(effect_inside_nested_) << "the effect waited for the nested QEventLoop to end";
    }
  }

 private:
  void fire() {
    fired_at_ = Clock::now();
    code_();
  }

  Source source_;
  std::function<void()> code_;
  QObject context_;  // receiver of every slot above: none runs once the injector is gone
  QTimer repeating_;
  QObject emitter_;
  int ticks_ = 0;
  QEventLoop* nested_ = nullptr;
  std::optional<Clock::time_point> fired_at_;
  std::optional<Clock::time_point> effect_at_;
  bool effect_inside_nested_ = false;
};

// One byte is the whole message in these tests.
void put(const qt::Channel& ch) { ch.send("x"); }
bool take(const qt::Channel& ch) { return !ch.receive(1).empty(); }

class WakeupModelTest : public qt::ModeTest {
 protected:
  void run(QiEventLoop& loop) { qt::run_until_stopped(loop, mode(), kGuard); }

  // Runs one case per source: `setup` prepares a fresh idle loop and injects
  // its code through the injector; the loop's own callbacks report the effect.
  void for_each_source(const std::function<void(QiEventLoop&, Injector&)>& setup) {
    for (Source source : kSources) {
      SCOPED_TRACE(source_name(source));
      QiEventLoop loop;
      Injector injector(source);
      setup(loop, injector);
      run(loop);
      injector.expect_prompt();
      if (HasFailure()) break;  // one missed wake-up is enough; spare the guard waits
    }
  }

  // call_later or call_at from injected code: due in 3 ms, never early.
  void expect_timer_from_injected_code_runs(bool use_call_at) {
    for_each_source([&](QiEventLoop& loop, Injector& injector) {
      injector.inject([&loop, &injector, use_call_at] {
        auto handle = std::make_shared<qi::TimerHandle>();
        auto cb = [&loop, &injector, handle] {
          EXPECT_GE(loop.time(), handle->when()) << "a timer ran before its deadline";
          injector.took_effect();
          loop.stop();
        };
        *handle = use_call_at ? loop.call_at(loop.time() + 3ms, cb) : loop.call_later(3ms, cb);
      });
    });
  }
};

// --- Injected code wakes an idle loop ---------------------------------------

TEST_P(WakeupModelTest, CallSoonFromInjectedCodeWakesAnIdleLoop) {
  for_each_source([](QiEventLoop& loop, Injector& injector) {
    injector.inject([&] {
      loop.call_soon([&] {
        injector.took_effect();
        loop.stop();
      });
    });
  });
}

TEST_P(WakeupModelTest, CallLaterFromInjectedCodeWakesAnIdleLoop) { expect_timer_from_injected_code_runs(false); }

TEST_P(WakeupModelTest, CallAtFromInjectedCodeWakesAnIdleLoop) { expect_timer_from_injected_code_runs(true); }

// The loop waits for a far timer; an earlier one added from injected code
// must re-aim that wait, not be served when the far one fires.
TEST_P(WakeupModelTest, EarlierTimerFromInjectedCodeOvertakesAnArmedFarTimer) {
  for_each_source([](QiEventLoop& loop, Injector& injector) {
    loop.call_later(10s, [] { ADD_FAILURE() << "the far timer ran"; });
    injector.inject([&] {
      loop.call_later(1ms, [&] {
        injector.took_effect();
        loop.stop();
      });
    });
  });
}

TEST_P(WakeupModelTest, StopFromInjectedCodeStopsAnIdleLoop) {
  for_each_source([](QiEventLoop& loop, Injector& injector) {
    // Stopping is seen as the idle loop waking to run the stopping
    // iteration (a slice), or is_running() turning false: attached mode
    // turns it false at once and emits stopped(); nested mode only when
    // run_forever returns (as asyncio's is_running()), which a nested
    // QEventLoop on the stack delays.
    auto* poll = new QTimer(&loop);
    auto slices_before = std::make_shared<uint64_t>(0);
    QObject::connect(poll, &QTimer::timeout, [&, poll, slices_before] {
      if (!loop.is_running() || loop.stats().slices > *slices_before) {
        poll->stop();
        injector.took_effect();
      }
    });
    QObject::connect(&loop, &QiEventLoop::stopped, [&] { injector.took_effect(); });
    injector.inject([&, poll, slices_before] {
      *slices_before = loop.stats().slices;  // the loop is idle now
      loop.stop();
      poll->start(1ms);
    });
  });
}

TEST_P(WakeupModelTest, AddReaderFromInjectedCodeWakesAnIdleLoop) {
  for_each_source([](QiEventLoop& loop, Injector& injector) {
    auto pipe = std::make_shared<qt::Channel>(qt::Kind::kPipe);
    injector.inject([&, pipe] {
      put(*pipe);
      loop.add_reader(pipe->in, [&, pipe] {
        EXPECT_TRUE(take(*pipe));
        injector.took_effect();
        loop.stop();
      });
    });
  });
}

// The removed reader's fd and a watched one become readable together: the
// loop polls, serves the watched one and never the removed one.
TEST_P(WakeupModelTest, RemoveReaderFromInjectedCodeTakesEffectAtOnce) {
  for_each_source([](QiEventLoop& loop, Injector& injector) {
    auto removed = std::make_shared<qt::Channel>(qt::Kind::kPipe);
    auto watched = std::make_shared<qt::Channel>(qt::Kind::kPipe);
    loop.add_reader(removed->in, [] { ADD_FAILURE() << "a removed reader ran"; });
    loop.add_reader(watched->in, [&, watched] {
      EXPECT_TRUE(take(*watched));
      injector.took_effect();
      loop.stop();
    });
    injector.inject([&, removed, watched] {
      EXPECT_TRUE(loop.remove_reader(removed->in));
      put(*removed);
      put(*watched);
    });
  });
}

TEST_P(WakeupModelTest, AddWriterFromInjectedCodeWakesAnIdleLoop) {
  for_each_source([](QiEventLoop& loop, Injector& injector) {
    auto sockets = std::make_shared<qt::Channel>(qt::Kind::kSocketPair);
    injector.inject([&, sockets] {
      loop.add_writer(sockets->out, [&, sockets] {
        injector.took_effect();
        loop.stop();
      });
    });
  });
}

// A slot that runs a nested QEventLoop (a modal dialog, say) is injected code
// too: qiloop keeps running inside it — callbacks, timers, I/O.
TEST_P(WakeupModelTest, NestedQEventLoopEnteredFromInjectedCodeRunsTheLoopNormally) {
  QiEventLoop loop;
  QEventLoop* nested = nullptr;
  int steps_inside = 0;
  int steps_outside = 0;
  bool timer_inside = false;
  bool reader_inside = false;
  qt::Channel pipe(qt::Kind::kPipe);
  std::function<void()> step = [&] {
    ++(nested ? steps_inside : steps_outside);
    if (steps_inside + steps_outside < 100) loop.call_soon(step);
  };
  auto finish_when_done = [&] {
    if (steps_inside + steps_outside == 100 && timer_inside && reader_inside && nested) nested->quit();
  };
  QTimer::singleShot(kIdle, [&] {
    loop.call_soon(step);
    loop.call_later(5ms, [&] { timer_inside = nested != nullptr; });
    loop.add_reader(pipe.in, [&] {
      take(pipe);
      reader_inside = nested != nullptr;
    });
    auto* done_poll = new QTimer(&loop);
    QObject::connect(done_poll, &QTimer::timeout, finish_when_done);
    done_poll->start(1ms);
    QTimer::singleShot(1ms, [&] { put(pipe); });
    auto started = Clock::now();
    run_nested_qeventloop(kNestedCap, &nested);
    EXPECT_LT(Clock::now() - started, kPrompt) << "qiloop did not run inside the nested QEventLoop";
    loop.stop();
  });
  run(loop);
  EXPECT_EQ(steps_inside, 100);
  EXPECT_EQ(steps_outside, 0);
  EXPECT_TRUE(timer_inside);
  EXPECT_TRUE(reader_inside);
}

// Application code may remove the loop's posted wake event
// (QCoreApplication::removePostedEvents): that one wake-up is lost, not every
// later one — the next injected call_soon, and stop(), wake the loop again.
TEST_P(WakeupModelTest, ARemovedWakeEventDoesNotSilenceLaterWakeups) {
  QiEventLoop loop;
  Log log;
  Strings before_stop;
  QTimer::singleShot(kIdle, [&] {
    loop.call_soon(log.recorder("its wake event was removed"));
    QCoreApplication::removePostedEvents(&loop);
    QTimer::singleShot(kIdle, [&] {
      loop.call_soon(log.recorder("scheduled later"));
      QTimer::singleShot(kIdle, [&] {
        before_stop = log.items;
        QCoreApplication::removePostedEvents(&loop);  // nothing is posted now: a no-op
        loop.stop();
      });
    });
  });
  run(loop);
  EXPECT_EQ(before_stop, (Strings{"its wake event was removed", "scheduled later"}))
      << "a later call_soon must wake the loop";
}

// A nested loop that excludes socket notifiers (exec(ExcludeSocketNotifiers)),
// entered from injected code. With the linux backend qiloop's timers and
// other threads' calls reach Qt through one socket notifier on the epoll fd.
// Qt's glib dispatcher still serves it, so they run on time; the UNIX one
// (QT_NO_GLIB=1) does not poll it, so they wait for the nested loop to end —
// the documented limit: they are deferred, never lost, never early, and run
// promptly after it returns. The portable backend wakes for them through a
// QTimer and the dispatcher's wake-up, which such a loop still serves.
TEST_P(WakeupModelTest, InsideANestedLoopExcludingSocketNotifiersWakeupsAreDeferredNotLost) {
  const bool glib = QAbstractEventDispatcher::instance()->inherits("QEventDispatcherGlib");
  const bool served_inside = glib || QILOOP_BACKEND_PORTABLE;
  constexpr auto kNested = 200ms;
  QiEventLoop loop;
  QEventLoop* nested = nullptr;
  std::thread worker;
  Clock::time_point timer_due{}, timer_ran{}, thread_ran{}, nested_returned{};
  bool timer_inside = false;
  bool thread_inside = false;
  QTimer::singleShot(kIdle, [&] {
    loop.call_soon([&] {
      timer_due = Clock::now() + 10ms;
      loop.call_at(timer_due, [&] {
        timer_ran = Clock::now();
        timer_inside = nested != nullptr;
      });
    });
    QEventLoop excluding;
    QTimer::singleShot(kNested, &excluding, &QEventLoop::quit);
    QTimer::singleShot(5ms, &excluding, [&] {
      // The timer above is armed (its slice ran) before the worker sends.
      worker = std::thread([&] {
        loop.call_soon_threadsafe([&] {
          thread_ran = Clock::now();
          thread_inside = nested != nullptr;
        });
      });
    });
    nested = &excluding;
    excluding.exec(QEventLoop::ExcludeSocketNotifiers);
    nested = nullptr;
    nested_returned = Clock::now();
    QTimer::singleShot(50ms, [&] { loop.stop(); });
  });
  run(loop);
  if (worker.joinable()) worker.join();
  ASSERT_NE(timer_ran, Clock::time_point{}) << "the timer was lost";
  ASSERT_NE(thread_ran, Clock::time_point{}) << "the thread's call was lost";
  EXPECT_GE(timer_ran, timer_due) << "a timer ran early";
  if (served_inside) {
    EXPECT_TRUE(timer_inside);
    EXPECT_TRUE(thread_inside);
    EXPECT_LT(timer_ran - timer_due, kPrompt);
  } else {
    EXPECT_FALSE(timer_inside);
    EXPECT_FALSE(thread_inside);
    EXPECT_LT(timer_ran - nested_returned, kPrompt);
    EXPECT_LT(thread_ran - nested_returned, kPrompt);
  }
}

// A nested loop that excludes Qt's timers (exec(QEventLoop::X11ExcludeTimers),
// as old drag-and-drop loops did), entered from injected code: qiloop's
// doorbell must still ring in it. Before the doorbell was a Qt timer, a
// posted event rang it, which every nested loop delivers; a timer doorbell
// stayed silent until the nested loop returned, so a nested loop waiting for
// qiloop work never returned. Timers excluded, the nested loop's cap is a
// quit posted from another thread.
TEST_P(WakeupModelTest, InsideANestedLoopExcludingTimersCallSoonFromInjectedCodeStillRuns) {
  QiEventLoop loop;
  QEventLoop* nested = nullptr;
  bool ran_inside = false;
  int rounds = 0;
  QTimer::singleShot(kIdle, [&] {
    QEventLoop excluding;
    nested = &excluding;
    // Injected code inside the nested loop: a queued call (posted events
    // are delivered whatever the flags). Twice, so that the second wake-up
    // comes after the first doorbell rang inside the nested loop.
    std::function<void()> schedule = [&] {
      loop.call_soon([&] {
        if (!nested) return;
        if (++rounds == 2) {
          ran_inside = true;
          nested->quit();
        } else {
          QMetaObject::invokeMethod(nested, schedule, Qt::QueuedConnection);
        }
      });
    };
    QMetaObject::invokeMethod(&excluding, schedule, Qt::QueuedConnection);
    qt::exec_excluding_timers(excluding, kNestedCap);
    nested = nullptr;
    loop.stop();
  });
  run(loop);
  EXPECT_TRUE(ran_inside) << "the call_soon waited for the nested loop excluding timers to end";
}

// --- A qiloop callback that runs a nested QEventLoop blocks the loop ----------

// Snapshots of loop.stats() around a blocking callback's nested QEventLoop.
struct BlockedWindow {
  qi::LoopStats before;
  qi::LoopStats after;
  Clock::time_point returned_at;

  // The callback: logs, runs `inside` from a Qt timer inside the nested
  // QEventLoop (injected code while qiloop is blocked), returns after kBlock.
  auto blocker(QiEventLoop& loop, Log& log, std::function<void()> inside) {
    return [this, &loop, &log, inside = std::move(inside)] {
      log("blocker begins");
      QTimer::singleShot(10ms, inside);
      before = loop.stats();
      run_nested_qeventloop(kBlock);
      after = loop.stats();
      returned_at = Clock::now();
      log("blocker returns");
    };
  }
  void expect_no_busy_waiting() const {
    EXPECT_LT(after.slices - before.slices, kFewWakeups) << "the loop sliced while a callback blocked";
    EXPECT_LT(after.posted_wakeups - before.posted_wakeups, kFewWakeups);
    EXPECT_LT(after.deferred_wakeups - before.deferred_wakeups, kFewWakeups) << "a wake-up source spun";
    EXPECT_EQ(after.iterations, before.iterations) << "an iteration started inside a callback";
  }
  void expect_soon_after_return(Clock::time_point t) const {
    EXPECT_GE(t, returned_at);
    EXPECT_LT(t - returned_at, kPrompt);
  }
};

TEST_P(WakeupModelTest, ACallbackRunningANestedQEventLoopBlocksTheLoop) {
  QiEventLoop loop;
  Log log;
  BlockedWindow window;
  loop.call_soon(window.blocker(loop, log, [&] { log("qt timer inside the nested QEventLoop"); }));
  loop.call_soon(log.recorder("ready in the same iteration"));
  loop.call_later(5ms, [&] {
    log("timer due while blocked");
    loop.stop();
  });
  run(loop);
  EXPECT_EQ(log.items, (Strings{"blocker begins", "qt timer inside the nested QEventLoop", "blocker returns",
                                "ready in the same iteration", "timer due while blocked"}));
  window.expect_no_busy_waiting();
}

TEST_P(WakeupModelTest, InjectedSchedulingInsideABlockingCallbackTakesEffectWhenItReturns) {
  QiEventLoop loop;
  Log log;
  BlockedWindow window;
  Clock::time_point last_ran{};
  loop.call_soon(window.blocker(loop, log, [&] {
    log("injected");
    loop.call_soon(log.recorder("call_soon from inside"));
    loop.call_at(loop.time() + 1ms, log.recorder("call_at from inside"));
    loop.call_later(2ms, [&] {
      log("call_later from inside");
      last_ran = Clock::now();
      loop.stop();
    });
  }));
  run(loop);
  EXPECT_EQ(log.items, (Strings{"blocker begins", "injected", "blocker returns", "call_soon from inside",
                                "call_at from inside", "call_later from inside"}));
  window.expect_no_busy_waiting();
  window.expect_soon_after_return(last_ran);
}

TEST_P(WakeupModelTest, InjectedStopInsideABlockingCallbackTakesEffectWhenItReturns) {
  QiEventLoop loop;
  Log log;
  BlockedWindow window;
  Strings at_stop;
  Clock::time_point stopped_at{};
  // Attached mode drains ready callbacks when the runner goes: look at the
  // log when the loop reports that it stopped.
  QObject::connect(&loop, &QiEventLoop::stopped, [&] {
    at_stop = log.items;
    stopped_at = Clock::now();
  });
  loop.call_soon(window.blocker(loop, log, [&] {
    log("injected stop");
    loop.stop();
  }));
  loop.call_soon([&] {
    log("rest of the iteration");
    loop.call_soon(log.recorder("next iteration"));
  });
  run(loop);
  EXPECT_EQ(at_stop,
            (Strings{"blocker begins", "injected stop", "blocker returns", "rest of the iteration"}));
  window.expect_no_busy_waiting();
  window.expect_soon_after_return(stopped_at);
}

// Wake-ups that do arrive meanwhile (a watched fd turning readable, another
// thread's call_soon_threadsafe) are parked and counted, not spun on, and
// served right after the callback returns.
TEST_P(WakeupModelTest, WakeupsArrivingWhileACallbackBlocksAreDeferredNotSpunOn) {
  QiEventLoop loop;
  Log log;
  BlockedWindow window;
  qt::Channel pipe(qt::Kind::kPipe);
  std::thread other;
  Clock::time_point served_at{};
  int served = 0;
  auto serve = [&](const char* what) {
    log(what);
    if (++served == 2) {
      served_at = Clock::now();
      loop.stop();
    }
  };
  loop.add_reader(pipe.in, [&] {
    while (take(pipe)) {
    }
    serve("reader");
  });
  loop.call_soon(window.blocker(loop, log, [&] {
    put(pipe);
    other = std::thread([&] { loop.call_soon_threadsafe([&] { serve("threadsafe"); }); });
  }));
  run(loop);
  if (other.joinable()) other.join();
  ASSERT_EQ(log.items.size(), 4u);
  EXPECT_EQ(log.items[0], "blocker begins");
  EXPECT_EQ(log.items[1], "blocker returns");
  EXPECT_THAT(Strings(log.items.begin() + 2, log.items.end()), testing::UnorderedElementsAre("reader", "threadsafe"))
      << "both wake-ups are served after the blocker returns";
  EXPECT_GE(window.after.deferred_wakeups - window.before.deferred_wakeups, 1u)
      << "the readable fd's wake-up should have arrived while the callback blocked";
  window.expect_no_busy_waiting();
  window.expect_soon_after_return(served_at);
}

// The loop's doorbell on its own thread is a zero-interval Qt timer, and
// glib's dispatcher runs a timer at idle priority after one has fired, until
// posted events are next sent. A glib source of default priority that stays
// ready (another library's idle handler on the thread's GMainContext) must
// not hold the doorbell off: here its handler — injected code — schedules a
// callback every few calls, 50 times, and each must run within a few calls
// (it runs within the same one today). The handler ends itself after
// kGiveUpAt calls: Qt's timers (the guard's too) wait while it lasts.
// Without glib's dispatcher (QT_NO_GLIB) the source never runs: Qt polls no
// GMainContext.
using GSourceFunc = int (*)(void*);
using GIdleAddFull = unsigned (*)(int priority, GSourceFunc fn, void* data, void (*notify)(void*));

TEST_P(WakeupModelTest, CallSoonFromInjectedCodeRunsWhileAGlibSourceStaysReady) {
  auto* glib_idle_add_full = reinterpret_cast<GIdleAddFull>(::dlsym(RTLD_DEFAULT, "g_idle_add_full"));
  const bool glib_dispatcher =
      QAbstractEventDispatcher::instance()->inherits("QEventDispatcherGlib") && glib_idle_add_full;
  if (!glib_dispatcher) GTEST_SKIP() << "not Qt's glib event dispatcher";
  // Every kEvery-th call schedules a callback (each one a new doorbell, the
  // previous one having fired: the dispatcher runs timers at idle priority
  // from then on); the worst wait, in calls, is what counts.
  struct Flood {
    QiEventLoop loop;
    int calls = 0;
    int scheduled = 0;
    int ran = 0;
    int pending_since = -1;
    int worst = 0;
    bool over = false;
  } flood;
  constexpr int kEvery = 3;
  constexpr int kRounds = 50;
  constexpr int kGiveUpAt = 5000;
  constexpr int kGPriorityDefault = 0;
  glib_idle_add_full(
      kGPriorityDefault,
      [](void* p) -> int {
        auto& f = *static_cast<Flood*>(p);
        ++f.calls;
        if (f.pending_since < 0 && f.calls % kEvery == 0 && f.scheduled < kRounds) {
          ++f.scheduled;
          f.pending_since = f.calls;
          f.loop.call_soon([&f] {
            f.worst = std::max(f.worst, f.calls - f.pending_since);
            f.pending_since = -1;
            if (++f.ran == kRounds) {
              f.over = true;
              f.loop.stop();
            }
          });
        }
        if (f.over || f.calls >= kGiveUpAt) {
          f.over = true;
          return 0;  // G_SOURCE_REMOVE
        }
        return 1;  // G_SOURCE_CONTINUE
      },
      &flood, nullptr);
  run(flood.loop);
  ASSERT_TRUE(flood.over) << "the glib source is still installed";
  EXPECT_EQ(flood.ran, kRounds) << "after " << flood.calls << " calls of an always-ready glib source";
  EXPECT_LE(flood.worst, 5) << "a callback waited " << flood.worst << " calls of an always-ready glib source";
}

INSTANTIATE_TEST_SUITE_P(Modes, WakeupModelTest, testing::Values(Mode::kNested, Mode::kAttached), qt::mode_name);

}  // namespace

namespace {

// A removed wake event is recovered, not merely forgotten: the work it was
// posted for runs without waiting for some later wake-up (here there is
// none). Removed before the loop's first slice (the wake-up run_forever /
// the runner posts) and after an injected call_soon.
TEST_P(WakeupModelTest, WorkWhoseWakeEventWasRemovedStillRuns) {
  QiEventLoop loop;
  Log log;
  loop.call_soon(log.recorder("scheduled before the loop ran"));
  QTimer::singleShot(0, [&] { QCoreApplication::removePostedEvents(&loop); });
  QTimer::singleShot(kIdle, [&] {
    loop.call_soon([&] {
      log("injected");
      loop.stop();
    });
    QCoreApplication::removePostedEvents(&loop);
  });
  qt::run_until_stopped(loop, mode(), 3s);
  EXPECT_EQ(log.items, (Strings{"scheduled before the loop ran", "injected"}));
}

}  // namespace
