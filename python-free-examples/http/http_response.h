// http_response.h — an HTTP/1.1 response as a value, and its bytes.
//
//   http::Response r = http::Response::json(R"({"count": 3})");
//   r.set("Cache-Control", "no-store");
//   std::string bytes = http::serialize(r, /*keep_alive=*/true, /*head=*/false);
//
// The contract:
// - serialize() writes the status line (HTTP/1.1), the fields in the order
//   set, then Content-Length (the body's size) and Connection ("keep-alive"
//   or "close": the connection's fate is said, not guessed by the client),
//   then the body, unless head (a HEAD request: same fields, no body).
//   Content-Length and Connection are the serializer's: setting either is
//   refused, as are names that are not tokens and values with CR, LF or
//   other control characters (no response splitting): std::invalid_argument.
// - 1xx, 204 and 304 responses carry no body and no Content-Length (RFC
//   9110 §8.6); giving them a body is refused likewise.
// Thread-safety: none (values).
#pragma once

#include "http_request.h"

#include <functional>
#include <string>
#include <string_view>
#include <vector>

namespace http {

// http::reason_phrase()
// "Not Found" for 404; "Unknown" for a status it does not know.
std::string_view reason_phrase(int status) noexcept;

// http::Response
struct Response {
  int status = 200;
  std::vector<Header> headers;
  std::string body;
  // Close the connection after this response, whatever the request asked.
  bool close = false;
  // Called once the response was written and drained (serve_connection
  // does it): what must happen only after the client got its answer, such
  // as stopping the server that sent it. Not called when writing failed.
  std::function<void()> on_sent;

  // Response::set()
  // Sets a field, replacing any of that name (case-insensitive).
  Response& set(std::string name, std::string value);

  // Response::text() / html() / json()
  // A body with its Content-Type (UTF-8).
  static Response text(int status, std::string body);
  static Response html(std::string body);
  static Response json(std::string body);

  // Response::error()
  // status with a plain-text body "<status> <phrase>\n<detail>\n", closing
  // the connection for client errors of the stream's framing (400, 413,
  // 414, 431, 501, 505: what an http::Error says), keeping it otherwise.
  static Response error(int status, std::string_view detail);
};

// http::serialize()
// The response's bytes (see the file comment).
std::string serialize(const Response& response, bool keep_alive, bool head);

}  // namespace http
