// example_options.h — the numeric command-line options of the example
// programs, read and checked the same way in each.
//
//   const qulonglong port = example::number_option(parser, port_option, 0, 65535, "framed_server");
//
// The contract: the option's value as a number from min to max. Anything
// else (not a number, out of range) is a mistake on the command line: the
// program ends with status 2 after one line on stderr that names the fix,
// "<program>: --<option> wants a number from <min> to <max>, not '<value>'"
// (as QCommandLineParser ends it for an unknown option). Call it after
// parser.process().
#pragma once

#include <QtCore/QCommandLineParser>

namespace example {

qulonglong number_option(const QCommandLineParser& parser, const QCommandLineOption& option, qulonglong min,
                         qulonglong max, const char* program);

}  // namespace example
