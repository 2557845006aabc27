// loop.create_connection / create_unix_connection, and the choice of
// address (one after the other, happy eyeballs), against blocking POSIX
// peers. Loopback only (127.0.0.0/8 gives several IPv4 addresses); real
// time, bounded waits.
#include "net/happy_eyeballs.h"
#include "net/transport_peers.h"

#include <qiloop/net/transport.h>
#include <qiloop/testing.h>

#include <gtest/gtest.h>

#include <poll.h>

#include <cstdlib>

using namespace std::chrono_literals;
using namespace peers;

namespace {

// A free port on `host` that nobody listens on (bound, then closed).
uint16_t refused_port(const char* host = "127.0.0.1") {
  Fd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  auto a = qi::SocketAddress::ip(host, 0);
  ::bind(fd.get(), a.native(), a.size());
  return sockname(fd.get()).port();
}

qi::AddrInfo info(const qi::SocketAddress& a) {
  return {.family = a.family(), .type = SOCK_STREAM, .protocol = 0, .canonname = {}, .address = a};
}

// A listener whose accept queue is full: further SYNs are dropped, so a
// connect to it stays in progress (a black hole on loopback). Holds the
// queued connections.
struct BlackHole {
  Fd lsn;
  std::vector<Fd> queued;
  qi::SocketAddress address;
  bool ok = false;
  BlackHole() {
    lsn = listener(qi::SocketAddress::ip("127.0.0.1", 0), 0);
    address = sockname(lsn.get());
    // Fill the queue, then check that one more connection hangs.
    for (int i = 0; i < 4; ++i) {
      Fd c(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
      ::connect(c.get(), address.native(), address.size());
      queued.push_back(std::move(c));
    }
    std::this_thread::sleep_for(50ms);
    Fd probe(::socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    ::connect(probe.get(), address.native(), address.size());
    pollfd p{probe.get(), POLLOUT, 0};
    ok = ::poll(&p, 1, 200) == 0;
  }
};

std::string no_black_hole() {
  return BlackHole().ok ? "" : "this kernel does not leave a connect to a full listener in progress";
}

// --- Errors -----------------------------------------------------------------------------

QILOOP_TEST_MODES(CreateConnection, RefusedPortNamesTheAddress) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  uint16_t port = refused_port();
  std::string what;
  try {
    auto factory1 = recorder(std::make_shared<Log>());  // named: g++ 12 destroys a lambda temporary of a co_await twice
    (void)co_await loop.create_connection(std::move(factory1), "127.0.0.1", port);
  } catch (const qi::ConnectionRefusedError& e) {
    what = e.what();
  }
  EXPECT_NE(what.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << what;
}

QILOOP_TEST_MODES(CreateConnection, AnUnresolvableNameIsAGaiError) {
  auto& loop = qi::get_running_loop();
  auto factory2 = recorder(std::make_shared<Log>());  // named: g++ 12 destroys a lambda temporary of a co_await twice
  EXPECT_THROW((void)co_await loop.create_connection(std::move(factory2), "no-such-host.invalid", 80),
               qi::GaiError);
}

QILOOP_TEST_MODES(CreateConnection, EveryAddressRefusingNamesEach) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  uint16_t p1 = refused_port(), p2 = refused_port("127.0.0.2");
  const std::vector<qi::AddrInfo> both{info(qi::SocketAddress::ip("127.0.0.1", p1)),
                                       info(qi::SocketAddress::ip("127.0.0.2", p2))};
  const std::string target = "test";
  std::string what;
  try {
    (void)co_await qi::detail::connect_first(loop, both, {}, std::nullopt, false, target);
  } catch (const qi::ConnectionRefusedError& e) {
    what = e.what();
  }
  EXPECT_NE(what.find("127.0.0.1:" + std::to_string(p1)), std::string::npos) << what;
  EXPECT_NE(what.find("127.0.0.2:" + std::to_string(p2)), std::string::npos) << what;
  bool group = false;
  try {
    (void)co_await qi::detail::connect_first(loop, both, {}, std::nullopt, true, target);
  } catch (const qi::ExceptionGroup& g) {
    group = g.exceptions().size() == 2;
  }
  EXPECT_TRUE(group) << "all_errors: an ExceptionGroup of both";
}

// --- Several addresses --------------------------------------------------------------------

QILOOP_TEST_MODES(CreateConnection, TheFirstAddressRefusesTheSecondIsUsed) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  Fd lsn = listener(qi::SocketAddress::ip("127.0.0.2", 0));
  auto good = sockname(lsn.get());
  const std::vector<qi::AddrInfo> addresses{info(qi::SocketAddress::ip("127.0.0.1", refused_port())), info(good)};
  const std::string target = "test";
  int fd = co_await qi::detail::connect_first(loop, addresses, {}, std::nullopt, false, target);
  Fd conn(fd);
  auto peer = qi::SocketAddress();
  {
    sockaddr_storage ss;
    socklen_t len = sizeof ss;
    ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len);
    peer = qi::SocketAddress::from_native(reinterpret_cast<sockaddr*>(&ss), len);
  }
  EXPECT_EQ(peer, good);
}

