// qiloop/detail/awaiters.h — what `co_await future` and `co_await qi::sleep()`
// do. Internal; the contract is in <qiloop/future.h> and <qiloop/task.h>.
#pragma once

#include <qiloop/detail/future_state.h>
#include <qiloop/detail/task_core.h>
#include <qiloop/export.h>

#include <chrono>
#include <coroutine>
#include <type_traits>

namespace qi::detail {

// Suspends the current task until `fut` is done, resuming `h` then (through
// the ready queue). Throws qi::RuntimeError outside a task or when `fut`
// belongs to another loop or to a destroyed one. Defined with the tasks
// (src/task.cpp).
QILOOP_EXPORT void await_future(FutureStateBase& fut, std::coroutine_handle<> h);
// Called first thing when a task resumes after a real suspension: throws
// qi::CancelledError when the task was cancelled while its wait could not be
// (asyncio's _must_cancel). `awaited_cancelled`: what it awaited ended
// cancelled, so that CancelledError is the one delivered (asyncio keeps it).
QILOOP_EXPORT void after_resume(bool awaited_cancelled);

// What `co_await future` does. Move == true (an rvalue future) moves the
// value out; otherwise the awaiter yields a copy.
template <class T, bool Move>
struct [[nodiscard]] FutureAwaiter {
  StateRef<FutureStateBase> state;
  bool suspended = false;
  // A done future is not a suspension point: the task does not yield, and a
  // pending cancel waits for the next real one (as in asyncio).
  bool await_ready() const noexcept { return state->done(); }
  void await_suspend(std::coroutine_handle<> h) {
    await_future(*state, h);
    suspended = true;
  }
  T await_resume() {
    if (suspended) after_resume(state->cancelled());
    if constexpr (std::is_void_v<T>)
      result_of<T>(*state);
    else if constexpr (Move)
      return take_result_of<T>(*state);
    else
      return result_of<T>(*state);
  }
};

// Awaited by qi::sleep.
struct [[nodiscard("co_await it: qi::sleep() on its own does nothing")]] SleepAwaiter {
  std::chrono::steady_clock::duration delay;
  bool await_ready() const noexcept { return false; }
  QILOOP_EXPORT void await_suspend(std::coroutine_handle<> h) const;
  void await_resume() const { after_resume(false); }
};

}  // namespace qi::detail
