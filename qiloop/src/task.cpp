// task.cpp — asyncio's Task.__step / __wakeup for C++ coroutines.
//
// Invariant: a pending task is registered with its loop and holds a
// reference to itself (self_), so it lives until it finishes or the loop
// destroys it; at most one of {a scheduled step, a done callback on
// fut_waiter_, a sleep timer} will resume it, and resume_ is the innermost
// suspended coroutine that the next step resumes.
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

TaskCore::TaskCore(QiEventLoop& loop, std::coroutine_handle<> root, std::string name)
    : loop_(&loop),
      root_(root),
      resume_(root),
      number_(next_task_number()),
      name_(name.empty() ? nullptr : std::make_unique<std::string>(std::move(name))) {}

std::string TaskCore::name() const { return name_ ? *name_ : "Task-" + std::to_string(number_); }

void TaskCore::set_name(std::string name) { name_ = std::make_unique<std::string>(std::move(name)); }

TaskCore::~TaskCore() { destroy_root(); }

TaskCore* TaskCore::current() noexcept { return t_current_task; }

void TaskCore::start(bool eager) {
  self_ = fut_->shared_from_this();
  loop_->register_task(this);
  if (eager)
    step();
  else
    schedule_step();
}

void TaskCore::schedule_step() {
  loop_->call_soon([this] { step(); });
}

// What woke the task is spent; a timer is cancelled in case something else
// woke it first. (Inline: it is part of every step.)
inline void TaskCore::clear_wait() noexcept {
  fut_waiter_ = nullptr;
  waiter_callback_ = 0;
  if (sleep_timer_) [[unlikely]] {
    sleep_timer_.cancel();
    sleep_timer_ = TimerHandle();
  }
}

// Unhooks a wait that will not be resumed through (its frames are going, or
// the task finished without resuming it).
void TaskCore::drop_wait() noexcept {
  if (fut_waiter_ && waiter_callback_) fut_waiter_->remove_done_callback(waiter_callback_);
  clear_wait();
  resume_ = nullptr;
}

void TaskCore::step() noexcept {
  if (fut_->done()) return;
  clear_wait();
  cancel_in_flight_ = false;  // a request from now on must reach what it awaits next
  if (!started_ && must_cancel_) {
    // Cancelled before its first step: the coroutine never runs.
    fut_->mark_cancelled(must_cancel_msg_);
    release_self();
    return;
  }
  started_ = true;
  TaskCore* outer = std::exchange(t_current_task, this);
  std::coroutine_handle<> h = std::exchange(resume_, nullptr);
  h.resume();  // exceptions stay in the coroutine's promise
  t_current_task = outer;
  if (root_.done()) complete();
}

void TaskCore::complete() noexcept {
  if (resume_) [[unlikely]] {
    // A coroutine the task never awaited (an eager one of another library)
    // registered a wait in this step: nothing will resume it now.
    drop_wait();
    ExceptionContext ctx;
    ctx.message = fut_->describe() +
                  " finished while a coroutine it did not await still waited on a future; that coroutine will "
                  "never resume: co_await every coroutine started inside a task before the task returns";
    ctx.task = TaskRef(fut_->shared_from_this());
    loop_->call_exception_handler(ctx);
  }
  try {
    complete_from_root();
  } catch (...) {
    // Moving the result out threw (T's move constructor), or scheduling the
    // done callbacks did: report it, and never leave the task pending.
    ExceptionContext ctx;
    ctx.message = "error while completing " + fut_->describe();
    ctx.exception = std::current_exception();
    loop_->call_exception_handler(ctx);
    if (!fut_->done()) {
      try {
        fut_->finish_with_exception(ctx.exception);
      } catch (...) {
      }
    }
  }
  destroy_root();
  release_self();
}

void TaskCore::release_self() noexcept {
  loop_->unregister_task(this);
  auto self = std::move(self_);  // may destroy *this when it goes
}

bool TaskCore::request_cancel(std::string msg) {
  fut_->check_thread_first("cancel");  // before reading the task
  if (fut_->done()) return false;
  fut_->check_call("cancel", true);  // before anything changes
  cancel_chain(msg);
  return true;
}

// asyncio's cancel() recurses into the awaited task's cancel(): here the
// chain is walked in a loop, so that a long chain does not grow the stack.
void TaskCore::cancel_chain(const std::string& msg) {
  for (TaskCore* t = this; t;) t = t->cancel_one(msg);
}

// The task awaited by this one, or null (it awaits a plain future, sleeps,
// or runs). Cancelling is rare enough for a dynamic_cast.
TaskCore* TaskCore::awaited_task() const noexcept { return dynamic_cast<TaskCore*>(fut_waiter_); }

