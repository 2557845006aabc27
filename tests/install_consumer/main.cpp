// Built against an installed qiloop: proves the package is usable as is.
#include <qiloop/qiloop.h>

#include <QtCore/QCoreApplication>

#include <cstdio>

int main(int argc, char** argv) {
  QCoreApplication app(argc, argv);
  QiEventLoop loop;
  int order = 0;
  loop.call_soon([&] { order = order * 10 + 1; });
  loop.call_later(0.001, [&] {
    order = order * 10 + 2;
    loop.stop();
  });
  loop.run_forever();
  std::printf("consumer: order %d\n", order);
  return order == 12 ? 0 : 1;
}
