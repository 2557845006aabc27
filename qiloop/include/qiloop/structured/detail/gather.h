// qiloop/structured/detail/gather.h — the gathering future behind
// qi::gather / qi::gather_settled (asyncio's _GatheringFuture and its
// _done_callback). Internal; the contract is in <qiloop/structured/gather.h>.
#pragma once

#include <qiloop/detail/hooking_state.h>
#include <qiloop/structured/detail/children.h>
#include <qiloop/structured/outcome.h>

#include <array>
#include <cstddef>
#include <exception>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace qi::detail {

// The type-independent bookkeeping of one gather (src/structured/gather.cpp).
// Invariant: `finished` counts the children whose done callback ran; the
// outer future is done once a child failed (not `settled`) or all finished.
struct QILOOP_EXPORT GatherCore {
  FutureStateBase* outer = nullptr;
  const StateRef<FutureStateBase>* children = nullptr;
  std::size_t count = 0;
  std::size_t finished = 0;
  bool settled = false;           // return_exceptions=True
  bool cancel_requested = false;  // cancel() reached a child (asyncio's _cancel_requested)

  // A child's done callback. True when every child finished and the typed
  // layer must complete the outer future with their results; otherwise it
  // did what there was to do (failed the outer, or retrieved the child's
  // exception for a gather already done).
  bool child_done(FutureStateBase& child);
  // _GatheringFuture.cancel(): cancels every child; true if one was.
  bool cancel(const std::string& msg);
  // Building the result threw (a copy constructor): the outer fails with it.
  void fail(std::exception_ptr e) noexcept;
};

// The gathering future: a plain future (FutureState<R>, so every Future<R>
// handle reads it) whose cancel() cancels the children instead.
template <class R>
class GatherState : public HookingState<R> {
 public:
  GatherState(QiEventLoop& loop, bool settled) : HookingState<R>(loop) { core_.settled = settled; }
  bool cancel(std::string msg) override { return core_.cancel(msg); }

 protected:
  // This state hooked on each child (holding a reference); called by the
  // derived start() once `children` is filled. No child: done at once. Only
  // once a handle holds this state: a hook that throws (a done child of a
  // closed loop, std::bad_alloc) leaves those made before it holding a
  // living gather, not one its failed constructor freed.
  void watch(const StateRef<FutureStateBase>* children, std::size_t n) {
    core_.outer = this;
    core_.children = children;
    core_.count = n;
    if (n == 0) complete();
    std::size_t i = 0;
    try {
      for (; i < n; ++i) children[i]->add_done_hook(*this);
    } catch (...) {
      // The hooks made so far hold this gather, which no handle will:
      // done (cancelled, so nothing is reported), it watches those children
      // alone and only retrieves what they end with.
      core_.count = i;
      this->mark_cancelled({});
      throw;
    }
  }
  // Every child's result, in argument order (all finished).
  virtual R build() = 0;

 private:
  void on_done(FutureStateBase& child) override {
    if (core_.child_done(child)) complete();
  }
  void drop_watched() noexcept override {
    for (std::size_t i = 0; i < core_.count; ++i) core_.children[i]->drop_callbacks();
  }
  void complete() {
    try {
      if constexpr (std::is_void_v<R>) {
        build();
        this->finish_with_value();
      } else {
        this->finish_with_value(build());
      }
    } catch (...) {
      core_.fail(std::current_exception());
    }
  }
  GatherCore core_;
};

// One argument of a variadic gather: its value type, and whether its result
// is moved out (moves_result_v).
template <class T, bool Move>
struct GatherArg {
  using value_type = T;
  static constexpr bool move = Move;
};

// A gather's element for a child: its value (std::monostate for void), or
// for gather_settled its Outcome (a cancelled child: a qi::CancelledError).
template <class T, bool Settled>
using gather_element_t =
    std::conditional_t<Settled, Outcome<T>, std::conditional_t<std::is_void_v<T>, std::monostate, T>>;

// Only for a finished child (the gather waited for it).
template <class T, bool Move, bool Settled>
gather_element_t<T, Settled> gather_element(FutureStateBase& c, bool shared) {
  if constexpr (!Settled) {
    if constexpr (std::is_void_v<T>) {
      child_value<void, Move>(c);
      return {};
    } else {
      return child_value<T, Move>(c, shared);
    }
  } else {
    if (c.cancelled()) return Outcome<T>(std::make_exception_ptr(CancelledError(c.cancel_message())));
    if (std::exception_ptr e = c.exception()) return Outcome<T>(std::move(e));
    if constexpr (std::is_void_v<T>)
      return Outcome<void>();
    else
      return Outcome<T>(std::in_place, child_value<T, Move>(c, shared));
  }
}

template <bool Settled, class... Args>
using gather_tuple_t = std::tuple<gather_element_t<typename Args::value_type, Settled>...>;

