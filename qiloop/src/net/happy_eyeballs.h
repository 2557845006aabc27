// net/happy_eyeballs.h — how create_connection picks an address (asyncio's
// base_events.py _connect_sock, _interleave_addrinfos and
// staggered.staggered_race). Internal.
//
// connect_first tries the addresses in order: without a delay, each after
// the previous one failed; with one (RFC 8305), the next also starts when
// the previous has not connected within the delay, and the first to connect
// wins: the attempts still running are cancelled and awaited, and a socket
// another attempt connected meanwhile is closed. When all fail, one error
// says why for each address (see qi::ConnectOptions::all_errors).
#pragma once

#include <qiloop/coro.h>
#include <qiloop/event_loop.h>
#include <qiloop/export.h>
#include <qiloop/net/socket.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace qi::detail {

// Connects a new non-blocking, close-on-exec socket; the caller owns the fd.
// local: bind first to the first of these of the address's family that
// binds. target names the request in errors ("localhost:80").
QILOOP_EXPORT Coro<int> connect_first(QiEventLoop& loop, std::vector<AddrInfo> addresses, std::vector<AddrInfo> local,
                        std::optional<std::chrono::nanoseconds> delay, bool all_errors, std::string target);

// The addresses reordered by alternating families, first_family_count of
// the first family first.
QILOOP_EXPORT std::vector<AddrInfo> interleave_addrinfos(std::vector<AddrInfo> addresses, int first_family_count);

}  // namespace qi::detail
