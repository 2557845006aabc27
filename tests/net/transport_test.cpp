// qi::Transport over TCP and Unix stream sockets (the selector socket
// transport), against peers that are not qiloop: blocking POSIX sockets on
// a std::thread, and a Python 3 asyncio server. Loopback only. Real time:
// the peers must make progress; every peer socket times out, and the kit's
// watchdog ends a stuck body.
#include "net/transport_peers.h"

#include <qiloop/net/transport.h>
#include <qiloop/testing.h>

#include <gtest/gtest.h>

#include <netinet/tcp.h>

#include <spawn.h>
#include <sys/wait.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

extern char** environ;

using namespace std::chrono_literals;
using namespace peers;

namespace {

qi::Coro<void> settle(std::chrono::milliseconds d = 30ms) { co_await qi::sleep(d); }


// --- Echo -------------------------------------------------------------------------

QILOOP_TEST_MODES(Transport, EchoOverTcpThroughAProtocol) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  Peer peer;
  Fd lsn = listener(qi::SocketAddress::ip("127.0.0.1", 0));
  peer.start([&] {
    Fd c = accept_peer(lsn.get());
    echo_until_eof(c.get());
  });
  auto log = std::make_shared<Log>();
  auto factory1 = recorder(log);  // named: g++ 12 destroys a lambda temporary of a co_await twice
  auto [t, proto] = co_await loop.create_connection(std::move(factory1), "127.0.0.1", sockname(lsn.get()).port());
  EXPECT_EQ(log->made, 1) << "connection_made ran before create_connection returned";
  EXPECT_EQ(proto->transport, t);
  EXPECT_EQ(t->peername(), sockname(lsn.get()));
  EXPECT_EQ(t->sockname().host(), "127.0.0.1");
  EXPECT_GE(t->fileno(), 0);
  int nodelay = 0;
  socklen_t len = sizeof nodelay;
  ::getsockopt(t->fileno(), IPPROTO_TCP, TCP_NODELAY, &nodelay, &len);
  EXPECT_NE(nodelay, 0) << "TCP_NODELAY is set by default";
  EXPECT_TRUE(t->is_reading());
  EXPECT_TRUE(t->can_write_eof());
  t->write("hello ");
  t->writelines({"wor", "", "ld"});
  co_await log->until([&] { return log->data.size() >= 11; });
  EXPECT_EQ(log->data, "hello world");
  t->close();
  EXPECT_TRUE(t->is_closing());
  co_await log->until([&] { return log->lost > 0; });
  EXPECT_EQ(log->error, nullptr);
  EXPECT_EQ(log->order.front(), "made");
  EXPECT_EQ(log->order.back(), "lost");
  peer.join();
}

// A BufferedProtocol that records into a Log, reading into Size bytes of
// its own.
template <std::size_t Size>
struct BufferedRecorder : qi::BufferedProtocol {
  explicit BufferedRecorder(std::shared_ptr<Log> l) : log(std::move(l)) {}
  std::shared_ptr<Log> log;
  std::array<std::byte, Size> mem{};
  std::span<std::byte> get_buffer(std::size_t) override { return mem; }
  void buffer_updated(std::size_t n) override {
    log->data.append(reinterpret_cast<const char*>(mem.data()), static_cast<qsizetype>(n));
    log->note("data");
  }
  bool eof_received() override {
    ++log->eofs;
    log->note("eof");
    return false;
  }
  void connection_lost(std::exception_ptr e) override {
    ++log->lost;
    log->error = e;
    log->note("lost");
  }
};

QILOOP_TEST_MODES(Transport, BufferedProtocolReadsIntoItsOwnMemory) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  auto pair = unix_pair();  // no structured binding: clang 14 cannot capture one in a lambda
  Fd& ours = pair.first;
  Fd& theirs = pair.second;
  Peer peer;
  peer.start([&] {
    send_all(theirs.get(), pattern_bytes(100000).toStdString());
    ::shutdown(theirs.get(), SHUT_WR);
  });
  // Named: g++ 12 destroys a lambda temporary of a co_await twice.
  auto factory2 = [log] { return std::make_unique<BufferedRecorder<1000>>(log); };
  auto [t, sink] = co_await loop.create_connection(std::move(factory2),
      ours.release());
  EXPECT_EQ(t->peername().family(), AF_UNIX);
  co_await log->until([&] { return log->lost > 0; });
  EXPECT_EQ(log->data, pattern_bytes(100000)) << "every byte, through the 1000-byte buffer";
  EXPECT_EQ(log->eofs, 1);
  EXPECT_EQ(log->error, nullptr);
  peer.join();
}

