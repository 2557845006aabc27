// web_app_in_process — the 2011 "Greenlet based PyQt and Flask application"
// in C++: a web app served from inside a Qt program, on the Qt thread, with
// nothing to pump. The Python original ran Flask under gevent's WSGI server
// in one greenlet and pumped Qt by hand in another, so that both "main
// loops" could share the thread:
//
//   class PyQtGreenlet(gevent.Greenlet):
//       def _run(self):
//           while True:
//               self.app.processEvents()
//               while self.app.hasPendingEvents():
//                   self.app.processEvents()
//                   gevent.sleep(0.01)
//
//   @fapp.route("/bye", methods=['GET'])
//   def goodbye():
//       f.kill(block=False)                     # the web server's greenlet
//       window.closeEvent(QtCore.SIGNAL("clicked()"))
//       return 'goodbye'
//
// Here the HTTP server is qiloop's streams (qi::start_server) with httpkit
// (../http) on the loop that Qt's own event loop drives: app.exec() with a
// QiRunner (attached mode, the default), or qi::run (nested mode,
// --nested). The page shows a counter that a qiloop task advances and the
// page's script polls; the window shows the same state. GET /bye answers
// "goodbye", then the program stops listening, closes the connections
// still open (a browser's keep-alive ones), waits for their tasks, stops
// the counter and exits with status 0. Closing the window, the Quit button,
// SIGINT and SIGTERM stop it the same way.
//
// Usage: web_app_in_process [--host 127.0.0.1] [--port 5000] [--tick MS] [--nested] [--log]
//        web_app_in_process --port 0           a free port: read it on the first line printed
//        web_app_in_process --demo [--screenshot FILE]
//                                              fetches its own pages as a client would, then /bye
#include "example_options.h"
#include "example_server.h"
#include "http.h"

#include <qiloop/qiloop.h>

#include <QtCore/QCommandLineParser>
#include <QtCore/QUrl>
#include <QtGui/QDesktopServices>
#include <QtGui/QCloseEvent>
#include <QtWidgets/QApplication>
#include <QtWidgets/QHBoxLayout>
#include <QtWidgets/QLabel>
#include <QtWidgets/QPlainTextEdit>
#include <QtWidgets/QPushButton>
#include <QtWidgets/QVBoxLayout>
#include <QtWidgets/QWidget>

#include <csignal>
#include <cstdio>
#include <functional>
#include <optional>
#include <string>

using namespace std::chrono_literals;

namespace {

struct Options {
  std::string host = "127.0.0.1";
  uint16_t port = 5000;  // the original's
  std::chrono::milliseconds tick{250};
  bool nested = false;
  bool demo = false;
  bool log = false;
  QString screenshot;
};

void say(const std::string& line) {
  std::printf("web_app_in_process: %s\n", line.c_str());
  std::fflush(stdout);
}

// --- What the server, the counter and the window share -------------------------

// main() owns it; it outlives the loop's tasks (they all end before the
// main coroutine returns).
struct App {
  Options options;
  http::Router router;
  http::Limits limits;
  qi::Server server;  // forgotten before the loop goes (see serve())
  std::string url;
  long long counter = 0;
  long long requests = 0;
  int open_connections = 0;
  qi::Event stop;             // set once, by request_stop
  std::string stop_reason;
  qi::Event connections_gone;  // set while open_connections is 0
  std::function<void()> refresh;     // the window's
  std::function<void(const std::string&)> note;  // the window's request log

  void request_stop(std::string reason) {
    if (stop.is_set()) return;
    stop_reason = std::move(reason);
    stop.set();
  }
};

// The window: what the original's QWebView was, minus a browser engine (Qt
// WebEngine is not used): the server's state, live, and a way to open the
// page in a real browser.
class StatusWindow : public QWidget {
 public:
  explicit StatusWindow(App& app) : app_(app) {
    setWindowTitle("qiloop web app in process");
    auto* layout = new QVBoxLayout(this);
    state_ = new QLabel(this);
    state_->setTextFormat(Qt::RichText);
    state_->setTextInteractionFlags(Qt::TextBrowserInteraction);
    log_ = new QPlainTextEdit(this);
    log_->setReadOnly(true);
    log_->setMaximumBlockCount(200);
    auto* buttons = new QHBoxLayout;
    auto* open = new QPushButton("Open in browser", this);
    auto* quit = new QPushButton("Quit (as /bye)", this);
    buttons->addWidget(open);
    buttons->addWidget(quit);
    layout->addWidget(state_);
    layout->addWidget(log_);
    layout->addLayout(buttons);
    connect(open, &QPushButton::clicked, this,
            [this] { QDesktopServices::openUrl(QUrl(QString::fromStdString(app_.url))); });
    connect(quit, &QPushButton::clicked, this, [this] { app_.request_stop("the Quit button"); });
    resize(460, 320);
    app_.refresh = [this] { refresh(); };
    app_.note = [this](const std::string& line) { log_->appendPlainText(QString::fromStdString(line)); };
    refresh();
  }
  ~StatusWindow() override {
    app_.refresh = nullptr;
    app_.note = nullptr;
  }

