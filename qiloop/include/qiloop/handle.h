// -----------------------------------------------------------------------------
// File: qiloop/handle.h
// -----------------------------------------------------------------------------
//
// qi::Handle and qi::TimerHandle: what call_soon / call_later return.
//
// Example:
//
//   qi::Handle h = loop.call_soon(cb);
//   h.cancel();                 // cb will not run; idempotent
//   qi::TimerHandle t = loop.call_later(5ms, cb);
//   auto deadline = t.when();   // loop.time() at which it is due
//
// A handle is a cheap copyable reference to one scheduled callback (asyncio's
// Handle / TimerHandle). It may outlive its loop.
//
// Ordering: cancel() before the callback starts guarantees it never runs and
// destroys the callable (and what it captured) at once — except for a
// call_soon_threadsafe handle, whose callable the loop's thread destroys when
// it next looks (or at close()). cancel() while the callback runs or after it
// ran only marks the handle. cancelled() reports whether cancel() was called.
// Re-entrancy: cancel() may be called from any callback, the handle's own
// included (it then only marks it).
//
// Thread-safety: a handle from call_soon_threadsafe may be copied, destroyed
// and cancelled on any thread. Other handles belong to their loop's thread.
#pragma once

#include <qiloop/detail/callback_node.h>

#include <chrono>
#include <utility>

namespace qi {

// qi::Handle
// What call_soon and call_soon_threadsafe return.
class Handle {
 public:
  // Handle::Handle()
  // An empty handle (operator bool is false; cancel() does nothing). Copies
  // refer to the same callback.
  Handle() noexcept = default;
  Handle(const Handle& o) noexcept : node_(o.node_) {
    if (node_) node_->retain();
  }
  Handle(Handle&& o) noexcept : node_(std::exchange(o.node_, nullptr)) {}
  Handle& operator=(Handle o) noexcept {
    std::swap(node_, o.node_);
    return *this;
  }
  ~Handle() {
    if (node_) detail::release_node(node_);
  }

  // Handle::cancel()
  // Prevents the callback from running if it has not started. Idempotent.
  void cancel() const noexcept {
    if (node_) detail::cancel_node(node_);
  }
  // Handle::cancelled()
  // Whether cancel() was called (through any copy). False when empty.
  bool cancelled() const noexcept {
    return node_ && (node_->load_state() & detail::CallbackNode::kCancelled);
  }
  // Handle::operator bool()
  // False for a default-constructed handle (or one moved from).
  explicit operator bool() const noexcept { return node_ != nullptr; }

  // Handle::operator==()
  // Equal when both refer to the same scheduled callback (or both are empty).
  friend bool operator==(const Handle& a, const Handle& b) noexcept { return a.node_ == b.node_; }

  // Internal: takes over one reference the caller already counted.
  static Handle adopt(detail::CallbackNode* n) noexcept {
    Handle h;
    h.node_ = n;
    return h;
  }
  // Internal: hands the reference over to the caller (release_node() drops it).
  detail::CallbackNode* release() noexcept { return std::exchange(node_, nullptr); }

 protected:
  detail::CallbackNode* node_ = nullptr;
};

// qi::TimerHandle
// What call_later and call_at return: a Handle that also knows its deadline.
class TimerHandle : public Handle {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  TimerHandle() noexcept = default;

  // TimerHandle::when()
  // The loop.time() at which the callback is due; time_point{} when empty.
  time_point when() const noexcept { return node_ ? node_->when : time_point{}; }

  // Internal: takes over one reference the caller already counted.
  static TimerHandle adopt(detail::CallbackNode* n) noexcept {
    TimerHandle h;
    h.node_ = n;
    return h;
  }
};

}  // namespace qi
