// The Qt plugin (plugin/): host programs that link only Qt Core
// (tests/plugin/host.cpp) load it by path, through QT_PLUGIN_PATH, from an
// installed prefix, and statically; hosts built for another interface, or
// given another file, get a clear message. Each host runs as its own process
// with a bounded time.
#include <gtest/gtest.h>

#include <QtCore/QDir>
#include <QtCore/QFile>
#include <QtCore/QFileInfo>
#include <QtCore/QProcess>
#include <QtCore/QProcessEnvironment>
#include <QtCore/QTemporaryDir>

namespace {

struct Outcome {
  int exit_code = -1;
  QString output;  // stdout and stderr
};

// Runs a program to its end (at most 60 s) and returns what it said.
Outcome run(const QString& program, const QStringList& args,
            const QProcessEnvironment& env = QProcessEnvironment::systemEnvironment()) {
  QProcess p;
  p.setProcessEnvironment(env);
  p.setProcessChannelMode(QProcess::MergedChannels);
  p.start(program, args);
  Outcome o;
  if (!p.waitForStarted(10'000)) {
    o.output = QStringLiteral("cannot start %1: %2").arg(program, p.errorString());
    return o;
  }
  if (!p.waitForFinished(60'000)) {
    p.kill();
    p.waitForFinished(5'000);
    o.output = QStringLiteral("%1 did not finish within 60 s\n").arg(program);
  }
  o.output += QString::fromLocal8Bit(p.readAll());
  if (p.exitStatus() == QProcess::NormalExit) o.exit_code = p.exitCode();
  return o;
}

// A host must end with exit code 0 and its OK line.
void expect_ok(const Outcome& o) {
  EXPECT_EQ(o.exit_code, 0) << o.output.toStdString();
  EXPECT_TRUE(o.output.contains(QLatin1String("plugin host: OK"))) << o.output.toStdString();
}

// No LD_LIBRARY_PATH: the plugin finds libqiloop through its RPATH.
QProcessEnvironment env_with_plugin_path(const QString& dir) {
  QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
  env.remove(QStringLiteral("LD_LIBRARY_PATH"));
  env.insert(QStringLiteral("QT_PLUGIN_PATH"), dir);
  return env;
}

const QString kHost = QStringLiteral(QILOOP_PLUGIN_HOST);
const QString kPlugin = QStringLiteral(QILOOP_PLUGIN_FILE);
const QString kExtension = QStringLiteral(QILOOP_PLUGIN_EXTENSION);

TEST(Plugin, HostLinksOnlyQtCore) {
  // The hosts' own dependencies: Qt Core and the C/C++ runtime, no qiloop.
  const Outcome o = run(QStringLiteral("readelf"), {QStringLiteral("-d"), kHost});
  ASSERT_EQ(o.exit_code, 0) << o.output.toStdString();
  EXPECT_TRUE(o.output.contains(QLatin1String("libQt6Core.so"))) << o.output.toStdString();
  EXPECT_FALSE(o.output.contains(QLatin1String("qiloop"))) << o.output.toStdString();
}

TEST(Plugin, LoadedByPath) {
  QProcessEnvironment env = QProcessEnvironment::systemEnvironment();
  env.remove(QStringLiteral("QT_PLUGIN_PATH"));
  expect_ok(run(kHost, {QStringLiteral("path"), kPlugin, kExtension}, env));
}

TEST(Plugin, FoundThroughQtPluginPath) {
  expect_ok(run(kHost, {QStringLiteral("name"), kExtension},
                env_with_plugin_path(QStringLiteral(QILOOP_PLUGIN_BUILD_PLUGINS_DIR))));
}

TEST(Plugin, StaticPluginWithQImportPlugin) {
  expect_ok(run(QStringLiteral(QILOOP_PLUGIN_HOST_STATIC), {kExtension}));
}

TEST(Plugin, HostBuiltForAnotherInterfaceVersionGetsAClearMessage) {
  const Outcome o = run(QStringLiteral(QILOOP_PLUGIN_HOST_V2),
                        {QStringLiteral("expect-error"), kPlugin,
                         QStringLiteral("implements the qiloop plugin interface 'org.qiloop.QiLoopInterface/1.0' "
                                        "(qiloop " QILOOP_PLUGIN_VERSION ") but this host was built for "
                                        "'org.qiloop.QiLoopInterface/2.0'")});
  expect_ok(o);
}

TEST(Plugin, AnotherQtPluginIsNoQiloopPlugin) {
  expect_ok(run(kHost, {QStringLiteral("expect-error"), QStringLiteral(QILOOP_PLUGIN_OTHER),
                        QStringLiteral("it is not a qiloop plugin: its interface is 'org.example.OtherInterface/1.0'")}));
}

TEST(Plugin, AFileThatIsNoPluginGetsQtsReason) {
  expect_ok(run(kHost, {QStringLiteral("expect-error"), kExtension, QStringLiteral("is not a Qt plugin")}));
  expect_ok(run(kHost, {QStringLiteral("expect-error"), QStringLiteral("/nonexistent/libqiloop_plugin.so"),
                        QStringLiteral("QT_PLUGIN_PATH")}));
}

// Unloading the plugin detaches the loop it attached (the extension's
// waiting task is cancelled); so does the process's exit.
TEST(Plugin, UnloadingThePluginDetaches) {
  expect_ok(run(kHost, {QStringLiteral("unload"), kPlugin, kExtension}));
}

TEST(Plugin, ThreadsCallingInDuringAttachDetachCyclesAndTwoLoaders) {
  const Outcome o = run(kHost, {QStringLiteral("threads"), kPlugin, kExtension});
  expect_ok(o);
  EXPECT_TRUE(o.output.contains(QLatin1String("threads: "))) << o.output.toStdString();
}

TEST(Plugin, ExitingWhileAttachedIsClean) {
  const Outcome o = run(kHost, {QStringLiteral("exit-attached"), kPlugin, kExtension});
  expect_ok(o);
  EXPECT_TRUE(o.output.contains(QLatin1String("at exit: the waiting task was cancelled"))) << o.output.toStdString();
  EXPECT_FALSE(o.output.contains(QLatin1String("destroyed but it is pending"))) << o.output.toStdString();
}

// cmake --install into a temporary prefix, moved elsewhere (relocatable),
// then the host finds the plugin there through QT_PLUGIN_PATH alone.
TEST(Plugin, InstalledLayoutLoadsFromAnyPrefix) {
  QTemporaryDir tmp;
  ASSERT_TRUE(tmp.isValid());
  const QString prefix = tmp.filePath(QStringLiteral("prefix"));
  for (const char* component : {"Unspecified", "plugin"}) {
    const Outcome o = run(QStringLiteral(QILOOP_CMAKE_COMMAND),
                          {QStringLiteral("--install"), QStringLiteral(QILOOP_BUILD_DIR), QStringLiteral("--prefix"),
                           prefix, QStringLiteral("--component"), QString::fromLatin1(component)});
    ASSERT_EQ(o.exit_code, 0) << o.output.toStdString();
  }
  const QString moved = tmp.filePath(QStringLiteral("moved"));
  ASSERT_TRUE(QDir().rename(prefix, moved));
  const QString plugins = moved + QStringLiteral("/" QILOOP_INSTALL_LIBDIR "/qt6/plugins");
  EXPECT_TRUE(QFileInfo::exists(plugins + QStringLiteral("/qiloop/libqiloop_plugin.so")));
  EXPECT_TRUE(QFileInfo::exists(moved + QStringLiteral("/include/qiloop/plugin_interface.h")));
  // find_package(qiloop) users get the header and the static plugin as targets.
  QFile targets(moved + QStringLiteral("/" QILOOP_INSTALL_LIBDIR "/cmake/qiloop/qiloopTargets.cmake"));
  ASSERT_TRUE(targets.open(QIODevice::ReadOnly));
  const QByteArray exported = targets.readAll();
  EXPECT_TRUE(exported.contains("add_library(qiloop::plugin_interface INTERFACE IMPORTED)"));
  EXPECT_TRUE(exported.contains("add_library(qiloop::plugin_static STATIC IMPORTED)"));
  const Outcome rpath = run(QStringLiteral("readelf"), {QStringLiteral("-d"), plugins + "/qiloop/libqiloop_plugin.so"});
  EXPECT_TRUE(rpath.output.contains(QLatin1String("[$ORIGIN/../../..]"))) << rpath.output.toStdString();
  expect_ok(run(kHost, {QStringLiteral("name"), kExtension, moved + QLatin1Char('/')}, env_with_plugin_path(plugins)));
}

}  // namespace
