// net/ssl_protocol.cpp — SslProtocol and SslAppTransport (asyncio's
// sslproto.py, CPython 3.13), open_tls_transport (create_connection's
// ssl=), loop.start_tls and the server-side factory.
#include "net/ssl_protocol.h"

#include "net/socket_transport.h"
#include "net/stream_cores.h"

#include <qiloop/errors.h>

#include <QtCore/QLoggingCategory>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <arpa/inet.h>

#include <algorithm>
#include <climits>
#include <cstdio>
#include <utility>

Q_DECLARE_LOGGING_CATEGORY(lcQiloop)

using namespace std::chrono_literals;

namespace qi::detail {

namespace {

// asyncio's SSL_HANDSHAKE_TIMEOUT (nginx's) and SSL_SHUTDOWN_TIMEOUT.
constexpr std::chrono::nanoseconds kHandshakeTimeout = 60s;
constexpr std::chrono::nanoseconds kShutdownTimeout = 30s;
// asyncio's SSLProtocol.max_size: the most one read hands over, and the
// plaintext encrypted at a time (so a large write stops encrypting as soon
// as the socket transport is full: the ciphertext never piles up).
constexpr std::size_t kMaxSize = 256 * 1024;
// asyncio's LOG_THRESHOLD_FOR_CONNLOST_WRITES.
constexpr int kWarnAfterDroppedWrites = 5;

BIO* bio(void* b) { return static_cast<BIO*>(b); }

// Two scratch buffers per thread, shared by the connections of its loops
// (one callback runs at a time). Ciphertext passes through the first on
// its way between the socket transport and the BIOs (consumed before
// anything else runs); plaintext reaches the app in the second
// (data_received's view lives during the call only).
char* cipher_scratch() {
  thread_local std::unique_ptr<char[]> buf(new char[kMaxSize]);
  return buf.get();
}
char* plain_scratch() {
  thread_local std::unique_ptr<char[]> buf(new char[kMaxSize]);
  return buf.get();
}

bool is_ip_literal(const std::string& host) {
  unsigned char a[sizeof(in6_addr)];
  return ::inet_pton(AF_INET, host.c_str(), a) == 1 || ::inet_pton(AF_INET6, host.c_str(), a) == 1;
}

std::string seconds_text(std::chrono::nanoseconds d) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", std::chrono::duration<double>(d).count());
  return buf;
}

bool is_os_error(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const qi::OSError&) {
    return true;
  } catch (const qi::CancelledError&) {
    return true;  // not reported either (asyncio's _fatal_error)
  } catch (...) {
    return false;
  }
}

int clamp_int(std::size_t n) { return static_cast<int>(std::min<std::size_t>(n, INT_MAX)); }

}  // namespace

// --- Options ----------------------------------------------------------------------------

TlsSettings check_tls_options(const char* api, std::shared_ptr<SslContext> context, bool server_side,
                              std::optional<std::string> server_hostname,
                              std::optional<std::chrono::nanoseconds> handshake_timeout,
                              std::optional<std::chrono::nanoseconds> shutdown_timeout) {
  const std::string a(api);
  if (!context) {
    if (server_hostname) throw qi::ValueError(a + ": server_hostname is only meaningful with ssl (a qi::SslContext)");
    throw qi::ValueError(a + ": ssl_handshake_timeout and ssl_shutdown_timeout are only meaningful with ssl (a "
                             "qi::SslContext)");
  }
  if (handshake_timeout && *handshake_timeout <= 0ns)
    throw qi::ValueError(a + ": ssl_handshake_timeout must be positive, got " + seconds_text(*handshake_timeout) + " s");
  if (shutdown_timeout && *shutdown_timeout <= 0ns)
    throw qi::ValueError(a + ": ssl_shutdown_timeout must be positive, got " + seconds_text(*shutdown_timeout) + " s");
  const SSL_METHOD* method = SSL_CTX_get_ssl_method(static_cast<SSL_CTX*>(context->native_handle()));
  if (server_side && method == TLS_client_method())
    throw qi::ValueError(a + ": a client context (SslContext::client()) cannot serve; use SslContext::server()");
  if (!server_side && method == TLS_server_method())
    throw qi::ValueError(a + ": a server context (SslContext::server()) cannot connect; use SslContext::client()");
  TlsSettings s;
  s.server_side = server_side;
  s.handshake_timeout = handshake_timeout.value_or(kHandshakeTimeout);
  s.shutdown_timeout = shutdown_timeout.value_or(kShutdownTimeout);
  if (server_side) {
    if (server_hostname && !server_hostname->empty())
      throw qi::ValueError(a + ": server_hostname is only meaningful on the client side");
  } else {
    s.server_hostname = server_hostname.value_or(std::string());
    if (s.server_hostname.empty() && context->check_hostname())
      throw qi::ValueError(a + ": the context checks the host name (check_hostname) but no server_hostname was "
                               "given; give server_hostname or call set_check_hostname(false) on the context");
  }
  s.context = std::move(context);
  return s;
}

