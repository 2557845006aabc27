// -----------------------------------------------------------------------------
// File: qiloop/qt/qfuture.h
// -----------------------------------------------------------------------------
//
// Makes a QFuture<T> awaitable in any qi::Coro: a QPromise's future, what
// QtConcurrent::run returns, a QFuture of a Qt API. Including this header
// (the umbrella <qiloop/qiloop.h> does) is all it takes.
//
// Example:
//
//   qi::Coro<int> count(QString path) {
//     int n = co_await QtConcurrent::run(count_lines, path);  // resumes on this loop's thread
//     co_return n;
//   }
//
// The contract of `co_await future` (and of `co_await std::move(future)`):
// - Result: QFuture::result(), a copy (the first result of a QFuture with
//   several). For a move-only T, `co_await std::move(future)` moves it out
//   with takeResult(); Qt then resets the QFuture and every copy of it to a
//   never-started state (awaiting one again waits for a start that never
//   comes), so take a result out only where nothing else awaits it. A
//   copyable T is copied even from an rvalue: takeResult() also races, in Qt
//   6.4, with the destructor of a QtConcurrent task still ending on its pool
//   thread (ThreadSanitizer shows it), and Qt's own types copy cheaply.
//   QFuture<void> yields nothing.
// - Exception: the one stored in the QFuture (QPromise::setException, or
//   thrown inside QtConcurrent::run) is rethrown with its original type:
//   QtConcurrent's QUnhandledException wrapper is taken off.
// - Cancellation, both ways: cancelling the awaiting task cancels the
//   QFuture (QFuture::cancel()) and the task gets qi::CancelledError at
//   once, without waiting for the producer. A QFuture cancelled by someone
//   else, or whose QPromise was destroyed unfinished, ends the wait with
//   qi::CancelledError ("the QFuture was cancelled") — never a hang. The
//   producer is not interrupted: cancelling only asks it (QPromise::isCanceled()).
// - A QFuture already finished (or cancelled) does not suspend the task.
// - A QFuture that finished without any result (a QPromise finished
//   without addResult) throws qi::RuntimeError.
// - The task resumes on its loop's thread, whichever thread finishes the
//   QFuture: a QFutureWatcher made on that thread watches it while the task
//   waits. (Not QFuture::then: a QFuture holds one continuation, and then()
//   would replace one the caller attached, or lose ours to theirs.)
//
// The await is qiloop's own, through qi::Coro's await_transform (not a
// global operator co_await): it coexists with QCoro's `co_await future` in
// QCoro coroutines. Inside a qi::Coro, qiloop's always wins. Awaiting
// outside a task (a coroutine no task runs) throws qi::RuntimeError.
//
// Thread-safety: the QFuture may be finished, cancelled or given results on
// any thread, as Qt allows. Memory: nothing for a finished QFuture; one
// state holding a QFutureWatcher otherwise.
#pragma once

#include <qiloop/detail/awaiters.h>
#include <qiloop/detail/call_graph.h>
#include <qiloop/detail/future_state.h>
#include <qiloop/export.h>

#include <QtCore/QFuture>

#include <coroutine>
#include <type_traits>
#include <utility>

namespace qi::detail {

// Watches `f` from the current task's loop thread and registers the task's
// wait on the returned state, which finishes once `f` is finished or
// cancelled; cancelling the state cancels `f`. Throws qi::RuntimeError
// outside a task. (src/qt/qfuture.cpp)
QILOOP_EXPORT StateRef<FutureStateBase> await_qfuture(QFuture<void> f, std::coroutine_handle<> h);
// For a finished or cancelled QFuture: throws its exception (unwrapped),
// qi::CancelledError when cancelled without one, qi::RuntimeError when
// `need_result` and it holds none.
QILOOP_EXPORT void check_qfuture(QFutureInterfaceBase f, bool need_result);

template <class T, bool Move>
struct [[nodiscard]] QFutureAwaiter {
  QFuture<T> future;
  StateRef<FutureStateBase> wait;  // set when the task suspended

  bool await_ready() const { return future.isFinished() || future.isCanceled(); }
  void await_suspend(std::coroutine_handle<> h) { wait = await_qfuture(QFuture<void>(future), h); }
  T await_resume() {
    if (wait) {
      after_resume(wait->cancelled());
      wait->check_result();  // the task's own cancellation: its CancelledError
    }
    check_qfuture(QFutureInterfaceBase::get(future), !std::is_void_v<T>);
    if constexpr (std::is_void_v<T>)
      return;
    else if constexpr (Move && !std::is_copy_constructible_v<T>)
      return future.takeResult();
    else
      return future.result();
  }
};

template <class T>
struct AwaitAdapter<QFuture<T>> {
  static QFutureAwaiter<T, false> adapt(const QFuture<T>& f) {
    static_assert(std::is_void_v<T> || std::is_copy_constructible_v<T>,
                  "qiloop: co_await on an lvalue QFuture<T> copies the result, and T is move-only: write "
                  "co_await std::move(future) to take the result out");
    return {f, {}};
  }
  static QFutureAwaiter<T, true> adapt(QFuture<T>&& f) { return {std::move(f), {}}; }
};

}  // namespace qi::detail
