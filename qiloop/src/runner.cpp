#include <qiloop/runner.h>

#include <QtCore/QThread>

QiRunner::QiRunner() : owned_(std::make_unique<QiEventLoop>()), loop_(owned_.get()) {
  loop_->check_can_run("QiRunner");
  loop_->start_running(true);
}

QiRunner::QiRunner(QiEventLoop& loop) : loop_(&loop) {
  loop_->check_can_run("QiRunner");
  loop_->start_running(true);
}

void QiRunner::restart() {
  loop_->check_can_run("QiRunner::restart", true);
  loop_->start_running(true);
}

QiRunner::~QiRunner() {
  if (loop_->thread() != QThread::currentThread())
    qFatal("QiRunner destroyed on a thread that does not own its loop: destroy it where it was created");
  loop_->shutdown_attached();
}
