// qi::Future<T>: asyncio.Future's state machine, its done callbacks (always
// through the loop), the "exception was never retrieved" report, and
// run_until_complete, for T = int, std::string, void and a move-only type.
#include <qiloop/structured/gather.h>
#include <qiloop/structured/shield.h>

#include <QtCore/QThread>

#include <pthread.h>

#include "log_capture.h"
#include "on_destroy.h"
#include "test_util.h"

#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

using namespace std::chrono_literals;
using qt::Log;
using qt::Strings;

namespace {

// --- One sample value per T, and how to set and check it --------------------

template <class T> struct Sample;
template <> struct Sample<int> {
  static int make() { return 42; }
  static void expect(const int& v) { EXPECT_EQ(v, 42); }
};
template <> struct Sample<std::string> {
  static std::string make() { return "forty-two"; }
  static void expect(const std::string& v) { EXPECT_EQ(v, "forty-two"); }
};
template <> struct Sample<std::unique_ptr<int>> {
  static std::unique_ptr<int> make() { return std::make_unique<int>(42); }
  static void expect(const std::unique_ptr<int>& v) {
    ASSERT_NE(v, nullptr);
    EXPECT_EQ(*v, 42);
  }
};

template <class T>
void complete(const qi::Future<T>& f) {
  if constexpr (std::is_void_v<T>)
    f.set_result();
  else
    f.set_result(Sample<T>::make());
}

template <class T>
void expect_sample_result(const qi::Future<T>& f) {
  if constexpr (std::is_void_v<T>)
    f.result();
  else
    Sample<T>::expect(f.result());
}

// What run_until_complete returned, checked the same way (void: nothing).
template <class T>
void run_and_expect_sample(QiEventLoop& loop, const qi::Future<T>& f) {
  if constexpr (std::is_void_v<T>) {
    loop.run_until_complete(f);
  } else {
    T v = loop.run_until_complete(f);
    Sample<T>::expect(v);
  }
}

std::exception_ptr range_error(const char* what = "out of range") {
  return std::make_exception_ptr(std::out_of_range(what));
}

// Runs the loop until the iteration in which `stop` is scheduled has run.
void run_one_iteration(QiEventLoop& loop) {
  loop.call_soon([&loop] { loop.stop(); });
  loop.run_forever();
}

// Records every report that reaches the loop's exception handler, until it
// goes out of scope (the loop may outlive it).
struct Reports {
  std::vector<qi::ExceptionContext> items;
  QiEventLoop* loop = nullptr;
  void install(QiEventLoop& l) {
    loop = &l;
    l.set_exception_handler([this](QiEventLoop&, const qi::ExceptionContext& c) { items.push_back(c); });
  }
  ~Reports() {
    if (loop) loop->set_exception_handler(nullptr);
  }
};

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

// --- The state machine, for every T -------------------------------------------

template <class T>
class FutureTypedTest : public testing::Test {
 protected:
  QiEventLoop loop;
};

using ResultTypes = testing::Types<int, std::string, void, std::unique_ptr<int>>;

class TypeNames {
 public:
  template <class T>
  static std::string GetName(int) {
    if constexpr (std::is_same_v<T, int>) return "int";
    if constexpr (std::is_same_v<T, std::string>) return "string";
    if constexpr (std::is_void_v<T>) return "void";
    return "unique_ptr";
  }
};
TYPED_TEST_SUITE(FutureTypedTest, ResultTypes, TypeNames);

TYPED_TEST(FutureTypedTest, PendingFutureHasNoResultYet) {
  auto f = this->loop.template create_future<TypeParam>();
  EXPECT_TRUE(f.valid());
  EXPECT_EQ(f.get_loop(), &this->loop);
  EXPECT_FALSE(f.done());
  EXPECT_FALSE(f.cancelled());
  EXPECT_THROW(f.result(), qi::InvalidStateError);
  EXPECT_THROW(f.exception(), qi::InvalidStateError);
  EXPECT_FALSE(qi::Future<TypeParam>().valid());
}

TYPED_TEST(FutureTypedTest, SetResultFinishesTheFuture) {
  auto f = this->loop.template create_future<TypeParam>();
  qi::Future<TypeParam> copy = f;
  complete(f);
  EXPECT_TRUE(copy.done()) << "every copy shares one state";
  EXPECT_FALSE(copy.cancelled());
  expect_sample_result(copy);
  expect_sample_result(copy);  // result() can be read again
  EXPECT_EQ(copy.exception(), nullptr);
}

TYPED_TEST(FutureTypedTest, ADoneFutureCannotBeCompletedAgain) {
  auto f = this->loop.template create_future<TypeParam>();
  complete(f);
  EXPECT_THROW(complete(f), qi::InvalidStateError);
  EXPECT_THROW(f.set_exception(range_error()), qi::InvalidStateError);
  EXPECT_FALSE(f.cancel("too late"));
  EXPECT_FALSE(f.cancelled());
  expect_sample_result(f);
}

TYPED_TEST(FutureTypedTest, SetExceptionIsRethrownWithItsOriginalType) {
  auto f = this->loop.template create_future<TypeParam>();
  std::exception_ptr e = range_error("the original");
  f.set_exception(e);
  EXPECT_TRUE(f.done());
  EXPECT_FALSE(f.cancelled());
  for (int i = 0; i < 2; ++i) {
    try {
      f.result();
      ADD_FAILURE() << "result() returned";
    } catch (const std::out_of_range& x) {
      EXPECT_STREQ(x.what(), "the original");
    }
  }
  EXPECT_EQ(f.exception(), e);
  EXPECT_THROW(complete(f), qi::InvalidStateError);
  EXPECT_THROW(f.set_exception(range_error()), qi::InvalidStateError);
  EXPECT_FALSE(f.cancel());
  EXPECT_EQ(f.exception(), e) << "a failed set_exception() changes nothing";
}

TYPED_TEST(FutureTypedTest, CancelledFutureThrowsCancelledErrorWithTheMessage) {
  auto f = this->loop.template create_future<TypeParam>();
  EXPECT_TRUE(f.cancel("the reason"));
  EXPECT_TRUE(f.done());
  EXPECT_TRUE(f.cancelled());
  try {
    f.result();
    ADD_FAILURE() << "result() returned";
  } catch (const qi::CancelledError& e) {
    EXPECT_EQ(e.message(), "the reason");
  }
  try {
    f.exception();
    ADD_FAILURE() << "exception() returned";
  } catch (const qi::CancelledError& e) {
    EXPECT_EQ(e.message(), "the reason");
  }
  EXPECT_FALSE(f.cancel("again")) << "cancel() on a done future returns false";
  EXPECT_THROW(complete(f), qi::InvalidStateError);
  EXPECT_THROW(f.set_exception(range_error()), qi::InvalidStateError);
  try {
    f.result();
  } catch (const qi::CancelledError& e) {
    EXPECT_EQ(e.message(), "the reason") << "a second cancel() does not replace the message";
  }
}

TYPED_TEST(FutureTypedTest, SetExceptionWithANullPointerIsRejected) {
  auto f = this->loop.template create_future<TypeParam>();
  EXPECT_THROW(f.set_exception(nullptr), std::invalid_argument);
  EXPECT_THROW(f.set_exception(std::exception_ptr()), std::invalid_argument);
  EXPECT_FALSE(f.done()) << "the future stays pending";
  complete(f);
  expect_sample_result(f);
}

TYPED_TEST(FutureTypedTest, DoneCallbacksRunOnTheNextIterationInOrderOfAddition) {
  QiEventLoop& loop = this->loop;
  auto f = loop.template create_future<TypeParam>();
  Log log;
  f.add_done_callback(log.recorder("first"));
  f.add_done_callback([&](qi::Future<TypeParam> g) {
    log(g == f ? "second (this future)" : "second (another future)");
    expect_sample_result(g);
  });
  f.add_done_callback(log.recorder("third"));
  complete(f);
  EXPECT_TRUE(log.items.empty()) << "done callbacks never run inside set_result()";
  run_one_iteration(loop);
  EXPECT_EQ(log.items, (Strings{"first", "second (this future)", "third"}));
}

TYPED_TEST(FutureTypedTest, RunUntilCompleteReturnsTheResult) {
  QiEventLoop& loop = this->loop;
  auto f = loop.template create_future<TypeParam>();
  loop.call_later(1ms, [f] { complete(f); });
  run_and_expect_sample(loop, f);
  EXPECT_FALSE(loop.is_running());
}

TYPED_TEST(FutureTypedTest, RunUntilCompleteOfADoneFutureReturnsAtOnce) {
  QiEventLoop& loop = this->loop;
  auto f = loop.template create_future<TypeParam>();
  complete(f);
  run_and_expect_sample(loop, f);
}

TYPED_TEST(FutureTypedTest, RunUntilCompleteRethrowsTheExceptionWithItsOriginalType) {
  QiEventLoop& loop = this->loop;
  Reports reports;
  reports.install(loop);
  {
    auto f = loop.template create_future<TypeParam>();
    loop.call_soon([f] { f.set_exception(range_error()); });
    EXPECT_THROW(loop.run_until_complete(f), std::out_of_range);
  }
  EXPECT_TRUE(reports.items.empty()) << "run_until_complete retrieved the exception";
}

TYPED_TEST(FutureTypedTest, RunUntilCompleteOfACancelledFutureThrowsCancelledError) {
  QiEventLoop& loop = this->loop;
  auto f = loop.template create_future<TypeParam>();
  loop.call_soon([f] { f.cancel("stop waiting"); });
  try {
    loop.run_until_complete(f);
    ADD_FAILURE() << "run_until_complete returned";
  } catch (const qi::CancelledError& e) {
    EXPECT_EQ(e.message(), "stop waiting");
  }
}

TYPED_TEST(FutureTypedTest, AnExceptionNeverRetrievedIsReportedWhenTheLastHandleGoes) {
  QiEventLoop& loop = this->loop;
  Reports reports;
  reports.install(loop);
  {
    auto f = loop.template create_future<TypeParam>();
    f.set_exception(range_error("lost"));
    { qi::Future<TypeParam> copy = f; }
    EXPECT_TRUE(reports.items.empty()) << "a copy going away is not the last handle";
  }
  ASSERT_EQ(reports.items.size(), 1u);
  EXPECT_TRUE(contains(reports.items[0].message, "never retrieved")) << reports.items[0].message;
  EXPECT_THROW(std::rethrow_exception(reports.items[0].exception), std::out_of_range);
}

// --- Done callbacks -------------------------------------------------------------

TEST(FutureTest, DoneCallbacksWaitForTheIterationThatCompletedTheFuture) {
  QiEventLoop loop;
  Log log;
  auto f = loop.create_future<int>();
  uint64_t completed_in = 0, ran_in = 0;
  f.add_done_callback([&](qi::Future<int> g) {
    ran_in = loop.stats().iterations;
    log("done callback " + std::to_string(g.result()));
  });
  loop.call_soon([&] {
    log("a: set_result");
    completed_in = loop.stats().iterations;
    f.set_result(7);
    log("a: after set_result");
  });
  loop.call_soon(log.recorder("b: same iteration"));
  loop.call_soon([&] { loop.call_soon([&] { loop.stop(); }); });
  loop.run_forever();
  EXPECT_EQ(log.items, (Strings{"a: set_result", "a: after set_result", "b: same iteration", "done callback 7"}));
  EXPECT_EQ(ran_in, completed_in + 1);
}

TEST(FutureTest, DoneCallbacksAlsoRunOnCancelAndOnException) {
  QiEventLoop loop;
  Log log;
  auto cancelled = loop.create_future<int>();
  auto failed = loop.create_future<int>();
  cancelled.add_done_callback([&](qi::Future<int> g) { log(g.cancelled() ? "cancelled" : "not cancelled"); });
  failed.add_done_callback([&](qi::Future<int> g) { log(g.exception() ? "failed" : "no exception"); });
  cancelled.cancel();
  failed.set_exception(range_error());
  EXPECT_TRUE(log.items.empty());
  run_one_iteration(loop);
  EXPECT_EQ(log.items, (Strings{"cancelled", "failed"}));
}

TEST(FutureTest, CallbackAddedToADoneFutureIsScheduledNotRunInline) {
  QiEventLoop loop;
  Log log;
  auto f = loop.create_future<std::string>();
  f.set_result("ready");
  loop.call_soon(log.recorder("scheduled before"));
  f.add_done_callback([&](qi::Future<std::string> g) { log("callback: " + g.result()); });
  EXPECT_TRUE(log.items.empty()) << "add_done_callback on a done future must not call back inline";
  loop.call_soon(log.recorder("scheduled after"));
  run_one_iteration(loop);
  EXPECT_EQ(log.items, (Strings{"scheduled before", "callback: ready", "scheduled after"}));
}

TEST(FutureTest, CallbacksMayTakeTheFutureOrNothing) {
  QiEventLoop loop;
  auto f = loop.create_future<int>();
  int no_arg = 0;
  int by_value = 0;
  int by_const_ref = 0;
  f.add_done_callback([&] { ++no_arg; });
  f.add_done_callback([&](qi::Future<int> g) { by_value = g.result(); });
  f.add_done_callback([&](const qi::Future<int>& g) { by_const_ref = g.result() + 1; });
  f.set_result(10);
  run_one_iteration(loop);
  EXPECT_EQ(no_arg, 1);
  EXPECT_EQ(by_value, 10);
  EXPECT_EQ(by_const_ref, 11);
}

TEST(FutureTest, RemoveDoneCallbackReturnsOneThenZero) {
  QiEventLoop loop;
  Log log;
  auto f = loop.create_future<void>();
  uint64_t a = f.add_done_callback(log.recorder("a"));
  uint64_t b = f.add_done_callback(log.recorder("b (removed)"));
  uint64_t c = f.add_done_callback(log.recorder("c"));
  EXPECT_NE(a, b);
  EXPECT_NE(b, c);
  EXPECT_EQ(f.remove_done_callback(b), 1u);
  EXPECT_EQ(f.remove_done_callback(b), 0u);
  EXPECT_EQ(f.remove_done_callback(c + 1000), 0u) << "an id never handed out";
  f.set_result();
  EXPECT_EQ(f.remove_done_callback(a), 0u) << "once done, the callbacks are already scheduled";
  run_one_iteration(loop);
  EXPECT_EQ(log.items, (Strings{"a", "c"}));
}

TEST(FutureTest, RemovingDoneCallbacksKeepsTheOthersInOrder) {
  QiEventLoop loop;
  Log log;
  auto f = loop.create_future<void>();
  std::vector<uint64_t> ids;
  for (int i = 0; i < 6; ++i) ids.push_back(f.add_done_callback(log.recorder(std::to_string(i))));
  EXPECT_EQ(f.remove_done_callback(ids[1]), 1u);
  EXPECT_EQ(f.remove_done_callback(ids[4]), 1u);
  EXPECT_EQ(f.remove_done_callback(ids[0]), 1u);
  // Added after removals (which may reuse their room): still last, and the
  // stale ids do not reach the newcomers.
  const uint64_t late = f.add_done_callback(log.recorder("late"));
  f.add_done_callback(log.recorder("later"));
  EXPECT_EQ(f.remove_done_callback(ids[1]), 0u);
  EXPECT_EQ(f.remove_done_callback(ids[4]), 0u);
  EXPECT_EQ(f.remove_done_callback(ids[0]), 0u);
  EXPECT_NE(late, ids[0]);
  EXPECT_NE(late, ids[1]);
  EXPECT_NE(late, ids[4]);
  EXPECT_EQ(f.remove_done_callback(ids[5]), 1u);
  EXPECT_EQ(f.remove_done_callback(0), 0u);
  f.set_result();
  run_one_iteration(loop);
  EXPECT_EQ(log.items, (Strings{"2", "3", "late", "later"}));
}

TEST(FutureTest, RemovingEveryDoneCallbackThenAddingAgainWorks) {
  QiEventLoop loop;
  Log log;
  auto f = loop.create_future<void>();
  const uint64_t a = f.add_done_callback(log.recorder("a"));
  EXPECT_EQ(f.remove_done_callback(a), 1u);
  const uint64_t b = f.add_done_callback(log.recorder("b"));
  EXPECT_NE(a, b);
  EXPECT_EQ(f.remove_done_callback(a), 0u);
  f.set_result();
  run_one_iteration(loop);
  EXPECT_EQ(log.items, (Strings{"b"}));
}

// --- Done hooks (a combinator's callback object, detail::DoneHook) -----------

namespace {

// Logs its calls; counts the references the futures hold on it.
struct CountingHook final : qi::detail::DoneHook {
  explicit CountingHook(Log& l, std::string n) : log(l), name(std::move(n)) {}
  void on_done(qi::detail::FutureStateBase&) override {
    log.items.push_back(name);
    if (throws) throw std::runtime_error("hook failed");
  }
  void hook_retain() noexcept override { ++refs; }
  void hook_release() noexcept override { --refs; }
  Log& log;
  std::string name;
  int refs = 0;
  bool throws = false;
};

}  // namespace

TEST(FutureTest, ADoneHookRunsInItsPlaceAndIsHeldUntilItRan) {
  QiEventLoop loop;
  Log log;
  CountingHook h(log, "hook");
  auto f = loop.create_future<void>();
  qi::detail::state_of(f)->add_done_hook(h);
  EXPECT_EQ(h.refs, 1);
  f.add_done_callback(log.recorder("after"));  // the hook moves into the list, first
  EXPECT_EQ(h.refs, 1);
  f.set_result();
  EXPECT_EQ(h.refs, 1);  // scheduled, not run
  run_one_iteration(loop);
  EXPECT_EQ(log.items, (Strings{"hook", "after"}));
  EXPECT_EQ(h.refs, 0);
}

TEST(FutureTest, ADoneHookAfterACallbackAndRemovedOnesReleaseTheirReference) {
  QiEventLoop loop;
  Log log;
  CountingHook a(log, "a"), b(log, "b");
  auto f = loop.create_future<int>();
  const uint64_t alone = qi::detail::state_of(f)->add_done_hook(a);
  EXPECT_EQ(f.remove_done_callback(alone), 1u);
  EXPECT_EQ(a.refs, 0);
  EXPECT_EQ(f.remove_done_callback(alone), 0u);
  f.add_done_callback(log.recorder("first"));
  const uint64_t in_list = qi::detail::state_of(f)->add_done_hook(a);
  qi::detail::state_of(f)->add_done_hook(b);
  EXPECT_EQ(a.refs, 1);
  EXPECT_EQ(f.remove_done_callback(in_list), 1u);
  EXPECT_EQ(a.refs, 0);
  f.set_result(1);
  run_one_iteration(loop);
  EXPECT_EQ(log.items, (Strings{"first", "b"}));
  EXPECT_EQ(b.refs, 0);
}

TEST(FutureTest, AThrowingDoneHookIsReportedAndStillReleased) {
  QiEventLoop loop;
  Log log;
  CountingHook h(log, "hook");
  h.throws = true;
  std::vector<std::string> reports;
  loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& ctx) { reports.push_back(ctx.message); });
  auto f = loop.create_future<void>();
  qi::detail::state_of(f)->add_done_hook(h);
  f.set_result();
  run_one_iteration(loop);
  EXPECT_EQ(log.items, (Strings{"hook"}));
  EXPECT_EQ(h.refs, 0);
  EXPECT_EQ(reports.size(), 1u);
}

