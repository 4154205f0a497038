// Tests for cas/object_codec.h: the stored-object frame (header + raw or
// zstd payload), its parsing, and detection of every kind of damage.
#include "cas/object_codec.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <ctime>
#include <new>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "tests/cas/cas_test_util.h"

// ---------------------------------------------------------------------------
// Allocation tracking: lets a test assert that decoding a header which claims
// an absurd size never asks the allocator for that much memory. Replacing the
// global operator new is program-wide; it only records the largest request
// made by the current thread while tracking is switched on.
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
#define CAS_TRACK_ALLOCATIONS 1
namespace {
thread_local bool g_track_allocs = false;
thread_local size_t g_max_alloc = 0;
void* TrackedAlloc(size_t n) {
  if (g_track_allocs && n > g_max_alloc) g_max_alloc = n;
  void* p = std::malloc(n ? n : 1);
  if (!p) throw std::bad_alloc();
  return p;
}
}  // namespace
void* operator new(size_t n) { return TrackedAlloc(n); }
void* operator new[](size_t n) { return TrackedAlloc(n); }
void operator delete(void* p) noexcept { std::free(p); }
void operator delete[](void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }
void operator delete[](void* p, size_t) noexcept { std::free(p); }
#endif

namespace hashfs {
namespace {

using ::hashfs::testing::RandomBytes;

// Largest single allocation made by this thread while running fn.
template <typename Fn>
size_t MaxAllocDuring(Fn&& fn) {
#ifdef CAS_TRACK_ALLOCATIONS
  g_max_alloc = 0;
  g_track_allocs = true;
  fn();
  g_track_allocs = false;
  return g_max_alloc;
#else
  fn();
  return 0;
#endif
}

uint64_t GetLE64(std::string_view s, size_t off) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | static_cast<uint8_t>(s[off + i]);
  return v;
}
void SetLE64(std::string& s, size_t off, uint64_t v) {
  for (int i = 0; i < 8; i++) s[off + i] = static_cast<char>(v >> (8 * i));
}

// Highly compressible, but not trivially so.
std::string Compressible(size_t n, char salt = 'a') {
  std::string s;
  s.reserve(n);
  for (size_t i = 0; s.size() < n; i++) {
    s += "line ";
    s += std::to_string(i % 97);
    s += ": the quick brown fox ";
    s += salt;
    s += '\n';
  }
  s.resize(n);
  return s;
}

TEST(ObjectCodecTest, RawRoundTripRandomData) {
  for (size_t n : {0ul, 1ul, 17ul, 63ul, 64ul, 65ul, 1000ul, 4096ul, 100000ul}) {
    std::string plain = RandomBytes(n, n);
    PreparedObject o = PrepareObject(plain, ObjectKind::kData, 3);
    EXPECT_EQ(o.digest, Sha256Of(plain));
    // Random data never compresses: stays raw, header + plain bytes verbatim.
    ASSERT_EQ(o.stored.size(), kStoredHeaderSize + n) << n;
    EXPECT_EQ(o.stored[0], 0) << "codec byte for random data of size " << n;
    EXPECT_EQ(o.stored.substr(kStoredHeaderSize), plain);
    auto back = DecodeStoredObject(o.digest, o.stored);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, plain);
  }
}

TEST(ObjectCodecTest, CompressibleDataIsCompressedAndRoundTrips) {
  for (size_t n : {200ul, 4096ul, 1ul << 20}) {
    std::string plain = Compressible(n);
    PreparedObject o = PrepareObject(plain, ObjectKind::kData, 3);
    EXPECT_EQ(o.digest, Sha256Of(plain));
    EXPECT_EQ(static_cast<uint8_t>(o.stored[0]), 1) << "codec byte for compressible data, size " << n;
    EXPECT_LT(o.stored.size(), plain.size()) << n;
    EXPECT_LT(o.stored.size() - kStoredHeaderSize, plain.size() - plain.size() / 32) << n;
    EXPECT_EQ(GetLE64(o.stored, 2), n);
    auto back = DecodeStoredObject(o.digest, o.stored);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, plain);
  }
}

