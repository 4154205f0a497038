// Unit tests of the remote's pure parts: crypto, pack format (round trips,
// tampering, truncation, garbage), the local remote index, ref-log/manifest
// formats, and the rate-limit/retry logic against a scripted HTTP fake.
#include <gtest/gtest.h>
#include <zstd.h>

#include <chrono>
#include <deque>
#include <mutex>
#include <random>
#include <thread>

#include "cas/memory_store.h"
#include "cas/object_codec.h"
#include "remote/crypto.h"
#include "remote/discord_api.h"
#include "remote/pack.h"
#include "remote/remote_format.h"
#include "remote/remote_index.h"
#include "remote/sealed_refs.h"
#include "remote/split.h"

namespace hashfs::remote {
namespace {

std::string Bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

TEST(Crypto, SealUnsealRoundTripAndTamper) {
  std::string key = RandomBytes(32);
  std::string sealed = Seal(key, "hello world", "aad");
  ASSERT_EQ(sealed.size(), 11 + kSealOverhead);
  auto open = Unseal(key, sealed, "aad");
  ASSERT_TRUE(open.ok());
  EXPECT_EQ(*open, "hello world");
  EXPECT_TRUE(Unseal(key, sealed, "other aad").status().IsCorruption());
  for (size_t i = 0; i < sealed.size(); i++) {
    std::string t = sealed;
    t[i] ^= 1;
    EXPECT_TRUE(Unseal(key, t, "aad").status().IsCorruption()) << "flip at " << i;
  }
  EXPECT_TRUE(Unseal(key, sealed.substr(0, sealed.size() - 1), "aad").status().IsCorruption());
  EXPECT_TRUE(Unseal(key, "short", "aad").status().IsCorruption());
  EXPECT_NE(Seal(key, "x", ""), Seal(key, "x", ""));  // fresh nonce each time
}

TEST(Crypto, ScryptWrapUnwrap) {
  ScryptParams p;
  p.n = 1 << 10;
  p.salt = RandomBytes(16);
  auto kek = DeriveKey("correct horse", p);
  ASSERT_TRUE(kek.ok());
  // RFC 7914 vector: scrypt("password", "NaCl", N=1024, r=8, p=16), first 32 bytes.
  ScryptParams rfc{1024, 8, 16, "NaCl"};
  auto v = DeriveKey("password", rfc);
  ASSERT_TRUE(v.ok());
  EXPECT_EQ(HexEncode(v->view()), "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162");
  MasterKey mk = MasterKey::Generate();
  std::string wrapped = mk.Wrap(kek->view());
  auto back = MasterKey::Unwrap(kek->view(), wrapped);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(back->raw(), mk.raw());
  auto wrong = DeriveKey("wrong horse", p);
  ASSERT_TRUE(wrong.ok());
  auto bad = MasterKey::Unwrap(wrong->view(), wrapped);
  EXPECT_EQ(bad.status().code(), Status::Code::kPermission);
  // Hostile parameters are refused before any allocation.
  ScryptParams huge = p;
  huge.n = 1ull << 40;
  EXPECT_FALSE(DeriveKey("x", huge).ok());
  // Keyed ids depend on the key and differ from the plain digest.
  Digest d = Sha256Of("abc");
  EXPECT_NE(mk.KeyedId(d), d);
  EXPECT_EQ(mk.KeyedId(d), back->KeyedId(d));
  EXPECT_NE(mk.KeyedId(d), MasterKey::Generate().KeyedId(d));
}

TEST(Crypto, Encodings) {
  for (size_t n = 0; n < 10; n++) {
    std::string s = Bytes(n, static_cast<uint32_t>(n));
    auto b = Base64Decode(Base64Encode(s));
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(*b, s);
    EXPECT_EQ(*HexDecode(HexEncode(s)), s);
  }
  EXPECT_EQ(Base64Encode("foobar"), "Zm9vYmFy");
  EXPECT_EQ(Base64Encode("fo"), "Zm8=");
  EXPECT_FALSE(Base64Decode("Zm9=v").ok());
  EXPECT_FALSE(HexDecode("zz").ok());
}

struct TestObject {
  Digest d;
  std::string plain;
  ObjectKind kind;
};

std::vector<TestObject> Objects(int n) {
  std::vector<TestObject> v;
  for (int i = 0; i < n; i++) {
    std::string plain = i % 2 ? Bytes(1000 + i * 37, i) : std::string(5000 + i, 'a' + i % 26);  // some compress
    v.push_back({Sha256Of(plain), plain, i % 3 ? ObjectKind::kData : ObjectKind::kMeta});
  }
  return v;
}

std::pair<std::string, PackIndex> BuildPack(const MasterKey& mk, const std::vector<TestObject>& objs,
                                            uint64_t limit = kDefaultPackLimit) {
  PackWriter w(mk, limit);
  for (const auto& o : objs) {
    PreparedObject f = FrameForUpload(o.d, o.plain, o.kind, 3);
    EXPECT_TRUE(w.Fits(f.stored.size()));
    w.Add(mk.KeyedId(o.d), o.d, o.kind, f.stored);
  }
  return w.Finish();
}

TEST(Pack, RoundTrip) {
  MasterKey mk = MasterKey::Generate();
  auto objs = Objects(20);
  auto [bytes, idx] = BuildPack(mk, objs);
  EXPECT_EQ(idx.pack_size, bytes.size());
  // Nothing in the pack reveals a plain digest.
  for (const auto& o : objs) EXPECT_EQ(bytes.find(std::string(o.d.AsBytes())), std::string::npos);
  auto dec = DecodePack(mk, bytes);
  ASSERT_TRUE(dec.ok()) << dec.status().ToString();
  ASSERT_EQ(dec->entries.size(), objs.size());
  for (size_t i = 0; i < objs.size(); i++) {
    const PackEntry& e = dec->entries[i];
    EXPECT_EQ(e.digest, objs[i].d);
    EXPECT_EQ(e.keyed_id, mk.KeyedId(objs[i].d));
    EXPECT_EQ(e.kind, objs[i].kind);
    auto o = OpenEntry(mk, dec->pack_id, e, std::string_view(bytes).substr(e.offset, e.length));
    ASSERT_TRUE(o.ok());
    auto plain = DecodeStoredObject(objs[i].d, o->stored);
    ASSERT_TRUE(plain.ok());
    EXPECT_EQ(*plain, objs[i].plain);
    auto info = ParseStoredHeader(o->stored);
    ASSERT_TRUE(info.ok());
    EXPECT_GT(info->write_time, 0u);  // stamped on arrival, zero on the wire
  }
  // The trailer alone (as a Range request on the tail would get it).
  auto need = TrailerLength(std::string_view(bytes).substr(bytes.size() - 100), bytes.size());
  ASSERT_TRUE(need.ok());
  auto tr = DecodeTrailer(mk, std::string_view(bytes).substr(bytes.size() - *need), bytes.size());
  ASSERT_TRUE(tr.ok());
  EXPECT_EQ(tr->entries.size(), objs.size());
  // Wrong key: refused.
  EXPECT_FALSE(DecodePack(MasterKey::Generate(), bytes).ok());
}

TEST(Pack, RespectsLimit) {
  MasterKey mk = MasterKey::Generate();
  const uint64_t limit = 64 << 10;
  PackWriter w(mk, limit);
  int added = 0;
  for (int i = 0;; i++) {
    std::string plain = Bytes(3000, 100 + i);
    PreparedObject f = FrameForUpload(Sha256Of(plain), plain, ObjectKind::kData, 0);
    if (!w.Fits(f.stored.size())) break;
    w.Add(mk.KeyedId(f.digest), f.digest, ObjectKind::kData, f.stored);
    added++;
  }
  auto [bytes, idx] = w.Finish();
  EXPECT_GT(added, 15);
  EXPECT_LE(bytes.size(), limit);
  EXPECT_GT(bytes.size(), limit - 3200);
  // A pack of one incompressible object is exactly OneObjectPackSize of its
  // frame (what `remote add` warns about): the frame is the plain bytes and
  // the stored header.
  std::string plain = Bytes(70000, 7);
  PreparedObject f = FrameForUpload(Sha256Of(plain), plain, ObjectKind::kData, 3);
  EXPECT_EQ(f.stored.size(), kStoredHeaderSize + plain.size());
  PackWriter one(mk, 1 << 20);
  EXPECT_EQ(one.SizeWith(f.stored.size()), OneObjectPackSize(f.stored.size()));
  one.Add(mk.KeyedId(f.digest), f.digest, ObjectKind::kData, f.stored);
  EXPECT_EQ(one.Finish().first.size(), OneObjectPackSize(kStoredHeaderSize + plain.size()));
}

TEST(Pack, TamperingTruncationAndGarbageRejected) {
  MasterKey mk = MasterKey::Generate();
  auto [bytes, idx] = BuildPack(mk, Objects(6));
  std::mt19937 rng(7);
  for (int i = 0; i < 300; i++) {
    std::string t = bytes;
    size_t at = rng() % t.size();
    t[at] ^= static_cast<char>(1 + rng() % 255);
    EXPECT_FALSE(DecodePack(mk, t).ok()) << "byte " << at;
  }
  for (size_t cut = 0; cut < bytes.size(); cut += 97) {
    EXPECT_FALSE(DecodePack(mk, bytes.substr(0, cut)).ok());
    uint64_t need = *TrailerLength(bytes, bytes.size());
    if (bytes.size() - cut < need) {
      EXPECT_FALSE(DecodeTrailer(mk, bytes.substr(cut), bytes.size()).ok());
    }
  }
  for (int i = 0; i < 200; i++) {
    std::string g = Bytes(rng() % 4000, 1000 + i);
    if (i % 2 && g.size() > 40) {  // plausible framing around garbage
      g.replace(0, 8, kPackMagic);
      g.replace(g.size() - 8, 8, kPackEndMagic);
    }
    EXPECT_FALSE(DecodePack(mk, g).ok());
  }
  // A footer claiming a huge index is refused without allocating it.
  std::string f = bytes;
  size_t lenpos = f.size() - 12;
  f[lenpos] = f[lenpos + 1] = f[lenpos + 2] = f[lenpos + 3] = '\xff';
  EXPECT_TRUE(TrailerLength(f, f.size()).status().IsCorruption());
  // An entry moved to another name (swap two sealed entries) fails its aad.
  const auto& e0 = idx.entries[0];
  EXPECT_FALSE(OpenEntry(mk, idx.pack_id, idx.entries[1],
                         std::string_view(bytes).substr(e0.offset, e0.length)).ok());
}

// A split object: CutFrame's pieces rebuild the frame, the descriptor round
// trips, and a pack of pieces plus descriptor opens entry by entry with
// each entry's own checks.
TEST(Split, CutDescribeAndPackRoundTrip) {
  MasterKey mk = MasterKey::Generate();
  const std::string plain = Bytes(300'000, 77);  // incompressible: stored raw
  const Digest d = Sha256Of(plain);
  PreparedObject f = FrameForUpload(d, plain, ObjectKind::kData, 3);
  for (uint64_t max_piece : {65'343ull, 100'000ull, 150'009ull, 299'999ull}) {
    auto pieces = CutFrame(f.stored, max_piece);
    ASSERT_GE(pieces.size(), 2u);
    EXPECT_EQ(pieces.size(), std::max<uint64_t>(2, (f.stored.size() + max_piece - 1) / max_piece));
    std::string joined;
    for (auto p : pieces) {
      EXPECT_LE(p.size(), max_piece);
      EXPECT_GE(p.size() + 1, f.stored.size() / pieces.size());  // near-equal
      joined.append(p);
    }
    EXPECT_EQ(joined, f.stored);
    SplitDescriptor desc = DescribeSplit(ObjectKind::kData, pieces);
    EXPECT_EQ(desc.frame_size, f.stored.size());
    std::string enc = EncodeSplitDescriptor(desc);
    auto dec = DecodeSplitDescriptor(enc);
    ASSERT_TRUE(dec.ok()) << dec.status().ToString();
    ASSERT_EQ(dec->pieces.size(), pieces.size());
    for (size_t i = 0; i < pieces.size(); i++) {
      EXPECT_EQ(dec->pieces[i].digest, Sha256Of(pieces[i]));
      EXPECT_EQ(dec->pieces[i].length, pieces[i].size());
    }
  }
  auto pieces = CutFrame(f.stored, 65'343);
  SplitDescriptor desc = DescribeSplit(ObjectKind::kData, pieces);
  PackWriter w(mk, 1 << 20);
  for (size_t i = 0; i < pieces.size(); i++)
    w.Add(mk.PieceKeyedId(desc.pieces[i].digest), desc.pieces[i].digest, ObjectKind::kData, pieces[i],
          EntryType::kPiece);
  w.Add(mk.KeyedId(d), d, ObjectKind::kData, EncodeSplitDescriptor(desc), EntryType::kSplit);
  auto [bytes, idx] = w.Finish();
  auto pack = DecodePack(mk, bytes);
  ASSERT_TRUE(pack.ok()) << pack.status().ToString();
  ASSERT_EQ(pack->entries.size(), pieces.size() + 1);
  for (size_t i = 0; i < pieces.size(); i++) {
    const PackEntry& e = pack->entries[i];
    EXPECT_EQ(e.type, EntryType::kPiece);
    EXPECT_NE(e.keyed_id, mk.KeyedId(e.digest));  // a piece never takes an object's name
    auto o = OpenEntry(mk, pack->pack_id, e, std::string_view(bytes).substr(e.offset, e.length));
    ASSERT_TRUE(o.ok()) << o.status().ToString();
    EXPECT_EQ(o->stored, pieces[i]);
  }
  EXPECT_EQ(pack->entries.back().type, EntryType::kSplit);
  // The index record's kind byte: 3 for a piece, 2 for a descriptor; what
  // the local index stores decodes to the same.
  EXPECT_EQ(KindByte(pack->entries[0]), 3);
  EXPECT_EQ(KindByte(pack->entries.back()), 2);
  PackEntry junk;
  EXPECT_TRUE(SetKindByte(&junk, 4).IsCorruption());
  PackRecord rec{PackLocation{1, 2, 3, bytes.size()}, *pack};
  auto back = DecodePackRecord(pack->pack_id, EncodePackRecord(rec));
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->index.entries.back().type, EntryType::kSplit);
  EXPECT_EQ(back->index.entries.front().type, EntryType::kPiece);

  // Each entry is checked as what its kind says: a piece whose bytes do not
  // hash to its name, a piece under an object's keyed id, and a descriptor
  // that does not decode are each refused, though they authenticate.
  {
    PackWriter bad(mk, 1 << 20);
    bad.Add(mk.PieceKeyedId(d), d, ObjectKind::kData, pieces[0], EntryType::kPiece);
    auto [b, i2] = bad.Finish();
    EXPECT_TRUE(DecodePack(mk, b).status().IsCorruption());
  }
  {
    PackWriter bad(mk, 1 << 20);
    bad.Add(mk.KeyedId(desc.pieces[0].digest), desc.pieces[0].digest, ObjectKind::kData, pieces[0], EntryType::kPiece);
    auto [b, i2] = bad.Finish();
    EXPECT_TRUE(DecodePack(mk, b).status().IsCorruption());
  }
  {
    PackWriter bad(mk, 1 << 20);
    bad.Add(mk.KeyedId(d), d, ObjectKind::kData, "HFSPLIT1 not a descriptor", EntryType::kSplit);
    auto [b, i2] = bad.Finish();
    EXPECT_TRUE(DecodePack(mk, b).status().IsCorruption());
  }
}

TEST(Split, DescriptorDecoderRefusesWhatTheEncoderCannotWrite) {
  std::vector<std::string_view> two = {"abcdefghij", "klmnopqrst"};
  const std::string good = EncodeSplitDescriptor(DescribeSplit(ObjectKind::kMeta, two));
  ASSERT_TRUE(DecodeSplitDescriptor(good).ok());
  EXPECT_EQ(DecodeSplitDescriptor(good)->kind, ObjectKind::kMeta);
  auto with = [&](size_t at, uint64_t v, int n) {
    std::string s = good;
    for (int i = 0; i < n; i++) s[at + i] = static_cast<char>((v >> (8 * i)) & 0xff);
    return s;
  };
  EXPECT_TRUE(DecodeSplitDescriptor("").status().IsCorruption());
  EXPECT_TRUE(DecodeSplitDescriptor(good.substr(0, good.size() - 1)).status().IsCorruption());
  EXPECT_TRUE(DecodeSplitDescriptor(good + "x").status().IsCorruption());
  EXPECT_TRUE(DecodeSplitDescriptor("XFSPLIT1" + good.substr(8)).status().IsCorruption());
  EXPECT_TRUE(DecodeSplitDescriptor(with(8, 2, 1)).status().IsCorruption());            // object kind
  EXPECT_TRUE(DecodeSplitDescriptor(with(9, 21, 8)).status().IsCorruption());           // lengths != frame size
  EXPECT_TRUE(DecodeSplitDescriptor(with(9, kMaxSplitFrame + 1, 8)).status().IsCorruption());
  EXPECT_TRUE(DecodeSplitDescriptor(with(17, 1, 4)).status().IsCorruption());           // one piece
  EXPECT_TRUE(DecodeSplitDescriptor(with(17, 0xffffffff, 4)).status().IsCorruption());  // absurd count
  EXPECT_TRUE(DecodeSplitDescriptor(with(kSplitHeaderSize + 32, 0, 4)).status().IsCorruption());  // empty piece
  // Random bytes after the magic never crash and are refused.
  for (uint32_t seed = 0; seed < 2000; seed++) {
    std::string s = "HFSPLIT1" + Bytes(seed % 200, seed);
    (void)DecodeSplitDescriptor(s);
  }
}

TEST(RemoteIndex, RecordsFindsAndForgets) {
  MemoryStore store;
  RemoteIndex idx(store, "origin");
  MasterKey mk = MasterKey::Generate();
  auto objs = Objects(5);
  auto [b1, i1] = BuildPack(mk, {objs[0], objs[1], objs[2]});
  auto [b2, i2] = BuildPack(mk, {objs[2], objs[3], objs[4]});
  ASSERT_TRUE(idx.AddPacks({PackRecord{{1, 10, 11, b1.size()}, i1}}).ok());
  ASSERT_TRUE(idx.AddPacks({PackRecord{{2, 20, 21, b2.size()}, i2}}).ok());
  auto all = idx.AllKeyedIds();
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(all->size(), 5u);
  auto loc = idx.Find(mk.KeyedId(objs[2].d));
  ASSERT_TRUE(loc.ok() && loc->has_value());
  EXPECT_EQ((*loc)->pack_id, i2.pack_id);  // the newer pack wins
  auto p = idx.GetPack(i1.pack_id);
  ASSERT_TRUE(p.ok() && p->has_value());
  EXPECT_EQ((*p)->loc.message, 10u);
  EXPECT_EQ((*p)->index.entries.size(), 3u);
  EXPECT_EQ((*p)->index.entries[1].digest, objs[1].d);
  ASSERT_TRUE(idx.RemovePacks({i1.pack_id}).ok());
  EXPECT_FALSE(idx.Find(mk.KeyedId(objs[0].d))->has_value());
  EXPECT_TRUE(idx.Find(mk.KeyedId(objs[2].d))->has_value());  // still in pack 2
  ASSERT_TRUE(idx.SetWatermark(2, 99).ok());
  EXPECT_EQ(*idx.Watermark(2), 99u);
  ASSERT_TRUE(idx.Put("config", RemoteConfig{"origin", "discord", {2}}.ToJson()).ok());
  auto names = RemoteIndex::Names(store);
  ASSERT_TRUE(names.ok());
  EXPECT_EQ(*names, std::vector<std::string>{"origin"});
  ASSERT_TRUE(idx.ClearObjects().ok());
  EXPECT_EQ(idx.AllKeyedIds()->size(), 0u);
  EXPECT_EQ(*idx.Watermark(2), 0u);
  // Nothing in the index is a signed attachment URL.
  ASSERT_TRUE(store.View([](RefTxn& t) -> Status {
    auto kv = t.List("remote/");
    for (const auto& [k, v] : *kv) {
      EXPECT_EQ(v.find("/attachments/"), std::string::npos) << k;
      EXPECT_EQ(v.find("hm="), std::string::npos) << k;
    }
    return Status::Ok();
  }).ok());
}

TEST(RemoteFormat, RefsManifestRoundTrip) {
  RemoteRefs r;
  r.seq = 7;
  r.gc_generation = 2;
  r.volumes["work"] = RemoteVolume{Sha256Of("h"), 3, {{1, Sha256Of("a")}, {3, Sha256Of("h")}}};
  r.snapshots["keep"] = Sha256Of("a");
  auto back = RemoteRefs::FromJson(r.ToJson());
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->seq, 7u);
  EXPECT_EQ(back->volumes["work"].history, r.volumes["work"].history);
  EXPECT_EQ(back->snapshots, r.snapshots);
  EXPECT_EQ(back->KeptCommits().size(), 2u);
  EXPECT_FALSE(RemoteRefs::FromJson("{\"format\":1,\"volumes\":{\"../x\":{}}}").ok());
  EXPECT_FALSE(RemoteRefs::FromJson("garbage").ok());
  Manifest m;
  m.kdf.salt = "0123456789abcdef";
  m.wrapped_key = RandomBytes(92);
  m.channels = {5, 6};
  m.refs_channel = 5;
  m.refs_message = 77;
  m.refs_seq = 3;
  ASSERT_LE(m.Content().size(), 2000u);  // Discord's content limit
  auto mb = Manifest::Parse(m.Content());
  ASSERT_TRUE(mb.ok());
  EXPECT_EQ(mb->wrapped_key, m.wrapped_key);
  EXPECT_EQ(mb->refs_message, 77u);
  EXPECT_TRUE(Manifest::Parse("hello").status().IsNotFound());
  EXPECT_FALSE(Manifest::Parse(std::string(kManifestPrefix) + "{").ok());
}

// Refs of `commits` kept commits of one volume.
RemoteRefs LongRefs(uint64_t seq, int commits) {
  RemoteRefs r;
  r.seq = seq;
  RemoteVolume v;
  for (int i = 1; i <= commits; i++) v.history.emplace_back(i, Sha256Of("commit " + std::to_string(i)));
  v.head_seq = v.history.back().first;
  v.head = v.history.back().second;
  r.volumes["work"] = v;
  r.snapshots["keep"] = v.history.front().second;
  return r;
}

// Format 2 refs: compressed, cut into parts under both limits, each part
// bound to its seq, index and count; format 1 still opens.
TEST(SealedRefs, SplitsCompressesAndBindsEveryPart) {
  const std::string key = RandomBytes(32);
  RemoteRefs r = LongRefs(9, 2000);
  const std::string json = r.ToJson();
  auto z = CompressRefs(r);
  ASSERT_TRUE(z.ok()) << z.status().ToString();
  EXPECT_LT(z->size() * 10, json.size() * 6) << "hex digests compress to about half";

  // One part when it fits; several of at most the part limit otherwise.
  auto one = SealRefs(key, r, 1 << 20, 4 << 20);
  ASSERT_TRUE(one.ok()) << one.status().ToString();
  ASSERT_EQ(one->size(), 1u);
  auto parts = SealRefs(key, r, 16384, 4 << 20);
  ASSERT_TRUE(parts.ok()) << parts.status().ToString();
  ASSERT_EQ(parts->size(), (z->size() + 16384 - kSealOverhead - 1) / (16384 - kSealOverhead));
  ASSERT_GE(parts->size(), 3u);
  for (const auto& p : *parts) EXPECT_LE(p.size(), 16384u);
  auto back = OpenRefs(key, 9, static_cast<uint32_t>(parts->size()), *parts);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(back->ToJson(), json);

  const auto n = static_cast<uint32_t>(parts->size());
  auto corrupt = [&](const std::vector<std::string>& v, uint64_t seq, uint32_t count) {
    auto o = OpenRefs(key, seq, count, v);
    EXPECT_TRUE(o.status().IsCorruption()) << o.status().ToString();
    return o.status().message();
  };
  // Replayed under another seq, parts swapped, one left out, a bit flipped.
  EXPECT_NE(corrupt(*parts, 10, n).find("tampered"), std::string::npos);
  auto swapped = *parts;
  std::swap(swapped[0], swapped[1]);
  corrupt(swapped, 9, n);
  auto fewer = *parts;
  fewer.pop_back();
  corrupt(fewer, 9, n);
  corrupt(fewer, 9, n - 1);
  auto flipped = *parts;
  flipped[1][40] ^= 1;
  corrupt(flipped, 9, n);
  corrupt(*parts, 9, 0);
  EXPECT_FALSE(OpenRefs(RandomBytes(32), 9, n, *parts).ok());

  // Too large for 10 parts, or for the message's total: TooBig, never cut.
  auto too_many = SealRefs(key, r, 4096, 4 << 20);
  EXPECT_EQ(too_many.status().code(), Status::Code::kTooBig) << too_many.status().ToString();
  auto too_much = SealRefs(key, r, 1 << 20, z->size());
  EXPECT_EQ(too_much.status().code(), Status::Code::kTooBig) << too_much.status().ToString();
  auto count = RefsPartCount(z->size(), 1 << 20, z->size() + kSealOverhead);
  ASSERT_TRUE(count.ok());
  EXPECT_EQ(*count, 1u);

  // Format 1: the plain JSON sealed whole; its seq must be the header's.
  std::vector<std::string> v1 = {Seal(key, json, kRefsAadV1)};
  auto old = OpenRefs(key, 9, 0, v1);
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_EQ(old->ToJson(), json);
  EXPECT_NE(corrupt(v1, 50, 0).find("claims seq 50 but its sealed refs are seq 9"), std::string::npos);
  corrupt(v1, 9, 1);
}

// The header's part count round-trips and is bounded; a format-1 header has
// none.
TEST(SealedRefs, HeaderCarriesThePartCount) {
  RefLogHeader h;
  h.seq = 4;
  h.kdf.salt = "0123456789abcdef";
  h.wrapped_key = RandomBytes(92);
  EXPECT_EQ(h.Content().find("parts"), std::string::npos);
  auto v1 = RefLogHeader::Parse(h.Content());
  ASSERT_TRUE(v1.ok()) << v1.status().ToString();
  EXPECT_EQ(v1->parts, 0u);
  h.parts = 3;
  auto v2 = RefLogHeader::Parse(h.Content());
  ASSERT_TRUE(v2.ok()) << v2.status().ToString();
  EXPECT_EQ(v2->parts, 3u);
  for (uint32_t bad : {0u, kMaxRefsParts + 1}) {
    std::string c = h.Content();
    c.replace(c.find("\"parts\":3"), 9, "\"parts\":" + std::to_string(bad));
    EXPECT_TRUE(RefLogHeader::Parse(c).status().IsCorruption()) << c;
  }
}

// Hostile compressed refs: more than one frame, no recorded size, a size
// beyond the limits, a size that is not what the frame holds.
TEST(SealedRefs, DecompressRefusesHostileFrames) {
  auto z = CompressRefs(LongRefs(1, 50));
  ASSERT_TRUE(z.ok());
  ASSERT_TRUE(DecompressRefs(*z).ok());
  EXPECT_TRUE(DecompressRefs(*z + *z).status().IsCorruption());
  EXPECT_TRUE(DecompressRefs(z->substr(0, z->size() - 1)).status().IsCorruption());
  EXPECT_TRUE(DecompressRefs("").status().IsCorruption());
  EXPECT_TRUE(DecompressRefs("not zstd at all").status().IsCorruption());
  // 1 MiB of zeros compresses to a few dozen bytes: over the inflation bound.
  std::string zeros(1 << 20, '\0');
  std::string bomb(ZSTD_compressBound(zeros.size()), '\0');
  bomb.resize(ZSTD_compress(bomb.data(), bomb.size(), zeros.data(), zeros.size(), 3));
  auto b = DecompressRefs(bomb);
  ASSERT_TRUE(b.status().IsCorruption()) << b.status().ToString();
  EXPECT_NE(b.status().message().find("claim"), std::string::npos) << b.status().ToString();
  // A frame without its content size.
  ZSTD_CCtx* c = ZSTD_createCCtx();
  ASSERT_EQ(ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0), 0u);
  std::string unsized(ZSTD_compressBound(100), '\0');
  unsized.resize(ZSTD_compress2(c, unsized.data(), unsized.size(), zeros.data(), 100));
  ZSTD_freeCCtx(c);
  ASSERT_EQ(ZSTD_getFrameContentSize(unsized.data(), unsized.size()), ZSTD_CONTENTSIZE_UNKNOWN);
  auto u = DecompressRefs(unsized);
  ASSERT_TRUE(u.status().IsCorruption());
  EXPECT_NE(u.status().message().find("does not record"), std::string::npos) << u.status().ToString();
}

// A scripted HttpClient: a fake Discord route with a fixed-window bucket, so
// the rate-limit and retry logic can be checked without a network.
class FakeDiscord : public HttpClient {
 public:
  int limit = 3;
  double window = 0.3;
  std::deque<int> script;  // statuses to answer before the normal behaviour (0 = drop connection)
  int sent = 0, into_exhausted = 0, concurrent = 0, max_concurrent = 0;