TRANSPORT_TEST_MODES_IF(CreateConnection, HappyEyeballsStartsTheNextAddressAfterTheDelay, no_black_hole()) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  BlackHole hole;
  Fd lsn = listener(qi::SocketAddress::ip("127.0.0.2", 0));
  auto good = sockname(lsn.get());
  auto t0 = std::chrono::steady_clock::now();
  const std::vector<qi::AddrInfo> addresses{info(hole.address), info(good)};
  const std::string target = "test";
  int fd = co_await qi::detail::connect_first(loop, addresses, {}, 100ms, false, target);
  auto took = std::chrono::steady_clock::now() - t0;
  Fd conn(fd);
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  EXPECT_EQ(qi::SocketAddress::from_native(reinterpret_cast<sockaddr*>(&ss), len), good);
  EXPECT_GE(took, 100ms) << "the second attempt waited for the delay";
  EXPECT_LT(took, 900ms) << "and did not wait for the first to fail";
}

TRANSPORT_TEST_MODES_IF(CreateConnection, CancelledWhileConnectingLeavesNothing, no_black_hole()) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  BlackHole hole;
  Fd lsn = listener(qi::SocketAddress::ip("127.0.0.2", 0));
  const std::vector<qi::AddrInfo> holes{info(hole.address), info(hole.address)};
  const std::string target = "test";
  auto stalled = [&]() -> qi::Coro<void> {
    (void)co_await qi::detail::connect_first(loop, holes, {}, 50ms, false, target);
  };
  auto task = loop.create_task(stalled());
  co_await qi::sleep(120ms);  // both attempts started
  task.cancel();
  bool cancelled = false;
  try {
    co_await task;
  } catch (const qi::CancelledError&) {
    cancelled = true;
  }
  EXPECT_TRUE(cancelled);
  auto log = std::make_shared<Log>();
  auto plain = [&]() -> qi::Coro<void> {
    auto factory3 = recorder(log);  // named: g++ 12 destroys a lambda temporary of a co_await twice
    (void)co_await loop.create_connection(std::move(factory3), "127.0.0.1", hole.address.port());
  };
  auto t2 = loop.create_task(plain());
  co_await qi::sleep(30ms);
  t2.cancel();
  EXPECT_THROW(co_await t2, qi::CancelledError);
  EXPECT_EQ(log->made, 0);
}

// A cancellation at any point of a staggered connect — in particular
// while the winner is found and the other attempts are wound down —
// leaves no fd behind (review i10 A4): the cancel comes k loop iterations
// after the start, for k across the whole call.
QILOOP_TEST_MODES(CreateConnection, CancelledWhileTheWinnerIsWoundDownLeaksNoFd) {
  auto& loop = qi::get_running_loop();
  Fd lsn = listener(qi::SocketAddress::ip("127.0.0.1", 0));
  const auto good = sockname(lsn.get());
  const std::vector<qi::AddrInfo> addresses{info(good), info(good)};
  const std::string target = "test";
  FdLeakCheck leaks;
  int connected = 0, cancelled = 0;
  for (int k = 0; k < 40; ++k) {
    auto attempt = [&]() -> qi::Coro<int> { co_return co_await qi::detail::connect_first(loop, addresses, {}, 10ms, false, target); };
    auto task = loop.create_task(attempt());
    for (int i = 0; i < k; ++i) co_await qi::sleep(0ms);
    task.cancel();
    try {
      ::close(co_await task);
      ++connected;
    } catch (const qi::CancelledError&) {
      ++cancelled;
    }
    // The connections the listener queued.
    pollfd p{lsn.get(), POLLIN, 0};
    while (::poll(&p, 1, 0) == 1) ::close(::accept4(lsn.get(), nullptr, nullptr, SOCK_CLOEXEC));
  }
  EXPECT_GT(cancelled, 0);
  EXPECT_GT(connected, 0) << "late cancels find the call done";
}

