// qi::signal_stream: every emission in order, buffering from creation, the
// bounded buffer's drop-oldest policy, the end after the sender's
// destruction, disconnect on destruction, cancel-safety of next(), no
// suspension when an item is ready, and emissions from another thread
// arriving in order on the loop's thread.
#include <qiloop/qt/signal_stream.h>
#include <qiloop/structured/timeout.h>
#include <qiloop/testing.h>

#include "qt/signal_emitter.h"

#include <QtCore/QThread>

#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

QILOOP_TEST_MODES_VT(SignalStream, ItemTypesAreMonostateValueOrTuple) {
  Emitter e;
  static_assert(std::is_same_v<decltype(qi::signal_stream(&e, &Emitter::none)), qi::SignalStream<std::monostate>>);
  static_assert(std::is_same_v<decltype(qi::signal_stream(&e, &Emitter::text)), qi::SignalStream<QString>>);
  static_assert(std::is_same_v<decltype(qi::signal_stream(&e, &Emitter::privateOne)), qi::SignalStream<int>>);
  auto three = qi::signal_stream(&e, &Emitter::three);
  static_assert(std::is_same_v<decltype(three), qi::SignalStream<std::tuple<std::string, QVariant, double>>>);
  emit e.three("a", QVariant(1), 0.5);
  auto item = co_await three.next();
  QILOOP_CO_ASSERT(ASSERT_TRUE(item.has_value()));
  EXPECT_EQ(std::get<0>(*item), "a");
  EXPECT_EQ(std::get<1>(*item).toInt(), 1);
  EXPECT_EQ(std::get<2>(*item), 0.5);
}

QILOOP_TEST_MODES_VT(SignalStream, BuffersFromCreationAndDeliversInOrderWithoutSuspending) {
  Emitter e;
  auto s = qi::signal_stream(&e, &Emitter::text);
  EXPECT_TRUE(e.connected(&Emitter::text));
  for (int i = 0; i < 5; ++i) emit e.text(QString::number(i));
  EXPECT_EQ(s.size(), 5u);
  bool other_ran = false;
  auto other = qi::create_task([](bool& ran) -> qi::Coro<void> {
    ran = true;
    co_return;
  }(other_ran));
  for (int i = 0; i < 5; ++i) EXPECT_EQ(co_await s.next(), std::optional(QString::number(i)));
  EXPECT_FALSE(other_ran);  // ready items: no trip through the loop
  co_await other;
}

QILOOP_TEST_MODES_VT(SignalStream, WaitsForTheNextEmission) {
  Emitter e;
  auto s = qi::signal_stream(&e, &Emitter::one);
  auto reader = qi::create_task([](qi::SignalStream<int>& s) -> qi::Coro<std::vector<int>> {
    std::vector<int> got;
    while (got.size() < 3) got.push_back(*co_await s.next());
    co_return got;
  }(s));
  for (int i = 0; i < 3; ++i) {
    co_await qi::sleep(1s);
    emit e.one(i);
  }
  std::vector<int> got = co_await reader;
  QILOOP_CO_ASSERT(ASSERT_EQ(got.size(), 3u));
  for (int i = 0; i < 3; ++i) EXPECT_EQ(got[i], i);
}

QILOOP_TEST_MODES_VT(SignalStream, OverflowDropsTheOldestAndCountsIt) {
  Emitter e;
  auto s = qi::signal_stream(&e, &Emitter::one, 3);
  EXPECT_EQ(s.capacity(), 3u);
  for (int i = 0; i < 5; ++i) emit e.one(i);
  EXPECT_EQ(s.size(), 3u);
  EXPECT_EQ(s.dropped(), 2u);
  EXPECT_EQ(co_await s.next(), std::optional(2));
  EXPECT_EQ(co_await s.next(), std::optional(3));
  EXPECT_EQ(co_await s.next(), std::optional(4));
  EXPECT_EQ(s.dropped(), 2u);
  std::string msg;
  try {
    (void)qi::signal_stream(&e, &Emitter::one, 0);
  } catch (const std::invalid_argument& err) {
    msg = err.what();
  }
  EXPECT_NE(msg.find("capacity is 0"), std::string::npos) << msg;
}

