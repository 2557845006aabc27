// qiloop/detail/waiter_queue.h — the FIFO of waiting tasks that every
// primitive (Event, Lock, Semaphore, Condition, Barrier, the queues) is built
// on: asyncio's `collections.deque` of waiter futures, with O(1) removal.
// Internal; each primitive's header states its own contract.
//
//   WaiterQueue waiters_;                      // a primitive's member
//   ...
//   WaiterQueue::Entry w(waiters_);            // at the back, with a fresh future
//   try {
//     co_await w;                              // unlinked again when it resumes
//   } catch (const qi::CancelledError&) {
//     if (w.woken()) pass_the_wake_up_on();    // cancelled while being woken
//     throw;
//   }
//
// An Entry is a waiter future linked into the queue (asyncio:
// `fut = loop.create_future(); self._waiters.append(fut)`); it unlinks itself
// when its task resumes (asyncio's `finally: self._waiters.remove(fut)`) or
// when it is destroyed, so a cancelled or destroyed waiter never stays behind.
// A woken entry stays linked until its task runs: like asyncio, a primitive
// sees that a wake-up is on its way (Lock refuses to barge past it).
//
// Loop binding (asyncio's _LoopBoundMixin): a queue is bound to the running
// loop by its first Entry; an Entry made while another loop runs throws
// qi::RuntimeError — also once the bound loop was destroyed, wherever the
// new loop was allocated. Thread-safety: the loop's thread only.
#pragma once

#include <qiloop/detail/awaiters.h>
// The future inside an Entry needs QiEventLoop complete by the end of the
// translation unit (QPointer<QiEventLoop>): the primitives' headers stand
// alone.
#include <qiloop/event_loop.h>
#include <qiloop/export.h>
#include <qiloop/future.h>

#include <QtCore/QPointer>

#include <coroutine>
#include <cstddef>

class QiEventLoop;

namespace qi::detail {

class QILOOP_EXPORT WaiterQueue {
 public:
  class Entry;

  WaiterQueue() noexcept = default;
  WaiterQueue(const WaiterQueue&) = delete;
  WaiterQueue& operator=(const WaiterQueue&) = delete;
  // Entries still linked (their tasks' frames outlive the primitive: user
  // error) are unlinked, so they do not touch freed memory when they go, and
  // orphaned: if their task resumes (it is cancelled, as qi::run does to the
  // tasks left over), the co_await throws qi::RuntimeError instead of
  // returning to a primitive that is gone.
  ~WaiterQueue();

  bool empty() const noexcept { return head_ == nullptr; }
  std::size_t size() const noexcept { return size_; }
  // The first waiter, or null.
  Entry* front() const noexcept { return head_; }
  // asyncio's `all(w.cancelled() for w in waiters)`: true when empty.
  bool all_cancelled() const noexcept;
  // asyncio's _wake_up_first: wakes the first waiter if it is not done yet.
  // Returns whether it woke one.
  bool wake_first();
  // Wakes the first waiter that is not done yet (skipping woken and
  // cancelled ones). Returns whether it woke one.
  bool wake_next();
  // Wakes every waiter not done yet; returns how many.
  std::size_t wake_all();
  // Cancels every waiter not done yet (Barrier::abort, Queue::shutdown);
  // returns how many.
  std::size_t cancel_all();
  // Throws qi::RuntimeError when `api` is used while a loop other than the
  // one this queue is bound to runs; binds it to the running loop when
  // unbound. `owner` names the primitive in the message ("qi::Lock").
  QiEventLoop& bind_running_loop(const char* owner);

 private:
  friend class Entry;
  void link(Entry& e) noexcept;
  void unlink(Entry& e) noexcept;

  Entry* head_ = nullptr;
  Entry* tail_ = nullptr;
  std::size_t size_ = 0;
  // Bound by the first entry (compared, never dereferenced). A QPointer:
  // once that loop is destroyed, a new one made at its address must not
  // pass for it (whether a second loop is refused would depend on where the
  // allocator put it).
  QPointer<QiEventLoop> loop_;
  bool bound_ = false;
};

// A waiter: linked at the back of its queue with a fresh future on
// construction; awaitable once. co_await returns when the future is woken,
// throws qi::CancelledError when the task is cancelled (also when the
// cancellation came right after a wake-up: woken() then tells), and
// qi::RuntimeError when the queue was destroyed meanwhile (the primitive is
// gone: the caller must not touch it; a cancel stays pending).
class QILOOP_EXPORT WaiterQueue::Entry {
 public:
  // `owner` names the primitive for bind_running_loop's message.
  explicit Entry(WaiterQueue& q, const char* owner = "this primitive");
  Entry(const Entry&) = delete;
  Entry& operator=(const Entry&) = delete;
  ~Entry() { unlink(); }

  // Whether a wake-up reached this waiter (its future has a result).
  bool woken() const noexcept { return fut_.done() && !fut_.cancelled(); }
  bool done() const noexcept { return fut_.done(); }
  bool cancelled() const noexcept { return fut_.cancelled(); }
  bool linked() const noexcept { return queue_ != nullptr; }
  // Wakes it (set_result) unless it is done; returns whether it did.
  bool wake();
  // Cancels it unless it is done; returns whether it did.
  bool cancel() { return fut_.cancel(); }
  Entry* next() const noexcept { return next_; }
  // Takes it out of the queue now (asyncio's explicit waiters.remove).
  void unlink() noexcept {
    if (queue_) queue_->unlink(*this);
  }

  // co_await entry
  bool await_ready() const noexcept { return fut_.done(); }
  void await_suspend(std::coroutine_handle<> h) {
    await_future(*state(), h);
    suspended_ = true;
  }
  void await_resume();

 private:
  friend class WaiterQueue;
  FutureStateBase* state() const noexcept { return state_of(fut_); }

  Future<void> fut_;
  WaiterQueue* queue_ = nullptr;
  Entry* prev_ = nullptr;
  Entry* next_ = nullptr;
  const char* owner_;
  bool suspended_ = false;
  bool orphaned_ = false;  // its queue was destroyed while it was linked
};

}  // namespace qi::detail
