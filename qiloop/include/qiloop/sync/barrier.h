// -----------------------------------------------------------------------------
// File: qiloop/sync/barrier.h
// -----------------------------------------------------------------------------
//
// qi::Barrier is asyncio.Barrier: `parties` tasks meet at wait(), and all go
// on together once the last one arrives.
//
// Example:
//
//   qi::Barrier start(3);
//   qi::Coro<void> runner() {
//     std::size_t i = co_await start.wait();  // 0, 1 or 2: the arrival order
//     ...                                     // all three run on from here
//   }
//
// Contract (asyncio 3.13):
// - wait() blocks until `parties` tasks wait, then every one of them returns
//   (the last to arrive without blocking) with its arrival index, 0 to
//   parties - 1. The barrier is cyclic: once all have left ("draining"),
//   it fills again; a task arriving while it drains waits for the next round.
// - Cancellation: a task cancelled while it waits leaves (n_waiting() drops)
//   and gets qi::CancelledError; the barrier is not broken, the others keep
//   waiting for a full count. The index is the count on arrival, so after
//   such a departure two tasks of one round may get the same index (as in
//   asyncio).
// - abort() breaks the barrier: every waiting task, and every later wait(),
//   throws qi::BrokenBarrierError until reset(). reset() returns it to
//   empty: tasks waiting then throw qi::BrokenBarrierError; a broken barrier
//   becomes usable again.
// - abort() and reset() are coroutines, as in asyncio (`await
//   barrier.abort()`): they take the barrier's internal lock. Nothing holds
//   that lock across a suspension, so they take effect without suspending.
// - parties < 1 throws qi::ValueError.
// - Loops: constructible before any loop runs; bound by its first wait.
//   Thread-safety: the bound loop's thread only.
#pragma once

#include <qiloop/coro.h>
#include <qiloop/export.h>
#include <qiloop/sync/condition.h>

#include <cstddef>

namespace qi {

class QILOOP_EXPORT Barrier {
 public:
  // Barrier::Barrier()
  // Throws qi::ValueError for parties < 1.
  explicit Barrier(std::size_t parties);
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;

  // Barrier::wait()
  // co_await barrier.wait(): the arrival index, once `parties` tasks wait.
  // Throws qi::BrokenBarrierError when the barrier is (or gets) aborted or
  // reset, qi::CancelledError when the task is cancelled.
  Coro<std::size_t> wait();

  // Barrier::reset()
  // co_await barrier.reset(): back to empty; the tasks waiting throw
  // qi::BrokenBarrierError.
  Coro<void> reset();

  // Barrier::abort()
  // co_await barrier.abort(): breaks it; waiting tasks and later wait()s
  // throw qi::BrokenBarrierError (until reset()).
  Coro<void> abort();

  // Barrier::parties()
  // Barrier::n_waiting()
  // Barrier::broken()
  // The count that trips it; how many wait while it fills (0 while it
  // drains or resets); whether it is broken (aborted).
  std::size_t parties() const noexcept { return parties_; }
  std::size_t n_waiting() const noexcept { return state_ == State::kFilling ? count_ : 0; }
  bool broken() const noexcept { return state_ == State::kBroken; }

 private:
  // Filling: tasks arrive. Draining: the last one arrived; the others leave
  // (newcomers wait for the next round). Resetting: reset() while tasks
  // waited; they leave with BrokenBarrierError. Broken: aborted.
  enum class State { kFilling, kDraining, kResetting, kBroken };

  Coro<void> block();
  Coro<void> wait_to_be_released();
  void leave();

  Condition cond_;  // notify_all at every change of state
  std::size_t parties_;
  std::size_t count_ = 0;  // tasks inside wait(), between block() and leave()
  State state_ = State::kFilling;
};

}  // namespace qi
