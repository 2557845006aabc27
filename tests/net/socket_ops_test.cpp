// loop.sock_* and loop.getaddrinfo / getnameinfo against peers that are
// not qiloop: plain blocking POSIX sockets on a std::thread, and a Python 3
// asyncio script. Loopback only; IPv4, IPv6 (skipped without ::1), Unix
// sockets (socketpair, a path in a temp dir, an abstract name). Real time:
// the peers must make progress; every wait is bounded (peer sockets time
// out, the kit's watchdog ends a stuck body).
#include "net/transport_peers.h"

#include <qiloop/net/socket.h>
#include <qiloop/testing.h>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <typeinfo>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using namespace std::string_literals;

namespace {

// The helpers this file shares with the transport tests (with them comes
// peers::kSigpipeIgnored: a pipe peer cannot say MSG_NOSIGNAL). Its own
// listener and unix_pair give the loop's end non-blocking.
using peers::bound_peer_waits;
using peers::Fd;
using peers::FdLeakCheck;
using peers::ipv6_loopback;
using peers::pattern;
using peers::pattern_bytes;
using peers::Peer;
using peers::PythonPeer;
using peers::read_pattern;
using peers::sockname;
using peers::temp_dir;

// --- Fixtures: fds, peers --------------------------------------------------------

void set_blocking(int fd, bool blocking) {
  int fl = ::fcntl(fd, F_GETFL);
  ::fcntl(fd, F_SETFL, blocking ? fl & ~O_NONBLOCK : fl | O_NONBLOCK);
}

Fd nb_socket(int family, int type = SOCK_STREAM) {
  return Fd(::socket(family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
}

// A non-blocking listening socket on `at` (port 0: any free one).
Fd listener(const qi::SocketAddress& at, int backlog = 16) {
  Fd fd = peers::listener(at, backlog);
  set_blocking(fd.get(), false);
  return fd;
}

// A connected AF_UNIX stream pair: [0] non-blocking (ours), [1] blocking
// (the peer's).
std::pair<Fd, Fd> unix_pair() {
  std::pair<Fd, Fd> pair = peers::unix_pair();
  set_blocking(pair.first.get(), false);
  return pair;
}

// A blocking client connected to `to`, made on the calling thread.
Fd blocking_client(const qi::SocketAddress& to) {
  Fd fd(::socket(to.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  bound_peer_waits(fd.get());
  EXPECT_EQ(::connect(fd.get(), to.native(), to.size()), 0) << std::strerror(errno);
  return fd;
}

// What an awaitable throws, as E's what(); fails the test when it throws
// nothing or something else.
template <class E, class A>
qi::Coro<std::string> thrown(A awaitable) {
  try {
    co_await std::move(awaitable);
  } catch (const E& e) {
    co_return std::string(e.what());
  }
  ADD_FAILURE() << "no " << typeid(E).name() << " was thrown";
  co_return std::string();
}

// Lets the loop run `n` iterations.
qi::Coro<void> iterations(int n) {
  for (int i = 0; i < n; ++i) co_await qi::sleep(0s);
}

// Real time passes (the peer thread or the kernel moves on).
qi::Coro<void> settle(std::chrono::milliseconds d = 20ms) { co_await qi::sleep(d); }

#define SOCK_TEST_MODES_IF TRANSPORT_TEST_MODES_IF  // the name this file's tests use

// --- Receiving ----------------------------------------------------------------------

QILOOP_TEST_MODES(SockRecv, TriesTheCallFirstAndLeavesReadersAlone) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto [ours, theirs] = unix_pair();
  EXPECT_EQ(::send(theirs.get(), "hello", 5, 0), 5);
  // Data already queued: no reader is added (the application's stays).
  loop.add_reader(ours.get(), [] {});
  QByteArray got = co_await loop.sock_recv(ours.get(), 3);
  EXPECT_EQ(got, "hel");
  std::array<std::byte, 16> buf{};
  std::size_t n = co_await loop.sock_recv_into(ours.get(), buf);
  EXPECT_EQ(n, 2u);
  EXPECT_EQ(std::memcmp(buf.data(), "lo", 2), 0);
  EXPECT_TRUE(loop.remove_reader(ours.get()));
}

QILOOP_TEST_MODES(SockRecv, WaitsForAPeerThread) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto [ours, theirs] = unix_pair();
  Peer peer([fd = theirs.get()] {
    std::this_thread::sleep_for(30ms);
    ::send(fd, "late", 4, 0);
    std::this_thread::sleep_for(30ms);
    ::shutdown(fd, SHUT_WR);
  });
  EXPECT_EQ(co_await loop.sock_recv(ours.get(), 100), "late");
  // EOF: empty, and 0 for recv_into.
  EXPECT_EQ(co_await loop.sock_recv(ours.get(), 100), QByteArray());
  std::array<std::byte, 4> buf{};
  EXPECT_EQ(co_await loop.sock_recv_into(ours.get(), buf), 0u);
  EXPECT_FALSE(loop.remove_reader(ours.get())) << "the call's reader stayed behind";
}

QILOOP_TEST_MODES(SockRecv, CancelledWaitConsumesNothing) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto [ours, theirs] = unix_pair();
  // Cancelled at every point of the wait: before the data, as it arrives,
  // right after the wake-up. Whatever the cancelled calls returned plus
  // what a later call reads is exactly what was sent.
  for (int k = 0; k < 6; ++k) {
    QByteArray sent = "chunk-" + QByteArray::number(k);
    auto t = loop.create_task(loop.sock_recv(ours.get(), 64));
    co_await iterations(k % 3);
    if (k >= 3) ::send(theirs.get(), sent.constData(), static_cast<std::size_t>(sent.size()), 0);
    co_await iterations(k - 3 > 0 ? k - 3 : 0);
    t.cancel();
    QByteArray got;
    try {
      got = co_await t;
    } catch (const qi::CancelledError&) {
      EXPECT_FALSE(loop.remove_reader(ours.get())) << "a cancelled sock_recv left its reader";
    }
    if (k < 3) ::send(theirs.get(), sent.constData(), static_cast<std::size_t>(sent.size()), 0);
    if (got.size() < sent.size()) got += co_await loop.sock_recv(ours.get(), 64);
    EXPECT_EQ(got, sent) << "round " << k;
  }
}

QILOOP_TEST_MODES(SockRecv, ASecondWaitingCallOnTheFdIsRefused) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto [ours, theirs] = unix_pair();
  auto first = loop.create_task(loop.sock_recv(ours.get(), 64));
  co_await iterations(2);
  std::string w = co_await thrown<qi::RuntimeError>(loop.sock_recv(ours.get(), 64));
  EXPECT_NE(w.find("another sock_* call already waits to receive from fd"), std::string::npos) << w;
  w = co_await thrown<qi::RuntimeError>(loop.sock_recv_into(ours.get(), std::span<std::byte>()));
  EXPECT_NE(w.find("one call per fd and direction"), std::string::npos) << w;
  // A send may wait beside it; the first receive still gets its data.
  co_await loop.sock_sendall(ours.get(), "ping");
  ::send(theirs.get(), "pong", 4, 0);
  EXPECT_EQ(co_await first, "pong");
  char buf[8];
  EXPECT_EQ(::recv(theirs.get(), buf, sizeof buf, 0), 4);
}

QILOOP_TEST_MODES(SockAccept, ASecondWaitingAcceptIsRefused) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  Fd lsn = listener(qi::SocketAddress::ip("127.0.0.1", 0));
  auto first = loop.create_task(loop.sock_accept(lsn.get()));
  co_await iterations(2);
  std::string w = co_await thrown<qi::RuntimeError>(loop.sock_accept(lsn.get()));
  EXPECT_NE(w.find("sock_accept: another sock_* call"), std::string::npos) << w;
  Fd client = blocking_client(sockname(lsn.get()));
  auto [fd, peer] = co_await first;
  Fd conn(fd);
  EXPECT_EQ(peer, sockname(client.get()));
}

