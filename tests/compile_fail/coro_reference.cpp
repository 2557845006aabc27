#include <qiloop/qiloop.h>

int value = 0;
qi::Coro<int&> ref() { co_return value; }
