#include <qiloop/detail/callback_node.h>
#include <qiloop/detail/invoke.h>

#include "timer_heap.h"

#ifndef QILOOP_NO_POOL
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <mutex>
#include <new>
#endif

namespace qi::detail {

#ifndef QILOOP_NO_POOL

// Node storage. Nodes live in pages of 1 MiB arenas mmap'd from the system;
// a node belongs to no thread: whichever thread frees it keeps it.
//
// Invariant: every node that is not in use is in exactly one free array —
// a thread's cache (`local` for its loop's nodes, `shared` for threadsafe
// ones) or the depot — and every page holds either kNodesPerPage nodes or
// none. A page goes back to the system (MADV_DONTNEED, the whole arena by
// munmap once all its pages are back) when all its nodes sat unused in one
// free array for a whole kWindow; nothing else ever returns memory, so a
// steady state allocates nothing and a burst is given back within about two
// windows of its end.
//
// - `local` (nodes of call_soon, call_later, fd handlers: made and freed on
//   the loop's thread) is unbounded, so that a loop's next burst reuses the
//   last one's nodes. The loop calls trim_node_pool at the start of every
//   slice: the bottom `low_water` entries of the array were not touched
//   since the window began (the array is a LIFO stack), and once the window
//   is over their pages are given back, less kKeep nodes. Those of them
//   whose page is not whole in the array (a refill from the depot takes a
//   page's nodes apart) go to the depot's cold end: split between two
//   arrays, a page would never be given back.
// - `shared` (call_soon_threadsafe: made on a producer, freed on the loop's
//   thread) is bounded: overflow goes to the depot in batches, from which
//   producers refill. So nodes flow back to producers without an atomic per
//   node, and an idle producer pins at most kSharedCap nodes.
// - The depot (one per process, under a mutex touched once per batch) is
//   trimmed by the same rule, by whichever loop's slice finds its window over.
//
// Only trimming and carving touch pages, through the arenas' headers, under
// the mutex; the hot paths touch the calling thread's cache alone.

namespace {

using clock = std::chrono::steady_clock;

constexpr std::size_t kPageBytes = 4096;
constexpr std::size_t kArenaBytes = std::size_t{1} << 20;
constexpr std::size_t kPagesPerArena = kArenaBytes / kPageBytes;  // page 0 holds the Arena header
constexpr std::size_t kNodesPerPage = kPageBytes / sizeof(CallbackNode);
// A window: how long nodes must sit unused before their pages go back.
constexpr auto kWindow = std::chrono::milliseconds(500);
// What a loop's cache keeps however long it idles (256 KiB): the nodes a
// steady state cycles through, so that it never carves.
constexpr std::size_t kKeep = 4096;
// Threadsafe nodes move between caches and the depot this many at a time.
constexpr std::size_t kBatch = 128;
constexpr std::size_t kSharedCap = 2 * kBatch;
// A loop's cache grows by this many pages at a time when the depot is empty.
constexpr std::size_t kCarvePages = 16;
constexpr std::size_t kSharedCarvePages = std::max<std::size_t>(1, kBatch / kNodesPerPage);
constexpr std::size_t kPrefetchAhead = 8;
#if defined(__SANITIZE_THREAD__)
constexpr bool kTsan = true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
constexpr bool kTsan = true;
#else
constexpr bool kTsan = false;
#endif
#else
constexpr bool kTsan = false;
#endif

static_assert(kPageBytes % alignof(CallbackNode) == 0);
static_assert(kNodesPerPage >= 1 && kNodesPerPage < 0xFE, "page counts are bytes with two marks");
static_assert(kSharedCarvePages * kNodesPerPage <= kSharedCap);

// A growable array of node pointers whose storage is mmap'd, so that
// shrinking it after a burst really gives the memory back (glibc keeps a
// freed heap buffer resident). Grows by mremap, without copying.
class NodeArray {
 public:
  NodeArray() = default;
  NodeArray(const NodeArray&) = delete;
  NodeArray& operator=(const NodeArray&) = delete;
  ~NodeArray() {
    if (data_) munmap(data_, cap_ * sizeof(CallbackNode*));
  }