TEST(ObjectCodecTest, AllZeroMegabyteCompressesHard) {
  std::string plain(1 << 20, '\0');
  PreparedObject o = PrepareObject(plain, ObjectKind::kData, 1);
  EXPECT_EQ(o.stored[0], 1);
  EXPECT_LT(o.stored.size(), 1024u);
  auto back = DecodeStoredObject(o.digest, o.stored);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, plain);
}

TEST(ObjectCodecTest, LevelZeroNeverCompresses) {
  std::string plain = Compressible(10000);
  PreparedObject o = PrepareObject(plain, ObjectKind::kData, 0);
  EXPECT_EQ(o.stored[0], 0);
  EXPECT_EQ(o.stored.size(), kStoredHeaderSize + plain.size());
  auto back = DecodeStoredObject(o.digest, o.stored);
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, plain);
}

TEST(ObjectCodecTest, TinyObjectsStayRaw) {
  std::string plain(63, 'z');  // compressible but below the 64-byte floor
  PreparedObject o = PrepareObject(plain, ObjectKind::kMeta, 19);
  EXPECT_EQ(o.stored[0], 0);
  EXPECT_EQ(o.stored.size(), kStoredHeaderSize + 63);
}

TEST(ObjectCodecTest, EmptyObject) {
  PreparedObject o = PrepareObject("", ObjectKind::kData, 3);
  EXPECT_EQ(o.digest, Sha256Of(""));
  EXPECT_EQ(o.stored.size(), kStoredHeaderSize);
  auto info = ParseStoredHeader(o.stored);
  ASSERT_TRUE(info.ok());
  EXPECT_EQ(info->plain_size, 0u);
  auto back = DecodeStoredObject(o.digest, o.stored);
  ASSERT_TRUE(back.ok()) << back.status().ToString();
  EXPECT_EQ(*back, "");
}

TEST(ObjectCodecTest, PrepareWithDigestUsesGivenDigest) {
  std::string plain = Compressible(5000);
  Digest d = Sha256Of(plain);
  PreparedObject a = PrepareObjectWithDigest(d, plain, ObjectKind::kData, 3);
  PreparedObject b = PrepareObject(plain, ObjectKind::kData, 3);
  EXPECT_EQ(a.digest, d);
  // Same payload (the write-time bytes 10..17 may differ by a second).
  EXPECT_EQ(a.stored.substr(0, 10), b.stored.substr(0, 10));
  EXPECT_EQ(a.stored.substr(kStoredHeaderSize), b.stored.substr(kStoredHeaderSize));

  // A caller-supplied wrong digest is not re-checked at prepare time, but the
  // object then never decodes.
  Digest wrong = Sha256Of("something else");
  PreparedObject bad = PrepareObjectWithDigest(wrong, plain, ObjectKind::kData, 3);
  EXPECT_EQ(bad.digest, wrong);
  CAS_EXPECT_CODE(DecodeStoredObject(wrong, bad.stored), kCorruption);
  auto ok = DecodeStoredObject(d, bad.stored);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, plain);
}

