// The coroutine test kit (<qiloop/testing.h>): bodies that pass, and the
// failures it must report — each failing body runs as a sub-test whose
// failures are captured and checked.
#include <qiloop/testing.h>

#include <QtCore/QThread>

#include <gtest/gtest-spi.h>

#include <chrono>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

// Runs body through the kit and returns the failures it reported.
std::vector<std::string> failures_of(qi::Coro<void> body, qi::testing::TestOptions options = {}) {
  ::testing::TestPartResultArray results;
  {
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::INTERCEPT_ONLY_CURRENT_THREAD, &results);
    qi::testing::run_test(std::move(body), options);
  }
  std::vector<std::string> messages;
  for (int i = 0; i < results.size(); ++i) messages.push_back(results.GetTestPartResult(i).message());
  return messages;
}

// The one failure reported, which must contain every piece.
void expect_one_failure(const std::vector<std::string>& failures, std::initializer_list<const char*> pieces) {
  ASSERT_EQ(failures.size(), 1u) << ::testing::PrintToString(failures);
  for (const char* piece : pieces) EXPECT_NE(failures[0].find(piece), std::string::npos) << failures[0];
}

qi::Coro<void> never_done() {
  qi::Future<void> never = qi::get_running_loop().create_future();
  co_await never;
}

}  // namespace

// --- Bodies that pass -----------------------------------------------------------

QILOOP_TEST(Kit, BodyRunsAsATaskOnARunningLoopInNestedMode) {
  QiEventLoop& loop = qi::get_running_loop();
  EXPECT_TRUE(loop.is_running());
  EXPECT_EQ(loop.get_clock(), nullptr);
  EXPECT_EQ(qi::current_task().describe().find("test body") != std::string::npos, true)
      << qi::current_task().describe();
  auto t0 = loop.time();
  co_await qi::sleep(1ms);
  EXPECT_GE(loop.time() - t0, 1ms);
}

QILOOP_TEST_MODES_VT(Kit, ModesRunTheBodyOnceEach) {
  static int runs[2] = {0, 0};
  const auto mode = qi::testing::run_mode();
  ++runs[mode == qi::testing::RunMode::kAttached];
  QiEventLoop& loop = qi::get_running_loop();
  EXPECT_TRUE(loop.is_running());
  auto t0 = loop.time();
  co_await qi::sleep(1h);
  EXPECT_EQ(loop.time() - t0, 1h);
  // Each mode's test runs its own body once (the other may not have run yet).
  EXPECT_EQ(runs[mode == qi::testing::RunMode::kAttached], 1);
  if (mode == qi::testing::RunMode::kAttached) {
    // Attached: the application's exec() drives the loop.
    EXPECT_EQ(QThread::currentThread()->loopLevel(), 1);
  }
}

QILOOP_TEST_VT(Kit, VirtualTimeSleepsAnHourExactlyAndAtOnce) {
  QiEventLoop& loop = qi::get_running_loop();
  EXPECT_EQ(loop.get_clock(), &qi::testing::clock());
  EXPECT_TRUE(qi::testing::clock().autojump());
  const auto real0 = std::chrono::steady_clock::now();
  const auto t0 = loop.time();
  co_await qi::sleep(1h);
  EXPECT_EQ(loop.time() - t0, 1h);
  EXPECT_LT(std::chrono::steady_clock::now() - real0, 5s);
}

QILOOP_TEST_VT(Kit, AwaitedTasksAndRetrievedExceptionsAreFine) {
  qi::Task<int> t = qi::create_task([]() -> qi::Coro<int> {
    co_await qi::sleep(5s);
    throw std::runtime_error("expected");
  }());
  bool caught = false;
  try {
    co_await t;
  } catch (const std::runtime_error&) {
    caught = true;
  }
  EXPECT_TRUE(caught);
}

QILOOP_TEST(Kit, CoAssertPassesThrough) {
  int reached = 0;
  QILOOP_CO_ASSERT(ASSERT_EQ(1 + 1, 2));
  ++reached;
  co_await qi::sleep(0ms);
  EXPECT_EQ(reached, 1);
}

