// net/pipe_transport.h — the transports of connect_read_pipe and
// connect_write_pipe (asyncio's _UnixReadPipeTransport and
// _UnixWritePipeTransport). Internal; the contract is in
// <qiloop/net/pipes.h>. The read and write paths are StreamTransport's;
// what is the pipes' own: the end of a read pipe at EOF, write_eof as
// close, and the watch for a write pipe's reader going away.
#pragma once

#include "net/stream_transport.h"

#include <qiloop/event_loop.h>

#include <memory>

namespace qi::detail {

class ReadPipeTransport final : public StreamTransport {
 public:
  // Takes fd (non-blocking), as SocketTransport::open.
  static ReadPipeTransport* open(QiEventLoop& loop, int fd, FdKind kind, QiEventLoop::ProtocolFactory& factory) {
    return StreamTransport::open<ReadPipeTransport>(loop, fd, factory, kind);
  }
  void write_eof() override { check_writes("write_eof"); }
  bool can_write_eof() const noexcept override { return false; }

 private:
  friend class StreamTransport;
  ReadPipeTransport(QiEventLoop& loop, int fd, std::unique_ptr<BaseProtocol> protocol, FdKind kind)
      : StreamTransport(loop, fd, std::move(protocol), kind, Direction::kRead) {}
  void on_eof() override;
};

class WritePipeTransport final : public StreamTransport {
 public:
  // watch_peer: watch fd for its reader's close (a pipe, a FIFO, a socket).
  static WritePipeTransport* open(QiEventLoop& loop, int fd, FdKind kind, bool watch_peer,
                                  QiEventLoop::ProtocolFactory& factory) {
    return StreamTransport::open<WritePipeTransport>(loop, fd, factory, kind, watch_peer);
  }
  void write_eof() override { close(); }
  bool can_write_eof() const noexcept override { return true; }

 private:
  friend class StreamTransport;
  WritePipeTransport(QiEventLoop& loop, int fd, std::unique_ptr<BaseProtocol> protocol, FdKind kind, bool watch_peer)
      : StreamTransport(loop, fd, std::move(protocol), kind, Direction::kWrite), watch_peer_(watch_peer) {}
  void on_eof() override {}
  void start_watching() override;
  void peer_closed();

  const bool watch_peer_;
};

}  // namespace qi::detail
