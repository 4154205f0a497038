// Digest: a SHA-256 object name, and the hashing entry points.
//
// Every object is named by SHA-256 of its plain (uncompressed) bytes. Hashing
// goes through OpenSSL's EVP interface so SHA-NI/AVX2 code paths are used.
// Digest is a trivially-copyable value; Sha256 is not thread-safe (use one per thread).
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <string_view>

#include "cas/status.h"

namespace hashfs {

struct Digest {
  static constexpr size_t kSize = 32;
  std::array<uint8_t, kSize> bytes{};

  static Digest Zero() { return Digest{}; }
  bool IsZero() const;
  // Lower-case 64-character hex.
  std::string Hex() const;
  // Parses exactly 64 hex digits.
  static Result<Digest> FromHex(std::string_view hex);
  // From exactly 32 raw bytes.
  static Result<Digest> FromBytes(std::string_view raw);
  std::string_view AsBytes() const {
    return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
  }
  // The first 8 bytes as a big-endian integer: a well-mixed hash of the name.
  uint64_t Prefix64() const;

  // NOLINTNEXTLINE(modernize-use-nullptr): false positive of clang-tidy 14 on the defaulted <=>.
  auto operator<=>(const Digest&) const = default;
};

// One-shot SHA-256.
Digest Sha256Of(std::string_view data);

// Incremental SHA-256.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(std::string_view data);
  Digest Finish();  // resets the context for reuse

 private:
  void* ctx_;  // EVP_MD_CTX
};

struct DigestHash {
  size_t operator()(const Digest& d) const noexcept {
    size_t h;
    std::memcpy(&h, d.bytes.data(), sizeof h);
    return h;
  }
};

}  // namespace hashfs
