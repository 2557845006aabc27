// http_stream.h — HTTP/1.1 over qiloop's streams: one request read from a
// qi::StreamReader, one response written to a qi::StreamWriter, and a
// connection served request after request.
//
//   qi::Server server = co_await qi::start_server(
//       [&router](qi::StreamReader r, qi::StreamWriter w) {
//         return http::serve_connection(std::move(r), std::move(w), router.handler());
//       }, "127.0.0.1", 8080);
//
//   // or by hand:
//   while (std::optional<http::Request> req = co_await http::read_request(reader, limits)) {
//     co_await http::write_response(writer, http::Response::text(200, "hi\n"), req->keep_alive(), false);
//   }
//
// The contract:
// - read_request() takes exactly one request from the stream: whole lines
//   (readuntil "\n") until the header section ends, then exactly
//   Content-Length bytes, each fed to an http::RequestParser. Bytes after
//   the request (a pipelined one) stay in the stream for the next call.
//   Limits are checked line by line, so a line is buffered up to the
//   stream's own limit (qi::kDefaultStreamLimit, 64 KiB, or start_server's
//   `limit`) before it can be judged: a line over that limit is refused
//   (414 in the request line, 431 in the header section) as soon as that
//   many bytes wait. Give start_server a limit near the http::Limits to
//   refuse sooner.
// - End of stream: before any byte of a request (empty lines aside),
//   std::nullopt; inside one, http::Error 400. The stream's own errors (a
//   reset connection) are thrown as they are.
// - serve_connection() answers requests with the handler until the client
//   is done (EOF), a response ends the connection (Response::close, or the
//   request's keep_alive() false), or a request is malformed (the
//   http::Error's status is answered, then the connection closed). A
//   handler that throws gets 500 and the connection closed, then its
//   exception goes on (qi::start_server reports it). A connection lost
//   under it (reset, broken pipe) ends it quietly. When the server ends
//   the connection, it half-closes it (write_eof) and drops what the client
//   still sends until the client closes, for at most 2 s and 1 MiB: closing
//   with unread bytes would make the kernel reset the connection, which can
//   destroy the response before the client reads it ("lingering close").
//   Then it closes the writer and waits until the connection is closed.
// Thread-safety: the loop's thread, as qiloop's streams. One task reads a
// reader at a time.
#pragma once

#include "http_request.h"
#include "http_response.h"

#include <qiloop/coro.h>
#include <qiloop/net/streams.h>

#include <functional>
#include <optional>

namespace http {

// http::read_request()
// The next request, or std::nullopt at the end of the stream between
// requests. Throws http::Error for a bad request (see the file comment).
qi::Coro<std::optional<Request>> read_request(qi::StreamReader& reader, const Limits& limits);

// http::write_response()
// serialize(response, keep_alive, head), written, then drained. Throws
// what serialize and StreamWriter::drain throw.
qi::Coro<void> write_response(qi::StreamWriter& writer, const Response& response, bool keep_alive, bool head);

// http::Handler
// What answers a request. The object must outlive the connections it
// serves (a lambda's captures are referenced by the coroutine it returns).
using Handler = std::function<qi::Coro<Response>(const Request&)>;

// http::serve_connection()
// Serves one connection (see the file comment). HEAD requests get the
// handler's response without its body.
qi::Coro<void> serve_connection(qi::StreamReader reader, qi::StreamWriter writer, Handler handler,
                                Limits limits = {});

}  // namespace http
