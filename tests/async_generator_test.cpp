// qi::AsyncGenerator<T> and QiEventLoop::shutdown_asyncgens(): asyncio's
// async generators. The Python programs in the comments print the same
// orders (CPython 3.11 and 3.13 agree on them).
#include <qiloop/async_generator.h>
#include <qiloop/testing.h>

#include "test_util.h"

#include <QtCore/QCoreApplication>
#include <QtCore/QTimer>

#include <algorithm>
#include <exception>
#include <functional>
#include <type_traits>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

using Log = std::vector<std::string>;

// Logs its destruction: a local whose destructor is the generator's `finally`.
struct Guard {
  Log* log;
  std::string name;
  ~Guard() { log->push_back(name + " destroyed"); }
};

struct Boom : std::runtime_error {
  using std::runtime_error::runtime_error;
};

qi::AsyncGenerator<int> ticks(Log& log, int n) {
  Guard g{&log, "ticks"};
  log.push_back("started");
  for (int i = 0; i < n; ++i) {
    co_await qi::sleep(1s);
    co_yield i;
  }
  log.push_back("returned");
}

// Suspended `depth` Coros deep, each logging its destruction.
qi::Coro<void> nested_wait(Log& log, std::string name, int depth) {
  Guard g{&log, name};
  if (depth > 0)
    co_await nested_wait(log, name + "+", depth - 1);
  else
    co_await qi::sleep(1h);
}

qi::Coro<int> twice(int v) {
  co_await qi::sleep(1s);
  co_return 2 * v;
}

// The clean-up every closing test uses: it catches GeneratorExit, awaits,
// and lets it through. (C++ forbids co_await and co_yield inside a catch
// clause: the handler keeps the exception, the await follows it.)
qi::AsyncGenerator<int> closable(Log& log, std::chrono::milliseconds cleanup = 1s) {
  Guard g{&log, "closable"};
  std::exception_ptr exit;
  try {
    co_yield 1;
    co_yield 2;
  } catch (const qi::GeneratorExit&) {
    log.push_back("GeneratorExit");
    exit = std::current_exception();
  }
  if (exit) {
    co_await qi::sleep(cleanup);
    log.push_back("cleaned");
    std::rethrow_exception(exit);
  }
}

}  // namespace

// async def ticks(n):
//     print("started")
//     for i in range(n): await asyncio.sleep(1); yield i
//     print("returned")
// g = ticks(2)                      # nothing printed yet
// print([await anext(g), await anext(g)]); await anext(g, None) -> None, again None
QILOOP_TEST_MODES_VT(AsyncGenerator, YieldsInOrderStartsLazilyThenStaysExhausted) {
  auto& loop = qi::get_running_loop();
  const auto t0 = loop.time();
  Log log;
  auto gen = ticks(log, 2);
  co_await qi::sleep(5s);
  EXPECT_TRUE(log.empty()) << "the body ran before the first next()";
  std::vector<int> got;
  while (std::optional<int> v = co_await gen.next()) got.push_back(*v);
  EXPECT_EQ(got, (std::vector<int>{0, 1}));
  EXPECT_EQ(loop.time() - t0, 7s);
  EXPECT_EQ(log, (Log{"started", "returned", "ticks destroyed"}));
  EXPECT_TRUE(gen.finished());
  EXPECT_EQ(co_await gen.next(), std::nullopt);
  EXPECT_EQ(co_await gen.next(), std::nullopt);
}

QILOOP_TEST_MODES_VT(AsyncGenerator, AwaitsCorosTasksFuturesAndOtherGenerators) {
  auto& loop = qi::get_running_loop();
  qi::Future<int> fut = loop.create_future<int>();
  loop.call_later(3s, [fut] { fut.set_result(30); });
  Log log;
  auto inner = ticks(log, 1);
  auto gen = [](qi::Future<int> f, qi::AsyncGenerator<int>& in) -> qi::AsyncGenerator<int> {
    co_yield co_await twice(5);                                 // a Coro
    co_yield co_await qi::create_task(twice(10));               // a task
    co_yield co_await f;                                        // a future
    co_yield 100 + (co_await in.next()).value_or(-1);           // another generator
  }(fut, inner);
  std::vector<int> got;
  while (std::optional<int> v = co_await gen.next()) got.push_back(*v);
  EXPECT_EQ(got, (std::vector<int>{10, 20, 30, 100}));
}

