// net/stream_writer.cpp — qi::StreamWriter, the protocol bridging a
// transport to a reader and a writer (asyncio's StreamWriter,
// FlowControlMixin and StreamReaderProtocol, streams.py), open_connection
// and the servers' protocol factory. The contract is in
// <qiloop/net/streams.h>.
#include "net/stream_cores.h"

#include <qiloop/errors.h>
#include <qiloop/net/ssl.h>
#include <qiloop/task.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <utility>

namespace qi::detail {

// --- DetachedTransport --------------------------------------------------------------------

void DetachedTransport::remember(const Transport& t) {
  peer_ = t.peername();
  local_ = t.sockname();
  limits_ = t.get_write_buffer_limits();
  can_write_eof_ = t.can_write_eof();
}

// --- WriterCore (FlowControlMixin) ----------------------------------------------------------

void WriterCore::resume_writing() {
  paused = false;
  drain_waiters_.wake_all();
}

void WriterCore::connection_lost(std::exception_ptr error) {
  lost = true;
  closed = true;
  closed_error = error;
  close_waiters_.wake_all();
  // Drainers wait only while paused; those not woken yet get the error.
  if (!paused) return;
  for (WaiterQueue::Entry* e = drain_waiters_.front(); e; e = e->next())
    static_cast<ErrorWaiter*>(e)->wake_with(error);
}

void WriterCore::detach() noexcept {
  transport = nullptr;
  reader->transport = nullptr;
  reader->paused = false;
  // Gone without connection_lost (loop.close()): nothing will come. Reads
  // give what was buffered, then EOF, never waiting (also on another loop).
  if (!reader->eof) reader->feed_eof();
  if (!lost) connection_lost(nullptr);
}

Coro<void> WriterCore::drain(std::shared_ptr<WriterCore> self) {
  self->reader->throw_if_failed();
  // Let connection_lost run first, so that a write-and-drain loop on a
  // closing transport sees the connection end.
  if (self->current().is_closing()) co_await qi::sleep(std::chrono::seconds(0));
  if (self->lost) throw qi::ConnectionResetError("Connection lost");
  if (!self->paused) co_return;
  ErrorWaiter waiter(self->drain_waiters_, "qi::StreamWriter");
  co_await waiter;
  waiter.rethrow_error();
}

Coro<void> WriterCore::wait_closed(std::shared_ptr<WriterCore> self) {
  while (!self->closed) {
    WaiterQueue::Entry waiter(self->close_waiters_, "qi::StreamWriter");
    co_await waiter;
  }
  if (self->closed_error) std::rethrow_exception(self->closed_error);
}

Coro<void> WriterCore::start_tls(std::shared_ptr<WriterCore> self, std::shared_ptr<SslContext> context,
                                 TlsOptions options) {
  co_await drain(self);
  if (!self->transport) throw qi::ConnectionResetError("start_tls: the connection is lost");
  Transport& t = *self->transport;
  // loop.start_tls points the cores at the TLS transport as soon as it
  // exists (StreamProtocol::replace_transport): writes made during the
  // handshake wait for it instead of going out in clear.
  (void)co_await qi::get_running_loop().start_tls(&t, &t.get_protocol(), std::move(context), std::move(options));
}

// --- StreamProtocol (StreamReaderProtocol) ------------------------------------------------

StreamProtocol::StreamProtocol(std::shared_ptr<WriterCore> writer, std::shared_ptr<ClientConnected> client_connected)
    : writer_(std::move(writer)), client_connected_(std::move(client_connected)) {}

StreamProtocol::~StreamProtocol() { writer_->detach(); }

void StreamProtocol::connection_made(Transport& transport) {
  writer_->transport = &transport;
  writer_->detached.remember(transport);
  writer_->reader->transport = &transport;
  writer_->reader->loop = &qi::get_running_loop();
  over_ssl_ = dynamic_cast<SslTransport*>(&transport) != nullptr;
  if (client_connected_) start_client_task();
}

void StreamProtocol::replace_transport(Transport& transport) {
  writer_->transport = &transport;
  writer_->detached.remember(transport);
  writer_->reader->transport = &transport;
  over_ssl_ = dynamic_cast<SslTransport*>(&transport) != nullptr;
  // The old transport's flow control no longer reaches us: the new one
  // starts paused for reading if the reader was, and tells the writer
  // itself when to pause.
  if (writer_->reader->paused) transport.pause_reading();
  if (writer_->paused) writer_->resume_writing();
}

void StreamProtocol::connection_lost(std::exception_ptr error) {
  if (writer_->transport) writer_->detached.remember(*writer_->transport);
  if (error)
    writer_->reader->set_exception(error);
  else
    writer_->reader->feed_eof();
  writer_->connection_lost(std::move(error));
}

bool StreamProtocol::eof_received() {
  writer_->reader->feed_eof();
  // Half-open: the writer may still send; it closes the transport. TLS
  // cannot stay half-open (and would warn about it).
  return !over_ssl_;
}

void StreamProtocol::start_client_task() {
  Coro<void> coro = (*client_connected_)(StreamAccess::reader(writer_->reader), StreamAccess::writer(writer_));
  Task<void> task = qi::get_running_loop().create_task(std::move(coro));
  // asyncio 3.12: a task that fails is reported, and its connection closed
  // either way, so a crashed handler leaves no client hanging.
  auto on_done = [core = writer_](Future<void> done) {
    if (done.cancelled()) return core->current().close();
    std::exception_ptr error = done.exception();
    if (!error) return;
    qi::ExceptionContext context;
    const SocketAddress peer = core->current().peername();
    context.message = "Unhandled exception in client_connected_cb" +
                      (peer.empty() ? std::string() : " (peer " + peer.to_string() + ")");
    context.exception = error;
    if (QiEventLoop* loop = done.get_loop()) loop->call_exception_handler(context);
    core->current().close();
  };
  task.add_done_callback(std::move(on_done));
}

}  // namespace qi::detail

