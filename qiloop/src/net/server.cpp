// net/server.cpp — QiEventLoop::create_server / create_unix_server and
// qi::Server (asyncio's base_events.create_server and Server,
// selector_events._accept_connection, unix_events.create_unix_server). The
// contract is in <qiloop/net/server.h>.
#include <qiloop/net/server.h>

#include <qiloop/errors.h>
#include <qiloop/event_loop.h>
#include <qiloop/net/socket.h>
#include <qiloop/sync/event.h>
#include <qiloop/task.h>

#include "net/fd_watch.h"
#include "net/socket_transport.h"
#include "net/ssl_protocol.h"
#include "net/sys_io.h"

#include <absl/container/flat_hash_set.h>

#include <QtCore/QLoggingCategory>

#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

Q_DECLARE_LOGGING_CATEGORY(lcQiloop)

namespace qi::detail {

namespace {

// asyncio's ACCEPT_RETRY_DELAY: how long a socket that ran out of fds (or
// memory) rests before accepting again — long enough for connections to end
// and free some, short enough not to lose clients to their timeouts.
constexpr std::chrono::seconds kAcceptRetryDelay{1};

// accept(2) errors that concern the one connection, not the socket: the
// next accept may succeed (ECONNABORTED, as asyncio; accept(2)'s man page
// says to treat Linux's pending network errors like EAGAIN).
bool connection_error(int err) {
  switch (err) {
    case ECONNABORTED:
    case EPROTO:
    case EPERM:  // a firewall refused it
    case ENETDOWN:
    case ENOPROTOOPT:
    case EHOSTDOWN:
    case ENONET:
    case EHOSTUNREACH:
    case EOPNOTSUPP:
    case ENETUNREACH: return true;
    default: return false;
  }
}

bool out_of_resources(int err) { return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM; }

SocketAddress local_address(int fd) {
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  if (::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len) < 0) return {};
  return SocketAddress::from_native(reinterpret_cast<sockaddr*>(&ss), len);
}

void set_flag(int fd, int level, int option, const char* name) {
  int one = 1;
  if (::setsockopt(fd, level, option, &one, sizeof one) < 0)
    qi::throw_os_error(errno, std::string("create_server: setsockopt(") + name + ")");
}

// The server's listening sockets, closed unless released (when making the
// server fails half-way).
struct OpenFds {
  std::vector<int> fds;
  ~OpenFds() {
    for (int fd : fds) ::close(fd);
  }
  std::vector<int> release() { return std::exchange(fds, {}); }
};

}  // namespace

// One listening socket.
struct Listener {
  int fd = -1;
  SocketAddress address;
  TimerHandle retry;  // armed while accepting rests (out of resources)
  // A Unix socket file to remove on close (cleanup_socket), and its inode:
  // a file that replaced it meanwhile is left alone.
  std::string cleanup_path;
  ino_t cleanup_ino = 0;
};

// A server's shared state: the loop's registry keeps it alive while it is
// open, the transports it accepted (as their tracker) while they live, and
// qi::Server handles while they exist.
//
// Invariants:
// - listeners is empty exactly once closed; while serving, each listener
//   has the loop's reader, or (resting after EMFILE) its retry timer.
// - clients holds exactly the transports this server accepted that are not
//   destroyed yet.
// - drained is set once closed and clients is empty; it stays set.
class ServerState final : public ConnectionTracker, public std::enable_shared_from_this<ServerState> {
 public:
  ServerState(QiEventLoop& loop, std::vector<Listener> listeners, QiEventLoop::ProtocolFactory factory, int backlog)
      : loop_(loop), listeners_(std::move(listeners)), factory_(std::move(factory)), backlog_(std::max(backlog, 1)) {
    // The fd API refuses them from now on (a sock_accept would take the
    // accept handler away).
    for (Listener& l : listeners_) register_listener(l.fd);
  }

  ~ServerState() {
    for (Listener& l : listeners_) {  // never served: no reader to remove
      unregister_listener(l.fd);
      ::close(l.fd);
    }
  }

  // Makes the state of a server over fds and registers it with the loop.
  static std::shared_ptr<ServerState> open(QiEventLoop& loop, std::vector<int> fds, QiEventLoop::ProtocolFactory factory,
                                           int backlog);

  QiEventLoop& loop() const noexcept { return loop_; }
  bool serving() const noexcept { return serving_; }
  bool closed() const noexcept { return closed_; }
  std::vector<Listener>& listeners() noexcept { return listeners_; }

  void start_serving(const char* api);
  void close();
  void close_clients(bool abort);
  std::string describe() const;

