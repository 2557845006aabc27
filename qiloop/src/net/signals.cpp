// signals.cpp — Unix signals: QiEventLoop::add_signal_handler /
// remove_signal_handler (asyncio's unix_events.py) and qi::run's Ctrl+C
// (asyncio.Runner._on_sigint). Contract: <qiloop/net/signals.h>.
//
// Delivery is a self-pipe, not a signalfd. A signalfd only sees a signal
// that is blocked in every thread of the process (otherwise the kernel
// delivers it to whichever thread does not block it, by its disposition);
// Qt's threads, the executors' workers and the application's own threads are
// started without blocking anything, and a library cannot change the mask of
// threads it did not create. So the disposition is a sigaction handler that
// only writes the signal number, one byte, to a non-blocking pipe whose read
// end the loop watches with add_reader. That works whatever thread the
// kernel picks, and the handler is async-signal-safe (write(2) and lock-free
// atomics only; errno saved and restored).
#include <qiloop/errors.h>
#include <qiloop/event_loop.h>

#include "../loop_impl.h"
#include "signal_handlers.h"

#include <QtCore/QThread>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>

#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace qi::detail {
namespace {

static_assert(NSIG <= 256, "a signal number travels through the pipe as one byte");
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler may only touch lock-free atomics");

// --- The process-wide side ---------------------------------------------------

// The write end of the owning loop's pipe for each signal, plus one (0: no
// owner), so that zero-initialised static storage means "none" before any
// constructor runs.
std::atomic<int> g_wakeup_fd[NSIG];
// Signal handlers executing now, on any thread. A loop closing its pipe waits
// for zero after clearing its g_wakeup_fd slots: a handler that loaded the
// old fd may still write to it, and the number could by then name another
// file. Sequentially consistent on both sides (Dekker): either the closer
// sees the handler in flight, or the handler sees the cleared slot.
std::atomic<int> g_in_flight{0};

extern "C" void qiloop_on_signal(int sig) {
  const int saved_errno = errno;
  g_in_flight.fetch_add(1);
  const int fd = g_wakeup_fd[sig].load() - 1;
  if (fd >= 0) {
    const auto byte = static_cast<unsigned char>(sig);
    // EAGAIN: the pipe is full (64 KiB of deliveries not read yet); the
    // reader is due anyway, so this one is coalesced with them.
    while (::write(fd, &byte, 1) < 0 && errno == EINTR) {
    }
  }
  g_in_flight.fetch_sub(1);
  errno = saved_errno;
}

// Who owns each signal (one loop per process at a time), and the disposition
// to give back when it lets go. Guarded by g_owners_mu; never touched by the
// signal handler.
struct Owner {
  const QiEventLoop* loop = nullptr;
  std::string thread;  // for the message a second loop gets
  struct sigaction previous {};
};
std::mutex g_owners_mu;
Owner g_owners[NSIG];

long current_tid() noexcept { return ::syscall(SYS_gettid); }
bool on_main_thread() noexcept { return current_tid() == ::getpid(); }

std::string signal_name(int sig) {
  std::string n = "signal " + std::to_string(sig);
  if (sig >= SIGRTMIN && sig <= SIGRTMAX) return n + " (SIGRTMIN+" + std::to_string(sig - SIGRTMIN) + ")";
  if (const char* abbrev = ::sigabbrev_np(sig)) return n + " (SIG" + abbrev + ")";
  return n;
}

std::string describe_current_thread() {
  std::string tid = "tid " + std::to_string(current_tid());
  if (on_main_thread()) return "the main thread (" + tid + ")";
  QString name = QThread::currentThread()->objectName();
  if (name.isEmpty()) return "thread " + tid;
  return "thread '" + name.toStdString() + "' (" + tid + ")";
}

// asyncio's _check_signal: ValueError out of range.
void check_signal_number(int sig, const char* api) {
  if (sig < 1 || sig >= NSIG)
    throw qi::ValueError(std::string(api) + ": signal " + std::to_string(sig) + " is out of range [1, " +
                         std::to_string(NSIG - 1) + "]; pass a signal number such as SIGUSR1 or SIGTERM (<csignal>)");
}

[[noreturn]] void throw_uncatchable(int sig, const char* why) {
  throw qi::RuntimeError("add_signal_handler: " + signal_name(sig) + " cannot be caught (" + why + ")" +
                         (sig == SIGKILL || sig == SIGSTOP
                              ? "; for a graceful stop handle SIGTERM (SIGTSTP for Ctrl+Z) instead"
                              : "; pick another signal, e.g. SIGUSR1 or SIGRTMIN+n"));
}

}  // namespace

