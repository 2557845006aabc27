// event.cpp — qi::Event (asyncio.Event).
#include <qiloop/sync/event.h>

namespace qi {

void Event::set() {
  if (value_) return;
  value_ = true;
  waiters_.wake_all();
}

}  // namespace qi
