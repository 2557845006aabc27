#include <qiloop/detail/callback_node.h>
#include <qiloop/detail/invoke.h>
#include <qiloop/event_loop.h>

#include "loop_impl.h"

#include <mutex>
#include <vector>

namespace qi::detail {

#ifndef QILOOP_NO_POOL

// Invariant: `free` is touched only by the owning thread; `remote` is a
// push-only stack other threads return this pool's nodes to (the owner takes
// it whole with one exchange). A retired pool's `remote` holds the retired
// marker, so a late pusher deletes its node instead. Retired pools are kept
// and handed to new threads, so a pusher never touches freed memory and
// thread churn does not grow the number of pools beyond the peak number of
// threads.
//
// `free` is an array, not a list threaded through the nodes: nodes come back
// scattered (a timer-heap compaction frees them in heap order), and an array
// lets alloc_node prefetch the node it will hand out kPrefetchAhead calls
// later without touching any node, where a list would chase one cold
// pointer per allocation.
struct NodePool {
  std::vector<CallbackNode*> free;
  std::atomic<CallbackNode*> remote{nullptr};
};

constexpr std::size_t kPrefetchAhead = 8;

namespace {

CallbackNode* retired_marker() {
  static CallbackNode marker;
  return &marker;
}

std::mutex g_retired_mu;
std::vector<NodePool*>& retired_pools() {
  static auto* pools = new std::vector<NodePool*>;  // never destroyed: threads may exit after main
  return *pools;
}

// The hot lookup: initial-exec TLS is one %fs-relative load, where the
// default model costs a __tls_get_addr call per access in a shared library.
__attribute__((tls_model("initial-exec"))) thread_local NodePool* t_pool = nullptr;
__attribute__((tls_model("initial-exec"))) thread_local bool t_exiting = false;

void delete_list(CallbackNode* n) noexcept {
  while (n) delete std::exchange(n, n->next);
}

// Owns the thread's pool; its destructor retires it at thread exit.
struct PoolOwner {
  NodePool* pool = nullptr;
  ~PoolOwner() {
    t_exiting = true;
    t_pool = nullptr;
    if (!pool) return;
    for (CallbackNode* n : pool->free) delete n;
    pool->free.clear();
    pool->free.shrink_to_fit();
    CallbackNode* r = pool->remote.exchange(retired_marker(), std::memory_order_acq_rel);
    delete_list(r);
    std::lock_guard lock(g_retired_mu);
    retired_pools().push_back(pool);
  }
};
thread_local PoolOwner t_owner;

NodePool* local_pool() noexcept {
  if (NodePool* p = t_pool) [[likely]]
    return p;
  if (t_exiting) return nullptr;
  NodePool* p = nullptr;
  {
    std::lock_guard lock(g_retired_mu);
    if (!retired_pools().empty()) {
      p = retired_pools().back();
      retired_pools().pop_back();
    }
  }
  if (p)
    p->remote.store(nullptr, std::memory_order_release);  // reopen
  else
    p = new NodePool;
  t_owner.pool = p;
  t_pool = p;
  return p;
}

}  // namespace

CallbackNode* alloc_node(uint8_t flags) {
  NodePool* p = local_pool();
  if (p) [[likely]] {
    auto& free = p->free;
    if (free.empty() && p->remote.load(std::memory_order_relaxed) != nullptr) {
      for (CallbackNode* r = p->remote.exchange(nullptr, std::memory_order_acquire); r; r = r->next)
        free.push_back(r);
    }
    if (!free.empty()) {
      CallbackNode* n = free.back();
      free.pop_back();
      if (free.size() >= kPrefetchAhead) __builtin_prefetch(free[free.size() - kPrefetchAhead], 1);
      n->next = nullptr;
      n->flags = flags;
      return n;
    }
  }
  auto* n = new CallbackNode;
  n->home = p;
  n->flags = flags;
  return n;
}

void free_node(CallbackNode* n) noexcept {
  // May run arbitrary destructors (which may free nodes too). No handle is
  // left to reach back into this node, so plain assignment is safe here.
  if (n->fn) n->fn = nullptr;
  NodePool* home = n->home;
  if (home) [[likely]] {
    n->state.store(0, std::memory_order_relaxed);
    n->refs.store(0, std::memory_order_relaxed);
    n->timer_loop = nullptr;
    if (home == t_pool) {
      try {
        home->free.push_back(n);
        return;
      } catch (...) {  // no memory to grow the array: give the node back instead
        delete n;
        return;
      }
    }
    CallbackNode* head = home->remote.load(std::memory_order_relaxed);
    do {
      if (head == retired_marker()) {
        delete n;
        return;
      }
      n->next = head;
    } while (!home->remote.compare_exchange_weak(head, n, std::memory_order_release, std::memory_order_relaxed));
    return;
  }
  delete n;
}

void trim_node_pool(std::size_t keep) noexcept {
  NodePool* p = t_pool;
  if (!p || p->free.size() <= keep) return;
  for (std::size_t i = keep; i < p->free.size(); ++i) delete p->free[i];
  p->free.resize(keep);
  p->free.shrink_to_fit();
}

#else  // QILOOP_NO_POOL: every node is its own allocation, for the sanitizers' sake.

CallbackNode* alloc_node(uint8_t flags) {
  auto* n = new CallbackNode;
  n->flags = flags;
  return n;
}

void free_node(CallbackNode* n) noexcept { delete n; }

void trim_node_pool(std::size_t) noexcept {}

#endif

void cancel_node(CallbackNode* n) noexcept {
  uint8_t old = n->set_state(CallbackNode::kCancelled);
  if (old & (CallbackNode::kCancelled | CallbackNode::kStarted)) return;
  if (n->flags & CallbackNode::kTimer) {
    if (QiEventLoop* loop = n->timer_loop) loop->impl_->timers.note_cancelled();
  }
  // Release what the callback captured now, as asyncio drops _callback on
  // cancel. A threadsafe node's callable may be read by the loop's thread at
  // this moment, so it is left for the loop to destroy.
  // (kCancelled is already set, so a destructor that cancels again returns above.)
  if (!n->threadsafe()) n->fn = nullptr;
}

void throw_empty_callable(const char* api) {
  throw std::invalid_argument(std::string(api) +
                              ": the callback is empty (null function pointer or empty std::function); "
                              "pass a callable");
}

}  // namespace qi::detail
