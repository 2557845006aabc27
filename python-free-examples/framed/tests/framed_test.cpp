// The framing library (framed.h): frames split at any byte, 0-length frames,
// the maximum size on both sides, truncated streams, cancellation between
// the prefix and the payload, and a Connection's closing on protocol errors.
// Streams fed by hand run on virtual time; socket pairs on real time.
#include "framed.h"

#include <qiloop/testing.h>

#include <QtCore/QtEndian>

#include <sys/socket.h>

#include <array>
#include <string>
#include <utility>
#include <vector>

using namespace std::chrono_literals;

namespace {

QByteArray prefix(std::uint32_t size) {
  std::array<char, 4> p;
  qToLittleEndian(size, p.data());
  return QByteArray(p.data(), 4);
}

QByteArray encode(const QByteArray& payload) { return prefix(static_cast<std::uint32_t>(payload.size())) + payload; }

QByteArray pattern(qsizetype n) {
  QByteArray b(n, Qt::Uninitialized);
  for (qsizetype i = 0; i < n; ++i) b[i] = static_cast<char>((i * 131 + 7) % 251);
  return b;
}

const std::vector<QByteArray>& sample_frames() {
  static const std::vector<QByteArray> frames = {QByteArray("hello"), QByteArray(), QByteArray("x"), pattern(300),
                                                 QByteArray(), QByteArray("\0\1\2", 3)};
  return frames;
}

QByteArray sample_stream() {
  QByteArray all;
  for (const QByteArray& f : sample_frames()) all += encode(f);
  return all;
}

// Feeds data to reader in pieces cut at the given offsets, yielding to the
// loop between pieces so that the reading side waits mid-frame, then EOF.
qi::Coro<void> feed_in_pieces(qi::StreamReader reader, QByteArray data, std::vector<qsizetype> cuts) {
  qsizetype from = 0;
  cuts.push_back(data.size());
  for (qsizetype cut : cuts) {
    reader.feed_data(QByteArrayView(data).sliced(from, cut - from));
    from = cut;
    co_await qi::sleep(1ms);
  }
  reader.feed_eof();
}

qi::Coro<std::vector<QByteArray>> read_all(framed::FrameReader& frames) {
  std::vector<QByteArray> got;
  while (std::optional<QByteArray> f = co_await frames.next()) got.push_back(std::move(*f));
  co_return got;
}

qi::Coro<std::vector<QByteArray>> read_cut(std::vector<qsizetype> cuts) {
  qi::StreamReader reader;
  framed::FrameReader frames(reader);
  auto feeder = qi::create_task(feed_in_pieces(reader, sample_stream(), std::move(cuts)));
  std::vector<QByteArray> got = co_await read_all(frames);
  co_await feeder;
  co_return got;
}

// A connected pair of streams over a Unix socket pair.
struct Ends {
  qi::StreamReader reader;
  qi::StreamWriter writer;
};
qi::Coro<std::pair<Ends, Ends>> socket_pair() {
  int sv[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) throw qi::OSError(errno, "socketpair");
  auto [ra, wa] = co_await qi::open_connection(sv[0]);
  auto [rb, wb] = co_await qi::open_connection(sv[1]);
  co_return std::pair<Ends, Ends>{Ends{ra, wa}, Ends{rb, wb}};
}

}  // namespace

// --- Reading: chunk boundaries -----------------------------------------------

QILOOP_TEST_MODES_VT(Framed, EveryFrameSurvivesBeingSplitAtAnyByte) {
  const qsizetype total = sample_stream().size();
  for (qsizetype cut = 0; cut <= total; ++cut) {
    std::vector<QByteArray> got = co_await read_cut(std::vector<qsizetype>(1, cut));
    QILOOP_CO_ASSERT(ASSERT_EQ(got, sample_frames()) << "split at byte " << cut);
  }
}

