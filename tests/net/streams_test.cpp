// qi::StreamReader / qi::StreamWriter (asyncio's streams): the reader fed
// by hand on virtual time, then connections against peers that are not
// qiloop — blocking POSIX sockets on a std::thread, and a Python 3 asyncio
// server speaking a 4-byte little-endian length-prefixed protocol. Loopback
// only; every peer socket times out and the kit's watchdog ends a stuck body.
#include "error_text.h"
#include "net/stream_cores.h"
#include "net/null_transport.h"
#include "net/transport_peers.h"

#include <qiloop/net/streams.h>
#include <qiloop/structured/timeout.h>
#include <qiloop/sync/event.h>
#include <qiloop/testing.h>

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <limits>

using namespace std::chrono_literals;
using namespace peers;

namespace {

// The exception `c` threw, or nullopt (a failure) when it threw none.
template <class E, class T>
qi::Coro<std::optional<E>> caught(qi::Coro<T> c) {
  try {
    co_await std::move(c);
  } catch (const E& e) {
    co_return e;
  }
  ADD_FAILURE() << "no " << typeid(E).name() << " was thrown";
  co_return std::nullopt;
}

// Awaits a task (its exception, rethrown).
template <class T>
qi::Coro<void> finish(qi::Task<T> t) {
  co_await t;
}

qi::StreamReader fed(QByteArrayView data, bool eof = false, std::size_t limit = qi::kDefaultStreamLimit) {
  qi::StreamReader r(limit);
  r.feed_data(data);
  if (eof) r.feed_eof();
  return r;
}

// --- The reader, fed by hand ---------------------------------------------------------------

QILOOP_TEST_MODES_VT(StreamReader, ReadGivesWhatIsBufferedUpToN) {
  qi::StreamReader r = fed("hello world");
  EXPECT_EQ(co_await r.read(0), "") << "read(0) is empty at once";
  EXPECT_EQ(co_await r.read(5), "hello");
  EXPECT_EQ(co_await r.read(100), " world") << "up to n: what is there";
  EXPECT_EQ(r.buffered(), 0u);
  r.feed_data("abc");
  r.feed_data("def");
  r.feed_eof();
  EXPECT_FALSE(r.at_eof()) << "data is still buffered";
  EXPECT_EQ(co_await r.read(), "abcdef") << "read(-1): everything until EOF";
  EXPECT_TRUE(r.at_eof());
  EXPECT_EQ(co_await r.read(10), "") << "empty at EOF";
  EXPECT_EQ(co_await r.read(), "");
}

QILOOP_TEST_MODES_VT(StreamReader, ReadWaitsForData) {
  auto& loop = qi::get_running_loop();
  qi::StreamReader r;
  auto feed = [r]() mutable { r.feed_data("late"); };
  loop.call_later(1s, std::move(feed));
  auto t0 = loop.time();
  EXPECT_EQ(co_await r.read(100), "late");
  EXPECT_EQ(loop.time() - t0, 1s);
  auto feed_more = [r]() mutable {
    r.feed_data("a");
    r.feed_data("b");
    r.feed_eof();
  };
  loop.call_later(1s, std::move(feed_more));
  EXPECT_EQ(co_await r.read(), "ab") << "read(-1) waits for EOF";
}

QILOOP_TEST_MODES_VT(StreamReader, ReadexactlyWaitsForAllOfIt) {
  auto& loop = qi::get_running_loop();
  qi::StreamReader r = fed("12");
  auto feed = [r]() mutable { r.feed_data("345678"); };
  loop.call_later(1s, std::move(feed));
  EXPECT_EQ(co_await r.readexactly(5), "12345");
  EXPECT_EQ(co_await r.readexactly(0), "");
  EXPECT_EQ(r.buffered(), 3u);
  try {
    (void)r.readexactly(-1);
    ADD_FAILURE() << "readexactly(-1) was accepted";
  } catch (const qi::ValueError& e) {
    EXPECT_STREQ(e.what(), "qi::StreamReader::readexactly: n is -1; it must be >= 0");
  }
}

QILOOP_TEST_MODES_VT(StreamReader, ReadexactlyAtEofCarriesThePartialData) {
  qi::StreamReader r = fed("abc", true);
  std::optional<qi::IncompleteReadError> e = co_await caught<qi::IncompleteReadError>(r.readexactly(10));
  QILOOP_CO_ASSERT(ASSERT_TRUE(e));
  EXPECT_EQ(e->partial(), "abc");
  EXPECT_EQ(e->expected(), 10);
  EXPECT_STREQ(e->what(), "3 bytes read on a total of 10 expected bytes");
  const qi::EOFError& as_eof = *e;  // asyncio's is an EOFError
  (void)as_eof;
  EXPECT_TRUE(r.at_eof()) << "the partial data was taken";
  std::optional<qi::IncompleteReadError> empty = co_await caught<qi::IncompleteReadError>(r.readexactly(1));
  QILOOP_CO_ASSERT(ASSERT_TRUE(empty));
  EXPECT_EQ(empty->partial(), "");
}

QILOOP_TEST_MODES_VT(StreamReader, ReadlineEndsWithNewlineAndGivesThePartialLastLine) {
  qi::StreamReader r = fed("one\ntwo\nthr");
  EXPECT_EQ(co_await r.readline(), "one\n");
  EXPECT_EQ(co_await r.readline(), "two\n");
  r.feed_data("ee");
  r.feed_eof();
  EXPECT_EQ(co_await r.readline(), "three") << "the partial last line at EOF";
  EXPECT_EQ(co_await r.readline(), "") << "then empty";
}

QILOOP_TEST_MODES_VT(StreamReader, ReadlineOverTheLimitDiscardsTheLineAndThrowsValueError) {
  qi::StreamReader r = fed("0123456789\nnext\n", false, 8);
  std::optional<qi::ValueError> e = co_await caught<qi::ValueError>(r.readline());
  QILOOP_CO_ASSERT(ASSERT_TRUE(e));
  EXPECT_STREQ(e->what(), "Separator is found, but chunk is longer than limit (8 bytes)");
  EXPECT_EQ(co_await r.readline(), "next\n") << "the long line went with its newline";
  // No newline within the limit: everything buffered goes.
  r.feed_data("0123456789abcdef");
  std::optional<qi::ValueError> e2 = co_await caught<qi::ValueError>(r.readline());
  QILOOP_CO_ASSERT(ASSERT_TRUE(e2));
  EXPECT_STREQ(e2->what(), "Separator is not found, and chunk exceed the limit (8 bytes)");
  EXPECT_EQ(r.buffered(), 0u);
  r.feed_data("ok\n");
  EXPECT_EQ(co_await r.readline(), "ok\n");
}

QILOOP_TEST_MODES_VT(StreamReader, ReaduntilOneSeparator) {
  auto& loop = qi::get_running_loop();
  qi::StreamReader r = fed("HEAD\r\n\r");
  auto feed = [r]() mutable { r.feed_data("\nbody"); };
  loop.call_later(1s, std::move(feed));
  EXPECT_EQ(co_await r.readuntil("\r\n\r\n"), "HEAD\r\n\r\n") << "a separator split across arrivals";
  EXPECT_EQ(r.buffered(), 4u);
  auto refusal = [](auto call) { return error_text::what_of<qi::ValueError>([&] { (void)call(); }); };
  const std::string empty = "a separator is empty; separators must be at least one byte";
  EXPECT_NE(refusal([&] { return r.readuntil(""); }).find(empty), std::string::npos);
  EXPECT_NE(refusal([&] { return r.readuntil("x", ""); }).find(empty), std::string::npos);
  EXPECT_NE(refusal([&] { return r.readuntil(std::span<const QByteArrayView>()); })
                .find("the separator list is empty; give at least one separator"),
            std::string::npos);
}

QILOOP_TEST_MODES_VT(StreamReader, ReaduntilSeveralSeparatorsTheShortestChunkWins) {
  qi::StreamReader r = fed("ab\ncd\r\nef;");
  EXPECT_EQ(co_await r.readuntil("\r\n", "\n"), "ab\n");
  EXPECT_EQ(co_await r.readuntil("\r\n", ";", "\n"), "cd\r\n") << "the first match to end";
  EXPECT_EQ(co_await r.readuntil("\r\n", ";"), "ef;");
  // A tie (both end at the same byte): the shorter separator is the match,
  // which decides the limit check (asyncio 3.13).
  qi::StreamReader tie = fed("xab", false, 1);
  std::optional<qi::LimitOverrunError> e = co_await caught<qi::LimitOverrunError>(tie.readuntil("ab", "b"));
  QILOOP_CO_ASSERT(ASSERT_TRUE(e));
  EXPECT_EQ(e->consumed(), 2) << "\"b\" at 2 matched, not \"ab\" at 1";
  EXPECT_EQ(co_await tie.readuntil("ab"), "xab") << "\"ab\" starts within the limit";
}

// The search takes a separator's first byte as a candidate and, after eight
// false ones in a scan, hands the rest to memmem: a match just before,
// at and after that switch, and one split across arrivals after it.
QILOOP_TEST_MODES_VT(StreamReader, ReaduntilFindsTheSeparatorAfterManyFalseStarts) {
  for (int false_starts : {0, 1, 7, 8, 9, 40, 1000}) {
    const QByteArray crs(false_starts, '\r');
    qi::StreamReader r = fed(crs + "\r\nnext");
    EXPECT_EQ(co_await r.readuntil("\r\n"), crs + "\r\n") << false_starts << " CRs before CRLF";
    EXPECT_EQ(r.buffered(), 4u);
    const QByteArray abs = QByteArray("ab").repeated(false_starts);
    qi::StreamReader three = fed(abs + "a" + abs + "abc!");
    EXPECT_EQ(co_await three.readuntil("abc"), abs + "a" + abs + "abc") << false_starts << " false \"ab\" starts";
  }
  auto& loop = qi::get_running_loop();
  qi::StreamReader split = fed(QByteArray(40, '\r'));
  auto feed = [split]() mutable { split.feed_data("\n"); };
  loop.call_later(1s, std::move(feed));
  EXPECT_EQ(co_await split.readuntil("\r\n"), QByteArray(40, '\r') + "\n") << "completed by the next arrival";
  qi::StreamReader none = fed(QByteArray(100, '\r') + "x", true);
  std::optional<qi::IncompleteReadError> e = co_await caught<qi::IncompleteReadError>(none.readuntil("\r\n"));
  QILOOP_CO_ASSERT(ASSERT_TRUE(e));
  EXPECT_EQ(e->partial().size(), 101) << "no separator in 100 false starts";
}

// Separators whose first byte repeats (the match starts inside a run of
// it), one that overlaps itself, and NUL and 0xFF bytes, with more false
// starts than the search's switch to memmem; each result and what stays
// are asyncio 3.13's for the same bytes.
QILOOP_TEST_MODES_VT(StreamReader, ReaduntilSeparatorsWithRepeatedHeadsNulAndFf) {
  qi::StreamReader r = fed("\r\r\r\n!");
  EXPECT_EQ(co_await r.readuntil("\r\r\n"), "\r\r\r\n") << "the match starts at the second CR";
  EXPECT_EQ(co_await r.read(10), "!");
  qi::StreamReader aab = fed("aaab!");
  EXPECT_EQ(co_await aab.readuntil("aab"), "aaab");
  qi::StreamReader abab = fed("abababab!");
  EXPECT_EQ(co_await abab.readuntil("abab"), "abab") << "the first occurrence, not an overlapping later one";
  EXPECT_EQ(abab.buffered(), 5u);
  EXPECT_EQ(co_await abab.readuntil("abab"), "abab");
  const QByteArray nul_ff("\0\xff", 2);
  qi::StreamReader nul = fed(QByteArray(20, '\0') + "\xff!");
  EXPECT_EQ(co_await nul.readuntil(nul_ff), QByteArray(20, '\0') + "\xff") << "20 NULs: 19 false starts";
  EXPECT_EQ(nul.buffered(), 1u);
  qi::StreamReader ff = fed(QByteArray(14, '\xff') + "\n!");
  EXPECT_EQ(co_await ff.readuntil("\xff\xff\n", QByteArrayView(nul_ff.constData(), 1)), QByteArray(14, '\xff') + "\n")
      << "a list with a NUL separator that does not occur";
  EXPECT_EQ(ff.buffered(), 1u);
  // EOF after a partial separator longer than the data.
  qi::StreamReader partial = fed(QByteArray(200, 'a'), true);
  std::optional<qi::IncompleteReadError> e =
      co_await caught<qi::IncompleteReadError>(partial.readuntil(QByteArray(119, 'a') + "b"));
  QILOOP_CO_ASSERT(ASSERT_TRUE(e));
  EXPECT_EQ(e->partial(), QByteArray(200, 'a'));
  EXPECT_TRUE(partial.at_eof());
}

// Feeds `first` to r in a second, then `second` a second later (two
// arrivals, each scanned on its own).
void feed_in_two_arrivals(qi::StreamReader r, const char* first, const char* second) {
  auto feed = [r, first, second]() mutable {
    r.feed_data(first);
    auto rest = [r, second]() mutable { r.feed_data(second); };
    qi::get_running_loop().call_later(1s, std::move(rest));
  };
  qi::get_running_loop().call_later(1s, std::move(feed));
}

// asyncio's limit counts the bytes before the last max_len - 1 of the
// buffer (those may start a separator): consumed() is that count when no
// separator is found, even when the separator's head has arrived and the
// whole of it would start within the limit.
QILOOP_TEST_MODES_VT(StreamReader, ReaduntilLimitOverrunCountsLikeAsyncio) {
  qi::StreamReader r = fed("0123456789", false, 4);
  std::optional<qi::LimitOverrunError> e = co_await caught<qi::LimitOverrunError>(r.readuntil("XYZ"));
  QILOOP_CO_ASSERT(ASSERT_TRUE(e));
  EXPECT_EQ(e->consumed(), 8) << "10 bytes, the last 2 may start \"XYZ\"";
  std::optional<qi::LimitOverrunError> e2 = co_await caught<qi::LimitOverrunError>(r.readuntil("!", "XYZ"));
  QILOOP_CO_ASSERT(ASSERT_TRUE(e2));
  EXPECT_EQ(e2->consumed(), 8) << "the longest separator sets what is held back";
  EXPECT_EQ(r.buffered(), 10u);
  // A match starting at the limit is returned; one byte later it is not.
  qi::StreamReader at = fed("0123!", false, 4);
  EXPECT_EQ(co_await at.readuntil("!"), "0123!");
  qi::StreamReader past = fed("01234!", false, 4);
  std::optional<qi::LimitOverrunError> e3 = co_await caught<qi::LimitOverrunError>(past.readuntil("!"));
  QILOOP_CO_ASSERT(ASSERT_TRUE(e3));
  EXPECT_EQ(e3->consumed(), 5);
  EXPECT_EQ(past.buffered(), 6u);
  // "XYZ" would start at 4, the limit, but "45X" ends the wait first: 7
  // bytes, 5 of them before the held-back 2.
  qi::StreamReader head = fed("0123", false, 4);
  feed_in_two_arrivals(head, "45X", "YZ");
  std::optional<qi::LimitOverrunError> e4 = co_await caught<qi::LimitOverrunError>(head.readuntil("XYZ", "!"));
  QILOOP_CO_ASSERT(ASSERT_TRUE(e4));
  EXPECT_EQ(e4->consumed(), 5);
  EXPECT_EQ(co_await head.readexactly(7), "012345X");
  // The same separator arriving two bytes earlier is within the limit.
  qi::StreamReader early = fed("01", false, 4);
  feed_in_two_arrivals(early, "23X", "YZ");
  EXPECT_EQ(co_await early.readuntil("XYZ", "!"), "0123XYZ");
}

// Several separators are searched in windows that grow from the position
// the scan starts at: a match ending anywhere — before, on or across a
// window's end, with a separator longer than half the first window or not —
// is the one asyncio returns. The filler has a '\n' every other byte, so
// the search for "\n\n" meets false starts everywhere.
QILOOP_TEST_MODES_VT(StreamReader, ReaduntilSeveralSeparatorsMatchAtAnyDistance) {
  const QByteArray filler = QByteArray("\nx").repeated(2300);
  const QByteArray equals(700, '=');
  for (qsizetype n = 0; n <= 4400; ++n) {
    // "\r\n\r\n" after a '\n', "\n\n" after an 'x' (where it cannot start
    // earlier).
    const QByteArray sep = n % 2 == 1 ? "\r\n\r\n" : "\n\n";
    const QByteArray chunk = filler.first(n) + sep;
    // EOF fed: a match missed is an IncompleteReadError, not a wait.
    qi::StreamReader two = fed(chunk + "!", true);
    QByteArray got = co_await two.readuntil("\r\n\r\n", "\n\n");
    if (got != chunk) {
      ADD_FAILURE() << "two separators, the match ending at " << chunk.size() << ": " << got.size() << " bytes";
      break;
    }
    qi::StreamReader three = fed(chunk + "!", true);
    got = co_await three.readuntil(QByteArrayView(equals), "\r\n\r\n", "\n\n");
    if (got != chunk || three.buffered() != 1) {
      ADD_FAILURE() << "with a 700-byte separator, the match ending at " << chunk.size() << ": " << got.size()
                    << " bytes, " << three.buffered() << " left";
      break;
    }
  }
}

// Reads n pipelined "\r\n\r\n" with readuntil("\r\n\r\n", "\n\n") from a
// buffer holding them and `tail` more; how long the n reads took.
qi::Coro<std::chrono::steady_clock::duration> time_pipelined(int n, int tail) {
  qi::StreamReader r(1 << 24);
  r.feed_data(QByteArray("\r\n\r\n").repeated(n + tail));
  const auto t0 = std::chrono::steady_clock::now();
  int right = 0;
  for (int i = 0; i < n; ++i) {
    const QByteArray chunk = co_await r.readuntil("\r\n\r\n", "\n\n");
    right += chunk == "\r\n\r\n";
  }
  const auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(right, n);
  EXPECT_EQ(r.buffered(), 4u * static_cast<unsigned>(tail));
  co_return took;
}

// A separator of a list that does not occur ("\n\n" among a peer's
// pipelined "\r\n\r\n") must not be searched for through the whole buffer on
// every call: that made each read cost what follows it, 192 KiB of requests
// 4.5 s (asyncio's search does the same, 8.4 s). 1,000 reads with 1 MiB
// behind them now take about as long as with nothing behind (each best of
// three).
QILOOP_TEST_MODES(StreamReader, ReaduntilSeveralSeparatorsCostTheChunkNotWhatFollows) {
  auto alone = std::chrono::steady_clock::duration::max();
  auto before_a_mebibyte = alone;
  for (int i = 0; i < 3; ++i) {
    const auto a = co_await time_pipelined(1000, 0);
    const auto b = co_await time_pipelined(1000, 256 * 1024);
    alone = std::min(alone, a);
    before_a_mebibyte = std::min(before_a_mebibyte, b);
  }
  EXPECT_LT(before_a_mebibyte, 2 * alone + 100ms)
      << "1,000 reads alone: " << std::chrono::duration<double>(alone).count()
      << " s, before 1 MiB: " << std::chrono::duration<double>(before_a_mebibyte).count() << " s";
}

QILOOP_TEST_MODES_VT(StreamReader, ReaduntilPastTheLimitKeepsTheData) {
  qi::StreamReader r = fed("0123456789", false, 4);
  std::optional<qi::LimitOverrunError> e = co_await caught<qi::LimitOverrunError>(r.readuntil("!"));
  QILOOP_CO_ASSERT(ASSERT_TRUE(e));
  EXPECT_EQ(e->consumed(), 10);
  EXPECT_EQ(r.buffered(), 10u) << "the data stays, to be read again";
  r.feed_data("!");
  std::optional<qi::LimitOverrunError> found = co_await caught<qi::LimitOverrunError>(r.readuntil("!"));
  QILOOP_CO_ASSERT(ASSERT_TRUE(found));
  EXPECT_EQ(found->consumed(), 10) << "found, but starting past the limit";
  EXPECT_EQ(co_await r.readexactly(11), "0123456789!");
}

QILOOP_TEST_MODES_VT(StreamReader, ReaduntilAtEofIsAnIncompleteRead) {
  qi::StreamReader r = fed("abc\r", true);
  std::optional<qi::IncompleteReadError> e = co_await caught<qi::IncompleteReadError>(r.readuntil("\r\n"));
  QILOOP_CO_ASSERT(ASSERT_TRUE(e));
  EXPECT_EQ(e->partial(), "abc\r") << "with the partial separator";
  EXPECT_EQ(e->expected(), std::nullopt);
  EXPECT_TRUE(r.at_eof());
  // A separator completed by the last arrival is found even after EOF.
  qi::StreamReader done = fed("x\n", true);
  EXPECT_EQ(co_await done.readuntil("\n"), "x\n");
}

QILOOP_TEST_MODES_VT(StreamReader, NextLineIteratesUntilEof) {
  qi::StreamReader r = fed("a\nb\nc", true);
  std::vector<QByteArray> lines;
  while (std::optional<QByteArray> line = co_await r.next_line()) lines.push_back(*line);
  EXPECT_EQ(lines, (std::vector<QByteArray>{"a\n", "b\n", "c"}));
  EXPECT_EQ(co_await r.next_line(), std::nullopt);
}

QILOOP_TEST_MODES_VT(StreamReader, SetExceptionWakesTheReadAndSticks) {
  auto& loop = qi::get_running_loop();
  qi::StreamReader r = fed("kept");
  (void)co_await r.read(4);
  auto fail = [r]() mutable { r.set_exception(std::make_exception_ptr(qi::ConnectionResetError("reset by test"))); };
  loop.call_later(1s, std::move(fail));
  auto e = co_await caught<qi::ConnectionResetError>(r.readline());
  QILOOP_CO_ASSERT(ASSERT_TRUE(e));
  EXPECT_STREQ(e->what(), "reset by test");
  EXPECT_TRUE(holds<qi::ConnectionResetError>(r.exception()));
  r.feed_data("more");
  EXPECT_TRUE(co_await caught<qi::ConnectionResetError>(r.read(1))) << "every read throws it from now on";
  EXPECT_TRUE(co_await caught<qi::ConnectionResetError>(r.readexactly(1)));
  EXPECT_TRUE(co_await caught<qi::ConnectionResetError>(r.readuntil("x")));
}

QILOOP_TEST_MODES_VT(StreamReader, ASecondWaitingReaderIsRefused) {
  auto& loop = qi::get_running_loop();
  qi::StreamReader r;
  qi::Task<QByteArray> first = loop.create_task(r.read(10));
  co_await qi::sleep(1ms);
  std::optional<qi::RuntimeError> e = co_await caught<qi::RuntimeError>(r.readline());
  QILOOP_CO_ASSERT(ASSERT_TRUE(e));
  EXPECT_NE(std::string(e->what()).find("already waiting for incoming data"), std::string::npos) << e->what();
  r.feed_data("x\n");
  EXPECT_EQ(co_await r.readline(), "x\n") << "a read that needs no wait is not refused";
  r.feed_data("y");
  EXPECT_EQ(co_await first, "y");
}

QILOOP_TEST_MODES_VT(StreamReader, FeedDataAfterEofAndAZeroLimitAreRefused) {
  qi::StreamReader r;
  r.feed_eof();
  try {
    r.feed_data("x");
    ADD_FAILURE() << "feed_data after feed_eof() was accepted";
  } catch (const qi::RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find("feed_data after feed_eof(): the stream has ended; feed no more data"),
              std::string::npos)
        << e.what();
  }
  for (std::size_t limit : {std::size_t(0), std::numeric_limits<std::size_t>::max()}) {
    try {
      qi::StreamReader bad(limit);
      ADD_FAILURE() << "a limit of " << limit << " was accepted";
    } catch (const qi::ValueError& e) {
      EXPECT_NE(std::string(e.what()).find("the limit must be from 1 to "), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(" bytes, got " + std::to_string(limit)), std::string::npos) << e.what();
    }
  }
  qi::StreamReader open;
  open.feed_data("");  // nothing
  EXPECT_EQ(open.buffered(), 0u);
  co_return;
}

