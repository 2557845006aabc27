// qiloop/runner.h — QiRunner: attached mode.
//
//   int main(int argc, char** argv) {
//     QCoreApplication app(argc, argv);
//     QiRunner runner;                   // a loop, running inside app.exec()
//     runner.loop().call_soon([] { ... });
//     return app.exec();
//   }
//
// While a QiRunner exists its loop is the running loop of the thread
// (qi::get_running_loop()), driven by whatever Qt event loop the thread runs:
// the application's exec(), a QDialog's, a nested QEventLoop. stop() stops the
// logical loop; the application keeps going. As an asyncio loop can be run
// again after stop(), restart() makes the stopped loop run again (what was
// scheduled meanwhile then runs); run_forever / run_until_complete, which are
// nested-mode calls, throw for a loop a runner owns.
//
// Leaving the runner stops the loop if it still runs, then does what
// QiEventLoop::shutdown() does: cancels the tasks still pending and runs the
// loop — timers and I/O included — while they finish (bounded: at most
// kShutdownCancelRounds rounds of kShutdownRoundTime; skipped without a
// QCoreApplication), reports the tasks that failed or did not finish through
// the exception handler, shuts the default executor down (waiting at most
// loop().executor_shutdown_timeout() for its threads; work still running
// then is reported and left to end on its own: the application never hangs
// on a worker), runs the callbacks already ready (at most 100
// iterations, so cleanup scheduled with call_soon still happens; timers do
// not keep it going), and closes the loop, which drops the timers still
// pending and destroys the unfinished tasks. stopped() comes last, if the
// loop was running.
//
// Throws (from the constructor) qi::RuntimeError when there is no
// QCoreApplication, when another loop runs on this thread, or when the loop
// is closed. Thread-safety: construct and destroy on the loop's thread;
// destroying it from a callback of its own loop is fatal (qFatal).
#pragma once

#include <qiloop/event_loop.h>
#include <qiloop/export.h>

#include <memory>

class QILOOP_EXPORT QiRunner {
 public:
  // QiRunner::QiRunner()
  // Creates and owns a new loop, or attaches an existing one (which must
  // outlive the runner, and which the runner shuts down when it goes), and
  // makes it the running loop of this thread.
  QiRunner();
  explicit QiRunner(QiEventLoop& loop);
  QiRunner(const QiRunner&) = delete;
  QiRunner& operator=(const QiRunner&) = delete;
  // QiRunner::~QiRunner()
  // Stops and shuts the loop down (see the file comment). Never throws.
  ~QiRunner();

  // QiRunner::restart()
  // Runs the loop again after stop(): it is running and the thread's running
  // loop again, driven by the thread's Qt event loop. Throws qi::RuntimeError
  // when it is running, when another loop runs on this thread, when there is
  // no QCoreApplication, or off the loop's thread.
  void restart();

  // QiRunner::loop()
  // The loop, for the runner's lifetime.
  QiEventLoop& loop() noexcept { return *loop_; }

 private:
  std::unique_ptr<QiEventLoop> owned_;
  QiEventLoop* loop_;
};
