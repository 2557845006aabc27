// qiloop/net/pipes.h — loop.connect_read_pipe / connect_write_pipe: a pipe
// (or a FIFO, a character device, a socket) driven by a qi::Protocol, as
// asyncio's unix_events.py does.
//
//   int fds[2];
//   ::pipe2(fds, O_CLOEXEC);
//   auto [in, reader] = co_await loop.connect_read_pipe(
//       [] { return std::make_unique<Lines>(); }, fds[0]);   // data_received, eof_received
//   auto [out, writer] = co_await loop.connect_write_pipe(
//       [] { return std::make_unique<qi::Protocol>(); }, fds[1]);
//   out->write("hello\n");          // writes now, buffers only the rest
//   out->close();                   // flushes, then closes fds[1]: `in` reads EOF
//
// The contract (asyncio's _UnixReadPipeTransport / _UnixWritePipeTransport;
// the rest is qi::Transport's, <qiloop/net/transport.h>):
// - The transports are qi::Transports, so a protocol (a stream's) works over
//   a pipe as over a socket. A read pipe's transport does not write: write,
//   writelines and write_eof throw qi::RuntimeError (can_write_eof() is
//   false); a write pipe's does not read: pause_reading / resume_reading
//   throw qi::RuntimeError (is_reading() is false). peername() / sockname()
//   are empty unless fd is a socket.
// - The transport takes fd over: made non-blocking, closed when the
//   transport goes (right after connection_lost, or by loop.close()); also
//   when the factory or connection_made throws. A regular file or a
//   directory is refused with qi::ValueError before anything happens (the
//   fd stays the caller's).
// - Read pipe: data_received (or BufferedProtocol's get_buffer /
//   buffer_updated) while reading; at EOF the transport is closing, then
//   eof_received (its result is ignored: a pipe has no other direction to
//   keep), then connection_lost(nullptr). pause_reading / resume_reading /
//   is_reading as on a socket.
// - Write pipe: write / writelines try the fd first (writev) and buffer the
//   rest, with flow control (pause_writing / resume_writing; high 64 KiB,
//   low 16 KiB by default). write_eof() and close() are the same: the
//   buffer is written, then the fd closed (connection_lost(nullptr));
//   abort() drops the buffer. A reader that goes away is noticed even while
//   nothing is written (a pipe's or a socket's write end is watched for
//   its peer's close): connection_lost(nullptr), or qi::BrokenPipeError
//   when bytes were still buffered; a write that meets it ends the
//   transport with qi::BrokenPipeError. Writes never kill the process with
//   SIGPIPE, whatever its disposition.
// - Writes after close(), write_eof(), abort() or the end are dropped (the
//   5th logs a warning), as asyncio.
// - Thread-safety: the loop's thread only, as every transport.
#pragma once

#include <qiloop/coro.h>
#include <qiloop/event_loop.h>
#include <qiloop/net/protocols.h>
#include <qiloop/net/transport.h>

#include <utility>

template <class Factory>
qi::Coro<qi::detail::ConnectResult<Factory>> QiEventLoop::connect_read_pipe(Factory factory, int fd) {
  auto erased = qi::detail::erase_factory(std::move(factory), "connect_read_pipe");
  co_return qi::detail::typed<Factory>(open_pipe_transport(std::move(erased), fd, false));
}

template <class Factory>
qi::Coro<qi::detail::ConnectResult<Factory>> QiEventLoop::connect_write_pipe(Factory factory, int fd) {
  auto erased = qi::detail::erase_factory(std::move(factory), "connect_write_pipe");
  co_return qi::detail::typed<Factory>(open_pipe_transport(std::move(erased), fd, true));
}
