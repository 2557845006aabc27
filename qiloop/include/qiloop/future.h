// -----------------------------------------------------------------------------
// File: qiloop/future.h
// -----------------------------------------------------------------------------
//
// qi::Future<T> is asyncio.Future for C++: a slot that is filled once — with a
// value, an exception, or cancellation — and callbacks that the loop runs
// when it is. qi::FutureRef names any future (or task) without its type.
//
// Example:
//
//   qi::Future<int> f = loop.create_future<int>();
//   f.add_done_callback([](qi::Future<int> done) { use(done.result()); });
//   f.set_result(42);                   // the callback runs on a later iteration
//   int v = loop.run_until_complete(f); // or, in a coroutine: co_await f
//
// A Future is a copyable shared handle to one result slot: every copy sees the
// same state, and the state lives as long as a handle (or a scheduled done
// callback) refers to it — also past its loop. It is bound to the loop that
// created it. A qi::Task<T> (<qiloop/task.h>) is a Future<T> whose result comes
// from a coroutine.
//
// Ordering: done callbacks never run inside set_result / set_exception /
// cancel. When the future completes, each is scheduled with the loop's
// call_soon in the order it was added, so they run on the next iteration; one
// added to a done future is scheduled at once. The future is done before any
// of them runs, so cancel() from a done callback returns false.
//
// Thread-safety: a future belongs to its loop's thread. Handles (and
// FutureRefs) may be copied and destroyed on any thread — the reference count
// is atomic — so a handle can ride in a callback given to
// call_soon_threadsafe, which is how another thread completes a future. Every
// other call is the loop thread's. In debug mode a call that changes or may
// change a future (set_result, set_exception, cancel, add/remove_done_callback)
// made from another thread throws qi::RuntimeError before it reads or changes
// anything, even when the future is done.
//
// Re-entrancy: every call may be made from a done callback, of this future or
// another.
//
// Unretrieved exceptions: an exception that was set and never retrieved (by
// result(), exception() or co_await) is reported to the loop's exception
// handler when the last handle goes ("Future exception was never retrieved",
// with ExceptionContext::future naming the future).
//
// Memory: one heap allocation per future (intrusive count; what few futures
// need — a cancel message, a second done callback — is allocated when first
// needed). The state is in <qiloop/detail/future_state.h>.
#pragma once

#include <qiloop/detail/awaiters.h>
#include <qiloop/detail/future_state.h>
#include <qiloop/detail/invoke.h>
#include <qiloop/detail/task_core.h>
#include <qiloop/errors.h>
#include <qiloop/export.h>

#include <cstdint>
#include <exception>
#include <string>
#include <type_traits>
#include <utility>

class QiEventLoop;

namespace qi {

template <class T> class Future;

namespace detail {
template <class T> FutureStateBase* state_of(const Future<T>& f) noexcept;
}  // namespace detail

// qi::FutureRef
//
// A nullable, type-erased reference to a future or task, for identity and
// diagnostics (ExceptionContext::future). It keeps the state alive like a
// handle. Two FutureRefs compare equal when they refer to the same state (or
// are both empty); a FutureRef compares with any Future<T> / Task<T>.
// Thread-safety and re-entrancy: as the future's (see the file comment).
class FutureRef {
 public:
  // FutureRef::FutureRef()
  // An empty reference: operator bool is false and every other call but
  // state() and comparison is undefined.
  FutureRef() noexcept = default;

  // FutureRef::operator bool()
  // True when it refers to a future.
  explicit operator bool() const noexcept { return static_cast<bool>(state_); }

  // FutureRef::done()
  // FutureRef::cancelled()
  // FutureRef::cancel()
  // As on the Future / Task it refers to: cancel() of a task cancels the
  // task (not only its result slot). Loop thread only (cancel is checked in
  // debug mode).
  bool done() const noexcept { return state_->done(); }
  bool cancelled() const noexcept { return state_->cancelled(); }
  bool cancel(std::string msg = {}) const { return state_->cancel(std::move(msg)); }

  // FutureRef::describe()
  // "Future", or "Task 'name'" for a task. Loop thread only.
  std::string describe() const { return state_->describe(); }

