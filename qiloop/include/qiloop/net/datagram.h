// qiloop/net/datagram.h — UDP (and Unix datagram) endpoints: asyncio's
// DatagramProtocol, DatagramTransport and loop.create_datagram_endpoint.
//
//   class Echo : public qi::DatagramProtocol {
//     qi::DatagramTransport* t_ = nullptr;
//     void connection_made(qi::DatagramTransport& t) override { t_ = &t; }
//     void datagram_received(QByteArrayView data, const qi::SocketAddress& from) override {
//       t_->sendto(data, from);
//     }
//   };
//   auto [transport, echo] = co_await loop.create_datagram_endpoint(
//       [] { return std::make_unique<Echo>(); },
//       qi::DatagramOptions{.local_addr = {{"127.0.0.1", 9999}}});
//
// The contract (asyncio's selector_events.py _SelectorDatagramTransport and
// base_events.py create_datagram_endpoint):
// - Ownership and order as for stream transports (<qiloop/net/protocols.h>):
//   the loop owns the transport, the transport its protocol, until
//   connection_lost has returned; connection_made once, then
//   datagram_received / error_received any number of times, then
//   connection_lost exactly once. loop.close() destroys endpoints still
//   open (socket closed, no connection_lost).
// - One datagram per datagram_received, with its sender; the view is valid
//   during the call only. Datagrams over 256 KiB are truncated (asyncio's
//   max_size); UDP's own limit is 65507 bytes.
// - sendto() tries the socket at once and buffers the datagram only when it
//   would block (asyncio); empty datagrams are sent (asyncio 3.13). A
//   buffered datagram counts its size plus 8 in get_write_buffer_size(),
//   which drives pause_writing / resume_writing (high 64 KiB, low 16 KiB).
// - A connected endpoint (remote_addr, or a connected sock) sends to its
//   peer: sendto() with another address throws qi::ValueError; peername()
//   is the peer. An unconnected one needs an address per sendto (else
//   qi::ValueError) — except with allow_broadcast, where remote_addr is not
//   connected (asyncio) but is sendto()'s default.
// - Send and receive errors do not end the endpoint: they go to
//   error_received as the qi::OSError subclass (an ICMP port unreachable
//   on a connected socket: qi::ConnectionRefusedError); the datagram is
//   dropped. A protocol callback that throws is reported to the loop's
//   exception handler and aborts the transport (connection_lost receives
//   the exception).
// - close() stops receiving, sends what is buffered, then
//   connection_lost(nullptr); abort() drops the buffer. Both idempotent.
//   sendto() after them is dropped silently (the 5th logs a warning).
// - Thread-safety: the loop's thread only. Every method may be called from
//   the protocol's callbacks.
#pragma once

#include <qiloop/coro.h>
#include <qiloop/errors.h>
#include <qiloop/event_loop.h>
#include <qiloop/export.h>
#include <qiloop/net/address.h>

#include <QtCore/QByteArrayView>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

namespace qi {

class DatagramTransport;

// qi::DatagramProtocol
// What a datagram endpoint receives (asyncio.DatagramProtocol). The
// defaults do nothing.
class DatagramProtocol {
 public:
  virtual ~DatagramProtocol() = default;

  // DatagramProtocol::connection_made()
  // The endpoint is up; `transport` stays valid until connection_lost has
  // returned.
  virtual void connection_made(DatagramTransport& transport) { (void)transport; }

  // DatagramProtocol::datagram_received()
  // One datagram (possibly empty) from `addr`; valid during the call only.
  virtual void datagram_received(QByteArrayView data, const SocketAddress& addr) {
    (void)data;
    (void)addr;
  }

  // DatagramProtocol::error_received()
  // A send or receive failed (a qi::OSError subclass); the endpoint stays
  // open.
  virtual void error_received(std::exception_ptr error) { (void)error; }

  // DatagramProtocol::connection_lost()
  // The endpoint is closed: null after close() / abort(), else why. The last
  // call; the protocol is destroyed after it.
  virtual void connection_lost(std::exception_ptr error) { (void)error; }

  // DatagramProtocol::pause_writing()
  // DatagramProtocol::resume_writing()
  // The send buffer went over its high-water mark / back to its low one.
  virtual void pause_writing() {}
  virtual void resume_writing() {}
};

// qi::DatagramTransport
// A datagram socket (asyncio.DatagramTransport). Made by
// create_datagram_endpoint; never by the application.
class QILOOP_EXPORT DatagramTransport {
 public:
  DatagramTransport() = default;
  DatagramTransport(const DatagramTransport&) = delete;
  DatagramTransport& operator=(const DatagramTransport&) = delete;