  // serve_forever()'s future, while one waits; close() cancels it.
  std::optional<Future<void>> forever_waiter;
  Event drained;

  // loop.close(): closes the servers of `loop` still open.
  static void close_all(QiEventLoop& loop) noexcept;

  void attach(SocketTransport* t) noexcept override { clients_.insert(t); }
  void detach(SocketTransport* t) noexcept override {
    clients_.erase(t);
    wake_if_drained();
  }

 private:
  void accept_ready(std::size_t index);
  void accept_one(int conn);
  void rest(std::size_t index, int err);
  void listen_on(std::size_t index);
  void wake_if_drained() noexcept;
  void report(std::string message, std::exception_ptr error);

  QiEventLoop& loop_;
  std::vector<Listener> listeners_;
  QiEventLoop::ProtocolFactory factory_;
  const int backlog_;
  absl::flat_hash_set<SocketTransport*> clients_;
  bool serving_ = false;
  bool closed_ = false;
};

namespace {
// The servers open, on every loop. Never destroyed: a loop with static
// storage duration closes its servers at exit, after the thread_locals and
// the statics made after it are gone.
struct OpenServers {
  std::mutex mutex;
  std::vector<std::shared_ptr<ServerState>> all;
};
OpenServers& open_servers() {
  static OpenServers* const r = new OpenServers;
  return *r;
}
}  // namespace

std::shared_ptr<ServerState> ServerState::open(QiEventLoop& loop, std::vector<int> fds,
                                               QiEventLoop::ProtocolFactory factory, int backlog) {
  OpenFds owned{std::move(fds)};  // until the state owns them: local_address() may throw
  std::vector<Listener> listeners;
  listeners.reserve(owned.fds.size());
  for (int fd : owned.fds) listeners.push_back({fd, local_address(fd), {}, {}, 0});
  auto state = std::make_shared<ServerState>(loop, std::move(listeners), std::move(factory), backlog);
  (void)owned.release();
  OpenServers& r = open_servers();
  std::lock_guard lock(r.mutex);
  r.all.push_back(state);
  return state;
}

void ServerState::close_all(QiEventLoop& loop) noexcept {
  std::vector<std::shared_ptr<ServerState>> mine;
  {
    OpenServers& r = open_servers();
    std::lock_guard lock(r.mutex);
    for (const auto& s : r.all)
      if (&s->loop_ == &loop) mine.push_back(s);
  }
  for (const auto& s : mine) s->close();
}

std::string ServerState::describe() const {
  if (listeners_.empty()) return "server (closed)";
  std::string out = "server on ";
  for (std::size_t i = 0; i < listeners_.size(); ++i)
    out += (i ? ", " : "") + listeners_[i].address.to_string();
  return out;
}

void ServerState::report(std::string message, std::exception_ptr error) {
  qi::ExceptionContext context;
  context.message = std::move(message) + " (" + describe() + ")";
  context.exception = std::move(error);
  loop_.call_exception_handler(context);
}

// --- Serving ------------------------------------------------------------------------------

// asyncio's Server._start_serving: listen() is called here, not at bind, so
// a server made with start_serving = false refuses connections until then.
void ServerState::start_serving(const char* api) {
  if (closed_)
    throw qi::RuntimeError(std::string(api) + ": the server is closed; create a new server (loop.create_server)");
  if (serving_) return;
  for (Listener& l : listeners_) {
    if (::listen(l.fd, backlog_) == 0) continue;
    const int err = errno;
    const std::string where = l.address.to_string();
    // listen() cannot be undone, and the sockets listening already would
    // complete clients' handshakes with no one to accept them: the server
    // closes (asyncio leaves them listening).
    close();
    qi::throw_os_error(err, std::string(api) + ": listen() on " + where + " failed; the server is closed");
  }
  serving_ = true;
  for (std::size_t i = 0; i < listeners_.size(); ++i) listen_on(i);
}

void ServerState::listen_on(std::size_t index) {
  LoopFds::add_reader(loop_, listeners_[index].fd, [this, index] { accept_ready(index); });
}

