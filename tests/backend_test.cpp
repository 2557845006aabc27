// The backend interface (qiloop/src/backend.h), against whichever backend
// this build has (QILOOP_BACKEND): fd readiness, the deadline never reported
// early, the doorbell rung from another thread, unwatch(), stale
// registrations, close(); then the cases only one backend has.
#include "backend.h"

#include "fd_channel.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <QtCore/QEventLoop>
#include <QtCore/QObject>
#include <QtCore/QTimer>

#include <chrono>
#include <stdexcept>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
using qi::detail::Backend;
using qi::detail::BackendClock;
using qi::detail::CallbackNode;
using qi::detail::FdDirection;
using qi::detail::ReadyQueue;
using qt::Channel;
using qt::Kind;
using testing::HasSubstr;

static_assert(qi::detail::LoopBackend<Backend>, "the configured backend keeps the interface");

namespace {

// The backend's owner: counts what the backend reports and ends a wait.
class Owner : public QObject {
 public:
  static void on_ready(QObject& owner) {
    auto& self = static_cast<Owner&>(owner);
    ++self.reports;
    if (self.waiting) self.waiting->quit();
  }
  // Runs Qt until the backend reports (true) or `limit` passes (false).
  bool wait_for_report(std::chrono::milliseconds limit = 2s) {
    const int before = reports;
    QEventLoop loop;
    waiting = &loop;
    QTimer::singleShot(limit, &loop, &QEventLoop::quit);
    if (reports == before) loop.exec();
    waiting = nullptr;
    return reports > before;
  }
  // Runs Qt for `time`; returns how many reports came meanwhile.
  int reports_during(std::chrono::milliseconds time) {
    const int before = reports;
    QEventLoop loop;
    QTimer::singleShot(time, &loop, &QEventLoop::quit);
    loop.exec();
    return reports - before;
  }
  int reports = 0;
  QEventLoop* waiting = nullptr;
};

// An fd handler as the loop makes one: the backend holds its one reference.
CallbackNode* handler() {
  CallbackNode* n = qi::detail::alloc_node(CallbackNode::kRepeating);
  n->refs.store(1, std::memory_order_relaxed);
  return n;
}

// Empties `ready` as the loop's run_node would: each handler leaves the
// queue and drops the queue's reference. Returns the handlers, in order.
std::vector<CallbackNode*> run_all(ReadyQueue& ready) {
  std::vector<CallbackNode*> ran;
  while (!ready.empty()) {
    CallbackNode* n = ready.pop();
    n->state.store(n->load_state() & ~CallbackNode::kQueued, std::memory_order_relaxed);
    ran.push_back(n);
    qi::detail::release_node(n);
  }
  return ran;
}

struct BackendTest : testing::Test {
  Owner owner;
  Backend backend{owner, &Owner::on_ready};
  ReadyQueue ready;

