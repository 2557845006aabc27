// scheduler.cpp — QiEventLoop's scheduler proper: the slice Qt calls and the
// steps of one iteration (the code docs/design.md walks through).
//
// Reading guide: run_slice() is what Qt calls. It runs iterations back to
// back — run_iteration(): poll_io(), take_inbox(), move_due_timers(), then
// run_ready() (asyncio's _run_once) — and after each honour_stop(), until
// has_work() says nothing is left or the budget is spent; end_slice() then
// tells Qt when to call again. drain_ready() runs shutdown's last iterations
// through the same steps.
#include <qiloop/event_loop.h>

#include "loop_impl.h"

#include <utility>

using qi::detail::CallbackNode;
using qi::detail::release_node;

void QiEventLoop::on_wake(Wake source) {
  if (source == Wake::kBackend) impl_->poll_pending = true;
  // A callback of ours on the stack runs a nested Qt event loop: no
  // iteration may start inside it, so the wake-up is parked until it returns
  // (end_slice re-arms). Not running: nothing to wake. Either way the
  // (level-triggered) notifier is silenced so Qt does not spin on it.
  if (in_slice_ || !running_ || impl_->exiting) {
    if (in_slice_) ++impl_->stats.deferred_wakeups;
    if (source == Wake::kBackend) impl_->backend.unwatch();
    return;
  }
  run_slice();
  if (impl_->emit_stopped) {
    impl_->emit_stopped = false;
    Q_EMIT stopped();
  }
}

// One slice: iterations back to back until nothing is ready, the loop stops,
// or the budget is spent (then Qt gets its turn and we are called again).
void QiEventLoop::run_slice() {
  ++impl_->stats.slices;
  const auto start = clock::now();
  // The node pool gives back what a burst left unused (callback_node.cpp).
  qi::detail::trim_node_pool(start, start - impl_->last_slice_end);
  // Saturated: an unbounded budget (duration::max()) means one slice.
  const duration budget = impl_->slice_budget;
  enter_slice(budget < time_point::max() - start ? start + budget : time_point::max());
  for (;;) {
    const Budget left = run_iteration();
    if (impl_->iter_remaining > 0) break;  // spent inside the iteration: the rest runs next slice
    if (honour_stop()) break;
    if (left == Budget::kSpent || !has_work<WorkCheck::kInSlice>()) break;
  }
  leave_slice();
  end_slice();
  impl_->last_slice_end = clock::now();
}

// Callbacks run only between these two: wake-ups that arrive meanwhile wait
// for the slice to end, and other threads need not ring the loop.
void QiEventLoop::enter_slice(time_point budget_deadline) noexcept {
  in_slice_ = true;
  impl_->inbox.set_awake(true);
  impl_->since_budget_check = 0;
  impl_->slice_deadline = budget_deadline;
}

void QiEventLoop::leave_slice() noexcept {
  in_slice_ = false;
  impl_->inbox.set_awake(false);  // before has_work's re-check of the inbox (thread_inbox.h)
}

// One iteration (asyncio's _run_once) up to its end or the budget's: resumes
// the iteration a spent budget interrupted, else begins the next.
QiEventLoop::Budget QiEventLoop::run_iteration() {
  qi::detail::LoopImpl& state = *impl_;
  if (state.iter_remaining == 0) {
    ++state.stats.iterations;
    // Each step is a test when its source is empty: a call_soon chain runs
    // an iteration per callback.
    state.io_was_ready = false;
    // The iteration after one whose poll found ready fds runs what their
    // handlers scheduled (a task resumed by a read) without polling first:
    // that poll would mostly find nothing, and an fd that did become ready
    // waits one iteration at most, as the next iteration polls.
    const bool rest = std::exchange(state.rest_poll, false) && !ready_.empty() && !state.poll_pending;
    if (!rest && (state.poll_pending || state.backend.has_user_fds())) poll_io();  // 1
    if (state.inbox.maybe_nonempty()) take_inbox();                      // 2
    if (!state.timers.empty()) move_due_timers();                        // 3
    state.iter_remaining = ready_.size();  // 4: the iteration runs exactly what is ready now
    // Callbacks about to run may make a watched fd ready after this poll (a
    // task resumed by a read writes its answer): poll once more before the
    // slice ends, which costs one epoll_wait instead of a Qt dispatcher turn.
    if (state.iter_remaining > 0 && state.backend.has_user_fds()) state.io_was_ready = true;
  }
  return run_ready();  // 5
}