// asyncio's _accept_connection: called once per iteration while the socket
// is readable; connections may be queued, so it takes up to backlog of them.
void ServerState::accept_ready(std::size_t index) {
  auto keep = shared_from_this();  // the factory may close the server and drop its last reference
  for (int i = 0; i < backlog_; ++i) {
    int conn = sys_accept4(listeners_[index].fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (conn < 0) {
      int err = errno;
      if (err == EINTR || connection_error(err)) continue;
      if (would_block(err)) return;
      return rest(index, err);
    }
    accept_one(conn);
    if (closed_) return;  // closed by the factory or a protocol: its fd is gone
  }
}

// The transport of one accepted connection (asyncio's
// _accept_connection2). TLS: this is where the socket gets wrapped.
void ServerState::accept_one(int conn) {
  try {
    SocketTransport::open(loop_, conn, factory_, shared_from_this());
  } catch (...) {
    // open() closed the fd (a throwing factory) or aborted the transport
    // (a throwing connection_made); the server goes on.
    report("Error on transport creation for incoming connection", std::current_exception());
  }
}

// Out of fds (or memory): accept(2) would fail at once on every iteration,
// the socket staying readable, so the socket rests a while (asyncio removes
// its reader and calls _start_serving again after ACCEPT_RETRY_DELAY).
void ServerState::rest(std::size_t index, int err) {
  Listener& l = listeners_[index];
  LoopFds::remove_reader(loop_, l.fd);
  l.retry = loop_.call_later(kAcceptRetryDelay, [this, index] { listen_on(index); });
  report(out_of_resources(err) ? "socket.accept() out of system resource" : "socket.accept() failed",
         qi::make_os_error(err, "accept() on " + l.address.to_string()));
}

// --- Closing ------------------------------------------------------------------------------

void ServerState::close() {
  if (closed_) return;
  auto keep = shared_from_this();  // the registry's reference goes below
  closed_ = true;
  serving_ = false;
  for (Listener& l : std::exchange(listeners_, {})) {
    l.retry.cancel();
    LoopFds::remove_reader(loop_, l.fd);
    unregister_listener(l.fd);
    ::close(l.fd);
    struct stat st;
    if (!l.cleanup_path.empty() && ::stat(l.cleanup_path.c_str(), &st) == 0 && st.st_ino == l.cleanup_ino)
      ::unlink(l.cleanup_path.c_str());
  }
  if (forever_waiter && !forever_waiter->done()) forever_waiter->cancel();
  forever_waiter.reset();
  {
    OpenServers& r = open_servers();
    std::lock_guard lock(r.mutex);
    std::erase(r.all, keep);
  }
  wake_if_drained();
}

void ServerState::close_clients(bool abort) {
  std::vector<SocketTransport*> all(clients_.begin(), clients_.end());
  for (SocketTransport* t : all) abort ? t->abort() : t->close();
}

void ServerState::wake_if_drained() noexcept {
  if (closed_ && clients_.empty() && !drained.is_set()) drained.set();
}

// A protocol the transports can drive (see erase_server_factory).
std::unique_ptr<qi::BaseProtocol> checked_protocol(std::unique_ptr<qi::BaseProtocol> p, const char* api) {
  if (!p)
    throw qi::ValueError(std::string(api) + ": the protocol factory returned null; return a new protocol (std::make_unique)");
  if (!dynamic_cast<qi::Protocol*>(p.get()) && !dynamic_cast<qi::BufferedProtocol*>(p.get()))
    throw qi::ValueError(std::string(api) +
                         ": the protocol factory returned a qi::BaseProtocol that is neither a qi::Protocol nor a "
                         "qi::BufferedProtocol; derive the protocol from one of them");
  return p;
}

namespace {

// --- Making the listening sockets ---------------------------------------------------------

// One listening socket of create_server bound to `info`'s address, or -1
// when the address is to be skipped: its family is not supported here, or
// the host has no such address (EADDRNOTAVAIL: the family may be off,
// bpo-30945). Throws for any other bind error.
int bind_listener(const qi::AddrInfo& info, const qi::ServerOptions& options) {
  int fd = ::socket(info.family, info.type | SOCK_NONBLOCK | SOCK_CLOEXEC, info.protocol);
  if (fd < 0) return -1;
  OpenFds guard{{fd}};
  if (options.reuse_address) set_flag(fd, SOL_SOCKET, SO_REUSEADDR, "SO_REUSEADDR");
  if (options.reuse_port && info.address.is_ip()) set_flag(fd, SOL_SOCKET, SO_REUSEPORT, "SO_REUSEPORT");
  if (options.keep_alive) set_flag(fd, SOL_SOCKET, SO_KEEPALIVE, "SO_KEEPALIVE");
  // Linux makes an IPv6 socket dual stack by default; the IPv4 addresses
  // have sockets of their own.
  if (info.family == AF_INET6) set_flag(fd, IPPROTO_IPV6, IPV6_V6ONLY, "IPV6_V6ONLY");
  if (::bind(fd, info.address.native(), info.address.size()) < 0) {
    int err = errno;
    if (err == EADDRNOTAVAIL) return -1;
    qi::throw_os_error(err, "create_server: error while attempting to bind on address " + info.address.to_string());
  }
  return guard.release().front();
}

// The addresses of every host, each once (asyncio: a set of them).
qi::Coro<std::vector<qi::AddrInfo>> resolve_hosts(QiEventLoop& loop, std::vector<std::string> hosts, uint16_t port,
                                                  const qi::ServerOptions& options) {
  std::vector<qi::AddrInfo> all;
  for (std::string& host : hosts) {
    std::vector<qi::AddrInfo> infos =
        co_await loop.getaddrinfo(host, port, options.family, SOCK_STREAM, 0, options.flags);
    if (infos.empty()) throw qi::OSError("create_server: getaddrinfo(\"" + host + "\") returned no address");
    for (qi::AddrInfo& info : infos) {
      info.canonname.clear();
      if (std::find(all.begin(), all.end(), info) == all.end()) all.push_back(std::move(info));
    }
  }
  co_return all;
}

// The factory of a server's connections: wrapped in the TLS layer when the
// options carry a context (asyncio's create_server ssl=).
template <class Options>
QiEventLoop::ProtocolFactory with_tls(QiEventLoop& loop, QiEventLoop::ProtocolFactory factory, const Options& options,
                                      const char* api) {
  if (!options.ssl) {
    if (options.ssl_handshake_timeout || options.ssl_shutdown_timeout)
      throw qi::ValueError(std::string(api) +
                           ": ssl_handshake_timeout / ssl_shutdown_timeout are only meaningful with ssl; pass an "
                           "SslContext::server(...) as ssl, or drop the timeouts");
    return factory;
  }
  return ssl_server_factory(loop, std::move(factory), options.ssl, options.ssl_handshake_timeout,
                            options.ssl_shutdown_timeout);
}

// The server over fds, serving when asked; `cleanup`: the Unix socket
// file of fds[0] that close() removes.
qi::Coro<qi::Server> make_server(QiEventLoop& loop, std::vector<int> fds, QiEventLoop::ProtocolFactory factory,
                                 int backlog, bool start_serving, const char* api, std::string cleanup = {}) {
  auto state = ServerState::open(loop, std::move(fds), std::move(factory), backlog);
  struct stat st;
  if (!cleanup.empty() && ::stat(cleanup.c_str(), &st) == 0) {
    Listener& l = state->listeners().front();
    l.cleanup_path = std::move(cleanup);
    l.cleanup_ino = st.st_ino;
  }
  qi::Server server(state);
  if (start_serving) {
    try {
      state->start_serving(api);
    } catch (...) {
      state->close();
      throw;
    }
    // asyncio: so the readers are in place when the caller resumes. A
    // cancellation here would lose the only handle: the server closes.
    std::exception_ptr cancelled;
    try {
      co_await qi::sleep(0);
    } catch (const qi::CancelledError&) {
      cancelled = std::current_exception();
    }
    if (cancelled) {
      state->close();
      std::rethrow_exception(cancelled);
    }
  }
  co_return server;
}

}  // namespace

}  // namespace qi::detail

