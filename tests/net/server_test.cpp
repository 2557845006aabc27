// loop.create_server / create_unix_server and qi::Server, against clients
// that are not qiloop: blocking POSIX sockets (on the default executor's
// threads through qi::to_thread, or connecting on the loop's thread, which
// never blocks on loopback) and a Python 3 asyncio client. Loopback only.
// Real time unless a test needs the loop's clock (QILOOP_TEST_MODES_VT);
// every peer socket times out, and the kit's watchdog ends a stuck body.
#include "net/transport_peers.h"

#include <qiloop/net/server.h>
#include <qiloop/task.h>
#include <qiloop/testing.h>
#include <qiloop/threads/to_thread.h>

#include <gtest/gtest.h>

#include <netinet/tcp.h>
#include <sys/stat.h>

#include <cstdio>
#include <cstdlib>
#include <set>

using namespace std::chrono_literals;
using namespace peers;

namespace {

// An echo protocol recording into log (every connection of a server shares it).
auto echo(std::shared_ptr<Log> log) {
  return recorder(std::move(log), [](Recorder& r) {
    r.on_data = [](Recorder& self, QByteArrayView d) { self.transport->write(d); };
  });
}

// what() of the E that awaiting `a` (a Coro, or a copy of a Task) throws;
// nullopt when it returns.
template <class E, class A>
qi::Coro<std::optional<std::string>> error_of(A a) {
  std::optional<std::string> what;
  try {
    co_await std::move(a);
  } catch (const E& e) {
    what = e.what();
  }
  co_return what;
}

// An echo server on 127.0.0.1 (a free port) recording into log.
qi::Coro<qi::Server> echo_server(std::shared_ptr<Log> log, qi::ServerOptions options = {}) {
  auto factory = echo(std::move(log));
  co_return co_await qi::get_running_loop().create_server(std::move(factory), "127.0.0.1", 0, std::move(options));
}

// What a blocking client sending msg to `at` gets back (echo_once), from a
// worker thread.
qi::Coro<std::string> echoed(qi::SocketAddress at, std::string msg) {
  auto client = [at, msg] { return echo_once(at, msg); };
  co_return co_await qi::to_thread(std::move(client));
}

bool contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

// The reports the exception handler receives, until the guard goes.
struct Reports {
  std::vector<std::string> messages;
  std::vector<std::exception_ptr> errors;
  qi::Event arrived;  // set by each report
  explicit Reports(QiEventLoop& loop) : loop_(loop) {
    loop.set_exception_handler([this](QiEventLoop&, const qi::ExceptionContext& c) {
      messages.push_back(c.message);
      errors.push_back(c.exception);
      arrived.set();
    });
  }
  ~Reports() { loop_.set_exception_handler(nullptr); }

 private:
  QiEventLoop& loop_;
};

// --- Echo over each family ----------------------------------------------------------------

QILOOP_TEST_MODES(Server, EchoOverIpv4) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  int nodelay = -1;
  auto factory = recorder(log, [&](Recorder& r) {
    r.on_data = [&](Recorder& self, QByteArrayView d) {
      socklen_t len = sizeof nodelay;
      ::getsockopt(self.transport->fileno(), IPPROTO_TCP, TCP_NODELAY, &nodelay, &len);
      self.transport->write(d);
    };
  });
  qi::Server server = co_await loop.create_server(std::move(factory), "127.0.0.1", 0);
  EXPECT_TRUE(server.is_serving());
  EXPECT_EQ(&server.get_loop(), &loop);
  QILOOP_CO_ASSERT(ASSERT_EQ(server.sockets().size(), 1u));
  qi::SocketAddress at = server.sockets().at(0);
  EXPECT_EQ(at.host(), "127.0.0.1");
  EXPECT_NE(at.port(), 0) << "port 0 picks a free port";
  EXPECT_EQ(sockname(server.filenos().at(0)), at);
  EXPECT_EQ(co_await echoed(at, "hello server"), "hello server");
  EXPECT_NE(nodelay, 0) << "accepted TCP connections get TCP_NODELAY";
  co_await log->until([&] { return log->lost == 1; });
  EXPECT_EQ(log->made, 1);
  EXPECT_EQ(log->error, nullptr) << what_of(log->error);
  server.close();
  EXPECT_FALSE(server.is_serving());
  EXPECT_TRUE(server.sockets().empty()) << "a closed server lists no socket (asyncio: ())";
  co_await server.wait_closed();
  EXPECT_EQ(connect_errno(at), ECONNREFUSED);
}

TRANSPORT_TEST_MODES_IF(Server, EchoOverIpv6, ipv6_loopback() ? "" : "no IPv6 loopback") {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  auto factory = echo(log);
  qi::Server server = co_await loop.create_server(std::move(factory), "::1", 0);
  qi::SocketAddress at = server.sockets().at(0);
  EXPECT_EQ(at.family(), AF_INET6);
  EXPECT_EQ(at.host(), "::1");
  EXPECT_EQ(co_await echoed(at, "over six"), "over six");
  server.close();
  co_await log->until([&] { return log->lost == 1; });
  co_await server.wait_closed();
}

QILOOP_TEST_MODES(Server, EchoOverUnixAndTheSocketFileIsRemovedOnClose) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  std::string dir = temp_dir();
  std::string path = dir + "/echo.sock";
  auto log = std::make_shared<Log>();
  auto factory = echo(log);
  qi::Server server = co_await loop.create_unix_server(std::move(factory), path);
  QILOOP_CO_ASSERT(ASSERT_EQ(server.sockets().size(), 1u));
  EXPECT_EQ(server.sockets()[0], qi::SocketAddress::unix_path(path));
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_TRUE(S_ISSOCK(st.st_mode));
  qi::SocketAddress at = qi::SocketAddress::unix_path(path);
  EXPECT_EQ(co_await echoed(at, "over unix"), "over unix");
  server.close();
  EXPECT_NE(::stat(path.c_str(), &st), 0) << "cleanup_socket: close() removes the socket file";
  co_await log->until([&] { return log->lost == 1; });
  co_await server.wait_closed();
  ::rmdir(dir.c_str());
}

