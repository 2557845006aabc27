// net/fd_transport.cpp — FdTransport (asyncio's _SelectorTransport and
// _FlowControlMixin, selector_events.py and transports.py).
#include "net/fd_transport.h"

#include <qiloop/errors.h>
#include <qiloop/net/address.h>

#include <absl/container/flat_hash_map.h>

#include <QtCore/QLoggingCategory>

#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

Q_DECLARE_LOGGING_CATEGORY(lcQiloop)

namespace qi::detail {

namespace {

// The transports alive on this thread's loops, by fd: an fd is owned by
// one transport at a time, process-wide, and its loop runs on this thread.
thread_local absl::flat_hash_map<int, FdTransport*> t_transports;

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

FdTransport::FdTransport(QiEventLoop& loop, int fd) : loop_(loop), fd_(fd) { t_transports[fd] = this; }

FdTransport::~FdTransport() {
  // A closed fd's watches must go first (see QiEventLoop::add_reader).
  loop_.remove_reader(fd_);
  loop_.remove_writer(fd_);
  t_transports.erase(fd_);
  ::close(fd_);
}

bool FdTransport::registered(int fd) noexcept { return t_transports.contains(fd); }

void FdTransport::destroy_all(QiEventLoop& loop) noexcept {
  std::vector<FdTransport*> mine;
  for (auto& [fd, t] : t_transports)
    if (&t->loop_ == &loop) mine.push_back(t);
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
  loop_.remove_reader(fd_);
  if (write_buffer_empty()) schedule_connection_lost(nullptr);
}

void FdTransport::force_close(std::exception_ptr error) {
  if (lost_) return;
  if (drop_write_buffer()) loop_.remove_writer(fd_);
  if (!closing_) {
    closing_ = true;
    loop_.remove_reader(fd_);
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
