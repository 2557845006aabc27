// bound_task.cpp — tasks bound to a QObject's life (<qiloop/qt/bound_task.h>).
#include <qiloop/errors.h>
#include <qiloop/qt/bound_task.h>

#include <QtCore/QThread>

#include <utility>

namespace qi::detail {

namespace {

constexpr const char* kGuardDestroyed = "the QObject the task was bound to was destroyed";

// QObjectData (public in <QtCore/qobject.h>) says whether ~QObject has begun;
// QObject keeps it in a protected member, reached through a pointer to member
// formed in a derived class (which the language allows).
struct DataPeek : QObject {
  static constexpr auto kData = &DataPeek::d_ptr;
};

// Disconnects when it goes: held by the task's done callback, so the
// connection goes when the task is done (its callback ran) or destroyed.
class ScopedConnection {
 public:
  explicit ScopedConnection(QMetaObject::Connection c) noexcept : c_(std::move(c)) {}
  ScopedConnection(ScopedConnection&& o) noexcept : c_(std::exchange(o.c_, {})) {}
  ScopedConnection& operator=(ScopedConnection&&) = delete;
  ~ScopedConnection() {
    if (c_) QObject::disconnect(c_);
  }

 private:
  QMetaObject::Connection c_;
};

}  // namespace

bool being_destroyed(const QObject* obj) noexcept { return (obj->*DataPeek::kData)->wasDeleted; }

void check_guard(const QObject* guard, const char* api, bool same_thread) {
  if (!guard)
    throw ValueError(std::string(api) +
                     ": the guard QObject is null; pass the object whose destruction must cancel the task, or "
                     "use the overload without a guard");
  if (same_thread && guard->thread() != QThread::currentThread())
    throw RuntimeError(std::string(api) +
                       ": the guard QObject lives in another thread than the task's loop; bind the task to an "
                       "object of the loop's thread (a worker's tasks: an object of the worker thread)");
}

void bind_to_object(TaskCore& task, QObject* guard, const char* api) {
  check_guard(guard, api);
  if (task.done()) return;
  if (being_destroyed(guard)) {
    // Its destroyed() has been emitted (or is being): a connection would
    // never fire. It is cancelled now, as that emission would have.
    task.cancel_now(kGuardDestroyed);
    return;
  }
  // Raw: the connection never outlives the task's state, whose done
  // callbacks (and so the ScopedConnection) go at the latest with it.
  QMetaObject::Connection c =
      QObject::connect(guard, &QObject::destroyed, [t = &task] { t->cancel_now(kGuardDestroyed); });
  task.add_done_callback([scoped = ScopedConnection(std::move(c))](FutureStateBase&) {});
}

}  // namespace qi::detail
