// color_dialog — qtinter's second quickstart program in C++: a coroutine
// shows a QColorDialog, awaits its finished signal and prints the colour
// chosen. The Python original (qtinter's examples/color.py):
//
//   async def choose_color():
//       dialog = QtWidgets.QColorDialog()
//       dialog.show()
//       result = await qtinter.asyncsignal(dialog.finished)
//       if result == QtWidgets.QDialog.DialogCode.Accepted:
//           return dialog.selectedColor().name()
//       else:
//           return None
//
//   app = QtWidgets.QApplication([])
//   with qtinter.using_qt_from_asyncio():
//       color = asyncio.run(choose_color())
//       if color is not None:
//           print(color)
//
// Beyond the original, the dialog's title counts the seconds it has been
// open — a task bound to the dialog, so the loop visibly runs while it waits
// — and --modal runs the dialog with exec() through qi::modal instead.
//
// Usage: color_dialog                                  the program as above
//        color_dialog --accept '#ff8000' [--after 300]  answers the dialog itself after 300 ms
//        color_dialog --reject                         likewise, cancelling it (nothing printed)
//        color_dialog --modal ...                      dialog.exec() under qi::modal
//        color_dialog --screenshot d.png ...           saves the dialog as a PNG just before answering
#include <qiloop/qiloop.h>

#include <QtCore/QCommandLineParser>
#include <QtWidgets/QApplication>
#include <QtWidgets/QColorDialog>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>

using namespace std::chrono_literals;

namespace {

struct Options {
  enum class Answer { kNone, kAccept, kReject } answer = Answer::kNone;
  QColor color;
  std::chrono::milliseconds after{300};
  bool modal = false;
  QString screenshot;
};

Options parse(const QApplication& app) {
  QCommandLineParser parser;
  parser.setApplicationDescription("qtinter's color.py: a coroutine awaits a QColorDialog and prints the colour");
  parser.addHelpOption();
  parser.addOption({"accept", "Choose <color> and accept the dialog (after --after ms).", "color"});
  parser.addOption({"reject", "Cancel the dialog (after --after ms)."});
  parser.addOption({"after", "When to answer or take the screenshot, in milliseconds (default 300).", "ms", "300"});
  parser.addOption({"modal", "Run the dialog with exec() (qi::modal) instead of show() + its finished signal."});
  parser.addOption({"screenshot", "Save the dialog to <file> (PNG) just before answering.", "file"});
  parser.process(app);
  Options o;
  if (parser.isSet("accept")) {
    o.answer = Options::Answer::kAccept;
    o.color = QColor(parser.value("accept"));
    if (!o.color.isValid()) {
      std::fprintf(stderr, "color_dialog: --accept %s: not a colour\n", qPrintable(parser.value("accept")));
      std::exit(2);
    }
  } else if (parser.isSet("reject")) {
    o.answer = Options::Answer::kReject;
  }
  o.after = std::chrono::milliseconds(parser.value("after").toInt());
  o.modal = parser.isSet("modal");
  o.screenshot = parser.value("screenshot");
  return o;
}

bool scripted(const Options& o) { return o.answer != Options::Answer::kNone || !o.screenshot.isEmpty(); }

// Keeps the title saying how long the dialog has been open. Bound to the
// dialog, it ends (cancelled) when the dialog is destroyed.
qi::Coro<void> show_open_time(QColorDialog& dialog, int& updates) {
  for (int tenths = 1;; ++tenths) {
    co_await qi::sleep(100ms);
    dialog.setWindowTitle(QString("Select Color — open for %1 s").arg(tenths / 10.0, 0, 'f', 1));
    ++updates;
  }
}

// What a user would do: look at the dialog for a while, then answer it.
qi::Coro<void> answer(QColorDialog& dialog, Options options) {
  co_await qi::sleep(options.after);
  if (!options.screenshot.isEmpty()) {
    if (!dialog.grab().save(options.screenshot, "PNG")) throw qi::RuntimeError("cannot write the screenshot");
    std::printf("screenshot saved\n");
  }
  if (options.answer == Options::Answer::kAccept) {
    std::printf("accepting %s\n", qPrintable(options.color.name()));
    dialog.setCurrentColor(options.color);
    dialog.accept();
  } else if (options.answer == Options::Answer::kReject) {
    std::printf("rejecting\n");
    dialog.reject();
  }
}

qi::Coro<std::optional<QString>> choose_color(Options options) {
  int title_updates = 0;
  QColorDialog dialog;
  qi::create_task(show_open_time(dialog, title_updates), &dialog);
  if (scripted(options)) qi::create_task(answer(dialog, options), &dialog);

  int result = 0;
  if (options.modal) {
    // exec() runs a nested Qt event loop; qi::modal starts it from Qt's
    // loop, outside any qiloop step, so the tasks above keep running in it.
    auto exec = [&dialog] { return dialog.exec(); };
    result = co_await qi::modal(std::move(exec));
  } else {
    dialog.show();
    result = co_await qi::asyncsignal(&dialog, &QDialog::finished);  // qtinter.asyncsignal(dialog.finished)
  }
  if (scripted(options))
    std::printf("the dialog's title changed %d times while it was open (%s)\n", title_updates,
                options.modal ? "qi::modal" : "qi::asyncsignal");
  if (result == QDialog::Accepted) co_return dialog.selectedColor().name();
  co_return std::nullopt;
}

}  // namespace

int main(int argc, char** argv) {
  QApplication app(argc, argv);
  Options options = parse(app);
  // qtinter.using_qt_from_asyncio() + asyncio.run(): a loop in nested mode.
  std::optional<QString> color = qi::run(choose_color(options));
  if (color) std::printf("%s\n", qPrintable(*color));
  return 0;
}
