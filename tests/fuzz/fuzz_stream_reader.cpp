// fuzz_stream_reader — qi::StreamReader against a model of its contract
// (<qiloop/net/streams.h>), on the process's loop, with a fake transport
// whose pause/resume the reader drives.
//
// The input: [limit code][script length S][script: S bytes][data: the rest].
// The script is a list of commands (see body()): feed the next piece of the
// data (any size, or one byte repeated), feed EOF, set an
// exception, or start a read — readline, readuntil of one to three
// separators, readexactly(n), read(n) — which is then fed piece by piece
// while it waits, and may be cancelled while it waits. After each step the
// reader must agree with the model: the same result or exception (with the
// same partial() / expected() / consumed()), the same bytes left, the same
// moment of completion. The model is asyncio's streams.py written plainly
// (every scan from the start of the buffer), so it also checks the reader's
// incremental scanning. Invariants checked besides:
// - bytes returned + bytes dropped + bytes left == bytes fed, in order;
// - a read that waits never finds the transport paused (no deadlock); the
//   reader pauses it over 2 * limit and holds it paused only over limit
//   (or at EOF);
// - a cancelled read loses nothing;
// - returned arrays are the caller's own (writing into one changes nothing
//   the stream holds) and are '\0'-terminated, as every QByteArray is;
// - after EOF every read completes in one loop iteration (no hang).
#include "fuzz_kit.h"

#include <qiloop/errors.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <span>
#include <stdexcept>
#include <vector>

namespace {

// What set_exception stores: no read may throw anything else after it.
struct InjectedError : std::runtime_error {
  InjectedError() : std::runtime_error("fuzz: injected stream error") {}
};

// How a read ended.
enum class Kind { kData, kIncomplete, kOverrun, kValueError, kInjected };

struct Outcome {
  Kind kind = Kind::kData;
  QByteArray bytes;                   // kData: the result; kIncomplete: partial()
  qsizetype consumed = 0;             // kOverrun: consumed()
  std::optional<qsizetype> expected;  // kIncomplete: expected()
};

struct Op {
  enum Type { kReadline, kReaduntil, kReadexactly, kRead } type = kRead;
  std::vector<QByteArray> seps;  // kReaduntil
  qsizetype n = 0;               // kReadexactly, kRead
};

// The contract, plainly: a buffer, EOF, an exception.
struct Model {
  QByteArray buf;
  bool eof = false;
  bool failed = false;
  qsizetype limit = 0;

  QByteArray take(qsizetype n) {
    QByteArray out = buf.first(n);
    buf.remove(0, n);
    return out;
  }

  // What op gives on the bytes buffered now, taking them; nullopt while it
  // must wait for more.
  std::optional<Outcome> attempt(const Op& op) {
    if (failed) return Outcome{Kind::kInjected, {}, 0, {}};
    switch (op.type) {
      case Op::kRead:
        if (op.n == 0) return Outcome{};
        if (op.n < 0) {
          if (!eof) return std::nullopt;
          return Outcome{Kind::kData, take(buf.size()), 0, {}};
        }
        if (buf.isEmpty() && !eof) return std::nullopt;
        return Outcome{Kind::kData, take(std::min(op.n, buf.size())), 0, {}};
      case Op::kReadexactly:
        if (op.n == 0) return Outcome{};
        if (buf.size() >= op.n) return Outcome{Kind::kData, take(op.n), 0, {}};
        if (!eof) return std::nullopt;
        return Outcome{Kind::kIncomplete, take(buf.size()), 0, op.n};
      case Op::kReadline:
      case Op::kReaduntil:
        return until(op);
    }
    return std::nullopt;
  }

