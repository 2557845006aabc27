// loop_executors.h — what a QiEventLoop keeps for run_in_executor: its gate
// and its default executor (executors.cpp). Internal.
#pragma once

#include <qiloop/threads/detail/executor_job.h>
#include <qiloop/threads/executor.h>

#include <chrono>
#include <memory>
#include <mutex>

class QiEventLoop;

namespace qi::detail {

// What workers send completions through. Invariant (under mutex): loop is
// the loop while it is open and null from the start of its close(), so a
// worker holding the mutex with a non-null loop may call its
// call_soon_threadsafe (and close() waits for that call to end); `jobs`
// lists the jobs submitted through this loop whose completion has not been
// sent yet. Shared by the loop and every such job, so a worker finishing
// after the loop is gone still finds it.
struct ExecutorGate {
  explicit ExecutorGate(QiEventLoop& l) noexcept : loop(&l) {}
  std::mutex mutex;
  QiEventLoop* loop;
  ExecutorJobBase* jobs = nullptr;

  void link(ExecutorJobBase& j) noexcept {
    j.gate_prev = nullptr;
    j.gate_next = jobs;
    if (jobs) jobs->gate_prev = &j;
    jobs = &j;
  }
  void unlink(ExecutorJobBase& j) noexcept {
    (j.gate_prev ? j.gate_prev->gate_next : jobs) = j.gate_next;
    if (j.gate_next) j.gate_next->gate_prev = j.gate_prev;
    j.gate_prev = j.gate_next = nullptr;
  }
};

// Loop thread only.
struct LoopExecutors {
  std::shared_ptr<ExecutorGate> gate;  // created by the first submission
  std::shared_ptr<Executor> default_executor;
  bool default_shut_down = false;  // shutdown_default_executor() was called
  std::chrono::steady_clock::duration shutdown_timeout = std::chrono::seconds(5);
};

}  // namespace qi::detail
