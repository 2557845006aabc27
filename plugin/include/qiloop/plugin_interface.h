// -----------------------------------------------------------------------------
// File: qiloop/plugin_interface.h
// -----------------------------------------------------------------------------
//
// QiLoopInterface: qiloop's loop API for a Qt application that does not link
// qiloop. The application (the host) loads the qiloop plugin, attaches a loop
// to its main thread and schedules std::function callbacks on it; extensions
// the host loads that do link qiloop see that loop as qi::get_running_loop()
// and run tasks on it. Header-only: no qiloop type, no link dependency beyond
// Qt Core.
//
// Example:
//
//   QCoreApplication app(argc, argv);                      // first: plugins need it
//   QPluginLoader loader("qiloop/qiloop_plugin");          // found through QT_PLUGIN_PATH
//   QString why;
//   QiLoopInterface* qi_loop = qi::load_loop_plugin(loader, &why);
//   if (!qi_loop) { qWarning() << why; return 1; }
//   if (!qi_loop->attach()) return 1;                      // it logged why
//   qi_loop->call_later(500ms, [] { qInfo() << "half a second later"; });
//   int rc = app.exec();                                   // the loop runs inside it
//   qi_loop->detach();                                     // QiRunner's clean-up
//
// Contract:
// - attach() makes a loop the running loop of the calling thread, driven by
//   that thread's Qt event loop (app.exec()), as a QiRunner does. It returns
//   false, with a qWarning saying why, when there is no QCoreApplication or
//   a loop already runs on the thread (this plugin's included).
// - detach() does what leaving a QiRunner does: cancels the tasks still
//   pending and lets them finish, runs the callbacks already ready, shuts the
//   default executor down and closes the loop. Callbacks still scheduled
//   then never run. Called from a callback the plugin runs, it is done once
//   control is back in Qt's event loop. Without a loop it does nothing.
//   Unloading the plugin, or destroying the QCoreApplication while a loop is
//   attached, detaches too (on the attached thread).
// - call_soon / call_later / call_soon_threadsafe: asyncio's ordering (FIFO;
//   timers by deadline, then scheduling order; a timer never runs early).
//   Each returns a handle: cancel() before the callback starts means it
//   never runs (idempotent); cancelled() says whether cancel() was called;
//   dropping the handle cancels nothing. Handles may outlive the loop.
// - Errors never cross the interface as exceptions: before attach(), after
//   detach(), from the wrong thread or with an empty callback, a call returns
//   a null handle and logs a qWarning naming the fix. An exception thrown by
//   a callback goes to the loop's exception handler (by default logged with
//   qCritical, category "qiloop"); the loop and the host go on.
// - Threads: attach, detach, call_soon and call_later on the attached
//   thread; call_soon_threadsafe, time() and version() on any thread. The
//   handle of a call_soon_threadsafe may be cancelled on any thread, the
//   others on the attached thread.
// - time() is the loop's monotonic clock (steady_clock unless an extension
//   set another clock on the loop); without a loop, steady_clock::now().
//
// Versions: QiLoopInterface_iid ends in the interface's version. The minor
// digit stays 0: any change to this class makes a new major, so a plugin is
// usable exactly when its IID equals the host's. qi::load_loop_plugin()
// checks the plugin's metadata before loading it and turns a mismatch (or a
// file that is no qiloop plugin) into a message, never a crash.
#pragma once

#include <QtCore/QFileInfo>
#include <QtCore/QJsonObject>
#include <QtCore/QObject>
#include <QtCore/QPluginLoader>
#include <QtCore/QString>
#include <QtCore/QtPlugin>

#include <chrono>
#include <functional>
#include <memory>

// QiLoopCallHandle
// What the scheduling calls return: asyncio's Handle. Dropping it cancels
// nothing.
class QiLoopCallHandle {
 public:
  virtual ~QiLoopCallHandle() = default;
  // QiLoopCallHandle::cancel()
  // The callback never runs if it has not started. Idempotent. Attached
  // thread (any thread for a call_soon_threadsafe handle).
  virtual void cancel() = 0;
  // QiLoopCallHandle::cancelled()
  // Whether cancel() was called.
  virtual bool cancelled() const = 0;
};

// QiLoopInterface
// The plugin's interface (see the file comment for the contract).
class QiLoopInterface {
 public:
  virtual ~QiLoopInterface() = default;
  // QiLoopInterface::attach()
  // A loop running on the calling thread in attached mode; false if it cannot.
  virtual bool attach() = 0;
  // QiLoopInterface::detach()
  // QiRunner's clean-up; nothing without a loop.
  virtual void detach() = 0;
  // QiLoopInterface::call_soon()
  // cb() on a later iteration. Attached thread.
  virtual std::shared_ptr<QiLoopCallHandle> call_soon(std::function<void()> cb) = 0;
  // QiLoopInterface::call_later()
  // cb() once `delay` has passed on time() (never earlier). Attached thread.
  virtual std::shared_ptr<QiLoopCallHandle> call_later(std::chrono::nanoseconds delay,
                                                       std::function<void()> cb) = 0;
  // QiLoopInterface::call_soon_threadsafe()
  // call_soon from any thread.
  virtual std::shared_ptr<QiLoopCallHandle> call_soon_threadsafe(std::function<void()> cb) = 0;
  // QiLoopInterface::time()
  // The loop's monotonic clock. Any thread.
  virtual std::chrono::steady_clock::time_point time() const = 0;
  // QiLoopInterface::version()
  // qiloop's version, as the metadata's "version". Any thread.
  virtual QString version() const = 0;
};

