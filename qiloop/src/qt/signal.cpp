// signal.cpp — the out-of-line part of the signal machinery
// (<qiloop/qt/detail/signal.h>): its errors and disconnection.
#include <qiloop/qt/detail/signal.h>

#include <stdexcept>
#include <string>

namespace qi::detail {

void disconnect_all(QMetaObject::Connection* conns, std::size_t n) noexcept {
  for (std::size_t i = 0; i < n; ++i)
    if (conns[i]) QObject::disconnect(std::exchange(conns[i], QMetaObject::Connection()));
}

void check_sender(const void* sender, const char* api) {
  if (!sender)
    throw std::invalid_argument(std::string(api) +
                                ": the sender is null; pass a pointer to a living QObject whose signal you mean "
                                "to await");
}

void check_capacity(std::size_t capacity, const char* api) {
  if (capacity == 0)
    throw std::invalid_argument(std::string(api) +
                                ": the capacity is 0; a stream buffers at least one item (pass 1 to keep only the "
                                "latest, or leave the default)");
}

void throw_already_awaited(const char* api) {
  throw qi::RuntimeError(std::string(api) +
                         ": this awaitable was already awaited (or moved from); it waits once: call " + api +
                         " again for the next emission, or use qi::signal_stream to receive every emission");
}

std::exception_ptr source_gone_error(const char* api, bool connection_cut) noexcept {
  try {
    std::string what = std::string(api) + ": the sender was destroyed before it emitted the signal";
    if (connection_cut)
      what +=
          " (or its connection was cut by a QObject::disconnect that named no receiver: disconnect your own "
          "connections through their QMetaObject::Connection)";
    return std::make_exception_ptr(qi::SignalSourceDestroyed(what));
  } catch (...) {
    return std::current_exception();  // std::bad_alloc: the wait still ends
  }
}

void throw_source_destroyed(const char* api) { std::rethrow_exception(source_gone_error(api, false)); }

std::exception_ptr not_a_signal_error(const char* api) {
  return std::make_exception_ptr(qi::RuntimeError(
      std::string(api) +
      ": Qt refused the connection: the member function is not a signal of the sender's class (declare it under "
      "`signals:` in a class with Q_OBJECT)"));
}

}  // namespace qi::detail
