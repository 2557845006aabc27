// selector.h — the loop's epoll set. Internal.
//
// One epoll fd holds: a timerfd (the single wake-up for the earliest timer,
// armed with an absolute CLOCK_MONOTONIC deadline, so sub-millisecond), an
// eventfd (the thread inbox's doorbell) and the user's fds. Qt watches only
// the epoll fd, through one QSocketNotifier owned by the loop.
//
// Thread-safety: wake() may be called from any thread until close(); every
// other member belongs to the loop's thread.
#pragma once

#include <qiloop/detail/callback_node.h>

#include <absl/container/flat_hash_map.h>

#include <chrono>
#include <mutex>
#include <vector>

namespace qi::detail {

class Selector {
 public:
  using time_point = std::chrono::steady_clock::time_point;

  Selector();
  Selector(const Selector&) = delete;
  Selector& operator=(const Selector&) = delete;
  ~Selector();

  int fd() const noexcept { return epoll_fd_; }

  // Arms the timerfd for `when` unless already armed for it. Returns whether
  // a syscall was made.
  bool arm_timer(time_point when);

  // Rings the eventfd. Any thread; a no-op after close().
  void wake() noexcept;

  // Closes every fd. Returns the user handlers (each with the selector's
  // reference) for the caller to release.
  std::vector<CallbackNode*> close();

  // Installs n (taking over one reference) as fd's reader or writer; returns
  // the handler it replaced, or null. Throws std::invalid_argument when fd
  // cannot be watched.
  CallbackNode* set_handler(int fd, bool write, CallbackNode* n);
  // Removes and returns fd's reader or writer (null when none).
  CallbackNode* take_handler(int fd, bool write);
  bool has_user_fds() const noexcept { return !fds_.empty(); }

  // Non-blocking poll. Consumes timerfd / eventfd wake-ups (edge-triggered) and
  // appends the handler of each ready user fd to `ready` (adding a
  // reference). Returns how many handlers it appended.
  int poll(ReadyQueue& ready);

 private:
  struct Watch {
    CallbackNode* reader = nullptr;
    CallbackNode* writer = nullptr;
  };
  void update(int fd, const Watch& w, bool existed);
  static bool enqueue(ReadyQueue& ready, CallbackNode* n) noexcept;

  int epoll_fd_ = -1;
  int timer_fd_ = -1;
  int event_fd_ = -1;
  time_point armed_ = time_point::max();
  absl::flat_hash_map<int, Watch> fds_;
  std::mutex wake_mu_;  // orders wake() against close()
  bool closed_ = false; // guarded by wake_mu_
};

}  // namespace qi::detail
