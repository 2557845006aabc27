// Stress: many threads at once against the loop's cross-thread doors —
// call_soon_threadsafe, loops calling into each other with
// run_coroutine_threadsafe / wrap_future, a saturated executor shared by
// several loops, a loop shut down while other threads still post, Unix
// signals sent from other threads, Qt signals emitted from many threads,
// and QiRunner attach/detach cycles under fire. Every test keeps exact
// books (counts, order per producer, every callable destroyed once, every
// future done), not just "no crash". Label `thread` (so the tsan preset
// runs it; ctest -R '^Stress' selects it); the sizes shrink under the sanitizers (kScale) so
// that each test stays within a few seconds there. The sizes are listed in
// docs/reliability.md.
#include <qiloop/qiloop.h>
#include <qiloop/testing.h>

#include "qt/signal_emitter.h"
#include "threads/bounded_flags.h"

#include <gtest/gtest.h>

#include <QtCore/QCoreApplication>
#include <QtCore/QEventLoop>
#include <QtCore/QThread>
#include <QtCore/QTimer>

#include <array>
#include <atomic>
#include <chrono>
#include <csignal>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <pthread.h>
#include <unistd.h>

using namespace std::chrono_literals;
using qi::testing_threads::Countdown;
using qi::testing_threads::eventually;
using qi::testing_threads::Flag;

// See tests/threads/loop_thread_test.cpp: ~QThread (qi::LoopThread's) under
// TSan, which cannot see Qt's own synchronisation.
#if defined(__SANITIZE_THREAD__)
extern "C" const char* __tsan_default_suppressions() { return "race:QWaitCondition::~QWaitCondition\n"; }
#endif

namespace {

// Sizes are divided by kScale: ThreadSanitizer runs this code 5–15 times
// slower, AddressSanitizer about twice.
#if QILOOP_DETAIL_TSAN
constexpr int kScale = 4;
#elif defined(__SANITIZE_ADDRESS__)
constexpr int kScale = 2;
#else
constexpr int kScale = 1;
#endif
constexpr int scaled(int n) { return n / kScale > 0 ? n / kScale : 1; }

// Counts the copies of a callable (or coroutine argument) alive: every one
// made is destroyed exactly once, so the count is back to zero at the end
// (a leak leaves it above, a double destruction below).
struct Live {
  static inline std::atomic<long> alive{0};
  Live() noexcept { ++alive; }
  Live(const Live&) noexcept { ++alive; }
  Live(Live&&) noexcept { ++alive; }
  Live& operator=(const Live&) = default;
  ~Live() { --alive; }
};

// One item posted to a loop: it knows whether it ran, and its destruction
// (exactly once, whoever holds the last reference) files it as run or as
// dropped unrun.
struct Tally {
  std::atomic<long> accepted{0}, refused{0}, ran{0}, dropped{0}, other_errors{0};
};
struct Item {
  explicit Item(Tally& t) : tally(&t) {}
  Item(const Item&) = delete;
  ~Item() { ++(ran ? tally->ran : tally->dropped); }
  Tally* tally;
  bool ran = false;
};

struct HopError : std::runtime_error {
  explicit HopError(long c) : std::runtime_error("hop failed"), code(c) {}
  long code;
};
struct JobError : std::runtime_error {
  explicit JobError(long c) : std::runtime_error("job failed"), code(c) {}
  long code;
};

template <class T>
qi::Coro<T> await_future(qi::Future<T> f) {
  co_return co_await f;
}

// Waits, without blocking the loop, until pred() holds (bounded).
template <class Pred>
qi::Coro<bool> until(Pred pred, std::chrono::milliseconds bound = 20s) {
  const auto end = std::chrono::steady_clock::now() + bound;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) co_return false;
    co_await qi::sleep(1ms);
  }
  co_return true;
}

}  // namespace

// --- call_soon_threadsafe: many producers, one loop ---------------------------

