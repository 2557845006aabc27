// clock.cpp — the loop's clock hook: set_clock(), the wake-up armed through
// the clock, and a clock's notice that it moved or dies.
#include <qiloop/clock.h>
#include <qiloop/event_loop.h>

#include "loop_impl.h"

#include <QtCore/QThread>

#include <string>

namespace qi {

Clock::~Clock() {
  if (loop_) loop_->on_clock_destroyed();
}

void Clock::notify_changed() {
  if (loop_) loop_->on_clock_changed();
}

}  // namespace qi

// Why the clock may not change now, or null. The loop keeps no record of
// which clock a deadline was read from, so a change is safe only while no
// timer is pending and nothing reads the clock meanwhile.
const char* QiEventLoop::clock_refusal() const noexcept {
  if (thread() != QThread::currentThread()) return "the call is made on a thread that does not own the loop";
  if (running_ || in_slice_) return "the loop is running";
  if (impl_->timers.size() > impl_->timers.cancelled())
    return "timers are pending on the loop, their deadlines read from its current clock";
  return nullptr;
}

void QiEventLoop::set_clock(qi::Clock* c) {
  if (c == clock_) return;
  if (const char* why = clock_refusal())
    throw qi::RuntimeError(std::string("set_clock: ") + why +
                           "; set the clock on the loop's thread before the loop runs and before scheduling timers "
                           "(or once it stopped and its timers ran or were cancelled)");
  if (c && c->loop_)
    throw qi::RuntimeError(
        "set_clock: this clock already serves another QiEventLoop; a clock serves one loop at a time: give each loop "
        "its own clock, or call set_clock(nullptr) on the other loop first");
  if (clock_) clock_->loop_ = nullptr;
  clock_ = c;
  if (c) c->loop_ = this;
}

void QiEventLoop::on_clock_destroyed() noexcept {
  if (const char* why = clock_refusal())
    qFatal("qi::Clock destroyed while a QiEventLoop uses it and %s: call loop.set_clock(nullptr) before destroying "
           "the clock, or destroy the loop first (declare the clock before the loop)",
           why);
  clock_ = nullptr;
}

void QiEventLoop::on_clock_changed() {
  check_thread("qi::Clock::notify_changed");
  // Inside a slice the next "is a timer due?" check reads the clock anyway.
  if (!in_slice_) wake_from_outside();
}