TEST(FutureTest, ADoneHookOnADoneFutureIsScheduledAndOnADroppedOneReleased) {
  Log log;
  CountingHook h(log, "late"), dropped(log, "dropped");
  {
    QiEventLoop loop;
    auto f = loop.create_future<void>();
    f.set_result();
    qi::detail::state_of(f)->add_done_hook(h);
    EXPECT_EQ(h.refs, 1);
    run_one_iteration(loop);
    auto g = loop.create_future<void>();
    qi::detail::state_of(g)->add_done_hook(dropped);
    g.set_result();
    loop.close();  // drops the scheduled entry: the hook never runs, and is let go
  }
  EXPECT_EQ(log.items, (Strings{"late"}));
  EXPECT_EQ(h.refs, 0);
  EXPECT_EQ(dropped.refs, 0);
}

// Each removal must not scan the others: 100,000 removals in either order
// (the tasks of a closing loop remove theirs one by one) were quadratic.
TEST(FutureTest, RemovingManyDoneCallbacksIsLinear) {
  QiEventLoop loop;
  constexpr int kCount = 100'000;
  auto f = loop.create_future<int>();
  for (bool reverse : {false, true}) {
    std::vector<uint64_t> ids;
    ids.reserve(kCount);
    for (int i = 0; i < kCount; ++i) ids.push_back(f.add_done_callback([] {}));
    const auto start = std::chrono::steady_clock::now();
    if (reverse)
      for (auto it = ids.rbegin(); it != ids.rend(); ++it) ASSERT_EQ(f.remove_done_callback(*it), 1u);
    else
      for (uint64_t id : ids) ASSERT_EQ(f.remove_done_callback(id), 1u);
    EXPECT_LT(std::chrono::steady_clock::now() - start, 2s) << (reverse ? "last to first" : "first to last");
  }
  bool ran = false;
  f.add_done_callback([&] { ran = true; });
  f.set_result(1);
  run_one_iteration(loop);
  EXPECT_TRUE(ran);
}

