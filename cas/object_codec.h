// The stored form of an object: a fixed header then the payload, compressed
// with zstd when that is smaller. Pure functions, thread-safe.
//
//   offset size  field
//   0      1     codec: 0 = raw, 1 = zstd frame
//   1      1     kind: 0 = data chunk, 1 = metadata object
//   2      8     plain size, little-endian
//   10     8     write time, unix seconds, little-endian
//   18     ...   payload (plain bytes, or one zstd frame of them)
#pragma once

#include <string>
#include <string_view>

#include "cas/object_store.h"

namespace hashfs {

inline constexpr size_t kStoredHeaderSize = 18;
// Objects larger than this are refused: no object grows without bound.
inline constexpr uint64_t kMaxObjectSize = 64ull << 20;

// Hashes `plain` and frames it; compresses with zstd at `zstd_level` (0: never)
// when that saves at least 1/32 of the size.
PreparedObject PrepareObject(std::string_view plain, ObjectKind kind, int zstd_level);
// As above with a digest the caller already computed over `plain`.
PreparedObject PrepareObjectWithDigest(const Digest& d, std::string_view plain, ObjectKind kind,
                                       int zstd_level);

// InvalidArgument if `o`'s header claims more than kMaxObjectSize plain bytes;
// every ObjectStore::PutBatch checks this before writing. (A frame too short
// to have a header is stored as given and reads back as Corruption.)
Status CheckPrepared(const PreparedObject& o);

// Parses the header only.
Result<ObjectInfo> ParseStoredHeader(std::string_view stored);
// Decodes and verifies against `expected`: Corruption on any mismatch.
Result<std::string> DecodeStoredObject(const Digest& expected, std::string_view stored);

}  // namespace hashfs
