// loop.run_in_executor, qi::to_thread, the default executor and its
// shutdown: the round trip, exceptions and where they came from,
// cancellation, a loop closed under running work, and exit (QiRunner,
// qi::run) that never hangs on a worker. Real time: the workers must make
// progress; every wait is bounded.
#include <qiloop/testing.h>

#include "threads/bounded_flags.h"

#include <QtCore/QCoreApplication>
#include <QtCore/QThread>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using qi::testing_threads::eventually;
using qi::testing_threads::Flag;

namespace {

// Counts every construction, copy and destruction of results.
struct Counted {
  static inline std::atomic<int> alive{0};
  static inline std::atomic<int> copies{0};
  static inline std::atomic<int> made{0};  // by Counted(int)
  int value = 0;
  explicit Counted(int v) : value(v) {
    ++alive;
    ++made;
  }
  Counted(const Counted& o) : value(o.value) {
    ++alive;
    ++copies;
  }
  Counted(Counted&& o) noexcept : value(o.value) { ++alive; }
  ~Counted() { --alive; }
  static void reset() {
    alive = 0;
    copies = 0;
    made = 0;
  }
};

struct AppError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// As std::source_location spells this file.
std::string file_name() { return __FILE__; }

// Waits, without blocking the loop, until pred() holds (bounded).
template <class Pred>
qi::Coro<bool> until(Pred pred, std::chrono::milliseconds bound = 5s) {
  const auto end = std::chrono::steady_clock::now() + bound;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) co_return false;
    co_await qi::sleep(1ms);
  }
  co_return true;
}

QILOOP_TEST_MODES(RunInExecutor, RunsOnAWorkerAndCompletesOnTheLoopThread) {
  auto& loop = qi::get_running_loop();
  qi::ThreadPoolExecutor pool(2);
  std::thread::id worker;
  qi::Future<int> f = loop.run_in_executor(&pool, [&](int a, int b) {
    worker = std::this_thread::get_id();
    return a * b;
  }, 6, 7);
  QThread* completed_on = nullptr;
  f.add_done_callback([&] { completed_on = QThread::currentThread(); });
  EXPECT_EQ(co_await f, 42);
  EXPECT_NE(worker, std::this_thread::get_id());
  co_await qi::sleep(0);
  EXPECT_EQ(completed_on, loop.thread());
}

QILOOP_TEST_MODES(ToThread, VoidMoveOnlyAndReferenceArguments) {
  std::atomic<int> n{0};
  co_await qi::to_thread([&] { ++n; });
  EXPECT_EQ(n.load(), 1);
  std::unique_ptr<int> p = co_await qi::to_thread([](std::unique_ptr<int> in) { return in; },
                                                  std::make_unique<int>(7));
  QILOOP_CO_ASSERT(ASSERT_TRUE(p));
  EXPECT_EQ(*p, 7);
  int out = 0;
  co_await qi::to_thread([](int& o) { o = 5; }, std::ref(out));
  EXPECT_EQ(out, 5);
  // A qi::Future<R> like any other: assignable, awaitable under wait_for.
  qi::Future<int> f = qi::to_thread([] { return 3; });
  EXPECT_EQ(co_await qi::wait_for(qi::to_thread([] { return 4; }), 5s), 4);
  EXPECT_EQ(co_await f, 3);
}

QILOOP_TEST_MODES(ToThread, TheResultMovesThroughWithoutCopies) {
  Counted::reset();
  {
    Counted arg(1);
    Counted r = co_await qi::to_thread([](Counted c) { return Counted(c.value + 1); }, std::move(arg));
    EXPECT_EQ(r.value, 2);
    EXPECT_EQ(Counted::copies.load(), 0);
    // An lvalue argument is decay-copied once, as std::thread does.
    Counted r2 = co_await qi::to_thread([](const Counted& c) { return Counted(c.value); }, arg);
    EXPECT_EQ(Counted::copies.load(), 1);
    (void)r2;
  }
  // The futures' states (holding the moved-from results) go once the wake-ups that resumed us return.
  co_await qi::sleep(0);
  EXPECT_EQ(Counted::alive.load(), 0);
}

