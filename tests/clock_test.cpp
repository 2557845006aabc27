// The loop's clock hook (qi::Clock, QiEventLoop::set_clock): every timer
// decision reads the clock, idle() decides when the loop looks again, the
// slice budget stays on real time, and the rules for changing or
// destroying a clock.
#include "fd_channel.h"
#include "test_util.h"

#include <QtCore/QTimer>

#include <chrono>
#include <functional>
#include <thread>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using qt::Log;
using qt::Mode;
using qt::Strings;

namespace {

using time_point = qi::Clock::time_point;

// Time moved by hand; records the loop's idle() calls and answers with
// `answer` (default: wait for something else to wake the loop).
class ManualClock final : public qi::Clock {
 public:
  time_point t = time_point(1h);
  std::vector<std::pair<time_point, bool>> idles;
  std::function<time_point(time_point)> answer = [](time_point) { return time_point::max(); };

  time_point now() const noexcept override { return t; }
  time_point idle(time_point next_timer, bool io_watched) noexcept override {
    idles.emplace_back(next_timer, io_watched);
    return answer(next_timer);
  }
  void move_to(time_point to) {
    t = to;
    notify_changed();
  }
};

class ClockTest : public qt::ModeTest {};
INSTANTIATE_TEST_SUITE_P(Modes, ClockTest, testing::Values(Mode::kNested, Mode::kAttached), qt::mode_name);

}  // namespace

TEST(Clock, TimeAndDeadlinesComeFromTheClockAndNullRestoresTheRealOne) {
  QiEventLoop loop;
  EXPECT_EQ(loop.get_clock(), nullptr);
  ManualClock clock;
  loop.set_clock(&clock);
  EXPECT_EQ(loop.get_clock(), &clock);
  EXPECT_EQ(clock.loop(), &loop);
  EXPECT_EQ(loop.time(), time_point(1h));
  qi::TimerHandle t = loop.call_later(5s, [] {});
  EXPECT_EQ(t.when(), time_point(1h + 5s));
  t.cancel();  // cancelled timers do not hold the clock
  loop.set_clock(nullptr);
  EXPECT_EQ(clock.loop(), nullptr);
  const auto real = std::chrono::steady_clock::now();
  EXPECT_LE(loop.time() - real, 1s);
  EXPECT_GE(loop.time(), real);
}

TEST_P(ClockTest, ATimerRunsWhenTheClockReachesItsDeadlineAndNotBefore) {
  ManualClock clock;  // before the loop: outlives it
  QiEventLoop loop;
  loop.set_clock(&clock);
  Log log;
  const time_point deadline = clock.t + 5s;
  loop.call_at(deadline, [&] {
    log("timer at " + std::to_string((loop.time() - time_point(1h)) / 1ms) + " ms");
    loop.stop();
  });
  // Injected code moves the clock: notify_changed() wakes the idle loop.
  qt::from_qt_after(20ms, [&] {
    log("move to 4999 ms");
    clock.move_to(deadline - 1ms);
  });
  qt::from_qt_after(60ms, [&] {
    log("move to 5000 ms");
    clock.move_to(deadline);
  });
  run(loop);
  EXPECT_EQ(log.items, (Strings{"move to 4999 ms", "move to 5000 ms", "timer at 5000 ms"}));
  ASSERT_GE(clock.idles.size(), 2u) << "the loop asks the clock when it idles: at the start and after the first move";
  for (auto& [next, io] : clock.idles) {
    EXPECT_EQ(next, deadline);
    EXPECT_FALSE(io);
  }
}

TEST_P(ClockTest, AnAnswerInThePastRunsTheLoopAgainAtOnce) {
  ManualClock clock;  // before the loop: outlives it
  QiEventLoop loop;
  // A minimal autojump: move to the next deadline, look again now.
  clock.answer = [&](time_point next) {
    clock.t = next;
    return std::chrono::steady_clock::time_point{};
  };
  loop.set_clock(&clock);
  Log log;
  const auto real0 = std::chrono::steady_clock::now();
  loop.call_later(1h, log.recorder("1 h"));
  loop.call_later(2h, [&] {
    log("2 h");
    loop.stop();
  });
  run(loop);
  EXPECT_EQ(log.items, (Strings{"1 h", "2 h"}));
  EXPECT_EQ(loop.time(), time_point(3h));
  EXPECT_LT(std::chrono::steady_clock::now() - real0, 10s);
}

TEST(Clock, IdleSaysWhetherFdsAreWatched) {
  ManualClock clock;  // before the loop: outlives it
  QiEventLoop loop;
  loop.set_clock(&clock);
  qt::Channel ch(qt::Kind::kPipe);
  loop.add_reader(ch.in, [] {});
  loop.call_later(1s, [] {});
  loop.call_soon([&] { qt::from_qt_after(20ms, [&] { loop.stop(); }); });
  loop.run_forever();
  ASSERT_FALSE(clock.idles.empty());
  EXPECT_EQ(clock.idles.back(), std::make_pair(clock.t + 1s, true));
  loop.remove_reader(ch.in);
}

