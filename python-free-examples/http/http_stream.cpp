#include "http_stream.h"

#include <qiloop/errors.h>
#include <qiloop/structured/timeout.h>

#include <chrono>
#include <exception>
#include <string>
#include <utility>

namespace http {

qi::Coro<std::optional<Request>> read_request(qi::StreamReader& reader, const Limits& limits) {
  RequestParser parser(limits);
  for (;;) {
    if (std::optional<Request> request = parser.next()) co_return request;
    const std::optional<std::size_t> body = parser.body_remaining();
    QByteArray chunk;
    bool eof = false;
    bool overrun = false;
    try {
      if (body)
        chunk = co_await reader.readexactly(static_cast<qsizetype>(*body));
      else
        chunk = co_await reader.readuntil("\n");
    } catch (const qi::IncompleteReadError& e) {
      chunk = e.partial();
      eof = true;
    } catch (const qi::LimitOverrunError&) {
      overrun = true;
    }
    if (overrun) {
      const std::string limit = std::to_string(reader.limit());
      if (parser.started()) throw Error(431, "a header field line is longer than the stream's limit of " + limit + " bytes");
      throw Error(414, "the request line is longer than the stream's limit of " + limit + " bytes");
    }
    parser.feed(std::string_view(chunk.constData(), static_cast<std::size_t>(chunk.size())));
    if (eof) {
      if (std::optional<Request> request = parser.next()) co_return request;  // cannot happen: the request was cut
      if (parser.started()) throw Error(400, "the connection ended in the middle of a request");
      co_return std::nullopt;
    }
  }
}

qi::Coro<void> write_response(qi::StreamWriter& writer, const Response& response, bool keep_alive, bool head) {
  const std::string bytes = serialize(response, keep_alive, head);
  writer.write(QByteArrayView(bytes.data(), static_cast<qsizetype>(bytes.size())));
  co_await writer.drain();
}

namespace {

// After the server decided to close, how long and how much it keeps reading
// (and dropping) what the client still sends: closing a socket with unread
// bytes makes the kernel send a reset, which may destroy the response
// before the client reads it (Apache's "lingering close").
constexpr auto kLingerTime = std::chrono::seconds(2);
constexpr qsizetype kLingerBytes = 1 << 20;

enum class Next { kRequest, kClientDone, kServerCloses };

// One request answered: what the connection does next.
qi::Coro<Next> answer(qi::StreamReader& reader, qi::StreamWriter& writer, Handler& handler, const Limits& limits) {
  std::optional<Request> request;
  std::optional<Error> bad;
  try {
    request = co_await read_request(reader, limits);
  } catch (const Error& e) {
    bad = e;
  }
  if (bad) {
    co_await write_response(writer, Response::error(bad->status(), bad->reason()), false, false);
    co_return Next::kServerCloses;
  }
  if (!request) co_return Next::kClientDone;
  const bool head = request->method == "HEAD";
  Response response;
  std::exception_ptr failure;
  try {
    response = co_await handler(*request);
  } catch (const std::exception&) {
    failure = std::current_exception();
  }
  if (failure) {
    co_await write_response(writer, Response::error(500, "the request's handler failed"), false, head);
    std::rethrow_exception(failure);
  }
  const bool keep_alive = request->keep_alive() && !response.close;
  co_await write_response(writer, response, keep_alive, head);
  if (response.on_sent) response.on_sent();
  co_return keep_alive ? Next::kRequest : Next::kServerCloses;
}

// Drops what the client sends until it closes (or kLingerBytes).
qi::Coro<void> drop_until_eof(qi::StreamReader& reader) {
  qsizetype dropped = 0;
  while (dropped <= kLingerBytes) {
    const QByteArray chunk = co_await reader.read(64 * 1024);
    if (chunk.isEmpty()) break;
    dropped += chunk.size();
  }
}

// The server's side of closing: end of our stream first, then the client's.
qi::Coro<void> linger(qi::StreamReader& reader, qi::StreamWriter& writer) {
  if (writer.is_closing()) co_return;
  if (writer.can_write_eof()) writer.write_eof();
  try {
    co_await qi::wait_for(drop_until_eof(reader), kLingerTime);
  } catch (const qi::TimeoutError&) {
  }
}

}  // namespace

qi::Coro<void> serve_connection(qi::StreamReader reader, qi::StreamWriter writer, Handler handler, Limits limits) {
  std::exception_ptr failure;
  try {
    Next next = Next::kRequest;
    while (next == Next::kRequest) next = co_await answer(reader, writer, handler, limits);
    if (next == Next::kServerCloses) co_await linger(reader, writer);
  } catch (const qi::OSError&) {
    // The client went away (reset, broken pipe): nobody to answer.
  } catch (const std::exception&) {
    failure = std::current_exception();
  }
  writer.close();
  try {
    co_await writer.wait_closed();
  } catch (const qi::OSError&) {
  }
  if (failure) std::rethrow_exception(failure);
}

}  // namespace http
