// The websocket_echo program, run as a child process
// (qi::create_subprocess_exec) in its finishing mode, against independent
// clients: Python's websockets library (ws_client_peer.py), raw sockets
// (ws_raw_peer.py: malformed frames and handshakes), headless Chromium
// driven over WebDriver (ws_browser.py), and the test itself for the clean
// stops on SIGTERM / SIGINT. The children inherit the test's Qt dispatcher
// (QT_NO_GLIB), so the server runs under each.
#include "child_program.h"
#include "ws_frame.h"

#include <qiloop/testing.h>

#include <QtCore/QCryptographicHash>
#include <QtCore/QFileInfo>
#include <QtCore/QRegularExpression>

#include <csignal>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

constexpr auto kChildTimeout = 60s;

using child_program::piped;
using child_program::expect_in_order;
using child_program::Finished;
using child_program::RunningServer;
using child_program::sigint_ignored;
using child_program::sigterm_while_never_read;

// Starts websocket_echo on a free port and reads the port from its first line.
qi::Coro<RunningServer> start_server(std::vector<std::string> args) {
  return child_program::start_server(WEBSOCKET_ECHO, "websocket_echo", std::move(args), piped(), kChildTimeout);
}

// The rest of the child's output and its exit status (killed after kChildTimeout).
qi::Coro<Finished> finish(qi::Process p) { return child_program::finish(std::move(p), kChildTimeout); }

// Runs a Python peer script against a server started with server_args;
// both must end with status 0. The peer's and the server's output.
qi::Coro<std::pair<Finished, Finished>> run_peer(std::vector<std::string> server_args,
                                                 std::vector<std::string> peer_args) {
  RunningServer server = co_await start_server(std::move(server_args));
  peer_args.insert(peer_args.begin() + 1, std::to_string(server.port));
  qi::Process peer = co_await qi::create_subprocess_exec(WS_PYTHON, std::move(peer_args), piped());
  const Finished p = co_await finish(peer);
  if (p.code != 0) server.process.kill();  // it would wait for sessions that never come
  const Finished s = co_await finish(server.process);
  EXPECT_EQ(p.code, 0) << p.output << "\n--- server:\n" << s.output;
  EXPECT_EQ(s.code, 0) << s.output;
  co_return std::pair<Finished, Finished>{p, s};
}

}  // namespace

// --- Independent clients --------------------------------------------------------

QILOOP_TEST(WebsocketEchoPrograms, ServerAnswersPythonsWebsocketsLibrary) {
  qi::testing::set_timeout(120s);
  std::vector<std::string> server_args = {"--max-sessions", "7", "--max-message", "100000"};
  std::vector<std::string> peer_args = {WS_PEER_DIR "/ws_client_peer.py", "100000"};
  auto [p, s] = co_await run_peer(std::move(server_args), std::move(peer_args));
  expect_in_order(p.output, {"peer: text and binary echo ok", "peer: fragmented messages ok", "peer: ping ok",
                             "peer: oversized message: 1009 ok", "peer: message at the limit ok",
                             "peer: handler failure: 1011 ok", "peer: client close 4000 ok", "peer: all ok"});
  expect_in_order(s.output, {"session 1: binary message of 76800 bytes, echoed", "session 1 closed: 1000 by the client",
                             "session 2: {\"output\":\"frag€ments\"}",
                             "session 4 closed: 1009 on a protocol error: a binary frame of 100001 bytes is over the "
                             "message size limit",
                             "session 5: binary message of 100000 bytes, echoed",
                             "session 6: the handler failed: the message is not JSON",
                             "session 6 closed: 1011 by the server: internal error",
                             "session 7 closed: 4000 by the client: done here", "served 7 sessions; bye"});
}

QILOOP_TEST(WebsocketEchoPrograms, ServerRefusesMalformedFramesAndHandshakesFromRawSockets) {
  qi::testing::set_timeout(120s);
  std::vector<std::string> server_args = {"--max-sessions", "8"};
  std::vector<std::string> peer_args = {WS_PEER_DIR "/ws_raw_peer.py"};
  auto [p, s] = co_await run_peer(std::move(server_args), std::move(peer_args));
  expect_in_order(p.output, {"raw: page, 404 and malformed HTTP ok", "raw: refused handshakes (426, 400, 403, 405) ok",
                             "raw: byte-by-byte frames, split character, ping between fragments ok",
                             "raw: unmasked frame: 1002 ok", "raw: reserved opcode: 1002 ok",
                             "raw: reserved bit: 1002 ok", "raw: invalid UTF-8: 1007 ok", "raw: fragmented ping: 1002 ok",
                             "raw: continuation first: 1002 ok", "raw: close code 1006: 1002 ok", "raw: all ok"});
  expect_in_order(s.output, {"http: GET / 200", "http: GET /nope 404", "http: refused a malformed request: 400",
                             "http: GET /websocket 426: WebSocket handshake: this server speaks WebSocket version 13",
                             "http: GET /websocket 403: WebSocket handshake: a page from http://evil.example",
                             "http: POST /websocket 405", "session 1: {\"output\":\"€uro\"}",
                             "session 1 closed: 1000 by the client: bye", "served 8 sessions; bye"});
  EXPECT_NE(s.output.find("closed: 1007 on a protocol error: text message is not valid UTF-8"), std::string::npos)
      << s.output;
}

