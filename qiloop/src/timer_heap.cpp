#include "timer_heap.h"

#include <algorithm>

namespace qi::detail {

void TimerHeap::push(CallbackNode* n) {
  n->heap = this;
  heap_.push_back(Entry{n->when, next_seq_++, n});
  std::push_heap(heap_.begin(), heap_.end(), later);
}

TimerHeap::Entry TimerHeap::pop() {
  std::pop_heap(heap_.begin(), heap_.end(), later);
  Entry e = heap_.back();
  heap_.pop_back();
  e.node->heap = nullptr;
  if (is_cancelled(e.node)) --cancelled_;
  return e;
}

void TimerHeap::collect() {
  if (heap_.size() > kMinTimersToCompact &&
      static_cast<double>(cancelled_) > kCancelledFractionToCompact * static_cast<double>(heap_.size())) {
    std::vector<CallbackNode*> dead;
    dead.reserve(cancelled_);
    auto live_end = std::partition(heap_.begin(), heap_.end(), [](const Entry& e) { return !is_cancelled(e.node); });
    for (auto it = live_end; it != heap_.end(); ++it) {
      it->node->heap = nullptr;
      dead.push_back(it->node);
    }
    heap_.erase(live_end, heap_.end());
    std::make_heap(heap_.begin(), heap_.end(), later);
    cancelled_ = 0;
    for (CallbackNode* n : dead) release_node(n);
    return;
  }
  while (!heap_.empty() && is_cancelled(heap_.front().node)) release_node(pop().node);
}

std::vector<TimerHeap::Entry> TimerHeap::take_all() {
  std::vector<Entry> all;
  all.swap(heap_);
  for (Entry& e : all) e.node->heap = nullptr;
  cancelled_ = 0;
  return all;
}

}  // namespace qi::detail
