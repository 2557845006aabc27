// waiter_queue.cpp — the FIFO of waiting tasks behind every primitive.
#include <qiloop/detail/waiter_queue.h>
#include <qiloop/errors.h>
#include <qiloop/event_loop.h>

#include <string>

namespace qi::detail {

WaiterQueue::~WaiterQueue() {
  while (Entry* e = head_) {
    unlink(*e);
    e->orphaned_ = true;
  }
}

bool WaiterQueue::all_cancelled() const noexcept {
  for (Entry* e = head_; e; e = e->next_)
    if (!e->cancelled()) return false;
  return true;
}

bool WaiterQueue::wake_first() { return head_ && head_->wake(); }

bool WaiterQueue::wake_next() {
  for (Entry* e = head_; e; e = e->next_)
    if (e->wake()) return true;
  return false;
}

std::size_t WaiterQueue::wake_all() {
  std::size_t n = 0;
  for (Entry* e = head_; e; e = e->next_) n += e->wake();
  return n;
}

std::size_t WaiterQueue::cancel_all() {
  std::size_t n = 0;
  for (Entry* e = head_; e; e = e->next_) n += e->cancel();
  return n;
}

QiEventLoop& WaiterQueue::bind_running_loop(const char* owner) {
  QiEventLoop* running = qi::running_loop();
  if (!running)
    throw qi::RuntimeError(std::string(owner) +
                           ": no event loop runs on this thread; wait on it from a task (a coroutine run by "
                           "qi::run, loop.create_task or run_until_complete)");
  if (bound_) {
    QiEventLoop* bound = loop_.data();
    if (bound != running)
      throw qi::RuntimeError(std::string(owner) + " is bound to another event loop (the one that first waited on it" +
                             (bound ? "" : ", since destroyed") +
                             "); a primitive serves one loop: create one per loop");
    return *running;
  }
  loop_ = running;
  bound_ = true;
  return *running;
}

void WaiterQueue::link(Entry& e) noexcept {
  e.queue_ = this;
  e.prev_ = tail_;
  e.next_ = nullptr;
  (tail_ ? tail_->next_ : head_) = &e;
  tail_ = &e;
  ++size_;
}

void WaiterQueue::unlink(Entry& e) noexcept {
  (e.prev_ ? e.prev_->next_ : head_) = e.next_;
  (e.next_ ? e.next_->prev_ : tail_) = e.prev_;
  e.prev_ = e.next_ = nullptr;
  e.queue_ = nullptr;
  --size_;
}

WaiterQueue::Entry::Entry(WaiterQueue& q, const char* owner) : fut_(q.bind_running_loop(owner)), owner_(owner) {
  q.link(*this);
}

bool WaiterQueue::Entry::wake() {
  if (fut_.done()) return false;
  fut_.set_result();
  return true;
}

void WaiterQueue::Entry::await_resume() {
  unlink();
  // Before after_resume, whose CancelledError the primitives catch to do
  // their bookkeeping on themselves; a pending cancel is delivered later.
  if (orphaned_) [[unlikely]]
    throw qi::RuntimeError(std::string(owner_) +
                           " was destroyed while a task waited on it; keep a primitive alive until the tasks "
                           "waiting on it are done (shut a queue down, cancel and await its waiters)");
  if (suspended_) after_resume(fut_.cancelled());
  fut_.result();  // qi::CancelledError when the wait was cancelled
}

}  // namespace qi::detail
