// qiloop/threads/detail/executor_job.h — what run_in_executor allocates: one
// object that is the future's state, the executor's work, the callable with
// its arguments and the result's staging slot. Internal; the contract is in
// <qiloop/event_loop.h> (run_in_executor) and <qiloop/threads/to_thread.h>.
//
// The round trip: the loop's thread creates the job and submits it → a
// worker runs the callable and stages its outcome in the job → the worker
// sends the job back with call_soon_threadsafe → on the loop's thread the
// outcome moves into the future, whose done callbacks wake the awaiter. The
// job's gate (one per loop) is how a worker learns that the loop was closed
// meanwhile: it then drops the job where it is instead of sending it to a
// dead loop.
#pragma once

#include <qiloop/detail/call_graph.h>
#include <qiloop/detail/future_state.h>
#include <qiloop/export.h>
#include <qiloop/future.h>
#include <qiloop/threads/executor.h>

#include <atomic>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

class QiEventLoop;

namespace qi::detail {

struct ExecutorGate;

// The first parameter of run_in_executor: the executor (null: the loop's
// default one), and where the call was written, taken by the default
// argument of this implicit conversion (variadic functions have no room
// for a defaulted parameter of their own).
struct SubmitTo {
  SubmitTo(Executor* e, SiteRecord s = QILOOP_DETAIL_SITE_HERE) noexcept : executor(e), site(s) {}
  template <class E>
    requires std::is_base_of_v<Executor, E>
  SubmitTo(const std::shared_ptr<E>& e, SiteRecord s = QILOOP_DETAIL_SITE_HERE) noexcept
      : executor(e.get()), site(s) {}
  Executor* executor;
  SiteRecord site;
};

// The type-independent half of a job. Invariant: from submit until its
// completion is sent (or dropped), the executor's side holds one reference
// to the future and the job is linked in its gate's list of outstanding
// jobs; phase_ moves forward only: queued → running → finished, or queued →
// cancelled (its future was cancelled before a worker took it) or queued →
// discarded (the executor will never run it).
class QILOOP_EXPORT ExecutorJobBase : public ExecutorWork {
 public:
  enum Phase : uint8_t { kQueued, kRunning, kFinished, kCancelled, kDiscarded };

  void run() noexcept final;
  void discard() noexcept final;

  Phase phase() const noexcept { return static_cast<Phase>(phase_.load(std::memory_order_acquire)); }
  // "file:line (function)" of the submission.
  std::string site_text() const;

  // The gate's list of outstanding jobs (under the gate's mutex).
  ExecutorJobBase* gate_prev = nullptr;
  ExecutorJobBase* gate_next = nullptr;
  Executor* executor = nullptr;  // where it was submitted (identity only)

 protected:
  explicit ExecutorJobBase(SiteRecord site) noexcept : site_(site) {}
  ~ExecutorJobBase() = default;

  // Takes the executor's reference, links the job in the loop's gate and
  // hands it to `executor` (null: the default one, created on first use).
  // Loop thread. Throws qi::RuntimeError on a closed loop or after
  // shutdown_default_executor (for the default one), and what the
  // executor's submit throws — the job is then the caller's alone again.
  void submit_to(QiEventLoop& loop, Executor* executor, const char* api);
  // After the future was cancelled: a job no worker took yet will not run.
  void cancel_queued() noexcept;
  // The future's record of where the work was submitted, for an exception
  // thrown by it (qi::detail::EscapeRecord with the site and its note).
  std::shared_ptr<const EscapeRecord> origin_record(std::exception_ptr e) const;
  std::string describe_job() const { return "Future of work submitted at " + site_text(); }

  // Typed (ExecutorJob): runs the callable on the worker and stages its
  // outcome; finishes the future from the staged outcome (loop thread).
  virtual void invoke() noexcept = 0;
  virtual void complete() noexcept = 0;
  virtual FutureStateBase& future_state() noexcept = 0;

  SiteRecord site_;

 private:
  struct Completion;
  void send_back() noexcept;

  std::shared_ptr<ExecutorGate> gate_;
  std::atomic<uint8_t> phase_{kQueued};
};

// A Future<R> handle on a job's state (Future's adopting constructor is
// for its derived classes).
template <class R>
class JobFuture : public Future<R> {
 public:
  explicit JobFuture(typename Future<R>::state_type s) noexcept : Future<R>(std::move(s)) {}
};

// The callable's result type: std::thread's rule (decay-copies, invoked as
// rvalues).
template <class F, class... Args>
using executor_result_t = std::invoke_result_t<std::decay_t<F>, std::decay_t<Args>...>;

template <class R>
struct Staged {
  std::optional<R> value;
  template <class Call>
  void run(Call&& call) { value.emplace(std::forward<Call>(call)()); }
  void finish(FutureState<R>& f) { f.finish_with_value(std::move(*value)); }
  void reset() noexcept { value.reset(); }
};
template <>
struct Staged<void> {
  template <class Call>
  void run(Call&& call) { std::forward<Call>(call)(); }
  void finish(FutureState<void>& f) { f.finish_with_value(); }
  void reset() noexcept {}
};

// Fn and Args are decayed types. R is what Fn returns.
template <class R, class Fn, class... Args>
class ExecutorJob final : public FutureState<R>, public ExecutorJobBase {
 public:
  template <class F, class... A>
  ExecutorJob(QiEventLoop& loop, SiteRecord site, F&& f, A&&... args)
      : FutureState<R>(loop), ExecutorJobBase(site), call_(std::in_place, std::forward<F>(f), std::forward<A>(args)...) {}

  void submit(QiEventLoop& loop, Executor* executor, const char* api) { submit_to(loop, executor, api); }

  // A cancelled future also withdraws a job that has not started
  // (asyncio's _chain_future cancels the concurrent future).
  bool cancel(std::string msg) override {
    if (!FutureStateBase::cancel(std::move(msg))) return false;
    cancel_queued();
    return true;
  }
  std::string describe() const override { return describe_job(); }

 private:
  void invoke() noexcept override {
    try {
      staged_.run([this]() -> R { return std::apply([](Fn& f, Args&... a) -> R {
                                    return std::invoke(std::move(f), std::move(a)...);
                                  }, *call_); });
    } catch (...) {
      error_ = std::current_exception();
    }
    // As std::thread: the decay-copies go on the thread that used them.
    call_.reset();
  }
  void complete() noexcept override {
    if (this->done()) {
      staged_.reset();  // cancelled meanwhile: the result is dropped here
      error_ = nullptr;
      return;
    }
    if (phase() == kDiscarded) {
      this->mark_cancelled("the executor was shut down before the work started");
      return;
    }
    if (error_) {
      try {
        this->rare().escape = origin_record(error_);
      } catch (...) {
        // Out of memory: the exception goes on without its origin.
      }
      this->finish_with_exception(std::move(error_));
      return;
    }
    try {
      staged_.finish(*this);
    } catch (...) {
      // The result's move into the future threw (this runs in a noexcept
      // loop callback): the awaiter gets that exception instead.
      if (!this->done()) this->finish_with_exception(std::current_exception());
    }
    staged_.reset();
  }
  FutureStateBase& future_state() noexcept override { return *this; }

  std::optional<std::tuple<Fn, Args...>> call_;
  Staged<R> staged_;
  std::exception_ptr error_;
};

}  // namespace qi::detail
