#include "cas/object_codec.h"

#include <zstd.h>

#include <ctime>

#include "cas/little_endian.h"

namespace hashfs {
namespace {

struct ZstdCCtx {
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ~ZstdCCtx() { ZSTD_freeCCtx(c); }
};
struct ZstdDCtx {
  ZSTD_DCtx* d = ZSTD_createDCtx();
  ~ZstdDCtx() { ZSTD_freeDCtx(d); }
};

}  // namespace

PreparedObject PrepareObject(std::string_view plain, ObjectKind kind, int zstd_level) {
  return PrepareObjectWithDigest(Sha256Of(plain), plain, kind, zstd_level);
}

PreparedObject PrepareObjectWithDigest(const Digest& d, std::string_view plain, ObjectKind kind,
                                       int zstd_level) {
  PreparedObject out;
  out.digest = d;
  std::string& s = out.stored;
  char header[kStoredHeaderSize];
  header[0] = 0;
  header[1] = static_cast<char>(kind);
  StoreLE(header + 2, plain.size(), 8);
  StoreLE(header + 10, static_cast<uint64_t>(std::time(nullptr)), 8);
  if (zstd_level > 0 && plain.size() >= 64) {
    thread_local ZstdCCtx cctx;
    // Compress into a per-thread scratch buffer and copy out exactly the
    // result: a string resized down keeps its capacity, and queued objects
    // would otherwise hold their uncompressed size in memory.
    thread_local std::string scratch;
    size_t bound = ZSTD_compressBound(plain.size());
    if (scratch.size() < bound) scratch.resize(bound);
    size_t n = ZSTD_compressCCtx(cctx.c, scratch.data(), bound, plain.data(), plain.size(), zstd_level);
    if (!ZSTD_isError(n) && n + plain.size() / 32 < plain.size()) {
      header[0] = 1;
      s.resize(kStoredHeaderSize + n);
      std::memcpy(s.data(), header, kStoredHeaderSize);
      std::memcpy(s.data() + kStoredHeaderSize, scratch.data(), n);
      return out;
    }
  }
  s.resize(kStoredHeaderSize + plain.size());
  std::memcpy(s.data(), header, kStoredHeaderSize);
  std::memcpy(s.data() + kStoredHeaderSize, plain.data(), plain.size());
  return out;
}

Result<ObjectInfo> ParseStoredHeader(std::string_view stored) {
  if (stored.size() < kStoredHeaderSize) return Status::Corruption("stored object shorter than its header");
  ObjectInfo info;
  uint8_t codec = static_cast<uint8_t>(stored[0]);
  uint8_t kind = static_cast<uint8_t>(stored[1]);
  if (codec > 1) return Status::Corruption("stored object has unknown codec");
  if (kind > 1) return Status::Corruption("stored object has unknown kind");
  info.compressed = codec == 1;
  info.kind = static_cast<ObjectKind>(kind);
  info.plain_size = LoadLE(stored.data() + 2, 8);
  info.write_time = LoadLE(stored.data() + 10, 8);
  info.stored_size = stored.size();
  if (info.plain_size > kMaxObjectSize) return Status::Corruption("stored object claims an absurd size");
  if (!info.compressed && info.plain_size != stored.size() - kStoredHeaderSize)
    return Status::Corruption("stored object size does not match its header");
  return info;
}

Result<std::string> DecodeStoredObject(const Digest& expected, std::string_view stored) {
  HASHFS_ASSIGN_OR_RETURN(ObjectInfo info, ParseStoredHeader(stored));
  std::string_view payload = stored.substr(kStoredHeaderSize);
  std::string plain;
  if (info.compressed) {
    // Exactly one zstd frame (design.md), whose declared content size, when
    // it has one, is the header's: checked before allocating the output.
    size_t frame = ZSTD_findFrameCompressedSize(payload.data(), payload.size());
    unsigned long long declared = ZSTD_getFrameContentSize(payload.data(), payload.size());
    if (ZSTD_isError(frame) || frame != payload.size() || declared == ZSTD_CONTENTSIZE_ERROR ||
        (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != info.plain_size))
      return Status::Corruption("object " + expected.Hex() + " is not one zstd frame of its size");
    thread_local ZstdDCtx dctx;
    plain.resize(info.plain_size);
    size_t n = ZSTD_decompressDCtx(dctx.d, plain.data(), plain.size(), payload.data(), payload.size());
    if (ZSTD_isError(n) || n != info.plain_size)
      return Status::Corruption("object " + expected.Hex() + " does not decompress");
  } else {
    plain.assign(payload);
  }
  if (Sha256Of(plain) != expected)
    return Status::Corruption("object " + expected.Hex() + " does not match its hash");
  return plain;
}

Status CheckPrepared(const PreparedObject& o) {
  if (o.stored.size() < kStoredHeaderSize) return Status::Ok();  // unreadable; Get reports Corruption
  uint64_t plain = 0;
  for (int i = 0; i < 8; i++) plain |= static_cast<uint64_t>(static_cast<uint8_t>(o.stored[2 + i])) << (8 * i);
  if (plain > kMaxObjectSize)
    return Status::InvalidArgument("object of " + std::to_string(plain) + " bytes exceeds the " +
                                   std::to_string(kMaxObjectSize) + "-byte object limit");
  return Status::Ok();
}

}  // namespace hashfs
