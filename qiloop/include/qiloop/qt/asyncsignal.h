// -----------------------------------------------------------------------------
// File: qiloop/qt/asyncsignal.h
// -----------------------------------------------------------------------------
//
// qi::asyncsignal awaits the next emission of a Qt signal.
//
//   co_await qi::asyncsignal(button, &QPushButton::clicked);          // bool: the value
//   auto [code, status] = co_await qi::asyncsignal(proc, &QProcess::finished);  // std::tuple
//   co_await qi::asyncsignal(timer, &QTimer::timeout);                // void
//   if (auto v = co_await qi::asyncsignal(spin, &QSpinBox::valueChanged, 2s)) use(*v);
//
// What it yields: nothing (void) for a signal without arguments, the value
// for one argument, a std::tuple for several — decayed copies taken inside
// `emit` (a `const QString&` argument becomes a QString), so nothing refers
// to the emitter's stack afterwards. Qt's QPrivateSignal tag is not an
// argument. The timed form yields std::optional of that (std::monostate for
// no arguments): std::nullopt when the signal did not come within the
// timeout (a timer of the loop, so virtual clocks apply).
//
// Contract:
// - Lazy: creating the awaitable connects nothing; the co_await connects.
//   Emissions before it are not seen (qi::signal_stream buffers from its
//   creation).
// - One emission: the first after the co_await; the wait then disconnects,
//   inside that emit. Nothing stays connected once the co_await has returned
//   or thrown, whatever ended it.
// - The task resumes on its loop's thread through the ready queue, like any
//   future's waiter — also when the signal is emitted on another thread (a
//   std::thread or QThread emitting, or a sender living in another thread):
//   the arguments are copied there, under a mutex, and the loop is woken.
// - Cancelling the waiting task disconnects before cancel() returns: an
//   emission after it reaches nothing, and the co_await throws
//   qi::CancelledError. An emission that came first but whose task had not
//   resumed yet is dropped with the cancel (as asyncio's wait_for drops a
//   result when it cancels).
// - A sender destroyed before emitting ends the wait with
//   qi::SignalSourceDestroyed (a qi::RuntimeError); one already gone at the
//   co_await throws it at once. So does a connection cut under the wait by
//   someone else's QObject::disconnect naming no receiver (it would
//   otherwise wait forever). The end of the connection is watched through
//   the connection itself, not a second one to `destroyed`.
// - An awaitable is awaited once: a second co_await (or one of a moved-from
//   object) throws qi::RuntimeError; call qi::asyncsignal again instead.
// - Throws std::invalid_argument for a null sender (at the call);
//   qi::RuntimeError when awaited outside a task, or when Qt refuses the
//   member function as a signal.
// Thread-safety: create and await on the loop's thread; the sender may live
// and emit on any thread, but must not be destroyed while the co_await
// connects to it. Re-entrancy: an emission from inside the waiting task's
// own step (before it suspends) is not seen: the connection is made as it
// suspends.
#pragma once

#include <qiloop/detail/deadline.h>
#include <qiloop/qt/detail/signal.h>

#include <chrono>
#include <optional>
#include <tuple>
#include <type_traits>

namespace qi {

namespace detail {
// Builds what asyncsignal yields for one emission.
template <class Stored, class Item>
struct AsyncSignalMake {
  static constexpr const char* kApi = "qi::asyncsignal";
  template <std::size_t I, class... A>
  static Stored make(const A&... a) {
    if constexpr (std::is_same_v<Stored, Item>)
      return make_item<Item>(a...);
    else
      return Stored(std::in_place, make_item<Item>(a...));
  }
};

template <class S, class PMF>
using AsyncSignalSource = SignalSource<typename SignalOf<PMF>::Class, PMF>;

template <class S, class PMF>
AsyncSignalSource<S, PMF> async_signal_source(S* sender, PMF sig, const char* api) {
  static_assert(std::is_base_of_v<typename SignalOf<PMF>::Class, S>,
                "qiloop: the signal is not a member of the sender's class (or a base of it)");
  check_sender(sender, api);
  return {sender, sig};
}
}  // namespace detail

// qi::asyncsignal()
// An awaitable for the next emission of `sig` by `sender` (see the file
// comment for what it yields and its contract).
template <class S, class PMF>
auto asyncsignal(S* sender, PMF sig) {
  using Item = detail::SignalItem<PMF>;
  using V = detail::SignalValue<PMF>;
  using Stored = std::conditional_t<std::is_void_v<V>, std::monostate, V>;
  return detail::FirstSignal<V, detail::AsyncSignalMake<Stored, Item>, detail::AsyncSignalSource<S, PMF>>(
      std::tuple(detail::async_signal_source(sender, sig, "qi::asyncsignal")));
}

// qi::asyncsignal(sender, sig, timeout)
// The same, yielding std::optional<item> (item: std::monostate for a signal
// without arguments): std::nullopt when `timeout` passed first, after which
// nothing stays connected.
template <class S, class PMF, class Rep, class Period>
auto asyncsignal(S* sender, PMF sig, std::chrono::duration<Rep, Period> timeout) {
  using Item = detail::SignalItem<PMF>;
  using V = std::optional<Item>;
  return detail::FirstSignal<V, detail::AsyncSignalMake<V, Item>, detail::AsyncSignalSource<S, PMF>>(
      std::tuple(detail::async_signal_source(sender, sig, "qi::asyncsignal")),
      detail::saturating_duration(timeout, "qi::asyncsignal", "timeout"), V());
}

}  // namespace qi