QILOOP_TEST_MODES(SockOps, BlockingFdIsRefusedWithTheFix) {
  auto& loop = qi::get_running_loop();
  Fd blocking(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  std::string w = co_await thrown<qi::ValueError>(loop.sock_recv(blocking.get(), 1));
  EXPECT_NE(w.find("set O_NONBLOCK"), std::string::npos) << w;
  co_await thrown<qi::ValueError>(loop.sock_sendall(blocking.get(), "x"));
  co_await thrown<qi::ValueError>(loop.sock_accept(blocking.get()));
  co_await thrown<qi::ValueError>(loop.sock_connect(blocking.get(), qi::SocketAddress::unix_path("/nonexistent")));
  std::array<std::byte, 1> b{};
  co_await thrown<qi::ValueError>(loop.sock_recv_into(blocking.get(), b));
  w = co_await thrown<qi::OSError>(loop.sock_recv(-1, 1));
  EXPECT_NE(w.find("EBADF"), std::string::npos) << w;
}

// --- Sending ------------------------------------------------------------------------

QILOOP_TEST_MODES(SockSendall, SixteenMegabytesToASlowReader) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  Fd lsn = listener(qi::SocketAddress::ip("127.0.0.1", 0));
  auto at = sockname(lsn.get());
  std::atomic<long long> received{0};
  constexpr std::size_t kSize = 16u << 20;
  Peer peer([&] {
    Fd c = blocking_client(at);
    // Slow: a pause per 64 KiB, so the sender's buffer fills over and over.
    received = read_pattern(c.get(), 200us);
  });
  auto [fd, peer_addr] = co_await loop.sock_accept(lsn.get());
  Fd conn(fd);
  EXPECT_EQ(peer_addr.host(), "127.0.0.1");
  co_await loop.sock_sendall(conn.get(), pattern_bytes(kSize));
  EXPECT_FALSE(loop.remove_writer(conn.get())) << "the call's writer stayed behind";
  ::shutdown(conn.get(), SHUT_WR);
  co_await loop.run_in_executor(nullptr, [&] { peer.join(); });
  EXPECT_EQ(received.load(), static_cast<long long>(kSize));
}