QILOOP_TEST(WebsocketEchoPrograms, ChromiumExchangesJsonWithThePage) {
  qi::testing::set_timeout(120s);
  for (const char* path : {"/usr/bin/chromium", "/usr/bin/chromedriver"})
    QILOOP_CO_ASSERT(ASSERT_TRUE(QFileInfo::exists(path))
                     << path << " is missing: scripts/deps.sh chromium chromium-driver python3-selenium");
  std::vector<std::string> server_args = {"--once"};
  std::vector<std::string> peer_args = {WS_PEER_DIR "/ws_browser.py"};
  auto [p, s] = co_await run_peer(std::move(server_args), std::move(peer_args));
  expect_in_order(p.output, {"browser: page loaded, socket open ok", "browser: the original's message and reply ok",
                             "browser: a message of its own, shown as text ok", "browser: all ok"});
  expect_in_order(s.output, {"http: GET / 200", "session 1 open from 127.0.0.1:",
                             "session 1: {\"output\":\"Sent from my browser!\"}",
                             "session 1: {\"output\":\"<b>not bold</b> κόσμε\"}",
                             "session 1 closed: 1000 by the client: page closed", "served 1 session; bye"});
}

// --- Stopping the server -----------------------------------------------------------

namespace {

// A session open and idle while the signal comes: the server closes it
// with 1001, then ends with status 0.
qi::Coro<void> closes_sessions_on(int sig, const char* name) {
  qi::testing::set_timeout(120s);
  RunningServer server = co_await start_server(std::vector<std::string>());
  auto [reader, writer] = co_await qi::open_connection("127.0.0.1", server.port);
  const QByteArray key = "dGhlIHNhbXBsZSBub25jZQ==";
  writer.write("GET /websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n");
  const QByteArray head = co_await qi::wait_for(reader.readuntil("\r\n\r\n"), kChildTimeout);
  EXPECT_TRUE(head.startsWith("HTTP/1.1 101 Switching Protocols\r\n")) << head.toStdString();
  EXPECT_TRUE(head.contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n")) << head.toStdString();
  // Wait until the session is seen (its line printed), then signal.
  for (;;) {
    const QByteArray line = co_await qi::wait_for(server.process.std_out()->readline(), kChildTimeout);
    QILOOP_CO_ASSERT(ASSERT_FALSE(line.isEmpty()) << "the server ended early");
    if (line.contains("session 1 open")) break;
  }
  server.process.send_signal(sig);

  ws::FrameDecoder frames(ws::Role::kClient, 1 << 16);
  std::optional<ws::Frame> close;
  while (!close) {
    const QByteArray data = co_await qi::wait_for(reader.read(4096), kChildTimeout);
    QILOOP_CO_ASSERT(ASSERT_FALSE(data.isEmpty()) << "no close frame before the end");
    frames.feed(data);
    ws::FrameDecoder::Result r = frames.next();
    if (auto* f = std::get_if<ws::Frame>(&r)) close = std::move(*f);
  }
  EXPECT_EQ(close->opcode, ws::Opcode::kClose);
  EXPECT_EQ(close->payload, ws::close_payload(1001, "server shutting down"));
  writer.write(ws::encode_frame(ws::Opcode::kClose, ws::close_payload(1001), true, ws::MaskKey{9, 8, 7, 6}));
  const QByteArray rest = co_await qi::wait_for(reader.read(), kChildTimeout);
  EXPECT_EQ(rest, QByteArray()) << "then the server closes";
  writer.close();

  const Finished s = co_await finish(server.process);
  EXPECT_EQ(s.code, 0) << s.output;
  expect_in_order(s.output, {std::string("stopping on ") + name,
                             "session 1 closed: 1001 by the server: server shutting down", "served 1 session; bye"});
}

}  // namespace

QILOOP_TEST(WebsocketEchoPrograms, SigtermClosesOpenSessionsWith1001) { co_await closes_sessions_on(SIGTERM, "SIGTERM"); }

QILOOP_TEST(WebsocketEchoPrograms, SigintClosesOpenSessionsWith1001) {
  // Ignored here, it is ignored in the child too (a shell's background job).
  if (sigint_ignored())
    QILOOP_CO_ASSERT(GTEST_SKIP() << "SIGINT is ignored in this process (a background job?): so is it in the server");
  co_await closes_sessions_on(SIGINT, "SIGINT");
}

QILOOP_TEST(WebsocketEchoPrograms, SigtermStopsTheServerWhileAClientNeverReadsItsEchoes) {
  // A session whose client sends megabytes of binary messages and reads
  // nothing: the echo waits in drain(), the session's close frame cannot be
  // sent. A stop must not wait for that client for ever.
  qi::testing::set_timeout(120s);
  std::vector<std::string> args = {"--close-timeout", "1000"};
  RunningServer server = co_await start_server(std::move(args));
  auto [reader, writer] = co_await qi::open_connection("127.0.0.1", server.port);
  writer.write("GET /websocket HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
               "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n");
  const QByteArray head = co_await qi::wait_for(reader.readuntil("\r\n\r\n"), kChildTimeout);
  EXPECT_TRUE(head.startsWith("HTTP/1.1 101 Switching Protocols\r\n")) << head.toStdString();
  const QByteArray message =
      ws::encode_frame(ws::Opcode::kBinary, QByteArray(60000, 'x'), true, ws::MaskKey{1, 2, 3, 4});
  std::vector<std::string> stop_lines = {"stopping on SIGTERM", "session 1 closed: 1001 by the server",
                                         "served 1 session; bye"};
  co_await sigterm_while_never_read(server, writer, message, "binary message of 60000 bytes", std::move(stop_lines),
                                    kChildTimeout);
}

QILOOP_TEST(WebsocketEchoPrograms, RefusesABadLimit) {
  std::vector<std::string> args = {"--max-message", "2000000000"};
  qi::Process p = co_await qi::create_subprocess_exec(WEBSOCKET_ECHO, std::move(args), piped());
  const Finished s = co_await finish(p);
  EXPECT_EQ(s.code, 2);
  EXPECT_NE(s.output.find("--max-message wants a number from 0 to 1073741824, not '2000000000'"), std::string::npos)
      << s.output;
}