// --- Flow control ---------------------------------------------------------------------

QILOOP_TEST_MODES(Transport, LargeWritesToASlowReaderFollowTheWaterMarks) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  auto pair = unix_pair();  // no structured binding: clang 14 cannot capture one in a lambda
  Fd& ours = pair.first;
  Fd& theirs = pair.second;
  constexpr std::size_t kTotal = 4 << 20;
  constexpr std::size_t kChunk = 64 << 10;
  std::atomic<long long> received{0};
  Peer peer;
  peer.start([&] { received = read_pattern(theirs.get(), 1ms, 16384); });  // 16 MB/s at most
  auto factory3 = recorder(log);  // named: g++ 12 destroys a lambda temporary of a co_await twice
  auto [t, proto] = co_await loop.create_connection(std::move(factory3), ours.release());
  EXPECT_EQ(t->get_write_buffer_limits(), (std::pair<std::size_t, std::size_t>(16 << 10, 64 << 10)));
  t->set_write_buffer_limits(128 << 10);
  EXPECT_EQ(t->get_write_buffer_limits(), (std::pair<std::size_t, std::size_t>(32 << 10, 128 << 10)));
  const QByteArray all = pattern_bytes(kTotal);
  std::size_t peak = 0;
  for (std::size_t sent = 0; sent < kTotal; sent += kChunk) {
    // A well-behaved producer: stops while paused.
    co_await log->until([&] { return log->pauses == log->resumes; });
    t->write(QByteArrayView(all).sliced(static_cast<qsizetype>(sent), kChunk));
    peak = std::max(peak, t->get_write_buffer_size());
  }
  EXPECT_GT(log->pauses, 0) << "the slow reader made the buffer cross the high-water mark";
  EXPECT_LE(peak, (128u << 10) + kChunk) << "memory stays bounded by high + one write";
  co_await drained(*t);
  EXPECT_EQ(log->pauses, log->resumes) << "resume_writing came once the buffer drained to the low mark";
  t->close();
  co_await log->until([&] { return log->lost > 0; });
  peer.join();
  EXPECT_EQ(received.load(), static_cast<long long>(kTotal)) << "every byte in order";
}

QILOOP_TEST_MODES(Transport, WritelinesSendsManyPiecesInOrder) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  auto pair = unix_pair();  // no structured binding: clang 14 cannot capture one in a lambda
  Fd& ours = pair.first;
  Fd& theirs = pair.second;
  std::atomic<long long> received{0};
  Peer peer;
  peer.start([&] { received = read_pattern(theirs.get(), 100us, 8192); });
  auto factory4 = recorder(log);  // named: g++ 12 destroys a lambda temporary of a co_await twice
  auto [t, proto] = co_await loop.create_connection(std::move(factory4), ours.release());
  // More pieces than one sendmsg takes (IOV_MAX), and more bytes than the
  // socket buffer: some are sent at once, the rest buffered.
  const std::vector<QByteArray> owned = pattern_pieces(3000, 700);
  std::size_t at = 0;  // the stream's length
  for (const QByteArray& piece : owned) at += static_cast<std::size_t>(piece.size());
  std::vector<QByteArrayView> views(owned.begin(), owned.end());
  t->writelines(views);
  EXPECT_GT(t->get_write_buffer_size(), 0u) << "the rest was buffered";
  t->writelines(std::span<const QByteArrayView>());  // nothing: no effect
  t->write_eof();
  co_await drained(*t);
  peer.join();
  EXPECT_EQ(received.load(), static_cast<long long>(at));
  t->close();
  co_await log->until([&] { return log->lost > 0; });
}

// --- Half-close, reset, close, abort ---------------------------------------------------

