// bench_net.cpp — networking (issue 10): TCP over loopback, qiloop's
// transports and protocols, its streams and its TLS beside Asio (C++20
// coroutines; asio::ssl::stream for TLS), libuv, Qt's QTcpSocket and QCoro
// in the same binary, and beside Python's asyncio and uvloop running the
// same exchanges in the same run (benchmarks/peers/net.py):
//
//   1. 64 KiB echo, stop and wait   the client sends 64 KiB, reads the 64 KiB
//      the server echoes, and repeats                       MiB/s (one way)
//   2. 64-byte ping-pong            the same with 64 bytes   round trips/s
//   3. 64 KiB echo over TLS 1.3     scenario 1 through TLS   MiB/s
//
// each through protocols (the plain rows) and through streams (the
// ", streams" rows), and, in memory (no socket, no I/O: what a stream's
// reader does with bytes once they have arrived):
//
//   4. readuntil CRLF, burst of CR  a reader waiting for "\r\n" is fed N
//      bytes of '\r' then "\n" (N = 1 MiB; 64 KiB with --smoke) and
//      readuntil("\r\n") returns the N + 1 bytes  MiB/s (bytes fed / time)
//   5. readuntil CRLF, 80-byte lines  blocks of 1,000 lines of 80 bytes
//      ("NNNNNN:" and letters, then "\r\n"), each block fed at once (as a
//      socket read of 78 KiB would bring it), then read back line by line
//      with readuntil("\r\n")                                lines/s
//
// Scenario 4 is the worst case of a search that calls memcmp at each
// occurrence of the separator's first byte (std::string_view::find, which
// qiloop's readuntil used until 2026-12-01): a peer sending "\r\r\r…" to a
// "\r\n" reader. Scenario 5 is the usual case beside it, where memchr's
// vector scan to the one '\r' of a line wins (glibc's memmem alone made it
// 30% slower); qiloop now does both (docs/performance.md). Each
// contender's reader has a limit of 2 MiB (its max_size); the clock runs
// from the feed to the return of the read, so it counts copying the bytes
// into the reader's buffer (every contender copies them once) and taking
// them out. Every result is checked (size and bytes; a burst's bytes after
// the clock stops, each line's before the next read).
//
// Each contender runs its echo server and its client on ONE loop, in this
// thread, over one connection with TCP_NODELAY on both ends; the server
// writes back what each read brought (reads of up to 256 KiB: asyncio's
// max_size), the client compares every byte that comes back with what it
// sent (a non-uniform pattern) and counts them. The clock runs from the
// first send to the last byte back; making the connection (the TLS
// handshake included) and closing it are not timed.
//
// Contenders (interleaved, one run of each per benchmark iteration, so that
// every ratio compares runs made under the same machine load — see
// bench::interleaved):
//   qiloop                   qi::Protocol on both ends (data_received ->
//                            transport->write), nested mode: the server
//                            from loop.create_server("127.0.0.1", 0), the
//                            client from loop.create_connection.
//   qiloop BufferedProtocol  the same with qi::BufferedProtocol (the
//                            transport reads into the protocol's buffer).
//   qiloop streams           (the ", streams" rows, named "qiloop" there)
//                            qi::start_server, whose callback reads up to
//                            256 KiB (StreamReader::read), writes it back and
//                            drains; qi::open_connection, whose client
//                            writes, drains and readexactly()s the echo —
//                            net.py's streams_program.
//   Asio                     standalone Asio: an awaitable echo loop
//                            (async_read_some, async_write) co_spawned
//                            beside the client's (async_write, async_read of
//                            the whole message), use_awaitable throughout;
//                            over TLS the same on asio::ssl::stream.
//   libuv                    uv_tcp_t handles: uv_read_start into one buffer
//                            per side; writes try uv_try_write first and
//                            hand only what it did not take to uv_write
//                            (copied: the read buffer is reused).
//   QTcpSocket               QTcpServer + QTcpSocket, LowDelayOption, slots
//                            on readyRead: the server writes back readAll();
//                            the client reads into one buffer. QEventLoop.
//   QCoro                    QCoro 0.8's network coroutines on the same Qt
//                            classes: qCoro(server).waitForNewConnection,
//                            co_await qCoro(socket).readAll() / .write().
//   asyncio, uvloop          net.py: asyncio.Protocol on both ends and
//                            streams, plain and over TLS (ssl=); run by
//                            this binary before the C++ scenarios with the
//                            same sizes, medians of 3 runs.
// The streams rows and the TLS rows hold qiloop and Asio (the goal's
// yardstick) interleaved, and Python's figures.
//
// The readuntil rows (4, 5), interleaved likewise:
//   qiloop                   qi::StreamReader(2 MiB) with no transport: a
//                            coroutine run by loop.run_until_complete
//                            (nested mode) feed_data()s the bytes and
//                            co_awaits readuntil("\r\n").
//   Asio                     co_await asio::async_read_until(stream, buf,
//                            "\r\n", use_awaitable) on the one io_context,
//                            over an in-memory AsyncReadStream whose
//                            async_read_some copies out what was fed to it
//                            and posts its completion (as a socket with
//                            the bytes already received would), into an
//                            asio::streambuf(2 MiB); the caller consume()s
//                            what each read returned. Asio's search is its
//                            own (detail::partial_search over
//                            buffers_iterator, from where the last one
//                            stopped); it reads at most 64 KiB at a time,
//                            and when the buffer already holds the
//                            delimiter it still completes through a
//                            zero-byte async_read_some, i.e. one turn of
//                            the io_context per call. asio::streambuf
//                            rather than dynamic_buffer(std::string): the
//                            latter's consume() erases the string's front,
//                            a memmove of everything buffered per line,
//                            which would measure std::string rather than
//                            Asio's search.
//   asyncio, uvloop          net.py: asyncio.StreamReader(limit=2 MiB),
//                            feed_data + await readuntil(b"\r\n"), the same
//                            sizes. No I/O is involved, so uvloop runs the
//                            very same asyncio.StreamReader (its figure is
//                            asyncio's again, give or take the noise); it
//                            is kept as the harness runs every peer program
//                            on both loops.
// Not libuv, Qt or QCoro: none has a delimiter search of its own
// (QIODevice::readLine stops at '\n' only).
//
// TLS: TLS 1.3 at least on every side, one OpenSSL (the system's libssl,
// which qiloop, Asio and Python's ssl module all use), a self-signed P-256
// certificate for "localhost" made in-process at start-up into a temporary
// directory (removed at exit); clients verify it (qiloop's default, Asio's
// host_name_verification, Python's default context) and check that the
// connection is TLS 1.3.
//
// Goals (checked in the summary): qiloop at least Asio's figures in every
// scenario (qiloop / Asio >= 1), protocols and streams, plain and TLS, and
// the readuntil rows.
//
// Profiling: QILOOP_BENCH_NET_ONLY=<implementation> runs that contender
// alone ("qiloop streams" names the streams contender; no Python unless it
// names asyncio or uvloop), e.g. to count system calls per round trip:
//   QILOOP_BENCH_NET_ONLY=qiloop strace -c -f build/release/benchmarks/bench_net
//     --smoke --benchmark_filter=ping-pong        (one command line)
#include "bench_support.h"
#include "qt_run.h"