// 8 producers × 20,000 callbacks into one loop while the loop keeps its own
// call_soon chain going. Every 16th handle is cancelled by its producer right
// after posting. Exact books: every callback not cancelled runs once, each
// producer's in its order; a cancelled one runs only if it had started
// before cancel() returned; every callable is destroyed once.
QILOOP_TEST_MODES(StressInbox, EightProducersKeepTheirOrderAndCancelledHandlesNeverRunLate) {
  qi::testing::set_timeout(120s);
  auto& loop = qi::get_running_loop();
  constexpr int kProducers = 8;
  const int per = scaled(20000);
  Live::alive = 0;
  struct Seen {
    int last = -1;
    long ran = 0, cancelled_ran = 0;
    bool ordered = true;
  };
  std::array<Seen, kProducers> seen{};  // the loop's thread only
  std::vector<std::atomic<bool>> cancel_returned(static_cast<std::size_t>(kProducers) * per);
  long ran_after_cancel = 0, wrong_thread = 0, own_ticks = 0;
  int markers = 0;
  bool done = false;
  qi::Future<void> all_in = loop.create_future<void>();
  const auto loop_thread = std::this_thread::get_id();

  // The loop's own work, interleaved with the inbox.
  std::function<void()> tick = [&] {
    ++own_ticks;
    if (!done) loop.call_soon(tick);
  };
  loop.call_soon(tick);

  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p)
    producers.emplace_back([&, p] {
      for (int i = 0; i < per; ++i) {
        const bool cancel = i % 16 == 15;
        auto& flag = cancel_returned[static_cast<std::size_t>(p) * per + i];
        qi::Handle h = loop.call_soon_threadsafe([&, p, i, cancel, live = Live()] {
          if (std::this_thread::get_id() != loop_thread) ++wrong_thread;
          Seen& s = seen[p];
          if (cancel) {
            if (flag.load()) ++ran_after_cancel;  // cancel() had returned: must not run
            ++s.cancelled_ran;
          } else {
            ++s.ran;
          }
          s.ordered = s.ordered && i > s.last;
          s.last = i;
        });
        if (cancel) {
          h.cancel();
          flag.store(true);
        }
      }
      // FIFO per producer: when this runs, everything it sent before has run
      // or was skipped.
      loop.call_soon_threadsafe([&] {
        if (++markers == kProducers) all_in.set_result();
      });
    });
  co_await all_in;
  done = true;
  for (auto& t : producers) t.join();
  const long cancelled_per = per / 16;
  for (int p = 0; p < kProducers; ++p) {
    EXPECT_EQ(seen[p].ran, per - cancelled_per) << "producer " << p;
    EXPECT_LE(seen[p].cancelled_ran, cancelled_per) << "producer " << p;
    EXPECT_TRUE(seen[p].ordered) << "producer " << p;
  }
  EXPECT_EQ(ran_after_cancel, 0);
  EXPECT_EQ(wrong_thread, 0);
  EXPECT_GT(own_ticks, 0);
  co_await qi::sleep(0);
  EXPECT_EQ(Live::alive.load(), 0) << "a callable leaked or was destroyed twice";
}

// --- Loops calling into each other -------------------------------------------

namespace {

// One hop of a token: runs on `expected` (checked), sometimes yields, and
// fails with HopError(code) when code != 0.
qi::Coro<int> hop(int v, QiEventLoop* expected, long code, std::atomic<long>* served, Live) {
  if (qi::running_loop() != expected) throw std::logic_error("a hop ran on the wrong loop");
  ++*served;
  if (v % 3 == 0) co_await qi::sleep(0);
  if (code != 0) throw HopError(code);
  co_return v + 1;
}

struct RingResult {
  int value = 0;
  long errors_right = 0, errors_wrong = 0, off_home = 0;
};

// A token's trip: `hops` hops around the ring, each on the next loop
// (sometimes its own), awaited with wrap_future from this loop.
qi::Coro<RingResult> ring_driver(std::vector<QiEventLoop*> loops, int self, int id, int hops,
                                 std::vector<std::atomic<long>>* served) {
  RingResult r;
  QiEventLoop* home = qi::running_loop();
  for (int h = 0; h < hops; ++h) {
    const int t = (self + 1 + h) % static_cast<int>(loops.size());
    const long code = h % 37 == 36 ? long(id) * 100000 + h : 0;
    try {
      r.value = co_await qi::wrap_future(qi::run_coroutine_threadsafe(
          hop(r.value, loops[t], code, &(*served)[t], Live()), *loops[t]));
    } catch (const HopError& e) {
      ++(e.code == code ? r.errors_right : r.errors_wrong);
    }
    if (qi::running_loop() != home) ++r.off_home;
  }
  co_return r;
}

}  // namespace

// 4 loops on 4 threads, 8 tokens started on each, 300 hops per token: every
// hop is a coroutine run on another loop through run_coroutine_threadsafe
// and awaited with wrap_future, so futures cross the ring both ways all the
// time. Every 37th hop throws; the awaiting coroutine gets the exception
// with its type and payload.
TEST(StressLoops, ARingOfLoopsPassesTokensThroughFuturesBothWays) {
  constexpr int kLoops = 4, kTokens = 8;
  const int hops = scaled(300);
  Live::alive = 0;
  std::vector<std::unique_ptr<qi::LoopThread>> workers;
  std::vector<QiEventLoop*> loops;
  for (int i = 0; i < kLoops; ++i) {
    workers.push_back(std::make_unique<qi::LoopThread>("ring-" + std::to_string(i)));
    loops.push_back(&workers.back()->loop());
  }
  std::vector<std::atomic<long>> served(kLoops);
  std::vector<qi::ConcurrentFuture<RingResult>> trips;
  for (int i = 0; i < kLoops; ++i)
    for (int k = 0; k < kTokens; ++k)
      trips.push_back(qi::run_coroutine_threadsafe(ring_driver(loops, i, i * kTokens + k + 1, hops, &served), *loops[i]));
  const int errors_per_trip = hops / 37;
  for (auto& cf : trips) {
    const RingResult r = cf.result(60s);
    EXPECT_EQ(r.value, hops - errors_per_trip);
    EXPECT_EQ(r.errors_right, errors_per_trip);
    EXPECT_EQ(r.errors_wrong, 0);
    EXPECT_EQ(r.off_home, 0);
  }
  long total = 0;
  for (auto& s : served) {
    EXPECT_GT(s.load(), 0);
    total += s.load();
  }
  EXPECT_EQ(total, long(kLoops) * kTokens * hops);
  workers.clear();
  EXPECT_EQ(Live::alive.load(), 0);
}

