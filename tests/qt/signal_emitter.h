// A QObject with signals of 0 to 3 arguments, value and const-ref
// parameters, types with heap storage (QString, std::string, QVariant) and a
// private signal, for the awaitable-signal tests.
#pragma once

#include <QtCore/QObject>
#include <QtCore/QMetaMethod>
#include <QtCore/QString>
#include <QtCore/QVariant>

#include <qiloop/qt/detail/signal.h>  // QILOOP_DETAIL_TSAN

#include <stdexcept>
#include <string>

// Under TSan, tests that disconnect while another thread keeps emitting stop
// short: Qt then frees its connection records on the emitting thread,
// synchronised by Qt's own atomics, which TSan cannot see (Qt is not built
// with it) — it would report Qt, not qiloop. They run in the other presets
// (ASan among them); TSan checks the hubs through the other thread tests.
inline constexpr bool kQtRacesInvisibleToTsan = QILOOP_DETAIL_TSAN;

// A signal argument whose copy throws while `fail_copies` is set: what a
// waiter's copy of the arguments inside emit may meet.
struct CopyThrows {
  static inline bool fail_copies = false;
  int v = 0;
  CopyThrows() = default;
  explicit CopyThrows(int x) : v(x) {}
  CopyThrows(const CopyThrows& o) : v(o.v) {
    if (fail_copies) throw std::runtime_error("CopyThrows: copy failed");
  }
  CopyThrows& operator=(const CopyThrows&) = default;
};

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
  void copyThrows(const CopyThrows& c);
};