// A link of a chain through values: a done future's value holds the one
// before it.
struct Link {
  std::optional<qi::Future<std::shared_ptr<Link>>> prev;
  std::shared_ptr<int> token;
};

// The decay-copies go on the worker: an argument holding the last handle of
// a chain of 100,000 futures lets the whole chain go there, one link at a
// time past a few dozen (no deeper on the worker's stack than on the
// loop's), while the loop runs on.
QILOOP_TEST_MODES(ToThread, AnArgumentHoldingTheLastHandleOfADeepChainLetsItGoOnTheWorker) {
  auto& loop = qi::get_running_loop();
  std::thread::id went_on;  // written before the job's completion is posted
  auto first = std::make_shared<Link>();
  first->token = std::shared_ptr<int>(new int(1), [&went_on](int* p) {
    went_on = std::this_thread::get_id();
    delete p;
  });
  std::weak_ptr<int> watch = first->token;
  qi::Future<std::shared_ptr<Link>> chain = loop.create_future<std::shared_ptr<Link>>();
  chain.set_result(std::move(first));
  for (int i = 0; i < 100'000; ++i) {
    auto link = std::make_shared<Link>();
    link->prev = std::move(chain);
    chain = loop.create_future<std::shared_ptr<Link>>();
    chain.set_result(std::move(link));
  }
  co_await qi::to_thread([](qi::Future<std::shared_ptr<Link>> last) { EXPECT_TRUE(last.done()); }, std::move(chain));
  EXPECT_TRUE(watch.expired());
  EXPECT_NE(went_on, std::thread::id());
  EXPECT_NE(went_on, std::this_thread::get_id());
}

QILOOP_TEST_MODES(ToThread, RefusesAnEmptyCallable) {
  EXPECT_THROW((void)qi::to_thread(std::function<int()>{}), std::invalid_argument);
  int (*none)() = nullptr;
  EXPECT_THROW((void)qi::get_running_loop().run_in_executor(nullptr, none), std::invalid_argument);
  co_return;
}

QILOOP_TEST_MODES(ToThread, ExceptionsKeepTheirType) {
  try {
    co_await qi::to_thread([] { throw AppError("disk on fire"); });
    ADD_FAILURE();
  } catch (const AppError& e) {
    EXPECT_STREQ(e.what(), "disk on fire");
  }
  try {
    co_await qi::to_thread([]() -> int { throw 42; });
    ADD_FAILURE();
  } catch (int v) {
    EXPECT_EQ(v, 42);
  }
  try {
    co_await qi::to_thread([] { throw qi::ValueError("bad value"); });
    ADD_FAILURE();
  } catch (const qi::ValueError& e) {
    EXPECT_STREQ(e.what(), "bad value");
  }
  try {
    co_await qi::to_thread([] { throw std::out_of_range("range"); });
    ADD_FAILURE();
  } catch (const std::out_of_range&) {
  }
}

