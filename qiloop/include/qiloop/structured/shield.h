// -----------------------------------------------------------------------------
// File: qiloop/structured/shield.h
// -----------------------------------------------------------------------------
//
// qi::shield protects a task from the cancellation of whoever awaits it
// (asyncio.shield).
//
// Example:
//
//   qi::Task<void> save = qi::create_task(write_file());
//   co_await qi::shield(save);   // if this task is cancelled here, it gets
//                                // qi::CancelledError at once, and the save
//                                // runs on to its end
//
// Contract (asyncio 3.13):
// - qi::shield(x) takes a qi::Coro<T> (made a task at once), a qi::Task<T>
//   or a qi::Future<T>, and returns a qi::Future<T> (the outer future) that
//   finishes as x does: its value, its exception (original type), or
//   cancelled when x is cancelled.
// - Cancelling the outer future — as cancelling the task awaiting it does —
//   cancels only the outer: the awaiter gets qi::CancelledError, x runs on.
//   shield then lets go of x: what x ends with is x's own (keep a handle to
//   read it; an exception nobody retrieves is reported, as in asyncio).
// - When x is already done, shield returns x itself (as a Future<T>); for
//   an lvalue handle, a done future holding a copy of its outcome instead.
// - The value is moved out of x when x is shield's own (a Coro) or was
//   passed as an rvalue; otherwise it is copied.
// Throws at the call: std::invalid_argument for an empty handle or Coro,
// qi::RuntimeError for a Coro that already ran, or for a Coro with no loop
// running. Thread-safety: the loop's thread.
#pragma once

#include <qiloop/structured/detail/children.h>
#include <qiloop/structured/detail/shield.h>

#include <type_traits>
#include <utility>

namespace qi {

// qi::shield()
// See the file comment.
template <detail::awaitable_arg A>
[[nodiscard("co_await the shield (the task runs on anyway, but its result would be lost)")]]
Future<detail::arg_value_t<A>> shield(A&& aw) {
  using T = detail::arg_value_t<A>;
  constexpr bool kMove = detail::moves_result_v<A>;
  QiEventLoop* seen = nullptr;
  detail::check_child(aw, seen, "qi::shield");
  Future<T> inner = detail::make_child(std::forward<A>(aw), detail::children_loop(seen));
  QiEventLoop& loop = *inner.get_loop();
  if (!inner.done()) return detail::ShieldState<T, kMove>::make(loop, detail::StateRef(detail::state_of(inner)));
  // asyncio returns the inner itself; for an lvalue handle that would let
  // `co_await qi::shield(t)` move t's result out, so it gets a copy.
  if constexpr (kMove) {
    return inner;
  } else {
    auto* copy = new detail::FutureState<T>(loop);
    Future<T> outer = detail::FutureFromState<T>::adopt(copy);
    detail::shield_settle<T, false>(*copy, *detail::state_of(inner));
    return outer;
  }
}

}  // namespace qi
