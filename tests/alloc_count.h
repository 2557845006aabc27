// tests/alloc_count.h — counts this thread's allocations, for the tests that
// show a path allocates nothing: alloc_count::now() before and after, the
// difference is what the code between made.
//
// It replaces the global operator new / delete, which must be defined once
// per program: include it in exactly one source file of a test binary.
#pragma once

#include <cstdlib>
#include <new>

namespace alloc_count {
inline thread_local long t_count = 0;
inline long now() noexcept { return t_count; }
}  // namespace alloc_count

void* operator new(std::size_t n) {
  ++alloc_count::t_count;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
