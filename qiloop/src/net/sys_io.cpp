// net/sys_io.cpp — the faulty halves of the seam: what a test's
// SysIoFaults asks for, then the real call (or none).
#include "net/sys_io.h"

#include <cerrno>
#include <climits>
#include <vector>

namespace qi::detail {

std::atomic<SysIoFaults*> g_sys_io_faults{nullptr};

void install_sys_io_faults(SysIoFaults* faults) noexcept { g_sys_io_faults.store(faults, std::memory_order_release); }

namespace {

using Fault = SysIoFaults::Fault;

// -1 with errno set, as the failed call would return.
template <class R = ssize_t>
R fail(int err) noexcept {
  errno = err;
  return -1;
}

std::size_t clamp(const Fault& fault, std::size_t n) noexcept {
  return fault.max_bytes == 0 ? (n > 0 ? 1 : 0) : (n < fault.max_bytes ? n : fault.max_bytes);
}

// The first `max` bytes of iov[0, count): the pieces that hold them, the
// last one cut.
std::vector<iovec> cut(const iovec* iov, std::size_t count, std::size_t max) {
  std::vector<iovec> out;
  for (std::size_t i = 0; i < count && max > 0; ++i) {
    iovec piece = iov[i];
    if (piece.iov_len > max) piece.iov_len = max;
    max -= piece.iov_len;
    out.push_back(piece);
  }
  return out;
}

std::size_t total(const iovec* iov, std::size_t count) noexcept {
  std::size_t n = 0;
  for (std::size_t i = 0; i < count; ++i) n += iov[i].iov_len;
  return n;
}

}  // namespace

ssize_t faulty_read(SysIoFaults& f, int fd, void* buf, std::size_t n) noexcept {
  Fault fault = f.before(SysCall::kRead, fd);
  if (fault.error) return fail(fault.error);
  return ::read(fd, buf, clamp(fault, n));
}

ssize_t faulty_recv(SysIoFaults& f, int fd, void* buf, std::size_t n, int flags) noexcept {
  Fault fault = f.before(SysCall::kRecv, fd);
  if (fault.error) return fail(fault.error);
  return ::recv(fd, buf, clamp(fault, n), flags);
}

ssize_t faulty_recvfrom(SysIoFaults& f, int fd, void* buf, std::size_t n, int flags, sockaddr* from,
                        socklen_t* len) noexcept {
  Fault fault = f.before(SysCall::kRecvfrom, fd);
  if (fault.error) return fail(fault.error);
  return ::recvfrom(fd, buf, n, flags, from, len);
}

ssize_t faulty_send(SysIoFaults& f, int fd, const void* buf, std::size_t n, int flags) noexcept {
  Fault fault = f.before(SysCall::kSend, fd);
  if (fault.error) return fail(fault.error);
  return ::send(fd, buf, clamp(fault, n), flags);
}

ssize_t faulty_sendto(SysIoFaults& f, int fd, const void* buf, std::size_t n, int flags, const sockaddr* to,
                      socklen_t len) noexcept {
  Fault fault = f.before(SysCall::kSendto, fd);
  if (fault.error) return fail(fault.error);
  return ::sendto(fd, buf, n, flags, to, len);
}

ssize_t faulty_sendmsg(SysIoFaults& f, int fd, const msghdr* msg, int flags) noexcept {
  Fault fault = f.before(SysCall::kSendmsg, fd);
  if (fault.error) return fail(fault.error);
  const std::size_t n = total(msg->msg_iov, msg->msg_iovlen);
  if (clamp(fault, n) == n) return ::sendmsg(fd, msg, flags);
  try {
    std::vector<iovec> pieces = cut(msg->msg_iov, msg->msg_iovlen, clamp(fault, n));
    msghdr shorter = *msg;
    shorter.msg_iov = pieces.data();
    shorter.msg_iovlen = pieces.size();
    return ::sendmsg(fd, &shorter, flags);
  } catch (...) {
    return fail(ENOMEM);
  }
}

ssize_t faulty_writev(SysIoFaults& f, int fd, const iovec* iov, int count) noexcept {
  Fault fault = f.before(SysCall::kWritev, fd);
  if (fault.error) return fail(fault.error);
  const std::size_t n = total(iov, static_cast<std::size_t>(count));
  if (clamp(fault, n) == n) return ::writev(fd, iov, count);
  try {
    std::vector<iovec> pieces = cut(iov, static_cast<std::size_t>(count), clamp(fault, n));
    return ::writev(fd, pieces.data(), static_cast<int>(pieces.size()));
  } catch (...) {
    return fail(ENOMEM);
  }
}

int faulty_accept4(SysIoFaults& f, int fd, sockaddr* addr, socklen_t* len, int flags) noexcept {
  Fault fault = f.before(SysCall::kAccept, fd);
  if (fault.error) return fail<int>(fault.error);
  return ::accept4(fd, addr, len, flags);
}

int faulty_connect(SysIoFaults& f, int fd, const sockaddr* addr, socklen_t len) noexcept {
  Fault fault = f.before(SysCall::kConnect, fd);
  if (fault.error == EINTR || fault.error == EINPROGRESS) {
    // The connection is started and goes on in the background: what a
    // signal interrupting the kernel's connect leaves.
    if (::connect(fd, addr, len) == 0 || errno == EINPROGRESS) return fail<int>(fault.error);
    return -1;
  }
  if (fault.error) return fail<int>(fault.error);
  return ::connect(fd, addr, len);
}

ssize_t faulty_sendfile(SysIoFaults& f, int out, int in, off_t* offset, std::size_t count) noexcept {
  Fault fault = f.before(SysCall::kSendfile, out);
  if (fault.error) return fail(fault.error);
  return ::sendfile(out, in, offset, clamp(fault, count));
}

}  // namespace qi::detail