QILOOP_TEST_MODES(Transport, WriteEofHalfClosesAndThePeerStillAnswers) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  auto pair = unix_pair();  // no structured binding: clang 14 cannot capture one in a lambda
  Fd& ours = pair.first;
  Fd& theirs = pair.second;
  std::string got;
  Peer peer;
  peer.start([&] {
    got = read_all(theirs.get());  // until our EOF
    send_all(theirs.get(), "bye");
    ::shutdown(theirs.get(), SHUT_WR);
  });
  auto factory5 = recorder(log);  // named: g++ 12 destroys a lambda temporary of a co_await twice
  auto [t, proto] = co_await loop.create_connection(std::move(factory5), ours.release());
  t->write("data");
  t->write_eof();
  t->write_eof();  // idempotent
  EXPECT_THROW(t->write("more"), qi::RuntimeError);
  EXPECT_THROW(t->writelines({"more"}), qi::RuntimeError);
  co_await log->until([&] { return log->lost > 0; });
  peer.join();
  EXPECT_EQ(got, "data");
  EXPECT_EQ(log->data, "bye") << "reading went on after write_eof";
  EXPECT_EQ(log->eofs, 1);
  EXPECT_EQ(log->error, nullptr) << "eof_received returned false: a clean close";
}

QILOOP_TEST_MODES(Transport, EofReceivedReturningTrueKeepsItOpenForWriting) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  auto pair = unix_pair();  // no structured binding: clang 14 cannot capture one in a lambda
  Fd& ours = pair.first;
  Fd& theirs = pair.second;
  ::shutdown(theirs.get(), SHUT_WR);
  auto factory6 = recorder(log, [](Recorder& r) { r.keep_open_on_eof = true; });  // named: g++ 12 destroys a lambda temporary of a co_await twice
  auto [t, proto] = co_await loop.create_connection(std::move(factory6),
                                                   ours.release());
  co_await log->until([&] { return log->eofs > 0; });
  co_await settle();
  EXPECT_EQ(log->lost, 0) << "still open";
  EXPECT_FALSE(t->is_closing());
  t->write("after eof");
  t->close();
  co_await log->until([&] { return log->lost > 0; });
  EXPECT_EQ(read_all(theirs.get()), "after eof");
}

QILOOP_TEST_MODES(Transport, PeerResetIsConnectionResetError) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  Fd lsn = listener(qi::SocketAddress::ip("127.0.0.1", 0));
  Peer peer;
  peer.start([&] {
    Fd c(::accept4(lsn.get(), nullptr, nullptr, SOCK_CLOEXEC));
    linger lg{1, 0};  // close() sends RST
    ::setsockopt(c.get(), SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    char b;
    (void)::recv(c.get(), &b, 1, 0);  // after our first byte
  });
  auto factory7 = recorder(log);  // named: g++ 12 destroys a lambda temporary of a co_await twice
  auto [t, proto] = co_await loop.create_connection(std::move(factory7), "127.0.0.1", sockname(lsn.get()).port());
  t->write("x");
  co_await log->until([&] { return log->lost > 0; });
  peer.join();
  EXPECT_TRUE(holds<qi::ConnectionResetError>(log->error)) << what_of(log->error);
  EXPECT_NE(what_of(log->error).find("127.0.0.1"), std::string::npos) << what_of(log->error);
}

QILOOP_TEST_MODES(Transport, CloseTwiceAndAbortAfterCloseLoseTheConnectionOnce) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  auto pair = unix_pair();  // no structured binding: clang 14 cannot capture one in a lambda
  Fd& ours = pair.first;
  Fd& theirs = pair.second;
  auto factory8 = recorder(log);  // named: g++ 12 destroys a lambda temporary of a co_await twice
  auto [t, proto] = co_await loop.create_connection(std::move(factory8), ours.release());
  t->write("flushed");
  t->close();
  t->close();
  EXPECT_FALSE(t->is_reading());
  co_await log->until([&] { return log->lost > 0; });
  co_await settle();
  EXPECT_EQ(log->lost, 1);
  EXPECT_EQ(log->error, nullptr);
  EXPECT_EQ(read_all(theirs.get()), "flushed");
}

QILOOP_TEST_MODES(Transport, WritesAfterCloseAreDroppedAndTheFifthWarnsOnce) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  auto pair = unix_pair();  // no structured binding: clang 14 cannot capture one in a lambda
  Fd& ours = pair.first;
  Fd& theirs = pair.second;
  auto factory9 = recorder(log);  // named: g++ 12 destroys a lambda temporary of a co_await twice
  auto [t, proto] = co_await loop.create_connection(std::move(factory9), ours.release());
  static std::vector<std::string> warnings;
  warnings.clear();
  QtMessageHandler previous = qInstallMessageHandler([](QtMsgType type, const QMessageLogContext&, const QString& m) {
    if (type == QtWarningMsg && m.contains("writes after close()")) warnings.push_back(m.toStdString());
  });
  t->write("before");
  t->close();
  for (int i = 0; i < 7; ++i) t->write("dropped");
  t->writelines({"dropped"});
  qInstallMessageHandler(previous);
  co_await log->until([&] { return log->lost > 0; });
  EXPECT_EQ(warnings.size(), 1u);
  EXPECT_EQ(read_all(theirs.get()), "before");
}

