// co_await QFuture<T> in a qi::Coro: result, exception with its original
// type, cancellation both ways, no hang on a cancelled or abandoned QFuture,
// resumption on the loop's thread (QCoro once resumed on the wrong one), a
// finished QFuture not suspending. Crosses threads: label `thread` (TSan).
#include <qiloop/qiloop.h>
#include <qiloop/testing.h>

#include "outside_task.h"

#include <QtConcurrent/QtConcurrentRun>
#include <QtCore/QCoreApplication>
#include <QtCore/QFuture>
#include <QtCore/QPromise>

#include <atomic>
#include <coroutine>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>

using namespace std::chrono_literals;

// Qt and libstdc++ are not built for ThreadSanitizer, so it cannot see the
// hand-overs they make under their own locks and counts: a QFutureWatcher's
// callout events are allocated on the producer's thread and freed by Qt on
// the loop's (Qt's posted-event queue); an exception_ptr's last reference
// may go on the pool thread (libstdc++'s count); QtConcurrent hands its task
// object to a pool thread through QThreadPool's lock; a QFuture's result
// store is cleared by whichever holder drops Qt's count last. Only those
// are suppressed: what Qt itself allocates and frees, the deletion of an
// exception object by its last exception_ptr, QtConcurrent's task (its
// frames) and the result store's clean-up.
#if defined(__SANITIZE_THREAD__)
extern "C" const char* __tsan_default_suppressions() {
  return "called_from_lib:libQt6Core.so.6\n"
         "race:std::__exception_ptr::exception_ptr::_M_release\n"
         "race:QtConcurrent::\n"
         "race:qtconcurrentstoredfunctioncall.h\n"
         "race:QtPrivate::ResultStoreBase::clear\n";
}
#endif

// What QCoro declares (qcorofuture.h): a global operator co_await for every
// QFuture. Inside a qi::Coro, qiloop's await (await_transform's adapter)
// must win without ambiguity; this one marks that it was used.
namespace {
bool g_global_operator_used = false;
struct GlobalFutureAwaiter {
  bool await_ready() const noexcept { return true; }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  int await_resume() const noexcept {
    g_global_operator_used = true;
    return -1;
  }
};
}  // namespace
template <class T>
GlobalFutureAwaiter operator co_await(QFuture<T>) {
  return {};
}

namespace {

struct Boom : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Runs `body` on a std::thread joined when it goes (join: TSan sees the hand-over).
class Worker {
 public:
  template <class F>
  explicit Worker(F body) : thread_(std::move(body)) {}
  ~Worker() { thread_.join(); }

 private:
  std::thread thread_;
};

qi::Coro<void> finish_later(QPromise<int>& p, int v) {
  co_await qi::sleep(10ms);
  p.start();
  p.addResult(v);
  p.finish();
}

// A task that counts its steps, to tell whether an await suspended.
qi::Coro<void> bystander(bool& ran) {
  ran = true;
  co_return;
}

}  // namespace

QILOOP_TEST_MODES(QFuture, AwaitsAPromiseFinishedLaterAndYieldsItsResult) {
  QPromise<int> p;
  QFuture<int> f = p.future();
  auto producer = qi::create_task(finish_later(p, 42));
  int v = co_await f;
  EXPECT_EQ(v, 42);
  EXPECT_EQ(f.result(), 42);  // an lvalue await copies: the QFuture keeps it
  QFuture<int> copy = f;
  EXPECT_EQ(co_await std::move(copy), 42);
  EXPECT_EQ(f.result(), 42);  // so does an rvalue one, for a copyable T
  co_await producer;
}

QILOOP_TEST_MODES(QFuture, AFinishedQFutureDoesNotSuspend) {
  QPromise<std::string> p;
  p.start();
  p.addResult(std::string("ready"));
  p.finish();
  bool other_ran = false;
  auto other = qi::create_task(bystander(other_ran));
  std::string s = co_await p.future();
  EXPECT_EQ(s, "ready");
  EXPECT_FALSE(other_ran);  // no trip through the loop
  co_await other;
}