namespace {

struct RemoteBooks {
  std::atomic<long> started{0}, returned{0}, cancelled{0};
};

qi::Coro<int> remote_work(int k, RemoteBooks* books, Live) {
  ++books->started;
  bool cancelled = false;
  try {
    co_await qi::sleep(std::chrono::milliseconds(k % 3));
  } catch (const qi::CancelledError&) {
    cancelled = true;
  }
  if (cancelled) {
    ++books->cancelled;
    throw qi::CancelledError();
  }
  ++books->returned;
  co_return k;
}

struct CancelResult {
  long values_right = 0, values_wrong = 0, cancelled = 0, cancelled_uncancellable = 0;
};

// `count` tasks on this loop, each awaiting a coroutine on the next loop;
// every second one is cancelled while its remote part runs (or waits).
qi::Coro<CancelResult> cancel_driver(QiEventLoop* other, int count, RemoteBooks* books) {
  auto& loop = qi::get_running_loop();
  std::vector<qi::Task<int>> tasks;
  for (int k = 0; k < count; ++k)
    tasks.push_back(loop.create_task(qi::wrap_future(qi::run_coroutine_threadsafe(remote_work(k, books, Live()), *other))));
  co_await qi::sleep(1ms);
  for (int k = 1; k < count; k += 2) tasks[k].cancel();
  CancelResult r;
  for (int k = 0; k < count; ++k) {
    try {
      const int v = co_await tasks[k];
      ++(v == k ? r.values_right : r.values_wrong);
    } catch (const qi::CancelledError&) {
      ++(k % 2 ? r.cancelled : r.cancelled_uncancellable);
    }
  }
  co_return r;
}

}  // namespace

// 4 loops, each with 400 tasks awaiting coroutines on the next loop; half
// of the awaiting tasks are cancelled while the remote coroutines run. No
// completion is lost: every task not cancelled gets its value; every remote
// coroutine that started either returned or saw the cancellation; every
// coroutine frame (started or not) is destroyed.
TEST(StressLoops, CancellingAwaitersAcrossLoopsLosesNoCompletion) {
  constexpr int kLoops = 4;
  const int count = scaled(400);
  Live::alive = 0;
  RemoteBooks books;
  {
    std::vector<std::unique_ptr<qi::LoopThread>> workers;
    for (int i = 0; i < kLoops; ++i) workers.push_back(std::make_unique<qi::LoopThread>("cancel-" + std::to_string(i)));
    std::vector<qi::ConcurrentFuture<CancelResult>> drivers;
    for (int i = 0; i < kLoops; ++i)
      drivers.push_back(
          qi::run_coroutine_threadsafe(cancel_driver(&workers[(i + 1) % kLoops]->loop(), count, &books), workers[i]->loop()));
    for (auto& cf : drivers) {
      const CancelResult r = cf.result(60s);
      EXPECT_EQ(r.values_right + r.values_wrong + r.cancelled + r.cancelled_uncancellable, count);
      EXPECT_EQ(r.values_wrong, 0);
      EXPECT_EQ(r.cancelled_uncancellable, 0);
      EXPECT_EQ(r.values_right, count - count / 2 + (count / 2 - r.cancelled));
    }
    // A cancellation reaches the remote loop asynchronously (its own
    // call_soon_threadsafe): wait for the books to settle.
    EXPECT_TRUE(eventually([&] { return books.started.load() == books.returned.load() + books.cancelled.load(); }, 10s))
        << books.started.load() << " started, " << books.returned.load() << " returned, " << books.cancelled.load()
        << " cancelled";
  }
  EXPECT_LE(books.started.load(), long(kLoops) * count);
  EXPECT_GE(books.returned.load(), long(kLoops) * (count - count / 2));
  EXPECT_EQ(Live::alive.load(), 0) << "a coroutine frame leaked or was destroyed twice";
}

// --- The executor, saturated from several loops -----------------------------

