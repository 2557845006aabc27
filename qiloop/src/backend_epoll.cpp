// backend_epoll.cpp — the Linux backend (see backend_epoll.h).
#include "backend.h"

#include <qiloop/errors.h>

#include <QtCore/QSocketNotifier>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include <fcntl.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

namespace qi::detail {

namespace {

[[noreturn]] void throw_sys(const char* what) {
  throw qi::RuntimeError(std::string("QiEventLoop: ") + what + " failed: " + std::strerror(errno));
}

// An event's data: the fd in the low half, its registration's generation in
// the high half (0 for the loop's own fds).
constexpr uint64_t tag(int fd, uint32_t gen) noexcept {
  return (uint64_t{gen} << 32) | static_cast<uint32_t>(fd);
}

constexpr uint32_t kOwnEvents = EPOLLIN | EPOLLET;

// poll()'s buffer never holds fewer events than this.
constexpr std::size_t kMinEvents = 64;

}  // namespace

static_assert(LoopBackend<EpollBackend>);

EpollBackend::EpollBackend(QObject& owner, ReadyCallback on_ready) : owner_(owner), on_ready_(on_ready) {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) throw_sys("epoll_create1");
  timer_fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  event_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  spare_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (timer_fd_ < 0 || event_fd_ < 0 || spare_fd_ < 0) {
    int err = errno;
    close();
    errno = err;
    throw_sys("timerfd/eventfd/epoll_create1");
  }
  // Edge-triggered: each expiry or write is reported once, so a wake-up
  // costs the epoll_wait that consumes it and no read() to clear the fd.
  for (int fd : {timer_fd_, event_fd_}) {
    epoll_event ev{};
    ev.events = kOwnEvents;
    ev.data.u64 = tag(fd, 0);
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) < 0) {
      int err = errno;
      close();
      errno = err;
      throw_sys("epoll_ctl");
    }
  }
}

EpollBackend::~EpollBackend() {
  for (CallbackNode* n : close()) release_node(n);
}

void EpollBackend::watch() {
  if (closed_) return;
  const unsigned generation = application_generation();
  if (!notifier_ || notifier_generation_ != generation) {
    delete notifier_;
    notifier_ = new QSocketNotifier(epoll_fd_, QSocketNotifier::Read, &owner_);
    notifier_enabled_ = true;
    notifier_generation_ = generation;
    QObject::connect(notifier_, &QSocketNotifier::activated, &owner_, [this] { on_ready_(owner_); });
  }
  if (!notifier_enabled_) {
    notifier_->setEnabled(true);
    notifier_enabled_ = true;
  }
}

void EpollBackend::unwatch() {
  if (!notifier_ || !notifier_enabled_) return;
  notifier_->setEnabled(false);
  notifier_enabled_ = false;
}

bool EpollBackend::arm_timer(time_point when) {
  if (when == armed_ || closed_) return false;
  armed_ = when;
  auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(when.time_since_epoch()).count();
  if (ns <= 0) ns = 1;  // zero would disarm
  itimerspec spec{};
  spec.it_value.tv_sec = static_cast<time_t>(ns / 1000000000);
  spec.it_value.tv_nsec = static_cast<long>(ns % 1000000000);
  ::timerfd_settime(timer_fd_, TFD_TIMER_ABSTIME, &spec, nullptr);
  return true;
}

void EpollBackend::wake() noexcept {
  std::lock_guard lock(wake_mu_);
  if (closed_) return;
  uint64_t one = 1;
  [[maybe_unused]] ssize_t r = ::write(event_fd_, &one, sizeof one);
}

std::vector<CallbackNode*> EpollBackend::close() {
  delete notifier_;
  notifier_ = nullptr;
  {
    std::lock_guard lock(wake_mu_);
    if (closed_) return {};
    closed_ = true;
    for (int* fd : {&event_fd_, &timer_fd_, &epoll_fd_, &spare_fd_}) {
      if (*fd >= 0) ::close(*fd);
      *fd = -1;
    }
  }
  std::vector<CallbackNode*> handlers;
  for (auto& [fd, w] : fds_) w.handlers.move_to(handlers);
  fds_.clear();
  for (StaleRegistration& s : take_stale()) s.handlers.move_to(handlers);
  return handlers;
}

uint32_t EpollBackend::interest(const Watch& w) noexcept {
  return (w.handlers.reader ? EPOLLIN : 0u) | (w.handlers.writer ? EPOLLOUT : 0u);
}

int EpollBackend::apply(int op, int fd, const Watch& w) noexcept {
  epoll_event ev{};
  ev.events = interest(w);
  ev.data.u64 = tag(fd, w.gen);
  return ::epoll_ctl(epoll_fd_, op, fd, &ev) == 0 ? 0 : errno;
}

void EpollBackend::drop_stale(int fd, int error) {
  auto it = fds_.find(fd);
  stale_.push_back(StaleRegistration{fd, error, it->second.handlers});
  fds_.erase(it);
}

