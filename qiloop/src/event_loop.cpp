// event_loop.cpp — QiEventLoop: the scheduler and its two run modes.
//
// Reading guide: run_slice() is what Qt calls; it runs begin_iteration() +
// run_ready() (asyncio's _run_once) back to back within the slice budget, and
// end_slice() then tells Qt when to call again. Everything else only enqueues.
#include <qiloop/event_loop.h>

#include "loop_impl.h"

#include <QtCore/QAbstractEventDispatcher>
#include <QtCore/QCoreApplication>
#include <QtCore/QEvent>
#include <QtCore/QEventLoop>
#include <QtCore/QSocketNotifier>
#include <QtCore/QThread>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <limits>

Q_LOGGING_CATEGORY(lcQiloop, "qiloop")

using qi::detail::CallbackNode;
using qi::detail::LoopImpl;
using qi::detail::release_node;

namespace {

const QEvent::Type kWakeEvent = static_cast<QEvent::Type>(QEvent::registerEventType());

// The loop's posted wake-up. The loop's record of it (LoopImpl::wake_event)
// cannot outlive it, and neither can the wake-up itself: deleted unseen — by
// QCoreApplication::removePostedEvents (on any thread: it is thread-safe) or
// a dying application — the event clears the record and rings the epoll fd,
// so the loop still runs the work it was posted for. (Not by posting again:
// a dying application deletes its events under the lock postEvent takes.)
class WakeEvent final : public QEvent {
 public:
  explicit WakeEvent(LoopImpl* loop) : QEvent(kWakeEvent) {
    loop->wake_event.store(this, std::memory_order_relaxed);
    // Released here and acquired in the destructor: another thread may
    // delete the event, and Qt's own hand-over (its posted-event lock) is
    // invisible to ThreadSanitizer.
    loop_.store(loop, std::memory_order_release);
  }
  ~WakeEvent() override {
    QEvent* self = this;
    LoopImpl* loop = loop_.load(std::memory_order_acquire);
    if (loop && loop->wake_event.compare_exchange_strong(self, nullptr, std::memory_order_acq_rel))
      loop->selector.wake();  // a no-op once the loop is closed
  }
  // Delivered: the loop may be destroyed before Qt deletes the event.
  void disarm() noexcept {
    QEvent* self = this;
    if (LoopImpl* loop = loop_.exchange(nullptr, std::memory_order_acq_rel))
      loop->wake_event.compare_exchange_strong(self, nullptr, std::memory_order_acq_rel);
  }

