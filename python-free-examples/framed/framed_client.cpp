// framed_client — the original 001 (a PyQt window whose socket client ran on
// Twisted through a Qt reactor) in C++ on qiloop: a button connects, sends
// "hello" as a length-prefixed frame, logs the reply and disconnects, while a
// circle animated by a QTimer shows the window never blocks. The exchange is
// one coroutine slot (qi::asyncslot) written top to bottom; the application
// runs its own app.exec() with the loop attached (QiRunner): no reactor to
// install first, no callbacks split across a factory and a protocol.
//
//   framed_client [--host 127.0.0.1] [--port 50007]
//                 [--auto] [--quit] [--screenshot FILE]
//
// --auto presses the button once the window is up; --quit then prints a
// summary (the log is printed as it is written, always) and exits: status 0
// when the reply came, 1 when the exchange failed. --screenshot FILE saves
// the window (QWidget::grab) as a PNG when the exchange is done (with
// --auto), or half a second after start. Tests run it with
// QT_QPA_PLATFORM=offscreen.
#include "framed.h"

#include <qiloop/qiloop.h>

#include <QtCore/QCommandLineParser>
#include <QtCore/QElapsedTimer>
#include <QtCore/QTimer>
#include <QtGui/QPainter>
#include <QtWidgets/QApplication>
#include <QtWidgets/QHBoxLayout>
#include <QtWidgets/QMainWindow>
#include <QtWidgets/QPlainTextEdit>
#include <QtWidgets/QPushButton>

#include <cmath>
#include <cstdio>
#include <functional>
#include <numbers>
#include <string>

namespace {

struct Options {
  QString host = "127.0.0.1";
  uint16_t port = 50007;
  bool auto_mode = false;
  bool quit = false;
  QString screenshot;
};

// A circle running round an orbit, one step per tick of its timer: if the
// loop ever blocked, the circle would stop (and frames() would stall).
class CircleWidget : public QWidget {
 public:
  explicit CircleWidget(QWidget* parent = nullptr) : QWidget(parent) {
    QObject::connect(&timer_, &QTimer::timeout, this, [this] { next(); });
    timer_.start(25);  // the original's 40 frames a second
  }

  long frames() const noexcept { return frames_; }
  QSize sizeHint() const override { return {160, 160}; }

 protected:
  void paintEvent(QPaintEvent*) override {
    QPainter painter(this);
    painter.setRenderHint(QPainter::Antialiasing);
    const QPointF centre = rect().center();
    const double orbit = std::min(width(), height()) / 2.0 - 16;
    const double angle = frames_ * 2 * std::numbers::pi / 120;  // a turn in three seconds
    painter.setPen(QPen(palette().mid(), 1));
    painter.drawEllipse(centre, orbit, orbit);
    painter.setPen(Qt::NoPen);
    painter.setBrush(QColor(0x2a, 0x7a, 0xd4));
    painter.drawEllipse(centre + QPointF(orbit * std::cos(angle), orbit * std::sin(angle)), 12, 12);
  }

 private:
  void next() {
    ++frames_;
    update();
  }

  QTimer timer_;
  long frames_ = 0;
};

class ClientWindow : public QMainWindow {
 public:
  explicit ClientWindow(Options options) : options_(std::move(options)) {
    setWindowTitle("framed_client");
    auto* frame = new QWidget(this);
    auto* box = new QHBoxLayout(frame);
    circle_ = new CircleWidget(frame);
    circle_->setMinimumSize(circle_->sizeHint());
    button_ = new QPushButton("Do it!", frame);
    log_ = new QPlainTextEdit(frame);
    log_->setReadOnly(true);
    log_->setMinimumWidth(420);
    box->addWidget(circle_);
    box->addWidget(button_);
    box->addWidget(log_);
    setCentralWidget(frame);
    clock_.start();
    // Each click runs do_it() as a task bound to the window: closing the
    // window mid-exchange cancels it at its co_await.
    QObject::connect(button_, &QPushButton::clicked, this, qi::asyncslot(this, &ClientWindow::do_it));
  }

  QPushButton* button() const noexcept { return button_; }
  CircleWidget* circle() const noexcept { return circle_; }

  // What to do when an exchange ends (true: the reply came).
  std::function<void(bool)> on_done;

