// -----------------------------------------------------------------------------
// File: qiloop/async_generator.h
// -----------------------------------------------------------------------------
//
// qi::AsyncGenerator<T> is Python's async generator: a coroutine that both
// co_awaits and co_yields.
//
// Example:
//
//   qi::AsyncGenerator<int> ticks() {
//     Connection c = open();                  // closed by its destructor
//     for (int i = 0;; ++i) {
//       co_await qi::sleep(1s);
//       co_yield i;
//     }
//   }
//
//   auto gen = ticks();                       // nothing runs yet
//   while (std::optional<int> i = co_await gen.next()) {
//     if (*i == 3) break;
//   }
//   co_await gen.aclose();                    // GeneratorExit at its co_yield (optional:
//                                             // destroying it runs its destructors too)
//
// Contract (asyncio 3.13's, see docs/concurrency.md):
// - Lazy: calling ticks() creates the frame; the body runs from the first
//   next(), inside the consumer's task, like an awaited qi::Coro (no trip
//   through the loop). It may co_await whatever a Coro may: futures, tasks,
//   qi::sleep, Coros, other generators' next().
// - `co_await gen.next()` runs the body to its next co_yield and returns the
//   value, or std::nullopt once the body returned (and on every later call).
//   An exception escaping the body reaches that next() with its original
//   type; the generator is then finished (later calls: std::nullopt).
//   Cancelling the consumer's task while the body awaits inside delivers
//   qi::CancelledError there; escaping the body, it reaches the consumer,
//   and the generator is finished.
// - `co_await gen.aclose()` closes a generator suspended at a co_yield: that
//   co_yield throws qi::GeneratorExit, so the body's catch clauses and
//   destructors run, and its clean-up may co_await (after the catch clause:
//   C++ allows no co_await inside one; keep std::current_exception() and
//   rethrow it once the clean-up awaited). aclose() returns when
//   the body ended, with GeneratorExit or normally; what else the body
//   throws, aclose() rethrows. A body that co_yields again makes aclose()
//   throw qi::RuntimeError ("async generator ignored GeneratorExit"; the
//   generator is finished, its frame waits at that co_yield for the
//   destructor). aclose() on a generator never started or finished does
//   nothing, and next() then returns std::nullopt.
// - One operation at a time: next() or aclose() while another one is still
//   inside the body (two consumers, or a call from the body itself) throws
//   qi::RuntimeError ("already running").
// - Destroying a generator suspended at a co_yield (or never started, or
//   finished) destroys its frame before the destructor returns: the
//   destructors of its locals run, but not its catch clauses, and nothing
//   can co_await; aclose() first if the clean-up must await. Destroyed
//   while an operation runs inside it (the owner and the consumer differ),
//   the frame goes when that operation ends. A generator whose consumer's
//   task was destroyed while inside it (loop.close() with the task pending)
//   is finished; its frame, still suspended in its co_await, goes with its
//   owner, a chain of Coros it awaits innermost first.
// - The loop keeps a weak registry of its started, unfinished generators:
//   loop.shutdown_asyncgens() closes them, and QiRunner, qi::run and
//   QiEventLoop::shutdown() call it (after cancelling the leftover tasks).
//
// Thread-safety: a generator runs on the thread of the loop whose tasks
// consume it. Re-entrancy: see "One operation at a time". Move-only T works
// (next() moves the value out); T cannot be void or a reference.
//
// The promise and awaiters are in <qiloop/detail/async_generator.h>.
#pragma once

#include <qiloop/coro.h>
#include <qiloop/detail/async_generator.h>
#include <qiloop/errors.h>

#include <coroutine>
#include <optional>
#include <stdexcept>
#include <type_traits>
#include <utility>

namespace qi {

template <class T>
class [[nodiscard]] AsyncGenerator {
  static_assert(!std::is_void_v<T> && !std::is_reference_v<T> && !std::is_array_v<T> && !std::is_function_v<T>,
                "qiloop: qi::AsyncGenerator<T> yields values: T cannot be void, a reference, an array or a "
                "function type; yield a pointer or std::reference_wrapper<T> instead");

 public:
  struct promise_type : detail::AsyncGenPromise<T> {
    AsyncGenerator get_return_object() noexcept {
      auto h = std::coroutine_handle<promise_type>::from_promise(*this);
      this->self = h;
      return AsyncGenerator(h);
    }
  };
  using handle_type = std::coroutine_handle<promise_type>;
  using value_type = T;

  // AsyncGenerator::AsyncGenerator()
  // An empty generator (valid() is false). Moving leaves the source empty.
  AsyncGenerator() noexcept = default;
  AsyncGenerator(AsyncGenerator&& o) noexcept : frame_(std::exchange(o.frame_, nullptr)) {}
  AsyncGenerator& operator=(AsyncGenerator&& o) noexcept {
    if (this != &o) {
      reset();
      frame_ = std::exchange(o.frame_, nullptr);
    }
    return *this;
  }
  AsyncGenerator(const AsyncGenerator&) = delete;
  AsyncGenerator& operator=(const AsyncGenerator&) = delete;

  // AsyncGenerator::~AsyncGenerator()
  // Destroys the frame, running the destructors of its locals (see the file
  // comment). Never throws.
  ~AsyncGenerator() { reset(); }

  // AsyncGenerator::valid()
  // False for a default-constructed or moved-from generator.
  bool valid() const noexcept { return static_cast<bool>(frame_); }

  // AsyncGenerator::next()
  // `co_await gen.next()`: the next value, or std::nullopt once finished.
  // Throws what the body throws; qi::RuntimeError while another operation
  // runs inside the body; std::invalid_argument for an empty generator.
  detail::NextAwaiter<T> next() {
    check_valid("next");
    return detail::NextAwaiter<T>(&frame_.promise());
  }

  // AsyncGenerator::aclose()
  // `co_await gen.aclose()`: closes the generator (see the file comment).
  // Throws qi::RuntimeError when the body ignored GeneratorExit or while
  // another operation runs inside it; what the body's clean-up throws;
  // std::invalid_argument for an empty generator.
  detail::AcloseAwaiter aclose() {
    check_valid("aclose");
    return detail::AcloseAwaiter(&frame_.promise());
  }

  // AsyncGenerator::finished()
  // Whether the body returned, threw, or was closed (next() then returns
  // std::nullopt). False for an empty generator.
  bool finished() const noexcept { return frame_ && frame_.promise().finished; }

 private:
  explicit AsyncGenerator(handle_type h) noexcept : frame_(h) {}
  void check_valid(const char* api) const {
    if (!frame_) [[unlikely]]
      throw std::invalid_argument(std::string("AsyncGenerator::") + api +
                                  ": the generator is empty (default-constructed or moved from); call the "
                                  "generator function for a new one");
  }
  void reset() noexcept {
    if (frame_) std::exchange(frame_, nullptr).promise().drop_owner();
  }
  handle_type frame_;
};

}  // namespace qi
