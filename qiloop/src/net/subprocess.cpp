// net/subprocess.cpp — qi::create_subprocess_exec / create_subprocess_shell
// and qi::Process (asyncio's subprocess.py, base_subprocess.py and
// unix_events.py's _UnixSubprocessTransport). The contract is in
// <qiloop/net/subprocess.h>; spawning is net/subprocess_spawn.cpp's,
// watching net/child_watcher.cpp's.
#include <qiloop/net/subprocess.h>

#include "net/child_watcher.h"
#include "net/stream_cores.h"
#include "net/subprocess_spawn.h"

#include <qiloop/errors.h>
#include <qiloop/event_loop.h>
#include <qiloop/net/pipes.h>
#include <qiloop/structured/gather.h>

#include <csignal>
#include <memory>
#include <string>
#include <utility>

namespace qi {

using detail::ChildProcess;
using detail::ReaderCore;
using detail::StreamAccess;
using detail::StreamProtocol;
using detail::WriterCore;

struct ProcessAccess {
  static Process make(std::shared_ptr<ChildProcess> child) { return Process(std::move(child)); }
  static std::optional<StreamWriter>& in(Process& p) { return p.in_; }
  static std::optional<StreamReader>& out(Process& p) { return p.out_; }
  static std::optional<StreamReader>& err(Process& p) { return p.err_; }
};

namespace {

// What every handle of a read pipe's stream shares (through shared_ptr's
// aliasing constructor): when the last one goes, nobody can read the pipe
// any more, so it closes, as the last StreamWriter closes its transport.
struct ReadPipeOwner {
  std::shared_ptr<ReaderCore> core;
  ~ReadPipeOwner() {
    if (core) core->close_transport_for("qi::StreamReader (a process's pipe)");
  }
};

// A stream protocol over one pipe end; the core its StreamProtocol feeds.
auto pipe_protocol(std::shared_ptr<WriterCore> core) {
  return [core = std::move(core)] { return std::make_unique<StreamProtocol>(core, nullptr); };
}

Coro<StreamWriter> connect_stdin(QiEventLoop& loop, detail::OwnedFd fd) {
  auto core = std::make_shared<WriterCore>(std::make_shared<ReaderCore>(kDefaultStreamLimit));
  auto factory = pipe_protocol(core);  // named: g++ 12 destroys a lambda temporary of a co_await twice
  co_await loop.connect_write_pipe(std::move(factory), fd.release());
  co_return StreamAccess::writer(core);
}

Coro<StreamReader> connect_reader(QiEventLoop& loop, detail::OwnedFd fd, std::size_t limit) {
  auto reader = std::make_shared<ReaderCore>(limit);
  auto factory = pipe_protocol(std::make_shared<WriterCore>(reader));  // named: see above
  co_await loop.connect_read_pipe(std::move(factory), fd.release());
  auto owner = std::make_shared<ReadPipeOwner>();  // not from a temporary: its destructor would close the pipe
  owner->core = reader;
  co_return StreamAccess::reader(std::shared_ptr<ReaderCore>(owner, reader.get()));
}

// asyncio's BaseSubprocessTransport._start and _connect_pipes.
Coro<Process> start_process(const char* api, std::string program, std::vector<std::string> argv,
                            SubprocessOptions options) {
  QiEventLoop& loop = qi::get_running_loop();
  if (options.std_out.kind() == Stdio::Kind::kPipe || options.std_err.kind() == Stdio::Kind::kPipe)
    (void)ReaderCore::checked_limit(options.limit);
  detail::Spawned spawned = detail::spawn(api, program, argv, options);
  Process process = ProcessAccess::make(ChildProcess::watch(loop, spawned.pid, std::move(program)));
  try {
    if (spawned.parent_ends[0].get() >= 0)
      ProcessAccess::in(process) = co_await connect_stdin(loop, std::move(spawned.parent_ends[0]));
    if (spawned.parent_ends[1].get() >= 0)
      ProcessAccess::out(process) = co_await connect_reader(loop, std::move(spawned.parent_ends[1]), options.limit);
    if (spawned.parent_ends[2].get() >= 0)
      ProcessAccess::err(process) = co_await connect_reader(loop, std::move(spawned.parent_ends[2]), options.limit);
  } catch (...) {
    // asyncio closes the transport, which kills the child; the watcher
    // reaps it, and the pipes connected so far close with their handles.
    if (!process.returncode()) process.kill();
    throw;
  }
  co_return process;
}

Coro<void> feed_stdin(std::optional<StreamWriter> in, QByteArray input) {
  if (!in) co_return;
  if (!input.isEmpty()) in->write(input);
  try {
    co_await in->drain();
  } catch (const qi::BrokenPipeError&) {
    // communicate() ignores a child that closed its stdin (asyncio's).
  } catch (const qi::ConnectionResetError&) {
  }
  in->close();
}

Coro<QByteArray> read_to_eof(std::optional<StreamReader> reader) {
  if (!reader) co_return QByteArray();
  co_return co_await reader->read(-1);
}

Coro<std::pair<QByteArray, QByteArray>> communicate_with(std::shared_ptr<ChildProcess> child,
                                                         std::optional<StreamWriter> in,
                                                         std::optional<StreamReader> out_pipe,
                                                         std::optional<StreamReader> err_pipe, QByteArray input) {
  if (!input.isEmpty() && !in)
    throw qi::ValueError("Process::communicate: input given, but the child's std_in is not a pipe; spawn it with "
                         "options.std_in = qi::PIPE");
  auto [fed, out, err] = co_await qi::gather(feed_stdin(std::move(in), std::move(input)),
                                             read_to_eof(std::move(out_pipe)), read_to_eof(std::move(err_pipe)));
  (void)fed;
  co_await ChildProcess::wait(std::move(child));
  co_return std::pair{std::move(out), std::move(err)};
}

}  // namespace

// --- Process --------------------------------------------------------------------------------

Process::Process(std::shared_ptr<ChildProcess> child) noexcept : child_(std::move(child)) {}

int Process::pid() const noexcept { return child_->pid(); }
std::optional<int> Process::returncode() const noexcept { return child_->returncode(); }
Coro<int> Process::wait() { return ChildProcess::wait(child_); }
void Process::send_signal(int sig) { child_->send_signal(sig); }
void Process::terminate() { child_->send_signal(SIGTERM); }
void Process::kill() { child_->send_signal(SIGKILL); }

// asyncio's Process.communicate: the three directions run as one gather.
// Not a member coroutine: the handles are copied at the call, as Python's
// task holds its Process, so `create_task(p.communicate(...))` may outlive p.
Coro<std::pair<QByteArray, QByteArray>> Process::communicate(QByteArray input) {
  return communicate_with(child_, in_, out_, err_, std::move(input));
}

// --- create_subprocess_exec / create_subprocess_shell --------------------------------------

Coro<Process> create_subprocess_exec(std::string program, std::vector<std::string> args, SubprocessOptions options) {
  std::vector<std::string> argv;
  argv.reserve(args.size() + 1);
  argv.push_back(program);
  for (std::string& a : args) argv.push_back(std::move(a));
  return start_process("create_subprocess_exec", std::move(program), std::move(argv), std::move(options));
}

Coro<Process> create_subprocess_shell(std::string cmd, SubprocessOptions options) {
  std::vector<std::string> argv{"/bin/sh", "-c", std::move(cmd)};
  return start_process("create_subprocess_shell", "/bin/sh", std::move(argv), std::move(options));
}

}  // namespace qi
