// net/fd_transport.cpp — FdTransport (asyncio's _SelectorTransport and
// _FlowControlMixin, selector_events.py and transports.py).
#include "net/fd_transport.h"

#include <qiloop/errors.h>
#include <qiloop/net/address.h>

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>

#include <QtCore/QLoggingCategory>

#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

Q_DECLARE_LOGGING_CATEGORY(lcQiloop)

namespace qi::detail {

namespace {

// The transports alive, by fd, and the servers' listening sockets: an fd
// is owned by one of them at a time, process-wide. Never destroyed: a loop with static storage duration closes
// its transports at exit, after the thread_locals and the statics made
// after it are gone.
struct Registry {
  std::mutex mutex;
  absl::flat_hash_map<int, FdTransport*> by_fd;
  absl::flat_hash_set<int> listeners;
};
Registry& registry() {
  static Registry* const r = new Registry;
  return *r;
}

// asyncio's LOG_THRESHOLD_FOR_CONNLOST_WRITES.
constexpr int kWarnAfterDroppedWrites = 5;

}  // namespace

char* shared_read_buffer() {
  thread_local std::unique_ptr<char[]> buf(new char[kReadSize]);
  return buf.get();
}

SocketAddress socket_address(int fd, bool peer) {
  sockaddr_storage ss;
  socklen_t len = sizeof ss;
  int r = peer ? ::getpeername(fd, reinterpret_cast<sockaddr*>(&ss), &len)
               : ::getsockname(fd, reinterpret_cast<sockaddr*>(&ss), &len);
  if (r < 0) return {};
  try {
    return SocketAddress::from_native(reinterpret_cast<sockaddr*>(&ss), len);
  } catch (const std::exception&) {
    return {};
  }
}

FdTransport::FdTransport(QiEventLoop& loop, int fd) : loop_(loop), fd_(fd) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.by_fd[fd] = this;
}

FdTransport::~FdTransport() {
  // A closed fd's watches must go first (see QiEventLoop::add_reader).
  LoopFds::remove_reader(loop_, fd_);
  LoopFds::remove_writer(loop_, fd_);
  {
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    r.by_fd.erase(fd_);
  }
  ::close(fd_);
}

bool FdTransport::registered(int fd) noexcept {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  return r.by_fd.contains(fd);
}

void register_listener(int fd) {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.listeners.insert(fd);
}

void unregister_listener(int fd) noexcept {
  Registry& r = registry();
  std::lock_guard lock(r.mutex);
  r.listeners.erase(fd);
}

void ensure_fd_no_transport(int fd, const char* api) {
  bool transport, listener;
  {
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    transport = r.by_fd.contains(fd);
    listener = !transport && r.listeners.contains(fd);
  }
  if (transport)
    throw qi::RuntimeError(std::string(api) + ": fd " + std::to_string(fd) +
                           " is used by a transport; use the transport's methods (write, pause_reading, ...), or "
                           "close the transport before using the fd directly");
  if (listener)
    throw qi::RuntimeError(std::string(api) + ": fd " + std::to_string(fd) +
                           " is the listening socket of a server; the server accepts on it (its connections reach "
                           "the protocol factory): close the server before using the fd directly");
}

void check_adopted_socket(int fd, int type, const char* api, const char* other) {
  auto fail = [&](const std::string& why) {
    throw qi::ValueError(std::string(api) + ": fd " + std::to_string(fd) + " " + why);
  };
  int got = 0, family = 0;
  socklen_t len = sizeof got;
  if (::getsockopt(fd, SOL_SOCKET, SO_TYPE, &got, &len) < 0)
    qi::throw_os_error(errno, std::string(api) + ": fd " + std::to_string(fd));
  len = sizeof family;
  if (::getsockopt(fd, SOL_SOCKET, SO_DOMAIN, &family, &len) < 0)
    qi::throw_os_error(errno, std::string(api) + ": fd " + std::to_string(fd));
  const char* want = type == SOCK_STREAM ? "a stream socket (SOCK_STREAM)" : "a datagram socket (SOCK_DGRAM)";
  if (got != type) {
    const char* is = got == SOCK_STREAM      ? "a stream socket (SOCK_STREAM)"
                     : got == SOCK_DGRAM     ? "a datagram socket (SOCK_DGRAM)"
                     : got == SOCK_SEQPACKET ? "a SOCK_SEQPACKET socket"
                     : got == SOCK_RAW       ? "a raw socket (SOCK_RAW)"
                                             : "a socket of another type";
    fail(std::string("is not ") + want + " but " + is +
         ((got == SOCK_STREAM || got == SOCK_DGRAM) && other ? std::string("; ") + other : std::string()));
  }
  if (family != AF_INET && family != AF_INET6 && family != AF_UNIX)
    fail("is a socket of address family " + std::to_string(family) +
         ", whose addresses qiloop does not read; " + want + " of family AF_INET, AF_INET6 or AF_UNIX was expected");
}