namespace {

struct ExecBooks {
  explicit ExecBooks(int loops, int jobs) : runs(static_cast<std::size_t>(loops) * jobs) {}
  std::vector<std::atomic<int>> runs;  // per job: how many times it ran
  std::atomic<int> pool_running{0}, pool_max{0};
  Flag release;  // the jobs that block until the awaiting tasks were cancelled
};

struct ExecResult {
  long values = 0, errors = 0, cancelled = 0, wrong = 0;
};

constexpr int kPoolSize = 4;

bool job_throws(int j) { return j % 7 == 3; }
bool job_cancelled(int j) { return j % 5 == 4; }
bool job_blocks(int j) { return j % 50 == 49; }  // cancelled ones: some cancels meet running work

qi::Coro<ExecResult> exec_driver(qi::Executor* pool, int self, int jobs, std::shared_ptr<ExecBooks> books) {
  auto& loop = qi::get_running_loop();
  std::vector<qi::Task<long>> tasks;
  for (int j = 0; j < jobs; ++j) {
    const bool on_pool = j % 2 == 0;
    const long code = long(self) * 1000000 + j;
    qi::Future<long> f = loop.run_in_executor(on_pool ? pool : nullptr, [books, code, j, on_pool, self, jobs,
                                                                        live = Live()]() -> long {
      if (on_pool) {
        const int now = ++books->pool_running;
        int seen = books->pool_max.load();
        while (now > seen && !books->pool_max.compare_exchange_weak(seen, now)) {
        }
      }
      ++books->runs[static_cast<std::size_t>(self) * jobs + j];
      if (job_blocks(j)) (void)books->release.wait(10s);
      for (int spin = 0; spin < 50; ++spin) std::this_thread::yield();
      if (on_pool) --books->pool_running;
      if (job_throws(j)) throw JobError(code);
      return code;
    });
    tasks.push_back(loop.create_task(await_future(std::move(f))));
  }
  co_await qi::sleep(0);
  for (int j = 0; j < jobs; ++j)
    if (job_cancelled(j)) tasks[j].cancel();
  books->release.set();
  ExecResult r;
  for (int j = 0; j < jobs; ++j) {
    const long code = long(self) * 1000000 + j;
    try {
      const long v = co_await tasks[j];
      ++(v == code && !job_throws(j) && !job_cancelled(j) ? r.values : r.wrong);
    } catch (const JobError& e) {
      ++(e.code == code && job_throws(j) && !job_cancelled(j) ? r.errors : r.wrong);
    } catch (const qi::CancelledError&) {
      ++(job_cancelled(j) ? r.cancelled : r.wrong);
    }
  }
  co_return r;
}

}  // namespace

// One ThreadPoolExecutor of 4 threads shared by 4 loops, each submitting 600
// jobs at once (half to the shared pool, half to its own default executor):
// thousands queued for a handful of threads. Every 7th job throws (the
// awaiting task gets JobError with its payload), every 5th awaiting task is
// cancelled while its job is queued or running (some jobs block until
// then). Exact books: every job whose task was not cancelled ran exactly
// once, a cancelled one at most once; the pool never ran more than 4 at
// once; every callable is destroyed once.
TEST(StressExecutor, ASaturatedPoolServesSeveralLoopsWithErrorsAndCancellations) {
  constexpr int kLoops = 4;
  const int jobs = scaled(600);
  Live::alive = 0;
  auto books = std::make_shared<ExecBooks>(kLoops, jobs);
  auto pool = std::make_shared<qi::ThreadPoolExecutor>(kPoolSize, "stress-pool");
  {
    std::vector<std::unique_ptr<qi::LoopThread>> workers;
    for (int i = 0; i < kLoops; ++i) workers.push_back(std::make_unique<qi::LoopThread>("exec-" + std::to_string(i)));
    std::vector<qi::ConcurrentFuture<ExecResult>> drivers;
    for (int i = 0; i < kLoops; ++i)
      drivers.push_back(qi::run_coroutine_threadsafe(exec_driver(pool.get(), i, jobs, books), workers[i]->loop()));
    for (auto& cf : drivers) {
      const ExecResult r = cf.result(60s);
      EXPECT_EQ(r.wrong, 0);
      int cancelled = 0, errors = 0;
      for (int j = 0; j < jobs; ++j) {
        cancelled += job_cancelled(j);
        errors += job_throws(j) && !job_cancelled(j);
      }
      EXPECT_EQ(r.cancelled, cancelled);
      EXPECT_EQ(r.errors, errors);
      EXPECT_EQ(r.values, jobs - cancelled - errors);
    }
  }  // the loops' default executors are shut down with them
  pool->shutdown(true);
  EXPECT_TRUE(eventually([&] { return Live::alive.load() == 0; }, 10s))
      << Live::alive.load() << " callables still alive (or destroyed twice)";
  EXPECT_LE(books->pool_max.load(), kPoolSize);
  EXPECT_GE(books->pool_max.load(), 1);
  for (int i = 0; i < kLoops; ++i)
    for (int j = 0; j < jobs; ++j) {
      const int runs = books->runs[static_cast<std::size_t>(i) * jobs + j].load();
      if (job_cancelled(j)) {
        EXPECT_LE(runs, 1) << "loop " << i << " job " << j;
      } else {
        EXPECT_EQ(runs, 1) << "loop " << i << " job " << j;
      }
    }
}

// --- A loop shut down while other threads post -------------------------------