// The original program 004 lost every stack crossing its threads. Here the
// report of an exception nobody retrieved names where the work was
// submitted — for the executor's future itself, and for a task the
// exception escaped from (its call graph says both where the task was and
// which submission threw).
QILOOP_TEST_MODES(ToThread, ReportsNameWhereTheWorkWasSubmitted) {
  auto& loop = qi::get_running_loop();
  std::vector<qi::ExceptionContext> reports;
  loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& c) { reports.push_back(c); });
  qi::ThreadPoolExecutor pool(1);
  const int line1 = __LINE__ + 1;
  qi::Future<void> f = loop.run_in_executor(&pool, [] { throw AppError("lost"); });
  EXPECT_NE(f.ref().describe().find(file_name() + ":" + std::to_string(line1)), std::string::npos)
      << f.ref().describe();
  {
    const bool ok = co_await until([&] { return f.done(); });
    QILOOP_CO_ASSERT(ASSERT_TRUE(ok));
  }
  f = {};  // dropped unretrieved
  co_await qi::sleep(0);
  QILOOP_CO_ASSERT(ASSERT_EQ(reports.size(), 1u));
  EXPECT_NE(reports[0].message.find("submitted at " + file_name() + ":" + std::to_string(line1)), std::string::npos)
      << reports[0].message;
  EXPECT_NE(reports[0].message.find("exception was never retrieved"), std::string::npos);
  try {
    std::rethrow_exception(reports[0].exception);
  } catch (const AppError& e) {
    EXPECT_STREQ(e.what(), "lost");
  }

  int line2 = 0;
  auto worker_task = [&]() -> qi::Coro<int> {
    line2 = __LINE__ + 1;
    co_return co_await qi::to_thread([]() -> int { throw AppError("deep"); });
  };
  qi::Task<int> t = loop.create_task(worker_task(), "loader");
  {
    const bool ok = co_await until([&] { return t.done(); });
    QILOOP_CO_ASSERT(ASSERT_TRUE(ok));
  }
  const std::string graph = qi::format_call_graph(t);
  EXPECT_NE(graph.find("Its exception was thrown by work submitted at " + file_name() + ":" + std::to_string(line2)),
            std::string::npos)
      << graph;
  reports.clear();
  t = {};
  co_await qi::sleep(0);
  QILOOP_CO_ASSERT(ASSERT_EQ(reports.size(), 1u));
  EXPECT_NE(reports[0].message.find("Task 'loader' exception was never retrieved"), std::string::npos);
  try {
    std::rethrow_exception(reports[0].exception);
  } catch (const AppError& e) {
    EXPECT_STREQ(e.what(), "deep");
  }
  // The default handler's text is the call graph's, so it shows it too.
  EXPECT_NE(qi::format_call_graph(reports[0].future).find("submitted at"), std::string::npos);
  reports.clear();
}

// The flags are the test body's, which outlives the worker's use of them.
qi::Coro<int> await_slow_counted(Flag* release, Flag* started, std::atomic<bool>* finished) {
  Counted c = co_await qi::to_thread([release, started, finished] {
    started->set();
    release->wait();
    *finished = true;
    return Counted(9);
  });
  co_return c.value;
}

QILOOP_TEST_MODES(ToThread, CancellingTheAwaiterCompletesAtOnceAndTheResultIsDropped) {
  auto& loop = qi::get_running_loop();
  Counted::reset();
  Flag release, started;
  std::atomic<bool> finished{false};
  qi::Task<int> t = loop.create_task(await_slow_counted(&release, &started, &finished));
  {
    const bool ok = co_await until([&] { return started.is_set(); });
    QILOOP_CO_ASSERT(ASSERT_TRUE(ok));
  }
  t.cancel();
  co_await qi::sleep(0);
  co_await qi::sleep(0);
  EXPECT_TRUE(t.cancelled());   // at once: the worker still runs
  EXPECT_FALSE(finished.load());  // not interrupted
  release.set();
  EXPECT_TRUE(co_await until([&] { return finished.load(); }));
  // The result comes back and is destroyed on the loop; nothing leaks.
  EXPECT_TRUE(co_await until([&] { return Counted::alive.load() == 0; }));
}

