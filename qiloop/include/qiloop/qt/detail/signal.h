// qiloop/qt/detail/signal.h — the machinery shared by qi::asyncsignal,
// qi::signal_stream and qi::multisignal: what a pointer-to-member signal
// carries, how its arguments become one decayed value, how a signal and the
// sender's destruction reach a consumer on whatever thread they happen, and
// how that consumer hears of them on its loop's thread. Internal; the
// contracts are in <qiloop/qt/asyncsignal.h>, signal_stream.h and
// multisignal.h.
//
// The shape of every connection: the consumer is a ref-counted "hub"
// (retain() / release()) with
//   template <std::size_t I, class... A> void on_signal(const A&... a);
//   void on_connection_gone(std::size_t i) noexcept;
// both callable on any thread. connect_source<I>() connects source I's signal
// to the hub with one direct connection (the functor runs in the emitting
// thread and holds a reference to the hub, so an emission racing a
// disconnect on another thread still finds it alive); the functor's
// destruction is how the hub learns the sender went. The hub takes its
// mutex, decides, and when the emission is not on its loop's thread, hands
// the loop a callback with LoopBinding::post — under that mutex, while the
// consumer is still registered, which is what keeps the loop alive for it.
#pragma once

#include <qiloop/detail/future_state.h>
#include <qiloop/detail/task_core.h>
#include <qiloop/errors.h>
#include <qiloop/event_loop.h>
#include <qiloop/export.h>

#include <QtCore/QObject>
#include <QtCore/QPointer>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>

#if defined(__SANITIZE_THREAD__)
#define QILOOP_DETAIL_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define QILOOP_DETAIL_TSAN 1
#endif
#endif
#ifndef QILOOP_DETAIL_TSAN
#define QILOOP_DETAIL_TSAN 0
#endif
#if QILOOP_DETAIL_TSAN
#include <sanitizer/tsan_interface.h>
#endif

