// modal.cpp — the one-pending-modal rule of qi::modal (<qiloop/qt/modal.h>).
#include <qiloop/qt/modal.h>

namespace qi::detail {

namespace {

// One running loop per thread, so the loop's slot is the thread's: the
// owner (a ModalState) of the pending modal call, or null.
thread_local const void* t_modal_owner = nullptr;

}  // namespace

void claim_modal(QiEventLoop&, const void* owner) {
  if (t_modal_owner)
    throw RuntimeError(
        "qi::modal: a modal call is already pending on this loop (at most one at a time, from the co_await until "
        "its fn returns); open the second dialog from inside the first one's fn, or await the first modal "
        "before starting another");
  t_modal_owner = owner;
}

void release_modal(const void* owner) noexcept {
  if (t_modal_owner == owner) t_modal_owner = nullptr;
}

void report_modal_error(QiEventLoop& loop, std::exception_ptr e) noexcept {
  ExceptionContext ctx;
  ctx.message = "qi::modal: the result of the modal call could not be delivered";
  ctx.exception = std::move(e);
  loop.call_exception_handler(ctx);
}

}  // namespace qi::detail
