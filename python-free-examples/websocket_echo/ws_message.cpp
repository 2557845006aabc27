#include "ws_message.h"

#include <QtCore/QtEndian>

#include <stdexcept>
#include <string>
#include <utility>

namespace ws {

namespace {

std::size_t checked_limit(std::size_t max_message) {
  if (max_message > kLargestMessageLimit)
    throw std::invalid_argument("ws::MessageDecoder: max_message " + std::to_string(max_message) +
                                " is over ws::kLargestMessageLimit (" + std::to_string(kLargestMessageLimit) +
                                "); messages are held whole in memory");
  return max_message;
}

}  // namespace

MessageDecoder::MessageDecoder(Role role, std::size_t max_message)
    : frames_(role, checked_limit(max_message)), max_message_(max_message) {}

void MessageDecoder::feed(QByteArrayView bytes) {
  if (error_ || closed_) return;
  frames_.feed(bytes);
}

ProtocolError MessageDecoder::fail(std::uint16_t code, std::string reason) {
  error_ = ProtocolError{code, std::move(reason)};
  partial_.reset();
  return *error_;
}

MessageDecoder::Event MessageDecoder::next() {
  if (error_) return *error_;
  while (!closed_) {
    FrameDecoder::Result r = frames_.next();
    if (std::holds_alternative<NeedMore>(r)) return NeedMore{};
    if (auto* e = std::get_if<ProtocolError>(&r)) return fail(e->code, std::move(e->reason));
    Frame& frame = std::get<Frame>(r);
    switch (frame.opcode) {
      case Opcode::kPing:
        return Ping{std::move(frame.payload)};
      case Opcode::kPong:
        return Pong{std::move(frame.payload)};
      case Opcode::kClose:
        return take_close(frame.payload);
      case Opcode::kText:
      case Opcode::kBinary:
      case Opcode::kContinuation:
        if (std::optional<Event> e = take_data(std::move(frame))) return std::move(*e);
        break;
    }
  }
  return NeedMore{};
}

std::optional<MessageDecoder::Event> MessageDecoder::take_data(Frame frame) {
  if (frame.opcode == Opcode::kContinuation) {
    if (!partial_) return fail(close_code::kProtocolError, "continuation frame with no message in progress");
    partial_->data.append(frame.payload);
  } else {
    if (partial_)
      return fail(close_code::kProtocolError,
                  "new data frame while a fragmented message is in progress (expected a continuation frame)");
    partial_ = Message{frame.opcode == Opcode::kText ? MessageType::kText : MessageType::kBinary,
                       std::move(frame.payload)};
    utf8_.reset();
  }
  const bool text = partial_->type == MessageType::kText;
  // Only the new bytes are checked: the validator carries a character cut
  // between fragments over.
  if (text) {
    const QByteArrayView fresh = frame.opcode == Opcode::kContinuation
                                     ? QByteArrayView(partial_->data).last(frame.payload.size())
                                     : QByteArrayView(partial_->data);
    if (!utf8_.feed(fresh)) return fail(close_code::kInvalidPayload, "text message is not valid UTF-8");
  }
  if (!frame.fin) {
    // The frame decoder refuses a next fragment that would overflow the
    // message from its header alone.
    frames_.set_max_data_payload(max_message_ - static_cast<std::size_t>(partial_->data.size()));
    return std::nullopt;
  }
  if (text && !utf8_.complete()) return fail(close_code::kInvalidPayload, "text message ends inside a UTF-8 character");
  frames_.set_max_data_payload(max_message_);
  Message done = std::move(*partial_);
  partial_.reset();
  return done;
}

MessageDecoder::Event MessageDecoder::take_close(const QByteArray& payload) {
  if (payload.size() == 1) return fail(close_code::kProtocolError, "close frame with a 1-byte payload");
  Close close;
  if (!payload.isEmpty()) {
    const std::uint16_t code = qFromBigEndian<quint16>(payload.constData());
    if (!is_valid_close_code(code))
      return fail(close_code::kProtocolError, "close frame with code " + std::to_string(code) + ", which may not be sent");
    close.code = code;
    close.reason = payload.sliced(2);
    if (!is_valid_utf8(close.reason)) return fail(close_code::kInvalidPayload, "close reason is not valid UTF-8");
  }
  closed_ = true;
  partial_.reset();
  return close;
}

}  // namespace ws
