// qiloop/detail/primitive_awaiter.h — what `co_await event.wait()`,
// `co_await lock.acquire()` and `co_await sem.acquire()` return. Internal;
// each primitive's header states its contract.
//
// The awaiter is the whole of a primitive's wait when it does not block: its
// await_ready runs the primitive's fast path (asyncio's `if not
// self.locked(): ...; return True`), so an uncontended wait makes no
// coroutine frame, no waiter and no allocation. Only when it blocks does it
// link a WaiterQueue::Entry (asyncio's `fut = create_future();
// waiters.append(fut)`), held inside the awaiter, itself a temporary in the
// awaiting coroutine's frame.
#pragma once

#include <qiloop/detail/waiter_queue.h>

#include <coroutine>
#include <mutex>
#include <optional>
#include <type_traits>

namespace qi::detail {

// A Primitive grants it friendship and provides
//   static constexpr const char* kName;       // "qi::Lock", for errors
//   bool try_fast();                          // takes it now, or false
//   WaiterQueue waiters_;
//   void finish_wait(WaiterQueue::Entry&);    // after the blocked wait: the
//                                             // entry's co_await result, the
//                                             // bookkeeping, CancelledError
// Result is void or a guard constructible from (Primitive&, std::adopt_lock).
template <class Primitive, class Result = void>
class [[nodiscard("co_await it: the wait starts at the co_await")]] PrimitiveAwaiter {
 public:
  explicit PrimitiveAwaiter(Primitive& p) noexcept : p_(p) {}
  PrimitiveAwaiter(const PrimitiveAwaiter&) = delete;
  PrimitiveAwaiter& operator=(const PrimitiveAwaiter&) = delete;

  bool await_ready() { return p_.try_fast(); }
  void await_suspend(std::coroutine_handle<> h) {
    entry_.emplace(p_.waiters_, Primitive::kName);
    entry_->await_suspend(h);  // throws (outside a task): entry_ unlinks as it goes
  }
  Result await_resume() {
    if (entry_) p_.finish_wait(*entry_);
    if constexpr (!std::is_void_v<Result>) return Result(p_, std::adopt_lock);
  }

 private:
  Primitive& p_;
  std::optional<WaiterQueue::Entry> entry_;
};

}  // namespace qi::detail