QILOOP_TEST_MODES(SockSendall, OverAUnixSocketPair) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto [ours, theirs] = unix_pair();
  std::atomic<long long> received{0};
  Peer peer([&, fd = theirs.get()] { received = read_pattern(fd, 0us, 4096); });
  co_await loop.sock_sendall(ours.get(), pattern_bytes(4u << 20));
  ours.reset();
  co_await loop.run_in_executor(nullptr, [&] { peer.join(); });
  EXPECT_EQ(received.load(), 4ll << 20);
}

QILOOP_TEST_MODES(SockSendall, CancelledMidwaySendsAPrefixAndStops) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto [ours, theirs] = unix_pair();
  auto t = loop.create_task(loop.sock_sendall(ours.get(), pattern_bytes(16u << 20)));
  co_await settle();  // the buffer is full: the call waits for the writer
  EXPECT_FALSE(t.done());
  t.cancel();
  co_await thrown<qi::CancelledError>(std::move(t));
  EXPECT_FALSE(loop.remove_writer(ours.get())) << "a cancelled sock_sendall left its writer";
  ours.reset();
  // What arrived is a prefix of the stream, shorter than the whole.
  long long got = read_pattern(theirs.get());
  EXPECT_GT(got, 0);
  EXPECT_LT(got, 16ll << 20);
}

QILOOP_TEST_MODES(SockSendall, ToAClosedPeerIsAConnectionError) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto [ours, theirs] = unix_pair();
  theirs.reset();
  // EPIPE, never SIGPIPE (MSG_NOSIGNAL): the test process survives.
  std::string w = co_await thrown<qi::BrokenPipeError>(loop.sock_sendall(ours.get(), "x"));
  EXPECT_NE(w.find("sock_sendall on fd"), std::string::npos) << w;
}

// --- Connecting and accepting ---------------------------------------------------------

qi::Coro<void> connect_accept_echo(const qi::SocketAddress& at) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  Fd lsn = listener(at);
  auto bound = sockname(lsn.get());
  Fd client = nb_socket(at.family());
  auto accepting = loop.create_task(loop.sock_accept(lsn.get()));
  co_await loop.sock_connect(client.get(), bound);
  auto [fd, peer] = co_await accepting;
  Fd server(fd);
  EXPECT_EQ(peer, sockname(client.get())) << peer.to_string();
  // The accepted fd is non-blocking and close-on-exec.
  EXPECT_TRUE(::fcntl(server.get(), F_GETFL) & O_NONBLOCK);
  EXPECT_TRUE(::fcntl(server.get(), F_GETFD) & FD_CLOEXEC);
  co_await loop.sock_sendall(client.get(), "ping");
  EXPECT_EQ(co_await loop.sock_recv(server.get(), 16), "ping");
  co_await loop.sock_sendall(server.get(), "pong");
  EXPECT_EQ(co_await loop.sock_recv(client.get(), 16), "pong");
}

QILOOP_TEST_MODES(SockConnect, Ipv4) { co_await connect_accept_echo(qi::SocketAddress::ip("127.0.0.1", 0)); }

SOCK_TEST_MODES_IF(SockConnect, Ipv6, ipv6_loopback() ? "" : "::1 is not available on this machine") {
  co_await connect_accept_echo(qi::SocketAddress::ip("::1", 0));
}

QILOOP_TEST_MODES(SockConnect, UnixPathInATempDir) {
  std::string dir = temp_dir();
  QILOOP_CO_ASSERT(ASSERT_FALSE(dir.empty()));
  std::string path = dir + "/s";
  co_await connect_accept_echo(qi::SocketAddress::unix_path(path));
  ::unlink(path.c_str());
  ::rmdir(dir.c_str());
}

QILOOP_TEST_MODES(SockConnect, UnixAbstractName) {
  co_await connect_accept_echo(
      qi::SocketAddress::unix_path("\0qiloop-test-"s + std::to_string(::getpid()) + "-" +
                                   std::to_string(reinterpret_cast<std::uintptr_t>(&qi::get_running_loop()))));
}

