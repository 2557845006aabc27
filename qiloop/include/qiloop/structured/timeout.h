// -----------------------------------------------------------------------------
// File: qiloop/structured/timeout.h
// -----------------------------------------------------------------------------
//
// qi::timeout / qi::timeout_at / qi::Timeout are asyncio.timeout /
// timeout_at / Timeout: a deadline for an awaitable that runs inside the
// current task (no new task). qi::wait_for is asyncio.wait_for, built on them
// as in Python 3.12+.
//
// Example:
//
//   int v = co_await qi::timeout(1s, fetch());          // qi::TimeoutError after 1 s
//   int w = co_await qi::wait_for(task, 500ms);         // the same for a task or future
//
//   qi::Timeout t = qi::Timeout::after(10s);            // `async with asyncio.timeout(10) as t:`
//   co_await t.run([&]() -> qi::Coro<void> {
//     co_await first_step();
//     t.reschedule(qi::get_running_loop().time() + 1s); // tighten it from inside
//     co_await second_step();
//   }());
//   if (t.expired()) ...                                // (run() threw qi::TimeoutError)
//
// Contract (asyncio 3.13's timeouts.py):
// - run(awaitable) is the `async with` block: it awaits the awaitable in the
//   current task and yields its result (or rethrows its exception). When the
//   deadline passes first, the task is cancelled (Task::cancel(), so the
//   qi::CancelledError lands at whatever the task awaits, down its chain of
//   awaited tasks); when that cancellation leaves the block and it was this
//   timeout's own — the task's cancelling() count, taken back with
//   uncancel(), is back at what it was when the block began — it becomes
//   qi::TimeoutError. A cancel() from elsewhere that arrives before the block
//   ends (even in the same iteration as the deadline) keeps the count above
//   that: the qi::CancelledError goes on. Of nested timeouts expiring
//   together, the outermost one that expired reports TimeoutError; the inner
//   ones let the CancelledError through.
// - The deadline is a loop.time() (steady_clock) point, or none (never).
//   qi::timeout(delay, ...) counts the delay from when the returned Coro
//   starts (qi::Timeout::after() from its own call, as asyncio.timeout()).
//   A deadline already past expires on the next iteration.
// - Same-iteration results: when the awaitable is a qi::Future / qi::Task
//   that completed (with a value or an exception) in the same iteration as
//   the deadline, so that its result was on its way when the cancellation
//   landed, run() yields that result instead of qi::TimeoutError (expired()
//   is still true). A qiloop choice beyond asyncio, whose 3.12+ wait_for
//   raises TimeoutError there; a Coro is awaited directly (as 3.12's
//   wait_for does) and what its inner co_await received is not recoverable.
// - An awaitable given as an lvalue is awaited as one (a Task / Future is
//   copied: its result is copied, not moved out; a Coro lvalue is referred
//   to and must outlive the co_await); an rvalue is moved into the Coro.
// - Throws: qi::RuntimeError when no loop runs (timeout(), Timeout::after())
//   or when run() is not awaited inside a task, when a Timeout is run twice,
//   for reschedule() outside the block (before it or after it expired or
//   ended; asyncio's messages); std::invalid_argument for a NaN delay.
//
// Thread-safety: the loop's thread only. Re-entrancy: reschedule(), when()
// and expired() may be called from anywhere on that thread: the block
// itself, another task, a callback.
#pragma once

#include <qiloop/coro.h>
#include <qiloop/detail/deadline.h>
#include <qiloop/errors.h>
#include <qiloop/event_loop.h>
#include <qiloop/export.h>
#include <qiloop/future.h>
#include <qiloop/handle.h>
#include <qiloop/task.h>

#include <chrono>
#include <cstdint>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

