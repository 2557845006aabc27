#include "http_request.h"

#include "http_response.h"

#include <algorithm>
#include <charconv>
#include <utility>

namespace http {

namespace {

char lower(char c) noexcept { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

// RFC 9110 §5.6.2: tchar.
bool is_tchar(unsigned char c) noexcept {
  if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return true;
  return std::string_view("!#$%&'*+-.^_`|~").find(static_cast<char>(c)) != std::string_view::npos;
}

bool is_token(std::string_view s) noexcept {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return is_tchar(static_cast<unsigned char>(c)); });
}

// A field value's characters: VCHAR, obs-text, SP, HTAB (RFC 9110 §5.5).
bool is_field_char(unsigned char c) noexcept { return c == '\t' || (c >= 0x20 && c != 0x7f); }

std::string_view trim_ows(std::string_view s) noexcept {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Whether a comma-separated list of tokens (a Connection field) holds token.
bool lists_token(std::string_view list, std::string_view token) {
  while (!list.empty()) {
    const std::size_t comma = list.find(',');
    if (iequals(trim_ows(list.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

}  // namespace

Error::Error(int status, std::string reason)
    : std::runtime_error(std::to_string(status) + " " + std::string(reason_phrase(status)) + ": " + reason),
      status_(status),
      reason_(std::move(reason)) {}

bool iequals(std::string_view a, std::string_view b) noexcept {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) { return lower(x) == lower(y); });
}

std::optional<std::string_view> Request::header(std::string_view name) const {
  for (const Header& h : headers)
    if (iequals(h.name, name)) return std::string_view(h.value);
  return std::nullopt;
}

bool Request::keep_alive() const {
  bool close = false;
  bool keep = false;
  for (const Header& h : headers) {
    if (!iequals(h.name, "connection")) continue;
    close = close || lists_token(h.value, "close");
    keep = keep || lists_token(h.value, "keep-alive");
  }
  if (close) return false;
  return version == "HTTP/1.0" ? keep : true;
}

RequestParser::RequestParser(Limits limits) : limits_(limits) {}

void RequestParser::feed(std::string_view bytes) {
  if (error_) return;
  // Drop what earlier requests consumed before growing the buffer.
  if (pos_ > 0 && pos_ >= buf_.size() / 2) {
    buf_.erase(0, pos_);
    pos_ = 0;
  }
  buf_.append(bytes);
}

bool RequestParser::started() const noexcept {
  if (started_) return true;
  // Bytes waiting in the request-line phase that are not an empty line's.
  std::string_view rest = std::string_view(buf_).substr(pos_);
  while (rest.substr(0, 2) == "\r\n") rest.remove_prefix(2);  // empty lines next() has not skipped yet
  return !rest.empty() && rest != "\r";
}

std::optional<std::size_t> RequestParser::body_remaining() const noexcept {
  if (phase_ != Phase::kBody) return std::nullopt;
  return body_left_ - std::min(body_left_, buffered());
}

std::optional<Request> RequestParser::next() {
  if (error_) throw *error_;
  while (!done_ && step()) {
  }
  std::optional<Request> r = std::exchange(done_, std::nullopt);
  return r;
}

void RequestParser::fail(int status, std::string reason) {
  error_.emplace(status, std::move(reason));
  throw *error_;
}

RequestParser::LineStatus RequestParser::take_line(std::size_t room, std::string_view& line) {
  const std::string_view rest = std::string_view(buf_).substr(pos_);
  // A line that fits ends (CRLF included) within room + 2 bytes: once that
  // many are here without an LF, it cannot fit any more. Judged before the
  // line's end, so that the same bytes get the same answer however they
  // were split (found by tests/fuzz/fuzz_http_request: a long line ending
  // in a bare LF was 414 in pieces, 400 at once).
  const bool over = rest.size() > room && rest.size() - room >= 2;  // rest.size() >= room + 2, without overflow
  const std::size_t lf = rest.substr(0, over ? room + 2 : rest.size()).find('\n');
  if (lf == std::string_view::npos) return over ? LineStatus::kTooLong : LineStatus::kNeedMore;
  if (lf == 0 || rest[lf - 1] != '\r') fail(400, "a line ends with a bare LF; lines end with CRLF");
  line = rest.substr(0, lf - 1);
  if (line.find('\r') != std::string_view::npos) fail(400, "a bare CR inside a line");
  pos_ += lf + 1;
  return LineStatus::kLine;
}

bool RequestParser::step() {
  std::string_view line;
  switch (phase_) {
    case Phase::kRequestLine: {
      const LineStatus got = take_line(limits_.max_request_line, line);
      if (got == LineStatus::kNeedMore) return false;
      if (got == LineStatus::kTooLong)
        fail(414, "the request line is longer than " + std::to_string(limits_.max_request_line) + " bytes");
      if (line.empty()) return true;  // an empty line before the request: skipped
      started_ = true;
      parse_request_line(line);
      phase_ = Phase::kHeaders;
      return true;
    }
    case Phase::kHeaders: {
      // A field line of n bytes takes n + 2 of the section's room; the empty
      // line that ends the section is not counted, so it fits even when the
      // section is full.
      const std::size_t room = limits_.max_header_bytes - header_bytes_;
      const LineStatus got = take_line(room >= 2 ? room - 2 : 0, line);
      if (got == LineStatus::kNeedMore) return false;
      if (got == LineStatus::kTooLong)
        fail(431, "the header section is longer than " + std::to_string(limits_.max_header_bytes) + " bytes");
      if (line.empty())
        end_of_headers();
      else
        parse_header_line(line);
      return true;
    }
    case Phase::kBody: {
      const std::size_t n = std::min(body_left_, buffered());
      current_.body.append(buf_, pos_, n);
      pos_ += n;
      body_left_ -= n;
      if (body_left_ > 0) return false;
      done_ = std::exchange(current_, Request{});
      phase_ = Phase::kRequestLine;
      started_ = false;
      return true;
    }
  }
  return false;
}

void RequestParser::parse_request_line(std::string_view line) {
  const std::size_t sp1 = line.find(' ');
  const std::size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos)
    fail(400, "the request line is not \"METHOD TARGET HTTP/1.1\" with single spaces");
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!is_token(method)) fail(400, "the method is not a token");
  if (target.empty() || !std::all_of(target.begin(), target.end(), [](char c) {
        return static_cast<unsigned char>(c) > 0x20 && static_cast<unsigned char>(c) < 0x7f;
      }))
    fail(400, "the request target is empty or holds characters other than visible ASCII");
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || !digit(version[5]) || version[6] != '.' ||
      !digit(version[7]))
    fail(400, "the version is not \"HTTP/<digit>.<digit>\"");
  if (version[5] != '1') fail(505, "only HTTP/1.x is served, not " + std::string(version));
  current_.method = method;
  current_.target = target;
  current_.version = version;
}

void RequestParser::parse_header_line(std::string_view line) {
  header_bytes_ += line.size() + 2;  // take_line checked that it fits
  if (line.front() == ' ' || line.front() == '\t') fail(400, "obsolete line folding (a field line starting with whitespace)");
  if (current_.headers.size() == limits_.max_header_count)
    fail(431, "more than " + std::to_string(limits_.max_header_count) + " header fields");
  const std::size_t colon = line.find(':');
  if (colon == std::string_view::npos) fail(400, "a header field without a colon");
  const std::string_view name = line.substr(0, colon);
  if (!is_token(name)) fail(400, "a header field name that is not a token (no space before the colon)");
  const std::string_view value = trim_ows(line.substr(colon + 1));
  if (!std::all_of(value.begin(), value.end(), [](char c) { return is_field_char(static_cast<unsigned char>(c)); }))
    fail(400, "a control character in the value of " + std::string(name));
  current_.headers.push_back(Header{std::string(name), std::string(value)});
}

void RequestParser::end_of_headers() {
  std::size_t hosts = 0;
  std::optional<std::string_view> length;
  for (const Header& h : current_.headers) {
    if (iequals(h.name, "host")) ++hosts;
    if (iequals(h.name, "transfer-encoding"))
      fail(501, "Transfer-Encoding is not implemented: send the body with Content-Length");
    if (iequals(h.name, "content-length")) {
      if (length && *length != h.value) fail(400, "Content-Length fields disagree");
      length = h.value;
    }
  }
  if (current_.version != "HTTP/1.0" && hosts != 1) fail(400, "an HTTP/1.1 request needs exactly one Host field");
  std::size_t size = 0;
  if (length) {
    if (length->empty() || !std::all_of(length->begin(), length->end(), [](char c) { return c >= '0' && c <= '9'; }))
      fail(400, "Content-Length is not a number");
    const auto [end, ec] = std::from_chars(length->data(), length->data() + length->size(), size);
    if (ec != std::errc() || size > limits_.max_body)
      fail(413, "the body is longer than " + std::to_string(limits_.max_body) + " bytes");
  }
  header_bytes_ = 0;
  body_left_ = size;
  phase_ = Phase::kBody;  // step() completes the request (at once for an empty body)
}

}  // namespace http
