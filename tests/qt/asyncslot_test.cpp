// qi::asyncslot: the eager first step inside emit, arguments as owned copies,
// the callable's lifetime, exceptions reported once, shutdown's cancellation
// unreported, no running loop, receiver-bound slots, another thread's emit.
#include <qiloop/qt/asyncslot.h>
#include <qiloop/sync/event.h>
#include <qiloop/structured/timeout.h>
#include <qiloop/testing.h>

#include <QtCore/QObject>
#include <QtCore/QString>
#include <QtCore/QThread>

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

class Emitter : public QObject {
  Q_OBJECT
 signals:
  void fired(int v);
  void two(const QString& s, int n);
  void none();
};

class Receiver : public QObject {
 public:
  std::vector<std::string>* log = nullptr;
  QObject* the_sender() const { return sender(); }
  qi::Coro<void> on_fired(int v) {
    // The cancel comes inside ~QObject, after ~Receiver: the catch block
    // must not touch the members, so it uses a copy.
    std::vector<std::string>* out = log;
    out->push_back("member " + std::to_string(v));
    try {
      co_await qi::sleep(1h);
    } catch (const qi::CancelledError&) {
      out->push_back("member cancelled");
      throw;
    }
  }
};

// Collects what reaches the exception handler.
struct Reports {
  std::vector<qi::ExceptionContext> got;
  explicit Reports(QiEventLoop& loop) {
    loop.set_exception_handler([this](QiEventLoop&, const qi::ExceptionContext& c) { got.push_back(c); });
  }
};

qi::Coro<void> wait_event(qi::Event& e) { co_await e.wait(); }

}  // namespace

QILOOP_TEST_MODES_VT(AsyncSlot, FirstStepRunsInsideEmitWithSenderValid) {
  Emitter e;
  Receiver receiver;
  std::vector<std::string> log;
  QObject* seen_sender = nullptr;
  QObject::connect(&e, &Emitter::fired, &receiver, qi::asyncslot([&](int v) -> qi::Coro<void> {
                     seen_sender = receiver.the_sender();
                     log.push_back("start " + std::to_string(v));
                     co_await qi::sleep(1s);
                     log.push_back("end " + std::to_string(v));
                   }));
  emit e.fired(7);
  log.push_back("emit returned");
  EXPECT_EQ(seen_sender, &e);
  co_await qi::sleep(2s);
  EXPECT_EQ(log, (std::vector<std::string>{"start 7", "emit returned", "end 7"}));
}

QILOOP_TEST_MODES_VT(AsyncSlot, ArgumentsAreCopiesOwnedByTheTaskAndExtraOnesAreDropped) {
  Emitter e;
  std::vector<std::string> log;
  // Takes a reference: it must name the task's copy, not the emitter's argument.
  QObject::connect(&e, &Emitter::two, qi::asyncslot([&](const QString& s) -> qi::Coro<void> {
                     co_await qi::sleep(1s);
                     log.push_back("one " + s.toStdString());
                   }));
  QObject::connect(&e, &Emitter::two, qi::asyncslot([&](QString s, int n) -> qi::Coro<void> {
                     co_await qi::sleep(1s);
                     log.push_back("two " + s.toStdString() + " " + std::to_string(n));
                   }));
  QObject::connect(&e, &Emitter::two, qi::asyncslot([&]() -> qi::Coro<void> {
                     log.push_back("none");
                     co_return;
                   }));
  {
    QString arg = QStringLiteral("first");
    emit e.two(arg, 3);
    arg = QStringLiteral("changed");  // after emit: the tasks hold their own copies
  }
  co_await qi::sleep(2s);
  EXPECT_EQ(log, (std::vector<std::string>{"none", "one first", "two first 3"}));
}

