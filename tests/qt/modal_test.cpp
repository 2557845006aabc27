// qi::modal: fn runs from Qt's loop after the current step, qiloop keeps
// running inside its nested QEventLoop (under both dispatchers), its value or
// exception comes back, one modal per loop, cancellation before and while fn
// runs, and it works from an asyncslot's eager first step. Real time: the
// nested loops are quit by QTimers.
#include <qiloop/qt/asyncslot.h>
#include <qiloop/qt/modal.h>
#include <qiloop/testing.h>

#include "test_util.h"

#include <QtCore/QCoreApplication>
#include <QtCore/QEventLoop>
#include <QtCore/QObject>
#include <QtCore/QTimer>

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

class Emitter : public QObject {
  Q_OBJECT
 signals:
  void clicked();
};

// What a dialog's exec() does: a nested QEventLoop, quit after `ms`.
void run_nested_loop(int ms) {
  QEventLoop nested;
  QTimer::singleShot(ms, &nested, &QEventLoop::quit);
  nested.exec();
}

// Counts until cancelled, every millisecond.
qi::Coro<void> ticker(int& ticks) {
  for (;;) {
    co_await qi::sleep(1ms);
    ++ticks;
  }
}

qi::Coro<void> wait_event(qi::Event& e) { co_await e.wait(); }

// Yields until it has run `n` steps inside *nested, then quits it.
qi::Coro<void> yielder(QEventLoop*& nested, int n, int& inside) {
  for (;;) {
    co_await qi::sleep(0s);
    if (nested && ++inside == n) nested->quit();
  }
}

}  // namespace

QILOOP_TEST_MODES(Modal, OtherTasksAndCallbacksRunInsideTheModalCallAndItsValueComesBack) {
  auto& loop = qi::get_running_loop();
  int ticks = 0;
  auto t = qi::create_task(ticker(ticks));
  int ticks_inside = -1;
  bool callback_inside = false;
  bool task_running_in_fn = true;
  int v = co_await qi::modal([&] {
    task_running_in_fn = static_cast<bool>(qi::current_task());
    loop.call_later(5ms, [&] { callback_inside = true; });
    const int before = ticks;
    run_nested_loop(100);
    ticks_inside = ticks - before;
    return 42;
  });
  EXPECT_EQ(v, 42);
  EXPECT_FALSE(task_running_in_fn);  // called from Qt's loop, outside any step
  EXPECT_GE(ticks_inside, 10);
  EXPECT_TRUE(callback_inside);
  t.cancel();
  co_await qi::gather_settled(t);
}

QILOOP_TEST_MODES(Modal, FnsExceptionIsRethrownWithItsType) {
  bool caught = false;
  try {
    co_await qi::modal([]() -> std::string {
      run_nested_loop(1);
      throw std::out_of_range("from the dialog");
    });
  } catch (const std::out_of_range& e) {
    caught = std::string(e.what()) == "from the dialog";
  }
  EXPECT_TRUE(caught);
  // void fn, move-only value
  int calls = 0;
  co_await qi::modal([&] { ++calls; });
  auto p = co_await qi::modal([] { return std::make_unique<int>(3); });
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(*p, 3);
}

// qtinter fails here; qasync raises "Cannot enter into task ... while
// another task is being executed".
QILOOP_TEST_MODES(Modal, WorksFromAnAsyncslotsEagerFirstStepAndRunsAfterEmitReturns) {
  Emitter button;
  std::vector<std::string> log;
  int ticks = 0;
  auto t = qi::create_task(ticker(ticks));
  qi::Event done;
  QObject::connect(&button, &Emitter::clicked, &button, qi::asyncslot([&]() -> qi::Coro<void> {
                     log.push_back("slot");
                     int ticks_inside = -1;
                     int code = co_await qi::modal([&] {
                       log.push_back("fn");
                       const int before = ticks;
                       run_nested_loop(50);
                       ticks_inside = ticks - before;
                       return 1;
                     });
                     EXPECT_GE(ticks_inside, 5);
                     log.push_back("code " + std::to_string(code));
                     done.set();
                   }));
  emit button.clicked();
  log.push_back("emit returned");
  co_await qi::wait_for(wait_event(done), 10s);
  EXPECT_EQ(log, (std::vector<std::string>{"slot", "emit returned", "fn", "code 1"}));
  t.cancel();
  co_await qi::gather_settled(t);
}

QILOOP_TEST_MODES(Modal, ASecondModalWhileOneIsPendingIsRefused) {
  std::string inside_error;
  auto first = qi::create_task(qi::modal([&] {
    // A task started inside the nested loop tries another modal.
    qi::create_task([](std::string& err) -> qi::Coro<void> {
      try {
        co_await qi::modal([] {});
      } catch (const qi::RuntimeError& e) {
        err = e.what();
      }
    }(inside_error));
    run_nested_loop(50);
    return 1;
  }));
  co_await qi::sleep(0);  // first has claimed the loop's modal; fn has not run yet
  bool refused = false;
  try {
    co_await qi::modal([] { return 2; });
  } catch (const qi::RuntimeError& e) {
    refused = std::string(e.what()).find("already pending") != std::string::npos;
  }
  EXPECT_TRUE(refused);
  EXPECT_EQ(co_await first, 1);
  EXPECT_NE(inside_error.find("at most one"), std::string::npos) << inside_error;
  EXPECT_EQ(co_await qi::modal([] { return 3; }), 3);  // free again once fn returned
}