QILOOP_TEST_MODES(QFuture, AwaitsAVoidQFuture) {
  QPromise<void> p;
  QFuture<void> f = p.future();
  auto producer = qi::create_task([](QPromise<void>& p) -> qi::Coro<void> {
    co_await qi::sleep(5ms);
    p.start();
    p.finish();
  }(p));
  co_await f;
  EXPECT_TRUE(f.isFinished());
  co_await producer;
}

QILOOP_TEST_MODES(QFuture, AnRvalueAwaitMovesAMoveOnlyResultOut) {
  QPromise<std::unique_ptr<int>> p;
  QFuture<std::unique_ptr<int>> f = p.future();
  auto producer = qi::create_task([](QPromise<std::unique_ptr<int>>& p) -> qi::Coro<void> {
    co_await qi::sleep(5ms);
    p.start();
    p.addResult(std::make_unique<int>(7));
    p.finish();
  }(p));
  std::unique_ptr<int> v = co_await std::move(f);
  QILOOP_CO_ASSERT(ASSERT_TRUE(v));
  EXPECT_EQ(*v, 7);
  co_await producer;
}

QILOOP_TEST_MODES(QFuture, AnExceptionSetOnThePromiseKeepsItsType) {
  QPromise<int> p;
  QFuture<int> f = p.future();
  auto producer = qi::create_task([](QPromise<int>& p) -> qi::Coro<void> {
    co_await qi::sleep(5ms);
    p.start();
    p.setException(std::make_exception_ptr(Boom("from the promise")));
    p.finish();
  }(p));
  std::string caught;
  try {
    co_await f;
  } catch (const Boom& e) {
    caught = e.what();
  }
  EXPECT_EQ(caught, "from the promise");
  co_await producer;
}

// Already finished with an exception: thrown without suspending.
QILOOP_TEST_MODES(QFuture, AFinishedQFutureWithAnExceptionThrowsAtOnce) {
  QPromise<void> p;
  p.start();
  p.setException(std::make_exception_ptr(Boom("early")));
  p.finish();
  bool caught = false;
  try {
    co_await p.future();
  } catch (const Boom&) {
    caught = true;
  }
  EXPECT_TRUE(caught);
}

// asyncio: cancelling a task cancels what it awaits. The producer learns it
// through QPromise::isCanceled(); the task does not wait for it.
QILOOP_TEST_MODES(QFuture, CancellingTheAwaitingTaskCancelsTheQFutureAtOnce) {
  QPromise<int> p;
  p.start();
  QFuture<int> f = p.future();
  auto waiter = qi::create_task([](QFuture<int> f) -> qi::Coro<int> { co_return co_await f; }(f));
  co_await qi::sleep(5ms);
  EXPECT_FALSE(waiter.done());
  waiter.cancel("enough");
  std::string msg;
  try {
    co_await waiter;
  } catch (const qi::CancelledError& e) {
    msg = e.what();
  }
  EXPECT_EQ(msg, "enough");
  EXPECT_TRUE(f.isCanceled());
  EXPECT_TRUE(p.isCanceled());  // what a producer polls
  EXPECT_FALSE(f.isFinished());  // the task did not wait for the producer
  p.finish();
}

// QCoro's and qasync's known hang: a QFuture cancelled without finishing.
QILOOP_TEST_MODES(QFuture, AQFutureCancelledWithoutFinishingEndsTheWaitWithCancelledError) {
  QPromise<int> p;
  p.start();
  QFuture<int> f = p.future();
  qi::get_running_loop().call_later(5ms, [f]() mutable { f.cancel(); });
  bool cancelled = false;
  try {
    co_await f;
  } catch (const qi::CancelledError& e) {
    cancelled = true;
    EXPECT_STREQ(e.what(), "the QFuture was cancelled");
  }
  EXPECT_TRUE(cancelled);
  EXPECT_FALSE(f.isFinished());
  EXPECT_FALSE(qi::current_task().cancelling());  // the task itself was not cancelled
  p.finish();
}

