// net/stream_transport.h — qi::Transport over one fd: the read and write
// paths the socket transport and the pipe transports share (asyncio's
// _SelectorSocketTransport, _UnixReadPipeTransport and
// _UnixWritePipeTransport have the same shape). Internal; the contracts are
// in <qiloop/net/transport.h> and <qiloop/net/pipes.h>.
//
// Invariants (beside FdTransport's):
// - The reader is registered exactly while is_reading() and no EOF was
//   read (a write pipe's reader watches for its peer's close instead); the
//   writer exactly while the buffer is not empty.
// - A transport that does not read (a write pipe) or does not write (a
//   read pipe) throws qi::RuntimeError from the other direction's calls.
#pragma once

#include "net/fd_transport.h"
#include "net/write_buffer.h"

#include <qiloop/event_loop.h>
#include <qiloop/net/address.h>
#include <qiloop/net/protocols.h>
#include <qiloop/net/transport.h>

#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <utility>

namespace qi::detail {

// set_protocol's check (the socket, pipe and TLS transports): a
// qi::Protocol or a qi::BufferedProtocol; qi::ValueError naming api
// otherwise.
std::unique_ptr<BaseProtocol> checked_stream_protocol(std::unique_ptr<BaseProtocol> protocol, const char* api);

class StreamTransport : public FdTransport, public Transport {
 public:
  void write(QByteArrayView data) override { writelines(std::span<const QByteArrayView>(&data, 1)); }
  void writelines(std::span<const QByteArrayView> pieces) override;
  using Transport::writelines;
  void close() override { close_transport(); }
  void abort() override { force_close(nullptr); }
  bool is_closing() const noexcept override { return closing_; }
  void pause_reading() override;
  void resume_reading() override;
  bool is_reading() const noexcept override { return reads_ && !paused_ && !closing_; }
  std::size_t get_write_buffer_size() const noexcept override { return buffer_.size(); }
  void set_write_buffer_limits(std::optional<std::size_t> high, std::optional<std::size_t> low) override {
    set_limits(high, low, buffer_.size());
  }
  std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept override { return limits(); }
  SocketAddress peername() const override { return peer_; }
  SocketAddress sockname() const override { return local_; }
  int fileno() const noexcept override { return fd_; }
  BaseProtocol& get_protocol() const noexcept override { return *protocol_; }
  std::unique_ptr<BaseProtocol> set_protocol(std::unique_ptr<BaseProtocol> protocol) override {
    return replace_protocol(checked_stream_protocol(std::move(protocol), "set_protocol"));
  }
  // set_protocol unchecked (start_tls, net/ssl_protocol.cpp): protocol
  // takes the place of the current one, which is returned.
  std::unique_ptr<BaseProtocol> replace_protocol(std::unique_ptr<BaseProtocol> protocol);
  // start_tls: whether write_eof() was called; whether the EOF was read.
  bool wrote_eof() const noexcept { return write_eof_; }
  bool read_eof() const noexcept { return read_eof_; }

 protected:
  enum class Direction { kBoth, kRead, kWrite };

  // A transport of the protocol the factory makes (the fd is closed when
  // the factory throws), started: connection_made, then the watches. When
  // connection_made throws, the transport is aborted (connection_lost
  // follows) and the exception rethrown.
  template <class T, class... Args>
  static T* open(QiEventLoop& loop, int fd, QiEventLoop::ProtocolFactory& factory, Args&&... args) {
    auto* t = new T(loop, fd, make_protocol(fd, factory), std::forward<Args>(args)...);
    t->start();
    return t;
  }

  StreamTransport(QiEventLoop& loop, int fd, std::unique_ptr<BaseProtocol> protocol, FdKind kind,
                  Direction direction);
  ~StreamTransport() override;

  // The EOF was read (the reader is still registered).
  virtual void on_eof() = 0;
  // The buffer is empty again, not closing.
  virtual void on_flushed() {}
  // After connection_made: what to watch (default: read when reading).
  virtual void start_watching();
  // eof_received of the protocol, whichever kind: false to close.
  bool protocol_eof_received();
  void read_ready();
  void check_reads(const char* api) const;
  void check_writes(const char* api) const;
  std::string describe() const override;

  WriteBuffer buffer_;
  bool paused_ = false;     // pause_reading()
  bool read_eof_ = false;   // the EOF was read
  bool write_eof_ = false;  // write_eof() called (sockets)

 private:
  static std::unique_ptr<BaseProtocol> make_protocol(int fd, QiEventLoop::ProtocolFactory& factory);
  void start();
  void read_into_view();
  void read_into_protocol_buffer();
  void write_ready();
  void read_failed(int err);
  void write_failed(int err);

  void protocol_connection_lost(std::exception_ptr error) override { protocol_->connection_lost(std::move(error)); }
  void protocol_pause_writing() override { protocol_->pause_writing(); }
  void protocol_resume_writing() override { protocol_->resume_writing(); }
  bool drop_write_buffer() noexcept override { return buffer_.clear(); }
  bool write_buffer_empty() const noexcept override { return buffer_.empty(); }

  std::unique_ptr<BaseProtocol> protocol_;
  Protocol* stream_ = nullptr;  // exactly one of these two is set
  BufferedProtocol* buffered_protocol_ = nullptr;
  const FdKind kind_;
  const bool reads_;
  const bool writes_;
  const SocketAddress peer_;
  const SocketAddress local_;
};

}  // namespace qi::detail
