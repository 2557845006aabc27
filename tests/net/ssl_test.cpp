// TLS: qi::SslContext, create_connection's ssl=, the server-side factory
// and loop.start_tls, against peers that are not qiloop — openssl s_server /
// s_client, Python's ssl module under asyncio (tests/net/ssl_peer.py) and a
// blocking OpenSSL server on a thread — with certificates made at run time.
// Real time (the peers are processes and threads), bounded waits; the
// handshake timeout runs on virtual time.
#include "net/ssl_peers.h"
#include "net/ssl_protocol.h"

#include <qiloop/net/server.h>
#include <qiloop/net/ssl.h>
#include <qiloop/net/streams.h>
#include <qiloop/net/transport.h>
#include <qiloop/structured/timeout.h>
#include <qiloop/sync/event.h>
#include <qiloop/testing.h>

#include <gtest/gtest.h>

using namespace std::chrono_literals;
using namespace peers;
using namespace sslpeers;

namespace {

std::shared_ptr<qi::SslContext> trusting_client() {
  auto c = qi::SslContext::client();
  c->load_verify_locations(certs().ca);
  return c;
}

std::shared_ptr<qi::SslContext> server_context() { return qi::SslContext::server(certs().server, certs().server_key); }

qi::ConnectOptions tls_to_localhost(std::shared_ptr<qi::SslContext> ctx = trusting_client()) {
  qi::ConnectOptions o;
  o.ssl = std::move(ctx);
  o.server_hostname = "localhost";
  return o;
}

std::vector<std::string> python_server(const std::string& alpn = "", const std::string& mode = "echo") {
  return {"python3", peer_script(), "server", certs().server, certs().server_key, alpn.empty() ? "," : alpn, mode};
}

// A non-blocking listener on 127.0.0.1 for the server-side tests.
Fd async_listener() {
  Fd lsn = listener(qi::SocketAddress::ip("127.0.0.1", 0));
  ::fcntl(lsn.get(), F_SETFL, ::fcntl(lsn.get(), F_GETFL) | O_NONBLOCK);
  return lsn;
}

// A TLS connection (create_connection, tls_to_localhost) to
// 127.0.0.1:port, recording into log.
qi::Coro<qi::Transport*> tls_client(uint16_t port, std::shared_ptr<Log> log) {
  auto factory = recorder(std::move(log));
  auto made = co_await qi::get_running_loop().create_connection(std::move(factory), "127.0.0.1", port, tls_to_localhost());
  co_return made.first;
}

// ssl_peer.py as a client (`mode`, then arg after the port, the CA and the
// name) of a listener on 127.0.0.1.
struct PythonTlsClient {
  Fd lsn = async_listener();
  Child child;
  PythonTlsClient(const std::string& mode, const std::string& arg)
      : child({"python3", peer_script(), mode, std::to_string(sockname(lsn.get()).port()), certs().ca, "localhost",
               arg}) {}
  // The client's connection, accepted: non-blocking, the caller's.
  qi::Coro<int> accepted() { co_return (co_await qi::get_running_loop().sock_accept(lsn.get())).first; }
};

// TLS over a socket pair: qiloop's server side (server_factory's protocols)
// on one end; on the other a plain transport recording into log, upgraded by
// loop.start_tls (client side, for localhost, with options o). The TLS
// transport.
qi::Coro<qi::Transport*> start_tls_over_a_pair(QiEventLoop::ProtocolFactory server_factory, std::shared_ptr<Log> log,
                                               qi::TlsOptions o = {}) {
  auto& loop = qi::get_running_loop();
  auto pair = unix_pair();
  auto tls_server_factory = qi::detail::ssl_server_factory(loop, std::move(server_factory), server_context());
  (void)co_await loop.create_connection(std::move(tls_server_factory), pair.first.release());
  auto factory = recorder(std::move(log));
  auto plain = co_await loop.create_connection(std::move(factory), pair.second.release());
  o.server_hostname = "localhost";
  co_return co_await loop.start_tls(plain.first, plain.second, trusting_client(), o);
}

// What() of the qi::ValueError a connection to 127.0.0.1:1 with options o
// throws ("" when none).
qi::Coro<std::string> refusal_of(std::shared_ptr<Log> log, qi::ConnectOptions o) {
  try {
    auto factory = recorder(std::move(log));
    (void)co_await qi::get_running_loop().create_connection(std::move(factory), "127.0.0.1", 1, std::move(o));
  } catch (const qi::ValueError& e) {
    co_return std::string(e.what());
  }
  co_return std::string();
}

}  // namespace

// --- Client side ------------------------------------------------------------------------

