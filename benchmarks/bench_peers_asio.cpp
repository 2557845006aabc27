// Scenarios 1, 2, 3 and 5 on qiloop and on standalone Asio, side by side.
//
// The io_context gets concurrency hint 1 (one thread runs it: the usual
// single-threaded set-up, still safe to post to from other threads). post()
// and post_threadsafe() are both asio::post; timers are asio::steady_timer
// objects made up front, armed with expires_after + async_wait. Note that
// steady_timer::cancel() does not drop the wait: it queues the handler with
// operation_aborted, which the loop runs later (outside the timed part).
#include "scenarios.h"

#include <asio/executor_work_guard.hpp>
#include <asio/io_context.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>

#include <deque>

namespace bench {

class AsioDriver {
 public:
  static constexpr const char* kName = "Asio";

  template <class F>
  void post(F&& f) {
    asio::post(context_, std::forward<F>(f));
  }
  template <class F>
  void post_threadsafe(F&& f) {
    asio::post(context_, std::forward<F>(f));
  }
  // The work guard keeps run() going while nothing is queued: it returns
  // only after stop().
  void run() {
    auto work = asio::make_work_guard(context_);
    context_.restart();
    context_.run();
  }
  void stop() { context_.stop(); }
  void mark() {}
  void annotate(benchmark::State&) const {}
  asio::io_context& context() { return context_; }

  class Timers {
   public:
    Timers(AsioDriver& driver, std::size_t n, OnFire on_fire) : on_fire_(std::move(on_fire)) {
      for (std::size_t i = 0; i < n; ++i) timers_.emplace_back(driver.context());
    }
    void start(std::size_t i, std::chrono::nanoseconds delay) {
      timers_[i].expires_after(delay);
      timers_[i].async_wait([this, i](const std::error_code& ec) {
        if (!ec) on_fire_(i);
      });
    }
    void cancel(std::size_t i) { timers_[i].cancel(); }

   private:
    std::deque<asio::steady_timer> timers_;
    OnFire on_fire_;
  };

 private:
  asio::io_context context_{1};
};

}  // namespace bench

namespace {

void register_all(const bench::Options& o) { bench::add_peer_suite<bench::AsioDriver>(o); }

}  // namespace

QILOOP_BENCH_MAIN(register_all)
