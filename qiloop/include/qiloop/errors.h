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

#include <QtCore/QByteArray>

#include <exception>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

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

// qi::OSError
// A system call failed (Python's OSError): code() is the errno (0 when the
// error did not come from one), reason() its text (strerror), what() the
// context, the reason and the errno's name ("sock_connect to
// 127.0.0.1:1: Connection refused [ECONNREFUSED]"). qi::make_os_error picks
// the subclass an errno maps to, as Python does (PEP 3151).
class QILOOP_EXPORT OSError : public std::runtime_error {
 public:
  // No errno: what() is the message alone.
  explicit OSError(const std::string& message);
  explicit OSError(const char* message) : OSError(std::string(message)) {}
  // `context` says what failed; what() adds reason() and the errno's name.
  OSError(int code, const std::string& context);
  ~OSError() override;
  int code() const noexcept { return code_; }
  const std::string& reason() const noexcept { return reason_; }

 protected:
  // A code that is not an errno (GaiError): reason and what() as given.
  OSError(int code, std::string reason, const std::string& what_text);

 private:
  int code_ = 0;
  std::string reason_;
};

// qi::TimeoutError
// A deadline expired (wait_for, timeout), or ETIMEDOUT. A qi::OSError, as
// Python's TimeoutError (which asyncio.TimeoutError is since 3.11).
class QILOOP_EXPORT TimeoutError : public OSError {
 public:
  using OSError::OSError;
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

// qi::GeneratorExit
// Thrown by aclose() (and loop.shutdown_asyncgens()) at the co_yield where
// a qi::AsyncGenerator is suspended, so that its catch clauses and
// destructors run. Not a std::exception, as Python's derives from
// BaseException: a generic catch (const std::exception&) lets it through.
// Rethrow it or return; a generator that co_yields again makes aclose()
// throw qi::RuntimeError.
class QILOOP_EXPORT GeneratorExit {
 public:
  virtual ~GeneratorExit();
  const char* what() const noexcept { return "qi::GeneratorExit"; }
};

// qi::KeyboardInterrupt
// What qi::run throws when Ctrl+C (SIGINT) cancelled its main task
// (asyncio.Runner's KeyboardInterrupt; see <qiloop/net/signals.h>). Not a
// std::exception, as Python's derives from BaseException and as
// qi::CancelledError: a generic catch (const std::exception&) lets it
// through to main(), which usually ends the program.
class QILOOP_EXPORT KeyboardInterrupt {
 public:
  virtual ~KeyboardInterrupt();
  const char* what() const noexcept { return "qi::KeyboardInterrupt"; }
};

// qi::ValueError
// A value out of range for the call: releasing a BoundedSemaphore more
// often than it was acquired, one Queue::task_done() too many, a negative
// count (asyncio's ValueError).
class QILOOP_EXPORT ValueError : public std::invalid_argument {
 public:
  using std::invalid_argument::invalid_argument;
  ~ValueError() override;
};

// qi::ExceptionGroup
// Several failures at once: TaskGroup::wait() throws it when two or more
// children failed (one failure is rethrown as itself). exceptions() lists
// them in the order the children failed.
class QILOOP_EXPORT ExceptionGroup : public std::exception {
 public:
  ExceptionGroup(std::string message, std::vector<std::exception_ptr> exceptions);
  ~ExceptionGroup() override;
  // ExceptionGroup::what()
  // The message, then how many exceptions it holds and each one's what().
  const char* what() const noexcept override { return what_.c_str(); }
  // ExceptionGroup::message()
  // The message alone.
  const std::string& message() const noexcept { return message_; }
  // ExceptionGroup::exceptions()
  // The exceptions, in the order they happened; never empty.
  const std::vector<std::exception_ptr>& exceptions() const noexcept { return exceptions_; }

 private:
  std::string message_;
  std::vector<std::exception_ptr> exceptions_;
  std::string what_;
};

// qi::QueueEmpty
// qi::QueueFull
// qi::QueueShutDown
// Queue::get_nowait() on an empty queue; put_nowait() on a full one;
// put / get (and their _nowait forms) once shutdown() was called — get only
// once the queue is also empty, or at once after shutdown(immediate = true).
class QILOOP_EXPORT QueueEmpty : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  ~QueueEmpty() override;
};
class QILOOP_EXPORT QueueFull : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  ~QueueFull() override;
};
class QILOOP_EXPORT QueueShutDown : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  ~QueueShutDown() override;
};

// qi::BrokenBarrierError
// A Barrier was aborted or reset while (or before) a task waited on it. A
// qi::RuntimeError, as asyncio's derives from RuntimeError.
class QILOOP_EXPORT BrokenBarrierError : public RuntimeError {
 public:
  using RuntimeError::RuntimeError;
  ~BrokenBarrierError() override;
};

// qi::SignalSourceDestroyed
// The QObject whose signal a task awaited (qi::asyncsignal,
// qi::multisignal) was destroyed before it emitted — or the connection was
// cut under qiloop by a QObject::disconnect that named no receiver (its
// message says both). A qi::RuntimeError.
class QILOOP_EXPORT SignalSourceDestroyed : public RuntimeError {
 public:
  using RuntimeError::RuntimeError;
  ~SignalSourceDestroyed() override;
};

