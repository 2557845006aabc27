// qi::detail::TimerHeap on a virtual clock: deadlines are synthetic
// time_points, so ordering and compaction are checked exactly, without
// sleeping.
#include <qiloop/detail/callback_node.h>

#include "timer_heap.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using qi::detail::CallbackNode;
using qi::detail::TimerHeap;

namespace {

using time_point = TimerHeap::time_point;

// The virtual clock's epoch; far from zero so that "before t0" exists.
const time_point t0 = time_point{} + 1h;

class TimerHeapTest : public testing::Test {
 protected:
  ~TimerHeapTest() override {
    // The heap does not own its nodes' lifetime on destruction; the loop
    // takes them back with take_all() at close(), and so does the test.
    for (TimerHeap::Entry& e : heap.take_all()) qi::detail::release_node(e.node);
  }

  // A timer as the loop schedules one, but owned by the heap alone (its
  // handle already dropped): refs == 1. The callback appends `id` to fired.
  CallbackNode* timer(time_point when, int id) {
    CallbackNode* n = qi::detail::alloc_node(CallbackNode::kTimer);
    n->refs.store(1, std::memory_order_relaxed);
    n->when = when;
    n->fn = [this, id] { fired.push_back(id); };
    return n;
  }
  CallbackNode* push(time_point when, int id) {
    CallbackNode* n = timer(when, id);
    heap.push(n);
    return n;
  }
  // Handle::cancel() as the loop sees it: cancel_node marks the node and
  // its heap (the node's heap pointer) counts it.
  void cancel(CallbackNode* n) { qi::detail::cancel_node(n); }
  // One iteration's timer phase at virtual time `now`: drop cancelled
  // timers, then run every due one in order.
  void advance_to(time_point now) {
    heap.collect();
    while (!heap.empty() && heap.top().when <= now) {
      CallbackNode* n = heap.pop().node;
      if (!qi::detail::is_cancelled(n)) n->fn();
      qi::detail::release_node(n);
    }
  }
  // Pops everything and runs the live ones, regardless of time.
  void drain() { advance_to(time_point::max()); }

