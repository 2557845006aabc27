// net/write_buffer.h — the bytes a stream transport holds until its fd
// takes them, and the one gathering write both the socket and the pipe
// transports send with. Internal.
//
//   WriteBuffer buf;
//   int err = buf.write_or_buffer(fd, FdKind::kSocket, pieces);  // tries the fd first
//   ...                                                          // later, when writable:
//   err = buf.flush(fd, FdKind::kSocket);                        // one sendmsg / writev
//
// Invariant: size() is the sum of the unsent bytes of pieces_, of which
// front_sent_ bytes of the first were sent already; no piece is empty.
#pragma once

#include <QtCore/QByteArray>
#include <QtCore/QByteArrayView>

#include <cstddef>
#include <deque>
#include <span>

namespace qi::detail {

// How bytes go to an fd: sendmsg(MSG_NOSIGNAL) on a socket; writev on a
// pipe or a character device, with SIGPIPE kept from killing the process.
enum class FdKind : bool { kSocket, kPipe };

class WriteBuffer {
 public:
  bool empty() const noexcept { return pieces_.empty(); }
  std::size_t size() const noexcept { return size_; }

  // With nothing buffered, writes pieces to fd at once and buffers what it
  // did not take; else buffers them all (order is kept). 0, or the errno of
  // a failed write (nothing buffered then).
  int write_or_buffer(int fd, FdKind kind, std::span<const QByteArrayView> pieces);
  // Writes what is buffered (one gathering call) and drops what went. 0
  // (also when the fd would block), or the errno of a failed write.
  int flush(int fd, FdKind kind);
  // Drops everything; whether there was anything.
  bool clear() noexcept;

 private:
  void append(QByteArrayView rest);
  void consume(std::size_t n) noexcept;

  std::deque<QByteArray> pieces_;
  std::size_t front_sent_ = 0;
  std::size_t size_ = 0;
};

}  // namespace qi::detail