QILOOP_TEST_MODES_VT(AsyncGenerator, AnExceptionReachesNextWithItsTypeAndFinishesIt) {
  Log log;
  auto gen = [](Log& l) -> qi::AsyncGenerator<int> {
    Guard g{&l, "gen"};
    co_yield 1;
    co_await qi::sleep(1s);
    throw Boom("boom");
  }(log);
  EXPECT_EQ(co_await gen.next(), 1);
  bool caught = false;
  try {
    co_await gen.next();
  } catch (const Boom& e) {
    caught = true;
    EXPECT_STREQ(e.what(), "boom");
  }
  EXPECT_TRUE(caught);
  EXPECT_EQ(log, (Log{"gen destroyed"}));  // unwound before next() rethrew
  EXPECT_TRUE(gen.finished());
  EXPECT_EQ(co_await gen.next(), std::nullopt);
}

QILOOP_TEST_MODES_VT(AsyncGenerator, MoveOnlyValuesAreMovedOut) {
  auto gen = []() -> qi::AsyncGenerator<std::unique_ptr<int>> {
    auto p = std::make_unique<int>(7);
    co_yield std::move(p);
    co_await qi::sleep(1s);
    co_yield std::make_unique<int>(8);
  }();
  std::optional<std::unique_ptr<int>> a = co_await gen.next();
  std::optional<std::unique_ptr<int>> b = co_await gen.next();
  QILOOP_CO_ASSERT(ASSERT_TRUE(a && *a && b && *b));
  EXPECT_EQ(**a, 7);
  EXPECT_EQ(**b, 8);
  EXPECT_FALSE(co_await gen.next());
}

// async def closable():
//     try: yield 1; yield 2
//     except GeneratorExit: print("GeneratorExit"); await asyncio.sleep(1); print("cleaned"); raise
// g = closable(); await anext(g); await g.aclose(); print("closed")   # 1 s later
// await anext(g, None) -> None; await g.aclose() -> no-op
QILOOP_TEST_MODES_VT(AsyncGenerator, AcloseThrowsGeneratorExitAtTheYieldAndItsCleanupMayAwait) {
  auto& loop = qi::get_running_loop();
  Log log;
  auto gen = closable(log);
  EXPECT_EQ(co_await gen.next(), 1);
  const auto t0 = loop.time();
  co_await gen.aclose();
  log.push_back("closed");
  EXPECT_EQ(loop.time() - t0, 1s);
  EXPECT_EQ(log, (Log{"GeneratorExit", "cleaned", "closable destroyed", "closed"}));
  EXPECT_TRUE(gen.finished());
  EXPECT_EQ(co_await gen.next(), std::nullopt);
  co_await gen.aclose();
  EXPECT_EQ(log.size(), 4u);
}

QILOOP_TEST_MODES_VT(AsyncGenerator, AcloseAcceptsAReturnAndRethrowsOtherErrors) {
  auto returns = []() -> qi::AsyncGenerator<int> {
    try {
      co_yield 1;
    } catch (const qi::GeneratorExit&) {
      co_return;
    }
  }();
  EXPECT_EQ(co_await returns.next(), 1);
  co_await returns.aclose();  // a return is a close
  EXPECT_TRUE(returns.finished());

  auto fails = []() -> qi::AsyncGenerator<int> {
    try {
      co_yield 1;
    } catch (const qi::GeneratorExit&) {
      throw Boom("cleanup failed");
    }
  }();
  EXPECT_EQ(co_await fails.next(), 1);
  EXPECT_THROW(co_await fails.aclose(), Boom);
  EXPECT_TRUE(fails.finished());
  co_await fails.aclose();  // finished: nothing more
}

