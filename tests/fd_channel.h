// A pair of connected non-blocking fds for the I/O tests: a pipe or a
// socketpair, with helpers to send and receive a few bytes.
#pragma once

#include <gtest/gtest.h>

#include <array>
#include <string>
#include <string_view>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

namespace qt {

enum class Kind { kPipe, kSocketPair };
inline constexpr std::array kKinds = {Kind::kPipe, Kind::kSocketPair};

inline const char* kind_name(Kind k) { return k == Kind::kPipe ? "pipe" : "socketpair"; }

// A one-way byte channel over two non-blocking fds: what is sent on `out`
// arrives on `in`. For a socketpair both ends also work the other way.
struct Channel {
  int in = -1;
  int out = -1;

  explicit Channel(Kind kind) {
    int fds[2];
    int rc = kind == Kind::kPipe ? ::pipe2(fds, O_NONBLOCK | O_CLOEXEC)
                                 : ::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds);
    EXPECT_EQ(rc, 0) << "cannot create a " << kind_name(kind);
    if (rc == 0) {
      in = fds[0];
      out = fds[1];
    }
  }
  Channel(const Channel&) = delete;
  Channel& operator=(const Channel&) = delete;
  ~Channel() {
    close_in();
    close_out();
  }

  void send(std::string_view s) const { send_on(out, s); }
  static void send_on(int fd, std::string_view s) {
    EXPECT_EQ(::write(fd, s.data(), s.size()), static_cast<ssize_t>(s.size()));
  }
  // Reads at most n bytes that are there now ("" when none, or at EOF).
  std::string receive(std::size_t n = 4096) const { return receive_on(in, n); }
  static std::string receive_on(int fd, std::size_t n = 4096) {
    std::string buf(n, '\0');
    ssize_t r = ::read(fd, buf.data(), n);
    buf.resize(r > 0 ? static_cast<std::size_t>(r) : 0);
    return buf;
  }
  bool at_eof() const {
    char c;
    return ::read(in, &c, 1) == 0;
  }
  void close_in() { close_fd(in); }
  void close_out() { close_fd(out); }

 private:
  static void close_fd(int& fd) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
};

}  // namespace qt
