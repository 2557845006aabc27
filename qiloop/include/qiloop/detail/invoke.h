// qiloop/detail/invoke.h — binding a callable and its arguments into one
// move-only nullary callback. Internal.
#pragma once

#include <qiloop/export.h>

#include <absl/functional/any_invocable.h>

#include <functional>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>

namespace qi {
template <class T> class Coro;
}  // namespace qi

namespace qi::detail {

template <class T> struct is_coro : std::false_type {};
template <class T> struct is_coro<Coro<T>> : std::true_type {};

// The check every callback goes through (make_callback, add_done_callback):
// calling a coroutine function only creates its frame, so a callback that
// returns a qi::Coro would never run its body (asyncio's call_soon raises
// TypeError for the same mistake).
template <class R>
constexpr void check_callback_result() noexcept {
  static_assert(!is_coro<std::remove_cvref_t<R>>::value,
                "qiloop: this callback is a coroutine (it returns qi::Coro), so calling it would never run its body: "
                "run it as a task instead, loop.create_task(coro_fn(args...)), or call create_task from a plain "
                "callback");
}

// The same mistake one step earlier: the Coro itself handed over as the
// callback (make_callback, add_done_callback).
template <class D>
constexpr void check_not_coro_object() noexcept {
  static_assert(!is_coro<D>::value,
                "qiloop: a qi::Coro is not a callback: run it as a task with loop.create_task(std::move(coro))");
}

template <class T> struct is_nullable_function : std::false_type {};
template <class S> struct is_nullable_function<std::function<S>> : std::true_type {};
template <class S> struct is_nullable_function<absl::AnyInvocable<S>> : std::true_type {};

// True for a null function pointer, an empty std::function or AnyInvocable.
template <class F>
bool is_empty_callable(const F& f) noexcept {
  using D = std::decay_t<F>;
  if constexpr (std::is_pointer_v<D> || std::is_member_pointer_v<D>)
    return f == nullptr;
  else if constexpr (is_nullable_function<D>::value)
    return !static_cast<bool>(f);
  else
    return false;
}

[[noreturn]] QILOOP_EXPORT void throw_empty_callable(const char* api);

// Checks f, then returns a callable object that calls f(args...) with no
// arguments: f itself when there are none. Arguments are decay-copied (or
// moved) now. A one-shot callback (Repeating == false) gets them as rvalues,
// so move-only arguments work; a repeating one (an fd handler) gets lvalues,
// so every call sees the same values. The callable's result, if any, is
// discarded by the AnyInvocable<void()> it goes into.
template <bool Repeating = false, class F, class... Args>
auto make_callback(const char* api, F&& f, Args&&... args) {
  using D = std::decay_t<F>;
  check_not_coro_object<D>();
  if (is_empty_callable(f)) throw_empty_callable(api);
  if constexpr (sizeof...(Args) == 0) {
    static_assert(std::is_invocable_v<D&>, "qiloop: the callback must be callable with no arguments");
    if constexpr (std::is_invocable_v<D&>) check_callback_result<std::invoke_result_t<D&>>();
    return D(std::forward<F>(f));
  } else if constexpr (Repeating) {
    constexpr bool kOk = std::is_invocable_v<D&, std::decay_t<Args>&...>;
    static_assert(kOk, "qiloop: the callback cannot be called with the given arguments");
    if constexpr (kOk) check_callback_result<std::invoke_result_t<D&, std::decay_t<Args>&...>>();
    return [fn = std::forward<F>(f), ... a = std::forward<Args>(args)]() mutable { std::invoke(fn, a...); };
  } else {
    constexpr bool kOk = std::is_invocable_v<D, std::decay_t<Args>...>;
    static_assert(kOk, "qiloop: the callback cannot be called with the given arguments");
    if constexpr (kOk) check_callback_result<std::invoke_result_t<D, std::decay_t<Args>...>>();
    return [fn = std::forward<F>(f), ... a = std::forward<Args>(args)]() mutable {
      std::invoke(std::move(fn), std::move(a)...);
    };
  }
}

}  // namespace qi::detail