QILOOP_TEST_MODES(Ssl, ClientTalksToOpensslSServer) {
  Child server({"openssl", "s_server", "-accept", "0", "-cert", certs().server, "-key", certs().server_key, "-www",
                "-naccept", "1"});
  uint16_t port = server.port();
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  auto factory = recorder(log);
  auto [t, p] = co_await loop.create_connection(std::move(factory), "127.0.0.1", port, tls_to_localhost());
  // connection_made came after the handshake, before create_connection returned.
  EXPECT_EQ(log->made, 1);
  EXPECT_EQ(p->transport, t);
  auto* tls = dynamic_cast<qi::SslTransport*>(t);
  QILOOP_CO_ASSERT(ASSERT_NE(tls, nullptr));
  EXPECT_EQ(tls->version(), "TLSv1.3");
  EXPECT_FALSE(tls->cipher().empty());
  EXPECT_NE(tls->peer_certificate_subject().find("CN=localhost"), std::string::npos) << tls->peer_certificate_subject();
  EXPECT_FALSE(tls->peer_certificate().isEmpty());
  EXPECT_EQ(tls->server_hostname(), "localhost");
  EXPECT_EQ(tls->peername().port(), port);
  EXPECT_GE(tls->fileno(), 0);
  EXPECT_FALSE(t->can_write_eof());
  t->write("GET / HTTP/1.0\r\n\r\n");
  co_await log->until([&] { return log->lost > 0; });
  EXPECT_TRUE(log->data.startsWith("HTTP/1.0 200 ok")) << log->data.left(200).toStdString();
  EXPECT_EQ(what_of(log->error), "");
}

QILOOP_TEST_MODES(Ssl, ClientEchoesWithPythonServerAndNegotiatesAlpn) {
  Child server(python_server("h2,http/1.1"));
  uint16_t port = server.port();
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto ctx = trusting_client();
  ctx->set_alpn_protocols({"x-unknown", "http/1.1"});
  auto log = std::make_shared<Log>();
  auto factory = recorder(log);
  // server_hostname defaults to host.
  qi::ConnectOptions o;
  o.ssl = ctx;
  auto [t, p] = co_await loop.create_connection(std::move(factory), "localhost", port, o);
  auto& tls = dynamic_cast<qi::SslTransport&>(*t);
  EXPECT_EQ(tls.selected_alpn_protocol(), std::optional<std::string>("http/1.1"));
  EXPECT_EQ(tls.server_hostname(), "localhost");
  t->writelines({"hello ", "over ", "TLS"});
  co_await log->until([&] { return log->data.size() >= 14; });
  EXPECT_EQ(log->data, "hello over TLS");
  t->close();
  EXPECT_TRUE(t->is_closing());
  t->write("dropped");  // after close(): dropped, as on every transport
  co_await log->until([&] { return log->lost > 0; });
  EXPECT_EQ(what_of(log->error), "");
  EXPECT_EQ(log->order.front(), "made");
}

QILOOP_TEST_MODES(Ssl, WriteEofThrowsOnATlsTransport) {
  Child server(python_server());
  auto log = std::make_shared<Log>();
  qi::Transport* t = co_await tls_client(server.port(), log);
  EXPECT_THROW(t->write_eof(), qi::RuntimeError);
  t->abort();
  co_await log->until([&] { return log->lost > 0; });
  EXPECT_EQ(what_of(log->error), "");
}

// --- Verification -----------------------------------------------------------------------

QILOOP_TEST_MODES(Ssl, ASelfSignedCertificateFailsVerification) {
  Child server({"openssl", "s_server", "-accept", "0", "-cert", certs().self, "-key", certs().self_key, "-naccept",
                "1"});
  uint16_t port = server.port();
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  std::string what;
  long code = 0;
  try {
    auto factory = recorder(log);
    (void)co_await loop.create_connection(std::move(factory), "127.0.0.1", port, tls_to_localhost());
  } catch (const qi::SSLCertVerificationError& e) {
    what = e.what();
    code = e.verify_code();
  }
  EXPECT_NE(what.find("certificate verify failed: self-signed certificate"), std::string::npos) << what;
  EXPECT_EQ(code, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT);
  EXPECT_EQ(log->made, 0);  // the app protocol never saw the connection
}

QILOOP_TEST_MODES(Ssl, AWrongHostNameFailsVerification) {
  Child server({"openssl", "s_server", "-accept", "0", "-cert", certs().server, "-key", certs().server_key,
                "-naccept", "1"});
  uint16_t port = server.port();
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  qi::ConnectOptions o = tls_to_localhost();
  o.server_hostname = "wrong.example";
  std::string what;
  try {
    auto factory = recorder(log);
    (void)co_await loop.create_connection(std::move(factory), "127.0.0.1", port, o);
  } catch (const qi::SSLError& e) {  // an SSLCertVerificationError, caught as its base
    what = e.what();
  }
  EXPECT_NE(what.find("hostname mismatch, certificate is not valid for 'wrong.example'"), std::string::npos) << what;
  EXPECT_EQ(log->made, 0);
}

