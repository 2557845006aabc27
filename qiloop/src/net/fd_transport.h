// net/fd_transport.h — what every transport over one fd shares (asyncio's
// _SelectorTransport and _FlowControlMixin): its life from open to
// connection_lost, the process-wide registry loop.close() and the fd
// API's guard read, flow control on a write buffer, and how failures end it.
// Internal; the contracts are in <qiloop/net/transport.h>,
// <qiloop/net/pipes.h> and <qiloop/net/datagram.h>.
//
// Invariants:
// - closing_ is set by close(), abort() or a failure and never cleared;
//   lost_ is set once, when connection_lost is scheduled (or, after a
//   flushing close, called). From lost_ on no protocol callback but
//   connection_lost runs and nothing is sent.
// - A transport is registered (by fd, process-wide) from construction until
//   it is destroyed: right after connection_lost, or by loop.close(). The
//   destructor removes the fd's watches and closes the fd.
// - protocol_paused_ says pause_writing was called and resume_writing not
//   yet; the two alternate.
#pragma once

#include <qiloop/event_loop.h>
#include <qiloop/net/address.h>

#include <cstddef>
#include <exception>
#include <optional>
#include <string>
#include <utility>

namespace qi::detail {

// asyncio's max_size: the most one read takes.
inline constexpr std::size_t kReadSize = 256 * 1024;

// The loop's fd handlers for the fds qiloop owns (transports, servers,
// sock_* after its own check): QiEventLoop::add_reader & co without the
// public API's ownership check, which refuses exactly these fds.
class LoopFds {
 public:
  template <class F>
  static void add_reader(QiEventLoop& loop, int fd, F&& f) {
    loop.add_fd_handler(fd, FdDirection::kRead,
                        loop.make_node<true>(CallbackNode::kRepeating, "add_reader", std::forward<F>(f)));
  }
  template <class F>
  static void add_writer(QiEventLoop& loop, int fd, F&& f) {
    loop.add_fd_handler(fd, FdDirection::kWrite,
                        loop.make_node<true>(CallbackNode::kRepeating, "add_writer", std::forward<F>(f)));
  }
  static bool remove_reader(QiEventLoop& loop, int fd) { return loop.remove_fd_handler(fd, FdDirection::kRead); }
  static bool remove_writer(QiEventLoop& loop, int fd) { return loop.remove_fd_handler(fd, FdDirection::kWrite); }
};

// One read buffer per thread for the transports that hand out views
// (data_received, datagram_received): a view lives during the call only,
// and reads run one at a time on a loop's thread, so transports share it
// instead of holding 256 KiB each. kReadSize bytes.
char* shared_read_buffer();

class FdTransport {
 public:
  FdTransport(const FdTransport&) = delete;
  FdTransport& operator=(const FdTransport&) = delete;

  // loop.close(): destroys the transports of `loop` still registered.
  static void destroy_all(QiEventLoop& loop) noexcept;
  // Whether a transport (of any loop, any thread: the registry is
  // process-wide) owns fd.
  static bool registered(int fd) noexcept;

 protected:
  static constexpr std::size_t kDefaultHigh = 64 * 1024;

  FdTransport(QiEventLoop& loop, int fd);
  virtual ~FdTransport();

  // The protocol's callbacks, typed by the transport that derives.
  virtual void protocol_connection_lost(std::exception_ptr error) = 0;
  virtual void protocol_pause_writing() = 0;
  virtual void protocol_resume_writing() = 0;
  // Drops what is buffered; whether there was anything.
  virtual bool drop_write_buffer() noexcept = 0;
  virtual bool write_buffer_empty() const noexcept = 0;
  // For messages: "fd 7, peer 127.0.0.1:80".
  virtual std::string describe() const;

  // close(): stops reading; connection_lost(nullptr) once the buffer is
  // sent (at once when it is empty). Idempotent.
  void close_transport();
  // asyncio's _force_close: drops the buffer, stops both directions,
  // schedules connection_lost(error). Idempotent.
  void force_close(std::exception_ptr error);
  // After the flushing close's last write: connection_lost(nullptr) now.
  void finish_flushing_close();
  // Sets lost_; connection_lost(error) from a later loop callback.
  void schedule_connection_lost(std::exception_ptr error);
  // Whether a write goes ahead: false once closing (the 5th such write
  // logs one warning, as asyncio from its 5th).
  bool accept_write();

  // asyncio's _fatal_error for an I/O error: not reported (asyncio logs
  // it at debug level only); the protocol learns it in connection_lost.
  void io_failed(int err, const char* what);
  // asyncio's _fatal_error for an exception of the protocol: reported,
  // and the transport aborted with it. Call from a catch block.
  void protocol_failed(const char* message);
  // To the loop's exception handler, naming the transport.
  void report(const std::string& message, std::exception_ptr error);

  // Flow control (asyncio's _FlowControlMixin), on `buffered` bytes.
  void set_limits(std::optional<std::size_t> high, std::optional<std::size_t> low, std::size_t buffered);
  std::pair<std::size_t, std::size_t> limits() const noexcept { return {low_, high_}; }
  void maybe_pause_protocol(std::size_t buffered);
  void maybe_resume_protocol(std::size_t buffered);

  QiEventLoop& loop_;
  const int fd_;
  bool closing_ = false;
  bool lost_ = false;

 private:
  void call_connection_lost(std::exception_ptr error);  // destroys this

  std::size_t high_ = kDefaultHigh;
  std::size_t low_ = kDefaultHigh / 4;
  bool protocol_paused_ = false;
  int dropped_writes_ = 0;
};

// A server's listening socket, in the registry the fd API's guard reads
// (ensure_fd_no_transport): from the server's start until it closes it.
void register_listener(int fd);
void unregister_listener(int fd) noexcept;

// asyncio's _ensure_fd_no_transport, for loop.add_reader & co, sock_* and
// every API that adopts an fd: qi::RuntimeError naming api when a
// transport or a server's listening socket owns fd.
void ensure_fd_no_transport(int fd, const char* api);

// The checks of an adopted socket (asyncio's sock= arguments): of `type`
// (SOCK_STREAM, SOCK_DGRAM) and of a family whose addresses qiloop reads
// (AF_INET, AF_INET6, AF_UNIX); qi::ValueError naming api and the fix
// otherwise, the fd left to the caller. `other`: what serves the other
// type ("use create_connection").
void check_adopted_socket(int fd, int type, const char* api, const char* other);

// The local (peer: false) or the peer's address of a socket; empty when
// fd is not a socket or has none.
SocketAddress socket_address(int fd, bool peer);

}  // namespace qi::detail