  TimerHeap heap;
  std::vector<int> fired;
};

TEST_F(TimerHeapTest, EmptyHeap) {
  EXPECT_TRUE(heap.empty());
  EXPECT_EQ(heap.size(), 0u);
  EXPECT_EQ(heap.cancelled(), 0u);
  heap.collect();  // nothing to do, must not touch top()
  EXPECT_TRUE(heap.take_all().empty());
}

TEST_F(TimerHeapTest, PopsInDeadlineOrder) {
  push(t0 + 5ms, 5);
  push(t0 + 1ms, 1);
  push(t0 + 9ms, 9);
  push(t0 + 3ms, 3);
  push(t0 - 2ms, -2);
  push(t0 + 7ms, 7);
  EXPECT_EQ(heap.size(), 6u);
  EXPECT_EQ(heap.top().when, t0 - 2ms);
  drain();
  EXPECT_EQ(fired, (std::vector<int>{-2, 1, 3, 5, 7, 9}));
  EXPECT_TRUE(heap.empty());
}

TEST_F(TimerHeapTest, EntriesCarryTheNodesDeadlineAndAnIncreasingSequence) {
  CallbackNode* a = push(t0 + 2ms, 0);
  CallbackNode* b = push(t0 + 1ms, 1);
  TimerHeap::Entry first = heap.pop();
  TimerHeap::Entry second = heap.pop();
  EXPECT_EQ(first.node, b);
  EXPECT_EQ(first.when, t0 + 1ms);
  EXPECT_EQ(second.node, a);
  EXPECT_EQ(second.when, t0 + 2ms);
  EXPECT_LT(second.seq, first.seq) << "seq is taken at push, not at pop";
  qi::detail::release_node(first.node);
  qi::detail::release_node(second.node);
}

TEST_F(TimerHeapTest, EqualDeadlinesPopInPushOrder) {
  // Interleave two deadlines so the heap has to reorder; within each
  // deadline the push order must survive every sift.
  for (int i = 0; i < 64; ++i) push(i % 2 ? t0 + 1ms : t0, i);
  drain();
  std::vector<int> expected;
  for (int i = 0; i < 64; i += 2) expected.push_back(i);
  for (int i = 1; i < 64; i += 2) expected.push_back(i);
  EXPECT_EQ(fired, expected);
}

TEST_F(TimerHeapTest, AdvancingTheVirtualClockRunsExactlyTheDueTimers) {
  push(t0 + 10ms, 10);
  push(t0 + 20ms, 20);
  push(t0 + 20ms, 21);
  push(t0 + 30ms, 30);
  advance_to(t0 + 9ms);
  EXPECT_TRUE(fired.empty());
  advance_to(t0 + 10ms);  // a deadline equal to now is due
  EXPECT_EQ(fired, (std::vector<int>{10}));
  advance_to(t0 + 29ms);
  EXPECT_EQ(fired, (std::vector<int>{10, 20, 21}));
  EXPECT_EQ(heap.size(), 1u);
  EXPECT_EQ(heap.top().when, t0 + 30ms);
}

TEST_F(TimerHeapTest, CancelledTimersAtTheTopAreDroppedByCollect) {
  CallbackNode* a = push(t0 + 1ms, 1);
  CallbackNode* b = push(t0 + 2ms, 2);
  push(t0 + 3ms, 3);
  CallbackNode* d = push(t0 + 4ms, 4);
  cancel(a);
  cancel(b);
  cancel(d);  // not at the top: lazily kept until it surfaces
  EXPECT_EQ(heap.cancelled(), 3u);
  EXPECT_EQ(heap.size(), 4u) << "cancelling is O(1): nothing is removed yet";

  heap.collect();
  EXPECT_EQ(heap.size(), 2u);
  EXPECT_EQ(heap.cancelled(), 1u);
  EXPECT_EQ(heap.top().when, t0 + 3ms) << "after collect() the top is live";
  EXPECT_FALSE(qi::detail::is_cancelled(heap.top().node));

  drain();
  EXPECT_EQ(fired, (std::vector<int>{3}));
  EXPECT_EQ(heap.cancelled(), 0u) << "popping a cancelled entry uncounts it";
}

TEST_F(TimerHeapTest, CollectWithOnlyCancelledTimersEmptiesTheHeap) {
  for (int i = 0; i < 10; ++i) cancel(push(t0 + std::chrono::milliseconds(i), i));
  heap.collect();
  EXPECT_TRUE(heap.empty());
  EXPECT_EQ(heap.cancelled(), 0u);
  EXPECT_TRUE(fired.empty());
}

TEST_F(TimerHeapTest, CancelDropsTheCallbackAtOnceEvenWhileTheHeapKeepsTheNode) {
  auto token = std::make_shared<int>(0);
  std::weak_ptr<int> weak = token;
  CallbackNode* n = timer(t0 + 50ms, 0);
  n->fn = [token = std::move(token)] {};
  heap.push(n);
  push(t0, 1);  // keeps n away from the top
  cancel(n);
  EXPECT_TRUE(weak.expired()) << "asyncio drops a cancelled handle's callback at once";
  EXPECT_EQ(heap.size(), 2u);
}

// Compaction: more than kMinTimersToCompact timers and more than half of them
// cancelled makes collect() drop every cancelled entry at once.
TEST_F(TimerHeapTest, CompactionRemovesEveryCancelledTimerAndKeepsTheLiveOnesInOrder) {
  ASSERT_EQ(TimerHeap::kMinTimersToCompact, 100u);
  constexpr int kTimers = 300;
  // Live timers share deadlines in groups of three, so the order within a
  // deadline (the sequence) is checked across the rebuild too.
  std::vector<CallbackNode*> nodes;
  for (int i = 0; i < kTimers; ++i) nodes.push_back(push(t0 + std::chrono::milliseconds(i / 3), i));
  // Keep the earliest timer live so that lazy collection alone would remove
  // nothing: only compaction can shrink the heap.
  std::vector<int> live;
  for (int i = 0; i < kTimers; ++i) {
    if (i % 5 == 0 || i % 5 == 3)
      live.push_back(i);
    else
      cancel(nodes[i]);
  }
  ASSERT_EQ(heap.cancelled(), 180u);
  heap.collect();
  EXPECT_EQ(heap.size(), live.size());
  EXPECT_EQ(heap.cancelled(), 0u);
  drain();
  EXPECT_EQ(fired, live);
}

TEST_F(TimerHeapTest, CompactionReleasesTheHeapsReferenceToCancelledNodes) {
  // Here each node also has a "handle" (a second reference), so the test can
  // watch the heap let go without touching freed memory.
  std::vector<CallbackNode*> nodes;
  for (int i = 0; i < 200; ++i) {
    CallbackNode* n = push(t0 + std::chrono::milliseconds(200 - i), i);
    n->retain();
    nodes.push_back(n);
  }
  for (int i = 0; i < 200; ++i)
    if (i % 4 != 0) cancel(nodes[i]);
  heap.collect();
  ASSERT_EQ(heap.size(), 50u);
  for (int i = 0; i < 200; ++i) {
    uint32_t refs = nodes[i]->refs.load();
    if (i % 4 != 0)
      EXPECT_EQ(refs, 1u) << "cancelled timer " << i << " still referenced by the heap";
    else
      EXPECT_EQ(refs, 2u) << "live timer " << i << " lost the heap's reference";
  }
  for (CallbackNode* n : nodes) qi::detail::release_node(n);
  drain();
  std::vector<int> expected;
  for (int i = 196; i >= 0; i -= 4) expected.push_back(i);
  EXPECT_EQ(fired, expected);
}

TEST_F(TimerHeapTest, CompactionNeedsMoreThanTheMinimumNumberOfTimers) {
  // Exactly kMinTimersToCompact timers, all but the first cancelled: too few
  // to compact, so only the cancelled ones at the top would go, and the top
  // is live.
  std::vector<CallbackNode*> nodes;
  for (int i = 0; i < 100; ++i) nodes.push_back(push(t0 + std::chrono::milliseconds(i), i));
  for (int i = 1; i < 100; ++i) cancel(nodes[i]);
  heap.collect();
  EXPECT_EQ(heap.size(), 100u);
  EXPECT_EQ(heap.cancelled(), 99u);

  // One more timer crosses the threshold.
  push(t0 + 1s, 100);
  heap.collect();
  EXPECT_EQ(heap.size(), 2u);
  EXPECT_EQ(heap.cancelled(), 0u);
  drain();
  EXPECT_EQ(fired, (std::vector<int>{0, 100}));
}

TEST_F(TimerHeapTest, CompactionNeedsMoreThanHalfCancelled) {
  // 102 timers, the earliest live: 51 cancelled is exactly half (no
  // compaction), 52 is more than half.
  std::vector<CallbackNode*> nodes;
  for (int i = 0; i < 102; ++i) nodes.push_back(push(t0 + std::chrono::milliseconds(i), i));
  for (int i = 51; i < 102; ++i) cancel(nodes[i]);
  ASSERT_EQ(heap.cancelled(), 51u);
  heap.collect();
  EXPECT_EQ(heap.size(), 102u);
  EXPECT_EQ(heap.cancelled(), 51u);

  cancel(nodes[50]);
  heap.collect();
  EXPECT_EQ(heap.size(), 50u);
  EXPECT_EQ(heap.cancelled(), 0u);
  drain();
  std::vector<int> expected;
  for (int i = 0; i < 50; ++i) expected.push_back(i);
  EXPECT_EQ(fired, expected);
}

TEST_F(TimerHeapTest, HeapStaysOrderedAfterCompactionAndFurtherPushes) {
  std::vector<CallbackNode*> nodes;
  for (int i = 0; i < 150; ++i) nodes.push_back(push(t0 + std::chrono::milliseconds((i * 37) % 150), i));
  for (int i = 0; i < 150; ++i)
    if (i % 3 != 0) cancel(nodes[i]);
  heap.collect();
  ASSERT_EQ(heap.size(), 50u);
  // New timers after the rebuild interleave with the survivors; at equal
  // deadlines the older survivors come first.
  for (int i = 0; i < 150; i += 10) push(t0 + std::chrono::milliseconds(i), 1000 + i);
  std::vector<std::pair<time_point, int>> popped;
  while (!heap.empty()) {
    TimerHeap::Entry e = heap.pop();
    e.node->fn();
    popped.emplace_back(e.when, fired.back());
    qi::detail::release_node(e.node);
  }
  ASSERT_EQ(popped.size(), 65u);
  for (std::size_t k = 1; k < popped.size(); ++k) {
    EXPECT_LE(popped[k - 1].first, popped[k].first);
    if (popped[k - 1].first == popped[k].first) {
      EXPECT_LT(popped[k - 1].second, 1000) << "a survivor was pushed first";
      EXPECT_GE(popped[k].second, 1000);
    }
  }
}

TEST_F(TimerHeapTest, TakeAllReturnsEveryEntryAndResetsTheCounters) {
  std::vector<CallbackNode*> nodes;
  for (int i = 0; i < 8; ++i) nodes.push_back(push(t0 + std::chrono::milliseconds(8 - i), i));
  cancel(nodes[2]);
  cancel(nodes[5]);
  std::vector<TimerHeap::Entry> all = heap.take_all();
  EXPECT_TRUE(heap.empty());
  EXPECT_EQ(heap.cancelled(), 0u);
  ASSERT_EQ(all.size(), 8u);
  std::vector<bool> seen(8, false);
  for (const TimerHeap::Entry& e : all) {
    auto it = std::find(nodes.begin(), nodes.end(), e.node);
    ASSERT_NE(it, nodes.end());
    EXPECT_FALSE(seen[it - nodes.begin()]) << "entry returned twice";
    seen[it - nodes.begin()] = true;
    EXPECT_EQ(e.when, e.node->when);
    EXPECT_EQ(e.node->heap, nullptr);
    qi::detail::release_node(e.node);
  }
  // The heap is reusable, and its counters start from zero: a new cancel
  // is counted once.
  CallbackNode* n = push(t0, 42);
  cancel(n);
  EXPECT_EQ(heap.cancelled(), 1u);
  heap.collect();
  EXPECT_TRUE(heap.empty());
  EXPECT_EQ(heap.cancelled(), 0u);
}

}  // namespace
