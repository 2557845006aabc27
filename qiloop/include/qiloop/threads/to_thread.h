// -----------------------------------------------------------------------------
// File: qiloop/threads/to_thread.h
// -----------------------------------------------------------------------------
//
// qi::to_thread(fn, args...) is asyncio.to_thread: runs blocking fn(args...)
// on the running loop's default executor and lets the calling task await
// its result without blocking the loop.
//
// Example:
//
//   qi::Coro<void> load(QString path) {
//     QByteArray data = co_await qi::to_thread(read_file, path);   // the loop keeps running
//     int n = co_await qi::wait_for(qi::to_thread(count, data), 2s);
//   }
//
// Contract: exactly QiEventLoop::run_in_executor(nullptr, fn, args...) on
// qi::get_running_loop() — the job is submitted at once, arguments are
// decay-copied into it, the outcome comes back on the loop's thread, an
// exception keeps its type and the reports name this call's file:line
// ("submitted at ..."; for a call spread over several lines g++ names the
// line where its argument list closes); cancelling the awaiting task completes the await at
// once with qi::CancelledError while the worker runs on (a running thread
// is not interrupted; its result is destroyed when it ends).
// qi::to_thread is a class template deduced from its arguments (that is how
// it takes its call site after a parameter pack): it is a qi::Future<R>,
// awaitable once or many times, accepted by qi::wait_for / qi::gather, and
// assignable to qi::Future<R>.
//
// Thread-safety: call it on a thread whose loop runs. Throws
// qi::RuntimeError when none runs, or after shutdown_default_executor();
// std::invalid_argument for an empty callable.
#pragma once

#include <qiloop/event_loop.h>
#include <qiloop/threads/detail/executor_job.h>

#include <utility>

namespace qi {

// qi::to_thread
template <class F, class... Args>
class [[nodiscard("co_await it, or keep the future: the work runs anyway but its outcome would be lost")]] to_thread
    : public Future<detail::executor_result_t<F, Args...>> {
 public:
  to_thread(F&& f, Args&&... args, detail::SiteRecord site = QILOOP_DETAIL_SITE_HERE)
      : Future<detail::executor_result_t<F, Args...>>(get_running_loop().submit_job(
            "to_thread", nullptr, site, std::forward<F>(f), std::forward<Args>(args)...)) {}
};

template <class F, class... Args>
to_thread(F&&, Args&&...) -> to_thread<F, Args...>;

}  // namespace qi
