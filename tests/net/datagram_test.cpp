// loop.create_datagram_endpoint, qi::DatagramTransport / DatagramProtocol
// (<qiloop/net/datagram.h>) against peers that are not qiloop: blocking
// POSIX datagram sockets on a std::thread and a Python 3 asyncio endpoint.
// Loopback only; real time, every peer socket times out.
#include "net/transport_peers.h"

#include <qiloop/net/datagram.h>
#include <qiloop/testing.h>

#include <gtest/gtest.h>

#include <sys/un.h>

#include <cstdio>
#include <cstdlib>

using namespace std::chrono_literals;
using namespace peers;

namespace {

// What a DatagramProtocol saw; outlives the protocol.
struct DgramLog {
  std::vector<std::pair<QByteArray, qi::SocketAddress>> datagrams;
  std::vector<std::exception_ptr> errors;
  int made = 0;
  int lost = 0;
  std::exception_ptr lost_error;
  qi::Event changed;

  template <class Pred>
  qi::Coro<void> until(Pred pred) {
    while (!pred()) {
      changed.clear();
      co_await changed.wait();
    }
  }
};

struct DgramRecorder : qi::DatagramProtocol {
  explicit DgramRecorder(std::shared_ptr<DgramLog> l) : log(std::move(l)) {}
  std::shared_ptr<DgramLog> log;
  qi::DatagramTransport* transport = nullptr;
  void connection_made(qi::DatagramTransport& t) override {
    transport = &t;
    ++log->made;
    log->changed.set();
  }
  void datagram_received(QByteArrayView data, const qi::SocketAddress& from) override {
    log->datagrams.emplace_back(data.toByteArray(), from);
    log->changed.set();
  }
  void error_received(std::exception_ptr e) override {
    log->errors.push_back(e);
    log->changed.set();
  }
  void connection_lost(std::exception_ptr e) override {
    ++log->lost;
    log->lost_error = e;
    log->changed.set();
  }
};

auto dgram_recorder(std::shared_ptr<DgramLog> log) {
  return [log] { return std::make_unique<DgramRecorder>(log); };
}

// A blocking datagram socket bound to `at`.
Fd udp_peer(const qi::SocketAddress& at) {
  Fd fd(::socket(at.family(), SOCK_DGRAM | SOCK_CLOEXEC, 0));
  EXPECT_EQ(::bind(fd.get(), at.native(), at.size()), 0) << std::strerror(errno);
  bound_peer_waits(fd.get());
  return fd;
}

// Echoes `count` datagrams back to their senders.
void echo_datagrams(int fd, int count) {
  std::vector<char> buf(65536);
  for (int i = 0; i < count; ++i) {
    sockaddr_storage from;
    socklen_t len = sizeof from;
    ssize_t n = ::recvfrom(fd, buf.data(), buf.size(), 0, reinterpret_cast<sockaddr*>(&from), &len);
    if (n < 0) return;
    ::sendto(fd, buf.data(), static_cast<std::size_t>(n), 0, reinterpret_cast<sockaddr*>(&from), len);
  }
}

qi::Coro<void> echo_through_a_blocking_peer(const char* host) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  Fd peer_fd = udp_peer(qi::SocketAddress::ip(host, 0));
  qi::SocketAddress peer_addr = sockname(peer_fd.get());
  const QByteArray big = pattern_bytes(60 * 1024);
  Peer peer;
  peer.start([&] { echo_datagrams(peer_fd.get(), 4); });
  auto log = std::make_shared<DgramLog>();
  auto factory = dgram_recorder(log);
  qi::DatagramOptions options1{.local_addr = std::pair<std::string, uint16_t>{host, 0}};  // named: g++ 12 destroys a temporary of a co_await twice
  auto [t, proto] = co_await loop.create_datagram_endpoint(
      std::move(factory), std::move(options1));
  EXPECT_EQ(log->made, 1);
  EXPECT_EQ(proto->transport, t);
  EXPECT_EQ(t->sockname().host(), host);
  EXPECT_NE(t->sockname().port(), 0);
  EXPECT_TRUE(t->peername().empty()) << "not connected";
  try {
    t->sendto("no address");
    ADD_FAILURE() << "sendto with no address on an unconnected endpoint was accepted";
  } catch (const qi::ValueError& e) {
    EXPECT_STREQ(e.what(), "sendto: no address: this endpoint has no remote_addr; pass the address to send to");
  }
  t->sendto("one", peer_addr);
  t->sendto("", peer_addr);  // empty datagrams are sent (asyncio 3.13)
  t->sendto("three", peer_addr);
  t->sendto(big, peer_addr);
  co_await log->until([&] { return log->datagrams.size() >= 4; });
  EXPECT_EQ(log->datagrams[0].first, "one");
  EXPECT_EQ(log->datagrams[1].first, "");
  EXPECT_EQ(log->datagrams[2].first, "three");
  EXPECT_EQ(log->datagrams[3].first, big) << "a 60 KB datagram arrives whole";
  EXPECT_EQ(log->datagrams[0].second, peer_addr);
  EXPECT_EQ(t->get_write_buffer_size(), 0u);
  t->close();
  EXPECT_TRUE(t->is_closing());
  co_await log->until([&] { return log->lost > 0; });
  EXPECT_EQ(log->lost_error, nullptr);
}