QILOOP_TEST_MODES(Ssl, VerificationOffAcceptsASelfSignedCertificate) {
  Child server(python_server());  // CA-signed, but the client trusts nothing
  uint16_t port = server.port();
  auto& loop = qi::get_running_loop();
  auto ctx = qi::SslContext::client();
  EXPECT_THROW(ctx->set_verify_mode(qi::VerifyMode::kNone), qi::ValueError);  // check_hostname first
  ctx->set_check_hostname(false);
  ctx->set_verify_mode(qi::VerifyMode::kNone);
  auto log = std::make_shared<Log>();
  auto factory = recorder(log);
  qi::ConnectOptions o;
  o.ssl = ctx;
  auto [t, p] = co_await loop.create_connection(std::move(factory), "127.0.0.1", port, o);
  t->write("x");
  co_await log->until([&] { return !log->data.isEmpty(); });
  t->close();
  co_await log->until([&] { return log->lost > 0; });
  EXPECT_EQ(log->data, "x");
}

// --- Timeouts and cancellation ----------------------------------------------------------

// A peer that accepts (the kernel does) and never speaks: the handshake
// times out after asyncio's 60 s, on the loop's (virtual) clock.
QILOOP_TEST_MODES_VT(Ssl, AHandshakeTimesOutAgainstASilentPeer) {
  Fd lsn = listener(qi::SocketAddress::ip("127.0.0.1", 0));
  uint16_t port = sockname(lsn.get()).port();
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  auto start = loop.time();
  std::string what;
  try {
    auto factory = recorder(log);
    (void)co_await loop.create_connection(std::move(factory), "127.0.0.1", port, tls_to_localhost());
  } catch (const qi::ConnectionAbortedError& e) {
    what = e.what();
  }
  EXPECT_NE(what.find("SSL handshake is taking longer than 60 seconds"), std::string::npos) << what;
  EXPECT_GE(loop.time() - start, 60s);
  EXPECT_EQ(log->made, 0);
}

QILOOP_TEST_MODES(Ssl, CancellingCreateConnectionDuringTheHandshakeClosesTheSocket) {
  Fd lsn = listener(qi::SocketAddress::ip("127.0.0.1", 0));
  uint16_t port = sockname(lsn.get()).port();
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  auto factory = recorder(log);
  bool timed_out = false;
  try {
    (void)co_await qi::wait_for(loop.create_connection(std::move(factory), "127.0.0.1", port, tls_to_localhost()),
                                100ms);
  } catch (const qi::TimeoutError&) {
    timed_out = true;
  }
  EXPECT_TRUE(timed_out);
  co_await qi::sleep(10ms);  // the aborted socket transport goes
  EXPECT_EQ(log->made, 0);
}

// The peer never reads again after the handshake (so never answers
// close_notify): connection_lost receives qi::TimeoutError.
QILOOP_TEST_MODES(Ssl, CloseWaitsForThePeersCloseNotifyAtMostTheShutdownTimeout) {
  ThreadServer server([](SSL*, int) { std::this_thread::sleep_for(1s); });
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  auto factory = recorder(log);
  qi::ConnectOptions o = tls_to_localhost();
  o.ssl_shutdown_timeout = 200ms;
  auto [t, p] = co_await loop.create_connection(std::move(factory), "127.0.0.1", server.port(), o);
  auto start = loop.time();
  t->close();
  co_await log->until([&] { return log->lost > 0; });
  EXPECT_GE(loop.time() - start, 200ms);
  EXPECT_TRUE(holds<qi::TimeoutError>(log->error)) << what_of(log->error);
  EXPECT_NE(what_of(log->error).find("SSL shutdown timed out"), std::string::npos);
}

// --- Closing ----------------------------------------------------------------------------

// close() sends close_notify: the peer's SSL_read ends with
// SSL_ERROR_ZERO_RETURN (a clean TLS close), not an unexpected EOF.
QILOOP_TEST_MODES(Ssl, CloseSendsCloseNotify) {
  std::string seen;
  int end = 0;
  ThreadServer server([&seen, &end](SSL* ssl, int) {
    char buf[4096];
    int n;
    while ((n = SSL_read(ssl, buf, sizeof buf)) > 0) seen.append(buf, static_cast<std::size_t>(n));
    end = SSL_get_error(ssl, n);
    if (end == SSL_ERROR_ZERO_RETURN) SSL_shutdown(ssl);  // answers with its own
  });
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  auto factory = recorder(log);
  auto [t, p] = co_await loop.create_connection(std::move(factory), "127.0.0.1", server.port(), tls_to_localhost());
  t->write("last words");
  t->close();
  co_await log->until([&] { return log->lost > 0; });
  server.join();
  EXPECT_EQ(seen, "last words");
  EXPECT_EQ(end, SSL_ERROR_ZERO_RETURN);
  EXPECT_EQ(what_of(log->error), "");
  EXPECT_EQ(log->eofs, 0);  // the app closed: it is told no more
}

// The peer's close_notify: eof_received, then the shutdown and
// connection_lost(nullptr).
QILOOP_TEST_MODES(Ssl, ThePeersCloseNotifyIsEofReceived) {
  ThreadServer server([](SSL* ssl, int) {
    SSL_write(ssl, "so long", 7);
    SSL_shutdown(ssl);
    char buf[16];
    (void)SSL_read(ssl, buf, sizeof buf);  // qiloop's close_notify
  });
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  auto factory = recorder(log);
  (void)co_await loop.create_connection(std::move(factory), "127.0.0.1", server.port(), tls_to_localhost());
  co_await log->until([&] { return log->lost > 0; });
  server.join();
  EXPECT_EQ(log->data, "so long");
  EXPECT_EQ(log->order, (std::vector<std::string>{"made", "data", "eof", "lost"}));
  EXPECT_EQ(what_of(log->error), "");
}

