// plugin/qiloop_plugin.cpp — QiLoopPlugin (see qiloop_plugin.h).
#include "qiloop_plugin.h"

#include <qiloop/event_loop.h>
#include <qiloop/runner.h>

#include <QtCore/QCoreApplication>
#include <QtCore/QLoggingCategory>
#include <QtCore/QThread>

#include <exception>
#include <utility>

namespace {

Q_LOGGING_CATEGORY(lcPlugin, "qiloop.plugin")

// A qi::Handle behind the plugin's interface. A call_soon / call_later
// handle is cancelled on its loop's thread only (qi::Handle's rule: the loop
// reads it unlocked); elsewhere cancel() warns and does nothing.
class CallHandle final : public QiLoopCallHandle {
 public:
  CallHandle(qi::Handle h, QThread* owner) : h_(std::move(h)), owner_(owner) {}
  void cancel() override {
    if (owner_ && QThread::currentThread() != owner_) {
      qCWarning(lcPlugin, "cancel(): this handle came from call_soon or call_later, so it is cancelled on the "
                          "loop's thread only; schedule the cancel there with call_soon_threadsafe");
      return;
    }
    h_.cancel();
  }
  bool cancelled() const override { return h_.cancelled(); }

 private:
  qi::Handle h_;
  QThread* owner_;  // null: any thread (a call_soon_threadsafe handle)
};

// The plugin with a loop attached (the root object is one per plugin file, so
// at most one): the QCoreApplication's destructor detaches it while Qt is
// still there to run the clean-up (a post routine runs first in
// ~QCoreApplication).
QiLoopPlugin* g_attached = nullptr;
void detach_before_app_goes() {
  if (g_attached) g_attached->detach();
}

}  // namespace

QiLoopPlugin::QiLoopPlugin() = default;

QiLoopPlugin::~QiLoopPlugin() {
  if (!runner_) return;
  if (QThread::currentThread() == thread_.load()) {
    detach();
    return;
  }
  // Destroying a QiRunner off its thread is fatal; a host that unloads the
  // plugin from another thread gets the loop left as it is instead.
  qCWarning(lcPlugin, "the plugin is destroyed on another thread than the one it attached a loop to: the loop is "
                      "left attached; call detach() on that thread before unloading the plugin");
  (void)runner_.release();
  (void)context_.release();
}

bool QiLoopPlugin::attach() {
  // Claiming thread_ first makes attach() from two threads at once safe: one
  // wins, the other is told.
  QThread* const here = QThread::currentThread();
  QThread* attached = nullptr;
  if (!thread_.compare_exchange_strong(attached, here)) {
    if (attached != here)
      qCWarning(lcPlugin, "attach(): a loop is attached to another thread; call detach() there first");
    else if (detaching_)
      qCWarning(lcPlugin, "attach(): detach() is still shutting the previous loop down; attach after it returns");
    else
      qCWarning(lcPlugin, "attach(): a loop is already attached to this thread; call detach() first");
    return false;
  }
  try {
    runner_ = std::make_unique<QiRunner>();
  } catch (const std::exception& e) {
    thread_ = nullptr;
    qCWarning(lcPlugin, "attach(): %s", e.what());
    return false;
  }
  loop_ = &runner_->loop();
  context_ = std::make_unique<QObject>();
  g_attached = this;
  qAddPostRoutine(detach_before_app_goes);
  std::lock_guard lock(mu_);
  shared_loop_ = loop_;
  return true;
}

void QiLoopPlugin::detach() {
  QThread* const attached = thread_.load();
  if (!attached) return;
  if (QThread::currentThread() != attached) {
    qCWarning(lcPlugin, "detach(): called on another thread than the one the loop is attached to; call it there");
    return;
  }
  if (detaching_) return;
  if (depth_ > 0) {
    // Leaving a QiRunner from one of its loop's callbacks is fatal: finish
    // once the callback has returned to Qt's event loop.
    QMetaObject::invokeMethod(context_.get(), [this] { detach(); }, Qt::QueuedConnection);
    return;
  }
  detaching_ = true;
  {
    std::lock_guard lock(mu_);
    shared_loop_ = nullptr;
  }
  runner_.reset();  // callbacks it still runs may schedule on loop_ (until it is closed)
  loop_ = nullptr;
  detaching_ = false;
  g_attached = nullptr;
  qRemovePostRoutine(detach_before_app_goes);
  thread_ = nullptr;  // last: attach() may claim it again
}

QiEventLoop* QiLoopPlugin::loop_for(const char* api, const std::function<void()>& cb) const {
  QThread* thread = thread_.load();
  if (!thread) {
    qCWarning(lcPlugin, "%s(): no loop is attached; call attach() first (after detach() nothing is scheduled)", api);
    return nullptr;
  }
  if (QThread::currentThread() != thread) {
    qCWarning(lcPlugin, "%s(): called on another thread than the loop's; use call_soon_threadsafe()", api);
    return nullptr;
  }
  if (!cb) {
    qCWarning(lcPlugin, "%s(): the callback is empty; pass a callable", api);
    return nullptr;
  }
  return loop_;
}

std::function<void()> QiLoopPlugin::counted(std::function<void()> cb) {
  return [this, cb = std::move(cb)] {
    struct Depth {
      int& d;
      explicit Depth(int& depth) : d(++depth) {}
      ~Depth() { --d; }
    } depth(depth_);
    cb();
  };
}

std::shared_ptr<QiLoopCallHandle> QiLoopPlugin::call_soon(std::function<void()> cb) {
  QiEventLoop* loop = loop_for("call_soon", cb);
  if (!loop) return nullptr;
  try {
    return std::make_shared<CallHandle>(loop->call_soon(counted(std::move(cb))), thread_.load());
  } catch (const std::exception& e) {  // the loop is closing
    qCWarning(lcPlugin, "call_soon(): %s", e.what());
    return nullptr;
  }
}

std::shared_ptr<QiLoopCallHandle> QiLoopPlugin::call_later(std::chrono::nanoseconds delay,
                                                           std::function<void()> cb) {
  QiEventLoop* loop = loop_for("call_later", cb);
  if (!loop) return nullptr;
  try {
    return std::make_shared<CallHandle>(loop->call_later(delay, counted(std::move(cb))), thread_.load());
  } catch (const std::exception& e) {
    qCWarning(lcPlugin, "call_later(): %s", e.what());
    return nullptr;
  }
}

std::shared_ptr<QiLoopCallHandle> QiLoopPlugin::call_soon_threadsafe(std::function<void()> cb) {
  if (!cb) {
    qCWarning(lcPlugin, "call_soon_threadsafe(): the callback is empty; pass a callable");
    return nullptr;
  }
  std::function<void()> job = counted(std::move(cb));
  std::lock_guard lock(mu_);  // keeps detach() from destroying the loop meanwhile
  if (!shared_loop_) {
    qCWarning(lcPlugin, "call_soon_threadsafe(): no loop is attached; call attach() first (after detach() "
                        "nothing is scheduled)");
    return nullptr;
  }
  try {
    return std::make_shared<CallHandle>(shared_loop_->call_soon_threadsafe(std::move(job)), nullptr);
  } catch (const std::exception& e) {
    qCWarning(lcPlugin, "call_soon_threadsafe(): %s", e.what());
    return nullptr;
  }
}

std::chrono::steady_clock::time_point QiLoopPlugin::time() const {
  std::lock_guard lock(mu_);
  return shared_loop_ ? shared_loop_->time() : std::chrono::steady_clock::now();
}

QString QiLoopPlugin::version() const { return QStringLiteral(QILOOP_PLUGIN_VERSION); }