QILOOP_TEST_MODES(Modal, CancelledBeforeFnStartsFnNeverRuns) {
  bool ran = false;
  auto t = qi::create_task(qi::modal([&] { ran = true; }));
  co_await qi::sleep(0);  // posted
  t.cancel();
  co_await qi::sleep(20ms);
  EXPECT_TRUE(t.cancelled());
  EXPECT_FALSE(ran);
  EXPECT_EQ(co_await qi::modal([] { return 5; }), 5);  // the slot was given back at once
}

// fn cannot be interrupted: the request waits, and the CancelledError comes
// when fn returns (what fn refers to in the frame stays alive until then).
QILOOP_TEST_MODES(Modal, CancelledWhileFnRunsTheCancelLandsWhenFnReturns) {
  auto& loop = qi::get_running_loop();
  bool fn_returned = false;
  bool fn_returned_at_cancel = false;
  qi::Task<void> t;
  t = qi::create_task([](QiEventLoop& loop, qi::Task<void>& self, bool& returned, bool& at_cancel) -> qi::Coro<void> {
    auto frame_local = std::make_shared<std::string>("alive");
    try {
      co_await qi::modal([&] {
        loop.call_later(10ms, [&] { self.cancel(); });
        run_nested_loop(60);
        returned = *frame_local == "alive";
        return 1;
      });
    } catch (const qi::CancelledError&) {
      at_cancel = returned;
      throw;
    }
  }(loop, t, fn_returned, fn_returned_at_cancel));
  co_await qi::gather_settled(t);
  EXPECT_TRUE(t.cancelled());
  EXPECT_TRUE(fn_returned);
  EXPECT_TRUE(fn_returned_at_cancel);
}

// A task bound to an object unwinds at once when the object goes, even
// while fn runs; fn's value is then dropped quietly.
QILOOP_TEST_MODES(Modal, ABoundTaskUnwindsAtOnceWhenItsObjectGoesWhileFnRuns) {
  std::vector<std::string> log;
  auto* owner = new QObject;
  auto t = qi::create_task(
      [](std::vector<std::string>& log, QObject* owner) -> qi::Coro<void> {
        try {
          co_await qi::modal([&log, owner] {
            QTimer::singleShot(10, [&log, owner] {
              delete owner;
              log.push_back("owner deleted");
            });
            run_nested_loop(50);
            log.push_back("fn returned");
            return 1;
          });
        } catch (const qi::CancelledError&) {
          log.push_back("cancelled");
          throw;
        }
      }(log, owner),
      owner);
  co_await qi::gather_settled(t);  // inside fn's nested loop
  EXPECT_TRUE(t.cancelled());
  EXPECT_EQ(log, (std::vector<std::string>{"cancelled", "owner deleted"}));
  while (log.size() < 3) co_await qi::sleep(5ms);
  EXPECT_EQ(log.back(), "fn returned");
  EXPECT_EQ(co_await qi::modal([] { return 2; }), 2);  // the slot is free again
}

#include "modal_test.moc"

// fn runs a nested loop that excludes Qt's timers (exec(X11ExcludeTimers), as
// old drag-and-drop loops do). The loop's doorbell, a zero-interval Qt timer,
// is armed when fn starts (another task is ready): qi::modal hands it over to
// a posted event first, or no task would run until the nested loop returned.
// Timers excluded, the nested loop's cap is a quit posted from a thread.
QILOOP_TEST_MODES(Modal, TasksRunInsideAModalCallWhoseNestedLoopExcludesTimers) {
  constexpr int kSteps = 50;
  QEventLoop* nested = nullptr;
  int inside = 0;
  auto t = qi::create_task(yielder(nested, kSteps, inside));
  co_await qi::sleep(0s);  // the yielder is running: the slice ends with work left
  co_await qi::modal([&] {
    QEventLoop excluding;
    nested = &excluding;
    qt::exec_excluding_timers(excluding, 2s);
    nested = nullptr;
  });
  EXPECT_GE(inside, kSteps) << "tasks did not run inside a modal loop excluding timers";
  t.cancel();
  co_await qi::gather_settled(t);
}

namespace {
// Counts live copies; a copy destroyed twice drives it below zero.
struct Counted {
  static inline int alive = 0;
  static inline int lowest = 0;
  Counted() { ++alive; }
  Counted(const Counted&) { ++alive; }
  Counted(Counted&&) noexcept { ++alive; }
  ~Counted() { lowest = std::min(lowest, --alive); }
};
}  // namespace

// The lambda is named: GCC 12 destroys an aggregate temporary (a lambda
// with captures by value) twice when it is an argument inside a co_await
// expression — `co_await qi::modal([p = std::make_shared<X>()] { ... })`
// double-frees p whatever the callee does (a compiler bug, fixed in later
// GCCs; clang is not affected; tremotesf2 PR #551 hit it too).
QILOOP_TEST_MODES(Modal, FnsCapturesAreDestroyedOnceEach) {
  Counted::alive = 0;
  Counted::lowest = 0;
  {
    auto fn = [c = Counted{}] { return 1; };
    int v = co_await qi::modal(std::move(fn));
    EXPECT_EQ(v, 1);
  }
  co_await qi::sleep(0s);
  EXPECT_EQ(Counted::alive, 0);
  EXPECT_EQ(Counted::lowest, 0);
}
