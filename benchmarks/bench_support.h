// bench_support.h — what every benchmark binary shares: the --smoke switch,
// main(), timing and percentiles, CPU pinning, and the end-of-run summary that
// sets qiloop's figures beside its peers' and checks the targets (ratios to a peer of the same run, or bounds).
//
//   void register_all(const bench::Options& o) {
//     // qiloop's callbacks/s at least 5 times Qt's, checked at the end
//     bench::add_target({scenario::kBatch, metric::kCallbacksPerSec, bench::Relation::kRatioTo, "Qt",
//                        bench::Compare::kAtLeast, 5});
//     bench::add_call_soon_batch<bench::QiDriver>(o);  // scenarios.h
//     bench::add_call_soon_batch<bench::QtDriver>(o);
//   }
//   QILOOP_BENCH_MAIN(register_all)
//
// Every benchmark reports its headline figure twice: as a Google Benchmark
// counter (so --benchmark_format=json carries it) and through record(), which
// feeds the summary table printed after the run. A peer's run also gets the
// counter "qiloop/this <metric>" once qiloop's figure for the same metric is
// known, so register qiloop's variant of a scenario before its peers'.
#pragma once

#include <benchmark/benchmark.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace bench {

using Clock = std::chrono::steady_clock;

struct Options {
  bool smoke = false;  // --smoke: sizes shrunk so the binary runs in seconds (CI)
  template <class T>
  T pick(T full, T smoke_value) const {
    return smoke ? smoke_value : full;
  }
};

inline double seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
inline double micros(Clock::duration d) { return std::chrono::duration<double, std::micro>(d).count(); }

// Runs the benchmark's iterations, each timed by `body`, which returns the
// seconds it measured (so set-up it does untimed stays out). Register the
// benchmark with UseManualTime(). Returns the total seconds measured.
template <class Body>
double run_timed(benchmark::State& state, Body&& body) {
  double total = 0;
  for (auto _ : state) {
    double s = body();
    state.SetIterationTime(s);
    total += s;
  }
  return total;
}

// Wall time of f().
template <class F>
double time_of(F&& f) {
  auto t0 = Clock::now();
  f();
  return seconds(Clock::now() - t0);
}

// Holds another thread until a loop callback opens it, so that the thread's
// work meets a loop that is already running.
class Gate {
 public:
  void open() { open_.store(true, std::memory_order_release); }
  void wait() const {
    while (!open_.load(std::memory_order_acquire)) std::this_thread::yield();
  }

 private:
  std::atomic<bool> open_{false};
};

// The median of v (the upper one for an even count); 0 when empty.
double median(std::vector<double> v);

// How the summary prints a figure.
enum class Unit { kRate, kNanoseconds, kMicroseconds, kMilliseconds, kCount };

// --- Interleaved contenders ----------------------------------------------------------
//
// Ratio scenarios run qiloop and its peers interleaved — one run of each per
// benchmark iteration — so that every ratio compares runs made under the same
// machine load.

// One implementation of an interleaved scenario: run(k) does k items and
// returns the seconds it measured; `items` is k for one measured run.
struct Contender {
  const char* impl;
  int64_t items;
  std::function<double(int64_t)> run;
};

// How a figure measured in ns per item is shown in the summary: as is, or
// converted by a monotonic function (a rate: items per second, MiB/s), so
// that the median of the converted runs is the converted median.
struct Shown {
  Unit unit = Unit::kNanoseconds;
  double (*from_ns)(double ns) = nullptr;  // null: the ns themselves
  double operator()(double ns) const { return from_ns ? from_ns(ns) : ns; }
};

// Each benchmark iteration runs every contender once, in order (qiloop first;
// its time is the iteration's manual time). Records each contender's median
// ns per item (or `shown` of it); the peers' figures also go to counters
// "<impl> <metric>". Register it with UseManualTime().
void interleaved(benchmark::State& state, const char* scen, const char* met, std::vector<Contender> cs,
                 Shown shown = {});

// --- Distributions ---------------------------------------------------------------

