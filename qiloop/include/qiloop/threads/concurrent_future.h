// -----------------------------------------------------------------------------
// File: qiloop/threads/concurrent_future.h
// -----------------------------------------------------------------------------
//
// Running a coroutine on another thread's loop: qi::run_coroutine_threadsafe
// and qi::ConcurrentFuture<T> are asyncio's run_coroutine_threadsafe and the
// concurrent.futures.Future it returns; qi::wrap_future awaits one from a
// coroutine of any loop (asyncio.wrap_future).
//
// Example:
//
//   qi::LoopThread worker;                                   // <qiloop/threads/loop_thread.h>
//   qi::ConcurrentFuture<int> cf = qi::run_coroutine_threadsafe(work(), worker.loop());
//   int r = cf.result(2s);                 // blocking, from a plain thread (or main())
//
//   qi::Coro<int> on_my_loop() {           // from a coroutine of another loop:
//     int r = co_await qi::wrap_future(qi::run_coroutine_threadsafe(work(), worker.loop()));
//     co_return r;                         // back on this loop's thread
//   }
//
// Moving a coroutine between two loops' threads is that last line: the part
// inside run_coroutine_threadsafe runs on the worker's thread, the rest of
// on_my_loop() on its own; cancelling on_my_loop's task cancels the remote
// part too.
//
// Contract:
// - run_coroutine_threadsafe(coro, loop) schedules `coro` as a task of
//   `loop` (through loop.call_soon_threadsafe; any thread, also the loop's
//   own). The task starts on one of the loop's next iterations. Throws
//   qi::RuntimeError when the loop is closed (the coroutine is destroyed
//   unrun), std::invalid_argument for an empty Coro. `loop` must outlive
//   the call (as for call_soon_threadsafe).
// - The future ends as the coroutine does: its value, its exception (the
//   original type), or cancelled. A loop closed before the coroutine ran or
//   while it still ran fails it with qi::RuntimeError saying so: a
//   ConcurrentFuture never stays pending after its loop is gone.
// - cancel() (any thread): false when done; otherwise the future is
//   cancelled at once (its waiters and callbacks see qi::CancelledError) and
//   the loop is asked to cancel the task (call_soon_threadsafe): the
//   coroutine gets qi::CancelledError at its current co_await, or never runs.
//   What it does after that is not reported to the future (asyncio's rule).
// - result(timeout) blocks the calling thread until the future is done.
//   Throws qi::TimeoutError after `timeout` (the coroutine keeps running;
//   cancel() stops it), qi::CancelledError when cancelled, the coroutine's
//   exception with its original type, and qi::RuntimeError when called on
//   the thread of the loop that runs the coroutine while it is pending (it
//   would wait for itself forever: co_await qi::wrap_future(cf) there).
//   result() without a timeout waits as long as it takes.
// - add_done_callback(cb) runs cb(future) — or cb() — once the future is
//   done, on the thread that completes it: the loop's thread for a result,
//   the cancelling thread for cancel(), the calling thread at once when it is
//   already done. An exception escaping cb is logged (category "qiloop") and
//   dropped, as concurrent.futures does. No lock is held while cb runs.
// - co_await qi::wrap_future(cf) (a qi::Coro<T>) waits for cf from a
//   coroutine of any loop without blocking it and resumes on that loop's
//   thread; it yields a copy of the value (a move-only value is moved out:
//   await it once). Cancelling the awaiting task cancels cf, and so the
//   remote task (asyncio's _chain_future). A done cf does not suspend.
//
// Thread-safety: a ConcurrentFuture is a shared handle (copies refer to one
// state); every method may be called from any thread, concurrently.
// Re-entrancy: a done callback may call any method, of this future or
// another. Memory: one allocation for the state, one for the callback
// that carries the coroutine to the loop, one for its task.
#pragma once

#include <qiloop/coro.h>
#include <qiloop/event_loop.h>
#include <qiloop/threads/detail/concurrent_future.h>

#include <chrono>
#include <exception>
#include <memory>
#include <type_traits>
#include <utility>

class QiEventLoop;

namespace qi {

template <class T>
class ConcurrentFuture;
template <class T>
ConcurrentFuture<T> run_coroutine_threadsafe(Coro<T> coro, QiEventLoop& loop);
template <class T>
Coro<T> wrap_future(ConcurrentFuture<T> cf);

// qi::ConcurrentFuture<T>
//
// asyncio's concurrent.futures.Future for a coroutine run on a loop by
// run_coroutine_threadsafe (see the file comment). T as qi::Future's: held
// by value (void allowed).
template <class T>
class ConcurrentFuture {
 public:
  using value_type = T;

  // ConcurrentFuture::ConcurrentFuture()
  // An empty handle: valid() is false and every other call is undefined.
  // Futures come from run_coroutine_threadsafe.
  ConcurrentFuture() noexcept = default;

