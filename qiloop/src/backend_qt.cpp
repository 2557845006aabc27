// backend_qt.cpp — the portable backend (see backend_qt.h).
#include "backend.h"

#include <QtCore/QAbstractEventDispatcher>
#include <QtCore/QSocketNotifier>
#include <QtCore/QThread>
#include <QtCore/QTimer>

#include <cerrno>
#include <climits>
#include <stdexcept>
#include <string>

#if QILOOP_BACKEND_QT_POSIX
#include <sys/stat.h>
#endif

namespace qi::detail {

static_assert(LoopBackend<QtBackend>);

namespace {

constexpr QSocketNotifier::Type notifier_type(FdDirection d) noexcept {
  return d == FdDirection::kRead ? QSocketNotifier::Read : QSocketNotifier::Write;
}

constexpr FdDirection kDirections[] = {FdDirection::kRead, FdDirection::kWrite};

// The errno a registration is reported stale with when its number now names
// another file (not every C library has ESTALE).
#ifdef ESTALE
constexpr int kNumberReused = ESTALE;
#else
constexpr int kNumberReused = EBADF;
#endif

}  // namespace

QtBackend::QtBackend(QObject& owner, ReadyCallback on_ready) : owner_(owner), on_ready_(on_ready) {}

QtBackend::~QtBackend() {
  for (CallbackNode* n : close()) release_node(n);
}

// --- Qt's watches ---------------------------------------------------------------

void QtBackend::watch() {
  if (closed_) return;
  QAbstractEventDispatcher* dispatcher = QAbstractEventDispatcher::instance();
  if (!dispatcher) return;  // nothing runs on this thread yet; watched once something does
  const unsigned generation = application_generation();
  if (generation != generation_ || dispatcher != dispatcher_) {
    // A new application (or thread): what was made under the old dispatcher
    // is deaf, and the old dispatcher may be gone.
    drop_qt_watches();
    generation_ = generation;
    dispatcher_ = dispatcher;
    if (armed_ != time_point::max()) start_timer();
  }
  if (!watching_) {
    watching_ = true;
    about_to_block_ = QObject::connect(dispatcher, &QAbstractEventDispatcher::aboutToBlock, &owner_,
                                       [this] { on_dispatcher_turn(); }, Qt::DirectConnection);
    awake_ = QObject::connect(dispatcher, &QAbstractEventDispatcher::awake, &owner_,
                              [this] { on_dispatcher_turn(); }, Qt::DirectConnection);
  }
  if (notifiers_behind_) {
    notifiers_behind_ = false;
    for (auto& [fd, w] : fds_) sync_notifiers(fd, w);
  }
}

void QtBackend::unwatch() {
  watching_ = false;
  QObject::disconnect(about_to_block_);
  QObject::disconnect(awake_);
  about_to_block_ = awake_ = {};
}

void QtBackend::drop_qt_watches() noexcept {
  unwatch();
  for (auto& [fd, w] : fds_) delete_notifiers(w);
  notifiers_behind_ = !fds_.empty();
  delete timer_;
  timer_ = nullptr;
}

void QtBackend::sync_notifiers(int fd, Watch& w) {
  for (FdDirection d : kDirections) {
    QSocketNotifier*& notifier = w.notifiers[static_cast<int>(d)];
    if (!w.handlers[d]) {
      delete std::exchange(notifier, nullptr);
    } else if (!notifier) {
      notifier = new QSocketNotifier(fd, notifier_type(d), &owner_);
      QObject::connect(notifier, &QSocketNotifier::activated, &owner_, [this, fd, d] { on_notifier(fd, d); });
    } else if (!notifier->isEnabled()) {
      notifier->setEnabled(true);
    }
  }
}

void QtBackend::delete_notifiers(Watch& w) noexcept {
  for (QSocketNotifier*& notifier : w.notifiers) delete std::exchange(notifier, nullptr);
}

void QtBackend::on_notifier(int fd, FdDirection direction) {
  auto it = fds_.find(fd);
  if (it == fds_.end()) return;
  // Qt polled before poll() did: what it reports is already served, and the
  // notifier stays on, to report again if the fd is still ready when Qt
  // next polls (on_dispatcher_turn() clears the flag first; it is connected
  // only while watching).
  if (QILOOP_BACKEND_QT_POSIX && watching_ && polled_since_qt_polled_) return;
  it->second.notifiers[static_cast<int>(direction)]->setEnabled(false);
  notifiers_behind_ = true;
#if !QILOOP_BACKEND_QT_POSIX
  if (!it->second.reported[0] && !it->second.reported[1]) reported_fds_.push_back(fd);
  it->second.reported[static_cast<int>(direction)] = true;
#endif
  on_ready_(owner_);
}

void QtBackend::on_dispatcher_turn() {
  polled_since_qt_polled_ = false;
  if (!rung_.load(std::memory_order_relaxed) || !rung_.exchange(false, std::memory_order_acquire)) return;
  on_ready_(owner_);
}

// --- The deadline and the doorbell ------------------------------------------------

bool QtBackend::arm_timer(time_point when) {
  if (closed_ || when == armed_) return false;
  armed_ = when;
  start_timer();
  return true;
}

void QtBackend::start_timer() {
  if (!timer_) {
    timer_ = new QTimer(&owner_);
    timer_->setSingleShot(true);
    timer_->setTimerType(Qt::PreciseTimer);
    QObject::connect(timer_, &QTimer::timeout, &owner_, [this] {
      armed_ = time_point::max();
      on_ready_(owner_);
    });
  }
  // Rounded up to whole milliseconds: Qt's timer must not fire before the
  // deadline. A deadline beyond INT_MAX ms fires early and is re-armed.
  const auto now = BackendClock::now();
  long long ms = 0;
  if (armed_ > now) ms = std::chrono::ceil<std::chrono::milliseconds>(armed_ - now).count();
  timer_->start(static_cast<int>(std::min<long long>(ms, INT_MAX)));
}

void QtBackend::wake() noexcept {
  std::lock_guard lock(wake_mu_);
  if (closed_) return;
  rung_.store(true, std::memory_order_release);
  // The dispatcher of the loop's thread, read now: a new application brings
  // a new one. Qt's postEvent wakes a thread the same way.
  if (QAbstractEventDispatcher* dispatcher = QAbstractEventDispatcher::instance(owner_.thread()))
    dispatcher->wakeUp();
}

std::vector<CallbackNode*> QtBackend::close() {
  {
    std::lock_guard lock(wake_mu_);
    if (closed_) return {};
    closed_ = true;
  }
  drop_qt_watches();
  std::vector<CallbackNode*> handlers;
  for (auto& [fd, w] : fds_) w.handlers.move_to(handlers);
  fds_.clear();
  for (StaleRegistration& s : take_stale()) s.handlers.move_to(handlers);
  return handlers;
}

// --- Registrations -----------------------------------------------------------------

std::pair<int, QtBackend::FileId> QtBackend::identify(int fd) noexcept {
#if QILOOP_BACKEND_QT_POSIX
  struct stat st{};
  if (::fstat(fd, &st) != 0) return {errno, {}};
  // As epoll refuses them: a regular file or directory is always "ready".
  if (S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)) return {EPERM, {}};
  return {0, FileId{st.st_dev, st.st_ino}};
#else
  (void)fd;
  return {0, FileId{}};
#endif
}