  std::size_t size() const noexcept { return size_; }
  bool empty() const noexcept { return size_ == 0; }
  CallbackNode** data() noexcept { return data_; }
  CallbackNode* operator[](std::size_t i) const noexcept { return data_[i]; }
  CallbackNode* pop() noexcept { return data_[--size_]; }
  // False when no memory is left to grow.
  bool push(CallbackNode* n) noexcept {
    if (size_ == cap_) [[unlikely]]
      if (!reserve(size_ + 1)) return false;
    data_[size_++] = n;
    return true;
  }
  bool append(CallbackNode* const* p, std::size_t k) noexcept {
    if (!reserve(size_ + k)) return false;
    if (k) std::memcpy(data_ + size_, p, k * sizeof(CallbackNode*));
    size_ += k;
    return true;
  }
  std::size_t capacity() const noexcept { return cap_; }
  // Sets the size within the capacity (entries written through data()).
  void set_size(std::size_t k) noexcept { size_ = k; }
  // Pushes without growing; false when full.
  bool try_push(CallbackNode* n) noexcept {
    if (size_ == cap_) return false;
    data_[size_++] = n;
    return true;
  }
  // Inserts k entries below the others.
  bool insert_bottom(CallbackNode* const* p, std::size_t k) noexcept {
    if (!reserve(size_ + k)) return false;
    std::memmove(data_ + k, data_, size_ * sizeof(CallbackNode*));
    std::memcpy(data_, p, k * sizeof(CallbackNode*));
    size_ += k;
    return true;
  }
  // Drops the entries [from, to).
  void erase(std::size_t from, std::size_t to) noexcept {
    std::memmove(data_ + from, data_ + to, (size_ - to) * sizeof(CallbackNode*));
    size_ -= to - from;
  }
  bool reserve(std::size_t want) noexcept {
    if (want <= cap_) return true;
    return remap(std::max({want, cap_ * 2, kPageBytes / sizeof(CallbackNode*)}));
  }
  // Gives back the capacity a burst left behind.
  void shrink() noexcept {
    const std::size_t fit = round_up(std::max(size_, kPageBytes / sizeof(CallbackNode*)));
    if (cap_ > 2 * fit) remap(fit);
  }

