// -----------------------------------------------------------------------------
// File: qiloop/qt/modal.h
// -----------------------------------------------------------------------------
//
// qi::modal runs a blocking modal call — one that runs a nested QEventLoop,
// as QDialog::exec() does — from Qt's event loop, so the awaiting task
// suspends and qiloop keeps running underneath while the call blocks
// (qtinter's modal).
//
// Example:
//
//   QDialog dialog;
//   int code = co_await qi::modal([&] { return dialog.exec(); });
//
// Contract:
// - fn runs once, from Qt's event loop, after the current qiloop step has
//   returned to it: from a slot's eager first step (qi::asyncslot), after
//   emit returns. No qiloop callback is on the stack then, so other tasks,
//   timers, I/O and callbacks keep running inside fn's nested loop (see
//   docs/wakeup-model.md: nested loops entered from injected code; under the
//   UNIX dispatcher a nested exec(QEventLoop::ExcludeSocketNotifiers) holds
//   timers and I/O back until it returns). Both run modes.
// - co_await yields fn's value, or rethrows its exception (original type).
//   fn may return void. The value is moved out.
// - One modal per loop at a time: from the co_await until fn returns (or is
//   dropped, below), another co_await qi::modal on that loop throws
//   qi::RuntimeError — e.g. a task started inside fn's nested loop. Nest
//   dialogs inside fn itself instead.
// - Cancellation: before fn starts, the co_await ends with
//   qi::CancelledError at once and fn never runs. While fn runs it cannot be
//   interrupted: the cancel request waits, and the co_await throws
//   qi::CancelledError when fn returns (fn's value is dropped; an exception it
//   threw is reported as never retrieved), so what fn refers to in the
//   awaiting coroutine's frame stays alive while fn runs. A task bound to a
//   QObject (<qiloop/qt/bound_task.h>) is the exception: the object's
//   destruction unwinds it at once even while fn runs (QDialog::exec()
//   survives its dialog's deletion; fn must not touch the frame's locals
//   after its nested loop returns).
// - Must be co_awaited from a task of the thread's running loop
//   (qi::RuntimeError otherwise). fn is moved into the posted call; it must
//   not throw out of Qt's event dispatch — qiloop catches everything.
#pragma once

#include <qiloop/coro.h>
#include <qiloop/qt/detail/modal.h>

#include <functional>
#include <type_traits>

namespace qi {

// qi::modal()
// See the file comment.
template <class F>
[[nodiscard("co_await qi::modal(fn): fn runs only when awaited")]]
Coro<std::decay_t<std::invoke_result_t<std::decay_t<F>&>>> modal(F&& fn) {
  using R = std::decay_t<std::invoke_result_t<std::decay_t<F>&>>;
  return detail::run_modal<R, std::decay_t<F>>(std::forward<F>(fn));
}

}  // namespace qi
