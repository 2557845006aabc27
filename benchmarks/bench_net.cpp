// bench_net.cpp — networking (issue 10): TCP over loopback, qiloop's
// transports and protocols beside Asio (C++20 coroutines), libuv, Qt's
// QTcpSocket and QCoro in the same binary, and beside Python's asyncio and
// uvloop running the same exchanges in the same run (benchmarks/peers/net.py):
//
//   1. 64 KiB echo, stop and wait   the client sends 64 KiB, reads the 64 KiB
//      the server echoes, and repeats                       MiB/s (one way)
//   2. 64-byte ping-pong            the same with 64 bytes   round trips/s
//
// Each contender runs its echo server and its client on ONE loop, in this
// thread, over one connection with TCP_NODELAY on both ends; the server
// writes back what each read brought (reads of up to 256 KiB: asyncio's
// max_size), the client counts what comes back. The clock runs from the
// first send to the last byte back; making and closing the connection are
// not timed.
//
// Contenders (interleaved, one run of each per benchmark iteration, so that
// every ratio compares runs made under the same machine load — see
// bench::interleaved):
//   qiloop                   qi::Protocol on both ends (data_received ->
//                            transport->write), nested mode: the client
//                            through loop.create_connection("127.0.0.1",
//                            port); the server's socket accepted with
//                            loop.sock_accept and adopted with
//                            loop.create_connection(factory, fd).
//   qiloop BufferedProtocol  the same with qi::BufferedProtocol (the
//                            transport reads into the protocol's buffer).
//   Asio                     standalone Asio: an awaitable echo loop
//                            (async_read_some, async_write) co_spawned
//                            beside the client's (async_write, async_read of
//                            the whole message), use_awaitable throughout.
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
//   asyncio, uvloop          net.py: asyncio.Protocol on both ends (rows 1,
//                            2) and streams (the ", streams" rows); run by
//                            this binary before the C++ scenarios with the
//                            same sizes, medians of 3 runs.
// qiloop's streams (qi::open_connection / qi::start_server) and servers
// (loop.create_server) are not in main yet: see the TODOs below for where
// they plug in; until then the ", streams" rows hold Python's alone.
//
// Goals (checked in the summary): qiloop's protocols at least Asio's figures,
// in MiB/s and in round trips/s (qiloop / Asio >= 1).
//
// Profiling: QILOOP_BENCH_NET_ONLY=<implementation> runs that contender
// alone (and no Python unless it names asyncio or uvloop), e.g. to count
// system calls per round trip:
//   QILOOP_BENCH_NET_ONLY=qiloop strace -c -f build/release/benchmarks/bench_net
//     --smoke --benchmark_filter=ping-pong        (one command line)
#include "bench_support.h"
#include "qt_run.h"

#include <qiloop/qiloop.h>
#include <qiloop/net/socket.h>
#include <qiloop/net/transport.h>

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <uv.h>

#include <QtNetwork/QHostAddress>
#include <QtNetwork/QTcpServer>
#include <QtNetwork/QTcpSocket>

