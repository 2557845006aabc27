// qiloop/coro.h — qi::Coro<T>, the coroutine type of `async def`.
//
//   qi::Coro<int> answer() { co_await qi::sleep(10ms); co_return 42; }
//   qi::Coro<void> main_coro() { int v = co_await answer(); ... }
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
// million nested (recursive) awaits do too.
//
// Destroying a suspended chain of nested awaits (close(), a task's frames
// going away) destroys the innermost frame first, iteratively: a million-deep
// chain is destroyed in constant stack too, in every build.
//
// Exceptions escape a Coro into its awaiter with their original type.
//
// Frames come from a per-thread recycling allocator (plain new/delete in
// sanitizer builds: QILOOP_NO_FRAME_POOL).
//
// Debug mode (loop.set_debug(true) or QILOOP_DEBUG=1): a Coro destroyed
// without ever having run is reported ("coroutine was never awaited").
//
// Thread-safety: a Coro runs on the thread of the loop that runs its task.
#pragma once

#include <qiloop/errors.h>
#include <qiloop/export.h>

#include <coroutine>
#include <cstddef>
#include <exception>
#include <optional>
#include <stdexcept>
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

namespace qi {

template <class T = void> class Coro;

namespace detail {

QILOOP_EXPORT void* alloc_frame(std::size_t size);
QILOOP_EXPORT void free_frame(void* p, std::size_t size) noexcept;
QILOOP_EXPORT void report_never_awaited() noexcept;
// Out of line: building the message inline would cost every co_await.
[[noreturn]] QILOOP_EXPORT void throw_not_runnable(const char* api, bool empty);

struct PromiseBase;
// Destroys the chain of Coros that `top` is suspended in (top awaits one,
// which awaits the next, ...), innermost first, without recursion; `top`
// itself is left to its owner.
QILOOP_EXPORT void destroy_awaited_chain(PromiseBase& top) noexcept;

struct PromiseBase {
  std::coroutine_handle<> continuation;  // the awaiting coroutine; null for a task's root
  std::exception_ptr exception;
  // While suspended in `co_await child` (a Coro): the child's promise.
  // Destroying a frame destroys the child through the Coro it holds, and so
  // on down the chain; this link lets destroy_awaited_chain do it innermost
  // first in a loop instead.
  PromiseBase* awaited = nullptr;
  // The Coro holding this frame (valid while it is someone's `awaited`).
  std::coroutine_handle<>* owner = nullptr;
  bool started = false;       // taken by an awaiter or a task
  bool inline_await = false;  // the awaiter's await_suspend is still on the stack

  static void* operator new(std::size_t n) { return alloc_frame(n); }
  static void operator delete(void* p, std::size_t n) noexcept { free_frame(p, n); }

  std::suspend_always initial_suspend() noexcept { return {}; }

  struct FinalAwaiter {
    bool await_ready() const noexcept { return false; }
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) const noexcept {
      PromiseBase& p = h.promise();
      // Finished inside the awaiter's await_suspend (which then returns
      // false), or a task's root: nobody to transfer to.
      if (p.inline_await || !p.continuation) return std::noop_coroutine();
      return p.continuation;
    }
    void await_resume() const noexcept {}
  };
  FinalAwaiter final_suspend() noexcept { return {}; }
  void unhandled_exception() noexcept { exception = std::current_exception(); }
};

template <class T>
struct Promise : PromiseBase {
  std::optional<T> value;
  template <class U = T>
    requires std::is_constructible_v<T, U&&>
  void return_value(U&& v) {
    value.emplace(std::forward<U>(v));
  }
  T take() {
    if (exception) std::rethrow_exception(exception);
    return std::move(*value);
  }
};

template <>
struct Promise<void> : PromiseBase {
  void return_void() noexcept {}
  void take() {
    if (exception) std::rethrow_exception(exception);
  }
};

}  // namespace detail

template <class T>
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
  ~Coro() { reset(); }

  // False for a default-constructed or moved-from Coro.
  bool valid() const noexcept { return static_cast<bool>(frame_); }

  struct [[nodiscard]] Awaiter {
    handle_type child;
    detail::PromiseBase* parent = nullptr;  // the awaiting Coro's promise; null for another coroutine type
    bool await_ready() const noexcept { return false; }
#if QILOOP_TAIL_CALLS
    template <class P>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<P> h) noexcept {
      link(h);
      return child;
    }
#else
    template <class P>
    bool await_suspend(std::coroutine_handle<P> h) {
      auto& p = child.promise();
      link(h);
      p.inline_await = true;
      child.resume();
      if (child.done()) return false;  // finished synchronously: the parent goes on here
      p.inline_await = false;          // it suspended: its final_suspend resumes the parent
      return true;
    }
#endif
    T await_resume() const {
      if (parent) parent->awaited = nullptr;
      return child.promise().take();
    }

   private:
    template <class P>
    void link(std::coroutine_handle<P> h) noexcept {
      auto& p = child.promise();
      p.continuation = h;
      p.started = true;
      if constexpr (std::is_base_of_v<detail::PromiseBase, P>) {
        parent = &h.promise();
        parent->awaited = &p;
      }
    }
  };

  // co_await coro: runs it inline; yields its result or rethrows. Throws
  // std::invalid_argument for an empty Coro and qi::RuntimeError for one
  // that already ran.
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