// asyncio's _set_write_buffer_limits: high < low is a ValueError naming both
// values, and the marks stay what they were.
QILOOP_TEST_MODES(Transport, WaterMarksWithHighBelowLowAreAValueErrorAndChangeNothing) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  auto pair = unix_pair();  // no structured binding: clang 14 cannot capture one in a lambda
  Fd& ours = pair.first;
  auto factory = recorder(log);  // named: g++ 12 destroys a lambda temporary of a co_await twice
  auto [t, proto] = co_await loop.create_connection(std::move(factory), ours.release());
  const auto before = t->get_write_buffer_limits();
  std::string message;
  try {
    t->set_write_buffer_limits(1, 2);
  } catch (const qi::ValueError& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("set_write_buffer_limits: high (1) must be >= low (2)"), std::string::npos) << message;
  message.clear();
  try {
    t->set_write_buffer_limits(std::nullopt, 0);  // low 0 alone is fine: high becomes 0
    t->set_write_buffer_limits(100, 400);
  } catch (const qi::ValueError& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("high (100) must be >= low (400)"), std::string::npos) << message;
  EXPECT_EQ(t->get_write_buffer_limits(), (std::pair<std::size_t, std::size_t>(0, 0)));
  t->set_write_buffer_limits(before.second, before.first);
  EXPECT_EQ(t->get_write_buffer_limits(), before);
  t->close();
  co_await log->until([&] { return log->lost > 0; });
}

QILOOP_TEST_MODES(Transport, AbortDropsTheBuffer) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  auto pair = unix_pair();  // no structured binding: clang 14 cannot capture one in a lambda
  Fd& ours = pair.first;
  Fd& theirs = pair.second;
  auto factory10 = recorder(log);  // named: g++ 12 destroys a lambda temporary of a co_await twice
  auto [t, proto] = co_await loop.create_connection(std::move(factory10), ours.release());
  t->write(pattern_bytes(4 << 20));  // the peer does not read: most is buffered
  EXPECT_GT(t->get_write_buffer_size(), 0u);
  t->abort();
  EXPECT_EQ(t->get_write_buffer_size(), 0u);
  EXPECT_TRUE(t->is_closing());
  t->abort();
  t->close();
  co_await log->until([&] { return log->lost > 0; });
  co_await settle();
  EXPECT_EQ(log->lost, 1);
  EXPECT_EQ(log->error, nullptr);
  long long got = read_pattern(theirs.get());
  EXPECT_LT(got, 4 << 20) << "the buffered rest was never sent";
}

// --- Reading ---------------------------------------------------------------------------

QILOOP_TEST_MODES(Transport, PauseAndResumeReading) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  auto pair = unix_pair();  // no structured binding: clang 14 cannot capture one in a lambda
  Fd& ours = pair.first;
  Fd& theirs = pair.second;
  auto factory11 = recorder(log);  // named: g++ 12 destroys a lambda temporary of a co_await twice
  auto [t, proto] = co_await loop.create_connection(std::move(factory11), ours.release());
  send_all(theirs.get(), "one");
  co_await log->until([&] { return log->data == "one"; });
  t->pause_reading();
  t->pause_reading();
  EXPECT_FALSE(t->is_reading());
  send_all(theirs.get(), "two");
  co_await settle();
  EXPECT_EQ(log->data, "one") << "nothing is delivered while paused";
  t->resume_reading();
  t->resume_reading();
  EXPECT_TRUE(t->is_reading());
  co_await log->until([&] { return log->data == "onetwo"; });
  t->close();
  co_await log->until([&] { return log->lost > 0; });
}

