// The echo soak of issue 12, shared by tests/net/soak_test.cpp (a short
// run on every test preset) and the qiloop_soak program (scripts/soak.sh,
// the full 10,000-connection run; docs/reliability.md).
//
//   soak::Options o{.connections = 1000};
//   soak::InProcessServer server;                       // or RemoteServer(pid, port)
//   soak::Report r = co_await soak::run(o, server);     // r.failures() empty: passed
//
// In waves, each of `connections` qiloop stream clients plus `raw`
// blocking sockets on a thread (an independent peer) send numbered
// messages of varying sizes in bursts and check every echoed byte: none
// lost, none reordered. One stalled client sends without ever reading for
// the whole run: the server's back-pressure (drain) must hold its memory
// bounded and must not delay anybody else. After each wave the server's
// fds are back to their count before it; resident memory is sampled after
// each wave (after malloc_trim: what the processes hold, not the free
// memory glibc caches), the first ones (warmup_waves) being the warm-up.
#pragma once

#include "net/transport_peers.h"

#include <qiloop/net/streams.h>
#include <qiloop/sync/event.h>
#include <qiloop/sync/semaphore.h>
#include <qiloop/task.h>
#include <qiloop/threads/to_thread.h>

#include <malloc.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace soak {

using namespace std::chrono_literals;

#if defined(__SANITIZE_ADDRESS__)
inline constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
inline constexpr bool kAddressSanitizer = true;
#else
inline constexpr bool kAddressSanitizer = false;
#endif
#else
inline constexpr bool kAddressSanitizer = false;
#endif
using Clock = std::chrono::steady_clock;

struct Options {
  int connections = 1000;  // qiloop stream clients per wave
  int raw = 20;            // blocking clients on a thread per wave
  int waves = 4;
  int warmup_waves = 2;    // the allocator's pools grow during these; memory is flat afterwards
  int rounds = 5;          // per client and wave: bursts sent, then read back
  int burst = 4;           // messages per round
  int connecting = 200;    // connections being made at once
  bool stalled = true;     // one client that never reads
  std::chrono::seconds slowest_allowed = 30s;  // any client's time in a wave
  std::size_t rss_growth_allowed_kb = 8 * 1024;  // after the warm-up waves; not checked under ASan
};

// Resident memory (kB) and open fds of a process ("self" or a pid).
inline long rss_kb(const std::string& proc = "self") {
  std::ifstream in("/proc/" + proc + "/statm");
  long size = 0, resident = 0;
  in >> size >> resident;
  return resident * (::sysconf(_SC_PAGESIZE) / 1024);
}
inline int fd_count(const std::string& proc = "self") {
  int n = 0;
  if (DIR* d = ::opendir(("/proc/" + proc + "/fd").c_str())) {
    while (dirent* e = ::readdir(d))
      if (e->d_name[0] != '.') ++n;
    ::closedir(d);
  }
  return proc == "self" ? n - 1 : n;  // not opendir's own
}

// Raises RLIMIT_NOFILE's soft limit to `needed` fds; "" or why it cannot.
inline std::string raise_fd_limit(rlim_t needed) {
  rlimit lim{};
  ::getrlimit(RLIMIT_NOFILE, &lim);
  if (lim.rlim_cur >= needed) return "";
  if (lim.rlim_max < needed)
    return "needs " + std::to_string(needed) + " fds, RLIMIT_NOFILE's hard limit is " + std::to_string(lim.rlim_max) +
           " (raise it: ulimit -Hn, or /etc/security/limits.conf)";
  lim.rlim_cur = needed;
  if (::setrlimit(RLIMIT_NOFILE, &lim) != 0) return "setrlimit(RLIMIT_NOFILE) failed";
  return "";
}

// --- Messages ---------------------------------------------------------------------------

// Message seq of client id: 8 bytes of header (id, seq), then a body of
// 16..271 bytes whose bytes depend on both: a lost, duplicated, reordered
// or foreign byte shows.
inline QByteArray message(uint32_t id, uint32_t seq) {
  const int body = 16 + static_cast<int>((id * 7u + seq * 13u) % 256u);
  QByteArray m(8 + body, Qt::Uninitialized);
  for (int i = 0; i < 4; ++i) {
    m[i] = static_cast<char>(id >> (8 * i));
    m[4 + i] = static_cast<char>(seq >> (8 * i));
  }
  for (int i = 0; i < body; ++i) m[8 + i] = static_cast<char>((id * 31u + seq * 17u + static_cast<uint32_t>(i)) & 0xff);
  return m;
}