// A read cancelled while it waits leaves every byte to the next read.
qi::Coro<void> cancel_while_waiting(qi::Coro<QByteArray> read) {
  auto& loop = qi::get_running_loop();
  qi::Task<QByteArray> t = loop.create_task(std::move(read));
  co_await qi::sleep(1ms);
  EXPECT_FALSE(t.done()) << "it waits";
  t.cancel();
  EXPECT_TRUE(co_await caught<qi::CancelledError>(finish(t)));
  EXPECT_TRUE(t.cancelled());
}

QILOOP_TEST_MODES_VT(StreamReader, CancellingAWaitingReadLosesNoData) {
  qi::StreamReader r = fed("par");
  co_await cancel_while_waiting(r.readexactly(10));
  co_await cancel_while_waiting(r.readline());
  co_await cancel_while_waiting(r.readuntil("!", "?"));
  co_await cancel_while_waiting(r.read());
  EXPECT_EQ(r.buffered(), 3u);
  qi::StreamReader empty;
  co_await cancel_while_waiting(empty.read(5));
  r.feed_data("tial\n");
  EXPECT_EQ(co_await r.readline(), "partial\n") << "a new read may wait after a cancelled one";
  empty.feed_data("x");
  EXPECT_EQ(co_await empty.read(5), "x");
}

