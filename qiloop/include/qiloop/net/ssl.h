// qiloop/net/ssl.h — TLS with OpenSSL: qi::SslContext (asyncio's
// ssl.SSLContext: certificates, keys, verification, ALPN), the TLS transport
// the application protocol sees (qi::SslTransport), and the options of
// loop.start_tls. TLS runs as asyncio's SSLProtocol does: a protocol over
// memory BIOs on the ordinary socket transport, so TLS connections use the
// same transports, flow control and loop as plain ones.
//
//   auto ctx = qi::SslContext::client();                  // system CAs, hostname checked
//   auto [t, p] = co_await loop.create_connection(factory, "example.org", 443,
//                                                 qi::ConnectOptions{.ssl = ctx});
//   t->write("GET / HTTP/1.0\r\n\r\n");                    // encrypted
//   dynamic_cast<qi::SslTransport&>(*t).version();        // "TLSv1.3"
//
//   auto server = qi::SslContext::server("cert.pem", "key.pem");
//   qi::Transport* tls = co_await loop.start_tls(t, p, server, {.server_side = true});
//
// The contract (asyncio's sslproto.py, CPython 3.13):
// - create_connection with options.ssl returns once the handshake has
//   completed; the application protocol's connection_made runs then (not
//   at the TCP connect). A failed handshake throws qi::SSLError (or
//   qi::SSLCertVerificationError); a peer that closes during it
//   qi::ConnectionResetError; one that takes longer than
//   ssl_handshake_timeout (60 s) qi::ConnectionAbortedError. The
//   application protocol sees none of these.
// - close() flushes what is buffered, sends close_notify and waits (at most
//   ssl_shutdown_timeout, 30 s; then qi::TimeoutError in connection_lost)
//   for the peer's close_notify before closing the socket. abort() closes at
//   once. The peer's close_notify: eof_received, whose "keep open" result
//   has no effect (asyncio's warning), then the shutdown and
//   connection_lost(nullptr). A peer that drops the socket without
//   close_notify: what it sent, eof_received, connection_lost(nullptr)
//   (asyncio 3.13). After close() the app receives nothing more; close()
//   works in every state, also after the peer's EOF while the app had
//   paused reading (what arrives is then read and dropped).
// - loop.start_tls on a stream's transport (&writer.transport()) moves the
//   stream's reader and writer to the TLS transport as the handshake
//   starts, as qi::StreamWriter::start_tls does: no later write goes out
//   in clear.
// - write_eof() throws qi::RuntimeError and can_write_eof() is false: TLS
//   has no half-close (asyncio raises NotImplementedError).
// - Flow control: get_write_buffer_size() counts the plaintext not yet
//   encrypted (default marks 512 KiB high, 128 KiB low: asyncio's for
//   SSL). Plaintext is encrypted 256 KiB at a time and only while the
//   socket transport is under its own high-water mark, so ciphertext never
//   piles up. While the application has paused reading, no more than
//   256 KiB of ciphertext is read (each read sized to the room left).
// - The Transport* create_connection / start_tls return is valid until the
//   app protocol's connection_lost has returned, as for plain transports.
//   As for plain ones, an app whose connection_made closes or aborts its
//   transport gets it back, closing (the close runs once the caller has
//   resumed); only a connection the peer ends between the handshake and
//   the caller's resumption throws qi::ConnectionResetError.
// - loop.start_tls on a half-closed transport (write_eof() called, or the
//   peer's EOF read and kept open) throws qi::RuntimeError at once and
//   changes nothing: TLS needs both directions.
// - loop.close() destroys a TLS connection still open: the app protocol is
//   destroyed first, and its destructor may still call its transport,
//   which is then closing (calls do nothing; peername() still answers).
// - Thread-safety: a qi::SslContext may be shared by connections on any
//   number of loops and threads. It is frozen by its first connection:
//   from then on every setter throws qi::RuntimeError (make a new context
//   for new settings), so no handshake on another thread ever sees a
//   setting change under it. Configure it from one thread before that.
//   The transports are the loop thread's, as every transport.
#pragma once

