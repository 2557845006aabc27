// bench_concurrency.cpp — structured concurrency and the primitives, qiloop
// beside Asio's C++20 coroutines (standalone Asio, Debian libasio-dev 1.22)
// in the same binary, and beside Python's asyncio and uvloop running the
// same programs in the same run (benchmarks/peers/concurrency.py):
//
//   1. gather      10,000 tasks that each return their index, awaited with
//                  gather                                    ns per task
//   2. lock        2 tasks hand a Lock back and forth 200,000 times: each
//                  acquires it, yields once to the loop while holding it,
//                  releases it                               ns per hand-off
//   3. queue       a producer puts 1,000,000 items into a queue of capacity
//                  128, a consumer gets them                 ns per item
//
// The Asio programs are what an Asio user writes for each:
//   gather: co_spawn of each child with a completion handler that stores
//           the result and counts down; the last one wakes the awaiting
//           coroutine (a steady_timer cancelled, Asio's usual event);
//   lock:   Asio has no async mutex: an experimental::channel of capacity 1 is
//           the standard one (acquire = async_send, release = try_receive),
//           and the yield is co_await asio::post. Its signature carries a
//           dummy bool: Asio 1.22 cannot instantiate void(error_code) alone;
//   queue:  experimental::channel<void(error_code, int)> of capacity 128.
// qiloop and Asio run interleaved, one run each per benchmark iteration
// (bench::interleaved). Python runs once per binary run, before the C++
// scenarios, with the same sizes; its figures are medians of 3 runs.
// Goals (checked in the summary): qiloop faster than Asio in each, and at
// least 20 times faster than asyncio.
#include "bench_support.h"

#include <qiloop/qiloop.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/channel.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/redirect_error.hpp>
#include <asio/steady_timer.hpp>
#include <asio/use_awaitable.hpp>

#include <cstdint>
#include <cstdio>
#include <string>
#include <system_error>
#include <vector>