// Reads `lines` short lines out of one big arrival; how long it took.
qi::Coro<std::chrono::steady_clock::duration> time_lines(int lines) {
  QByteArray all;
  for (int i = 0; i < lines; ++i) all += "line " + QByteArray::number(i) + '\n';
  qi::StreamReader r(1 << 24);
  r.feed_data(all);
  r.feed_eof();
  auto t0 = std::chrono::steady_clock::now();
  int n = 0;
  qsizetype bytes = 0;
  while (std::optional<QByteArray> line = co_await r.next_line()) {
    ++n;
    bytes += line->size();
  }
  auto took = std::chrono::steady_clock::now() - t0;
  EXPECT_EQ(n, lines);
  EXPECT_EQ(bytes, all.size());
  co_return took;
}

// Slicing the front off a big buffer line by line is quadratic (each line
// shifts what follows). 100,000 lines out of one 1.1 MB arrival take about
// four times as long as 25,000 (sixteen times when quadratic), and little
// time at all outside sanitizer builds.
// Each size's best of three: a loaded machine preempts single runs for
// longer than the whole measurement.
QILOOP_TEST_MODES(StreamReader, AHundredThousandLinesFromOneBufferInLinearTime) {
  auto small = std::chrono::steady_clock::duration::max();
  auto big = small;
  for (int i = 0; i < 3; ++i) {
    const auto s = co_await time_lines(25'000);
    const auto b = co_await time_lines(100'000);
    small = std::min(small, s);
    big = std::min(big, b);
  }
  EXPECT_LT(big, 8 * small + 250ms) << "quadratic buffer shifting? 25,000 lines: "
                                    << std::chrono::duration<double>(small).count() << " s, 100,000: "
                                    << std::chrono::duration<double>(big).count() << " s";
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  EXPECT_LT(big, 5s);
#endif
}

// --- Connections: a POSIX peer on a thread -------------------------------------------------

QILOOP_TEST_MODES(StreamConnection, OpenConnectionEchoesThroughAPosixPeer) {
  FdLeakCheck leaks;
  Peer peer;
  Fd lsn = listener(qi::SocketAddress::ip("127.0.0.1", 0));
  peer.start([&] {
    Fd c = accept_peer(lsn.get());
    echo_until_eof(c.get());
  });
  auto conn = co_await qi::open_connection("127.0.0.1", sockname(lsn.get()).port());
  qi::StreamReader reader = conn.first;
  qi::StreamWriter writer = conn.second;
  conn = {qi::StreamReader(), std::move(conn.second)};  // one writer handle less is fine
  EXPECT_EQ(writer.transport().peername(), sockname(lsn.get()));
  EXPECT_GE(writer.transport().fileno(), 0);
  EXPECT_TRUE(writer.can_write_eof());
  EXPECT_FALSE(writer.is_closing());
  writer.write("hello\n");
  writer.writelines({"wor", "ld\n", "tail"});
  co_await writer.drain();
  EXPECT_EQ(co_await reader.readline(), "hello\n");
  EXPECT_EQ(co_await reader.readuntil("\n"), "world\n");
  EXPECT_EQ(co_await reader.readexactly(4), "tail");
  writer.write_eof();  // the peer sees EOF and closes
  EXPECT_EQ(co_await reader.read(), "");
  EXPECT_TRUE(reader.at_eof());
  writer.close();
  EXPECT_TRUE(writer.is_closing());
  co_await writer.wait_closed();
  EXPECT_EQ(writer.transport().fileno(), -1) << "the transport is gone: a stand-in";
  EXPECT_EQ(writer.transport().peername(), sockname(lsn.get())) << "which keeps the addresses";
  peer.join();
}

QILOOP_TEST_MODES(StreamConnection, OpenUnixConnection) {
  FdLeakCheck leaks;
  std::string path = "/tmp/qiloop-streams-" + std::to_string(::getpid()) + ".sock";
  ::unlink(path.c_str());
  Fd lsn = listener(qi::SocketAddress::unix_path(path));
  Peer peer;
  peer.start([&] {
    Fd c = accept_peer(lsn.get());
    send_all(c.get(), "from the peer\n");
    echo_until_eof(c.get());
  });
  auto conn = co_await qi::open_unix_connection(path);
  EXPECT_EQ(co_await conn.first.readline(), "from the peer\n");
  conn.second.write("ping");
  EXPECT_EQ(co_await conn.first.readexactly(4), "ping");
  conn.second.close();
  co_await conn.second.wait_closed();
  peer.join();
  ::unlink(path.c_str());
}

// The peer resets the connection: the reader's next read throws the
// error, and so do drain() and wait_closed().
QILOOP_TEST_MODES(StreamConnection, AResetSurfacesInReadsDrainAndWaitClosed) {
  FdLeakCheck leaks;
  // A reset needs TCP: a loopback pair accepted by hand.
  Fd lsn = listener(qi::SocketAddress::ip("127.0.0.1", 0));
  Peer peer;
  std::atomic<bool> go{false};
  peer.start([&] {
    Fd c(::accept4(lsn.get(), nullptr, nullptr, SOCK_CLOEXEC));
    send_all(c.get(), "before\n");
    while (!go) std::this_thread::sleep_for(1ms);
    linger l{1, 0};
    ::setsockopt(c.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);  // close() sends RST
  });
  auto conn = co_await qi::open_connection("127.0.0.1", sockname(lsn.get()).port());
  qi::StreamReader reader = conn.first;
  qi::StreamWriter writer = conn.second;
  EXPECT_EQ(co_await reader.readline(), "before\n");
  go = true;
  peer.join();
  auto e = co_await caught<qi::ConnectionResetError>(reader.read(10));
  QILOOP_CO_ASSERT(ASSERT_TRUE(e));
  EXPECT_TRUE(co_await caught<qi::ConnectionResetError>(reader.readline()));
  EXPECT_TRUE(co_await caught<qi::ConnectionResetError>(writer.drain())) << "drain throws the reader's error";
  EXPECT_TRUE(co_await caught<qi::ConnectionResetError>(writer.wait_closed()));
  writer.write("dropped");  // no crash, no error: the transport is gone
  EXPECT_TRUE(writer.is_closing());
}

// A peer that does not read: drain() blocks while the write buffer is over
// its high-water mark and returns once the peer reads; after it returns the
// buffer is under the mark, so memory stays bounded.
QILOOP_TEST_MODES(StreamConnection, DrainBlocksUntilTheSlowPeerReads) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto [ours, theirs] = unix_pair();
  auto conn = co_await qi::open_connection(ours.release());
  qi::StreamWriter writer = conn.second;
  writer.transport().set_write_buffer_limits(64 * 1024);
  const std::size_t high = writer.transport().get_write_buffer_limits().second;
  constexpr std::size_t kTotal = 8 << 20;
  constexpr std::size_t kChunk = 64 * 1024;
  std::size_t sent = 0;
  // Fill the socket and the transport's buffer: some drain must block.
  bool blocked = false;
  while (!blocked && sent < kTotal) {
    writer.write(pattern_bytes(kChunk, sent));
    sent += kChunk;
    qi::Task<void> d = loop.create_task(writer.drain());
    co_await qi::sleep(5ms);
    if (!d.done()) {
      blocked = true;
      EXPECT_GT(writer.transport().get_write_buffer_size(), high);
      qi::Task<void> second = loop.create_task(writer.drain());  // several drains all wake
      Peer reader_thread;
      std::atomic<long long> got{0};
      int fd = theirs.get();
      reader_thread.start([fd, &got] { got = read_pattern(fd); });
      co_await d;
      co_await second;
      EXPECT_LE(writer.transport().get_write_buffer_size(), high);
      while (sent < kTotal) {
        writer.write(pattern_bytes(kChunk, sent));
        sent += kChunk;
        co_await writer.drain();
        EXPECT_LE(writer.transport().get_write_buffer_size(), high) << "memory bounded after every drain";
      }
      writer.close();
      co_await writer.wait_closed();
      reader_thread.join();
      EXPECT_EQ(got.load(), static_cast<long long>(kTotal));
    } else {
      co_await d;
    }
  }
  EXPECT_TRUE(blocked) << "the peer never read: a drain had to wait";
}

QILOOP_TEST_MODES(StreamConnection, ACancelledDrainLeavesTheOthersWaiting) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto [ours, theirs] = unix_pair();
  auto conn = co_await qi::open_connection(ours.release());
  qi::StreamWriter writer = conn.second;
  writer.transport().set_write_buffer_limits(1024);
  writer.write(QByteArray(4 << 20, 'x'));  // more than the socket takes
  qi::Task<void> a = loop.create_task(writer.drain());
  qi::Task<void> b = loop.create_task(writer.drain());
  co_await qi::sleep(5ms);
  QILOOP_CO_ASSERT(ASSERT_FALSE(a.done()));
  a.cancel();
  co_await qi::sleep(1ms);
  EXPECT_TRUE(a.cancelled());
  EXPECT_FALSE(b.done());
  Peer drainer;
  int fd = theirs.get();
  drainer.start([fd] { (void)read_all(fd); });
  co_await b;
  writer.close();
  co_await writer.wait_closed();
  drainer.join();
}