// close() with 100,000 tasks awaiting one future: each destroyed task
// unhooks itself from the future (7.5-9.7 s when that was a linear scan).
TEST(FutureTest, ClosingALoopWithManyTasksAwaitingOneFutureIsLinear) {
  constexpr int kTasks = 100'000;
  QiEventLoop loop;
  std::size_t reports = 0;
  loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& c) {
    if (contains(c.message, "Task was destroyed but it is pending")) ++reports;
  });
  auto shared = loop.create_future<int>();
  auto waiter = [](qi::Future<int> f) -> qi::Coro<void> { co_await f; };
  for (int i = 0; i < kTasks; ++i) loop.create_task(waiter(shared));
  run_one_iteration(loop);  // every task now awaits `shared`
  EXPECT_EQ(loop.pending_tasks(), static_cast<std::size_t>(kTasks));
  const auto start = std::chrono::steady_clock::now();
  loop.close();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);  // quadratic would take minutes
  EXPECT_EQ(reports, static_cast<std::size_t>(kTasks));
  EXPECT_EQ(loop.pending_tasks(), 0u);
  EXPECT_FALSE(shared.done());
}

// Deleting a state releases what it holds, which may be the last reference
// to another state: the last handle of a chain of 100,000 nested gathers
// (each holding the one before) deleted it one nested call per link, past
// the end of the stack. Done in a running loop, and pending at close().
TEST(FutureTest, AChainOfNestedGathersGoesWithoutRecursingPerLink) {
  constexpr int kDepth = 100'000;
  for (const bool done : {true, false}) {
    QiEventLoop loop;
    auto f = loop.create_future<void>();
    auto top = std::make_unique<qi::Future<void>>(f);
    for (int i = 0; i < kDepth; ++i) *top = qi::gather(std::vector<qi::Future<void>>{*top});
    if (done) {
      f.set_result();
      loop.run_until_complete(*top);  // one iteration per level
    } else {
      loop.close();
    }
    EXPECT_EQ(top->done(), done);
    f = {};
    top.reset();
  }
}

