#include <qiloop/detail/deadline.h>
#include <qiloop/errors.h>

#include <netdb.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace qi {

// Out-of-line destructors anchor each class's vtable and type_info in the
// shared library, so a catch clause in another module matches the throw.
RuntimeError::~RuntimeError() = default;
InvalidStateError::~InvalidStateError() = default;
TimeoutError::~TimeoutError() = default;
CancelledError::~CancelledError() = default;
GeneratorExit::~GeneratorExit() = default;
KeyboardInterrupt::~KeyboardInterrupt() = default;
ValueError::~ValueError() = default;
QueueEmpty::~QueueEmpty() = default;
QueueFull::~QueueFull() = default;
QueueShutDown::~QueueShutDown() = default;
BrokenBarrierError::~BrokenBarrierError() = default;
SignalSourceDestroyed::~SignalSourceDestroyed() = default;
ExceptionGroup::~ExceptionGroup() = default;
OSError::~OSError() = default;
ConnectionError::~ConnectionError() = default;
BrokenPipeError::~BrokenPipeError() = default;
ConnectionAbortedError::~ConnectionAbortedError() = default;
ConnectionRefusedError::~ConnectionRefusedError() = default;
ConnectionResetError::~ConnectionResetError() = default;
FileNotFoundError::~FileNotFoundError() = default;
PermissionError::~PermissionError() = default;
ProcessLookupError::~ProcessLookupError() = default;
ChildProcessError::~ChildProcessError() = default;
GaiError::~GaiError() = default;
SendfileNotAvailableError::~SendfileNotAvailableError() = default;
SSLError::~SSLError() = default;
SSLCertVerificationError::~SSLCertVerificationError() = default;
EOFError::~EOFError() = default;
IncompleteReadError::~IncompleteReadError() = default;
LimitOverrunError::~LimitOverrunError() = default;

IncompleteReadError::IncompleteReadError(QByteArray partial, std::optional<qsizetype> expected)
    : EOFError(std::to_string(partial.size()) + " bytes read on a total of " +
               (expected ? std::to_string(*expected) : std::string("undefined")) + " expected bytes"),
      partial_(std::move(partial)),
      expected_(expected) {}

namespace {

std::string describe_one(const std::exception_ptr& e) {
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (const CancelledError& c) {
    return std::string("qi::CancelledError: ") + c.what();
  } catch (...) {
    return "an exception of unknown type";
  }
}

std::string errno_text(int code) {
  char buf[256];
  // The GNU strerror_r returns its text (maybe not in buf); the XSI one an int.
  auto r = strerror_r(code, buf, sizeof buf);
  if constexpr (std::is_same_v<decltype(r), char*>)
    return r;
  else
    return r == 0 ? buf : "errno " + std::to_string(code);
}

std::string errno_name(int code) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
  if (const char* n = strerrorname_np(code)) return n;
#endif
  return "errno " + std::to_string(code);
}

std::string gai_text(int eai_code) {
  std::string text = gai_strerror(eai_code);
  if (eai_code == EAI_SYSTEM) text += " (" + errno_text(errno) + ")";
  return text;
}

}  // namespace

OSError::OSError(const std::string& message) : std::runtime_error(message) {}

OSError::OSError(int code, const std::string& context)
    : std::runtime_error(context + ": " + errno_text(code) + " [" + errno_name(code) + "]"),
      code_(code),
      reason_(errno_text(code)) {}

GaiError::GaiError(int eai_code, const std::string& context) : GaiError(eai_code, gai_text(eai_code), context) {}

GaiError::GaiError(int eai_code, std::string reason, const std::string& context)
    : OSError(eai_code, reason, context + ": " + reason) {}

OSError::OSError(int code, std::string reason, const std::string& what_text)
    : std::runtime_error(what_text), code_(code), reason_(std::move(reason)) {}

std::exception_ptr make_os_error(int code, const std::string& context) {
  switch (code) {
    case ECONNREFUSED: return std::make_exception_ptr(ConnectionRefusedError(code, context));
    case ECONNRESET: return std::make_exception_ptr(ConnectionResetError(code, context));
    case EPIPE:
    case ESHUTDOWN: return std::make_exception_ptr(BrokenPipeError(code, context));
    case ECONNABORTED: return std::make_exception_ptr(ConnectionAbortedError(code, context));
    case ETIMEDOUT: return std::make_exception_ptr(TimeoutError(code, context));
    case ENOENT: return std::make_exception_ptr(FileNotFoundError(code, context));
    case EACCES:
    case EPERM: return std::make_exception_ptr(PermissionError(code, context));
    case ESRCH: return std::make_exception_ptr(ProcessLookupError(code, context));
    case ECHILD: return std::make_exception_ptr(ChildProcessError(code, context));
    default: return std::make_exception_ptr(OSError(code, context));
  }
}

void throw_os_error(int code, const std::string& context) { std::rethrow_exception(make_os_error(code, context)); }

ExceptionGroup::ExceptionGroup(std::string message, std::vector<std::exception_ptr> exceptions)
    : message_(std::move(message)), exceptions_(std::move(exceptions)) {
  if (exceptions_.empty())
    throw std::invalid_argument("qi::ExceptionGroup: no exceptions given; an ExceptionGroup holds at least one");
  for (const auto& e : exceptions_)
    if (!e) throw std::invalid_argument("qi::ExceptionGroup: a null exception_ptr; pass only exceptions that happened");
  what_ = message_ + " (" + std::to_string(exceptions_.size()) + " sub-exception" +
          (exceptions_.size() == 1 ? "" : "s") + ")";
  for (std::size_t i = 0; i < exceptions_.size(); ++i)
    what_ += "\n  [" + std::to_string(i + 1) + "] " + describe_one(exceptions_[i]);
}

}  // namespace qi

namespace qi::detail {

void throw_nan_delay(const char* api, const char* what) {
  throw std::invalid_argument(std::string(api) + ": the " + what +
                              " is NaN; pass a number of seconds (or a std::chrono duration)");
}

}  // namespace qi::detail
