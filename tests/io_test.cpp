// add_reader / add_writer / remove_reader / remove_writer, in both run modes,
// on pipes and socketpairs: asyncio's level-triggered fd callbacks.
#include "fd_channel.h"
#include "test_util.h"

#include <gmock/gmock.h>

#include <algorithm>
#include <array>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>

#include <fcntl.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

using namespace std::chrono_literals;
using qt::Mode;
using testing::HasSubstr;

namespace {

constexpr auto kGuard = 2s;

using qt::Channel;
using qt::Kind;
using qt::kKinds;
using qt::kind_name;

class IoTest : public qt::ModeTest {
 protected:
  void run(QiEventLoop& loop) { qt::run_until_stopped(loop, mode(), kGuard); }

  // Watches ch.in with a reader that collects what arrives and stops the loop
  // once `expected` is in; `start` arranges for the data to be sent.
  std::string collect(Kind kind, std::string_view expected, const std::function<void(QiEventLoop&, Channel&)>& start) {
    QiEventLoop loop;
    Channel ch(kind);
    std::string got;
    loop.add_reader(ch.in, [&] {
      got += ch.receive();
      if (got.size() >= expected.size()) loop.stop();
    });
    start(loop, ch);
    run(loop);
    return got;
  }

  // A ping-pong of `legs` one-byte legs between the two ends of a
  // socketpair, each answer written by a call_soon from the reader (as a
  // task resumed by a stream read writes it). Returns the loop's counters
  // spent on it.
  qi::LoopStats ping_pong_through_call_soon(int legs_wanted) {
    QiEventLoop loop;
    int sv[2];
    EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
    int legs = 0;
    qi::LoopStats start;
    auto answer_on = [&](int fd) {
      loop.add_reader(fd, [&, fd] {
        char c;
        if (::read(fd, &c, 1) != 1) return;
        if (++legs == legs_wanted) {
          loop.stop();
          return;
        }
        loop.call_soon([fd] { ASSERT_EQ(::write(fd, "x", 1), 1); });
      });
    };
    answer_on(sv[0]);
    answer_on(sv[1]);
    loop.call_soon([&] {
      start = loop.stats();
      ASSERT_EQ(::write(sv[0], "x", 1), 1);
    });
    run(loop);
    EXPECT_EQ(legs, legs_wanted);
    qi::LoopStats spent = loop.stats();
    spent.slices -= start.slices;
    spent.io_polls -= start.io_polls;
    loop.remove_reader(sv[0]);
    loop.remove_reader(sv[1]);
    ::close(sv[0]);
    ::close(sv[1]);
    return spent;
  }
};

// --- Readiness -------------------------------------------------------------

TEST_P(IoTest, ReaderRunsWhenACallbackWritesData) {
  for (Kind kind : kKinds) {
    SCOPED_TRACE(kind_name(kind));
    EXPECT_EQ(collect(kind, "hello",
                      [](QiEventLoop& loop, Channel& ch) { loop.call_soon([&ch] { ch.send("hello"); }); }),
              "hello");
  }
}

TEST_P(IoTest, ReaderRunsWhenAQtTimerWritesData) {
  for (Kind kind : kKinds) {
    SCOPED_TRACE(kind_name(kind));
    EXPECT_EQ(collect(kind, "from qt", [](QiEventLoop&, Channel& ch) {
                QTimer::singleShot(10ms, [&ch] { ch.send("from qt"); });
              }),
              "from qt");
  }
}

TEST_P(IoTest, ReaderRunsWhenAnotherThreadWritesData) {
  for (Kind kind : kKinds) {
    SCOPED_TRACE(kind_name(kind));
    std::thread writer;
    EXPECT_EQ(collect(kind, "from a thread",
                      [&writer](QiEventLoop&, Channel& ch) {
                        writer = std::thread([&ch] {
                          std::this_thread::sleep_for(10ms);
                          ch.send("from a thread");
                        });
                      }),
              "from a thread");
    writer.join();
  }
}

// asyncio's readers are level-triggered: while data is left unread the
// reader runs again on every iteration, and stops once it is drained.
TEST_P(IoTest, ReaderIsLevelTriggered) {
  for (Kind kind : kKinds) {
    SCOPED_TRACE(kind_name(kind));
    QiEventLoop loop;
    Channel ch(kind);
    std::vector<uint64_t> iterations;
    std::string got;
    ch.send("abc");
    loop.add_reader(ch.in, [&] {
      iterations.push_back(loop.stats().iterations);
      got += ch.receive(1);
      if (got == "abc") loop.call_later(10ms, [&] { loop.stop(); });
    });
    run(loop);
    EXPECT_EQ(got, "abc");
    ASSERT_EQ(iterations.size(), 3u) << "called once per byte, then never again once drained";
    EXPECT_EQ(iterations[1], iterations[0] + 1);
    EXPECT_EQ(iterations[2], iterations[1] + 1);
  }
}

TEST_P(IoTest, AddReaderReplacesThePreviousReaderAndReleasesIt) {
  QiEventLoop loop;
  Channel ch(Kind::kSocketPair);
  auto token = std::make_shared<int>(0);
  std::weak_ptr<int> first_captures = token;
  loop.add_reader(ch.in, [token] { ADD_FAILURE() << "the replaced reader ran"; });
  token.reset();
  std::string got;
  loop.add_reader(ch.in, [&] {
    got += ch.receive();
    loop.stop();
  });
  EXPECT_TRUE(first_captures.expired()) << "replacing a reader must drop the old callback";
  loop.call_soon([&] { ch.send("new"); });
  run(loop);
  EXPECT_EQ(got, "new");
}

TEST_P(IoTest, RemoveReturnsTrueThenFalseAndARemovedReaderNeverRuns) {
  QiEventLoop loop;
  Channel ch(Kind::kSocketPair);
  EXPECT_FALSE(loop.remove_reader(ch.in)) << "never watched";
  EXPECT_FALSE(loop.remove_writer(ch.in));
  auto token = std::make_shared<int>(0);
  std::weak_ptr<int> captures = token;
  loop.add_reader(ch.in, [token] { ADD_FAILURE() << "a removed reader ran"; });
  token.reset();
  loop.add_writer(ch.in, [] {});
  EXPECT_TRUE(loop.remove_reader(ch.in));
  EXPECT_TRUE(captures.expired()) << "removing a reader must drop its callback";
  EXPECT_FALSE(loop.remove_reader(ch.in));
  EXPECT_TRUE(loop.remove_writer(ch.in)) << "removing the reader must leave the writer";
  EXPECT_FALSE(loop.remove_writer(ch.in));
  ch.send("unwatched");
  loop.call_later(10ms, [&] { loop.stop(); });
  run(loop);
}

TEST_P(IoTest, WriterRunsWhenTheFdIsWritable) {
  for (Kind kind : kKinds) {
    SCOPED_TRACE(kind_name(kind));
    QiEventLoop loop;
    Channel ch(kind);
    bool wrote = false;
    loop.add_writer(ch.out, [&] {
      if (!wrote) ch.send("written when writable");
      wrote = true;
      loop.stop();
    });
    run(loop);
    EXPECT_EQ(ch.receive(), "written when writable");
  }
}

// One fd, both directions: each registration survives changes to the other.
TEST_P(IoTest, ReaderAndWriterOnTheSameFd) {
  QiEventLoop loop;
  Channel ch(Kind::kSocketPair);
  const int fd = ch.in;
  std::string got;
  loop.add_reader(ch.out, [&] {
    if (Channel::receive_on(ch.out) == "ping") Channel::send_on(ch.out, "pong");
  });
  loop.add_reader(fd, [&] {
    got += ch.receive();
    if (got == "pong") {
      EXPECT_FALSE(loop.remove_writer(fd)) << "already removed";
      loop.stop();
    }
  });
  bool sent = false;
  loop.add_writer(fd, [&] {
    if (sent) return;
    sent = true;
    Channel::send_on(fd, "ping");
    loop.call_soon([&] { EXPECT_TRUE(loop.remove_writer(fd)); });
  });
  run(loop);
  EXPECT_EQ(got, "pong");
}

// EOF on a pipe, HUP on a socketpair: the reader runs and reads 0 bytes.
TEST_P(IoTest, AClosedPeerWakesTheReader) {
  for (Kind kind : kKinds) {
    SCOPED_TRACE(kind_name(kind));
    QiEventLoop loop;
    Channel ch(kind);
    bool eof = false;
    loop.add_reader(ch.in, [&] {
      eof = ch.at_eof();
      loop.stop();
    });
    QTimer::singleShot(10ms, [&] { ch.close_out(); });
    run(loop);
    EXPECT_TRUE(eof);
  }
}

// The usual end of a reader or writer: it removes itself. The callback keeps
// running after remove_*() returns, so what it captured must still be alive
// then, and be released once it returns.
void expect_handler_can_remove_itself(Mode mode, Kind kind, bool write) {
  QiEventLoop loop;
  Channel ch(kind);
  ch.send("left unread, so the reader stays ready");
  const int fd = write ? ch.out : ch.in;
  int calls = 0;
  std::string seen;
  auto token = std::make_shared<int>(0);
  std::weak_ptr<int> captures = token;
  const std::string tag = "a capture longer than any small-string buffer";
  auto handler = [&loop, &calls, &seen, fd, write, tag, token] {
    ++calls;
    std::string& result = seen;
    EXPECT_TRUE(write ? loop.remove_writer(fd) : loop.remove_reader(fd));
    result = tag;
  };
  if (write)
    loop.add_writer(fd, std::move(handler));
  else
    loop.add_reader(fd, std::move(handler));
  token.reset();
  loop.call_later(20ms, [&] { loop.stop(); });
  qt::run_until_stopped(loop, mode, kGuard);
  EXPECT_EQ(calls, 1) << "the handler ran again after removing itself";
  EXPECT_EQ(seen, tag) << "the handler's captures were destroyed while it ran";
  EXPECT_TRUE(captures.expired()) << "a removed handler is dropped once it returns";
}

TEST_P(IoTest, RemovingAReaderFromInsideItsOwnCallback) {
  for (Kind kind : kKinds) {
    SCOPED_TRACE(kind_name(kind));
    expect_handler_can_remove_itself(mode(), kind, /*write=*/false);
  }
}

TEST_P(IoTest, RemovingAWriterFromInsideItsOwnCallback) {
  for (Kind kind : kKinds) {
    SCOPED_TRACE(kind_name(kind));
    expect_handler_can_remove_itself(mode(), kind, /*write=*/true);
  }
}

// A reader that hands over to the next one (a protocol's state machine).
TEST_P(IoTest, ReplacingAReaderFromInsideItsOwnCallback) {
  QiEventLoop loop;
  Channel ch(Kind::kSocketPair);
  ch.send("ab");
  std::string log;
  const std::string tag = "first reader, a capture longer than any small-string buffer";
  loop.add_reader(ch.in, [&loop, &log, &ch, tag] {
    std::string& result = log;
    std::string byte = ch.receive(1);
    loop.add_reader(ch.in, [&] {
      log += "|second:" + ch.receive(1);
      loop.stop();
    });
    result += tag + ":" + byte;
  });
  run(loop);
  EXPECT_EQ(log, tag + ":a|second:b");
}

// The user closes a watched fd without removing it and the kernel hands the
// number to a new fd: watching the new fd works and the stale reader is gone.
TEST_P(IoTest, AnFdClosedByTheUserAndItsNumberReused) {
  QiEventLoop loop;
  std::vector<std::string> reports;
  loop.set_exception_handler(
      [&](QiEventLoop&, const qi::ExceptionContext& ctx) { reports.push_back(ctx.message); });
  auto old_ch = std::make_unique<Channel>(Kind::kPipe);
  const int number = old_ch->in;
  loop.add_reader(number, [] { ADD_FAILURE() << "the reader of the closed fd ran"; });
  old_ch.reset();
  Channel ch(Kind::kPipe);
  ASSERT_EQ(ch.in, number) << "the kernel gives out the lowest free number";
  std::string got;
  loop.add_reader(ch.in, [&] {
    got += ch.receive();
    loop.stop();
  });
  loop.call_soon([&] { ch.send("reused"); });
  run(loop);
  EXPECT_EQ(got, "reused");
  EXPECT_THAT(reports, testing::ElementsAre(HasSubstr("fd " + std::to_string(number))))
      << "the stale reader is reported once";
}

// Collects the loop's error reports and checks that the stale registration of
// `fd` was reported once, naming the fd and the fix.
struct StaleReports {
  std::vector<std::string> messages;
  explicit StaleReports(QiEventLoop& loop) {
    loop.set_exception_handler([this](QiEventLoop&, const qi::ExceptionContext& ctx) {
      if (ctx.handle) ctx.handle->cancel();  // a handler that raised is disabled
      messages.push_back(ctx.message);
    });
  }
  void expect_one_stale(int fd) const {
    std::vector<std::string> stale;
    for (const auto& m : messages)
      if (m.find("Exception in callback") == std::string::npos) stale.push_back(m);
    EXPECT_THAT(stale, testing::ElementsAre(testing::AllOf(HasSubstr("fd " + std::to_string(fd) + " "),
                                                           HasSubstr("remove_reader"), HasSubstr("before closing"))));
  }
};

// A reader left on a closed fd must not come back to life for the
// file that gets the number next. Adding a writer there drops the stale
// reader (reported), and only the writer is registered, although the new
// file is readable too.
TEST_P(IoTest, AStaleReaderNeverFiresForTheFileThatReusesItsNumber) {
  for (bool old_file_kept_open : {false, true}) {
    SCOPED_TRACE(old_file_kept_open ? "the closed fd's file is kept open by a dup" : "the closed fd's file is gone");
    QiEventLoop loop;
    StaleReports reports(loop);
    auto old_ch = std::make_unique<Channel>(Kind::kSocketPair);
    const int number = old_ch->in;
    auto token = std::make_shared<int>(0);
    std::weak_ptr<int> stale_captures = token;
    int stale_calls = 0;
    loop.add_reader(number, [&stale_calls, token] { ++stale_calls; });
    token.reset();
    // With a dup (as after fork), the old file stays in the epoll set and
    // stays readable: its events must not reach anyone either.
    int dup_of_old = old_file_kept_open ? ::fcntl(number, F_DUPFD_CLOEXEC, 100) : -1;
    if (old_file_kept_open) {
      ASSERT_GE(dup_of_old, 0);
      old_ch->send("the old file is readable");
    }
    old_ch->close_in();
    Channel ch(Kind::kSocketPair);
    ASSERT_EQ(ch.in, number) << "the kernel gives out the lowest free number";
    Channel::send_on(ch.out, "the new file is readable too");
    int writer_calls = 0;
    loop.add_writer(ch.in, [&] {
      if (++writer_calls > 1) return;
      loop.call_later(30ms, [&] {
        EXPECT_FALSE(loop.remove_reader(ch.in)) << "only the new interest is registered";
        EXPECT_TRUE(loop.remove_writer(ch.in));
        loop.stop();
      });
    });
    EXPECT_TRUE(stale_captures.expired()) << "the stale reader must be released when it is found";
    run(loop);
    EXPECT_EQ(stale_calls, 0) << "the stale reader fired for another file";
    EXPECT_GE(writer_calls, 1);
    reports.expect_one_stale(number);
    if (dup_of_old >= 0) ::close(dup_of_old);
  }
}

// Counts the slices from 20 ms to 70 ms after the loop starts, then runs
// `last` and stops the loop: a loop spinning on a still-ready file runs
// thousands of slices there, an idle one a handful.
struct SpinProbe {
  uint64_t slices = 0;
  void arm(QiEventLoop& loop, std::function<void()> last) {
    loop.call_later(20ms, [this, &loop] { slices = loop.stats().slices; });
    loop.call_later(70ms, [this, &loop, last = std::move(last)] {
      slices = loop.stats().slices - slices;
      last();
      loop.stop();
    });
  }
};

// Reader and writer on one fd; the reader raises, and the
// exception handler cancels it and closes the fd while a dup keeps the file
// in the epoll set. Unregistering the reader then finds the fd closed: the
// writer's registration is stale. It is dropped and reported, no exception
// reaches Qt, nothing leaks, and the loop does not spin on the old file.
TEST_P(IoTest, AnFdClosedInTheExceptionHandlerDropsItsOtherHandler) {
  QiEventLoop loop;
  Channel ch(Kind::kSocketPair);
  int fd = ch.in;
  const int watched = fd;
  const int keep = ::fcntl(fd, F_DUPFD_CLOEXEC, 100);
  ASSERT_GE(keep, 0);
  std::vector<std::string> messages;
  loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& ctx) {
    messages.push_back(ctx.message);
    if (ctx.handle) {
      ctx.handle->cancel();
      ::close(fd);
      fd = -1;
    }
  });
  ch.send("readable");
  auto token = std::make_shared<int>(0);
  std::weak_ptr<int> writer_captures = token;
  int reader_calls = 0;
  int writer_calls = 0;
  loop.add_reader(watched, [&] {
    ++reader_calls;
    throw std::runtime_error("reader failed");
  });
  loop.add_writer(watched, [&writer_calls, token] { ++writer_calls; });
  token.reset();
  SpinProbe spin;
  spin.arm(loop, [&] { EXPECT_FALSE(loop.remove_writer(watched)) << "the stale writer must be gone"; });
  run(loop);
  EXPECT_EQ(reader_calls, 1);
  EXPECT_LE(writer_calls, 1) << "the writer of the closed fd ran again";
  EXPECT_TRUE(writer_captures.expired()) << "the dropped writer must be released";
  EXPECT_THAT(messages,
              testing::ElementsAre(HasSubstr("Exception in callback"),
                                   testing::AllOf(HasSubstr("fd " + std::to_string(watched) + " "),
                                                  HasSubstr("remove_writer"), HasSubstr("before closing"))));
  EXPECT_LT(spin.slices, 20u) << "the loop spun on the closed fd's file, still ready in the epoll set";
  ::close(keep);
}

