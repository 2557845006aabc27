// websocket_echo — the original 003 (Flask + gevent-websocket) on qiloop:
// one server on the Qt thread's loop serves the page at "/" over HTTP
// (httpkit) and WebSocket sessions at "/websocket" (RFC 6455, ws_*.h).
// Each JSON text message gets the original's reply,
//   {"output": "I have received this message from you : <message><br>Glad to be your webserver.",
//    "echo": <message>}
// a binary message comes back as it was, and a text message that is not
// JSON makes the handler throw (as the original's json.loads did): the
// session closes with 1011.
//
//   websocket_echo [--host 127.0.0.1] [--port 5000] [--max-sessions N | --once]
//                  [--max-message BYTES] [--close-timeout MS]
//
// It prints "websocket_echo: listening on HOST:PORT" first (--port 0 picks a
// free port: read it there), then a line per request and session event. It
// ends
//   - after N WebSocket sessions (--max-sessions N, --once = 1): it stops
//     listening when the Nth opens and exits once they all closed (HTTP
//     connections still open, a browser's idle keep-alive ones, are closed);
//   - on SIGINT (qi::run's Ctrl+C) or SIGTERM: it stops listening, closes
//     every session with 1001 (going away) and every HTTP connection, and
//     exits with status 0.
#include "http.h"
#include "ws_connection.h"
#include "ws_handshake.h"

#include "example_options.h"
#include "example_server.h"

#include <qiloop/qiloop.h>

#include <QtCore/QCommandLineParser>
#include <QtCore/QCoreApplication>
#include <QtCore/QFile>
#include <QtCore/QJsonArray>
#include <QtCore/QJsonDocument>
#include <QtCore/QJsonObject>

#include <csignal>
#include <cstdio>
#include <map>
#include <string>

using namespace std::chrono_literals;