#include <qiloop/errors.h>
#include <qiloop/export.h>
#include <qiloop/net/transport.h>

#include <QtCore/QByteArray>

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace qi {

namespace detail {
class SslProtocol;
}  // namespace detail

// qi::TlsVersion
// Protocol versions for SslContext::set_minimum_version / set_maximum_version.
enum class TlsVersion { kTls1_2, kTls1_3 };

// qi::VerifyMode
// Whether (and how strictly) the peer's certificate is checked (Python's
// ssl.CERT_NONE / CERT_OPTIONAL / CERT_REQUIRED). On a client, kOptional
// is kRequired (OpenSSL's, and Python's, rule); on a server, kOptional asks
// for a client certificate and checks it when one comes.
enum class VerifyMode { kNone, kOptional, kRequired };

// qi::SslContext
// Certificates, keys and rules shared by TLS connections (Python's
// ssl.SSLContext over an OpenSSL SSL_CTX). Always held by a
// std::shared_ptr (the factories make one): every connection keeps its
// context alive. The first connection made with it freezes it: every
// setter then throws qi::RuntimeError ("... make a new SslContext"), as
// OpenSSL cannot change an SSL_CTX while other threads handshake with it
// (Python's contexts stay mutable under the GIL). Throws qi::SSLError with
// OpenSSL's reason when OpenSSL refuses a setting, qi::FileNotFoundError
// for a missing file.
class QILOOP_EXPORT SslContext {
 public:
  // SslContext::client()
  // A client context as Python's ssl.create_default_context(): the peer's
  // certificate is required and verified against the system's trusted CAs
  // (SSL_CTX_set_default_verify_paths), the host name is checked, TLS 1.2
  // at least.
  static std::shared_ptr<SslContext> client();
  // SslContext::server()
  // A server context with its certificate chain and private key (PEM
  // files; the key may be in cert_file when key_file is empty); client
  // certificates are not asked for (set_verify_mode to ask), TLS 1.2 at least.
  static std::shared_ptr<SslContext> server(const std::string& cert_file, const std::string& key_file = {});

  SslContext(const SslContext&) = delete;
  SslContext& operator=(const SslContext&) = delete;
  ~SslContext();

  // SslContext::load_verify_locations()
  // Trusts the CA certificates in cafile (PEM), in the directory capath
  // (c_rehash layout), and in cadata (PEM text, one or more certificates).
  // At least one must be given (qi::ValueError).
  void load_verify_locations(const std::string& cafile = {}, const std::string& capath = {},
                             const QByteArray& cadata = {});
  // SslContext::set_default_verify_paths()
  // Trusts the system's CA store (client() does it).
  void set_default_verify_paths();
  // SslContext::load_cert_chain()
  // This side's certificate chain (PEM, leaf first) and private key (in
  // cert_file when key_file is empty); password decrypts an encrypted key.
  // Throws qi::SSLError when the key does not match the certificate.
  void load_cert_chain(const std::string& cert_file, const std::string& key_file = {},
                       const std::string& password = {});

  // SslContext::set_verify_mode()
  // SslContext::verify_mode()
  // Python's verify_mode. kNone while check_hostname() is on throws
  // qi::ValueError (turn set_check_hostname(false) off first, as Python).
  void set_verify_mode(VerifyMode mode);
  VerifyMode verify_mode() const noexcept { return verify_mode_; }
  // SslContext::set_check_hostname()
  // SslContext::check_hostname()
  // Whether a client checks that the server's certificate names
  // server_hostname (Python's check_hostname). Turning it on sets
  // verify_mode kRequired when it was kNone (as Python).
  void set_check_hostname(bool on);
  bool check_hostname() const noexcept { return check_hostname_; }

  // SslContext::set_alpn_protocols()
  // The application protocols offered (client, in order of preference) or
  // accepted (server: the first of this list the client offers is chosen;
  // none in common: no ALPN, the handshake goes on). Each name 1 to 255
  // bytes (qi::ValueError).
  void set_alpn_protocols(const std::vector<std::string>& protocols);

  // SslContext::set_minimum_version()
  // SslContext::set_maximum_version()
  // The oldest / newest protocol version allowed (default: TLS 1.2 / the
  // newest OpenSSL has).
  void set_minimum_version(TlsVersion version);
  void set_maximum_version(TlsVersion version);

  // SslContext::set_ciphers()
  // OpenSSL's cipher list for TLS 1.2 (SSL_CTX_set_cipher_list).
  void set_ciphers(const std::string& ciphers);

  // SslContext::native_handle()
  // The OpenSSL SSL_CTX*, for settings this class does not wrap. Changes
  // through it are not frozen: make them before the first connection.
  void* native_handle() const noexcept { return ctx_; }

  // SslContext::in_use()
  // Whether a connection was made with it (the setters throw from then on).
  bool in_use() const noexcept { return in_use_.load(std::memory_order_acquire); }

 private:
  friend class detail::SslProtocol;
  explicit SslContext(bool server);
  // A setter's lock: held while it changes the SSL_CTX; qi::RuntimeError
  // naming `api` once the context is in use.
  std::unique_lock<std::mutex> configuring(const char* api);
  // SSL_new for a connection (an SSL*), freezing the context first.
  void* new_connection();
  void apply_verify_mode(VerifyMode mode);

  void* ctx_ = nullptr;  // SSL_CTX*: OpenSSL stays out of this header
  VerifyMode verify_mode_ = VerifyMode::kNone;
  bool check_hostname_ = false;
  std::string alpn_wire_;  // the ALPN list in wire format (length-prefixed names); read by handshakes
  std::mutex mutex_;       // a setter against the first connection (which freezes)
  std::atomic<bool> in_use_{false};
};

// qi::SslTransport
// The transport a TLS connection's application protocol receives: a
// qi::Transport (write encrypts; write_eof throws, see above) with what the
// handshake settled. Reach it from a qi::Transport& with dynamic_cast.
class QILOOP_EXPORT SslTransport : public Transport {
 public:
  // SslTransport::peer_certificate()
  // The peer's certificate, DER-encoded (Python's
  // getpeercert(binary_form=True)); empty when the peer sent none.
  virtual QByteArray peer_certificate() const = 0;
  // SslTransport::peer_certificate_subject()
  // Its subject as one line ("CN=localhost,O=qiloop"); empty when none.
  virtual std::string peer_certificate_subject() const = 0;
  // SslTransport::selected_alpn_protocol()
  // The application protocol ALPN chose; nullopt when none.
  virtual std::optional<std::string> selected_alpn_protocol() const = 0;
  // SslTransport::cipher()
  // SslTransport::version()
  // The cipher suite's name ("TLS_AES_256_GCM_SHA384") and the protocol
  // version ("TLSv1.3").
  virtual std::string cipher() const = 0;
  virtual std::string version() const = 0;
  // SslTransport::server_hostname()
  // The name sent with SNI and checked against the certificate (client);
  // empty on a server.
  virtual std::string server_hostname() const = 0;

 protected:
  ~SslTransport() override;
};

// qi::TlsOptions
// loop.start_tls's keyword arguments (asyncio's names).
struct TlsOptions {
  bool server_side = false;
  // The name for SNI and the certificate check (client side); required
  // there unless the context's check_hostname is off.
  std::optional<std::string> server_hostname;
  // None: 60 s and 30 s (asyncio's). Must be positive (qi::ValueError).
  std::optional<std::chrono::nanoseconds> ssl_handshake_timeout;
  std::optional<std::chrono::nanoseconds> ssl_shutdown_timeout;
};

}  // namespace qi
