// A host's extension that links qiloop (loaded with QLibrary by plugin_host):
// it runs tasks on qi::get_running_loop(), the loop the plugin attached.
// The host, which does not link qiloop, reaches it through these C entry
// points; each returns null on success or the error's message.
#include <qiloop/qiloop.h>

#include <QtCore/QThread>
#include <QtCore/QtGlobal>

#include <chrono>
#include <exception>
#include <string>

using namespace std::chrono_literals;

namespace {

// The last error, for the host to read (valid until the next call).
thread_local std::string t_error;

template <class F>
const char* guarded(F f) {
  try {
    f();
    return nullptr;
  } catch (const std::exception& e) {
    t_error = e.what();
    return t_error.c_str();
  }
}

qi::Coro<int> answer() {
  co_await qi::sleep(5ms);
  co_return 42;
}

qi::Coro<void> report_answer(void (*done)(void*, int), void* ctx) {
  co_await qi::sleep(20ms);
  qi::Task<int> inner = qi::create_task(answer());  // a second task, on the same loop
  int v = co_await inner;
  done(ctx, v);
}

// Sleeps until detach() (QiRunner's clean-up) cancels it.
qi::Coro<void> wait_for_detach(void (*cancelled)(void*), void* ctx) {
  try {
    co_await qi::sleep(24h);
  } catch (const qi::CancelledError&) {
    cancelled(ctx);
    throw;
  }
}

}  // namespace

extern "C" {

// cb(ctx) through qi::get_running_loop().call_soon: it runs in FIFO order
// with the host's plugin calls exactly when both reach the same loop.
Q_DECL_EXPORT const char* qiloop_test_extension_call_soon(void (*cb)(void*), void* ctx) {
  return guarded([&] { qi::get_running_loop().call_soon(cb, ctx); });
}

// A task on the running loop that awaits another task, then done(ctx, 42).
Q_DECL_EXPORT const char* qiloop_test_extension_start(void (*done)(void*, int), void* ctx) {
  return guarded([&] { qi::create_task(report_answer(done, ctx)); });
}

// A task that only ends when cancelled; cancelled(ctx) then.
Q_DECL_EXPORT const char* qiloop_test_extension_start_forever(void (*cancelled)(void*), void* ctx) {
  return guarded([&] { qi::create_task(wait_for_detach(cancelled, ctx)); });
}

}  // extern "C"
