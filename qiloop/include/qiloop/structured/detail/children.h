// qiloop/structured/detail/children.h — what every combinator does with the
// awaitables it is given (asyncio's ensure_future): a qi::Coro becomes a
// task, a qi::Task / qi::Future is taken as it is, and all must share one
// loop. Internal; each combinator's header states its contract.
#pragma once

#include <qiloop/coro.h>
#include <qiloop/errors.h>
#include <qiloop/event_loop.h>
#include <qiloop/export.h>
#include <qiloop/future.h>
#include <qiloop/task.h>

#include <cstddef>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace qi::detail {

// What a combinator accepts as one awaitable.
template <class A>
struct AwaitableArg {
  static constexpr bool ok = false;
};
template <class T>
struct AwaitableArg<Coro<T>> {
  static constexpr bool ok = true, is_coro = true;
  using value_type = T;
  using handle_type = Task<T>;  // what the combinator turns it into
};
template <class T>
struct AwaitableArg<Task<T>> {
  static constexpr bool ok = true, is_coro = false;
  using value_type = T;
  using handle_type = Task<T>;
};
template <class T>
struct AwaitableArg<Future<T>> {
  static constexpr bool ok = true, is_coro = false;
  using value_type = T;
  using handle_type = Future<T>;
};

template <class A>
concept awaitable_arg = AwaitableArg<std::remove_cvref_t<A>>::ok;
template <class A>
using arg_value_t = typename AwaitableArg<std::remove_cvref_t<A>>::value_type;
template <class A>
using arg_handle_t = typename AwaitableArg<std::remove_cvref_t<A>>::handle_type;

// Whether the combinator may move the result out of the child: the child is
// its own (a task it made of a Coro) or was handed over as an rvalue (as
// `co_await std::move(task)` moves it out). An lvalue handle's result is
// copied, so other holders still see it.
template <class A>
inline constexpr bool moves_result_v =
    AwaitableArg<std::remove_cvref_t<A>>::is_coro || !std::is_lvalue_reference_v<A>;

template <class V>
struct AwaitableVector {
  static constexpr bool ok = false;
};
template <class E>
  requires AwaitableArg<E>::ok
struct AwaitableVector<std::vector<E>> {
  static constexpr bool ok = true;
  using element = E;
};
template <class V>
concept awaitable_vector = AwaitableVector<std::remove_cvref_t<V>>::ok;
template <class V>
using vector_element_t = typename AwaitableVector<std::remove_cvref_t<V>>::element;
// A vector handed over as an rvalue gives its elements' results away.
template <class V>
inline constexpr bool vector_moves_result_v =
    AwaitableArg<vector_element_t<V>>::is_coro || !std::is_lvalue_reference_v<V>;

// Checks a future handle given to `api`: not empty, its loop alive and the
// same as that of the futures seen before (`loop`, set by the first one).
// Throws std::invalid_argument, qi::RuntimeError or qi::ValueError (as
// asyncio's ensure_future does for a future of another loop).
QILOOP_EXPORT void check_child_future(FutureStateBase* f, QiEventLoop*& loop, const char* api);
// The loop the children run on: `seen` (the futures'), or the running loop
// when only coroutines were given (qi::RuntimeError when none runs).
QILOOP_EXPORT QiEventLoop& children_loop(QiEventLoop* seen);

// First pass over the arguments: nothing is started until all are valid.
template <class A>
void check_child(const A& a, QiEventLoop*& loop, const char* api) {
  if constexpr (AwaitableArg<A>::is_coro)
    a.check_runnable(api);
  else
    check_child_future(state_of(a), loop, api);
}

// Second pass: the child's handle (a Coro becomes a task on `loop`). A
// handle is copied even from an rvalue: the same one may be passed twice
// (gather(std::move(t), std::move(t))), and must not be found empty.
template <class A>
arg_handle_t<A> make_child(A&& a, QiEventLoop& loop) {
  if constexpr (AwaitableArg<std::remove_cvref_t<A>>::is_coro)
    return loop.create_task(std::move(a));
  else
    return std::as_const(a);
}

// A Future<T> handle on a state made here (a combinator's own future type):
// Future's constructor from a state is for derived classes only.
template <class T>
class FutureFromState : public Future<T> {
 public:
  // Takes over the caller's reference to s.
  static Future<T> adopt(FutureStateBase* s) noexcept {
    return Future<T>(FutureFromState(Future<T>::state_type::adopt(s)));
  }

 private:
  explicit FutureFromState(typename Future<T>::state_type s) noexcept : Future<T>(std::move(s)) {}
};

// The value a finished child yields: moved out or copied (see moves_result_v).
// `shared`: the child appears more than once among the arguments, so each
// occurrence yields a copy (asyncio's gather(t, t) yields t's result twice).
template <class T, bool Move>
T child_value(FutureStateBase& s, bool shared = false) {
  if constexpr (std::is_void_v<T>)
    result_of<void>(s);
  else if constexpr (Move && std::is_copy_constructible_v<T>)
    return shared ? result_of<T>(s) : take_result_of<T>(s);
  else if constexpr (Move)
    return take_result_of<T>(s);
  else
    return result_of<T>(s);
}

// Checked at the call, before anything starts: whether a child is passed
// twice among the `n` states; then child_value copies each occurrence's
// result. `copyable`: whether the results moved out can be copied; if not, a
// child passed twice is a qi::ValueError. O(n): it marks each state.
QILOOP_EXPORT bool shared_children(FutureStateBase* const* states, std::size_t n, bool copyable, const char* api);
// The qi::ValueError for a child passed twice whose result cannot be copied.
[[noreturn]] QILOOP_EXPORT void throw_shared_uncopyable(const char* api);

// Whether an argument's result is moved out and cannot be copied.
template <class T, bool Move>
inline constexpr bool moved_uncopyable_v = Move && !std::is_void_v<T> && !std::is_copy_constructible_v<T>;

// shared_children for a vector of arguments whose results are moved out
// when Move (Coros never share: each becomes its own task).
template <bool Move, class V>
bool vector_shared(const V& v, const char* api) {
  using E = vector_element_t<V>;
  using T = typename AwaitableArg<E>::value_type;
  if constexpr (!Move || std::is_void_v<T> || AwaitableArg<E>::is_coro) {
    return false;
  } else {
    bool twice = false;
    for (const auto& a : v) twice |= state_of(a)->mark_seen();
    for (const auto& a : v) state_of(a)->clear_seen();
    if (twice && moved_uncopyable_v<T, Move>) throw_shared_uncopyable(api);
    return twice;
  }
}

}  // namespace qi::detail
