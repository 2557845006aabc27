// ws_frame.h — RFC 6455 frames as bytes and back, with no I/O: an
// incremental decoder fed whatever bytes arrived, and the encoder.
//
//   ws::FrameDecoder decoder(ws::Role::kServer, 1 << 20);
//   decoder.feed(bytes_from_the_socket);                      // any split
//   for (;;) {
//     ws::FrameDecoder::Result r = decoder.next();
//     if (std::holds_alternative<ws::NeedMore>(r)) break;     // feed more
//     if (auto* e = std::get_if<ws::ProtocolError>(&r)) fail(e->code, e->reason);
//     handle(std::get<ws::Frame>(r));
//   }
//   QByteArray bytes = ws::encode_frame(ws::Opcode::kText, "hi");   // a server's frame
//
// The decoder enforces the frame-level rules of RFC 6455 section 5 and
// reports a broken one as a ProtocolError carrying the close code to send:
// - reserved bits RSV1-3 set (no extension is ever negotiated here), or a
//   reserved opcode (3-7, 0xB-0xF): 1002;
// - masking: a server's decoder (Role::kServer) wants every frame masked,
//   a client's wants none masked (sections 5.1, 5.3): 1002;
// - control frames (close, ping, pong) of more than 125 bytes or
//   fragmented (FIN clear): 1002 (section 5.5);
// - lengths: 7-bit, 16-bit (126) and 64-bit (127) forms, each only when
//   the shorter cannot say the length ("the minimal number of bytes MUST
//   be used", section 5.2), the 64-bit one with its top bit clear: 1002;
// - a data frame longer than the decoder's data limit: 1009, reported from
//   the header alone, before any of its payload is awaited or buffered, so
//   that a hostile length never makes the decoder hold gigabytes.
// Message-level rules (fragment order, UTF-8, close payloads, the size of
// a whole message) are ws_message.h's.
//
// After a ProtocolError the decoder stays failed: next() repeats the error
// and feed() ignores its bytes (the connection is to be closed).
// Payloads come out unmasked. Thread-safety: none (one owner, e.g. one
// connection's task); no call blocks or waits.
#pragma once

#include <QtCore/QByteArray>
#include <QtCore/QByteArrayView>

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <variant>

