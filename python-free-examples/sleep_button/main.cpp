// sleep_button — qtinter's first quickstart program in C++: a button whose
// coroutine slot disables it, sleeps a second without blocking Qt, and
// enables it again. The Python original (qtinter's examples/sleep.py):
//
//   async def sleep():
//       button.setEnabled(False)
//       await asyncio.sleep(1)
//       button.setEnabled(True)
//
//   app = QtWidgets.QApplication([])
//   button = QtWidgets.QPushButton()
//   button.setText('Sleep for one second')
//   button.clicked.connect(qtinter.asyncslot(sleep))
//   button.show()
//   with qtinter.using_asyncio_from_qt():
//       app.exec()
//
// Usage: sleep_button                       the program as above
//        sleep_button --clicks 2 --quit     clicks it twice, saying what the button does, then quits
//        sleep_button --screenshot b.png    saves the window as a PNG (then quits with --quit)
#include <qiloop/qiloop.h>

#include <QtCore/QCommandLineParser>
#include <QtCore/QEvent>
#include <QtWidgets/QApplication>
#include <QtWidgets/QPushButton>

#include <chrono>
#include <cstdio>
#include <optional>

using namespace std::chrono_literals;

namespace {

// Turns a widget's QEvent::EnabledChange into a signal a coroutine can await
// (QWidget has no enabledChanged signal).
class EnabledWatcher : public QObject {
  Q_OBJECT
 public:
  explicit EnabledWatcher(QWidget* widget) : QObject(widget) { widget->installEventFilter(this); }

 signals:
  void changed(bool enabled);

 protected:
  bool eventFilter(QObject* watched, QEvent* event) override {
    if (event->type() == QEvent::EnabledChange) emit changed(static_cast<QWidget*>(watched)->isEnabled());
    return false;
  }
};

struct Options {
  int clicks = 0;
  bool quit = false;
  QString screenshot;
};

Options parse(const QApplication& app) {
  QCommandLineParser parser;
  parser.setApplicationDescription("qtinter's sleep.py: a coroutine slot that disables its button for a second");
  parser.addHelpOption();
  parser.addOption({"clicks", "Click the button <n> times, one after the other, reporting its state.", "n"});
  parser.addOption({"screenshot", "Save the window to <file> (PNG) once it is shown.", "file"});
  parser.addOption({"quit", "Quit when the clicks and the screenshot are done."});
  parser.process(app);
  return {parser.value("clicks").toInt(), parser.isSet("quit"), parser.value("screenshot")};
}

double seconds_since(QiEventLoop::time_point t0) {
  return std::chrono::duration<double>(qi::get_running_loop().time() - t0).count();
}

// What a user would do with the window, with what they would see printed.
qi::Coro<void> script(QPushButton& button, Options options) {
  if (!options.screenshot.isEmpty()) {
    if (!button.grab().save(options.screenshot, "PNG")) throw qi::RuntimeError("cannot write the screenshot");
    std::printf("screenshot saved\n");
  }
  EnabledWatcher watcher(&button);
  for (int i = 1; i <= options.clicks; ++i) {
    auto t0 = qi::get_running_loop().time();
    button.click();
    // The slot's task ran up to its first co_await inside emit: the button
    // is already disabled when click() returns.
    std::printf("click %d: the button is %s when click() returns\n", i, button.isEnabled() ? "enabled" : "disabled");
    button.click();  // a second click during the sleep: a disabled button ignores it
    std::printf("click %d again during the sleep: %s\n", i, button.isEnabled() ? "accepted" : "ignored");
    std::optional<bool> enabled = co_await qi::asyncsignal(&watcher, &EnabledWatcher::changed, 5s);
    if (!enabled || !*enabled) throw qi::RuntimeError("the button was not enabled again within 5 s");
    std::printf("the button is enabled again after %.1f s\n", seconds_since(t0));
  }
  if (options.quit) QApplication::quit();
}

// A failed script makes the program exit with status 1.
qi::Coro<void> run_script(QPushButton& button, Options options) {
  try {
    co_await script(button, std::move(options));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "sleep_button: %s\n", e.what());
    QCoreApplication::exit(1);
  }
}

}  // namespace

int main(int argc, char** argv) {
  QApplication app(argc, argv);
  Options options = parse(app);

  QPushButton button;
  button.setText("Sleep for one second");
  QObject::connect(&button, &QPushButton::clicked, &button, qi::asyncslot(&button, [&button]() -> qi::Coro<void> {
    button.setEnabled(false);
    co_await qi::sleep(1s);
    button.setEnabled(true);
  }));
  button.show();

  QiRunner runner;  // qtinter.using_asyncio_from_qt(): the loop runs inside app.exec()
  if (options.clicks > 0 || !options.screenshot.isEmpty() || options.quit) qi::create_task(run_script(button, options));
  return app.exec();
}

#include "main.moc"