// A wide tree goes too, and whole: the gather of 10,000 gathers of 10 done
// futures each, whose values hold tokens.
TEST(FutureTest, AWideTreeOfGathersGoesWholeWithItsLastHandle) {
  using Token = std::shared_ptr<int>;
  QiEventLoop loop;
  std::vector<qi::Future<std::vector<Token>>> level;
  std::vector<std::weak_ptr<int>> tokens;
  for (int i = 0; i < 10'000; ++i) {
    std::vector<qi::Future<Token>> leaves;
    for (int j = 0; j < 10; ++j) {
      auto leaf = loop.create_future<Token>();
      auto held = std::make_shared<int>(j);
      tokens.push_back(held);
      leaf.set_result(std::move(held));
      leaves.push_back(std::move(leaf));
    }
    level.push_back(qi::gather(std::move(leaves)));
  }
  auto top = std::make_unique<qi::Future<std::vector<std::vector<Token>>>>(qi::gather(std::move(level)));
  loop.run_until_complete(*top);
  EXPECT_EQ(top->result().size(), 10'000u);
  top.reset();
  for (const auto& t : tokens) ASSERT_TRUE(t.expired());
}

TEST(FutureTest, AddDoneCallbackRejectsAnEmptyCallable) {
  // As call_soon does: an empty callable is a mistake at the call site, not
  // an exception inside the loop later.
  QiEventLoop loop;
  auto f = loop.create_future<int>();
  EXPECT_THROW(f.add_done_callback(std::function<void(qi::Future<int>)>()), std::invalid_argument);
  EXPECT_THROW(f.add_done_callback(std::function<void()>()), std::invalid_argument);
  void (*null_fn)() = nullptr;
  EXPECT_THROW(f.add_done_callback(null_fn), std::invalid_argument);
  loop.close();
}

TEST(FutureTest, AnExceptionFromADoneCallbackGoesToTheHandler) {
  QiEventLoop loop;
  Reports reports;
  reports.install(loop);
  Log log;
  auto f = loop.create_future<int>();
  f.add_done_callback([] { throw std::runtime_error("from a done callback"); });
  f.add_done_callback(log.recorder("next callback still runs"));
  f.set_result(1);
  run_one_iteration(loop);
  EXPECT_EQ(log.items, (Strings{"next callback still runs"}));
  ASSERT_EQ(reports.items.size(), 1u);
  EXPECT_THROW(std::rethrow_exception(reports.items[0].exception), std::runtime_error);
}

// --- "Future exception was never retrieved" -------------------------------------

TEST(FutureTest, ARetrievedExceptionIsNotReported) {
  QiEventLoop loop;
  Reports reports;
  reports.install(loop);
  {
    auto via_result = loop.create_future<int>();
    via_result.set_exception(range_error());
    EXPECT_THROW(via_result.result(), std::out_of_range);
    auto via_exception = loop.create_future<int>();
    via_exception.set_exception(range_error());
    EXPECT_NE(via_exception.exception(), nullptr);
    auto by_a_copy = loop.create_future<void>();
    by_a_copy.set_exception(range_error());
    qi::Future<void>(by_a_copy).exception();
  }
  EXPECT_TRUE(reports.items.empty());
}

TEST(FutureTest, ValuesAndCancellationsAreNeverReported) {
  QiEventLoop loop;
  Reports reports;
  reports.install(loop);
  {
    auto value = loop.create_future<int>();
    value.set_result(1);
    auto cancelled = loop.create_future<int>();
    cancelled.cancel("nobody looks");
    auto pending = loop.create_future<int>();
  }
  EXPECT_TRUE(reports.items.empty());
}

TEST(FutureTest, ADoneCallbackThatIgnoresTheExceptionDoesNotCountAsRetrieval) {
  QiEventLoop loop;
  Reports reports;
  reports.install(loop);
  int calls = 0;
  {
    auto f = loop.create_future<int>();
    f.add_done_callback([&](qi::Future<int> g) { calls += g.done(); });
    f.set_exception(range_error());
  }
  EXPECT_TRUE(reports.items.empty()) << "the scheduled callback still holds the future";
  run_one_iteration(loop);
  EXPECT_EQ(calls, 1);
  ASSERT_EQ(reports.items.size(), 1u) << "reported once the callback let go of the last handle";
  EXPECT_TRUE(contains(reports.items[0].message, "never retrieved"));
}

TEST(FutureTest, ADoneCallbackThatReadsTheExceptionRetrievesIt) {
  QiEventLoop loop;
  Reports reports;
  reports.install(loop);
  bool saw = false;
  {
    auto f = loop.create_future<int>();
    f.add_done_callback([&](qi::Future<int> g) { saw = g.exception() != nullptr; });
    f.set_exception(range_error());
  }
  run_one_iteration(loop);
  EXPECT_TRUE(saw);
  EXPECT_TRUE(reports.items.empty());
}

TEST(FutureTest, TheNeverRetrievedReportNamesTheFutureInContextFuture) {
  QiEventLoop loop;
  Reports reports;
  reports.install(loop);
  std::vector<std::string> seen_in_handler;
  loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& c) {
    // The future is whole while the handler runs.
    seen_in_handler.push_back(c.future ? c.future.describe() + (c.future.done() ? " done" : " pending") : "none");
    reports.items.push_back(c);
  });
  {
    auto f = loop.create_future<int>();
    f.set_exception(range_error("lost"));
  }
  ASSERT_EQ(reports.items.size(), 1u);
  EXPECT_EQ(seen_in_handler, (std::vector<std::string>{"Future done"}));
  EXPECT_FALSE(reports.items[0].task) << "a plain future is not a task";
  // The kept context keeps the future alive (asyncio's context holds it too)...
  const qi::FutureRef kept = reports.items[0].future;
  ASSERT_TRUE(kept);
  EXPECT_TRUE(kept.done());
  EXPECT_FALSE(kept.cancelled());
  EXPECT_FALSE(kept.cancel("too late"));
  EXPECT_THROW(std::rethrow_exception(kept.state()->exception()), std::out_of_range);
  // ...and letting it go does not report it again.
  reports.items.clear();
  EXPECT_TRUE(reports.items.empty());
}