// --- QiEventLoop ------------------------------------------------------------------------------

using qi::detail::OpenFds;

qi::Coro<qi::Server> QiEventLoop::open_tcp_server(ProtocolFactory factory, std::vector<std::string> hosts,
                                                  uint16_t port, qi::ServerOptions options) {
  if (options.backlog < 0) throw qi::ValueError("create_server: backlog is negative; pass 0 or more (100 by default)");
  if (hosts.empty()) hosts.emplace_back();  // asyncio: no host at all means every interface too
  factory = qi::detail::with_tls(*this, std::move(factory), options, "create_server");
  std::vector<qi::AddrInfo> infos = co_await qi::detail::resolve_hosts(*this, std::move(hosts), port, options);
  OpenFds open;
  for (const qi::AddrInfo& info : infos)
    if (int fd = qi::detail::bind_listener(info, options); fd >= 0) open.fds.push_back(fd);
  if (open.fds.empty()) {
    std::string list;
    for (const qi::AddrInfo& info : infos) list += (list.empty() ? "" : ", ") + info.address.to_string();
    throw qi::OSError("create_server: could not bind on any address out of " + list);
  }
  co_return co_await qi::detail::make_server(*this, open.release(), std::move(factory), options.backlog,
                                             options.start_serving, "create_server");
}

