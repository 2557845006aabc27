// barrier.cpp — qi::Barrier (asyncio 3.13's Barrier, on a qi::Condition).
#include <qiloop/errors.h>
#include <qiloop/sync/barrier.h>

#include <string>
#include <utility>

namespace qi {

// The barrier's state. The coroutines inside wait() hold it too, so that
// destroying the Barrier leaves them something to wake up in.
// Filling: tasks arrive. Draining: the last one arrived; the others leave
// (newcomers wait for the next round). Resetting: reset() while tasks
// waited; they leave with BrokenBarrierError. Broken: aborted (or the
// Barrier destroyed).
struct Barrier::State {
  enum class Phase { kFilling, kDraining, kResetting, kBroken };

  explicit State(std::size_t p) : parties(p) { cond.name_ = "qi::Barrier"; }

  // Until the barrier takes newcomers (not draining nor resetting); throws
  // when it is broken.
  Coro<void> block();
  Coro<void> wait_to_be_released();
  // The last task out ends the draining (or resetting) and lets newcomers in.
  void leave();
  // Under the condition's lock: a new phase, which every waiter re-checks.
  void enter(Phase p) {
    phase = p;
    cond.notify_all();
  }

  Condition cond;  // notify_all at every change of phase
  std::size_t parties;
  std::size_t count = 0;  // tasks inside wait(), between block() and leave()
  Phase phase = Phase::kFilling;
  const char* broken_by = "aborted";
};

namespace {

std::size_t checked_parties(std::ptrdiff_t parties) {
  if (parties < 1)
    throw ValueError("qi::Barrier: parties must be >= 1 (got " + std::to_string(parties) + ")");
  return static_cast<std::size_t>(parties);
}

}  // namespace

Barrier::Barrier(std::ptrdiff_t parties) : state_(std::make_shared<State>(checked_parties(parties))) {}

Barrier::~Barrier() {
  // No coroutine holds the condition's lock across a suspension, so it is
  // free here; a barrier nobody waits in has nothing to tell.
  State& s = *state_;
  if (s.count == 0 || s.cond.locked()) return;
  s.broken_by = "destroyed";
  s.phase = State::Phase::kBroken;
  s.cond.wake(s.cond.waiters());  // notify_all without the lock, which nobody can take now
}

std::size_t Barrier::parties() const noexcept { return state_->parties; }
std::size_t Barrier::n_waiting() const noexcept {
  return state_->phase == State::Phase::kFilling ? state_->count : 0;
}
bool Barrier::broken() const noexcept { return state_->phase == State::Phase::kBroken; }

Coro<std::size_t> Barrier::wait() {
  const std::shared_ptr<State> s = state_;  // the Barrier may go while this waits
  auto guard = co_await s->cond.scoped();
  co_await s->block();
  const std::size_t index = s->count++;
  try {
    if (index + 1 == s->parties)
      s->enter(State::Phase::kDraining);  // the last one: release the others, keep newcomers out
    else
      co_await s->wait_to_be_released();
  } catch (...) {
    s->leave();
    throw;
  }
  s->leave();
  co_return index;
}

Coro<void> Barrier::State::block() {
  co_await cond.wait_for([this] { return phase != Phase::kDraining && phase != Phase::kResetting; });
  if (phase == Phase::kBroken) throw BrokenBarrierError(std::string("qi::Barrier ") + broken_by);
}

Coro<void> Barrier::State::wait_to_be_released() {
  co_await cond.wait_for([this] { return phase != Phase::kFilling; });
  if (phase == Phase::kBroken || phase == Phase::kResetting)
    throw BrokenBarrierError(std::string("qi::Barrier ") + (phase == Phase::kBroken ? broken_by : "reset") +
                             " while waiting");
}

void Barrier::State::leave() {
  --count;
  if (count != 0) return;
  if (phase == Phase::kResetting || phase == Phase::kDraining) phase = Phase::kFilling;
  cond.notify_all();
}

Coro<void> Barrier::reset() {
  const std::shared_ptr<State> s = state_;
  auto guard = co_await s->cond.scoped();
  s->enter(s->count > 0 ? State::Phase::kResetting : State::Phase::kFilling);
}

Coro<void> Barrier::abort() {
  const std::shared_ptr<State> s = state_;
  auto guard = co_await s->cond.scoped();
  s->enter(State::Phase::kBroken);
}

}  // namespace qi
