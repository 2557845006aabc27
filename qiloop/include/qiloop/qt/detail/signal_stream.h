// qiloop/qt/detail/signal_stream.h — the buffer behind qi::SignalStream.
// Internal; the contract is in <qiloop/qt/signal_stream.h>.
#pragma once

#include <qiloop/detail/awaiters.h>
#include <qiloop/future.h>
#include <qiloop/qt/detail/signal.h>

#include <algorithm>
#include <atomic>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

namespace qi::detail {

// A FIFO of at most `capacity` items in a ring that grows by doubling up to
// it: once grown, pushing and popping allocate nothing. Full: the oldest
// item goes (the stream's documented policy).
template <class T>
class SignalRing {
 public:
  explicit SignalRing(std::size_t capacity) : capacity_(capacity) {}
  bool empty() const noexcept { return size_ == 0; }
  std::size_t size() const noexcept { return size_; }
  // Returns false when it dropped the oldest item to make room.
  template <class... A>
  bool push(A&&... a) {
    bool kept = true;
    if (size_ == slots_.size()) {
      if (slots_.size() < capacity_) {
        grow();
      } else {
        pop();
        kept = false;
      }
    }
    slots_[(head_ + size_) % slots_.size()].emplace(std::forward<A>(a)...);
    ++size_;
    return kept;
  }
  T pop() {
    std::optional<T>& slot = slots_[head_];
    T v = std::move(*slot);
    slot.reset();
    head_ = (head_ + 1) % slots_.size();
    --size_;
    return v;
  }

 private:
  void grow() {
    std::size_t n = slots_.empty() ? std::min<std::size_t>(capacity_, 16) : std::min(capacity_, slots_.size() * 2);
    std::vector<std::optional<T>> bigger(n);
    for (std::size_t i = 0; i < size_; ++i) bigger[i] = std::move(slots_[(head_ + i) % slots_.size()]);
    slots_ = std::move(bigger);
    head_ = 0;
  }

  std::vector<std::optional<T>> slots_;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
  std::size_t capacity_;
};

// The hub of a stream: its connections' functors push into it on any thread;
// the one task reading it waits on a future that an emission completes — on
// the loop's thread, at once or through a posted wake-up (one at a time).
//
// Invariant: waiting_ (under mutex_) is true exactly while a task is
// suspended in next() on an empty, open buffer; only then does an emission
// touch the loop.
template <class Item>
class SignalBuffer {
 public:
  explicit SignalBuffer(std::size_t capacity) : ring_(capacity), capacity_(capacity) {}
  SignalBuffer(const SignalBuffer&) = delete;
  SignalBuffer& operator=(const SignalBuffer&) = delete;

  void retain() noexcept { refs_.fetch_add(1, std::memory_order_relaxed); }
  void release() noexcept {
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
  }

  template <class Sender, class PMF>
  bool connect(Sender* sender, PMF sig) {
    conn_ = connect_source<0>(sender, sig, *this);
    if (!conn_) return false;
    armed_.arm(0);
    return true;
  }

  // Any thread.
  template <std::size_t, class... A>
  void on_signal(const A&... a) {
    std::lock_guard lock(mutex_);
    if (ended_) return;
    try {
      if (!ring_.push(make_item<Item>(a...))) ++dropped_;
    } catch (...) {
      // The copy of the arguments (or the ring's growth) threw: no exception
      // may cross Qt's emit. The item is lost and counted; the next next()
      // throws the exception (the first one, when several came meanwhile).
      ++dropped_;
      if (!copy_error_) copy_error_ = std::current_exception();
    }
    wake_locked();
  }
  // Any thread, possibly inside Qt's clean-up of the connection.
  void on_connection_gone(std::size_t) noexcept {
    if (!armed_.armed(0)) return;
    std::lock_guard lock(mutex_);
    ended_ = true;
    wake_locked();
  }

  // The stream goes (loop thread): no more items; a reader still waiting
  // gets std::nullopt.
  void close() noexcept {
    {
      std::lock_guard lock(mutex_);
      ended_ = true;
      wake_locked();
    }
    disconnect_all(&conn_, 1);
  }

  // next()'s fast path: an item, or the end, without suspending.
  bool try_take(std::optional<Item>& out) {
    std::lock_guard lock(mutex_);
    if (copy_error_) std::rethrow_exception(std::exchange(copy_error_, nullptr));
    if (!ring_.empty()) {
      out.emplace(ring_.pop());
      return true;
    }
    return ended_;
  }
  // Registers the reader (loop thread) unless an item or the end came
  // meanwhile (then returns false, and try_take has it).
  bool start_wait(QiEventLoop& loop) {
    std::lock_guard lock(mutex_);
    if (has_news_locked()) return false;
    if (waiting_)
      throw qi::RuntimeError(
          "qi::SignalStream::next: another task is already waiting on this stream; one task reads a stream "
          "(hand items on through a qi::Queue to share them)");
    // Bound at each wait: the stream may outlive the loop of an earlier
    // wait (read under one loop, then under the next on the same thread), and
    // a wake-up posted to that loop died with it, so wake_posted_ is reset
    // too (a stale one still alive finds waiting_ false or nothing to take,
    // and does nothing, or finds what this wait waits for).
    binding_.bind(loop);
    wake_posted_ = false;
    waiter_ = Future<void>(loop);
    waiting_ = true;
    return true;
  }
  FutureStateBase& waiter() noexcept { return *state_of(waiter_); }
  bool waiter_cancelled() const noexcept { return waiter_.cancelled(); }
  // Throws the waiter's qi::CancelledError when the wait was cancelled.
  void check_waiter() const { waiter_.result(); }
  // The reader resumed or went (loop thread).
  void end_wait() noexcept {
    std::lock_guard lock(mutex_);
    waiting_ = false;
  }

