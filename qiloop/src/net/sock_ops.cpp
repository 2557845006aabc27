// sock_ops.cpp — QiEventLoop::sock_* (asyncio's selector_events.py
// sock_recv, sock_recv_into, sock_sendall, sock_connect, sock_accept and
// base_events.py / unix_events.py sock_sendfile). The contract is in
// <qiloop/net/socket.h>; how a call waits, in fd_watch.h.
#include <qiloop/errors.h>
#include <qiloop/event_loop.h>
#include <qiloop/net/socket.h>

#include "net/fd_watch.h"
#include "net/socket_transport.h"
#include "net/sys_io.h"

#include <absl/container/flat_hash_set.h>

#include <fcntl.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstddef>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

namespace qi::detail {

namespace {

// The watches alive on this thread's loops: (loop, fd, direction). A loop
// serves one thread, and its sock_* calls run there.
using WatchKey = std::tuple<const QiEventLoop*, int, bool>;
thread_local absl::flat_hash_set<WatchKey> t_watches;

std::string on_fd(const char* api, int fd) { return std::string(api) + " on fd " + std::to_string(fd); }

}  // namespace

FdWatch::FdWatch(QiEventLoop& loop, int fd, Direction direction, const char* api)
    : loop_(loop), fd_(fd), direction_(direction) {
  if (!t_watches.emplace(&loop, fd, direction).second)
    throw qi::RuntimeError(std::string(api) + ": another sock_* call already waits to " +
                           (direction == kRead ? "receive from" : "send to") + " fd " + std::to_string(fd) +
                           "; one call per fd and direction at a time: await the first before starting another "
                           "(or use a transport or stream, which serialise for you)");
  try {
    if (direction == kRead)
      LoopFds::add_reader(loop, fd, [this] { fire(); });
    else
      LoopFds::add_writer(loop, fd, [this] { fire(); });
  } catch (...) {
    t_watches.erase(WatchKey(&loop, fd, direction));
    throw;
  }
}

FdWatch::~FdWatch() {
  // The handler points at this watch: it must not outlive it.
  if (direction_ == kRead)
    LoopFds::remove_reader(loop_, fd_);
  else
    LoopFds::remove_writer(loop_, fd_);
  t_watches.erase(WatchKey(&loop_, fd_, direction_));
}

Future<void> FdWatch::ready() {
  pending_ = loop_.create_future<void>();
  return pending_;
}

namespace {

// Once per call (asyncio checks only in debug mode: a blocking fd would
// stall the whole loop inside the system call).
void check_nonblocking(int fd, const char* api) {
  ensure_fd_no_transport(fd, api);
  int flags = ::fcntl(fd, F_GETFL);
  if (flags < 0) qi::throw_os_error(errno, on_fd(api, fd));
  if (!(flags & O_NONBLOCK))
    throw qi::ValueError(std::string(api) + ": fd " + std::to_string(fd) +
                         " is in blocking mode, which would stall the event loop; set O_NONBLOCK (fcntl(fd, "
                         "F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK), or create it with SOCK_NONBLOCK)");
}

// A size no buffer can have: size_t(-1) (the "everything" idiom, or a
// negative size converted) would make QByteArray(n) empty and recv(2) write
// into Qt's shared empty buffer (EFAULT). Python raises ValueError too.
void check_size(std::size_t n, const char* api) {
  constexpr auto kMax = static_cast<std::size_t>(std::numeric_limits<qsizetype>::max());
  if (n > kMax)
    throw qi::ValueError(std::string(api) + ": " + std::to_string(n) +
                         " bytes is larger than a buffer can be (a QByteArray holds at most " + std::to_string(kMax) +
                         " bytes); pass the most you want to receive at once, e.g. 65536");
}

// recv(2) into [data, data + n): how many bytes, waiting while none are
// queued. The I/O happens in the task after the wake-up, so a cancelled
// wait consumed nothing.
Coro<std::size_t> recv_some(QiEventLoop& loop, int fd, char* data, std::size_t n, const char* api) {
  std::optional<FdWatch> watch;
  for (;;) {
    ssize_t r = sys_recv(fd, data, n, 0);
    if (r >= 0) co_return static_cast<std::size_t>(r);
    const int err = errno;
    if (err == EINTR) continue;
    if (!would_block(err)) qi::throw_os_error(err, on_fd(api, fd));
    if (!watch) watch.emplace(loop, fd, FdWatch::kRead, api);
    co_await watch->ready();
  }
}

// send(2) of all of [data, data + n); waits while the socket's buffer is full.
Coro<void> send_all(QiEventLoop& loop, int fd, const char* data, std::size_t n, const char* api) {
  std::optional<FdWatch> watch;
  std::size_t sent = 0;
  while (sent < n) {
    ssize_t r = sys_send(fd, data + sent, n - sent, MSG_NOSIGNAL);
    if (r >= 0) {
      sent += static_cast<std::size_t>(r);
      continue;
    }
    const int err = errno;
    if (err == EINTR) continue;
    if (!would_block(err))
      qi::throw_os_error(err, on_fd(api, fd) + " (after " + std::to_string(sent) + " of " + std::to_string(n) +
                                  " bytes were sent)");
    if (!watch) watch.emplace(loop, fd, FdWatch::kWrite, api);
    co_await watch->ready();
  }
}

}  // namespace

}  // namespace qi::detail