QILOOP_TEST_MODES(SockConnect, RefusedNamesTheAddress) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  // A port nobody listens on: bound, never listening, so not reused meanwhile.
  Fd holder = nb_socket(AF_INET);
  auto any = qi::SocketAddress::ip("127.0.0.1", 0);
  ::bind(holder.get(), any.native(), any.size());
  auto to = sockname(holder.get());
  Fd client = nb_socket(AF_INET);
  std::string w = co_await thrown<qi::ConnectionRefusedError>(loop.sock_connect(client.get(), to));
  EXPECT_NE(w.find(to.to_string()), std::string::npos) << w;
  EXPECT_NE(w.find("ECONNREFUSED"), std::string::npos) << w;
  EXPECT_FALSE(loop.remove_writer(client.get()));
  // A Unix path nobody bound.
  Fd unix_client = nb_socket(AF_UNIX);
  w = co_await thrown<qi::FileNotFoundError>(
      loop.sock_connect(unix_client.get(), qi::SocketAddress::unix_path("/nonexistent/qiloop.sock")));
  EXPECT_NE(w.find("unix:/nonexistent/qiloop.sock"), std::string::npos) << w;
  w = co_await thrown<qi::ValueError>(loop.sock_connect(client.get(), qi::SocketAddress()));
  EXPECT_EQ(w, "sock_connect: the address is empty; give a resolved address (loop.getaddrinfo, "
               "qi::SocketAddress::ip or unix_path)");
}

QILOOP_TEST_MODES(SockConnect, CancelledWhileInProgress) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  // A listener whose accept queue is full drops SYNs: a connect stays in
  // progress (the kernel retries after a second).
  Fd lsn = listener(qi::SocketAddress::ip("127.0.0.1", 0), 0);
  auto at = sockname(lsn.get());
  std::vector<Fd> fillers;
  std::optional<qi::Task<void>> pending;
  Fd client;
  for (int i = 0; i < 8 && !pending; ++i) {
    Fd c = nb_socket(AF_INET);
    auto t = loop.create_task(loop.sock_connect(c.get(), at));
    co_await settle(30ms);
    if (t.done()) {
      co_await t;
      fillers.push_back(std::move(c));
    } else {
      pending = std::move(t);
      client = std::move(c);
    }
  }
  QILOOP_CO_ASSERT(ASSERT_TRUE(pending.has_value()) << "every connect completed at once");
  pending->cancel();
  co_await thrown<qi::CancelledError>(std::move(*pending));
  EXPECT_FALSE(loop.remove_writer(client.get())) << "a cancelled sock_connect left its writer";
}

QILOOP_TEST_MODES(SockAccept, CancelledLosesNoConnection) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  Fd lsn = listener(qi::SocketAddress::ip("127.0.0.1", 0));
  auto at = sockname(lsn.get());
  auto t = loop.create_task(loop.sock_accept(lsn.get()));
  co_await iterations(2);
  t.cancel();
  co_await thrown<qi::CancelledError>(std::move(t));
  EXPECT_FALSE(loop.remove_reader(lsn.get()));
  Fd client = blocking_client(at);
  auto [fd, peer] = co_await loop.sock_accept(lsn.get());
  Fd conn(fd);
  EXPECT_EQ(peer, sockname(client.get()));
}

QILOOP_TEST_MODES(SockRecv, PeerResetIsConnectionResetError) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  Fd lsn = listener(qi::SocketAddress::ip("127.0.0.1", 0));
  auto at = sockname(lsn.get());
  Peer peer([at] {
    Fd c = blocking_client(at);
    std::this_thread::sleep_for(30ms);
    // SO_LINGER 0: close sends RST.
    linger lg{1, 0};
    ::setsockopt(c.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
  });
  auto [fd, addr] = co_await loop.sock_accept(lsn.get());
  Fd conn(fd);
  std::string w = co_await thrown<qi::ConnectionResetError>(loop.sock_recv(conn.get(), 16));
  EXPECT_NE(w.find("ECONNRESET"), std::string::npos) << w;
}

// --- sendfile -----------------------------------------------------------------------

struct TempFile {
  std::string path;
  Fd fd;
  explicit TempFile(const QByteArray& content) {
    char tmpl[] = "/tmp/qiloop-sendfile-XXXXXX";
    fd.reset(::mkostemp(tmpl, O_CLOEXEC));
    path = tmpl;
    EXPECT_EQ(::write(fd.get(), content.constData(), static_cast<std::size_t>(content.size())), content.size());
    ::lseek(fd.get(), 0, SEEK_SET);
  }
  ~TempFile() { ::unlink(path.c_str()); }
};

