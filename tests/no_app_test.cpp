// Without a QCoreApplication the loop cannot run; the error says so.
#include <qiloop/qiloop.h>

#include <gtest/gtest.h>

#include <string>

TEST(NoApplication, RunForeverThrowsNamingTheFix) {
  QiEventLoop loop;
  loop.call_soon([] {});  // scheduling works before any application exists
  try {
    loop.run_forever();
    FAIL() << "run_forever without a QCoreApplication must throw";
  } catch (const qi::RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("QCoreApplication app(argc, argv)"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(loop.is_running());
}

TEST(NoApplication, QiRunnerThrowsNamingTheFix) {
  try {
    QiRunner runner;
    FAIL() << "QiRunner without a QCoreApplication must throw";
  } catch (const qi::RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("QCoreApplication app(argc, argv)"), std::string::npos) << e.what();
  }
}

TEST(NoApplication, FuturesAndHandlesWorkBeforeAnApplicationExists) {
  QiEventLoop loop;
  auto f = loop.create_future<int>();
  f.set_result(3);
  EXPECT_EQ(f.result(), 3);
  qi::Handle h = loop.call_later(1.0, [] {});
  h.cancel();
  EXPECT_TRUE(h.cancelled());
  loop.close();
}
