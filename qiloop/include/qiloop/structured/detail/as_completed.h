// qiloop/structured/detail/as_completed.h — the state behind
// qi::as_completed (asyncio 3.13's _AsCompletedIterator: a queue of the
// children in completion order, fed by their done callbacks). Internal; the
// contract is in <qiloop/structured/as_completed.h>.
#pragma once

#include <qiloop/detail/deadline.h>
#include <qiloop/detail/waiter_queue.h>
#include <qiloop/handle.h>
#include <qiloop/structured/detail/children.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

namespace qi::detail {

// Invariant: done_[head_..] are the children that finished and were not
// handed out yet, in completion order; ids_[i] is non-zero while child i's
// done callback is hooked; after the timeout nothing more is queued.
// Counted (loop thread only): the children's callbacks, the timer and the
// user-facing objects hold references; the user-facing objects are also
// counted as users, and when the last goes the callbacks and the timer are
// unhooked, so an abandoned iteration keeps nothing alive.
class QILOOP_EXPORT AsCompletedCore {
 public:
  AsCompletedCore(const AsCompletedCore&) = delete;
  AsCompletedCore& operator=(const AsCompletedCore&) = delete;
  virtual ~AsCompletedCore();

  void retain() noexcept { ++refs_; }
  void release() noexcept {
    if (--refs_ == 0) delete this;
  }
  void add_user() noexcept { ++users_; }
  void drop_user() noexcept {
    if (--users_ == 0) unhook();
  }

  // The index of the next child to finish (asyncio's `await done.get()`);
  // qi::TimeoutError once the timeout passed and nothing is queued.
  Coro<std::size_t> next_index();

 protected:
  AsCompletedCore() = default;
  // Hooks a done callback on each child and arms the timer. Called by the
  // typed constructor once the children are in place.
  void start(QiEventLoop& loop, std::vector<FutureStateBase*> children, std::optional<LoopDuration> timeout);

 private:
  void on_completion(std::size_t i);
  void on_timeout();
  void unhook() noexcept;

  std::vector<FutureStateBase*> children_;  // held by the typed layer
  std::vector<uint64_t> ids_;
  std::vector<std::size_t> done_;
  std::size_t head_ = 0;
  std::size_t todo_ = 0;  // children not finished yet
  bool timed_out_ = false;
  WaiterQueue waiters_;
  TimerHandle timer_;
  std::size_t refs_ = 1;
  std::size_t users_ = 0;
};

// The typed state: the original handles.
template <class F>
class AsCompletedState final : public AsCompletedCore {
 public:
  AsCompletedState(QiEventLoop& loop, std::vector<F> fs, std::optional<LoopDuration> timeout, bool shared)
      : fs_(std::move(fs)), shared_(shared) {
    std::vector<FutureStateBase*> states;
    states.reserve(fs_.size());
    for (const F& f : fs_) states.push_back(state_of(f));
    start(loop, std::move(states), timeout);
  }
  const F& at(std::size_t i) const noexcept { return fs_[i]; }
  std::size_t size() const noexcept { return fs_.size(); }
  // A child passed twice: its results are copied (child_value).
  bool shared() const noexcept { return shared_; }

 private:
  std::vector<F> fs_;
  bool shared_;
};

// A counted user reference (see AsCompletedCore).
template <class S>
class AsCompletedUser {
 public:
  AsCompletedUser() = default;
  explicit AsCompletedUser(S* s) noexcept : s_(s) {
    if (s) s->add_user();
  }
  AsCompletedUser(const AsCompletedUser& o) noexcept : AsCompletedUser(o.s_.get()) {}
  AsCompletedUser(AsCompletedUser&& o) noexcept = default;
  AsCompletedUser& operator=(AsCompletedUser o) noexcept {
    std::swap(s_, o.s_);
    return *this;
  }
  ~AsCompletedUser() {
    if (s_) s_->drop_user();
  }
  S* operator->() const noexcept { return s_.get(); }
  explicit operator bool() const noexcept { return static_cast<bool>(s_); }

 private:
  StateRef<S> s_;
};

// `co_await x` for an object owning the Coro it runs.
template <class T>
class OwningCoroAwaiter {
 public:
  explicit OwningCoroAwaiter(Coro<T> c) : coro_(std::move(c)), awaiter_(coro_.operator co_await()) {}
  bool await_ready() const noexcept { return awaiter_.await_ready(); }
  template <class P>
  auto await_suspend(std::coroutine_handle<P> h) {
    return awaiter_.await_suspend(h);
  }
  T await_resume() { return awaiter_.await_resume(); }

 private:
  Coro<T> coro_;
  typename Coro<T>::Awaiter awaiter_;
};

}  // namespace qi::detail