// Adding a writer to a watched fd that was closed (its number not reused):
// std::invalid_argument for the writer, as for any closed fd, and the stale
// reader is dropped and reported all the same.
TEST_P(IoTest, AddingToAClosedWatchedFdThrowsAndDropsItsStaleHandler) {
  QiEventLoop loop;
  StaleReports reports(loop);
  auto gone = std::make_unique<Channel>(Kind::kPipe);
  const int fd = gone->in;
  auto token = std::make_shared<int>(0);
  std::weak_ptr<int> captures = token;
  loop.add_reader(fd, [token] { ADD_FAILURE() << "the reader of a closed fd ran"; });
  token.reset();
  gone.reset();
  loop.call_soon([&] {
    EXPECT_THROW(loop.add_writer(fd, [] { ADD_FAILURE() << "a rejected writer ran"; }), std::invalid_argument);
    EXPECT_TRUE(captures.expired()) << "the stale reader must be released";
    EXPECT_FALSE(loop.remove_reader(fd));
    EXPECT_FALSE(loop.remove_writer(fd));
    loop.call_later(10ms, [&] { loop.stop(); });
  });
  run(loop);
  reports.expect_one_stale(fd);
}

// A closed fd removed only afterwards leaves its file, kept open by a dup, in
// the epoll set under the old number: its events reach no handler and the
// backend rebuilds the set without it. The rebuild must not carry over a
// registration whose number now names another file (here: fd `a`, closed
// without remove_reader and reused): that one is dropped and reported.
TEST_P(IoTest, RebuildingTheEpollSetLeavesStaleRegistrationsBehind) {
  if (QILOOP_BACKEND_PORTABLE)
    GTEST_SKIP() << "the portable backend watches fd numbers, not files: it has no closed file's events to notice "
                    "a reused number by (documented in qiloop/src/backend_qt.h)";
  QiEventLoop loop;
  StaleReports reports(loop);
  auto old_a = std::make_unique<Channel>(Kind::kPipe);
  const int a = old_a->in;
  int stale_calls = 0;
  loop.add_reader(a, [&] { ++stale_calls; });
  auto old_b = std::make_unique<Channel>(Kind::kSocketPair);
  const int b = old_b->in;
  loop.add_reader(b, [] { ADD_FAILURE() << "the reader of b ran, but it was removed"; });
  const int keep_b = ::fcntl(b, F_DUPFD_CLOEXEC, 100);
  ASSERT_GE(keep_b, 0);
  old_b->send("b's file stays readable");
  old_b->close_in();
  EXPECT_TRUE(loop.remove_reader(b)) << "removed after closing: its file stays in the epoll set";
  old_a.reset();
  Channel reuse(Kind::kSocketPair);
  ASSERT_EQ(reuse.in, a) << "the kernel gives out the lowest free number";
  reuse.send("the file that took a's number is readable");
  loop.call_later(50ms, [&] { loop.stop(); });
  uint64_t slices = loop.stats().slices;
  run(loop);
  slices = loop.stats().slices - slices;
  EXPECT_EQ(stale_calls, 0) << "a stale reader was carried over to the file that took its number";
  EXPECT_LT(slices, 20u) << "the loop spun on a closed fd's file";
  reports.expect_one_stale(a);
  ::close(keep_b);
}

