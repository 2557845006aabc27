// framed_server — the server side of the original 001's protocol (4-byte
// little-endian length, then the payload), served with qi::start_server:
// each frame a client sends comes back as it was (an echo), optionally after
// a delay that stands for a slow server.
//
//   framed_server [--host 127.0.0.1] [--port 50007] [--max-clients N | --once]
//                 [--max-frame BYTES] [--reply-delay MS] [--timeout MS]
//
// It prints "framed_server: listening on HOST:PORT" first (--port 0 picks a
// free port: read it there), then a line per connection event. It ends
//   - after N clients (--max-clients N, --once = 1): it stops listening once
//     the Nth is accepted and exits when they all left;
//   - on SIGINT (qi::run's Ctrl+C handling cancels the main task) or SIGTERM
//     (the same, by a loop signal handler): it stops listening, closes the
//     connections still open, waits for them, and exits with status 0.
// A client sending an oversize prefix or ending mid-frame is told nothing:
// its connection is closed (framed::Connection does it) and logged. So is a
// client that takes longer than --timeout (60 s by default; 0: no limit) to
// send its next frame or to take an echo (its connection is aborted): a
// client that trickles bytes, idles, or never reads cannot hold a
// connection for ever.
#include "example_options.h"
#include "example_server.h"
#include "framed.h"

#include <qiloop/qiloop.h>

#include <QtCore/QCommandLineParser>
#include <QtCore/QCoreApplication>

#include <csignal>
#include <cstdio>
#include <string>

using namespace std::chrono_literals;

