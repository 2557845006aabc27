// qiloop/detail/promise.h — the machinery of qi::Coro<T>: its promise types,
// the frame allocator, and what `co_await coro` does. Internal; the contract
// is in <qiloop/coro.h> (which defines QILOOP_TAIL_CALLS before including this).
#pragma once

#include <qiloop/detail/call_graph.h>
#include <qiloop/export.h>

#include <coroutine>
#include <cstddef>
#include <exception>
#include <optional>
#include <type_traits>
#include <utility>

namespace qi::detail {

QILOOP_EXPORT void* alloc_frame(std::size_t size);
QILOOP_EXPORT void free_frame(void* p, std::size_t size) noexcept;
// Gives the calling thread's cached frames back to the C heap (a benchmark
// measuring what a task allocates, or a thread done with a burst).
QILOOP_EXPORT void trim_frame_pool() noexcept;
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
  // The site of the current (while suspended) or last co_await: the await
  // graph's file:line and function name (qi::capture_call_graph).
  SiteRecord where{};
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
  void unhandled_exception() noexcept {
    exception = std::current_exception();
    note_exception_escaped(*this);
  }

  // Every co_await in the coroutine passes through here: its site is
  // recorded — the await graph's whole cost on the hot path — and the
  // awaitable goes on as the co_await would take it (awaiter_for).
  template <class A>
  decltype(auto) await_transform(A&& awaitable, SiteRecord site = QILOOP_DETAIL_SITE_HERE) {
    where = site;
    return awaiter_for(static_cast<A&&>(awaitable));
  }
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

// What `co_await coro` does: runs the child inline (a tail call where
// QILOOP_TAIL_CALLS, else resumed from await_suspend), then yields its result.
template <class T, class Handle>
struct [[nodiscard]] CoroAwaiter {
  Handle child;
  PromiseBase* parent = nullptr;  // the awaiting Coro's promise; null for another coroutine type
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
    if constexpr (std::is_base_of_v<PromiseBase, P>) {
      parent = &h.promise();
      parent->awaited = &p;
    }
  }
};

}  // namespace qi::detail
