// hooking_state.cpp — the loop's list of combinators' futures holding hooks,
// which close() empties (see detail/hooking_state.h).
#include <qiloop/detail/hooking_state.h>
#include <qiloop/event_loop.h>

#include "intrusive_list.h"
#include "loop_impl.h"

namespace qi::detail {

// (The list's fields are private: only members may name them.)
void CloseWatch::link(QiEventLoop& loop) noexcept {
  IntrusiveList<CloseWatch, &CloseWatch::list_, &CloseWatch::prev_, &CloseWatch::next_>::push_front(
      loop.impl_->watchers, this);
}

void CloseWatch::unlink() noexcept {
  IntrusiveList<CloseWatch, &CloseWatch::list_, &CloseWatch::prev_, &CloseWatch::next_>::unlink(this);
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