  // ConcurrentFuture::valid()
  bool valid() const noexcept { return static_cast<bool>(state_); }

  // ConcurrentFuture::done()
  // ConcurrentFuture::cancelled()
  // Finished (value, exception, or cancelled); cancelled. Never block.
  bool done() const { return state_->done(); }
  bool cancelled() const { return state_->cancelled(); }

  // ConcurrentFuture::cancel()
  // See the file comment. Returns false when already done.
  bool cancel() const { return state_->cancel(); }

  // ConcurrentFuture::result()
  // The value (a const reference, valid while a handle lives; nothing for
  // T = void) once done, blocking up to `timeout` (none: no limit). See the
  // file comment for what it throws.
  decltype(auto) result() const { return result_after(std::nullopt); }
  template <class Rep, class Period>
  decltype(auto) result(std::chrono::duration<Rep, Period> timeout) const {
    return result_after(detail::to_wait_limit(timeout));
  }

  // ConcurrentFuture::exception()
  // The coroutine's exception, or null after a value, blocking as result()
  // does. Throws qi::CancelledError when cancelled, qi::TimeoutError and
  // qi::RuntimeError as result() does.
  std::exception_ptr exception() const { return exception_after(std::nullopt); }
  template <class Rep, class Period>
  std::exception_ptr exception(std::chrono::duration<Rep, Period> timeout) const {
    return exception_after(detail::to_wait_limit(timeout));
  }

  // ConcurrentFuture::add_done_callback()
  // See the file comment. Throws std::bad_alloc only.
  template <class F>
  void add_done_callback(F&& cb) const;

  friend bool operator==(const ConcurrentFuture& a, const ConcurrentFuture& b) noexcept {
    return a.state_ == b.state_;
  }

 private:
  using State = detail::ConcurrentState<T>;
  friend ConcurrentFuture<T> run_coroutine_threadsafe<T>(Coro<T>, QiEventLoop&);
  friend Coro<T> wrap_future<T>(ConcurrentFuture<T>);
  explicit ConcurrentFuture(std::shared_ptr<State> s) noexcept : state_(std::move(s)) {}

  decltype(auto) result_after(std::optional<std::chrono::steady_clock::duration> limit) const {
    state_->wait(limit, "ConcurrentFuture::result");
    state_->rethrow();
    if constexpr (!std::is_void_v<T>) return static_cast<const T&>(state_->value());
  }
  std::exception_ptr exception_after(std::optional<std::chrono::steady_clock::duration> limit) const {
    state_->wait(limit, "ConcurrentFuture::exception");
    return state_->stored_exception();
  }

  std::shared_ptr<State> state_;
};

// qi::run_coroutine_threadsafe()
// Schedules coro as a task of `loop` (another thread's, usually) and
// returns the future of its outcome. See the file comment.
template <class T>
ConcurrentFuture<T> run_coroutine_threadsafe(Coro<T> coro, QiEventLoop& loop) {
  coro.check_runnable("run_coroutine_threadsafe");
  auto state = std::make_shared<detail::ConcurrentState<T>>(loop);
  detail::LoopLink link(state);
  loop.call_soon_threadsafe([&loop, coro = std::move(coro), link = std::move(link)]() mutable {
    detail::ConcurrentStateBase& st = link.state();  // the frame takes the link next
    detail::start_chained(loop, st, detail::run_chained<T>(std::move(coro), std::move(link)));
  });
  return ConcurrentFuture<T>(std::move(state));
}

// qi::wrap_future()
// A Coro that waits for cf without blocking its loop and yields its result
// on that loop's thread. See the file comment.
template <class T>
Coro<T> wrap_future(ConcurrentFuture<T> cf) {
  // A named awaiter: g++ 12 destroys the members of a braced temporary
  // awaiter twice when it is the operand of co_await.
  detail::ConcurrentAwaiter awaiter{cf.state_, {}};
  co_await awaiter;
  cf.state_->rethrow();
  if constexpr (std::is_void_v<T>)
    co_return;
  else if constexpr (std::is_copy_constructible_v<T>)
    co_return cf.state_->value();
  else
    co_return cf.state_->take();
}

// --- Implementation -----------------------------------------------------------

template <class T>
template <class F>
void ConcurrentFuture<T>::add_done_callback(F&& cb) const {
  using D = std::decay_t<F>;
  static_assert(std::is_invocable_v<D&, ConcurrentFuture<T>> || std::is_invocable_v<D&>,
                "qiloop: ConcurrentFuture::add_done_callback: the callback must take the future "
                "(qi::ConcurrentFuture<T>) or no argument");
  state_->add_done_callback([cb = std::forward<F>(cb)](detail::ConcurrentStateBase& s) mutable {
    if constexpr (std::is_invocable_v<D&, ConcurrentFuture<T>>)
      cb(ConcurrentFuture<T>(std::static_pointer_cast<State>(s.shared_from_this())));
    else
      cb();
  });
}

}  // namespace qi
