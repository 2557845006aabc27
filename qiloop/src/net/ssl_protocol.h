// net/ssl_protocol.h — TLS as a protocol on a socket transport (asyncio's
// sslproto.py SSLProtocol and _SSLProtocolTransport, CPython 3.13).
// Internal; the contract is in <qiloop/net/ssl.h>.
//
//   socket ⇄ SocketTransport ⇄ SslProtocol (OpenSSL over two memory BIOs) ⇄ app protocol
//                                   └─ SslAppTransport: the app's qi::Transport
//
// The state machine (asyncio's):
//   UNWRAPPED → DO_HANDSHAKE → WRAPPED → FLUSHING → SHUTDOWN → UNWRAPPED
// DO_HANDSHAKE: SSL_do_handshake on each ciphertext arrival, until done
// (the app protocol's connection_made, the waiter's result) or failed.
// WRAPPED: ciphertext in → plaintext to the app; app writes → SSL_write.
// FLUSHING: close() or the peer's EOF: what was received is read (delivered
// after an EOF, dropped after close()), the write backlog encrypted.
// SHUTDOWN: close_notify sent (SSL_shutdown), the peer's awaited; then the
// socket transport is closed. Any state → UNWRAPPED on abort, a fatal error
// or the socket's connection_lost.
//
// Invariants:
// - The socket transport owns this protocol, which owns the app protocol
//   and the app transport: all go together, after connection_lost.
// - app_state_ says which app callbacks ran: connection_made once (after
//   the handshake, unless start_tls: already made), eof_received at most
//   once, connection_lost exactly once when connection_made ran.
// - ssl_writing_paused_: the socket transport is over its high-water mark;
//   ciphertext then stays in the outgoing BIO (counted in the app's write
//   buffer size, which pauses the app past its own high-water mark).
#pragma once

#include <qiloop/event_loop.h>
#include <qiloop/export.h>
#include <qiloop/future.h>
#include <qiloop/handle.h>
#include <qiloop/net/protocols.h>
#include <qiloop/net/ssl.h>
#include <qiloop/net/transport.h>

#include <absl/functional/any_invocable.h>

#include <QtCore/QByteArray>

#include <chrono>
#include <cstddef>
#include <deque>
#include <exception>
#include <memory>
#include <optional>
#include <string>

struct ssl_st;  // OpenSSL's SSL

namespace qi::detail {

class SocketTransport;
class SslProtocol;

struct SslFree {
  void operator()(ssl_st* s) const noexcept;
};

// OpenSSL's error queue as text ("[SSL routines] wrong version number"),
// emptied; and a qi::SSLError of it (ssl_context.cpp).
std::string take_openssl_errors();
[[noreturn]] void throw_ssl_error(const std::string& context);

// What create_connection / start_tls wait on: the handshake's outcome, and
// whether the connection has gone since (the transport with it).
struct HandshakeWaiter {
  qi::Future<void> done;
  bool lost = false;
};

// The TLS settings of one connection, checked (check_tls_options).
struct TlsSettings {
  std::shared_ptr<SslContext> context;
  bool server_side = false;
  std::string server_hostname;  // client: SNI and the name checked
  std::chrono::nanoseconds handshake_timeout{};
  std::chrono::nanoseconds shutdown_timeout{};
};

// asyncio's argument checks (create_connection, start_tls, servers):
// qi::ValueError naming the fix.
TlsSettings check_tls_options(const char* api, std::shared_ptr<SslContext> context, bool server_side,
                              std::optional<std::string> server_hostname,
                              std::optional<std::chrono::nanoseconds> handshake_timeout,
                              std::optional<std::chrono::nanoseconds> shutdown_timeout);

// The app's view of the connection (asyncio's _SSLProtocolTransport): every
// call goes to the SslProtocol.
class SslAppTransport final : public SslTransport {
 public:
  explicit SslAppTransport(SslProtocol& p) : p_(p) {}
  ~SslAppTransport() override = default;

  void write(QByteArrayView data) override;
  void writelines(std::span<const QByteArrayView> pieces) override;
  using Transport::writelines;
  void write_eof() override;
  bool can_write_eof() const noexcept override { return false; }
  void close() override;
  void abort() override;
  bool is_closing() const noexcept override;
  void pause_reading() override;
  void resume_reading() override;
  bool is_reading() const noexcept override;
  std::size_t get_write_buffer_size() const noexcept override;
  void set_write_buffer_limits(std::optional<std::size_t> high, std::optional<std::size_t> low) override;
  std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept override;
  SocketAddress peername() const override;
  SocketAddress sockname() const override;
  int fileno() const noexcept override;
  BaseProtocol& get_protocol() const noexcept override;
  std::unique_ptr<BaseProtocol> set_protocol(std::unique_ptr<BaseProtocol> protocol) override;

  QByteArray peer_certificate() const override;
  std::string peer_certificate_subject() const override;
  std::optional<std::string> selected_alpn_protocol() const override;
  std::string cipher() const override;
  std::string version() const override;
  std::string server_hostname() const override;

 private:
  SslProtocol& p_;
};

class QILOOP_EXPORT SslProtocol final : public BufferedProtocol {
 public:
  enum class State { kUnwrapped, kDoHandshake, kWrapped, kFlushing, kShutdown };

  // Makes the SSL object (throws qi::SSLError when OpenSSL cannot). app:
  // the application protocol, or null until adopt_app (start_tls). waiter:
  // null on a server. call_connection_made: false for start_tls, whose
  // protocol was made already.
  SslProtocol(QiEventLoop& loop, std::unique_ptr<BaseProtocol> app, TlsSettings settings,
              std::shared_ptr<HandshakeWaiter> waiter, bool call_connection_made);
  ~SslProtocol() override;
  std::unique_ptr<BaseProtocol> adopt_app(std::unique_ptr<BaseProtocol> app);  // returns the old one