TEST(Clock, TheSliceBudgetStaysOnRealTime) {
  // A frozen clock: were the budget read from it, one slice would run the
  // whole 20 ms chain.
  ManualClock clock;  // before the loop: outlives it
  QiEventLoop loop;
  loop.set_clock(&clock);
  loop.set_slice_budget(1ms);
  int steps = 0;
  std::function<void()> step = [&] {
    const auto until = std::chrono::steady_clock::now() + 100us;
    while (std::chrono::steady_clock::now() < until) {
    }
    if (++steps == 200)
      loop.stop();
    else
      loop.call_soon(step);
  };
  loop.call_soon(step);
  const auto slices0 = loop.stats().slices;
  loop.run_forever();
  EXPECT_GE(loop.stats().slices - slices0, 5u);
}

TEST(Clock, NotifyChangedInsideACallbackPostsNothing) {
  ManualClock clock;  // before the loop: outlives it
  QiEventLoop loop;
  loop.set_clock(&clock);
  uint64_t posted = 0;
  loop.call_soon([&] {
    posted = loop.stats().posted_wakeups;
    clock.move_to(clock.t + 1s);
    posted = loop.stats().posted_wakeups - posted;
    loop.stop();
  });
  loop.run_forever();
  EXPECT_EQ(posted, 0u);
}

TEST(Clock, SetClockIsRefusedWhileRunningWithTimersPendingOrOnAnotherThread) {
  ManualClock clock;  // before the loop: outlives it
  QiEventLoop loop;
  std::string running, other_thread;
  loop.call_soon([&] {
    try {
      loop.set_clock(&clock);
    } catch (const qi::RuntimeError& e) {
      running = e.what();
    }
    loop.stop();
  });
  loop.run_forever();
  EXPECT_NE(running.find("set_clock: the loop is running"), std::string::npos) << running;
  EXPECT_EQ(loop.get_clock(), nullptr);

  qi::TimerHandle t = loop.call_later(1s, [] {});
  try {
    loop.set_clock(&clock);
    ADD_FAILURE() << "set_clock with a timer pending must throw";
  } catch (const qi::RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("timers are pending"), std::string::npos) << e.what();
  }
  t.cancel();
  EXPECT_NO_THROW(loop.set_clock(&clock));
  EXPECT_NO_THROW(loop.set_clock(&clock)) << "the same clock again changes nothing";

  std::thread([&] {
    try {
      loop.set_clock(nullptr);
    } catch (const qi::RuntimeError& e) {
      other_thread = e.what();
    }
  }).join();
  EXPECT_NE(other_thread.find("thread that does not own the loop"), std::string::npos) << other_thread;
  EXPECT_EQ(loop.get_clock(), &clock);
}

// A clock tells its loop that it moved from the loop's thread only: from
// another, the loop may be reading it.
TEST(Clock, NotifyChangedFromAnotherThreadIsRefused) {
  ManualClock clock;
  QiEventLoop loop;
  loop.set_clock(&clock);
  std::string error;
  std::thread([&] {
    try {
      clock.move_to(time_point(2h));
    } catch (const qi::RuntimeError& e) {
      error = e.what();
    }
  }).join();
  EXPECT_NE(error.find("qi::Clock::notify_changed: called from a thread that does not own this QiEventLoop"),
            std::string::npos)
      << error;
  loop.set_clock(nullptr);
}

TEST(Clock, AClockServesOneLoopAtATime) {
  QiEventLoop a, b;
  ManualClock clock;
  a.set_clock(&clock);
  try {
    b.set_clock(&clock);
    ADD_FAILURE() << "a clock serving a loop must be refused by another";
  } catch (const qi::RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("already serves another QiEventLoop"), std::string::npos) << e.what();
  }
  a.set_clock(nullptr);
  EXPECT_NO_THROW(b.set_clock(&clock));
  EXPECT_EQ(clock.loop(), &b);
}

TEST(Clock, DestroyingTheLoopFirstDetachesTheClock) {
  ManualClock clock;
  {
    QiEventLoop loop;
    loop.set_clock(&clock);
    loop.call_later(1s, [] {});  // pending until close()
  }
  EXPECT_EQ(clock.loop(), nullptr);
}

TEST(Clock, DestroyingAnIdleClockDetachesIt) {
  QiEventLoop loop;
  {
    ManualClock clock;
    loop.set_clock(&clock);
  }
  EXPECT_EQ(loop.get_clock(), nullptr);
  const auto real = std::chrono::steady_clock::now();
  EXPECT_LE(loop.time() - real, 1s) << "back on the real clock";
}

TEST(ClockDeathTest, DestroyingAClockWhoseTimersArePendingIsFatal) {
  EXPECT_DEATH(
      {
        QiEventLoop loop;
        auto* clock = new ManualClock;
        loop.set_clock(clock);
        loop.call_later(1s, [] {});
        delete clock;
      },
      "qi::Clock destroyed while a QiEventLoop uses it and timers are pending");
}
