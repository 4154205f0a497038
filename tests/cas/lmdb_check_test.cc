// Tests for cas/lmdb_check.h: the structural check of data.mdb finds each
// kind of damage to LMDB's pages, passes every store LMDB wrote, and is what
// keeps a damaged store from crashing hashfs (LmdbStore::Open,
// CheckStructure).
#include "cas/lmdb_check.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cas/little_endian.h"
#include "cas/lmdb_store.h"
#include "cas/object_codec.h"
#include "tests/cas/cas_test_util.h"

namespace hashfs {
namespace {

using ::hashfs::testing::RandomBytes;
using ::hashfs::testing::TempDir;

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

LmdbCheckReport Check(const std::string& img, bool record_pages = true) {
  LmdbCheckOptions o;
  o.file_size = img.size();
  o.record_pages = record_pages;
  auto r = CheckLmdbFile(
      [&](uint64_t off, size_t n, char* out) -> Status {
        if (off > img.size() || n > img.size() - off) return Status::IOError("read past the end");
        std::memcpy(out, img.data() + off, n);
        return Status::Ok();
      },
      o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  return r.ok() ? *r : LmdbCheckReport{};
}

std::string Joined(const LmdbCheckReport& r) {
  std::string s;
  for (const auto& l : DescribeProblems(r)) s += l + "\n";
  return s;
}

// A store with what every table can hold: packed small objects, objects big
// enough for overflow pages, packs, refs, and a free list (after a sweep).
class LmdbCheckTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = tmp_.path() + "/store";
    LmdbOptions o;
    o.create_if_missing = true;
    auto s = LmdbStore::Open(dir_, o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    std::vector<PreparedObject> batch;
    for (int i = 0; i < 3000; i++) {
      batch.push_back(PrepareObject(RandomBytes(200 + i % 700, i), ObjectKind::kData, 3));
      if (batch.size() == 500) {
        CAS_ASSERT_OK((*s)->PutBatch(batch));
        batch.clear();
      }
    }
    for (int i = 0; i < 12; i++) batch.push_back(PrepareObject(RandomBytes(300 << 10, 10000 + i), ObjectKind::kData, 3));
    CAS_ASSERT_OK((*s)->PutBatch(batch));
    CAS_ASSERT_OK((*s)->Update([](RefTxn& t) -> Status {
      for (int i = 0; i < 60; i++) HASHFS_RETURN_IF_ERROR(t.Put("hist/v/" + std::to_string(1000 + i), std::string(40, 'x')));
      return Status::Ok();
    }));
    uint64_t deleted = 0;
    int n = 0;
    CAS_ASSERT_OK((*s)->Sweep([&](const Digest&, const ObjectInfo&) { return n++ % 3 == 0; },
                              [](RefTxn&) { return Status::Ok(); }, &deleted));
    ASSERT_GT(deleted, 900u);
    s->reset();
    img_ = ReadFile(dir_ + "/data.mdb");
    report_ = Check(img_);
    ASSERT_TRUE(report_.ok()) << Joined(report_);
    psize_ = report_.page_size;
  }

  // The first recorded page of `table` of `kind`.
  uint64_t PageOf(const std::string& table, LmdbPageUse::Kind kind) {
    for (const auto& p : report_.pages)
      if (p.table == table && p.kind == kind) return p.page;
    ADD_FAILURE() << "no such page in " << table;
    return 0;
  }
  char* At(std::string& img, uint64_t page, size_t off) { return img.data() + page * psize_ + off; }
  uint16_t Ptr(std::string& img, uint64_t page, int i) {
    return static_cast<uint16_t>(LoadLE(At(img, page, 16 + 2 * i), 2));
  }
  // The node of the main tree whose key is `name`.
  char* MainNode(std::string& img, const std::string& name) {
    uint64_t leaf = PageOf("main", LmdbPageUse::kLeaf);
    const size_t n = (LoadLE(At(img, leaf, 12), 2) - 16) / 2;
    for (size_t i = 0; i < n; i++) {
      char* node = At(img, leaf, Ptr(img, leaf, static_cast<int>(i)));
      if (std::string_view(node + 8, LoadLE(node + 6, 2)) == name) return node;
    }
    ADD_FAILURE() << "no table " << name;
    return nullptr;
  }

  TempDir tmp_;
  std::string dir_, img_;
  LmdbCheckReport report_;
  uint32_t psize_ = 0;
};

TEST_F(LmdbCheckTest, StoresLmdbWrotePass) {
  std::set<std::string> tables(report_.tables.begin(), report_.tables.end());
  EXPECT_EQ(tables, (std::set<std::string>{"meta", "objects", "packs", "refs"}));
  std::map<std::pair<std::string, int>, int> kinds;
  for (const auto& p : report_.pages) kinds[{p.table, p.kind}]++;
  EXPECT_GT((kinds[{"objects", LmdbPageUse::kBranch}]), 0);
  EXPECT_GT((kinds[{"objects", LmdbPageUse::kLeaf}]), 10);
  EXPECT_GT((kinds[{"objects", LmdbPageUse::kOverflow}]), 0);
  EXPECT_GT((kinds[{"packs", LmdbPageUse::kOverflow}]), 0);
  EXPECT_GT((kinds[{"free", LmdbPageUse::kLeaf}]), 0);
  EXPECT_GT(report_.pages_free, 0u);
  EXPECT_LE(report_.pages_reached + report_.pages_free, report_.pages_used);
  EXPECT_GT(report_.pages_reached + report_.pages_free, report_.pages_used * 9 / 10);

  // Through the store, beside a writer: clean, every time.
  auto s = LmdbStore::Open(dir_, LmdbOptions{});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  for (int round = 0; round < 20; round++) {
    CAS_ASSERT_OK((*s)->PutBatch(std::vector<PreparedObject>{
        PrepareObject(RandomBytes(100 + round, 50000 + round), ObjectKind::kData, 3)}));
    auto c = (*s)->CheckStructure();
    ASSERT_TRUE(c.ok()) << c.status().ToString();
    EXPECT_TRUE(c->problems.empty()) << c->problems[0];
    EXPECT_TRUE(c->walkable);
  }
}

TEST_F(LmdbCheckTest, NodeOffsetOutsideItsArea) {
  std::string img = img_;
  uint64_t leaf = PageOf("objects", LmdbPageUse::kLeaf);
  StoreLE(At(img, leaf, 16 + 2), 17, 2);  // node 1 at an odd offset inside the header
  auto r = Check(img);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(Joined(r).find("page " + std::to_string(leaf) + " (objects): node 1 at offset 17"), std::string::npos)
      << Joined(r);
  EXPECT_TRUE(r.TableDamaged("objects"));
  EXPECT_FALSE(r.TableDamaged("refs"));
}

TEST_F(LmdbCheckTest, ChildPageOutOfRange) {
  std::string img = img_;
  uint64_t branch = PageOf("objects", LmdbPageUse::kBranch);
  char* node = At(img, branch, Ptr(img, branch, 1));
  StoreLE(node, 0xffff, 2);
  StoreLE(node + 4, 0x1234, 2);  // the page number's top 16 bits
  auto r = Check(img);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(Joined(r).find("outside the " + std::to_string(report_.pages_used) + " pages in use"), std::string::npos)
      << Joined(r);
  EXPECT_TRUE(r.TableDamaged("objects"));
}

TEST_F(LmdbCheckTest, ChildPageReachedTwice) {
  std::string img = img_;
  uint64_t branch = PageOf("objects", LmdbPageUse::kBranch);
  char* n0 = At(img, branch, Ptr(img, branch, 0));
  char* n1 = At(img, branch, Ptr(img, branch, 1));
  std::memcpy(n1, n0, 6);  // node 1 points at node 0's child
  auto r = Check(img);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(Joined(r).find("which is reached twice"), std::string::npos) << Joined(r);
}

TEST_F(LmdbCheckTest, KeysOutOfOrder) {
  std::string img = img_;
  uint64_t leaf = PageOf("objects", LmdbPageUse::kLeaf);
  uint16_t p0 = Ptr(img, leaf, 0), p1 = Ptr(img, leaf, 1);
  StoreLE(At(img, leaf, 16), p1, 2);
  StoreLE(At(img, leaf, 18), p0, 2);
  auto r = Check(img);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(Joined(r).find("key is out of order"), std::string::npos) << Joined(r);
}

TEST_F(LmdbCheckTest, WrongPageNumberAndType) {
  std::string img = img_;
  uint64_t leaf = PageOf("refs", LmdbPageUse::kLeaf);
  StoreLE(At(img, leaf, 0), leaf + 1, 8);
  auto r = Check(img);
  EXPECT_NE(Joined(r).find("holds page number " + std::to_string(leaf + 1)), std::string::npos) << Joined(r);
  EXPECT_TRUE(r.TableDamaged("refs"));
  EXPECT_FALSE(r.TableDamaged("objects"));

  img = img_;
  StoreLE(At(img, leaf, 10), 0x01, 2);  // a branch where a leaf belongs
  r = Check(img);
  EXPECT_NE(Joined(r).find("page type 1 where a leaf page belongs"), std::string::npos) << Joined(r);
}

TEST_F(LmdbCheckTest, OverflowRunOfTheWrongLength) {
  std::string img = img_;
  uint64_t ov = PageOf("objects", LmdbPageUse::kOverflow);
  StoreLE(At(img, ov, 12), LoadLE(At(img, ov, 12), 4) + 1, 4);
  auto r = Check(img);
  EXPECT_NE(Joined(r).find("has a wrong header"), std::string::npos) << Joined(r);
}

TEST_F(LmdbCheckTest, RecordCountsThatDisagreeWithTheTree) {
  std::string img = img_;
  char* node = MainNode(img, "objects");
  ASSERT_NE(node, nullptr);
  char* rec = node + 8 + LoadLE(node + 6, 2);
  StoreLE(rec + 32, LoadLE(rec + 32, 8) + 1, 8);  // md_entries
  auto r = Check(img);
  EXPECT_NE(Joined(r).find("(objects): its record counts"), std::string::npos) << Joined(r);
  EXPECT_NE(Joined(r).find("entries"), std::string::npos) << Joined(r);
}

TEST_F(LmdbCheckTest, PageBothFreeAndInUse) {
  std::string img = img_;
  uint64_t leaf = PageOf("free", LmdbPageUse::kLeaf);
  char* node = At(img, leaf, Ptr(img, leaf, 0));
  char* ids = node + 8 + LoadLE(node + 6, 2);
  if (LoadLE(node + 4, 2) & 1) ids = At(img, LoadLE(ids, 8), 16);  // the record is on overflow pages
  ASSERT_GE(LoadLE(ids, 8), 1u);
  const uint64_t in_use = PageOf("refs", LmdbPageUse::kLeaf);
  StoreLE(ids + 8, in_use, 8);
  auto r = Check(img);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(Joined(r).find("page " + std::to_string(in_use) + " is on the free list but in use"), std::string::npos)
      << Joined(r);
  EXPECT_TRUE(r.TableDamaged("free"));
  EXPECT_FALSE(r.TableDamaged("refs"));

  // Through the store: reported, but the trees can still be walked.
  WriteFile(dir_ + "/data.mdb", img);
  auto s = LmdbStore::Open(dir_, LmdbOptions{});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto c = (*s)->CheckStructure();
  ASSERT_TRUE(c.ok());
  ASSERT_FALSE(c->problems.empty());
  EXPECT_TRUE(c->walkable);
}

TEST_F(LmdbCheckTest, DamagedMainTreeIsRefusedAtOpen) {
  std::string img = img_;
  uint64_t main_leaf = PageOf("main", LmdbPageUse::kLeaf);
  StoreLE(At(img, main_leaf, 16), 3, 2);  // node 0 at an odd offset in the header
  WriteFile(dir_ + "/data.mdb", img);
  // Without the check, the mdb_dbi_open of Open read a node at a wild offset.
  auto s = LmdbStore::Open(dir_, LmdbOptions{});
  ASSERT_FALSE(s.ok());
  EXPECT_TRUE(s.status().IsCorruption()) << s.status().ToString();
  EXPECT_NE(s.status().message().find("data.mdb is damaged: data.mdb page " + std::to_string(main_leaf) + " (main)"),
            std::string::npos)
      << s.status().ToString();
}

TEST_F(LmdbCheckTest, ObjectsTreeDamageMakesTheStoreUnwalkable) {
  std::string img = img_;
  uint64_t leaf = PageOf("objects", LmdbPageUse::kLeaf);
  StoreLE(At(img, leaf, 14), psize_ + 2, 2);  // upper past the page
  WriteFile(dir_ + "/data.mdb", img);
  auto s = LmdbStore::Open(dir_, LmdbOptions{});
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  auto c = (*s)->CheckStructure();
  ASSERT_TRUE(c.ok());
  ASSERT_EQ(c->problems.size(), 1u);
  EXPECT_NE(c->problems[0].find("(objects): free-space bounds"), std::string::npos) << c->problems[0];
  EXPECT_FALSE(c->walkable);
}

// Seeded single-byte changes anywhere in the B-tree pages and overflow
// headers: the check never fails to run, and whenever it passes, LMDB can
// open the store and walk every object and ref without crashing (checked in
// a child process, so a crash shows as a signal).
TEST_F(LmdbCheckTest, RandomDamageIsFoundOrHarmless) {
  std::vector<std::pair<uint64_t, size_t>> spans;  // page, bytes of it to damage
  for (const auto& p : report_.pages) spans.push_back({p.page, p.kind == LmdbPageUse::kOverflow ? 16 : psize_});
  std::mt19937_64 rng(20261203);
  int found = 0, harmless = 0;
  // HASHFS_LMDB_FLIPS raises the count for a longer soak.
  const char* env = std::getenv("HASHFS_LMDB_FLIPS");
  const int rounds = env ? std::atoi(env) : 250;
  for (int i = 0; i < rounds; i++) {
    std::string img = img_;
    const auto& [page, len] = spans[rng() % spans.size()];
    const size_t off = page * psize_ + rng() % len;
    img[off] = static_cast<char>(img[off] ^ (1 + rng() % 255));
    auto r = Check(img, false);
    if (!r.ok()) {
      found++;
      continue;
    }
    WriteFile(dir_ + "/data.mdb", img);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto s = LmdbStore::Open(dir_, LmdbOptions{});
      if (!s.ok()) _exit(0);  // a clear refusal is fine too
      (void)(*s)->ForEachObject([&](const Digest& d, std::string_view) {
        (void)(*s)->Get(d);
        return Status::Ok();
      });
      (void)(*s)->View([](RefTxn& t) -> Status {
        (void)t.List("");
        return Status::Ok();
      });
      _exit(0);
    }
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(WIFEXITED(status)) << "byte " << off << " (page " << page << ") passed the check, then LMDB died of signal "
                                   << (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
    harmless++;
  }
  EXPECT_EQ(found + harmless, rounds);
  EXPECT_GT(found, rounds / 10) << "the check found too little to be meaningful";
}

TEST(LmdbCheckInputTest, ShortOrForeignFilesAreDamageNotErrors) {
  for (std::string img : {std::string(), std::string(100, 'x'), std::string(8192, '\0'), RandomBytes(16384, 7)}) {
    auto r = Check(img);
    EXPECT_FALSE(r.ok());
    EXPECT_TRUE(r.TableDamaged("objects"));
  }
}

}  // namespace
}  // namespace hashfs