void QtBackend::registrations_changed() noexcept {
  notifiers_behind_ = true;
#if QILOOP_BACKEND_QT_POSIX
  pollfds_behind_ = true;
#endif
}

void QtBackend::drop_stale(Map::iterator it, int error) {
  delete_notifiers(it->second);
  stale_.push_back(StaleRegistration{it->first, error, it->second.handlers});
  fds_.erase(it);
  registrations_changed();
}

CallbackNode* QtBackend::set_handler(int fd, FdDirection direction, CallbackNode* n) {
  if (fd < 0) throw std::invalid_argument("fd " + std::to_string(fd) + " is negative; pass an open file descriptor");
  const auto [error, file] = identify(fd);
  if (auto it = fds_.find(fd); it != fds_.end()) {
    if (error == 0 && it->second.file == file) {
      registrations_changed();
      return std::exchange(it->second.handlers[direction], n);
    }
    // The number is closed, or names another file now: the old handlers must
    // not move to it.
    drop_stale(it, error ? error : kNumberReused);
  }
  if (error != 0) throw_unwatchable(fd, error);
  Watch w;
  w.handlers[direction] = n;
  w.file = file;
  fds_.emplace(fd, w);
  registrations_changed();
  return nullptr;
}

CallbackNode* QtBackend::take_handler(int fd, FdDirection direction) noexcept {
  auto it = fds_.find(fd);
  if (it == fds_.end()) return nullptr;
  CallbackNode* old = std::exchange(it->second.handlers[direction], nullptr);
  if (!old) return nullptr;
  registrations_changed();
  // Deleted now (also from inside its own activated(): Qt allows it), so a
  // closed fd is never left with a notifier.
  delete std::exchange(it->second.notifiers[static_cast<int>(direction)], nullptr);
  if (it->second.handlers.empty()) {
    delete_notifiers(it->second);
    fds_.erase(it);
  } else if (const auto [error, file] = identify(fd); error != 0 || !(file == it->second.file)) {
    drop_stale(it, error ? error : kNumberReused);
  }
  return old;
}

