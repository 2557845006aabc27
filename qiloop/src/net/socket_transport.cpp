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

SocketTransport::SocketTransport(QiEventLoop& loop, int fd, std::unique_ptr<BaseProtocol> protocol,
                                 std::shared_ptr<ConnectionTracker> tracker)
    : StreamTransport(loop, fd, std::move(protocol), FdKind::kSocket, Direction::kBoth), tracker_(std::move(tracker)) {
  set_nodelay(fd, sockname());
  if (tracker_) tracker_->attach(this);
}

SocketTransport::~SocketTransport() {
  if (tracker_) tracker_->detach(this);
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
    LoopFds::remove_reader(loop_, fd_);
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

namespace qi {
// The transports that have a connection override it.
std::unique_ptr<BaseProtocol> Transport::set_protocol(std::unique_ptr<BaseProtocol>) {
  throw qi::RuntimeError("set_protocol: this transport has no connection any more (it was lost or the loop closed); "
                         "there is no protocol to replace");
}
}  // namespace qi

void QiEventLoop::close_transports() noexcept {
  // Servers first: they stop accepting before their connections go.
  close_servers();
  qi::detail::FdTransport::destroy_all(*this);
}