// What a wave's clients did.
struct Tally {
  long long bytes = 0;         // echoed and checked, both ways
  int completed = 0;           // clients that finished every round
  int corrupt = 0;             // clients that got a wrong or missing byte
  int failed = 0;              // clients whose connection failed
  std::string first_failure;
  double slowest_s = 0;        // the longest a client took
};

inline void note_failure(Tally& t, const std::string& what) {
  ++t.failed;
  if (t.first_failure.empty()) t.first_failure = what;
}

// --- The server -------------------------------------------------------------------------

// What the soak asks of the server, in this process or another.
class ServerView {
 public:
  virtual ~ServerView() = default;
  virtual qi::SocketAddress address() const = 0;
  virtual long rss_kb() const = 0;
  virtual int fds() const = 0;
  // Has the server give its free memory back to the system (malloc_trim),
  // so that rss_kb() measures what it holds, not the high-water mark of
  // the wave that glibc keeps cached.
  virtual qi::Coro<void> trim() = 0;
  // Waits (at most `limit`) until the server is back to `idle_fds` open
  // fds: every connection of the wave gone.
  qi::Coro<bool> drained(std::chrono::seconds limit, int idle_fds) {
    auto deadline = Clock::now() + limit;
    while (fds() > idle_fds && Clock::now() < deadline) co_await qi::sleep(10ms);
    co_return fds() <= idle_fds;
  }
};

// Echoes with back-pressure: a reader that does not read makes drain()
// wait, and this connection's reading with it.
inline qi::Coro<void> echo_stream(qi::StreamReader r, qi::StreamWriter w) {
  try {
    for (;;) {
      QByteArray d = co_await r.read(64 * 1024);
      if (d.isEmpty()) break;
      w.write(d);
      co_await w.drain();
    }
    w.close();
    co_await w.wait_closed();
  } catch (const qi::OSError&) {
    w.close();  // a client that reset: the connection goes anyway
  }
}

// A qi::start_server echo server on 127.0.0.1 in this process.
class InProcessServer final : public ServerView {
 public:
  qi::Coro<void> start(int backlog) {
    auto cb = [](qi::StreamReader r, qi::StreamWriter w) -> qi::Coro<void> {
      return echo_stream(std::move(r), std::move(w));
    };
    qi::ServerOptions options;
    options.backlog = backlog;
    server_ = co_await qi::start_server(std::move(cb), "127.0.0.1", 0, std::move(options));
  }
  qi::Coro<void> stop() {
    server_.close();
    co_await server_.wait_closed();
  }
  qi::SocketAddress address() const override { return server_.sockets().at(0); }
  long rss_kb() const override { return soak::rss_kb(); }
  int fds() const override { return fd_count(); }
  qi::Coro<void> trim() override {
    ::malloc_trim(0);
    co_return;
  }

 private:
  qi::Server server_;
};

// A server in another process (qiloop_soak --serve): watched through /proc.
class RemoteServer final : public ServerView {
 public:
  RemoteServer(int pid, uint16_t port) : pid_(std::to_string(pid)), port_(port) {}
  qi::SocketAddress address() const override { return qi::SocketAddress::ip("127.0.0.1", port_); }
  long rss_kb() const override { return soak::rss_kb(pid_); }
  int fds() const override { return fd_count(pid_); }
  // qiloop_soak --serve trims on SIGUSR1.
  qi::Coro<void> trim() override {
    ::kill(std::stoi(pid_), SIGUSR1);
    co_await qi::sleep(300ms);
  }

 private:
  std::string pid_;
  uint16_t port_;
};

// --- Clients ----------------------------------------------------------------------------

