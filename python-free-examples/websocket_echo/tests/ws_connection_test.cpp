// The connection layer (ws_connection.h) over a real TCP connection on
// 127.0.0.1: the server side is a ws::Connection, the client side raw
// masked frames from the test, read back with a client's FrameDecoder.
// Echo with pings between fragments, the closing handshake from either
// side and its timeout, protocol errors with their codes (and the peer
// still able to read the close frame while it is sending), 1011 for a
// handler that throws, 1006 for a lost connection.
#include "ws_connection.h"
#include "ws_test_util.h"

#include <qiloop/qiloop.h>
#include <qiloop/testing.h>

#include <functional>
#include <memory>

using namespace std::chrono_literals;

namespace {

using ws_test::bytes;
using ws_test::masked;
using ws_test::pattern;

// What the server side saw.
struct ServerSide {
  std::optional<ws::CloseInfo> info;
  std::exception_ptr handler_error;
  qi::Event done;
};

using Body = std::function<qi::Coro<void>(ws::Connection&, ServerSide&)>;

// The test's end: raw frames out, decoded frames in.
struct Client {
  qi::StreamReader reader;
  qi::StreamWriter writer;
  ws::FrameDecoder frames{ws::Role::kClient, std::uint64_t{1} << 24};

  void send(ws::Opcode op, QByteArrayView payload, bool fin = true) { writer.write(masked(op, payload, fin)); }

  // The next frame from the server; std::nullopt at the end of the stream.
  qi::Coro<std::optional<ws::Frame>> frame() {
    for (;;) {
      ws::FrameDecoder::Result r = frames.next();
      if (auto* f = std::get_if<ws::Frame>(&r)) co_return std::move(*f);
      if (auto* e = std::get_if<ws::ProtocolError>(&r)) throw std::runtime_error("server sent a bad frame: " + e->reason);
      const QByteArray data = co_await qi::wait_for(reader.read(65536), 10s);
      if (data.isEmpty()) co_return std::nullopt;
      frames.feed(data);
    }
  }
};

struct Pair {
  qi::Server server;
  Client client;
};

// A server whose one connection runs body on a ws::Connection, and a
// client connected to it.
qi::Coro<Pair> connect(ServerSide& side, Body body, ws::ConnectionOptions options = {}) {
  auto on_client = [&side, body = std::move(body), options](qi::StreamReader r, qi::StreamWriter w) -> qi::Coro<void> {
    ws::Connection conn(std::move(r), std::move(w), options);
    co_await body(conn, side);
    side.info = conn.close_info();
    side.done.set();
  };
  qi::Server server = co_await qi::start_server(std::move(on_client), "127.0.0.1", 0);
  auto [reader, writer] = co_await qi::open_connection("127.0.0.1", server.sockets().at(0).port());
  co_return Pair{server, Client{reader, writer}};
}

qi::Coro<void> finish(Pair& s, ServerSide& side) {
  co_await side.done.wait();  // (bounded by the test's watchdog)
  s.server.close();
  co_await qi::wait_for(s.server.wait_closed(), 10s);
}

Body echo() {
  return [](ws::Connection& conn, ServerSide& side) -> qi::Coro<void> {
    ws::MessageHandler handler = [](ws::Connection& c, ws::Message m) -> qi::Coro<void> {
      if (m.type == ws::MessageType::kText)
        co_await c.send_text(m.data);
      else
        co_await c.send_binary(m.data);
    };
    side.handler_error = co_await ws::serve_messages(conn, std::move(handler));
  };
}

// Reads the server's close frame and then the end of the stream.
qi::Coro<void> expect_close_then_eof(Client& c, std::uint16_t code, const char* reason_part = "") {
  std::optional<ws::Frame> f = co_await c.frame();
  QILOOP_CO_ASSERT(ASSERT_TRUE(f.has_value()) << "no close frame before the end");
  EXPECT_EQ(f->opcode, ws::Opcode::kClose);
  QILOOP_CO_ASSERT(ASSERT_GE(f->payload.size(), 2));
  EXPECT_EQ((static_cast<std::uint8_t>(f->payload[0]) << 8) | static_cast<std::uint8_t>(f->payload[1]), code);
  EXPECT_TRUE(f->payload.sliced(2).contains(reason_part)) << f->payload.sliced(2).toStdString();
  const std::optional<ws::Frame> end = co_await c.frame();
  EXPECT_EQ(end, std::nullopt) << "the server closes the TCP connection after its close frame";
}

}  // namespace