  void refresh() {
    const QString url = QString::fromStdString(app_.url).toHtmlEscaped();
    state_->setText(QString("<p><b>Serving</b> <a href=\"%1\">%1</a> from this program's Qt thread</p>"
                            "<p>count=<b>%2</b> &nbsp; requests served: %3 &nbsp; connections open: %4</p>%5")
                        .arg(url.isEmpty() ? QString("(starting)") : url)
                        .arg(app_.counter)
                        .arg(app_.requests)
                        .arg(app_.open_connections)
                        .arg(app_.stop.is_set() ? "<p>stopping: " + QString::fromStdString(app_.stop_reason).toHtmlEscaped() + "</p>"
                                                : QString()));
  }

 protected:
  void closeEvent(QCloseEvent* event) override {
    app_.request_stop("the window closed");
    event->accept();
  }

 private:
  App& app_;
  QLabel* state_;
  QPlainTextEdit* log_;
};

// --- The web app ------------------------------------------------------------------

std::string page(const App& app) {
  return R"(<!doctype html>
<html><head><meta charset="utf-8"><title>qiloop web app in process</title>
<style>body{font-family:sans-serif;margin:2em} #count{font-size:2.5em;font-weight:bold}</style></head>
<body>
<h1>A web app served in process</h1>
<p>This page comes from qiloop's streams on the Qt thread of the program whose window shows the same counter.</p>
<p>count=<span id="count">)" + std::to_string(app.counter) + R"(</span></p>
<p>requests served: <span id="requests">)" + std::to_string(app.requests) + R"(</span>
 &middot; <span id="status">live</span></p>
<p><a id="bye" href="/bye">quit()</a><br><a id="reload" href="/">reload</a></p>
<script>
// The counter advances on the server (a qiloop task); ask for it 5 times a second.
async function poll() {
  try {
    const reply = await fetch('/count', {cache: 'no-store'});
    const state = await reply.json();
    document.getElementById('count').textContent = state.count;
    document.getElementById('requests').textContent = state.requests;
  } catch (e) {
    document.getElementById('status').textContent = 'the server is gone';
    return;
  }
  setTimeout(poll, 200);
}
poll();
</script>
</body></html>
)";
}

void add_routes(App& app) {
  app.router.get("/", [&app](const http::Request&, const http::Target&) -> qi::Coro<http::Response> {
    http::Response r = http::Response::html(page(app));
    r.set("Cache-Control", "no-store");
    co_return r;
  });
  app.router.get("/count", [&app](const http::Request&, const http::Target&) -> qi::Coro<http::Response> {
    http::Response r = http::Response::json("{\"count\":" + std::to_string(app.counter) +
                                            ",\"requests\":" + std::to_string(app.requests) + "}");
    r.set("Cache-Control", "no-store");
    co_return r;
  });
  app.router.get("/bye", [&app](const http::Request&, const http::Target&) -> qi::Coro<http::Response> {
    http::Response r = http::Response::html(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>goodbye</title></head>"
        "<body><p id=\"bye\">goodbye</p></body></html>\n");
    r.close = true;
    // Only once the client has its answer: stopping closes every connection.
    r.on_sent = [&app] { app.request_stop("/bye"); };
    co_return r;
  });
}

// Every request goes through the router; the window hears of each.
qi::Coro<http::Response> answer(App& app, const http::Request& request) {
  http::Response response = co_await app.router.dispatch(request);
  ++app.requests;
  const std::string line = request.method + " " + request.target + " -> " + std::to_string(response.status);
  if (app.options.log) say(line);
  if (app.note) app.note(line);
  if (app.refresh) app.refresh();
  co_return response;
}

