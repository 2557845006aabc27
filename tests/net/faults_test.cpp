// Faults of the kernel, injected through the socket layer's seam
// (qiloop/src/net/sys_io.h): EINTR on every kind of call, spurious EAGAIN,
// short writes (and reads) of one byte, ENOBUFS / ENOMEM on send,
// ECONNRESET in the middle of a write, EMFILE on accept. Each case: the
// call is retried or the error reaches the protocol, stream or caller
// clearly; no fd is left open (FdLeakCheck; LeakSanitizer under
// asan-ubsan checks memory); the loop keeps running (every test uses it
// afterwards). Last, a loop closed with all of its kinds of work pending
// at once.
//
// The seam sits under every backend: the portable (Qt-only) one waits
// differently but makes the same system calls, so these tests run there
// too. Real time (peers are blocking sockets on threads), except where a
// wait is the subject (EMFILE's one-second rest).
#include "net/sys_io.h"
#include "net/transport_peers.h"

#include <qiloop/async_generator.h>
#include <qiloop/net/datagram.h>
#include <qiloop/net/pipes.h>
#include <qiloop/net/server.h>
#include <qiloop/net/streams.h>
#include <qiloop/net/subprocess.h>
#include <qiloop/net/transport.h>
#include <qiloop/testing.h>

#include <gtest/gtest.h>

#include <QtCore/QtGlobal>

#include <array>
#include <atomic>
#include <cstdlib>
#include <functional>
#include <initializer_list>
#include <optional>

using namespace std::chrono_literals;
using namespace peers;
using qi::detail::SysCall;
using Fault = qi::detail::SysIoFaults::Fault;

namespace {

constexpr std::size_t kCallKinds = static_cast<std::size_t>(SysCall::kSendfile) + 1;

// Installed for its lifetime: asks policy(call, fd, n) before the n-th call
// (from 1) of each kind, and counts the calls and the faults it injected.
// The seam is only called on the loop's thread (the peers' blocking
// sockets do not go through it).
class Faults final : public qi::detail::SysIoFaults {
 public:
  using Policy = std::function<Fault(SysCall, int fd, int n)>;
  explicit Faults(Policy policy) : policy_(std::move(policy)) { qi::detail::install_sys_io_faults(this); }
  ~Faults() { qi::detail::install_sys_io_faults(nullptr); }
  Faults(const Faults&) = delete;
  Faults& operator=(const Faults&) = delete;

  Fault before(SysCall call, int fd) override {
    auto k = static_cast<std::size_t>(call);
    Fault f = policy_(call, fd, ++calls_[k]);
    if (f.error) ++injected_[k];
    return f;
  }
  int calls(SysCall c) const { return calls_[static_cast<std::size_t>(c)]; }
  int injected(SysCall c) const { return injected_[static_cast<std::size_t>(c)]; }

