// qiloop/net/transport.h — asyncio's stream transports (qi::Transport) and
// loop.create_connection / create_unix_connection, which connect a socket
// and hand it to a transport driving a qi::Protocol (<qiloop/net/protocols.h>).
//
//   auto [transport, proto] = co_await loop.create_connection(
//       [] { return std::make_unique<Echo>(); }, "localhost", 8888);
//   transport->write("hello\n");          // sends now, buffers only the rest
//   ...
//   transport->close();                   // flushes, then connection_lost(nullptr)
//
// The transport contract (asyncio's selector_events.py
// _SelectorSocketTransport, with the differences named):
// - Ownership: the loop owns a transport, and the transport its protocol,
//   until the protocol's connection_lost has returned; both are destroyed
//   then (the socket closed). A Transport* is valid from connection_made
//   until connection_lost returns. loop.close() destroys the transports still
//   open (fd closed, protocol destroyed without connection_lost, a warning
//   logged: asyncio's "unclosed transport").
// - Writes try the socket at once and buffer only what it did not take;
//   the loop's writer sends the buffer (writelines: one sendmsg over the
//   pieces, no joining copy). Nothing blocks; the buffer grows without
//   bound: watch pause_writing / get_write_buffer_size (flow control).
// - close() stops reading, sends what is buffered, then connection_lost
//   (null error) runs from a later loop callback; abort() drops the buffer
//   and does the same at once. Both are idempotent, and so is calling one
//   after the other. connection_lost runs exactly once.
// - Writes after close(), abort() or a lost connection are dropped
//   silently; the 5th such write logs one warning (category "qiloop"), as
//   asyncio logs "socket.send() raised exception." from its 5th. (asyncio
//   still sends writes made after close() while its buffer flushes; qiloop
//   drops them: close() means no more data.) write() / writelines() after
//   write_eof() throw qi::RuntimeError.
// - I/O errors (ECONNRESET, EPIPE, ...) end the connection: connection_lost
//   receives the qi::OSError subclass (qi::ConnectionResetError, ...); they
//   are not reported to the exception handler. A protocol callback that
//   throws is reported and aborts the transport (see protocols.h).
// - Thread-safety: the loop's thread only. Every method may be called from
//   the protocol's callbacks.
#pragma once

#include <qiloop/coro.h>
#include <qiloop/errors.h>
#include <qiloop/event_loop.h>
#include <qiloop/export.h>
#include <qiloop/net/address.h>
#include <qiloop/net/protocols.h>

#include <QtCore/QByteArray>
#include <QtCore/QByteArrayView>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

namespace qi {

class SslContext;  // <qiloop/net/ssl.h>

// qi::Transport
// A connected stream (asyncio's WriteTransport + ReadTransport). Made by
// create_connection / create_unix_connection (and servers); never by the
// application.
class QILOOP_EXPORT Transport {
 public:
  Transport() = default;
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Transport::write()
  // Sends data: what the socket does not take now is copied into the write
  // buffer and sent when it can. Empty data does nothing. Throws
  // qi::RuntimeError after write_eof().
  virtual void write(QByteArrayView data) = 0;

  // Transport::writelines()
  // write() of each piece in order, sent with one scatter-gather sendmsg
  // when nothing is buffered.
  virtual void writelines(std::span<const QByteArrayView> pieces) = 0;
  void writelines(std::initializer_list<QByteArrayView> pieces) {
    writelines(std::span<const QByteArrayView>(pieces.begin(), pieces.size()));
  }

  // Transport::write_eof()
  // Shuts the sending side down (shutdown(SHUT_WR)) once the buffer is sent;
  // reading goes on. Idempotent; does nothing once closing.
  virtual void write_eof() = 0;
  // Transport::can_write_eof()
  // Whether write_eof() is supported (true for TCP and Unix sockets).
  virtual bool can_write_eof() const noexcept = 0;

  // Transport::close()
  // Stops reading, sends the buffer, then closes (connection_lost(nullptr)
  // from a later callback). Idempotent.
  virtual void close() = 0;
  // Transport::abort()
  // Closes at once: the buffer is dropped (connection_lost(nullptr) from a
  // later callback). Idempotent.
  virtual void abort() = 0;
  // Transport::is_closing()
  // True from close(), abort() or the connection's end on.
  virtual bool is_closing() const noexcept = 0;

  // Transport::pause_reading()
  // Transport::resume_reading()
  // Transport::is_reading()
  // Stop and restart delivering received data (the socket is not read
  // meanwhile, so the peer's writes back up). Both are no-ops when already
  // in that state or closing. is_reading(): not paused and not closing.
  virtual void pause_reading() = 0;
  virtual void resume_reading() = 0;
  virtual bool is_reading() const noexcept = 0;

  // Transport::get_write_buffer_size()
  // Bytes buffered, not yet handed to the kernel.
  virtual std::size_t get_write_buffer_size() const noexcept = 0;
  // Transport::set_write_buffer_limits()
  // The water marks of pause_writing (buffer above high) and
  // resume_writing (back to low or below). Defaults, as asyncio: high 64
  // KiB; high given alone: low = high / 4; low given alone: high = 4 * low.
  // Throws qi::ValueError when high < low. Checks the marks at once.
  virtual void set_write_buffer_limits(std::optional<std::size_t> high = std::nullopt,
                                       std::optional<std::size_t> low = std::nullopt) = 0;
  // Transport::get_write_buffer_limits()
  // (low, high), as asyncio.
  virtual std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept = 0;

