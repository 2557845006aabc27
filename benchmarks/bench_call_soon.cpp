// Scenarios 1 and 2: call_soon batch and chain, against Qt's queued
// QMetaObject::invokeMethod (one posted event per callback).
#include "scenarios.h"

namespace {

using namespace bench;

void register_all(const Options& o) {
  add_target({scenario::kBatch, metric::kCallbacksPerSec, Relation::kValue, "", Compare::kAtLeast, 25e6});
  add_target({scenario::kBatch, metric::kCallbacksPerSec, Relation::kRatioTo, "Qt", Compare::kAtLeast, 5});
  add_target({scenario::kChain, metric::kStepsPerSec, Relation::kValue, "", Compare::kAtLeast, 8e6});
  add_target({scenario::kChain, metric::kStepsPerSec, Relation::kRatioTo, "Qt", Compare::kAtLeast, 5});
  add_call_soon_batch<QiDriver>(o);
  add_call_soon_batch<QtDriver>(o);
  add_call_soon_chain<QiDriver>(o);
  add_call_soon_chain<QtDriver>(o);
}

}  // namespace

QILOOP_BENCH_MAIN(register_all)
