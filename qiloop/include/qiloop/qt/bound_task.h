// -----------------------------------------------------------------------------
// File: qiloop/qt/bound_task.h
// -----------------------------------------------------------------------------
//
// Tasks bound to a QObject's life: when the object is destroyed, the task is
// cancelled at once and its frame unwinds right then, inside the object's
// destruction — it is never resumed later against a dangling `this`.
//
// Example:
//
//   qi::Coro<void> Editor::autosave() {            // a member coroutine: uses `this`
//     for (;;) { co_await qi::sleep(30s); save(); }
//   }
//   qi::create_task(autosave(), this);             // ends when the Editor goes
//
// Contract:
// - When `guard` is destroyed (its destroyed() signal), the task gets
//   qi::CancelledError at the co_await it is suspended in, before ~QObject
//   returns: destructors and catch blocks of its coroutines run then. Like any
//   destroyed() handler this runs after the guard's derived-class destructors:
//   a catch block or destructor of the task must not touch the guard's
//   members (its QObject part is still there). If the task is running at that
//   moment (its own step destroys the guard), the cancel lands at its next
//   co_await. A task awaiting another task does not wait for that one to
//   finish cancelling. (TaskCore::cancel_now in <qiloop/detail/task_core.h>.)
// - A task that finishes first leaves nothing connected to the guard (the
//   connection goes with the task's completion, one loop iteration later).
// - A null guard throws qi::ValueError. A guard already being destroyed (inside
//   ~QObject, e.g. in a destroyed() handler) cancels the task at once, as its
//   destruction would have. The guard must live in the task's loop's thread
//   (qi::RuntimeError otherwise) and be destroyed there.
// - Loop thread only. Re-entrancy: may be called from tasks and callbacks.
#pragma once

#include <qiloop/event_loop.h>
#include <qiloop/export.h>
#include <qiloop/task.h>

#include <QtCore/QObject>

#include <string>

namespace qi {

namespace detail {
// Throws what the file comment says for a null guard or (unless
// !same_thread) one of another thread. `api` names the caller in errors.
QILOOP_EXPORT void check_guard(const QObject* guard, const char* api, bool same_thread = true);
// check_guard, then binds the task to guard (the file comment's contract).
QILOOP_EXPORT void bind_to_object(TaskCore& task, QObject* guard, const char* api);
// Whether obj is inside ~QObject (its destroyed() was or is being emitted).
QILOOP_EXPORT bool being_destroyed(const QObject* obj) noexcept;
}  // namespace detail

// qi::bind_task()
// Binds a task already made (loop.run_task, create_task) to guard's life.
// Binding one task to several objects ends it with the first to go.
template <class T>
void bind_task(const Task<T>& task, QObject* guard) {
  detail::bind_to_object(*static_cast<detail::TaskCore*>(detail::state_of<T>(task)), guard, "qi::bind_task");
}

// qi::create_task(coro, guard)
// qi::create_task(coro) (it starts on a later iteration) bound to guard's
// life. Throws as qi::create_task, and as the file comment says for guard.
template <class T>
Task<T> create_task(Coro<T> coro, QObject* guard, std::string name = {}) {
  detail::check_guard(guard, "qi::create_task");  // before a task exists that it would leave behind
  Task<T> task = get_running_loop().create_task(std::move(coro), std::move(name));
  detail::bind_to_object(*static_cast<detail::TaskCore*>(detail::state_of<T>(task)), guard, "qi::create_task");
  return task;
}

}  // namespace qi