#include <qiloop/qiloop.h>
#include <qiloop/net/server.h>
#include <qiloop/net/ssl.h>
#include <qiloop/net/streams.h>
#include <qiloop/net/transport.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/post.hpp>
#include <asio/read.hpp>
#include <asio/read_until.hpp>
#include <asio/ssl.hpp>
#include <asio/streambuf.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <uv.h>

#include <QtNetwork/QHostAddress>
#include <QtNetwork/QTcpServer>
#include <QtNetwork/QTcpSocket>

#ifdef QILOOP_BENCH_QCORO
#include <QCoro/QCoroAbstractSocket>
#include <QCoro/QCoroTask>
#include <QCoro/QCoroTcpServer>
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <vector>

namespace {

using namespace bench;

namespace scenario {
constexpr const char* kEcho = "64 KiB echo, stop and wait";
constexpr const char* kEchoStreams = "64 KiB echo, streams";
constexpr const char* kPing = "64-byte ping-pong";
constexpr const char* kPingStreams = "64-byte ping-pong, streams";
constexpr const char* kTls = "64 KiB echo, TLS 1.3";
constexpr const char* kTlsStreams = "64 KiB echo, TLS 1.3, streams";
constexpr const char* kScanBurst = "readuntil CRLF, burst of CR";
constexpr const char* kScanLines = "readuntil CRLF, 80-byte lines";
}  // namespace scenario

namespace metric {
constexpr const char* kMiBps = "MiB/s";
constexpr const char* kRoundTrips = "round trips/s";
constexpr const char* kLines = "lines/s";
}  // namespace metric

constexpr const char* kQiloop = "qiloop";
constexpr const char* kQiloopBuffered = "qiloop BufferedProtocol";
constexpr const char* kQiloopStreams = "qiloop streams";  // shown as "qiloop" in the streams rows
constexpr const char* kAsio = "Asio";
constexpr const char* kLibuv = "libuv";
constexpr const char* kQt = "QTcpSocket";
constexpr const char* kQCoro = "QCoro";

constexpr std::size_t kEchoSize = 64 * 1024;
constexpr std::size_t kPingSize = 64;
// The most one read takes, every contender alike (asyncio's max_size; the
// size of qiloop's read buffer).
constexpr std::size_t kReadSize = 256 * 1024;

// The figures come as ns per exchange; shown as rates.
const Shown kShownEcho{Unit::kCount, [](double ns) { return double(kEchoSize) / (1 << 20) * 1e9 / ns; }};
const Shown kShownPing{Unit::kRate, [](double ns) { return 1e9 / ns; }};

// The readuntil rows: every reader's limit (asyncio's limit=, Asio's
// max_size), a line, and the lines fed at once.
constexpr std::size_t kScanLimit = 2 * 1024 * 1024;
constexpr std::size_t kLineSize = 80;
constexpr int64_t kBlockLines = 1'000;

// The burst row's figures come as ns per byte fed; shown as MiB/s.
const Shown kShownScan{Unit::kCount, [](double ns) { return 1e9 / ns / (1 << 20); }};

struct Sizes {
  int64_t echo, ping;
  int64_t burst;   // bytes of '\r' before the "\n"
  int64_t bursts;  // per measured run
  int64_t lines;   // per measured run
};
Sizes sizes(const Options& o) {
  return {o.pick<int64_t>(2'000, 50), o.pick<int64_t>(10'000, 1'000), o.pick<int64_t>(1 << 20, 64 << 10),
          o.pick<int64_t>(20, 3), o.pick<int64_t>(20'000, 2'000)};
}

// A contender that computed a wrong result, or could not connect, is a
// broken benchmark: stop loudly (an exception would be lost inside a
// callback of another library).
void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "bench_net: %s\n", what);
  std::abort();
}

// What every client sends: the first `size` bytes of one pattern, which
// does not repeat within 251 bytes, so that a lost, doubled or reordered
// chunk does not compare equal.
std::span<const char> message(std::size_t size) {
  static const std::vector<char> pattern = [] {
    std::vector<char> p(kEchoSize);
    for (std::size_t i = 0; i < p.size(); ++i) p[i] = static_cast<char>(i % 251);
    return p;
  }();
  return std::span<const char>(pattern).first(size);
}

// True when `data` is what the echo of message(size) holds from `offset` on.
bool echoed(std::size_t size, std::size_t offset, const char* data, std::size_t k) {
  return offset + k <= size && std::memcmp(message(size).data() + offset, data, k) == 0;
}

// The client's bookkeeping, the same for every callback-style contender:
// received(data, k) after each read checks the bytes and returns true when
// the exchange is complete (the caller then sends the next message, or
// stops when none is left).
class Exchanges {
 public:
  Exchanges(std::size_t size, int64_t n) : size_(size), left_(n) {}
  bool received(const char* data, std::size_t k) {
    check(echoed(size_, got_, data, k), "the server echoed other bytes than were sent");
    got_ += k;
    if (got_ < size_) return false;
    got_ = 0;
    --left_;
    return true;
  }
  bool finished() const { return left_ == 0; }
  std::size_t size() const { return size_; }

 private:
  std::size_t size_;
  int64_t left_;
  std::size_t got_ = 0;
};

// === TLS: the certificate =================================================================

