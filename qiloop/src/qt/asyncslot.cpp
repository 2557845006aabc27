// asyncslot.cpp — what qi::asyncslot's tasks report and require
// (<qiloop/qt/asyncslot.h>).
#include <qiloop/qt/asyncslot.h>

namespace qi::detail {

void report_slot_exception(std::exception_ptr e) noexcept {
  QiEventLoop* loop = running_loop();
  if (!loop) return;  // cannot happen: a slot task runs on its loop
  ExceptionContext ctx;
  ctx.task = current_task();
  try {
    ctx.message = "exception in the qi::asyncslot task " + (ctx.task ? ctx.task.describe() : std::string("?"));
  } catch (...) {
  }
  ctx.exception = std::move(e);
  loop->call_exception_handler(ctx);
}

QiEventLoop& slot_loop() {
  if (QiEventLoop* loop = running_loop()) return *loop;
  throw RuntimeError(
      "qi::asyncslot: the slot was called on a thread where no qiloop event loop is running; run the receiver's "
      "thread under a QiRunner (attached mode) or inside loop.run_forever() / qi::run(), and connect with a "
      "receiver (context object) living in that thread");
}

}  // namespace qi::detail
