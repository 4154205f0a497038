// Packs: the unit uploaded to the remote (one attachment each). Pure
// encode/decode, no I/O; thread-compatible. Byte layout (all integers
// little-endian; design.md "Remote format" is normative):
//
//   header   "HFSPACK1" (8) | pack id (16 random bytes)
//   entries  one per object, back to back:
//              Seal(enc key, frame, aad = "hfe1" | pack id | keyed id)
//            = nonce (12) | ciphertext (frame size) | tag (16)
//            where frame = the object's stored frame (object_codec.h) with
//            its write-time field zeroed, and keyed id = HMAC(id key, digest)
//   index    Seal(enc key, u32 version=1 | u32 count |
//                 count x (keyed id 32 | digest 32 | u64 offset | u32 length |
//                          u8 kind: 0 data, 1 meta, 2 split descriptor, 3 piece),
//                 aad = "hfi1" | pack id)
//   footer   pack id (16) | u32 sealed index length | "HFSPEND1" (8)
//
// Offsets/lengths address the sealed entries inside the pack, so one object
// is one HTTP Range request. The footer alone locates the index, so a pack's
// index is one Range request on its tail. Decoders treat every byte as
// hostile: they bound every size by the input and never crash.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cas/object_store.h"
#include "remote/crypto.h"

namespace hashfs::remote {

inline constexpr std::string_view kPackMagic = "HFSPACK1";
inline constexpr std::string_view kPackEndMagic = "HFSPEND1";
inline constexpr size_t kPackIdSize = 16;
inline constexpr size_t kPackHeaderSize = 8 + kPackIdSize;
inline constexpr size_t kPackFooterSize = kPackIdSize + 4 + 8;
inline constexpr size_t kIndexRecordSize = 32 + 32 + 8 + 4 + 1;
inline constexpr size_t kIndexHeaderSize = 8;  // version + count
inline constexpr uint32_t kPackIndexVersion = 1;
// Default attachment (pack) limit: Discord's per-file limit for bots.
inline constexpr uint64_t kDefaultPackLimit = 10ull << 20;
// Smallest pack limit the remote shrinks to on 413 answers.
inline constexpr uint64_t kMinPackLimit = 64ull << 10;

// Bytes of a pack holding one object whose stored frame is `frame_size`
// bytes: an object with a larger frame fits in no attachment of that limit,
// and push refuses it.
constexpr uint64_t OneObjectPackSize(uint64_t frame_size) {
  return kPackHeaderSize + kSealOverhead + frame_size + kSealOverhead + kIndexHeaderSize + kIndexRecordSize +
         kPackFooterSize;
}

// What an entry holds. kObject: an object's frame. kSplit: the descriptor
// of an object too large for one pack (split.h), under the object's keyed
// id and digest. kPiece: a slice of such an object's frame, under the
// SHA-256 of the slice and its keyed id; never stored as an object.
enum class EntryType : uint8_t { kObject, kSplit, kPiece };

struct PackEntry {
  Digest keyed_id;
  Digest digest;         // plain SHA-256 name (only ever stored encrypted)
  uint64_t offset = 0;   // of the sealed entry, from the start of the pack
  uint32_t length = 0;   // sealed entry bytes (frame + 28)
  ObjectKind kind = ObjectKind::kData;  // kObject entries; kData otherwise
  EntryType type = EntryType::kObject;
};

// The index record's kind byte: 0/1 = an object of that kind, 2 = split
// descriptor, 3 = piece. SetKindByte: Corruption for any other value.
uint8_t KindByte(const PackEntry& e);
Status SetKindByte(PackEntry* e, uint8_t b);

struct PackIndex {
  std::string pack_id;  // 16 bytes
  std::vector<PackEntry> entries;  // in offset order
  uint64_t pack_size = 0;
};

// Builds one pack no larger than `limit` bytes, framing included.
class PackWriter {
 public:
  PackWriter(const MasterKey& key, uint64_t limit);
  // Bytes the pack would have after adding an object whose frame is `frame_size`.
  uint64_t SizeWith(size_t frame_size) const;
  bool Fits(size_t frame_size) const { return SizeWith(frame_size) <= limit_; }
  // Appends an object (its frame must already have a zero write time), or
  // with `type` a split descriptor or piece (`kind` is then kData).
  void Add(const Digest& keyed_id, const Digest& digest, ObjectKind kind, std::string_view frame,
           EntryType type = EntryType::kObject);
  size_t count() const { return index_.entries.size(); }
  bool empty() const { return index_.entries.empty(); }
  const std::string& pack_id() const { return index_.pack_id; }
  // The finished pack bytes and its index (the writer is spent afterwards).
  std::pair<std::string, PackIndex> Finish();

 private:
  const MasterKey& key_;
  uint64_t limit_;
  std::string body_;
  PackIndex index_;
};

// The frame to upload for an object: hashed, compressed like the local store
// does, write time zeroed (so packs do not leak local timestamps).
PreparedObject FrameForUpload(const Digest& d, std::string_view plain, ObjectKind kind, int zstd_level);
// Sets a downloaded frame's write time to now before it is stored locally
// (garbage collection treats it as freshly written).
void StampFrameNow(std::string* frame);

// From the last bytes of a pack of `pack_size` bytes: how many bytes from
// the end hold footer + sealed index. Corruption if the footer is malformed.
Result<uint64_t> TrailerLength(std::string_view tail, uint64_t pack_size);
// Decodes the index from `tail` (at least TrailerLength bytes from the end of
// the pack). Checks magic, authentication and that every entry lies inside
// the entry region, in order, without overlap.
Result<PackIndex> DecodeTrailer(const MasterKey& key, std::string_view tail, uint64_t pack_size);
// The limits DecodeTrailer puts on the records of an index, for every
// decoder of such records (the remote index keeps them too): entries in
// offset order without overlap, each at least a sealed empty frame, all
// between the header and the sealed index (which with the footer takes the
// last 64 + 77 x count bytes of the `pack_size`), keyed ids unique.
// Corruption otherwise.
Status CheckPackEntries(const std::vector<PackEntry>& entries, uint64_t pack_size);
// Decodes and checks a whole pack (header, trailer, every entry decrypts).
Result<PackIndex> DecodePack(const MasterKey& key, std::string_view pack);
// Opens one sealed entry and checks that e.keyed_id is e.digest's keyed id
// and that the bytes are what e.type says:
//   kObject: the frame decodes and hashes to e.digest; returned with its
//            write time stamped now, ready for PutBatch;
//   kSplit:  the bytes decode as a split descriptor (split.h); returned as
//            they are (the object is checked once its pieces are joined);
//   kPiece:  the bytes hash to e.digest; returned as they are.
// Only kObject results may be stored.
Result<PreparedObject> OpenEntry(const MasterKey& key, std::string_view pack_id, const PackEntry& e,
                                 std::string_view sealed);
// The entry's bytes after authentication alone (for repacking).
Result<std::string> UnsealEntry(const MasterKey& key, std::string_view pack_id, const PackEntry& e,
                                std::string_view sealed);

}  // namespace hashfs::remote