// Lost while a drain waits: the drain gets the error; later drains throw
// ConnectionResetError("Connection lost").
QILOOP_TEST_MODES(StreamConnection, ADrainWaitingWhenTheConnectionIsLostThrows) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  auto [ours, theirs] = unix_pair();
  auto conn = co_await qi::open_connection(ours.release());
  qi::StreamWriter writer = conn.second;
  writer.write(QByteArray(4 << 20, 'x'));
  qi::Task<void> d = loop.create_task(writer.drain());
  co_await qi::sleep(5ms);
  QILOOP_CO_ASSERT(ASSERT_FALSE(d.done()));
  theirs.reset();  // the peer goes: EPIPE / ECONNRESET on the next send
  auto e = co_await caught<qi::ConnectionError>(finish(d));
  EXPECT_TRUE(e) << "the drain gets the connection's error";
  auto lost = co_await caught<qi::ConnectionResetError>(writer.drain());
  QILOOP_CO_ASSERT(ASSERT_TRUE(lost));
}

// asyncio: drain() on a closing transport yields once, so that
// connection_lost runs and a write-and-drain loop sees the end.
QILOOP_TEST_MODES(StreamConnection, DrainAfterCloseSeesTheConnectionEnd) {
  FdLeakCheck leaks;
  auto [ours, theirs] = unix_pair();
  auto conn = co_await qi::open_connection(ours.release());
  qi::StreamWriter writer = conn.second;
  writer.close();
  auto e = co_await caught<qi::ConnectionResetError>(writer.drain());
  QILOOP_CO_ASSERT(ASSERT_TRUE(e));
  EXPECT_STREQ(e->what(), "Connection lost");
  co_await writer.wait_closed();
}

// After the connection is lost the handles stay usable: reads give EOF,
// writes are dropped, transport() is a stand-in.
QILOOP_TEST_MODES(StreamConnection, HandlesOutliveTheConnection) {
  FdLeakCheck leaks;
  auto [ours, theirs] = unix_pair();
  auto conn = co_await qi::open_connection(ours.release());
  qi::StreamReader reader = conn.first;
  qi::StreamWriter writer = conn.second;
  qi::SocketAddress local = writer.transport().sockname();
  send_all(theirs.get(), "last words");
  theirs.reset();
  EXPECT_EQ(co_await reader.read(), "last words");
  writer.close();
  co_await writer.wait_closed();
  EXPECT_TRUE(reader.at_eof());
  EXPECT_EQ(co_await reader.readline(), "");
  for (int i = 0; i < 10; ++i) writer.write("dropped");
  writer.writelines({"a", "b"});
  writer.write_eof();
  writer.close();
  EXPECT_TRUE(writer.is_closing());
  EXPECT_EQ(writer.transport().fileno(), -1);
  EXPECT_EQ(writer.transport().sockname(), local);
  EXPECT_EQ(writer.transport().get_write_buffer_size(), 0u);
  co_await writer.wait_closed();
}

QILOOP_TEST_MODES(StreamConnection, TheLastWriterHandleClosesTheTransport) {
  FdLeakCheck leaks;
  auto [ours, theirs] = unix_pair();
  qi::StreamReader reader;
  {
    auto conn = co_await qi::open_connection(ours.release());
    reader = conn.first;
    qi::StreamWriter copy = conn.second;
    copy.write("bye");
  }  // both writer handles go: the transport closes (after sending)
  // Read on a worker: the close completes in the loop's later callbacks.
  int peer = theirs.get();
  auto read_peer = [peer] { return read_all(peer); };
  EXPECT_EQ(co_await qi::get_running_loop().run_in_executor(nullptr, std::move(read_peer)), "bye")
      << "the peer reads EOF";
  EXPECT_EQ(co_await reader.read(), "");
}

// The reader pauses the transport's reading above 2 * limit and resumes it
// at limit or below (asyncio's rule).
QILOOP_TEST_MODES(StreamConnection, TheReaderPausesTheTransportAboveTwiceItsLimit) {
  FdLeakCheck leaks;
  auto [ours, theirs] = unix_pair();
  constexpr std::size_t kLimit = 1000;
  auto conn = co_await qi::open_connection(ours.release(), kLimit);
  qi::StreamReader reader = conn.first;
  qi::StreamWriter writer = conn.second;
  constexpr qsizetype kSent = 200'000;
  send_all(theirs.get(), std::string(kSent, 'z'));  // the socket's buffers hold it
  while (writer.transport().is_reading()) co_await qi::sleep(1ms);
  EXPECT_GT(reader.buffered(), 2 * kLimit);
  qsizetype consumed = 0;
  while (reader.buffered() > kLimit + 1) {
    consumed += (co_await reader.read(1)).size();
    EXPECT_FALSE(writer.transport().is_reading()) << "still paused above the limit";
  }
  consumed += (co_await reader.read(1)).size();
  EXPECT_LE(reader.buffered(), kLimit);
  EXPECT_TRUE(writer.transport().is_reading()) << "resumed at the limit";
  EXPECT_EQ(co_await reader.readexactly(static_cast<qsizetype>(kSent - consumed)), QByteArray(kSent - consumed, 'z'));
  writer.close();
  co_await writer.wait_closed();
}

// --- The servers' protocol factory ---------------------------------------------------------

// Accepts one connection with loop.sock_accept and serves it with the
// factory start_server will use.
qi::Coro<void> serve_one(int listening, qi::detail::StreamProtocolFactory factory) {
  auto& loop = qi::get_running_loop();
  auto [fd, peer] = co_await loop.sock_accept(listening);
  (void)peer;
  co_await loop.create_connection(std::move(factory), fd);
}

qi::Coro<void> line_echo(qi::StreamReader r, qi::StreamWriter w) {
  while (std::optional<QByteArray> line = co_await r.next_line()) {
    w.write("echo: " + *line);
    co_await w.drain();
  }
  w.close();
  co_await w.wait_closed();
}

