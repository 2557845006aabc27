// worker_coroutine — the 2015 "Python Qt and Coroutines" program in C++:
// a click starts blocking work on another thread and the handler reads as
// straight-line code — result, exception and all — resuming on the GUI thread.
// The Python original (Python 2.7 generators driven by a decorator over QThread):
//
//   @coroutine
//   def handle_click(self):
//       task1 = AsyncTask(self.worker, 66)        # starts a QThread running worker(66)
//       try:
//           val1 = yield task1                    # resumed on the GUI thread by a posted QEvent
//           print("task1 returned: {0}".format(val1))
//       except ASyncException as e:               # the worker's exception, its stack lost
//           print("Async task failed with {0}".format(repr(e)))
//
// Here the same handler is a coroutine slot (qi::asyncslot), the QThread
// plumbing is qi::to_thread (the loop's thread pool) and qi::LoopThread (a
// QThread running a loop of its own), exceptions keep their C++ type, and
// the window's destruction cancels a handler where it waits — which cancels
// the work it waits for on the other thread.
//
// Usage: worker_coroutine                      the window: three buttons and a log
//        worker_coroutine --script             clicks through them, then closes the window mid-count
//        worker_coroutine --screenshot w.png   the same, saving the window before closing it
#include <qiloop/qiloop.h>

#include <QtCore/QCommandLineParser>
#include <QtCore/QPointer>
#include <QtCore/QThread>
#include <QtWidgets/QApplication>
#include <QtWidgets/QFormLayout>
#include <QtWidgets/QPlainTextEdit>
#include <QtWidgets/QProgressBar>
#include <QtWidgets/QPushButton>
#include <QtWidgets/QSpinBox>
#include <QtWidgets/QVBoxLayout>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <thread>

using namespace std::chrono_literals;