// --- Messages ----------------------------------------------------------------------

QILOOP_TEST(WsConnection, EchoesMessagesAndAnswersPingsBetweenFragments) {
  ServerSide side;
  Body echo_body = echo();  // (named: g++ 12 and temporaries around co_await)
  Pair s = co_await connect(side, std::move(echo_body));
  s.client.send(ws::Opcode::kText, "Hel", false);
  s.client.send(ws::Opcode::kPing, "are you there?");
  s.client.send(ws::Opcode::kContinuation, "lo");
  s.client.send(ws::Opcode::kBinary, pattern(70000));
  s.client.send(ws::Opcode::kText, "");
  std::optional<ws::Frame> pong = co_await s.client.frame();
  EXPECT_EQ(pong, (ws::Frame{true, ws::Opcode::kPong, "are you there?"}));
  const std::optional<ws::Frame> got1 = co_await s.client.frame();  // (named: g++ 12 and temporaries around co_await)
  EXPECT_EQ(got1, (ws::Frame{true, ws::Opcode::kText, "Hello"}));
  const std::optional<ws::Frame> got2 = co_await s.client.frame();  // (named: g++ 12 and temporaries around co_await)
  EXPECT_EQ(got2, (ws::Frame{true, ws::Opcode::kBinary, pattern(70000)}));
  const std::optional<ws::Frame> got3 = co_await s.client.frame();  // (named: g++ 12 and temporaries around co_await)
  EXPECT_EQ(got3, (ws::Frame{true, ws::Opcode::kText, ""}));
  s.client.send(ws::Opcode::kClose, ws::close_payload(1000, "bye"));
  std::optional<ws::Frame> reply = co_await s.client.frame();
  EXPECT_EQ(reply, (ws::Frame{true, ws::Opcode::kClose, ws::close_payload(1000)})) << "the code echoed, not the reason";
  const std::optional<ws::Frame> got4 = co_await s.client.frame();  // (named: g++ 12 and temporaries around co_await)
  EXPECT_EQ(got4, std::nullopt);
  co_await finish(s, side);
  QILOOP_CO_ASSERT(ASSERT_TRUE(side.info.has_value()));
  EXPECT_EQ(side.info->code, 1000);
  EXPECT_EQ(side.info->reason, "bye");
  EXPECT_EQ(side.info->by, ws::CloseInfo::By::kPeer);
  EXPECT_EQ(side.handler_error, nullptr);
}

QILOOP_TEST(WsConnection, AnEmptyCloseIsAnsweredWithAnEmptyClose) {
  ServerSide side;
  Body echo_body = echo();  // (named: g++ 12 and temporaries around co_await)
  Pair s = co_await connect(side, std::move(echo_body));
  s.client.send(ws::Opcode::kClose, "");
  const std::optional<ws::Frame> got5 = co_await s.client.frame();  // (named: g++ 12 and temporaries around co_await)
  EXPECT_EQ(got5, (ws::Frame{true, ws::Opcode::kClose, ""}));
  const std::optional<ws::Frame> got6 = co_await s.client.frame();  // (named: g++ 12 and temporaries around co_await)
  EXPECT_EQ(got6, std::nullopt);
  co_await finish(s, side);
  EXPECT_EQ(side.info->code, ws::close_code::kNoStatus);
  EXPECT_EQ(side.info->by, ws::CloseInfo::By::kPeer);
}

// --- Failing the connection ------------------------------------------------------

namespace {

struct BadInput {
  QByteArray frames;
  std::uint16_t code;
  std::string reason;
};

// (Outside the coroutine: g++ 12 rejects this braced list inside one.)
std::vector<BadInput> bad_inputs() {
  return {
      {ws::encode_frame(ws::Opcode::kText, "unmasked"), 1002, "unmasked frame"},
      {bytes({0x83, 0x80, 1, 2, 3, 4}), 1002, "reserved opcode 3"},
      {bytes({0xC1, 0x80, 1, 2, 3, 4}), 1002, "reserved bits"},
      {masked(ws::Opcode::kContinuation, "x"), 1002, "no message in progress"},
      {masked(ws::Opcode::kText, bytes({'o', 'k', 0xC0, 0x80})), 1007, "not valid UTF-8"},
      {masked(ws::Opcode::kText, QByteArray(1001, 'x')), 1009, "over the message size limit"},
  };
}

}  // namespace

