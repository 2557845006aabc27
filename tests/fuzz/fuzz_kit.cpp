#include "fuzz_kit.h"

#include <QtCore/QCoreApplication>

#include <exception>

namespace fuzz {

QiEventLoop& loop() {
  static int argc = 1;
  static char name[] = "qiloop-fuzz";
  static char* argv[] = {name, nullptr};
  static QCoreApplication* app = new QCoreApplication(argc, argv);
  static QiEventLoop* l = new QiEventLoop;
  (void)app;
  return *l;
}

void run(qi::Coro<void> body) {
  try {
    loop().run_until_complete(std::move(body));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "\nFUZZ: the body threw %s: %s\n", typeid(e).name(), e.what());
    std::fflush(stderr);
    std::abort();
  }
}

void split_feed(qi::StreamReader& reader, QByteArrayView data, Input& cuts) {
  while (!data.isEmpty()) {
    const qsizetype k = std::min<qsizetype>(data.size(), qsizetype{cuts.u8()} + 1);
    reader.feed_data(data.first(k));
    data = data.sliced(k);
  }
}

}  // namespace fuzz