// --- One loop's handlers --------------------------------------------------------

void SignalHandlers::set(int sig, absl::AnyInvocable<void()> handler, bool reset_on_delivery) {
  // Allocated first: nothing below may fail after the disposition changed.
  auto shared = std::make_shared<absl::AnyInvocable<void()>>(std::move(handler));
  if (count_ == 0) open_pipe();
  {
    std::lock_guard lock(g_owners_mu);
    Owner& owner = g_owners[sig];
    if (owner.loop && owner.loop != &loop_) {
      if (count_ == 0) close_pipe();
      throw qi::RuntimeError("add_signal_handler: " + signal_name(sig) + " is already handled by the event loop of " +
                             owner.thread +
                             "; one loop per process owns a signal: call remove_signal_handler(" +
                             std::to_string(sig) + ") on that loop (or close it) first");
    }
    struct sigaction action {};
    action.sa_handler = qiloop_on_signal;
    sigemptyset(&action.sa_mask);
    // SA_RESTART: a signal does not make other threads' and Qt's system calls
    // fail with EINTR (asyncio: signal.siginterrupt(sig, False)).
    action.sa_flags = SA_RESTART | (reset_on_delivery ? SA_RESETHAND : 0);
    const int old_fd = g_wakeup_fd[sig].exchange(write_fd_ + 1);
    struct sigaction previous {};
    if (::sigaction(sig, &action, &previous) != 0) {
      const int error = errno;
      g_wakeup_fd[sig].store(old_fd);
      if (count_ == 0) close_pipe();
      if (error == EINVAL) throw_uncatchable(sig, "reserved by the C library for its own threads");
      throw qi::RuntimeError("add_signal_handler: sigaction(" + signal_name(sig) + ") failed: " +
                             std::strerror(error));
    }
    if (!owner.loop) owner = Owner{&loop_, describe_current_thread(), previous};
  }
  Entry& e = entries_[sig];
  if (!e.handler) ++count_;
  // Deliveries already read but not run yet run the new handler: they belong
  // to the signal, not to the handler.
  e.handler = std::move(shared);
  e.reset_on_delivery = reset_on_delivery;
}

bool SignalHandlers::remove(int sig, bool only_ctrl_c) noexcept {
  Entry& e = entries_[sig];
  if (!e.handler || (only_ctrl_c && !e.reset_on_delivery)) return false;
  e.handler.reset();
  ++e.epoch;
  --count_;
  {
    std::lock_guard lock(g_owners_mu);
    Owner& owner = g_owners[sig];
    ::sigaction(sig, &owner.previous, nullptr);  // cannot fail: it held this disposition before
    g_wakeup_fd[sig].store(0);
    owner = Owner{};
  }
  if (count_ == 0) close_pipe();
  return true;
}

void SignalHandlers::close() noexcept {
  for (int sig = 1; sig < NSIG && count_ > 0; ++sig) remove(sig, false);
}

void SignalHandlers::open_pipe() {
  int fds[2];
  if (::pipe2(fds, O_NONBLOCK | O_CLOEXEC) != 0)
    throw qi::RuntimeError(std::string("add_signal_handler: cannot create the signal pipe: ") + std::strerror(errno));
  read_fd_ = fds[0];
  write_fd_ = fds[1];
  try {
    loop_.add_reader(read_fd_, &SignalHandlers::on_readable, this);
  } catch (...) {
    ::close(read_fd_);
    ::close(write_fd_);
    read_fd_ = write_fd_ = -1;
    throw;
  }
}

void SignalHandlers::close_pipe() noexcept {
  if (read_fd_ < 0) return;
  loop_.remove_reader(read_fd_);
  // Every slot naming write_fd_ is cleared; wait out a handler that loaded it.
  while (g_in_flight.load() != 0) std::this_thread::yield();
  ::close(read_fd_);
  ::close(write_fd_);
  read_fd_ = write_fd_ = -1;
}