QILOOP_TEST_MODES_VT(Framed, FramesArriveByteByByteOrInOddChunks) {
  const qsizetype total = sample_stream().size();
  const std::vector<qsizetype> steps = {1, 2, 3, 5, 7, 64};  // (a braced list in a coroutine: g++ 12 bug)
  for (qsizetype step : steps) {
    std::vector<qsizetype> cuts;
    for (qsizetype at = step; at < total; at += step) cuts.push_back(at);
    std::vector<QByteArray> got = co_await read_cut(cuts);
    QILOOP_CO_ASSERT(ASSERT_EQ(got, sample_frames()) << "pieces of " << step << " bytes");
  }
}

QILOOP_TEST_MODES_VT(Framed, ManyFramesInOneChunkAreReadOneByOne) {
  std::vector<QByteArray> got = co_await read_cut(std::vector<qsizetype>());
  EXPECT_EQ(got, sample_frames());
}

QILOOP_TEST_MODES_VT(Framed, AnEmptyFrameIsAFrameNotTheEnd) {
  qi::StreamReader reader;
  framed::FrameReader frames(reader);
  reader.feed_data(prefix(0));
  reader.feed_eof();
  std::optional<QByteArray> first = co_await frames.next();
  QILOOP_CO_ASSERT(ASSERT_TRUE(first.has_value()));
  EXPECT_TRUE(first->isEmpty());
  EXPECT_EQ(co_await frames.next(), std::nullopt);
}

// --- The maximum size ----------------------------------------------------------

QILOOP_TEST_MODES_VT(Framed, AFrameOfExactlyTheMaximumIsRead) {
  qi::StreamReader reader;
  framed::FrameReader frames(reader, 16);
  reader.feed_data(encode(pattern(16)));
  EXPECT_EQ(co_await frames.read(), pattern(16));
}

QILOOP_TEST_MODES_VT(Framed, AnOversizePrefixThrowsWithoutWaitingForItsPayload) {
  qi::StreamReader reader;
  framed::FrameReader frames(reader, 16);
  reader.feed_data(prefix(17));  // no payload, no EOF: a read that waited would time out
  try {
    co_await qi::wait_for(frames.read(), 1s);
    ADD_FAILURE() << "no error";
  } catch (const framed::FrameTooLargeError& e) {
    EXPECT_EQ(e.size(), 17u);
    EXPECT_EQ(e.max_frame(), 16u);
    EXPECT_NE(std::string(e.what()).find("over the maximum of 16 bytes"), std::string::npos) << e.what();
  }
}

QILOOP_TEST_MODES_VT(Framed, AHostilePrefixIsRefusedByTheDefaultMaximum) {
  qi::StreamReader reader;
  framed::FrameReader frames(reader);
  reader.feed_data(prefix(0xFFFFFFFFu));
  try {
    co_await qi::wait_for(frames.next(), 1s);
    ADD_FAILURE() << "no error";
  } catch (const framed::FrameTooLargeError& e) {
    EXPECT_EQ(e.size(), 0xFFFFFFFFu);
    EXPECT_EQ(e.max_frame(), framed::kDefaultMaxFrame);
  }
}

QILOOP_TEST_MODES_VT(Framed, AMaximumBeyondWhatThePrefixCanSayIsRefused) {
  EXPECT_THROW((void)framed::FrameReader(qi::StreamReader(), framed::kLargestFrame + 1), qi::ValueError);
  framed::FrameReader largest(qi::StreamReader(), framed::kLargestFrame);
  EXPECT_EQ(largest.max_frame(), framed::kLargestFrame);
  co_return;
}

// --- The end of the stream ----------------------------------------------------

QILOOP_TEST_MODES_VT(Framed, EndBetweenFramesIsTheEndForNextAndAnErrorForRead) {
  qi::StreamReader reader;
  framed::FrameReader frames(reader);
  reader.feed_data(encode("last"));
  reader.feed_eof();
  EXPECT_EQ(co_await frames.next(), QByteArray("last"));
  EXPECT_EQ(co_await frames.next(), std::nullopt);
  try {
    co_await frames.read();
    ADD_FAILURE() << "no error";
  } catch (const qi::IncompleteReadError& e) {
    EXPECT_TRUE(e.partial().isEmpty());
    EXPECT_EQ(e.expected(), 4);
  }
}

