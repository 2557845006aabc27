// fuzz_framed_decoder — framed::FrameReader (python-free-examples/framed),
// the length-prefixed decoder, against a model of framed.h's contract.
// Decoding is reachable only through a stream, so the bytes go through a
// qi::StreamReader (with a fake transport, so that its flow control runs
// too) in pieces the input chooses.
//
// The input: [max_frame code][stream limit code][script length S]
//            [script: S bytes][data: the rest].
// Script commands (low 2 bits the kind, the rest its argument): feed the
// next piece of the data; next() or read() — fed piece by piece while it
// waits, and cancelled after 0..3 pieces for one read in eight; EOF.
// Checked after every step:
// - each frame is the model's: payloads in order, FrameTooLargeError with
//   the announced size() for an oversize prefix (taken, the stream goes on
//   after it), IncompleteReadError whose partial() is the frame's bytes
//   (prefix included) and expected() the frame's size (4 inside a prefix),
//   std::nullopt from next() only at EOF between frames;
// - a read cancelled while waiting loses nothing (a prefix already taken
//   is kept for the next read);
// - the stream holds what the model holds; a waiting read never finds the
//   transport paused; after EOF every read ends in one loop iteration.
#include "fuzz_kit.h"

#include "framed.h"

#include <QtCore/QtEndian>

#include <optional>

namespace {

enum class Kind { kFrame, kEnd, kTooLarge, kIncomplete };

struct Outcome {
  Kind kind = Kind::kFrame;
  QByteArray bytes;       // kFrame: the payload; kIncomplete: partial()
  std::size_t size = 0;   // kTooLarge: size()
  qsizetype expected = 0; // kIncomplete: expected()
};

// framed.h's contract on a plain buffer.
struct Model {
  QByteArray buf;
  bool eof = false;
  std::size_t max_frame = 0;
  std::optional<std::uint32_t> pending;  // a prefix taken, its payload not yet

  QByteArray take(qsizetype n) {
    QByteArray out = buf.first(n);
    buf.remove(0, n);
    return out;
  }

  // What a read gives now, taking its bytes; nullopt while it waits. A
  // prefix is taken as soon as it is complete (the reader's does too).
  std::optional<Outcome> attempt(bool eof_is_end) {
    if (!pending) {
      if (buf.size() < 4) {
        if (!eof) return std::nullopt;
        if (eof_is_end && buf.isEmpty()) return Outcome{Kind::kEnd, {}, 0, 0};
        return Outcome{Kind::kIncomplete, take(buf.size()), 0, 4};
      }
      const auto size = qFromLittleEndian<std::uint32_t>(take(4).constData());
      if (size > max_frame) return Outcome{Kind::kTooLarge, {}, size, 0};
      pending = size;
    }
    const std::uint32_t size = *pending;
    if (buf.size() >= static_cast<qsizetype>(size)) {
      pending.reset();
      return Outcome{Kind::kFrame, take(size), 0, 0};
    }
    if (!eof) return std::nullopt;
    pending.reset();
    QByteArray received(4, Qt::Uninitialized);
    qToLittleEndian(size, received.data());
    received += take(buf.size());
    return Outcome{Kind::kIncomplete, received, 0, static_cast<qsizetype>(4 + std::size_t{size})};
  }
};

qi::Coro<Outcome> perform(framed::FrameReader& frames, bool eof_is_end) {
  Outcome out;
  try {
    if (eof_is_end) {
      std::optional<QByteArray> frame = co_await frames.next();
      if (frame) {
        out.bytes = std::move(*frame);
      } else {
        out.kind = Kind::kEnd;
      }
    } else {
      out.bytes = co_await frames.read();
    }
  } catch (const framed::FrameTooLargeError& e) {
    FUZZ_CHECK(e.max_frame() == frames.max_frame(), "FrameTooLargeError::max_frame() is not the reader's");
    out.kind = Kind::kTooLarge;
    out.size = e.size();
  } catch (const qi::IncompleteReadError& e) {
    out.kind = Kind::kIncomplete;
    out.bytes = e.partial();
    FUZZ_CHECK(e.expected().has_value(), "a frame's IncompleteReadError without expected()");
    out.expected = *e.expected();
  }
  co_return out;
}

void check_same(const Outcome& got, const Outcome& want) {
  FUZZ_CHECK(got.kind == want.kind, "the frame read ended differently from the model");
  FUZZ_CHECK(got.bytes == want.bytes, "the payload (or partial()) differs from the model");
  FUZZ_CHECK(got.size == want.size, "FrameTooLargeError::size() differs from the prefix");
  FUZZ_CHECK(got.expected == want.expected, "IncompleteReadError::expected() differs from the model");
}

std::size_t decode_max_frame(std::uint8_t code) {
  if (code < 128) return code % 64;                   // 0: only empty frames
  if (code < 192) return static_cast<std::size_t>(code - 128) * 64;
  if (code < 255) return framed::kDefaultMaxFrame;
  return framed::kLargestFrame;
}

class Session {
 public:
  Session(fuzz::Input& in, std::size_t max_frame, std::size_t limit)
      : stream_(limit), frames_(stream_, max_frame), script_(in.split(in.u8())), data_(in) {
    model_.max_frame = max_frame;
    stream_.set_transport(&transport_);
  }
  ~Session() { stream_.set_transport(nullptr); }

