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
// Thread-safety: a future belongs to its loop's thread. Use
// loop.call_soon_threadsafe to complete one from another thread. In debug
// mode a call that changes or may change a future (set_result,
// set_exception, cancel, add/remove_done_callback), made from another thread,
// throws qi::RuntimeError before it reads or changes anything, even when the
// future is done; completing a future with done callbacks on a closed loop
// throws before it changes anything.
#pragma once

#include <qiloop/detail/invoke.h>
#include <qiloop/errors.h>
#include <qiloop/export.h>

#include <absl/container/inlined_vector.h>
#include <absl/functional/any_invocable.h>

#include <QtCore/QPointer>

#include <coroutine>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

class QiEventLoop;

namespace qi {

template <class T> class Future;

namespace detail {

class FutureStateBase;

// A future's done callbacks, in the order they were added. Invariant: the
// live callbacks form a list through slots_ from head_ to tail_; a slot
// never moves while linked, so an id is its index with its serial (bumped
// at each reuse, so a stale id matches nothing) and remove() finds its
// callback without a scan. Ids are scrambled with a key drawn from this
// list's address, so another future's id (the same index and serial there)
// matches nothing here either. remove() leaves an empty slot linked; they are
// unlinked once they outnumber the live ones, so a removal costs O(1)
// amortised. One inline slot: a future is usually awaited by one task.
// Internal to src/future.cpp (not exported, so its calls stay direct).
class DoneCallbacks {
 public:
  using Callback = absl::AnyInvocable<void(FutureStateBase&)>;

  DoneCallbacks() = default;
  // Pinned: its ids depend on its address (it lives in a future's state).
  DoneCallbacks(const DoneCallbacks&) = delete;
  DoneCallbacks& operator=(const DoneCallbacks&) = delete;

  uint32_t size() const noexcept { return live_; }
  // Appends cb; returns its id (never 0). Throws only std::bad_alloc /
  // std::length_error, changing nothing.
  uint64_t push_back(Callback&& cb);
  // Returns whether id named a callback still here.
  bool remove(uint64_t id) noexcept;
  // Takes the first callback out (size() > 0).
  Callback pop_front() noexcept;
  // Forgets them all, destroying them last (their destructors may call back
  // into the future).
  void clear() noexcept {
    // The usual end of firing: every callback ran and sits, moved from, in
    // the free list; only memory beyond the inline slot is worth giving back.
    if (live_ == 0 && removed_ == 0 && slots_.size() <= 1) return;
    clear_slow();
  }

 private:
  static constexpr uint32_t kNone = UINT32_MAX;
  // Slot indices stay below 2^31 and the key's bit 31 is set: no id is 0.
  static constexpr uint32_t kMaxSlots = uint32_t{1} << 31;
  uint64_t key() const noexcept {
    // The product is bijective in the address: two living futures share a
    // key only in the rare case that their products differ in bit 31 alone.
    return (reinterpret_cast<uintptr_t>(this) * UINT64_C(0x9E3779B97F4A7C15)) | kMaxSlots;
  }
  struct Slot {
    explicit Slot(Callback&& c) noexcept : cb(std::move(c)) {}
    Callback cb;             // empty when free, or removed but still linked
    uint32_t serial = 0;     // of the callback last put here; ids carry it
    uint32_t next = kNone;   // the next in add order, or in the free list
  };
  void compact() noexcept;
  void clear_slow() noexcept;

  absl::InlinedVector<Slot, 1> slots_;
  uint32_t head_ = kNone;
  uint32_t tail_ = kNone;
  uint32_t free_ = kNone;  // free slots, linked through next
  uint32_t live_ = 0;      // linked callbacks not removed
  uint32_t removed_ = 0;   // linked callbacks removed
};

// The type-independent part of a future's state.
class QILOOP_EXPORT FutureStateBase : public std::enable_shared_from_this<FutureStateBase> {
 public:
  enum class Status : uint8_t { kPending, kCancelled, kFinished };
  using DoneCallback = DoneCallbacks::Callback;

  explicit FutureStateBase(QiEventLoop& loop);
  FutureStateBase(const FutureStateBase&) = delete;
  FutureStateBase& operator=(const FutureStateBase&) = delete;
  virtual ~FutureStateBase();

