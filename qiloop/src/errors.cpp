#include <qiloop/errors.h>

namespace qi {

// Out-of-line destructors anchor each class's vtable and type_info in the
// shared library, so a catch clause in another module matches the throw.
RuntimeError::~RuntimeError() = default;
InvalidStateError::~InvalidStateError() = default;
TimeoutError::~TimeoutError() = default;
CancelledError::~CancelledError() = default;

}  // namespace qi
