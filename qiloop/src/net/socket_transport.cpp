// net/socket_transport.cpp — SocketTransport (asyncio's
// _SelectorSocketTransport and _SelectorTransport, selector_events.py).
#include "net/socket_transport.h"

#include "net/fd_watch.h"

#include <qiloop/errors.h>

#include <absl/container/flat_hash_map.h>

#include <QtCore/QLoggingCategory>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <string>
#include <utility>
#include <vector>

Q_DECLARE_LOGGING_CATEGORY(lcQiloop)

namespace qi::detail {

namespace {

// The transports alive on this thread's loops, by fd: an fd is owned by
// one transport at a time, process-wide, and its loop runs on this thread.
thread_local absl::flat_hash_map<int, SocketTransport*> t_transports;

// asyncio's max_size: the most one read takes.
constexpr std::size_t kReadSize = 256 * 1024;
// asyncio's LOG_THRESHOLD_FOR_CONNLOST_WRITES.
constexpr int kWarnAfterDroppedWrites = 5;
// sendmsg takes at most IOV_MAX pieces; the rest goes on the next call.
constexpr std::size_t kMaxIov = IOV_MAX;

// One read buffer per thread for qi::Protocol transports: data_received's
// view lives during the call only, and reads run one at a time on a loop's
// thread, so connections share it instead of holding 256 KiB each.
char* shared_read_buffer() {
  thread_local std::unique_ptr<char[]> buf(new char[kReadSize]);
  return buf.get();
}

SocketAddress address_of(int fd, bool peer) {
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

// asyncio's _set_nodelay: TCP only.
void set_nodelay(int fd, const SocketAddress& local) {
  if (local.family() != AF_INET && local.family() != AF_INET6) return;
  int one = 1;
  (void)::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

}  // namespace

void ensure_fd_no_transport(int fd, const char* api) {
  if (t_transports.contains(fd))
    throw qi::RuntimeError(std::string(api) + ": fd " + std::to_string(fd) +
                           " is used by a transport; use the transport's methods (write, pause_reading, ...), or "
                           "close the transport before using the fd directly");
}

SocketTransport* SocketTransport::open(QiEventLoop& loop, int fd, QiEventLoop::ProtocolFactory& factory,
                                       std::shared_ptr<ConnectionTracker> tracker) {
  std::unique_ptr<BaseProtocol> protocol;
  try {
    protocol = factory();
  } catch (...) {
    ::close(fd);
    throw;
  }
  auto* t = new SocketTransport(loop, fd, std::move(protocol), std::move(tracker));
  try {
    t->protocol_->connection_made(*t);
  } catch (...) {
    t->force_close(std::current_exception());
    throw;
  }
  if (t->is_reading()) loop.add_reader(fd, [t] { t->read_ready(); });
  return t;
}

SocketTransport::SocketTransport(QiEventLoop& loop, int fd, std::unique_ptr<BaseProtocol> protocol,
                                 std::shared_ptr<ConnectionTracker> tracker)
    : loop_(loop),
      fd_(fd),
      protocol_(std::move(protocol)),
      peer_(address_of(fd, true)),
      local_(address_of(fd, false)),
      tracker_(std::move(tracker)) {
  // A class deriving from both is read as a BufferedProtocol.
  buffered_protocol_ = dynamic_cast<BufferedProtocol*>(protocol_.get());
  if (!buffered_protocol_) stream_ = dynamic_cast<Protocol*>(protocol_.get());
  set_nodelay(fd, local_);
  t_transports[fd] = this;
  if (tracker_) tracker_->attach(this);
}

SocketTransport::~SocketTransport() {
  // A closed fd's watches must go first (see QiEventLoop::add_reader).
  loop_.remove_reader(fd_);
  loop_.remove_writer(fd_);
  t_transports.erase(fd_);
  ::close(fd_);
  if (tracker_) tracker_->detach(this);
}

void SocketTransport::destroy_all(QiEventLoop& loop) noexcept {
  std::vector<SocketTransport*> mine;
  for (auto& [fd, t] : t_transports)
    if (&t->loop_ == &loop) mine.push_back(t);
  for (SocketTransport* t : mine) {
    if (!t->lost_)
      qCWarning(lcQiloop, "loop.close(): destroying an unclosed transport (%s) without connection_lost; close "
                          "transports before closing the loop", t->describe().c_str());
    delete t;
  }
}

std::string SocketTransport::describe() const {
  return "fd " + std::to_string(fd_) + (peer_.empty() ? std::string() : ", peer " + peer_.to_string());
}

// --- Reading ----------------------------------------------------------------------------

void SocketTransport::read_ready() {
  if (buffered_protocol_)
    read_into_protocol_buffer();
  else
    read_into_view();
}

void SocketTransport::read_into_view() {
  char* buf = shared_read_buffer();
  ssize_t n;
  do n = ::recv(fd_, buf, kReadSize, 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (!would_block(errno)) io_failed(errno, "reading from the socket");
    return;
  }
  if (n == 0) return on_eof();
  try {
    stream_->data_received(QByteArrayView(buf, n));
  } catch (...) {
    protocol_failed("protocol.data_received() call failed");
  }
}

void SocketTransport::read_into_protocol_buffer() {
  std::span<std::byte> buf;
  try {
    buf = buffered_protocol_->get_buffer(0);
    if (buf.empty())
      throw qi::RuntimeError("get_buffer() returned an empty buffer; return at least one byte to read into");
  } catch (...) {
    return protocol_failed("protocol.get_buffer() call failed");
  }
  ssize_t n;
  do n = ::recv(fd_, buf.data(), buf.size(), 0);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (!would_block(errno)) io_failed(errno, "reading from the socket");
    return;
  }
  if (n == 0) return on_eof();
  try {
    buffered_protocol_->buffer_updated(static_cast<std::size_t>(n));
  } catch (...) {
    protocol_failed("protocol.buffer_updated() call failed");
  }
}

void SocketTransport::on_eof() {
  read_eof_ = true;
  bool keep_open = false;
  try {
    keep_open = buffered_protocol_ ? buffered_protocol_->eof_received() : stream_->eof_received();
  } catch (...) {
    return protocol_failed("protocol.eof_received() call failed");
  }
  if (keep_open)
    loop_.remove_reader(fd_);
  else
    close();
}

void SocketTransport::pause_reading() {
  if (!is_reading()) return;
  paused_ = true;
  loop_.remove_reader(fd_);
}

void SocketTransport::resume_reading() {
  if (closing_ || !paused_) return;
  paused_ = false;
  if (!read_eof_) loop_.add_reader(fd_, [this] { read_ready(); });
}

// --- Writing ----------------------------------------------------------------------------

// Whether a write goes ahead: throws after write_eof(); drops it (counted)
// once closing.
bool SocketTransport::check_writable(const char* api) {
  if (write_eof_) throw qi::RuntimeError(std::string(api) + ": cannot write after write_eof()");
  if (!closing_) return true;
  if (++dropped_writes_ == kWarnAfterDroppedWrites)
    qCWarning(lcQiloop, "transport (%s): %d writes after close(), abort() or the connection's end were dropped; "
                        "check is_closing() before writing", describe().c_str(), dropped_writes_);
  return false;
}

void SocketTransport::write(QByteArrayView data) {
  if (!check_writable("write") || data.isEmpty()) return;
  if (buffer_.empty()) {
    ssize_t n;
    do n = ::send(fd_, data.data(), static_cast<std::size_t>(data.size()), MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (!would_block(errno)) return io_failed(errno, "writing to the socket");
      n = 0;
    }
    if (n == data.size()) return;
    data = data.sliced(n);
    start_writer();
  }
  buffer_rest(data);
  maybe_pause_protocol();
}

void SocketTransport::writelines(std::span<const QByteArrayView> pieces) {
  if (!check_writable("writelines")) return;
  std::size_t first = 0;  // the pieces before it were sent whole
  std::size_t sent_of_first = 0;
  if (buffer_.empty()) {
    std::size_t total = 0;
    iovec iov[kMaxIov];
    std::size_t count = 0;
    for (std::size_t i = 0; i < pieces.size() && count < kMaxIov; ++i) {
      if (pieces[i].isEmpty()) continue;
      iov[count++] = {const_cast<char*>(pieces[i].data()), static_cast<std::size_t>(pieces[i].size())};
      total += static_cast<std::size_t>(pieces[i].size());
    }
    if (total == 0 && count == 0) return;
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = count;
    ssize_t n;
    do n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
      if (!would_block(errno)) return io_failed(errno, "writing to the socket");
      n = 0;
    }
    auto left = static_cast<std::size_t>(n);
    while (first < pieces.size() && left >= static_cast<std::size_t>(pieces[first].size()))
      left -= static_cast<std::size_t>(pieces[first++].size());
    sent_of_first = left;
    if (first == pieces.size()) return;
    start_writer();
  }
  for (std::size_t i = first; i < pieces.size(); ++i)
    buffer_rest(i == first ? pieces[i].sliced(static_cast<qsizetype>(sent_of_first)) : pieces[i]);
  maybe_pause_protocol();
}

void SocketTransport::buffer_rest(QByteArrayView rest) {
  if (rest.isEmpty()) return;
  buffer_.push_back(rest.toByteArray());
  buffered_ += static_cast<std::size_t>(rest.size());
}

void SocketTransport::start_writer() { loop_.add_writer(fd_, [this] { write_ready(); }); }

void SocketTransport::consume(std::size_t n) {
  buffered_ -= n;
  while (n > 0) {
    std::size_t left = static_cast<std::size_t>(buffer_.front().size()) - front_sent_;
    if (n < left) {
      front_sent_ += n;
      return;
    }
    n -= left;
    buffer_.pop_front();
    front_sent_ = 0;
  }
}

void SocketTransport::write_ready() {
  iovec iov[kMaxIov];
  std::size_t count = 0;
  for (auto it = buffer_.begin(); it != buffer_.end() && count < kMaxIov; ++it, ++count) {
    std::size_t skip = count == 0 ? front_sent_ : 0;
    iov[count] = {it->data() + skip, static_cast<std::size_t>(it->size()) - skip};
  }
  msghdr msg{};
  msg.msg_iov = iov;
  msg.msg_iovlen = count;
  ssize_t n;
  do n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (!would_block(errno)) io_failed(errno, "writing to the socket");
    return;
  }
  consume(static_cast<std::size_t>(n));
  maybe_resume_protocol();
  if (lost_ || !buffer_.empty()) return;  // resume_writing may have aborted
  loop_.remove_writer(fd_);
  if (closing_) {
    lost_ = true;
    return call_connection_lost(nullptr);
  }
  if (write_eof_) (void)::shutdown(fd_, SHUT_WR);
}

