// shutdown.cpp — the end of a QiEventLoop: shutdown() (cancel the leftover
// tasks, close the leftover async generators, run their clean-up, close),
// close(), and the registry of pending tasks both walk.
#include <qiloop/async_generator.h>
#include <qiloop/detail/hooking_state.h>
#include <qiloop/event_loop.h>

#include "loop_impl.h"

#include <algorithm>

#include <QtCore/QAbstractEventDispatcher>
#include <QtCore/QCoreApplication>
#include <QtCore/QEventLoop>

using qi::detail::CallbackNode;
using qi::detail::LoopImpl;
using qi::detail::release_node;

namespace {

// What close() does to each node it takes: the callback is destroyed now,
// not whenever a Handle (which may outlive the loop) lets go of the node.
void discard(CallbackNode* n) noexcept {
  qi::detail::destroy_callback(n);
  release_node(n);
}

// The dispatcher shutdown runs the loop with, or null when it cannot run it:
// that needs Qt's event loop (for timers and I/O) and this thread free of
// other running loops.
QAbstractEventDispatcher* shutdown_dispatcher() {
  QAbstractEventDispatcher* dispatcher = QAbstractEventDispatcher::instance();
  if (!QCoreApplication::instance() || qi::running_loop()) return nullptr;
  return dispatcher;
}

// Discards a detached list of nodes linked through next.
void discard_list(CallbackNode* n) noexcept {
  while (n) {
    CallbackNode* next = n->next;
    discard(n);
    n = next;
  }
}

}  // namespace

void QiEventLoop::close() {
  check_thread("close");
  if (running_)
    throw qi::RuntimeError(
        "close: cannot close a running event loop; call stop() and let run_forever() return first (attached "
        "mode: destroy the QiRunner)");
  if (closed_) return;
  // First: no worker sends a completion to this loop from now on.
  close_executors();
  // Signals go back to their previous dispositions while the pipe's reader
  // can still be removed.
  close_signal_handlers();
  // Children still running are killed and reaped while their pidfds'
  // watches can go (their pipes are transports: closed next).
  close_subprocesses();
  // Transports still open close their fds while their watches can go.
  close_transports();
  closed_ = true;
  // From here on, scheduling from the destructors of the callbacks we drop
  // is ignored (check_can_schedule() returns false while tearing_down).
  impl_->tearing_down = true;
  CallbackNode* inbox = impl_->inbox.seal();
  std::vector<CallbackNode*> handlers = impl_->backend.close();
  std::vector<qi::detail::TimerHeap::Entry> timers = impl_->timers.take_all();
  CallbackNode* ready = nullptr;
  CallbackNode** tail = &ready;
  while (!ready_.empty()) {
    CallbackNode* n = ready_.pop();
    *tail = n;
    tail = &n->next;
  }
  *tail = nullptr;
  impl_->iter_remaining = 0;
  discard_list(ready);
  discard_list(inbox);
  for (auto& e : timers) discard(e.node);
  for (CallbackNode* n : handlers) {
    qi::detail::cancel_node(n);
    discard(n);
  }
  destroy_pending_tasks();
  // Their wake-ups were dropped above, unrun: the references held for them go.
  for (qi::detail::TaskCore* t : std::exchange(impl_->stale_wakes, {})) t->forget_stale_wake();
  qi::detail::AsyncGenBase::forget_all(*this);
  // Last: what the tasks awaited is let go by now, but a combinator's future
  // (gather's, shield's) and the pending futures it watches hold each other.
  qi::detail::CloseWatch::drop_all(*this);
  impl_->tearing_down = false;
}

void QiEventLoop::shutdown() {
  check_thread("shutdown");
  if (running_) throw qi::RuntimeError("shutdown: the loop is running; stop it first (shutdown runs it itself)");
  if (closed_) return;
  // The runs below are shutdown's own: they do not emit stopped().
  impl_->shutting_down = true;
  cancel_leftover_tasks();
  close_leftover_asyncgens();
  shutdown_default_executor_at_exit();
  // Let cleanup that is already scheduled run, as a running loop would.
  drain_ready(LoopImpl::kShutdownRounds);
  impl_->shutting_down = false;
  close();
}

