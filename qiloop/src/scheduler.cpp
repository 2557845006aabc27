// scheduler.cpp — QiEventLoop's scheduler proper: the slice Qt calls and the
// iterations it runs (the code docs/design.md walks through).
//
// Reading guide: run_slice() is what Qt calls; it runs begin_iteration() +
// run_ready() (asyncio's _run_once) back to back within the slice budget, and
// end_slice() then tells Qt when to call again. drain_ready() runs leftover
// iterations for shutdown.
#include <qiloop/event_loop.h>

#include "loop_impl.h"

using qi::detail::CallbackNode;
using qi::detail::LoopImpl;
using qi::detail::release_node;

void QiEventLoop::on_wake(bool from_notifier) {
  LoopImpl& I = *impl_;
  if (from_notifier) I.poll_pending = true;
  // A callback of ours on the stack runs a nested Qt event loop: no
  // iteration may start inside it, so the wake-up is parked until it returns
  // (end_slice re-arms). Not running: nothing to wake. Either way the
  // (level-triggered) notifier is silenced so Qt does not spin on it.
  if (in_slice_ || !running_ || I.exiting) {
    if (in_slice_) ++I.stats.deferred_wakeups;
    if (from_notifier) I.backend.unwatch();
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
        (I.timers.empty() || I.timers.top().when > clock::now()))
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
  if (I.poll_pending || I.backend.has_user_fds()) {
    I.poll_pending = false;
    I.io_was_ready = I.backend.poll(ready_) > 0;
    report_stale_fds(*this, I.backend);
  }
  // 2. Callbacks sent from other threads, oldest first.
  if (I.inbox.maybe_nonempty()) take_inbox();
  // 3. Timers: drop cancelled ones, move the due ones to the ready queue.
  if (!I.timers.empty()) {
    I.timers.collect();
    if (!I.timers.empty()) {
      const auto now = clock::now();
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
// (the backend's timer), or when an fd or another thread wakes the backend.
void QiEventLoop::end_slice() {
  LoopImpl& I = *impl_;
  I.inbox.set_awake(false);
  if (!running_ || I.exiting) return;
  bool work = !ready_.empty() || I.iter_remaining > 0 || I.stopping || I.inbox.nonempty();
  if (!work && !I.timers.empty()) {
    I.timers.collect();
    if (!I.timers.empty()) {
      if (I.timers.top().when <= clock::now())
        work = true;
      else if (I.backend.arm_timer(I.timers.top().when))
        ++I.stats.timer_arms;
    }
  }
  if (work && !I.wake_event.load(std::memory_order_relaxed)) post_wake();
  I.backend.watch();
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