// async def ignorer():
//     try: yield 1
//     except GeneratorExit: yield 2
// g = ignorer(); await anext(g); await g.aclose()
//   -> RuntimeError: async generator ignored GeneratorExit
QILOOP_TEST_MODES_VT(AsyncGenerator, YieldingWhileClosingIsARuntimeError) {
  Log log;
  auto gen = [](Log& l) -> qi::AsyncGenerator<int> {
    Guard g{&l, "ignorer"};
    bool closing = false;
    try {
      co_yield 1;
    } catch (const qi::GeneratorExit&) {
      closing = true;
    }
    if (closing) co_yield 2;
  }(log);
  EXPECT_EQ(co_await gen.next(), 1);
  std::string message;
  try {
    co_await gen.aclose();
  } catch (const qi::RuntimeError& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("async generator ignored GeneratorExit"), std::string::npos) << message;
  // Closed nonetheless (a deviation: CPython's next anext() would resume it);
  // its frame waits at the second co_yield for the destructor.
  EXPECT_TRUE(gen.finished());
  EXPECT_EQ(co_await gen.next(), std::nullopt);
  EXPECT_TRUE(log.empty());
  gen = {};
  EXPECT_EQ(log, (Log{"ignorer destroyed"}));
}

QILOOP_TEST_MODES_VT(AsyncGenerator, AcloseOfANeverStartedGeneratorNeverRunsIt) {
  Log log;
  auto gen = ticks(log, 3);
  co_await gen.aclose();
  EXPECT_TRUE(gen.finished());
  EXPECT_EQ(co_await gen.next(), std::nullopt);
  EXPECT_TRUE(log.empty());
}

// Destroying a generator suspended at a co_yield runs its destructors (not
// its catch clauses) before the destructor returns.
QILOOP_TEST_MODES_VT(AsyncGenerator, DestroyingASuspendedGeneratorRunsItsDestructorsAtOnce) {
  Log log;
  std::optional<qi::AsyncGenerator<int>> gen(closable(log));
  EXPECT_EQ(co_await gen->next(), 1);
  gen.reset();
  EXPECT_EQ(log, (Log{"closable destroyed"}));
  auto never = ticks(log, 1);  // a never-started one: nothing of the body ran, nothing to undo
}

QILOOP_TEST_MODES_VT(AsyncGenerator, ASecondConsumerGetsAlreadyRunning) {
  Log log;
  auto gen = ticks(log, 2);
  qi::Task<std::optional<int>> first = qi::create_task([](qi::AsyncGenerator<int>& g) -> qi::Coro<std::optional<int>> {
    co_return co_await g.next();
  }(gen));
  co_await qi::sleep(0.5s);  // `first` is inside the body, in its sleep
  std::string next_error, aclose_error;
  try {
    co_await gen.next();
  } catch (const qi::RuntimeError& e) {
    next_error = e.what();
  }
  try {
    co_await gen.aclose();
  } catch (const qi::RuntimeError& e) {
    aclose_error = e.what();
  }
  EXPECT_NE(next_error.find("anext(): asynchronous generator is already running"), std::string::npos) << next_error;
  EXPECT_NE(aclose_error.find("aclose(): asynchronous generator is already running"), std::string::npos)
      << aclose_error;
  EXPECT_EQ(co_await first, 0);  // the refused calls disturbed nothing
  EXPECT_EQ(co_await gen.next(), 1);
}

QILOOP_TEST_MODES_VT(AsyncGenerator, CallingNextFromItsOwnBodyIsRefused) {
  struct Self {
    qi::AsyncGenerator<int> gen;
    std::string error;
  } self;
  self.gen = [](Self& s) -> qi::AsyncGenerator<int> {
    bool refused = false;
    try {
      co_await s.gen.next();
    } catch (const qi::RuntimeError& e) {
      refused = true;
      s.error = e.what();
    }
    co_yield refused ? 1 : 0;
  }(self);
  EXPECT_EQ(co_await self.gen.next(), 1);
  EXPECT_NE(self.error.find("anext(): asynchronous generator is already running"), std::string::npos) << self.error;
}

