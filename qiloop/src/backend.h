// backend.h — what the scheduler needs from the OS, behind one interface. Internal.
//
// The scheduler waits for three things: file descriptors becoming ready
// (add_reader / add_writer, level-triggered), the earliest timer deadline (one
// precise wake-up), and other threads (a doorbell call_soon_threadsafe rings).
// A backend provides the three and makes Qt's event loop call the loop back
// when one of them happens. Two exist, chosen when qiloop is configured
// (`-DQILOOP_BACKEND=linux|portable`; linux is the default on Linux, portable
// elsewhere; <qiloop/config.h> says which one a build has):
//
//   EpollBackend (backend_epoll.h, linux): one epoll set holding a timerfd,
//     an eventfd and the user's fds; Qt watches only the epoll fd.
//   QtBackend (backend_qt.h, portable): Qt only (plus POSIX poll() / fstat()
//     where the OS has them): a QSocketNotifier per fd and direction, one
//     Qt::PreciseTimer QTimer, the event dispatcher's wakeUp(). Where it
//     differs from EpollBackend is listed at the top of backend_qt.h.
//
// The loop holds the configured one by value (LoopImpl::backend, type
// qi::detail::Backend) and calls it directly: no virtual call on any path.
//
// The contract (LoopBackend below checks the signatures, tests/backend_test.cpp
// the behaviour):
//
// - Threads: wake() may be called from any thread, also while close() runs
//   (from then on it does nothing). Every other member belongs to the thread
//   of the owner QObject (the loop's).
// - Reporting: Backend(owner, on_ready). After watch(), the backend calls
//   on_ready(owner) from Qt's event loop — never from inside one of its own
//   members — when something it waits for may have happened: an fd may be
//   ready, the armed deadline has passed, or wake() was called. A call may be
//   spurious; none is missed. on_ready may destroy nothing of the backend.
// - Not spinning: the loop calls unwatch() when it cannot serve a report
//   now (it is not running, or a callback of its own runs a nested Qt loop)
//   and watch() again at the end of each slice; in between no watch keeps
//   reporting a still-ready fd, so Qt never spins on one.
// - Readiness: poll(ready) never blocks. It appends the handler of each
//   registered fd that is ready (a reader when readable, hung up or in error;
//   a writer when writable, hung up or in error) at most once per call, with
//   a reference added and kQueued set, and returns how many it appended.
//   Level-triggered: an fd that stays ready is reported by every call. A
//   handler cancelled through its handle is unregistered when its fd is next
//   reported ready, as asyncio's _process_events does.
// - The deadline: arm_timer(when) makes on_ready come at or after `when`
//   (steady_clock), never before; it returns whether it armed anything (false
//   when already armed for `when`). Only the latest deadline counts.
// - Registrations: set_handler() takes over one reference of the handler and
//   returns the one it replaced (the caller releases it); take_handler()
//   returns the removed one. A registration found stale — its fd closed
//   without remove_reader()/remove_writer() — is dropped and queued for
//   take_stale(), its handlers never moved to the file that reuses the number.
//   close() returns every handler (stale ones too) with its reference.
//   When a stale registration is found differs: EpollBackend finds it when
//   the fd number is next added or removed (the kernel drops a closed file
//   from the set silently); QtBackend also at its next poll (POLLNVAL).
//   Either way the old handler never runs again.
#pragma once

#include <qiloop/config.h>
#include <qiloop/detail/callback_node.h>

#include <atomic>
#include <chrono>
#include <concepts>
#include <string>
#include <vector>

class QObject;

namespace qi::detail {

using BackendClock = std::chrono::steady_clock;

// What both backends share: the clock, and no copies (the loop holds its
// backend by value, and the backend's Qt watches point back at it).
class BackendBase {
 public:
  using time_point = BackendClock::time_point;
  BackendBase(const BackendBase&) = delete;
  BackendBase& operator=(const BackendBase&) = delete;

 protected:
  BackendBase() = default;
  ~BackendBase() = default;
};

// The callback a backend reports through (see "Reporting" above).
using ReadyCallback = void (*)(QObject& owner);

// An fd's handlers: one per direction, either may be null.
struct FdHandlers {
  CallbackNode* reader = nullptr;
  CallbackNode* writer = nullptr;

  CallbackNode*& operator[](FdDirection d) noexcept { return d == FdDirection::kRead ? reader : writer; }
  bool empty() const noexcept { return !reader && !writer; }
  // Takes off the handlers cancelled through their handles (asyncio
  // unregisters them when their fd is next ready) and returns them.
  FdHandlers take_cancelled() noexcept;
  // Releases the backend's reference of each handler (a destructor run from
  // here may call back into the loop: the backend's state must be consistent).
  void release() noexcept;
  // Appends the handlers to `out`, with their references.
  void move_to(std::vector<CallbackNode*>& out);
  // Appends the handlers that `readable` / `writable` wake to `ready` (see
  // "Readiness" above); returns how many.
  int enqueue(ReadyQueue& ready, bool readable, bool writable) noexcept;
};

// A registration found stale; its handlers (each with the backend's
// reference, either may be null) are the caller's to cancel and release.
struct StaleRegistration {
  int fd = -1;
  int error = 0;  // the errno that revealed it
  FdHandlers handlers;
  // The report for the exception handler: names the fd and the fix.
  std::string message() const;
};

// The QCoreApplications made so far (the loop counts them: run_modes.cpp). A
// Qt watch — socket notifier, timer, signal connection — is registered with
// the event dispatcher of the application that existed when it was made, and
// goes deaf with it: a backend makes its watches again when this changed.
unsigned application_generation() noexcept;
void count_new_application() noexcept;

// Throws std::invalid_argument saying why fd cannot be watched (err: the
// errno), and what to do instead.
[[noreturn]] void throw_unwatchable(int fd, int err);

template <class B>
concept LoopBackend = requires(B& b, const B& cb, int fd, FdDirection d, CallbackNode* n, ReadyQueue& q,
                               BackendClock::time_point when) {
  requires std::constructible_from<B, QObject&, ReadyCallback>;
  { b.watch() } -> std::same_as<void>;
  { b.unwatch() } -> std::same_as<void>;
  { b.wake() } noexcept -> std::same_as<void>;
  { b.arm_timer(when) } -> std::same_as<bool>;
  { b.set_handler(fd, d, n) } -> std::same_as<CallbackNode*>;
  { b.take_handler(fd, d) } noexcept -> std::same_as<CallbackNode*>;
  { cb.has_user_fds() } noexcept -> std::same_as<bool>;
  { b.poll(q) } -> std::same_as<int>;
  { cb.has_stale() } noexcept -> std::same_as<bool>;
  { b.take_stale() } noexcept -> std::same_as<std::vector<StaleRegistration>>;
  { b.close() } -> std::same_as<std::vector<CallbackNode*>>;
};

}  // namespace qi::detail

// The configured backend. Its header includes this one first; the class is
// complete once the including file has both (each backend's .cpp checks
// LoopBackend on it).
#if QILOOP_BACKEND_LINUX
#include "backend_epoll.h"
namespace qi::detail {
class EpollBackend;
using Backend = EpollBackend;
}  // namespace qi::detail
#else
#include "backend_qt.h"
namespace qi::detail {
class QtBackend;
using Backend = QtBackend;
}  // namespace qi::detail
#endif