TaskCore* TaskCore::cancel_one(const std::string& msg) {
  ++num_cancels_;
  cancel_in_flight_ = true;
  if (TaskCore* awaited = awaited_task()) {
    // Cancelling a pending task succeeds (its cancel() would return true),
    // so its done callback wakes this one with the CancelledError. One that
    // a request already reached since it last ran is not cancelled again:
    // it may await this one (a cycle, which only shutdown's report and
    // close() can end), and walking on would make cancelling every task of
    // a chain quadratic. This task then hears of it at its resumption, as
    // when what it awaits is already done.
    if (!awaited->fut_->done()) {
      if (!awaited->cancel_in_flight_) return awaited;
      // Still, asyncio's inner cancel() would count there: should that task
      // take its own request back (uncancel(), as a timeout helper does) and
      // run on, this one lands then, instead of leaving this task waiting
      // for it to finish by itself.
      if (!awaited->held_cancel_) awaited->held_cancel_ = std::make_unique<std::string>(msg);
    }
  } else if (fut_waiter_ && fut_waiter_->cancel(msg)) {
    // The waiter's done callback wakes us; its CancelledError carries msg.
    return nullptr;
  }
  if (sleep_timer_) {
    // Like cancelling the future of asyncio's sleep: this error is delivered
    // even if uncancel() takes the request back before the task resumes.
    sleep_timer_.cancel();
    sleep_timer_ = TimerHandle();
    sleep_interrupted_ = true;
    sleep_interrupt_msg_ = msg;
    schedule_step();
    return nullptr;
  }
  must_cancel_ = true;
  must_cancel_msg_ = msg;
  return nullptr;
}

int TaskCore::uncancel() noexcept {
  if (num_cancels_ > 0) --num_cancels_;
  if (num_cancels_ == 0) {
    must_cancel_ = cancel_in_flight_ = false;
    if (held_cancel_) [[unlikely]]
      land_held_cancel();
  }
  return num_cancels_;
}

// The request an awaiter's cancel left here (cancel_one) becomes this task's
// own now that its earlier ones were taken back: delivered like a cancel().
void TaskCore::land_held_cancel() noexcept {
  const std::unique_ptr<std::string> msg = std::move(held_cancel_);
  try {
    cancel_chain(*msg);
  } catch (...) {
    // Cancelling what it awaits failed (out of memory): it lands at the
    // next resumption instead.
    if (num_cancels_ == 0) num_cancels_ = 1;
    must_cancel_ = true;
    must_cancel_msg_ = *msg;
  }
}

void TaskCore::check_must_cancel(bool awaited_cancelled) {
  if (sleep_interrupted_) {
    sleep_interrupted_ = false;
    must_cancel_ = false;  // a later cancel() while this one was in flight: one error, the first message
    throw CancelledError(std::exchange(sleep_interrupt_msg_, {}));
  }
  if (!must_cancel_) return;
  must_cancel_ = false;
  // What it awaited was cancelled: its own CancelledError (with the first
  // message) is delivered next; asyncio keeps that one too.
  if (awaited_cancelled) return;
  throw CancelledError(std::exchange(must_cancel_msg_, {}));
}

// A task has one wait slot: a second wait in one step would silently replace
// the first, whose wake-up would then resume the wrong coroutine early.
void TaskCore::refuse_second_wait(const char* what) const {
  throw RuntimeError(std::string(what) + ": " + fut_->describe() +
                     " already waits on something in this step (a coroutine it did not await, e.g. an eager "
                     "coroutine of another library, awaited a qi future); a task waits for one thing at a time: "
                     "co_await that coroutine first, or run it as a task of its own (create_task)");
}

void TaskCore::wait_on(FutureStateBase& fut, std::coroutine_handle<> h) {
  if (fut.loop() != loop_)
    throw RuntimeError(
        "co_await: the future belongs to another event loop; await it from a task of that loop, or hand the "
        "result over with call_soon_threadsafe");
  if (&fut == fut_) throw RuntimeError("co_await: a task cannot await itself");
  check_no_wait("co_await");
  // Hooked only once nothing can throw: a failed await leaves no wake-up behind.
  const uint64_t id = fut.add_done_callback([this](FutureStateBase&) { step(); });
  resume_ = h;
  fut_waiter_ = &fut;
  waiter_callback_ = id;
  if (must_cancel_) {
    try {
      if (fut.cancel(must_cancel_msg_)) must_cancel_ = false;
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
  if (d <= std::chrono::steady_clock::duration::zero() || must_cancel_)
    schedule_step();  // sleep(0): exactly one iteration
  else
    sleep_timer_ = loop_->call_later(d, [this] { step(); });
}

void TaskCore::destroy_pending() noexcept {
  drop_wait();
  ExceptionContext ctx;
  ctx.message = "Task was destroyed but it is pending!";
  ctx.task = TaskRef(fut_->shared_from_this());
  loop_->call_exception_handler(ctx);
  // The frames go first (their destructors may look at the task), then the
  // result slot is marked cancelled so awaiting handles do not hang.
  destroy_root();
  fut_->mark_cancelled("the event loop was closed");
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
  return t ? TaskRef(t->future().shared_from_this()) : TaskRef();
}

}  // namespace qi
