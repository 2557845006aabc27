// httpkit on qiloop's streams: read_request on a fed qi::StreamReader
// (pipelining, the end of the stream, the stream's limit, bytes arriving in
// pieces) on virtual time, and serve_connection with a Router over a
// socket pair (keep-alive, Connection: close, HEAD, 404/405, malformed
// requests, a failing handler, on_sent).
#include "http.h"

#include <qiloop/testing.h>

#include <sys/socket.h>

#include <random>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {

QByteArray bytes(const std::string& s) { return QByteArray(s.data(), static_cast<qsizetype>(s.size())); }

const std::string kTwo =
    "GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
    "POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello";

// Feeds data in pieces of random sizes, yielding between them, then EOF.
qi::Coro<void> feed_in_pieces(qi::StreamReader reader, std::string data, unsigned seed) {
  std::mt19937 random(seed);
  std::size_t at = 0;
  while (at < data.size()) {
    const std::size_t n = std::uniform_int_distribution<std::size_t>(1, 16)(random);
    reader.feed_data(bytes(data.substr(at, n)));
    at += n;
    co_await qi::sleep(1ms);
  }
  reader.feed_eof();
}

// The status of the http::Error read_request throws; 0 when none.
qi::Coro<int> read_error(qi::StreamReader& reader, http::Limits limits = {}) {
  try {
    co_await read_request(reader, limits);
  } catch (const http::Error& e) {
    co_return e.status();
  }
  co_return 0;
}

}  // namespace

// --- read_request --------------------------------------------------------------

QILOOP_TEST_VT(HttpReadRequest, TakesOneRequestAndLeavesThePipelinedRest) {
  qi::StreamReader reader;
  reader.feed_data(bytes(kTwo + "GET /c HT"));
  std::optional<http::Request> a = co_await http::read_request(reader, http::Limits{});
  QILOOP_CO_ASSERT(ASSERT_TRUE(a));
  EXPECT_EQ(a->target, "/a");
  EXPECT_EQ(reader.buffered(), kTwo.size() - kTwo.find("POST") + 9);
  std::optional<http::Request> b = co_await http::read_request(reader, http::Limits{});
  QILOOP_CO_ASSERT(ASSERT_TRUE(b));
  EXPECT_EQ(b->body, "hello");
  EXPECT_EQ(reader.buffered(), 9u);  // "GET /c HT": the next request's, untouched
}

QILOOP_TEST_VT(HttpReadRequest, RequestsArrivingInPiecesAreReadWhole) {
  std::string stream;
  for (int i = 0; i < 10; ++i) stream += kTwo;
  for (unsigned seed = 1; seed <= 20; ++seed) {
    qi::StreamReader reader;
    auto feeder = qi::create_task(feed_in_pieces(reader, stream, seed));
    std::vector<http::Request> got;
    while (std::optional<http::Request> r = co_await http::read_request(reader, http::Limits{})) got.push_back(*r);
    co_await feeder;
    QILOOP_CO_ASSERT(ASSERT_EQ(got.size(), 20u) << "seed " << seed);
    for (std::size_t i = 0; i < got.size(); i += 2) {
      EXPECT_EQ(got[i].target, "/a");
      EXPECT_EQ(got[i + 1].body, "hello");
    }
  }
}

QILOOP_TEST_VT(HttpReadRequest, EndOfStreamBetweenRequestsIsTheEnd) {
  qi::StreamReader reader;
  reader.feed_data("\r\n");  // an empty line is not a request
  reader.feed_eof();
  EXPECT_EQ(co_await http::read_request(reader, http::Limits{}), std::nullopt);
}

QILOOP_TEST_VT(HttpReadRequest, EndOfStreamInsideARequestIs400) {
  const std::vector<std::string> cut = {"G", "GET / HTTP/1.1", "GET / HTTP/1.1\r\nHost: x\r\n",
                                        "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhel"};
  for (const std::string& data : cut) {
    qi::StreamReader reader;
    reader.feed_data(bytes(data));
    reader.feed_eof();
    EXPECT_EQ(co_await read_error(reader), 400) << data;
  }
}

