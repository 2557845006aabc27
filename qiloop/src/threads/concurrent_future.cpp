// concurrent_future.cpp — qi::ConcurrentFuture's shared state, the start of
// its task on the loop, and the wait of a coroutine of another loop on it.
#include <qiloop/event_loop.h>
#include <qiloop/task.h>
#include <qiloop/threads/concurrent_future.h>

#include <QtCore/QLoggingCategory>
#include <QtCore/QThread>

#include <string>

Q_DECLARE_LOGGING_CATEGORY(lcQiloop)

namespace qi::detail {

ConcurrentStateBase::~ConcurrentStateBase() = default;

bool ConcurrentStateBase::done() const {
  std::lock_guard<std::mutex> lock(m_);
  return status_ != Status::kPending;
}

bool ConcurrentStateBase::cancelled() const {
  std::lock_guard<std::mutex> lock(m_);
  return status_ == Status::kCancelled;
}

bool ConcurrentStateBase::cancel() {
  std::unique_lock<std::mutex> lock(m_);
  if (status_ != Status::kPending) return false;
  status_ = Status::kCancelled;
  if (loop_) {
    // loop_ is alive while we hold m_ (see the invariant).
    try {
      loop_->call_soon_threadsafe([self = shared_from_this()] { self->cancel_task(); });
    } catch (...) {
      // The loop is closing: it destroys the coroutine without our help.
    }
  }
  settle(lock);
  return true;
}

void ConcurrentStateBase::cancel_task() {
  TaskRef task;
  {
    std::lock_guard<std::mutex> lock(m_);
    task = TaskRef(task_);  // alive while set: we are on its loop's thread
  }
  if (task) task.cancel();
}

void ConcurrentStateBase::add_done_callback(Callback cb) {
  {
    std::lock_guard<std::mutex> lock(m_);
    if (status_ == Status::kPending) {
      callbacks_.push_back(std::move(cb));
      return;
    }
  }
  try {
    cb(*this);
  } catch (...) {
    qCCritical(lcQiloop, "an exception escaped a ConcurrentFuture done callback; it was dropped");
  }
}

void ConcurrentStateBase::wait(std::optional<std::chrono::steady_clock::duration> timeout, const char* api) const {
  std::unique_lock<std::mutex> lock(m_);
  if (status_ != Status::kPending) return;
  if (loop_ && loop_->thread() == QThread::currentThread())
    throw RuntimeError(std::string(api) +
                       ": called on the thread of the event loop that runs the coroutine, which would wait for "
                       "itself forever; from a coroutine of that loop write co_await qi::wrap_future(cf), or call "
                       "it from another thread");
  const auto pending = [this] { return status_ != Status::kPending; };
  if (!timeout) {
    cv_.wait(lock, pending);
  } else if (!cv_.wait_for(lock, *timeout, pending)) {
    throw TimeoutError(std::string(api) +
                       ": timed out; the coroutine keeps running (cancel() stops it, or wait again)");
  }
}

void ConcurrentStateBase::rethrow() const {
  if (status_ == Status::kCancelled) throw CancelledError();
  if (exception_) std::rethrow_exception(exception_);
}

std::exception_ptr ConcurrentStateBase::stored_exception() const {
  if (status_ == Status::kCancelled) throw CancelledError();
  return exception_;
}

bool ConcurrentStateBase::set_exception(std::exception_ptr e) {
  return complete(Status::kFinished, [&] { exception_ = std::move(e); });
}

void ConcurrentStateBase::mark_cancelled() {
  complete(Status::kCancelled, [] {});
}

void ConcurrentStateBase::attach_task(TaskCore* task) {
  std::lock_guard<std::mutex> lock(m_);
  task_ = task;
}

void ConcurrentStateBase::detach(const char* why) noexcept {
  std::unique_lock<std::mutex> lock(m_);
  // A task cancelled before its first step never ran its coroutine (which
  // would have reported the cancellation); one destroyed by close() is not
  // cancelled yet when its frame goes.
  const bool task_cancelled = task_ && task_->cancelled();
  loop_ = nullptr;
  task_ = nullptr;
  if (status_ != Status::kPending) return;
  if (task_cancelled) {
    status_ = Status::kCancelled;
    settle(lock);
    return;
  }
  try {
    exception_ = std::make_exception_ptr(RuntimeError(why));
  } catch (...) {
    exception_ = std::current_exception();  // std::bad_alloc: still an error, never a hang
  }
  status_ = Status::kFinished;
  settle(lock);
}

void ConcurrentStateBase::settle(std::unique_lock<std::mutex>& lock) noexcept {
  std::vector<Callback> callbacks = std::move(callbacks_);
  callbacks_.clear();
  lock.unlock();
  cv_.notify_all();
  for (Callback& cb : callbacks) {
    try {
      cb(*this);
    } catch (...) {
      qCCritical(lcQiloop, "an exception escaped a ConcurrentFuture done callback; it was dropped");
    }
  }
}

void start_chained(QiEventLoop& loop, ConcurrentStateBase& st, Coro<void> root) {
  Task<void> task = loop.create_task(std::move(root));
  st.attach_task(static_cast<TaskCore*>(state_of(task)));
  // Cancelled before its task existed: it never runs (asyncio cancels the
  // new task the same way).
  if (st.cancelled()) task.cancel();
}

namespace {

// Where the future's done callback (any thread) finds the waiting state.
// `wait` is a reference of its own, dropped by unhook() on the loop's
// thread (the awaiter's destructor at the latest, which the loop's close()
// reaches), so the loop is alive while it is set and the callback holds m.
struct Relay {
  std::mutex m;
  StateRef<FutureStateBase> wait;
  QiEventLoop* loop = nullptr;
};

// Invariant: lives on its loop's thread (its references are the awaiter's,
// the relay's and the loop's).
class ConcurrentWait final : public FutureState<void> {
 public:
  ConcurrentWait(QiEventLoop& loop, std::shared_ptr<ConcurrentStateBase> cf)
      : FutureState<void>(loop), cf_(std::move(cf)), relay_(std::make_shared<Relay>()) {
    relay_->loop = &loop;
  }

