// net/datagram_transport.h — the selector transport of a datagram socket
// (asyncio's _SelectorDatagramTransport). Internal; the contract is in
// <qiloop/net/datagram.h>. Life, failures and flow control are
// FdTransport's (net/fd_transport.h).
//
// Invariants (beside FdTransport's):
// - The reader is registered from connection_made until closing; the
//   writer exactly while datagrams are buffered.
// - buffered_ is the sum, over the buffered datagrams, of their size plus
//   kHeaderSize (asyncio 3.13: an empty datagram still weighs).
// - remote_ is sendto()'s default and only address when connected: the
//   connected peer, or a broadcast remote_addr; empty otherwise.
#pragma once

#include "net/fd_transport.h"

#include <qiloop/event_loop.h>
#include <qiloop/net/address.h>
#include <qiloop/net/datagram.h>

#include <QtCore/QByteArray>

#include <cstddef>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace qi::detail {

class DatagramSocketTransport final : public FdTransport, public DatagramTransport {
 public:
  // Takes fd (a non-blocking datagram socket) and the protocol the factory
  // makes (the fd is closed when the factory throws), calls
  // connection_made, starts receiving. remote: sendto()'s default address
  // (empty: none; the connected peer is used when fd is connected). When
  // connection_made throws, the transport is aborted and the exception
  // rethrown.
  static DatagramSocketTransport* open(QiEventLoop& loop, int fd, QiEventLoop::DatagramProtocolFactory& factory,
                                       SocketAddress remote);

  void close() override { close_transport(); }
  void abort() override { force_close(nullptr); }
  bool is_closing() const noexcept override { return closing_; }
  std::size_t get_write_buffer_size() const noexcept override { return buffered_; }
  void set_write_buffer_limits(std::optional<std::size_t> high, std::optional<std::size_t> low) override {
    set_limits(high, low, buffered_);
  }
  std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept override { return limits(); }
  SocketAddress sockname() const override { return local_; }
  SocketAddress peername() const override { return peer_; }
  int fileno() const noexcept override { return fd_; }
  DatagramProtocol& get_protocol() const noexcept override { return *protocol_; }

 private:
  // asyncio's _header_size: what a buffered datagram weighs beyond its bytes.
  static constexpr std::size_t kHeaderSize = 8;

  struct Pending {
    QByteArray data;
    SocketAddress to;
  };

  DatagramSocketTransport(QiEventLoop& loop, int fd, std::unique_ptr<DatagramProtocol> protocol, SocketAddress remote);

  void send(QByteArrayView data, const SocketAddress* addr) override;
  // One datagram: 0, or the errno of the failed send.
  int send_one(QByteArrayView data, const SocketAddress& to) noexcept;
  void read_ready();
  void write_ready();
  // error_received(the qi::OSError of err).
  void deliver_error(int err, const char* what);
  std::string describe() const override;

  void protocol_connection_lost(std::exception_ptr error) override { protocol_->connection_lost(std::move(error)); }
  void protocol_pause_writing() override { protocol_->pause_writing(); }
  void protocol_resume_writing() override { protocol_->resume_writing(); }
  bool drop_write_buffer() noexcept override;
  bool write_buffer_empty() const noexcept override { return buffer_.empty(); }

  std::unique_ptr<DatagramProtocol> protocol_;
  const SocketAddress local_;
  const SocketAddress peer_;    // the connected peer, or empty
  const SocketAddress remote_;  // sendto()'s default and only address, or empty
  std::deque<Pending> buffer_;
  std::size_t buffered_ = 0;
};

}  // namespace qi::detail
