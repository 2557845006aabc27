// net/child_watcher.cpp — ChildProcess: the pidfd watch, the threaded
// fallback, reaping, and loop.close()'s clean-up (asyncio's
// PidfdChildWatcher / ThreadedChildWatcher, unix_events.py, and
// BaseSubprocessTransport.close, base_subprocess.py).
#include "net/child_watcher.h"

#include "net/fd_transport.h"

#include <qiloop/errors.h>

#include <QtCore/QLoggingCategory>

#include <absl/container/flat_hash_map.h>

#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

Q_DECLARE_LOGGING_CATEGORY(lcQiloop)

namespace qi::detail {

namespace {

// The children not reaped yet, by pid, of every loop. Process-wide and never
// destroyed: a static loop closes (and reaps) after main()'s statics and
// thread_locals are gone. Touched on loops' threads only, several at once.
struct Registry {
  std::mutex mutex;
  absl::flat_hash_map<pid_t, std::shared_ptr<ChildProcess>> children;
};
Registry& registry() {
  static auto* r = new Registry;
  return *r;
}

std::atomic<bool> g_threaded{false};
std::atomic<int> g_close_signal{SIGKILL};

// How long loop.close() waits for its killed children to end, all together.
constexpr std::chrono::milliseconds kCloseReapTime{250};

// asyncio's waitstatus_to_exitcode: the exit code, or -N for signal N.
int returncode_of(int status) noexcept {
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  return WEXITSTATUS(status);
}

// waitpid on one child, EINTR retried: its pid, 0 (still running, with
// WNOHANG) or -1 with errno.
pid_t wait_for(pid_t pid, int* status, int flags) noexcept {
  pid_t r;
  do r = ::waitpid(pid, status, flags);
  while (r < 0 && errno == EINTR);
  return r;
}

}  // namespace

void use_threaded_child_watcher(bool on) noexcept { g_threaded.store(on, std::memory_order_relaxed); }
void set_close_kill_signal(int sig) noexcept { g_close_signal.store(sig, std::memory_order_relaxed); }

ChildProcess::ChildProcess(QiEventLoop& loop, pid_t pid, std::string program)
    : loop_(loop), pid_(pid), program_(std::move(program)) {}

ChildProcess::~ChildProcess() {
  // Reaped before the registry let go; a watch that never started (watch()
  // failed) has nothing open either.
  if (thread_.joinable()) thread_.join();
}

std::string ChildProcess::describe() const { return "pid " + std::to_string(pid_) + " (" + program_ + ")"; }

std::shared_ptr<ChildProcess> ChildProcess::watch(QiEventLoop& loop, pid_t pid, std::string program) {
  auto child = std::make_shared<ChildProcess>(loop, pid, std::move(program));
  try {
    child->start();
  } catch (...) {
    // Nothing will ever reap it otherwise.
    ::kill(pid, SIGKILL);
    int status;
    wait_for(pid, &status, 0);
    throw;
  }
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.children.emplace(pid, child);
  return child;
}

void ChildProcess::start() {
  if (!g_threaded.load(std::memory_order_relaxed) && watch_pidfd()) return;
  start_thread();
}

// The pidfd turns readable when the child exits (also when it already has);
// asyncio's PidfdChildWatcher.
bool ChildProcess::watch_pidfd() {
  // The raw system call: glibc 2.36's <sys/pidfd.h> lacks extern "C", and
  // older ones have no wrapper.
  pidfd_ = static_cast<int>(::syscall(SYS_pidfd_open, pid_, 0));  // close-on-exec by definition
  if (pidfd_ < 0) return false;    // ENOSYS before Linux 5.3, EPERM under some seccomp filters: a thread
  try {
    LoopFds::add_reader(loop_, pidfd_, [this] { poll(); });
  } catch (...) {
    ::close(std::exchange(pidfd_, -1));
    return false;
  }
  return true;
}

// asyncio's ThreadedChildWatcher, except that the thread does not reap: it
// waits with WNOWAIT, so the pid stays ours (a zombie) until the loop's
// thread reaps it, and a kill() meanwhile cannot reach a stranger that
// reused the pid.
void ChildProcess::start_thread() {
  gate_ = std::make_shared<ThreadGate>();
  gate_->loop = &loop_;
  thread_ = std::thread([gate = gate_, pid = pid_] {
    siginfo_t info;
    int r;
    do r = ::waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT);
    while (r < 0 && errno == EINTR);
    std::lock_guard lock(gate->mutex);
    if (gate->loop) gate->loop->call_soon_threadsafe(&ChildProcess::thread_saw_exit, pid);
  });
}

void ChildProcess::thread_saw_exit(pid_t pid) {
  std::shared_ptr<ChildProcess> child;
  {
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    auto it = r.children.find(pid);
    if (it == r.children.end()) return;
    child = it->second;
  }
  child->poll();
}

