// A program whose QiEventLoop has static storage duration and still holds
// an open transport and an open server when main() returns: the loop closes
// them at exit, after the thread's thread_locals are gone (transport_test runs it and expects a
// clean exit).
#include <qiloop/net/server.h>
#include <qiloop/net/transport.h>
#include <qiloop/qiloop.h>

#include <QtCore/QCoreApplication>

#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <memory>

namespace {
QiEventLoop& static_loop() {
  static QiEventLoop loop;
  return loop;
}
}  // namespace

int main(int argc, char** argv) {
  QCoreApplication app(argc, argv);
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return 2;
  QiEventLoop& loop = static_loop();
  auto factory = [] { return std::make_unique<qi::Protocol>(); };
  auto opened = loop.run_until_complete(loop.create_connection(std::move(factory), fds[0]));
  opened.first->write("left open at exit");
  ::close(fds[1]);
  auto server_factory = [] { return std::make_unique<qi::Protocol>(); };
  qi::Server server = loop.run_until_complete(loop.create_server(std::move(server_factory), "127.0.0.1", 0));
  if (!server.is_serving()) return 3;
  std::puts("returning from main");
  std::fflush(stdout);
  return 0;
}
