// -----------------------------------------------------------------------------
// File: qiloop/threads/executor.h
// -----------------------------------------------------------------------------
//
// qi::Executor is what QiEventLoop::run_in_executor hands blocking work to
// (concurrent.futures.Executor's place in asyncio): qi::ThreadPoolExecutor
// (<qiloop/threads/thread_pool_executor.h>) is the one qiloop ships, and an
// application may write its own — a pool with priorities, a single
// dedicated thread, a QThreadPool adapter.
//
// Example (a single dedicated thread that runs the work in order):
//
//   class OneThread final : public qi::Executor {
//    public:
//     void submit(qi::ExecutorWork& w) override { /* queue &w; the thread calls w.run() */ }
//     void shutdown(bool wait, bool cancel_pending) override { /* ... */ }
//   };
//   auto ex = std::make_shared<OneThread>();
//   int n = co_await loop.run_in_executor(ex.get(), count_lines, path);
//
// Contract between an executor and the work it receives:
// - submit(work) takes the work over: the executor calls exactly one of
//   work.run() (on the thread that should run it) or work.discard() (it will
//   never run: shutdown with cancel_pending) for each work it accepted, on
//   any thread, at any later time — also from inside submit. Both are
//   noexcept and return promptly apart from the work itself. After that
//   call the executor must not touch the work again.
// - submit refuses by throwing (qi::RuntimeError after shutdown, say); the
//   work then stays the caller's and is neither run nor discarded.
// - While it holds a work, the executor may use work.next_work as it likes
//   (an intrusive queue needs no allocation per work).
// - Cancelling the future of a work that has not started makes its run() a
//   no-op (the work is then only released): an executor needs no support
//   for cancellation (concurrent.futures' "cancel if not running").
//
// Thread-safety: submit and shutdown may be called from any thread.
#pragma once

#include <qiloop/export.h>

namespace qi {

// qi::ExecutorWork
// One unit of work handed to an executor: type-erased, allocated by its
// submitter (run_in_executor allocates one object holding the callable, its
// arguments, the result slot and the future), never copied.
class QILOOP_EXPORT ExecutorWork {
 public:
  // ExecutorWork::run()
  // Runs the work on the calling thread (unless it was cancelled before it
  // started) and hands its outcome back to whoever submitted it. Call once.
  virtual void run() noexcept = 0;
  // ExecutorWork::discard()
  // The work will never run: its submitter is told (run_in_executor's future
  // ends cancelled). Call once, instead of run().
  virtual void discard() noexcept = 0;

  // Free for the executor's use while it holds the work (see above).
  ExecutorWork* next_work = nullptr;

 protected:
  ExecutorWork() = default;
  ExecutorWork(const ExecutorWork&) = delete;
  ExecutorWork& operator=(const ExecutorWork&) = delete;
  ~ExecutorWork() = default;
};

// qi::Executor
// The interface run_in_executor, to_thread and set_default_executor take.
class QILOOP_EXPORT Executor {
 public:
  virtual ~Executor();

  // Executor::submit()
  // Takes `work` over (see the contract above). Any thread. Throws (e.g.
  // qi::RuntimeError after shutdown) to refuse it.
  virtual void submit(ExecutorWork& work) = 0;

  // Executor::shutdown()
  // concurrent.futures' shutdown(wait, cancel_futures): refuses new work
  // from now on; cancel_pending discards the work not started yet; wait
  // blocks until the work accepted has ended and the executor's threads are
  // gone. Idempotent. Any thread but the executor's own.
  virtual void shutdown(bool wait = true, bool cancel_pending = false) = 0;

 protected:
  Executor() = default;
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;
};

}  // namespace qi
