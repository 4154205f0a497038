// Tests of the canonical tree-object codec (tree/codec.h): round trips,
// pinned golden encodings, canonicity, and refusal of malformed input.
#include "tree/codec.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <functional>
#include <new>
#include <random>
#include <set>

#include "test_util.h"

// ---------------------------------------------------------------------------
// Allocation tracking: the global operator new of this test binary records the
// largest single allocation made by the current thread while tracking is on,
// so tests can prove that hostile length fields do not cause huge allocations
// (without actually exhausting memory). libstdc++'s array/nothrow/sized forms
// forward to these two.
namespace {
thread_local bool t_track_allocs = false;
thread_local size_t t_max_alloc = 0;
}  // namespace

[[gnu::noinline]] void* operator new(std::size_t n) {
  if (t_track_allocs && n > t_max_alloc) t_max_alloc = n;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace hashfs {
namespace {

using testing::FromHex;
using testing::ToHex;

class AllocTracker {
 public:
  AllocTracker() {
    t_max_alloc = 0;
    t_track_allocs = true;
  }
  ~AllocTracker() { t_track_allocs = false; }
  size_t max() const { return t_max_alloc; }
};

constexpr int64_t kT0 = 1700000000123456789;  // fixed timestamp

Inode MakeInode(FileType t) {
  Inode n;
  n.type = t;
  n.mode = 0644;
  n.uid = 1000;
  n.gid = 100;
  n.mtime_ns = kT0;
  n.ctime_ns = kT0 + 1;
  n.source_ino = 4242;
  switch (t) {
    case FileType::kRegular:
      n.layout = ContentLayout::kInline;
      n.chunks = {{Sha256Of("c1"), 100}, {Sha256Of("c2"), 200}, {Sha256Of("c3"), 300}};
      n.size = 600;
      break;
    case FileType::kDirectory:
      n.mode = 0755;
      n.content = Sha256Of("dir-root");
      break;
    case FileType::kSymlink:
      n.mode = 0777;
      n.symlink_target = "../target/path";
      n.size = n.symlink_target.size();
      break;
    case FileType::kCharDevice: n.rdev = 0x0501; break;
    case FileType::kBlockDevice: n.rdev = 0x0801; break;
    case FileType::kFifo:
    case FileType::kSocket: break;
  }
  return n;
}

Entry MakeEntry(std::string name, Inode inode) {
  Entry e;
  e.name = std::move(name);
  e.inode = std::move(inode);
  return e;
}

void SortEntries(std::vector<Entry>* v) {
  std::sort(v->begin(), v->end(), [](const Entry& a, const Entry& b) { return a.name < b.name; });
}

// A leaf with an entry of every file type and every inode feature.
DirNode RichLeaf() {
  DirNode n;
  n.leaf = true;
  auto& es = n.entries;
  es.push_back(MakeEntry("blk", MakeInode(FileType::kBlockDevice)));
  es.push_back(MakeEntry("chr", MakeInode(FileType::kCharDevice)));
  es.push_back(MakeEntry("dir", MakeInode(FileType::kDirectory)));
  es.push_back(MakeEntry("fifo", MakeInode(FileType::kFifo)));
  es.push_back(MakeEntry("sock", MakeInode(FileType::kSocket)));
  es.push_back(MakeEntry("symlink", MakeInode(FileType::kSymlink)));
  Inode in = MakeInode(FileType::kRegular);
  in.mode = 07755;  // setuid, setgid, sticky
  in.xattrs = {{"security.selinux", "system_u:object_r:etc_t:s0"},
               {"user.bin", std::string("\0\x01\xff", 3)},
               {"user.empty", ""}};
  es.push_back(MakeEntry("inline", in));
  Inode man = MakeInode(FileType::kRegular);
  man.chunks.clear();
  man.layout = ContentLayout::kManifest;
  man.content = Sha256Of("manifest-root");
  man.size = 1ull << 40;
  es.push_back(MakeEntry("manifest", man));
  Inode empty = MakeInode(FileType::kRegular);
  empty.chunks.clear();
  empty.size = 0;
  es.push_back(MakeEntry("zero", empty));
  Inode neg = MakeInode(FileType::kFifo);
  neg.mtime_ns = -1;  // before the epoch
  neg.ctime_ns = INT64_MIN;
  neg.uid = UINT32_MAX;
  es.push_back(MakeEntry("negative-time", neg));
  Entry hard;
  hard.name = "hard";
  hard.link_id = 7;
  hard.inode = Inode{};
  hard.inode.type = FileType::kRegular;
  es.push_back(hard);
  Entry hard_sym;
  hard_sym.name = "hard-sym";
  hard_sym.link_id = UINT64_MAX;
  hard_sym.inode = Inode{};
  hard_sym.inode.type = FileType::kSymlink;
  es.push_back(hard_sym);
  es.push_back(MakeEntry("\xc3\xa9t\xc3\xa9", MakeInode(FileType::kFifo)));  // UTF-8
  es.push_back(MakeEntry(std::string(255, 'n'), MakeInode(FileType::kSocket)));
  es.push_back(MakeEntry(std::string("\x01\x7f\xfe"), MakeInode(FileType::kSocket)));
  SortEntries(&es);
  return n;
}

DirNode InternalDirNode() {
  DirNode n;
  n.leaf = false;
  n.bitmap = 0x8421;
  n.children = {{Sha256Of("k0"), 513}, {Sha256Of("k5"), 1}, {Sha256Of("k10"), 1ull << 33}, {Sha256Of("k15"), 7}};
  return n;
}

DirNode SmallLeaf() {
  DirNode n;
  Inode f = MakeInode(FileType::kFifo);
  n.entries.push_back(MakeEntry("a", f));
  return n;
}

LinkNode LinkLeaf() {
  LinkNode n;
  LinkRecord r1;
  r1.id = 1;
  r1.nlink = 2;
  r1.inode = MakeInode(FileType::kRegular);
  LinkRecord r2;
  r2.id = 7;
  r2.nlink = 3;
  r2.inode = MakeInode(FileType::kSymlink);
  r2.inode.xattrs = {{"user.x", "y"}};
  LinkRecord r3;
  r3.id = UINT64_MAX;
  r3.nlink = UINT32_MAX;
  r3.inode = MakeInode(FileType::kBlockDevice);
  n.records = {r1, r2, r3};
  return n;
}

LinkNode LinkInternal() {
  LinkNode n;
  n.leaf = false;
  n.bitmap = 0x0003;
  n.children = {{Sha256Of("l0"), 600}, {Sha256Of("l1"), 2}};
  return n;
}

FileNode FileLeaf() {
  FileNode n;
  n.level = 0;
  for (int i = 0; i < 5; i++) n.refs.push_back({Sha256Of("chunk" + std::to_string(i)), 1000u + i});
  return n;
}

FileNode FileUpper() {
  FileNode n;
  n.level = 2;
  n.refs = {{Sha256Of("m0"), 1ull << 33}, {Sha256Of("m1"), 12345}};
  return n;
}

Commit MakeCommit() {
  Commit c;
  c.root = MakeInode(FileType::kDirectory);
  c.root.xattrs = {{"user.root", "1"}};
  c.links = Sha256Of("links");
  c.parent = Sha256Of("parent");
  c.time_ns = kT0;
  c.description = "backup of /home (test)";
  return c;
}

// Equality helpers (DirNode & co. have no operator==).
void ExpectEq(const DirNode& a, const DirNode& b) {
  EXPECT_EQ(a.leaf, b.leaf);
  EXPECT_EQ(a.entries, b.entries);
  EXPECT_EQ(a.bitmap, b.bitmap);
  EXPECT_EQ(a.children, b.children);
}
void ExpectEq(const LinkNode& a, const LinkNode& b) {
  EXPECT_EQ(a.leaf, b.leaf);
  EXPECT_EQ(a.records, b.records);
  EXPECT_EQ(a.bitmap, b.bitmap);
  EXPECT_EQ(a.children, b.children);
}
void ExpectEq(const FileNode& a, const FileNode& b) {
  EXPECT_EQ(a.level, b.level);
  EXPECT_EQ(a.refs, b.refs);
}

// Decodes bytes as the given object type and re-encodes the result.
// Returns the decode status; *reencoded is set on success.
enum class Kind { kDir, kLink, kFile, kCommit };
Status DecodeAs(Kind k, std::string_view bytes, std::string* reencoded) {
  switch (k) {
    case Kind::kDir: {
      auto r = DecodeDirNode(bytes);
      if (!r.ok()) return r.status();
      *reencoded = EncodeDirNode(*r);
      return Status::Ok();
    }
    case Kind::kLink: {
      auto r = DecodeLinkNode(bytes);
      if (!r.ok()) return r.status();
      *reencoded = EncodeLinkNode(*r);
      return Status::Ok();
    }
    case Kind::kFile: {
      auto r = DecodeFileNode(bytes);
      if (!r.ok()) return r.status();
      *reencoded = EncodeFileNode(*r);
      return Status::Ok();
    }
    case Kind::kCommit: {
      auto r = DecodeCommit(bytes);
      if (!r.ok()) return r.status();
      *reencoded = EncodeCommit(*r);
      return Status::Ok();
    }
  }
  return Status::InvalidArgument("kind");
}

struct Sample {
  const char* what;
  Kind kind;
  std::string bytes;
};

std::vector<Sample> ValidSamples() {
  return {
      {"rich dir leaf", Kind::kDir, EncodeDirNode(RichLeaf())},
      {"small dir leaf", Kind::kDir, EncodeDirNode(SmallLeaf())},
      {"empty dir leaf", Kind::kDir, EncodeDirNode(DirNode{})},
      {"internal dir node", Kind::kDir, EncodeDirNode(InternalDirNode())},
      {"link leaf", Kind::kLink, EncodeLinkNode(LinkLeaf())},
      {"link internal", Kind::kLink, EncodeLinkNode(LinkInternal())},
      {"file node level 0", Kind::kFile, EncodeFileNode(FileLeaf())},
      {"file node level 2", Kind::kFile, EncodeFileNode(FileUpper())},
      {"commit", Kind::kCommit, EncodeCommit(MakeCommit())},
  };
}

// --------------------------------------------------------------- round trips

TEST(CodecTest, DirNodeLeafRoundTrip) {
  DirNode n = RichLeaf();
  std::string bytes = EncodeDirNode(n);
  auto d = DecodeDirNode(bytes);
  ASSERT_TRUE(d.ok()) << d.status().ToString();
  ExpectEq(*d, n);
  // Every file type appears.
  std::set<FileType> types;
  for (const auto& e : d->entries) types.insert(e.inode.type);
  EXPECT_EQ(types.size(), 7u);
  // The hardlink entries keep their link id and type only.
  bool saw_hard = false;
  for (const auto& e : d->entries) {
    if (e.name == "hard") {
      saw_hard = true;
      EXPECT_EQ(e.link_id, 7u);
      EXPECT_EQ(e.inode.type, FileType::kRegular);
    }
  }
  EXPECT_TRUE(saw_hard);
}

TEST(CodecTest, EveryObjectKindRoundTrips) {
  {
    DirNode n = InternalDirNode();
    auto d = DecodeDirNode(EncodeDirNode(n));
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    ExpectEq(*d, n);
  }
  {
    DirNode n;  // empty leaf (the empty directory)
    auto d = DecodeDirNode(EncodeDirNode(n));
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    ExpectEq(*d, n);
  }
  for (const LinkNode& n : {LinkLeaf(), LinkInternal()}) {
    auto d = DecodeLinkNode(EncodeLinkNode(n));
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    ExpectEq(*d, n);
  }
  for (const FileNode& n : {FileLeaf(), FileUpper()}) {
    auto d = DecodeFileNode(EncodeFileNode(n));
    ASSERT_TRUE(d.ok()) << d.status().ToString();
    ExpectEq(*d, n);
  }
  Commit c = MakeCommit();
  auto dc = DecodeCommit(EncodeCommit(c));
  ASSERT_TRUE(dc.ok()) << dc.status().ToString();
  EXPECT_EQ(*dc, c);
  // A first commit: zero parent and zero link table.
  c.parent = Digest::Zero();
  c.links = Digest::Zero();
  c.description.clear();
  dc = DecodeCommit(EncodeCommit(c));
  ASSERT_TRUE(dc.ok()) << dc.status().ToString();
  EXPECT_EQ(*dc, c);
}

TEST(CodecTest, ObjectHeaderPrefix) {
  // design: every object starts 0x01 'f' <type> <version>.
  const std::pair<std::string, char> cases[] = {
      {EncodeDirNode(SmallLeaf()), 'D'},
      {EncodeLinkNode(LinkLeaf()), 'L'},
      {EncodeFileNode(FileLeaf()), 'F'},
      {EncodeCommit(MakeCommit()), 'C'},
  };
  for (const auto& [bytes, t] : cases) {
    ASSERT_GE(bytes.size(), 4u);
    EXPECT_EQ(bytes[0], '\x01');
    EXPECT_EQ(bytes[1], 'f');
    EXPECT_EQ(bytes[2], t);
    EXPECT_EQ(bytes[3], kCodecVersion);
  }
}

// ------------------------------------------------------------ golden vectors
//
// THESE VALUES PIN THE ON-STORE FORMAT. Objects are named by the SHA-256 of
// their encoding, so any change to them changes every object name: changing
// them means a store format change, which requires bumping kCodecVersion (and
// the repository format) and a migration story — never just update the
// constants to make this test pass.

TEST(CodecGoldenTest, SmallEntryExactBytes) {
  const std::string bytes = EncodeDirNode(SmallLeaf());
  EXPECT_EQ(ToHex(bytes),
            "01"                  // archive endianness marker: little endian
            "664401"              // 'f' 'D' version 1
            "00"                  // leaf
            "0100000000000000"    // 1 entry
            "0100000000000000"    // name length 1
            "61"                  // "a"
            "0000000000000000"    // link_id 0: inode inline
            "04"                  // FileType::kFifo
            "a4010000"            // mode 0644
            "e8030000"            // uid 1000
            "64000000"            // gid 100
            "15cd853dfe9c9717"    // mtime_ns 1700000000123456789
            "16cd853dfe9c9717"    // ctime_ns 1700000000123456790
            "0000000000000000"    // size
            "0000000000000000"    // rdev
            "9210000000000000"    // source_ino 4242
            "0000000000000000"    // symlink target length 0
            "0000000000000000");  // 0 xattrs
  // The empty directory, the most common tree object.
  EXPECT_EQ(ToHex(EncodeDirNode(DirNode{})), "01664401000000000000000000");
}

TEST(CodecGoldenTest, EncodingDigests) {
  EXPECT_EQ(Sha256Of(EncodeDirNode(RichLeaf())).Hex(), "cb9b0827ddac10bc28f82646b6be0ae04c98c4392a3f047daf968f31cb3e3bc5");
  EXPECT_EQ(Sha256Of(EncodeDirNode(InternalDirNode())).Hex(), "91659c5e79a7704194e4b8ab5b1d2ab05b3e49b671c2b8439177cc741a824878");
  EXPECT_EQ(Sha256Of(EncodeDirNode(DirNode{})).Hex(), "5da2759fdf281967d0482485a07a99387e3aac5e4556e2489eb3f8b42e2c1d26");
  EXPECT_EQ(Sha256Of(EncodeLinkNode(LinkLeaf())).Hex(), "e48289fbe7ee5c640dc13aff4e1b50ee1c440cc8ce987a0126042944b5ff7649");
  EXPECT_EQ(Sha256Of(EncodeLinkNode(LinkInternal())).Hex(), "2fdce7b292639c2342c02140def8bb86adb487df3dad54cb8deb26b3ca738922");
  EXPECT_EQ(Sha256Of(EncodeFileNode(FileLeaf())).Hex(), "b8f1131e84dd047133d20239248022925d0cfaa4ca6edd0ba04b994a038400b9");
  EXPECT_EQ(Sha256Of(EncodeFileNode(FileUpper())).Hex(), "757a239f46486b72f9dfff01458bc00e00adaf9cbf57e5437ba5138042d4daff");
  EXPECT_EQ(Sha256Of(EncodeCommit(MakeCommit())).Hex(), "830ce249931f07e74acf4cfe58301e350e50311c7b038280cb6c421ebe3c50b4");
}

// ---------------------------------------------------------------- canonicity

TEST(CodecTest, EncodingIsDeterministic) {
  for (int i = 0; i < 3; i++) {
    EXPECT_EQ(EncodeDirNode(RichLeaf()), EncodeDirNode(RichLeaf()));
    EXPECT_EQ(EncodeLinkNode(LinkLeaf()), EncodeLinkNode(LinkLeaf()));
    EXPECT_EQ(EncodeFileNode(FileLeaf()), EncodeFileNode(FileLeaf()));
    EXPECT_EQ(EncodeCommit(MakeCommit()), EncodeCommit(MakeCommit()));
  }
  // Fields the encoding does not carry for a type do not affect it: a
  // hardlink entry's inode beyond its type, a directory's chunks/layout.
  DirNode a = SmallLeaf();
  a.entries[0].link_id = 3;
  a.entries[0].inode = Inode{};
  a.entries[0].inode.type = FileType::kFifo;
  DirNode b = a;
  b.entries[0].inode.mode = 0600;
  b.entries[0].inode.size = 99;
  EXPECT_EQ(EncodeDirNode(a), EncodeDirNode(b));
}

TEST(CodecTest, DecodeThenEncodeIsIdentity) {
  for (const auto& s : ValidSamples()) {
    std::string re;
    Status st = DecodeAs(s.kind, s.bytes, &re);
    ASSERT_TRUE(st.ok()) << s.what << ": " << st.ToString();
    EXPECT_EQ(ToHex(re), ToHex(s.bytes)) << s.what;
  }
}

// ------------------------------------------------------------ malformed input

void ExpectCorruption(Kind k, std::string_view bytes, const std::string& what) {
  std::string re;
  Status st = DecodeAs(k, bytes, &re);
  EXPECT_EQ(st.code(), Status::Code::kCorruption) << what << ": got " << st.ToString();
}

TEST(CodecMalformedTest, EveryTruncationIsCorruption) {
  for (const auto& s : ValidSamples()) {
    for (size_t len = 0; len < s.bytes.size(); len++)
      ExpectCorruption(s.kind, std::string_view(s.bytes).substr(0, len),
                       std::string(s.what) + " truncated to " + std::to_string(len));
  }
}

TEST(CodecMalformedTest, TrailingBytesAreCorruption) {
  for (const auto& s : ValidSamples()) {
    ExpectCorruption(s.kind, s.bytes + std::string(1, '\0'), std::string(s.what) + " + NUL");
    ExpectCorruption(s.kind, s.bytes + s.bytes, std::string(s.what) + " twice");
  }
}

TEST(CodecMalformedTest, WrongObjectTypeIsCorruption) {
  for (const auto& s : ValidSamples()) {
    for (Kind k : {Kind::kDir, Kind::kLink, Kind::kFile, Kind::kCommit}) {
      if (k == s.kind) continue;
      ExpectCorruption(k, s.bytes, std::string(s.what) + " decoded as kind " + std::to_string(int(k)));
    }
  }
}

TEST(CodecMalformedTest, BadHeaderIsCorruption) {
  const std::string good = EncodeDirNode(SmallLeaf());
  std::string b = good;
  b[1] = 'g';
  ExpectCorruption(Kind::kDir, b, "magic");
  b = good;
  b[3] = kCodecVersion + 1;
  ExpectCorruption(Kind::kDir, b, "future version");
  b = good;
  b[3] = 0;
  ExpectCorruption(Kind::kDir, b, "version 0");
  b = good;
  b[4] = 2;  // node kind
  ExpectCorruption(Kind::kDir, b, "node kind 2");
}

// The first byte is the archive's endianness marker and must be 0x01: any
// other value makes cereal byte-swap every integer, so a second byte string
// could decode to a value whose encoding differs (non-canonical). (Today the
// swapped 3-byte header is what refuses it.)
TEST(CodecMalformedTest, EndiannessMarkerMustBeOne) {
  for (const auto& s : ValidSamples()) {
    for (int v : {0x00, 0x02, 0x80, 0xff}) {
      std::string b = s.bytes;
      b[0] = static_cast<char>(v);
      ExpectCorruption(s.kind, b, std::string(s.what) + " with first byte " + std::to_string(v));
    }
  }
}

// Offsets in the small leaf (see SmallEntryExactBytes): 0 endianness,
// 1..3 header, 4 kind, 5..12 entry count, 13..20 name size, 21 'a',
// 22..29 link id, 30 type, 31..34 mode, ...
constexpr size_t kCountOff = 5, kNameSizeOff = 13;

std::string PatchLE64(std::string b, size_t off, uint64_t v) {
  for (int i = 0; i < 8; i++) b[off + i] = static_cast<char>(v >> (8 * i));
  return b;
}
uint64_t ReadLE64(std::string_view b, size_t off) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; i--) v = v << 8 | static_cast<uint8_t>(b[off + i]);
  return v;
}

// Finds the offset of the 8-byte LE size tag immediately preceding `needle`.
size_t SizeTagBefore(const std::string& bytes, const std::string& needle) {
  size_t p = bytes.find(needle);
  if (p == std::string::npos || p < 8) return std::string::npos;
  if (ReadLE64(bytes, p - 8) != needle.size()) return std::string::npos;
  return p - 8;
}

// The tracker itself must see allocations, or the test below proves nothing.
TEST(CodecMalformedTest, AllocTrackerSeesLargeAllocations) {
  size_t seen;
  {
    AllocTracker tracker;
    std::string big(8u << 20, 'x');
    std::vector<Entry> v;
    v.reserve(100000);
    seen = tracker.max();
    EXPECT_EQ(big.size(), 8u << 20);
  }
  EXPECT_GE(seen, size_t{8} << 20);
}

TEST(CodecMalformedTest, HugeLengthFieldsAreRefusedWithoutAllocating) {
  struct Case {
    std::string what;
    Kind kind;
    std::string bytes;
  };
  std::vector<Case> cases;
  const std::string small = EncodeDirNode(SmallLeaf());
  ASSERT_EQ(ReadLE64(small, kCountOff), 1u);
  ASSERT_EQ(ReadLE64(small, kNameSizeOff), 1u);
  ASSERT_EQ(small[kNameSizeOff + 8], 'a');
  for (uint64_t v : {uint64_t{1} << 40, uint64_t{1} << 20, (uint64_t{1} << 20) + 1, uint64_t{1} << 63,
                     ~uint64_t{0}, uint64_t{2}}) {
    cases.push_back({"entry count " + std::to_string(v), Kind::kDir, PatchLE64(small, kCountOff, v)});
    cases.push_back({"name size " + std::to_string(v), Kind::kDir, PatchLE64(small, kNameSizeOff, v)});
  }

  // Symlink target, xattr name/value, description, inline chunk count and
  // manifest ref count.
  DirNode withx = SmallLeaf();
  withx.entries[0].inode = MakeInode(FileType::kSymlink);
  withx.entries[0].inode.symlink_target = "TARGETXX";
  withx.entries[0].inode.size = 8;
  withx.entries[0].inode.xattrs = {{"user.NAMEXX", "VALUEXX"}};
  const std::string wx = EncodeDirNode(withx);
  size_t target_off = SizeTagBefore(wx, "TARGETXX");
  size_t xname_off = SizeTagBefore(wx, "user.NAMEXX");
  size_t xval_off = SizeTagBefore(wx, "VALUEXX");
  ASSERT_NE(target_off, std::string::npos);
  ASSERT_NE(xname_off, std::string::npos);
  ASSERT_NE(xval_off, std::string::npos);
  size_t xcount_off = xname_off - 8;
  ASSERT_EQ(ReadLE64(wx, xcount_off), 1u);

  Commit c = MakeCommit();
  c.description = "DESCRIPTIONXX";
  const std::string cb = EncodeCommit(c);
  size_t desc_off = SizeTagBefore(cb, "DESCRIPTIONXX");
  ASSERT_NE(desc_off, std::string::npos);

  const std::string fb = EncodeFileNode(FileLeaf());
  const size_t ref_count_off = 5;  // 0 marker, 1..3 header, 4 level
  ASSERT_EQ(ReadLE64(fb, ref_count_off), 5u);

  DirNode inl = SmallLeaf();
  inl.entries[0].inode = MakeInode(FileType::kRegular);
  const std::string ib = EncodeDirNode(inl);
  // The chunk count precedes the first chunk digest.
  const Digest c1 = Sha256Of("c1");
  size_t p = ib.find(std::string(c1.AsBytes()));
  ASSERT_NE(p, std::string::npos);
  size_t chunk_count_off = p - 8;
  ASSERT_EQ(ReadLE64(ib, chunk_count_off), 3u);

  for (uint64_t v : {uint64_t{1} << 40, uint64_t{1} << 32, uint64_t{60000}, uint64_t{65537}, uint64_t{1} << 62}) {
    std::string s = std::to_string(v);
    cases.push_back({"symlink target " + s, Kind::kDir, PatchLE64(wx, target_off, v)});
    cases.push_back({"xattr count " + s, Kind::kDir, PatchLE64(wx, xcount_off, v)});
    cases.push_back({"xattr name " + s, Kind::kDir, PatchLE64(wx, xname_off, v)});
    cases.push_back({"xattr value " + s, Kind::kDir, PatchLE64(wx, xval_off, v)});
    cases.push_back({"description " + s, Kind::kCommit, PatchLE64(cb, desc_off, v)});
    cases.push_back({"manifest refs " + s, Kind::kFile, PatchLE64(fb, ref_count_off, v)});
    cases.push_back({"inline chunks " + s, Kind::kDir, PatchLE64(ib, chunk_count_off, v)});
  }

  for (const auto& cs : cases) {
    std::string re;
    Status st;
    size_t max_alloc;
    {
      AllocTracker tracker;
      st = DecodeAs(cs.kind, cs.bytes, &re);
      max_alloc = tracker.max();
    }
    EXPECT_EQ(st.code(), Status::Code::kCorruption) << cs.what << ": " << st.ToString();
    // The input is a few hundred bytes; no single allocation may be anywhere
    // near the claimed length.
    EXPECT_LT(max_alloc, size_t{1} << 20) << cs.what;
  }
}

TEST(CodecMalformedTest, LargeValidCountWithinLimitsButBeyondInputIsRefusedCheaply) {
  // A leaf claiming the maximum item count but holding a single entry must be
  // refused before reserving room for a million entries.
  std::string b = PatchLE64(EncodeDirNode(SmallLeaf()), kCountOff, 1u << 20);
  AllocTracker tracker;
  auto r = DecodeDirNode(b);
  size_t max_alloc = tracker.max();
  EXPECT_EQ(r.status().code(), Status::Code::kCorruption);
  EXPECT_LT(max_alloc, size_t{1} << 20);
}

DirNode LeafOf(std::vector<Entry> es) {
  DirNode n;
  n.entries = std::move(es);
  return n;
}

TEST(CodecMalformedTest, BadEntriesAreCorruption) {
  Inode fifo = MakeInode(FileType::kFifo);
  auto expect_bad = [](const DirNode& n, const std::string& what) {
    ExpectCorruption(Kind::kDir, EncodeDirNode(n), what);
  };
  expect_bad(LeafOf({MakeEntry("b", fifo), MakeEntry("a", fifo)}), "unsorted");
  expect_bad(LeafOf({MakeEntry("a", fifo), MakeEntry("a", fifo)}), "duplicate");
  expect_bad(LeafOf({MakeEntry("a", fifo), MakeEntry("c", fifo), MakeEntry("b", fifo)}), "unsorted tail");
  for (const std::string& name :
       {std::string(""), std::string("."), std::string(".."), std::string("a/b"), std::string("/"),
        std::string("a\0b", 3), std::string("\0", 1), std::string(256, 'x'), std::string(1000, 'y')}) {
    expect_bad(LeafOf({MakeEntry(name, fifo)}), "name '" + ToHex(name) + "'");
  }
  // Sanity: the boundary name length is accepted.
  EXPECT_TRUE(DecodeDirNode(EncodeDirNode(LeafOf({MakeEntry(std::string(255, 'x'), fifo)}))).ok());

  for (uint8_t t : {0, 8, 9, 127, 255}) {
    Inode bad = fifo;
    bad.type = static_cast<FileType>(t);
    expect_bad(LeafOf({MakeEntry("a", bad)}), "file type " + std::to_string(t));
  }
  for (uint32_t mode : {010000u, 0170644u, 0xffffffffu, 0x80000000u}) {
    Inode bad = fifo;
    bad.mode = mode;
    expect_bad(LeafOf({MakeEntry("a", bad)}), "mode " + std::to_string(mode));
  }
  {
    Inode ok = fifo;
    ok.mode = 07777;
    EXPECT_TRUE(DecodeDirNode(EncodeDirNode(LeafOf({MakeEntry("a", ok)}))).ok());
  }
  // Inline chunk sizes must add up to the size.
  {
    Inode bad = MakeInode(FileType::kRegular);
    bad.size = 601;
    expect_bad(LeafOf({MakeEntry("a", bad)}), "chunk sum 600 != 601");
    bad.size = 599;
    expect_bad(LeafOf({MakeEntry("a", bad)}), "chunk sum 600 != 599");
    bad.size = 0;
    expect_bad(LeafOf({MakeEntry("a", bad)}), "chunk sum 600 != 0");
    Inode none = MakeInode(FileType::kRegular);
    none.chunks.clear();
    none.size = 10;
    expect_bad(LeafOf({MakeEntry("a", none)}), "no chunks, size 10");
    Inode zero_chunk = MakeInode(FileType::kRegular);
    zero_chunk.chunks.push_back({Sha256Of("z"), 0});
    expect_bad(LeafOf({MakeEntry("a", zero_chunk)}), "zero-size chunk");
    Inode overflow = MakeInode(FileType::kRegular);
    overflow.chunks = {{Sha256Of("x"), UINT64_MAX}, {Sha256Of("y"), 2}};
    overflow.size = 1;  // UINT64_MAX + 2 wraps to 1
    expect_bad(LeafOf({MakeEntry("a", overflow)}), "chunk size overflow");
    Inode many = MakeInode(FileType::kRegular);
    many.chunks.assign(kMaxInlineChunks + 1, {Sha256Of("m"), 1});
    many.size = kMaxInlineChunks + 1;
    expect_bad(LeafOf({MakeEntry("a", many)}), "17 inline chunks");
    many.chunks.resize(kMaxInlineChunks);
    many.size = kMaxInlineChunks;
    EXPECT_TRUE(DecodeDirNode(EncodeDirNode(LeafOf({MakeEntry("a", many)}))).ok());
  }
  {
    Inode bad = MakeInode(FileType::kRegular);
    bad.layout = static_cast<ContentLayout>(2);
    expect_bad(LeafOf({MakeEntry("a", bad)}), "layout 2");
  }
  {
    Inode bad = MakeInode(FileType::kFifo);
    bad.symlink_target = "x";
    expect_bad(LeafOf({MakeEntry("a", bad)}), "target on a fifo");
    Inode longlink = MakeInode(FileType::kSymlink);
    longlink.symlink_target.assign(kMaxSymlinkLength + 1, 't');
    expect_bad(LeafOf({MakeEntry("a", longlink)}), "symlink target too long");
  }
  {
    Inode x = fifo;
    x.xattrs = {{"user.b", "1"}, {"user.a", "2"}};
    expect_bad(LeafOf({MakeEntry("a", x)}), "xattrs unsorted");
    x.xattrs = {{"user.a", "1"}, {"user.a", "2"}};
    expect_bad(LeafOf({MakeEntry("a", x)}), "xattrs duplicate");
    x.xattrs = {{"", "1"}};
    expect_bad(LeafOf({MakeEntry("a", x)}), "xattr empty name");
    x.xattrs = {{std::string(kMaxXattrNameLength + 1, 'n'), "1"}};
    expect_bad(LeafOf({MakeEntry("a", x)}), "xattr name too long");
    x.xattrs = {{"user.v", std::string(kMaxXattrValueLength + 1, 'v')}};
    expect_bad(LeafOf({MakeEntry("a", x)}), "xattr value too long");
    x.xattrs = {{"user.v", std::string(kMaxXattrValueLength, 'v')}};
    EXPECT_TRUE(DecodeDirNode(EncodeDirNode(LeafOf({MakeEntry("a", x)}))).ok());
  }
  // Hardlink entries: no directories, valid type.
  for (uint8_t t : {0, 2, 8}) {
    Entry h;
    h.name = "h";
    h.link_id = 5;
    h.inode.type = static_cast<FileType>(t);
    expect_bad(LeafOf({h}), "hardlink type " + std::to_string(t));
  }
}

TEST(CodecMalformedTest, BadInternalNodesAreCorruption) {
  DirNode n = InternalDirNode();
  n.bitmap = 0;
  n.children.clear();
  ExpectCorruption(Kind::kDir, EncodeDirNode(n), "bitmap 0");
  n = InternalDirNode();
  n.children[1].second = 0;
  ExpectCorruption(Kind::kDir, EncodeDirNode(n), "empty child");
  n = InternalDirNode();
  n.children.pop_back();  // bitmap says 4 children, 3 encoded
  ExpectCorruption(Kind::kDir, EncodeDirNode(n), "fewer children than bitmap bits");
  n = InternalDirNode();
  n.children.push_back({Sha256Of("extra"), 1});  // 5 encoded: trailing bytes
  ExpectCorruption(Kind::kDir, EncodeDirNode(n), "more children than bitmap bits");
}

TEST(CodecMalformedTest, BadLinkNodesAreCorruption) {
  LinkNode n = LinkLeaf();
  n.records[0].id = 0;
  ExpectCorruption(Kind::kLink, EncodeLinkNode(n), "link id 0");
  n = LinkLeaf();
  std::swap(n.records[0], n.records[1]);
  ExpectCorruption(Kind::kLink, EncodeLinkNode(n), "unsorted records");
  n = LinkLeaf();
  n.records[1].id = n.records[0].id;
  ExpectCorruption(Kind::kLink, EncodeLinkNode(n), "duplicate records");
  n = LinkLeaf();
  n.records[0].inode = MakeInode(FileType::kDirectory);
  ExpectCorruption(Kind::kLink, EncodeLinkNode(n), "hardlinked directory");
  n = LinkLeaf();
  n.records[0].inode.mode = 0100000;
  ExpectCorruption(Kind::kLink, EncodeLinkNode(n), "record mode");
}

TEST(CodecMalformedTest, BadFileNodesAreCorruption) {
  FileNode n = FileLeaf();
  n.level = 9;
  ExpectCorruption(Kind::kFile, EncodeFileNode(n), "level 9");
  n = FileLeaf();
  n.refs.clear();
  ExpectCorruption(Kind::kFile, EncodeFileNode(n), "no refs");
  n = FileLeaf();
  n.refs[2].size = 0;
  ExpectCorruption(Kind::kFile, EncodeFileNode(n), "zero-size ref");
}

TEST(CodecMalformedTest, BadCommitsAreCorruption) {
  Commit c = MakeCommit();
  c.root = MakeInode(FileType::kRegular);
  ExpectCorruption(Kind::kCommit, EncodeCommit(c), "root is a file");
  c = MakeCommit();
  c.root.mode = 020000;
  ExpectCorruption(Kind::kCommit, EncodeCommit(c), "root mode");
  c = MakeCommit();
  c.description.assign(kMaxDescriptionLength + 1, 'd');
  ExpectCorruption(Kind::kCommit, EncodeCommit(c), "description too long");
  c.description.assign(kMaxDescriptionLength, 'd');
  EXPECT_TRUE(DecodeCommit(EncodeCommit(c)).ok());
}

// --------------------------------------------------------------------- fuzz

std::string Mutate(std::string b, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return static_cast<size_t>(rng() % n); };
  int rounds = 1 + static_cast<int>(pick(4));
  for (int r = 0; r < rounds; r++) {
    switch (pick(9)) {
      case 0:  // flip a bit
        if (!b.empty()) b[pick(b.size())] ^= static_cast<char>(1u << pick(8));
        break;
      case 1:  // random byte
        if (!b.empty()) b[pick(b.size())] = static_cast<char>(rng());
        break;
      case 2:  // insert a byte
        b.insert(b.begin() + static_cast<std::ptrdiff_t>(pick(b.size() + 1)), static_cast<char>(rng()));
        break;
      case 3:  // delete a byte
        if (!b.empty()) b.erase(pick(b.size()), 1);
        break;
      case 4:  // truncate
        b.resize(pick(b.size() + 1));
        break;
      case 5: {  // interesting 8-byte little-endian value at a random offset
        if (b.size() < 8) break;
        static const uint64_t kVals[] = {0, 1, 2, 0xff, 0x100, 255, 256, 4096, 4097, 1u << 20,
                                         (1u << 20) + 1, 1ull << 32, 1ull << 40, ~0ull, ~0ull >> 1};
        uint64_t v = kVals[pick(std::size(kVals))];
        size_t off = pick(b.size() - 7);
        for (int i = 0; i < 8; i++) b[off + i] = static_cast<char>(v >> (8 * i));
        break;
      }
      case 6: {  // duplicate a range
        if (b.empty()) break;
        size_t off = pick(b.size()), len = 1 + pick(std::min<size_t>(64, b.size() - off));
        b.insert(off, b.substr(off, len));
        break;
      }
      case 7: {  // delete a range
        if (b.empty()) break;
        size_t off = pick(b.size()), len = 1 + pick(std::min<size_t>(64, b.size() - off));
        b.erase(off, len);
        break;
      }
      case 8:  // small increment/decrement of a byte (lengths, counts)
        if (!b.empty()) b[pick(b.size())] += static_cast<char>(pick(2) ? 1 : -1);
        break;
    }
  }
  return b;
}

