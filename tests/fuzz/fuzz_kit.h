// tests/fuzz/fuzz_kit.h — what every fuzz target shares: one event loop for
// the whole process (nested mode, run_until_complete per input), a reader
// of the input's bytes, a fake transport that records pause/resume, and
// the check that stops the run on a broken invariant.
//
//   extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
//     fuzz::Input in(data, size);
//     fuzz::run(body(in));          // the loop runs the body to its end
//     return 0;
//   }
//
// A target is built twice (tests/fuzz/CMakeLists.txt): with libFuzzer in
// the fuzz preset, and in every other preset with replay_main.cpp, which
// runs the committed corpus as a regression test.
#pragma once

#include <qiloop/qiloop.h>
#include <qiloop/net/streams.h>

#include "../net/null_transport.h"

#include <QtCore/QByteArray>
#include <QtCore/QByteArrayView>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

namespace fuzz {

// FUZZ_CHECK(cond, what)
// A broken invariant: says which, where, then aborts (libFuzzer saves the
// input as a crash).
#define FUZZ_CHECK(cond, what)                                                                  \
  do {                                                                                         \
    if (!(cond)) ::fuzz::fail(__FILE__, __LINE__, #cond, what);                                \
  } while (0)

[[noreturn]] inline void fail(const char* file, int line, const char* cond, const char* what) {
  std::fprintf(stderr, "\nFUZZ CHECK FAILED %s:%d: %s\n  %s\n", file, line, cond, what);
  std::fflush(stderr);
  std::abort();
}

// fuzz::print_events()
// Prints a run's events (before a FUZZ_CHECK comparing runs fails).
void print_events(const char* title, const std::vector<std::string>& events);

// fuzz::loop()
// The process's loop, made on first use with its QCoreApplication. Neither
// is ever destroyed: libFuzzer exits from inside a run.
QiEventLoop& loop();

// fuzz::run()
// Runs body on loop() to its end (run_until_complete). An exception that
// escapes the body is a finding: it is printed, then the run aborts.
void run(qi::Coro<void> body);

// fuzz::Input
// The input read front to back. Past its end every read gives zeros (so
// any input is a valid program: it just stops varying).
class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) : p_(data), n_(size) {}
  bool empty() const noexcept { return n_ == 0; }
  std::size_t size() const noexcept { return n_; }
  std::uint8_t u8() noexcept {
    if (n_ == 0) return 0;
    --n_;
    return *p_++;
  }
  std::uint16_t u16() noexcept { return static_cast<std::uint16_t>(u8() | (u8() << 8)); }
  // The next k bytes, or fewer at the end.
  QByteArrayView take(std::size_t k) noexcept {
    k = k < n_ ? k : n_;
    QByteArrayView v(reinterpret_cast<const char*>(p_), static_cast<qsizetype>(k));
    p_ += k;
    n_ -= k;
    return v;
  }
  // A sub-input of the next k bytes (fewer at the end).
  Input split(std::size_t k) noexcept {
    QByteArrayView v = take(k);
    return Input(reinterpret_cast<const std::uint8_t*>(v.data()), static_cast<std::size_t>(v.size()));
  }

 private:
  const std::uint8_t* p_;
  std::size_t n_;
};

// fuzz::FakeTransport
// A transport that does nothing but record whether the reader paused its
// reading (test_support::NullTransport). Destroyed by its owner, not by a
// loop.
using FakeTransport = test_support::NullTransport;

// fuzz::yield()
// One loop iteration: a read woken by feed_data runs before it returns.
inline auto yield() { return qi::sleep(0); }

}  // namespace fuzz
