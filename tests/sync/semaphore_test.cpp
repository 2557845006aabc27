#include <qiloop/testing.h>