void ChildProcess::poll() {
  if (returncode_) return;
  int status = 0;
  pid_t r = wait_for(pid_, &status, WNOHANG);
  if (r == 0) return;  // not yet: the pidfd stays watched
  if (r < 0) {
    // Someone else reaped our child (a waitpid(-1) elsewhere in the
    // program): asyncio reports 255.
    qCWarning(lcQiloop, "child process %s: its exit status was already read elsewhere (%s); returncode 255",
              describe().c_str(), std::strerror(errno));
    return reaped(255);
  }
  reaped(returncode_of(status));
}

void ChildProcess::reaped(int returncode) {
  auto keep = shared_from_this();  // the registry's reference goes below
  returncode_ = returncode;
  if (pidfd_ >= 0) {
    LoopFds::remove_reader(loop_, pidfd_);
    ::close(std::exchange(pidfd_, -1));
  }
  if (thread_.joinable()) thread_.join();  // it ended right after telling us
  {
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    r.children.erase(pid_);
  }
  exit_waiters_.wake_all();
}

void ChildProcess::close_gate() noexcept {
  if (!gate_) return;
  std::lock_guard lock(gate_->mutex);
  gate_->loop = nullptr;  // the loop is closing: its thread must not call it
}

bool ChildProcess::try_reap() noexcept {
  int status = 0;
  pid_t r = wait_for(pid_, &status, WNOHANG);
  if (r == 0) return false;
  reaped(r > 0 ? returncode_of(status) : 255);  // the watch thread (if any) ends with the child: joined at once
  return true;
}

// The child did not end within kCloseReapTime of SIGKILL: it sleeps in the
// kernel where no signal reaches (D state), and would hold loop.close() as
// long. A detached thread reaps it whenever it ends; the handles see
// -SIGKILL at once, the signal it was sent.
void ChildProcess::reap_in_background() noexcept {
  qCWarning(lcQiloop, "loop.close(): the child process %s did not end after SIGKILL; it is reaped in the background",
            describe().c_str());
  if (thread_.joinable()) thread_.detach();  // it waits for the child's end; its gate is closed
  try {
    std::thread([pid = pid_] {
      int status;
      wait_for(pid, &status, 0);
    }).detach();
  } catch (const std::system_error&) {
    // No thread: the child stays a zombie once it ends (reaped at the
    // process's exit), which is better than a hang.
  }
  auto keep = shared_from_this();
  returncode_ = -SIGKILL;
  if (pidfd_ >= 0) {
    LoopFds::remove_reader(loop_, pidfd_);
    ::close(std::exchange(pidfd_, -1));
  }
  {
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    r.children.erase(pid_);
  }
  exit_waiters_.wake_all();
}

void ChildProcess::kill_all(QiEventLoop& loop) noexcept {
  std::vector<std::shared_ptr<ChildProcess>> mine;
  {
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    for (auto& [pid, child] : r.children)
      if (&child->loop_ == &loop) mine.push_back(child);
  }
  const int sig = g_close_signal.load(std::memory_order_relaxed);
  for (auto& child : mine) {
    qCWarning(lcQiloop, "loop.close(): killing the child process %s, still running; wait for your children "
                        "(Process::wait) before closing the loop", child->describe().c_str());
    child->close_gate();
    ::kill(child->pid_, sig);
  }
  // SIGKILL ends a child within milliseconds (a stopped one too): poll for
  // them all, with a bound, rather than wait on each.
  const auto deadline = std::chrono::steady_clock::now() + kCloseReapTime;
  auto pause = std::chrono::microseconds(100);
  for (;;) {
    std::erase_if(mine, [](const std::shared_ptr<ChildProcess>& c) { return c->try_reap(); });
    if (mine.empty() || std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::microseconds(10000));
  }
  for (auto& child : mine) child->reap_in_background();
}

Coro<int> ChildProcess::wait(std::shared_ptr<ChildProcess> self) {
  while (!self->returncode_) {
    WaiterQueue::Entry waiter(self->exit_waiters_, "qi::Process");
    co_await waiter;
  }
  co_return *self->returncode_;
}

void ChildProcess::send_signal(int sig) {
  if (returncode_)
    throw qi::ProcessLookupError(ESRCH, "send_signal(" + std::to_string(sig) + ") to " + describe() +
                                            ": it exited (returncode " + std::to_string(*returncode_) + ")");
  if (::kill(pid_, sig) < 0) qi::throw_os_error(errno, "send_signal(" + std::to_string(sig) + ") to " + describe());
}

}  // namespace qi::detail

void QiEventLoop::close_subprocesses() noexcept { qi::detail::ChildProcess::kill_all(*this); }
