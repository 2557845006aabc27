// -----------------------------------------------------------------------------
// File: qiloop/sync/semaphore.h
// -----------------------------------------------------------------------------
//
// qi::Semaphore is asyncio.Semaphore: a counter that acquire() takes one
// from (waiting while it is zero) and release() gives one back to.
// qi::BoundedSemaphore refuses a release() that would raise it above its
// initial value.
//
// Example:
//
//   qi::Semaphore slots(4);                  // at most 4 downloads at a time
//   qi::Coro<void> download(Url u) {
//     co_await slots.acquire();
//     try { co_await fetch(u); } catch (...) { slots.release(); throw; }
//     slots.release();
//   }
//
// Contract (asyncio 3.13):
// - FIFO: acquire() takes one at once, without suspending, only when the
//   value is above zero and no (uncancelled) task waits — a newcomer never
//   overtakes a waiter. locked() says whether acquire() would wait.
// - release() adds one and, when a task waits, hands that one to the first
//   waiter right away (the value drops again; the waiter runs on a later
//   iteration). So n release()s wake n waiters, whatever else runs between.
// - Cancellation: a task cancelled while it waits gets qi::CancelledError at
//   the co_await and holds nothing. If a release() had been handed to it
//   just before (cancelled while being woken), it gives it back and passes
//   it on to the next waiter: no wake-up is lost (3.13's fix). A waiter that
//   finishes its wait (taking one or not) also wakes as many later waiters
//   as the value allows.
// - A negative initial value throws qi::ValueError; BoundedSemaphore's
//   over-release throws qi::ValueError and changes nothing.
// - Loops, thread-safety, re-entrancy: as qi::Lock (<qiloop/sync/lock.h>).
#pragma once

#include <qiloop/detail/primitive_awaiter.h>
#include <qiloop/detail/waiter_queue.h>
#include <qiloop/export.h>

#include <cstddef>
#include <limits>

namespace qi {

class QILOOP_EXPORT Semaphore {
 public:
  // Semaphore::Semaphore()
  // Throws qi::ValueError for value < 0.
  explicit Semaphore(long long value = 1) : Semaphore(value, std::numeric_limits<long long>::max()) {}
  Semaphore(const Semaphore&) = delete;
  Semaphore& operator=(const Semaphore&) = delete;

  // Semaphore::locked()
  // Whether acquire() would wait: the value is zero, or a task not
  // cancelled waits (FIFO rules: it goes first).
  bool locked() const noexcept { return value_ == 0 || !(waiters_.empty() || waiters_.all_cancelled()); }

  // Semaphore::value()
  // The counter (asyncio's _value): what is left once the woken waiters
  // have taken theirs.
  long long value() const noexcept { return value_; }

  // Semaphore::acquire()
  // co_await sem.acquire(): returns having taken one. Throws
  // qi::CancelledError (having taken none) when the task is cancelled while
  // it waits.
  auto acquire() noexcept { return detail::PrimitiveAwaiter<Semaphore>(*this); }

  // Semaphore::release()
  // Gives one back and wakes the first waiter that is not woken yet. On a
  // BoundedSemaphore (also through a Semaphore&), throws qi::ValueError
  // when that would raise the value above the initial one.
  void release() {
    if (value_ >= bound_) throw_over_released(bound_);
    ++value_;
    wake_up_next();
  }

  // Semaphore::waiters()
  // How many tasks wait (including woken ones that have not run yet).
  std::size_t waiters() const noexcept { return waiters_.size(); }

 private:
  template <class, class> friend class detail::PrimitiveAwaiter;
  static constexpr const char* kName = "qi::Semaphore";
  bool try_fast() noexcept {
    if (locked()) return false;
    --value_;
    return true;
  }
  void finish_wait(detail::WaiterQueue::Entry& e);
  // asyncio's _wake_up_next: the woken waiter's one is taken now.
  bool wake_up_next() {
    if (waiters_.empty() || !waiters_.wake_next()) return false;
    --value_;
    return true;
  }

  [[noreturn]] static void throw_over_released(long long bound);

  detail::WaiterQueue waiters_;
  long long value_;
  long long bound_;  // the largest value release() may reach

 protected:
  Semaphore(long long value, long long bound);
};

// qi::BoundedSemaphore
//
// A Semaphore whose release() throws qi::ValueError (changing nothing) when
// the value would go above the initial one: a release without an acquire.
class QILOOP_EXPORT BoundedSemaphore : public Semaphore {
 public:
  // BoundedSemaphore::BoundedSemaphore()
  // Throws qi::ValueError for value < 0.
  explicit BoundedSemaphore(long long value = 1) : Semaphore(value, value) {}
};

}  // namespace qi
