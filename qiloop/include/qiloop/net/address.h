// qiloop/net/address.h — qi::SocketAddress: an IPv4, IPv6 or Unix-domain
// socket address as a value (asyncio's address tuples and path strings).
//
//   qi::SocketAddress a = qi::SocketAddress::ip("::1", 8080);
//   a.host();        // "::1" (numeric text, never a name)
//   a.port();        // 8080
//   a.to_string();   // "[::1]:8080"
//   ::connect(fd, a.native(), a.size());
//   auto peer = qi::SocketAddress::from_native(sa, len);     // from accept(2)
//   qi::SocketAddress::unix_path("/run/app.sock").to_string(); // "unix:/run/app.sock"
//
// Contract:
// - Three families: AF_INET, AF_INET6 (with flow info and scope id) and
//   AF_UNIX (a path, a Linux abstract name — a path starting with '\0' — or
//   unnamed, as socketpair(2) ends and unbound sockets are). A
//   default-constructed address is empty: family() == AF_UNSPEC.
// - Parsing takes numeric text only (ip()); host names are resolved with
//   `co_await loop.getaddrinfo(host, port)` (<qiloop/net/socket.h>), which
//   gives SocketAddress values.
// - Equality compares what the family defines (family, address, port, scope
//   id; the path), never padding bytes.
// - Throws qi::ValueError, naming the fix, for text that is not a numeric
//   address, a path too long for sockaddr_un, a sockaddr too short for its
//   family or of a family not listed above.
// Thread-safety: a plain value type.
#pragma once

#include <qiloop/export.h>

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

namespace qi {

// qi::SocketAddress
class QILOOP_EXPORT SocketAddress {
 public:
  // SocketAddress::SocketAddress()
  // The empty address (AF_UNSPEC, size() 0).
  SocketAddress() noexcept;

  // SocketAddress::from_native()
  // A copy of the sockaddr `sa` of `len` bytes (what accept(2),
  // getpeername(2), recvfrom(2) and getaddrinfo(3) give). len 0, or
  // AF_UNSPEC: the empty address. Throws qi::ValueError for a family other
  // than AF_INET / AF_INET6 / AF_UNIX, or a len too short for the family.
  static SocketAddress from_native(const sockaddr* sa, socklen_t len);

  // SocketAddress::ip()
  // An IPv4 or IPv6 address from numeric text ("127.0.0.1", "::1",
  // "fe80::1%eth0" or "fe80::1%2": a scope by interface name or index).
  // Throws qi::ValueError for anything else (a host name: resolve it with
  // loop.getaddrinfo; "[::1]": drop the brackets).
  static SocketAddress ip(std::string_view host, uint16_t port);

  // SocketAddress::unix_path()
  // A Unix-domain address: a file system path, or a Linux abstract name
  // when path starts with '\0' (the rest of its bytes are the name, NULs
  // included). Throws qi::ValueError for an empty path or one longer than
  // sockaddr_un holds (107 bytes for a path, 107 after the '\0' for a name).
  static SocketAddress unix_path(std::string_view path);

  // SocketAddress::family()
  // AF_INET, AF_INET6, AF_UNIX, or AF_UNSPEC for the empty address.
  int family() const noexcept { return storage_.ss_family; }
  bool empty() const noexcept { return family() == AF_UNSPEC; }
  bool is_ip() const noexcept { return family() == AF_INET || family() == AF_INET6; }

  // SocketAddress::host()
  // The numeric address ("127.0.0.1", "::1"; no scope: see scope_id()),
  // or "" for Unix and empty addresses.
  std::string host() const;
  // SocketAddress::port()
  // The port in host byte order; 0 for Unix and empty addresses.
  uint16_t port() const noexcept;
  // SocketAddress::scope_id()
  // SocketAddress::flowinfo()
  // IPv6's sin6_scope_id and sin6_flowinfo (host byte order); 0 otherwise.
  uint32_t scope_id() const noexcept;
  uint32_t flowinfo() const noexcept;

  // SocketAddress::path()
  // A Unix address's path; an abstract name starts with '\0'; "" when
  // unnamed and for other families.
  std::string path() const;
  // SocketAddress::is_abstract()
  // A Unix address in Linux's abstract namespace.
  bool is_abstract() const noexcept;

  // SocketAddress::native()
  // SocketAddress::size()
  // The sockaddr and its length, for bind(2), connect(2), sendto(2).
  const sockaddr* native() const noexcept { return reinterpret_cast<const sockaddr*>(&storage_); }
  socklen_t size() const noexcept { return size_; }

  // SocketAddress::to_string()
  // "127.0.0.1:80", "[::1]:80", "[fe80::1%2]:80" (scope by index),
  // "unix:/path", "unix:@name" (abstract), "unix:(unnamed)", "(empty)".
  std::string to_string() const;

  // Family, address, port and scope id (IP); the path (Unix).
  friend QILOOP_EXPORT bool operator==(const SocketAddress& a, const SocketAddress& b) noexcept;

  // SocketAddress::hash()
  // Consistent with ==; std::hash<qi::SocketAddress> uses it.
  std::size_t hash() const noexcept;

 private:
  sockaddr_storage storage_;
  socklen_t size_ = 0;
};

}  // namespace qi

template <>
struct std::hash<qi::SocketAddress> {
  std::size_t operator()(const qi::SocketAddress& a) const noexcept { return a.hash(); }
};
