// queue.cpp — the type-independent half of qi::Queue, PriorityQueue and
// LifoQueue: asyncio's waiting loops, task_done / join and shutdown.
#include <qiloop/detail/queue.h>
#include <qiloop/errors.h>

#include <algorithm>
#include <string>

namespace qi::detail {

void QueueCore::task_done() {
  if (unfinished_ == 0)
    throw ValueError(std::string(name_) +
                     "::task_done() called too many times: call it once per item got, after processing it");
  if (--unfinished_ == 0) joiners_.wake_all();
}

std::size_t QueueCore::begin_shutdown(bool immediate) noexcept {
  shut_down_ = true;
  return immediate ? std::exchange(size_, 0) : 0;
}

void QueueCore::finish_shutdown(bool immediate, std::size_t dropped) {
  if (immediate) {
    // Each dropped item counts as task_done(), but never below zero: a
    // consumer may have called task_done() ahead of its get().
    unfinished_ -= std::min(dropped, unfinished_);
    if (unfinished_ == 0) joiners_.wake_all();
  }
  // Every waiter re-checks when it runs: putters throw QueueShutDown, getters
  // take what is left first.
  getters_.wake_all();
  putters_.wake_all();
}

Coro<void> QueueCore::wait_while(bool (QueueCore::*blocked)() const, WaiterQueue& waiters,
                                 void (QueueCore::*refuse)() const) {
  while ((this->*blocked)()) {
    if (shut_down_) (this->*refuse)();
    bind_running_loop();
    WaiterQueue::Entry waiter(waiters, name_);
    try {
      co_await waiter;
    } catch (const CancelledError&) {
      // Woken, then cancelled before it ran: the room / item it was woken
      // for goes to the next waiter, or that one would never hear of it.
      // (Only a cancel: the other error, qi::RuntimeError, says the queue
      // was destroyed, and must go through without touching it.)
      if (!(this->*blocked)() && waiter.woken()) waiters.wake_next();
      throw;
    }
    // Woken: loop to re-check, since a *_nowait call may have taken the
    // room / item before this task ran (it then waits again, at the back).
  }
}

Coro<void> QueueCore::wait_finished() {
  bind_running_loop();
  WaiterQueue::Entry waiter(joiners_, name_);
  co_await waiter;
}

void QueueCore::bind_running_loop() {
  getters_.bind_running_loop(name_);
  putters_.bind_running_loop(name_);
  joiners_.bind_running_loop(name_);
}

void QueueCore::throw_cannot_put() const {
  if (shut_down_)
    throw QueueShutDown(std::string(name_) + ": put after shutdown(): a shut-down queue takes no more items");
  throw QueueFull(std::string(name_) + "::put_nowait: the queue is full (maxsize " + std::to_string(maxsize_) +
                  "): co_await put() to wait for room");
}

void QueueCore::throw_cannot_get() const {
  if (shut_down_)
    throw QueueShutDown(std::string(name_) + ": get after shutdown(): the queue is shut down and empty");
  throw QueueEmpty(std::string(name_) + "::get_nowait: the queue is empty: co_await get() to wait for an item");
}

}  // namespace qi::detail