QILOOP_TEST_MODES_VT(AsyncSlot, TheTaskOwnsACopyOfTheCallableAndItsCaptures) {
  auto shared = std::make_shared<int>(5);
  std::string seen;
  {
    Emitter e;
    std::string text = "captured text";
    QObject::connect(&e, &Emitter::none, qi::asyncslot([shared, text, &seen]() -> qi::Coro<void> {
                       co_await qi::sleep(1s);
                       seen = text + " " + std::to_string(*shared);  // after the emitter and its connection went
                     }));
    emit e.none();
    EXPECT_EQ(shared.use_count(), 3);  // ours, the connection's slot, the task's copy
  }
  EXPECT_EQ(shared.use_count(), 2);  // the connection went with the emitter; the task still holds its copy
  co_await qi::sleep(2s);
  EXPECT_EQ(seen, "captured text 5");
  EXPECT_EQ(shared.use_count(), 1);  // the task's copy went with the task
}

QILOOP_TEST_MODES_VT(AsyncSlot, AnySlotReturnTypeIsAcceptedAndItsValueDropped) {
  Emitter e;
  int ran = 0;
  QObject::connect(&e, &Emitter::fired, qi::asyncslot([&](int v) -> qi::Coro<std::string> {
                     co_await qi::sleep(1s);
                     ran = v;
                     co_return "dropped";
                   }));
  emit e.fired(4);
  co_await qi::sleep(2s);
  EXPECT_EQ(ran, 4);
}

QILOOP_TEST_MODES_VT(AsyncSlot, AnEscapingExceptionIsReportedOnceWhenItHappens) {
  auto& loop = qi::get_running_loop();
  Reports reports(loop);
  Emitter e;
  QObject::connect(&e, &Emitter::fired, qi::asyncslot([](int v) -> qi::Coro<void> {
                     if (v == 0) throw std::out_of_range("eager");
                     co_await qi::sleep(1s);
                     throw std::out_of_range("later");
                   }));
  emit e.fired(0);
  // Inside emit, from the first step: already reported.
  QILOOP_CO_ASSERT(ASSERT_EQ(reports.got.size(), 1u));
  emit e.fired(1);
  EXPECT_EQ(reports.got.size(), 1u);
  co_await qi::sleep(1s);  // the slot's sleep ends at the same time as this one: it ran first
  QILOOP_CO_ASSERT(ASSERT_EQ(reports.got.size(), 2u));
  co_await qi::sleep(1h);
  EXPECT_EQ(reports.got.size(), 2u);  // once each, and none as "never retrieved"
  const char* whats[] = {"eager", "later"};
  for (std::size_t i = 0; i < 2; ++i) {
    try {
      std::rethrow_exception(reports.got[i].exception);
    } catch (const std::out_of_range& x) {
      EXPECT_STREQ(x.what(), whats[i]);
    }
    EXPECT_TRUE(reports.got[i].task);
    EXPECT_NE(reports.got[i].message.find("qi::asyncslot"), std::string::npos);
  }
}

QILOOP_TEST_MODES_VT(AsyncSlot, BoundToTheReceiverItsDestructionUnwindsTheTaskAtOnce) {
  Emitter e;
  std::vector<std::string> log;
  auto* receiver = new Receiver;
  receiver->log = &log;
  QObject::connect(&e, &Emitter::fired, receiver, qi::asyncslot(receiver, &Receiver::on_fired));
  emit e.fired(1);
  co_await qi::sleep(1s);
  delete receiver;
  log.push_back("deleted");
  EXPECT_EQ(log, (std::vector<std::string>{"member 1", "member cancelled", "deleted"}));
  emit e.fired(2);  // the connection went with its receiver
  co_await qi::sleep(1s);
  EXPECT_EQ(log.size(), 3u);
}