  QiEventLoop* loop() const noexcept { return loop_.data(); }
  Status status() const noexcept { return status_; }
  bool done() const noexcept { return status_ != Status::kPending; }
  bool cancelled() const noexcept { return status_ == Status::kCancelled; }

  // Virtual: cancelling a task through any handle (a Future<T> copy, a
  // TaskRef) must cancel the task, not just its result slot.
  virtual bool cancel(std::string msg);
  void set_exception(std::exception_ptr e);
  std::exception_ptr exception();
  // Throws unless finished with a value; marks the result as retrieved.
  void check_result();
  // add_done_callback / remove_done_callback are O(1): an id names its slot.
  uint64_t add_done_callback(DoneCallback cb);
  std::size_t remove_done_callback(uint64_t id);
  std::string cancel_message() const { return cancel_message_ ? *cancel_message_ : std::string(); }
  // For diagnostics: "Future", or "Task 'name'".
  virtual std::string describe() const;
  // Internal (tasks): finishes as cancelled with `msg`, bypassing the task's
  // own cancel(); finishes with an exception without the checks.
  void mark_cancelled(std::string msg);
  void finish_with_exception(std::exception_ptr e);
  // Internal: the loop's checks for a call about to change this future,
  // made before anything changes (so a rejected call changes nothing).
  // Debug mode: qi::RuntimeError off the loop's thread. `schedules`: the call
  // will schedule done callbacks, so also what call_soon checks (a closed
  // loop).
  void check_call(const char* api, bool schedules) const;
  // Internal: debug mode's thread check alone, made before the call reads
  // anything of this future (off the loop's thread, the loop may be
  // changing it).
  void check_thread_first(const char* api) const;

 protected:
  // Throws qi::InvalidStateError when done, qi::RuntimeError for a task
  // (whose result comes from its coroutine), and check_call's errors.
  void check_settable(const char* api) const;
  // Marks finished and schedules the done callbacks.
  void finish(Status s);
  // Schedules n ready-queue entries, each running the next done callback.
  void schedule_entries(QiEventLoop& l, std::size_t n);
  // Reports an exception nobody retrieved (called by the destructors).
  void report_unretrieved() noexcept;

 private:
  QPointer<QiEventLoop> loop_;
  Status status_ = Status::kPending;
  bool retrieved_ = false;

 protected:
  bool is_task_ = false;  // set by the task that derives from this

 private:
  uint32_t firing_entries_ = 0;  // ready-queue entries not yet run or destroyed
  std::exception_ptr exception_;
  std::unique_ptr<std::string> cancel_message_;  // rare: kept out of line
  // Pending: the done callbacks. Done: those scheduled; each ready-queue
  // entry runs the first (entries and callbacks are both FIFO), so an entry
  // carries only a pointer.
  DoneCallbacks callbacks_;
  std::shared_ptr<FutureStateBase> firing_self_;  // keeps the state alive while entries are out

  friend struct FiringEntry;
};

template <class T>
class FutureState : public FutureStateBase {
 public:
  using FutureStateBase::FutureStateBase;

  template <class U>
  void set_result(U&& v) {
    check_settable("set_result");
    finish_with_value(std::forward<U>(v));
  }
  // Internal (tasks): no check; the task's own completion.
  template <class U>
  void finish_with_value(U&& v) {
    value_.emplace(std::forward<U>(v));
    finish(Status::kFinished);
  }
  const T& result() {
    check_result();
    return *value_;
  }
  T take_result() {
    check_result();
    return std::move(*value_);
  }