TEST(CreateConnection, InterleaveAlternatesFamilies) {
  auto v6a = info(qi::SocketAddress::ip("::1", 1)), v6b = info(qi::SocketAddress::ip("::1", 2));
  auto v4a = info(qi::SocketAddress::ip("127.0.0.1", 1)), v4b = info(qi::SocketAddress::ip("127.0.0.1", 2));
  EXPECT_EQ(qi::detail::interleave_addrinfos({v6a, v6b, v4a, v4b}, 1), (std::vector{v6a, v4a, v6b, v4b}));
  EXPECT_EQ(qi::detail::interleave_addrinfos({v6a, v6b, v4a, v4b}, 2), (std::vector{v6a, v6b, v4a, v4b}));
  EXPECT_EQ(qi::detail::interleave_addrinfos({v4a, v6a, v6b}, 1), (std::vector{v4a, v6a, v6b}));
}

// --- Families, options --------------------------------------------------------------------

qi::Coro<void> echo_once(const qi::SocketAddress& at, std::function<qi::Coro<std::pair<qi::Transport*, Recorder*>>(
                                                          std::shared_ptr<Log>)> connect) {
  FdLeakCheck leaks;
  Fd lsn = listener(at);
  Peer peer;
  peer.start([&] {
    Fd c = accept_peer(lsn.get());
    echo_until_eof(c.get());
  });
  auto log = std::make_shared<Log>();
  auto log_for_connect = log;
  auto [t, proto] = co_await connect(std::move(log_for_connect));
  t->write("ping");
  co_await log->until([&] { return log->data == "ping"; });
  t->write_eof();
  co_await log->until([&] { return log->lost > 0; });
  EXPECT_EQ(log->error, nullptr);
  peer.join();
}

std::string no_ipv6() { return ipv6_loopback() ? "" : "::1 is not available on this machine"; }

TRANSPORT_TEST_MODES_IF(CreateConnection, Ipv6, no_ipv6()) {
  Fd probe = listener(qi::SocketAddress::ip("::1", 0));
  uint16_t port = sockname(probe.get()).port();
  probe.reset();
  // Named, as every callable given inside a co_await expression (g++ 12).
  std::function<qi::Coro<std::pair<qi::Transport*, Recorder*>>(std::shared_ptr<Log>)> connect =
      [port](std::shared_ptr<Log> log) { return qi::get_running_loop().create_connection(recorder(log), "::1", port); };
  const auto at = qi::SocketAddress::ip("::1", port);
  co_await echo_once(at, std::move(connect));
}

QILOOP_TEST_MODES(CreateConnection, UnixSocketPath) {
  char tmpl[] = "/tmp/qiloop-transport-XXXXXX";
  std::string dir = ::mkdtemp(tmpl);
  std::string path = dir + "/s";
  std::function<qi::Coro<std::pair<qi::Transport*, Recorder*>>(std::shared_ptr<Log>)> connect =
      [path](std::shared_ptr<Log> log) { return qi::get_running_loop().create_unix_connection(recorder(log), path); };
  const auto at = qi::SocketAddress::unix_path(path);
  co_await echo_once(at, std::move(connect));
  ::unlink(path.c_str());
  auto factory4 = recorder(std::make_shared<Log>());  // named: g++ 12 destroys a lambda temporary of a co_await twice
  EXPECT_THROW((void)co_await qi::get_running_loop().create_unix_connection(std::move(factory4), path),
               qi::FileNotFoundError);
  ::rmdir(dir.c_str());
}

QILOOP_TEST_MODES(CreateConnection, LocalAddrBindsFirst) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  Fd lsn = listener(qi::SocketAddress::ip("127.0.0.1", 0));
  auto log = std::make_shared<Log>();
  qi::ConnectOptions options;
  options.local_addr = std::pair<std::string, uint16_t>("127.0.0.2", 0);
  auto factory5 = recorder(log);  // named: g++ 12 destroys a lambda temporary of a co_await twice
  auto [t, proto] = co_await loop.create_connection(std::move(factory5), "127.0.0.1", sockname(lsn.get()).port(), options);
  EXPECT_EQ(t->sockname().host(), "127.0.0.2");
  t->abort();
  co_await log->until([&] { return log->lost > 0; });
}