namespace {

struct Options {
  std::string host = "127.0.0.1";
  uint16_t port = 50007;
  int max_clients = 0;  // 0: no limit
  std::size_t max_frame = framed::kDefaultMaxFrame;
  std::chrono::milliseconds reply_delay{0};
  std::chrono::milliseconds timeout{60'000};  // 0: none
};

// What the connections share with the main task. main() owns it: it
// outlives the loop, so no connection's task can outlive it.
struct State {
  Options options;
  qi::Server server;  // forgotten before the loop goes (see serve())
  int accepted = 0;
  int served = 0;
  int live = 0;            // connections whose task has not ended
  qi::Event clients_gone;  // set while live is 0
};

void say(const std::string& line) {
  std::printf("framed_server: %s\n", line.c_str());
  std::fflush(stdout);
}

// The next frame, within timeout (> 0), else qi::TimeoutError. A receive
// cut short loses nothing (framed::FrameReader), but the connection is
// dropped anyway.
qi::Coro<std::optional<QByteArray>> receive_within(framed::Connection& conn, std::chrono::milliseconds timeout) {
  if (timeout <= 0ms) co_return co_await conn.receive();
  co_return co_await qi::wait_for(conn.receive(), timeout);
}

// An echo sent and taken by the client within timeout (> 0), else
// qi::TimeoutError.
qi::Coro<void> send_within(framed::Connection& conn, const QByteArray& frame, std::chrono::milliseconds timeout) {
  if (timeout <= 0ms) {
    co_await conn.send(frame);
    co_return;
  }
  co_await qi::wait_for(conn.send(frame), timeout);
}

qi::Coro<void> serve_client(State& state, qi::StreamReader reader, qi::StreamWriter writer) {
  const int id = ++state.accepted;
  ++state.live;
  state.clients_gone.clear();
  if (state.options.max_clients > 0 && id >= state.options.max_clients) state.server.close();  // the last one
  framed::Connection conn(std::move(reader), std::move(writer), state.options.max_frame);
  const std::string who = "client " + std::to_string(id);
  say(who + " connected from " + conn.peer());
  int frames = 0;
  try {
    while (std::optional<QByteArray> frame = co_await receive_within(conn, state.options.timeout)) {
      ++frames;
      say(who + ": frame of " + std::to_string(frame->size()) + " bytes");
      if (state.options.reply_delay > 0ms) co_await qi::sleep(state.options.reply_delay);
      co_await send_within(conn, *frame, state.options.timeout);
    }
    say(who + " left after " + std::to_string(frames) + (frames == 1 ? " frame" : " frames"));
  } catch (const framed::FrameTooLargeError& e) {
    say(who + ": protocol error, connection closed: " + e.what());
  } catch (const qi::IncompleteReadError& e) {
    say(who + ": ended mid-frame, connection closed: " + e.what());
  } catch (const qi::TimeoutError&) {
    conn.writer().transport().abort();  // what waits in its buffer goes too
    say(who + ": nothing received or taken for " + std::to_string(state.options.timeout.count()) +
        " ms, connection aborted");
  } catch (const std::exception& e) {  // a reset connection, mostly
    say(who + ": " + e.what());
  }
  ++state.served;
  if (--state.live == 0) state.clients_gone.set();
}

qi::Coro<void> serve(State& state) {
  example::ForgetServer forget{state.server};
  auto on_client = [&state](qi::StreamReader r, qi::StreamWriter w) {
    return serve_client(state, std::move(r), std::move(w));
  };
  co_await example::start_server(state.server, std::move(on_client), state.options.host, state.options.port, say);

  // The server is closed by the last client allowed in, or here when the
  // task is cancelled; either way, wait until every connection is gone.
  const std::optional<std::string> stopped_by = co_await example::until_stopped(state.server.wait_closed());
  if (stopped_by) {
    say("stopping on " + *stopped_by);
    co_await example::stop_server(state.server, say);
  }
  // Their tasks too, not only their sockets: an aborted connection's task
  // hears of it on a later iteration.
  co_await state.clients_gone.wait();
  say("served " + std::to_string(state.served) + (state.served == 1 ? " client" : " clients") + "; bye");
  if (stopped_by) throw qi::CancelledError(*stopped_by);  // qi::run: qi::KeyboardInterrupt after a SIGINT
}

Options parse(const QCoreApplication& app) {
  QCommandLineParser parser;
  parser.setApplicationDescription("Echoes 4-byte little-endian length-prefixed frames (qiloop's framed example).");
  parser.addHelpOption();
  const QCommandLineOption host("host", "Address to listen on.", "host", "127.0.0.1");
  const QCommandLineOption port("port", "Port to listen on (0: a free one, printed).", "port", "50007");
  const QCommandLineOption max_clients("max-clients", "Exit after serving N clients.", "N");
  const QCommandLineOption once("once", "Exit after serving one client (--max-clients 1).");
  const QCommandLineOption max_frame("max-frame", "Largest frame accepted, in bytes.", "bytes",
                                     QString::number(framed::kDefaultMaxFrame));
  const QCommandLineOption delay("reply-delay", "Wait this long before each reply (a slow server).", "ms", "0");
  const QCommandLineOption timeout("timeout",
                                   "Drop a client that takes longer than this to send a frame or to take an echo "
                                   "(0: never).",
                                   "ms", "60000");
  parser.addOptions({host, port, max_clients, once, max_frame, delay, timeout});
  parser.process(app);

  auto number = [&parser](const QCommandLineOption& o, qulonglong max) {
    return example::number_option(parser, o, 0, max, "framed_server");
  };
  Options o;
  o.host = parser.value(host).toStdString();
  o.port = static_cast<uint16_t>(number(port, 65535));
  o.max_clients = parser.isSet(once) ? 1 : parser.isSet(max_clients) ? static_cast<int>(number(max_clients, 1 << 30)) : 0;
  o.max_frame = number(max_frame, framed::kLargestFrame);
  o.reply_delay = std::chrono::milliseconds(number(delay, 3'600'000));
  o.timeout = std::chrono::milliseconds(number(timeout, 3'600'000));
  return o;
}

}  // namespace

int main(int argc, char** argv) {
  QCoreApplication app(argc, argv);
  State state;
  state.options = parse(app);
  state.clients_gone.set();
  return example::run_main("framed_server", serve(state));
}
