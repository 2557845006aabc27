// async_generator.cpp — qi::AsyncGenerator's out-of-line half: the loop's
// registry of started generators (asyncio's _asyncgens, a weak set), and
// shutdown_asyncgens(), which closes them.
#include <qiloop/async_generator.h>
#include <qiloop/event_loop.h>

#include "intrusive_list.h"
#include "loop_impl.h"

#include <cstdio>
#include <string>
#include <vector>

namespace qi::detail {

namespace {

using GenList =
    IntrusiveList<AsyncGenBase, &AsyncGenBase::list, &AsyncGenBase::prev_in_list, &AsyncGenBase::next_in_list>;

}  // namespace

void AsyncGenBase::throw_already_running(const char* api) {
  throw RuntimeError(std::string(api) +
                     ": asynchronous generator is already running (another next() or aclose() of it has not "
                     "finished: a second consumer, or a call from the generator's own body); await one "
                     "operation at a time, or give each consumer a generator of its own");
}

// asyncio's first-iteration hook: a generator joins the registry of the
// loop it starts on.
void AsyncGenBase::first_start() noexcept {
  started = true;
  if (QiEventLoop* loop = qi::running_loop(); loop && !loop->is_closed())
    GenList::push_front(loop->impl_->asyncgens, this);
}

void AsyncGenBase::unlink() noexcept { GenList::unlink(this); }

void AsyncGenBase::abandon() noexcept {
  running = false;
  finish();
  release_if_orphaned();
}

void AsyncGenBase::destroy_frame() noexcept {
  if (awaited) destroy_awaited_chain(*this);
  self.destroy();  // destroys *this
}

std::string AsyncGenBase::describe() const {
  char address[2 + 2 * sizeof(void*) + 1];
  std::snprintf(address, sizeof address, "%p", self.address());
  return std::string("asynchronous generator ") + address;
}

void AcloseAwaiter::check_close_outcome(const Outcome& o) {
  if (o.yielded)
    throw RuntimeError(
        "aclose(): async generator ignored GeneratorExit (it co_yielded after aclose() threw qi::GeneratorExit at "
        "its co_yield); in its clean-up, rethrow qi::GeneratorExit or return, and never co_yield");
  if (!o.exception) return;
  try {
    std::rethrow_exception(o.exception);
  } catch (const GeneratorExit&) {
    // The body let it through: closed as asked.
  }
}

std::size_t AsyncGenBase::begin_closing(QiEventLoop& loop) noexcept {
  LoopImpl& impl = *loop.impl_;
  std::size_t n = 0;
  while (AsyncGenBase* g = impl.asyncgens) {
    g->unlink();
    GenList::push_front(impl.closing_asyncgens, g);
    ++n;
  }
  return n;
}

// One closer task: takes the first generator still waiting to be closed (one
// destroyed meanwhile left the list) and closes it. asyncio gathers the
// aclose() calls with return_exceptions=True and reports each Exception; a
// cancellation (a BaseException there) is not reported.
Coro<void> AsyncGenBase::close_next(QiEventLoop& loop) {
  AsyncGenBase* g = loop.impl_->closing_asyncgens;
  if (!g) co_return;
  g->unlink();
  const std::string what = g->describe();
  try {
    co_await AcloseAwaiter(g);
  } catch (const CancelledError&) {
    throw;
  } catch (...) {
    ExceptionContext ctx;
    ctx.message = "an error occurred during closing of " + what;
    ctx.exception = std::current_exception();
    ctx.task = current_task();
    loop.call_exception_handler(ctx);
  }
}

void AsyncGenBase::forget_all(QiEventLoop& loop) noexcept {
  LoopImpl& impl = *loop.impl_;
  while (AsyncGenBase* g = impl.asyncgens) g->unlink();
  while (AsyncGenBase* g = impl.closing_asyncgens) g->unlink();
}

}  // namespace qi::detail

qi::Coro<void> QiEventLoop::shutdown_asyncgens() {
  check_thread("shutdown_asyncgens");
  // asyncio empties its registry first: a generator started from here on is
  // not this call's to close.
  const std::size_t n = qi::detail::AsyncGenBase::begin_closing(*this);
  std::vector<qi::Task<void>> closers;
  closers.reserve(n);
  for (std::size_t i = 0; i < n; ++i) closers.push_back(create_task(qi::detail::AsyncGenBase::close_next(*this)));
  // The closers report their own failures. A closer ending cancelled is not
  // reported either, unless this task was cancelled: then (as gather's
  // cancellation) every closer is.
  for (auto& t : closers) {
    try {
      co_await t;
    } catch (const qi::CancelledError&) {
      if (qi::detail::TaskCore::current()->cancelling() == 0) continue;
      for (auto& c : closers) c.cancel();
      throw;
    }
  }
}