CallbackNode* EpollBackend::set_handler(int fd, FdDirection direction, CallbackNode* n) {
  if (fd < 0) throw std::invalid_argument("fd " + std::to_string(fd) + " is negative; pass an open file descriptor");
  if (fd == epoll_fd_ || fd == timer_fd_ || fd == event_fd_ || fd == spare_fd_)
    throw std::invalid_argument("fd " + std::to_string(fd) + " belongs to the event loop itself");
  if (auto it = fds_.find(fd); it != fds_.end()) {
    Watch next = it->second;
    next.handlers[direction] = n;
    int err = apply(EPOLL_CTL_MOD, fd, next);
    if (err == 0) return std::exchange(it->second.handlers[direction], n);
    // MOD fails this way only when the number no longer names the registered
    // file: the old handlers must not move to whatever file has it now.
    if (err != ENOENT && err != EBADF) throw_unwatchable(fd, err);
    drop_stale(fd, err);
  }
  Watch w;
  w.handlers[direction] = n;
  w.gen = next_gen_++;
  if (next_gen_ == 0) next_gen_ = 1;
  auto it = fds_.try_emplace(fd, w).first;
  int err = apply(EPOLL_CTL_ADD, fd, w);
  // The same file under the same number is still in the set when a dup kept
  // it open across a close and it was dup'ed back to the number.
  if (err == EEXIST) err = apply(EPOLL_CTL_MOD, fd, w);
  if (err != 0) {
    fds_.erase(it);
    throw_unwatchable(fd, err);
  }
  return nullptr;
}

CallbackNode* EpollBackend::take_handler(int fd, FdDirection direction) noexcept {
  auto it = fds_.find(fd);
  if (it == fds_.end()) return nullptr;
  CallbackNode* old = std::exchange(it->second.handlers[direction], nullptr);
  if (old) reregister(it);
  return old;
}

void EpollBackend::reregister(absl::flat_hash_map<int, Watch>::iterator it) noexcept {
  const int fd = it->first;
  if (!it->second.handlers.empty()) {
    if (int err = apply(EPOLL_CTL_MOD, fd, it->second)) drop_stale(fd, err);
  } else {
    // Fails when fd was closed first: the kernel then dropped the
    // registration with the file, or poll() finds its ghost.
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    fds_.erase(it);
  }
}

int EpollBackend::poll(ReadyQueue& ready) {
  // Room for every registration: one epoll_wait returns all that is ready.
  // Grown with slack, shrunk once far too big, so it is not reallocated as
  // fds come and go.
  const std::size_t want = std::max(kMinEvents, fds_.size() + 2);
  if (events_.size() < want || events_.size() > 8 * want) {
    events_.resize(2 * want);
    events_.shrink_to_fit();
  }
  int queued = 0;
  bool ghosts = false;
  for (;;) {
    const int n = ::epoll_wait(epoll_fd_, events_.data(), static_cast<int>(events_.size()), 0);
    for (int i = 0; i < n; ++i) {
      const uint64_t data = events_[i].data.u64;
      const int fd = static_cast<int>(static_cast<uint32_t>(data));
      const auto gen = static_cast<uint32_t>(data >> 32);
      if (gen == 0) {
        if (fd == timer_fd_) armed_ = time_point::max();
        continue;
      }
      auto it = fds_.find(fd);
      if (it == fds_.end() || it->second.gen != gen) {
        ghosts = true;  // a closed file still open elsewhere, under an old registration
        continue;
      }
      // A handler cancelled through its handle (ExceptionContext::handle) is
      // unregistered: a level-triggered fd nobody serves would otherwise keep
      // the loop spinning. Both at once: taking one first would MOD the fd
      // for the other, and a closed fd would make the other, cancelled too, a
      // stale registration.
      if (FdHandlers cancelled = it->second.handlers.take_cancelled(); !cancelled.empty()) {
        reregister(it);
        cancelled.release();
        it = fds_.find(fd);
        if (it == fds_.end()) continue;  // nothing left, or found stale
      }
      const uint32_t ev = events_[i].events;
      queued += it->second.handlers.enqueue(ready, ev & (EPOLLIN | EPOLLHUP | EPOLLERR),
                                            ev & (EPOLLOUT | EPOLLHUP | EPOLLERR));
    }
    if (n < static_cast<int>(events_.size())) break;
    // Full, so ghosts took room: more may be ready. Level-triggered fds come
    // back in the next call too; enqueue() queues each handler once.
    events_.resize(2 * events_.size());
  }
  if (ghosts) rebuild();
  return queued;
}

bool EpollBackend::rebuild() noexcept {
  // A ghost cannot be deleted: epoll_ctl needs an fd of its file, and we have
  // none. A new set without it takes over the same number, so Qt's notifier
  // keeps watching the right fd. The new set is the spare made beforehand: a
  // process out of fds could not make one now, and the ghost would keep the
  // epoll fd ready, spinning the loop.
  const int fresh = spare_fd_ >= 0 ? std::exchange(spare_fd_, -1) : ::epoll_create1(EPOLL_CLOEXEC);
  if (fresh < 0) return false;
  auto add = [fresh](int fd, uint32_t events, uint64_t data) {
    epoll_event ev{};
    ev.events = events;
    ev.data.u64 = data;
    return ::epoll_ctl(fresh, EPOLL_CTL_ADD, fd, &ev) == 0;
  };
  bool ok = add(timer_fd_, kOwnEvents, tag(timer_fd_, 0)) && add(event_fd_, kOwnEvents, tag(event_fd_, 0));
  for (auto it = fds_.begin(); ok && it != fds_.end();) {
    const auto [fd, w] = *it;
    ++it;
    // MOD in the old set first: it succeeds only while the number still names
    // the registered file. A stale registration re-added would move to the
    // file that has the number now.
    if (int err = apply(EPOLL_CTL_MOD, fd, w)) {
      drop_stale(fd, err);
      continue;
    }
    ok = add(fd, interest(w), tag(fd, w.gen));
  }
  ok = ok && ::dup3(fresh, epoll_fd_, O_CLOEXEC) >= 0;
  ::close(fresh);
  // Takes the number just freed (unless another thread was quicker).
  spare_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  return ok;
}

}  // namespace qi::detail