#define QiLoopInterface_iid "org.qiloop.QiLoopInterface/1.0"
Q_DECLARE_INTERFACE(QiLoopInterface, QiLoopInterface_iid)

namespace qi {

namespace plugin_detail {
inline constexpr char kIidPrefix[] = "org.qiloop.QiLoopInterface/";

// The major version an IID ends in ("…/1.0" → "1"); empty for another IID.
inline QString iid_major(const QString& iid) {
  if (!iid.startsWith(QLatin1String(kIidPrefix))) return {};
  const QString version = iid.mid(qsizetype(sizeof kIidPrefix) - 1);
  return version.section(QLatin1Char('.'), 0, 0);
}
}  // namespace plugin_detail

// qi::loop_plugin_incompatibility()
// Why a plugin with this metadata (QPluginLoader::metaData(),
// QStaticPlugin::metaData()) cannot serve this host, or an empty string when
// it can. Reads metadata only: nothing is loaded.
inline QString loop_plugin_incompatibility(const QJsonObject& meta) {
  const QString iid = meta.value(QLatin1String("IID")).toString();
  const QString host = QStringLiteral(QiLoopInterface_iid);
  if (iid == host) return {};
  const QJsonObject ours = meta.value(QLatin1String("MetaData")).toObject();
  const QString qiloop = ours.value(QLatin1String("version")).toString();
  if (plugin_detail::iid_major(iid).isEmpty())
    return QStringLiteral("it is not a qiloop plugin: its interface is '%1', not '%2'").arg(iid, host);
  if (plugin_detail::iid_major(iid) != plugin_detail::iid_major(host))
    return QStringLiteral(
               "it implements the qiloop plugin interface '%1' (qiloop %2) but this host was built for '%3': "
               "install a qiloop whose plugin has interface '%3', or rebuild the host against the "
               "<qiloop/plugin_interface.h> of qiloop %2")
        .arg(iid, qiloop.isEmpty() ? QStringLiteral("?") : qiloop, host);
  return QStringLiteral("it implements the qiloop plugin interface '%1' (qiloop %2), this host needs '%3'")
      .arg(iid, qiloop.isEmpty() ? QStringLiteral("?") : qiloop, host);
}

// qi::load_loop_plugin()
// The QiLoopInterface of loader's plugin, loading it; or null with *error
// (when given) saying why: the file is missing or no Qt plugin, no qiloop
// plugin, of another interface version, or failed to load (a library it
// needs is missing). A mismatched plugin is never loaded. A
// QCoreApplication must exist. Thread: as QPluginLoader.
inline QiLoopInterface* load_loop_plugin(QPluginLoader& loader, QString* error = nullptr) {
  auto fail = [&](const QString& why) -> QiLoopInterface* {
    if (error)
      *error = QStringLiteral("qiloop plugin '%1': %2").arg(loader.fileName().isEmpty() ? QStringLiteral("?")
                                                                                       : loader.fileName(),
                                                              why);
    return nullptr;
  };
  const QJsonObject meta = loader.metaData();
  if (meta.isEmpty() && !QFileInfo::exists(loader.fileName()))
    return fail(QStringLiteral("%1 (load it by path, or by the name \"qiloop/qiloop_plugin\" with its "
                               "plugins directory, <prefix>/<libdir>/qt6/plugins, in QT_PLUGIN_PATH)")
                    .arg(loader.errorString()));
  if (meta.isEmpty()) return fail(loader.errorString());
  if (QString why = loop_plugin_incompatibility(meta); !why.isEmpty()) return fail(why);
  QObject* root = loader.instance();
  if (!root) return fail(loader.errorString());
  auto* iface = qobject_cast<QiLoopInterface*>(root);
  if (!iface) return fail(QStringLiteral("its root object does not implement " QiLoopInterface_iid));
  return iface;
}

// qi::find_static_loop_plugin()
// The QiLoopInterface of the qiloop plugin linked in statically
// (Q_IMPORT_PLUGIN(QiLoopPlugin)), or null with *error saying why.
inline QiLoopInterface* find_static_loop_plugin(QString* error = nullptr) {
  QString why = QStringLiteral(
      "no static qiloop plugin: link qiloop::plugin_static and write Q_IMPORT_PLUGIN(QiLoopPlugin) in one source");
  for (const QStaticPlugin& p : QPluginLoader::staticPlugins()) {
    const QJsonObject meta = p.metaData();
    if (plugin_detail::iid_major(meta.value(QLatin1String("IID")).toString()).isEmpty()) continue;
    why = loop_plugin_incompatibility(meta);
    if (!why.isEmpty()) continue;
    if (auto* iface = qobject_cast<QiLoopInterface*>(p.instance())) return iface;
    why = QStringLiteral("the static qiloop plugin does not implement " QiLoopInterface_iid);
  }
  if (error) *error = why;
  return nullptr;
}

}  // namespace qi