// A self-signed certificate for "localhost" (P-256, SHA-256, valid a day,
// CA:TRUE so that it is its own trust anchor) and its key, written as PEM
// files into a temporary directory that goes at exit.
struct TlsFiles {
  std::string dir, cert, key;

  TlsFiles() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "bench_net.XXXXXX").string();
    check(::mkdtemp(tmpl.data()) != nullptr, "cannot make a temporary directory for the certificate");
    dir = tmpl;
    cert = dir + "/cert.pem";
    key = dir + "/key.pem";
    EVP_PKEY* pkey = EVP_EC_gen("P-256");
    X509* x = X509_new();
    check(pkey && x, "OpenSSL: cannot make a key");
    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), -60);
    X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
    X509_set_pubkey(x, pkey);
    X509_NAME* name = X509_get_subject_name(x);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>("localhost"), -1, -1,
                               0);
    X509_set_issuer_name(x, name);
    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, x, x, nullptr, nullptr, 0);
    for (auto [nid, value] : {std::pair{NID_basic_constraints, "critical,CA:TRUE"},
                              std::pair{NID_subject_alt_name, "DNS:localhost,IP:127.0.0.1"}}) {
      X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
      check(ext && X509_add_ext(x, ext, -1) == 1, "OpenSSL: cannot add a certificate extension");
      X509_EXTENSION_free(ext);
    }
    check(X509_sign(x, pkey, EVP_sha256()) > 0, "OpenSSL: cannot sign the certificate");
    std::FILE* c = std::fopen(cert.c_str(), "w");
    std::FILE* k = std::fopen(key.c_str(), "w");
    check(c && k && PEM_write_X509(c, x) == 1 &&
              PEM_write_PrivateKey(k, pkey, nullptr, nullptr, 0, nullptr, nullptr) == 1,
          "cannot write the certificate");
    std::fclose(c);
    std::fclose(k);
    X509_free(x);
    EVP_PKEY_free(pkey);
  }
  TlsFiles(const TlsFiles&) = delete;
  TlsFiles& operator=(const TlsFiles&) = delete;
  ~TlsFiles() {
    std::error_code ignored;
    std::filesystem::remove_all(dir, ignored);
  }
};

const TlsFiles& tls_files() {
  static const TlsFiles files;
  return files;
}

// === qiloop ==============================================================================

// The TLS contexts of qiloop's contenders; both null: plain TCP.
struct QiTls {
  std::shared_ptr<qi::SslContext> server, client;
};

const QiTls& qi_tls() {
  static const QiTls tls = [] {
    QiTls t{qi::SslContext::server(tls_files().cert, tls_files().key), qi::SslContext::client()};
    t.client->load_verify_locations(tls_files().cert);
    for (auto& c : {t.server, t.client}) c->set_minimum_version(qi::TlsVersion::kTls1_3);
    return t;
  }();
  return tls;
}

// The options of both ends: TLS when `tls` has contexts.
qi::ServerOptions server_options(const QiTls& tls) {
  qi::ServerOptions o;
  o.ssl = tls.server;
  return o;
}
qi::ConnectOptions connect_options(const QiTls& tls) {
  qi::ConnectOptions o;
  if (tls.client) {
    o.ssl = tls.client;
    o.server_hostname = "localhost";
  }
  return o;
}

void check_tls13(qi::Transport& t) {
  auto* tls = dynamic_cast<qi::SslTransport*>(&t);
  check(tls && tls->version() == "TLSv1.3", "qiloop: the connection is not TLS 1.3");
}

// What both ends of every qiloop connection keep: the transport, a future
// that connection_made completes (the server's: the run starts the clock
// only once the server has its connection, TLS handshake done) and one
// that connection_lost completes (the client's: the run waits for it).
template <class Base>
class QiEnd : public Base {
 public:
  explicit QiEnd(qi::Future<void> made) : made_(std::move(made)) {}
  qi::Transport* transport = nullptr;
  qi::Future<void> lost = qi::get_running_loop().create_future<void>();

  void connection_made(qi::Transport& t) override {
    transport = &t;
    made_.set_result();
  }
  void connection_lost(std::exception_ptr error) override {
    check(!error, "qiloop: the connection failed");
    lost.set_result();
  }

 private:
  qi::Future<void> made_;
};

// The client's side: sends the message, checks the echo, sends again.
template <class Base>
class QiClientEnd : public QiEnd<Base> {
 public:
  QiClientEnd() : QiEnd<Base>(qi::get_running_loop().create_future<void>()) {}
  qi::Future<void> done = qi::get_running_loop().create_future<void>();

  void start(std::size_t size, int64_t n) {
    exchanges_ = Exchanges(size, n);
    send();
  }

 protected:
  void received(const char* data, std::size_t k) {
    if (!exchanges_.received(data, k)) return;
    if (exchanges_.finished())
      done.set_result();
    else
      send();
  }

 private:
  void send() {
    std::span<const char> m = message(exchanges_.size());
    this->transport->write(QByteArrayView(m.data(), static_cast<qsizetype>(m.size())));
  }
  Exchanges exchanges_{0, 0};
};

class QiEchoServer final : public QiEnd<qi::Protocol> {
 public:
  using QiEnd::QiEnd;
  void data_received(QByteArrayView data) override { transport->write(data); }
};

class QiClient final : public QiClientEnd<qi::Protocol> {
 public:
  void data_received(QByteArrayView data) override {
    received(data.data(), static_cast<std::size_t>(data.size()));
  }
};

// The BufferedProtocol ends read into a buffer of their own.
class QiBuffer {
 protected:
  std::span<std::byte> buffer() { return {buf_.get(), kReadSize}; }
  const char* bytes() const { return reinterpret_cast<const char*>(buf_.get()); }

 private:
  std::unique_ptr<std::byte[]> buf_{new std::byte[kReadSize]};
};

class QiBufferedEchoServer final : public QiEnd<qi::BufferedProtocol>, QiBuffer {
 public:
  using QiEnd::QiEnd;
  std::span<std::byte> get_buffer(std::size_t) override { return buffer(); }
  void buffer_updated(std::size_t n) override { transport->write(QByteArrayView(bytes(), qsizetype(n))); }
};

