// Tests of directory entry trees and link tables (tree/dir_tree.h).
#include "tree/dir_tree.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <memory>
#include <random>
#include <set>

#include "cas/memory_store.h"
#include "test_util.h"

namespace hashfs {
namespace {

using testing::FileEntry;

// A small inline entry (a fifo, so no chunk list) whose attributes depend on
// `version`, so replacements are visible.
Entry SmallEntry(const std::string& name, int version = 0) {
  Entry e;
  e.name = name;
  e.inode.type = FileType::kFifo;
  e.inode.mode = 0600;
  e.inode.uid = 1000;
  e.inode.mtime_ns = 1700000000000000000 + version;
  return e;
}

// Random valid names: printable ASCII plus some UTF-8 bytes, 1..40 bytes.
std::vector<std::string> RandomNames(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::set<std::string> names;
  static const std::string kAlpha =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._- ~+=@#\xc3\xa9\xe2\x82\xac";
  while (names.size() < n) {
    size_t len = 1 + rng() % 40;
    std::string s;
    for (size_t i = 0; i < len; i++) s.push_back(kAlpha[rng() % kAlpha.size()]);
    if (IsValidEntryName(s)) names.insert(s);
  }
  std::vector<std::string> v(names.begin(), names.end());
  std::shuffle(v.begin(), v.end(), rng);
  return v;
}

std::vector<Entry> EntriesFor(const std::vector<std::string>& names, int version = 0) {
  std::vector<Entry> v;
  v.reserve(names.size());
  for (const auto& n : names) v.push_back(SmallEntry(n, version));
  return v;
}

// A store plus writer; Compact() moves the live nodes of a tree into a fresh
// pair so long edit sequences do not accumulate garbage in memory.
struct Env {
  std::unique_ptr<MemoryStore> store = std::make_unique<MemoryStore>();
  std::unique_ptr<ObjectWriter> w = std::make_unique<ObjectWriter>(*store, /*zstd_level=*/0);

  ObjectGetter get() { return GetterFor(*w); }