// --- SslProtocol: set-up ----------------------------------------------------------------

void SslFree::operator()(ssl_st* s) const noexcept { SSL_free(s); }

SslProtocol::SslProtocol(QiEventLoop& loop, std::unique_ptr<BaseProtocol> app, TlsSettings settings,
                         std::shared_ptr<HandshakeWaiter> waiter, bool call_connection_made)
    : loop_(loop),
      settings_(std::move(settings)),
      waiter_(std::move(waiter)),
      app_state_(call_connection_made ? AppState::kInit : AppState::kMade) {
  ERR_clear_error();
  ssl_.reset(static_cast<SSL*>(settings_.context->new_connection()));
  if (!ssl_) throw_ssl_error("TLS: SSL_new");
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  if (!in || !out) {
    BIO_free(in);
    BIO_free(out);
    throw_ssl_error("TLS: BIO_new");
  }
  // An empty BIO means "wait for more" (WANT_READ), never EOF: the
  // socket's EOF reaches eof_received instead.
  BIO_set_mem_eof_return(in, -1);
  BIO_set_mem_eof_return(out, -1);
  SSL_set_bio(ssl_.get(), in, out);
  incoming_ = in;
  outgoing_ = out;
  if (settings_.server_side) {
    SSL_set_accept_state(ssl_.get());
  } else {
    SSL_set_connect_state(ssl_.get());
    const std::string& host = settings_.server_hostname;
    if (!host.empty()) {
      bool ip = is_ip_literal(host);
      // SNI carries names only (RFC 6066), as Python sends it.
      if (!ip && SSL_set_tlsext_host_name(ssl_.get(), host.c_str()) != 1)
        throw_ssl_error("TLS: the server name '" + host + "'");
      if (settings_.context->check_hostname()) {
        X509_VERIFY_PARAM* param = SSL_get0_param(ssl_.get());
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        int ok = ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host.c_str())
                    : X509_VERIFY_PARAM_set1_host(param, host.c_str(), 0);
        if (ok != 1) throw_ssl_error("TLS: the host name to check '" + host + "'");
      }
    }
  }
  if (app) adopt_app(std::move(app));
}

SslProtocol::~SslProtocol() {
  cancel_timers();
  // Destroyed without connection_lost (loop.close()): the waiter must not
  // hand out this connection.
  if (waiter_) waiter_->lost = true;
  // The app protocol goes first, while the SSL object, the app transport
  // and the socket transport are whole: its destructor may still call its
  // transport (close(), peername()), and finds a closed connection.
  app_closed_ = true;
  state_ = State::kUnwrapped;
  app_.reset();
}

std::unique_ptr<BaseProtocol> SslProtocol::adopt_app(std::unique_ptr<BaseProtocol> app) {
  std::unique_ptr<BaseProtocol> old = std::exchange(app_, std::move(app));
  // A class deriving from both is read as a BufferedProtocol (as the
  // socket transport reads it).
  app_buffered_ = dynamic_cast<BufferedProtocol*>(app_.get());
  app_stream_ = app_buffered_ ? nullptr : dynamic_cast<Protocol*>(app_.get());
  return old;
}

void SslProtocol::set_state(State next) {
  bool allowed = next == State::kUnwrapped ||
                 (state_ == State::kUnwrapped && next == State::kDoHandshake) ||
                 (state_ == State::kDoHandshake && next == State::kWrapped) ||
                 (state_ == State::kWrapped && next == State::kFlushing) ||
                 (state_ == State::kFlushing && next == State::kShutdown);
  if (!allowed)
    throw qi::RuntimeError("TLS: cannot switch state from " + std::to_string(static_cast<int>(state_)) + " to " +
                           std::to_string(static_cast<int>(next)));
  state_ = next;
}

std::string SslProtocol::describe() const {
  std::string d = settings_.server_side ? "TLS server" : "TLS client";
  if (transport_) {
    SocketAddress peer = transport_->peername();
    if (!peer.empty()) d += ", peer " + peer.to_string();
  }
  return d;
}

// --- From the socket transport ----------------------------------------------------------

void SslProtocol::connection_made(Transport& transport) {
  // Only socket transports take an SslProtocol (open_tls_transport,
  // start_tls, ssl_server_factory's users).
  transport_ = static_cast<SocketTransport*>(&transport);
  start_handshake();
}

void SslProtocol::connection_lost(std::exception_ptr error) {
  backlog_.clear();
  backlog_size_ = backlog_front_sent_ = 0;
  (void)BIO_reset(bio(outgoing_));
  state_ = State::kUnwrapped;
  app_closed_ = true;  // the app's calls from connection_lost do nothing
  cancel_timers();
  // Waiting for the handshake: it failed with this (or the connection went
  // without an error: it was aborted).
  wakeup_waiter(error ? error
                      : std::make_exception_ptr(qi::ConnectionAbortedError(
                            "the connection closed before the TLS handshake completed (" + describe() + ")")));
  if (waiter_) waiter_->lost = true;
  if (app_state_ == AppState::kMade || app_state_ == AppState::kEof) {
    app_state_ = AppState::kLost;
    // Called now, not from a later callback as asyncio: this protocol, the
    // app's and the app transport go right after this returns.
    try {
      app_->connection_lost(error);
    } catch (...) {
      report("protocol.connection_lost() call failed", std::current_exception());
    }
  }
  transport_ = nullptr;
}

