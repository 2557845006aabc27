// A host application that links only Qt Core (tests/plugin/plugin_test.cpp
// runs it): it loads the qiloop plugin, attaches a loop to its main thread,
// schedules and cancels callbacks (some from another thread), loads an
// extension that links qiloop and runs coroutines on that loop, lets
// app.exec() run everything, and detaches. Prints "plugin host: OK" and
// exits 0 when every check held.
//
//   plugin_host path <plugin file> <extension file> [<prefix libqiloop must come from>]
//   plugin_host name <extension file> [<prefix>]     (found through QT_PLUGIN_PATH)
//   plugin_host expect-error <plugin file> <text the error must contain>
//   plugin_host unload <plugin file> <extension file>   (unloads the plugin while attached)
//   plugin_host exit-attached <plugin file> <extension file>  (returns from main while attached)
//   plugin_host threads <plugin file> <extension file>  (loaded twice; threads call in during attach/detach cycles)
//   plugin_host_static <extension file>              (built with QILOOP_HOST_STATIC)
#include <qiloop/plugin_interface.h>

#include <QtCore/QCoreApplication>
#include <QtCore/QFile>
#include <QtCore/QLibrary>
#include <QtCore/QPluginLoader>
#include <QtCore/QTimer>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#ifdef QILOOP_HOST_STATIC
Q_IMPORT_PLUGIN(QiLoopPlugin)
#endif

using namespace std::chrono_literals;

namespace {

int g_failures = 0;
#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (!(cond)) {                                                                   \
      ++g_failures;                                                                  \
      std::fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                                \
  } while (0)

// Every Qt message, kept (and echoed) so the checks can look for them.
std::mutex g_log_mu;
std::vector<std::string> g_log;
void keep_message(QtMsgType, const QMessageLogContext& ctx, const QString& msg) {
  const std::string line = std::string(ctx.category ? ctx.category : "") + ": " + msg.toStdString();
  std::fprintf(stderr, "[qt] %s\n", line.c_str());
  std::lock_guard lock(g_log_mu);
  g_log.push_back(line);
}
// How many messages so far contain `text`.
int logged(const std::string& text) {
  std::lock_guard lock(g_log_mu);
  int n = 0;
  for (const std::string& line : g_log) n += line.find(text) != std::string::npos;
  return n;
}

// The distinct files named libqiloop.so* mapped into this process.
[[maybe_unused]] std::set<std::string> mapped_qiloop() {
  std::set<std::string> paths;
  QFile maps(QStringLiteral("/proc/self/maps"));
  if (!maps.open(QIODevice::ReadOnly)) return paths;
  for (const QByteArray& line : maps.readAll().split('\n')) {
    const qsizetype slash = line.indexOf('/');
    if (slash < 0) continue;
    const std::string path = line.mid(slash).toStdString();
    if (path.find("/libqiloop.so") != std::string::npos) paths.insert(path);
  }
  return paths;
}

// The extension's C entry points (tests/plugin/extension.cpp).
struct Extension {
  using CallSoon = const char* (*)(void (*)(void*), void*);
  using Start = const char* (*)(void (*)(void*, int), void*);
  using StartForever = const char* (*)(void (*)(void*), void*);
  CallSoon call_soon = nullptr;
  Start start = nullptr;
  StartForever start_forever = nullptr;
};

struct Scenario {
  QiLoopInterface* loop;
  Extension ext;
  std::vector<std::string> order;  // the host's callbacks, in the order they ran (main thread)
};

std::string str(const char* s) { return s ? s : ""; }

