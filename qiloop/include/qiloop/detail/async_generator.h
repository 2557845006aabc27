// qiloop/detail/async_generator.h — the machinery of qi::AsyncGenerator<T>:
// its promise and what `co_await gen.next()` / `co_await gen.aclose()` do.
// Internal; the contract is in <qiloop/async_generator.h>.
#pragma once

#include <qiloop/coro.h>
#include <qiloop/errors.h>
#include <qiloop/export.h>

#include <coroutine>
#include <cstdint>
#include <exception>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>

class QiEventLoop;

namespace qi::detail {

// The type-independent half of a generator's promise. A PromiseBase, so its
// frame comes from the frame pool, a Coro it awaits links itself below it
// (`awaited`), and finishing transfers to `continuation` (the consumer).
//
// Invariant: `running` while an operation (next or aclose) is inside the
// generator, i.e. between its resumption and its next co_yield or its end;
// `finished` once it returned, threw, or was closed: no operation resumes it
// again. While started, not finished and its loop is open, it is linked in
// that loop's registry (or, once shutdown_asyncgens took it, its closing
// list): `list` is the head of the list it is in, null when in none.
struct AsyncGenBase : PromiseBase {
  AsyncGenBase() = default;
  AsyncGenBase(const AsyncGenBase&) = delete;
  AsyncGenBase& operator=(const AsyncGenBase&) = delete;
  ~AsyncGenBase() { unlink(); }

  std::coroutine_handle<> self;  // this frame
  AsyncGenBase** list = nullptr;
  AsyncGenBase* prev_in_list = nullptr;
  AsyncGenBase* next_in_list = nullptr;
  bool running = false;
  bool finished = false;
  bool closing = false;     // aclose() threw GeneratorExit at the pending co_yield
  bool yielded = false;     // the running operation ended at a co_yield
  bool owner_gone = false;  // the AsyncGenerator went while an operation ran: that operation destroys the frame

  // `api` ("anext()" or "aclose()"): throws qi::RuntimeError while another
  // operation runs inside the generator.
  void check_not_running(const char* api) const {
    if (running) [[unlikely]]
      throw_already_running(api);
  }
  [[noreturn]] QILOOP_EXPORT static void throw_already_running(const char* api);
  // An operation resumes the generator for `consumer`; the first one links
  // it in the running loop's registry.
  void enter(std::coroutine_handle<> consumer, bool close) noexcept {
    continuation = consumer;
    running = true;
    yielded = false;
    closing = close;
    if (!started) [[unlikely]]
      first_start();
  }
  QILOOP_EXPORT void first_start() noexcept;
  // The operation ended: it yielded, returned or threw. A generator that
  // ended, or was being closed, is finished.
  void leave() noexcept {
    running = false;
    if (self.done() || closing) finish();
  }
  void finish() noexcept {
    finished = true;
    unlink();
  }
  // The consumer's frame went while the operation was inside the generator
  // (its task was destroyed): nothing will resume it; it is finished, and
  // its frame waits for its owner (or goes now, if the owner went too).
  QILOOP_EXPORT void abandon() noexcept;
  // Destroys the frame now if its owner already went.
  void release_if_orphaned() noexcept {
    if (owner_gone) destroy_frame();
  }
  // What the owner's destructor does: destroys the frame, or leaves that to
  // the operation running inside it.
  void drop_owner() noexcept {
    if (running)
      owner_gone = true;
    else
      destroy_frame();
  }
  // Destroys the frame (and a chain of Coros it is suspended in, innermost
  // first); this promise goes with it.
  QILOOP_EXPORT void destroy_frame() noexcept;
  QILOOP_EXPORT void unlink() noexcept;
  // "asynchronous generator 0x...", for reports.
  QILOOP_EXPORT std::string describe() const;

