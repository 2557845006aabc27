// event_loop.cpp — QiEventLoop: construction, the checks, and the scheduling
// API (everything here only enqueues; scheduler.cpp runs what was enqueued).
//
// The loop's other jobs live beside it: scheduler.cpp (the slice and its
// iterations), run_modes.cpp (run_forever, stop, the wake event, attached
// mode with QiRunner), shutdown.cpp (close, shutdown, the task registry),
// exception_handler.cpp.
#include <qiloop/detail/hooking_state.h>
#include <qiloop/event_loop.h>

#include "loop_impl.h"

#include <QtCore/QCoreApplication>
#include <QtCore/QThread>

#include <cstdlib>

Q_LOGGING_CATEGORY(lcQiloop, "qiloop")

using qi::detail::CallbackNode;
using qi::detail::LoopImpl;
using qi::detail::release_node;

bool qi::detail::debug_from_env() noexcept {
  const char* v = std::getenv("QILOOP_DEBUG");
  return v && *v && std::string_view(v) != "0";
}

void qi::detail::report_stale_fds(QiEventLoop& loop, qi::detail::Backend& backend) noexcept {
  if (!backend.has_stale()) return;
  for (const qi::detail::StaleRegistration& s : backend.take_stale()) {
    for (CallbackNode* n : {s.handlers.reader, s.handlers.writer}) {
      if (!n) continue;
      qi::detail::cancel_node(n);
      release_node(n);
    }
    qi::ExceptionContext ctx;
    try {
      ctx.message = s.message();
    } catch (...) {
    }
    loop.call_exception_handler(ctx);
  }
}

QiEventLoop::QiEventLoop(QObject* parent)
    : QObject(parent), debug_(qi::detail::debug_from_env()), impl_(std::make_unique<LoopImpl>(*this, &QiEventLoop::on_backend_ready)) {
  inbox_head_ = &impl_->inbox.head();
}

QiEventLoop::~QiEventLoop() {
  if (thread() != QThread::currentThread())
    qFatal("QiEventLoop destroyed from a thread that does not own it: destroy it on its own thread "
           "(QObject::thread()), e.g. with deleteLater()");
  if (running_ || in_slice_)
    qFatal("QiEventLoop destroyed while running: call stop() and let run_forever() return (attached mode: "
           "destroy the QiRunner) before destroying the loop");
  if (impl_->attached)
    qFatal("QiEventLoop destroyed while a QiRunner is attached to it: destroy the QiRunner first");
  close();
  // A combinator made after close() may hook on this loop's futures too.
  impl_->tearing_down = true;
  qi::detail::CloseWatch::drop_all(*this);
  impl_->tearing_down = false;
  if (clock_) clock_->loop_ = nullptr;
  // A pending wake event refers to impl_, which goes before ~QObject would
  // delete the event.
  QCoreApplication::removePostedEvents(this, qi::detail::wake_event_type());
}

// --- Checks -------------------------------------------------------------------

void QiEventLoop::check_thread(const char* api) const {
  if (thread() != QThread::currentThread())
    throw qi::RuntimeError(std::string(api) +
                           ": called from a thread that does not own this QiEventLoop; call it on the loop's "
                           "thread (QObject::thread()) or use call_soon_threadsafe");
}

bool QiEventLoop::check_can_schedule(const char* api) {
  if (closed_) {
    if (impl_->tearing_down) return false;  // a destructor run by close(): ignored
    throw qi::RuntimeError(std::string(api) +
                           ": the event loop is closed; schedule work before close(), or create a new QiEventLoop");
  }
  if (debug_) check_thread(api);
  return true;
}

void QiEventLoop::check_can_run(const char* api, RunBy by) const {
  check_thread(api);
  if (closed_) throw qi::RuntimeError(std::string(api) + ": the event loop is closed; create a new QiEventLoop");
  if (running_)
    throw qi::RuntimeError(std::string(api) +
                           ": this event loop is already running; schedule work with call_soon() instead of "
                           "running the loop again");
  if (impl_->attached && by != RunBy::kItsRunner)
    throw qi::RuntimeError(std::string(api) +
                           ": the loop is in attached mode: a QiRunner owns it, and only that runner runs it "
                           "(run_forever / run_until_complete are nested-mode calls). It is stopped: call "
                           "restart() on its QiRunner to run it again, and schedule work with call_soon() meanwhile");
  if (qi::running_loop())
    throw qi::RuntimeError(std::string(api) +
                           ": another QiEventLoop is already running on this thread; only one loop runs per "
                           "thread: schedule work on that loop, or stop it first");
  if (!QCoreApplication::instance())
    throw qi::RuntimeError(std::string(api) +
                           ": QiEventLoop needs a QCoreApplication: create one (QCoreApplication app(argc, argv)) "
                           "before running the loop");
}

