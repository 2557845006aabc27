// qiloop/event_loop.h — QiEventLoop: asyncio's event loop, running inside Qt's.
//
//   QCoreApplication app(argc, argv);
//   QiEventLoop loop;
//   loop.call_soon([] { qDebug() << "first"; });
//   loop.call_later(5ms, [&] { loop.stop(); });
//   loop.run_forever();              // nested mode: runs a QEventLoop until stop()
//
// or, in an application that already runs app.exec(), attached mode:
//
//   QiRunner runner;                 // runner.loop() is now the running loop
//   return app.exec();
//
// Scheduling contract (asyncio's, exactly):
// - One logical iteration: poll I/O without blocking (only while fds are
//   registered) and take in call_soon_threadsafe callbacks → move due timers
//   to the ready queue → run exactly the callbacks that were ready when the
//   iteration began. What they schedule runs on the next iteration.
// - The ready queue is FIFO. Timers are due in (deadline, scheduling order):
//   equal deadlines run in the order call_at/call_later was called. A timer
//   never runs before its deadline; a delay <= 0 is a timer due now, which
//   runs on the next iteration after the callbacks already ready.
// - stop() lets the current iteration finish. stop() before run_forever()
//   makes it run exactly one iteration.
// - An exception escaping a callback goes to the exception handler, which
//   runs before the next callback; the loop continues. An exception thrown by
//   the handler itself is logged.
//
// Iterations run in slices: when Qt wakes the loop it runs iterations back to
// back until nothing is ready or the slice budget (1 ms by default) is spent,
// then returns to Qt. See docs/design.md.
//
// Threads: a loop belongs to the thread of its QObject. Only
// call_soon_threadsafe may be called from other threads. run_forever,
// run_until_complete, stop and close throw qi::RuntimeError from another
// thread; other calls are checked in debug mode (set_debug(true) or
// QILOOP_DEBUG=1). One running loop per thread. moveToThread() works on a
// loop that is not running and has no QiRunner; moving a running or attached
// loop is fatal (qFatal): Qt cannot refuse a move.
//
// Re-entrancy: every method may be called from a callback of the same loop
// except run_forever / run_until_complete (already running) and close
// (running). A callback that starts a nested QEventLoop blocks this loop until
// it returns; see docs/wakeup-model.md.
//
// Lifetime: close() destroys pending callbacks (scheduling from their
// destructors is ignored). Destroying a running loop is fatal (qFatal), and
// so is destroying it from another thread. A thread that may still call
// call_soon_threadsafe must be done with it before the loop is destroyed
// (after close() such calls throw; after destruction they are undefined).
#pragma once

#include <qiloop/clock.h>
#include <qiloop/detail/callback_node.h>
#include <qiloop/detail/deadline.h>
#include <qiloop/detail/invoke.h>
#include <qiloop/errors.h>
#include <qiloop/export.h>
#include <qiloop/future.h>
#include <qiloop/handle.h>
#include <qiloop/task.h>
#include <qiloop/threads/detail/executor_job.h>

#include <QtCore/QObject>

#include <chrono>
#include <exception>
#include <functional>
#include <memory>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

class QiEventLoop;
class QiRunner;
class QByteArray;
class QEvent;
class QAbstractEventDispatcher;

namespace qi {

// qi::ExceptionContext
// What the exception handler receives (asyncio's context dict). Its
// references keep what they name alive, also when the handler keeps a copy.
struct ExceptionContext {
  std::string message;
  std::exception_ptr exception;    // may be null
  std::optional<Handle> handle;    // the callback that raised, when there is one
  TaskRef task;                    // the task whose run is concerned, when there is one
  FutureRef future;                // the future (or task) whose exception nobody retrieved
};

// qi::LoopStats
// Counters for tests and diagnostics; they only grow.
struct LoopStats {
  uint64_t iterations = 0;       // logical iterations begun
  uint64_t slices = 0;           // times Qt handed control to the loop
  uint64_t posted_wakeups = 0;   // wake events posted to Qt
  uint64_t deferred_wakeups = 0; // wake-ups that arrived while a callback was on the stack
  uint64_t timer_arms = 0;       // timerfd (re)arms
  uint64_t io_polls = 0;         // polls of the watched fds (epoll_wait, or the portable backend's check)
};

class SocketAddress;  // <qiloop/net/address.h>
struct AddrInfo;      // <qiloop/net/socket.h>
class Transport;        // <qiloop/net/transport.h>
class BaseProtocol;     // <qiloop/net/protocols.h>
struct ConnectOptions;  // <qiloop/net/transport.h>
class SslContext;       // <qiloop/net/ssl.h>
struct TlsOptions;      // <qiloop/net/ssl.h>
class DatagramTransport;  // <qiloop/net/datagram.h>
class DatagramProtocol;   // <qiloop/net/datagram.h>
struct DatagramOptions;   // <qiloop/net/datagram.h>
namespace detail {
// What create_datagram_endpoint returns for a factory returning
// std::unique_ptr<P>.
template <class Factory>
using DatagramResult = std::pair<DatagramTransport*, typename std::invoke_result_t<Factory&>::element_type*>;
}  // namespace detail
class Server;              // <qiloop/net/server.h>
struct ServerOptions;      // <qiloop/net/server.h>
struct UnixServerOptions;  // <qiloop/net/server.h>
namespace detail {
// What create_connection returns for a protocol factory returning
// std::unique_ptr<P>.
template <class Factory>
using ConnectResult = std::pair<Transport*, typename std::invoke_result_t<Factory&>::element_type*>;
}  // namespace detail

namespace detail {
class LoopFds;  // src/net/fd_transport.h
struct LoopImpl;
struct AsyncGenBase;
class CloseWatch;
class MainInterrupt;
// Called on the loop's thread just before a nested Qt loop that may exclude
// timers (qi::modal's fn): an armed doorbell timer becomes a posted wake
// event, which every nested loop delivers (src/run_modes.cpp).
QILOOP_EXPORT void hand_doorbell_to_nested_loop(QiEventLoop& loop);
}
template <class F, class... Args>
class to_thread;

// qi::get_running_loop()
// The loop running on the calling thread (nested, attached, or inside
// shutdown). Any thread. Throws qi::RuntimeError when none.
QILOOP_EXPORT QiEventLoop& get_running_loop();

// qi::running_loop()
// The same, or null when none runs. Any thread; never throws.
QILOOP_EXPORT QiEventLoop* running_loop() noexcept;

// qi::all_tasks()
// The tasks of `loop` not done yet (asyncio.all_tasks), oldest first. Loop
// thread. Each one's chain: qi::format_call_graph (<qiloop/call_graph.h>),
// or all at once: QiEventLoop::dump_tasks().
QILOOP_EXPORT std::vector<TaskRef> all_tasks(const QiEventLoop& loop);

}  // namespace qi

