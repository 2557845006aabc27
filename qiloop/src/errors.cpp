#include <qiloop/detail/deadline.h>
#include <qiloop/errors.h>

#include <exception>
#include <stdexcept>
#include <string>
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

}  // namespace

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
