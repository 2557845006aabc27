// net/ssl_context.cpp — qi::SslContext over an OpenSSL SSL_CTX (Python's
// ssl.SSLContext, Modules/_ssl.c), and the OpenSSL error text both TLS
// files report with.
#include <qiloop/errors.h>
#include <qiloop/net/ssl.h>

#include "net/ssl_protocol.h"

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <unistd.h>

#include <cerrno>
#include <string>

namespace qi::detail {

std::string take_openssl_errors() {
  std::string text;
  while (unsigned long e = ERR_get_error()) {
    const char* reason = ERR_reason_error_string(e);
    const char* lib = ERR_lib_error_string(e);
    if (!text.empty()) text += "; ";
    text += std::string("[") + (lib ? lib : "OpenSSL") + "] " + (reason ? reason : "error " + std::to_string(e));
  }
  return text.empty() ? "no OpenSSL error recorded" : text;
}

[[noreturn]] void throw_ssl_error(const std::string& context) {
  throw qi::SSLError(context + ": " + take_openssl_errors());
}

}  // namespace qi::detail

namespace qi {

namespace {

SSL_CTX* native(void* ctx) { return static_cast<SSL_CTX*>(ctx); }

// Python raises FileNotFoundError before OpenSSL reads a missing file.
void check_readable(const std::string& path, const char* api) {
  if (::access(path.c_str(), R_OK) != 0) qi::throw_os_error(errno, std::string(api) + ": " + path);
}

int openssl_version(TlsVersion v) { return v == TlsVersion::kTls1_3 ? TLS1_3_VERSION : TLS1_2_VERSION; }

// The server's choice among the client's ALPN offer: the first of the
// server's own list the client offers (Python's _selectALPN_cb); none in
// common: no ALPN, the handshake goes on.
int select_alpn(SSL*, const unsigned char** out, unsigned char* outlen, const unsigned char* in, unsigned int inlen,
                void* arg) {
  const std::string& mine = *static_cast<const std::string*>(arg);
  if (mine.empty()) return SSL_TLSEXT_ERR_NOACK;
  unsigned char* chosen = nullptr;
  int r = SSL_select_next_proto(&chosen, outlen, reinterpret_cast<const unsigned char*>(mine.data()),
                                static_cast<unsigned int>(mine.size()), in, inlen);
  if (r != OPENSSL_NPN_NEGOTIATED) return SSL_TLSEXT_ERR_NOACK;
  *out = chosen;
  return SSL_TLSEXT_ERR_OK;
}

}  // namespace

SslContext::SslContext(bool server) {
  ERR_clear_error();
  ctx_ = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
  if (!ctx_) detail::throw_ssl_error("SslContext: SSL_CTX_new");
  // A short write is resumed from another buffer (the write backlog), and
  // partial writes let a large write go out record by record.
  SSL_CTX_set_mode(native(ctx_), SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_min_proto_version(native(ctx_), TLS1_2_VERSION);
  // No renegotiation and no compression, as Python's defaults.
  SSL_CTX_set_options(native(ctx_), SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
  SSL_CTX_set_alpn_select_cb(native(ctx_), select_alpn, &alpn_wire_);
}

SslContext::~SslContext() { SSL_CTX_free(native(ctx_)); }

std::unique_lock<std::mutex> SslContext::configuring(const char* api) {
  std::unique_lock lock(mutex_);
  if (in_use_.load(std::memory_order_relaxed))
    throw qi::RuntimeError(std::string(api) +
                           ": the context is in use (a connection was made with it) and is frozen, so that "
                           "handshakes on other threads never see a setting change; configure a context before "
                           "its first connection, or make a new SslContext for the new settings");
  return lock;
}

void* SslContext::new_connection() {
  if (!in_use_.load(std::memory_order_acquire)) {
    std::lock_guard lock(mutex_);
    in_use_.store(true, std::memory_order_release);
  }
  // From here on nothing changes the SSL_CTX: SSL_new from any thread is
  // safe, and so is select_alpn reading alpn_wire_ during handshakes.
  return SSL_new(native(ctx_));
}

std::shared_ptr<SslContext> SslContext::client() {
  std::shared_ptr<SslContext> c(new SslContext(false));
  c->set_verify_mode(VerifyMode::kRequired);
  c->set_check_hostname(true);
  c->set_default_verify_paths();
  return c;
}

std::shared_ptr<SslContext> SslContext::server(const std::string& cert_file, const std::string& key_file) {
  std::shared_ptr<SslContext> c(new SslContext(true));
  c->load_cert_chain(cert_file, key_file);
  return c;
}

void SslContext::load_verify_locations(const std::string& cafile, const std::string& capath, const QByteArray& cadata) {
  auto lock = configuring("SslContext::load_verify_locations");
  if (cafile.empty() && capath.empty() && cadata.isEmpty())
    throw qi::ValueError("SslContext::load_verify_locations: give cafile, capath or cadata");
  ERR_clear_error();
  if (!cafile.empty() || !capath.empty()) {
    if (!cafile.empty()) check_readable(cafile, "SslContext::load_verify_locations");
    if (SSL_CTX_load_verify_locations(native(ctx_), cafile.empty() ? nullptr : cafile.c_str(),
                                      capath.empty() ? nullptr : capath.c_str()) != 1)
      detail::throw_ssl_error("SslContext::load_verify_locations(" + cafile + capath + ")");
  }
  if (cadata.isEmpty()) return;
  BIO* bio = BIO_new_mem_buf(cadata.constData(), static_cast<int>(cadata.size()));
  X509_STORE* store = SSL_CTX_get_cert_store(native(ctx_));
  int added = 0;
  while (X509* cert = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
    int ok = X509_STORE_add_cert(store, cert);
    X509_free(cert);
    if (!ok) {
      BIO_free(bio);
      detail::throw_ssl_error("SslContext::load_verify_locations(cadata)");
    }
    ++added;
  }
  BIO_free(bio);
  ERR_clear_error();  // the end of the PEM text reads as "no start line"
  if (added == 0)
    throw qi::SSLError("SslContext::load_verify_locations: cadata holds no PEM certificate "
                       "(-----BEGIN CERTIFICATE-----)");
}

void SslContext::set_default_verify_paths() {
  auto lock = configuring("SslContext::set_default_verify_paths");
  ERR_clear_error();
  if (SSL_CTX_set_default_verify_paths(native(ctx_)) != 1)
    detail::throw_ssl_error("SslContext::set_default_verify_paths");
}

void SslContext::load_cert_chain(const std::string& cert_file, const std::string& key_file,
                                 const std::string& password) {
  auto lock = configuring("SslContext::load_cert_chain");
  const std::string& key = key_file.empty() ? cert_file : key_file;
  check_readable(cert_file, "SslContext::load_cert_chain");
  check_readable(key, "SslContext::load_cert_chain");
  ERR_clear_error();
  if (SSL_CTX_use_certificate_chain_file(native(ctx_), cert_file.c_str()) != 1)
    detail::throw_ssl_error("SslContext::load_cert_chain: the certificate " + cert_file);
  // The password reaches OpenSSL's callback as its userdata, for this call only.
  SSL_CTX_set_default_passwd_cb_userdata(native(ctx_), const_cast<char*>(password.c_str()));
  int ok = SSL_CTX_use_PrivateKey_file(native(ctx_), key.c_str(), SSL_FILETYPE_PEM);
  SSL_CTX_set_default_passwd_cb_userdata(native(ctx_), nullptr);
  const std::string mismatch = "SslContext::load_cert_chain: the key " + key + " does not match the certificate " +
                               cert_file + "; give the private key this certificate was made with";
  if (ok != 1) {
    // OpenSSL checks the key against the certificate as it loads it: its
    // "key values mismatch" is said as the check below says it.
    const unsigned long last = ERR_peek_last_error();
    if (ERR_GET_LIB(last) == ERR_LIB_X509 && ERR_GET_REASON(last) == X509_R_KEY_VALUES_MISMATCH)
      detail::throw_ssl_error(mismatch);
    detail::throw_ssl_error("SslContext::load_cert_chain: the private key " + key);
  }
  if (SSL_CTX_check_private_key(native(ctx_)) != 1) detail::throw_ssl_error(mismatch);
}

void SslContext::set_verify_mode(VerifyMode mode) {
  auto lock = configuring("SslContext::set_verify_mode");
  if (mode == VerifyMode::kNone && check_hostname_)
    throw qi::ValueError("SslContext::set_verify_mode: kNone while check_hostname is on; call "
                         "set_check_hostname(false) first");
  apply_verify_mode(mode);
}

void SslContext::apply_verify_mode(VerifyMode mode) {
  int flags = mode == VerifyMode::kNone       ? SSL_VERIFY_NONE
              : mode == VerifyMode::kOptional ? SSL_VERIFY_PEER
                                              : SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  SSL_CTX_set_verify(native(ctx_), flags, nullptr);
  verify_mode_ = mode;
}

void SslContext::set_check_hostname(bool on) {
  auto lock = configuring("SslContext::set_check_hostname");
  if (on && verify_mode_ == VerifyMode::kNone) apply_verify_mode(VerifyMode::kRequired);
  check_hostname_ = on;
}

void SslContext::set_alpn_protocols(const std::vector<std::string>& protocols) {
  auto lock = configuring("SslContext::set_alpn_protocols");
  std::string wire;
  for (const std::string& p : protocols) {
    if (p.empty() || p.size() > 255)
      throw qi::ValueError("SslContext::set_alpn_protocols: '" + p + "' must be 1 to 255 bytes long");
    wire += static_cast<char>(p.size());
    wire += p;
  }
  ERR_clear_error();
  // SSL_CTX_set_alpn_protos returns 0 on success (unlike the rest of OpenSSL).
  if (SSL_CTX_set_alpn_protos(native(ctx_), reinterpret_cast<const unsigned char*>(wire.data()),
                              static_cast<unsigned int>(wire.size())) != 0)
    detail::throw_ssl_error("SslContext::set_alpn_protocols");
  alpn_wire_ = std::move(wire);
}

void SslContext::set_minimum_version(TlsVersion version) {
  auto lock = configuring("SslContext::set_minimum_version");
  ERR_clear_error();
  if (SSL_CTX_set_min_proto_version(native(ctx_), openssl_version(version)) != 1)
    detail::throw_ssl_error("SslContext::set_minimum_version");
}

void SslContext::set_maximum_version(TlsVersion version) {
  auto lock = configuring("SslContext::set_maximum_version");
  ERR_clear_error();
  if (SSL_CTX_set_max_proto_version(native(ctx_), openssl_version(version)) != 1)
    detail::throw_ssl_error("SslContext::set_maximum_version");
}

void SslContext::set_ciphers(const std::string& ciphers) {
  auto lock = configuring("SslContext::set_ciphers");
  ERR_clear_error();
  if (SSL_CTX_set_cipher_list(native(ctx_), ciphers.c_str()) != 1)
    detail::throw_ssl_error("SslContext::set_ciphers(" + ciphers + ")");
}

SslTransport::~SslTransport() = default;

}  // namespace qi
