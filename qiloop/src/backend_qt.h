// backend_qt.h — the portable backend: Qt's own watches. Internal; include
// backend.h, which states the contract this class keeps.
//
// - fds: one QSocketNotifier per fd and direction. A notifier that fired is
//   disabled until watch() (the end of the loop's slice), so Qt never spins
//   on a level-triggered fd. Within a slice poll() asks the OS directly with
//   a zero-timeout POSIX poll() over the registered fds, so an fd that stays
//   ready is served on every iteration, and every ready fd in one iteration,
//   as with epoll.
// - The deadline: one single-shot Qt::PreciseTimer QTimer. Qt's timers count
//   whole milliseconds: the delay is rounded up, so it never fires early (Qt
//   and steady_clock read the same monotonic clock), and the loop re-checks
//   its deadlines anyway.
// - The doorbell: wake() sets a flag and calls the thread's
//   QAbstractEventDispatcher::wakeUp() (thread-safe). The loop's thread sees
//   the flag when its dispatcher next emits aboutToBlock() or awake() (both
//   the glib and the UNIX dispatcher emit one of them before each poll), with
//   nothing passed through a Qt event: the flag is the only shared state.
//
// Where it differs from EpollBackend:
// - Timer wake-ups have millisecond granularity (a timerfd has nanoseconds):
//   up to 1 ms later than with epoll, never earlier.
// - Stale registrations (an fd closed without remove_reader/remove_writer)
//   are found when the loop adds or removes a handler on the number (the
//   registration remembers its file's device and inode) or when poll() finds
//   the number closed (POLLNVAL). Not found: a number closed and reused
//   before the loop looked at it again serves the new file to the old
//   handler until the next add or remove on that number (EpollBackend finds
//   it at its next poll, through the kernel's events of the closed file).
// - A QSocketNotifier of the application's own on the same fd and direction
//   clashes with ours (Qt's UNIX dispatcher keeps one per fd and type).
// - A nested exec(QEventLoop::ExcludeSocketNotifiers) holds back fd
//   readiness only: timers and other threads still wake the loop in it.
// - Without POSIX (a port to an OS with neither poll() nor fstat()): fds are
//   not checked when added, stale registrations are not found, and poll()
//   serves what Qt's notifiers reported since the last slice, so a
//   still-ready fd runs its handler once per slice instead of once per
//   iteration.
//
// Thread-safety: wake() may be called from any thread, also while close()
// runs; every other member belongs to the owner's thread.
#pragma once

#include "backend.h"

#include <absl/container/flat_hash_map.h>

#include <QtCore/QMetaObject>
#include <QtCore/QtGlobal>

#include <atomic>
#include <chrono>
#include <mutex>
#include <utility>
#include <vector>

#if defined(Q_OS_UNIX)
#define QILOOP_BACKEND_QT_POSIX 1
#include <poll.h>
#include <sys/types.h>
#else
#define QILOOP_BACKEND_QT_POSIX 0
#endif

class QAbstractEventDispatcher;
class QSocketNotifier;
class QTimer;

namespace qi::detail {

class QtBackend : public BackendBase {
 public:
  QtBackend(QObject& owner, ReadyCallback on_ready);
  ~QtBackend();

  // Makes Qt watch the fds (notifiers made or re-enabled), the deadline and
  // the doorbell through the current application's event dispatcher (all
  // made again after a new QCoreApplication).
  void watch();
  // Disconnects the doorbell from the dispatcher (an idle loop may move to
  // another thread). Notifiers and the timer report at most once anyway.
  void unwatch();

  // The rest as backend.h says; what is particular to this backend is at the
  // top of this file.
  bool arm_timer(time_point when);  // (re)starts the QTimer
  void wake() noexcept;
  std::vector<CallbackNode*> close();  // deletes every Qt watch
  CallbackNode* set_handler(int fd, FdDirection direction, CallbackNode* n);
  CallbackNode* take_handler(int fd, FdDirection direction) noexcept;
  int poll(ReadyQueue& ready);  // a zero-timeout POSIX poll() of every registered fd
  bool has_user_fds() const noexcept { return !fds_.empty(); }
  bool has_stale() const noexcept { return !stale_.empty(); }
  std::vector<StaleRegistration> take_stale() noexcept { return std::exchange(stale_, {}); }

 private:
  // The file a registration was made for, to tell it from another file that
  // reuses the number.
  struct FileId {
#if QILOOP_BACKEND_QT_POSIX
    dev_t device = 0;
    ino_t inode = 0;
#endif
    friend bool operator==(const FileId&, const FileId&) = default;
  };
  struct Watch {
    FdHandlers handlers;
    QSocketNotifier* notifiers[2] = {nullptr, nullptr};  // by FdDirection, children of owner_
    FileId file;
    bool reported[2] = {false, false};  // without POSIX: a notifier fired since the last poll()
  };
  using Map = absl::flat_hash_map<int, Watch>;

  // 0 and the file's identity, or the errno saying why fd cannot be watched.
  static std::pair<int, FileId> identify(int fd) noexcept;
  // The notifier of `direction` fired.
  void on_notifier(int fd, FdDirection direction);
  // The dispatcher is about to poll (aboutToBlock, awake).
  void on_dispatcher_turn();
  // Makes, re-enables or deletes w's notifiers to match its handlers.
  void sync_notifiers(int fd, Watch& w);
  static void delete_notifiers(Watch& w) noexcept;
  // Handlers changed: the notifiers follow at the next watch(), poll()'s
  // descriptor list at the next poll().
  void registrations_changed() noexcept;
  // Forgets every watch made under another application.
  void drop_qt_watches() noexcept;
  void start_timer();
  // Drops fd's registration as stale: its handlers go to stale_.
  void drop_stale(Map::iterator it, int error);
  // Serves fd's handlers for one poll() result; returns how many it queued.
  int serve(ReadyQueue& ready, int fd, bool readable, bool writable, bool closed);

  QObject& owner_;
  ReadyCallback on_ready_;
  Map fds_;
  std::vector<StaleRegistration> stale_;
  bool notifiers_behind_ = false;  // some watch's notifiers do not match its handlers
  // Set by poll(), cleared before the dispatcher polls: a notifier that
  // fires meanwhile reports what poll() has seen more recently.
  bool polled_since_qt_polled_ = false;
#if QILOOP_BACKEND_QT_POSIX
  std::vector<pollfd> pollfds_;
  bool pollfds_behind_ = false;
#else
  std::vector<int> reported_fds_;
#endif

  QTimer* timer_ = nullptr;  // a child of owner_
  time_point armed_ = time_point::max();

  QAbstractEventDispatcher* dispatcher_ = nullptr;  // the one watch() connected to
  unsigned generation_ = 0;                         // the application_generation() of the watches
  bool watching_ = false;                           // the doorbell is connected
  QMetaObject::Connection about_to_block_;
  QMetaObject::Connection awake_;

  std::atomic<bool> rung_{false};
  std::mutex wake_mu_;   // orders wake() against close()
  bool closed_ = false;  // guarded by wake_mu_
};

}  // namespace qi::detail
