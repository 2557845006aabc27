// ws_message.h — RFC 6455 messages from bytes, with no I/O: frames
// (ws_frame.h) reassembled into text and binary messages, control frames
// handed out as they come, every message-level rule checked.
//
//   ws::MessageDecoder decoder(ws::Role::kServer, 1 << 20);
//   decoder.feed(bytes);
//   for (ws::MessageDecoder::Event e = decoder.next(); !std::holds_alternative<ws::NeedMore>(e); e = decoder.next()) {
//     if (auto* m = std::get_if<ws::Message>(&e)) ...            // a whole text or binary message
//     else if (auto* p = std::get_if<ws::Ping>(&e)) ...          // answer with a pong
//     else if (auto* c = std::get_if<ws::Close>(&e)) ...         // the peer's close frame
//     else if (auto* err = std::get_if<ws::ProtocolError>(&e)) ... // send close err->code, drop the connection
//   }
//
// The rules, on top of the frame decoder's (whose errors come out as they are):
// - Fragmentation (section 5.4): a text or binary frame with FIN clear
//   starts a message that continuation frames extend until one has FIN
//   set. Control frames may come between the fragments and are handed out
//   at once. A continuation frame with no message started, or a new text or
//   binary frame while one is in progress: 1002.
// - Text messages must be UTF-8 (section 8.1): checked fragment by
//   fragment, so a bad byte fails at once, and at the end for a character
//   cut short: 1007.
// - Size: a message (all its fragments) longer than max_message: 1009,
//   told from a frame's header, before its payload is buffered.
// - Close frames (section 5.5.1): empty (no code: Close::code is empty,
//   what section 7.1.5 calls 1005), or a 2-byte code followed by a UTF-8
//   reason. One byte, or a code a peer may not send
//   (ws::is_valid_close_code): 1002; a reason that is not UTF-8: 1007.
// After a ProtocolError the decoder stays failed (next() repeats it).
// After a Close, the peer may send nothing more: next() gives NeedMore and
// feed() ignores what comes. Thread-safety: none (one owner); nothing
// blocks.
#pragma once

#include "ws_frame.h"
#include "ws_utf8.h"

#include <QtCore/QByteArray>
#include <QtCore/QByteArrayView>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <variant>

namespace ws {

// ws::MessageType
enum class MessageType { kText, kBinary };

// ws::Message
// A whole data message. A text message's data is valid UTF-8.
struct Message {
  MessageType type = MessageType::kText;
  QByteArray data;
  friend bool operator==(const Message&, const Message&) = default;
};

// ws::Ping
// ws::Pong
struct Ping {
  QByteArray payload;
};
struct Pong {
  QByteArray payload;
};

// ws::Close
// The peer's close frame: its code (none in an empty frame) and reason
// (valid UTF-8).
struct Close {
  std::optional<std::uint16_t> code;
  QByteArray reason;
};

// ws::kLargestMessageLimit
// The largest max_message a decoder takes (1 GiB): a message is held whole
// in memory.
inline constexpr std::size_t kLargestMessageLimit = std::size_t{1} << 30;

// ws::MessageDecoder
class MessageDecoder {
 public:
  using Event = std::variant<NeedMore, Message, Ping, Pong, Close, ProtocolError>;

  // MessageDecoder::MessageDecoder()
  // Throws std::invalid_argument for max_message over kLargestMessageLimit.
  MessageDecoder(Role role, std::size_t max_message);

  // MessageDecoder::feed()
  // Bytes received (any split). Ignored after a ProtocolError or a Close.
  void feed(QByteArrayView bytes);

  // MessageDecoder::next()
  // The next event the bytes fed so far make, or NeedMore.
  Event next();

  // MessageDecoder::max_message()
  // MessageDecoder::failed()
  // MessageDecoder::closed()
  // MessageDecoder::in_message()
  // The limit; whether a ProtocolError / a Close was returned; whether a
  // fragmented message is in progress.
  std::size_t max_message() const noexcept { return max_message_; }
  bool failed() const noexcept { return error_.has_value(); }
  bool closed() const noexcept { return closed_; }
  bool in_message() const noexcept { return partial_.has_value(); }

 private:
  ProtocolError fail(std::uint16_t code, std::string reason);
  // A data frame: nullopt when it only extends a message in progress.
  std::optional<Event> take_data(Frame frame);
  Event take_close(const QByteArray& payload);

  FrameDecoder frames_;
  std::size_t max_message_;
  std::optional<Message> partial_;  // a fragmented message in progress
  Utf8Validator utf8_;              // over partial_'s text so far
  std::optional<ProtocolError> error_;
  bool closed_ = false;
};

}  // namespace ws