// A peer that drops the connection without close_notify: asyncio 3.13's
// rule — the data, eof_received, connection_lost(nullptr).
QILOOP_TEST_MODES(Ssl, APeerClosingWithoutCloseNotifyEndsTheConnection) {
  Child server(python_server(",", "abort"));
  uint16_t port = server.port();
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  auto factory = recorder(log);
  (void)co_await loop.create_connection(std::move(factory), "127.0.0.1", port, tls_to_localhost());
  co_await log->until([&] { return log->lost > 0; });
  EXPECT_EQ(log->data, "bye");
  EXPECT_EQ(log->order, (std::vector<std::string>{"made", "data", "eof", "lost"}));
  EXPECT_EQ(what_of(log->error), "");
}

// --- Flow control -----------------------------------------------------------------------

// 16 MiB out and its echo back at once: the app is paused while the TLS
// write buffer is over its high-water mark (512 KiB), the buffer stays
// bounded, and a paused reader receives nothing until it resumes.
QILOOP_TEST_MODES(Ssl, SixteenMebibytesBothWaysWithFlowControl) {
  Child server(python_server());
  auto log = std::make_shared<Log>();
  qi::Transport* t = co_await tls_client(server.port(), log);
  EXPECT_EQ(t->get_write_buffer_limits(), (std::pair<std::size_t, std::size_t>(128 * 1024, 512 * 1024)));
  constexpr std::size_t kTotal = 16 << 20, kChunk = 64 << 10;
  std::size_t sent = 0, max_buffered = 0;
  bool checked_pause = false;
  while (sent < kTotal) {
    if (log->pauses > log->resumes) {
      co_await log->until([&] { return log->pauses == log->resumes; });
      EXPECT_LE(t->get_write_buffer_size(), 128u * 1024);  // resumed at the low-water mark
    }
    t->write(pattern_bytes(kChunk, sent));
    sent += kChunk;
    max_buffered = std::max(max_buffered, t->get_write_buffer_size());
    if (!checked_pause && sent >= kTotal / 2 && log->data.size() > 0) {
      checked_pause = true;
      t->pause_reading();
      EXPECT_FALSE(t->is_reading());
      auto before = log->data.size();
      co_await qi::sleep(50ms);
      EXPECT_EQ(log->data.size(), before) << "data arrived while reading was paused";
      t->resume_reading();
    }
  }
  EXPECT_GE(log->pauses, 1);
  EXPECT_LE(max_buffered, 512u * 1024 + kChunk);
  co_await log->until([&] { return static_cast<std::size_t>(log->data.size()) >= kTotal; });
  EXPECT_TRUE(checked_pause);
  EXPECT_EQ(log->data.size(), static_cast<qsizetype>(kTotal));
  EXPECT_TRUE(log->data == pattern_bytes(kTotal)) << "the echo differs";
  t->close();
  co_await log->until([&] { return log->lost > 0; });
  EXPECT_EQ(what_of(log->error), "");
}

// --- Server side ------------------------------------------------------------------------

// An echo that closes after the first data; records the ALPN choice.
auto echo_once(std::shared_ptr<Log> log, std::shared_ptr<std::string> alpn) {
  return recorder(std::move(log), [alpn](Recorder& r) {
    r.on_data = [alpn](Recorder& self, QByteArrayView d) {
      if (auto* tls = dynamic_cast<qi::SslTransport*>(self.transport))
        *alpn = tls->selected_alpn_protocol().value_or("none");
      self.transport->write(d);
      self.transport->close();
    };
  });
}

QILOOP_TEST_MODES(Ssl, ServerSideAnswersOpensslSClient) {
  Fd lsn = async_listener();
  uint16_t port = sockname(lsn.get()).port();
  Child client({"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(port), "-CAfile", certs().ca,
                "-servername", "localhost", "-verify_return_error", "-quiet", "-alpn", "h2,http/1.1"});
  client.write_stdin("ping\n");
  auto& loop = qi::get_running_loop();
  auto [fd, peer] = co_await loop.sock_accept(lsn.get());
  auto log = std::make_shared<Log>();
  auto alpn = std::make_shared<std::string>();
  auto ctx = server_context();
  ctx->set_alpn_protocols({"http/1.1"});
  auto factory = qi::detail::ssl_server_factory(loop, echo_once(log, alpn), ctx);
  auto [st, sp] = co_await loop.create_connection(std::move(factory), fd);
  (void)st;
  (void)sp;
  co_await log->until([&] { return log->lost > 0; });
  EXPECT_EQ(log->data, "ping\n");
  EXPECT_EQ(*alpn, "http/1.1");
  EXPECT_NE(client.read_all().find("ping"), std::string::npos);
  EXPECT_EQ(client.wait(), 0);
  EXPECT_EQ(what_of(log->error), "");
}

