// net/sys_io.h — the system calls the socket layer moves bytes and
// connections with, in one place, and the seam tests inject faults
// through. Internal: no installed header names it.
//
//   ssize_t n;
//   do n = sys_read(fd, buf, size);            // read(2), unless a test installed faults
//   while (n < 0 && errno == EINTR);
//
// A test makes the kernel misbehave on purpose (tests/net/faults_test.cpp):
//
//   struct OneByteAtATime : qi::detail::SysIoFaults {
//     Fault before(SysCall, int fd) override { return {.max_bytes = 1}; }
//   } faults;
//   qi::detail::install_sys_io_faults(&faults);   // nullptr uninstalls
//
// Cost: with nothing installed (always, outside tests) each call is the
// system call behind one load of a global pointer and a branch predicted
// not taken; the faulty paths are out of line (sys_io.cpp).
//
// Thread-safety: install and uninstall while no loop does I/O on another
// thread (a test installs before its loops run and uninstalls after);
// SysIoFaults::before() is called on the thread of the loop doing the I/O.
#pragma once

#include <qiloop/export.h>

#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <limits>

namespace qi::detail {

// The calls behind the seam, one per kind.
enum class SysCall : unsigned char { kRead, kRecv, kRecvfrom, kSend, kSendto, kSendmsg, kWritev, kAccept, kConnect, kSendfile };

// What a test makes of the kernel: asked before every call of the seam.
class SysIoFaults {
 public:
  struct Fault {
    // Non-zero: the call fails with this errno and does nothing — except
    // connect(2) failing with EINTR or EINPROGRESS, which is made and goes
    // on in the background, as the kernel's would.
    int error = 0;
    // A stream call moves at most this many bytes (at least 1): short reads
    // and short writes. Datagrams (recvfrom, sendto) and accept and connect
    // ignore it.
    std::size_t max_bytes = std::numeric_limits<std::size_t>::max();
  };
  virtual Fault before(SysCall call, int fd) = 0;

 protected:
  ~SysIoFaults() = default;
};

// Installs `faults` (not owned; nullptr: none) for every loop of the process.
QILOOP_EXPORT void install_sys_io_faults(SysIoFaults* faults) noexcept;

// --- The seam -----------------------------------------------------------------------------

extern std::atomic<SysIoFaults*> g_sys_io_faults;

inline SysIoFaults* installed_sys_io_faults() noexcept { return g_sys_io_faults.load(std::memory_order_acquire); }

ssize_t faulty_read(SysIoFaults& f, int fd, void* buf, std::size_t n) noexcept;
ssize_t faulty_recv(SysIoFaults& f, int fd, void* buf, std::size_t n, int flags) noexcept;
ssize_t faulty_recvfrom(SysIoFaults& f, int fd, void* buf, std::size_t n, int flags, sockaddr* from,
                        socklen_t* len) noexcept;
ssize_t faulty_send(SysIoFaults& f, int fd, const void* buf, std::size_t n, int flags) noexcept;
ssize_t faulty_sendto(SysIoFaults& f, int fd, const void* buf, std::size_t n, int flags, const sockaddr* to,
                      socklen_t len) noexcept;
ssize_t faulty_sendmsg(SysIoFaults& f, int fd, const msghdr* msg, int flags) noexcept;
ssize_t faulty_writev(SysIoFaults& f, int fd, const iovec* iov, int count) noexcept;
int faulty_accept4(SysIoFaults& f, int fd, sockaddr* addr, socklen_t* len, int flags) noexcept;
int faulty_connect(SysIoFaults& f, int fd, const sockaddr* addr, socklen_t len) noexcept;
ssize_t faulty_sendfile(SysIoFaults& f, int out, int in, off_t* offset, std::size_t count) noexcept;

inline ssize_t sys_read(int fd, void* buf, std::size_t n) noexcept {
  if (SysIoFaults* f = installed_sys_io_faults()) [[unlikely]]
    return faulty_read(*f, fd, buf, n);
  return ::read(fd, buf, n);
}

inline ssize_t sys_recv(int fd, void* buf, std::size_t n, int flags) noexcept {
  if (SysIoFaults* f = installed_sys_io_faults()) [[unlikely]]
    return faulty_recv(*f, fd, buf, n, flags);
  return ::recv(fd, buf, n, flags);
}

inline ssize_t sys_recvfrom(int fd, void* buf, std::size_t n, int flags, sockaddr* from, socklen_t* len) noexcept {
  if (SysIoFaults* f = installed_sys_io_faults()) [[unlikely]]
    return faulty_recvfrom(*f, fd, buf, n, flags, from, len);
  return ::recvfrom(fd, buf, n, flags, from, len);
}

inline ssize_t sys_send(int fd, const void* buf, std::size_t n, int flags) noexcept {
  if (SysIoFaults* f = installed_sys_io_faults()) [[unlikely]]
    return faulty_send(*f, fd, buf, n, flags);
  return ::send(fd, buf, n, flags);
}

inline ssize_t sys_sendto(int fd, const void* buf, std::size_t n, int flags, const sockaddr* to,
                          socklen_t len) noexcept {
  if (SysIoFaults* f = installed_sys_io_faults()) [[unlikely]]
    return faulty_sendto(*f, fd, buf, n, flags, to, len);
  return ::sendto(fd, buf, n, flags, to, len);
}

inline ssize_t sys_sendmsg(int fd, const msghdr* msg, int flags) noexcept {
  if (SysIoFaults* f = installed_sys_io_faults()) [[unlikely]]
    return faulty_sendmsg(*f, fd, msg, flags);
  return ::sendmsg(fd, msg, flags);
}

inline ssize_t sys_writev(int fd, const iovec* iov, int count) noexcept {
  if (SysIoFaults* f = installed_sys_io_faults()) [[unlikely]]
    return faulty_writev(*f, fd, iov, count);
  return ::writev(fd, iov, count);
}

inline int sys_accept4(int fd, sockaddr* addr, socklen_t* len, int flags) noexcept {
  if (SysIoFaults* f = installed_sys_io_faults()) [[unlikely]]
    return faulty_accept4(*f, fd, addr, len, flags);
  return ::accept4(fd, addr, len, flags);
}

inline int sys_connect(int fd, const sockaddr* addr, socklen_t len) noexcept {
  if (SysIoFaults* f = installed_sys_io_faults()) [[unlikely]]
    return faulty_connect(*f, fd, addr, len);
  return ::connect(fd, addr, len);
}

inline ssize_t sys_sendfile(int out, int in, off_t* offset, std::size_t count) noexcept {
  if (SysIoFaults* f = installed_sys_io_faults()) [[unlikely]]
    return faulty_sendfile(*f, out, in, offset, count);
  return ::sendfile(out, in, offset, count);
}

}  // namespace qi::detail