QILOOP_TEST_MODES_VT(SignalStream, DestroyedSenderDeliversTheBufferThenNullopt) {
  auto e = std::make_unique<Emitter>();
  auto s = qi::signal_stream(e.get(), &Emitter::one);
  emit e->one(1);
  emit e->one(2);
  e.reset();
  EXPECT_FALSE(s.ended());
  EXPECT_EQ(co_await s.next(), std::optional(1));
  EXPECT_EQ(co_await s.next(), std::optional(2));
  EXPECT_TRUE(s.ended());
  EXPECT_EQ(co_await s.next(), std::nullopt);
  EXPECT_EQ(co_await s.next(), std::nullopt);

  // A reader waiting when the sender goes gets std::nullopt.
  auto e2 = std::make_unique<Emitter>();
  auto s2 = qi::signal_stream(e2.get(), &Emitter::one);
  auto reader = qi::create_task([](qi::SignalStream<int>& s) -> qi::Coro<std::optional<int>> { co_return co_await s.next(); }(s2));
  co_await qi::sleep(1s);
  e2.reset();
  EXPECT_EQ(co_await reader, std::nullopt);
}

// Someone else's QObject::disconnect naming no receiver ends the stream as
// the sender's destruction does: what was buffered, then std::nullopt (not a
// reader waiting forever).
QILOOP_TEST_MODES_VT(SignalStream, ConnectionCutByAForeignDisconnectEndsTheStream) {
  Emitter e;
  auto s = qi::signal_stream(&e, &Emitter::one);
  emit e.one(1);
  auto reader = qi::create_task([](qi::SignalStream<int>& s) -> qi::Coro<std::vector<int>> {
    std::vector<int> got;
    while (auto v = co_await s.next()) got.push_back(*v);
    co_return got;
  }(s));
  co_await qi::sleep(1s);
  QObject::disconnect(&e, nullptr, nullptr, nullptr);
  emit e.one(2);  // reaches nothing now
  const std::vector<int> got = co_await reader;
  EXPECT_EQ(got, std::vector<int>{1});
  EXPECT_TRUE(s.ended());
}

QILOOP_TEST_MODES_VT(SignalStream, DestroyingTheStreamDisconnects) {
  Emitter e;
  {
    auto s = qi::signal_stream(&e, &Emitter::one);
    EXPECT_TRUE(e.connected(&Emitter::one));
    emit e.one(1);
    auto moved = std::move(s);
    EXPECT_EQ(co_await s.next(), std::nullopt);  // NOLINT(bugprone-use-after-move): empty
    EXPECT_EQ(co_await moved.next(), std::optional(1));
  }
  EXPECT_FALSE(e.connected(&Emitter::one));
  EXPECT_FALSE(e.connected(&QObject::destroyed));

  // A reader still waiting when the stream goes gets std::nullopt.
  auto s = std::make_unique<qi::SignalStream<int>>(qi::signal_stream(&e, &Emitter::one));
  auto reader = qi::create_task([](qi::SignalStream<int>& s) -> qi::Coro<std::optional<int>> { co_return co_await s.next(); }(*s));
  co_await qi::sleep(1s);
  s.reset();
  EXPECT_EQ(co_await reader, std::nullopt);
}

QILOOP_TEST_MODES_VT(SignalStream, CancellingAWaitingReaderLosesNoEmission) {
  Emitter e;
  auto s = qi::signal_stream(&e, &Emitter::one);
  auto reader = [](qi::SignalStream<int>& s) -> qi::Coro<std::optional<int>> { co_return co_await s.next(); };
  // Cancelled while waiting, nothing buffered.
  auto t1 = qi::create_task(reader(s));
  co_await qi::sleep(1s);
  t1.cancel();
  bool cancelled = false;
  try {
    (void)co_await t1;
  } catch (const qi::CancelledError&) {
    cancelled = true;
  }
  EXPECT_TRUE(cancelled);
  // Cancelled after an emission woke it, before it ran: the item stays.
  auto t2 = qi::create_task(reader(s));
  co_await qi::sleep(1s);
  emit e.one(7);
  t2.cancel();
  cancelled = false;
  try {
    (void)co_await t2;
  } catch (const qi::CancelledError&) {
    cancelled = true;
  }
  EXPECT_TRUE(cancelled);
  EXPECT_EQ(s.size(), 1u);
  EXPECT_EQ(co_await s.next(), std::optional(7));
}