TEST(FutureTest, FutureRefComparesWithFuturesAndTaskRefs) {
  QiEventLoop loop;
  auto a = loop.create_future<int>();
  auto b = loop.create_future<int>();
  const qi::FutureRef ra = a.ref();
  EXPECT_TRUE(a == ra);
  EXPECT_FALSE(b == ra);
  EXPECT_TRUE(ra == a.ref());
  EXPECT_FALSE(ra == qi::FutureRef());
  EXPECT_TRUE(qi::FutureRef() == qi::TaskRef()) << "empty references are equal, whatever their kind";
  EXPECT_FALSE(ra == qi::current_task()) << "no task runs here";
  EXPECT_EQ(ra.describe(), "Future");
  EXPECT_TRUE(ra.cancel("via the reference"));
  EXPECT_TRUE(a.cancelled());
}

// --- Identity and lifetime ------------------------------------------------------

TEST(FutureTest, EqualityAndFutureRefFollowTheSharedState) {
  QiEventLoop loop;
  auto a = loop.create_future<int>();
  auto b = loop.create_future<int>();
  qi::Future<int> a2 = a;
  EXPECT_TRUE(a == a2);
  EXPECT_FALSE(a == b);
  EXPECT_TRUE(a.ref() == a2.ref());
  EXPECT_FALSE(a.ref() == b.ref());
  EXPECT_TRUE(a.ref());
  EXPECT_FALSE(qi::TaskRef());
  EXPECT_TRUE(qi::Future<int>() == qi::Future<int>());
}

TEST(FutureTest, AFutureMayOutliveItsLoop) {
  qi::Future<std::string> done, pending, failed;
  {
    QiEventLoop loop;
    done = loop.create_future<std::string>();
    done.set_result("kept");
    pending = loop.create_future<std::string>();
    pending.add_done_callback([] { ADD_FAILURE() << "a callback of a destroyed loop ran"; });
    failed = loop.create_future<std::string>();
    failed.set_exception(range_error());
  }
  EXPECT_EQ(done.get_loop(), nullptr);
  EXPECT_EQ(done.result(), "kept");
  // Completing it can no longer schedule its callbacks; it must not crash.
  pending.set_result("late");
  EXPECT_EQ(pending.result(), "late");
  EXPECT_THROW(done.add_done_callback([] {}), qi::RuntimeError);
  // Dropping an unretrieved exception with no loop to report to is logged.
  failed = qi::Future<std::string>();
}

// A pending future whose loop is gone may still complete, but no callback
// of it can ever run: adding one (what co_await and every combinator do)
// is refused, not accepted and silently dropped at completion.
TEST(FutureTest, AddDoneCallbackOnAFutureWhoseLoopIsGoneThrowsDoneOrPending) {
  qi::Future<int> pending, done;
  {
    QiEventLoop loop;
    pending = loop.create_future<int>();
    done = loop.create_future<int>();
    done.set_result(1);
  }
  for (const qi::Future<int>& f : {pending, done}) {
    bool ran = false;
    try {
      f.add_done_callback([&] { ran = true; });
      ADD_FAILURE() << "a callback that can never run was accepted";
    } catch (const qi::RuntimeError& e) {
      EXPECT_NE(std::string(e.what()).find("add_done_callback: Future belongs to an event loop that was destroyed"),
                std::string::npos)
          << e.what();
    }
    EXPECT_FALSE(ran);
  }
  pending.set_result(2);  // nothing was registered: nothing to drop
  EXPECT_EQ(pending.result(), 2);
}

// A loop made in the very storage of the destroyed one does not bring its
// futures back: they are still of a destroyed loop for add_done_callback
// and co_await (whose error names it, not "another event loop").
TEST(FutureTest, ALoopMadeWhereTheDestroyedOneWasDoesNotReviveItsFutures) {
  std::optional<QiEventLoop> loop;
  qi::Future<int> orphan = loop.emplace().create_future<int>();
  const QiEventLoop* first = &*loop;
  loop.reset();
  ASSERT_EQ(&loop.emplace(), first);
  EXPECT_EQ(orphan.get_loop(), nullptr);
  EXPECT_THROW(orphan.add_done_callback([] {}), qi::RuntimeError);
  std::string error;
  loop->run_until_complete([](qi::Future<int> f, std::string& error) -> qi::Coro<void> {
    try {
      (void)co_await f;
      ADD_FAILURE() << "awaited";
    } catch (const qi::RuntimeError& e) {
      error = e.what();
    }
  }(orphan, error));
  EXPECT_EQ(error.rfind("co_await: Future belongs to an event loop that was destroyed", 0), 0u) << error;
}

// A callback added while the loop lived can still be removed once it is
// gone; what was removed is neither run nor reported dropped when the
// future completes.
TEST(FutureTest, RemoveDoneCallbackWorksOnceTheLoopIsGone) {
  qi::Future<int> f;
  uint64_t removed = 0;
  int ran = 0;
  {
    QiEventLoop loop;
    f = loop.create_future<int>();
    removed = f.add_done_callback([&] { ++ran; });
  }
  EXPECT_EQ(f.remove_done_callback(removed), 1u);
  EXPECT_EQ(f.remove_done_callback(removed), 0u);
  log_capture::LogCapture log;
  f.set_result(2);
  EXPECT_EQ(log.text(), "");
  EXPECT_EQ(ran, 0);
  EXPECT_EQ(f.result(), 2);
}