QILOOP_TEST_MODES_VT(Framed, EndInsideThePrefixIsAnIncompleteRead) {
  qi::StreamReader reader;
  framed::FrameReader frames(reader);
  reader.feed_data(prefix(5).first(2));
  reader.feed_eof();
  try {
    co_await frames.next();
    ADD_FAILURE() << "no error";
  } catch (const qi::IncompleteReadError& e) {
    EXPECT_EQ(e.partial(), prefix(5).first(2));
    EXPECT_EQ(e.expected(), 4);
  }
}

QILOOP_TEST_MODES_VT(Framed, EndInsideThePayloadIsAnIncompleteReadOfTheWholeFrame) {
  qi::StreamReader reader;
  framed::FrameReader frames(reader);
  reader.feed_data(prefix(10) + "abc");
  reader.feed_eof();
  try {
    co_await frames.next();
    ADD_FAILURE() << "no error";
  } catch (const qi::IncompleteReadError& e) {
    EXPECT_EQ(e.partial(), prefix(10) + "abc");
    EXPECT_EQ(e.expected(), 14);
    EXPECT_STREQ(e.what(), "7 bytes read on a total of 14 expected bytes");
  }
}

// --- Cancellation -------------------------------------------------------------

QILOOP_TEST_MODES_VT(Framed, AReadCancelledAfterThePrefixKeepsIt) {
  qi::StreamReader reader;
  framed::FrameReader frames(reader);
  reader.feed_data(prefix(5) + "he");  // the prefix is taken; the payload waits
  auto read = qi::create_task(frames.read());
  co_await qi::sleep(1ms);
  read.cancel();
  EXPECT_THROW(co_await read, qi::CancelledError);
  reader.feed_data("llo");
  reader.feed_data(encode("next"));
  EXPECT_EQ(co_await frames.read(), QByteArray("hello"));
  EXPECT_EQ(co_await frames.read(), QByteArray("next"));
}

QILOOP_TEST_MODES_VT(Framed, AReadCancelledInsideThePrefixLosesNothing) {
  qi::StreamReader reader;
  framed::FrameReader frames(reader);
  reader.feed_data(prefix(2).first(3));
  auto read = qi::create_task(frames.next());
  co_await qi::sleep(1ms);
  read.cancel();
  EXPECT_THROW(co_await read, qi::CancelledError);
  reader.feed_data(prefix(2).sliced(3) + "ok");
  EXPECT_EQ(co_await frames.next(), QByteArray("ok"));
}

// --- Writing ------------------------------------------------------------------

QILOOP_TEST_MODES(Framed, WriteFramePutsTheLittleEndianPrefixFirst) {
  auto [a, b] = co_await socket_pair();
  framed::write_frame(a.writer, "hello");
  framed::write_frame(a.writer, "");
  framed::write_frame(a.writer, QByteArray(258, 'z'));
  a.writer.close();
  const QByteArray expected = QByteArray("\x05\0\0\0hello\0\0\0\0\x02\x01\0\0", 17) + QByteArray(258, 'z');
  EXPECT_EQ(co_await b.reader.read(), expected);
}

QILOOP_TEST_MODES(Framed, WritingAnOversizeFrameThrowsAndWritesNothing) {
  auto [a, b] = co_await socket_pair();
  try {
    framed::write_frame(a.writer, pattern(17), 16);
    ADD_FAILURE() << "no error";
  } catch (const framed::FrameTooLargeError& e) {
    EXPECT_EQ(e.size(), 17u);
  }
  EXPECT_THROW(framed::write_frame(a.writer, "x", framed::kLargestFrame + 1), qi::ValueError);
  framed::write_frame(a.writer, pattern(16), 16);
  a.writer.close();
  EXPECT_EQ(co_await b.reader.read(), encode(pattern(16)));
}

