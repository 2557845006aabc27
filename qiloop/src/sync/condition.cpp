// condition.cpp — qi::Condition (asyncio 3.13's Condition).
#include <qiloop/errors.h>
#include <qiloop/sync/condition.h>

#include <exception>

namespace qi {

Coro<void> Condition::wait() {
  if (!locked())
    throw RuntimeError(
        "qi::Condition::wait(): cannot wait on an un-acquired lock; acquire it first (co_await cond.scoped())");
  std::exception_ptr err;
  {
    detail::WaiterQueue::Entry w(waiters_, name_);
    lock_.release();
    try {
      co_await w;
    } catch (const CancelledError&) {
      err = std::current_exception();
    }
  }
  // The lock is taken again even when the wait is cancelled; a cancel
  // arriving meanwhile is absorbed and the latest one delivered after.
  for (;;) {
    try {
      co_await lock_.acquire();
      break;
    } catch (const CancelledError&) {
      err = std::current_exception();
    }
  }
  if (err) {
    // It may have been notified just before it was cancelled: pass the
    // notify on (a spurious wake-up at worst, which the protocol allows).
    wake(1);
    std::rethrow_exception(err);
  }
}

void Condition::notify(std::size_t n) {
  if (!locked())
    throw RuntimeError(
        "qi::Condition::notify(): cannot notify on an un-acquired lock; acquire it first (co_await "
        "cond.scoped())");
  wake(n);
}

void Condition::wake(std::size_t n) {
  std::size_t woken = 0;
  for (auto* e = waiters_.front(); e && woken < n; e = e->next()) woken += e->wake();
}

}  // namespace qi