TEST(CodecFuzzTest, MutationsNeverCrashAndAcceptedInputsAreCanonical) {
  const std::vector<Sample> samples = ValidSamples();
  std::mt19937_64 rng(20240601);
  constexpr int kIterations = 20000;
  int accepted = 0, non_canonical = 0;
  std::vector<std::string> reports;
  for (int i = 0; i < kIterations; i++) {
    const Sample& s = samples[rng() % samples.size()];
    std::string m = Mutate(s.bytes, rng);
    // Every decoder must survive every input.
    for (Kind k : {Kind::kDir, Kind::kLink, Kind::kFile, Kind::kCommit}) {
      std::string re;
      Status st = DecodeAs(k, m, &re);
      if (st.ok()) {
        accepted++;
        if (re != m) {
          non_canonical++;
          if (reports.size() < 5)
            reports.push_back(std::string(s.what) + ": input " + ToHex(m).substr(0, 80) + " re-encodes as " +
                              ToHex(re).substr(0, 80));
        }
      } else {
        ASSERT_EQ(st.code(), Status::Code::kCorruption) << st.ToString();
      }
    }
  }
  std::string all;
  for (const auto& r : reports) all += r + "\n";
  EXPECT_EQ(non_canonical, 0) << "decoded inputs whose re-encoding differs (non-canonical decode):\n" << all;
  // The mutations must leave some inputs valid (e.g. changed digest bytes),
  // or the canonicity check above tests nothing.
  EXPECT_GT(accepted, 100);
}

}  // namespace
}  // namespace hashfs
