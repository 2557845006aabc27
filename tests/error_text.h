// The message of the exception a call throws, for tests that check the
// words of an error as well as its type (docs/misuse.md quotes them).
#pragma once

#include <gtest/gtest.h>

#include <string>

namespace error_text {

// what() of the E that f() throws. Throwing nothing is a test failure (and
// ""); an exception of another type propagates, failing the test with its
// own message.
template <class E, class F>
std::string what_of(F&& f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "the call threw nothing";
  return {};
}

}  // namespace error_text
