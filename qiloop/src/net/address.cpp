// address.cpp — qi::SocketAddress.
#include <qiloop/errors.h>
#include <qiloop/net/address.h>

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <charconv>
#include <cstddef>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>

namespace qi {

namespace {

constexpr socklen_t kUnixPathOffset = offsetof(sockaddr_un, sun_path);
constexpr std::size_t kUnixPathMax = sizeof(sockaddr_un::sun_path);

const sockaddr_in& v4(const sockaddr_storage& s) noexcept { return reinterpret_cast<const sockaddr_in&>(s); }
const sockaddr_in6& v6(const sockaddr_storage& s) noexcept { return reinterpret_cast<const sockaddr_in6&>(s); }
const sockaddr_un& un(const sockaddr_storage& s) noexcept { return reinterpret_cast<const sockaddr_un&>(s); }

// The bytes of a Unix address's name: a path up to its first NUL (the
// kernel may count a trailing one), an abstract name whole.
std::string_view unix_name(const sockaddr_storage& s, socklen_t size) noexcept {
  if (size <= kUnixPathOffset) return {};
  std::string_view raw(un(s).sun_path, size - kUnixPathOffset);
  if (raw.front() == '\0') return raw;
  return raw.substr(0, raw.find('\0'));
}

uint32_t parse_scope(std::string_view scope, std::string_view text) {
  uint32_t index = 0;
  auto [end, ec] = std::from_chars(scope.data(), scope.data() + scope.size(), index);
  if (ec == std::errc() && end == scope.data() + scope.size()) return index;
  index = if_nametoindex(std::string(scope).c_str());
  if (index == 0)
    throw ValueError("SocketAddress::ip: \"" + std::string(text) + "\": no network interface is named \"" +
                     std::string(scope) + "\"; give an existing interface's name or index after the '%'");
  return index;
}

}  // namespace

SocketAddress::SocketAddress() noexcept { std::memset(&storage_, 0, sizeof storage_); }

SocketAddress SocketAddress::from_native(const sockaddr* sa, socklen_t len) {
  SocketAddress a;
  if (len == 0 || sa->sa_family == AF_UNSPEC) return a;
  socklen_t need = 0;
  switch (sa->sa_family) {
    case AF_INET: need = sizeof(sockaddr_in); break;
    case AF_INET6: need = sizeof(sockaddr_in6); break;
    case AF_UNIX: need = sizeof(sa_family_t); break;  // unnamed: the family alone
    default:
      throw ValueError("SocketAddress::from_native: address family " + std::to_string(sa->sa_family) +
                       " is not supported; qi::SocketAddress holds AF_INET, AF_INET6 and AF_UNIX addresses");
  }
  if (len < need || len > sizeof(sockaddr_storage))
    throw ValueError("SocketAddress::from_native: " + std::to_string(len) + " bytes is not a valid length for a " +
                     (sa->sa_family == AF_UNIX ? std::string("sockaddr_un") : "sockaddr of family " +
                                                                                   std::to_string(sa->sa_family)) +
                     "; pass the length the system call returned");
  std::memcpy(&a.storage_, sa, len);
  a.size_ = sa->sa_family == AF_UNIX ? len : need;
  return a;
}

SocketAddress SocketAddress::ip(std::string_view host, uint16_t port) {
  SocketAddress a;
  std::string text(host);  // inet_pton wants a C string
  if (inet_pton(AF_INET, text.c_str(), &reinterpret_cast<sockaddr_in&>(a.storage_).sin_addr) == 1) {
    auto& s = reinterpret_cast<sockaddr_in&>(a.storage_);
    s.sin_family = AF_INET;
    s.sin_port = htons(port);
    a.size_ = sizeof(sockaddr_in);
    return a;
  }
  std::string_view addr = host;
  std::string_view scope;
  if (auto pct = host.find('%'); pct != std::string_view::npos) {
    addr = host.substr(0, pct);
    scope = host.substr(pct + 1);
  }
  auto& s = reinterpret_cast<sockaddr_in6&>(a.storage_);
  if (inet_pton(AF_INET6, std::string(addr).c_str(), &s.sin6_addr) != 1) {
    std::string fix = !host.empty() && host.front() == '['
                          ? "drop the brackets (\"::1\", not \"[::1]\")"
                          : "resolve a host name with co_await loop.getaddrinfo(host, port)";
    throw ValueError("SocketAddress::ip: \"" + text + "\" is not a numeric IPv4 or IPv6 address; " + fix);
  }
  s.sin6_family = AF_INET6;
  s.sin6_port = htons(port);
  if (host.size() != addr.size()) s.sin6_scope_id = parse_scope(scope, host);
  a.size_ = sizeof(sockaddr_in6);
  return a;
}

SocketAddress SocketAddress::unix_path(std::string_view path) {
  if (path.empty())
    throw ValueError("SocketAddress::unix_path: the path is empty; give a file system path, or '\\0' and a name "
                     "for an abstract socket");
  const bool abstract = path.front() == '\0';
  // A path needs its terminating NUL inside sun_path; a name does not.
  if (path.size() + (abstract ? 0 : 1) > kUnixPathMax)
    throw ValueError("SocketAddress::unix_path: \"" + std::string(abstract ? path.substr(1) : path) + "\" is " +
                     std::to_string(path.size()) + " bytes; a Unix socket path holds at most " +
                     std::to_string(kUnixPathMax - 1) + ": use a shorter path (a short directory such as /tmp, "
                     "or a relative path)");
  SocketAddress a;
  auto& s = reinterpret_cast<sockaddr_un&>(a.storage_);
  s.sun_family = AF_UNIX;
  std::memcpy(s.sun_path, path.data(), path.size());
  a.size_ = static_cast<socklen_t>(kUnixPathOffset + path.size() + (abstract ? 0 : 1));
  return a;
}

std::string SocketAddress::host() const {
  char buf[INET6_ADDRSTRLEN];
  switch (family()) {
    case AF_INET: return inet_ntop(AF_INET, &v4(storage_).sin_addr, buf, sizeof buf);
    case AF_INET6: return inet_ntop(AF_INET6, &v6(storage_).sin6_addr, buf, sizeof buf);
    default: return {};
  }
}

uint16_t SocketAddress::port() const noexcept {
  switch (family()) {
    case AF_INET: return ntohs(v4(storage_).sin_port);
    case AF_INET6: return ntohs(v6(storage_).sin6_port);
    default: return 0;
  }
}

uint32_t SocketAddress::scope_id() const noexcept { return family() == AF_INET6 ? v6(storage_).sin6_scope_id : 0; }

uint32_t SocketAddress::flowinfo() const noexcept {
  return family() == AF_INET6 ? ntohl(v6(storage_).sin6_flowinfo) : 0;
}

std::string SocketAddress::path() const {
  return family() == AF_UNIX ? std::string(unix_name(storage_, size_)) : std::string();
}

bool SocketAddress::is_abstract() const noexcept {
  return family() == AF_UNIX && size_ > kUnixPathOffset && un(storage_).sun_path[0] == '\0';
}

std::string SocketAddress::to_string() const {
  switch (family()) {
    case AF_INET: return host() + ":" + std::to_string(port());
    case AF_INET6: {
      std::string s = "[" + host();
      if (scope_id() != 0) s += "%" + std::to_string(scope_id());
      return s + "]:" + std::to_string(port());
    }
    case AF_UNIX: {
      std::string_view name = unix_name(storage_, size_);
      if (name.empty()) return "unix:(unnamed)";
      if (name.front() == '\0') return "unix:@" + std::string(name.substr(1));
      return "unix:" + std::string(name);
    }
    default: return "(empty)";
  }
}

bool operator==(const SocketAddress& a, const SocketAddress& b) noexcept {
  if (a.family() != b.family()) return false;
  switch (a.family()) {
    case AF_INET:
      return v4(a.storage_).sin_port == v4(b.storage_).sin_port &&
             v4(a.storage_).sin_addr.s_addr == v4(b.storage_).sin_addr.s_addr;
    case AF_INET6:
      return v6(a.storage_).sin6_port == v6(b.storage_).sin6_port &&
             v6(a.storage_).sin6_scope_id == v6(b.storage_).sin6_scope_id &&
             std::memcmp(&v6(a.storage_).sin6_addr, &v6(b.storage_).sin6_addr, sizeof(in6_addr)) == 0;
    case AF_UNIX: return unix_name(a.storage_, a.size_) == unix_name(b.storage_, b.size_);
    default: return true;
  }
}

std::size_t SocketAddress::hash() const noexcept {
  std::string_view bytes;
  switch (family()) {
    case AF_INET: bytes = {reinterpret_cast<const char*>(&v4(storage_).sin_addr), sizeof(in_addr)}; break;
    case AF_INET6: bytes = {reinterpret_cast<const char*>(&v6(storage_).sin6_addr), sizeof(in6_addr)}; break;
    case AF_UNIX: bytes = unix_name(storage_, size_); break;
    default: break;
  }
  std::size_t h = std::hash<std::string_view>{}(bytes);
  const uint64_t rest = (uint64_t(family()) << 48) | (uint64_t(port()) << 32) | scope_id();
  return h ^ (std::hash<uint64_t>{}(rest) + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2));
}

}  // namespace qi
