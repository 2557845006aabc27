// task.cpp — asyncio's Task.__step / __wakeup for C++ coroutines.
//
// Invariant (see detail/task_core.h): a pending task is registered with its
// loop and holds a reference to itself, so it lives until it finishes or the
// loop destroys it; at most one of {a scheduled step, its wake-up among the
// done callbacks of fut_waiter_, a sleep timer} will resume it, and resume_
// is the innermost suspended coroutine that the next step resumes.
#include <qiloop/event_loop.h>
#include <qiloop/task.h>

#include "loop_impl.h"

#include <atomic>

namespace qi::detail {

namespace {

__attribute__((tls_model("initial-exec"))) thread_local TaskCore* t_current_task = nullptr;

// Default names "Task-N": each thread takes numbers from the shared counter
// a block at a time, so creating a task costs no locked instruction.
constexpr uint64_t kNameBlock = 1024;
std::atomic<uint64_t> g_task_counter{0};
__attribute__((tls_model("initial-exec"))) thread_local uint64_t t_next_number = 0;
__attribute__((tls_model("initial-exec"))) thread_local uint64_t t_block_end = 0;

uint64_t next_task_number() noexcept {
  if (t_next_number == t_block_end) {
    t_next_number = g_task_counter.fetch_add(kNameBlock, std::memory_order_relaxed) + 1;
    t_block_end = t_next_number + kNameBlock;
  }
  return t_next_number++;
}


TaskCore& require_current(const char* what) {
  TaskCore* t = t_current_task;
  if (!t)
    throw RuntimeError(std::string(what) +
                       ": no task is running; await it from a coroutine run by a task (loop.create_task, "
                       "run_task, run_until_complete or qi::run)");
  return *t;
}

}  // namespace

// What the memory benchmark (bench_coro, scenario 4) holds a suspended task
// to: one heap chunk of at most 128 bytes (120 requested, 8 of malloc's
// header) beyond its coroutine frame.
static_assert(sizeof(void*) != 8 || sizeof(TaskState<void>) <= 120,
              "a task's state outgrew its 128-byte heap chunk: move what is rarely used to RareState");

TaskCore::TaskCore(QiEventLoop& loop, std::coroutine_handle<> root, std::string name)
    : FutureStateBase(loop), root_(root), resume_(root), number_(next_task_number()) {
  set_is_task();
  if (!name.empty()) rare().name = std::move(name);
}

std::string TaskCore::name() const {
  const RareState* r = rare_if();
  return r && r->name ? *r->name : "Task-" + std::to_string(number_);
}

void TaskCore::set_name(std::string name) { rare().name = std::move(name); }

TaskCore::~TaskCore() { destroy_root(); }

TaskCore* TaskCore::current() noexcept { return t_current_task; }

void TaskCore::set_message(std::string RareState::*field, const std::string& msg) {
  if (!msg.empty() || rare_if()) rare().*field = msg;
}

void TaskCore::start(bool eager) {
  retain();  // the loop's, while pending (release_self)
  loop_ref().register_task(this);
  if (eager)
    step();
  else
    schedule_step();
}

void TaskCore::schedule_step() {
  loop_ref().call_soon([this] { step(); });
}

void wake_task(TaskCore& t) noexcept { t.step(); }

// What woke the task is spent; a timer is cancelled in case something else
// woke it first. (Inline: it is part of every step.)
inline void TaskCore::clear_wait() noexcept {
  if (!fut_waiter_ && sleep_node_) [[unlikely]] {
    CallbackNode* n = std::exchange(sleep_node_, nullptr);
    cancel_node(n);
    release_node(n);
  }
  fut_waiter_ = nullptr;
  waiter_callback_ = 0;
}

// Unhooks a wait that will not be resumed through (its frames are going, or
// the task finished without resuming it).
void TaskCore::drop_wait() noexcept {
  if (fut_waiter_ && waiter_callback_) fut_waiter_->remove_done_callback(waiter_callback_);
  clear_wait();
  resume_ = nullptr;
}

void TaskCore::step() noexcept {
  if (task_flags_ & kStaleWake) [[unlikely]] {
    // The wake-up cancel_now went ahead of: it is spent, and so is the
    // reference that kept the task alive for it.
    if (QiEventLoop* l = loop()) l->drop_stale_wake(this);
    forget_stale_wake();
    return;
  }
  if (done()) return;
  clear_wait();
  set_flag(kCancelInFlight, false);  // a request from now on must reach what it awaits next
  if (!flag(kStarted) && must_cancel()) {
    // Cancelled before its first step: the coroutine never runs.
    mark_cancelled(must_cancel_msg());
    release_self();
    return;
  }
  set_flag(kStarted, true);
  TaskCore* outer = std::exchange(t_current_task, this);
  std::coroutine_handle<> h = std::exchange(resume_, nullptr);
  set_flag(kRunning, true);
  h.resume();  // exceptions stay in the coroutine's promise
  set_flag(kRunning, false);
  t_current_task = outer;
  if (root_.done()) complete();
}

void TaskCore::complete() noexcept {
  if (resume_) [[unlikely]] {
    // A coroutine the task never awaited (an eager one of another library)
    // registered a wait in this step: nothing will resume it now.
    drop_wait();
    ExceptionContext ctx;
    ctx.message = describe() +
                  " finished while a coroutine it did not await still waited on a future; that coroutine will "
                  "never resume: co_await every coroutine started inside a task before the task returns";
    ctx.task = TaskRef(this);
    loop_ref().call_exception_handler(ctx);
  }
  try {
    complete_from_root();
  } catch (...) {
    // Moving the result out threw (T's move constructor), or scheduling the
    // done callbacks did: report it, and never leave the task pending.
    ExceptionContext ctx;
    ctx.message = "error while completing " + describe();
    ctx.exception = std::current_exception();
    loop_ref().call_exception_handler(ctx);
    if (!done()) {
      try {
        finish_with_exception(ctx.exception);
      } catch (...) {
      }
    }
  }
  destroy_root();
  release_self();
}

void TaskCore::release_self() noexcept {
  loop_ref().unregister_task(this);
  release();  // may destroy *this
}

bool TaskCore::cancel(std::string msg) {
  check_thread_first("cancel");  // before reading the task
  if (done()) return false;
  check_call("cancel", true);  // before anything changes
  cancel_chain(msg);
  return true;
}

bool TaskCore::cancel_now(std::string msg) {
  check_thread_first("cancel");
  if (done()) return false;
  check_call("cancel", true);
  if (flag(kRunning) || (flag(kStarted) && !resume_) || flag(kStaleWake)) {
    cancel_chain(msg);  // lands at its next co_await / resumption
    return true;
  }
  // Woken: a step is already scheduled (its first, sleep(0)'s, an interrupted
  // sleep's) or what it awaits is done (its wake-up is among that future's
  // scheduled callbacks). Neither can be taken back, so the step below goes
  // ahead of it and step() drops it when it comes.
  const bool woken = !flag(kStarted) || (fut_waiter_ ? fut_waiter_->done() : !sleep_node_);
  if (!woken) {
    // Unhooked first, so that the step below is the task's only resumption.
    if (fut_waiter_) {
      fut_waiter_->remove_done_callback(std::exchange(waiter_callback_, 0));
    } else {
      clear_wait();  // the sleep's timer
    }
  }
  cancel_chain(msg);
  // The step throws even when what it awaited is a task still unwinding.
  set_message(&RareState::must_cancel_msg, msg);
  set_flag(kMustCancel, true);
  retain();  // step() may finish the task; woken: also the dropped wake-up's
  step();
  if (done()) destroy_root();  // also the frame of a task that never started
  if (woken) {
    set_flag(kStaleWake, true);
    try {
      loop_ref().hold_stale_wake(this);
    } catch (...) {
      // Out of memory: the reference stays until the wake-up comes (a leak
      // only if close() drops it first).
    }
  } else {
    release();
  }
  return true;
}

void TaskCore::forget_stale_wake() noexcept {
  set_flag(kStaleWake, false);
  release();  // may destroy *this
}

// asyncio's cancel() recurses into the awaited task's cancel(): here the
// chain is walked in a loop, so that a long chain does not grow the stack.
void TaskCore::cancel_chain(const std::string& msg) {
  for (TaskCore* t = this; t;) t = t->cancel_one(msg);
}

// The task awaited by this one, or null (it awaits a plain future, sleeps,
// or runs). Cancelling is rare enough for a dynamic_cast.
TaskCore* TaskCore::awaited_task() const noexcept {
  return fut_waiter_ && fut_waiter_->is_task() ? static_cast<TaskCore*>(fut_waiter_) : nullptr;
}

TaskCore* TaskCore::cancel_one(const std::string& msg) {
  ++num_cancels_;
  set_flag(kCancelInFlight, true);
  if (TaskCore* awaited = awaited_task()) {
    // Cancelling a pending task succeeds (its cancel() would return true),
    // so its done callback wakes this one with the CancelledError. One that
    // a request already reached since it last ran is not cancelled again:
    // it may await this one (a cycle, which only shutdown's report and
    // close() can end), and walking on would make cancelling every task of
    // a chain quadratic. This task then hears of it at its resumption, as
    // when what it awaits is already done.
    if (!awaited->done()) {
      if (!awaited->flag(kCancelInFlight)) return awaited;
      // Still, asyncio's inner cancel() would count there: should that task
      // take its own request back (uncancel(), as a timeout helper does) and
      // run on, this one lands then, instead of leaving this task waiting
      // for it to finish by itself.
      RareState& r = awaited->rare();
      if (!r.held_cancel) r.held_cancel = msg;
    }
  } else if (fut_waiter_ && fut_waiter_->cancel(msg)) {
    // The waiter's done callback wakes us; its CancelledError carries msg.
    return nullptr;
  }
  if (!fut_waiter_ && sleep_node_) {
    // Like cancelling the future of asyncio's sleep: this error is delivered
    // even if uncancel() takes the request back before the task resumes.
    set_message(&RareState::sleep_interrupt_msg, msg);
    clear_wait();
    set_flag(kSleepInterrupted, true);
    schedule_step();
    return nullptr;
  }
  set_message(&RareState::must_cancel_msg, msg);
  set_flag(kMustCancel, true);
  return nullptr;
}

int TaskCore::uncancel() noexcept {
  if (num_cancels_ > 0) --num_cancels_;
  if (num_cancels_ == 0) {
    set_flag(kMustCancel | kCancelInFlight, false);
    if (rare_if() && rare_if()->held_cancel) [[unlikely]]
      land_held_cancel();
  }
  return num_cancels_;
}

// The request an awaiter's cancel left here (cancel_one) becomes this task's
// own now that its earlier ones were taken back: delivered like a cancel().
void TaskCore::land_held_cancel() noexcept {
  RareState& r = *rare_if();
  const std::string msg = std::move(*r.held_cancel);
  r.held_cancel.reset();
  try {
    cancel_chain(msg);
  } catch (...) {
    // Cancelling what it awaits failed (out of memory): it lands at the
    // next resumption instead.
    if (num_cancels_ == 0) num_cancels_ = 1;
    set_flag(kMustCancel, true);
    r.must_cancel_msg = msg;
  }
}

void TaskCore::check_must_cancel(bool awaited_cancelled) {
  if (flag(kSleepInterrupted)) {
    // A later cancel() while this one was in flight: one error, the first message.
    set_flag(kSleepInterrupted | kMustCancel, false);
    RareState* r = rare_if();
    throw CancelledError(r ? std::exchange(r->sleep_interrupt_msg, {}) : std::string());
  }
  if (!must_cancel()) return;
  set_flag(kMustCancel, false);
  // What it awaited was cancelled: its own CancelledError (with the first
  // message) is delivered next; asyncio keeps that one too.
  if (awaited_cancelled) return;
  RareState* r = rare_if();
  throw CancelledError(r ? std::exchange(r->must_cancel_msg, {}) : std::string());
}

// A task has one wait slot: a second wait in one step would silently replace
// the first, whose wake-up would then resume the wrong coroutine early.
void TaskCore::refuse_second_wait(const char* what) const {
  throw RuntimeError(std::string(what) + ": " + describe() +
                     " already waits on something in this step (a coroutine it did not await, e.g. an eager "
                     "coroutine of another library, awaited a qi future); a task waits for one thing at a time: "
                     "co_await that coroutine first, or run it as a task of its own (create_task)");
}

void TaskCore::wait_on(FutureStateBase& fut, std::coroutine_handle<> h) {
  if (!fut.loop()) fut.throw_loop_destroyed("co_await");
  if (fut.loop() != loop())
    throw RuntimeError(
        "co_await: the future belongs to another event loop; await it from a task of that loop, or hand the "
        "result over with call_soon_threadsafe");
  if (&fut == this) throw RuntimeError("co_await: a task cannot await itself");
  check_no_wait("co_await");
  // Hooked only once nothing can throw: a failed await leaves no wake-up behind.
  const uint64_t id = fut.add_waker(*this);
  resume_ = h;
  fut_waiter_ = &fut;
  waiter_callback_ = id;
  if (must_cancel()) {
    try {
      if (fut.cancel(must_cancel_msg())) set_flag(kMustCancel, false);
    } catch (...) {
      fut.remove_done_callback(id);
      clear_wait();
      throw;
    }
  }
}

void TaskCore::wait_for_time(std::chrono::steady_clock::duration d, std::coroutine_handle<> h) {
  check_no_wait("qi::sleep");
  resume_ = h;
  if (d <= std::chrono::steady_clock::duration::zero() || must_cancel())
    schedule_step();  // sleep(0): exactly one iteration
  else
    sleep_node_ = loop_ref().call_later(d, [this] { step(); }).release();  // a node from the loop's pool
}

void TaskCore::destroy_pending() noexcept {
  drop_wait();
  ExceptionContext ctx;
  ctx.message = "Task was destroyed but it is pending!";
  ctx.task = TaskRef(this);
  loop_ref().call_exception_handler(ctx);
  // The frames go first (their destructors may look at the task), then the
  // result slot is marked cancelled so awaiting handles do not hang.
  destroy_root();
  mark_cancelled("the event loop was closed");
  release_self();
}

void after_resume(bool awaited_cancelled) {
  if (TaskCore* t = t_current_task) t->check_must_cancel(awaited_cancelled);
}

void await_future(FutureStateBase& fut, std::coroutine_handle<> h) { require_current("co_await")
    .wait_on(fut, h); }

void SleepAwaiter::await_suspend(std::coroutine_handle<> h) const {
  require_current("qi::sleep").wait_for_time(delay, h);
}

}  // namespace qi::detail

namespace qi {

TaskRef current_task() {
  detail::TaskCore* t = detail::TaskCore::current();
  return TaskRef(t);
}

}  // namespace qi