TEST(ObjectCodecTest, ParseStoredHeaderFields) {
  uint64_t before = static_cast<uint64_t>(std::time(nullptr));
  std::string raw_plain = RandomBytes(777, 1);
  PreparedObject raw = PrepareObject(raw_plain, ObjectKind::kData, 3);
  std::string meta_plain = Compressible(50000);
  PreparedObject meta = PrepareObject(meta_plain, ObjectKind::kMeta, 3);
  uint64_t after = static_cast<uint64_t>(std::time(nullptr));

  auto ri = ParseStoredHeader(raw.stored);
  ASSERT_TRUE(ri.ok()) << ri.status().ToString();
  EXPECT_EQ(ri->kind, ObjectKind::kData);
  EXPECT_FALSE(ri->compressed);
  EXPECT_EQ(ri->plain_size, 777u);
  EXPECT_EQ(ri->stored_size, raw.stored.size());
  EXPECT_EQ(ri->stored_size, 777u + kStoredHeaderSize);
  EXPECT_GE(ri->write_time, before);
  EXPECT_LE(ri->write_time, after);
  EXPECT_EQ(static_cast<uint8_t>(raw.stored[1]), 0);

  auto mi = ParseStoredHeader(meta.stored);
  ASSERT_TRUE(mi.ok()) << mi.status().ToString();
  EXPECT_EQ(mi->kind, ObjectKind::kMeta);
  EXPECT_TRUE(mi->compressed);
  EXPECT_EQ(mi->plain_size, 50000u);
  EXPECT_EQ(mi->stored_size, meta.stored.size());
  EXPECT_GE(mi->write_time, before);
  EXPECT_LE(mi->write_time, after);
  EXPECT_EQ(static_cast<uint8_t>(meta.stored[1]), 1);
  EXPECT_EQ(GetLE64(meta.stored, 10), mi->write_time);
}

TEST(ObjectCodecTest, ParseStoredHeaderReadsLittleEndianFields) {
  std::string s(kStoredHeaderSize + 3, '\0');
  s[0] = 0;
  s[1] = 1;
  SetLE64(s, 2, 3);
  SetLE64(s, 10, 0x0102030405060708ull);
  s.replace(kStoredHeaderSize, 3, "xyz");
  auto i = ParseStoredHeader(s);
  ASSERT_TRUE(i.ok()) << i.status().ToString();
  EXPECT_EQ(i->kind, ObjectKind::kMeta);
  EXPECT_EQ(i->plain_size, 3u);
  EXPECT_EQ(i->write_time, 0x0102030405060708ull);
  EXPECT_EQ(static_cast<uint8_t>(s[10]), 0x08);  // least significant byte first
  auto d = DecodeStoredObject(Sha256Of("xyz"), s);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(*d, "xyz");
}

TEST(ObjectCodecTest, TruncatedHeaderIsCorruption) {
  PreparedObject o = PrepareObject("hello world", ObjectKind::kData, 3);
  for (size_t n = 0; n < kStoredHeaderSize; n++) {
    std::string_view cut = std::string_view(o.stored).substr(0, n);
    CAS_EXPECT_CODE(ParseStoredHeader(cut), kCorruption) << "length " << n;
    CAS_EXPECT_CODE(DecodeStoredObject(o.digest, cut), kCorruption) << "length " << n;
  }
}

TEST(ObjectCodecTest, TruncatedOrExtendedPayloadIsCorruption) {
  for (bool compress : {false, true}) {
    std::string plain = compress ? Compressible(3000) : RandomBytes(3000, 9);
    PreparedObject o = PrepareObject(plain, ObjectKind::kData, 3);
    ASSERT_EQ(o.stored[0], compress ? 1 : 0);
    for (size_t cut = 1; cut <= o.stored.size() - kStoredHeaderSize; cut += (cut < 40 ? 1 : 97)) {
      std::string s = o.stored.substr(0, o.stored.size() - cut);
      CAS_EXPECT_CODE(DecodeStoredObject(o.digest, s), kCorruption)
          << "compressed=" << compress << " cut " << cut;
    }
    for (std::string tail : {std::string(1, '\0'), std::string("garbage"), o.stored.substr(kStoredHeaderSize)}) {
      CAS_EXPECT_CODE(DecodeStoredObject(o.digest, o.stored + tail), kCorruption)
          << "compressed=" << compress << " tail of " << tail.size();
    }
  }
}

