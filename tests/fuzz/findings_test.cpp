// What the fuzz targets found, each as a plain unit test (the input that
// found it is also in tests/fuzz/corpus/<target>/crash_*, replayed by
// fuzz_corpus.<target>). See docs/fuzzing.md.
#include "http_request.h"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace {

// The status the parser answers for data fed in the given pieces.
int status_for(const http::Limits& limits, std::initializer_list<std::string_view> pieces) {
  http::RequestParser p(limits);
  for (std::string_view piece : pieces) {
    p.feed(piece);
    try {
      if (p.next()) return 200;
    } catch (const http::Error& e) {
      return e.status();
    }
  }
  return 0;  // still waiting
}

// fuzz_http_request, crash_long_line_bare_lf_split: a request line longer
// than max_request_line that ends in a bare LF was 414 when its first part
// arrived alone and 400 (bare LF) when it arrived whole.
TEST(FuzzFindings, ALongLineEndingInABareLfGetsTheSameStatusHoweverSplit) {
  http::Limits limits;
  limits.max_request_line = 9;
  const std::string line = std::string(58, 'x') + "\n\r\n";
  const std::string_view all(line);
  EXPECT_EQ(status_for(limits, {all}), 414);
  EXPECT_EQ(status_for(limits, {all.substr(0, 33), all.substr(33)}), 414);
  // Within the limit, the bare LF is what is wrong, however split.
  EXPECT_EQ(status_for(limits, {"GET / X\n"}), 400);
  EXPECT_EQ(status_for(limits, {"GET", " / X\n"}), 400);
}

}  // namespace
