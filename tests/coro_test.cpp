// qi::Coro<T>: laziness, inline awaiting, values and exceptions across
// nested co_await, the flat stack of synchronous children, awaiting futures,
// and the never-awaited report of debug mode.
#include "test_util.h"

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>

using namespace std::chrono_literals;
using qt::Log;
using qt::Strings;

namespace {

// A thrown type unrelated to std::exception.
struct CustomError {
  int code;
};

template <class T>
qi::Coro<T> give(T v) {
  co_return std::move(v);
}

qi::Coro<int> logged(Log& log, std::string what, int v) {
  log(std::move(what));
  co_return v;
}

qi::Coro<void> touch(int& counter) {
  ++counter;
  co_return;
}

qi::Coro<int> one() { co_return 1; }

// Throws `e` at the bottom of `depth` nested awaits; every level logs only
// when the exception did not pass through it.
template <class E>
qi::Coro<int> throw_at_depth(Log& log, int depth, E e) {
  if (depth == 0) throw e;
  int v = co_await throw_at_depth(log, depth - 1, e);
  log("level " + std::to_string(depth) + " went on");
  co_return v + 1;
}

qi::Coro<int> recurse(int n) {
  if (n == 0) co_return 0;
  co_return 1 + co_await recurse(n - 1);
}

// Suspends on its loop when `suspend` is true, otherwise completes inline.
qi::Coro<int> maybe_suspend(bool suspend, int v) {
  if (suspend) co_await qi::sleep(0ms);
  co_return v;
}

class CoroTest : public testing::Test {
 protected:
  // Runs `c` as the root of a task (nested mode) and returns its result.
  template <class T>
  T run(qi::Coro<T> c) {
    return loop.run_until_complete(std::move(c));
  }
  // How many iterations the loop has begun so far.
  uint64_t iterations() const { return loop.stats().iterations; }

  // Throws `e` three awaits down and returns what the top caught as E (a
  // sliced or wrapped exception would not be caught).
  template <class E>
  std::optional<E> caught_across_levels(E e) {
    std::optional<E> caught;
    run([&]() -> qi::Coro<void> {
      try {
        co_await throw_at_depth(log, 3, e);
        log("top went on");
      } catch (const E& got) {
        caught.emplace(got);
      }
    }());
    EXPECT_TRUE(log.items.empty()) << "no level may go on past a throwing child";
    return caught;
  }

  // Inside a task: drops a Coro that never ran, awaits one and gives one to
  // a task.
  void drop_coros() {
    run([&]() -> qi::Coro<void> {
      { auto never = logged(log, "never ran", 0); }
      co_await logged(log, "awaited", 0);
      co_await loop.create_task(logged(log, "given to a task", 0));
    }());
  }

