// qiloop/net/subprocess.h — child processes with their standard streams as
// qi::StreamWriter / qi::StreamReader (asyncio's subprocess.py).
//
//   qi::SubprocessOptions o;
//   o.std_in = qi::PIPE;
//   o.std_out = qi::PIPE;
//   qi::Process p = co_await qi::create_subprocess_exec("sort", "-r", o);
//   auto [out, err] = co_await p.communicate("b\na\n");   // out == "b\na\n"; err empty (not a pipe)
//   int code = co_await p.wait();                          // 0; p.returncode() too
//
//   qi::Process sh = co_await qi::create_subprocess_shell("ls | wc -l", o);
//   QByteArray line = co_await sh.std_out()->readline();
//
// The contract (asyncio 3.13, differences named):
// - Names. asyncio's stdin / stdout / stderr (the C library's macros) are
//   std_in / std_out / std_err here, on the options and on the Process.
//   Each option is qi::PIPE (a stream), qi::DEVNULL, qi::INHERIT (asyncio's
//   None, the default) or a file descriptor the child gets a copy of (the
//   caller keeps its own); std_err may also be qi::STDOUT.
// - Spawning. posix_spawn (a vfork underneath): the program named without a
//   '/' is searched in the PATH of the child's environment (env's when set,
//   as os.get_exec_path), and a program that cannot run throws
//   qi::FileNotFoundError / qi::PermissionError / qi::OSError naming it from
//   create_subprocess_exec itself — no child exits 127. The child gets
//   every fd but 0, 1, 2 and pass_fds closed (close_fds), SIGPIPE and
//   SIGXFSZ at their defaults and an empty signal mask (Python's
//   restore_signals), whatever the parent set.
// - Reaping. Each child is watched through a pidfd (Linux 5.3+) in the
//   loop's selector; where pidfd_open is refused, a thread per child waits
//   for it without reaping it (waitid WNOWAIT) and the loop reaps it
//   (asyncio's ThreadedChildWatcher, without its pid-reuse race). Only our
//   own children are ever waited for (never waitpid(-1)). A child is
//   reaped when it exits even when every handle to it is gone.
// - Process is a shared handle: copies refer to the same child and the
//   same streams. wait() returns once the child exited, as Popen.wait()
//   and the asyncio fix of gh-119710 (3.13 also waits for the pipes to
//   close; qiloop does not: read them, or use communicate()).
// - The pipes. A stream's last handle (Process copies and stream copies
//   together) closes its pipe: the child then reads EOF on its stdin, or
//   meets EPIPE / SIGPIPE writing its stdout. A pipe also closes at its EOF
//   (the reader keeps what it buffered). A child that exits before its
//   pipes are read leaves their data readable, then EOF.
// - loop.close() kills (SIGKILL) the children of the loop still running,
//   reaps them, and logs a warning for each (asyncio kills them when their
//   transport is closed or collected); their pipes are closed with the
//   loop's transports. No fd and no zombie is left.
// - Thread-safety: the loop's thread only, for every call. Every waiting
//   call may be cancelled: the child runs on, and may be waited for again.
#pragma once

#include <qiloop/coro.h>
#include <qiloop/export.h>
#include <qiloop/net/streams.h>

#include <QtCore/QByteArray>
#include <QtCore/QByteArrayView>

#include <cstddef>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

namespace qi {

namespace detail {
class ChildProcess;
}  // namespace detail

// qi::Stdio
// Where one of the child's standard streams goes. Implicit from an int: a
// file descriptor of the caller, duplicated onto the child's stream (the
// caller keeps it open and owns it).
class Stdio {
 public:
  enum class Kind : unsigned char { kInherit, kPipe, kDevNull, kStdout, kFd };

  constexpr Stdio() noexcept = default;
  constexpr Stdio(int fd) noexcept : kind_(Kind::kFd), fd_(fd) {}  // NOLINT: as Python's stdout=fd
  static constexpr Stdio of(Kind kind) noexcept {
    Stdio s;
    s.kind_ = kind;
    return s;
  }

  constexpr Kind kind() const noexcept { return kind_; }
  // The descriptor, for Kind::kFd (else -1).
  constexpr int fd() const noexcept { return fd_; }

 private:
  Kind kind_ = Kind::kInherit;
  int fd_ = -1;
};

// qi::PIPE, qi::DEVNULL, qi::STDOUT, qi::INHERIT
// asyncio.subprocess.PIPE (a stream of the Process), DEVNULL (/dev/null),
// STDOUT (std_err only: where std_out goes), and None (the parent's stream).
inline constexpr Stdio PIPE = Stdio::of(Stdio::Kind::kPipe);
inline constexpr Stdio DEVNULL = Stdio::of(Stdio::Kind::kDevNull);
inline constexpr Stdio STDOUT = Stdio::of(Stdio::Kind::kStdout);
inline constexpr Stdio INHERIT = Stdio::of(Stdio::Kind::kInherit);

// qi::SubprocessOptions
// create_subprocess_exec / create_subprocess_shell's keyword arguments
// (asyncio's and subprocess.Popen's names).
struct SubprocessOptions {
  Stdio std_in;
  Stdio std_out;
  Stdio std_err;
  // The limit of the std_out / std_err readers (StreamReader's).
  std::size_t limit = kDefaultStreamLimit;
  // The child's working directory (a relative program path is found from
  // it, as Popen's cwd).
  std::optional<std::string> cwd;
  // The child's whole environment (Popen's env); none: the parent's.
  std::optional<std::map<std::string, std::string>> env;
  // Variables set on top of env (or of the parent's environment): extend
  // rather than replace.
  std::map<std::string, std::string> env_extra;
  // setsid() in the child (Popen's start_new_session).
  bool start_new_session = false;
  // setpgid(0, group) in the child (Popen's process_group); 0: a new group
  // led by the child.
  std::optional<int> process_group;
  // Close every fd but 0, 1, 2 and pass_fds in the child (Popen's default).
  bool close_fds = true;
  // Fds the child keeps (inheritable there, at the same numbers; >= 3).
  std::vector<int> pass_fds;
};

// qi::Process
// A child process (asyncio.subprocess.Process): a shared handle, copyable.
class QILOOP_EXPORT Process {
 public:
  // Process::pid()
  int pid() const noexcept;

