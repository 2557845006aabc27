// Helpers of the transport tests: fds, peers that are not qiloop (blocking
// POSIX sockets on a std::thread), and a protocol that records what it
// receives into a log that outlives it (a transport destroys its protocol
// after connection_lost).
#pragma once

#include <qiloop/net/socket.h>
#include <qiloop/net/transport.h>
#include <qiloop/sync/event.h>
#include <qiloop/testing.h>
#include <qiloop/threads/to_thread.h>

#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cctype>
#include <chrono>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

// Both run modes (QILOOP_TEST_MODES), skipped (before any loop runs) when `why_not` is not empty.
#define TRANSPORT_TEST_MODES_IF(suite, name, why_not)                                            \
  qi::Coro<void> suite##_##name##_body();                                                      \
  TEST(suite, name##_nested) {                                                                 \
    if (std::string w = (why_not); !w.empty()) GTEST_SKIP() << w;                              \
    qi::testing::run_test(suite##_##name##_body(), {.mode = qi::testing::RunMode::kNested});   \
  }                                                                                            \
  TEST(suite, name##_attached) {                                                               \
    if (std::string w = (why_not); !w.empty()) GTEST_SKIP() << w;                              \
    qi::testing::run_test(suite##_##name##_body(), {.mode = qi::testing::RunMode::kAttached}); \
  }                                                                                            \
  qi::Coro<void> suite##_##name##_body()

namespace peers {

using namespace std::chrono_literals;

inline const bool kSigpipeIgnored = [] { return std::signal(SIGPIPE, SIG_IGN) != SIG_ERR; }();

class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  Fd(Fd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  Fd& operator=(Fd&& o) noexcept {
    reset(std::exchange(o.fd_, -1));
    return *this;
  }
  ~Fd() { reset(); }
  int get() const { return fd_; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }

 private:
  int fd_ = -1;
};

inline int count_fds() {
  int n = 0;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (::readdir(d)) ++n;
    ::closedir(d);
  }
  return n;
}

// Fails the test when the body leaves an fd open.
struct FdLeakCheck {
  int before = count_fds();
  ~FdLeakCheck() { EXPECT_EQ(count_fds(), before) << "an fd leaked"; }
};

// A peer's socket never blocks a test for ever.
inline void bound_peer_waits(int fd) {
  timeval tv{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  ::setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
}

inline qi::SocketAddress sockname(int fd) {
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  return qi::SocketAddress::from_native(reinterpret_cast<sockaddr*>(&ss), len);
}

// A blocking listening socket on `at` (port 0: any free one).
inline Fd listener(const qi::SocketAddress& at, int backlog = 16) {
  Fd fd(::socket(at.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  int one = 1;
  ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  EXPECT_EQ(::bind(fd.get(), at.native(), at.size()), 0) << std::strerror(errno);
  EXPECT_EQ(::listen(fd.get(), backlog), 0);
  bound_peer_waits(fd.get());
  return fd;
}

// The next connection `lsn` accepts: blocking, its waits bounded.
inline Fd accept_peer(int lsn) {
  Fd c(::accept4(lsn, nullptr, nullptr, SOCK_CLOEXEC));
  bound_peer_waits(c.get());
  return c;
}

// A connected AF_UNIX stream pair: [0] for the transport, [1] blocking,
// the peer's.
inline std::pair<Fd, Fd> unix_pair() {
  int sv[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
  bound_peer_waits(sv[1]);
  return {Fd(sv[0]), Fd(sv[1])};
}

// A peer on its own thread, joined when it goes.
class Peer {
 public:
  Peer() = default;
  explicit Peer(std::function<void()> f) : t_(std::move(f)) {}
  ~Peer() { join(); }
  void start(std::function<void()> f) { t_ = std::thread(std::move(f)); }
  void join() {
    if (t_.joinable()) t_.join();
  }

 private:
  std::thread t_;
};

// Byte i of the test stream: not periodic in any buffer size.
inline char pattern(std::size_t i) { return static_cast<char>((i * 131 + (i >> 9)) & 0xff); }
inline QByteArray pattern_bytes(std::size_t n, std::size_t from = 0) {
  QByteArray b(static_cast<qsizetype>(n), Qt::Uninitialized);
  for (std::size_t i = 0; i < n; ++i) b[static_cast<qsizetype>(i)] = pattern(from + i);
  return b;
}

// The test stream cut into `count` pieces of 1..max_piece bytes (cycling),
// starting at byte `from`: for writelines().
inline std::vector<QByteArray> pattern_pieces(int count, std::size_t max_piece, std::size_t from = 0) {
  std::vector<QByteArray> pieces;
  for (int i = 0; i < count; ++i) {
    const std::size_t n = 1 + static_cast<std::size_t>(i) % max_piece;
    pieces.push_back(pattern_bytes(n, from));
    from += n;
  }
  return pieces;
}

// Reads (read(2): sockets and pipes) until EOF (or error), checking the pattern; the count, or -1 at the
// first wrong byte. pause: a slow reader.
inline long long read_pattern(int fd, std::chrono::microseconds pause = 0us, std::size_t chunk = 65536) {
  std::vector<char> buf(chunk);
  long long total = 0;
  for (;;) {
    ssize_t r = ::read(fd, buf.data(), buf.size());
    if (r <= 0) return total;
    for (ssize_t i = 0; i < r; ++i)
      if (buf[static_cast<std::size_t>(i)] != pattern(static_cast<std::size_t>(total + i))) return -1;
    total += r;
    if (pause > 0us) std::this_thread::sleep_for(pause);
  }
}

// Reads everything until EOF (sockets and pipes).
inline std::string read_all(int fd) {
  std::string out;
  char buf[65536];
  for (;;) {
    ssize_t r = ::read(fd, buf, sizeof buf);
    if (r <= 0) return out;
    out.append(buf, static_cast<std::size_t>(r));
  }
}

inline void send_all(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t r = ::send(fd, s.data(), s.size(), MSG_NOSIGNAL);
    if (r <= 0) return;
    s.remove_prefix(static_cast<std::size_t>(r));
  }
}

// Echoes until EOF, then closes: the peer of the echo tests.
inline void echo_until_eof(int fd) {
  char buf[65536];
  for (;;) {
    ssize_t r = ::recv(fd, buf, sizeof buf, 0);
    if (r <= 0) break;
    send_all(fd, std::string_view(buf, static_cast<std::size_t>(r)));
  }
}

inline bool ipv6_loopback() {
  Fd fd(::socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (fd.get() < 0) return false;
  auto a = qi::SocketAddress::ip("::1", 0);
  return ::bind(fd.get(), a.native(), a.size()) == 0;
}

// What the protocol saw; shared with the test, since the protocol goes
// with its transport.
struct Log {
  QByteArray data;
  int made = 0;
  int eofs = 0;
  int lost = 0;
  int pauses = 0;
  int resumes = 0;
  std::exception_ptr error;
  std::vector<std::string> order;  // the callbacks, in order
  qi::Event changed;               // set by every callback

  void note(const char* what) {
    order.emplace_back(what);
    changed.set();
  }
  // Waits until pred() holds (each callback wakes it).
  template <class Pred>
  qi::Coro<void> until(Pred pred) {
    while (!pred()) {
      changed.clear();
      co_await changed.wait();
    }
  }
};

// Waits until the transport's write buffer is empty (no callback says so
// unless the protocol was paused: polls, bounded by the kit's watchdog).
inline qi::Coro<void> drained(qi::Transport& t) {
  while (t.get_write_buffer_size() > 0) co_await qi::sleep(std::chrono::milliseconds(2));
}

// A qi::Protocol that records into a Log; behaviour hooks for the tests.
struct Recorder : qi::Protocol {
  explicit Recorder(std::shared_ptr<Log> l) : log(std::move(l)) {}
  std::shared_ptr<Log> log;
  qi::Transport* transport = nullptr;
  bool keep_open_on_eof = false;
  std::function<void(Recorder&, QByteArrayView)> on_data;

  void connection_made(qi::Transport& t) override {
    transport = &t;
    ++log->made;
    log->note("made");
  }
  void data_received(QByteArrayView d) override {
    log->data.append(d);
    log->note("data");
    if (on_data) on_data(*this, d);
  }
  bool eof_received() override {
    ++log->eofs;
    log->note("eof");
    return keep_open_on_eof;
  }
  void connection_lost(std::exception_ptr e) override {
    ++log->lost;
    log->error = e;
    log->note("lost");
  }
  void pause_writing() override {
    ++log->pauses;
    log->note("pause");
  }
  void resume_writing() override {
    ++log->resumes;
    log->note("resume");
  }
};

// The factory of a Recorder logging into `log`.
inline auto recorder(std::shared_ptr<Log> log, std::function<void(Recorder&)> setup = {}) {
  return [log, setup] {
    auto r = std::make_unique<Recorder>(log);
    if (setup) setup(*r);
    return r;
  };
}

// The errno a qi::OSError in e carries (0: none).
inline int code_of(std::exception_ptr e) {
  try {
    if (e) std::rethrow_exception(e);
  } catch (const qi::OSError& x) {
    return x.code();
  } catch (...) {
  }
  return 0;
}

// What an exception_ptr holds, as text ("" for null).
inline std::string what_of(std::exception_ptr e) {
  if (!e) return "";
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "(not a std::exception)";
  }
}

template <class E>
bool holds(std::exception_ptr e) {
  if (!e) return false;
  try {
    std::rethrow_exception(e);
  } catch (const E&) {
    return true;
  } catch (...) {
    return false;
  }
}

// --- Pipes and datagrams (issue 10: pipes_test, datagram_test) ---------------------------

// A pipe: [0] the read end, [1] the write end (both blocking, close-on-exec).
inline std::pair<Fd, Fd> pipe_pair() {
  int fds[2];
  EXPECT_EQ(::pipe2(fds, O_CLOEXEC), 0);
  return {Fd(fds[0]), Fd(fds[1])};
}

// Writes all of s to a pipe (or any fd); stops at an error.
inline void write_all(int fd, std::string_view s) {
  while (!s.empty()) {
    ssize_t r = ::write(fd, s.data(), s.size());
    if (r <= 0) return;
    s.remove_prefix(static_cast<std::size_t>(r));
  }
}

// Why a test needing python3's asyncio cannot run ("" when it can).
inline std::string no_python3() {
  return std::system("python3 -c 'import asyncio' >/dev/null 2>&1") == 0 ? "" : "python3 is not installed";
}

// A child process with its stdin and stdout (stderr merged) on pipes;
// killed (SIGTERM) and reaped when it goes.
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    // Built before fork: the child of a threaded process must not allocate.
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::dup2(out[1], 2);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    in_ = Fd(in[1]);
    out_ = Fd(out[0]);
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      wait();
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  void write_stdin(std::string_view s) {
    while (!s.empty()) {
      ssize_t r = ::write(in_.get(), s.data(), s.size());
      if (r <= 0) return;
      s.remove_prefix(static_cast<std::size_t>(r));
    }
  }
  void close_stdin() { in_.reset(); }

  // Reads until `needle` is in the output (or EOF, or 10 s); the output so far.
  std::string read_until(std::string_view needle) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (output_.find(needle) == std::string::npos && !eof_ && std::chrono::steady_clock::now() < deadline)
      read_some(100);
    return output_;
  }
  // Everything until EOF (at most 10 s).
  std::string read_all() { return read_until(std::string_view("\x01\x02 never")); }

  // The first line that holds a number: the port a server prints.
  uint16_t port() {
    read_until("\n");
    auto deadline = std::chrono::steady_clock::now() + 10s;
    for (;;) {
      // s_server: "ACCEPT [::]:43361"; ssl_peer.py: "43361".
      std::size_t nl = output_.find('\n');
      if (nl != std::string::npos) {
        std::string line = output_.substr(0, nl);
        if (line.rfind("ACCEPT", 0) == 0 || (!line.empty() && std::isdigit(static_cast<unsigned char>(line[0])))) {
          std::size_t colon = line.rfind(':');
          return static_cast<uint16_t>(std::stoi(colon == std::string::npos ? line : line.substr(colon + 1)));
        }
        output_.erase(0, nl + 1);
        continue;
      }
      if (eof_ || std::chrono::steady_clock::now() > deadline)
        throw std::runtime_error("the child printed no port: " + output_);
      read_some(100);
    }
  }

  int wait() {
    if (pid_ <= 0) return status_;
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return status_;
  }

 private:
  void read_some(int ms) {
    pollfd p{out_.get(), POLLIN, 0};
    if (::poll(&p, 1, ms) <= 0) return;
    char buf[4096];
    ssize_t r = ::read(out_.get(), buf, sizeof buf);
    if (r <= 0)
      eof_ = true;
    else
      output_.append(buf, static_cast<std::size_t>(r));
  }

  pid_t pid_ = -1;
  int status_ = -1;
  Fd in_, out_;
  std::string output_;
  bool eof_ = false;
};

// `python3 -c script args...`: a peer written with asyncio itself. A server
// script prints the port it listens on as its first line (port()).
class PythonPeer : public Child {
 public:
  explicit PythonPeer(const std::string& script, const std::vector<std::string>& args = {})
      : Child(argv(script, args)) {}

  // Waits for the script to end (on a worker thread: the loop keeps
  // running), reading its output to EOF first; its exit status, 0 on success.
  qi::Coro<int> exit_status() {
    auto wait_for_exit = [this] {
      read_all();
      return wait();
    };
    co_return co_await qi::to_thread(std::move(wait_for_exit));
  }

 private:
  static std::vector<std::string> argv(const std::string& script, const std::vector<std::string>& args) {
    std::vector<std::string> v{"python3", "-c", script};
    v.insert(v.end(), args.begin(), args.end());
    return v;
  }
};

// The script of an asyncio server on 127.0.0.1 that prints its port, serves
// one connection with `serve` (the body of `async def serve(r, w)`, indented
// by 8), closes it and exits.
inline std::string python_one_connection_server(std::string_view serve) {
  return R"PY(
import asyncio, struct
async def main():
    done = asyncio.Event()
    async def serve(r, w):
)PY" + std::string(serve) + R"PY(
        w.close()
        done.set()
    srv = await asyncio.start_server(serve, '127.0.0.1', 0)
    print(srv.sockets[0].getsockname()[1], flush=True)
    await asyncio.wait_for(done.wait(), 20)
    srv.close()
asyncio.run(main())
)PY";
}

// An asyncio echo server of frames (a 4-byte little-endian length, then that
// many bytes): prints its port, serves one connection until its EOF, exits.
inline const std::string kPythonFrameEcho = python_one_connection_server(R"PY(
        try:
            while True:
                head = await r.readexactly(4)
                (n,) = struct.unpack('<I', head)
                w.write(head + await r.readexactly(n))
                await w.drain()
        except asyncio.IncompleteReadError:
            pass)PY");

// body as a frame of kPythonFrameEcho: its 4-byte little-endian length, then body.
inline QByteArray length_prefixed(QByteArrayView body) {
  QByteArray f(4, Qt::Uninitialized);
  auto n = static_cast<uint32_t>(body.size());
  for (int i = 0; i < 4; ++i) f[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  f.append(body);
  return f;
}

// The length a frame's 4-byte little-endian head announces.
inline uint32_t length_of(QByteArrayView head) {
  uint32_t n = 0;
  for (int i = 0; i < 4; ++i) n |= static_cast<uint32_t>(static_cast<unsigned char>(head[i])) << (8 * i);
  return n;
}

}  // namespace peers

// --- Clients of the server tests (blocking sockets) ---------------------------------------

#include <cstdlib>  // mkdtemp

namespace peers {

// A blocking client connected to `to`, or -1 with errno set.
inline Fd connect_client(const qi::SocketAddress& to) {
  Fd fd(::socket(to.family(), SOCK_STREAM | SOCK_CLOEXEC, 0));
  bound_peer_waits(fd.get());
  if (::connect(fd.get(), to.native(), to.size()) < 0) {
    int err = errno;
    fd.reset();
    errno = err;
  }
  return fd;
}

// 0 when a connection to `to` succeeds (it is closed at once), else errno.
inline int connect_errno(const qi::SocketAddress& to) {
  Fd fd = connect_client(to);
  return fd.get() >= 0 ? 0 : errno;
}

// Exactly n bytes (fewer at EOF or error).
inline std::string recv_exactly(int fd, std::size_t n) {
  std::string out(n, '\0');
  std::size_t got = 0;
  while (got < n) {
    ssize_t r = ::recv(fd, out.data() + got, n - got, 0);
    if (r <= 0) break;
    got += static_cast<std::size_t>(r);
  }
  out.resize(got);
  return out;
}

// Connects to `to`, sends msg, returns what comes back (msg.size() bytes at
// most), closes.
inline std::string echo_once(const qi::SocketAddress& to, const std::string& msg) {
  Fd fd = connect_client(to);
  if (fd.get() < 0) return "(connect failed: " + std::string(std::strerror(errno)) + ")";
  send_all(fd.get(), msg);
  return recv_exactly(fd.get(), msg.size());
}

// A fresh private directory under /tmp (for Unix socket files); "" when
// none can be made.
inline std::string temp_dir() {
  char tmpl[] = "/tmp/qiloop-test-XXXXXX";
  return ::mkdtemp(tmpl) ? tmpl : "";
}

}  // namespace peers

// --- Out of fds (hostile round, attack-i10) -----------------------------------------------

#include <sys/resource.h>

#include <algorithm>

namespace peers {

// Leaves exactly `free` fds for the process to open until it goes:
// RLIMIT_NOFILE lowered to the highest fd open + 1, the holes below filled
// with dups of `some_fd`, then `free` of those closed again. Not under
// asan-ubsan (UBSan's vptr check needs a free fd for its pipe).
struct FewFds {
  rlimit saved{};
  std::vector<int> fillers;
  FewFds(int some_fd, int free) {
    int highest = 0;
    if (DIR* d = ::opendir("/proc/self/fd")) {
      while (dirent* e = ::readdir(d))
        if (std::atoi(e->d_name) != ::dirfd(d)) highest = std::max(highest, std::atoi(e->d_name));
      ::closedir(d);
    }
    ::getrlimit(RLIMIT_NOFILE, &saved);
    rlimit low = saved;
    low.rlim_cur = static_cast<rlim_t>(highest + 1 + free);
    ::setrlimit(RLIMIT_NOFILE, &low);
    for (int fd; (fd = ::dup(some_fd)) >= 0;) fillers.push_back(fd);
    for (int i = 0; i < free && !fillers.empty(); ++i) {
      ::close(fillers.back());
      fillers.pop_back();
    }
  }
  ~FewFds() {
    for (int fd : fillers) ::close(fd);
    ::setrlimit(RLIMIT_NOFILE, &saved);
  }
};

}  // namespace peers

// --- A worker thread's own loop -----------------------------------------------------------

#include <qiloop/event_loop.h>

#include <atomic>

namespace peers {

// Runs body() to its end on `loop` (a worker thread's own) once `started`
// reaches `turn`, then closes the loop; what body() throws lands in
// `failure`. The loops start one after another: Qt (not built for TSan)
// sets up each thread's event dispatcher under a lock TSan cannot see; the
// bodies then overlap.
template <class Body>
void run_in_turn(QiEventLoop& loop, const std::atomic<int>& started, int turn, Body body, std::string& failure) {
  while (started < turn) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  try {
    loop.run_until_complete(body());
  } catch (const std::exception& e) {
    failure = e.what();
  }
  loop.close();
}

}  // namespace peers
