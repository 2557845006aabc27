// -----------------------------------------------------------------------------
// File: qiloop/structured/gather.h
// -----------------------------------------------------------------------------
//
// qi::gather runs awaitables concurrently and yields all their results, in
// argument order (asyncio.gather); qi::gather_settled yields each one's
// value or exception instead of failing (gather(..., return_exceptions=True)).
//
// Example:
//
//   auto [page, n] = co_await qi::gather(fetch(url), count());  // Coro<QByteArray>, Coro<int>
//   std::vector<int> all = co_await qi::gather(std::move(tasks));  // std::vector<qi::Task<int>>
//   auto [a, b] = co_await qi::gather_settled(t1, t2);              // qi::Outcome<T> each
//   if (!a.has_value()) log(a.exception());
//
// Arguments: each a qi::Coro<T> (made a task on the loop at once, as
// asyncio's ensure_future), a qi::Task<T> or a qi::Future<T>, all of one
// loop; or one std::vector of them. The children start running when gather
// is called, not when it is awaited.
//
// What it yields (the future's T):
//   gather(a, b, ...)          std::tuple<A, B, ...>; a void child gives
//                              std::monostate, so positions match arguments
//   gather(vector<X<T>>)       std::vector<T>; for T = void: void
//   gather_settled(a, b, ...)  std::tuple<qi::Outcome<A>, qi::Outcome<B>, ...>
//   gather_settled(vector)     std::vector<qi::Outcome<T>> (also for void)
//   gather() / empty vector    done at once: std::tuple<> / an empty vector
// A result is moved out of a child gather owns (made from a Coro) or that was
// passed as an rvalue (std::move(task), a vector by rvalue); an lvalue
// handle's result is copied, so its other holders still read it. A child
// passed twice yields its result at both positions (copied).
//
// Contract (asyncio 3.13's gather):
// - The first child to fail fails the gather at once with that exception
//   (original type); the other children keep running, and gather retrieves
//   what they end with, so nothing is reported as "never retrieved".
// - A child cancelled from outside fails the gather with qi::CancelledError
//   (carrying the child's message); the gather future itself is not
//   cancelled, and the other children keep running.
// - Cancelling the gather (the task awaiting it, or cancel() on the future)
//   cancels every child not done; it then fails with qi::CancelledError. It
//   returns false, changing nothing, when no child could be cancelled.
// - gather_settled never fails for a child: a failure is an Outcome holding
//   the exception, a cancelled child one holding qi::CancelledError. Only
//   cancelling the gather itself makes it fail with qi::CancelledError (once
//   every child finished).
// The returned qi::Future is a plain future otherwise: awaitable by several
// tasks, done callbacks, a valid child of another gather, wait or shield.
//
// Throws at the call: std::invalid_argument for an empty handle or Coro,
// qi::RuntimeError for a Coro that already ran, or when only coroutines are
// given and no loop is running, qi::ValueError for futures of different
// loops, or for a child passed twice whose result would be moved out and
// cannot be copied. Nothing is started then.
//
// Thread-safety: the loop's thread. Cost: one future for the gather, one
// done callback per child; no coroutine frame of its own.
#pragma once

#include <qiloop/structured/detail/gather.h>
#include <qiloop/structured/outcome.h>

namespace qi {

// qi::gather()
// The variadic form: a future of std::tuple, in argument order.
template <detail::awaitable_arg... A>
[[nodiscard("co_await the gather (its children run anyway, but their results and errors would be lost)")]]
auto gather(A&&... aws) {
  return detail::gather_args<false>("qi::gather", std::forward<A>(aws)...);
}

// The vector form: a future of std::vector<T> (void for T = void).
template <detail::awaitable_vector V>
[[nodiscard("co_await the gather (its children run anyway, but their results and errors would be lost)")]]
auto gather(V&& aws) {
  return detail::gather_vector<false>("qi::gather", std::forward<V>(aws));
}

// qi::gather_settled()
// As gather, with each element a qi::Outcome (asyncio's return_exceptions=True).
template <detail::awaitable_arg... A>
[[nodiscard("co_await the gather (its children run anyway, but their results and errors would be lost)")]]
auto gather_settled(A&&... aws) {
  return detail::gather_args<true>("qi::gather_settled", std::forward<A>(aws)...);
}

template <detail::awaitable_vector V>
[[nodiscard("co_await the gather (its children run anyway, but their results and errors would be lost)")]]
auto gather_settled(V&& aws) {
  return detail::gather_vector<true>("qi::gather_settled", std::forward<V>(aws));
}

}  // namespace qi