namespace {

// --- The blocking work --------------------------------------------------------

// The original's worker(66): slow, and says which thread it ran on.
struct Squared {
  long long value;
  std::thread::id thread;
};
Squared slow_square(int x) {
  std::this_thread::sleep_for(200ms);
  return {static_cast<long long>(x) * x, std::this_thread::get_id()};
}

// Work that fails on the worker thread.
double slow_sqrt(int x) {
  std::this_thread::sleep_for(100ms);
  if (x < 0) throw std::domain_error("no real square root of " + std::to_string(x));
  return std::sqrt(x);
}

bool is_prime(int n) {
  if (n < 2) return false;
  for (int d = 2; d <= n / d; ++d)
    if (n % d == 0) return false;
  return true;
}

// Where the counting job reports progress. It lives on the GUI thread and
// outlives the worker thread (main() owns it), so the job may emit from the
// worker at any time; receivers on the GUI thread get queued calls.
class JobProgress : public QObject {
  Q_OBJECT
 signals:
  void advanced(int percent);
  void stopped(int percent);  // cancelled before the end
};

struct Counted {
  int primes;
  QString thread;  // the QThread it ran on
};

// Runs as a task of the worker thread's loop: blocking slices, each followed
// by a co_await where the loop breathes and a cancellation can land.
qi::Coro<Counted> count_primes(int limit, JobProgress* progress) {
  constexpr int kSlice = 10'000;  // numbers per slice: a few milliseconds of the worker's time
  int primes = 0;
  int percent = 0;
  try {
    for (int lo = 0; lo < limit; lo += kSlice) {
      const int hi = std::min(limit, lo + kSlice);
      for (int n = lo; n < hi; ++n) primes += is_prime(n);
      percent = static_cast<int>(100LL * hi / limit);
      emit progress->advanced(percent);
      co_await qi::sleep(0);
    }
  } catch (const qi::CancelledError&) {
    emit progress->stopped(percent);
    throw;
  }
  co_return Counted{primes, QThread::currentThread()->objectName()};
}

// --- The window ---------------------------------------------------------------

// Three buttons, each a coroutine slot bound to the window: closing the
// window (it deletes itself) cancels whatever they still wait for.
class Window : public QWidget {
  Q_OBJECT
 public:
  Window(qi::LoopThread& worker, JobProgress& progress) : worker_(worker), progress_(progress) {
    setAttribute(Qt::WA_DeleteOnClose);
    setWindowTitle("worker_coroutine");
    auto* square = add_button("square", "Square 66 (thread pool)");
    auto* fail = add_button("fail", "Square root of -1 (thread pool, fails)");
    count_ = add_button("count", "Count primes (worker QThread)");
    limit_->setObjectName("limit");
    limit_->setRange(1, 1'000'000'000);
    limit_->setValue(2'000'000);
    limit_->setGroupSeparatorShown(true);
    log_->setReadOnly(true);
    auto* form = new QFormLayout;
    form->addRow("Count primes below", limit_);
    form->addRow("Progress", bar_);
    layout_->addLayout(form);
    layout_->addWidget(log_);
    resize(460, 360);

    connect(square, &QPushButton::clicked, this, qi::asyncslot(this, &Window::square));
    connect(fail, &QPushButton::clicked, this, qi::asyncslot(this, &Window::fail));
    connect(count_, &QPushButton::clicked, this, qi::asyncslot(this, &Window::count));
    connect(&progress_, &JobProgress::advanced, bar_, &QProgressBar::setValue);
  }

 signals:
  void jobEnded();  // a handler finished (not cancelled)

 private:
  QPushButton* add_button(const char* name, const char* text) {
    auto* b = new QPushButton(text);
    b->setObjectName(name);
    layout_->addWidget(b);
    return b;
  }

  void log(const QString& line) {
    log_->appendPlainText(line);
    std::printf("%s\n", qPrintable(line));
  }

  // The original's handle_click: straight-line code around a thread hop.
  qi::Coro<void> square() {
    const auto gui_thread = std::this_thread::get_id();
    log("squaring 66 on the thread pool...");
    Squared r = co_await qi::to_thread(slow_square, 66);
    log(QString("task1 returned: %1 (computed off the GUI thread: %2, shown on the GUI thread: %3)")
            .arg(r.value)
            .arg(r.thread != gui_thread ? "yes" : "no")
            .arg(std::this_thread::get_id() == gui_thread ? "yes" : "no"));
    emit jobEnded();
  }

  // The worker's exception arrives at the co_await with its own type.
  qi::Coro<void> fail() {
    log("taking the square root of -1 on the thread pool...");
    try {
      double r = co_await qi::to_thread(slow_sqrt, -1);
      log(QString("got %1").arg(r));
    } catch (const std::domain_error& e) {
      log(QString("caught std::domain_error on the GUI thread: %1").arg(e.what()));
    }
    emit jobEnded();
  }

  // A long job on the worker's own loop. Closing the window cancels this
  // task at the co_await; qi::wrap_future passes the cancellation on to the
  // job's task on the worker thread.
  qi::Coro<void> count() {
    count_->setEnabled(false);
    const int limit = limit_->value();
    log(QString("counting the primes below %L1 on the worker QThread's loop...").arg(limit));
    try {
      Counted c = co_await qi::wrap_future(qi::run_coroutine_threadsafe(count_primes(limit, &progress_), worker_.loop()));
      log(QString("%L1 primes below %L2 (counted on thread \"%3\")").arg(c.primes).arg(limit).arg(c.thread));
    } catch (const qi::CancelledError&) {
      // Cancelled inside the window's destruction: its members are gone.
      std::printf("count cancelled at its co_await: the window closed\n");
      throw;
    }
    count_->setEnabled(true);
    emit jobEnded();
  }

  qi::LoopThread& worker_;
  JobProgress& progress_;
  QVBoxLayout* layout_ = new QVBoxLayout(this);
  QPushButton* count_ = nullptr;
  QSpinBox* limit_ = new QSpinBox;
  QProgressBar* bar_ = new QProgressBar;
  QPlainTextEdit* log_ = new QPlainTextEdit;
};

// --- The scripted run (--script) --------------------------------------------

// Clicks a button of the window and waits until its handler is done.
qi::Coro<void> click(Window* window, const char* button) {
  std::printf("> click \"%s\"\n", qPrintable(window->findChild<QPushButton*>(button)->text()));
  window->findChild<QPushButton*>(button)->click();
  std::optional<std::monostate> ended = co_await qi::asyncsignal(window, &Window::jobEnded, 10s);
  if (!ended) throw qi::RuntimeError("no result within 10 s");
}

// stream.next() as a Coro, which qi::timeout takes (it holds its awaitable).
qi::Coro<std::optional<int>> next(qi::SignalStream<int>& stream) { co_return co_await stream.next(); }

qi::Coro<void> script(QPointer<Window> window, JobProgress& progress, QString screenshot) {
  co_await click(window, "square");
  co_await click(window, "fail");
  window->findChild<QSpinBox*>("limit")->setValue(100'000);
  co_await click(window, "count");
  if (!screenshot.isEmpty()) {
    if (!window->grab().save(screenshot, "PNG")) throw qi::RuntimeError("cannot write the screenshot");
    std::printf("> screenshot saved\n");
  }

  // A count too long to finish: close the window once the worker reports.
  // The streams connect now (eagerly), so no emission from the worker is missed.
  qi::SignalStream<int> advanced = qi::signal_stream(&progress, &JobProgress::advanced);
  qi::SignalStream<int> stopped = qi::signal_stream(&progress, &JobProgress::stopped);
  window->findChild<QSpinBox*>("limit")->setValue(100'000'000);
  window->findChild<QPushButton*>("count")->click();
  co_await qi::timeout(10s, next(advanced));
  std::printf("> the worker reports progress: close the window\n");
  window->close();  // deletes it: its handler is cancelled now, before close() returns
  std::optional<int> percent = co_await qi::timeout(10s, next(stopped));
  std::printf("the job on the worker thread was cancelled too, before its end: %s\n",
              percent && *percent < 100 ? "yes" : "no");
  QApplication::quit();
}

// A failed script makes the program exit with status 1.
qi::Coro<void> run_script(QPointer<Window> window, JobProgress& progress, QString screenshot) {
  try {
    co_await script(window, progress, std::move(screenshot));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "worker_coroutine: %s\n", e.what());
    QCoreApplication::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  QApplication app(argc, argv);
  QCommandLineParser parser;
  parser.setApplicationDescription("Blocking work on other threads, awaited by coroutine slots");
  parser.addHelpOption();
  parser.addOption({"script", "Click through the window, print what happens, close it and quit."});
  parser.addOption({"screenshot", "With --script: save the window to <file> (PNG) before closing it.", "file"});
  parser.process(app);

  JobProgress progress;             // outlives the worker thread, which emits its signals
  qi::LoopThread worker("worker");  // the original's QThread, running a loop of its own
  QiRunner runner;                  // this thread's loop, inside app.exec()
  QPointer<Window> window = new Window(worker, progress);
  window->show();
  if (parser.isSet("script") || parser.isSet("screenshot")) {
    app.setQuitOnLastWindowClosed(false);
    qi::create_task(run_script(window, progress, parser.value("screenshot")));
  }
  int status = app.exec();
  delete window;  // still open when the application quit otherwise: cancels its handlers
  return status;
}

#include "main.moc"
