// qi::multisignal: the variant and its index, the first emission among the
// sources, no connection left behind, cancel disconnecting every source at
// once, a destroyed source, misuse, and an emission from another thread.
#include <qiloop/qt/multisignal.h>
#include <qiloop/testing.h>

#include "qt/signal_emitter.h"

#include <QtCore/QThread>

#include <memory>
#include <thread>

using namespace std::chrono_literals;

namespace {

// What co_await on an awaitable of type A yields (a co_await may not appear
// inside decltype).
template <class A>
using AwaitResult = decltype(std::declval<A>().operator co_await().await_resume());

qi::Coro<void> settle() {
  for (int i = 0; i < 3; ++i) co_await qi::sleep(0);
}

bool any_connected(const Emitter& e) {
  return e.connected(&Emitter::none) || e.connected(&Emitter::one) || e.connected(&Emitter::two) ||
         e.connected(&QObject::destroyed);
}

using Three = std::variant<std::monostate, int, std::tuple<QString, int>>;

qi::Coro<Three> first_of(Emitter& a, Emitter& b) {
  co_return co_await qi::multisignal(std::pair{&a, &Emitter::none}, std::pair{&b, &Emitter::one},
                                     std::pair{&b, &Emitter::two});
}

}  // namespace

QILOOP_TEST_MODES_VT(MultiSignal, YieldsTheVariantOfTheSourceThatFiredFirst) {
  Emitter a, b;
  static_assert(std::is_same_v<AwaitResult<decltype(qi::multisignal(std::pair{&a, &Emitter::none},
                                                                 std::pair{&b, &Emitter::one},
                                                                 std::pair{&b, &Emitter::two}))>,
                               Three>);
  auto t = qi::create_task(first_of(a, b));
  co_await settle();
  emit b.two(QStringLiteral("x"), 3);
  emit b.one(1);  // too late
  emit a.none();
  Three r = co_await t;
  EXPECT_EQ(r.index(), 2u);
  EXPECT_EQ(std::get<2>(r), std::tuple(QStringLiteral("x"), 3));
  EXPECT_FALSE(any_connected(a));
  EXPECT_FALSE(any_connected(b));

  auto t2 = qi::create_task(first_of(a, b));
  co_await settle();
  emit a.none();
  EXPECT_EQ((co_await t2).index(), 0u);
  EXPECT_FALSE(any_connected(a));
  EXPECT_FALSE(any_connected(b));
}

QILOOP_TEST_MODES_VT(MultiSignal, SameTypeSourcesStayApart) {
  Emitter a, b;
  auto t = qi::create_task([](Emitter& a, Emitter& b) -> qi::Coro<std::variant<int, int>> {
    co_return co_await qi::multisignal(std::pair{&a, &Emitter::one}, std::pair{&b, &Emitter::one});
  }(a, b));
  co_await settle();
  emit b.one(9);
  auto r = co_await t;
  EXPECT_EQ(r.index(), 1u);
  EXPECT_EQ(std::get<1>(r), 9);
}

QILOOP_TEST_MODES_VT(MultiSignal, CancelDisconnectsEverySourceBeforeCancelReturns) {
  Emitter a, b;
  auto t = qi::create_task(first_of(a, b));
  co_await settle();
  EXPECT_TRUE(a.connected(&Emitter::none));
  EXPECT_TRUE(b.connected(&Emitter::two));
  t.cancel();
  EXPECT_FALSE(any_connected(a));
  EXPECT_FALSE(any_connected(b));
  emit b.one(1);
  bool cancelled = false;
  try {
    (void)co_await t;
  } catch (const qi::CancelledError&) {
    cancelled = true;
  }
  EXPECT_TRUE(cancelled);
}

QILOOP_TEST_MODES_VT(MultiSignal, DestroyedSourceEndsTheWaitWithSignalSourceDestroyed) {
  Emitter a;
  auto b = std::make_unique<Emitter>();
  auto t = qi::create_task(first_of(a, *b));
  co_await settle();
  b.reset();
  bool destroyed = false;
  try {
    (void)co_await t;
  } catch (const qi::SignalSourceDestroyed&) {
    destroyed = true;
  }
  EXPECT_TRUE(destroyed);
  EXPECT_FALSE(any_connected(a));
}

// One source's connection cut by someone else's disconnect: the wait ends
// with SignalSourceDestroyed and the other sources are disconnected.
QILOOP_TEST_MODES_VT(MultiSignal, OneSourceCutByAForeignDisconnectEndsTheWait) {
  Emitter a;
  Emitter b;
  auto t = qi::create_task(first_of(a, b));
  co_await settle();
  QObject::disconnect(&b, &Emitter::two, nullptr, nullptr);
  EXPECT_THROW((void)co_await t, qi::SignalSourceDestroyed);
  EXPECT_FALSE(any_connected(a));
  EXPECT_FALSE(any_connected(b));
}

QILOOP_TEST_MODES_VT(MultiSignal, MisuseIsAClearError) {
  Emitter a;
  Emitter* null = nullptr;
  std::string msg;
  try {
    (void)qi::multisignal(std::pair{&a, &Emitter::none}, std::pair{null, &Emitter::one});
  } catch (const std::invalid_argument& err) {
    msg = err.what();
  }
  EXPECT_NE(msg.find("sender is null"), std::string::npos) << msg;

  auto m = qi::multisignal(std::pair{&a, &Emitter::one});
  auto t = qi::create_task([](decltype(m)& m) -> qi::Coro<void> { (void)co_await m; }(m));
  co_await settle();
  emit a.one(1);
  co_await t;
  msg.clear();
  try {
    (void)co_await m;
  } catch (const qi::RuntimeError& err) {
    msg = err.what();
  }
  EXPECT_NE(msg.find("already awaited"), std::string::npos) << msg;
}

QILOOP_TEST_MODES(MultiSignalThreads, EmissionFromAnotherThreadResumesOnTheLoopThread) {
  Emitter a, b;
  auto* loop_thread = QThread::currentThread();
  auto t = qi::create_task([](Emitter& a, Emitter& b) -> qi::Coro<std::pair<std::size_t, QThread*>> {
    Three r = co_await first_of(a, b);
    co_return std::pair(r.index(), QThread::currentThread());
  }(a, b));
  co_await settle();
  std::thread emitter([&b] { emit b.one(5); });
  auto [index, thread] = co_await t;
  emitter.join();
  EXPECT_EQ(index, 1u);
  EXPECT_EQ(thread, loop_thread);
  EXPECT_FALSE(any_connected(a));
  EXPECT_FALSE(any_connected(b));
}
