// null_transport.h — a qi::Transport that does nothing, for tests that give
// a StreamReader or StreamWriter a transport without a socket: each test
// overrides only what it watches (fuzz::FakeTransport records pause and
// resume, streams_test's CloseThrowsTransport throws from close()).
//
// The contract: writes are dropped, close() and abort() do nothing, the
// transport never reports closing, reading is on until pause_reading(), the
// write buffer is always empty, addresses are empty and fileno() is -1. Its
// owner destroys it; no loop does.
#pragma once

#include <qiloop/net/transport.h>

#include <cstddef>
#include <optional>
#include <span>
#include <utility>

namespace test_support {

class NullTransport : public qi::Transport {
 public:
  ~NullTransport() override = default;
  void write(QByteArrayView) override {}
  void writelines(std::span<const QByteArrayView>) override {}
  using qi::Transport::writelines;
  void write_eof() override {}
  bool can_write_eof() const noexcept override { return false; }
  void close() override {}
  void abort() override {}
  bool is_closing() const noexcept override { return false; }
  void pause_reading() override { reading_ = false; }
  void resume_reading() override { reading_ = true; }
  bool is_reading() const noexcept override { return reading_; }
  std::size_t get_write_buffer_size() const noexcept override { return 0; }
  void set_write_buffer_limits(std::optional<std::size_t>, std::optional<std::size_t>) override {}
  std::pair<std::size_t, std::size_t> get_write_buffer_limits() const noexcept override { return {0, 0}; }
  qi::SocketAddress peername() const override { return {}; }
  qi::SocketAddress sockname() const override { return {}; }
  int fileno() const noexcept override { return -1; }
  qi::BaseProtocol& get_protocol() const noexcept override { return protocol_; }

 private:
  bool reading_ = true;
  mutable qi::BaseProtocol protocol_;
};

}  // namespace test_support
