// http_router.h — requests dispatched to handlers by method and decoded
// path, with the standard answers for everything else.
//
//   http::Router router;
//   router.get("/", [](const http::Request&, const http::Target&) -> qi::Coro<http::Response> {
//     co_return http::Response::html("<p>hello</p>");
//   });
//   http::Response r = co_await router.dispatch(request);
//   ... http::serve_connection(reader, writer, router.handler());
//
// The contract:
// - Paths match exactly, after parse_target (decoded, checked): "/a%62"
//   is the route "/ab". A target parse_target refuses is 400 (no path
//   traversal reaches a handler).
// - get() routes answer GET and HEAD (serve_connection drops the body for
//   HEAD). A path with routes but none for the method is 405 with an
//   Allow field; a path without routes is 404.
// - Adding a route for a method and path already routed replaces it.
// Thread-safety: none; routes are added before serving, dispatch runs on
// the loop's thread. The router must outlive the connections it serves.
#pragma once

#include "http_request.h"
#include "http_response.h"
#include "http_stream.h"
#include "http_target.h"

#include <qiloop/coro.h>

#include <functional>
#include <string>
#include <vector>

namespace http {

class Router {
 public:
  using RouteHandler = std::function<qi::Coro<Response>(const Request&, const Target&)>;

  // Router::route()
  // Router::get()
  // Adds a route: method (case-sensitive, "GET") and path (decoded, starts
  // with '/'; std::invalid_argument otherwise).
  Router& route(std::string method, std::string path, RouteHandler handler);
  Router& get(std::string path, RouteHandler handler) { return route("GET", std::move(path), std::move(handler)); }

  // Router::dispatch()
  // The response of the request's route, or 400 / 404 / 405 (see the file
  // comment). Throws what the handler throws.
  qi::Coro<Response> dispatch(const Request& request) const;

  // Router::handler()
  // dispatch() as an http::Handler for serve_connection (refers to *this).
  Handler handler() const;

 private:
  struct Route {
    std::string method;
    std::string path;
    RouteHandler handler;
  };
  std::vector<Route> routes_;
};

}  // namespace http