 private:
  Policy policy_;
  std::array<int, kCallKinds> calls_{};
  std::array<int, kCallKinds> injected_{};
};

bool among(SysCall c, std::initializer_list<SysCall> kinds) {
  for (SysCall k : kinds)
    if (k == c) return true;
  return false;
}

// Every odd-numbered call of those kinds fails with err (the retry, the
// next call of the same kind, goes through).
Faults::Policy every_other(int err, std::initializer_list<SysCall> kinds) {
  std::vector<SysCall> ks(kinds);
  return [err, ks](SysCall c, int, int n) {
    for (SysCall k : ks)
      if (k == c && n % 2 == 1) return Fault{.error = err};
    return Fault{};
  };
}

// Every call of those kinds on fd fails with err.
Faults::Policy always_on(int fd, int err, std::initializer_list<SysCall> kinds) {
  std::vector<SysCall> ks(kinds);
  return [fd, err, ks](SysCall c, int on, int) {
    for (SysCall k : ks)
      if (k == c && on == fd) return Fault{.error = err};
    return Fault{};
  };
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The writer of a stream whose send failed with `code`: drain() raises
// ConnectionResetError ('Connection lost', as asyncio's), wait_closed() the
// send's own error, naming the write. Gives wait_closed()'s exception, for
// checks of its type.
qi::Coro<std::exception_ptr> expect_send_failed(qi::StreamWriter writer, int code) {
  bool lost = false;
  try {
    co_await writer.drain();
  } catch (const qi::ConnectionResetError&) {
    lost = true;
  }
  EXPECT_TRUE(lost) << "drain() raises ConnectionResetError";
  std::optional<int> got;
  std::string what;
  std::exception_ptr closed;
  try {
    co_await writer.wait_closed();
  } catch (const qi::OSError& e) {
    got = e.code();
    what = e.what();
    closed = std::current_exception();
  }
  EXPECT_EQ(got, code) << "wait_closed() raises the send's error";
  EXPECT_TRUE(contains(what, "writing to the socket")) << what;
  co_return closed;
}

// A non-blocking TCP socket (listening on 127.0.0.1 when `listening`).
Fd tcp_socket(bool listening) {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (listening) {
    auto at = qi::SocketAddress::ip("127.0.0.1", 0);
    EXPECT_EQ(::bind(fd.get(), at.native(), at.size()), 0);
    EXPECT_EQ(::listen(fd.get(), 16), 0);
  }
  return fd;
}

// A regular file holding `bytes`, unlinked already.
Fd temp_file(const QByteArray& bytes) {
  char tmpl[] = "/tmp/qiloop-faults-XXXXXX";
  Fd fd(::mkstemp(tmpl));
  ::unlink(tmpl);
  write_all(fd.get(), std::string_view(bytes.constData(), static_cast<std::size_t>(bytes.size())));
  return fd;
}

// n bytes from fd through loop.sock_recv.
qi::Coro<QByteArray> sock_recv_exactly(int fd, qsizetype n) {
  QByteArray got;
  while (got.size() < n) {
    QByteArray part = co_await qi::get_running_loop().sock_recv(fd, static_cast<std::size_t>(n - got.size()));
    if (part.isEmpty()) break;
    got.append(part);
  }
  co_return got;
}

// The echo protocol of a server.
auto echo(std::shared_ptr<Log> log) {
  return recorder(std::move(log), [](Recorder& r) {
    r.on_data = [](Recorder& self, QByteArrayView d) { self.transport->write(d); };
  });
}

// A connected UDP endpoint towards a blocking peer on 127.0.0.1 that echoes `count` datagrams.
struct UdpEcho {
  Fd peer_fd;
  Peer peer;
  explicit UdpEcho(int count) : peer_fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)) {
    auto at = qi::SocketAddress::ip("127.0.0.1", 0);
    EXPECT_EQ(::bind(peer_fd.get(), at.native(), at.size()), 0);
    bound_peer_waits(peer_fd.get());
    peer.start([this, count] {
      char buf[2048];
      for (int i = 0; i < count; ++i) {
        sockaddr_storage from;
        socklen_t len = sizeof from;
        ssize_t n = ::recvfrom(peer_fd.get(), buf, sizeof buf, 0, reinterpret_cast<sockaddr*>(&from), &len);
        if (n < 0) return;
        ::sendto(peer_fd.get(), buf, static_cast<std::size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), len);
      }
    });
  }
  qi::SocketAddress address() const { return sockname(peer_fd.get()); }
};

struct Datagrams : qi::DatagramProtocol {
  struct Seen {
    std::vector<QByteArray> datagrams;
    std::vector<std::exception_ptr> errors;
    int lost = 0;
    qi::Event changed;
  };
  explicit Datagrams(std::shared_ptr<Seen> s) : seen(std::move(s)) {}
  std::shared_ptr<Seen> seen;
  void datagram_received(QByteArrayView d, const qi::SocketAddress&) override {
    seen->datagrams.push_back(d.toByteArray());
    seen->changed.set();
  }
  void error_received(std::exception_ptr e) override {
    seen->errors.push_back(e);
    seen->changed.set();
  }
  void connection_lost(std::exception_ptr) override {
    ++seen->lost;
    seen->changed.set();
  }
};

template <class Pred>
qi::Coro<void> until(qi::Event& changed, Pred pred) {
  while (!pred()) {
    changed.clear();
    co_await changed.wait();
  }
}

// --- EINTR: retried, whatever the call ------------------------------------------------------

