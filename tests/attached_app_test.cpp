// Attached mode as an application uses it: a QiRunner, and the program's own
// QCoreApplication::exec() driving the loop.
#include "test_util.h"

#include <QtCore/QObject>
#include <QtCore/QTimer>

#include <algorithm>
#include <functional>
#include <string>
#include <memory>

using namespace std::chrono_literals;
using qt::Log;
using qt::Strings;

namespace {

using Clock = std::chrono::steady_clock;

// QCoreApplication::exec() until the test itself ends it; a guard ends it
// (and fails the test) instead of hanging.
int exec_app(std::chrono::milliseconds guard = 2s) {
  bool expired = false;
  QTimer guard_timer;
  guard_timer.setSingleShot(true);
  QObject::connect(&guard_timer, &QTimer::timeout, [&] {
    expired = true;
    QCoreApplication::exit(99);
  });
  guard_timer.start(guard);
  int rc = QCoreApplication::exec();
  EXPECT_FALSE(expired) << "exec() did not end within the guard time";
  return rc;
}

// A callable whose destructor schedules on the loop, as cleanup code does:
// when a closing loop destroys it, that scheduling must be ignored.
struct SchedulesWhenDestroyed {
  QiEventLoop* loop;
  int* destroyed;
  SchedulesWhenDestroyed(QiEventLoop* l, int* d) : loop(l), destroyed(d) {}
  SchedulesWhenDestroyed(SchedulesWhenDestroyed&& o) noexcept
      : loop(std::exchange(o.loop, nullptr)), destroyed(o.destroyed) {}
  ~SchedulesWhenDestroyed() {
    if (!loop) return;
    ++*destroyed;
    loop->call_soon([] { ADD_FAILURE() << "scheduled from a destructor during close, and ran"; });
    loop->call_later(1ms, [] {});
    loop->call_soon_threadsafe([] {});
  }
  void operator()() { ADD_FAILURE() << "a pending timer ran at shutdown"; }
};

TEST(AttachedApp, AnOwningRunnerMakesItsLoopTheRunningLoopUntilItGoes) {
  EXPECT_EQ(qi::running_loop(), nullptr);
  QiEventLoop* inside = nullptr;
  {
    QiRunner runner;
    EXPECT_EQ(&qi::get_running_loop(), &runner.loop());
    EXPECT_TRUE(runner.loop().is_running());
    EXPECT_FALSE(runner.loop().is_closed());
    runner.loop().call_soon([&] {
      inside = &qi::get_running_loop();
      QCoreApplication::exit(0);
    });
    EXPECT_EQ(exec_app(), 0);
    EXPECT_EQ(inside, &runner.loop());
  }
  EXPECT_EQ(qi::running_loop(), nullptr);
  EXPECT_THROW(qi::get_running_loop(), qi::RuntimeError);
  // The thread is free for the next runner.
  QiRunner next;
  EXPECT_EQ(&qi::get_running_loop(), &next.loop());
}

TEST(AttachedApp, ABorrowingRunnerAttachesThenClosesTheLoop) {
  QiEventLoop loop;
  bool ran = false;
  {
    QiRunner runner(loop);
    EXPECT_EQ(&runner.loop(), &loop);
    EXPECT_EQ(&qi::get_running_loop(), &loop);
    EXPECT_TRUE(loop.is_running());
    loop.call_soon([&] {
      ran = true;
      QCoreApplication::exit(0);
    });
    EXPECT_EQ(exec_app(), 0);
  }
  EXPECT_TRUE(ran);
  EXPECT_FALSE(loop.is_running());
  EXPECT_TRUE(loop.is_closed());
  EXPECT_EQ(qi::running_loop(), nullptr);
  EXPECT_THROW(QiRunner again(loop), qi::RuntimeError) << "a closed loop cannot be attached again";
}

// Each kind of event can start the other, and the chain runs in order.
TEST(AttachedApp, CallbacksLoopTimersAndQtTimersScheduleEachOther) {
  QiRunner runner;
  QiEventLoop& loop = runner.loop();
  Log log;
  loop.call_soon([&] {
    log("callback");
    QTimer::singleShot(5ms, &loop, [&] {
      log("qt timer");
      loop.call_later(5ms, [&] {
        log("loop timer");
        QTimer::singleShot(0, &loop, [&] {
          log("zero qt timer");
          loop.call_soon([&] {
            log("callback again");
            QCoreApplication::exit(0);
          });
        });
      });
    });
  });
  EXPECT_EQ(exec_app(), 0);
  EXPECT_EQ(log.items,
            (Strings{"callback", "qt timer", "loop timer", "zero qt timer", "callback again"}));
}

// A repeating Qt timer and a repeating loop timer share exec(): their ticks
// interleave instead of one starving the other.
TEST(AttachedApp, LoopTimersAndQtTimersInterleave) {
  QiRunner runner;
  QiEventLoop& loop = runner.loop();
  std::string ticks;  // 'q' per Qt tick, 'l' per loop tick
  QTimer qt_timer;
  QObject::connect(&qt_timer, &QTimer::timeout, [&] { ticks += 'q'; });
  qt_timer.start(3ms);
  std::function<void()> loop_tick = [&] {
    ticks += 'l';
    if (std::count(ticks.begin(), ticks.end(), 'l') < 10)
      loop.call_later(3ms, loop_tick);
    else
      QCoreApplication::exit(0);
  };
  loop.call_later(3ms, loop_tick);
  EXPECT_EQ(exec_app(), 0);
  int switches = 0;
  for (std::size_t i = 1; i < ticks.size(); ++i) switches += ticks[i] != ticks[i - 1];
  EXPECT_GE(switches, 4) << "ticks: " << ticks;
}

// stop() ends the logical loop only: the application keeps running, and what
// is scheduled afterwards waits (until the runner drains it).
TEST(AttachedApp, StopEndsTheLogicalLoopButNotTheApplication) {
  QiEventLoop loop;
  Log log;
  int stopped = 0;
  qi::Handle after_stop;
  QObject::connect(&loop, &QiEventLoop::stopped, [&] { ++stopped; });
  {
    QiRunner runner(loop);
    loop.call_soon([&] {
      log("callback stops the loop");
      loop.stop();
    });
    QTimer::singleShot(20ms, &loop, [&] {
      log("qt timer after stop");
      EXPECT_FALSE(loop.is_running());
      EXPECT_EQ(qi::running_loop(), nullptr);
      EXPECT_THROW(qi::get_running_loop(), qi::RuntimeError);
      after_stop = loop.call_soon(log.recorder("scheduled after stop (drained by the runner)"));
      QTimer::singleShot(20ms, &loop, [&] {
        log("qt timer, later");
        QCoreApplication::exit(0);
      });
    });
    EXPECT_EQ(exec_app(), 0);
    EXPECT_EQ(log.items, (Strings{"callback stops the loop", "qt timer after stop", "qt timer, later"}));
    EXPECT_FALSE(after_stop.cancelled());
    EXPECT_EQ(stopped, 1);
  }
  EXPECT_EQ(log.items.back(), "scheduled after stop (drained by the runner)");
  EXPECT_EQ(stopped, 1) << "leaving the runner of a stopped loop must not emit stopped() again";
  EXPECT_TRUE(loop.is_closed());
}

// Cleanup scheduled once exec() has returned runs when the runner goes —
// including what that cleanup schedules — then the loop is closed, pending
// timers are dropped, and scheduling from their destructors is ignored.
TEST(AttachedApp, LeavingTheRunnerDrainsReadyCallbacksThenCloses) {
  QiEventLoop loop;
  Log log;
  int destroyed = 0;
  auto token = std::make_shared<int>(0);
  std::weak_ptr<int> timer_captures = token;
  {
    QiRunner runner(loop);
    loop.call_soon([&] { QCoreApplication::exit(0); });
    EXPECT_EQ(exec_app(), 0);
    loop.call_soon([&] {
      log("ready when the runner goes");
      EXPECT_EQ(&qi::get_running_loop(), &loop);
      loop.call_soon([&] {
        log("scheduled by it");
        loop.call_soon(log.recorder("scheduled by that"));
      });
    });
    loop.call_later(10s, SchedulesWhenDestroyed(&loop, &destroyed));
    loop.call_later(10s, [token] { ADD_FAILURE() << "a pending timer ran at shutdown"; });
    token.reset();
    EXPECT_TRUE(log.items.empty()) << "nothing runs before the runner goes: exec() is over";
  }
  EXPECT_EQ(log.items, (Strings{"ready when the runner goes", "scheduled by it", "scheduled by that"}));
  EXPECT_TRUE(loop.is_closed());
  EXPECT_FALSE(loop.is_running());
  EXPECT_EQ(qi::running_loop(), nullptr);
  EXPECT_EQ(destroyed, 1);
  EXPECT_TRUE(timer_captures.expired()) << "dropped timers must release what they captured";
}

// A callback that reschedules itself forever must not hang the program's
// exit: the runner's drain gives up after a bounded number of rounds.
TEST(AttachedApp, ACallbackThatNeverStopsReschedulingIsCutOffAtShutdown) {
  QiEventLoop loop;
  int runs = 0;
  int runs_at_exit = 0;
  std::function<void()> reschedule = [&] {
    ++runs;
    loop.call_soon(reschedule);
  };
  Clock::time_point leaving{};
  {
    QiRunner runner(loop);
    loop.call_soon(reschedule);
    QTimer::singleShot(10ms, &loop, [] { QCoreApplication::exit(0); });
    EXPECT_EQ(exec_app(), 0);
    runs_at_exit = runs;
    leaving = Clock::now();
  }
  EXPECT_LT(Clock::now() - leaving, 1s);
  EXPECT_GT(runs_at_exit, 0);
  EXPECT_GT(runs - runs_at_exit, 0) << "the drain should run what is ready";
  EXPECT_LT(runs - runs_at_exit, 10000) << "the drain must be bounded";
  EXPECT_TRUE(loop.is_closed());
}

TEST(AttachedApp, QCoreApplicationExitFromACallbackEndsExec) {
  QiRunner runner;
  runner.loop().call_soon([] { QCoreApplication::exit(7); });
  EXPECT_EQ(exec_app(), 7);
  // exec() is over, yet the logical loop runs until the runner goes.
  EXPECT_TRUE(runner.loop().is_running());
  EXPECT_EQ(&qi::get_running_loop(), &runner.loop());
}

// As an asyncio loop can run again after stop(), so can an attached one:
// restart() makes it the running loop again, and what was scheduled while it
// was stopped runs.
TEST(AttachedApp, RestartRunsAStoppedLoopAgain) {
  QiEventLoop loop;
  Log log;
  int stopped = 0;
  QObject::connect(&loop, &QiEventLoop::stopped, [&] { ++stopped; });
  QiRunner runner(loop);
  loop.call_soon([&] {
    log("first run");
    loop.stop();
  });
  QTimer::singleShot(20ms, &loop, [&] {
    EXPECT_FALSE(loop.is_running());
    EXPECT_EQ(stopped, 1);
    loop.call_soon(log.recorder("scheduled while stopped"));
    loop.call_later(5ms, [&] {
      log("timer of the second run");
      EXPECT_EQ(&qi::get_running_loop(), &loop);
      loop.stop();
      QTimer::singleShot(20ms, &loop, [] { QCoreApplication::exit(0); });
    });
    try {
      loop.run_forever();
      ADD_FAILURE() << "run_forever on a loop a QiRunner owns must throw";
    } catch (const qi::RuntimeError& e) {
      EXPECT_NE(std::string(e.what()).find("call restart() on its QiRunner"), std::string::npos) << e.what();
    }
    runner.restart();
    EXPECT_TRUE(loop.is_running());
    EXPECT_EQ(&qi::get_running_loop(), &loop);
    EXPECT_THROW(runner.restart(), qi::RuntimeError) << "it is already running";
  });
  EXPECT_EQ(exec_app(), 0);
  EXPECT_EQ(log.items, (Strings{"first run", "scheduled while stopped", "timer of the second run"}));
  EXPECT_EQ(stopped, 2);
  EXPECT_FALSE(loop.is_running());
  EXPECT_EQ(qi::running_loop(), nullptr);
}

TEST(AttachedApp, StoppedIsEmittedOnceWhenTheLoopStops) {
  QiEventLoop loop;
  int stopped = 0;
  bool running_in_slot = true;
  QObject::connect(&loop, &QiEventLoop::stopped, [&] {
    ++stopped;
    running_in_slot = loop.is_running();
    QCoreApplication::exit(0);
  });
  {
    QiRunner runner(loop);
    loop.call_soon([&] { loop.stop(); });
    EXPECT_EQ(exec_app(), 0);
    EXPECT_EQ(stopped, 1);
  }
  EXPECT_EQ(stopped, 1);
  EXPECT_FALSE(running_in_slot) << "stopped() comes after the last iteration";
}

TEST(AttachedApp, StoppedIsEmittedWhenTheRunnerGoesWithoutStop) {
  QiEventLoop loop;
  int stopped = 0;
  QObject::connect(&loop, &QiEventLoop::stopped, [&] { ++stopped; });
  {
    QiRunner runner(loop);
    loop.call_soon([] { QCoreApplication::exit(0); });
    EXPECT_EQ(exec_app(), 0);
    EXPECT_EQ(stopped, 0);
  }
  EXPECT_EQ(stopped, 1);
}

}  // namespace
