// qiloop/testing/virtual_clock.h — qi::testing::VirtualClock: a loop clock
// that moves only when told, or jumps when the loop has nothing else to do
// (Trio's MockClock with autojump).
//
//   qi::testing::VirtualClock clock;           // autojump on, time starts at 0
//   QiEventLoop loop;                          // after the clock: goes first
//   loop.set_clock(&clock);
//   loop.run_until_complete(retry());          // its sleep(1h) takes no real time
//
//   clock.set_autojump(false);                 // or by hand:
//   clock.advance(5s);                         // timers due by now run next
//
// The autojump rule. When a slice of the loop ends with nothing ready, no
// thread-inbox work and the earliest timer not yet due, time jumps straight
// to that timer's deadline and the loop runs again at once: co_await
// qi::sleep(1h) ends at once, at exactly time() + 1h. Timers due at the same
// virtual time keep their (deadline, scheduling order). A timer at
// time_point::max() (sleep forever) is never jumped to.
// - While fds are registered the loop first polls once more: time jumps only
//   when a whole iteration found no fd ready and nothing to run (so a peer
//   in the same process, e.g. the other end of a socketpair written by a
//   callback, is always served before time moves).
// - set_autojump_threshold(d): the loop must also have stayed that quiet for
//   d of real time (Trio's autojump_threshold). Use it when other threads or
//   processes will wake the loop: their work is invisible until it arrives.
// - With autojump off, time moves only by advance() / jump_to(); the loop
//   then waits for fds, other threads or injected code, as a real loop would.
//
// Threads: the loop's thread only, once set on a loop (before: any one
// thread). advance() from a callback takes effect at the next iteration;
// from injected code (a slot, a QTimer, code between runs) it wakes the loop.
#pragma once

#include <qiloop/clock.h>

#include <chrono>
#include <cstdint>

namespace qi::testing {

class VirtualClock final : public qi::Clock {
 public:
  // VirtualClock::VirtualClock()
  // Time starts at `start` (the steady clock's epoch by default, as Trio's
  // MockClock starts at 0); autojump is on.
  explicit VirtualClock(time_point start = time_point{}) noexcept : now_(start) {}

  time_point now() const noexcept override { return now_; }
  time_point idle(time_point next_timer, bool io_watched) noexcept override;

  // VirtualClock::advance()
  // Moves time forward by d (saturating at time_point::max()); timers due by
  // then run on the loop's next iteration. Throws std::invalid_argument for
  // d < 0 (time never goes back), qi::RuntimeError off the loop's thread.
  void advance(duration d);
  // VirtualClock::jump_to()
  // Moves time forward to t. Throws std::invalid_argument for t < now().
  void jump_to(time_point t);

  // VirtualClock::set_autojump()
  // On by default. Turning it on wakes an idle loop, which then jumps.
  void set_autojump(bool on);
  bool autojump() const noexcept { return autojump_; }

  // VirtualClock::set_autojump_threshold()
  // Real time the loop must stay quiet before time jumps (default 0).
  // Throws std::invalid_argument for d < 0.
  void set_autojump_threshold(duration d);
  duration autojump_threshold() const noexcept { return threshold_; }

  // How many times time jumped by itself.
  std::uint64_t autojumps() const noexcept { return autojumps_; }

 private:
  time_point jump(time_point to, time_point real_now) noexcept;
  void set(time_point t, const char* api);

  time_point now_;
  bool autojump_ = true;
  duration threshold_{};
  std::uint64_t autojumps_ = 0;
  // A jump that waits for a quiet iteration (fds) or the threshold: "primed"
  // by an idle() call, fired by a later one if the loop ran exactly one
  // iteration in between (it polled and found nothing), the next timer is
  // the same, and primed_until_ (real time) has passed.
  bool primed_ = false;
  std::uint64_t primed_iterations_ = 0;
  time_point primed_timer_{};
  time_point primed_until_{};
};

}  // namespace qi::testing
