// qiloop/threads/detail/concurrent_future.h — the shared state behind
// qi::ConcurrentFuture<T>, the task that fills it on its loop, and what
// `co_await qi::wrap_future(cf)` waits on. Internal; the contract is in
// <qiloop/threads/concurrent_future.h>.
#pragma once

#include <qiloop/coro.h>
#include <qiloop/detail/awaiters.h>
#include <qiloop/detail/future_state.h>
#include <qiloop/errors.h>
#include <qiloop/export.h>

#include <absl/functional/any_invocable.h>

#include <chrono>
#include <condition_variable>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

class QiEventLoop;

namespace qi::detail {

class TaskCore;

// Invariant: every field is guarded by m_; the outcome (status_,
// exception_, the derived value) is written once, under m_, and read only
// once done (a reader saw done under m_ first, so no lock is needed then).
// While loop_ is set, the loop is alive: it is cleared (detach()) by the
// LoopLink that travels with the coroutine, which the loop destroys, at the
// latest, inside its close(); so a thread holding m_ may call the loop's
// call_soon_threadsafe.
class QILOOP_EXPORT ConcurrentStateBase : public std::enable_shared_from_this<ConcurrentStateBase> {
 public:
  enum class Status : uint8_t { kPending, kCancelled, kFinished };
  using Callback = absl::AnyInvocable<void(ConcurrentStateBase&)>;

  explicit ConcurrentStateBase(QiEventLoop& loop) noexcept : loop_(&loop) {}
  ConcurrentStateBase(const ConcurrentStateBase&) = delete;
  ConcurrentStateBase& operator=(const ConcurrentStateBase&) = delete;
  virtual ~ConcurrentStateBase();

  // --- Any thread ---------------------------------------------------------------
  bool done() const;
  bool cancelled() const;
  // Marks the future cancelled (if pending), runs its callbacks here, and
  // asks the loop to cancel the task.
  bool cancel();
  void add_done_callback(Callback cb);
  // Blocks until done; `timeout` null: no limit. Throws qi::TimeoutError,
  // and qi::RuntimeError on the thread of the loop that would complete it.
  void wait(std::optional<std::chrono::steady_clock::duration> timeout, const char* api) const;
  // Once done: throws qi::CancelledError or the stored exception.
  void rethrow() const;
  // Once done: the stored exception (null after a value); qi::CancelledError
  // when cancelled.
  std::exception_ptr stored_exception() const;

  // --- The loop's thread (the task that runs the coroutine) ---------------------
  bool set_exception(std::exception_ptr e);
  // The task ended cancelled: the future is cancelled (no request back to it).
  void mark_cancelled();
  // The task that runs the coroutine, for cancel(); null once it ends.
  void attach_task(TaskCore* task);
  // The loop lets go of the coroutine (done, or dropped by close()): a
  // future still pending fails with qi::RuntimeError(why).
  void detach(const char* why) noexcept;
  // Runs on the loop (from cancel()): cancels the task, if it runs still.
  void cancel_task();

 protected:
  // Sets the outcome with store() if pending; runs the callbacks (on this
  // thread, outside the lock). Returns whether it was pending.
  template <class Store>
  bool complete(Status s, Store&& store) {
    std::unique_lock<std::mutex> lock(m_);
    if (status_ != Status::kPending) return false;
    store();
    status_ = s;
    settle(lock);
    return true;
  }

 private:
  // Wakes the waiters and runs the callbacks, `lock` released first.
  void settle(std::unique_lock<std::mutex>& lock) noexcept;

  mutable std::mutex m_;
  mutable std::condition_variable cv_;
  Status status_ = Status::kPending;
  std::exception_ptr exception_;
  std::vector<Callback> callbacks_;
  QiEventLoop* loop_;         // see the invariant
  TaskCore* task_ = nullptr;  // the running task (loop thread); alive while set
};

template <class T>
class ConcurrentState final : public ConcurrentStateBase {
 public:
  using ConcurrentStateBase::ConcurrentStateBase;
  template <class U>
  bool set_result(U&& v) {
    return complete(Status::kFinished, [&] { value_.emplace(std::forward<U>(v)); });
  }
  const T& value() const noexcept { return *value_; }
  T take() { return std::move(*value_); }