QILOOP_TEST_MODES(Datagram, EchoOverIpv4WithABlockingPeer) { co_await echo_through_a_blocking_peer("127.0.0.1"); }

TRANSPORT_TEST_MODES_IF(Datagram, EchoOverIpv6WithABlockingPeer, ipv6_loopback() ? "" : "no IPv6 loopback") {
  co_await echo_through_a_blocking_peer("::1");
}

// --- Connected endpoints ------------------------------------------------------------------

QILOOP_TEST_MODES(Datagram, AConnectedEndpointSendsToItsPeerOnly) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  Fd peer_fd = udp_peer(qi::SocketAddress::ip("127.0.0.1", 0));
  qi::SocketAddress peer_addr = sockname(peer_fd.get());
  Peer peer;
  peer.start([&] { echo_datagrams(peer_fd.get(), 2); });
  auto log = std::make_shared<DgramLog>();
  auto factory = dgram_recorder(log);
  qi::DatagramOptions options2{.remote_addr = std::pair<std::string, uint16_t>{"127.0.0.1", peer_addr.port()}};  // named: g++ 12 destroys a temporary of a co_await twice
  auto [t, proto] = co_await loop.create_datagram_endpoint(
      std::move(factory), std::move(options2));
  EXPECT_EQ(t->peername(), peer_addr);
  EXPECT_EQ(t->sockname().host(), "127.0.0.1");
  std::string message;
  try {
    t->sendto("elsewhere", qi::SocketAddress::ip("127.0.0.1", 9));
  } catch (const qi::ValueError& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("invalid address"), std::string::npos) << message;
  t->sendto("default");
  t->sendto("explicit", peer_addr);
  co_await log->until([&] { return log->datagrams.size() >= 2; });
  EXPECT_EQ(log->datagrams[0].first, "default");
  EXPECT_EQ(log->datagrams[1].first, "explicit");
  t->close();
  co_await log->until([&] { return log->lost > 0; });
}

QILOOP_TEST_MODES(Datagram, ConnectionRefusedGoesToErrorReceivedAndTheEndpointStaysOpen) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  uint16_t closed_port = 0;
  {
    Fd probe = udp_peer(qi::SocketAddress::ip("127.0.0.1", 0));
    closed_port = sockname(probe.get()).port();
  }
  auto log = std::make_shared<DgramLog>();
  auto factory = dgram_recorder(log);
  qi::DatagramOptions options3{.remote_addr = std::pair<std::string, uint16_t>{"127.0.0.1", closed_port}};  // named: g++ 12 destroys a temporary of a co_await twice
  auto [t, proto] = co_await loop.create_datagram_endpoint(
      std::move(factory), std::move(options3));
  t->sendto("anyone?");
  co_await log->until([&] { return !log->errors.empty(); });
  EXPECT_TRUE(holds<qi::ConnectionRefusedError>(log->errors[0])) << what_of(log->errors[0]);
  EXPECT_FALSE(t->is_closing()) << "an ICMP error does not end the endpoint";
  EXPECT_EQ(log->lost, 0);
  t->close();
  co_await log->until([&] { return log->lost > 0; });
  EXPECT_EQ(log->lost_error, nullptr);
}

