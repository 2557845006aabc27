// A plain function through qi::asyncslot: connect it directly instead.
#include <qiloop/qiloop.h>

void f(QObject* sender) {
  QObject::connect(sender, &QObject::objectNameChanged, qi::asyncslot([](const QString&) {}));
}