// A read with a deadline, as a read loop that must notice silence writes
// it: qi::timeout keeps next() in its frame; the timeout's cancel leaves
// nothing taken, and the next read gets the item emitted after it.
QILOOP_TEST_MODES_VT(SignalStream, NextUnderATimeoutExpiresAndLosesNothing) {
  Emitter e;
  auto s = qi::signal_stream(&e, &Emitter::one);
  emit e.one(1);
  EXPECT_EQ(co_await qi::timeout(1s, s.next()), std::optional(1));  // buffered
  const auto t0 = qi::get_running_loop().time();
  bool timed_out = false;
  try {
    (void)co_await qi::timeout(2s, s.next());
  } catch (const qi::TimeoutError&) {
    timed_out = true;
  }
  EXPECT_TRUE(timed_out);
  EXPECT_EQ(qi::get_running_loop().time() - t0, 2s);
  qi::get_running_loop().call_later(500ms, [&e] { emit e.one(2); });
  EXPECT_EQ(co_await qi::timeout(1s, s.next()), std::optional(2));
  EXPECT_EQ(s.size(), 0u);
}

QILOOP_TEST_MODES_VT(SignalStream, OneReaderAtATime) {
  Emitter e;
  auto s = qi::signal_stream(&e, &Emitter::one);
  auto first = qi::create_task([](qi::SignalStream<int>& s) -> qi::Coro<std::optional<int>> { co_return co_await s.next(); }(s));
  co_await qi::sleep(1s);
  std::string msg;
  try {
    (void)co_await s.next();
  } catch (const qi::RuntimeError& err) {
    msg = err.what();
  }
  EXPECT_NE(msg.find("already waiting"), std::string::npos) << msg;
  emit e.one(1);
  EXPECT_EQ(co_await first, std::optional(1));
}

QILOOP_TEST_MODES_VT(SignalStream, SteadyStateKeepsTheRingAtItsWorkingSize) {
  // 100,000 emissions through a stream with a reader keeping up: in order,
  // nothing dropped.
  Emitter e;
  auto s = qi::signal_stream(&e, &Emitter::one, 64);
  constexpr int kCount = 100000;
  auto reader = qi::create_task([](qi::SignalStream<int>& s) -> qi::Coro<bool> {
    for (int i = 0; i < kCount; ++i)
      if (co_await s.next() != std::optional(i)) co_return false;
    co_return true;
  }(s));
  for (int i = 0; i < kCount; i += 32) {
    for (int j = i; j < i + 32 && j < kCount; ++j) emit e.one(j);
    co_await qi::sleep(0);
  }
  EXPECT_TRUE(co_await reader);
  EXPECT_EQ(s.dropped(), 0u);
}

// --- Other threads (real time) ----------------------------------------------------

QILOOP_TEST_MODES(SignalStreamThreads, CrossThreadEmissionsArriveInOrderOnTheLoopThread) {
  Emitter e;
  constexpr int kCount = 20000;
  auto s = qi::signal_stream(&e, &Emitter::one, kCount);
  auto* loop_thread = QThread::currentThread();
  auto reader = qi::create_task([](qi::SignalStream<int>& s, QThread* loop_thread) -> qi::Coro<int> {
    int n = 0;
    for (; n < kCount; ++n) {
      std::optional<int> v = co_await s.next();
      if (v != std::optional(n) || QThread::currentThread() != loop_thread) break;
    }
    co_return n;
  }(s, loop_thread));
  co_await qi::sleep(0);
  std::thread emitter([&e] {
    for (int i = 0; i < kCount; ++i) emit e.one(i);
  });
  EXPECT_EQ(co_await reader, kCount);
  emitter.join();
  EXPECT_EQ(s.dropped(), 0u);
}

// A wake-up posted by another thread's emission for a reader that was
// cancelled meanwhile must not wake the next wait of the stream: here it
// reaches the loop after a new reader took that emission's item and waits
// again, with nothing buffered. Woken, that reader took the empty buffer for
// the end of the stream (std::nullopt) — a read loop with a timeout
// (qi::wait_for around next()) stopped as if the sender were gone.
QILOOP_TEST_MODES(SignalStreamThreads, AStaleCrossThreadWakeupDoesNotEndTheNextWait) {
  Emitter e;
  auto s = qi::signal_stream(&e, &Emitter::one);
  auto reader = [](qi::SignalStream<int>& s) -> qi::Coro<std::optional<int>> { co_return co_await s.next(); };
  auto reads_two = [](qi::SignalStream<int>& s) -> qi::Coro<std::optional<int>> {
    EXPECT_EQ(co_await s.next(), std::optional(1));  // buffered: no wait
    co_return co_await s.next();                     // waits: nothing buffered
  };
  auto t1 = qi::create_task(reader(s));
  co_await qi::sleep(0);  // t1 waits
  t1.cancel();
  auto t2 = qi::create_task(reads_two(s));
  // Still t1's wait (its task has not run since the cancel): the emission
  // posts the wake-up, behind t1's and t2's steps.
  std::thread([&e] { emit e.one(1); }).join();
  bool cancelled = false;
  try {
    (void)co_await t1;
  } catch (const qi::CancelledError&) {
    cancelled = true;
  }
  EXPECT_TRUE(cancelled);
  for (int i = 0; i < 5 && !t2.done(); ++i) co_await qi::sleep(0);
  EXPECT_FALSE(t2.done()) << "the second wait ended with nothing buffered";
  emit e.one(2);
  EXPECT_EQ(co_await t2, std::optional(2));
}

