// qiloop/detail/deadline.h — from a delay to a deadline on the loop's clock,
// for call_later, call_at and qi::sleep alike. Internal; the contract is in
// <qiloop/event_loop.h> and <qiloop/task.h>.
//
// Any std::chrono duration is accepted. What steady_clock cannot hold
// saturates instead of wrapping around: past duration::max() is max() (so a
// deadline of time_point::max() means "never"), below duration::min() is
// min() (due now). A NaN delay throws std::invalid_argument naming the API.
#pragma once

#include <qiloop/export.h>

#include <chrono>
#include <ratio>
#include <type_traits>

namespace qi::detail {

using LoopDuration = std::chrono::steady_clock::duration;
using LoopTime = std::chrono::steady_clock::time_point;

// Throws std::invalid_argument: "<api>: the <what> is NaN; ...".
[[noreturn]] QILOOP_EXPORT void throw_nan_delay(const char* api, const char* what);

// d as a LoopDuration, saturated; truncated toward zero below a nanosecond.
template <class Rep, class Period>
LoopDuration saturating_duration(std::chrono::duration<Rep, Period> d, const char* api, const char* what = "delay") {
  using Factor = std::ratio_divide<Period, LoopDuration::period>;
  using R = LoopDuration::rep;
  if constexpr (std::is_integral_v<Rep> && std::is_signed_v<Rep> && sizeof(Rep) <= sizeof(R) && Factor::den == 1) {
    // Whole nanoseconds (ns, us, ms, s, h, ...): exact, and no floating point
    // on the timer path.
    constexpr R kLimit = LoopDuration::max().count() / Factor::num;
    const R c = d.count();
    if (c > kLimit) return LoopDuration::max();
    if (c < -kLimit) return LoopDuration::min();
    return LoopDuration(c * Factor::num);
  } else {
    // Floating point, or a unit finer than the clock's: through long double,
    // whose range holds any of them (1e300 s included).
    const long double ns = std::chrono::duration<long double, std::nano>(d).count();
    if (ns != ns) throw_nan_delay(api, what);
    if (ns >= static_cast<long double>(LoopDuration::max().count())) return LoopDuration::max();
    if (ns <= static_cast<long double>(LoopDuration::min().count())) return LoopDuration::min();
    return LoopDuration(static_cast<R>(ns));
  }
}

// base + d, saturated to time_point::min() / max().
inline LoopTime saturating_add(LoopTime base, LoopDuration d) noexcept {
  const LoopDuration::rep b = base.time_since_epoch().count();
  if (d.count() > 0 && b > LoopDuration::max().count() - d.count()) return LoopTime::max();
  if (d.count() < 0 && b < LoopDuration::min().count() - d.count()) return LoopTime::min();
  return base + d;
}

// The deadline `delay` after `base` (call_later, qi::sleep).
template <class Rep, class Period>
LoopTime deadline_after(LoopTime base, std::chrono::duration<Rep, Period> delay, const char* api) {
  return saturating_add(base, saturating_duration(delay, api));
}

// A time point of steady_clock in any unit, as a deadline (call_at).
template <class Dur>
LoopTime deadline_at(std::chrono::time_point<std::chrono::steady_clock, Dur> when, const char* api) {
  return LoopTime(saturating_duration(when.time_since_epoch(), api, "time"));
}

}  // namespace qi::detail
