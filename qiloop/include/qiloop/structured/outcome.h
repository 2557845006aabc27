// -----------------------------------------------------------------------------
// File: qiloop/structured/outcome.h
// -----------------------------------------------------------------------------
//
// qi::Outcome<T> is what one child of qi::gather_settled() ended with: its
// value, or the exception it ended with (a cancelled child: a
// qi::CancelledError) — asyncio's gather(return_exceptions=True) list item.
//
// Example:
//
//   auto [a, b] = co_await qi::gather_settled(fetch(1), fetch(2));
//   if (a.has_value()) use(a.value());
//   else log(a.exception());          // std::exception_ptr, original type
//   int v = b.value();                // rethrows b's exception, if it has one
//
// An Outcome is a plain value type (copyable when T is; Outcome<void> holds
// only the exception, or nothing). No loop, no thread rule: use it anywhere.
#pragma once

#include <exception>
#include <stdexcept>
#include <utility>
#include <variant>

namespace qi {

namespace detail {
[[noreturn]] inline void throw_null_outcome_exception() {
  throw std::invalid_argument(
      "qi::Outcome: the exception_ptr is null; an Outcome holds a value or a real exception "
      "(std::make_exception_ptr / std::current_exception)");
}
}  // namespace detail

// qi::Outcome<T>
//
// Holds either a T or a non-null std::exception_ptr, never neither.
template <class T>
class Outcome {
 public:
  using value_type = T;

  // Outcome::Outcome()
  // Outcome(std::in_place, args...) holds T(args...); Outcome(e) holds the
  // exception e (std::invalid_argument for a null one).
  template <class... A>
  explicit Outcome(std::in_place_t, A&&... args) : v_(std::in_place_index<0>, std::forward<A>(args)...) {}
  explicit Outcome(std::exception_ptr e) : v_(std::in_place_index<1>, std::move(e)) {
    if (!std::get<1>(v_)) detail::throw_null_outcome_exception();
  }

  // Outcome::has_value()
  // True when it holds a value (explicit operator bool says the same).
  bool has_value() const noexcept { return v_.index() == 0; }
  explicit operator bool() const noexcept { return has_value(); }

  // Outcome::value()
  // The value; rethrows the held exception (original type) when there is
  // one. `std::move(o).value()` moves the value out.
  T& value() & { return check(), std::get<0>(v_); }
  const T& value() const& { return check(), std::get<0>(v_); }
  T&& value() && { return check(), std::get<0>(std::move(v_)); }

  // Outcome::exception()
  // The held exception, or null when it holds a value. Never throws.
  std::exception_ptr exception() const noexcept { return has_value() ? nullptr : std::get<1>(v_); }

 private:
  void check() const {
    if (!has_value()) std::rethrow_exception(std::get<1>(v_));
  }
  std::variant<T, std::exception_ptr> v_;
};

// qi::Outcome<void>
//
// Success (the default) or an exception.
template <>
class Outcome<void> {
 public:
  using value_type = void;

  Outcome() noexcept = default;
  explicit Outcome(std::in_place_t) noexcept {}
  explicit Outcome(std::exception_ptr e) : e_(std::move(e)) {
    if (!e_) detail::throw_null_outcome_exception();
  }

  bool has_value() const noexcept { return !e_; }
  explicit operator bool() const noexcept { return has_value(); }
  // Outcome<void>::value()
  // Returns when it holds success; rethrows the held exception otherwise.
  void value() const {
    if (e_) std::rethrow_exception(e_);
  }
  std::exception_ptr exception() const noexcept { return e_; }

 private:
  std::exception_ptr e_;
};

}  // namespace qi