class QiBufferedClient final : public QiClientEnd<qi::BufferedProtocol>, QiBuffer {
 public:
  std::span<std::byte> get_buffer(std::size_t) override { return buffer(); }
  void buffer_updated(std::size_t n) override { received(bytes(), n); }
};

// One connection through protocols, `n` exchanges of `size` bytes; the
// seconds they took.
template <class Server, class Client>
qi::Coro<double> qi_exchanges(std::size_t size, int64_t n, const QiTls& tls) {
  QiEventLoop& loop = qi::get_running_loop();
  qi::Future<void> served = loop.create_future<void>();
  // Callables named before the co_await (GCC 12 destroys a temporary
  // argument of a co_await expression twice).
  // (Arguments with destructors likewise.)
  auto server_factory = [served] { return std::make_unique<Server>(served); };
  qi::ServerOptions server_opts = server_options(tls);
  qi::Server server = co_await loop.create_server(std::move(server_factory), "127.0.0.1", 0, std::move(server_opts));
  const uint16_t port = server.sockets().at(0).port();
  auto client_factory = [] { return std::make_unique<Client>(); };
  qi::ConnectOptions connect_opts = connect_options(tls);
  auto [client_transport, client] =
      co_await loop.create_connection(std::move(client_factory), "127.0.0.1", port, std::move(connect_opts));
  co_await served;
  if (tls.client) check_tls13(*client_transport);
  const auto t0 = Clock::now();
  client->start(size, n);
  co_await client->done;
  const double s = seconds(Clock::now() - t0);
  qi::Future<void> client_lost = client->lost;
  client_transport->close();
  co_await client_lost;
  server.close();
  co_await server.wait_closed();
  co_return s;
}

// The streams server's callback: echoes what each read brings until EOF.
qi::Coro<void> qi_stream_echo(qi::Future<void> served, qi::StreamReader reader, qi::StreamWriter writer) {
  served.set_result();
  for (;;) {
    QByteArray data = co_await reader.read(static_cast<qsizetype>(kReadSize));
    if (data.isEmpty()) break;
    writer.write(data);
    co_await writer.drain();
  }
  writer.close();
}

// The same exchanges through streams (net.py's streams_program).
qi::Coro<double> qi_stream_exchanges(std::size_t size, int64_t n, const QiTls& tls) {
  QiEventLoop& loop = qi::get_running_loop();
  qi::Future<void> served = loop.create_future<void>();
  auto on_client = [served](qi::StreamReader r, qi::StreamWriter w) {
    return qi_stream_echo(served, std::move(r), std::move(w));
  };
  qi::ServerOptions server_opts = server_options(tls);
  qi::Server server = co_await qi::start_server(std::move(on_client), "127.0.0.1", 0, std::move(server_opts));
  const uint16_t port = server.sockets().at(0).port();
  qi::ConnectOptions connect_opts = connect_options(tls);
  auto [reader, writer] = co_await qi::open_connection("127.0.0.1", port, std::move(connect_opts));
  co_await served;
  if (tls.client) check_tls13(writer.transport());
  const std::span<const char> m = message(size);
  const QByteArrayView out(m.data(), static_cast<qsizetype>(m.size()));
  const auto t0 = Clock::now();
  for (int64_t i = 0; i < n; ++i) {
    writer.write(out);
    co_await writer.drain();
    QByteArray in = co_await reader.readexactly(static_cast<qsizetype>(size));
    check(in == out, "qiloop streams: the server echoed other bytes than were sent");
  }
  const double s = seconds(Clock::now() - t0);
  writer.close();
  co_await writer.wait_closed();
  server.close();
  co_await server.wait_closed();
  co_return s;
}

// === Asio ================================================================================

using asio::use_awaitable;
using asio::ip::tcp;
using AsioTlsStream = asio::ssl::stream<tcp::socket>;

// The TLS contexts of Asio's contender, as qiloop's.
struct AsioTls {
  asio::ssl::context server{asio::ssl::context::tls_server}, client{asio::ssl::context::tls_client};

  AsioTls() {
    server.use_certificate_chain_file(tls_files().cert);
    server.use_private_key_file(tls_files().key, asio::ssl::context::pem);
    client.load_verify_file(tls_files().cert);
    client.set_verify_mode(asio::ssl::verify_peer);
    for (auto* c : {&server, &client}) SSL_CTX_set_min_proto_version(c->native_handle(), TLS1_3_VERSION);
  }
};

AsioTls& asio_tls() {
  static AsioTls tls;
  return tls;
}

// The server ends once it has echoed everything (no EOF to wait for); over
// TLS it makes its handshake first. `served` is set once it can echo.
template <class Stream>
asio::awaitable<void> asio_echo(Stream s, int64_t total, bool* served) {
  if constexpr (std::is_same_v<Stream, AsioTlsStream>)
    co_await s.async_handshake(asio::ssl::stream_base::server, use_awaitable);
  *served = true;
  std::vector<char> buf(kReadSize);
  for (int64_t echoed = 0; echoed < total;) {
    std::size_t k = co_await s.async_read_some(asio::buffer(buf), use_awaitable);
    co_await asio::async_write(s, asio::buffer(buf.data(), k), use_awaitable);
    echoed += static_cast<int64_t>(k);
  }
}

template <class Stream>
asio::awaitable<void> asio_client(Stream client, Stream server, std::size_t size, int64_t n, double* out) {
  auto ex = co_await asio::this_coro::executor;
  bool served = false;
  asio::co_spawn(ex, asio_echo(std::move(server), static_cast<int64_t>(size) * n, &served),
                 [](std::exception_ptr e) { check(!e, "Asio: the echo server failed"); });
  if constexpr (std::is_same_v<Stream, AsioTlsStream>) {
    co_await client.async_handshake(asio::ssl::stream_base::client, use_awaitable);
    check(std::strcmp(SSL_get_version(client.native_handle()), "TLSv1.3") == 0, "Asio: the connection is not TLS 1.3");
  }
  while (!served) co_await asio::post(ex, use_awaitable);
  const std::span<const char> m = message(size);
  std::vector<char> in(size);
  const auto t0 = Clock::now();
  for (int64_t i = 0; i < n; ++i) {
    co_await asio::async_write(client, asio::buffer(m.data(), m.size()), use_awaitable);
    co_await asio::async_read(client, asio::buffer(in), use_awaitable);
    check(echoed(size, 0, in.data(), size), "Asio: the server echoed other bytes than were sent");
  }
  *out = seconds(Clock::now() - t0);
}

