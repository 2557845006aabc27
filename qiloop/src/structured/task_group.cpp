// qi::TaskGroup (asyncio 3.13's taskgroups.py); the contract is in
// <qiloop/structured/task_group.h>.
#include <qiloop/structured/task_group.h>

#include <qiloop/structured/timeout.h>

#include <absl/container/flat_hash_map.h>

#include <algorithm>
#include <string>
#include <vector>

namespace qi::detail {

// The group's book. Invariant: `children` holds every child whose done
// callback (on_task_done) has not run, with that callback's id; `errors`
// lists the failures not yet rethrown, in the order their callbacks ran.
// parent_cancel_requested: the group cancelled the parent once and owes it
// one uncancel() (taskgroups.py's flag of the same name).
// It is the children's done hook (no allocation per child): registered
// hooks keep it alive through self_.
class TaskGroupState final : public DoneHook, public std::enable_shared_from_this<TaskGroupState> {
 public:
  explicit TaskGroupState(TaskRef p) : parent(std::move(p)) {}

  void on_done(FutureStateBase& task) override { on_task_done(task); }
  void hook_retain() noexcept override {
    if (hooks_++ == 0) self_ = shared_from_this();  // (owned by a shared_ptr from birth: never throws)
  }
  void hook_release() noexcept override {
    if (--hooks_ == 0) std::shared_ptr<TaskGroupState> last = std::move(self_);  // may destroy *this
  }

  void on_task_done(FutureStateBase& task);
  // Cancels every child still pending; no child may be added from now on.
  void abort();

  struct Child {
    TaskRef task;
    uint64_t callback;
    uint64_t seq;  // creation order
  };
  std::vector<Child*> in_order();
  TaskRef parent;
  absl::flat_hash_map<FutureStateBase*, Child> children;
  std::vector<std::exception_ptr> errors;
  Future<void> on_completed;  // set while wait() waits for the last child
  bool exiting = false;       // wait() began
  bool finished = false;      // wait() saw the last child done
  bool aborting = false;
  bool parent_cancel_requested = false;
  // The group is gone: a done callback that was already scheduled when it
  // went (removing it was too late) finds this and does nothing.
  bool detached = false;
  uint64_t next_seq = 0;

 private:
  std::size_t hooks_ = 0;  // children whose callbacks hold this hook
  std::shared_ptr<TaskGroupState> self_;  // while hooks_ > 0
};

// In the order the children were created (the map has none), so that
// children cancelled together finish — and fail — in a reproducible order.
std::vector<TaskGroupState::Child*> TaskGroupState::in_order() {
  std::vector<Child*> all;
  all.reserve(children.size());
  for (auto& entry : children) all.push_back(&entry.second);
  std::sort(all.begin(), all.end(), [](const Child* a, const Child* b) { return a->seq < b->seq; });
  return all;
}

void TaskGroupState::abort() {
  aborting = true;
  // cancel() schedules callbacks and runs none: `children` stays as it is.
  for (Child* child : in_order())
    if (!child->task.done()) child->task.cancel();
}

void TaskGroupState::on_task_done(FutureStateBase& task) {
  if (detached) return;
  children.erase(&task);
  if (on_completed.valid() && children.empty() && !on_completed.done()) on_completed.set_result();
  if (task.cancelled()) return;
  std::exception_ptr error = task.exception();
  if (!error) return;
  if (parent.done()) {
    // A group kept beyond its parent's life: nobody will rethrow it.
    ExceptionContext ctx;
    ctx.message = task.describe() + " of a qi::TaskGroup failed, but its parent " + parent.describe() +
                  " is already done";
    ctx.exception = error;
    ctx.task = TaskRef(&task);
    if (QiEventLoop* loop = task.loop()) loop->call_exception_handler(ctx);
    return;
  }
  errors.push_back(std::move(error));
  if (!aborting && !parent_cancel_requested) {
    // Interrupt the parent's body (or wait()); wait() takes this back.
    abort();
    parent_cancel_requested = true;
    parent.cancel();
  }
}

}  // namespace qi::detail

