// Scenario 5: call_soon_threadsafe from a second thread (each call returning
// its handle) against Qt's queued invokeMethod from a thread; and the round
// trip between two threads' loops against an eventfd and a condition-variable
// ping-pong between the same two threads, on one CPU and across two.
#include "scenarios.h"

namespace {

using namespace bench;

void register_all(const Options& o) {
  add_target({scenario::kThreadsafe, metric::kCallbacksPerSec, Relation::kValue, "", Compare::kAtLeast, 4e6});
  add_target({scenario::kThreadsafe, metric::kCallbacksPerSec, Relation::kRatioTo, "Qt", Compare::kAtLeast, 3});
  add_threadsafe_burst<QiDriver>(o);
  add_threadsafe_burst<QtDriver>(o);
  add_ping_pong(o, QiDriver::kName, &loop_ping_pong<QiDriver>);
  add_ping_pong(o, QtDriver::kName, &loop_ping_pong<QtDriver>);
  add_ping_pong(o, "eventfd", &eventfd_ping_pong);
  add_ping_pong(o, "condvar", &condvar_ping_pong);
}

}  // namespace

QILOOP_BENCH_MAIN(register_all)