// async def gen():
//     try: yield 1; await asyncio.sleep(10); yield 2
//     finally: print("finally")
// t = create_task(consume(g)) (inside the sleep); t.cancel() -> "finally", then
// CancelledError in the consumer; await anext(g, None) -> None
QILOOP_TEST_MODES_VT(AsyncGenerator, CancellingTheConsumerCancelsTheAwaitInsideAndFinishesIt) {
  Log log;
  auto gen = ticks(log, 5);
  EXPECT_EQ(co_await gen.next(), 0);
  auto consumer = qi::create_task([](qi::AsyncGenerator<int>& g, Log& l) -> qi::Coro<void> {
    try {
      co_await g.next();
    } catch (const qi::CancelledError& e) {
      l.push_back(std::string("consumer: ") + e.what());
      throw;
    }
  }(gen, log));
  co_await qi::sleep(0.5s);
  consumer.cancel("stop");
  try {
    co_await consumer;
  } catch (const qi::CancelledError&) {
  }
  EXPECT_TRUE(consumer.cancelled());
  EXPECT_EQ(log, (Log{"started", "ticks destroyed", "consumer: stop"}));
  EXPECT_TRUE(gen.finished());
  EXPECT_EQ(co_await gen.next(), std::nullopt);
}

QILOOP_TEST_MODES_VT(AsyncGenerator, ItRunsInsideTheConsumersTask) {
  auto gen = []() -> qi::AsyncGenerator<qi::TaskRef> {
    co_yield qi::current_task();
    co_await qi::sleep(1s);
    co_yield qi::current_task();
  }();
  // (Compared inside: a task whose result refers to itself would never be freed.)
  auto consumer = qi::create_task([](qi::AsyncGenerator<qi::TaskRef>& g) -> qi::Coro<bool> {
    co_return *co_await g.next() == qi::current_task();
  }(gen));
  EXPECT_TRUE(co_await consumer);
  EXPECT_EQ(*co_await gen.next(), qi::current_task());
}

// The cancel reaches a generator suspended in a chain of Coros, unwinds it
// innermost first, and ends the consumer's next() with the CancelledError.
QILOOP_TEST_MODES_VT(AsyncGenerator, CancellingTheConsumerReachesACoroChainInside) {
  Log log;
  auto gen = [](Log& l) -> qi::AsyncGenerator<int> {
    Guard g{&l, "gen"};
    co_await nested_wait(l, "coro", 1);
    co_yield 1;
  }(log);
  auto consumer = qi::create_task([](qi::AsyncGenerator<int>& g) -> qi::Coro<void> { co_await g.next(); }(gen));
  co_await qi::sleep(1s);
  consumer.cancel();
  EXPECT_THROW(co_await consumer, qi::CancelledError);
  EXPECT_EQ(log, (Log{"coro+ destroyed", "coro destroyed", "gen destroyed"}));
  EXPECT_TRUE(gen.finished());
}

// A task holding a generator suspended at a co_yield is cancelled: the
// task's frame goes, and the generator's destructors run with it.
QILOOP_TEST_MODES_VT(AsyncGenerator, ACancelledTaskHoldingAGeneratorDestroysIt) {
  Log log;
  auto holder = qi::create_task([](Log& l) -> qi::Coro<void> {
    auto gen = closable(l);
    co_await gen.next();
    co_await qi::sleep(1h);
  }(log));
  co_await qi::sleep(1s);
  holder.cancel();
  EXPECT_THROW(co_await holder, qi::CancelledError);
  EXPECT_EQ(log, (Log{"closable destroyed"}));
}

