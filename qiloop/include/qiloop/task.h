// -----------------------------------------------------------------------------
// File: qiloop/task.h
// -----------------------------------------------------------------------------
//
// qi::Task<T> is asyncio.Task: it drives one qi::Coro<T> on its loop,
// resuming it through the ready queue each time what it awaits is done
// (asyncio's __step / __wakeup). Also here: qi::sleep and qi::current_task.
//
// Example:
//
//   qi::Task<int> t = loop.create_task(answer());   // starts on a later iteration
//   t.add_done_callback([](qi::Future<int> f) { ... });
//   t.cancel("shutting down");                       // lands at its current co_await
//   int v = co_await t;                              // from another coroutine
//
// A Task is a Future<T> (<qiloop/future.h>): a copyable shared handle,
// awaitable by any number of coroutines, with done callbacks, result() and
// exception(). Tasks are made by loop.create_task / run_task, qi::create_task
// and qi::run (<qiloop/event_loop.h>).
//
// Lifetime: the loop keeps a pending task alive; dropping every Task handle
// does not stop or destroy the coroutine. When the loop is closed with tasks
// still pending, their frames are destroyed and each is reported ("Task was
// destroyed but it is pending!"); QiRunner and qi::run cancel leftovers and
// let them finish first. An exception escaping the coroutine is stored in
// the task; if nobody retrieves it, it is reported when the last handle goes
// ("Task exception was never retrieved", with the task's name;
// ExceptionContext::future refers to the task, as in asyncio).
//
// Cancellation (asyncio 3.11+): cancel(msg) on a task suspended on a future
// cancels that future, so qi::CancelledError(msg) is thrown at the
// co_await; a task suspended in sleep() is woken at once with it; a task not
// yet started never runs. The coroutine may catch qi::CancelledError and
// return normally: the task then finishes with that result (cancelling()
// still counts the request; uncancel() takes one back). Cancelling a task
// that awaits a task cancels that one too, down a chain of any length
// without growing the stack, unless a cancel request already reached that
// one since it last ran (it is not cancelled again): tasks awaiting each
// other in a cycle each count the first request once and stay deadlocked
// (shutdown reports them). Such a stopped request is held there: if that task
// takes its own requests back with uncancel() and runs on, the held one
// lands then (uncancel() counts it), so the awaiter is not left waiting for
// it to finish. See docs/tasks.md.
//
// One wait at a time: a task is suspended on one future or sleep. When a
// coroutine the task did not await (an eager coroutine of another library)
// awaits a qi future during a step, the task must co_await that coroutine
// next; awaiting anything else first throws qi::RuntimeError.
//
// Thread-safety: a task belongs to its loop's thread; its handles, like a
// future's, may be copied and dropped on any thread. Re-entrancy: every
// call may be made from the task's own coroutine and from done callbacks.
//
// Memory: one 128-byte allocation beyond the coroutine frame
// (<qiloop/detail/task_state.h>); a sleeping task also holds its timer.
//
// Not a coroutine type: a function declared to return qi::Task<T> with a
// co_await or co_return in its body is refused at compile time, with a
// message naming the fix (return qi::Coro<T>; start it with create_task).
#pragma once

#include <qiloop/coro.h>
#include <qiloop/detail/awaiters.h>
#include <qiloop/detail/deadline.h>
#include <qiloop/detail/task_core.h>
#include <qiloop/detail/task_state.h>
#include <qiloop/future.h>
#include <qiloop/handle.h>

#include <chrono>
#include <coroutine>
#include <string>
#include <type_traits>
#include <utility>

class QiEventLoop;

namespace qi {

// qi::Task<T>
//
// Everything of Future<T> but set_result / set_exception, which are deleted
// (a task's result comes from its coroutine; through a Future<T> copy of a
// task they throw qi::RuntimeError). cancel() requests cancellation (see the
// file comment).
template <class T>
class Task : public Future<T> {
 public:
  // Task::Task()
  // An empty handle (valid() is false); tasks come from create_task.
  Task() noexcept = default;

  // Task::get_name()
  // Task::set_name()
  // The name given to create_task or set_name, or "Task-N" (N unique in the
  // process). Loop thread only.
  std::string get_name() const { return core()->name(); }
  void set_name(std::string name) const { core()->set_name(std::move(name)); }

  // Task::cancelling()
  // How many cancel requests are pending (asyncio's Task.cancelling()).
  int cancelling() const noexcept { return core()->cancelling(); }

  // Task::uncancel()
  // Takes one cancel request back; returns how many remain. A request held
  // for an awaiter lands when the task's own are all taken back (see the
  // file comment).
  int uncancel() const noexcept { return core()->uncancel(); }

  // Task::ref()
  // A type-erased reference to this task.
  TaskRef ref() const noexcept { return TaskRef(detail::state_of<T>(*this)); }

  template <class... A>
  void set_result(A&&...) const = delete;
  void set_exception(std::exception_ptr) const = delete;

  // Internal: the loop makes tasks; takes over the new state's first reference.
  static Task adopt(detail::TaskState<T>* s) noexcept { return Task(Future<T>::state_type::adopt(s)); }

 private:
  explicit Task(typename Future<T>::state_type s) noexcept : Future<T>(std::move(s)) {}
  detail::TaskState<T>* core() const noexcept { return static_cast<detail::TaskState<T>*>(detail::state_of<T>(*this)); }
};

// qi::sleep()
// Suspends the current task for `delay` (any std::chrono duration, or
// seconds as a double), never less, on the loop's clock. sleep(0) — or a
// negative delay — yields for exactly one loop iteration. A delay too long
// for steady_clock means "forever" (it saturates; it never wraps into the
// past). Cancellation lands at once. Must be co_awaited from a task
// (qi::RuntimeError otherwise, at the co_await). Throws
// std::invalid_argument for a NaN delay.
template <class Rep, class Period>
[[nodiscard("co_await it: qi::sleep() on its own does nothing")]]
detail::SleepAwaiter sleep(std::chrono::duration<Rep, Period> delay) {
  return {detail::saturating_duration(delay, "qi::sleep")};
}
[[nodiscard("co_await it: qi::sleep() on its own does nothing")]]
inline detail::SleepAwaiter sleep(double seconds) { return sleep(std::chrono::duration<double>(seconds)); }

// qi::current_task()
// The task running on this thread; empty outside tasks and in plain
// callbacks. Compares equal to that Task<T>. Any thread (each has its own).
QILOOP_EXPORT TaskRef current_task();

}  // namespace qi

namespace qi::detail {
// The promise type std::coroutine_traits gives a coroutine declared to
// return qi::Task<T>: instantiating it fails with the fix in the message,
// instead of the compiler's "no promise_type" for a type that looks right.
template <class T>
struct TaskIsNotACoroutineType {
  static_assert(!std::is_same_v<T, T>,
                "qiloop: a coroutine returns qi::Coro<T>, not qi::Task<T>: write `qi::Coro<T> f()` and start it "
                "with loop.create_task(f()) (or co_await f() from another coroutine)");
};
}  // namespace qi::detail

namespace std {
template <class T, class... Args>
struct coroutine_traits<qi::Task<T>, Args...> {
  using promise_type = qi::detail::TaskIsNotACoroutineType<T>;
};
}  // namespace std
