// run_modes.cpp — how QiEventLoop runs: nested mode (run_forever, stop), the
// wake event Qt delivers, what the backend reports, and attached mode
// (QiRunner, which lives here with the calls it makes). A run starts with
// start_running() and ends with end_run() at an iteration boundary
// (scheduler.cpp's honour_stop) and finish_running().
#include <qiloop/event_loop.h>
#include <qiloop/runner.h>

#include "loop_impl.h"

#include <QtCore/QAbstractEventDispatcher>
#include <QtCore/QCoreApplication>
#include <QtCore/QEvent>
#include <QtCore/QEventLoop>
#include <QtCore/QThread>
#include <QtCore/QTimer>

#include <algorithm>
#include <atomic>
#include <utility>

using qi::detail::LoopImpl;

namespace {

const QEvent::Type kWakeEvent = static_cast<QEvent::Type>(QEvent::registerEventType());

// The loop's posted wake-up. The loop's record of it (LoopImpl::wake_event)
// cannot outlive it, and neither can the wake-up itself: deleted unseen — by
// QCoreApplication::removePostedEvents (on any thread: it is thread-safe) or
// a dying application — the event clears the record and rings the backend,
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
      loop->backend.wake();  // a no-op once the loop is closed
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

}  // namespace

QEvent::Type qi::detail::wake_event_type() noexcept { return kWakeEvent; }

void QiEventLoop::post_wake() {
  ++impl_->stats.posted_wakeups;
  QCoreApplication::postEvent(this, new WakeEvent(impl_.get()));
}

// --- What the backend reports ------------------------------------------------

// The backend's report (backend.h): run a slice now, or defer it.
void QiEventLoop::on_backend_ready(QObject& loop) { static_cast<QiEventLoop&>(loop).on_wake(Wake::kBackend); }

// Runs in every later QCoreApplication's constructor (qAddPreRoutine keeps
// it for re-created applications), on its thread, with the new dispatcher
// in place: the backends' Qt watches are deaf now, so the thread's running
// loop gets a wake event, and the slice it runs ends by making them again
// (Backend::watch()).
void QiEventLoop::on_new_application() {
  qi::detail::count_new_application();
  if (QiEventLoop* loop = qi::running_loop()) {
    loop->silence_doorbell();
    loop->post_wake();
  }
}

// --- Running ------------------------------------------------------------------

void QiEventLoop::start_running(RunMode mode) {
  static const bool counting_applications = (qAddPreRoutine(&QiEventLoop::on_new_application), true);
  (void)counting_applications;
  impl_->backend.watch();
  impl_->attached = mode == RunMode::kAttached;
  // Nested mode runs inside run_forever's exec(), one level down; attached
  // mode inside the application's exec() (level 1), or deeper if started
  // from a nested loop.
  impl_->doorbell_level = std::max(thread()->loopLevel() + (impl_->attached ? 0 : 1), 1);
  mark_running();
  ensure_wake_posted();
}

// is_running() turns true, and the loop becomes the thread's running loop
// unless another one is (shutdown() called from that loop's callback).
void QiEventLoop::mark_running() noexcept {
  running_ = true;
  if (!qi::running_loop()) qi::detail::set_running_loop(this);
}