// Four threads post to a loop as fast as they can — plain callbacks that
// hand work to the default executor, and coroutines — while the loop's
// thread shuts it down (qi::run's exit: cancel, shut the default executor
// down, close). Each post is accepted or refused with qi::RuntimeError;
// every accepted callback runs or is destroyed unrun by close(); each
// callback's run_in_executor either submits (and that work runs) or is
// refused with qi::RuntimeError after shutdown_default_executor; every
// ConcurrentFuture ends (value, cancelled, or failed because the loop
// closed). 10 rounds (4 under the sanitizers).
TEST(StressShutdown, ALoopShutDownWhileThreadsPostAccountsForEveryPost) {
  const int rounds = kScale > 1 ? 4 : 10;
  for (int round = 0; round < rounds; ++round) {
    Tally posts;
    std::atomic<long> submitted{0}, exec_refused{0}, exec_other{0}, work_ran{0};
    std::atomic<long> cf_accepted{0}, cf_value{0}, cf_cancelled{0}, cf_closed{0}, cf_other{0};
    std::atomic<bool> go{false};
    auto loop = std::make_unique<QiEventLoop>();
    loop->set_executor_shutdown_timeout(5s);
    std::vector<std::thread> producers;
    for (int p = 0; p < 4; ++p)
      producers.emplace_back([&, p] {
        while (!go.load()) std::this_thread::yield();
        for (long n = 0;; ++n) {
          try {
            if (p == 3) {
              auto cf = qi::run_coroutine_threadsafe(
                  [](long n) -> qi::Coro<long> {
                    co_await qi::sleep(0);
                    co_return n;
                  }(n),
                  *loop);
              ++cf_accepted;
              try {
                if (cf.result(10s) == n) ++cf_value;
              } catch (const qi::CancelledError&) {
                ++cf_cancelled;
              } catch (const qi::RuntimeError&) {
                ++cf_closed;
              } catch (...) {
                ++cf_other;
              }
            } else {
              auto item = std::make_shared<Item>(posts);
              loop->call_soon_threadsafe([&, item] {
                item->ran = true;
                try {
                  (void)qi::get_running_loop().run_in_executor(nullptr, [&] { ++work_ran; });
                  ++submitted;
                } catch (const qi::RuntimeError&) {
                  ++exec_refused;
                } catch (...) {
                  ++exec_other;
                }
              });
              ++posts.accepted;
              // A window of posts in flight: producers faster than the loop
              // would make each iteration longer than the last (an overload,
              // which ADrainFloodedByOtherThreadsEndsInBoundedTime covers).
              while (posts.accepted.load() - posts.ran.load() - posts.dropped.load() > 256)
                std::this_thread::sleep_for(50us);
            }
          } catch (const qi::RuntimeError&) {
            ++posts.refused;
            return;
          } catch (...) {
            ++posts.other_errors;
            return;
          }
        }
      });
    // Shut down once some posts have run (a loaded host may not schedule the
    // producers within any fixed time), while they still post.
    loop->run_until_complete([](std::atomic<bool>& go, Tally& posts) -> qi::Coro<void> {
      go = true;
      for (int i = 0; i < 10'000 && posts.ran.load() == 0; ++i) co_await qi::sleep(1ms);
      co_await qi::sleep(20ms);
    }(go, posts));
    loop->shutdown();  // the producers are still posting
    for (auto& t : producers) t.join();
    EXPECT_TRUE(loop->is_closed());
    EXPECT_EQ(posts.refused.load(), 4) << "round " << round << ": each producer ends on a refusal";
    EXPECT_EQ(posts.other_errors.load(), 0);
    EXPECT_EQ(exec_other.load(), 0);
    EXPECT_EQ(cf_other.load(), 0);
    EXPECT_EQ(cf_accepted.load(), cf_value + cf_cancelled + cf_closed) << "round " << round;
    // Three producers end on a refused callback, whose callable is destroyed
    // at once, unrun.
    EXPECT_EQ(posts.accepted.load() + 3, posts.ran.load() + posts.dropped.load())
        << "round " << round << ": a post was lost";
    EXPECT_EQ(posts.ran.load(), submitted.load() + exec_refused.load());
    EXPECT_GT(posts.ran.load(), 0);
    EXPECT_TRUE(eventually([&] { return work_ran.load() == submitted.load(); }, 10s))
        << "round " << round << ": " << work_ran.load() << " of " << submitted.load() << " submitted works ran";
    loop.reset();
  }
}

// OPEN DEFECT (disabled; run it with --gtest_also_run_disabled_tests).
// Shutdown's last phase (running the callbacks already ready) was bounded in
// iterations only; it is now bounded in real time too (LoopImpl::kDrainTime,
// 500 ms, checked between iterations). But one iteration takes in
// everything other threads sent meanwhile, so threads posting faster than
// the loop runs the callbacks make each iteration longer than the last
// (geometrically): the iteration in progress when a bound is reached — in
// the drain, in shutdown's cancel and executor rounds, in
// run_until_complete — can still take seconds (12.6 s here under TSan on a
// busy 2-core host). A fix must bound an iteration's intake from the inbox
// (or check the deadline inside run_ready), which changes the iteration
// contract; left for the lead to decide.
TEST(StressShutdown, DISABLED_ADrainFloodedByOtherThreadsEndsInBoundedTime) {
  Tally posts;
  std::atomic<bool> go{false};
  auto loop = std::make_unique<QiEventLoop>();
  std::vector<std::thread> producers;
  for (int p = 0; p < 2; ++p)
    producers.emplace_back([&] {
      while (!go.load()) std::this_thread::yield();
      for (;;) {
        auto item = std::make_shared<Item>(posts);
        try {
          loop->call_soon_threadsafe([item] {
            item->ran = true;
            const auto until = std::chrono::steady_clock::now() + 20us;  // slower than posting
            while (std::chrono::steady_clock::now() < until) {
            }
          });
          ++posts.accepted;
        } catch (const qi::RuntimeError&) {
          ++posts.refused;
          return;
        }
      }
    });
  loop->run_until_complete([](std::atomic<bool>& go) -> qi::Coro<void> {
    go = true;
    co_await qi::sleep(20ms);
  }(go));
  const auto t0 = std::chrono::steady_clock::now();
  loop->shutdown();
  const auto took = std::chrono::steady_clock::now() - t0;
  for (auto& t : producers) t.join();
  EXPECT_LT(took, 10s) << "shutdown took " << std::chrono::duration_cast<std::chrono::milliseconds>(took).count()
                       << " ms";
  EXPECT_EQ(posts.refused.load(), 2);
  EXPECT_EQ(posts.accepted.load() + 2, posts.ran.load() + posts.dropped.load()) << "a post was lost";
  EXPECT_GT(posts.dropped.load(), 2) << "the flood was drained after all: the test did not flood";
  loop.reset();
}

// --- Unix signals from other threads -----------------------------------------

namespace {

// Counts handler runs on the loop's thread; `done` once `target` is reached.
struct SignalRuns {
  explicit SignalRuns(long target) : target(target) {}
  void operator()() {
    if (++count == target) done.set();
  }
  long target;
  long count = 0;
  qi::Event done;
};

qi::Coro<void> wait_event(qi::Event& e) { co_await e.wait(); }

qi::Coro<void> settle() {
  for (int i = 0; i < 5; ++i) co_await qi::sleep(10ms);
}

}  // namespace

// raise() is one delivery to the calling thread, never merged with another
// (<qiloop/net/signals.h>): 8 threads × 4,000 raise(SIGUSR1) run the
// handler exactly 32,000 times. (Below the pipe's 64 KiB, so nothing is
// merged even if the loop read none of them before the last.)
QILOOP_TEST_MODES(StressSignals, RaisesFromEightThreadsRunTheHandlerOncePerRaise) {
  qi::testing::set_timeout(60s);
  auto& loop = qi::get_running_loop();
  constexpr int kThreads = 8;
  const int per = scaled(4000);
  SignalRuns runs(long(kThreads) * per);
  loop.add_signal_handler(SIGUSR1, std::ref(runs));
  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; ++t)
    senders.emplace_back([per] {
      for (int i = 0; i < per; ++i) ::raise(SIGUSR1);
    });
  co_await qi::timeout(50s, wait_event(runs.done));
  for (auto& t : senders) t.join();
  co_await settle();
  EXPECT_EQ(runs.count, long(kThreads) * per);
  loop.remove_signal_handler(SIGUSR1);
}