// --- Polling ----------------------------------------------------------------------

int QtBackend::serve(ReadyQueue& ready, int fd, bool readable, bool writable, bool closed) {
  auto it = fds_.find(fd);
  if (it == fds_.end()) return 0;
  // A handler cancelled through its handle is unregistered (backend.h).
  if (FdHandlers cancelled = it->second.handlers.take_cancelled(); !cancelled.empty()) {
    registrations_changed();
    if (it->second.handlers.empty()) {
      delete_notifiers(it->second);
      fds_.erase(it);
    }
    cancelled.release();  // may call back into the loop: after the map is consistent
    it = fds_.find(fd);
    if (it == fds_.end()) return 0;
  }
  if (closed) {
    drop_stale(it, EBADF);
    return 0;
  }
  return it->second.handlers.enqueue(ready, readable, writable);
}

int QtBackend::poll(ReadyQueue& ready) {
  int queued = 0;
#if QILOOP_BACKEND_QT_POSIX
  polled_since_qt_polled_ = true;
  if (pollfds_behind_) {
    pollfds_behind_ = false;
    pollfds_.clear();
    for (const auto& [fd, w] : fds_) {
      const short events = (w.handlers.reader ? POLLIN : 0) | (w.handlers.writer ? POLLOUT : 0);
      pollfds_.push_back(pollfd{fd, events, 0});
    }
  }
  if (::poll(pollfds_.data(), pollfds_.size(), 0) <= 0) return 0;
  // serve() may change the registrations (a released handler's destructor
  // may remove another): pollfds_ itself is only rebuilt by the next poll().
  for (const pollfd& p : pollfds_) {
    if (p.revents == 0) continue;
    queued += serve(ready, p.fd, p.revents & (POLLIN | POLLHUP | POLLERR), p.revents & (POLLOUT | POLLHUP | POLLERR),
                    p.revents & POLLNVAL);
  }
#else
  for (int fd : std::exchange(reported_fds_, {})) {
    auto it = fds_.find(fd);
    if (it == fds_.end()) continue;
    const bool readable = std::exchange(it->second.reported[0], false);
    const bool writable = std::exchange(it->second.reported[1], false);
    queued += serve(ready, fd, readable, writable, false);
  }
#endif
  return queued;
}

}  // namespace qi::detail