Fd nonblocking_listener() {
  Fd lsn = listener(qi::SocketAddress::ip("127.0.0.1", 0));
  ::fcntl(lsn.get(), F_SETFL, ::fcntl(lsn.get(), F_GETFL) | O_NONBLOCK);
  return lsn;
}

QILOOP_TEST_MODES(StreamServer, TheFactoryRunsTheCallbackAsATaskPerConnection) {
  FdLeakCheck leaks;
  Fd lsn = nonblocking_listener();
  int served = 0;
  auto cb = [&served](qi::StreamReader r, qi::StreamWriter w) -> qi::Coro<void> {
    ++served;
    return line_echo(std::move(r), std::move(w));
  };
  qi::detail::StreamProtocolFactory factory = qi::detail::stream_server_factory(std::move(cb));
  for (int i = 0; i < 2; ++i) {
    qi::Task<void> accepted = qi::create_task(serve_one(lsn.get(), [&factory] { return factory(); }));
    auto conn = co_await qi::open_connection("127.0.0.1", sockname(lsn.get()).port());
    co_await accepted;
    conn.second.write("hi " + QByteArray::number(i) + "\n");
    EXPECT_EQ(co_await conn.first.readline(), "echo: hi " + QByteArray::number(i) + "\n");
    conn.second.write_eof();  // the server's loop ends, and it closes
    EXPECT_EQ(co_await conn.first.read(), "");
    conn.second.close();
    co_await conn.second.wait_closed();
  }
  EXPECT_EQ(served, 2);
  co_await qi::sleep(10ms);  // the handlers' tasks finish
}

QILOOP_TEST_MODES(StreamServer, AFailingCallbackIsReportedAndItsConnectionClosed) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  std::vector<qi::ExceptionContext> reports;
  loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& c) { reports.push_back(c); });
  Fd lsn = nonblocking_listener();
  auto cb = [](qi::StreamReader r, qi::StreamWriter w) -> qi::Coro<void> {
    qi::StreamWriter keep = w;  // still open when the task fails: the failure closes it
    QByteArray line = co_await r.readline();
    throw qi::ValueError("bad request: " + line.trimmed().toStdString());
  };
  qi::detail::StreamProtocolFactory factory = qi::detail::stream_server_factory(std::move(cb), 1024);
  qi::Task<void> accepted = qi::create_task(serve_one(lsn.get(), std::move(factory)));
  auto conn = co_await qi::open_connection("127.0.0.1", sockname(lsn.get()).port());
  co_await accepted;
  conn.second.write("nonsense\n");
  EXPECT_EQ(co_await conn.first.read(), "") << "the server closed the connection";
  co_await qi::sleep(10ms);
  QILOOP_CO_ASSERT(ASSERT_EQ(reports.size(), 1u));
  EXPECT_NE(reports[0].message.find("client_connected_cb"), std::string::npos);
  EXPECT_TRUE(holds<qi::ValueError>(reports[0].exception));
  EXPECT_EQ(what_of(reports[0].exception), "bad request: nonsense");
  conn.second.close();
  co_await conn.second.wait_closed();
  loop.set_exception_handler(nullptr);
}

// start_server and start_unix_server refuse an empty callback and a bad
// limit when called, before a socket is bound (not at the first connection).
QILOOP_TEST_MODES(StreamServer, StartServerRefusesAnEmptyCallbackAndABadLimit) {
  FdLeakCheck leaks;
  std::string what;
  try {
    (void)co_await qi::start_server(nullptr, "127.0.0.1", 0);
  } catch (const std::invalid_argument& e) {
    what = e.what();
  }
  EXPECT_EQ(what, "qi::start_server: client_connected_cb is empty; pass a callable");
  what.clear();
  try {
    auto cb = [](qi::StreamReader, qi::StreamWriter) -> qi::Coro<void> { co_return; };
    (void)co_await qi::start_server(std::move(cb), "127.0.0.1", 0, {}, 0);
  } catch (const qi::ValueError& e) {
    what = e.what();
  }
  EXPECT_NE(what.find("qi::StreamReader: the limit must be from 1 to "), std::string::npos) << what;
  what.clear();
  try {
    auto cb = [](qi::StreamReader, qi::StreamWriter) -> qi::Coro<void> { co_return; };
    (void)co_await qi::start_unix_server(std::move(cb), "/nonexistent/qiloop-never-bound", {}, 0);
  } catch (const qi::ValueError& e) {
    what = e.what();
  }
  EXPECT_NE(what.find("qi::StreamReader: the limit must be from 1 to "), std::string::npos) << what;
}

// --- A Python asyncio peer: 4-byte little-endian length-prefixed echo ----------------------

TRANSPORT_TEST_MODES_IF(StreamPython, LengthPrefixedEchoWithAnAsyncioServer, no_python3()) {
  FdLeakCheck leaks;
  PythonPeer py(kPythonFrameEcho);
  uint16_t port = py.port();  // blocking: the child's start-up only
  auto conn = co_await qi::open_connection("127.0.0.1", port);
  qi::StreamReader reader = conn.first;
  qi::StreamWriter writer = conn.second;
  for (std::size_t size : {std::size_t(0), std::size_t(1), std::size_t(1000), std::size_t(300'000)}) {
    QByteArray body = pattern_bytes(size, size);
    writer.write(length_prefixed(body));
    co_await writer.drain();
    QByteArray head = co_await reader.readexactly(4);
    QILOOP_CO_ASSERT(ASSERT_EQ(length_of(head), size));
    EXPECT_EQ(co_await reader.readexactly(static_cast<qsizetype>(size)), body);
  }
  writer.write_eof();
  auto e = co_await caught<qi::IncompleteReadError>(reader.readexactly(4));
  QILOOP_CO_ASSERT(ASSERT_TRUE(e));
  EXPECT_EQ(e->partial(), "") << "the server closed after our EOF";
  writer.close();
  co_await writer.wait_closed();
  EXPECT_EQ(co_await py.exit_status(), 0);
}

// A stream connection over a socketpair whose handles outlive the loop that
// opens them (these tests close that loop under them); `theirs` is the far
// end.
struct HeldConnection {
  Fd ours, theirs;
  std::optional<qi::StreamReader> reader;
  std::optional<qi::StreamWriter> writer;
  HeldConnection() {
    auto ends = unix_pair();
    ours = std::move(ends.first);
    theirs = std::move(ends.second);
  }
  void open_on(QiEventLoop& loop) {
    auto conn = loop.run_until_complete(qi::open_connection(ours.release()));
    reader = std::move(conn.first);
    writer = std::move(conn.second);
  }
};

}  // namespace

// loop.close() destroys a connection's transport under live handles: they
// stay safe (no dangling transport), before and after the loop is gone.
TEST(StreamConnection, HandlesSurviveLoopClose) {
  FdLeakCheck leaks;
  HeldConnection held;
  {
    QiEventLoop loop;
    held.open_on(loop);
    EXPECT_GE(held.writer->transport().fileno(), 0);
    loop.close();
    EXPECT_EQ(held.writer->transport().fileno(), -1);
    held.writer->write("dropped");
    EXPECT_TRUE(held.writer->is_closing());
  }
  held.writer->close();
  held.writer.reset();
  held.reader.reset();
  EXPECT_EQ(read_all(held.theirs.get()), "");
}

namespace {

// --- qi::start_server / start_unix_server -------------------------------------------------

// Echoes lines until EOF, then closes.
qi::Coro<void> echo_lines(qi::StreamReader r, qi::StreamWriter w) {
  while (auto line = co_await r.next_line()) {
    w.write(*line);
    co_await w.drain();
  }
  w.close();
  co_await w.wait_closed();
}

// Two clients at once through start_server, then close() and wait_closed().
QILOOP_TEST_MODES(StartServer, EchoesLinesToSeveralClients) {
  FdLeakCheck leaks;
  auto cb = echo_lines;
  qi::Server server = co_await qi::start_server(std::move(cb), "127.0.0.1", 0);
  uint16_t port = server.sockets().at(0).port();
  auto a = co_await qi::open_connection("127.0.0.1", port);
  auto b = co_await qi::open_connection("127.0.0.1", port);
  a.second.write("one\n");
  b.second.write("two\n");
  EXPECT_EQ(co_await b.first.readline(), "two\n");
  EXPECT_EQ(co_await a.first.readline(), "one\n");
  std::array<decltype(&a), 2> clients{&a, &b};
  for (auto* c : clients) {
    c->second.write_eof();
    EXPECT_EQ(co_await c->first.read(), "");
    c->second.close();
    co_await c->second.wait_closed();
  }
  server.close();
  co_await server.wait_closed();
  EXPECT_FALSE(server.is_serving());
}

QILOOP_TEST_MODES(StartServer, UnixServerEchoes) {
  FdLeakCheck leaks;
  std::string dir = temp_dir();
  std::string path = dir + "/echo.sock";
  auto cb = echo_lines;
  qi::Server server = co_await qi::start_unix_server(std::move(cb), path);
  auto c = co_await qi::open_unix_connection(path);
  c.second.write("over a unix socket\n");
  EXPECT_EQ(co_await c.first.readline(), "over a unix socket\n");
  c.second.close();
  co_await c.second.wait_closed();
  server.close();
  co_await server.wait_closed();
  struct stat st;
  EXPECT_NE(::stat(path.c_str(), &st), 0) << "close() removes the socket file";
  ::rmdir(dir.c_str());
}

// The reader's limit reaches the callback's reader: a line over it fails
// there (reported), and the connection closes.
QILOOP_TEST_MODES(StartServer, TheLimitAppliesToTheServersReaders) {
  FdLeakCheck leaks;
  auto& loop = qi::get_running_loop();
  std::vector<qi::ExceptionContext> reports;
  loop.set_exception_handler([&](QiEventLoop&, const qi::ExceptionContext& c) { reports.push_back(c); });
  auto cb = [](qi::StreamReader r, qi::StreamWriter w) -> qi::Coro<void> {
    QByteArray line = co_await r.readuntil("\n");
    w.write(line);
  };
  qi::Server server = co_await qi::start_server(std::move(cb), "127.0.0.1", 0, {}, 16);
  auto c = co_await qi::open_connection("127.0.0.1", server.sockets().at(0).port());
  c.second.write(QByteArray(64, 'x') + "\n");
  EXPECT_EQ(co_await c.first.read(), "") << "the failing callback's connection is closed";
  co_await qi::sleep(10ms);
  QILOOP_CO_ASSERT(ASSERT_EQ(reports.size(), 1u));
  EXPECT_TRUE(holds<qi::LimitOverrunError>(reports[0].exception));
  c.second.close();
  co_await c.second.wait_closed();
  server.close();
  co_await server.wait_closed();
  loop.set_exception_handler(nullptr);
}

}  // namespace

// --- Hostile round (attack-i10) ---------------------------------------------------------

#include <qiloop/net/signals.h>
#include <qiloop/net/subprocess.h>

namespace {

// Loops on several threads at once, each a stream server whose clients are
// on the next thread's loop, a child process and a real-time signal of its
// own sent from the main thread: the process-wide registries (transports,
// children, signals) under concurrent use (TSan).
TEST(Streams, HostileLoopsOnSeveralThreadsServeEachOther) {
  constexpr int kThreads = 4;
  constexpr int kClients = 6;
  constexpr int kLines = 50;
  std::array<std::atomic<int>, kThreads> ports{};
  std::atomic<int> clients_done{0};
  std::array<std::atomic<int>, kThreads> signals_seen{};
  std::atomic<int> handlers_ready{0};
  std::atomic<bool> stop_signals{false};
  std::atomic<bool> may_remove{false};
  std::atomic<int> started{0};
  std::array<std::string, kThreads> failures;
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&, i] {
      QiEventLoop loop;
      auto body = [&]() -> qi::Coro<void> {
        ++started;
        auto& l = qi::get_running_loop();
        l.add_signal_handler(SIGRTMIN + i, [&] { ++signals_seen[i]; });
        ++handlers_ready;
        auto cb = echo_lines;
        qi::Server server = co_await qi::start_server(std::move(cb), "127.0.0.1", 0);
        ports[i] = server.sockets().at(0).port();
        while (ports[(i + 1) % kThreads] == 0) co_await qi::sleep(1ms);
        const uint16_t to = static_cast<uint16_t>(ports[(i + 1) % kThreads].load());
        auto client = [&](int c) -> qi::Coro<void> {
          auto conn = co_await qi::open_connection("127.0.0.1", to);
          for (int n = 0; n < kLines; ++n) {
            QByteArray line = "t" + QByteArray::number(i) + "c" + QByteArray::number(c) + "n" + QByteArray::number(n) + "\n";
            conn.second.write(line);
            if (co_await conn.first.readline() != line) failures[i] = "wrong echo";
          }
          conn.second.close();
          co_await conn.second.wait_closed();
        };
        std::vector<qi::Task<void>> tasks;
        for (int c = 0; c < kClients; ++c) tasks.push_back(qi::create_task(client(c)));
        qi::SubprocessOptions o;
        o.std_out = qi::PIPE;
        qi::Process p = co_await qi::create_subprocess_exec("echo", "child", o);
        auto [out, err] = co_await p.communicate();
        if (out != "child\n") failures[i] = "child said " + out.toStdString();
        for (auto& t : tasks) co_await t;
        ++clients_done;
        while (clients_done < kThreads) co_await qi::sleep(1ms);
        while (!may_remove) co_await qi::sleep(1ms);  // a signal without its handler kills the process
        server.close();
        co_await server.wait_closed();
        l.remove_signal_handler(SIGRTMIN + i);
      };
      run_in_turn(loop, started, i, body, failures[i]);
    });
  }
  while (handlers_ready < kThreads) std::this_thread::sleep_for(1ms);
  std::thread sender([&] {
    while (!stop_signals)
      for (int i = 0; i < kThreads; ++i) {
        ::kill(::getpid(), SIGRTMIN + i);
        std::this_thread::sleep_for(1ms);
      }
  });
  auto deadline = std::chrono::steady_clock::now() + 20s;
  auto all_seen = [&] {
    for (auto& n : signals_seen)
      if (n == 0) return false;
    return true;
  };
  while (!all_seen() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(1ms);
  stop_signals = true;
  sender.join();
  std::this_thread::sleep_for(50ms);  // the last ones delivered
  may_remove = true;
  for (auto& t : threads) t.join();
  for (int i = 0; i < kThreads; ++i) {
    EXPECT_EQ(failures[i], "") << "thread " << i;
    EXPECT_GT(signals_seen[i], 0) << "thread " << i;
  }
}

}  // namespace