QILOOP_TEST_MODES(Ssl, ServerSideAnswersAPythonClient) {
  PythonTlsClient client("client", "hello python");
  auto& loop = qi::get_running_loop();
  int fd = co_await client.accepted();
  auto log = std::make_shared<Log>();
  auto factory = qi::detail::ssl_server_factory(loop, echo_once(log, std::make_shared<std::string>()),
                                                server_context());
  (void)co_await loop.create_connection(std::move(factory), fd);
  co_await log->until([&] { return log->lost > 0; });
  EXPECT_EQ(log->data, "hello python");
  EXPECT_EQ(client.child.read_all(), "hello python");
  EXPECT_EQ(client.child.wait(), 0);
}

// loop.start_tls, server side: a plain connection upgraded after a
// STARTTLS exchange with a Python client (StreamWriter.start_tls).
QILOOP_TEST_MODES(Ssl, StartTlsUpgradesAPlainServerConnection) {
  PythonTlsClient client("starttls-client", "secret");
  auto& loop = qi::get_running_loop();
  int fd = co_await client.accepted();
  auto log = std::make_shared<Log>();
  auto factory = recorder(log);
  auto [t, p] = co_await loop.create_connection(std::move(factory), fd);
  co_await log->until([&] { return log->data == "STARTTLS\n"; });
  log->data.clear();
  t->write("OK\n");
  qi::TlsOptions o;
  o.server_side = true;
  qi::Transport* tls = co_await loop.start_tls(t, p, server_context(), o);
  EXPECT_EQ(&tls->get_protocol(), p);
  EXPECT_EQ(log->made, 1);  // not made again
  co_await log->until([&] { return log->data == "secret"; });
  tls->write("terces");
  tls->close();
  co_await log->until([&] { return log->lost > 0; });
  EXPECT_EQ(client.child.read_all(), "terces");
  EXPECT_EQ(client.child.wait(), 0);
  EXPECT_EQ(what_of(log->error), "");
}

// loop.start_tls, client side, against qiloop's own server side over a
// socket pair; the handshake's failure reaches both ends.
QILOOP_TEST_MODES(Ssl, StartTlsClientMeetsTheServerFactoryOverASocketPair) {
  auto server_log = std::make_shared<Log>();
  auto log = std::make_shared<Log>();
  qi::Transport* tls = co_await start_tls_over_a_pair(echo_once(server_log, std::make_shared<std::string>()), log);
  tls->write("over a pair");
  co_await log->until([&] { return log->lost > 0; });
  EXPECT_EQ(log->data, "over a pair");
  co_await server_log->until([&] { return server_log->lost > 0; });
  EXPECT_EQ(server_log->data, "over a pair");
}

// --- STARTTLS on streams (review i10 A1) -------------------------------------------------

namespace {

// Copies one direction of a socket pair to another, recording the bytes
// (the wire between a client and a server); at EOF shuts `to` down.
qi::Coro<void> tap(int from, int to, std::shared_ptr<QByteArray> wire) {
  auto& loop = qi::get_running_loop();
  for (;;) {
    QByteArray data = co_await loop.sock_recv(from, 1 << 16);
    if (data.isEmpty()) break;
    wire->append(data);
    co_await loop.sock_sendall(to, data);
  }
  ::shutdown(to, SHUT_WR);
}

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

// How one end upgrades its stream: StreamWriter::start_tls, or
// loop.start_tls on the stream's transport.
enum class Upgrade { kWriter, kLoop };

qi::Coro<void> upgrade(Upgrade how, qi::StreamWriter& w, std::shared_ptr<qi::SslContext> ctx, qi::TlsOptions o) {
  if (how == Upgrade::kWriter) co_return co_await w.start_tls(std::move(ctx), std::move(o));
  qi::Transport& t = w.transport();
  (void)co_await qi::get_running_loop().start_tls(&t, &t.get_protocol(), std::move(ctx), std::move(o));
}

qi::Coro<void> starttls_server(Upgrade how, qi::StreamReader r, qi::StreamWriter w) {
  EXPECT_EQ(co_await r.readline(), "STARTTLS\n");
  w.write("OK\n");
  qi::TlsOptions o;
  o.server_side = true;
  co_await upgrade(how, w, server_context(), o);
  EXPECT_NE(dynamic_cast<qi::SslTransport*>(&w.transport()), nullptr);
  EXPECT_EQ(co_await r.readline(), "secret\n");
  w.write("terces\n");
  co_await w.drain();
  EXPECT_EQ(co_await r.read(), "");
  w.close();
  co_await w.wait_closed();
}

// A qiloop stream client and server over two socket pairs joined by a tap:
// a plain STARTTLS exchange, both ends upgrade, then a line each way that
// must not cross the wire in clear.
qi::Coro<void> starttls_through_a_tap(Upgrade how) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto client_pair = unix_pair();
  auto server_pair = unix_pair();
  set_nonblocking(client_pair.second.get());
  set_nonblocking(server_pair.second.get());
  auto up = std::make_shared<QByteArray>(), down = std::make_shared<QByteArray>();
  auto tap_up = loop.create_task(tap(client_pair.second.get(), server_pair.second.get(), up));
  auto tap_down = loop.create_task(tap(server_pair.second.get(), client_pair.second.get(), down));
  auto server_ends = co_await qi::open_connection(server_pair.first.release());
  auto server = loop.create_task(starttls_server(how, std::move(server_ends.first), std::move(server_ends.second)));
  auto [r, w] = co_await qi::open_connection(client_pair.first.release());
  w.write("STARTTLS\n");
  EXPECT_EQ(co_await r.readline(), "OK\n");
  const qsizetype plain_up = up->size(), plain_down = down->size();
  qi::TlsOptions o;
  o.server_hostname = "localhost";
  co_await upgrade(how, w, trusting_client(), o);
  auto* tls = dynamic_cast<qi::SslTransport*>(&w.transport());
  EXPECT_NE(tls, nullptr) << "the writer's transport is the TLS one";
  w.write("secret\n");
  EXPECT_EQ(co_await r.readline(), "terces\n");
  w.close();
  co_await w.wait_closed();
  co_await server;
  co_await tap_up;
  co_await tap_down;
  EXPECT_EQ(up->left(plain_up), "STARTTLS\n");
  EXPECT_EQ(down->left(plain_down), "OK\n");
  EXPECT_FALSE(up->mid(plain_up).contains("secret")) << "a write after start_tls went out in clear";
  EXPECT_FALSE(down->mid(plain_down).contains("terces")) << "a write after start_tls went out in clear";
  EXPECT_GT(up->size() - plain_up, 100) << "a handshake and records crossed the wire";
}

}  // namespace

