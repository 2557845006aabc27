#include <qiloop/event_loop.h>
#include <qiloop/future.h>

#include "loop_impl.h"

#include <stdexcept>

namespace qi::detail {

// --- DoneCallbacks ---------------------------------------------------------------

// (Indexing through data(): operator[]'s hardening checks would cost more
// than the rest of these hot paths.)
uint64_t DoneCallbacks::push_back(Callback&& cb) {
  uint32_t i = free_;
  if (i == kNone) {
    if (slots_.size() >= kMaxSlots) throw std::length_error("add_done_callback: too many done callbacks");
    i = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back(std::move(cb));
  } else {
    free_ = slots_.data()[i].next;
    slots_.data()[i].cb = std::move(cb);
  }
  Slot* all = slots_.data();
  Slot& s = all[i];
  if (++s.serial == 0) s.serial = 1;  // ids are never 0
  s.next = kNone;
  (tail_ == kNone ? head_ : all[tail_].next) = i;
  tail_ = i;
  ++live_;
  return ((uint64_t{s.serial} << 32) | i) ^ key();
}

bool DoneCallbacks::remove(uint64_t id) noexcept {
  id ^= key();
  const auto i = static_cast<uint32_t>(id);
  if (i >= slots_.size() || slots_[i].serial != static_cast<uint32_t>(id >> 32) || !slots_[i].cb) return false;
  Callback dead = std::move(slots_[i].cb);  // destroyed last: its destructor may call back
  slots_[i].cb = nullptr;                   // (a moved-from AnyInvocable need not be empty)
  --live_;
  if (++removed_ > live_) compact();  // O(live + removed), paid for by the removals
  return true;
}

void DoneCallbacks::compact() noexcept {
  uint32_t* link = &head_;
  uint32_t last = kNone;
  for (uint32_t i = head_; i != kNone;) {
    const uint32_t next = slots_[i].next;
    if (slots_[i].cb) {
      *link = i;
      link = &slots_[i].next;
      last = i;
    } else {
      slots_[i].next = free_;
      free_ = i;
    }
    i = next;
  }
  *link = kNone;
  tail_ = last;
  removed_ = 0;
}

DoneCallbacks::Callback DoneCallbacks::pop_front() noexcept {
  if (removed_ != 0) compact();
  const uint32_t i = head_;
  Slot& s = slots_.data()[i];
  Callback cb = std::move(s.cb);
  head_ = s.next;
  if (head_ == kNone) tail_ = kNone;
  --live_;
  s.next = free_;  // reused by callbacks added meanwhile: nothing piles up
  free_ = i;
  return cb;
}

void DoneCallbacks::clear_slow() noexcept {
  if (live_ == 0 && removed_ == 0) {
    slots_.clear();  // nothing left to call back
    free_ = kNone;
    return;
  }
  head_ = tail_ = free_ = kNone;
  live_ = removed_ = 0;
  decltype(slots_) dead;
  dead.swap(slots_);
}

// --- FutureStateBase --------------------------------------------------------------

namespace {

// Whether the loop checks calls at all (the rare case): the common path
// pays two loads.
inline bool loop_checks(const QiEventLoop* l) noexcept { return l && (l->is_closed() || l->get_debug()); }

}  // namespace

// The ready-queue entry of one scheduled done callback: runs the first of
// its future's callbacks. Small enough (a pointer) for the callback node's
// inline storage, so completing a future allocates nothing.
struct FiringEntry {
  FutureStateBase* state;
  explicit FiringEntry(FutureStateBase* s) noexcept : state(s) {}
  FiringEntry(FiringEntry&& o) noexcept : state(std::exchange(o.state, nullptr)) {}
  FiringEntry& operator=(FiringEntry&&) = delete;
  ~FiringEntry() {
    if (!state) return;
    // Run or dropped (close()): the last entry releases the state, after
    // the callbacks whose entries were dropped.
    if (--state->firing_entries_ == 0) {
      auto self = std::move(state->firing_self_);
      state->callbacks_.clear();
    }
  }
  void operator()() {
    FutureStateBase::DoneCallback cb = state->callbacks_.pop_front();
    cb(*state);
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
  if (!loop_checks(l)) return;
  if (schedules)
    l->check_can_schedule(api);  // what the call_soon to come would check, made now
  else if (l->debug_)
    l->check_thread(api);
}

void FutureStateBase::check_thread_first(const char* api) const {
  const QiEventLoop* l = loop_.data();
  if (loop_checks(l) && l->debug_) [[unlikely]]
    l->check_thread(api);
}

void FutureStateBase::check_settable(const char* api) const {
  const bool checks = loop_checks(loop_.data());
  if (checks) [[unlikely]]
    check_thread_first(api);
  if (is_task_)
    throw RuntimeError(std::string(api) +
                       ": a Task's result comes from its coroutine (co_return / throw); cancel() it instead");
  if (status_ != Status::kPending)
    throw InvalidStateError(std::string(api) + ": the future is already " +
                            (status_ == Status::kCancelled ? "cancelled" : "done") + "; check done() first");
  if (checks) [[unlikely]]
    check_call(api, callbacks_.size() != 0);
}

bool FutureStateBase::cancel(std::string msg) {
  const bool checks = loop_checks(loop_.data());
  if (checks) [[unlikely]]
    check_thread_first("cancel");
  if (status_ != Status::kPending) return false;
  if (checks) [[unlikely]]
    check_call("cancel", callbacks_.size() != 0);
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

uint64_t FutureStateBase::add_done_callback(DoneCallback cb) {
  if (!cb) throw std::invalid_argument("add_done_callback: the callback is empty; pass a callable");
  QiEventLoop* l = loop_.data();
  const bool checks = loop_checks(l);
  if (checks) [[unlikely]]
    check_thread_first("add_done_callback");
  const bool now = done();
  if (now && !l) throw RuntimeError("add_done_callback: the future's event loop was destroyed");
  if (checks) [[unlikely]]
    check_call("add_done_callback", now);
  const uint64_t id = callbacks_.push_back(std::move(cb));
  if (now) {
    try {
      schedule_entries(*l, 1);
    } catch (...) {
      callbacks_.remove(id);  // out of memory: take it back
      throw;
    }
  }
  return id;
}

std::size_t FutureStateBase::remove_done_callback(uint64_t id) {
  if (loop_checks(loop_.data())) [[unlikely]]
    check_call("remove_done_callback", false);
  if (done()) return 0;  // already scheduled: they run (as in asyncio)
  return callbacks_.remove(id) ? 1 : 0;
}

void FutureStateBase::finish(Status s) {
  status_ = s;
  const uint32_t n = callbacks_.size();
  if (n == 0) {
    callbacks_.clear();  // removed ones only
    return;
  }
  QiEventLoop* l = loop_.data();
  if (!l) {
    qCWarning(lcQiloop, "a future completed after its event loop was destroyed: %u done callbacks dropped", n);
    callbacks_.clear();
    return;
  }
  schedule_entries(*l, n);
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