namespace qi {

TaskGroup::TaskGroup() {
  TaskRef parent = current_task();
  if (!parent)
    throw RuntimeError(
        "qi::TaskGroup cannot determine the parent task: create the group inside a task (a coroutine run by "
        "create_task or qi::run)");
  loop_ = &get_running_loop();
  state_ = std::make_shared<detail::TaskGroupState>(std::move(parent));
}

TaskGroup::~TaskGroup() {
  detail::TaskGroupState& s = *state_;
  s.detached = true;
  std::size_t cancelled = 0;
  for (detail::TaskGroupState::Child* child : s.in_order()) {
    detail::FutureStateBase* state = child->task.state();
    state->remove_done_callback(child->callback);
    if (!state->done()) {
      ++cancelled;
      try {
        child->task.cancel();
      } catch (...) {
        // The loop is closed: it destroys the child itself, and reports it.
      }
    } else if (!state->cancelled()) {
      // Done, its callback not yet run: a failure would be lost.
      if (std::exception_ptr e = state->exception()) s.errors.push_back(std::move(e));
    }
  }
  QiEventLoop* loop = s.parent.state()->loop();
  if (!loop) return;
  if (cancelled != 0) {
    ExceptionContext ctx;
    ctx.message = "qi::TaskGroup destroyed before wait() finished: cancelled " + std::to_string(cancelled) +
                  " pending child task(s); co_await group.wait() before the group goes out of scope";
    ctx.task = s.parent;
    loop->call_exception_handler(ctx);
  }
  for (std::exception_ptr& e : s.errors) {
    ExceptionContext ctx;
    ctx.message = "qi::TaskGroup child task failed, but the group was destroyed before wait() could rethrow it";
    ctx.exception = std::move(e);
    ctx.task = s.parent;
    loop->call_exception_handler(ctx);
  }
}

const char* TaskGroup::refusal() const noexcept {
  const detail::TaskGroupState& s = *state_;
  if (s.finished || (s.exiting && s.children.empty())) return "is finished";
  if (s.aborting) return "is shutting down";
  return nullptr;
}

void TaskGroup::throw_refused(const char* why) const {
  throw RuntimeError(std::string("qi::TaskGroup ") + why +
                     (state_->aborting && !state_->finished
                          ? " (a child failed or the group was cancelled): it takes no new children"
                          : ": its wait() has returned; create the task in a new group") +
                     "; the coroutine was destroyed without running");
}

void TaskGroup::adopt(TaskRef child) {
  detail::TaskGroupState& s = *state_;
  detail::FutureStateBase* key = child.state();
  auto [it, inserted] = s.children.try_emplace(key, detail::TaskGroupState::Child{std::move(child), 0, s.next_seq++});
  try {
    it->second.callback = key->add_done_hook(s);
  } catch (...) {
    // Out of memory: a child the group cannot follow must not run unseen.
    TaskRef orphan = std::move(it->second.task);
    s.children.erase(it);
    orphan.cancel();
    throw;
  }
}

Coro<void> TaskGroup::wait(std::exception_ptr body_error) {
  detail::TaskGroupState& s = *state_;
  if (!(current_task() == s.parent))
    throw RuntimeError("qi::TaskGroup::wait() must be awaited by the task that created the group");
  if (s.exiting) throw RuntimeError("qi::TaskGroup::wait() was already awaited: await it once");
  s.exiting = true;
  std::exception_ptr propagate_cancel;
  if (body_error) {
    if (detail::is_cancelled_error(body_error)) propagate_cancel = body_error;
    if (!s.aborting) s.abort();
  }
  // A loop: the parent may be cancelled repeatedly while it waits.
  while (!s.children.empty()) {
    s.on_completed = loop_->create_future<void>();
    try {
      co_await s.on_completed;
    } catch (const CancelledError&) {
      if (!s.aborting) {
        // The parent is cancelled from outside: take the children down too.
        propagate_cancel = std::current_exception();
        s.abort();
      }
    }
    s.on_completed = {};
  }
  s.finished = true;
  // The group's own request is taken back; what is left is someone else's.
  if (s.parent_cancel_requested && s.parent.uncancel() == 0) propagate_cancel = nullptr;
  // Failures win over a cancellation.
  if (propagate_cancel && s.errors.empty()) std::rethrow_exception(propagate_cancel);
  if (body_error && !detail::is_cancelled_error(body_error)) s.errors.push_back(body_error);
  if (s.errors.empty()) co_return;
  // Cancelled from outside as well: un-cancel and re-cancel, so that request
  // lands at the parent's next co_await with the count unchanged.
  if (s.parent.cancelling() > 0) {
    s.parent.uncancel();
    s.parent.cancel();
  }
  std::vector<std::exception_ptr> errors = std::move(s.errors);
  s.errors.clear();
  if (errors.size() == 1) std::rethrow_exception(errors.front());
  throw ExceptionGroup("unhandled errors in a TaskGroup", std::move(errors));
}

}  // namespace qi