QILOOP_TEST_MODES(Server, UnixAbstractName) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  std::string name = std::string(1, '\0') + "qiloop-server-test-" + std::to_string(::getpid());
  auto log = std::make_shared<Log>();
  auto factory = echo(log);
  qi::Server server = co_await loop.create_unix_server(std::move(factory), name);
  EXPECT_TRUE(server.sockets().at(0).is_abstract());
  qi::SocketAddress at = qi::SocketAddress::unix_path(name);
  EXPECT_EQ(co_await echoed(at, "abstract"), "abstract");
  server.close();
  co_await log->until([&] { return log->lost == 1; });
  co_await server.wait_closed();
}

// A socket file left behind (its server gone) is replaced; a file of
// another kind is refused, and left alone.
QILOOP_TEST_MODES(Server, UnixStaleSocketFileIsReplacedOtherFilesAreRefused) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  std::string dir = temp_dir();
  std::string stale = dir + "/stale.sock";
  {
    Fd old(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    auto a = qi::SocketAddress::unix_path(stale);
    QILOOP_CO_ASSERT(ASSERT_EQ(::bind(old.get(), a.native(), a.size()), 0));
  }  // closed: the file stays, nobody listens
  auto log = std::make_shared<Log>();
  auto factory = echo(log);
  qi::Server server = co_await loop.create_unix_server(std::move(factory), stale);
  auto at = qi::SocketAddress::unix_path(stale);
  EXPECT_EQ(co_await echoed(at, "fresh"), "fresh");
  server.close();
  co_await log->until([&] { return log->lost == 1; });

  std::string regular = dir + "/regular";
  std::FILE* f = std::fopen(regular.c_str(), "w");
  std::fclose(f);
  int code = 0;
  std::string what;
  try {
    auto factory2 = echo(log);
    co_await loop.create_unix_server(std::move(factory2), regular);
  } catch (const qi::OSError& e) {
    code = e.code();
    what = e.what();
  }
  EXPECT_EQ(code, EADDRINUSE);
  EXPECT_TRUE(contains(what, regular) && contains(what, "not a socket")) << what;
  struct stat st;
  EXPECT_EQ(::stat(regular.c_str(), &st), 0) << "the file is left alone";
  EXPECT_TRUE(S_ISREG(st.st_mode));
  ::unlink(regular.c_str());
  ::rmdir(dir.c_str());
}

// A socket file replaced after the server made it is not the server's to
// remove (asyncio 3.13's cleanup_socket); cleanup_socket = false keeps it.
QILOOP_TEST_MODES(Server, UnixCleanupLeavesAReplacedFileAndCanBeTurnedOff) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  std::string dir = temp_dir();
  std::string path = dir + "/s.sock";
  auto log = std::make_shared<Log>();
  auto f1 = echo(log);
  qi::UnixServerOptions keep{.cleanup_socket = false};
  qi::Server a = co_await loop.create_unix_server(std::move(f1), path, keep);
  a.close();
  struct stat st;
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << "cleanup_socket = false leaves the file";
  auto f2 = echo(log);
  qi::Server b = co_await loop.create_unix_server(std::move(f2), path);
  ::unlink(path.c_str());
  std::FILE* f = std::fopen(path.c_str(), "w");  // someone else's file now
  std::fclose(f);
  b.close();
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << "a file that replaced the socket is not removed";
  ::unlink(path.c_str());
  ::rmdir(dir.c_str());
}

// --- Several sockets, several connections --------------------------------------------------

QILOOP_TEST_MODES(Server, SeveralConnectionsAtOnce) {
  FdLeakCheck leaks;
  auto log = std::make_shared<Log>();
  qi::Server server = co_await echo_server(log);
  qi::SocketAddress at = server.sockets().at(0);
  constexpr int kClients = 8;
  // All connected before any sends: the server holds them open together.
  std::vector<Fd> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(connect_client(at));
  auto talk = [&clients] {
    std::vector<std::string> got;
    for (std::size_t i = 0; i < clients.size(); ++i) send_all(clients[i].get(), "client " + std::to_string(i) + ";");
    for (std::size_t i = 0; i < clients.size(); ++i)
      got.push_back(recv_exactly(clients[i].get(), ("client " + std::to_string(i) + ";").size()));
    return got;
  };
  std::vector<std::string> got = co_await qi::to_thread(std::move(talk));
  for (int i = 0; i < kClients; ++i) EXPECT_EQ(got[static_cast<std::size_t>(i)], "client " + std::to_string(i) + ";");
  EXPECT_EQ(log->made, kClients);
  EXPECT_EQ(log->lost, 0);
  clients.clear();
  co_await log->until([&] { return log->lost == kClients; });
  server.close();
  co_await server.wait_closed();
}

