// hello_tasks — asyncio's task tutorial, in C++: concurrent tasks, awaiting
// results, cancellation that lands at the co_await, and qi::run cleaning up.
// The asyncio original:
//
//   async def say_after(delay, what):
//       await asyncio.sleep(delay)
//       return what
//
//   async def ticker():
//       try:
//           while True:
//               await asyncio.sleep(0.004); print("tick")
//       except asyncio.CancelledError as e:
//           print("ticker cancelled:", e.args[0]); raise
//
//   async def main():
//       a = asyncio.create_task(say_after(0.010, "hello"))
//       b = asyncio.create_task(say_after(0.005, "world"))
//       t = asyncio.create_task(ticker())
//       print(await b, await a)
//       t.cancel("done ticking")
//       try: await t
//       except asyncio.CancelledError: print("ticker is", "cancelled" if t.cancelled() else "?")
//
//   asyncio.run(main())
#include <qiloop/qiloop.h>

#include <QtCore/QCoreApplication>

#include <cstdio>
#include <string>

using namespace std::chrono_literals;

namespace {

qi::Coro<std::string> say_after(std::chrono::milliseconds delay, std::string what) {
  co_await qi::sleep(delay);
  co_return what;
}

qi::Coro<void> ticker() {
  try {
    for (;;) {
      co_await qi::sleep(4ms);
      std::printf("tick\n");
    }
  } catch (const qi::CancelledError& e) {
    std::printf("ticker cancelled: %s\n", e.what());
    throw;
  }
}

qi::Coro<void> main_coro() {
  auto a = qi::create_task(say_after(10ms, "hello"));
  auto b = qi::create_task(say_after(5ms, "world"));
  auto t = qi::create_task(ticker(), "ticker");
  std::string first = co_await b;
  std::string second = co_await a;
  std::printf("%s %s\n", first.c_str(), second.c_str());
  t.cancel("done ticking");
  try {
    co_await t;
  } catch (const qi::CancelledError&) {
    std::printf("%s is %s\n", t.get_name().c_str(), t.cancelled() ? "cancelled" : "?");
  }
}

}  // namespace

int main(int argc, char** argv) {
  QCoreApplication app(argc, argv);
  qi::run(main_coro());
  return 0;
}