class QILOOP_EXPORT QiEventLoop : public QObject {
  Q_OBJECT

 public:
  using clock = std::chrono::steady_clock;
  using time_point = clock::time_point;
  using duration = clock::duration;
  using ExceptionHandler = std::function<void(QiEventLoop&, const qi::ExceptionContext&)>;

  // QiEventLoop::QiEventLoop()
  // A loop bound to the calling thread, not running. No QCoreApplication is
  // needed until it runs. Throws qi::RuntimeError when the OS refuses its
  // descriptors (epoll, timerfd, eventfd).
  explicit QiEventLoop(QObject* parent = nullptr);
  // QiEventLoop::~QiEventLoop()
  // Closes the loop (see close()). Fatal (qFatal) while running or from
  // another thread (see "Lifetime" above).
  ~QiEventLoop() override;

  // --- Scheduling ----------------------------------------------------------

  // QiEventLoop::call_soon()
  // Runs f(args...) on a later iteration, after everything already ready —
  // including what other threads sent with call_soon_threadsafe before this
  // call (as asyncio's one ready queue: if the caller saw the effect of a
  // sender's later action, the sender's callback runs first).
  // Throws std::invalid_argument for an empty callable, qi::RuntimeError on a
  // closed loop.
  template <class F, class... Args>
  qi::Handle call_soon(F&& f, Args&&... args) {
    if (closed_ || debug_) [[unlikely]] {
      if (!check_can_schedule("call_soon")) return {};
    }
    qi::detail::CallbackNode* n = make_node(0, "call_soon", std::forward<F>(f), std::forward<Args>(args)...);
    push_ready(n);
    if (!in_slice_) [[unlikely]] wake_from_outside();
    return qi::Handle::adopt(n);
  }

  // QiEventLoop::call_at()
  // Runs f(args...) once time() >= when, never earlier.
  // Deadlines beyond what time_point holds saturate to time_point::max()
  // ("never"), so duration::max() means "no deadline" rather than an
  // overflow into the past.
  template <class Dur, class F, class... Args>
  qi::TimerHandle call_at(std::chrono::time_point<clock, Dur> when, F&& f, Args&&... args) {
    return schedule_at(qi::detail::deadline_at(when, "call_at"), "call_at", std::forward<F>(f),
                       std::forward<Args>(args)...);
  }

  // QiEventLoop::call_later()
  // call_at(time() + delay, ...). A delay <= 0 is due now. Throws
  // std::invalid_argument for a NaN floating-point delay.
  template <class Rep, class Period, class F, class... Args>
  qi::TimerHandle call_later(std::chrono::duration<Rep, Period> delay, F&& f, Args&&... args) {
    return schedule_at(qi::detail::deadline_after(time(), delay, "call_later"), "call_later", std::forward<F>(f),
                       std::forward<Args>(args)...);
  }
  // The delay in seconds; the same contract.
  template <class F, class... Args>
  qi::TimerHandle call_later(double seconds, F&& f, Args&&... args) {
    return call_later(std::chrono::duration<double>(seconds), std::forward<F>(f), std::forward<Args>(args)...);
  }

  // QiEventLoop::call_soon_threadsafe()
  // call_soon for any thread. The returned handle may be used on any thread.
  // Wakes the loop only when its inbox goes from empty to non-empty while the
  // loop is idle. Throws qi::RuntimeError when the loop is closed.
  template <class F, class... Args>
  qi::Handle call_soon_threadsafe(F&& f, Args&&... args) {
    qi::detail::CallbackNode* n = make_node(qi::detail::CallbackNode::kThreadsafe, "call_soon_threadsafe",
                                            std::forward<F>(f), std::forward<Args>(args)...);
    if (!schedule_threadsafe(n)) return {};
    return qi::Handle::adopt(n);
  }

  // QiEventLoop::time()
  // The loop's monotonic clock: std::chrono::steady_clock, or the qi::Clock
  // given to set_clock().
  time_point time() const noexcept {
    if (!clock_) [[likely]]
      return clock::now();
    return clock_->now();
  }

  // QiEventLoop::set_clock()
  // Makes c the loop's clock (see <qiloop/clock.h>); null restores the real
  // steady clock. Every timer decision follows it; the slice budget stays on
  // real time. The loop does not own c. Loop thread only. Throws
  // qi::RuntimeError while the loop runs, while timers are pending (their
  // deadlines belong to the old clock), and when c serves another loop.
  void set_clock(qi::Clock* c);
  // QiEventLoop::get_clock()
  // The clock given to set_clock(), or null (the real steady clock).
  qi::Clock* get_clock() const noexcept { return clock_; }

  // --- Futures -------------------------------------------------------------

  // QiEventLoop::create_future()
  // A pending qi::Future<T> bound to this loop (asyncio's
  // loop.create_future()). Works before the loop runs and on a closed loop
  // (completing it then throws when it has done callbacks to schedule).
  // Loop thread. Throws only std::bad_alloc.
  template <class T = void>
  [[nodiscard]] qi::Future<T> create_future() {
    return qi::Future<T>(*this);
  }

  // --- Tasks ---------------------------------------------------------------

  // QiEventLoop::create_task()
  // Wraps coro in a task whose first step runs on a later iteration (works
  // before the loop runs). An empty name becomes "Task-N". Throws
  // qi::RuntimeError on a closed loop or for a Coro that already ran
  // (awaited, or given to a task), std::invalid_argument for an empty Coro.
  template <class T>
  qi::Task<T> create_task(qi::Coro<T> coro, std::string name = {}) {
    return make_task(std::move(coro), std::move(name), TaskStart::kNextIteration, "create_task");
  }

  // QiEventLoop::run_task()
  // Like create_task, but runs the coroutine now, inside the caller, until
  // its first suspension (qtinter's run_task): code before the first
  // co_await runs synchronously, e.g. inside a signal emission. An exception
  // in that first step is stored in the task. current_task() is the new task
  // meanwhile and is restored after. Throws qi::RuntimeError when the loop is
  // not running.
  template <class T>
  qi::Task<T> run_task(qi::Coro<T> coro, std::string name = {}) {
    return make_task(std::move(coro), std::move(name), TaskStart::kNow, "run_task");
  }

