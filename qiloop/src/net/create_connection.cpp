// net/create_connection.cpp — QiEventLoop::create_connection and
// create_unix_connection, their non-template halves (asyncio's
// base_events.py create_connection, unix_events.py create_unix_connection).
// The contract is in <qiloop/net/transport.h>.
#include <qiloop/errors.h>
#include <qiloop/event_loop.h>
#include <qiloop/net/socket.h>
#include <qiloop/net/transport.h>

#include "net/happy_eyeballs.h"
#include "net/socket_transport.h"
#include "net/ssl_protocol.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <optional>
#include <string>
#include <utility>
#include <vector>

using qi::detail::SocketTransport;

qi::Coro<qi::Transport*> QiEventLoop::open_tcp_transport(ProtocolFactory factory, std::string host, uint16_t port,
                                                         qi::ConnectOptions options) {
  const std::string target = (host.find(':') != std::string::npos ? "[" + host + "]" : host) + ":" + std::to_string(port);
  // TLS options are checked before anything connects (asyncio's order).
  std::optional<qi::detail::TlsSettings> tls;
  if (options.ssl || options.server_hostname || options.ssl_handshake_timeout || options.ssl_shutdown_timeout) {
    std::optional<std::string> hostname = options.server_hostname;
    if (options.ssl && !hostname) hostname = host;
    tls = qi::detail::check_tls_options("create_connection", std::move(options.ssl), false, std::move(hostname),
                                        options.ssl_handshake_timeout, options.ssl_shutdown_timeout);
  }
  std::vector<qi::AddrInfo> addresses =
      co_await getaddrinfo(host, port, options.family, SOCK_STREAM, options.proto, options.flags);
  if (addresses.empty())
    throw qi::OSError("create_connection: getaddrinfo() returned no address for " + target);
  std::vector<qi::AddrInfo> local;
  if (options.local_addr) {
    local = co_await getaddrinfo(options.local_addr->first, options.local_addr->second, options.family, SOCK_STREAM,
                                 options.proto, options.flags);
    if (local.empty())
      throw qi::OSError("create_connection: getaddrinfo() returned no address for the local address " +
                        options.local_addr->first);
  }
  int interleave = options.interleave.value_or(options.happy_eyeballs_delay ? 1 : 0);
  if (interleave > 0) addresses = qi::detail::interleave_addrinfos(std::move(addresses), interleave);
  int fd = co_await qi::detail::connect_first(*this, std::move(addresses), std::move(local),
                                              options.happy_eyeballs_delay, options.all_errors, target);
  if (tls) co_return co_await qi::detail::open_tls_transport(*this, fd, std::move(factory), std::move(*tls));
  co_return SocketTransport::open(*this, fd, factory);
}

qi::Coro<qi::Transport*> QiEventLoop::open_unix_transport(ProtocolFactory factory, std::string path) {
  qi::SocketAddress address = qi::SocketAddress::unix_path(path);  // qi::ValueError for a bad path
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) qi::throw_os_error(errno, "create_unix_connection: socket()");
  try {
    co_await sock_connect(fd, address);
  } catch (...) {
    ::close(fd);
    throw;
  }
  co_return SocketTransport::open(*this, fd, factory);
}

qi::Coro<qi::Transport*> QiEventLoop::adopt_socket_transport(ProtocolFactory factory, int sock) {
  int type = 0;
  socklen_t len = sizeof type;
  if (::getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &len) < 0)
    qi::throw_os_error(errno, "create_connection: fd " + std::to_string(sock));
  if (type != SOCK_STREAM)
    throw qi::ValueError("create_connection: fd " + std::to_string(sock) +
                         " is not a stream socket (SOCK_STREAM); use create_datagram_endpoint for datagrams");
  qi::detail::ensure_fd_no_transport(sock, "create_connection");
  int flags = ::fcntl(sock, F_GETFL);
  if (flags < 0 || ::fcntl(sock, F_SETFL, flags | O_NONBLOCK) < 0)
    qi::throw_os_error(errno, "create_connection: making fd " + std::to_string(sock) + " non-blocking");
  co_return SocketTransport::open(*this, sock, factory);
}
