// fd_watch.h — how a sock_* call waits for its fd. Internal; the contract
// is in <qiloop/net/socket.h>.
//
//   std::optional<FdWatch> watch;                 // none until EAGAIN
//   for (;;) {
//     ssize_t r = sys_recv(fd, ...);              // net/sys_io.h
//     if (r >= 0) co_return ...;
//     if (!retry_later(errno)) throw ...;
//     if (!watch) watch.emplace(*this, fd, FdWatch::kRead, "sock_recv");
//     co_await watch->ready();                   // CancelledError: the watch goes
//   }
//
// A watch registers a reader (or writer) on the loop for as long as it
// lives — across the call's retries, as asyncio keeps its handler — and
// removes it when it goes, so a cancelled or finished call leaves nothing
// behind. ready() is a fresh future the handler completes when the fd is
// next ready; the call does the I/O itself once resumed, so a cancellation
// between the wake-up and the resumption loses no data.
//
// One watch per loop, fd and direction at a time: a second one throws
// qi::RuntimeError (see socket.h: asyncio would silently orphan the first).
#pragma once

#include <qiloop/event_loop.h>
#include <qiloop/future.h>

#include <cerrno>

namespace qi::detail {

class FdWatch {
 public:
  enum Direction : bool { kRead, kWrite };

  FdWatch(QiEventLoop& loop, int fd, Direction direction, const char* api);
  FdWatch(const FdWatch&) = delete;
  FdWatch& operator=(const FdWatch&) = delete;
  ~FdWatch();

  // A future the handler completes when the fd is next ready.
  Future<void> ready();

 private:
  void fire() {
    if (pending_.valid() && !pending_.done()) pending_.set_result();
  }

  QiEventLoop& loop_;
  int fd_;
  Direction direction_;
  Future<void> pending_;
};

// EAGAIN (or EWOULDBLOCK): wait for readiness, then try again.
inline bool would_block(int err) noexcept { return err == EAGAIN || err == EWOULDBLOCK; }

}  // namespace qi::detail