  SslAppTransport& app_transport() noexcept { return app_transport_; }
  // The ciphertext received and not yet decrypted (the incoming BIO).
  std::size_t incoming_size() const noexcept;

  // From the socket transport.
  void connection_made(Transport& transport) override;
  void connection_lost(std::exception_ptr error) override;
  std::span<std::byte> get_buffer(std::size_t size_hint) override;
  void buffer_updated(std::size_t nbytes) override;
  bool eof_received() override;
  void pause_writing() override { ssl_writing_paused_ = true; }
  void resume_writing() override;

 private:
  friend class SslAppTransport;

  // The handshake.
  void start_handshake();
  void check_handshake_timeout();
  void do_handshake();
  void on_handshake_complete(std::exception_ptr error);
  std::exception_ptr handshake_error();
  // The shutdown.
  void start_shutdown();
  void begin_shutdown();
  void check_shutdown_timeout();
  void do_flush();
  void do_shutdown();
  void on_shutdown_complete(std::exception_ptr error);
  void abort_connection();
  // Outgoing.
  void write_appdata(std::span<const QByteArrayView> pieces);
  bool encrypt(QByteArrayView& data);
  void do_write();
  void flush_outgoing();
  void control_app_writing();
  std::size_t write_buffer_size() const noexcept;
  void set_write_buffer_limits(std::optional<std::size_t> high, std::optional<std::size_t> low);
  // Incoming.
  void do_read();
  bool read_into_stream();
  bool read_into_buffer();
  bool read_into_void();
  int ssl_read(char* buf, std::size_t n, bool& close_notify);
  bool delivering() const noexcept;
  void call_eof_received();
  void pause_app_reading();
  void resume_app_reading();
  void schedule_step();
  void control_ssl_reading();
  // Errors.
  void fatal_error(std::exception_ptr error, const char* message);
  void report(const std::string& message, std::exception_ptr error);
  void wakeup_waiter(std::exception_ptr error);
  void cancel_timers() noexcept;
  void set_state(State next);
  std::string describe() const;

  QiEventLoop& loop_;
  std::unique_ptr<BaseProtocol> app_;
  Protocol* app_stream_ = nullptr;            // exactly one of these two is set once app_ is
  BufferedProtocol* app_buffered_ = nullptr;
  SslAppTransport app_transport_{*this};
  TlsSettings settings_;
  std::shared_ptr<HandshakeWaiter> waiter_;
  SocketTransport* transport_ = nullptr;      // set by connection_made
  std::unique_ptr<ssl_st, SslFree> ssl_;      // owns the two BIOs
  void* incoming_ = nullptr;                  // BIO*: ciphertext received, not yet decrypted
  void* outgoing_ = nullptr;                  // BIO*: ciphertext made, not yet handed to transport_

  State state_ = State::kUnwrapped;
  enum class AppState { kInit, kMade, kEof, kLost } app_state_;
  bool app_closed_ = false;         // the app called close() or abort()
  bool eof_from_peer_ = false;      // the socket's EOF came
  bool ssl_writing_paused_ = false; // the socket transport is over its high-water mark
  bool app_reading_paused_ = false; // the app called pause_reading()
  bool ssl_reading_paused_ = false; // the socket transport's reading paused by us
  bool app_writing_paused_ = false; // the app's pause_writing() called, resume_writing() not yet
  bool in_connection_made_ = false; // the app's connection_made is running
  // close() / abort() called from connection_made, done by schedule_step.
  enum class Deferred { kNone, kClose, kAbort } deferred_ = Deferred::kNone;
  int dropped_writes_ = 0;

  // Plaintext the SSL object did not take yet (a handshake in progress).
  std::deque<QByteArray> backlog_;
  std::size_t backlog_front_sent_ = 0;  // bytes of the first piece encrypted already
  std::size_t backlog_size_ = 0;

  std::size_t outgoing_high_ = kWriteHighWater;
  std::size_t outgoing_low_ = kWriteHighWater / 4;
  static constexpr std::size_t kReadHighWater = 256 * 1024;  // asyncio's FLOW_CONTROL_HIGH_WATER_SSL_READ
  static constexpr std::size_t kReadLowWater = kReadHighWater / 4;
  static constexpr std::size_t kWriteHighWater = 512 * 1024; // FLOW_CONTROL_HIGH_WATER_SSL_WRITE

  std::optional<qi::TimerHandle> handshake_timer_;
  std::optional<qi::TimerHandle> shutdown_timer_;
  std::optional<qi::Handle> resume_call_;
};

// The server side (create_server's ssl=, asyncio's _accept_connection2):
// a protocol factory making, per accepted connection, an SslProtocol around
// what app_factory makes. Server handshakes that fail close the connection
// silently (asyncio reports them only in debug mode). Throws qi::ValueError
// for a null context or a bad timeout at once.
QILOOP_EXPORT absl::AnyInvocable<std::unique_ptr<SslProtocol>()> ssl_server_factory(
    QiEventLoop& loop, QiEventLoop::ProtocolFactory app_factory, std::shared_ptr<SslContext> context,
    std::optional<std::chrono::nanoseconds> ssl_handshake_timeout = std::nullopt,
    std::optional<std::chrono::nanoseconds> ssl_shutdown_timeout = std::nullopt);

// The client side of create_connection (ssl=): opens the socket transport
// on fd with an SslProtocol around app_factory's protocol and waits for the
// handshake. The app transport, or what the handshake failed with.
qi::Coro<qi::Transport*> open_tls_transport(QiEventLoop& loop, int fd, QiEventLoop::ProtocolFactory app_factory,
                                            TlsSettings settings);

}  // namespace qi::detail
