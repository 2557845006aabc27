// timer_heap.h — the loop's pending timers, a binary min-heap. Internal.
//
// Invariant: entries are ordered by (when, seq); seq is a per-heap counter
// taken at push, so timers with equal deadlines come out in the order they
// were scheduled. The heap holds one reference to each node.
//
// Cancelling is O(1): Handle::cancel marks the node and bumps cancelled_
// through the node's heap pointer (set by push, cleared when it leaves).
// Cancelled entries are dropped lazily when they reach the top, or all at
// once by compaction when they are most of the heap (see collect()).
#pragma once

#include <qiloop/detail/callback_node.h>

#include <chrono>
#include <cstdint>
#include <vector>

namespace qi::detail {

class TimerHeap {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  struct Entry {
    time_point when;
    uint64_t seq;
    CallbackNode* node;
  };

  // Below this many timers, popping cancelled ones as they surface is cheaper
  // than rebuilding the heap (asyncio uses the same value).
  static constexpr std::size_t kMinTimersToCompact = 100;
  // Compact when more than half are cancelled: the O(n) rebuild is then paid
  // for by the n/2 cancels that made it necessary, and the heap never holds
  // more than about twice the live timers.
  static constexpr double kCancelledFractionToCompact = 0.5;

  bool empty() const noexcept { return heap_.empty(); }
  std::size_t size() const noexcept { return heap_.size(); }
  std::size_t cancelled() const noexcept { return cancelled_; }
  const Entry& top() const noexcept { return heap_.front(); }

  void push(CallbackNode* n);
  Entry pop();
  void note_cancelled() noexcept { ++cancelled_; }

  // Drops cancelled entries (releasing them): all of them when compaction is
  // due, else those at the top. Afterwards the top, if any, is live.
  void collect();

  // Removes and returns every entry (for close()); resets the counters.
  std::vector<Entry> take_all();

 private:
  // A function object, not a function: std::push_heap inlines it then.
  struct Later {
    bool operator()(const Entry& a, const Entry& b) const noexcept {
      return a.when != b.when ? a.when > b.when : a.seq > b.seq;
    }
  };
  static constexpr Later later{};
  std::vector<Entry> heap_;
  uint64_t next_seq_ = 0;
  std::size_t cancelled_ = 0;
};

inline bool is_cancelled(const CallbackNode* n) noexcept {
  return n->load_state() & CallbackNode::kCancelled;
}

}  // namespace qi::detail
