// hello_loop — the order in which call_soon, call_later and
// call_soon_threadsafe callbacks run, in nested mode (run_forever) and in
// attached mode (QiRunner + app.exec()). The asyncio original:
//
//   loop.call_soon(print, "soon 1")
//   loop.call_later(0.002, print, "later 2 ms")
//   loop.call_later(0.0015, print, "later 1.5 ms")
//   loop.call_at(t0 + 0.001, print, "at t0 + 1 ms #1")
//   loop.call_at(t0 + 0.001, print, "at t0 + 1 ms #2")
//   loop.call_soon(print, "soon 2")
//   threading.Thread(target=lambda: loop.call_soon_threadsafe(print, "from a thread")).start()
#include <qiloop/qiloop.h>

#include <QtCore/QCoreApplication>
#include <QtCore/QTimer>

#include <cstdio>
#include <string>
#include <thread>

using namespace std::chrono_literals;

namespace {

void say(const std::string& mode, const char* what) { std::printf("[%s] %s\n", mode.c_str(), what); }

// Schedules the same program on `loop` and stops it when the last timer fires.
void schedule(QiEventLoop& loop, const std::string& mode, std::thread& worker) {
  auto t0 = loop.time();
  loop.call_soon(say, mode, "call_soon #1 (runs first: FIFO)");
  loop.call_later(2ms, [&loop, mode] {
    say(mode, "call_later(2 ms) (last)");
    loop.stop();
  });
  loop.call_later(1500us, say, mode, "call_later(1.5 ms) (timers run in deadline order)");
  loop.call_at(t0 + 1ms, say, mode, "call_at(t0 + 1 ms) #1");
  loop.call_at(t0 + 1ms, say, mode, "call_at(t0 + 1 ms) #2 (equal deadlines: scheduling order)");
  loop.call_soon([&loop, mode] {
    say(mode, "call_soon #2, which schedules #3");
    loop.call_soon(say, mode, "call_soon #3 (scheduled by #2: runs on the next iteration)");
  });
  qi::Handle h = loop.call_soon(say, mode, "never printed: cancelled");
  h.cancel();
  worker = std::thread([&loop, mode] {
    loop.call_soon_threadsafe(say, mode, "call_soon_threadsafe from a worker thread");
  });
}

}  // namespace

int main(int argc, char** argv) {
  QCoreApplication app(argc, argv);
  std::thread worker;

  // Nested mode: run_forever() runs its own QEventLoop until stop().
  {
    QiEventLoop loop;
    schedule(loop, "nested", worker);
    loop.run_forever();
    worker.join();
    std::printf("[nested] loop stopped; %llu iterations\n\n",
                static_cast<unsigned long long>(loop.stats().iterations));
  }

  // Attached mode: the application's own exec() drives the loop.
  {
    QiRunner runner;
    QiEventLoop& loop = runner.loop();
    QObject::connect(&loop, &QiEventLoop::stopped, &app, [] { QCoreApplication::exit(0); });
    schedule(loop, "attached", worker);
    QTimer::singleShot(0, [] { std::printf("[attached] a QTimer slot runs too: Qt keeps working\n"); });
    int rc = app.exec();
    worker.join();
    std::printf("[attached] app.exec() returned %d\n", rc);
  }
  return 0;
}
