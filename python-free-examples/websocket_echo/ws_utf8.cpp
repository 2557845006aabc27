#include "ws_utf8.h"

namespace ws {

bool Utf8Validator::feed(QByteArrayView bytes) noexcept {
  if (failed_) return false;
  for (const char c : bytes) {
    const auto b = static_cast<std::uint8_t>(c);
    if (needed_ > 0) {
      if (b < low_ || b > high_) return !(failed_ = true);
      --needed_;
      low_ = 0x80;
      high_ = 0xBF;
      continue;
    }
    if (b < 0x80) continue;
    if (b >= 0xC2 && b <= 0xDF) {
      needed_ = 1;
    } else if (b >= 0xE0 && b <= 0xEF) {
      needed_ = 2;
      if (b == 0xE0) low_ = 0xA0;   // overlong below U+0800
      if (b == 0xED) high_ = 0x9F;  // surrogates
    } else if (b >= 0xF0 && b <= 0xF4) {
      needed_ = 3;
      if (b == 0xF0) low_ = 0x90;   // overlong below U+10000
      if (b == 0xF4) high_ = 0x8F;  // past U+10FFFF
    } else {
      // 0x80-0xC1: a continuation byte out of place or an overlong 2-byte
      // lead; 0xF5-0xFF: never in UTF-8.
      return !(failed_ = true);
    }
  }
  return true;
}

bool is_valid_utf8(QByteArrayView bytes) noexcept {
  Utf8Validator v;
  return v.feed(bytes) && v.complete();
}

}  // namespace ws
