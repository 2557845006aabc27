// combinators.cpp — asyncio's _wait (qi::wait) and _AsCompletedIterator
// (qi::as_completed), whatever the children's types.
#include <qiloop/structured/as_completed.h>
#include <qiloop/structured/wait.h>

#include <memory>
#include <string>

namespace qi::detail {

// --- qi::wait ------------------------------------------------------------------

namespace {

// What the children's done callbacks share with the waiting coroutine.
struct WaitShared {
  Future<void> waiter;
  std::size_t counter;
  ReturnWhen when;
  TimerHandle timer;

  // asyncio's _on_completion.
  void on_completion(FutureStateBase& f) {
    --counter;
    if (counter == 0 || when == ReturnWhen::kFirstCompleted ||
        (when == ReturnWhen::kFirstException && !f.cancelled() && f.exception())) {
      timer.cancel();
      if (!waiter.done()) waiter.set_result();
    }
  }
};

}  // namespace

Coro<void> wait_states(std::vector<FutureStateBase*> fs, std::optional<LoopDuration> timeout, ReturnWhen when) {
  if (fs.empty())
    throw ValueError("qi::wait: the set of tasks is empty; pass at least one task or future (asyncio.wait refuses "
                     "an empty set too)");
  if (when != ReturnWhen::kAllCompleted && when != ReturnWhen::kFirstCompleted &&
      when != ReturnWhen::kFirstException)
    throw ValueError("qi::wait: invalid `when`; use qi::ALL_COMPLETED, qi::FIRST_COMPLETED or qi::FIRST_EXCEPTION");
  QiEventLoop& loop = get_running_loop();
  QiEventLoop* seen = &loop;
  for (FutureStateBase* f : fs) check_child_future(f, seen, "qi::wait");

  auto shared = std::make_shared<WaitShared>(WaitShared{loop.create_future<void>(), fs.size(), when, {}});
  std::vector<uint64_t> ids;
  ids.reserve(fs.size());
  // Unhooked however the wait ends (a cancellation included): callbacks
  // already scheduled still run, and only touch `shared`.
  struct Unhook {
    const std::vector<FutureStateBase*>& fs;
    const std::vector<uint64_t>& ids;
    WaitShared& shared;
    ~Unhook() {
      shared.timer.cancel();
      for (std::size_t i = 0; i < ids.size(); ++i) fs[i]->remove_done_callback(ids[i]);
    }
  } unhook{fs, ids, *shared};
  for (FutureStateBase* f : fs)
    ids.push_back(f->add_done_callback([shared](FutureStateBase& done) { shared->on_completion(done); }));
  if (timeout)
    shared->timer = loop.call_later(*timeout, [w = shared->waiter] {
      if (!w.done()) w.set_result();
    });
  co_await shared->waiter;
}

// --- qi::as_completed ------------------------------------------------------------

AsCompletedCore::~AsCompletedCore() = default;

void AsCompletedCore::start(QiEventLoop& loop, std::vector<FutureStateBase*> children,
                            std::optional<LoopDuration> timeout) {
  children_ = std::move(children);
  todo_ = children_.size();
  done_.reserve(todo_);
  ids_.reserve(todo_);
  for (std::size_t i = 0; i < children_.size(); ++i)
    ids_.push_back(children_[i]->add_done_callback(
        [self = StateRef<AsCompletedCore>(this), i](FutureStateBase&) { self->on_completion(i); }));
  if (todo_ != 0 && timeout)
    timer_ = loop.call_later(*timeout, [self = StateRef<AsCompletedCore>(this)] { self->on_timeout(); });
}

void AsCompletedCore::on_completion(std::size_t i) {
  if (timed_out_) return;  // the timeout was first (its callbacks were already scheduled)
  ids_[i] = 0;
  done_.push_back(i);
  waiters_.wake_next();
  if (--todo_ == 0) timer_.cancel();
}

void AsCompletedCore::on_timeout() {
  unhook();
  timed_out_ = true;
  waiters_.wake_all();
}

void AsCompletedCore::unhook() noexcept {
  timer_.cancel();
  for (std::size_t i = 0; i < ids_.size(); ++i)
    if (ids_[i] != 0) children_[i]->remove_done_callback(std::exchange(ids_[i], 0));
}

Coro<std::size_t> AsCompletedCore::next_index() {
  // asyncio's Queue.get(): wait while nothing finished yet; a waiter
  // cancelled while being woken passes the wake-up on.
  while (head_ == done_.size() && !timed_out_) {
    WaiterQueue::Entry w(waiters_, "qi::as_completed");
    try {
      co_await w;
    } catch (const CancelledError&) {
      if (w.woken() && head_ != done_.size()) waiters_.wake_next();
      throw;
    }
  }
  if (head_ != done_.size()) co_return done_[head_++];
  throw TimeoutError("qi::as_completed: the timeout passed before the next task finished");
}

}  // namespace qi::detail
