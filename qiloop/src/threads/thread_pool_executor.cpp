// thread_pool_executor.cpp — qi::ThreadPoolExecutor: a FIFO of works, and
// threads started lazily that wait for it on a condition variable.
#include <qiloop/errors.h>
#include <qiloop/threads/thread_pool_executor.h>

#include <algorithm>
#include <condition_variable>
#include <list>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#if defined(__linux__)
#include <pthread.h>
#endif

namespace qi {

Executor::~Executor() = default;

// The state the threads share with the executor object. Invariant (under
// mutex): the queue holds the works submitted and not taken; `threads`
// holds every thread that has not exited its loop on an idle timeout, and
// `finished` those that have and are not joined yet; idle <= threads.size().
// Each thread holds the Pool too, so one left to end on its own (shutdown
// from one of its works) outlives the executor object safely.
struct ThreadPoolExecutor::Pool {
  Pool(int max, std::string prefix, std::chrono::milliseconds idle_timeout)
      : max_workers(max), name_prefix(std::move(prefix)), idle_timeout(idle_timeout) {}

  const int max_workers;
  const std::string name_prefix;
  const std::chrono::milliseconds idle_timeout;

  mutable std::mutex mutex;
  std::condition_variable work_ready;
  ExecutorWork* head = nullptr;
  ExecutorWork** tail = &head;
  std::size_t queued = 0;
  int idle = 0;    // threads waiting for work
  int waking = 0;  // of those, how many a submit has signalled: they are spoken for
  bool shut_down = false;
  int started = 0;  // threads ever started: the number in the next name
  std::list<std::thread> threads;
  std::vector<std::thread> finished;
  // Held by a shutdown(wait) while it joins: a second one waits for it.
  std::mutex join_mutex;

