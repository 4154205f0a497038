// Tests of file chunk lists and manifest trees (tree/file_manifest.h).
#include "tree/file_manifest.h"

#include <gtest/gtest.h>

#include <random>
#include <set>

#include "cas/memory_store.h"
#include "test_util.h"

namespace hashfs {
namespace {

constexpr size_t kNodeMaxRefs = 8192;  // documented in file_manifest.h

bool IsManifestBoundary(const Digest& d) { return (d.Prefix64() & 1023) == 0; }

std::vector<ChunkRef> MakeChunks(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<ChunkRef> v;
  v.reserve(n);
  for (size_t i = 0; i < n; i++)
    v.push_back({Sha256Of("chunk-" + std::to_string(seed) + "-" + std::to_string(i)), 1 + rng() % (4u << 20)});
  return v;
}

struct Chunked {
  ChunkRef ref;
  uint64_t offset;
};

// Every chunk with its offset, by ForEachChunk. CheckDistinctNodes must come
// to the same verdict (the same error code, or OK having seen the same set
// of chunks).
Result<std::vector<Chunked>> Walk(const ObjectGetter& get, const Inode& inode) {
  std::vector<Chunked> out;
  Status s = file_manifest::ForEachChunk(get, inode, [&](const ChunkRef& c, uint64_t off) {
    out.push_back({c, off});
    return Status::Ok();
  });
  file_manifest::NodeMemo memo;
  std::set<Digest> seen;
  Status distinct = file_manifest::CheckDistinctNodes(get, inode, &memo, [&](const ChunkRef& c) {
    seen.insert(c.digest);
    return Status::Ok();
  });
  EXPECT_EQ(distinct.code(), s.code()) << "CheckDistinctNodes: " << distinct.ToString() << "; ForEachChunk: "
                                       << s.ToString();
  HASHFS_RETURN_IF_ERROR(s);
  std::set<Digest> all;
  for (const auto& c : out) all.insert(c.ref.digest);
  EXPECT_TRUE(seen == all) << "CheckDistinctNodes saw other chunks";
  return out;
}

void ExpectChunksAndOffsets(const ObjectGetter& get, const Inode& inode, const std::vector<ChunkRef>& want) {
  auto got = Walk(get, inode);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  ASSERT_EQ(got->size(), want.size());
  uint64_t off = 0;
  for (size_t i = 0; i < want.size(); i++) {
    ASSERT_EQ((*got)[i].ref, want[i]) << i;
    ASSERT_EQ((*got)[i].offset, off) << i;
    off += want[i].size;
  }
  EXPECT_EQ(off, inode.size);
  auto flat = file_manifest::Chunks(get, inode);
  ASSERT_TRUE(flat.ok()) << flat.status().ToString();
  EXPECT_TRUE(*flat == want);
}

Inode RegularInode() {
  Inode n;
  n.type = FileType::kRegular;
  n.mode = 0644;
  return n;
}

size_t CountNodes(const ObjectGetter& get, const Inode& inode) {
  size_t n = 0;
  Status s = file_manifest::ForEachNode(get, inode, [&](const Digest&) {
    n++;
    return Status::Ok();
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return n;
}

TEST(FileManifestTest, InlineUpTo16Chunks) {
  MemoryStore store;
  ObjectWriter w(store, 0);
  for (size_t n : {0u, 1u, 2u, 15u, 16u}) {
    SCOPED_TRACE(n);
    auto chunks = MakeChunks(n, n);
    Inode inode = RegularInode();
    inode.content = Sha256Of("stale");  // overwritten
    WriterStats before = w.stats();
    HFS_ASSERT_OK(file_manifest::SetContent(w, chunks, &inode));
    EXPECT_EQ(w.stats().objects_added, before.objects_added) << "inline lists write nothing";
    EXPECT_EQ(inode.layout, ContentLayout::kInline);
    EXPECT_TRUE(inode.chunks == chunks);
    EXPECT_TRUE(inode.content.IsZero());
    uint64_t total = 0;
    for (const auto& c : chunks) total += c.size;
    EXPECT_EQ(inode.size, total);
    ExpectChunksAndOffsets(GetterFor(w), inode, chunks);
    EXPECT_EQ(CountNodes(GetterFor(w), inode), 0u);
    // The inode encodes (the inline limit matches the decoder's).
    DirNode dn;
    dn.entries.push_back({"f", 0, inode});
    auto dec = DecodeDirNode(EncodeDirNode(dn));
    ASSERT_TRUE(dec.ok()) << dec.status().ToString();
    EXPECT_EQ(dec->entries[0].inode, inode);
  }
}

TEST(FileManifestTest, ManifestFor17And100Chunks) {
  for (size_t n : {17u, 100u}) {
    SCOPED_TRACE(n);
    MemoryStore store;
    ObjectWriter w(store, 0);
    auto chunks = MakeChunks(n, 1000 + n);
    Inode inode = RegularInode();
    HFS_ASSERT_OK(file_manifest::SetContent(w, chunks, &inode));
    EXPECT_EQ(inode.layout, ContentLayout::kManifest);
    EXPECT_TRUE(inode.chunks.empty());
    EXPECT_FALSE(inode.content.IsZero());
    ExpectChunksAndOffsets(GetterFor(w), inode, chunks);
    HFS_ASSERT_OK(w.Flush());
    ExpectChunksAndOffsets(GetterFor(store), inode, chunks);  // durable after Flush
    size_t nodes = CountNodes(GetterFor(store), inode);
    EXPECT_GE(nodes, 1u);
    EXPECT_EQ(nodes, w.stats().objects_added);
    // The inode with its manifest root survives the codec.
    DirNode dn;
    dn.entries.push_back({"f", 0, inode});
    auto dec = DecodeDirNode(EncodeDirNode(dn));
    ASSERT_TRUE(dec.ok()) << dec.status().ToString();
    ExpectChunksAndOffsets(GetterFor(store), dec->entries[0].inode, chunks);
  }
}

TEST(FileManifestTest, ManifestFor50000Chunks) {
  MemoryStore store;
  ObjectWriter w(store, 0);
  auto chunks = MakeChunks(50000, 5);
  Inode inode = RegularInode();
  HFS_ASSERT_OK(file_manifest::SetContent(w, chunks, &inode));
  EXPECT_EQ(inode.layout, ContentLayout::kManifest);
  ExpectChunksAndOffsets(GetterFor(w), inode, chunks);
  // Node boundaries are content-defined: a level-0 node ends right after a
  // boundary chunk, so there are about 50000/1024 of them, each <= 8192 refs.
  size_t boundaries = 0;
  for (const auto& c : chunks) boundaries += IsManifestBoundary(c.digest);
  size_t leaves = 0, uppers = 0;
  HFS_ASSERT_OK(file_manifest::ForEachNode(GetterFor(w), inode, [&](const Digest& d) -> Status {
    HASHFS_ASSIGN_OR_RETURN(std::string b, w.Get(d));
    HASHFS_ASSIGN_OR_RETURN(FileNode fn, DecodeFileNode(b));
    EXPECT_LE(fn.refs.size(), kNodeMaxRefs);
    if (fn.level == 0) {
      leaves++;
      // Only the last ref of a leaf may be a boundary.
      for (size_t i = 0; i + 1 < fn.refs.size(); i++) EXPECT_FALSE(IsManifestBoundary(fn.refs[i].digest));
    } else {
      uppers++;
    }
    return Status::Ok();
  }));
  EXPECT_GE(leaves, boundaries);
  EXPECT_LE(leaves, boundaries + 1);
  EXPECT_GE(uppers, 1u);
}

TEST(FileManifestTest, NodesSplitAt8192RefsWithoutBoundaries) {
  // Chunks chosen so that none is a boundary: nodes are cut at the cap.
  std::vector<ChunkRef> chunks;
  for (int i = 0; chunks.size() < 2 * kNodeMaxRefs + 100; i++) {
    Digest d = Sha256Of("nb" + std::to_string(i));
    if (!IsManifestBoundary(d)) chunks.push_back({d, 4096});
  }
  MemoryStore store;
  ObjectWriter w(store, 0);
  Inode inode = RegularInode();
  HFS_ASSERT_OK(file_manifest::SetContent(w, chunks, &inode));
  ExpectChunksAndOffsets(GetterFor(w), inode, chunks);
  std::vector<size_t> leaf_sizes;
  HFS_ASSERT_OK(file_manifest::ForEachNode(GetterFor(w), inode, [&](const Digest& d) -> Status {
    HASHFS_ASSIGN_OR_RETURN(std::string b, w.Get(d));
    HASHFS_ASSIGN_OR_RETURN(FileNode fn, DecodeFileNode(b));
    if (fn.level == 0) leaf_sizes.push_back(fn.refs.size());
    return Status::Ok();
  }));
  EXPECT_EQ(leaf_sizes, (std::vector<size_t>{kNodeMaxRefs, kNodeMaxRefs, 100}));
}

TEST(FileManifestTest, LocalEditRewritesFewNodes) {
  MemoryStore store;
  ObjectWriter w(store, 0);
  auto chunks = MakeChunks(50000, 9);
  Inode inode = RegularInode();
  HFS_ASSERT_OK(file_manifest::SetContent(w, chunks, &inode));
  const WriterStats full = w.stats();
  const size_t total_nodes = CountNodes(GetterFor(w), inode);
  ASSERT_GT(total_nodes, 20u);
  EXPECT_EQ(full.objects_added, total_nodes);

  struct Edit {
    const char* what;
    std::function<void(std::vector<ChunkRef>*)> apply;
  };
  const Edit edits[] = {
      {"replace one chunk", [](std::vector<ChunkRef>* v) { (*v)[25000] = {Sha256Of("replacement"), 12345}; }},
      {"resize one chunk", [](std::vector<ChunkRef>* v) { (*v)[30001].size += 1; }},
      {"insert one chunk", [](std::vector<ChunkRef>* v) { v->insert(v->begin() + 17777, {Sha256Of("ins"), 99}); }},
      {"delete one chunk", [](std::vector<ChunkRef>* v) { v->erase(v->begin() + 40000); }},
      {"append one chunk", [](std::vector<ChunkRef>* v) { v->push_back({Sha256Of("tail"), 7}); }},
  };
  for (const auto& e : edits) {
    SCOPED_TRACE(e.what);
    auto edited = chunks;
    e.apply(&edited);
    Inode i2 = RegularInode();
    WriterStats before = w.stats();
    HFS_ASSERT_OK(file_manifest::SetContent(w, edited, &i2));
    WriterStats after = w.stats();
    uint64_t new_objects = after.objects_added - before.objects_added;
    uint64_t new_bytes = after.plain_bytes_added - before.plain_bytes_added;
    // The leaf holding the edit (maybe its neighbour if a boundary moved) and
    // the path above it.
    EXPECT_LE(new_objects, 4u) << "of " << total_nodes << " nodes";
    EXPECT_GE(new_objects, 2u);
    EXPECT_LT(new_bytes, full.plain_bytes_added / 5);
    ExpectChunksAndOffsets(GetterFor(w), i2, edited);
  }
}

TEST(FileManifestTest, SetContentIsDeterministic) {
  MemoryStore s1, s2;
  ObjectWriter w1(s1, 0), w2(s2, 3);
  auto chunks = MakeChunks(5000, 11);
  Inode a = RegularInode(), b = RegularInode();
  HFS_ASSERT_OK(file_manifest::SetContent(w1, chunks, &a));
  HFS_ASSERT_OK(file_manifest::SetContent(w2, chunks, &b));
  EXPECT_EQ(a, b);
  // Back to inline after being a manifest.
  HFS_ASSERT_OK(file_manifest::SetContent(w1, MakeChunks(3, 1), &a));
  EXPECT_EQ(a.layout, ContentLayout::kInline);
  EXPECT_TRUE(a.content.IsZero());
  EXPECT_EQ(a.chunks.size(), 3u);
}

// ---------------------------------------------------------------- corruption

// Writes a two-level manifest by hand: a level-1 root over level-0 nodes of
// `per_leaf` chunks each.
struct HandManifest {
  Inode inode;
  std::vector<ChunkRef> chunks;
  FileNode root;
};

HandManifest Hand(ObjectWriter& w, size_t leaves, size_t per_leaf) {
  HandManifest m;
  m.inode = RegularInode();
  m.inode.layout = ContentLayout::kManifest;
  m.root.level = 1;
  auto chunks = MakeChunks(leaves * per_leaf, 21);
  for (size_t l = 0; l < leaves; l++) {
    FileNode leaf;
    uint64_t bytes = 0;
    for (size_t i = 0; i < per_leaf; i++) {
      leaf.refs.push_back(chunks[l * per_leaf + i]);
      bytes += chunks[l * per_leaf + i].size;
    }
    auto d = w.Put(EncodeFileNode(leaf), ObjectKind::kMeta);
    m.root.refs.push_back({*d, bytes});
    m.inode.size += bytes;
  }
  m.chunks = chunks;
  m.inode.content = *w.Put(EncodeFileNode(m.root), ObjectKind::kMeta);
  return m;
}

TEST(FileManifestCorruptionTest, HandBuiltManifestReads) {
  MemoryStore store;
  ObjectWriter w(store, 0);
  HandManifest m = Hand(w, 3, 5);
  ExpectChunksAndOffsets(GetterFor(w), m.inode, m.chunks);
}

TEST(FileManifestCorruptionTest, WrongSubtreeSize) {
  MemoryStore store;
  ObjectWriter w(store, 0);
  HandManifest m = Hand(w, 3, 5);
  for (int64_t delta : {-1, 1}) {
    FileNode bad = m.root;
    bad.refs[1].size = static_cast<uint64_t>(static_cast<int64_t>(bad.refs[1].size) + delta);
    Inode inode = m.inode;
    inode.size = static_cast<uint64_t>(static_cast<int64_t>(inode.size) + delta);  // consistent total
    inode.content = *w.Put(EncodeFileNode(bad), ObjectKind::kMeta);
    auto r = Walk(GetterFor(w), inode);
    EXPECT_EQ(r.status().code(), Status::Code::kCorruption) << r.status().ToString();
    Status ns = file_manifest::ForEachNode(GetterFor(w), inode, [](const Digest&) { return Status::Ok(); });
    EXPECT_EQ(ns.code(), Status::Code::kCorruption) << ns.ToString();
  }
}

TEST(FileManifestCorruptionTest, SizeDisagreesWithInode) {
  MemoryStore store;
  ObjectWriter w(store, 0);
  HandManifest m = Hand(w, 3, 5);
  for (int64_t delta : {int64_t{-1}, int64_t{1}, -static_cast<int64_t>(m.inode.size) / 2}) {
    Inode inode = m.inode;
    inode.size = static_cast<uint64_t>(static_cast<int64_t>(inode.size) + delta);
    auto r = Walk(GetterFor(w), inode);
    EXPECT_EQ(r.status().code(), Status::Code::kCorruption) << delta << ": " << r.status().ToString();
  }
  // Inline inodes are checked too.
  Inode inl = RegularInode();
  inl.chunks = MakeChunks(3, 1);
  inl.size = inl.chunks[0].size;
  EXPECT_EQ(Walk(GetterFor(w), inl).status().code(), Status::Code::kCorruption);
}

TEST(FileManifestCorruptionTest, WrongLevelMissingNodeAndWrongType) {
  MemoryStore store;
  ObjectWriter w(store, 0);
  HandManifest m = Hand(w, 3, 5);
  // A level-1 root whose child is itself a level-1 node.
  {
    FileNode bad = m.root;
    bad.refs[0].digest = m.inode.content;
    bad.refs[0].size = m.inode.size;
    Inode inode = m.inode;
    inode.size = m.inode.size + bad.refs[1].size + bad.refs[2].size;
    inode.content = *w.Put(EncodeFileNode(bad), ObjectKind::kMeta);
    EXPECT_EQ(Walk(GetterFor(w), inode).status().code(), Status::Code::kCorruption);
  }
  // A missing leaf.
  {
    FileNode bad = m.root;
    bad.refs[2].digest = Sha256Of("gone");
    Inode inode = m.inode;
    inode.content = *w.Put(EncodeFileNode(bad), ObjectKind::kMeta);
    EXPECT_EQ(Walk(GetterFor(w), inode).status().code(), Status::Code::kNotFound);
  }
  // A root that is not a file node.
  {
    Inode inode = m.inode;
    inode.content = *w.Put(EncodeDirNode(DirNode{}), ObjectKind::kMeta);
    EXPECT_EQ(Walk(GetterFor(w), inode).status().code(), Status::Code::kCorruption);
    inode.content = Sha256Of("no root");
    EXPECT_EQ(Walk(GetterFor(w), inode).status().code(), Status::Code::kNotFound);
  }
  // Not a regular file.
  Inode dir;
  dir.type = FileType::kDirectory;
  EXPECT_EQ(Walk(GetterFor(w), dir).status().code(), Status::Code::kInvalidArgument);
}

// Nodes can repeat: here each of 3 levels repeats the one below 8192 times,
// 2^39 references to one 4 MiB chunk, a 2 EiB file in 4 objects (a crafted
// store; a huge file of zeros repeats nodes the same way). CheckDistinctNodes
// reads each node once (ForEachChunk would make 2^39 calls), memoizes them
// for the next file, and reports sizes that overflow 64 bits as corruption.
TEST(FileManifestTest, CheckDistinctNodesReadsRepeatedNodesOnce) {
  MemoryStore store;
  ObjectWriter w(store, 0);
  std::vector<ChunkRef> level{{Sha256Of("zeros"), uint64_t{4} << 20}};
  std::vector<Digest> nodes;
  for (uint8_t l = 0; l < 4; l++) {
    FileNode node;
    node.level = l;
    node.refs.assign(8192, level[0]);
    auto d = w.Put(EncodeFileNode(node), ObjectKind::kMeta);
    ASSERT_TRUE(d.ok());
    nodes.push_back(*d);
    level[0] = {*d, l < 3 ? level[0].size * 8192 : 0};  // 2^35, 2^48, 2^61 (level 3's 2^74 does not fit)
  }
  int gets = 0;
  ObjectGetter counting = [&](const Digest& d) {
    gets++;
    return w.Get(d);
  };
  Inode inode = RegularInode();
  inode.layout = ContentLayout::kManifest;
  inode.content = nodes[2];
  inode.size = uint64_t{1} << 61;
  file_manifest::NodeMemo memo;
  uint64_t calls = 0;
  auto count = [&](const ChunkRef&) {
    calls++;
    return Status::Ok();
  };
  HFS_EXPECT_OK(file_manifest::CheckDistinctNodes(counting, inode, &memo, count));
  EXPECT_EQ(gets, 3);
  EXPECT_EQ(calls, 8192u);
  // Another file over the same nodes reads none of them again.
  Inode smaller = inode;
  smaller.content = nodes[1];
  smaller.size = uint64_t{1} << 48;
  HFS_EXPECT_OK(file_manifest::CheckDistinctNodes(counting, smaller, &memo, count));
  EXPECT_EQ(gets, 3);
  smaller.size++;
  EXPECT_EQ(file_manifest::CheckDistinctNodes(counting, smaller, &memo, count).code(), Status::Code::kCorruption);
  // 8192 subtrees of 2^61 bytes: 2^74, more than 64 bits hold.
  Inode overflow = inode;
  overflow.content = nodes[3];
  Status s = file_manifest::CheckDistinctNodes(counting, overflow, &memo, count);
  EXPECT_EQ(s.code(), Status::Code::kCorruption) << s.ToString();
  file_manifest::NodeMemo fresh;
  s = file_manifest::CheckDistinctNodes(counting, overflow, &fresh, count);
  EXPECT_EQ(s.code(), Status::Code::kCorruption) << s.ToString();
  // A remembered node met at a level its parent does not imply.
  FileNode skip;
  skip.level = 2;
  skip.refs.push_back({nodes[0], uint64_t{1} << 35});
  Inode wrong = RegularInode();
  wrong.layout = ContentLayout::kManifest;
  wrong.content = *w.Put(EncodeFileNode(skip), ObjectKind::kMeta);
  wrong.size = uint64_t{1} << 35;
  s = file_manifest::CheckDistinctNodes(counting, wrong, &memo, count);
  EXPECT_EQ(s.code(), Status::Code::kCorruption) << s.ToString();
  EXPECT_NE(s.message().find("wrong level"), std::string::npos) << s.ToString();
}

// WalkChunks: a skipped subtree's bytes count as walked (later offsets are
// right), nothing in it is read; leave is called for walked subtrees only;
// a skipped subtree that claims more than the file holds is corruption.
TEST(FileManifestTest, WalkChunksSkipsSubtrees) {
  MemoryStore store;
  ObjectWriter w(store, 0);
  HandManifest m = Hand(w, 3, 5);  // root over 3 leaves of 5 chunks
  std::vector<Chunked> got;
  std::vector<Digest> entered, left;
  file_manifest::ChunkWalker walker;
  walker.enter = [&](const Digest& d, uint64_t off, uint64_t size) {
    entered.push_back(d);
    if (d == m.root.refs[1].digest) {
      EXPECT_EQ(off, m.root.refs[0].size);
      EXPECT_EQ(size, m.root.refs[1].size);
      return false;
    }
    return true;
  };
  walker.leave = [&](const Digest& d) { left.push_back(d); };
  walker.chunk = [&](const ChunkRef& c, uint64_t off) {
    got.push_back({c, off});
    return Status::Ok();
  };
  HFS_ASSERT_OK(file_manifest::WalkChunks(GetterFor(w), m.inode, walker));
  ASSERT_EQ(got.size(), 10u);
  uint64_t off = 0;
  for (size_t i = 0; i < 15; i++) {
    if (i < 5 || i >= 10) {
      const Chunked& g = got[i < 5 ? i : i - 5];
      EXPECT_EQ(g.ref, m.chunks[i]) << i;
      EXPECT_EQ(g.offset, off) << i;
    }
    off += m.chunks[i].size;
  }
  EXPECT_EQ(entered, (std::vector<Digest>{m.inode.content, m.root.refs[0].digest, m.root.refs[1].digest,
                                          m.root.refs[2].digest}));
  EXPECT_EQ(left, (std::vector<Digest>{m.root.refs[0].digest, m.root.refs[2].digest, m.inode.content}));
  // Skipping the root walks nothing.
  got.clear();
  walker.enter = [](const Digest&, uint64_t, uint64_t) { return false; };
  HFS_ASSERT_OK(file_manifest::WalkChunks(GetterFor(w), m.inode, walker));
  EXPECT_TRUE(got.empty());
  // A skipped child longer than the file.
  FileNode bad = m.root;
  bad.refs[1].size = ~uint64_t{0} - 5;
  Inode inode = m.inode;
  inode.content = *w.Put(EncodeFileNode(bad), ObjectKind::kMeta);
  walker.enter = [&](const Digest& d, uint64_t, uint64_t) { return d != m.root.refs[1].digest; };
  EXPECT_EQ(file_manifest::WalkChunks(GetterFor(w), inode, walker).code(), Status::Code::kCorruption);
}

TEST(FileManifestCorruptionTest, CallbackErrorStopsTheWalk) {
  MemoryStore store;
  ObjectWriter w(store, 0);
  auto chunks = MakeChunks(3000, 31);
  Inode inode = RegularInode();
  HFS_ASSERT_OK(file_manifest::SetContent(w, chunks, &inode));
  int calls = 0;
  Status s = file_manifest::ForEachChunk(GetterFor(w), inode, [&](const ChunkRef&, uint64_t) {
    return ++calls == 10 ? Status::Busy("stop") : Status::Ok();
  });
  EXPECT_EQ(s.code(), Status::Code::kBusy);
  EXPECT_EQ(calls, 10);
}

}  // namespace
}  // namespace hashfs
