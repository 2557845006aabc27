// -----------------------------------------------------------------------------
// File: qiloop/structured/wait.h
// -----------------------------------------------------------------------------
//
// qi::wait waits until some or all of a set of tasks (or futures) are done,
// or a timeout passes, and says which are done (asyncio.wait).
//
// Example:
//
//   std::vector<qi::Task<int>> tasks = ...;
//   auto [done, pending] = co_await qi::wait(tasks, 2s, qi::FIRST_COMPLETED);
//   for (auto& t : done) use(t.result());
//   for (auto& t : pending) t.cancel();       // wait never cancels anything
//
// Contract (asyncio 3.13):
// - qi::wait(fs, when = ALL_COMPLETED) and qi::wait(fs, timeout, when):
//   fs is a std::vector of qi::Task<T>, qi::Future<T>, qi::TaskRef or
//   qi::FutureRef (a vector of Coro is refused at compile time, as 3.11+
//   refuses coroutines: make them tasks, so that you have handles to them).
//   timeout: any std::chrono duration, or seconds as a double; none waits
//   as long as it takes.
// - It returns once `when` holds — ALL_COMPLETED: every one is done;
//   FIRST_COMPLETED: one is done; FIRST_EXCEPTION: one finished with an
//   exception (not a cancellation), or all are done — or once the timeout
//   passed (no TimeoutError: what is not done is in `pending`).
// - The result, qi::WaitResult<F>{done, pending}, keeps the input order in
//   each vector (a handle given twice appears twice). Nothing is cancelled,
//   on return or when the waiting task is cancelled (qi::CancelledError
//   leaves every task running).
// - Even when some are already done it returns on a later loop iteration (it
//   waits for their done callbacks, as asyncio does).
// - Throws qi::ValueError for an empty vector, an invalid `when`, or
//   futures of another loop than the running one; qi::RuntimeError when no
//   loop runs; std::invalid_argument for an empty handle — all where the
//   result is awaited (wait is a coroutine) — and std::invalid_argument for
//   a NaN timeout, at the call.
// Thread-safety: the loop's thread. It is a coroutine (qi::Coro): it does
// nothing until awaited.
#pragma once

#include <qiloop/coro.h>
#include <qiloop/detail/deadline.h>
#include <qiloop/export.h>
#include <qiloop/future.h>
#include <qiloop/task.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <utility>
#include <vector>

namespace qi {

// qi::ReturnWhen
// When qi::wait returns (asyncio's return_when): the constants below.
enum class ReturnWhen : uint8_t { kAllCompleted, kFirstCompleted, kFirstException };
inline constexpr ReturnWhen ALL_COMPLETED = ReturnWhen::kAllCompleted;
inline constexpr ReturnWhen FIRST_COMPLETED = ReturnWhen::kFirstCompleted;
inline constexpr ReturnWhen FIRST_EXCEPTION = ReturnWhen::kFirstException;

// qi::WaitResult<F>
// What qi::wait yields: `auto [done, pending] = co_await qi::wait(...)`.
template <class F>
struct WaitResult {
  std::vector<F> done;
  std::vector<F> pending;
};

namespace detail {

template <class F>
inline constexpr bool is_wait_handle_v = std::is_same_v<F, FutureRef> || std::is_same_v<F, TaskRef>;
template <class T>
inline constexpr bool is_wait_handle_v<Future<T>> = true;
template <class T>
inline constexpr bool is_wait_handle_v<Task<T>> = true;

inline FutureStateBase* handle_state(const FutureRef& f) noexcept { return f.state(); }
template <class T>
FutureStateBase* handle_state(const Future<T>& f) noexcept {
  return state_of(f);
}

// asyncio's _wait: suspends until `when` holds for fs or the timeout
// passed; never cancels them (src/structured/combinators.cpp).
QILOOP_EXPORT Coro<void> wait_states(std::vector<FutureStateBase*> fs, std::optional<LoopDuration> timeout,
                                     ReturnWhen when);

template <class F>
Coro<WaitResult<F>> wait_impl(std::vector<F> fs, std::optional<LoopDuration> timeout, ReturnWhen when) {
  std::vector<FutureStateBase*> states;
  states.reserve(fs.size());
  for (const F& f : fs) states.push_back(handle_state(f));
  co_await wait_states(std::move(states), timeout, when);
  WaitResult<F> r;
  for (F& f : fs) (handle_state(f)->done() ? r.done : r.pending).push_back(std::move(f));
  co_return r;
}

template <class F>
constexpr void check_wait_handle() {
  static_assert(is_wait_handle_v<F>,
                "qi::wait takes a std::vector of qi::Task<T>, qi::Future<T>, qi::TaskRef or qi::FutureRef; for "
                "coroutines, make tasks first (qi::create_task) so that you hold handles to what is pending");
}

}  // namespace detail

// qi::wait()
// See the file comment. The vector is taken by value (handles are cheap to
// copy); the result holds the same handles.
template <class F>
[[nodiscard("co_await it: qi::wait() on its own does nothing")]]
Coro<WaitResult<F>> wait(std::vector<F> fs, ReturnWhen when = ALL_COMPLETED) {
  detail::check_wait_handle<F>();
  return detail::wait_impl(std::move(fs), std::nullopt, when);
}
template <class F, class Rep, class Period>
[[nodiscard("co_await it: qi::wait() on its own does nothing")]]
Coro<WaitResult<F>> wait(std::vector<F> fs, std::chrono::duration<Rep, Period> timeout,
                         ReturnWhen when = ALL_COMPLETED) {
  detail::check_wait_handle<F>();
  return detail::wait_impl(std::move(fs), detail::saturating_duration(timeout, "qi::wait", "timeout"), when);
}
template <class F>
[[nodiscard("co_await it: qi::wait() on its own does nothing")]]
Coro<WaitResult<F>> wait(std::vector<F> fs, double timeout_seconds, ReturnWhen when = ALL_COMPLETED) {
  return wait(std::move(fs), std::chrono::duration<double>(timeout_seconds), when);
}

}  // namespace qi
