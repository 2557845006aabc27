// drivers.h — the loops under test behind one small interface, so that each
// scenario (scenarios.h) is written once and run on qiloop and on its peers.
//
// A driver is a loop owned by the thread that constructs it:
//   post(f)             on that thread: f runs on a later turn of the loop
//   post_threadsafe(f)  from any thread
//   run()               runs the loop until a callback calls stop()
//   stop()
//   mark(), annotate(state)  the loop's own counters since mark(), per
//                       benchmark iteration (qiloop only; others add nothing)
// and Driver::Timers is a fixed set of n one-shot timers on that loop:
//   Timers(driver, n, on_fire)  timer i calls on_fire(i) when it fires
//   start(i, delay)             arms timer i (it must not be armed)
//   cancel(i)                   disarms it
// (qiloop's also has when(i), the deadline it computed, and forget(), which
// drops the handles it keeps.)
// Each maps to what a user of that library writes, nothing more: qiloop's
// call_soon / call_later, Qt's queued invokeMethod / QTimer. Peers other than
// Qt live beside their benchmark (bench_peers_*.cpp).
//
// Callbacks capture at most two words, so none needs a heap block of its own
// (qiloop's small-callable buffer holds two pointers).
#pragma once

#include "bench_support.h"

#include <qiloop/qiloop.h>

#include <QtCore/QEventLoop>
#include <QtCore/QMetaObject>
#include <QtCore/QObject>
#include <QtCore/QTimer>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <vector>

namespace bench {

using OnFire = std::function<void(std::size_t)>;

class QiDriver {
 public:
  static constexpr const char* kName = "qiloop";

  template <class F>
  void post(F&& f) {
    loop_.call_soon(std::forward<F>(f));
  }
  // Returns the handle, as call_soon_threadsafe always does: part of the cost.
  template <class F>
  qi::Handle post_threadsafe(F&& f) {
    return loop_.call_soon_threadsafe(std::forward<F>(f));
  }
  void run() { loop_.run_forever(); }
  void stop() { loop_.stop(); }
  QiEventLoop& loop() { return loop_; }

  // Slices and posted wake-ups per benchmark iteration: how often the loop
  // handed control back to Qt, and how often it had to be woken.
  void mark() { marked_ = loop_.stats(); }
  void annotate(benchmark::State& state) const {
    qi::LoopStats s = loop_.stats();
    using C = benchmark::Counter;
    state.counters["slices"] = C(static_cast<double>(s.slices - marked_.slices), C::kAvgIterations);
    state.counters["wakeups"] = C(static_cast<double>(s.posted_wakeups - marked_.posted_wakeups), C::kAvgIterations);
  }

  class Timers {
   public:
    Timers(QiDriver& driver, std::size_t n, OnFire on_fire)
        : loop_(driver.loop()), handles_(n), on_fire_(std::move(on_fire)) {}
    Timers(const Timers&) = delete;  // the callbacks point at this
    Timers& operator=(const Timers&) = delete;
    void start(std::size_t i, std::chrono::nanoseconds delay) {
      handles_[i] = loop_.call_later(delay, [this, i] { on_fire_(i); });
    }
    void cancel(std::size_t i) { handles_[i].cancel(); }
    // The deadline qiloop itself computed (the others do not expose theirs).
    Clock::time_point when(std::size_t i) const { return handles_[i].when(); }
    // Releases the handles of timers [begin, end) (the others keep none).
    void forget(std::size_t begin, std::size_t end) {
      for (std::size_t i = begin; i < end; ++i) handles_[i] = {};
    }

   private:
    QiEventLoop& loop_;
    std::vector<qi::TimerHandle> handles_;
    OnFire on_fire_;
  };

 private:
  QiEventLoop loop_;
  qi::LoopStats marked_;
};

class QtDriver {
 public:
  static constexpr const char* kName = "Qt";

  template <class F>
  void post(F&& f) {
    QMetaObject::invokeMethod(&context_, std::forward<F>(f), Qt::QueuedConnection);
  }
  template <class F>
  void post_threadsafe(F&& f) {
    post(std::forward<F>(f));
  }
  void run() {
    QEventLoop loop;
    running_ = &loop;
    loop.exec();
    running_ = nullptr;
  }
  void stop() { running_->quit(); }
  void mark() {}
  void annotate(benchmark::State&) const {}

  // QTimer objects made up front, Qt::PreciseTimer (a CoarseTimer may fire up
  // to 5% early): start() and cancel() are then QTimer::start() and stop()
  // alone, the cheapest accounting Qt allows. Delays round up to whole ms.
  class Timers {
   public:
    Timers(QtDriver&, std::size_t n, OnFire on_fire) : on_fire_(std::move(on_fire)) {
      timers_.reserve(n);
      for (std::size_t i = 0; i < n; ++i) {
        auto& t = timers_.emplace_back(std::make_unique<QTimer>());
        t->setSingleShot(true);
        t->setTimerType(Qt::PreciseTimer);
        QObject::connect(t.get(), &QTimer::timeout, t.get(), [this, i] { on_fire_(i); });
      }
    }
    Timers(const Timers&) = delete;  // the slots point at this
    Timers& operator=(const Timers&) = delete;
    void start(std::size_t i, std::chrono::nanoseconds delay) {
      timers_[i]->start(std::chrono::ceil<std::chrono::milliseconds>(delay));
    }
    void cancel(std::size_t i) { timers_[i]->stop(); }

   private:
    std::vector<std::unique_ptr<QTimer>> timers_;
    OnFire on_fire_;
  };

 private:
  QObject context_;
  QEventLoop* running_ = nullptr;
};

}  // namespace bench
