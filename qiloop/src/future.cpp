#include <qiloop/event_loop.h>
#include <qiloop/future.h>

#include "loop_impl.h"

#include <QtCore/QThread>

#include <absl/container/inlined_vector.h>

#include <algorithm>
#include <cstdlib>
#include <memory>
#include <stdexcept>

namespace qi::detail {

// --- DoneCallbacks ---------------------------------------------------------------

// The out-of-line list. Invariant: the live callbacks form a list through
// slots_ from head_ to tail_; a slot never moves while linked, so an id is
// its index with its serial (bumped at each reuse, so a stale id matches
// nothing) and remove() finds its callback without a scan. remove() leaves an
// empty slot linked; they are unlinked once they outnumber the live ones, so
// a removal costs O(1) amortised. Ids here are raw (DoneCallbacks scrambles
// them); serial 0 marks the task wake-up that moved in from the inline word,
// whose id stays raw 0 (public ids carry serial >= 1).
class DoneCallbacks::List {
 public:
  uint32_t size() const noexcept { return live_; }
  // Makes slot 0 the moved-in inline callback (on a new, empty list).
  void adopt_inline(Callback&& cb) {
    slots_.emplace_back(std::move(cb), 0);
    head_ = tail_ = 0;
    live_ = 1;
  }
  uint64_t push_back(Callback&& cb);
  bool remove(uint64_t raw_id) noexcept;
  Callback pop_front() noexcept;

 private:
  static constexpr uint32_t kNone = UINT32_MAX;
  // Slot indices stay below 2^31 and the key's bit 31 is set: no id is 0.
  static constexpr uint32_t kMaxSlots = uint32_t{1} << 31;
  struct Slot {
    Slot(Callback&& c, uint32_t s) noexcept : cb(std::move(c)), serial(s) {}
    Callback cb;             // empty when free, or removed but still linked
    uint32_t serial = 0;     // of the callback last put here; ids carry it
    uint32_t next = kNone;   // the next in add order, or in the free list
  };
  void compact() noexcept;

  absl::InlinedVector<Slot, 2> slots_;
  uint32_t head_ = kNone;
  uint32_t tail_ = kNone;
  uint32_t free_ = kNone;  // free slots, linked through next
  uint32_t live_ = 0;      // linked callbacks not removed
  uint32_t removed_ = 0;   // linked callbacks removed
};

// (Indexing through data(): operator[]'s hardening checks would cost more
// than the rest of these hot paths.)
uint64_t DoneCallbacks::List::push_back(Callback&& cb) {
  uint32_t i = free_;
  if (i == kNone) {
    if (slots_.size() >= kMaxSlots) throw std::length_error("add_done_callback: too many done callbacks");
    i = static_cast<uint32_t>(slots_.size());
    slots_.emplace_back(std::move(cb), 0);
  } else {
    free_ = slots_.data()[i].next;
    slots_.data()[i].cb = std::move(cb);
  }
  Slot* all = slots_.data();
  Slot& s = all[i];
  if (++s.serial == 0) s.serial = 1;  // serial 0 is the moved-in wake-up's
  s.next = kNone;
  (tail_ == kNone ? head_ : all[tail_].next) = i;
  tail_ = i;
  ++live_;
  return (uint64_t{s.serial} << 32) | i;
}

bool DoneCallbacks::List::remove(uint64_t raw_id) noexcept {
  const auto i = static_cast<uint32_t>(raw_id);
  if (i >= slots_.size() || slots_[i].serial != static_cast<uint32_t>(raw_id >> 32) || !slots_[i].cb) return false;
  Callback dead = std::move(slots_[i].cb);  // destroyed last: its destructor may call back
  slots_[i].cb = nullptr;                   // (a moved-from AnyInvocable need not be empty)
  --live_;
  if (++removed_ > live_) compact();  // O(live + removed), paid for by the removals
  return true;
}

void DoneCallbacks::List::compact() noexcept {
  uint32_t* link = &head_;
  uint32_t last = kNone;
  for (uint32_t i = head_; i != kNone;) {
    const uint32_t next = slots_[i].next;
    if (slots_[i].cb) {
      *link = i;
      link = &slots_[i].next;
      last = i;
    } else {
      slots_[i].next = free_;
      free_ = i;
    }
    i = next;
  }
  *link = kNone;
  tail_ = last;
  removed_ = 0;
}

DoneCallbacks::Callback DoneCallbacks::List::pop_front() noexcept {
  if (removed_ != 0) compact();
  const uint32_t i = head_;
  Slot& s = slots_.data()[i];
  Callback cb = std::move(s.cb);
  s.cb = nullptr;
  head_ = s.next;
  if (head_ == kNone) tail_ = kNone;
  --live_;
  s.next = free_;  // reused by callbacks added meanwhile: nothing piles up
  free_ = i;
  return cb;
}

uint32_t DoneCallbacks::size() const noexcept {
  if (word_ == 0) return 0;
  if (List* l = list()) return l->size();
  return 1;
}

namespace {

// A hook moved into a list: the reference the inline word held goes with it.
class HookRef {
 public:
  explicit HookRef(DoneHook* h) noexcept : h_(h) {}
  HookRef(HookRef&& o) noexcept : h_(std::exchange(o.h_, nullptr)) {}
  HookRef& operator=(HookRef&&) = delete;
  ~HookRef() {
    if (h_) h_->hook_release();
  }
  void operator()(FutureStateBase& f) { h_->on_done(f); }