class KitFixture : public ::testing::Test {
 protected:
  void SetUp() override { value = 42; }
  void TearDown() override { EXPECT_EQ(value, 43) << "the body ran between SetUp and TearDown"; }
  int value = 0;
};

QILOOP_TEST_F(KitFixture, BodySeesTheFixture) {
  EXPECT_EQ(value, 42);
  co_await qi::sleep(0ms);
  ++value;
}

QILOOP_TEST_F_VT(KitFixture, VirtualTimeBodySeesTheFixture) {
  co_await qi::sleep(24h);
  EXPECT_EQ(value, 42);
  ++value;
}

// --- What makes a test fail -------------------------------------------------------

TEST(KitFailures, AControlBodyReportsNothing) {
  EXPECT_TRUE(failures_of([]() -> qi::Coro<void> { co_await qi::sleep(0ms); }()).empty());
}

TEST(KitFailures, AnExceptionEscapingTheBody) {
  expect_one_failure(failures_of([]() -> qi::Coro<void> {
                       co_await qi::sleep(0ms);
                       throw std::runtime_error("boom");
                     }()),
                     {"the test body threw", "boom"});
}

TEST(KitFailures, CancellationEscapingTheBody) {
  expect_one_failure(failures_of([]() -> qi::Coro<void> {
                       qi::current_task().cancel("stop here");
                       co_await qi::sleep(0ms);
                     }()),
                     {"the test body threw", "qi::CancelledError"});
}

TEST(KitFailures, ATaskLeftPendingIsReportedAndCancelled) {
  auto cancelled = std::make_shared<bool>(false);
  expect_one_failure(failures_of(
                         [](std::shared_ptr<bool> cancelled) -> qi::Coro<void> {
                           qi::create_task([](std::shared_ptr<bool> cancelled) -> qi::Coro<void> {
                             try {
                               co_await qi::sleep(1h);
                             } catch (const qi::CancelledError&) {
                               *cancelled = true;
                               throw;
                             }
                           }(cancelled));
                           co_await qi::sleep(0ms);
                         }(cancelled),
                         {.virtual_time = true}),
                     {"1 task(s) still pending"});
  EXPECT_TRUE(*cancelled);
}

TEST(KitFailures, AnExceptionNobodyRetrieved) {
  expect_one_failure(failures_of([]() -> qi::Coro<void> {
                       qi::Task<void> t = qi::create_task([]() -> qi::Coro<void> {
                         throw std::logic_error("lost");
                         co_return;
                       }());
                       while (!t.done()) co_await qi::sleep(0ms);
                       // t goes with the body's frame, its exception unseen.
                     }()),
                     {"exception was never retrieved", "lost"});
}

TEST(KitFailures, AnExceptionEscapingAPlainCallback) {
  expect_one_failure(failures_of([]() -> qi::Coro<void> {
                       qi::get_running_loop().call_soon([] { throw std::runtime_error("from a callback"); });
                       co_await qi::sleep(0ms);
                       co_await qi::sleep(0ms);
                     }()),
                     {"Exception in callback", "from a callback"});
}

TEST(KitFailures, AHangIsStoppedByTheWatchdog) {
  const auto real0 = std::chrono::steady_clock::now();
  expect_one_failure(failures_of(never_done(), {.timeout = 200ms}), {"did not finish within 0.2 s", "watchdog"});
  EXPECT_LT(std::chrono::steady_clock::now() - real0, 10s);
}

TEST(KitFailures, AVirtualTimeHangWithAutojumpOffSaysSo) {
  expect_one_failure(failures_of(
                         []() -> qi::Coro<void> {
                           qi::testing::clock().set_autojump(false);
                           co_await qi::sleep(1s);  // nobody advances the clock
                         }(),
                         {.virtual_time = true, .timeout = 200ms}),
                     {"did not finish within", "autojump is off"});
}

