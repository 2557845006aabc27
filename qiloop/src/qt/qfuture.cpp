// qfuture.cpp — what a task awaiting a QFuture waits on: a future state of
// the task's loop, finished from a QFutureWatcher on the loop's thread.
#include <qiloop/event_loop.h>
#include <qiloop/qt/qfuture.h>

#include <QtCore/QException>
#include <QtCore/QFutureWatcher>

namespace qi::detail {

namespace {

// Invariant: lives on the loop's thread (its only references are the
// awaiter's in the task's frame and the loop's done-callback entries), so
// its watcher is made, used and destroyed there.
class QFutureWait final : public FutureState<void> {
 public:
  QFutureWait(QiEventLoop& loop, QFuture<void> f) : FutureState<void>(loop), watcher_(*this) {
    watcher_.setFuture(std::move(f));  // replays what already happened as events
  }

  // The awaiting task's cancellation reaches the producer.
  bool cancel(std::string msg) override {
    if (!FutureState<void>::cancel(std::move(msg))) return false;
    watcher_.future().cancel();
    return true;
  }

 private:
  // Looks at the QFuture after each of the watcher's events rather than
  // through its signals: no connection to make per await.
  class Watcher final : public QFutureWatcher<void> {
   public:
    explicit Watcher(QFutureWait& owner) : owner_(owner) {}
    // Every event a watcher gets is a callout (or harmless): the QFuture's
    // state is looked at after each. (Not e->type(): the event was made on
    // the producer's thread and handed over inside Qt, out of the sight of
    // ThreadSanitizer.)
    bool event(QEvent* e) override {
      const bool handled = QFutureWatcher<void>::event(e);
      owner_.on_callout();
      return handled;
    }

   private:
    QFutureWait& owner_;
  };

  void on_callout() noexcept {
    if (done() || !(watcher_.isFinished() || watcher_.isCanceled())) return;
    // Finished with a value: the awaiter reads the outcome from the QFuture.
    // This runs from Qt's event dispatch, which no exception may cross.
    try {
      finish_with_value();
    } catch (...) {
      if (QiEventLoop* l = loop()) {
        ExceptionContext ctx;
        ctx.message = "a QFuture finished, but its awaiting task could not be woken";
        ctx.exception = std::current_exception();
        l->call_exception_handler(ctx);
      }
    }
  }

  Watcher watcher_;
};

std::exception_ptr unwrapped(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const QUnhandledException& u) {
    if (u.exception()) return u.exception();
  } catch (...) {
  }
  return e;
}

}  // namespace

StateRef<FutureStateBase> await_qfuture(QFuture<void> f, std::coroutine_handle<> h) {
  TaskCore* t = TaskCore::current();
  if (!t)
    throw RuntimeError(
        "co_await QFuture: no task is running; await it from a coroutine run by a task (loop.create_task, "
        "run_task, run_until_complete or qi::run)");
  auto wait = StateRef<FutureStateBase>::adopt(new QFutureWait(*t->loop(), std::move(f)));
  await_future(*wait, h);
  return wait;
}

void check_qfuture(QFutureInterfaceBase f, bool need_result) {
  if (f.hasException()) std::rethrow_exception(unwrapped(f.exceptionStore().exception()));
  if (f.isCanceled()) throw CancelledError("the QFuture was cancelled");
  if (need_result && !f.isResultReadyAt(0))
    throw RuntimeError(
        "co_await QFuture: the QFuture finished without a result (its QPromise finished before addResult); "
        "report a result, or make it a QFuture<void>");
}

}  // namespace qi::detail
