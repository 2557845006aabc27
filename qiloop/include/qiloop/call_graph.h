// -----------------------------------------------------------------------------
// File: qiloop/call_graph.h
// -----------------------------------------------------------------------------
//
// The await graph (asyncio 3.14's asyncio.graph): where a task is suspended —
// the chain of coroutines it is in, each with its function and the file:line
// of its current co_await — and which tasks await it. The answer to "where
// is my program stuck?" (QiEventLoop::dump_tasks() lists every pending task
// this way).
//
// Example:
//
//   qi::Coro<void> leaf() { co_await qi::sleep(1h); }               // line 3
//   qi::Coro<void> job() { co_await leaf(); }                       // line 4
//   auto t = loop.create_task(job(), "job");
//   auto waiter = loop.create_task([](qi::Task<void> t) -> qi::Coro<void> {
//     co_await t; }(t), "waiter");                                 // line 7
//   ... once both are suspended:
//   qi::print_call_graph(t);
//
//   * Task(name='job', id=0x55d0c2a3b2c0)
//     + Call stack:
//     |   File 'app.cpp', line 3, in async leaf()
//     |   File 'app.cpp', line 4, in async job()
//     + Awaited by:
//       * Task(name='waiter', id=0x55d0c2a3b3d0)
//         + Call stack:
//         |   File 'app.cpp', line 7, in async operator()(qi::Task<void>)
//
// Contract:
// - The call stack is innermost first, as asyncio prints it: the coroutine
//   that waits (on a future, a sleep, or a coroutine of another type) comes
//   first, the task's root coroutine last. Each entry's line is that of its
//   current co_await. Only qi::Coro frames (and others whose promise derives
//   from detail::PromiseBase) are seen; a coroutine of another type ends the
//   chain at the co_await that awaits it.
// - For the running task (qi::current_task(), or no argument), the innermost
//   entry is where capture/format/print_call_graph was called.
// - A task not started yet has an empty call stack (formatted "not started
//   yet"). A task that finished with an exception keeps the chain its
//   coroutines were in when that exception left the innermost one; the
//   innermost entry's line is then its last co_await before the throw
//   (marked last_await; C++ records no throw position). Other finished
//   tasks, and plain futures, have an empty call stack.
// - awaited_by: the tasks whose wake-up waits for this future (they
//   co_await it), then those a combinator linked (detail::add_awaited_by),
//   oldest task first; recursively. A cycle of tasks awaiting each other, or
//   kMaxAwaitedByDepth levels, stops the recursion (awaited_by_cut).
// - limit (asyncio's): keep at most |limit| entries of each call stack: the
//   outermost (closest to the task's start) when positive, the innermost
//   when negative; 0 keeps none; std::nullopt keeps all.
// - format_call_graph writes a task's name as Python's repr() does (asyncio
//   formats `name={task.get_name()!r}`): a newline in it stays "\n".
// - Function names are the compiler's: g++ gives the qualified name with
//   parameter types (`ns::Client::fetch(int)`); clang 14 the bare name
//   (`fetch`). Cost: recording a co_await's site is one store (three with
//   clang 14, which lacks std::source_location); a Coro frame is 8 bytes
//   larger and starts with no site (one store at creation, so that a frame
//   that never reached a co_await is told apart). Capturing walks the frames
//   and, for awaited_by, the loop's pending tasks once.
//
// Thread-safety: the loop's thread only (the frames and tasks belong to it).
// Re-entrancy: callable anywhere on that thread: in a task, a callback, an
// exception handler, a destructor. Throws std::invalid_argument for an empty
// FutureRef.
#pragma once

#include <qiloop/detail/call_graph.h>
#include <qiloop/export.h>
#include <qiloop/future.h>

#include <cstdint>
#include <cstdio>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