QILOOP_TEST_MODES(Faults, EintrOnEverySockCallIsRetried) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  Fd lsn = tcp_socket(true);
  Fd client = tcp_socket(false);
  const QByteArray bulk = pattern_bytes(200 * 1024);
  const QByteArray file_bytes = pattern_bytes(70 * 1024, 7);
  Fd file = temp_file(file_bytes);
  Fd conn;
  {
    Faults faults(every_other(EINTR, {SysCall::kConnect, SysCall::kAccept, SysCall::kSend, SysCall::kRecv,
                                      SysCall::kSendfile}));
    // An interrupted connect(2) goes on in the background (POSIX): the call
    // waits for it as for EINPROGRESS.
    co_await loop.sock_connect(client.get(), sockname(lsn.get()));
    auto accepted = co_await loop.sock_accept(lsn.get());
    conn.reset(accepted.first);
    EXPECT_EQ(accepted.second, sockname(client.get()));
    // Both ways at once: the sender waits for the reader when the socket buffers fill.
    qi::Task<void> sending = loop.create_task(loop.sock_sendall(client.get(), bulk));
    QByteArray got = co_await sock_recv_exactly(conn.get(), bulk.size());
    co_await sending;
    EXPECT_EQ(got, bulk) << "every byte, in order";
    std::size_t sent = co_await loop.sock_sendfile(conn.get(), file.get(), 0, std::nullopt);
    EXPECT_EQ(sent, static_cast<std::size_t>(file_bytes.size()));
    EXPECT_EQ(co_await sock_recv_exactly(client.get(), file_bytes.size()), file_bytes);
    for (SysCall c : {SysCall::kConnect, SysCall::kAccept, SysCall::kSend, SysCall::kRecv, SysCall::kSendfile})
      EXPECT_GE(faults.injected(c), 1) << "call kind " << static_cast<int>(c) << " was interrupted at least once";
  }
  // The loop goes on, the seam quiet again.
  co_await loop.sock_sendall(client.get(), "after");
  EXPECT_EQ(co_await sock_recv_exactly(conn.get(), 5), "after");
}

QILOOP_TEST_MODES(Faults, EintrOnTransportsServersPipesAndDatagramsIsRetried) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  Faults faults(every_other(EINTR, {SysCall::kRead, SysCall::kSendmsg, SysCall::kWritev, SysCall::kAccept,
                                    SysCall::kSendto, SysCall::kRecvfrom}));
  // A server (accept4), a client transport (sendmsg, read) through it.
  auto server_log = std::make_shared<Log>();
  auto server_factory = echo(server_log);
  qi::Server server = co_await loop.create_server(std::move(server_factory), "127.0.0.1", 0);
  auto log = std::make_shared<Log>();
  auto factory = recorder(log);
  auto opened = co_await loop.create_connection(std::move(factory), "127.0.0.1", server.sockets().at(0).port());
  qi::Transport* t = opened.first;
  const QByteArray first = pattern_bytes(100 * 1024);
  t->write(first);
  std::vector<QByteArray> owned;
  for (int i = 0; i < 50; ++i) owned.push_back(pattern_bytes(1000 + static_cast<std::size_t>(i), 1000u * i));
  std::vector<QByteArrayView> views(owned.begin(), owned.end());
  t->writelines(views);
  QByteArray expected = first;
  for (const QByteArray& o : owned) expected.append(o);
  co_await log->until([&] { return log->data.size() >= expected.size(); });
  EXPECT_EQ(log->data, expected) << "echoed whole and in order";
  t->close();
  co_await log->until([&] { return log->lost == 1; });
  EXPECT_EQ(log->error, nullptr);

  // A write pipe (writev) and a read pipe (read).
  auto pipe = pipe_pair();
  std::string piped;
  Peer reader([&] { piped = read_all(pipe.first.get()); });
  auto pipe_log = std::make_shared<Log>();
  auto pipe_factory = recorder(pipe_log);
  qi::Transport* w = (co_await loop.connect_write_pipe(std::move(pipe_factory), pipe.second.release())).first;
  const QByteArray through_pipe = pattern_bytes(150 * 1024, 3);
  w->write(through_pipe);
  w->close();
  co_await pipe_log->until([&] { return pipe_log->lost == 1; });
  reader.join();
  EXPECT_EQ(piped, through_pipe.toStdString());

  auto back = pipe_pair();
  auto back_log = std::make_shared<Log>();
  auto back_factory = recorder(back_log);
  (void)co_await loop.connect_read_pipe(std::move(back_factory), back.first.release());
  Peer writer([&] {
    write_all(back.second.get(), "through the read pipe");
    back.second.reset();
  });
  co_await back_log->until([&] { return back_log->lost == 1; });
  writer.join();
  EXPECT_EQ(back_log->data, "through the read pipe");

  // A connected datagram endpoint (sendto, recvfrom).
  UdpEcho udp(3);
  auto seen = std::make_shared<Datagrams::Seen>();
  auto dgram_factory = [seen] { return std::make_unique<Datagrams>(seen); };
  qi::DatagramOptions options{.remote_addr = std::pair<std::string, uint16_t>{"127.0.0.1", udp.address().port()}};
  auto endpoint = co_await loop.create_datagram_endpoint(std::move(dgram_factory), std::move(options));
  for (const char* d : {"one", "two", "three"}) endpoint.first->sendto(QByteArrayView(d));
  co_await until(seen->changed, [&] { return seen->datagrams.size() == 3; });
  EXPECT_EQ(seen->datagrams, (std::vector<QByteArray>{"one", "two", "three"}));
  EXPECT_TRUE(seen->errors.empty());
  endpoint.first->close();
  co_await until(seen->changed, [&] { return seen->lost == 1; });
  udp.peer.join();

  for (SysCall c : {SysCall::kRead, SysCall::kSendmsg, SysCall::kWritev, SysCall::kAccept, SysCall::kSendto,
                    SysCall::kRecvfrom})
    EXPECT_GE(faults.injected(c), 1) << "call kind " << static_cast<int>(c) << " was interrupted at least once";
  server.close();
  co_await server.wait_closed();
}