QILOOP_TEST_MODES(Transport, SockCallsOnATransportsFdAreRefused) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto log = std::make_shared<Log>();
  auto pair = unix_pair();  // no structured binding: clang 14 cannot capture one in a lambda
  Fd& ours = pair.first;
  int fd = ours.get();
  auto factory12 = recorder(log);  // named: g++ 12 destroys a lambda temporary of a co_await twice
  auto [t, proto] = co_await loop.create_connection(std::move(factory12), ours.release());
  const std::string used = ": fd " + std::to_string(fd) + " is used by a transport; use the transport's methods";
  std::string what;
  try {
    (void)co_await loop.sock_recv(fd, 10);
  } catch (const qi::RuntimeError& e) {
    what = e.what();
  }
  EXPECT_NE(what.find("sock_recv" + used), std::string::npos) << what;
  EXPECT_NE(what.find("close the transport before using the fd directly"), std::string::npos) << what;
  what.clear();
  try {
    co_await loop.sock_sendall(fd, "x");
  } catch (const qi::RuntimeError& e) {
    what = e.what();
  }
  EXPECT_NE(what.find("sock_sendall" + used), std::string::npos) << what;
  EXPECT_TRUE(t->is_reading()) << "the transport goes on";
  t->close();
  co_await log->until([&] { return log->lost > 0; });
}

// --- Protocol errors -------------------------------------------------------------------

QILOOP_TEST_MODES(Transport, AThrowingCallbackIsReportedAndAbortsTheTransport) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  std::vector<std::string> reports;
  loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& c) { reports.push_back(c.message); });
  auto log = std::make_shared<Log>();
  auto pair = unix_pair();  // no structured binding: clang 14 cannot capture one in a lambda
  Fd& ours = pair.first;
  Fd& theirs = pair.second;
  auto factory13 = recorder(log, [](Recorder& r) { r.on_data = [](Recorder&, QByteArrayView) { throw std::runtime_error("boom"); }; });  // named: g++ 12 destroys a lambda temporary of a co_await twice
  auto [t, proto] = co_await loop.create_connection(std::move(factory13),
      ours.release());
  t->write(pattern_bytes(1 << 20));  // buffered: the abort drops it
  send_all(theirs.get(), "x");
  co_await log->until([&] { return log->lost > 0; });
  EXPECT_EQ(what_of(log->error), "boom") << "connection_lost receives the callback's exception";
  QILOOP_CO_ASSERT(ASSERT_EQ(reports.size(), 1u));
  EXPECT_NE(reports[0].find("protocol.data_received() call failed"), std::string::npos) << reports[0];
  loop.set_exception_handler(nullptr);
}

QILOOP_TEST_MODES(Transport, AThrowingConnectionLostIsReported) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  std::vector<std::string> reports;
  loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& c) { reports.push_back(c.message); });
  struct Bad : qi::Protocol {
    bool* gone;
    void connection_lost(std::exception_ptr) override { throw std::runtime_error("lost badly"); }
    ~Bad() override { *gone = true; }
  };
  bool gone = false;
  auto pair = unix_pair();  // no structured binding: clang 14 cannot capture one in a lambda
  Fd& ours = pair.first;
  auto factory14 = [&] {
        auto b = std::make_unique<Bad>();
        b->gone = &gone;
        return b;
      };  // named: g++ 12 destroys a lambda temporary of a co_await twice
  auto [t, proto] = co_await loop.create_connection(std::move(factory14),
      ours.release());
  t->close();
  co_await settle();
  EXPECT_TRUE(gone) << "the protocol is destroyed anyway";
  QILOOP_CO_ASSERT(ASSERT_EQ(reports.size(), 1u));
  EXPECT_NE(reports[0].find("connection_lost"), std::string::npos);
  loop.set_exception_handler(nullptr);
}

// --- A Python asyncio peer ---------------------------------------------------------------

// An asyncio echo server: prints its port, echoes one connection until EOF.
const std::string kPythonEcho = python_one_connection_server(R"PY(
        while data := await r.read(65536):
            w.write(data)
            await w.drain())PY");

TRANSPORT_TEST_MODES_IF(TransportPython, EchoWithAnAsyncioServer, no_python3()) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  PythonPeer py(kPythonEcho);
  uint16_t port = py.port();  // blocking: the child's start-up only
  auto log = std::make_shared<Log>();
  auto factory15 = recorder(log);  // named: g++ 12 destroys a lambda temporary of a co_await twice
  auto [t, proto] = co_await loop.create_connection(std::move(factory15), "127.0.0.1", port);
  QByteArray payload = pattern_bytes(1 << 20);
  t->write(payload);
  t->write_eof();
  co_await log->until([&] { return log->lost > 0; });
  EXPECT_EQ(log->data, payload);
  EXPECT_EQ(log->error, nullptr);
  EXPECT_EQ(co_await py.exit_status(), 0);
}

}  // namespace

