#include "ws_frame.h"

#include <QtCore/QtEndian>

#include <stdexcept>

namespace ws {

namespace {

constexpr std::uint8_t kFin = 0x80;
constexpr std::uint8_t kRsvBits = 0x70;
constexpr std::uint8_t kOpcodeBits = 0x0F;
constexpr std::uint8_t kMaskBit = 0x80;
constexpr std::uint8_t kLength16 = 126;
constexpr std::uint8_t kLength64 = 127;

bool is_defined(std::uint8_t opcode) {
  switch (opcode) {
    case 0x0: case 0x1: case 0x2: case 0x8: case 0x9: case 0xA:
      return true;
    default:
      return false;
  }
}

std::string opcode_name(Opcode op) {
  switch (op) {
    case Opcode::kContinuation: return "continuation";
    case Opcode::kText: return "text";
    case Opcode::kBinary: return "binary";
    case Opcode::kClose: return "close";
    case Opcode::kPing: return "ping";
    case Opcode::kPong: return "pong";
  }
  return "opcode " + std::to_string(static_cast<int>(op));
}

}  // namespace

void apply_mask(char* data, std::size_t size, const MaskKey& key, std::size_t offset) noexcept {
  for (std::size_t i = 0; i < size; ++i) data[i] = static_cast<char>(data[i] ^ key[(offset + i) & 3]);
}

FrameDecoder::FrameDecoder(Role role, std::uint64_t max_data_payload)
    : role_(role), max_data_payload_(max_data_payload) {}

void FrameDecoder::feed(QByteArrayView bytes) {
  if (error_ || bytes.isEmpty()) return;
  // Drop what was returned already once it is most of the buffer: each
  // byte is then moved O(1) times on average.
  if (consumed_ > 0 && consumed_ >= static_cast<std::size_t>(buffer_.size()) / 2) {
    buffer_.remove(0, static_cast<qsizetype>(consumed_));
    consumed_ = 0;
  }
  buffer_.append(bytes);
}

ProtocolError FrameDecoder::fail(std::uint16_t code, std::string reason) {
  error_ = ProtocolError{code, std::move(reason)};
  buffer_.clear();
  consumed_ = 0;
  return *error_;
}

FrameDecoder::Result FrameDecoder::next() {
  if (error_) return *error_;
  const auto* p = reinterpret_cast<const std::uint8_t*>(buffer_.constData()) + consumed_;
  const std::size_t available = buffered();
  if (available < 2) return NeedMore{};

  // The first two bytes decide every rule that does not need the length.
  const bool fin = (p[0] & kFin) != 0;
  if (p[0] & kRsvBits)
    return fail(close_code::kProtocolError,
                "reserved bits set (RSV1-3 = " + std::to_string((p[0] & kRsvBits) >> 4) +
                    ") but no extension was negotiated");
  const std::uint8_t raw_opcode = p[0] & kOpcodeBits;
  if (!is_defined(raw_opcode))
    return fail(close_code::kProtocolError, "reserved opcode " + std::to_string(raw_opcode));
  const auto opcode = static_cast<Opcode>(raw_opcode);
  const bool masked = (p[1] & kMaskBit) != 0;
  if (role_ == Role::kServer && !masked)
    return fail(close_code::kProtocolError, "unmasked frame from a client (clients must mask every frame)");
  if (role_ == Role::kClient && masked)
    return fail(close_code::kProtocolError, "masked frame from a server (servers must not mask)");
  const std::uint8_t length7 = p[1] & 0x7F;
  if (is_control(opcode)) {
    if (!fin) return fail(close_code::kProtocolError, "fragmented " + opcode_name(opcode) + " frame");
    if (length7 > kMaxControlPayload)
      return fail(close_code::kProtocolError, opcode_name(opcode) + " frame longer than 125 bytes");
  }

  std::size_t header = 2;
  std::uint64_t length = length7;
  if (length7 == kLength16) {
    header += 2;
    if (available < header) return NeedMore{};
    length = qFromBigEndian<quint16>(p + 2);
    if (length < kLength16) return fail(close_code::kProtocolError, "16-bit length " + std::to_string(length) + " fits in 7 bits");
  } else if (length7 == kLength64) {
    header += 8;
    if (available < header) return NeedMore{};
    length = qFromBigEndian<quint64>(p + 2);
    if (length >> 63) return fail(close_code::kProtocolError, "64-bit length with its most significant bit set");
    if (length <= 0xFFFF) return fail(close_code::kProtocolError, "64-bit length " + std::to_string(length) + " fits in 16 bits");
  }
  if (!is_control(opcode) && length > max_data_payload_)
    return fail(close_code::kMessageTooBig, "a " + opcode_name(opcode) + " frame of " + std::to_string(length) +
                                                " bytes is over the message size limit (" +
                                                std::to_string(max_data_payload_) + " bytes left)");

  MaskKey key{};
  if (masked) {
    if (available < header + 4) return NeedMore{};
    for (int i = 0; i < 4; ++i) key[i] = p[header + i];
    header += 4;
  }
  // length <= max_data_payload_ (or 125): the comparison below cannot wrap
  // for any limit a caller can hold in memory.
  if (available - header < length) return NeedMore{};

  Frame frame;
  frame.fin = fin;
  frame.opcode = opcode;
  frame.payload = QByteArray(reinterpret_cast<const char*>(p + header), static_cast<qsizetype>(length));
  if (masked) apply_mask(frame.payload.data(), frame.payload.size(), key);
  consumed_ += header + static_cast<std::size_t>(length);
  if (consumed_ == static_cast<std::size_t>(buffer_.size())) {
    buffer_.clear();
    consumed_ = 0;
  }
  return frame;
}

QByteArray frame_header(Opcode opcode, std::uint64_t payload_size, bool fin, const std::optional<MaskKey>& mask) {
  if (!is_defined(static_cast<std::uint8_t>(opcode)))
    throw std::invalid_argument("ws::frame_header: opcode " + std::to_string(static_cast<int>(opcode)) +
                                " is reserved; use one of ws::Opcode's");
  if (is_control(opcode) && (payload_size > kMaxControlPayload || !fin))
    throw std::invalid_argument("ws::frame_header: a " + opcode_name(opcode) + " frame must be final and at most 125 bytes (" +
                                std::to_string(payload_size) + " given); send longer data as a message");
  if (payload_size >> 63)
    throw std::invalid_argument("ws::frame_header: a payload cannot be 2^63 bytes or more");
  QByteArray h;
  h.reserve(14);
  h.append(static_cast<char>((fin ? kFin : 0) | static_cast<std::uint8_t>(opcode)));
  const std::uint8_t mask_bit = mask ? kMaskBit : 0;
  if (payload_size < kLength16) {
    h.append(static_cast<char>(mask_bit | payload_size));
  } else if (payload_size <= 0xFFFF) {
    h.append(static_cast<char>(mask_bit | kLength16));
    char be[2];
    qToBigEndian(static_cast<quint16>(payload_size), be);
    h.append(be, 2);
  } else {
    h.append(static_cast<char>(mask_bit | kLength64));
    char be[8];
    qToBigEndian(static_cast<quint64>(payload_size), be);
    h.append(be, 8);
  }
  if (mask) h.append(reinterpret_cast<const char*>(mask->data()), 4);
  return h;
}

QByteArray encode_frame(Opcode opcode, QByteArrayView payload, bool fin, const std::optional<MaskKey>& mask) {
  QByteArray out = frame_header(opcode, static_cast<std::uint64_t>(payload.size()), fin, mask);
  const qsizetype at = out.size();
  out.append(payload);
  if (mask) apply_mask(out.data() + at, static_cast<std::size_t>(payload.size()), *mask);
  return out;
}

QByteArray close_payload(std::uint16_t code, QByteArrayView reason) {
  if (!is_valid_close_code(code))
    throw std::invalid_argument("ws::close_payload: " + std::to_string(code) +
                                " may not be sent in a close frame; use 1000-1003, 1007-1014 or 3000-4999");
  if (reason.size() > static_cast<qsizetype>(kMaxControlPayload - 2))
    throw std::invalid_argument("ws::close_payload: a close reason is at most 123 bytes (" +
                                std::to_string(reason.size()) + " given); shorten it");
  QByteArray out(2, Qt::Uninitialized);
  qToBigEndian(code, out.data());
  out.append(reason);
  return out;
}

}  // namespace ws
