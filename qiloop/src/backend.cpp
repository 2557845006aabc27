// backend.cpp — what both backends share (see backend.h).
#include "backend.h"

#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>

namespace qi::detail {

namespace {

bool cancelled(const CallbackNode* n) noexcept { return n && (n->load_state() & CallbackNode::kCancelled); }

// An fd handler is linked into the ready queue at most once (it runs at most
// once per iteration, as in asyncio).
bool enqueue_one(ReadyQueue& ready, CallbackNode* n) noexcept {
  if (!n || (n->load_state() & (CallbackNode::kQueued | CallbackNode::kCancelled))) return false;
  n->set_state(CallbackNode::kQueued);
  n->retain();
  ready.push(n);
  return true;
}

std::atomic<unsigned> g_application_generation{0};

}  // namespace

FdHandlers FdHandlers::take_cancelled() noexcept {
  FdHandlers taken;
  if (cancelled(reader)) taken.reader = std::exchange(reader, nullptr);
  if (cancelled(writer)) taken.writer = std::exchange(writer, nullptr);
  return taken;
}

void FdHandlers::release() noexcept {
  for (CallbackNode* n : {std::exchange(reader, nullptr), std::exchange(writer, nullptr)})
    if (n) release_node(n);
}

void FdHandlers::move_to(std::vector<CallbackNode*>& out) {
  for (CallbackNode* n : {reader, writer})
    if (n) out.push_back(n);
  reader = writer = nullptr;
}

int FdHandlers::enqueue(ReadyQueue& ready, bool readable, bool writable) noexcept {
  return (readable && enqueue_one(ready, reader)) + (writable && enqueue_one(ready, writer));
}

std::string StaleRegistration::message() const {
  const bool both = handlers.reader && handlers.writer;
  std::string what = both ? "reader and writer" : handlers.reader ? "reader" : "writer";
  std::string fix = both ? "remove_reader() and remove_writer()" : handlers.reader ? "remove_reader()" : "remove_writer()";
  return "fd " + std::to_string(fd) + " was closed while its " + what + (both ? " were" : " was") + " registered (" +
         std::strerror(error) + "); the " + what +
         " will not run again, nor for a file that reuses the number. Call " + fix + " before closing an fd";
}

unsigned application_generation() noexcept { return g_application_generation.load(std::memory_order_relaxed); }

void count_new_application() noexcept { g_application_generation.fetch_add(1, std::memory_order_relaxed); }

void throw_unwatchable(int fd, int err) {
  std::string msg = "fd " + std::to_string(fd);
  if (err == EBADF)
    msg += " is not an open file descriptor (EBADF); pass an open socket, pipe or other pollable fd";
  else if (err == EPERM)
    msg += " cannot be polled (EPERM: regular files and directories are always ready); read it directly, "
           "or in a thread";
  else
    msg += " cannot be watched: " + std::string(std::strerror(err));
  throw std::invalid_argument(msg);
}

}  // namespace qi::detail
