// qiloop/coro.h — qi::Coro<T>, the coroutine type of `async def`.
//
//   qi::Coro<int> answer() { co_await qi::sleep(10ms); co_return 42; }
//   qi::Coro<void> main_coro() { int v = co_await answer(); ... }
//   int v = qi::run(answer());             // or loop.create_task(answer())
//
// A Coro is lazy: calling answer() only creates the frame. It runs when
// awaited (`co_await answer()` runs it inline, with no trip through the
// loop) or when a task takes it (loop.create_task / run_task /
// run_until_complete, qi::run). A Coro runs once; it is move-only.
//
// Stack use: awaiting a Coro that completes without suspending never grows
// the stack, so a million sequential `co_await child()` run in constant
// stack in every build. Where the compiler guarantees tail calls for
// symmetric transfer (clang; g++ with optimization and no sanitizer), a
// million nested (recursive) awaits do too (QILOOP_TAIL_CALLS below).
// Destroying a suspended chain of nested awaits (close(), a task's frames
// going away) destroys the innermost frame first, iteratively: a
// million-deep chain is destroyed in constant stack too, in every build.
//
// Exceptions escape a Coro into its awaiter with their original type.
//
// Frames (and task and future states) come from a per-thread recycling
// allocator that keeps up to 8 MiB of freed blocks, so a burst of tasks
// reuses the memory of the last one (plain new/delete in sanitizer builds:
// QILOOP_NO_FRAME_POOL).
//
// Debug mode (loop.set_debug(true) or QILOOP_DEBUG=1): a Coro destroyed
// without ever having run is reported ("coroutine was never awaited").
//
// Thread-safety: a Coro runs on the thread of the loop that runs its task.
//
// The promise types and awaiter are in <qiloop/detail/promise.h>.
#pragma once

#include <qiloop/errors.h>
#include <qiloop/export.h>

#include <coroutine>
#include <type_traits>
#include <utility>

// QILOOP_TAIL_CALLS: 1 where the compiler turns symmetric transfer into a
// tail call, so awaiting a Coro jumps into it and back without growing the
// stack. clang does at every level. g++ does at -O2, -O3 and -Os but not at
// -O0, -Og or -O1 (and no macro tells those apart), nor under sanitizers:
// the qiloop::qiloop CMake target defines QILOOP_TAIL_CALLS=1 for its
// Release, RelWithDebInfo and MinSizeRel configurations; otherwise g++ gets
// 0, where awaiting a Coro resumes it from await_suspend, which returns
// false when it finished synchronously. Every translation unit of a program
// must agree (build them with the same flags).
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#undef QILOOP_TAIL_CALLS
#define QILOOP_TAIL_CALLS 0
#elif !defined(QILOOP_TAIL_CALLS)
#if defined(__clang__)
#define QILOOP_TAIL_CALLS 1
#else
#define QILOOP_TAIL_CALLS 0
#endif
#endif

#include <qiloop/detail/promise.h>

namespace qi {

template <class T = void>
class [[nodiscard]] Coro {
  static_assert(!std::is_reference_v<T> && !std::is_array_v<T> && !std::is_function_v<T>,
                "qiloop: qi::Coro<T> returns its result by value: T cannot be a reference, array or function type; "
                "co_return a pointer or std::reference_wrapper<T> instead");

 public:
  struct promise_type : detail::Promise<T> {
    Coro get_return_object() noexcept { return Coro(std::coroutine_handle<promise_type>::from_promise(*this)); }
  };
  using handle_type = std::coroutine_handle<promise_type>;
  using value_type = T;
  using Awaiter = detail::CoroAwaiter<T, handle_type>;

  // Coro::Coro()
  // An empty Coro (valid() is false). Moving leaves the source empty.
  Coro() noexcept = default;
  Coro(Coro&& o) noexcept : frame_(std::exchange(o.frame_, nullptr)) { adopt(); }
  Coro& operator=(Coro&& o) noexcept {
    if (this != &o) {
      reset();
      frame_ = std::exchange(o.frame_, nullptr);
      adopt();
    }
    return *this;
  }
  Coro(const Coro&) = delete;
  Coro& operator=(const Coro&) = delete;
  // Coro::~Coro()
  // Destroys the frame (and a suspended chain below it, innermost first).
  // One that never ran is reported in debug mode. Never throws.
  ~Coro() { reset(); }

  // Coro::valid()
  // False for a default-constructed or moved-from Coro.
  bool valid() const noexcept { return static_cast<bool>(frame_); }

  // Coro::operator co_await()
  // Runs the coroutine inline, inside the awaiting one (no trip through the
  // loop), and yields its result or rethrows its exception. Throws
  // std::invalid_argument for an empty Coro and qi::RuntimeError for one that
  // already ran (awaited, or given to a task). Awaited from a task or from
  // another coroutine type alike.
  Awaiter operator co_await() && {
    check_runnable("co_await");
    return Awaiter{handle()};
  }
  Awaiter operator co_await() & {
    check_runnable("co_await");
    return Awaiter{handle()};
  }

  // Internal (the entry points that hand a Coro to a task): throws
  // std::invalid_argument for an empty Coro and qi::RuntimeError for one that
  // already ran (awaited, or given to a task), naming `api`.
  void check_runnable(const char* api) const {
    if (!frame_) [[unlikely]]
      detail::throw_not_runnable(api, true);
    if (handle().promise().started) [[unlikely]]
      detail::throw_not_runnable(api, false);
  }

  // Internal: hands the frame to a task, which then owns it (the caller
  // checked it with check_runnable).
  handle_type release() noexcept {
    handle_type h = handle();
    h.promise().started = true;
    frame_ = nullptr;
    return h;
  }

 private:
  explicit Coro(handle_type h) noexcept : frame_(h) { adopt(); }
  handle_type handle() const noexcept { return handle_type::from_address(frame_.address()); }
  // The frame's back-reference follows the Coro that holds it, wherever it moves.
  void adopt() noexcept {
    if (frame_) handle().promise().owner = &frame_;
  }
  void reset() noexcept {
    if (!frame_) return;
    auto& p = handle().promise();
    if (!p.started) detail::report_never_awaited();
    if (p.awaited) detail::destroy_awaited_chain(p);
    std::exchange(frame_, nullptr).destroy();
  }
  // Type-erased so that a child's promise can point at it (PromiseBase::owner).
  std::coroutine_handle<> frame_;
};

}  // namespace qi
