// ws_handshake.h — the server's side of RFC 6455's opening handshake
// (section 4.2) on an http::Request from httpkit: the request checked,
// Sec-WebSocket-Accept computed, the 101 response, or the HTTP refusal.
//
//   std::optional<http::Request> req = co_await http::read_request(reader, limits);
//   ws::Handshake h = ws::check_handshake(*req);
//   if (auto* refusal = std::get_if<http::Response>(&h)) { ...write it, close... }
//   writer.write(ws::switching_protocols(std::get<ws::Accept>(h)));
//   ws::Connection conn(reader, writer);                  // frames from here on
//
// The checks, in this order, each refused with a response that names what
// is wrong (all close the connection afterwards):
// - method GET (405, Allow: GET), version HTTP/1.1 or later (400);
// - Upgrade lists "websocket" and Connection lists "Upgrade"
//   (case-insensitive tokens of comma-separated lists): 400;
// - exactly one Sec-WebSocket-Key, the base64 of 16 bytes: 400;
// - Sec-WebSocket-Version present (400) and 13: otherwise 426 Upgrade
//   Required with "Sec-WebSocket-Version: 13" (section 4.2.2);
// - Origin, when a browser sends one, is the server's own
//   ("http://" + Host): 403 otherwise. A page of another site must not open
//   a connection to a local server in the visitor's name (cross-site
//   WebSocket hijacking); clients that are not browsers send no Origin.
// No subprotocol or extension is ever agreed (none is echoed), so frames
// with RSV bits stay protocol errors. Thread-safety: pure functions.
#pragma once

#include "http.h"

#include <QtCore/QByteArray>
#include <QtCore/QByteArrayView>

#include <string>
#include <variant>

namespace ws {

// ws::accept_key()
// base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")), the
// Sec-WebSocket-Accept for a Sec-WebSocket-Key (QCryptographicHash,
// QByteArray::toBase64).
QByteArray accept_key(QByteArrayView sec_websocket_key);

// ws::Accept
// A handshake to accept: the Sec-WebSocket-Accept to answer with.
struct Accept {
  QByteArray accept;
};

// ws::Handshake
using Handshake = std::variant<Accept, http::Response>;

// ws::check_handshake()
// Accept, or the response refusing the request (see the file comment).
Handshake check_handshake(const http::Request& request);

// ws::switching_protocols()
// The 101 response's bytes. Written by hand: its "Connection: Upgrade" is
// not one of the values http::serialize lets a response have.
QByteArray switching_protocols(const Accept& accept);

}  // namespace ws
