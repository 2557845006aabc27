// A Qt plugin that is not qiloop's: a host asking it for QiLoopInterface
// gets qi::load_loop_plugin()'s message.
#include <QtCore/QObject>
#include <QtCore/QtPlugin>

class OtherInterface {
 public:
  virtual ~OtherInterface() = default;
};
Q_DECLARE_INTERFACE(OtherInterface, "org.example.OtherInterface/1.0")

class OtherPlugin : public QObject, public OtherInterface {
  Q_OBJECT
  Q_PLUGIN_METADATA(IID "org.example.OtherInterface/1.0")
  Q_INTERFACES(OtherInterface)
};

#include "other_plugin.moc"