  // QiEventLoop::shutdown()
  // What QiRunner and qi::run do on exit, for a loop that is not running:
  // cancels the tasks still pending and runs the loop until they finish
  // (at most kShutdownCancelRounds rounds of cancelling, each waiting at
  // most kShutdownRoundTime), reports those that refused, closes the async
  // generators still suspended (shutdown_asyncgens(), one more such round),
  // shuts the default executor down (shutdown_default_executor(): bounded by
  // executor_shutdown_timeout(), reported past it), runs the callbacks
  // already ready (bounded), then closes the loop.
  // Loop thread. Throws qi::RuntimeError while the loop runs (so also from
  // its own callbacks: shutdown runs the loop itself); on a closed loop it
  // does nothing.
  void shutdown();
  static constexpr int kShutdownCancelRounds = 2;

  // QiEventLoop::shutdown_asyncgens()
  // `co_await loop.shutdown_asyncgens()`: asyncio's loop.shutdown_asyncgens().
  // Closes (aclose()) every qi::AsyncGenerator started on this loop and not
  // finished, each in a task of its own, concurrently, and returns when all
  // are closed; a generator whose aclose() throws is reported through the
  // exception handler. Generators started afterwards are not closed by this
  // call. shutdown() (so QiRunner and qi::run) calls it after cancelling the
  // leftover tasks. Loop thread.
  qi::Coro<void> shutdown_asyncgens();
  static constexpr std::chrono::milliseconds kShutdownRoundTime{500};

  // QiEventLoop::pending_tasks()
  // How many tasks of this loop are not done yet (created and not finished,
  // whether or not a handle remains). Loop thread.
  std::size_t pending_tasks() const noexcept;

  // QiEventLoop::dump_tasks()
  // "Where is my program stuck?": every pending task (qi::all_tasks), oldest
  // first, in qi::format_call_graph's layout — its call stack and the tasks
  // awaiting it (named, one level: each is listed on its own). A first line
  // counts them. Loop thread; any time (in a callback, a handler, a
  // debugger: `call loop.dump_tasks()`).
  std::string dump_tasks() const;

  // --- Executors (threads) ---------------------------------------------------

  // QiEventLoop::run_in_executor()
  // asyncio's loop.run_in_executor: runs f(args...) on `executor` (a
  // qi::Executor*, or a std::shared_ptr to one; nullptr: the default
  // executor, a qi::ThreadPoolExecutor of ThreadPoolExecutor::
  // default_max_workers() threads created on first use) and returns a
  // qi::Future<R> of its result, R being what f returns (void and move-only
  // types too). f and args are decay-copied (or moved) into the job now, as
  // std::thread does, invoked as rvalues on the worker and destroyed there.
  // The outcome comes back through call_soon_threadsafe and completes the
  // future on this loop's thread; an exception keeps its original type, and
  // the future records where run_in_executor was called (its describe(), the
  // "exception was never retrieved" report, and the call graph of a task it
  // escaped from say "submitted at file:line (function)").
  // Cancelling the future (or the task awaiting it) completes it at once; a
  // job not started yet then never runs; a running one is not interrupted
  // (a thread cannot be) — it runs on, and its result is destroyed when it
  // ends. A loop closed meanwhile drops the result on the worker.
  // Loop thread. Throws qi::RuntimeError on a closed loop and, for the
  // default executor, after shutdown_default_executor(); what the
  // executor's submit throws (qi::RuntimeError after its shutdown);
  // std::invalid_argument for an empty callable. f returning a qi::Coro is
  // refused at compile time.
  template <class F, class... Args>
  qi::Future<qi::detail::executor_result_t<F, Args...>> run_in_executor(qi::detail::SubmitTo executor, F&& f,
                                                                         Args&&... args) {
    return submit_job("run_in_executor", executor.executor, executor.site, std::forward<F>(f),
                      std::forward<Args>(args)...);
  }

  // QiEventLoop::set_default_executor()
  // Makes `executor` what run_in_executor(nullptr, ...) and qi::to_thread
  // use from now on (work already submitted stays where it is). The loop
  // shares its ownership; close() shuts it down without waiting. Loop
  // thread. Throws std::invalid_argument for null.
  void set_default_executor(std::shared_ptr<qi::Executor> executor);

  // QiEventLoop::default_executor()
  // The default executor, or null when none was set or created yet (or
  // after shutdown_default_executor). Loop thread.
  std::shared_ptr<qi::Executor> default_executor() const;

  // QiEventLoop::shutdown_default_executor()
  // `co_await loop.shutdown_default_executor()` (asyncio 3.12's, with its
  // timeout): shuts the default executor down — work already queued still
  // runs — and waits, without blocking the loop, for its threads to end, at
  // most `timeout` (default: executor_shutdown_timeout()). If work still
  // runs then, the loop's exception handler receives one report naming
  // each job still running or queued and where it was submitted, and the
  // call returns: the executor is left to end on its own threads, never
  // joined by the loop (an application must not hang on exit because of
  // it). From then on run_in_executor(nullptr, ...) and qi::to_thread throw
  // qi::RuntimeError. Without a default executor it only does the latter.
  // QiRunner and qi::run call it (see QiEventLoop::shutdown). Loop thread.
  qi::Coro<void> shutdown_default_executor();
  qi::Coro<void> shutdown_default_executor(duration timeout);

  // QiEventLoop::set_executor_shutdown_timeout()
  // QiEventLoop::executor_shutdown_timeout()
  // The bound of shutdown_default_executor() without an argument, so also
  // of QiRunner's and qi::run's exit (default
  // kDefaultExecutorShutdownTimeout). Loop thread. Throws
  // std::invalid_argument for a negative duration.
  void set_executor_shutdown_timeout(duration timeout);
  duration executor_shutdown_timeout() const noexcept;
  static constexpr std::chrono::seconds kDefaultExecutorShutdownTimeout{5};

  // --- Running and stopping -------------------------------------------------

  // QiEventLoop::run_forever()
  // Nested mode: runs a QEventLoop until stop(). Throws qi::RuntimeError when
  // the loop is closed or already running, when another loop runs on this
  // thread, in attached mode, from a foreign thread, or without a
  // QCoreApplication.
  void run_forever();

