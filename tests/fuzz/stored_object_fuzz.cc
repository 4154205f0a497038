// libFuzzer target: the stored-object codec (cas/object_codec.h) on arbitrary
// stored bytes: ParseStoredHeader, CheckPrepared and DecodeStoredObject.
//
// Checks:
//  * ParseStoredHeader accepts exactly the documented header (size >= 18,
//    codec 0/1, kind 0/1, plain size <= 64 MiB, raw payload length equal to
//    the plain size) and reports the fields as stored (little-endian).
//  * CheckPrepared refuses exactly the frames whose header claims > 64 MiB.
//  * DecodeStoredObject NEVER returns OK with bytes whose SHA-256 differs from
//    the digest asked for, nor with a length other than the header's plain
//    size; every refusal is Corruption. Tried digests: the SHA-256 of what an
//    independent reference decoder (zstd streaming API, exactly one frame)
//    produces, the SHA-256 of the raw payload, a one-bit-off digest, zero,
//    and 32 bytes taken from the input.
//  * Differential: it accepts (for the right digest) exactly what the
//    reference decoder accepts, with the same bytes.
//  * Round trip: re-encoding the decoded bytes (raw and zstd) decodes again
//    to the same bytes with the same kind.
//  * The same bytes as an "objects" value of the LMDB store
//    (cas/pack_pointer.h): a pack pointer exactly when the first byte is 2,
//    decoded exactly when it is the documented 18 bytes (reserved byte 0),
//    fields little-endian as stored, re-encoding gives the bytes back; such a
//    value never parses as a stored object.
#include <zstd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <optional>
#include <string>

#include "cas/object_codec.h"
#include "cas/pack_pointer.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace hashfs;

uint64_t LE64(std::string_view s, size_t off) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | static_cast<uint8_t>(s[off + static_cast<size_t>(i)]);
  return v;
}

// True if the one frame in `frame` (already accepted by the streaming decoder)
// has a Compressed_Block of Block_Size 0. RFC 8878 section 3.1.1.3: a
// compressed block holds at least a Literals_Section_Header, so such a block
// is malformed. zstd 1.5.4's streaming decoder skips it as an empty block;
// its one-shot decoder, which DecodeStoredObject uses, refuses it.
bool HasEmptyCompressedBlock(std::string_view frame) {
  // Frame header (RFC 8878 section 3.1.1.1): magic, descriptor, optional
  // window descriptor, dictionary id and content size.
  if (frame.size() < 5) return false;
  uint8_t fhd = static_cast<uint8_t>(frame[4]);
  bool single_segment = (fhd & 0x20) != 0;
  static constexpr size_t kDictIdBytes[4] = {0, 1, 2, 4};
  static constexpr size_t kContentSizeBytes[4] = {0, 2, 4, 8};
  size_t fcs = (fhd >> 6) == 0 ? (single_segment ? 1 : 0) : kContentSizeBytes[fhd >> 6];
  size_t pos = 5 + (single_segment ? 0 : 1) + kDictIdBytes[fhd & 3] + fcs;
  while (pos + 3 <= frame.size()) {
    uint32_t h = static_cast<uint8_t>(frame[pos]) | static_cast<uint32_t>(static_cast<uint8_t>(frame[pos + 1])) << 8 |
                 static_cast<uint32_t>(static_cast<uint8_t>(frame[pos + 2])) << 16;
    bool last = (h & 1) != 0;
    uint32_t type = (h >> 1) & 3, block_size = h >> 3;
    if (type == 2 && block_size == 0) return true;
    pos += 3 + (type == 1 ? 1 : block_size);
    if (last) break;
  }
  return false;
}

// The plain bytes a stored object holds, decoded independently of
// object_codec.cc: a raw payload as is; a zstd payload must be exactly one
// complete frame that streams out exactly `plain_size` bytes and has no
// empty compressed block.
std::optional<std::string> ReferenceDecode(std::string_view stored) {
  if (stored.size() < kStoredHeaderSize) return std::nullopt;
  uint8_t codec = static_cast<uint8_t>(stored[0]), kind = static_cast<uint8_t>(stored[1]);
  uint64_t plain_size = LE64(stored, 2);
  if (codec > 1 || kind > 1 || plain_size > kMaxObjectSize) return std::nullopt;
  std::string_view payload = stored.substr(kStoredHeaderSize);
  if (codec == 0) {
    if (payload.size() != plain_size) return std::nullopt;
    return std::string(payload);
  }
  // Stream out in small steps, so garbage that claims a large size costs
  // little; more output than the header claims is refused.
  ZSTD_DStream* ds = ZSTD_createDStream();
  std::string out;
  char buf[16384];
  ZSTD_inBuffer in{payload.data(), payload.size(), 0};
  size_t ret = 0;
  bool ok = false;
  for (;;) {
    ZSTD_outBuffer ob{buf, sizeof buf, 0};
    size_t before_in = in.pos;
    ret = ZSTD_decompressStream(ds, &ob, &in);
    if (ZSTD_isError(ret)) break;
    out.append(buf, ob.pos);
    if (out.size() > plain_size) break;
    if (ret == 0) {  // the frame is complete and flushed
      ok = in.pos == in.size && out.size() == plain_size;
      break;
    }
    if (in.pos == before_in && ob.pos == 0) break;  // truncated frame
  }
  ZSTD_freeDStream(ds);
  if (!ok || HasEmptyCompressedBlock(payload)) return std::nullopt;
  return out;
}