inline qi::Coro<void> stream_client(qi::SocketAddress at, uint32_t id, const Options& o, Tally& t,
                                    qi::Semaphore& connecting) {
  const auto t0 = Clock::now();
  std::optional<std::pair<qi::StreamReader, qi::StreamWriter>> s;
  co_await connecting.acquire();
  // No name to resolve: connected by hand, then taken over by the streams.
  peers::Fd fd(::socket(at.family(), SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  try {
    if (fd.get() < 0) qi::throw_os_error(errno, "socket()");
    co_await qi::get_running_loop().sock_connect(fd.get(), at);
    s.emplace(co_await qi::open_connection(fd.release()));
  } catch (const std::exception& e) {
    note_failure(t, std::string("connect: ") + e.what());
  }
  connecting.release();
  if (!s) co_return;
  bool ok = true;
  try {
    uint32_t seq = 0;
    for (int round = 0; round < o.rounds && ok; ++round) {
      QByteArray sent;
      for (int b = 0; b < o.burst; ++b) {
        QByteArray m = message(id, seq++);
        s->second.write(m);
        sent.append(m);
      }
      co_await s->second.drain();
      QByteArray back = co_await s->first.readexactly(sent.size());
      if (back != sent) {
        ok = false;
        ++t.corrupt;
        if (t.first_failure.empty()) t.first_failure = "client " + std::to_string(id) + ": wrong echo in round " +
                                                       std::to_string(round);
      }
      t.bytes += 2 * sent.size();
    }
    s->second.close();
    co_await s->second.wait_closed();
  } catch (const std::exception& e) {
    ok = false;
    note_failure(t, "client " + std::to_string(id) + ": " + e.what());
  }
  if (ok) ++t.completed;
  t.slowest_s = std::max(t.slowest_s, std::chrono::duration<double>(Clock::now() - t0).count());
}

// `count` blocking clients on the calling thread (a worker): all connect,
// then each round every one sends its burst, then every one reads it back.
inline Tally raw_clients(qi::SocketAddress at, uint32_t first_id, int count, const Options& o) {
  Tally t;
  const auto t0 = Clock::now();
  std::vector<peers::Fd> fds;
  for (int i = 0; i < count; ++i) {
    peers::Fd fd = peers::connect_client(at);
    if (fd.get() < 0) {
      note_failure(t, std::string("raw connect: ") + std::strerror(errno));
      return t;
    }
    fds.push_back(std::move(fd));
  }
  std::vector<uint32_t> seq(static_cast<std::size_t>(count), 0);
  std::vector<bool> ok(static_cast<std::size_t>(count), true);
  for (int round = 0; round < o.rounds; ++round) {
    std::vector<std::string> sent(static_cast<std::size_t>(count));
    for (int i = 0; i < count; ++i) {
      for (int b = 0; b < o.burst; ++b) sent[i] += message(first_id + static_cast<uint32_t>(i), seq[i]++).toStdString();
      peers::send_all(fds[i].get(), sent[i]);
    }
    for (int i = 0; i < count; ++i) {
      std::string back = peers::recv_exactly(fds[i].get(), sent[i].size());
      if (back != sent[i] && ok[i]) {
        ok[i] = false;
        ++t.corrupt;
        if (t.first_failure.empty()) t.first_failure = "raw client " + std::to_string(i) + ": wrong echo";
      }
      t.bytes += 2 * static_cast<long long>(sent[i].size());
    }
  }
  fds.clear();
  for (bool b : ok) t.completed += b;
  t.slowest_s = std::chrono::duration<double>(Clock::now() - t0).count();
  return t;
}

// --- The run ----------------------------------------------------------------------------

struct WaveFigures {
  double seconds = 0;
  long long bytes = 0;
  int clients = 0;
  double slowest_s = 0;
  long server_rss_kb = 0;
  long self_rss_kb = 0;
  int server_fds_before = 0;
  int server_fds_after = 0;
  int self_fds_before = 0;
  int self_fds_after = 0;
};

struct Report {
  std::vector<WaveFigures> waves;
  int warmup = 0;
  std::vector<std::string> problems;
  long long stalled_sent = 0;   // what the stalled client got the server to take
  std::string describe() const {
    std::string out;
    char line[400];
    for (std::size_t i = 0; i < waves.size(); ++i) {
      const WaveFigures& w = waves[i];
      std::snprintf(line, sizeof line,
                    "wave %zu%s: %d clients, %.1f MB echoed in %.2f s (slowest client %.2f s); server RSS %ld kB, "
                    "this process %ld kB; server fds %d -> %d, this process %d -> %d\n",
                    i + 1, static_cast<int>(i) < warmup ? " (warm-up)" : "", w.clients, static_cast<double>(w.bytes) / 1e6, w.seconds,
                    w.slowest_s, w.server_rss_kb, w.self_rss_kb, w.server_fds_before, w.server_fds_after,
                    w.self_fds_before, w.self_fds_after);
      out += line;
    }
    std::snprintf(line, sizeof line, "stalled client: the server took %lld bytes and then held it off\n", stalled_sent);
    out += line;
    for (const std::string& p : problems) out += "PROBLEM: " + p + "\n";
    return out;
  }
};

// Sends without ever reading until cancelled; `sent` counts what went.
inline qi::Coro<void> stalled_client(int fd, std::shared_ptr<long long> sent) {
  auto& loop = qi::get_running_loop();
  const QByteArray chunk = peers::pattern_bytes(64 * 1024);
  for (;;) {
    co_await loop.sock_sendall(fd, chunk);
    *sent += chunk.size();
  }
}

inline qi::Coro<Report> run(const Options& o, ServerView& server) {
  Report report;
  report.warmup = o.warmup_waves;
  auto& loop = qi::get_running_loop();
  const qi::SocketAddress at = server.address();

  peers::Fd stalled;
  std::optional<qi::Task<void>> stalling;
  auto stalled_sent = std::make_shared<long long>(0);
  if (o.stalled) {
    stalled = peers::connect_client(at);
    ::fcntl(stalled.get(), F_SETFL, ::fcntl(stalled.get(), F_GETFL) | O_NONBLOCK);
    stalling = loop.create_task(stalled_client(stalled.get(), stalled_sent), "stalled client");
    co_await qi::sleep(200ms);  // its buffers fill, the server's drain() waits
  }
  const int server_idle_fds = server.fds();  // listener + the stalled connection
  const int self_idle_fds = fd_count();
  uint32_t next_id = 0;
  for (int wave = 0; wave < o.waves; ++wave) {
    WaveFigures f;
    f.server_fds_before = server_idle_fds;
    f.self_fds_before = self_idle_fds;
    const auto t0 = Clock::now();
    Tally t;
    qi::Semaphore connecting(o.connecting);
    std::vector<qi::Task<void>> clients;
    clients.reserve(static_cast<std::size_t>(o.connections));
    for (int i = 0; i < o.connections; ++i)
      clients.push_back(loop.create_task(stream_client(at, next_id++, o, t, connecting)));
    const uint32_t raw_first = next_id;
    next_id += static_cast<uint32_t>(o.raw);
    const Options& opts = o;
    const int raw_count = o.raw;
    auto raw_job = [at, raw_first, raw_count, &opts] { return raw_clients(at, raw_first, raw_count, opts); };
    Tally raw = co_await qi::to_thread(std::move(raw_job));
    for (qi::Task<void>& c : clients) co_await c;
    f.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    f.bytes = t.bytes + raw.bytes;
    f.clients = t.completed + raw.completed;
    f.slowest_s = std::max(t.slowest_s, raw.slowest_s);
    const int expected = o.connections + o.raw;
    if (f.clients != expected || t.corrupt + raw.corrupt + t.failed + raw.failed > 0)
      report.problems.push_back("wave " + std::to_string(wave + 1) + ": " + std::to_string(f.clients) + " of " +
                                std::to_string(expected) + " clients completed; first failure: " + t.first_failure +
                                raw.first_failure);
    if (f.slowest_s > static_cast<double>(o.slowest_allowed.count()))
      report.problems.push_back("wave " + std::to_string(wave + 1) + ": the slowest client took " +
                                std::to_string(f.slowest_s) + " s (allowed: " +
                                std::to_string(o.slowest_allowed.count()) + " s)");
    const bool gone = co_await server.drained(20s, server_idle_fds);
    f.server_fds_after = server.fds();
    f.self_fds_after = fd_count();
    if (!gone || f.server_fds_after != f.server_fds_before)
      report.problems.push_back("wave " + std::to_string(wave + 1) + ": the server has " +
                                std::to_string(f.server_fds_after) + " fds open after it, " +
                                std::to_string(f.server_fds_before) + " before");
    if (f.self_fds_after != f.self_fds_before)
      report.problems.push_back("wave " + std::to_string(wave + 1) + ": the clients' process has " +
                                std::to_string(f.self_fds_after) + " fds open after it, " +
                                std::to_string(f.self_fds_before) + " before");
    co_await server.trim();
    ::malloc_trim(0);
    f.server_rss_kb = server.rss_kb();
    f.self_rss_kb = rss_kb();
    report.waves.push_back(f);
  }
  report.stalled_sent = *stalled_sent;
  if (stalling) {
    if (stalling->done())
      report.problems.push_back("the stalled client's sending ended: the server read everything it sent");
    stalling->cancel();
    try {
      co_await *stalling;
    } catch (const qi::CancelledError&) {
    }
    stalled.reset();
  }
  // Memory after the warm-up waves: flat, within the allowance. ASan's
  // quarantine holds freed memory back (256 MB by default): there
  // LeakSanitizer checks instead.
  if (!kAddressSanitizer) {
    const auto base = static_cast<std::size_t>(o.warmup_waves);
    for (std::size_t i = base; i < report.waves.size() && base > 0; ++i) {
      long server_growth = report.waves[i].server_rss_kb - report.waves[base - 1].server_rss_kb;
      long self_growth = report.waves[i].self_rss_kb - report.waves[base - 1].self_rss_kb;
      for (long growth : {server_growth, self_growth})
        if (growth > static_cast<long>(o.rss_growth_allowed_kb))
          report.problems.push_back(std::string(growth == server_growth ? "the server's" : "the clients'") +
                                    " RSS grew by " + std::to_string(growth) + " kB from the end of the warm-up to wave " +
                                    std::to_string(i + 1));
    }
  }
  co_return report;
}

}  // namespace soak