// --- Review i10 B12, B13, B16, B20 ---------------------------------------------------------

namespace {

qi::Coro<void> until_buffered(qi::StreamReader& r, std::size_t n) {
  while (r.buffered() < n) co_await qi::sleep(5ms);
}

template <class T>
T run_bounded(QiEventLoop& loop, qi::Coro<T> coro) {
  return loop.run_until_complete(qi::wait_for(std::move(coro), 5s));
}

}  // namespace

// loop.close() destroys the transport: the handles' reads give what was
// buffered, then EOF, without waiting, also on another loop (docs'
// promise); the writer's waits end at once.
TEST(Streams, ReadAfterLoopCloseGivesTheBufferThenEof) {
  FdLeakCheck leaks;
  HeldConnection held;
  {
    QiEventLoop loop;
    held.open_on(loop);
    send_all(held.theirs.get(), "line one\nrest");
    loop.run_until_complete(qi::wait_for(until_buffered(*held.reader, 13), 5s));
    loop.close();
  }
  QiEventLoop other;
  EXPECT_EQ(run_bounded(other, held.reader->readline()), "line one\n");
  EXPECT_EQ(run_bounded(other, held.reader->read(2)), "re");
  EXPECT_EQ(run_bounded(other, held.reader->read()), "st");
  EXPECT_EQ(run_bounded(other, held.reader->read()), "");
  EXPECT_EQ(run_bounded(other, held.reader->readline()), "");
  EXPECT_THROW(run_bounded(other, held.reader->readexactly(1)), qi::IncompleteReadError);
  EXPECT_TRUE(held.reader->at_eof());
  EXPECT_NO_THROW(run_bounded(other, held.writer->wait_closed()));
  EXPECT_THROW(run_bounded(other, held.writer->drain()), qi::ConnectionResetError);
  other.close();
  held.writer.reset();
  held.reader.reset();
}

// Once a stream's connection is lost its transport is gone and
// writer.transport() is a stand-in (is_closing, no fd): set_protocol on it
// is refused naming why, the protocol offered dropped.
QILOOP_TEST_MODES(Streams, SetProtocolOnATransportWhoseConnectionIsLostIsRefused) {
  FdLeakCheck leaks;
  auto ends = unix_pair();
  auto conn = co_await qi::open_connection(ends.first.release());
  conn.second.close();
  co_await conn.second.wait_closed();
  qi::Transport& lost = conn.second.transport();
  EXPECT_TRUE(lost.is_closing());
  EXPECT_EQ(lost.fileno(), -1) << "the stand-in of a lost connection";
  auto log = std::make_shared<Log>();
  try {
    (void)lost.set_protocol(std::make_unique<Recorder>(log));
    ADD_FAILURE() << "set_protocol on a lost connection's transport was accepted";
  } catch (const qi::RuntimeError& e) {
    EXPECT_STREQ(e.what(), "set_protocol: this transport has no connection any more (it was lost or the loop "
                           "closed); there is no protocol to replace");
  }
  EXPECT_EQ(log->made + log->lost, 0) << "the protocol offered heard nothing";
}

// Every call on a moved-from handle throws qi::RuntimeError naming the
// problem; assigning to it makes it usable again.
QILOOP_TEST_MODES(Streams, AMovedFromHandleThrows) {
  auto ends = unix_pair();
  auto conn = co_await qi::open_connection(ends.first.release());
  qi::StreamReader r = std::move(conn.first);
  qi::StreamWriter w = std::move(conn.second);
  int checked = 0;
  auto expect_empty = [&checked](const char* what, auto call) {
    ++checked;
    try {
      call();
      ADD_FAILURE() << what << " on a moved-from handle did not throw";
    } catch (const qi::RuntimeError& e) {
      EXPECT_NE(std::string(e.what()).find("an empty handle (moved from)"), std::string::npos) << what << ": "
                                                                                           << e.what();
    }
  };
  qi::StreamReader& mr = conn.first;
  qi::StreamWriter& mw = conn.second;
  expect_empty("read", [&] { (void)mr.read(); });
  expect_empty("readexactly", [&] { (void)mr.readexactly(1); });
  expect_empty("readline", [&] { (void)mr.readline(); });
  expect_empty("readuntil", [&] { (void)mr.readuntil("x"); });
  expect_empty("readuntil(a, b)", [&] { (void)mr.readuntil("a", "b"); });
  expect_empty("next_line", [&] { (void)mr.next_line(); });
  expect_empty("at_eof", [&] { (void)mr.at_eof(); });
  expect_empty("exception", [&] { (void)mr.exception(); });
  expect_empty("limit", [&] { (void)mr.limit(); });
  expect_empty("buffered", [&] { (void)mr.buffered(); });
  expect_empty("feed_data", [&] { mr.feed_data("x"); });
  expect_empty("feed_eof", [&] { mr.feed_eof(); });
  expect_empty("set_exception", [&] { mr.set_exception(nullptr); });
  expect_empty("set_transport", [&] { mr.set_transport(nullptr); });
  expect_empty("write", [&] { mw.write("x"); });
  expect_empty("writelines", [&] { mw.writelines({"a", "b"}); });
  expect_empty("can_write_eof", [&] { (void)mw.can_write_eof(); });
  expect_empty("write_eof", [&] { mw.write_eof(); });
  expect_empty("close", [&] { mw.close(); });
  expect_empty("is_closing", [&] { (void)mw.is_closing(); });
  expect_empty("drain", [&] { (void)mw.drain(); });
  expect_empty("wait_closed", [&] { (void)mw.wait_closed(); });
  expect_empty("start_tls", [&] { (void)mw.start_tls(nullptr); });
  expect_empty("transport", [&] { (void)mw.transport(); });
  EXPECT_EQ(checked, 24);
  // Assigned again, they work.
  mr = r;
  mw = w;
  mw.write("ping");
  EXPECT_EQ(recv_exactly(ends.second.get(), 4), "ping");
  send_all(ends.second.get(), "pong");
  EXPECT_EQ(co_await mr.readexactly(4), "pong");
  w.close();
  co_await w.wait_closed();
}