// Cancellation at the aclose() clean-up's own await.
QILOOP_TEST_MODES_VT(AsyncGenerator, CancellingAnAcloseCancelsItsCleanup) {
  Log log;
  auto gen = closable(log);
  EXPECT_EQ(co_await gen.next(), 1);
  auto closer = qi::create_task([](qi::AsyncGenerator<int>& g) -> qi::Coro<void> { co_await g.aclose(); }(gen));
  co_await qi::sleep(0.5s);
  closer.cancel();
  EXPECT_THROW(co_await closer, qi::CancelledError);
  EXPECT_EQ(log, (Log{"GeneratorExit", "closable destroyed"}));
  EXPECT_TRUE(gen.finished());
}

// The owner drops the generator while another task's next() is inside it:
// the frame stays until that next() ends, then goes.
QILOOP_TEST_MODES_VT(AsyncGenerator, AGeneratorDroppedWhileRunningGoesWhenTheOperationEnds) {
  Log log;
  auto owned = std::make_unique<qi::AsyncGenerator<int>>(ticks(log, 3));
  auto consumer = qi::create_task([](qi::AsyncGenerator<int>* g) -> qi::Coro<std::optional<int>> {
    co_return co_await g->next();
  }(owned.get()));
  co_await qi::sleep(0.5s);
  owned.reset();
  EXPECT_EQ(log, (Log{"started"}));
  EXPECT_EQ(co_await consumer, 0);
  EXPECT_EQ(log, (Log{"started", "ticks destroyed"}));
}

// A value yielded without suspending returns to the consumer without
// growing the stack, in every build (as awaiting a Coro that finishes
// synchronously does).
QILOOP_TEST_MODES_VT(AsyncGenerator, AMillionSynchronousYieldsRunInConstantStack) {
  auto count = [](int n) -> qi::AsyncGenerator<int> {
    for (int i = 0; i < n; ++i) co_yield i;
  }(1'000'000);
  long long sum = 0;
  while (std::optional<int> v = co_await count.next()) sum += *v;
  EXPECT_EQ(sum, 999'999LL * 1'000'000 / 2);
}

QILOOP_TEST_MODES_VT(AsyncGenerator, AnEmptyGeneratorIsRefused) {
  qi::AsyncGenerator<int> empty;
  EXPECT_FALSE(empty.valid());
  EXPECT_FALSE(empty.finished());
  EXPECT_THROW((void)empty.next(), std::invalid_argument);
  EXPECT_THROW((void)empty.aclose(), std::invalid_argument);
  co_return;
}

// --- shutdown_asyncgens ------------------------------------------------------

// Cancelling shutdown_asyncgens() cancels every closer (gather's rule).
QILOOP_TEST_MODES_VT(ShutdownAsyncgens, CancellingItCancelsTheClosers) {
  auto& loop = qi::get_running_loop();
  Log la, lb;
  auto a = closable(la), b = closable(lb);
  co_await a.next();
  co_await b.next();
  auto shutting = qi::create_task(loop.shutdown_asyncgens());
  co_await qi::sleep(0.5s);  // both clean-ups are in their sleep
  shutting.cancel();
  EXPECT_THROW(co_await shutting, qi::CancelledError);
  co_await qi::sleep(0);  // the second closer's cancellation lands
  EXPECT_EQ(la, (Log{"GeneratorExit", "closable destroyed"}));
  EXPECT_EQ(lb, la);
}

// async def main():
//     a = closable(); await anext(a)         # suspended: closed
//     b = closable(); await anext(b)         # the same, concurrently with a
//     c = closable()                         # never started: not registered
//     d = closable(); [x async for x in d]   # finished: not registered
//     await loop.shutdown_asyncgens()        # 1 s: both clean-ups at once
QILOOP_TEST_MODES_VT(ShutdownAsyncgens, ClosesTheStartedUnfinishedOnesConcurrently) {
  auto& loop = qi::get_running_loop();
  Log la, lb, lc, ld;
  auto a = closable(la), b = closable(lb), c = closable(lc), d = closable(ld);
  EXPECT_EQ(co_await a.next(), 1);
  EXPECT_EQ(co_await b.next(), 1);
  while (co_await d.next()) {
  }
  {
    auto gone = closable(la);  // started, then destroyed: the registry forgets it
    co_await gone.next();
  }
  la.clear();
  const auto t0 = loop.time();
  co_await loop.shutdown_asyncgens();
  EXPECT_EQ(loop.time() - t0, 1s);
  EXPECT_EQ(la, (Log{"GeneratorExit", "cleaned", "closable destroyed"}));
  EXPECT_EQ(lb, la);
  EXPECT_TRUE(lc.empty());
  EXPECT_EQ(ld, (Log{"closable destroyed"}));
  EXPECT_TRUE(a.finished() && b.finished() && d.finished());
  EXPECT_FALSE(c.finished());
  // A generator started afterwards is not that call's: a second one closes it.
  EXPECT_EQ(co_await c.next(), 1);
  co_await loop.shutdown_asyncgens();
  EXPECT_TRUE(c.finished());
}

// asyncio reports each aclose() that raised: "an error occurred during
// closing of asynchronous generator ...", with the exception.
QILOOP_TEST_MODES_VT(ShutdownAsyncgens, ReportsAGeneratorWhoseAcloseThrew) {
  auto& loop = qi::get_running_loop();
  std::vector<qi::ExceptionContext> reports;
  loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& c) { reports.push_back(c); });
  auto ignorer = []() -> qi::AsyncGenerator<int> {
    bool closing = false;
    try {
      co_yield 1;
    } catch (const qi::GeneratorExit&) {
      closing = true;
    }
    if (closing) co_yield 2;
  }();
  auto fails = []() -> qi::AsyncGenerator<int> {
    try {
      co_yield 1;
    } catch (const qi::GeneratorExit&) {
      throw Boom("cleanup failed");
    }
  }();
  co_await ignorer.next();
  co_await fails.next();
  co_await loop.shutdown_asyncgens();
  QILOOP_CO_ASSERT(ASSERT_EQ(reports.size(), 2u));
  int runtime_errors = 0, booms = 0;
  for (const auto& r : reports) {
    EXPECT_NE(r.message.find("an error occurred during closing of asynchronous generator 0x"), std::string::npos)
        << r.message;
    try {
      std::rethrow_exception(r.exception);
    } catch (const qi::RuntimeError&) {
      ++runtime_errors;
    } catch (const Boom&) {
      ++booms;
    }
  }
  EXPECT_EQ(runtime_errors, 1);
  EXPECT_EQ(booms, 1);
}

