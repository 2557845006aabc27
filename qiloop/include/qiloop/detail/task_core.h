// qiloop/detail/task_core.h — the type-independent half of a task (asyncio's
// Task.__step / __wakeup), and typed access to any future's result. Internal;
// the contract is in <qiloop/task.h>.
#pragma once

#include <qiloop/detail/future_state.h>
#include <qiloop/export.h>

#include <chrono>
#include <coroutine>
#include <cstdint>
#include <string>
#include <utility>

class QiEventLoop;

namespace qi::detail {

struct CallbackNode;
struct PromiseBase;
struct EscapeRecord;

// A task is a future (its state derives from FutureStateBase) that steps a
// coroutine. Invariant: a pending task is registered with its loop and holds
// one reference to itself, so it lives until it finishes or the loop
// destroys it; at most one of {a scheduled step, its wake-up among the done
// callbacks of fut_waiter_, a sleep timer} will resume it, and resume_ is the
// innermost suspended coroutine that the next step resumes.
//
// Layout (x86-64): FutureStateBase's 56 bytes, then the task's flags, count
// and pointers: TaskState<void> is 120 bytes, one 128-byte heap chunk
// (src/task.cpp asserts the bound). What is rarely used (messages, an
// explicit name, a held request) lives in RareState.
class QILOOP_EXPORT TaskCore : public FutureStateBase {
 public:
  TaskCore(QiEventLoop& loop, std::coroutine_handle<> root, std::string name);
  ~TaskCore() override;

  // Registers with the loop and keeps the task alive while pending; then
  // either schedules the first step (create_task) or runs it now (run_task).
  void start(bool eager);
  // asyncio's Task.cancel(). A task awaiting a task cancels that one too,
  // and so on down the chain, in a loop (a chain may be as long as memory
  // allows). The walk stops at a task a cancel request already reached since
  // its last step: its wake-up is on its way, and that cuts cycles of tasks
  // awaiting each other (and keeps cancelling every task of a chain linear).
  bool cancel(std::string msg) override;
  // cancel(), then the step that delivers it, now, when the task is suspended
  // and no step of it is on the stack: qi::CancelledError is thrown at its
  // co_await before this returns, so its frame unwinds (or the coroutine
  // catches it and awaits again) inside the caller. Used where what the
  // coroutine refers to is going away (a QObject a task is bound to,
  // <qiloop/qt/bound_task.h>): no later resumption may see it. What it awaited
  // is cancelled as by cancel(); a task awaiting a task does not wait for that
  // one to finish. A wake-up already scheduled for it is dropped when it comes
  // (the task holds a reference until then). A task that is running, or
  // suspended by a foreign awaiter, or stepped ahead of a wake-up that has not
  // come yet, gets cancel(): it lands at its next co_await / resumption. A task
  // cancelled before its first step never runs, and its frame goes now.
  // Returns false when the task is done. Loop thread.
  bool cancel_now(std::string msg);
  // The reference cancel_now held for a dropped wake-up goes (its wake-up
  // came, or close() dropped it unrun). May destroy *this.
  void forget_stale_wake() noexcept;
  int cancelling() const noexcept { return num_cancels_; }
  int uncancel() noexcept;
  // "Task-N" unless set_name() or create_task gave one (built on demand:
  // formatting a name per task would cost more than creating the task).
  std::string name() const;
  void set_name(std::string name);
  std::string describe() const override { return "Task '" + name() + "'"; }
  FutureStateBase& future() noexcept { return *this; }

  // The task running on this thread, or null.
  static TaskCore* current() noexcept;

  // --- Used by awaiters -------------------------------------------------------
  // Register what the task waits for until its next step: one thing at a
  // time. Throw qi::RuntimeError when a wait is already registered in this
  // step (a coroutine the task's chain did not await, e.g. an eager one of
  // another library, awaited a qi future first); nothing is registered then.
  void wait_on(FutureStateBase& fut, std::coroutine_handle<> h);
  void wait_for_time(std::chrono::steady_clock::duration d, std::coroutine_handle<> h);
  // On resumption: throws qi::CancelledError when a cancel request cut a
  // sleep short, or could not be delivered through what the task awaited.
  void check_must_cancel(bool awaited_cancelled);