QILOOP_TEST(WsConnection, ProtocolErrorsCloseWithTheirCodes) {
  const std::vector<BadInput> cases = bad_inputs();
  ws::ConnectionOptions options;
  options.max_message = 1000;
  for (const BadInput& c : cases) {
    ServerSide side;
    Body echo_body = echo();  // (named: g++ 12 and temporaries around co_await)
    Pair s = co_await connect(side, std::move(echo_body), options);
    s.client.writer.write(c.frames);
    co_await expect_close_then_eof(s.client, c.code, c.reason.c_str());
    s.client.writer.close();  // what a client does at the end of the stream; the server waits for it
    co_await finish(s, side);
    EXPECT_EQ(side.info->code, c.code);
    EXPECT_EQ(side.info->by, ws::CloseInfo::By::kError);
    EXPECT_NE(side.info->reason.find(c.reason), std::string::npos) << side.info->reason;
  }
}

namespace {

// Writes n MiB, draining as it goes, as a client streaming a big message
// does; stops quietly when the connection breaks (what a reset does).
qi::Coro<bool> keep_sending(qi::StreamWriter writer, int mib) {
  const QByteArray chunk = pattern(1 << 20);
  try {
    for (int i = 0; i < mib; ++i) {
      writer.write(chunk);
      co_await writer.drain();
    }
  } catch (const qi::OSError&) {
    co_return false;
  }
  co_return true;
}

}  // namespace

QILOOP_TEST(WsConnection, APeerStillSendingReadsTheCloseFrameRatherThanAReset) {
  // A message announced at 64 MiB, and 32 MiB of it sent while the client
  // reads: the server refuses it from its header. Closing the socket on
  // unread bytes would make the kernel reset the connection, and the
  // client, still writing, would be cut off before reading the close frame.
  ServerSide side;
  Body echo_body = echo();  // (named: g++ 12 and temporaries around co_await)
  Pair s = co_await connect(side, std::move(echo_body));
  s.client.writer.write(ws::frame_header(ws::Opcode::kBinary, std::uint64_t{64} << 20, true, ws::MaskKey{1, 2, 3, 4}));
  qi::Task<bool> sender = qi::create_task(keep_sending(s.client.writer, 32));
  co_await expect_close_then_eof(s.client, 1009, "over the message size limit");
  const bool sent_all = co_await sender;
  EXPECT_TRUE(sent_all) << "the server reset the connection under the client's writes";
  s.client.writer.close();  // the end the server's lingering read waits for
  co_await finish(s, side);
  EXPECT_EQ(side.info->code, 1009);
}

QILOOP_TEST(WsConnection, AHandlerThatThrowsClosesWith1011) {
  ServerSide side;
  Body body = [](ws::Connection& conn, ServerSide& side) -> qi::Coro<void> {
    ws::MessageHandler handler = [](ws::Connection&, ws::Message m) -> qi::Coro<void> {
      throw std::runtime_error("cannot handle " + m.data.toStdString());
      co_return;
    };
    side.handler_error = co_await ws::serve_messages(conn, std::move(handler));
  };
  Pair s = co_await connect(side, std::move(body));
  s.client.send(ws::Opcode::kText, "this");
  std::optional<ws::Frame> f = co_await s.client.frame();
  EXPECT_EQ(f, (ws::Frame{true, ws::Opcode::kClose, ws::close_payload(1011, "internal error")}));
  s.client.send(ws::Opcode::kClose, ws::close_payload(1011));  // the client answers
  const std::optional<ws::Frame> got7 = co_await s.client.frame();  // (named: g++ 12 and temporaries around co_await)
  EXPECT_EQ(got7, std::nullopt);
  co_await finish(s, side);
  EXPECT_EQ(side.info->code, 1011);
  EXPECT_EQ(side.info->by, ws::CloseInfo::By::kSelf);
  QILOOP_CO_ASSERT(ASSERT_NE(side.handler_error, nullptr));
  try {
    std::rethrow_exception(side.handler_error);
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "cannot handle this");
  }
}

// --- Closing from the server ------------------------------------------------------