TEST(ObjectCodecTest, UnknownCodecIsCorruption) {
  PreparedObject o = PrepareObject(RandomBytes(100, 3), ObjectKind::kData, 3);
  for (int codec : {2, 3, 0x7f, 0x80, 0xff}) {
    std::string s = o.stored;
    s[0] = static_cast<char>(codec);
    CAS_EXPECT_CODE(ParseStoredHeader(s), kCorruption) << codec;
    CAS_EXPECT_CODE(DecodeStoredObject(o.digest, s), kCorruption) << codec;
  }
}

TEST(ObjectCodecTest, UnknownKindIsCorruption) {
  PreparedObject o = PrepareObject(RandomBytes(100, 4), ObjectKind::kData, 3);
  for (int kind : {2, 3, 0x7f, 0x80, 0xff}) {
    std::string s = o.stored;
    s[1] = static_cast<char>(kind);
    CAS_EXPECT_CODE(ParseStoredHeader(s), kCorruption) << kind;
    CAS_EXPECT_CODE(DecodeStoredObject(o.digest, s), kCorruption) << kind;
  }
}

TEST(ObjectCodecTest, RawSizeMismatchIsCorruption) {
  PreparedObject o = PrepareObject(RandomBytes(100, 5), ObjectKind::kData, 3);
  for (uint64_t claimed : {0ull, 99ull, 101ull, 1ull << 20}) {
    std::string s = o.stored;
    SetLE64(s, 2, claimed);
    CAS_EXPECT_CODE(ParseStoredHeader(s), kCorruption) << claimed;
    CAS_EXPECT_CODE(DecodeStoredObject(o.digest, s), kCorruption) << claimed;
  }
}

TEST(ObjectCodecTest, AbsurdPlainSizeRejectedWithoutAllocating) {
  std::string plain = Compressible(100000);
  PreparedObject o = PrepareObject(plain, ObjectKind::kData, 3);
  ASSERT_EQ(o.stored[0], 1);
  for (uint64_t claimed : {uint64_t{kMaxObjectSize + 1}, uint64_t{kMaxObjectSize * 2}, uint64_t{1} << 40, ~uint64_t{0}}) {
    std::string s = o.stored;
    SetLE64(s, 2, claimed);
    CAS_EXPECT_CODE(ParseStoredHeader(s), kCorruption) << claimed;
    Result<std::string> r = Status::Corruption("unset");
    size_t biggest = MaxAllocDuring([&] { r = DecodeStoredObject(o.digest, s); });
    CAS_EXPECT_CODE(r, kCorruption) << claimed;
    EXPECT_LT(biggest, 1u << 20) << "decoding a header claiming " << claimed
                                 << " bytes allocated " << biggest << " bytes";
  }
  // Raw codec claiming a huge size: also rejected without allocating it.
  std::string s = PrepareObject(RandomBytes(50, 6), ObjectKind::kData, 0).stored;
  SetLE64(s, 2, 1ull << 40);
  Result<std::string> r = Status::Corruption("unset");
  size_t biggest = MaxAllocDuring([&] { r = DecodeStoredObject(Sha256Of("x"), s); });
  CAS_EXPECT_CODE(r, kCorruption);
  EXPECT_LT(biggest, 1u << 20);
}

TEST(ObjectCodecTest, MaxObjectSizeBoundaryParses) {
  std::string s(kStoredHeaderSize, '\0');
  s[0] = 1;
  SetLE64(s, 2, kMaxObjectSize);
  auto i = ParseStoredHeader(s);
  ASSERT_TRUE(i.ok()) << i.status().ToString();  // exactly the maximum is allowed
  EXPECT_EQ(i->plain_size, kMaxObjectSize);
  // ... but an empty payload cannot decompress to it.
  CAS_EXPECT_CODE(DecodeStoredObject(Sha256Of(""), s), kCorruption);
}

