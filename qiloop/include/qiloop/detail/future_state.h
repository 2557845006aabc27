// qiloop/detail/future_state.h — the shared state behind qi::Future<T> (and
// qi::Task<T>): result slot, done callbacks, reference count. Internal; the
// contract is in <qiloop/future.h>.
//
// Memory: a pending future is one allocation of its state alone (no control
// block: the count is intrusive). What few futures need — a cancel message, a
// task's name or cancel bookkeeping, a second done callback — lives out of
// line and is allocated when first needed.
#pragma once

#include <qiloop/export.h>

#include <absl/functional/any_invocable.h>

#include <QtCore/QPointer>

#include <atomic>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

class QiEventLoop;

namespace qi::detail {

class FutureStateBase;
class TaskCore;
struct EscapeRecord;

// A task's wake-up, run as a done callback of what it awaits (src/task.cpp).
QILOOP_EXPORT void wake_task(TaskCore& t) noexcept;

// A done callback that is an object of the caller's: a combinator watching
// its children (gather, wait, TaskGroup...) implements it once and hooks it
// on each child, which allocates nothing when it is the child's only
// callback. The future holds the hook through hook_retain / hook_release
// while it is registered (as a callback holds what it captured); on_done
// runs as the callback would, from the loop, and may throw as one may.
class DoneHook {
 public:
  virtual void on_done(FutureStateBase& f) = 0;
  virtual void hook_retain() noexcept = 0;
  virtual void hook_release() noexcept = 0;

 protected:
  ~DoneHook() = default;
};

// A future's done callbacks, in the order they were added. One word inline:
// empty, the wake-up of the one task awaiting the future (the usual case,
// which allocates nothing), one DoneHook (a combinator's: nothing allocated
// either), or a list out of line (src/future.cpp) holding them all once a
// plain callback or a second one is added. Ids are stable across that move
// (the inline wake-up or hook becomes the list's slot 0) and
// scrambled with a key drawn from this object's address, so an id of another
// future matches nothing here. Internal to src/future.cpp.
class DoneCallbacks {
 public:
  using Callback = absl::AnyInvocable<void(FutureStateBase&)>;

  DoneCallbacks() = default;
  // Pinned: its ids depend on its address (it lives in a future's state).
  DoneCallbacks(const DoneCallbacks&) = delete;
  DoneCallbacks& operator=(const DoneCallbacks&) = delete;
  ~DoneCallbacks() { clear(); }

  uint32_t size() const noexcept;
  // Appends cb; returns its id (never that of push_waker). Throws only
  // std::bad_alloc / std::length_error, changing nothing.
  uint64_t push_back(Callback&& cb);
  // Appends t's wake-up; returns its id. Allocates (and may throw) only when
  // other callbacks are already there.
  uint64_t push_waker(TaskCore& t);
  // Appends h (retained until it runs or goes); returns its id. Allocates
  // (and may throw) only when other callbacks are already there.
  uint64_t push_hook(DoneHook& h);
  // Returns whether id named a callback still here.
  bool remove(uint64_t id) noexcept;
  // Takes the first callback out (size() > 0) and runs it on s.
  void run_front(FutureStateBase& s);
  // Forgets them all, destroying them last (their destructors may call back
  // into the future).
  void clear() noexcept {
    if (word_ != 0) clear_slow();
  }

 private:
  class List;
  static constexpr uintptr_t kWakerTag = 1;  // word_ is a TaskCore* | kWakerTag
  static constexpr uintptr_t kHookTag = 2;   // word_ is a DoneHook* | kHookTag
  static constexpr uintptr_t kTags = kWakerTag | kHookTag;
  uint64_t key() const noexcept {
    // The product is bijective in the address: two living futures share a
    // key only in the rare case that their products differ in bit 31 alone.
    return (reinterpret_cast<uintptr_t>(this) * UINT64_C(0x9E3779B97F4A7C15)) | (uint64_t{1} << 31);
  }
  TaskCore* waker() const noexcept {
    return (word_ & kWakerTag) ? reinterpret_cast<TaskCore*>(word_ & ~kTags) : nullptr;
  }
  DoneHook* hook() const noexcept {
    return (word_ & kHookTag) ? reinterpret_cast<DoneHook*>(word_ & ~kTags) : nullptr;
  }
  List* list() const noexcept { return (word_ & kTags) ? nullptr : reinterpret_cast<List*>(word_); }
  List& make_list();
  void clear_slow() noexcept;

