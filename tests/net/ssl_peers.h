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

// A child process with its stdin and stdout (stderr merged) on pipes;
// killed (SIGTERM) and reaped when it goes.
class Child {
 public:
  explicit Child(const std::vector<std::string>& argv) {
    int in[2], out[2];
    if (::pipe2(in, O_CLOEXEC) != 0 || ::pipe2(out, O_CLOEXEC) != 0) throw std::runtime_error("pipe2 failed");
    // Built before fork: the child of a threaded process must not allocate.
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    pid_ = ::fork();
    if (pid_ == 0) {
      ::dup2(in[0], 0);
      ::dup2(out[1], 1);
      ::dup2(out[1], 2);
      ::execvp(args[0], args.data());
      ::_exit(127);
    }
    ::close(in[0]);
    ::close(out[1]);
    in_ = Fd(in[1]);
    out_ = Fd(out[0]);
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      wait();
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  void write_stdin(std::string_view s) {
    while (!s.empty()) {
      ssize_t r = ::write(in_.get(), s.data(), s.size());
      if (r <= 0) return;
      s.remove_prefix(static_cast<std::size_t>(r));
    }
  }
  void close_stdin() { in_.reset(); }

  // Reads until `needle` is in the output (or EOF, or 10 s); the output so far.
  std::string read_until(std::string_view needle) {
    auto deadline = std::chrono::steady_clock::now() + 10s;
    while (output_.find(needle) == std::string::npos && !eof_ && std::chrono::steady_clock::now() < deadline)
      read_some(100);
    return output_;
  }
  // Everything until EOF (at most 10 s).
  std::string read_all() { return read_until(std::string_view("\x01\x02 never")); }

  // The first line that holds a number: the port a server prints.
  uint16_t port() {
    read_until("\n");
    auto deadline = std::chrono::steady_clock::now() + 10s;
    for (;;) {
      // s_server: "ACCEPT [::]:43361"; ssl_peer.py: "43361".
      std::size_t nl = output_.find('\n');
      if (nl != std::string::npos) {
        std::string line = output_.substr(0, nl);
        if (line.rfind("ACCEPT", 0) == 0 || (!line.empty() && std::isdigit(static_cast<unsigned char>(line[0])))) {
          std::size_t colon = line.rfind(':');
          return static_cast<uint16_t>(std::stoi(colon == std::string::npos ? line : line.substr(colon + 1)));
        }
        output_.erase(0, nl + 1);
        continue;
      }
      if (eof_ || std::chrono::steady_clock::now() > deadline)
        throw std::runtime_error("the child printed no port: " + output_);
      read_some(100);
    }
  }

  int wait() {
    if (pid_ <= 0) return status_;
    int st = 0;
    ::waitpid(pid_, &st, 0);
    pid_ = -1;
    status_ = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    return status_;
  }

 private:
  void read_some(int ms) {
    pollfd p{out_.get(), POLLIN, 0};
    if (::poll(&p, 1, ms) <= 0) return;
    char buf[4096];
    ssize_t r = ::read(out_.get(), buf, sizeof buf);
    if (r <= 0)
      eof_ = true;
    else
      output_.append(buf, static_cast<std::size_t>(r));
  }

  pid_t pid_ = -1;
  int status_ = -1;
  Fd in_, out_;
  std::string output_;
  bool eof_ = false;
};

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
