// qiloop/net/protocols.h — asyncio's protocol interfaces: what a transport
// calls when bytes arrive, the peer closes its side, the connection ends,
// or the write buffer crosses its water marks.
//
//   class Echo : public qi::Protocol {
//     qi::Transport* t_ = nullptr;
//     void connection_made(qi::Transport& t) override { t_ = &t; }
//     void data_received(QByteArrayView data) override { t_->write(data); }
//     bool eof_received() override { return false; }             // true: keep half-open
//     void connection_lost(std::exception_ptr error) override {}  // null: clean close
//   };
//   auto [transport, echo] = co_await loop.create_connection(
//       [] { return std::make_unique<Echo>(); }, "127.0.0.1", port);
//
// The contract (asyncio's, transports.py / protocols.py):
// - Order: connection_made once, then data_received (or get_buffer /
//   buffer_updated) any number of times, then eof_received at most once,
//   then connection_lost exactly once. pause_writing / resume_writing
//   alternate (pause first) between connection_made and connection_lost.
// - The transport owns its protocol: the protocol is destroyed right after
//   connection_lost returns (the transport with it). Keep no pointer to
//   either past connection_lost.
// - All calls come on the loop's thread, from loop callbacks (never from
//   inside a transport method the protocol called, except pause_writing from
//   write() / writelines() and resume_writing never: it comes from the
//   loop's writer callback). A callback may call any transport method.
// - A callback that throws: the exception goes to the loop's exception
//   handler and the transport is aborted (asyncio's _fatal_error), so
//   connection_lost then receives that exception. An exception from
//   connection_lost itself is only reported.
// - data_received's view is valid during the call only (the transport
//   reuses its read buffer): copy what you keep.
#pragma once

#include <QtCore/QByteArrayView>

#include <cstddef>
#include <exception>
#include <span>

namespace qi {

class Transport;

// qi::BaseProtocol
// What every stream protocol receives (asyncio.BaseProtocol). The defaults
// do nothing.
class BaseProtocol {
 public:
  virtual ~BaseProtocol() = default;

  // BaseProtocol::connection_made()
  // The connection is up; `transport` stays valid until connection_lost
  // has returned.
  virtual void connection_made(Transport& transport) { (void)transport; }

  // BaseProtocol::connection_lost()
  // The connection is closed: error is null after close() (or the peer's
  // EOF), else why (qi::ConnectionResetError, the exception a callback
  // threw, ...). The last call; the protocol is destroyed after it.
  virtual void connection_lost(std::exception_ptr error) { (void)error; }

  // BaseProtocol::pause_writing()
  // BaseProtocol::resume_writing()
  // The transport's write buffer went over its high-water mark / back to
  // its low-water mark or below (see Transport::set_write_buffer_limits).
  virtual void pause_writing() {}
  virtual void resume_writing() {}
};

// qi::Protocol
// A stream protocol that receives bytes as views (asyncio.Protocol).
class Protocol : public BaseProtocol {
 public:
  // Protocol::data_received()
  // Bytes from the peer; never empty. Valid during the call only.
  virtual void data_received(QByteArrayView data) { (void)data; }

  // Protocol::eof_received()
  // The peer closed its sending side. Return false to close the transport
  // (the default), true to keep it open for writing (the protocol closes it
  // later).
  virtual bool eof_received() { return false; }
};

// qi::BufferedProtocol
// A stream protocol that gives the transport its own memory to read into
// (asyncio.BufferedProtocol): no copy between the socket and the protocol.
class BufferedProtocol : public BaseProtocol {
 public:
  // BufferedProtocol::get_buffer()
  // Memory to receive into, at least one byte; size_hint is a suggestion
  // (0: none). The transport reads into it at once and then calls
  // buffer_updated. An empty span is an error (the transport is aborted).
  virtual std::span<std::byte> get_buffer(std::size_t size_hint) = 0;

  // BufferedProtocol::buffer_updated()
  // nbytes (> 0) were written at the start of the last get_buffer span.
  virtual void buffer_updated(std::size_t nbytes) = 0;

  // BufferedProtocol::eof_received()
  // As Protocol::eof_received.
  virtual bool eof_received() { return false; }
};

}  // namespace qi
