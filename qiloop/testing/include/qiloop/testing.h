// qiloop/testing.h — GoogleTest tests whose body is a coroutine
// (CMake target qiloop::testing).
//
//   #include <qiloop/testing.h>
//   using namespace std::chrono_literals;
//
//   QILOOP_TEST_VT(Retry, GivesUpAfterAnHour) {    // virtual time, autojump
//     auto& loop = qi::get_running_loop();
//     auto t0 = loop.time();
//     co_await qi::sleep(1h);                       // no real time passes
//     EXPECT_EQ(loop.time() - t0, 1h);              // exact
//   }
//
// Each test body runs as a task ("test body") on a fresh QiEventLoop in
// nested mode (QILOOP_TEST: the real clock; QILOOP_TEST_VT: a VirtualClock
// with autojump, reachable as qi::testing::clock()). The test fails when
// - an exception escapes the body (its type and what() are shown);
// - a task is still pending when the body returns (await or cancel what the
//   test starts; the kit cancels leftovers and lets them finish);
// - the loop's exception handler gets a report: an exception nobody
//   retrieved, one escaping a callback, a task destroyed pending. A body that
//   expects reports installs its own handler (loop.set_exception_handler),
//   which replaces the kit's until the body ends (it may capture the body's
//   locals: the kit's is back, for the shutdown, once the body's frame goes);
// - the body has not finished after the watchdog's time (real time;
//   kDefaultTimeout, or set_timeout() from the body): the loop is stopped
//   and the test fails with a message. A thread that never returns to the
//   event loop cannot be stopped: the process then aborts with a message,
//   once as much time again (at least 1 s) has passed.
// Afterwards the loop is shut down as qi::run does (leftover tasks
// cancelled and run to their end) and destroyed.
//
// ASSERT_* macros `return`, which a coroutine cannot: use EXPECT_*, or wrap
// a fatal assertion as QILOOP_CO_ASSERT(ASSERT_EQ(a, b)) — on failure it ends
// the body (by an exception the kit recognises; also from nested coroutines).
//
// QILOOP_TEST_MODES(Suite, Name) / QILOOP_TEST_MODES_VT register one body as
// two tests, Name_nested and Name_attached: the body runs once on a loop in
// nested mode and once on a loop attached by a QiRunner under
// QCoreApplication::exec() (qi::testing::run_mode() says which).
//
// QILOOP_TEST_F(Fixture, Name) / QILOOP_TEST_F_VT are the fixture forms
// (TEST_F: the body sees the fixture's members; SetUp/TearDown run outside
// the loop). For parameterized tests or other options call run_test() from a
// TEST / TEST_P. Without a QCoreApplication the kit creates one, kept until
// the process ends (a test needing a QGuiApplication makes its own in main).
#pragma once

#include <qiloop/qiloop.h>
#include <qiloop/testing/virtual_clock.h>

#include <gtest/gtest.h>

#include <chrono>

namespace qi::testing {

inline constexpr std::chrono::milliseconds kDefaultTimeout{std::chrono::seconds(20)};

// How the body's loop runs: nested (loop.run_until_complete, a QEventLoop of
// the loop's own) or attached (a QiRunner, driven by
// QCoreApplication::exec(), as in an application).
enum class RunMode { kNested, kAttached };

struct TestOptions {
  bool virtual_time = false;                      // a VirtualClock with autojump
  std::chrono::milliseconds timeout = kDefaultTimeout;  // the watchdog, real time
  RunMode mode = RunMode::kNested;
};

// qi::testing::run_test()
// Runs body as a test body (see the file comment) and reports through
// GoogleTest (non-fatal failures). Must be called where no loop runs.
void run_test(qi::Coro<void> body, const TestOptions& options = {});

// qi::testing::clock()
// The VirtualClock of the running loop. Throws qi::RuntimeError when it has
// none (use QILOOP_TEST_VT, or loop.set_clock()).
VirtualClock& clock();

// qi::testing::run_mode()
// How the running test body's loop runs. Throws qi::RuntimeError outside a
// run_test() body.
RunMode run_mode();

// qi::testing::set_timeout()
// Restarts the running test body's watchdog with d from now (capped at
// ~24.8 days, QTimer's longest). Throws qi::RuntimeError outside a
// run_test() body, std::invalid_argument for d <= 0 (run_test fails the test
// for such a TestOptions::timeout).
void set_timeout(std::chrono::milliseconds d);

namespace detail {
// Ends a body after a failed QILOOP_CO_ASSERT (already reported). Not a
// std::exception, so catch (const std::exception&) lets it through.
struct AbortBody {};
}  // namespace detail

}  // namespace qi::testing

