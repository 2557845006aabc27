// net/stream_cores.h — the shared state behind qi::StreamReader and
// qi::StreamWriter handles, and the protocol that feeds them from a
// transport (asyncio's StreamReader internals, FlowControlMixin and
// StreamReaderProtocol). Internal; the contract is in <qiloop/net/streams.h>.
//
// Ownership: the loop owns the transport, the transport its StreamProtocol;
// the protocol, the handles and the coroutines running a read or a drain
// share the cores (std::shared_ptr). The cores point at the transport only
// while the protocol lives: ~StreamProtocol forgets it, whether it goes
// after connection_lost or with loop.close().
#pragma once

#include <qiloop/detail/waiter_queue.h>
#include <qiloop/export.h>
#include <qiloop/net/address.h>
#include <qiloop/net/protocols.h>
#include <qiloop/net/streams.h>
#include <qiloop/net/transport.h>

#include <QtCore/QByteArray>
#include <QtCore/QByteArrayView>

#include <cstddef>
#include <exception>
#include <memory>
#include <span>

namespace qi::detail {

// The reader's bytes: [begin_, end_) of one allocation. Reads advance
// begin_ without moving anything; the live bytes move to the front only
// when the tail lacks room and they fill at most half the allocation (else
// it doubles), so each byte is moved a bounded number of times on average
// however the reads slice it: reading a million short lines is linear. A
// take() of half the allocation or more hands the allocation itself over
// (a QByteArray starting at begin_; the rest, at most as many bytes as were
// taken, moves to a new one), so a 64 KiB frame is never copied; a smaller
// take() copies what it takes, so a short read does not carry the buffer's
// memory away. A large allocation (over 1 MiB) whose live bytes fill a
// quarter of it or less is traded for a smaller one at the next take() or
// compaction, so one big read does not keep its memory for the stream's life.
class QILOOP_EXPORT ReadBuffer {  // exported for its test
 public:
  qsizetype size() const noexcept { return end_ - begin_; }
  qsizetype capacity() const noexcept { return capacity_; }
  bool empty() const noexcept { return end_ == begin_; }
  QByteArrayView view() const noexcept { return {store_.constData() + begin_, size()}; }
  // The first n bytes (n <= size()), handed over or copied out, and dropped.
  QByteArray take(qsizetype n);
  void drop(qsizetype n) noexcept;
  void clear() noexcept { drop(size()); }
  // At least `room` writable bytes after the data; commit() what was written.
  std::span<std::byte> prepare(qsizetype room);
  void commit(qsizetype n) noexcept { end_ += n; }
  void append(QByteArrayView data);

 private:
  // Whether an allocation for `needed` bytes should be smaller than this one.
  bool oversized(qsizetype needed) const noexcept;
  // Moves the live bytes to a new allocation of `capacity` (>= size());
  // returns the old one.
  QByteArray reallocate(qsizetype capacity);
  // The capacity for `live` bytes left in a buffer that was this one's size.
  qsizetype kept_capacity(qsizetype live) const noexcept;

  // Its size() is the capacity. Never shared: take() gives it away whole.
  QByteArray store_;
  qsizetype capacity_ = 0;
  qsizetype begin_ = 0;
  qsizetype end_ = 0;
};

// A waiter woken with an outcome: null to go on, or the error its
// co_await must throw (asyncio's waiter.set_exception).
struct ErrorWaiter : WaiterQueue::Entry {
  using WaiterQueue::Entry::Entry;
  std::exception_ptr error;
  // Wakes it unless it is done; returns whether it did.
  bool wake_with(std::exception_ptr e) {
    if (done()) return false;
    error = std::move(e);
    return wake();
  }
  // co_await it, then throw what it was woken with.
  void rethrow_error() const {
    if (error) std::rethrow_exception(error);
  }
};

// asyncio.StreamReader's state. Invariant: `waiters` holds at most one
// entry (one coroutine waits for data at a time); it leaves the queue as
// soon as it is woken (asyncio's `self._waiter = None`), so another read
// may wait while the woken one has not run yet.
class ReaderCore {
 public:
  explicit ReaderCore(std::size_t limit);
  // The limit as a qsizetype; qi::ValueError for 0.
  static qsizetype checked_limit(std::size_t limit);

  void feed_data(QByteArrayView data);
  void feed_eof();
  void set_exception(std::exception_ptr error);
  // BufferedProtocol's pair: the transport reads straight into the buffer.
  std::span<std::byte> get_buffer();
  void buffer_updated(std::size_t n);

  // asyncio's _wait_for_data: returns once data, EOF or an error came
  // (throwing the error). Resumes a paused transport first. qi::RuntimeError
  // when another coroutine is waiting.
  Coro<void> wait_for_data(const char* api);
  void maybe_resume_transport();
  // The last handle let go of the stream: closes the transport if it is
  // still open. Never throws: a failing close() is reported to the loop's
  // exception handler (`owner` names the handle).
  void close_transport_for(const char* owner) noexcept;
  void throw_if_failed() const {
    if (exception) std::rethrow_exception(exception);
  }

