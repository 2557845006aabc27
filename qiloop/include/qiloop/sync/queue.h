// -----------------------------------------------------------------------------
// File: qiloop/sync/queue.h
// -----------------------------------------------------------------------------
//
// qi::Queue<T>, qi::PriorityQueue<T, Compare> and qi::LifoQueue<T> are
// asyncio.Queue, PriorityQueue and LifoQueue (3.13): queues that hand items
// from producer tasks to consumer tasks, optionally bounded, with asyncio's
// put / get / task_done / join / shutdown.
//
// Example:
//
//   qi::Queue<Job> jobs(128);                  // at most 128 waiting items
//   qi::Coro<void> producer() {
//     for (...) co_await jobs.put(Job{...});   // waits while the queue is full
//     jobs.shutdown();                         // consumers finish the rest, then stop
//   }
//   qi::Coro<void> consumer() {
//     try {
//       for (;;) { Job j = co_await jobs.get(); run(j); jobs.task_done(); }
//     } catch (const qi::QueueShutDown&) {}    // shut down and drained
//   }
//
// Contract (asyncio's, rule for rule):
// - maxsize 0 means unbounded; full() is qsize() >= maxsize() otherwise.
//   Queue gives items in the order they were put, LifoQueue the newest
//   first, PriorityQueue the smallest by Compare first (std::less: asyncio's
//   heapq order). Items that compare equivalent in a PriorityQueue come out
//   in no promised order, as with heapq: put (priority, sequence) pairs to
//   have them first-in first-out.
// - co_await put(item) / get() do not suspend when the queue has room / an
//   item (nor when it is shut down: they throw then); a pending cancel is not
//   delivered there, as in asyncio. Otherwise the task waits; waiters are
//   woken first-in first-out, one per item got / put. A woken waiter takes
//   its turn when it runs: if another task took the room or item first (a
//   *_nowait call in between), it waits again, at the back.
// - No lost wake-ups: a waiter cancelled after it was woken passes the
//   wake-up on to the next waiter when the room / item is still there. A
//   cancelled put puts nothing; a cancelled get takes nothing.
// - task_done() once per item got, after processing it; join() waits until
//   every item put had its task_done(). One task_done() too many throws
//   qi::ValueError.
// - shutdown(): put / put_nowait throw qi::QueueShutDown at once (also the
//   ones waiting); get / get_nowait go on while items remain, then throw it
//   (also the ones waiting). shutdown(true): the items are dropped at once
//   (their destructors run) and counted as task_done(), which may end
//   join(); get throws at once.
// - Errors: put_nowait on a full queue throws qi::QueueFull, get_nowait on an
//   empty one qi::QueueEmpty. Waiting (put on a full queue, get on an empty
//   one, join with unfinished items) from outside a task throws
//   qi::RuntimeError, as does waiting from a loop other than the one that
//   first waited on the queue (asyncio's loop binding).
// - Items: any T that is move constructible, move-only too
//   (std::unique_ptr); get() moves the item out. put() takes its item by
//   value, so `put(x)` copies and `put(std::move(x))` moves. T's move
//   constructor and destructor should not throw (if T's move throws in Queue
//   or LifoQueue the item stays where it was); a Compare that throws leaves
//   the PriorityQueue as it was (the put puts nothing, the get takes
//   nothing). None of them may call back into the queue.
// - A queue is constructible before any loop runs, and *_nowait, qsize(),
//   task_done() and shutdown() work without a loop.
// - Performance: put / get that need not wait allocate nothing and create
//   no coroutine frame (their awaiters do the work in place); only a wait
//   creates a waiter (a future) and the frame of its loop. Queue keeps its
//   items in a ring buffer that doubles when full and never shrinks.
//
// Thread-safety: the loop's thread only (as asyncio's; hand items over from
// another thread with loop.call_soon_threadsafe). Re-entrancy: every call may
// be made from any task or callback on that thread. Destroying a queue
// while tasks wait on it leaves them waiting forever (their waiters are
// unlinked, never woken; cancelled, they throw qi::RuntimeError): shut it
// down and let them finish first.
//
// The machinery is in <qiloop/detail/queue.h>.
#pragma once

#include <qiloop/detail/queue.h>

#include <coroutine>
#include <cstddef>
#include <functional>
#include <type_traits>
#include <utility>

namespace qi {

// qi::BasicQueue<T, Order>
//
// The interface the three queues share (asyncio's base class Queue); name
// Queue, PriorityQueue or LifoQueue. A function template may take a
// BasicQueue<T, Order>& to accept any of them.
template <class T, class Order>
class BasicQueue : public detail::QueueCore {
  static_assert(std::is_object_v<T> && !std::is_array_v<T> && !std::is_const_v<T>,
                "qiloop: a queue's item type T must be a non-const object type; queue a pointer or "
                "std::reference_wrapper to share objects");
  static_assert(std::is_move_constructible_v<T>,
                "qiloop: a queue's item type T must be move constructible (get() moves the item out)");

 public:
  class PutAwaiter;
  class GetAwaiter;

  // BasicQueue::maxsize()
  // The bound given at construction; 0: unbounded.
  using QueueCore::maxsize;
  // BasicQueue::qsize()
  // BasicQueue::empty()
  // BasicQueue::full()
  // The number of items in the queue; whether it is 0; whether put() would
  // wait (never for an unbounded queue).
  using QueueCore::qsize;
  using QueueCore::empty;
  using QueueCore::full;

  // BasicQueue::put()
  // co_await put(item): puts it, first waiting while the queue is full.
  // Throws qi::QueueShutDown once the queue is shut down (also while
  // waiting), qi::CancelledError when the waiting task is cancelled (the
  // item is then dropped, not put). Waiters are served first-in first-out.
  PutAwaiter put(T item) { return PutAwaiter(*this, std::move(item)); }

