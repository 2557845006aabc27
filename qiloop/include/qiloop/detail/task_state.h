// qiloop/detail/task_state.h — a task's whole state: TaskCore plus the
// typed result slot, completed from the root coroutine. Internal; the
// contract is in <qiloop/task.h>.
#pragma once

#include <qiloop/coro.h>
#include <qiloop/detail/future_state.h>
#include <qiloop/detail/task_core.h>
#include <qiloop/errors.h>

#include <exception>
#include <string>
#include <type_traits>
#include <utility>

class QiEventLoop;

namespace qi::detail {

// TaskCore (with FutureStateBase) comes first: the result (of any size) then
// lies after the polymorphic part, whose offset stays small whatever T is
// (UBSan rejects a vptr beyond 1 MiB from the object's start).
template <class T>
class TaskState final : public FutureState<T, TaskCore> {
 public:
  TaskState(QiEventLoop& loop, typename Coro<T>::handle_type root, std::string name)
      : FutureState<T, TaskCore>(loop, root, std::move(name)) {}
  ~TaskState() override { this->destroy_root(); }

  PromiseBase* root_promise() const noexcept override {
    return this->root() ? &Coro<T>::handle_type::from_address(this->root().address()).promise() : nullptr;
  }

 private:
  void complete_from_root() override {
    auto& p = Coro<T>::handle_type::from_address(this->root().address()).promise();
    if (p.exception) {
      try {
        std::rethrow_exception(p.exception);
      } catch (const CancelledError& e) {
        this->mark_cancelled(e.message());
        return;
      } catch (...) {
      }
      this->finish_with_exception(p.exception);
    } else if (this->must_cancel()) {
      // Cancelled right before the coroutine returned (asyncio does the same).
      this->mark_cancelled(this->must_cancel_msg());
    } else if constexpr (std::is_void_v<T>) {
      this->finish_with_value();
    } else {
      this->finish_with_value(std::move(*p.value));
    }
  }
};

}  // namespace qi::detail
