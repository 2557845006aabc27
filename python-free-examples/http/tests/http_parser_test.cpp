// httpkit's pure parts: the request parser (grammar, limits at their
// boundaries, pipelining, bytes cut anywhere), the response serializer and
// the request-target checks (decoding, no path traversal).
#include "http.h"

#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

namespace {

// Every request the parser gives for data fed in one piece.
std::vector<http::Request> parse_all(const std::string& data, http::Limits limits = {}) {
  http::RequestParser parser(limits);
  parser.feed(data);
  std::vector<http::Request> got;
  while (std::optional<http::Request> r = parser.next()) got.push_back(std::move(*r));
  return got;
}

// The status of the http::Error parsing data throws; 0 when none.
int error_status(const std::string& data, http::Limits limits = {}) {
  http::RequestParser parser(limits);
  parser.feed(data);
  try {
    while (parser.next()) {
    }
  } catch (const http::Error& e) {
    return e.status();
  }
  return 0;
}

bool same(const http::Request& a, const http::Request& b) {
  if (a.method != b.method || a.target != b.target || a.version != b.version || a.body != b.body) return false;
  if (a.headers.size() != b.headers.size()) return false;
  for (std::size_t i = 0; i < a.headers.size(); ++i)
    if (a.headers[i].name != b.headers[i].name || a.headers[i].value != b.headers[i].value) return false;
  return true;
}

const std::string kThree =
    "GET /index.html?x=1 HTTP/1.1\r\nHost: localhost\r\nUser-Agent: test\r\n\r\n"
    "POST /submit HTTP/1.1\r\nHost: localhost\r\nContent-Length: 12\r\nContent-Type: text/plain\r\n\r\nhello\r\nworld"
    "HEAD / HTTP/1.0\r\n\r\n";

std::string line_of(std::size_t n, char c = 'a') { return std::string(n, c); }

}  // namespace

// --- The grammar ---------------------------------------------------------------

TEST(HttpParser, ParsesARequestLineFieldsAndABody) {
  std::vector<http::Request> got = parse_all(kThree);
  ASSERT_EQ(got.size(), 3u);
  EXPECT_EQ(got[0].method, "GET");
  EXPECT_EQ(got[0].target, "/index.html?x=1");
  EXPECT_EQ(got[0].version, "HTTP/1.1");
  ASSERT_EQ(got[0].headers.size(), 2u);
  EXPECT_EQ(got[0].headers[1].name, "User-Agent");
  EXPECT_EQ(got[0].header("user-agent"), "test");
  EXPECT_EQ(got[0].header("USER-AGENT"), "test");
  EXPECT_EQ(got[0].header("Accept"), std::nullopt);
  EXPECT_TRUE(got[0].body.empty());
  EXPECT_EQ(got[1].method, "POST");
  EXPECT_EQ(got[1].body, "hello\r\nworld");
  EXPECT_EQ(got[2].method, "HEAD");
  EXPECT_EQ(got[2].version, "HTTP/1.0");
  EXPECT_TRUE(got[2].headers.empty());
}

TEST(HttpParser, FieldValuesLoseTheirSurroundingWhitespaceOnly) {
  std::vector<http::Request> got = parse_all("GET / HTTP/1.1\r\nHost:x\r\nX-A: \t a  b \t\r\nX-Empty:\r\n\r\n");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].header("host"), "x");
  EXPECT_EQ(got[0].header("x-a"), "a  b");
  EXPECT_EQ(got[0].header("x-empty"), "");
}

