// loop.connect_read_pipe / connect_write_pipe (<qiloop/net/pipes.h>)
// against peers that are not qiloop: a blocking std::thread on the other
// end of a pipe, and a /bin/sh child. Real time: the peers must make
// progress; every wait is bounded by the kit's watchdog.
#include "net/transport_peers.h"

#include <qiloop/config.h>
#include <qiloop/net/pipes.h>
#include <qiloop/testing.h>

#include <gtest/gtest.h>

#include <fcntl.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <csignal>
#include <cstdio>
#include <cstdlib>

extern char** environ;

using namespace std::chrono_literals;
using namespace peers;

namespace {

// A pipe with a transport (recording into log) on one end; the other end,
// blocking, is the test's.
struct PipeUnderTest {
  Fd peer;
  std::shared_ptr<Log> log = std::make_shared<Log>();
  qi::Transport* t = nullptr;
};

enum class Driven { kReadEnd, kWriteEnd };

// A fresh pipe whose `end` a transport drives (loop.connect_read_pipe or
// connect_write_pipe).
qi::Coro<PipeUnderTest> pipe_transport(Driven end) {
  auto& loop = qi::get_running_loop();
  auto [rd, wr] = pipe_pair();
  PipeUnderTest p;
  auto factory = recorder(p.log);
  if (end == Driven::kReadEnd) {
    p.peer = std::move(wr);
    p.t = (co_await loop.connect_read_pipe(std::move(factory), rd.release())).first;
  } else {
    p.peer = std::move(rd);
    p.t = (co_await loop.connect_write_pipe(std::move(factory), wr.release())).first;
  }
  co_return p;
}

// --- Reading ----------------------------------------------------------------------------

QILOOP_TEST_MODES(Pipes, ReadsWhatAThreadWritesUntilEof) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto [rd, wr] = pipe_pair();
  constexpr std::size_t kSize = 1 << 20;
  Peer writer;
  writer.start([w = wr.release()] {
    write_all(w, pattern_bytes(kSize).toStdString());
    ::close(w);
  });
  auto log = std::make_shared<Log>();
  auto factory = recorder(log);
  auto [t, proto] = co_await loop.connect_read_pipe(std::move(factory), rd.release());
  EXPECT_EQ(log->made, 1) << "connection_made ran before connect_read_pipe returned";
  EXPECT_EQ(proto->transport, t);
  EXPECT_TRUE(t->is_reading());
  EXPECT_FALSE(t->can_write_eof());
  EXPECT_TRUE(t->peername().empty());
  EXPECT_NE(::fcntl(t->fileno(), F_GETFL) & O_NONBLOCK, 0) << "the transport made the fd non-blocking";
  co_await log->until([&] { return log->lost > 0; });
  EXPECT_EQ(log->data, pattern_bytes(kSize));
  EXPECT_EQ(log->eofs, 1);
  EXPECT_EQ(log->error, nullptr);
  EXPECT_EQ(log->order.back(), "lost");
  EXPECT_EQ(log->order[log->order.size() - 2], "eof");
}

QILOOP_TEST_MODES(Pipes, PauseReadingStopsDeliveryUntilResumed) {
  FdLeakCheck leaks;
  PipeUnderTest p = co_await pipe_transport(Driven::kReadEnd);
  p.t->pause_reading();
  EXPECT_FALSE(p.t->is_reading());
  p.t->pause_reading();  // a no-op when paused
  write_all(p.peer.get(), "while paused");
  co_await qi::sleep(50ms);
  EXPECT_TRUE(p.log->data.isEmpty()) << "a paused transport does not read";
  p.t->resume_reading();
  EXPECT_TRUE(p.t->is_reading());
  co_await p.log->until([&] { return p.log->data.size() >= 12; });
  EXPECT_EQ(p.log->data, "while paused");
  p.peer.reset();
  co_await p.log->until([&] { return p.log->lost > 0; });
  EXPECT_EQ(p.log->eofs, 1);
}