// One iteration serves every fd that was ready when it polled,
// however many (asyncio's select returns them all).
TEST_P(IoTest, OneIterationServesThousandsOfReadyFds) {
  constexpr int kFds = 10000;
  rlimit lim{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &lim), 0);
  const rlim_t needed = kFds + 256;
  if (lim.rlim_cur < needed) {
    if (lim.rlim_max < needed)
      GTEST_SKIP() << "needs " << needed << " fds; RLIMIT_NOFILE's hard limit is " << lim.rlim_max;
    rlimit raised = lim;
    raised.rlim_cur = needed;
    ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &raised), 0);
  }
  {
    QiEventLoop loop;
    Channel ch(Kind::kPipe);
    ch.send("x");
    // Every dup of the read end is a distinct ready fd.
    std::vector<int> fds;
    for (int i = 0; i < kFds; ++i) {
      int d = ::fcntl(ch.in, F_DUPFD_CLOEXEC, 0);
      ASSERT_GE(d, 0) << "dup #" << i;
      fds.push_back(d);
    }
    std::vector<uint64_t> served_in;
    served_in.reserve(kFds);
    for (int d : fds)
      loop.add_reader(d, [&loop, &served_in, d] {
        served_in.push_back(loop.stats().iterations);
        EXPECT_TRUE(loop.remove_reader(d));
        if (served_in.size() == kFds) loop.stop();
      });
    // The portable backend's notifiers cost Qt's glib dispatcher a linear
    // search each to remove: 10,000 of them take about a second there.
    qt::run_until_stopped(loop, mode(), QILOOP_BACKEND_PORTABLE ? 10 * kGuard : kGuard);
    ASSERT_EQ(served_in.size(), static_cast<std::size_t>(kFds));
    EXPECT_EQ(*std::min_element(served_in.begin(), served_in.end()),
              *std::max_element(served_in.begin(), served_in.end()))
        << "the ready fds were served over several iterations";
    for (int d : fds) ::close(d);
  }
  ::setrlimit(RLIMIT_NOFILE, &lim);
}