TEST(HttpParser, EmptyLinesBeforeARequestAreSkipped) {
  std::vector<http::Request> got = parse_all("\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].target, "/");
}

TEST(HttpParser, BytesAfterARequestStayForTheNext) {
  http::RequestParser parser;
  parser.feed("GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHo");
  std::optional<http::Request> a = parser.next();
  ASSERT_TRUE(a);
  EXPECT_EQ(a->target, "/a");
  EXPECT_EQ(parser.next(), std::nullopt);
  EXPECT_TRUE(parser.started());
  parser.feed("st: x\r\n\r\n");
  std::optional<http::Request> b = parser.next();
  ASSERT_TRUE(b);
  EXPECT_EQ(b->target, "/b");
  EXPECT_FALSE(parser.started());
  EXPECT_EQ(parser.buffered(), 0u);
}

TEST(HttpParser, StartedIsFalseUntilAByteOfARequestLineArrives) {
  http::RequestParser parser;
  EXPECT_FALSE(parser.started());
  parser.feed("\r\n\r");
  EXPECT_EQ(parser.next(), std::nullopt);
  EXPECT_FALSE(parser.started());
  parser.feed("\nG");
  EXPECT_EQ(parser.next(), std::nullopt);
  EXPECT_TRUE(parser.started());
}

TEST(HttpParser, BodyRemainingCountsWhatTheBodyStillNeeds) {
  http::RequestParser parser;
  parser.feed("PUT /x HTTP/1.1\r\nHost: x\r\n");
  EXPECT_EQ(parser.next(), std::nullopt);
  EXPECT_EQ(parser.body_remaining(), std::nullopt);
  parser.feed("Content-Length: 10\r\n\r\n1234");
  EXPECT_EQ(parser.next(), std::nullopt);
  EXPECT_EQ(parser.body_remaining(), 6u);
  parser.feed("567890");
  std::optional<http::Request> r = parser.next();
  ASSERT_TRUE(r);
  EXPECT_EQ(r->body, "1234567890");
  EXPECT_EQ(parser.body_remaining(), std::nullopt);
}

TEST(HttpParser, ContentLengthRepeatedWithTheSameValueIsOne) {
  std::vector<http::Request> got = parse_all("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\ncontent-length: 3\r\n\r\nabc");
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].body, "abc");
}

TEST(HttpParser, Http10NeedsNoHost) {
  EXPECT_EQ(parse_all("GET / HTTP/1.0\r\n\r\n").size(), 1u);
  EXPECT_EQ(parse_all("GET / HTTP/1.1\r\nHost: x\r\n\r\n").size(), 1u);
}

TEST(HttpParser, KeepAliveFollowsTheVersionAndTheConnectionField) {
  auto keep = [](const std::string& data) { return parse_all(data).at(0).keep_alive(); };
  EXPECT_TRUE(keep("GET / HTTP/1.1\r\nHost: x\r\n\r\n"));
  EXPECT_FALSE(keep("GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"));
  EXPECT_FALSE(keep("GET / HTTP/1.1\r\nHost: x\r\nConnection: Keep-Alive, CLOSE\r\n\r\n"));
  EXPECT_FALSE(keep("GET / HTTP/1.0\r\n\r\n"));
  EXPECT_TRUE(keep("GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n"));
  EXPECT_TRUE(keep("GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n\r\n"));
}

// --- Bytes cut anywhere --------------------------------------------------------

TEST(HttpParser, RequestsCutAtEveryByteParseTheSame) {
  const std::vector<http::Request> want = parse_all(kThree);
  for (std::size_t cut = 0; cut <= kThree.size(); ++cut) {
    http::RequestParser parser;
    std::vector<http::Request> got;
    for (std::string_view piece : {std::string_view(kThree).substr(0, cut), std::string_view(kThree).substr(cut)}) {
      parser.feed(piece);
      while (std::optional<http::Request> r = parser.next()) got.push_back(std::move(*r));
    }
    ASSERT_EQ(got.size(), want.size()) << "cut at " << cut;
    for (std::size_t i = 0; i < want.size(); ++i) EXPECT_TRUE(same(got[i], want[i])) << "cut at " << cut << ", request " << i;
  }
}

TEST(HttpParser, RequestsInRandomChunksParseTheSame) {
  std::string stream;
  for (int i = 0; i < 20; ++i) stream += kThree;
  const std::vector<http::Request> want = parse_all(stream);
  ASSERT_EQ(want.size(), 60u);
  std::mt19937 random(20240611);
  for (int round = 0; round < 300; ++round) {
    http::RequestParser parser;
    std::vector<http::Request> got;
    std::size_t at = 0;
    while (at < stream.size()) {
      const std::size_t n = std::uniform_int_distribution<std::size_t>(1, round % 2 ? 8 : 200)(random);
      parser.feed(std::string_view(stream).substr(at, n));
      at += n;
      while (std::optional<http::Request> r = parser.next()) got.push_back(std::move(*r));
    }
    ASSERT_EQ(got.size(), want.size()) << "round " << round;
    for (std::size_t i = 0; i < want.size(); ++i) ASSERT_TRUE(same(got[i], want[i])) << "round " << round << ", request " << i;
    EXPECT_EQ(parser.buffered(), 0u);
  }
}

