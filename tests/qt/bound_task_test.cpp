// Tasks bound to a QObject (qi::create_task(coro, guard), qi::bind_task) and
// what they rest on, TaskCore::cancel_now: the guard's destruction cancels
// the task at once, wherever it is suspended, and its frame unwinds inside
// the destruction; a running task gets the cancel at its next co_await; a
// task that finishes first leaves no connection behind.
#include <qiloop/qt/bound_task.h>
#include <qiloop/testing.h>

#include <QtCore/QObject>
#include <QtCore/QThread>

#include <memory>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

using Log = std::vector<std::string>;

// Exposes how many connections its destroyed() has.
class Guard : public QObject {
 public:
  int destroyed_receivers() const { return receivers(SIGNAL(destroyed(QObject*))); }
};

// Logs when the frame holding it unwinds.
struct Unwound {
  Log* log;
  ~Unwound() { log->push_back("frame unwound"); }
};

// Awaits `what` with an Unwound in its frame and logs how it ends.
template <class Awaitable>
qi::Coro<void> logged(Log& log, Awaitable what) {
  Unwound u{&log};
  try {
    co_await std::move(what);
    log.push_back("resumed");
  } catch (const qi::CancelledError& e) {
    log.push_back(std::string("cancelled: ") + e.what());
    throw;
  }
}

qi::Coro<void> sleeper(Log& log, std::chrono::hours d) {
  Unwound u{&log};
  try {
    co_await qi::sleep(d);
    log.push_back("resumed");
  } catch (const qi::CancelledError& e) {
    log.push_back(std::string("cancelled: ") + e.what());
    throw;
  }
}

const Log kUnwoundNow{"cancelled: the QObject the task was bound to was destroyed", "frame unwound", "deleted"};

}  // namespace

QILOOP_TEST_MODES_VT(BoundTask, DestroyingTheGuardUnwindsASleepingTaskAtOnce) {
  Log log;
  auto* guard = new QObject;
  auto t = qi::create_task(sleeper(log, 1h), guard);
  co_await qi::sleep(1s);
  delete guard;
  log.push_back("deleted");
  EXPECT_EQ(log, kUnwoundNow);
  EXPECT_TRUE(t.cancelled());
  co_await qi::sleep(2h);  // the cancelled timer never fires into it
  EXPECT_EQ(log.size(), 3u);
}

QILOOP_TEST_MODES_VT(BoundTask, DestroyingTheGuardUnwindsATaskAwaitingAFutureAtOnce) {
  Log log;
  auto& loop = qi::get_running_loop();
  auto fut = loop.create_future<int>();
  auto* guard = new QObject;
  auto t = qi::create_task(logged(log, fut), guard);
  co_await qi::sleep(1s);
  delete guard;
  log.push_back("deleted");
  EXPECT_EQ(log, kUnwoundNow);
  EXPECT_TRUE(t.cancelled());
  EXPECT_TRUE(fut.cancelled());  // what it awaited is cancelled, as by cancel()
}

QILOOP_TEST_MODES_VT(BoundTask, ATaskAwaitingATaskUnwindsAtOnceAndTheInnerOneIsCancelled) {
  Log log, inner_log;
  auto inner = qi::create_task(sleeper(inner_log, 1h));
  auto* guard = new QObject;
  auto t = qi::create_task(logged(log, inner), guard);
  co_await qi::sleep(1s);
  delete guard;
  log.push_back("deleted");
  EXPECT_EQ(log, kUnwoundNow);
  EXPECT_TRUE(t.cancelled());
  co_await qi::sleep(1s);  // the inner one finishes its own cancellation on its next step
  EXPECT_TRUE(inner.cancelled());
  EXPECT_EQ(inner_log.size(), 2u);
}

// Its wake-up already scheduled (what it awaited is done): the step goes
// ahead of it, and the wake-up is dropped when it comes.
QILOOP_TEST_MODES_VT(BoundTask, ATaskAlreadyWokenIsUnwoundAtOnceAndItsWakeupDropped) {
  Log log;
  auto& loop = qi::get_running_loop();
  auto fut = loop.create_future<int>();
  auto* guard = new QObject;
  auto t = qi::create_task(logged(log, fut), guard);
  co_await qi::sleep(1s);
  fut.set_result(1);  // schedules its wake-up
  delete guard;
  log.push_back("deleted");
  EXPECT_EQ(log, kUnwoundNow);
  EXPECT_TRUE(t.cancelled());
  co_await qi::sleep(1s);
  EXPECT_EQ(log.size(), 3u);
}