QILOOP_TEST_MODES(SockSendfile, ARegularFileWithOffsetAndCount) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  constexpr std::size_t kSize = 3u << 20;
  TempFile file(pattern_bytes(kSize));
  {
    auto [ours, theirs] = unix_pair();
    std::atomic<long long> received{0};
    Peer peer([&, fd = theirs.get()] { received = read_pattern(fd, 50us); });
    std::size_t sent = co_await loop.sock_sendfile(ours.get(), file.fd.get());
    EXPECT_EQ(sent, kSize);
    EXPECT_EQ(::lseek(file.fd.get(), 0, SEEK_CUR), static_cast<off_t>(kSize)) << "asyncio moves the position";
    ours.reset();
    co_await loop.run_in_executor(nullptr, [&] { peer.join(); });
    EXPECT_EQ(received.load(), static_cast<long long>(kSize));
  }
  auto [ours, theirs] = unix_pair();
  std::size_t sent = co_await loop.sock_sendfile(ours.get(), file.fd.get(), 1000, 5000);
  EXPECT_EQ(sent, 5000u);
  EXPECT_EQ(::lseek(file.fd.get(), 0, SEEK_CUR), 6000);
  ours.reset();
  QByteArray got(6000, '\0');
  EXPECT_EQ(::recv(theirs.get(), got.data(), 6000, MSG_WAITALL), 5000);
  EXPECT_EQ(got.left(5000), pattern_bytes(5000, 1000));
}

QILOOP_TEST_MODES(SockSendfile, APipeGoesThroughTheFallback) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  Peer writer, reader;
  int p[2];
  QILOOP_CO_ASSERT(ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0));
  Fd pipe_r(p[0]), pipe_w(p[1]);
  auto [ours, theirs] = unix_pair();
  constexpr std::size_t kSize = 600u * 1024;  // more than one 256 KiB chunk
  writer.start([&] {
    QByteArray data = pattern_bytes(kSize);
    std::size_t off = 0;
    while (off < kSize) {
      ssize_t r = ::write(pipe_w.get(), data.constData() + off, kSize - off);
      if (r <= 0) break;
      off += static_cast<std::size_t>(r);
    }
    pipe_w.reset();
  });
  std::atomic<long long> received{0};
  reader.start([&, fd = theirs.get()] { received = read_pattern(fd); });
  // Without the fallback: refused, naming the way out.
  std::string w = co_await thrown<qi::SendfileNotAvailableError>(
      loop.sock_sendfile(ours.get(), pipe_r.get(), 0, std::nullopt, false));
  EXPECT_NE(w.find("sock_sendfile: sendfile(2) cannot send fd " + std::to_string(pipe_r.get()) + " over fd " +
                   std::to_string(ours.get()) + " (it is not a regular file); pass fallback = true to read and "
                   "send it instead"),
            std::string::npos)
      << w;
  std::size_t sent = co_await loop.sock_sendfile(ours.get(), pipe_r.get());
  EXPECT_EQ(sent, kSize);
  ours.reset();
  co_await loop.run_in_executor(nullptr, [&] {
    writer.join();
    reader.join();
  });
  EXPECT_EQ(received.load(), static_cast<long long>(kSize));
}

QILOOP_TEST_MODES(SockSendfile, BadArgumentsNameTheFix) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  TempFile file("abc");
  auto [ours, theirs] = unix_pair();
  std::string w = co_await thrown<qi::ValueError>(loop.sock_sendfile(ours.get(), file.fd.get(), 0, 0));
  EXPECT_NE(w.find("std::nullopt"), std::string::npos) << w;
  co_await thrown<qi::ValueError>(loop.sock_sendfile(ours.get(), file.fd.get(), -1));
  Fd udp = nb_socket(AF_INET, SOCK_DGRAM);
  w = co_await thrown<qi::ValueError>(loop.sock_sendfile(udp.get(), file.fd.get()));
  EXPECT_NE(w.find("SOCK_STREAM"), std::string::npos) << w;
  // An empty remainder sends nothing.
  EXPECT_EQ(co_await loop.sock_sendfile(ours.get(), file.fd.get(), 3), 0u);
}

QILOOP_TEST_MODES(SockSendfile, CancelledMidwayKeepsThePosition) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  constexpr std::size_t kSize = 8u << 20;
  TempFile file(pattern_bytes(kSize));
  auto [ours, theirs] = unix_pair();
  auto t = loop.create_task(loop.sock_sendfile(ours.get(), file.fd.get()));
  co_await settle();
  EXPECT_FALSE(t.done());
  t.cancel();
  co_await thrown<qi::CancelledError>(std::move(t));
  EXPECT_FALSE(loop.remove_writer(ours.get()));
  ours.reset();
  long long got = read_pattern(theirs.get());
  EXPECT_GT(got, 0);
  EXPECT_EQ(::lseek(file.fd.get(), 0, SEEK_CUR), got) << "the position follows what was sent";
}

