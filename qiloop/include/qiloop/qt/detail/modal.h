// qiloop/qt/detail/modal.h — the machinery of qi::modal. Internal; the
// contract is in <qiloop/qt/modal.h>.
#pragma once

#include <qiloop/coro.h>
#include <qiloop/event_loop.h>
#include <qiloop/export.h>
#include <qiloop/future.h>

#include <QtCore/QMetaObject>

#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <type_traits>
#include <utility>

namespace qi::detail {

// The rule of one pending modal call per loop (src/qt/modal.cpp): claim
// throws qi::RuntimeError while another owner holds the loop's slot;
// release frees it when `owner` holds it (a stale release does nothing).
QILOOP_EXPORT void claim_modal(QiEventLoop& loop, const void* owner);
QILOOP_EXPORT void release_modal(const void* owner) noexcept;
// Reports what could not be delivered (the result slot could not be set).
QILOOP_EXPORT void report_modal_error(QiEventLoop& loop, std::exception_ptr e) noexcept;

// The result slot of a modal call. Cancelling it (the awaiting task's
// cancel) succeeds until fn starts — fn then never runs — and is refused
// while fn runs, so the request waits in the task for fn to return (the
// task's must-cancel path), keeping what fn refers to alive meanwhile.
template <class R>
class ModalState final : public FutureState<R> {
 public:
  using FutureState<R>::FutureState;
  bool started = false;
  bool cancel(std::string msg) override {
    if (started) return false;
    const bool cancelled = FutureState<R>::cancel(std::move(msg));
    if (cancelled) release_modal(this);  // fn will not run: another modal may come
    return cancelled;
  }
};

// A Future<R> over a ModalState (Future's state constructor is protected).
template <class R>
class ModalFuture : public Future<R> {
 public:
  explicit ModalFuture(ModalState<R>* s) noexcept
      : Future<R>(Future<R>::state_type::adopt(s)) {}
};

// What the posted event runs: fn, once, unless cancelled first. Holds the
// loop's modal slot until fn returns or the event goes undelivered.
template <class R, class F>
class ModalJob {
 public:
  ModalJob(QiEventLoop& loop, ModalState<R>* state, F fn) : loop_(loop), state_(state), fn_(std::move(fn)) {}
  ModalJob(const ModalJob&) = delete;
  ModalJob& operator=(const ModalJob&) = delete;
  ~ModalJob() { release_modal(state_.get()); }

  void run() noexcept {
    if (state_->done()) return;  // cancelled before it started
    state_->started = true;
    try {
      try {
        // fn's nested loop may exclude timers (exec(X11ExcludeTimers)).
        hand_doorbell_to_nested_loop(loop_);
        if constexpr (std::is_void_v<R>) {
          std::invoke(fn_);
          state_->finish_with_value();
        } else {
          state_->finish_with_value(std::invoke(fn_));
        }
      } catch (...) {
        if (!state_->done()) state_->finish_with_exception(std::current_exception());
      }
    } catch (...) {
      report_modal_error(loop_, std::current_exception());  // never across Qt's event dispatch
    }
    release_modal(state_.get());
  }

 private:
  QiEventLoop& loop_;
  StateRef<ModalState<R>> state_;
  F fn_;
};

template <class R, class F>
Coro<R> run_modal(F fn) {
  QiEventLoop& loop = get_running_loop();
  auto* state = new ModalState<R>(loop);
  ModalFuture<R> result(state);
  auto job = std::make_shared<ModalJob<R, F>>(loop, state, std::move(fn));
  claim_modal(loop, state);  // after the job, whose end releases it
  // Posted to the loop's object: Qt runs it once the current qiloop slice
  // has returned to Qt's event loop, outside any qiloop callback.
  QMetaObject::invokeMethod(&loop, [job] { job->run(); }, Qt::QueuedConnection);
  co_return co_await std::move(result);
}

}  // namespace qi::detail
