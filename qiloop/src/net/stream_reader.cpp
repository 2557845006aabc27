// net/stream_reader.cpp — qi::StreamReader (asyncio's StreamReader,
// streams.py). The contract is in <qiloop/net/streams.h>.
#include "net/stream_cores.h"

#include <qiloop/errors.h>

#include <absl/container/inlined_vector.h>

#include <algorithm>
#include <cstring>  // memmem (POSIX 2024; glibc, the BSDs, macOS)
#include <limits>
#include <string>
#include <utility>

namespace qi::detail {

namespace {

// What get_buffer offers the transport to read into: one 64 KiB recv per
// readiness serves a 64 KiB frame in one piece.
constexpr qsizetype kReadRoom = 64 * 1024;
// An emptied buffer larger than this gives its memory back: only read(-1),
// a large readexactly or a large limit grow it past the 2 * limit + room
// that pausing keeps a stream under, and it should not stay that big.
constexpr qsizetype kKeepCapacity = 1024 * 1024;

}  // namespace

// --- ReadBuffer ---------------------------------------------------------------------------

QByteArray ReadBuffer::take(qsizetype n) {
  if (n == 0 || 2 * n < capacity_) {
    QByteArray out(store_.constData() + begin_, n);
    drop(n);
    if (!empty() && oversized(size())) reallocate(kept_capacity(size()));
    return out;
  }
  const qsizetype from = begin_;
  begin_ += n;
  QByteArray out;
  if (empty()) {
    out = std::exchange(store_, QByteArray());
    capacity_ = begin_ = end_ = 0;
  } else {
    out = reallocate(kept_capacity(size()));
  }
  // Neither call moves a byte: truncating writes the terminator after the
  // taken bytes (the rest has moved out already), and Qt removes a prefix
  // by advancing the array's start.
  out.truncate(from + n);
  out.remove(0, from);
  return out;
}

bool ReadBuffer::oversized(qsizetype needed) const noexcept {
  return capacity_ > kKeepCapacity && needed <= capacity_ / 4;
}

qsizetype ReadBuffer::kept_capacity(qsizetype live) const noexcept {
  return oversized(live) ? std::max(kKeepCapacity, 2 * live) : capacity_;
}

QByteArray ReadBuffer::reallocate(qsizetype capacity) {
  const qsizetype live = size();
  QByteArray fresh(capacity, Qt::Uninitialized);
  if (live > 0) std::memcpy(fresh.data(), store_.constData() + begin_, static_cast<std::size_t>(live));
  capacity_ = capacity;
  begin_ = 0;
  end_ = live;
  return std::exchange(store_, std::move(fresh));
}

void ReadBuffer::drop(qsizetype n) noexcept {
  begin_ += n;
  if (begin_ != end_) return;
  begin_ = end_ = 0;
  if (capacity_ > kKeepCapacity) {
    store_ = QByteArray();
    capacity_ = 0;
  }
}

std::span<std::byte> ReadBuffer::prepare(qsizetype room) {
  if (capacity_ - end_ < room) {
    const qsizetype live = size();
    if (oversized(live + room)) {
      reallocate(kept_capacity(live + room));
    } else if (live + room <= capacity_ && live <= capacity_ / 2) {
      std::memmove(store_.data(), store_.constData() + begin_, static_cast<std::size_t>(live));
      begin_ = 0;
      end_ = live;
    } else {
      reallocate(std::max(capacity_ * 2, live + room));
    }
  }
  return {reinterpret_cast<std::byte*>(store_.data() + end_), static_cast<std::size_t>(capacity_ - end_)};
}

void ReadBuffer::append(QByteArrayView data) {
  std::span<std::byte> room = prepare(data.size());
  std::memcpy(room.data(), data.data(), static_cast<std::size_t>(data.size()));
  commit(data.size());
}

// --- ReaderCore ---------------------------------------------------------------------------

qsizetype ReaderCore::checked_limit(std::size_t limit) {
  const auto most = static_cast<std::size_t>(std::numeric_limits<qsizetype>::max() / 4);
  if (limit == 0 || limit > most)
    throw qi::ValueError("qi::StreamReader: the limit must be from 1 to " + std::to_string(most) + " bytes, got " +
                         std::to_string(limit) + " (the default is qi::kDefaultStreamLimit, 64 KiB)");
  return static_cast<qsizetype>(limit);
}

ReaderCore::ReaderCore(std::size_t lim) : limit(checked_limit(lim)) {}

void ReaderCore::feed_data(QByteArrayView data) {
  if (eof)
    throw qi::RuntimeError("qi::StreamReader::feed_data after feed_eof(): the stream has ended; feed no more data");
  if (data.isEmpty()) return;
  buffer.append(data);
  data_arrived();
}

std::span<std::byte> ReaderCore::get_buffer() { return buffer.prepare(kReadRoom); }

void ReaderCore::buffer_updated(std::size_t n) {
  buffer.commit(static_cast<qsizetype>(n));
  data_arrived();
}

void ReaderCore::data_arrived() {
  wake_waiter(nullptr);
  if (transport && !paused && !reading_to_eof && buffer.size() > 2 * limit) {
    transport->pause_reading();
    paused = true;
  }
}

void ReaderCore::feed_eof() {
  eof = true;
  wake_waiter(nullptr);
}

void ReaderCore::set_exception(std::exception_ptr error) {
  exception = error;
  wake_waiter(std::move(error));
}

void ReaderCore::wake_waiter(std::exception_ptr error) {
  WaiterQueue::Entry* waiter = waiters_.front();
  if (!waiter) return;
  static_cast<ErrorWaiter*>(waiter)->wake_with(std::move(error));
  waiter->unlink();
}

void ReaderCore::close_transport_for(const char* owner) noexcept {
  if (!transport || transport->is_closing()) return;
  try {
    transport->close();
  } catch (...) {
    // A TLS close() flushes through the socket transport, which can throw
    // (add_writer failing): reported, as the loop reports any callback's.
    qi::ExceptionContext context;
    context.message = std::string("closing the transport of the last ") + owner + " handle failed";
    context.exception = std::current_exception();
    if (loop) loop->call_exception_handler(context);
  }
}

void ReaderCore::maybe_resume_transport() {
  if (paused && buffer.size() <= limit) {
    paused = false;
    if (transport) transport->resume_reading();
  }
}

Coro<void> ReaderCore::wait_for_data(const char* api) {
  // Two readers waiting could not know which one the next bytes are for.
  if (!waiters_.empty())
    throw qi::RuntimeError(std::string("qi::StreamReader::") + api +
                           "() called while another coroutine is already waiting for incoming data; read a "
                           "stream from one task at a time");
  // Waiting while paused would wait for ever (a readexactly(n) with n over
  // the pause threshold).
  if (paused) {
    paused = false;
    if (transport) transport->resume_reading();
  }
  ErrorWaiter waiter(waiters_, "qi::StreamReader");
  co_await waiter;
  waiter.rethrow_error();
}

namespace {

// readuntil's separators, shortest first (on a tie the shortest wins).
struct Separators {
  absl::InlinedVector<QByteArray, 2> list;
  qsizetype min_len = 0;
  qsizetype max_len = 0;
};

Separators make_separators(std::span<const QByteArrayView> given) {
  if (given.empty())
    throw qi::ValueError("qi::StreamReader::readuntil: the separator list is empty; give at least one separator");
  Separators s;
  for (QByteArrayView v : given) {
    if (v.isEmpty())
      throw qi::ValueError("qi::StreamReader::readuntil: a separator is empty; separators must be at least one byte");
    s.list.push_back(v.toByteArray());
  }
  std::stable_sort(s.list.begin(), s.list.end(), [](const QByteArray& a, const QByteArray& b) { return a.size() < b.size(); });
  s.min_len = s.list.front().size();
  s.max_len = s.list.back().size();
  return s;
}

const Separators& newline() {
  thread_local const Separators nl{{QByteArray::fromRawData("\n", 1)}, 1, 1};
  return nl;
}

// The first `needle` in hay at or after `from`, or -1. Usually the
// separator's first byte is rare ("\r" of "\r\n"): memchr finds it with
// vector instructions and one comparison settles it. When that byte keeps
// appearing without the rest (a peer sending "\r\r\r…"), a memcmp per hit
// is a call per byte, so after kMisses false hits the rest goes to memmem,
// linear with no call per candidate (glibc's memmem steps one byte at a time
// through short needles, slower than memchr on the usual case; bench_net's
// readuntil rows measure both).
qsizetype find(QByteArrayView hay, const QByteArray& needle, qsizetype from) {
  constexpr int kMisses = 8;
  const char* const base = hay.data();
  const char* const end = base + hay.size();
  const std::size_t m = static_cast<std::size_t>(needle.size());
  const char* p = base + std::min(from, hay.size());
  for (int misses = 0; static_cast<std::size_t>(end - p) >= m; ++misses) {
    if (misses == kMisses) {
      const void* q = ::memmem(p, static_cast<std::size_t>(end - p), needle.data(), m);
      return q ? static_cast<const char*>(q) - base : -1;
    }
    // A hit further than end - m cannot hold the whole needle.
    const auto* q = static_cast<const char*>(std::memchr(p, needle[0], static_cast<std::size_t>(end - p) - m + 1));
    if (!q) return -1;
    if (std::equal(needle.begin() + 1, needle.end(), q + 1)) return q - base;
    p = q + 1;
  }
  return -1;
}

// The match that ends first in buf at or after `from`, as [start, end):
// asyncio's loop over the separators, each found from `from`, the earliest
// end kept (on a tie the shorter separator, then the earlier given).
// Several separators are searched window by window, the window doubling
// from 1 KiB: a match inside a window ends before any match that is not,
// so the first window holding one has the answer, and a read costs about
// its chunk. Searched each through the whole buffer, a separator of the
// list that does not occur costs all the buffered bytes on every read:
// readuntil("\r\n\r\n", "\n\n") over a peer's pipelined "\r\n\r\n"s is
// quadratic in the buffer (192 KiB of them: 4.5 s in the dev build; 8.4 s
// in asyncio, whose search does the same). One separator needs no window:
// its first occurrence is the answer.
bool first_match(QByteArrayView buf, const Separators& seps, qsizetype from, qsizetype& match_start,
                 qsizetype& match_end) {
  constexpr qsizetype kFirstWindow = 1024;
  const qsizetype buflen = buf.size();
  qsizetype window = seps.list.size() == 1 ? buflen : std::max(kFirstWindow, 2 * seps.max_len);
  for (;;) {
    const qsizetype stop = buflen - from > window ? from + window : buflen;
    qsizetype start = -1;
    qsizetype end = -1;
    for (const QByteArray& sep : seps.list) {
      // A match ending before the best one lies within its first end - 1 bytes.
      const qsizetype i = find(buf.first(end < 0 ? stop : end - 1), sep, from);
      if (i >= 0) {
        start = i;
        end = i + sep.size();
      }
    }
    if (end >= 0) {
      match_start = start;
      match_end = end;
      return true;
    }
    if (stop == buflen) return false;
    // A separator not inside this window starts at stop + 1 - max_len or later.
    from = std::max(from, stop + 1 - seps.max_len);
    window *= 2;
  }
}

// readline(), or readuntil(): at EOF the one returns the partial line and
// the other throws IncompleteReadError; past the limit the one discards the
// line and throws ValueError, the other throws LimitOverrunError and keeps it.
enum class Until : bool { kSeparator, kLine };

Coro<QByteArray> read_until(std::shared_ptr<ReaderCore> r, Separators seps, Until mode) {
  r->throw_if_failed();
  // `offset`: the leading bytes known to hold no separator (asyncio's), so
  // each arrival is scanned from where the last scan stopped.
  qsizetype offset = 0;
  qsizetype match_start = -1;
  qsizetype match_end = -1;
  for (;;) {
    const QByteArrayView buf = r->buffer.view();
    const qsizetype buflen = buf.size();
    if (buflen - offset >= seps.min_len) {
      if (first_match(buf, seps, offset, match_start, match_end)) break;
      // A separator may still end in the next bytes: rescan its head then.
      offset = std::max<qsizetype>(0, buflen + 1 - seps.max_len);
      if (offset > r->limit) {
        LimitOverrunError overrun("Separator is not found, and chunk exceed the limit (" + std::to_string(r->limit) +
                                      " bytes)",
                                  offset);
        if (mode == Until::kSeparator) throw overrun;
        // readline: nothing of this line is kept.
        r->buffer.clear();
        r->maybe_resume_transport();
        throw qi::ValueError(overrun.what());
      }
    }
    // The last bytes may have completed a separator: EOF is checked after.
    if (r->eof) {
      QByteArray rest = r->buffer.take(buflen);
      if (mode == Until::kLine) co_return rest;
      throw IncompleteReadError(std::move(rest), std::nullopt);
    }
    co_await r->wait_for_data(mode == Until::kLine ? "readline" : "readuntil");
  }
  if (match_start > r->limit) {
    std::string message =
        "Separator is found, but chunk is longer than limit (" + std::to_string(r->limit) + " bytes)";
    if (mode == Until::kSeparator) throw LimitOverrunError(message, match_start);
    // readline: the line goes, up to and with its separator.
    r->buffer.drop(match_end);
    r->maybe_resume_transport();
    throw qi::ValueError(message);
  }
  QByteArray chunk = r->buffer.take(match_end);
  r->maybe_resume_transport();
  co_return chunk;
}

// Clears the flag however read(-1) ends.
struct ReadingToEof {
  explicit ReadingToEof(ReaderCore& r) : r_(r) { r_.reading_to_eof = true; }
  ~ReadingToEof() { r_.reading_to_eof = false; }
  ReaderCore& r_;
};

Coro<QByteArray> read_some(std::shared_ptr<ReaderCore> r, qsizetype n) {
  r->throw_if_failed();
  if (n == 0) co_return QByteArray();
  if (n < 0) {
    // Collected in the buffer rather than in a local list (asyncio's), so a
    // cancelled read(-1) leaves every byte to the next read.
    ReadingToEof flag(*r);
    while (!r->eof) co_await r->wait_for_data("read");
    QByteArray all = r->buffer.take(r->buffer.size());
    r->maybe_resume_transport();
    co_return all;
  }
  if (r->buffer.empty() && !r->eof) co_await r->wait_for_data("read");
  QByteArray data = r->buffer.take(std::min(n, r->buffer.size()));
  r->maybe_resume_transport();
  co_return data;
}

Coro<QByteArray> read_exactly(std::shared_ptr<ReaderCore> r, qsizetype n) {
  r->throw_if_failed();
  if (n == 0) co_return QByteArray();
  while (r->buffer.size() < n) {
    if (r->eof) throw IncompleteReadError(r->buffer.take(r->buffer.size()), n);
    co_await r->wait_for_data("readexactly");
  }
  QByteArray data = r->buffer.take(n);
  r->maybe_resume_transport();
  co_return data;
}

Coro<std::optional<QByteArray>> next_line_of(std::shared_ptr<ReaderCore> r) {
  QByteArray line = co_await read_until(std::move(r), newline(), Until::kLine);
  if (line.isEmpty()) co_return std::nullopt;
  co_return line;
}

}  // namespace

}  // namespace qi::detail

