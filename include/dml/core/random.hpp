// dml/core/random.hpp: counter-based random numbers (Philox4x32-10).
//
// A Generator is (seed, counter). Each draw of four 32-bit words consumes one
// counter value, so the state is two integers: checkpoints save it exactly and
// the same stream can be produced on the GPU by the DML_HD philox function.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <numbers>

#include "../config.hpp"

namespace dml {

namespace detail {
DML_HD void mulhilo32(std::uint32_t a, std::uint32_t b, std::uint32_t& hi, std::uint32_t& lo) {
  std::uint64_t p = static_cast<std::uint64_t>(a) * b;
  hi = static_cast<std::uint32_t>(p >> 32);
  lo = static_cast<std::uint32_t>(p);
}
}  // namespace detail

// Philox4x32-10 (Salmon et al. 2011): four random words for (counter, key).
struct Philox4 {
  std::uint32_t v[4];
};
DML_HD Philox4 philox4x32(std::uint64_t counter, std::uint64_t key) {
  std::uint32_t c0 = static_cast<std::uint32_t>(counter), c1 = static_cast<std::uint32_t>(counter >> 32);
  std::uint32_t c2 = 0, c3 = 0;
  std::uint32_t k0 = static_cast<std::uint32_t>(key), k1 = static_cast<std::uint32_t>(key >> 32);
  for (int round = 0; round < 10; ++round) {
    std::uint32_t hi0, lo0, hi1, lo1;
    detail::mulhilo32(0xD2511F53u, c0, hi0, lo0);
    detail::mulhilo32(0xCD9E8D57u, c2, hi1, lo1);
    std::uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return {{c0, c1, c2, c3}};
}

// Uniform in [0, 1) from 24 (float) or 53 (double) random bits.
DML_HD float uniform_float(std::uint32_t w) { return static_cast<float>(w >> 8) * (1.0f / 16777216.0f); }
DML_HD double uniform_double(std::uint32_t a, std::uint32_t b) {
  std::uint64_t x = (static_cast<std::uint64_t>(a) << 21) ^ (b >> 11);
  return static_cast<double>(x & ((1ull << 53) - 1)) * (1.0 / 9007199254740992.0);
}

// A seeded stream. Copyable; copying duplicates the stream.
class Generator {
 public:
  struct State {
    std::uint64_t seed = 0;
    std::uint64_t counter = 0;
    std::uint32_t unused = 0;  // words of the last block not yet handed out
    friend bool operator==(const State&, const State&) = default;
  };

  explicit Generator(std::uint64_t seed = 0) : state_{seed, 0} {}

  // The exact position in the stream; set_state(state()) resumes it bit for bit.
  State state() const noexcept { return {state_.seed, state_.counter, static_cast<std::uint32_t>(have_)}; }
  void set_state(State s) noexcept {
    state_ = {s.seed, s.counter, 0};
    have_ = static_cast<int>(s.unused > 4 ? 4 : s.unused);
    if (have_ > 0 && s.counter > 0) buffer_ = philox4x32(s.counter - 1, s.seed);
    else have_ = 0;
  }

  // Four fresh words; advances the counter by one.
  Philox4 next4() noexcept { return philox4x32(state_.counter++, state_.seed); }

  std::uint32_t next_u32() noexcept {
    if (have_ == 0) {
      buffer_ = next4();
      have_ = 4;
    }
    return buffer_.v[4 - have_--];
  }

  // Uniform in [0, 1).
  double uniform() noexcept {
    std::uint32_t a = next_u32(), b = next_u32();
    return uniform_double(a, b);
  }
  // Uniform integer in [0, n); n must be positive.
  std::uint64_t below(std::uint64_t n) noexcept {
    std::uint64_t x = (static_cast<std::uint64_t>(next_u32()) << 32) | next_u32();
    return x % n;
  }
  // Standard normal (Box-Muller).
  double normal() noexcept {
    double u1 = uniform(), u2 = uniform();
    if (u1 < 1e-300) u1 = 1e-300;
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
  }

 private:
  State state_;
  Philox4 buffer_{};
  int have_ = 0;
};

}  // namespace dml