// --- Scheduling (enqueue only) --------------------------------------------------

void QiEventLoop::wake_from_outside() {
  // Injected code (a slot, a QTimer, a nested QEventLoop, code before
  // run_forever) changed what the loop waits for: behave as if it had been
  // made with call_soon_threadsafe. See docs/wakeup-model.md.
  if (running_ && !impl_->exiting) ensure_wake_posted();
}

void QiEventLoop::schedule_timer(CallbackNode* n) {
  impl_->timers.push(n);
  if (!in_slice_) wake_from_outside();
}

bool QiEventLoop::schedule_threadsafe(CallbackNode* n) {
  // On the loop's own thread it is a plain call_soon, so that
  // call_soon(a); call_soon_threadsafe(b); call_soon(c) runs a, b, c as in
  // asyncio (the inbox is only read at the start of an iteration).
  if (thread() == QThread::currentThread() && !closed_) {
    push_ready(n);
    if (!in_slice_) wake_from_outside();
    return true;
  }
  switch (impl_->inbox.push(n)) {
    case qi::detail::ThreadInbox::Push::kQueued:
      return true;
    case qi::detail::ThreadInbox::Push::kWake:
      impl_->backend.wake();
      return true;
    case qi::detail::ThreadInbox::Push::kSealed:
      break;
  }
  qi::detail::free_node(n);  // no queue holds it and no handle will
  // tearing_down is only read on the loop's own thread, where close() runs.
  if (thread() == QThread::currentThread() && impl_->tearing_down) return false;
  throw qi::RuntimeError(
      "call_soon_threadsafe: the event loop is closed; schedule work before close(), or create a new QiEventLoop");
}

void QiEventLoop::add_fd_handler(int fd, qi::detail::FdDirection direction, CallbackNode* n) {
  if (closed_ || debug_) {
    bool ok = false;
    try {
      ok = check_can_schedule(direction == qi::detail::FdDirection::kWrite ? "add_writer" : "add_reader");
    } catch (...) {
      release_node(n);
      throw;
    }
    if (!ok) {
      release_node(n);
      return;
    }
  }
  CallbackNode* old;
  try {
    old = impl_->backend.set_handler(fd, direction, n);
  } catch (...) {
    release_node(n);
    report_stale_fds(*this, impl_->backend);
    throw;
  }
  report_stale_fds(*this, impl_->backend);
  if (old) {
    qi::detail::cancel_node(old);
    release_node(old);
  }
  if (!in_slice_) wake_from_outside();
}

bool QiEventLoop::remove_fd_handler(int fd, qi::detail::FdDirection direction) {
  if (closed_) return false;
  if (debug_) check_thread(direction == qi::detail::FdDirection::kWrite ? "remove_writer" : "remove_reader");
  CallbackNode* old = impl_->backend.take_handler(fd, direction);
  report_stale_fds(*this, impl_->backend);
  if (!old) return false;
  qi::detail::cancel_node(old);
  release_node(old);
  if (!in_slice_) wake_from_outside();
  return true;
}

// --- Tuning -------------------------------------------------------------------

void QiEventLoop::set_slow_callback_duration(duration d) noexcept { impl_->slow_callback = d; }

void QiEventLoop::set_slice_budget(duration budget) {
  if (budget <= duration::zero())
    throw std::invalid_argument("set_slice_budget: the budget must be positive (the default is 1 ms)");
  impl_->slice_budget = budget;
}

QiEventLoop::duration QiEventLoop::slice_budget() const noexcept { return impl_->slice_budget; }

qi::LoopStats QiEventLoop::stats() const noexcept { return impl_->stats; }
