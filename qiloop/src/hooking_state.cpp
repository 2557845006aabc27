// hooking_state.cpp — the loop's list of combinators' futures holding hooks,
// which close() empties (see detail/hooking_state.h).
#include <qiloop/detail/hooking_state.h>
#include <qiloop/event_loop.h>

#include "loop_impl.h"

namespace qi::detail {

void CloseWatch::link(QiEventLoop& loop) noexcept {
  CloseWatch*& head = loop.impl_->watchers;
  list_ = &head;
  prev_ = nullptr;
  next_ = head;
  if (head) head->prev_ = this;
  head = this;
}

void CloseWatch::unlink() noexcept {
  if (!list_) return;
  (prev_ ? prev_->next_ : *list_) = next_;
  if (next_) next_->prev_ = prev_;
  list_ = nullptr;
  prev_ = next_ = nullptr;
}

void CloseWatch::drop_all(QiEventLoop& loop) noexcept {
  // Unlinked before it drops its hooks: destroying callbacks may unlink
  // (or release) other watchers, so the walk restarts at the head each time.
  while (CloseWatch* w = loop.impl_->watchers) {
    w->unlink();
    w->on_loop_closed();
  }
}

}  // namespace qi::detail
