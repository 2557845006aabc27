// thread_inbox.h — where call_soon_threadsafe callbacks wait for the loop. Internal.
//
// A multi-producer, single-consumer intrusive stack (push is one CAS; the loop
// takes everything with one exchange and reverses it into FIFO order).
//
// Wake-up rule: a producer asks for a wake-up (an eventfd write) only when its
// push found the inbox empty AND the loop is not inside a slice. The loop
// clears `awake` when it leaves a slice and then looks at the inbox again;
// both sides use sequentially consistent operations, so either the producer
// sees awake == false and wakes the loop, or the loop sees the node.
//
// Sealing (close()) swaps in a sentinel; later pushes fail, so no node can be
// stranded in a closed loop.
#pragma once

#include <qiloop/detail/callback_node.h>

#include <atomic>

namespace qi::detail {

class ThreadInbox {
 public:
  enum class Push { kQueued, kWake, kSealed };

  Push push(CallbackNode* n) noexcept {
    CallbackNode* head = head_.load(std::memory_order_relaxed);
    do {
      if (head == sealed()) return Push::kSealed;
      n->next = head;
    } while (!head_.compare_exchange_weak(head, n, std::memory_order_seq_cst, std::memory_order_relaxed));
    if (head == nullptr && !awake_.load(std::memory_order_seq_cst)) return Push::kWake;
    return Push::kQueued;
  }

  // Cheap test for the loop's thread, once per iteration.
  bool maybe_nonempty() const noexcept {
    CallbackNode* h = head_.load(std::memory_order_relaxed);
    return h != nullptr && h != sealed();
  }
  // The loop's re-check after set_awake(false).
  bool nonempty() const noexcept {
    CallbackNode* h = head_.load(std::memory_order_seq_cst);
    return h != nullptr && h != sealed();
  }
  // For QiEventLoop's inline call_soon: null when the inbox is empty (a
  // sealed inbox holds a sentinel, but a closed loop schedules nothing).
  const std::atomic<CallbackNode*>& head() const noexcept { return head_; }
  void set_awake(bool awake) noexcept { awake_.store(awake, std::memory_order_seq_cst); }

  // Everything pushed so far, oldest first (linked through next), or null.
  CallbackNode* take_all() noexcept {
    CallbackNode* h = head_.load(std::memory_order_relaxed);
    if (h == nullptr || h == sealed()) return nullptr;
    return reverse(head_.exchange(nullptr, std::memory_order_acq_rel));
  }
  CallbackNode* seal() noexcept {
    CallbackNode* h = head_.exchange(sealed(), std::memory_order_acq_rel);
    return h == sealed() ? nullptr : reverse(h);
  }

 private:
  static CallbackNode* sealed() noexcept {
    static CallbackNode sentinel;
    return &sentinel;
  }
  static CallbackNode* reverse(CallbackNode* h) noexcept {
    CallbackNode* out = nullptr;
    while (h) {
      CallbackNode* next = h->next;
      h->next = out;
      out = h;
      h = next;
    }
    return out;
  }

  std::atomic<CallbackNode*> head_{nullptr};
  std::atomic<bool> awake_{false};
};

}  // namespace qi::detail
