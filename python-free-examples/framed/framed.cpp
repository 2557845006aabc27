#include "framed.h"

#include <QtCore/QtEndian>

#include <array>
#include <utility>

namespace framed {

namespace {

std::size_t checked_max(std::size_t max_frame, const char* api) {
  if (max_frame > kLargestFrame)
    throw qi::ValueError(std::string(api) + ": max_frame " + std::to_string(max_frame) +
                         " is more than a 4-byte prefix can say; give at most framed::kLargestFrame (" +
                         std::to_string(kLargestFrame) + ")");
  return max_frame;
}

std::array<char, kPrefixSize> encode_prefix(std::uint32_t size) {
  std::array<char, kPrefixSize> prefix;
  qToLittleEndian(size, prefix.data());
  return prefix;
}

}  // namespace

FrameTooLargeError::FrameTooLargeError(std::size_t size, std::size_t max_frame)
    : qi::ValueError("framed: a frame of " + std::to_string(size) + " bytes is over the maximum of " +
                     std::to_string(max_frame) + " bytes (raise max_frame on both ends if such frames are meant)"),
      size_(size),
      max_frame_(max_frame) {}

void write_frame(qi::StreamWriter& writer, QByteArrayView payload, std::size_t max_frame) {
  checked_max(max_frame, "framed::write_frame");
  const auto size = static_cast<std::size_t>(payload.size());
  if (size > max_frame) throw FrameTooLargeError(size, max_frame);
  const std::array<char, kPrefixSize> prefix = encode_prefix(static_cast<std::uint32_t>(size));
  const QByteArrayView pieces[] = {QByteArrayView(prefix.data(), kPrefixSize), payload};
  writer.writelines(pieces);
}

FrameReader::FrameReader(qi::StreamReader reader, std::size_t max_frame)
    : reader_(std::move(reader)), max_frame_(checked_max(max_frame, "framed::FrameReader")) {}

qi::Coro<QByteArray> FrameReader::read() { co_return *co_await read_frame(false); }

qi::Coro<std::optional<QByteArray>> FrameReader::next() { return read_frame(true); }

qi::Coro<std::optional<QByteArray>> FrameReader::read_frame(bool eof_is_end) {
  if (!pending_size_) {
    QByteArray prefix;
    try {
      prefix = co_await reader_.readexactly(kPrefixSize);
    } catch (const qi::IncompleteReadError& e) {
      if (eof_is_end && e.partial().isEmpty()) co_return std::nullopt;
      throw;
    }
    const std::uint32_t size = qFromLittleEndian<std::uint32_t>(prefix.constData());
    if (size > max_frame_) throw FrameTooLargeError(size, max_frame_);
    pending_size_ = size;
  }
  const std::uint32_t size = *pending_size_;
  QByteArray payload;
  try {
    payload = co_await reader_.readexactly(static_cast<qsizetype>(size));
  } catch (const qi::IncompleteReadError& e) {
    pending_size_.reset();
    const std::array<char, kPrefixSize> prefix = encode_prefix(size);
    QByteArray received = QByteArray(prefix.data(), kPrefixSize) + e.partial();
    throw qi::IncompleteReadError(std::move(received), static_cast<qsizetype>(kPrefixSize + size));
  }
  pending_size_.reset();
  co_return std::move(payload);
}

Connection::Connection(qi::StreamReader reader, qi::StreamWriter writer, std::size_t max_frame)
    : reader_(std::move(reader), max_frame), writer_(std::move(writer)) {}

qi::Coro<Connection> Connection::open(std::string host, std::uint16_t port, std::size_t max_frame) {
  checked_max(max_frame, "framed::Connection::open");
  auto [reader, writer] = co_await qi::open_connection(std::move(host), port);
  co_return Connection(std::move(reader), std::move(writer), max_frame);
}

qi::Coro<std::optional<QByteArray>> Connection::receive() {
  try {
    co_return co_await reader_.next();
  } catch (const FrameTooLargeError&) {
    writer_.close();
    throw;
  } catch (const qi::IncompleteReadError&) {
    writer_.close();
    throw;
  }
}

qi::Coro<void> Connection::send(QByteArrayView payload) {
  write_frame(writer_, payload, reader_.max_frame());
  co_await writer_.drain();
}

void Connection::close() { writer_.close(); }

qi::Coro<void> Connection::wait_closed() { return writer_.wait_closed(); }

std::string Connection::peer() const { return writer_.transport().peername().to_string(); }

}  // namespace framed
