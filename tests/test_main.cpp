// The main of every test binary: GoogleTest first, then the
// QCoreApplication, then a watchdog that turns a hung test into a failure.
#include <gtest/gtest.h>

#include <QtCore/QCoreApplication>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <string>
#include <thread>

namespace {

// Each test gets this long (QILOOP_TEST_TIMEOUT seconds overrides it).
std::chrono::seconds test_budget() {
  const char* v = std::getenv("QILOOP_TEST_TIMEOUT");
  return std::chrono::seconds(v ? std::atoi(v) : 60);
}

class Watchdog : public testing::EmptyTestEventListener {
 public:
  Watchdog() : thread_([this] { watch(); }) {}
  ~Watchdog() override {
    {
      std::lock_guard lock(mu_);
      quit_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void OnTestStart(const testing::TestInfo& info) override {
    std::lock_guard lock(mu_);
    name_ = std::string(info.test_suite_name()) + "." + info.name();
    deadline_ = std::chrono::steady_clock::now() + test_budget();
    armed_ = true;
    cv_.notify_all();
  }
  void OnTestEnd(const testing::TestInfo&) override {
    std::lock_guard lock(mu_);
    armed_ = false;
  }

 private:
  void watch() {
    std::unique_lock lock(mu_);
    while (!quit_) {
      if (armed_ && std::chrono::steady_clock::now() >= deadline_) {
        std::fprintf(stderr, "\nWATCHDOG: test %s did not finish within %lld s; aborting\n", name_.c_str(),
                     static_cast<long long>(test_budget().count()));
        std::fflush(stderr);
        std::abort();
      }
      cv_.wait_for(lock, std::chrono::milliseconds(200));
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool quit_ = false;
  bool armed_ = false;
  std::string name_;
  std::chrono::steady_clock::time_point deadline_;
  std::thread thread_;
};

}  // namespace

int main(int argc, char** argv) {
  testing::InitGoogleTest(&argc, argv);
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  QCoreApplication app(argc, argv);
  auto* watchdog = new Watchdog;  // owned by gtest's listener list
  testing::UnitTest::GetInstance()->listeners().Append(watchdog);
  return RUN_ALL_TESTS();
}
