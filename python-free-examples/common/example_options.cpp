#include "example_options.h"

#include <cstdio>
#include <cstdlib>

namespace example {

qulonglong number_option(const QCommandLineParser& parser, const QCommandLineOption& option, qulonglong min,
                         qulonglong max, const char* program) {
  bool ok = false;
  const qulonglong v = parser.value(option).toULongLong(&ok);
  if (!ok || v < min || v > max) {
    std::fprintf(stderr, "%s: --%s wants a number from %llu to %llu, not '%s'\n", program,
                 qPrintable(option.names().first()), min, max, qPrintable(parser.value(option)));
    std::exit(2);
  }
  return v;
}

}  // namespace example
