// The message layer (ws_message.h): reassembly of fragments with control
// frames between them, the order rules, UTF-8 checked as fragments come,
// the message size limit at its boundary, close frames, and a
// conversation cut at random places.
#include "ws_message.h"
#include "ws_test_util.h"

#include <gtest/gtest.h>

#include <random>
#include <vector>

namespace {

using ws_test::bytes;
using ws_test::expect_error;
using ws_test::masked;
using ws_test::pattern;

constexpr std::size_t kLimit = 1 << 20;

// Every event until NeedMore, printed as text for easy comparison.
std::vector<std::string> events(ws::MessageDecoder& d) {
  std::vector<std::string> out;
  for (;;) {
    ws::MessageDecoder::Event e = d.next();
    if (std::holds_alternative<ws::NeedMore>(e)) return out;
    if (auto* m = std::get_if<ws::Message>(&e))
      out.push_back((m->type == ws::MessageType::kText ? "text:" : "binary:") +
                    (m->type == ws::MessageType::kText ? m->data.toStdString() : m->data.toHex().toStdString()));
    else if (auto* p = std::get_if<ws::Ping>(&e))
      out.push_back("ping:" + p->payload.toStdString());
    else if (auto* p = std::get_if<ws::Pong>(&e))
      out.push_back("pong:" + p->payload.toStdString());
    else if (auto* c = std::get_if<ws::Close>(&e))
      out.push_back("close:" + (c->code ? std::to_string(*c->code) : std::string("none")) + ":" + c->reason.toStdString());
    else if (auto* err = std::get_if<ws::ProtocolError>(&e)) {
      out.push_back("error:" + std::to_string(err->code));
      return out;
    }
  }
}

std::vector<std::string> decode(const QByteArray& stream, std::size_t limit = kLimit) {
  ws::MessageDecoder d(ws::Role::kServer, limit);
  d.feed(stream);
  return events(d);
}

using Events = std::vector<std::string>;

// --- Messages -------------------------------------------------------------------

TEST(WsMessage, WholeTextAndBinaryMessages) {
  EXPECT_EQ(decode(masked(ws::Opcode::kText, "{\"output\": \"hi\"}") + masked(ws::Opcode::kBinary, bytes({0, 1, 0xFF})) +
                   masked(ws::Opcode::kText, "")),
            (Events{"text:{\"output\": \"hi\"}", "binary:0001ff", "text:"}));
}

TEST(WsMessage, FragmentsAreJoinedWithControlFramesHandedOutBetween) {
  const QByteArray stream = masked(ws::Opcode::kText, "Hel", false) + masked(ws::Opcode::kPing, "p1") +
                            masked(ws::Opcode::kContinuation, "lo, ", false) + masked(ws::Opcode::kPong, "p2") +
                            masked(ws::Opcode::kContinuation, "", false) + masked(ws::Opcode::kContinuation, "world") +
                            masked(ws::Opcode::kBinary, bytes({1}), false) + masked(ws::Opcode::kContinuation, bytes({2}));
  EXPECT_EQ(decode(stream), (Events{"ping:p1", "pong:p2", "text:Hello, world", "binary:0102"}));
}

TEST(WsMessage, AContinuationWithNoMessageStartedIsAProtocolError) {
  ws::MessageDecoder d(ws::Role::kServer, kLimit);
  d.feed(masked(ws::Opcode::kContinuation, "orphan"));
  expect_error(d.next(), 1002, "no message in progress");
}

TEST(WsMessage, ANewMessageInsideAFragmentedOneIsAProtocolError) {
  for (ws::Opcode op : {ws::Opcode::kText, ws::Opcode::kBinary}) {
    ws::MessageDecoder d(ws::Role::kServer, kLimit);
    d.feed(masked(ws::Opcode::kText, "first", false) + masked(op, "second"));
    expect_error(d.next(), 1002, "expected a continuation frame");
    EXPECT_TRUE(d.failed());
    expect_error(d.next(), 1002, "expected a continuation frame");  // stays failed
  }
}

// --- UTF-8 ------------------------------------------------------------------------

TEST(WsMessage, ACharacterCutBetweenFragmentsIsFine) {
  const QByteArray euro = bytes({0xE2, 0x82, 0xAC});
  const QByteArray stream = masked(ws::Opcode::kText, euro.first(1), false) +
                            masked(ws::Opcode::kContinuation, euro.sliced(1, 1), false) + masked(ws::Opcode::kPing, "") +
                            masked(ws::Opcode::kContinuation, euro.sliced(2));
  EXPECT_EQ(decode(stream), (Events{"ping:", "text:€"}));
}

TEST(WsMessage, InvalidUtf8InATextMessageIs1007ButBinaryMayHoldAnything) {
  EXPECT_EQ(decode(masked(ws::Opcode::kText, bytes({'a', 0xC0, 0x80}))), (Events{"error:1007"}));
  EXPECT_EQ(decode(masked(ws::Opcode::kText, bytes({0xED, 0xA0, 0x80}))), (Events{"error:1007"}));
  EXPECT_EQ(decode(masked(ws::Opcode::kBinary, bytes({0xC0, 0x80}))), (Events{"binary:c080"}));
}

TEST(WsMessage, InvalidUtf8FailsAtTheFragmentThatHoldsIt) {
  // The final fragment never comes: the error must not wait for it.
  ws::MessageDecoder d(ws::Role::kServer, kLimit);
  d.feed(masked(ws::Opcode::kText, "ok ", false) + masked(ws::Opcode::kContinuation, bytes({0xFF}), false));
  expect_error(d.next(), 1007, "not valid UTF-8");
}

TEST(WsMessage, ATextMessageEndingInsideACharacterIs1007) {
  ws::MessageDecoder d(ws::Role::kServer, kLimit);
  d.feed(masked(ws::Opcode::kText, bytes({'a', 0xE2, 0x82}), false) + masked(ws::Opcode::kContinuation, ""));
  expect_error(d.next(), 1007, "inside a UTF-8 character");
}

// --- The size limit -------------------------------------------------------------------

TEST(WsMessage, AMessageOfExactlyTheLimitIsTakenWholeOrInFragments) {
  for (std::size_t limit : {0u, 1u, 125u, 126u, 65535u, 65536u}) {
    const QByteArray data = pattern(static_cast<qsizetype>(limit));
    ws::MessageDecoder whole(ws::Role::kServer, limit);
    whole.feed(masked(ws::Opcode::kBinary, data));
    ws::MessageDecoder::Event e = whole.next();
    ASSERT_TRUE(std::holds_alternative<ws::Message>(e)) << limit;
    EXPECT_EQ(std::get<ws::Message>(e).data, data);

    const qsizetype half = data.size() / 2;
    ws::MessageDecoder split(ws::Role::kServer, limit);
    split.feed(masked(ws::Opcode::kBinary, data.first(half), false) + masked(ws::Opcode::kPing, "x") +
               masked(ws::Opcode::kContinuation, data.sliced(half)));
    EXPECT_TRUE(std::holds_alternative<ws::Ping>(split.next()));
    e = split.next();
    ASSERT_TRUE(std::holds_alternative<ws::Message>(e)) << limit;
    EXPECT_EQ(std::get<ws::Message>(e).data, data);
  }
}

TEST(WsMessage, OneByteOverTheLimitIs1009ToldFromTheHeaderOfTheFragmentThatOverflows) {
  for (std::size_t limit : {0u, 1u, 125u, 126u, 65535u, 65536u}) {
    const QByteArray data = pattern(static_cast<qsizetype>(limit + 1));
    const QByteArray header = ws::frame_header(ws::Opcode::kBinary, limit + 1, true, ws::MaskKey{});
    ws::MessageDecoder by_header(ws::Role::kServer, limit);
    by_header.feed(header.first(header.size() - 4));  // no mask key, no payload
    expect_error(by_header.next(), 1009, "over the message size limit");

    // Fragments: the last one's header pushes the total one byte over.
    const qsizetype half = data.size() / 2;
    const QByteArray last = masked(ws::Opcode::kContinuation, data.sliced(half));
    ws::MessageDecoder split(ws::Role::kServer, limit);
    split.feed(masked(ws::Opcode::kBinary, data.first(half), false) + last.first(last.size() - (data.size() - half)));
    expect_error(split.next(), 1009, "over the message size limit");
  }
}

TEST(WsMessage, ControlFramesDoNotCountAgainstTheLimit) {
  EXPECT_EQ(decode(masked(ws::Opcode::kPing, QByteArray(125, 'p')) + masked(ws::Opcode::kText, "ab"), 2),
            (Events{"ping:" + std::string(125, 'p'), "text:ab"}));
}

TEST(WsMessage, ALimitTooLargeToHoldIsRefused) {
  EXPECT_THROW(ws::MessageDecoder(ws::Role::kServer, ws::kLargestMessageLimit + 1), std::invalid_argument);
  EXPECT_NO_THROW(ws::MessageDecoder(ws::Role::kServer, ws::kLargestMessageLimit));
}

// --- Close frames -----------------------------------------------------------------------

TEST(WsMessage, CloseFramesWithAndWithoutACode) {
  EXPECT_EQ(decode(masked(ws::Opcode::kClose, "")), (Events{"close:none:"}));
  EXPECT_EQ(decode(masked(ws::Opcode::kClose, ws::close_payload(1000, "bye"))), (Events{"close:1000:bye"}));
  for (std::uint16_t code : {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 4999})
    EXPECT_EQ(decode(masked(ws::Opcode::kClose, bytes({static_cast<std::uint8_t>(code >> 8), static_cast<std::uint8_t>(code)}))),
              (Events{"close:" + std::to_string(code) + ":"}));
}

TEST(WsMessage, ACloseFrameThatBreaksTheRulesIsAnError) {
  EXPECT_EQ(decode(masked(ws::Opcode::kClose, bytes({0x03}))), (Events{"error:1002"}));
  for (std::uint16_t code : {0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535})
    EXPECT_EQ(decode(masked(ws::Opcode::kClose, bytes({static_cast<std::uint8_t>(code >> 8), static_cast<std::uint8_t>(code)}))),
              (Events{"error:1002"}))
        << code;
  EXPECT_EQ(decode(masked(ws::Opcode::kClose, bytes({0x03, 0xE8, 0xC0, 0x80}))), (Events{"error:1007"}));
}

TEST(WsMessage, NothingCountsAfterTheClose) {
  ws::MessageDecoder d(ws::Role::kServer, kLimit);
  d.feed(masked(ws::Opcode::kText, "partial", false) + masked(ws::Opcode::kClose, ws::close_payload(1001)) +
         masked(ws::Opcode::kText, "after the close"));
  EXPECT_EQ(events(d), (Events{"close:1001:"}));
  EXPECT_TRUE(d.closed());
  EXPECT_FALSE(d.in_message());
  d.feed(ws::encode_frame(ws::Opcode::kText, "not even an unmasked frame is looked at"));
  EXPECT_EQ(events(d), Events{});
  EXPECT_FALSE(d.failed());
}

TEST(WsMessage, FrameLevelErrorsComeThroughWithTheirCodes) {
  EXPECT_EQ(decode(ws::encode_frame(ws::Opcode::kText, "unmasked")), (Events{"error:1002"}));
  EXPECT_EQ(decode(bytes({0x83, 0x80, 1, 2, 3, 4})), (Events{"error:1002"}));
  EXPECT_EQ(decode(bytes({0xC1, 0x80, 1, 2, 3, 4})), (Events{"error:1002"}));  // RSV1
}

// --- A conversation cut at random places -------------------------------------------------

TEST(WsMessage, AConversationCutAnywhereGivesTheSameEvents) {
  const QByteArray big = pattern(70000);
  const QByteArray stream =
      masked(ws::Opcode::kText, "{\"output\": \"Sent from my browser!\"}") + masked(ws::Opcode::kPing, "are you there") +
      masked(ws::Opcode::kBinary, big.first(30000), false) + masked(ws::Opcode::kPong, "") +
      masked(ws::Opcode::kContinuation, big.sliced(30000)) + masked(ws::Opcode::kText, "κόσ", false) +
      masked(ws::Opcode::kContinuation, "με") + masked(ws::Opcode::kClose, ws::close_payload(1000, "done"));
  const Events expected = decode(stream);
  ASSERT_EQ(expected.size(), 6u);
  EXPECT_EQ(expected[0], "text:{\"output\": \"Sent from my browser!\"}");
  EXPECT_EQ(expected[2], "pong:");
  EXPECT_EQ(expected[3], "binary:" + big.toHex().toStdString());
  EXPECT_EQ(expected[4], "text:κόσμε");
  EXPECT_EQ(expected[5], "close:1000:done");
  for (unsigned seed = 1; seed <= 30; ++seed) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<qsizetype> chunk(1, seed % 3 == 0 ? 5 : 4000);
    ws::MessageDecoder d(ws::Role::kServer, kLimit);
    Events got;
    for (qsizetype at = 0; at < stream.size();) {
      const qsizetype n = std::min(chunk(rng), stream.size() - at);
      d.feed(QByteArrayView(stream).sliced(at, n));
      at += n;
      for (std::string& e : events(d)) got.push_back(std::move(e));
    }
    EXPECT_EQ(got, expected) << "seed " << seed;
  }
}

}  // namespace