qi::Coro<void> serve_client(App& app, qi::StreamReader reader, qi::StreamWriter writer) {
  ++app.open_connections;
  app.connections_gone.clear();
  struct Leave {
    App& app;
    ~Leave() {
      if (--app.open_connections == 0) app.connections_gone.set();
      if (app.refresh) app.refresh();
    }
  } leave{app};
  http::Handler handler = [&app](const http::Request& request) { return answer(app, request); };
  co_await http::serve_connection(std::move(reader), std::move(writer), std::move(handler), app.limits);
}

// The live counter: one more every tick, until cancelled.
qi::Coro<void> count(App& app) {
  for (;;) {
    co_await qi::sleep(app.options.tick);
    ++app.counter;
    if (app.refresh) app.refresh();
  }
}

// --- --demo: the program as its own client -----------------------------------------

struct Fetched {
  int status = 0;
  std::string body;
};

// One request on a connection of its own (Connection: close), read to EOF.
qi::Coro<Fetched> fetch(const App& app, std::string target) {
  const qi::SocketAddress where = app.server.sockets().at(0);
  auto [reader, writer] = co_await qi::open_connection(where.host(), where.port());
  const std::string request = "GET " + target + " HTTP/1.1\r\nHost: " + where.to_string() + "\r\nConnection: close\r\n\r\n";
  writer.write(QByteArrayView(request.data(), static_cast<qsizetype>(request.size())));
  co_await writer.drain();
  const QByteArray reply = co_await reader.read();
  writer.close();
  co_await writer.wait_closed();
  const std::string text = reply.toStdString();
  Fetched f;
  if (text.starts_with("HTTP/1.1 ") && text.size() >= 12) f.status = std::stoi(text.substr(9, 3));
  const std::size_t body = text.find("\r\n\r\n");
  if (body != std::string::npos) f.body = text.substr(body + 4);
  co_return f;
}

std::string count_in(const std::string& json) {
  const std::size_t at = json.find("\"count\":");
  return at == std::string::npos ? "?" : json.substr(at + 8, json.find(',', at) - at - 8);
}

qi::Coro<bool> demo(App& app, QWidget& window) {
  const auto yes = [](bool b) { return b ? "yes" : "no"; };
  Fetched home = co_await fetch(app, "/");
  std::printf("demo: GET / -> %d, the page shows the counter and the quit() link: %s\n", home.status,
              yes(home.body.find("id=\"count\"") != std::string::npos && home.body.find("href=\"/bye\"") != std::string::npos));
  Fetched first = co_await fetch(app, "/count");
  co_await qi::sleep(app.options.tick * 3);
  Fetched second = co_await fetch(app, "/count");
  const std::string a = count_in(first.body);
  const std::string b = count_in(second.body);
  const bool advanced = a != "?" && b != "?" && std::stoll(b) > std::stoll(a);
  std::printf("demo: GET /count -> %d, then %d, the counter advanced (%s -> %s): %s\n", first.status, second.status,
              a.c_str(), b.c_str(), yes(advanced));
  Fetched missing = co_await fetch(app, "/nope");
  std::printf("demo: GET /nope -> %d\n", missing.status);
  Fetched traversal = co_await fetch(app, "/%2e%2e/etc/passwd");
  std::printf("demo: GET /%%2e%%2e/etc/passwd -> %d\n", traversal.status);
  bool screenshot_ok = true;
  if (!app.options.screenshot.isEmpty()) {
    screenshot_ok = window.grab().save(app.options.screenshot, "PNG");
    std::printf("demo: screenshot %s\n", screenshot_ok ? "saved" : "NOT saved");
  }
  std::fflush(stdout);
  Fetched bye = co_await fetch(app, "/bye");
  std::printf("demo: GET /bye -> %d, it says goodbye: %s\n", bye.status, yes(bye.body.find("goodbye") != std::string::npos));
  std::fflush(stdout);
  co_return home.status == 200 && advanced && missing.status == 404 && traversal.status == 400 && bye.status == 200 &&
      screenshot_ok;
}

// --- The main coroutine -------------------------------------------------------------

