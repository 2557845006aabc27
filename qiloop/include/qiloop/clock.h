// qiloop/clock.h — qi::Clock: where a QiEventLoop reads "now".
//
//   qi::testing::VirtualClock clock;   // <qiloop/testing/virtual_clock.h>
//   QiEventLoop loop;                  // declared after the clock: goes first
//   loop.set_clock(&clock);            // time(), call_later, sleep: virtual
//   loop.run_until_complete(work());   // sleep(1h) takes no real time
//
// By default a loop reads std::chrono::steady_clock and needs no Clock. A
// Clock replaces it for every timer decision: time(), the deadlines
// call_later and qi::sleep compute, and the checks of which timers are due.
// Two things stay on real time whatever the clock: the slice budget (how
// long Qt waits for the loop) and debug mode's slow-callback timing — both
// are about the real thread.
//
// The loop and its clock talk through two calls, both on the loop's thread:
// - now(): the loop's time.
// - idle(next_timer, io_watched): a slice ended with nothing ready, no
//   thread-inbox work and the earliest timer at next_timer (clock time), not
//   yet due. The clock answers with the REAL steady_clock time at which the
//   loop should look again (one precise wake-up is armed for it). An answer
//   <= steady_clock::now() makes the loop run again at once; time_point::max()
//   makes it wait for what else wakes it: an fd, another thread, injected
//   code, or notify_changed(). Whatever the answer, fds and other threads
//   still wake the loop. The real clock's answer is next_timer itself.
// A clock that moves without the loop asking (advance() from injected code)
// calls notify_changed() so the loop reads now() again.
#pragma once

#include <qiloop/export.h>

#include <chrono>

class QiEventLoop;

namespace qi {

// qi::Clock
// Abstract and non-copyable. A clock serves one loop at a time (see
// QiEventLoop::set_clock); it must outlive its use by that loop: destroying
// a clock while it is set on a loop detaches it where set_clock(nullptr)
// would be allowed (the loop is not running and has no timer pending) and is
// fatal (qFatal) otherwise. Destroying the loop first detaches it too.
class QILOOP_EXPORT Clock {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  using duration = std::chrono::steady_clock::duration;

  Clock() = default;
  Clock(const Clock&) = delete;
  Clock& operator=(const Clock&) = delete;
  virtual ~Clock();

  // Clock::now()
  // The loop's time. Called on the loop's thread, often: keep it cheap.
  // Must never go backwards.
  virtual time_point now() const noexcept = 0;

  // Clock::idle()
  // Called on the loop's thread at the end of a slice that left nothing to
  // run while a timer is pending: next_timer is the earliest deadline (clock
  // time, > now()); io_watched says whether fds are registered. Returns the
  // real steady_clock time to look again at (see the file comment). May move
  // now() (a virtual clock jumps here); must not call into the loop.
  virtual time_point idle(time_point next_timer, bool io_watched) noexcept = 0;

  // Clock::loop()
  // The loop using this clock, or null.
  QiEventLoop* loop() const noexcept { return loop_; }

 protected:
  // Clock::notify_changed()
  // now() moved outside idle(): makes the loop read it again. From the
  // loop's callbacks it is not needed (the next iteration re-reads now())
  // and costs nothing; from injected code (a slot, a QTimer, code between
  // runs) it wakes a running loop. Loop thread only; a no-op without a loop.
  void notify_changed();

 private:
  friend class ::QiEventLoop;
  QiEventLoop* loop_ = nullptr;
};

}  // namespace qi