namespace qi {

class Timeout;

namespace detail {

// What `co_await a` yields, through the awaiter the await graph's
// await_transform picks (detail/call_graph.h).
template <class A>
using await_result_t = decltype(awaiter_for(std::declval<A>()).await_resume());

template <class T>
concept FutureLike = requires { typename T::value_type; } &&
                     std::is_base_of_v<Future<typename T::value_type>, T>;

// How timeout() / wait_for() keep an awaitable in their frame: by value,
// except a non-copyable lvalue (a Coro the caller keeps), referred to.
template <class A>
using kept_t = std::conditional_t<std::is_lvalue_reference_v<A> && !std::is_copy_constructible_v<std::remove_cvref_t<A>>,
                                  A, std::remove_cvref_t<A>>;
// An lvalue is awaited as an lvalue (a Task's result copied, not moved out).
template <class A>
using awaited_as_t = std::conditional_t<std::is_lvalue_reference_v<A>, kept_t<A>&, kept_t<A>&&>;
template <class A>
using timed_result_t = await_result_t<awaited_as_t<A>>;

// A deadline given now, resolved when the timed Coro starts (a delay counts
// from then, as wait_for's does in asyncio).
struct TimeoutDeadline {
  enum class Kind : uint8_t { kNever, kAt, kAfter };
  Kind kind = Kind::kNever;
  LoopTime when{};
  LoopDuration delay{};
  QILOOP_EXPORT std::optional<LoopTime> resolve() const;
};

QILOOP_EXPORT bool is_cancelled_error(const std::exception_ptr& e) noexcept;
[[noreturn]] QILOOP_EXPORT void throw_timeout_error();
// asyncio's _cancel_and_wait: cancels f and waits until it is done, without
// taking its outcome (a cancel of the awaiting task stays a CancelledError).
QILOOP_EXPORT Coro<void> cancel_and_wait(FutureRef f);

template <class R, class Kept, bool kMove>
Coro<R> timed(Timeout* t, TimeoutDeadline deadline, Kept aw);
template <class R, class Kept, bool kMove>
Coro<R> expire_now(Kept aw);

}  // namespace detail

// qi::Timeout
//
// asyncio.Timeout: one deadline, one block (run()), in the task that awaits
// run(). Invariant: the timer is armed exactly while the block runs in the
// entered state; it cancels the task once, then the block is expiring until
// it ends. Neither copyable nor movable (its timer refers to it).
class QILOOP_EXPORT Timeout {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  // Timeout::Timeout()
  // A timeout due at `when` (a loop.time() point), or never (std::nullopt).
  // Needs no loop until run().
  explicit Timeout(std::optional<time_point> when) noexcept : when_(when) {}
  Timeout(const Timeout&) = delete;
  Timeout& operator=(const Timeout&) = delete;
  // Timeout::~Timeout()
  // Disarms the timer (a task destroyed inside the block).
  ~Timeout();

  // Timeout::after()
  // asyncio.timeout(delay): due `delay` (a std::chrono duration, or seconds
  // as a double) after the running loop's time() now. Throws
  // qi::RuntimeError when no loop runs, std::invalid_argument for NaN.
  template <class Rep, class Period>
  static Timeout after(std::chrono::duration<Rep, Period> delay) {
    return Timeout(detail::deadline_after(get_running_loop().time(), delay, "qi::Timeout::after"));
  }
  static Timeout after(double seconds) { return after(std::chrono::duration<double>(seconds)); }

  // Timeout::when()
  // The current deadline; std::nullopt for never.
  std::optional<time_point> when() const noexcept { return when_; }

  // Timeout::reschedule()
  // Moves the deadline (earlier, later, or to std::nullopt: never). A
  // deadline not in the future expires on the next iteration. Only while
  // the block runs and has not expired: throws qi::RuntimeError before
  // run() ("has not been entered") and once expired or ended ("Cannot
  // change state of ... Timeout"), changing nothing.
  void reschedule(std::optional<time_point> when);

  // Timeout::expired()
  // True once the deadline passed while the block ran (asyncio's
  // expired()), also when run() then yielded a same-iteration result or let
  // an outer CancelledError through.
  bool expired() const noexcept { return state_ == State::kExpiring || state_ == State::kExpired; }