#define QILOOP_TEST(suite, name) \
  QILOOP_TEST_IMPL_(suite, name, ::testing::Test, ::testing::internal::GetTestTypeId(), false)
#define QILOOP_TEST_VT(suite, name) \
  QILOOP_TEST_IMPL_(suite, name, ::testing::Test, ::testing::internal::GetTestTypeId(), true)
#define QILOOP_TEST_F(fixture, name) \
  QILOOP_TEST_IMPL_(fixture, name, fixture, ::testing::internal::GetTypeId<fixture>(), false)
#define QILOOP_TEST_F_VT(fixture, name) \
  QILOOP_TEST_IMPL_(fixture, name, fixture, ::testing::internal::GetTypeId<fixture>(), true)

#define QILOOP_TEST_MODES(suite, name) QILOOP_TEST_MODES_IMPL_(suite, name, false)
#define QILOOP_TEST_MODES_VT(suite, name) QILOOP_TEST_MODES_IMPL_(suite, name, true)

#define QILOOP_CO_ASSERT(...)                                                 \
  do {                                                                        \
    bool qiloop_assert_passed_ = false;                                       \
    [&] {                                                                     \
      __VA_ARGS__;                                                            \
      qiloop_assert_passed_ = true;                                           \
    }();                                                                      \
    if (!qiloop_assert_passed_) throw ::qi::testing::detail::AbortBody{};     \
  } while (false)

// The body becomes a member coroutine of a class between the parent and
// GoogleTest's test class (GTEST_TEST_ is what TEST and TEST_F expand to), so
// the test keeps its suite and name and a fixture's members stay in reach.
#define QILOOP_TEST_CLASS_(suite, name) suite##_##name##_QiloopBody
#define QILOOP_TEST_IMPL_(suite, name, parent, parent_id, vt)                                          \
  class QILOOP_TEST_CLASS_(suite, name) : public parent {                                              \
   protected:                                                                                          \
    ::qi::Coro<void> qiloop_test_body();                                                               \
  };                                                                                                   \
  GTEST_TEST_(suite, name, QILOOP_TEST_CLASS_(suite, name), parent_id) {                               \
    ::qi::testing::run_test(qiloop_test_body(), ::qi::testing::TestOptions{.virtual_time = (vt)});     \
  }                                                                                                    \
  ::qi::Coro<void> QILOOP_TEST_CLASS_(suite, name)::qiloop_test_body()

#define QILOOP_TEST_MODE_CASE_(suite, name, mode_suffix, run_mode_value, vt)                                        \
  GTEST_TEST_(suite, name##_##mode_suffix, QILOOP_TEST_CLASS_(suite, name),                               \
              ::testing::internal::GetTestTypeId()) {                                                     \
    ::qi::testing::run_test(qiloop_test_body(),                                                           \
                            ::qi::testing::TestOptions{.virtual_time = (vt), .mode = (run_mode_value)});            \
  }
#define QILOOP_TEST_MODES_IMPL_(suite, name, vt)                                                          \
  class QILOOP_TEST_CLASS_(suite, name) : public ::testing::Test {                                        \
   protected:                                                                                             \
    ::qi::Coro<void> qiloop_test_body();                                                                  \
  };                                                                                                      \
  QILOOP_TEST_MODE_CASE_(suite, name, nested, ::qi::testing::RunMode::kNested, vt)                        \
  QILOOP_TEST_MODE_CASE_(suite, name, attached, ::qi::testing::RunMode::kAttached, vt)                    \
  ::qi::Coro<void> QILOOP_TEST_CLASS_(suite, name)::qiloop_test_body()