QILOOP_TEST_MODES_VT(AsyncSlot, ABoundSlotWhoseFirstStepDestroysTheReceiverIsCancelledWhereItSuspends) {
  Emitter e;
  std::vector<std::string> log;
  auto* receiver = new QObject;
  // Without the receiver as the connection's context: the slot outlives it.
  QObject::connect(&e, &Emitter::fired, qi::asyncslot(receiver, [&](int v) -> qi::Coro<void> {
                     log.push_back("start " + std::to_string(v));
                     delete receiver;
                     try {
                       co_await qi::sleep(1h);
                     } catch (const qi::CancelledError&) {
                       log.push_back("cancelled");
                       throw;
                     }
                     log.push_back("resumed");
                   }));
  emit e.fired(1);
  log.push_back("emit returned");
  emit e.fired(2);  // the receiver is gone: nothing runs
  EXPECT_EQ(log, (std::vector<std::string>{"start 1", "cancelled", "emit returned"}));
  co_return;
}

QILOOP_TEST_MODES_VT(AsyncSlot, ASlotCancelledByTheReceiverOrByShutdownIsNotReported) {
  auto& loop = qi::get_running_loop();
  Reports reports(loop);
  Emitter e;
  auto* receiver = new QObject;
  QObject::connect(&e, &Emitter::fired, receiver, qi::asyncslot(receiver, [](int) -> qi::Coro<void> {
                     co_await qi::sleep(1h);
                   }));
  emit e.fired(1);
  co_await qi::sleep(1s);
  delete receiver;
  co_await qi::sleep(1s);
  EXPECT_TRUE(reports.got.empty());
}

// Shutdown cancels a slot task left sleeping: nothing reaches the handler
// (qasync reports the CancelledError as a failure).
TEST(AsyncSlotShutdown, ASlotTaskCancelledByShutdownIsNotReported) {
  for (int how = 0; how < 2; ++how) {
    std::vector<std::string> log;
    Emitter e;
    QObject::connect(&e, &Emitter::none, qi::asyncslot([&]() -> qi::Coro<void> {
                       try {
                         co_await qi::sleep(1h);
                       } catch (const qi::CancelledError&) {
                         log.push_back("cancelled");
                         throw;
                       }
                     }));
    int reports = 0;
    auto body = [&]() -> qi::Coro<void> {
      qi::get_running_loop().set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext&) { ++reports; });
      emit e.none();
      co_return;
    };
    if (how == 0) {
      qi::run(body());
    } else {
      QiEventLoop loop;
      loop.run_until_complete(body());
      loop.shutdown();
    }
    EXPECT_EQ(log, (std::vector<std::string>{"cancelled"})) << how;
    EXPECT_EQ(reports, 0) << how;
  }
}

TEST(AsyncSlotShutdown, CalledWithNoRunningLoopThrowsNamingTheFix) {
  Emitter e;
  bool ran = false;
  QObject::connect(&e, &Emitter::none, qi::asyncslot([&]() -> qi::Coro<void> {
                     ran = true;
                     co_return;
                   }));
  try {
    emit e.none();
    ADD_FAILURE() << "no error";
  } catch (const qi::RuntimeError& x) {
    EXPECT_NE(std::string(x.what()).find("QiRunner"), std::string::npos) << x.what();
  }
  EXPECT_FALSE(ran);
}

TEST(AsyncSlotShutdown, ANullReceiverIsAValueError) {
  QObject* none = nullptr;
  try {
    (void)qi::asyncslot(none, []() -> qi::Coro<void> { co_return; });
    ADD_FAILURE() << "no error";
  } catch (const qi::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("qi::asyncslot: the guard QObject is null"), std::string::npos) << e.what();
  }
}

