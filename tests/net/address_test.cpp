// qi::SocketAddress (IPv4, IPv6 with scope, Unix paths and abstract names,
// unnamed) and the errno -> exception mapping of errors.h: parsing, the
// numeric text, the native round trip, equality, readable text, and the
// errors that name the fix.
#include "error_text.h"

#include <qiloop/errors.h>
#include <qiloop/net/address.h>
#include <qiloop/testing.h>

#include <gtest/gtest.h>

#include <arpa/inet.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <functional>
#include <string>
#include <typeinfo>
#include <utility>

using namespace std::string_literals;

namespace {

template <class F>
std::string value_error_of(F&& f) {
  return error_text::what_of<qi::ValueError>(std::forward<F>(f));
}

TEST(SocketAddress, Ipv4FromText) {
  auto a = qi::SocketAddress::ip("127.0.0.1", 8080);
  EXPECT_EQ(a.family(), AF_INET);
  EXPECT_TRUE(a.is_ip());
  EXPECT_EQ(a.host(), "127.0.0.1");
  EXPECT_EQ(a.port(), 8080);
  EXPECT_EQ(a.to_string(), "127.0.0.1:8080");
  EXPECT_EQ(a.size(), sizeof(sockaddr_in));
  const auto* sin = reinterpret_cast<const sockaddr_in*>(a.native());
  EXPECT_EQ(ntohs(sin->sin_port), 8080);
  EXPECT_EQ(ntohl(sin->sin_addr.s_addr), INADDR_LOOPBACK);
  EXPECT_EQ(a.path(), "");
  EXPECT_EQ(a.scope_id(), 0u);
}

TEST(SocketAddress, Ipv6FromText) {
  auto a = qi::SocketAddress::ip("::1", 80);
  EXPECT_EQ(a.family(), AF_INET6);
  EXPECT_EQ(a.host(), "::1");
  EXPECT_EQ(a.port(), 80);
  EXPECT_EQ(a.to_string(), "[::1]:80");
  EXPECT_EQ(a.size(), sizeof(sockaddr_in6));
  // Canonical text: the long form comes back short.
  EXPECT_EQ(qi::SocketAddress::ip("0:0:0:0:0:0:0:1", 1).host(), "::1");
  EXPECT_EQ(qi::SocketAddress::ip("::ffff:127.0.0.1", 1).host(), "::ffff:127.0.0.1");
}

TEST(SocketAddress, Ipv6ScopeByIndexOrName) {
  auto a = qi::SocketAddress::ip("fe80::1%3", 443);
  EXPECT_EQ(a.scope_id(), 3u);
  EXPECT_EQ(a.host(), "fe80::1");
  EXPECT_EQ(a.to_string(), "[fe80::1%3]:443");
  unsigned lo = if_nametoindex("lo");
  if (lo != 0) {
    EXPECT_EQ(qi::SocketAddress::ip("fe80::1%lo", 1).scope_id(), lo);
  }
  const std::string w = value_error_of([] { qi::SocketAddress::ip("fe80::1%no-such-if0", 1); });
  EXPECT_EQ(w, "SocketAddress::ip: \"fe80::1%no-such-if0\": no network interface is named \"no-such-if0\"; give an "
               "existing interface's name or index after the '%'");
  // The scope takes part in equality.
  EXPECT_NE(qi::SocketAddress::ip("fe80::1%3", 1), qi::SocketAddress::ip("fe80::1%4", 1));
}

TEST(SocketAddress, NonNumericTextNamesTheFix) {
  std::string w = value_error_of([] { qi::SocketAddress::ip("localhost", 80); });
  EXPECT_NE(w.find("\"localhost\" is not a numeric"), std::string::npos) << w;
  EXPECT_NE(w.find("getaddrinfo"), std::string::npos) << w;
  w = value_error_of([] { qi::SocketAddress::ip("[::1]", 80); });
  EXPECT_NE(w.find("drop the brackets"), std::string::npos) << w;
  value_error_of([] { qi::SocketAddress::ip("", 80); });
  value_error_of([] { qi::SocketAddress::ip("1.2.3.4.5", 80); });
  value_error_of([] { qi::SocketAddress::ip("127.0.0.1 ", 80); });
}

TEST(SocketAddress, UnixPath) {
  auto a = qi::SocketAddress::unix_path("/tmp/app.sock");
  EXPECT_EQ(a.family(), AF_UNIX);
  EXPECT_FALSE(a.is_ip());
  EXPECT_EQ(a.path(), "/tmp/app.sock");
  EXPECT_FALSE(a.is_abstract());
  EXPECT_EQ(a.to_string(), "unix:/tmp/app.sock");
  EXPECT_EQ(a.host(), "");
  EXPECT_EQ(a.port(), 0);
  EXPECT_EQ(a.size(), offsetof(sockaddr_un, sun_path) + std::strlen("/tmp/app.sock") + 1);
  EXPECT_STREQ(reinterpret_cast<const sockaddr_un*>(a.native())->sun_path, "/tmp/app.sock");
}

TEST(SocketAddress, UnixAbstractName) {
  auto a = qi::SocketAddress::unix_path("\0qiloop\0x"s);
  EXPECT_TRUE(a.is_abstract());
  EXPECT_EQ(a.path(), "\0qiloop\0x"s);  // NULs inside a name are part of it
  EXPECT_EQ(a.size(), offsetof(sockaddr_un, sun_path) + 9);
  EXPECT_EQ(qi::SocketAddress::unix_path("\0name"s).to_string(), "unix:@name");
  EXPECT_NE(a, qi::SocketAddress::unix_path("\0qiloop"s));
}

TEST(SocketAddress, UnixPathLimits) {
  std::string longest(sizeof(sockaddr_un::sun_path) - 1, 'p');
  EXPECT_EQ(qi::SocketAddress::unix_path(longest).path(), longest);
  std::string w = value_error_of([&] { qi::SocketAddress::unix_path(longest + "p"); });
  EXPECT_NE(w.find("at most 107"), std::string::npos) << w;
  EXPECT_NE(w.find("shorter path"), std::string::npos) << w;
  // An abstract name needs no terminating NUL: one byte more fits.
  EXPECT_TRUE(qi::SocketAddress::unix_path("\0"s + longest).is_abstract());
  value_error_of([&] { qi::SocketAddress::unix_path("\0"s + longest + "p"); });
  w = value_error_of([] { qi::SocketAddress::unix_path(""); });
  EXPECT_NE(w.find("empty"), std::string::npos) << w;
}

TEST(SocketAddress, FromNativeRoundTrips) {
  for (auto a : {qi::SocketAddress::ip("10.1.2.3", 1), qi::SocketAddress::ip("2001:db8::5%7", 65535),
                 qi::SocketAddress::unix_path("/run/x"), qi::SocketAddress::unix_path("\0abs"s)}) {
    auto b = qi::SocketAddress::from_native(a.native(), a.size());
    EXPECT_EQ(a, b) << a.to_string();
    EXPECT_EQ(b.to_string(), a.to_string());
    EXPECT_EQ(b.size(), a.size());
    EXPECT_EQ(std::hash<qi::SocketAddress>{}(a), std::hash<qi::SocketAddress>{}(b));
  }
}

TEST(SocketAddress, FromNativeUnixAsTheKernelGivesIt) {
  sockaddr_un sun{};
  sun.sun_family = AF_UNIX;
  // Unnamed (socketpair ends, unbound sockets): the family alone.
  auto unnamed = qi::SocketAddress::from_native(reinterpret_cast<sockaddr*>(&sun), sizeof(sa_family_t));
  EXPECT_EQ(unnamed.family(), AF_UNIX);
  EXPECT_EQ(unnamed.path(), "");
  EXPECT_EQ(unnamed.to_string(), "unix:(unnamed)");
  // A path with the trailing NUL counted, and the whole struct's length.
  std::strcpy(sun.sun_path, "/a/b");
  auto counted = qi::SocketAddress::from_native(reinterpret_cast<sockaddr*>(&sun), sizeof sun);
  EXPECT_EQ(counted.path(), "/a/b");
  EXPECT_EQ(counted, qi::SocketAddress::unix_path("/a/b"));
}

TEST(SocketAddress, FromNativeRefusesWhatItCannotHold) {
  sockaddr_in sin{};
  sin.sin_family = AF_INET;
  std::string w =
      value_error_of([&] { qi::SocketAddress::from_native(reinterpret_cast<sockaddr*>(&sin), sizeof sin - 1); });
  EXPECT_NE(w.find("length"), std::string::npos) << w;
  sockaddr other{};
  other.sa_family = AF_APPLETALK;
  w = value_error_of([&] { qi::SocketAddress::from_native(&other, sizeof other); });
  EXPECT_NE(w.find("AF_INET, AF_INET6 and AF_UNIX"), std::string::npos) << w;
  EXPECT_TRUE(qi::SocketAddress::from_native(&other, 0).empty());
}

TEST(SocketAddress, EqualityIgnoresPadding) {
  sockaddr_in x{};
  x.sin_family = AF_INET;
  x.sin_port = htons(9);
  x.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  sockaddr_in y = x;
  std::memset(y.sin_zero, 0xAB, sizeof y.sin_zero);
  auto a = qi::SocketAddress::from_native(reinterpret_cast<sockaddr*>(&x), sizeof x);
  auto b = qi::SocketAddress::from_native(reinterpret_cast<sockaddr*>(&y), sizeof y);
  EXPECT_EQ(a, b);
  EXPECT_EQ(a.hash(), b.hash());
  EXPECT_NE(a, qi::SocketAddress::ip("127.0.0.1", 10));
  EXPECT_NE(a, qi::SocketAddress::ip("127.0.0.2", 9));
  EXPECT_NE(a, qi::SocketAddress::ip("::ffff:127.0.0.1", 9));  // another family
  EXPECT_NE(a, qi::SocketAddress());
}

TEST(SocketAddress, EmptyAddress) {
  qi::SocketAddress e;
  EXPECT_TRUE(e.empty());
  EXPECT_EQ(e.family(), AF_UNSPEC);
  EXPECT_EQ(e.size(), 0u);
  EXPECT_EQ(e.to_string(), "(empty)");
  EXPECT_EQ(e, qi::SocketAddress());
}

// --- errors.h: the OSError family --------------------------------------------

template <class E>
void expect_maps(int code) {
  std::exception_ptr p = qi::make_os_error(code, "ctx");
  try {
    std::rethrow_exception(p);
  } catch (const E& e) {
    EXPECT_EQ(typeid(e), typeid(E)) << code;
    EXPECT_EQ(e.code(), code);
    return;
  } catch (...) {
  }
  ADD_FAILURE() << "errno " << code << " is not a " << typeid(E).name();
}

TEST(OSError, ErrnoMapsToPythonsClasses) {
  expect_maps<qi::ConnectionRefusedError>(ECONNREFUSED);
  expect_maps<qi::ConnectionResetError>(ECONNRESET);
  expect_maps<qi::BrokenPipeError>(EPIPE);
  expect_maps<qi::BrokenPipeError>(ESHUTDOWN);
  expect_maps<qi::ConnectionAbortedError>(ECONNABORTED);
  expect_maps<qi::TimeoutError>(ETIMEDOUT);
  expect_maps<qi::FileNotFoundError>(ENOENT);
  expect_maps<qi::PermissionError>(EACCES);
  expect_maps<qi::PermissionError>(EPERM);
  expect_maps<qi::OSError>(EBADF);
  EXPECT_THROW(qi::throw_os_error(ECONNRESET, "x"), qi::ConnectionError);
}

TEST(OSError, MessageNamesContextReasonAndErrno) {
  qi::ConnectionRefusedError e(ECONNREFUSED, "sock_connect to 127.0.0.1:1");
  EXPECT_EQ(e.code(), ECONNREFUSED);
  EXPECT_EQ(e.reason(), std::strerror(ECONNREFUSED));
  EXPECT_EQ(std::string(e.what()), "sock_connect to 127.0.0.1:1: "s + std::strerror(ECONNREFUSED) + " [ECONNREFUSED]");
  qi::OSError plain("no errno");
  EXPECT_EQ(plain.code(), 0);
  EXPECT_STREQ(plain.what(), "no errno");
}

TEST(OSError, TimeoutErrorIsAnOSErrorAsInPython) {
  // asyncio.TimeoutError is TimeoutError, an OSError, since 3.11.
  try {
    throw qi::TimeoutError("the timeout expired");
  } catch (const qi::OSError& e) {
    EXPECT_STREQ(e.what(), "the timeout expired");
    EXPECT_EQ(e.code(), 0);
  }
  EXPECT_TRUE((std::is_base_of_v<std::runtime_error, qi::TimeoutError>));
}

TEST(OSError, GaiErrorCarriesTheEaiCode) {
  qi::GaiError e(EAI_NONAME, "getaddrinfo(\"x\", \"80\")");
  EXPECT_EQ(e.code(), EAI_NONAME);
  EXPECT_EQ(e.reason(), gai_strerror(EAI_NONAME));
  EXPECT_EQ(std::string(e.what()), "getaddrinfo(\"x\", \"80\"): "s + gai_strerror(EAI_NONAME));
  EXPECT_TRUE((std::is_base_of_v<qi::OSError, qi::GaiError>));
}

}  // namespace
