// qi::testing::VirtualClock: autojump (and its quiet-poll rule while fds are
// watched, and its real-time threshold), time moved by hand, other threads
// waking a virtual-time loop — in both run modes.
#include "fd_channel.h"
#include "test_util.h"

#include <qiloop/testing/virtual_clock.h>

#include <QtCore/QTimer>

#include <chrono>
#include <functional>
#include <stdexcept>
#include <thread>

using namespace std::chrono_literals;
using qi::testing::VirtualClock;
using qt::Log;
using qt::Mode;
using qt::Strings;

namespace {

using time_point = qi::Clock::time_point;

// Virtual time since the clock's start, for logs.
std::string at(const QiEventLoop& loop) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(loop.time().time_since_epoch()).count()) +
         " ms";
}

class VirtualClockTest : public qt::ModeTest {};
INSTANTIATE_TEST_SUITE_P(Modes, VirtualClockTest, testing::Values(Mode::kNested, Mode::kAttached), qt::mode_name);

}  // namespace

TEST_P(VirtualClockTest, AutojumpEndsSleepsAtOnceAndAtExactlyTheirDeadline) {
  VirtualClock clock;
  QiEventLoop loop;
  loop.set_clock(&clock);
  Log log;
  const auto real0 = std::chrono::steady_clock::now();
  qi::Task<void> t = loop.create_task([](QiEventLoop& loop, Log& log) -> qi::Coro<void> {
    co_await qi::sleep(1h);
    log(at(loop));
    co_await qi::sleep(1ms);
    log(at(loop));
    co_await qi::sleep(30s);
    log(at(loop));
    loop.stop();
  }(loop, log));
  run(loop);
  EXPECT_EQ(log.items, (Strings{"3600000 ms", "3600001 ms", "3630001 ms"}));
  EXPECT_EQ(clock.autojumps(), 3u);
  EXPECT_LT(std::chrono::steady_clock::now() - real0, 10s);
}

TEST_P(VirtualClockTest, WithAutojumpOffTimeMovesOnlyByAdvanceFromInjectedCode) {
  VirtualClock clock;
  clock.set_autojump(false);
  QiEventLoop loop;
  loop.set_clock(&clock);
  Log log;
  loop.call_later(10s, [&] {
    log("timer at " + at(loop));
    loop.stop();
  });
  qt::from_qt_after(20ms, [&] {
    clock.advance(9999ms);
    log("advanced to " + at(loop));
  });
  qt::from_qt_after(60ms, [&] {
    clock.advance(1ms);
    log("advanced to " + at(loop));
  });
  run(loop);
  EXPECT_EQ(log.items, (Strings{"advanced to 9999 ms", "advanced to 10000 ms", "timer at 10000 ms"}));
  EXPECT_EQ(clock.autojumps(), 0u);
}

TEST(VirtualClock, AdvanceInsideACallbackTakesEffectAtTheNextIteration) {
  VirtualClock clock;
  clock.set_autojump(false);
  QiEventLoop loop;
  loop.set_clock(&clock);
  Log log;
  loop.call_later(5s, log.recorder("timer"));
  loop.call_soon([&] {
    clock.advance(5s);
    log("advanced");
    loop.call_soon(log.recorder("scheduled with the advance"));
    loop.call_later(0s, [&] {
      log("due now");
      loop.stop();
    });
  });
  loop.run_forever();
  // The next iteration: what was ready first, then the due timers by (deadline, order).
  EXPECT_EQ(log.items, (Strings{"advanced", "scheduled with the advance", "timer", "due now"}));
}

TEST_P(VirtualClockTest, TurningAutojumpOnWakesAnIdleLoop) {
  VirtualClock clock;
  clock.set_autojump(false);
  QiEventLoop loop;
  loop.set_clock(&clock);
  Log log;
  loop.call_later(1h, [&] {
    log("timer at " + at(loop));
    loop.stop();
  });
  qt::from_qt_after(20ms, [&] {
    log("autojump on");
    clock.set_autojump(true);
  });
  run(loop);
  EXPECT_EQ(log.items, (Strings{"autojump on", "timer at 3600000 ms"}));
}

TEST_P(VirtualClockTest, WhileFdsAreWatchedAPeerInTheSameLoopIsServedBeforeTimeJumps) {
  // Each round writes from a plain callback, after that iteration's poll:
  // the loop goes idle with the byte unread, and a jump now would fire the
  // one-hour timeout before the reader. The quiet-poll rule polls first.
  VirtualClock clock;
  QiEventLoop loop;
  loop.set_clock(&clock);
  qt::Channel ch(qt::Kind::kSocketPair);
  Log log;
  int rounds = 0;
  auto write_later = [&] { loop.call_soon([&] { ch.send("x"); }); };
  qi::TimerHandle timeout = loop.call_later(1h, log.recorder("timeout"));
  loop.add_reader(ch.in, [&] {
    ch.receive();
    if (++rounds < 50) return write_later();
    log("50 rounds at " + at(loop));
    timeout.cancel();
    // Still watching the fd, and nothing happens on it: time jumps.
    loop.call_later(1h, [&] {
      log("an hour later at " + at(loop));
      loop.stop();
    });
  });
  write_later();
  run(loop);
  loop.remove_reader(ch.in);
  EXPECT_EQ(log.items, (Strings{"50 rounds at 0 ms", "an hour later at 3600000 ms"}));
  EXPECT_EQ(clock.autojumps(), 1u);
}