namespace qi {

// qi::FrameCallGraphEntry
// One coroutine of a call stack: a snapshot (it stays valid after the frame
// is gone).
struct FrameCallGraphEntry {
  std::string function;    // empty when unknown (a coroutine that had not co_awaited yet)
  std::string file;        // empty when unknown
  std::uint32_t line = 0;  // 0 when unknown
  // The line is the frame's last co_await, not where it stands (the
  // innermost frame of a chain an exception escaped).
  bool last_await = false;
};

// qi::FutureCallGraph
// A future or task, its call stack (innermost first) and the graphs of the
// tasks awaiting it.
struct FutureCallGraph {
  FutureRef future;
  std::vector<FrameCallGraphEntry> call_stack;
  std::vector<FutureCallGraph> awaited_by;
  // True when awaited_by was not followed here: the task is already on the
  // path below (a cycle), or kMaxAwaitedByDepth levels were reached.
  bool awaited_by_cut = false;
  // For a task that finished with an exception thrown by work it awaited
  // (run_in_executor, qi::to_thread): "work submitted at file:line
  // (function)"; formatted as "+ Its exception was thrown by ...".
  std::string exception_origin;
};

// How deep awaited_by is followed: the graph (and its formatting) then
// stays within a bounded stack however long a chain of awaiting tasks is.
inline constexpr int kMaxAwaitedByDepth = 64;

// qi::capture_call_graph()
// The graph of `future` (a task, a plain future). Without a future: the
// current task's, or std::nullopt outside a task. `site` is the call site
// (the running task's innermost entry); leave it defaulted.
QILOOP_EXPORT FutureCallGraph capture_call_graph(const FutureRef& future, std::optional<int> limit = std::nullopt,
                                                 detail::AwaitSite site = detail::AwaitSite::current());
QILOOP_EXPORT std::optional<FutureCallGraph> capture_call_graph(
    std::optional<int> limit = std::nullopt, detail::AwaitSite site = detail::AwaitSite::current());
template <class T>
FutureCallGraph capture_call_graph(const Future<T>& future, std::optional<int> limit = std::nullopt,
                                   detail::AwaitSite site = detail::AwaitSite::current()) {
  return capture_call_graph(future.ref(), limit, site);
}

// qi::format_call_graph()
// The graph in asyncio's layout (see the example above), lines joined by
// '\n' with no trailing newline. Without a future: the current task's, or
// "" outside a task.
QILOOP_EXPORT std::string format_call_graph(const FutureCallGraph& graph);
QILOOP_EXPORT std::string format_call_graph(const FutureRef& future, std::optional<int> limit = std::nullopt,
                                            detail::AwaitSite site = detail::AwaitSite::current());
QILOOP_EXPORT std::string format_call_graph(std::optional<int> limit = std::nullopt,
                                            detail::AwaitSite site = detail::AwaitSite::current());
template <class T>
std::string format_call_graph(const Future<T>& future, std::optional<int> limit = std::nullopt,
                              detail::AwaitSite site = detail::AwaitSite::current()) {
  return format_call_graph(future.ref(), limit, site);
}

// qi::print_call_graph()
// format_call_graph and a newline, written to `out` (stderr by default).
// Without a future: the current task's; nothing outside a task.
QILOOP_EXPORT void print_call_graph(const FutureRef& future, std::FILE* out = stderr,
                                    std::optional<int> limit = std::nullopt,
                                    detail::AwaitSite site = detail::AwaitSite::current());
QILOOP_EXPORT void print_call_graph(const FutureRef& future, std::ostream& out, std::optional<int> limit = std::nullopt,
                                    detail::AwaitSite site = detail::AwaitSite::current());
QILOOP_EXPORT void print_call_graph(std::FILE* out = stderr, std::optional<int> limit = std::nullopt,
                                    detail::AwaitSite site = detail::AwaitSite::current());
template <class T>
void print_call_graph(const Future<T>& future, std::FILE* out = stderr, std::optional<int> limit = std::nullopt,
                      detail::AwaitSite site = detail::AwaitSite::current()) {
  print_call_graph(future.ref(), out, limit, site);
}

namespace detail {

// detail::add_awaited_by()
// detail::remove_awaited_by()
// For combinators (gather, TaskGroup, shield...) whose caller waits for
// `future` without awaiting it directly (asyncio's
// future_add_to_awaited_by / future_discard_from_awaited_by): links `task`
// into future's awaited_by. A set: adding twice links once; removing what
// is not linked does nothing; a task linked to itself is ignored. The link
// holds a reference to the task until it is removed or the future's state
// goes: every add must be followed by its remove. Loop thread.
QILOOP_EXPORT void add_awaited_by(const FutureRef& future, const TaskRef& task);
QILOOP_EXPORT void remove_awaited_by(const FutureRef& future, const TaskRef& task) noexcept;

}  // namespace detail

}  // namespace qi