namespace {

// loop.close() destroys a transport still open: its fd is closed and its
// protocol destroyed (without connection_lost), with a warning.
TEST(Transport, LoopCloseDestroysAnUnclosedTransport) {
  FdLeakCheck leaks;
  auto pair = unix_pair();  // no structured binding: clang 14 cannot capture one in a lambda
  Fd& ours = pair.first;
  Fd& theirs = pair.second;
  auto log = std::make_shared<Log>();
  struct Tracked : Recorder {
    using Recorder::Recorder;
    bool* gone = nullptr;
    ~Tracked() override { *gone = true; }
  };
  bool gone = false;
  {
    QiEventLoop loop;
    int fd = ours.release();
    auto factory = [&] {
      auto p = std::make_unique<Tracked>(log);
      p->gone = &gone;
      return p;
    };
    auto opened = loop.run_until_complete(loop.create_connection(std::move(factory), fd));
    EXPECT_EQ(opened.first->fileno(), fd);
    loop.close();
    EXPECT_TRUE(gone);
    EXPECT_EQ(log->lost, 0) << "no callback runs on a closing loop";
  }
  EXPECT_EQ(read_all(theirs.get()), "") << "our end was closed: EOF";
}

}  // namespace

namespace {

// A loop with static storage duration holding an open transport at exit:
// its destructor closes the transport after main()'s thread_locals are
// gone, so the transports' registry must not be one of them.
TEST(Transport, AStaticLoopClosesItsTransportsAtExit) {
  pid_t pid = -1;
  char* argv[] = {const_cast<char*>(QILOOP_STATIC_LOOP_HELPER), nullptr};
  ASSERT_EQ(posix_spawn(&pid, QILOOP_STATIC_LOOP_HELPER, nullptr, nullptr, argv, environ), 0);
  int status = 0;
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (::waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      FAIL() << "the program did not exit within 20 s";
    }
    std::this_thread::sleep_for(5ms);
  }
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace

// --- Hostile round (attack-i10) ---------------------------------------------------------

namespace {

// Where a protocol throws, and what.
enum class Throw { kMade, kData, kEof, kPause, kResume, kLost, kGetBuffer, kBufferUpdated };
constexpr Throw kAllThrowPositions[] = {Throw::kMade,   Throw::kData, Throw::kEof,       Throw::kPause,
                                        Throw::kResume, Throw::kLost, Throw::kGetBuffer, Throw::kBufferUpdated};

struct ThrowPlan {
  Throw at;
  bool non_std;  // throw an int, not a std::exception
  std::shared_ptr<Log> log = std::make_shared<Log>();
  void boom(Throw here) const {
    if (here != at) return;
    if (non_std) throw 42;
    throw std::runtime_error("boom");
  }
};

struct ThrowingProtocol : qi::Protocol {
  ThrowPlan plan;
  explicit ThrowingProtocol(ThrowPlan p) : plan(std::move(p)) {}
  void connection_made(qi::Transport&) override {
    ++plan.log->made;
    plan.log->note("made");
    plan.boom(Throw::kMade);
  }
  void data_received(QByteArrayView d) override {
    plan.log->data.append(d);
    plan.log->note("data");
    plan.boom(Throw::kData);
  }
  bool eof_received() override {
    ++plan.log->eofs;
    plan.log->note("eof");
    plan.boom(Throw::kEof);
    return false;
  }
  void pause_writing() override {
    ++plan.log->pauses;
    plan.log->note("pause");
    plan.boom(Throw::kPause);
  }
  void resume_writing() override {
    ++plan.log->resumes;
    plan.log->note("resume");
    plan.boom(Throw::kResume);
  }
  void connection_lost(std::exception_ptr e) override {
    ++plan.log->lost;
    plan.log->error = e;
    plan.log->note("lost");
    plan.boom(Throw::kLost);
  }
};

struct ThrowingBuffered : qi::BufferedProtocol {
  ThrowPlan plan;
  std::array<std::byte, 7> mem{};  // small: many reads
  explicit ThrowingBuffered(ThrowPlan p) : plan(std::move(p)) {}
  void connection_made(qi::Transport&) override { ++plan.log->made; }
  std::span<std::byte> get_buffer(std::size_t) override {
    plan.boom(Throw::kGetBuffer);
    return mem;
  }
  void buffer_updated(std::size_t n) override {
    plan.log->data.append(reinterpret_cast<const char*>(mem.data()), static_cast<qsizetype>(n));
    plan.log->note("data");
    plan.boom(Throw::kBufferUpdated);
  }
  void connection_lost(std::exception_ptr e) override {
    ++plan.log->lost;
    plan.log->error = e;
    plan.log->note("lost");
  }
};

}  // namespace

// Whether the peer's side of fd reads EOF or a reset (not "would block").
static bool peer_sees_the_end(int fd) {
  char buf[65536];
  for (;;) {
    ssize_t r = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (r > 0) continue;
    return r == 0 || errno != EAGAIN;
  }
}

// Every callback position, a std::exception and a non-std one: exactly one
// connection_lost, the peer sees our end close, nothing leaks, the loop goes on.
QILOOP_TEST_MODES(Transport, HostileThrowsFromEveryCallbackPosition) {
  auto& loop = qi::get_running_loop();
  std::vector<std::string> reports;
  loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& c) { reports.push_back(c.message); });
  for (Throw at : kAllThrowPositions) {
    for (bool non_std : {false, true}) {
      FdLeakCheck leaks;
      reports.clear();
      SCOPED_TRACE("position " + std::to_string(static_cast<int>(at)) + (non_std ? " (int)" : " (std)"));
      ThrowPlan plan{at, non_std};
      auto log = plan.log;
      auto pair = unix_pair();
      Fd& ours = pair.first;
      Fd& theirs = pair.second;
      Peer reader;  // joined before the pair's fds close
      const bool buffered = at == Throw::kGetBuffer || at == Throw::kBufferUpdated;
      qi::Transport* t = nullptr;
      bool threw = false;
      try {
        if (buffered) {
          auto factory = [plan] { return std::make_unique<ThrowingBuffered>(plan); };
          t = (co_await loop.create_connection(std::move(factory), ours.release())).first;
        } else {
          auto factory = [plan] { return std::make_unique<ThrowingProtocol>(plan); };
          t = (co_await loop.create_connection(std::move(factory), ours.release())).first;
        }
      } catch (...) {
        threw = true;
      }
      EXPECT_EQ(threw, at == Throw::kMade);
      if (t) {
        switch (at) {
          case Throw::kData:
          case Throw::kGetBuffer:
          case Throw::kBufferUpdated:
            send_all(theirs.get(), "xyz");
            break;
          case Throw::kEof:
            ::shutdown(theirs.get(), SHUT_WR);
            break;
          case Throw::kPause:
            t->set_write_buffer_limits(1, 0);
            t->write(pattern_bytes(1 << 20));
            break;
          case Throw::kResume: {
            t->set_write_buffer_limits(1, 0);
            t->write(pattern_bytes(1 << 20));
            int fd = theirs.get();
            reader.start([fd] { (void)read_pattern(fd); });  // ends at our close
            break;
          }
          case Throw::kLost:
            t->close();
            break;
          case Throw::kMade:
            break;
        }
      }
      auto give_up = std::chrono::steady_clock::now() + 10s;
      while (log->lost == 0 && std::chrono::steady_clock::now() < give_up) co_await qi::sleep(2ms);
      co_await qi::sleep(5ms);
      EXPECT_EQ(log->lost, 1) << "connection_lost exactly once";
      // A throwing connection_made propagates out of create_connection instead.
      EXPECT_EQ(reports.size(), at == Throw::kMade ? 0u : 1u);
      if (at != Throw::kResume) {
        EXPECT_TRUE(peer_sees_the_end(theirs.get())) << "our end is closed";
      }
    }
  }
  loop.set_exception_handler(nullptr);
}