QILOOP_TEST_MODES(Datagram, AllowBroadcastSetsTheOptionAndLeavesTheRemoteUnconnected) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  Fd peer_fd = udp_peer(qi::SocketAddress::ip("127.0.0.1", 0));
  qi::SocketAddress peer_addr = sockname(peer_fd.get());
  auto log = std::make_shared<DgramLog>();
  auto factory = dgram_recorder(log);
  qi::DatagramOptions options4{.remote_addr = std::pair<std::string, uint16_t>{"127.0.0.1", peer_addr.port()},
                          .reuse_port = false,
                          .allow_broadcast = true};  // named: g++ 12 destroys a temporary of a co_await twice
  auto [t, proto] = co_await loop.create_datagram_endpoint(
      std::move(factory), std::move(options4));
  int on = 0;
  socklen_t len = sizeof on;
  ::getsockopt(t->fileno(), SOL_SOCKET, SO_BROADCAST, &on, &len);
  EXPECT_NE(on, 0);
  EXPECT_TRUE(t->peername().empty()) << "asyncio does not connect a broadcast endpoint";
  t->sendto("to the default");
  char buf[64];
  ssize_t n = ::recv(peer_fd.get(), buf, sizeof buf, 0);
  EXPECT_EQ(std::string(buf, static_cast<std::size_t>(std::max<ssize_t>(n, 0))), "to the default");
  t->abort();
  co_await log->until([&] { return log->lost > 0; });
}

QILOOP_TEST_MODES(Datagram, ReusePortIsSet) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<DgramLog>();
  auto factory = dgram_recorder(log);
  qi::DatagramOptions options5{.local_addr = std::pair<std::string, uint16_t>{"127.0.0.1", 0}, .reuse_port = true};  // named: g++ 12 destroys a temporary of a co_await twice
  auto [t, proto] = co_await loop.create_datagram_endpoint(
      std::move(factory), std::move(options5));
  int on = 0;
  socklen_t len = sizeof on;
  ::getsockopt(t->fileno(), SOL_SOCKET, SO_REUSEPORT, &on, &len);
  EXPECT_NE(on, 0);
  t->close();
  co_await log->until([&] { return log->lost > 0; });
}

// --- Closing ----------------------------------------------------------------------------

QILOOP_TEST_MODES(Datagram, CloseAndAbortAreIdempotent) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<DgramLog>();
  auto factory = dgram_recorder(log);
  qi::DatagramOptions options6{.family = AF_INET};  // named: g++ 12 destroys a temporary of a co_await twice
  auto [t, proto] = co_await loop.create_datagram_endpoint(std::move(factory), std::move(options6));
  t->close();
  t->close();
  t->abort();
  t->sendto("dropped", qi::SocketAddress::ip("127.0.0.1", 9));
  co_await log->until([&] { return log->lost > 0; });
  co_await qi::sleep(10ms);
  EXPECT_EQ(log->lost, 1);
  EXPECT_EQ(log->lost_error, nullptr);
}

QILOOP_TEST_MODES(Datagram, AThrowingCallbackIsReportedAndAbortsTheEndpoint) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  std::vector<std::string> reports;
  loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& c) { reports.push_back(c.message); });
  struct Thrower : DgramRecorder {
    using DgramRecorder::DgramRecorder;
    void datagram_received(QByteArrayView, const qi::SocketAddress&) override { throw qi::RuntimeError("boom"); }
  };
  auto log = std::make_shared<DgramLog>();
  auto factory = [log] { return std::make_unique<Thrower>(log); };
  qi::DatagramOptions options7{.local_addr = std::pair<std::string, uint16_t>{"127.0.0.1", 0}};  // named: g++ 12 destroys a temporary of a co_await twice
  auto [t, proto] = co_await loop.create_datagram_endpoint(
      std::move(factory), std::move(options7));
  t->sendto("to myself", t->sockname());
  co_await log->until([&] { return log->lost > 0; });
  EXPECT_EQ(what_of(log->lost_error), "boom");
  EXPECT_EQ(reports.size(), 1u);
  loop.set_exception_handler(nullptr);
}

// --- Bad input ----------------------------------------------------------------------------

// The refusal's text of create_datagram_endpoint(factory, args...), or ""
// when it is not refused with qi::ValueError.
template <class Factory, class Where>
qi::Coro<std::string> endpoint_refusal(Factory factory, Where where) {
  try {
    (void)co_await qi::get_running_loop().create_datagram_endpoint(std::move(factory), std::move(where));
  } catch (const qi::ValueError& e) {
    co_return std::string(e.what());
  }
  co_return std::string();
}

