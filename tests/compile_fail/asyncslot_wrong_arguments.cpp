// The slot takes a parameter the signal does not provide.
#include <qiloop/qiloop.h>

void f(QObject* sender) {
  QObject::connect(sender, &QObject::objectNameChanged,
                   qi::asyncslot([](const QString&, int) -> qi::Coro<void> { co_return; }));
}