void FdTransport::destroy_all(QiEventLoop& loop) noexcept {
  std::vector<FdTransport*> mine;
  {
    Registry& r = registry();
    std::lock_guard lock(r.mutex);
    for (auto& [fd, t] : r.by_fd)
      if (&t->loop_ == &loop) mine.push_back(t);
  }
  for (FdTransport* t : mine) {
    if (!t->lost_)
      qCWarning(lcQiloop, "loop.close(): destroying an unclosed transport (%s) without connection_lost; close "
                          "transports before closing the loop", t->describe().c_str());
    delete t;
  }
}

std::string FdTransport::describe() const { return "fd " + std::to_string(fd_); }

// --- Closing ----------------------------------------------------------------------------

void FdTransport::close_transport() {
  if (closing_) return;
  closing_ = true;
  LoopFds::remove_reader(loop_, fd_);
  if (write_buffer_empty()) schedule_connection_lost(nullptr);
}

void FdTransport::force_close(std::exception_ptr error) {
  if (lost_) return;
  if (drop_write_buffer()) LoopFds::remove_writer(loop_, fd_);
  if (!closing_) {
    closing_ = true;
    LoopFds::remove_reader(loop_, fd_);
  }
  schedule_connection_lost(std::move(error));
}

void FdTransport::finish_flushing_close() {
  lost_ = true;
  call_connection_lost(nullptr);
}

void FdTransport::schedule_connection_lost(std::exception_ptr error) {
  lost_ = true;
  loop_.call_soon([this, error = std::move(error)]() mutable { call_connection_lost(std::move(error)); });
}

void FdTransport::call_connection_lost(std::exception_ptr error) {
  try {
    protocol_connection_lost(std::move(error));
  } catch (...) {
    report("protocol.connection_lost() call failed", std::current_exception());
  }
  delete this;
}

bool FdTransport::accept_write() {
  if (!closing_) return true;
  if (++dropped_writes_ == kWarnAfterDroppedWrites)
    qCWarning(lcQiloop, "transport (%s): %d writes after close(), abort() or the connection's end were dropped; "
                        "check is_closing() before writing", describe().c_str(), dropped_writes_);
  return false;
}

// --- Failures ---------------------------------------------------------------------------

void FdTransport::report(const std::string& message, std::exception_ptr error) {
  qi::ExceptionContext context;
  context.message = message + " (transport " + describe() + ")";
  context.exception = std::move(error);
  loop_.call_exception_handler(context);
}

void FdTransport::io_failed(int err, const char* what) {
  force_close(qi::make_os_error(err, "transport (" + describe() + "): " + what));
}

void FdTransport::protocol_failed(const char* message) {
  std::exception_ptr error = std::current_exception();
  report(std::string("Fatal error: ") + message, error);
  force_close(std::move(error));
}

// --- Flow control -----------------------------------------------------------------------

void FdTransport::set_limits(std::optional<std::size_t> high, std::optional<std::size_t> low, std::size_t buffered) {
  std::size_t h = high ? *high : low ? 4 * *low : kDefaultHigh;
  std::size_t l = low ? *low : h / 4;
  if (h < l)
    throw qi::ValueError("set_write_buffer_limits: high (" + std::to_string(h) + ") must be >= low (" +
                         std::to_string(l) + ")");
  high_ = h;
  low_ = l;
  maybe_pause_protocol(buffered);
}

void FdTransport::maybe_pause_protocol(std::size_t buffered) {
  if (buffered <= high_ || protocol_paused_ || lost_) return;
  protocol_paused_ = true;
  try {
    protocol_pause_writing();
  } catch (...) {
    protocol_failed("protocol.pause_writing() failed");
  }
}

void FdTransport::maybe_resume_protocol(std::size_t buffered) {
  if (!protocol_paused_ || buffered > low_ || lost_) return;
  protocol_paused_ = false;
  try {
    protocol_resume_writing();
  } catch (...) {
    protocol_failed("protocol.resume_writing() failed");
  }
}

}  // namespace qi::detail

void QiEventLoop::ensure_fd_unowned(int fd, const char* api) const { qi::detail::ensure_fd_no_transport(fd, api); }
