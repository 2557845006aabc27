// -----------------------------------------------------------------------------
// File: qiloop/sync/lock.h
// -----------------------------------------------------------------------------
//
// qi::Lock is asyncio.Lock: a mutual-exclusion lock for tasks of one loop.
// qi::LockGuard is `async with lock:` — it releases the lock when it goes.
//
// Example:
//
//   qi::Lock lock;
//   qi::Coro<void> update() {
//     auto guard = co_await lock.scoped();   // async with lock:
//     co_await write_part_one();
//     co_await write_part_two();
//   }                                        // released here, also on an exception
//
//   co_await lock.acquire();                 // or by hand
//   try { ... } catch (...) { lock.release(); throw; }
//   lock.release();
//
// Contract (asyncio 3.13):
// - A lock is not owned by a task: any task (or callback) may release it.
// - acquire() on an unlocked lock that nobody waits for takes it at once,
//   without suspending; otherwise the task waits its turn. release() hands
//   the lock to the first waiter (FIFO) and wakes it; until that waiter runs
//   the lock is unlocked, but a newcomer's acquire() does not barge past it
//   (it queues) — unless every waiter is already cancelled.
// - Cancellation: a task cancelled while it waits gets qi::CancelledError at
//   the co_await and does not hold the lock. If the lock had been handed to
//   it just before (cancelled while being woken), it passes the wake-up to
//   the next waiter: no wake-up is lost.
// - release() of an unlocked lock throws qi::RuntimeError.
// - Loops: a Lock may be made before any loop runs; the first acquire() that
//   blocks binds it to the running loop; a blocking acquire() under another
//   loop throws qi::RuntimeError.
// - Thread-safety: the bound loop's thread only. Re-entrancy: every call may
//   be made from a task or a callback of that loop; a task that acquires a
//   lock it holds waits for itself forever (the lock is not recursive).
// - Cost: an uncontended acquire()/release() makes no allocation and no
//   coroutine frame; a blocked acquire() makes one waiter future.
#pragma once

#include <qiloop/detail/primitive_awaiter.h>
#include <qiloop/detail/waiter_queue.h>
#include <qiloop/export.h>

#include <mutex>
#include <utility>

namespace qi {

class LockGuard;

class QILOOP_EXPORT Lock {
 public:
  Lock() noexcept = default;
  Lock(const Lock&) = delete;
  Lock& operator=(const Lock&) = delete;

  // Lock::locked()
  bool locked() const noexcept { return locked_; }

  // Lock::acquire()
  // co_await lock.acquire(): returns holding the lock. Throws
  // qi::CancelledError (not holding it) when the task is cancelled while it
  // waits.
  auto acquire() noexcept { return detail::PrimitiveAwaiter<Lock>(*this); }

  // Lock::scoped()
  // co_await lock.scoped(): acquire(), then a LockGuard that releases the
  // lock when it is destroyed (`async with lock:`).
  auto scoped() noexcept { return detail::PrimitiveAwaiter<Lock, LockGuard>(*this); }

  // Lock::release()
  // Unlocks it and wakes the first waiter. Throws qi::RuntimeError when it
  // is not locked.
  void release() {
    if (!locked_) throw_not_acquired();
    locked_ = false;
    if (!waiters_.empty()) waiters_.wake_first();
  }

  // Lock::waiters()
  // How many tasks wait (including one woken that has not run yet).
  std::size_t waiters() const noexcept { return waiters_.size(); }

 private:
  template <class, class> friend class detail::PrimitiveAwaiter;
  static constexpr const char* kName = "qi::Lock";
  // Fair scheduling: a task waits its turn; taking it past waiters that are
  // all cancelled is asyncio's optimisation.
  bool try_fast() {
    if (locked_ || !(waiters_.empty() || waiters_.all_cancelled())) return false;
    locked_ = true;
    return true;
  }
  void finish_wait(detail::WaiterQueue::Entry& e);
  [[noreturn]] static void throw_not_acquired();

  detail::WaiterQueue waiters_;
  bool locked_ = false;
};

// qi::LockGuard
//
// Holds a Lock and releases it when destroyed (std::unique_lock's shape for
// a task lock). Movable, not copyable; a moved-from or released guard holds
// nothing. Made by co_await lock.scoped() (or Condition::scoped()), or by
// LockGuard(lock, std::adopt_lock) for a lock the caller acquired.
// The destructor releases the lock if it is locked, as `async with lock:`
// does on exit: it does not throw for a lock released behind the guard's
// back (lock.release()), but if another task acquired it meanwhile, that
// task's hold is released. Release through the guard (guard.release()), not
// the lock, while a guard holds it.
class QILOOP_EXPORT LockGuard {
 public:
  LockGuard() noexcept = default;
  LockGuard(Lock& lock, std::adopt_lock_t) noexcept : lock_(&lock) {}
  LockGuard(LockGuard&& o) noexcept : lock_(std::exchange(o.lock_, nullptr)) {}
  LockGuard& operator=(LockGuard&& o) noexcept {
    if (this != &o) {
      drop();
      lock_ = std::exchange(o.lock_, nullptr);
    }
    return *this;
  }
  ~LockGuard() { drop(); }

  // LockGuard::owns_lock()
  // LockGuard::operator bool()
  // Whether it holds a lock (it has not released it and was not moved from).
  bool owns_lock() const noexcept { return lock_ != nullptr; }
  explicit operator bool() const noexcept { return owns_lock(); }

  // LockGuard::lock()
  // The lock it holds, or null.
  Lock* lock() const noexcept { return lock_; }

  // LockGuard::release()
  // Releases the lock now (before the end of the scope). Throws
  // qi::RuntimeError when it holds none, or when the lock is not locked.
  void release();

 private:
  void drop() noexcept {
    if (Lock* l = std::exchange(lock_, nullptr); l && l->locked()) l->release();
  }
  Lock* lock_ = nullptr;
};

}  // namespace qi