// The central guarantee: damage is reported as Corruption, never as wrong
// bytes. Returns the payload flips that decoded to the right bytes anyway.
std::vector<std::pair<size_t, int>> CheckEveryBitFlip(const std::string& plain, int level,
                                                      bool expect_compressed) {
  std::vector<std::pair<size_t, int>> benign;
  PreparedObject o = PrepareObject(plain, ObjectKind::kData, level);
  EXPECT_EQ(o.stored[0] == 1, expect_compressed);
  for (size_t byte = 0; byte < o.stored.size(); byte++) {
    for (int bit = 0; bit < 8; bit++) {
      std::string s = o.stored;
      s[byte] = static_cast<char>(s[byte] ^ (1 << bit));
      Result<std::string> r = DecodeStoredObject(o.digest, s);
      if (!r.ok()) {
        EXPECT_EQ(r.status().code(), Status::Code::kCorruption)
            << "byte " << byte << " bit " << bit << ": " << r.status().ToString();
        continue;
      }
      // Never wrong bytes, whatever was flipped.
      EXPECT_TRUE(*r == plain) << "WRONG BYTES returned after flipping byte " << byte << " bit " << bit;
      bool informative = byte == 1 || (byte >= 10 && byte < 18);  // kind, write time
      if (informative) continue;
      // Codec and size fields must always be checked.
      EXPECT_GE(byte, kStoredHeaderSize) << "undetected flip of header byte " << byte << " bit " << bit;
      if (byte >= kStoredHeaderSize) benign.emplace_back(byte, bit);
    }
  }
  return benign;
}

std::string FlipList(const std::vector<std::pair<size_t, int>>& v) {
  std::string out;
  for (auto [byte, bit] : v) out += " byte " + std::to_string(byte) + " bit " + std::to_string(bit) + ";";
  return out;
}

TEST(ObjectCodecTest, EverySingleBitFlipInRawObjectIsDetected) {
  // Raw payload bytes are the plain bytes: every flip must fail the hash.
  auto benign = CheckEveryBitFlip("a small raw object: 0123456789", 3, false);
  EXPECT_TRUE(benign.empty()) << FlipList(benign);
  benign = CheckEveryBitFlip(RandomBytes(300, 77), 3, false);
  EXPECT_TRUE(benign.empty()) << FlipList(benign);
}

// Bits of a single-block zstd frame that the format reserves and libzstd's
// decoder ignores (offsets relative to the frame start): the frame header
// descriptor's unused bit 4, and the reserved bits 1-0 of the first block's
// Symbol_Compression_Modes byte. Parsed per RFC 8878; returns empty if the
// frame has a shape this small parser does not handle.
std::set<std::pair<size_t, int>> ZstdIgnoredBits(std::string_view f) {
  std::set<std::pair<size_t, int>> out;
  auto b = [&](size_t i) -> uint32_t { return i < f.size() ? static_cast<uint8_t>(f[i]) : 0; };
  size_t p = 4;  // magic
  uint32_t fhd = b(p);
  out.insert({p, 4});
  bool single_segment = fhd & 0x20;
  static constexpr size_t kDidSizes[] = {0, 1, 2, 4};
  size_t did_size = kDidSizes[fhd & 3];
  size_t fcs_flag = fhd >> 6;
  size_t fcs_size = fcs_flag == 0 ? (single_segment ? 1 : 0) : (size_t{1} << fcs_flag);
  p += 1 + (single_segment ? 0 : 1) + did_size + fcs_size;
  uint32_t bh = b(p) | b(p + 1) << 8 | b(p + 2) << 16;
  if (((bh >> 1) & 3) != 2) return out;  // only a compressed block has sequences
  p += 3;
  // Literals section.
  uint32_t l0 = b(p);
  uint32_t ltype = l0 & 3, sf = (l0 >> 2) & 3;
  size_t content = 0;
  if (ltype <= 1) {  // raw or RLE
    size_t regen;
    if (sf == 0 || sf == 2) {
      regen = l0 >> 3;
      p += 1;
    } else if (sf == 1) {
      regen = (l0 >> 4) + (b(p + 1) << 4);
      p += 2;
    } else {
      regen = (l0 >> 4) + (b(p + 1) << 4) + (b(p + 2) << 12);
      p += 3;
    }
    content = ltype == 0 ? regen : 1;
  } else {  // compressed or treeless
    if (sf <= 1) {
      content = (b(p + 1) >> 6) + (b(p + 2) << 2);
      p += 3;
    } else if (sf == 2) {
      content = (b(p + 2) >> 2) + (b(p + 3) << 6);
      p += 4;
    } else {
      content = (b(p + 2) >> 6) + (b(p + 3) << 2) + (b(p + 4) << 10);
      p += 5;
    }
  }
  p += content;
  // Sequences section header.
  uint32_t n0 = b(p);
  if (n0 == 0) return out;  // no sequences, no modes byte
  p += n0 < 128 ? 1 : (n0 < 255 ? 2 : 3);
  out.insert({p, 0});
  out.insert({p, 1});
  return out;
}

