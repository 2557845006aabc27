// example_server.h — how the example servers (framed_server, websocket_echo,
// web_app_in_process) end: one stop for all three, so that none of them can
// be held open by a client that does not read.
//
//   example::ForgetServer forget{state.server};       // before the server is started
//   state.server = co_await qi::start_server(...);
//   ...
//   co_await example::stop_server(state.server, say);  // on a stop
//   co_await every_connection_task_gone.wait();        // their tasks too
//
// The contract:
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
#include <functional>
#include <string>

namespace example {

// On a stop, how long connections may take to send what they have buffered
// before they are aborted.
inline constexpr std::chrono::milliseconds kCloseGrace{2000};

qi::Coro<void> stop_server(qi::Server& server, std::function<void(const std::string&)> say,
                           std::chrono::milliseconds grace = kCloseGrace);

struct ForgetServer {
  qi::Server& server;
  ~ForgetServer() { server = qi::Server(); }
};

}  // namespace example
