#include <qiloop/qt/signal_stream.h>
#include <qiloop/testing.h>
