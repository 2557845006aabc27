// Timer semantics on virtual time, where they can be checked exactly:
// (deadline, scheduling order), never early by a single nanosecond, a
// callback running at exactly its deadline. The real-time versions live in
// event_loop_test.cpp; these are written with the test kit.
#include <qiloop/testing.h>

#include <chrono>
#include <string>
#include <vector>

using namespace std::chrono_literals;
using Strings = std::vector<std::string>;

namespace {

std::string ms(const QiEventLoop& loop) {
  return std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(loop.time().time_since_epoch()).count());
}

}  // namespace

QILOOP_TEST_VT(TimersVt, EqualDeadlinesRunInSchedulingOrderAtExactlyTheirTime) {
  QiEventLoop& loop = qi::get_running_loop();
  Strings log;
  auto rec = [&](std::string s) { return [&, s] { log.push_back(s + "@" + ms(loop)); }; };
  const auto t0 = loop.time() + 3ms;
  loop.call_at(t0 + 2ms, rec("late"));
  loop.call_at(t0, rec("tie 1"));
  loop.call_at(t0, rec("tie 2"));
  loop.call_at(t0 + 1ms, rec("middle"));
  loop.call_at(t0, rec("tie 3"));
  co_await qi::sleep(1h);
  EXPECT_EQ(log, (Strings{"tie 1@3", "tie 2@3", "tie 3@3", "middle@4", "late@5"}));
}

QILOOP_TEST_VT(TimersVt, EachCallbackRunsAtExactlyItsDeadline) {
  QiEventLoop& loop = qi::get_running_loop();
  std::vector<QiEventLoop::duration> lateness;
  std::vector<qi::TimerHandle> handles;
  for (int i = 0; i < 30; ++i) {
    auto delay = std::chrono::microseconds(37 * i);
    auto index = handles.size();
    handles.push_back(loop.call_later(delay, [&, index] { lateness.push_back(loop.time() - handles[index].when()); }));
    EXPECT_EQ(handles.back().when(), loop.time() + delay);
  }
  co_await qi::sleep(1s);
  EXPECT_EQ(lateness, std::vector<QiEventLoop::duration>(30, QiEventLoop::duration::zero()));
}

QILOOP_TEST_VT(TimersVt, NeverEarlyByOneNanosecond) {
  QiEventLoop& loop = qi::get_running_loop();
  auto& clock = qi::testing::clock();
  clock.set_autojump(false);
  bool ran = false;
  loop.call_later(10ms, [&] { ran = true; });
  clock.advance(10ms - 1ns);
  co_await qi::sleep(0ms);
  co_await qi::sleep(0ms);
  EXPECT_FALSE(ran);
  clock.advance(1ns);
  co_await qi::sleep(0ms);
  co_await qi::sleep(0ms);
  EXPECT_TRUE(ran);
}

QILOOP_TEST_VT(TimersVt, PeriodicSleepersInterleaveByDeadlineThenByWhoScheduledFirst) {
  // Ticks every 2 s and every 3 s: at 6 s both are due; the 3 s sleeper
  // scheduled that deadline at 3 s, the 2 s one only at 4 s, so it goes first.
  QiEventLoop& loop = qi::get_running_loop();
  Strings log;
  auto ticker = [&](std::string name, std::chrono::seconds period) -> qi::Coro<void> {
    for (int i = 0; i < 3; ++i) {
      co_await qi::sleep(period);
      log.push_back(name + "@" + ms(loop));
    }
  };
  qi::Task<void> two = qi::create_task(ticker("2s", 2s));
  qi::Task<void> three = qi::create_task(ticker("3s", 3s));
  co_await two;
  co_await three;
  EXPECT_EQ(log, (Strings{"2s@2000", "3s@3000", "2s@4000", "3s@6000", "2s@6000", "3s@9000"}));
}

QILOOP_TEST_VT(TimersVt, ADeadlineInThePastIsDueNowAndTimeDoesNotMove) {
  QiEventLoop& loop = qi::get_running_loop();
  const auto t0 = loop.time();
  Strings log;
  loop.call_at(t0 - 1h, [&] { log.push_back("past@" + ms(loop)); });
  loop.call_later(0s, [&] { log.push_back("zero@" + ms(loop)); });
  co_await qi::sleep(0ms);
  co_await qi::sleep(0ms);
  EXPECT_EQ(log, (Strings{"past@0", "zero@0"}));
  EXPECT_EQ(loop.time(), t0);
}

QILOOP_TEST_VT(TimersVt, ADeadlineBeyondTheClockNeverRuns) {
  QiEventLoop& loop = qi::get_running_loop();
  bool ran = false;
  qi::TimerHandle never = loop.call_later(std::chrono::seconds::max(), [&] { ran = true; });
  EXPECT_EQ(never.when(), QiEventLoop::time_point::max());
  co_await qi::sleep(24h * 365);
  EXPECT_FALSE(ran);
  never.cancel();
}

QILOOP_TEST_VT(TimersVt, ACancelledTimerIsSkippedAndItsDeadlineNotJumpedTo) {
  QiEventLoop& loop = qi::get_running_loop();
  bool ran = false;
  qi::TimerHandle t = loop.call_later(1s, [&] { ran = true; });
  t.cancel();
  const auto t0 = loop.time();
  co_await qi::sleep(2s);
  EXPECT_FALSE(ran);
  EXPECT_EQ(loop.time() - t0, 2s);
  EXPECT_EQ(qi::testing::clock().autojumps(), 1u);
}