namespace {

// A transport whose close() throws (what a TLS close() does when the
// socket transport's flush fails); the rest does nothing.
class CloseThrowsTransport final : public test_support::NullTransport {
 public:
  int closes = 0;
  void close() override {
    ++closes;
    throw qi::RuntimeError("injected: close() failed");
  }
};

qi::Coro<void> let_go_of_the_handles(std::shared_ptr<qi::Event> done, qi::StreamReader, qi::StreamWriter) {
  done->set();
  co_return;
}

}  // namespace

// The last StreamWriter handle closes the transport from a noexcept
// destructor: a close() that throws is reported to the loop's exception
// handler, never std::terminate.
QILOOP_TEST_MODES_VT(Streams, LastWriterHandleOnTlsNeverThrows) {
  auto& loop = qi::get_running_loop();
  std::vector<std::string> reports;
  loop.set_exception_handler([&reports](QiEventLoop&, const qi::ExceptionContext& c) {
    std::string what;
    try {
      if (c.exception) std::rethrow_exception(c.exception);
    } catch (const std::exception& e) {
      what = e.what();
    }
    reports.push_back(c.message + " / " + what);
  });
  auto done = std::make_shared<qi::Event>();
  auto cb = [done](qi::StreamReader r, qi::StreamWriter w) {
    return let_go_of_the_handles(done, std::move(r), std::move(w));
  };
  CloseThrowsTransport transport;
  auto factory = qi::detail::stream_server_factory(std::move(cb));
  std::unique_ptr<qi::BufferedProtocol> protocol = factory();
  protocol->connection_made(transport);
  co_await done->wait();
  for (int i = 0; i < 100 && reports.empty(); ++i) co_await qi::sleep(1ms);
  EXPECT_EQ(transport.closes, 1);
  QILOOP_CO_ASSERT(ASSERT_EQ(reports.size(), 1u));
  EXPECT_EQ(reports[0],
            "closing the transport of the last qi::StreamWriter handle failed / injected: close() failed");
  protocol->connection_lost(nullptr);
  protocol.reset();
  loop.set_exception_handler(nullptr);
}

// One large read leaves a partial frame behind: the buffer gives the big
// allocation back rather than keeping it for the stream's life.
TEST(Streams, ReadBufferShrinksAfterALargeRead) {
  constexpr qsizetype kBig = 8 << 20;
  qi::detail::ReadBuffer taken;
  taken.append(QByteArray(kBig, 'x'));
  EXPECT_GE(taken.capacity(), kBig);
  EXPECT_EQ(taken.take(kBig - 100).size(), kBig - 100);
  EXPECT_EQ(taken.size(), 100);
  EXPECT_LE(taken.capacity(), 2 << 20) << "take() kept the large allocation";
  EXPECT_EQ(taken.view(), QByteArray(100, 'x'));

  // Dropped (no take), then compacted by the next prepare().
  qi::detail::ReadBuffer dropped;
  dropped.append(QByteArray(kBig, 'y'));
  dropped.drop(kBig - 100);
  std::span<std::byte> room = dropped.prepare(64 * 1024);
  EXPECT_GE(room.size(), 64u * 1024);
  EXPECT_LE(dropped.capacity(), 2 << 20) << "the compaction kept the large allocation";
  EXPECT_EQ(dropped.view(), QByteArray(100, 'y'));

  // A buffer under 1 MiB keeps its memory (no churn for ordinary streams).
  qi::detail::ReadBuffer small;
  small.append(QByteArray(512 * 1024, 'z'));
  const qsizetype before = small.capacity();
  (void)small.take(512 * 1024 - 10);
  EXPECT_EQ(small.capacity(), before);
}

// --- Hostile round 3 (attack3-i10) -------------------------------------------------------
// Limits at their boundaries, separators split across arrivals, a reader
// fed one byte at a time, drain() against a peer that never reads and then
// resets, close() while drain() waits, 10,000 small writes then close().

#include <qiloop/net/server.h>

namespace {

// Feeds data one byte at a time, yielding to the loop every `every` bytes.
qi::Coro<void> dribble(qi::StreamReader r, QByteArray data, int every, bool eof) {
  for (qsizetype i = 0; i < data.size(); ++i) {
    r.feed_data(QByteArrayView(data.constData() + i, 1));
    if ((i + 1) % every == 0) co_await qi::sleep(0s);
  }
  if (eof) r.feed_eof();
}

}  // namespace

QILOOP_TEST_MODES_VT(Streams, HostileLimitsAtTheirBoundaries) {
  {
    // limit 1: a one-byte line fits (the separator starts at 1, not past it).
    qi::StreamReader r(1);
    r.feed_data("a\nbc\nd\n");
    EXPECT_EQ(co_await r.readline(), "a\n");
    // "bc\n": the separator starts at 2 > 1: ValueError, the line dropped.
    auto e = co_await caught<qi::ValueError>(r.readline());
    EXPECT_TRUE(e.has_value());
    EXPECT_EQ(co_await r.readline(), "d\n");
    // No separator and more than the limit: the bytes so far go.
    r.feed_data("xyz");
    auto e2 = co_await caught<qi::ValueError>(r.readline());
    EXPECT_TRUE(e2.has_value());
    EXPECT_EQ(r.buffered(), 0u);
    r.feed_data("\n");
    EXPECT_EQ(co_await r.readline(), "\n");
  }
  {
    // A separator longer than the limit is still found (asyncio checks
    // where the separator starts).
    qi::StreamReader r(2);
    r.feed_data("xabc");
    EXPECT_EQ(co_await r.readuntil("abc"), "xabc");
    // Split across arrivals: "xyza" then "bc": found, but it starts at 3 > 2:
    // LimitOverrunError with consumed 3, and the bytes stay.
    auto t = qi::create_task(r.readuntil("abc"));
    r.feed_data("xyza");
    co_await qi::sleep(0s);
    EXPECT_FALSE(t.done());
    r.feed_data("bc");
    std::optional<qi::LimitOverrunError> over;
    try {
      (void)co_await t;
    } catch (const qi::LimitOverrunError& x) {
      over = x;
    }
    QILOOP_CO_ASSERT(ASSERT_TRUE(over.has_value()));
    EXPECT_EQ(over->consumed(), 3);
    EXPECT_EQ(r.buffered(), 6u);
    EXPECT_EQ(co_await r.readexactly(6), "xyzabc");
  }
  {
    // A four-byte separator fed one byte at a time, and two separators
    // where the shorter one ends first.
    qi::StreamReader r(64);
    auto feeder = qi::create_task(dribble(r, "GET / HTTP/1.0\r\n\r\nrest\r\nmore\n", 1, true));
    EXPECT_EQ(co_await r.readuntil("\r\n\r\n"), "GET / HTTP/1.0\r\n\r\n");
    EXPECT_EQ(co_await r.readuntil(QByteArrayView("\r\n"), QByteArrayView("\n")), "rest\r\n");
    EXPECT_EQ(co_await r.readuntil(QByteArrayView("\r\n"), QByteArrayView("\n")), "more\n");
    co_await feeder;
    EXPECT_TRUE(r.at_eof());
  }
  {
    // readexactly past the limit and past twice the limit (limit 1).
    qi::StreamReader r(1);
    auto feeder = qi::create_task(dribble(r, pattern_bytes(100), 1, false));
    EXPECT_EQ(co_await r.readexactly(100), pattern_bytes(100));
    co_await feeder;
  }
}

// 1 MiB fed one byte at a time (the reader woken for every byte over the
// first 64 KiB, then every 4 KiB): readexactly and a 1 MiB line come back
// intact, and the scan is not quadratic (the test would time out).
QILOOP_TEST_MODES_VT(Streams, HostileOneMebibyteOneByteAtATime) {
  const QByteArray data = pattern_bytes(1 << 20).replace('\n', 'n');
  {
    qi::StreamReader r(2 << 20);
    auto feeder = qi::create_task(dribble(r, data.first(64 * 1024), 1, false));
    auto read = qi::create_task(r.readexactly(data.size()));
    co_await feeder;
    co_await dribble(r, data.sliced(64 * 1024), 4096, true);
    EXPECT_EQ(co_await read, data);
  }
  {
    qi::StreamReader r(2 << 20);
    auto feeder = qi::create_task(dribble(r, data + "\n", 4096, true));
    EXPECT_EQ(co_await r.readline(), data + "\n");
    co_await feeder;
  }
  {
    qi::StreamReader r(2 << 20);
    auto feeder = qi::create_task(dribble(r, data.first(200 * 1024) + "\n", 1, true));
    EXPECT_EQ(co_await r.readline(), data.first(200 * 1024) + "\n");
    co_await feeder;
  }
}

// A server writes to a client that never reads; drain() keeps the buffer
// bounded; then the client resets: the waiting drain() throws a
// ConnectionError at once (no hang), nothing is reported.
qi::Coro<void> flood_until_error(std::shared_ptr<std::string> outcome, std::shared_ptr<qi::Event> waiting,
                                 qi::StreamReader, qi::StreamWriter w) {
  const QByteArray chunk = pattern_bytes(64 * 1024);
  try {
    for (;;) {
      w.write(chunk);
      if (w.transport().get_write_buffer_size() > 64 * 1024) waiting->set();
      co_await w.drain();
      EXPECT_LE(w.transport().get_write_buffer_size(), w.transport().get_write_buffer_limits().second);
    }
  } catch (const qi::ConnectionError& e) {
    *outcome = std::string("ConnectionError: ") + e.what();
  } catch (const std::exception& e) {
    *outcome = std::string("other: ") + e.what();
  }
  w.close();
  try {
    co_await w.wait_closed();
  } catch (const qi::ConnectionError&) {
  }
  waiting->set();
}

