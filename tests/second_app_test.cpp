// A loop that outlives its QCoreApplication and runs under the next one: the
// first application's event dispatcher dies with it, so the loop must watch
// its fds through the new one. The binary has its own main: it makes and
// destroys the applications itself.
#include <qiloop/qiloop.h>

#include <gtest/gtest.h>

#include <QtCore/QCoreApplication>
#include <QtCore/QTimer>

#include <chrono>
#include <memory>
#include <thread>

using namespace std::chrono_literals;

namespace {

std::unique_ptr<QCoreApplication> make_app() {
  static int argc = 1;
  static char arg0[] = "second_app_test";
  static char* argv[] = {arg0, nullptr};
  return std::make_unique<QCoreApplication>(argc, argv);
}

// QCoreApplication::exec() until the test ends it; a guard ends it with 99.
int exec_guarded() {
  QTimer guard;
  guard.setSingleShot(true);
  QObject::connect(&guard, &QTimer::timeout, [] { QCoreApplication::exit(99); });
  guard.start(2s);
  return QCoreApplication::exec();
}

// After the first application goes, the runner's loop is woken by a thread
// (the inbox's eventfd) and by a timer armed from a callback (the timerfd):
// both reach Qt only through the loop's watch on its epoll fd.
TEST(SecondApplication, AnAttachedLoopOutlivingItsApplicationWakesUnderTheNext) {
  auto app = make_app();
  auto runner = std::make_unique<QiRunner>();
  QiEventLoop& loop = runner->loop();
  loop.call_later(1ms, [] { QCoreApplication::exit(0); });
  ASSERT_EQ(exec_guarded(), 0);
  app.reset();
  app = make_app();
  std::thread worker;
  bool threadsafe_ran = false;
  bool timer_ran = false;
  QTimer::singleShot(20ms, [&] {
    worker = std::thread([&] {
      loop.call_soon_threadsafe([&] {
        threadsafe_ran = true;
        loop.call_later(5ms, [&] {
          timer_ran = true;
          QCoreApplication::exit(0);
        });
      });
    });
  });
  EXPECT_EQ(exec_guarded(), 0) << "the loop went deaf under the second application";
  if (worker.joinable()) worker.join();
  EXPECT_TRUE(threadsafe_ran);
  EXPECT_TRUE(timer_ran);
  runner.reset();
}

// A loop run (nested) under one application runs normally under the next.
TEST(SecondApplication, ALoopRunUnderOneApplicationRunsUnderTheNext) {
  QiEventLoop loop;
  auto app = make_app();
  loop.call_later(1ms, [&] { loop.stop(); });
  loop.run_forever();
  app.reset();
  app = make_app();
  bool timer_ran = false;
  loop.call_soon([&] {
    loop.call_later(5ms, [&] {
      timer_ran = true;
      loop.stop();
    });
  });
  QTimer guard;
  guard.setSingleShot(true);
  QObject::connect(&guard, &QTimer::timeout, [&] { loop.stop(); });
  guard.start(2s);
  loop.run_forever();
  EXPECT_TRUE(timer_ran) << "the loop's timer did not fire under the second application";
  loop.close();
}

}  // namespace