// Attach, schedule, run app.exec(), detach: the checks of one session.
void run_session(Scenario& s) {
  QiLoopInterface* L = s.loop;
  const std::thread::id main_id = std::this_thread::get_id();
  auto note = [&s](const char* what) { return [&s, what] { s.order.emplace_back(what); }; };

  // Before attach(): a clear refusal, never a crash.
  CHECK(L->call_soon(note("early")) == nullptr);
  CHECK(logged("call_soon(): no loop is attached; call attach() first") == 1);
  CHECK(L->call_soon_threadsafe(note("early")) == nullptr);
  CHECK(L->call_later(1ms, note("early")) == nullptr);
  CHECK(str(s.ext.call_soon([](void*) {}, nullptr)).find("no running event loop") != std::string::npos);
  const auto before = std::chrono::steady_clock::now();
  CHECK(L->time() >= before);
  L->detach();  // nothing to detach: a no-op

  CHECK(L->attach());
  CHECK(!L->attach());
  CHECK(logged("attach(): a loop is already attached to this thread") == 1);
  CHECK(L->call_soon(nullptr) == nullptr);
  CHECK(logged("the callback is empty") == 1);

  // FIFO across the host's calls and the extension's: one loop.
  auto a = L->call_soon(note("A"));
  auto x = L->call_soon(note("X"));
  x->cancel();
  x->cancel();  // idempotent
  CHECK(x->cancelled());
  CHECK(!a->cancelled());
  CHECK(s.ext.call_soon([](void* p) { static_cast<Scenario*>(p)->order.emplace_back("B"); }, &s) == nullptr);
  L->call_soon(note("C"));
  L->call_soon([] { throw std::runtime_error("host callback boom"); });
  L->call_soon(note("D"));  // handle dropped: it still runs

  // Timers: by deadline, never early; a cancelled one never runs.
  const auto t0 = L->time();
  std::chrono::nanoseconds l1_at{}, l2_at{};
  L->call_later(30ms, [&] {
    l2_at = L->time() - t0;
    s.order.emplace_back("L2");
  });
  L->call_later(10ms, [&] {
    l1_at = L->time() - t0;
    s.order.emplace_back("L1");
    L->call_soon(note("L1+"));  // scheduled from a callback
  });
  auto y = L->call_later(20ms, note("Y"));
  y->cancel();

  // Another thread: call_soon_threadsafe works, call_soon is refused, a
  // threadsafe handle is cancelled there, a call_soon handle is not. The
  // first part runs while a callback holds the loop (so Z is cancelled before
  // the loop can take it in); T1 comes while the loop runs.
  std::atomic<bool> t1_ran{false}, t1_on_main{false};
  std::atomic<bool> worker_soon_refused{false}, worker_cancel_refused{false}, z_cancelled{false};
  std::atomic<bool> worker_attach_refused{false};
  auto m = L->call_later(40ms, note("M"));  // the worker's cancel of this one is refused
  std::promise<void> first_part;
  std::thread worker;
  L->call_soon([&] {
    worker = std::thread([&] {
      worker_soon_refused = L->call_soon([] {}) == nullptr;
      L->detach();  // refused: not the loop's thread
      worker_attach_refused = !L->attach();
      auto z = L->call_soon_threadsafe([&] { s.order.emplace_back("Z"); });
      z->cancel();
      z_cancelled = z->cancelled();
      m->cancel();
      worker_cancel_refused = !m->cancelled();
      first_part.set_value();
      std::this_thread::sleep_for(5ms);
      L->call_soon_threadsafe([&] {
        t1_on_main = std::this_thread::get_id() == main_id;
        t1_ran = true;
      });
    });
    first_part.get_future().wait();
  });

  // The extension's coroutines run on the attached loop.
  int answer = 0;
  bool answered_on_main = false;
  std::pair<int*, bool*> answer_slot{&answer, &answered_on_main};
  CHECK(s.ext.start(
            [](void* p, int v) {
              auto* slot = static_cast<std::pair<int*, bool*>*>(p);
              *slot->first = v;
              *slot->second = true;
            },
            &answer_slot) == nullptr);
  bool forever_cancelled = false;
  CHECK(s.ext.start_forever([](void* p) { *static_cast<bool*>(p) = true; }, &forever_cancelled) == nullptr);

  // app.exec() until everything ran (polled on the loop), bounded by a Qt timer.
  bool timed_out = false;
  QTimer guard;
  guard.setSingleShot(true);
  QObject::connect(&guard, &QTimer::timeout, [&] {
    timed_out = true;
    QCoreApplication::exit(1);
  });
  guard.start(20s);
  std::function<void()> poll = [&] {
    // M ran (a deadline from t0 would not do: under TSan, M is scheduled
    // well after t0).
    const bool m_ran = std::find(s.order.begin(), s.order.end(), "M") != s.order.end();
    if (t1_ran && answer && l2_at.count() && m_ran)
      QCoreApplication::quit();
    else
      L->call_later(5ms, poll);
  };
  L->call_soon(poll);
  CHECK(QCoreApplication::exec() == 0);
  CHECK(!timed_out);
  worker.join();

  const std::vector<std::string> soon(s.order.begin(), s.order.begin() + std::min<size_t>(4, s.order.size()));
  CHECK((soon == std::vector<std::string>{"A", "B", "C", "D"}));
  auto pos = [&](const char* what) {
    return std::find(s.order.begin(), s.order.end(), what) - s.order.begin();
  };
  const auto end = static_cast<long>(s.order.size());
  CHECK(pos("X") == end);
  CHECK(pos("Y") == end);
  CHECK(pos("Z") == end);
  CHECK(pos("L1") < pos("L1+"));
  CHECK(pos("L1") < pos("L2"));  // (L1+ may come after L2: both timers may be due in one iteration)
  CHECK(pos("L1+") < end);
  CHECK(pos("L2") < pos("M"));  // the worker could not cancel M
  CHECK(pos("M") < end);
  CHECK(l1_at >= 10ms);
  CHECK(l2_at >= 30ms);
  CHECK(L->time() - t0 >= 40ms);
  CHECK(t1_on_main);
  CHECK(worker_soon_refused);
  CHECK(worker_attach_refused);
  CHECK(logged("detach(): called on another thread than the one the loop is attached to") == 1);
  CHECK(logged("attach(): a loop is attached to another thread") == 1);
  CHECK(worker_cancel_refused);
  CHECK(z_cancelled);
  CHECK(logged("call_soon(): called on another thread than the loop's; use call_soon_threadsafe()") == 1);
  CHECK(logged("cancelled on the loop's thread only") == 1);
  CHECK(logged("host callback boom") == 1);  // the exception handler's report; the loop went on
  CHECK(answer == 42);
  CHECK(answered_on_main);
  CHECK(!forever_cancelled);

  L->detach();  // QiRunner's clean-up: the extension's waiting task is cancelled
  CHECK(forever_cancelled);
  CHECK(L->call_soon(note("late")) == nullptr);
  CHECK(L->call_soon_threadsafe(note("late")) == nullptr);
  CHECK(logged("call_soon_threadsafe(): no loop is attached") == 2);
  CHECK(str(s.ext.call_soon([](void*) {}, nullptr)).find("no running event loop") != std::string::npos);

  // A second session; detach() from inside a callback is deferred until the
  // callback has returned to Qt's loop.
  CHECK(L->attach());
  bool detached_in_callback = false;
  L->call_soon([&] {
    L->detach();
    detached_in_callback = L->call_soon([] {}) != nullptr;  // still attached during the callback
    QTimer::singleShot(30ms, qApp, [] { QCoreApplication::quit(); });
  });
  guard.start(20s);
  CHECK(QCoreApplication::exec() == 0);
  CHECK(!timed_out);
  CHECK(detached_in_callback);
  CHECK(L->call_soon([] {}) == nullptr);  // the deferred detach() ran
  CHECK(str(s.ext.call_soon([](void*) {}, nullptr)).find("no running event loop") != std::string::npos);
  L->detach();
  CHECK(s.order.size() < 100);
}