// No read takes the incoming BIO past kReadHighWater: the documented
// bound holds exactly, not one read late (control_ssl_reading pauses the
// socket once it is reached).
std::span<std::byte> SslProtocol::get_buffer(std::size_t) {
  std::size_t pending = incoming_size();
  std::size_t room = pending < kReadHighWater ? std::min(kMaxSize, kReadHighWater - pending) : 1;
  return {reinterpret_cast<std::byte*>(cipher_scratch()), room};
}

std::size_t SslProtocol::incoming_size() const noexcept { return BIO_ctrl_pending(bio(incoming_)); }

void SslProtocol::buffer_updated(std::size_t nbytes) {
  BIO_write(bio(incoming_), cipher_scratch(), static_cast<int>(nbytes));
  switch (state_) {
    case State::kDoHandshake: return do_handshake();
    case State::kWrapped: return do_read();
    case State::kFlushing: return do_flush();
    case State::kShutdown: return do_shutdown();
    case State::kUnwrapped: return;
  }
}

// The socket's EOF (asyncio 3.13's eof_received): during the handshake a
// reset; otherwise what was received is delivered, then the app's
// eof_received and the close — whether or not close_notify came first.
bool SslProtocol::eof_received() {
  eof_from_peer_ = true;
  switch (state_) {
    case State::kDoHandshake:
      on_handshake_complete(std::make_exception_ptr(qi::ConnectionResetError(
          "TLS handshake failed: the peer closed the connection (" + describe() + ")")));
      break;
    case State::kWrapped:
      set_state(State::kFlushing);
      if (app_reading_paused_) return true;  // resume_reading goes on
      do_flush();
      break;
    case State::kFlushing:
      do_write();
      set_state(State::kShutdown);
      do_shutdown();
      break;
    case State::kShutdown: do_shutdown(); break;
    case State::kUnwrapped: break;
  }
  return false;
}

void SslProtocol::resume_writing() {
  ssl_writing_paused_ = false;
  if (state_ == State::kWrapped) {
    do_write();
    control_app_writing();
  } else if (state_ == State::kFlushing) {
    do_flush();
  }
}

// --- Handshake --------------------------------------------------------------------------

void SslProtocol::start_handshake() {
  set_state(State::kDoHandshake);
  handshake_timer_ = loop_.call_later(settings_.handshake_timeout, [this] {
    handshake_timer_.reset();
    check_handshake_timeout();
  });
  do_handshake();
}

void SslProtocol::check_handshake_timeout() {
  if (state_ != State::kDoHandshake) return;
  fatal_error(std::make_exception_ptr(qi::ConnectionAbortedError(
                  "SSL handshake is taking longer than " + seconds_text(settings_.handshake_timeout) +
                  " seconds: aborting the connection (" + describe() + ")")),
              "SSL handshake timed out");
}

void SslProtocol::do_handshake() {
  ERR_clear_error();
  int r = SSL_do_handshake(ssl_.get());
  if (r == 1) return on_handshake_complete(nullptr);
  int e = SSL_get_error(ssl_.get(), r);
  // The ClientHello, the server's flight, or an alert telling the peer why.
  flush_outgoing();
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
  on_handshake_complete(handshake_error());
}

std::exception_ptr SslProtocol::handshake_error() {
  long verify = SSL_get_verify_result(ssl_.get());
  if (verify != X509_V_OK) {
    ERR_clear_error();
    std::string reason = X509_verify_cert_error_string(verify);
    const std::string& host = settings_.server_hostname;
    // Python's wording for the host check.
    if (verify == X509_V_ERR_HOSTNAME_MISMATCH)
      reason = "hostname mismatch, certificate is not valid for '" + host + "'";
    else if (verify == X509_V_ERR_IP_ADDRESS_MISMATCH)
      reason = "IP address mismatch, certificate is not valid for '" + host + "'";
    return std::make_exception_ptr(
        qi::SSLCertVerificationError(verify, "certificate verify failed: " + reason + " (" + describe() + ")"));
  }
  return std::make_exception_ptr(qi::SSLError("TLS handshake failed (" + describe() + "): " + take_openssl_errors()));
}

void SslProtocol::on_handshake_complete(std::exception_ptr error) {
  if (handshake_timer_) {
    handshake_timer_->cancel();
    handshake_timer_.reset();
  }
  if (error) {
    fatal_error(error, "SSL handshake failed");
    wakeup_waiter(error);
    return;
  }
  set_state(State::kWrapped);
  if (app_state_ == AppState::kInit) {
    app_state_ = AppState::kMade;
    in_connection_made_ = true;
    try {
      app_->connection_made(app_transport_);
    } catch (...) {
      in_connection_made_ = false;
      std::exception_ptr e = std::current_exception();
      report("protocol.connection_made() call failed", e);
      fatal_error(e, nullptr);
      wakeup_waiter(e);
      return;
    }
    in_connection_made_ = false;
  }
  wakeup_waiter(nullptr);
  // A close() or abort() from connection_made runs after the waiter's
  // wake-up, so create_connection returns the closing transport as a
  // plain one does (it would otherwise be lost before the caller resumes).
  if (deferred_ != Deferred::kNone) return schedule_step();
  do_read();
}

