// qiloop/net/server.h — asyncio's servers: loop.create_server /
// create_unix_server listen on sockets and serve each connection they accept
// with a transport (<qiloop/net/transport.h>) driving a new protocol from
// the factory; qi::Server (asyncio.Server) starts, stops and awaits them.
//
//   qi::Server server = co_await loop.create_server(
//       [] { return std::make_unique<Echo>(); }, "127.0.0.1", 0);   // 0: a free port
//   uint16_t port = server.sockets().at(0).port();
//   co_await server.serve_forever();    // cancelling it closes the server
//   // or: server.close(); co_await server.wait_closed();
//
// The contract (asyncio 3.13's base_events.Server and create_server,
// selector_events._accept_connection, unix_events.create_unix_server, with
// the differences named):
// - Listening sockets: one per address the host resolves to (getaddrinfo
//   with options.flags, AI_PASSIVE by default; duplicates once). "" listens on
//   every interface: one IPv4 and one IPv6 socket, the IPv6 one with
//   IPV6_V6ONLY (as asyncio; port 0 then gives each its own free port). A
//   list of hosts listens on all of their addresses. SO_REUSEADDR by
//   default (reuse_address), SO_REUSEPORT with reuse_port (IP only).
//   Addresses the host has no interface for (EADDRNOTAVAIL) are skipped.
// - Serving: listen(backlog) and the accept reader start with start_serving
//   (create_server's default; otherwise start_serving() or serve_forever()):
//   before that the sockets are bound but not listening, so connections are
//   refused. Each readiness accepts up to `backlog` connections (asyncio's
//   bpo-27906 loop), each at once into a transport (TCP_NODELAY on TCP);
//   connection_made runs before the next accept. (asyncio makes the
//   transport from a task of its own, an iteration later.)
// - Accept errors: EMFILE, ENFILE, ENOBUFS, ENOMEM (out of resources) are
//   reported to the exception handler ("socket.accept() out of system
//   resource") and that socket stops accepting for one second on the loop's
//   clock (asyncio's ACCEPT_RETRY_DELAY), then resumes; an error that
//   concerns the one connection (ECONNABORTED, EPROTO, a network error) is
//   ignored and accepting goes on; any other error is reported and pauses
//   the socket likewise (asyncio raises it into the loop, which logs it and
//   would try again at once). A factory or connection_made that throws is
//   reported ("Error on transport creation for incoming connection"; asyncio
//   reports it only in debug mode): that connection is closed, the server
//   keeps serving.
// - Ownership: the loop owns the transports (each its protocol, as with
//   create_connection), and keeps an open server's state alive: qi::Server
//   is a copyable handle to it, and dropping every handle does NOT close the
//   server (as in asyncio, where the loop's accept callback references the
//   server): it serves until close() or loop.close(). loop.close() closes
//   every server of the loop still open (listening fds closed, Unix socket
//   files cleaned up), then destroys the remaining transports.
// - close() stops listening and closes the listening sockets; connections
//   already accepted go on (close_clients() / abort_clients() end them).
//   wait_closed() returns once close() was called AND every connection the
//   server accepted is gone (connection_lost returned), in either order
//   (asyncio 3.12.1+).
// - Unix servers: an existing socket file at the path is removed first (a
//   stale one; as asyncio, even one a live server listens on); any other
//   kind of file is refused (qi::OSError EADDRINUSE naming it). A leading
//   '\0' is an abstract name (no file). cleanup_socket: close() removes the
//   socket file unless it was replaced meanwhile (asyncio 3.13).
// - Errors: a port in use -> qi::OSError (code() EADDRINUSE) naming the
//   address; an unresolvable host -> qi::GaiError; serve_forever() while one
//   runs, serve_forever() / start_serving() after close() ->
//   qi::RuntimeError; a factory that is not a protocol factory is refused at
//   compile time (see create_connection).
// - Cancellation: cancelling create_server while it resolves leaves nothing
//   (no socket is open yet); cancelled in its last step (the one-iteration
//   yield after it starts serving) it closes the server it made, whose
//   handle nobody could get. Cancelling serve_forever() closes the server and
//   waits for its connections to end (asyncio: close(), then wait_closed(),
//   then re-raise); close() from elsewhere ends serve_forever() with
//   qi::CancelledError too (asyncio cancels its future). wait_closed() is
//   cancellable and leaves nothing behind.
// Thread-safety: the loop's thread only. Every call may be made from
// protocol callbacks and from the factory (close() included).
#pragma once