  friend bool operator==(const FutureRef& a, const FutureRef& b) noexcept { return a.state_ == b.state_; }

  // Internal: takes a new reference to s (may be null); the state.
  explicit FutureRef(detail::FutureStateBase* s) noexcept : state_(s) {}
  detail::FutureStateBase* state() const noexcept { return state_.get(); }

 private:
  detail::StateRef<detail::FutureStateBase> state_;
};

// qi::TaskRef
//
// A FutureRef that refers to a task (or is empty): what qi::current_task()
// returns and ExceptionContext::task holds. Equal to the Task<T> it refers to.
class TaskRef : public FutureRef {
 public:
  TaskRef() noexcept = default;
  // Internal: takes a new reference to the state of a task (may be null).
  explicit TaskRef(detail::FutureStateBase* s) noexcept : FutureRef(s) {}

  // TaskRef::cancelling()
  // TaskRef::uncancel()
  // As Task<T>'s (<qiloop/task.h>): how many cancel requests are pending;
  // take one back. What qi::timeout and qi::TaskGroup keep their books with
  // on qi::current_task(). Loop thread only.
  int cancelling() const noexcept { return core()->cancelling(); }
  int uncancel() const noexcept { return core()->uncancel(); }

 private:
  detail::TaskCore* core() const noexcept { return static_cast<detail::TaskCore*>(state()); }
};

// qi::Future<T>
//
// T is held by value: not a reference, array or function type (refused at
// compile time; use a pointer or std::reference_wrapper<T>).
template <class T>
class Future {
  static_assert(!std::is_reference_v<T> && !std::is_array_v<T> && !std::is_function_v<T>,
                "qiloop: qi::Future<T> and qi::Task<T> hold their result by value: T cannot be a reference, array "
                "or function type; use a pointer or std::reference_wrapper<T> instead");

 public:
  using value_type = T;

  // Future::Future()
  // The default constructor makes an empty handle: valid() is false and
  // every other call but comparison is undefined. Future(loop) makes a
  // pending future bound to loop (asyncio.Future(loop=loop); the usual
  // spelling is loop.create_future<T>()). Throws only std::bad_alloc.
  Future() noexcept = default;
  explicit Future(QiEventLoop& loop) : state_(state_type::adopt(new detail::FutureState<T>(loop))) {}

  // Future::valid()
  // False for a default-constructed (or moved-from) handle.
  bool valid() const noexcept { return static_cast<bool>(state_); }

  // Future::get_loop()
  // The loop the future is bound to; null once that loop was destroyed.
  QiEventLoop* get_loop() const noexcept { return state_->loop(); }

  // Future::done()
  // Future::cancelled()
  // done(): finished with a value or an exception, or cancelled.
  bool done() const noexcept { return state_->done(); }
  bool cancelled() const noexcept { return state_->cancelled(); }

  // Future::result()
  // The value (a const reference; nothing for T = void). Throws
  // qi::InvalidStateError while pending, qi::CancelledError (with the cancel
  // message) when cancelled, and the stored exception with its original type
  // when one was set — which counts as retrieving it.
  decltype(auto) result() const { return detail::result_of<T>(*state_); }

  // Future::exception()
  // The stored exception (retrieving it), or null when finished with a
  // value. Throws qi::CancelledError when cancelled, qi::InvalidStateError
  // while pending.
  std::exception_ptr exception() const { return state_->exception(); }

  // Future::set_result()
  // Finishes the future with a value (nothing for T = void) and schedules
  // its done callbacks. Throws qi::InvalidStateError when it is done,
  // qi::RuntimeError on a handle of a task (a task's result comes from its
  // coroutine, as in asyncio) and, when there are done callbacks to
  // schedule, on a closed loop — before it changes anything.
  template <class U = T>
    requires(!std::is_void_v<T> && std::is_constructible_v<T, U &&>)
  void set_result(U&& v) const {
    state_->check_settable("set_result");
    plain().finish_with_value(std::forward<U>(v));
  }
  void set_result() const
    requires std::is_void_v<T>
  {
    state_->check_settable("set_result");
    plain().finish_with_value();
  }

  // Future::set_exception()
  // Finishes the future with e, as set_result does with a value; also
  // throws std::invalid_argument for a null exception_ptr.
  void set_exception(std::exception_ptr e) const { state_->set_exception(std::move(e)); }

