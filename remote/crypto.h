// Client-side cryptography of the remote (design.md, "Remote format"):
//  * a random 64-byte master key: bytes 0..31 encrypt (AES-256-GCM), bytes
//    32..63 name objects (HMAC-SHA256), so Discord sees neither plaintext nor
//    plaintext hashes;
//  * the master key is stored on the channel wrapped (AES-256-GCM) by a key
//    derived from the passphrase with scrypt;
//  * Seal/Unseal: AES-256-GCM with a fresh random 96-bit nonce per call, laid
//    out as nonce(12) || ciphertext || tag(16), authenticating `aad`.
// Pure functions over OpenSSL; thread-safe. Secrets live in SecretBytes,
// which wipes its memory on destruction.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "cas/digest.h"
#include "cas/status.h"

namespace hashfs::remote {

inline constexpr size_t kSealNonceSize = 12;
inline constexpr size_t kSealTagSize = 16;
inline constexpr size_t kSealOverhead = kSealNonceSize + kSealTagSize;

// A byte string that is wiped (OPENSSL_cleanse) when destroyed.
class SecretBytes {
 public:
  SecretBytes() = default;
  explicit SecretBytes(std::string b) : b_(std::move(b)) {}
  SecretBytes(const SecretBytes&) = default;
  SecretBytes& operator=(const SecretBytes&) = default;
  SecretBytes(SecretBytes&&) = default;
  SecretBytes& operator=(SecretBytes&&) = default;
  ~SecretBytes();
  std::string_view view() const { return b_; }
  size_t size() const { return b_.size(); }
  bool empty() const { return b_.empty(); }

 private:
  std::string b_;
};

struct ScryptParams {
  uint64_t n = 1u << 15;  // CPU/memory cost (power of two)
  uint64_t r = 8;
  uint64_t p = 1;
  std::string salt;  // 16 random bytes
};

// Cryptographically random bytes (RAND_bytes).
std::string RandomBytes(size_t n);

// Most memory scrypt may need (128 N r bytes): N = 2^22 with r = 32 would be
// 16 GiB, so the ranges alone do not bound it.
inline constexpr uint64_t kMaxScryptMemory = 1ull << 30;

// InvalidArgument for parameters outside N a power of two in [2^10, 2^22],
// r in [1, 32], p in [1, 16], salt 1..64 bytes, or needing more than
// kMaxScryptMemory (the limits keep a hostile manifest from demanding huge
// memory).
Status CheckScryptParams(const ScryptParams& params);
// scrypt(passphrase, salt, N, r, p) -> 32 bytes; CheckScryptParams first.
Result<SecretBytes> DeriveKey(std::string_view passphrase, const ScryptParams& params);

// AES-256-GCM. `key` must be 32 bytes.
std::string Seal(std::string_view key, std::string_view plaintext, std::string_view aad);
// Corruption if `sealed` is too short or fails authentication.
Result<std::string> Unseal(std::string_view key, std::string_view sealed, std::string_view aad);

// HMAC-SHA256(key, data).
std::array<uint8_t, 32> HmacSha256(std::string_view key, std::string_view data);

// The remote's keys.
class MasterKey {
 public:
  static constexpr size_t kSize = 64;
  static MasterKey Generate();
  static Result<MasterKey> FromBytes(std::string_view raw);  // exactly 64 bytes

  std::string_view enc_key() const { return raw_.view().substr(0, 32); }
  std::string_view id_key() const { return raw_.view().substr(32, 32); }
  std::string_view raw() const { return raw_.view(); }

  // The remote name of an object: HMAC-SHA256(id key, digest bytes).
  Digest KeyedId(const Digest& d) const;
  // The remote name of a piece of a split object (split.h):
  // HMAC-SHA256(id key, "hfpiece1" | digest bytes), never an object's name.
  Digest PieceKeyedId(const Digest& d) const;
  // Wraps the master key under a passphrase-derived key (32 bytes).
  std::string Wrap(std::string_view kek) const;
  // Permission ("wrong passphrase") if the wrapped key does not open.
  static Result<MasterKey> Unwrap(std::string_view kek, std::string_view wrapped);

 private:
  explicit MasterKey(SecretBytes raw) : raw_(std::move(raw)) {}
  SecretBytes raw_;
};

// Additional authenticated data used when wrapping the master key.
inline constexpr std::string_view kWrapAad = "hashfs-remote-key-v1";

// Base64 (standard alphabet, padded). Decoding accepts only the canonical
// encoding (unused bits of the last group zero), so it round-trips.
std::string Base64Encode(std::string_view in);
Result<std::string> Base64Decode(std::string_view in);

// Lower-case hex and back.
std::string HexEncode(std::string_view in);
Result<std::string> HexDecode(std::string_view in);

// A decimal id as Discord and the remote write them (snowflakes): 1..20
// digits, no sign, space or leading zero, at most 2^64 - 1. nullopt for
// anything else (strtoull read "-1" and overflowing ids as 2^64 - 1).
std::optional<uint64_t> ParseDecimalId(std::string_view s);

}  // namespace hashfs::remote