QILOOP_TEST_MODES(Pipes, AReadPipeRefusesToWriteAndAWritePipeToRead) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto [rd, wr] = pipe_pair();
  auto rlog = std::make_shared<Log>();
  auto wlog = std::make_shared<Log>();
  auto rfactory = recorder(rlog);
  auto wfactory = recorder(wlog);
  auto [in, rproto] = co_await loop.connect_read_pipe(std::move(rfactory), rd.release());
  auto [out, wproto] = co_await loop.connect_write_pipe(std::move(wfactory), wr.release());
  EXPECT_THROW(in->write("x"), qi::RuntimeError);
  EXPECT_THROW(in->writelines({"x"}), qi::RuntimeError);
  EXPECT_THROW(in->write_eof(), qi::RuntimeError);
  EXPECT_THROW(out->pause_reading(), qi::RuntimeError);
  EXPECT_THROW(out->resume_reading(), qi::RuntimeError);
  EXPECT_FALSE(out->is_reading());
  EXPECT_TRUE(out->can_write_eof());
  out->write("through ");
  out->writelines({"the ", "", "pipe"});
  out->write_eof();  // a pipe's write_eof closes it
  EXPECT_TRUE(out->is_closing());
  out->write("dropped");
  co_await rlog->until([&] { return rlog->lost > 0 && wlog->lost > 0; });
  EXPECT_EQ(rlog->data, "through the pipe");
  EXPECT_EQ(wlog->error, nullptr);
  EXPECT_EQ(rlog->error, nullptr);
}

// --- Writing ----------------------------------------------------------------------------

QILOOP_TEST_MODES(Pipes, WritesWithFlowControlAgainstASlowReader) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto [rd, wr] = pipe_pair();
  constexpr std::size_t kSize = 2 << 20;
  long long got = 0;
  Peer reader;
  reader.start([&got, r = rd.release()] {
    got = read_pattern(r, 200us, 16384);
    ::close(r);
  });
  auto log = std::make_shared<Log>();
  auto factory = recorder(log);
  auto [t, proto] = co_await loop.connect_write_pipe(std::move(factory), wr.release());
  EXPECT_EQ(t->get_write_buffer_limits(), std::make_pair(std::size_t{16384}, std::size_t{65536}));
  // More than the pipe holds, at once: the rest is buffered, over the high-water mark.
  std::size_t sent = 512 * 1024;
  t->write(pattern_bytes(sent));
  EXPECT_EQ(log->pauses, 1) << "pause_writing comes from write() itself";
  // Then writes while not paused, as a well-behaved producer does.

  while (sent < kSize) {
    if (log->pauses > log->resumes) {
      co_await log->until([&] { return log->pauses == log->resumes; });
      EXPECT_LE(t->get_write_buffer_size(), std::size_t{16384}) << "resume_writing comes at the low-water mark";
      continue;
    }
    std::size_t n = std::min<std::size_t>(48 * 1024, kSize - sent);
    t->write(pattern_bytes(n, sent));
    sent += n;
    EXPECT_LE(t->get_write_buffer_size(), std::size_t{65536 + 48 * 1024});
  }
  EXPECT_GE(log->pauses, 1) << "the slow reader made the buffer cross its high-water mark";
  t->close();
  co_await log->until([&] { return log->lost > 0; });
  EXPECT_EQ(log->error, nullptr);
  reader.join();
  EXPECT_EQ(got, static_cast<long long>(kSize)) << "every byte arrived, in order";
}

QILOOP_TEST_MODES(Pipes, AWriteAfterTheReaderClosedEndsWithBrokenPipe) {
  FdLeakCheck leaks;
  PipeUnderTest p = co_await pipe_transport(Driven::kWriteEnd);
  p.peer.reset();
  p.t->write("nobody reads this");  // before the loop notices the close: the write meets EPIPE
  EXPECT_TRUE(p.t->is_closing());
  co_await p.log->until([&] { return p.log->lost > 0; });
  EXPECT_TRUE(holds<qi::BrokenPipeError>(p.log->error)) << what_of(p.log->error);
}

QILOOP_TEST_MODES(Pipes, AReaderThatGoesAwayIsNoticedWhileIdle) {
  FdLeakCheck leaks;
  PipeUnderTest p = co_await pipe_transport(Driven::kWriteEnd);
  co_await qi::sleep(10ms);
  EXPECT_EQ(p.log->lost, 0);
  p.peer.reset();
  co_await p.log->until([&] { return p.log->lost > 0; });
  EXPECT_EQ(p.log->error, nullptr) << "nothing was buffered: a clean end (asyncio's _read_ready)";
}

QILOOP_TEST_MODES(Pipes, AReaderThatGoesAwayWithBytesBufferedIsABrokenPipe) {
  FdLeakCheck leaks;
  PipeUnderTest p = co_await pipe_transport(Driven::kWriteEnd);
  p.t->write(pattern_bytes(1 << 20));  // more than the pipe holds
  EXPECT_GT(p.t->get_write_buffer_size(), 0u);
  p.peer.reset();
  co_await p.log->until([&] { return p.log->lost > 0; });
  EXPECT_TRUE(holds<qi::BrokenPipeError>(p.log->error)) << what_of(p.log->error);
}