  std::size_t size() const {
    std::lock_guard lock(mutex_);
    return ring_.size();
  }
  uint64_t dropped() const {
    std::lock_guard lock(mutex_);
    return dropped_;
  }
  bool ended() const {
    std::lock_guard lock(mutex_);
    return ended_ && ring_.empty() && !copy_error_;
  }
  std::size_t capacity() const noexcept { return capacity_; }

 private:
  ~SignalBuffer() = default;

  // Under mutex_: something a reader would take (an item, the end, an error).
  bool has_news_locked() const noexcept { return !ring_.empty() || ended_ || copy_error_; }
  // Under mutex_: wakes the waiting reader, here or through the loop.
  void wake_locked() noexcept {
    if (!waiting_) return;
    if (binding_.on_loop_thread()) {
      waiting_ = false;
      wake_reader();
    } else if (!wake_posted_) {
      wake_posted_ = true;
      binding_.post([ref = StateRef<SignalBuffer>(this)] {
        {
          std::lock_guard lock(ref->mutex_);
          ref->wake_posted_ = false;
          // Stale: posted for a wait that ended meanwhile (its reader was
          // cancelled), and what woke it was taken since; the wait now
          // pending waits on (woken, it would read an empty buffer as the end).
          if (!ref->waiting_ || !ref->has_news_locked()) return;
          ref->waiting_ = false;
        }
        ref->wake_reader();
      });
    }
  }
  // Loop thread.
  void wake_reader() noexcept {
    if (waiter_.valid() && !waiter_.done()) {
      try {
        waiter_.set_result();
      } catch (...) {
        // The loop closed: the reader's frame goes with it.
      }
    }
  }

  mutable std::mutex mutex_;
  SignalRing<Item> ring_;
  uint64_t dropped_ = 0;
  std::exception_ptr copy_error_;  // an emission's copy threw: next() throws it
  bool ended_ = false;      // the sender is gone, or the stream
  bool waiting_ = false;    // see the invariant
  bool wake_posted_ = false;
  LoopBinding binding_;
  Future<void> waiter_;     // loop thread only
  std::atomic<uint32_t> refs_{1};
  const std::size_t capacity_;
  ArmedSources armed_;
  QMetaObject::Connection conn_;
};

// What co_await stream.next() is: no frame; an item ready is taken in
// await_ready.
template <class Item>
class [[nodiscard("co_await it")]] SignalNextAwaiter {
 public:
  explicit SignalNextAwaiter(SignalBuffer<Item>* buf) : buf_(buf) {}
  SignalNextAwaiter(const SignalNextAwaiter&) = delete;
  SignalNextAwaiter& operator=(const SignalNextAwaiter&) = delete;
  // Movable, so that qi::timeout(d, s.next()) and qi::wait_for keep it in
  // their frames. Only an awaiter not yet awaited is ever moved (the
  // language never moves one that is suspended), so there is no wait to hand
  // over.
  SignalNextAwaiter(SignalNextAwaiter&& o) noexcept
      : buf_(o.buf_), keep_(std::move(o.keep_)), item_(std::move(o.item_)), suspended_(std::exchange(o.suspended_, false)) {}
  SignalNextAwaiter& operator=(SignalNextAwaiter&&) = delete;
  ~SignalNextAwaiter() {
    if (suspended_) buf_->end_wait();
  }

  bool await_ready() { return !buf_ || buf_->try_take(item_); }
  bool await_suspend(std::coroutine_handle<> h) {
    if (!buf_->start_wait(qi::get_running_loop())) {
      buf_->try_take(item_);
      return false;
    }
    try {
      await_future(buf_->waiter(), h);
    } catch (...) {
      buf_->end_wait();
      throw;
    }
    suspended_ = true;
    keep_ = StateRef<SignalBuffer<Item>>(buf_);  // the stream may go while this task waits
    return true;
  }
  std::optional<Item> await_resume() {
    if (suspended_) {
      buf_->end_wait();
      suspended_ = false;
      // A cancel throws here, before anything is taken: the items stay.
      after_resume(buf_->waiter_cancelled());
      buf_->check_waiter();
      buf_->try_take(item_);
    }
    return std::move(item_);
  }

 private:
  SignalBuffer<Item>* buf_;  // null: an empty stream (yields std::nullopt)
  StateRef<SignalBuffer<Item>> keep_;
  std::optional<Item> item_;
  bool suspended_ = false;
};

}  // namespace qi::detail
