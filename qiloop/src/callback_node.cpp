#include <qiloop/detail/callback_node.h>
#include <qiloop/detail/invoke.h>
#include <qiloop/event_loop.h>

#include "loop_impl.h"

namespace qi::detail {

namespace {

#ifndef QILOOP_NO_POOL
// Each thread keeps up to this many freed nodes for reuse. Why this value: it
// covers the ready queue of a busy loop (thousands of callbacks in flight)
// while bounding what an idle thread holds to ~300 KiB.
constexpr std::size_t kPoolCapacity = 4096;

struct NodePool {
  CallbackNode* free = nullptr;
  std::size_t count = 0;
  ~NodePool();
};

// Trivially destructible, so it stays readable while other thread_local
// destructors run after the pool's own: a node freed then is simply deleted.
thread_local bool t_pool_gone = false;
thread_local NodePool t_pool;

NodePool::~NodePool() {
  t_pool_gone = true;
  while (free) delete std::exchange(free, free->next);
}
#endif

}  // namespace

CallbackNode* alloc_node(uint8_t flags) {
#ifndef QILOOP_NO_POOL
  if (!t_pool_gone) {
    NodePool& p = t_pool;
    if (CallbackNode* n = p.free) {
      p.free = n->next;
      --p.count;
      n->next = nullptr;
      n->flags = flags;
      return n;
    }
  }
#endif
  auto* n = new CallbackNode;
  n->flags = flags;
  return n;
}

void free_node(CallbackNode* n) noexcept {
  n->fn = nullptr;  // may run arbitrary destructors, which may free nodes too
#ifndef QILOOP_NO_POOL
  if (!t_pool_gone) {
    NodePool& p = t_pool;
    if (p.count < kPoolCapacity) {
      n->state.store(0, std::memory_order_relaxed);
      n->refs.store(0, std::memory_order_relaxed);
      n->timer_loop = nullptr;
      n->next = p.free;
      p.free = n;
      ++p.count;
      return;
    }
  }
#endif
  delete n;
}

void cancel_node(CallbackNode* n) noexcept {
  uint8_t old = n->set_state(CallbackNode::kCancelled);
  if (old & (CallbackNode::kCancelled | CallbackNode::kStarted)) return;
  if (n->flags & CallbackNode::kTimer) {
    if (QiEventLoop* loop = n->timer_loop) loop->impl_->timers.note_cancelled();
  }
  // Release what the callback captured now, as asyncio drops _callback on
  // cancel. A threadsafe node's callable may be read by the loop's thread at
  // this moment, so it is left for the loop to destroy.
  if (!n->threadsafe()) n->fn = nullptr;
}

void throw_empty_callable(const char* api) {
  throw std::invalid_argument(std::string(api) +
                              ": the callback is empty (null function pointer or empty std::function); "
                              "pass a callable");
}

}  // namespace qi::detail