namespace {

using namespace bench;

namespace scenario {
constexpr const char* kGather = "gather of 10,000 tasks";
constexpr const char* kLock = "Lock hand-off between 2 tasks";
constexpr const char* kQueue = "Queue(128): producer to consumer";
}  // namespace scenario

namespace metric {
constexpr const char* kPerTask = "ns per task";
constexpr const char* kPerHandoff = "ns per hand-off";
constexpr const char* kPerItem = "ns per item";
}  // namespace metric

constexpr const char* kQiloop = "qiloop";
constexpr const char* kAsio = "Asio";

struct Sizes {
  int64_t gather, lock, queue;
};
Sizes sizes(const Options& o) { return {o.pick<int64_t>(10'000, 1'000), o.pick<int64_t>(200'000, 2'000),
                                        o.pick<int64_t>(1'000'000, 10'000)}; }

// === qiloop ==============================================================================

qi::Coro<int> qi_child(int i) { co_return i; }

qi::Coro<void> qi_gather(int64_t n) {
  std::vector<qi::Task<int>> tasks;
  tasks.reserve(static_cast<std::size_t>(n));
  for (int64_t i = 0; i < n; ++i) tasks.push_back(qi::create_task(qi_child(static_cast<int>(i))));
  std::vector<int> results = co_await qi::gather(std::move(tasks));
  if (results.back() != n - 1) std::abort();
}

qi::Coro<void> qi_lock_worker(qi::Lock& lock, int64_t n) {
  for (int64_t i = 0; i < n; ++i) {
    co_await lock.acquire();
    co_await qi::sleep(0);
    lock.release();
  }
}

qi::Coro<void> qi_lock(int64_t n) {
  qi::Lock lock;
  auto a = qi::create_task(qi_lock_worker(lock, n / 2));
  auto b = qi::create_task(qi_lock_worker(lock, n / 2));
  co_await a;
  co_await b;
}

qi::Coro<void> qi_producer(qi::Queue<int>& q, int64_t n) {
  for (int64_t i = 0; i < n; ++i) co_await q.put(static_cast<int>(i));
}

qi::Coro<int64_t> qi_consumer(qi::Queue<int>& q, int64_t n) {
  int64_t total = 0;
  for (int64_t i = 0; i < n; ++i) total += co_await q.get();
  co_return total;
}

qi::Coro<void> qi_queue(int64_t n) {
  qi::Queue<int> q(128);
  auto p = qi::create_task(qi_producer(q, n));
  auto c = qi::create_task(qi_consumer(q, n));
  co_await p;
  if (co_await c != n * (n - 1) / 2) std::abort();
}

// Seconds for one run of program(n) (nested mode), creating the tasks
// included. One loop serves every run, as one serves an application (and
// one io_context every Asio run): a fresh loop per run would measure its
// pools' first touch of fresh pages instead.
template <class Program>
double qi_run(Program program, int64_t n) {
  static QiEventLoop loop;
  return time_of([&] { loop.run_until_complete(program(n)); });
}

// === Asio ================================================================================

using asio::use_awaitable;
using AsioError = std::error_code;

asio::awaitable<int> asio_child(int i) { co_return i; }

asio::awaitable<void> asio_gather(int64_t n) {
  auto ex = co_await asio::this_coro::executor;
  std::vector<int> results(static_cast<std::size_t>(n));
  int64_t left = n;
  asio::steady_timer all_done(ex, asio::steady_timer::time_point::max());
  for (int64_t i = 0; i < n; ++i)
    asio::co_spawn(ex, asio_child(static_cast<int>(i)), [&, i](std::exception_ptr e, int v) {
      if (e) std::abort();
      results[static_cast<std::size_t>(i)] = v;
      if (--left == 0) all_done.cancel();
    });
  AsioError ec;
  if (left) co_await all_done.async_wait(asio::redirect_error(use_awaitable, ec));
  if (results.back() != n - 1) std::abort();
}

using AsioLock = asio::experimental::channel<void(AsioError, bool)>;

asio::awaitable<void> asio_lock_worker(AsioLock& lock, int64_t n) {
  auto ex = co_await asio::this_coro::executor;
  for (int64_t i = 0; i < n; ++i) {
    co_await lock.async_send(AsioError{}, true, use_awaitable);  // acquire: fills the one slot
    co_await asio::post(ex, use_awaitable);
    lock.try_receive([](AsioError, bool) {});  // release: empties it, letting a waiting sender in
  }
}

asio::awaitable<void> asio_lock(int64_t n) {
  auto ex = co_await asio::this_coro::executor;
  AsioLock lock(ex, 1);
  int finished = 0;
  asio::steady_timer both(ex, asio::steady_timer::time_point::max());
  auto done = [&](std::exception_ptr e) {
    if (e) std::abort();
    if (++finished == 2) both.cancel();
  };
  asio::co_spawn(ex, asio_lock_worker(lock, n / 2), done);
  asio::co_spawn(ex, asio_lock_worker(lock, n / 2), done);
  AsioError ec;
  co_await both.async_wait(asio::redirect_error(use_awaitable, ec));
}

using AsioQueue = asio::experimental::channel<void(AsioError, int)>;

asio::awaitable<void> asio_producer(AsioQueue& q, int64_t n) {
  for (int64_t i = 0; i < n; ++i) co_await q.async_send(AsioError{}, static_cast<int>(i), use_awaitable);
}

asio::awaitable<void> asio_queue(int64_t n) {
  auto ex = co_await asio::this_coro::executor;
  AsioQueue q(ex, 128);
  asio::co_spawn(ex, asio_producer(q, n), [](std::exception_ptr e) {
    if (e) std::abort();
  });
  int64_t total = 0;
  for (int64_t i = 0; i < n; ++i) total += co_await q.async_receive(use_awaitable);
  if (total != n * (n - 1) / 2) std::abort();
}

template <class Program>
double asio_run(Program program, int64_t n) {
  static asio::io_context context(1);
  return time_of([&] {
    asio::co_spawn(context, program(n), [](std::exception_ptr e) {
      if (e) std::abort();
    });
    context.restart();
    context.run();
  });
}

// === Python ==============================================================================

// Runs benchmarks/peers/concurrency.py with the same sizes: the peers
// "asyncio" and "uvloop".
void run_python(const Options& o) {
  const Sizes s = sizes(o);
  run_python_peers("bench_concurrency", "concurrency.py",
                   {std::to_string(s.gather), std::to_string(s.lock), std::to_string(s.queue), o.smoke ? "1" : "3"},
                   {{"gather", scenario::kGather, metric::kPerTask},
                    {"lock", scenario::kLock, metric::kPerHandoff},
                    {"queue", scenario::kQueue, metric::kPerItem}});
}

void register_all(const Options& o) {
  const Sizes s = sizes(o);
  run_python(o);
  struct Scenario {
    const char* scen;
    const char* met;
    int64_t n;
    double (*qi)(int64_t);
    double (*asio)(int64_t);
  };
  const Scenario scenarios[] = {
      {scenario::kGather, metric::kPerTask, s.gather, [](int64_t n) { return qi_run(qi_gather, n); },
       [](int64_t n) { return asio_run(asio_gather, n); }},
      {scenario::kLock, metric::kPerHandoff, s.lock, [](int64_t n) { return qi_run(qi_lock, n); },
       [](int64_t n) { return asio_run(asio_lock, n); }},
      {scenario::kQueue, metric::kPerItem, s.queue, [](int64_t n) { return qi_run(qi_queue, n); },
       [](int64_t n) { return asio_run(asio_queue, n); }},
  };
  for (const Scenario& sc : scenarios) {
    benchmark::RegisterBenchmark(sc.scen, [sc](benchmark::State& state) {
      interleaved(state, sc.scen, sc.met, {{kQiloop, sc.n, sc.qi}, {kAsio, sc.n, sc.asio}});
    })->UseManualTime()->Iterations(o.pick(9, 1))->Unit(benchmark::kMillisecond);
    add_target({sc.scen, sc.met, Relation::kRatioTo, kAsio, Compare::kAtMost, 1.0});
    add_target({sc.scen, sc.met, Relation::kRatioTo, "asyncio", Compare::kAtMost, 1 / 20.0});
  }
}

}  // namespace

QILOOP_BENCH_MAIN(register_all)
