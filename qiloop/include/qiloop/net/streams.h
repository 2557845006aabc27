// qiloop/net/streams.h — asyncio's streams: a connection as a reader and a
// writer of bytes, with coroutines that wait for data and for room.
//
//   auto [reader, writer] = co_await qi::open_connection("localhost", 8888);
//   writer.write("hello\n");
//   co_await writer.drain();                          // waits while the peer is slow
//   QByteArray line = co_await reader.readline();     // ends with '\n'; empty at EOF
//   QByteArray frame = co_await reader.readexactly(n); // qi::IncompleteReadError at EOF
//   while (std::optional<QByteArray> l = co_await reader.next_line()) { ... }  // asyncio's async for
//   writer.close();
//   co_await writer.wait_closed();
//
// The contract (asyncio 3.13's streams.py, differences named):
// - Handles. StreamReader and StreamWriter are copyable handles to one
//   stream (as Python names are references): copies see the same buffer and
//   connection. The loop owns the transport until its connection_lost; the
//   handles never point at it after that: reads then give what was buffered
//   and EOF (or throw the connection's error), writes are dropped as the
//   transport drops writes after close(), and transport() is a stand-in that
//   keeps peername() / sockname() (fileno() -1, is_closing() true). This
//   holds also when loop.close() destroys a transport still open: reads
//   then give what was buffered and EOF, without waiting. A moved-from
//   handle is empty: assignment and destruction work, every other call
//   throws qi::RuntimeError.
// - Closing. When the last StreamWriter handle of a connection goes and the
//   transport is still open, the transport is closed (asyncio's
//   StreamWriter.__del__, without its ResourceWarning).
// - Reading. One coroutine may wait for data at a time: a second read that
//   must wait throws qi::RuntimeError ("... already waiting for incoming
//   data"); reads that find what they need in the buffer never wait. Reads
//   take data only once they can return it, so a read cancelled while it
//   waits (qi::CancelledError at its co_await) leaves every byte to the
//   next read. (asyncio's read(-1) loses what it collected when cancelled;
//   qiloop's keeps it buffered.) After set_exception (a reset connection:
//   the qi::ConnectionResetError), every read throws that exception.
// - Flow control. The reader pauses the transport's reading while it holds
//   more than 2 * limit bytes and resumes it once it holds limit or fewer,
//   or when a read must wait. drain() waits while the transport's write
//   buffer is over its high-water mark (Transport::set_write_buffer_limits)
//   until it is back to the low-water mark: after drain() returns, the
//   buffer is at most the high-water mark.
// - Thread-safety: the loop's thread only. Every call may be made from any
//   task or callback of that loop.
#pragma once

#include <qiloop/coro.h>
#include <qiloop/event_loop.h>
#include <qiloop/export.h>
#include <qiloop/net/server.h>
#include <qiloop/net/transport.h>

#include <absl/functional/any_invocable.h>

#include <QtCore/QByteArray>
#include <QtCore/QByteArrayView>

#include <cstddef>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

namespace qi {

namespace detail {
class ReaderCore;
class WriterCore;
struct StreamAccess;
}  // namespace detail

// qi::kDefaultStreamLimit
// A stream's default limit (asyncio's _DEFAULT_LIMIT, 64 KiB): the longest
// line or readuntil chunk, and half the buffer that pauses reading.
inline constexpr std::size_t kDefaultStreamLimit = 64 * 1024;

// qi::StreamReader
// Bytes received, and coroutines that wait for them (asyncio.StreamReader).
class QILOOP_EXPORT StreamReader {
 public:
  // StreamReader::StreamReader()
  // A new stream with no transport, fed by feed_data / feed_eof (tests and
  // protocols); connections make theirs. Throws qi::ValueError for limit 0.
  explicit StreamReader(std::size_t limit = kDefaultStreamLimit);

  // StreamReader::read()
  // Up to n bytes, as soon as at least one is buffered; empty at EOF.
  // n == 0: empty at once. n < 0: everything until EOF. Throws the stream's
  // exception (see set_exception).
  Coro<QByteArray> read(qsizetype n = -1);

  // StreamReader::readexactly()
  // Exactly n bytes. At EOF before that, throws qi::IncompleteReadError with
  // the bytes left (taken from the stream) as partial(). Throws
  // qi::ValueError for n < 0.
  Coro<QByteArray> readexactly(qsizetype n);

  // StreamReader::readline()
  // One line, with its '\n'; at EOF the last partial line, then empty. A line
  // longer than limit() throws qi::ValueError after discarding it (up to and
  // with its '\n' when that arrived, else everything buffered).
  Coro<QByteArray> readline();