void SocketTransport::write_eof() {
  if (closing_ || write_eof_) return;
  write_eof_ = true;
  if (buffer_.empty()) (void)::shutdown(fd_, SHUT_WR);
}

void SocketTransport::set_write_buffer_limits(std::optional<std::size_t> high, std::optional<std::size_t> low) {
  std::size_t h = high ? *high : low ? 4 * *low : kDefaultHigh;
  std::size_t l = low ? *low : h / 4;
  if (h < l)
    throw qi::ValueError("set_write_buffer_limits: high (" + std::to_string(h) + ") must be >= low (" +
                         std::to_string(l) + ")");
  high_ = h;
  low_ = l;
  maybe_pause_protocol();
}

void SocketTransport::maybe_pause_protocol() {
  if (buffered_ <= high_ || protocol_paused_ || lost_) return;
  protocol_paused_ = true;
  try {
    protocol_->pause_writing();
  } catch (...) {
    protocol_failed("protocol.pause_writing() failed");
  }
}

void SocketTransport::maybe_resume_protocol() {
  if (!protocol_paused_ || buffered_ > low_ || lost_) return;
  protocol_paused_ = false;
  try {
    protocol_->resume_writing();
  } catch (...) {
    protocol_failed("protocol.resume_writing() failed");
  }
}

