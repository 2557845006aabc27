// -----------------------------------------------------------------------------
// File: qiloop/sync/condition.h
// -----------------------------------------------------------------------------
//
// qi::Condition is asyncio.Condition: tasks wait, holding its lock, until
// another task notifies them.
//
// Example:
//
//   qi::Condition cond;                      // owns its qi::Lock
//   std::deque<int> items;
//   qi::Coro<int> consume() {
//     auto guard = co_await cond.scoped();   // async with cond:
//     co_await cond.wait_for([&] { return !items.empty(); });
//     int v = items.front(); items.pop_front();
//     co_return v;
//   }
//   qi::Coro<void> produce(int v) {
//     auto guard = co_await cond.scoped();
//     items.push_back(v);
//     cond.notify();
//   }
//
// Contract (asyncio 3.13):
// - The lock: one the condition owns, or a qi::Lock passed by reference
//   (which must outlive it; several conditions may share one lock).
//   locked(), acquire(), release() and scoped() are the lock's.
// - wait() releases the lock, blocks until notified, and re-acquires the
//   lock before it returns — also when it throws: whatever happens, the
//   caller holds the lock again when wait() ends. wait_for(pred) loops
//   wait() until pred() is truthy and returns pred()'s last value (it does
//   not wait, nor check the lock, when pred() is truthy at once).
// - notify(n) wakes the first n waiters not woken yet (FIFO); notify_all()
//   every one. A woken waiter returns once it has the lock again (the
//   notifier keeps it until it releases it).
// - wait() and notify()/notify_all() throw qi::RuntimeError when the lock is
//   not held (by anyone: a task lock has no owner).
// - Cancellation: a task cancelled while it waits, or while it re-acquires
//   the lock, still re-acquires it (further cancels are absorbed until it
//   has it), then throws the latest qi::CancelledError. Any exception out
//   of wait() first notifies one other waiter: a notify that reached a
//   waiter being cancelled is passed on, never lost (3.13). That may be a
//   spurious wake-up, which the condition protocol allows: check the state
//   again (wait_for does).
// - Loops: constructible before any loop runs; bound by its first wait.
//   Thread-safety: the bound loop's thread only.
#pragma once

#include <qiloop/coro.h>
#include <qiloop/detail/waiter_queue.h>
#include <qiloop/export.h>
#include <qiloop/sync/lock.h>

#include <cstddef>
#include <functional>
#include <type_traits>
#include <utility>

namespace qi {

class QILOOP_EXPORT Condition {
 public:
  // Condition::Condition()
  // With its own lock, or on `lock` (not owned; it must outlive the
  // condition).
  Condition() noexcept : lock_(own_lock_) {}
  explicit Condition(Lock& lock) noexcept : lock_(lock) {}
  Condition(const Condition&) = delete;
  Condition& operator=(const Condition&) = delete;

  // Condition::locked()
  // Condition::acquire()
  // Condition::release()
  // Condition::scoped()
  // The lock's (qi::Lock).
  bool locked() const noexcept { return lock_.locked(); }
  auto acquire() noexcept { return lock_.acquire(); }
  void release() { lock_.release(); }
  auto scoped() noexcept { return lock_.scoped(); }

  // Condition::lock()
  Lock& lock() const noexcept { return lock_; }

  // Condition::wait()
  // co_await cond.wait(): releases the lock, waits for a notify, takes the
  // lock again (see the file comment for cancellation). Throws
  // qi::RuntimeError when the lock is not held.
  Coro<void> wait();

  // Condition::wait_for()
  // co_await cond.wait_for(pred): wait() until pred() is truthy; returns
  // pred()'s last value. pred is called with the lock held.
  template <class Predicate>
    requires std::is_invocable_v<Predicate&>
  Coro<std::decay_t<std::invoke_result_t<Predicate&>>> wait_for(Predicate pred) {
    auto result = std::invoke(pred);
    while (!result) {
      co_await wait();
      result = std::invoke(pred);
    }
    co_return result;
  }

  // Condition::notify()
  // Wakes up to n waiters (the first ones not woken yet). Throws
  // qi::RuntimeError when the lock is not held.
  void notify(std::size_t n = 1);

  // Condition::notify_all()
  // Wakes every waiter. Throws qi::RuntimeError when the lock is not held.
  void notify_all() { notify(waiters_.size()); }

  // Condition::waiters()
  // How many tasks wait for a notify (including woken ones that have not
  // run yet).
  std::size_t waiters() const noexcept { return waiters_.size(); }

 private:
  friend class Barrier;  // names itself in the loop-binding error
  void wake(std::size_t n);

  const char* name_ = "qi::Condition";
  Lock own_lock_;  // unused when the lock is passed in
  Lock& lock_;
  detail::WaiterQueue waiters_;
};

}  // namespace qi
