// framed.h — a length-prefixed message protocol as a small library built on
// qiloop's streams: each frame is a 4-byte little-endian unsigned length,
// then that many payload bytes (Twisted's IntNStringReceiver with
// structFormat "<L", as the original 001 client used).
//
//   framed::Connection conn = co_await framed::Connection::open("127.0.0.1", 50007);
//   co_await conn.send("hello");                        // prefix + payload, then drain
//   std::optional<QByteArray> reply = co_await conn.receive();   // nullopt: the peer closed
//   conn.close();
//   co_await conn.wait_closed();
//
//   // A server (qi::start_server), one connection per task:
//   auto on_client = [](qi::StreamReader r, qi::StreamWriter w) -> qi::Coro<void> {
//     framed::Connection conn(std::move(r), std::move(w));
//     while (std::optional<QByteArray> frame = co_await conn.receive()) co_await conn.send(*frame);
//   };
//
// The contract:
// - Frame size. Every reader and writer has a maximum payload size
//   (kDefaultMaxFrame unless given; at most 0xFFFFFFFF, what the prefix can
//   say). A prefix announcing more is a FrameTooLargeError, thrown before any
//   payload byte is awaited, so a hostile prefix never makes the reader
//   buffer gigabytes; writing more than the maximum throws it too, before
//   anything is written. 0-length frames are valid (an empty QByteArray).
// - End of stream. Between frames it is the normal end: next() and
//   Connection::receive() give std::nullopt; read() throws
//   qi::IncompleteReadError with an empty partial(). Inside a frame (part of
//   a prefix, or a prefix and part of its payload) it is
//   qi::IncompleteReadError whose partial() is the frame's bytes received
//   (prefix included) and expected() the frame's whole size (4 while the
//   prefix is incomplete).
// - Connection closes itself on a protocol error (an oversize prefix, a
//   truncated frame) before throwing it: the stream is out of step and
//   nothing after the bad prefix can be read as frames.
// - Cancellation. A read cancelled while it waits loses nothing: a prefix
//   already taken is kept by the FrameReader, and the next read goes on with
//   its payload. (A free-function read of prefix then payload could not do
//   that, hence the class.)
// - Thread-safety: the loop's thread, as qiloop's streams. One task reads a
//   FrameReader at a time (a second waiting read throws the StreamReader's
//   qi::RuntimeError).
#pragma once

#include <qiloop/coro.h>
#include <qiloop/errors.h>
#include <qiloop/net/streams.h>

#include <QtCore/QByteArray>
#include <QtCore/QByteArrayView>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

namespace framed {

// framed::kPrefixSize, framed::kDefaultMaxFrame, framed::kLargestFrame
// The prefix's size; the default maximum payload (1 MiB); the largest any
// reader or writer may be given (what 32 bits can say).
inline constexpr std::size_t kPrefixSize = 4;
inline constexpr std::size_t kDefaultMaxFrame = std::size_t{1} << 20;
inline constexpr std::size_t kLargestFrame = UINT32_MAX;

// framed::FrameTooLargeError
// A frame longer than the maximum: announced by a prefix received, or given
// to write. A qi::ValueError.
class FrameTooLargeError : public qi::ValueError {
 public:
  FrameTooLargeError(std::size_t size, std::size_t max_frame);
  std::size_t size() const noexcept { return size_; }
  std::size_t max_frame() const noexcept { return max_frame_; }

 private:
  std::size_t size_;
  std::size_t max_frame_;
};

// framed::write_frame()
// Writes payload as one frame (prefix and payload in one writelines: one
// system call, no copy of the payload). Does not drain: co_await
// writer.drain() after a batch. Throws FrameTooLargeError when payload is
// longer than max_frame (nothing is written), qi::ValueError when max_frame
// is over kLargestFrame, and what StreamWriter::writelines throws.
void write_frame(qi::StreamWriter& writer, QByteArrayView payload, std::size_t max_frame = kDefaultMaxFrame);

// framed::FrameReader
// Reads frames from a qi::StreamReader (a copyable handle: the reader keeps
// one).
class FrameReader {
 public:
  // FrameReader::FrameReader()
  // Throws qi::ValueError when max_frame is over kLargestFrame.
  explicit FrameReader(qi::StreamReader reader, std::size_t max_frame = kDefaultMaxFrame);

  // FrameReader::read()
  // The next frame's payload. Throws qi::IncompleteReadError at the end of
  // the stream (see the file comment), FrameTooLargeError for an oversize
  // prefix (taken from the stream), and the stream's exception.
  qi::Coro<QByteArray> read();

  // FrameReader::next()
  // The same, but std::nullopt at the end of the stream between frames.
  qi::Coro<std::optional<QByteArray>> next();

  // FrameReader::max_frame()
  // FrameReader::stream()
  std::size_t max_frame() const noexcept { return max_frame_; }
  qi::StreamReader& stream() noexcept { return reader_; }

 private:
  qi::Coro<std::optional<QByteArray>> read_frame(bool eof_is_end);

  qi::StreamReader reader_;
  std::size_t max_frame_;
  // A prefix taken from the stream whose payload is not read yet: a read
  // cancelled while waiting for the payload leaves it here.
  std::optional<std::uint32_t> pending_size_;
};

// framed::Connection
// A connection speaking the protocol: a FrameReader and a qi::StreamWriter.
// Movable; its writer is a qi::StreamWriter handle (the last one closes the
// connection).
class Connection {
 public:
  // Connection::Connection()
  // Over a stream pair from qi::open_connection or qi::start_server.
  Connection(qi::StreamReader reader, qi::StreamWriter writer, std::size_t max_frame = kDefaultMaxFrame);

  // Connection::open()
  // qi::open_connection(host, port), framed. Throws what that throws
  // (qi::ConnectionRefusedError, qi::GaiError, ...).
  static qi::Coro<Connection> open(std::string host, std::uint16_t port, std::size_t max_frame = kDefaultMaxFrame);

  // Connection::receive()
  // The next frame, std::nullopt once the peer closed between frames. On a
  // protocol error (FrameTooLargeError, qi::IncompleteReadError) the
  // connection is closed first, then the error thrown.
  qi::Coro<std::optional<QByteArray>> receive();

  // Connection::send()
  // write_frame, then drain (waits while the peer is slow). Throws what
  // they throw (qi::ConnectionResetError once the connection is lost).
  qi::Coro<void> send(QByteArrayView payload);

  // Connection::close()
  // Connection::wait_closed()
  // StreamWriter::close (after what is buffered) / wait_closed.
  void close();
  qi::Coro<void> wait_closed();

  // Connection::peer()
  // The peer's address as text ("127.0.0.1:50007"); kept after the
  // connection is lost.
  std::string peer() const;

  FrameReader& reader() noexcept { return reader_; }
  qi::StreamWriter& writer() noexcept { return writer_; }

 private:
  FrameReader reader_;
  qi::StreamWriter writer_;
};

}  // namespace framed
