// bench_qt.cpp — the Qt bridge and threads (issue 9), qiloop beside what a Qt
// developer uses today, in the same binary and run:
//
//   1. signal -> resumed coroutine    a coroutine awaits `ping(int)`, N rounds
//      ns per round trip, and ns from the emit to the coroutine running again
//   2. to_thread round trip           v = f(v) on a worker, result back on the
//      loop's thread, N sequential rounds                 ns per round trip
//   3. a stream of 100,000 emissions  `value(int)` emitted in bursts of 1,000,
//      consumed in order by one coroutine                 ns per emission
//
// Contenders (qiloop first, then its peers; all interleaved, one run of each
// per benchmark iteration, so that every ratio compares runs made under the
// same machine load — see bench::interleaved):
//
// 1. Each round, the coroutine posts one queued call
//    (QMetaObject::invokeMethod(Qt::QueuedConnection), one Qt event) that
//    emits ping(i) on the loop's thread, then awaits the signal; the round
//    ends when the coroutine runs again with i. Same emission for everyone.
//      qiloop   `int v = co_await qi::asyncsignal(&e, &Emitter::ping)` in a
//               qi::Coro task (nested mode, run_until_complete).
//      QCoro    `int v = co_await qCoro(&e, &Emitter::ping)` in a QCoro::Task
//               driven by a QEventLoop: what a QCoro user writes. QCoro 0.8
//               connects with Qt::QueuedConnection, so its resumption costs
//               a second posted event after the emit: that is QCoro's design,
//               and its users pay it.
//      Qt slot (floor)  no coroutine: a lambda connected to ping() posts the
//               next round. What the same rounds cost Qt alone; qiloop is
//               not expected to beat it (no target), it shows what the
//               coroutine adds.
//      qiloop, emit in call_soon  qiloop again, the emission made by a loop
//               callback instead of a Qt event (no target: another emission
//               mechanism): what qiloop's part of the round costs, Qt's event
//               queue left out.
//    "emit to resume" is the time from just before the emit to the first
//    statement after the co_await (after the slot's first statement, for the
//    floor), summed over the rounds.
// 2. v = f(v) N times, f returning its argument + 1, each round waiting for
//    the previous result on the loop's thread.
//      qiloop   `v = co_await qi::to_thread(plus_one, v)` on the loop's
//               default executor.
//      QtConcurrent+QFutureWatcher  the normal Qt way, callback style: one
//               QFutureWatcher<int> (reused: cheaper than one per call) whose
//               finished() slot reads the result and starts the next
//               QtConcurrent::run(plus_one, v); QEventLoop-driven.
//      QCoro co_await QFuture  `v = co_await QtConcurrent::run(plus_one, v)`
//               in a QCoro::Task (QCoro makes a QFutureWatcher per await).
//      asyncio, uvloop  `v = await asyncio.to_thread(plus_one, v)` (script
//               benchmarks/peers/qt_peers.py, run by this binary before the
//               C++ scenarios with the same N; median of 3 runs).
// 3. The producer emits value(i) for i = 0 .. N-1 from the loop's thread,
//    kBurst = 1,000 emissions per posted event; the next burst is posted when
//    the consumer has read the last item of the previous one, so at most one
//    burst waits: below qi::signal_stream's default bound (1,024), whose
//    overflow policy (drop the oldest) must never act here. The consumer
//    reads the N values in order and checks their sum.
//      qiloop   `qi::SignalStream<int> s = qi::signal_stream(&e, &Emitter::value);`
//               then N times `auto v = co_await s.next(); sum += *v;`.
//      QCoro listener  `qCoroSignalListener(&e, &Emitter::value)`, QCoro's
//               stream of emissions (an AsyncGenerator, QCoro >= 0.7), read
//               with `co_await ++it`. The fair peer: repeated
//               `co_await qCoro(&e, &Emitter::value)` connects for one
//               emission per await, so the other 999 of a burst would reach
//               nothing and be lost; it could only be measured by emitting
//               one value per posted event, which is scenario 1, not a
//               stream. The listener keeps every emission (each one is a
//               queued call, then a deque entry, unbounded).
//      Qt slot (floor)  a lambda connected to value() sums: no coroutine.
//
// qiloop's contenders are compiled when their headers exist
// (<qiloop/qt/asyncsignal.h>, <qiloop/qt/signal_stream.h>,
// <qiloop/threads/to_thread.h>); without one, that scenario reports its peers
// alone and its targets read "n/a". QCoro is optional, as for bench_coro (CMake
// defines QILOOP_BENCH_QCORO when it finds QCoro6).
// Goals (checked in the summary): qiloop faster than each peer; the floors
// carry no target.
#include "bench_support.h"
#include "qt_run.h"