QILOOP_TEST_MODES(SockSendfile, CancelledWhileTheFallbackReads) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  int p[2];
  QILOOP_CO_ASSERT(ASSERT_EQ(::pipe2(p, O_CLOEXEC), 0));
  Fd pipe_r(p[0]), pipe_w(p[1]);
  auto [ours, theirs] = unix_pair();
  // Nothing in the pipe: the read on the executor blocks.
  auto t = loop.create_task(loop.sock_sendfile(ours.get(), pipe_r.get()));
  co_await settle();
  EXPECT_FALSE(t.done());
  t.cancel();
  co_await thrown<qi::CancelledError>(std::move(t));
  // The worker's read ends (EOF) and drops its chunk; nothing was sent.
  pipe_w.reset();
  co_await loop.shutdown_default_executor();
  ours.reset();
  char c;
  EXPECT_EQ(::recv(theirs.get(), &c, 1, 0), 0);
}

QILOOP_TEST_MODES(SockRecv, CancelledRecvIntoConsumesNothing) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto [ours, theirs] = unix_pair();
  std::array<std::byte, 8> buf{};
  auto t = loop.create_task(loop.sock_recv_into(ours.get(), buf));
  co_await iterations(2);
  t.cancel();
  co_await thrown<qi::CancelledError>(std::move(t));
  EXPECT_FALSE(loop.remove_reader(ours.get()));
  ::send(theirs.get(), "abc", 3, 0);
  EXPECT_EQ(co_await loop.sock_recv(ours.get(), 8), "abc");
}

// --- Name resolution ------------------------------------------------------------------

QILOOP_TEST_MODES(GetAddrInfo, NumericHostsStayOnTheLoopThread) {
  auto& loop = qi::get_running_loop();
  auto infos = co_await loop.getaddrinfo("127.0.0.1", 8080, AF_UNSPEC, SOCK_STREAM);
  QILOOP_CO_ASSERT(ASSERT_EQ(infos.size(), 1u));
  EXPECT_EQ(infos[0].family, AF_INET);
  EXPECT_EQ(infos[0].type, SOCK_STREAM);
  EXPECT_EQ(infos[0].protocol, IPPROTO_TCP);
  EXPECT_EQ(infos[0].address, qi::SocketAddress::ip("127.0.0.1", 8080));
  auto v6 = co_await loop.getaddrinfo("::1", "53", AF_UNSPEC, SOCK_DGRAM);
  QILOOP_CO_ASSERT(ASSERT_EQ(v6.size(), 1u));
  EXPECT_EQ(v6[0].address.to_string(), "[::1]:53");
  // No type: one per socket type, as getaddrinfo(3) gives them.
  auto all = co_await loop.getaddrinfo("10.0.0.1", 1);
  EXPECT_GE(all.size(), 2u);
  auto passive = co_await loop.getaddrinfo("", 9000, AF_INET, SOCK_STREAM, 0, AI_PASSIVE);
  QILOOP_CO_ASSERT(ASSERT_EQ(passive.size(), 1u));
  EXPECT_EQ(passive[0].address.host(), "0.0.0.0");
  // A numeric host of the wrong family fails at once.
  co_await thrown<qi::GaiError>(loop.getaddrinfo("127.0.0.1", 1, AF_INET6, SOCK_STREAM));
  auto nm = co_await loop.getnameinfo(qi::SocketAddress::ip("127.0.0.1", 80), NI_NUMERICHOST | NI_NUMERICSERV);
  EXPECT_EQ(nm, std::pair("127.0.0.1"s, "80"s));
  EXPECT_EQ(loop.default_executor(), nullptr) << "a numeric lookup went to the executor";
}

QILOOP_TEST_MODES(GetAddrInfo, NamesGoThroughTheExecutor) {
  auto& loop = qi::get_running_loop();
  auto infos = co_await loop.getaddrinfo("localhost", 80, AF_INET, SOCK_STREAM);
  EXPECT_NE(loop.default_executor(), nullptr);
  QILOOP_CO_ASSERT(ASSERT_FALSE(infos.empty()));
  EXPECT_EQ(infos[0].address.port(), 80);
  EXPECT_EQ(infos[0].address.family(), AF_INET);
  // A service name is looked up (on the executor) too.
  auto svc = co_await loop.getaddrinfo("127.0.0.1", "ssh", AF_INET, SOCK_STREAM);
  if (!svc.empty()) {
    EXPECT_EQ(svc[0].address.port(), 22);
  }
  qi::GaiError e(0, "");
  try {
    co_await loop.getaddrinfo("127.0.0.1", "no-such-service-qiloop", AF_INET, SOCK_STREAM);
    ADD_FAILURE() << "no qi::GaiError";
  } catch (const qi::GaiError& x) {
    e = x;
  }
  EXPECT_EQ(e.code(), EAI_SERVICE);
  EXPECT_NE(std::string(e.what()).find("no-such-service-qiloop"), std::string::npos) << e.what();
  auto name = co_await loop.getnameinfo(qi::SocketAddress::ip("127.0.0.1", 22), NI_NUMERICSERV);
  EXPECT_FALSE(name.first.empty());
  EXPECT_EQ(name.second, "22");
  std::string w = co_await thrown<qi::ValueError>(loop.getnameinfo(qi::SocketAddress::unix_path("/x")));
  EXPECT_NE(w.find("getnameinfo: unix:/x is not an IP address; getnameinfo names IPv4 and IPv6 addresses"),
            std::string::npos)
      << w;
}