  QiEventLoop loop;
  Log log;
};

TEST_F(CoroTest, TheBodyDoesNotRunUntilAwaited) {
  qi::Coro<int> c = logged(log, "body", 7);
  EXPECT_TRUE(c.valid());
  EXPECT_TRUE(log.items.empty()) << "calling a coroutine function must only create its frame";
  int v = run([&]() -> qi::Coro<int> {
    log("before co_await");
    int r = co_await std::move(c);
    log("after co_await");
    co_return r;
  }());
  EXPECT_EQ(v, 7);
  EXPECT_EQ(log.items, (Strings{"before co_await", "body", "after co_await"}));
}

TEST_F(CoroTest, TheBodyDoesNotRunWhenGivenToATaskUntilTheTaskSteps) {
  qi::Task<int> t = loop.create_task(logged(log, "body", 3));
  EXPECT_TRUE(log.items.empty());
  EXPECT_EQ(loop.run_until_complete(t), 3);
  EXPECT_EQ(log.items, (Strings{"body"}));
}

TEST_F(CoroTest, AwaitingASynchronousChildDoesNotGoThroughTheLoop) {
  run([&]() -> qi::Coro<void> {
    // Ready before the awaits: it runs first if the task suspends at all.
    loop.call_soon(log.recorder("callback"));
    const uint64_t before = iterations();
    int sum = co_await one();
    sum += co_await give(41);
    co_await touch(sum);
    EXPECT_EQ(sum, 43);
    EXPECT_EQ(iterations(), before);
    log("after the children");
  }());
  EXPECT_EQ(log.items, (Strings{"after the children", "callback"}));
}

TEST_F(CoroTest, YieldsIntStringVoidAndMoveOnlyValues) {
  run([&]() -> qi::Coro<void> {
    EXPECT_EQ(co_await give(42), 42);
    // Longer than any small-string buffer, so it lives on the heap.
    const std::string text(100, 'x');
    EXPECT_EQ(co_await give(text), text);
    int counter = 0;
    co_await touch(counter);
    EXPECT_EQ(counter, 1);
    std::unique_ptr<int> p = co_await give(std::make_unique<int>(5));
    EXPECT_TRUE(p && *p == 5);
  }());
}

TEST_F(CoroTest, ARootCoroutinesMoveOnlyResultReachesTheCaller) {
  std::unique_ptr<int> p = run(give(std::make_unique<int>(9)));
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 9);
}

TEST_F(CoroTest, ExceptionsCrossNestedAwaitsWithTheirOriginalType) {
  auto range = caught_across_levels(std::out_of_range("range"));
  ASSERT_TRUE(range);
  EXPECT_STREQ(range->what(), "range");
  auto custom = caught_across_levels(CustomError{17});
  ASSERT_TRUE(custom);
  EXPECT_EQ(custom->code, 17);
  auto cancelled = caught_across_levels(qi::CancelledError("stop"));
  ASSERT_TRUE(cancelled);
  EXPECT_EQ(cancelled->message(), "stop");
}

TEST_F(CoroTest, CatchingStdExceptionDoesNotSwallowCancelledError) {
  bool swallowed = false;
  auto middle = [&]() -> qi::Coro<int> {
    try {
      co_return co_await throw_at_depth(log, 2, qi::CancelledError("through"));
    } catch (const std::exception&) {
      swallowed = true;
      co_return -1;
    }
  };
  std::string message;
  run([&]() -> qi::Coro<void> {
    try {
      co_await middle();
    } catch (const qi::CancelledError& e) {
      message = e.message();
    }
  }());
  EXPECT_FALSE(swallowed);
  EXPECT_EQ(message, "through");
}

TEST_F(CoroTest, AnExceptionEscapingTheRootReachesRunUntilCompleteWithItsType) {
  EXPECT_THROW(run(throw_at_depth(log, 4, std::out_of_range("root"))), std::out_of_range);
  try {
    run(throw_at_depth(log, 4, CustomError{3}));
    ADD_FAILURE() << "no exception";
  } catch (const CustomError& e) {
    EXPECT_EQ(e.code, 3);
  }
  EXPECT_TRUE(log.items.empty());
}

TEST_F(CoroTest, ACoroMayBeAwaitedAsAnLvalueOnce) {
  std::string second_error;
  run([&]() -> qi::Coro<void> {
    auto c = logged(log, "body", 11);
    EXPECT_EQ(co_await c, 11);
    EXPECT_TRUE(c.valid());
    try {
      co_await c;
      log("awaited twice");
    } catch (const qi::RuntimeError& e) {
      second_error = e.what();
    }
  }());
  EXPECT_EQ(log.items, (Strings{"body"}));
  EXPECT_NE(second_error.find("already ran"), std::string::npos) << second_error;
}

TEST_F(CoroTest, AwaitingAnEmptyOrMovedFromCoroThrowsInvalidArgument) {
  int thrown = 0;
  run([&]() -> qi::Coro<void> {
    qi::Coro<int> empty;
    EXPECT_FALSE(empty.valid());
    try {
      co_await empty;
    } catch (const std::invalid_argument&) {
      ++thrown;
    }
    auto given = one();
    qi::Task<int> t = loop.create_task(std::move(given));
    try {
      co_await given;  // NOLINT(bugprone-use-after-move): the point of the test
    } catch (const std::invalid_argument&) {
      ++thrown;
    }
    EXPECT_EQ(co_await t, 1);
  }());
  EXPECT_EQ(thrown, 2);
}