 private:
  DoneHook* h_;
};

}  // namespace

DoneCallbacks::List& DoneCallbacks::make_list() {
  if (List* l = list()) return *l;
  auto l = std::make_unique<List>();
  // The inline callback keeps its place (first) and its id.
  if (TaskCore* t = waker()) l->adopt_inline(Callback([t](FutureStateBase&) { wake_task(*t); }));
  if (DoneHook* h = hook()) l->adopt_inline(Callback(HookRef(h)));  // takes over the word's reference
  word_ = reinterpret_cast<uintptr_t>(l.release());
  return *list();
}

uint64_t DoneCallbacks::push_back(Callback&& cb) { return make_list().push_back(std::move(cb)) ^ key(); }

uint64_t DoneCallbacks::push_waker(TaskCore& t) {
  if (word_ != 0) return push_back(Callback([&t](FutureStateBase&) { wake_task(t); }));
  word_ = reinterpret_cast<uintptr_t>(&t) | kWakerTag;
  return key();  // raw id 0: slot 0, serial 0
}

uint64_t DoneCallbacks::push_hook(DoneHook& h) {
  if (word_ != 0) {
    h.hook_retain();
    return push_back(Callback(HookRef(&h)));  // on failure, ~HookRef gives the reference back
  }
  h.hook_retain();
  word_ = reinterpret_cast<uintptr_t>(&h) | kHookTag;
  return key();
}

bool DoneCallbacks::remove(uint64_t id) noexcept {
  id ^= key();
  if (word_ & kTags) {
    if (id != 0) return false;
    clear_slow();
    return true;
  }
  List* l = list();
  return l && l->remove(id);
}

void DoneCallbacks::run_front(FutureStateBase& s) {
  if (TaskCore* t = waker()) {
    word_ = 0;
    wake_task(*t);
    return;
  }
  if (DoneHook* h = hook()) {
    word_ = 0;
    HookRef held(h);  // released after the call, even one that throws
    held(s);
    return;
  }
  List* l = list();
  Callback cb = l->pop_front();
  // The list's memory goes back once its last scheduled callback is out
  // (before the call, which may add callbacks of its own).
  if (l->size() == 0) clear_slow();
  cb(s);
}

void DoneCallbacks::clear_slow() noexcept {
  // Taken out first: a callback's destructor (a hook's release) may call
  // back into the future.
  DoneHook* h = hook();
  std::unique_ptr<List> dead(list());
  word_ = 0;
  if (h) h->hook_release();
}

// --- FutureStateBase --------------------------------------------------------------

namespace {

// Whether the loop checks calls at all (the rare case): the common path
// pays two loads.
inline bool loop_checks(const QiEventLoop* l) noexcept { return l && (l->is_closed() || l->get_debug()); }

}  // namespace

// The ready-queue entry of one scheduled done callback: runs the first of
// its future's callbacks. Holds one reference to the state. Small enough for
// the callback node's inline storage, so completing a future allocates
// nothing.
struct FiringEntry {
  FutureStateBase* state;
  bool ran = false;
  explicit FiringEntry(FutureStateBase* s) noexcept : state(s) {}
  FiringEntry(FiringEntry&& o) noexcept : state(std::exchange(o.state, nullptr)), ran(o.ran) {}
  FiringEntry& operator=(FiringEntry&&) = delete;
  ~FiringEntry() {
    if (!state) return;
    if (!ran) {
      // Dropped: by close(), which drops every entry of a closed loop (so
      // none of the callbacks will run: they go now), or by a call_soon that
      // failed (its caller takes its callback back).
      const QiEventLoop* l = state->loop();
      if (!l || l->is_closed()) state->callbacks_.clear();
    }
    state->release();
  }
  void operator()() {
    ran = true;
    state->callbacks_.run_front(*state);
  }
};

FutureStateBase::FutureStateBase(QiEventLoop& loop) : loop_(&loop) {}

void* FutureStateBase::operator new(std::size_t n) { return alloc_frame(n); }
void FutureStateBase::operator delete(void* p, std::size_t n) noexcept { free_frame(p, n); }

FutureStateBase::~FutureStateBase() {
  if (rare_)
    for (FutureStateBase* t : rare_->awaited_by) t->release();
}

std::string FutureStateBase::describe() const { return "Future"; }

RareState& FutureStateBase::rare() {
  if (!rare_) rare_ = std::make_unique<RareState>();
  return *rare_;
}

void FutureStateBase::add_awaited_by(TaskCore& task) {
  std::vector<FutureStateBase*>& v = rare().awaited_by;
  FutureStateBase* t = &task;
  if (std::find(v.begin(), v.end(), t) != v.end()) return;
  v.push_back(t);
  t->retain();
}

void FutureStateBase::remove_awaited_by(TaskCore& task) noexcept {
  if (!rare_) return;
  std::vector<FutureStateBase*>& v = rare_->awaited_by;
  auto it = std::find(v.begin(), v.end(), static_cast<FutureStateBase*>(&task));
  if (it == v.end()) return;
  v.erase(it);
  task.release();  // may destroy it: nothing of it is read after
}

std::vector<FutureStateBase*> FutureStateBase::linked_awaiters() const {
  return rare_ ? rare_->awaited_by : std::vector<FutureStateBase*>{};
}

namespace {

// Deleting a state releases what it holds (a gather's children, a shield's
// inner, a task's frame and what that awaited), which may be the last
// reference to another state: a chain of them (100,000 nested gathers) was
// deleted one nested call per link, past the end of the stack. Past
// kNesting nested deletions on a thread, a state released is deleted after
// the outermost one instead, one at a time (CPython's trashcan, for deep
// containers, which also defers only past a depth): below it, a handle
// dropped inside a deletion (by a done callback's destructor, by the
// exception handler reporting a state it released) still finds its state
// gone when the drop returns, as it always did. Plain pointers, so a state
// released while the thread ends still finds it usable; the overflow is
// freed once the chain is gone.
struct DeferredDeletes {
  static constexpr std::size_t kInline = 8;
  FutureStateBase* first[kInline];
  FutureStateBase** overflow;  // beyond kInline, while a chain is deleted
  std::size_t size;
  std::size_t overflow_cap;
  std::size_t depth;  // deletions on this thread's stack