template <class T>
T resolve(QLibrary& lib, const char* name) {
  auto f = reinterpret_cast<T>(lib.resolve(name));
  if (!f) std::fprintf(stderr, "cannot resolve %s: %s\n", name, qPrintable(lib.errorString()));
  return f;
}

int finish();
int threads_during_detach(QiLoopInterface* L, const QString& plugin_file);

// Attaches, runs a little, then unloads the plugin (loader given) or
// returns from main while still attached: the plugin's destructor detaches,
// so the extension's waiting task is cancelled, and nothing crashes.
[[maybe_unused]] int leave_attached(Scenario& s, QPluginLoader* loader) {
  static bool forever_cancelled = false;
  CHECK(s.loop->attach());
  CHECK(s.ext.start_forever([](void*) { forever_cancelled = true; }, nullptr) == nullptr);
  bool ran = false;
  s.loop->call_later(5ms, [&] {
    ran = true;
    QCoreApplication::quit();
  });
  CHECK(QCoreApplication::exec() == 0);
  CHECK(ran);
  CHECK(!forever_cancelled);
  if (!loader) {
    std::atexit([] {
      // After the plugin's instance went (Qt unloads plugins at exit).
      std::printf("at exit: the waiting task was %scancelled\n", forever_cancelled ? "" : "not ");
      std::fflush(stdout);
    });
    return finish();
  }
  CHECK(loader->unload());
  CHECK(forever_cancelled);
  return finish();
}

