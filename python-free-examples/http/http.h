// http.h — httpkit: a small HTTP/1.1 server toolkit on qiloop's streams,
// written for the python-free-examples (web_app_in_process,
// websocket_echo). Not a general web framework: origin-form targets,
// Content-Length bodies, no TLS of its own (qi::start_server's ssl= works
// under it), no idle timeouts.
//
//   http_request.h   http::Request, http::Limits, http::Error, http::RequestParser (pure)
//   http_response.h  http::Response, http::serialize, http::reason_phrase (pure)
//   http_target.h    http::parse_target, percent_decode, query_param, html_escape (pure)
//   http_stream.h    http::read_request, write_response, serve_connection (qiloop)
//   http_router.h    http::Router (qiloop)
#pragma once

#include "http_request.h"
#include "http_response.h"
#include "http_router.h"
#include "http_stream.h"
#include "http_target.h"