// A write to a pipe without a reader never kills the process, even with
// SIGPIPE's default disposition (the test binary otherwise ignores it).
QILOOP_TEST_MODES(Pipes, ABrokenPipeDoesNotRaiseSigpipe) {
  FdLeakCheck leaks;
  PipeUnderTest p = co_await pipe_transport(Driven::kWriteEnd);
  p.peer.reset();
  auto previous = std::signal(SIGPIPE, SIG_DFL);
  p.t->write("into the void");
  std::signal(SIGPIPE, previous);
  sigset_t pending;
  sigpending(&pending);
  EXPECT_FALSE(sigismember(&pending, SIGPIPE)) << "the SIGPIPE the write raised was taken back";
  co_await p.log->until([&] { return p.log->lost > 0; });
  EXPECT_TRUE(holds<qi::BrokenPipeError>(p.log->error)) << what_of(p.log->error);
}

QILOOP_TEST_MODES(Pipes, AbortDropsTheBufferAndIsIdempotent) {
  FdLeakCheck leaks;
  PipeUnderTest p = co_await pipe_transport(Driven::kWriteEnd);
  p.t->write(pattern_bytes(1 << 20));
  p.t->abort();
  EXPECT_EQ(p.t->get_write_buffer_size(), 0u);
  p.t->abort();
  p.t->close();
  co_await p.log->until([&] { return p.log->lost > 0; });
  co_await qi::sleep(10ms);
  EXPECT_EQ(p.log->lost, 1);
  EXPECT_EQ(p.log->error, nullptr);
  EXPECT_LT(read_all(p.peer.get()).size(), std::size_t{1 << 20}) << "the buffered bytes were dropped";
}

// --- A child process ------------------------------------------------------------------

QILOOP_TEST_MODES(Pipes, ReadsAShellChildsOutputToEof) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto [rd, wr] = pipe_pair();
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, wr.get(), 1);  // dup2 clears close-on-exec
  const char* argv[] = {"/bin/sh", "-c", "printf 'hello '; i=0; while [ $i -lt 1000 ]; do echo line $i; i=$((i+1)); done",
                        nullptr};
  pid_t pid = -1;
  int spawned = posix_spawn(&pid, "/bin/sh", &actions, nullptr, const_cast<char**>(argv), environ);
  posix_spawn_file_actions_destroy(&actions);
  QILOOP_CO_ASSERT(ASSERT_EQ(spawned, 0));
  wr.reset();  // the child holds the only write end: EOF when it exits
  auto log = std::make_shared<Log>();
  auto factory = recorder(log);
  [[maybe_unused]] auto [t, proto] = co_await loop.connect_read_pipe(std::move(factory), rd.release());
  co_await log->until([&] { return log->lost > 0; });
  std::string expected = "hello ";
  for (int i = 0; i < 1000; ++i) expected += "line " + std::to_string(i) + "\n";
  EXPECT_EQ(log->data.toStdString(), expected);
  EXPECT_EQ(log->error, nullptr);
  int status = 0;
  EXPECT_EQ(::waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
}

// --- Bad input ----------------------------------------------------------------------------

QILOOP_TEST_MODES(Pipes, ARegularFileIsRefused) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  char path[] = "/tmp/qiloop_pipes_test_XXXXXX";
  Fd file(::mkstemp(path));
  ::unlink(path);
  QILOOP_CO_ASSERT(ASSERT_GE(file.get(), 0));
  auto factory = recorder(std::make_shared<Log>());
  std::string message;
  try {
    (void)co_await loop.connect_read_pipe(std::move(factory), file.get());
  } catch (const qi::ValueError& e) {
    message = e.what();
  }
  EXPECT_NE(message.find("not a pipe"), std::string::npos) << message;
  auto factory2 = recorder(std::make_shared<Log>());
  EXPECT_THROW((void)co_await loop.connect_write_pipe(std::move(factory2), file.get()), qi::ValueError);
  EXPECT_GE(::fcntl(file.get(), F_GETFD), 0) << "a refused fd stays the caller's, open";
}

QILOOP_TEST_MODES(Pipes, ACharacterDeviceIsAccepted) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  QILOOP_CO_ASSERT(ASSERT_GE(null, 0));
  auto log = std::make_shared<Log>();
  auto factory = recorder(log);
  auto [t, proto] = co_await loop.connect_write_pipe(std::move(factory), null);
  t->write("discarded");
  EXPECT_EQ(t->get_write_buffer_size(), 0u);
  t->close();
  co_await log->until([&] { return log->lost > 0; });
  EXPECT_EQ(log->error, nullptr);
}