qi::Coro<qi::Server> QiEventLoop::adopt_server_socket(ProtocolFactory factory, int sock, qi::ServerOptions options) {
  factory = qi::detail::with_tls(*this, std::move(factory), options, "create_server");
  qi::detail::check_adopted_socket(sock, SOCK_STREAM, "create_server", "a server listens on stream sockets");
  qi::detail::ensure_fd_no_transport(sock, "create_server");
  int flags = ::fcntl(sock, F_GETFL);
  if (flags < 0 || ::fcntl(sock, F_SETFL, flags | O_NONBLOCK) < 0)
    qi::throw_os_error(errno, "create_server: making fd " + std::to_string(sock) + " non-blocking");
  std::vector<int> fds{sock};  // named: g++ 12 mishandles a braced temporary in a co_await
  co_return co_await qi::detail::make_server(*this, std::move(fds), std::move(factory), options.backlog,
                                             options.start_serving, "create_server");
}

qi::Coro<qi::Server> QiEventLoop::open_unix_server(ProtocolFactory factory, std::string path,
                                                   qi::UnixServerOptions options) {
  qi::SocketAddress address = qi::SocketAddress::unix_path(path);  // qi::ValueError for a bad path
  factory = qi::detail::with_tls(*this, std::move(factory), options, "create_unix_server");
  const bool file = !address.is_abstract();
  if (file) {
    struct stat st;
    if (::stat(path.c_str(), &st) == 0) {
      if (!S_ISSOCK(st.st_mode))
        throw qi::OSError(EADDRINUSE, "create_unix_server: " + path +
                                          " exists and is not a socket; remove it or choose another path");
      ::unlink(path.c_str());  // a stale socket file (asyncio removes it too)
    }
  }
  OpenFds open;
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) qi::throw_os_error(errno, "create_unix_server: socket()");
  open.fds.push_back(fd);
  if (::bind(fd, address.native(), address.size()) < 0)
    qi::throw_os_error(errno, "create_unix_server: error while attempting to bind on address " + address.to_string());
  std::string cleanup = file && options.cleanup_socket ? path : std::string();
  co_return co_await qi::detail::make_server(*this, open.release(), std::move(factory), options.backlog,
                                             options.start_serving, "create_unix_server", std::move(cleanup));
}

void QiEventLoop::close_servers() noexcept { qi::detail::ServerState::close_all(*this); }

// --- qi::Server ---------------------------------------------------------------------------

namespace qi {

namespace {

Coro<void> wait_closed_of(std::shared_ptr<detail::ServerState> s) {
  if (!s->drained.is_set()) co_await s->drained.wait();
}

Coro<void> start_serving_of(std::shared_ptr<detail::ServerState> s) {
  s->start_serving("start_serving");
  co_await qi::sleep(0);  // asyncio: so the readers are in place
}

Coro<void> serve_forever_of(std::shared_ptr<detail::ServerState> s) {
  if (s->forever_waiter)
    throw RuntimeError("serve_forever: the " + s->describe() +
                       " is already being awaited on serve_forever(); await it from one task only");
  if (s->closed()) throw RuntimeError("serve_forever: the server is closed; create a new server (loop.create_server)");
  s->start_serving("serve_forever");
  Future<void> waiting = s->loop().create_future<void>();
  s->forever_waiter = waiting;
  std::exception_ptr cancelled;
  try {
    co_await waiting;
  } catch (const CancelledError&) {
    cancelled = std::current_exception();
  }
  if (s->forever_waiter && *s->forever_waiter == waiting) s->forever_waiter.reset();
  // Cancelled (or closed from elsewhere): asyncio closes, waits for the
  // connections to end, then re-raises. (Nothing else completes `waiting`.)
  s->close();
  co_await wait_closed_of(s);
  if (cancelled) std::rethrow_exception(cancelled);
}

}  // namespace

const std::shared_ptr<detail::ServerState>& Server::shared() const {
  if (!state_) throw RuntimeError("qi::Server: an empty handle (default-constructed or moved from); assign it the "
                                  "result of loop.create_server first");
  return state_;
}

std::vector<SocketAddress> Server::sockets() const {
  std::vector<SocketAddress> out;
  for (const auto& l : state().listeners()) out.push_back(l.address);
  return out;
}

std::vector<int> Server::filenos() const {
  std::vector<int> out;
  for (const auto& l : state().listeners()) out.push_back(l.fd);
  return out;
}

bool Server::is_serving() const { return state().serving(); }
Coro<void> Server::start_serving() { return start_serving_of(shared()); }
Coro<void> Server::serve_forever() { return serve_forever_of(shared()); }
void Server::close() { state().close(); }
Coro<void> Server::wait_closed() { return wait_closed_of(shared()); }
void Server::close_clients() { state().close_clients(false); }
void Server::abort_clients() { state().close_clients(true); }
QiEventLoop& Server::get_loop() const { return state().loop(); }

}  // namespace qi
