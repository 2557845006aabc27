// frame_pool.cpp — the recycling allocator for coroutine frames, and the
// never-awaited report.
#include <qiloop/coro.h>
#include <qiloop/event_loop.h>

#include "loop_impl.h"

#include <cstdint>
#include <new>
#include <stdexcept>
#include <string>
#include <utility>

namespace qi::detail {

#if !defined(QILOOP_NO_POOL) && !defined(QILOOP_NO_FRAME_POOL)

namespace {

// Frames (and future states) are pooled by size class: class c holds blocks
// of (c + 1) * kGranule - kMallocOverhead bytes, so that a block the pool
// takes from operator new is exactly one glibc chunk of a kGranule multiple
// (a 120-byte task state stays one 128-byte chunk, not 144). Larger sizes
// go to operator new as they are. Why these values: a typical frame is
// 100–600 bytes and a task's state 120; 32 classes of 64 bytes cover 2 KiB.
// A thread keeps up to
// kKeepBytes of freed blocks: enough for a burst of tens of thousands of
// tasks (gather of 10,000 is ~2.5 MiB of states and frames), so the next
// burst reuses warm memory instead of faulting in pages the C heap gave back
// to the system meanwhile, and a bounded cost after the burst.
constexpr std::size_t kGranule = 64;
constexpr std::size_t kMallocOverhead = sizeof(std::size_t);  // glibc's chunk header
constexpr std::size_t kClasses = 32;
constexpr std::size_t kKeepBytes = std::size_t{8} << 20;

// Free frames of each class are linked through their first word.
struct FramePool {
  void* head[kClasses] = {};
  std::size_t kept = 0;  // bytes of the free blocks of every class
  ~FramePool();
};

__attribute__((tls_model("initial-exec"))) thread_local FramePool* t_frames = nullptr;
__attribute__((tls_model("initial-exec"))) thread_local bool t_frames_gone = false;

struct FramePoolOwner {
  FramePool pool;
  FramePoolOwner() { t_frames = &pool; }
};

void release_all(FramePool& p) noexcept {
  for (void*& h : p.head) {
    while (h) ::operator delete(std::exchange(h, *static_cast<void**>(h)));
  }
  p.kept = 0;
}

FramePool::~FramePool() {
  t_frames = nullptr;
  t_frames_gone = true;
  release_all(*this);
}

std::size_t class_of(std::size_t size) noexcept { return (size + kMallocOverhead + kGranule - 1) / kGranule - 1; }
std::size_t block_size(std::size_t cls) noexcept { return (cls + 1) * kGranule - kMallocOverhead; }

FramePool* frame_pool() noexcept {
  if (FramePool* p = t_frames) [[likely]]
    return p;
  if (t_frames_gone) return nullptr;
  static thread_local FramePoolOwner owner;  // constructed once per thread; sets t_frames
  return t_frames;
}

}  // namespace

void* alloc_frame(std::size_t size) {
  const std::size_t cls = class_of(size);
  if (cls < kClasses) {
    if (FramePool* p = frame_pool()) {
      if (void* f = p->head[cls]) {
        p->head[cls] = *static_cast<void**>(f);
        p->kept -= block_size(cls);
        return f;
      }
    }
    return ::operator new(block_size(cls));
  }
  return ::operator new(size);
}

void free_frame(void* f, std::size_t size) noexcept {
  const std::size_t cls = class_of(size);
  if (cls < kClasses) {
    if (FramePool* p = t_frames; p && p->kept < kKeepBytes) {
      *static_cast<void**>(f) = p->head[cls];
      p->head[cls] = f;
      p->kept += block_size(cls);
      return;
    }
  }
  ::operator delete(f);
}

void trim_frame_pool() noexcept {
  if (FramePool* p = t_frames) release_all(*p);
}

#else

void* alloc_frame(std::size_t size) { return ::operator new(size); }
void free_frame(void* f, std::size_t) noexcept { ::operator delete(f); }
void trim_frame_pool() noexcept {}

#endif

void destroy_awaited_chain(PromiseBase& top) noexcept {
  // Each frame's destruction would destroy its child through the Coro it
  // holds, one stack frame per level. Instead: reverse the downward links
  // (each `awaited` then points at the parent), and destroy from the
  // innermost frame up, emptying the Coro that holds each one first, so
  // every destruction is one level deep. This is also the order the
  // recursive destruction has: the child goes before the rest of its parent.
  PromiseBase* innermost = nullptr;
  for (PromiseBase* p = std::exchange(top.awaited, nullptr); p;) {
    PromiseBase* child = std::exchange(p->awaited, innermost);
    innermost = p;
    p = child;
  }
  for (PromiseBase* p = innermost; p;) {
    PromiseBase* parent = p->awaited;
    std::exchange(*p->owner, nullptr).destroy();
    p = parent;
  }
}

void throw_not_runnable(const char* api, bool empty) {
  if (empty) throw std::invalid_argument(std::string(api) + ": the Coro is empty (default-constructed or moved from)");
  throw RuntimeError(std::string(api) +
                     ": this Coro already ran (it was awaited or given to a task); a coroutine runs once: call its "
                     "coroutine function again for a new Coro");
}

void report_never_awaited() noexcept {
  try {
    QiEventLoop* loop = qi::running_loop();
    const bool debug = loop ? loop->get_debug() : debug_from_env();
    if (!debug) return;
    ExceptionContext ctx;
    ctx.message = "coroutine was never awaited (a qi::Coro was destroyed without running: co_await it or "
                  "pass it to create_task)";
    if (loop)
      loop->call_exception_handler(ctx);
    else
      qCWarning(lcQiloop, "%s", ctx.message.c_str());
  } catch (...) {
  }
}

}  // namespace qi::detail
