#include <qiloop/qiloop.h>

qi::Task<int&> task;