// Extra arguments are stored once and passed on every call: a level-triggered
// reader runs many times, so they must not be moved out on the first.
TEST_P(IoTest, ArgumentsArePassedToTheCallbackOnEveryCall) {
  QiEventLoop loop;
  Channel ch(Kind::kPipe);
  ch.send("abc");
  std::vector<std::string> tags;
  const std::string tag = "an argument longer than any small-string buffer";
  loop.add_reader(
      ch.in,
      [&](int fd, std::string t) {
        tags.push_back(t + ":" + Channel::receive_on(fd, 1));
        if (tags.size() == 3) loop.stop();
      },
      ch.in, tag);
  run(loop);
  EXPECT_EQ(tags, (std::vector<std::string>{tag + ":a", tag + ":b", tag + ":c"}));
}

// --- Bad input ---------------------------------------------------------------

// Calls add_reader and add_writer on the fd `bad_fd()` returns, from inside a
// running loop's callback, expecting std::invalid_argument that says `phrase`;
// then checks that nothing was left behind and that the loop keeps working.
// (The fd is made there, after the loop has opened its own fds.)
void expect_rejected_fd(Mode mode, const std::function<int()>& bad_fd, std::string_view phrase) {
  QiEventLoop loop;
  auto token = std::make_shared<int>(0);
  std::weak_ptr<int> captures = token;
  std::vector<std::string> messages;
  loop.call_soon([&] {
    const int fd = bad_fd();
    for (bool write : {false, true}) {
      try {
        if (write)
          loop.add_writer(fd, [token] {});
        else
          loop.add_reader(fd, [token] {});
        ADD_FAILURE() << "fd " << fd << " was accepted";
      } catch (const std::invalid_argument& e) {
        messages.push_back(e.what());
      }
    }
    token.reset();
    EXPECT_FALSE(loop.remove_reader(fd));
    EXPECT_FALSE(loop.remove_writer(fd));
    loop.call_soon([&] { loop.stop(); });
  });
  qt::run_until_stopped(loop, mode, kGuard);
  EXPECT_THAT(messages, testing::ElementsAre(HasSubstr(phrase), HasSubstr(phrase)));
  EXPECT_TRUE(captures.expired()) << "a rejected callback must be destroyed";
}

