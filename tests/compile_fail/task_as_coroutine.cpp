#include <qiloop/qiloop.h>

// A coroutine declared to return the task it should be started as.
qi::Task<int> answer() { co_return 42; }
