// Awaiting from a coroutine that no task runs (as a coroutine of another
// library would), for the tests of "awaited outside a task" errors.
#pragma once

#include <qiloop/errors.h>

#include <coroutine>
#include <exception>
#include <string>

namespace outside_task {

// A coroutine type that is not qiloop's: it starts at once, inside its
// caller, and nothing resumes it once suspended.
struct Detached {
  struct promise_type {
    Detached get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
};

// co_awaits make() outside any task (call it where no task step runs: a
// plain TEST, a loop callback); `error` gets the qi::RuntimeError's message.
// The await must throw: a coroutine that suspended here would never end.
template <class Make>
Detached await_outside_a_task(Make make, std::string& error) {
  try {
    co_await make();
    error = "no error: the await went through";
  } catch (const qi::RuntimeError& e) {
    error = e.what();
  }
}

}  // namespace outside_task