QILOOP_TEST_MODES(QFuture, APromiseDestroyedUnfinishedEndsTheWaitWithCancelledError) {
  auto p = std::make_unique<QPromise<int>>();
  p->start();
  QFuture<int> f = p->future();
  qi::get_running_loop().call_later(5ms, [&p] { p.reset(); });
  bool cancelled = false;
  try {
    co_await f;
  } catch (const qi::CancelledError&) {
    cancelled = true;
  }
  EXPECT_TRUE(cancelled);
}

QILOOP_TEST_MODES(QFuture, ADefaultConstructedQFutureIsCancelled) {
  bool cancelled = false;
  try {
    co_await QFuture<int>();
  } catch (const qi::CancelledError&) {
    cancelled = true;
  }
  EXPECT_TRUE(cancelled);
}

QILOOP_TEST_MODES(QFuture, AQFutureFinishedWithoutAResultThrowsRuntimeError) {
  QPromise<int> p;
  QFuture<int> f = p.future();
  auto producer = qi::create_task([](QPromise<int>& p) -> qi::Coro<void> {
    co_await qi::sleep(5ms);
    p.start();
    p.finish();
  }(p));
  std::string error;
  try {
    co_await f;
  } catch (const qi::RuntimeError& e) {
    error = e.what();
  }
  EXPECT_NE(error.find("without a result"), std::string::npos) << error;
  co_await producer;
}

// A QFuture holds one continuation: the await must not take the caller's.
QILOOP_TEST_MODES(QFuture, AContinuationTheCallerAttachedStillRuns) {
  QPromise<int> p;
  QFuture<int> f = p.future();
  std::atomic<int> seen{0};
  QFuture<void> chained = f.then([&seen](int v) { seen = v; });
  auto producer = qi::create_task(finish_later(p, 5));
  EXPECT_EQ(co_await f, 5);
  co_await chained;
  EXPECT_EQ(seen.load(), 5);
  co_await producer;
}

QILOOP_TEST_MODES(QFuture, SeveralTasksAwaitTheSameQFuture) {
  QPromise<int> p;
  QFuture<int> f = p.future();
  auto a = qi::create_task([](QFuture<int> f) -> qi::Coro<int> { co_return co_await f; }(f));
  auto b = qi::create_task([](QFuture<int> f) -> qi::Coro<int> { co_return co_await f + 1; }(f));
  auto producer = qi::create_task(finish_later(p, 10));
  EXPECT_EQ(co_await a, 10);
  EXPECT_EQ(co_await b, 11);
  co_await producer;
}

// The await is a qi awaitable everywhere one is taken, e.g. by qi::timeout,
// whose expiry cancels the QFuture.
QILOOP_TEST_MODES(QFuture, ATimedOutQFutureIsCancelled) {
  QPromise<int> p;
  p.start();
  QFuture<int> f = p.future();
  bool timed_out = false;
  try {
    co_await qi::timeout(10ms, f);
  } catch (const qi::TimeoutError&) {
    timed_out = true;
  }
  EXPECT_TRUE(timed_out);
  EXPECT_TRUE(p.isCanceled());
  p.finish();
}

QILOOP_TEST_MODES(QFuture, QiloopsAwaitWinsOverAGlobalOperatorCoAwaitSuchAsQCoros) {
  QPromise<int> p;
  QFuture<int> f = p.future();
  auto producer = qi::create_task(finish_later(p, 8));
  EXPECT_EQ(co_await f, 8);
  EXPECT_FALSE(g_global_operator_used);
  co_await producer;
}

// --- Other threads ----------------------------------------------------------

QILOOP_TEST_MODES(QFutureThreads, APromiseFinishedOnAnotherThreadResumesOnTheLoopThread) {
  const auto loop_thread = std::this_thread::get_id();
  QPromise<int> p;
  QFuture<int> f = p.future();
  std::thread::id producer_thread;
  int v = 0;
  {
    Worker worker([&p, &producer_thread] {
      producer_thread = std::this_thread::get_id();
      std::this_thread::sleep_for(5ms);
      p.start();
      p.addResult(99);
      p.finish();
    });
    v = co_await f;
    EXPECT_EQ(std::this_thread::get_id(), loop_thread);
  }
  EXPECT_EQ(v, 99);
  EXPECT_NE(producer_thread, loop_thread);
}

