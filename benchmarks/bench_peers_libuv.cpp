// Scenarios 1, 2, 3 and 5 on qiloop and on libuv, side by side.
//
// libuv has no callback queue of its own; the driver below is the usual
// minimal one (Node's setImmediate works this way): post() appends to a
// vector drained by a uv_idle handle, which runs what was queued when the
// iteration began; post_threadsafe() appends under a mutex and rings a
// uv_async (which coalesces rings). Timers are uv_timer_t handles, made up
// front; libuv timers have millisecond resolution, so delays round up.
#include "scenarios.h"

#include <absl/functional/any_invocable.h>

#include <uv.h>

#include <deque>

namespace bench {

class UvDriver {
 public:
  static constexpr const char* kName = "libuv";

  UvDriver() {
    uv_loop_init(&loop_);
    uv_idle_init(&loop_, &idle_);
    idle_.data = this;
    uv_async_init(&loop_, &async_, &UvDriver::on_async);
    async_.data = this;
  }
  UvDriver(const UvDriver&) = delete;
  UvDriver& operator=(const UvDriver&) = delete;
  ~UvDriver() {
    uv_close(reinterpret_cast<uv_handle_t*>(&idle_), nullptr);
    uv_close(reinterpret_cast<uv_handle_t*>(&async_), nullptr);
    uv_run(&loop_, UV_RUN_DEFAULT);
    uv_loop_close(&loop_);
  }

  template <class F>
  void post(F&& f) {
    if (queued_.empty()) uv_idle_start(&idle_, &UvDriver::on_idle);
    queued_.emplace_back(std::forward<F>(f));
  }
  template <class F>
  void post_threadsafe(F&& f) {
    {
      std::lock_guard lock(inbox_mu_);
      inbox_.emplace_back(std::forward<F>(f));
    }
    uv_async_send(&async_);
  }
  // The uv_async handle keeps the loop alive: run() returns only after stop().
  void run() { uv_run(&loop_, UV_RUN_DEFAULT); }
  void stop() { uv_stop(&loop_); }
  void mark() {}
  void annotate(benchmark::State&) const {}
  uv_loop_t* loop() { return &loop_; }

  class Timers {
   public:
    Timers(UvDriver& driver, std::size_t n, OnFire on_fire) : loop_(driver.loop()), on_fire_(std::move(on_fire)) {
      for (std::size_t i = 0; i < n; ++i) {
        Slot& s = slots_.emplace_back();
        s.owner = this;
        s.index = i;
        uv_timer_init(loop_, &s.timer);
      }
    }
    Timers(const Timers&) = delete;
    Timers& operator=(const Timers&) = delete;
    ~Timers() {
      for (Slot& s : slots_) uv_close(reinterpret_cast<uv_handle_t*>(&s.timer), nullptr);
      uv_run(loop_, UV_RUN_NOWAIT);  // closing handles are released at the end of an iteration
    }
    void start(std::size_t i, std::chrono::nanoseconds delay) {
      auto ms = std::chrono::ceil<std::chrono::milliseconds>(delay).count();
      uv_timer_start(&slots_[i].timer, &Timers::on_timer, static_cast<uint64_t>(ms), 0);
    }
    void cancel(std::size_t i) { uv_timer_stop(&slots_[i].timer); }

   private:
    struct Slot {
      uv_timer_t timer;  // first, so a handle pointer is a Slot pointer
      Timers* owner;
      std::size_t index;
    };
    static void on_timer(uv_timer_t* t) {
      Slot* s = reinterpret_cast<Slot*>(t);
      s->owner->on_fire_(s->index);
    }
    uv_loop_t* loop_;
    std::deque<Slot> slots_;  // handles must not move
    OnFire on_fire_;
  };

 private:
  using Callback = absl::AnyInvocable<void()>;

  static void on_idle(uv_idle_t* h) {
    auto* self = static_cast<UvDriver*>(h->data);
    // Run what was queued before this iteration; what that queues runs next.
    self->running_.swap(self->queued_);
    for (Callback& f : self->running_) f();
    self->running_.clear();
    if (self->queued_.empty()) uv_idle_stop(&self->idle_);
  }
  static void on_async(uv_async_t* h) {
    auto* self = static_cast<UvDriver*>(h->data);
    {
      std::lock_guard lock(self->inbox_mu_);
      self->taken_.swap(self->inbox_);
    }
    for (Callback& f : self->taken_) f();
    self->taken_.clear();
  }

  uv_loop_t loop_;
  uv_idle_t idle_;
  uv_async_t async_;
  std::vector<Callback> queued_, running_;
  std::mutex inbox_mu_;
  std::vector<Callback> inbox_, taken_;
};

}  // namespace bench

namespace {

void register_all(const bench::Options& o) { bench::add_peer_suite<bench::UvDriver>(o); }

}  // namespace

QILOOP_BENCH_MAIN(register_all)