// The slot's task runs on the calling thread's loop: bound to a receiver of
// another thread, whose destruction would come from there, it is refused
// at the call, before any task exists.
QILOOP_TEST_VT(AsyncSlot, AReceiverOfAnotherThreadIsRefusedAtTheCall) {
  const std::size_t tasks_before = qi::all_tasks(qi::get_running_loop()).size();
  QThread other;
  QObject elsewhere;
  elsewhere.moveToThread(&other);
  bool ran = false;
  auto slot = qi::asyncslot(&elsewhere, [&]() -> qi::Coro<void> {
    ran = true;
    co_return;
  });
  try {
    slot();
    ADD_FAILURE() << "no error";
  } catch (const qi::RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("qi::asyncslot: the guard QObject lives in another thread"),
              std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(ran);
  EXPECT_EQ(qi::all_tasks(qi::get_running_loop()).size(), tasks_before);
  co_return;
}

// Real time: another thread emits; the slot's task runs on the receiver's
// (the loop's) thread.
QILOOP_TEST_MODES(AsyncSlot, AnEmissionFromAnotherThreadRunsTheSlotTaskOnTheReceiversThread) {
  Emitter e;
  QObject receiver;
  qi::Event done;
  QThread* ran_on = nullptr;
  int got = 0;
  QObject::connect(&e, &Emitter::fired, &receiver, qi::asyncslot([&](int v) -> qi::Coro<void> {
                     ran_on = QThread::currentThread();
                     co_await qi::sleep(1ms);
                     got = v;
                     done.set();
                   }));
  std::thread emitter([&] { emit e.fired(9); });
  emitter.join();
  co_await qi::wait_for(wait_event(done), 10s);
  EXPECT_EQ(ran_on, QThread::currentThread());
  EXPECT_EQ(got, 9);
}

#include "asyncslot_test.moc"

QILOOP_TEST_MODES_VT(AsyncSlot, ABoundSlotWhoseFirstStepDestroysTheReceiverAndEndsIsFine) {
  Reports reports(qi::get_running_loop());
  Emitter e;
  std::vector<std::string> log;
  auto* r1 = new QObject;
  QObject::connect(&e, &Emitter::fired, r1, qi::asyncslot(r1, [&](int v) -> qi::Coro<void> {
                     log.push_back("finish " + std::to_string(v));
                     delete r1;
                     co_return;
                   }));
  auto* r2 = new QObject;
  QObject::connect(&e, &Emitter::fired, r2, qi::asyncslot(r2, [&](int v) -> qi::Coro<void> {
                     log.push_back("throw " + std::to_string(v));
                     delete r2;
                     throw std::runtime_error("after delete");
                     co_return;
                   }));
  emit e.fired(1);
  emit e.fired(2);
  co_await qi::sleep(0);
  EXPECT_EQ(log, (std::vector<std::string>{"finish 1", "throw 1"}));
  EXPECT_EQ(reports.got.size(), 1u);
}

QILOOP_TEST_MODES_VT(AsyncSlot, ARecursiveEmitFromTheFirstStepNestsEagerSteps) {
  Emitter e;
  std::vector<std::string> log;
  QObject::connect(&e, &Emitter::fired, &e, qi::asyncslot([&](int v) -> qi::Coro<void> {
                     log.push_back("in " + std::to_string(v));
                     if (v < 3) emit e.fired(v + 1);
                     co_await qi::sleep(1s);
                     log.push_back("out " + std::to_string(v));
                   }));
  emit e.fired(1);
  EXPECT_EQ(log, (std::vector<std::string>{"in 1", "in 2", "in 3"}));
  co_await qi::sleep(2s);
  EXPECT_EQ(log.size(), 6u);
}

QILOOP_TEST_MODES_VT(AsyncSlot, RunsWhenEmittedFromALoopCallbackOrAQtEvent) {
  Emitter e;
  std::vector<std::string> log;
  QObject::connect(&e, &Emitter::fired, &e, qi::asyncslot([&](int v) -> qi::Coro<void> {
                     log.push_back("in " + std::to_string(v));
                     co_await qi::sleep(0);
                     log.push_back("out " + std::to_string(v));
                   }));
  qi::get_running_loop().call_soon([&] { emit e.fired(1); });
  QMetaObject::invokeMethod(&e, [&] { emit e.fired(2); }, Qt::QueuedConnection);
  co_await qi::sleep(100ms);
  std::sort(log.begin(), log.end());
  EXPECT_EQ(log, (std::vector<std::string>{"in 1", "in 2", "out 1", "out 2"}));
}