void SslProtocol::wakeup_waiter(std::exception_ptr error) {
  if (!waiter_ || waiter_->done.done()) return;
  if (error)
    waiter_->done.set_exception(std::move(error));
  else
    waiter_->done.set_result();
}

// --- Shutdown ---------------------------------------------------------------------------

// The app's close(). As asyncio's _SSLProtocolTransport.close, it marks
// the app closed whatever the state; unlike asyncio's, it also goes on
// when the peer's EOF started FLUSHING while the app had paused reading
// (else nothing would ever close the socket).
void SslProtocol::start_shutdown() {
  if (app_closed_ || state_ == State::kUnwrapped) return;
  app_closed_ = true;
  if (in_connection_made_) {
    deferred_ = Deferred::kClose;
    return;
  }
  begin_shutdown();
}

void SslProtocol::begin_shutdown() {
  if (state_ == State::kUnwrapped) return;  // a fatal error came first
  if (state_ == State::kDoHandshake) return abort_connection();
  // From now on what arrives is dropped: reading goes on whatever the app
  // paused, so that the peer's close_notify comes through.
  app_reading_paused_ = false;
  shutdown_timer_ = loop_.call_later(settings_.shutdown_timeout, [this] {
    shutdown_timer_.reset();
    check_shutdown_timeout();
  });
  if (state_ == State::kWrapped) {
    set_state(State::kFlushing);
    return do_flush();
  }
  // FLUSHING or SHUTDOWN, entered by the peer's EOF: waiting for the app's
  // reading, or for resume_writing. From a later callback: this close()
  // may come from one of the app's callbacks.
  schedule_step();
}

void SslProtocol::check_shutdown_timeout() {
  if (state_ != State::kFlushing && state_ != State::kShutdown) return;
  state_ = State::kUnwrapped;
  app_closed_ = true;
  transport_->force_close(std::make_exception_ptr(qi::TimeoutError("SSL shutdown timed out (" + describe() + ")")));
}

// FLUSHING: what was received is read (delivered, unless the app closed),
// the backlog encrypted; then close_notify.
void SslProtocol::do_flush() {
  do_read();
  if (state_ != State::kFlushing) return;
  do_write();
  if (state_ != State::kFlushing || !backlog_.empty()) return;  // resume_writing comes back here
  set_state(State::kShutdown);
  do_shutdown();
}

// SHUTDOWN: close_notify sent, the peer's awaited (unless the socket's EOF
// came: nothing more will).
void SslProtocol::do_shutdown() {
  if (!eof_from_peer_) {
    try {
      // Data the peer sent before its close_notify is dropped.
      read_into_void();
    } catch (...) {
      return on_shutdown_complete(std::current_exception());
    }
    // The socket's reading, paused while the app did not read, goes on:
    // the peer's close_notify is behind what it sent.
    if (transport_) control_ssl_reading();
    ERR_clear_error();
    int r = SSL_shutdown(ssl_.get());
    if (r != 1) {
      int e = r == 0 ? SSL_ERROR_WANT_READ : SSL_get_error(ssl_.get(), r);
      flush_outgoing();
      if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return;
      return on_shutdown_complete(std::make_exception_ptr(
          qi::SSLError("TLS shutdown failed (" + describe() + "): " + take_openssl_errors())));
    }
  }
  flush_outgoing();
  call_eof_received();
  on_shutdown_complete(nullptr);
}

void SslProtocol::on_shutdown_complete(std::exception_ptr error) {
  if (shutdown_timer_) {
    shutdown_timer_->cancel();
    shutdown_timer_.reset();
  }
  if (error) return fatal_error(std::move(error), "Error occurred during shutdown");
  if (transport_) transport_->close();
}

void SslProtocol::abort_connection() {
  app_closed_ = true;
  if (in_connection_made_) {
    deferred_ = Deferred::kAbort;
    return;
  }
  state_ = State::kUnwrapped;
  if (transport_) transport_->abort();
}

// --- Outgoing ---------------------------------------------------------------------------