QILOOP_TEST_MODES(Datagram, BadOptionsAreRefused) {
  FdLeakCheck leaks;
  auto factory1 = dgram_recorder(std::make_shared<DgramLog>());
  qi::DatagramOptions nothing{};  // named: g++ 12 destroys a temporary of a co_await twice
  std::string what = co_await endpoint_refusal(std::move(factory1), std::move(nothing));
  EXPECT_EQ(what, "create_datagram_endpoint: unexpected address family: give local_addr, remote_addr or a family "
                  "(AF_INET, AF_INET6, AF_UNIX)")
      << "no address and no family";
  auto [a, b] = unix_pair();
  auto factory2 = dgram_recorder(std::make_shared<DgramLog>());
  what = co_await endpoint_refusal(std::move(factory2), a.get());
  EXPECT_EQ(what, "create_datagram_endpoint: fd " + std::to_string(a.get()) +
                      " is not a datagram socket (SOCK_DGRAM) but a stream socket (SOCK_STREAM); use "
                      "create_connection");
  auto factory3 = dgram_recorder(std::make_shared<DgramLog>());
  qi::DatagramOptions options9{.local_addr = std::pair<std::string, uint16_t>{"127.0.0.1", 0},
                               .remote_addr = std::pair<std::string, uint16_t>{"::1", 9}};
  what = co_await endpoint_refusal(std::move(factory3), std::move(options9));
  EXPECT_EQ(what, "create_datagram_endpoint: can not get address information: local_addr and remote_addr resolve "
                  "to no common address family")
      << "no family in common";
  // A protocol factory that returns null: refused, the socket it opened closed
  // (FdLeakCheck).
  auto null_factory = [] { return std::unique_ptr<DgramRecorder>(); };
  qi::DatagramOptions options10{.local_addr = std::pair<std::string, uint16_t>{"127.0.0.1", 0}};
  what = co_await endpoint_refusal(std::move(null_factory), std::move(options10));
  EXPECT_EQ(what, "create_datagram_endpoint: the protocol factory returned null; return a new protocol "
                  "(std::make_unique)");
}

// --- Unix datagram sockets and an adopted socket ---------------------------------------

QILOOP_TEST_MODES(Datagram, UnixDatagramEndpointAtAPath) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  std::string ours = "/tmp/qiloop_dgram_test_" + std::to_string(::getpid()) + "_a";
  std::string theirs = "/tmp/qiloop_dgram_test_" + std::to_string(::getpid()) + "_b";
  ::unlink(theirs.c_str());
  Fd peer_fd = udp_peer(qi::SocketAddress::unix_path(theirs));
  Peer peer;
  peer.start([&] { echo_datagrams(peer_fd.get(), 1); });
  auto log = std::make_shared<DgramLog>();
  auto factory = dgram_recorder(log);
  qi::DatagramOptions options10{.local_addr = std::pair<std::string, uint16_t>{ours, 0},
                                              .remote_addr = std::pair<std::string, uint16_t>{theirs, 0},
                                              .family = AF_UNIX};  // named: g++ 12 destroys a temporary of a co_await twice
  auto [t, proto] = co_await loop.create_datagram_endpoint(
      std::move(factory), std::move(options10));
  EXPECT_EQ(t->sockname().path(), ours);
  EXPECT_EQ(t->peername().path(), theirs);
  t->sendto("over a path");
  co_await log->until([&] { return !log->datagrams.empty(); });
  EXPECT_EQ(log->datagrams[0].first, "over a path");
  EXPECT_EQ(log->datagrams[0].second.path(), theirs);
  t->close();
  co_await log->until([&] { return log->lost > 0; });
  ::unlink(ours.c_str());
  ::unlink(theirs.c_str());
}

QILOOP_TEST_MODES(Datagram, AnAdoptedSocketPair) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  int sv[2];
  QILOOP_CO_ASSERT(ASSERT_EQ(::socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, sv), 0));
  Fd theirs(sv[1]);
  auto log = std::make_shared<DgramLog>();
  auto factory = dgram_recorder(log);
  auto [t, proto] = co_await loop.create_datagram_endpoint(std::move(factory), sv[0]);
  EXPECT_EQ(t->fileno(), sv[0]);
  t->sendto("to the pair");
  char buf[64];
  ssize_t n = ::recv(theirs.get(), buf, sizeof buf, 0);
  EXPECT_EQ(std::string(buf, static_cast<std::size_t>(std::max<ssize_t>(n, 0))), "to the pair");
  ::send(theirs.get(), "back", 4, 0);
  co_await log->until([&] { return !log->datagrams.empty(); });
  EXPECT_EQ(log->datagrams[0].first, "back");
  t->close();
  co_await log->until([&] { return log->lost > 0; });
}

// --- A Python asyncio peer ---------------------------------------------------------------