  // Process::returncode()
  // The exit status once the child was reaped: the exit code, or -N when
  // signal N killed it (asyncio's). std::nullopt while it runs.
  std::optional<int> returncode() const noexcept;

  // Process::std_in()
  // Process::std_out()
  // Process::std_err()
  // The streams of the pipes (asyncio's proc.stdin / stdout / stderr); null
  // when that stream is not qi::PIPE. Valid as long as this handle.
  StreamWriter* std_in() noexcept { return in_ ? &*in_ : nullptr; }
  StreamReader* std_out() noexcept { return out_ ? &*out_ : nullptr; }
  StreamReader* std_err() noexcept { return err_ ? &*err_ : nullptr; }

  // Process::wait()
  // The returncode, once the child exited (at once if it has). Waits for
  // the exit only, not for the pipes: a child blocked writing a full pipe
  // nobody reads never exits (use communicate()). Cancelling it leaves the
  // child running.
  Coro<int> wait();

  // Process::communicate()
  // Writes input to std_in, then closes it; meanwhile reads std_out and
  // std_err to EOF (concurrently, so a child writing much on both never
  // blocks); then waits for the exit. (stdout, stderr): empty for a stream
  // that is not a pipe. A child that closes its stdin early is not an
  // error (BrokenPipe / ConnectionReset ignored, as asyncio). Cancelling
  // it leaves the child running and the unread data in the readers (the
  // input may be partly written). Throws qi::ValueError, before anything,
  // for input when std_in is not a pipe (asyncio drops it silently).
  Coro<std::pair<QByteArray, QByteArray>> communicate(QByteArray input = {});

  // Process::send_signal()
  // Process::terminate()
  // Process::kill()
  // Sends sig (SIGTERM, SIGKILL) to the child. Throws
  // qi::ProcessLookupError once it was reaped (its pid may be another's by
  // then; asyncio raises it once the transport is closed), qi::OSError for
  // another failure.
  void send_signal(int sig);
  void terminate();
  void kill();

 private:
  friend struct ProcessAccess;
  explicit Process(std::shared_ptr<detail::ChildProcess> child) noexcept;

  std::shared_ptr<detail::ChildProcess> child_;
  std::optional<StreamWriter> in_;
  std::optional<StreamReader> out_;
  std::optional<StreamReader> err_;
};

namespace detail {
inline void add_exec_arg(std::vector<std::string>& args, SubprocessOptions&, std::string_view arg) {
  args.emplace_back(arg);
}
inline void add_exec_arg(std::vector<std::string>&, SubprocessOptions& options, SubprocessOptions given) {
  options = std::move(given);
}
template <class A>
concept exec_arg = std::is_convertible_v<A, std::string_view> ||
                   std::is_same_v<std::remove_cvref_t<A>, SubprocessOptions>;
}  // namespace detail

// qi::create_subprocess_exec()
// Runs program with args (argv[0] is program, as asyncio). Returns once it
// started, its pipes connected. Throws qi::FileNotFoundError /
// qi::PermissionError naming the program (or the cwd) when it cannot run,
// qi::ValueError for bad options (STDOUT other than for std_err, a
// negative fd, pass_fds under 3, limit 0, a NUL in a string),
// qi::RuntimeError with no running loop.
QILOOP_EXPORT Coro<Process> create_subprocess_exec(std::string program, std::vector<std::string> args = {},
                                                   SubprocessOptions options = {});
// The arguments one by one, the options (if any) last, as asyncio's
// create_subprocess_exec(program, *args, stdout=PIPE):
//   co_await qi::create_subprocess_exec("sleep", "30");
//   co_await qi::create_subprocess_exec("grep", "-c", pattern, options);
// (g++ 12 miscompiles a braced list inside a co_await: {"-c", pattern}
// does not build there; a named std::vector does.)
template <class... A>
  requires(sizeof...(A) > 0 && (detail::exec_arg<A> && ...))
Coro<Process> create_subprocess_exec(std::string program, A&&... args) {
  static_assert(((std::is_same_v<std::remove_cvref_t<A>, SubprocessOptions> ? 1 : 0) + ... + 0) <= 1,
                "qiloop: create_subprocess_exec takes one qi::SubprocessOptions, after the arguments");
  std::vector<std::string> argv;
  SubprocessOptions options;
  (detail::add_exec_arg(argv, options, std::forward<A>(args)), ...);
  return create_subprocess_exec(std::move(program), std::move(argv), std::move(options));
}

// qi::create_subprocess_shell()
// Runs cmd with /bin/sh -c (asyncio's): a pipeline, redirections, globs.
// The shell's returncode is the command's; 127 when the shell cannot find
// the command.
QILOOP_EXPORT Coro<Process> create_subprocess_shell(std::string cmd, SubprocessOptions options = {});

}  // namespace qi
