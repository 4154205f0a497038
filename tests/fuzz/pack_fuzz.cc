// libFuzzer target: pack parsing (remote/pack.h) with a fixed master key:
// TrailerLength, DecodeTrailer (also on a short tail and a hostile claimed
// size, as IngestPack calls it), DecodePack and OpenEntry.
//
// Input: mode (1 byte), then
//   mode & 3 == 0  the pack bytes as downloaded (reaches footer and length
//                  checks and authentication; seeds are real packs, so
//                  mutations in unauthenticated places get further);
//   mode & 3 == 1  a plaintext plan the target seals with the fixed key:
//                  pack id (16) | u8 n | n x (u16 len | stored frame) |
//                  index plaintext (rest). Entry i is sealed under the keyed
//                  id of index record i (zero if there is none). This
//                  reaches everything after decryption: the index's
//                  version/count/records and the frames;
//   mode & 3 == 2  the same, but index records 0..n-1 are fixed up to point
//                  at the sealed entries (offset, length), with keyed id =
//                  HMAC(digest) (the piece HMAC for kind 3) and, for raw
//                  frames, digest = SHA-256 of the payload (of the whole
//                  frame for a piece), so hostile frames get through to
//                  DecodeStoredObject and DecodeSplitDescriptor;
//   mode & 3 == 3  the plan of mode 1, preceded by i32 claimed-size delta and
//                  u16 tail length: DecodeTrailer on that tail of the pack
//                  with that claimed pack size (both untrusted in IngestPack).
//
// Checks:
//  * TrailerLength accepts exactly per design.md (size >= 52, tail 28..size
//    bytes, end magic, 36 <= L <= size - 52) and returns L + 28, whatever the
//    tail's length; a tail shorter than that is refused by DecodeTrailer.
//  * DecodeTrailer on a plan's pack agrees exactly with an independent model
//    of the index plaintext (accept/refuse, Unsupported for version != 1,
//    entries), and any accepted index meets the documented limits (in order,
//    non-overlapping, >= 46 bytes, inside [24, size - 64 - 77 count), kinds
//    0..3, unique keyed ids), re-encodes to exactly the authenticated
//    plaintext (canonical), and round-trips through the remote index's pack
//    record (EncodePackRecord/DecodePackRecord).
//  * DecodePack accepts only if DecodeTrailer does, and then every entry
//    opens: the frame is what was sealed for that keyed id at that place (so
//    nothing unauthenticated is accepted) and is what its kind says (an
//    object frame decoding to the digest under HMAC(digest); a piece hashing
//    to the digest under the piece HMAC; a split descriptor that decodes);
//    OpenEntry returns an object's frame with only the write time changed,
//    a piece or descriptor unchanged. With a plan it accepts every pack whose records all name such
//    an entry (completeness). The same pack is refused under another key, and
//    with any authenticated byte flipped. An accepted plan pack has exactly
//    the layout PackWriter produces for the same objects (and SizeWith
//    predicted its size).
//  * Refusals are Corruption (Unsupported for an index version != 1).
#include <cstddef>
#include <cstdint>
#include <optional>

#include "remote/split.h"
#include "tests/fuzz/remote_fuzz.h"