  std::optional<Outcome> until(const Op& op) {
    const bool line = op.type == Op::kReadline;
    static const std::vector<QByteArray> newline{QByteArray("\n")};
    const std::vector<QByteArray>& seps = line ? newline : op.seps;
    // The shortest chunk ending with a separator; on a tie the shortest
    // separator.
    qsizetype start = -1, end = -1, len = 0, max_len = 0;
    for (const QByteArray& s : seps) {
      max_len = std::max(max_len, s.size());
      const qsizetype i = buf.indexOf(s);
      if (i < 0) continue;
      const qsizetype e = i + s.size();
      if (end < 0 || e < end || (e == end && s.size() < len)) {
        start = i;
        end = e;
        len = s.size();
      }
    }
    if (end >= 0) {
      if (start > limit) {
        if (!line) return Outcome{Kind::kOverrun, {}, start, {}};
        take(end);
        return Outcome{Kind::kValueError, {}, 0, {}};
      }
      return Outcome{Kind::kData, take(end), 0, {}};
    }
    const qsizetype over = std::max<qsizetype>(0, buf.size() + 1 - max_len);
    if (over > limit) {
      if (!line) return Outcome{Kind::kOverrun, {}, over, {}};
      buf.clear();
      return Outcome{Kind::kValueError, {}, 0, {}};
    }
    if (!eof) return std::nullopt;
    if (line) return Outcome{Kind::kData, take(buf.size()), 0, {}};
    return Outcome{Kind::kIncomplete, take(buf.size()), 0, std::nullopt};
  }
};

// Runs op on the reader, its ending as an Outcome; a cancellation escapes.
qi::Coro<Outcome> perform(qi::StreamReader r, Op op) {
  Outcome out;
  try {
    switch (op.type) {
      case Op::kReadline:
        out.bytes = co_await r.readline();
        break;
      case Op::kReaduntil: {
        std::vector<QByteArrayView> views(op.seps.begin(), op.seps.end());
        out.bytes = co_await r.readuntil(std::span<const QByteArrayView>(views));
        break;
      }
      case Op::kReadexactly:
        out.bytes = co_await r.readexactly(op.n);
        break;
      case Op::kRead:
        out.bytes = co_await r.read(op.n);
        break;
    }
  } catch (const qi::IncompleteReadError& e) {
    out.kind = Kind::kIncomplete;
    out.bytes = e.partial();
    out.expected = e.expected();
  } catch (const qi::LimitOverrunError& e) {
    out.kind = Kind::kOverrun;
    out.consumed = e.consumed();
  } catch (const qi::ValueError& e) {
    FUZZ_CHECK(std::strlen(e.what()) > 0, "a ValueError without a message");
    out.kind = Kind::kValueError;
  } catch (const InjectedError&) {
    out.kind = Kind::kInjected;
  }
  co_return out;
}

// The array is the caller's: '\0'-terminated, and writable without touching
// what the stream still holds (the next reads are checked against the model).
void check_owned(QByteArray& bytes) {
  FUZZ_CHECK(bytes.constData()[bytes.size()] == '\0', "a returned QByteArray is not '\\0'-terminated");
  if (!bytes.isEmpty()) {
    bytes.data()[0] ^= 0x5a;
    bytes.data()[bytes.size() - 1] ^= 0x33;
  }
}

void check_same(Outcome got, const Outcome& want) {
  FUZZ_CHECK(got.kind == want.kind, "the read ended differently from the model");
  switch (want.kind) {
    case Kind::kData:
      FUZZ_CHECK(got.bytes == want.bytes, "the read returned other bytes than the model");
      check_owned(got.bytes);
      break;
    case Kind::kIncomplete:
      FUZZ_CHECK(got.bytes == want.bytes, "IncompleteReadError::partial() differs from the bytes left");
      FUZZ_CHECK(got.expected == want.expected, "IncompleteReadError::expected() differs");
      check_owned(got.bytes);
      break;
    case Kind::kOverrun:
      FUZZ_CHECK(got.consumed == want.consumed, "LimitOverrunError::consumed() differs from the model");
      break;
    case Kind::kValueError:
    case Kind::kInjected:
      break;
  }
}

qsizetype decode_limit(std::uint8_t code) {
  if (code < 128) return code % 32 + 1;                 // tiny: every read overruns sometimes
  if (code < 192) return static_cast<qsizetype>(code - 128) * 16 + 33;  // up to ~1 KiB
  if (code < 224) return static_cast<qsizetype>(qi::kDefaultStreamLimit);
  return qsizetype{1} << (code - 224);                  // 1 B .. 2 GiB
}

class Session {
 public:
  Session(fuzz::Input& in, qsizetype limit) : script_(in.split(in.u8())), data_(in), reader_(limit) {
    model_.limit = limit;
    reader_.set_transport(&transport_);
  }
  ~Session() { reader_.set_transport(nullptr); }

  qi::Coro<void> play() {
    while (!script_.empty()) {
      const std::uint8_t cmd = script_.u8();
      const std::uint8_t arg = cmd >> 3;
      switch (cmd & 7) {
        case 0:
          feed(data_.take(std::size_t{script_.u8()} + 1));
          break;
        case 1:
          feed_repeated(script_.u8());
          break;
        case 2:
        case 3:
        case 4:
        case 5: {
          Op op = make_op(cmd & 7);
          // One read in eight is cancelled after 0..3 pieces, if still waiting.
          const int cancel_after = arg < 4 ? arg : -1;
          co_await read(std::move(op), cancel_after);
          break;
        }
        case 6:
          feed_eof();
          break;
        case 7:
          if (arg == 31) {
            reader_.set_exception(std::make_exception_ptr(InjectedError()));
            model_.failed = true;
            FUZZ_CHECK(reader_.exception() != nullptr, "exception() is null after set_exception");
          }
          break;
      }
      check_quiet();
    }
    co_await finish();
  }

