// -----------------------------------------------------------------------------
// File: qiloop/threads/loop_thread.h
// -----------------------------------------------------------------------------
//
// qi::LoopThread is a worker QThread running its own QiEventLoop: a loop per
// thread, started and ended by one object. Other threads hand it work with
// qi::run_coroutine_threadsafe (<qiloop/threads/concurrent_future.h>) or
// loop().call_soon_threadsafe.
//
// Example:
//
//   qi::LoopThread worker("net");                      // its loop runs when this returns
//   qi::ConcurrentFuture<int> cf = qi::run_coroutine_threadsafe(fetch(), worker.loop());
//   int n = cf.result(5s);
//   // ~LoopThread: cancels what still runs there, closes the loop, joins the thread
//
// Contract:
// - The constructor starts the thread and returns once its loop runs
//   (nested mode: run_forever()). A QCoreApplication must exist. Throws
//   qi::RuntimeError when the loop cannot start there.
// - loop() is the worker's loop, valid until stop(). From other threads only
//   what QiEventLoop allows (call_soon_threadsafe, and what is built on it);
//   everything else on the worker's own thread (from its callbacks and
//   tasks). thread() is the QThread, e.g. for QObject::moveToThread.
// - The loop keeps running until stop(): a loop.stop() from one of its own
//   callbacks only ends that run_forever(), and the worker runs it again.
// - stop() (idempotent; also the destructor) stops the loop and shuts it
//   down as qi::run does: the tasks still pending are cancelled and run to
//   their end (bounded, the leftovers reported through the loop's exception
//   handler), the loop is closed — so ConcurrentFutures still pending end
//   cancelled or failed — and the thread is joined. Not from the worker's
//   own thread (it would join itself): qi::RuntimeError.
//
// Thread-safety: loop() and thread() from any thread; stop() and the
// destructor from any thread but the worker's, not concurrently with each
// other.
#pragma once

#include <qiloop/export.h>

#include <memory>
#include <string>

class QiEventLoop;
class QThread;

namespace qi {

// qi::LoopThread
class QILOOP_EXPORT LoopThread {
 public:
  // LoopThread::LoopThread()
  // Starts the thread (its QThread's objectName is `name`) and waits until
  // its loop runs.
  explicit LoopThread(std::string name = "qi::LoopThread");
  LoopThread(const LoopThread&) = delete;
  LoopThread& operator=(const LoopThread&) = delete;
  // LoopThread::~LoopThread()
  // stop().
  ~LoopThread();

  // LoopThread::loop()
  // LoopThread::thread()
  QiEventLoop& loop() const noexcept;
  QThread* thread() const noexcept;

  // LoopThread::stop()
  // See the file comment.
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace qi
