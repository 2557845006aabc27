#include <qiloop/event_loop.h>

#include "loop_impl.h"

namespace qi {

namespace {
thread_local QiEventLoop* t_running_loop = nullptr;
}

void detail::set_running_loop(QiEventLoop* loop) noexcept { t_running_loop = loop; }

QiEventLoop* running_loop() noexcept { return t_running_loop; }

QiEventLoop& get_running_loop() {
  if (!t_running_loop)
    throw RuntimeError(
        "no running event loop in this thread: call this from a callback or task of a running QiEventLoop "
        "(run_forever / run_until_complete / qi::run), or create a QiRunner");
  return *t_running_loop;
}

}  // namespace qi
