#include "selector.h"

#include <qiloop/errors.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

namespace qi::detail {

namespace {

[[noreturn]] void throw_sys(const char* what) {
  throw qi::RuntimeError(std::string("QiEventLoop: ") + what + " failed: " + std::strerror(errno));
}

}  // namespace

Selector::Selector() {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd_ < 0) throw_sys("epoll_create1");
  timer_fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  event_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (timer_fd_ < 0 || event_fd_ < 0) {
    int err = errno;
    close();
    errno = err;
    throw_sys("timerfd/eventfd");
  }
  // Edge-triggered: each expiry or write is reported once, so a wake-up
  // costs the epoll_wait that consumes it and no read() to clear the fd.
  for (int fd : {timer_fd_, event_fd_}) {
    epoll_event ev{};
    ev.events = EPOLLIN | EPOLLET;
    ev.data.fd = fd;
    if (::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev) < 0) {
      int err = errno;
      close();
      errno = err;
      throw_sys("epoll_ctl");
    }
  }
}

Selector::~Selector() {
  for (CallbackNode* n : close()) release_node(n);
}

bool Selector::arm_timer(time_point when) {
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

void Selector::wake() noexcept {
  std::lock_guard lock(wake_mu_);
  if (closed_) return;
  uint64_t one = 1;
  [[maybe_unused]] ssize_t r = ::write(event_fd_, &one, sizeof one);
}

std::vector<CallbackNode*> Selector::close() {
  {
    std::lock_guard lock(wake_mu_);
    if (closed_) return {};
    closed_ = true;
    for (int* fd : {&event_fd_, &timer_fd_, &epoll_fd_}) {
      if (*fd >= 0) ::close(*fd);
      *fd = -1;
    }
  }
  std::vector<CallbackNode*> handlers;
  for (auto& [fd, w] : fds_) {
    for (CallbackNode* n : {w.reader, w.writer})
      if (n) handlers.push_back(n);
  }
  fds_.clear();
  return handlers;
}

void Selector::update(int fd, const Watch& w, bool existed) {
  epoll_event ev{};
  ev.events = (w.reader ? EPOLLIN : 0u) | (w.writer ? EPOLLOUT : 0u);
  ev.data.fd = fd;
  if (ev.events == 0) {
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);  // may already be gone with a closed fd
    return;
  }
  int op = existed ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
  int rc = ::epoll_ctl(epoll_fd_, op, fd, &ev);
  // The kernel forgets an fd when it is closed: a reused number needs ADD again.
  if (rc < 0 && errno == ENOENT && op == EPOLL_CTL_MOD) rc = ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  if (rc < 0 && errno == EEXIST && op == EPOLL_CTL_ADD) rc = ::epoll_ctl(epoll_fd_, EPOLL_CTL_MOD, fd, &ev);
  if (rc == 0) return;
  int err = errno;
  std::string msg = "fd " + std::to_string(fd);
  if (err == EBADF)
    msg += " is not an open file descriptor (EBADF); pass an open socket, pipe or other pollable fd";
  else if (err == EPERM)
    msg += " cannot be polled (EPERM: regular files and directories are always ready); read it directly, "
           "or in a thread";
  else
    msg += " cannot be watched: " + std::string(std::strerror(err));
  throw std::invalid_argument(msg);
}

CallbackNode* Selector::set_handler(int fd, bool write, CallbackNode* n) {
  if (fd < 0) throw std::invalid_argument("fd " + std::to_string(fd) + " is negative; pass an open file descriptor");
  if (fd == epoll_fd_ || fd == timer_fd_ || fd == event_fd_)
    throw std::invalid_argument("fd " + std::to_string(fd) + " belongs to the event loop itself");
  auto [it, inserted] = fds_.try_emplace(fd);
  Watch next = it->second;
  (write ? next.writer : next.reader) = n;
  try {
    update(fd, next, !inserted);
  } catch (...) {
    if (inserted) fds_.erase(it);
    throw;
  }
  CallbackNode*& slot = write ? it->second.writer : it->second.reader;
  return std::exchange(slot, n);
}

CallbackNode* Selector::take_handler(int fd, bool write) {
  auto it = fds_.find(fd);
  if (it == fds_.end()) return nullptr;
  CallbackNode* old = std::exchange(write ? it->second.writer : it->second.reader, nullptr);
  if (!old) return nullptr;
  update(fd, it->second, true);
  if (!it->second.reader && !it->second.writer) fds_.erase(it);
  return old;
}

bool Selector::enqueue(ReadyQueue& ready, CallbackNode* n) noexcept {
  // An fd handler is linked into the ready queue at most once (it runs at
  // most once per iteration, as in asyncio).
  if (!n || (n->load_state() & (CallbackNode::kQueued | CallbackNode::kCancelled))) return false;
  n->set_state(CallbackNode::kQueued);
  n->retain();
  ready.push(n);
  return true;
}

int Selector::poll(ReadyQueue& ready) {
  int queued = 0;
  epoll_event events[64];
  int n = ::epoll_wait(epoll_fd_, events, 64, 0);
  for (int i = 0; i < n; ++i) {
    const int fd = events[i].data.fd;
    const uint32_t ev = events[i].events;
    if (fd == event_fd_) continue;
    if (fd == timer_fd_) {
      armed_ = time_point::max();
      continue;
    }
    auto it = fds_.find(fd);
    if (it == fds_.end()) continue;
    Watch w = it->second;
    // A handler cancelled through its handle (ExceptionContext::handle) is
    // unregistered, as asyncio's _process_events does: a level-triggered fd
    // nobody serves would otherwise keep the loop spinning.
    for (CallbackNode** n : {&w.reader, &w.writer}) {
      if (*n && (*n)->load_state() & CallbackNode::kCancelled) {
        release_node(take_handler(fd, n == &w.writer));
        *n = nullptr;
      }
    }
    if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) queued += enqueue(ready, w.reader);
    if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) queued += enqueue(ready, w.writer);
  }
  return queued;
}

}  // namespace qi::detail