// A burst of connections queued before the loop looks is taken in one
// callback (up to backlog), each with its own protocol.
QILOOP_TEST_MODES(Server, AQueuedBurstIsAcceptedInOneGo) {
  FdLeakCheck leaks;
  auto log = std::make_shared<Log>();
  qi::Server server = co_await echo_server(log);
  qi::SocketAddress at = server.sockets().at(0);
  std::vector<Fd> clients;
  for (int i = 0; i < 20; ++i) clients.push_back(connect_client(at));  // the loop does not run meanwhile
  co_await qi::sleep(0);
  co_await qi::sleep(0);
  EXPECT_EQ(log->made, 20) << "one readiness accepts every queued connection";
  clients.clear();
  co_await log->until([&] { return log->lost == 20; });
  server.close();
  co_await server.wait_closed();
}

QILOOP_TEST_MODES(Server, EmptyHostListensOnIpv4AndIpv6) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  if (!ipv6_loopback()) co_return;  // one family only: nothing dual to test
  auto log = std::make_shared<Log>();
  auto factory = echo(log);
  qi::Server server = co_await loop.create_server(std::move(factory), "", 0);
  std::vector<qi::SocketAddress> socks = server.sockets();
  QILOOP_CO_ASSERT(ASSERT_EQ(socks.size(), 2u));
  std::set<int> families{socks[0].family(), socks[1].family()};
  EXPECT_EQ(families, (std::set<int>{AF_INET, AF_INET6}));
  for (std::size_t i = 0; i < socks.size(); ++i) {
    EXPECT_EQ(socks[i].host(), socks[i].family() == AF_INET ? "0.0.0.0" : "::");
    if (socks[i].family() == AF_INET6) {
      int v6only = 0;
      socklen_t len = sizeof v6only;
      ::getsockopt(server.filenos()[i], IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len);
      EXPECT_NE(v6only, 0) << "the IPv6 socket is IPv6 only (asyncio), IPv4 has its own";
    }
  }
  for (const qi::SocketAddress& s : socks) {
    auto to = qi::SocketAddress::ip(s.family() == AF_INET ? "127.0.0.1" : "::1", s.port());
    EXPECT_EQ(co_await echoed(to, "dual " + to.to_string()), "dual " + to.to_string());
  }
  co_await log->until([&] { return log->lost == 2; });
  server.close();
  co_await server.wait_closed();
}

QILOOP_TEST_MODES(Server, AListOfHostsAndANameGiveASocketEach) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  auto f1 = echo(log);
  std::vector<std::string> hosts{"127.0.0.1", "127.0.0.2", "127.0.0.1"};
  qi::Server server = co_await loop.create_server(std::move(f1), hosts, 0);
  std::vector<qi::SocketAddress> socks = server.sockets();
  QILOOP_CO_ASSERT(ASSERT_EQ(socks.size(), 2u) << "a repeated address is bound once");
  EXPECT_EQ(socks[0].host(), "127.0.0.1");
  EXPECT_EQ(socks[1].host(), "127.0.0.2");
  for (const qi::SocketAddress& s : socks) {
    EXPECT_EQ(co_await echoed(s, "to " + s.to_string()), "to " + s.to_string());
  }
  server.close();
  // A name, resolved with loop.getaddrinfo (on the executor).
  auto f2 = echo(log);
  qi::ServerOptions ipv4{.family = AF_INET};  // named: g++ 12 mishandles braced temporaries in a co_await
  qi::Server named = co_await loop.create_server(std::move(f2), "localhost", 0, ipv4);
  QILOOP_CO_ASSERT(ASSERT_FALSE(named.sockets().empty()));
  EXPECT_EQ(named.sockets()[0].host(), "127.0.0.1");
  named.close();
  co_await log->until([&] { return log->lost == 2; });
  co_await server.wait_closed();
  co_await named.wait_closed();
}

QILOOP_TEST_MODES(Server, ReusePortLetsTwoServersShareAPort) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log_a = std::make_shared<Log>();
  auto log_b = std::make_shared<Log>();
  auto fa = echo(log_a);
  auto fb = echo(log_b);
  qi::ServerOptions shared{.reuse_port = true};
  qi::Server a = co_await loop.create_server(std::move(fa), "127.0.0.1", 0, shared);
  uint16_t port = a.sockets().at(0).port();
  qi::Server b = co_await loop.create_server(std::move(fb), "127.0.0.1", port, shared);
  EXPECT_EQ(b.sockets().at(0).port(), port);
  int reuse = 0;
  socklen_t len = sizeof reuse;
  ::getsockopt(b.filenos()[0], SOL_SOCKET, SO_REUSEPORT, &reuse, &len);
  EXPECT_NE(reuse, 0);
  auto at = qi::SocketAddress::ip("127.0.0.1", port);
  auto clients = [at] {
    int ok = 0;
    for (int i = 0; i < 16; ++i) ok += echo_once(at, "shared") == "shared";
    return ok;
  };
  EXPECT_EQ(co_await qi::to_thread(std::move(clients)), 16);
  co_await log_a->until([&] { return log_a->lost + log_b->lost == 16; });
  EXPECT_EQ(log_a->made + log_b->made, 16) << "the kernel spreads the connections over both servers";
  a.close();
  b.close();
  co_await a.wait_closed();
  co_await b.wait_closed();
}

// --- Bad input --------------------------------------------------------------------------------

QILOOP_TEST_MODES(Server, APortInUseIsEaddrinuseNamingTheAddress) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  qi::Server a = co_await echo_server(log);
  uint16_t port = a.sockets().at(0).port();
  int code = 0;
  std::string what;
  try {
    auto f2 = echo(log);
    co_await loop.create_server(std::move(f2), "127.0.0.1", port);
  } catch (const qi::OSError& e) {
    code = e.code();
    what = e.what();
  }
  EXPECT_EQ(code, EADDRINUSE);
  EXPECT_TRUE(contains(what, "127.0.0.1:" + std::to_string(port))) << what;
  EXPECT_TRUE(contains(what, "EADDRINUSE")) << what;
  a.close();
  co_await a.wait_closed();
}