// asyncio's _chain_future: cancelling the future of a job no worker took
// yet withdraws it (it never runs); a running one runs on.
QILOOP_TEST_MODES(RunInExecutor, CancellingAQueuedJobMeansItNeverRuns) {
  auto& loop = qi::get_running_loop();
  qi::ThreadPoolExecutor pool(1);
  Flag release, started;
  qi::Future<void> busy = loop.run_in_executor(&pool, [&] {
    started.set();
    release.wait();
  });
  {
    const bool ok = co_await until([&] { return started.is_set(); });
    QILOOP_CO_ASSERT(ASSERT_TRUE(ok));
  }
  std::atomic<bool> ran{false}, ran_awaited{false};
  qi::Future<void> queued = loop.run_in_executor(&pool, [&] { ran = true; });
  // The same through a task awaiting the job: cancelling the task cancels what it awaits.
  qi::Task<void> awaiting = loop.create_task([](qi::Future<void> f) -> qi::Coro<void> { co_await f; }(
      loop.run_in_executor(&pool, [&] { ran_awaited = true; })));
  co_await qi::sleep(0);
  EXPECT_TRUE(awaiting.cancel());
  EXPECT_TRUE(queued.cancel());
  EXPECT_TRUE(busy.cancel());  // running: cancelled for the loop, runs on
  co_await qi::sleep(0);
  co_await qi::sleep(0);
  EXPECT_TRUE(awaiting.cancelled());
  release.set();
  pool.shutdown(true);  // every work has ended (or been skipped)
  EXPECT_FALSE(ran.load());
  EXPECT_FALSE(ran_awaited.load());
  EXPECT_TRUE(queued.cancelled());
  EXPECT_TRUE(busy.cancelled());
  co_await qi::sleep(0);
}

QILOOP_TEST_MODES(DefaultExecutor, IsABoundedPoolCreatedOnFirstUse) {
  auto& loop = qi::get_running_loop();
  EXPECT_EQ(loop.default_executor(), nullptr);
  EXPECT_EQ(co_await loop.run_in_executor(nullptr, [] { return 1; }), 1);
  auto* pool = dynamic_cast<qi::ThreadPoolExecutor*>(loop.default_executor().get());
  QILOOP_CO_ASSERT(ASSERT_NE(pool, nullptr));
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  EXPECT_EQ(pool->max_workers(), std::min(32, cores + 4));
  // Configurable: a pool of one runs the jobs one at a time.
  auto one = std::make_shared<qi::ThreadPoolExecutor>(1);
  loop.set_default_executor(one);
  std::atomic<int> active{0}, high{0};
  std::vector<qi::Future<void>> fs;
  for (int i = 0; i < 8; ++i) {
    fs.push_back(qi::to_thread([&] {
      int now = ++active;
      if (now > high) high = now;
      std::this_thread::sleep_for(1ms);
      --active;
    }));
  }
  for (auto& f : fs) co_await f;
  EXPECT_EQ(high.load(), 1);
  EXPECT_THROW(loop.set_default_executor(nullptr), std::invalid_argument);
}

