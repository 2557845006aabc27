// qt_run.h — drives a Qt-style contender (a QCoro task, a chain of Qt
// callbacks) on a plain QEventLoop, the way a Qt program runs it: the
// contender calls finish() when done; wait() spins a QEventLoop until then.
#pragma once

#include <QtCore/QEventLoop>

namespace bench {

class QtRun {
 public:
  void finish() {
    done_ = true;
    if (loop_) loop_->quit();
  }
  // Returns at once when the contender already finished (synchronously).
  void wait() {
    if (done_) return;
    QEventLoop loop;
    loop_ = &loop;
    loop.exec();
    loop_ = nullptr;
  }
  // The same for an eager task (QCoro's) that may have finished on its own.
  template <class Task>
  void wait(Task& task) {
    if (!task.isReady()) wait();
  }

 private:
  bool done_ = false;
  QEventLoop* loop_ = nullptr;
};

}  // namespace bench
