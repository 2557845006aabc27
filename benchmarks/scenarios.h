// scenarios.h — the scheduler's benchmark scenarios, each written once over the
// driver interface (drivers.h) and registered per implementation by the
// add_* functions, qiloop first so that its peers can report "qiloop/this".
//
//   1. call_soon batch      n callbacks scheduled, then run
//   2. call_soon chain      each callback schedules the next
//   3. timers               schedule / cancel cost with many pending; when the
//                           last of many random timers fires
//   4. timer lateness       a 1 ms timer's delay past its deadline
//   5. threads              call_soon_threadsafe throughput; ping-pong RTT
//   6. Qt responsiveness    how long Qt events wait while a chain runs
//
// Every measurement runs the loop in nested mode: work is posted, run() runs
// the loop, and a callback stops it.
#pragma once

#include "bench_support.h"
#include "drivers.h"

#include <QtCore/QCoreApplication>
#include <QtCore/QEvent>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <future>
#include <iterator>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

namespace bench {

using namespace std::chrono_literals;

// Scenario and metric names: the summary and the targets match on them.
namespace scenario {
inline constexpr const char* kBatch = "1 call_soon batch";
inline constexpr const char* kChain = "2 call_soon chain";
inline constexpr const char* kTimerOps = "3 timers: 100k pending";
inline constexpr const char* kTimerLastFire = "3 timers: random, half cancelled";
inline constexpr const char* kLateness = "4 call_later(1 ms) lateness";
inline constexpr const char* kThreadsafe = "5 call_soon_threadsafe burst";
inline constexpr const char* kPingPongOneCpu = "5 ping-pong RTT, one CPU";
inline constexpr const char* kPingPongTwoCpus = "5 ping-pong RTT, two CPUs";
inline constexpr const char* kQtWait = "6 Qt event wait under a chain";
}  // namespace scenario

namespace metric {
inline constexpr const char* kCallbacksPerSec = "callbacks/s";
inline constexpr const char* kStepsPerSec = "steps/s";
inline constexpr const char* kScheduleNs = "schedule ns/op";
inline constexpr const char* kCancelNs = "cancel ns/op";
inline constexpr const char* kLoopNs = "loop run ns/timer";
inline constexpr const char* kLastFireMs = "last fire after sched. end";
inline constexpr const char* kSetupNs = "start+cancel ns/timer";
}  // namespace metric

// Registers fn (with extra arguments bound) as "<name>/<impl>", in ms.
template <class Fn, class... Bound>
benchmark::internal::Benchmark* add(const std::string& name, const char* impl, Fn fn, Bound... bound) {
  return benchmark::RegisterBenchmark((name + "/" + impl).c_str(), fn, bound...)->Unit(benchmark::kMillisecond);
}

// Runs f() inside a callback of the driver's loop, then stops the loop.
template <class Driver, class F>
void run_in_loop(Driver& driver, F&& f) {
  driver.post([&] {
    f();
    driver.stop();
  });
  driver.run();
}

// n delays uniform in [base, base + spread], the same for every implementation.
inline std::vector<std::chrono::nanoseconds> random_delays(std::size_t n, std::chrono::nanoseconds base,
                                                           std::chrono::nanoseconds spread) {
  std::mt19937_64 rng(20240611);
  std::uniform_int_distribution<int64_t> pick(0, spread.count());
  std::vector<std::chrono::nanoseconds> out(n);
  for (auto& d : out) d = base + std::chrono::nanoseconds(pick(rng));
  return out;
}

// The shape of the throughput scenarios (1, 2, 5): warm() once, untimed,
// then each benchmark iteration runs `n` items, timed by run(); records n per
// second as `metric` and returns the total seconds measured.
template <class Driver, class Warm, class Run>
double measure_rate(benchmark::State& state, Driver& driver, const char* scenario, const char* metric, int64_t n,
                    Warm&& warm, Run&& run) {
  warm();
  driver.mark();
  const long preempted_before = preemptions();
  const double total = run_timed(state, run);
  driver.annotate(state);
  // On a busy machine, how often others took the loop's thread away.
  state.counters["loop preempted"] =
      benchmark::Counter(static_cast<double>(preemptions() - preempted_before), benchmark::Counter::kAvgIterations);
  state.SetItemsProcessed(state.iterations() * n);
  record(state, scenario, metric, Unit::kRate, Driver::kName,
         static_cast<double>(n) * static_cast<double>(state.iterations()) / total);
  return total;
}

// --- 1. call_soon batch ----------------------------------------------------------------

template <class Driver>
void call_soon_batch(benchmark::State& state) {
  const int64_t n = state.range(0);
  Driver driver;
  int64_t ran = 0;
  double posting = 0;  // of the total: the part spent in post()
  auto batch = [&] {
    auto t0 = Clock::now();
    for (int64_t i = 0; i < n; ++i) driver.post([r = &ran] { ++*r; });
    driver.post([d = &driver] { d->stop(); });
    auto t1 = Clock::now();
    driver.run();
    posting += seconds(t1 - t0);
    return seconds(Clock::now() - t0);
  };
  // Warm-up on the same loop: node pools, queue capacity, the allocator.
  auto warm = [&] {
    batch();
    posting = 0;
  };
  const double total = measure_rate(state, driver, scenario::kBatch, metric::kCallbacksPerSec, n, warm, batch);
  if (ran != n * (static_cast<int64_t>(state.iterations()) + 1)) state.SkipWithError("callbacks were lost");
  const double count = static_cast<double>(n) * static_cast<double>(state.iterations());
  state.counters["post ns"] = posting / count * 1e9;
  state.counters["run ns"] = (total - posting) / count * 1e9;
}

template <class Driver>
void add_call_soon_batch(const Options& o) {
  add("call_soon_batch", Driver::kName, &call_soon_batch<Driver>)->Arg(o.pick(1'000'000, 20'000))->UseManualTime();
}

// --- 2. call_soon chain -----------------------------------------------------------------

// Each step schedules the next, until done(steps) says to stop the loop.
template <class Driver, class Done>
class Chain {
 public:
  Chain(Driver& driver, Done done) : driver_(driver), done_(std::move(done)) {}
  void start() { driver_.post([this] { step(); }); }
  int64_t steps() const { return steps_; }

 private:
  void step() {
    if (done_(++steps_))
      driver_.stop();
    else
      driver_.post([this] { step(); });
  }
  Driver& driver_;
  Done done_;
  int64_t steps_ = 0;
};

template <class Driver>
void call_soon_chain(benchmark::State& state) {
  const int64_t n = state.range(0);
  Driver driver;
  int64_t until = 0;
  Chain chain(driver, [&until](int64_t steps) { return steps >= until; });
  auto run_chain = [&](int64_t length) {
    until += length;
    return time_of([&] {
      chain.start();
      driver.run();
    });
  };
  measure_rate(
      state, driver, scenario::kChain, metric::kStepsPerSec, n, [&] { run_chain(n / 10); },
      [&] { return run_chain(n); });
}

template <class Driver>
void add_call_soon_chain(const Options& o) {
  add("call_soon_chain", Driver::kName, &call_soon_chain<Driver>)->Arg(o.pick(1'000'000, 20'000))->UseManualTime();
}

// --- 3. timers: schedule and cancel with many pending ---------------------------------------

// The scenario's pending count; an implementation too slow to reach it (Qt:
// its timer list is sorted by insertion, O(n) per start and stop) is measured
// at two smaller counts and the linear fit through them extrapolated to it.
inline constexpr int64_t kNominalPending = 100'000;

namespace detail {
struct TimerOpCost {
  double schedule_ns, cancel_ns;
};
// Per implementation, the per-op costs measured at each pending count.
inline std::map<std::string, std::map<int64_t, TimerOpCost>>& timer_op_costs() {
  static std::map<std::string, std::map<int64_t, TimerOpCost>> costs;
  return costs;
}
}  // namespace detail

// Args: pending timers, timers started then cancelled per iteration.
template <class Driver>
void timer_ops(benchmark::State& state) {
  const auto pending = static_cast<std::size_t>(state.range(0));
  const auto batch = static_cast<std::size_t>(state.range(1));
  Driver driver;
  typename Driver::Timers timers(driver, pending + batch, [](std::size_t) {});
  // Deadlines spread over the same 100 ms window an hour from now, for the
  // pending timers and for every later batch alike: a new timer lands at a
  // random place among the pending ones, not after all of them (relative
  // delays from a clock that moves on would make every insertion an append).
  // An hour, so that nothing fires while the loop runs between batches.
  const Clock::time_point window = Clock::now() + 1h;
  const auto offsets = random_delays(pending + batch, 0ns, 100ms);
  auto delay_of = [&](std::size_t i, Clock::time_point now) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(window + offsets[i] - now);
  };
  run_in_loop(driver, [&] {
    for (std::size_t i = 0; i < pending; ++i) timers.start(i, delay_of(i, Clock::now()));
  });
  std::vector<std::chrono::nanoseconds> delays(batch);
  double scheduling = 0, cancelling = 0, elsewhere = 0;
  auto one_batch = [&] {
    double s = 0, c = 0;
    const double wall = time_of([&] {
      run_in_loop(driver, [&] {
        const auto now = Clock::now();
        for (std::size_t j = 0; j < batch; ++j) delays[j] = delay_of(pending + j, now);
        auto t0 = Clock::now();
        for (std::size_t j = 0; j < batch; ++j) timers.start(pending + j, delays[j]);
        auto t1 = Clock::now();
        for (std::size_t i = pending; i < pending + batch; ++i) timers.cancel(i);
        auto t2 = Clock::now();
        // Dropping what start() returned is not part of either operation.
        if constexpr (requires { timers.forget(pending, pending + batch); }) timers.forget(pending, pending + batch);
        s = seconds(t1 - t0);
        c = seconds(t2 - t1);
      });
    });
    scheduling += s;
    cancelling += c;
    elsewhere += wall - s - c;
    return s + c;
  };
  // Warm-up to the steady state: as many cancels as there are pending timers,
  // so that lazily cancelled ones have been dropped once and their memory is
  // being reused.
  for (std::size_t i = 0; i <= pending / batch; ++i) one_batch();
  scheduling = cancelling = elsewhere = 0;
  run_timed(state, one_batch);
  const double ops = static_cast<double>(state.iterations()) * static_cast<double>(batch);
  const double schedule_ns = scheduling / ops * 1e9, cancel_ns = cancelling / ops * 1e9;
  state.SetItemsProcessed(static_cast<int64_t>(ops) * 2);

  const bool nominal = static_cast<int64_t>(pending) == kNominalPending;
  std::string impl = Driver::kName;
  if (!nominal) impl += " @" + std::to_string(pending) + " pending";
  record(state, scenario::kTimerOps, metric::kScheduleNs, Unit::kNanoseconds, impl, schedule_ns);
  record(state, scenario::kTimerOps, metric::kCancelNs, Unit::kNanoseconds, impl, cancel_ns);
  // The untimed rest, per timer: mostly running the loop between batches,
  // where lazily cancelled timers are eventually dropped (qiloop: compaction).
  record(state, scenario::kTimerOps, metric::kLoopNs, Unit::kNanoseconds, impl, elsewhere / ops * 1e9);
  if (nominal) return;
  auto& costs = detail::timer_op_costs()[Driver::kName];
  costs[static_cast<int64_t>(pending)] = {schedule_ns, cancel_ns};
  if (costs.size() < 2) return;
  const auto lo = costs.begin(), hi = std::prev(costs.end());
  auto extrapolate = [&](double detail::TimerOpCost::*cost) {
    const double slope = (hi->second.*cost - lo->second.*cost) / static_cast<double>(hi->first - lo->first);
    return hi->second.*cost + slope * static_cast<double>(kNominalPending - hi->first);
  };
  impl = std::string(Driver::kName) + " (extrapolated)";
  note(scenario::kTimerOps, metric::kScheduleNs, Unit::kNanoseconds, impl,
       extrapolate(&detail::TimerOpCost::schedule_ns));
  note(scenario::kTimerOps, metric::kCancelNs, Unit::kNanoseconds, impl, extrapolate(&detail::TimerOpCost::cancel_ns));
}

template <class Driver>
void add_timer_ops(const Options& o, std::vector<int64_t> pending_counts) {
  for (int64_t pending : pending_counts)
    add("timer_ops", Driver::kName, &timer_ops<Driver>)
        ->Args({pending, 1000})
        ->UseManualTime()
        ->MinTime(o.pick(0.2, 0.01))
        ->Unit(benchmark::kMicrosecond);
}

// --- 3. timers: when does the last survivor fire ----------------------------------------

// n timers with delays uniform in [0, 100 ms], every other one cancelled right
// after all are started; the figure is how long after the end of that
// scheduling the last survivor runs (the worst iteration). Args: n, and the
// scenario's count (an implementation run with fewer says so in its name).
template <class Driver>
void timers_last_fire(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  std::string impl = Driver::kName;
  if (state.range(0) != state.range(1)) impl += " x" + std::to_string(n);
  const std::size_t survivors = (n + 1) / 2;
  Driver driver;
  std::size_t fired = 0;
  Clock::time_point last{};
  typename Driver::Timers timers(driver, n, [&](std::size_t) {
    if (++fired == survivors) {
      last = Clock::now();
      driver.stop();
    }
  });
  const auto delays = random_delays(n, 0ns, 100ms);
  double worst_ms = 0, scheduling = 0;
  run_timed(state, [&] {
    fired = 0;
    Clock::time_point begin{}, end{};
    driver.post([&] {
      begin = Clock::now();
      for (std::size_t i = 0; i < n; ++i) timers.start(i, delays[i]);
      for (std::size_t i = 1; i < n; i += 2) timers.cancel(i);
      end = Clock::now();
    });
    driver.run();
    worst_ms = std::max(worst_ms, seconds(last - end) * 1e3);
    scheduling += seconds(end - begin);
    return seconds(last - begin);
  });
  record(state, scenario::kTimerLastFire, metric::kLastFireMs, Unit::kMilliseconds, impl, worst_ms);
  record(state, scenario::kTimerLastFire, metric::kSetupNs, Unit::kNanoseconds, impl,
         scheduling / static_cast<double>(state.iterations()) / static_cast<double>(n) * 1e9);
}

template <class Driver>
void add_timers_last_fire(const Options& o, int64_t n, int64_t nominal) {
  add("timers_last_fire", Driver::kName, &timers_last_fire<Driver>)
      ->Args({n, nominal})
      ->Iterations(o.pick(3, 1))
      ->UseManualTime();
}

// --- 4. call_later(1 ms) lateness --------------------------------------------------------------

inline constexpr auto kTick = 1ms;

// A 1 ms timer re-armed from its own callback; each tick records how long
// after its deadline it ran, in microseconds.
template <class Driver>
class Metronome {
 public:
  Metronome(Driver& driver, std::size_t ticks)
      : driver_(driver), ticks_(ticks), timers_(driver, 1, [this](std::size_t) { tick(); }) {
    late_us_.reserve(ticks);
  }
  void arm() {
    deadline_ = Clock::now() + kTick;
    timers_.start(0, kTick);
    if constexpr (requires(typename Driver::Timers& t) { t.when(0); }) deadline_ = timers_.when(0);
  }
  std::vector<double>& samples() { return late_us_; }

 private:
  void tick() {
    late_us_.push_back(micros(Clock::now() - deadline_));
    if (late_us_.size() == ticks_)
      driver_.stop();
    else
      arm();
  }
  Driver& driver_;
  std::size_t ticks_;
  typename Driver::Timers timers_;
  Clock::time_point deadline_{};
  std::vector<double> late_us_;
};

template <class Driver>
std::vector<double> timer_lateness(std::size_t ticks) {
  Driver driver;
  Metronome<Driver> metronome(driver, ticks);
  driver.post([&] { metronome.arm(); });
  driver.run();
  return std::move(metronome.samples());
}

// The floor: what a thread that sleeps 1 ms gets.
inline std::vector<double> sleep_lateness(std::size_t ticks) {
  std::vector<double> late_us;
  late_us.reserve(ticks);
  for (std::size_t i = 0; i < ticks; ++i) {
    auto deadline = Clock::now() + kTick;
    std::this_thread::sleep_for(kTick);
    late_us.push_back(micros(Clock::now() - deadline));
  }
  return late_us;
}

// Closer to qiloop's own mechanism: a blocking read of a timerfd armed for an
// absolute deadline (the kernel applies no timer slack to it, unlike
// nanosleep), so qiloop's excess over it is what the loop itself adds.
inline std::vector<double> timerfd_lateness(std::size_t ticks) {
  const int fd = ::timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC);
  std::vector<double> late_us;
  late_us.reserve(ticks);
  for (std::size_t i = 0; i < ticks; ++i) {
    auto deadline = Clock::now() + kTick;
    auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(deadline.time_since_epoch()).count();
    itimerspec spec{};
    spec.it_value.tv_sec = static_cast<time_t>(ns / 1'000'000'000);
    spec.it_value.tv_nsec = static_cast<long>(ns % 1'000'000'000);
    ::timerfd_settime(fd, TFD_TIMER_ABSTIME, &spec, nullptr);
    uint64_t expirations;
    [[maybe_unused]] ssize_t n = ::read(fd, &expirations, sizeof expirations);
    late_us.push_back(micros(Clock::now() - deadline));
  }
  ::close(fd);
  return late_us;
}

inline constexpr const char* kSleepFloor = "sleep_for (floor)";
inline constexpr const char* kTimerfdFloor = "timerfd read";

// Latency figures are the median of this many runs (one run moves with the VM's neighbours).
inline constexpr int kRuns = 3;

inline void lateness(benchmark::State& state, const char* impl, std::vector<double> (*sample)(std::size_t)) {
  const auto ticks = static_cast<std::size_t>(state.range(0));
  std::vector<Distribution> runs;
  for (auto _ : state)
    for (int r = 0; r < kRuns; ++r) runs.push_back(distribution(sample(ticks)));
  record_us(state, scenario::kLateness, impl, median_of_runs(runs), /*early=*/true);
}

inline void add_lateness(const Options& o, const char* impl, std::vector<double> (*sample)(std::size_t)) {
  add("call_later_1ms_lateness", impl, &lateness, impl, sample)->Arg(o.pick(1000, 100))->Iterations(1);
}

// --- 5. call_soon_threadsafe burst -------------------------------------------------------------

// A second thread posts n callbacks as fast as it can; the figure is n over
// the time from its start until the loop ran the last one.
template <class Driver>
void threadsafe_burst(benchmark::State& state) {
  const int64_t n = state.range(0);
  Driver driver;
  struct Sink {
    Driver* driver;
    int64_t n;
    int64_t ran = 0;
    void hit() {
      if (++ran == n) driver->stop();
    }
  };
  auto burst = [&] {
    Sink sink{&driver, n};
    Gate gate;
    std::thread producer([&] {
      gate.wait();
      for (int64_t i = 0; i < n; ++i) driver.post_threadsafe([s = &sink] { s->hit(); });
    });
    Clock::time_point begin{};
    driver.post([&] {
      begin = Clock::now();
      gate.open();
    });
    driver.run();
    const double s = seconds(Clock::now() - begin);
    producer.join();
    return s;
  };
  // The CPU column then says whether the loop's thread or the producer was
  // the bottleneck (loop-bound: CPU time close to the time).
  measure_rate(state, driver, scenario::kThreadsafe, metric::kCallbacksPerSec, n, burst, burst);
}

template <class Driver>
void add_threadsafe_burst(const Options& o) {
  add("call_soon_threadsafe_burst", Driver::kName, &threadsafe_burst<Driver>)
      ->Arg(o.pick(1'000'000, 20'000))
      ->UseManualTime();
}

// --- 5. ping-pong between two threads ------------------------------------------------------------

// A driver running on its own thread, pinned to one CPU.
template <class Driver>
class LoopThread {
 public:
  explicit LoopThread(int cpu) {
    std::promise<Driver*> ready;
    auto driver = ready.get_future();
    thread_ = std::thread([cpu, ready = std::move(ready)]() mutable {
      pin_this_thread(cpu);
      Driver d;
      ready.set_value(&d);
      d.run();
    });
    driver_ = driver.get();
  }
  LoopThread(const LoopThread&) = delete;
  LoopThread& operator=(const LoopThread&) = delete;
  ~LoopThread() {
    Driver* d = driver_;
    d->post_threadsafe([d] { d->stop(); });
    thread_.join();
  }
  Driver& driver() { return *driver_; }

 private:
  std::thread thread_;
  Driver* driver_ = nullptr;
};

// The ball goes home → away → home, each leg a post_threadsafe.
template <class Driver>
struct Rally {
  Driver& home;
  Driver& away;
  int64_t left;
  std::vector<double> rtt_us{};
  Clock::time_point sent{};

  void serve() {
    sent = Clock::now();
    away.post_threadsafe([this] { home.post_threadsafe([this] { back(); }); });
  }
  void back() {
    rtt_us.push_back(micros(Clock::now() - sent));
    if (--left > 0)
      serve();
    else
      home.stop();
  }
};

// Each ping-pong returns `rounds` round-trip times (µs); the calling thread
// is pinned to main_cpu, the other to worker_cpu.
using PingPong = std::vector<double> (*)(int64_t rounds, int main_cpu, int worker_cpu);

template <class Driver>
std::vector<double> loop_ping_pong(int64_t rounds, int main_cpu, int worker_cpu) {
  ScopedPin pin(main_cpu);
  LoopThread<Driver> worker(worker_cpu);
  Driver home;
  Rally<Driver> rally{home, worker.driver(), rounds};
  rally.rtt_us.reserve(static_cast<std::size_t>(rounds));
  home.post([&] { rally.serve(); });
  home.run();
  return std::move(rally.rtt_us);
}

// The OS floor: two threads handing a token over through two eventfds.
inline std::vector<double> eventfd_ping_pong(int64_t rounds, int main_cpu, int worker_cpu) {
  ScopedPin pin(main_cpu);
  const int there = ::eventfd(0, EFD_CLOEXEC), back = ::eventfd(0, EFD_CLOEXEC);
  auto signal = [](int fd) {
    uint64_t v = 1;
    [[maybe_unused]] ssize_t n = ::write(fd, &v, sizeof v);
  };
  auto wait = [](int fd) {
    uint64_t v;
    [[maybe_unused]] ssize_t n = ::read(fd, &v, sizeof v);
  };
  std::thread worker([&] {
    pin_this_thread(worker_cpu);
    for (int64_t i = 0; i < rounds; ++i) {
      wait(there);
      signal(back);
    }
  });
  std::vector<double> rtt_us;
  rtt_us.reserve(static_cast<std::size_t>(rounds));
  for (int64_t i = 0; i < rounds; ++i) {
    auto t0 = Clock::now();
    signal(there);
    wait(back);
    rtt_us.push_back(micros(Clock::now() - t0));
  }
  worker.join();
  ::close(there);
  ::close(back);
  return rtt_us;
}

// The same with a mutex and condition variables.
inline std::vector<double> condvar_ping_pong(int64_t rounds, int main_cpu, int worker_cpu) {
  ScopedPin pin(main_cpu);
  std::mutex mu;
  std::condition_variable to_worker, to_main;
  int ball = 0;  // 1: the worker's to return, 2: back home
  auto pass = [&](std::condition_variable& cv, int value) {
    {
      std::lock_guard lock(mu);
      ball = value;
    }
    cv.notify_one();
  };
  auto await = [&](std::condition_variable& cv, int value) {
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return ball == value; });
  };
  std::thread worker([&] {
    pin_this_thread(worker_cpu);
    for (int64_t i = 0; i < rounds; ++i) {
      await(to_worker, 1);
      pass(to_main, 2);
    }
  });
  std::vector<double> rtt_us;
  rtt_us.reserve(static_cast<std::size_t>(rounds));
  for (int64_t i = 0; i < rounds; ++i) {
    auto t0 = Clock::now();
    pass(to_worker, 1);
    await(to_main, 2);
    rtt_us.push_back(micros(Clock::now() - t0));
  }
  worker.join();
  return rtt_us;
}

// Args: rounds. The first tenth of the rounds warms up and is not counted.
inline void ping_pong(benchmark::State& state, const char* impl, bool same_cpu, PingPong run) {
  const int64_t rounds = state.range(0), warm = rounds / 10;
  std::vector<int> cpus = allowed_cpus();
  if (cpus.empty() || (!same_cpu && cpus.size() < 2)) {
    state.SkipWithError("needs two CPUs");
    return;
  }
  const int main_cpu = cpus[0], worker_cpu = same_cpu ? cpus[0] : cpus[1];
  std::vector<double> rtt_us;
  for (auto _ : state) {
    std::vector<double> r = run(warm + rounds, main_cpu, worker_cpu);
    rtt_us.insert(rtt_us.end(), r.begin() + warm, r.end());
  }
  record_us(state, same_cpu ? scenario::kPingPongOneCpu : scenario::kPingPongTwoCpus, impl,
            distribution(std::move(rtt_us)));
}

inline void add_ping_pong(const Options& o, const char* impl, PingPong run) {
  for (bool same_cpu : {true, false})
    add(same_cpu ? "ping_pong_one_cpu" : "ping_pong_two_cpus", impl, &ping_pong, impl, same_cpu, run)
        ->Arg(o.pick(20'000, 1'000))
        ->Iterations(1);
}

// --- 6. Qt responsiveness under a chain --------------------------------------------------------------

// Receives events stamped when they were posted and records how long each
// waited for delivery.
class StampReceiver : public QObject {
 public:
  struct Stamped : QEvent {
    Stamped() : QEvent(StampReceiver::type()), posted(Clock::now()) {}  // not QEvent::type()
    Clock::time_point posted;
  };
  static QEvent::Type type() {
    static const auto t = static_cast<QEvent::Type>(QEvent::registerEventType());
    return t;
  }
  bool event(QEvent* e) override {
    if (e->type() != type()) return QObject::event(e);
    wait_us.push_back(micros(Clock::now() - static_cast<Stamped*>(e)->posted));
    return true;
  }
  std::vector<double> wait_us;
};

// A chain runs flat out on the loop while another thread posts a Qt event
// every 250 µs (as a socket thread or a worker reporting progress would); the
// chain stops once all have been delivered. Args: events per run.
template <class Driver>
void qt_event_wait(benchmark::State& state) {
  const auto events = static_cast<std::size_t>(state.range(0));
  constexpr auto kInterval = 250us;
  Driver driver;
  std::vector<Distribution> runs;
  int64_t steps = 0;
  double running = 0;
  const long preempted_before = preemptions();
  for (auto _ : state) {
    for (int r = 0; r < kRuns; ++r) {
      StampReceiver receiver;
      receiver.wait_us.reserve(events);
      Chain chain(driver, [&](int64_t) { return receiver.wait_us.size() >= events; });
      Gate gate;
      std::thread poster([&] {
        gate.wait();
        const auto start = Clock::now();
        for (std::size_t i = 0; i < events; ++i) {
          std::this_thread::sleep_until(start + i * kInterval);
          QCoreApplication::postEvent(&receiver, new StampReceiver::Stamped);
        }
      });
      driver.post([&] { gate.open(); });
      chain.start();
      running += time_of([&] { driver.run(); });
      poster.join();
      steps += chain.steps();
      runs.push_back(distribution(std::move(receiver.wait_us)));
    }
  }
  record_us(state, scenario::kQtWait, Driver::kName, median_of_runs(runs));
  record(state, scenario::kQtWait, "loop thread preempted", Unit::kCount, Driver::kName,
         static_cast<double>(preemptions() - preempted_before));
  record(state, scenario::kQtWait, "chain steps/s meanwhile", Unit::kRate, Driver::kName,
         static_cast<double>(steps) / running);
}

template <class Driver>
void add_qt_event_wait(const Options& o) {
  add("qt_event_wait", Driver::kName, &qt_event_wait<Driver>)->Arg(o.pick(2000, 200))->Iterations(1);
}

// --- Peers --------------------------------------------------------------------------------------------

// Scenarios 1, 2, 3 and 5 on qiloop and on another loop, side by side.
template <class Peer>
void add_peer_suite(const Options& o) {
  add_call_soon_batch<QiDriver>(o);
  add_call_soon_batch<Peer>(o);
  add_call_soon_chain<QiDriver>(o);
  add_call_soon_chain<Peer>(o);
  add_timer_ops<QiDriver>(o, {kNominalPending});
  add_timer_ops<Peer>(o, {kNominalPending});
  const int64_t timers = o.pick(100'000, 20'000);
  add_timers_last_fire<QiDriver>(o, timers, timers);
  add_timers_last_fire<Peer>(o, timers, timers);
  add_threadsafe_burst<QiDriver>(o);
  add_threadsafe_burst<Peer>(o);
  add_ping_pong(o, QiDriver::kName, &loop_ping_pong<QiDriver>);
  add_ping_pong(o, Peer::kName, &loop_ping_pong<Peer>);
}

}  // namespace bench
