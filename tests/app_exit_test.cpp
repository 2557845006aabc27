// QCoreApplication::exit() called while no exec() runs leaves the main
// thread's quit flag set for the rest of the process: every later QEventLoop
// returns at once. That poisons later tests, so these run in a binary of
// their own.
#include "test_util.h"

#include <exception>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

// qi::run's shutdown runs whatever Qt's quit flag says: the main task and the
// leftovers get their CancelledError and their clean-up awaits complete.
TEST(AppExit, QiRunWhoseMainCallsExitWithoutExecLetsTasksCleanUp) {
  int cleaned = 0;
  std::vector<std::string> reports;
  std::string error;
  auto main = [&]() -> qi::Coro<void> {
    QiEventLoop& loop = qi::get_running_loop();
    loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& ctx) { reports.push_back(ctx.message); });
    qi::create_task(qt::cleans_up_with_awaits(cleaned));
    loop.call_later(10ms, [] { QCoreApplication::exit(0); });
    co_await qt::cleans_up_with_awaits(cleaned);
  };
  const auto started = std::chrono::steady_clock::now();
  try {
    qi::run(main());
  } catch (const qi::RuntimeError& e) {
    error = e.what();
  }
  EXPECT_NE(error.find("Qt ended the event loop"), std::string::npos) << error;
  EXPECT_EQ(cleaned, 2) << "clean-up awaits did not complete";
  EXPECT_EQ(reports, std::vector<std::string>{});
  EXPECT_LT(std::chrono::steady_clock::now() - started, 2s);
}

}  // namespace