asio::awaitable<void> asio_exchanges(std::size_t size, int64_t n, bool tls, double* out) {
  auto ex = co_await asio::this_coro::executor;
  tcp::acceptor acceptor(ex, {asio::ip::address_v4::loopback(), 0});
  tcp::socket client(ex);
  co_await client.async_connect(acceptor.local_endpoint(), use_awaitable);
  tcp::socket server = co_await acceptor.async_accept(use_awaitable);
  client.set_option(tcp::no_delay(true));
  server.set_option(tcp::no_delay(true));
  if (!tls) co_return co_await asio_client(std::move(client), std::move(server), size, n, out);
  AsioTlsStream tls_client(std::move(client), asio_tls().client), tls_server(std::move(server), asio_tls().server);
  SSL_set_tlsext_host_name(tls_client.native_handle(), "localhost");
  tls_client.set_verify_callback(asio::ssl::host_name_verification("localhost"));
  co_await asio_client(std::move(tls_client), std::move(tls_server), size, n, out);
}

// Runs the Asio program program(&seconds) to its end on the one io_context
// of every Asio run (the echo rows' and the readuntil rows'); the seconds it
// timed. An exception out of it is `failure`.
template <class Program>
double asio_seconds(Program program, const char* failure) {
  static asio::io_context context(1);
  double s = 0;
  asio::co_spawn(context, program(&s), [failure](std::exception_ptr e) { check(!e, failure); });
  context.restart();
  context.run();
  return s;
}

double asio_run(std::size_t size, int64_t n, bool tls) {
  return asio_seconds([&](double* out) { return asio_exchanges(size, n, tls, out); }, "Asio: the client failed");
}

// === libuv ===============================================================================

// One run: a listener, the client's and the server's handles, on a loop of
// their own (made and closed outside the timed part).
class UvExchanges {
 public:
  UvExchanges(std::size_t size, int64_t n) : exchanges_(size, n) {
    check(uv_loop_init(&loop_) == 0, "libuv: uv_loop_init failed");
    for (uv_tcp_t* h : {&listener_, &client_, &server_}) {
      uv_tcp_init(&loop_, h);
      h->data = this;
    }
    sockaddr_in a{};
    uv_ip4_addr("127.0.0.1", 0, &a);
    int len = sizeof a;
    check(uv_tcp_bind(&listener_, reinterpret_cast<const sockaddr*>(&a), 0) == 0 &&
              uv_listen(reinterpret_cast<uv_stream_t*>(&listener_), 8, &UvExchanges::on_connection) == 0 &&
              uv_tcp_getsockname(&listener_, reinterpret_cast<sockaddr*>(&a), &len) == 0,
          "libuv: cannot listen on 127.0.0.1");
    connect_.data = this;
    uv_tcp_connect(&connect_, &client_, reinterpret_cast<const sockaddr*>(&a), &UvExchanges::on_connect);
  }
  UvExchanges(const UvExchanges&) = delete;
  UvExchanges& operator=(const UvExchanges&) = delete;
  ~UvExchanges() { uv_loop_close(&loop_); }

  double run() {
    uv_run(&loop_, UV_RUN_DEFAULT);  // returns once every handle is closed
    check(exchanges_.finished(), "libuv: the loop ended early");
    return elapsed_;
  }

 private:
  static UvExchanges& of(void* h) { return *static_cast<UvExchanges*>(static_cast<uv_handle_t*>(h)->data); }
  static uv_stream_t* stream(uv_tcp_t* h) { return reinterpret_cast<uv_stream_t*>(h); }

  static void on_connection(uv_stream_t* listener, int status) {
    UvExchanges& self = of(listener);
    check(status == 0 && uv_accept(listener, stream(&self.server_)) == 0, "libuv: accept failed");
    uv_tcp_nodelay(&self.server_, 1);
    uv_read_start(stream(&self.server_), &UvExchanges::alloc, &UvExchanges::on_server_read);
    self.ready();
  }
  static void on_connect(uv_connect_t* req, int status) {
    UvExchanges& self = *static_cast<UvExchanges*>(req->data);
    check(status == 0, "libuv: connect failed");
    uv_tcp_nodelay(&self.client_, 1);
    uv_read_start(stream(&self.client_), &UvExchanges::alloc, &UvExchanges::on_client_read);
    self.ready();
  }
  // Both ends connected: the clock starts with the first message.
  void ready() {
    if (++connected_ < 2) return;
    t0_ = Clock::now();
    send_message();
  }

  static void alloc(uv_handle_t* h, std::size_t, uv_buf_t* buf) {
    UvExchanges& self = of(h);
    char* mem = h == reinterpret_cast<uv_handle_t*>(&self.server_) ? self.server_buf_.get() : self.client_buf_.get();
    *buf = uv_buf_init(mem, kReadSize);
  }
  static void on_server_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
    if (nread > 0) send(s, buf->base, static_cast<std::size_t>(nread));
    // nread < 0: EOF, when the client closes at the end (uv_close follows).
  }
  static void on_client_read(uv_stream_t* s, ssize_t nread, const uv_buf_t* buf) {
    UvExchanges& self = of(s);
    check(nread >= 0, "libuv: the client's read failed");
    if (nread == 0 || !self.exchanges_.received(buf->base, static_cast<std::size_t>(nread))) return;
    if (!self.exchanges_.finished()) return self.send_message();
    self.elapsed_ = seconds(Clock::now() - self.t0_);
    for (uv_tcp_t* h : {&self.client_, &self.server_, &self.listener_})
      uv_close(reinterpret_cast<uv_handle_t*>(h), nullptr);
  }

  void send_message() {
    std::span<const char> m = message(exchanges_.size());
    send(stream(&client_), m.data(), m.size());
  }
  // The socket first; only what it did not take goes to a uv_write, copied
  // (the caller's buffer is read into again before the write completes).
  struct Write {
    uv_write_t req;
    std::vector<char> rest;
  };
  static void send(uv_stream_t* s, const char* data, std::size_t len) {
    uv_buf_t b = uv_buf_init(const_cast<char*>(data), static_cast<unsigned>(len));
    int r = uv_try_write(s, &b, 1);
    if (r == static_cast<int>(len)) return;
    check(r >= 0 || r == UV_EAGAIN, "libuv: write failed");
    const std::size_t sent = r > 0 ? static_cast<std::size_t>(r) : 0;
    auto* w = new Write{{}, std::vector<char>(data + sent, data + len)};
    b = uv_buf_init(w->rest.data(), static_cast<unsigned>(w->rest.size()));
    uv_write(&w->req, s, &b, 1, [](uv_write_t* req, int status) {
      check(status == 0 || status == UV_ECANCELED, "libuv: write failed");
      delete reinterpret_cast<Write*>(req);
    });
  }

  uv_loop_t loop_;
  uv_tcp_t listener_, client_, server_;
  uv_connect_t connect_;
  std::unique_ptr<char[]> server_buf_{new char[kReadSize]}, client_buf_{new char[kReadSize]};
  Exchanges exchanges_;
  int connected_ = 0;
  Clock::time_point t0_;
  double elapsed_ = 0;
};

