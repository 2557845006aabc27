// qiloop/task.h — qi::Task<T> (asyncio.Task), qi::sleep, qi::current_task.
//
//   qi::Task<int> t = loop.create_task(answer());   // starts on a later iteration
//   t.add_done_callback([](qi::Future<int> f) { ... });
//   t.cancel("shutting down");                       // lands at its current co_await
//   int v = co_await t;                              // from another coroutine
//
// A Task drives one Coro<T> on its loop, resuming it through the ready
// queue each time what it awaits is done (asyncio's __step / __wakeup). It
// is a Future<T>: copyable shared handle, awaitable by any number of
// coroutines, done callbacks, result() / exception().
//
// Lifetime: the loop keeps a pending task alive; dropping every Task handle
// does not stop or destroy the coroutine. When the loop is closed with tasks
// still pending, their frames are destroyed and each is reported ("Task was
// destroyed but it is pending!"); QiRunner and qi::run cancel leftovers and
// let them finish first.
//
// Cancellation (asyncio 3.11+): cancel(msg) on a task suspended on a future
// cancels that future, so qi::CancelledError(msg) is thrown at the
// co_await; a task suspended in sleep() is woken at once with it; a task not
// yet started never runs. The coroutine may catch qi::CancelledError and
// return normally: the task then finishes with that result (cancelling()
// still counts the request; uncancel() takes one back). cancel() returns
// false when the task is already done. Cancelling a task that awaits a task
// cancels that one too, down a chain of any length without growing the
// stack, unless a cancel request already reached that one since it last ran
// (it is not cancelled again): tasks awaiting each other in a cycle each
// count the first request once and stay deadlocked (shutdown reports them).
// Such a stopped request is held there: if that task takes its own requests
// back with uncancel() and runs on, the held one lands then (uncancel()
// counts it), so the awaiter is not left waiting for it to finish.
//
// One wait at a time: a task is suspended on one future or sleep. When a
// coroutine the task did not await (an eager coroutine of another library)
// awaits a qi future during a step, the task must co_await that coroutine
// next; awaiting anything else first throws qi::RuntimeError.
//
// An exception escaping the coroutine is stored in the task; if nobody
// retrieves it, it is reported when the last handle goes ("Task exception
// was never retrieved", with the task's name).
//
// Thread-safety: a task belongs to its loop's thread.
#pragma once

#include <qiloop/coro.h>
#include <qiloop/future.h>
#include <qiloop/handle.h>

#include <chrono>
#include <coroutine>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>

class QiEventLoop;

namespace qi {

namespace detail {

// The type-independent half of a task: stepping, waiting, cancelling.
class QILOOP_EXPORT TaskCore {
 public:
  TaskCore(QiEventLoop& loop, std::coroutine_handle<> root, std::string name);
  TaskCore(const TaskCore&) = delete;
  TaskCore& operator=(const TaskCore&) = delete;
  virtual ~TaskCore();

  // Registers with the loop and keeps the task alive while pending; then
  // either schedules the first step (create_task) or runs it now (run_task).
  void start(bool eager);
  // asyncio's Task.cancel(). A task awaiting a task cancels that one too,
  // and so on down the chain, in a loop (a chain may be as long as memory
  // allows). The walk stops at a task a cancel request already reached since
  // its last step: its wake-up is on its way, and that cuts cycles of tasks
  // awaiting each other (and keeps cancelling every task of a chain linear).
  bool request_cancel(std::string msg);
  int cancelling() const noexcept { return num_cancels_; }
  int uncancel() noexcept;
  // "Task-N" unless set_name() or create_task gave one (built on demand:
  // formatting a name per task would cost more than creating the task).
  std::string name() const;
  void set_name(std::string name);
  FutureStateBase& future() noexcept { return *fut_; }

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

  // --- Used by the loop ---------------------------------------------------------
  // close(): destroys the frames of a task that is still pending.
  void destroy_pending() noexcept;
  TaskCore* next_in_loop = nullptr;
  TaskCore* prev_in_loop = nullptr;

 protected:
  // Moves the finished root coroutine's outcome into the future.
  virtual void complete_from_root() = 0;
  // The derived class's future part, set by its constructor (constructed
  // after this base, which therefore cannot take it as an argument).
  void bind_future(FutureStateBase& fut) noexcept { fut_ = &fut; }
  // Destroys the coroutine frames, if still there (before the result slot goes).
  void destroy_root() noexcept {
    if (root_) std::exchange(root_, nullptr).destroy();
  }
  std::coroutine_handle<> root() const noexcept { return root_; }
  // Small fields packed together from here to num_cancels_ (declaration
  // order is layout order): the task stays within the size it had.
  std::string must_cancel_msg_;
  bool must_cancel_ = false;

 private:
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

