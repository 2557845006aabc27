// backend_epoll.h — the Linux backend: the loop's epoll set. Internal;
// include backend.h, which states the contract this class keeps.
//
// One epoll fd holds: a timerfd (the single wake-up for the earliest timer,
// armed with an absolute CLOCK_MONOTONIC deadline, so sub-millisecond), an
// eventfd (the thread inbox's doorbell) and the user's fds. Qt watches only
// the epoll fd, through one QSocketNotifier (level-triggered: unwatch()
// disables it while the loop cannot poll, so Qt does not spin on it).
//
// Thread-safety: wake() may be called from any thread until close(); every
// other member belongs to the loop's thread.
//
// Stale registrations. The kernel keys an epoll registration by (file, fd
// number) and drops it when the file's last descriptor closes. A user who
// closes a watched fd without remove_reader()/remove_writer() leaves us a
// registration that names a number, not a file. We find it out when epoll
// refuses to change it (MOD fails with ENOENT or EBADF: the number is closed,
// or now names another file), at the next add or remove on that number or
// when poll() unregisters a cancelled handler. The handlers are then dropped,
// never moved to the file that got the number, and queued for the loop to
// report (take_stale()). If a dup (or a fork) keeps the closed file open, the
// kernel keeps reporting it under the old number; each registration carries
// a generation in its epoll data, so such "ghost" events are recognised, never
// served, and the epoll set is rebuilt without them (else the level-triggered
// epoll fd would stay readable and Qt would spin on it). The rebuilt set is an
// empty one opened in advance (a fourth fd per loop), so that a process out
// of fds can still rebuild.
// Not detected (as in asyncio and libuv): while nothing adds or removes on
// that number, a closed file kept open by a dup still fires the old handler,
// even once the number names another file. No syscall is spent per event to
// check identity.
#pragma once

#include "backend.h"

#include <absl/container/flat_hash_map.h>

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <sys/epoll.h>

class QSocketNotifier;

namespace qi::detail {

class EpollBackend : public BackendBase {
 public:
  // Throws qi::RuntimeError when the kernel refuses an fd (out of fds).
  EpollBackend(QObject& owner, ReadyCallback on_ready);
  ~EpollBackend();

  // The epoll fd Qt watches (for the Linux-only tests).
  int epoll_fd() const noexcept { return epoll_fd_; }

  // Makes Qt watch the epoll fd through the current application's event
  // dispatcher (a new notifier after a new QCoreApplication), enabled.
  void watch();
  // Disables the notifier: the epoll fd stays readable while an fd is ready.
  void unwatch();

  // Arms the timerfd for `when` unless already armed for it. Returns whether
  // a syscall was made.
  bool arm_timer(time_point when);

  // Rings the eventfd. Any thread; a no-op after close().
  void wake() noexcept;

  // Deletes the notifier and closes every fd. Returns the user handlers (each
  // with the backend's reference, stale ones included) for the caller to
  // release.
  std::vector<CallbackNode*> close();

  // Installs n (taking over one reference) as fd's reader or writer; returns
  // the handler it replaced, or null. A stale registration of fd is dropped
  // first (see take_stale): then only n is registered and null is returned.
  // Throws std::invalid_argument when fd cannot be watched (the stale
  // registration, if any, is still dropped).
  CallbackNode* set_handler(int fd, FdDirection direction, CallbackNode* n);
  // Removes and returns fd's reader or writer (null when none). Never throws:
  // if fd's other handler turns out stale it is dropped (see take_stale).
  CallbackNode* take_handler(int fd, FdDirection direction) noexcept;
  bool has_user_fds() const noexcept { return !fds_.empty(); }

  // Non-blocking poll. Consumes timerfd / eventfd wake-ups (edge-triggered) and
  // appends the handler of each ready user fd to `ready` (adding a
  // reference): every fd that is ready, however many. Returns how many
  // handlers it appended. Never throws but std::bad_alloc.
  int poll(ReadyQueue& ready);

  // Stale registrations dropped since the last call, in the order found.
  bool has_stale() const noexcept { return !stale_.empty(); }
  std::vector<StaleRegistration> take_stale() noexcept { return std::exchange(stale_, {}); }

 private:
  struct Watch {
    FdHandlers handlers;
    uint32_t gen = 0;  // tags this registration's events; 0 is the loop's own fds
  };
  static uint32_t interest(const Watch& w) noexcept;
  // The epoll_ctl for w (ADD for a new registration); returns 0 or an errno.
  int apply(int op, int fd, const Watch& w) noexcept;
  // Brings the epoll set in line with its Watch after handlers were taken
  // off: MOD for what is left, DEL (and erase) when nothing is; a failed MOD
  // drops the registration as stale.
  void reregister(absl::flat_hash_map<int, Watch>::iterator it) noexcept;
  // Drops fd's registration as stale: its handlers go to stale_.
  void drop_stale(int fd, int error);
  // Rebuilds the epoll set from fds_, on the same fd number, leaving behind
  // the registrations of closed files. Returns whether it could.
  bool rebuild() noexcept;

  QObject& owner_;
  ReadyCallback on_ready_;
  QSocketNotifier* notifier_ = nullptr;  // Qt's watch on epoll_fd_, a child of owner_
  bool notifier_enabled_ = false;
  unsigned notifier_generation_ = 0;  // the application_generation() it was made under
  int epoll_fd_ = -1;
  int timer_fd_ = -1;
  int event_fd_ = -1;
  int spare_fd_ = -1;  // an empty epoll set, for rebuild()
  time_point armed_ = time_point::max();
  absl::flat_hash_map<int, Watch> fds_;
  uint32_t next_gen_ = 1;
  std::vector<epoll_event> events_;  // poll()'s buffer, sized to the registrations
  std::vector<StaleRegistration> stale_;
  std::mutex wake_mu_;  // orders wake() against close()
  bool closed_ = false; // guarded by wake_mu_
};

}  // namespace qi::detail