  // QiEventLoop::run_until_complete()
  // Runs until the future is done and returns its result (or rethrows its
  // exception with the original type).
  // Also takes a Coro (wrapped in a task) or a Task. Throws
  // std::invalid_argument for an empty future, qi::RuntimeError for a future
  // whose loop was destroyed or that belongs to another loop (and as
  // run_forever()), before it runs.
  template <class T>
  T run_until_complete(qi::Coro<T> coro) {
    coro.check_runnable("run_until_complete");
    check_can_run("run_until_complete");
    return run_until_complete(create_task(std::move(coro)));
  }
  template <class T>
  T run_until_complete(qi::Future<T> future) {
    auto st = qi::detail::state_of(future);
    if (!st) throw std::invalid_argument("run_until_complete: the future is empty (default-constructed)");
    check_can_run("run_until_complete");  // before touching the future's state
    // Named as co_await names it: "another event loop" would send the
    // caller looking for a loop that no longer exists.
    if (!st->loop()) st->throw_loop_destroyed("run_until_complete");
    if (st->loop() != this)
      throw qi::RuntimeError(
          "run_until_complete: the future belongs to another event loop; run that loop, or create the future "
          "with this loop's create_future()");
    uint64_t id = st->add_done_callback([this](qi::detail::FutureStateBase&) { stop(); });
    struct Remove {
      qi::detail::FutureStateBase* s;
      uint64_t id;
      ~Remove() { s->remove_done_callback(id); }
    } remove{st, id};
    run_forever();
    if (!st->done()) throw qi::RuntimeError("Event loop stopped before Future completed.");
    // The future stays intact for its other handles (asyncio returns
    // future.result()); only a move-only result is moved out.
    if constexpr (std::is_void_v<T> || std::is_copy_constructible_v<T>)
      return qi::detail::result_of<T>(*st);
    else
      return qi::detail::take_result_of<T>(*st);
  }

  // QiEventLoop::stop()
  // Stops after the current iteration. Not running: the next run_forever()
  // runs one iteration. In attached mode the logical loop stops (is_running()
  // turns false); the application keeps going.
  void stop();

  // QiEventLoop::close()
  // Destroys pending callbacks (and the frames of pending tasks, each
  // reported) and releases the loop's fds. Idempotent. Loop thread. Throws
  // qi::RuntimeError while running. Done callbacks that can no longer run go
  // too: those of futures completed but not yet run, and those of pending
  // futures that a gather or shield still watches (which hold that
  // combinator's future, as it holds them); the loop's destructor does the
  // same for combinators made after close(). The callbacks of other pending
  // futures go with the future.
  void close();

  // QiEventLoop::is_running()
  // QiEventLoop::is_closed()
  // Whether the loop runs (nested or attached; false again once stop() took
  // effect), and whether close() was called. Loop thread.
  bool is_running() const noexcept { return running_; }
  bool is_closed() const noexcept { return closed_; }

  // --- Errors --------------------------------------------------------------

  // QiEventLoop::set_exception_handler()
  // handler(loop, context) receives what escapes callbacks and tasks and
  // what the loop reports (see qi::ExceptionContext), on the loop's thread,
  // before the next callback runs. A null handler restores the default one.
  // Loop thread; may be called from the handler itself (the running call
  // finishes on its own copy).
  void set_exception_handler(ExceptionHandler handler);

  // QiEventLoop::get_exception_handler()
  // The handler set, or null for the default one. Loop thread.
  ExceptionHandler get_exception_handler() const;

  // QiEventLoop::call_exception_handler()
  // Calls the handler with context, or default_exception_handler() when none
  // is set. Never throws: an exception escaping the handler is logged with
  // the context. Loop thread; re-entrant (a handler may call it).
  void call_exception_handler(const qi::ExceptionContext& context) noexcept;

  // QiEventLoop::default_exception_handler()
  // Logs the context through Qt's message handler (category "qiloop",
  // critical): the message, the exception's what(), and the task or future
  // concerned. Never throws. Any handler may call it to keep the default log.
  void default_exception_handler(const qi::ExceptionContext& context) noexcept;

  // --- Debug and tuning -----------------------------------------------------

  // QiEventLoop::set_debug()
  // QiEventLoop::get_debug()
  // Debug mode (also QILOOP_DEBUG=1 in the environment): thread checks on
  // every call, slow callbacks logged, coroutines never awaited reported.
  // Loop thread, any time.
  void set_debug(bool enabled) noexcept { debug_ = enabled; }
  bool get_debug() const noexcept { return debug_; }

  // QiEventLoop::set_slow_callback_duration()
  // In debug mode, callbacks (and task steps) that take longer than d (real
  // time; default 100 ms) are logged. Loop thread.
  void set_slow_callback_duration(duration d) noexcept;

  // QiEventLoop::set_slice_budget()
  // QiEventLoop::slice_budget()
  // The longest real time one slice keeps Qt waiting (default 1 ms): the
  // loop then returns to Qt and goes on when Qt next wakes it. duration::max()
  // means no limit (a slice runs until nothing is ready). Loop thread; takes
  // effect from the next slice. Throws std::invalid_argument for a budget
  // <= 0.
  void set_slice_budget(duration budget);
  duration slice_budget() const noexcept;

  // QiEventLoop::stats()
  // A copy of the loop's counters (qi::LoopStats). Loop thread.
  qi::LoopStats stats() const noexcept;

  // --- File descriptors -----------------------------------------------------

  // QiEventLoop::add_reader()
  // Runs f(args...) on every iteration while fd is readable (level-
  // triggered: once per iteration, in the ready queue like any callback),
  // replacing a previous reader of fd. Loop thread; callable from callbacks,
  // including fd's own. Throws std::invalid_argument when fd is not an open,
  // pollable descriptor or for an empty callable, qi::RuntimeError on a
  // closed loop. Call remove_reader() / remove_writer() before closing fd: a
  // handler of a closed fd is dropped and reported through the exception
  // handler when the loop next touches that fd number, and never runs for
  // another file that reuses the number. Throws qi::RuntimeError when fd is
  // a transport's or a server's listening socket (asyncio's
  // _ensure_fd_no_transport; so do add_writer, remove_reader and
  // remove_writer): use the transport's own methods.
  template <class F, class... Args>
  void add_reader(int fd, F&& f, Args&&... args) {
    ensure_fd_unowned(fd, "add_reader");
    add_fd_handler(fd, qi::detail::FdDirection::kRead, make_node<true>(qi::detail::CallbackNode::kRepeating, "add_reader",
                                              std::forward<F>(f), std::forward<Args>(args)...));
  }

  // QiEventLoop::add_writer()
  // The same while fd is writable.
  template <class F, class... Args>
  void add_writer(int fd, F&& f, Args&&... args) {
    ensure_fd_unowned(fd, "add_writer");
    add_fd_handler(fd, qi::detail::FdDirection::kWrite, make_node<true>(qi::detail::CallbackNode::kRepeating, "add_writer",
                                             std::forward<F>(f), std::forward<Args>(args)...));
  }