// --- EAGAIN that was not: waited out, never spun on -----------------------------------------

QILOOP_TEST_MODES(Faults, SpuriousEagainIsWaitedOutWithoutBusyLooping) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto pair = unix_pair();  // no structured binding: clang 14 cannot capture one in a lambda
  Fd& theirs = pair.second;
  const int ours = pair.first.get();
  Peer peer([&] { echo_until_eof(theirs.get()); });
  auto log = std::make_shared<Log>();
  auto factory = recorder(log);
  qi::Transport* t = (co_await loop.create_connection(std::move(factory), pair.first.release())).first;
  constexpr int kRounds = 200;
  {
    Faults faults([ours](SysCall c, int fd, int n) {
      return fd == ours && among(c, {SysCall::kRead, SysCall::kSendmsg}) && n % 2 == 1 ? Fault{.error = EAGAIN}
                                                                                         : Fault{};
    });
    QByteArray expected;
    for (int i = 0; i < kRounds; ++i) {
      QByteArray msg = pattern_bytes(64, 64u * static_cast<std::size_t>(i));
      expected.append(msg);
      t->write(msg);
      co_await log->until([&] { return log->data.size() >= expected.size(); });
    }
    EXPECT_EQ(log->data, expected);
    EXPECT_EQ(faults.injected(SysCall::kSendmsg), kRounds) << "each write met one EAGAIN and was buffered";
    // One EAGAIN and one read per message; a loop that spun on the fd (or
    // kept its writer after the buffer emptied) would call many more times.
    EXPECT_LE(faults.calls(SysCall::kRead), 2 * kRounds + 2);
    EXPECT_LE(faults.calls(SysCall::kSendmsg), 2 * kRounds);
  }
  // A sock_recv with nothing to read: one call, then it sleeps on the fd.
  Fd lsn = tcp_socket(true);
  Fd client = tcp_socket(false);
  co_await loop.sock_connect(client.get(), sockname(lsn.get()));
  auto accepted = co_await loop.sock_accept(lsn.get());
  Fd conn(accepted.first);
  {
    Faults faults([fd = conn.get()](SysCall c, int on, int n) {
      return on == fd && c == SysCall::kRecv && n % 2 == 1 ? Fault{.error = EAGAIN} : Fault{};
    });
    qi::Task<QByteArray> receiving = loop.create_task(loop.sock_recv(conn.get(), 100));
    co_await qi::sleep(50ms);
    EXPECT_FALSE(receiving.done());
    EXPECT_EQ(faults.calls(SysCall::kRecv), 1) << "no polling while nothing arrives";
    ::send(client.get(), "late", 4, MSG_NOSIGNAL);
    EXPECT_EQ(co_await receiving, "late");
    EXPECT_LE(faults.calls(SysCall::kRecv), 3);
  }
  t->close();
  co_await log->until([&] { return log->lost == 1; });
  peer.join();
}

