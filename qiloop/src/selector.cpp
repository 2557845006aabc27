#include "selector.h"

#include <qiloop/errors.h>

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

[[noreturn]] void throw_unwatchable(int fd, int err) {
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

// An event's data: the fd in the low half, its registration's generation in
// the high half (0 for the loop's own fds).
constexpr uint64_t tag(int fd, uint32_t gen) noexcept {
  return (uint64_t{gen} << 32) | static_cast<uint32_t>(fd);
}

constexpr uint32_t kOwnEvents = EPOLLIN | EPOLLET;

// poll()'s buffer never holds fewer events than this.
constexpr std::size_t kMinEvents = 64;

bool cancelled(const CallbackNode* n) noexcept { return n && (n->load_state() & CallbackNode::kCancelled); }

}  // namespace

Selector::Selector() {
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
    for (int* fd : {&event_fd_, &timer_fd_, &epoll_fd_, &spare_fd_}) {
      if (*fd >= 0) ::close(*fd);
      *fd = -1;
    }
  }
  std::vector<CallbackNode*> handlers;
  auto keep = [&handlers](CallbackNode* reader, CallbackNode* writer) {
    for (CallbackNode* n : {reader, writer})
      if (n) handlers.push_back(n);
  };
  for (auto& [fd, w] : fds_) keep(w.reader, w.writer);
  fds_.clear();
  for (const Stale& s : take_stale()) keep(s.reader, s.writer);
  return handlers;
}

std::string Selector::Stale::message() const {
  const bool both = reader && writer;
  std::string what = both ? "reader and writer" : reader ? "reader" : "writer";
  std::string fix = both ? "remove_reader() and remove_writer()" : reader ? "remove_reader()" : "remove_writer()";
  return "fd " + std::to_string(fd) + " was closed while its " + what + (both ? " were" : " was") +
         " registered (epoll: " + std::strerror(error) + "); the " + what +
         " will not run again, nor for a file that reuses the number. Call " + fix + " before closing an fd";
}

uint32_t Selector::interest(const Watch& w) noexcept {
  return (w.reader ? EPOLLIN : 0u) | (w.writer ? EPOLLOUT : 0u);
}

int Selector::apply(int op, int fd, const Watch& w) noexcept {
  epoll_event ev{};
  ev.events = interest(w);
  ev.data.u64 = tag(fd, w.gen);
  return ::epoll_ctl(epoll_fd_, op, fd, &ev) == 0 ? 0 : errno;
}

void Selector::drop_stale(int fd, int error) {
  auto it = fds_.find(fd);
  stale_.push_back(Stale{fd, error, it->second.reader, it->second.writer});
  fds_.erase(it);
}

CallbackNode* Selector::set_handler(int fd, bool write, CallbackNode* n) {
  if (fd < 0) throw std::invalid_argument("fd " + std::to_string(fd) + " is negative; pass an open file descriptor");
  if (fd == epoll_fd_ || fd == timer_fd_ || fd == event_fd_ || fd == spare_fd_)
    throw std::invalid_argument("fd " + std::to_string(fd) + " belongs to the event loop itself");
  if (auto it = fds_.find(fd); it != fds_.end()) {
    Watch next = it->second;
    (write ? next.writer : next.reader) = n;
    int err = apply(EPOLL_CTL_MOD, fd, next);
    if (err == 0) return std::exchange(write ? it->second.writer : it->second.reader, n);
    // MOD fails this way only when the number no longer names the registered
    // file: the old handlers must not move to whatever file has it now.
    if (err != ENOENT && err != EBADF) throw_unwatchable(fd, err);
    drop_stale(fd, err);
  }
  Watch w;
  (write ? w.writer : w.reader) = n;
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

CallbackNode* Selector::take_handler(int fd, bool write) noexcept {
  auto it = fds_.find(fd);
  if (it == fds_.end()) return nullptr;
  CallbackNode* old = std::exchange(write ? it->second.writer : it->second.reader, nullptr);
  if (old) reregister(it);
  return old;
}

void Selector::reregister(absl::flat_hash_map<int, Watch>::iterator it) noexcept {
  const int fd = it->first;
  if (it->second.reader || it->second.writer) {
    if (int err = apply(EPOLL_CTL_MOD, fd, it->second)) drop_stale(fd, err);
  } else {
    // Fails when fd was closed first: the kernel then dropped the
    // registration with the file, or poll() finds its ghost.
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
    fds_.erase(it);
  }
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
      Watch w = it->second;
      // A handler cancelled through its handle (ExceptionContext::handle) is
      // unregistered, as asyncio's _process_events does: a level-triggered fd
      // nobody serves would otherwise keep the loop spinning.
      // Both at once: taking one first would MOD the fd for the other, and a
      // closed fd would make the other, cancelled too, a stale registration.
      if (cancelled(w.reader) || cancelled(w.writer)) {
        if (cancelled(w.reader)) it->second.reader = nullptr;
        if (cancelled(w.writer)) it->second.writer = nullptr;
        reregister(it);
        for (CallbackNode* n : {w.reader, w.writer})
          if (cancelled(n)) release_node(n);
        it = fds_.find(fd);
        if (it == fds_.end()) continue;  // nothing left, or found stale
        w = it->second;
      }
      const uint32_t ev = events_[i].events;
      if (ev & (EPOLLIN | EPOLLHUP | EPOLLERR)) queued += enqueue(ready, w.reader);
      if (ev & (EPOLLOUT | EPOLLHUP | EPOLLERR)) queued += enqueue(ready, w.writer);
    }
    if (n < static_cast<int>(events_.size())) break;
    // Full, so ghosts took room: more may be ready. Level-triggered fds come
    // back in the next call too; enqueue() queues each handler once.
    events_.resize(2 * events_.size());
  }
  if (ghosts) rebuild();
  return queued;
}

bool Selector::rebuild() noexcept {
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