// An asyncio datagram echo endpoint: prints its port, echoes until "quit".
constexpr const char* kPythonDatagramEcho = R"PY(
import asyncio
async def main():
    done = asyncio.get_running_loop().create_future()
    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, t): self.t = t
        def datagram_received(self, data, addr):
            if data == b'quit':
                done.set_result(None)
            else:
                self.t.sendto(data, addr)
    t, _ = await asyncio.get_running_loop().create_datagram_endpoint(Echo, local_addr=('127.0.0.1', 0))
    print(t.get_extra_info('sockname')[1], flush=True)
    await asyncio.wait_for(done, 20)
    t.close()
asyncio.run(main())
)PY";

TRANSPORT_TEST_MODES_IF(DatagramPython, EchoWithAnAsyncioEndpoint, no_python3()) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  PythonPeer py(kPythonDatagramEcho);
  uint16_t port = py.port();  // blocking: the child's start-up only
  auto log = std::make_shared<DgramLog>();
  auto factory = dgram_recorder(log);
  qi::DatagramOptions options11{.remote_addr = std::pair<std::string, uint16_t>{"127.0.0.1", port}};  // named: g++ 12 destroys a temporary of a co_await twice
  auto [t, proto] = co_await loop.create_datagram_endpoint(
      std::move(factory), std::move(options11));
  for (int i = 0; i < 10; ++i) t->sendto(QByteArray::number(i));
  t->sendto(pattern_bytes(60000));
  co_await log->until([&] { return log->datagrams.size() >= 11; });
  for (int i = 0; i < 10; ++i) EXPECT_EQ(log->datagrams[static_cast<std::size_t>(i)].first, QByteArray::number(i));
  EXPECT_EQ(log->datagrams[10].first, pattern_bytes(60000));
  t->sendto("quit");
  t->close();
  co_await log->until([&] { return log->lost > 0; });
  EXPECT_EQ(co_await py.exit_status(), 0);
}

}  // namespace

// loop.close() destroys the endpoints still open: no fd leaks, no callback.
TEST(Datagram, LoopCloseWithOpenEndpointsLeaksNoFd) {
  FdLeakCheck leaks;
  auto log = std::make_shared<DgramLog>();
  {
    QiEventLoop loop;
    for (int i = 0; i < 3; ++i) {
      auto factory = dgram_recorder(log);
      qi::DatagramOptions options12{.local_addr = std::pair<std::string, uint16_t>{"127.0.0.1", 0}};  // named: g++ 12 destroys a temporary of a co_await twice
      (void)loop.run_until_complete(loop.create_datagram_endpoint(
          std::move(factory), std::move(options12)));
    }
    EXPECT_EQ(log->made, 3);
    loop.close();
    EXPECT_EQ(log->lost, 0) << "no callback runs on a closing loop";
  }
}

namespace {

// --- Review i10 #8: what an adopted socket must be --------------------------------------

// create_datagram_endpoint(sock=) takes SOCK_DGRAM sockets of the families
// it reads addresses of, as asyncio ("A datagram socket was expected"): a
// SOCK_SEQPACKET socket would read 0 bytes for ever once its peer closes (a
// busy loop of empty datagrams), and a datagram socket of another family
// (netlink) fails in from_native, misreported as the protocol's failure.
// Refused with qi::ValueError; the fd stays the caller's.
QILOOP_TEST_MODES(Datagram, ASeqpacketOrRawSocketIsRefused) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<DgramLog>();
  auto refused = [&](int fd, std::string what, std::string fix) -> qi::Coro<void> {
    std::string message;
    try {
      auto factory = dgram_recorder(log);
      (void)co_await loop.create_datagram_endpoint(std::move(factory), fd);
      ADD_FAILURE() << what << " was accepted";
    } catch (const qi::ValueError& e) {
      message = e.what();
    }
    EXPECT_NE(message.find("fd " + std::to_string(fd)), std::string::npos) << message;
    EXPECT_NE(message.find(fix), std::string::npos) << what << ": " << message;
    EXPECT_NE(::fcntl(fd, F_GETFD), -1) << what << ": the fd stays the caller's";
  };
  int sv[2];
  QILOOP_CO_ASSERT(ASSERT_EQ(::socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv), 0));
  Fd seq(sv[0]), seq_peer(sv[1]);
  co_await refused(seq.get(), "a SOCK_SEQPACKET socket", "SOCK_DGRAM");
  Fd netlink(::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, 0));  // NETLINK_ROUTE: no privilege needed
  if (netlink.get() >= 0) co_await refused(netlink.get(), "an AF_NETLINK datagram socket", "AF_INET");
  Fd raw(::socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_UDP));  // root only
  if (raw.get() >= 0) co_await refused(raw.get(), "a SOCK_RAW socket", "SOCK_DGRAM");
  EXPECT_EQ(log->made, 0);
}

}  // namespace