QILOOP_TEST_MODES(QFutureThreads, QtConcurrentRunYieldsItsResultOnTheLoopThread) {
  const auto loop_thread = std::this_thread::get_id();
  std::thread::id ran_on;
  int v = co_await QtConcurrent::run([&ran_on] {
    ran_on = std::this_thread::get_id();
    std::this_thread::sleep_for(2ms);
    return 6 * 7;
  });
  EXPECT_EQ(v, 42);
  EXPECT_EQ(std::this_thread::get_id(), loop_thread);
  EXPECT_NE(ran_on, loop_thread);
}

// QtConcurrent wraps a non-QException in QUnhandledException; the awaiter
// gets the original (QCoro hands on the wrapper).
QILOOP_TEST_MODES(QFutureThreads, AnExceptionThrownInQtConcurrentRunKeepsItsType) {
  std::string caught;
  try {
    co_await QtConcurrent::run([] {
      throw Boom("from the pool");
      return 0;
    });
  } catch (const Boom& e) {
    caught = e.what();
  }
  EXPECT_EQ(caught, "from the pool");
}

QILOOP_TEST_MODES(QFutureThreads, CancellingTheTaskTellsAProducerOnAnotherThread) {
  QPromise<int> p;
  p.start();
  QFuture<int> f = p.future();
  std::atomic<bool> saw_cancel{false};
  std::atomic<bool> stop{false};
  Worker worker([&p, &saw_cancel, &stop] {
    while (!p.isCanceled() && !stop) std::this_thread::sleep_for(1ms);
    saw_cancel = p.isCanceled();
    p.finish();
  });
  auto waiter = qi::create_task([](QFuture<int> f) -> qi::Coro<int> { co_return co_await f; }(f));
  co_await qi::sleep(5ms);
  waiter.cancel();
  bool cancelled = false;
  try {
    co_await waiter;
  } catch (const qi::CancelledError&) {
    cancelled = true;
  }
  EXPECT_TRUE(cancelled);
  for (int i = 0; i < 2000 && !saw_cancel; ++i) co_await qi::sleep(1ms);
  stop = true;
  EXPECT_TRUE(saw_cancel.load());
}

// A loop closed while a task awaits a QFuture: the frame unwinds, and the
// producer finishing later touches nothing of the loop (held).
TEST(QFutureLoops, ALoopClosedWhileAQFutureIsAwaitedUnwindsAndTheProducerFinishesLater) {
  QPromise<int> promise;
  QFuture<int> f = promise.future();
  promise.start();
  std::atomic<bool> unwound{false};
  {
    QiEventLoop loop;
    auto t = loop.create_task([](QFuture<int> f, std::atomic<bool>& unwound) -> qi::Coro<int> {
      struct Mark {
        std::atomic<bool>& u;
        ~Mark() { u = true; }
      } mark{unwound};
      co_return co_await f;
    }(f, unwound));
    loop.run_until_complete([]() -> qi::Coro<void> { co_await qi::sleep(std::chrono::milliseconds(5)); }());
    EXPECT_FALSE(t.done());
    loop.close();
  }
  EXPECT_TRUE(unwound.load());
  std::thread producer([&] {
    promise.addResult(3);
    promise.finish();
  });
  producer.join();
  QCoreApplication::processEvents();
}

// A coroutine no task runs (another library's) awaiting a qi::Coro that
// awaits a pending QFuture: there is no task to resume when it finishes.
TEST(QFuture, AwaitedOutsideATaskThrowsNamingTheFix) {
  QPromise<int> promise;
  promise.start();
  QFuture<int> f = promise.future();
  auto awaits_it = [](QFuture<int> f) -> qi::Coro<int> { co_return co_await f; };
  std::string error;
  outside_task::await_outside_a_task([&] { return awaits_it(f); }, error);
  EXPECT_NE(error.find("co_await QFuture: no task is running"), std::string::npos) << error;
  EXPECT_NE(error.find("loop.create_task"), std::string::npos) << error;
  promise.finish();
}