TEST(FutureTest, RunUntilCompleteOfAMoveOnlyResultMovesItOut) {
  QiEventLoop loop;
  auto f = loop.create_future<std::unique_ptr<std::string>>();
  loop.call_soon([f] { f.set_result(std::make_unique<std::string>("owned")); });
  std::unique_ptr<std::string> p = loop.run_until_complete(f);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(*p, "owned");
}

TEST(FutureTest, RunUntilCompleteWithDoneCallbacksRunsThemToo) {
  QiEventLoop loop;
  Log log;
  auto f = loop.create_future<int>();
  f.add_done_callback(log.recorder("done callback"));
  loop.call_soon([f] { f.set_result(3); });
  EXPECT_EQ(loop.run_until_complete(f), 3);
  // run_until_complete stops from a done callback of its own, added after
  // ours: ours has run by the time it returns.
  EXPECT_EQ(log.items, (Strings{"done callback"}));
}

// An id names a callback of the future that returned it only: handed to
// another future (a mix-up of the caller's), it removes nothing there. The
// first callback of every future used to get the same id, so it removed the
// other future's first callback (a task awaiting it then never woke).
TEST(FutureTest, AnIdOfAnotherFutureRemovesNothing) {
  QiEventLoop loop;
  constexpr int kFutures = 50;
  std::vector<qi::Future<int>> futures;
  std::vector<std::vector<uint64_t>> ids(kFutures);
  int ran = 0;
  for (int i = 0; i < kFutures; ++i) {
    futures.push_back(loop.create_future<int>());
    // The second slot reused a few times: serials other than the first too.
    for (int k = 0; k < 3; ++k) futures[i].remove_done_callback(futures[i].add_done_callback([] {}));
    for (int k = 0; k < 3; ++k) ids[i].push_back(futures[i].add_done_callback([&] { ++ran; }));
  }
  for (int i = 0; i < kFutures; ++i)
    for (int j = 0; j < kFutures; ++j)
      if (i != j) {
        for (uint64_t id : ids[j]) ASSERT_EQ(futures[i].remove_done_callback(id), 0u) << i << " " << j;
      }
  for (auto& f : futures) f.set_result(1);
  run_one_iteration(loop);
  EXPECT_EQ(ran, kFutures * 3);
}

// cancel() from a done callback: the future is done before its callbacks
// run, so the call returns false and changes nothing (a plain future and a
// task alike).
TEST(FutureTest, CancelFromADoneCallbackReturnsFalseAndChangesNothing) {
  QiEventLoop loop;
  auto f = loop.create_future<int>();
  std::vector<bool> returned;
  f.add_done_callback([&](qi::Future<int> g) { returned.push_back(g.cancel("too late")); });
  auto t = loop.create_task([]() -> qi::Coro<int> { co_return 7; }());
  t.add_done_callback([&](qi::Future<int> g) { returned.push_back(g.cancel("too late")); });
  f.set_result(1);
  EXPECT_EQ(loop.run_until_complete(t), 7);
  run_one_iteration(loop);
  EXPECT_EQ(returned, (std::vector<bool>{false, false}));
  EXPECT_EQ(f.result(), 1);
  EXPECT_FALSE(t.cancelled());
  EXPECT_EQ(t.result(), 7);
}

// A task's wake-up is kept inline in the future it awaits until another
// callback comes; then both move to the future's list, in the order added.
TEST(FutureTest, AnAwaitingTaskAndPlainCallbacksRunInTheOrderAdded) {
  QiEventLoop loop;
  Log log;
  auto f = loop.create_future<int>();
  auto waiter = [&](qi::Future<int> g) -> qi::Coro<void> {
    log("task got " + std::to_string(co_await g));
  };
  loop.create_task(waiter(f));
  run_one_iteration(loop);  // the task now awaits f
  f.add_done_callback([&] { log("callback"); });
  loop.create_task(waiter(f));
  run_one_iteration(loop);
  f.add_done_callback([&] { log("last callback"); });
  f.set_result(3);
  run_one_iteration(loop);  // the callbacks; the tasks' steps run in it too
  EXPECT_EQ(log.items, (Strings{"task got 3", "callback", "task got 3", "last callback"}));

  // Taking it back: close() unhooks a pending task's wake-up from the list
  // it moved to, so g then has no callback left and completes on the closed
  // loop (with one left, set_result would refuse: nothing could run it).
  auto g = loop.create_future<int>();
  loop.create_task(waiter(g));
  run_one_iteration(loop);
  const uint64_t id = g.add_done_callback([&] { log("never"); });
  EXPECT_EQ(g.remove_done_callback(id), 1u);
  loop.set_exception_handler([](QiEventLoop&, const qi::ExceptionContext&) {});  // "destroyed but pending"
  loop.close();
  EXPECT_NO_THROW(g.set_result(1));
}

// Handles are counted atomically: one may be copied and dropped on another
// thread, e.g. captured in a call_soon_threadsafe callback that completes it
// (run under ThreadSanitizer too), while the loop's thread copies its own.
TEST(FutureTest, HandlesMayBeCopiedAndDroppedOnOtherThreads) {
  QiEventLoop loop;
  constexpr int kFutures = 200;
  std::vector<qi::Future<int>> futures;
  for (int i = 0; i < kFutures; ++i) futures.push_back(loop.create_future<int>());
  std::thread worker([&loop, copies = futures] {
    for (int i = 0; i < kFutures; ++i) {
      qi::Future<int> f = copies[i];
      loop.call_soon_threadsafe([f, i] { f.set_result(i); });
    }
  });
  int sum = 0;
  for (int i = 0; i < kFutures; ++i) {
    qi::Future<int> mine = futures[i];  // copied here while the worker copies its own
    sum += loop.run_until_complete(mine);
  }
  worker.join();
  EXPECT_EQ(sum, kFutures * (kFutures - 1) / 2);
}


// The exception handler runs on the loop's thread: a last handle dropped on
// another thread sends the "never retrieved" report there (it ran on the
// dropping thread, racing with the loop).
TEST(FutureTest, AnUnretrievedExceptionWhoseLastHandleGoesOnAnotherThreadIsReportedOnTheLoopsThread) {
  QiEventLoop loop;
  std::vector<std::thread::id> reported_on;
  loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& ctx) {
    reported_on.push_back(std::this_thread::get_id());
    EXPECT_NE(ctx.message.find("exception was never retrieved"), std::string::npos) << ctx.message;
    EXPECT_TRUE(ctx.future.done());
  });
  {
    auto f = loop.create_future<int>();
    f.set_exception(std::make_exception_ptr(std::runtime_error("lost")));
    std::thread([f = std::move(f)]() mutable { f = {}; }).join();
  }
  EXPECT_TRUE(reported_on.empty());
  run_one_iteration(loop);
  EXPECT_EQ(reported_on, std::vector<std::thread::id>{std::this_thread::get_id()});
}

