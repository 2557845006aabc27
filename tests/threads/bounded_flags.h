// bounded_flags.h — what the executor tests synchronise worker threads
// with: every wait is bounded, so a broken executor fails a test instead of
// hanging it.
#pragma once

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

namespace qi::testing_threads {

using namespace std::chrono_literals;

// A one-shot flag every wait on which is bounded (a stuck test fails,
// it does not hang).
class Flag {
 public:
  void set() {
    std::lock_guard lock(m_);
    set_ = true;
    cv_.notify_all();
  }
  bool wait(std::chrono::milliseconds bound = 5s) {
    std::unique_lock lock(m_);
    return cv_.wait_for(lock, bound, [&] { return set_; });
  }
  bool is_set() {
    std::lock_guard lock(m_);
    return set_;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  bool set_ = false;
};

// Counts down; wait() is bounded.
class Countdown {
 public:
  explicit Countdown(int n) : n_(n) {}
  void done() {
    std::lock_guard lock(m_);
    if (--n_ == 0) cv_.notify_all();
  }
  bool wait(std::chrono::milliseconds bound = 10s) {
    std::unique_lock lock(m_);
    return cv_.wait_for(lock, bound, [&] { return n_ <= 0; });
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  int n_;
};

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds bound = 5s) {
  const auto end = std::chrono::steady_clock::now() + bound;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

}  // namespace qi::testing_threads