TEST_P(IoTest, AddReaderOnANegativeFdThrows) {
  expect_rejected_fd(mode(), [] { return -1; }, "negative");
}

TEST_P(IoTest, AddReaderOnAClosedFdThrows) {
  expect_rejected_fd(
      mode(),
      [] {
        Channel gone(Kind::kPipe);
        return gone.in;
      },
      "not an open file descriptor");
}

// epoll refuses regular files (they are always "ready"); the message says
// what to do instead.
TEST_P(IoTest, AddReaderOnARegularFileThrows) {
  char path[] = "/tmp/qiloop_io_test_XXXXXX";
  int fd = ::mkstemp(path);
  ASSERT_GE(fd, 0);
  ::unlink(path);
  expect_rejected_fd(mode(), [fd] { return fd; }, "cannot be polled");
  ::close(fd);
}

// A reader that answers through call_soon (as a task resumed by a stream
// read does) makes the peer's fd ready one iteration later, after that
// iteration's poll. The slice polls once more before it ends, so a ping-pong
// between two ends of a socketpair runs inside the slice instead of costing
// a Qt dispatcher turn (a poll and an epoll_wait) per leg.
TEST_P(IoTest, AnFdMadeReadyByADeferredCallbackIsServedInTheSameSlice) {
  constexpr int kRoundTrips = 200;
  const uint64_t slices = ping_pong_through_call_soon(2 * kRoundTrips).slices;
  // A slice ends early only on its time budget; one per leg is the bug.
  EXPECT_LT(slices, uint64_t{kRoundTrips} / 2) << "each leg waited for a Qt dispatcher turn";
}

