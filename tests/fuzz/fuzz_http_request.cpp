// fuzz_http_request — http::RequestParser (python-free-examples/http,
// httpkit), with each request's target through http::parse_target.
//
// The input: [limits code][limit bytes: 4, when the code is under 128]
//            [script length S][script: S bytes][data: the rest].
// The data is parsed three times, each with a fresh parser:
// A. fed at once, then next() until it needs more or throws;
// B. fed in the pieces the script chooses (1..256 bytes; the rest at once
//    when it is used up), next() drained after each;
// C. fed as read_request (http_stream.h) feeds it: whole lines until the
//    header section ends, then exactly body_remaining() bytes.
// The three must give the same requests and the same http::Error (status
// and reason): a split never changes what the bytes mean. Checked besides:
// - an error is sticky: next() throws it again;
// - every request is whole: a body of exactly its Content-Length, an
//   HTTP/1.1 request with one Host field, a method that is a token, the
//   limits respected;
// - C never feeds past a request's end (body_remaining()'s contract):
//   nothing is buffered when a request comes out;
// - parse_target either throws http::Error 400 or gives a path that starts
//   with '/', is "/" + its segments joined, and whose segments are never
//   "." or ".." nor hold '/', '\\' or NUL (safe to join under a root).
#include "fuzz_kit.h"

#include "http_request.h"
#include "http_target.h"

#include <algorithm>
#include <string>
#include <string_view>
#include <vector>

namespace {

bool is_token(std::string_view s) {
  static constexpr std::string_view extra = "!#$%&'*+-.^_`|~";
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
           extra.find(c) != std::string_view::npos;
  });
}

// The target's checks; its outcome as text.
std::string check_target(const std::string& raw) {
  http::Target t;
  try {
    t = http::parse_target(raw);
  } catch (const http::Error& e) {
    FUZZ_CHECK(e.status() == 400, "parse_target threw another status than 400");
    return "target error " + e.reason();
  }
  FUZZ_CHECK(!t.path.empty() && t.path.front() == '/', "a parsed path that does not start with '/'");
  FUZZ_CHECK(!t.segments.empty(), "a parsed path without segments");
  std::string joined;
  for (const std::string& s : t.segments) {
    FUZZ_CHECK(s != "." && s != "..", "a '.' or '..' segment passed parse_target");
    FUZZ_CHECK(s.find_first_of(std::string_view("/\\\0", 3)) == std::string::npos,
               "a segment holding '/', '\\\\' or NUL passed parse_target");
    joined += '/';
    joined += s;
  }
  FUZZ_CHECK(joined == t.path, "the path is not '/' + its segments joined");
  std::string out = "target " + t.path + " ? " + t.query;
  try {
    if (std::optional<std::string> v = http::query_param(t.query, "a")) out += " a=" + *v;
  } catch (const http::Error& e) {
    FUZZ_CHECK(e.status() == 400, "query_param threw another status than 400");
    out += " query error";
  }
  return out;
}

// A request, checked, as text (what the three runs compare).
std::string render(const http::Request& r, const http::Limits& limits) {
  FUZZ_CHECK(is_token(r.method), "a method that is not a token");
  FUZZ_CHECK(r.version.size() == 8 && r.version.starts_with("HTTP/1."), "a version other than HTTP/1.x");
  FUZZ_CHECK(r.headers.size() <= limits.max_header_count, "more fields than max_header_count");
  FUZZ_CHECK(r.body.size() <= limits.max_body, "a body over max_body");
  if (std::optional<std::string_view> cl = r.header("content-length")) {
    std::string_view digits = *cl;
    FUZZ_CHECK(!digits.empty() && digits.find_first_not_of("0123456789") == std::string_view::npos,
               "a Content-Length that is not 1*DIGIT was accepted");
    while (digits.size() > 1 && digits.front() == '0') digits.remove_prefix(1);
    FUZZ_CHECK(digits == std::to_string(r.body.size()), "the body is not Content-Length bytes");
  } else {
    FUZZ_CHECK(r.body.empty(), "a body without Content-Length");
  }
  if (r.version == "HTTP/1.1") {
    const auto hosts = std::count_if(r.headers.begin(), r.headers.end(),
                                     [](const http::Header& h) { return http::iequals(h.name, "host"); });
    FUZZ_CHECK(hosts == 1, "an HTTP/1.1 request without exactly one Host field");
  }
  std::string out = r.method + ' ' + r.target + ' ' + r.version + '\n';
  for (const http::Header& h : r.headers) out += h.name + ": " + h.value + '\n';
  out += "keep-alive " + std::to_string(r.keep_alive()) + '\n';
  out += check_target(r.target) + '\n';
  out += r.body;
  return out;
}

