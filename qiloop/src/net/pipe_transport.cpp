// net/pipe_transport.cpp — the pipe transports and
// QiEventLoop::connect_read_pipe / connect_write_pipe's non-template half
// (asyncio's unix_events.py).
#include "net/pipe_transport.h"

#include "net/socket_transport.h"

#include <qiloop/errors.h>
#include <qiloop/net/pipes.h>

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <string>

namespace qi::detail {

// asyncio's EOF of a read pipe: closing from here on; eof_received, then
// connection_lost(None) — the pipe has no other direction to keep open.
void ReadPipeTransport::on_eof() {
  read_eof_ = true;
  closing_ = true;
  LoopFds::remove_reader(loop_, fd_);
  try {
    (void)protocol_eof_received();
  } catch (...) {
    return protocol_failed("protocol.eof_received() call failed");
  }
  if (!lost_) schedule_connection_lost(nullptr);
}

// A pipe's write end polls readable (EPOLLERR) once its reader is gone:
// asyncio's way to notice it without writing.
void WritePipeTransport::start_watching() {
  if (watch_peer_) LoopFds::add_reader(loop_, fd_, [this] { peer_closed(); });
}

void WritePipeTransport::peer_closed() {
  force_close(buffer_.empty() ? nullptr : qi::make_os_error(EPIPE, "transport (" + describe() + "): the pipe's reader closed"));
}

}  // namespace qi::detail

qi::Transport* QiEventLoop::open_pipe_transport(ProtocolFactory factory, int fd, bool write) {
  using namespace qi::detail;
  const char* api = write ? "connect_write_pipe" : "connect_read_pipe";
  struct stat st;
  if (::fstat(fd, &st) < 0) qi::throw_os_error(errno, std::string(api) + ": fd " + std::to_string(fd));
  const bool fifo = S_ISFIFO(st.st_mode), sock = S_ISSOCK(st.st_mode);
  if (!fifo && !sock && !S_ISCHR(st.st_mode))
    throw qi::ValueError(std::string(api) + ": fd " + std::to_string(fd) +
                         " is not a pipe, a FIFO, a socket or a character device (a regular file or a directory "
                         "is always ready, so the loop cannot wait on it); read files with qi::to_thread");
  ensure_fd_no_transport(fd, api);
  // Some character devices (/dev/null, /dev/zero) cannot be polled (epoll
  // refuses them): refused here, before connection_made, rather than after.
  if (!write && S_ISCHR(st.st_mode)) {
    try {
      add_reader(fd, [] {});
    } catch (const std::exception& e) {
      throw qi::ValueError(std::string(api) + ": fd " + std::to_string(fd) +
                           " is a character device the loop cannot wait on (" + e.what() +
                           "); read it with qi::to_thread");
    }
    remove_reader(fd);
  }
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0 || ::fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
    qi::throw_os_error(errno, std::string(api) + ": making fd " + std::to_string(fd) + " non-blocking");
  FdKind kind = sock ? FdKind::kSocket : FdKind::kPipe;
  if (write) return WritePipeTransport::open(*this, fd, kind, fifo || sock, factory);
  return ReadPipeTransport::open(*this, fd, kind, factory);
}