namespace {

struct Options {
  std::string host = "127.0.0.1";
  uint16_t port = 5000;  // the original's
  int max_sessions = 0;  // 0: no limit
  ws::ConnectionOptions connection;
};

// What the connections share with the main task. main() owns it: it
// outlives the loop, so no connection's task can outlive it.
struct State {
  Options options;
  std::string page;
  http::Router router;
  qi::Server server;  // forgotten before the loop goes (see serve())
  int sessions_opened = 0;
  int sessions_closed = 0;
  std::map<int, qi::TaskRef> live_sessions;  // cancelled on SIGINT / SIGTERM
  bool stopping = false;
  qi::Event sessions_done;  // the last allowed session closed, or none left while stopping
};

void say(const std::string& line) {
  std::printf("websocket_echo: %s\n", line.c_str());
  std::fflush(stdout);
}

std::string shortened(const QByteArray& text, qsizetype max = 200) {
  return text.size() <= max ? text.toStdString() : text.first(max).toStdString() + "...";
}

// The original's handle_websocket, one message at a time.
qi::Coro<void> reply(const std::string& who, ws::Connection& conn, ws::Message message) {
  if (message.type == ws::MessageType::kBinary) {
    say(who + ": binary message of " + std::to_string(message.data.size()) + " bytes, echoed");
    co_await conn.send_binary(message.data);
    co_return;
  }
  QJsonParseError error;
  const QJsonDocument doc = QJsonDocument::fromJson(message.data, &error);
  if (error.error != QJsonParseError::NoError)
    throw std::runtime_error("the message is not JSON (" + error.errorString().toStdString() + " at offset " +
                             std::to_string(error.offset) + ")");
  const QByteArray received = doc.toJson(QJsonDocument::Compact);
  say(who + ": " + shortened(received));
  QJsonObject out;
  out["output"] = "I have received this message from you : " + QString::fromUtf8(received) +
                  "<br>Glad to be your webserver.";
  out["echo"] = doc.isObject() ? QJsonValue(doc.object()) : QJsonValue(doc.array());
  const QByteArray json = QJsonDocument(out).toJson(QJsonDocument::Compact);
  co_await conn.send_text(json);
}

std::string describe(const ws::CloseInfo& info) {
  static const char* const by[] = {"by the client", "by the server", "on a protocol error", "connection lost"};
  std::string s = std::to_string(info.code) + " " + by[static_cast<int>(info.by)];
  if (!info.reason.empty()) s += ": " + info.reason;
  return s;
}

// A WebSocket session on a connection whose handshake was answered.
qi::Coro<void> run_session(State& state, qi::StreamReader reader, qi::StreamWriter writer) {
  const int id = ++state.sessions_opened;
  if (state.options.max_sessions > 0 && id >= state.options.max_sessions) state.server.close();  // the last one
  state.live_sessions[id] = qi::current_task();
  const std::string who = "session " + std::to_string(id);
  ws::Connection conn(std::move(reader), std::move(writer), state.options.connection);
  say(who + " open from " + conn.peer());

  // (A named std::function, moved in: g++ 12 and temporaries around co_await.)
  ws::MessageHandler handler = [&who](ws::Connection& c, ws::Message m) { return reply(who, c, std::move(m)); };
  std::exception_ptr failure;
  bool cancelled = false;
  try {
    failure = co_await ws::serve_messages(conn, std::move(handler));
  } catch (const qi::CancelledError&) {  // the server stops
    cancelled = true;
  }
  if (cancelled) {
    std::string reason = "server shutting down";
    co_await conn.close(ws::close_code::kGoingAway, std::move(reason));
  }
  if (failure) {
    try {
      std::rethrow_exception(failure);
    } catch (const std::exception& e) {
      say(who + ": the handler failed: " + e.what());
    }
  }
  say(who + " closed: " + describe(conn.close_info().value_or(ws::CloseInfo{})));

  state.live_sessions.erase(id);
  ++state.sessions_closed;
  const bool all_allowed = state.options.max_sessions > 0 && state.sessions_closed >= state.options.max_sessions;
  if (all_allowed || (state.stopping && state.live_sessions.empty())) state.sessions_done.set();
}

// What HTTP requests may hold, and how long a client may take to send one
// (408 after) or to take a response (aborted after): http::Limits' defaults.
const http::Limits kHttpLimits;

// HTTP requests until one upgrades to WebSocket or the connection ends.
qi::Coro<void> serve_http(State& state, qi::StreamReader& reader, qi::StreamWriter& writer, bool& upgraded) {
  const http::Limits& limits = kHttpLimits;
  for (;;) {
    std::optional<http::Request> request;
    std::optional<http::Error> bad;
    try {
      request = co_await http::read_request(reader, limits);
    } catch (const http::Error& e) {
      bad = e;
    }
    if (bad) {
      say("http: refused a malformed request: " + std::string(bad->what()));
      const http::Response refusal = http::Response::error(bad->status(), bad->reason());
      co_await http::write_response(writer, refusal, false, false, limits.send_timeout);
      co_return;
    }
    if (!request) co_return;

    bool websocket = false;
    try {
      websocket = http::parse_target(request->target).path == "/websocket";
    } catch (const http::Error&) {  // the router answers it with 400
    }
    if (websocket) {
      ws::Handshake handshake = ws::check_handshake(*request);
      if (state.stopping || (state.options.max_sessions > 0 && state.sessions_opened >= state.options.max_sessions))
        handshake = http::Response::error(503, "this server takes no more WebSocket sessions");
      if (auto* refusal = std::get_if<http::Response>(&handshake)) {
        const std::string& body = refusal->body;  // "<status> <phrase>\n<detail>\n"
        const std::size_t detail = body.find('\n');
        say("http: " + request->method + " /websocket " + std::to_string(refusal->status) + ": " +
            shortened(QByteArray::fromStdString(body.substr(detail == std::string::npos ? 0 : detail + 1)).trimmed()));
        co_await http::write_response(writer, *refusal, false, false, limits.send_timeout);
        co_return;
      }
      writer.write(ws::switching_protocols(std::get<ws::Accept>(handshake)));
      upgraded = true;
      co_await run_session(state, reader, writer);
      co_return;
    }

    const http::Response response = co_await state.router.dispatch(*request);
    say("http: " + request->method + " " + request->target + " " + std::to_string(response.status));
    const bool keep_alive = request->keep_alive() && !response.close;
    co_await http::write_response(writer, response, keep_alive, request->method == "HEAD", limits.send_timeout);
    if (!keep_alive) co_return;
  }
}

qi::Coro<void> serve_client(State& state, qi::StreamReader reader, qi::StreamWriter writer) {
  bool upgraded = false;
  try {
    co_await serve_http(state, reader, writer, upgraded);
  } catch (const qi::OSError&) {  // the client went away (reset, broken pipe): nobody to answer
  }
  if (upgraded) co_return;  // the session closed its connection
  writer.close();
  bool late = false;
  try {
    co_await qi::wait_for(writer.wait_closed(), kHttpLimits.send_timeout);
  } catch (const qi::TimeoutError&) {
    late = true;
  } catch (const qi::OSError&) {
  }
  if (late) writer.transport().abort();  // a client that does not take what is buffered
}

qi::Coro<void> serve(State& state) {
  example::ForgetServer forget{state.server};
  state.router.get("/", [&state](const http::Request&, const http::Target&) -> qi::Coro<http::Response> {
    co_return http::Response::html(state.page);
  });
  auto on_client = [&state](qi::StreamReader r, qi::StreamWriter w) {
    return serve_client(state, std::move(r), std::move(w));
  };
  co_await example::start_server(state.server, std::move(on_client), state.options.host, state.options.port, say);
  say("open http://" + state.server.sockets().at(0).to_string() + "/ in a browser");

  const std::optional<std::string> stopped_by = co_await example::until_stopped(state.sessions_done.wait());
  if (stopped_by) {
    say("stopping on " + *stopped_by);
    state.stopping = true;
    state.server.close();
    if (!state.live_sessions.empty()) {
      for (auto& [id, task] : state.live_sessions) task.cancel();  // each closes with 1001
      co_await state.sessions_done.wait();
    }
  }
  co_await example::stop_server(state.server, say);  // idle HTTP connections too (a browser keeps some)
  say("served " + std::to_string(state.sessions_closed) + (state.sessions_closed == 1 ? " session" : " sessions") +
      "; bye");
  if (stopped_by) throw qi::CancelledError(*stopped_by);  // qi::run: qi::KeyboardInterrupt after a SIGINT
}

Options parse(const QCoreApplication& app) {
  QCommandLineParser parser;
  parser.setApplicationDescription(
      "Serves a page at / and a JSON-replying WebSocket at /websocket (qiloop's websocket_echo example).");
  parser.addHelpOption();
  const QCommandLineOption host("host", "Address to listen on.", "host", "127.0.0.1");
  const QCommandLineOption port("port", "Port to listen on (0: a free one, printed).", "port", "5000");
  const QCommandLineOption max_sessions("max-sessions", "Exit after N WebSocket sessions closed.", "N");
  const QCommandLineOption once("once", "Exit after one WebSocket session (--max-sessions 1).");
  const QCommandLineOption max_message("max-message", "Largest message accepted, in bytes (over: close 1009).",
                                       "bytes", QString::number(ws::kDefaultMaxMessage));
  const QCommandLineOption close_timeout("close-timeout", "How long a closing handshake waits for the client.", "ms",
                                         "5000");
  parser.addOptions({host, port, max_sessions, once, max_message, close_timeout});
  parser.process(app);

  auto number = [&parser](const QCommandLineOption& o, qulonglong min, qulonglong max) {
    return example::number_option(parser, o, min, max, "websocket_echo");
  };
  Options o;
  o.host = parser.value(host).toStdString();
  o.port = static_cast<uint16_t>(number(port, 0, 65535));
  o.max_sessions =
      parser.isSet(once) ? 1 : parser.isSet(max_sessions) ? static_cast<int>(number(max_sessions, 1, 1 << 30)) : 0;
  o.connection.max_message = number(max_message, 0, ws::kLargestMessageLimit);
  o.connection.close_timeout = std::chrono::milliseconds(number(close_timeout, 1, 3'600'000));
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  QCoreApplication app(argc, argv);
  State state;
  state.options = parse(app);
  QFile page(":/websocket_echo/index.html");
  if (!page.open(QIODevice::ReadOnly)) {
    std::fprintf(stderr, "websocket_echo: the page is missing from the program's resources\n");
    return 1;
  }
  state.page = page.readAll().toStdString();
  return example::run_main("websocket_echo", serve(state));
}
