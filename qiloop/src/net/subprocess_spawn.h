// net/subprocess_spawn.h — starting a child with posix_spawn: its standard
// streams, environment, working directory, session and fds (what
// subprocess.Popen's _execute_child and _posixsubprocess do). Internal; the
// contract is in <qiloop/net/subprocess.h>.
//
// Why posix_spawn: glibc runs it as clone(CLONE_VM | CLONE_VFORK), so the
// parent's memory is never copied, the child runs only glibc's own
// async-signal-safe code, and an exec failure comes back as posix_spawn's
// result (glibc 2.24+) — the error pipe Python needs is built in.
#pragma once

#include <qiloop/net/subprocess.h>

#include <sys/types.h>
#include <unistd.h>

#include <string>
#include <utility>
#include <vector>

namespace qi::detail {

// A file descriptor closed when it goes.
class OwnedFd {
 public:
  OwnedFd() noexcept = default;
  explicit OwnedFd(int fd) noexcept : fd_(fd) {}
  OwnedFd(OwnedFd&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  OwnedFd& operator=(OwnedFd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = std::exchange(o.fd_, -1);
    }
    return *this;
  }
  ~OwnedFd() { reset(); }
  int get() const noexcept { return fd_; }
  int release() noexcept { return std::exchange(fd_, -1); }
  void reset() noexcept {
    if (fd_ >= 0) ::close(std::exchange(fd_, -1));
  }

 private:
  int fd_ = -1;
};

struct Spawned {
  pid_t pid = -1;
  // Our ends of the child's stdin, stdout, stderr pipes (-1: not a pipe);
  // close-on-exec, blocking.
  OwnedFd parent_ends[3];
};

// Starts argv[0]'s program (`program`, searched in the child's PATH when it
// has no '/'). Throws what the header says create_subprocess_exec throws,
// `api` naming the call; nothing is left open or running then.
Spawned spawn(const char* api, const std::string& program, const std::vector<std::string>& argv,
              const SubprocessOptions& options);

}  // namespace qi::detail