namespace qi::detail {

template <class... T>
struct TypeList {};

// Qt marks a signal only its class may emit with a trailing parameter of the
// class's private type QPrivateSignal (QTimer::timeout). Being private, it
// cannot be named from here; its spelling can: the compiler's name of this
// function's instantiation ends in "::QPrivateSignal]" (g++ and clang).
template <class T>
constexpr const char* signal_type_spelling() noexcept {
  return __PRETTY_FUNCTION__;
}
template <class T>
constexpr bool is_private_signal_tag() noexcept {
  if constexpr (!std::is_class_v<T> || !std::is_empty_v<T>) {
    return false;
  } else {
    return std::string_view(signal_type_spelling<T>()).ends_with("::QPrivateSignal]");
  }
}

// Appends T to a TypeList unless it is the private-signal tag.
template <class List, class T>
struct AppendArg;
template <class... Ts, class T>
struct AppendArg<TypeList<Ts...>, T> {
  using type = std::conditional_t<is_private_signal_tag<T>(), TypeList<Ts...>, TypeList<Ts..., T>>;
};
template <class List, class... A>
struct DecayedArgs {
  using type = List;
};
template <class List, class A, class... Rest>
struct DecayedArgs<List, A, Rest...> {
  using type = typename DecayedArgs<typename AppendArg<List, std::decay_t<A>>::type, Rest...>::type;
};

// SignalOf<&C::sig>: the sender's class and the signal's arguments, decayed,
// without the private-signal tag.
template <class PMF>
struct SignalOf {
  static_assert(std::is_member_function_pointer_v<PMF>,
                "qiloop: pass a signal as a pointer to member function, e.g. &QTimer::timeout (for an "
                "overloaded signal: qOverload<int>(&QSpinBox::valueChanged))");
};
template <class C, class R, class... A>
struct SignalOf<R (C::*)(A...)> {
  using Class = C;
  using Args = typename DecayedArgs<TypeList<>, A...>::type;
};
template <class C, class R, class... A>
struct SignalOf<R (C::*)(A...) const> : SignalOf<R (C::*)(A...)> {};

// What one emission is as a value: no arguments → std::monostate, one → that
// type, several → a std::tuple (SignalItem); what co_await asyncsignal
// yields: the same with void for std::monostate (SignalValue).
template <class List>
struct ItemOf;
template <>
struct ItemOf<TypeList<>> {
  using type = std::monostate;
};
template <class T>
struct ItemOf<TypeList<T>> {
  using type = T;
};
template <class T, class U, class... Rest>
struct ItemOf<TypeList<T, U, Rest...>> {
  using type = std::tuple<T, U, Rest...>;
};
template <class PMF>
using SignalItem = typename ItemOf<typename SignalOf<PMF>::Args>::type;
template <class PMF>
using SignalValue = std::conditional_t<std::is_same_v<SignalItem<PMF>, std::monostate>, void, SignalItem<PMF>>;

// The item of one emission: a copy of each argument (they are decayed types).
template <class Item, class... A>
Item make_item(const A&... a) {
  if constexpr (sizeof...(A) == 0)
    return Item{};
  else
    return Item(a...);
}

// Qt publishes a connection's functor to the emitting threads, and keeps it
// alive while a call runs, with atomics inside libQt6Core, which TSan does
// not see (Qt is not built with it). A functor holds one of these as its
// last member: built (after the functor's state) = published; a call
// acquires it first and releases it last; destroying it acquires it. This
// is what Qt guarantees, told to TSan; elsewhere it compiles to nothing.
class SlotPublication {
 public:
  SlotPublication() noexcept { release(); }
  SlotPublication(const SlotPublication&) noexcept { release(); }
  SlotPublication& operator=(const SlotPublication&) = delete;
  ~SlotPublication() { acquire(); }
  void acquire() const noexcept {
#if QILOOP_DETAIL_TSAN
    __tsan_acquire(const_cast<SlotPublication*>(this));
#endif
  }
  void release() const noexcept {
#if QILOOP_DETAIL_TSAN
    __tsan_release(const_cast<SlotPublication*>(this));
#endif
  }
};

// The functor connected to source I's signal: hands the arguments to the
// hub, and is also the one watch on the connection's end. Qt destroys a
// connection's functor when the connection goes — disconnected by the hub
// (which has closed itself first), or cut by the sender's destruction or by
// someone else's QObject::disconnect — and the hub then hears
// on_connection_gone(I), on the thread that cut it, possibly inside Qt's
// clean-up (so the hub must not call Qt from there). A second connection to
// the sender's `destroyed` would cost more than the rest of an await.
template <class Hub, std::size_t I, class... A>
struct SignalSlot {
  StateRef<Hub> hub;
  SlotPublication published;

  explicit SignalSlot(StateRef<Hub> h) noexcept : hub(std::move(h)) {}
  // Qt moves the functor into its slot object; the moved-from one watches
  // nothing. Never copied: a copy's destruction would read as a cut.
  SignalSlot(SignalSlot&& o) noexcept : hub(std::move(o.hub)), published(o.published) {}
  SignalSlot(const SignalSlot&) = delete;
  SignalSlot& operator=(const SignalSlot&) = delete;
  ~SignalSlot() {
    published.acquire();
    if (hub) hub->on_connection_gone(I);
  }
  void operator()(const A&... a) const {
    published.acquire();
    hub->template on_signal<I>(a...);
    published.release();
  }
};

// Connects source I's signal to hub. Returns the connection, empty when Qt
// refused the signal (not a signal of that class: Qt destroyed the functor,
// and the hub, not armed for I yet, ignores that).
//
// The three-argument form: a direct connection with the sender as context,
// so the functor runs in the emitting thread and goes with the sender.
template <std::size_t I, class Hub, class Sender, class PMF, class... A>
QMetaObject::Connection connect_signal(Sender* sender, PMF sig, Hub& hub, TypeList<A...>) {
  return QObject::connect(sender, sig, SignalSlot<Hub, I, A...>(StateRef<Hub>(&hub)));
}
template <std::size_t I, class Hub, class Sender, class PMF>
QMetaObject::Connection connect_source(Sender* sender, PMF sig, Hub& hub) {
  return connect_signal<I>(sender, sig, hub, typename SignalOf<PMF>::Args{});
}

// Which of a hub's sources are connected: a cut is news only for those (a
// refused connection destroys its functor too). Set on the loop's thread
// right after Qt connected; read wherever the cut happens. A sender destroyed
// on another thread while the co_await connects to it is a race Qt does not
// allow either.
class ArmedSources {
 public:
  void arm(std::size_t i) noexcept { bits_.fetch_or(uint64_t{1} << i, std::memory_order_release); }
  bool armed(std::size_t i) const noexcept {
    return (bits_.load(std::memory_order_acquire) >> i) & 1u;
  }

