// qiloop/structured/detail/shield.h — the outer future behind qi::shield
// (asyncio's outer future and its two callbacks). Internal; the contract is
// in <qiloop/structured/shield.h>.
#pragma once

#include <qiloop/detail/hooking_state.h>
#include <qiloop/structured/detail/children.h>

#include <exception>
#include <type_traits>
#include <utility>

namespace qi::detail {

// The inner's outcome `s` passed on to the outer: its value (moved out or
// copied, child_value), its exception, or its cancellation; a copy that
// throws fails the outer with that exception.
template <class T, bool Move>
void shield_settle(FutureState<T>& outer, FutureStateBase& s) {
  if (s.cancelled()) {
    outer.cancel(s.cancel_message());
  } else if (std::exception_ptr e = s.exception()) {
    outer.finish_with_exception(std::move(e));
  } else if constexpr (std::is_void_v<T>) {
    outer.finish_with_value();
  } else {
    std::exception_ptr copy_error;
    try {
      outer.finish_with_value(child_value<T, Move>(s));
    } catch (...) {
      copy_error = std::current_exception();  // T's copy threw: the outer fails with it
    }
    if (copy_error) outer.finish_with_exception(std::move(copy_error));
  }
}

// Hooked on the inner (asyncio's _inner_done_callback: the outer finishes
// as the inner does) and on itself (_outer_done_callback: once the outer is
// done, by the inner or cancelled, it unhooks from a still pending inner).
// Both run from the loop, as asyncio's callbacks do, so an inner that
// finishes after the outer was cancelled but before the outer's own
// callback ran is still retrieved here.
template <class T, bool Move>
class ShieldState final : public HookingState<T> {
 public:
  // Hooks it on itself, then on inner (pending). Throws what
  // add_done_hook throws (std::bad_alloc), hooked on neither.
  static Future<T> make(QiEventLoop& loop, StateRef<FutureStateBase> inner) {
    auto* s = new ShieldState(loop, std::move(inner));
    Future<T> outer = FutureFromState<T>::adopt(s);
    s->add_done_hook(*s);  // no other callback yet: held inline, nothing allocated
    try {
      s->inner_id_ = s->inner_->add_done_hook(*s);
    } catch (...) {
      s->drop_callbacks();
      throw;
    }
    return outer;
  }

 private:
  ShieldState(QiEventLoop& loop, StateRef<FutureStateBase> inner)
      : HookingState<T>(loop), inner_(std::move(inner)) {}

  void on_done(FutureStateBase& f) override {
    if (&f == this) {
      // The inner goes with this callback: a shield lets go of it once the
      // outer is done (its outcome, if still to come, is the inner's own).
      StateRef<FutureStateBase> inner = std::move(inner_);
      if (!inner->done()) inner->remove_done_callback(inner_id_);
      return;
    }
    if (this->done()) {
      // The outer was done with this callback already scheduled (else it was
      // unhooked): asyncio marks the inner's outcome retrieved.
      if (!f.cancelled()) f.exception();
      return;
    }
    shield_settle<T, Move>(*this, f);
  }
  void drop_watched() noexcept override {
    // The inner goes too, as with the outer's own callback, which is dropped
    // here: a chain of shields still held from outside must not be left
    // holding each other (dropping its last handle would recurse once per
    // link, past the end of the stack for a long chain).
    StateRef<FutureStateBase> inner = std::move(inner_);
    if (inner) inner->drop_callbacks();
    this->drop_callbacks();
  }

  StateRef<FutureStateBase> inner_;  // until the outer's own callback ran
  uint64_t inner_id_ = 0;
};

}  // namespace qi::detail
