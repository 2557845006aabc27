// -----------------------------------------------------------------------------
// File: qiloop/structured/as_completed.h
// -----------------------------------------------------------------------------
//
// qi::as_completed yields awaitables in the order the given tasks (or
// futures) finish (asyncio.as_completed, 3.13).
//
// Example:
//
//   for (auto next : qi::as_completed(std::move(tasks))) {
//     int r = co_await next;                    // the next result to arrive
//   }
//   for (auto next : qi::as_completed(tasks, 5s)) {
//     qi::Task<int> t = co_await next.task();   // which original task finished
//     if (t.exception()) ...                     // (3.13's `async for t in ...`)
//   }
//
// Contract (asyncio 3.13's _AsCompletedIterator):
// - qi::as_completed(fs) / qi::as_completed(fs, timeout): fs is a
//   std::vector of qi::Task<T>, qi::Future<T> or qi::Coro<T> (each Coro is
//   made a task at once); timeout is a std::chrono duration or seconds as a
//   double, counted from the call.
// - The result is a range (begin/end; use it once) of exactly fs.size()
//   awaitables of type qi::AsCompleted<F>::Next. Awaiting one takes the
//   next child to finish, in completion order: `co_await next` yields its
//   result or rethrows its exception (original type; qi::CancelledError for
//   a cancelled child); `co_await next.task()` yields the original handle
//   (F: the Task<T> or Future<T> given, or the task made of the Coro). One
//   awaitable is awaited once (either way).
// - Completion order is the order the children's done callbacks run: the
//   order they finished (asyncio's, for the same program).
// - After the timeout, the children already finished are still handed out,
//   then every further await throws qi::TimeoutError. Nothing is cancelled
//   (not on timeout, not when the awaiting task is cancelled, not when the
//   range is dropped early); dropping the range and its awaitables unhooks
//   it from the children.
// - `co_await next` moves the result out when the children are its own (a
//   vector of Coro, or a vector passed as an rvalue), else copies it; a
//   child passed twice is copied, so both occurrences yield its result.
// - Cancelling a task awaiting `next` throws qi::CancelledError there and
//   loses nothing: a child that finished meanwhile goes to the next await.
// Throws at the call: std::invalid_argument for an empty handle or Coro,
// qi::RuntimeError for a Coro that already ran or when only coroutines are
// given and no loop runs, qi::ValueError for futures of different loops,
// or for a child passed twice in an rvalue vector whose result type cannot
// be copied.
// Thread-safety: the loop's thread.
#pragma once

#include <qiloop/structured/detail/as_completed.h>

#include <chrono>
#include <cstddef>
#include <iterator>
#include <optional>
#include <utility>
#include <vector>

namespace qi {

// qi::AsCompleted<F, Move>
// What qi::as_completed returns: F is the handle type (Task<T> or
// Future<T>); Move says whether `co_await next` moves results out.
// Move-only; iterate it once.
template <class F, bool Move>
class AsCompleted {
  using State = detail::AsCompletedState<F>;
  using T = typename F::value_type;

 public:
  // AsCompleted::Next
  // One awaitable of the range.
  class Next {
   public:
    // Next::operator co_await()
    // The next result in completion order, or its exception.
    detail::OwningCoroAwaiter<T> operator co_await() const { return detail::OwningCoroAwaiter<T>(result(s_)); }
    // Next::task()
    // The next original handle to finish (asyncio 3.13's `async for`).
    [[nodiscard("co_await it")]] Coro<F> task() const { return original(s_); }

   private:
    friend class AsCompleted;
    explicit Next(State* s) : s_(s) {}
    static Coro<T> result(detail::AsCompletedUser<State> s) {
      const std::size_t i = co_await s->next_index();
      co_return detail::child_value<T, Move>(*detail::state_of(s->at(i)), s->shared());
    }
    static Coro<F> original(detail::AsCompletedUser<State> s) {
      const std::size_t i = co_await s->next_index();
      co_return s->at(i);
    }
    detail::AsCompletedUser<State> s_;
  };

  class iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Next;
    using difference_type = std::ptrdiff_t;
    Next operator*() const { return Next(owner_->s_.operator->()); }
    iterator& operator++() {
      --owner_->left_;
      return *this;
    }
    bool operator==(std::default_sentinel_t) const noexcept { return owner_->left_ == 0; }

   private:
    friend class AsCompleted;
    explicit iterator(AsCompleted* o) : owner_(o) {}
    AsCompleted* owner_;
  };

  // AsCompleted::begin() / end()
  // The awaitables still to come (size() of them).
  iterator begin() { return iterator(this); }
  std::default_sentinel_t end() const noexcept { return {}; }
  // AsCompleted::size()
  // How many awaitables are still to come.
  std::size_t size() const noexcept { return left_; }

  AsCompleted(AsCompleted&&) noexcept = default;
  AsCompleted& operator=(AsCompleted&&) noexcept = default;

  // Internal: qi::as_completed makes it; takes over the state's first reference.
  explicit AsCompleted(State* s) : s_(s), left_(s->size()) { s->release(); }

 private:
  detail::AsCompletedUser<State> s_;
  std::size_t left_;
};

namespace detail {

template <class V>
auto as_completed_impl(V&& aws, std::optional<LoopDuration> timeout) {
  using E = vector_element_t<V>;
  using F = typename AwaitableArg<E>::handle_type;
  constexpr bool kMove = vector_moves_result_v<V>;
  QiEventLoop* seen = nullptr;
  for (const auto& a : aws) check_child(a, seen, "qi::as_completed");
  QiEventLoop& loop = children_loop(seen);
  const bool shared = vector_shared<kMove>(aws, "qi::as_completed");
  std::vector<F> fs;
  fs.reserve(aws.size());
  for (auto& a : aws) {
    if constexpr (AwaitableArg<E>::is_coro)
      fs.push_back(make_child(std::move(a), loop));
    else
      fs.push_back(a);
  }
  return AsCompleted<F, kMove>(new AsCompletedState<F>(loop, std::move(fs), timeout, shared));
}

}  // namespace detail

// qi::as_completed()
// See the file comment.
template <detail::awaitable_vector V>
[[nodiscard]] auto as_completed(V&& aws) {
  return detail::as_completed_impl(std::forward<V>(aws), std::nullopt);
}
template <detail::awaitable_vector V, class Rep, class Period>
[[nodiscard]] auto as_completed(V&& aws, std::chrono::duration<Rep, Period> timeout) {
  return detail::as_completed_impl(std::forward<V>(aws),
                                   detail::saturating_duration(timeout, "qi::as_completed", "timeout"));
}
template <detail::awaitable_vector V>
[[nodiscard]] auto as_completed(V&& aws, double timeout_seconds) {
  return as_completed(std::forward<V>(aws), std::chrono::duration<double>(timeout_seconds));
}

}  // namespace qi
