// Small objects in the LMDB store live in packs: one LMDB value in the
// "packs" database holding many stored objects back to back, so an object of
// a few KiB costs its bytes, not a whole 4 KiB overflow page or a slot in a
// two-thirds-full B-tree leaf. The "objects" database then maps the digest to
// a pack pointer instead of the stored bytes. Pure functions, thread-safe;
// private to cas/ (design.md, "Packs", is the format's reference).
//
// Pack pointer (kPackPointerSize bytes):
//   offset size  field
//   0      1     kPackedCodec (2): never a stored object's codec byte
//   1      1     0 (reserved)
//   2      8     pack id, little-endian
//   10     4     offset of the stored object in the pack, little-endian
//   14     4     length of the stored object, little-endian
// Pack key: the pack id as 8 bytes big-endian (byte order = numeric order).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "cas/status.h"

namespace hashfs {

inline constexpr uint8_t kPackedCodec = 2;
inline constexpr size_t kPackPointerSize = 18;
// Stored objects shorter than this go into packs; longer ones are values of
// their own (their rounding to whole pages is then under 2%).
inline constexpr size_t kPackBelow = 256 * 1024;
// A pack is closed once adding the next object would pass this size.
inline constexpr size_t kPackTarget = 4 << 20;

struct PackPointer {
  uint64_t pack = 0;
  uint32_t offset = 0;
  uint32_t length = 0;
};

// True if an "objects" value is a pack pointer (its first byte is kPackedCodec).
inline bool IsPackPointer(std::string_view value) {
  return !value.empty() && static_cast<uint8_t>(value[0]) == kPackedCodec;
}

std::string EncodePackPointer(const PackPointer& p);
// Corruption if `value` is not a well-formed pack pointer.
Result<PackPointer> DecodePackPointer(std::string_view value);

std::string PackKey(uint64_t id);
// nullopt unless `key` is 8 bytes.
std::optional<uint64_t> PackIdOfKey(std::string_view key);

// Whether PutBatch stores `stored` in a pack: short values, and any value a
// reader would otherwise take for a pack pointer (a malformed object whose
// first byte is not a valid codec) so it reads back byte for byte.
inline bool BelongsInPack(std::string_view stored) {
  return stored.size() < kPackBelow || static_cast<uint8_t>(stored[0]) >= kPackedCodec;
}

}  // namespace hashfs
