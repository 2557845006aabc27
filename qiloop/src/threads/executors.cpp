// executors.cpp — run_in_executor's round trip on the loop's side: the job's
// submission and its way back (the gate), the default executor, and
// shutdown_default_executor.
#include <qiloop/event_loop.h>
#include <qiloop/structured/timeout.h>
#include <qiloop/threads/thread_pool_executor.h>

#include "../loop_impl.h"

#include <string>
#include <thread>
#include <utility>

namespace qi::detail {

// What a worker sends back: it owns the executor side's reference to the
// job, so a completion the closing loop drops unsent releases it as well.
struct ExecutorJobBase::Completion {
  explicit Completion(ExecutorJobBase* j) noexcept : job(j) {}
  Completion(Completion&& o) noexcept : job(std::exchange(o.job, nullptr)) {}
  Completion& operator=(Completion&&) = delete;
  ~Completion() {
    if (job) job->future_state().release();
  }
  void operator()() noexcept {
    ExecutorJobBase* j = std::exchange(job, nullptr);
    j->complete();
    j->future_state().release();
  }
  ExecutorJobBase* job;
};

std::string ExecutorJobBase::site_text() const {
  const AwaitSite s = to_site(site_);
  return std::string(s.file_name()) + ":" + std::to_string(s.line()) + " (" + s.function_name() + ")";
}

void ExecutorJobBase::submit_to(QiEventLoop& loop, Executor* target, const char* api) {
  if (loop.closed_ || loop.debug_) [[unlikely]] {
    if (!loop.check_can_schedule(api)) {
      // Called by a destructor close() runs: nothing more runs on this loop.
      future_state().mark_cancelled("the event loop is closed");
      return;
    }
  }
  LoopExecutors& ex = loop.impl_->executors;
  if (!target) {
    if (ex.default_shut_down)
      throw RuntimeError(std::string(api) +
                         ": the loop's default executor was shut down (shutdown_default_executor, which QiRunner "
                         "and qi::run call on exit); pass an executor of your own, e.g. "
                         "loop.run_in_executor(&pool, ...) with a qi::ThreadPoolExecutor");
    if (!ex.default_executor)
      ex.default_executor = std::make_shared<ThreadPoolExecutor>(ThreadPoolExecutor::default_max_workers(), "qiloop-exec");
    target = ex.default_executor.get();
  }
  if (!ex.gate) ex.gate = std::make_shared<ExecutorGate>(loop);
  gate_ = ex.gate;
  executor = target;
  future_state().retain();  // the executor side's
  {
    std::lock_guard lock(gate_->mutex);
    gate_->link(*this);
  }
  try {
    target->submit(*this);
  } catch (...) {
    {
      std::lock_guard lock(gate_->mutex);
      gate_->unlink(*this);
    }
    gate_.reset();
    future_state().release();
    throw;
  }
}

void ExecutorJobBase::run() noexcept {
  uint8_t queued = kQueued;
  if (phase_.compare_exchange_strong(queued, kRunning, std::memory_order_acq_rel)) {
    invoke();
    phase_.store(kFinished, std::memory_order_release);
  }
  send_back();
}

void ExecutorJobBase::discard() noexcept {
  uint8_t queued = kQueued;
  phase_.compare_exchange_strong(queued, kDiscarded, std::memory_order_acq_rel);
  send_back();
}

void ExecutorJobBase::cancel_queued() noexcept {
  uint8_t queued = kQueued;
  phase_.compare_exchange_strong(queued, kCancelled, std::memory_order_acq_rel);
}

// Worker side (or whoever discards): the job goes back to its loop's
// thread, or, once that loop is closed, ends here.
void ExecutorJobBase::send_back() noexcept {
  const std::shared_ptr<ExecutorGate> gate = std::move(gate_);
  std::unique_lock lock(gate->mutex);
  gate->unlink(*this);
  if (QiEventLoop* loop = gate->loop) {
    try {
      loop->call_soon_threadsafe(Completion(this));
    } catch (...) {
      // Out of memory: the completion released the job; its outcome is lost.
    }
    return;  // the job may be gone already: nothing of it is touched
  }
  lock.unlock();
  future_state().release();  // the loop is closed: the outcome is destroyed here
}

std::shared_ptr<const EscapeRecord> ExecutorJobBase::origin_record(std::exception_ptr e) const {
  auto r = std::make_shared<EscapeRecord>();
  r->exception = std::move(e);
  r->sites.push_back(site_);
  r->origin = "work submitted at " + site_text();
  return r;
}

}  // namespace qi::detail

using qi::detail::ExecutorGate;
using qi::detail::ExecutorJobBase;
using qi::detail::LoopExecutors;