// Real-time signals are queued by the kernel, never merged: 4 threads ×
// 2,000 kill(getpid(), SIGRTMIN+1) run the handler once per kill that
// succeeded. ThreadSanitizer itself keeps one pending slot per signal
// number for a signal that arrives asynchronously (it delays handlers to
// a safe point), so there it may merge them: only the bounds are checked.
QILOOP_TEST_MODES(StressSignals, RealtimeKillsFromOtherThreadsAreNeverMerged) {
  qi::testing::set_timeout(60s);
  auto& loop = qi::get_running_loop();
  const int sig = SIGRTMIN + 1;
  constexpr int kThreads = 4;
  const int per = scaled(2000);
  long count = 0;
  loop.add_signal_handler(sig, [&] { ++count; });
  std::atomic<long> sent{0};
  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; ++t)
    senders.emplace_back([&, per] {
      for (int i = 0; i < per; ++i) {
        while (::kill(::getpid(), sig) != 0) std::this_thread::yield();  // EAGAIN: the queue is full
        ++sent;
      }
    });
  for (auto& t : senders) t.join();
  const long total = sent.load();
  EXPECT_EQ(total, long(kThreads) * per);
  if (!QILOOP_DETAIL_TSAN) {
    const bool all = co_await until([&] { return count == total; }, 40s);
    EXPECT_TRUE(all) << count << " of " << total;
  } else {
    (void)co_await until([&] { return count >= 1; });
  }
  co_await settle();
  if (!QILOOP_DETAIL_TSAN) {
    EXPECT_EQ(count, total);
  }
  EXPECT_GE(count, 1);
  EXPECT_LE(count, total);
  loop.remove_signal_handler(sig);
}