namespace {

using namespace hashfs;
using namespace hashfs::remote;
using fuzz::GetLE;
using fuzz::Placed;
using fuzz::PackPlan;

const MasterKey& Key() { return fuzz::FixedKey(); }

std::optional<uint64_t> ModelTrailerLength(std::string_view tail, uint64_t pack_size) {
  if (pack_size < 52 || tail.size() < 28 || tail.size() > pack_size) return std::nullopt;
  std::string_view footer = tail.substr(tail.size() - 28);
  if (footer.substr(20) != "HFSPEND1") return std::nullopt;
  uint64_t len = GetLE(footer, 16, 4);
  if (len < 36 || len > pack_size - 52) return std::nullopt;
  return len + 28;
}

struct ModelIndex {
  Status::Code refusal = Status::Code::kOk;
  std::vector<PackEntry> entries;
};

// What DecodeTrailer must make of an authentic index plaintext.
ModelIndex ModelDecodeIndex(std::string_view p, uint64_t pack_size, uint64_t need) {
  ModelIndex m;
  auto bad = [&](Status::Code c) {
    m.refusal = c;
    m.entries.clear();
    return m;
  };
  if (p.size() < 8) return bad(Status::Code::kCorruption);
  if (GetLE(p, 0, 4) != 1) return bad(Status::Code::kUnsupported);
  uint64_t count = GetLE(p, 4, 4);
  if ((p.size() - 8) % 77 != 0 || (p.size() - 8) / 77 != count) return bad(Status::Code::kCorruption);
  uint64_t region_end = pack_size - need, next = 24;
  std::set<Digest> seen;
  for (uint64_t i = 0; i < count; i++) {
    std::string_view r = p.substr(8 + 77 * i, 77);
    PackEntry e;
    std::memcpy(e.keyed_id.bytes.data(), r.data(), 32);
    std::memcpy(e.digest.bytes.data(), r.data() + 32, 32);
    e.offset = GetLE(r, 64, 8);
    e.length = static_cast<uint32_t>(GetLE(r, 72, 4));
    auto kind = static_cast<uint8_t>(r[76]);
    if (kind > 3) return bad(Status::Code::kCorruption);
    fuzz::ModelSetKindByte(&e, kind);
    if (e.offset < next || e.length < 46 || e.offset > region_end || e.length > region_end - e.offset)
      return bad(Status::Code::kCorruption);
    if (!seen.insert(e.keyed_id).second) return bad(Status::Code::kCorruption);
    next = e.offset + e.length;
    m.entries.push_back(e);
  }
  return m;
}

// Whether an authentic entry's bytes are what its record says (OpenEntry's
// contract, pack.h): an object frame holding its digest, a piece hashing to
// its digest, or a split descriptor; each under its own kind of keyed id.
bool ModelEntryValid(const PackEntry& e, std::string_view frame) {
  switch (e.type) {
    case EntryType::kObject:
      return Key().KeyedId(e.digest) == e.keyed_id && DecodeStoredObject(e.digest, frame).ok();
    case EntryType::kPiece:
      return Key().PieceKeyedId(e.digest) == e.keyed_id && Sha256Of(frame) == e.digest;
    case EntryType::kSplit:
      return Key().KeyedId(e.digest) == e.keyed_id && DecodeSplitDescriptor(frame).ok();
  }
  return false;
}

PackPlan ReadPlan(fuzz::Reader& in, bool fixup) {
  PackPlan plan;
  plan.pack_id = std::string(in.Bytes(kPackIdSize));
  plan.pack_id.resize(kPackIdSize, '\0');
  size_t n = in.U8() % 9;
  for (size_t i = 0; i < n; i++) {
    auto len = static_cast<size_t>(in.LE(2));
    plan.frames.emplace_back(in.Bytes(len));
  }
  plan.index_plain = std::string(in.Rest());
  std::string& p = plan.index_plain;
  uint64_t at = kPackHeaderSize;
  for (size_t i = 0; i < n; i++) {
    size_t rec = 8 + 77 * i;
    bool has = p.size() >= rec + 77;
    if (fixup && has) {
      const std::string& f = plan.frames[i];
      const auto kind = static_cast<uint8_t>(p[rec + 76]);
      if (kind == 3) {  // a piece: named by the hash of its bytes
        Digest d = Sha256Of(f);
        std::memcpy(p.data() + rec + 32, d.bytes.data(), 32);
      } else if (f.size() >= kStoredHeaderSize && f[0] == 0) {
        Digest d = Sha256Of(std::string_view(f).substr(kStoredHeaderSize));
        std::memcpy(p.data() + rec + 32, d.bytes.data(), 32);
      }
      Digest d;
      std::memcpy(d.bytes.data(), p.data() + rec + 32, 32);
      Digest k = kind == 3 ? Key().PieceKeyedId(d) : Key().KeyedId(d);
      std::memcpy(p.data() + rec, k.bytes.data(), 32);
      std::string loc;
      fuzz::PutLE(&loc, at, 8);
      fuzz::PutLE(&loc, f.size() + kSealOverhead, 4);
      std::memcpy(p.data() + rec + 64, loc.data(), 12);
    }
    Digest aad_id;
    if (has) std::memcpy(aad_id.bytes.data(), p.data() + rec, 32);
    plan.aad_ids.push_back(aad_id);
    at += plan.frames[i].size() + kSealOverhead;
  }
  return plan;
}

// TrailerLength and DecodeTrailer on `tail` (a suffix of a pack) for a pack
// said to be `claimed` bytes. Returns the decoded index if accepted.
std::optional<PackIndex> CheckTrailer(std::string_view tail, uint64_t claimed, const PackPlan* plan) {
  auto tl = TrailerLength(tail, claimed);
  auto model = ModelTrailerLength(tail, claimed);
  FUZZ_CHECK(tl.ok() == model.has_value());
  if (tl.ok()) {
    FUZZ_CHECK(*tl == *model);
    // Only the footer counts: any longer suffix gives the same length.
    if (tail.size() > 28) {
      auto t2 = TrailerLength(tail.substr(1), claimed);
      FUZZ_CHECK(t2.ok() && *t2 == *tl);
    }
  } else {
    fuzz::CheckRefusal(tl.status());
  }
  auto r = DecodeTrailer(Key(), tail, claimed);
  if (!r.ok()) {
    fuzz::CheckRefusalIn(r.status(), {Status::Code::kCorruption, Status::Code::kUnsupported});
  } else {
    FUZZ_CHECK(tl.ok() && tail.size() >= *tl);
    FUZZ_CHECK(r->pack_size == claimed);
    FUZZ_CHECK(r->pack_id == tail.substr(tail.size() - 28, 16));
    fuzz::CheckIndexLimits(r->entries, claimed);
    // The sealed index holds exactly the records (count matches L).
    FUZZ_CHECK(*tl == 28 + 36 + 77 * r->entries.size());
    auto plain = fuzz::RefUnseal(Key().enc_key(), tail.substr(tail.size() - *tl, *tl - 28), fuzz::IndexAad(r->pack_id));
    FUZZ_CHECK(plain.has_value());
    FUZZ_CHECK_MSG(fuzz::EncodeIndexPlain(r->entries) == *plain, "pack index re-encodes differently");
    // A trailer that does not hold the whole index is refused.
    auto shorter = DecodeTrailer(Key(), tail.substr(tail.size() - (*tl - 1)), claimed);
    FUZZ_CHECK(!shorter.ok());
    fuzz::CheckRefusal(shorter.status());
    // The same under another key: refused.
    FUZZ_CHECK(!DecodeTrailer(fuzz::OtherKey(), tail, claimed).ok());
    // Through the remote index's pack record and back.
    PackRecord rec{PackLocation{7, 8, 9, claimed}, *r};
    auto back = DecodePackRecord(r->pack_id, EncodePackRecord(rec));
    FUZZ_CHECK_MSG(back.ok(), back.status().ToString());
    FUZZ_CHECK(back->loc.size == claimed && back->loc.message == 8 && back->index.pack_id == r->pack_id);
    FUZZ_CHECK(fuzz::SameEntries(back->index.entries, r->entries));
  }
  if (plan && tl.ok() && tail.size() >= *tl) {
    // The footer is ours, so the index region is the plan's sealed index.
    ModelIndex m = ModelDecodeIndex(plan->index_plain, claimed, *tl);
    FUZZ_CHECK_MSG(r.ok() == (m.refusal == Status::Code::kOk), r.status().ToString());
    if (r.ok()) {
      FUZZ_CHECK(fuzz::SameEntries(r->entries, m.entries));
    } else {
      FUZZ_CHECK(r.status().code() == m.refusal);
    }
  }
  if (!r.ok()) return std::nullopt;
  return std::move(r).value();
}

bool Authenticated(uint64_t pos, const PackIndex& idx, uint64_t trailer) {
  if (pos < kPackHeaderSize || pos >= idx.pack_size - trailer) return true;
  for (const auto& e : idx.entries)
    if (pos >= e.offset && pos < e.offset + e.length) return true;
  return false;  // a gap between entries: never read
}

void CheckPackWriterLayout(const PackIndex& idx, const PackPlan& plan, std::string_view pack) {
  if (idx.entries.size() != plan.frames.size() || idx.entries.empty()) return;
  PackWriter w(Key(), 1ull << 40);
  uint64_t predicted = 0;
  for (size_t i = 0; i < plan.frames.size(); i++) {
    const PackEntry& e = idx.entries[i];
    if (i + 1 == plan.frames.size()) predicted = w.SizeWith(plan.frames[i].size());
    w.Add(e.keyed_id, e.digest, e.kind, plan.frames[i], e.type);
  }
  auto [bytes, widx] = w.Finish();
  FUZZ_CHECK(bytes.size() == predicted);
  if (bytes.size() != pack.size()) return;  // ours has gaps or another order
  FUZZ_CHECK(widx.entries.size() == idx.entries.size());
  for (size_t i = 0; i < idx.entries.size(); i++) {
    FUZZ_CHECK(widx.entries[i].offset == idx.entries[i].offset && widx.entries[i].length == idx.entries[i].length);
  }
  auto again = DecodePack(Key(), bytes);
  FUZZ_CHECK_MSG(again.ok(), again.status().ToString());
  FUZZ_CHECK(again->pack_id == widx.pack_id && fuzz::SameEntries(again->entries, idx.entries));
}

void CheckPack(std::string_view pack, const PackPlan* plan, const std::vector<Placed>& placed) {
  auto dp = DecodePack(Key(), pack);
  auto dt = DecodeTrailer(Key(), pack, pack.size());
  // Completeness: every record names an entry that was sealed for it there
  // and whose frame holds its digest's object.
  bool expect_ok = dt.ok() && pack.substr(0, 8) == kPackMagic && plan != nullptr;
  if (expect_ok) {
    for (const auto& e : dt->entries) {
      bool found = false;
      for (size_t j = 0; j < placed.size() && !found; j++) {
        found = placed[j].offset == e.offset && placed[j].length == e.length && plan->aad_ids[j] == e.keyed_id &&
                ModelEntryValid(e, plan->frames[j]);
      }
      expect_ok = expect_ok && found;
    }
  }
  if (!dp.ok()) {
    fuzz::CheckRefusalIn(dp.status(), {Status::Code::kCorruption, Status::Code::kUnsupported});
    FUZZ_CHECK_MSG(!expect_ok, "a well-formed pack was refused: " + dp.status().ToString());
    return;
  }
  FUZZ_CHECK(dt.ok() && fuzz::SameEntries(dt->entries, dp->entries) && dt->pack_id == dp->pack_id);
  FUZZ_CHECK(pack.substr(0, 8) == kPackMagic && pack.substr(8, kPackIdSize) == dp->pack_id);
  FUZZ_CHECK(dp->pack_size == pack.size());
  fuzz::CheckIndexLimits(dp->entries, pack.size());
  for (const auto& e : dp->entries) {
    std::string_view sealed = pack.substr(e.offset, e.length);
    auto o = OpenEntry(Key(), dp->pack_id, e, sealed);
    FUZZ_CHECK_MSG(o.ok(), o.status().ToString());
    FUZZ_CHECK(o->digest == e.digest);
    auto frame = fuzz::RefUnseal(Key().enc_key(), sealed, fuzz::EntryAad(dp->pack_id, e.keyed_id));
    FUZZ_CHECK(frame.has_value() && ModelEntryValid(e, *frame));
    if (e.type == EntryType::kObject) {
      FUZZ_CHECK(frame->size() == o->stored.size() && frame->size() >= kStoredHeaderSize);
      FUZZ_CHECK(frame->substr(0, 10) == o->stored.substr(0, 10) && frame->substr(18) == o->stored.substr(18));
      FUZZ_CHECK(DecodeStoredObject(e.digest, o->stored).ok());
    } else {
      FUZZ_CHECK(*frame == o->stored);  // pieces and descriptors come back as sealed
    }
    if (plan) {  // soundness: it is what the plan sealed for this keyed id, here
      bool found = false;
      for (size_t j = 0; j < placed.size() && !found; j++)
        found = placed[j].offset == e.offset && placed[j].length == e.length && plan->aad_ids[j] == e.keyed_id &&
                plan->frames[j] == *frame;
      FUZZ_CHECK_MSG(found, "DecodePack accepted an entry that was not sealed for its record");
    }
    // Bound to its pack, name and key.
    std::string other_id(dp->pack_id);
    other_id[0] ^= 1;
    FUZZ_CHECK(!OpenEntry(Key(), other_id, e, sealed).ok());
    FUZZ_CHECK(!OpenEntry(fuzz::OtherKey(), dp->pack_id, e, sealed).ok());
    FUZZ_CHECK(!OpenEntry(Key(), dp->pack_id, e, sealed.substr(1)).ok());
  }
  FUZZ_CHECK(!DecodePack(fuzz::OtherKey(), pack).ok());
  // Flip one byte; if it is authenticated, the pack must be refused.
  const uint64_t trailer = 28 + 36 + 77 * dp->entries.size();
  uint64_t pos = Sha256Of(pack).Prefix64() % pack.size();
  std::string tampered(pack);
  tampered[pos] = static_cast<char>(tampered[pos] ^ (1 << (pos % 8)));
  auto t = DecodePack(Key(), tampered);
  if (Authenticated(pos, *dp, trailer)) {
    FUZZ_CHECK_MSG(!t.ok(), "a pack with a flipped byte at " + std::to_string(pos) + " was accepted");
    fuzz::CheckRefusalIn(t.status(), {Status::Code::kCorruption, Status::Code::kUnsupported});
  }
  if (plan) CheckPackWriterLayout(*dp, *plan, pack);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Reader in(fuzz::AsView(data, size));
  const uint8_t mode = in.U8() & 3;
  if (mode == 0) {
    std::string_view pack = in.Rest();
    CheckTrailer(pack, pack.size(), nullptr);
    // A shorter tail, as IngestPack first downloads.
    if (pack.size() > 64) CheckTrailer(pack.substr(pack.size() / 2), pack.size(), nullptr);
    CheckPack(pack, nullptr, {});
    return 0;
  }
  int64_t delta = 0;
  size_t tail_len = 0;
  if (mode == 3) {
    delta = static_cast<int32_t>(in.LE(4));
    tail_len = static_cast<size_t>(in.LE(2));
  }
  PackPlan plan = ReadPlan(in, mode == 2);
  std::vector<Placed> placed;
  std::string pack = fuzz::AssemblePack(Key(), plan, &placed);
  if (mode == 3) {
    uint64_t claimed = pack.size() + static_cast<uint64_t>(delta);
    std::string_view tail = std::string_view(pack).substr(pack.size() - std::min(tail_len, pack.size()));
    CheckTrailer(tail, claimed, &plan);
    return 0;
  }
  CheckTrailer(pack, pack.size(), &plan);
  CheckPack(pack, &plan, placed);
  return 0;
}