TEST(KitFailures, SetTimeoutRearmsTheWatchdogFromTheBody) {
  const auto real0 = std::chrono::steady_clock::now();
  expect_one_failure(failures_of([]() -> qi::Coro<void> {
                       qi::testing::set_timeout(100ms);
                       co_await never_done();
                     }()),
                     {"did not finish within 0.1 s"});
  EXPECT_LT(std::chrono::steady_clock::now() - real0, 10s) << "the default 20 s watchdog was not replaced";
}

TEST(KitFailures, ACoAssertEndsTheBodyWithItsOwnFailureOnly) {
  auto reached = std::make_shared<int>(0);
  auto failures = failures_of(
      [](std::shared_ptr<int> reached) -> qi::Coro<void> {
        co_await qi::sleep(0ms);
        QILOOP_CO_ASSERT(ASSERT_EQ(1 + 1, 3) << "arithmetic");
        ++*reached;
      }(reached));
  expect_one_failure(failures, {"arithmetic"});
  EXPECT_EQ(*reached, 0);
}

TEST(KitFailures, ACoAssertInANestedCoroutineEndsTheBody) {
  auto reached = std::make_shared<int>(0);
  auto failures = failures_of(
      [](std::shared_ptr<int> reached) -> qi::Coro<void> {
        co_await []() -> qi::Coro<void> {
          co_await qi::sleep(0ms);
          QILOOP_CO_ASSERT(ASSERT_TRUE(false) << "nested");
        }();
        ++*reached;
      }(reached));
  expect_one_failure(failures, {"nested"});
  EXPECT_EQ(*reached, 0);
}

TEST(KitFailures, RunTestInsideARunningLoopIsRefused) {
  QiEventLoop loop;
  std::vector<std::string> failures;
  loop.call_soon([&] {
    failures = failures_of([]() -> qi::Coro<void> { co_return; }());
    loop.stop();
  });
  loop.run_forever();
  expect_one_failure(failures, {"already runs on this thread"});
}

TEST(KitFailures, ABlockedThreadAbortsWithAMessage) {
  // The soft watchdog cannot stop a body that never yields: the hard one
  // ends the process (0.1 s + 1 s here).
  EXPECT_DEATH(failures_of(
                   []() -> qi::Coro<void> {
                     std::this_thread::sleep_for(30s);
                     co_return;
                   }(),
                   {.timeout = 100ms}),
               "never returned to the event loop");
}

TEST(KitAccessors, RunModeOutsideABodyThrowsNamingTheFix) {
  try {
    (void)qi::testing::run_mode();
    ADD_FAILURE() << "no error";
  } catch (const qi::RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("qi::testing::run_mode(): no test body is running"), std::string::npos)
        << e.what();
  }
  // Inside a body it answers (the body's own loop is nested here).
  auto failures = failures_of([]() -> qi::Coro<void> {
    EXPECT_EQ(qi::testing::run_mode(), qi::testing::RunMode::kNested);
    co_return;
  }());
  EXPECT_TRUE(failures.empty()) << ::testing::PrintToString(failures);
}

TEST(KitAccessors, ClockAndSetTimeoutOutsideABodyThrow) {
  EXPECT_THROW(qi::testing::clock(), qi::RuntimeError);
  EXPECT_THROW(qi::testing::set_timeout(1s), qi::RuntimeError);
  auto failures = failures_of([]() -> qi::Coro<void> {
    EXPECT_THROW(qi::testing::clock(), qi::RuntimeError) << "a real-clock body has no VirtualClock";
    co_return;
  }());
  EXPECT_TRUE(failures.empty()) << ::testing::PrintToString(failures);
}