namespace {

// Drives `gen` to its first co_yield from a task, then leaves it suspended
// (abandoned: never exhausted).
qi::Coro<void> start(qi::AsyncGenerator<int>& gen) { EXPECT_EQ(co_await gen.next(), 1); }

}  // namespace

// asyncio.run closes a generator the program abandoned: its clean-up runs
// (and awaits) before run() returns.
TEST(ShutdownAsyncgens, RunClosesAnAbandonedGenerator) {
  Log log;
  qi::AsyncGenerator<int> kept = closable(log, 1ms);
  qi::run(start(kept));
  EXPECT_EQ(log, (Log{"GeneratorExit", "cleaned", "closable destroyed"}));
  EXPECT_TRUE(kept.finished());
}

// A leftover task holding a generator: cancelled at shutdown. One holds it
// suspended at a co_yield (the task's frame goes: its destructors run); one
// is inside it (the CancelledError goes through the generator).
TEST(ShutdownAsyncgens, RunCancelsTasksHoldingGenerators) {
  Log log;
  qi::run([](Log& l) -> qi::Coro<void> {
    qi::create_task([](Log& l) -> qi::Coro<void> {
      auto gen = closable(l);
      co_await gen.next();
      co_await qi::sleep(1h);
    }(l));
    qi::create_task([](Log& l) -> qi::Coro<void> {
      auto gen = ticks(l, 1);
      co_await gen.next();  // inside: sleeping
    }(l));
    co_await qi::sleep(0);
  }(log));
  std::sort(log.begin(), log.end());
  EXPECT_EQ(log, (Log{"closable destroyed", "started", "ticks destroyed"}));
}