// --- Deletions inside deletions (the trashcan) -------------------------------

// A done future whose value holds a token, and the token's watch.
struct Held {
  std::shared_ptr<qi::Future<std::shared_ptr<int>>> f;
  std::weak_ptr<int> token;
  explicit Held(QiEventLoop& loop)
      : f(std::make_shared<qi::Future<std::shared_ptr<int>>>(loop.create_future<std::shared_ptr<int>>())) {
    auto t = std::make_shared<int>(7);
    token = t;
    f->set_result(std::move(t));
  }
};

// A destructor that drops the last handle of a future finds it gone when the
// drop returns, as it always did (and as in CPython, whose trashcan defers
// only past a nesting depth): also when that destructor runs inside the
// deletion of another state — a done callback of a pending future whose last
// handle goes, or the exception handler reporting a state such a deletion
// released. Deferring every nested deletion made the drop return with the
// future (and what its value holds: a socket, a lock, a file) still alive.
TEST(FutureTest, AHandleDroppedByADestructorInsideADeletionGoesAtOnce) {
  QiEventLoop loop;
  Held held(loop);
  std::optional<bool> gone_at_drop;
  {
    auto outer = loop.create_future<void>();
    outer.add_done_callback(OnDestroy([&] {
      *held.f = {};
      gone_at_drop = held.token.expired();
    }));
  }
  ASSERT_TRUE(gone_at_drop.has_value());
  EXPECT_TRUE(*gone_at_drop);

  Held other(loop);
  std::optional<bool> gone_in_handler;
  loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext&) {
    *other.f = {};
    gone_in_handler = other.token.expired();
  });
  {
    auto failed = std::make_shared<qi::Future<int>>(loop.create_future<int>());
    failed->set_exception(std::make_exception_ptr(std::runtime_error("lost")));
    auto outer = loop.create_future<void>();
    outer.add_done_callback(OnDestroy([failed = std::move(failed)]() mutable { failed.reset(); }));
  }
  loop.set_exception_handler(nullptr);
  ASSERT_TRUE(gone_in_handler.has_value());
  EXPECT_TRUE(*gone_in_handler);
}

// The exception handler, reporting states that a deletion released one by
// one, keeps some (ctx.future), drops the last handles of others and
// throws: every state is reported once, the kept ones live until let go,
// and all of them go.
TEST(FutureTest, TheHandlerOfReportsRaisedInsideADeletionMayKeepDropAndThrow) {
  constexpr int kFailed = 1000;
  QiEventLoop loop;
  std::vector<qi::FutureRef> kept;
  std::vector<Held> dropped;
  for (int i = 0; i < kFailed; ++i) dropped.emplace_back(loop);
  int reports = 0;
  loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& ctx) {
    ++reports;
    if (reports % 2 == 0) kept.push_back(ctx.future);
    *dropped[reports - 1].f = {};
    EXPECT_TRUE(dropped[reports - 1].token.expired());
    if (reports % 3 == 0) throw std::runtime_error("handler failed");
  });
  {
    // Two pending futures, each holding the next through a done callback:
    // the failed ones go from inside the inner's deletion, itself released
    // by the outer's.
    auto failed = std::make_shared<std::vector<qi::Future<int>>>();
    for (int i = 0; i < kFailed; ++i) {
      failed->push_back(loop.create_future<int>());
      failed->back().set_exception(std::make_exception_ptr(std::runtime_error("lost")));
    }
    auto inner = std::make_shared<qi::Future<void>>(loop.create_future<void>());
    inner->add_done_callback(OnDestroy([failed = std::move(failed)]() mutable { failed.reset(); }));
    auto outer = loop.create_future<void>();
    outer.add_done_callback(OnDestroy([inner = std::move(inner)]() mutable { inner.reset(); }));
  }
  EXPECT_EQ(reports, kFailed);
  EXPECT_EQ(kept.size(), std::size_t{kFailed / 2});
  for (const auto& f : kept) EXPECT_TRUE(f.done());
  kept.clear();
  EXPECT_EQ(reports, kFailed);  // reported once
  loop.set_exception_handler(nullptr);
}

// A link of a chain through values: a done future's value holds the
// future before it (and, once, a pending future with a done callback).
struct Link {
  std::optional<qi::Future<std::shared_ptr<Link>>> prev;
  std::optional<qi::Future<void>> side;
};
using Chain = std::optional<qi::Future<std::shared_ptr<Link>>>;

// Puts `link` on top of `chain`: link holds the chain so far, and the chain
// becomes a done future holding link.
void push_link(QiEventLoop& loop, Chain& chain, std::shared_ptr<Link> link) {
  link->prev = std::move(chain);
  chain = loop.create_future<std::shared_ptr<Link>>();
  chain->set_result(std::move(link));
}

// Puts n plain links on top of `chain`.
void extend_chain(QiEventLoop& loop, Chain& chain, int n) {
  for (int i = 0; i < n; ++i) push_link(loop, chain, std::make_shared<Link>());
}