// A handler the body installs may capture the body's locals: once the
// body's frame is gone, the shutdown's reports go to the kit's handler again
// (under ASan a late call here was a heap-use-after-free of `seen`).
TEST(KitFailures, AHandlerTheBodyInstalledIsReplacedByTheKitsWhenTheBodyEnds) {
  auto failures = failures_of(
      []() -> qi::Coro<void> {
        auto body_alive = std::make_shared<bool>(true);
        struct EndsWithTheBody {
          std::shared_ptr<bool> alive;
          ~EndsWithTheBody() { *alive = false; }
        } ends{body_alive};
        std::vector<std::string> seen;
        qi::get_running_loop().set_exception_handler(
            [&seen, body_alive](QiEventLoop&, const qi::ExceptionContext& ctx) {
              if (!*body_alive) return ADD_FAILURE() << "the body's handler ran after the body ended";
              seen.push_back(ctx.message);
            });
        qi::create_task([]() -> qi::Coro<void> {  // left pending: cancelled at shutdown, then throws
          try {
            co_await qi::sleep(1h);
          } catch (const qi::CancelledError&) {
          }
          throw std::runtime_error("on the way out");
        }());
        co_await qi::sleep(0ms);
      }(),
      {.virtual_time = true});
  ASSERT_EQ(failures.size(), 2u) << ::testing::PrintToString(failures);
  EXPECT_NE(failures[0].find("1 task(s) still pending"), std::string::npos) << failures[0];
  EXPECT_NE(failures[1].find("on the way out"), std::string::npos) << failures[1];
}

TEST(KitAccessors, SetTimeoutRefusesANonPositiveTimeoutAndCapsAHugeOne) {
  // milliseconds::max() overflowed the hard watchdog's deadline, which then
  // aborted the process at once; -5ms made QTimer warn and fire at once.
  auto failures = failures_of([]() -> qi::Coro<void> {
    EXPECT_THROW(qi::testing::set_timeout(-5ms), std::invalid_argument);
    EXPECT_THROW(qi::testing::set_timeout(0ms), std::invalid_argument);
    qi::testing::set_timeout(std::chrono::milliseconds::max());
    co_await qi::sleep(1100ms);  // past the hard watchdog's 1 s minimum
    qi::testing::set_timeout(std::chrono::hours(1'000'000));
    co_await qi::sleep(1ms);
  }());
  EXPECT_TRUE(failures.empty()) << ::testing::PrintToString(failures);
  expect_one_failure(failures_of([]() -> qi::Coro<void> { co_return; }(), {.timeout = -1ms}),
                     {"run_test", "not positive"});
}

// --- docs/testing.md's example, verbatim --------------------------------------------

qi::Coro<int> retry(std::function<qi::Coro<int>()> fetch, int attempts) {
  auto delay = 1s;
  for (int attempt = 1;; ++attempt) {
    try {
      co_return co_await fetch();
    } catch (const std::runtime_error&) {
      if (attempt == attempts) throw;
    }
    co_await qi::sleep(delay);  // not inside the catch: C++ cannot co_await there
    delay *= 2;
  }
}

QILOOP_TEST_VT(Retry, SucceedsOnTheThirdAttemptAfterOneAndTwoSeconds) {
  auto& loop = qi::get_running_loop();
  const auto t0 = loop.time();
  std::vector<QiEventLoop::duration> calls;  // when fetch was called
  int value = co_await retry(
      [&]() -> qi::Coro<int> {
        calls.push_back(loop.time() - t0);
        if (calls.size() < 3) throw std::runtime_error("unavailable");
        co_return 42;
      },
      5);
  EXPECT_EQ(value, 42);
  EXPECT_EQ(calls, (std::vector<QiEventLoop::duration>{0s, 1s, 3s}));  // exact
}

QILOOP_TEST_VT(Retry, GivesUpAfterTheLastAttemptWithoutWaitingAgain) {
  auto& loop = qi::get_running_loop();
  const auto t0 = loop.time();
  bool gave_up = false;
  try {
    co_await retry(
        []() -> qi::Coro<int> {
          throw std::runtime_error("down");
          co_return 0;
        },
        4);
  } catch (const std::runtime_error&) {
    gave_up = true;
  }
  EXPECT_TRUE(gave_up);
  EXPECT_EQ(loop.time() - t0, 7s);  // 1 + 2 + 4, and no wait after the 4th try
}