// --- Short writes (and reads) of one byte ---------------------------------------------------

Faults::Policy one_byte_at_a_time() {
  return [](SysCall c, int, int) {
    return among(c, {SysCall::kRead, SysCall::kRecv, SysCall::kSend, SysCall::kSendmsg, SysCall::kWritev})
               ? Fault{.max_bytes = 1}
               : Fault{};
  };
}

QILOOP_TEST_MODES(Faults, OneByteWritesDeliverEveryByteInOrder) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  Faults faults(one_byte_at_a_time());
  // A transport: write, then writelines of many pieces, then write_eof.
  auto pair = unix_pair();
  Fd& theirs = pair.second;
  std::atomic<long long> received{0};
  Peer peer([&] { received = read_pattern(theirs.get()); });
  auto log = std::make_shared<Log>();
  auto factory = recorder(log);
  qi::Transport* t = (co_await loop.create_connection(std::move(factory), pair.first.release())).first;
  t->write(pattern_bytes(1500));
  const std::vector<QByteArray> owned = pattern_pieces(300, 9, 1500);
  std::size_t at = 1500;  // the stream's length
  for (const QByteArray& piece : owned) at += static_cast<std::size_t>(piece.size());
  std::vector<QByteArrayView> views(owned.begin(), owned.end());
  t->writelines(views);
  t->write_eof();
  co_await drained(*t);
  peer.join();
  EXPECT_EQ(received.load(), static_cast<long long>(at)) << "every byte, in order (-1: a wrong byte)";
  EXPECT_GE(faults.calls(SysCall::kSendmsg), static_cast<int>(at)) << "one byte per call";
  t->close();
  co_await log->until([&] { return log->lost == 1; });

  // A pipe: writev.
  auto pipe = pipe_pair();
  std::string piped;
  Peer reader([&] { piped = read_all(pipe.first.get()); });
  auto pipe_log = std::make_shared<Log>();
  auto pipe_factory = recorder(pipe_log);
  qi::Transport* w = (co_await loop.connect_write_pipe(std::move(pipe_factory), pipe.second.release())).first;
  std::vector<QByteArray> pieces{pattern_bytes(400), pattern_bytes(300, 400), pattern_bytes(500, 700)};
  std::vector<QByteArrayView> piece_views(pieces.begin(), pieces.end());
  w->writelines(piece_views);
  w->close();
  co_await pipe_log->until([&] { return pipe_log->lost == 1; });
  reader.join();
  EXPECT_EQ(piped, pattern_bytes(1200).toStdString());
  EXPECT_GE(faults.calls(SysCall::kWritev), 1200);

  // Streams both ways over one-byte reads and writes: the peer echoes.
  auto spair = unix_pair();
  Fd& echoer = spair.second;
  Peer echo_peer([&] { echo_until_eof(echoer.get()); });
  auto streams = co_await qi::open_connection(spair.first.release());
  const QByteArray line = pattern_bytes(2000, 11).replace('\n', ' ') + "\n";
  streams.second.write(line);
  co_await streams.second.drain();
  EXPECT_EQ(co_await streams.first.readline(), line) << "a line read one byte per read(2)";
  streams.second.close();
  co_await streams.second.wait_closed();
  echo_peer.join();

  // loop.sock_sendall / sock_recv.
  auto raw = unix_pair();
  ::fcntl(raw.first.get(), F_SETFL, ::fcntl(raw.first.get(), F_GETFL) | O_NONBLOCK);
  std::string raw_got;
  Peer raw_peer([&] { raw_got = recv_exactly(raw.second.get(), 1000); });
  co_await loop.sock_sendall(raw.first.get(), pattern_bytes(1000, 5));
  raw_peer.join();
  EXPECT_EQ(raw_got, pattern_bytes(1000, 5).toStdString());
  send_all(raw.second.get(), "abc");
  EXPECT_EQ(co_await loop.sock_recv(raw.first.get(), 100), "a") << "a short read gives what it got";
}

// --- Out of buffers or memory on send: an error, the connection closed ----------------------