TEST_P(VirtualClockTest, AThresholdLetsAnotherThreadsWorkArriveBeforeTimeJumps) {
  VirtualClock clock;
  clock.set_autojump_threshold(500ms);
  QiEventLoop loop;
  loop.set_clock(&clock);
  Log log;
  loop.call_later(1h, [&] {
    log("timeout at " + at(loop));
    loop.stop();
  });
  std::thread worker;
  loop.call_soon([&] {
    worker = std::thread([&] {
      std::this_thread::sleep_for(20ms);
      loop.call_soon_threadsafe([&] { log("worker's result at " + at(loop)); });
    });
  });
  const auto real0 = std::chrono::steady_clock::now();
  run(loop);
  worker.join();
  EXPECT_EQ(log.items, (Strings{"worker's result at 0 ms", "timeout at 3600000 ms"}));
  EXPECT_GE(std::chrono::steady_clock::now() - real0, 500ms) << "the jump waited for a quiet threshold";
}

TEST_P(VirtualClockTest, OtherThreadsWakeALoopWaitingWithAutojumpOff) {
  VirtualClock clock;
  clock.set_autojump(false);
  QiEventLoop loop;
  loop.set_clock(&clock);
  Log log;
  loop.call_later(1h, log.recorder("never: nobody advances"));
  std::thread worker;
  loop.call_soon([&] {
    worker = std::thread([&] {
      for (int i = 0; i < 3; ++i) {
        std::this_thread::sleep_for(5ms);
        loop.call_soon_threadsafe([&, i] {
          log("from the worker at " + at(loop));
          if (i == 2) loop.stop();
        });
      }
    });
  });
  run(loop);
  worker.join();
  EXPECT_EQ(log.items, Strings(3, "from the worker at 0 ms"));
}

TEST(VirtualClock, ASleepForeverIsNeverJumpedTo) {
  VirtualClock clock;
  QiEventLoop loop;
  loop.set_clock(&clock);
  qi::Task<void> sleeper = loop.create_task([]() -> qi::Coro<void> { co_await qi::sleep(std::chrono::hours::max()); }());
  std::thread worker;
  loop.call_soon([&] {
    worker = std::thread([&] {
      std::this_thread::sleep_for(30ms);
      loop.call_soon_threadsafe([&] { loop.stop(); });
    });
  });
  loop.run_forever();
  worker.join();
  EXPECT_FALSE(sleeper.done());
  EXPECT_EQ(loop.time(), time_point{});
  EXPECT_EQ(clock.autojumps(), 0u);
  sleeper.cancel();
  loop.shutdown();
}

// duration::max() is a threshold never reached (real_now + threshold
// overflowed: UBSan's signed-integer-overflow).
TEST_P(VirtualClockTest, AnEndlessThresholdNeverJumps) {
  VirtualClock clock;
  clock.set_autojump_threshold(std::chrono::steady_clock::duration::max());
  QiEventLoop loop;
  loop.set_clock(&clock);
  Log log;
  loop.call_later(1s, [&] { log("jumped at " + at(loop)); });
  qt::from_qt_after(50ms, [&] { loop.stop(); });
  run(loop);
  EXPECT_TRUE(log.items.empty()) << ::testing::PrintToString(log.items);
  EXPECT_EQ(loop.time(), time_point{});
  EXPECT_EQ(clock.autojumps(), 0u);
  loop.shutdown();
}

TEST(VirtualClock, TimeOnlyMovesForwardAndByTheLoopsThread) {
  VirtualClock clock(time_point(1h));
  EXPECT_EQ(clock.now(), time_point(1h));
  EXPECT_THROW(clock.advance(-1ns), std::invalid_argument);
  EXPECT_THROW(clock.jump_to(time_point(1h) - 1ns), std::invalid_argument);
  try {
    clock.set_autojump_threshold(-1ms);
    ADD_FAILURE() << "no error";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("VirtualClock::set_autojump_threshold: the threshold is negative"),
              std::string::npos)
        << e.what();
  }
  clock.jump_to(time_point(2h));
  clock.advance(1s);
  EXPECT_EQ(clock.now(), time_point(2h + 1s));
  clock.advance(std::chrono::steady_clock::duration::max());
  EXPECT_EQ(clock.now(), time_point::max()) << "saturates";

  VirtualClock other;
  QiEventLoop loop;
  loop.set_clock(&other);
  std::string error;
  std::thread([&] {
    try {
      other.advance(1s);
    } catch (const qi::RuntimeError& e) {
      error = e.what();
    }
  }).join();
  EXPECT_NE(error.find("thread that does not own the loop"), std::string::npos) << error;
  EXPECT_EQ(other.now(), time_point{});
  loop.set_clock(nullptr);
}