// Serves until a stop is asked for, then stops cleanly. Returns the exit
// status.
qi::Coro<int> serve(App& app, QWidget& window) {
  auto& loop = qi::get_running_loop();
  loop.add_signal_handler(SIGINT, [&app] { app.request_stop("SIGINT"); });
  loop.add_signal_handler(SIGTERM, [&app] { app.request_stop("SIGTERM"); });
  example::ForgetServer forget{app.server};

  auto on_client = [&app](qi::StreamReader r, qi::StreamWriter w) { return serve_client(app, std::move(r), std::move(w)); };
  qi::ServerOptions server_options;
  server_options.start_serving = false;  // app.server is set before the first client comes
  // The stream's limit bounds a line before httpkit can judge it (http_stream.h).
  app.server = co_await qi::start_server(std::move(on_client), app.options.host, app.options.port, server_options,
                                         app.limits.max_header_bytes + 2);
  co_await app.server.start_serving();
  const qi::SocketAddress where = app.server.sockets().at(0);
  app.url = "http://" + where.to_string() + "/";
  say("serving " + app.url + (app.options.nested ? " (nested mode)" : " (attached mode)"));
  window.show();
  app.refresh();

  qi::Task<void> counter = qi::create_task(count(app));
  std::optional<qi::Task<bool>> demo_task;
  if (app.options.demo) demo_task = qi::create_task(demo(app, window));

  co_await app.stop.wait();
  bool demo_ok = true;
  if (demo_task) demo_ok = co_await *demo_task;  // its last request is /bye: it ends with its answer
  say("stopping on " + app.stop_reason);
  app.refresh();
  co_await example::stop_server(app.server, say);
  co_await app.connections_gone.wait();  // their tasks too, not only their sockets
  counter.cancel();
  try {
    co_await counter;
  } catch (const qi::CancelledError&) {
  }
  say("served " + std::to_string(app.requests) + " requests, bye");
  window.close();
  co_return demo_ok ? 0 : 1;
}

Options parse(const QApplication& qapp) {
  QCommandLineParser parser;
  parser.setApplicationDescription("A web app served from the Qt thread by qiloop (the Greenlet/Flask/PyQt port).");
  parser.addHelpOption();
  const QCommandLineOption host("host", "Address to listen on.", "host", "127.0.0.1");
  const QCommandLineOption port("port", "Port to listen on (0: a free one, printed).", "port", "5000");
  const QCommandLineOption tick("tick", "The counter advances every this many milliseconds.", "ms", "250");
  const QCommandLineOption nested("nested", "Run the loop with qi::run (nested mode) instead of app.exec() (attached).");
  const QCommandLineOption demo_option("demo", "Fetch the pages as a client would, then /bye (exits when done).");
  const QCommandLineOption log("log", "Print every request.");
  const QCommandLineOption screenshot("screenshot", "With --demo: save the window to <file> (PNG).", "file");
  parser.addOptions({host, port, tick, nested, demo_option, log, screenshot});
  parser.process(qapp);
  auto number = [&parser](const QCommandLineOption& o, qulonglong min, qulonglong max) {
    return example::number_option(parser, o, min, max, "web_app_in_process");
  };
  Options o;
  o.host = parser.value(host).toStdString();
  o.port = static_cast<uint16_t>(number(port, 0, 65535));
  o.tick = std::chrono::milliseconds(number(tick, 1, 3'600'000));
  o.nested = parser.isSet(nested);
  o.demo = parser.isSet(demo_option);
  o.log = parser.isSet(log);
  o.screenshot = parser.value(screenshot);
  if (!o.screenshot.isEmpty() && !o.demo) {
    std::fprintf(stderr, "web_app_in_process: --screenshot needs --demo (it is taken during the demo)\n");
    std::exit(2);
  }
  return o;
}

// Runs serve() and reports a failure to start (a port in use, a host that
// does not resolve) as a message and status 1.
qi::Coro<int> run_app(App& app, QWidget& window) {
  try {
    co_return co_await serve(app, window);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "web_app_in_process: %s\n", e.what());
  }
  co_return 1;
}

}  // namespace

int main(int argc, char** argv) {
  QApplication qapp(argc, argv);
  qapp.setQuitOnLastWindowClosed(false);  // the window's closing asks for a clean stop instead
  App app;
  app.options = parse(qapp);
  app.connections_gone.set();
  add_routes(app);
  StatusWindow window(app);

  if (app.options.nested) return qi::run(run_app(app, window));  // the loop drives Qt while it runs

  QiRunner runner;  // attached: app.exec() drives the loop
  int status = 1;
  auto main_task = [&]() -> qi::Coro<void> {
    status = co_await run_app(app, window);
    QCoreApplication::exit(status);
  };
  qi::Task<void> task = qi::create_task(main_task());
  qapp.exec();
  return status;
}