QILOOP_TEST_MODES(SslStreams, StartTlsEncryptsLaterWrites) { co_await starttls_through_a_tap(Upgrade::kWriter); }

// loop.start_tls on a stream's transport retargets the stream's reader and
// writer, as StreamWriter::start_tls does.
QILOOP_TEST_MODES(Ssl, StartTlsOnAStreamTransportIsRefusedOrRetargeted) {
  co_await starttls_through_a_tap(Upgrade::kLoop);
}

// StreamWriter::start_tls, server side, with Python's asyncio
// StreamWriter.start_tls as the client.
QILOOP_TEST_MODES(SslStreams, StartTlsServesAPythonStarttlsClient) {
  PythonTlsClient client("starttls-client", "secret");
  int fd = co_await client.accepted();
  auto [r, w] = co_await qi::open_connection(fd);
  EXPECT_EQ(co_await r.readline(), "STARTTLS\n");
  w.write("OK\n");
  qi::TlsOptions o;
  o.server_side = true;
  co_await w.start_tls(server_context(), o);
  EXPECT_EQ(co_await r.readexactly(6), "secret");
  w.write("terces");
  w.close();
  co_await w.wait_closed();
  EXPECT_EQ(client.child.read_all(), "terces");
  EXPECT_EQ(client.child.wait(), 0);
}

// --- TLS close with reading paused (review i10 A2, A3) ------------------------------------

namespace {

struct HalfCloseState {
  qi::Event got_line, go, done;
  std::string outcome = "not run";
};

qi::Coro<void> read_a_line_then_close_on_go(std::shared_ptr<HalfCloseState> st, qi::StreamReader r,
                                            qi::StreamWriter w) {
  EXPECT_EQ(co_await r.readline(), "line\n");
  st->got_line.set();
  co_await st->go.wait();
  w.close();
  EXPECT_TRUE(w.is_closing());
  try {
    auto closed = w.wait_closed();
    co_await qi::wait_for(std::move(closed), 5s);
    st->outcome = "";
  } catch (const std::exception& e) {
    st->outcome = e.what();
  }
  st->done.set();
}

// A protocol that writes `size` bytes once connected.
struct Flooder : Recorder {
  Flooder(std::shared_ptr<Log> l, std::size_t n) : Recorder(std::move(l)), size(n) {}
  std::size_t size;
  void connection_made(qi::Transport& t) override {
    Recorder::connection_made(t);
    t.write(QByteArray(static_cast<qsizetype>(size), 'x'));
  }
};

}  // namespace