 private:
  // The original's on_doit, on_client_connect_success /
  // on_client_connect_fail and on_client_receive, as one coroutine.
  qi::Coro<void> do_it() {
    button_->setEnabled(false);
    const long frames_before = circle_->frames();
    const qint64 started = clock_.elapsed();
    bool ok = false;
    try {
      log("Connecting...");
      framed::Connection conn = co_await framed::Connection::open(options_.host.toStdString(), options_.port);
      log("Connected to server. Sending...");
      co_await conn.send("hello");
      std::optional<QByteArray> reply = co_await conn.receive();
      if (reply) {
        log("Client reply: " + QString::fromUtf8(*reply));
        ok = true;
      } else {
        log("The server closed the connection without replying.");
      }
      log("Disconnecting...");
      conn.close();
      co_await conn.wait_closed();
      log("Disconnected.");
    } catch (const std::exception& e) {  // refused, unresolvable, reset, a protocol error
      log(QString("Connection failed: %1").arg(e.what()));
    }
    const long frames = circle_->frames() - frames_before;
    log(QString("Animation: %1 frames during the exchange (%2 ms)").arg(frames).arg(clock_.elapsed() - started));
    button_->setEnabled(true);
    if (on_done) on_done(ok);
  }

  void log(const QString& message) {
    const QString line = QString("[%1] %2").arg(clock_.elapsed() / 1000.0, 10, 'f', 3, QChar('0')).arg(message);
    log_->appendPlainText(line);
    std::printf("%s\n", qPrintable(line));
    std::fflush(stdout);
  }

  Options options_;
  CircleWidget* circle_;
  QPushButton* button_;
  QPlainTextEdit* log_;
  QElapsedTimer clock_;
};

Options parse(const QApplication& app) {
  QCommandLineParser parser;
  parser.setApplicationDescription("Sends \"hello\" to a framed_server, logs the reply (qiloop's framed example).");
  parser.addHelpOption();
  const QCommandLineOption host("host", "Server address.", "host", "127.0.0.1");
  const QCommandLineOption port("port", "Server port.", "port", "50007");
  const QCommandLineOption auto_mode("auto", "Press the button once the window is up.");
  const QCommandLineOption quit("quit", "With --auto: exit when the exchange is done (0: a reply came).");
  const QCommandLineOption screenshot("screenshot", "Save the window as a PNG.", "file");
  parser.addOptions({host, port, auto_mode, quit, screenshot});
  parser.process(app);

  Options o;
  o.host = parser.value(host);
  bool ok = false;
  const uint port_number = parser.value(port).toUInt(&ok);
  if (!ok || port_number == 0 || port_number > 65535) {
    std::fprintf(stderr, "framed_client: --port wants a number from 1 to 65535, not '%s'\n",
                 qPrintable(parser.value(port)));
    std::exit(2);
  }
  o.port = static_cast<uint16_t>(port_number);
  o.auto_mode = parser.isSet(auto_mode);
  o.quit = parser.isSet(quit);
  o.screenshot = parser.value(screenshot);
  if (o.quit && !o.auto_mode) {
    std::fprintf(stderr, "framed_client: --quit needs --auto (it quits once the automatic exchange is done)\n");
    std::exit(2);
  }
  return o;
}

bool save_screenshot(QWidget& window, const QString& file) {
  if (window.grab().save(file, "PNG")) return true;
  std::fprintf(stderr, "framed_client: cannot write the screenshot to '%s'\n", qPrintable(file));
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  QApplication app(argc, argv);
  const Options options = parse(app);
  QiRunner runner;  // the loop, attached to app.exec(); declared first, so it goes last
  ClientWindow window(options);
  window.show();

  bool screenshot_ok = true;
  if (options.auto_mode) {
    window.on_done = [&](bool ok) {
      if (!options.screenshot.isEmpty()) screenshot_ok = save_screenshot(window, options.screenshot);
      if (!options.quit) return;
      std::printf("framed_client: %s; animation frames in all: %ld\n", ok ? "done" : "failed",
                  window.circle()->frames());
      std::fflush(stdout);
      app.exit(ok && screenshot_ok ? 0 : 1);
    };
    QTimer::singleShot(0, window.button(), &QPushButton::click);
  } else if (!options.screenshot.isEmpty()) {
    QTimer::singleShot(500, &window, [&] { screenshot_ok = save_screenshot(window, options.screenshot); });
  }
  const int status = app.exec();
  return status != 0 ? status : screenshot_ok ? 0 : 1;
}
