// Calling a coroutine function without awaiting (or create_task) does nothing.
#include <qiloop/qiloop.h>

qi::Coro<int> answer() { co_return 42; }

void f() { answer(); }