struct Distribution {
  double p50 = 0, p99 = 0, max = 0, min = 0;
  std::size_t negative = 0;  // samples below zero (a timer that fired early)
};
// Nearest-rank percentiles of the samples.
Distribution distribution(std::vector<double> samples);
// Several runs of one measurement, summarized as the targets ask ("median of
// 3 runs"): the median of the runs' p50s and of their p99s; the largest max
// and the total count of negative samples over all runs.
Distribution median_of_runs(const std::vector<Distribution>& runs);

// How often the calling thread has been preempted so far (involuntary
// context switches): on a busy machine, what latency figures owe to others.
long preemptions();

// --- CPU placement ------------------------------------------------------------------

// The CPUs this thread may run on, ascending.
std::vector<int> allowed_cpus();
// Restricts the calling thread to one CPU.
void pin_this_thread(int cpu);

// Pins the calling thread for the scope's duration, then restores its mask.
class ScopedPin {
 public:
  explicit ScopedPin(int cpu);
  ScopedPin(const ScopedPin&) = delete;
  ScopedPin& operator=(const ScopedPin&) = delete;
  ~ScopedPin();

 private:
  std::vector<int> saved_;
};

// --- Python peers ----------------------------------------------------------------------
//
// A Python peer is a script in benchmarks/peers/ running the same programs on
// asyncio and on uvloop, run once per binary run, before the C++ scenarios.
// It prints one JSON object {"asyncio": {key: ns per item, ...}, "uvloop":
// {...}} (uvloop absent when not installed).

// Where a script's figure goes in the summary.
struct PeerFigure {
  const char* key;
  const char* scenario;
  const char* metric;
  Shown shown = {};  // the script reports ns per item
};

// Runs `script` (a file name in benchmarks/peers/) with `args` on Debian's
// python3 (python3 on PATH otherwise) and note()s each figure found, in ns,
// under the implementations "asyncio" and "uvloop". When Python or the script
// fails, says so on stderr and notes nothing (the targets then read n/a).
void run_python_peers(const char* program, const char* script, const std::vector<std::string>& args,
                      const std::vector<PeerFigure>& figures);

// --- Summary --------------------------------------------------------------------------

// Records `impl`'s figure for (scenario, metric) in the summary, replacing an
// earlier one (Google Benchmark calls a benchmark function more than once
// while it sizes the run; the last call is the one it reports). Also sets the
// counter `metric` on the run and, for a peer, "qiloop/this <metric>".
void record(benchmark::State& state, std::string_view scenario, std::string_view metric, Unit unit,
            std::string_view impl, double value);
// The same for the summary alone: a figure derived from other runs.
void note(std::string_view scenario, std::string_view metric, Unit unit, std::string_view impl, double value);
namespace metric {
inline constexpr const char* kP50 = "p50";
inline constexpr const char* kP99 = "p99";
inline constexpr const char* kMax = "max";
inline constexpr const char* kEarly = "early fires";
}  // namespace metric

// record() of a distribution in microseconds: p50, p99, max, and with `early`
// its count of negative samples.
void record_us(benchmark::State& state, std::string_view scenario, std::string_view impl, const Distribution& d,
               bool early = false);

// A target, checked against the summary at the end of the run:
//   kValue:      qiloop's figure            <cmp> bound
//   kRatioTo:    qiloop's figure / peer's   <cmp> bound
//   kExcessOver: qiloop's figure - peer's   <cmp> bound
enum class Relation { kValue, kRatioTo, kExcessOver };
enum class Compare { kAtLeast, kAtMost };
struct Target {
  std::string scenario;
  std::string metric;
  Relation relation;
  std::string peer;  // unused for kValue
  Compare compare;
  double bound;
};
void add_target(Target target);

// Prints the table of figures (with the ratios qiloop/peer) and the targets.
void print_summary(std::FILE* out, const char* program, bool smoke);

// The main of every benchmark binary: strips --smoke, initializes Google
// Benchmark, creates the QCoreApplication, registers, runs, summarizes.
int bench_main(int argc, char** argv, void (*register_all)(const Options&));

}  // namespace bench

#define QILOOP_BENCH_MAIN(register_all) \
  int main(int argc, char** argv) { return bench::bench_main(argc, argv, register_all); }
