// net/datagram_transport.cpp — DatagramSocketTransport (asyncio's
// _SelectorDatagramTransport, selector_events.py) and
// QiEventLoop::create_datagram_endpoint's non-template halves (asyncio's
// base_events.py create_datagram_endpoint).
#include "net/datagram_transport.h"

#include "net/fd_watch.h"
#include "net/sys_io.h"
#include "net/socket_transport.h"

#include <qiloop/errors.h>
#include <qiloop/net/socket.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <string>
#include <utility>
#include <vector>

namespace qi::detail {

DatagramSocketTransport* DatagramSocketTransport::open(QiEventLoop& loop, int fd,
                                                       QiEventLoop::DatagramProtocolFactory& factory,
                                                       SocketAddress remote) {
  std::unique_ptr<DatagramProtocol> protocol;
  try {
    protocol = factory();
  } catch (...) {
    ::close(fd);
    throw;
  }
  auto* t = new DatagramSocketTransport(loop, fd, std::move(protocol), std::move(remote));
  try {
    t->protocol_->connection_made(*t);
  } catch (...) {
    t->force_close(std::current_exception());
    throw;
  }
  if (!t->closing_) LoopFds::add_reader(loop, fd, [t] { t->read_ready(); });
  return t;
}

DatagramSocketTransport::DatagramSocketTransport(QiEventLoop& loop, int fd, std::unique_ptr<DatagramProtocol> protocol,
                                                 SocketAddress remote)
    : FdTransport(loop, fd),
      protocol_(std::move(protocol)),
      local_(socket_address(fd, false)),
      peer_(socket_address(fd, true)),
      remote_(remote.empty() ? peer_ : std::move(remote)) {}

std::string DatagramSocketTransport::describe() const {
  return FdTransport::describe() + ", datagram, local " + local_.to_string() +
         (remote_.empty() ? std::string() : ", remote " + remote_.to_string());
}

// --- Receiving --------------------------------------------------------------------------

void DatagramSocketTransport::read_ready() {
  char* buf = shared_read_buffer();
  sockaddr_storage from;
  socklen_t len = sizeof from;
  ssize_t n;
  do n = sys_recvfrom(fd_, buf, kReadSize, 0, reinterpret_cast<sockaddr*>(&from), &len);
  while (n < 0 && errno == EINTR);
  if (n < 0) {
    if (!would_block(errno)) deliver_error(errno, "receiving");
    return;
  }
  try {
    protocol_->datagram_received(QByteArrayView(buf, n),
                                 SocketAddress::from_native(reinterpret_cast<sockaddr*>(&from), len));
  } catch (...) {
    protocol_failed("protocol.datagram_received() call failed");
  }
}

void DatagramSocketTransport::deliver_error(int err, const char* what) {
  try {
    protocol_->error_received(qi::make_os_error(err, "datagram transport (" + describe() + "): " + what));
  } catch (...) {
    protocol_failed("protocol.error_received() call failed");
  }
}

// --- Sending ----------------------------------------------------------------------------

void DatagramSocketTransport::send(QByteArrayView data, const SocketAddress* addr) {
  if (!remote_.empty()) {
    if (addr && *addr != remote_)
      throw qi::ValueError("sendto: invalid address " + addr->to_string() + ": this endpoint sends to " +
                           remote_.to_string() + " only; pass no address or that one");
    addr = &remote_;
  } else if (!addr) {
    throw qi::ValueError("sendto: no address: this endpoint has no remote_addr; pass the address to send to");
  }
  if (!accept_write()) return;
  if (buffer_.empty()) {
    int err = send_one(data, *addr);
    if (err == 0) return;
    if (!would_block(err)) return deliver_error(err, "sending");
    LoopFds::add_writer(loop_, fd_, [this] { write_ready(); });
  }
  buffer_.push_back({data.toByteArray(), *addr});
  buffered_ += static_cast<std::size_t>(data.size()) + kHeaderSize;
  maybe_pause_protocol(buffered_);
}

int DatagramSocketTransport::send_one(QByteArrayView data, const SocketAddress& to) noexcept {
  // A connected socket takes no address (send(2)); others sendto(2).
  const bool connected = !peer_.empty();
  ssize_t n;
  do n = sys_sendto(fd_, data.data(), static_cast<std::size_t>(data.size()), MSG_NOSIGNAL,
                  connected ? nullptr : to.native(), connected ? 0 : to.size());
  while (n < 0 && errno == EINTR);
  return n < 0 ? errno : 0;
}

void DatagramSocketTransport::write_ready() {
  while (!buffer_.empty()) {
    int err = send_one(buffer_.front().data, buffer_.front().to);
    if (err != 0 && would_block(err)) break;
    buffered_ -= static_cast<std::size_t>(buffer_.front().data.size()) + kHeaderSize;
    buffer_.pop_front();
    if (err != 0) {
      deliver_error(err, "sending");  // the datagram is dropped; the protocol may close or abort
      if (lost_) return;
    }
  }
  maybe_resume_protocol(buffered_);
  if (lost_ || !buffer_.empty()) return;
  LoopFds::remove_writer(loop_, fd_);
  if (closing_) finish_flushing_close();
}

bool DatagramSocketTransport::drop_write_buffer() noexcept {
  if (buffer_.empty()) return false;
  buffer_.clear();
  buffered_ = 0;
  return true;
}

namespace {

// One way to open the endpoint: a (family, proto) and its addresses.
struct Candidate {
  int family = 0;
  int proto = 0;
  std::optional<SocketAddress> local;
  std::optional<SocketAddress> remote;
};

// asyncio removes a socket file left at a Unix datagram endpoint's path.
void remove_stale_socket(const std::string& path) {
  struct stat st;
  if (!path.empty() && path[0] != '\0' && ::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode))
    (void)::unlink(path.c_str());
}

void set_option(int fd, int option, const char* name) {
  int one = 1;
  if (::setsockopt(fd, SOL_SOCKET, option, &one, sizeof one) < 0)
    qi::throw_os_error(errno, std::string("create_datagram_endpoint: setting ") + name);
}

}  // namespace

}  // namespace qi::detail

