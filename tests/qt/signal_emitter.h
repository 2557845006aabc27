// A QObject with signals of 0 to 3 arguments, value and const-ref
// parameters, types with heap storage (QString, std::string, QVariant) and a
// private signal, for the awaitable-signal tests.
#pragma once

#include <QtCore/QObject>
#include <QtCore/QMetaMethod>
#include <QtCore/QString>
#include <QtCore/QVariant>

#include <string>

class Emitter : public QObject {
  Q_OBJECT
 public:
  using QObject::QObject;

  // Whether anything is connected to `sig` (QObject::isSignalConnected).
  template <class PMF>
  bool connected(PMF sig) const {
    return isSignalConnected(QMetaMethod::fromSignal(sig));
  }
  void emit_private(int v) { emit privateOne(v, QPrivateSignal()); }

 signals:
  void none();
  void one(int v);
  void text(const QString& s);
  void two(const QString& s, int n);
  void three(std::string s, const QVariant& v, double d);
  void privateOne(int v, QPrivateSignal);
};
