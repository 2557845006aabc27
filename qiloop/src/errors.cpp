#include <qiloop/detail/deadline.h>
#include <qiloop/errors.h>

#include <stdexcept>
#include <string>

namespace qi {

// Out-of-line destructors anchor each class's vtable and type_info in the
// shared library, so a catch clause in another module matches the throw.
RuntimeError::~RuntimeError() = default;
InvalidStateError::~InvalidStateError() = default;
TimeoutError::~TimeoutError() = default;
CancelledError::~CancelledError() = default;

}  // namespace qi

namespace qi::detail {

void throw_nan_delay(const char* api, const char* what) {
  throw std::invalid_argument(std::string(api) + ": the " + what +
                              " is NaN; pass a number of seconds (or a std::chrono duration)");
}

}  // namespace qi::detail
