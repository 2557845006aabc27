#include "example_server.h"

#include <csignal>
#include <cstdio>
#include <exception>

namespace example {

qi::Coro<void> start_server(qi::Server& server,
                            absl::AnyInvocable<qi::Coro<void>(qi::StreamReader, qi::StreamWriter)> on_client,
                            std::string host, std::uint16_t port, Say say) {
  // SIGTERM ends the server as Ctrl+C does (qi::run's SIGINT handling).
  qi::get_running_loop().add_signal_handler(SIGTERM,
                                            [main = qi::current_task()]() mutable { main.cancel("SIGTERM"); });
  qi::ServerOptions options;
  options.start_serving = false;  // the handle is stored before the first client comes
  server = co_await qi::start_server(std::move(on_client), std::move(host), port, options);
  co_await server.start_serving();
  say("listening on " + server.sockets().at(0).to_string());
}

int run_main(const char* program, qi::Coro<void> main) {
  try {
    qi::run(std::move(main));
  } catch (const qi::KeyboardInterrupt&) {  // Ctrl+C: a clean stop, not a failure
  } catch (const qi::CancelledError&) {     // SIGTERM
  } catch (const std::exception& e) {       // the port is taken, the host does not resolve
    std::fprintf(stderr, "%s: %s\n", program, e.what());
    return 1;
  }
  return 0;
}

qi::Coro<void> stop_server(qi::Server& server, Say say,
                           std::chrono::milliseconds grace) {
  server.close();
  server.close_clients();
  // close() sends what is buffered first: a client that does not read would
  // hold the exit for ever. Give them a moment, then abort the rest.
  bool stuck = false;
  try {
    co_await qi::wait_for(server.wait_closed(), grace);
  } catch (const qi::TimeoutError&) {
    stuck = true;
  }
  if (stuck) {
    say("aborting the connections whose clients do not take their data");
    server.abort_clients();
    co_await server.wait_closed();
  }
}

}  // namespace example
