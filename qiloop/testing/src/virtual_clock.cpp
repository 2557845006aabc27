#include <qiloop/testing/virtual_clock.h>

#include <qiloop/detail/deadline.h>
#include <qiloop/errors.h>
#include <qiloop/event_loop.h>

#include <QtCore/QThread>

#include <stdexcept>
#include <string>

namespace qi::testing {

Clock::time_point VirtualClock::idle(time_point next_timer, bool io_watched) noexcept {
  if (!autojump_ || next_timer == time_point::max()) {
    primed_ = false;
    return time_point::max();
  }
  const time_point real_now = std::chrono::steady_clock::now();
  if (!io_watched && threshold_ == duration::zero()) return jump(next_timer, real_now);
  // One logical iteration since the last idle() is a slice that only polled
  // (nothing was ready, so nothing ran that could have scheduled more); a
  // slice that served an fd or callbacks runs at least two (LoopStats).
  const std::uint64_t iterations = loop()->stats().iterations;
  const bool quiet = primed_ && iterations == primed_iterations_ + 1 && next_timer == primed_timer_;
  if (quiet && real_now >= primed_until_) return jump(next_timer, real_now);
  // Threshold 0: look again (poll) at once; duration::max(): never.
  if (!quiet) primed_until_ = qi::detail::saturating_add(real_now, threshold_);
  primed_ = true;
  primed_iterations_ = iterations;
  primed_timer_ = next_timer;
  return primed_until_;
}

Clock::time_point VirtualClock::jump(time_point to, time_point real_now) noexcept {
  if (to > now_) now_ = to;
  ++autojumps_;
  primed_ = false;
  return real_now;  // run again at once: the timer is due now
}

void VirtualClock::set(time_point t, const char* api) {
  if (QiEventLoop* l = loop(); l && l->thread() != QThread::currentThread())
    throw qi::RuntimeError(std::string(api) +
                           ": called from a thread that does not own the loop using this clock; call it on that "
                           "loop's thread (e.g. from a callback sent with call_soon_threadsafe)");
  now_ = t;
  primed_ = false;
  notify_changed();
}

void VirtualClock::advance(duration d) {
  if (d < duration::zero())
    throw std::invalid_argument("VirtualClock::advance: the duration is negative; virtual time only moves forward");
  set(qi::detail::saturating_add(now_, d), "VirtualClock::advance");
}

void VirtualClock::jump_to(time_point t) {
  if (t < now_)
    throw std::invalid_argument(
        "VirtualClock::jump_to: the time is before now(); virtual time only moves forward (use advance(d))");
  set(t, "VirtualClock::jump_to");
}

void VirtualClock::set_autojump(bool on) {
  autojump_ = on;
  primed_ = false;
  if (on) notify_changed();
}

void VirtualClock::set_autojump_threshold(duration d) {
  if (d < duration::zero())
    throw std::invalid_argument("VirtualClock::set_autojump_threshold: the threshold is negative; pass 0 or more");
  threshold_ = d;
  primed_ = false;
}

}  // namespace qi::testing
