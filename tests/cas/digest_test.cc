// Tests for cas/digest.h: SHA-256 known-answer vectors, incremental hashing,
// hex encoding and the digest helpers.
#include "cas/digest.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <set>
#include <string>
#include <unordered_set>
#include <vector>

#include "tests/cas/cas_test_util.h"

namespace hashfs {
namespace {

using ::hashfs::testing::RandomBytes;

constexpr char kEmptyHex[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
constexpr char kAbcHex[] = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
// FIPS 180-2 two-block message.
constexpr char kTwoBlockMsg[] = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
constexpr char kTwoBlockHex[] = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
// One million 'a'.
constexpr char kMillionAHex[] = "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0";
// 1 MiB with byte i = (i*31 + 7) & 0xff (computed independently with Python hashlib).
constexpr char kPattern1MiBHex[] = "06b7bbfb7824aa03382051691630eb26de85102d1b08a81e907ec0744cd8a286";

std::string Pattern1MiB() {
  std::string s(1 << 20, '\0');
  for (size_t i = 0; i < s.size(); i++) s[i] = static_cast<char>((i * 31 + 7) & 0xff);
  return s;
}

TEST(Sha256Test, EmptyStringKnownVector) {
  EXPECT_EQ(Sha256Of("").Hex(), kEmptyHex);
  EXPECT_EQ(Sha256Of(std::string_view()).Hex(), kEmptyHex);
  Sha256 h;
  EXPECT_EQ(h.Finish().Hex(), kEmptyHex);
  Sha256 h2;
  h2.Update("");
  h2.Update(std::string_view());
  EXPECT_EQ(h2.Finish().Hex(), kEmptyHex);
}

TEST(Sha256Test, AbcKnownVector) {
  EXPECT_EQ(Sha256Of("abc").Hex(), kAbcHex);
  Sha256 h;
  h.Update("a");
  h.Update("b");
  h.Update("c");
  EXPECT_EQ(h.Finish().Hex(), kAbcHex);
}

TEST(Sha256Test, TwoBlockKnownVector) {
  EXPECT_EQ(Sha256Of(kTwoBlockMsg).Hex(), kTwoBlockHex);
}

TEST(Sha256Test, MillionAKnownVector) {
  std::string a(1000000, 'a');
  EXPECT_EQ(Sha256Of(a).Hex(), kMillionAHex);
  Sha256 h;
  for (size_t off = 0; off < a.size(); off += 1000) h.Update(std::string_view(a).substr(off, 1000));
  EXPECT_EQ(h.Finish().Hex(), kMillionAHex);
}

TEST(Sha256Test, OneMiBOneShotMatchesKnownVector) {
  std::string buf = Pattern1MiB();
  EXPECT_EQ(Sha256Of(buf).Hex(), kPattern1MiBHex);
}

TEST(Sha256Test, OneMiBIncrementalEqualsOneShotForManyChunkings) {
  std::string buf = Pattern1MiB();
  const Digest one_shot = Sha256Of(buf);
  ASSERT_EQ(one_shot.Hex(), kPattern1MiBHex);
  std::string_view v(buf);
  // Chunk sizes straddling the 64-byte block size, plus large and odd sizes.
  for (size_t chunk : {1ul, 3ul, 55ul, 63ul, 64ul, 65ul, 127ul, 4096ul, 65537ul, 1ul << 20}) {
    Sha256 h;
    for (size_t off = 0; off < v.size(); off += chunk) h.Update(v.substr(off, chunk));
    EXPECT_EQ(h.Finish(), one_shot) << "chunk size " << chunk;
  }
  // Irregular chunk sizes driven by a PRNG.
  std::mt19937 rng(42);
  Sha256 h;
  size_t off = 0;
  while (off < v.size()) {
    size_t n = std::min<size_t>(rng() % 9000, v.size() - off);
    h.Update(v.substr(off, n));
    off += n;
  }
  EXPECT_EQ(h.Finish(), one_shot);
}

TEST(Sha256Test, FinishResetsContextForReuse) {
  Sha256 h;
  h.Update("some unrelated prefix data");
  (void)h.Finish();
  h.Update("abc");
  EXPECT_EQ(h.Finish().Hex(), kAbcHex);
  EXPECT_EQ(h.Finish().Hex(), kEmptyHex);
  h.Update(kTwoBlockMsg);
  EXPECT_EQ(h.Finish().Hex(), kTwoBlockHex);
}

TEST(Sha256Test, DifferentInputsDifferentDigests) {
  std::set<Digest> seen;
  for (int i = 0; i < 256; i++) seen.insert(Sha256Of(std::string(1, static_cast<char>(i))));
  seen.insert(Sha256Of(""));
  seen.insert(Sha256Of(std::string(2, '\0')));
  EXPECT_EQ(seen.size(), 258u);
}

TEST(DigestTest, HexRoundTrip) {
  for (uint64_t seed = 0; seed < 64; seed++) {
    Digest d = Sha256Of(RandomBytes(100, seed));
    std::string hex = d.Hex();
    ASSERT_EQ(hex.size(), 64u);
    for (char c : hex) EXPECT_TRUE((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')) << hex;
    auto back = Digest::FromHex(hex);
    ASSERT_TRUE(back.ok()) << back.status().ToString();
    EXPECT_EQ(*back, d);
  }
}

TEST(DigestTest, HexOfKnownBytes) {
  Digest d;
  for (size_t i = 0; i < Digest::kSize; i++) d.bytes[i] = static_cast<uint8_t>(i * 8 + 1);
  EXPECT_EQ(d.Hex(), "0109111921293139414951596169717981899199a1a9b1b9c1c9d1d9e1e9f1f9");
  EXPECT_EQ(Digest::Zero().Hex(), std::string(64, '0'));
  Digest ff;
  ff.bytes.fill(0xff);
  EXPECT_EQ(ff.Hex(), std::string(64, 'f'));
}

TEST(DigestTest, FromHexAcceptsUpperCase) {
  std::string upper = kAbcHex;
  std::transform(upper.begin(), upper.end(), upper.begin(), [](char c) { return std::toupper(c); });
  auto d = Digest::FromHex(upper);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  EXPECT_EQ(*d, Sha256Of("abc"));
  EXPECT_EQ(d->Hex(), kAbcHex);  // Hex() is always lower case
}

TEST(DigestTest, FromHexRejectsBadLength) {
  std::string good = kAbcHex;
  for (size_t len : {0ul, 1ul, 2ul, 32ul, 62ul, 63ul}) {
    auto r = Digest::FromHex(good.substr(0, len));
    CAS_EXPECT_CODE(r, kInvalidArgument) << "length " << len;
  }
  CAS_EXPECT_CODE(Digest::FromHex(good + "0"), kInvalidArgument);
  CAS_EXPECT_CODE(Digest::FromHex(good + "00"), kInvalidArgument);
  CAS_EXPECT_CODE(Digest::FromHex(good + good), kInvalidArgument);
}

TEST(DigestTest, FromHexRejectsBadCharactersAtEveryPosition) {
  const std::string good = kAbcHex;
  const std::string bad_chars = std::string("gGzZ -+x:/@`[{\xff\x80") + std::string(1, '\0');
  for (size_t pos = 0; pos < good.size(); pos++) {
    for (char c : bad_chars) {
      std::string s = good;
      s[pos] = c;
      auto r = Digest::FromHex(s);
      CAS_EXPECT_CODE(r, kInvalidArgument) << "position " << pos << " char " << int(c);
    }
  }
  // "0x" prefix with the right total length is still not hex.
  CAS_EXPECT_CODE(Digest::FromHex("0x" + good.substr(2)), kInvalidArgument);
}

TEST(DigestTest, FromBytes) {
  Digest d = Sha256Of("abc");
  auto back = Digest::FromBytes(d.AsBytes());
  ASSERT_TRUE(back.ok());
  EXPECT_EQ(*back, d);
  EXPECT_EQ(d.AsBytes().size(), 32u);
  EXPECT_EQ(std::memcmp(d.AsBytes().data(), d.bytes.data(), 32), 0);
  EXPECT_FALSE(Digest::FromBytes(std::string(31, 'x')).ok());
  EXPECT_FALSE(Digest::FromBytes(std::string(33, 'x')).ok());
  EXPECT_FALSE(Digest::FromBytes("").ok());
  EXPECT_FALSE(Digest::FromBytes(d.Hex()).ok());  // 64 chars, not 32 bytes
}

TEST(DigestTest, Prefix64IsBigEndianOfFirstEightBytes) {
  Digest d;
  for (size_t i = 0; i < Digest::kSize; i++) d.bytes[i] = static_cast<uint8_t>(0x01 + i);
  EXPECT_EQ(d.Prefix64(), 0x0102030405060708ull);

  Digest hi;
  hi.bytes[0] = 0x80;
  EXPECT_EQ(hi.Prefix64(), 0x8000000000000000ull);
  Digest lo;
  lo.bytes[7] = 0x01;
  lo.bytes[8] = 0xff;  // beyond the prefix: must not leak in
  EXPECT_EQ(lo.Prefix64(), 1ull);
  EXPECT_EQ(Digest::Zero().Prefix64(), 0ull);

  EXPECT_EQ(Sha256Of("abc").Prefix64(), 0xba7816bf8f01cfeaull);
  EXPECT_EQ(Sha256Of("").Prefix64(), 0xe3b0c44298fc1c14ull);
}

TEST(DigestTest, Prefix64OrderAgreesWithDigestOrder) {
  std::vector<Digest> ds;
  for (uint64_t i = 0; i < 500; i++) ds.push_back(Sha256Of(RandomBytes(16, i)));
  std::sort(ds.begin(), ds.end());
  for (size_t i = 1; i < ds.size(); i++) EXPECT_LE(ds[i - 1].Prefix64(), ds[i].Prefix64());
}

TEST(DigestTest, ZeroAndComparison) {
  EXPECT_TRUE(Digest::Zero().IsZero());
  EXPECT_TRUE(Digest{}.IsZero());
  Digest d;
  d.bytes[31] = 1;
  EXPECT_FALSE(d.IsZero());
  d = Digest{};
  d.bytes[0] = 1;
  EXPECT_FALSE(d.IsZero());
  EXPECT_FALSE(Sha256Of("").IsZero());

  // Ordering is lexicographic over bytes (memcmp order), like LMDB keys.
  Digest a, b;
  a.bytes[0] = 0x01;
  b.bytes[0] = 0x01;
  b.bytes[31] = 0x01;
  EXPECT_LT(a, b);
  Digest c;
  c.bytes[0] = 0x02;
  EXPECT_LT(b, c);
  EXPECT_EQ(a, a);
  EXPECT_NE(a, b);
}

TEST(DigestTest, DigestHashUsableInUnorderedSet) {
  std::unordered_set<Digest, DigestHash> set;
  for (uint64_t i = 0; i < 1000; i++) set.insert(Sha256Of(RandomBytes(8, i)));
  EXPECT_EQ(set.size(), 1000u);
  for (uint64_t i = 0; i < 1000; i++) EXPECT_TRUE(set.count(Sha256Of(RandomBytes(8, i))));
  EXPECT_FALSE(set.count(Sha256Of("not inserted")));
}

}  // namespace
}  // namespace hashfs