namespace {

// "; still running: work submitted at ...; ..." for the jobs of `executor`
// not sent back yet.
std::string outstanding_work(ExecutorGate* gate, const qi::Executor* executor) {
  if (!gate) return {};
  std::string running, queued;
  std::lock_guard lock(gate->mutex);
  for (ExecutorJobBase* j = gate->jobs; j; j = j->gate_next) {
    if (j->executor != executor) continue;
    const auto phase = j->phase();
    std::string& list = phase == ExecutorJobBase::kQueued ? queued : running;
    if (phase == ExecutorJobBase::kQueued || phase == ExecutorJobBase::kRunning) {
      list += list.empty() ? "" : "; ";
      list += "work submitted at " + j->site_text();
    }
  }
  std::string out;
  if (!running.empty()) out += "\n  still running: " + running;
  if (!queued.empty()) out += "\n  still queued: " + queued;
  return out;
}

bool has_outstanding_work(ExecutorGate* gate, const qi::Executor* executor) {
  if (!gate) return false;
  std::lock_guard lock(gate->mutex);
  for (ExecutorJobBase* j = gate->jobs; j; j = j->gate_next)
    if (j->executor == executor) return true;
  return false;
}

// Owns the joining thread: joins it when it has ended in time, else leaves
// it to end on its own (it holds what it uses).
struct Joiner {
  std::thread thread;
  bool in_time = false;
  ~Joiner() {
    if (!thread.joinable()) return;
    if (in_time)
      thread.join();  // it has sent its completion: it is returning
    else
      thread.detach();
  }
};

}  // namespace

void QiEventLoop::set_default_executor(std::shared_ptr<qi::Executor> executor) {
  check_thread("set_default_executor");
  if (!executor)
    throw std::invalid_argument("set_default_executor: the executor is null; pass e.g. "
                                "std::make_shared<qi::ThreadPoolExecutor>(n)");
  impl_->executors.default_executor = std::move(executor);
}

std::shared_ptr<qi::Executor> QiEventLoop::default_executor() const { return impl_->executors.default_executor; }

void QiEventLoop::set_executor_shutdown_timeout(duration timeout) {
  if (timeout < duration::zero())
    throw std::invalid_argument("set_executor_shutdown_timeout: the timeout is negative; pass a duration >= 0");
  impl_->executors.shutdown_timeout = timeout;
}

QiEventLoop::duration QiEventLoop::executor_shutdown_timeout() const noexcept {
  return impl_->executors.shutdown_timeout;
}

qi::Coro<void> QiEventLoop::shutdown_default_executor() {
  return shutdown_default_executor(impl_->executors.shutdown_timeout);
}

// asyncio 3.12: a thread joins the executor while the loop waits for a
// future that thread completes, so the loop never blocks; past the timeout
// the thread is left to finish on its own.
qi::Coro<void> QiEventLoop::shutdown_default_executor(duration timeout) {
  LoopExecutors& ex = impl_->executors;
  ex.default_shut_down = true;
  std::shared_ptr<qi::Executor> executor = std::move(ex.default_executor);
  if (!executor) co_return;
  if (!ex.gate) ex.gate = std::make_shared<ExecutorGate>(*this);
  qi::Future<void> joined = create_future<void>();
  Joiner joiner;
  joiner.thread = std::thread([executor, gate = ex.gate, joined]() mutable {
    executor->shutdown(true);
    std::lock_guard lock(gate->mutex);
    if (QiEventLoop* loop = gate->loop) {
      try {
        loop->call_soon_threadsafe([joined = std::move(joined)] {
          if (!joined.done()) joined.set_result();
        });
      } catch (...) {
      }
    }
  });
  try {
    co_await qi::wait_for(joined, timeout);
    joiner.in_time = true;
  } catch (const qi::TimeoutError&) {
    qi::ExceptionContext ctx;
    ctx.message = "shutdown_default_executor: the default executor's work did not end within " +
                  std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(timeout).count()) +
                  " ms; its threads are left to end on their own (not joined)" +
                  outstanding_work(ex.gate.get(), executor.get());
    call_exception_handler(ctx);
  }
}

void QiEventLoop::close_executors() noexcept {
  LoopExecutors& ex = impl_->executors;
  if (ex.gate) {
    std::lock_guard lock(ex.gate->mutex);
    ex.gate->loop = nullptr;
  }
  std::shared_ptr<qi::Executor> executor = std::move(ex.default_executor);
  if (!executor) return;
  // asyncio's close(): shutdown(wait=False). The last owner's destructor
  // waits for the work, so when ours is the last reference and work of ours
  // still runs, it goes on a thread of its own: close() never waits.
  try {
    executor->shutdown(false);
    if (executor.use_count() == 1 && has_outstanding_work(ex.gate.get(), executor.get()))
      std::thread([e = std::move(executor)]() mutable { e.reset(); }).detach();
  } catch (...) {
    // No thread for it (or a foreign executor's shutdown failed): dropped here.
  }
}