  // Future::cancel()
  // Cancels the future with an optional message (carried by the
  // qi::CancelledError that result() throws) and schedules its done
  // callbacks; returns false and changes nothing when it is already done.
  // On a handle of a task it requests the task's cancellation (see
  // <qiloop/task.h>).
  bool cancel(std::string msg = {}) const { return state_->cancel(std::move(msg)); }

  // Future::add_done_callback()
  // Adds cb, called as cb(future) — or cb() if it takes no argument — through
  // the loop's ready queue once the future is done (see "Ordering" above).
  // Returns an id for remove_done_callback. O(1), however many callbacks
  // there are. A callback that is a coroutine (returns qi::Coro) or takes
  // another future type is refused at compile time; throws
  // std::invalid_argument for an empty callable, qi::RuntimeError once the
  // future's loop was destroyed (done or pending: no callback of it can run
  // any more).
  template <class F>
  uint64_t add_done_callback(F&& cb) const;

  // Future::remove_done_callback()
  // Removes the callback with this id; returns how many were removed (0 or
  // 1). An id this future did not hand out (another future's, or one
  // already removed) removes nothing. O(1).
  std::size_t remove_done_callback(uint64_t id) const { return state_->remove_done_callback(id); }

  // Future::ref()
  // A type-erased reference to this future.
  FutureRef ref() const noexcept { return FutureRef(state_.get()); }

  // Future::operator==()
  // Equal when both refer to the same state (or both are empty); compares
  // with a FutureRef or TaskRef the same way.
  friend bool operator==(const Future& a, const Future& b) noexcept { return a.state_ == b.state_; }
  friend bool operator==(const Future& a, const FutureRef& b) noexcept { return a.state_.get() == b.state(); }

  // Future::operator co_await()
  // Suspends the current task until the future is done, then yields its
  // value — a copy; `co_await std::move(f)` moves it out — or throws its
  // exception. Awaiting a done future does not suspend. Throws
  // qi::RuntimeError outside a task, or for a pending future of another
  // loop or of a destroyed one (nothing could wake the task).
  detail::FutureAwaiter<T, false> operator co_await() const& { return {state_}; }
  detail::FutureAwaiter<T, true> operator co_await() && { return {std::move(state_)}; }

 protected:
  using state_type = detail::StateRef<detail::FutureStateBase>;
  explicit Future(state_type s) noexcept : state_(std::move(s)) {}

 private:
  friend detail::FutureStateBase* detail::state_of<T>(const Future<T>&) noexcept;
  // Only after check_settable, which refuses a task's state.
  detail::FutureState<T>& plain() const noexcept { return static_cast<detail::FutureState<T>&>(*state_); }
  state_type state_;
};

// --- Implementation -----------------------------------------------------------

template <class T>
template <class F>
uint64_t Future<T>::add_done_callback(F&& cb) const {
  using D = std::decay_t<F>;
  constexpr bool kTakesFuture = std::is_invocable_v<D&, Future<T>>;
  detail::check_not_coro_object<D>();
  static_assert(kTakesFuture || std::is_invocable_v<D&> || detail::is_coro<D>::value,
                "qiloop: add_done_callback: the callback must take this future (qi::Future<T>, or const "
                "qi::Future<T>&, with this future's own T) or no argument");
  if constexpr (kTakesFuture)
    detail::check_callback_result<std::invoke_result_t<D&, Future<T>>>();
  else if constexpr (std::is_invocable_v<D&>)
    detail::check_callback_result<std::invoke_result_t<D&>>();
  if (detail::is_empty_callable(cb)) detail::throw_empty_callable("add_done_callback");
  return state_->add_done_callback([cb = std::forward<F>(cb)](detail::FutureStateBase& s) mutable {
    if constexpr (kTakesFuture) {
      Future<T> self;
      self.state_ = state_type(&s);
      cb(std::move(self));
    } else if constexpr (std::is_invocable_v<D&>) {
      cb();
    }
  });
}

template <class T>
detail::FutureStateBase* detail::state_of(const Future<T>& f) noexcept {
  return f.state_.get();
}

}  // namespace qi