// The peer's EOF (no close_notify) arrives while the stream has paused
// reading (200 KiB unread): close() still closes, at once.
QILOOP_TEST_MODES(Ssl, CloseAfterPeerEofWhileReadingIsPausedCloses) {
  FdLeakCheck leaks;
  auto st = std::make_shared<HalfCloseState>();
  qi::ServerOptions options;
  options.ssl = server_context();
  auto cb = [st](qi::StreamReader r, qi::StreamWriter w) {
    return read_a_line_then_close_on_go(st, std::move(r), std::move(w));
  };
  qi::Server server = co_await qi::start_server(std::move(cb), "127.0.0.1", 0, std::move(options));
  uint16_t port = server.sockets().at(0).port();
  Child client({"python3", peer_script(), "halfclose", std::to_string(port), certs().ca, "localhost", "204800"});
  co_await st->got_line.wait();
  EXPECT_NE(client.read_until("sent\n").find("sent"), std::string::npos);
  co_await qi::sleep(300ms);  // the EOF reaches the server
  st->go.set();
  co_await st->done.wait();
  EXPECT_EQ(st->outcome, "") << "close() after the peer's EOF must close";
  server.close();
  auto waited = server.wait_closed();
  co_await qi::wait_for(std::move(waited), 5s);
  EXPECT_EQ(client.wait(), 0);
}

// The peer sent 1 MiB the app never read (the incoming BIO full, the
// socket's reading paused): close() ends cleanly, without waiting for the
// shutdown timeout.
QILOOP_TEST_MODES(Ssl, CloseWithPausedReadingAndAFullBioEndsCleanly) {
  FdLeakCheck leaks;
  auto server_log = std::make_shared<Log>();
  QiEventLoop::ProtocolFactory flooder = [server_log]() -> std::unique_ptr<qi::BaseProtocol> {
    return std::make_unique<Flooder>(server_log, 1 << 20);
  };
  auto log = std::make_shared<Log>();
  qi::TlsOptions o;
  o.ssl_shutdown_timeout = 4s;
  qi::Transport* tls = co_await start_tls_over_a_pair(std::move(flooder), log, o);
  tls->pause_reading();
  co_await qi::sleep(300ms);  // the server's bytes fill the BIO, the socket's reading stops
  auto t0 = std::chrono::steady_clock::now();
  tls->close();
  co_await log->until([&] { return log->lost > 0; });
  EXPECT_LT(std::chrono::steady_clock::now() - t0, 2s);
  EXPECT_EQ(what_of(log->error), "");
  co_await server_log->until([&] { return server_log->lost > 0; });
}

// --- Bad input --------------------------------------------------------------------------

QILOOP_TEST_MODES(Ssl, OptionsAreChecked) {
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  qi::ConnectOptions only_name;
  only_name.server_hostname = "localhost";
  std::string what = co_await refusal_of(log, only_name);
  EXPECT_NE(what.find("server_hostname is only meaningful with ssl"), std::string::npos) << what;

  qi::ConnectOptions negative = tls_to_localhost();
  negative.ssl_handshake_timeout = -1s;
  what = co_await refusal_of(log, negative);
  EXPECT_NE(what.find("ssl_handshake_timeout must be positive"), std::string::npos) << what;

  qi::ConnectOptions no_name = tls_to_localhost();
  no_name.server_hostname = "";
  what = co_await refusal_of(log, no_name);
  EXPECT_NE(what.find("no server_hostname"), std::string::npos) << what;

  EXPECT_THROW(qi::detail::ssl_server_factory(loop, recorder(log), trusting_client()), qi::ValueError);
  EXPECT_EQ(log->made, 0);

  auto [x, y] = unix_pair();
  auto factory = recorder(log);
  auto [t, p] = co_await loop.create_connection(std::move(factory), x.release());
  bool refused = false;
  try {
    Recorder other(log);
    (void)co_await loop.start_tls(t, &other, trusting_client());
  } catch (const qi::ValueError&) {
    refused = true;
  }
  EXPECT_TRUE(refused);
  t->close();
  co_await log->until([&] { return log->lost > 0; });
}

TEST(SslContext, BadFilesAndSettingsAreClearErrors) {
  EXPECT_THROW(qi::SslContext::server("/nonexistent/cert.pem"), qi::FileNotFoundError);
  // The self-signed certificate with the CA-signed certificate's key.
  try {
    qi::SslContext::server(certs().self, certs().server_key);
    ADD_FAILURE() << "a mismatched key was accepted";
  } catch (const qi::SSLError& e) {
    EXPECT_NE(std::string(e.what()).find("mismatch"), std::string::npos) << e.what();
  }
  auto ctx = qi::SslContext::client();
  EXPECT_TRUE(ctx->check_hostname());
  EXPECT_EQ(ctx->verify_mode(), qi::VerifyMode::kRequired);
  EXPECT_THROW(ctx->load_verify_locations(), qi::ValueError);
  EXPECT_THROW(ctx->load_verify_locations({}, {}, "not a certificate"), qi::SSLError);
  EXPECT_THROW(ctx->set_alpn_protocols({""}), qi::ValueError);
  std::ifstream ca(certs().ca);
  std::string pem((std::istreambuf_iterator<char>(ca)), std::istreambuf_iterator<char>());
  EXPECT_NO_THROW(ctx->load_verify_locations({}, {}, QByteArray::fromStdString(pem)));
  EXPECT_NO_THROW(ctx->set_minimum_version(qi::TlsVersion::kTls1_3));
  EXPECT_THROW(ctx->set_ciphers("NO-SUCH-CIPHER"), qi::SSLError);
}