QILOOP_TEST_MODES(Faults, EnobufsOnATransportsSendClosesItWithTheError) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto pair = unix_pair();
  auto log = std::make_shared<Log>();
  auto factory = recorder(log);
  const int fd = pair.first.get();
  qi::Transport* t = (co_await loop.create_connection(std::move(factory), pair.first.release())).first;
  {
    Faults faults(always_on(fd, ENOBUFS, {SysCall::kSendmsg}));
    t->write("lost to the fault");
    co_await log->until([&] { return log->lost == 1; });
  }
  EXPECT_EQ(code_of(log->error), ENOBUFS) << what_of(log->error);
  EXPECT_TRUE(contains(what_of(log->error), "writing to the socket")) << what_of(log->error);
  EXPECT_EQ(read_all(pair.second.get()), "") << "nothing was sent; our end is closed (EOF)";
}

QILOOP_TEST_MODES(Faults, EnomemOnAStreamsSendFailsDrain) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto pair = unix_pair();
  const int fd = pair.first.get();
  auto streams = co_await qi::open_connection(pair.first.release());
  {
    Faults faults(always_on(fd, ENOMEM, {SysCall::kSendmsg}));
    streams.second.write("no memory");
    EXPECT_TRUE(streams.second.is_closing()) << "the failed send closed the connection at once";
    (void)co_await expect_send_failed(streams.second, ENOMEM);
  }
  EXPECT_EQ(read_all(pair.second.get()), "");
  co_await qi::sleep(1ms);  // the loop goes on
  (void)loop;
}

QILOOP_TEST_MODES(Faults, EnobufsOnSockSendallRaisesItAndLeavesTheSocketUsable) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto pair = unix_pair();
  ::fcntl(pair.first.get(), F_SETFL, ::fcntl(pair.first.get(), F_GETFL) | O_NONBLOCK);
  std::optional<std::string> what;
  {
    Faults faults(always_on(pair.first.get(), ENOBUFS, {SysCall::kSend}));
    try {
      co_await loop.sock_sendall(pair.first.get(), "x");
    } catch (const qi::OSError& e) {
      EXPECT_EQ(e.code(), ENOBUFS);
      what = e.what();
    }
  }
  QILOOP_CO_ASSERT(ASSERT_TRUE(what.has_value()));
  EXPECT_TRUE(contains(*what, "sock_sendall")) << *what;
  co_await loop.sock_sendall(pair.first.get(), "then");  // the fd API leaves the socket to its owner
  EXPECT_EQ(recv_exactly(pair.second.get(), 4), "then");
}

QILOOP_TEST_MODES(Faults, EnobufsOnADatagramSendIsReportedAndTheEndpointStays) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  UdpEcho udp(1);
  auto seen = std::make_shared<Datagrams::Seen>();
  auto dgram_factory = [seen] { return std::make_unique<Datagrams>(seen); };
  qi::DatagramOptions options{.remote_addr = std::pair<std::string, uint16_t>{"127.0.0.1", udp.address().port()}};
  auto endpoint = co_await loop.create_datagram_endpoint(std::move(dgram_factory), std::move(options));
  {
    Faults faults([](SysCall c, int, int) { return c == SysCall::kSendto ? Fault{.error = ENOBUFS} : Fault{}; });
    endpoint.first->sendto(QByteArrayView("dropped"));
  }
  QILOOP_CO_ASSERT(ASSERT_EQ(seen->errors.size(), 1u));
  EXPECT_EQ(code_of(seen->errors[0]), ENOBUFS) << what_of(seen->errors[0]);
  EXPECT_FALSE(endpoint.first->is_closing()) << "asyncio: error_received, the endpoint stays";
  endpoint.first->sendto(QByteArrayView("kept"));
  co_await until(seen->changed, [&] { return !seen->datagrams.empty(); });
  EXPECT_EQ(seen->datagrams, (std::vector<QByteArray>{"kept"}));
  endpoint.first->close();
  co_await until(seen->changed, [&] { return seen->lost == 1; });
  udp.peer.join();
}

// --- ECONNRESET in the middle of a write ---------------------------------------------------

