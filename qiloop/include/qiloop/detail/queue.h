// qiloop/detail/queue.h — the machinery of qi::Queue, qi::PriorityQueue and
// qi::LifoQueue: the type-independent core (counts, waiters, shutdown, the
// waiting loops), the three orders the items are kept in, and the slow half
// of the put / get awaiters. Internal; the contract is in <qiloop/sync/queue.h>.
#pragma once

#include <qiloop/coro.h>
#include <qiloop/detail/waiter_queue.h>
#include <qiloop/event_loop.h>  // QiEventLoop complete: the waiter futures' inline parts need it
#include <qiloop/export.h>

#include <algorithm>
#include <coroutine>
#include <cstddef>
#include <memory>
#include <new>
#include <type_traits>
#include <utility>
#include <vector>

namespace qi::detail {

// The half of a queue that does not depend on the item type: asyncio's
// Queue without its `_queue`. The waiting loops of put() and get() live here
// as coroutines, so only a task that has to wait pays for a frame.
//
// Invariant: size_ is the number of items the typed queue holds;
// unfinished_ counts the items put and not yet task_done() (shutdown(true)
// takes back those it drops); a waiter is linked in getters_ only while the
// queue is empty, in putters_ only while it is full, unless a wake-up is on
// its way to it (it then re-checks when it runs, as asyncio's do).
class QILOOP_EXPORT QueueCore {
 public:
  QueueCore(const QueueCore&) = delete;
  QueueCore& operator=(const QueueCore&) = delete;

  std::size_t maxsize() const noexcept { return maxsize_; }
  std::size_t qsize() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  bool full() const noexcept { return maxsize_ != 0 && size_ >= maxsize_; }
  void task_done();

  // What `co_await queue.join()` does: returns at once when every item put
  // was task_done(), else waits (asyncio's `await self._finished.wait()`).
  class [[nodiscard("co_await it: join() on its own does nothing")]] JoinAwaiter;
  JoinAwaiter join() noexcept;

 protected:
  QueueCore(std::size_t maxsize, const char* name) noexcept : name_(name), maxsize_(maxsize) {}
  ~QueueCore() = default;

  // put() / get() need not wait: put_nowait / get_nowait then succeed or
  // throw QueueShutDown.
  bool put_ready() const noexcept { return !full() || shut_down_; }
  bool get_ready() const noexcept { return !empty() || shut_down_; }
  // The checks of put_nowait / get_nowait, before the item moves.
  void check_put() const {
    if (shut_down_ || full()) [[unlikely]]
      throw_cannot_put();
  }
  void check_get() const {
    if (empty()) [[unlikely]]
      throw_cannot_get();
  }
  // The bookkeeping after an item went in / came out: wakes the next getter
  // / putter that is not woken yet (asyncio's _wakeup_next).
  void note_put() {
    ++size_;
    ++unfinished_;
    if (!getters_.empty()) getters_.wake_next();
  }
  void note_get() {
    --size_;
    if (!putters_.empty()) putters_.wake_next();
  }
  // asyncio's `while self.full(): ... await putter ...` / `while
  // self.empty(): ...`: return once put_ready() / get_ready().
  Coro<void> wait_for_room() { return wait_while(&QueueCore::full, putters_, &QueueCore::throw_cannot_put); }
  Coro<void> wait_for_item() { return wait_while(&QueueCore::empty, getters_, &QueueCore::throw_cannot_get); }
  // shutdown(): begin_shutdown (returns how many items to drop: all when
  // `immediate`), then the typed queue drops them (their destructors see a
  // shut-down, empty queue), then finish_shutdown wakes whom it concerns.
  std::size_t begin_shutdown(bool immediate) noexcept;
  void finish_shutdown(bool immediate, std::size_t dropped);

 private:
  // Waits in `waiters` while `blocked`; `refuse` throws once shut down.
  Coro<void> wait_while(bool (QueueCore::*blocked)() const, WaiterQueue& waiters, void (QueueCore::*refuse)() const);
  Coro<void> wait_finished();
  // Binds the whole queue, not only the waiters' queue a wait joins (a
  // queue is one loop-bound object, as asyncio's).
  void bind_running_loop();
  [[noreturn]] void throw_cannot_put() const;
  [[noreturn]] void throw_cannot_get() const;

  const char* name_;  // "qi::Queue", ... for messages
  std::size_t maxsize_;
  std::size_t size_ = 0;
  std::size_t unfinished_ = 0;
  bool shut_down_ = false;
  WaiterQueue getters_;
  WaiterQueue putters_;
  WaiterQueue joiners_;
};

// The slow half of the put / get / join awaiters: the waiting coroutine,
// awaited inline (no trip through the loop), made only when the fast check
// failed. The awaiter holding it stays in place while it is awaited.
class QueueWait {
 public:
  template <class P>
  auto start(Coro<void> wait, std::coroutine_handle<P> h) {
    coro_ = std::move(wait);
    awaiter_ = coro_.operator co_await();
    return awaiter_.await_suspend(h);
  }
  // Rethrows what ended the wait (qi::CancelledError, qi::QueueShutDown).
  void finish() {
    if (coro_.valid()) awaiter_.await_resume();
  }