QILOOP_TEST_MODES(SignalStreamThreads, SenderLivingInAnotherThreadEndsTheStreamWhenDestroyed) {
  std::atomic<Emitter*> created{nullptr};
  std::atomic<bool> go{false};
  std::thread owner([&] {
    Emitter e;  // lives in this thread, and is destroyed there
    created = &e;
    while (!go.load()) std::this_thread::yield();
    for (int i = 0; i < 100; ++i) emit e.one(i);
  });
  while (!created.load()) co_await qi::sleep(1ms);
  auto s = qi::signal_stream(created.load(), &Emitter::one);
  go = true;
  int n = 0;
  while (std::optional<int> v = co_await s.next()) EXPECT_EQ(*v, n++);
  owner.join();
  EXPECT_EQ(n, 100);
}

QILOOP_TEST_MODES(SignalStreamThreads, StreamDestroyedWhileAnotherThreadEmits) {
  if (kQtRacesInvisibleToTsan) co_return;  // see signal_emitter.h
  Emitter e;
  std::atomic<bool> stop{false};
  std::thread emitter([&] {
    int i = 0;
    while (!stop.load()) emit e.one(i++);
  });
  for (int round = 0; round < 100; ++round) {
    auto s = qi::signal_stream(&e, &Emitter::one, 16);
    (void)co_await s.next();
  }
  stop = true;
  emitter.join();
  EXPECT_FALSE(e.connected(&Emitter::one));
}

namespace {
qi::Coro<void> settle_steps() {
  for (int i = 0; i < 3; ++i) co_await qi::sleep(0);
}
template <class T>
qi::Coro<std::optional<T>> next_of(qi::SignalStream<T>& s) {
  co_return co_await s.next();
}
}  // namespace

