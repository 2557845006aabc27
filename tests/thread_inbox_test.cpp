// qi::detail::ThreadInbox: the multi-producer queue behind
// call_soon_threadsafe. Runs under ThreadSanitizer (label "thread").
#include "thread_inbox.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

using qi::detail::CallbackNode;
using qi::detail::ThreadInbox;
using Push = ThreadInbox::Push;

namespace {

// Nodes live in one array so that a node's index names its producer and
// position without touching the node's other fields; the inbox only links
// them through `next`.
class Nodes {
 public:
  explicit Nodes(std::size_t n) : nodes_(std::make_unique<CallbackNode[]>(n)), size_(n) {}
  CallbackNode* operator[](std::size_t i) const { return &nodes_[i]; }
  std::size_t index(const CallbackNode* n) const {
    EXPECT_GE(n, &nodes_[0]);
    EXPECT_LT(n, &nodes_[0] + size_);
    return static_cast<std::size_t>(n - &nodes_[0]);
  }

 private:
  std::unique_ptr<CallbackNode[]> nodes_;
  std::size_t size_;
};

// The indices of a list returned by take_all() or seal(), in list order.
std::vector<std::size_t> indices(const Nodes& nodes, CallbackNode* list) {
  std::vector<std::size_t> out;
  for (CallbackNode* n = list; n; n = n->next) out.push_back(nodes.index(n));
  return out;
}

std::vector<std::size_t> iota(std::size_t from, std::size_t to) {
  std::vector<std::size_t> v;
  for (std::size_t i = from; i < to; ++i) v.push_back(i);
  return v;
}

TEST(ThreadInboxTest, EmptyInbox) {
  ThreadInbox inbox;
  EXPECT_FALSE(inbox.maybe_nonempty());
  EXPECT_FALSE(inbox.nonempty());
  EXPECT_EQ(inbox.take_all(), nullptr);
}

TEST(ThreadInboxTest, TakeAllReturnsOneProducersNodesInPushOrder) {
  Nodes nodes(10);
  ThreadInbox inbox;
  for (std::size_t i = 0; i < 10; ++i) inbox.push(nodes[i]);
  EXPECT_TRUE(inbox.maybe_nonempty());
  EXPECT_TRUE(inbox.nonempty());
  EXPECT_EQ(indices(nodes, inbox.take_all()), iota(0, 10));
  EXPECT_FALSE(inbox.nonempty());
  EXPECT_EQ(inbox.take_all(), nullptr) << "take_all() empties the inbox";
}

TEST(ThreadInboxTest, SuccessiveBatchesKeepTheirOrder) {
  Nodes nodes(7);
  ThreadInbox inbox;
  inbox.push(nodes[0]);
  EXPECT_EQ(indices(nodes, inbox.take_all()), iota(0, 1));
  for (std::size_t i = 1; i < 4; ++i) inbox.push(nodes[i]);
  EXPECT_EQ(indices(nodes, inbox.take_all()), iota(1, 4));
  for (std::size_t i = 4; i < 7; ++i) inbox.push(nodes[i]);
  EXPECT_EQ(indices(nodes, inbox.take_all()), iota(4, 7));
}

TEST(ThreadInboxTest, EachProducersNodesStayInOrderWithSeveralProducers) {
  constexpr std::size_t kProducers = 4, kEach = 2000;
  Nodes nodes(kProducers * kEach);
  ThreadInbox inbox;
  std::vector<std::thread> producers;
  for (std::size_t p = 0; p < kProducers; ++p)
    producers.emplace_back([&, p] {
      for (std::size_t i = 0; i < kEach; ++i) inbox.push(nodes[p * kEach + i]);
    });
  for (auto& t : producers) t.join();
  std::vector<std::size_t> next(kProducers, 0);
  std::size_t total = 0;
  for (std::size_t idx : indices(nodes, inbox.take_all())) {
    std::size_t p = idx / kEach, i = idx % kEach;
    ASSERT_EQ(i, next[p]) << "producer " << p << " out of order";
    ++next[p];
    ++total;
  }
  EXPECT_EQ(total, kProducers * kEach);
}

// The wake-up rule: a producer asks for a wake-up only when its push turns
// the inbox from empty to non-empty while the loop is not awake.
TEST(ThreadInboxTest, OnlyTheFirstPushIntoAnEmptyInboxAsksForAWakeUp) {
  Nodes nodes(6);
  ThreadInbox inbox;
  EXPECT_EQ(inbox.push(nodes[0]), Push::kWake);
  EXPECT_EQ(inbox.push(nodes[1]), Push::kQueued) << "the loop was already woken for this batch";
  EXPECT_EQ(inbox.push(nodes[2]), Push::kQueued);
  inbox.take_all();
  EXPECT_EQ(inbox.push(nodes[3]), Push::kWake) << "emptied by the loop: the next push wakes again";
  EXPECT_EQ(inbox.push(nodes[4]), Push::kQueued);
  inbox.take_all();
  EXPECT_EQ(inbox.push(nodes[5]), Push::kWake);
  inbox.take_all();
}

TEST(ThreadInboxTest, NoWakeUpWhileTheLoopIsAwake) {
  Nodes nodes(5);
  ThreadInbox inbox;
  inbox.set_awake(true);
  EXPECT_EQ(inbox.push(nodes[0]), Push::kQueued) << "the loop is inside a slice and will look again";
  EXPECT_EQ(inbox.push(nodes[1]), Push::kQueued);
  inbox.take_all();
  EXPECT_EQ(inbox.push(nodes[2]), Push::kQueued) << "empty, but awake: still no wake-up";
  // Leaving the slice, the loop clears `awake` and re-checks: the node
  // pushed without a wake-up is what that re-check must find.
  inbox.set_awake(false);
  EXPECT_TRUE(inbox.nonempty());
  EXPECT_EQ(inbox.push(nodes[3]), Push::kQueued) << "not empty: the re-check already covers it";
  EXPECT_EQ(indices(nodes, inbox.take_all()), iota(2, 4));
  EXPECT_EQ(inbox.push(nodes[4]), Push::kWake) << "idle and empty again: wake";
  inbox.take_all();
}

TEST(ThreadInboxTest, SealReturnsWhatWasPendingAndRefusesLaterPushes) {
  Nodes nodes(6);
  ThreadInbox inbox;
  for (std::size_t i = 0; i < 4; ++i) inbox.push(nodes[i]);
  EXPECT_EQ(indices(nodes, inbox.seal()), iota(0, 4));
  EXPECT_EQ(inbox.push(nodes[4]), Push::kSealed);
  inbox.set_awake(false);
  EXPECT_EQ(inbox.push(nodes[5]), Push::kSealed) << "sealed wins over the wake-up rule";
  EXPECT_FALSE(inbox.maybe_nonempty()) << "the sentinel is not a pending node";
  EXPECT_FALSE(inbox.nonempty());
  EXPECT_EQ(inbox.take_all(), nullptr);
  EXPECT_EQ(inbox.seal(), nullptr) << "sealing twice returns nothing the second time";
  EXPECT_EQ(inbox.push(nodes[4]), Push::kSealed);
}

TEST(ThreadInboxTest, SealingAnEmptyInboxReturnsNothing) {
  Nodes nodes(1);
  ThreadInbox inbox;
  EXPECT_EQ(inbox.seal(), nullptr);
  EXPECT_EQ(inbox.push(nodes[0]), Push::kSealed);
}

TEST(ThreadInboxTest, SealRacingProducersStrandsNothing) {
  // Every push either lands in what seal() returns (or an earlier
  // take_all()) or reports kSealed: nothing is lost in a closed loop.
  constexpr std::size_t kProducers = 4, kEach = 5000;
  Nodes nodes(kProducers * kEach);
  ThreadInbox inbox;
  std::vector<std::vector<char>> accepted(kProducers, std::vector<char>(kEach, 0));
  std::atomic<int> started{0};
  std::vector<std::thread> producers;
  for (std::size_t p = 0; p < kProducers; ++p)
    producers.emplace_back([&, p] {
      started.fetch_add(1);
      for (std::size_t i = 0; i < kEach; ++i) accepted[p][i] = inbox.push(nodes[p * kEach + i]) != Push::kSealed;
    });
  while (started.load() < static_cast<int>(kProducers)) std::this_thread::yield();
  // Seal mid-stream: after a quarter of the pushes, while producers still push.
  std::vector<char> received(kProducers * kEach, 0);
  std::size_t taken = 0;
  while (taken < kProducers * kEach / 4)
    for (std::size_t idx : indices(nodes, inbox.take_all())) {
      received[idx] = 1;
      ++taken;
    }
  for (std::size_t idx : indices(nodes, inbox.seal())) received[idx] = 1;
  for (auto& t : producers) t.join();
  std::size_t accepted_count = 0;
  for (std::size_t p = 0; p < kProducers; ++p)
    for (std::size_t i = 0; i < kEach; ++i) {
      ASSERT_EQ(received[p * kEach + i], accepted[p][i])
          << "producer " << p << " push " << i << (accepted[p][i] ? " accepted but lost" : " refused but received");
      accepted_count += accepted[p][i];
    }
  // Once one push is refused, every later push of that producer is too.
  for (std::size_t p = 0; p < kProducers; ++p)
    for (std::size_t i = 1; i < kEach; ++i) EXPECT_LE(accepted[p][i], accepted[p][i - 1]);
  EXPECT_LE(accepted_count, kProducers * kEach);
}

// A doorbell standing in for the loop's eventfd: ring() sets it, wait()
// consumes it. A bounded wait turns a lost wake-up into a failure.
class Doorbell {
 public:
  void ring() {
    {
      std::lock_guard lock(mu_);
      rung_ = true;
    }
    cv_.notify_one();
  }
  bool wait(std::chrono::milliseconds limit) {
    std::unique_lock lock(mu_);
    if (!cv_.wait_for(lock, limit, [&] { return rung_; })) return false;
    rung_ = false;
    return true;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool rung_ = false;
};

TEST(ThreadInboxTest, StressFourProducersWhileTheConsumerDrains) {
  // The consumer follows the loop's protocol: awake while draining, then
  // clear awake, re-check, and sleep on the doorbell. If the wake-up rule
  // could lose a node, the consumer would sleep past it and time out.
  constexpr std::size_t kProducers = 4, kEach = 50000;
  constexpr std::size_t kTotal = kProducers * kEach;
  Nodes nodes(kTotal);
  ThreadInbox inbox;
  Doorbell doorbell;
  std::atomic<std::size_t> wakes{0};
  std::vector<std::thread> producers;
  for (std::size_t p = 0; p < kProducers; ++p)
    producers.emplace_back([&, p] {
      for (std::size_t i = 0; i < kEach; ++i) {
        switch (inbox.push(nodes[p * kEach + i])) {
          case Push::kWake:
            wakes.fetch_add(1, std::memory_order_relaxed);
            doorbell.ring();
            break;
          case Push::kQueued:
            break;
          case Push::kSealed:
            ADD_FAILURE() << "push refused by an inbox that was never sealed";
            return;
        }
        // Let the consumer empty the inbox now and then, so that the
        // empty → non-empty transition happens many times.
        if (i % 1024 == 0) std::this_thread::yield();
      }
    });

  std::vector<char> seen(kTotal, 0);
  std::vector<std::size_t> next(kProducers, 0);
  std::size_t received = 0, batches = 0;
  bool lost_wakeup = false;
  while (received < kTotal) {
    inbox.set_awake(true);
    for (CallbackNode* n = inbox.take_all(); n; n = n->next) {
      std::size_t idx = nodes.index(n);
      std::size_t p = idx / kEach, i = idx % kEach;
      if (seen[idx]) {
        ADD_FAILURE() << "node " << idx << " delivered twice";
      } else if (i != next[p]) {
        ADD_FAILURE() << "producer " << p << ": got push " << i << ", expected " << next[p];
      }
      seen[idx] = 1;
      next[p] = i + 1;
      ++received;
    }
    ++batches;
    inbox.set_awake(false);
    if (received == kTotal || inbox.nonempty()) continue;
    if (!doorbell.wait(std::chrono::seconds(2))) {
      lost_wakeup = true;
      break;
    }
  }
  for (auto& t : producers) t.join();
  EXPECT_FALSE(lost_wakeup) << "the consumer slept with nodes pending: " << received << " of " << kTotal;
  EXPECT_EQ(received, kTotal);
  for (std::size_t p = 0; p < kProducers; ++p) EXPECT_EQ(next[p], kEach) << "producer " << p;
  EXPECT_GE(wakes.load(), 1u);
  // A wake-up is asked for at most once per empty → non-empty transition,
  // and each batch ends one such period.
  EXPECT_LE(wakes.load(), batches + 1);
  EXPECT_EQ(inbox.take_all(), nullptr);
}

}  // namespace