QILOOP_TEST_MODES(Server, AnUnresolvableHostIsAGaiError) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  auto f = echo(log);
  auto what = co_await error_of<qi::GaiError>(loop.create_server(std::move(f), "no-such-host.invalid", 0));
  EXPECT_TRUE(what.has_value()) << "create_server of an unresolvable host throws qi::GaiError";
}

QILOOP_TEST_MODES(Server, AnEmptyHandleAndANonStreamSocketAreRefused) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  qi::Server empty;
  const std::string empty_handle =
      "qi::Server: an empty handle (default-constructed or moved from); assign it the result of loop.create_server "
      "first";
  try {
    empty.close();
    ADD_FAILURE() << "close() of an empty handle was accepted";
  } catch (const qi::RuntimeError& e) {
    EXPECT_EQ(e.what(), empty_handle);
  }
  try {
    (void)empty.sockets();
    ADD_FAILURE() << "sockets() of an empty handle was accepted";
  } catch (const qi::RuntimeError& e) {
    EXPECT_EQ(e.what(), empty_handle);
  }
  Fd udp(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  auto log = std::make_shared<Log>();
  auto f = echo(log);
  auto what = co_await error_of<qi::ValueError>(loop.create_server(std::move(f), udp.get()));
  QILOOP_CO_ASSERT(ASSERT_TRUE(what.has_value()));
  EXPECT_TRUE(contains(*what, "create_server: fd " + std::to_string(udp.get()) +
                               " is not a stream socket (SOCK_STREAM) but a datagram socket (SOCK_DGRAM); a server "
                               "listens on stream sockets"))
      << *what;
}

QILOOP_TEST_MODES(Server, OptionsReachTheListeningSockets) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  auto f1 = echo(log);
  qi::Server plain = co_await loop.create_server(std::move(f1), "127.0.0.1", 0);
  auto flag = [](int fd, int option) {
    int v = 0;
    socklen_t len = sizeof v;
    ::getsockopt(fd, SOL_SOCKET, option, &v, &len);
    return v != 0;
  };
  EXPECT_TRUE(flag(plain.filenos()[0], SO_REUSEADDR)) << "reuse_address is on by default (POSIX)";
  EXPECT_FALSE(flag(plain.filenos()[0], SO_REUSEPORT));
  EXPECT_FALSE(flag(plain.filenos()[0], SO_KEEPALIVE));
  auto f2 = echo(log);
  qi::ServerOptions options{.reuse_address = false, .keep_alive = true};
  qi::Server tuned = co_await loop.create_server(std::move(f2), "127.0.0.1", 0, options);
  EXPECT_FALSE(flag(tuned.filenos()[0], SO_REUSEADDR));
  EXPECT_TRUE(flag(tuned.filenos()[0], SO_KEEPALIVE));
  auto f3 = echo(log);
  qi::ServerOptions negative{.backlog = -1};
  auto what = co_await error_of<qi::ValueError>(loop.create_server(std::move(f3), "127.0.0.1", 0, negative));
  EXPECT_EQ(what.value_or("(accepted)"), "create_server: backlog is negative; pass 0 or more (100 by default)");
  plain.close();
  tuned.close();
}

// Cancelled while the name resolves (on the executor): no socket was open yet, none leaks.
QILOOP_TEST_MODES(Server, CancellingCreateServerWhileResolvingLeavesNothing) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  auto f = echo(log);
  auto making = loop.create_task(loop.create_server(std::move(f), "localhost", 0));
  co_await qi::sleep(0);
  co_await qi::sleep(0);
  EXPECT_FALSE(making.done()) << "the resolver runs on the executor";
  making.cancel();
  EXPECT_TRUE(co_await error_of<qi::CancelledError>(making));
  // Cancelled in its last step (bound, serving, yielding once): it closes
  // the server it made, whose handle nobody could get.
  auto f2 = echo(log);
  auto last_step = loop.create_task(loop.create_server(std::move(f2), "127.0.0.1", 0));
  co_await qi::sleep(0);
  EXPECT_FALSE(last_step.done());
  last_step.cancel();
  EXPECT_TRUE(co_await error_of<qi::CancelledError>(last_step));
  EXPECT_EQ(count_fds(), leaks.before) << "no listening socket is left open";
}

// --- Adopting a socket; a factory of qi::BaseProtocol (what start_server builds) -----------

QILOOP_TEST_MODES(Server, AdoptsAListeningSocketAndTakesABaseProtocolFactory) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  Fd lsn = listener(qi::SocketAddress::ip("127.0.0.1", 0));
  qi::SocketAddress at = sockname(lsn.get());
  auto log = std::make_shared<Log>();
  auto typed = echo(log);
  auto erased = [typed]() mutable -> std::unique_ptr<qi::BaseProtocol> { return typed(); };
  qi::Server server = co_await loop.create_server(std::move(erased), lsn.release());
  EXPECT_EQ(server.sockets().at(0), at);
  EXPECT_EQ(co_await echoed(at, "adopted"), "adopted");
  co_await log->until([&] { return log->lost == 1; });
  server.close();  // closes the adopted fd (the leak check says so)
  co_await server.wait_closed();
}

// --- close(), wait_closed(), the clients ------------------------------------------------------