// The iteration after a poll that found ready fds runs what their handlers
// scheduled without polling first (it would mostly find nothing): one poll
// per leg of a ping-pong, not two.
TEST_P(IoTest, TheIterationAfterAProductivePollDoesNotPoll) {
  constexpr int kLegs = 400;
  const uint64_t polls = ping_pong_through_call_soon(kLegs).io_polls;
  EXPECT_LE(polls, uint64_t{kLegs} + kLegs / 10) << "an empty poll before each answer";
}

// Skipping that poll never starves I/O: with an fd that stays ready and a
// call_soon chain that never ends, the reader still runs at least every
// other iteration.
TEST_P(IoTest, AnFdThatStaysReadyIsServedAtLeastEveryOtherIterationBesideACallSoonChain) {
  QiEventLoop loop;
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ASSERT_EQ(::write(fds[1], "x", 1), 1);  // never read: stays ready
  int reads = 0;
  int chain = 0;
  loop.add_reader(fds[0], [&] { ++reads; });
  std::function<void()> step = [&] {
    if (++chain == 200) return loop.stop();
    loop.call_soon(step);
  };
  loop.call_soon(step);
  run(loop);
  EXPECT_EQ(chain, 200);
  EXPECT_GE(reads, 99);
  loop.remove_reader(fds[0]);
  ::close(fds[0]);
  ::close(fds[1]);
}

