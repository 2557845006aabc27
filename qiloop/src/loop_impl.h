// loop_impl.h — QiEventLoop's private state, shared by the files it is split
// into (event_loop.cpp, scheduler.cpp, run_modes.cpp, shutdown.cpp,
// exception_handler.cpp). Internal.
#pragma once

#include <qiloop/event_loop.h>

#include "backend.h"
#include "net/signal_handlers.h"
#include "threads/loop_executors.h"
#include "thread_inbox.h"
#include "timer_heap.h"

#include <QtCore/QEvent>
#include <QtCore/QLoggingCategory>

#include <atomic>

class QEventLoop;
class QTimer;

Q_DECLARE_LOGGING_CATEGORY(lcQiloop)

namespace qi::detail {

struct LoopImpl {
  using clock = std::chrono::steady_clock;

  // on_ready: what the backend reports through (QiEventLoop::on_backend_ready).
  LoopImpl(QObject& loop, qi::detail::ReadyCallback on_ready) : backend(loop, on_ready) {}

  // The budget is checked once per this many callbacks: reading the clock
  // costs ~20 ns, a callback as little as ~15 ns.
  static constexpr unsigned kBudgetCheckEvery = 32;
  // QiRunner's shutdown runs at most this many iterations of leftovers.
  static constexpr int kShutdownRounds = 100;
  // ...and at most this much real time (begun iterations finish): other
  // threads may keep posting while the loop shuts down.
  static constexpr std::chrono::milliseconds kDrainTime{500};

  TimerHeap timers;
  Backend backend;  // fds, the timer wake-up and the inbox's doorbell (backend.h)
  ThreadInbox inbox;

  QEventLoop* qloop = nullptr;  // nested mode: the QEventLoop of run_forever
  // Our posted wake event, while Qt holds it (atomic: removePostedEvents may
  // delete it on another thread).
  std::atomic<QEvent*> wake_event{nullptr};
  // The other doorbell, for wake-ups made on the loop's thread: a
  // zero-interval Qt timer (its id while armed). See ensure_wake_posted.
  QTimer* doorbell = nullptr;  // a child of the loop, made at the first ring
  // The thread's QEventLoop level the run is served at; a wake-up made in a
  // deeper nested loop posts the wake event instead (ensure_wake_posted).
  int doorbell_level = 0;

  bool attached = false;       // a QiRunner owns the running state
  bool stopping = false;       // stop() was called; honoured at the iteration's end
  bool tearing_down = false;   // close() is destroying callbacks
  bool poll_pending = false;   // the backend reported: poll at the next iteration start
  bool exiting = false;        // nested mode: stop() asked the QEventLoop to exit
  bool shutting_down = false;  // shutdown() runs the loop: no stopped() for those runs
  bool emit_stopped = false;   // attached mode: stopped() is due after the slice
  bool io_was_ready = false;   // the last poll found ready fds: poll again within the slice
  bool rest_poll = false;      // the last poll queued handlers: the next iteration need not poll

  std::size_t iter_remaining = 0;  // callbacks left in the current iteration
  unsigned since_budget_check = 0;
  clock::time_point slice_deadline{};
  clock::time_point last_slice_end{};
  clock::duration slice_budget = std::chrono::milliseconds(1);
  clock::duration slow_callback = std::chrono::milliseconds(100);

  // Pending tasks (an intrusive list through TaskCore::next_in_loop).
  qi::detail::TaskCore* tasks_head = nullptr;
  std::size_t task_count = 0;
  std::vector<qi::detail::TaskCore*> stale_wakes;  // see hold_stale_wake
  bool stop_when_no_tasks = false;  // shutdown: the last task to finish stops the loop

  // Started, unfinished async generators (a weak registry: each unlinks
  // itself when it finishes or goes), and those shutdown_asyncgens() took
  // and has yet to close. Intrusive lists through AsyncGenBase::next_in_list.
  qi::detail::AsyncGenBase* asyncgens = nullptr;
  qi::detail::AsyncGenBase* closing_asyncgens = nullptr;

  // Combinators' futures holding hooks on futures of this loop (an intrusive
  // list through CloseWatch; detail/hooking_state.h).
  qi::detail::CloseWatch* watchers = nullptr;

  // run_in_executor's gate and the default executor (threads/executors.cpp).
  LoopExecutors executors;

  QiEventLoop::ExceptionHandler handler;
  qi::LoopStats stats;

  // add_signal_handler's state, made on first use (net/signals.cpp).
  std::unique_ptr<SignalHandlers> signal_handlers;
};

// The type of the loop's posted wake event (run_modes.cpp).
QEvent::Type wake_event_type() noexcept;

// Reports the registrations the backend dropped as stale (an fd closed
// while watched) and releases their handlers (event_loop.cpp). Each backend
// call that can find one is followed by this.
void report_stale_fds(QiEventLoop& loop, Backend& backend) noexcept;

// Debug mode's default: QILOOP_DEBUG is set, and not to "" or "0".
bool debug_from_env() noexcept;

// The running-loop registry (one per process: the library is shared).
void set_running_loop(QiEventLoop* loop) noexcept;

}  // namespace qi::detail