QILOOP_TEST_MODES(GetAddrInfo, CancelledWhileOnTheExecutor) {
  auto& loop = qi::get_running_loop();
  auto t = loop.create_task(loop.getaddrinfo("localhost", 80, AF_INET, SOCK_STREAM));
  co_await iterations(1);
  t.cancel();
  try {
    co_await t;  // finished first, or cancelled: either is right
  } catch (const qi::CancelledError&) {
  }
  EXPECT_TRUE(t.done());
}

// --- A Python asyncio peer --------------------------------------------------------------

SOCK_TEST_MODES_IF(SockPython, LengthPrefixedEchoWithAnAsyncioServer, peers::no_python3()) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  PythonPeer py(peers::kPythonFrameEcho);
  uint16_t port = py.port();  // blocking: the child's start-up only
  auto infos = co_await loop.getaddrinfo("127.0.0.1", port, AF_INET, SOCK_STREAM);
  Fd fd = nb_socket(AF_INET);
  co_await loop.sock_connect(fd.get(), infos.at(0).address);
  for (uint32_t n : {0u, 1u, 1000u, 300000u}) {
    QByteArray frame = peers::length_prefixed(pattern_bytes(n));
    co_await loop.sock_sendall(fd.get(), frame);
    QByteArray back;
    while (back.size() < frame.size()) {
      QByteArray part = co_await loop.sock_recv(fd.get(), 65536);
      if (part.isEmpty()) break;
      back += part;
    }
    EXPECT_EQ(back, frame) << "frame of " << n << " bytes";
  }
  ::shutdown(fd.get(), SHUT_WR);
  EXPECT_EQ(co_await loop.sock_recv(fd.get(), 16), QByteArray()) << "the server closes after our EOF";
  fd.reset();
  EXPECT_EQ(co_await py.exit_status(), 0);
}

}  // namespace

namespace {

// --- Review i10 #17: sizes a buffer cannot have ------------------------------------------

// sock_recv(fd, size_t(-1)) — the "everything" idiom, or a negative size
// converted — cannot be a QByteArray: qi::ValueError naming the limit (as
// Python's ValueError), never recv(2) into Qt's empty buffer (EFAULT).
QILOOP_TEST_MODES_VT(SockOps, ANegativeOrHugeSizeIsAValueError) {
  auto& loop = qi::get_running_loop();
  int sv[2];
  QILOOP_CO_ASSERT(ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0));
  ::send(sv[1], "x", 1, 0);
  const std::string limit = std::to_string(std::numeric_limits<qsizetype>::max());
  for (std::size_t n : {std::size_t(-1), static_cast<std::size_t>(std::numeric_limits<qsizetype>::max()) + 1}) {
    std::string message;
    try {
      (void)co_await loop.sock_recv(sv[0], n);
    } catch (const qi::ValueError& e) {
      message = e.what();
    } catch (const std::exception& e) {
      ADD_FAILURE() << "sock_recv(" << n << "): " << e.what();
    }
    EXPECT_NE(message.find(limit), std::string::npos) << "names the limit: " << message;
    EXPECT_NE(message.find("sock_recv: " + std::to_string(n) + " bytes is larger than a buffer can be"),
              std::string::npos)
        << message;
    EXPECT_NE(message.find("pass the most you want to receive at once"), std::string::npos) << message;
  }
  std::byte one[1];
  std::string message;
  try {
    (void)co_await loop.sock_recv_into(sv[0], std::span<std::byte>(one, std::size_t(-1)));
  } catch (const qi::ValueError& e) {
    message = e.what();
  } catch (const std::exception& e) {
    ADD_FAILURE() << "sock_recv_into: " << e.what();
  }
  EXPECT_NE(message.find(limit), std::string::npos) << "names the limit: " << message;
  QByteArray got = co_await loop.sock_recv(sv[0], 16);
  EXPECT_EQ(got, "x") << "nothing was consumed";
  ::close(sv[0]);
  ::close(sv[1]);
}

}  // namespace

