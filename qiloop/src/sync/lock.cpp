// lock.cpp — qi::Lock (asyncio.Lock) and qi::LockGuard.
#include <qiloop/errors.h>
#include <qiloop/sync/lock.h>

namespace qi {

void Lock::finish_wait(detail::WaiterQueue::Entry& e) {
  try {
    e.await_resume();
  } catch (const CancelledError&) {
    // The lock invariant: when it is not taken (nor about to be, by a woken
    // waiter), the first waiter must be on its way — this one may have been
    // woken and is not taking it.
    if (!locked_) waiters_.wake_first();
    throw;
  }
  locked_ = true;
}

void Lock::throw_not_acquired() {
  throw RuntimeError("qi::Lock::release(): the lock is not acquired; release it once per acquire()");
}

void LockGuard::release() {
  if (!lock_)
    throw RuntimeError("qi::LockGuard::release(): the guard holds no lock (released already, or moved from)");
  std::exchange(lock_, nullptr)->release();
}

}  // namespace qi