TEST_F(CoroTest, AMillionSequentialSynchronousAwaitsKeepTheStackFlat) {
  // Without a flat stack this overflows in builds that do not tail-call
  // symmetric transfer (g++ -O0, ASan, TSan).
  constexpr int kAwaits = 1'000'000;
  const uint64_t before = iterations();
  long sum = run([]() -> qi::Coro<long> {
    long s = 0;
    for (int i = 0; i < kAwaits; ++i) s += co_await one();
    co_return s;
  }());
  EXPECT_EQ(sum, kAwaits);
  // One iteration for the task's only step (plus the stop): nothing suspended.
  EXPECT_LE(iterations() - before, 2u);
}

#if QILOOP_TAIL_CALLS
// Symmetric transfer is a tail call here: nesting costs heap, not stack.
constexpr int kRecursionDepth = 1'000'000;
#else
// g++ at -O0 and under sanitizers does not tail-call symmetric transfer, so
// each nested level takes stack; only a depth a real program might reach is
// required.
constexpr int kRecursionDepth = 10'000;
#endif

TEST_F(CoroTest, DeepRecursionThroughNestedAwaits) { EXPECT_EQ(run(recurse(kRecursionDepth)), kRecursionDepth); }

TEST_F(CoroTest, AChildThatSuspendsResumesItsParentsWholeChain) {
  auto fut = loop.create_future<int>();
  auto leaf = [&]() -> qi::Coro<int> {
    log("leaf waits");
    co_await qi::sleep(1ms);
    log("leaf slept");
    int v = co_await fut;
    log("leaf got " + std::to_string(v));
    co_return v;
  };
  auto middle = [&]() -> qi::Coro<int> {
    int v = co_await leaf();
    log("middle resumed");
    v += co_await one();  // synchronous again after a suspension
    co_return v;
  };
  loop.call_later(100ms, [&] {  // well after the 1 ms sleep, even on a loaded machine
    log("future set");
    fut.set_result(10);
  });
  int v = run([&]() -> qi::Coro<int> {
    int r = co_await middle();
    log("top resumed");
    co_return r;
  }());
  EXPECT_EQ(v, 11);
  EXPECT_EQ(log.items,
            (Strings{"leaf waits", "leaf slept", "future set", "leaf got 10", "middle resumed", "top resumed"}));
}

TEST_F(CoroTest, SuspendingAndSynchronousChildrenMayAlternateInOneChain) {
  // Every third child suspends: resumption through the loop and inline
  // completion must hand results back to the same parent frame alike.
  constexpr int kChildren = 300;
  const uint64_t before = iterations();
  long sum = run([]() -> qi::Coro<long> {
    long s = 0;
    for (int i = 0; i < kChildren; ++i) s += co_await maybe_suspend(i % 3 == 0, i);
    co_return s;
  }());
  EXPECT_EQ(sum, kChildren * (kChildren - 1) / 2);
  EXPECT_GE(iterations() - before, static_cast<uint64_t>(kChildren / 3));
}

TEST_F(CoroTest, AwaitingAFutureLvalueYieldsACopyAndKeepsItsValue) {
  auto f = loop.create_future<std::string>();
  loop.call_soon([f] { f.set_result("kept"); });
  std::string got = run([&]() -> qi::Coro<std::string> {
    std::string v = co_await f;
    v += " (changed copy)";
    co_return v;
  }());
  EXPECT_EQ(got, "kept (changed copy)");
  EXPECT_EQ(f.result(), "kept");
}

