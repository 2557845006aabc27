// -----------------------------------------------------------------------------
// File: qiloop/qt/asyncslot.h
// -----------------------------------------------------------------------------
//
// qi::asyncslot turns a coroutine function into a slot: each call runs it as
// a task on the thread's running loop, starting inside the call (qtinter's
// asyncslot, QCoro's coroutine slots).
//
// Example:
//
//   QObject::connect(button, &QPushButton::clicked, button, qi::asyncslot([button]() -> qi::Coro<void> {
//     button->setEnabled(false);                 // runs inside emit: sender() is valid here
//     co_await qi::sleep(1s);
//     button->setEnabled(true);
//   }));
//   // Bound to the receiver: its destruction cancels the slot's tasks at once.
//   QObject::connect(model, &Model::changed, view, qi::asyncslot(view, &View::refresh));
//
// Contract:
// - Each call run_task()s f(args...) on the running loop of the calling
//   thread (a queued connection's: the receiver's): the code before the first
//   co_await runs inside the call — inside emit for a direct connection, with
//   QObject::sender() valid when connected with a receiver (context) object.
// - Arguments are decayed copies owned by the task (f may take them by value,
//   const& or &&; not by non-const &). Extra signal arguments beyond what f
//   takes are dropped, as Qt does: the longest first part of them f accepts.
// - The task owns a copy of f, so a coroutine lambda's captures live as long
//   as the task; the loop keeps the task alive until it finishes (no handle
//   is returned).
// - An exception escaping the task goes to the loop's exception handler when
//   it escapes, once, and counts as retrieved (the task ends normally). A
//   task cancelled — by shutdown (QiRunner, qi::run, loop.shutdown()), or by
//   its receiver's destruction — is not reported.
// - Called with no running loop on the thread: qi::RuntimeError (thrown out
//   of the call, so out of emit). f must return qi::Coro<T> (any T; the value
//   is dropped) and be copyable: otherwise a static_assert says so.
// - asyncslot(receiver, f) binds each task to receiver (<qiloop/qt/bound_task.h>):
//   when receiver is destroyed the task gets qi::CancelledError at its
//   co_await at once, its frame unwinding inside the destruction; a task
//   whose first step destroyed the receiver is cancelled where that step
//   suspended. Called after receiver is gone (or while it is being destroyed)
//   the slot does nothing. f may be a member function of receiver's class
//   (`&View::refresh`), called on receiver. receiver must live in the loop's
//   thread (qi::RuntimeError at the call otherwise); null: qi::ValueError.
// - Thread-safety: the callable may be copied anywhere; calls run on the
//   calling thread's loop.
#pragma once

#include <qiloop/qt/bound_task.h>
#include <qiloop/qt/detail/asyncslot.h>

#include <QtCore/QObject>

#include <functional>
#include <type_traits>
#include <utility>

namespace qi {

// qi::asyncslot(f)
// A copyable callable that QObject::connect accepts (see the file comment).
template <class F>
detail::AsyncSlot<std::decay_t<F>> asyncslot(F&& f) {
  static_assert(std::is_copy_constructible_v<std::decay_t<F>>,
                "qi::asyncslot: the callable must be copyable (each call's task owns a copy of it); capture "
                "move-only state through a std::shared_ptr");
  return detail::AsyncSlot<std::decay_t<F>>(std::forward<F>(f));
}

// qi::asyncslot(receiver, f)
// The same, each task bound to receiver's life; f may be a member function
// of R called on receiver (see the file comment).
template <class R, class F>
auto asyncslot(R* receiver, F&& f) {
  static_assert(std::is_base_of_v<QObject, R>, "qi::asyncslot(receiver, f): receiver must be a QObject");
  static_assert(std::is_copy_constructible_v<std::decay_t<F>>,
                "qi::asyncslot: the callable must be copyable (each call's task owns a copy of it); capture "
                "move-only state through a std::shared_ptr");
  detail::check_guard(receiver, "qi::asyncslot", false);  // its thread matters where the slot runs
  if constexpr (std::is_member_function_pointer_v<std::decay_t<F>>) {
    auto bound = std::bind_front(std::forward<F>(f), receiver);
    return detail::BoundAsyncSlot<decltype(bound)>(receiver, std::move(bound));
  } else {
    return detail::BoundAsyncSlot<std::decay_t<F>>(receiver, std::forward<F>(f));
  }
}

}  // namespace qi