// Step 1: polls the fds without blocking (only when some are registered or
// the epoll fd fired) and queues the handlers of the ready ones.
void QiEventLoop::poll_io() {
  impl_->poll_pending = false;
  ++impl_->stats.io_polls;
  impl_->io_was_ready = impl_->rest_poll = impl_->backend.poll(ready_) > 0;
  report_stale_fds(*this, impl_->backend);
}

// Step 2: appends what other threads sent, oldest first. Also run before a
// call_soon that may have been caused by one of those sends (push_ready).
void QiEventLoop::take_inbox() noexcept {
  for (CallbackNode* n = impl_->inbox.take_all(); n;) {
    CallbackNode* next = n->next;
    ready_.push(n);
    n = next;
  }
}

// Step 3: drops cancelled timers, moves the due ones to the ready queue.
void QiEventLoop::move_due_timers() {
  qi::detail::TimerHeap& timers = impl_->timers;
  timers.collect();
  if (timers.empty()) return;
  const time_point t = now();
  while (!timers.empty() && timers.top().when <= t) {
    CallbackNode* n = timers.pop().node;
    if (qi::detail::is_cancelled(n))
      release_node(n);
    else
      ready_.push(n);
  }
}

// Step 5: runs the rest of the current iteration, or as much as the slice
// budget allows (the clock is read once per kBudgetCheckEvery callbacks).
QiEventLoop::Budget QiEventLoop::run_ready() {
  qi::detail::LoopImpl& state = *impl_;
  while (state.iter_remaining > 0) {
    --state.iter_remaining;
    run_node(ready_.pop());
    if (++state.since_budget_check == qi::detail::LoopImpl::kBudgetCheckEvery) {
      state.since_budget_check = 0;
      if (clock::now() >= state.slice_deadline) return Budget::kSpent;
    }
  }
  return Budget::kLeft;
}

// The one place callbacks run: run it, report what escaped.
void QiEventLoop::run_node(CallbackNode* n) {
  if (n->begin_run()) [[likely]] {
    if (debug_) [[unlikely]]
      run_timed(n);
    else
      run_callback(n);
    n->end_run();
  }
  release_node(n);
}

void QiEventLoop::run_callback(CallbackNode* n) noexcept {
  try {
    n->fn();
  } catch (...) {
    report_escaped(n);
  }
}

[[gnu::cold]] void QiEventLoop::report_escaped(CallbackNode* n) noexcept {
  qi::ExceptionContext ctx;
  try {
    ctx.message = "Exception in callback";
  } catch (...) {
  }
  ctx.exception = std::current_exception();
  n->retain();
  ctx.handle = qi::Handle::adopt(n);
  call_exception_handler(ctx);
}

// Debug mode: run_callback, and a warning when it took too long.
void QiEventLoop::run_timed(CallbackNode* n) noexcept {
  const auto started = clock::now();
  run_callback(n);
  const duration took = clock::now() - started;
  if (took >= impl_->slow_callback)
    qCWarning(lcQiloop, "Executing a callback took %.3f seconds (slow_callback_duration is %.3f s)",
              std::chrono::duration<double>(took).count(),
              std::chrono::duration<double>(impl_->slow_callback).count());
}

// Step 6: a stop() made before the iteration's end ends the run at its
// boundary (so stop() before run_forever() runs exactly one iteration).
bool QiEventLoop::honour_stop() {
  if (!impl_->stopping) return false;
  impl_->stopping = false;
  end_run();
  return true;
}

