// ws_connection.h — a WebSocket connection on qiloop's streams, after the
// opening handshake (ws_handshake.h): messages in and out, pings answered,
// the closing handshake, protocol errors failing the connection with their
// close code. The server's side (client frames must be masked).
//
//   ws::Connection conn(std::move(reader), std::move(writer));   // after the 101 response
//   while (std::optional<ws::Message> m = co_await conn.receive())
//     co_await conn.send_text(m->data);                         // an echo
//   conn.close_info()->code;                                    // 1000, 1002, 1006, ...
//
//   // or with 1011 for a handler that throws:
//   std::exception_ptr failed = co_await ws::serve_messages(conn, handler);
//
// The contract (RFC 6455 sections 5 to 7):
// - receive() gives whole messages (ws_message.h reassembles them). A ping
//   is answered with a pong carrying its payload, a pong is dropped; both
//   are handled inside receive(), so a connection answers pings only while
//   some task receives. std::nullopt once the connection is closed;
//   close_info() then says how.
// - The peer's close frame: answered with a close frame echoing its code
//   (an empty one when it had none), then the TCP connection is closed
//   (the server closes first, section 7.1.1). close_info(): the peer's
//   code (1005 when its frame had none) and reason, kPeer.
// - A protocol error (every rule of ws_frame.h and ws_message.h: 1002,
//   1007, 1009): a close frame with the error's code and reason is sent,
//   the sending side shut down (write_eof), and what the peer still sends
//   is read and dropped until it closes or close_timeout passes, before
//   the socket is closed: closing with unread bytes would make the kernel
//   reset the connection, and the peer could lose the close frame.
//   close_info(): the code sent, kError.
// - close(code, reason): the closing handshake started here. Sends the
//   close frame, then reads until the peer's close frame (dropping data
//   frames, section 7.1.2) or close_timeout, then closes the socket.
//   close_info(): the code sent, kSelf. Nothing happens once closing.
// - A connection lost without a close frame (EOF, a reset): close_info()
//   1006, kLost.
// - send_text / send_binary: one unfragmented, unmasked frame, then drain
//   (waits while the peer is slow). Throw ws::ConnectionClosed once the
//   connection is closing or lost; send_text throws std::invalid_argument
//   for text that is not UTF-8 (a peer would have to fail on it).
// - One task receives at a time, and close() reads too: call it from the
//   task that receives, or when no receive() waits (the StreamReader throws
//   qi::RuntimeError otherwise). Sends may come from any task of the loop.
// - Cancellation: a receive() cancelled while it waits for bytes loses
//   nothing (the stream keeps them; the decoder keeps what it had).
// Thread-safety: the loop's thread only, as qiloop's streams.
#pragma once

#include "ws_message.h"

#include <qiloop/coro.h>
#include <qiloop/errors.h>
#include <qiloop/net/streams.h>

#include <QtCore/QByteArray>
#include <QtCore/QByteArrayView>

#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <string>

namespace ws {

// ws::kDefaultMaxMessage
// The default message size limit (1 MiB, as Python's websockets).
inline constexpr std::size_t kDefaultMaxMessage = std::size_t{1} << 20;

// ws::ConnectionOptions
struct ConnectionOptions {
  // The longest message accepted (over: close 1009). At most
  // ws::kLargestMessageLimit.
  std::size_t max_message = kDefaultMaxMessage;
  // How long a closing handshake waits for the peer (its close frame, its
  // end of stream) before the socket is closed anyway.
  std::chrono::milliseconds close_timeout{5000};
};

// ws::CloseInfo
// How a connection ended.
struct CloseInfo {
  enum class By {
    kPeer,   // the peer's close frame (code: its code, 1005 without one)
    kSelf,   // Connection::close()
    kError,  // a protocol error found here (code: the one sent)
    kLost,   // no close frame: end of stream or reset (code 1006)
  };
  std::uint16_t code = close_code::kAbnormal;
  std::string reason;
  By by = By::kLost;
};

// ws::ConnectionClosed
// A send on a connection that is closing or closed. A qi::RuntimeError.
class ConnectionClosed : public qi::RuntimeError {
 public:
  explicit ConnectionClosed(const CloseInfo& info);
  const CloseInfo& info() const noexcept { return info_; }

 private:
  CloseInfo info_;
};

// ws::Connection
// Not copyable or movable: its coroutines refer to it.
class Connection {
 public:
  enum class State { kOpen, kClosing, kClosed };

  // Connection::Connection()
  // Over the streams of a connection whose handshake is done. Throws
  // std::invalid_argument for a max_message over kLargestMessageLimit.
  Connection(qi::StreamReader reader, qi::StreamWriter writer, ConnectionOptions options = {});
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Connection::receive()
  // The next message, or std::nullopt once closed (see the file comment).
  qi::Coro<std::optional<Message>> receive();

  // Connection::send_text()
  // Connection::send_binary()
  qi::Coro<void> send_text(QByteArrayView utf8);
  qi::Coro<void> send_binary(QByteArrayView data);

  // Connection::close()
  // The closing handshake, started here (see the file comment). code: one
  // a peer may receive (ws::is_valid_close_code), reason at most 123 bytes
  // of UTF-8 (longer is cut); std::invalid_argument otherwise.
  qi::Coro<void> close(std::uint16_t code = close_code::kNormal, std::string reason = {});

  // Connection::state()
  // Connection::close_info()
  // Connection::peer()
  // close_info() is set from the moment the connection starts closing.
  // peer(): "127.0.0.1:54321", kept after the connection is lost.
  State state() const noexcept { return state_; }
  const std::optional<CloseInfo>& close_info() const noexcept { return close_info_; }
  std::string peer() const;

 private:
  qi::Coro<void> send(Opcode opcode, QByteArrayView payload);
  void write_frame(Opcode opcode, QByteArrayView payload);
  void write_close(std::uint16_t code, std::string_view reason);
  // Fails the connection: close frame, write_eof, drain the peer, close.
  qi::Coro<void> fail(const ProtocolError& error);
  // Reads and decodes until the peer's close frame, an error or the end.
  qi::Coro<void> until_peer_closes();
  // Reads and drops everything until the end of the stream.
  qi::Coro<void> discard_until_eof();
  // Closes the socket and waits (bounded) until it is closed.
  qi::Coro<void> shut();
  // Bytes from the stream; empty at the end or when the connection broke.
  qi::Coro<QByteArray> read_some();

  qi::StreamReader reader_;
  qi::StreamWriter writer_;
  ConnectionOptions options_;
  MessageDecoder decoder_;
  State state_ = State::kOpen;
  std::optional<CloseInfo> close_info_;
};

// ws::MessageHandler
// What serve_messages calls for each message. Its captures must outlive
// the serve_messages call.
using MessageHandler = std::function<qi::Coro<void>(Connection&, Message)>;

// ws::serve_messages()
// Calls handler for each message, one at a time, until the connection is
// closed. A handler that throws makes the connection close with 1011
// ("internal error": the details stay here); that exception is returned
// (null when the connection simply ended). A ws::ConnectionClosed from the
// handler (it sent on a closing connection) ends the loop quietly.
qi::Coro<std::exception_ptr> serve_messages(Connection& conn, MessageHandler handler);

}  // namespace ws
