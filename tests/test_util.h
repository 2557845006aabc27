// Helpers shared by the loop tests: running a loop in either mode, and
// recording the order in which things happen.
#pragma once

#include <qiloop/qiloop.h>

#include <gtest/gtest.h>

#include <QtCore/QCoreApplication>
#include <QtCore/QEventLoop>
#include <QtCore/QTimer>

#include <chrono>
#include <condition_variable>
#include <exception>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace qt {

// Runs f from Qt's event loop (injected code) after `after` of real time.
inline void from_qt_after(std::chrono::milliseconds after, std::function<void()> f) {
  QTimer::singleShot(after, QCoreApplication::instance(), std::move(f));
}

enum class Mode { kNested, kAttached };

inline std::string mode_name(const testing::TestParamInfo<Mode>& info) {
  return info.param == Mode::kNested ? "nested" : "attached";
}

// Runs `loop` until it stops. Nested mode: loop.run_forever(). Attached mode:
// a QiRunner attaches the loop and QCoreApplication::exec() drives it until
// the loop stops; the runner then drains and closes the loop, as in an
// application. A guard timer fails the test instead of hanging.
inline void run_until_stopped(QiEventLoop& loop, Mode mode,
                              std::chrono::milliseconds guard = std::chrono::seconds(20)) {
  QTimer guard_timer;
  guard_timer.setSingleShot(true);
  bool expired = false;
  QObject::connect(&guard_timer, &QTimer::timeout, [&] {
    expired = true;
    if (loop.is_running()) loop.stop();
    // Only attached mode runs QCoreApplication::exec(). Calling exit() with
    // no exec() running would make every later QEventLoop return at once.
    if (mode == Mode::kAttached) QCoreApplication::exit(1);
  });
  guard_timer.start(guard);
  if (mode == Mode::kNested) {
    loop.run_forever();
  } else {
    QiRunner runner(loop);
    auto c = QObject::connect(&loop, &QiEventLoop::stopped, [] { QCoreApplication::exit(0); });
    QCoreApplication::exec();
    QObject::disconnect(c);
  }
  EXPECT_FALSE(expired) << "the loop did not stop within the guard time";
}

// Appends to a shared log; the tests compare logs exactly.
struct Log {
  std::vector<std::string> items;
  void operator()(std::string s) { items.push_back(std::move(s)); }
  auto recorder(std::string s) {
    return [this, s = std::move(s)] { items.push_back(s); };
  }
};

using Strings = std::vector<std::string>;

class ModeTest : public testing::TestWithParam<Mode> {
 protected:
  Mode mode() const { return GetParam(); }
  void run(QiEventLoop& loop) { run_until_stopped(loop, mode()); }
};

// A task whose clean-up awaits once cancelled, as shutdown must let it (a
// catch block cannot co_await, so the error is kept and rethrown after);
// `cleaned` counts the clean-ups that completed.
inline qi::Coro<void> cleans_up_with_awaits(int& cleaned) {
  std::exception_ptr cancelled;
  try {
    co_await qi::sleep(std::chrono::hours(1));
  } catch (const qi::CancelledError&) {
    cancelled = std::current_exception();
  }
  co_await qi::sleep(std::chrono::milliseconds(1));
  co_await qi::sleep(std::chrono::milliseconds(1));
  ++cleaned;
  if (cancelled) std::rethrow_exception(cancelled);
}

// Runs `nested` as a loop that excludes Qt's timers (exec(X11ExcludeTimers),
// as old drag-and-drop loops did). No timer can cap it, so a thread posts
// its quit() when it has not returned after `cap`; the events left posted to
// it are removed before it goes.
inline void exec_excluding_timers(QEventLoop& nested, std::chrono::milliseconds cap) {
  std::mutex m;
  std::condition_variable cv;
  bool returned = false;
  std::thread capper([&] {
    std::unique_lock lock(m);
    if (!cv.wait_for(lock, cap, [&] { return returned; }))
      QMetaObject::invokeMethod(&nested, &QEventLoop::quit, Qt::QueuedConnection);
  });
  nested.exec(QEventLoop::X11ExcludeTimers);
  {
    std::lock_guard lock(m);
    returned = true;
  }
  cv.notify_one();
  capper.join();
  QCoreApplication::removePostedEvents(&nested);
}

}  // namespace qt
