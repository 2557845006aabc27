#include "ws_handshake.h"

#include <QtCore/QCryptographicHash>

#include <string_view>

namespace ws {

namespace {

constexpr std::string_view kGuid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

// Whether a comma-separated field value lists token (case-insensitive).
bool lists(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const std::size_t comma = value.find(',');
    std::string_view item = value.substr(0, comma);
    while (!item.empty() && (item.front() == ' ' || item.front() == '\t')) item.remove_prefix(1);
    while (!item.empty() && (item.back() == ' ' || item.back() == '\t')) item.remove_suffix(1);
    if (http::iequals(item, token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

http::Response refuse(int status, std::string detail) {
  http::Response r = http::Response::error(status, "WebSocket handshake: " + detail);
  r.close = true;
  return r;
}

int count(const http::Request& request, std::string_view name) {
  int n = 0;
  for (const http::Header& h : request.headers) n += http::iequals(h.name, name);
  return n;
}

}  // namespace

QByteArray accept_key(QByteArrayView sec_websocket_key) {
  QByteArray input = sec_websocket_key.toByteArray();
  input.append(kGuid.data(), static_cast<qsizetype>(kGuid.size()));
  return QCryptographicHash::hash(input, QCryptographicHash::Sha1).toBase64();
}

Handshake check_handshake(const http::Request& request) {
  if (request.method != "GET") {
    http::Response r = refuse(405, "the method must be GET, not " + request.method);
    r.set("Allow", "GET");
    return r;
  }
  if (request.version == "HTTP/1.0") return refuse(400, "HTTP/1.1 or later is needed, not HTTP/1.0");
  if (!lists(request.header("Upgrade").value_or(""), "websocket"))
    return refuse(400, "the request needs \"Upgrade: websocket\"");
  if (!lists(request.header("Connection").value_or(""), "upgrade"))
    return refuse(400, "the request needs \"Connection: Upgrade\"");

  if (count(request, "Sec-WebSocket-Key") != 1) return refuse(400, "the request needs one Sec-WebSocket-Key field");
  const std::string_view key = *request.header("Sec-WebSocket-Key");
  const QByteArray::FromBase64Result nonce = QByteArray::fromBase64Encoding(
      QByteArray(key.data(), static_cast<qsizetype>(key.size())), QByteArray::AbortOnBase64DecodingErrors);
  if (!nonce || nonce.decoded.size() != 16)
    return refuse(400, "Sec-WebSocket-Key must be the base64 of 16 random bytes (24 characters)");

  const std::optional<std::string_view> version = request.header("Sec-WebSocket-Version");
  if (!version) return refuse(400, "the request needs \"Sec-WebSocket-Version: 13\"");
  if (*version != "13") {
    http::Response r = refuse(426, "this server speaks WebSocket version 13 (RFC 6455), not " + std::string(*version));
    r.set("Sec-WebSocket-Version", "13");
    return r;
  }

  if (const std::optional<std::string_view> origin = request.header("Origin")) {
    const std::string own = "http://" + std::string(request.header("Host").value_or(""));
    if (!http::iequals(*origin, own))
      return refuse(403, "a page from " + std::string(*origin) + " may not open WebSockets to this server (" + own + ")");
  }
  return Accept{accept_key(QByteArrayView(key.data(), static_cast<qsizetype>(key.size())))};
}

QByteArray switching_protocols(const Accept& accept) {
  return "HTTP/1.1 101 Switching Protocols\r\n"
         "Upgrade: websocket\r\n"
         "Connection: Upgrade\r\n"
         "Sec-WebSocket-Accept: " + accept.accept + "\r\n\r\n";
}

}  // namespace ws