bool SslProtocol::encrypt(QByteArrayView& data) {
  while (!data.isEmpty()) {
    ERR_clear_error();
    int r = SSL_write(ssl_.get(), data.data(), clamp_int(static_cast<std::size_t>(data.size())));
    if (r > 0) {
      data = data.sliced(r);
      continue;
    }
    int e = SSL_get_error(ssl_.get(), r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return false;
    throw qi::SSLError("TLS write failed (" + describe() + "): " + take_openssl_errors());
  }
  return true;
}

// Encrypts data a chunk at a time into the socket transport, while the
// transport takes it (not paused); the rest is copied into the backlog.
void SslProtocol::write_appdata(std::span<const QByteArrayView> pieces) {
  if (app_closed_ || (state_ != State::kWrapped && state_ != State::kDoHandshake)) {
    if (++dropped_writes_ == kWarnAfterDroppedWrites)
      qCWarning(lcQiloop, "TLS transport (%s): %d writes after close(), abort() or the connection's end were dropped; "
                          "check is_closing() before writing", describe().c_str(), dropped_writes_);
    return;
  }
  try {
    for (QByteArrayView data : pieces) {
      while (!data.isEmpty() && backlog_.empty() && state_ == State::kWrapped && !ssl_writing_paused_) {
        QByteArrayView chunk = data.first(std::min<qsizetype>(data.size(), kMaxSize));
        qsizetype before = chunk.size();
        bool all = encrypt(chunk);
        data = data.sliced(before - chunk.size());
        flush_outgoing();
        if (!all) break;
      }
      if (data.isEmpty()) continue;
      backlog_.push_back(data.toByteArray());
      backlog_size_ += static_cast<std::size_t>(data.size());
    }
  } catch (...) {
    return fatal_error(std::current_exception(), "Fatal error on SSL protocol");
  }
  control_app_writing();
}

// Encrypts the backlog, as far as the socket transport takes it.
void SslProtocol::do_write() {
  try {
    while (!backlog_.empty() && !ssl_writing_paused_ && (state_ == State::kWrapped || state_ == State::kFlushing)) {
      const QByteArray& front = backlog_.front();
      QByteArrayView rest = QByteArrayView(front).sliced(static_cast<qsizetype>(backlog_front_sent_));
      QByteArrayView chunk = rest.first(std::min<qsizetype>(rest.size(), kMaxSize));
      qsizetype before = chunk.size();
      bool all = encrypt(chunk);
      std::size_t done = static_cast<std::size_t>(before - chunk.size());
      backlog_size_ -= done;
      backlog_front_sent_ += done;
      if (backlog_front_sent_ == static_cast<std::size_t>(front.size())) {
        backlog_.pop_front();
        backlog_front_sent_ = 0;
      }
      flush_outgoing();
      if (!all) break;
    }
  } catch (...) {
    fatal_error(std::current_exception(), "Fatal error on SSL protocol");
  }
}

// Hands the ciphertext made so far to the socket transport (which sends
// it now or buffers the rest).
void SslProtocol::flush_outgoing() {
  if (!transport_) return;
  char* buf = cipher_scratch();
  for (;;) {
    int n = BIO_read(bio(outgoing_), buf, static_cast<int>(kMaxSize));
    if (n <= 0) return;
    transport_->write(QByteArrayView(buf, n));
  }
}

std::size_t SslProtocol::write_buffer_size() const noexcept {
  return backlog_size_ + BIO_ctrl_pending(bio(outgoing_));
}

void SslProtocol::control_app_writing() {
  if (app_state_ != AppState::kMade && app_state_ != AppState::kEof) return;
  std::size_t size = write_buffer_size();
  if (size > outgoing_high_ && !app_writing_paused_) {
    app_writing_paused_ = true;
    try {
      app_->pause_writing();
    } catch (...) {
      report("protocol.pause_writing() failed", std::current_exception());
    }
  } else if (size <= outgoing_low_ && app_writing_paused_) {
    app_writing_paused_ = false;
    try {
      app_->resume_writing();
    } catch (...) {
      report("protocol.resume_writing() failed", std::current_exception());
    }
  }
}

void SslProtocol::set_write_buffer_limits(std::optional<std::size_t> high, std::optional<std::size_t> low) {
  std::size_t h = high ? *high : low ? 4 * *low : kWriteHighWater;
  std::size_t l = low ? *low : h / 4;
  if (h < l)
    throw qi::ValueError("set_write_buffer_limits: high (" + std::to_string(h) + ") must be >= low (" +
                         std::to_string(l) + ")");
  outgoing_high_ = h;
  outgoing_low_ = l;
  control_app_writing();
}

// --- Incoming ---------------------------------------------------------------------------

// > 0: bytes read; 0: nothing more now (or close_notify, then set).
// Throws qi::SSLError when a record does not decrypt.
int SslProtocol::ssl_read(char* buf, std::size_t n, bool& close_notify) {
  ERR_clear_error();
  int r = SSL_read(ssl_.get(), buf, clamp_int(n));
  if (r > 0) return r;
  int e = SSL_get_error(ssl_.get(), r);
  if (e == SSL_ERROR_ZERO_RETURN) {
    close_notify = true;
    return 0;
  }
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return 0;
  throw qi::SSLError("TLS read failed (" + describe() + "): " + take_openssl_errors());
}

bool SslProtocol::delivering() const noexcept {
  return (state_ == State::kWrapped || state_ == State::kFlushing) && !app_reading_paused_ && !app_closed_;
}

void SslProtocol::do_read() {
  if (state_ != State::kWrapped && state_ != State::kFlushing) return;
  try {
    if (!app_reading_paused_) {
      bool close_notify = app_closed_ ? read_into_void() : app_buffered_ ? read_into_buffer() : read_into_stream();
      if (close_notify) {
        call_eof_received();
        start_shutdown();
      }
      // Reading may have made records to send (a TLS 1.3 key update).
      if (!backlog_.empty()) do_write();
      flush_outgoing();
    }
    if (transport_ && state_ != State::kUnwrapped) control_ssl_reading();
  } catch (...) {
    fatal_error(std::current_exception(), "Fatal error on SSL protocol");
  }
}

bool SslProtocol::read_into_stream() {
  char* buf = plain_scratch();
  for (;;) {
    std::size_t filled = 0;
    bool close_notify = false;
    while (filled < kMaxSize) {
      int r = ssl_read(buf + filled, kMaxSize - filled, close_notify);
      if (r <= 0) break;
      filled += static_cast<std::size_t>(r);
    }
    if (filled > 0) {
      try {
        app_stream_->data_received(QByteArrayView(buf, static_cast<qsizetype>(filled)));
      } catch (...) {
        fatal_error(std::current_exception(), "protocol.data_received() call failed");
        return false;
      }
    }
    if (close_notify) return true;
    if (filled < kMaxSize || !delivering()) return false;
  }
}

bool SslProtocol::read_into_buffer() {
  for (;;) {
    std::size_t pending = BIO_ctrl_pending(bio(incoming_)) + static_cast<std::size_t>(SSL_pending(ssl_.get()));
    std::span<std::byte> buf;
    try {
      buf = app_buffered_->get_buffer(pending);
      if (buf.empty())
        throw qi::RuntimeError("get_buffer() returned an empty buffer; return at least one byte to read into");
    } catch (...) {
      fatal_error(std::current_exception(), "protocol.get_buffer() call failed");
      return false;
    }
    std::size_t filled = 0;
    bool close_notify = false;
    while (filled < buf.size()) {
      int r = ssl_read(reinterpret_cast<char*>(buf.data()) + filled, buf.size() - filled, close_notify);
      if (r <= 0) break;
      filled += static_cast<std::size_t>(r);
    }
    if (filled > 0) {
      try {
        app_buffered_->buffer_updated(filled);
      } catch (...) {
        fatal_error(std::current_exception(), "protocol.buffer_updated() call failed");
        return false;
      }
    }
    if (close_notify) return true;
    if (filled < buf.size() || !delivering()) return false;
  }
}

// Reads and drops what arrives (the app closed); whether close_notify came.
bool SslProtocol::read_into_void() {
  char* buf = cipher_scratch();
  bool close_notify = false;
  while (ssl_read(buf, kMaxSize, close_notify) > 0) {
  }
  return close_notify;
}

void SslProtocol::call_eof_received() {
  if (app_state_ != AppState::kMade) return;
  app_state_ = AppState::kEof;
  if (app_closed_) return;  // the app said close(): it is told no more
  try {
    bool keep_open = app_buffered_ ? app_buffered_->eof_received() : app_stream_->eof_received();
    if (keep_open)
      qCWarning(lcQiloop, "TLS transport (%s): returning true from eof_received() has no effect when using TLS",
                describe().c_str());
  } catch (...) {
    fatal_error(std::current_exception(), "Error calling eof_received()");
  }
}

void SslProtocol::pause_app_reading() {
  if (!app_closed_) app_reading_paused_ = true;
}

void SslProtocol::resume_app_reading() {
  if (!app_reading_paused_ || app_closed_) return;
  app_reading_paused_ = false;
  // From a later callback: the protocol contract keeps app callbacks out of
  // the app's own calls.
  schedule_step();
}

// The step of the current state, from a later callback.
void SslProtocol::schedule_step() {
  if (resume_call_) resume_call_->cancel();
  resume_call_ = loop_.call_soon([this] {
    resume_call_.reset();
    if (deferred_ != Deferred::kNone) {
      Deferred what = std::exchange(deferred_, Deferred::kNone);
      return what == Deferred::kAbort ? abort_connection() : begin_shutdown();
    }
    switch (state_) {
      case State::kWrapped: return do_read();
      case State::kFlushing: return do_flush();
      case State::kShutdown: return do_shutdown();
      default: return;
    }
  });
}

// Stops reading the socket while more than kReadHighWater of ciphertext
// waits in the incoming BIO (the app paused reading).
void SslProtocol::control_ssl_reading() {
  std::size_t size = BIO_ctrl_pending(bio(incoming_));
  if (size >= kReadHighWater && !ssl_reading_paused_) {
    ssl_reading_paused_ = true;
    transport_->pause_reading();
  } else if (size <= kReadLowWater && ssl_reading_paused_) {
    ssl_reading_paused_ = false;
    transport_->resume_reading();
  }
}

// --- Errors -----------------------------------------------------------------------------

// asyncio's _fatal_error: the connection is aborted with error (which
// connection_lost receives); reported unless it is a qi::OSError (TLS
// failures are: qi::SSLError). message null: reported already.
void SslProtocol::fatal_error(std::exception_ptr error, const char* message) {
  state_ = State::kUnwrapped;
  app_closed_ = true;
  if (transport_) transport_->force_close(error);
  if (message && !is_os_error(error)) report(message, std::move(error));
}

void SslProtocol::report(const std::string& message, std::exception_ptr error) {
  qi::ExceptionContext context;
  context.message = message + " (" + describe() + ")";
  context.exception = std::move(error);
  loop_.call_exception_handler(context);
}

void SslProtocol::cancel_timers() noexcept {
  if (handshake_timer_) handshake_timer_->cancel();
  if (shutdown_timer_) shutdown_timer_->cancel();
  if (resume_call_) resume_call_->cancel();
  handshake_timer_.reset();
  shutdown_timer_.reset();
  resume_call_.reset();
}

// --- SslAppTransport --------------------------------------------------------------------

void SslAppTransport::write(QByteArrayView data) {
  if (data.isEmpty()) return;
  p_.write_appdata(std::span<const QByteArrayView>(&data, 1));
}

void SslAppTransport::writelines(std::span<const QByteArrayView> pieces) { p_.write_appdata(pieces); }

void SslAppTransport::write_eof() {
  throw qi::RuntimeError("write_eof: a TLS transport cannot half-close (can_write_eof() is false); close() sends "
                         "close_notify and closes");
}

void SslAppTransport::close() { p_.start_shutdown(); }

void SslAppTransport::abort() { p_.abort_connection(); }

bool SslAppTransport::is_closing() const noexcept { return p_.app_closed_; }
void SslAppTransport::pause_reading() { p_.pause_app_reading(); }
void SslAppTransport::resume_reading() { p_.resume_app_reading(); }
bool SslAppTransport::is_reading() const noexcept { return !p_.app_reading_paused_ && !p_.app_closed_; }
std::size_t SslAppTransport::get_write_buffer_size() const noexcept { return p_.write_buffer_size(); }

void SslAppTransport::set_write_buffer_limits(std::optional<std::size_t> high, std::optional<std::size_t> low) {
  p_.set_write_buffer_limits(high, low);
}

std::pair<std::size_t, std::size_t> SslAppTransport::get_write_buffer_limits() const noexcept {
  return {p_.outgoing_low_, p_.outgoing_high_};
}

SocketAddress SslAppTransport::peername() const { return p_.transport_ ? p_.transport_->peername() : SocketAddress(); }
SocketAddress SslAppTransport::sockname() const { return p_.transport_ ? p_.transport_->sockname() : SocketAddress(); }
int SslAppTransport::fileno() const noexcept { return p_.transport_ ? p_.transport_->fileno() : -1; }
BaseProtocol& SslAppTransport::get_protocol() const noexcept { return *p_.app_; }
std::unique_ptr<BaseProtocol> SslAppTransport::set_protocol(std::unique_ptr<BaseProtocol> protocol) {
  return p_.adopt_app(checked_stream_protocol(std::move(protocol), "set_protocol"));
}

QByteArray SslAppTransport::peer_certificate() const {
  X509* cert = SSL_get1_peer_certificate(p_.ssl_.get());
  if (!cert) return {};
  QByteArray der;
  int n = i2d_X509(cert, nullptr);
  if (n > 0) {
    der.resize(n);
    auto* out = reinterpret_cast<unsigned char*>(der.data());
    i2d_X509(cert, &out);
  }
  X509_free(cert);
  return der;
}

std::string SslAppTransport::peer_certificate_subject() const {
  X509* cert = SSL_get1_peer_certificate(p_.ssl_.get());
  if (!cert) return {};
  std::string text;
  if (BIO* b = BIO_new(BIO_s_mem())) {
    X509_NAME_print_ex(b, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
    char* data = nullptr;
    long n = BIO_get_mem_data(b, &data);
    if (n > 0) text.assign(data, static_cast<std::size_t>(n));
    BIO_free(b);
  }
  X509_free(cert);
  return text;
}

std::optional<std::string> SslAppTransport::selected_alpn_protocol() const {
  const unsigned char* data = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(p_.ssl_.get(), &data, &len);
  if (!data || len == 0) return std::nullopt;
  return std::string(reinterpret_cast<const char*>(data), len);
}

std::string SslAppTransport::cipher() const {
  const SSL_CIPHER* c = SSL_get_current_cipher(p_.ssl_.get());
  return c ? SSL_CIPHER_get_name(c) : "";
}

std::string SslAppTransport::version() const { return SSL_get_version(p_.ssl_.get()); }
std::string SslAppTransport::server_hostname() const { return p_.settings_.server_hostname; }

// --- Opening ----------------------------------------------------------------------------

namespace {

// Waits for the handshake of the connection st carries; the app transport,
// or the handshake's error (the connection aborted, if still open).
qi::Coro<qi::Transport*> finish_handshake(std::shared_ptr<HandshakeWaiter> waiter, SocketTransport* st,
                                          SslProtocol* ssl) {
  try {
    co_await waiter->done;
  } catch (...) {
    if (!waiter->lost) st->abort();
    throw;
  }
  // Lost between the handshake and this resumption: nothing to hand out.
  if (waiter->lost)
    throw qi::ConnectionResetError("the TLS connection was lost right after its handshake completed");
  co_return &ssl->app_transport();
}

}  // namespace

qi::Coro<qi::Transport*> open_tls_transport(QiEventLoop& loop, int fd, QiEventLoop::ProtocolFactory app_factory,
                                            TlsSettings settings) {
  auto waiter = std::make_shared<HandshakeWaiter>();
  waiter->done = loop.create_future<void>();
  QiEventLoop::ProtocolFactory factory = [&]() -> std::unique_ptr<BaseProtocol> {
    return std::make_unique<SslProtocol>(loop, app_factory(), std::move(settings), waiter, true);
  };
  SocketTransport* st = SocketTransport::open(loop, fd, factory);
  auto* ssl = static_cast<SslProtocol*>(&st->get_protocol());
  co_return co_await finish_handshake(std::move(waiter), st, ssl);
}

absl::AnyInvocable<std::unique_ptr<SslProtocol>()> ssl_server_factory(
    QiEventLoop& loop, QiEventLoop::ProtocolFactory app_factory, std::shared_ptr<SslContext> context,
    std::optional<std::chrono::nanoseconds> ssl_handshake_timeout,
    std::optional<std::chrono::nanoseconds> ssl_shutdown_timeout) {
  TlsSettings settings = check_tls_options("create_server", std::move(context), true, std::nullopt,
                                           ssl_handshake_timeout, ssl_shutdown_timeout);
  return [&loop, app_factory = std::move(app_factory), settings = std::move(settings)]() mutable {
    return std::make_unique<SslProtocol>(loop, app_factory(), settings, nullptr, true);
  };
}

}  // namespace qi::detail

// --- QiEventLoop::start_tls ---------------------------------------------------------------

qi::Coro<qi::Transport*> QiEventLoop::start_tls(qi::Transport* transport, qi::BaseProtocol* protocol,
                                                std::shared_ptr<qi::SslContext> sslcontext) {
  return start_tls(transport, protocol, std::move(sslcontext), qi::TlsOptions{});
}

qi::Coro<qi::Transport*> QiEventLoop::start_tls(qi::Transport* transport, qi::BaseProtocol* protocol,
                                                std::shared_ptr<qi::SslContext> sslcontext, qi::TlsOptions options) {
  using qi::detail::SslProtocol;
  if (!transport || !protocol) throw qi::ValueError("start_tls: transport and protocol must not be null");
  auto* st = dynamic_cast<qi::detail::SocketTransport*>(transport);
  if (!st)
    throw qi::ValueError("start_tls: the transport is not a TCP or Unix socket transport (TLS over TLS is not "
                         "supported)");
  if (protocol != &st->get_protocol())
    throw qi::ValueError("start_tls: protocol must be transport->get_protocol() (qiloop transports own their "
                         "protocol; the TLS transport takes it over)");
  if (st->is_closing()) throw qi::RuntimeError("start_tls: the transport is closing; start TLS on an open one");
  // TLS needs both directions (the handshake, close_notify): refused before
  // anything is swapped.
  if (st->wrote_eof())
    throw qi::RuntimeError("start_tls: write_eof() was called on the transport; TLS needs both directions, so "
                           "start TLS before write_eof()");
  if (st->read_eof())
    throw qi::RuntimeError("start_tls: the peer has ended its side (its EOF was read); TLS needs both directions, "
                           "so start TLS before the peer shuts down its writing");
  qi::detail::TlsSettings settings =
      qi::detail::check_tls_options("start_tls", std::move(sslcontext), options.server_side,
                                    std::move(options.server_hostname), options.ssl_handshake_timeout,
                                    options.ssl_shutdown_timeout);
  auto waiter = std::make_shared<qi::detail::HandshakeWaiter>();
  waiter->done = create_future<void>();
  auto owned = std::make_unique<SslProtocol>(*this, nullptr, std::move(settings), waiter, false);
  SslProtocol* ssl = owned.get();
  // The protocol is swapped and the handshake started in this one step (no
  // callback in between can read with the old protocol); asyncio pauses
  // and resumes reading around the same swap.
  ssl->adopt_app(st->replace_protocol(std::move(owned)));
  // A stream's reader and writer move to the TLS transport with their
  // protocol (asyncio's _replace_transport, which StreamWriter.start_tls
  // does after the handshake; here before it, so that a write made
  // meanwhile waits for the handshake rather than going out in clear).
  if (auto* stream = dynamic_cast<qi::detail::StreamProtocol*>(protocol)) stream->replace_transport(ssl->app_transport());
  ssl->connection_made(*st);
  st->resume_reading();
  co_return co_await qi::detail::finish_handshake(std::move(waiter), st, ssl);
}