#include <qiloop/coro.h>
#include <qiloop/errors.h>
#include <qiloop/event_loop.h>
#include <qiloop/export.h>
#include <qiloop/net/address.h>
#include <qiloop/net/protocols.h>
#include <qiloop/net/transport.h>

#include <netdb.h>
#include <sys/socket.h>

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace qi {

namespace detail {
class ServerState;
}

// qi::ServerOptions
// create_server's keyword arguments (asyncio's names and defaults).
struct ServerOptions {
  int family = AF_UNSPEC;   // AF_INET, AF_INET6: only that family
  int flags = AI_PASSIVE;   // getaddrinfo's AI_* flags
  int backlog = 100;        // listen(2)'s, and the most accepted per readiness
  bool reuse_address = true;  // SO_REUSEADDR (asyncio: true on POSIX)
  bool reuse_port = false;    // SO_REUSEPORT: several servers share a port
  bool keep_alive = false;    // SO_KEEPALIVE on the listening sockets (inherited)
  bool start_serving = true;  // false: bound, not listening until start_serving()
  // TLS (<qiloop/net/ssl.h>, asyncio's ssl=): with a server context
  // (SslContext::server), each accepted connection does the TLS handshake
  // first; its protocol's connection_made comes after it, with a
  // qi::SslTransport. A handshake that fails closes that connection only.
  // The timeouts default to 60 s and 30 s; without ssl they throw
  // qi::ValueError.
  std::shared_ptr<SslContext> ssl{};
  std::optional<std::chrono::nanoseconds> ssl_handshake_timeout{};
  std::optional<std::chrono::nanoseconds> ssl_shutdown_timeout{};
};

// qi::UnixServerOptions
// create_unix_server's keyword arguments.
struct UnixServerOptions {
  int backlog = 100;
  bool start_serving = true;
  bool cleanup_socket = true;  // close() removes the socket file (asyncio 3.13)
  // TLS: as ServerOptions.
  std::shared_ptr<SslContext> ssl{};
  std::optional<std::chrono::nanoseconds> ssl_handshake_timeout{};
  std::optional<std::chrono::nanoseconds> ssl_shutdown_timeout{};
};

// qi::Server
// A server made by loop.create_server / create_unix_server (asyncio.Server):
// a copyable handle to the server's state, which the loop keeps alive while
// the server is open. An empty handle (default-constructed or moved from)
// throws qi::RuntimeError from every call.
class QILOOP_EXPORT Server {
 public:
  Server() noexcept = default;

  // Server::sockets()
  // The addresses the server listens on (asyncio's server.sockets, as
  // addresses); empty once closed.
  std::vector<SocketAddress> sockets() const;

  // Server::filenos()
  // The listening sockets' fds, in the order of sockets() (the server's: do
  // not close them); empty once closed.
  std::vector<int> filenos() const;

  // Server::is_serving()
  // True from start_serving until close().
  bool is_serving() const;

  // Server::start_serving()
  // Starts listening and accepting (a no-op when serving), then yields one
  // iteration (asyncio's sleep(0)). Throws qi::RuntimeError after close(),
  // qi::OSError when listen(2) fails.
  Coro<void> start_serving();

  // Server::serve_forever()
  // Starts serving and waits until the server is closed; it never returns
  // normally. Cancelling it closes the server and waits for its
  // connections to end (wait_closed), then throws qi::CancelledError; so
  // does close() from elsewhere. Throws qi::RuntimeError when another
  // serve_forever() is waiting, or after close().
  Coro<void> serve_forever();

  // Server::close()
  // Stops accepting and closes the listening sockets (a Unix socket file is
  // removed with cleanup_socket). Connections already accepted go on.
  // Idempotent.
  void close();

  // Server::wait_closed()
  // Returns once close() was called and every connection the server
  // accepted has ended (connection_lost returned); at once when both hold.
  Coro<void> wait_closed();

  // Server::close_clients()
  // Server::abort_clients()
  // close() / abort() every connection the server accepted still open.
  void close_clients();
  void abort_clients();

  // Server::get_loop()
  QiEventLoop& get_loop() const;

  // Internal: a handle to s.
  explicit Server(std::shared_ptr<detail::ServerState> s) noexcept : state_(std::move(s)) {}

 private:
  const std::shared_ptr<detail::ServerState>& shared() const;  // throws when empty
  detail::ServerState& state() const { return *shared(); }
  std::shared_ptr<detail::ServerState> state_;
};

}  // namespace qi

