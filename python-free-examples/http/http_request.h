// http_request.h — an HTTP/1.1 request and its incremental parser: bytes
// in, requests out, no I/O (a fuzzer can drive it, a stream can feed it).
//
//   http::RequestParser parser;                     // http::Limits{} by default
//   parser.feed("GET /count HTTP/1.1\r\nHost: x\r\n\r\nGET / HT");
//   std::optional<http::Request> r = parser.next();  // the first request
//   r->header("host");                               // "x" (names compare case-insensitively)
//   parser.next();                                   // std::nullopt: "GET / HT" waits for more bytes
//
// The contract (RFC 9112, strict where leniency lets requests be smuggled):
// - Lines end with CRLF; a bare LF or CR is malformed. Empty lines before a
//   request line are skipped (RFC 9112 §2.2).
// - Request line: method SP target SP version, single spaces. The method is
//   a token, the target visible ASCII (not decoded here: see
//   http_target.h), the version "HTTP/" DIGIT "." DIGIT: major 1 only
//   (HTTP/1.0 and 1.x accepted; another major is 505).
// - Header fields: token ":" OWS value OWS; no space before the colon, no
//   obsolete line folding, no control characters but HTAB in values.
//   HTTP/1.1 requests need exactly one Host field (RFC 9112 §3.2).
// - Body: Content-Length only (1*DIGIT; several fields must agree). Any
//   Transfer-Encoding is refused with 501 (chunked is not implemented), which
//   also rules out the CL/TE smuggling pair. No Content-Length: no body.
// - Limits (http::Limits), each allowed up to and including its value:
//   the request line's length without its CRLF (over: 414), the header
//   section's bytes (every field line with its CRLF, not the empty line
//   that ends the section; over: 431), the number of fields (over: 431),
//   the body (over: 413, told by Content-Length before any body byte
//   arrives). A limit is enforced as soon as the bytes fed prove it is
//   crossed, so a hostile peer cannot make the parser buffer more than a
//   limit (plus one line) while waiting for a line's end.
// - Errors are http::Error{status, reason}: what to answer before closing
//   the connection. After an error the stream is out of step: the parser
//   throws the same error from then on.
// - Pipelining: bytes after one request stay buffered for the next.
// Thread-safety: none (a value type; one thread at a time).
#pragma once

#include <cstddef>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace http {

// http::Limits
// What a request may hold. The defaults suit a small local server.
struct Limits {
  std::size_t max_request_line = 8 * 1024;   // bytes, without CRLF (414)
  std::size_t max_header_bytes = 16 * 1024;  // the field lines with their CRLFs (431)
  std::size_t max_header_count = 100;        // field lines (431)
  std::size_t max_body = 1024 * 1024;        // Content-Length (413)
};

// http::Error
// A request the server must refuse: status() is the HTTP status to answer
// (400, 413, 414, 431, 501, 505, ...), reason() says why, in words a
// client's developer can act on. what() is "<status> <phrase>: <reason>".
class Error : public std::runtime_error {
 public:
  Error(int status, std::string reason);
  int status() const noexcept { return status_; }
  const std::string& reason() const noexcept { return reason_; }

 private:
  int status_;
  std::string reason_;
};

// http::Header
// One field as received: the name's case kept, the value without its
// surrounding whitespace.
struct Header {
  std::string name;
  std::string value;
};

// http::iequals()
// ASCII case-insensitive comparison (field names, tokens).
bool iequals(std::string_view a, std::string_view b) noexcept;

// http::Request
struct Request {
  std::string method;   // "GET" (case-sensitive, as RFC 9110 says)
  std::string target;   // as sent: "/path?query" (parse_target decodes it)
  std::string version;  // "HTTP/1.1"
  std::vector<Header> headers;
  std::string body;

  // Request::header()
  // The first field named name (case-insensitive), or std::nullopt. The
  // view lives as long as the request is not modified.
  std::optional<std::string_view> header(std::string_view name) const;

  // Request::keep_alive()
  // Whether the client lets the connection carry another request:
  // HTTP/1.1 unless a Connection field lists "close"; HTTP/1.0 only when
  // it lists "keep-alive".
  bool keep_alive() const;
};

// http::RequestParser
// Bytes in (feed), requests out (next). See the file comment.
class RequestParser {
 public:
  explicit RequestParser(Limits limits = {});

  // RequestParser::feed()
  // Appends bytes (copied). Never throws http::Error: next() judges them.
  void feed(std::string_view bytes);

  // RequestParser::next()
  // The next complete request, taken from the buffer; std::nullopt when
  // the bytes so far do not finish one. Throws http::Error for a request
  // that breaks the grammar or a limit, then again on every call.
  std::optional<Request> next();

  // RequestParser::started()
  // True once a byte of the next request (beyond skipped empty lines) was
  // fed: the end of the stream then cuts a request in two.
  bool started() const noexcept;

  // RequestParser::body_remaining()
  // While the parser waits for the body: how many bytes it still needs
  // (std::nullopt before the header section is complete). A reader that
  // feeds whole lines until then and exactly this many bytes after it
  // never feeds past the request's end.
  std::optional<std::size_t> body_remaining() const noexcept;

  // RequestParser::buffered()
  // Bytes fed and not yet part of a returned request or a parsed line.
  std::size_t buffered() const noexcept { return buf_.size() - pos_; }

  const Limits& limits() const noexcept { return limits_; }

 private:
  enum class Phase { kRequestLine, kHeaders, kBody };
  // Each step consumes one line (or body bytes); false when it needs more.
  bool step();
  // The next line, without its CRLF, into `line` when it is complete and
  // at most `room` bytes long; kTooLong as soon as the bytes prove it is not.
  enum class LineStatus { kLine, kNeedMore, kTooLong };
  LineStatus take_line(std::size_t room, std::string_view& line);
  void parse_request_line(std::string_view line);
  void parse_header_line(std::string_view line);
  void end_of_headers();
  [[noreturn]] void fail(int status, std::string reason);

  Limits limits_;
  std::string buf_;  // unparsed bytes start at pos_
  std::size_t pos_ = 0;
  Phase phase_ = Phase::kRequestLine;
  Request current_;
  bool started_ = false;
  std::size_t header_bytes_ = 0;
  std::size_t body_left_ = 0;
  std::optional<Request> done_;
  std::optional<Error> error_;
};

}  // namespace http