QILOOP_TEST_MODES(Server, CloseRefusesNewConnectionsWhileOldOnesGoOnAndWaitClosedWaitsForThem) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  qi::Server server = co_await echo_server(log);
  qi::SocketAddress at = server.sockets().at(0);
  Fd old = connect_client(at);
  co_await log->until([&] { return log->made == 1; });
  auto waiting = loop.create_task(server.wait_closed());
  co_await qi::sleep(10ms);
  EXPECT_FALSE(waiting.done()) << "wait_closed waits for close() too";
  server.close();
  server.close();  // idempotent
  EXPECT_EQ(connect_errno(at), ECONNREFUSED) << "closed: no new connection";
  int fd = old.get();
  auto ping = [fd] {
    send_all(fd, "still here");
    return recv_exactly(fd, 10);
  };
  EXPECT_EQ(co_await qi::to_thread(std::move(ping)), "still here") << "accepted connections go on";
  co_await qi::sleep(10ms);
  EXPECT_FALSE(waiting.done()) << "wait_closed waits for the open connection";
  old.reset();
  co_await waiting;
  EXPECT_EQ(log->lost, 1) << "wait_closed returned after connection_lost";
  co_await server.wait_closed();  // at once now
}

QILOOP_TEST_MODES(Server, CloseClientsFlushesAndAbortClientsDropsEveryConnection) {
  FdLeakCheck leaks;
  auto log = std::make_shared<Log>();
  qi::Server server = co_await echo_server(log);
  qi::SocketAddress at = server.sockets().at(0);
  std::vector<Fd> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(connect_client(at));
  co_await log->until([&] { return log->made == 3; });
  server.close_clients();
  co_await log->until([&] { return log->lost == 3; });
  for (Fd& c : clients) EXPECT_EQ(read_all(c.get()), "") << "the client reads EOF";
  EXPECT_TRUE(server.is_serving()) << "close_clients() leaves the server serving";
  clients.clear();
  for (int i = 0; i < 2; ++i) clients.push_back(connect_client(at));
  co_await log->until([&] { return log->made == 5; });
  server.abort_clients();
  co_await log->until([&] { return log->lost == 5; });
  for (Fd& c : clients) EXPECT_EQ(read_all(c.get()), "");
  server.close();
  co_await server.wait_closed();
}

QILOOP_TEST_MODES(Server, WaitClosedIsCancellable) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  qi::Server server = co_await echo_server(log);
  auto waiting = loop.create_task(server.wait_closed());
  co_await qi::sleep(0);
  waiting.cancel();
  EXPECT_TRUE(co_await error_of<qi::CancelledError>(waiting));
  EXPECT_TRUE(waiting.cancelled());
  server.close();
  co_await server.wait_closed();
}

// --- serve_forever, start_serving ----------------------------------------------------------

QILOOP_TEST_MODES(Server, CancellingServeForeverClosesTheServer) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  qi::ServerOptions later{.start_serving = false};
  qi::Server server = co_await echo_server(log, later);
  qi::SocketAddress at = server.sockets().at(0);
  auto serving = loop.create_task(server.serve_forever());
  co_await qi::sleep(0);
  EXPECT_TRUE(server.is_serving());
  EXPECT_EQ(co_await echoed(at, "serving"), "serving");
  auto twice = co_await error_of<qi::RuntimeError>(server.serve_forever());
  QILOOP_CO_ASSERT(ASSERT_TRUE(twice.has_value()) << "a second serve_forever throws");
  EXPECT_TRUE(contains(*twice, "already being awaited")) << *twice;
  co_await log->until([&] { return log->lost == 1; });
  serving.cancel();
  EXPECT_TRUE(co_await error_of<qi::CancelledError>(serving));
  EXPECT_TRUE(serving.cancelled());
  EXPECT_FALSE(server.is_serving());
  EXPECT_TRUE(server.sockets().empty()) << "cancelling serve_forever closed the server";
  EXPECT_EQ(connect_errno(at), ECONNREFUSED);
  auto after = co_await error_of<qi::RuntimeError>(server.serve_forever());
  EXPECT_EQ(after.value_or("(returned)"),
            "serve_forever: the server is closed; create a new server (loop.create_server)");
  after = co_await error_of<qi::RuntimeError>(server.start_serving());
  EXPECT_EQ(after.value_or("(returned)"),
            "start_serving: the server is closed; create a new server (loop.create_server)");
  EXPECT_EQ(connect_errno(at), ECONNREFUSED) << "a closed server does not listen again";
}

// A server factory of qi::BaseProtocol (checked at each call) that returns
// null, or a protocol that is neither a qi::Protocol nor a
// qi::BufferedProtocol: the connection is closed and the ValueError, naming
// the fix, reported; the server goes on.
QILOOP_TEST_MODES(Server, AFactoryReturningNullOrAPlainBaseProtocolIsReportedAndTheServerGoesOn) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  Reports reports(loop);
  struct Plain : qi::BaseProtocol {};
  auto log = std::make_shared<Log>();
  int calls = 0;
  auto factory = [&calls, log]() -> std::unique_ptr<qi::BaseProtocol> {
    ++calls;
    if (calls == 1) return nullptr;
    if (calls == 2) return std::make_unique<Plain>();
    return echo(log)();
  };
  qi::Server server = co_await loop.create_server(std::move(factory), "127.0.0.1", 0);
  const qi::SocketAddress at = server.sockets().at(0);
  for (int i = 0; i < 2; ++i) {
    Fd client = connect_client(at);
    auto read_eof = [fd = client.get()] { return read_all(fd); };
    EXPECT_EQ(co_await qi::to_thread(std::move(read_eof)), "") << "the connection is closed at once";
  }
  QILOOP_CO_ASSERT(ASSERT_EQ(reports.messages.size(), 2u));
  const std::string expected[] = {
      "create_server: the protocol factory returned null; return a new protocol (std::make_unique)",
      "create_server: the protocol factory returned a qi::BaseProtocol that is neither a qi::Protocol nor a "
      "qi::BufferedProtocol; derive the protocol from one of them"};
  for (int i = 0; i < 2; ++i) {
    EXPECT_TRUE(contains(reports.messages[i], "Error on transport creation for incoming connection"))
        << reports.messages[i];
    EXPECT_TRUE(holds<qi::ValueError>(reports.errors[i]));
    EXPECT_EQ(what_of(reports.errors[i]), expected[i]);
  }
  EXPECT_EQ(co_await echoed(at, "still served"), "still served");
  server.close();
  co_await server.wait_closed();
  EXPECT_EQ(log->made, 1);
}