// Stepped ahead of a wake-up, a task that catches the cancellation and
// awaits again is resumed by its new wait only.
QILOOP_TEST_MODES_VT(BoundTask, ATaskThatCatchesTheCancelAndAwaitsAgainIsResumedOnce) {
  Log log;
  auto& loop = qi::get_running_loop();
  auto fut = loop.create_future<void>();
  auto* guard = new QObject;
  auto t = qi::create_task(
      [](Log& log, qi::Future<void> fut) -> qi::Coro<int> {
        bool cancelled = false;
        try {
          co_await fut;
        } catch (const qi::CancelledError&) {
          cancelled = true;
        }
        log.push_back(cancelled ? "caught" : "not cancelled");
        co_await qi::sleep(1s);
        log.push_back("slept");
        co_return 7;
      }(log, fut),
      guard);
  co_await qi::sleep(0);
  fut.set_result();
  delete guard;
  EXPECT_EQ(log, (Log{"caught"}));
  co_await qi::sleep(0);
  co_await qi::sleep(0);
  EXPECT_EQ(log, (Log{"caught"}));  // the dropped wake-up did not cut the sleep short
  EXPECT_EQ(co_await t, 7);
  EXPECT_EQ(log, (Log{"caught", "slept"}));
}

// Its next step already scheduled (sleep(0)): the same.
QILOOP_TEST_MODES_VT(BoundTask, ATaskWhoseStepIsScheduledIsUnwoundAtOnce) {
  Log log;
  int spins = 0;
  auto* guard = new QObject;
  auto t = qi::create_task(
      [](Log& log, int& spins) -> qi::Coro<void> {
        Unwound u{&log};
        try {
          for (;;) {
            co_await qi::sleep(0);
            ++spins;
          }
        } catch (const qi::CancelledError&) {
          log.push_back("cancelled");
          throw;
        }
      }(log, spins),
      guard);
  co_await qi::sleep(0);
  co_await qi::sleep(0);
  const int spins_before = spins;
  delete guard;
  log.push_back("deleted");
  EXPECT_EQ(log, (Log{"cancelled", "frame unwound", "deleted"}));
  EXPECT_TRUE(t.cancelled());
  co_await qi::sleep(0);
  EXPECT_EQ(spins, spins_before);
}

QILOOP_TEST_MODES_VT(BoundTask, ATaskNotStartedYetNeverRunsAndItsFrameGoesAtOnce) {
  auto held = std::make_shared<int>(1);
  bool ran = false;
  auto* guard = new QObject;
  auto t = qi::create_task(
      [](std::shared_ptr<int>, bool& ran) -> qi::Coro<void> {
        ran = true;
        co_return;
      }(held, ran),
      guard);
  EXPECT_EQ(held.use_count(), 2);
  delete guard;
  EXPECT_TRUE(t.cancelled());
  EXPECT_EQ(held.use_count(), 1);  // the frame holding the parameter is gone
  co_await qi::sleep(1s);
  EXPECT_FALSE(ran);
}

QILOOP_TEST_MODES_VT(BoundTask, ATaskThatDestroysItsGuardGetsTheCancelAtItsNextAwait) {
  Log log;
  auto* guard = new QObject;
  auto t = qi::create_task(
      [](Log& log, QObject* guard) -> qi::Coro<void> {
        delete guard;
        log.push_back("deleted, running on");
        try {
          co_await qi::sleep(1h);
        } catch (const qi::CancelledError&) {
          log.push_back("cancelled at the next co_await");
          throw;
        }
      }(log, guard),
      guard);
  co_await qi::sleep(1s);
  EXPECT_EQ(log, (Log{"deleted, running on", "cancelled at the next co_await"}));
  EXPECT_TRUE(t.cancelled());
}

QILOOP_TEST_MODES_VT(BoundTask, TasksFinishingFirstLeaveNoConnectionBehind) {
  Guard guard;
  std::vector<qi::Task<int>> tasks;
  for (int i = 0; i < 1000; ++i)
    tasks.push_back(qi::create_task(
        [](int i) -> qi::Coro<int> {
          co_await qi::sleep(1s);
          co_return i;
        }(i),
        &guard));
  EXPECT_EQ(guard.destroyed_receivers(), 1000);
  for (auto& t : tasks) co_await t;
  co_await qi::sleep(0);  // their done callbacks ran
  EXPECT_EQ(guard.destroyed_receivers(), 0);
}

QILOOP_TEST_MODES_VT(BoundTask, BindTaskBindsATaskMadeByRunTask) {
  Log log;
  auto* guard = new QObject;
  auto t = qi::get_running_loop().run_task(sleeper(log, 1h));
  qi::bind_task(t, guard);
  delete guard;
  log.push_back("deleted");
  EXPECT_EQ(log, kUnwoundNow);
  co_return;
}

