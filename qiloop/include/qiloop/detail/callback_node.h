// qiloop/detail/callback_node.h — the scheduler's unit of work. Internal.
//
// Invariant: a node is in at most one of {the ready queue, the timer heap,
// the thread inbox} at a time (an fd handler is in the selector as well, and
// in the ready queue at most once), and each of those holds one reference to
// it; every qi::Handle holds one more. A node whose count drops
// to zero goes back to the node pool (the freeing thread's cache).
//
// Vocabulary — one verb per meaning, here and at every call site:
// - retain / release: take or give up one reference. release_node(n) gives
//   one up and frees the node with the last.
// - free: hand a node nobody references back to the pool (free_node).
// - cancel: mark a node so that it never runs (cancel_node, Handle::cancel);
//   its callable is destroyed at once when that is safe, else when the loop
//   next meets the node.
// - destroy the callback: destroy the callable and what it captured now,
//   while the node itself may live on (destroy_callback; close() does it to
//   everything it lets go of, and the loop after running a one-shot node).
//
// Reference counts and the state byte are atomics so that handles returned by
// call_soon_threadsafe may be copied and cancelled on any thread. Nodes made on
// the loop's thread (kThreadsafe clear) are only ever touched there, so for
// them the counters use plain load/store pairs, which compile to ordinary
// moves: the hot path pays no locked instruction.
#pragma once

#include <qiloop/export.h>

#include <absl/functional/any_invocable.h>

#include <atomic>
#include <chrono>
#include <cstdint>

namespace qi::detail {

// Which handler of an fd: add_reader / add_writer.
enum class FdDirection : bool { kRead, kWrite };

class TimerHeap;

struct CallbackNode {
  // Flags, fixed at creation.
  static constexpr uint8_t kThreadsafe = 1;  // may be shared with other threads
  static constexpr uint8_t kTimer = 2;       // lives in the timer heap
  static constexpr uint8_t kRepeating = 4;   // an fd handler: runs once per readiness

  // State bits.
  static constexpr uint8_t kCancelled = 1;
  static constexpr uint8_t kStarted = 2;
  static constexpr uint8_t kQueued = 4;  // an fd handler waiting in the ready queue

  CallbackNode* next = nullptr;  // ready-queue / inbox link
  std::atomic<uint32_t> refs{0};
  std::atomic<uint8_t> state{0};
  uint8_t flags = 0;
  // The timer heap that holds this node (it counts cancelled entries); null
  // once the node left it.
  TimerHeap* heap = nullptr;
  std::chrono::steady_clock::time_point when{};
  absl::AnyInvocable<void()> fn;

  bool threadsafe() const noexcept { return flags & kThreadsafe; }

  void retain() noexcept {
    if (threadsafe())
      refs.fetch_add(1, std::memory_order_relaxed);
    else
      refs.store(refs.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  }
  // Returns true when this was the last reference (the caller frees the node:
  // release_node does both).
  [[nodiscard]] bool release() noexcept {
    if (threadsafe()) return refs.fetch_sub(1, std::memory_order_acq_rel) == 1;
    uint32_t r = refs.load(std::memory_order_relaxed) - 1;
    refs.store(r, std::memory_order_relaxed);
    return r == 0;
  }
  uint8_t load_state() const noexcept { return state.load(std::memory_order_acquire); }

  // The loop's run of the node, between these two. kStarted (or kCancelled)
  // is set before the callable is destroyed, so a capture's destructor that
  // cancels the handle returns early instead of destroying it a second time.
  // Returns false, the callable destroyed, when the node was cancelled.
  bool begin_run() noexcept {
    uint8_t was;
    if (flags & kRepeating) {
      // An fd handler runs again on later iterations: kStarted is set only
      // while it runs, so that remove_reader() from inside it leaves the
      // running callable alone (end_run destroys it).
      was = load_state() & ~kQueued;
      state.store(was | kStarted, std::memory_order_relaxed);
    } else {
      was = set_state(kStarted);
    }
    if (was & kCancelled) [[unlikely]] {
      fn = nullptr;
      return false;
    }
    return true;
  }
  // Destroys what the callback captured now, even if a Handle keeps the
  // node — unless it is an fd handler that stays registered.
  void end_run() noexcept {
    if (flags & kRepeating) {
      const uint8_t st = load_state() & ~kStarted;
      state.store(st, std::memory_order_relaxed);
      if (!(st & kCancelled)) return;
    }
    fn = nullptr;
  }
  // Sets bits and returns the previous state.
  uint8_t set_state(uint8_t bits) noexcept {
    if (threadsafe()) return state.fetch_or(bits, std::memory_order_acq_rel);
    uint8_t old = state.load(std::memory_order_relaxed);
    state.store(old | bits, std::memory_order_relaxed);
    return old;
  }
};

// Node storage (compiled out with QILOOP_NO_POOL, as under ASan): nodes are
// carved from mmap'd pages and recycled through per-thread caches, so a
// steady state never allocates. A node freed on another thread joins that
// thread's cache; threadsafe nodes flow back to their producers through a
// shared depot, a batch at a time. What a burst left unused for a whole
// window (0.5 s) is given back to the system page by page.
// alloc_node returns a node with refs == 0, state == 0; it throws
// std::bad_alloc when the system has no memory left.
QILOOP_EXPORT CallbackNode* alloc_node(uint8_t flags);
QILOOP_EXPORT void free_node(CallbackNode* n) noexcept;
// Gives back the pages of nodes that went unused for a window, in the calling
// thread's cache and in the depot. A loop calls it at the start of every
// slice, `idle` being how long it was idle before (idle for a window, all of
// its cache went unused). Cheap when there is nothing to give back.
QILOOP_EXPORT void trim_node_pool(std::chrono::steady_clock::time_point now,
                                  std::chrono::steady_clock::duration idle) noexcept;
// Handle::cancel(): marks the node and releases its callback early when safe.
QILOOP_EXPORT void cancel_node(CallbackNode* n) noexcept;

// Destroys n's callable (and what it captured). Moving it out first means a
// capture's destructor that reaches back into the node (cancelling its own
// handle, say) finds it already empty instead of destroying it twice.
inline void destroy_callback(CallbackNode* n) noexcept {
  if (n->fn) absl::AnyInvocable<void()> dead = std::move(n->fn);
}

inline void release_node(CallbackNode* n) noexcept {
  if (n->release()) free_node(n);
}

// An intrusive FIFO of nodes: push and pop are O(1) and never allocate.
class ReadyQueue {
 public:
  ReadyQueue() = default;
  ReadyQueue(const ReadyQueue&) = delete;
  ReadyQueue& operator=(const ReadyQueue&) = delete;

  bool empty() const noexcept { return head_ == nullptr; }
  std::size_t size() const noexcept { return size_; }
  void push(CallbackNode* n) noexcept {
    n->next = nullptr;
    *tail_ = n;
    tail_ = &n->next;
    ++size_;
  }
  CallbackNode* pop() noexcept {
    CallbackNode* n = head_;
    head_ = n->next;
    if (head_ == nullptr) tail_ = &head_;
    --size_;
    return n;
  }

 private:
  CallbackNode* head_ = nullptr;
  CallbackNode** tail_ = &head_;
  std::size_t size_ = 0;
};

}  // namespace qi::detail