  uintptr_t word_ = 0;
};

// What futures rarely need, out of line: allocated by the first cancel with a
// message, set_name, or cancel request that must be held.
struct RareState {
  std::string cancel_message;                // the future's, when cancelled with one
  std::optional<std::string> name;           // a task's explicit name
  std::string must_cancel_msg;               // a task's request that waits for its next resumption
  std::string sleep_interrupt_msg;           // the request that cut a task's sleep short
  std::optional<std::string> held_cancel;    // an awaiter's request held while the task's own is in flight
  std::vector<FutureStateBase*> awaited_by;  // tasks linked by add_awaited_by, one reference each
  // A task's: where its latest exception left its coroutines. A plain
  // future's: where its exception came from (run_in_executor's job).
  std::shared_ptr<const EscapeRecord> escape;
};

// The type-independent part of a future's state. Intrusively counted:
// Future / Task / TaskRef handles, the loop (for a pending task) and each
// scheduled done-callback entry hold one reference each. The count is atomic
// so that a handle may be copied or dropped on another thread (inside a
// call_soon_threadsafe callback, say); everything else belongs to the loop's
// thread.
class QILOOP_EXPORT FutureStateBase {
 public:
  enum class Status : uint8_t { kPending, kCancelled, kFinished };
  using DoneCallback = DoneCallbacks::Callback;

  explicit FutureStateBase(QiEventLoop& loop);
  // States come from the frames' recycling allocator (detail/promise.h): a
  // burst of tasks reuses the memory of the last one. The deleting
  // destructor passes the most derived type's size.
  static void* operator new(std::size_t n);
  static void operator delete(void* p, std::size_t n) noexcept;
  FutureStateBase(const FutureStateBase&) = delete;
  FutureStateBase& operator=(const FutureStateBase&) = delete;
  virtual ~FutureStateBase();

  void retain() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) last_release();
  }

  QiEventLoop* loop() const noexcept { return loop_.data(); }
  Status status() const noexcept { return status_; }
  bool done() const noexcept { return status_ != Status::kPending; }
  bool cancelled() const noexcept { return status_ == Status::kCancelled; }
  bool is_task() const noexcept { return flags_ & kIsTask; }

  // Virtual: cancelling a task through any handle (a Future<T> copy, a
  // TaskRef) must cancel the task, not just its result slot.
  virtual bool cancel(std::string msg);
  void set_exception(std::exception_ptr e);
  std::exception_ptr exception();
  // Throws unless finished with a value; marks the result as retrieved.
  void check_result();
  // add_done_callback / remove_done_callback are O(1): an id names its slot.
  uint64_t add_done_callback(DoneCallback cb);
  // The same for a task's wake-up (TaskCore::wait_on): allocates nothing when
  // it is the only callback.
  uint64_t add_waker(TaskCore& t);
  // The same for a combinator's hook (retained while registered).
  uint64_t add_done_hook(DoneHook& h);
  // (All three throw throw_loop_destroyed's error once the loop is gone,
  // pending or done: nothing could ever run the callback.)
  std::size_t remove_done_callback(uint64_t id);
  std::string cancel_message() const { return rare_ ? rare_->cancel_message : std::string(); }
  // The qi::RuntimeError of `api` (add_done_callback, co_await, a
  // combinator) given a future whose loop was destroyed: it may still
  // complete, but none of its done callbacks can run, so a wait on it would
  // never end.
  [[noreturn]] void throw_loop_destroyed(const char* api) const;
  // The await graph's explicit links (detail::add_awaited_by): tasks that
  // wait for this future without a wake-up among its done callbacks (a
  // combinator's). A set: adding twice links once. Each holds a reference.
  void add_awaited_by(TaskCore& task);
  void remove_awaited_by(TaskCore& task) noexcept;
  std::vector<FutureStateBase*> linked_awaiters() const;
  // A combinator's duplicate check, O(n) over its arguments (loop thread):
  // marks this state and returns whether it was marked already;
  // clear_seen() unmarks it, before the combinator returns.
  bool mark_seen() noexcept { return std::exchange(flags_, static_cast<uint8_t>(flags_ | kSeen)) & kSeen; }
  void clear_seen() noexcept { flags_ = static_cast<uint8_t>(flags_ & ~kSeen); }
  // For diagnostics: "Future", or "Task 'name'".
  virtual std::string describe() const;
  // Internal (tasks): finishes as cancelled with `msg`, bypassing the task's
  // own cancel(); finishes with an exception without the checks.
  void mark_cancelled(std::string msg);
  void finish_with_exception(std::exception_ptr e);
  // Internal (close(), through a combinator watching this future): a
  // pending future of a closed loop can never run its done callbacks, so
  // they are destroyed now. A done one's went when close() dropped the
  // entries that would have run them.
  void drop_callbacks() noexcept;
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
  // Throws qi::InvalidStateError when done, qi::RuntimeError for a task
  // (whose result comes from its coroutine), and check_call's errors.
  void check_settable(const char* api) const;

 protected:
  static constexpr uint8_t kRetrieved = 1;  // result() or exception() saw the outcome
  static constexpr uint8_t kIsTask = 2;     // a TaskCore derives from this state
  static constexpr uint8_t kSeen = 4;       // mark_seen()

  // Marks finished and schedules the done callbacks.
  void finish(Status s);
  RareState& rare();
  RareState* rare_if() const noexcept { return rare_.get(); }
  DoneCallbacks& callbacks() noexcept { return callbacks_; }
  void set_is_task() noexcept { flags_ |= kIsTask; }

 private:
  // add_done_callback and add_waker: checks, then push() adds the callback.
  template <class Push>
  uint64_t hook(Push&& push);
  // Schedules n ready-queue entries, each running the next done callback.
  void schedule_entries(QiEventLoop& l, std::size_t n);
  // The last reference went: reports an exception nobody retrieved, then
  // deletes the state — unless the exception handler kept a reference to it
  // (ctx.future / ctx.task), as asyncio's context keeps the future alive.
  void last_release() noexcept;
  // Reports an exception nobody retrieved, the state still whole (describe()
  // is virtual) and held by the report's context.
  void report_unretrieved() noexcept;

  // Layout: pointers first, then the small fields, whose tail padding a
  // derived TaskCore fills (see its layout note).
  QPointer<QiEventLoop> loop_;
  std::exception_ptr exception_;
  std::unique_ptr<RareState> rare_;
  // Pending: the done callbacks. Done: those scheduled; each ready-queue
  // entry runs the first (entries and callbacks are both FIFO), so an entry
  // carries only a pointer.
  DoneCallbacks callbacks_;
  std::atomic<uint32_t> refs_{1};
  Status status_ = Status::kPending;
  uint8_t flags_ = 0;

  friend struct FiringEntry;
};