INSTANTIATE_TEST_SUITE_P(Modes, IoTest, testing::Values(Mode::kNested, Mode::kAttached), qt::mode_name);

// A reader whose handle was cancelled (here through the exception handler's
// context, the only way to reach an fd handler's handle) is unregistered, as
// asyncio does: its fd stays readable, and serving nobody must not spin.
TEST(IoCancelledHandler, ACancelledReaderIsUnregisteredNotSpunOn) {
  QiEventLoop loop;
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ASSERT_EQ(::write(fds[1], "x", 1), 1);
  int calls = 0;
  loop.set_exception_handler([](QiEventLoop&, const qi::ExceptionContext& ctx) {
    if (ctx.handle) ctx.handle->cancel();
  });
  loop.add_reader(fds[0], [&] {
    ++calls;
    throw std::runtime_error("disable me");
  });
  uint64_t slices = 0;
  loop.call_later(50ms, [&] {
    slices = loop.stats().slices;
    loop.stop();
  });
  loop.run_forever();
  EXPECT_EQ(calls, 1);
  EXPECT_LT(slices, 20u) << "the loop spun on an fd nobody serves";
  EXPECT_FALSE(loop.remove_reader(fds[0])) << "the cancelled reader must be gone";
  ::close(fds[0]);
  ::close(fds[1]);
}

}  // namespace