// Wake-ups made on the loop's thread (injected code, a slice ending with
// work left, a run starting) ring a zero-interval Qt timer rather than post
// an event: Qt's postEvent writes the dispatcher's eventfd (twice under
// glib) and the next iteration reads it back, three system calls that a
// timer, which every iteration checks anyway, does without (a signal →
// coroutine round trip costs ~40% less). Both doorbells are answered by the
// next iteration of Qt's loop. glib's dispatcher runs a timer at idle
// priority once one has fired, until posted events are next sent; a glib
// source that stays ready still does not hold the doorbell back
// (WakeupModelTest.CallSoonFromInjectedCodeRunsWhileAGlibSourceStaysReady).
// Without an event dispatcher on this thread (the timer cannot start), the
// posted event. Inside a Qt event loop nested deeper than the run's (a
// modal dialog, a synchronous wait), the posted event too: such a loop may
// exclude timers (exec(QEventLoop::X11ExcludeTimers)), and posted events
// are delivered whatever its flags
// (WakeupModelTest.InsideANestedLoopExcludingTimersCallSoonFromInjectedCodeStillRuns).
// A timer armed before such a loop started waits for it to return, or for
// the next wake-up made inside it (the documented limit).
//
// The timer is a QTimer (single-shot, zero interval, a child of the loop so
// it moves with it) whose timeout reaches a lambda, rather than startTimer()
// answered in event(): qiloop's code then never types Qt's stack-allocated
// QTimerEvent, which UBSan's vptr check cannot vet in a process out of file
// descriptors (it probes memory through a pipe).
void QiEventLoop::ensure_wake_posted() {
  LoopImpl& st = *impl_;
  if (st.wake_event.load(std::memory_order_relaxed)) return;
  // Deeper, a timer armed before the nested loop started may be held back.
  if (QAbstractEventDispatcher::instance() && thread()->loopLevel() <= st.doorbell_level) {
    if (!st.doorbell) {
      st.doorbell = new QTimer(this);
      st.doorbell->setSingleShot(true);
      st.doorbell->setTimerType(Qt::PreciseTimer);
      st.doorbell->setInterval(0);
      QObject::connect(st.doorbell, &QTimer::timeout, st.doorbell, [this] { on_wake(Wake::kPostedEvent); });
    }
    if (st.doorbell->isActive()) return;
    st.doorbell->start();
    if (st.doorbell->isActive()) {
      ++st.stats.posted_wakeups;
      return;
    }
  }
  post_wake();
}

void qi::detail::hand_doorbell_to_nested_loop(QiEventLoop& loop) {
  QTimer* doorbell = loop.impl_->doorbell;
  if (!doorbell || !doorbell->isActive()) return;
  loop.silence_doorbell();
  if (!loop.impl_->wake_event.load(std::memory_order_relaxed)) loop.post_wake();
}

// The timer doorbell goes with the run (and with a dispatcher a new
// QCoreApplication replaced: its timers died with it).
void QiEventLoop::silence_doorbell() noexcept {
  if (impl_->doorbell) impl_->doorbell->stop();
}

void QiEventLoop::finish_running() {
  silence_doorbell();
  running_ = false;
  impl_->stopping = false;
  impl_->exiting = false;
  if (qi::running_loop() == this) qi::detail::set_running_loop(nullptr);
  impl_->backend.unwatch();
}

void QiEventLoop::run_forever() {
  check_can_run("run_forever");
  bool ended_by_qt = false;
  {
    QEventLoop qloop;
    impl_->qloop = &qloop;
    start_running(RunMode::kNested);
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
  if (!impl_->shutting_down) Q_EMIT stopped();
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

// Ends this run at an iteration boundary (honour_stop, inside a slice).
void QiEventLoop::end_run() {
  if (impl_->attached) {
    finish_running();
    impl_->emit_stopped = true;  // once the slice is off the stack
  } else {
    // Still running (as asyncio's is_running() is until run_forever returns)
    // until exec() returns; no iteration starts meanwhile.
    impl_->exiting = true;
    if (impl_->qloop)
      impl_->qloop->exit(0);
    else if (QAbstractEventDispatcher* d = QAbstractEventDispatcher::instance())
      d->interrupt();  // run_shutdown_round's pump
  }
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
    on_wake(Wake::kPostedEvent);
    return true;
  }
  return QObject::event(e);
}


// --- Attached mode ------------------------------------------------------------

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

QiRunner::QiRunner() : owned_(std::make_unique<QiEventLoop>()), loop_(owned_.get()) {
  loop_->check_can_run("QiRunner");
  loop_->start_running(QiEventLoop::RunMode::kAttached);
}

QiRunner::QiRunner(QiEventLoop& loop) : loop_(&loop) {
  loop_->check_can_run("QiRunner");
  loop_->start_running(QiEventLoop::RunMode::kAttached);
}

void QiRunner::restart() {
  loop_->check_can_run("QiRunner::restart", QiEventLoop::RunBy::kItsRunner);
  loop_->start_running(QiEventLoop::RunMode::kAttached);
}

QiRunner::~QiRunner() {
  if (loop_->thread() != QThread::currentThread())
    qFatal("QiRunner destroyed on a thread that does not own its loop: destroy it where it was created");
  loop_->shutdown_attached();
}
