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
#include <qiloop/detail/awaiters.h>
#include <qiloop/detail/task_core.h>
#include <qiloop/detail/task_state.h>
#include <qiloop/future.h>
#include <qiloop/handle.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <utility>

class QiEventLoop;

namespace qi {

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

  // Internal: the loop makes tasks; takes over the new state's first reference.
  static Task adopt(detail::TaskState<T>* s) noexcept { return Task(Future<T>::state_type::adopt(s)); }

 private:
  explicit Task(typename Future<T>::state_type s) noexcept : Future<T>(std::move(s)) {}
  detail::TaskState<T>* core() const noexcept { return static_cast<detail::TaskState<T>*>(detail::state_of<T>(*this)); }
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
