// -----------------------------------------------------------------------------
// File: qiloop/errors.h
// -----------------------------------------------------------------------------
//
// The exceptions qiloop throws.
//
// They mirror asyncio's exception classes so that ported code keeps its
// `except` clauses as `catch` clauses:
//
//   try { loop.call_soon(cb); }
//   catch (const qi::RuntimeError& e) { /* loop closed: e.what() says what to do */ }
//
// qi::CancelledError deliberately does NOT derive from std::exception, just as
// asyncio.CancelledError derives from BaseException: a generic
// `catch (const std::exception&)` must not swallow cancellation.
//
// Thread-safety: these are plain value types.
#pragma once

#include <qiloop/export.h>

#include <stdexcept>
#include <string>

namespace qi {

// qi::RuntimeError
// Misuse of the loop: a closed loop, a loop that is already running, a call
// from the wrong thread, a missing QCoreApplication. The message names the fix.
class QILOOP_EXPORT RuntimeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  ~RuntimeError() override;
};

// qi::InvalidStateError
// An operation on a future in the wrong state: result() while pending,
// set_result() on a done future.
class QILOOP_EXPORT InvalidStateError : public std::logic_error {
 public:
  using std::logic_error::logic_error;
  ~InvalidStateError() override;
};

// qi::TimeoutError
// A deadline expired (wait_for, timeout).
class QILOOP_EXPORT TimeoutError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  ~TimeoutError() override;
};

// qi::CancelledError
// The operation was cancelled. Not a std::exception (see the file comment);
// what() and message() mirror std::exception's for logging.
class QILOOP_EXPORT CancelledError {
 public:
  CancelledError() = default;
  explicit CancelledError(std::string message) : message_(std::move(message)) {}
  virtual ~CancelledError();

  // CancelledError::message()
  // The message given to cancel(msg); empty when none was given.
  // CancelledError::what()
  // The message, or "cancelled" when empty.
  const std::string& message() const noexcept { return message_; }
  const char* what() const noexcept { return message_.empty() ? "cancelled" : message_.c_str(); }

 private:
  std::string message_;
};

}  // namespace qi