  // --- Used by the await graph (src/call_graph.cpp) ---------------------------
  // The root coroutine's promise: the top of the chain of Coros the task is
  // suspended in (linked by PromiseBase::awaited); null once it finished.
  virtual PromiseBase* root_promise() const noexcept = 0;
  // The future (or task) the task waits for; null while it sleeps or runs.
  FutureStateBase* awaiting() const noexcept { return fut_waiter_; }
  bool started() const noexcept { return flag(kStarted); }
  // Where the latest exception left the task's coroutines (see EscapeRecord).
  const EscapeRecord* escape() const noexcept { return rare_if() ? rare_if()->escape.get() : nullptr; }
  void set_escape(std::shared_ptr<const EscapeRecord> e) { rare().escape = std::move(e); }

  // --- Used by the loop ---------------------------------------------------------
  // close(): destroys the frames of a task that is still pending.
  void destroy_pending() noexcept;
  TaskCore* next_in_loop = nullptr;
  TaskCore* prev_in_loop = nullptr;

 protected:
  // Moves the finished root coroutine's outcome into the future.
  virtual void complete_from_root() = 0;
  // Destroys the coroutine frames, if still there (before the result slot goes).
  void destroy_root() noexcept {
    if (root_) std::exchange(root_, nullptr).destroy();
  }
  std::coroutine_handle<> root() const noexcept { return root_; }
  bool must_cancel() const noexcept { return task_flags_ & kMustCancel; }
  std::string must_cancel_msg() const { return rare_if() ? rare_if()->must_cancel_msg : std::string(); }

 private:
  friend void wake_task(TaskCore& t) noexcept;

  static constexpr uint8_t kStarted = 1;
  static constexpr uint8_t kCancelInFlight = 2;    // a cancel request reached it since its last step
  static constexpr uint8_t kSleepInterrupted = 4;  // cancel() cut a sleep short: deliver its error whatever follows
  static constexpr uint8_t kMustCancel = 8;        // a request waits for the next resumption
  static constexpr uint8_t kRunning = 16;          // a step of it is on the stack
  static constexpr uint8_t kStaleWake = 32;        // cancel_now stepped it ahead of a scheduled wake-up
  bool flag(uint8_t f) const noexcept { return task_flags_ & f; }
  void set_flag(uint8_t f, bool on) noexcept { task_flags_ = on ? (task_flags_ | f) : (task_flags_ & ~f); }
  // Stores a message in RareState, allocating it only for a non-empty one.
  void set_message(std::string RareState::*field, const std::string& msg);

  void schedule_step();
  void step() noexcept;
  void complete() noexcept;
  void check_no_wait(const char* what) const {
    if (resume_) [[unlikely]]
      refuse_second_wait(what);
  }
  [[noreturn]] void refuse_second_wait(const char* what) const;
  void clear_wait() noexcept;
  void drop_wait() noexcept;
  // Cancels this task and, link by link, what it awaits (a loop, not recursion).
  void cancel_chain(const std::string& msg);
  // One link of that walk: the task it must cancel next, if any.
  TaskCore* cancel_one(const std::string& msg);
  TaskCore* awaited_task() const noexcept;
  void release_self() noexcept;
  void land_held_cancel() noexcept;
  QiEventLoop& loop_ref() const noexcept { return *loop(); }  // a pending task's loop is alive

  uint8_t task_flags_ = 0;
  int num_cancels_ = 0;
  std::coroutine_handle<> root_;
  std::coroutine_handle<> resume_;  // where the next step resumes
  // What the task awaits. Raw: the awaiter in the suspended frame owns it
  // until the task resumes (and destroy_pending unhooks before the frames go).
  FutureStateBase* fut_waiter_ = nullptr;
  union {
    uint64_t waiter_callback_ = 0;  // while fut_waiter_ is set: its wake-up's id
    CallbackNode* sleep_node_;      // while sleeping (fut_waiter_ null): the timer, one reference held
  };
  uint64_t number_;  // N of the default name "Task-N"
};

// The result of any future, typed: a Future<T> handle may name a plain
// future or a task, whose result slots sit at different places (a flag, not
// a virtual call, tells which).
template <class T>
decltype(auto) result_of(FutureStateBase& s) {
  if (s.is_task()) return static_cast<FutureState<T, TaskCore>&>(static_cast<TaskCore&>(s)).result();
  return static_cast<FutureState<T>&>(s).result();
}
template <class T>
T take_result_of(FutureStateBase& s) {
  if (s.is_task()) return static_cast<FutureState<T, TaskCore>&>(static_cast<TaskCore&>(s)).take_result();
  return static_cast<FutureState<T>&>(s).take_result();
}

}  // namespace qi::detail