  ~BackendTest() override {
    for (CallbackNode* n : backend.close()) qi::detail::release_node(n);
  }
  // Polls and runs what was ready.
  std::vector<CallbackNode*> poll_and_run() {
    const int queued = backend.poll(ready);
    EXPECT_EQ(static_cast<std::size_t>(queued), ready.size());
    return run_all(ready);
  }
};

using Handlers = std::vector<CallbackNode*>;

// --- Readiness -----------------------------------------------------------------

TEST_F(BackendTest, AnFdThatBecomesReadyIsReportedAndPolledLevelTriggered) {
  Channel ch(Kind::kPipe);
  CallbackNode* reader = handler();
  EXPECT_EQ(backend.set_handler(ch.in, FdDirection::kRead, reader), nullptr);
  EXPECT_TRUE(backend.has_user_fds());
  backend.watch();
  EXPECT_EQ(poll_and_run(), Handlers{}) << "nothing is readable yet";
  QTimer::singleShot(5ms, [&] { ch.send("ab"); });
  ASSERT_TRUE(owner.wait_for_report()) << "the fd became readable: Qt must wake the loop";
  EXPECT_EQ(poll_and_run(), Handlers{reader});
  EXPECT_EQ(poll_and_run(), Handlers{reader}) << "still readable: every poll reports it";
  ch.receive();
  EXPECT_EQ(poll_and_run(), Handlers{}) << "drained";
  EXPECT_EQ(backend.take_handler(ch.in, FdDirection::kRead), reader);
  EXPECT_FALSE(backend.has_user_fds());
  qi::detail::release_node(reader);
}

TEST_F(BackendTest, ReaderAndWriterOfOneFdAreEachPolledForTheirDirection) {
  Channel ch(Kind::kSocketPair);
  CallbackNode* reader = handler();
  CallbackNode* writer = handler();
  backend.set_handler(ch.in, FdDirection::kRead, reader);
  backend.set_handler(ch.in, FdDirection::kWrite, writer);
  EXPECT_EQ(poll_and_run(), Handlers{writer}) << "writable, not readable";
  Channel::send_on(ch.out, "x");
  Handlers both = poll_and_run();
  EXPECT_THAT(both, testing::UnorderedElementsAre(reader, writer));
  CallbackNode* replacement = handler();
  EXPECT_EQ(backend.set_handler(ch.in, FdDirection::kRead, replacement), reader) << "the replaced one is returned";
  qi::detail::release_node(reader);
  EXPECT_EQ(backend.take_handler(ch.in, FdDirection::kWrite), writer);
  qi::detail::release_node(writer);
  EXPECT_EQ(poll_and_run(), Handlers{replacement});
}

// --- The deadline ----------------------------------------------------------------

TEST_F(BackendTest, TheDeadlineIsReportedAndNeverEarly) {
  backend.watch();
  for (auto offset : {300us, 1500us, 2700us}) {
    const auto when = BackendClock::now() + offset;
    EXPECT_TRUE(backend.arm_timer(when));
    EXPECT_FALSE(backend.arm_timer(when)) << "already armed for it";
    ASSERT_TRUE(owner.wait_for_report()) << "armed for " << offset.count() << " us";
    EXPECT_GE(BackendClock::now(), when) << "reported early, armed for " << offset.count() << " us";
    poll_and_run();
    backend.watch();
  }
}

TEST_F(BackendTest, OnlyTheLatestDeadlineCounts) {
  backend.watch();
  const auto start = BackendClock::now();
  backend.arm_timer(start + 1h);
  backend.arm_timer(start + 5ms);
  ASSERT_TRUE(owner.wait_for_report());
  EXPECT_LT(BackendClock::now() - start, 1s);
}

// --- The doorbell ----------------------------------------------------------------

TEST_F(BackendTest, TheDoorbellRungFromAnotherThreadIsReported) {
  for (int round = 0; round < 3; ++round) {
    backend.watch();
    std::thread ringer([&] {
      std::this_thread::sleep_for(5ms);
      backend.wake();
    });
    const bool reported = owner.wait_for_report();
    ringer.join();
    ASSERT_TRUE(reported) << "round " << round;
    poll_and_run();
  }
}

TEST_F(BackendTest, RingsFromManyThreadsAtOnceAreAllSafe) {
  backend.watch();
  std::vector<std::thread> ringers;
  for (int t = 0; t < 4; ++t)
    ringers.emplace_back([&] {
      for (int i = 0; i < 1000; ++i) backend.wake();
    });
  for (auto& t : ringers) t.join();
  EXPECT_TRUE(owner.wait_for_report());
}

// --- Quiet while unwatched ---------------------------------------------------------

// The loop unwatches when it cannot serve a report (not running, or a nested
// Qt loop inside one of its callbacks): a still-ready fd must not make Qt
// report again until watch().
TEST_F(BackendTest, AfterUnwatchAReadyFdIsReportedOnlyOnceWatchedAgain) {
  Channel ch(Kind::kPipe);
  CallbackNode* reader = handler();
  backend.set_handler(ch.in, FdDirection::kRead, reader);
  ch.send("stays readable");
  backend.watch();
  ASSERT_TRUE(owner.wait_for_report());
  backend.unwatch();
  EXPECT_LE(owner.reports_during(50ms), 1) << "reported again while unwatched";
  backend.watch();
  EXPECT_TRUE(owner.wait_for_report()) << "still ready: watched again, it is reported";
}

// --- Registrations -----------------------------------------------------------------

TEST_F(BackendTest, AStaleRegistrationIsDroppedNotMovedToTheFileThatReusesItsNumber) {
  auto old_ch = std::make_unique<Channel>(Kind::kPipe);
  const int number = old_ch->in;
  CallbackNode* stale_reader = handler();
  backend.set_handler(number, FdDirection::kRead, stale_reader);
  old_ch.reset();
  Channel ch(Kind::kPipe);
  ASSERT_EQ(ch.in, number) << "the kernel gives out the lowest free number";
  CallbackNode* reader = handler();
  EXPECT_EQ(backend.set_handler(ch.in, FdDirection::kRead, reader), nullptr) << "nothing replaced: it was stale";
  ASSERT_TRUE(backend.has_stale());
  std::vector<qi::detail::StaleRegistration> stale = backend.take_stale();
  ASSERT_EQ(stale.size(), 1u);
  EXPECT_EQ(stale[0].fd, number);
  EXPECT_EQ(stale[0].handlers.reader, stale_reader);
  EXPECT_EQ(stale[0].handlers.writer, nullptr);
  EXPECT_THAT(stale[0].message(), testing::AllOf(HasSubstr("fd " + std::to_string(number) + " "),
                                                 HasSubstr("remove_reader()"), HasSubstr("before closing")));
  qi::detail::release_node(stale_reader);
  ch.send("x");
  EXPECT_EQ(poll_and_run(), Handlers{reader});
}

TEST_F(BackendTest, FdsThatCannotBeWatchedAreRefusedWithTheFix) {
  CallbackNode* n = handler();
  int closed;
  {
    Channel gone(Kind::kPipe);
    closed = gone.in;
  }
  EXPECT_THAT([&] { backend.set_handler(-1, FdDirection::kRead, n); },
              testing::ThrowsMessage<std::invalid_argument>(HasSubstr("negative")));
  EXPECT_THAT([&] { backend.set_handler(closed, FdDirection::kRead, n); },
              testing::ThrowsMessage<std::invalid_argument>(HasSubstr("not an open file descriptor")));
  EXPECT_FALSE(backend.has_user_fds());
  qi::detail::release_node(n);
}

TEST_F(BackendTest, CloseReturnsEveryHandlerAndLaterRingsDoNothing) {
  Channel ch(Kind::kSocketPair);
  CallbackNode* reader = handler();
  CallbackNode* writer = handler();
  backend.set_handler(ch.in, FdDirection::kRead, reader);
  backend.set_handler(ch.out, FdDirection::kWrite, writer);
  backend.watch();
  std::vector<CallbackNode*> handlers = backend.close();
  EXPECT_THAT(handlers, testing::UnorderedElementsAre(reader, writer));
  for (CallbackNode* n : handlers) qi::detail::release_node(n);
  std::thread late([&] { backend.wake(); });
  late.join();
  EXPECT_TRUE(backend.close().empty()) << "closing twice returns nothing";
  EXPECT_EQ(owner.reports_during(20ms), 0);
}

// --- One backend's own cases -----------------------------------------------------

TEST_F(BackendTest, LinuxTheLoopsOwnFdsAreRefused) {
#if QILOOP_BACKEND_LINUX
  CallbackNode* n = handler();
  EXPECT_THAT([&] { backend.set_handler(backend.epoll_fd(), FdDirection::kRead, n); },
              testing::ThrowsMessage<std::invalid_argument>(HasSubstr("belongs to the event loop")));
  qi::detail::release_node(n);
#else
  GTEST_SKIP() << "the portable backend opens no fds of its own";
#endif
}

// A notifier that fired stays off until watch(): while the loop has not
// polled, Qt does not spin on a still-ready fd. (The linux backend's one
// notifier is level-triggered on the epoll fd; the loop's unwatch() is what
// quiets it, checked above.)
TEST_F(BackendTest, PortableANotifierThatFiredStaysOffUntilWatch) {
#if QILOOP_BACKEND_PORTABLE
  Channel ch(Kind::kPipe);
  backend.set_handler(ch.in, FdDirection::kRead, handler());
  ch.send("stays readable");
  backend.watch();
  ASSERT_TRUE(owner.wait_for_report());
  EXPECT_EQ(owner.reports_during(50ms), 0) << "Qt reported a fired notifier again before watch()";
  backend.watch();
  EXPECT_TRUE(owner.wait_for_report());
#else
  GTEST_SKIP() << "the linux backend's epoll notifier is level-triggered; unwatch() quiets it";
#endif
}

}  // namespace
