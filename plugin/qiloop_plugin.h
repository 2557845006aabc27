// plugin/qiloop_plugin.h — QiLoopPlugin: QiLoopInterface on a QiRunner.
//
// The plugin's root object (one per loaded plugin file, shared by every
// QPluginLoader of that file). Not installed: hosts see only
// <qiloop/plugin_interface.h>. The contract is that header's.
//
// Invariant: runner_ and loop_ are set together by attach() and cleared
// together at the end of detach(), on the attached thread, which alone reads
// them. shared_loop_ is loop_ for the other threads (call_soon_threadsafe,
// time()), under mu_; detach() clears it first, so no other thread reaches
// the loop once its shutdown begins.
#pragma once

#include <qiloop/plugin_interface.h>

#include <QtCore/QObject>

#include <atomic>
#include <memory>
#include <mutex>

class QiEventLoop;
class QiRunner;
class QThread;

class QiLoopPlugin : public QObject, public QiLoopInterface {
  Q_OBJECT
  Q_PLUGIN_METADATA(IID QiLoopInterface_iid FILE "qiloop_plugin.json")
  Q_INTERFACES(QiLoopInterface)

 public:
  QiLoopPlugin();
  // Detaches a loop still attached (the plugin is unloaded); from another
  // thread it cannot, and leaves the loop alone. The QCoreApplication's
  // destructor detaches as well (a post routine): the clean-up needs Qt.
  ~QiLoopPlugin() override;

  bool attach() override;
  void detach() override;
  std::shared_ptr<QiLoopCallHandle> call_soon(std::function<void()> cb) override;
  std::shared_ptr<QiLoopCallHandle> call_later(std::chrono::nanoseconds delay, std::function<void()> cb) override;
  std::shared_ptr<QiLoopCallHandle> call_soon_threadsafe(std::function<void()> cb) override;
  std::chrono::steady_clock::time_point time() const override;
  QString version() const override;

 private:
  // The loop for a call on the loop's thread, or null after a warning that
  // says why the call `api` cannot be made.
  QiEventLoop* loop_for(const char* api, const std::function<void()>& cb) const;
  // cb, counted in depth_ while it runs (detach() from inside it is deferred).
  std::function<void()> counted(std::function<void()> cb);

  std::unique_ptr<QiRunner> runner_;
  QiEventLoop* loop_ = nullptr;
  std::atomic<QThread*> thread_{nullptr};  // the attached thread
  int depth_ = 0;                          // host callbacks on the stack
  bool detaching_ = false;
  // Receives the deferred detach() on the attached thread; replaced at each
  // attach(), so a detach posted for an earlier loop dies with it.
  std::unique_ptr<QObject> context_;

  mutable std::mutex mu_;
  QiEventLoop* shared_loop_ = nullptr;
};