TEST(ObjectCodecTest, EverySingleBitFlipInCompressedObjectIsDetectedOrHarmless) {
  // A zstd frame has a few reserved bits the decoder ignores: flipping those
  // still yields the exact plain bytes, which the hash check confirms (so no
  // wrong bytes can come out). For these small frames (raw literals,
  // predefined tables) every other flip must be Corruption.
  const std::pair<std::string, int> cases[] = {
      {Compressible(600), 3},
      {std::string(256, 'q') + RandomBytes(8, 1) + std::string(256, 'r'), 19},
  };
  for (const auto& [plain, level] : cases) {
    auto benign = CheckEveryBitFlip(plain, level, true);
    std::string stored = PrepareObject(plain, ObjectKind::kData, level).stored;
    auto ignored = ZstdIgnoredBits(std::string_view(stored).substr(kStoredHeaderSize));
    std::vector<std::pair<size_t, int>> unexplained;
    for (auto [byte, bit] : benign)
      if (!ignored.count({byte - kStoredHeaderSize, bit})) unexplained.emplace_back(byte, bit);
    EXPECT_LE(benign.size(), 3u) << FlipList(benign);
    EXPECT_TRUE(unexplained.empty()) << "flips outside zstd's reserved bits went undetected:"
                                     << FlipList(unexplained);
  }
}

TEST(ObjectCodecTest, BitFlipsInHuffmanCompressedObjectNeverYieldWrongBytes) {
  // With Huffman literals and FSE tables, more encodings are "don't care"
  // (weights/probabilities of unused symbols, bitstream padding): such flips
  // decode to the same bytes. The hash guarantees nothing else gets through.
  std::string plain = Compressible(3000, 'k');
  auto benign = CheckEveryBitFlip(plain, 1, true);
  size_t payload_bits = (PrepareObject(plain, ObjectKind::kData, 1).stored.size() - kStoredHeaderSize) * 8;
  EXPECT_LT(benign.size() * 20, payload_bits) << "over 5% of payload bit flips went unnoticed:"
                                              << FlipList(benign);
}

TEST(ObjectCodecTest, SwappedValidZstdFrameCaughtByHashCheck) {
  std::string a = Compressible(8192, 'a');
  std::string b = Compressible(8192, 'b');
  ASSERT_NE(a, b);
  PreparedObject pa = PrepareObject(a, ObjectKind::kData, 3);
  PreparedObject pb = PrepareObject(b, ObjectKind::kData, 3);
  ASSERT_EQ(pa.stored[0], 1);
  ASSERT_EQ(pb.stored[0], 1);
  // A's header (same plain size), B's perfectly valid zstd frame.
  std::string swapped = pa.stored.substr(0, kStoredHeaderSize) + pb.stored.substr(kStoredHeaderSize);
  ASSERT_NE(swapped, pa.stored);
  auto info = ParseStoredHeader(swapped);
  ASSERT_TRUE(info.ok());  // the header alone cannot tell
  // The frame decodes fine for its real owner, so only the hash can catch it.
  auto as_b = DecodeStoredObject(pb.digest, swapped);
  ASSERT_TRUE(as_b.ok()) << as_b.status().ToString();
  EXPECT_EQ(*as_b, b);
  auto as_a = DecodeStoredObject(pa.digest, swapped);
  CAS_ASSERT_CODE(as_a, kCorruption);
  EXPECT_NE(as_a.status().message().find("hash"), std::string::npos) << as_a.status().ToString();
  EXPECT_NE(as_a.status().message().find(pa.digest.Hex()), std::string::npos);
}

