// -----------------------------------------------------------------------------
// File: qiloop/sync/event.h
// -----------------------------------------------------------------------------
//
// qi::Event is asyncio.Event: a flag that tasks wait to see set.
//
// Example:
//
//   qi::Event ready;                       // may be a global: no loop needed yet
//   qi::Coro<void> worker() { co_await ready.wait(); ... }
//   ...
//   ready.set();                           // every waiter runs on a later iteration
//
// Contract (asyncio 3.13):
// - wait() returns at once, without suspending, while the flag is set;
//   otherwise it blocks until set() is called. set() wakes every waiter, in
//   the order they started waiting; a waiter runs on a later iteration (set()
//   never resumes anyone inside it), and runs even when clear() came first.
// - Cancellation: a task cancelled while it waits gets qi::CancelledError at
//   the co_await and leaves the event; the others are not affected.
// - Loops: an Event may be made before any loop runs; the first wait that
//   blocks binds it to the running loop, and a blocking wait under another
//   loop throws qi::RuntimeError.
// - Thread-safety: the bound loop's thread only. Re-entrancy: every call may
//   be made from a task or a callback of that loop.
#pragma once

#include <qiloop/detail/primitive_awaiter.h>
#include <qiloop/detail/waiter_queue.h>
#include <qiloop/export.h>

namespace qi {

class QILOOP_EXPORT Event {
 public:
  Event() noexcept = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  // Event::is_set()
  bool is_set() const noexcept { return value_; }

  // Event::set()
  // Sets the flag and wakes every task waiting (once: setting a set event
  // does nothing).
  void set();

  // Event::clear()
  // Resets the flag: later wait()s block until the next set().
  void clear() noexcept { value_ = false; }

  // Event::wait()
  // co_await event.wait(): returns when the flag is set. Throws
  // qi::CancelledError when the task is cancelled while it waits.
  auto wait() noexcept { return detail::PrimitiveAwaiter<Event>(*this); }

  // Event::waiters()
  // How many tasks wait (asyncio's len(_waiters)), for diagnostics.
  std::size_t waiters() const noexcept { return waiters_.size(); }

 private:
  template <class, class> friend class detail::PrimitiveAwaiter;
  static constexpr const char* kName = "qi::Event";
  bool try_fast() const noexcept { return value_; }
  static void finish_wait(detail::WaiterQueue::Entry& e) { e.await_resume(); }

  detail::WaiterQueue waiters_;
  bool value_ = false;
};

}  // namespace qi