  // QiEventLoop::remove_reader()
  // QiEventLoop::remove_writer()
  // Stops watching fd for reading (writing); returns whether it had such a
  // handler. A run already queued for this iteration does not happen. Loop
  // thread; callable from callbacks, including the handler itself.
  bool remove_reader(int fd) {
    ensure_fd_unowned(fd, "remove_reader");
    return remove_fd_handler(fd, qi::detail::FdDirection::kRead);
  }
  bool remove_writer(int fd) {
    ensure_fd_unowned(fd, "remove_writer");
    return remove_fd_handler(fd, qi::detail::FdDirection::kWrite);
  }

 private:
  // The transports and servers use their fds through qi::detail::LoopFds
  // (src/net/fd_transport.h), unchecked; the check is in
  // src/net/fd_transport.cpp.
  friend class qi::detail::LoopFds;
  void ensure_fd_unowned(int fd, const char* api) const;

 public:

  // --- Unix signals (<qiloop/net/signals.h>) ---------------------------------

  // QiEventLoop::add_signal_handler()
  // Runs f(args...) as a callback of this loop each time signal `sig`
  // reaches the process (asyncio's loop.add_signal_handler), replacing a
  // previous handler of sig on this loop; never inside the signal handler
  // itself. Loop thread. Throws qi::ValueError for a number out of range,
  // qi::RuntimeError for SIGKILL / SIGSTOP (and other signals that cannot
  // be caught), on a closed loop, off the loop's thread and when another
  // loop handles sig; std::invalid_argument for an empty callable; a
  // coroutine is refused at compile time. The full contract (delivery,
  // ordering, one loop per signal, dispositions): <qiloop/net/signals.h>.
  template <class F, class... Args>
  void add_signal_handler(int sig, F&& f, Args&&... args) {
    set_signal_handler(sig,
                       qi::detail::make_callback<true>("add_signal_handler", std::forward<F>(f),
                                                       std::forward<Args>(args)...),
                       SignalUse::kHandler);
  }

  // QiEventLoop::remove_signal_handler()
  // Removes the handler of sig and gives the signal back the disposition it
  // had before this loop took it; returns false when this loop had none.
  // Deliveries not yet run are dropped. Loop thread. Throws qi::ValueError
  // for a number out of range.
  bool remove_signal_handler(int sig);

 private:
  friend class qi::detail::MainInterrupt;  // qi::run's Ctrl+C
  // kCtrlC: qi::run's own SIGINT handler, which its first delivery resets
  // to SIG_DFL in the kernel (SA_RESETHAND), so a second Ctrl+C kills.
  enum class SignalUse : bool { kHandler, kCtrlC };
  void set_signal_handler(int sig, absl::AnyInvocable<void()> handler, SignalUse use);
  // remove_signal_handler, limited to a handler of that use.
  bool unset_signal_handler(int sig, SignalUse use) noexcept;
  void close_signal_handlers() noexcept;  // close()

 public:

  // --- Sockets (<qiloop/net/socket.h>) ---------------------------------------
  // asyncio's loop.sock_* and name resolution. The contract (non-blocking
  // fds, errors, cancellation, one waiter per fd and direction) is in
  // <qiloop/net/socket.h>, which brings the types; loop thread only.

  // QiEventLoop::sock_recv()
  // Up to n bytes from the connected socket fd; empty at EOF.
  qi::Coro<QByteArray> sock_recv(int fd, std::size_t n);
  // QiEventLoop::sock_recv_into()
  // Up to buf.size() bytes into buf (the caller's memory, which must stay
  // alive until the call ends); how many; 0 at EOF.
  qi::Coro<std::size_t> sock_recv_into(int fd, std::span<std::byte> buf);
  // QiEventLoop::sock_sendall()
  // Sends all of data (waiting while the socket's buffer is full).
  qi::Coro<void> sock_sendall(int fd, QByteArray data);
  // QiEventLoop::sock_connect()
  // Connects fd to address (a resolved one: see getaddrinfo).
  qi::Coro<void> sock_connect(int fd, qi::SocketAddress address);
  // QiEventLoop::sock_accept()
  // The next connection on the listening socket fd: a new fd (non-blocking,
  // close-on-exec; the caller owns it) and the peer's address.
  qi::Coro<std::pair<int, qi::SocketAddress>> sock_accept(int fd);
  // QiEventLoop::sock_sendfile()
  // Sends count bytes (nullopt: to EOF) of file from offset over the stream
  // socket sock with sendfile(2), or by reading and sending when sendfile
  // cannot serve the pair (fallback false: qi::SendfileNotAvailableError).
  // How many bytes were sent; the file's position ends after them.
  qi::Coro<std::size_t> sock_sendfile(int sock, int file, std::int64_t offset = 0,
                                      std::optional<std::size_t> count = std::nullopt, bool fallback = true);
  // QiEventLoop::getaddrinfo()
  // getaddrinfo(3) on the default executor (numeric hosts and ports without
  // it). An empty host is getaddrinfo's null (loopback, or any address with
  // AI_PASSIVE). Throws qi::GaiError.
  qi::Coro<std::vector<qi::AddrInfo>> getaddrinfo(std::string host, std::string port, int family = 0, int type = 0,
                                                  int proto = 0, int flags = 0);
  qi::Coro<std::vector<qi::AddrInfo>> getaddrinfo(std::string host, uint16_t port, int family = 0, int type = 0,
                                                  int proto = 0, int flags = 0);
  // QiEventLoop::getnameinfo()
  // getnameinfo(3) of an IP address on the default executor (without it
  // for NI_NUMERICHOST | NI_NUMERICSERV): (host, service). Throws
  // qi::GaiError.
  qi::Coro<std::pair<std::string, std::string>> getnameinfo(qi::SocketAddress address, int flags = 0);


  // --- Transports (<qiloop/net/transport.h>) ---------------------------------
  // asyncio's loop.create_connection / create_unix_connection. The factory
  // returns std::unique_ptr<P> (P a qi::Protocol or qi::BufferedProtocol);
  // the result is (transport, protocol) after connection_made ran. The
  // contract is in <qiloop/net/transport.h>, which defines these templates
  // (include it to call them); loop thread only.