QILOOP_TEST_MODES(Framed, LargeFramesCrossASocketBothWays) {
  // Bigger than the stream's limit and the socket's buffers: the reader
  // must keep reading while the writer drains.
  auto [a, b] = co_await socket_pair();
  const std::size_t max = 4 << 20;
  framed::Connection left(a.reader, a.writer, max);
  framed::Connection right(b.reader, b.writer, max);
  auto echo = [](framed::Connection& c) -> qi::Coro<void> {
    while (std::optional<QByteArray> f = co_await c.receive()) co_await c.send(*f);
    c.close();
  };
  auto echoing = qi::create_task(echo(right));
  const std::vector<qsizetype> sizes = {qsizetype{3} << 20, 0, qsizetype{max}};
  for (qsizetype size : sizes) {
    const QByteArray big = pattern(size);
    co_await left.send(big);
    std::optional<QByteArray> back = co_await left.receive();
    QILOOP_CO_ASSERT(ASSERT_TRUE(back.has_value()));
    EXPECT_EQ(back->size(), size);
    EXPECT_TRUE(*back == big);
  }
  left.close();
  co_await echoing;
  co_await left.wait_closed();
}

// --- Connection ---------------------------------------------------------------

QILOOP_TEST_MODES(Framed, AConnectionClosesOnAnOversizePrefix) {
  auto [a, b] = co_await socket_pair();
  framed::Connection conn(b.reader, b.writer, 16);
  a.writer.write(prefix(1000));  // and no payload: the peer must not wait for it
  EXPECT_THROW(co_await conn.receive(), framed::FrameTooLargeError);
  EXPECT_TRUE(conn.writer().is_closing());
  EXPECT_EQ(co_await a.reader.read(), QByteArray());  // the other end sees EOF
  co_await conn.wait_closed();
}

QILOOP_TEST_MODES(Framed, AConnectionClosesOnATruncatedFrame) {
  auto [a, b] = co_await socket_pair();
  framed::Connection conn(b.reader, b.writer);
  a.writer.write(prefix(10) + "abc");
  a.writer.write_eof();
  try {
    co_await conn.receive();
    ADD_FAILURE() << "no error";
  } catch (const qi::IncompleteReadError& e) {
    EXPECT_EQ(e.expected(), 14);
  }
  EXPECT_TRUE(conn.writer().is_closing());
  EXPECT_EQ(co_await a.reader.read(), QByteArray());
  co_await conn.wait_closed();
}

QILOOP_TEST_MODES(Framed, OpenTalksToAFramedServer) {
  auto on_client = [](qi::StreamReader r, qi::StreamWriter w) -> qi::Coro<void> {
    framed::Connection c(std::move(r), std::move(w));
    while (std::optional<QByteArray> f = co_await c.receive()) co_await c.send("re: " + *f);
  };
  qi::Server server = co_await qi::start_server(std::move(on_client), "127.0.0.1", 0);
  const uint16_t port = server.sockets().at(0).port();
  framed::Connection conn = co_await framed::Connection::open("127.0.0.1", port);
  EXPECT_EQ(conn.peer(), "127.0.0.1:" + std::to_string(port));
  co_await conn.send("hello");
  EXPECT_EQ(co_await conn.receive(), QByteArray("re: hello"));
  conn.close();
  co_await conn.wait_closed();
  server.close();
  co_await server.wait_closed();
}

QILOOP_TEST_MODES(Framed, OpenToAClosedPortThrowsTheConnectError) {
  auto on_client = [](qi::StreamReader, qi::StreamWriter) -> qi::Coro<void> { co_return; };
  qi::Server server = co_await qi::start_server(std::move(on_client), "127.0.0.1", 0);
  const uint16_t port = server.sockets().at(0).port();
  server.close();
  co_await server.wait_closed();
  EXPECT_THROW(co_await framed::Connection::open("127.0.0.1", port), qi::ConnectionRefusedError);
}