QILOOP_TEST_VT(HttpReadRequest, TheParsersLimitsApply) {
  http::Limits limits;
  limits.max_body = 4;
  qi::StreamReader reader;
  reader.feed_data("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n");  // no body, no EOF: must not wait
  EXPECT_EQ(co_await qi::wait_for(read_error(reader, limits), 1s), 413);
}

QILOOP_TEST_VT(HttpReadRequest, ALineOverTheStreamsLimitIsRefusedWithoutWaitingForItsEnd) {
  qi::StreamReader line_reader(64);
  line_reader.feed_data(bytes("GET /" + std::string(100, 'a')));  // no LF, no EOF
  EXPECT_EQ(co_await qi::wait_for(read_error(line_reader), 1s), 414);
  qi::StreamReader field_reader(64);
  field_reader.feed_data(bytes("GET / HTTP/1.1\r\nX-Long: " + std::string(100, 'a')));
  EXPECT_EQ(co_await qi::wait_for(read_error(field_reader), 1s), 431);
}

QILOOP_TEST_VT(HttpReadRequest, AResetConnectionIsThrownAsItIs) {
  qi::StreamReader reader;
  reader.feed_data("GET / HTTP/1.1\r\n");
  reader.set_exception(std::make_exception_ptr(qi::ConnectionResetError(ECONNRESET, "reset")));
  EXPECT_THROW(co_await http::read_request(reader, http::Limits{}), qi::ConnectionResetError);
}

// A slowloris: a byte a second, the request never finished in time.
QILOOP_TEST_VT(HttpReadRequest, ARequestTrickledInByteByByteIs408AfterTheRequestTimeout) {
  auto& loop = qi::get_running_loop();
  qi::StreamReader reader;
  auto trickle = [](qi::StreamReader r) -> qi::Coro<void> {
    const std::string head = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + std::string(1000, 'a');
    for (char c : head) {
      r.feed_data(QByteArray(1, c));
      co_await qi::sleep(1s);
    }
  };
  auto feeder = qi::create_task(trickle(reader));
  const auto t0 = loop.time();
  EXPECT_EQ(co_await read_error(reader), 408);  // http::Limits{}: 30 s
  EXPECT_EQ(loop.time() - t0, 30s);
  feeder.cancel();
}

QILOOP_TEST_VT(HttpReadRequest, EndlessEmptyLinesAre408AfterTheRequestTimeout) {
  // Empty lines before a request are skipped (RFC 9112 section 2.2): without a
  // deadline, a client could send them for ever.
  auto& loop = qi::get_running_loop();
  qi::StreamReader reader;
  auto empty_lines = [](qi::StreamReader r) -> qi::Coro<void> {
    for (int i = 0; i < 100000; ++i) {
      r.feed_data("\r\n");
      co_await qi::sleep(100ms);
    }
  };
  auto feeder = qi::create_task(empty_lines(reader));
  const auto t0 = loop.time();
  EXPECT_EQ(co_await read_error(reader), 408);
  EXPECT_EQ(loop.time() - t0, 30s);
  feeder.cancel();
}

