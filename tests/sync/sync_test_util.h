// What the primitives' tests share: an event log and the loop-binding check.
#pragma once

#include <qiloop/testing.h>

#include <string>
#include <vector>

namespace sync_test {

using Strings = std::vector<std::string>;

// A primitive made before any loop runs is bound by its first blocking wait
// and refuses a blocking wait under another loop, naming itself (`name`).
// block() returns a Coro<void> that blocks on the primitive; unblock() one
// that ends that wait.
template <class Block, class Unblock>
void expect_bound_to_first_loop(const std::string& name, Block block, Unblock unblock) {
  {
    QiEventLoop first;
    first.run_until_complete([](Block& block, Unblock& unblock) -> qi::Coro<void> {
      auto t = qi::create_task(block());
      co_await qi::sleep(0);
      EXPECT_FALSE(t.done());
      co_await unblock();
      co_await t;
    }(block, unblock));
  }
  QiEventLoop second;
  try {
    second.run_until_complete(block());
    ADD_FAILURE() << name << ": no error under a second loop";
  } catch (const qi::RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find(name + " is bound to another event loop"), std::string::npos) << e.what();
  }
}

// A task waiting on a primitive that was destroyed under it (user error),
// then cancelled: it ends with a qi::RuntimeError naming the primitive,
// without touching it (ASan watches that).
inline qi::Coro<void> expect_orphaned_waiter_fails(qi::Task<void> waiter, std::string name) {
  waiter.cancel();
  try {
    co_await waiter;
    ADD_FAILURE() << name << ": no error";
  } catch (const qi::RuntimeError& e) {
    EXPECT_NE(std::string(e.what()).find(name + " was destroyed while a task waited on it"), std::string::npos)
        << e.what();
  }
}

}  // namespace sync_test
