#include <qiloop/event_loop.h>
#include <qiloop/future.h>

#include "loop_impl.h"

#include <algorithm>

namespace qi::detail {

// The ready-queue entry of one scheduled done callback: runs the next one of
// its future's firing_ list. Small enough (a pointer and a flag) for the
// callback node's inline storage, so completing a future allocates nothing.
struct FiringEntry {
  FutureStateBase* state;
  explicit FiringEntry(FutureStateBase* s) noexcept : state(s) {}
  FiringEntry(FiringEntry&& o) noexcept : state(std::exchange(o.state, nullptr)) {}
  FiringEntry& operator=(FiringEntry&&) = delete;
  ~FiringEntry() {
    if (!state) return;
    // Run or dropped (close()): the last entry releases the state.
    if (--state->firing_entries_ == 0) {
      state->callbacks_.clear();
      state->fired_ = 0;
      auto self = std::move(state->firing_self_);
    }
  }
  void operator()() {
    FutureStateBase& s = *state;
    FutureStateBase::DoneCallback cb = std::move(s.callbacks_[s.fired_++].second);
    cb(s);
    // Callbacks added to a done future while others are still scheduled
    // would otherwise pile up: drop the ones that ran, now and then.
    constexpr uint32_t kCompactAfter = 32;
    if (s.fired_ >= kCompactAfter && s.fired_ * 2 >= s.callbacks_.size()) {
      s.callbacks_.erase(s.callbacks_.begin(), s.callbacks_.begin() + s.fired_);
      s.fired_ = 0;
    }
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

void FutureStateBase::check_settable(const char* api) const {
  if (is_task_)
    throw RuntimeError(std::string(api) +
                       ": a Task's result comes from its coroutine (co_return / throw); cancel() it instead");
  if (status_ != Status::kPending)
    throw InvalidStateError(std::string(api) + ": the future is already " +
                            (status_ == Status::kCancelled ? "cancelled" : "done") + "; check done() first");
}

bool FutureStateBase::cancel(std::string msg) {
  if (status_ != Status::kPending) return false;
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
  if (done() && !l) throw RuntimeError("add_done_callback: the future's event loop was destroyed");
  uint64_t id = next_callback_id_++;
  callbacks_.emplace_back(id, std::move(cb));
  if (done()) schedule_entries(*l, 1);
  return id;
}

std::size_t FutureStateBase::remove_done_callback(uint64_t id) {
  if (done()) return 0;  // already scheduled: they run (as in asyncio)
  auto it = std::remove_if(callbacks_.begin(), callbacks_.end(), [id](const auto& p) { return p.first == id; });
  auto n = static_cast<std::size_t>(callbacks_.end() - it);
  callbacks_.erase(it, callbacks_.end());
  return n;
}

void FutureStateBase::finish(Status s) {
  status_ = s;
  if (callbacks_.empty()) return;
  QiEventLoop* l = loop_.data();
  if (!l) {
    qCWarning(lcQiloop, "a future completed after its event loop was destroyed: %zu done callbacks dropped",
              callbacks_.size());
    callbacks_.clear();
    return;
  }
  schedule_entries(*l, callbacks_.size());
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
