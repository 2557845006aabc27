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

void print_events(const char* title, const std::vector<std::string>& events) {
  std::fprintf(stderr, "%s: %zu events\n", title, events.size());
  for (const std::string& e : events) {
    std::string shown;
    for (char c : e) {
      if (c == '\n') {
        shown += "\\n";
      } else if (c == '\r') {
        shown += "\\r";
      } else if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) {
        char hex[8];
        std::snprintf(hex, sizeof hex, "\\x%02x", static_cast<unsigned char>(c));
        shown += hex;
      } else {
        shown += c;
      }
    }
    std::fprintf(stderr, "  %s\n", shown.c_str());
  }
}


}  // namespace fuzz