using qi::detail::check_nonblocking;
using qi::detail::FdWatch;
using qi::detail::on_fd;
using qi::detail::would_block;

qi::Coro<QByteArray> QiEventLoop::sock_recv(int fd, std::size_t n) {
  check_nonblocking(fd, "sock_recv");
  qi::detail::check_size(n, "sock_recv");
  QByteArray data(static_cast<qsizetype>(n), Qt::Uninitialized);
  std::size_t got = co_await qi::detail::recv_some(*this, fd, data.data(), n, "sock_recv");
  data.truncate(static_cast<qsizetype>(got));
  co_return data;
}

qi::Coro<std::size_t> QiEventLoop::sock_recv_into(int fd, std::span<std::byte> buf) {
  check_nonblocking(fd, "sock_recv_into");
  qi::detail::check_size(buf.size(), "sock_recv_into");
  co_return co_await qi::detail::recv_some(*this, fd, reinterpret_cast<char*>(buf.data()), buf.size(),
                                           "sock_recv_into");
}

qi::Coro<void> QiEventLoop::sock_sendall(int fd, QByteArray data) {
  check_nonblocking(fd, "sock_sendall");
  co_await qi::detail::send_all(*this, fd, data.constData(), static_cast<std::size_t>(data.size()),
                                "sock_sendall");
}

qi::Coro<void> QiEventLoop::sock_connect(int fd, qi::SocketAddress address) {
  check_nonblocking(fd, "sock_connect");
  if (address.empty())
    throw qi::ValueError("sock_connect: the address is empty; give a resolved address (loop.getaddrinfo, "
                         "qi::SocketAddress::ip or unix_path)");
  auto context = [&] { return "sock_connect: connecting fd " + std::to_string(fd) + " to " + address.to_string(); };
  if (qi::detail::sys_connect(fd, address.native(), address.size()) == 0) co_return;
  const int err = errno;
  // EINTR: the connection goes on in the background (POSIX), as EINPROGRESS.
  if (err != EINPROGRESS && err != EINTR) {
    if (would_block(err))  // a Unix listener's backlog is full: nothing started
      qi::throw_os_error(err, context() + " (the listening socket's backlog is full; try again later)");
    qi::throw_os_error(err, context());
  }
  FdWatch watch(*this, fd, FdWatch::kWrite, "sock_connect");
  for (;;) {
    co_await watch.ready();
    int so_error = 0;
    socklen_t len = sizeof so_error;
    if (::getsockopt(fd, SOL_SOCKET, SO_ERROR, &so_error, &len) < 0) qi::throw_os_error(errno, context());
    if (so_error == 0) co_return;
    if (so_error != EINPROGRESS && so_error != EINTR && !would_block(so_error))
      qi::throw_os_error(so_error, context());
  }
}

