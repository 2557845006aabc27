// Helpers shared by the WebSocket codec tests: byte literals, payloads,
// a client's masked frames, and draining a decoder.
#pragma once

#include "ws_frame.h"
#include "ws_message.h"

#include <gtest/gtest.h>

#include <QtCore/QByteArray>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <variant>
#include <vector>

namespace ws_test {

inline QByteArray bytes(std::initializer_list<std::uint8_t> list) {
  QByteArray b;
  for (std::uint8_t c : list) b.append(static_cast<char>(c));
  return b;
}

// Deterministic, not all ASCII, never valid UTF-8 past a few bytes: binary.
inline QByteArray pattern(qsizetype n) {
  QByteArray b(n, Qt::Uninitialized);
  for (qsizetype i = 0; i < n; ++i) b[i] = static_cast<char>((i * 131 + 7) % 251);
  return b;
}

// A frame as a client sends it, with a key that changes with the payload.
inline QByteArray masked(ws::Opcode op, QByteArrayView payload, bool fin = true) {
  const auto s = static_cast<std::uint8_t>(payload.size());
  return ws::encode_frame(op, payload, fin, ws::MaskKey{static_cast<std::uint8_t>(0xA5 ^ s), 0x5A, s, 0xFF});
}

inline std::vector<ws::Frame> decode_all(ws::FrameDecoder& d) {
  std::vector<ws::Frame> frames;
  for (;;) {
    ws::FrameDecoder::Result r = d.next();
    if (auto* f = std::get_if<ws::Frame>(&r)) {
      frames.push_back(std::move(*f));
      continue;
    }
    if (auto* e = std::get_if<ws::ProtocolError>(&r))
      ADD_FAILURE() << "unexpected protocol error " << e->code << ": " << e->reason;
    return frames;
  }
}

template <class Result>
void expect_error(const Result& r, std::uint16_t code, const std::string& reason_part) {
  const auto* e = std::get_if<ws::ProtocolError>(&r);
  if (!e) {
    ADD_FAILURE() << "no protocol error (wanted " << code << ", \"" << reason_part << "\")";
    return;
  }
  EXPECT_EQ(e->code, code) << e->reason;
  EXPECT_NE(e->reason.find(reason_part), std::string::npos) << "reason: " << e->reason;
}

}  // namespace ws_test

// For readable failures of EXPECT_EQ on frames and messages.
namespace ws {
inline void PrintTo(const Frame& f, std::ostream* os) {
  *os << "{fin " << f.fin << ", opcode " << static_cast<int>(f.opcode) << ", " << f.payload.size() << " bytes}";
}
inline void PrintTo(const Message& m, std::ostream* os) {
  *os << "{" << (m.type == MessageType::kText ? "text" : "binary") << ", " << m.data.size() << " bytes}";
}
}  // namespace ws
