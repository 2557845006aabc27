// qiloop/detail/hooking_state.h — the future of a combinator that hooks on
// other futures (gather's children, shield's inner), and how close() breaks
// the cycle that makes. Internal; each combinator's header states its
// contract.
//
// The cycle: a pending future's hook holds the combinator's future, which
// holds the future it watches. The hooks let go when the watched futures
// finish; but once the loop is closed, a pending future can never run a done
// callback (completing it schedules them, which a closed loop refuses), so
// an awaiter destroyed by close() would leave the pair alive for good. While
// a combinator's future holds hooks it is on its loop's list of watchers;
// close() — and the loop's destructor, for a combinator made after close() —
// drops the done callbacks of the futures it watches.
#pragma once

#include <qiloop/detail/future_state.h>
#include <qiloop/export.h>

#include <cstddef>

class QiEventLoop;

namespace qi::detail {

// The part close() walks. Linked and unlinked on the loop's thread only; a
// linked watcher is never destroyed (it holds a reference to itself while
// it has hooks), and close() and the destructor leave none linked.
class QILOOP_EXPORT CloseWatch {
 public:
  CloseWatch(const CloseWatch&) = delete;
  CloseWatch& operator=(const CloseWatch&) = delete;

  // close() and ~QiEventLoop (src/hooking_state.cpp): unlinks each watcher
  // of loop, then has it drop its hooks, until none is left.
  static void drop_all(QiEventLoop& loop) noexcept;

 protected:
  CloseWatch() = default;
  ~CloseWatch() { unlink(); }
  void link(QiEventLoop& loop) noexcept;
  void unlink() noexcept;

 private:
  // Drops the done callbacks of the futures this one watches (pending: none
  // of them can run), which releases its hooks.
  virtual void on_loop_closed() noexcept = 0;

  CloseWatch** list_ = nullptr;  // the head of the list it is in; null when in none
  CloseWatch* prev_ = nullptr;
  CloseWatch* next_ = nullptr;
};

// A combinator's future that hooks on the futures it watches: one reference
// for all its hooks (they come and go on the loop's thread: an atomic count
// per hook would cost more than the rest of the hook), and linked in its
// loop's watchers while it has any. The derived class names what it watches
// in drop_watched().
template <class R>
class HookingState : public FutureState<R>, protected DoneHook, private CloseWatch {
 protected:
  explicit HookingState(QiEventLoop& loop) : FutureState<R>(loop) {}
  // Each watched future, and this one if it hooks on itself: drop_callbacks().
  virtual void drop_watched() noexcept = 0;

 private:
  void hook_retain() noexcept override {
    if (hooks_++ != 0) return;
    this->retain();
    if (QiEventLoop* l = this->loop()) link(*l);
  }
  void hook_release() noexcept override {
    if (--hooks_ != 0) return;
    unlink();
    this->release();  // may destroy this
  }
  void on_loop_closed() noexcept override {
    StateRef<FutureStateBase> keep(this);  // the hooks let go of it as they go
    drop_watched();
  }
  std::size_t hooks_ = 0;  // futures whose callbacks hold this hook
};

}  // namespace qi::detail
