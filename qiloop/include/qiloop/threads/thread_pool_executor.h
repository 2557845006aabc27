// -----------------------------------------------------------------------------
// File: qiloop/threads/thread_pool_executor.h
// -----------------------------------------------------------------------------
//
// qi::ThreadPoolExecutor is concurrent.futures.ThreadPoolExecutor: a bounded
// pool of threads that runs qi::ExecutorWork in submission order. It is the
// loop's default executor (what qi::to_thread and run_in_executor(nullptr,
// ...) use) and the usual explicit one.
//
// Example:
//
//   qi::ThreadPoolExecutor pool(4);                       // at most 4 threads
//   qi::Future<int> f = loop.run_in_executor(&pool, count_lines, path);
//   int n = co_await f;
//   loop.set_default_executor(std::make_shared<qi::ThreadPoolExecutor>(8));
//
// Contract:
// - At most max_workers() works run at once, on at most max_workers()
//   threads. Threads start lazily: a submit starts one only when no thread
//   is idle and the bound is not reached. A thread idle for idle_timeout()
//   exits (the next burst starts it again). Threads are named
//   "<prefix>-<n>" (as the OS shows them; at most 15 characters on Linux).
// - Works start in submission order (FIFO). Idle threads wait on a
//   condition variable: no spinning, no polling.
// - shutdown(wait, cancel_pending): new submits throw qi::RuntimeError;
//   cancel_pending discards the works not started (their futures end
//   cancelled); the others still run. wait blocks until every thread has
//   ended. The destructor is shutdown(true): it waits for the works
//   running and queued.
//
// Thread-safety: every call may be made from any thread, also from the
// pool's own works: shutdown(wait = true) (or the destructor, when a work
// drops the last owner of its pool) called on a thread of the pool waits
// for the other threads and leaves its own to end once the work returns.
#pragma once

#include <qiloop/export.h>
#include <qiloop/threads/executor.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

namespace qi {

class QILOOP_EXPORT ThreadPoolExecutor final : public Executor {
 public:
  // How long an idle thread waits for work before it exits.
  static constexpr std::chrono::milliseconds kDefaultIdleTimeout{std::chrono::seconds(60)};

  // ThreadPoolExecutor::ThreadPoolExecutor()
  // A pool of at most max_workers threads, none started yet. Throws
  // std::invalid_argument for max_workers <= 0 or an idle timeout <= 0.
  explicit ThreadPoolExecutor(int max_workers, std::string thread_name_prefix = "qiloop-pool",
                              std::chrono::milliseconds idle_timeout = kDefaultIdleTimeout);
  // ThreadPoolExecutor::~ThreadPoolExecutor()
  // shutdown(true): waits for the works running and queued.
  ~ThreadPoolExecutor() override;

  // ThreadPoolExecutor::submit()
  // Queues work (FIFO) and wakes or starts a thread for it. Throws
  // qi::RuntimeError after shutdown, std::system_error when no thread can
  // be started and none exists (the work then stays the caller's).
  void submit(ExecutorWork& work) override;

  // ThreadPoolExecutor::shutdown()
  // See the contract above. Idempotent; concurrent callers with wait all
  // return once the threads are gone.
  void shutdown(bool wait = true, bool cancel_pending = false) override;

  // ThreadPoolExecutor::max_workers()
  // ThreadPoolExecutor::idle_timeout()
  int max_workers() const noexcept;
  std::chrono::milliseconds idle_timeout() const noexcept;

  // ThreadPoolExecutor::threads()
  // ThreadPoolExecutor::queued()
  // Threads alive now (running a work or idle), and works waiting for a
  // thread. Snapshots, for tests and diagnostics.
  int threads() const;
  std::size_t queued() const;

  // ThreadPoolExecutor::default_max_workers()
  // The default executor's size, asyncio's: min(32, CPU cores + 4).
  static int default_max_workers() noexcept;

 private:
  struct Pool;
  std::shared_ptr<Pool> pool_;
};

}  // namespace qi
