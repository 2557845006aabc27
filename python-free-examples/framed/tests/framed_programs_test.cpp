// The framed example's programs, run as child processes (qi::create_subprocess_exec)
// with arguments that make them finish: framed_client against framed_server,
// framed_server against an independent Python asyncio client
// (framed_peer.py), and the server's clean stops. The children inherit the
// test's Qt dispatcher (QT_NO_GLIB), so both run under each.
#include "child_program.h"

#include <qiloop/testing.h>

#include <QtCore/QDir>
#include <QtCore/QFile>
#include <QtCore/QRegularExpression>
#include <QtCore/QTemporaryDir>
#include <QtCore/QtEndian>

#include <csignal>
#include <string>
#include <vector>

using namespace std::chrono_literals;

namespace {

constexpr auto kChildTimeout = 40s;

qi::SubprocessOptions piped() {
  qi::SubprocessOptions o = child_program::piped();
  o.env_extra["QT_QPA_PLATFORM"] = "offscreen";
  return o;
}

using child_program::expect_in_order;
using child_program::Finished;
using child_program::RunningServer;
using child_program::sigint_ignored;
using child_program::sigterm_while_never_read;

// Starts framed_server on a free port and reads the port from its first line.
qi::Coro<RunningServer> start_server(std::vector<std::string> args) {
  return child_program::start_server(FRAMED_SERVER, "framed_server", std::move(args), piped(), kChildTimeout);
}

// The rest of the child's output and its exit status (killed after kChildTimeout).
qi::Coro<Finished> finish(qi::Process p) { return child_program::finish(std::move(p), kChildTimeout); }

qi::Coro<uint16_t> a_closed_port() {
  auto on_client = [](qi::StreamReader, qi::StreamWriter) -> qi::Coro<void> { co_return; };
  qi::Server server = co_await qi::start_server(std::move(on_client), "127.0.0.1", 0);
  const uint16_t port = server.sockets().at(0).port();
  server.close();
  co_await server.wait_closed();
  co_return port;
}

std::vector<std::string> client_args(uint16_t port) {
  return {"--host", "127.0.0.1", "--port", std::to_string(port), "--auto", "--quit"};
}

}  // namespace

// --- framed_client against framed_server --------------------------------------

QILOOP_TEST(FramedPrograms, ClientExchangesHelloWhileTheCircleKeepsMoving) {
  qi::testing::set_timeout(120s);
  // The server takes 400 ms to reply: the client's loop must keep the
  // circle going meanwhile (a 25 ms timer: some 16 frames).
  std::vector<std::string> server_args = {"--once", "--reply-delay", "400"};  // (no braced list in a co_await: g++ 12)
  RunningServer server = co_await start_server(std::move(server_args));
  qi::Process client = co_await qi::create_subprocess_exec(FRAMED_CLIENT, client_args(server.port), piped());
  const Finished c = co_await finish(client);
  EXPECT_EQ(c.code, 0) << c.output;
  expect_in_order(c.output, {"] Connecting...", "] Connected to server. Sending...", "] Client reply: hello",
                             "] Disconnecting...", "] Disconnected.", "] Animation: ", "framed_client: done"});
  const QRegularExpressionMatch m = QRegularExpression(R"(Animation: (\d+) frames during the exchange \((\d+) ms\))")
                                        .match(QString::fromStdString(c.output));
  QILOOP_CO_ASSERT(ASSERT_TRUE(m.hasMatch()) << c.output);
  EXPECT_GE(m.captured(2).toInt(), 400) << "the exchange waited for the reply";
  EXPECT_GE(m.captured(1).toInt(), 4) << "the circle stalled while the client waited: the loop blocked";

  const Finished s = co_await finish(server.process);
  EXPECT_EQ(s.code, 0) << s.output;
  expect_in_order(s.output, {"client 1 connected from 127.0.0.1:", "client 1: frame of 5 bytes",
                             "client 1 left after 1 frame", "served 1 client; bye"});
}