#include <qiloop/qiloop.h>

#if __has_include(<qiloop/qt/asyncsignal.h>)
#include <qiloop/qt/asyncsignal.h>
#define QILOOP_BENCH_ASYNCSIGNAL 1
#else
#define QILOOP_BENCH_ASYNCSIGNAL 0
#endif
#if __has_include(<qiloop/qt/signal_stream.h>)
#include <qiloop/qt/signal_stream.h>
#define QILOOP_BENCH_SIGNAL_STREAM 1
#else
#define QILOOP_BENCH_SIGNAL_STREAM 0
#endif
#if __has_include(<qiloop/threads/to_thread.h>)
#include <qiloop/threads/to_thread.h>
#define QILOOP_BENCH_TO_THREAD 1
#else
#define QILOOP_BENCH_TO_THREAD 0
#endif

#include <QtConcurrent/QtConcurrentRun>
#include <QtCore/QFutureWatcher>
#include <QtCore/QMetaObject>
#include <QtCore/QObject>

#ifdef QILOOP_BENCH_QCORO
#include <QCoro/QCoroAsyncGenerator>
#include <QCoro/QCoroFuture>
#include <QCoro/QCoroSignal>
#include <QCoro/QCoroTask>
#endif

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

// Named (not anonymous): moc's code refers to the class by its qualified name.
namespace bench_qt {

// The sender of every scenario. Emissions come from the loop's thread, each
// posted as one queued call, the same way for every contender.
class Emitter : public QObject {
  Q_OBJECT

 public:
  bench::Clock::time_point emitted_at{};  // just before the last ping

  void fire_ping(int v) {
    emitted_at = bench::Clock::now();
    emit ping(v);
  }
  // One Qt event that emits ping(v).
  void post_ping(int v) {
    QMetaObject::invokeMethod(this, [this, v] { fire_ping(v); }, Qt::QueuedConnection);
  }
  // One Qt event that emits value(first), ..., value(first + count - 1).
  void post_burst(int64_t first, int64_t count) {
    QMetaObject::invokeMethod(
        this,
        [this, first, count] {
          for (int64_t i = first; i < first + count; ++i) emit value(static_cast<int>(i));
        },
        Qt::QueuedConnection);
  }

 signals:
  void ping(int v);
  void value(int v);
};

}  // namespace bench_qt