// === Qt: QTcpSocket ======================================================================

// A connected pair on 127.0.0.1 with LowDelayOption (TCP_NODELAY) on both
// ends, made by spinning a QEventLoop until the server has the connection.
struct QtPair {
  QTcpServer server;
  QTcpSocket client;
  QTcpSocket* peer = nullptr;  // a child of `server`

  QtPair() {
    check(server.listen(QHostAddress::LocalHost, 0), "Qt: cannot listen on 127.0.0.1");
    client.connectToHost(QHostAddress::LocalHost, server.serverPort());
    QtRun run;
    QObject::connect(&server, &QTcpServer::newConnection, [&] {
      peer = server.nextPendingConnection();
      run.finish();
    });
    run.wait();
    if (client.state() != QAbstractSocket::ConnectedState) check(client.waitForConnected(5000), "Qt: connect failed");
    client.setSocketOption(QAbstractSocket::LowDelayOption, 1);
    peer->setSocketOption(QAbstractSocket::LowDelayOption, 1);
  }
};

void qt_send(QTcpSocket& s, std::size_t size) {
  std::span<const char> m = message(size);
  s.write(m.data(), static_cast<qint64>(m.size()));
}

double qt_exchanges(std::size_t size, int64_t n) {
  QtPair pair;
  Exchanges exchanges(size, n);
  std::vector<char> in(kReadSize);
  QtRun run;
  QObject::connect(pair.peer, &QTcpSocket::readyRead, [&] { pair.peer->write(pair.peer->readAll()); });
  QObject::connect(&pair.client, &QTcpSocket::readyRead, [&] {
    for (qint64 k; (k = pair.client.read(in.data(), static_cast<qint64>(in.size()))) > 0;) {
      if (!exchanges.received(in.data(), static_cast<std::size_t>(k))) continue;
      if (exchanges.finished()) return run.finish();
      qt_send(pair.client, size);
    }
  });
  const auto t0 = Clock::now();
  qt_send(pair.client, size);
  run.wait();
  return seconds(Clock::now() - t0);
}

// === QCoro ===============================================================================

#ifdef QILOOP_BENCH_QCORO
// The server ends once it has echoed everything (no EOF to wait for).
QCoro::Task<> qc_echo(QTcpSocket* s, int64_t total) {
  for (int64_t echoed = 0; echoed < total;) {
    QByteArray data = co_await qCoro(s).readAll();
    co_await qCoro(s).write(data);
    echoed += data.size();
  }
}

QCoro::Task<> qc_exchanges(QtPair* pair, std::size_t size, int64_t n, double* out, QtRun* run) {
  auto server = qc_echo(pair->peer, static_cast<int64_t>(size) * n);
  std::span<const char> m = message(size);
  const QByteArray msg = QByteArray::fromRawData(m.data(), static_cast<qsizetype>(m.size()));
  Exchanges exchanges(size, n);
  const auto t0 = Clock::now();
  while (!exchanges.finished()) {
    co_await qCoro(pair->client).write(msg);
    for (bool whole = false; !whole;) {
      const QByteArray data = co_await qCoro(pair->client).readAll();
      whole = exchanges.received(data.constData(), static_cast<std::size_t>(data.size()));
    }
  }
  *out = seconds(Clock::now() - t0);
  co_await server;
  run->finish();
}

double qc_run(std::size_t size, int64_t n) {
  QtPair pair;
  double s = 0;
  QtRun run;
  auto task = qc_exchanges(&pair, size, n, &s, &run);
  run.wait(task);
  return s;
}
#endif

// === In memory: readuntil("\r\n") ==========================================================

// A burst: `size` bytes of '\r', then "\n" (one readuntil's worth).
const std::string& burst(int64_t size) {
  static std::string data;
  if (data.size() != static_cast<std::size_t>(size) + 1) data = std::string(static_cast<std::size_t>(size), '\r') + '\n';
  return data;
}

// kBlockLines lines of kLineSize bytes: line i is "%06d:" of i, letters
// shifted by i, then "\r\n" (net.py's lines_block), so that a line lost,
// doubled or cut elsewhere does not compare equal.
const std::string& lines_block() {
  static const std::string block = [] {
    std::string b;
    for (int64_t i = 0; i < kBlockLines; ++i) {
      char head[16];
      std::snprintf(head, sizeof head, "%06d:", static_cast<int>(i));
      std::string line(head);
      for (std::size_t j = line.size(); j < kLineSize - 2; ++j)
        line += static_cast<char>('a' + (static_cast<std::size_t>(i) + j) % 26);
      b += line + "\r\n";
    }
    return b;
  }();
  return block;
}

// Line i of the block.
std::string_view block_line(int64_t i) {
  return std::string_view(lines_block()).substr(static_cast<std::size_t>(i) * kLineSize, kLineSize);
}

// The bursts in one run of k bytes: the figure is per byte fed.
int64_t bursts_in(int64_t k, int64_t size) { return std::max<int64_t>(k / (size + 1), 1); }

