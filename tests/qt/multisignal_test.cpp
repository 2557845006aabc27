#include <qiloop/qt/multisignal.h>
#include <qiloop/testing.h>