namespace qi {

using detail::ReaderCore;

StreamReader::StreamReader(std::size_t limit) : core_(std::make_shared<ReaderCore>(limit)) {}
StreamReader::StreamReader(std::shared_ptr<ReaderCore> core) noexcept : core_(std::move(core)) {}

const std::shared_ptr<ReaderCore>& StreamReader::core() const {
  if (!core_)
    throw qi::RuntimeError("qi::StreamReader: an empty handle (moved from); assign it a reader (a copy, or one "
                           "from open_connection or a server) before using it");
  return core_;
}

Coro<QByteArray> StreamReader::read(qsizetype n) { return detail::read_some(core(), n); }

Coro<QByteArray> StreamReader::readexactly(qsizetype n) {
  if (n < 0)
    throw qi::ValueError("qi::StreamReader::readexactly: n is " + std::to_string(n) + "; it must be >= 0");
  return detail::read_exactly(core(), n);
}

Coro<QByteArray> StreamReader::readline() {
  return detail::read_until(core(), detail::newline(), detail::Until::kLine);
}

Coro<QByteArray> StreamReader::readuntil(QByteArrayView separator) {
  return readuntil(std::span<const QByteArrayView>(&separator, 1));
}

Coro<QByteArray> StreamReader::readuntil(std::span<const QByteArrayView> separators) {
  const std::shared_ptr<ReaderCore>& c = core();
  return detail::read_until(c, detail::make_separators(separators), detail::Until::kSeparator);
}

Coro<std::optional<QByteArray>> StreamReader::next_line() { return detail::next_line_of(core()); }

bool StreamReader::at_eof() const { return core()->eof && core_->buffer.empty(); }
std::exception_ptr StreamReader::exception() const { return core()->exception; }
std::size_t StreamReader::limit() const { return static_cast<std::size_t>(core()->limit); }
std::size_t StreamReader::buffered() const { return static_cast<std::size_t>(core()->buffer.size()); }

void StreamReader::feed_data(QByteArrayView data) { core()->feed_data(data); }
void StreamReader::feed_eof() { core()->feed_eof(); }
void StreamReader::set_exception(std::exception_ptr error) { core()->set_exception(std::move(error)); }
void StreamReader::set_transport(Transport* transport) {
  core()->transport = transport;
  if (!transport) core_->paused = false;
}

}  // namespace qi