  // QiEventLoop::create_connection()
  // Resolves host (loop.getaddrinfo), connects to its addresses in order
  // (or staggered: options.happy_eyeballs_delay) and returns the transport
  // of the first that connects; TCP_NODELAY is set. Throws what the last
  // address (or every address, combined) failed with.
  template <class Factory, class Options = qi::ConnectOptions>
  qi::Coro<qi::detail::ConnectResult<Factory>> create_connection(Factory factory, std::string host, uint16_t port,
                                                                 Options options = {});
  // A connected stream socket the transport takes over (asyncio's sock=):
  // made non-blocking; closed with the transport. Throws qi::ValueError
  // (the fd stays the caller's) when it is not a stream socket.
  template <class Factory>
  qi::Coro<qi::detail::ConnectResult<Factory>> create_connection(Factory factory, int sock);
  // QiEventLoop::create_unix_connection()
  // The same over a Unix stream socket connected to path (a leading '\0':
  // an abstract name).
  template <class Factory>
  qi::Coro<qi::detail::ConnectResult<Factory>> create_unix_connection(Factory factory, std::string path);

  using ProtocolFactory = absl::AnyInvocable<std::unique_ptr<qi::BaseProtocol>()>;

  // --- TLS (<qiloop/net/ssl.h>) ---------------------------------------------
  // asyncio's loop.start_tls; the contract of TLS connections is in
  // <qiloop/net/ssl.h>; loop thread only. (create_connection's TLS is
  // ConnectOptions::ssl.)

  // QiEventLoop::start_tls()
  // Upgrades an open TCP or Unix connection to TLS: the handshake runs
  // (as options.server_side says) over transport, and the TLS transport
  // is returned once it completed. protocol is transport's own
  // (transport->get_protocol(): qiloop transports own theirs) and now
  // receives the decrypted data from the TLS transport; connection_made is
  // not called again. transport must not be used afterwards. On failure or
  // cancellation the connection is closed (the protocol's connection_lost
  // runs) and the error thrown. Throws qi::ValueError for a null
  // argument, another protocol, or a transport that is not a socket's.
  qi::Coro<qi::Transport*> start_tls(qi::Transport* transport, qi::BaseProtocol* protocol,
                                     std::shared_ptr<qi::SslContext> sslcontext);
  qi::Coro<qi::Transport*> start_tls(qi::Transport* transport, qi::BaseProtocol* protocol,
                                     std::shared_ptr<qi::SslContext> sslcontext, qi::TlsOptions options);

 private:
  // The non-template halves (src/net/create_connection.cpp).
  qi::Coro<qi::Transport*> open_tcp_transport(ProtocolFactory factory, std::string host, uint16_t port,
                                              qi::ConnectOptions options);
  qi::Coro<qi::Transport*> open_unix_transport(ProtocolFactory factory, std::string path);
  qi::Coro<qi::Transport*> adopt_socket_transport(ProtocolFactory factory, int sock);
  // close(): destroys the transports still open (src/net/socket_transport.cpp).
  void close_transports() noexcept;

 public:

  // --- Pipes and datagrams (<qiloop/net/pipes.h>, <qiloop/net/datagram.h>) ---
  // asyncio's loop.connect_read_pipe / connect_write_pipe and
  // create_datagram_endpoint. The contracts are in those headers, which
  // define these templates (include them to call them); loop thread only.

  // QiEventLoop::connect_read_pipe()
  // QiEventLoop::connect_write_pipe()
  // A transport reading (writing) fd — a pipe, a FIFO, a character device
  // or a socket, made non-blocking and closed with the transport — driving
  // the protocol the factory makes. Throws qi::ValueError (the fd stays the
  // caller's) for a regular file or a directory.
  template <class Factory>
  qi::Coro<qi::detail::ConnectResult<Factory>> connect_read_pipe(Factory factory, int fd);
  template <class Factory>
  qi::Coro<qi::detail::ConnectResult<Factory>> connect_write_pipe(Factory factory, int fd);

  // QiEventLoop::create_datagram_endpoint()
  // A UDP (or Unix datagram) socket bound to options.local_addr and/or
  // connected to options.remote_addr, and its transport driving a
  // qi::DatagramProtocol. With `sock`: a datagram socket the transport takes
  // over.
  template <class Factory, class Options = qi::DatagramOptions>
  qi::Coro<qi::detail::DatagramResult<Factory>> create_datagram_endpoint(Factory factory, Options options = {});
  template <class Factory>
  qi::Coro<qi::detail::DatagramResult<Factory>> create_datagram_endpoint(Factory factory, int sock);

  using DatagramProtocolFactory = absl::AnyInvocable<std::unique_ptr<qi::DatagramProtocol>()>;

 private:
  // The non-template halves (src/net/pipe_transport.cpp, src/net/datagram_transport.cpp).
  qi::Transport* open_pipe_transport(ProtocolFactory factory, int fd, bool write);
  qi::Coro<qi::DatagramTransport*> open_datagram_endpoint(DatagramProtocolFactory factory, qi::DatagramOptions options);
  qi::DatagramTransport* adopt_datagram_socket(DatagramProtocolFactory factory, int sock);

 public:
  // --- Servers (<qiloop/net/server.h>) ------------------------------------------
  // asyncio's loop.create_server / create_unix_server: listening sockets whose
  // connections each get a transport driving a protocol from the factory (as
  // create_connection's). The contract is in <qiloop/net/server.h>, which
  // defines these templates (include it to call them); loop thread only.

  // QiEventLoop::create_server()
  // Listens on every address host resolves to ("" : all interfaces, IPv4 and
  // IPv6; a list: all of theirs) at port (0: a free one) and serves once
  // made (options.start_serving). Throws qi::GaiError, qi::OSError
  // (EADDRINUSE: the port is in use), qi::ValueError.
  template <class Factory, class Options = qi::ServerOptions>
  qi::Coro<qi::Server> create_server(Factory factory, std::string host, uint16_t port, Options options = {});
  template <class Factory, class Options = qi::ServerOptions>
  qi::Coro<qi::Server> create_server(Factory factory, std::vector<std::string> hosts, uint16_t port,
                                     Options options = {});
  template <class Factory, class Options = qi::ServerOptions>
  qi::Coro<qi::Server> create_server(Factory factory, std::initializer_list<std::string> hosts, uint16_t port,
                                     Options options = {});
  // A bound (or listening) stream socket the server takes over (asyncio's
  // sock=): made non-blocking, closed by close(). Throws qi::ValueError (the
  // fd stays the caller's) when it is not a stream socket.
  template <class Factory, class Options = qi::ServerOptions>
  qi::Coro<qi::Server> create_server(Factory factory, int sock, Options options = {});
  // QiEventLoop::create_unix_server()
  // The same on a Unix stream socket bound to path (a leading '\0': an
  // abstract name); a stale socket file there is removed first.
  template <class Factory, class Options = qi::UnixServerOptions>
  qi::Coro<qi::Server> create_unix_server(Factory factory, std::string path, Options options = {});