// One handler run per byte, each its own callback (asyncio's
// _add_callback_signalsafe): an exception from one goes to the exception
// handler without holding the others back.
void SignalHandlers::on_readable() {
  unsigned char bytes[256];
  for (;;) {
    const ssize_t n = ::read(read_fd_, bytes, sizeof bytes);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // EAGAIN: drained
    for (ssize_t i = 0; i < n; ++i) {
      const int sig = bytes[i];
      if (sig < NSIG && entries_[sig].handler)
        loop_.call_soon(&SignalHandlers::dispatch, this, sig, entries_[sig].epoch);
    }
    if (static_cast<std::size_t>(n) < sizeof bytes) return;
  }
}

void SignalHandlers::dispatch(int sig, uint64_t epoch) {
  Entry& e = entries_[sig];
  if (!e.handler || e.epoch != epoch) return;  // removed since it was read
  std::shared_ptr<absl::AnyInvocable<void()>> keep = e.handler;
  (*keep)();
}

// --- qi::run's Ctrl+C ------------------------------------------------------------

MainInterrupt::MainInterrupt(QiEventLoop& loop) : loop_(loop) { loop.check_can_run("qi::run"); }

MainInterrupt::~MainInterrupt() {
  if (installed_) loop_.unset_signal_handler(SIGINT, QiEventLoop::SignalUse::kCtrlC);
}

// asyncio.Runner.run: only on the main thread, and only while SIGINT has the
// default disposition (Python's default_int_handler; ours is SIG_DFL). An
// application that handles or ignores SIGINT itself keeps it.
void MainInterrupt::watch(TaskRef main) {
  main_ = std::move(main);
  if (!on_main_thread()) return;
  struct sigaction current {};
  if (::sigaction(SIGINT, nullptr, &current) != 0) return;
  if ((current.sa_flags & SA_SIGINFO) || current.sa_handler != SIG_DFL) return;
  try {
    loop_.set_signal_handler(SIGINT, [this] { on_sigint(); }, QiEventLoop::SignalUse::kCtrlC);
  } catch (const qi::RuntimeError&) {
    return;  // another loop took SIGINT meanwhile: it is theirs
  }
  installed_ = true;
}

// asyncio.Runner._on_sigint. Python raises KeyboardInterrupt on the second
// SIGINT; here the kernel already reset SIGINT to SIG_DFL on the first
// delivery (SA_RESETHAND), so a second one ends the process even while the
// loop is stuck.
void MainInterrupt::on_sigint() {
  if (++interrupts_ == 1 && !main_.done()) main_.cancel();
}

void MainInterrupt::raise_if_interrupted() {
  if (interrupts_ > 0 && main_.uncancel() == 0) throw qi::KeyboardInterrupt();
}

}  // namespace qi::detail

// --- The loop's members ------------------------------------------------------------

void QiEventLoop::set_signal_handler(int sig, absl::AnyInvocable<void()> handler, SignalUse use) {
  qi::detail::check_signal_number(sig, "add_signal_handler");
  if (sig == SIGKILL || sig == SIGSTOP) qi::detail::throw_uncatchable(sig, "the kernel never lets a process handle it");
  if (closed_)
    throw qi::RuntimeError("add_signal_handler: the event loop is closed; add signal handlers before close(), or "
                           "create a new QiEventLoop");
  check_thread("add_signal_handler");
  if (!impl_->signal_handlers) impl_->signal_handlers = std::make_unique<qi::detail::SignalHandlers>(*this);
  impl_->signal_handlers->set(sig, std::move(handler), use == SignalUse::kCtrlC);
}

bool QiEventLoop::remove_signal_handler(int sig) {
  qi::detail::check_signal_number(sig, "remove_signal_handler");
  check_thread("remove_signal_handler");
  return unset_signal_handler(sig, SignalUse::kHandler);
}

bool QiEventLoop::unset_signal_handler(int sig, SignalUse use) noexcept {
  return impl_->signal_handlers && impl_->signal_handlers->remove(sig, use == SignalUse::kCtrlC);
}

void QiEventLoop::close_signal_handlers() noexcept {
  if (impl_->signal_handlers) impl_->signal_handlers->close();
}
