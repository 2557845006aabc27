// The control: the right way to write each of the failing snippets
// compiles, also with -Werror=unused-result (the [[nodiscard]] values are
// used; awaiting them does not warn; a task may be dropped).
#include <qiloop/qiloop.h>

using namespace std::chrono_literals;

qi::Coro<int> answer() { co_return 42; }

qi::Coro<void> main_coro(QiEventLoop& loop, int fd) {
  co_await qi::sleep(50ms);
  co_await qi::sleep(0.01);
  int v = co_await answer();
  qi::Future<int> fut = loop.create_future<int>();
  fut.add_done_callback([](qi::Future<int> done) { (void)done.result(); });
  fut.add_done_callback([](const qi::Future<int>&) {});
  fut.add_done_callback([] {});
  loop.call_soon([&loop] { loop.create_task(answer()); });
  loop.call_soon([](int) {}, v);
  loop.call_later(10ms, [] {});
  loop.call_at(loop.time(), [] {});
  loop.call_soon_threadsafe([] {});
  loop.add_reader(fd, [] {});
  loop.add_writer(fd, [](int) {}, 1);
  loop.create_task(answer());
  fut.set_result(v);
  co_await fut;
  int* p = &v;
  qi::Future<int*> by_pointer = loop.create_future<int*>();
  by_pointer.set_result(p);
  co_await std::move(by_pointer);
  qi::Future<std::reference_wrapper<int>> by_wrapper = loop.create_future<std::reference_wrapper<int>>();
  by_wrapper.set_result(std::ref(v));
  int& r = co_await by_wrapper;
  (void)r;
}
