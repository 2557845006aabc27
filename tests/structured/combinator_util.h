// Children shared by the combinator tests (gather, wait, as_completed,
// shield): coroutines that log, sleep on the virtual clock, and return or
// throw.
#pragma once

#include <qiloop/testing.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <vector>

namespace combinator_test {

using Strings = std::vector<std::string>;
using std::chrono::milliseconds;

// An error of its own type, to check that the original type arrives.
struct Boom : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// asyncio: async def child(name, d, log, fail=False): log start; await
// sleep(d); log end; raise or return name.
inline qi::Coro<std::string> child(std::string name, milliseconds d, Strings& log, bool fail = false) {
  log.push_back(name + " start");
  co_await qi::sleep(d);
  log.push_back(name + " end");
  if (fail) throw Boom(name);
  co_return name;
}

inline qi::Coro<int> value_after(milliseconds d, int v) {
  co_await qi::sleep(d);
  co_return v;
}

inline qi::Coro<int> boom_after(milliseconds d, std::string what) {
  co_await qi::sleep(d);
  throw Boom(what);
}

inline qi::Coro<void> nothing_after(milliseconds d) { co_await qi::sleep(d); }

// Time since t0 on the loop's (virtual) clock.
inline milliseconds since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration_cast<milliseconds>(qi::get_running_loop().time() - t0);
}

}  // namespace combinator_test