namespace {

// --- Servers with ssl= (create_server / start_server) --------------------------------------

// Reads a line, answers it, closes.
qi::Coro<void> answer_one_line(qi::StreamReader r, qi::StreamWriter w) {
  QByteArray line = co_await r.readline();
  w.write("re: " + line);
  co_await w.drain();
  w.close();
  co_await w.wait_closed();
}

QILOOP_TEST_MODES(SslServer, StartServerWithSslServesAQiloopTlsClient) {
  FdLeakCheck leaks;
  qi::ServerOptions options;
  options.ssl = server_context();
  auto cb = answer_one_line;
  qi::Server server = co_await qi::start_server(std::move(cb), "127.0.0.1", 0, std::move(options));
  auto conn = co_await qi::open_connection("127.0.0.1", server.sockets().at(0).port(), tls_to_localhost());
  auto* tls = dynamic_cast<qi::SslTransport*>(&conn.second.transport());
  QILOOP_CO_ASSERT(ASSERT_NE(tls, nullptr));
  EXPECT_EQ(tls->server_hostname(), "localhost");
  conn.second.write("hello over tls\n");
  EXPECT_EQ(co_await conn.first.readline(), "re: hello over tls\n");
  EXPECT_EQ(co_await conn.first.read(), "") << "the server closed after its answer";
  conn.second.close();
  co_await conn.second.wait_closed();
  server.close();
  co_await server.wait_closed();
}

qi::Coro<void> until_set(std::shared_ptr<qi::Event> event) { co_await event->wait(); }

QILOOP_TEST_MODES(SslServer, CreateServerWithSslAnswersOpensslSClient) {
  qi::ServerOptions options;
  options.ssl = server_context();
  auto answered = std::make_shared<qi::Event>();
  auto cb = [answered](qi::StreamReader r, qi::StreamWriter w) -> qi::Coro<void> {
    co_await answer_one_line(std::move(r), std::move(w));
    answered->set();
  };
  qi::Server server = co_await qi::start_server(std::move(cb), "127.0.0.1", 0, std::move(options));
  uint16_t port = server.sockets().at(0).port();
  Child client({"openssl", "s_client", "-connect", "127.0.0.1:" + std::to_string(port), "-CAfile", certs().ca,
                "-servername", "localhost", "-verify_return_error", "-quiet"});
  client.write_stdin("ping\n");
  // The client is a process that may take a while to start: the server
  // closes once it has answered (close() stops listening; wait_closed()
  // returns once the answered connection is gone).
  auto answer = until_set(answered);
  co_await qi::wait_for(std::move(answer), 20s);
  server.close();
  auto waited = server.wait_closed();
  co_await qi::wait_for(std::move(waited), 20s);
  EXPECT_NE(client.read_all().find("re: ping"), std::string::npos);
  EXPECT_EQ(client.wait(), 0);
}

// A client that sends and closes (close_notify): the stream's
// eof_received must not make the TLS transport warn (review i10 A5).
qi::Coro<void> read_to_eof_then_close(std::shared_ptr<qi::Event> done, qi::StreamReader r, qi::StreamWriter w) {
  EXPECT_EQ(co_await r.read(), "hello");
  w.close();
  co_await w.wait_closed();
  done->set();
}

std::vector<std::string>& eof_warnings() {
  static std::vector<std::string> w;
  return w;
}

QILOOP_TEST_MODES(SslServer, APeerClosingATlsStreamLogsNoWarning) {
  eof_warnings().clear();
  QtMessageHandler previous = qInstallMessageHandler([](QtMsgType type, const QMessageLogContext&, const QString& m) {
    if (type == QtWarningMsg && m.contains("eof_received")) eof_warnings().push_back(m.toStdString());
  });
  auto done = std::make_shared<qi::Event>();
  qi::ServerOptions options;
  options.ssl = server_context();
  auto cb = [done](qi::StreamReader r, qi::StreamWriter w) { return read_to_eof_then_close(done, std::move(r), std::move(w)); };
  qi::Server server = co_await qi::start_server(std::move(cb), "127.0.0.1", 0, std::move(options));
  auto conn = co_await qi::open_connection("127.0.0.1", server.sockets().at(0).port(), tls_to_localhost());
  conn.second.write("hello");
  conn.second.close();
  co_await conn.second.wait_closed();
  co_await done->wait();
  server.close();
  co_await server.wait_closed();
  qInstallMessageHandler(previous);
  EXPECT_TRUE(eof_warnings().empty()) << eof_warnings().front();
}

QILOOP_TEST_MODES(SslServer, TlsTimeoutsWithoutSslAreRefused) {
  qi::ServerOptions options;
  options.ssl_handshake_timeout = 5s;
  auto cb = answer_one_line;
  std::string error;
  try {
    (void)co_await qi::start_server(std::move(cb), "127.0.0.1", 0, std::move(options));
  } catch (const qi::ValueError& e) {
    error = e.what();
  }
  EXPECT_NE(error.find("only meaningful with ssl"), std::string::npos) << error;
}

}  // namespace
