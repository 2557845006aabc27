// net/signal_handlers.h — one loop's Unix signal handlers (QiEventLoop::
// add_signal_handler; contract in <qiloop/net/signals.h>). Internal.
//
// Invariant: entries_[s].handler is set exactly when this loop owns signal s
// in the process-wide table (signals.cpp): its disposition is our
// async-signal handler, writing s to write_fd_. The pipe is open exactly
// while count_ > 0, and its read end is then watched with add_reader.
#pragma once

#include <absl/functional/any_invocable.h>

#include <array>
#include <csignal>
#include <cstdint>
#include <memory>

class QiEventLoop;

namespace qi::detail {

class SignalHandlers {
 public:
  explicit SignalHandlers(QiEventLoop& loop) noexcept : loop_(loop) {}
  SignalHandlers(const SignalHandlers&) = delete;
  SignalHandlers& operator=(const SignalHandlers&) = delete;
  ~SignalHandlers() { close(); }

  // reset_on_delivery: qi::run's Ctrl+C (SA_RESETHAND).
  void set(int sig, absl::AnyInvocable<void()> handler, bool reset_on_delivery);
  // Whether sig had a handler (of the Ctrl+C kind only, when only_ctrl_c).
  bool remove(int sig, bool only_ctrl_c) noexcept;
  // Removes every handler: close().
  void close() noexcept;

 private:
  struct Entry {
    // Shared so that a handler replacing or removing itself does not destroy
    // the callable it runs in.
    std::shared_ptr<absl::AnyInvocable<void()>> handler;
    // Bumped by remove(): a delivery read before it is dropped.
    uint64_t epoch = 0;
    bool reset_on_delivery = false;
  };

  void open_pipe();
  void close_pipe() noexcept;
  void on_readable();
  void dispatch(int sig, uint64_t epoch);

  QiEventLoop& loop_;
  int read_fd_ = -1;
  int write_fd_ = -1;
  int count_ = 0;  // handlers set
  std::array<Entry, NSIG> entries_{};
};

}  // namespace qi::detail