namespace {

// --- Review i10 #9: the fd API refuses a transport's fd ----------------------------------

// asyncio's _ensure_fd_no_transport: loop.add_reader / add_writer /
// remove_reader / remove_writer on a transport's fd would replace or drop
// the transport's own handler (it would stop reading for good); refused
// with qi::RuntimeError, and the transport goes on.
QILOOP_TEST_MODES(Transport, AddReaderOnATransportsFdIsRefused) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto pair = unix_pair();
  auto log = std::make_shared<Log>();
  auto factory = recorder(log);
  auto [t, proto] = co_await loop.create_connection(std::move(factory), pair.first.release());
  const int fd = t->fileno();
  int refused = 0;
  auto expect_refused = [&](const char* api, auto call) {
    try {
      call();
      ADD_FAILURE() << api << " on a transport's fd was accepted";
    } catch (const qi::RuntimeError& e) {
      ++refused;
      std::string m = e.what();
      EXPECT_NE(m.find(std::string(api) + ": fd " + std::to_string(fd) + " is used by a transport"),
                std::string::npos) << m;
    }
  };
  expect_refused("add_reader", [&] { loop.add_reader(fd, [] {}); });
  expect_refused("add_writer", [&] { loop.add_writer(fd, [] {}); });
  expect_refused("remove_reader", [&] { (void)loop.remove_reader(fd); });
  expect_refused("remove_writer", [&] { (void)loop.remove_writer(fd); });
  if (refused == 4) {  // else the transport's reader is gone: nothing would arrive
    send_all(pair.second.get(), "still read");
    co_await log->until([&] { return log->data.size() >= 10; });
    EXPECT_EQ(log->data, "still read");
  }
  t->close();
  co_await log->until([&] { return log->lost > 0; });
  // Once the transport is gone the fd number is free again.
  int sv[2];
  QILOOP_CO_ASSERT(ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0, sv), 0));
  Fd a(sv[0]), b(sv[1]);
  loop.add_reader(a.get(), [] {});
  EXPECT_TRUE(loop.remove_reader(a.get()));
}

