// The program signals_test sends Ctrl+C (SIGINT) to: qi::run on a coroutine
// that says "ready" and then sleeps for an hour. What it prints on stdout,
// one word a line, is what the test checks.
//   signals_ctrl_c_helper cancel    the main task's clean-up prints "cleanup" and
//                                    rethrows: qi::run throws qi::KeyboardInterrupt
//   signals_ctrl_c_helper stubborn  the clean-up prints "cleanup" and sleeps on
//                                    (a second SIGINT must kill the process)
//   signals_ctrl_c_helper swallow   the clean-up returns normally: qi::run returns
//   signals_ctrl_c_helper ignored   SIGINT is SIG_IGN before qi::run: the task
//                                    sleeps 300 ms and returns
// Exit status: 0 when qi::run returned, 3 for qi::KeyboardInterrupt, 4 for
// qi::CancelledError, 5 when SIGINT was not back at its previous disposition
// afterwards, 2 for bad usage.
#include <qiloop/qiloop.h>

#include <QtCore/QCoreApplication>

#include <csignal>
#include <cstdio>
#include <string>

using namespace std::chrono_literals;

namespace {

void say(const char* word) {
  std::printf("%s\n", word);
  std::fflush(stdout);
}

qi::Coro<void> main_task(std::string mode) {
  say("ready");
  if (mode == "ignored") {
    co_await qi::sleep(300ms);
    co_return;
  }
  bool cancelled = false;
  try {
    co_await qi::sleep(1h);
  } catch (const qi::CancelledError&) {
    cancelled = true;
  }
  if (!cancelled) co_return;
  co_await qi::sleep(1ms);  // a clean-up that awaits
  say("cleanup");
  if (mode == "stubborn") co_await qi::sleep(1h);
  if (mode == "swallow") co_return;
  throw qi::CancelledError();
}

bool sigint_is(void (*disposition)(int)) {
  struct sigaction current {};
  sigaction(SIGINT, nullptr, &current);
  return !(current.sa_flags & SA_SIGINFO) && current.sa_handler == disposition;
}

}  // namespace

int main(int argc, char** argv) {
  QCoreApplication app(argc, argv);
  if (argc != 2) return 2;
  const std::string mode = argv[1];
  if (mode != "cancel" && mode != "stubborn" && mode != "swallow" && mode != "ignored") return 2;
  void (*before)(int) = SIG_DFL;
  if (mode == "ignored") {
    std::signal(SIGINT, SIG_IGN);
    before = SIG_IGN;
  }
  int status = 0;
  try {
    qi::run(main_task(mode));
    say("returned");
  } catch (const qi::KeyboardInterrupt&) {
    say("keyboard-interrupt");
    status = 3;
  } catch (const qi::CancelledError&) {
    say("cancelled");
    status = 4;
  }
  if (!sigint_is(before)) return 5;
  return status;
}
