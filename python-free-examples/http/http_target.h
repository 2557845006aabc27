// http_target.h — a request target made safe to route on: the path
// percent-decoded, checked segment by segment, and the query apart.
//
//   http::Target t = http::parse_target("/files/a%20b.txt?x=1&y=%C3%A9");
//   t.path;                               // "/files/a b.txt"
//   t.segments;                           // {"files", "a b.txt"}
//   http::query_param(t.query, "y");      // "é"
//   http::parse_target("/static/../secret");   // throws http::Error 400
//
// The contract (RFC 3986 §2.1, §3.3):
// - Only the origin form is served: the target starts with '/'; no
//   fragment ('#'). Anything else is http::Error 400.
// - Decoding: "%XY" with two hex digits is the byte 0xXY; a '%' not
//   followed by two hex digits is 400. '+' is a '+' in the path (a space
//   only in the query, as HTML forms encode it).
// - Safety: after decoding, no segment may be "." or ".." (however
//   encoded: "%2e%2E"), and none may hold '/', '\\' or a NUL (an encoded
//   "%2F" would join segments behind the router's back; '\\' is a
//   separator to some file systems). Every one of those is 400: a path
//   that passes can be joined under a root directory without leaving it.
//   Empty segments ("//", a trailing '/') are kept as they are.
// Thread-safety: pure functions.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace http {

// http::Target
struct Target {
  std::string path;                   // decoded, starts with '/'
  std::vector<std::string> segments;  // path split at '/', decoded ("/" gives {""})
  std::string query;                  // after the first '?', still encoded ("" when none)
};

// http::parse_target()
// Throws http::Error 400 (see the file comment).
Target parse_target(std::string_view target);

// http::percent_decode()
// Decodes %XY escapes (and '+' as a space when plus_is_space). Throws
// http::Error 400 for a malformed escape.
std::string percent_decode(std::string_view text, bool plus_is_space = false);

// http::query_param()
// The decoded value of the first name=value pair of an encoded query
// whose decoded name is name ("a" alone: ""), or std::nullopt. Throws
// http::Error 400 for a malformed escape.
std::optional<std::string> query_param(std::string_view query, std::string_view name);

// http::html_escape()
// Text safe inside HTML elements and quoted attributes: & < > " ' escaped.
std::string html_escape(std::string_view text);

}  // namespace http