  void hook() {
    relay_->wait = StateRef<FutureStateBase>(this);
    cf_->add_done_callback([relay = relay_](ConcurrentStateBase&) {
      std::lock_guard<std::mutex> lock(relay->m);
      if (!relay->wait) return;
      try {
        relay->loop->call_soon_threadsafe([wait = relay->wait] {
          if (!wait->done()) static_cast<ConcurrentWait&>(*wait).finish_with_value();
        });
      } catch (...) {
        // The awaiting loop is closing: it destroys the awaiting task.
      }
    });
  }

  void unhook() noexcept {
    std::shared_ptr<Relay> relay = relay_;  // outlives the reference dropped below
    StateRef<FutureStateBase> dropped;
    {
      std::lock_guard<std::mutex> lock(relay->m);
      dropped = std::move(relay->wait);
    }
  }

  // The awaiting task's cancellation reaches the coroutine's loop.
  bool cancel(std::string msg) override {
    if (!FutureState<void>::cancel(std::move(msg))) return false;
    cf_->cancel();
    return true;
  }

 private:
  std::shared_ptr<ConcurrentStateBase> cf_;
  std::shared_ptr<Relay> relay_;
};

}  // namespace

void unhook_concurrent_wait(FutureStateBase& wait) noexcept { static_cast<ConcurrentWait&>(wait).unhook(); }

StateRef<FutureStateBase> await_concurrent(std::shared_ptr<ConcurrentStateBase> cf, std::coroutine_handle<> h) {
  TaskCore* t = TaskCore::current();
  if (!t)
    throw RuntimeError(
        "co_await qi::wrap_future: no task is running; await it from a coroutine run by a task "
        "(loop.create_task, run_task, run_until_complete or qi::run)");
  auto* wait = new ConcurrentWait(*t->loop(), std::move(cf));
  auto ref = StateRef<FutureStateBase>::adopt(wait);
  await_future(*wait, h);
  wait->hook();  // once the wait is registered: a future done by now wakes it next iteration
  return ref;
}

}  // namespace qi::detail