// --- Hostile round 3 (attack3-i10) -------------------------------------------------------

#include <qiloop/sync/event.h>

#include <poll.h>

namespace {

// Every sock_* call cancelled after 0..N loop iterations, also between its
// wake-up and its resumption; afterwards nothing is lost or duplicated, the
// fd's reader and writer are free (a later add_reader / add_writer works),
// and no fd leaks.

// The fd accepts a reader and a writer of the application's, which fire.
qi::Coro<void> fd_is_free(int fd, int peer) {
  auto& loop = qi::get_running_loop();
  EXPECT_FALSE(loop.remove_reader(fd)) << "a cancelled call left its reader";
  EXPECT_FALSE(loop.remove_writer(fd)) << "a cancelled call left its writer";
  auto readable = std::make_shared<qi::Event>();
  auto writable = std::make_shared<qi::Event>();
  loop.add_reader(fd, [readable] { readable->set(); });
  loop.add_writer(fd, [writable] { writable->set(); });
  ::send(peer, "!", 1, MSG_NOSIGNAL);
  co_await readable->wait();
  co_await writable->wait();
  EXPECT_TRUE(loop.remove_reader(fd));
  EXPECT_TRUE(loop.remove_writer(fd));
  char c;
  EXPECT_EQ(::recv(fd, &c, 1, 0), 1);
}

QILOOP_TEST_MODES(SockOps, HostileCancelAcceptAtEveryIterationLosesNoConnection) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  Fd lsn = listener(qi::SocketAddress::ip("127.0.0.1", 0));
  auto at = sockname(lsn.get());
  for (int k = 0; k < 4; ++k)
    for (int j = 0; j < 4; ++j) {
      auto t = loop.create_task(loop.sock_accept(lsn.get()));
      co_await iterations(k);
      Fd client = blocking_client(at);
      co_await iterations(j);
      t.cancel();
      std::optional<std::pair<int, qi::SocketAddress>> got;
      try {
        got = co_await t;
      } catch (const qi::CancelledError&) {
        EXPECT_FALSE(loop.remove_reader(lsn.get()));
      }
      if (!got) got = co_await loop.sock_accept(lsn.get());
      Fd conn(got->first);
      EXPECT_EQ(got->second, sockname(client.get())) << "k=" << k << " j=" << j;
      pollfd p{lsn.get(), POLLIN, 0};
      EXPECT_EQ(::poll(&p, 1, 0), 0) << "a connection was left queued (or duplicated)";
    }
}

QILOOP_TEST_MODES(SockOps, HostileCancelSendsAtEveryIterationLeaveTheFdFree) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  for (int k = 0; k < 6; ++k) {
    auto [ours, theirs] = unix_pair();
    // sock_sendall of more than the socket holds, cancelled while it waits,
    // with a peer thread reading meanwhile: what arrived is a prefix of the
    // data (no gap, no repeat).
    const QByteArray data = pattern_bytes(4u << 20);
    long long got = -1;
    Peer reader;
    int peer_fd = theirs.get();
    auto t = loop.create_task(loop.sock_sendall(ours.get(), data));
    co_await iterations(k);
    if (k % 2) reader.start([&got, peer_fd] { got = read_pattern(peer_fd, 50us); });
    co_await settle(5ms);
    t.cancel();
    bool cancelled = false;
    try {
      co_await t;
    } catch (const qi::CancelledError&) {
      cancelled = true;
    }
    EXPECT_TRUE(cancelled) << "4 MiB cannot have gone in 5 ms to a slow reader";
    EXPECT_FALSE(loop.remove_writer(ours.get()));
    ::shutdown(ours.get(), SHUT_WR);
    if (k % 2 == 0) reader.start([&got, peer_fd] { got = read_pattern(peer_fd); });
    reader.join();
    EXPECT_GT(got, 0) << "k=" << k << ": the bytes sent are not a prefix of the data";
    ::shutdown(theirs.get(), SHUT_RD);
  }
  // sock_recv, sock_recv_into and sock_sendfile cancelled on one fd in turn;
  // the fd is free after each.
  auto [ours, theirs] = unix_pair();
  for (int k = 0; k < 4; ++k) {
    auto r = loop.create_task(loop.sock_recv(ours.get(), 16));
    co_await iterations(k);
    r.cancel();
    co_await thrown<qi::CancelledError>(std::move(r));
    co_await fd_is_free(ours.get(), theirs.get());
    std::array<std::byte, 16> buf;
    auto ri = loop.create_task(loop.sock_recv_into(ours.get(), buf));
    co_await iterations(k);
    ri.cancel();
    co_await thrown<qi::CancelledError>(std::move(ri));
    co_await fd_is_free(ours.get(), theirs.get());
  }
}

}  // namespace
