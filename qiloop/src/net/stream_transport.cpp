// net/stream_transport.cpp — StreamTransport: the read and write paths of
// asyncio's selector socket transport, shared with the pipe transports.
#include "net/stream_transport.h"

#include "net/fd_watch.h"
#include "net/sys_io.h"

#include <qiloop/errors.h>

#include <unistd.h>

#include <cerrno>
#include <string>
#include <utility>

namespace qi::detail {

StreamTransport::StreamTransport(QiEventLoop& loop, int fd, std::unique_ptr<BaseProtocol> protocol, FdKind kind,
                                 Direction direction)
    : FdTransport(loop, fd),
      kind_(kind),
      reads_(direction != Direction::kWrite),
      writes_(direction != Direction::kRead),
      peer_(kind == FdKind::kSocket ? socket_address(fd, true) : SocketAddress()),
      local_(kind == FdKind::kSocket ? socket_address(fd, false) : SocketAddress()) {
  (void)replace_protocol(std::move(protocol));
}

std::unique_ptr<BaseProtocol> checked_stream_protocol(std::unique_ptr<BaseProtocol> protocol, const char* api) {
  if (!protocol) throw qi::ValueError(std::string(api) + ": the protocol is null; pass a new protocol (std::make_unique)");
  if (!dynamic_cast<Protocol*>(protocol.get()) && !dynamic_cast<BufferedProtocol*>(protocol.get()))
    throw qi::ValueError(std::string(api) +
                         ": the protocol is a qi::BaseProtocol that is neither a qi::Protocol nor a "
                         "qi::BufferedProtocol; derive it from one of them");
  return protocol;
}

StreamTransport::~StreamTransport() {
  // The protocol goes first, while this transport is whole (loop.close()
  // destroys open transports): its destructor may still call close(),
  // write() or peername(), which find a closed, lost transport.
  closing_ = true;
  lost_ = true;
  protocol_.reset();
}

std::unique_ptr<BaseProtocol> StreamTransport::replace_protocol(std::unique_ptr<BaseProtocol> protocol) {
  std::unique_ptr<BaseProtocol> old = std::exchange(protocol_, std::move(protocol));
  // A class deriving from both is read as a BufferedProtocol.
  buffered_protocol_ = dynamic_cast<BufferedProtocol*>(protocol_.get());
  stream_ = buffered_protocol_ ? nullptr : dynamic_cast<Protocol*>(protocol_.get());
  return old;
}

std::unique_ptr<BaseProtocol> StreamTransport::make_protocol(int fd, QiEventLoop::ProtocolFactory& factory) {
  try {
    return factory();
  } catch (...) {
    ::close(fd);
    throw;
  }
}

void StreamTransport::start() {
  try {
    protocol_->connection_made(*this);
  } catch (...) {
    force_close(std::current_exception());
    throw;
  }
  if (closing_) return;
  try {
    start_watching();
  } catch (...) {
    // The loop cannot watch fd: the protocol, made already, is told.
    force_close(std::current_exception());
    throw;
  }
}

void StreamTransport::start_watching() {
  if (is_reading()) LoopFds::add_reader(loop_, fd_, [this] { read_ready(); });
}

std::string StreamTransport::describe() const {
  return FdTransport::describe() + (peer_.empty() ? std::string() : ", peer " + peer_.to_string());
}

void StreamTransport::check_reads(const char* api) const {
  if (!reads_)
    throw qi::RuntimeError(std::string(api) + ": this transport writes a pipe (connect_write_pipe) and does not read; "
                                              "read through a connect_read_pipe transport");
}

void StreamTransport::check_writes(const char* api) const {
  if (!writes_)
    throw qi::RuntimeError(std::string(api) + ": this transport reads a pipe (connect_read_pipe) and cannot write; "
                                              "write through a connect_write_pipe transport");
  if (write_eof_) throw qi::RuntimeError(std::string(api) + ": cannot write after write_eof()");
}

void StreamTransport::read_failed(int err) {
  io_failed(err, kind_ == FdKind::kSocket ? "reading from the socket" : "reading from the pipe");
}

void StreamTransport::write_failed(int err) {
  io_failed(err, kind_ == FdKind::kSocket ? "writing to the socket" : "writing to the pipe");
}

// --- Reading ----------------------------------------------------------------------------

void StreamTransport::read_ready() {
  if (buffered_protocol_)
    read_into_protocol_buffer();
  else
    read_into_view();
}

void StreamTransport::read_into_view() {
  char* buf = shared_read_buffer();
  ssize_t n;
  do n = sys_read(fd_, buf, kReadSize);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (!would_block(errno)) read_failed(errno);
    return;
  }
  if (n == 0) return on_eof();
  try {
    stream_->data_received(QByteArrayView(buf, n));
  } catch (...) {
    protocol_failed("protocol.data_received() call failed");
  }
}

void StreamTransport::read_into_protocol_buffer() {
  std::span<std::byte> buf;
  try {
    buf = buffered_protocol_->get_buffer(0);
    if (buf.empty())
      throw qi::RuntimeError("get_buffer() returned an empty buffer; return at least one byte to read into");
  } catch (...) {
    return protocol_failed("protocol.get_buffer() call failed");
  }
  ssize_t n;
  do n = sys_read(fd_, buf.data(), buf.size());
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (!would_block(errno)) read_failed(errno);
    return;
  }
  if (n == 0) return on_eof();
  try {
    buffered_protocol_->buffer_updated(static_cast<std::size_t>(n));
  } catch (...) {
    protocol_failed("protocol.buffer_updated() call failed");
  }
}

bool StreamTransport::protocol_eof_received() {
  return buffered_protocol_ ? buffered_protocol_->eof_received() : stream_->eof_received();
}

void StreamTransport::pause_reading() {
  check_reads("pause_reading");
  if (!is_reading()) return;
  paused_ = true;
  LoopFds::remove_reader(loop_, fd_);
}

void StreamTransport::resume_reading() {
  check_reads("resume_reading");
  if (closing_ || !paused_) return;
  paused_ = false;
  if (!read_eof_) LoopFds::add_reader(loop_, fd_, [this] { read_ready(); });
}

// --- Writing ----------------------------------------------------------------------------

void StreamTransport::writelines(std::span<const QByteArrayView> pieces) {
  check_writes("write");
  if (!accept_write()) return;
  bool was_empty = buffer_.empty();
  if (int err = buffer_.write_or_buffer(fd_, kind_, pieces))
    return write_failed(err);
  if (buffer_.empty()) return;
  if (was_empty) LoopFds::add_writer(loop_, fd_, [this] { write_ready(); });
  maybe_pause_protocol(buffer_.size());
}

void StreamTransport::write_ready() {
  if (int err = buffer_.flush(fd_, kind_))
    return write_failed(err);
  maybe_resume_protocol(buffer_.size());
  if (lost_ || !buffer_.empty()) return;  // resume_writing may have aborted
  LoopFds::remove_writer(loop_, fd_);
  if (closing_) return finish_flushing_close();
  on_flushed();
}

}  // namespace qi::detail
