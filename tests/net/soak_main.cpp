// qiloop_soak — the echo soak of tests/net/soak.h as a program, for runs
// larger than a test's (scripts/soak.sh; docs/reliability.md).
//
//   qiloop_soak --serve                           # an echo server: prints "PORT <port> PID <pid>",
//                                                 # serves until its stdin closes
//   qiloop_soak --connections 10000 --port P --server-pid PID [--raw 200] [--waves 3]
//   qiloop_soak --connections 2000                # the server in this process too
//
// Exit status 0 when the soak found no problem; its figures on stdout.
#include "net/soak.h"

#include <qiloop/event_loop.h>

#include <QtCore/QCoreApplication>

#include <malloc.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

namespace {

int usage() {
  std::fprintf(stderr,
               "usage: qiloop_soak --serve\n"
               "       qiloop_soak [--connections N] [--raw N] [--waves N] [--rounds N] [--port P --server-pid PID]\n");
  return 2;
}

qi::Coro<void> serve() {
  auto& loop = qi::get_running_loop();
  soak::InProcessServer server;
  co_await server.start(4096);
  // The clients' process asks for a trim before it samples this one's memory.
  loop.add_signal_handler(SIGUSR1, [] { ::malloc_trim(0); });
  std::printf("PORT %u PID %d\n", server.address().port(), static_cast<int>(::getpid()));
  std::fflush(stdout);
  qi::Event eof;
  loop.add_reader(0, [&] {
    char buf[256];
    if (::read(0, buf, sizeof buf) <= 0) {
      loop.remove_reader(0);
      eof.set();
    }
  });
  co_await eof.wait();
  loop.remove_signal_handler(SIGUSR1);
  co_await server.stop();
}

qi::Coro<int> clients(soak::Options o, int port, int server_pid) {
  soak::Report report;
  if (port > 0) {
    soak::RemoteServer server(server_pid, static_cast<uint16_t>(port));
    report = co_await soak::run(o, server);
  } else {
    soak::InProcessServer server;
    co_await server.start(4096);
    report = co_await soak::run(o, server);
    co_await server.stop();
  }
  std::printf("%d connections (+%d blocking), %d waves of %d rounds of %d messages\n%s", o.connections, o.raw,
              o.waves, o.rounds, o.burst, report.describe().c_str());
  co_return report.problems.empty() ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  QCoreApplication app(argc, argv);
  soak::Options o{.connections = 10000, .raw = 200, .waves = 5, .rounds = 5, .burst = 4, .connecting = 500,
                  .slowest_allowed = std::chrono::seconds(60)};
  bool serving = false;
  int port = 0, server_pid = 0;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto next = [&]() -> int { return i + 1 < argc ? std::atoi(argv[++i]) : -1; };
    if (a == "--serve") serving = true;
    else if (a == "--connections") o.connections = next();
    else if (a == "--raw") o.raw = next();
    else if (a == "--waves") o.waves = next();
    else if (a == "--rounds") o.rounds = next();
    else if (a == "--port") port = next();
    else if (a == "--server-pid") server_pid = next();
    else return usage();
  }
  if (o.connections < 0 || o.raw < 0 || o.waves < 1 || o.rounds < 1 || (port > 0) != (server_pid > 0)) return usage();
  // This process's share of the fds: one end of each connection, or both.
  const int ends = serving || port > 0 ? 1 : 2;
  std::string why = soak::raise_fd_limit(static_cast<rlim_t>(ends * (o.connections + o.raw) + 256));
  if (serving) {  // as many connections as the clients' process makes: all it may
    rlimit lim{};
    ::getrlimit(RLIMIT_NOFILE, &lim);
    why = soak::raise_fd_limit(lim.rlim_max);
  }
  if (!why.empty()) {
    std::fprintf(stderr, "qiloop_soak: %s\n", why.c_str());
    return 3;
  }
  if (serving) {
    qi::run(serve());
    return 0;
  }
  return qi::run(clients(o, port, server_pid));
}
