// qiloop/qt/detail/asyncslot.h — the machinery of qi::asyncslot. Internal;
// the contract is in <qiloop/qt/asyncslot.h>.
#pragma once

#include <qiloop/coro.h>
#include <qiloop/errors.h>
#include <qiloop/event_loop.h>
#include <qiloop/export.h>
#include <qiloop/qt/bound_task.h>

#include <QtCore/QPointer>

#include <cstddef>
#include <exception>
#include <functional>
#include <tuple>
#include <type_traits>
#include <utility>

namespace qi::detail {

template <class T>
inline constexpr bool is_coro_v = false;
template <class T>
inline constexpr bool is_coro_v<Coro<T>> = true;

// Whether F& accepts the first N of Args (decayed copies, passed as xvalues).
template <class F, class Args, class Seq>
struct AcceptsPrefix;
template <class F, class Args, std::size_t... I>
struct AcceptsPrefix<F, Args, std::index_sequence<I...>>
    : std::is_invocable<F&, std::tuple_element_t<I, Args>&&...> {};

template <class F, class Args, class Seq>
struct PrefixResult;
template <class F, class Args, std::size_t... I>
struct PrefixResult<F, Args, std::index_sequence<I...>> {
  using type = std::invoke_result_t<F&, std::tuple_element_t<I, Args>&&...>;
};

// The longest prefix of Args that F accepts (Qt drops the extra arguments of
// a signal the same way), or -1 when none does.
template <class F, class Args, std::size_t N = std::tuple_size_v<Args>>
constexpr int accepted_prefix() {
  if constexpr (AcceptsPrefix<F, Args, std::make_index_sequence<N>>::value)
    return static_cast<int>(N);
  else if constexpr (N == 0)
    return -1;
  else
    return accepted_prefix<F, Args, N - 1>();
}

// Reports an exception that escaped a slot task (src/qt/asyncslot.cpp).
QILOOP_EXPORT void report_slot_exception(std::exception_ptr e) noexcept;
// The loop to run a slot on: the calling thread's running one, or
// qi::RuntimeError naming the fix.
QILOOP_EXPORT QiEventLoop& slot_loop();

// The slot task's coroutine: its frame owns the callable and the arguments,
// so a coroutine lambda's captures — and arguments f takes by reference —
// live as long as the task. What escapes f is reported here, when it
// happens, and so counts as retrieved; a cancellation ends the task
// cancelled, which nobody reports.
template <class F, class... Args>
Coro<void> slot_task(F f, Args... args) {
  try {
    co_await std::invoke(f, std::move(args)...);
  } catch (const CancelledError&) {
    throw;
  } catch (...) {
    report_slot_exception(std::current_exception());
  }
}

// Starts one slot task with the first N of a... (taken as decayed copies).
template <class F, std::size_t... I, class Tuple>
Task<void> start_slot(QiEventLoop& loop, const F& f, std::index_sequence<I...>, Tuple&& args) {
  return loop.run_task(slot_task<F, std::decay_t<std::tuple_element_t<I, std::remove_reference_t<Tuple>>>...>(
      f, std::get<I>(std::forward<Tuple>(args))...));
}

template <class F, class... A>
Task<void> run_slot(const F& f, A&&... a) {
  using Args = std::tuple<std::decay_t<A>...>;
  constexpr int n = accepted_prefix<F, Args>();
  static_assert(n >= 0,
                "qi::asyncslot: the callable cannot be called with the signal's arguments, nor with any first ones "
                "of them (Qt drops extra arguments from the end): check the parameter types; parameters are "
                "passed decayed copies, so take them by value or const& (not by non-const &)");
  if constexpr (n >= 0) {
    using Seq = std::make_index_sequence<static_cast<std::size_t>(n)>;
    static_assert(is_coro_v<typename PrefixResult<F, Args, Seq>::type>,
                  "qi::asyncslot: the callable must return a qi::Coro<T> (a coroutine: `[]() -> qi::Coro<void> { "
                  "co_await ...; }`); connect a plain function directly, without qi::asyncslot");
    return start_slot(slot_loop(), f, Seq{}, std::forward_as_tuple(std::forward<A>(a)...));
  }
}

// The callable qi::asyncslot(f) returns.
template <class F>
class AsyncSlot {
 public:
  explicit AsyncSlot(F f) : f_(std::move(f)) {}
  template <class... A>
  void operator()(A&&... a) const {
    run_slot(f_, std::forward<A>(a)...);
  }

 private:
  F f_;
};

// The callable qi::asyncslot(receiver, f) returns.
template <class F>
class BoundAsyncSlot {
 public:
  BoundAsyncSlot(QObject* receiver, F f) : receiver_(receiver), f_(std::move(f)) {}
  template <class... A>
  void operator()(A&&... a) const {
    // A receiver gone (called without it as the connection's context), or
    // going: its slot runs no more.
    QPointer<QObject> receiver = receiver_;
    if (!receiver || being_destroyed(receiver)) return;
    check_guard(receiver, "qi::asyncslot");  // before a task exists that it would leave unbound
    Task<void> task = run_slot(f_, std::forward<A>(a)...);
    // The first step ran: if it destroyed the receiver, the task is
    // cancelled now, where it suspended.
    if (!receiver)
      static_cast<TaskCore*>(state_of<void>(task))->cancel_now("the QObject the task was bound to was destroyed");
    else
      bind_task(task, receiver.data());
  }

 private:
  QPointer<QObject> receiver_;
  F f_;
};

}  // namespace qi::detail