 private:
  std::atomic<uint64_t> bits_{0};
};

// Disconnects what connect_source connected; idempotent, any thread (a
// connection whose sender is gone is already cut). Each functor's
// destruction reaches its hub's on_connection_gone, so a hub closes first.
QILOOP_EXPORT void disconnect_all(QMetaObject::Connection* conns, std::size_t n) noexcept;

// Throws std::invalid_argument naming `api` when sender is null.
QILOOP_EXPORT void check_sender(const void* sender, const char* api);
// Throws std::invalid_argument naming `api` for a capacity of 0.
QILOOP_EXPORT void check_capacity(std::size_t capacity, const char* api);
// The errors of awaiting a signal.
[[noreturn]] QILOOP_EXPORT void throw_already_awaited(const char* api);
[[noreturn]] QILOOP_EXPORT void throw_source_destroyed(const char* api);
// What a sender gone before the wait ended is; connection_cut: learned from
// the connection's end, which someone else's disconnect can cause too (the
// message says so). Never throws (std::bad_alloc's when out of memory).
QILOOP_EXPORT std::exception_ptr source_gone_error(const char* api, bool connection_cut) noexcept;
QILOOP_EXPORT std::exception_ptr not_a_signal_error(const char* api);

// The consumer's loop and thread. A hub hears of emissions on any thread;
// what it must do on the loop's thread it does at once there, or posts.
class LoopBinding {
 public:
  void bind(QiEventLoop& loop) noexcept {
    loop_ = &loop;
    thread_ = std::this_thread::get_id();
  }
  bool bound() const noexcept { return loop_ != nullptr; }
  // On the loop's thread (the thread of the task that bound it).
  bool on_loop_thread() const noexcept { return std::this_thread::get_id() == thread_; }
  // call_soon_threadsafe; called under the hub's mutex while the consumer is
  // registered (so the loop lives). A closed loop (its tasks' frames, and
  // with them the consumer, are going) or no memory: the callback is
  // dropped, as it must not throw into Qt's emit.
  template <class F>
  void post(F&& cb) const noexcept {
    try {
      loop_->call_soon_threadsafe(std::forward<F>(cb));
    } catch (...) {
      // The loop is closed (see above) or memory ran out.
    }
  }

 private:
  QiEventLoop* loop_ = nullptr;
  std::thread::id thread_;
};

// The future a task awaits for the first of N sources' emissions (qi::asyncsignal: N = 1;
// qi::multisignal). Make::template make<I>(a...) turns source I's arguments
// into the result (Stored: the result type, std::monostate for void).
//
// Invariant: closed_ (under mutex_) is set once, by whatever ends the wait
// first — an emission, a destruction, the timeout, a cancel, the awaiter
// going — and from then on no emission does anything; the connections are
// cut on the loop's thread right after, and the timer cancelled.
template <class V, std::size_t N, class Make>
class SignalWait final : public FutureState<V> {
  using Stored = std::conditional_t<std::is_void_v<V>, std::monostate, V>;

 public:
  explicit SignalWait(QiEventLoop& loop) : FutureState<V>(loop) { binding_.bind(loop); }