  Result<HttpResponse> Send(const HttpRequest&) override {
    std::unique_lock lk(mu_);
    sent++;
    concurrent++;
    max_concurrent = std::max(max_concurrent, concurrent);
    auto now = std::chrono::steady_clock::now();
    if (now < announced_until_) into_exhausted++;
    HttpResponse r;
    int forced = -1;
    if (!script.empty()) {
      forced = script.front();
      script.pop_front();
    }
    lk.unlock();
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    lk.lock();
    concurrent--;
    if (forced == 0) return Status::IOError("connection dropped");
    if (forced > 0) {
      r.status = forced;
      if (forced == 429) {
        r.body = "{\"message\":\"You are being rate limited.\",\"retry_after\":0.05,\"global\":false}";
        r.headers["retry-after"] = "1";
      } else if (forced == 503) {
        r.body = "{\"code\":130000,\"message\":\"overloaded\"}";
      } else if (forced == 413) {
        r.body = "{\"code\":40005,\"message\":\"Request entity too large\"}";
      } else {
        r.body = "{\"code\":0,\"message\":\"nope\"}";
      }
      return r;
    }
    if (now >= reset_) {
      reset_ = now + std::chrono::duration_cast<std::chrono::steady_clock::duration>(std::chrono::duration<double>(window));
      remaining_ = limit;
    }
    if (remaining_ == 0) {
      r.status = 429;
      r.body = "{\"retry_after\":0.1,\"global\":false}";
      return r;
    }
    remaining_--;
    double after = std::chrono::duration<double>(reset_ - now).count();
    r.status = 200;
    r.body = "{\"id\":\"1\",\"channel_id\":\"5\",\"content\":\"x\",\"attachments\":[]}";
    r.headers["x-ratelimit-limit"] = std::to_string(limit);
    r.headers["x-ratelimit-remaining"] = std::to_string(remaining_);
    r.headers["x-ratelimit-reset-after"] = std::to_string(after + 0.001);
    r.headers["x-ratelimit-bucket"] = "abc";
    if (remaining_ == 0) announced_until_ = reset_;
    return r;
  }