 private:
  Coro<void> coro_;
  Coro<void>::Awaiter awaiter_{};
};

class QueueCore::JoinAwaiter {
 public:
  explicit JoinAwaiter(QueueCore& q) noexcept : q_(&q) {}
  bool await_ready() const noexcept { return q_->unfinished_ == 0; }
  template <class P>
  auto await_suspend(std::coroutine_handle<P> h) {
    return wait_.start(q_->wait_finished(), h);
  }
  void await_resume() { wait_.finish(); }

 private:
  QueueCore* q_;
  QueueWait wait_;
};

inline QueueCore::JoinAwaiter QueueCore::join() noexcept { return JoinAwaiter(*this); }

// The orders: push(T&&), T pop(), clear(). FifoOrder and LifoOrder leave
// the items as they were when T's move constructor throws.

// FIFO: a ring buffer that doubles when full (std::deque would allocate a
// block every few hundred items as the ring turns). Never shrinks.
template <class T>
class FifoOrder {
 public:
  static constexpr const char* kName = "qi::Queue";
  FifoOrder() noexcept = default;
  FifoOrder(const FifoOrder&) = delete;
  FifoOrder& operator=(const FifoOrder&) = delete;
  ~FifoOrder() {
    clear();
    std::allocator<T>().deallocate(slots_, capacity_);
  }

  void push(T&& item) {
    if (size_ == capacity_) grow();
    ::new (static_cast<void*>(slots_ + ((head_ + size_) & (capacity_ - 1)))) T(std::move(item));
    ++size_;
  }
  T pop() {
    T& slot = slots_[head_];
    T item(std::move(slot));
    slot.~T();
    head_ = (head_ + 1) & (capacity_ - 1);
    --size_;
    return item;
  }
  void clear() noexcept {
    while (size_) {
      slots_[head_].~T();
      head_ = (head_ + 1) & (capacity_ - 1);
      --size_;
    }
    head_ = 0;
  }

 private:
  static constexpr std::size_t kFirstCapacity = 16;  // a power of two: positions wrap with a mask
  void grow() {
    const std::size_t capacity = capacity_ ? 2 * capacity_ : kFirstCapacity;
    T* grown = std::allocator<T>().allocate(capacity);
    std::size_t moved = 0;
    try {
      for (; moved < size_; ++moved)
        ::new (static_cast<void*>(grown + moved)) T(std::move_if_noexcept(slots_[(head_ + moved) & (capacity_ - 1)]));
    } catch (...) {
      std::destroy_n(grown, moved);
      std::allocator<T>().deallocate(grown, capacity);
      throw;
    }
    const std::size_t size = size_;
    clear();
    std::allocator<T>().deallocate(slots_, capacity_);
    slots_ = grown;
    capacity_ = capacity;
    size_ = size;
  }

  T* slots_ = nullptr;
  std::size_t capacity_ = 0;
  std::size_t head_ = 0;
  std::size_t size_ = 0;
};

// LIFO: the back of a vector.
template <class T>
class LifoOrder {
 public:
  static constexpr const char* kName = "qi::LifoQueue";
  void push(T&& item) { items_.push_back(std::move(item)); }
  T pop() {
    T item(std::move(items_.back()));
    items_.pop_back();
    return item;
  }
  void clear() noexcept { items_.clear(); }

 private:
  std::vector<T> items_;
};

// Smallest first (by Compare): a binary heap, the smallest at the front.
// Ties come out in no promised order, as with heapq. It sifts by swaps, not
// std::push_heap / pop_heap's hole: when Compare throws, the swaps are undone
// (swaps never compare), so the queue is as it was — std's heap functions
// would lose an item there and leave a moved-from one in its place.
template <class T, class Compare>
class PriorityOrder {
 public:
  static constexpr const char* kName = "qi::PriorityQueue";
  explicit PriorityOrder(Compare less) : less_(std::move(less)) {}
  void push(T&& item) {
    items_.push_back(std::move(item));
    const std::size_t last = items_.size() - 1;
    std::size_t i = last;
    try {
      while (i > 0 && less_(items_[i], items_[parent(i)])) {
        swap_at(i, parent(i));
        i = parent(i);
      }
    } catch (...) {
      // Rotates the item back down its path to the back (the path's others
      // up one step each), then drops it: the heap is as before the push.
      for (std::size_t j = last; j != i; j = parent(j)) swap_at(j, i);
      items_.pop_back();
      throw;
    }
  }
  T pop() {
    const std::size_t last = items_.size() - 1;
    swap_at(0, last);
    std::size_t i = 0;
    try {
      for (;;) {
        std::size_t child = 2 * i + 1;
        if (child >= last) break;
        if (child + 1 < last && less_(items_[child + 1], items_[child])) ++child;
        if (!less_(items_[child], items_[i])) break;
        swap_at(i, child);
        i = child;
      }
    } catch (...) {
      for (; i != 0; i = parent(i)) swap_at(i, parent(i));
      swap_at(0, last);
      throw;
    }
    T item(std::move(items_.back()));
    items_.pop_back();
    return item;
  }
  void clear() noexcept { items_.clear(); }

 private:
  static std::size_t parent(std::size_t i) noexcept { return (i - 1) / 2; }
  void swap_at(std::size_t a, std::size_t b) {
    using std::swap;
    swap(items_[a], items_[b]);
  }
  std::vector<T> items_;
  [[no_unique_address]] Compare less_;
};

}  // namespace qi::detail