 private:
  std::atomic<LoopImpl*> loop_;
};

bool env_debug() {
  const char* v = std::getenv("QILOOP_DEBUG");
  return v && *v && std::string_view(v) != "0";
}

std::string describe(const std::exception_ptr& e) {
  if (!e) return {};
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (const qi::CancelledError& c) {
    return std::string("qi::CancelledError: ") + c.what();
  } catch (...) {
    return "exception of unknown type";
  }
}

// Destroys a detached list of nodes linked through next.
void release_list(CallbackNode* n) noexcept {
  while (n) {
    CallbackNode* next = n->next;
    qi::detail::drop_callback(n);
    release_node(n);
    n = next;
  }
}

// Reports the registrations the selector dropped as stale (an fd closed
// while watched) and releases their handlers. Each selector call that can
// find one is followed by this.
void report_stale_fds(QiEventLoop& loop, qi::detail::Selector& selector) noexcept {
  if (!selector.has_stale()) return;
  for (const qi::detail::Selector::Stale& s : selector.take_stale()) {
    for (CallbackNode* n : {s.reader, s.writer}) {
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

}  // namespace

QiEventLoop::QiEventLoop(QObject* parent)
    : QObject(parent), debug_(env_debug()), impl_(std::make_unique<LoopImpl>()) {
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
  if (clock_) clock_->loop_ = nullptr;
  // A pending wake event refers to impl_, which goes before ~QObject would
  // delete the event.
  QCoreApplication::removePostedEvents(this, kWakeEvent);
}

// --- Checks -------------------------------------------------------------------

void QiEventLoop::check_thread(const char* api) const {
  if (thread() != QThread::currentThread())
    throw qi::RuntimeError(std::string(api) +
                           ": called from a thread that does not own this QiEventLoop; call it on the loop's "
                           "thread (QObject::thread()) or use call_soon_threadsafe");
}

bool QiEventLoop::admit(const char* api) {
  if (closed_) {
    if (impl_->tearing_down) return false;  // a destructor run by close(): ignored
    throw qi::RuntimeError(std::string(api) +
                           ": the event loop is closed; schedule work before close(), or create a new QiEventLoop");
  }
  if (debug_) check_thread(api);
  return true;
}

void QiEventLoop::check_can_run(const char* api, bool restart) const {
  check_thread(api);
  if (closed_) throw qi::RuntimeError(std::string(api) + ": the event loop is closed; create a new QiEventLoop");
  if (running_)
    throw qi::RuntimeError(std::string(api) +
                           ": this event loop is already running; schedule work with call_soon() instead of "
                           "running the loop again");
  if (impl_->attached && !restart)
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
  if (running_ && !impl_->wake_event.load(std::memory_order_relaxed) && !impl_->exiting) post_wake();
}

void QiEventLoop::post_wake() {
  ++impl_->stats.posted_wakeups;
  QCoreApplication::postEvent(this, new WakeEvent(impl_.get()));
}

void QiEventLoop::schedule_timer(CallbackNode* n) {
  n->timer_loop = this;
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
      impl_->selector.wake();
      return true;
    case qi::detail::ThreadInbox::Push::kSealed:
      break;
  }
  n->drop();
  release_node(n);
  // tearing_down is only read on the loop's own thread, where close() runs.
  if (thread() == QThread::currentThread() && impl_->tearing_down) return false;
  throw qi::RuntimeError(
      "call_soon_threadsafe: the event loop is closed; schedule work before close(), or create a new QiEventLoop");
}

void QiEventLoop::add_fd_handler(int fd, bool write, CallbackNode* n) {
  n->drop();  // no handle is returned: the selector keeps the only reference
  if (closed_ || debug_) {
    bool ok = false;
    try {
      ok = admit(write ? "add_writer" : "add_reader");
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
    old = impl_->selector.set_handler(fd, write, n);
  } catch (...) {
    release_node(n);
    report_stale_fds(*this, impl_->selector);
    throw;
  }
  report_stale_fds(*this, impl_->selector);
  if (old) {
    qi::detail::cancel_node(old);
    release_node(old);
  }
  if (!in_slice_) wake_from_outside();
}

bool QiEventLoop::remove_fd_handler(int fd, bool write) {
  if (closed_) return false;
  if (debug_) check_thread(write ? "remove_writer" : "remove_reader");
  CallbackNode* old = impl_->selector.take_handler(fd, write);
  report_stale_fds(*this, impl_->selector);
  if (!old) return false;
  qi::detail::cancel_node(old);
  release_node(old);
  if (!in_slice_) wake_from_outside();
  return true;
}

// --- Running ------------------------------------------------------------------

void LoopImpl::post_wake(QiEventLoop& loop) { loop.post_wake(); }

void LoopImpl::enable_notifier(bool on) {
  if (!notifier || notifier_enabled == on) return;
  notifier->setEnabled(on);
  notifier_enabled = on;
}

namespace {

// Counts the QCoreApplications made since the first notifier: a socket
// notifier is registered with the event dispatcher of the application that
// existed when it was enabled, and dies deaf with it.
std::atomic<unsigned> g_app_generation{0};

// Runs in every later QCoreApplication's constructor (qAddPreRoutine keeps
// it for re-created applications), on its thread, with the new dispatcher
// in place: the thread's running loop, whose notifier is now deaf, gets a
// wake event, and the slice it runs makes a new notifier (watch_epoll_fd).
void on_new_application() {
  g_app_generation.fetch_add(1, std::memory_order_relaxed);
  if (QiEventLoop* loop = qi::running_loop()) LoopImpl::post_wake(*loop);
}

}  // namespace

// Makes Qt watch the epoll fd, through the current application's dispatcher.
void QiEventLoop::watch_epoll_fd() {
  LoopImpl& I = *impl_;
  static const bool registered = (qAddPreRoutine(on_new_application), true);
  (void)registered;
  const unsigned generation = g_app_generation.load(std::memory_order_relaxed);
  if (!I.notifier || I.notifier_generation != generation) {
    delete I.notifier;
    I.notifier = new QSocketNotifier(I.selector.fd(), QSocketNotifier::Read, this);
    I.notifier_enabled = true;
    I.notifier_generation = generation;
    connect(I.notifier, &QSocketNotifier::activated, this, [this] { on_wake(true); });
  }
  I.enable_notifier(true);
}

void QiEventLoop::start_running(bool attached) {
  LoopImpl& I = *impl_;
  watch_epoll_fd();
  I.attached = attached;
  running_ = true;
  qi::detail::set_running_loop(this);
  if (!I.wake_event.load(std::memory_order_relaxed)) post_wake();
}

void QiEventLoop::finish_running() {
  LoopImpl& I = *impl_;
  running_ = false;
  I.stopping = false;
  I.exiting = false;
  if (qi::running_loop() == this) qi::detail::set_running_loop(nullptr);
  I.enable_notifier(false);
}

void QiEventLoop::run_forever() {
  check_can_run("run_forever");
  LoopImpl& I = *impl_;
  bool ended_by_qt = false;
  {
    QEventLoop qloop;
    I.qloop = &qloop;
    start_running(false);
    struct Finish {
      QiEventLoop* self;
      bool& ended_by_qt;
      ~Finish() {
        self->impl_->qloop = nullptr;
        ended_by_qt = !self->impl_->exiting;
        self->finish_running();
      }
    } finish{this, ended_by_qt};
    qloop.exec();
  }
  // Nothing of the loop is touched after stopped(): a slot may destroy it.
  if (!I.shutting_down) Q_EMIT stopped();
  if (ended_by_qt)
    throw qi::RuntimeError(
        "run_forever: Qt ended the event loop, not stop(): QCoreApplication::exit() / quit() (or QThread::quit() / "
        "exit() in a worker thread) ends every event loop of the thread, and until the thread's exec() runs again "
        "Qt ends new ones at once. Call loop.stop() to end run_forever()");
}

void QiEventLoop::stop() {
  check_thread("stop");
  impl_->stopping = true;
  if (!in_slice_) wake_from_outside();
}

void QiEventLoop::stop_now() {
  // Called at an iteration boundary, inside a slice.
  LoopImpl& I = *impl_;
  I.stopping = false;
  if (I.attached) {
    finish_running();
    I.emit_stopped = true;  // once the slice is off the stack
  } else {
    // Still running (as asyncio's is_running() is until run_forever returns)
    // until exec() returns; no iteration starts meanwhile.
    I.exiting = true;
    if (I.qloop)
      I.qloop->exit(0);
    else if (QAbstractEventDispatcher* d = QAbstractEventDispatcher::instance())
      d->interrupt();  // run_shutdown_round's pump
  }
}

void QiEventLoop::close() {
  check_thread("close");
  if (running_)
    throw qi::RuntimeError(
        "close: cannot close a running event loop; call stop() and let run_forever() return first (attached "
        "mode: destroy the QiRunner)");
  if (closed_) return;
  LoopImpl& I = *impl_;
  closed_ = true;
  // From here on, scheduling from the destructors of the callbacks we drop
  // is ignored (admit() returns false while tearing_down).
  I.tearing_down = true;
  delete I.notifier;
  I.notifier = nullptr;
  CallbackNode* inbox = I.inbox.seal();
  std::vector<CallbackNode*> handlers = I.selector.close();
  std::vector<qi::detail::TimerHeap::Entry> timers = I.timers.take_all();
  CallbackNode* ready = nullptr;
  CallbackNode** tail = &ready;
  while (!ready_.empty()) {
    CallbackNode* n = ready_.pop();
    *tail = n;
    tail = &n->next;
  }
  *tail = nullptr;
  I.iter_remaining = 0;
  release_list(ready);
  release_list(inbox);
  for (auto& e : timers) {
    qi::detail::drop_callback(e.node);
    release_node(e.node);
  }
  for (CallbackNode* n : handlers) {
    qi::detail::cancel_node(n);
    qi::detail::drop_callback(n);
    release_node(n);
  }
  destroy_pending_tasks();
  I.tearing_down = false;
}

bool QiEventLoop::event(QEvent* e) {
  // Qt sends ThreadChange just before a move and cannot refuse one: a loop
  // moved while running would run callbacks on the new thread while the old
  // one still calls it its running loop. Fatal, as destroying it would be.
  if (e->type() == QEvent::ThreadChange && (running_ || in_slice_ || impl_->attached))
    qFatal("QiEventLoop moved to another thread while running or attached to a QiRunner: stop it and let "
           "run_forever() return (attached mode: destroy the QiRunner) before moveToThread(), or create the loop "
           "on the thread that runs it");
  if (e->type() == kWakeEvent) {
    static_cast<WakeEvent*>(e)->disarm();  // the next wake-up may be posted
    on_wake(false);
    return true;
  }
  return QObject::event(e);
}

void QiEventLoop::on_wake(bool from_notifier) {
  LoopImpl& I = *impl_;
  if (from_notifier) I.poll_pending = true;
  // A callback of ours on the stack runs a nested Qt event loop: no
  // iteration may start inside it, so the wake-up is parked until it returns
  // (end_slice re-arms). Not running: nothing to wake. Either way the
  // (level-triggered) notifier is silenced so Qt does not spin on it.
  if (in_slice_ || !running_ || I.exiting) {
    if (in_slice_) ++I.stats.deferred_wakeups;
    if (from_notifier) I.enable_notifier(false);
    return;
  }
  run_slice();
  if (I.emit_stopped) {
    I.emit_stopped = false;
    Q_EMIT stopped();
  }
}

// One slice: iterations back to back until nothing is ready, the loop stops,
// or the budget is spent (then Qt gets its turn and we are called again).
void QiEventLoop::run_slice() {
  LoopImpl& I = *impl_;
  ++I.stats.slices;
  in_slice_ = true;
  I.inbox.set_awake(true);
  I.slice_over = false;
  I.since_budget_check = 0;
  const auto start = clock::now();
  // The node pool gives back what a burst left unused (callback_node.cpp).
  qi::detail::trim_node_pool(start, start - I.last_slice_end);
  // Saturated: an unbounded budget (duration::max()) means one slice.
  I.slice_deadline = I.slice_budget < clock::time_point::max() - start ? start + I.slice_budget
                                                                       : clock::time_point::max();
  for (;;) {
    if (I.iter_remaining == 0) begin_iteration();
    if (!run_ready()) break;  // budget spent inside the iteration: resume it next slice
    if (I.stopping) {
      stop_now();
      break;
    }
    if (I.slice_over) break;
    if (ready_.empty() && !I.inbox.maybe_nonempty() && !I.io_was_ready &&
        (I.timers.empty() || I.timers.top().when > time()))
      break;
  }
  in_slice_ = false;
  end_slice();
  I.last_slice_end = clock::now();
}

// The first phases of asyncio's _run_once: I/O, the thread inbox, due timers;
// then the iteration's size is fixed.
void QiEventLoop::begin_iteration() {
  LoopImpl& I = *impl_;
  ++I.stats.iterations;
  // 1. I/O: poll without blocking, only while there is something to poll.
  I.io_was_ready = false;
  if (I.poll_pending || I.selector.has_user_fds()) {
    I.poll_pending = false;
    I.io_was_ready = I.selector.poll(ready_) > 0;
    report_stale_fds(*this, I.selector);
  }
  // 2. Callbacks sent from other threads, oldest first.
  if (I.inbox.maybe_nonempty()) take_inbox();
  // 3. Timers: drop cancelled ones, move the due ones to the ready queue.
  if (!I.timers.empty()) {
    I.timers.collect();
    if (!I.timers.empty()) {
      const auto now = time();
      while (!I.timers.empty() && I.timers.top().when <= now) {
        CallbackNode* n = I.timers.pop().node;
        if (qi::detail::is_cancelled(n))
          release_node(n);
        else
          ready_.push(n);
      }
    }
  }
  // 4. This iteration runs exactly what is ready now.
  I.iter_remaining = ready_.size();
}

// Appends what other threads sent, oldest first: at an iteration's start,
// and before a call_soon that may have been caused by one of those sends.
void QiEventLoop::take_inbox() noexcept {
  for (CallbackNode* n = impl_->inbox.take_all(); n;) {
    CallbackNode* next = n->next;
    ready_.push(n);
    n = next;
  }
}

// Runs the rest of the current iteration; returns false when the slice budget
// ran out before the iteration finished.
bool QiEventLoop::run_ready() {
  LoopImpl& I = *impl_;
  while (I.iter_remaining > 0) {
    --I.iter_remaining;
    run_node(ready_.pop());
    if (++I.since_budget_check == LoopImpl::kBudgetCheckEvery) {
      I.since_budget_check = 0;
      if (clock::now() >= I.slice_deadline) {
        I.slice_over = true;
        return I.iter_remaining == 0;
      }
    }
  }
  return true;
}

// The one place callbacks run. kStarted (or kCancelled) is set before a
// callable is destroyed here, so a capture's destructor that cancels the
// handle returns early instead of destroying it a second time.
void QiEventLoop::run_node(CallbackNode* n) {
  const bool repeating = n->flags & CallbackNode::kRepeating;
  if (repeating) {
    // An fd handler runs again on later iterations: kStarted is set only
    // while it runs, so that remove_reader() from inside it leaves the
    // running callable alone (it is dropped below).
    uint8_t st = n->load_state() & ~CallbackNode::kQueued;
    n->state.store(st | CallbackNode::kStarted, std::memory_order_relaxed);
    if (st & CallbackNode::kCancelled) {
      n->fn = nullptr;
      release_node(n);
      return;
    }
  } else if (n->set_state(CallbackNode::kStarted) & CallbackNode::kCancelled) {
    n->fn = nullptr;
    release_node(n);
    return;
  }
  clock::time_point started{};
  if (debug_) [[unlikely]]
    started = clock::now();
  try {
    n->fn();
  } catch (...) {
    qi::ExceptionContext ctx;
    ctx.message = "Exception in callback";
    ctx.exception = std::current_exception();
    n->retain();
    ctx.handle = qi::Handle::adopt(n);
    call_exception_handler(ctx);
  }
  if (debug_) [[unlikely]] {
    auto took = clock::now() - started;
    if (took >= impl_->slow_callback)
      qCWarning(lcQiloop, "Executing a callback took %.3f seconds (slow_callback_duration is %.3f s)",
                std::chrono::duration<double>(took).count(),
                std::chrono::duration<double>(impl_->slow_callback).count());
  }
  if (repeating) {
    uint8_t st = n->load_state() & ~CallbackNode::kStarted;
    n->state.store(st, std::memory_order_relaxed);
    if (st & CallbackNode::kCancelled) n->fn = nullptr;
  } else {
    // Drop what the callback captured now, even if a Handle keeps the node.
    n->fn = nullptr;
  }
  release_node(n);
}

// Tells Qt when to call again: now (work is left), at the earliest timer
// (the timerfd), or when an fd or another thread rings the epoll fd.
void QiEventLoop::end_slice() {
  LoopImpl& I = *impl_;
  I.inbox.set_awake(false);
  if (!running_ || I.exiting) return;
  bool work = !ready_.empty() || I.iter_remaining > 0 || I.stopping || I.inbox.nonempty();
  if (!work && !I.timers.empty()) {
    I.timers.collect();
    if (!I.timers.empty()) {
      if (I.timers.top().when <= time() || arm_timer_wakeup(I.timers.top().when)) work = true;
    }
  }
  if (work && !I.wake_event.load(std::memory_order_relaxed)) post_wake();
  watch_epoll_fd();
}

void QiEventLoop::shutdown_attached() {
  if (in_slice_)
    qFatal("QiRunner destroyed from inside a callback of its own loop: destroy it after the loop's callbacks "
           "return (e.g. after app.exec())");
  const bool was_running = running_;
  if (running_) finish_running();
  impl_->attached = false;
  shutdown();
  // Last, once the loop has run its final iterations: a slot may destroy it.
  if (was_running) Q_EMIT stopped();
}

void QiEventLoop::shutdown() {
  check_thread("shutdown");
  if (running_) throw qi::RuntimeError("shutdown: the loop is running; stop it first (shutdown runs it itself)");
  if (closed_) return;
  // The runs below are shutdown's own: they do not emit stopped().
  impl_->shutting_down = true;
  cancel_leftover_tasks();
  // Let cleanup that is already scheduled run, as a running loop would.
  drain_ready(LoopImpl::kShutdownRounds);
  impl_->shutting_down = false;
  close();
}

void QiEventLoop::cancel_leftover_tasks() {
  LoopImpl& I = *impl_;
  // Running the loop needs Qt's event loop (for timers and I/O) and this
  // thread free of other running loops.
  QAbstractEventDispatcher* dispatcher = QAbstractEventDispatcher::instance();
  if (!I.tasks_head || !QCoreApplication::instance() || !dispatcher || qi::running_loop()) return;
  for (int round = 0; round < kShutdownCancelRounds && I.tasks_head; ++round) {
    std::vector<qi::TaskRef> pending;
    for (auto* t = I.tasks_head; t; t = t->next_in_loop) pending.emplace_back(t);
    for (auto& f : pending) f.cancel("the event loop is shutting down");
    // Run until every task is done (unregister_task stops the loop) or the
    // round's time is up.
    I.stop_when_no_tasks = true;
    qi::TimerHandle limit = call_later(kShutdownRoundTime, [this] { stop(); });
    run_shutdown_round(dispatcher);
    I.stop_when_no_tasks = false;
    limit.cancel();
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
  for (auto* t = I.tasks_head; t; t = t->next_in_loop) {
    qi::ExceptionContext ctx;
    ctx.message = t->future().describe() + " did not finish after being cancelled at shutdown";
    ctx.task = qi::TaskRef(t);
    call_exception_handler(ctx);
  }
}

// Runs the loop until stop() — the round's time limit, or the last task
// finishing. Not through QEventLoop::exec(), which returns at once while the
// thread's quit flag is set (after QThread::quit() in a worker, or
// QCoreApplication::exit()): clean-up must run whatever Qt was told, so the
// thread's events are pumped directly until stop_now() interrupts the pump.
void QiEventLoop::run_shutdown_round(QAbstractEventDispatcher* dispatcher) {
  LoopImpl& I = *impl_;
  start_running(false);
  while (!I.exiting) dispatcher->processEvents(QEventLoop::AllEvents | QEventLoop::WaitForMoreEvents);
  finish_running();
}

void QiEventLoop::drain_ready(int max_iterations) {
  LoopImpl& I = *impl_;
  if (closed_) return;
  QiEventLoop* other = qi::running_loop();
  if (!other) qi::detail::set_running_loop(this);
  running_ = true;
  in_slice_ = true;
  I.slice_deadline = clock::time_point::max();
  int rounds = 0;
  while (rounds < max_iterations &&
         (I.iter_remaining > 0 || !ready_.empty() || I.inbox.maybe_nonempty() || I.poll_pending)) {
    if (I.iter_remaining == 0) begin_iteration();
    run_ready();
    ++rounds;
  }
  in_slice_ = false;
  running_ = false;
  I.stopping = false;
  if (!other) qi::detail::set_running_loop(nullptr);
  if (!ready_.empty())
    qCWarning(lcQiloop, "shutdown: %zu callbacks were still scheduling more after %d iterations; they are dropped",
              ready_.size(), max_iterations);
}

// --- Tasks ----------------------------------------------------------------------

void QiEventLoop::register_task(qi::detail::TaskCore* t) noexcept {
  LoopImpl& I = *impl_;
  t->prev_in_loop = nullptr;
  t->next_in_loop = I.tasks_head;
  if (I.tasks_head) I.tasks_head->prev_in_loop = t;
  I.tasks_head = t;
  ++I.task_count;
}

void QiEventLoop::unregister_task(qi::detail::TaskCore* t) noexcept {
  LoopImpl& I = *impl_;
  (t->prev_in_loop ? t->prev_in_loop->next_in_loop : I.tasks_head) = t->next_in_loop;
  if (t->next_in_loop) t->next_in_loop->prev_in_loop = t->prev_in_loop;
  t->prev_in_loop = t->next_in_loop = nullptr;
  --I.task_count;
  if (I.task_count == 0 && I.stop_when_no_tasks && running_) {
    I.stopping = true;
    if (!in_slice_) wake_from_outside();
  }
}

std::size_t QiEventLoop::pending_tasks() const noexcept { return impl_->task_count; }

void QiEventLoop::destroy_pending_tasks() noexcept {
  while (qi::detail::TaskCore* t = impl_->tasks_head) t->destroy_pending();
}

// --- Errors -------------------------------------------------------------------

void QiEventLoop::set_exception_handler(ExceptionHandler handler) { impl_->handler = std::move(handler); }

QiEventLoop::ExceptionHandler QiEventLoop::get_exception_handler() const { return impl_->handler; }

void QiEventLoop::call_exception_handler(const qi::ExceptionContext& context) noexcept {
  if (!impl_->handler) {
    default_exception_handler(context);
    return;
  }
  try {
    // A copy: the handler may replace itself (set_exception_handler) while it runs.
    ExceptionHandler handler = impl_->handler;
    handler(*this, context);
  } catch (...) {
    // The handler failed: log both, and keep the loop going (asyncio does the same).
    qi::ExceptionContext failed;
    failed.message = "Unhandled error in exception handler";
    failed.exception = std::current_exception();
    default_exception_handler(failed);
    default_exception_handler(context);
  }
}

void QiEventLoop::default_exception_handler(const qi::ExceptionContext& context) noexcept {
  try {
    std::string text = context.message.empty() ? "Unhandled exception in event loop" : context.message;
    if (context.exception) text += ": " + describe(context.exception);
    if (context.handle) text += " [callback handle]";
    if (context.task) text += " [" + context.task.describe() + "]";
    if (context.future) text += " [" + context.future.describe() + "]";
    qCCritical(lcQiloop, "%s", text.c_str());
  } catch (...) {
  }
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
