// net/write_buffer.cpp — WriteBuffer and the gathering write.
#include "net/write_buffer.h"

#include "net/fd_watch.h"
#include "net/sys_io.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <cerrno>
#include <climits>
#include <csignal>
#include <ctime>

namespace qi::detail {

namespace {

// sendmsg / writev take at most IOV_MAX pieces; the rest goes on the next call.
constexpr std::size_t kMaxIov = IOV_MAX;

// writev on a pipe whose reader is gone raises SIGPIPE, which kills by
// default (Python ignores it at start-up; a C++ program need not): with
// the default disposition, SIGPIPE is blocked on this thread around the
// write, and the one the write raised is taken back before unblocking.
// When the application ignores or handles SIGPIPE, or blocks it already,
// the write goes as is.
ssize_t writev_no_sigpipe(int fd, const iovec* iov, int count) noexcept {
  struct sigaction current {};
  bool guard = ::sigaction(SIGPIPE, nullptr, &current) == 0 && current.sa_handler == SIG_DFL &&
               !(current.sa_flags & SA_SIGINFO);
  sigset_t pipe_only, old;
  if (guard) {
    sigemptyset(&pipe_only);
    sigaddset(&pipe_only, SIGPIPE);
    guard = ::pthread_sigmask(SIG_BLOCK, &pipe_only, &old) == 0;
    if (guard && sigismember(&old, SIGPIPE)) {
      guard = false;  // already blocked: the application's own pending SIGPIPE stays
    }
  }
  ssize_t n;
  do n = sys_writev(fd, iov, count);
  while (n < 0 && errno == EINTR);
  if (guard) {
    int err = errno;
    if (n < 0 && err == EPIPE) {
      timespec zero{0, 0};
      while (::sigtimedwait(&pipe_only, nullptr, &zero) < 0 && errno == EINTR) {
      }
    }
    ::pthread_sigmask(SIG_SETMASK, &old, nullptr);
    errno = err;
  }
  return n;
}

// One gathering write: bytes written, 0 when the fd would block, -errno.
ssize_t write_iov(int fd, FdKind kind, iovec* iov, std::size_t count) noexcept {
  ssize_t n;
  if (kind == FdKind::kSocket) {
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = count;
    do n = sys_sendmsg(fd, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
  } else {
    n = writev_no_sigpipe(fd, iov, static_cast<int>(count));
  }
  if (n >= 0) return n;
  return would_block(errno) ? 0 : -errno;
}

}  // namespace

int WriteBuffer::write_or_buffer(int fd, FdKind kind, std::span<const QByteArrayView> pieces) {
  std::size_t first = 0;  // the pieces before it were written whole
  std::size_t written_of_first = 0;
  if (pieces_.empty()) {
    iovec iov[kMaxIov];
    std::size_t count = 0;
    for (std::size_t i = 0; i < pieces.size() && count < kMaxIov; ++i) {
      if (pieces[i].isEmpty()) continue;
      iov[count++] = {const_cast<char*>(pieces[i].data()), static_cast<std::size_t>(pieces[i].size())};
    }
    if (count == 0) return 0;
    ssize_t n = write_iov(fd, kind, iov, count);
    if (n < 0) return static_cast<int>(-n);
    auto left = static_cast<std::size_t>(n);
    while (first < pieces.size() && left >= static_cast<std::size_t>(pieces[first].size()))
      left -= static_cast<std::size_t>(pieces[first++].size());
    written_of_first = left;
  }
  for (std::size_t i = first; i < pieces.size(); ++i)
    append(i == first ? pieces[i].sliced(static_cast<qsizetype>(written_of_first)) : pieces[i]);
  return 0;
}

int WriteBuffer::flush(int fd, FdKind kind) {
  iovec iov[kMaxIov];
  std::size_t count = 0;
  for (auto it = pieces_.begin(); it != pieces_.end() && count < kMaxIov; ++it, ++count) {
    std::size_t skip = count == 0 ? front_sent_ : 0;
    iov[count] = {it->data() + skip, static_cast<std::size_t>(it->size()) - skip};
  }
  if (count == 0) return 0;
  ssize_t n = write_iov(fd, kind, iov, count);
  if (n < 0) return static_cast<int>(-n);
  consume(static_cast<std::size_t>(n));
  return 0;
}

bool WriteBuffer::clear() noexcept {
  if (pieces_.empty()) return false;
  pieces_.clear();
  front_sent_ = 0;
  size_ = 0;
  return true;
}

void WriteBuffer::append(QByteArrayView rest) {
  if (rest.isEmpty()) return;
  pieces_.push_back(rest.toByteArray());
  size_ += static_cast<std::size_t>(rest.size());
}

void WriteBuffer::consume(std::size_t n) noexcept {
  size_ -= n;
  while (n > 0) {
    std::size_t left = static_cast<std::size_t>(pieces_.front().size()) - front_sent_;
    if (n < left) {
      front_sent_ += n;
      return;
    }
    n -= left;
    pieces_.pop_front();
    front_sent_ = 0;
  }
}

}  // namespace qi::detail