// What a destructor run inside a cascade may do: close the loop, make
// futures, gathers and shields, close (destroying a pending task's frame),
// complete and drop them. Everything goes.
TEST(FutureTest, DestructorsInsideACascadeMayCloseMakeCompleteAndDrop) {
  QiEventLoop loop;
  std::vector<std::weak_ptr<int>> tokens;
  bool ran = false;
  {
    auto frame_token = std::make_shared<int>(1);
    tokens.push_back(frame_token);
    auto coro = [](std::shared_ptr<int> t, qi::Future<std::shared_ptr<int>> f) -> qi::Coro<int> {
      co_await f;
      co_return *t;
    };
    auto waiter = loop.create_task(coro(std::move(frame_token), loop.create_future<std::shared_ptr<int>>()));
    Chain top;
    extend_chain(loop, top, 50'000);
    auto link = std::make_shared<Link>();
    link->side = loop.create_future<void>();
    link->side->add_done_callback(OnDestroy([&] {
      ran = true;
      Held h(loop);
      tokens.push_back(h.token);
      auto pending = loop.create_future<std::shared_ptr<int>>();
      (void)qi::gather(*h.f, pending);
      (void)qi::shield(pending);
      loop.close();  // destroys the waiter's frame, lets the gather and the shield go
      EXPECT_TRUE(waiter.cancelled());
      EXPECT_THROW(loop.create_task(coro(std::make_shared<int>(2), pending)), qi::RuntimeError);
      pending.set_result(std::make_shared<int>(3));  // its callbacks went with close()
      auto fresh = loop.create_future<int>();
      fresh.set_result(1);
    }));
    push_link(loop, top, std::move(link));
    extend_chain(loop, top, 49'999);
    top.reset();  // the whole chain, one link at a time
  }
  EXPECT_TRUE(ran);
  for (const auto& t : tokens) EXPECT_TRUE(t.expired());
}

// The last handles of a chain of 100,000 nested gathers and of a wide tree
// (100,000 leaves) go on a thread with a 256 KiB stack, which then ends:
// nothing recurses per link there, and what the deferral allocated there is
// freed (LeakSanitizer), states of the loop's thread's pool included.
TEST(FutureTest, ChainsAndTreesGoOnAWorkerThreadWithASmallStackThatThenEnds) {
  QiEventLoop loop;
  auto f = loop.create_future<void>();
  auto chain = std::make_shared<qi::Future<void>>(f);
  for (int i = 0; i < 100'000; ++i) *chain = qi::gather(std::vector<qi::Future<void>>{*chain});
  std::vector<std::weak_ptr<int>> tokens;
  std::vector<qi::Future<std::vector<std::shared_ptr<int>>>> level;
  for (int i = 0; i < 1000; ++i) {
    std::vector<qi::Future<std::shared_ptr<int>>> leaves;
    for (int j = 0; j < 100; ++j) {
      auto t = std::make_shared<int>(j);
      tokens.push_back(t);
      leaves.push_back(loop.create_future<std::shared_ptr<int>>());
      leaves.back().set_result(std::move(t));
    }
    level.push_back(qi::gather(std::move(leaves)));
  }
  using Tree = qi::Future<std::vector<std::vector<std::shared_ptr<int>>>>;
  auto tree = std::make_shared<Tree>(qi::gather(std::move(level)));
  f.set_result();
  loop.run_until_complete(*chain);
  loop.run_until_complete(*tree);
  f = {};
  for (int round = 0; round < 2; ++round) {
    std::unique_ptr<QThread> t(QThread::create([&] {
      if (round == 0) chain.reset();
      else tree.reset();
    }));
    t->setStackSize(256 * 1024);
    t->start();
    ASSERT_TRUE(t->wait(QDeadlineTimer(60'000)));
  }
  for (const auto& tk : tokens) ASSERT_TRUE(tk.expired());
}

// A wide tree (a callback holding 20,000 leaves) under a chain of every
// length around the depth past which deletions are deferred: at some length
// its leaves are released past it, all of them deferred at once (the
// overflow grows past its inline slots), and every one still goes
// (LeakSanitizer: so does the overflow).
TEST(FutureTest, AWideTreeAtTheDeferralDepthGoesWhole) {
  for (int length = 20; length < 45; ++length) {
    QiEventLoop loop;
    std::vector<qi::Future<std::shared_ptr<int>>> leaves;
    std::vector<std::weak_ptr<int>> tokens;
    for (int i = 0; i < 20'000; ++i) {
      auto t = std::make_shared<int>(i);
      tokens.push_back(t);
      leaves.push_back(loop.create_future<std::shared_ptr<int>>());
      leaves.back().set_result(std::move(t));
    }
    // The chain's first link holds a pending future whose callback holds
    // the leaves' last handles.
    auto held = std::make_shared<std::vector<qi::Future<std::shared_ptr<int>>>>(std::move(leaves));
    auto first = std::make_shared<Link>();
    first->side = loop.create_future<void>();
    first->side->add_done_callback(OnDestroy([held = std::move(held)]() mutable { held.reset(); }));
    Chain chain;
    push_link(loop, chain, std::move(first));
    extend_chain(loop, chain, length);
    chain.reset();
    for (const auto& t : tokens) ASSERT_TRUE(t.expired()) << "under " << length << " links";
  }
}

// A loop destroyed inside a cascade, around the deferral depth (the
// combinators it dropped just before go after it), by a done callback that
// owns it, with a pending task of it and combinators of it
// watching a pending future: the loop's destructor closes it (destroying
// the task's frame, letting the combinators go) while states released
// before are still waiting for their turn, and everything goes.
TEST(FutureTest, ALoopDestroyedInsideACascadeLetsGoOfWhatItHeld) {
  for (int length = 20; length < 45; ++length) {
    QiEventLoop loop;
    std::vector<std::weak_ptr<int>> tokens;
    bool ran = false;
    {
      auto inner = std::make_shared<std::unique_ptr<QiEventLoop>>(std::make_unique<QiEventLoop>());
      QiEventLoop& other = **inner;
      other.set_exception_handler([](QiEventLoop&, const qi::ExceptionContext&) {});
      Held h(other);
      tokens.push_back(h.token);
      auto pending = std::make_shared<qi::Future<std::shared_ptr<int>>>(other.create_future<std::shared_ptr<int>>());
      auto frame_token = std::make_shared<int>(1);
      tokens.push_back(frame_token);
      auto coro = [](std::shared_ptr<int> t, qi::Future<std::shared_ptr<int>> f) -> qi::Coro<int> {
        co_await f;
        co_return *t;
      };
      (void)other.create_task(coro(std::move(frame_token), *pending));
      auto g = std::make_shared<qi::Future<std::tuple<std::shared_ptr<int>, std::shared_ptr<int>>>>(
          qi::gather(*h.f, *pending));
      auto s = std::make_shared<qi::Future<std::shared_ptr<int>>>(qi::shield(*pending));
      Chain chain;
      auto first = std::make_shared<Link>();
      first->side = loop.create_future<void>();
      first->side->add_done_callback(OnDestroy([&ran, inner = std::move(inner), g = std::move(g), s = std::move(s),
                                                pending = std::move(pending)]() mutable {
        ran = true;
        g.reset();
        s.reset();
        pending.reset();
        inner->reset();  // the loop goes
      }));
      push_link(loop, chain, std::move(first));
      extend_chain(loop, chain, length);
    }
    EXPECT_TRUE(ran);
    for (const auto& t : tokens) EXPECT_TRUE(t.expired()) << "under " << length << " links";
  }
}

// Declared before anything of the thread's allocates: destroyed after the
// thread's frame pool (the states' allocator) at thread exit.
thread_local Chain t_chain;

// A thread_local holds the last handle of a chain of 100,000 links of that
// thread's own loop (destroyed before it): the chain goes at thread exit,
// after the frame pool its states came from, one link at a time.
TEST(FutureTest, AChainHeldByAThreadLocalGoesAtThreadExit) {
  static std::weak_ptr<int> token;
  // pthread: its join waits for the thread's thread_locals to go (QThread's
  // wait() returns before).
  auto body = [](void*) -> void* {
    t_chain.emplace();
    QiEventLoop loop;
    auto first = std::make_shared<Link>();
    auto tail = std::make_shared<int>(1);
    token = tail;
    first->side = loop.create_future<void>();
    first->side->add_done_callback(OnDestroy([tail] {}));
    push_link(loop, t_chain, std::move(first));
    extend_chain(loop, t_chain, 100'000);
    return nullptr;
  };
  pthread_attr_t attr;
  ASSERT_EQ(pthread_attr_init(&attr), 0);
  ASSERT_EQ(pthread_attr_setstacksize(&attr, 256 * 1024), 0);
  pthread_t t;
  ASSERT_EQ(pthread_create(&t, &attr, body, nullptr), 0);
  pthread_attr_destroy(&attr);
  ASSERT_EQ(pthread_join(t, nullptr), 0);
  EXPECT_TRUE(token.expired());
}

}  // namespace

