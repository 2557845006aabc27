// fuzz_ws_frame — the RFC 6455 decoders of python-free-examples/
// websocket_echo (wscodec): ws::FrameDecoder and, on the same bytes,
// ws::MessageDecoder.
//
// The input: [role and mask byte][limit code][script length S]
//            [script: S bytes][data: the rest].
// Each decoder reads the data twice: fed at once, and fed in the pieces the
// script chooses (1..256 bytes; the rest at once when it is used up), with
// next() drained after each piece. Both runs must give the same frames
// (messages, pings, pongs, closes) and the same ProtocolError (code and
// reason): a split never changes what the bytes mean. Checked besides:
// - a ProtocolError is sticky (next() repeats it) and carries 1002, 1007 or
//   1009 (1007 only from the message layer);
// - frames keep section 5's rules: control frames final and at most 125
//   bytes, data frames within the limit;
// - each frame, encoded again by ws::encode_frame (masked for a server's
//   decoder), decodes to itself with nothing left over;
// - text messages and close reasons are valid UTF-8 (checked against Qt's
//   decoder), close codes ones a peer may send, messages within
//   max_message; after a Close the decoder gives only NeedMore.
#include "fuzz_kit.h"

#include "ws_frame.h"
#include "ws_message.h"

#include <QtCore/QString>

#include <string>
#include <variant>
#include <vector>