QILOOP_TEST(WsConnection, CloseWaitsForThePeersCloseDroppingDataMeanwhile) {
  ServerSide side;
  Body body = [](ws::Connection& conn, ServerSide&) -> qi::Coro<void> {
    co_await conn.close(ws::close_code::kGoingAway, "going away");
    EXPECT_EQ(conn.state(), ws::Connection::State::kClosed);
    const std::optional<ws::Message> after = co_await conn.receive();
    EXPECT_EQ(after, std::nullopt);
    bool threw = false;
    try {
      co_await conn.send_text("too late");
    } catch (const ws::ConnectionClosed& e) {
      threw = true;
      EXPECT_EQ(e.info().code, 1001);
    }
    EXPECT_TRUE(threw);
  };
  Pair s = co_await connect(side, std::move(body));
  const std::optional<ws::Frame> got8 = co_await s.client.frame();  // (named: g++ 12 and temporaries around co_await)
  EXPECT_EQ(got8, (ws::Frame{true, ws::Opcode::kClose, ws::close_payload(1001, "going away")}));
  s.client.send(ws::Opcode::kText, "still talking");
  s.client.send(ws::Opcode::kClose, ws::close_payload(1001));
  const std::optional<ws::Frame> got9 = co_await s.client.frame();  // (named: g++ 12 and temporaries around co_await)
  EXPECT_EQ(got9, std::nullopt);
  co_await finish(s, side);
  EXPECT_EQ(side.info->by, ws::CloseInfo::By::kSelf);
}

QILOOP_TEST(WsConnection, ClosesTheSocketWhenThePeerNeverAnswersTheClose) {
  ServerSide side;
  ws::ConnectionOptions options;
  options.close_timeout = 300ms;
  Body body = [](ws::Connection& conn, ServerSide&) -> qi::Coro<void> { co_await conn.close(); };
  Pair s = co_await connect(side, std::move(body), options);
  auto& loop = qi::get_running_loop();
  const auto t0 = loop.time();
  co_await expect_close_then_eof(s.client, 1000);
  EXPECT_GE(loop.time() - t0, 250ms);
  co_await finish(s, side);
}

QILOOP_TEST(WsConnection, ALostConnectionIs1006) {
  ServerSide side;
  Body echo_body = echo();  // (named: g++ 12 and temporaries around co_await)
  Pair s = co_await connect(side, std::move(echo_body));
  s.client.send(ws::Opcode::kText, "half", false);
  s.client.writer.close();
  co_await finish(s, side);
  EXPECT_EQ(side.info->code, ws::close_code::kAbnormal);
  EXPECT_EQ(side.info->by, ws::CloseInfo::By::kLost);
}

QILOOP_TEST(WsConnection, BadArgumentsAreRefusedBeforeAnythingIsSent) {
  ServerSide side;
  Body body = [](ws::Connection& conn, ServerSide&) -> qi::Coro<void> {
    // (Each awaited alone, its arguments named: g++ 12 and temporaries around co_await.)
    const QByteArray not_utf8("\xFF");
    bool refused_text = false;
    try {
      co_await conn.send_text(not_utf8);
    } catch (const std::invalid_argument&) {
      refused_text = true;
    }
    EXPECT_TRUE(refused_text);
    bool refused_code = false;
    try {
      co_await conn.close(1005);
    } catch (const std::invalid_argument&) {
      refused_code = true;
    }
    EXPECT_TRUE(refused_code);
    std::string bad_reason("\xC0");
    bool refused_reason = false;
    try {
      co_await conn.close(1000, std::move(bad_reason));
    } catch (const std::invalid_argument&) {
      refused_reason = true;
    }
    EXPECT_TRUE(refused_reason);
    EXPECT_EQ(conn.state(), ws::Connection::State::kOpen);
    co_await conn.send_text("still open");
    co_await conn.close(1000, std::string(200, 'r'));  // cut to 123 bytes
  };
  Pair s = co_await connect(side, std::move(body));
  const std::optional<ws::Frame> got10 = co_await s.client.frame();  // (named: g++ 12 and temporaries around co_await)
  EXPECT_EQ(got10, (ws::Frame{true, ws::Opcode::kText, "still open"}));
  const std::optional<ws::Frame> got11 = co_await s.client.frame();  // (named: g++ 12 and temporaries around co_await)
  EXPECT_EQ(got11, (ws::Frame{true, ws::Opcode::kClose, ws::close_payload(1000, QByteArray(123, 'r'))}));
  s.client.send(ws::Opcode::kClose, "");
  const std::optional<ws::Frame> got12 = co_await s.client.frame();  // (named: g++ 12 and temporaries around co_await)
  EXPECT_EQ(got12, std::nullopt);
  co_await finish(s, side);
}
