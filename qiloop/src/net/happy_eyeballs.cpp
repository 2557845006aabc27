// net/happy_eyeballs.cpp — create_connection's choice of address: one after
// the other, or staggered (happy eyeballs). See happy_eyeballs.h.
#include "net/happy_eyeballs.h"

#include <qiloop/errors.h>
#include <qiloop/structured/wait.h>
#include <qiloop/task.h>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <exception>
#include <utility>

namespace qi::detail {

namespace {

// Closes the fd unless released (an attempt failed or was cancelled).
struct FdGuard {
  int fd;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
  int release() noexcept { return std::exchange(fd, -1); }
};

void bind_local(int fd, const AddrInfo& to, const std::vector<AddrInfo>& local) {
  std::exception_ptr last;
  for (const AddrInfo& l : local) {
    if (l.family != to.family) continue;
    if (::bind(fd, l.address.native(), l.address.size()) == 0) return;
    last = qi::make_os_error(errno, "create_connection: binding to the local address " + l.address.to_string());
  }
  if (last) std::rethrow_exception(last);
  throw qi::OSError("create_connection: no local address of the family of " + to.address.to_string() +
                    " was given (local_addr)");
}

Coro<int> connect_one(QiEventLoop& loop, AddrInfo to, std::vector<AddrInfo> local) {
  FdGuard fd{::socket(to.family, to.type | SOCK_NONBLOCK | SOCK_CLOEXEC, to.protocol)};
  if (fd.fd < 0) qi::throw_os_error(errno, "create_connection: socket() for " + to.address.to_string());
  if (!local.empty()) bind_local(fd.fd, to, local);
  co_await loop.sock_connect(fd.fd, to.address);
  co_return fd.release();
}

// asyncio's rule: one error raised as is; several with one errno, that
// errno's class naming each; else "Multiple exceptions".
std::exception_ptr combine(const std::vector<std::exception_ptr>& errors, bool all_errors, const std::string& target) {
  if (errors.empty()) return std::make_exception_ptr(qi::OSError("create_connection: no address to connect to for " + target));
  if (all_errors) return std::make_exception_ptr(qi::ExceptionGroup("create_connection to " + target + " failed", errors));
  if (errors.size() == 1) return errors.front();
  std::string each;
  int code = -1;
  for (const auto& e : errors) {
    try {
      std::rethrow_exception(e);
    } catch (const qi::OSError& os) {
      code = (code == -1 || code == os.code()) ? os.code() : 0;
      each += std::string(each.empty() ? "" : "; ") + os.what();
    } catch (const std::exception& other) {
      code = 0;
      each += std::string(each.empty() ? "" : "; ") + other.what();
    }
  }
  std::string context = "create_connection to " + target + ": all " + std::to_string(errors.size()) +
                        " addresses failed (" + each + ")";
  if (code > 0) return qi::make_os_error(code, context);
  return std::make_exception_ptr(qi::OSError("Multiple exceptions: " + context));
}

Coro<int> connect_in_turn(QiEventLoop& loop, std::vector<AddrInfo> addresses, std::vector<AddrInfo> local,
                          bool all_errors, std::string target) {
  std::vector<std::exception_ptr> errors;
  for (const AddrInfo& to : addresses) {
    try {
      co_return co_await connect_one(loop, to, local);
    } catch (const std::exception&) {  // qi::CancelledError is not one: it ends the call
      errors.push_back(std::current_exception());
    }
  }
  std::rethrow_exception(combine(errors, all_errors, target));
}

// Cancels the attempts still running and waits for all to end, even when
// the caller is cancelled meanwhile (then `stopped` is set, for the caller
// to raise once this returns: an attempt that connected meanwhile must
// still be closed). Closes the fds of those that connected, except
// `keep`'s unless stopped. Retrieves every outcome (nothing reported as
// never retrieved).
Coro<void> wind_down(std::vector<Task<int>>& attempts, std::size_t keep, std::exception_ptr& stopped) {
  for (auto& t : attempts)
    if (!t.done()) t.cancel();
  while (!std::all_of(attempts.begin(), attempts.end(), [](const Task<int>& t) { return t.done(); })) {
    try {
      co_await qi::wait(attempts, qi::ALL_COMPLETED);
    } catch (const qi::CancelledError&) {
      if (!stopped) stopped = std::current_exception();
    }
  }
  for (std::size_t i = 0; i < attempts.size(); ++i) {
    if ((i == keep && !stopped) || attempts[i].cancelled()) continue;
    if (!attempts[i].exception()) ::close(attempts[i].result());
  }
}

Coro<int> connect_staggered(QiEventLoop& loop, std::vector<AddrInfo> addresses, std::vector<AddrInfo> local,
                            std::chrono::nanoseconds delay, bool all_errors, std::string target) {
  std::vector<Task<int>> attempts;
  std::vector<bool> seen;
  std::vector<std::exception_ptr> errors;
  std::size_t winner = addresses.size();
  std::exception_ptr stopped;  // our own cancellation
  try {
    for (;;) {
      std::vector<Task<int>> running;
      for (auto& t : attempts)
        if (!t.done()) running.push_back(t);
      if (running.empty() && attempts.size() == addresses.size()) break;
      if (running.empty()) {
        // The first attempt, or all failed before the delay: the next now.
        attempts.push_back(loop.create_task(connect_one(loop, addresses[attempts.size()], local)));
        seen.push_back(false);
        continue;
      }
      if (attempts.size() < addresses.size())
        co_await qi::wait(running, delay, qi::FIRST_COMPLETED);
      else
        co_await qi::wait(running, qi::FIRST_COMPLETED);
      for (std::size_t i = 0; i < attempts.size() && winner == addresses.size(); ++i) {
        if (seen[i] || !attempts[i].done()) continue;
        seen[i] = true;
        if (std::exception_ptr e = attempts[i].exception()) {
          errors.push_back(e);
        } else {
          winner = i;
        }
      }
      if (winner != addresses.size()) break;
      // The delay passed, or one failed: the next attempt starts (asyncio).
      if (attempts.size() < addresses.size()) {
        attempts.push_back(loop.create_task(connect_one(loop, addresses[attempts.size()], local)));
        seen.push_back(false);
      }
    }
  } catch (...) {
    stopped = std::current_exception();
  }
  co_await wind_down(attempts, winner, stopped);
  if (stopped) std::rethrow_exception(stopped);
  if (winner != addresses.size()) co_return attempts[winner].result();
  std::rethrow_exception(combine(errors, all_errors, target));
}

}  // namespace

Coro<int> connect_first(QiEventLoop& loop, std::vector<AddrInfo> addresses, std::vector<AddrInfo> local,
                        std::optional<std::chrono::nanoseconds> delay, bool all_errors, std::string target) {
  if (!delay || addresses.size() < 2)
    return connect_in_turn(loop, std::move(addresses), std::move(local), all_errors, std::move(target));
  return connect_staggered(loop, std::move(addresses), std::move(local), *delay, all_errors, std::move(target));
}

std::vector<AddrInfo> interleave_addrinfos(std::vector<AddrInfo> addresses, int first_family_count) {
  // Families in order of first appearance, each with its addresses in order.
  std::vector<std::vector<AddrInfo>> by_family;
  for (AddrInfo& a : addresses) {
    auto it = std::find_if(by_family.begin(), by_family.end(),
                           [&](const std::vector<AddrInfo>& f) { return f.front().family == a.family; });
    if (it == by_family.end())
      by_family.push_back({std::move(a)});
    else
      it->push_back(std::move(a));
  }
  std::vector<AddrInfo> out;
  std::vector<std::size_t> next(by_family.size(), 0);
  if (!by_family.empty() && first_family_count > 1) {
    std::size_t take = std::min<std::size_t>(static_cast<std::size_t>(first_family_count - 1), by_family[0].size());
    for (; next[0] < take; ++next[0]) out.push_back(std::move(by_family[0][next[0]]));
  }
  for (bool more = true; more;) {
    more = false;
    for (std::size_t f = 0; f < by_family.size(); ++f) {
      if (next[f] >= by_family[f].size()) continue;
      out.push_back(std::move(by_family[f][next[f]++]));
      more = true;
    }
  }
  return out;
}

}  // namespace qi::detail