 private:
  Op make_op(int kind) {
    Op op;
    switch (kind) {
      case 2:
        op.type = Op::kReadline;
        break;
      case 3: {
        // [count - 1] then, per separator, [length - 1][its bytes]: 1..3
        // separators of 1..4 bytes.
        op.type = Op::kReaduntil;
        const int count = script_.u8() % 3 + 1;
        for (int i = 0; i < count; ++i) {
          const int length = script_.u8() % 4 + 1;
          QByteArray sep;
          for (int k = 0; k < length; ++k) sep.append(static_cast<char>(script_.u8()));
          op.seps.push_back(sep);
        }
        break;
      }
      case 4:
        op.type = Op::kReadexactly;
        op.n = script_.u8() & 1 ? qsizetype{script_.u16()} << 4 : script_.u8();
        break;
      case 5:
        op.type = Op::kRead;
        op.n = qsizetype{script_.u8()} - 1;  // -1: to EOF
        break;
    }
    return op;
  }

  bool reading_to_eof_pending() const { return pending_ && pending_->type == Op::kRead && pending_->n < 0; }

  void feed(QByteArrayView chunk) {
    if (chunk.isEmpty()) return;
    if (model_.eof) {
      bool refused = false;
      try {
        reader_.feed_data(chunk);
      } catch (const qi::RuntimeError&) {
        refused = true;
      }
      FUZZ_CHECK(refused, "feed_data after feed_eof was accepted");
      return;
    }
    reader_.feed_data(chunk);
    model_.buf.append(chunk);
    FUZZ_CHECK(static_cast<qsizetype>(reader_.buffered()) == model_.buf.size(), "buffered() after feed_data");
    if (!reading_to_eof_pending() && model_.buf.size() > 2 * model_.limit)
      FUZZ_CHECK(!transport_.is_reading(), "more than 2 * limit buffered and the transport still reading");
  }

  // One byte of the data, repeated: 64 B .. 16 KiB, or 1.25 MiB for code
  // 255 (the buffer's large-capacity paths, over 1 MiB; costly, so 3 MiB
  // per input at most).
  void feed_repeated(std::uint8_t code) {
    const qsizetype count = code == 255 ? qsizetype{5} << 18 : (qsizetype{code} + 1) * 64;
    if (big_fed_ + count > 3 * 1024 * 1024) return;
    big_fed_ += count;
    const char byte = static_cast<char>(data_.u8());
    feed(QByteArray(count, byte));
  }

  void feed_eof() {
    reader_.feed_eof();
    model_.eof = true;
  }

  // Starts op as a task; while the model says it waits, feeds the next
  // piece (or EOF once the data is used up); cancels it after
  // `cancel_after` pieces if it still waits.
  qi::Coro<void> read(Op op, int cancel_after) {
    pending_ = op;
    qi::Task<Outcome> task = fuzz::loop().create_task(perform(reader_, op));
    co_await fuzz::yield();
    for (int pieces = 0;; ++pieces) {
      std::optional<Outcome> want = model_.attempt(op);
      if (want) {
        FUZZ_CHECK(task.done(), "the model's read completed, the reader's still waits");
        check_same(task.result(), *want);
        break;
      }
      FUZZ_CHECK(!task.done(), "the reader's read completed, the model's waits for more");
      FUZZ_CHECK(!model_.eof, "a read still waits after EOF");
      FUZZ_CHECK(transport_.is_reading(), "a read waits while the transport is paused: it would wait for ever");
      if (pieces == cancel_after) {
        task.cancel();
        co_await fuzz::yield();
        FUZZ_CHECK(task.cancelled(), "a read cancelled while waiting did not end cancelled");
        break;
      }
      if (data_.empty()) {
        feed_eof();
      } else {
        // The script chooses the piece; once it is used up, the rest at once.
        const std::size_t size = script_.empty() ? data_.size() : std::size_t{script_.u8()} + 1;
        feed(data_.take(size));
      }
      co_await fuzz::yield();
    }
    pending_.reset();
  }

  void check_quiet() {
    FUZZ_CHECK(static_cast<qsizetype>(reader_.buffered()) == model_.buf.size(), "buffered() differs from the model");
    FUZZ_CHECK(reader_.at_eof() == (model_.eof && model_.buf.isEmpty()), "at_eof() differs from the model");
    if (!transport_.is_reading())
      FUZZ_CHECK(model_.buf.size() > model_.limit || model_.eof,
                 "the transport stays paused with limit or fewer bytes buffered");
  }

  // The rest of the data and EOF: read(-1) gives what the model holds, and
  // everything fed is accounted for.
  qi::Coro<void> finish() {
    if (!model_.eof) {
      feed(data_.take(data_.size()));
      feed_eof();
    }
    Op all;
    all.n = -1;
    co_await read(all, -1);
    check_quiet();
    if (!model_.failed) FUZZ_CHECK(reader_.at_eof(), "not at EOF after read(-1)");
  }

  fuzz::Input script_;
  fuzz::Input data_;
  fuzz::FakeTransport transport_;
  qi::StreamReader reader_;
  Model model_;
  std::optional<Op> pending_;
  qsizetype big_fed_ = 0;
};

qi::Coro<void> body(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  Session session(in, decode_limit(in.u8()));
  co_await session.play();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::run(body(data, size));
  return 0;
}
