// -----------------------------------------------------------------------------
// File: qiloop/qt/signal_stream.h
// -----------------------------------------------------------------------------
//
// qi::SignalStream delivers every emission of a Qt signal, in order, to one
// reading task.
//
//   qi::SignalStream<int> s = qi::signal_stream(spin, &QSpinBox::valueChanged);
//   while (std::optional<int> v = co_await s.next()) apply(*v);
//   // std::nullopt: the sender was destroyed and everything before was read
//
// Items: std::monostate for a signal without arguments, the value for one,
// a std::tuple for several — decayed copies taken inside `emit`, as
// qi::asyncsignal's (<qiloop/qt/asyncsignal.h>).
//
// Contract:
// - Eager: qi::signal_stream connects at once and buffers from then on,
//   also before any task reads (and before a loop runs).
// - Bounded: at most `capacity` items wait (default kDefaultCapacity).
//   Overflow policy: the OLDEST item is dropped to make room for the new
//   one, and counted: dropped() says how many went (a stream of states or
//   progress values keeps the latest; a consumer that must see every item
//   sizes the buffer for its bursts and checks dropped() == 0).
// - Order: items arrive in the order of the emissions (emissions on several
//   threads: in the order they took the stream's mutex).
// - End: once the sender is destroyed (or the stream's connection cut by
//   someone else's QObject::disconnect), next() yields what was buffered,
//   then std::nullopt on every call. Destroying the stream disconnects it (a task
//   still waiting in next() then gets std::nullopt).
// - next() on a ready item neither suspends nor allocates: the awaiter is a
//   plain object taking the item under the stream's mutex. Waiting: one
//   future from the loop's recycling pool per wait; an emission on the
//   loop's thread completes it inside emit, one on another thread posts one
//   wake-up to the loop (not one per emission). Emitting allocates nothing
//   once the ring has grown to its working size.
// - Cancelling a task waiting in next() loses nothing: the co_await throws
//   qi::CancelledError and the items (also one that had woken it) stay
//   buffered for the next next().
// - A copy of an emission's arguments that throws never reaches Qt's emit:
//   that item is lost and counted in dropped(), and the next next() throws
//   the exception (the first, when several came before a read); the stream
//   goes on.
// - One task reads at a time: a second concurrent next() throws
//   qi::RuntimeError. A default-constructed or moved-from stream yields
//   std::nullopt.
// Thread-safety: the sender may emit on any thread; create, read and destroy
// the stream on one thread (the loop's). size(), dropped() and ended() are
// safe on any thread.
#pragma once

#include <qiloop/qt/detail/signal_stream.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <type_traits>
#include <utility>

namespace qi {

// qi::SignalStream<Item>
template <class Item>
class SignalStream {
 public:
  static constexpr std::size_t kDefaultCapacity = 1024;

  // SignalStream::SignalStream()
  // An empty stream: next() yields std::nullopt. Streams are made by
  // qi::signal_stream; they move, not copy.
  SignalStream() noexcept = default;
  SignalStream(SignalStream&& o) noexcept : buf_(std::exchange(o.buf_, nullptr)) {}
  SignalStream& operator=(SignalStream&& o) noexcept {
    if (this != &o) {
      reset();
      buf_ = std::exchange(o.buf_, nullptr);
    }
    return *this;
  }
  SignalStream(const SignalStream&) = delete;
  SignalStream& operator=(const SignalStream&) = delete;
  // SignalStream::~SignalStream()
  // Disconnects; buffered items are dropped.
  ~SignalStream() { reset(); }

  // SignalStream::next()
  // co_await it: the oldest buffered item, waiting for one when none is;
  // std::nullopt once the sender is gone and the buffer drained. Loop thread.
  detail::SignalNextAwaiter<Item> next() noexcept { return detail::SignalNextAwaiter<Item>(buf_); }

  // SignalStream::size()
  // SignalStream::dropped()
  // SignalStream::capacity()
  // Items waiting; items dropped by the overflow policy so far; the bound.
  std::size_t size() const { return buf_ ? buf_->size() : 0; }
  uint64_t dropped() const { return buf_ ? buf_->dropped() : 0; }
  std::size_t capacity() const noexcept { return buf_ ? buf_->capacity() : 0; }

  // SignalStream::ended()
  // True when next() would yield std::nullopt at once: the sender is gone
  // (or the stream is empty) and nothing is buffered.
  bool ended() const { return buf_ ? buf_->ended() : true; }

  // Internal: takes over a new buffer's reference.
  explicit SignalStream(detail::SignalBuffer<Item>* b) noexcept : buf_(b) {}

 private:
  void reset() noexcept {
    if (buf_) {
      buf_->close();
      std::exchange(buf_, nullptr)->release();
    }
  }
  detail::SignalBuffer<Item>* buf_ = nullptr;
};

// qi::signal_stream()
// Connects to `sig` of `sender` and returns the stream of its emissions
// (see the file comment). Throws std::invalid_argument for a null sender or
// a capacity of 0, qi::RuntimeError when Qt refuses the member function as a
// signal.
template <class S, class PMF>
SignalStream<detail::SignalItem<PMF>> signal_stream(S* sender, PMF sig,
                                                    std::size_t capacity =
                                                        SignalStream<detail::SignalItem<PMF>>::kDefaultCapacity) {
  using Item = detail::SignalItem<PMF>;
  static_assert(std::is_base_of_v<typename detail::SignalOf<PMF>::Class, S>,
                "qiloop: qi::signal_stream: the signal is not a member of the sender's class (or a base of it)");
  detail::check_sender(sender, "qi::signal_stream");
  detail::check_capacity(capacity, "qi::signal_stream");
  auto* buf = new detail::SignalBuffer<Item>(capacity);
  SignalStream<Item> s(buf);  // owns it from here
  if (!buf->connect(sender, sig)) std::rethrow_exception(detail::not_a_signal_error("qi::signal_stream"));
  return s;
}

}  // namespace qi