  // Timeout::run()
  // The `async with` block: awaits `awaitable` (a Coro, Task, Future or any
  // awaitable) in the current task under this deadline; see the file
  // comment. Once per Timeout. The Timeout must outlive the co_await.
  template <class A>
  Coro<detail::timed_result_t<A&&>> run(A&& awaitable) {
    return detail::timed<detail::timed_result_t<A&&>, detail::kept_t<A&&>, !std::is_lvalue_reference_v<A>>(
        this, {}, std::forward<A>(awaitable));
  }

 private:
  template <class R, class Kept, bool kMove>
  friend Coro<R> detail::timed(Timeout*, detail::TimeoutDeadline, Kept);

  enum class State : uint8_t { kCreated, kEntered, kExpiring, kExpired, kExited };
  // __aenter__: binds to the current task and arms the timer.
  void enter();
  // __aexit__ with the block's error (null: none). True when that error is
  // this timeout's own cancellation, to become qi::TimeoutError.
  bool leave(const std::exception_ptr& error) noexcept;
  void on_timeout();

  std::optional<time_point> when_;
  State state_ = State::kCreated;
  int cancelling_ = 0;  // the task's cancelling() when the block began
  TaskRef task_;
  QiEventLoop* loop_ = nullptr;
  Handle timer_;
};

// qi::timeout()
// Awaits `awaitable` in the current task; qi::TimeoutError when `delay`
// (a std::chrono duration, or seconds as a double; std::nullopt: never) has
// passed, counted from when the returned Coro starts. See the file comment.
template <class Rep, class Period, class A>
Coro<detail::timed_result_t<A&&>> timeout(std::chrono::duration<Rep, Period> delay, A&& awaitable) {
  detail::TimeoutDeadline d{detail::TimeoutDeadline::Kind::kAfter, {},
                            detail::saturating_duration(delay, "qi::timeout")};
  return detail::timed<detail::timed_result_t<A&&>, detail::kept_t<A&&>, !std::is_lvalue_reference_v<A>>(
      nullptr, d, std::forward<A>(awaitable));
}
template <class A>
Coro<detail::timed_result_t<A&&>> timeout(double seconds, A&& awaitable) {
  return timeout(std::chrono::duration<double>(seconds), std::forward<A>(awaitable));
}
template <class A>
Coro<detail::timed_result_t<A&&>> timeout(std::nullopt_t, A&& awaitable) {
  return detail::timed<detail::timed_result_t<A&&>, detail::kept_t<A&&>, !std::is_lvalue_reference_v<A>>(
      nullptr, {}, std::forward<A>(awaitable));
}

// qi::timeout_at()
// timeout() with an absolute deadline: a loop.time() point (of any
// duration), or std::nullopt for never.
template <class Dur, class A>
Coro<detail::timed_result_t<A&&>> timeout_at(std::chrono::time_point<std::chrono::steady_clock, Dur> when,
                                             A&& awaitable) {
  detail::TimeoutDeadline d{detail::TimeoutDeadline::Kind::kAt, detail::deadline_at(when, "qi::timeout_at"), {}};
  return detail::timed<detail::timed_result_t<A&&>, detail::kept_t<A&&>, !std::is_lvalue_reference_v<A>>(
      nullptr, d, std::forward<A>(awaitable));
}
template <class A>
Coro<detail::timed_result_t<A&&>> timeout_at(std::nullopt_t, A&& awaitable) {
  return timeout(std::nullopt, std::forward<A>(awaitable));
}

// qi::wait_for()
// asyncio.wait_for (3.12+): `co_await qi::timeout(delay, awaitable)` for a
// Coro, Task or Future — a Coro is awaited directly, in the current task;
// a task or future awaited is cancelled at the deadline. A delay <= 0, as
// asyncio: a done future yields its result at once; otherwise the future
// (a Coro: made a task first, which never runs) is cancelled, waited for,
// and qi::TimeoutError is thrown — unless it finished anyway, which yields
// its result. std::nullopt: no deadline. Throws as qi::timeout().
template <class A, class Rep, class Period>
Coro<detail::timed_result_t<A&&>> wait_for(A&& awaitable, std::chrono::duration<Rep, Period> delay) {
  static_assert(detail::FutureLike<std::remove_cvref_t<A>> || detail::is_coro<std::remove_cvref_t<A>>::value,
                "qiloop: qi::wait_for takes a qi::Coro, qi::Task or qi::Future; use qi::timeout for other awaitables");
  using R = detail::timed_result_t<A&&>;
  using Kept = detail::kept_t<A&&>;
  constexpr bool kMove = !std::is_lvalue_reference_v<A>;
  const auto d = detail::saturating_duration(delay, "qi::wait_for");
  if (d <= detail::LoopDuration::zero()) return detail::expire_now<R, Kept, kMove>(std::forward<A>(awaitable));
  return detail::timed<R, Kept, kMove>(nullptr, {detail::TimeoutDeadline::Kind::kAfter, {}, d},
                                       std::forward<A>(awaitable));
}
template <class A>
Coro<detail::timed_result_t<A&&>> wait_for(A&& awaitable, double seconds) {
  return wait_for(std::forward<A>(awaitable), std::chrono::duration<double>(seconds));
}
template <class A>
Coro<detail::timed_result_t<A&&>> wait_for(A&& awaitable, std::nullopt_t) {
  return timeout(std::nullopt, std::forward<A>(awaitable));
}

// --- Implementation -----------------------------------------------------------

namespace detail {

template <class Kept, bool kMove>
decltype(auto) await_kept(Kept& aw) {
  if constexpr (kMove)
    return std::move(aw);
  else
    return (aw);
}

// The block: asyncio's `async with timeout: return await aw`. `t` is the
// caller's Timeout (Timeout::run), or null for the one-call forms, which own
// one made from `deadline` when the Coro starts.
template <class R, class Kept, bool kMove>
Coro<R> timed(Timeout* t, TimeoutDeadline deadline, Kept aw) {
  std::optional<Timeout> own;
  if (!t) t = &own.emplace(deadline.resolve());
  t->enter();
  using K = std::remove_cvref_t<Kept>;
  // Awaiting an rvalue future moves its handle into the awaiter: keep one.
  [[maybe_unused]] FutureRef held;
  if constexpr (FutureLike<K>) held = aw.ref();
  std::exception_ptr error;
  std::optional<std::conditional_t<std::is_void_v<R>, bool, R>> value;
  try {
    if constexpr (std::is_void_v<R>) {
      co_await await_kept<Kept, kMove>(aw);
      value.emplace(true);
    } else {
      value.emplace(co_await await_kept<Kept, kMove>(aw));
    }
  } catch (...) {
    error = std::current_exception();
  }
  if (t->leave(error)) {
    if constexpr (FutureLike<K>) {
      // Its outcome was ready when the cancellation landed: nothing the
      // caller obtained is dropped (see "Same-iteration results").
      FutureStateBase& s = *held.state();
      if (s.done() && !s.cancelled()) {
        if constexpr (std::is_void_v<R>) {
          result_of<void>(s);
          co_return;
        } else if constexpr (kMove) {
          co_return take_result_of<R>(s);
        } else {
          co_return result_of<R>(s);
        }
      }
    }
    throw_timeout_error();
  }
  if (error) std::rethrow_exception(error);
  if constexpr (!std::is_void_v<R>) co_return std::move(*value);
}

// wait_for with a delay <= 0 (asyncio's special case).
template <class R, class Kept, bool kMove>
Coro<R> expire_now(Kept aw) {
  using K = std::remove_cvref_t<Kept>;
  auto fut = [&] {
    if constexpr (is_coro<K>::value)
      return Future<R>(create_task(std::move(aw)));  // asyncio's ensure_future
    else
      return Future<R>(aw);
  }();
  if (!fut.done()) {
    co_await cancel_and_wait(fut.ref());
    if (fut.cancelled()) throw_timeout_error();
  }
  if constexpr (std::is_void_v<R>)
    fut.result();
  else if constexpr (kMove || is_coro<K>::value)  // a Coro's task is ours alone
    co_return take_result_of<R>(*state_of(fut));
  else
    co_return fut.result();
}

}  // namespace detail
}  // namespace qi
