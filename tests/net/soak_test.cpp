// The short echo soak (tests/net/soak.h): 1,000 qiloop stream clients and
// 20 blocking ones against a qiloop echo server in this process, four
// waves (two of warm-up), one stalled client throughout. Zero lost or reordered bytes, fds
// back after every wave, memory flat after the warm-up, nobody delayed by
// the stalled client. The 10,000-connection run is scripts/soak.sh
// (docs/reliability.md). Real time: the peers are real sockets.
#include "net/soak.h"
#include "net/transport_peers.h"

#include <qiloop/testing.h>

#include <gtest/gtest.h>

using namespace std::chrono_literals;

namespace {

// ASan makes every wave about ten times slower and its memory is not
// measured (soak.h): two waves of fewer rounds keep the test near 10 s.
constexpr bool kAsan = soak::kAddressSanitizer;
constexpr soak::Options kShort{.connections = 1000, .raw = 20, .waves = kAsan ? 2 : 4, .rounds = kAsan ? 3 : 5,
                               .burst = 4, .slowest_allowed = kAsan ? 30s : 15s};

// Both ends of every connection are in this process, and a few spare.
std::string fds_for_the_short_soak() {
  return soak::raise_fd_limit(static_cast<rlim_t>(2 * (kShort.connections + kShort.raw) + 256));
}

TRANSPORT_TEST_MODES_IF(Soak, AThousandConnectionsEchoEveryByteInFlatMemory, fds_for_the_short_soak()) {
  qi::testing::set_timeout(60s);  // a sanitizer build is several times slower; the soak bounds itself
  peers::FdLeakCheck leaks;
  soak::InProcessServer server;
  co_await server.start(1024);
  soak::Report report = co_await soak::run(kShort, server);
  co_await server.stop();
  EXPECT_TRUE(report.problems.empty()) << report.describe();
  QILOOP_CO_ASSERT(ASSERT_EQ(report.waves.size(), static_cast<std::size_t>(kShort.waves)));
  for (const soak::WaveFigures& w : report.waves) {
    EXPECT_EQ(w.clients, kShort.connections + kShort.raw);
    EXPECT_GT(w.bytes, 0);
  }
  EXPECT_GT(report.stalled_sent, 0) << "the stalled client sent before the server held it off";
  std::printf("%s", report.describe().c_str());
}

}  // namespace