#ifdef QILOOP_BENCH_QCORO
#include <QCoro/QCoroAbstractSocket>
#include <QCoro/QCoroTask>
#include <QCoro/QCoroTcpServer>
#endif

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace {

using namespace bench;

namespace scenario {
constexpr const char* kEcho = "64 KiB echo, stop and wait";
constexpr const char* kEchoStreams = "64 KiB echo, streams";
constexpr const char* kPing = "64-byte ping-pong";
constexpr const char* kPingStreams = "64-byte ping-pong, streams";
}  // namespace scenario

namespace metric {
constexpr const char* kMiBps = "MiB/s";
constexpr const char* kRoundTrips = "round trips/s";
}  // namespace metric

constexpr const char* kQiloop = "qiloop";
constexpr const char* kQiloopBuffered = "qiloop BufferedProtocol";
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

struct Sizes {
  int64_t echo, ping;
};
Sizes sizes(const Options& o) { return {o.pick<int64_t>(2'000, 50), o.pick<int64_t>(10'000, 1'000)}; }

// A contender that computed a wrong result, or could not connect, is a
// broken benchmark: stop loudly (an exception would be lost inside a
// callback of another library).
void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "bench_net: %s\n", what);
  std::abort();
}

// What every client sends: `size` bytes of one pattern.
const std::vector<char>& message(std::size_t size) {
  static const std::vector<char> echo(kEchoSize, 'e'), ping(kPingSize, 'p');
  return size == kEchoSize ? echo : ping;
}

// The client's bookkeeping, the same for every callback-style contender:
// received(k) after each read; true when the exchange is complete (the
// caller then sends the next message, or stops when none is left).
class Exchanges {
 public:
  Exchanges(std::size_t size, int64_t n) : size_(size), left_(n) {}
  bool received(std::size_t k) {
    got_ += k;
    if (got_ < size_) return false;
    check(got_ == size_, "the server echoed more than was sent");
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

// === qiloop ==============================================================================

// A listening TCP socket on 127.0.0.1, port chosen by the kernel.
// TODO(create_server): loop.create_server(factory, "127.0.0.1", 0) replaces
// this and the sock_accept + create_connection(factory, fd) pair below
// (qi_connect) once it lands.
class Listener {
 public:
  Listener() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    check(fd_ >= 0 && ::bind(fd_, reinterpret_cast<sockaddr*>(&a), len) == 0 && ::listen(fd_, 8) == 0 &&
              ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0,
          "cannot listen on 127.0.0.1");
    port_ = ntohs(a.sin_port);
  }
  Listener(const Listener&) = delete;
  Listener& operator=(const Listener&) = delete;
  ~Listener() { ::close(fd_); }
  int fd() const { return fd_; }
  uint16_t port() const { return port_; }

 private:
  int fd_ = -1;
  uint16_t port_ = 0;
};

// What both ends of every qiloop connection keep: the transport, and a
// future that connection_lost completes (the run waits for it, so that no
// transport outlives its run).
template <class Base>
class QiEnd : public Base {
 public:
  qi::Transport* transport = nullptr;
  qi::Future<void> lost = qi::get_running_loop().create_future<void>();

  void connection_made(qi::Transport& t) override { transport = &t; }
  void connection_lost(std::exception_ptr error) override {
    check(!error, "qiloop: the connection failed");
    lost.set_result();
  }
};

// The client's side: sends the message, counts the echo, sends again.
template <class Base>
class QiClientEnd : public QiEnd<Base> {
 public:
  qi::Future<void> done = qi::get_running_loop().create_future<void>();

  void start(std::size_t size, int64_t n) {
    exchanges_ = Exchanges(size, n);
    send();
  }

 protected:
  void received(std::size_t k) {
    if (!exchanges_.received(k)) return;
    if (exchanges_.finished())
      done.set_result();
    else
      send();
  }

 private:
  void send() {
    const std::vector<char>& m = message(exchanges_.size());
    this->transport->write(QByteArrayView(m.data(), static_cast<qsizetype>(m.size())));
  }
  Exchanges exchanges_{0, 0};
};

class QiEchoServer final : public QiEnd<qi::Protocol> {
 public:
  void data_received(QByteArrayView data) override { transport->write(data); }
};

class QiClient final : public QiClientEnd<qi::Protocol> {
 public:
  void data_received(QByteArrayView data) override { received(static_cast<std::size_t>(data.size())); }
};

// The BufferedProtocol ends read into a buffer of their own.
class QiBuffer {
 protected:
  std::span<std::byte> buffer() { return {buf_.get(), kReadSize}; }
  QByteArrayView bytes(std::size_t n) const { return {reinterpret_cast<const char*>(buf_.get()), qsizetype(n)}; }

 private:
  std::unique_ptr<std::byte[]> buf_{new std::byte[kReadSize]};
};

class QiBufferedEchoServer final : public QiEnd<qi::BufferedProtocol>, QiBuffer {
 public:
  std::span<std::byte> get_buffer(std::size_t) override { return buffer(); }
  void buffer_updated(std::size_t n) override { transport->write(bytes(n)); }
};

class QiBufferedClient final : public QiClientEnd<qi::BufferedProtocol>, QiBuffer {
 public:
  std::span<std::byte> get_buffer(std::size_t) override { return buffer(); }
  void buffer_updated(std::size_t n) override { received(n); }
};

// One connection, `n` exchanges of `size` bytes; the seconds they took.
template <class Server, class Client>
qi::Coro<double> qi_exchanges(std::size_t size, int64_t n) {
  QiEventLoop& loop = qi::get_running_loop();
  Listener listener;
  // Callables named before the co_await (GCC 12 destroys a temporary
  // argument of a co_await expression twice).
  auto client_factory = [] { return std::make_unique<Client>(); };
  auto [client_transport, client] = co_await loop.create_connection(std::move(client_factory), "127.0.0.1",
                                                                      listener.port());
  auto [fd, peer] = co_await loop.sock_accept(listener.fd());
  // TODO(create_server): the server side becomes loop.create_server(...)
  // (see Listener); TODO(streams): a third contender, "qiloop streams", runs
  // the same exchanges through qi::open_connection / qi::start_server
  // (StreamReader::read / readexactly, StreamWriter::write + drain), as
  // net.py's streams_program, and goes into the ", streams" rows as
  // "qiloop" (add it in add_exchanges).
  auto server_factory = [] { return std::make_unique<Server>(); };
  auto [server_transport, server] = co_await loop.create_connection(std::move(server_factory), fd);
  const auto t0 = Clock::now();
  client->start(size, n);
  co_await client->done;
  const double s = seconds(Clock::now() - t0);
  qi::Future<void> client_lost = client->lost, server_lost = server->lost;
  client_transport->close();
  server_transport->close();
  co_await client_lost;
  co_await server_lost;
  co_return s;
}

// === Asio ================================================================================

using asio::use_awaitable;
using asio::ip::tcp;

asio::awaitable<void> asio_echo(tcp::socket s, int64_t total) {
  std::vector<char> buf(kReadSize);
  for (int64_t echoed = 0; echoed < total;) {
    std::size_t k = co_await s.async_read_some(asio::buffer(buf), use_awaitable);
    co_await asio::async_write(s, asio::buffer(buf.data(), k), use_awaitable);
    echoed += static_cast<int64_t>(k);
  }
}

asio::awaitable<void> asio_exchanges(std::size_t size, int64_t n, double* out) {
  auto ex = co_await asio::this_coro::executor;
  tcp::acceptor acceptor(ex, {asio::ip::address_v4::loopback(), 0});
  tcp::socket client(ex);
  co_await client.async_connect(acceptor.local_endpoint(), use_awaitable);
  tcp::socket server = co_await acceptor.async_accept(use_awaitable);
  client.set_option(tcp::no_delay(true));
  server.set_option(tcp::no_delay(true));
  // The server ends once it has echoed everything (no EOF to wait for).
  asio::co_spawn(ex, asio_echo(std::move(server), static_cast<int64_t>(size) * n), [](std::exception_ptr e) {
    check(!e, "Asio: the echo server failed");
  });
  const std::vector<char>& m = message(size);
  std::vector<char> in(size);
  const auto t0 = Clock::now();
  for (int64_t i = 0; i < n; ++i) {
    co_await asio::async_write(client, asio::buffer(m), use_awaitable);
    co_await asio::async_read(client, asio::buffer(in), use_awaitable);
  }
  *out = seconds(Clock::now() - t0);
}

double asio_run(std::size_t size, int64_t n) {
  static asio::io_context context(1);
  double s = 0;
  asio::co_spawn(context, asio_exchanges(size, n, &s), [](std::exception_ptr e) { check(!e, "Asio: the client failed"); });
  context.restart();
  context.run();
  return s;
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
  static void on_client_read(uv_stream_t* s, ssize_t nread, const uv_buf_t*) {
    UvExchanges& self = of(s);
    check(nread >= 0, "libuv: the client's read failed");
    if (nread == 0 || !self.exchanges_.received(static_cast<std::size_t>(nread))) return;
    if (!self.exchanges_.finished()) return self.send_message();
    self.elapsed_ = seconds(Clock::now() - self.t0_);
    for (uv_tcp_t* h : {&self.client_, &self.server_, &self.listener_})
      uv_close(reinterpret_cast<uv_handle_t*>(h), nullptr);
  }

  void send_message() {
    const std::vector<char>& m = message(exchanges_.size());
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
  const std::vector<char>& m = message(size);
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
      if (!exchanges.received(static_cast<std::size_t>(k))) continue;
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
  const std::vector<char>& m = message(size);
  const QByteArray msg = QByteArray::fromRawData(m.data(), static_cast<qsizetype>(m.size()));
  const auto t0 = Clock::now();
  for (int64_t i = 0; i < n; ++i) {
    co_await qCoro(pair->client).write(msg);
    for (std::size_t got = 0; got < size;) got += static_cast<std::size_t>((co_await qCoro(pair->client).readAll()).size());
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

// === The scenarios ===========================================================================

// QILOOP_BENCH_NET_ONLY=<implementation>: that contender alone (profiling).
bool wanted(const char* impl) {
  const char* only = std::getenv("QILOOP_BENCH_NET_ONLY");
  return !only || std::strcmp(only, impl) == 0;
}

void add_exchanges(benchmark::State& state, std::size_t size, const char* scen, const char* met, Shown shown) {
  const int64_t n = state.range(0);
  // One loop serves every run, as one serves an application (and one
  // io_context every Asio run). Not a static: a loop outliving main() would
  // be closed after the thread's thread_locals, which its close() uses.
  QiEventLoop loop;
  std::vector<Contender> cs;
  auto add = [&](const char* impl, std::function<double(int64_t)> run) {
    if (wanted(impl)) cs.push_back({impl, n, std::move(run)});
  };
  add(kQiloop, [&](int64_t k) { return loop.run_until_complete(qi_exchanges<QiEchoServer, QiClient>(size, k)); });
  add(kQiloopBuffered, [&](int64_t k) {
    return loop.run_until_complete(qi_exchanges<QiBufferedEchoServer, QiBufferedClient>(size, k));
  });
  add(kAsio, [size](int64_t k) { return asio_run(size, k); });
  add(kLibuv, [size](int64_t k) { return UvExchanges(size, k).run(); });
  add(kQt, [size](int64_t k) { return qt_exchanges(size, k); });
#ifdef QILOOP_BENCH_QCORO
  add(kQCoro, [size](int64_t k) { return qc_run(size, k); });
#endif
  if (cs.empty()) return state.SkipWithError("QILOOP_BENCH_NET_ONLY names no contender of this scenario");
  interleaved(state, scen, met, std::move(cs), shown);
}

void run_python(const Options& o) {
  if (!wanted("asyncio") && !wanted("uvloop")) return;
  const Sizes s = sizes(o);
  run_python_peers("bench_net", "net.py", {std::to_string(s.echo), std::to_string(s.ping), o.smoke ? "1" : "3"},
                   {{"echo_protocols", scenario::kEcho, metric::kMiBps, kShownEcho},
                    {"echo_streams", scenario::kEchoStreams, metric::kMiBps, kShownEcho},
                    {"ping_protocols", scenario::kPing, metric::kRoundTrips, kShownPing},
                    {"ping_streams", scenario::kPingStreams, metric::kRoundTrips, kShownPing}});
}

void register_all(const Options& o) {
  const Sizes s = sizes(o);
  run_python(o);
  benchmark::RegisterBenchmark(scenario::kEcho, [](benchmark::State& state) {
    add_exchanges(state, kEchoSize, scenario::kEcho, metric::kMiBps, kShownEcho);
  })->Arg(s.echo)->UseManualTime()->Iterations(o.pick(7, 1))->Unit(benchmark::kMillisecond);
  benchmark::RegisterBenchmark(scenario::kPing, [](benchmark::State& state) {
    add_exchanges(state, kPingSize, scenario::kPing, metric::kRoundTrips, kShownPing);
  })->Arg(s.ping)->UseManualTime()->Iterations(o.pick(7, 1))->Unit(benchmark::kMillisecond);
  add_target({scenario::kEcho, metric::kMiBps, Relation::kRatioTo, kAsio, Compare::kAtLeast, 1.0});
  add_target({scenario::kPing, metric::kRoundTrips, Relation::kRatioTo, kAsio, Compare::kAtLeast, 1.0});
}

}  // namespace

QILOOP_BENCH_MAIN(register_all)
