// example_server.h — how the example servers (framed_server, websocket_echo,
// web_app_in_process) start and end: one start and one stop for all, so
// that none of them can be held open by a client that does not read.
//
//   int main(int argc, char** argv) {
//     ...
//     return example::run_main("framed_server", serve(state));
//   }
//   qi::Coro<void> serve(State& state) {
//     example::ForgetServer forget{state.server};
//     co_await example::start_server(state.server, on_client, host, port, say);
//     const std::optional<std::string> stopped_by = co_await example::until_stopped(done.wait());
//     if (stopped_by) co_await example::stop_server(state.server, say);
//     co_await every_connection_task_gone.wait();        // their tasks too
//     if (stopped_by) throw qi::CancelledError(*stopped_by);
//   }
//
// The contract:
// - start_server() makes SIGTERM cancel the calling task with the message
//   "SIGTERM" (as qi::run's Ctrl+C cancels it), starts a stream server on
//   host:port, stores its handle in `server` before the first client is
//   served (a client's task may use it at once), and tells `say`
//   "listening on <address>". Its errors are qi::start_server's (the port
//   is taken, the host does not resolve).
// - until_stopped() awaits `waiting`; if the calling task is cancelled
//   meanwhile (SIGINT, SIGTERM) it returns what stopped it ("SIGINT" for a
//   cancellation without a message), else std::nullopt.
// - run_main() runs `main` with qi::run (nested mode) and gives main()'s
//   exit status: 0 when it ends or is stopped by SIGINT or SIGTERM; 1 after
//   an exception, which is printed as "<program>: <what()>" on stderr.
// - stop_server() stops listening, closes every accepted connection (each
//   sends what it has buffered first), and waits up to `grace` for them to
//   go. A connection still open then belongs to a client that does not take
//   its data: `say` is told so ("aborting the connections whose clients do
//   not take their data"), they are aborted, and it waits until they are
//   closed. It returns once every connection's socket is closed; the tasks
//   serving them may hear of it on a later iteration (the caller waits for
//   them itself).
// - ForgetServer resets the handle it watches when it goes out of scope: a
//   qi::Server handle must not outlive the loop that serves it.
// - Thread-safety: the server's loop's thread, as qi::Server.
#pragma once

#include <qiloop/qiloop.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace example {

// On a stop, how long connections may take to send what they have buffered
// before they are aborted.
inline constexpr std::chrono::milliseconds kCloseGrace{2000};

using Say = std::function<void(const std::string&)>;

qi::Coro<void> stop_server(qi::Server& server, Say say, std::chrono::milliseconds grace = kCloseGrace);

qi::Coro<void> start_server(qi::Server& server,
                            absl::AnyInvocable<qi::Coro<void>(qi::StreamReader, qi::StreamWriter)> on_client,
                            std::string host, std::uint16_t port, Say say);

// (By reference: an awaiter such as qi::Event::wait()'s cannot move. The
// result is awaited in the full expression that made `waiting`.)
template <typename Awaitable>
qi::Coro<std::optional<std::string>> until_stopped(Awaitable&& waiting) {
  try {
    co_await std::forward<Awaitable>(waiting);
  } catch (const qi::CancelledError& e) {
    co_return e.message().empty() ? "SIGINT" : e.message();
  }
  co_return std::nullopt;
}

int run_main(const char* program, qi::Coro<void> main);

struct ForgetServer {
  qi::Server& server;
  ~ForgetServer() { server = qi::Server(); }
};

}  // namespace example