QILOOP_TEST(FramedPrograms, ClientSavesAScreenshotOfItsWindow) {
  qi::testing::set_timeout(120s);
  QTemporaryDir dir;
  const QString file = dir.filePath("framed_client.png");
  std::vector<std::string> server_args = {"--once"};
  RunningServer server = co_await start_server(std::move(server_args));
  std::vector<std::string> args = client_args(server.port);
  args.push_back("--screenshot");
  args.push_back(file.toStdString());
  qi::Process client = co_await qi::create_subprocess_exec(FRAMED_CLIENT, std::move(args), piped());
  const Finished c = co_await finish(client);
  EXPECT_EQ(c.code, 0) << c.output;
  EXPECT_EQ((co_await finish(server.process)).code, 0);

  QFile png(file);
  QILOOP_CO_ASSERT(ASSERT_TRUE(png.open(QIODevice::ReadOnly)) << "no screenshot at " << file.toStdString());
  const QByteArray head = png.read(24);
  QILOOP_CO_ASSERT(ASSERT_EQ(head.size(), 24));
  EXPECT_EQ(head.first(8), QByteArray("\x89PNG\r\n\x1a\n"));
  EXPECT_EQ(head.sliced(12, 4), QByteArray("IHDR"));
  const auto width = qFromBigEndian<quint32>(head.constData() + 16);
  const auto height = qFromBigEndian<quint32>(head.constData() + 20);
  EXPECT_GE(width, 300u) << "circle, button and log side by side";
  EXPECT_GE(height, 150u);
}

QILOOP_TEST(FramedPrograms, ClientLogsAConnectionThatFails) {
  qi::testing::set_timeout(120s);
  const uint16_t port = co_await a_closed_port();
  qi::Process client = co_await qi::create_subprocess_exec(FRAMED_CLIENT, client_args(port), piped());
  const Finished c = co_await finish(client);
  EXPECT_EQ(c.code, 1) << c.output;
  expect_in_order(c.output, {"] Connecting...", "] Connection failed: ", "framed_client: failed"});
}

// --- framed_server against Python's asyncio ------------------------------------

QILOOP_TEST(FramedPrograms, ServerAnswersAPythonAsyncioClient) {
  qi::testing::set_timeout(120s);
  // framed_peer.py makes three connections: frames of every shape echoed,
  // an oversize prefix, a truncated frame.
  std::vector<std::string> server_args = {"--max-clients", "3"};
  RunningServer server = co_await start_server(std::move(server_args));
  std::vector<std::string> peer_args = {FRAMED_PEER_SCRIPT, std::to_string(server.port)};
  qi::Process peer = co_await qi::create_subprocess_exec(FRAMED_PYTHON, std::move(peer_args), piped());
  const Finished p = co_await finish(peer);
  EXPECT_EQ(p.code, 0) << p.output;
  expect_in_order(p.output, {"peer: echo ok", "peer: oversize prefix: closed by the server",
                             "peer: truncated frame: closed by the server", "peer: all ok"});

  const Finished s = co_await finish(server.process);
  EXPECT_EQ(s.code, 0) << s.output;
  expect_in_order(s.output, {"client 1: frame of 5 bytes", "client 1: frame of 19 bytes", "client 1: frame of 0 bytes",
                             "client 1: frame of 786432 bytes", "client 1 left after 7 frames",
                             "client 2: protocol error, connection closed: framed: a frame of 2147483648 bytes is over "
                             "the maximum of 1048576 bytes",
                             "client 3: ended mid-frame, connection closed: 7 bytes read on a total of 14 expected bytes",
                             "served 3 clients; bye"});
}

// --- Stopping the server ---------------------------------------------------------

namespace {

// A client connected and idle while the signal comes: the server closes it,
// then ends with status 0.
qi::Coro<void> stops_cleanly_on(int sig, const char* name) {
  qi::testing::set_timeout(120s);
  RunningServer server = co_await start_server(std::vector<std::string>());
  auto [reader, writer] = co_await qi::open_connection("127.0.0.1", server.port);
  const QByteArray connected = co_await qi::wait_for(server.process.std_out()->readline(), kChildTimeout);
  EXPECT_TRUE(connected.contains("client 1 connected")) << connected.toStdString();
  server.process.send_signal(sig);
  EXPECT_EQ(co_await qi::wait_for(reader.read(), kChildTimeout), QByteArray()) << "the idle client sees EOF";
  const Finished s = co_await finish(server.process);
  EXPECT_EQ(s.code, 0) << s.output;
  expect_in_order(s.output, {std::string("stopping on ") + name, "client 1 left after 0 frames",
                             "served 1 client; bye"});
  writer.close();
}

}  // namespace

