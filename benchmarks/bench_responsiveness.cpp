// Scenario 6: how long Qt events wait while a callback chain runs flat out.
// qiloop runs many chain steps per Qt event dispatch and hands control back
// once per slice (1 ms by default), so an event waits up to a slice; a Qt
// invokeMethod chain interleaves events one by one but runs far fewer steps.
#include "scenarios.h"

namespace {

using namespace bench;

void register_all(const Options& o) {
  add_target({scenario::kQtWait, metric::kP99, Relation::kValue, "", Compare::kAtMost, 2000});
  add_qt_event_wait<QiDriver>(o);
  add_qt_event_wait<QtDriver>(o);
}

}  // namespace

QILOOP_BENCH_MAIN(register_all)