  // Connects source I; false when Qt refused its signal.
  template <std::size_t I, class Sender, class PMF>
  bool connect(Sender* sender, PMF sig) {
    conns_[I] = connect_source<I>(sender, sig, *this);
    if (!conns_[I]) return false;
    armed_.arm(I);
    return true;
  }

  // Any thread: the first event wins (see the invariant).
  // A copy of the arguments that throws ends the wait with that exception:
  // once closed_ is set nothing else would end it, and an exception must
  // not escape into Qt's emit.
  template <std::size_t I, class... A>
  void on_signal(const A&... a) {
    std::unique_lock lock(mutex_);
    if (closed_) return;
    closed_ = true;
    if (binding_.on_loop_thread()) {
      lock.unlock();
      std::optional<Stored> v;
      std::exception_ptr e;
      try {
        v.emplace(Make::template make<I>(a...));
      } catch (...) {
        e = std::current_exception();
      }
      land(std::move(v), std::move(e));
      return;
    }
    try {
      value_.emplace(Make::template make<I>(a...));
    } catch (...) {
      error_ = std::current_exception();
    }
    post_landing();
  }
  // Any thread, possibly inside Qt's clean-up of the connection: the
  // landing is always posted (it disconnects the other sources).
  void on_connection_gone(std::size_t i) noexcept {
    if (!armed_.armed(i)) return;
    std::lock_guard lock(mutex_);
    if (closed_) return;
    closed_ = true;
    error_ = source_gone_error(Make::kApi, true);
    post_landing();
  }

  // Ends the wait with `timeout_value` after d (loop thread, after the
  // connections).
  void arm_timeout(std::chrono::steady_clock::duration d, Stored timeout_value) {
    timer_ = this->loop()->call_later(d, [ref = StateRef<SignalWait>(this), v = std::move(timeout_value)]() mutable {
      if (ref->close_now()) ref->land(std::optional<Stored>(std::in_place, std::move(v)), nullptr);
    });
  }

  // A task's cancel() reaches its awaited future here: the connections are
  // cut before it returns (asyncio's wait_for(fut) has no such step; a Qt
  // connection outliving the cancel would run, and keep objects, for nothing).
  bool cancel(std::string msg) override {
    if (this->done()) return false;
    close_now();
    stop_listening();
    return FutureStateBase::cancel(std::move(msg));
  }

  // Loop thread: stops listening (the awaiter goes). A SignalSourceDestroyed
  // the task never took (it was cancelled meanwhile) counts as retrieved.
  void close() noexcept {
    close_now();
    stop_listening();
    if (this->done() && !this->cancelled()) {
      try {
        (void)this->exception();
      } catch (...) {
      }
    }
  }

  // Loop thread: finishes with error e (the awaiter's own failure).
  void fail(std::exception_ptr e) {
    if (close_now()) land(std::nullopt, std::move(e));
  }

 private:
  // Sets closed_; returns whether this call did.
  bool close_now() noexcept {
    std::lock_guard lock(mutex_);
    return !std::exchange(closed_, true);
  }
  void stop_listening() noexcept {
    timer_.cancel();
    disconnect_all(conns_, N);
  }
  // Under mutex_, off the loop's thread.
  void post_landing() noexcept {
    binding_.post([ref = StateRef<SignalWait>(this)]() mutable {
      std::optional<Stored> v;
      std::exception_ptr e;
      {
        std::lock_guard lock(ref->mutex_);
        v = std::move(ref->value_);
        e = std::move(ref->error_);
      }
      ref->land(std::move(v), std::move(e));
    });
  }
  // Loop thread: the wait's outcome reaches the future (unless a cancel got
  // there first), and the connections go.
  void land(std::optional<Stored>&& v, std::exception_ptr e) noexcept {
    stop_listening();
    if (this->done()) return;
    try {
      if (e)
        this->finish_with_exception(std::move(e));
      else if constexpr (std::is_void_v<V>)
        this->finish_with_value();
      else
        this->finish_with_value(std::move(*v));
    } catch (...) {
      // Scheduling the task's wake-up failed: its loop closed, which
      // destroys the task's frame (and this wait with it).
    }
  }

