// ws_utf8.h — UTF-8 validation fed in pieces, as the fragments of a text
// message arrive (RFC 6455 section 8.1: a text message that is not UTF-8
// fails the connection with 1007).
//
//   ws::Utf8Validator v;
//   bool ok = v.feed(first_fragment) && v.feed(last_fragment) && v.complete();
//
// Valid means RFC 3629 UTF-8: no overlong forms, no surrogates (U+D800 to
// U+DFFF), nothing above U+10FFFF. A piece may end inside a character; the
// next piece goes on with it. feed() fails at the first byte that cannot
// start or continue a character, so a bad message is refused without
// waiting for the rest of it. Thread-safety: none; no call allocates.
#pragma once

#include <QtCore/QByteArrayView>

#include <cstdint>

namespace ws {

// ws::Utf8Validator
class Utf8Validator {
 public:
  // Utf8Validator::feed()
  // False once the bytes so far cannot begin a valid text (and from then on).
  bool feed(QByteArrayView bytes) noexcept;

  // Utf8Validator::complete()
  // True when the bytes fed so far are valid and end on a character boundary.
  bool complete() const noexcept { return !failed_ && needed_ == 0; }

  // Utf8Validator::reset()
  // Forgets everything fed: ready for the next message.
  void reset() noexcept { *this = Utf8Validator(); }

 private:
  // Continuation bytes still owed by the character in progress, and the
  // range its next byte must be in (narrower than 0x80-0xBF right after
  // E0, ED, F0 and F4: that is what rules out overlongs, surrogates and
  // code points past U+10FFFF).
  int needed_ = 0;
  std::uint8_t low_ = 0x80;
  std::uint8_t high_ = 0xBF;
  bool failed_ = false;
};

// ws::is_valid_utf8()
// The whole of bytes, at once.
bool is_valid_utf8(QByteArrayView bytes) noexcept;

}  // namespace ws