// A standard signal aimed at the loop's thread by 4 threads at once
// (pthread_kill): the kernel merges it while pending, so 1 ≤ runs ≤ sent —
// and nothing is stuck: once the burst is over and the runs settled, one
// more signal runs the handler exactly once more.
QILOOP_TEST_MODES(StressSignals, AStandardSignalBurstAtTheLoopThreadIsMergedNotStuck) {
  qi::testing::set_timeout(60s);
  auto& loop = qi::get_running_loop();
  constexpr int kThreads = 4;
  const int per = scaled(5000);
  long count = 0;
  loop.add_signal_handler(SIGUSR2, [&] { ++count; });
  const pthread_t target = ::pthread_self();
  std::atomic<int> senders_done{0};
  std::vector<std::thread> senders;
  for (int t = 0; t < kThreads; ++t)
    senders.emplace_back([target, per, &senders_done] {
      for (int i = 0; i < per; ++i) ::pthread_kill(target, SIGUSR2);
      ++senders_done;
    });
  // The loop keeps running meanwhile (the signals arrive between its
  // callbacks).
  const bool burst_over = co_await until([&] { return senders_done.load() == kThreads; }, 40s);
  EXPECT_TRUE(burst_over);
  for (auto& t : senders) t.join();
  co_await settle();
  const long after_burst = count;
  EXPECT_GE(after_burst, 1);
  EXPECT_LE(after_burst, long(kThreads) * per);
  std::thread([target] { ::pthread_kill(target, SIGUSR2); }).join();
  const bool one_more = co_await until([&] { return count == after_burst + 1; }, 10s);
  EXPECT_TRUE(one_more);
  co_await settle();
  EXPECT_EQ(count, after_burst + 1);
  loop.remove_signal_handler(SIGUSR2);
}

// --- Qt signals emitted from many threads ------------------------------------

namespace {

// Reads `expected` items from a stream made on this loop, checking each
// producer's order. Says when the stream is connected.
struct StreamResult {
  long items = 0, disorders = 0, dropped = 0, wrong_thread = 0;
};

qi::Coro<StreamResult> read_stream(Emitter* e, int producers, int per, Countdown* connected) {
  auto s = qi::signal_stream(e, &Emitter::two, SIZE_MAX);
  connected->done();
  const auto self = QThread::currentThread();
  std::vector<int> last(producers, -1);
  StreamResult r;
  while (r.items < long(producers) * per) {
    std::optional<std::tuple<QString, int>> v = co_await s.next();
    if (!v) break;
    const int p = std::get<0>(*v).toInt();
    if (std::get<1>(*v) != last[p] + 1) ++r.disorders;
    last[p] = std::get<1>(*v);
    if (QThread::currentThread() != self) ++r.wrong_thread;
    ++r.items;
  }
  r.dropped = static_cast<long>(s.dropped());
  co_return r;
}

}  // namespace

// One emitter, 8 threads emitting 5,000 times each, 4 streams on 4 loops
// (threads) reading every emission: each stream gets all 40,000, each
// producer's in order, none dropped.
TEST(StressQtSignals, EightEmittingThreadsFeedStreamsOnFourLoops) {
  constexpr int kLoops = 4, kProducers = 8;
  const int per = scaled(5000);
  Emitter e;
  std::vector<std::unique_ptr<qi::LoopThread>> workers;
  for (int i = 0; i < kLoops; ++i) workers.push_back(std::make_unique<qi::LoopThread>("stream-" + std::to_string(i)));
  Countdown connected(kLoops);
  std::vector<qi::ConcurrentFuture<StreamResult>> readers;
  for (auto& w : workers) readers.push_back(qi::run_coroutine_threadsafe(read_stream(&e, kProducers, per, &connected), w->loop()));
  ASSERT_TRUE(connected.wait(10s));
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p)
    producers.emplace_back([&e, p, per] {
      const QString name = QString::number(p);
      for (int i = 0; i < per; ++i) emit e.two(name, i);
    });
  for (auto& t : producers) t.join();
  for (auto& cf : readers) {
    const StreamResult r = cf.result(60s);
    EXPECT_EQ(r.items, long(kProducers) * per);
    EXPECT_EQ(r.disorders, 0);
    EXPECT_EQ(r.dropped, 0);
    EXPECT_EQ(r.wrong_thread, 0);
  }
  workers.clear();  // the streams are gone with their coroutines
  EXPECT_FALSE(e.connected(&Emitter::two));
}

// A task awaits qi::asyncsignal again and again while 4 threads emit
// without pause: each await gets exactly one emission (none twice, each
// producer's values increasing), on the loop's thread. Skipped under TSan:
// each await disconnects while other threads emit (signal_emitter.h).
QILOOP_TEST_MODES(StressQtSignals, AwaitingAnAsyncsignalRepeatedlyWhileFourThreadsEmit) {
  if (kQtRacesInvisibleToTsan) co_return;
  qi::testing::set_timeout(60s);
  constexpr int kProducers = 4;
  const int awaits = scaled(5000);
  Emitter e;
  std::atomic<bool> stop{false};
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p)
    producers.emplace_back([&, p] {
      for (int i = 0; !stop.load(); ++i) {
        emit e.one(p * 100000000 + i);
        if (i % 64 == 0) std::this_thread::yield();
      }
    });
  std::array<int, kProducers> last{-1, -1, -1, -1};
  long disorders = 0, wrong_thread = 0;
  const auto self = QThread::currentThread();
  for (int n = 0; n < awaits; ++n) {
    const int v = co_await qi::asyncsignal(&e, &Emitter::one);
    const int p = v / 100000000, i = v % 100000000;
    if (i <= last[p]) ++disorders;
    last[p] = i;
    if (QThread::currentThread() != self) ++wrong_thread;
  }
  stop = true;
  for (auto& t : producers) t.join();
  EXPECT_EQ(disorders, 0);
  EXPECT_EQ(wrong_thread, 0);
  EXPECT_FALSE(e.connected(&Emitter::one));
}