  bool started_ = false;
  bool cancel_in_flight_ = false;   // a cancel request reached it since its last step
  bool sleep_interrupted_ = false;  // cancel() cut a sleep short: deliver its error whatever follows
  int num_cancels_ = 0;
  FutureStateBase* fut_ = nullptr;
  QiEventLoop* loop_;
  std::coroutine_handle<> root_;
  std::coroutine_handle<> resume_;  // where the next step resumes
  // What the task awaits. Raw: the awaiter in the suspended frame owns it
  // until the task resumes (and destroy_pending unhooks before the frames go).
  FutureStateBase* fut_waiter_ = nullptr;
  uint64_t waiter_callback_ = 0;
  TimerHandle sleep_timer_;
  std::string sleep_interrupt_msg_;
  uint64_t number_;                    // N of the default name "Task-N"
  std::unique_ptr<std::string> name_;  // set only when named explicitly
  std::shared_ptr<FutureStateBase> self_;  // the loop's reference while pending
  // The message of an awaiter's request that stopped here while this task's
  // own was in flight; it lands if uncancel() takes the task's own back.
  std::unique_ptr<std::string> held_cancel_;
};

// TaskCore comes first: the result (inline in FutureState<T>, of any size)
// then lies after both polymorphic bases, whose offsets stay small whatever
// T is (UBSan rejects a vptr beyond 1 MiB from the object's start).
template <class T>
class TaskState final : public TaskCore, public FutureState<T> {
 public:
  TaskState(QiEventLoop& loop, typename Coro<T>::handle_type root, std::string name)
      : TaskCore(loop, root, std::move(name)), FutureState<T>(loop) {
    this->is_task_ = true;
    bind_future(*this);
  }
  ~TaskState() override {
    this->report_unretrieved();
    destroy_root();
  }

  bool cancel(std::string msg) override { return request_cancel(std::move(msg)); }
  std::string describe() const override { return "Task '" + name() + "'"; }

 private:
  void complete_from_root() override {
    auto& p = Coro<T>::handle_type::from_address(root().address()).promise();
    if (p.exception) {
      try {
        std::rethrow_exception(p.exception);
      } catch (const CancelledError& e) {
        this->mark_cancelled(e.message());
        return;
      } catch (...) {
      }
      this->finish_with_exception(p.exception);
    } else if (must_cancel_) {
      // Cancelled right before the coroutine returned (asyncio does the same).
      this->mark_cancelled(must_cancel_msg_);
    } else if constexpr (std::is_void_v<T>) {
      this->finish_with_value();
    } else {
      this->finish_with_value(std::move(*p.value));
    }
  }
};

// Awaited by qi::sleep.
struct [[nodiscard("co_await it: qi::sleep() on its own does nothing")]] SleepAwaiter {
  std::chrono::steady_clock::duration delay;
  bool await_ready() const noexcept { return false; }
  QILOOP_EXPORT void await_suspend(std::coroutine_handle<> h) const;
  void await_resume() const { after_resume(false); }
};

}  // namespace detail

template <class T>
class Task : public Future<T> {
 public:
  // An empty handle (valid() is false).
  Task() noexcept = default;

  std::string get_name() const { return core()->name(); }
  void set_name(std::string name) const { core()->set_name(std::move(name)); }
  // How many cancel requests are pending (asyncio's Task.cancelling()).
  int cancelling() const noexcept { return core()->cancelling(); }
  // Takes one cancel request back; returns how many remain.
  int uncancel() const noexcept { return core()->uncancel(); }

  // A task's result comes from its coroutine (asyncio raises here too).
  template <class... A>
  void set_result(A&&...) const = delete;
  void set_exception(std::exception_ptr) const = delete;

  // Internal: the loop makes tasks.
  explicit Task(std::shared_ptr<detail::TaskState<T>> s) noexcept : Future<T>(std::move(s)) {}

 private:
  detail::TaskState<T>* core() const noexcept {
    return static_cast<detail::TaskState<T>*>(detail::state_of<T>(*this).get());
  }
};

// qi::sleep()
// Suspends the current task for `delay` (never less); sleep(0) yields for
// exactly one loop iteration. Cancellation lands at once. Must be awaited
// from a task.
// Throws std::invalid_argument for a NaN delay; a delay too long to
// represent means "forever".
template <class Rep, class Period>
[[nodiscard("co_await it: qi::sleep() on its own does nothing")]]
detail::SleepAwaiter sleep(std::chrono::duration<Rep, Period> delay) {
  using D = std::chrono::steady_clock::duration;
  const long double ns = std::chrono::duration<long double, std::nano>(delay).count();
  if (ns != ns) throw std::invalid_argument("sleep: the delay is NaN; pass a number of seconds");
  if (ns >= static_cast<long double>(D::max().count())) return {D::max()};
  if (ns <= 0) return {D::zero()};
  return {D(static_cast<D::rep>(ns))};
}
[[nodiscard("co_await it: qi::sleep() on its own does nothing")]]
inline detail::SleepAwaiter sleep(double seconds) { return sleep(std::chrono::duration<double>(seconds)); }

// qi::current_task()
// The task running on this thread; empty outside tasks (and in plain
// callbacks). Compares equal to that Task<T>.
QILOOP_EXPORT TaskRef current_task();

}  // namespace qi