void CheckHeader(std::string_view stored) {
  Result<ObjectInfo> info = ParseStoredHeader(stored);
  bool expect_ok = stored.size() >= kStoredHeaderSize && static_cast<uint8_t>(stored[0]) <= 1 &&
                   static_cast<uint8_t>(stored[1]) <= 1 && LE64(stored, 2) <= kMaxObjectSize &&
                   (stored[0] == 1 || LE64(stored, 2) == stored.size() - kStoredHeaderSize);
  FUZZ_CHECK(info.ok() == expect_ok);
  if (!info.ok()) {
    fuzz::CheckRefusal(info.status());
  } else {
    FUZZ_CHECK(info->compressed == (stored[0] == 1));
    FUZZ_CHECK(static_cast<uint8_t>(info->kind) == static_cast<uint8_t>(stored[1]));
    FUZZ_CHECK(info->plain_size == LE64(stored, 2));
    FUZZ_CHECK(info->write_time == LE64(stored, 10));
    FUZZ_CHECK(info->stored_size == stored.size());
  }
  PreparedObject p{Digest{}, std::string(stored)};
  Status cp = CheckPrepared(p);
  bool oversize = stored.size() >= kStoredHeaderSize && LE64(stored, 2) > kMaxObjectSize;
  FUZZ_CHECK(cp.ok() == !oversize);
  if (!cp.ok()) FUZZ_CHECK(cp.code() == Status::Code::kInvalidArgument);
}

// Decodes for `want`; returns the bytes if accepted, after checking they are right.
std::optional<std::string> DecodeFor(const Digest& want, std::string_view stored) {
  Result<std::string> r = DecodeStoredObject(want, stored);
  if (!r.ok()) {
    fuzz::CheckRefusal(r.status());
    return std::nullopt;
  }
  FUZZ_CHECK_MSG(Sha256Of(*r) == want, "DecodeStoredObject returned bytes that do not hash to the digest");
  Result<ObjectInfo> info = ParseStoredHeader(stored);
  FUZZ_CHECK(info.ok());
  FUZZ_CHECK(r->size() == info->plain_size);
  return std::move(r).value();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view stored = fuzz::AsView(data, size);
  CheckHeader(stored);

  std::optional<std::string> ref = ReferenceDecode(stored);
  if (ref) {
    Digest d = Sha256Of(*ref);
    std::optional<std::string> got = DecodeFor(d, stored);
    FUZZ_CHECK_MSG(got.has_value(), "a well-formed object was refused");
    FUZZ_CHECK(*got == *ref);
    // One flipped bit in the expected digest must be refused.
    Digest off = d;
    off.bytes[size % Digest::kSize] ^= static_cast<uint8_t>(1u << (size % 8));
    FUZZ_CHECK(!DecodeFor(off, stored).has_value());
    // Re-encoding (raw and compressed) round-trips with the same kind.
    ObjectKind kind = static_cast<ObjectKind>(stored[1]);
    for (int level : {0, 1}) {
      PreparedObject p = PrepareObjectWithDigest(d, *got, kind, level);
      FUZZ_CHECK(p.digest == d);
      FUZZ_CHECK(CheckPrepared(p).ok());
      Result<ObjectInfo> info = ParseStoredHeader(p.stored);
      FUZZ_CHECK(info.ok() && info->kind == kind && info->plain_size == got->size());
      std::optional<std::string> again = DecodeFor(d, p.stored);
      FUZZ_CHECK(again.has_value() && *again == *got);
    }
  } else {
    // Whatever digest is asked for, malformed stored bytes are refused.
    if (stored.size() >= kStoredHeaderSize)
      FUZZ_CHECK(!DecodeFor(Sha256Of(stored.substr(kStoredHeaderSize)), stored).has_value());
    FUZZ_CHECK(!DecodeFor(Sha256Of(stored), stored).has_value());
  }
  // As an "objects" value: a pack pointer or a stored object, never both.
  const bool pointer = size > 0 && data[0] == kPackedCodec;
  FUZZ_CHECK(IsPackPointer(stored) == pointer);
  Result<PackPointer> p = DecodePackPointer(stored);
  FUZZ_CHECK(p.ok() == (pointer && size == kPackPointerSize && data[1] == 0));
  if (p.ok()) {
    uint64_t id = 0;
    for (int i = 9; i >= 2; i--) id = id << 8 | data[i];
    FUZZ_CHECK(p->pack == id);
    FUZZ_CHECK(p->offset == (uint32_t{data[10]} | uint32_t{data[11]} << 8 | uint32_t{data[12]} << 16 |
                             uint32_t{data[13]} << 24));
    FUZZ_CHECK(p->length == (uint32_t{data[14]} | uint32_t{data[15]} << 8 | uint32_t{data[16]} << 16 |
                             uint32_t{data[17]} << 24));
    FUZZ_CHECK(EncodePackPointer(*p) == stored);
  } else {
    FUZZ_CHECK(p.status().code() == Status::Code::kCorruption);
  }
  if (pointer) FUZZ_CHECK(!ParseStoredHeader(stored).ok());
  // Digests unrelated to the content: accepted only if they really match.
  (void)DecodeFor(Digest::Zero(), stored);
  if (size >= Digest::kSize) {
    Digest tail;
    std::memcpy(tail.bytes.data(), data + size - Digest::kSize, Digest::kSize);
    (void)DecodeFor(tail, stored);
  }
  return 0;
}