  // DatagramTransport::sendto()
  // Sends one datagram to addr (or, without addr, to the connected peer or
  // the remote_addr given). Throws qi::ValueError for an address other than
  // a connected endpoint's peer, or none on an endpoint without a default.
  void sendto(QByteArrayView data) { send(data, nullptr); }
  void sendto(QByteArrayView data, const SocketAddress& addr) { send(data, &addr); }

  // DatagramTransport::close()
  // DatagramTransport::abort()
  // DatagramTransport::is_closing()
  // As qi::Transport's: close() sends the buffer first, abort() drops it;
  // connection_lost(nullptr) from a later callback. Idempotent.
  virtual void close() = 0;
  virtual void abort() = 0;
  virtual bool is_closing() const noexcept = 0;

  // DatagramTransport::get_write_buffer_size()
  // DatagramTransport::set_write_buffer_limits()
  // DatagramTransport::get_write_buffer_limits()
  // As qi::Transport's; each buffered datagram counts 8 bytes more.
  virtual std::size_t get_write_buffer_size() const noexcept = 0;
  virtual void set_write_buffer_limits(std::optional<std::size_t> high = std::nullopt,
                                       std::optional<std::size_t> low = std::nullopt) = 0;
  virtual std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept = 0;

  // DatagramTransport::sockname()
  // DatagramTransport::peername()
  // DatagramTransport::fileno()
  // The local address, the connected peer (empty when not connected), the
  // socket's fd (the transport's: do not close it).
  virtual SocketAddress sockname() const = 0;
  virtual SocketAddress peername() const = 0;
  virtual int fileno() const noexcept = 0;

  // DatagramTransport::get_protocol()
  virtual DatagramProtocol& get_protocol() const noexcept = 0;

 protected:
  virtual ~DatagramTransport() = default;  // the loop destroys transports
  virtual void send(QByteArrayView data, const SocketAddress* addr) = 0;
};

// qi::DatagramOptions
// create_datagram_endpoint's keyword arguments (asyncio's names).
struct DatagramOptions {
  // Bind to this (host, port) / connect to this one; host names are
  // resolved with loop.getaddrinfo. With family AF_UNIX, the string is a
  // socket path (the port is ignored); a stale socket file at local_addr is
  // removed first, as asyncio does.
  std::optional<std::pair<std::string, uint16_t>> local_addr{};
  std::optional<std::pair<std::string, uint16_t>> remote_addr{};
  int family = 0;  // AF_UNSPEC, AF_INET, AF_INET6, AF_UNIX; required without addresses
  int proto = 0;
  int flags = 0;   // getaddrinfo's AI_* flags
  bool reuse_port = false;       // SO_REUSEPORT
  bool allow_broadcast = false;  // SO_BROADCAST; remote_addr is then not connected
};

}  // namespace qi

// --- QiEventLoop::create_datagram_endpoint() (declared in event_loop.h) ---

namespace qi::detail {
template <class Factory>
QiEventLoop::DatagramProtocolFactory erase_datagram_factory(Factory factory) {
  using P = std::remove_pointer_t<typename DatagramResult<Factory>::second_type>;
  static_assert(std::is_base_of_v<qi::DatagramProtocol, P>,
                "qiloop: the protocol factory must return std::unique_ptr<P>, P deriving from qi::DatagramProtocol");
  return [factory = std::move(factory)]() mutable -> std::unique_ptr<qi::DatagramProtocol> {
    std::unique_ptr<P> p = factory();
    if (!p)
      throw qi::ValueError("create_datagram_endpoint: the protocol factory returned null; return a new protocol "
                           "(std::make_unique)");
    return p;
  };
}
template <class Factory>
DatagramResult<Factory> typed_datagram(qi::DatagramTransport* transport) {
  using P = std::remove_pointer_t<typename DatagramResult<Factory>::second_type>;
  return {transport, static_cast<P*>(&transport->get_protocol())};
}
}  // namespace qi::detail

template <class Factory, class Options>
qi::Coro<qi::detail::DatagramResult<Factory>> QiEventLoop::create_datagram_endpoint(Factory factory, Options options) {
  static_assert(std::is_same_v<Options, qi::DatagramOptions>,
                "qiloop: create_datagram_endpoint's options are a qi::DatagramOptions");
  auto erased = qi::detail::erase_datagram_factory(std::move(factory));
  qi::DatagramTransport* t = co_await open_datagram_endpoint(std::move(erased), std::move(options));
  co_return qi::detail::typed_datagram<Factory>(t);
}

template <class Factory>
qi::Coro<qi::detail::DatagramResult<Factory>> QiEventLoop::create_datagram_endpoint(Factory factory, int sock) {
  auto erased = qi::detail::erase_datagram_factory(std::move(factory));
  co_return qi::detail::typed_datagram<Factory>(adopt_datagram_socket(std::move(erased), sock));
}