  // StreamReader::readuntil()
  // The data up to and with the first separator (several: the shortest
  // chunk that ends with one of them; on a tie, the shortest separator).
  // Throws qi::LimitOverrunError, leaving the data buffered, when no
  // separator is within limit() bytes (or the one found starts after them),
  // qi::IncompleteReadError at EOF (partial(): everything left, taken), and
  // qi::ValueError for an empty separator or list.
  //   co_await reader.readuntil("\r\n\r\n");
  //   co_await reader.readuntil("\r\n", "\n");      // asyncio's tuple of separators
  // (No initializer_list overload: g++ 12 miscompiles a braced list's array
  // that lives across a co_await.) A separator holding a NUL byte needs its
  // length: Qt 6 makes a QByteArrayView of a string literal stop at the
  // first NUL, so readuntil("a\0b") looks for "a"; write
  // readuntil(QByteArrayView("a\0b", 3)) (or QByteArray("a\0b", 3)).
  Coro<QByteArray> readuntil(QByteArrayView separator = "\n");
  template <class... S>
    requires(sizeof...(S) >= 2 && (std::is_convertible_v<const S&, QByteArrayView> && ...))
  Coro<QByteArray> readuntil(const S&... separators) {
    const QByteArrayView list[] = {QByteArrayView(separators)...};
    return readuntil(std::span<const QByteArrayView>(list));
  }
  Coro<QByteArray> readuntil(std::span<const QByteArrayView> separators);

  // StreamReader::next_line()
  // The next line (readline()), or std::nullopt at EOF: asyncio's
  // `async for line in reader`.
  Coro<std::optional<QByteArray>> next_line();

  // StreamReader::at_eof()
  // True when EOF was fed and nothing is buffered.
  bool at_eof() const;
  // StreamReader::exception()
  // What set_exception stored, or null.
  std::exception_ptr exception() const;
  // StreamReader::limit()
  // StreamReader::buffered()
  // The limit given at construction; how many bytes wait to be read.
  std::size_t limit() const;
  std::size_t buffered() const;

  // StreamReader::feed_data()
  // StreamReader::feed_eof()
  // StreamReader::set_exception()
  // What a protocol calls: bytes received (copied; empty does nothing;
  // qi::RuntimeError after feed_eof), the end of the stream, an error
  // that every read throws from now on. Each wakes the waiting read.
  void feed_data(QByteArrayView data);
  void feed_eof();
  void set_exception(std::exception_ptr error);

  // StreamReader::set_transport()
  // The transport whose reading feed_data pauses (asyncio's, for a
  // protocol of one's own); null forgets it. The caller must forget it
  // before the transport goes (in its protocol's connection_lost).
  void set_transport(Transport* transport);

 private:
  friend struct detail::StreamAccess;
  explicit StreamReader(std::shared_ptr<detail::ReaderCore> core) noexcept;
  // core_, or qi::RuntimeError for a moved-from handle.
  const std::shared_ptr<detail::ReaderCore>& core() const;
  std::shared_ptr<detail::ReaderCore> core_;
};

// qi::StreamWriter
// The sending side of a connection (asyncio.StreamWriter): writes go to the
// transport; drain() is the flow control. Made by open_connection and the
// servers.
class QILOOP_EXPORT StreamWriter {
 public:
  StreamWriter(const StreamWriter& other) noexcept;
  StreamWriter(StreamWriter&& other) noexcept;
  StreamWriter& operator=(const StreamWriter& other) noexcept;
  StreamWriter& operator=(StreamWriter&& other) noexcept;
  // The last handle of a connection closes its transport (see the file
  // comment).
  ~StreamWriter();

  // StreamWriter::write()
  // StreamWriter::writelines()
  // Transport::write / writelines: sent now, or buffered. Dropped once the
  // connection is closing or lost; qi::RuntimeError after write_eof().
  void write(QByteArrayView data);
  void writelines(std::span<const QByteArrayView> pieces);
  void writelines(std::initializer_list<QByteArrayView> pieces);

  // StreamWriter::can_write_eof()
  // StreamWriter::write_eof()
  // Transport::can_write_eof / write_eof: half-close after the buffer.
  bool can_write_eof() const;
  void write_eof();

  // StreamWriter::close()
  // StreamWriter::is_closing()
  // Transport::close (sends the buffer, then closes) / is_closing.
  void close();
  bool is_closing() const;

  // StreamWriter::drain()
  // co_await after writes: returns at once while the write buffer is under
  // its high-water mark, else when it is back to the low-water mark.
  // Throws the reader's exception (a reset connection), and
  // qi::ConnectionResetError("Connection lost") once the connection is
  // lost (or the error it was lost with, when that happens while waiting).
  // On a closing transport it first yields one loop iteration, so that a
  // write-and-drain loop sees the connection end. Several tasks may drain
  // at once; all wake together.
  Coro<void> drain();

  // StreamWriter::wait_closed()
  // Returns once the connection is closed (connection_lost ran); throws
  // the error it was lost with, if any. Cancelling it cancels this wait only.
  Coro<void> wait_closed();