// asyncio: close() cancels serve_forever's future; serve_forever waits for
// the connections, then throws CancelledError.
QILOOP_TEST_MODES(Server, CloseEndsServeForeverWhenItsConnectionsEnd) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  qi::Server server = co_await echo_server(log);
  Fd client = connect_client(server.sockets().at(0));
  auto serving = loop.create_task(server.serve_forever());
  co_await log->until([&] { return log->made == 1; });
  server.close();
  co_await qi::sleep(10ms);
  EXPECT_FALSE(serving.done()) << "serve_forever waits for the connection";
  client.reset();
  EXPECT_TRUE(co_await error_of<qi::CancelledError>(serving)) << "serve_forever ends with CancelledError";
  EXPECT_TRUE(serving.cancelled());
  EXPECT_EQ(log->lost, 1);
}

QILOOP_TEST_MODES(Server, StartServingFalseRefusesUntilStartServing) {
  FdLeakCheck leaks;
  auto log = std::make_shared<Log>();
  qi::ServerOptions later{.start_serving = false};
  qi::Server server = co_await echo_server(log, later);
  EXPECT_FALSE(server.is_serving());
  qi::SocketAddress at = server.sockets().at(0);
  EXPECT_NE(at.port(), 0) << "bound already";
  EXPECT_EQ(connect_errno(at), ECONNREFUSED) << "not listening before start_serving";
  co_await server.start_serving();
  EXPECT_TRUE(server.is_serving());
  co_await server.start_serving();  // a no-op when serving
  EXPECT_EQ(co_await echoed(at, "started"), "started");
  co_await log->until([&] { return log->lost == 1; });
  server.close();
  auto after = co_await error_of<qi::RuntimeError>(server.start_serving());
  EXPECT_TRUE(after.has_value() && contains(*after, "closed")) << after.value_or("(returned)");
  co_await server.wait_closed();
}

// --- Faults --------------------------------------------------------------------------------

QILOOP_TEST_MODES(Server, AFactoryThatThrowsIsReportedAndTheServerGoesOn) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  Reports reports(loop);
  auto log = std::make_shared<Log>();
  int calls = 0;
  auto inner = echo(log);
  auto factory = [&calls, inner]() mutable {
    if (++calls == 1) throw std::runtime_error("no protocol for you");
    return inner();
  };
  qi::Server server = co_await loop.create_server(std::move(factory), "127.0.0.1", 0);
  qi::SocketAddress at = server.sockets().at(0);
  EXPECT_EQ(co_await echoed(at, "first"), "") << "that connection is closed: EOF";
  QILOOP_CO_ASSERT(ASSERT_EQ(reports.messages.size(), 1u));
  EXPECT_TRUE(contains(reports.messages[0], "Error on transport creation for incoming connection"))
      << reports.messages[0];
  EXPECT_EQ(what_of(reports.errors[0]), "no protocol for you");
  EXPECT_EQ(co_await echoed(at, "second"), "second") << "the server keeps serving";
  co_await log->until([&] { return log->lost == 1; });
  server.close();
  co_await server.wait_closed();
}

// The factory may close the server, dropping the last handle: the accept
// callback under way stops at once and the state lives until it returns.
QILOOP_TEST_MODES(Server, AFactoryThatClosesTheServer) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  auto holder = std::make_shared<std::optional<qi::Server>>();
  auto inner = echo(log);
  auto factory = [holder, inner]() mutable {
    if (*holder) {
      (*holder)->close();
      holder->reset();  // the last handle
    }
    return inner();
  };
  qi::Server server = co_await loop.create_server(std::move(factory), "127.0.0.1", 0);
  qi::SocketAddress at = server.sockets().at(0);
  *holder = server;
  server = qi::Server();
  std::vector<Fd> clients;
  for (int i = 0; i < 3; ++i) clients.push_back(connect_client(at));  // queued together
  co_await log->until([&] { return log->made == 1; });
  co_await qi::sleep(10ms);
  EXPECT_EQ(log->made, 1) << "no accept after close()";
  EXPECT_EQ(connect_errno(at), ECONNREFUSED);
  clients.clear();
  co_await log->until([&] { return log->lost == 1; });
}

