// Little-endian fixed-width integers: the byte order of every binary header
// and record hashfs writes (design.md). Pure functions, safe from any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace hashfs {

// Writes the low `n` bytes (1..8) of v at p, least significant first.
inline void StoreLE(char* p, uint64_t v, int n) {
  for (int i = 0; i < n; i++) p[i] = static_cast<char>(v >> (8 * i));
}

// Appends the low `n` bytes (1..8) of v to *s, least significant first.
inline void AppendLE(std::string* s, uint64_t v, int n) {
  for (int i = 0; i < n; i++) s->push_back(static_cast<char>(v >> (8 * i)));
}

// The `n`-byte (1..8) little-endian integer at p.
inline uint64_t LoadLE(const char* p, int n) {
  uint64_t v = 0;
  for (int i = n - 1; i >= 0; i--) v = v << 8 | static_cast<uint8_t>(p[i]);
  return v;
}

// The `n`-byte little-endian integer at s[pos]; the caller has checked that
// pos + n <= s.size().
inline uint64_t LoadLE(std::string_view s, size_t pos, int n) { return LoadLE(s.data() + pos, n); }

}  // namespace hashfs