  ReadBuffer buffer;
  const qsizetype limit;
  bool eof = false;
  bool paused = false;          // we paused the transport's reading
  bool reading_to_eof = false;  // read(-1) collects in the buffer: no pausing
  std::exception_ptr exception;
  Transport* transport = nullptr;
  QiEventLoop* loop = nullptr;  // the transport's, set with it by StreamProtocol

 private:
  void data_arrived();
  void wake_waiter(std::exception_ptr error);
  WaiterQueue waiters_;
};

// What transport() returns once the connection is lost: the addresses it
// had, and nothing else to do (writes dropped, is_closing() true).
class DetachedTransport final : public Transport {
 public:
  DetachedTransport() = default;
  ~DetachedTransport() override = default;
  void remember(const Transport& t);

  void write(QByteArrayView) override {}
  void writelines(std::span<const QByteArrayView>) override {}
  using Transport::writelines;
  void write_eof() override {}
  bool can_write_eof() const noexcept override { return can_write_eof_; }
  void close() override {}
  void abort() override {}
  bool is_closing() const noexcept override { return true; }
  void pause_reading() override {}
  void resume_reading() override {}
  bool is_reading() const noexcept override { return false; }
  std::size_t get_write_buffer_size() const noexcept override { return 0; }
  void set_write_buffer_limits(std::optional<std::size_t>, std::optional<std::size_t>) override {}
  std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept override { return limits_; }
  SocketAddress peername() const override { return peer_; }
  SocketAddress sockname() const override { return local_; }
  int fileno() const noexcept override { return -1; }
  BaseProtocol& get_protocol() const noexcept override { return protocol_; }

 private:
  SocketAddress peer_;
  SocketAddress local_;
  std::pair<std::size_t, std::size_t> limits_{0, 0};
  bool can_write_eof_ = false;
  mutable BaseProtocol protocol_;
};

// The writer's side of a connection: asyncio's FlowControlMixin and the
// protocol's `_closed` future. Invariant: `transport` is the live transport
// or null (then `detached` stands in); drain waiters exist only while
// `paused`.
class WriterCore {
 public:
  explicit WriterCore(std::shared_ptr<ReaderCore> r) : reader(std::move(r)) {}

  Transport& current() noexcept { return transport ? *transport : detached; }

  // FlowControlMixin's hooks; connection_lost also completes wait_closed.
  void pause_writing() noexcept { paused = true; }
  void resume_writing();
  void connection_lost(std::exception_ptr error);
  // StreamWriter::drain (with _drain_helper) and wait_closed; the frames
  // hold the core.
  static Coro<void> drain(std::shared_ptr<WriterCore> self);
  static Coro<void> wait_closed(std::shared_ptr<WriterCore> self);
  // StreamWriter::start_tls: drains, then loop.start_tls, which retargets
  // the cores (StreamProtocol::replace_transport).
  static Coro<void> start_tls(std::shared_ptr<WriterCore> self, std::shared_ptr<SslContext> context,
                              TlsOptions options);
  // The protocol goes (after connection_lost, or with loop.close()).
  void detach() noexcept;

  Transport* transport = nullptr;
  DetachedTransport detached;
  std::shared_ptr<ReaderCore> reader;
  int handles = 0;  // StreamWriter handles: the last one closes the transport
  bool paused = false;
  bool lost = false;
  bool closed = false;
  std::exception_ptr closed_error;

 private:
  WaiterQueue drain_waiters_;
  WaiterQueue close_waiters_;
};

// asyncio's StreamReaderProtocol: a BufferedProtocol, so the transport
// reads straight into the reader's buffer.
class StreamProtocol final : public BufferedProtocol {
 public:
  StreamProtocol(std::shared_ptr<WriterCore> writer, std::shared_ptr<ClientConnected> client_connected);
  ~StreamProtocol() override;

  void connection_made(Transport& transport) override;
  void connection_lost(std::exception_ptr error) override;
  void pause_writing() override { writer_->pause_writing(); }
  void resume_writing() override { writer_->resume_writing(); }
  std::span<std::byte> get_buffer(std::size_t) override { return writer_->reader->get_buffer(); }
  void buffer_updated(std::size_t n) override { writer_->reader->buffer_updated(n); }
  bool eof_received() override;
  // loop.start_tls swapped the transport under this protocol (asyncio's
  // _replace_transport): the reader and the writer follow it, so that no
  // later write goes out in clear.
  void replace_transport(Transport& transport);

 private:
  void start_client_task();

  std::shared_ptr<WriterCore> writer_;
  std::shared_ptr<ClientConnected> client_connected_;
  bool over_ssl_ = false;  // asyncio's _over_ssl: eof_received cannot keep a TLS transport half-open
};

// Makes the handles of the cores (their constructors are private).
struct StreamAccess {
  static StreamReader reader(std::shared_ptr<ReaderCore> core) noexcept { return StreamReader(std::move(core)); }
  static StreamWriter writer(std::shared_ptr<WriterCore> core) noexcept { return StreamWriter(std::move(core)); }
};

}  // namespace qi::detail
