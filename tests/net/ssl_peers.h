// Helpers of the TLS tests: certificates made at run time with the openssl
// command line (a CA, a server certificate it signs for localhost and
// 127.0.0.1, a self-signed one), child processes (openssl s_server /
// s_client, tests/net/ssl_peer.py), and a blocking OpenSSL server on a
// thread. None of them is qiloop. No private key is committed: they are
// made into a temporary directory removed at exit.
#pragma once

#include "net/transport_peers.h"

#include <openssl/err.h>
#include <openssl/ssl.h>

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

namespace sslpeers {

using namespace peers;

struct Certs {
  std::string dir, ca, server, server_key, self, self_key;
};

// Made on first use; the directory goes at exit.
inline const Certs& certs() {
  static const Certs c = [] {
    char tmpl[] = "/tmp/qiloop-ssl-XXXXXX";
    if (!::mkdtemp(tmpl)) throw std::runtime_error("mkdtemp failed");
    Certs c;
    c.dir = tmpl;
    c.ca = c.dir + "/ca.pem";
    c.server = c.dir + "/server.pem";
    c.server_key = c.dir + "/server.key";
    c.self = c.dir + "/self.pem";
    c.self_key = c.dir + "/self.key";
    const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    std::ofstream(c.dir + "/san.cnf") << "subjectAltName=DNS:localhost,IP:127.0.0.1\n";
    const std::string cmd =
        "cd " + c.dir + " && openssl req -x509" + ec + " -keyout ca.key -out ca.pem -days 2 -subj /CN=qiloop-test-ca" +
        " -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign" +
        " && openssl req" + ec + " -keyout server.key -out server.csr -subj /CN=localhost/O=qiloop" +
        " && openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2" +
        " -extfile san.cnf" + " && openssl req -x509" + ec + " -keyout self.key -out self.pem -days 2" +
        " -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1";
    if (std::system((cmd + " >/dev/null 2>&1").c_str()) != 0)
      throw std::runtime_error("making the test certificates with the openssl command line failed: " + cmd);
    static struct Remove {
      std::string dir;
      ~Remove() { std::filesystem::remove_all(dir); }
    } remove{c.dir};
    return c;
  }();
  return c;
}

inline std::string peer_script() { return QILOOP_SSL_PEER_SCRIPT; }

// A blocking TLS server (OpenSSL directly) on a thread: accepts one
// connection on 127.0.0.1, handshakes with the CA-signed certificate, runs
// body(ssl). What body records is read after join().
class ThreadServer {
 public:
  explicit ThreadServer(std::function<void(SSL*, int)> body) {
    lsn_ = listener(qi::SocketAddress::ip("127.0.0.1", 0));
    port_ = sockname(lsn_.get()).port();
    thread_.start([this, body = std::move(body)] {
      Fd fd(::accept(lsn_.get(), nullptr, nullptr));
      if (fd.get() < 0) return;
      bound_peer_waits(fd.get());
      SSL_CTX* ctx = SSL_CTX_new(TLS_server_method());
      SSL_CTX_use_certificate_chain_file(ctx, certs().server.c_str());
      SSL_CTX_use_PrivateKey_file(ctx, certs().server_key.c_str(), SSL_FILETYPE_PEM);
      SSL* ssl = SSL_new(ctx);
      SSL_set_fd(ssl, fd.get());
      if (SSL_accept(ssl) == 1) body(ssl, fd.get());
      SSL_free(ssl);
      SSL_CTX_free(ctx);
      ERR_clear_error();
    });
  }
  uint16_t port() const { return port_; }
  void join() { thread_.join(); }

 private:
  Fd lsn_;
  uint16_t port_ = 0;
  Peer thread_;
};

}  // namespace sslpeers