QILOOP_TEST_MODES(Streams, HostileDrainAgainstAPeerThatNeverReadsThenResets) {
  FdLeakCheck leaks;
  auto outcome = std::make_shared<std::string>();
  auto waiting = std::make_shared<qi::Event>();
  auto cb = [outcome, waiting](qi::StreamReader r, qi::StreamWriter w) {
    return flood_until_error(outcome, waiting, std::move(r), std::move(w));
  };
  qi::Server server = co_await qi::start_server(std::move(cb), "127.0.0.1", 0);
  Fd client = connect_client(server.sockets().at(0));
  co_await waiting->wait();
  co_await qi::sleep(50ms);  // the server is stuck in drain()
  waiting->clear();
  EXPECT_TRUE(outcome->empty());
  linger l{1, 0};
  ::setsockopt(client.get(), SOL_SOCKET, SO_LINGER, &l, sizeof l);
  client.reset();
  co_await waiting->wait();
  EXPECT_EQ(outcome->rfind("ConnectionError", 0), 0u) << *outcome;
  server.close();
  co_await server.wait_closed();
}

// close() while another task waits in drain(): once the peer reads, every
// byte written arrives, drain() returns, and wait_closed() returns.
QILOOP_TEST_MODES(Streams, HostileCloseWhileDrainWaits) {
  FdLeakCheck leaks;
  auto [ours, theirs] = unix_pair();
  auto conn = co_await qi::open_connection(ours.release());
  qi::StreamWriter w = conn.second;
  const std::size_t total = 8 << 20;
  w.write(pattern_bytes(total));
  auto drainer = qi::create_task(w.drain());
  co_await qi::sleep(10ms);
  EXPECT_FALSE(drainer.done()) << "8 MiB cannot fit the socket buffers";
  w.close();
  EXPECT_TRUE(w.is_closing());
  long long got = -1;
  Peer reader;
  int fd = theirs.get();
  reader.start([&got, fd] { got = read_pattern(fd); });
  co_await drainer;
  co_await w.wait_closed();
  reader.join();
  EXPECT_EQ(got, static_cast<long long>(total));
}

// 10,000 small writes (and writelines) then close() at once: the peer gets
// every byte, in order, then EOF.
QILOOP_TEST_MODES(Streams, HostileTenThousandSmallWritesThenClose) {
  FdLeakCheck leaks;
  auto [ours, theirs] = unix_pair();
  auto conn = co_await qi::open_connection(ours.release());
  qi::StreamWriter w = conn.second;
  const QByteArray all = pattern_bytes(10000 * 7);
  for (int i = 0; i < 10000; ++i) {
    QByteArrayView piece = QByteArrayView(all).sliced(i * 7, 7);
    if (i % 3 == 0)
      w.writelines({piece.first(3), piece.sliced(3)});
    else
      w.write(piece);
  }
  w.close();
  long long got = -1;
  Peer reader;
  int fd = theirs.get();
  reader.start([&got, fd] { got = read_pattern(fd, 0us, 1000); });
  co_await w.wait_closed();
  reader.join();
  EXPECT_EQ(got, 70000);
}

// --- Large reads hand the buffer over, small ones copy -----------------------------------

// A take of half the allocation or more returns the buffer's own storage
// (no copy), from wherever the live bytes start; a small one copies only
// what it takes and leaves the allocation to the buffer.
TEST(Streams, ReadBufferHandsItsStorageOverToALargeTake) {
  constexpr qsizetype kFrame = 64 * 1024;
  const QByteArray frame = pattern_bytes(kFrame);
  qi::detail::ReadBuffer b;
  b.append(frame);
  const char* storage = b.view().data();
  const qsizetype capacity = b.capacity();
  QByteArray whole = b.take(kFrame);
  EXPECT_EQ(whole.constData(), storage) << "take() of everything copied the bytes";
  EXPECT_EQ(whole, frame);
  EXPECT_TRUE(b.empty());

  // Past a consumed prefix: the small take copies, the large one hands over.
  b.append(frame);
  storage = b.view().data();
  QByteArray head = b.take(100);
  EXPECT_NE(head.constData(), storage);
  EXPECT_LT(head.capacity(), 1024) << "a small take carries the large allocation";
  EXPECT_EQ(head, frame.first(100));
  EXPECT_EQ(b.view().data(), storage + 100) << "the small take moved the buffer";
  QByteArray tail = b.take(kFrame - 100);
  EXPECT_EQ(tail.constData(), storage + 100) << "the offset take copied the bytes";
  EXPECT_EQ(tail, frame.sliced(100));
  EXPECT_TRUE(b.empty());

  // Half taken: the rest moves to a new allocation of the same size, and
  // refilling the buffer leaves the handed-over bytes alone.
  b.append(frame);
  storage = b.view().data();
  QByteArray half = b.take(kFrame / 2 + 1);
  EXPECT_EQ(half.constData(), storage);
  EXPECT_EQ(b.capacity(), capacity);
  EXPECT_EQ(b.view(), frame.sliced(kFrame / 2 + 1));
  b.append(QByteArray(kFrame, 'z'));
  EXPECT_EQ(half, frame.first(kFrame / 2 + 1)) << "the buffer wrote into handed-over bytes";
  EXPECT_EQ(b.take(kFrame / 2 - 1), frame.sliced(kFrame / 2 + 1));
  EXPECT_EQ(b.take(kFrame), QByteArray(kFrame, 'z'));

  // The ping-pong case: 64 bytes read into a 64 KiB room copy 64 bytes, and
  // the buffer keeps its room for the next read.
  qi::detail::ReadBuffer ping;
  std::span<std::byte> room = ping.prepare(kFrame);
  std::memset(room.data(), 'p', 64);
  ping.commit(64);
  storage = ping.view().data();
  QByteArray small = ping.take(64);
  EXPECT_EQ(small, QByteArray(64, 'p'));
  EXPECT_LT(small.capacity(), 1024) << "a 64-byte read carries the 64 KiB allocation";
  EXPECT_GE(ping.capacity(), kFrame);
  EXPECT_EQ(ping.prepare(kFrame).data(), reinterpret_cast<const std::byte*>(storage)) << "the room was not kept";
}

// A hand-over of a huge buffer keeps the shrink rule: the rest goes to a
// small allocation, not one as large as what was handed over.
TEST(Streams, ReadBufferHandOverShrinksTheRest) {
  constexpr qsizetype kBig = 8 << 20;
  qi::detail::ReadBuffer b;
  b.append(QByteArray(kBig, 'x'));
  const char* storage = b.view().data();
  QByteArray out = b.take(kBig - 100);
  EXPECT_EQ(out.constData(), storage);
  EXPECT_EQ(out.size(), kBig - 100);
  EXPECT_LE(b.capacity(), 2 << 20);
  EXPECT_EQ(b.view(), QByteArray(100, 'x'));
}

QILOOP_TEST_MODES_VT(StreamReader, ReadexactlyAcrossArrivalsThenSmallReads) {
  auto& loop = qi::get_running_loop();
  constexpr qsizetype kFrame = 64 * 1024;
  const QByteArray data = pattern_bytes(3 * kFrame);
  qi::StreamReader r = fed(data.first(10000));
  // Arrivals that cut frames anywhere (a frame ends inside the third).
  auto feed = [r, data]() mutable {
    r.feed_data(data.sliced(10000, 30000));
    r.feed_data(data.sliced(40000, 40000));
  };
  loop.call_later(1s, std::move(feed));
  EXPECT_EQ(co_await r.readexactly(kFrame), data.first(kFrame));
  EXPECT_EQ(r.buffered(), static_cast<std::size_t>(80000 - kFrame));
  auto feed_rest = [r, data]() mutable {
    r.feed_data(data.sliced(80000));
    r.feed_eof();
  };
  loop.call_later(1s, std::move(feed_rest));
  EXPECT_EQ(co_await r.readexactly(kFrame), data.sliced(kFrame, kFrame));
  EXPECT_EQ(co_await r.read(3), data.sliced(2 * kFrame, 3)) << "a small read after a large one";
  EXPECT_EQ(co_await r.readexactly(5), data.sliced(2 * kFrame + 3, 5));
  EXPECT_EQ(co_await r.read(), data.sliced(2 * kFrame + 8)) << "read(-1) of the rest";
  EXPECT_TRUE(r.at_eof());
}

QILOOP_TEST_MODES_VT(StreamReader, LargeReadsOfLessEqualOrMoreThanBuffered) {
  constexpr qsizetype kFrame = 64 * 1024;
  const QByteArray data = pattern_bytes(2 * kFrame);
  qi::StreamReader r = fed(data.first(kFrame));
  EXPECT_EQ(co_await r.read(40000), data.first(40000)) << "n < buffered";
  EXPECT_EQ(co_await r.read(kFrame - 40000), data.sliced(40000, kFrame - 40000)) << "n == buffered";
  EXPECT_EQ(r.buffered(), 0u);
  r.feed_data(data.sliced(kFrame));
  EXPECT_EQ(co_await r.read(4 * kFrame), data.sliced(kFrame)) << "n > buffered";
  r.feed_data(data.first(kFrame));
  QByteArray first = co_await r.read(kFrame);
  r.feed_data(QByteArray(kFrame, 'q'));
  EXPECT_EQ(first, data.first(kFrame)) << "the next arrival overwrote what read() returned";
  EXPECT_EQ(co_await r.read(kFrame), QByteArray(kFrame, 'q'));
}

QILOOP_TEST_MODES_VT(StreamReader, ReaduntilAfterAHandOver) {
  QByteArray big(50000, 'b');
  qi::StreamReader r = fed(big + "\nline2\nrest", true);
  EXPECT_EQ(co_await r.read(50001), big + "\n");
  EXPECT_EQ(co_await r.readuntil("\n"), "line2\n");
  EXPECT_EQ(co_await r.read(2), "re");
  EXPECT_EQ(co_await r.readline(), "st");
  EXPECT_TRUE(r.at_eof());
  // A large readuntil hands over too, and what follows stays readable.
  qi::StreamReader two = fed(big + "|" + "tail|", true);
  EXPECT_EQ(co_await two.readuntil("|"), big + "|");
  EXPECT_EQ(co_await two.readuntil("|"), "tail|");
  std::optional<qi::IncompleteReadError> e = co_await caught<qi::IncompleteReadError>(two.readexactly(1));
  QILOOP_CO_ASSERT(ASSERT_TRUE(e));
  EXPECT_EQ(e->partial(), "");
}