QILOOP_TEST_MODES(Faults, ConnectionResetMidWriteDropsTheBufferAndLosesTheConnection) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto pair = unix_pair();
  Fd& theirs = pair.second;
  const int fd = pair.first.get();
  auto log = std::make_shared<Log>();
  auto factory = recorder(log);
  qi::Transport* t = (co_await loop.create_connection(std::move(factory), pair.first.release())).first;
  t->write(pattern_bytes(4 << 20));  // more than the socket takes: the rest is buffered
  QILOOP_CO_ASSERT(ASSERT_GT(t->get_write_buffer_size(), 0u));
  Faults faults(always_on(fd, ECONNRESET, {SysCall::kSendmsg}));
  std::atomic<long long> received{0};
  Peer peer([&] { received = read_pattern(theirs.get()); });  // makes room: the next flush meets the reset
  co_await log->until([&] { return log->lost == 1; });
  EXPECT_TRUE(holds<qi::ConnectionResetError>(log->error)) << what_of(log->error);
  peer.join();
  EXPECT_GT(received.load(), 0) << "what was sent before the reset arrived, in order";
  EXPECT_LT(received.load(), 4LL << 20);
  EXPECT_EQ(faults.injected(SysCall::kSendmsg), 1) << "no write after the reset";
}

QILOOP_TEST_MODES(Faults, ConnectionResetMidWriteFailsAStreamsDrain) {
  FdLeakCheck leaks;
  auto pair = unix_pair();
  Fd& theirs = pair.second;
  const int fd = pair.first.get();
  auto streams = co_await qi::open_connection(pair.first.release());
  streams.second.write(pattern_bytes(4 << 20));
  Faults faults(always_on(fd, ECONNRESET, {SysCall::kSendmsg}));
  Peer peer([&] { (void)read_pattern(theirs.get()); });
  const std::exception_ptr closed = co_await expect_send_failed(streams.second, ECONNRESET);
  EXPECT_TRUE(holds<qi::ConnectionResetError>(closed))
      << "wait_closed() raises ConnectionResetError: " << what_of(closed);
  peer.join();
}

// --- EMFILE on accept -----------------------------------------------------------------------

// The server rests a second (asyncio's ACCEPT_RETRY_DELAY), reports, keeps
// serving. Unlike Server.OutOfFdsRestsASecondThenServes, which runs the
// process out of fds for real, this one runs under asan-ubsan too.
QILOOP_TEST_MODES_VT(Faults, EmfileOnAServersAcceptRestsThenServes) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  std::vector<std::string> reports;
  std::vector<std::exception_ptr> errors;
  qi::Event reported;
  loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& c) {
    reports.push_back(c.message);
    errors.push_back(c.exception);
    reported.set();
  });
  auto log = std::make_shared<Log>();
  auto factory = echo(log);
  qi::Server server = co_await loop.create_server(std::move(factory), "127.0.0.1", 0);
  Faults faults([](SysCall c, int, int n) { return c == SysCall::kAccept && n == 1 ? Fault{.error = EMFILE} : Fault{}; });
  Fd client = connect_client(server.sockets().at(0));
  ::fcntl(client.get(), F_SETFL, ::fcntl(client.get(), F_GETFL) | O_NONBLOCK);
  auto t0 = loop.time();
  co_await reported.wait();
  QILOOP_CO_ASSERT(ASSERT_EQ(reports.size(), 1u));
  EXPECT_TRUE(contains(reports[0], "socket.accept() out of system resource")) << reports[0];
  EXPECT_EQ(code_of(errors[0]), EMFILE) << what_of(errors[0]);
  EXPECT_TRUE(server.is_serving());
  co_await log->until([&] { return log->made == 1; });
  EXPECT_GE(loop.time() - t0, 1s) << "accepting rested a second";
  co_await loop.sock_sendall(client.get(), "after the rest");
  EXPECT_EQ(co_await sock_recv_exactly(client.get(), 14), "after the rest");
  EXPECT_EQ(faults.injected(SysCall::kAccept), 1);
  client.reset();
  co_await log->until([&] { return log->lost == 1; });
  EXPECT_EQ(reports.size(), 1u);
  loop.set_exception_handler(nullptr);
  server.close();
  co_await server.wait_closed();
}