// Not under the asan-ubsan preset (GCC defines __SANITIZE_ADDRESS__ there):
// UBSan's vptr check probes memory through a pipe, which a process out of
// fds cannot make, so it reports every virtual call as made on an invalid
// object. The plain, clang, portable and TSan builds run it.
#ifndef __SANITIZE_ADDRESS__
// Virtual time: the second of rest passes on the loop's clock.
QILOOP_TEST_MODES_VT(Server, OutOfFdsRestsASecondThenServes) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  Reports reports(loop);
  auto log = std::make_shared<Log>();
  qi::Server server = co_await echo_server(log);
  qi::SocketAddress at = server.sockets().at(0);
  Fd client = connect_client(at);  // queued: the loop has not run since
  ::fcntl(client.get(), F_SETFL, ::fcntl(client.get(), F_GETFL) | O_NONBLOCK);
  auto t0 = loop.time();
  {
    // Not below the fds open: poll(2), which the portable backend's Qt
    // dispatcher uses, fails with EINVAL when it watches more fds than the
    // limit.
    FewFds no_fds(client.get(), 0);  // every new fd fails with EMFILE until it goes
    co_await reports.arrived.wait();  // the accept fails (the portable backend sees the fd a slice later)
  }
  QILOOP_CO_ASSERT(ASSERT_EQ(reports.messages.size(), 1u));
  EXPECT_TRUE(contains(reports.messages[0], "socket.accept() out of system resource")) << reports.messages[0];
  EXPECT_EQ(code_of(reports.errors[0]), EMFILE) << what_of(reports.errors[0]);
  EXPECT_EQ(log->made, 0);
  EXPECT_TRUE(server.is_serving()) << "the server is alive";
  co_await log->until([&] { return log->made == 1; });
  EXPECT_GE(loop.time() - t0, 1s) << "accepting rested a second (asyncio's ACCEPT_RETRY_DELAY)";
  EXPECT_LT(loop.time() - t0, 2s);
  co_await loop.sock_sendall(client.get(), "after the rest");
  QByteArray back = co_await loop.sock_recv(client.get(), 100);
  EXPECT_EQ(back, "after the rest");
  client.reset();
  co_await log->until([&] { return log->lost == 1; });
  EXPECT_EQ(reports.messages.size(), 1u);
  server.close();
  co_await server.wait_closed();
}
#endif  // __SANITIZE_ADDRESS__

// --- Lifetime ------------------------------------------------------------------------------

// asyncio: the loop's accept callback keeps the server; dropping every
// handle does not close it.
// (No FdLeakCheck: the server is still open when the body ends; the kit's
// loop.close() closes it, as LoopCloseClosesAnOpenServerWithoutLeakingFds
// checks.)
QILOOP_TEST_MODES(Server, DroppingTheHandleKeepsServing) {
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  auto factory = echo(log);
  qi::SocketAddress at;
  qi::Server later;
  {
    qi::Server server = co_await loop.create_server(std::move(factory), "127.0.0.1", 0);
    at = server.sockets().at(0);
    later = server;  // a copy refers to the same server
  }
  EXPECT_TRUE(later.is_serving());
  later = qi::Server();
  EXPECT_EQ(co_await echoed(at, "no handle"), "no handle");
  co_await log->until([&] { return log->lost == 1; });
  EXPECT_EQ(co_await echoed(at, "still serving"), "still serving");
  co_await log->until([&] { return log->lost == 2; });
}

// loop.close() closes a server still open: listening fds and the accepted
// connections' fds are closed, the Unix socket file removed.
TEST(Server, LoopCloseClosesAnOpenServerWithoutLeakingFds) {
  FdLeakCheck leaks;
  std::string dir = temp_dir();
  std::string path = dir + "/left-open.sock";
  qi::Server tcp;  // outlives the loop
  qi::SocketAddress at;
  Fd client;
  {
    QiEventLoop loop;
    auto log = std::make_shared<Log>();
    auto make = [&]() -> qi::Coro<void> {
      auto f1 = echo(log);
      tcp = co_await loop.create_server(std::move(f1), "127.0.0.1", 0);
      auto f2 = echo(log);
      co_await loop.create_unix_server(std::move(f2), path);  // no handle kept
      at = tcp.sockets().at(0);
      client = connect_client(at);
      co_await log->until([&] { return log->made == 1; });
    };
    loop.run_until_complete(make());
    loop.close();
    EXPECT_FALSE(tcp.is_serving());
    EXPECT_TRUE(tcp.sockets().empty());
  }
  struct stat st;
  EXPECT_NE(::stat(path.c_str(), &st), 0) << "the Unix socket file was removed";
  EXPECT_EQ(connect_errno(at), ECONNREFUSED);
  EXPECT_EQ(read_all(client.get()), "") << "the accepted connection was closed";
  client.reset();
  ::rmdir(dir.c_str());
}

// --- A Python asyncio client ------------------------------------------------------------------

// Frames of a 4-byte little-endian length and that many bytes, echoed.
constexpr const char* kPythonClient = R"PY(
import asyncio, struct, sys
async def main(port):
    r, w = await asyncio.open_connection('127.0.0.1', port)
    for i in range(200):
        payload = bytes((i * 7 + j) & 0xff for j in range(i * 331))
        w.write(struct.pack('<I', len(payload)) + payload)
        await w.drain()
        n, = struct.unpack('<I', await r.readexactly(4))
        assert n == len(payload), (n, len(payload))
        assert await r.readexactly(n) == payload
    w.close()
    await w.wait_closed()
asyncio.run(asyncio.wait_for(main(int(sys.argv[1])), 20))
)PY";

// Echoes each whole frame back as a frame (writelines: header and body).
struct FrameEcho : qi::Protocol {
  std::shared_ptr<Log> log;
  qi::Transport* t = nullptr;
  QByteArray pending;
  explicit FrameEcho(std::shared_ptr<Log> l) : log(std::move(l)) {}
  void connection_made(qi::Transport& tr) override {
    t = &tr;
    ++log->made;
    log->note("made");
  }
  void data_received(QByteArrayView d) override {
    pending.append(d);
    for (;;) {
      if (pending.size() < 4) return;
      uint32_t n = length_of(pending);
      if (pending.size() < 4 + static_cast<qsizetype>(n)) return;
      t->writelines({QByteArrayView(pending).first(4), QByteArrayView(pending).sliced(4, static_cast<qsizetype>(n))});
      pending.remove(0, 4 + static_cast<qsizetype>(n));
      log->data.append("f");
    }
  }
  void connection_lost(std::exception_ptr e) override {
    ++log->lost;
    log->error = e;
    log->note("lost");
  }
};