// gather(a, b, ...): the children in a fixed array.
template <bool Settled, class... Args>
class TupleGather final : public GatherState<gather_tuple_t<Settled, Args...>> {
  using R = gather_tuple_t<Settled, Args...>;

 public:
  TupleGather(QiEventLoop& loop, std::array<StateRef<FutureStateBase>, sizeof...(Args)> children, bool shared)
      : GatherState<R>(loop, Settled), children_(std::move(children)), shared_(shared) {}
  // Hooks on the children (watch()), once the caller's handle holds this.
  void start() { this->watch(children_.data(), children_.size()); }

 private:
  R build() override { return build(std::index_sequence_for<Args...>{}); }
  template <std::size_t... I>
  R build(std::index_sequence<I...>) {
    return R{gather_element<typename Args::value_type, Args::move, Settled>(*children_[I], shared_)...};
  }
  std::array<StateRef<FutureStateBase>, sizeof...(Args)> children_;
  bool shared_;  // a child passed twice: results are copied (child_value)
};

// gather(vector): a vector of results; a vector of void children gathers to
// void (gather_settled: a vector of Outcome<void>).
template <class T, bool Settled>
using gather_vector_t =
    std::conditional_t<Settled, std::vector<Outcome<T>>, std::conditional_t<std::is_void_v<T>, void, std::vector<T>>>;

template <class T, bool Move, bool Settled>
class VectorGather final : public GatherState<gather_vector_t<T, Settled>> {
  using R = gather_vector_t<T, Settled>;

 public:
  VectorGather(QiEventLoop& loop, std::vector<StateRef<FutureStateBase>> children, bool shared)
      : GatherState<R>(loop, Settled), children_(std::move(children)), shared_(shared) {}
  // Hooks on the children (watch()), once the caller's handle holds this.
  void start() { this->watch(children_.data(), children_.size()); }

 private:
  R build() override {
    if constexpr (!std::is_void_v<R>) {
      R out;
      out.reserve(children_.size());
      for (const auto& c : children_) out.push_back(gather_element<T, Move, Settled>(*c, shared_));
      return out;
    }
  }
  std::vector<StateRef<FutureStateBase>> children_;
  bool shared_;  // a child passed twice: results are copied (child_value)
};

template <bool Settled, class... A>
Future<gather_tuple_t<Settled, GatherArg<arg_value_t<A>, moves_result_v<A>>...>> gather_args(const char* api,
                                                                                               A&&... aws) {
  using R = gather_tuple_t<Settled, GatherArg<arg_value_t<A>, moves_result_v<A>>...>;
  QiEventLoop* seen = nullptr;
  (check_child(aws, seen, api), ...);
  QiEventLoop& loop = children_loop(seen);
  std::array<FutureStateBase*, sizeof...(A) + 1> handles{};
  std::size_t n = 0;
  auto note = [&](const auto& a) {
    if constexpr (!AwaitableArg<std::remove_cvref_t<decltype(a)>>::is_coro) handles[n++] = state_of(a);
  };
  (note(aws), ...);
  (void)note;  // gather() of nothing names no child
  const bool shared =
      shared_children(handles.data(), n, !(moved_uncopyable_v<arg_value_t<A>, moves_result_v<A>> || ...), api);
  std::array<StateRef<FutureStateBase>, sizeof...(A)> children{
      StateRef<FutureStateBase>(state_of(make_child(std::forward<A>(aws), loop)))...};
  auto* s =
      new TupleGather<Settled, GatherArg<arg_value_t<A>, moves_result_v<A>>...>(loop, std::move(children), shared);
  Future<R> out = FutureFromState<R>::adopt(s);
  s->start();
  return out;
}

template <bool Settled, class V>
Future<gather_vector_t<typename AwaitableArg<vector_element_t<V>>::value_type, Settled>> gather_vector(
    const char* api, V&& v) {
  using T = typename AwaitableArg<vector_element_t<V>>::value_type;
  QiEventLoop* seen = nullptr;
  for (const auto& a : v) check_child(a, seen, api);
  QiEventLoop& loop = children_loop(seen);
  constexpr bool kMove = vector_moves_result_v<V>;
  std::vector<StateRef<FutureStateBase>> children;
  children.reserve(v.size());
  const bool shared = vector_shared<kMove>(v, api);
  for (auto& a : v) {
    if constexpr (AwaitableArg<vector_element_t<V>>::is_coro)
      children.emplace_back(state_of(make_child(std::move(a), loop)));
    else
      children.emplace_back(state_of(a));
  }
  auto* s = new VectorGather<T, kMove, Settled>(loop, std::move(children), shared);
  Future<gather_vector_t<T, Settled>> out = FutureFromState<gather_vector_t<T, Settled>>::adopt(s);
  s->start();
  return out;
}

}  // namespace qi::detail