// --- QiRunner attach/detach cycles under fire ----------------------------------

// 30 runners in turn on the test's thread, each attaching a new loop,
// stopping and restarting it 5 times, then shutting it down — while 4
// threads keep posting to whichever loop is current. Every post is accepted
// or refused (qi::RuntimeError: that loop closed); every accepted callback
// runs once or is destroyed unrun at close; on each loop each producer's
// callbacks run in the order it sent them, including those sent while the
// loop was stopped (they run after restart()).
TEST(StressRunner, AttachDetachCyclesWhileThreadsPost) {
  const int cycles = kScale > 1 ? 10 : 30;
  constexpr int kProducers = 4;
  Tally posts;
  std::vector<std::unique_ptr<QiEventLoop>> loops;  // kept until the producers are done
  std::atomic<QiEventLoop*> current{nullptr};
  std::atomic<bool> finished{false};
  struct Order {
    long last = -1;
    bool ordered = true;
  };
  // Per loop and producer, touched only on the test's thread (the loops').
  std::vector<std::array<Order, kProducers>> order(cycles);
  for (int c = 0; c < cycles; ++c) loops.push_back(std::make_unique<QiEventLoop>());
  auto cycle_of = [&loops](const QiEventLoop* loop) {
    int c = 0;
    while (loops[c].get() != loop) ++c;
    return c;
  };
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p)
    producers.emplace_back([&, p] {
      for (long seq = 0; !finished.load(); ++seq) {
        QiEventLoop* loop = current.load();
        if (!loop) {
          std::this_thread::yield();
          continue;
        }
        auto item = std::make_shared<Item>(posts);
        try {
          loop->call_soon_threadsafe([&order, &cycle_of, item, loop, p, seq] {
            item->ran = true;
            Order& o = order[cycle_of(loop)][p];
            o.ordered = o.ordered && seq > o.last;
            o.last = seq;
          });
          ++posts.accepted;
        } catch (const qi::RuntimeError&) {
          ++posts.refused;
          // That loop closed; the next cycle's comes soon. Retrying at once
          // would be a storm of throws contending for the unwinder's locks.
          std::this_thread::sleep_for(50us);
        } catch (...) {
          ++posts.other_errors;
        }
        // A window of posts in flight, as in StressShutdown: producers
        // faster than the loop make each iteration longer than the last, and
        // stop(), honoured at an iteration's end, would wait for ever longer
        // ones (an overload, not what this test is about).
        while (!finished.load() && posts.accepted.load() - posts.ran.load() - posts.dropped.load() > 256)
          std::this_thread::sleep_for(50us);
      }
    });
  long restarts = 0;
  try {
  for (int c = 0; c < cycles; ++c) {
    current.store(loops[c].get());
    {
      QiRunner runner(*loops[c]);
      for (int s = 0; s < 5; ++s) {
        QEventLoop spin;
        QTimer::singleShot(2ms, &spin, &QEventLoop::quit);
        spin.exec();
        // stop() takes effect at the end of the loop's iteration, which Qt
        // runs when it next wakes the loop.
        runner.loop().stop();
        const auto bound = std::chrono::steady_clock::now() + 5s;
        while (runner.loop().is_running() && std::chrono::steady_clock::now() < bound)
          QCoreApplication::processEvents(QEventLoop::WaitForMoreEvents, 1);
        if (runner.loop().is_running()) throw std::runtime_error("stop() never took effect within 5 s");
        QEventLoop stopped;  // the loop is stopped: posts wait in its inbox
        QTimer::singleShot(1ms, &stopped, &QEventLoop::quit);
        stopped.exec();
        runner.restart();
        ++restarts;
      }
      QEventLoop spin;
      QTimer::singleShot(2ms, &spin, &QEventLoop::quit);
      spin.exec();
    }  // shutdown: callbacks still queued are run (bounded) or destroyed
    EXPECT_TRUE(loops[c]->is_closed());
  }
  } catch (const std::exception& e) {
    ADD_FAILURE() << "cycle threw: " << e.what();  // the producers must still be joined
  }
  finished = true;
  for (auto& t : producers) t.join();
  current = nullptr;
  loops.clear();
  EXPECT_EQ(restarts, long(cycles) * 5);
  EXPECT_EQ(posts.other_errors.load(), 0);
  // A refused post's callable is destroyed at once, unrun.
  EXPECT_EQ(posts.accepted.load() + posts.refused.load(), posts.ran.load() + posts.dropped.load())
      << "a post was lost";
  EXPECT_GT(posts.ran.load(), 0);
  for (int c = 0; c < cycles; ++c)
    for (int p = 0; p < kProducers; ++p) EXPECT_TRUE(order[c][p].ordered) << "cycle " << c << " producer " << p;
}
