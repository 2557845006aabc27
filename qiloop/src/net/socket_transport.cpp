// net/socket_transport.cpp — SocketTransport (asyncio's
// _SelectorSocketTransport, selector_events.py).
#include "net/socket_transport.h"

#include <qiloop/errors.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <string>
#include <utility>

namespace qi::detail {

namespace {

// asyncio's _set_nodelay: TCP only.
void set_nodelay(int fd, const SocketAddress& local) {
  if (local.family() != AF_INET && local.family() != AF_INET6) return;
  int one = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace

void ensure_fd_no_transport(int fd, const char* api) {
  if (FdTransport::registered(fd))
    throw qi::RuntimeError(std::string(api) + ": fd " + std::to_string(fd) +
                           " is used by a transport; use the transport's methods (write, pause_reading, ...), or "
                           "close the transport before using the fd directly");
}

SocketTransport::SocketTransport(QiEventLoop& loop, int fd, std::unique_ptr<BaseProtocol> protocol)
    : StreamTransport(loop, fd, std::move(protocol), FdKind::kSocket, Direction::kBoth) {
  set_nodelay(fd, sockname());
}

void SocketTransport::on_eof() {
  read_eof_ = true;
  bool keep_open = false;
  try {
    keep_open = protocol_eof_received();
  } catch (...) {
    return protocol_failed("protocol.eof_received() call failed");
  }
  if (keep_open)
    loop_.remove_reader(fd_);
  else
    close();
}

void SocketTransport::write_eof() {
  if (closing_ || write_eof_) return;
  write_eof_ = true;
  if (buffer_.empty()) (void)::shutdown(fd_, SHUT_WR);
}

void SocketTransport::on_flushed() {
  if (write_eof_) (void)::shutdown(fd_, SHUT_WR);
}

}  // namespace qi::detail

void QiEventLoop::close_transports() noexcept { qi::detail::FdTransport::destroy_all(*this); }