QILOOP_TEST_MODES(DefaultExecutor, ManySmallJobsAllComplete) {
  std::vector<qi::Future<int>> fs;
  fs.reserve(10'000);
  for (int i = 0; i < 10'000; ++i) fs.push_back(qi::to_thread([i] { return i; }));
  long sum = 0;
  for (auto& f : fs) sum += co_await f;
  EXPECT_EQ(sum, 10'000L * 9'999 / 2);
}

QILOOP_TEST_MODES(DefaultExecutor, ShutdownWaitsForQueuedWorkThenRejectsNewWork) {
  auto& loop = qi::get_running_loop();
  loop.set_default_executor(std::make_shared<qi::ThreadPoolExecutor>(1));
  std::atomic<int> ran{0};
  std::vector<qi::Future<void>> fs;
  for (int i = 0; i < 5; ++i) fs.push_back(qi::to_thread([&] {
    std::this_thread::sleep_for(2ms);
    ++ran;
  }));
  co_await loop.shutdown_default_executor();
  EXPECT_EQ(ran.load(), 5);
  EXPECT_EQ(loop.default_executor(), nullptr);
  for (auto& f : fs) co_await f;
  try {
    (void)loop.run_in_executor(nullptr, [] {});
    ADD_FAILURE();
  } catch (const qi::RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("shutdown_default_executor"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("executor of your own"), std::string::npos) << e.what();
  }
  try {
    (void)qi::to_thread([] {});
    ADD_FAILURE();
  } catch (const qi::RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("to_thread: the loop's default executor was shut down"),
              std::string::npos)
        << e.what();
    EXPECT_NE(std::string(e.what()).find("executor of your own"), std::string::npos) << e.what();
  }
  // An explicit executor still works.
  qi::ThreadPoolExecutor pool(1);
  EXPECT_EQ(co_await loop.run_in_executor(&pool, [] { return 2; }), 2);
}

QILOOP_TEST_MODES(DefaultExecutor, ShutdownIsBoundedAndReportsWhatStillRuns) {
  auto& loop = qi::get_running_loop();
  std::vector<qi::ExceptionContext> reports;
  loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& c) { reports.push_back(c); });
  auto pool = std::make_shared<qi::ThreadPoolExecutor>(2);
  loop.set_default_executor(pool);
  Flag release, started;
  auto blocking = [&] {
    started.set();
    release.wait(10s);
    return 1;
  };
  // (g++ places a call's site where its argument list closes.)
  const int line = __LINE__ + 1;
  qi::Future<int> slow = qi::to_thread(blocking);
  {
    const bool ok = co_await until([&] { return started.is_set(); });
    QILOOP_CO_ASSERT(ASSERT_TRUE(ok));
  }
  const auto t0 = std::chrono::steady_clock::now();
  co_await loop.shutdown_default_executor(100ms);
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_GE(took, 100ms);
  EXPECT_LT(took, 3s);
  QILOOP_CO_ASSERT(ASSERT_EQ(reports.size(), 1u));
  EXPECT_NE(reports[0].message.find("did not end within 100 ms"), std::string::npos) << reports[0].message;
  EXPECT_NE(reports[0].message.find("still running: work submitted at " + file_name() + ":" + std::to_string(line)),
            std::string::npos)
      << reports[0].message;
  release.set();
  EXPECT_EQ(co_await slow, 1);  // the loop still runs: its result arrives
  pool->shutdown(true);
}

TEST(ToThread, WithoutARunningLoopThrows) {
  try {
    (void)qi::to_thread([] {});
    ADD_FAILURE() << "no exception";
  } catch (const qi::RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("no running event loop in this thread"), std::string::npos) << e.what();
  }
}

// A loop closed (and destroyed) while its work runs: the result is dropped
// on the worker, nothing touches the dead loop, nothing leaks.
TEST(RunInExecutor, ALoopClosedWhileWorkRunsDropsTheResult) {
  Counted::reset();
  qi::ThreadPoolExecutor pool(2);
  Flag release, started;
  {
    QiEventLoop loop;
    qi::Future<Counted> f = loop.run_in_executor(&pool, [&] {
      started.set();
      release.wait();
      return Counted(1);
    });
    ASSERT_TRUE(started.wait());
    loop.close();
    EXPECT_FALSE(f.done());
    try {
      (void)loop.run_in_executor(&pool, [] {});
      ADD_FAILURE() << "run_in_executor on a closed loop did not throw";
    } catch (const qi::RuntimeError& e) {
      EXPECT_NE(std::string(e.what()).find("run_in_executor"), std::string::npos) << e.what();
    }
  }
  // The destroyed loop's default executor is not joined: its worker may
  // outlive this test, so what it touches is shared, not on this stack.
  auto release_default = std::make_shared<Flag>();
  {
    QiEventLoop loop;  // destroyed, not only closed, with its default executor busy
    (void)loop.run_in_executor(nullptr, [release_default] {
      release_default->wait();
      return Counted(2);
    });
  }
  release.set();
  release_default->set();
  pool.shutdown(true);
  // Both results made, then dropped on their workers.
  EXPECT_TRUE(eventually([] { return Counted::made.load() == 2 && Counted::alive.load() == 0; }))
      << Counted::made.load() << " made, " << Counted::alive.load() << " alive";
}