// --- QiEventLoop::create_server() and create_unix_server() (declared in event_loop.h) ---

namespace qi::detail {
// A factory returning std::unique_ptr<qi::BaseProtocol> (what a wrapper
// such as qi::start_server's builds) is checked at each call: the protocol
// must be a qi::Protocol or qi::BufferedProtocol; qi::ValueError otherwise.
QILOOP_EXPORT std::unique_ptr<qi::BaseProtocol> checked_protocol(std::unique_ptr<qi::BaseProtocol> p, const char* api);

template <class Factory>
QiEventLoop::ProtocolFactory erase_server_factory(Factory factory, const char* api) {
  using P = typename std::invoke_result_t<Factory&>::element_type;
  if constexpr (std::is_same_v<P, qi::BaseProtocol>)
    return [factory = std::move(factory), api]() mutable { return checked_protocol(factory(), api); };
  else
    return erase_factory(std::move(factory), api);
}
}  // namespace qi::detail

template <class Factory, class Options>
qi::Coro<qi::Server> QiEventLoop::create_server(Factory factory, std::string host, uint16_t port, Options options) {
  static_assert(std::is_same_v<Options, qi::ServerOptions>, "qiloop: create_server's options are a qi::ServerOptions");
  return open_tcp_server(qi::detail::erase_server_factory(std::move(factory), "create_server"), {std::move(host)},
                         port, std::move(options));
}

template <class Factory, class Options>
qi::Coro<qi::Server> QiEventLoop::create_server(Factory factory, std::vector<std::string> hosts, uint16_t port,
                                                Options options) {
  static_assert(std::is_same_v<Options, qi::ServerOptions>, "qiloop: create_server's options are a qi::ServerOptions");
  return open_tcp_server(qi::detail::erase_server_factory(std::move(factory), "create_server"), std::move(hosts), port,
                         std::move(options));
}

template <class Factory, class Options>
qi::Coro<qi::Server> QiEventLoop::create_server(Factory factory, std::initializer_list<std::string> hosts,
                                                uint16_t port, Options options) {
  return create_server(std::move(factory), std::vector<std::string>(hosts), port, std::move(options));
}

template <class Factory, class Options>
qi::Coro<qi::Server> QiEventLoop::create_server(Factory factory, int sock, Options options) {
  static_assert(std::is_same_v<Options, qi::ServerOptions>, "qiloop: create_server's options are a qi::ServerOptions");
  return adopt_server_socket(qi::detail::erase_server_factory(std::move(factory), "create_server"), sock,
                             std::move(options));
}

template <class Factory, class Options>
qi::Coro<qi::Server> QiEventLoop::create_unix_server(Factory factory, std::string path, Options options) {
  static_assert(std::is_same_v<Options, qi::UnixServerOptions>,
                "qiloop: create_unix_server's options are a qi::UnixServerOptions");
  return open_unix_server(qi::detail::erase_server_factory(std::move(factory), "create_unix_server"), std::move(path),
                          std::move(options));
}
