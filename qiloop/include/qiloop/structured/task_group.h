// -----------------------------------------------------------------------------
// File: qiloop/structured/task_group.h
// -----------------------------------------------------------------------------
//
// qi::TaskGroup is asyncio.TaskGroup (3.13 rules): tasks started in a group
// are awaited together, and the first that fails takes the others down.
//
// Example:
//
//   qi::TaskGroup g;                          // `async with asyncio.TaskGroup() as g:`
//   qi::Task<int> a = g.create_task(fetch(1));
//   qi::Task<int> b = g.create_task(fetch(2));
//   co_await g.wait();                        // the `async with` exit
//   use(a.result(), b.result());
//
// The group belongs to the task that creates it (its parent, whose body
// runs between the constructor and wait()). Rules:
// - wait() waits until every child is done, children added meanwhile
//   included. If none failed it returns; if one failed it rethrows that
//   exception itself; if two or more failed it throws qi::ExceptionGroup
//   holding them in the order they failed. A child that ends cancelled is
//   not a failure.
// - The first failure (an exception other than qi::CancelledError) cancels
//   every other child and the parent once (Task::cancel()): the body's
//   current co_await — or wait() itself — gets qi::CancelledError. That
//   cancellation is the group's: wait() takes it back (uncancel()) and
//   throws the failure instead. A body interrupted so hands its
//   CancelledError to wait(body_error), the `async with` exit with the
//   body's exception:
//
//     std::exception_ptr body;
//     try { co_await work(); } catch (...) { body = std::current_exception(); }
//     co_await g.wait(body);                  // the group's failure, not CancelledError
//
//   Any body_error cancels the children; one that is not a CancelledError
//   counts as one more failure (listed last).
// - A cancel of the parent from outside while wait() waits cancels the
//   children, waits for them, and stays a qi::CancelledError — unless a
//   child failed, whose failure then wins and the outside request is put
//   back on the parent (it lands at its next co_await), as asyncio does.
// - create_task() once wait() has finished, or once the group is aborting
//   (a child failed, or wait() was cancelled), throws qi::RuntimeError; the
//   Coro is then destroyed without running (asyncio closes it).
// - No child outlives the group unnoticed: a group destroyed before wait()
//   finished cancels the children still pending and reports it to the
//   loop's exception handler ("TaskGroup destroyed ..."), and reports every
//   child failure that wait() did not rethrow.
// - KeyboardInterrupt / SystemExit have no C++ counterpart: nothing is
//   special but qi::CancelledError.
//
// Throws: qi::RuntimeError from the constructor outside a task, from
// create_task as above, and from wait() when it is not awaited by the
// parent or is awaited twice.
//
// Thread-safety: the loop's thread only. Re-entrancy: create_task may be
// called from the children, other tasks and callbacks of that loop.
// Memory: one allocation per group (its book of children, shared with the
// children's done callbacks), one hash-map slot and one done callback per
// pending child.
#pragma once

#include <qiloop/coro.h>
#include <qiloop/event_loop.h>
#include <qiloop/export.h>
#include <qiloop/future.h>
#include <qiloop/task.h>

#include <exception>
#include <memory>
#include <string>
#include <utility>

namespace qi {

namespace detail {
class TaskGroupState;
}

// qi::TaskGroup
//
// Neither copyable nor movable: its children's done callbacks refer to it.
class QILOOP_EXPORT TaskGroup {
 public:
  // TaskGroup::TaskGroup()
  // A group whose parent is the current task. Throws qi::RuntimeError
  // outside a task.
  TaskGroup();
  TaskGroup(const TaskGroup&) = delete;
  TaskGroup& operator=(const TaskGroup&) = delete;
  // TaskGroup::~TaskGroup()
  // Before wait() finished: cancels the children still pending and reports
  // them and every failure not rethrown (see the file comment). Never throws.
  ~TaskGroup();

  // TaskGroup::create_task()
  // Starts coro as a child task (as loop.create_task: its first step runs on
  // a later iteration) and returns it. Throws qi::RuntimeError once the
  // group is finished or aborting (coro is destroyed without running), and
  // what loop.create_task throws.
  template <class T>
  Task<T> create_task(Coro<T> coro, std::string name = {}) {
    check_open(coro);
    Task<T> t = loop_->create_task(std::move(coro), std::move(name));
    adopt(t.ref());
    return t;
  }

  // TaskGroup::wait()
  // The `async with` exit, with the body's exception if it had one (null:
  // none). Waits for every child; then throws the failure, qi::ExceptionGroup,
  // or qi::CancelledError, or returns (see the file comment). Must be awaited
  // by the parent task, once.
  [[nodiscard("co_await it")]] Coro<void> wait(std::exception_ptr body_error = nullptr);

 private:
  // Throws when no child may be added, destroying the coroutine first.
  template <class T>
  void check_open(Coro<T>& coro) {
    if (const char* why = refusal()) [[unlikely]] {
      if (coro.valid()) coro.release().destroy();  // asyncio's coro.close()
      throw_refused(why);
    }
  }
  const char* refusal() const noexcept;
  [[noreturn]] void throw_refused(const char* why) const;
  void adopt(TaskRef child);

  QiEventLoop* loop_;
  std::shared_ptr<detail::TaskGroupState> state_;  // shared with the children's done callbacks
};

}  // namespace qi