qi::Coro<std::pair<int, qi::SocketAddress>> QiEventLoop::sock_accept(int fd) {
  check_nonblocking(fd, "sock_accept");
  std::optional<FdWatch> watch;
  for (;;) {
    sockaddr_storage peer;
    socklen_t len = sizeof peer;
    int conn = qi::detail::sys_accept4(fd, reinterpret_cast<sockaddr*>(&peer), &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (conn >= 0) {
      // Cannot throw: accept4 gives a sockaddr of the listener's family.
      co_return std::pair(conn, qi::SocketAddress::from_native(reinterpret_cast<sockaddr*>(&peer), len));
    }
    const int err = errno;
    if (err == EINTR) continue;
    if (!would_block(err)) qi::throw_os_error(err, on_fd("sock_accept", fd));
    if (!watch) watch.emplace(*this, fd, FdWatch::kRead, "sock_accept");
    co_await watch->ready();
  }
}

namespace {

// asyncio's SENDFILE_FALLBACK_READBUFFER_SIZE.
constexpr std::size_t kFallbackChunk = 256 * 1024;

// sendfile(2) fails this way, before sending anything, when it cannot serve
// the pair of fds (the file is not mmap-able, the socket type refuses...):
// the read-and-send fallback can.
bool sendfile_refused(int err) noexcept {
  return err == EINVAL || err == ENOSYS || err == EOPNOTSUPP || err == ENOTSUP || err == ESPIPE ||
         err == EOVERFLOW;
}

// One chunk of the fallback, read on an executor thread (a file read may
// block). The buffer is shared: a cancelled wait leaves the read running.
struct Chunk {
  std::vector<char> bytes;
  ssize_t got = 0;
  int err = 0;
};

}  // namespace

qi::Coro<std::size_t> QiEventLoop::sock_sendfile(int sock, int file, std::int64_t offset,
                                                 std::optional<std::size_t> count, bool fallback) {
  check_nonblocking(sock, "sock_sendfile");
  if (offset < 0)
    throw qi::ValueError("sock_sendfile: offset must be a non-negative number (got " + std::to_string(offset) + ")");
  if (count && *count == 0)
    throw qi::ValueError("sock_sendfile: count must be a positive number of bytes (got 0); pass std::nullopt to "
                         "send up to the end of the file");
  int type = 0;
  socklen_t type_len = sizeof type;
  if (::getsockopt(sock, SOL_SOCKET, SO_TYPE, &type, &type_len) < 0)
    qi::throw_os_error(errno, on_fd("sock_sendfile", sock));
  if (type != SOCK_STREAM)
    throw qi::ValueError("sock_sendfile: fd " + std::to_string(sock) +
                         " is not a stream socket; only SOCK_STREAM sockets are supported (send datagrams with "
                         "sendto)");
  struct stat st;
  if (::fstat(file, &st) < 0) qi::throw_os_error(errno, "sock_sendfile: the file, fd " + std::to_string(file));

  std::size_t total = 0;
  // As asyncio: the file's position ends after what was sent, also when the
  // call fails or is cancelled.
  struct MovePosition {
    int file;
    std::int64_t offset;
    const std::size_t& total;
    ~MovePosition() {
      if (total > 0) (void)::lseek(file, static_cast<off_t>(offset + static_cast<std::int64_t>(total)), SEEK_SET);
    }
  } move_position{file, offset, total};

  bool native = S_ISREG(st.st_mode);
  if (native) {
    // Up to EOF when no count: sendfile returns 0 there.
    std::size_t limit = count ? *count : std::size_t(-1);
    std::optional<FdWatch> watch;
    off_t pos = static_cast<off_t>(offset);
    while (total < limit) {
      // Linux sends at most 0x7ffff000 bytes per call.
      std::size_t want = std::min<std::size_t>(limit - total, 0x7ffff000);
      ssize_t r = qi::detail::sys_sendfile(sock, file, &pos, want);
      if (r > 0) {
        total += static_cast<std::size_t>(r);
        continue;
      }
      if (r == 0) break;  // EOF
      const int err = errno;
      if (err == EINTR) continue;
      if (would_block(err)) {
        if (!watch) watch.emplace(*this, sock, FdWatch::kWrite, "sock_sendfile");
        co_await watch->ready();
        continue;
      }
      if (total == 0 && sendfile_refused(err)) {
        native = false;
        break;
      }
      // asyncio names a connection closed in the middle a ConnectionError.
      if (err == ENOTCONN && total > 0)
        throw qi::ConnectionError(err, on_fd("sock_sendfile", sock) + " (the connection closed after " +
                                           std::to_string(total) + " bytes)");
      qi::throw_os_error(err, on_fd("sock_sendfile", sock) + " (after " + std::to_string(total) + " bytes)");
    }
    if (native) co_return total;
  }
  if (!fallback)
    throw qi::SendfileNotAvailableError(
        "sock_sendfile: sendfile(2) cannot send fd " + std::to_string(file) + " over fd " + std::to_string(sock) +
        (S_ISREG(st.st_mode) ? " (the system refused the pair)" : " (it is not a regular file)") +
        "; pass fallback = true to read and send it instead");

  const bool seekable = S_ISREG(st.st_mode) || S_ISBLK(st.st_mode);
  if (!seekable && offset != 0 && ::lseek(file, static_cast<off_t>(offset), SEEK_SET) < 0)
    qi::throw_os_error(errno, "sock_sendfile: moving the file (fd " + std::to_string(file) + ") to offset " +
                                  std::to_string(offset));
  auto chunk = std::make_shared<Chunk>();
  chunk->bytes.resize(count ? std::min(*count, kFallbackChunk) : kFallbackChunk);
  for (;;) {
    std::size_t want = chunk->bytes.size();
    if (count) {
      want = std::min(want, *count - total);
      if (want == 0) break;
    }
    const std::int64_t at = offset + static_cast<std::int64_t>(total);
    // Named, not a temporary of the co_await: g++ 12 destroys a lambda
    // temporary of a co_await expression twice (its capture, `chunk`, was
    // released once too often).
    auto read_chunk = [chunk, file, want, at, seekable] {
      do
        chunk->got = seekable ? ::pread(file, chunk->bytes.data(), want, static_cast<off_t>(at))
                              : ::read(file, chunk->bytes.data(), want);
      while (chunk->got < 0 && errno == EINTR);
      chunk->err = chunk->got < 0 ? errno : 0;
    };
    co_await run_in_executor(nullptr, std::move(read_chunk));
    if (chunk->got < 0)
      qi::throw_os_error(chunk->err, "sock_sendfile: reading the file (fd " + std::to_string(file) + ")");
    if (chunk->got == 0) break;  // EOF
    co_await qi::detail::send_all(*this, sock, chunk->bytes.data(), static_cast<std::size_t>(chunk->got),
                                  "sock_sendfile");
    total += static_cast<std::size_t>(chunk->got);
  }
  co_return total;
}