QILOOP_TEST_VT(HttpReadRequest, AnIdleStreamIs408AfterTheRequestTimeoutAndATimelyRequestIsNot) {
  auto& loop = qi::get_running_loop();
  qi::StreamReader idle;
  const auto t0 = loop.time();
  EXPECT_EQ(co_await read_error(idle), 408);
  EXPECT_EQ(loop.time() - t0, 30s);
  qi::StreamReader slow_but_in_time;
  auto feed_late = [](qi::StreamReader r) -> qi::Coro<void> {
    co_await qi::sleep(29s);
    r.feed_data("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  };
  auto feeder = qi::create_task(feed_late(slow_but_in_time));
  std::optional<http::Request> r = co_await http::read_request(slow_but_in_time, http::Limits{});
  EXPECT_TRUE(r.has_value());
  co_await feeder;
}

// --- serve_connection and Router over a socket ----------------------------------

namespace {

struct Ends {
  qi::StreamReader reader;
  qi::StreamWriter writer;
};

qi::Coro<std::pair<Ends, Ends>> socket_pair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw qi::OSError(errno, "socketpair");
  auto [ra, wa] = co_await qi::open_connection(sv[0]);
  auto [rb, wb] = co_await qi::open_connection(sv[1]);
  co_return std::pair<Ends, Ends>{Ends{ra, wa}, Ends{rb, wb}};
}

// A router with the routes the tests use; `sent` counts /bye's on_sent.
http::Router make_router(int& sent) {
  http::Router router;
  router.get("/", [](const http::Request&, const http::Target&) -> qi::Coro<http::Response> {
    co_return http::Response::html("<p>home</p>");
  });
  router.get("/a b", [](const http::Request&, const http::Target& t) -> qi::Coro<http::Response> {
    co_return http::Response::text(200, "path " + t.path + " query " + t.query);
  });
  router.route("POST", "/echo", [](const http::Request& r, const http::Target&) -> qi::Coro<http::Response> {
    co_await qi::sleep(10ms);
    co_return http::Response::text(200, r.body);
  });
  router.get("/fail", [](const http::Request&, const http::Target&) -> qi::Coro<http::Response> {
    throw std::runtime_error("handler bug");
    co_return http::Response{};
  });
  router.get("/bye", [&sent](const http::Request&, const http::Target&) -> qi::Coro<http::Response> {
    http::Response r = http::Response::text(200, "goodbye");
    r.close = true;
    r.on_sent = [&sent] { ++sent; };
    co_return r;
  });
  return router;
}

// Everything the server sends until it closes the connection.
qi::Coro<std::string> exchange(qi::StreamWriter client_writer, qi::StreamReader client_reader, std::string request) {
  client_writer.write(bytes(request));
  co_await client_writer.drain();
  QByteArray all = co_await client_reader.read();
  client_writer.close();  // the server lingers until the client closes
  co_return all.toStdString();
}

struct Served {
  std::string reply;       // everything the client received
  std::string failure;     // what serve_connection threw ("" when nothing)
};

qi::Coro<Served> serve_one(http::Router& router, std::string request) {
  auto [server, client] = co_await socket_pair();
  auto serving = qi::create_task(http::serve_connection(server.reader, server.writer, router.handler()));
  Served out;
  out.reply = co_await qi::wait_for(exchange(client.writer, client.reader, std::move(request)), 5s);
  try {
    co_await serving;
  } catch (const std::exception& e) {
    out.failure = e.what();
  }
  co_return out;
}

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (std::size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace

QILOOP_TEST_MODES(HttpServe, KeepAliveCarriesPipelinedRequestsUntilConnectionClose) {
  int sent = 0;
  http::Router router = make_router(sent);
  Served s = co_await serve_one(router,
                                "GET / HTTP/1.1\r\nHost: x\r\n\r\n"
                                "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nping"
                                "GET /a%20b?q=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                                "GET / HTTP/1.1\r\nHost: x\r\n\r\n");  // after close: never answered
  EXPECT_EQ(s.failure, "");
  EXPECT_EQ(count(s.reply, "HTTP/1.1 200 OK\r\n"), 3) << s.reply;
  EXPECT_EQ(count(s.reply, "Connection: keep-alive\r\n"), 2) << s.reply;
  EXPECT_NE(s.reply.find("<p>home</p>"), std::string::npos);
  EXPECT_NE(s.reply.find("\r\n\r\nping"), std::string::npos);
  EXPECT_TRUE(s.reply.ends_with("Connection: close\r\n\r\npath /a b query q=1")) << s.reply;
}

QILOOP_TEST_MODES(HttpServe, Http10ClosesAfterOneResponse) {
  int sent = 0;
  http::Router router = make_router(sent);
  Served s = co_await serve_one(router, "GET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n");
  EXPECT_EQ(count(s.reply, "HTTP/1.1 200 OK"), 1) << s.reply;
  EXPECT_NE(s.reply.find("Connection: close\r\n"), std::string::npos);
}

QILOOP_TEST_MODES(HttpServe, HeadGetsTheFieldsWithoutTheBody) {
  int sent = 0;
  http::Router router = make_router(sent);
  Served s = co_await serve_one(router, "HEAD / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(s.reply.starts_with("HTTP/1.1 200 OK\r\n")) << s.reply;
  EXPECT_NE(s.reply.find("Content-Length: 11\r\n"), std::string::npos) << s.reply;
  EXPECT_TRUE(s.reply.ends_with("\r\n\r\n")) << s.reply;
}

QILOOP_TEST_MODES(HttpServe, UnknownPathsAre404AndWrongMethods405WithAllow) {
  int sent = 0;
  http::Router router = make_router(sent);
  Served s = co_await serve_one(router,
                                "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"
                                "DELETE /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_NE(s.reply.find("HTTP/1.1 404 Not Found\r\n"), std::string::npos) << s.reply;
  EXPECT_NE(s.reply.find("nothing is served at /nope"), std::string::npos) << s.reply;
  EXPECT_NE(s.reply.find("HTTP/1.1 405 Method Not Allowed\r\n"), std::string::npos) << s.reply;
  EXPECT_NE(s.reply.find("Allow: POST\r\n"), std::string::npos) << s.reply;
}

QILOOP_TEST_MODES(HttpServe, TraversalAndMalformedRequestsAre400AndClose) {
  int sent = 0;
  http::Router router = make_router(sent);
  Served traversal = co_await serve_one(router, "GET /%2e%2e/etc/passwd HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(traversal.reply.starts_with("HTTP/1.1 400 Bad Request\r\n")) << traversal.reply;
  EXPECT_EQ(count(traversal.reply, "HTTP/1.1"), 1) << traversal.reply;
  // Decoded once: %252e%252e is the segment "%2e%2e", a name no route has
  // (404), never "..".
  Served twice = co_await serve_one(router, "GET /%252e%252e/etc/passwd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_TRUE(twice.reply.starts_with("HTTP/1.1 404 Not Found\r\n")) << twice.reply;
  EXPECT_NE(twice.reply.find("nothing is served at /%2e%2e/etc/passwd"), std::string::npos) << twice.reply;
  Served malformed = co_await serve_one(router, "GET / HTTP/1.1\nHost: x\r\n\r\n");
  EXPECT_TRUE(malformed.reply.starts_with("HTTP/1.1 400 Bad Request\r\n")) << malformed.reply;
  EXPECT_NE(malformed.reply.find("Connection: close\r\n"), std::string::npos);
  EXPECT_NE(malformed.reply.find("bare LF"), std::string::npos) << malformed.reply;
  EXPECT_EQ(malformed.failure, "");
}

QILOOP_TEST_MODES(HttpServe, AFailingHandlerGets500AndItsExceptionGoesOn) {
  int sent = 0;
  http::Router router = make_router(sent);
  Served s = co_await serve_one(router, "GET /fail HTTP/1.1\r\nHost: x\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(s.reply.starts_with("HTTP/1.1 500 Internal Server Error\r\n")) << s.reply;
  EXPECT_EQ(count(s.reply, "HTTP/1.1"), 1) << s.reply;
  EXPECT_EQ(s.failure, "handler bug");
}

QILOOP_TEST_MODES(HttpServe, OnSentRunsOnceTheResponseIsWritten) {
  int sent = 0;
  http::Router router = make_router(sent);
  Served s = co_await serve_one(router, "GET /bye HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_TRUE(s.reply.ends_with("Connection: close\r\n\r\ngoodbye")) << s.reply;
  EXPECT_EQ(sent, 1);
}

QILOOP_TEST_MODES(HttpServe, AfterAnErrorTheServerReadsOnUntilTheClientCloses) {
  // The client sends more after a bad request: closing at once, with those
  // bytes unread, would reset the connection and could lose the 400.
  int sent = 0;
  http::Router router = make_router(sent);
  auto [server, client] = co_await socket_pair();
  auto serving = qi::create_task(http::serve_connection(server.reader, server.writer, router.handler()));
  client.writer.write("BAD\r\n\r\n");
  co_await client.writer.drain();
  const QByteArray status_line = co_await qi::wait_for(client.reader.readuntil("\r\n"), 5s);
  EXPECT_EQ(status_line, "HTTP/1.1 400 Bad Request\r\n");
  const QByteArray rest = co_await qi::wait_for(client.reader.read(), 5s);  // EOF: the server half-closed
  EXPECT_TRUE(rest.endsWith("\n")) << rest.toStdString();
  EXPECT_FALSE(serving.done());  // still reading what the client sends
  client.writer.write(QByteArray(300 * 1024, 'x'));
  co_await client.writer.drain();
  client.writer.close();
  co_await qi::wait_for(std::move(serving), 5s);
}

QILOOP_TEST_MODES(HttpServe, AClientThatVanishesEndsTheConnectionQuietly) {
  int sent = 0;
  http::Router router = make_router(sent);
  auto [server, client] = co_await socket_pair();
  auto serving = qi::create_task(http::serve_connection(server.reader, server.writer, router.handler()));
  client.writer.write("GET / HTTP/1.1\r\nHost: x\r\n\r\nPOST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\nping");
  client.writer.transport().abort();  // a reset while /echo sleeps
  co_await qi::wait_for(std::move(serving), 5s);  // no exception
}

QILOOP_TEST_MODES_VT(HttpServe, ASlowlorisGets408AndTheConnectionClosed) {
  auto& loop = qi::get_running_loop();
  int sent = 0;
  http::Router router = make_router(sent);
  auto [server, client] = co_await socket_pair();
  auto serving = qi::create_task(http::serve_connection(server.reader, server.writer, router.handler()));
  const auto t0 = loop.time();
  client.writer.write("GET / HTTP/1.1\r\nHo");  // and nothing more
  co_await client.writer.drain();
  const QByteArray status_line = co_await qi::wait_for(client.reader.readuntil("\r\n"), 60s);
  EXPECT_EQ(status_line, "HTTP/1.1 408 Request Timeout\r\n");
  EXPECT_EQ(loop.time() - t0, 30s);
  client.writer.close();
  co_await qi::wait_for(std::move(serving), 10s);
}

QILOOP_TEST_MODES_VT(HttpServe, AClientThatNeverReadsIsAbortedAfterTheSendTimeout) {
  // Pipelined requests for a large response, nothing read: the server's
  // write buffer stays over its high-water mark. Memory stays bounded
  // (drain) and the connection must not be held for ever.
  http::Router router;
  router.get("/big", [](const http::Request&, const http::Target&) -> qi::Coro<http::Response> {
    co_return http::Response::text(200, std::string(4 << 20, 'b'));
  });
  auto [server, client] = co_await socket_pair();
  auto serving = qi::create_task(http::serve_connection(server.reader, server.writer, router.handler()));
  std::string requests;
  for (int i = 0; i < 4; ++i) requests += "GET /big HTTP/1.1\r\nHost: x\r\n\r\n";
  client.writer.write(bytes(requests));
  auto& loop = qi::get_running_loop();
  const auto t0 = loop.time();
  bool ended = true;
  try {
    co_await qi::wait_for(std::move(serving), 120s);
  } catch (const qi::TimeoutError&) {
    ended = false;
  }
  EXPECT_TRUE(ended) << "serve_connection still waits for a client that never reads";
  EXPECT_LE(loop.time() - t0, 31s);
  client.writer.transport().abort();
}

QILOOP_TEST_MODES(HttpServe, AFailingHandlersExceptionGoesOnWhenTheClientIsGone) {
  http::Router router;
  router.get("/slow-fail", [](const http::Request&, const http::Target&) -> qi::Coro<http::Response> {
    co_await qi::sleep(200ms);
    throw std::runtime_error("handler bug after the client left");
    co_return http::Response{};
  });
  auto [server, client] = co_await socket_pair();
  auto serving = qi::create_task(http::serve_connection(server.reader, server.writer, router.handler()));
  client.writer.write("GET /slow-fail HTTP/1.1\r\nHost: x\r\n\r\n");
  co_await client.writer.drain();
  client.writer.transport().abort();  // gone before the handler fails: the 500 cannot be written
  std::string failure;
  try {
    co_await qi::wait_for(std::move(serving), 5s);
  } catch (const std::runtime_error& e) {
    failure = e.what();
  }
  EXPECT_EQ(failure, "handler bug after the client left");
}

QILOOP_TEST(HttpRouter, RefusesPathsThatCannotMatch) {
  http::Router router;
  const http::Router::RouteHandler h = [](const http::Request&, const http::Target&) -> qi::Coro<http::Response> {
    co_return http::Response{};
  };
  EXPECT_THROW(router.get("relative", h), std::invalid_argument);
  EXPECT_THROW(router.get("/x", nullptr), std::invalid_argument);
  co_return;
}
