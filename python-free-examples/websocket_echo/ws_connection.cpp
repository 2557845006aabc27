#include "ws_connection.h"

#include <qiloop/structured/timeout.h>

#include <stdexcept>
#include <utility>

namespace ws {

namespace {

// How much one read asks the stream for (its default limit).
constexpr qsizetype kReadChunk = 64 * 1024;

std::string describe(const CloseInfo& info) {
  std::string s = "the WebSocket connection is closed (code " + std::to_string(info.code);
  if (!info.reason.empty()) s += ", \"" + info.reason + "\"";
  return s + ")";
}

// A reason cut to what a close frame holds, on a UTF-8 character boundary.
std::string fitting_reason(std::string reason) {
  constexpr std::size_t kMax = kMaxControlPayload - 2;
  if (reason.size() <= kMax) return reason;
  std::size_t n = kMax;
  while (n > 0 && (static_cast<unsigned char>(reason[n]) & 0xC0) == 0x80) --n;  // reason[n] starts the cut-off part
  reason.resize(n);
  return reason;
}

}  // namespace

ConnectionClosed::ConnectionClosed(const CloseInfo& info) : qi::RuntimeError(describe(info)), info_(info) {}

Connection::Connection(qi::StreamReader reader, qi::StreamWriter writer, ConnectionOptions options)
    : reader_(std::move(reader)),
      writer_(std::move(writer)),
      options_(options),
      decoder_(Role::kServer, options.max_message) {}

std::string Connection::peer() const { return writer_.transport().peername().to_string(); }

void Connection::write_frame(Opcode opcode, QByteArrayView payload) {
  const QByteArray header = frame_header(opcode, static_cast<std::uint64_t>(payload.size()));
  writer_.writelines({QByteArrayView(header), payload});  // one sendmsg, no copy of the payload
}

void Connection::write_close(std::uint16_t code, std::string_view reason) {
  write_frame(Opcode::kClose, close_payload(code, QByteArrayView(reason.data(), static_cast<qsizetype>(reason.size()))));
}

qi::Coro<QByteArray> Connection::read_some() {
  try {
    co_return co_await reader_.read(kReadChunk);
  } catch (const qi::OSError&) {  // reset, broken: the same end as EOF here
  }
  co_return QByteArray();
}

qi::Coro<std::optional<Message>> Connection::receive() {
  while (state_ == State::kOpen) {
    MessageDecoder::Event event = decoder_.next();
    if (auto* message = std::get_if<Message>(&event)) co_return std::move(*message);
    if (auto* ping = std::get_if<Ping>(&event)) {
      write_frame(Opcode::kPong, ping->payload);
      try {
        co_await writer_.drain();
      } catch (const qi::OSError&) {  // lost: the next read says so
      }
      continue;
    }
    if (std::holds_alternative<Pong>(event)) continue;  // unsolicited: nothing to match it with
    if (auto* close = std::get_if<Close>(&event)) {
      close_info_ = CloseInfo{close->code.value_or(close_code::kNoStatus), close->reason.toStdString(), CloseInfo::By::kPeer};
      state_ = State::kClosing;
      if (close->code)
        write_close(*close->code, {});
      else
        write_frame(Opcode::kClose, {});
      co_await shut();
      break;
    }
    if (auto* error = std::get_if<ProtocolError>(&event)) {
      co_await fail(*error);
      break;
    }
    const QByteArray bytes = co_await read_some();
    if (bytes.isEmpty()) {
      close_info_ = CloseInfo{close_code::kAbnormal, "connection lost without a close frame", CloseInfo::By::kLost};
      state_ = State::kClosing;
      co_await shut();
      break;
    }
    decoder_.feed(bytes);
  }
  co_return std::nullopt;
}

qi::Coro<void> Connection::fail(const ProtocolError& error) {
  close_info_ = CloseInfo{error.code, error.reason, CloseInfo::By::kError};
  state_ = State::kClosing;
  write_close(error.code, fitting_reason(error.reason));
  if (writer_.can_write_eof()) writer_.write_eof();
  try {
    co_await qi::wait_for(discard_until_eof(), options_.close_timeout);
  } catch (const qi::TimeoutError&) {  // a peer that never stops sending: closed all the same
  }
  co_await shut();
}

qi::Coro<void> Connection::discard_until_eof() {
  for (;;) {
    const QByteArray bytes = co_await read_some();  // (named: g++ 12 and negated co_await)
    if (bytes.isEmpty()) co_return;
  }
}

qi::Coro<void> Connection::close(std::uint16_t code, std::string reason) {
  if (state_ != State::kOpen) co_return;
  if (!is_valid_utf8(reason))
    throw std::invalid_argument("ws::Connection::close: the reason is not valid UTF-8");
  reason = fitting_reason(std::move(reason));
  write_close(code, reason);  // throws std::invalid_argument for a bad code, before any state changes
  close_info_ = CloseInfo{code, std::move(reason), CloseInfo::By::kSelf};
  state_ = State::kClosing;
  try {
    co_await writer_.drain();
    co_await qi::wait_for(until_peer_closes(), options_.close_timeout);
  } catch (const qi::OSError&) {  // lost, or the peer took too long (qi::TimeoutError)
  }
  co_await shut();
}

qi::Coro<void> Connection::until_peer_closes() {
  for (;;) {
    MessageDecoder::Event event = decoder_.next();
    if (std::holds_alternative<Close>(event) || std::holds_alternative<ProtocolError>(event)) co_return;
    if (!std::holds_alternative<NeedMore>(event)) continue;  // data and pings after our close: dropped
    const QByteArray bytes = co_await read_some();
    if (bytes.isEmpty()) co_return;
    decoder_.feed(bytes);
  }
}

qi::Coro<void> Connection::shut() {
  writer_.close();
  try {
    co_await qi::wait_for(writer_.wait_closed(), options_.close_timeout);
  } catch (const qi::OSError&) {  // lost with an error, or slow: closed either way
  }
  state_ = State::kClosed;
}

qi::Coro<void> Connection::send(Opcode opcode, QByteArrayView payload) {
  if (state_ != State::kOpen) throw ConnectionClosed(*close_info_);
  write_frame(opcode, payload);
  bool lost = false;
  try {
    co_await writer_.drain();
  } catch (const qi::OSError&) {
    lost = true;
  }
  if (lost) throw ConnectionClosed(close_info_.value_or(CloseInfo{}));
}

qi::Coro<void> Connection::send_text(QByteArrayView utf8) {
  if (!is_valid_utf8(utf8))
    throw std::invalid_argument("ws::Connection::send_text: the text is not valid UTF-8; send it with send_binary");
  return send(Opcode::kText, utf8);
}

qi::Coro<void> Connection::send_binary(QByteArrayView data) { return send(Opcode::kBinary, data); }

qi::Coro<std::exception_ptr> serve_messages(Connection& conn, MessageHandler handler) {
  while (std::optional<Message> message = co_await conn.receive()) {
    std::exception_ptr failure;
    try {
      qi::Coro<void> step = handler(conn, std::move(*message));  // (named: g++ 12 and temporaries around co_await)
      co_await std::move(step);
    } catch (const ConnectionClosed&) {
      // It sent on a connection closing or lost: the next receive() ends.
    } catch (const std::exception&) {  // not qi::CancelledError: a cancelled session stays cancelled
      failure = std::current_exception();
    }
    if (failure) {
      std::string reason = "internal error";
      co_await conn.close(close_code::kInternalError, std::move(reason));
      co_return failure;
    }
  }
  co_return nullptr;
}

}  // namespace ws