// One run's account: each request, then the error if any.
struct Run {
  std::vector<std::string> events;
  bool failed = false;
};

// next() until it needs more bytes or throws. A new request returns only
// when `on_request` says its buffer is as expected.
template <class OnRequest>
void drain(http::RequestParser& p, Run& run, const http::Limits& limits, OnRequest on_request) {
  while (!run.failed) {
    try {
      std::optional<http::Request> r = p.next();
      if (!r) return;
      run.events.push_back(render(*r, limits));
      on_request();
    } catch (const http::Error& e) {
      run.failed = true;
      run.events.push_back("error " + std::to_string(e.status()) + " " + e.reason());
      bool again = false;
      try {
        (void)p.next();
      } catch (const http::Error& e2) {
        again = e2.status() == e.status() && e2.reason() == e.reason();
      }
      FUZZ_CHECK(again, "after an http::Error, next() does not throw it again");
    }
  }
}

void none() {}

http::Limits decode_limits(fuzz::Input& in) {
  http::Limits limits;
  const std::uint8_t code = in.u8();
  if (code >= 128) return limits;  // the defaults
  limits.max_request_line = in.u8() % 64 + 1;
  limits.max_header_bytes = std::size_t{in.u8()} * 2;
  limits.max_header_count = in.u8() % 8;
  limits.max_body = in.u8();
  return limits;
}

void one_input(const std::uint8_t* bytes, std::size_t size) {
  fuzz::Input in(bytes, size);
  const http::Limits limits = decode_limits(in);
  fuzz::Input script = in.split(in.u8());
  const QByteArrayView rest = in.take(in.size());
  const std::string_view data(rest.data(), static_cast<std::size_t>(rest.size()));

  // A: at once.
  http::RequestParser a(limits);
  Run ra;
  a.feed(data);
  drain(a, ra, limits, none);

  // B: in the script's pieces.
  http::RequestParser b(limits);
  Run rb;
  for (std::size_t pos = 0; pos < data.size();) {
    // Once the script is used up, the rest at once.
    const std::size_t k =
        script.empty() ? data.size() - pos : std::min<std::size_t>(data.size() - pos, std::size_t{script.u8()} + 1);
    b.feed(data.substr(pos, k));
    pos += k;
    drain(b, rb, limits, none);
  }
  drain(b, rb, limits, none);

  // C: as read_request feeds it.
  http::RequestParser c(limits);
  Run rc;
  auto nothing_left = [&c] { FUZZ_CHECK(c.buffered() == 0, "fed past a request's end by body_remaining()"); };
  for (std::size_t pos = 0; pos < data.size() && !rc.failed;) {
    std::size_t k;
    if (std::optional<std::size_t> left = c.body_remaining()) {
      FUZZ_CHECK(*left > 0, "body_remaining() is 0 while next() has no request");
      k = std::min(*left, data.size() - pos);
    } else {
      const std::size_t nl = data.find('\n', pos);
      k = (nl == std::string_view::npos ? data.size() : nl + 1) - pos;
    }
    c.feed(data.substr(pos, k));
    pos += k;
    drain(c, rc, limits, nothing_left);
  }

  if (rb.events != ra.events || rc.events != ra.events) {
    fuzz::print_events("A (at once)", ra.events);
    fuzz::print_events("B (in pieces)", rb.events);
    fuzz::print_events("C (line by line)", rc.events);
  }
  FUZZ_CHECK(rb.events == ra.events, "fed in pieces, the parser gives other requests or errors than fed at once");
  FUZZ_CHECK(rc.events == ra.events, "fed line by line, the parser gives other requests or errors than fed at once");
  if (!ra.failed) {
    FUZZ_CHECK(a.buffered() == b.buffered(), "the bytes left differ with the split");
    FUZZ_CHECK(a.started() == b.started() && a.started() == c.started(), "started() differs with the split");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  one_input(data, size);
  return 0;
}
