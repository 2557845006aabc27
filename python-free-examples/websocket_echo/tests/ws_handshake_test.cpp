// The opening handshake (ws_handshake.h): the RFC's own key, the 101
// response, and each refusal with its status.
#include "ws_handshake.h"

#include <gtest/gtest.h>

#include <string>

namespace {

constexpr const char* kKey = "dGhlIHNhbXBsZSBub25jZQ==";  // RFC 6455 section 1.3

// A request parsed by httpkit from its head (fields given as lines).
http::Request request(const std::string& request_line, const std::string& fields) {
  http::RequestParser parser;
  parser.feed(request_line + "\r\n" + fields + "\r\n");
  std::optional<http::Request> r = parser.next();
  if (!r) throw std::runtime_error("incomplete test request");
  return *r;
}

std::string good_fields(const std::string& replace_name = "", const std::string& replacement = "") {
  const std::pair<std::string, std::string> fields[] = {
      {"Host", "Host: 127.0.0.1:5000\r\n"},
      {"Upgrade", "Upgrade: websocket\r\n"},
      {"Connection", "Connection: Upgrade\r\n"},
      {"Sec-WebSocket-Key", std::string("Sec-WebSocket-Key: ") + kKey + "\r\n"},
      {"Sec-WebSocket-Version", "Sec-WebSocket-Version: 13\r\n"},
  };
  std::string out;
  for (const auto& [name, line] : fields) out += name == replace_name ? replacement : line;
  return out;
}

http::Response refusal(const ws::Handshake& h) {
  const auto* r = std::get_if<http::Response>(&h);
  if (!r) {
    ADD_FAILURE() << "accepted";
    return {};
  }
  EXPECT_TRUE(r->close) << "a refused handshake closes the connection";
  return *r;
}

std::string field(const http::Response& r, const std::string& name) {
  for (const http::Header& h : r.headers)
    if (http::iequals(h.name, name)) return h.value;
  return "";
}

TEST(WsHandshake, ComputesTheRfcsAcceptKey) {
  EXPECT_EQ(ws::accept_key(kKey), QByteArray("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
}

TEST(WsHandshake, AcceptsAGoodRequestWithThe101Response) {
  ws::Handshake h = ws::check_handshake(request("GET /websocket HTTP/1.1", good_fields()));
  const auto* accept = std::get_if<ws::Accept>(&h);
  ASSERT_NE(accept, nullptr) << std::get<http::Response>(h).body;
  EXPECT_EQ(ws::switching_protocols(*accept),
            QByteArray("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                       "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"));
}

TEST(WsHandshake, TokensAreCaseInsensitiveInLists) {
  const std::string fields = good_fields("Connection", "Connection: keep-alive, upgrade\r\n");
  EXPECT_TRUE(std::holds_alternative<ws::Accept>(
      ws::check_handshake(request("GET / HTTP/1.1", good_fields("Upgrade", "upgrade: WebSocket\r\n")))));
  EXPECT_TRUE(std::holds_alternative<ws::Accept>(ws::check_handshake(request("GET / HTTP/1.1", fields))));
}

TEST(WsHandshake, AMalformedHandshakeIs400) {
  struct Case {
    std::string name, replacement, why;
  };
  const Case cases[] = {
      {"Upgrade", "", "Upgrade: websocket"},
      {"Upgrade", "Upgrade: h2c\r\n", "Upgrade: websocket"},
      {"Connection", "Connection: keep-alive\r\n", "Connection: Upgrade"},
      {"Sec-WebSocket-Key", "", "one Sec-WebSocket-Key"},
      {"Sec-WebSocket-Key", std::string("Sec-WebSocket-Key: ") + kKey + "\r\nSec-WebSocket-Key: " + kKey + "\r\n",
       "one Sec-WebSocket-Key"},
      {"Sec-WebSocket-Key", "Sec-WebSocket-Key: not base64!\r\n", "16 random bytes"},
      {"Sec-WebSocket-Key", "Sec-WebSocket-Key: AAECAwQFBgcICQoLDA0O\r\n", "16 random bytes"},  // 15 bytes
      {"Sec-WebSocket-Version", "", "Sec-WebSocket-Version: 13"},
  };
  for (const Case& c : cases) {
    http::Response r = refusal(ws::check_handshake(request("GET / HTTP/1.1", good_fields(c.name, c.replacement))));
    EXPECT_EQ(r.status, 400) << c.why;
    EXPECT_NE(r.body.find(c.why), std::string::npos) << r.body;
  }
  http::Response old = refusal(ws::check_handshake(request("GET / HTTP/1.0", good_fields())));
  EXPECT_EQ(old.status, 400);
  EXPECT_NE(old.body.find("HTTP/1.1 or later"), std::string::npos) << old.body;
}

TEST(WsHandshake, AnotherMethodIs405) {
  http::Response r = refusal(ws::check_handshake(request("POST / HTTP/1.1", good_fields())));
  EXPECT_EQ(r.status, 405);
  EXPECT_EQ(field(r, "Allow"), "GET");
}

TEST(WsHandshake, AnotherVersionIs426NamingVersion13) {
  http::Response r = refusal(
      ws::check_handshake(request("GET / HTTP/1.1", good_fields("Sec-WebSocket-Version", "Sec-WebSocket-Version: 8\r\n"))));
  EXPECT_EQ(r.status, 426);
  EXPECT_EQ(field(r, "Sec-WebSocket-Version"), "13");
  EXPECT_NE(r.body.find("not 8"), std::string::npos) << r.body;
}

TEST(WsHandshake, APageOfAnotherOriginIs403) {
  http::Response r = refusal(
      ws::check_handshake(request("GET / HTTP/1.1", good_fields() + "Origin: http://evil.example\r\n")));
  EXPECT_EQ(r.status, 403);
  EXPECT_NE(r.body.find("http://evil.example"), std::string::npos) << r.body;
  EXPECT_TRUE(std::holds_alternative<ws::Accept>(
      ws::check_handshake(request("GET / HTTP/1.1", good_fields() + "Origin: http://127.0.0.1:5000\r\n"))));
}

}  // namespace