  std::mutex mutex_;
  bool closed_ = false;
  std::optional<Stored> value_;  // an emission on another thread, for the loop's thread
  std::exception_ptr error_;     // a cut connection (always posted), likewise
  LoopBinding binding_;
  TimerHandle timer_;
  ArmedSources armed_;
  QMetaObject::Connection conns_[N];
  static_assert(N <= 64, "qi::multisignal: at most 64 signals");
};

// The awaitable that qi::asyncsignal and qi::multisignal return: the sources
// (kept as QPointers: one destroyed before the co_await fails it at once)
// and, for asyncsignal's timed form, the timeout. Connects when awaited.
template <class V, class Make, class... Src>
class [[nodiscard("co_await it: the signal is connected when it is awaited")]] FirstSignal {
  static constexpr std::size_t N = sizeof...(Src);
  using State = SignalWait<V, N, Make>;
  using Stored = std::conditional_t<std::is_void_v<V>, std::monostate, V>;

 public:
  explicit FirstSignal(std::tuple<Src...> sources) : sources_(std::move(sources)) {}
  FirstSignal(std::tuple<Src...> sources, std::chrono::steady_clock::duration timeout, Stored timeout_value)
      : sources_(std::move(sources)), timeout_(timeout), timeout_value_(std::in_place, std::move(timeout_value)) {}
  FirstSignal(FirstSignal&& o) noexcept
      : sources_(std::move(o.sources_)),
        timeout_(o.timeout_),
        timeout_value_(std::move(o.timeout_value_)),
        live_(std::exchange(o.live_, false)) {}
  FirstSignal& operator=(FirstSignal&&) = delete;

  class Awaiter {
   public:
    explicit Awaiter(FirstSignal& s) : s_(s) {}
    Awaiter(const Awaiter&) = delete;
    Awaiter& operator=(const Awaiter&) = delete;
    ~Awaiter() {
      if (state_) state_->close();
    }
    bool await_ready() const noexcept { return false; }
    void await_suspend(std::coroutine_handle<> h) {
      StateRef<State> st = StateRef<State>::adopt(new State(qi::get_running_loop()));
      await_future(*st, h);  // outside a task: throws, nothing connected yet
      state_ = std::move(st);
      connect_all(std::make_index_sequence<N>{});
      if (s_.timeout_ && !state_->done()) state_->arm_timeout(*s_.timeout_, std::move(*s_.timeout_value_));
    }
    V await_resume() {
      after_resume(state_->cancelled());
      return take_result_of<V>(*state_);
    }

   private:
    template <std::size_t... I>
    void connect_all(std::index_sequence<I...>) {
      bool ok = (connect_one<I>() && ...);
      if (!ok) state_->fail(not_a_signal_error(Make::kApi));
    }
    template <std::size_t I>
    bool connect_one() {
      auto& src = std::get<I>(s_.sources_);
      return state_->template connect<I>(src.sender.data(), src.signal);
    }

    FirstSignal& s_;
    StateRef<State> state_;
  };

  // co_await: once per object. Throws qi::RuntimeError when it was awaited
  // (or moved from) already, qi::SignalSourceDestroyed when a sender is gone.
  Awaiter operator co_await() & { return take(); }
  Awaiter operator co_await() && { return take(); }

 private:
  Awaiter take() {
    if (!std::exchange(live_, false)) throw_already_awaited(Make::kApi);
    bool all_alive = std::apply([](const auto&... s) { return (!s.sender.isNull() && ...); }, sources_);
    if (!all_alive) throw_source_destroyed(Make::kApi);
    return Awaiter(*this);
  }

  std::tuple<Src...> sources_;
  std::optional<std::chrono::steady_clock::duration> timeout_;
  std::optional<Stored> timeout_value_;
  bool live_ = true;
};

// One source of a FirstSignal.
template <class C, class PMF>
struct SignalSource {
  QPointer<C> sender;
  PMF signal;
};

}  // namespace qi::detail
