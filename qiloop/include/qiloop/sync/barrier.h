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
//   barrier.abort()`): they take the barrier's internal lock, FIFO. Nothing
//   holds that lock across a suspension, so they wait at most for the tasks
//   already queued for it (woken waiters taking it back), never for a task
//   to make progress of its own.
// - parties < 1 throws qi::ValueError (a negative count too: it is not
//   taken as a huge unsigned one).
// - Destroying a barrier while tasks wait in it breaks it: they throw
//   qi::BrokenBarrierError (their coroutines share its state, which lives
//   until the last of them leaves).
// - Loops: constructible before any loop runs; bound by its first wait.
//   Thread-safety: the bound loop's thread only.
#pragma once

#include <qiloop/coro.h>
#include <qiloop/export.h>
#include <qiloop/sync/condition.h>

#include <cstddef>
#include <memory>

namespace qi {

class QILOOP_EXPORT Barrier {
 public:
  // Barrier::Barrier()
  // Throws qi::ValueError for parties < 1.
  explicit Barrier(std::ptrdiff_t parties);
  Barrier(const Barrier&) = delete;
  Barrier& operator=(const Barrier&) = delete;
  // Barrier::~Barrier()
  // Breaks it for the tasks still waiting (qi::BrokenBarrierError).
  ~Barrier();

  // Barrier::wait()
  // co_await barrier.wait(): the arrival index, once `parties` tasks wait.
  // Throws qi::BrokenBarrierError when the barrier is (or gets) aborted,
  // reset or destroyed, qi::CancelledError when the task is cancelled.
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
  std::size_t parties() const noexcept;
  std::size_t n_waiting() const noexcept;
  bool broken() const noexcept;

 private:
  struct State;  // src/sync/barrier.cpp: shared with the waiting coroutines
  std::shared_ptr<State> state_;
};

}  // namespace qi