// /dev/null for reading, per backend (review i10 A6, i12): epoll cannot
// watch it, so the linux backend refuses it with qi::ValueError naming
// qi::to_thread, before connection_made, and the fd stays the caller's. The
// portable backend polls it (poll() calls it always readable): the transport
// reads EOF at its first read, stops watching and loses the connection —
// made, eof, lost, once each, no data, no spin. Nothing leaks either way.
QILOOP_TEST_MODES(Pipes, AReadPipeOnDevNullIsRefusedOnLinuxAndReadsEofOnPortable) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  Fd null(::open("/dev/null", O_RDONLY | O_CLOEXEC));
  QILOOP_CO_ASSERT(ASSERT_GE(null.get(), 0));
  auto log = std::make_shared<Log>();
  auto factory = recorder(log);
  std::string refused;
  try {
    (void)co_await loop.connect_read_pipe(std::move(factory), null.get());
  } catch (const qi::ValueError& e) {
    refused = e.what();
  }
  if (!QILOOP_BACKEND_PORTABLE) {
    EXPECT_NE(refused.find("is a character device the loop cannot wait on"), std::string::npos) << refused;
    EXPECT_NE(refused.find("read it with qi::to_thread"), std::string::npos) << refused;
    EXPECT_EQ(log->made, 0) << "refused before connection_made";
    EXPECT_GE(::fcntl(null.get(), F_GETFD), 0) << "the refused fd stays the caller's";
    co_return;
  }
  QILOOP_CO_ASSERT(ASSERT_EQ(refused, "") << "the portable backend can wait on /dev/null");
  (void)null.release();  // the transport's now
  co_await log->until([&] { return log->lost > 0; });
  // One read, EOF: the transport stopped watching the fd (a spin would read
  // again and call eof_received twice, or never lose the connection).
  EXPECT_EQ(log->order, (std::vector<std::string>{"made", "eof", "lost"}));
  EXPECT_TRUE(log->data.isEmpty());
  EXPECT_EQ(log->error, nullptr);
  co_await qi::sleep(20ms);
  EXPECT_EQ(log->order.size(), 3u) << "nothing after connection_lost";
}

// A pipe fd already driven by a transport is refused.
QILOOP_TEST_MODES(Pipes, AnFdOfATransportIsRefused) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  PipeUnderTest p = co_await pipe_transport(Driven::kReadEnd);
  auto factory2 = recorder(std::make_shared<Log>());
  std::string refused;
  try {
    (void)co_await loop.connect_read_pipe(std::move(factory2), p.t->fileno());
  } catch (const qi::RuntimeError& e) {
    refused = e.what();
  }
  EXPECT_NE(refused.find("connect_read_pipe: fd " + std::to_string(p.t->fileno()) + " is used by a transport"),
            std::string::npos)
      << refused;
  EXPECT_NE(refused.find("close the transport before using the fd directly"), std::string::npos) << refused;
  EXPECT_TRUE(p.t->is_reading()) << "the transport goes on";
  p.t->close();
  co_await p.log->until([&] { return p.log->lost > 0; });
}

}  // namespace

// loop.close() destroys pipe transports still open: no fd leaks.
TEST(Pipes, LoopCloseDestroysUnclosedPipeTransports) {
  FdLeakCheck leaks;
  auto [rd, wr] = pipe_pair();
  {
    QiEventLoop loop;
    auto log = std::make_shared<Log>();
    auto rfactory = recorder(log);
    auto wfactory = recorder(log);
    (void)loop.run_until_complete(loop.connect_read_pipe(std::move(rfactory), rd.release()));
    (void)loop.run_until_complete(loop.connect_write_pipe(std::move(wfactory), wr.release()));
    loop.close();
    EXPECT_EQ(log->lost, 0) << "no callback runs on a closing loop";
  }
}

namespace {

// --- Review i10 D: transport.set_protocol on a pipe --------------------------------------

QILOOP_TEST_MODES(Pipes, SetProtocolOnAReadPipeSwitchesMidStream) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto pp = pipe_pair();
  auto first = std::make_shared<Log>(), second = std::make_shared<Log>();
  auto factory = recorder(first);
  auto [t, proto] = co_await loop.connect_read_pipe(std::move(factory), pp.first.release());
  write_all(pp.second.get(), "one");
  co_await first->until([&] { return first->data.size() >= 3; });
  std::unique_ptr<qi::BaseProtocol> old = t->set_protocol(std::make_unique<Recorder>(second));
  EXPECT_EQ(old.get(), proto);
  write_all(pp.second.get(), "two");
  pp.second.reset();
  co_await second->until([&] { return second->lost > 0; });
  EXPECT_EQ(first->data, "one");
  EXPECT_EQ(second->data, "two");
  EXPECT_EQ(first->lost, 0);
}

}  // namespace
