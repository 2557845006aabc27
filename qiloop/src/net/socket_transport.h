// net/socket_transport.h — the selector transport of a connected stream
// socket, TCP or Unix (asyncio's _SelectorSocketTransport). Internal; the
// contract is in <qiloop/net/transport.h> and <qiloop/net/protocols.h>.
//
// Invariants:
// - The reader is registered exactly while is_reading() and the peer's EOF
//   has not been read; the writer exactly while the buffer is not empty.
// - lost_ is set once, when connection_lost is scheduled (or, after a
//   flushing close(), called); from then on no protocol callback but
//   connection_lost runs, and nothing is sent.
// - The transport is registered (by fd, per thread) from open() until it is
//   destroyed: right after connection_lost, or by loop.close().
#pragma once

#include <qiloop/event_loop.h>
#include <qiloop/net/address.h>
#include <qiloop/net/protocols.h>
#include <qiloop/net/transport.h>

#include <QtCore/QByteArray>

#include <cstddef>
#include <deque>
#include <exception>
#include <memory>
#include <string>

namespace qi::detail {

class SocketTransport;

// What a server learns of the transports it accepted (asyncio's
// Server._attach / _detach): attach() from the transport's constructor,
// detach() from its destructor, after its fd is closed.
class ConnectionTracker {
 public:
  virtual void attach(SocketTransport* transport) noexcept = 0;
  virtual void detach(SocketTransport* transport) noexcept = 0;

 protected:
  ~ConnectionTracker() = default;
};

class SocketTransport final : public Transport {
 public:
  // Takes fd (a connected, non-blocking stream socket) and the protocol the
  // factory makes, calls connection_made, starts reading. The fd is closed
  // when the factory throws. When connection_made throws, the transport is
  // aborted (connection_lost follows) and the exception rethrown. A server
  // passes itself as tracker: it keeps the tracker alive until the
  // transport is destroyed.
  static SocketTransport* open(QiEventLoop& loop, int fd, QiEventLoop::ProtocolFactory& factory,
                               std::shared_ptr<ConnectionTracker> tracker = nullptr);

  void write(QByteArrayView data) override;
  void writelines(std::span<const QByteArrayView> pieces) override;
  using Transport::writelines;
  void write_eof() override;
  bool can_write_eof() const noexcept override { return true; }
  void close() override;
  void abort() override { force_close(nullptr); }
  bool is_closing() const noexcept override { return closing_; }
  void pause_reading() override;
  void resume_reading() override;
  bool is_reading() const noexcept override { return !paused_ && !closing_; }
  std::size_t get_write_buffer_size() const noexcept override { return buffered_; }
  void set_write_buffer_limits(std::optional<std::size_t> high, std::optional<std::size_t> low) override;
  std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept override { return {low_, high_}; }
  SocketAddress peername() const override { return peer_; }
  SocketAddress sockname() const override { return local_; }
  int fileno() const noexcept override { return fd_; }
  BaseProtocol& get_protocol() const noexcept override { return *protocol_; }

  // loop.close(): destroys the transports of `loop` still registered.
  static void destroy_all(QiEventLoop& loop) noexcept;

 private:
  SocketTransport(QiEventLoop& loop, int fd, std::unique_ptr<BaseProtocol> protocol,
                  std::shared_ptr<ConnectionTracker> tracker);
  ~SocketTransport() override;

  void read_ready();
  void read_into_protocol_buffer();
  void read_into_view();
  void on_eof();
  void write_ready();
  bool check_writable(const char* api);
  void buffer_rest(QByteArrayView rest);
  void start_writer();
  void consume(std::size_t n);

  void io_failed(int err, const char* what);
  void protocol_failed(const char* message);
  void report(const std::string& message, std::exception_ptr error);
  void force_close(std::exception_ptr error);
  void call_connection_lost(std::exception_ptr error);  // destroys this
  void schedule_connection_lost(std::exception_ptr error);
  void maybe_pause_protocol();
  void maybe_resume_protocol();
  std::string describe() const;

  QiEventLoop& loop_;
  const int fd_;
  std::unique_ptr<BaseProtocol> protocol_;
  Protocol* stream_ = nullptr;          // exactly one of these two is set
  BufferedProtocol* buffered_protocol_ = nullptr;
  SocketAddress peer_;
  SocketAddress local_;
  std::shared_ptr<ConnectionTracker> tracker_;  // the server that accepted it, if any

  // Pieces not sent yet; front_sent_ bytes of the first are sent already.
  std::deque<QByteArray> buffer_;
  std::size_t front_sent_ = 0;
  std::size_t buffered_ = 0;
  std::size_t high_ = kDefaultHigh;
  std::size_t low_ = kDefaultHigh / 4;

  bool closing_ = false;
  bool lost_ = false;
  bool paused_ = false;          // pause_reading()
  bool read_eof_ = false;        // the peer's EOF was read
  bool write_eof_ = false;       // write_eof() called
  bool protocol_paused_ = false; // pause_writing() called, resume_writing() not yet
  int dropped_writes_ = 0;

  static constexpr std::size_t kDefaultHigh = 64 * 1024;
};

// sock_*'s check (asyncio's _ensure_fd_no_transport): throws
// qi::RuntimeError when a transport of this thread owns fd.
void ensure_fd_no_transport(int fd, const char* api);

}  // namespace qi::detail
