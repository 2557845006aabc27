#include "http_response.h"

#include <algorithm>
#include <stdexcept>
#include <utility>

namespace http {

namespace {

bool valid_name(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
  });
}

bool valid_value(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u == '\t' || (u >= 0x20 && u != 0x7f);
  });
}

bool bodiless(int status) { return (status >= 100 && status < 200) || status == 204 || status == 304; }

// Statuses whose request left the stream out of step (or unread): the
// connection cannot carry another request.
bool framing_error(int status) {
  return status == 400 || status == 413 || status == 414 || status == 431 || status == 501 || status == 505;
}

}  // namespace

std::string_view reason_phrase(int status) noexcept {
  switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 200: return "OK";
    case 201: return "Created";
    case 204: return "No Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 400: return "Bad Request";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Unknown";
  }
}

Response& Response::set(std::string name, std::string value) {
  std::erase_if(headers, [&name](const Header& h) { return iequals(h.name, name); });
  headers.push_back(Header{std::move(name), std::move(value)});
  return *this;
}

Response Response::text(int status, std::string body) {
  Response r;
  r.status = status;
  r.body = std::move(body);
  r.set("Content-Type", "text/plain; charset=utf-8");
  return r;
}

Response Response::html(std::string body) {
  Response r = text(200, std::move(body));
  r.set("Content-Type", "text/html; charset=utf-8");
  return r;
}

Response Response::json(std::string body) {
  Response r = text(200, std::move(body));
  r.set("Content-Type", "application/json");
  return r;
}

Response Response::error(int status, std::string_view detail) {
  Response r = text(status, std::to_string(status) + " " + std::string(reason_phrase(status)) + "\n" +
                                std::string(detail) + "\n");
  r.close = framing_error(status);
  return r;
}

std::string serialize(const Response& response, bool keep_alive, bool head) {
  if (response.status < 100 || response.status > 999)
    throw std::invalid_argument("http::serialize: status " + std::to_string(response.status) + " is not 3 digits");
  const bool no_body = bodiless(response.status);
  if (no_body && !response.body.empty())
    throw std::invalid_argument("http::serialize: a " + std::to_string(response.status) + " response has no body");
  std::string out = "HTTP/1.1 " + std::to_string(response.status) + " " + std::string(reason_phrase(response.status)) + "\r\n";
  for (const Header& h : response.headers) {
    if (!valid_name(h.name)) throw std::invalid_argument("http::serialize: the field name \"" + h.name + "\" is not a token");
    if (!valid_value(h.value))
      throw std::invalid_argument("http::serialize: the value of " + h.name + " holds CR, LF or another control character");
    if (iequals(h.name, "content-length") || iequals(h.name, "connection"))
      throw std::invalid_argument("http::serialize: " + h.name +
                                  " is set by the serializer (use Response::close to end the connection)");
    out += h.name;
    out += ": ";
    out += h.value;
    out += "\r\n";
  }
  if (!no_body) out += "Content-Length: " + std::to_string(response.body.size()) + "\r\n";
  out += keep_alive ? "Connection: keep-alive\r\n\r\n" : "Connection: close\r\n\r\n";
  if (!head) out += response.body;
  return out;
}

}  // namespace http
