#include <qiloop/runner.h>

QiRunner::QiRunner() : owned_(std::make_unique<QiEventLoop>()), loop_(owned_.get()) {
  loop_->check_can_run("QiRunner");
  loop_->start_running(true);
}

QiRunner::QiRunner(QiEventLoop& loop) : loop_(&loop) {
  loop_->check_can_run("QiRunner");
  loop_->start_running(true);
}

QiRunner::~QiRunner() { loop_->shutdown_attached(); }