// Loaded twice (two loaders, one instance); attach/detach cycles, some
// detaches from inside a callback, while threads keep calling
// call_soon_threadsafe, cancelling its handles and reading time(): no
// crash, no race (run under TSan too), no callback runs once detach() returned.
[[maybe_unused]] int threads_during_detach(QiLoopInterface* L, const QString& plugin_file) {
  QPluginLoader second(plugin_file);
  CHECK(qi::load_loop_plugin(second) == L);  // one root instance per plugin file
  std::atomic<bool> stop{false};
  std::atomic<int> ran{0}, refused{0}, scheduled{0};
  std::atomic<bool> attached{false};
  std::atomic<int> ran_detached{0};
  std::vector<std::thread> workers;
  for (int t = 0; t < 8; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; !stop; ++i) {
        std::shared_ptr<QiLoopCallHandle> h = L->call_soon_threadsafe([&] {
          ++ran;
          if (!attached) ++ran_detached;
        });
        if (!h) {
          ++refused;
        } else {
          ++scheduled;
          if ((i + t) % 3 == 0) h->cancel();
        }
        (void)L->time();
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    });
  }
  for (int cycle = 0; cycle < 20; ++cycle) {
    CHECK(L->attach());
    attached = true;
    if (cycle % 2 == 0) {
      L->call_later(3ms, [] { QCoreApplication::quit(); });
    } else {
      L->call_later(3ms, [L] {
        L->detach();  // deferred until the callback returned
        QTimer::singleShot(2, qApp, [] { QCoreApplication::quit(); });
      });
    }
    CHECK(QCoreApplication::exec() == 0);
    L->detach();  // runs the callbacks already ready: they still count as attached
    attached = false;
    CHECK(L->call_soon([] {}) == nullptr);
  }
  stop = true;
  for (std::thread& w : workers) w.join();
  std::printf("threads: %d scheduled, %d ran, %d refused\n", scheduled.load(), ran.load(), refused.load());
  CHECK(ran > 0);
  CHECK(ran_detached == 0);
  // The second loader going leaves the instance to the first.
  second.unload();  // the library stays loaded, and its instance: the first loader holds them
  CHECK(L->attach());
  bool after = false;
  L->call_soon([&] {
    after = true;
    QCoreApplication::quit();
  });
  CHECK(QCoreApplication::exec() == 0);
  CHECK(after);
  L->detach();
  return finish();
}