TRANSPORT_TEST_MODES_IF(ServerPython, FramesFromAnAsyncioClient, no_python3()) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  auto factory = [log] { return std::make_unique<FrameEcho>(log); };
  qi::Server server = co_await loop.create_server(std::move(factory), "127.0.0.1", 0);
  PythonPeer client(kPythonClient, {std::to_string(server.sockets().at(0).port())});
  EXPECT_EQ(co_await client.exit_status(), 0) << "the asyncio client checked every echoed frame";
  co_await log->until([&] { return log->lost == 1; });
  EXPECT_EQ(log->data.size(), 200) << "200 frames";
  EXPECT_EQ(log->error, nullptr) << what_of(log->error);
  server.close();
  co_await server.wait_closed();
}

}  // namespace

namespace {

// --- Review i10 #9: a listening fd is the server's ---------------------------------------

// sock_* and the fd API on a server's listening socket would take its
// accept handler away (and remove it when the call ends: the server deaf
// for good); refused with qi::RuntimeError, the server goes on accepting.
QILOOP_TEST_MODES(Server, SockCallsOnAListeningFdAreRefused) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  qi::Server server = co_await echo_server(log);
  const int fd = server.filenos().at(0);
  const std::string used = "fd " + std::to_string(fd) + " is the listening socket of a server";
  auto accepting = error_of<qi::RuntimeError>(loop.sock_accept(fd));
  std::optional<std::string> refused = co_await std::move(accepting);
  EXPECT_TRUE(refused && contains(*refused, "sock_accept: " + used)) << refused.value_or("accepted");
  auto receiving = error_of<qi::RuntimeError>(loop.sock_recv(fd, 16));
  refused = co_await std::move(receiving);
  EXPECT_TRUE(refused && contains(*refused, used)) << refused.value_or("accepted");
  int direct = 0;
  for (const char* api : {"add_reader", "add_writer", "remove_reader", "remove_writer"}) {
    try {
      std::string a = api;
      if (a == "add_reader") loop.add_reader(fd, [] {});
      if (a == "add_writer") loop.add_writer(fd, [] {});
      if (a == "remove_reader") (void)loop.remove_reader(fd);
      if (a == "remove_writer") (void)loop.remove_writer(fd);
      ADD_FAILURE() << api << " on a listening fd was accepted";
    } catch (const qi::RuntimeError& e) {
      ++direct;
      EXPECT_TRUE(contains(e.what(), std::string(api) + ": " + used)) << e.what();
      EXPECT_TRUE(contains(e.what(), "close the server before using the fd directly")) << e.what();
    }
  }
  if (direct == 4) {  // else the accept handler is gone
    const qi::SocketAddress at = server.sockets().at(0);
    auto ask = [at] { return echo_once(at, "still served"); };
    EXPECT_EQ(co_await qi::to_thread(std::move(ask)), "still served");
  }
  server.close();
  co_await server.wait_closed();
}

// --- Review i10 #15: a server never half made -------------------------------------------

// A stream socket of a family qiloop cannot read addresses of (AF_VSOCK):
// refused with qi::ValueError naming the fix before the server takes it;
// the fd stays the caller's (it leaked, owned by no one, before).
TRANSPORT_TEST_MODES_IF(Server, AnAdoptedSocketOfAnUnsupportedFamilyIsRefused,
                     Fd(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0)).get() < 0 ? "no AF_VSOCK here" : "") {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  Fd vsock(::socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0));
  auto log = std::make_shared<Log>();
  auto factory = echo(log);
  auto adopting = error_of<qi::ValueError>(loop.create_server(std::move(factory), vsock.get()));
  std::optional<std::string> refused = co_await std::move(adopting);
  EXPECT_TRUE(refused && contains(*refused, "AF_INET, AF_INET6 or AF_UNIX")) << refused.value_or("accepted");
  EXPECT_NE(::fcntl(vsock.get(), F_GETFD), -1) << "the fd stays the caller's";
}

// listen() failing on the second socket: the first must not stay listening
// without a reader (clients would complete the handshake and hang). The
// server closes, none listening, and the error is thrown.
QILOOP_TEST_MODES(Server, ListenFailingOnTheSecondSocketLeavesNoneListening) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  auto factory = echo(log);
  qi::ServerOptions later{.start_serving = false};
  // Two listeners: 127.0.0.2 is loopback too on Linux.
  std::vector<std::string> hosts{"127.0.0.1", "127.0.0.2"};
  qi::Server server = co_await loop.create_server(std::move(factory), std::move(hosts), 0, later);
  QILOOP_CO_ASSERT(ASSERT_EQ(server.filenos().size(), 2u));
  const qi::SocketAddress first = server.sockets()[0];
  // The second socket becomes one listen() refuses (a datagram socket).
  Fd udp(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
  QILOOP_CO_ASSERT(ASSERT_GE(::dup3(udp.get(), server.filenos()[1], O_CLOEXEC), 0));
  auto starting = server.start_serving();
  std::exception_ptr error;
  try {
    co_await std::move(starting);
  } catch (const qi::OSError&) {
    error = std::current_exception();
  }
  EXPECT_EQ(code_of(error), EOPNOTSUPP) << "the listen() error is thrown";
  EXPECT_EQ(connect_errno(first), ECONNREFUSED) << "the first socket is not left listening";
  EXPECT_FALSE(server.is_serving());
  server.close();
  co_await server.wait_closed();
}

}  // namespace