  // BasicQueue::put_nowait()
  // Puts the item at once, or throws qi::QueueFull (full) or
  // qi::QueueShutDown (shut down). Wakes the first waiting getter.
  void put_nowait(T item) {
    check_put();
    order_.push(std::move(item));
    note_put();
  }

  // BasicQueue::get()
  // co_await get(): takes the next item (moved out), first waiting while the
  // queue is empty. Throws qi::QueueShutDown when the queue is shut down and
  // empty (also while waiting), qi::CancelledError when the waiting task is
  // cancelled (no item is taken). Waiters are served first-in first-out.
  GetAwaiter get() noexcept { return GetAwaiter(*this); }

  // BasicQueue::get_nowait()
  // Takes the next item at once, or throws qi::QueueEmpty (empty) or
  // qi::QueueShutDown (shut down and empty). Wakes the first waiting putter.
  T get_nowait() {
    check_get();
    T item = order_.pop();
    note_get();
    return item;
  }

  // BasicQueue::task_done()
  // Marks one item got as processed; when every item put is, join() returns.
  // Throws qi::ValueError when called more often than items were put.
  using QueueCore::task_done;

  // BasicQueue::join()
  // co_await join(): returns once every item put was marked task_done()
  // (at once when none is unfinished). Throws qi::CancelledError when the
  // waiting task is cancelled. Every waiting join() wakes together.
  using QueueCore::join;

  // BasicQueue::shutdown()
  // Shuts the queue down for good (calling it again is harmless;
  // shutdown(true) after shutdown() drops what is left): waiting putters
  // and getters wake and
  // re-check (putters throw qi::QueueShutDown; getters take the remaining
  // items, then throw it). With `immediate`, the items are dropped now (their
  // destructors run), each counting as task_done(), and waiting getters throw
  // at once.
  void shutdown(bool immediate = false) {
    const std::size_t dropped = begin_shutdown(immediate);
    if (immediate) order_.clear();
    finish_shutdown(immediate, dropped);
  }

 protected:
  template <class... OrderArgs>
  explicit BasicQueue(std::size_t maxsize, OrderArgs&&... order_args)
      : QueueCore(maxsize, Order::kName), order_(std::forward<OrderArgs>(order_args)...) {}
  ~BasicQueue() = default;

 private:
  Order order_;
};

// What `co_await queue.put(item)` does: with room, puts in place (no
// suspension); else awaits the waiting loop, then puts. Holds the item.
template <class T, class Order>
class [[nodiscard("co_await it: put() on its own puts nothing")]] BasicQueue<T, Order>::PutAwaiter {
 public:
  bool await_ready() const noexcept { return q_->put_ready(); }
  template <class P>
  auto await_suspend(std::coroutine_handle<P> h) {
    return wait_.start(q_->wait_for_room(), h);
  }
  void await_resume() {
    wait_.finish();
    q_->put_nowait(std::move(item_));
  }

 private:
  friend class BasicQueue;
  PutAwaiter(BasicQueue& q, T&& item) : q_(&q), item_(std::move(item)) {}
  BasicQueue* q_;
  T item_;
  detail::QueueWait wait_;
};

// What `co_await queue.get()` does: with an item there, takes it in place
// (no suspension); else awaits the waiting loop, then takes it.
template <class T, class Order>
class [[nodiscard("co_await it: get() on its own takes nothing")]] BasicQueue<T, Order>::GetAwaiter {
 public:
  bool await_ready() const noexcept { return q_->get_ready(); }
  template <class P>
  auto await_suspend(std::coroutine_handle<P> h) {
    return wait_.start(q_->wait_for_item(), h);
  }
  T await_resume() {
    wait_.finish();
    return q_->get_nowait();
  }

 private:
  friend class BasicQueue;
  explicit GetAwaiter(BasicQueue& q) noexcept : q_(&q) {}
  BasicQueue* q_;
  detail::QueueWait wait_;
};

// qi::Queue<T>
//
// asyncio.Queue: first in, first out.
template <class T>
class Queue final : public BasicQueue<T, detail::FifoOrder<T>> {
 public:
  // Queue::Queue()
  // An empty queue holding at most `maxsize` items (0: unbounded).
  explicit Queue(std::size_t maxsize = 0) : BasicQueue<T, detail::FifoOrder<T>>(maxsize) {}
};

// qi::PriorityQueue<T, Compare>
//
// asyncio.PriorityQueue: the smallest item by Compare first (with
// std::greater<T>: the largest). Equivalent items: no promised order.
template <class T, class Compare = std::less<T>>
class PriorityQueue final : public BasicQueue<T, detail::PriorityOrder<T, Compare>> {
 public:
  // PriorityQueue::PriorityQueue()
  // An empty queue holding at most `maxsize` items (0: unbounded), ordered
  // by `less`.
  explicit PriorityQueue(std::size_t maxsize = 0, Compare less = Compare())
      : BasicQueue<T, detail::PriorityOrder<T, Compare>>(maxsize, std::move(less)) {}
};

// qi::LifoQueue<T>
//
// asyncio.LifoQueue: last in, first out.
template <class T>
class LifoQueue final : public BasicQueue<T, detail::LifoOrder<T>> {
 public:
  // LifoQueue::LifoQueue()
  // An empty queue holding at most `maxsize` items (0: unbounded).
  explicit LifoQueue(std::size_t maxsize = 0) : BasicQueue<T, detail::LifoOrder<T>>(maxsize) {}
};

}  // namespace qi