  // StreamWriter::start_tls()
  // Upgrades the connection to TLS in place (asyncio's
  // StreamWriter.start_tls, STARTTLS): drains, then loop.start_tls on the
  // transport; once the handshake is done, the reader and this writer (and
  // its copies) use the TLS transport: later writes are encrypted, later
  // reads decrypted; bytes the reader already buffered stay readable.
  // Writes made while the handshake runs wait for it. Throws what drain()
  // and loop.start_tls throw (qi::ValueError for bad options, the
  // handshake's qi::SSLError; the connection is then aborted).
  Coro<void> start_tls(std::shared_ptr<SslContext> sslcontext);
  Coro<void> start_tls(std::shared_ptr<SslContext> sslcontext, TlsOptions options);

  // StreamWriter::transport()
  // The connection's transport (asyncio's writer.transport): peername(),
  // sockname(), fileno(), set_write_buffer_limits(), ... Once the
  // connection is lost, a stand-in (see the file comment). Valid until the
  // next co_await: fetch it again rather than keep it.
  Transport& transport() const;

 private:
  friend struct detail::StreamAccess;
  explicit StreamWriter(std::shared_ptr<detail::WriterCore> core) noexcept;
  // core_, or qi::RuntimeError for a moved-from handle.
  const std::shared_ptr<detail::WriterCore>& core() const;
  void release() noexcept;
  std::shared_ptr<detail::WriterCore> core_;
};

// qi::open_connection()
// loop.create_connection to (host, port) with options, as a (reader,
// writer) pair whose reader has `limit`. Throws what create_connection
// throws. `sock`: a connected stream socket to take over (closed with the
// connection; the caller's when this throws qi::ValueError).
QILOOP_EXPORT Coro<std::pair<StreamReader, StreamWriter>> open_connection(std::string host, uint16_t port,
                                                                          ConnectOptions options = {},
                                                                          std::size_t limit = kDefaultStreamLimit);
QILOOP_EXPORT Coro<std::pair<StreamReader, StreamWriter>> open_connection(int sock,
                                                                          std::size_t limit = kDefaultStreamLimit);

// qi::open_unix_connection()
// The same over a Unix stream socket connected to path (loop.create_unix_connection).
QILOOP_EXPORT Coro<std::pair<StreamReader, StreamWriter>> open_unix_connection(std::string path,
                                                                               std::size_t limit = kDefaultStreamLimit);

namespace detail {
// A server's client_connected_cb, type-erased.
using ClientConnected = absl::AnyInvocable<qi::Coro<void>(StreamReader, StreamWriter)>;
}  // namespace detail

// qi::start_server()
// loop.create_server whose connections are streams (asyncio's
// start_server): for each, client_connected(reader, writer) runs as a task
// of its own, its reader with `limit`. A callback that throws is reported to
// the loop's exception handler ("Unhandled exception in
// client_connected_cb") and its connection closed; so is one cancelled. The
// options are create_server's (ssl= too); throws what create_server throws.
//
//   qi::Server server = co_await qi::start_server(
//       [](qi::StreamReader r, qi::StreamWriter w) -> qi::Coro<void> {
//         while (auto line = co_await r.next_line()) { w.write(*line); co_await w.drain(); }
//       }, "127.0.0.1", 0);
QILOOP_EXPORT Coro<Server> start_server(detail::ClientConnected client_connected, std::string host, uint16_t port,
                                        ServerOptions options = {}, std::size_t limit = kDefaultStreamLimit);

// qi::start_unix_server()
// The same on a Unix stream socket bound to path (loop.create_unix_server).
QILOOP_EXPORT Coro<Server> start_unix_server(detail::ClientConnected client_connected, std::string path,
                                             UnixServerOptions options = {}, std::size_t limit = kDefaultStreamLimit);

namespace detail {
// What stream_server_factory returns: a factory for create_connection(f,
// sock), and a QiEventLoop::ProtocolFactory by conversion.
using StreamProtocolFactory = absl::AnyInvocable<std::unique_ptr<qi::BufferedProtocol>()>;

// The protocol factory of start_server / start_unix_server (asyncio's
// `factory` there): each connection gets a reader with `limit` and a
// writer, and cb(reader, writer) runs as a task of its own. A task that
// fails is reported to the loop's exception handler ("Unhandled exception
// in client_connected_cb") and its transport closed; a cancelled one closes
// it too (asyncio 3.12). The loop keeps the task alive until it ends. The
// factory is called on the loop's thread; cb is shared by every connection.
QILOOP_EXPORT StreamProtocolFactory stream_server_factory(ClientConnected cb,
                                                          std::size_t limit = kDefaultStreamLimit);

}  // namespace detail

}  // namespace qi