 private:
  // The non-template halves, and close()'s part (src/net/server.cpp).
  qi::Coro<qi::Server> open_tcp_server(ProtocolFactory factory, std::vector<std::string> hosts, uint16_t port,
                                       qi::ServerOptions options);
  qi::Coro<qi::Server> adopt_server_socket(ProtocolFactory factory, int sock, qi::ServerOptions options);
  qi::Coro<qi::Server> open_unix_server(ProtocolFactory factory, std::string path, qi::UnixServerOptions options);
  void close_servers() noexcept;

 public:
  // --- Subprocesses (<qiloop/net/subprocess.h>) ------------------------------
  // qi::create_subprocess_exec / create_subprocess_shell are free functions
  // (asyncio's); the loop watches the children they spawn and reaps them.

 private:
  // close(): kills and reaps the children still running
  // (src/net/child_watcher.cpp).
  void close_subprocesses() noexcept;

 public:
 Q_SIGNALS:
  // Emitted when the loop stops running (both modes), after its last
  // iteration, once per run: when run_forever() is about to return, when an
  // attached loop stops, or — for an attached loop still running when its
  // QiRunner goes — last in the runner's destructor, after the loop is closed.
  // The loop touches nothing of itself after emitting it, so a slot may
  // destroy the loop (or an attached loop's runner). shutdown()'s own runs of
  // the loop do not emit it.
  void stopped();

 protected:
  bool event(QEvent* e) override;

 private:
  friend class QiRunner;
  friend class qi::detail::TaskCore;
  friend class qi::detail::FutureStateBase;  // checks a completion before it changes the future
  friend class qi::Clock;  // notify_changed(), and its destructor detaches it
  friend struct qi::detail::AsyncGenBase;  // the registry of generators
  friend class qi::detail::CloseWatch;  // the combinators' futures close() unhooks
  friend std::vector<qi::TaskRef> qi::all_tasks(const QiEventLoop&);  // walks the task registry
  friend void qi::detail::hand_doorbell_to_nested_loop(QiEventLoop&);  // the doorbell's two forms

  friend class qi::detail::ExecutorJobBase;  // submits through the loop's gate
  template <class F, class... Args>
  friend class qi::to_thread;  // submit_job with its own name and site

  // run_in_executor and qi::to_thread: one allocation holds the future,
  // the work, f with its arguments and the result's staging slot.
  template <class F, class... Args>
  qi::Future<qi::detail::executor_result_t<F, Args...>> submit_job(const char* api, qi::Executor* executor,
                                                                    qi::detail::SiteRecord site, F&& f,
                                                                    Args&&... args) {
    using D = std::decay_t<F>;
    static_assert(std::is_invocable_v<D, std::decay_t<Args>...>,
                  "qiloop: run_in_executor / to_thread: the callable cannot be called with the given arguments "
                  "(they are decay-copied and passed as rvalues, as std::thread does; use std::ref for a "
                  "reference)");
    using R = qi::detail::executor_result_t<F, Args...>;
    static_assert(!qi::detail::is_coro<std::remove_cvref_t<R>>::value,
                  "qiloop: run_in_executor / to_thread: the callable returns a qi::Coro, which a worker thread "
                  "cannot run (it needs a loop): await it in a task instead, or run blocking code on the thread");
    if (qi::detail::is_empty_callable(f)) qi::detail::throw_empty_callable(api);
    auto* job = new qi::detail::ExecutorJob<R, D, std::decay_t<Args>...>(*this, site, std::forward<F>(f),
                                                                        std::forward<Args>(args)...);
    auto ref = qi::detail::StateRef<qi::detail::FutureStateBase>::adopt(job);
    job->submit(*this, executor, api);
    return qi::detail::JobFuture<R>(std::move(ref));
  }
  void close_executors() noexcept;
  void shutdown_default_executor_at_exit();

  enum class TaskStart : bool { kNextIteration, kNow };  // create_task, run_task
  template <class T>
  qi::Task<T> make_task(qi::Coro<T> coro, std::string name, TaskStart start, const char* api) {
    coro.check_runnable(api);  // empty, or already ran
    bool schedulable = true;
    if (closed_ || debug_) [[unlikely]]
      schedulable = check_can_schedule(api);
    if (start == TaskStart::kNow && schedulable && !running_)
      throw qi::RuntimeError(
          "run_task: the event loop is not running; run_task runs the coroutine now, inside a running loop: "
          "use create_task before the loop runs");
    auto* st = new qi::detail::TaskState<T>(*this, coro.release(), std::move(name));
    qi::Task<T> task = qi::Task<T>::adopt(st);
    if (schedulable)
      st->start(start == TaskStart::kNow);
    else
      st->mark_cancelled("the event loop is closed");  // created by a destructor during close()
    return task;
  }
  void register_task(qi::detail::TaskCore* t) noexcept;
  void unregister_task(qi::detail::TaskCore* t) noexcept;
  // A task cancel_now stepped ahead of a wake-up already scheduled holds a
  // reference for that wake-up (TaskCore::cancel_now); close() drops the
  // wake-up unrun, so it releases the references still held.
  void hold_stale_wake(qi::detail::TaskCore* t);
  void drop_stale_wake(qi::detail::TaskCore* t) noexcept;
  void cancel_leftover_tasks();
  void close_leftover_asyncgens();
  void run_shutdown_round(QAbstractEventDispatcher* dispatcher, duration limit = kShutdownRoundTime);
  void drain_ready(int max_iterations);

  template <bool Repeating = false, class F, class... Args>
  qi::detail::CallbackNode* make_node(uint8_t flags, const char* api, F&& f, Args&&... args) {
    auto cb = qi::detail::make_callback<Repeating>(api, std::forward<F>(f), std::forward<Args>(args)...);
    qi::detail::CallbackNode* n = qi::detail::alloc_node(flags);
    // Built in place: an assignment would cost two more indirect calls
    // (clearing the empty target, relocating from a temporary).
    std::destroy_at(&n->fn);
    try {
      std::construct_at(&n->fn, std::move(cb));
    } catch (...) {
      std::construct_at(&n->fn);
      qi::detail::free_node(n);
      throw;
    }
    // One reference for the queue that will hold it, one for the returned
    // handle; an fd handler has no handle (the backend holds it alone).
    n->refs.store(Repeating ? 1 : 2, std::memory_order_relaxed);
    return n;
  }
  template <class F, class... Args>
  qi::TimerHandle schedule_at(time_point when, const char* api, F&& f, Args&&... args) {
    if (closed_ || debug_) [[unlikely]] {
      if (!check_can_schedule(api)) return {};
    }
    qi::detail::CallbackNode* n =
        make_node(qi::detail::CallbackNode::kTimer, api, std::forward<F>(f), std::forward<Args>(args)...);
    n->when = when;
    schedule_timer(n);
    return qi::TimerHandle::adopt(n);
  }