  // shutdown_asyncgens' half (src/async_generator.cpp): moves the loop's
  // registry to its closing list and returns how many it holds; each closer
  // task then closes the first generator still in that list.
  QILOOP_EXPORT static std::size_t begin_closing(QiEventLoop& loop) noexcept;
  QILOOP_EXPORT static Coro<void> close_next(QiEventLoop& loop);
  // close(): the loop forgets every generator (they stay usable; nothing
  // closes them but their owners).
  QILOOP_EXPORT static void forget_all(QiEventLoop& loop) noexcept;
};

// What co_yield does: hands the value to the consumer (symmetric transfer,
// as a finishing Coro does) and, when resumed by aclose(), throws
// qi::GeneratorExit there.
struct YieldAwaiter : PromiseBase::FinalAwaiter {
  AsyncGenBase* gen;
  void await_resume() const {
    if (gen->closing) throw GeneratorExit();
  }
};

template <class T>
struct AsyncGenPromise : AsyncGenBase {
  std::optional<T> value;
  template <class U = T>
    requires std::is_constructible_v<T, U&&>
  YieldAwaiter yield_value(U&& v) {
    value.emplace(std::forward<U>(v));
    yielded = true;
    return YieldAwaiter{{}, this};
  }
  void return_void() noexcept {}
};

// The half of next() and aclose() that resumes the generator. Phases: not
// entered (the generator was finished: nothing to run), in flight (inside
// the generator), resumed (the consumer has the outcome).
struct GenOpAwaiter {
  AsyncGenBase* gen;
  bool close;
  uint8_t phase = kNotEntered;
  static constexpr uint8_t kNotEntered = 0, kInFlight = 1, kResumed = 2;

  GenOpAwaiter(AsyncGenBase* g, bool c) noexcept : gen(g), close(c) {}
  GenOpAwaiter(const GenOpAwaiter&) = delete;
  GenOpAwaiter& operator=(const GenOpAwaiter&) = delete;
  ~GenOpAwaiter() {
    if (phase == kInFlight) [[unlikely]]
      gen->abandon();
  }

#if QILOOP_TAIL_CALLS
  std::coroutine_handle<> await_suspend(std::coroutine_handle<> consumer) noexcept {
    gen->enter(consumer, close);
    phase = kInFlight;
    return gen->self;
  }
#else
  bool await_suspend(std::coroutine_handle<> consumer) noexcept {
    gen->enter(consumer, close);
    phase = kInFlight;
    // As CoroAwaiter: the generator runs from here, and transfers back only
    // if it yields or ends after suspending elsewhere first.
    gen->inline_await = true;
    gen->self.resume();
    gen->inline_await = false;
    return !(gen->yielded || gen->self.done());
  }
#endif

  // The operation's outcome; frees an orphaned frame once it is read.
  struct Outcome {
    bool yielded;
    std::exception_ptr exception;
  };
  Outcome take_outcome() noexcept {
    phase = kResumed;
    gen->leave();
    return {gen->yielded, std::exchange(gen->exception, nullptr)};
  }
};

// co_await gen.next()
template <class T>
struct [[nodiscard("co_await it: next() on its own does nothing")]] NextAwaiter : GenOpAwaiter {
  explicit NextAwaiter(AsyncGenPromise<T>* p) noexcept : GenOpAwaiter(p, false) {}
  bool await_ready() const {
    gen->check_not_running("anext()");
    return gen->finished;
  }
  std::optional<T> await_resume() {
    if (phase == kNotEntered) return std::nullopt;
    Outcome o = take_outcome();
    struct Release {
      AsyncGenBase* g;
      ~Release() { g->release_if_orphaned(); }
    } release{gen};
    if (o.exception) std::rethrow_exception(o.exception);
    if (!o.yielded) return std::nullopt;
    auto& slot = static_cast<AsyncGenPromise<T>*>(gen)->value;
    std::optional<T> v(std::move(slot));
    slot.reset();
    return v;
  }
};

// co_await gen.aclose() (type-independent: the typed value is not read).
struct [[nodiscard("co_await it: aclose() on its own does nothing")]] AcloseAwaiter : GenOpAwaiter {
  explicit AcloseAwaiter(AsyncGenBase* g) noexcept : GenOpAwaiter(g, true) {}
  // A generator never started is finished at once (its body never runs).
  bool await_ready() const {
    gen->check_not_running("aclose()");
    if (!gen->started && !gen->finished) gen->finish();
    return gen->finished;
  }
  void await_resume() {
    if (phase == kNotEntered) return;
    Outcome o = take_outcome();
    gen->release_if_orphaned();
    check_close_outcome(o);
  }
  // Throws qi::RuntimeError when the generator co_yielded instead of
  // finishing, or what it threw other than qi::GeneratorExit.
  QILOOP_EXPORT static void check_close_outcome(const Outcome& o);
};

}  // namespace qi::detail