// --- Review i10 D: transport.set_protocol ------------------------------------------------

// asyncio's transport.set_protocol: later data goes to the new protocol
// (a qi::Protocol or a qi::BufferedProtocol), and so does connection_lost;
// connection_made is not called again. The old protocol is handed back:
// here from inside its own data_received, so it is kept until then.
QILOOP_TEST_MODES(Transport, SetProtocolSwitchesMidStream) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto pair = unix_pair();
  auto first = std::make_shared<Log>(), second = std::make_shared<Log>(), third = std::make_shared<Log>();
  std::unique_ptr<qi::BaseProtocol> retired;
  auto switch_on_first_data = [&](Recorder& r) {
    r.on_data = [&](Recorder& self, QByteArrayView) {
      if (!retired) retired = self.transport->set_protocol(std::make_unique<Recorder>(second));
    };
  };
  auto factory = recorder(first, switch_on_first_data);
  auto [t, proto] = co_await loop.create_connection(std::move(factory), pair.first.release());
  send_all(pair.second.get(), "one");
  co_await first->until([&] { return retired != nullptr; });
  EXPECT_EQ(retired.get(), proto) << "the old protocol is handed back";
  EXPECT_NE(&t->get_protocol(), proto);
  send_all(pair.second.get(), "two");
  co_await second->until([&] { return second->data.size() >= 3; });
  EXPECT_EQ(first->data, "one");
  EXPECT_EQ(second->data, "two");
  EXPECT_EQ(second->made, 0) << "connection_made is not called again";

  // To a BufferedProtocol, from outside a callback.
  auto buffered = std::make_unique<BufferedRecorder<64>>(third);
  BufferedRecorder<64>* raw = buffered.get();
  std::unique_ptr<qi::BaseProtocol> old = t->set_protocol(std::move(buffered));
  EXPECT_EQ(&t->get_protocol(), raw);
  send_all(pair.second.get(), "three");
  co_await third->until([&] { return third->data.size() >= 5; });
  EXPECT_EQ(third->data, "three");
  EXPECT_EQ(second->data, "two");

  try {
    (void)t->set_protocol(nullptr);
    ADD_FAILURE() << "set_protocol(nullptr) was accepted";
  } catch (const qi::ValueError& e) {
    EXPECT_STREQ(e.what(), "set_protocol: the protocol is null; pass a new protocol (std::make_unique)");
  }
  try {
    (void)t->set_protocol(std::make_unique<qi::BaseProtocol>());
    ADD_FAILURE() << "set_protocol of a plain qi::BaseProtocol was accepted";
  } catch (const qi::ValueError& e) {
    EXPECT_STREQ(e.what(), "set_protocol: the protocol is a qi::BaseProtocol that is neither a qi::Protocol nor a "
                           "qi::BufferedProtocol; derive it from one of them");
  }
  EXPECT_EQ(&t->get_protocol(), raw) << "a refused protocol changes nothing";

  pair.second.reset();  // EOF: the current protocol hears it
  co_await third->until([&] { return third->lost > 0; });
  EXPECT_EQ(third->eofs, 1);
  EXPECT_EQ(second->lost, 0);
  EXPECT_EQ(first->lost, 0);
}

}  // namespace