// qiloop: one reader per run, as one connection's.
qi::Coro<double> qi_bursts(int64_t size, int64_t k) {
  const std::string& data = burst(size);
  const QByteArrayView in(data.data(), static_cast<qsizetype>(data.size()));
  qi::StreamReader reader(kScanLimit);
  double s = 0;
  for (int64_t i = bursts_in(k, size); i > 0; --i) {
    const auto t0 = Clock::now();
    reader.feed_data(in);
    QByteArray got = co_await reader.readuntil("\r\n");
    s += seconds(Clock::now() - t0);
    check(got == in && reader.buffered() == 0, "qiloop: readuntil returned other bytes than the burst fed");
  }
  co_return s;
}

qi::Coro<double> qi_lines(int64_t n) {
  const std::string& block = lines_block();
  qi::StreamReader reader(kScanLimit);
  const auto t0 = Clock::now();
  for (int64_t done = 0; done < n;) {
    const int64_t k = std::min(n - done, kBlockLines);
    reader.feed_data(QByteArrayView(block.data(), static_cast<qsizetype>(k) * static_cast<qsizetype>(kLineSize)));
    for (int64_t i = 0; i < k; ++i) {
      QByteArray line = co_await reader.readuntil("\r\n");
      check(std::string_view(line.constData(), static_cast<std::size_t>(line.size())) == block_line(i),
            "qiloop: readuntil returned another line than was fed");
    }
    done += k;
  }
  const double s = seconds(Clock::now() - t0);
  check(reader.buffered() == 0, "qiloop: bytes left after the last line");
  co_return s;
}

// Asio: an in-memory stream. read_some / async_read_some copy out what
// feed() gave it, as a socket's would copy out what it received; at the end
// of it, EOF (the benchmark never asks for more than it fed). The
// completion is posted: Asio's contract for an asynchronous operation.
class AsioMemoryStream {
 public:
  using executor_type = asio::any_io_executor;
  explicit AsioMemoryStream(executor_type ex) : ex_(std::move(ex)) {}
  executor_type get_executor() const { return ex_; }
  void feed(std::string_view data) { pending_ = data; }

  template <class MutableBuffers>
  std::size_t read_some(const MutableBuffers& buffers, std::error_code& ec) {
    ec = {};
    if (asio::buffer_size(buffers) == 0) return 0;
    if (pending_.empty()) {
      ec = asio::error::eof;
      return 0;
    }
    const std::size_t n = asio::buffer_copy(buffers, asio::buffer(pending_.data(), pending_.size()));
    pending_.remove_prefix(n);
    return n;
  }
  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return asio::async_initiate<Token, void(std::error_code, std::size_t)>(
        [this](auto handler, const MutableBuffers& b) {
          std::error_code ec;
          const std::size_t n = read_some(b, ec);
          asio::post(ex_, [h = std::move(handler), ec, n]() mutable { std::move(h)(ec, n); });
        },
        token, buffers);
  }

 private:
  executor_type ex_;
  std::string_view pending_;
};

// What asio::streambuf holds, as a view.
std::string_view held(const asio::streambuf& buf) {
  auto d = buf.data();
  return std::string_view(static_cast<const char*>(d.data()), d.size());
}

asio::awaitable<void> asio_bursts(int64_t size, int64_t k, double* out) {
  AsioMemoryStream stream(co_await asio::this_coro::executor);
  asio::streambuf buf(kScanLimit);
  const std::string& data = burst(size);
  double s = 0;
  for (int64_t i = bursts_in(k, size); i > 0; --i) {
    const auto t0 = Clock::now();
    stream.feed(data);
    const std::size_t n = co_await asio::async_read_until(stream, buf, "\r\n", use_awaitable);
    s += seconds(Clock::now() - t0);
    check(n == data.size() && held(buf) == data, "Asio: async_read_until returned other bytes than the burst fed");
    buf.consume(n);
  }
  *out = s;
}

asio::awaitable<void> asio_lines(int64_t n, double* out) {
  AsioMemoryStream stream(co_await asio::this_coro::executor);
  asio::streambuf buf(kScanLimit);
  const std::string& block = lines_block();
  const auto t0 = Clock::now();
  for (int64_t done = 0; done < n;) {
    const int64_t k = std::min(n - done, kBlockLines);
    stream.feed(std::string_view(block).substr(0, static_cast<std::size_t>(k) * kLineSize));
    for (int64_t i = 0; i < k; ++i) {
      const std::size_t got = co_await asio::async_read_until(stream, buf, "\r\n", use_awaitable);
      check(got == kLineSize && held(buf).substr(0, got) == block_line(i),
            "Asio: async_read_until returned another line than was fed");
      buf.consume(got);
    }
    done += k;
  }
  *out = seconds(Clock::now() - t0);
  check(buf.size() == 0, "Asio: bytes left after the last line");
}

// === The scenarios ===========================================================================

// QILOOP_BENCH_NET_ONLY=<implementation>: that contender alone (profiling).
bool wanted(const char* impl) {
  const char* only = std::getenv("QILOOP_BENCH_NET_ONLY");
  return !only || std::strcmp(only, impl) == 0;
}

// What a scenario runs over: plain TCP through protocols or streams, or TLS.
enum class Api { kProtocols, kStreams };

void add_exchanges(benchmark::State& state, std::size_t size, Api api, bool tls, const char* scen, const char* met,
                   Shown shown) {
  const int64_t n = state.range(0);
  // One loop serves every run, as one serves an application (and one
  // io_context every Asio run). Not a static: a loop outliving main() would
  // be closed after the thread's thread_locals, which its close() uses.
  QiEventLoop loop;
  static const QiTls plain;
  const QiTls& qtls = tls ? qi_tls() : plain;
  std::vector<Contender> cs;
  // `filter` is what QILOOP_BENCH_NET_ONLY names it by; `impl` its name in
  // the summary.
  auto add = [&](const char* filter, const char* impl, std::function<double(int64_t)> run) {
    if (wanted(filter)) cs.push_back({impl, n, std::move(run)});
  };
  if (api == Api::kStreams) {
    add(kQiloopStreams, kQiloop, [&](int64_t k) { return loop.run_until_complete(qi_stream_exchanges(size, k, qtls)); });
  } else {
    add(kQiloop, kQiloop, [&](int64_t k) {
      return loop.run_until_complete(qi_exchanges<QiEchoServer, QiClient>(size, k, qtls));
    });
    if (!tls)
      add(kQiloopBuffered, kQiloopBuffered, [&](int64_t k) {
        return loop.run_until_complete(qi_exchanges<QiBufferedEchoServer, QiBufferedClient>(size, k, qtls));
      });
  }
  add(kAsio, kAsio, [size, tls](int64_t k) { return asio_run(size, k, tls); });
  // The other peers have no stream API of their own, nor TLS: the protocol
  // rows alone.
  if (api == Api::kProtocols && !tls) {
    add(kLibuv, kLibuv, [size](int64_t k) { return UvExchanges(size, k).run(); });
    add(kQt, kQt, [size](int64_t k) { return qt_exchanges(size, k); });
#ifdef QILOOP_BENCH_QCORO
    add(kQCoro, kQCoro, [size](int64_t k) { return qc_run(size, k); });
#endif
  }
  if (cs.empty()) return state.SkipWithError("QILOOP_BENCH_NET_ONLY names no contender of this scenario");
  interleaved(state, scen, met, std::move(cs), shown);
}

