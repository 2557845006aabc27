#include <qiloop/event_loop.h>
#include <qiloop/future.h>

#include "loop_impl.h"

#include <stdexcept>

namespace qi::detail {

// The ready-queue entry of one scheduled done callback: runs the head of
// its future's list. Small enough (a pointer) for the callback node's inline
// storage, so completing a future allocates nothing.
struct FiringEntry {
  FutureStateBase* state;
  explicit FiringEntry(FutureStateBase* s) noexcept : state(s) {}
  FiringEntry(FiringEntry&& o) noexcept : state(std::exchange(o.state, nullptr)) {}
  FiringEntry& operator=(FiringEntry&&) = delete;
  ~FiringEntry() {
    if (!state) return;
    // Run or dropped (close()): the last entry releases the state, after
    // dropping the callbacks whose entries were dropped.
    if (--state->firing_entries_ == 0) {
      auto self = std::move(state->firing_self_);
      state->drop_callbacks();
    }
  }
  void operator()() {
    FutureStateBase& s = *state;
    const uint32_t i = s.head_;
    FutureStateBase::Slot& slot = s.slots_[i];
    FutureStateBase::DoneCallback cb = std::move(slot.cb);
    s.head_ = slot.next;
    if (s.head_ == FutureStateBase::kNoSlot) s.tail_ = FutureStateBase::kNoSlot;
    --s.live_;
    s.free_slot(i);  // reused by callbacks added meanwhile: nothing piles up
    cb(s);
  }
};

FutureStateBase::FutureStateBase(QiEventLoop& loop) : loop_(&loop) {}

FutureStateBase::~FutureStateBase() { report_unretrieved(); }

std::string FutureStateBase::describe() const { return "Future"; }

void FutureStateBase::report_unretrieved() noexcept {
  if (status_ != Status::kFinished || !exception_ || retrieved_) return;
  retrieved_ = true;  // once
  try {
    ExceptionContext ctx;
    // describe() is virtual: a derived destructor calls this while it still
    // knows its own name.
    ctx.message = describe() + " exception was never retrieved";
    ctx.exception = exception_;
    if (QiEventLoop* l = loop_.data())
      l->call_exception_handler(ctx);
    else
      qCCritical(lcQiloop, "%s (its loop is gone)", ctx.message.c_str());
  } catch (...) {
  }
}

void FutureStateBase::mark_cancelled(std::string msg) {
  if (done()) return;
  if (!msg.empty()) cancel_message_ = std::make_unique<std::string>(std::move(msg));
  finish(Status::kCancelled);
}

void FutureStateBase::check_call(const char* api, bool schedules) const {
  QiEventLoop* l = loop_.data();
  if (!l || !(l->closed_ || l->debug_)) [[likely]]
    return;
  if (schedules)
    l->admit(api);  // what the call_soon to come would check, made now
  else if (l->debug_)
    l->check_thread(api);
}

void FutureStateBase::check_settable(const char* api) const {
  if (is_task_)
    throw RuntimeError(std::string(api) +
                       ": a Task's result comes from its coroutine (co_return / throw); cancel() it instead");
  if (status_ != Status::kPending)
    throw InvalidStateError(std::string(api) + ": the future is already " +
                            (status_ == Status::kCancelled ? "cancelled" : "done") + "; check done() first");
  check_call(api, live_ != 0);
}

bool FutureStateBase::cancel(std::string msg) {
  if (status_ != Status::kPending) return false;
  check_call("cancel", live_ != 0);
  if (!msg.empty()) cancel_message_ = std::make_unique<std::string>(std::move(msg));
  finish(Status::kCancelled);
  return true;
}

void FutureStateBase::set_exception(std::exception_ptr e) {
  if (!e)
    throw std::invalid_argument(
        "set_exception: the exception_ptr is null; pass std::make_exception_ptr(...) or std::current_exception()");
  check_settable("set_exception");
  finish_with_exception(std::move(e));
}

void FutureStateBase::finish_with_exception(std::exception_ptr e) {
  exception_ = std::move(e);
  finish(Status::kFinished);
}

std::exception_ptr FutureStateBase::exception() {
  if (status_ == Status::kCancelled) throw CancelledError(cancel_message());
  if (status_ == Status::kPending)
    throw InvalidStateError("exception: the future is not done yet; wait for it (add_done_callback) first");
  retrieved_ = true;
  return exception_;
}

void FutureStateBase::check_result() {
  if (status_ == Status::kCancelled) throw CancelledError(cancel_message());
  if (status_ == Status::kPending)
    throw InvalidStateError("result: the future is not done yet; wait for it (add_done_callback) first");
  retrieved_ = true;
  if (exception_) std::rethrow_exception(exception_);
}

uint32_t FutureStateBase::take_slot(DoneCallback cb) {
  uint32_t i = free_;
  if (i != kNoSlot) {
    free_ = slots_[i].next;
  } else {
    if (slots_.size() >= kNoSlot) throw std::length_error("add_done_callback: too many done callbacks");
    slots_.emplace_back();
    i = static_cast<uint32_t>(slots_.size() - 1);
  }
  Slot& s = slots_[i];
  s.cb = std::move(cb);
  if (++s.serial == 0) s.serial = 1;  // ids are never 0
  s.next = kNoSlot;
  return i;
}

void FutureStateBase::link_last(uint32_t i) noexcept {
  if (tail_ == kNoSlot)
    head_ = i;
  else
    slots_[tail_].next = i;
  tail_ = i;
  ++live_;
}

void FutureStateBase::free_slot(uint32_t i) noexcept {
  slots_[i].next = free_;
  free_ = i;
}

void FutureStateBase::compact() noexcept {
  uint32_t* link = &head_;
  uint32_t last = kNoSlot;
  for (uint32_t i = head_; i != kNoSlot;) {
    const uint32_t next = slots_[i].next;
    if (slots_[i].cb) {
      *link = i;
      link = &slots_[i].next;
      last = i;
    } else {
      free_slot(i);
    }
    i = next;
  }
  *link = kNoSlot;
  tail_ = last;
  removed_ = 0;
}

void FutureStateBase::drop_callbacks() noexcept {
  decltype(slots_) dead;
  dead.swap(slots_);
  head_ = tail_ = free_ = kNoSlot;
  live_ = removed_ = 0;
}

uint64_t FutureStateBase::add_done_callback(DoneCallback cb) {
  if (!cb) throw std::invalid_argument("add_done_callback: the callback is empty; pass a callable");
  QiEventLoop* l = loop_.data();
  const bool now = done();
  if (now && !l) throw RuntimeError("add_done_callback: the future's event loop was destroyed");
  check_call("add_done_callback", now);
  const uint32_t i = take_slot(std::move(cb));
  const uint64_t id = (uint64_t{slots_[i].serial} << 32) | i;
  const uint32_t old_tail = tail_;
  link_last(i);
  if (now) {
    try {
      schedule_entries(*l, 1);
    } catch (...) {
      // Out of memory: take it back (unless its dropped entry already
      // dropped every callback).
      if (tail_ == i) {
        (old_tail == kNoSlot ? head_ : slots_[old_tail].next) = kNoSlot;
        tail_ = old_tail;
        --live_;
        slots_[i].cb = nullptr;
        free_slot(i);
      }
      throw;
    }
  }
  return id;
}

std::size_t FutureStateBase::remove_done_callback(uint64_t id) {
  check_call("remove_done_callback", false);
  if (done()) return 0;  // already scheduled: they run (as in asyncio)
  const auto i = static_cast<uint32_t>(id);
  if (i >= slots_.size() || slots_[i].serial != static_cast<uint32_t>(id >> 32) || !slots_[i].cb) return 0;
  DoneCallback dead = std::move(slots_[i].cb);  // destroyed last: its destructor may call back
  slots_[i].cb = nullptr;                       // (a moved-from AnyInvocable need not be empty)
  --live_;
  if (++removed_ > live_) compact();  // O(live + removed), paid for by the removals
  return 1;
}

void FutureStateBase::finish(Status s) {
  status_ = s;
  if (live_ == 0) {
    if (head_ != kNoSlot) drop_callbacks();  // only removed ones
    return;
  }
  QiEventLoop* l = loop_.data();
  if (!l) {
    qCWarning(lcQiloop, "a future completed after its event loop was destroyed: %u done callbacks dropped", live_);
    drop_callbacks();
    return;
  }
  // Entries run the head of the list: removed callbacks must not be there.
  if (removed_ != 0) compact();
  schedule_entries(*l, live_);
}

// Done callbacks never run inside set_result(): they go through the loop,
// one ready-queue entry each, in the order they were added. (Counting the
// entries to make here is the caller's: an entry that is running still
// counts as outstanding.)
void FutureStateBase::schedule_entries(QiEventLoop& l, std::size_t n) {
  if (!firing_self_) firing_self_ = shared_from_this();
  for (std::size_t i = 0; i < n; ++i) {
    ++firing_entries_;
    l.call_soon(FiringEntry(this));
  }
}

}  // namespace qi::detail