TEST(ObjectCodecTest, FrameOfDifferentLengthIsCorruption) {
  std::string a = Compressible(8192);
  PreparedObject pa = PrepareObject(a, ObjectKind::kData, 3);
  for (size_t other_len : {8191ul, 8193ul, 4096ul, 16384ul}) {
    PreparedObject pb = PrepareObject(Compressible(other_len), ObjectKind::kData, 3);
    ASSERT_EQ(pb.stored[0], 1);
    std::string s = pa.stored.substr(0, kStoredHeaderSize) + pb.stored.substr(kStoredHeaderSize);
    CAS_EXPECT_CODE(DecodeStoredObject(pa.digest, s), kCorruption) << other_len;
  }
  // Two frames back to back that together have the right size still fail the hash.
  std::string half = Compressible(4096);
  PreparedObject ph = PrepareObject(half, ObjectKind::kData, 3);
  std::string frame = ph.stored.substr(kStoredHeaderSize);
  std::string s = pa.stored.substr(0, kStoredHeaderSize) + frame + frame;
  CAS_EXPECT_CODE(DecodeStoredObject(pa.digest, s), kCorruption);
}

TEST(ObjectCodecTest, RawPayloadMarkedCompressedIsCorruption) {
  std::string plain = RandomBytes(500, 12);
  PreparedObject o = PrepareObject(plain, ObjectKind::kData, 3);
  ASSERT_EQ(o.stored[0], 0);
  std::string s = o.stored;
  s[0] = 1;
  CAS_EXPECT_CODE(DecodeStoredObject(o.digest, s), kCorruption);
}

TEST(ObjectCodecTest, WrongExpectedDigestIsCorruption) {
  for (bool compress : {false, true}) {
    std::string plain = compress ? Compressible(1000) : RandomBytes(1000, 1);
    PreparedObject o = PrepareObject(plain, ObjectKind::kData, 3);
    Digest wrong = o.digest;
    wrong.bytes[31] ^= 1;
    CAS_EXPECT_CODE(DecodeStoredObject(wrong, o.stored), kCorruption);
    CAS_EXPECT_CODE(DecodeStoredObject(Digest::Zero(), o.stored), kCorruption);
  }
}

TEST(ObjectCodecTest, DecodeIsThreadSafe) {
  std::vector<PreparedObject> objs;
  std::vector<std::string> plains;
  for (int i = 0; i < 16; i++) {
    plains.push_back(i % 2 ? Compressible(20000 + i, static_cast<char>('a' + i)) : RandomBytes(20000, i));
    objs.push_back(PrepareObject(plains.back(), ObjectKind::kData, 3));
  }
  std::atomic<int> failures{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; t++) {
    ts.emplace_back([&, t] {
      for (int round = 0; round < 50; round++) {
        size_t i = (t * 7 + round) % objs.size();
        // Also prepare concurrently (thread_local zstd contexts).
        PreparedObject again = PrepareObject(plains[i], ObjectKind::kData, 3);
        if (again.digest != objs[i].digest) failures++;
        auto r = DecodeStoredObject(objs[i].digest, objs[i].stored);
        if (!r.ok() || *r != plains[i]) failures++;
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(failures.load(), 0);
}

}  // namespace
}  // namespace hashfs