// --- Malformed requests --------------------------------------------------------

struct Malformed {
  const char* what;
  std::string data;
  int status;
};

TEST(HttpParser, MalformedRequestsAreRefusedWithTheirStatus) {
  const std::vector<Malformed> cases = {
      {"bare LF ending the request line", "GET / HTTP/1.1\nHost: x\r\n\r\n", 400},
      {"bare LF ending a field", "GET / HTTP/1.1\r\nHost: x\n\r\n", 400},
      {"bare CR inside a field", "GET / HTTP/1.1\r\nHost: x\ry\r\n\r\n", 400},
      {"two spaces", "GET  / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"no version", "GET /\r\nHost: x\r\n\r\n", 400},
      {"a fourth word", "GET / HTTP/1.1 x\r\nHost: x\r\n\r\n", 400},
      {"empty method", " / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"method not a token", "G(T / HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"tab in the target", "GET /a\tb HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"non-ASCII target", "GET /\xc3\xa9 HTTP/1.1\r\nHost: x\r\n\r\n", 400},
      {"lower-case version", "GET / http/1.1\r\nHost: x\r\n\r\n", 400},
      {"version with two minor digits", "GET / HTTP/1.10\r\nHost: x\r\n\r\n", 400},
      {"version without minor", "GET / HTTP/1\r\nHost: x\r\n\r\n", 400},
      {"HTTP/2.0", "GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505},
      {"HTTP/0.9", "GET / HTTP/0.9\r\n\r\n", 505},
      {"no Host in HTTP/1.1", "GET / HTTP/1.1\r\n\r\n", 400},
      {"two Hosts", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},
      {"obsolete folding", "GET / HTTP/1.1\r\nHost: x\r\nX-A: a\r\n  b\r\n\r\n", 400},
      {"space before the colon", "GET / HTTP/1.1\r\nHost : x\r\n\r\n", 400},
      {"no colon", "GET / HTTP/1.1\r\nHost x\r\n\r\n", 400},
      {"empty field name", "GET / HTTP/1.1\r\n: x\r\nHost: x\r\n\r\n", 400},
      {"NUL in a value", std::string("GET / HTTP/1.1\r\nHost: x\0y\r\n\r\n", 29), 400},
      {"DEL in a value", "GET / HTTP/1.1\r\nHost: x\x7fy\r\n\r\n", 400},
      {"Content-Length not a number", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1a\r\n\r\n", 400},
      {"Content-Length negative", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n", 400},
      {"Content-Length with a sign", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +1\r\n\r\n", 400},
      {"Content-Length empty", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length:\r\n\r\n", 400},
      {"Content-Length as a list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 1\r\n\r\n", 400},
      {"Content-Lengths disagree", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", 400},
      {"chunked", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
      {"chunked beside Content-Length",
       "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", 501},
      {"Content-Length past 64 bits", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413},
  };
  for (const Malformed& c : cases) EXPECT_EQ(error_status(c.data), c.status) << c.what;
}

TEST(HttpParser, AnErrorSaysWhyAndStaysForEveryLaterCall) {
  http::RequestParser parser;
  parser.feed("GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n");
  try {
    (void)parser.next();
    ADD_FAILURE() << "no error";
  } catch (const http::Error& e) {
    EXPECT_EQ(e.status(), 501);
    EXPECT_NE(e.reason().find("Content-Length"), std::string::npos) << e.reason();
    EXPECT_EQ(std::string(e.what()).rfind("501 Not Implemented: ", 0), 0u) << e.what();
  }
  parser.feed("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_THROW((void)parser.next(), http::Error);
}

// --- Limits at their boundaries ------------------------------------------------

TEST(HttpParser, ARequestLineOfExactlyTheLimitIsRead) {
  http::Limits limits;
  limits.max_request_line = 64;
  const std::string head = "GET /";
  const std::string tail = " HTTP/1.1";
  const std::string line = head + line_of(64 - head.size() - tail.size()) + tail;
  ASSERT_EQ(line.size(), 64u);
  EXPECT_EQ(parse_all(line + "\r\nHost: x\r\n\r\n", limits).size(), 1u);
  const std::string longer = head + line_of(65 - head.size() - tail.size()) + tail;
  EXPECT_EQ(error_status(longer + "\r\nHost: x\r\n\r\n", limits), 414);
}

TEST(HttpParser, AnOverlongRequestLineIsRefusedBeforeItsEndArrives) {
  http::Limits limits;
  limits.max_request_line = 64;
  http::RequestParser parser(limits);
  parser.feed("GET /" + line_of(59) + "\r");  // 65 bytes: a 64-byte line whose LF is still to come
  EXPECT_EQ(parser.next(), std::nullopt);
  parser.feed("x");  // 66 bytes and no LF: the line is at least 65 bytes long
  try {
    (void)parser.next();
    ADD_FAILURE() << "no error";
  } catch (const http::Error& e) {
    EXPECT_EQ(e.status(), 414);
  }
}

TEST(HttpParser, AHeaderSectionOfExactlyTheLimitIsRead) {
  http::Limits limits;
  limits.max_header_bytes = 64;
  // "Host: x\r\n" (9) + "X-Pad: " (7) + pad + "\r\n" (2) = 64
  const std::string pad = line_of(64 - 9 - 7 - 2);
  const std::string request = "GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + pad + "\r\n\r\n";
  EXPECT_EQ(parse_all(request, limits).size(), 1u);
  EXPECT_EQ(error_status("GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + pad + "a\r\n\r\n", limits), 431);
}

TEST(HttpParser, AnOverlongHeaderSectionIsRefusedBeforeItsEndArrives) {
  http::Limits limits;
  limits.max_header_bytes = 64;
  http::RequestParser parser(limits);
  parser.feed("GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + line_of(64 - 9 - 7 - 2) + "\r");
  EXPECT_EQ(parser.next(), std::nullopt);  // the section may still be exactly 64 bytes
  parser.feed("\n");
  EXPECT_EQ(parser.next(), std::nullopt);  // it is, and only the empty line may follow
  parser.feed("\r");
  EXPECT_EQ(parser.next(), std::nullopt);
  http::RequestParser over(limits);
  over.feed("GET / HTTP/1.1\r\nHost: x\r\nX-Pad: " + line_of(64 - 9 - 7 - 2) + "\r\nX");
  over.feed("-");  // a field line starts where no room is left
  EXPECT_THROW((void)over.next(), http::Error);
}

TEST(HttpParser, TheFieldCountLimitIsInclusive) {
  http::Limits limits;
  limits.max_header_count = 5;
  std::string fields = "Host: x\r\n";
  for (int i = 1; i < 5; ++i) fields += "X-" + std::to_string(i) + ": v\r\n";
  EXPECT_EQ(parse_all("GET / HTTP/1.1\r\n" + fields + "\r\n", limits).size(), 1u);
  EXPECT_EQ(error_status("GET / HTTP/1.1\r\n" + fields + "X-6: v\r\n\r\n", limits), 431);
}

TEST(HttpParser, TheBodyLimitIsInclusiveAndCheckedBeforeTheBody) {
  http::Limits limits;
  limits.max_body = 16;
  EXPECT_EQ(parse_all("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 16\r\n\r\n" + line_of(16), limits).at(0).body,
            line_of(16));
  http::RequestParser parser(limits);
  parser.feed("POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 17\r\n\r\n");  // no body byte yet
  try {
    (void)parser.next();
    ADD_FAILURE() << "no error";
  } catch (const http::Error& e) {
    EXPECT_EQ(e.status(), 413);
  }
}

// --- Responses -----------------------------------------------------------------

TEST(HttpResponse, SerializesStatusFieldsLengthConnectionAndBody) {
  http::Response r = http::Response::json("{\"n\":1}");
  r.set("Cache-Control", "no-store");
  EXPECT_EQ(http::serialize(r, true, false),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"
            "Content-Length: 7\r\nConnection: keep-alive\r\n\r\n{\"n\":1}");
  EXPECT_EQ(http::serialize(r, false, true),
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nCache-Control: no-store\r\n"
            "Content-Length: 7\r\nConnection: close\r\n\r\n");
}

TEST(HttpResponse, SetReplacesAFieldWhateverItsCase) {
  http::Response r = http::Response::text(200, "x");
  r.set("content-type", "text/css");
  ASSERT_EQ(r.headers.size(), 1u);
  EXPECT_EQ(r.headers[0].value, "text/css");
}

TEST(HttpResponse, RefusesFieldsThatWouldSplitTheResponse) {
  http::Response r = http::Response::text(200, "x");
  r.set("X-A", "a\r\nSet-Cookie: evil");
  EXPECT_THROW((void)http::serialize(r, true, false), std::invalid_argument);
  http::Response bad_name = http::Response::text(200, "x");
  bad_name.set("X A", "a");
  EXPECT_THROW((void)http::serialize(bad_name, true, false), std::invalid_argument);
  http::Response length = http::Response::text(200, "x");
  length.set("Content-Length", "5");
  EXPECT_THROW((void)http::serialize(length, true, false), std::invalid_argument);
}

TEST(HttpResponse, NoContentHasNoLengthAndNoBody) {
  http::Response r;
  r.status = 204;
  EXPECT_EQ(http::serialize(r, true, false), "HTTP/1.1 204 No Content\r\nConnection: keep-alive\r\n\r\n");
  r.body = "x";
  EXPECT_THROW((void)http::serialize(r, true, false), std::invalid_argument);
}

TEST(HttpResponse, ErrorsOfTheStreamsFramingCloseTheConnection) {
  for (int status : {400, 413, 414, 431, 501, 505}) EXPECT_TRUE(http::Response::error(status, "").close) << status;
  for (int status : {404, 405, 500}) EXPECT_FALSE(http::Response::error(status, "").close) << status;
  EXPECT_EQ(http::Response::error(404, "nothing at /x").body, "404 Not Found\nnothing at /x\n");
}

// --- Targets -------------------------------------------------------------------

TEST(HttpTarget, DecodesThePathAndKeepsTheQueryEncoded) {
  http::Target t = http::parse_target("/files/a%20b+c.txt?x=1&y=%C3%A9+z");
  EXPECT_EQ(t.path, "/files/a b+c.txt");
  EXPECT_EQ(t.segments, (std::vector<std::string>{"files", "a b+c.txt"}));
  EXPECT_EQ(t.query, "x=1&y=%C3%A9+z");
  EXPECT_EQ(http::query_param(t.query, "y"), "\xc3\xa9 z");
  EXPECT_EQ(http::query_param(t.query, "x"), "1");
  EXPECT_EQ(http::query_param(t.query, "z"), std::nullopt);
  EXPECT_EQ(http::query_param("flag&a=b", "flag"), "");
  EXPECT_EQ(http::parse_target("/").segments, (std::vector<std::string>{""}));
  EXPECT_EQ(http::parse_target("/a//b/").path, "/a//b/");
}

TEST(HttpTarget, NoPathTraversalGetsThrough) {
  const std::vector<std::string> refused = {
      "/..", "/../etc/passwd", "/a/../b", "/a/..", "/.", "/a/./b", "/%2e%2e/x", "/%2E%2E/x", "/.%2e/x", "/%2e./x",
      "/a/%2e", "/..%2fetc", "/a%2F..%2Fb", "/a%2fb", "/a%5c..%5cb", "/a\\..", "/a%00b"};
  for (const std::string& target : refused) {
    try {
      (void)http::parse_target(target);
      ADD_FAILURE() << target << " was accepted";
    } catch (const http::Error& e) {
      EXPECT_EQ(e.status(), 400) << target;
    }
  }
  EXPECT_EQ(http::parse_target("/a/...b/..c").path, "/a/...b/..c");  // dots inside a name are a name
  // Decoded once: a double-encoded ".." is the name "%2e%2e" (a 404 at the
  // router), not a step up.
  const http::Target twice = http::parse_target("/%252e%252e/etc");
  EXPECT_EQ(twice.segments, (std::vector<std::string>{"%2e%2e", "etc"}));
  EXPECT_EQ(twice.path, "/%2e%2e/etc");
}

TEST(HttpTarget, MalformedEscapesAndOtherFormsAreRefused) {
  for (const std::string target : {"/%", "/%4", "/%zz", "/%4g", "a/b", "*", "http://host/", "/a#frag", ""})
    EXPECT_THROW((void)http::parse_target(target), http::Error) << target;
  EXPECT_THROW((void)http::query_param("a=%zz", "a"), http::Error);
}

TEST(HttpTarget, HtmlEscapeCoversTextAndAttributes) {
  EXPECT_EQ(http::html_escape("<a href=\"x\">&'</a>"), "&lt;a href=&quot;x&quot;&gt;&amp;&#39;&lt;/a&gt;");
}