namespace ws {

// ws::Opcode
// The opcodes RFC 6455 defines (section 5.2); the others are reserved.
enum class Opcode : std::uint8_t {
  kContinuation = 0x0,
  kText = 0x1,
  kBinary = 0x2,
  kClose = 0x8,
  kPing = 0x9,
  kPong = 0xA,
};

// ws::is_control()
// Close, ping and pong: at most 125 bytes, never fragmented, allowed
// between the fragments of a message.
constexpr bool is_control(Opcode op) noexcept { return (static_cast<std::uint8_t>(op) & 0x8) != 0; }

// ws::close_code
// The status codes this library sends (section 7.4.1). kNoStatus and
// kAbnormal are never sent: they name a close frame without a code and a
// connection lost without a close frame.
namespace close_code {
inline constexpr std::uint16_t kNormal = 1000;
inline constexpr std::uint16_t kGoingAway = 1001;
inline constexpr std::uint16_t kProtocolError = 1002;
inline constexpr std::uint16_t kNoStatus = 1005;
inline constexpr std::uint16_t kAbnormal = 1006;
inline constexpr std::uint16_t kInvalidPayload = 1007;
inline constexpr std::uint16_t kMessageTooBig = 1009;
inline constexpr std::uint16_t kInternalError = 1011;
}  // namespace close_code

// ws::is_valid_close_code()
// Whether a peer may send this code in a close frame: 1000-1003, 1007-1014
// (the IANA registry's), 3000-4999 (libraries, applications). 1004-1006,
// 1015, the rest of 1000-2999 and everything outside are a protocol error.
constexpr bool is_valid_close_code(std::uint16_t code) noexcept {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

// ws::Role
// Which end decodes: a server receives masked frames, a client unmasked.
enum class Role { kServer, kClient };

// ws::kMaxControlPayload
// The longest payload of a close, ping or pong frame.
inline constexpr std::size_t kMaxControlPayload = 125;

// ws::Frame
// One frame, its payload unmasked.
struct Frame {
  bool fin = true;
  Opcode opcode = Opcode::kText;
  QByteArray payload;
  friend bool operator==(const Frame&, const Frame&) = default;
};

// ws::ProtocolError
// Why the connection must fail, and the close code to send for it.
struct ProtocolError {
  std::uint16_t code = close_code::kProtocolError;
  std::string reason;
};

// ws::NeedMore
// The decoder holds no complete frame: feed it more bytes.
struct NeedMore {};

// ws::MaskKey
// The four bytes a client XORs its payload with (section 5.3).
using MaskKey = std::array<std::uint8_t, 4>;

// ws::apply_mask()
// XORs data in place with key, starting at key byte `offset % 4`. Its own
// inverse.
void apply_mask(char* data, std::size_t size, const MaskKey& key, std::size_t offset = 0) noexcept;

// ws::FrameDecoder
class FrameDecoder {
 public:
  using Result = std::variant<NeedMore, Frame, ProtocolError>;

  // FrameDecoder::FrameDecoder()
  // max_data_payload: the longest text, binary or continuation frame
  // accepted (a longer one is a 1009 ProtocolError); control frames have
  // their own 125.
  FrameDecoder(Role role, std::uint64_t max_data_payload);

  // FrameDecoder::feed()
  // Appends bytes received (copied). Ignored once the decoder failed.
  void feed(QByteArrayView bytes);

  // FrameDecoder::next()
  // The next complete frame, NeedMore, or the ProtocolError (again and
  // again once failed). Bytes of a frame are taken only when it is
  // complete.
  Result next();

  // FrameDecoder::set_max_data_payload()
  // Changes the limit for frames whose header is not decoded yet (the
  // message layer lowers it to what a message in progress has left).
  void set_max_data_payload(std::uint64_t max) noexcept { max_data_payload_ = max; }
  std::uint64_t max_data_payload() const noexcept { return max_data_payload_; }

  // FrameDecoder::buffered()
  // Bytes fed and not yet returned as frames.
  std::size_t buffered() const noexcept { return static_cast<std::size_t>(buffer_.size()) - consumed_; }

  // FrameDecoder::failed()
  bool failed() const noexcept { return error_.has_value(); }

 private:
  ProtocolError fail(std::uint16_t code, std::string reason);

  Role role_;
  std::uint64_t max_data_payload_;
  // buffer_[consumed_..] are the bytes not yet returned; compacted when
  // the consumed part is most of it, so that feeding stays linear.
  QByteArray buffer_;
  std::size_t consumed_ = 0;
  std::optional<ProtocolError> error_;
};

// ws::frame_header()
// The header of a frame of payload_size bytes: 2 to 14 bytes, the minimal
// length form, masked with *mask when given (a client's frame). Throws
// std::invalid_argument for a control opcode with more than 125 bytes or
// FIN clear.
QByteArray frame_header(Opcode opcode, std::uint64_t payload_size, bool fin = true,
                        const std::optional<MaskKey>& mask = std::nullopt);

// ws::encode_frame()
// Header and payload in one array (the payload masked when mask is given).
// Throws as frame_header.
QByteArray encode_frame(Opcode opcode, QByteArrayView payload, bool fin = true,
                        const std::optional<MaskKey>& mask = std::nullopt);

// ws::close_payload()
// A close frame's payload: the code (big-endian) then the UTF-8 reason.
// Throws std::invalid_argument for a code a peer may not send
// (is_valid_close_code) or a reason over 123 bytes.
QByteArray close_payload(std::uint16_t code, QByteArrayView reason = {});

}  // namespace ws
