// resolver.cpp — QiEventLoop::getaddrinfo / getnameinfo: the blocking
// resolver on the default executor, numeric text on the loop's thread
// (asyncio's base_events.getaddrinfo and _ipaddr_info). The contract is in
// <qiloop/net/socket.h>.
#include <qiloop/errors.h>
#include <qiloop/event_loop.h>
#include <qiloop/net/socket.h>

#include <arpa/inet.h>
#include <netdb.h>

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace {

struct Query {
  std::string host;
  std::string port;
  int family;
  int type;
  int proto;
  int flags;

  std::string describe() const {
    return "getaddrinfo(\"" + host + "\", \"" + port + "\")";
  }
};

// getaddrinfo(3), blocking unless the flags say numeric.
std::vector<qi::AddrInfo> resolve(const Query& q) {
  addrinfo hints{};
  hints.ai_family = q.family;
  hints.ai_socktype = q.type;
  hints.ai_protocol = q.proto;
  hints.ai_flags = q.flags;
  addrinfo* list = nullptr;
  int rc = ::getaddrinfo(q.host.empty() ? nullptr : q.host.c_str(), q.port.empty() ? nullptr : q.port.c_str(),
                         &hints, &list);
  if (rc != 0) throw qi::GaiError(rc, q.describe());
  std::unique_ptr<addrinfo, decltype(&::freeaddrinfo)> owned(list, &::freeaddrinfo);
  std::vector<qi::AddrInfo> out;
  for (addrinfo* ai = list; ai; ai = ai->ai_next) {
    // Families SocketAddress does not hold (none in practice) are skipped.
    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6) continue;
    out.push_back({ai->ai_family, ai->ai_socktype, ai->ai_protocol, ai->ai_canonname ? ai->ai_canonname : "",
                   qi::SocketAddress::from_native(ai->ai_addr, ai->ai_addrlen)});
  }
  return out;
}

bool all_digits(std::string_view s) {
  return std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// Resolving this needs neither DNS nor /etc/services (asyncio's
// _ipaddr_info): a numeric address (an IPv6 one maybe with %scope) or none,
// a numeric port or none, and no canonical name asked for.
bool numeric(const Query& q) {
  if (q.flags & AI_CANONNAME) return false;
  if (!all_digits(q.port)) return false;
  if (q.host.empty()) return true;
  in6_addr buf;
  std::string addr = q.host.substr(0, q.host.find('%'));
  return ::inet_pton(AF_INET, addr.c_str(), &buf) == 1 || ::inet_pton(AF_INET6, addr.c_str(), &buf) == 1;
}

std::pair<std::string, std::string> name_of(const qi::SocketAddress& address, int flags) {
  char host[NI_MAXHOST];
  char serv[NI_MAXSERV];
  int rc = ::getnameinfo(address.native(), address.size(), host, sizeof host, serv, sizeof serv, flags);
  if (rc != 0) throw qi::GaiError(rc, "getnameinfo(" + address.to_string() + ")");
  return {host, serv};
}

}  // namespace

qi::Coro<std::vector<qi::AddrInfo>> QiEventLoop::getaddrinfo(std::string host, std::string port, int family,
                                                             int type, int proto, int flags) {
  Query q{std::move(host), std::move(port), family, type, proto, flags};
  if (numeric(q)) {
    q.flags |= AI_NUMERICHOST | AI_NUMERICSERV;
    co_return resolve(q);
  }
  // Named: g++ 12 destroys a lambda temporary of a co_await expression
  // twice (here: its strings).
  auto lookup = [q = std::move(q)] { return resolve(q); };
  co_return co_await run_in_executor(nullptr, std::move(lookup));
}

qi::Coro<std::vector<qi::AddrInfo>> QiEventLoop::getaddrinfo(std::string host, uint16_t port, int family, int type,
                                                             int proto, int flags) {
  return getaddrinfo(std::move(host), std::to_string(port), family, type, proto, flags);
}

qi::Coro<std::pair<std::string, std::string>> QiEventLoop::getnameinfo(qi::SocketAddress address, int flags) {
  if (!address.is_ip())
    throw qi::ValueError("getnameinfo: " + address.to_string() +
                         " is not an IP address; getnameinfo names IPv4 and IPv6 addresses");
  constexpr int kNumeric = NI_NUMERICHOST | NI_NUMERICSERV;
  if ((flags & kNumeric) == kNumeric) co_return name_of(address, flags);
  auto lookup = [address, flags] { return name_of(address, flags); };  // named: see getaddrinfo
  co_return co_await run_in_executor(nullptr, std::move(lookup));
}