  qi::Coro<void> play() {
    while (!script_.empty()) {
      const std::uint8_t cmd = script_.u8();
      const int arg = cmd >> 2;
      switch (cmd & 3) {
        case 0:
          feed(data_.take(std::size_t{script_.u8()} + 1));
          break;
        case 1:
        case 2:
          co_await read((cmd & 3) == 1, arg < 4 ? arg : -1);
          break;
        case 3:
          feed_eof();
          break;
      }
      check_quiet();
    }
    // The rest, EOF, then frames until the end: every byte accounted for.
    if (!model_.eof) {
      feed(data_.take(data_.size()));
      feed_eof();
    }
    for (;;) {
      const Kind k = co_await read(true, -1);
      if (k == Kind::kEnd || k == Kind::kIncomplete) break;
    }
    check_quiet();
    FUZZ_CHECK(stream_.at_eof(), "bytes left after the last frame");
  }

 private:
  void feed(QByteArrayView piece) {
    if (piece.isEmpty() || model_.eof) return;
    stream_.feed_data(piece);
    model_.buf.append(piece);
  }

  void feed_eof() {
    stream_.feed_eof();
    model_.eof = true;
  }

  // One read (next() or read()) as a task, fed while the model says it
  // waits; how it ended.
  qi::Coro<Kind> read(bool eof_is_end, int cancel_after) {
    qi::Task<Outcome> task = fuzz::loop().create_task(perform(frames_, eof_is_end));
    co_await fuzz::yield();
    for (int pieces = 0;; ++pieces) {
      std::optional<Outcome> want = model_.attempt(eof_is_end);
      if (want) {
        FUZZ_CHECK(task.done(), "the model's frame is complete, the reader still waits");
        check_same(task.result(), *want);
        co_return want->kind;
      }
      FUZZ_CHECK(!task.done(), "the reader's frame completed, the model waits for more");
      FUZZ_CHECK(!model_.eof, "a frame read still waits after EOF");
      FUZZ_CHECK(transport_.is_reading(), "a frame read waits while the transport is paused");
      if (pieces == cancel_after) {
        task.cancel();
        co_await fuzz::yield();
        FUZZ_CHECK(task.cancelled(), "a frame read cancelled while waiting did not end cancelled");
        co_return Kind::kFrame;
      }
      if (data_.empty()) {
        feed_eof();
      } else {
        const std::size_t size = script_.empty() ? data_.size() : std::size_t{script_.u8()} + 1;
        feed(data_.take(size));
      }
      co_await fuzz::yield();
    }
  }

  void check_quiet() {
    FUZZ_CHECK(static_cast<qsizetype>(stream_.buffered()) == model_.buf.size(),
               "the stream holds other bytes than the model");
  }

  qi::StreamReader stream_;
  framed::FrameReader frames_;
  fuzz::Input script_;
  fuzz::Input data_;
  fuzz::FakeTransport transport_;
  Model model_;
};

qi::Coro<void> body(const std::uint8_t* data, std::size_t size) {
  fuzz::Input in(data, size);
  const std::size_t max_frame = decode_max_frame(in.u8());
  const std::size_t limit = std::size_t{in.u8()} % 64 + 1;
  Session session(in, max_frame, limit);
  co_await session.play();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  fuzz::run(body(data, size));
  return 0;
}
