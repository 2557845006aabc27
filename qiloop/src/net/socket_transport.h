// net/socket_transport.h — the selector transport of a connected stream
// socket, TCP or Unix (asyncio's _SelectorSocketTransport). Internal; the
// contract is in <qiloop/net/transport.h> and <qiloop/net/protocols.h>.
// The read and write paths, the life and flow control are
// StreamTransport's and FdTransport's (net/stream_transport.h); what is
// the socket's own: TCP_NODELAY, write_eof as shutdown(SHUT_WR), and the
// protocol's choice to keep a half-open connection at EOF.
#pragma once

#include "net/stream_transport.h"

#include <qiloop/event_loop.h>

#include <memory>

namespace qi::detail {

class SocketTransport;

// What a server learns of the transports it accepted (asyncio's
// Server._attach / _detach): attach() from the transport's constructor,
// detach() from its destructor.
class ConnectionTracker {
 public:
  virtual void attach(SocketTransport* transport) noexcept = 0;
  virtual void detach(SocketTransport* transport) noexcept = 0;

 protected:
  ~ConnectionTracker() = default;
};

class SocketTransport final : public StreamTransport {
 public:
  // Takes fd (a connected, non-blocking stream socket) and the protocol the
  // factory makes, calls connection_made, starts reading. The fd is closed
  // when the factory throws. When connection_made throws, the transport is
  // aborted (connection_lost follows) and the exception rethrown. A server
  // passes itself as tracker: the transport keeps it alive until destroyed.
  static SocketTransport* open(QiEventLoop& loop, int fd, QiEventLoop::ProtocolFactory& factory,
                               std::shared_ptr<ConnectionTracker> tracker = nullptr) {
    return StreamTransport::open<SocketTransport>(loop, fd, factory, std::move(tracker));
  }

  void write_eof() override;
  bool can_write_eof() const noexcept override { return true; }

  // loop.close(): destroys the transports of `loop` still registered.
  static void destroy_all(QiEventLoop& loop) noexcept { FdTransport::destroy_all(loop); }

  // abort() with the error connection_lost receives (asyncio's
  // _force_close); the TLS layer ends its socket with it.
  using FdTransport::force_close;

 private:
  friend class StreamTransport;
  SocketTransport(QiEventLoop& loop, int fd, std::unique_ptr<BaseProtocol> protocol,
                  std::shared_ptr<ConnectionTracker> tracker);
  ~SocketTransport() override;

  void on_eof() override;
  void on_flushed() override;

  std::shared_ptr<ConnectionTracker> tracker_;  // the server that accepted it, if any
};


}  // namespace qi::detail
