#include "example_server.h"

namespace example {

qi::Coro<void> stop_server(qi::Server& server, std::function<void(const std::string&)> say,
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
