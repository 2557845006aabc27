// What qiloop logs through Qt's message handler (the default exception
// handler's reports, the shutdown warnings), captured while a LogCapture
// lives. One at a time: it replaces the process's handler and puts the
// previous one back when destroyed. Messages from any thread are kept.
#pragma once

#include <QtCore/QtGlobal>
#include <QtCore/QString>

#include <mutex>
#include <string>

namespace log_capture {

class LogCapture {
 public:
  LogCapture() : previous_(qInstallMessageHandler(&LogCapture::capture)) {
    std::lock_guard lock(mutex());
    current() = this;
  }
  ~LogCapture() {
    {
      std::lock_guard lock(mutex());
      current() = nullptr;
    }
    qInstallMessageHandler(previous_);
  }
  LogCapture(const LogCapture&) = delete;
  LogCapture& operator=(const LogCapture&) = delete;

  // Every message so far, each followed by "\n".
  std::string text() const {
    std::lock_guard lock(mutex());
    return text_;
  }
  bool has(const std::string& part) const { return text().find(part) != std::string::npos; }

 private:
  static std::mutex& mutex() {
    static std::mutex m;
    return m;
  }
  static LogCapture*& current() {
    static LogCapture* c = nullptr;
    return c;
  }
  static void capture(QtMsgType, const QMessageLogContext&, const QString& msg) {
    std::lock_guard lock(mutex());
    if (current()) current()->text_ += msg.toStdString() + "\n";
  }

  std::string text_;
  QtMessageHandler previous_;
};

}  // namespace log_capture
