// child_program.h — running an example program as a child process in a
// test (qi::create_subprocess_exec), shared by the examples' program tests
// (framed_programs_test, websocket_echo_programs_test).
//
//   std::vector<std::string> args = {"--once"};  // (no braced list in a co_await: g++ 12)
//   child_program::RunningServer server =
//       co_await child_program::start_server(FRAMED_SERVER, "framed_server", args, child_program::piped(), 40s);
//   ... talk to 127.0.0.1:server.port ...
//   const child_program::Finished s = co_await child_program::finish(server.process, 40s);
//   EXPECT_EQ(s.code, 0) << s.output;
//   child_program::expect_in_order(s.output, {"served 1 client", "bye"});
//
// The contract:
// - piped(): the child's stdout is a pipe the test reads, its stderr goes
//   to the same pipe (Qt's warnings too, in order, for failure messages).
// - start_server() runs `program` with "--port 0" before `args` and reads
//   its first line, which must be "<name>: listening on 127.0.0.1:<port>"
//   within `timeout`; else qi::RuntimeError (or qi::TimeoutError).
// - finish() reads the rest of the child's output and its exit status. A
//   child not done within `timeout` is killed and reaped, then
//   qi::RuntimeError: every test is bounded.
// - Each of the expect_in_order() lines must appear in output, in that
//   order; the first one missing is a test failure showing the output.
// - sigint_ignored(): SIGINT is ignored in this process, hence in its
//   children (a shell's background job): a SIGINT test must skip.
// - sigterm_while_never_read() is the test that a server stops on SIGTERM
//   even with a client that never reads: it writes `message` 400 times
//   (far more than the socket buffers hold) on `writer` and reads nothing,
//   waits until the server has printed `echoed` on 20 lines, then sends
//   SIGTERM. The server must exit with status 0 within 20 s, printing
//   `stop_lines` in that order; each failure is a test failure.
#pragma once

#include <qiloop/testing.h>

#include <QtCore/QRegularExpression>

#include <chrono>
#include <csignal>
#include <string>
#include <vector>

namespace child_program {

inline qi::SubprocessOptions piped() {
  qi::SubprocessOptions o;
  o.std_out = qi::PIPE;
  o.std_err = qi::STDOUT;
  return o;
}

struct RunningServer {
  qi::Process process;
  uint16_t port = 0;
};

// (Parameters by value: a coroutine outlives its caller's temporaries.)
inline qi::Coro<RunningServer> start_server(std::string program, std::string name, std::vector<std::string> args,
                                            qi::SubprocessOptions options, std::chrono::milliseconds timeout) {
  args.insert(args.begin(), "0");
  args.insert(args.begin(), "--port");
  qi::Process p = co_await qi::create_subprocess_exec(program, std::move(args), std::move(options));
  const QByteArray line = co_await qi::wait_for(p.std_out()->readline(), timeout);
  const QRegularExpression address("^" + QRegularExpression::escape(QString::fromStdString(name)) +
                                   R"(: listening on 127\.0\.0\.1:(\d+)\n$)");
  const QRegularExpressionMatch m = address.match(QString::fromUtf8(line));
  if (!m.hasMatch()) throw qi::RuntimeError(name + "'s first line is not its address: " + line.toStdString());
  co_return RunningServer{p, static_cast<uint16_t>(m.captured(1).toUInt())};
}

struct Finished {
  int code;
  std::string output;
};

inline qi::Coro<Finished> finish(qi::Process p, std::chrono::milliseconds timeout) {
  std::pair<QByteArray, QByteArray> out;
  bool timed_out = false;
  try {
    out = co_await qi::wait_for(p.communicate(), timeout);
  } catch (const qi::TimeoutError&) {
    timed_out = true;
  }
  if (timed_out) {
    p.kill();
    co_await p.wait();
    throw qi::RuntimeError("a child did not finish in time (killed)");
  }
  const int code = co_await p.wait();
  co_return Finished{code, out.first.toStdString()};
}

inline void expect_in_order(const std::string& output, const std::vector<std::string>& lines) {
  std::size_t from = 0;
  for (const std::string& line : lines) {
    const std::size_t at = output.find(line, from);
    if (at == std::string::npos) {
      ADD_FAILURE() << "missing (in this order): \"" << line << "\"\nin:\n" << output;
      return;
    }
    from = at + line.size();
  }
}

inline qi::Coro<void> sigterm_while_never_read(RunningServer& server, qi::StreamWriter writer, QByteArray message,
                                               std::string echoed, std::vector<std::string> stop_lines,
                                               std::chrono::milliseconds timeout) {
  for (int i = 0; i < 400; ++i) writer.write(message);
  int echoes = 0;
  while (echoes < 20) {
    const QByteArray line = co_await qi::wait_for(server.process.std_out()->readline(), timeout);
    if (line.isEmpty()) {
      ADD_FAILURE() << "the server ended early";
      co_return;
    }
    echoes += line.contains(echoed.c_str());
  }
  co_await qi::sleep(std::chrono::milliseconds(500));  // let its buffers fill
  server.process.send_signal(SIGTERM);
  const auto t0 = qi::get_running_loop().time();
  const Finished s = co_await finish(server.process, timeout);
  EXPECT_EQ(s.code, 0) << s.output;
  EXPECT_LT(qi::get_running_loop().time() - t0, std::chrono::seconds(20));
  expect_in_order(s.output, stop_lines);
  writer.transport().abort();
}

inline bool sigint_ignored() {
  struct sigaction current {};
  ::sigaction(SIGINT, nullptr, &current);
  return current.sa_handler == SIG_IGN;
}

}  // namespace child_program