int finish() {
  if (g_failures) {
    std::fprintf(stderr, "plugin host: %d check(s) failed\n", g_failures);
    return 1;
  }
  std::printf("plugin host: OK\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  qInstallMessageHandler(keep_message);
#ifdef QILOOP_HOST_STATIC
  {
    // A static plugin's instance exists before the QCoreApplication: attach()
    // then says it needs one.
    QiLoopInterface* early = qi::find_static_loop_plugin();
    CHECK(early && !early->attach());
    CHECK(logged("attach(): ") == 1 && logged("QCoreApplication") == 1);
  }
#endif
  QCoreApplication app(argc, argv);
  const QStringList args = app.arguments();
  const QString mode = args.value(1);

#ifdef QILOOP_HOST_STATIC
  const QString extension_path = mode;
  QString why;
  QiLoopInterface* L = qi::find_static_loop_plugin(&why);
  if (!L) {
    std::fprintf(stderr, "%s\n", qPrintable(why));
    return 2;
  }
  const QString expected_prefix;
#else
  // The host links no qiloop: nothing of it is mapped until the plugin loads.
  CHECK(mapped_qiloop().empty());
  QPluginLoader loader;
  QString extension_path, expected_prefix;
  if (mode == QLatin1String("expect-error")) {
    loader.setFileName(args.value(2));
    QString why;
    CHECK(qi::load_loop_plugin(loader, &why) == nullptr);
    std::printf("the host's message: %s\n", qPrintable(why));
    CHECK(why.contains(args.value(3)));
    CHECK(mapped_qiloop().empty());  // a mismatched plugin is never loaded
    return finish();
  }
  if (mode == QLatin1String("path") || mode == QLatin1String("unload") || mode == QLatin1String("exit-attached") ||
      mode == QLatin1String("threads")) {
    loader.setFileName(args.value(2));
    extension_path = args.value(3);
    expected_prefix = args.value(4);
  } else if (mode == QLatin1String("name")) {
    loader.setFileName(QStringLiteral("qiloop/qiloop_plugin"));  // searched in QCoreApplication::libraryPaths()
    extension_path = args.value(2);
    expected_prefix = args.value(3);
    const QString plugin_path = qEnvironmentVariable("QT_PLUGIN_PATH");
    CHECK(!plugin_path.isEmpty());
    CHECK(app.libraryPaths().contains(plugin_path));
  } else {
    std::fprintf(stderr, "usage: plugin_host path|name|expect-error ...\n");
    return 2;
  }
  QString why;
  QiLoopInterface* L = qi::load_loop_plugin(loader, &why);
  if (!L) {
    std::fprintf(stderr, "%s\n", qPrintable(why));
    return 2;
  }
  std::printf("loaded %s\n", qPrintable(loader.fileName()));
  if (mode == QLatin1String("name"))
    CHECK(loader.fileName().startsWith(qEnvironmentVariable("QT_PLUGIN_PATH") + QStringLiteral("/qiloop/")));
  const QJsonObject meta = loader.metaData().value(QLatin1String("MetaData")).toObject();
  CHECK(meta.value(QLatin1String("interface")).toString() == QLatin1String(QiLoopInterface_iid));
  CHECK(L->version() == meta.value(QLatin1String("version")).toString());
#endif
  CHECK(!L->version().isEmpty());

  QLibrary ext_lib(extension_path);
  if (!ext_lib.load()) {
    std::fprintf(stderr, "cannot load the extension: %s\n", qPrintable(ext_lib.errorString()));
    return 2;
  }
  Scenario s{L, {}, {}};
  s.ext.call_soon = resolve<Extension::CallSoon>(ext_lib, "qiloop_test_extension_call_soon");
  s.ext.start = resolve<Extension::Start>(ext_lib, "qiloop_test_extension_start");
  s.ext.start_forever = resolve<Extension::StartForever>(ext_lib, "qiloop_test_extension_start_forever");
  if (!s.ext.call_soon || !s.ext.start || !s.ext.start_forever) return 2;

  // One libqiloop in the process: the plugin's and the extension's.
  const std::set<std::string> libs = mapped_qiloop();
  CHECK(libs.size() == 1);
  for (const std::string& lib : libs) {
    std::printf("libqiloop: %s\n", lib.c_str());
    if (!expected_prefix.isEmpty()) CHECK(QString::fromStdString(lib).startsWith(expected_prefix));
  }

#ifndef QILOOP_HOST_STATIC
  if (mode == QLatin1String("unload")) return leave_attached(s, &loader);
  if (mode == QLatin1String("exit-attached")) return leave_attached(s, nullptr);
  if (mode == QLatin1String("threads")) return threads_during_detach(L, args.value(2));
#endif
  run_session(s);
  return finish();
}