// asyncio.Runner: leaving the runner shuts the default executor down with
// a bounded wait: an application whose worker still runs exits promptly,
// and the report names the work.
TEST(DefaultExecutor, QiRunnerExitsPromptlyWhileAWorkerStillRuns) {
  Flag release, started;
  std::vector<std::string> reports;
  std::shared_ptr<qi::Executor> kept;
  int line = 0;
  std::chrono::steady_clock::duration took{};
  {
    auto runner = std::make_unique<QiRunner>();
    QiEventLoop& loop = runner->loop();
    loop.set_executor_shutdown_timeout(200ms);
    loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& c) { reports.push_back(c.message); });
    line = __LINE__ + 1;
    qi::Future<void> f = loop.run_in_executor(nullptr, [&] {
      started.set();
      release.wait(20s);
    });
    kept = loop.default_executor();
    ASSERT_TRUE(started.wait());
    const auto t0 = std::chrono::steady_clock::now();
    runner.reset();
    took = std::chrono::steady_clock::now() - t0;
  }
  EXPECT_LT(took, 3s);
  EXPECT_GE(took, 200ms);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_NE(reports[0].find("still running: work submitted at " + file_name() + ":" + std::to_string(line)),
            std::string::npos)
      << reports[0];
  release.set();
  kept->shutdown(true);
}

TEST(DefaultExecutor, QiRunExitsPromptlyWhileAWorkerStillRuns) {
  Flag release, started;
  std::vector<std::string> reports;
  std::shared_ptr<qi::Executor> kept;
  const auto t0 = std::chrono::steady_clock::now();
  int v = qi::run([&]() -> qi::Coro<int> {
    auto& loop = qi::get_running_loop();
    loop.set_executor_shutdown_timeout(200ms);
    loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& c) { reports.push_back(c.message); });
    qi::Future<void> f = qi::to_thread([&] {
      started.set();
      release.wait(20s);
    });
    kept = loop.default_executor();
    co_await until([&] { return started.is_set(); });
    co_return 3;
  }());
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(v, 3);
  EXPECT_LT(took, 3s);
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_NE(reports[0].find("still running: work submitted at " + file_name()), std::string::npos) << reports[0];
  release.set();
  kept->shutdown(true);
}

}  // namespace

namespace {
// A result whose move throws on the loop's thread (not on the worker's).
struct MoveThrowsOnLoop {
  static inline std::thread::id loop_thread;
  int v = 0;
  explicit MoveThrowsOnLoop(int x) : v(x) {}
  MoveThrowsOnLoop(MoveThrowsOnLoop&& o) : v(o.v) {
    if (std::this_thread::get_id() == loop_thread) throw std::runtime_error("move failed");
  }
};
}  // namespace

// The result's move into the future, on the loop's thread, ran in a noexcept
// callback: a throwing move constructor called std::terminate. The awaiter
// now gets that exception.
QILOOP_TEST_MODES(ToThread, AResultWhoseMoveThrowsOnTheLoopReachesTheAwaiter) {
  MoveThrowsOnLoop::loop_thread = std::this_thread::get_id();
  auto f = qi::to_thread([] { return MoveThrowsOnLoop(3); });
  bool threw = false;
  try {
    (void)co_await std::move(f);
  } catch (const std::runtime_error&) {
    threw = true;
  }
  EXPECT_TRUE(threw);
}

// 10,000 jobs queued behind two blocked ones, all cancelled: none of the
// queued ones runs, every future ends cancelled, nothing leaks.
QILOOP_TEST_MODES(ToThread, TenThousandQueuedJobsCancelledNeverRun) {
  qi::ThreadPoolExecutor pool(2);
  std::atomic<int> ran{0};
  Flag release;
  std::vector<qi::Future<int>> fs;
  fs.reserve(10002);
  for (int i = 0; i < 10002; ++i)
    fs.push_back(qi::get_running_loop().run_in_executor(&pool, [&ran, &release, i] {
      if (i < 2) release.wait();
      ++ran;
      return i;
    }));
  for (auto& f : fs) f.cancel();
  for (auto& f : fs) EXPECT_TRUE(f.cancelled());
  release.set();
  pool.shutdown(true);
  EXPECT_LE(ran.load(), 2);
  co_await qi::sleep(10ms);  // the completions come back and are dropped
}