// --- Closing ----------------------------------------------------------------------------

void SocketTransport::close() {
  if (closing_) return;
  closing_ = true;
  loop_.remove_reader(fd_);
  if (buffer_.empty()) schedule_connection_lost(nullptr);
}

// asyncio's _force_close.
void SocketTransport::force_close(std::exception_ptr error) {
  if (lost_) return;
  if (!buffer_.empty()) {
    buffer_.clear();
    front_sent_ = 0;
    buffered_ = 0;
    loop_.remove_writer(fd_);
  }
  if (!closing_) {
    closing_ = true;
    loop_.remove_reader(fd_);
  }
  schedule_connection_lost(std::move(error));
}

void SocketTransport::schedule_connection_lost(std::exception_ptr error) {
  lost_ = true;
  loop_.call_soon([this, error = std::move(error)]() mutable { call_connection_lost(std::move(error)); });
}

void SocketTransport::call_connection_lost(std::exception_ptr error) {
  try {
    protocol_->connection_lost(std::move(error));
  } catch (...) {
    report("protocol.connection_lost() call failed", std::current_exception());
  }
  delete this;
}

void SocketTransport::report(const std::string& message, std::exception_ptr error) {
  qi::ExceptionContext context;
  context.message = message + " (transport " + describe() + ")";
  context.exception = std::move(error);
  loop_.call_exception_handler(context);
}

// asyncio's _fatal_error for an I/O error: not reported (asyncio logs it
// at debug level only); the protocol learns it in connection_lost.
void SocketTransport::io_failed(int err, const char* what) {
  force_close(qi::make_os_error(err, "transport (" + describe() + "): " + what));
}

// asyncio's _fatal_error for an exception of the protocol: reported, and
// the transport aborted with it. Called from a catch block.
void SocketTransport::protocol_failed(const char* message) {
  std::exception_ptr error = std::current_exception();
  report(std::string("Fatal error: ") + message, error);
  force_close(std::move(error));
}

}  // namespace qi::detail

void QiEventLoop::close_transports() noexcept {
  // Servers first: they stop accepting before their connections go.
  close_servers();
  qi::detail::SocketTransport::destroy_all(*this);
}