  void push(ExecutorWork& w) noexcept {
    w.next_work = nullptr;
    *tail = &w;
    tail = &w.next_work;
    ++queued;
  }
  ExecutorWork* pop() noexcept {
    ExecutorWork* w = head;
    head = w->next_work;
    if (!head) tail = &head;
    --queued;
    return w;
  }
  // What each thread runs (holding the Pool): take works in order until
  // shutdown, or until idle for idle_timeout (then it moves its own handle
  // to `finished` for whoever joins next).
  void work_loop(std::list<std::thread>::iterator self, int number);
  ExecutorWork* take_all() noexcept {
    ExecutorWork* w = std::exchange(head, nullptr);
    tail = &head;
    queued = 0;
    return w;
  }
};

namespace {

// The pool whose work_loop runs on this thread, if any.
thread_local const void* t_worker_of = nullptr;

void name_this_thread(const std::string& name) {
#if defined(__linux__)
  // Linux keeps 15 characters.
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
#else
  (void)name;
#endif
}

// wait_for adds its timeout to steady_clock::now() in nanoseconds: a longer
// idle timeout (milliseconds::max() meaning "never") would overflow it.
// A century is never enough.
std::chrono::milliseconds idle_wait(std::chrono::milliseconds t) noexcept {
  constexpr std::chrono::milliseconds kCentury = std::chrono::hours(24 * 365 * 100);
  return std::min(t, kCentury);
}

void join_all(std::vector<std::thread>& threads) noexcept {
  for (std::thread& t : threads) {
    if (t.get_id() == std::this_thread::get_id())
      t.detach();  // shutdown from a work of this very thread: it ends when the work returns
    else if (t.joinable())
      t.join();
  }
  threads.clear();
}

}  // namespace

void ThreadPoolExecutor::Pool::work_loop(std::list<std::thread>::iterator self, int number) {
  Pool& p = *this;
  t_worker_of = this;
  name_this_thread(p.name_prefix + "-" + std::to_string(number));
  std::unique_lock lock(p.mutex);
  for (;;) {
    if (p.head) {
      ExecutorWork* w = p.pop();
      lock.unlock();
      w->run();
      lock.lock();
      continue;
    }
    if (p.shut_down) return;  // shutdown joins it (its handle stays in `threads`)
    ++p.idle;
    const bool woken = p.work_ready.wait_for(lock, idle_wait(p.idle_timeout), [&] { return p.head || p.shut_down; });
    --p.idle;
    if (p.waking > 0) --p.waking;
    if (!woken) {
      p.finished.push_back(std::move(*self));
      p.threads.erase(self);
      return;
    }
  }
}

ThreadPoolExecutor::ThreadPoolExecutor(int max_workers, std::string thread_name_prefix,
                                       std::chrono::milliseconds idle_timeout) {
  if (max_workers <= 0)
    throw std::invalid_argument("ThreadPoolExecutor: max_workers must be at least 1 (got " +
                                std::to_string(max_workers) +
                                "); for the default size use ThreadPoolExecutor::default_max_workers()");
  if (idle_timeout <= std::chrono::milliseconds::zero())
    throw std::invalid_argument("ThreadPoolExecutor: idle_timeout must be positive; pass e.g. "
                                "ThreadPoolExecutor::kDefaultIdleTimeout");
  pool_ = std::make_shared<Pool>(max_workers, std::move(thread_name_prefix), idle_timeout);
}

ThreadPoolExecutor::~ThreadPoolExecutor() { shutdown(true); }

void ThreadPoolExecutor::submit(ExecutorWork& work) {
  Pool& p = *pool_;
  std::vector<std::thread> finished;
  {
    std::lock_guard lock(p.mutex);
    if (p.shut_down)
      throw RuntimeError("ThreadPoolExecutor::submit: cannot schedule new work after shutdown(); submit before "
                         "shutting the executor down, or use another executor");
    p.push(work);
    if (p.idle > p.waking) {
      ++p.waking;
      p.work_ready.notify_one();
    } else if (static_cast<int>(p.threads.size()) < p.max_workers) {
      try {
        auto self = p.threads.emplace(p.threads.end());
        const int number = ++p.started;
        try {
          // The new thread reads `self` only under the mutex we hold.
          *self = std::thread([pool = pool_, self, number] { pool->work_loop(self, number); });
        } catch (...) {
          p.threads.erase(self);
          throw;
        }
      } catch (...) {
        // No thread to run it: refuse it unless another thread will. With
        // no thread at all the queue held nothing before it.
        if (p.threads.empty()) {
          p.take_all();
          throw;
        }
      }
    }
    finished.swap(p.finished);
  }
  join_all(finished);  // threads that ended on an idle timeout: already out of their loop
}

void ThreadPoolExecutor::shutdown(bool wait, bool cancel_pending) {
  Pool& p = *pool_;
  ExecutorWork* dropped = nullptr;
  {
    std::lock_guard lock(p.mutex);
    p.shut_down = true;
    if (cancel_pending) dropped = p.take_all();
    p.work_ready.notify_all();
  }
  while (dropped) {
    ExecutorWork* next = dropped->next_work;
    dropped->discard();
    dropped = next;
  }
  if (!wait) return;
  std::unique_lock joining(p.join_mutex, std::defer_lock);
  if (t_worker_of == &p) {
    // From one of our own works: a shutdown(wait) holding join_mutex may be
    // joining this very thread, so waiting for it would deadlock; it joins
    // the other threads itself.
    if (!joining.try_lock()) return;
  } else {
    joining.lock();
  }
  std::vector<std::thread> to_join;
  {
    std::lock_guard lock(p.mutex);
    // After shut_down no thread reads its `self` again: moving the handles out is safe.
    for (std::thread& t : p.threads) to_join.push_back(std::move(t));
    p.threads.clear();
    for (std::thread& t : p.finished) to_join.push_back(std::move(t));
    p.finished.clear();
  }
  join_all(to_join);
}

int ThreadPoolExecutor::max_workers() const noexcept { return pool_->max_workers; }
std::chrono::milliseconds ThreadPoolExecutor::idle_timeout() const noexcept { return pool_->idle_timeout; }

int ThreadPoolExecutor::threads() const {
  std::lock_guard lock(pool_->mutex);
  return static_cast<int>(pool_->threads.size());
}

std::size_t ThreadPoolExecutor::queued() const {
  std::lock_guard lock(pool_->mutex);
  return pool_->queued;
}

int ThreadPoolExecutor::default_max_workers() noexcept {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::min(32, cores + 4);
}

}  // namespace qi