  // Appends n to the ready queue, behind what other threads have sent so far
  // (taken in first when the inbox is not empty; a relaxed load suffices:
  // whatever made the caller call now happened after those sends).
  void push_ready(qi::detail::CallbackNode* n) noexcept {
    if (inbox_head_->load(std::memory_order_relaxed) != nullptr) [[unlikely]]
      take_inbox();
    ready_.push(n);
  }
  void take_inbox() noexcept;

  // Whether a scheduling call goes ahead: throws qi::RuntimeError on a
  // closed loop, except for calls from the destructors close() runs, which
  // are ignored (false); checks the thread in debug mode.
  bool check_can_schedule(const char* api);
  void wake_from_outside();
  void schedule_timer(qi::detail::CallbackNode* n);
  bool schedule_threadsafe(qi::detail::CallbackNode* n);
  void add_fd_handler(int fd, qi::detail::FdDirection direction, qi::detail::CallbackNode* n);
  bool remove_fd_handler(int fd, qi::detail::FdDirection direction);
  void check_thread(const char* api) const;
  // kItsRunner: QiRunner::restart() runs its own (attached) loop again.
  enum class RunBy : bool { kCaller, kItsRunner };
  void check_can_run(const char* api, RunBy by = RunBy::kCaller) const;

  // run_modes.cpp: how the loop runs.
  static void on_new_application();
  static void on_backend_ready(QObject& loop);
  enum class RunMode : bool { kNested, kAttached };
  void start_running(RunMode mode);
  void mark_running() noexcept;
  void finish_running();
  void end_run();
  void ensure_wake_posted();
  void post_wake();
  void silence_doorbell() noexcept;
  void shutdown_attached();
  void destroy_pending_tasks() noexcept;
  // The clock hook (clock.cpp).
  void on_clock_changed();
  void on_clock_destroyed() noexcept;
  const char* clock_refusal() const noexcept;

  // scheduler.cpp: the slice and the steps of one iteration. The steps every
  // callback goes through are inline (defined in scheduler.cpp, the only
  // place that calls them): a call_soon chain runs one iteration of one
  // callback per step, where calls would cost as much as their bodies.
  enum class Budget : bool { kLeft, kSpent };
  enum class WorkCheck { kInSlice, kLeavingSlice, kDrain };  // who asks has_work()
  enum class Wake : bool { kPostedEvent, kBackend };  // what Qt delivered
  void on_wake(Wake source);
  void run_slice();
  void enter_slice(time_point budget_deadline) noexcept;
  void leave_slice() noexcept;
  [[gnu::always_inline]] inline Budget run_iteration();
  void poll_io();
  void move_due_timers();
  inline Budget run_ready();
  inline void run_node(qi::detail::CallbackNode* n);
  void run_callback(qi::detail::CallbackNode* n) noexcept;
  void run_timed(qi::detail::CallbackNode* n) noexcept;
  void report_escaped(qi::detail::CallbackNode* n) noexcept;
  bool honour_stop();
  template <WorkCheck check>
  bool has_work();
  bool timer_due();
  void end_slice();
  bool arm_timer_wakeup();
  // The clock timers are due by: every deadline is compared with this.
  time_point now() const noexcept { return time(); }

  // The hot fields live here, where the inline scheduling paths reach them.
  qi::detail::ReadyQueue ready_;
  bool closed_ = false;
  bool debug_ = false;
  bool in_slice_ = false;     // our slice is on the stack (so wake-ups wait for its end)
  bool running_ = false;
  // The head of the thread inbox (in impl_), read by push_ready.
  const std::atomic<qi::detail::CallbackNode*>* inbox_head_ = nullptr;
  qi::Clock* clock_ = nullptr;  // null: the real steady clock
  std::unique_ptr<qi::detail::LoopImpl> impl_;
};

namespace qi {

// qi::create_task()
// get_running_loop().create_task(coro). Throws qi::RuntimeError when no loop
// runs on this thread.
template <class T>
Task<T> create_task(Coro<T> coro, std::string name = {}) {
  return get_running_loop().create_task(std::move(coro), std::move(name));
}

namespace detail {
// qi::run's Ctrl+C, as asyncio.Runner's (src/net/signals.cpp). The
// constructor checks that the loop can run ("qi::run: ..."); watch() makes,
// on the main thread and while SIGINT has its default disposition, the first
// SIGINT cancel `main` (a second one kills the process); the destructor
// gives SIGINT its disposition back.
class QILOOP_EXPORT MainInterrupt {
 public:
  explicit MainInterrupt(QiEventLoop& loop);
  MainInterrupt(const MainInterrupt&) = delete;
  MainInterrupt& operator=(const MainInterrupt&) = delete;
  ~MainInterrupt();
  void watch(TaskRef main);
  // With main ended by qi::CancelledError: throws qi::KeyboardInterrupt when
  // a SIGINT cancelled it and nothing else did (asyncio's uncancel() == 0).
  void raise_if_interrupted();

 private:
  void on_sigint();
  QiEventLoop& loop_;
  TaskRef main_;
  int interrupts_ = 0;
  bool installed_ = false;
};
}  // namespace detail

// qi::run()
// asyncio.run: runs coro on a new loop in nested mode and returns its
// result (or rethrows), then cancels the tasks it left behind, lets them
// finish (bounded; see QiEventLoop::shutdown) and closes the loop. Throws
// qi::RuntimeError when a loop already runs on this thread. Ctrl+C, as
// asyncio.Runner: on the main thread, with SIGINT at its default
// disposition, the first SIGINT cancels the main task, and if that ends it
// with qi::CancelledError, qi::run throws qi::KeyboardInterrupt; a second
// SIGINT meanwhile kills the process (<qiloop/net/signals.h>).
template <class T>
T run(Coro<T> coro) {
  coro.check_runnable("qi::run");
  if (running_loop())
    throw RuntimeError("qi::run: a loop is already running on this thread; await the coroutine instead");
  QiEventLoop loop;
  struct Shutdown {
    QiEventLoop& loop;
    ~Shutdown() { loop.shutdown(); }
  } shutdown{loop};
  detail::MainInterrupt interrupt(loop);  // before the shutdown: SIGINT is restored first
  Task<T> main = loop.create_task(std::move(coro));
  interrupt.watch(main.ref());
  try {
    return loop.run_until_complete(main);
  } catch (const CancelledError&) {
    interrupt.raise_if_interrupted();
    throw;
  }
}

}  // namespace qi