qi::Coro<qi::DatagramTransport*> QiEventLoop::open_datagram_endpoint(DatagramProtocolFactory factory,
                                                                     qi::DatagramOptions options) {
  using qi::detail::Candidate;
  std::vector<Candidate> candidates;
  if (!options.local_addr && !options.remote_addr) {
    if (options.family == 0)
      throw qi::ValueError("create_datagram_endpoint: unexpected address family: give local_addr, remote_addr or "
                           "a family (AF_INET, AF_INET6, AF_UNIX)");
    candidates.push_back({options.family, options.proto, std::nullopt, std::nullopt});
  } else if (options.family == AF_UNIX) {
    Candidate c{AF_UNIX, options.proto, std::nullopt, std::nullopt};
    if (options.local_addr) {
      c.local = qi::SocketAddress::unix_path(options.local_addr->first);
      qi::detail::remove_stale_socket(options.local_addr->first);
    }
    if (options.remote_addr) c.remote = qi::SocketAddress::unix_path(options.remote_addr->first);
    candidates.push_back(std::move(c));
  } else {
    // The addresses of both ends, joined by (family, proto) in the
    // resolver's order; a pair missing an end that was asked for is dropped.
    const std::optional<std::pair<std::string, uint16_t>>* ends[2] = {&options.local_addr, &options.remote_addr};
    for (int end = 0; end < 2; ++end) {
      if (!*ends[end]) continue;
      const auto& [host, port] = **ends[end];
      std::vector<qi::AddrInfo> infos =
          co_await getaddrinfo(host, port, options.family, SOCK_DGRAM, options.proto, options.flags);
      if (infos.empty())
        throw qi::OSError("create_datagram_endpoint: getaddrinfo() returned no address for " + host);
      for (qi::AddrInfo& info : infos) {
        auto it = std::find_if(candidates.begin(), candidates.end(), [&info](const Candidate& c) {
          return c.family == info.family && c.proto == info.protocol;
        });
        if (it == candidates.end()) it = candidates.insert(candidates.end(), Candidate{info.family, info.protocol, {}, {}});
        auto& slot = end == 0 ? it->local : it->remote;
        if (!slot) slot = info.address;
      }
    }
    std::erase_if(candidates, [&options](const Candidate& c) {
      return (options.local_addr && !c.local) || (options.remote_addr && !c.remote);
    });
    if (candidates.empty())
      throw qi::ValueError("create_datagram_endpoint: can not get address information: local_addr and remote_addr "
                           "resolve to no common address family");
  }

  std::exception_ptr first_error;
  for (Candidate& c : candidates) {
    int fd = ::socket(c.family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, c.proto);
    if (fd < 0) {
      if (!first_error) first_error = qi::make_os_error(errno, "create_datagram_endpoint: socket()");
      continue;
    }
    try {
      if (options.reuse_port) qi::detail::set_option(fd, SO_REUSEPORT, "SO_REUSEPORT");
      if (options.allow_broadcast) qi::detail::set_option(fd, SO_BROADCAST, "SO_BROADCAST");
      if (c.local && ::bind(fd, c.local->native(), c.local->size()) < 0)
        qi::throw_os_error(errno, "create_datagram_endpoint: binding to " + c.local->to_string());
      if (c.remote && !options.allow_broadcast) co_await sock_connect(fd, *c.remote);
    } catch (const qi::OSError&) {
      ::close(fd);
      if (!first_error) first_error = std::current_exception();
      continue;
    } catch (...) {
      ::close(fd);
      throw;
    }
    co_return qi::detail::DatagramSocketTransport::open(*this, fd, factory, c.remote.value_or(qi::SocketAddress()));
  }
  std::rethrow_exception(first_error);
}

qi::DatagramTransport* QiEventLoop::adopt_datagram_socket(DatagramProtocolFactory factory, int sock) {
  // asyncio refuses anything but SOCK_DGRAM: a SOCK_SEQPACKET socket reads
  // 0 bytes for ever once its peer closed (a busy loop of empty
  // datagrams), and the sender's address of another family cannot be read.
  qi::detail::check_adopted_socket(sock, SOCK_DGRAM, "create_datagram_endpoint", "use create_connection");
  qi::detail::ensure_fd_no_transport(sock, "create_datagram_endpoint");
  int flags = ::fcntl(sock, F_GETFL);
  if (flags < 0 || ::fcntl(sock, F_SETFL, flags | O_NONBLOCK) < 0)
    qi::throw_os_error(errno, "create_datagram_endpoint: making fd " + std::to_string(sock) + " non-blocking");
  return qi::detail::DatagramSocketTransport::open(*this, sock, factory, qi::SocketAddress());
}
