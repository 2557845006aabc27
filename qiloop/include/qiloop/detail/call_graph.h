// qiloop/detail/call_graph.h — what the await graph records while coroutines
// run: the site of each Coro's current co_await (one store per co_await),
// and the chain a task's exception escaped from. Internal; the contract is in
// <qiloop/call_graph.h>.
#pragma once

#include <qiloop/export.h>

#include <cstdint>
#include <exception>
#include <string>
#include <vector>
#if __has_include(<source_location>)
#include <source_location>
#endif

namespace qi::detail {

struct PromiseBase;
class FutureStateBase;

// AwaitSite: a source position, taken at the call site by a default
// argument (`AwaitSite site = AwaitSite::current()`). Where the library has
// std::source_location (g++; clang 15+), it is that: one pointer to a static
// record, so recording it is one store. clang 14 with libstdc++ has no
// __builtin_source_location, hence no std::source_location: the fallback
// holds the three values __builtin_FILE/LINE/FUNCTION give (three stores),
// and clang's function name is the bare one ("fetch", not "qi::Coro<int>
// ns::fetch(int)").
#if defined(__cpp_lib_source_location)
using AwaitSite = std::source_location;
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
#endif

// The chain a task's coroutines were suspended in when an exception left
// its innermost coroutine (innermost first), kept for the reports made once
// the frames are gone ("Task exception was never retrieved").
struct EscapeRecord {
  std::exception_ptr exception;
  std::vector<AwaitSite> sites;
};

// Called by PromiseBase::unhandled_exception (off the hot path): inside a
// task, records the chain down to `from` unless this very exception was
// already recorded deeper down.
QILOOP_EXPORT void note_exception_escaped(PromiseBase& from) noexcept;

// For the loop's reports: "\n" and the graph of `s` when it is a task, else
// "" (src/call_graph.cpp).
std::string call_graph_for_report(FutureStateBase* s) noexcept;

}  // namespace qi::detail