QILOOP_TEST(FramedPrograms, ServerStopsCleanlyOnSigterm) { co_await stops_cleanly_on(SIGTERM, "SIGTERM"); }

QILOOP_TEST(FramedPrograms, ServerStopsCleanlyOnSigint) {
  // Ignored here, it is ignored in the child too, where qi::run then leaves
  // it alone (as Python does): a shell's background job.
  if (sigint_ignored())
    QILOOP_CO_ASSERT(GTEST_SKIP() << "SIGINT is ignored in this process (a background job?): so is it in the server");
  co_await stops_cleanly_on(SIGINT, "SIGINT");
}

QILOOP_TEST(FramedPrograms, SigtermStopsTheServerWhileAClientNeverReadsItsEchoes) {
  // The client sends megabytes and reads nothing: the server's echo waits in
  // drain() and its write buffer stays full. A stop must not wait for that
  // client for ever.
  qi::testing::set_timeout(120s);
  RunningServer server = co_await start_server(std::vector<std::string>());
  auto [reader, writer] = co_await qi::open_connection("127.0.0.1", server.port);
  QByteArray frame(4, Qt::Uninitialized);
  qToLittleEndian<quint32>(60000, frame.data());
  frame += QByteArray(60000, 'x');
  std::vector<std::string> stop_lines = {"stopping on SIGTERM",
                                         "aborting the connections whose clients do not take their data",
                                         "served 1 client; bye"};
  co_await sigterm_while_never_read(server, writer, frame, "frame of 60000 bytes", std::move(stop_lines),
                                    kChildTimeout);
}

QILOOP_TEST(FramedPrograms, ServerDropsAClientThatTricklesOrNeverReadsAfterItsTimeout) {
  // --timeout 500: a client that sent half a frame and stopped (a
  // slowloris), and one that never reads its echoes, are both dropped.
  qi::testing::set_timeout(120s);
  std::vector<std::string> server_args = {"--timeout", "500", "--max-clients", "2"};
  RunningServer server = co_await start_server(std::move(server_args));
  auto& loop = qi::get_running_loop();
  const auto t0 = loop.time();
  auto [slow_reader, slow_writer] = co_await qi::open_connection("127.0.0.1", server.port);
  QByteArray half(4, Qt::Uninitialized);
  qToLittleEndian<quint32>(10, half.data());
  slow_writer.write(half + "abc");  // 3 bytes of a 10-byte frame, then nothing
  QByteArray got;
  bool reset = false;
  try {
    got = co_await qi::wait_for(slow_reader.read(), kChildTimeout);
  } catch (const qi::ConnectionResetError&) {
    reset = true;
  }
  EXPECT_TRUE(reset || got.isEmpty()) << "dropped: EOF or a reset, not " << got.toStdString();
  EXPECT_LT(loop.time() - t0, 10s);

  auto [deaf_reader, deaf_writer] = co_await qi::open_connection("127.0.0.1", server.port);
  QByteArray frame(4, Qt::Uninitialized);
  qToLittleEndian<quint32>(60000, frame.data());
  frame += QByteArray(60000, 'x');
  for (int i = 0; i < 400; ++i) deaf_writer.write(frame);  // 24 MB of echoes it will not read
  const Finished s = co_await finish(server.process);  // --max-clients 2: ends once both are gone
  EXPECT_EQ(s.code, 0) << s.output;
  expect_in_order(s.output, {"client 1: nothing received or taken for 500 ms, connection aborted",
                             "client 2: nothing received or taken for 500 ms, connection aborted",
                             "served 2 clients; bye"});
  slow_writer.close();
  deaf_writer.transport().abort();
}

QILOOP_TEST(FramedPrograms, ServerRefusesABadPort) {
  std::vector<std::string> args = {"--port", "70000"};
  qi::Process p = co_await qi::create_subprocess_exec(FRAMED_SERVER, std::move(args), piped());
  const Finished s = co_await finish(p);
  EXPECT_EQ(s.code, 2);
  EXPECT_NE(s.output.find("--port wants a number from 0 to 65535, not '70000'"), std::string::npos) << s.output;
}
