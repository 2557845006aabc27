// qiloop/net/socket.h — asyncio's low-level socket calls (loop.sock_*) and
// name resolution (loop.getaddrinfo / getnameinfo): the floor the
// transports and streams are built on. The calls are QiEventLoop members
// (declared in <qiloop/event_loop.h>); this header brings their types
// (qi::SocketAddress, qi::AddrInfo) and states their contract.
//
//   auto& loop = qi::get_running_loop();
//   auto infos = co_await loop.getaddrinfo("localhost", 8080, AF_UNSPEC, SOCK_STREAM);
//   int fd = ::socket(infos[0].family, infos[0].type | SOCK_NONBLOCK | SOCK_CLOEXEC, infos[0].protocol);
//   co_await loop.sock_connect(fd, infos[0].address);
//   co_await loop.sock_sendall(fd, "ping\n");
//   QByteArray reply = co_await loop.sock_recv(fd, 4096);   // empty: EOF
//   ::close(fd);
//
// The contract (asyncio's selector_events.py, with the differences named):
// - fds are the caller's: the calls never close them. Each call checks once
//   (fcntl) that its fd is non-blocking and throws qi::ValueError ("set
//   O_NONBLOCK") when not; sock_accept's new fds are non-blocking and
//   close-on-exec already. Close an fd only after the calls on it ended.
// - The system call is tried first; the call waits for readiness (the loop's
//   add_reader / add_writer, level-triggered) only on EAGAIN, tries again
//   once woken, and retries EINTR at once. Nothing polls: a waiting call
//   costs nothing until its fd is ready.
// - Errors: an errno becomes the qi::OSError subclass Python raises
//   (qi::make_os_error): ECONNRESET -> qi::ConnectionResetError, EPIPE ->
//   qi::BrokenPipeError (sends never raise SIGPIPE: MSG_NOSIGNAL),
//   ECONNREFUSED -> qi::ConnectionRefusedError (its message names the
//   address), ...; what() says which call failed on which fd.
// - EOF: sock_recv returns an empty QByteArray, sock_recv_into 0.
// - Cancellation (the awaiting task cancelled, or a timeout around the
//   call) ends the wait at once: the call's reader or writer is removed and
//   qi::CancelledError propagates. A cancelled sock_recv / sock_recv_into /
//   sock_accept consumed nothing (the data, the connection stay queued for
//   the next call): they read only after being woken, inside the task.
//   A cancelled sock_sendall or sock_sendfile may have sent a part (as in
//   asyncio, whose sock_sendall says "there is no way to determine how much
//   data, if any, was successfully processed"): the stream is then
//   mid-message — close it rather than send again. sock_connect cancelled
//   leaves the connection attempt to the kernel: close the fd.
// - One waiting call per fd and direction: a second sock_recv (or
//   sock_recv_into, sock_accept) on an fd while one waits there throws
//   qi::RuntimeError; the same for sending calls (sock_sendall,
//   sock_sendfile, sock_connect). asyncio lets the second replace the first
//   one's reader, which then never completes; qiloop refuses instead. A
//   receive and a send may wait on one fd together. A reader or writer the
//   application added itself with add_reader / add_writer on that fd is
//   replaced while a call waits and removed when it ends (as in asyncio).
// - getaddrinfo / getnameinfo run the blocking resolver on the loop's
//   default executor (run_in_executor), so the loop keeps running; a numeric
//   host with a numeric port (or an empty host) is resolved on the loop's
//   thread at once (asyncio's _ipaddr_info fast path), as is getnameinfo
//   with NI_NUMERICHOST | NI_NUMERICSERV. Failures throw qi::GaiError with
//   the EAI_* code.
// Thread-safety: the loop's thread only.
#pragma once

#include <qiloop/coro.h>
#include <qiloop/errors.h>
#include <qiloop/event_loop.h>
#include <qiloop/export.h>
#include <qiloop/net/address.h>

#include <QtCore/QByteArray>

#include <netdb.h>
#include <sys/socket.h>

#include <string>

namespace qi {

// qi::AddrInfo
// One result of loop.getaddrinfo (asyncio's (family, type, proto,
// canonname, sockaddr) tuple). canonname is set on the first result only,
// and only with AI_CANONNAME.
struct AddrInfo {
  int family = AF_UNSPEC;
  int type = 0;
  int protocol = 0;
  std::string canonname;
  SocketAddress address;

  friend bool operator==(const AddrInfo&, const AddrInfo&) = default;
};

}  // namespace qi