 private:
  std::optional<T> value_;
};

template <>
class ConcurrentState<void> final : public ConcurrentStateBase {
 public:
  using ConcurrentStateBase::ConcurrentStateBase;
  bool set_result() {
    return complete(Status::kFinished, [] {});
  }
};

// Travels with the coroutine: first in the callback that starts its task,
// then in the frame of the task's root coroutine. Whichever holds it when
// the loop drops it (close() discards the callback, or destroys the frame
// of a pending task) fails the future instead of leaving it pending forever.
class QILOOP_EXPORT LoopLink {
 public:
  explicit LoopLink(std::shared_ptr<ConcurrentStateBase> s) noexcept : state_(std::move(s)) {}
  LoopLink(LoopLink&& o) noexcept : state_(std::move(o.state_)), why_(o.why_) {}
  LoopLink& operator=(LoopLink&&) = delete;
  ~LoopLink() {
    if (state_) state_->detach(why_);
  }
  ConcurrentStateBase& state() const noexcept { return *state_; }
  // Now in the task's frame.
  void started() noexcept { why_ = kClosedWhileRunning; }

 private:
  static constexpr const char* kClosedBeforeRun =
      "run_coroutine_threadsafe: the event loop was closed before the coroutine ran; keep the loop running "
      "until its ConcurrentFutures are done";
  static constexpr const char* kClosedWhileRunning =
      "run_coroutine_threadsafe: the event loop was closed while the coroutine was still running; keep the "
      "loop running until its ConcurrentFutures are done";
  std::shared_ptr<ConcurrentStateBase> state_;
  const char* why_ = kClosedBeforeRun;
};

// The root coroutine of the task: fills the future with the coroutine's
// outcome as it ends, on the loop's thread (no extra iteration).
template <class T>
Coro<void> run_chained(Coro<T> coro, LoopLink link) {
  link.started();
  auto& st = static_cast<ConcurrentState<T>&>(link.state());
  try {
    if constexpr (std::is_void_v<T>) {
      co_await std::move(coro);
      st.set_result();
    } else {
      st.set_result(co_await std::move(coro));
    }
  } catch (const CancelledError&) {
    st.mark_cancelled();
    throw;  // the task ends cancelled, as the coroutine did
  } catch (...) {
    // Handed over (retrieved): the task itself ends without an error.
    st.set_exception(std::current_exception());
  }
}

// On the loop's thread: makes `root` a task of `loop` and lets the future
// cancel it (at once, if it already was).
QILOOP_EXPORT void start_chained(QiEventLoop& loop, ConcurrentStateBase& st, Coro<void> root);

// Registers the current task's wait for `cf` to be done; the returned state
// finishes then (through the awaiting loop's call_soon_threadsafe), and
// cancelling it cancels `cf`. Throws qi::RuntimeError outside a task.
QILOOP_EXPORT StateRef<FutureStateBase> await_concurrent(std::shared_ptr<ConcurrentStateBase> cf,
                                                         std::coroutine_handle<> h);

// Lets go of the wait's hook on the future (loop thread).
QILOOP_EXPORT void unhook_concurrent_wait(FutureStateBase& wait) noexcept;

struct [[nodiscard]] ConcurrentAwaiter {
  std::shared_ptr<ConcurrentStateBase> cf;
  StateRef<FutureStateBase> wait;
  ~ConcurrentAwaiter() {
    if (wait) unhook_concurrent_wait(*wait);
  }
  bool await_ready() const { return cf->done(); }
  void await_suspend(std::coroutine_handle<> h) { wait = await_concurrent(cf, h); }
  void await_resume() {
    if (!wait) return;
    after_resume(wait->cancelled());
    wait->check_result();  // the awaiting task's own cancellation
  }
};

// A timeout for ConcurrentFuture's blocking calls, in steady_clock ticks;
// beyond a century it means no limit (and cannot overflow).
template <class Rep, class Period>
std::optional<std::chrono::steady_clock::duration> to_wait_limit(std::chrono::duration<Rep, Period> d) {
  using namespace std::chrono;
  if (duration<double>(d) > duration<double>(hours(24 * 365 * 100))) return std::nullopt;
  if (d <= d.zero()) return steady_clock::duration::zero();
  return ceil<steady_clock::duration>(d);
}

}  // namespace qi::detail