QILOOP_TEST_MODES(CreateConnection, AnExistingSocket) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  Fd udp(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  auto factory6 = recorder(std::make_shared<Log>());  // named: g++ 12 destroys a lambda temporary of a co_await twice
  std::string what;
  try {
    (void)co_await loop.create_connection(std::move(factory6), udp.get());
  } catch (const qi::ValueError& e) {
    what = e.what();
  }
  EXPECT_EQ(what, "create_connection: fd " + std::to_string(udp.get()) +
                      " is not a stream socket (SOCK_STREAM); use create_datagram_endpoint for datagrams");
  auto [ours, theirs] = unix_pair();  // ours is blocking: the transport makes it non-blocking
  auto log = std::make_shared<Log>();
  auto factory7 = recorder(log);  // named: g++ 12 destroys a lambda temporary of a co_await twice
  auto [t, proto] = co_await loop.create_connection(std::move(factory7), ours.release());
  send_all(theirs.get(), "hi");
  co_await log->until([&] { return log->data == "hi"; });
  t->close();
  co_await log->until([&] { return log->lost > 0; });
}

// A protocol factory that returns null: qi::ValueError naming the fix, the
// socket create_connection opened closed (FdLeakCheck).
QILOOP_TEST_MODES(CreateConnection, AFactoryReturningNullIsRefused) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  Fd lsn = listener(qi::SocketAddress::ip("127.0.0.1", 0));
  auto null_factory = [] { return std::unique_ptr<Recorder>(); };  // named: g++ 12 destroys a lambda temporary
  std::string what;
  try {
    (void)co_await loop.create_connection(std::move(null_factory), "127.0.0.1", sockname(lsn.get()).port());
  } catch (const qi::ValueError& e) {
    what = e.what();
  }
  EXPECT_EQ(what, "create_connection: the protocol factory returned null; return a new protocol (std::make_unique)");
}

QILOOP_TEST_MODES(CreateConnection, AThrowingConnectionMadePropagatesAndConnectionLostFollows) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto [ours, theirs] = unix_pair();
  auto log = std::make_shared<Log>();
  struct Refuses : Recorder {
    using Recorder::Recorder;
    void connection_made(qi::Transport& t) override {
      Recorder::connection_made(t);
      throw qi::ValueError("not today");
    }
  };
  auto factory8 = [log] { return std::make_unique<Refuses>(log); };  // named: g++ 12 destroys a lambda temporary of a co_await twice
  EXPECT_THROW((void)co_await loop.create_connection(std::move(factory8), ours.release()),
               qi::ValueError);
  co_await log->until([&] { return log->lost > 0; });
  EXPECT_EQ(what_of(log->error), "not today");
  auto factory9 = [] { return std::unique_ptr<Recorder>(); };  // named: g++ 12 destroys a lambda temporary of a co_await twice
  EXPECT_THROW((void)co_await loop.create_connection(std::move(factory9), theirs.release()),
               qi::ValueError)
      << "a factory returning null";
}

}  // namespace

// --- Hostile round (attack-i10) ---------------------------------------------------------

#ifndef __SANITIZE_ADDRESS__  // FewFds: see transport_peers.h
namespace {

// create_connection (happy eyeballs on) and create_server while only 0..4
// fds are free: each works or throws an OSError; nothing is left open.
QILOOP_TEST_MODES(CreateConnection, HostileWithFewFdsLeft) {
  auto& loop = qi::get_running_loop();
  Fd listening = listener(qi::SocketAddress::ip("127.0.0.1", 0));
  const uint16_t port = sockname(listening.get()).port();
  ::fcntl(listening.get(), F_SETFL, O_NONBLOCK);  // the accept below never waits
  for (int free = 0; free <= 4; ++free) {
    SCOPED_TRACE("free fds: " + std::to_string(free));
    FdLeakCheck leaks;
    auto log = std::make_shared<Log>();
    qi::Transport* t = nullptr;
    std::string error;
    {
      FewFds few(listening.get(), free);
      qi::ConnectOptions o;
      o.happy_eyeballs_delay = 1ms;
      auto factory = recorder(log);
      try {
        t = (co_await loop.create_connection(std::move(factory), "127.0.0.1", port, std::move(o))).first;
      } catch (const qi::OSError& e) {
        error = e.what();
      }
      try {
        auto echo_factory = recorder(std::make_shared<Log>());
        qi::Server s = co_await loop.create_server(std::move(echo_factory), "127.0.0.1", 0);
        s.close();
        co_await s.wait_closed();
      } catch (const qi::OSError&) {
      }
    }
    if (t) {
      t->close();
      co_await log->until([&] { return log->lost > 0; });
    } else {
      EXPECT_FALSE(error.empty());
    }
    Fd accepted(::accept4(listening.get(), nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC));
  }
}

}  // namespace
#endif
