// net/child_watcher.h — a child process of a loop from its spawn until it
// is reaped, and how the loop learns that it exited (asyncio's
// PidfdChildWatcher and ThreadedChildWatcher, unix_events.py). Internal;
// the contract is in <qiloop/net/subprocess.h>.
//
// Invariants:
// - Only the loop's thread reaps (waitpid on the child's own pid, never -1),
//   so until returncode_ is set the pid is ours and kill() cannot reach
//   another process. The threaded watch waits with WNOWAIT for that reason.
//   The one exception, loop.close()'s background reaper, takes a child SIGKILL
//   did not end in time, after returncode_ is set (nothing signals it again).
// - A child is in the process-wide registry from watch() until it is
//   reaped; the registry holds a reference, so a child whose handles are
//   all gone is still reaped. Its pidfd reader (or its thread) lives
//   exactly as long.
#pragma once

#include <qiloop/coro.h>
#include <qiloop/detail/waiter_queue.h>
#include <qiloop/event_loop.h>
#include <qiloop/export.h>

#include <sys/types.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace qi::detail {

class ChildProcess : public std::enable_shared_from_this<ChildProcess> {
 public:
  // Watches pid, a child just spawned from the loop's thread. Throws (after
  // killing and reaping the child) when neither a pidfd nor a thread can
  // watch it.
  static std::shared_ptr<ChildProcess> watch(QiEventLoop& loop, pid_t pid, std::string program);
  // loop.close(): kills (SIGKILL) the loop's children still running, each
  // with a warning, and reaps those that end within kCloseReapTime; a child
  // that does not (in D state on NFS or FUSE) is left to a detached thread
  // that reaps it whenever it ends, so close() never hangs on one.
  static void kill_all(QiEventLoop& loop) noexcept;

  ChildProcess(QiEventLoop& loop, pid_t pid, std::string program);
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;
  ~ChildProcess();

  pid_t pid() const noexcept { return pid_; }
  std::optional<int> returncode() const noexcept { return returncode_; }
  // Returns the returncode once the child is reaped.
  static Coro<int> wait(std::shared_ptr<ChildProcess> self);
  // kill(pid, sig); qi::ProcessLookupError once reaped.
  void send_signal(int sig);
  // "pid 1234 (sleep)".
  std::string describe() const;

 private:
  // The thread's link to the loop: null once the loop takes no more news.
  struct ThreadGate {
    std::mutex mutex;
    QiEventLoop* loop = nullptr;
  };

  void start();
  bool watch_pidfd();
  void start_thread();
  // The child may have exited: reap it if so (the loop's thread).
  void poll();
  // kill_all: stops the watch's news; then reaps if the child ended.
  void close_gate() noexcept;
  bool try_reap() noexcept;
  void reap_in_background() noexcept;
  void reaped(int returncode);
  static void thread_saw_exit(pid_t pid);

  QiEventLoop& loop_;
  const pid_t pid_;
  const std::string program_;
  std::optional<int> returncode_;
  int pidfd_ = -1;
  std::shared_ptr<ThreadGate> gate_;
  std::thread thread_;
  WaiterQueue exit_waiters_;
};

// Tests: watch with a thread even where pidfd_open works (asyncio's
// ThreadedChildWatcher), for the children spawned from now on.
QILOOP_EXPORT void use_threaded_child_watcher(bool on) noexcept;
// Tests: the signal loop.close() sends its children (SIGKILL; 0 stands for
// a child SIGKILL does not end at once).
QILOOP_EXPORT void set_close_kill_signal(int sig) noexcept;

}  // namespace qi::detail
