// The incremental UTF-8 validator (ws_utf8.h): the classic edge cases,
// every split of each sample, and agreement with Qt's own decoder on
// random byte strings.
#include "ws_utf8.h"
#include "ws_test_util.h"

#include <gtest/gtest.h>

#include <QtCore/QString>

#include <random>

namespace {

using ws_test::bytes;

struct Sample {
  QByteArray text;
  bool valid;
  const char* what;
};

std::vector<Sample> samples() {
  return {
      {"", true, "empty"},
      {"plain ASCII", true, "ASCII"},
      {bytes({0xC2, 0x80}), true, "U+0080, the first 2-byte character"},
      {bytes({0xDF, 0xBF}), true, "U+07FF"},
      {bytes({0xE0, 0xA0, 0x80}), true, "U+0800, the first 3-byte character"},
      {bytes({0xED, 0x9F, 0xBF}), true, "U+D7FF, just below the surrogates"},
      {bytes({0xEE, 0x80, 0x80}), true, "U+E000, just above them"},
      {bytes({0xEF, 0xBF, 0xBF}), true, "U+FFFF"},
      {bytes({0xF0, 0x90, 0x80, 0x80}), true, "U+10000, the first 4-byte character"},
      {bytes({0xF4, 0x8F, 0xBF, 0xBF}), true, "U+10FFFF, the last code point"},
      {QByteArray("κόσμε, 世界, 🌍"), true, "mixed"},
      {bytes({0x80}), false, "a lone continuation byte"},
      {bytes({0xC0, 0x80}), false, "overlong NUL"},
      {bytes({0xC1, 0xBF}), false, "overlong 2-byte"},
      {bytes({0xE0, 0x9F, 0xBF}), false, "overlong 3-byte"},
      {bytes({0xF0, 0x8F, 0xBF, 0xBF}), false, "overlong 4-byte"},
      {bytes({0xED, 0xA0, 0x80}), false, "U+D800, a surrogate"},
      {bytes({0xED, 0xBF, 0xBF}), false, "U+DFFF, a surrogate"},
      {bytes({0xF4, 0x90, 0x80, 0x80}), false, "U+110000, past the last code point"},
      {bytes({0xF5, 0x80, 0x80, 0x80}), false, "F5, never in UTF-8"},
      {bytes({0xFF}), false, "FF"},
      {bytes({0xCE, 0xBA, 0xE1}), false, "cut inside a character"},
      {bytes({0xE1, 0x41, 0x80}), false, "ASCII inside a character"},
      {bytes({'a', 0xF0, 0x90, 0x80}), false, "4-byte character missing its last byte"},
  };
}

TEST(WsUtf8, TellsValidFromInvalidAtEveryPlaceTheTextIsCut) {
  for (const Sample& s : samples()) {
    EXPECT_EQ(ws::is_valid_utf8(s.text), s.valid) << s.what;
    for (qsizetype cut = 0; cut <= s.text.size(); ++cut) {
      ws::Utf8Validator v;
      const bool ok = v.feed(QByteArrayView(s.text).first(cut)) && v.feed(QByteArrayView(s.text).sliced(cut));
      EXPECT_EQ(ok && v.complete(), s.valid) << s.what << ", cut at " << cut;
    }
  }
}

TEST(WsUtf8, FailsAtTheFirstBadByteWithoutWaitingForTheEnd) {
  ws::Utf8Validator v;
  EXPECT_TRUE(v.feed("fine so far "));
  EXPECT_FALSE(v.feed(bytes({0xED, 0xA0})));  // the surrogate is known from its second byte
  EXPECT_FALSE(v.feed("anything"));           // and it stays failed
  EXPECT_FALSE(v.complete());
  v.reset();
  EXPECT_TRUE(v.feed("a new message"));
  EXPECT_TRUE(v.complete());
}

TEST(WsUtf8, AgreesWithQtsDecoderOnRandomBytes) {
  // Qt's decoder replaces what is not UTF-8, so a string is valid exactly
  // when it survives the round trip. The bytes are drawn from leads and
  // continuations so that near-valid sequences are common.
  const std::uint8_t alphabet[] = {'a',  0x7F, 0x80, 0x8F, 0x90, 0x9F, 0xA0, 0xBF, 0xC0, 0xC2,
                                   0xDF, 0xE0, 0xE1, 0xED, 0xEF, 0xF0, 0xF3, 0xF4, 0xF5, 0xFF};
  std::mt19937 rng(6455);
  std::uniform_int_distribution<int> pick(0, std::size(alphabet) - 1);
  std::uniform_int_distribution<int> length(1, 6);
  int valid = 0;
  for (int i = 0; i < 20000; ++i) {
    QByteArray b;
    for (int n = length(rng); n > 0; --n) b.append(static_cast<char>(alphabet[pick(rng)]));
    const bool qt = QString::fromUtf8(b).toUtf8() == b;
    ASSERT_EQ(ws::is_valid_utf8(b), qt) << QString::fromLatin1(b.toHex(' ')).toStdString();
    valid += qt;
  }
  EXPECT_GT(valid, 400) << "the sample had valid strings in it";
}

}  // namespace