  bool push(FutureStateBase* s) noexcept {
    if (size < kInline) {
      first[size++] = s;
      return true;
    }
    const std::size_t i = size - kInline;
    if (i == overflow_cap) {
      const std::size_t cap = overflow_cap ? overflow_cap * 2 : 64;
      auto* grown = static_cast<FutureStateBase**>(std::realloc(overflow, cap * sizeof(FutureStateBase*)));
      if (!grown) return false;
      overflow = grown;
      overflow_cap = cap;
    }
    overflow[i] = s;
    ++size;
    return true;
  }
  FutureStateBase* pop() noexcept {
    --size;
    return size < kInline ? first[size] : overflow[size - kInline];
  }
};

// A level is a handful of calls: about 1 KiB of stack at -O0, 1.5 under
// ASan (measured on a chain of values), so the nesting allowed stays some
// tens of KiB, far below a thread's stack, and deep enough that the
// deletions a program nests by hand go at once.
constexpr std::size_t kNesting = 32;

__attribute__((tls_model("initial-exec"))) constinit thread_local DeferredDeletes t_deletes{};

void delete_state(FutureStateBase* s) noexcept {
  DeferredDeletes& d = t_deletes;
  if (d.depth >= kNesting && d.push(s)) return;  // (out of memory: now, nested as before)
  ++d.depth;
  delete s;
  if (d.depth == 1) {
    // Last in, first out: a chain takes one slot, a wide tree one per child
    // beyond the depth. Each goes nested up to kNesting again.
    while (d.size > 0) delete d.pop();
    std::free(std::exchange(d.overflow, nullptr));
    d.overflow_cap = 0;
  }
  --d.depth;
}

}  // namespace

void FutureStateBase::last_release() noexcept {
  if (status_ == Status::kFinished && exception_ && !(flags_ & kRetrieved)) {
    refs_.store(1, std::memory_order_relaxed);  // the report's own, while it runs
    // The handler runs on the loop's thread: a last handle dropped on
    // another thread sends the report there, with a reference of its own.
    if (QiEventLoop* l = loop_.data(); l && l->thread() != QThread::currentThread()) {
      try {
        l->call_soon_threadsafe([self = StateRef<FutureStateBase>(this)] { self->report_unretrieved(); });
      } catch (...) {
        report_unretrieved();  // a closed loop runs nothing more: here, as with no loop
      }
    } else {
      report_unretrieved();
    }
    if (refs_.fetch_sub(1, std::memory_order_acq_rel) != 1) return;  // the handler (or the report sent) kept it
  }
  delete_state(this);
}

void FutureStateBase::report_unretrieved() noexcept {
  flags_ |= kRetrieved;  // once
  try {
    ExceptionContext ctx;
    ctx.message = describe() + " exception was never retrieved";
    ctx.exception = exception_;
    ctx.future = FutureRef(this);  // a task too, as asyncio's context["future"]
    if (QiEventLoop* l = loop_.data())
      l->call_exception_handler(ctx);
    else
      qCCritical(lcQiloop, "%s (its loop is gone)%s", ctx.message.c_str(), call_graph_for_report(this).c_str());
  } catch (...) {
  }
}

void FutureStateBase::mark_cancelled(std::string msg) {
  if (done()) return;
  if (!msg.empty() || rare_) rare().cancel_message = std::move(msg);
  finish(Status::kCancelled);
}

void FutureStateBase::check_call(const char* api, bool schedules) const {
  QiEventLoop* l = loop_.data();
  if (!loop_checks(l)) return;
  if (schedules)
    l->check_can_schedule(api);  // what the call_soon to come would check, made now
  else if (l->debug_)
    l->check_thread(api);
}

void FutureStateBase::check_thread_first(const char* api) const {
  const QiEventLoop* l = loop_.data();
  if (loop_checks(l) && l->debug_) [[unlikely]]
    l->check_thread(api);
}

void FutureStateBase::check_settable(const char* api) const {
  const bool checks = loop_checks(loop_.data());
  if (checks) [[unlikely]]
    check_thread_first(api);
  if (is_task())
    throw RuntimeError(std::string(api) +
                       ": a Task's result comes from its coroutine (co_return / throw); cancel() it instead");
  if (status_ != Status::kPending)
    throw InvalidStateError(std::string(api) + ": the future is already " +
                            (status_ == Status::kCancelled ? "cancelled" : "done") + "; check done() first");
  if (checks) [[unlikely]]
    check_call(api, callbacks_.size() != 0);
}

bool FutureStateBase::cancel(std::string msg) {
  const bool checks = loop_checks(loop_.data());
  if (checks) [[unlikely]]
    check_thread_first("cancel");
  if (status_ != Status::kPending) return false;
  if (checks) [[unlikely]]
    check_call("cancel", callbacks_.size() != 0);
  if (!msg.empty() || rare_) rare().cancel_message = std::move(msg);
  finish(Status::kCancelled);
  return true;
}

void FutureStateBase::set_exception(std::exception_ptr e) {
  if (!e)
    throw std::invalid_argument(
        "set_exception: the exception_ptr is null; pass std::make_exception_ptr(...) or std::current_exception()");
  check_settable("set_exception");
  finish_with_exception(std::move(e));
}

void FutureStateBase::finish_with_exception(std::exception_ptr e) {
  exception_ = std::move(e);
  finish(Status::kFinished);
}

std::exception_ptr FutureStateBase::exception() {
  if (status_ == Status::kCancelled) throw CancelledError(cancel_message());
  if (status_ == Status::kPending)
    throw InvalidStateError("exception: the future is not done yet; wait for it (add_done_callback) first");
  flags_ |= kRetrieved;
  return exception_;
}

void FutureStateBase::check_result() {
  if (status_ == Status::kCancelled) throw CancelledError(cancel_message());
  if (status_ == Status::kPending)
    throw InvalidStateError("result: the future is not done yet; wait for it (add_done_callback) first");
  flags_ |= kRetrieved;
  if (exception_) {
    // A plain future's record of where its exception came from (work run by
    // an executor) follows the exception into the task it is rethrown in.
    if (rare_ && rare_->escape && !is_task()) note_rethrown(rare_->escape);
    std::rethrow_exception(exception_);
  }
}

void FutureStateBase::throw_loop_destroyed(const char* api) const {
  throw RuntimeError(std::string(api) + ": " + describe() +
                     " belongs to an event loop that was destroyed, so none of its done callbacks can run and a "
                     "wait on it would never end; create futures and tasks on a loop that outlives their waiters");
}

template <class Push>
uint64_t FutureStateBase::hook(Push&& push) {
  QiEventLoop* l = loop_.data();
  const bool checks = loop_checks(l);
  if (checks) [[unlikely]]
    check_thread_first("add_done_callback");
  // Pending too: its completion could schedule nothing, so a callback (a
  // task's wake-up) added now would never run and its waiter would hang.
  if (!l) throw_loop_destroyed("add_done_callback");
  const bool now = done();
  if (checks) [[unlikely]]
    check_call("add_done_callback", now);
  const uint64_t id = push();
  if (now) {
    try {
      schedule_entries(*l, 1);
    } catch (...) {
      callbacks_.remove(id);  // out of memory: take it back
      throw;
    }
  }
  return id;
}

uint64_t FutureStateBase::add_done_callback(DoneCallback cb) {
  if (!cb) throw std::invalid_argument("add_done_callback: the callback is empty; pass a callable");
  return hook([&] { return callbacks_.push_back(std::move(cb)); });
}

uint64_t FutureStateBase::add_waker(TaskCore& t) {
  return hook([&] { return callbacks_.push_waker(t); });
}

uint64_t FutureStateBase::add_done_hook(DoneHook& h) {
  return hook([&] { return callbacks_.push_hook(h); });
}

void FutureStateBase::drop_callbacks() noexcept {
  if (!done()) callbacks_.clear();
}

std::size_t FutureStateBase::remove_done_callback(uint64_t id) {
  if (loop_checks(loop_.data())) [[unlikely]]
    check_call("remove_done_callback", false);
  if (done()) return 0;  // already scheduled: they run (as in asyncio)
  return callbacks_.remove(id) ? 1 : 0;
}

void FutureStateBase::finish(Status s) {
  status_ = s;
  const uint32_t n = callbacks_.size();
  if (n == 0) {
    callbacks_.clear();  // removed ones only
    return;
  }
  QiEventLoop* l = loop_.data();
  if (!l) {
    qCWarning(lcQiloop, "a future completed after its event loop was destroyed: %u done callbacks dropped", n);
    callbacks_.clear();
    return;
  }
  schedule_entries(*l, n);
}

// Done callbacks never run inside set_result(): they go through the loop,
// one ready-queue entry each, in the order they were added. (Counting the
// entries to make here is the caller's: an entry that is running still
// counts as outstanding.)
void FutureStateBase::schedule_entries(QiEventLoop& l, std::size_t n) {
  for (std::size_t i = 0; i < n; ++i) {
    retain();  // the entry's, released when it goes (run, dropped or refused)
    l.call_soon(FiringEntry(this));
  }
}

}  // namespace qi::detail
