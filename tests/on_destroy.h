// A callable that does nothing when called and runs `fn` when destroyed (not
// when moved from): a done callback that shows, or acts at, the moment the
// future lets go of it. Shared by the tests of futures and of close().
#pragma once

#include <functional>
#include <utility>

struct OnDestroy {
  explicit OnDestroy(std::function<void()> f) : fn(std::move(f)) {}
  OnDestroy(OnDestroy&& o) noexcept : fn(std::exchange(o.fn, nullptr)) {}
  OnDestroy& operator=(OnDestroy&&) = delete;
  ~OnDestroy() {
    if (fn) fn();
  }
  void operator()() const {}
  std::function<void()> fn;
};
