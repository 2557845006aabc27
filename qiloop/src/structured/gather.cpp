// gather.cpp — asyncio's gather _done_callback and _GatheringFuture.cancel,
// for every gather's children whatever their types; and the argument checks
// every combinator shares (ensure_future's).
#include <qiloop/structured/detail/gather.h>

#include <algorithm>
#include <stdexcept>
#include <string>

namespace qi::detail {

void check_child_future(FutureStateBase* f, QiEventLoop*& loop, const char* api) {
  if (!f)
    throw std::invalid_argument(std::string(api) +
                                ": a task or future handle is empty (default-constructed or moved-from); pass "
                                "one that create_task / create_future returned");
  QiEventLoop* l = f->loop();
  if (!l) f->throw_loop_destroyed(api);
  if (loop && loop != l)
    throw ValueError(std::string(api) +
                     ": the futures belong to different event loops; all must be of one loop (hand results "
                     "between loops with call_soon_threadsafe)");
  loop = l;
}

QiEventLoop& children_loop(QiEventLoop* seen) { return seen ? *seen : get_running_loop(); }

bool shared_children(FutureStateBase* const* states, std::size_t n, bool copyable, const char* api) {
  bool twice = false;
  for (std::size_t i = 0; i < n; ++i) twice |= states[i]->mark_seen();
  for (std::size_t i = 0; i < n; ++i) states[i]->clear_seen();
  if (twice && !copyable) throw_shared_uncopyable(api);
  return twice;
}

void throw_shared_uncopyable(const char* api) {
  throw ValueError(std::string(api) +
                   ": the same task or future is passed twice and its result type cannot be copied, so it cannot "
                   "be yielded twice; pass it once");
}

bool GatherCore::child_done(FutureStateBase& child) {
  ++finished;
  if (outer->done()) {
    // The gather failed already (or was completed by hand): what this child
    // ended with is gather's to retrieve, as asyncio does.
    if (!child.cancelled()) child.exception();
    return false;
  }
  if (!settled) {
    if (child.cancelled()) {
      outer->finish_with_exception(std::make_exception_ptr(CancelledError(child.cancel_message())));
      return false;
    }
    if (std::exception_ptr e = child.exception()) {
      outer->finish_with_exception(std::move(e));
      return false;
    }
  } else if (!child.cancelled()) {
    // Retrieved now: a cancelled gather_settled yields no Outcome for it,
    // and asyncio reads every child's exception before it checks that.
    child.exception();
  }
  if (finished < count) return false;
  if (cancel_requested) {
    // asyncio raises the last child's _make_cancelled_error(): its message
    // if that child was cancelled, none otherwise.
    const FutureStateBase& last = *children[count - 1];
    outer->finish_with_exception(
        std::make_exception_ptr(CancelledError(last.cancelled() ? last.cancel_message() : std::string())));
    return false;
  }
  return true;
}

bool GatherCore::cancel(const std::string& msg) {
  outer->check_thread_first("cancel");
  if (outer->done()) return false;
  bool any = false;
  for (std::size_t i = 0; i < count; ++i)
    if (children[i]->cancel(msg)) any = true;
  // Only a request that reached a child makes the gather fail with
  // CancelledError (asyncio's issue 32684).
  if (any) cancel_requested = true;
  return any;
}

void GatherCore::fail(std::exception_ptr e) noexcept {
  try {
    if (!outer->done()) outer->finish_with_exception(std::move(e));
  } catch (...) {
    // The loop is closed: nothing can run its done callbacks any more.
  }
}

}  // namespace qi::detail