// qi::ConnectionError
// qi::BrokenPipeError         EPIPE, ESHUTDOWN: writing to a closed peer
// qi::ConnectionAbortedError  ECONNABORTED
// qi::ConnectionRefusedError  ECONNREFUSED: nobody listens at the address
// qi::ConnectionResetError    ECONNRESET: the peer reset the connection
// Python's ConnectionError family: qi::OSError subclasses carrying the errno.
class QILOOP_EXPORT ConnectionError : public OSError {
 public:
  using OSError::OSError;
  ~ConnectionError() override;
};
class QILOOP_EXPORT BrokenPipeError : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
  ~BrokenPipeError() override;
};
class QILOOP_EXPORT ConnectionAbortedError : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
  ~ConnectionAbortedError() override;
};
class QILOOP_EXPORT ConnectionRefusedError : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
  ~ConnectionRefusedError() override;
};
class QILOOP_EXPORT ConnectionResetError : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
  ~ConnectionResetError() override;
};

// qi::FileNotFoundError  ENOENT (a Unix socket path nobody bound)
// qi::PermissionError    EACCES, EPERM
class QILOOP_EXPORT FileNotFoundError : public OSError {
 public:
  using OSError::OSError;
  ~FileNotFoundError() override;
};
class QILOOP_EXPORT PermissionError : public OSError {
 public:
  using OSError::OSError;
  ~PermissionError() override;
};

// qi::GaiError
// Name resolution failed (Python's socket.gaierror, an OSError):
// code() is the EAI_* code (EAI_NONAME, ...), reason() gai_strerror's
// text; with EAI_SYSTEM, reason() also gives the errno's text.
class QILOOP_EXPORT GaiError : public OSError {
 public:
  GaiError(int eai_code, const std::string& context);
  ~GaiError() override;

 private:
  GaiError(int eai_code, std::string reason, const std::string& context);
};

// qi::SendfileNotAvailableError
// sendfile(2) cannot serve this pair of descriptors and the fallback was
// refused (asyncio's, a RuntimeError).
class QILOOP_EXPORT SendfileNotAvailableError : public RuntimeError {
 public:
  using RuntimeError::RuntimeError;
  ~SendfileNotAvailableError() override;
};

// qi::SSLError
// TLS failed (Python's ssl.SSLError, an OSError): the handshake, a record
// that does not decrypt, a setting OpenSSL refuses. what() carries
// OpenSSL's reason ("[SSL] wrong version number").
class QILOOP_EXPORT SSLError : public OSError {
 public:
  using OSError::OSError;
  ~SSLError() override;
};

// qi::SSLCertVerificationError
// The peer's certificate did not verify (Python's): what() reads
// "certificate verify failed: <OpenSSL's reason>" ("self-signed
// certificate", "hostname mismatch, certificate is not valid for
// 'example.org'"); verify_code() is OpenSSL's X509_V_ERR_* code.
class QILOOP_EXPORT SSLCertVerificationError : public SSLError {
 public:
  SSLCertVerificationError(long verify_code, const std::string& what_text)
      : SSLError(what_text), verify_code_(verify_code) {}
  ~SSLCertVerificationError() override;
  long verify_code() const noexcept { return verify_code_; }

 private:
  long verify_code_;
};

// qi::make_os_error()
// The exception an errno maps to (Python's mapping, PEP 3151):
// ECONNREFUSED -> ConnectionRefusedError, ECONNRESET -> ConnectionResetError,
// EPIPE / ESHUTDOWN -> BrokenPipeError, ECONNABORTED ->
// ConnectionAbortedError, ETIMEDOUT -> TimeoutError, ENOENT ->
// FileNotFoundError, EACCES / EPERM -> PermissionError, ESRCH ->
// ProcessLookupError, ECHILD -> ChildProcessError, anything else ->
// OSError. `context` says what failed (see OSError).
QILOOP_EXPORT std::exception_ptr make_os_error(int code, const std::string& context);
// qi::throw_os_error()
// Throws make_os_error(code, context).
[[noreturn]] QILOOP_EXPORT void throw_os_error(int code, const std::string& context);

// qi::EOFError
// The end of a stream came before a read was satisfied (Python's EOFError).
class QILOOP_EXPORT EOFError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
  ~EOFError() override;
};

// qi::IncompleteReadError
// StreamReader::readexactly / readuntil met the end of the stream first
// (asyncio's, an EOFError). partial() is what the stream held (taken from
// it); expected() the byte count asked for (nullopt for readuntil).
class QILOOP_EXPORT IncompleteReadError : public EOFError {
 public:
  IncompleteReadError(QByteArray partial, std::optional<qsizetype> expected);
  ~IncompleteReadError() override;
  const QByteArray& partial() const noexcept { return partial_; }
  std::optional<qsizetype> expected() const noexcept { return expected_; }

 private:
  QByteArray partial_;
  std::optional<qsizetype> expected_;
};

// qi::LimitOverrunError
// StreamReader::readuntil found no separator within the stream's limit, or
// one after it (asyncio's). The data stays in the stream; consumed() is how
// many bytes a caller may discard to skip the offending part.
class QILOOP_EXPORT LimitOverrunError : public std::runtime_error {
 public:
  LimitOverrunError(const std::string& message, qsizetype consumed)
      : std::runtime_error(message), consumed_(consumed) {}
  ~LimitOverrunError() override;
  qsizetype consumed() const noexcept { return consumed_; }

 private:
  qsizetype consumed_;
};

// qi::ProcessLookupError  ESRCH: no such process (Process::send_signal after the child was reaped)
// qi::ChildProcessError   ECHILD: no such child to wait for
class QILOOP_EXPORT ProcessLookupError : public OSError {
 public:
  using OSError::OSError;
  ~ProcessLookupError() override;
};
class QILOOP_EXPORT ChildProcessError : public OSError {
 public:
  using OSError::OSError;
  ~ChildProcessError() override;
};

}  // namespace qi