 private:
  static std::size_t round_up(std::size_t entries) noexcept {
    const std::size_t per_page = kPageBytes / sizeof(CallbackNode*);
    return (entries + per_page - 1) / per_page * per_page;
  }
  bool remap(std::size_t entries) noexcept {
    entries = round_up(entries);
    void* p = MAP_FAILED;
    if (data_ && !kTsan) {
      p = mremap(data_, cap_ * sizeof(CallbackNode*), entries * sizeof(CallbackNode*), MREMAP_MAYMOVE);
    } else {
      p = mmap(nullptr, entries * sizeof(CallbackNode*), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      // ThreadSanitizer does not intercept mremap, so the range an array
      // left would keep its accesses, and the next thread to map it would be
      // reported as racing with them: it sees a copy and a munmap instead.
      if (data_ && p != MAP_FAILED) {
        std::memcpy(p, data_, size_ * sizeof(CallbackNode*));
        munmap(data_, cap_ * sizeof(CallbackNode*));
      }
    }
    if (p == MAP_FAILED) return false;
    data_ = static_cast<CallbackNode**>(p);
    cap_ = entries;
    return true;
  }

  CallbackNode** data_ = nullptr;
  std::size_t size_ = 0;
  std::size_t cap_ = 0;
};

// The header of an arena, in its first page.
struct Arena {
  Arena* next = nullptr;  // in the list of arenas with empty pages
  Arena* prev = nullptr;
  bool listed = false;
  std::size_t empty_pages = 0;                   // pages without nodes (never carved, or given back)
  std::uint64_t empty_bits[kPagesPerArena / 64]{};  // bit i: page i holds no nodes
  std::uint8_t count[kPagesPerArena]{};          // release_unused's scratch: candidates per page
};
static_assert(sizeof(Arena) <= kPageBytes);

constexpr std::uint8_t kRelease = 0xFF;  // count marks: this page goes back
constexpr std::uint8_t kFullKept = 0xFE;  //              all free, but kept

Arena* arena_of(const void* p) noexcept {
  return reinterpret_cast<Arena*>(reinterpret_cast<std::uintptr_t>(p) & ~(kArenaBytes - 1));
}
std::size_t page_index(const void* p) noexcept {
  return (reinterpret_cast<std::uintptr_t>(p) & (kArenaBytes - 1)) / kPageBytes;
}
char* page_base(const void* p) noexcept {
  return reinterpret_cast<char*>(reinterpret_cast<std::uintptr_t>(p) & ~(kPageBytes - 1));
}

struct ThreadCache {
  NodeArray local;
  std::size_t low_water = 0;  // the least local.size() since window_start
  clock::time_point window_start = clock::now();
  bool runs_loop = false;  // trim_node_pool was called here: `local` is trimmed by windows
  std::size_t shared_n = 0;
  CallbackNode* shared[kSharedCap];
};

// Process-wide state, under `mu`.
struct Global {
  std::mutex mu;
  NodeArray depot;
  std::size_t depot_low_water = 0;
  clock::time_point depot_window_start = clock::now();
  Arena* with_empty_pages = nullptr;
};
Global& global() {
  static auto* g = new Global;  // never destroyed: threads may exit after main
  return *g;
}
// When the depot's window ends (clock ticks), read without the lock by every slice.
std::atomic<clock::rep> g_depot_due{0};

// The hot lookup: initial-exec TLS is one %fs-relative load, where the
// default model costs a __tls_get_addr call per access in a shared library.
__attribute__((tls_model("initial-exec"))) thread_local ThreadCache* t_cache = nullptr;
__attribute__((tls_model("initial-exec"))) thread_local bool t_exiting = false;

// --- Arenas and pages (all under Global::mu) ---------------------------------

void link(Global& g, Arena* a) noexcept {
  if (a->listed) return;
  a->listed = true;
  a->prev = nullptr;
  a->next = g.with_empty_pages;
  if (a->next) a->next->prev = a;
  g.with_empty_pages = a;
}

void unlink(Global& g, Arena* a) noexcept {
  if (!a->listed) return;
  a->listed = false;
  if (a->prev)
    a->prev->next = a->next;
  else
    g.with_empty_pages = a->next;
  if (a->next) a->next->prev = a->prev;
}

Arena* new_arena(Global& g) noexcept {
  // Twice the size, then the misaligned ends cut off: arena_of masks addresses.
  void* raw = mmap(nullptr, 2 * kArenaBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) return nullptr;
  const auto begin = reinterpret_cast<std::uintptr_t>(raw);
  const auto start = (begin + kArenaBytes - 1) & ~(kArenaBytes - 1);
  if (start > begin) munmap(raw, start - begin);
  if (const auto tail = begin + 2 * kArenaBytes - (start + kArenaBytes))
    munmap(reinterpret_cast<void*>(start + kArenaBytes), tail);
  // A huge page would stay resident until every node in it is given back.
  madvise(reinterpret_cast<void*>(start), kArenaBytes, MADV_NOHUGEPAGE);
  auto* a = new (reinterpret_cast<void*>(start)) Arena;
  for (std::size_t i = 1; i < kPagesPerArena; ++i) a->empty_bits[i / 64] |= std::uint64_t{1} << (i % 64);
  a->empty_pages = kPagesPerArena - 1;
  link(g, a);
  return a;
}

// Fills a fresh page with nodes, written to out[0, kNodesPerPage).
bool carve_page(Global& g, CallbackNode** out) noexcept {
  Arena* a = g.with_empty_pages;
  if (!a && !(a = new_arena(g))) return false;
  std::size_t w = 0;
  while (a->empty_bits[w] == 0) ++w;
  const std::size_t index = w * 64 + static_cast<std::size_t>(std::countr_zero(a->empty_bits[w]));
  a->empty_bits[w] &= a->empty_bits[w] - 1;
  if (--a->empty_pages == 0) unlink(g, a);
  char* page = reinterpret_cast<char*>(a) + index * kPageBytes;
  for (std::size_t i = 0; i < kNodesPerPage; ++i) out[i] = new (page + i * sizeof(CallbackNode)) CallbackNode;
  return true;
}

// Takes back pages whose nodes are gone (sorted by address): each goes back
// to the system, its whole arena when that was the arena's last page in use.
void give_back_pages(Global& g, CallbackNode** pages, std::size_t n) noexcept {
  std::sort(pages, pages + n);
  std::size_t i = 0;
  while (i < n) {
    Arena* a = arena_of(pages[i]);
    std::size_t end = i;
    for (; end < n && arena_of(pages[end]) == a; ++end) {
      const std::size_t index = page_index(pages[end]);
      a->count[index] = 0;
      a->empty_bits[index / 64] |= std::uint64_t{1} << (index % 64);
    }
    a->empty_pages += end - i;
    if (a->empty_pages == kPagesPerArena - 1) {
      unlink(g, a);
      munmap(a, kArenaBytes);
    } else {
      link(g, a);
      // Runs of adjacent pages in one call each. (On a system whose pages are
      // larger than kPageBytes this fails and only whole arenas go back.)
      for (std::size_t run = i; run < end;) {
        std::size_t stop = run + 1;
        while (stop < end && reinterpret_cast<char*>(pages[stop]) ==
                                 reinterpret_cast<char*>(pages[stop - 1]) + kPageBytes)
          ++stop;
        madvise(pages[run], (stop - run) * kPageBytes, MADV_DONTNEED);
        run = stop;
      }
    }
    i = end;
  }
}

// Of the candidates v[0, end) — nodes that sat unused for a window — gives
// back the pages all of whose nodes are candidates, at most max_pages of
// them, scanning from the bottom (the coldest end) up. Touches no node.
// With `strays`, the candidates whose page-mates are elsewhere (in another
// array, or in use) move there: a page split between two arrays would never
// be whole in either, so a loop's cache hands such nodes to the depot, where
// the rest of their page gathers (every array but the loops' caches either
// empties into the depot or is bounded).
void release_unused(Global& g, NodeArray& v, std::size_t end, std::size_t max_pages, NodeArray* strays) noexcept {
  if (end == 0 || (max_pages == 0 && !strays)) return;
  CallbackNode** d = v.data();
  for (std::size_t i = 0; i < end; ++i) ++arena_of(d[i])->count[page_index(d[i])];
  NodeArray pages;  // mmap'd scratch: page addresses
  for (std::size_t i = 0; i < end; ++i) {
    std::uint8_t& c = arena_of(d[i])->count[page_index(d[i])];
    if (c != kNodesPerPage) continue;
    if (pages.size() < max_pages && pages.push(reinterpret_cast<CallbackNode*>(page_base(d[i]))))
      c = kRelease;
    else
      c = kFullKept;
  }
  std::size_t kept = 0;
  for (std::size_t i = 0; i < end; ++i) {
    const std::uint8_t c = arena_of(d[i])->count[page_index(d[i])];
    // A free node owns nothing (its callable is empty): its page simply goes,
    // without a destructor call that would read every node.
    if (c == kRelease) continue;
    if (c != kFullKept && strays && strays->push(d[i])) continue;
    d[kept++] = d[i];
  }
  // The counts of the pages that stay are cleared only now: the pass above
  // reads each page's mark once per node.
  for (std::size_t i = 0; i < kept; ++i) arena_of(d[i])->count[page_index(d[i])] = 0;
  if (strays)
    for (std::size_t i = 0; i < strays->size(); ++i) arena_of((*strays)[i])->count[page_index((*strays)[i])] = 0;
  v.erase(kept, end);
  give_back_pages(g, pages.data(), pages.size());
}


// --- The depot and the caches -----------------------------------------------

// Moves up to k nodes from the top of the depot to out; returns how many.
std::size_t from_depot(Global& g, CallbackNode** out, std::size_t k) noexcept {
  k = std::min(k, g.depot.size());
  const std::size_t rest = g.depot.size() - k;
  if (k) std::memcpy(out, g.depot.data() + rest, k * sizeof(CallbackNode*));
  g.depot.set_size(rest);
  g.depot_low_water = std::min(g.depot_low_water, rest);
  return k;
}

// Owns the thread's cache; at thread exit its nodes go to the depot.
struct CacheOwner {
  ThreadCache* cache = nullptr;
  ~CacheOwner() {
    t_exiting = true;
    t_cache = nullptr;
    if (!cache) return;
    {
      Global& g = global();
      std::lock_guard lock(g.mu);
      // (Should the depot fail to grow, the nodes are lost to reuse, not freed twice.)
      g.depot.append(cache->local.data(), cache->local.size());
      g.depot.append(cache->shared, cache->shared_n);
    }
    delete cache;
  }
};
thread_local CacheOwner t_owner;

// The calling thread's cache, made on first use; null while the thread exits.
ThreadCache* cache() noexcept {
  if (ThreadCache* c = t_cache) [[likely]]
    return c;
  if (t_exiting) return nullptr;
  auto* c = new (std::nothrow) ThreadCache;
  if (!c) return nullptr;
  t_owner.cache = c;
  t_cache = c;
  return c;
}

CallbackNode* ready(CallbackNode* n, uint8_t flags) noexcept {
  n->next = nullptr;
  n->flags = flags;
  return n;
}

CallbackNode* take_local(ThreadCache* c, uint8_t flags) noexcept {
  NodeArray& v = c->local;
  CallbackNode* n = v.pop();
  const std::size_t s = v.size();
  if (s < c->low_water) c->low_water = s;
  // Nodes come back scattered (a timer-heap compaction frees them in heap
  // order): fetching the one handed out kPrefetchAhead calls later hides the
  // miss without touching any node now.
  if (s >= kPrefetchAhead) __builtin_prefetch(v[s - kPrefetchAhead], 1);
  return ready(n, flags);
}

// Fills out[0, k) from the depot, or else with fresh pages (at most `pages`);
// returns k. Under the lock.
std::size_t refill(Global& g, CallbackNode** out, std::size_t want, std::size_t pages) noexcept {
  std::size_t k = from_depot(g, out, want);
  if (k != 0) return k;
  for (std::size_t p = 0; p < pages && carve_page(g, out + k); ++p) k += kNodesPerPage;
  return k;
}

[[gnu::noinline]] CallbackNode* alloc_slow(uint8_t flags) {
  Global& g = global();
  ThreadCache* c = cache();
  if (!c) {  // the thread is exiting
    CallbackNode* page[kNodesPerPage];
    std::lock_guard lock(g.mu);
    if (g.depot.empty()) {
      if (!g.depot.reserve(kNodesPerPage) || !carve_page(g, page)) throw std::bad_alloc();
      g.depot.append(page, kNodesPerPage);
    }
    CallbackNode* n = nullptr;
    from_depot(g, &n, 1);
    return ready(n, flags);
  }
  if (flags & CallbackNode::kThreadsafe) {
    {
      std::lock_guard lock(g.mu);
      c->shared_n = refill(g, c->shared, kBatch, kSharedCarvePages);
    }
    if (c->shared_n == 0) throw std::bad_alloc();
    return ready(c->shared[--c->shared_n], flags);
  }
  NodeArray& v = c->local;  // empty
  const std::size_t want = kCarvePages * kNodesPerPage;
  if (!v.reserve(want)) throw std::bad_alloc();
  {
    std::lock_guard lock(g.mu);
    v.set_size(refill(g, v.data(), want, kCarvePages));
  }
  if (v.empty()) throw std::bad_alloc();
  return take_local(c, flags);
}

[[gnu::noinline]] void free_slow(CallbackNode* n) noexcept {
  Global& g = global();
  ThreadCache* c = cache();
  if (c && !(n->flags & CallbackNode::kThreadsafe)) {
    // A thread that runs no loop keeps few: no slice would ever trim its cache.
    if (!c->runs_loop && c->local.size() >= kSharedCap) {
      std::lock_guard lock(g.mu);
      if (g.depot.append(c->local.data(), c->local.size())) c->local.set_size(0);
    }
    if (c->local.push(n)) return;
  } else if (c) {
    if (c->shared_n == kSharedCap) {
      // The colder half goes to the depot, for producers to take.
      std::lock_guard lock(g.mu);
      if (!g.depot.append(c->shared, kBatch)) {
        g.depot.push(n);
        return;
      }
      std::memmove(c->shared, c->shared + kBatch, (kSharedCap - kBatch) * sizeof(CallbackNode*));
      c->shared_n -= kBatch;
    }
    c->shared[c->shared_n++] = n;
    return;
  }
  // Exiting, or no memory to grow an array: the depot takes it (failing
  // that, the node is lost to reuse — it cannot be freed on its own).
  std::lock_guard lock(g.mu);
  g.depot.push(n);
}

void trim_depot(clock::time_point now) noexcept {
  Global& g = global();
  std::lock_guard lock(g.mu);
  if (now - g.depot_window_start < kWindow) return;  // another loop was first
  release_unused(g, g.depot, g.depot_low_water, g.depot.size(), nullptr);
  g.depot.shrink();
  g.depot_low_water = g.depot.size();
  g.depot_window_start = now;
  g_depot_due.store((now + kWindow).time_since_epoch().count(), std::memory_order_relaxed);
}

}  // namespace

CallbackNode* alloc_node(uint8_t flags) {
  if (ThreadCache* c = t_cache) [[likely]] {
    if (!(flags & CallbackNode::kThreadsafe)) {
      if (!c->local.empty()) [[likely]]
        return take_local(c, flags);
    } else if (c->shared_n != 0) {
      return ready(c->shared[--c->shared_n], flags);
    }
  }
  return alloc_slow(flags);
}

void free_node(CallbackNode* n) noexcept {
  // May run arbitrary destructors (which may free nodes too). No handle is
  // left to reach back into this node, so plain assignment is safe here.
  if (n->fn) n->fn = nullptr;
  n->state.store(0, std::memory_order_relaxed);
  n->refs.store(0, std::memory_order_relaxed);
  n->heap = nullptr;
  if (ThreadCache* c = t_cache) [[likely]] {
    if (!(n->flags & CallbackNode::kThreadsafe)) {
      if (c->local.try_push(n)) [[likely]]
        return;
    } else if (c->shared_n != kSharedCap) {
      c->shared[c->shared_n++] = n;
      return;
    }
  }
  free_slow(n);
}

void trim_node_pool(std::chrono::steady_clock::time_point now, std::chrono::steady_clock::duration idle) noexcept {
  if (ThreadCache* c = t_cache) {
    c->runs_loop = true;
    const bool idle_long = idle >= kWindow;
    if (idle_long || now - c->window_start >= kWindow) {
      // Idle that long, nothing was taken from the cache meanwhile.
      const std::size_t unused = idle_long ? c->local.size() : c->low_water;
      if (unused != 0) {
        Global& g = global();
        NodeArray strays;
        std::lock_guard lock(g.mu);
        release_unused(g, c->local, unused, unused > kKeep ? (unused - kKeep) / kNodesPerPage : 0, &strays);
        // They sat unused for a window already: to the depot's cold end, so
        // that its next trim counts them. (Should the depot fail to grow,
        // the cache keeps them.)
        if (!strays.empty() && !g.depot.insert_bottom(strays.data(), strays.size()))
          c->local.append(strays.data(), strays.size());
        else
          g.depot_low_water += strays.size();
      }
      c->local.shrink();
      c->low_water = c->local.size();
      c->window_start = now;
    }
  }
  if (now.time_since_epoch().count() >= g_depot_due.load(std::memory_order_relaxed)) trim_depot(now);
}

#else  // QILOOP_NO_POOL: every node is its own allocation, for the sanitizers' sake.

CallbackNode* alloc_node(uint8_t flags) {
  auto* n = new CallbackNode;
  n->flags = flags;
  return n;
}

void free_node(CallbackNode* n) noexcept { delete n; }

void trim_node_pool(std::chrono::steady_clock::time_point, std::chrono::steady_clock::duration) noexcept {}

#endif

void cancel_node(CallbackNode* n) noexcept {
  uint8_t old = n->set_state(CallbackNode::kCancelled);
  if (old & (CallbackNode::kCancelled | CallbackNode::kStarted)) return;
  if (n->flags & CallbackNode::kTimer) {
    if (TimerHeap* heap = n->heap) heap->note_cancelled();
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
