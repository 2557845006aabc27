// -----------------------------------------------------------------------------
// File: qiloop/qt/multisignal.h
// -----------------------------------------------------------------------------
//
// qi::multisignal awaits the first of several signals and says which fired.
//
//   auto r = co_await qi::multisignal(std::pair{reply, &Reply::finished},
//                                     std::pair{reply, &Reply::errorOccurred},
//                                     std::pair{&cancel, &QPushButton::clicked});
//   switch (r.index()) {
//     case 0: ...;                          // std::get<0>(r): std::monostate
//     case 1: show(std::get<1>(r)); ...;    // the error code
//     case 2: ...;                          // std::get<2>(r): bool (checked)
//   }
//
// It yields a std::variant with one alternative per source, in argument
// order — std::monostate for a signal without arguments, the value for one,
// a std::tuple for several (decayed copies, as qi::asyncsignal) — built
// with std::in_place_index, so two sources of the same type stay apart:
// index() is the source that fired.
//
// Contract: qi::asyncsignal's (<qiloop/qt/asyncsignal.h>) for each source,
// with these decisions: the first emission of any source wins and every
// connection goes inside that emit; cancelling the waiting task cuts them
// all before cancel() returns; a source destroyed before any emitted ends
// the wait with qi::SignalSourceDestroyed (a wait that must outlive one of
// its sources should watch that source's `destroyed` as one more source);
// a null sender throws std::invalid_argument. Awaited once. Thread-safety
// and re-entrancy: as qi::asyncsignal's.
#pragma once

#include <qiloop/qt/detail/signal.h>

#include <cstddef>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

namespace qi {

namespace detail {
// Builds the variant's alternative I for one emission of source I.
template <class Variant>
struct MultiSignalMake {
  static constexpr const char* kApi = "qi::multisignal";
  template <std::size_t I, class... A>
  static Variant make(const A&... a) {
    return Variant(std::in_place_index<I>, make_item<std::variant_alternative_t<I, Variant>>(a...));
  }
};

template <class S, class PMF>
SignalSource<typename SignalOf<PMF>::Class, PMF> multi_signal_source(const std::pair<S*, PMF>& p) {
  static_assert(std::is_base_of_v<typename SignalOf<PMF>::Class, S>,
                "qiloop: qi::multisignal: a signal is not a member of its sender's class (or a base of it)");
  check_sender(p.first, "qi::multisignal");
  return {p.first, p.second};
}
}  // namespace detail

// qi::multisignal()
// An awaitable for the first emission among the sources, each a
// std::pair{sender, &Class::signal} (see the file comment).
template <class... S, class... PMF>
auto multisignal(std::pair<S*, PMF>... sources) {
  static_assert(sizeof...(S) >= 1, "qiloop: qi::multisignal needs at least one std::pair{sender, &Class::signal}");
  using V = std::variant<detail::SignalItem<PMF>...>;
  return detail::FirstSignal<V, detail::MultiSignalMake<V>, detail::SignalSource<typename detail::SignalOf<PMF>::Class, PMF>...>(
      std::tuple(detail::multi_signal_source(sources)...));
}

}  // namespace qi