void QiEventLoop::cancel_leftover_tasks() {
  QAbstractEventDispatcher* dispatcher = shutdown_dispatcher();
  if (!impl_->tasks_head || !dispatcher) return;
  for (int round = 0; round < kShutdownCancelRounds && impl_->tasks_head; ++round) {
    std::vector<qi::TaskRef> pending;
    for (auto* t = impl_->tasks_head; t; t = t->next_in_loop) pending.emplace_back(t);
    for (auto& f : pending) f.cancel("the event loop is shutting down");
    run_shutdown_round(dispatcher);
    // asyncio.run reports what failed otherwise while being cancelled.
    for (auto& f : pending) {
      if (!f.done() || f.cancelled()) continue;
      if (std::exception_ptr e = f.state()->exception()) {
        qi::ExceptionContext ctx;
        ctx.message = "unhandled exception during shutdown in " + f.describe();
        ctx.exception = e;
        ctx.task = f;
        call_exception_handler(ctx);
      }
    }
  }
  for (auto* t = impl_->tasks_head; t; t = t->next_in_loop) {
    qi::ExceptionContext ctx;
    ctx.message = t->future().describe() + " did not finish after being cancelled at shutdown";
    ctx.task = qi::TaskRef(t);
    call_exception_handler(ctx);
  }
}

// asyncio.Runner.close() runs loop.shutdown_asyncgens() after cancelling the
// tasks: generators the tasks left suspended (held beyond them) are closed
// with aclose(), so their clean-up may still await. Bounded by one round; a
// closer still pending after it is destroyed (and reported) by close().
void QiEventLoop::close_leftover_asyncgens() {
  QAbstractEventDispatcher* dispatcher = shutdown_dispatcher();
  if (!impl_->asyncgens || !dispatcher) return;
  qi::Task<void> closing = create_task(shutdown_asyncgens(), "shutdown_asyncgens");
  run_shutdown_round(dispatcher);
}

// asyncio.Runner.close() then runs loop.shutdown_default_executor(): the
// default executor's threads are waited for, at most
// executor_shutdown_timeout() (which reports what still runs then). The
// round's own bound only backs that one up.
void QiEventLoop::shutdown_default_executor_at_exit() {
  QAbstractEventDispatcher* dispatcher = shutdown_dispatcher();
  if (!impl_->executors.default_executor || !dispatcher) return;  // close() shuts it down without waiting
  qi::Task<void> shutting = create_task(shutdown_default_executor(), "shutdown_default_executor");
  run_shutdown_round(dispatcher, impl_->executors.shutdown_timeout + kShutdownRoundTime);
}

// Runs the loop until every task is done (unregister_task stops the loop) or
// the round's time is up. Not through QEventLoop::exec(), which returns at
// once while the thread's quit flag is set (after QThread::quit() in a
// worker, or QCoreApplication::exit()): clean-up must run whatever Qt was
// told, so the thread's events are pumped directly until end_run()
// interrupts the pump.
void QiEventLoop::run_shutdown_round(QAbstractEventDispatcher* dispatcher, duration limit_time) {
  impl_->stop_when_no_tasks = true;
  qi::TimerHandle limit = call_later(limit_time, [this] { stop(); });
  start_running(RunMode::kNested);
  while (!impl_->exiting) dispatcher->processEvents(QEventLoop::AllEvents | QEventLoop::WaitForMoreEvents);
  finish_running();
  impl_->stop_when_no_tasks = false;
  limit.cancel();
}

// --- Tasks ----------------------------------------------------------------------

void QiEventLoop::register_task(qi::detail::TaskCore* t) noexcept {
  t->prev_in_loop = nullptr;
  t->next_in_loop = impl_->tasks_head;
  if (impl_->tasks_head) impl_->tasks_head->prev_in_loop = t;
  impl_->tasks_head = t;
  ++impl_->task_count;
}

void QiEventLoop::unregister_task(qi::detail::TaskCore* t) noexcept {
  (t->prev_in_loop ? t->prev_in_loop->next_in_loop : impl_->tasks_head) = t->next_in_loop;
  if (t->next_in_loop) t->next_in_loop->prev_in_loop = t->prev_in_loop;
  t->prev_in_loop = t->next_in_loop = nullptr;
  --impl_->task_count;
  if (impl_->task_count == 0 && impl_->stop_when_no_tasks && running_) {
    impl_->stopping = true;
    if (!in_slice_) wake_from_outside();
  }
}

void QiEventLoop::hold_stale_wake(qi::detail::TaskCore* t) { impl_->stale_wakes.push_back(t); }

void QiEventLoop::drop_stale_wake(qi::detail::TaskCore* t) noexcept {
  auto& v = impl_->stale_wakes;
  if (auto it = std::find(v.begin(), v.end(), t); it != v.end()) v.erase(it);
}

std::size_t QiEventLoop::pending_tasks() const noexcept { return impl_->task_count; }

void QiEventLoop::destroy_pending_tasks() noexcept {
  while (qi::detail::TaskCore* t = impl_->tasks_head) t->destroy_pending();
}