QILOOP_TEST_MODES(Faults, EmfileOnSockAcceptRaisesItAndTheNextAcceptWorks) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  Fd lsn = tcp_socket(true);
  Fd client = connect_client(sockname(lsn.get()));
  std::optional<int> code;
  {
    Faults faults(always_on(lsn.get(), EMFILE, {SysCall::kAccept}));
    try {
      (void)co_await loop.sock_accept(lsn.get());
    } catch (const qi::OSError& e) {
      code = e.code();
    }
  }
  EXPECT_EQ(code, EMFILE);
  auto accepted = co_await loop.sock_accept(lsn.get());  // the connection waited in the backlog
  Fd conn(accepted.first);
  EXPECT_GE(conn.get(), 0);
}

// --- A loop closed with everything pending at once --------------------------------------------

bool listed(int pid) { return ::access(("/proc/" + std::to_string(pid)).c_str(), F_OK) == 0; }

// Counts its live copies: what close() must release.
struct Probe {
  static inline int live = 0;
  Probe() { ++live; }
  Probe(const Probe&) { ++live; }
  ~Probe() { --live; }
};

qi::AsyncGenerator<int> numbers(Probe) {
  for (int i = 0;; ++i) {
    co_yield i;
    co_await qi::sleep(1h);
  }
}

// Without a runner or qi::run nothing is cancelled first: close() itself
// must free the suspended tasks' frames, the timers' callbacks, the
// transports and the server, finish the generator, kill and reap the child
// — and report what it dropped, never hang.
TEST(Faults, LoopClosedWithTasksTimersTransportsGeneratorsAndChildrenAtOnce) {
  FdLeakCheck leaks;
  Probe::live = 0;
  static std::vector<std::string> warnings;
  warnings.clear();
  std::vector<std::string> reports;
  int child = -1;
  auto client_log = std::make_shared<Log>();
  auto server_log = std::make_shared<Log>();
  std::optional<qi::AsyncGenerator<int>> gen;
  {
    QiEventLoop loop;
    loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& c) { reports.push_back(c.message); });
    auto setup = [&]() -> qi::Coro<void> {
      auto factory = echo(server_log);
      qi::Server server = co_await loop.create_server(std::move(factory), "127.0.0.1", 0);
      auto client_factory = recorder(client_log);
      auto opened = co_await loop.create_connection(std::move(client_factory), "127.0.0.1",
                                                    server.sockets().at(0).port());
      opened.first->write(pattern_bytes(1000));
      qi::Process p = co_await qi::create_subprocess_exec("sleep", "30");
      child = p.pid();
    };
    loop.run_until_complete(setup());
    auto never = loop.create_future<int>();
    loop.create_task([](qi::Future<int> f, Probe) -> qi::Coro<void> { (void)co_await f; }(never, Probe()),
                     "waits forever");
    loop.call_later(1h, [p = Probe()] { ADD_FAILURE() << "a timer of a closed loop ran"; });
    gen.emplace(numbers(Probe()));
    loop.create_task([](qi::AsyncGenerator<int>& g) -> qi::Coro<void> {
      for (;;) {
        std::optional<int> v = co_await g.next();
        if (!v) break;
      }
    }(*gen), "iterates");
    loop.call_later(50ms, [&] { loop.stop(); });
    loop.run_forever();
    EXPECT_EQ(server_log->made, 1);
    EXPECT_EQ(Probe::live, 3);
    QtMessageHandler previous = qInstallMessageHandler([](QtMsgType type, const QMessageLogContext&, const QString& m) {
      if (type == QtWarningMsg) warnings.push_back(m.toStdString());
    });
    loop.close();
    qInstallMessageHandler(previous);
    EXPECT_EQ(Probe::live, 1) << "the task's frame and the timer's callback are freed; the generator's "
                                 "frame goes with its owner";
  }
  EXPECT_TRUE(gen->finished()) << "a generator whose loop closed under it is finished";
  gen.reset();
  EXPECT_EQ(Probe::live, 0);
  int dropped_tasks = 0;
  for (const std::string& r : reports) dropped_tasks += r == "Task was destroyed but it is pending!";
  EXPECT_EQ(dropped_tasks, 2) << "each suspended task is reported";
  bool child_warned = false;
  for (const std::string& w : warnings) child_warned = child_warned || contains(w, "killing the child process");
  EXPECT_TRUE(child_warned) << "the running child is reported";
  EXPECT_FALSE(listed(child)) << "killed and reaped";
  EXPECT_EQ(client_log->lost, 0) << "no callback runs on a closing loop";
}

}  // namespace
