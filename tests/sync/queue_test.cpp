// qi::Queue, qi::PriorityQueue, qi::LifoQueue: asyncio 3.13's queues rule
// for rule — orders, waiting and FIFO wake-up, cancellation at every waiting
// point (also right after a wake-up), task_done / join, shutdown, move-only
// items, no allocation on the fast path.
//
// The expected event orders come from the asyncio programs quoted above the
// tests. Python 3.11 runs them with 3.13's Queue (queues.py of 3.13: the
// waiting loops are unchanged since 3.10, shutdown is new) pasted in.
#include <qiloop/sync/queue.h>
#include <qiloop/testing.h>

#include "alloc_count.h"
#include "sync/sync_test_util.h"

#include <cstdlib>
#include <functional>
#include <memory>
#include <new>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;
using Strings = std::vector<std::string>;


namespace {

// asyncio: `log.append(f"{name} got {await q.get()}")`, logging a cancel or a shut-down.
template <class Q>
qi::Coro<void> getter(Q& q, std::string name, Strings& log) {
  try {
    auto item = co_await q.get();
    log.push_back(name + " got " + std::to_string(item));
  } catch (const qi::CancelledError&) {
    log.push_back(name + " cancelled");
    throw;
  } catch (const qi::QueueShutDown&) {
    log.push_back(name + " shut down");
  }
}

template <class Q>
qi::Coro<void> putter(Q& q, std::string name, int item, Strings& log) {
  try {
    co_await q.put(item);
    log.push_back(name + " put " + std::to_string(item));
  } catch (const qi::CancelledError&) {
    log.push_back(name + " cancelled");
    throw;
  } catch (const qi::QueueShutDown&) {
    log.push_back(name + " shut down");
  }
}

// Awaits a task that may end cancelled (asyncio: gather(..., return_exceptions=True)).
qi::Coro<void> settle(qi::Task<void> t) {
  try {
    co_await t;
  } catch (const qi::CancelledError&) {
  }
}

// An item whose destruction is counted.
struct Tracked {
  int value;
  int* destroyed;
  Tracked(int v, int* d) : value(v), destroyed(d) {}
  Tracked(Tracked&& o) noexcept : value(o.value), destroyed(std::exchange(o.destroyed, nullptr)) {}
  Tracked& operator=(Tracked&&) = delete;
  ~Tracked() {
    if (destroyed) ++*destroyed;
  }
};

}  // namespace

// --- Without a loop -------------------------------------------------------------

