#include "http_router.h"

#include <stdexcept>
#include <utility>

namespace http {

Router& Router::route(std::string method, std::string path, RouteHandler handler) {
  if (path.empty() || path.front() != '/') throw std::invalid_argument("http::Router: the path \"" + path + "\" does not start with '/'");
  if (!handler) throw std::invalid_argument("http::Router: an empty handler for " + path);
  for (Route& r : routes_) {
    if (r.method == method && r.path == path) {
      r.handler = std::move(handler);
      return *this;
    }
  }
  routes_.push_back(Route{std::move(method), std::move(path), std::move(handler)});
  return *this;
}

qi::Coro<Response> Router::dispatch(const Request& request) const {
  Target target;
  std::optional<Error> bad;
  try {
    target = parse_target(request.target);
  } catch (const Error& e) {
    bad = e;
  }
  if (bad) co_return Response::error(bad->status(), bad->reason());

  const Route* found = nullptr;
  std::string allow;
  for (const Route& r : routes_) {
    if (r.path != target.path) continue;
    if (r.method == request.method || (request.method == "HEAD" && r.method == "GET" && !found)) found = &r;
    allow += (allow.empty() ? "" : ", ") + r.method + (r.method == "GET" ? ", HEAD" : "");
  }
  if (found) {
    Response response = co_await found->handler(request, target);
    co_return response;
  }
  if (allow.empty()) co_return Response::error(404, "nothing is served at " + target.path);
  Response response = Response::error(405, request.method + " is not served at " + target.path + "; try " + allow);
  response.set("Allow", allow);
  co_return response;
}

Handler Router::handler() const {
  return [this](const Request& request) { return dispatch(request); };
}

}  // namespace http