// Whether there is work to do now rather than when Qt next wakes the loop:
// the one test behind the slice loop, end_slice and shutdown's drain. Who
// asks changes two things, deliberately:
// - I/O. Inside a slice, the fds are polled again at once when the last
//   poll found some ready (their handlers often leave them ready) or the
//   last iteration ran callbacks (they may have made one ready). Leaving it, Qt's watch on
//   the epoll fd reports I/O instead. The drain, which Qt does not call,
//   polls when that watch fired while the loop was not running.
// - Timers. A due timer is work while the loop runs; the drain runs only what
//   was already scheduled to run (close() drops the timers).
template <QiEventLoop::WorkCheck check>
bool QiEventLoop::has_work() {
  if (!ready_.empty()) return true;
  qi::detail::LoopImpl& state = *impl_;
  // Leaving a slice, the re-check after set_awake(false) must be ordered
  // against producers' pushes (thread_inbox.h).
  if (check == WorkCheck::kLeavingSlice ? state.inbox.nonempty() : state.inbox.maybe_nonempty()) return true;
  if constexpr (check == WorkCheck::kInSlice) {
    if (state.io_was_ready) return true;
  } else if constexpr (check == WorkCheck::kDrain) {
    return state.poll_pending;
  }
  return timer_due();
}

// Whether the earliest live timer is due (cancelled ones on top are dropped).
bool QiEventLoop::timer_due() {
  qi::detail::TimerHeap& timers = impl_->timers;
  if (timers.empty()) return false;
  timers.collect();
  return !timers.empty() && timers.top().when <= now();
}

// Tells Qt when to call again: now (work is left), at the earliest timer
// (the backend's timer), or when an fd or another thread wakes the backend.
void QiEventLoop::end_slice() {
  if (!running_ || impl_->exiting) return;
  if (has_work<WorkCheck::kLeavingSlice>() || arm_timer_wakeup()) ensure_wake_posted();
  impl_->backend.watch();
}

// Nothing to run now: the one precise wake-up goes to the earliest timer
// (has_work just dropped the cancelled ones on top), at the real time the
// loop's qi::Clock answers. Returns true when the loop must run again now
// (a virtual clock jumped to the timer instead).
bool QiEventLoop::arm_timer_wakeup() {
  if (impl_->timers.empty()) return false;
  time_point at = impl_->timers.top().when;
  if (clock_) [[unlikely]] {
    at = clock_->idle(at, impl_->backend.has_user_fds());
    if (at <= clock::now()) return true;
    if (at == time_point::max()) return false;  // fds, other threads or notify_changed() wake it
  }
  if (impl_->backend.arm_timer(at)) ++impl_->stats.timer_arms;
  return false;
}

// Shutdown's last iterations, through the same steps as a slice without a
// budget and outside Qt: stop() is not honoured (the drain is not a run of
// the loop a caller could stop) and due timers do not keep it going.
// Bounded in iterations and in real time: each iteration takes in all that
// other threads sent meanwhile, so threads that post faster than the loop
// runs their callbacks would make every iteration longer than the last, and
// an iteration bound alone would never end (tests/threads/stress_test.cpp).
void QiEventLoop::drain_ready(int max_iterations) {
  if (closed_) return;
  const auto end = clock::now() + qi::detail::LoopImpl::kDrainTime;
  mark_running();
  enter_slice(time_point::max());
  int i = 0;
  for (; i < max_iterations && clock::now() < end && has_work<WorkCheck::kDrain>(); ++i) run_iteration();
  leave_slice();
  finish_running();
  if (!ready_.empty())
    qCWarning(lcQiloop,
              "shutdown: %zu callbacks were still scheduling more after %d iterations (at most %d, within %lld ms); "
              "they are dropped",
              ready_.size(), i, max_iterations,
              static_cast<long long>(std::chrono::duration_cast<std::chrono::milliseconds>(qi::detail::LoopImpl::kDrainTime).count()));
}