TEST(Queue, WorksWithoutALoopThroughTheNowaitCalls) {
  qi::Queue<int> q(2);  // constructed before any loop runs
  EXPECT_EQ(q.maxsize(), 2u);
  EXPECT_TRUE(q.empty());
  EXPECT_FALSE(q.full());
  q.put_nowait(1);
  q.put_nowait(2);
  EXPECT_EQ(q.qsize(), 2u);
  EXPECT_TRUE(q.full());
  try {
    q.put_nowait(3);
    ADD_FAILURE() << "no QueueFull";
  } catch (const qi::QueueFull& e) {
    EXPECT_NE(std::string(e.what()).find("qi::Queue::put_nowait: the queue is full (maxsize 2)"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(q.get_nowait(), 1);
  EXPECT_EQ(q.get_nowait(), 2);
  EXPECT_THROW(q.get_nowait(), qi::QueueEmpty);
  q.task_done();
  q.task_done();
  try {
    q.task_done();
    ADD_FAILURE() << "no ValueError";
  } catch (const qi::ValueError& e) {
    EXPECT_NE(std::string(e.what()).find("qi::Queue::task_done() called too many times"), std::string::npos)
        << e.what();
  }
}

TEST(Queue, ZeroMaxsizeIsUnbounded) {
  qi::Queue<int> q;
  for (int i = 0; i < 1000; ++i) q.put_nowait(i);
  EXPECT_FALSE(q.full());
  EXPECT_EQ(q.maxsize(), 0u);
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(q.get_nowait(), i);  // across the ring's growth
}

TEST(Queue, TheRingKeepsFifoOrderWhenItGrowsWrapped) {
  qi::Queue<std::unique_ptr<int>> q;
  int next_in = 0, next_out = 0;
  for (int round = 0; round < 200; ++round) {  // the head walks around while the ring doubles
    for (int i = 0; i < 3; ++i) q.put_nowait(std::make_unique<int>(next_in++));
    for (int i = 0; i < 2; ++i) EXPECT_EQ(*q.get_nowait(), next_out++);
  }
  while (!q.empty()) EXPECT_EQ(*q.get_nowait(), next_out++);
  EXPECT_EQ(next_out, next_in);
}

TEST(LifoQueue, GivesTheNewestFirst) {
  qi::LifoQueue<int> q;
  for (int i : {1, 2, 3}) q.put_nowait(i);
  EXPECT_EQ(q.get_nowait(), 3);
  q.put_nowait(4);
  EXPECT_EQ(q.get_nowait(), 4);
  EXPECT_EQ(q.get_nowait(), 2);
  EXPECT_EQ(q.get_nowait(), 1);
  EXPECT_THROW(q.get_nowait(), qi::QueueEmpty);
}

TEST(PriorityQueue, GivesTheSmallestFirst) {
  qi::PriorityQueue<int> q;
  for (int i : {5, 1, 4, 1, 3, 9, 2}) q.put_nowait(i);
  std::vector<int> out;
  while (!q.empty()) out.push_back(q.get_nowait());
  EXPECT_EQ(out, (std::vector<int>{1, 1, 2, 3, 4, 5, 9}));
}

TEST(PriorityQueue, TakesAComparisonAndSequenceNumbersMakeTiesFifo) {
  qi::PriorityQueue<int, std::greater<int>> largest_first;
  for (int i : {2, 7, 5}) largest_first.put_nowait(i);
  EXPECT_EQ(largest_first.get_nowait(), 7);
  // asyncio's idiom: (priority, sequence) entries.
  qi::PriorityQueue<std::pair<int, int>> q;
  int seq = 0;
  for (int prio : {2, 1, 2, 1, 2}) q.put_nowait({prio, seq++});
  std::vector<std::pair<int, int>> out;
  while (!q.empty()) out.push_back(q.get_nowait());
  EXPECT_EQ(out, (std::vector<std::pair<int, int>>{{1, 1}, {1, 3}, {2, 0}, {2, 2}, {2, 4}}));
}

TEST(Queue, MoveOnlyItemsInEveryOrder) {
  qi::Queue<std::unique_ptr<int>> fifo;
  qi::LifoQueue<std::unique_ptr<int>> lifo;
  auto deref_less = [](const std::unique_ptr<int>& a, const std::unique_ptr<int>& b) { return *a < *b; };
  qi::PriorityQueue<std::unique_ptr<int>, decltype(deref_less)> prio(0, deref_less);
  for (int i : {2, 1, 3}) {
    fifo.put_nowait(std::make_unique<int>(i));
    lifo.put_nowait(std::make_unique<int>(i));
    prio.put_nowait(std::make_unique<int>(i));
  }
  EXPECT_EQ(*fifo.get_nowait(), 2);
  EXPECT_EQ(*lifo.get_nowait(), 3);
  EXPECT_EQ(*prio.get_nowait(), 1);
}

TEST(Queue, DroppedItemsAreDestroyedOnceAndMovedOnesNever) {
  int destroyed = 0;
  {
    qi::Queue<Tracked> q;
    for (int i = 0; i < 40; ++i) q.put_nowait(Tracked(i, &destroyed));  // grows twice
    EXPECT_EQ(destroyed, 0);
    EXPECT_EQ(q.get_nowait().value, 0);
    EXPECT_EQ(destroyed, 1);
  }
  EXPECT_EQ(destroyed, 40);  // the queue's destructor drops the 39 left
}

// --- put / get and their waiters -----------------------------------------------

QILOOP_TEST_MODES_VT(Queue, GettersWaitAndWakeFirstInFirstOut) {
  qi::Queue<int> q;
  Strings log;
  auto a = qi::create_task(getter(q, "a", log));
  auto b = qi::create_task(getter(q, "b", log));
  auto c = qi::create_task(getter(q, "c", log));
  co_await qi::sleep(1s);
  EXPECT_TRUE(log.empty());
  for (int i : {1, 2, 3}) q.put_nowait(i);
  co_await a;
  co_await b;
  co_await c;
  EXPECT_EQ(log, (Strings{"a got 1", "b got 2", "c got 3"}));
  EXPECT_TRUE(q.empty());
}

// q = Queue(1); q.put_nowait(0)
// ts = [create_task(putter(q, n, v)) for n, v in (("a",1),("b",2),("c",3))]
// await sleep(0)
// for _ in range(4): log.append(f"main got {await q.get()}")
QILOOP_TEST_MODES_VT(Queue, PuttersWaitWhileFullAndWakeFirstInFirstOut) {
  qi::Queue<int> q(1);
  q.put_nowait(0);
  Strings log;
  auto a = qi::create_task(putter(q, "a", 1, log));
  auto b = qi::create_task(putter(q, "b", 2, log));
  auto c = qi::create_task(putter(q, "c", 3, log));
  co_await qi::sleep(0);
  for (int i = 0; i < 4; ++i) log.push_back("main got " + std::to_string(co_await q.get()));
  co_await a;
  co_await b;
  co_await c;
  EXPECT_EQ(log, (Strings{"main got 0", "a put 1", "main got 1", "b put 2", "main got 2", "c put 3", "main got 3"}));
}

// q = Queue(1)
// async def body():
//     o = create_task(other())            # logs "other ran"
//     current_task().cancel()
//     await q.put(1); log.append(f"got {await q.get()}")
//     try: await sleep(0)
//     except CancelledError: log.append("cancelled at sleep"); raise
QILOOP_TEST_MODES_VT(Queue, PutAndGetWithRoomOrAnItemDoNotSuspend) {
  qi::Queue<int> q(1);
  Strings log;
  auto body = [](qi::Queue<int>& q, Strings& log) -> qi::Coro<void> {
    auto other = qi::create_task([](Strings& log) -> qi::Coro<void> {
      log.push_back("other ran");
      co_return;
    }(log));
    qi::current_task().cancel();
    co_await q.put(1);
    log.push_back("got " + std::to_string(co_await q.get()));
    try {
      co_await qi::sleep(0);
    } catch (const qi::CancelledError&) {
      log.push_back("cancelled at sleep");
      throw;
    }
  };
  auto t = qi::create_task(body(q, log));
  co_await settle(t);
  co_await qi::sleep(0);
  EXPECT_TRUE(t.cancelled());
  EXPECT_EQ(log, (Strings{"got 1", "other ran", "cancelled at sleep"}));
}

QILOOP_TEST_MODES_VT(Queue, MoveOnlyItemsTravelThroughTheWaitingPaths) {
  qi::Queue<std::unique_ptr<int>> q(1);
  std::vector<int> got;
  auto consumer = qi::create_task([](qi::Queue<std::unique_ptr<int>>& q, std::vector<int>& got) -> qi::Coro<void> {
    for (int i = 0; i < 5; ++i) {
      std::unique_ptr<int> p = co_await q.get();  // waits: the producer runs behind
      got.push_back(*p);
    }
  }(q, got));
  co_await qi::sleep(0);
  for (int i = 0; i < 5; ++i) {
    auto p = std::make_unique<int>(i);
    co_await q.put(std::move(p));  // waits while the consumer has not taken the last one
  }
  co_await consumer;
  EXPECT_EQ(got, (std::vector<int>{0, 1, 2, 3, 4}));
}

QILOOP_TEST_MODES_VT(Queue, AProducerAndAConsumerCarryEveryItemInOrder) {
  qi::Queue<int> q(4);
  long long sum = 0;
  int next = 0;
  bool in_order = true;
  auto consumer = qi::create_task([](qi::Queue<int>& q, long long& sum, int& next, bool& in_order) -> qi::Coro<void> {
    for (int i = 0; i < 1000; ++i) {
      int v = co_await q.get();
      in_order = in_order && v == next++;
      sum += v;
      q.task_done();
    }
  }(q, sum, next, in_order));
  for (int i = 0; i < 1000; ++i) co_await q.put(i);
  co_await q.join();
  co_await consumer;
  EXPECT_TRUE(in_order);
  EXPECT_EQ(sum, 999LL * 1000 / 2);
}

// q = Queue(); ts = [create_task(getter(q, n)) for n in "abc"]; await sleep(0)
// q.put_nowait(1); log.append(f"main got {q.get_nowait()}")   # a woken, then robbed
// await sleep(0)                                             # a waits again, at the back
// for i in (2, 3, 4): q.put_nowait(i)
QILOOP_TEST_MODES_VT(Queue, AWokenGetterThatFindsNothingWaitsAgainAtTheBack) {
  qi::Queue<int> q;
  Strings log;
  auto a = qi::create_task(getter(q, "a", log));
  auto b = qi::create_task(getter(q, "b", log));
  auto c = qi::create_task(getter(q, "c", log));
  co_await qi::sleep(0);
  q.put_nowait(1);
  log.push_back("main got " + std::to_string(q.get_nowait()));
  co_await qi::sleep(0);
  for (int i : {2, 3, 4}) q.put_nowait(i);
  co_await a;
  co_await b;
  co_await c;
  EXPECT_EQ(log, (Strings{"main got 1", "b got 2", "c got 3", "a got 4"}));
}

// --- Cancellation at every waiting point ----------------------------------------

QILOOP_TEST_MODES_VT(Queue, AGetCancelledWhileWaitingTakesNothingAndLeavesTheLine) {
  qi::Queue<int> q;
  Strings log;
  auto a = qi::create_task(getter(q, "a", log));
  auto b = qi::create_task(getter(q, "b", log));
  co_await qi::sleep(1s);
  a.cancel();
  co_await settle(a);
  q.put_nowait(7);  // goes to b, not to the departed a
  co_await b;
  EXPECT_TRUE(a.cancelled());
  EXPECT_EQ(log, (Strings{"a cancelled", "b got 7"}));
  EXPECT_TRUE(q.empty());
}

QILOOP_TEST_MODES_VT(Queue, APutCancelledWhileWaitingPutsNothingAndLeavesTheLine) {
  qi::Queue<int> q(1);
  q.put_nowait(0);
  Strings log;
  auto a = qi::create_task(putter(q, "a", 1, log));
  auto b = qi::create_task(putter(q, "b", 2, log));
  co_await qi::sleep(1s);
  a.cancel();
  co_await settle(a);
  EXPECT_EQ(q.get_nowait(), 0);  // wakes b, not the departed a
  co_await b;
  EXPECT_EQ(q.get_nowait(), 2);
  EXPECT_TRUE(q.empty());
  EXPECT_EQ(log, (Strings{"a cancelled", "b put 2"}));
}

// q = Queue(); a, b = getters; await sleep(0)
// q.put_nowait(1); a.cancel()               # a is woken, then cancelled before it runs
// await gather(a, b, return_exceptions=True)
QILOOP_TEST_MODES_VT(Queue, AGetterCancelledAfterItsWakeUpPassesItOn) {
  qi::Queue<int> q;
  Strings log;
  auto a = qi::create_task(getter(q, "a", log));
  auto b = qi::create_task(getter(q, "b", log));
  co_await qi::sleep(0);
  q.put_nowait(1);
  a.cancel();
  co_await settle(a);
  co_await qi::sleep(1s);
  EXPECT_TRUE(b.done()) << "the wake-up was lost";
  b.cancel();
  co_await settle(b);
  EXPECT_TRUE(a.cancelled());
  EXPECT_EQ(log, (Strings{"a cancelled", "b got 1"}));
}

// q = Queue(1); q.put_nowait(0); a, b = putters of 1, 2; await sleep(0)
// log.append(f"main got {q.get_nowait()}"); a.cancel()
// await gather(a, b, return_exceptions=True)
// log.append(f"left {q.get_nowait()} size {q.qsize()}")
QILOOP_TEST_MODES_VT(Queue, APutterCancelledAfterItsWakeUpPassesItOn) {
  qi::Queue<int> q(1);
  q.put_nowait(0);
  Strings log;
  auto a = qi::create_task(putter(q, "a", 1, log));
  auto b = qi::create_task(putter(q, "b", 2, log));
  co_await qi::sleep(0);
  log.push_back("main got " + std::to_string(q.get_nowait()));
  a.cancel();
  co_await settle(a);
  co_await qi::sleep(1s);
  EXPECT_TRUE(b.done()) << "the wake-up was lost";
  b.cancel();
  co_await settle(b);
  const int left = q.get_nowait();
  log.push_back("left " + std::to_string(left) + " size " + std::to_string(q.qsize()));
  EXPECT_EQ(log, (Strings{"main got 0", "a cancelled", "b put 2", "left 2 size 0"}));
}

QILOOP_TEST_MODES_VT(Queue, AJoinCancelledWhileWaitingLeavesTheOthersWaiting) {
  qi::Queue<int> q;
  q.put_nowait(1);
  Strings log;
  auto joiner = [](qi::Queue<int>& q, std::string name, Strings& log) -> qi::Coro<void> {
    try {
      co_await q.join();
      log.push_back(name + " joined");
    } catch (const qi::CancelledError&) {
      log.push_back(name + " cancelled");
      throw;
    }
  };
  auto a = qi::create_task(joiner(q, "a", log));
  auto b = qi::create_task(joiner(q, "b", log));
  co_await qi::sleep(1s);
  a.cancel();
  co_await settle(a);
  EXPECT_FALSE(b.done());
  EXPECT_EQ(q.get_nowait(), 1);
  q.task_done();
  co_await b;
  EXPECT_EQ(log, (Strings{"a cancelled", "b joined"}));
}

// --- task_done / join -------------------------------------------------------------

QILOOP_TEST_MODES_VT(Queue, JoinReturnsAtOnceWhenNothingIsUnfinished) {
  qi::Queue<int> q;
  Strings log;
  auto other = qi::create_task([](Strings& log) -> qi::Coro<void> {
    log.push_back("other ran");
    co_return;
  }(log));
  co_await q.join();  // no suspension: `other` has not run
  log.push_back("joined");
  co_await other;
  EXPECT_EQ(log, (Strings{"joined", "other ran"}));
}

// q = Queue(); q.put_nowait(1); a, b = joiners; await sleep(0)
// q.get_nowait(); q.task_done(); q.put_nowait(2); log.append("put 2")
// await gather(a, b)    # both joined: they were woken before the new put
// log.append(f"unfinished {q._unfinished_tasks}")
QILOOP_TEST_MODES_VT(Queue, JoinWakesEveryWaiterOnceAllIsDoneEvenIfAnItemFollows) {
  qi::Queue<int> q;
  q.put_nowait(1);
  Strings log;
  auto joiner = [](qi::Queue<int>& q, std::string name, Strings& log) -> qi::Coro<void> {
    co_await q.join();
    log.push_back(name + " joined");
  };
  auto a = qi::create_task(joiner(q, "a", log));
  auto b = qi::create_task(joiner(q, "b", log));
  co_await qi::sleep(0);
  q.get_nowait();
  q.task_done();
  q.put_nowait(2);
  log.push_back("put 2");
  co_await a;
  co_await b;
  EXPECT_EQ(log, (Strings{"put 2", "a joined", "b joined"}));
  // The second item is still unfinished: a new join waits.
  auto c = qi::create_task(joiner(q, "c", log));
  co_await qi::sleep(1s);
  EXPECT_FALSE(c.done());
  q.task_done();
  co_await c;
}

// --- shutdown ---------------------------------------------------------------------

// q = Queue(1); q.put_nowait(1)
// p = create_task(putter(q, "p", 2)); await sleep(0)
// q.shutdown(); await p
// for n in ("g1", "g2"): await getter(q, n)
// await create_task(getter(q, "g3"))
QILOOP_TEST_MODES_VT(Queue, ShutdownRefusesPutsAtOnceAndGetsOnceEmpty) {
  qi::Queue<int> q(1);
  q.put_nowait(1);
  Strings log;
  auto p = qi::create_task(putter(q, "p", 2, log));
  co_await qi::sleep(0);
  q.shutdown();
  co_await p;
  co_await getter(q, "g1", log);
  co_await getter(q, "g2", log);
  co_await qi::create_task(getter(q, "g3", log));
  EXPECT_EQ(log, (Strings{"p shut down", "g1 got 1", "g2 shut down", "g3 shut down"}));
  EXPECT_THROW(q.put_nowait(3), qi::QueueShutDown);  // with room too
  EXPECT_THROW(q.get_nowait(), qi::QueueShutDown);
  try {
    co_await q.put(3);
    ADD_FAILURE() << "no QueueShutDown";
  } catch (const qi::QueueShutDown& e) {
    EXPECT_NE(std::string(e.what()).find("qi::Queue: put after shutdown()"), std::string::npos) << e.what();
  }
}

// q = Queue(); a, b = getters; await sleep(0)
// q.shutdown(); log.append("shut down"); await gather(a, b)
QILOOP_TEST_MODES_VT(Queue, ShutdownWakesEveryWaitingGetterWithQueueShutDown) {
  qi::LifoQueue<int> q;
  Strings log;
  auto a = qi::create_task(getter(q, "a", log));
  auto b = qi::create_task(getter(q, "b", log));
  co_await qi::sleep(1s);
  q.shutdown();
  log.push_back("shut down");
  co_await a;
  co_await b;
  EXPECT_EQ(log, (Strings{"shut down", "a shut down", "b shut down"}));
}

QILOOP_TEST_MODES_VT(Queue, ShutdownWakesEveryWaitingPutter) {
  qi::PriorityQueue<int> q(1);
  q.put_nowait(0);
  Strings log;
  auto a = qi::create_task(putter(q, "a", 1, log));
  auto b = qi::create_task(putter(q, "b", 2, log));
  co_await qi::sleep(1s);
  q.shutdown();
  co_await a;
  co_await b;
  EXPECT_EQ(log, (Strings{"a shut down", "b shut down"}));
  EXPECT_EQ(q.get_nowait(), 0);
}

// q = Queue(); for i in range(3): q.put_nowait(i)
// log.append(f"main got {await q.get()}")          # got, not yet task_done
// j = create_task(joiner()); await sleep(0)
// q.shutdown(immediate=True); log.append(f"size {q.qsize()}")
// await sleep(0); await sleep(0)
// log.append("task_done"); q.task_done(); await j
// try: q.task_done() except ValueError: log.append("ValueError")
QILOOP_TEST_MODES_VT(Queue, ImmediateShutdownDropsTheItemsAndCountsThemDone) {
  int destroyed = 0;
  qi::Queue<Tracked> q;
  for (int i = 0; i < 3; ++i) q.put_nowait(Tracked(i, &destroyed));
  Strings log;
  {
    Tracked first = co_await q.get();
    log.push_back("main got " + std::to_string(first.value));
  }
  auto j = qi::create_task([](qi::Queue<Tracked>& q, Strings& log) -> qi::Coro<void> {
    co_await q.join();
    log.push_back("joined");
  }(q, log));
  co_await qi::sleep(0);
  q.shutdown(true);
  log.push_back("size " + std::to_string(q.qsize()));
  EXPECT_EQ(destroyed, 3);  // the two dropped ones, and the one got
  co_await qi::sleep(0);
  co_await qi::sleep(0);
  log.push_back("task_done");
  q.task_done();
  co_await j;
  try {
    q.task_done();
  } catch (const qi::ValueError&) {
    log.push_back("ValueError");
  }
  EXPECT_EQ(log, (Strings{"main got 0", "size 0", "task_done", "joined", "ValueError"}));
  EXPECT_THROW(q.get_nowait(), qi::QueueShutDown);
}

QILOOP_TEST_MODES_VT(Queue, ImmediateShutdownWakesWaitingGettersAndJoinsAtOnce) {
  qi::Queue<int> q;
  Strings log;
  auto g = qi::create_task(getter(q, "g", log));
  co_await qi::sleep(1s);
  q.put_nowait(5);
  q.shutdown(true);  // g was woken for 5, which is gone: it finds the queue shut down
  co_await g;
  co_await q.join();  // the dropped item counted as done
  EXPECT_EQ(log, (Strings{"g shut down"}));
}

QILOOP_TEST_MODES_VT(Queue, ShutdownThenImmediateShutdownDropsWhatIsLeft) {
  qi::Queue<int> q;
  q.put_nowait(1);
  q.put_nowait(2);
  q.shutdown();
  EXPECT_EQ(q.get_nowait(), 1);
  q.shutdown(true);
  EXPECT_TRUE(q.empty());
  EXPECT_THROW(q.get_nowait(), qi::QueueShutDown);
  q.task_done();  // for 1; 2 was counted done by the drop
  co_await q.join();
  EXPECT_THROW(q.task_done(), qi::ValueError);
}

// --- Performance and misuse ---------------------------------------------------------

QILOOP_TEST_MODES_VT(Queue, PutAndGetWithoutWaitingAllocateNothing) {
  qi::Queue<int> q(128);
  for (int i = 0; i < 128; ++i) co_await q.put(i);  // the ring reaches its size
  for (int i = 0; i < 128; ++i) {
    EXPECT_EQ(co_await q.get(), i);
    q.task_done();
  }
  qi::LifoQueue<int> lifo;
  co_await lifo.put(0);
  (void)co_await lifo.get();
  lifo.task_done();
  const long before = alloc_count::now();
  long long sum = 0;
  for (int round = 0; round < 100; ++round) {
    for (int i = 0; i < 100; ++i) co_await q.put(i);
    for (int i = 0; i < 100; ++i) {
      sum += co_await q.get();
      q.task_done();
    }
    co_await lifo.put(round);
    sum += co_await lifo.get();
    lifo.task_done();
    co_await q.join();
  }
  EXPECT_EQ(alloc_count::now() - before, 0);
  EXPECT_EQ(sum, 100LL * 4950 + 4950);
  // The counter counts: a new queue's first put allocates its ring.
  qi::Queue<int> fresh;
  const long before_ring = alloc_count::now();
  fresh.put_nowait(1);
  EXPECT_EQ(alloc_count::now(), before_ring + 1);
}

TEST(Queue, IsBoundToTheFirstLoopThatWaitsAndRefusesAnother) {
  qi::Queue<int> q;
  {
    QiEventLoop first;
    first.run_until_complete([](qi::Queue<int>& q) -> qi::Coro<void> {
      auto t = qi::create_task([](qi::Queue<int>& q) -> qi::Coro<void> { co_await q.put(1); }(q));
      EXPECT_EQ(co_await q.get(), 1);  // waits: binds q to this loop
      co_await t;
    }(q));
  }
  QiEventLoop second;
  try {
    second.run_until_complete([](qi::Queue<int>& q) -> qi::Coro<void> { (void)co_await q.get(); }(q));
    ADD_FAILURE() << "no error";
  } catch (const qi::RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("qi::Queue is bound to another event loop"), std::string::npos) << e.what();
  }
  q.put_nowait(2);  // the nowait calls need no loop
  EXPECT_EQ(q.get_nowait(), 2);
}

// asyncio binds the queue as a whole (one _LoopBoundMixin): once a get waited
// under one loop, a put or a join that has to wait under another throws
// (each kind of wait was bound on its own: the put waited forever there).
TEST(Queue, IsBoundAsAWholeNotPerKindOfWait) {
  qi::Queue<int> q(1);
  {
    QiEventLoop first;
    first.run_until_complete([](qi::Queue<int>& q) -> qi::Coro<void> {
      auto t = qi::create_task([](qi::Queue<int>& q) -> qi::Coro<void> { (void)co_await q.get(); }(q));
      co_await qi::sleep(0);  // the get waits: binds q to this loop
      q.put_nowait(1);
      co_await t;
      q.task_done();
    }(q));
  }
  q.put_nowait(2);  // full, and one unfinished item
  QiEventLoop second;
  for (bool join : {false, true}) {
    second.run_until_complete([](qi::Queue<int>& q, bool join) -> qi::Coro<void> {
      try {
        if (join)
          co_await q.join();
        else
          co_await q.put(3);
        ADD_FAILURE() << "no error";
      } catch (const qi::RuntimeError& e) {
        EXPECT_NE(std::string(e.what()).find("qi::Queue is bound to another event loop"), std::string::npos)
            << e.what();
      }
    }(q, join));
  }
  EXPECT_EQ(q.get_nowait(), 2);
}

TEST(Queue, ALoopClosedWhileATaskWaitsLeavesTheQueueUsable) {
  qi::Queue<std::unique_ptr<int>> q;
  int reports = 0;
  {
    QiEventLoop loop;
    loop.set_exception_handler([&reports](QiEventLoop&, const qi::ExceptionContext&) { ++reports; });
    loop.run_until_complete([](qi::Queue<std::unique_ptr<int>>& q) -> qi::Coro<void> {
      qi::create_task([](qi::Queue<std::unique_ptr<int>>& q) -> qi::Coro<void> { (void)co_await q.get(); }(q));
      co_await qi::sleep(0);
      co_await qi::sleep(0);
    }(q));
  }  // the waiting task's frames are destroyed: its waiter leaves the queue
  EXPECT_EQ(reports, 1);  // "Task was destroyed but it is pending!"
  q.put_nowait(std::make_unique<int>(3));
  EXPECT_EQ(*q.get_nowait(), 3);
}


// A comparison that throws at its n-th call (0: never), on unique_ptr items:
// a moved-from (null) item the heap lost track of would show up as -1.
struct ThrowingDerefLess {
  int* countdown;
  bool operator()(const std::unique_ptr<int>& a, const std::unique_ptr<int>& b) const {
    if (*countdown > 0 && --*countdown == 0) throw std::runtime_error("compare");
    return (a ? *a : -1) < (b ? *b : -1);
  }
};

// A put or get whose comparison throws changes nothing: every item is still
// there, once, and they come out smallest first (std::push_heap / pop_heap
// lost one item and left a null one in its place).
QILOOP_TEST_MODES_VT(PriorityQueue, AThrowingComparisonLeavesTheQueueAsItWas) {
  for (bool on_put : {true, false}) {
    // A put of a 21st item compares up to 4 times, a get of 20 at least 6 times here.
    for (int throw_at = 1; throw_at <= (on_put ? 4 : 6); ++throw_at) {
      int countdown = 0;
      qi::PriorityQueue<std::unique_ptr<int>, ThrowingDerefLess> q(0, ThrowingDerefLess{&countdown});
      for (int i = 20; i > 0; --i) q.put_nowait(std::make_unique<int>(i));
      countdown = throw_at;
      if (on_put)
        EXPECT_THROW(co_await q.put(std::make_unique<int>(0)), std::runtime_error);
      else
        EXPECT_THROW((void)q.get_nowait(), std::runtime_error);
      std::vector<int> expected;
      for (int i = 1; i <= 20; ++i) expected.push_back(i);
      countdown = 0;
      EXPECT_EQ(q.qsize(), 20u);
      std::vector<int> out;
      while (!q.empty()) {
        auto p = co_await q.get();
        out.push_back(p ? *p : -1);
      }
      EXPECT_EQ(out, expected) << "throw at comparison " << throw_at << (on_put ? " of a put" : " of a get");
    }
  }
}

// A queue destroyed while tasks wait on it (user error; its contract says
// they wait forever): when they are cancelled later (qi::run cancels the
// tasks left over), they end with a qi::RuntimeError and do not look at the
// freed queue (ASan saw a use after free in the getter's and putter's
// cancellation path).
QILOOP_TEST_MODES_VT(Queue, WaitersCancelledAfterTheQueueWasDestroyedDoNotTouchIt) {
  auto empty = std::make_unique<qi::Queue<int>>();
  auto full = std::make_unique<qi::Queue<int>>(1);
  full->put_nowait(1);
  auto getter = qi::create_task([](qi::Queue<int>& q) -> qi::Coro<void> { (void)co_await q.get(); }(*empty));
  auto putter = qi::create_task([](qi::Queue<int>& q) -> qi::Coro<void> { co_await q.put(2); }(*full));
  co_await qi::sleep(0);
  empty.reset();
  full.reset();
  co_await sync_test::expect_orphaned_waiter_fails(std::move(getter), "qi::Queue");
  co_await sync_test::expect_orphaned_waiter_fails(std::move(putter), "qi::Queue");
}
