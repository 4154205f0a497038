#include "remote/pack.h"

#include <cstring>
#include <ctime>
#include <unordered_set>

#include "cas/little_endian.h"
#include "cas/object_codec.h"
#include "remote/split.h"

namespace hashfs::remote {
namespace {

std::string EntryAad(std::string_view pack_id, const Digest& keyed) {
  std::string aad = "hfe1";
  aad.append(pack_id);
  aad.append(keyed.AsBytes());
  return aad;
}
std::string IndexAad(std::string_view pack_id) { return "hfi1" + std::string(pack_id); }

}  // namespace

uint8_t KindByte(const PackEntry& e) {
  switch (e.type) {
    case EntryType::kSplit: return 2;
    case EntryType::kPiece: return 3;
    case EntryType::kObject: break;
  }
  return static_cast<uint8_t>(e.kind);
}

Status SetKindByte(PackEntry* e, uint8_t b) {
  e->kind = ObjectKind::kData;
  switch (b) {
    case 0:
    case 1:
      e->type = EntryType::kObject;
      e->kind = static_cast<ObjectKind>(b);
      return Status::Ok();
    case 2: e->type = EntryType::kSplit; return Status::Ok();
    case 3: e->type = EntryType::kPiece; return Status::Ok();
    default: return Status::Corruption("pack index entry has an unknown kind");
  }
}

PackWriter::PackWriter(const MasterKey& key, uint64_t limit) : key_(key), limit_(limit) {
  index_.pack_id = RandomBytes(kPackIdSize);
  body_.append(kPackMagic);
  body_.append(index_.pack_id);
}

uint64_t PackWriter::SizeWith(size_t frame_size) const {
  uint64_t n = index_.entries.size() + 1;
  return body_.size() + kSealOverhead + frame_size + kSealOverhead + kIndexHeaderSize + n * kIndexRecordSize +
         kPackFooterSize;
}

void PackWriter::Add(const Digest& keyed_id, const Digest& digest, ObjectKind kind, std::string_view frame,
                     EntryType type) {
  PackEntry e;
  e.keyed_id = keyed_id;
  e.digest = digest;
  e.offset = body_.size();
  e.kind = type == EntryType::kObject ? kind : ObjectKind::kData;
  e.type = type;
  std::string sealed = Seal(key_.enc_key(), frame, EntryAad(index_.pack_id, keyed_id));
  e.length = static_cast<uint32_t>(sealed.size());
  body_.append(sealed);
  index_.entries.push_back(e);
}

std::pair<std::string, PackIndex> PackWriter::Finish() {
  std::string plain;
  AppendLE(&plain, kPackIndexVersion, 4);
  AppendLE(&plain, index_.entries.size(), 4);
  for (const auto& e : index_.entries) {
    plain.append(e.keyed_id.AsBytes());
    plain.append(e.digest.AsBytes());
    AppendLE(&plain, e.offset, 8);
    AppendLE(&plain, e.length, 4);
    plain.push_back(static_cast<char>(KindByte(e)));
  }
  std::string sealed = Seal(key_.enc_key(), plain, IndexAad(index_.pack_id));
  body_.append(sealed);
  body_.append(index_.pack_id);
  AppendLE(&body_, sealed.size(), 4);
  body_.append(kPackEndMagic);
  index_.pack_size = body_.size();
  return {std::move(body_), std::move(index_)};
}

PreparedObject FrameForUpload(const Digest& d, std::string_view plain, ObjectKind kind, int zstd_level) {
  PreparedObject o = PrepareObjectWithDigest(d, plain, kind, zstd_level);
  if (o.stored.size() >= kStoredHeaderSize) std::memset(o.stored.data() + 10, 0, 8);
  return o;
}

void StampFrameNow(std::string* frame) {
  if (frame->size() < kStoredHeaderSize) return;
  uint64_t now = static_cast<uint64_t>(std::time(nullptr));
  StoreLE(frame->data() + 10, now, 8);
}

Result<uint64_t> TrailerLength(std::string_view tail, uint64_t pack_size) {
  if (pack_size < kPackHeaderSize + kPackFooterSize) return Status::Corruption("pack too short");
  if (tail.size() < kPackFooterSize || tail.size() > pack_size) return Status::Corruption("pack tail too short");
  std::string_view footer = tail.substr(tail.size() - kPackFooterSize);
  if (footer.substr(kPackIdSize + 4) != kPackEndMagic) return Status::Corruption("pack has no end marker");
  uint64_t len = LoadLE(footer, kPackIdSize, 4);
  if (len < kSealOverhead + kIndexHeaderSize || len > pack_size - kPackHeaderSize - kPackFooterSize)
    return Status::Corruption("pack index length out of range");
  return len + kPackFooterSize;
}

Result<PackIndex> DecodeTrailer(const MasterKey& key, std::string_view tail, uint64_t pack_size) {
  HASHFS_ASSIGN_OR_RETURN(uint64_t need, TrailerLength(tail, pack_size));
  if (tail.size() < need) return Status::Corruption("pack tail does not hold the whole index");
  std::string_view footer = tail.substr(tail.size() - kPackFooterSize);
  PackIndex idx;
  idx.pack_id = std::string(footer.substr(0, kPackIdSize));
  idx.pack_size = pack_size;
  std::string_view sealed = tail.substr(tail.size() - need, need - kPackFooterSize);
  auto plain = Unseal(key.enc_key(), sealed, IndexAad(idx.pack_id));
  if (!plain.ok()) return plain.status().WithContext("pack index");
  std::string_view p = *plain;
  if (p.size() < kIndexHeaderSize) return Status::Corruption("pack index too short");
  if (LoadLE(p, 0, 4) != kPackIndexVersion) return Status::Unsupported("pack index version is not 1");
  uint64_t count = LoadLE(p, 4, 4);
  if ((p.size() - kIndexHeaderSize) % kIndexRecordSize != 0 ||
      (p.size() - kIndexHeaderSize) / kIndexRecordSize != count)
    return Status::Corruption("pack index size does not match its count");
  idx.entries.reserve(count);
  for (uint64_t i = 0; i < count; i++) {
    size_t at = kIndexHeaderSize + i * kIndexRecordSize;
    PackEntry e;
    std::memcpy(e.keyed_id.bytes.data(), p.data() + at, 32);
    std::memcpy(e.digest.bytes.data(), p.data() + at + 32, 32);
    e.offset = LoadLE(p, at + 64, 8);
    e.length = static_cast<uint32_t>(LoadLE(p, at + 72, 4));
    HASHFS_RETURN_IF_ERROR(SetKindByte(&e, static_cast<uint8_t>(p[at + 76])));
    idx.entries.push_back(e);
  }
  // The index fills exactly L - 28 bytes, so entries end where it begins.
  HASHFS_RETURN_IF_ERROR(CheckPackEntries(idx.entries, pack_size));
  return idx;
}

Status CheckPackEntries(const std::vector<PackEntry>& entries, uint64_t pack_size) {
  const uint64_t trailer = kSealOverhead + kIndexHeaderSize + entries.size() * kIndexRecordSize + kPackFooterSize;
  if (pack_size < kPackHeaderSize || pack_size - kPackHeaderSize < trailer)
    return Status::Corruption("pack too short for its index");
  const uint64_t region_end = pack_size - trailer;
  uint64_t next = kPackHeaderSize;
  std::unordered_set<Digest, DigestHash> seen;
  for (const auto& e : entries) {
    if (e.offset < next || e.length < kSealOverhead + kStoredHeaderSize || e.offset > region_end ||
        e.length > region_end - e.offset)
      return Status::Corruption("pack index entry out of range or overlapping");
    if (!seen.insert(e.keyed_id).second) return Status::Corruption("pack index names an object twice");
    next = e.offset + e.length;
  }
  return Status::Ok();
}

Result<PackIndex> DecodePack(const MasterKey& key, std::string_view pack) {
  if (pack.size() < kPackHeaderSize + kPackFooterSize || pack.substr(0, 8) != kPackMagic)
    return Status::Corruption("not a hashfs pack (bad magic)");
  HASHFS_ASSIGN_OR_RETURN(PackIndex idx, DecodeTrailer(key, pack, pack.size()));
  if (pack.substr(8, kPackIdSize) != idx.pack_id) return Status::Corruption("pack header and footer disagree");
  for (const auto& e : idx.entries) {
    auto o = OpenEntry(key, idx.pack_id, e, pack.substr(e.offset, e.length));
    if (!o.ok()) return o.status();
  }
  return idx;
}

Result<std::string> UnsealEntry(const MasterKey& key, std::string_view pack_id, const PackEntry& e,
                                std::string_view sealed) {
  if (sealed.size() != e.length) return Status::Corruption("pack entry truncated");
  const Digest keyed = e.type == EntryType::kPiece ? key.PieceKeyedId(e.digest) : key.KeyedId(e.digest);
  if (keyed != e.keyed_id) return Status::Corruption("pack index entry names the wrong object");
  auto frame = Unseal(key.enc_key(), sealed, EntryAad(pack_id, e.keyed_id));
  if (!frame.ok()) return frame.status().WithContext("pack entry " + e.keyed_id.Hex().substr(0, 16));
  return frame;
}

Result<PreparedObject> OpenEntry(const MasterKey& key, std::string_view pack_id, const PackEntry& e,
                                 std::string_view sealed) {
  auto frame = UnsealEntry(key, pack_id, e, sealed);
  if (!frame.ok()) return frame.status();
  if (e.type != EntryType::kObject) {
    if (e.type == EntryType::kPiece && Sha256Of(*frame) != e.digest)
      return Status::Corruption("pack entry " + e.keyed_id.Hex().substr(0, 16) + ": piece does not hash to its name");
    if (e.type == EntryType::kSplit) {
      auto d = DecodeSplitDescriptor(*frame);
      if (!d.ok()) return d.status().WithContext("pack entry " + e.keyed_id.Hex().substr(0, 16));
    }
    return PreparedObject{e.digest, std::move(frame).value()};
  }
  auto plain = DecodeStoredObject(e.digest, *frame);  // checks header, size, hash
  if (!plain.ok()) return plain.status();
  PreparedObject out;
  out.digest = e.digest;
  out.stored = std::move(frame).value();
  StampFrameNow(&out.stored);
  return out;
}

}  // namespace hashfs::remote
