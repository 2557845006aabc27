// exception_handler.cpp — where QiEventLoop reports what escaped: the
// user's handler, or the default one that logs.
#include <qiloop/event_loop.h>

#include "loop_impl.h"

namespace {

std::string describe(const std::exception_ptr& e) {
  if (!e) return {};
  try {
    std::rethrow_exception(e);
  } catch (const std::exception& x) {
    return x.what();
  } catch (const qi::CancelledError& c) {
    return std::string("qi::CancelledError: ") + c.what();
  } catch (...) {
    return "exception of unknown type";
  }
}

}  // namespace

// --- Errors -------------------------------------------------------------------

void QiEventLoop::set_exception_handler(ExceptionHandler handler) { impl_->handler = std::move(handler); }

QiEventLoop::ExceptionHandler QiEventLoop::get_exception_handler() const { return impl_->handler; }

void QiEventLoop::call_exception_handler(const qi::ExceptionContext& context) noexcept {
  if (!impl_->handler) {
    default_exception_handler(context);
    return;
  }
  try {
    // A copy: the handler may replace itself (set_exception_handler) while it runs.
    ExceptionHandler handler = impl_->handler;
    handler(*this, context);
  } catch (...) {
    // The handler failed: log both, and keep the loop going (asyncio does the same).
    qi::ExceptionContext failed;
    failed.message = "Unhandled error in exception handler";
    failed.exception = std::current_exception();
    default_exception_handler(failed);
    default_exception_handler(context);
  }
}

void QiEventLoop::default_exception_handler(const qi::ExceptionContext& context) noexcept {
  try {
    std::string text = context.message.empty() ? "Unhandled exception in event loop" : context.message;
    if (context.exception) text += ": " + describe(context.exception);
    if (context.handle) text += " [callback handle]";
    if (context.task) text += " [" + context.task.describe() + "]";
    if (context.future) text += " [" + context.future.describe() + "]";
    // Where the task is (or was, when its exception escaped): the await graph.
    text += qi::detail::call_graph_for_report(context.task ? context.task.state() : context.future.state());
    qCCritical(lcQiloop, "%s", text.c_str());
  } catch (...) {
  }
}
