// Scenarios 3 and 4: call_later / cancel with 100k timers pending, when the
// last of 100k random timers fires, and how late a 1 ms timer runs — against
// QTimer (Qt::PreciseTimer) and, for lateness, a bare sleep_for(1 ms) and a
// bare timerfd.
//
// Qt keeps its timers in a list sorted by insertion (O(n) per start and
// stop), so 100k QTimers would take seconds to set up: Qt runs with fewer,
// and its per-op cost is extrapolated to 100k pending.
#include "scenarios.h"

namespace {

using namespace bench;

void register_all(const Options& o) {
  add_target({scenario::kTimerOps, metric::kScheduleNs, Relation::kValue, "", Compare::kAtMost, 60});
  add_target({scenario::kTimerOps, metric::kCancelNs, Relation::kValue, "", Compare::kAtMost, 40});
  add_target({scenario::kTimerLastFire, metric::kLastFireMs, Relation::kValue, "", Compare::kAtMost, 105});
  add_target({scenario::kLateness, metric::kEarly, Relation::kValue, "", Compare::kAtMost, 0});
  add_target({scenario::kLateness, metric::kP50, Relation::kExcessOver, kSleepFloor, Compare::kAtMost, 30});
  add_target({scenario::kLateness, metric::kP50, Relation::kExcessOver, "Qt", Compare::kAtMost, 0});
  add_target({scenario::kLateness, metric::kP99, Relation::kExcessOver, kSleepFloor, Compare::kAtMost, 50});

  add_timer_ops<QiDriver>(o, {kNominalPending});
  add_timer_ops<QtDriver>(o, {o.pick<int64_t>(2'500, 500), o.pick<int64_t>(10'000, 2'000)});
  const int64_t timers = o.pick(100'000, 20'000);
  add_timers_last_fire<QiDriver>(o, timers, timers);
  add_timers_last_fire<QtDriver>(o, o.pick(10'000, 2'000), timers);
  add_lateness(o, kSleepFloor, &sleep_lateness);
  add_lateness(o, kTimerfdFloor, &timerfd_lateness);
  add_lateness(o, QiDriver::kName, &timer_lateness<QiDriver>);
  add_lateness(o, QtDriver::kName, &timer_lateness<QtDriver>);
}

}  // namespace

QILOOP_BENCH_MAIN(register_all)