QILOOP_TEST_MODES_VT(SignalStream, CapacityOneKeepsTheLatestAndHugeCapacityGrowsAsNeeded) {
  Emitter e;
  auto s1 = qi::signal_stream(&e, &Emitter::one, 1);
  auto smax = qi::signal_stream(&e, &Emitter::one, SIZE_MAX);
  for (int i = 0; i < 100; ++i) emit e.one(i);
  EXPECT_EQ(s1.size(), 1u);
  EXPECT_EQ(s1.dropped(), 99u);
  EXPECT_EQ(*co_await s1.next(), 99);
  EXPECT_EQ(smax.size(), 100u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(*co_await smax.next(), i);
}

QILOOP_TEST_MODES_VT(SignalStream, SenderDeletedInsideItsOwnEmitDeliversThatItemThenEnds) {
  auto* e = new Emitter;
  auto s = qi::signal_stream(e, &Emitter::one);
  QObject::connect(e, &Emitter::one, e, [e](int) { delete e; });
  auto t = qi::create_task([](qi::SignalStream<int>& s) -> qi::Coro<int> {
    int n = 0;
    while (auto v = co_await s.next()) n += *v;
    co_return n;
  }(s));
  co_await settle_steps();
  emit e->one(5);
  EXPECT_EQ(co_await t, 5);
}

// A copy of the arguments that threw inside emit escaped into Qt's emit
// (undefined behaviour for Qt: the emitter's other slots skipped) and the
// item vanished uncounted. Now emit does not throw, the item is counted as
// dropped and the next next() throws the exception; the stream goes on.
QILOOP_TEST_MODES_VT(SignalStream, ThrowingArgumentCopyIsCountedAndThrownByNext) {
  Emitter e;
  auto s = qi::signal_stream(&e, &Emitter::copyThrows);
  emit e.copyThrows(CopyThrows(1));
  CopyThrows::fail_copies = true;
  bool emit_threw = false;
  try {
    emit e.copyThrows(CopyThrows(2));
  } catch (...) {
    emit_threw = true;
  }
  CopyThrows::fail_copies = false;
  EXPECT_FALSE(emit_threw);
  EXPECT_EQ(s.dropped(), 1u);
  EXPECT_FALSE(s.ended());
  bool next_threw = false;
  try {
    (void)co_await s.next();
  } catch (const std::runtime_error&) {
    next_threw = true;
  }
  EXPECT_TRUE(next_threw);
  EXPECT_EQ((*co_await s.next()).v, 1);
  // A waiting reader is woken by the failure, too.
  auto t = qi::create_task([](qi::SignalStream<CopyThrows>& s) -> qi::Coro<int> {
    try {
      (void)co_await s.next();
    } catch (const std::runtime_error&) {
      co_return -1;
    }
    co_return 0;
  }(s));
  co_await settle_steps();
  CopyThrows::fail_copies = true;
  emit e.copyThrows(CopyThrows(3));
  CopyThrows::fail_copies = false;
  EXPECT_EQ(co_await t, -1);
  emit e.copyThrows(CopyThrows(4));
  EXPECT_EQ((*co_await s.next()).v, 4);
}

QILOOP_TEST_MODES(SignalStreamThreads, HundredThousandEmissionsFromFourThreadsKeepPerThreadOrder) {
  Emitter e;
  auto s = qi::signal_stream(&e, &Emitter::two, SIZE_MAX);
  std::vector<std::thread> ts;
  for (int k = 0; k < 4; ++k)
    ts.emplace_back([&e, k] {
      const QString name = QString::number(k);
      for (int i = 0; i < 25000; ++i) emit e.two(name, i);
    });
  int last[4] = {-1, -1, -1, -1};
  int n = 0;
  bool ordered = true;
  while (n < 100000) {
    auto v = co_await qi::wait_for(next_of(s), 10s);
    if (!v) break;
    int k = std::get<0>(*v).toInt();
    ordered = ordered && std::get<1>(*v) == last[k] + 1;
    last[k] = std::get<1>(*v);
    ++n;
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(n, 100000);
  EXPECT_TRUE(ordered);
  EXPECT_EQ(s.dropped(), 0u);
}

// A stream read under one loop, then under another on the same thread (an
// app calling qi::run twice): the stream stayed bound to the first loop, and
// an emission from another thread posted its wake-up to that destroyed loop
// (use after free). The stream now binds to the loop of each wait.
TEST(SignalStreamLoops, ReadUnderTwoLoopsInTurnWithEmissionsFromAnotherThread) {
  Emitter e;
  auto s = qi::signal_stream(&e, &Emitter::one);
  auto read_one = [&]() -> qi::Coro<int> {
    std::thread t([&e] {
      std::this_thread::sleep_for(20ms);
      emit e.one(1);
    });
    auto v = co_await qi::wait_for(next_of(s), 5s);
    t.join();
    co_return v ? *v : -1;
  };
  {
    QiEventLoop loop1;
    EXPECT_EQ(loop1.run_until_complete(read_one()), 1);
    loop1.shutdown();
  }
  {
    QiEventLoop loop2;
    EXPECT_EQ(loop2.run_until_complete(read_one()), 1);
    loop2.shutdown();
  }
}

// A null sender is refused at the call, naming the call and the fix, before
// anything is connected or allocated (LeakSanitizer would see a buffer).
// A plain member function with a signal's shape compiles (Qt checks at run
// time): Qt refuses it, and the call says why instead of returning a stream
// that never receives anything.
QILOOP_TEST_MODES_VT(SignalStream, AMemberFunctionThatIsNotASignalIsRefusedAtTheCall) {
  Emitter e;
  std::string msg;
  try {
    (void)qi::signal_stream(&e, &Emitter::emit_private);
  } catch (const qi::RuntimeError& err) {
    msg = err.what();
  }
  EXPECT_NE(msg.find("qi::signal_stream"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Qt refused the connection: the member function is not a signal of the sender's class"),
            std::string::npos)
      << msg;
  co_await qi::sleep(0);  // the loop goes on
}

TEST(SignalStream, ANullSenderIsRefusedAtTheCall) {
  Emitter* none = nullptr;
  std::string msg;
  try {
    (void)qi::signal_stream(none, &Emitter::one);
  } catch (const std::invalid_argument& err) {
    msg = err.what();
  }
  EXPECT_NE(msg.find("qi::signal_stream: the sender is null"), std::string::npos) << msg;
  EXPECT_NE(msg.find("pass a pointer to a living QObject"), std::string::npos) << msg;
}
