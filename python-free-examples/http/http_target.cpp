#include "http_target.h"

#include "http_request.h"

namespace http {

namespace {

int hex_value(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string percent_decode(std::string_view text, bool plus_is_space) {
  std::string out;
  out.reserve(text.size());
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '%') {
      if (i + 2 >= text.size() || hex_value(text[i + 1]) < 0 || hex_value(text[i + 2]) < 0)
        throw Error(400, "a '%' in the request target is not followed by two hex digits");
      out += static_cast<char>(hex_value(text[i + 1]) * 16 + hex_value(text[i + 2]));
      i += 2;
    } else if (c == '+' && plus_is_space) {
      out += ' ';
    } else {
      out += c;
    }
  }
  return out;
}

Target parse_target(std::string_view target) {
  if (target.empty() || target.front() != '/')
    throw Error(400, "the request target must be a path starting with '/'");
  if (target.find('#') != std::string_view::npos) throw Error(400, "the request target holds a fragment ('#')");
  Target t;
  const std::size_t q = target.find('?');
  if (q != std::string_view::npos) t.query = target.substr(q + 1);
  const std::string_view raw_path = target.substr(0, q);
  // Segment by segment, so that an encoded '/' cannot make new segments.
  std::string_view rest = raw_path.substr(1);
  for (;;) {
    const std::size_t slash = rest.find('/');
    std::string segment = percent_decode(rest.substr(0, slash));
    if (segment == "." || segment == "..")
      throw Error(400, "the path holds a \".\" or \"..\" segment");
    if (segment.find_first_of(std::string_view("/\\\0", 3)) != std::string::npos)
      throw Error(400, "a path segment holds an encoded '/', a '\\' or a NUL");
    t.path += '/';
    t.path += segment;
    t.segments.push_back(std::move(segment));
    if (slash == std::string_view::npos) break;
    rest.remove_prefix(slash + 1);
  }
  return t;
}

std::optional<std::string> query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const std::size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const std::size_t eq = pair.find('=');
    if (percent_decode(pair.substr(0, eq), true) == name)
      return eq == std::string_view::npos ? std::string() : percent_decode(pair.substr(eq + 1), true);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

}  // namespace http