 private:
  std::mutex mu_;
  std::chrono::steady_clock::time_point reset_{}, announced_until_{};
  int remaining_ = 0;
};

DiscordOptions FastOptions() {
  DiscordOptions o;
  o.api_url = "http://fake/api/v10";
  o.token = "t";
  o.backoff_base_seconds = 0.01;
  o.backoff_max_seconds = 0.05;
  return o;
}

TEST(RateLimit, NeverSendsIntoAnExhaustedBucket) {
  FakeDiscord fake;
  DiscordApi api(fake, FastOptions());
  std::vector<std::thread> ts;
  auto start = std::chrono::steady_clock::now();
  for (int t = 0; t < 4; t++)
    ts.emplace_back([&] {
      for (int i = 0; i < 4; i++) ASSERT_TRUE(api.GetMessage(5, 1).ok());
    });
  for (auto& t : ts) t.join();
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(fake.into_exhausted, 0);
  EXPECT_EQ(fake.sent, 16);  // no 429 probing
  EXPECT_EQ(fake.max_concurrent, 1);  // one request per bucket at a time
  EXPECT_GE(secs, 5 * 0.3 - 0.05);    // 16 requests at 3 per 0.3 s need 5 full windows
  EXPECT_GT(api.limiter().counters().waits.load(), 0u);
  auto v = api.limiter().View("GET /channels/{}/messages/:id", "5");
  EXPECT_EQ(v.bucket, "abc");
  EXPECT_EQ(v.limit, 3);
}

TEST(RateLimit, RetriesTransientFailuresAnd429) {
  FakeDiscord fake;
  fake.script = {0, 500, 503, 429, 502};
  DiscordApi api(fake, FastOptions());
  auto m = api.GetMessage(5, 1);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  EXPECT_EQ(fake.sent, 6);
  EXPECT_EQ(api.limiter().counters().rate_limited.load(), 1u);
  EXPECT_EQ(api.counters().retries.load(), 4u);
}

TEST(RateLimit, GivesUpAfterMaxAttempts) {
  FakeDiscord fake;
  for (int i = 0; i < 20; i++) fake.script.push_back(500);
  DiscordOptions o = FastOptions();
  o.max_attempts = 4;
  DiscordApi api(fake, o);
  auto m = api.GetMessage(5, 1);
  EXPECT_EQ(m.status().code(), Status::Code::kIOError);
  EXPECT_EQ(fake.sent, 4);
}

TEST(RateLimit, StopsAtOnceOn401And403) {
  FakeDiscord fake;
  fake.script = {401};
  DiscordApi api(fake, FastOptions());
  auto m = api.GetMessage(5, 1);
  EXPECT_EQ(m.status().code(), Status::Code::kPermission);
  EXPECT_NE(m.status().message().find("token"), std::string::npos);
  EXPECT_EQ(api.GetMessage(5, 1).status().code(), Status::Code::kPermission);
  EXPECT_EQ(fake.sent, 1);  // the second call never reached the network
  FakeDiscord f2;
  f2.script = {403};
  DiscordApi api2(f2, FastOptions());
  EXPECT_EQ(api2.Pins(5).status().code(), Status::Code::kPermission);
  EXPECT_EQ(f2.sent, 1);
}

TEST(RateLimit, TooLargeIsNotRetried) {
  FakeDiscord fake;
  fake.script = {413};
  DiscordApi api(fake, FastOptions());
  std::string data(100, 'x');
  auto m = api.CreateMessage(5, "x", {{"a.hfp", data}});
  EXPECT_EQ(m.status().code(), Status::Code::kTooBig);
  EXPECT_EQ(fake.sent, 1);
}

}  // namespace
}  // namespace hashfs::remote