TEST(ShutdownAsyncgens, ShutdownReportsAFailedClose) {
  QiEventLoop loop;
  std::vector<std::string> reports;
  loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& c) { reports.push_back(c.message); });
  Log log;
  auto gen = [](Log& l) -> qi::AsyncGenerator<int> {
    bool closing = false;
    try {
      co_yield 1;
    } catch (const qi::GeneratorExit&) {
      closing = true;
    }
    if (closing) {
      co_await qi::sleep(1ms);
      l.push_back("failing");
      throw Boom("cleanup failed");
    }
  }(log);
  loop.run_until_complete(start(gen));
  loop.shutdown();
  EXPECT_EQ(log, (Log{"failing"}));
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_NE(reports[0].find("an error occurred during closing of asynchronous generator"), std::string::npos);
}

TEST(ShutdownAsyncgens, TheRunnersDestructorClosesThem) {
  Log log;
  qi::AsyncGenerator<int> kept = closable(log, 1ms);
  {
    QiRunner runner;
    runner.loop().create_task([](qi::AsyncGenerator<int>& g) -> qi::Coro<void> {
      co_await start(g);
      QCoreApplication::exit(0);
    }(kept));
    QTimer guard;
    guard.setSingleShot(true);
    QObject::connect(&guard, &QTimer::timeout, [] { QCoreApplication::exit(99); });
    guard.start(2s);
    EXPECT_EQ(QCoreApplication::exec(), 0);
  }
  EXPECT_EQ(log, (Log{"GeneratorExit", "cleaned", "closable destroyed"}));
}

namespace {

// Runs a task that is inside `gen` (awaiting next()), then closes the loop
// under it, without shutdown: the task is destroyed pending (reported).
// `before_close` runs while the task is still inside.
void close_loop_under_a_consumer(qi::AsyncGenerator<int>& gen, const std::function<void()>& before_close = {}) {
  QiEventLoop loop;
  std::vector<std::string> reports;
  loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& c) { reports.push_back(c.message); });
  loop.create_task([](qi::AsyncGenerator<int>& g) -> qi::Coro<void> { co_await g.next(); }(gen));
  loop.call_later(10ms, [&] { loop.stop(); });
  loop.run_forever();
  if (before_close) before_close();
  loop.close();
  EXPECT_EQ(reports, (std::vector<std::string>{"Task was destroyed but it is pending!"}));
}

}  // namespace

// The generator is finished; its frame goes with its owner, which outlives
// the loop, innermost Coro first.
TEST(AsyncGeneratorLifetime, ALoopClosedUnderAConsumerLeavesTheGeneratorFinished) {
  Log log;
  qi::AsyncGenerator<int> kept = [](Log& l) -> qi::AsyncGenerator<int> {
    Guard g{&l, "gen"};
    co_await nested_wait(l, "coro", 2);
    co_yield 1;
  }(log);
  close_loop_under_a_consumer(kept);
  EXPECT_TRUE(kept.finished());
  EXPECT_TRUE(log.empty());
  kept = {};
  EXPECT_EQ(log, (Log{"coro++ destroyed", "coro+ destroyed", "coro destroyed", "gen destroyed"}));
}

// Its owner went first (while the task was inside): the frame goes with the
// task.
TEST(AsyncGeneratorLifetime, AnOrphanedGeneratorGoesWithItsConsumer) {
  Log log;
  auto owned = std::make_unique<qi::AsyncGenerator<int>>(ticks(log, 2));
  qi::AsyncGenerator<int>& gen = *owned;
  close_loop_under_a_consumer(gen, [&] {
    owned.reset();
    EXPECT_EQ(log, (Log{"started"}));
  });
  EXPECT_EQ(log, (Log{"started", "ticks destroyed"}));
}

static_assert(!std::is_base_of_v<std::exception, qi::GeneratorExit>,
              "a catch (const std::exception&) in a generator must not swallow its closing");