TEST_F(CoroTest, AwaitingAFutureRvalueMovesTheValueOut) {
  auto f = loop.create_future<std::unique_ptr<int>>();
  auto other_handle = f;
  loop.call_soon([f] { f.set_result(std::make_unique<int>(8)); });
  std::unique_ptr<int> p = run([&]() -> qi::Coro<std::unique_ptr<int>> { co_return co_await std::move(f); }());
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, 8);
  EXPECT_TRUE(other_handle.done());
  EXPECT_EQ(other_handle.result(), nullptr) << "the value must have been moved out, not copied";
}

TEST_F(CoroTest, AwaitingADoneFutureDoesNotSuspend) {
  auto f = loop.create_future<int>();
  f.set_result(4);
  auto v = loop.create_future<void>();
  v.set_result();
  run([&]() -> qi::Coro<void> {
    loop.call_soon(log.recorder("callback"));
    const uint64_t before = iterations();
    EXPECT_EQ(co_await f, 4);
    co_await v;
    EXPECT_EQ(iterations(), before);
    log("after the awaits");
  }());
  EXPECT_EQ(log.items, (Strings{"after the awaits", "callback"}));
}

TEST_F(CoroTest, AwaitingAFutureOfAnotherLoopThrowsNamingTheFix) {
  QiEventLoop other;
  auto foreign = other.create_future<int>();
  std::string message;
  run([&]() -> qi::Coro<void> {
    try {
      co_await foreign;
    } catch (const qi::RuntimeError& e) {
      message = e.what();
    }
  }());
  EXPECT_NE(message.find("another event loop"), std::string::npos) << message;
  EXPECT_NE(message.find("call_soon_threadsafe"), std::string::npos) << message;
  EXPECT_FALSE(foreign.done());
}

TEST_F(CoroTest, AFuturesExceptionIsRethrownWithItsOriginalType) {
  auto range = loop.create_future<int>();
  auto custom = loop.create_future<void>();
  auto cancelled = loop.create_future<int>();
  loop.call_soon([&] {
    range.set_exception(std::make_exception_ptr(std::out_of_range("range")));
    custom.set_exception(std::make_exception_ptr(CustomError{5}));
    cancelled.cancel("the reason");
  });
  run([&]() -> qi::Coro<void> {
    try {
      co_await range;
      log("no throw");
    } catch (const std::out_of_range& e) {
      log(std::string("out_of_range: ") + e.what());
    }
    try {
      co_await custom;
      log("no throw");
    } catch (const CustomError& e) {
      log("CustomError " + std::to_string(e.code));
    }
    try {
      co_await cancelled;
      log("no throw");
    } catch (const qi::CancelledError& e) {
      log("CancelledError: " + e.message());
    }
  }());
  EXPECT_EQ(log.items, (Strings{"out_of_range: range", "CustomError 5", "CancelledError: the reason"}));
}

// Collects the messages the loop's exception handler receives.
struct HandlerMessages {
  explicit HandlerMessages(QiEventLoop& loop) {
    loop.set_exception_handler(
        [this](QiEventLoop&, const qi::ExceptionContext& ctx) { messages.push_back(ctx.message); });
  }
  Strings messages;
};

TEST_F(CoroTest, DebugModeReportsACoroDestroyedWithoutRunning) {
  loop.set_debug(true);
  HandlerMessages handler(loop);
  drop_coros();
  EXPECT_EQ(log.items, (Strings{"awaited", "given to a task"}));
  ASSERT_EQ(handler.messages.size(), 1u) << "only the Coro that never ran is reported";
  EXPECT_NE(handler.messages[0].find("never awaited"), std::string::npos) << handler.messages[0];
}

TEST_F(CoroTest, WithoutDebugModeADroppedCoroIsNotReported) {
  loop.set_debug(false);
  HandlerMessages handler(loop);
  drop_coros();
  EXPECT_EQ(log.items, (Strings{"awaited", "given to a task"}));
  EXPECT_TRUE(handler.messages.empty());
}

}  // namespace
