// intrusive_list.h — the doubly linked lists a loop keeps of objects that
// leave them on their own (started async generators, combinators' futures
// holding hooks): each node holds the head of the list it is in, so it can
// unlink itself in O(1) without knowing its loop. Internal.
#pragma once

namespace qi::detail {

// The node's fields, named by member pointers (a node's own may be private:
// its members pass them): kList (the head it is in, null when in none),
// kPrev, kNext. Loop thread only.
template <class T, T** T::*kList, T* T::*kPrev, T* T::*kNext>
struct IntrusiveList {
  static void push_front(T*& head, T* n) noexcept {
    n->*kList = &head;
    n->*kPrev = nullptr;
    n->*kNext = head;
    if (head) head->*kPrev = n;
    head = n;
  }
  // Does nothing for a node in no list.
  static void unlink(T* n) noexcept {
    if (!(n->*kList)) return;
    T* prev = n->*kPrev;
    T* next = n->*kNext;
    (prev ? prev->*kNext : *(n->*kList)) = next;
    if (next) next->*kPrev = prev;
    n->*kList = nullptr;
    n->*kPrev = n->*kNext = nullptr;
  }
};

}  // namespace qi::detail