QILOOP_TEST_MODES_VT(BoundTask, AGuardBeingDestroyedCancelsTheTaskAtOnce) {
  Log log;
  auto* guard = new QObject;
  qi::Task<void> t;
  QObject::connect(guard, &QObject::destroyed, [&](QObject* g) { t = qi::create_task(sleeper(log, 1h), g); });
  delete guard;
  QILOOP_CO_ASSERT(ASSERT_TRUE(t.valid()));
  EXPECT_TRUE(t.cancelled());
  co_await qi::sleep(1s);
  EXPECT_TRUE(log.empty());  // it never ran
}

QILOOP_TEST_MODES_VT(BoundTask, ANullGuardOrOneOfAnotherThreadIsRefused) {
  Log log;
  const std::size_t tasks_before = qi::all_tasks(qi::get_running_loop()).size();
  QObject* null_guard = nullptr;
  try {
    qi::create_task(sleeper(log, 1h), null_guard);
    ADD_FAILURE() << "no error";
  } catch (const qi::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("qi::create_task: the guard QObject is null"), std::string::npos)
        << e.what();
  }
  QThread other;
  QObject elsewhere;
  elsewhere.moveToThread(&other);
  try {
    qi::create_task(sleeper(log, 1h), &elsewhere);
    ADD_FAILURE() << "no error";
  } catch (const qi::RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("another thread"), std::string::npos) << e.what();
  }
  EXPECT_EQ(qi::all_tasks(qi::get_running_loop()).size(), tasks_before);  // no task left behind
  co_return;
}

// bind_task on a task already made: refused the same way, and the task is
// left as it was (unbound, running).
QILOOP_TEST_MODES_VT(BoundTask, BindTaskRefusesANullGuardOrOneOfAnotherThreadAndLeavesTheTaskAlone) {
  Log log;
  auto t = qi::create_task(sleeper(log, 1h));
  QThread other;
  QObject elsewhere;
  elsewhere.moveToThread(&other);
  Log errors;
  for (QObject* guard : {static_cast<QObject*>(nullptr), &elsewhere}) {
    try {
      qi::bind_task(t, guard);
      errors.push_back("no error");
    } catch (const qi::ValueError& e) {
      errors.push_back(std::string("ValueError: ") + e.what());
    } catch (const qi::RuntimeError& e) {
      errors.push_back(std::string("RuntimeError: ") + e.what());
    }
  }
  QILOOP_CO_ASSERT(ASSERT_EQ(errors.size(), 2u));
  EXPECT_EQ(errors[0].rfind("ValueError: qi::bind_task: the guard QObject is null", 0), 0u) << errors[0];
  EXPECT_EQ(errors[1].rfind("RuntimeError: qi::bind_task: the guard QObject lives in another thread", 0), 0u)
      << errors[1];
  co_await qi::sleep(1s);
  EXPECT_FALSE(t.done());  // still running, bound to nothing
  t.cancel();
  EXPECT_THROW(co_await t, qi::CancelledError);
  QILOOP_CO_ASSERT(ASSERT_EQ(log.size(), 2u));
  EXPECT_EQ(log[0].find("QObject"), std::string::npos) << "cancelled by our cancel(), not a guard: " << log[0];
  EXPECT_EQ(log[1], "frame unwound");
}

// The reference cancel_now holds for a wake-up it went ahead of was only
// released when that wake-up came: a loop closed first (close(), not
// shutdown(), which runs the ready callbacks) dropped the wake-up unrun and
// leaked the task's state (LeakSanitizer, in the asan-ubsan preset).
TEST(BoundTask, ClosingTheLoopBeforeADroppedWakeupCameReleasesTheTask) {
  QiEventLoop loop;
  Log log;
  auto fut = loop.create_future<int>();
  auto* guard = new QObject;
  {
    qi::Task<void> t = loop.run_until_complete([](QiEventLoop&, Log& log, qi::Future<int> f,
                                                   QObject* g) -> qi::Coro<qi::Task<void>> {
      auto task = qi::create_task(logged(log, f), g);
      co_await qi::sleep(0);  // the task runs its first step and waits for f
      co_return task;
    }(loop, log, fut, guard));
    fut.set_result(1);  // its wake-up is scheduled, not run
    delete guard;       // unwinds it now, ahead of the wake-up
    EXPECT_EQ(log, (Log{"cancelled: the QObject the task was bound to was destroyed", "frame unwound"}));
    EXPECT_TRUE(t.cancelled());
  }
  loop.close();  // drops the wake-up unrun; the task's state must go with it
}
