// loop_thread.cpp — qi::LoopThread: a QThread whose run() is a QiEventLoop.
#include <qiloop/event_loop.h>
#include <qiloop/threads/loop_thread.h>

#include <QtCore/QThread>

#include <condition_variable>
#include <exception>
#include <mutex>

namespace qi {

// Invariant: every field but `thread` is guarded by m. `loop` is set while
// the worker's loop exists and may be scheduled on: the worker clears it
// (under m) before the loop goes, so holding m keeps it alive.
struct LoopThread::Impl {
  class Worker final : public QThread {
   public:
    explicit Worker(Impl& impl) : impl_(impl) {}

   protected:
    void run() override { impl_.run(); }

   private:
    Impl& impl_;
  };

  std::mutex m;
  std::condition_variable cv;
  QiEventLoop* loop = nullptr;
  QiEventLoop* published = nullptr;  // what loop() returns: written before the constructor returns, then read only
  bool started = false;   // the loop ran its first callback (or the worker ended first)
  bool finished = false;  // run() is over: the loop is destroyed
  bool stop_requested = false;
  std::exception_ptr error;  // why the loop did not start
  std::unique_ptr<Worker> thread;

  void run();
  void publish(QiEventLoop* l, bool done, std::exception_ptr e = {}) {
    std::lock_guard<std::mutex> lock(m);
    loop = l;
    if (l) published = l;
    started = true;
    finished = done;
    if (e) error = std::move(e);
    cv.notify_all();
  }
  bool should_stop() {
    std::lock_guard<std::mutex> lock(m);
    return stop_requested;
  }
};

void LoopThread::Impl::run() {
  std::exception_ptr error;
  try {
    QiEventLoop l;
    l.call_soon([this, &l] { publish(&l, false); });
    try {
      do l.run_forever();
      while (!should_stop());
    } catch (...) {
      error = std::current_exception();  // e.g. no QCoreApplication, or QThread::quit()
    }
    {
      std::lock_guard<std::mutex> lock(m);
      loop = nullptr;  // nobody schedules on it from now on
    }
    l.shutdown();  // cancels and finishes the leftovers, then closes
  } catch (...) {
    if (!error) error = std::current_exception();
  }
  publish(nullptr, true, error);
}

LoopThread::LoopThread(std::string name) : impl_(std::make_unique<Impl>()) {
  impl_->thread = std::make_unique<Impl::Worker>(*impl_);
  impl_->thread->setObjectName(QString::fromStdString(name));
  impl_->thread->start();
  std::unique_lock<std::mutex> lock(impl_->m);
  impl_->cv.wait(lock, [this] { return impl_->started; });
  if (impl_->finished) {
    std::exception_ptr e = impl_->error;
    lock.unlock();
    impl_->thread->wait();
    if (e) std::rethrow_exception(e);
    throw RuntimeError("qi::LoopThread: the worker's loop ended before it ran");
  }
}

LoopThread::~LoopThread() {
  if (impl_ && impl_->thread && QThread::currentThread() == impl_->thread.get())
    qFatal("qi::LoopThread destroyed from its own worker thread, which cannot join itself; destroy it from the "
           "thread that made it");
  stop();
}

QiEventLoop& LoopThread::loop() const noexcept { return *impl_->published; }

QThread* LoopThread::thread() const noexcept { return impl_->thread.get(); }

void LoopThread::stop() {
  if (!impl_->thread) return;
  if (QThread::currentThread() == impl_->thread.get())
    throw RuntimeError("qi::LoopThread::stop: called from the worker's own thread, which cannot join itself; "
                       "call loop().stop() there, or stop() from another thread");
  {
    std::unique_lock<std::mutex> lock(impl_->m);
    impl_->stop_requested = true;
    if (impl_->loop) {
      QiEventLoop* l = impl_->loop;
      l->call_soon_threadsafe([l] { l->stop(); });
    }
    // The hand-over ThreadSanitizer can see (Qt's own join is not built for it).
    impl_->cv.wait(lock, [this] { return impl_->finished; });
  }
  impl_->thread->wait();
  impl_->thread.reset();
}

}  // namespace qi