// The readuntil rows: `n` bytes of bursts (scenario 4) or `n` lines (5).
enum class Scan { kBurst, kLines };

void add_scan(benchmark::State& state, Scan scan, int64_t burst_size, const char* scen, const char* met,
              Shown shown) {
  const int64_t n = state.range(0);
  QiEventLoop loop;  // one loop for every run, as in add_exchanges
  std::vector<Contender> cs;
  auto add = [&](const char* impl, std::function<double(int64_t)> run) {
    if (wanted(impl)) cs.push_back({impl, n, std::move(run)});
  };
  if (scan == Scan::kBurst) {
    add(kQiloop, [&loop, burst_size](int64_t k) { return loop.run_until_complete(qi_bursts(burst_size, k)); });
    add(kAsio, [burst_size](int64_t k) {
      return asio_seconds([&](double* out) { return asio_bursts(burst_size, k, out); }, "Asio: the reader failed");
    });
  } else {
    add(kQiloop, [&loop](int64_t k) { return loop.run_until_complete(qi_lines(k)); });
    add(kAsio, [](int64_t k) {
      return asio_seconds([&](double* out) { return asio_lines(k, out); }, "Asio: the reader failed");
    });
  }
  if (cs.empty()) return state.SkipWithError("QILOOP_BENCH_NET_ONLY names no contender of this scenario");
  interleaved(state, scen, met, std::move(cs), shown);
}

void run_python(const Options& o) {
  if (!wanted("asyncio") && !wanted("uvloop")) return;
  const Sizes s = sizes(o);
  run_python_peers("bench_net", "net.py",
                   {std::to_string(s.echo), std::to_string(s.ping), std::to_string(s.burst),
                    std::to_string(s.bursts), std::to_string(s.lines), o.smoke ? "1" : "3", tls_files().cert,
                    tls_files().key},
                   {{"echo_protocols", scenario::kEcho, metric::kMiBps, kShownEcho},
                    {"echo_streams", scenario::kEchoStreams, metric::kMiBps, kShownEcho},
                    {"ping_protocols", scenario::kPing, metric::kRoundTrips, kShownPing},
                    {"ping_streams", scenario::kPingStreams, metric::kRoundTrips, kShownPing},
                    {"echo_tls_protocols", scenario::kTls, metric::kMiBps, kShownEcho},
                    {"echo_tls_streams", scenario::kTlsStreams, metric::kMiBps, kShownEcho},
                    {"scan_burst", scenario::kScanBurst, metric::kMiBps, kShownScan},
                    {"scan_lines", scenario::kScanLines, metric::kLines, kShownPing}});
}

void register_all(const Options& o) {
  const Sizes s = sizes(o);
  run_python(o);
  struct Scenario {
    const char* name;
    std::size_t size;
    Api api;
    bool tls;
    int64_t n;
    const char* metric;
    Shown shown;
  };
  const Scenario all[] = {
      {scenario::kEcho, kEchoSize, Api::kProtocols, false, s.echo, metric::kMiBps, kShownEcho},
      {scenario::kEchoStreams, kEchoSize, Api::kStreams, false, s.echo, metric::kMiBps, kShownEcho},
      {scenario::kPing, kPingSize, Api::kProtocols, false, s.ping, metric::kRoundTrips, kShownPing},
      {scenario::kPingStreams, kPingSize, Api::kStreams, false, s.ping, metric::kRoundTrips, kShownPing},
      {scenario::kTls, kEchoSize, Api::kProtocols, true, s.echo, metric::kMiBps, kShownEcho},
      {scenario::kTlsStreams, kEchoSize, Api::kStreams, true, s.echo, metric::kMiBps, kShownEcho},
  };
  for (const Scenario& sc : all) {
    benchmark::RegisterBenchmark(sc.name, [sc](benchmark::State& state) {
      add_exchanges(state, sc.size, sc.api, sc.tls, sc.name, sc.metric, sc.shown);
    })->Arg(sc.n)->UseManualTime()->Iterations(o.pick(7, 1))->Unit(benchmark::kMillisecond);
    add_target({sc.name, sc.metric, Relation::kRatioTo, kAsio, Compare::kAtLeast, 1.0});
  }
  // The readuntil rows: a burst's bytes (one item: one byte fed), lines.
  struct ScanScenario {
    const char* name;
    Scan scan;
    int64_t n;
    const char* metric;
    Shown shown;
  };
  const ScanScenario scans[] = {
      {scenario::kScanBurst, Scan::kBurst, s.bursts * (s.burst + 1), metric::kMiBps, kShownScan},
      {scenario::kScanLines, Scan::kLines, s.lines, metric::kLines, kShownPing},
  };
  for (const ScanScenario& sc : scans) {
    benchmark::RegisterBenchmark(sc.name, [sc, burst = s.burst](benchmark::State& state) {
      add_scan(state, sc.scan, burst, sc.name, sc.metric, sc.shown);
    })->Arg(sc.n)->UseManualTime()->Iterations(o.pick(7, 1))->Unit(benchmark::kMillisecond);
    add_target({sc.name, sc.metric, Relation::kRatioTo, kAsio, Compare::kAtLeast, 1.0});
  }
}

}  // namespace

QILOOP_BENCH_MAIN(register_all)