namespace qi {

using detail::StreamAccess;
using detail::StreamProtocol;
using detail::WriterCore;

// --- StreamWriter -------------------------------------------------------------------------

StreamWriter::StreamWriter(std::shared_ptr<WriterCore> core) noexcept : core_(std::move(core)) { ++core_->handles; }
StreamWriter::StreamWriter(const StreamWriter& other) noexcept : core_(other.core_) {
  if (core_) ++core_->handles;
}
StreamWriter::StreamWriter(StreamWriter&& other) noexcept : core_(std::move(other.core_)) {}
StreamWriter& StreamWriter::operator=(const StreamWriter& other) noexcept {
  if (this != &other) {
    StreamWriter copy(other);
    *this = std::move(copy);
  }
  return *this;
}
StreamWriter& StreamWriter::operator=(StreamWriter&& other) noexcept {
  if (this != &other) {
    release();
    core_ = std::move(other.core_);
  }
  return *this;
}
StreamWriter::~StreamWriter() { release(); }

void StreamWriter::release() noexcept {
  if (!core_) return;
  // The last handle closes an open transport (asyncio's __del__); close()
  // never calls the protocol back from inside itself, so this never
  // re-enters one.
  if (--core_->handles == 0) core_->reader->close_transport_for("qi::StreamWriter");
  core_.reset();
}

const std::shared_ptr<WriterCore>& StreamWriter::core() const {
  if (!core_)
    throw qi::RuntimeError("qi::StreamWriter: an empty handle (moved from); assign it a writer (a copy, or one "
                           "from open_connection or a server) before using it");
  return core_;
}

void StreamWriter::write(QByteArrayView data) { core()->current().write(data); }
void StreamWriter::writelines(std::span<const QByteArrayView> pieces) { core()->current().writelines(pieces); }
void StreamWriter::writelines(std::initializer_list<QByteArrayView> pieces) { core()->current().writelines(pieces); }
bool StreamWriter::can_write_eof() const { return core()->current().can_write_eof(); }
void StreamWriter::write_eof() { core()->current().write_eof(); }
void StreamWriter::close() { core()->current().close(); }
bool StreamWriter::is_closing() const { return core()->current().is_closing(); }
Coro<void> StreamWriter::drain() { return WriterCore::drain(core()); }
Coro<void> StreamWriter::wait_closed() { return WriterCore::wait_closed(core()); }
Transport& StreamWriter::transport() const { return core()->current(); }

Coro<void> StreamWriter::start_tls(std::shared_ptr<SslContext> sslcontext) {
  return WriterCore::start_tls(core(), std::move(sslcontext), TlsOptions{});
}

Coro<void> StreamWriter::start_tls(std::shared_ptr<SslContext> sslcontext, TlsOptions options) {
  return WriterCore::start_tls(core(), std::move(sslcontext), std::move(options));
}

// --- open_connection and the servers' factory ---------------------------------------------

namespace {

std::shared_ptr<WriterCore> new_stream(std::size_t limit) {
  return std::make_shared<WriterCore>(std::make_shared<detail::ReaderCore>(limit));
}

// A factory making the one protocol of `core` (create_connection calls it
// once, for the socket that connected).
auto protocol_of(std::shared_ptr<WriterCore> core) {
  return [core = std::move(core)] { return std::make_unique<StreamProtocol>(core, nullptr); };
}

std::pair<StreamReader, StreamWriter> handles_of(const std::shared_ptr<WriterCore>& core) {
  return {StreamAccess::reader(core->reader), StreamAccess::writer(core)};
}

}  // namespace

Coro<std::pair<StreamReader, StreamWriter>> open_connection(std::string host, uint16_t port, ConnectOptions options,
                                                            std::size_t limit) {
  std::shared_ptr<WriterCore> core = new_stream(limit);
  auto factory = protocol_of(core);  // named: g++ 12 destroys a lambda temporary of a co_await twice
  co_await qi::get_running_loop().create_connection(std::move(factory), std::move(host), port, std::move(options));
  co_return handles_of(core);
}

Coro<std::pair<StreamReader, StreamWriter>> open_connection(int sock, std::size_t limit) {
  std::shared_ptr<WriterCore> core = new_stream(limit);
  auto factory = protocol_of(core);  // named: see above
  co_await qi::get_running_loop().create_connection(std::move(factory), sock);
  co_return handles_of(core);
}

Coro<std::pair<StreamReader, StreamWriter>> open_unix_connection(std::string path, std::size_t limit) {
  std::shared_ptr<WriterCore> core = new_stream(limit);
  auto factory = protocol_of(core);  // named: see above
  co_await qi::get_running_loop().create_unix_connection(std::move(factory), std::move(path));
  co_return handles_of(core);
}

detail::StreamProtocolFactory detail::stream_server_factory(ClientConnected cb, std::size_t limit) {
  if (!cb) throw std::invalid_argument("qi::start_server: client_connected_cb is empty; pass a callable");
  (void)detail::ReaderCore::checked_limit(limit);  // qi::ValueError now, not at the first connection
  auto shared = std::make_shared<ClientConnected>(std::move(cb));
  return [shared, limit]() -> std::unique_ptr<BufferedProtocol> {
    return std::make_unique<StreamProtocol>(new_stream(limit), shared);
  };
}

Coro<Server> start_server(detail::ClientConnected client_connected, std::string host, uint16_t port,
                          ServerOptions options, std::size_t limit) {
  auto factory = detail::stream_server_factory(std::move(client_connected), limit);  // named: see above
  co_return co_await qi::get_running_loop().create_server(std::move(factory), std::move(host), port,
                                                          std::move(options));
}

Coro<Server> start_unix_server(detail::ClientConnected client_connected, std::string path, UnixServerOptions options,
                               std::size_t limit) {
  auto factory = detail::stream_server_factory(std::move(client_connected), limit);  // named: see above
  co_return co_await qi::get_running_loop().create_unix_server(std::move(factory), std::move(path),
                                                               std::move(options));
}

}  // namespace qi