namespace {

bool valid_utf8(const QByteArray& bytes) { return QString::fromUtf8(bytes).toUtf8() == bytes; }

std::string text(const QByteArray& bytes) { return bytes.toHex().toStdString(); }

std::string render_error(const ws::ProtocolError& e) { return "error " + std::to_string(e.code) + " " + e.reason; }

// --- Frames ------------------------------------------------------------------------------

struct FrameRun {
  std::vector<std::string> events;
  std::vector<ws::Frame> frames;
  bool failed = false;
};

void check_frame(const ws::Frame& f, std::uint64_t max_data) {
  if (ws::is_control(f.opcode)) {
    FUZZ_CHECK(f.fin, "a fragmented control frame was accepted");
    FUZZ_CHECK(static_cast<std::size_t>(f.payload.size()) <= ws::kMaxControlPayload,
               "a control frame over 125 bytes was accepted");
  } else {
    FUZZ_CHECK(static_cast<std::uint64_t>(f.payload.size()) <= max_data, "a data frame over the limit was accepted");
  }
}

void drain(ws::FrameDecoder& d, FrameRun& run, std::uint64_t max_data) {
  while (!run.failed) {
    ws::FrameDecoder::Result r = d.next();
    if (std::holds_alternative<ws::NeedMore>(r)) return;
    if (const auto* e = std::get_if<ws::ProtocolError>(&r)) {
      FUZZ_CHECK(e->code == ws::close_code::kProtocolError || e->code == ws::close_code::kMessageTooBig,
                 "a frame error with a code other than 1002 or 1009");
      run.failed = true;
      run.events.push_back(render_error(*e));
      ws::FrameDecoder::Result again = d.next();
      const auto* e2 = std::get_if<ws::ProtocolError>(&again);
      FUZZ_CHECK(e2 && e2->code == e->code && e2->reason == e->reason, "a frame error is not repeated");
      FUZZ_CHECK(d.failed(), "failed() is false after a ProtocolError");
      return;
    }
    const ws::Frame& f = std::get<ws::Frame>(r);
    check_frame(f, max_data);
    run.events.push_back("frame fin=" + std::to_string(f.fin) + " op=" + std::to_string(int(f.opcode)) + " " +
                         text(f.payload));
    run.frames.push_back(f);
  }
}

// Encoded again (masked as a client masks when the decoder is a server's),
// the frame decodes to itself.
void round_trip(const ws::Frame& f, ws::Role role, const ws::MaskKey& key, std::uint64_t max_data) {
  const std::optional<ws::MaskKey> mask = role == ws::Role::kServer ? std::optional(key) : std::nullopt;
  const QByteArray bytes = ws::encode_frame(f.opcode, f.payload, f.fin, mask);
  ws::FrameDecoder d(role, max_data);
  d.feed(bytes);
  ws::FrameDecoder::Result r = d.next();
  const auto* back = std::get_if<ws::Frame>(&r);
  FUZZ_CHECK(back && *back == f, "a decoded frame, encoded again, does not decode to itself");
  FUZZ_CHECK(d.buffered() == 0, "bytes left after decoding one encoded frame");
}

// --- Messages ----------------------------------------------------------------------------

struct MessageRun {
  std::vector<std::string> events;
  bool over = false;  // a ProtocolError or a Close came
};

void drain(ws::MessageDecoder& d, MessageRun& run) {
  while (!run.over) {
    ws::MessageDecoder::Event e = d.next();
    if (std::holds_alternative<ws::NeedMore>(e)) return;
    if (const auto* err = std::get_if<ws::ProtocolError>(&e)) {
      FUZZ_CHECK(err->code == ws::close_code::kProtocolError || err->code == ws::close_code::kMessageTooBig ||
                     err->code == ws::close_code::kInvalidPayload,
                 "a message error with a code other than 1002, 1007 or 1009");
      run.over = true;
      run.events.push_back(render_error(*err));
      ws::MessageDecoder::Event again = d.next();
      const auto* e2 = std::get_if<ws::ProtocolError>(&again);
      FUZZ_CHECK(e2 && e2->code == err->code && e2->reason == err->reason, "a message error is not repeated");
    } else if (const auto* m = std::get_if<ws::Message>(&e)) {
      FUZZ_CHECK(static_cast<std::size_t>(m->data.size()) <= d.max_message(), "a message over max_message");
      if (m->type == ws::MessageType::kText) FUZZ_CHECK(valid_utf8(m->data), "a text message that is not UTF-8");
      run.events.push_back(std::string(m->type == ws::MessageType::kText ? "text " : "binary ") + text(m->data));
    } else if (const auto* p = std::get_if<ws::Ping>(&e)) {
      run.events.push_back("ping " + text(p->payload));
    } else if (const auto* q = std::get_if<ws::Pong>(&e)) {
      run.events.push_back("pong " + text(q->payload));
    } else if (const auto* c = std::get_if<ws::Close>(&e)) {
      FUZZ_CHECK(!c->code || ws::is_valid_close_code(*c->code), "a close code a peer may not send was accepted");
      FUZZ_CHECK(c->code || c->reason.isEmpty(), "a close reason without a code");
      FUZZ_CHECK(valid_utf8(c->reason), "a close reason that is not UTF-8");
      run.over = true;
      run.events.push_back("close " + (c->code ? std::to_string(*c->code) : std::string("none")) + " " +
                           text(c->reason));
      FUZZ_CHECK(d.closed(), "closed() is false after a Close");
      FUZZ_CHECK(std::holds_alternative<ws::NeedMore>(d.next()), "an event after the Close");
    }
  }
}

std::uint64_t decode_limit(std::uint8_t code) {
  if (code < 128) return code;
  if (code < 192) return std::uint64_t{code} * 64;
  return std::uint64_t{1} << 20;
}

void one_input(const std::uint8_t* bytes, std::size_t size) {
  fuzz::Input in(bytes, size);
  const std::uint8_t flags = in.u8();
  const ws::Role role = flags & 1 ? ws::Role::kClient : ws::Role::kServer;
  const ws::MaskKey key{std::uint8_t(flags), std::uint8_t(flags * 3), std::uint8_t(flags * 5), std::uint8_t(flags * 7)};
  const std::uint64_t limit = decode_limit(in.u8());
  fuzz::Input script = in.split(in.u8());
  const QByteArrayView data = in.take(in.size());

  // The pieces, chosen once for both decoders.
  std::vector<QByteArrayView> pieces;
  for (qsizetype pos = 0; pos < data.size();) {
    const qsizetype k = script.empty() ? data.size() - pos
                                       : std::min<qsizetype>(data.size() - pos, qsizetype{script.u8()} + 1);
    pieces.push_back(data.sliced(pos, k));
    pos += k;
  }

  FrameRun fa, fb;
  ws::FrameDecoder da(role, limit), db(role, limit);
  da.feed(data);
  drain(da, fa, limit);
  for (QByteArrayView piece : pieces) {
    db.feed(piece);
    drain(db, fb, limit);
  }
  if (fa.events != fb.events) {
    fuzz::print_events("at once", fa.events);
    fuzz::print_events("in pieces", fb.events);
  }
  FUZZ_CHECK(fa.events == fb.events, "fed in pieces, the frame decoder gives other frames or errors");
  if (!fa.failed) FUZZ_CHECK(da.buffered() == db.buffered(), "the bytes left differ with the split");
  for (const ws::Frame& f : fa.frames) round_trip(f, role, key, limit);

  MessageRun ma, mb;
  ws::MessageDecoder ea(role, limit), eb(role, limit);
  ea.feed(data);
  drain(ea, ma);
  for (QByteArrayView piece : pieces) {
    eb.feed(piece);
    drain(eb, mb);
  }
  if (ma.events != mb.events) {
    fuzz::print_events("at once", ma.events);
    fuzz::print_events("in pieces", mb.events);
  }
  FUZZ_CHECK(ma.events == mb.events, "fed in pieces, the message decoder gives other events or errors");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  one_input(data, size);
  return 0;
}
