// qiloop/detail/call_graph.h — what the await graph records while coroutines
// run: the site of each Coro's current co_await (one store per co_await),
// and the chain a task's exception escaped from. Internal; the contract is in
// <qiloop/call_graph.h>.
#pragma once

#include <qiloop/export.h>

#include <bit>
#include <coroutine>
#include <cstdint>
#include <exception>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>
#if __has_include(<source_location>)
#include <source_location>
#endif

namespace qi::detail {

struct PromiseBase;
class FutureStateBase;

// AwaitSite: a source position, taken at the call site by a default
// argument (`AwaitSite site = AwaitSite::current()`). Where the library has
// std::source_location (g++; clang 15+), it is that. clang 14 with
// libstdc++ has no __builtin_source_location, hence no std::source_location:
// the fallback holds the three values __builtin_FILE/LINE/FUNCTION give, and
// clang's function name is the bare one ("fetch", not "ns::fetch(int)").
//
// SiteRecord: what a coroutine frame keeps of its current co_await's site
// (PromiseBase::where), recorded by a default argument spelled
// QILOOP_DETAIL_SITE_HERE. With std::source_location it is the address of
// the static record one std::source_location wraps — a scalar: a
// class-type argument would be a temporary, which g++ keeps in the
// coroutine frame across the co_await (a second store). So recording is one
// store (three with clang 14's fallback).
#if defined(__cpp_lib_source_location)
using AwaitSite = std::source_location;
using SiteRecord = decltype(__builtin_source_location());
static_assert(sizeof(AwaitSite) == sizeof(SiteRecord) && std::is_trivially_copyable_v<AwaitSite>,
              "qiloop: std::source_location is expected to be one pointer to its static record");
#define QILOOP_DETAIL_SITE_HERE __builtin_source_location()
inline AwaitSite to_site(SiteRecord r) noexcept { return std::bit_cast<AwaitSite>(r); }
#else
class AwaitSite {
 public:
  constexpr AwaitSite() noexcept = default;
  static constexpr AwaitSite current(const char* file = __builtin_FILE(), std::uint_least32_t line = __builtin_LINE(),
                                     const char* function = __builtin_FUNCTION()) noexcept {
    AwaitSite s;
    s.file_ = file;
    s.function_ = function;
    s.line_ = line;
    return s;
  }
  constexpr const char* file_name() const noexcept { return file_; }
  constexpr const char* function_name() const noexcept { return function_; }
  constexpr std::uint_least32_t line() const noexcept { return line_; }

 private:
  const char* file_ = "";
  const char* function_ = "";
  std::uint_least32_t line_ = 0;
};
using SiteRecord = AwaitSite;
#define QILOOP_DETAIL_SITE_HERE ::qi::detail::AwaitSite::current()
inline AwaitSite to_site(SiteRecord r) noexcept { return r; }
#endif

// What PromiseBase::await_transform hands back to the co_await: the
// awaiter, obtained as the co_await would (member or free operator
// co_await), or a reference to the awaitable when it is an awaiter itself.
// Never the awaitable as a reference: g++ 12 copies an awaiter that
// await_transform returns by reference (it would then suspend on a copy, and
// a move-only awaiter would not compile); clang does not.
template <class T>
struct AwaiterRef {
  T* awaiter;
  bool await_ready() noexcept(noexcept(awaiter->await_ready())) { return awaiter->await_ready(); }
  template <class P>
  decltype(auto) await_suspend(std::coroutine_handle<P> h) noexcept(noexcept(awaiter->await_suspend(h))) {
    return awaiter->await_suspend(h);
  }
  decltype(auto) await_resume() noexcept(noexcept(awaiter->await_resume())) { return awaiter->await_resume(); }
};

// The customization point that makes a type of another library awaitable
// in a qi::Coro without a global operator co_await (which would clash with
// that library's own, e.g. QCoro's for QFuture): a specialization for the
// type (without cv or reference) with a static adapt(A&&) returning the
// awaiter. It wins over any operator co_await, inside qi::Coro only; declare
// it before the first co_await of that type in every translation unit (the
// header that defines it is in the umbrella: <qiloop/qt/qfuture.h>).
template <class T>
struct AwaitAdapter {};

// An operator co_await that returns a reference hands on that awaiter
// itself, through an AwaiterRef (for the same reason); one that returns a
// value hands it on as it is.
template <class A>
decltype(auto) awaiter_for(A&& a) {
  if constexpr (requires { AwaitAdapter<std::remove_cvref_t<A>>::adapt(static_cast<A&&>(a)); }) {
    return AwaitAdapter<std::remove_cvref_t<A>>::adapt(static_cast<A&&>(a));
  } else if constexpr (requires { static_cast<A&&>(a).operator co_await(); }) {
    if constexpr (std::is_reference_v<decltype(static_cast<A&&>(a).operator co_await())>) {
      auto&& awaiter = static_cast<A&&>(a).operator co_await();
      return AwaiterRef<std::remove_reference_t<decltype(awaiter)>>{&awaiter};
    } else {
      return static_cast<A&&>(a).operator co_await();
    }
  } else if constexpr (requires { operator co_await(static_cast<A&&>(a)); }) {
    if constexpr (std::is_reference_v<decltype(operator co_await(static_cast<A&&>(a)))>) {
      auto&& awaiter = operator co_await(static_cast<A&&>(a));
      return AwaiterRef<std::remove_reference_t<decltype(awaiter)>>{&awaiter};
    } else {
      return operator co_await(static_cast<A&&>(a));
    }
  } else if constexpr (requires { a.await_ready(); }) {
    return AwaiterRef<std::remove_reference_t<A>>{&a};
  } else {
    // An operator co_await this header cannot see (declared after it, in
    // the awaiting code's scope, for a type of another namespace): the
    // co_await looks it up from its own scope, as without await_transform.
    return static_cast<A&&>(a);
  }
}

// The chain a task's coroutines were suspended in when an exception left
// its innermost coroutine (innermost first), kept for the reports made once
// the frames are gone ("Task exception was never retrieved"). A plain
// future's record says where its exception came from instead: `origin`
// ("work submitted at file:line (function)", run_in_executor's job) and the
// one site of it.
struct EscapeRecord {
  std::exception_ptr exception;
  std::vector<SiteRecord> sites;
  std::string origin;
  // A task's: the record of the future its exception was rethrown from
  // (co_await), when that future had one.
  std::shared_ptr<const EscapeRecord> cause;
};

// Called when a plain future with a record rethrows its exception (on the
// loop's thread): the next note_exception_escaped for the same exception
// links the record as its cause.
QILOOP_EXPORT void note_rethrown(std::shared_ptr<const EscapeRecord> record) noexcept;

// Called by PromiseBase::unhandled_exception (off the hot path): inside a
// task, records the chain down to `from` unless this very exception was
// already recorded deeper down.
QILOOP_EXPORT void note_exception_escaped(PromiseBase& from) noexcept;

// For the loop's reports: "\n" and the graph of `s` when it is a task, else
// "" (src/call_graph.cpp).
std::string call_graph_for_report(FutureStateBase* s) noexcept;

}  // namespace qi::detail