// Reader and writer both raise and the exception handler cancels each; after
// the second it closes the fd while a dup keeps the file in the epoll set.
// The next poll unregisters both cancelled handlers at once: nothing is
// reported stale (the user disabled both), nothing crashes (unregistering
// one at a time found the closed fd while the other was still there), and
// the loop does not spin on the old file.
TEST_P(IoTest, BothHandlersCancelledAndTheirFdClosedAreUnregistered) {
  QiEventLoop loop;
  Channel ch(Kind::kSocketPair);
  int fd = ch.in;
  const int watched = fd;
  const int keep = ::fcntl(fd, F_DUPFD_CLOEXEC, 100);
  ASSERT_GE(keep, 0);
  std::vector<std::string> messages;
  loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& ctx) {
    messages.push_back(ctx.message);
    if (!ctx.handle) return;
    ctx.handle->cancel();
    if (messages.size() == 2) {
      ::close(fd);
      fd = -1;
    }
  });
  ch.send("readable");
  int calls = 0;
  loop.add_reader(watched, [&] {
    ++calls;
    throw std::runtime_error("reader failed");
  });
  loop.add_writer(watched, [&] {
    ++calls;
    throw std::runtime_error("writer failed");
  });
  SpinProbe spin;
  spin.arm(loop, [&] {
    EXPECT_FALSE(loop.remove_reader(watched));
    EXPECT_FALSE(loop.remove_writer(watched));
  });
  run(loop);
  EXPECT_EQ(calls, 2);
  EXPECT_THAT(messages, testing::ElementsAre(HasSubstr("Exception in callback"), HasSubstr("Exception in callback")));
  EXPECT_LT(spin.slices, 20u) << "the loop spun on the closed fd's file, still ready in the epoll set";
  ::close(keep);
}

// A closed fd's file, kept open by a dup and still ready, is left in the
// epoll set (removed only after closing): the selector rebuilds the set
// without it, which takes a new epoll fd. A process out of fds (a server at
// RLIMIT_NOFILE) must not make that fail and leave the loop spinning on the
// ever-ready epoll fd: the loop keeps a spare set for it.
TEST_P(IoTest, ALeftoverClosedFdDoesNotSpinTheLoopWhenTheProcessIsOutOfFds) {
  QiEventLoop loop;
  Channel ch(Kind::kSocketPair);
  ch.send("stays readable");
  loop.add_reader(ch.in, [] { ADD_FAILURE() << "the reader of a removed fd ran"; });
  const int keep = ::fcntl(ch.in, F_DUPFD_CLOEXEC, 100);
  ASSERT_GE(keep, 0);
  std::vector<int> filler;
  auto release_filler = [&filler] {
    for (int d : filler) ::close(d);
    filler.clear();
  };
  uint64_t slices_out_of_fds = 0;
  uint64_t slices_after = 0;
  loop.call_soon([&] {
    const int fd = ch.in;
    ch.close_in();
    EXPECT_TRUE(loop.remove_reader(fd));
    for (int d; (d = ::fcntl(keep, F_DUPFD_CLOEXEC, 0)) >= 0;) filler.push_back(d);
    const uint64_t start = loop.stats().slices;
    loop.call_later(50ms, [&, start] {
      slices_out_of_fds = loop.stats().slices - start;
      release_filler();
      const uint64_t later = loop.stats().slices;
      loop.call_later(30ms, [&, later] {
        slices_after = loop.stats().slices - later;
        loop.stop();
      });
    });
  });
  run(loop);
  release_filler();
  EXPECT_LT(slices_out_of_fds, 20u) << "the loop spun on the closed fd's file while no new fd could be opened";
  EXPECT_LT(slices_after, 20u);
  ::close(keep);
}