namespace {

using namespace bench;
using bench_qt::Emitter;

namespace scenario {
constexpr const char* kSignal = "1 signal -> coroutine, round";
constexpr const char* kSignalResume = "1 signal -> coroutine, resume";
constexpr const char* kToThread = "2 to_thread round trip";
constexpr const char* kStream = "3 100,000 emissions, stream";
}  // namespace scenario

namespace metric {
constexpr const char* kPerRound = "ns per round trip";
constexpr const char* kEmitToResume = "ns emit to resume";
constexpr const char* kPerEmission = "ns per emission";
}  // namespace metric

constexpr const char* kQiloop = "qiloop";
constexpr const char* kQiloopInLoop = "qiloop, emit in call_soon";
constexpr const char* kQCoro = "QCoro";
constexpr const char* kQCoroFuture = "QCoro co_await QFuture";
constexpr const char* kQCoroListener = "QCoro listener";
constexpr const char* kWatcher = "QtConcurrent+QFutureWatcher";
constexpr const char* kFloor = "Qt slot (floor)";

constexpr int64_t kBurst = 1000;

struct Sizes {
  int64_t rounds, to_thread, emissions;
};
Sizes sizes(const Options& o) {
  return {o.pick<int64_t>(20'000, 1'000), o.pick<int64_t>(5'000, 200), o.pick<int64_t>(100'000, 10'000)};
}

// A contender that computed a wrong result is a broken benchmark: stop loudly
// (an exception would be lost inside a QCoro task or a Qt slot).
void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "bench_qt: %s\n", what);
  std::abort();
}

// What a scenario-1 run returns: its wall time, or the emit-to-resume sum.
enum class Measure { kRound, kEmitToResume };

struct Rounds {
  Clock::time_point t0 = Clock::now();
  double resumed = 0;  // seconds from emits to resumptions, summed
  int64_t sum = 0;
  void got(const Emitter& e, int v) {
    resumed += seconds(Clock::now() - e.emitted_at);
    sum += v;
  }
  double result(Measure m, int64_t n) const {
    const double total = seconds(Clock::now() - t0);
    check(sum == n * (n - 1) / 2, "signal rounds: wrong sum");
    return m == Measure::kRound ? total : resumed;
  }
};

int plus_one(int i) { return i + 1; }

// Scenario 3's pacing: after the consumer has read `read` items, the next
// burst (if any) is posted once the previous one is all read.
void start_bursts(Emitter& e, int64_t n) { e.post_burst(0, std::min(kBurst, n)); }
void after_item(Emitter& e, int64_t read, int64_t n) {
  if (read % kBurst == 0 && read < n) e.post_burst(read, std::min(kBurst, n - read));
}
void check_stream_sum(int64_t sum, int64_t n) { check(sum == n * (n - 1) / 2, "stream: wrong sum (a lost emission?)"); }

// === qiloop ==============================================================================

#if QILOOP_BENCH_ASYNCSIGNAL
// With `emit_in`, the emission is a callback of that loop (call_soon), not a
// Qt event: the variant kQiloopInLoop.
qi::Coro<double> qi_signal_rounds(Emitter& e, int64_t n, Measure m, QiEventLoop* emit_in) {
  Rounds r;
  for (int64_t i = 0; i < n; ++i) {
    if (emit_in)
      emit_in->call_soon([&e, i] { e.fire_ping(static_cast<int>(i)); });
    else
      e.post_ping(static_cast<int>(i));
    int v = co_await qi::asyncsignal(&e, &Emitter::ping);
    r.got(e, v);
  }
  co_return r.result(m, n);
}
#endif

#if QILOOP_BENCH_TO_THREAD
qi::Coro<double> qi_to_thread_rounds(int64_t n) {
  int v = 0;
  const auto t0 = Clock::now();
  for (int64_t i = 0; i < n; ++i) v = co_await qi::to_thread(plus_one, v);
  const double s = seconds(Clock::now() - t0);
  check(v == n, "qi::to_thread: wrong result");
  co_return s;
}
#endif

#if QILOOP_BENCH_SIGNAL_STREAM
qi::Coro<double> qi_stream(Emitter& e, int64_t n) {
  auto s = qi::signal_stream(&e, &Emitter::value);
  int64_t sum = 0;
  const auto t0 = Clock::now();
  start_bursts(e, n);
  for (int64_t read = 1; read <= n; ++read) {
    auto v = co_await s.next();
    check(static_cast<bool>(v), "qi::signal_stream ended early");
    sum += *v;
    after_item(e, read, n);
  }
  const double t = seconds(Clock::now() - t0);
  check_stream_sum(sum, n);
  co_return t;
}
#endif

// === QCoro ===============================================================================

#ifdef QILOOP_BENCH_QCORO
QCoro::Task<> qc_signal_rounds(Emitter& e, int64_t n, Measure m, double* out, QtRun* run) {
  Rounds r;
  for (int64_t i = 0; i < n; ++i) {
    e.post_ping(static_cast<int>(i));
    int v = co_await qCoro(&e, &Emitter::ping);
    r.got(e, v);
  }
  *out = r.result(m, n);
  run->finish();
}

QCoro::Task<> qc_future_rounds(int64_t n, double* out, QtRun* run) {
  int v = 0;
  const auto t0 = Clock::now();
  for (int64_t i = 0; i < n; ++i) v = co_await QtConcurrent::run(&plus_one, v);
  *out = seconds(Clock::now() - t0);
  check(v == n, "QCoro co_await QFuture: wrong result");
  run->finish();
}

QCoro::Task<> qc_stream(Emitter& e, int64_t n, double* out, QtRun* run) {
  auto listener = qCoroSignalListener(&e, &Emitter::value);
  int64_t sum = 0;
  const auto t0 = Clock::now();
  start_bursts(e, n);
  auto it = co_await listener.begin();
  for (int64_t read = 1; read <= n; ++read) {
    check(it != listener.end(), "qCoroSignalListener ended early");
    sum += *it;
    after_item(e, read, n);
    if (read < n) co_await ++it;
  }
  *out = seconds(Clock::now() - t0);
  check_stream_sum(sum, n);
  run->finish();
}

// Runs a QCoro task made by start(out, run) to its end on a QEventLoop;
// returns what it measured.
template <class Start>
double qc_run(Start start) {
  double s = 0;
  QtRun run;
  auto task = start(&s, &run);
  run.wait(task);
  return s;
}
#endif  // QILOOP_BENCH_QCORO

// === Qt, no coroutine ====================================================================

double floor_signal_rounds(Emitter& e, int64_t n, Measure m) {
  QtRun run;
  Rounds r;
  int64_t i = 0;
  auto c = QObject::connect(&e, &Emitter::ping, [&](int v) {
    r.got(e, v);
    if (++i == n)
      run.finish();
    else
      e.post_ping(static_cast<int>(i));
  });
  e.post_ping(0);
  run.wait();
  QObject::disconnect(c);
  return r.result(m, n);
}

double watcher_rounds(int64_t n) {
  QtRun run;
  QFutureWatcher<int> watcher;
  int v = 0;
  QObject::connect(&watcher, &QFutureWatcher<int>::finished, [&] {
    v = watcher.result();
    if (v == n)
      run.finish();
    else
      watcher.setFuture(QtConcurrent::run(&plus_one, v));
  });
  const auto t0 = Clock::now();
  watcher.setFuture(QtConcurrent::run(&plus_one, v));
  run.wait();
  const double s = seconds(Clock::now() - t0);
  check(v == n, "QtConcurrent+QFutureWatcher: wrong result");
  return s;
}

double floor_stream(Emitter& e, int64_t n) {
  QtRun run;
  int64_t read = 0, sum = 0;
  auto c = QObject::connect(&e, &Emitter::value, [&](int v) {
    sum += v;
    if (++read == n) run.finish();
    after_item(e, read, n);
  });
  const auto t0 = Clock::now();
  start_bursts(e, n);
  run.wait();
  const double t = seconds(Clock::now() - t0);
  QObject::disconnect(c);
  check_stream_sum(sum, n);
  return t;
}

// === Interleaved scenarios ===================================================================

void signal_rounds(benchmark::State& state, Measure m) {
  const int64_t n = state.range(0);
  Emitter e;
  std::vector<Contender> cs;
#if QILOOP_BENCH_ASYNCSIGNAL
  QiEventLoop loop;
  cs.push_back({kQiloop, n, [&](int64_t k) { return loop.run_until_complete(qi_signal_rounds(e, k, m, nullptr)); }});
  cs.push_back(
      {kQiloopInLoop, n, [&](int64_t k) { return loop.run_until_complete(qi_signal_rounds(e, k, m, &loop)); }});
#endif
#ifdef QILOOP_BENCH_QCORO
  cs.push_back({kQCoro, n, [&](int64_t k) {
                  return qc_run([&](double* out, QtRun* run) { return qc_signal_rounds(e, k, m, out, run); });
                }});
#endif
  cs.push_back({kFloor, n, [&](int64_t k) { return floor_signal_rounds(e, k, m); }});
  if (m == Measure::kRound)
    interleaved(state, scenario::kSignal, metric::kPerRound, std::move(cs));
  else
    interleaved(state, scenario::kSignalResume, metric::kEmitToResume, std::move(cs));
}

void to_thread_rounds(benchmark::State& state) {
  const int64_t n = state.range(0);
  std::vector<Contender> cs;
#if QILOOP_BENCH_TO_THREAD
  QiEventLoop loop;
  cs.push_back({kQiloop, n, [&](int64_t k) { return loop.run_until_complete(qi_to_thread_rounds(k)); }});
#endif
  cs.push_back({kWatcher, n, &watcher_rounds});
#ifdef QILOOP_BENCH_QCORO
  cs.push_back({kQCoroFuture, n, [](int64_t k) {
                  return qc_run([k](double* out, QtRun* run) { return qc_future_rounds(k, out, run); });
                }});
#endif
  interleaved(state, scenario::kToThread, metric::kPerRound, std::move(cs));
#if QILOOP_BENCH_TO_THREAD
  loop.run_until_complete(loop.shutdown_default_executor());
#endif
}

void stream(benchmark::State& state) {
  const int64_t n = state.range(0);
  Emitter e;
  std::vector<Contender> cs;
#if QILOOP_BENCH_SIGNAL_STREAM
  QiEventLoop loop;
  cs.push_back({kQiloop, n, [&](int64_t k) { return loop.run_until_complete(qi_stream(e, k)); }});
#endif
#ifdef QILOOP_BENCH_QCORO
  cs.push_back({kQCoroListener, n, [&](int64_t k) {
                  return qc_run([&](double* out, QtRun* run) { return qc_stream(e, k, out, run); });
                }});
#endif
  cs.push_back({kFloor, n, [&](int64_t k) { return floor_stream(e, k); }});
  interleaved(state, scenario::kStream, metric::kPerEmission, std::move(cs));
}

// === Registration ===========================================================================

const char* yes_no(bool b) { return b ? "yes" : "no"; }

void register_all(const Options& o) {
  const Sizes s = sizes(o);
  if (!QILOOP_BENCH_ASYNCSIGNAL || !QILOOP_BENCH_SIGNAL_STREAM || !QILOOP_BENCH_TO_THREAD)
    std::fprintf(stderr,
                 "bench_qt: built without some of qiloop's Qt bridge (asyncsignal %s, signal_stream %s, "
                 "to_thread %s): those scenarios report their peers alone\n",
                 yes_no(QILOOP_BENCH_ASYNCSIGNAL), yes_no(QILOOP_BENCH_SIGNAL_STREAM), yes_no(QILOOP_BENCH_TO_THREAD));
#ifndef QILOOP_BENCH_QCORO
  std::fprintf(stderr, "bench_qt: built without QCoro (Debian: qcoro-qt6-dev): no QCoro peers\n");
#endif
  run_python_peers("bench_qt", "qt_peers.py", {std::to_string(s.to_thread), o.smoke ? "1" : "3"},
                   {{"to_thread", scenario::kToThread, metric::kPerRound}});

  // Goal: qiloop faster than each peer (time ratio < 1); floors: no target.
  add_target({scenario::kSignal, metric::kPerRound, Relation::kRatioTo, kQCoro, Compare::kAtMost, 1.0});
  add_target({scenario::kSignalResume, metric::kEmitToResume, Relation::kRatioTo, kQCoro, Compare::kAtMost, 1.0});
  for (const char* peer : {kWatcher, kQCoroFuture, "asyncio", "uvloop"})
    add_target({scenario::kToThread, metric::kPerRound, Relation::kRatioTo, peer, Compare::kAtMost, 1.0});
  add_target({scenario::kStream, metric::kPerEmission, Relation::kRatioTo, kQCoroListener, Compare::kAtMost, 1.0});

  const int iterations = o.pick(9, 1);
  auto add = [&](const char* name, auto fn, int64_t n) {
    benchmark::RegisterBenchmark(name, fn)->Arg(n)->UseManualTime()->Iterations(iterations)->Unit(
        benchmark::kMillisecond);
  };
  add("signal_round/interleaved", [](benchmark::State& st) { signal_rounds(st, Measure::kRound); }, s.rounds);
  add("signal_resume/interleaved", [](benchmark::State& st) { signal_rounds(st, Measure::kEmitToResume); },
      s.rounds);
  add("to_thread/interleaved", &to_thread_rounds, s.to_thread);
  add("stream/interleaved", &stream, s.emissions);
}

}  // namespace

QILOOP_BENCH_MAIN(register_all)

#include "bench_qt.moc"
