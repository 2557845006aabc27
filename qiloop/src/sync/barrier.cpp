// barrier.cpp — qi::Barrier (asyncio 3.13's Barrier, on a qi::Condition).
#include <qiloop/errors.h>
#include <qiloop/sync/barrier.h>

namespace qi {

Barrier::Barrier(std::size_t parties) : parties_(parties) {
  cond_.name_ = "qi::Barrier";
  if (parties < 1) throw ValueError("qi::Barrier: parties must be >= 1");
}

Coro<std::size_t> Barrier::wait() {
  auto guard = co_await cond_.scoped();
  co_await block();
  const std::size_t index = count_++;
  try {
    if (index + 1 == parties_) {
      // The last one: release the others, and keep newcomers out until
      // they have all left.
      state_ = State::kDraining;
      cond_.notify_all();
    } else {
      co_await wait_to_be_released();
    }
  } catch (...) {
    leave();
    throw;
  }
  leave();
  co_return index;
}

// Until the barrier takes newcomers (not draining nor resetting); throws
// when it is broken.
Coro<void> Barrier::block() {
  co_await cond_.wait_for([this] { return state_ != State::kDraining && state_ != State::kResetting; });
  if (state_ == State::kBroken) throw BrokenBarrierError("qi::Barrier aborted");
}

Coro<void> Barrier::wait_to_be_released() {
  co_await cond_.wait_for([this] { return state_ != State::kFilling; });
  if (state_ == State::kBroken || state_ == State::kResetting)
    throw BrokenBarrierError("qi::Barrier aborted or reset while waiting");
}

// The last task out ends the draining (or resetting) and lets newcomers in.
void Barrier::leave() {
  --count_;
  if (count_ != 0) return;
  if (state_ == State::kResetting || state_ == State::kDraining) state_ = State::kFilling;
  cond_.notify_all();
}

Coro<void> Barrier::reset() {
  auto guard = co_await cond_.scoped();
  state_ = count_ > 0 ? State::kResetting : State::kFilling;
  cond_.notify_all();
}

Coro<void> Barrier::abort() {
  auto guard = co_await cond_.scoped();
  state_ = State::kBroken;
  cond_.notify_all();
}

}  // namespace qi
