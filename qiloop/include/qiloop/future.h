// qiloop/future.h — qi::Future<T>, asyncio.Future for C++.
//
//   qi::Future<int> f = loop.create_future<int>();
//   f.add_done_callback([](qi::Future<int> done) { use(done.result()); });
//   f.set_result(42);          // the callback runs on a later loop iteration
//   int v = loop.run_until_complete(f);
//
// A Future is a copyable shared handle to one result slot: every copy sees the
// same state. It is bound to the loop that created it.
//
// Contract (asyncio's):
// - result() throws qi::InvalidStateError while pending, qi::CancelledError
//   (with the cancel message) when cancelled, the stored exception with its
//   original type when one was set; otherwise returns the value.
// - set_result / set_exception on a done future throw qi::InvalidStateError;
//   on a Future<T> handle of a task they throw qi::RuntimeError (a task's
//   result comes from its coroutine, as in asyncio).
// - cancel(msg) returns false when already done.
// - Done callbacks never run inside set_result / set_exception / cancel: each
//   is scheduled with loop.call_soon when the future completes, in the order
//   they were added (so they run on the next iteration). A callback added to a
//   done future is scheduled at once.
// - An exception that was set and never retrieved (by result() or
//   exception()) is reported to the loop's exception handler when the last
//   handle goes away.
//
// - cancel() from a done callback (of this future or another) returns false
//   and changes nothing: the future is already done when its callbacks run.
//
// Memory: one heap allocation per future; a task's state is 128 bytes
// beyond its coroutine frame (see detail/future_state.h).
//
// Thread-safety: a future belongs to its loop's thread. Handles may be
// copied and destroyed on any thread (the reference count is atomic), so a
// handle can ride in a callback for loop.call_soon_threadsafe, which is how
// another thread completes a future; every other call is the loop thread's. In debug
// mode a call that changes or may change a future (set_result,
// set_exception, cancel, add/remove_done_callback), made from another thread,
// throws qi::RuntimeError before it reads or changes anything, even when the
// future is done; completing a future with done callbacks on a closed loop
// throws before it changes anything.
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

// A nullable, type-erased reference to a future or task, for diagnostics and
// identity (ExceptionContext::task, qi::current_task()). Compares equal when
// both refer to the same state (or both are empty).
class TaskRef {
 public:
  TaskRef() noexcept = default;
  // Takes a new reference to s (may be null).
  explicit TaskRef(detail::FutureStateBase* s) noexcept : state_(s) {}
  explicit operator bool() const noexcept { return static_cast<bool>(state_); }
  detail::FutureStateBase* state() const noexcept { return state_.get(); }
  // For a non-empty reference: as on the Task / Future it refers to.
  bool done() const noexcept { return state_->done(); }
  bool cancelled() const noexcept { return state_->cancelled(); }
  bool cancel(std::string msg = {}) const { return state_->cancel(std::move(msg)); }
  // "Future", or "Task 'name'".
  std::string describe() const { return state_->describe(); }
  friend bool operator==(const TaskRef& a, const TaskRef& b) noexcept { return a.state_ == b.state_; }

 private:
  detail::StateRef<detail::FutureStateBase> state_;
};

template <class T>
class Future {
  static_assert(!std::is_reference_v<T> && !std::is_array_v<T> && !std::is_function_v<T>,
                "qiloop: qi::Future<T> and qi::Task<T> hold their result by value: T cannot be a reference, array "
                "or function type; use a pointer or std::reference_wrapper<T> instead");

 public:
  using value_type = T;

  // An empty handle: valid() is false and every other call is undefined.
  Future() noexcept = default;
  // A pending future bound to loop (asyncio.Future(loop=loop)).
  explicit Future(QiEventLoop& loop) : state_(state_type::adopt(new detail::FutureState<T>(loop))) {}

  bool valid() const noexcept { return static_cast<bool>(state_); }
  QiEventLoop* get_loop() const noexcept { return state_->loop(); }
  bool done() const noexcept { return state_->done(); }
  bool cancelled() const noexcept { return state_->cancelled(); }

  // Future::result()
  // See the file comment for what it throws. For T = void returns nothing.
  decltype(auto) result() const { return detail::result_of<T>(*state_); }
  // Future::exception()
  // The stored exception, or null when finished with a value. Throws
  // qi::CancelledError when cancelled, qi::InvalidStateError while pending.
  std::exception_ptr exception() const { return state_->exception(); }

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
  // Throws std::invalid_argument for a null exception_ptr.
  void set_exception(std::exception_ptr e) const { state_->set_exception(std::move(e)); }
  bool cancel(std::string msg = {}) const { return state_->cancel(std::move(msg)); }

  // Future::add_done_callback()
  // cb is called as cb(future) (or cb() if it takes no argument) through the
  // loop's ready queue. Returns an id for remove_done_callback. A callback
  // that is a coroutine (returns qi::Coro) or takes another type is refused
  // at compile time. Both calls take O(1), however many callbacks there are.
  template <class F>
  uint64_t add_done_callback(F&& cb) const {
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
  // Future::remove_done_callback()
  // Returns how many callbacks were removed (0 or 1). An id this future did
  // not hand out (another future's, or one already removed) removes nothing.
  std::size_t remove_done_callback(uint64_t id) const { return state_->remove_done_callback(id); }

  // A type-erased reference to this future (for comparisons and diagnostics).
  TaskRef ref() const noexcept { return TaskRef(state_.get()); }

  friend bool operator==(const Future& a, const Future& b) noexcept { return a.state_ == b.state_; }
  friend bool operator==(const Future& a, const TaskRef& b) noexcept { return a.state_.get() == b.state(); }

  // co_await future: suspends the current task until the future is done,
  // then yields its value (a copy; `co_await std::move(f)` moves it out) or
  // throws its exception. Awaiting a done future does not suspend.
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

template <class T>
detail::FutureStateBase* detail::state_of(const Future<T>& f) noexcept {
  return f.state_.get();
}

}  // namespace qi
