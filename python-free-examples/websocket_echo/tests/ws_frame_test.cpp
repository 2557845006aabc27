// The frame codec (ws_frame.h): RFC 6455's own examples, every split of a
// stream of frames, the three length forms at their boundaries, and every
// frame-level rule (reserved bits and opcodes, masking by role, control
// frames, minimal lengths, the data limit told from the header alone).
#include "ws_frame.h"
#include "ws_test_util.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace {

using ws_test::bytes;
using ws_test::decode_all;
using ws_test::expect_error;
using ws_test::masked;
using ws_test::pattern;

constexpr std::uint64_t kBig = std::uint64_t{1} << 20;

// --- RFC 6455 section 5.7's examples -------------------------------------------

TEST(WsFrame, DecodesTheRfcExamples) {
  {  // a single-frame unmasked text message, as a server sends it
    ws::FrameDecoder d(ws::Role::kClient, kBig);
    d.feed(bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
    EXPECT_EQ(decode_all(d), (std::vector<ws::Frame>{{true, ws::Opcode::kText, "Hello"}}));
  }
  {  // the same, masked, as a client sends it
    ws::FrameDecoder d(ws::Role::kServer, kBig);
    d.feed(bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
    EXPECT_EQ(decode_all(d), (std::vector<ws::Frame>{{true, ws::Opcode::kText, "Hello"}}));
  }
  {  // a fragmented unmasked text message, then an unmasked ping
    ws::FrameDecoder d(ws::Role::kClient, kBig);
    d.feed(bytes({0x01, 0x03, 0x48, 0x65, 0x6c, 0x80, 0x02, 0x6c, 0x6f, 0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
    EXPECT_EQ(decode_all(d), (std::vector<ws::Frame>{{false, ws::Opcode::kText, "Hel"},
                                                     {true, ws::Opcode::kContinuation, "lo"},
                                                     {true, ws::Opcode::kPing, "Hello"}}));
  }
  {  // a masked pong
    ws::FrameDecoder d(ws::Role::kServer, kBig);
    d.feed(bytes({0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
    EXPECT_EQ(decode_all(d), (std::vector<ws::Frame>{{true, ws::Opcode::kPong, "Hello"}}));
  }
  {  // 256 bytes and 64 KiB of binary data in one unmasked frame each
    ws::FrameDecoder d(ws::Role::kClient, kBig);
    d.feed(bytes({0x82, 0x7E, 0x01, 0x00}) + pattern(256));
    d.feed(bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}) + pattern(65536));
    EXPECT_EQ(decode_all(d), (std::vector<ws::Frame>{{true, ws::Opcode::kBinary, pattern(256)},
                                                     {true, ws::Opcode::kBinary, pattern(65536)}}));
  }
}

TEST(WsFrame, EncodesTheRfcExamples) {
  EXPECT_EQ(ws::encode_frame(ws::Opcode::kText, "Hello"), bytes({0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
  EXPECT_EQ(ws::encode_frame(ws::Opcode::kText, "Hello", true, ws::MaskKey{0x37, 0xfa, 0x21, 0x3d}),
            bytes({0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58}));
  EXPECT_EQ(ws::encode_frame(ws::Opcode::kText, "Hel", false), bytes({0x01, 0x03, 0x48, 0x65, 0x6c}));
  EXPECT_EQ(ws::encode_frame(ws::Opcode::kContinuation, "lo"), bytes({0x80, 0x02, 0x6c, 0x6f}));
  EXPECT_EQ(ws::encode_frame(ws::Opcode::kPing, "Hello"), bytes({0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f}));
  EXPECT_EQ(ws::frame_header(ws::Opcode::kBinary, 256), bytes({0x82, 0x7E, 0x01, 0x00}));
  EXPECT_EQ(ws::frame_header(ws::Opcode::kBinary, 65536), bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00}));
}

// --- Lengths ---------------------------------------------------------------------

TEST(WsFrame, EachLengthFormIsUsedExactlyUpToItsBoundary) {
  struct Case {
    std::uint64_t size;
    int header;  // unmasked
  };
  const Case cases[] = {{0, 2}, {1, 2}, {125, 2}, {126, 4}, {127, 4}, {65535, 4}, {65536, 10}, {70000, 10}};
  for (const Case& c : cases) {
    const QByteArray h = ws::frame_header(ws::Opcode::kBinary, c.size);
    EXPECT_EQ(h.size(), c.header) << c.size;
    EXPECT_EQ(static_cast<std::uint8_t>(h[1]) & 0x80, 0) << "a server's frame is never masked";
    EXPECT_EQ(ws::frame_header(ws::Opcode::kBinary, c.size, true, ws::MaskKey{1, 2, 3, 4}).size(), c.header + 4);
    // Both directions decode what the other encodes, at every boundary.
    const QByteArray payload = pattern(static_cast<qsizetype>(c.size));
    ws::FrameDecoder server(ws::Role::kServer, kBig);
    server.feed(masked(ws::Opcode::kBinary, payload));
    EXPECT_EQ(decode_all(server), (std::vector<ws::Frame>{{true, ws::Opcode::kBinary, payload}})) << c.size;
    ws::FrameDecoder client(ws::Role::kClient, kBig);
    client.feed(ws::encode_frame(ws::Opcode::kBinary, payload));
    EXPECT_EQ(decode_all(client), (std::vector<ws::Frame>{{true, ws::Opcode::kBinary, payload}})) << c.size;
  }
}

TEST(WsFrame, ALengthInALongerFormThanNeededIsAProtocolError) {
  {
    ws::FrameDecoder d(ws::Role::kClient, kBig);
    d.feed(bytes({0x82, 0x7E, 0x00, 0x7D}) + pattern(125));  // 125 in 16 bits
    expect_error(d.next(), 1002, "fits in 7 bits");
  }
  {
    ws::FrameDecoder d(ws::Role::kClient, kBig);
    d.feed(bytes({0x82, 0x7F, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF}));  // 65535 in 64 bits
    expect_error(d.next(), 1002, "fits in 16 bits");
  }
  {
    ws::FrameDecoder d(ws::Role::kClient, UINT64_MAX);
    d.feed(bytes({0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0}));  // 2^63
    expect_error(d.next(), 1002, "most significant bit");
  }
}

TEST(WsFrame, AHeaderCutAnywhereWaitsForTheRest) {
  const QByteArray frame = masked(ws::Opcode::kBinary, pattern(70000));
  for (qsizetype cut = 0; cut < 2 + 8 + 4 + 1; ++cut) {
    ws::FrameDecoder d(ws::Role::kServer, kBig);
    d.feed(frame.first(cut));
    EXPECT_TRUE(std::holds_alternative<ws::NeedMore>(d.next())) << cut;
    d.feed(frame.sliced(cut));
    EXPECT_EQ(decode_all(d), (std::vector<ws::Frame>{{true, ws::Opcode::kBinary, pattern(70000)}})) << cut;
  }
}

// --- Any split of a stream --------------------------------------------------------

std::vector<ws::Frame> sample_frames() {
  return {{true, ws::Opcode::kText, "hello"},        {false, ws::Opcode::kBinary, pattern(125)},
          {true, ws::Opcode::kPing, ""},             {false, ws::Opcode::kContinuation, pattern(126)},
          {true, ws::Opcode::kContinuation, ""},     {true, ws::Opcode::kBinary, pattern(65535)},
          {true, ws::Opcode::kPong, pattern(125)},   {true, ws::Opcode::kBinary, pattern(65536)},
          {true, ws::Opcode::kClose, bytes({0x03, 0xE8})}};
}

QByteArray sample_stream() {
  QByteArray all;
  for (const ws::Frame& f : sample_frames()) all += masked(f.opcode, f.payload, f.fin);
  return all;
}

TEST(WsFrame, AStreamFedInRandomChunksGivesTheSameFrames) {
  const QByteArray stream = sample_stream();
  for (unsigned seed = 1; seed <= 40; ++seed) {
    std::mt19937 rng(seed);
    // Small chunks on some seeds (headers cut everywhere), large on others.
    std::uniform_int_distribution<qsizetype> chunk(1, seed % 2 ? 7 : 20000);
    ws::FrameDecoder d(ws::Role::kServer, kBig);
    std::vector<ws::Frame> got;
    for (qsizetype at = 0; at < stream.size();) {
      const qsizetype n = std::min(chunk(rng), stream.size() - at);
      d.feed(QByteArrayView(stream).sliced(at, n));
      at += n;
      for (ws::Frame& f : decode_all(d)) got.push_back(std::move(f));
    }
    EXPECT_EQ(got, sample_frames()) << "seed " << seed;
    EXPECT_EQ(d.buffered(), 0u);
  }
}

TEST(WsFrame, AStreamFedByteByByteGivesTheSameFrames) {
  // The first five frames whole, the sixth's header and part of its payload.
  const QByteArray stream = sample_stream().first(1000);
  ws::FrameDecoder d(ws::Role::kServer, kBig);
  std::vector<ws::Frame> got;
  for (char c : stream) {
    d.feed(QByteArrayView(&c, 1));
    for (ws::Frame& f : decode_all(d)) got.push_back(std::move(f));
  }
  const std::vector<ws::Frame> all = sample_frames();
  EXPECT_EQ(got, std::vector<ws::Frame>(all.begin(), all.begin() + 5));
  qsizetype taken = 0;
  for (int i = 0; i < 5; ++i) taken += masked(all[i].opcode, all[i].payload, all[i].fin).size();
  EXPECT_EQ(d.buffered(), static_cast<std::size_t>(stream.size() - taken));
}

// --- Rules --------------------------------------------------------------------------

TEST(WsFrame, EachReservedBitIsAProtocolError) {
  for (std::uint8_t rsv : {0x40, 0x20, 0x10, 0x70}) {
    ws::FrameDecoder d(ws::Role::kServer, kBig);
    QByteArray f = masked(ws::Opcode::kText, "x");
    f[0] = static_cast<char>(f[0] | rsv);
    d.feed(f);
    expect_error(d.next(), 1002, "reserved bits");
  }
}

TEST(WsFrame, EachReservedOpcodeIsAProtocolError) {
  for (std::uint8_t op : {3, 4, 5, 6, 7, 0xB, 0xC, 0xD, 0xE, 0xF}) {
    ws::FrameDecoder d(ws::Role::kServer, kBig);
    d.feed(bytes({static_cast<std::uint8_t>(0x80 | op), 0x80, 1, 2, 3, 4}));
    expect_error(d.next(), 1002, "reserved opcode " + std::to_string(op));
  }
}

TEST(WsFrame, AServerRefusesUnmaskedFramesAndAClientMaskedOnes) {
  ws::FrameDecoder server(ws::Role::kServer, kBig);
  server.feed(ws::encode_frame(ws::Opcode::kText, "hi"));
  expect_error(server.next(), 1002, "unmasked frame from a client");
  ws::FrameDecoder client(ws::Role::kClient, kBig);
  client.feed(masked(ws::Opcode::kText, "hi"));
  expect_error(client.next(), 1002, "masked frame from a server");
}

TEST(WsFrame, ControlFramesAreAtMost125BytesAndNeverFragmented) {
  for (ws::Opcode op : {ws::Opcode::kClose, ws::Opcode::kPing, ws::Opcode::kPong}) {
    ws::FrameDecoder ok(ws::Role::kServer, 0);  // the data limit does not apply to them
    const QByteArray payload = op == ws::Opcode::kClose ? QByteArray("\x03\xE8") + QByteArray(123, 'r') : pattern(125);
    ok.feed(masked(op, payload));
    EXPECT_EQ(decode_all(ok), (std::vector<ws::Frame>{{true, op, payload}}));

    ws::FrameDecoder too_long(ws::Role::kServer, kBig);
    too_long.feed(bytes({static_cast<std::uint8_t>(0x80 | static_cast<std::uint8_t>(op)), 0x80 | 126, 0, 126, 1, 2, 3, 4}));
    expect_error(too_long.next(), 1002, "longer than 125 bytes");

    ws::FrameDecoder fragmented(ws::Role::kServer, kBig);
    fragmented.feed(bytes({static_cast<std::uint8_t>(op), 0x80, 1, 2, 3, 4}));
    expect_error(fragmented.next(), 1002, "fragmented");
  }
}

TEST(WsFrame, ADataFrameAtTheLimitIsTakenAndOneByteMoreIsRefused) {
  for (std::uint64_t limit : {0u, 1u, 125u, 126u, 65535u, 65536u}) {
    const QByteArray at = pattern(static_cast<qsizetype>(limit));
    for (ws::Opcode op : {ws::Opcode::kText, ws::Opcode::kBinary, ws::Opcode::kContinuation}) {
      ws::FrameDecoder d(ws::Role::kServer, limit);
      d.feed(masked(op, at));
      EXPECT_EQ(decode_all(d), (std::vector<ws::Frame>{{true, op, at}})) << limit;
      // Only the header of the frame one byte over: the error comes
      // without its payload.
      const QByteArray over = masked(op, pattern(static_cast<qsizetype>(limit + 1)));
      d.feed(over.first(over.size() - static_cast<qsizetype>(limit + 1) - 4));
      expect_error(d.next(), 1009, "over the message size limit");
    }
  }
}

// A length up to 2^63 - 1 (the largest RFC 6455 allows: the most
// significant bit must be 0) is 1009 from its header alone, before the mask
// key or any payload; 2^63 and over is a protocol error (1002), even under a
// limit that would hold it.
TEST(WsFrame, AHostileLengthIsRefusedFromItsHeaderAlone) {
  {
    ws::FrameDecoder d(ws::Role::kServer, kBig);
    d.feed(bytes({0x82, 0xFF, 0x40, 0, 0, 0, 0, 0, 0, 0}));  // 2^62 bytes announced
    expect_error(d.next(), 1009, "4611686018427387904 bytes");
  }
  {
    ws::FrameDecoder d(ws::Role::kServer, kBig);
    d.feed(bytes({0x82, 0xFF, 0x7F, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}));  // 2^63 - 1
    expect_error(d.next(), 1009, "a binary frame of 9223372036854775807 bytes is over the message size limit");
  }
  for (std::uint64_t limit : {kBig, std::uint64_t{UINT64_MAX}}) {
    ws::FrameDecoder d(ws::Role::kServer, limit);
    d.feed(bytes({0x82, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF}));  // 2^64 - 1
    expect_error(d.next(), 1002, "64-bit length with its most significant bit set");
  }
}

TEST(WsFrame, AFailedDecoderRepeatsItsErrorAndIgnoresMoreBytes) {
  ws::FrameDecoder d(ws::Role::kServer, kBig);
  d.feed(ws::encode_frame(ws::Opcode::kText, "unmasked"));
  expect_error(d.next(), 1002, "unmasked");
  EXPECT_TRUE(d.failed());
  d.feed(masked(ws::Opcode::kText, "fine"));
  EXPECT_EQ(d.buffered(), 0u);
  expect_error(d.next(), 1002, "unmasked");
}

// --- The encoder -------------------------------------------------------------------

TEST(WsFrame, TheEncoderRefusesWhatNoPeerMayReceive) {
  EXPECT_THROW(ws::frame_header(ws::Opcode::kPing, 126), std::invalid_argument);
  EXPECT_THROW(ws::frame_header(ws::Opcode::kClose, 2, false), std::invalid_argument);
  EXPECT_THROW(ws::frame_header(static_cast<ws::Opcode>(3), 0), std::invalid_argument);
  EXPECT_NO_THROW(ws::frame_header(ws::Opcode::kPong, 125));
  EXPECT_EQ(ws::close_payload(1000, "bye"), bytes({0x03, 0xE8, 'b', 'y', 'e'}));
  EXPECT_EQ(ws::close_payload(4999), bytes({0x13, 0x87}));
  EXPECT_THROW(ws::close_payload(1005), std::invalid_argument);
  EXPECT_THROW(ws::close_payload(999), std::invalid_argument);
  EXPECT_NO_THROW(ws::close_payload(1000, QByteArray(123, 'r')));
  EXPECT_THROW(ws::close_payload(1000, QByteArray(124, 'r')), std::invalid_argument);
}

TEST(WsFrame, MaskingIsItsOwnInverseFromAnyOffset) {
  const ws::MaskKey key{0x37, 0xfa, 0x21, 0x3d};
  QByteArray data = pattern(11);
  ws::apply_mask(data.data(), 5, key);
  ws::apply_mask(data.data() + 5, 6, key, 5);  // going on where the first call stopped
  QByteArray whole = pattern(11);
  ws::apply_mask(whole.data(), 11, key);
  EXPECT_EQ(data, whole);
  ws::apply_mask(data.data(), 11, key);
  EXPECT_EQ(data, pattern(11));
}

}  // namespace