// An owning pointer to a state: one reference, released when it goes.
template <class S>
class StateRef {
 public:
  StateRef() noexcept = default;
  // Takes a new reference to s.
  explicit StateRef(S* s) noexcept : s_(s) {
    if (s_) s_->retain();
  }
  // Takes over the reference the caller holds (a new state's first one).
  static StateRef adopt(S* s) noexcept {
    StateRef r;
    r.s_ = s;
    return r;
  }
  StateRef(const StateRef& o) noexcept : StateRef(o.s_) {}
  StateRef(StateRef&& o) noexcept : s_(std::exchange(o.s_, nullptr)) {}
  StateRef& operator=(StateRef o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~StateRef() {
    if (s_) s_->release();
  }

  S* get() const noexcept { return s_; }
  S* operator->() const noexcept { return s_; }
  S& operator*() const noexcept { return *s_; }
  explicit operator bool() const noexcept { return s_ != nullptr; }
  friend bool operator==(const StateRef& a, const StateRef& b) noexcept { return a.s_ == b.s_; }

 private:
  S* s_ = nullptr;
};

// The typed layer: the result slot. Base is FutureStateBase for a plain
// future, TaskCore for a task (see result_of in detail/task_core.h).
template <class T, class Base = FutureStateBase>
class FutureState : public Base {
 public:
  using Base::Base;

  // After check_settable (Future<T>::set_result), or a task's own completion.
  template <class U>
  void finish_with_value(U&& v) {
    value_.emplace(std::forward<U>(v));
    this->finish(FutureStateBase::Status::kFinished);
  }
  const T& result() {
    this->check_result();
    return *value_;
  }
  T take_result() {
    this->check_result();
    return std::move(*value_);
  }

 private:
  std::optional<T> value_;
};

template <class Base>
class FutureState<void, Base> : public Base {
 public:
  using Base::Base;
  void finish_with_value() { this->finish(FutureStateBase::Status::kFinished); }
  void result() { this->check_result(); }
  void take_result() { this->check_result(); }
};

}  // namespace qi::detail