 private:
  std::optional<T> value_;
};

template <>
class FutureState<void> : public FutureStateBase {
 public:
  using FutureStateBase::FutureStateBase;
  void set_result() {
    check_settable("set_result");
    finish_with_value();
  }
  void finish_with_value() { finish(Status::kFinished); }
  void result() { check_result(); }
  void take_result() { check_result(); }
};

template <class T> std::shared_ptr<FutureState<T>> state_of(const Future<T>& f);

// Suspends the current task until `fut` is done, resuming `h` then (through
// the ready queue). Throws qi::RuntimeError outside a task or when `fut`
// belongs to another loop. Defined with the tasks (src/task.cpp).
QILOOP_EXPORT void await_future(FutureStateBase& fut, std::coroutine_handle<> h);
// Called first thing when a task resumes after a real suspension: throws
// qi::CancelledError when the task was cancelled while its wait could not be
// (asyncio's _must_cancel). `awaited_cancelled`: what it awaited ended
// cancelled, so that CancelledError is the one delivered (asyncio keeps it).
QILOOP_EXPORT void after_resume(bool awaited_cancelled);

// What `co_await future` does. Move == true (an rvalue future) moves the
// value out; otherwise the awaiter yields a copy.
template <class T, bool Move>
struct [[nodiscard]] FutureAwaiter {
  std::shared_ptr<FutureState<T>> state;
  bool suspended = false;
  // A done future is not a suspension point: the task does not yield, and a
  // pending cancel waits for the next real one (as in asyncio).
  bool await_ready() const noexcept { return state->done(); }
  void await_suspend(std::coroutine_handle<> h) {
    await_future(*state, h);
    suspended = true;
  }
  T await_resume() {
    if (suspended) after_resume(state->cancelled());
    if constexpr (std::is_void_v<T>)
      state->result();
    else if constexpr (Move)
      return state->take_result();
    else
      return state->result();
  }
};

}  // namespace detail

// A nullable, type-erased reference to a future or task, for diagnostics and
// identity (ExceptionContext::task, qi::current_task()). Compares equal when
// both refer to the same state (or both are empty).
class TaskRef {
 public:
  TaskRef() noexcept = default;
  explicit TaskRef(std::shared_ptr<detail::FutureStateBase> s) noexcept : state_(std::move(s)) {}
  explicit operator bool() const noexcept { return state_ != nullptr; }
  const std::shared_ptr<detail::FutureStateBase>& state() const noexcept { return state_; }
  // For a non-empty reference: as on the Task / Future it refers to.
  bool done() const noexcept { return state_->done(); }
  bool cancelled() const noexcept { return state_->cancelled(); }
  bool cancel(std::string msg = {}) const { return state_->cancel(std::move(msg)); }
  // "Future", or "Task 'name'".
  std::string describe() const { return state_->describe(); }
  friend bool operator==(const TaskRef& a, const TaskRef& b) noexcept { return a.state_ == b.state_; }

 private:
  std::shared_ptr<detail::FutureStateBase> state_;
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
  explicit Future(QiEventLoop& loop) : state_(std::make_shared<detail::FutureState<T>>(loop)) {}

  bool valid() const noexcept { return state_ != nullptr; }
  QiEventLoop* get_loop() const noexcept { return state_->loop(); }
  bool done() const noexcept { return state_->done(); }
  bool cancelled() const noexcept { return state_->cancelled(); }

  // Future::result()
  // See the file comment for what it throws. For T = void returns nothing.
  decltype(auto) result() const { return state_->result(); }
  // Future::exception()
  // The stored exception, or null when finished with a value. Throws
  // qi::CancelledError when cancelled, qi::InvalidStateError while pending.
  std::exception_ptr exception() const { return state_->exception(); }

  template <class U = T>
    requires(!std::is_void_v<T> && std::is_constructible_v<T, U &&>)
  void set_result(U&& v) const {
    state_->set_result(std::forward<U>(v));
  }
  void set_result() const
    requires std::is_void_v<T>
  {
    state_->set_result();
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
        self.state_ = std::static_pointer_cast<detail::FutureState<T>>(s.shared_from_this());
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
  TaskRef ref() const noexcept { return TaskRef(state_); }

  friend bool operator==(const Future& a, const Future& b) noexcept { return a.state_ == b.state_; }
  friend bool operator==(const Future& a, const TaskRef& b) noexcept { return a.state_ == b.state(); }

  // co_await future: suspends the current task until the future is done,
  // then yields its value (a copy; `co_await std::move(f)` moves it out) or
  // throws its exception. Awaiting a done future does not suspend.
  detail::FutureAwaiter<T, false> operator co_await() const& { return {state_}; }
  detail::FutureAwaiter<T, true> operator co_await() && { return {std::move(state_)}; }

 protected:
  explicit Future(std::shared_ptr<detail::FutureState<T>> s) noexcept : state_(std::move(s)) {}

 private:
  friend std::shared_ptr<detail::FutureState<T>> detail::state_of<T>(const Future<T>&);
  std::shared_ptr<detail::FutureState<T>> state_;
};

template <class T>
std::shared_ptr<detail::FutureState<T>> detail::state_of(const Future<T>& f) {
  return f.state_;
}

}  // namespace qi