  Status Compact(const Digest& root) {
    auto ns = std::make_unique<MemoryStore>();
    auto nw = std::make_unique<ObjectWriter>(*ns, 0);
    ObjectGetter g = get();
    HASHFS_RETURN_IF_ERROR(dir_tree::ForEachNode(g, root, [&](const Digest& d) -> Status {
      HASHFS_ASSIGN_OR_RETURN(std::string bytes, g(d));
      HASHFS_ASSIGN_OR_RETURN(Digest nd, nw->Put(bytes, ObjectKind::kMeta));
      if (nd != d) return Status::Corruption("digest changed");
      return Status::Ok();
    }));
    w = std::move(nw);
    store = std::move(ns);
    return Status::Ok();
  }
};

Result<DirNode> LoadNode(const ObjectGetter& get, const Digest& d) { return dir_tree::LoadNode(get, d, 0); }

uint8_t TopNibble(const std::string& name) { return Sha256Of(name).bytes[0] >> 4; }

// ------------------------------------------------------------ basic behaviour

TEST(DirTreeTest, EmptyDirectory) {
  Env env;
  HFS_ASSERT_OK_AND_ASSIGN(Digest e, dir_tree::Empty(*env.w));
  HFS_ASSERT_OK_AND_ASSIGN(Digest b, dir_tree::Build(*env.w, {}));
  EXPECT_EQ(e, b);
  EXPECT_FALSE(e.IsZero());
  // The empty directory is the encoding of an empty leaf.
  EXPECT_EQ(e, Sha256Of(EncodeDirNode(DirNode{})));
  HFS_ASSERT_OK_AND_ASSIGN(auto list, dir_tree::ListSorted(env.get(), e));
  EXPECT_TRUE(list.empty());
  HFS_ASSERT_OK_AND_ASSIGN(auto found, dir_tree::Lookup(env.get(), e, "x"));
  EXPECT_FALSE(found.has_value());
}

// The node loader that per-node walkers (verify, stats) use: a read failure
// comes back as is (a lazy clone's NotFound stays NotFound), undecodable
// bytes and a depth past kMaxTrieDepth are Corruption naming the node.
TEST(DirTreeTest, LoadNodeChecksDepthAndDecoding) {
  Env env;
  auto names = RandomNames(600, 7);
  std::vector<Entry> entries;
  for (size_t i = 0; i < names.size(); i++) entries.push_back(FileEntry(names[i], i));
  HFS_ASSERT_OK_AND_ASSIGN(Digest root, dir_tree::Build(*env.w, entries));
  HFS_ASSERT_OK_AND_ASSIGN(DirNode n, dir_tree::LoadNode(env.get(), root, 0));
  EXPECT_FALSE(n.leaf);
  HFS_ASSERT_OK(dir_tree::LoadNode(env.get(), n.children[0].first, kMaxTrieDepth).status());
  auto deep = dir_tree::LoadNode(env.get(), n.children[0].first, kMaxTrieDepth + 1);
  EXPECT_TRUE(deep.status().IsCorruption()) << deep.status().ToString();
  EXPECT_NE(deep.status().message().find(n.children[0].first.Hex()), std::string::npos);
  auto missing = dir_tree::LoadNode(env.get(), Sha256Of("nowhere"), 0);
  EXPECT_TRUE(missing.status().IsNotFound()) << missing.status().ToString();
  HFS_ASSERT_OK_AND_ASSIGN(Digest junk, env.w->Put("not a node", ObjectKind::kMeta));
  auto bad = dir_tree::LoadNode(env.get(), junk, 0);
  EXPECT_TRUE(bad.status().IsCorruption()) << bad.status().ToString();
  EXPECT_NE(bad.status().message().find("node " + junk.Hex()), std::string::npos) << bad.status().ToString();
  auto bad_link = link_table::LoadNode(env.get(), junk, 0);
  EXPECT_TRUE(bad_link.status().IsCorruption()) << bad_link.status().ToString();
}

TEST(DirTreeTest, BuildLookupListForEach) {
  for (size_t n : {1u, 100u, 512u, 513u, 3000u}) {
    SCOPED_TRACE(n);
    Env env;
    auto names = RandomNames(n, 100 + n);
    std::vector<Entry> entries;
    for (size_t i = 0; i < names.size(); i++) entries.push_back(FileEntry(names[i], i));
    HFS_ASSERT_OK_AND_ASSIGN(Digest root, dir_tree::Build(*env.w, entries));
    HFS_ASSERT_OK(env.w->Flush());
    // Read through the store (not the writer) after Flush.
    ObjectGetter get = GetterFor(*env.store);
    for (const auto& e : entries) {
      HFS_ASSERT_OK_AND_ASSIGN(auto found, dir_tree::Lookup(get, root, e.name));
      ASSERT_TRUE(found.has_value()) << e.name;
      EXPECT_EQ(*found, e);
    }
    for (const auto& absent : {std::string("absent"), std::string("zzz-not-there"), names[0] + "x"}) {
      HFS_ASSERT_OK_AND_ASSIGN(auto found, dir_tree::Lookup(get, root, absent));
      EXPECT_FALSE(found.has_value()) << absent;
    }
    HFS_ASSERT_OK_AND_ASSIGN(auto list, dir_tree::ListSorted(get, root));
    auto sorted = entries;
    std::sort(sorted.begin(), sorted.end(), [](const Entry& a, const Entry& b) { return a.name < b.name; });
    ASSERT_EQ(list.size(), sorted.size());
    EXPECT_TRUE(std::is_sorted(list.begin(), list.end(),
                               [](const Entry& a, const Entry& b) { return a.name < b.name; }));
    EXPECT_TRUE(list == sorted);
    std::multiset<std::string> seen;
    HFS_ASSERT_OK(dir_tree::ForEach(get, root, [&](const Entry& e) {
      seen.insert(e.name);
      return Status::Ok();
    }));
    EXPECT_EQ(seen.size(), n);
    EXPECT_EQ(std::set<std::string>(seen.begin(), seen.end()).size(), n);  // each once
    // ForEach stops at the first error and returns it.
    int calls = 0;
    Status st = dir_tree::ForEach(get, root, [&](const Entry&) {
      return ++calls == 3 ? Status::Busy("stop") : Status::Ok();
    });
    EXPECT_EQ(st.code(), n >= 3 ? Status::Code::kBusy : Status::Code::kOk);
    EXPECT_EQ(calls, std::min<int>(3, static_cast<int>(n)));
    // Every node is in the store.
    size_t nodes = 0;
    HFS_ASSERT_OK(dir_tree::ForEachNode(get, root, [&](const Digest& d) {
      nodes++;
      auto c = env.store->Contains(d);
      return c.ok() && *c ? Status::Ok() : Status::NotFound(d.Hex());
    }));
    EXPECT_GE(nodes, n <= kHamtLeafMax ? 1u : 2u);
  }
}

TEST(DirTreeTest, LeafSplitThreshold) {
  Env env;
  auto names = RandomNames(kHamtLeafMax + 1, 7);
  std::vector<std::string> first(names.begin(), names.begin() + kHamtLeafMax);
  HFS_ASSERT_OK_AND_ASSIGN(Digest leaf_root, dir_tree::Build(*env.w, EntriesFor(first)));
  HFS_ASSERT_OK_AND_ASSIGN(DirNode leaf, LoadNode(env.get(), leaf_root));
  EXPECT_TRUE(leaf.leaf);
  EXPECT_EQ(leaf.entries.size(), kHamtLeafMax);
  HFS_ASSERT_OK_AND_ASSIGN(Digest big_root, dir_tree::Build(*env.w, EntriesFor(names)));
  HFS_ASSERT_OK_AND_ASSIGN(DirNode big, LoadNode(env.get(), big_root));
  EXPECT_FALSE(big.leaf);
  uint64_t total = 0;
  for (const auto& [d, c] : big.children) total += c;
  EXPECT_EQ(total, kHamtLeafMax + 1);
  EXPECT_EQ(static_cast<size_t>(std::popcount(big.bitmap)), big.children.size());
  // Children are placed by the top nibble of SHA-256(name).
  for (const auto& n : names) EXPECT_TRUE(big.bitmap & (1u << TopNibble(n))) << n;
}

TEST(DirTreeTest, InvalidNamesAreRejected) {
  Env env;
  for (const std::string& bad : {std::string(""), std::string("."), std::string(".."), std::string("a/b"),
                                 std::string("a\0b", 3), std::string(256, 'x')}) {
    auto r = dir_tree::Build(*env.w, {SmallEntry("ok"), SmallEntry(bad)});
    EXPECT_EQ(r.status().code(), Status::Code::kInvalidArgument) << testing::ToHex(bad);
    HFS_ASSERT_OK_AND_ASSIGN(Digest e, dir_tree::Empty(*env.w));
    auto a = dir_tree::Apply(*env.w, e, {{bad, SmallEntry(bad)}});
    EXPECT_EQ(a.status().code(), Status::Code::kInvalidArgument) << testing::ToHex(bad);
    a = dir_tree::Apply(*env.w, e, {{bad, std::nullopt}});
    EXPECT_EQ(a.status().code(), Status::Code::kInvalidArgument) << testing::ToHex(bad);
  }
  HFS_ASSERT_OK_AND_ASSIGN(Digest e, dir_tree::Empty(*env.w));
  auto a = dir_tree::Apply(*env.w, e, {{"a", SmallEntry("b")}});
  EXPECT_EQ(a.status().code(), Status::Code::kInvalidArgument) << "edit name differs from entry name";
}

// ------------------------------------------------------------ canonical shape

class CanonicalShapeTest : public ::testing::TestWithParam<size_t> {};

TEST_P(CanonicalShapeTest, IncrementalInsertsEqualBuild) {
  const size_t n = GetParam();
  Env env;
  auto names = RandomNames(n, 1000 + n);
  HFS_ASSERT_OK_AND_ASSIGN(Digest built, dir_tree::Build(*env.w, EntriesFor(names)));
  HFS_ASSERT_OK(env.Compact(built));

  std::mt19937_64 rng(n);
  auto order = names;
  std::shuffle(order.begin(), order.end(), rng);
  HFS_ASSERT_OK_AND_ASSIGN(Digest root, dir_tree::Empty(*env.w));
  for (size_t i = 0; i < order.size(); i++) {
    HFS_ASSERT_OK_AND_ASSIGN(root, dir_tree::Apply(*env.w, root, {{order[i], SmallEntry(order[i])}}));
    if (i % 2000 == 1999) HFS_ASSERT_OK(env.Compact(root));
  }
  EXPECT_EQ(root.Hex(), built.Hex()) << "one-by-one inserts of " << n << " names differ from Build";
}

TEST_P(CanonicalShapeTest, RandomEditsEqualBuildOfResult) {
  const size_t n = GetParam();
  Env env;
  auto names = RandomNames(n + n / 4 + 10, 2000 + n);
  std::vector<std::string> present(names.begin(), names.begin() + static_cast<std::ptrdiff_t>(n));
  std::vector<std::string> spare(names.begin() + static_cast<std::ptrdiff_t>(n), names.end());
  HFS_ASSERT_OK_AND_ASSIGN(Digest root, dir_tree::Build(*env.w, EntriesFor(present)));

  std::map<std::string, int> model;  // name -> version
  for (const auto& p : present) model[p] = 0;
  std::mt19937_64 rng(77 + n);
  const int rounds = n > 5000 ? 40 : 60;
  for (int round = 0; round < rounds; round++) {
    std::vector<DirEdit> edits;
    std::set<std::string> touched;  // each name at most once per batch (repeats are tested separately)
    size_t k = 1 + rng() % (round % 3 == 0 ? 1 : 200);
    for (size_t i = 0; i < k; i++) {
      int op = static_cast<int>(rng() % 4);
      if (op <= 1 && !model.empty()) {
        auto it = model.begin();
        std::advance(it, static_cast<std::ptrdiff_t>(rng() % model.size()));
        if (!touched.insert(it->first).second) continue;
        if (op == 0) {  // remove an existing name
          edits.push_back({it->first, std::nullopt});
          model.erase(it);
        } else {  // replace an existing entry
          it->second++;
          edits.push_back({it->first, SmallEntry(it->first, it->second)});
        }
      } else if (op == 2 && !spare.empty()) {  // insert a new name
        std::string s = spare.back();
        spare.pop_back();
        touched.insert(s);
        model[s] = 0;
        edits.push_back({s, SmallEntry(s)});
      } else {  // remove an absent name: no-op
        std::string s = "absent-" + std::to_string(rng() % 1000);
        if (!touched.insert(s).second) continue;
        edits.push_back({s, std::nullopt});
      }
    }
    HFS_ASSERT_OK_AND_ASSIGN(root, dir_tree::Apply(*env.w, root, edits));
  }
  std::vector<Entry> final_entries;
  for (const auto& [name, v] : model) final_entries.push_back(SmallEntry(name, v));
  HFS_ASSERT_OK_AND_ASSIGN(auto listed, dir_tree::ListSorted(env.get(), root));
  ASSERT_EQ(listed.size(), final_entries.size());
  EXPECT_TRUE(listed == final_entries);
  HFS_ASSERT_OK_AND_ASSIGN(Digest rebuilt, dir_tree::Build(*env.w, final_entries));
  EXPECT_EQ(root.Hex(), rebuilt.Hex()) << "edited tree differs from Build of the same set";
}

INSTANTIATE_TEST_SUITE_P(Sizes, CanonicalShapeTest, ::testing::Values(0, 1, 511, 512, 513, 5000, 20000));

TEST(DirTreeTest, GrowPastLeafMaxAndShrinkBack) {
  Env env;
  auto names = RandomNames(2 * kHamtLeafMax, 31);
  std::vector<std::string> base(names.begin(), names.begin() + 500);
  std::vector<std::string> extra(names.begin() + 500, names.end());
  HFS_ASSERT_OK_AND_ASSIGN(Digest fresh, dir_tree::Build(*env.w, EntriesFor(base)));
  Digest root = fresh;
  // Grow one at a time past the threshold...
  for (const auto& x : extra) {
    HFS_ASSERT_OK_AND_ASSIGN(root, dir_tree::Apply(*env.w, root, {{x, SmallEntry(x)}}));
  }
  HFS_ASSERT_OK_AND_ASSIGN(DirNode grown, LoadNode(env.get(), root));
  EXPECT_FALSE(grown.leaf);
  // ...and shrink back one at a time: the tree collapses to the same leaf.
  for (const auto& x : extra) {
    HFS_ASSERT_OK_AND_ASSIGN(root, dir_tree::Apply(*env.w, root, {{x, std::nullopt}}));
  }
  EXPECT_EQ(root, fresh);
  HFS_ASSERT_OK_AND_ASSIGN(DirNode shrunk, LoadNode(env.get(), root));
  EXPECT_TRUE(shrunk.leaf);

  // Exactly at the boundary: 512 -> 513 -> 512.
  std::vector<std::string> b512(names.begin(), names.begin() + kHamtLeafMax);
  HFS_ASSERT_OK_AND_ASSIGN(Digest leaf512, dir_tree::Build(*env.w, EntriesFor(b512)));
  const std::string& x = names[kHamtLeafMax];
  HFS_ASSERT_OK_AND_ASSIGN(Digest r513, dir_tree::Apply(*env.w, leaf512, {{x, SmallEntry(x)}}));
  std::vector<std::string> b513(names.begin(), names.begin() + kHamtLeafMax + 1);
  HFS_ASSERT_OK_AND_ASSIGN(Digest built513, dir_tree::Build(*env.w, EntriesFor(b513)));
  EXPECT_EQ(r513, built513);
  HFS_ASSERT_OK_AND_ASSIGN(Digest back, dir_tree::Apply(*env.w, r513, {{x, std::nullopt}}));
  EXPECT_EQ(back, leaf512);

  // In one batch: remove everything but 3 from a two-level tree.
  std::vector<DirEdit> rm;
  for (size_t i = 3; i < names.size(); i++) rm.push_back({names[i], std::nullopt});
  HFS_ASSERT_OK_AND_ASSIGN(Digest all, dir_tree::Build(*env.w, EntriesFor(names)));
  HFS_ASSERT_OK_AND_ASSIGN(Digest three, dir_tree::Apply(*env.w, all, rm));
  HFS_ASSERT_OK_AND_ASSIGN(Digest built3, dir_tree::Build(*env.w, EntriesFor({names[0], names[1], names[2]})));
  EXPECT_EQ(three, built3);
  // Removing every name gives the empty directory.
  HFS_ASSERT_OK_AND_ASSIGN(Digest none, dir_tree::Apply(*env.w, three,
                                                        {{names[0], std::nullopt},
                                                         {names[1], std::nullopt},
                                                         {names[2], std::nullopt}}));
  HFS_ASSERT_OK_AND_ASSIGN(Digest empty, dir_tree::Empty(*env.w));
  EXPECT_EQ(none, empty);
}

// ------------------------------------------------- leaves bounded in bytes

// An entry carrying `kib` KiB of xattr values, in two values (a value is at
// most 64 KiB).
Entry HeavyEntry(const std::string& name, size_t kib, int version = 0) {
  Entry e = SmallEntry(name, version);
  const size_t bytes = kib << 10;
  const char c = static_cast<char>('a' + version % 26);
  e.inode.xattrs.emplace_back("user.a", std::string(bytes / 2, c));
  e.inode.xattrs.emplace_back("user.b", std::string(bytes - bytes / 2, c));
  return e;
}

// Every node of the tree at root is within kHamtLeafMaxBytes; returns how
// many nodes there are and how many of them are leaves.
std::pair<size_t, size_t> CheckNodeSizes(const ObjectGetter& get, const Digest& root) {
  size_t nodes = 0, leaves = 0;
  Status s = dir_tree::ForEachNode(get, root, [&](const Digest& d) -> Status {
    HASHFS_ASSIGN_OR_RETURN(std::string bytes, get(d));
    EXPECT_LE(bytes.size(), kHamtLeafMaxBytes) << "node " << d.Hex();
    HASHFS_ASSIGN_OR_RETURN(DirNode n, DecodeDirNode(bytes));
    nodes++;
    leaves += n.leaf ? 1 : 0;
    return Status::Ok();
  });
  EXPECT_TRUE(s.ok()) << s.ToString();
  return {nodes, leaves};
}

// Entries with large xattrs: a leaf is bounded by kHamtLeafMaxBytes as well
// as by kHamtLeafMax items. 100 entries of 60-100 KiB (about 8 MiB; one leaf
// of 8 MiB by the count alone) split into nodes each within the bound, and
// the shape stays canonical: one-by-one inserts, removals back down to one
// leaf, and batches that grow and shrink the xattrs all give what Build gives
// for the same set.
TEST(DirTreeTest, LargeXattrsSplitLeavesByBytesCanonically) {
  Env env;
  auto names = RandomNames(100, 4242);
  std::map<std::string, size_t> kib;  // name -> KiB of xattrs
  std::mt19937_64 rng(4242);
  std::vector<Entry> entries;
  for (const auto& n : names) {
    kib[n] = 60 + rng() % 41;
    entries.push_back(HeavyEntry(n, kib[n]));
  }
  HFS_ASSERT_OK_AND_ASSIGN(Digest built, dir_tree::Build(*env.w, entries));
  auto [nodes, leaves] = CheckNodeSizes(env.get(), built);
  HFS_ASSERT_OK_AND_ASSIGN(DirNode top, LoadNode(env.get(), built));
  EXPECT_FALSE(top.leaf) << "100 entries, 8 MiB: split by bytes, not one leaf";
  EXPECT_GE(leaves, 2u);
  EXPECT_GT(nodes, leaves);
  HFS_ASSERT_OK_AND_ASSIGN(auto listed, dir_tree::ListSorted(env.get(), built));
  ASSERT_EQ(listed.size(), entries.size());
  for (const auto& e : listed) {
    HFS_ASSERT_OK_AND_ASSIGN(auto found, dir_tree::Lookup(env.get(), built, e.name));
    ASSERT_TRUE(found.has_value()) << e.name;
    EXPECT_TRUE(*found == HeavyEntry(e.name, kib[e.name]));
  }

  // One at a time from empty, in another order.
  auto order = names;
  std::shuffle(order.begin(), order.end(), rng);
  HFS_ASSERT_OK_AND_ASSIGN(Digest root, dir_tree::Empty(*env.w));
  for (const auto& n : order) {
    HFS_ASSERT_OK_AND_ASSIGN(root, dir_tree::Apply(*env.w, root, {{n, HeavyEntry(n, kib[n])}}));
  }
  EXPECT_EQ(root.Hex(), built.Hex()) << "one-by-one inserts differ from Build";

  // Removed one at a time: each step equals Build of what is left, down to
  // one leaf again once the rest fits in kHamtLeafMaxBytes.
  std::map<std::string, size_t> left = kib;
  bool became_leaf = false;
  for (size_t i = 0; i < order.size(); i++) {
    HFS_ASSERT_OK_AND_ASSIGN(root, dir_tree::Apply(*env.w, root, {{order[i], std::nullopt}}));
    left.erase(order[i]);
    if (i % 7 != 6 && left.size() > 40) continue;  // Build every step only near the end
    std::vector<Entry> rest;
    for (const auto& [n, k] : left) rest.push_back(HeavyEntry(n, k));
    HFS_ASSERT_OK_AND_ASSIGN(Digest want, dir_tree::Build(*env.w, rest));
    ASSERT_EQ(root.Hex(), want.Hex()) << "after removing " << i + 1;
    CheckNodeSizes(env.get(), root);
    HFS_ASSERT_OK_AND_ASSIGN(DirNode n, LoadNode(env.get(), root));
    if (n.leaf) became_leaf = true;
    size_t bytes = 0;
    for (const auto& [name, k] : left) bytes += k << 10;
    if (bytes > kHamtLeafMaxBytes) {
      EXPECT_FALSE(n.leaf) << left.size() << " entries, " << bytes << " bytes";
    }
  }
  EXPECT_TRUE(became_leaf);

  // Batches that grow some entries' xattrs, shrink others to none, insert and
  // remove: an internal node with few items but many bytes, collapsing when
  // the bytes shrink.
  std::map<std::string, size_t> model;
  for (size_t i = 0; i < 30; i++) model[names[i]] = 100;  // 3 MiB: one leaf
  std::vector<Entry> start;
  for (const auto& [n, k] : model) start.push_back(HeavyEntry(n, k));
  HFS_ASSERT_OK_AND_ASSIGN(root, dir_tree::Build(*env.w, start));
  HFS_ASSERT_OK_AND_ASSIGN(DirNode first, LoadNode(env.get(), root));
  EXPECT_TRUE(first.leaf);
  bool split = false, collapsed = false;  // the root became internal; a leaf again after that
  for (int round = 0; round < 30; round++) {
    std::vector<DirEdit> edits;
    std::set<std::string> touched;
    for (int j = 0; j < 6; j++) {
      const std::string& n = names[rng() % 80];
      if (!touched.insert(n).second) continue;
      // The first 12 rounds mostly grow xattrs (past 4 MiB: the root
      // splits), the last 18 mostly shrink or remove them (it collapses).
      const bool grow = round < 12;
      int op = static_cast<int>(rng() % 8);
      if ((grow ? op == 0 : op < 3) && model.count(n)) {
        model.erase(n);
        edits.push_back({n, std::nullopt});
      } else {
        size_t k = grow == (op < 6) ? 80 + rng() % 21 : 0;  // 0: no xattrs at all
        model[n] = k;
        edits.push_back({n, k ? HeavyEntry(n, k, round) : SmallEntry(n, round)});
      }
    }
    HFS_ASSERT_OK_AND_ASSIGN(root, dir_tree::Apply(*env.w, root, edits));
    // The model records the version of each entry only through `round`, so
    // rebuild from what the tree lists and compare it with the model.
    HFS_ASSERT_OK_AND_ASSIGN(auto now, dir_tree::ListSorted(env.get(), root));
    ASSERT_EQ(now.size(), model.size()) << "round " << round;
    for (const auto& e : now) {
      size_t have = XattrBytes(e.inode.xattrs) >> 10;  // names add 12 bytes
      EXPECT_EQ(have, model[e.name]) << e.name;
    }
    HFS_ASSERT_OK_AND_ASSIGN(Digest want, dir_tree::Build(*env.w, now));
    ASSERT_EQ(root.Hex(), want.Hex()) << "round " << round;
    CheckNodeSizes(env.get(), root);
    HFS_ASSERT_OK_AND_ASSIGN(DirNode r, LoadNode(env.get(), root));
    EXPECT_LE(model.size(), kHamtLeafMax);
    if (!r.leaf) split = true;
    if (split && r.leaf) collapsed = true;
  }
  EXPECT_TRUE(split && collapsed) << "the batches should split the root by bytes, then collapse it";
}

// A cache of decoded nodes changes no byte: random batches of edits applied
// with and without one give the same roots, lookups agree, and the cache is
// used (later batches find the leaves the earlier ones wrote).
TEST(DirNodeCacheTest, SameRootsWithAndWithoutCacheAndItIsUsed) {
  Env env;
  DirNodeCache cache(64u << 20);
  auto names = RandomNames(3000, 77);
  std::mt19937_64 rng(78);
  Digest plain, cached;
  HFS_ASSERT_OK_AND_ASSIGN(plain, dir_tree::Empty(*env.w));
  cached = plain;
  for (int round = 0; round < 60; round++) {
    std::vector<DirEdit> edits;
    size_t n = 1 + rng() % 120;
    for (size_t i = 0; i < n; i++) {
      const std::string& x = names[rng() % names.size()];
      if (rng() % 4 == 0) edits.push_back({x, std::nullopt});
      else edits.push_back({x, SmallEntry(x, static_cast<int>(rng() % 5))});
    }
    HFS_ASSERT_OK_AND_ASSIGN(plain, dir_tree::Apply(*env.w, plain, edits));
    HFS_ASSERT_OK_AND_ASSIGN(cached, dir_tree::Apply(*env.w, cached, edits, &cache));
    ASSERT_EQ(plain, cached) << "round " << round;
    for (int k = 0; k < 5; k++) {
      const std::string& x = names[rng() % names.size()];
      HFS_ASSERT_OK_AND_ASSIGN(auto a, dir_tree::Lookup(env.get(), plain, x));
      HFS_ASSERT_OK_AND_ASSIGN(auto b, dir_tree::Lookup(env.get(), cached, x, &cache));
      EXPECT_EQ(a, b) << x;
    }
  }
  EXPECT_GT(cache.hits(), 100u);
}

// The cache holds about max_bytes: nodes past it are dropped, least recently
// used first, and a node too large for it is not kept.
TEST(DirNodeCacheTest, BoundedLeastRecentlyUsedFirst) {
  DirNodeCache cache(40000);  // room for about 9 nodes of 1,000 encoded bytes
  auto digest = [](int i) { return Sha256Of("node " + std::to_string(i)); };
  for (int i = 0; i < 20; i++) {
    DirNode n;
    n.entries.push_back(SmallEntry("n" + std::to_string(i)));
    cache.Insert(digest(i), std::make_shared<const DirNode>(n), 1000);
    ASSERT_NE(cache.Find(digest(0)), nullptr) << "the most recently used node was dropped at " << i;
  }
  EXPECT_NE(cache.Find(digest(19)), nullptr);
  EXPECT_EQ(cache.Find(digest(1)), nullptr);
  EXPECT_EQ(cache.Find(digest(10)), nullptr);
  cache.Insert(digest(100), std::make_shared<const DirNode>(), 20000);
  EXPECT_EQ(cache.Find(digest(100)), nullptr);
  auto n19 = cache.Find(digest(19));
  ASSERT_NE(n19, nullptr);
  EXPECT_EQ(n19->entries.at(0).name, "n19");
}

TEST(DirTreeTest, ShrinkDeepTreeCollapses) {
  Env env;
  auto names = RandomNames(20000, 41);
  HFS_ASSERT_OK_AND_ASSIGN(Digest root, dir_tree::Build(*env.w, EntriesFor(names)));
  std::vector<DirEdit> rm;
  for (size_t i = 100; i < names.size(); i++) rm.push_back({names[i], std::nullopt});
  HFS_ASSERT_OK_AND_ASSIGN(Digest small, dir_tree::Apply(*env.w, root, rm));
  std::vector<std::string> keep(names.begin(), names.begin() + 100);
  HFS_ASSERT_OK_AND_ASSIGN(Digest built, dir_tree::Build(*env.w, EntriesFor(keep)));
  EXPECT_EQ(small, built);
}

TEST(DirTreeTest, NoOpEditsKeepTheDigest) {
  Env env;
  auto names = RandomNames(2000, 51);
  HFS_ASSERT_OK_AND_ASSIGN(Digest root, dir_tree::Build(*env.w, EntriesFor(names)));
  HFS_ASSERT_OK_AND_ASSIGN(Digest same, dir_tree::Apply(*env.w, root, {}));
  EXPECT_EQ(same, root);
  HFS_ASSERT_OK_AND_ASSIGN(same, dir_tree::Apply(*env.w, root, {{"not-present", std::nullopt}}));
  EXPECT_EQ(same, root);
  HFS_ASSERT_OK_AND_ASSIGN(same, dir_tree::Apply(*env.w, root, {{names[5], SmallEntry(names[5])}}));
  EXPECT_EQ(same, root);
}

// Several edits of one name in one Apply: the last one wins (as the leaf path
// applies them in order). Checked both for a leaf root and for a name that
// falls into an empty slot of an internal node (a new child).
TEST(DirTreeTest, RepeatedEditsOfOneNameLastWins) {
  // Names avoiding top nibble 0, so slot 0 of the internal root is empty.
  std::vector<std::string> names;
  std::string slot0;
  for (int i = 0; names.size() < 600 || slot0.empty(); i++) {
    std::string s = "n" + std::to_string(i);
    if (TopNibble(s) != 0) {
      if (names.size() < 600) names.push_back(s);
    } else if (slot0.empty()) {
      slot0 = s;
    }
  }
  for (bool internal : {false, true}) {
    SCOPED_TRACE(internal ? "internal root, empty slot" : "leaf root");
    Env env;
    std::vector<std::string> base = names;
    if (!internal) base.resize(10);
    HFS_ASSERT_OK_AND_ASSIGN(Digest root, dir_tree::Build(*env.w, EntriesFor(base)));
    HFS_ASSERT_OK_AND_ASSIGN(DirNode rn, LoadNode(env.get(), root));
    ASSERT_EQ(rn.leaf, !internal);
    if (internal) {
      ASSERT_EQ(rn.bitmap & 1u, 0u);
    }

    // insert then remove: nothing changes.
    HFS_ASSERT_OK_AND_ASSIGN(Digest r1,
                             dir_tree::Apply(*env.w, root, {{slot0, SmallEntry(slot0)}, {slot0, std::nullopt}}));
    HFS_ASSERT_OK_AND_ASSIGN(auto found, dir_tree::Lookup(env.get(), r1, slot0));
    EXPECT_FALSE(found.has_value()) << "insert followed by remove left the entry in place";
    EXPECT_EQ(r1, root);

    // insert v1 then v2: v2 is stored.
    HFS_ASSERT_OK_AND_ASSIGN(Digest r2, dir_tree::Apply(*env.w, root,
                                                        {{slot0, SmallEntry(slot0, 1)}, {slot0, SmallEntry(slot0, 2)}}));
    HFS_ASSERT_OK_AND_ASSIGN(found, dir_tree::Lookup(env.get(), r2, slot0));
    ASSERT_TRUE(found.has_value());
    EXPECT_EQ(*found, SmallEntry(slot0, 2));
  }
}

// -------------------------------------------------------------- O(log n) writes

TEST(DirTreeTest, OneEditInHugeDirectoryWritesLogarithmicBytes) {
  MemoryStore store;
  ObjectWriter w(store, /*zstd_level=*/1);
  auto names = RandomNames(100000, 61);
  std::vector<Entry> entries;
  entries.reserve(names.size());
  for (size_t i = 0; i < names.size(); i++) entries.push_back(FileEntry(names[i], i));
  HFS_ASSERT_OK_AND_ASSIGN(Digest root, dir_tree::Build(w, entries));
  const WriterStats full = w.stats();
  ASSERT_GT(full.stored_bytes_added, 1000000u);

  auto delta_for = [&](std::vector<DirEdit> edits, Digest* out) {
    WriterStats before = w.stats();
    auto r = dir_tree::Apply(w, root, std::move(edits));
    EXPECT_TRUE(r.ok()) << r.status().ToString();
    if (r.ok()) *out = *r;
    WriterStats after = w.stats();
    return std::make_pair(after.stored_bytes_added - before.stored_bytes_added,
                          after.objects_added - before.objects_added);
  };
  Digest r;
  auto [ins_bytes, ins_objs] = delta_for({{"brand-new-file", FileEntry("brand-new-file", 1)}}, &r);
  EXPECT_LT(ins_bytes, full.stored_bytes_added / 20) << "insert rewrote " << ins_bytes << " of " << full.stored_bytes_added;
  EXPECT_LE(ins_objs, 4u) << "one path of nodes";
  EXPECT_GE(ins_objs, 2u);
  HFS_ASSERT_OK_AND_ASSIGN(auto found, dir_tree::Lookup(GetterFor(w), r, "brand-new-file"));
  EXPECT_TRUE(found.has_value());

  auto [rep_bytes, rep_objs] = delta_for({{names[777], FileEntry(names[777], 999999)}}, &r);
  EXPECT_LT(rep_bytes, full.stored_bytes_added / 20);
  EXPECT_LE(rep_objs, 4u);

  auto [rm_bytes, rm_objs] = delta_for({{names[12345], std::nullopt}}, &r);
  EXPECT_LT(rm_bytes, full.stored_bytes_added / 20);
  EXPECT_LE(rm_objs, 4u);
  HFS_ASSERT_OK_AND_ASSIGN(found, dir_tree::Lookup(GetterFor(w), r, names[12345]));
  EXPECT_FALSE(found.has_value());
}

// ------------------------------------------------------------- hostile input

TEST(DirTreeHostileTest, MissingChildIsAnErrorNotACrash) {
  Env env;
  auto names = RandomNames(3000, 71);
  HFS_ASSERT_OK_AND_ASSIGN(Digest root, dir_tree::Build(*env.w, EntriesFor(names)));
  HFS_ASSERT_OK(env.w->Flush());
  HFS_ASSERT_OK_AND_ASSIGN(DirNode rn, LoadNode(env.get(), root));
  ASSERT_FALSE(rn.leaf);
  // Point the first child at an object that does not exist.
  DirNode bad = rn;
  bad.children[0].first = Sha256Of("no such node");
  HFS_ASSERT_OK_AND_ASSIGN(Digest bad_root, env.w->Put(EncodeDirNode(bad), ObjectKind::kMeta));
  HFS_ASSERT_OK(env.w->Flush());
  ObjectGetter get = GetterFor(*env.store);

  int first_slot = std::countr_zero(static_cast<unsigned>(bad.bitmap));
  std::string in_missing, in_present;
  for (const auto& n : names) {
    if (TopNibble(n) == first_slot && in_missing.empty()) in_missing = n;
    if (TopNibble(n) != first_slot && in_present.empty()) in_present = n;
  }
  ASSERT_FALSE(in_missing.empty());
  auto l = dir_tree::Lookup(get, bad_root, in_missing);
  EXPECT_EQ(l.status().code(), Status::Code::kNotFound) << l.status().ToString();
  auto l2 = dir_tree::Lookup(get, bad_root, in_present);
  ASSERT_TRUE(l2.ok()) << l2.status().ToString();
  EXPECT_TRUE(l2->has_value());

  Status fe = dir_tree::ForEach(get, bad_root, [](const Entry&) { return Status::Ok(); });
  EXPECT_EQ(fe.code(), Status::Code::kNotFound) << fe.ToString();
  EXPECT_EQ(dir_tree::ListSorted(get, bad_root).status().code(), Status::Code::kNotFound);
  Status fn = dir_tree::ForEachNode(get, bad_root, [](const Digest&) { return Status::Ok(); });
  EXPECT_EQ(fn.code(), Status::Code::kNotFound) << fn.ToString();
  auto ap = dir_tree::Apply(*env.w, bad_root, {{in_missing, std::nullopt}});
  EXPECT_FALSE(ap.ok());
  // A missing root.
  auto lr = dir_tree::Lookup(get, Sha256Of("no root"), "x");
  EXPECT_EQ(lr.status().code(), Status::Code::kNotFound);
}

TEST(DirTreeHostileTest, CorruptOrWrongTypeChildIsCorruption) {
  Env env;
  auto names = RandomNames(1000, 81);
  HFS_ASSERT_OK_AND_ASSIGN(Digest root, dir_tree::Build(*env.w, EntriesFor(names)));
  HFS_ASSERT_OK(env.w->Flush());
  HFS_ASSERT_OK_AND_ASSIGN(DirNode rn, LoadNode(env.get(), root));
  ASSERT_FALSE(rn.leaf);

  // A child that is a valid object of another type (a file manifest node).
  FileNode fnode;
  fnode.refs = {{Sha256Of("x"), 1}};
  HFS_ASSERT_OK_AND_ASSIGN(Digest other, env.w->Put(EncodeFileNode(fnode), ObjectKind::kMeta));
  DirNode bad = rn;
  for (auto& c : bad.children) c.first = other;
  HFS_ASSERT_OK_AND_ASSIGN(Digest bad_root, env.w->Put(EncodeDirNode(bad), ObjectKind::kMeta));
  HFS_ASSERT_OK(env.w->Flush());
  ObjectGetter get = GetterFor(*env.store);
  EXPECT_EQ(dir_tree::Lookup(get, bad_root, names[0]).status().code(), Status::Code::kCorruption);
  EXPECT_EQ(dir_tree::ForEach(get, bad_root, [](const Entry&) { return Status::Ok(); }).code(),
            Status::Code::kCorruption);

  // A child whose stored bytes were damaged.
  Digest victim = rn.children[0].first;
  env.store->CorruptForTesting(victim, std::string(40, 'j'));
  Status st = dir_tree::ForEach(get, root, [](const Entry&) { return Status::Ok(); });
  EXPECT_EQ(st.code(), Status::Code::kCorruption) << st.ToString();
}

TEST(DirTreeHostileTest, TrieDeeperThanItsHashIsCorruption) {
  Env env;
  // 18 levels of internal nodes with all 16 children pointing one level down.
  HFS_ASSERT_OK_AND_ASSIGN(Digest d, env.w->Put(EncodeDirNode(DirNode{}), ObjectKind::kMeta));
  for (int level = 0; level < 18; level++) {
    DirNode n;
    n.leaf = false;
    n.bitmap = 0xffff;
    for (int i = 0; i < 16; i++) n.children.push_back({d, 1});
    HFS_ASSERT_OK_AND_ASSIGN(d, env.w->Put(EncodeDirNode(n), ObjectKind::kMeta));
  }
  auto l = dir_tree::Lookup(env.get(), d, "x");
  EXPECT_EQ(l.status().code(), Status::Code::kCorruption) << l.status().ToString();
  Status fe = dir_tree::ForEach(env.get(), d, [](const Entry&) { return Status::Ok(); });
  EXPECT_EQ(fe.code(), Status::Code::kCorruption) << fe.ToString();
  Status fn = dir_tree::ForEachNode(env.get(), d, [](const Digest&) { return Status::Ok(); });
  EXPECT_EQ(fn.code(), Status::Code::kCorruption) << fn.ToString();
}

// ------------------------------------------------------------------ link table

LinkRecord Rec(uint64_t id, uint32_t nlink = 2, int version = 0) {
  LinkRecord r;
  r.id = id;
  r.nlink = nlink;
  r.inode = FileEntry("link" + std::to_string(id), static_cast<uint64_t>(version)).inode;
  return r;
}

TEST(LinkTableTest, EmptyTableIsZeroDigest) {
  Env env;
  HFS_ASSERT_OK_AND_ASSIGN(Digest z, link_table::Build(*env.w, {}));
  EXPECT_TRUE(z.IsZero());
  HFS_ASSERT_OK_AND_ASSIGN(auto found, link_table::Lookup(env.get(), z, 1));
  EXPECT_FALSE(found.has_value());
  int visits = 0;
  HFS_ASSERT_OK(link_table::ForEach(env.get(), z, [&](const LinkRecord&) {
    visits++;
    return Status::Ok();
  }));
  HFS_ASSERT_OK(link_table::ForEachNode(env.get(), z, [&](const Digest&) {
    visits++;
    return Status::Ok();
  }));
  EXPECT_EQ(visits, 0);
  // Removing from the empty table stays empty.
  HFS_ASSERT_OK_AND_ASSIGN(Digest still, link_table::Apply(*env.w, z, {{5, std::nullopt}}));
  EXPECT_TRUE(still.IsZero());
}

TEST(LinkTableTest, BuildApplyLookup) {
  for (size_t n : {1u, 50u, 2000u}) {
    SCOPED_TRACE(n);
    Env env;
    std::vector<LinkRecord> recs;
    std::mt19937_64 rng(n);
    std::set<uint64_t> ids;
    while (ids.size() < n) ids.insert(rng() | 1);
    for (uint64_t id : ids) recs.push_back(Rec(id));
    auto shuffled = recs;
    std::shuffle(shuffled.begin(), shuffled.end(), rng);
    HFS_ASSERT_OK_AND_ASSIGN(Digest root, link_table::Build(*env.w, shuffled));
    EXPECT_FALSE(root.IsZero());
    for (const auto& r : recs) {
      HFS_ASSERT_OK_AND_ASSIGN(auto f, link_table::Lookup(env.get(), root, r.id));
      ASSERT_TRUE(f.has_value()) << r.id;
      EXPECT_EQ(*f, r);
    }
    HFS_ASSERT_OK_AND_ASSIGN(auto nf, link_table::Lookup(env.get(), root, 2));  // even ids are absent
    EXPECT_FALSE(nf.has_value());
    std::vector<LinkRecord> visited;
    HFS_ASSERT_OK(link_table::ForEach(env.get(), root, [&](const LinkRecord& r) {
      visited.push_back(r);
      return Status::Ok();
    }));
    std::sort(visited.begin(), visited.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
    EXPECT_TRUE(visited == recs);

    // Incremental inserts from the empty table equal Build.
    Digest inc = Digest::Zero();
    for (const auto& r : shuffled) {
      HFS_ASSERT_OK_AND_ASSIGN(inc, link_table::Apply(*env.w, inc, {{r.id, r}}));
    }
    EXPECT_EQ(inc, root);

    // Update one record's nlink, then remove every record one by one: the
    // table ends as the zero digest.
    HFS_ASSERT_OK_AND_ASSIGN(Digest upd, link_table::Apply(*env.w, root, {{recs[0].id, Rec(recs[0].id, 9)}}));
    HFS_ASSERT_OK_AND_ASSIGN(auto f0, link_table::Lookup(env.get(), upd, recs[0].id));
    ASSERT_TRUE(f0.has_value());
    EXPECT_EQ(f0->nlink, 9u);
    Digest cur = upd;
    for (size_t i = 0; i < shuffled.size(); i++) {
      HFS_ASSERT_OK_AND_ASSIGN(cur, link_table::Apply(*env.w, cur, {{shuffled[i].id, std::nullopt}}));
      if (i + 1 < shuffled.size()) {
        EXPECT_FALSE(cur.IsZero()) << i;
      }
    }
    EXPECT_TRUE(cur.IsZero()) << "removing the last record must give the zero digest";
  }
}

TEST(LinkTableTest, RemoveAllInOneBatchIsZero) {
  Env env;
  std::vector<LinkRecord> recs;
  std::vector<LinkEdit> rm;
  for (uint64_t id = 1; id <= 700; id++) {
    recs.push_back(Rec(id));
    rm.push_back({id, std::nullopt});
  }
  HFS_ASSERT_OK_AND_ASSIGN(Digest root, link_table::Build(*env.w, recs));
  HFS_ASSERT_OK_AND_ASSIGN(Digest z, link_table::Apply(*env.w, root, rm));
  EXPECT_TRUE(z.IsZero());
}

// As RepeatedEditsOfOneNameLastWins, for the empty-table fast path.
TEST(LinkTableTest, RepeatedEditsOfOneIdLastWins) {
  Env env;
  HFS_ASSERT_OK_AND_ASSIGN(Digest d, link_table::Apply(*env.w, Digest::Zero(), {{5, Rec(5)}, {5, std::nullopt}}));
  EXPECT_TRUE(d.IsZero()) << "insert followed by remove in one batch left a record";
  HFS_ASSERT_OK_AND_ASSIGN(Digest one, link_table::Build(*env.w, {Rec(1)}));
  HFS_ASSERT_OK_AND_ASSIGN(Digest d2, link_table::Apply(*env.w, one, {{5, Rec(5)}, {5, std::nullopt}}));
  EXPECT_EQ(d2, one);
}

}  // namespace
}  // namespace hashfs