  // Transport::peername()
  // Transport::sockname()
  // Transport::fileno()
  // The peer's and the local address (asyncio's get_extra_info("peername")
  // / "sockname"), and the socket's fd (the transport's: do not close it,
  // nor call loop.sock_* on it — they throw qi::RuntimeError).
  virtual SocketAddress peername() const = 0;
  virtual SocketAddress sockname() const = 0;
  virtual int fileno() const noexcept = 0;

  // Transport::get_protocol()
  // The protocol the transport drives (owned by the transport).
  virtual BaseProtocol& get_protocol() const noexcept = 0;

  // Transport::set_protocol()
  // Hands the connection to protocol (a qi::Protocol or a
  // qi::BufferedProtocol, of either kind whatever the old one was; asyncio's
  // set_protocol): data read from now on, eof_received, pause/resume_writing
  // and connection_lost go to it; its connection_made is not called. Returns
  // the old protocol, which the caller owns from now on: called from one of
  // the old protocol's own callbacks, keep it alive until that callback
  // returns (the transport no longer touches it). Throws qi::ValueError for
  // a null protocol or a qi::BaseProtocol of neither kind (nothing changes).
  // A transport whose connection is already lost (a stream's after
  // loop.close()) throws qi::RuntimeError.
  [[nodiscard]] virtual std::unique_ptr<BaseProtocol> set_protocol(std::unique_ptr<BaseProtocol> protocol);

 protected:
  virtual ~Transport() = default;  // the loop destroys transports
};

// qi::ConnectOptions
// create_connection's keyword arguments (asyncio's names).
struct ConnectOptions {
  int family = 0;  // AF_UNSPEC, AF_INET, AF_INET6: passed to getaddrinfo
  int proto = 0;
  int flags = 0;   // getaddrinfo's AI_* flags
  // Bind the socket to this (host, port) first; resolved with getaddrinfo;
  // the first local address of the remote address's family that binds is
  // used.
  std::optional<std::pair<std::string, uint16_t>> local_addr;
  // Happy eyeballs (RFC 8305; 250 ms is its recommendation): start the next
  // address's attempt when the previous one has not connected after this
  // delay (or failed); the first to connect wins, the others are cancelled.
  // None: one address after the other.
  std::optional<std::chrono::nanoseconds> happy_eyeballs_delay;
  // Reorder the addresses by alternating families, `interleave` of the first
  // family first. None: 1 with happy_eyeballs_delay, else 0 (the resolver's
  // order).
  std::optional<int> interleave;
  // When every address fails: false — the one error, or one qi::OSError
  // naming each (of the common subclass when they share an errno); true —
  // a qi::ExceptionGroup of them all.
  bool all_errors = false;
  // TLS (<qiloop/net/ssl.h>): with a context, the connection is wrapped in
  // TLS and create_connection returns once the handshake completed.
  // server_hostname (SNI and the certificate check) defaults to host;
  // timeouts default to 60 s and 30 s. The last three without ssl:
  // qi::ValueError.
  std::shared_ptr<SslContext> ssl;
  std::optional<std::string> server_hostname;
  std::optional<std::chrono::nanoseconds> ssl_handshake_timeout;
  std::optional<std::chrono::nanoseconds> ssl_shutdown_timeout;
};

}  // namespace qi

// --- QiEventLoop::create_connection() and friends (declared in event_loop.h) ---

namespace qi::detail {
// The factory as the loop's non-template code calls it: checked once.
template <class Factory>
QiEventLoop::ProtocolFactory erase_factory(Factory factory, const char* api) {
  using P = std::remove_pointer_t<typename ConnectResult<Factory>::second_type>;
  static_assert(std::is_base_of_v<qi::Protocol, P> || std::is_base_of_v<qi::BufferedProtocol, P>,
                "qiloop: the protocol factory must return std::unique_ptr<P>, P deriving from qi::Protocol or "
                "qi::BufferedProtocol");
  return [factory = std::move(factory), api]() mutable -> std::unique_ptr<qi::BaseProtocol> {
    std::unique_ptr<P> p = factory();
    if (!p)
      throw qi::ValueError(std::string(api) + ": the protocol factory returned null; return a new protocol (std::make_unique)");
    return p;
  };
}
template <class Factory>
ConnectResult<Factory> typed(qi::Transport* transport) {
  using P = std::remove_pointer_t<typename ConnectResult<Factory>::second_type>;
  return {transport, static_cast<P*>(&transport->get_protocol())};
}
}  // namespace qi::detail

template <class Factory, class Options>
qi::Coro<qi::detail::ConnectResult<Factory>> QiEventLoop::create_connection(Factory factory, std::string host,
                                                                             uint16_t port, Options options) {
  static_assert(std::is_same_v<Options, qi::ConnectOptions>, "qiloop: create_connection's options are a qi::ConnectOptions");
  auto erased = qi::detail::erase_factory(std::move(factory), "create_connection");
  qi::Transport* t = co_await open_tcp_transport(std::move(erased), std::move(host), port, std::move(options));
  co_return qi::detail::typed<Factory>(t);
}

template <class Factory>
qi::Coro<qi::detail::ConnectResult<Factory>> QiEventLoop::create_connection(Factory factory, int sock) {
  auto erased = qi::detail::erase_factory(std::move(factory), "create_connection");
  qi::Transport* t = co_await adopt_socket_transport(std::move(erased), sock);
  co_return qi::detail::typed<Factory>(t);
}

template <class Factory>
qi::Coro<qi::detail::ConnectResult<Factory>> QiEventLoop::create_unix_connection(Factory factory, std::string path) {
  auto erased = qi::detail::erase_factory(std::move(factory), "create_unix_connection");
  qi::Transport* t = co_await open_unix_transport(std::move(erased), std::move(path));
  co_return qi::detail::typed<Factory>(t);
}
