// semaphore.cpp — qi::Semaphore and qi::BoundedSemaphore (asyncio 3.13).
#include <qiloop/errors.h>
#include <qiloop/sync/semaphore.h>

#include <limits>

namespace qi {

Semaphore::Semaphore(long long value, long long bound) : value_(value), bound_(bound) {
  if (value < 0) throw ValueError("qi::Semaphore: the initial value must be >= 0");
}

void Semaphore::finish_wait(detail::WaiterQueue::Entry& e) {
  // Waiters that arrived meanwhile had to queue (FIFO) even if the value
  // allowed them in: wake as many as it allows now, whatever this one does.
  auto wake_allowed = [this] {
    while (value_ > 0 && wake_up_next()) {
    }
  };
  try {
    e.await_resume();
  } catch (const CancelledError&) {
    // A release() was handed to us (the value already counted it taken) but
    // we are not taking it: give it back, for the next waiter.
    if (e.woken()) ++value_;
    wake_allowed();
    throw;
  }
  wake_allowed();
}

void Semaphore::throw_over_released(long long bound) {
  if (bound == std::numeric_limits<long long>::max())
    throw ValueError("qi::Semaphore::release(): the value would overflow (long long); release() only what "
                     "acquire() took");
  throw ValueError("qi::BoundedSemaphore released too many times (more release() than acquire())");
}

}  // namespace qi
