// qi::Timeout's state machine (asyncio 3.13's timeouts.py) and wait_for's
// helpers; the contract is in <qiloop/structured/timeout.h>.
#include <qiloop/structured/timeout.h>

#include <string>

namespace qi {

Timeout::~Timeout() { timer_.cancel(); }

void Timeout::enter() {
  if (state_ != State::kCreated) throw RuntimeError("qi::Timeout has already been entered: run() a Timeout once");
  TaskRef task = current_task();
  if (!task)
    throw RuntimeError(
        "qi::Timeout should be used inside a task: co_await it from a coroutine run by create_task or qi::run");
  state_ = State::kEntered;
  task_ = std::move(task);
  loop_ = &get_running_loop();
  cancelling_ = task_.cancelling();
  reschedule(when_);
}

void Timeout::reschedule(std::optional<time_point> when) {
  if (state_ != State::kEntered) {
    if (state_ == State::kCreated)
      throw RuntimeError("qi::Timeout has not been entered: reschedule() it while its run() is awaited");
    const char* name = state_ == State::kExited ? "finished" : state_ == State::kExpiring ? "expiring" : "expired";
    throw RuntimeError(std::string("Cannot change state of ") + name +
                       " qi::Timeout: reschedule() only before it expires and while its run() is awaited");
  }
  when_ = when;
  timer_.cancel();
  timer_ = {};
  if (!when) return;
  if (*when <= loop_->time())
    timer_ = loop_->call_soon([this] { on_timeout(); });
  else
    timer_ = loop_->call_at(*when, [this] { on_timeout(); });
}

void Timeout::on_timeout() {
  task_.cancel();
  state_ = State::kExpiring;
  timer_ = {};  // drop the reference early, as asyncio does
}

bool Timeout::leave(const std::exception_ptr& error) noexcept {
  timer_.cancel();
  timer_ = {};
  bool own = false;
  if (state_ == State::kExpiring) {
    state_ = State::kExpired;
    // No cancel request arrived since the block began but this timeout's:
    // the CancelledError is ours to turn into TimeoutError.
    own = task_.uncancel() <= cancelling_ && error && detail::is_cancelled_error(error);
  } else if (state_ == State::kEntered) {
    state_ = State::kExited;
  }
  task_ = {};
  return own;
}

namespace detail {

std::optional<LoopTime> TimeoutDeadline::resolve() const {
  switch (kind) {
    case Kind::kNever:
      return std::nullopt;
    case Kind::kAt:
      return when;
    case Kind::kAfter:
      return saturating_add(get_running_loop().time(), delay);
  }
  return std::nullopt;
}

bool is_cancelled_error(const std::exception_ptr& e) noexcept {
  try {
    std::rethrow_exception(e);
  } catch (const CancelledError&) {
    return true;
  } catch (...) {
    return false;
  }
}

void throw_timeout_error() { throw TimeoutError("the timeout expired"); }

Coro<void> cancel_and_wait(FutureRef f) {
  Future<void> waiter = get_running_loop().create_future<void>();
  const uint64_t id = f.state()->add_done_callback([waiter](FutureStateBase&) {
    if (!waiter.done()) waiter.set_result();
  });
  f.cancel();
  std::exception_ptr error;
  try {
    co_await waiter;
  } catch (...) {
    error = std::current_exception();
  }
  f.state()->remove_done_callback(id);
  if (error) std::rethrow_exception(error);
}

}  // namespace detail
}  // namespace qi
