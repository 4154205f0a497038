// End-to-end tests of the hashfs binary on real trees and a real LMDB store.
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <gtest/gtest.h>
#include <lmdb.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "cas/lmdb_check.h"
#include "cas/little_endian.h"
#include "cas/object_codec.h"
#include "cas/pack_pointer.h"
#include "tests/test_util.h"

namespace {

using hashfs::DecodePackPointer;
using hashfs::IsPackPointer;
using hashfs::kStoredHeaderSize;
using hashfs::PackKey;

using hashfs_test::EnvU64;
using hashfs_test::Quote;
using hashfs_test::RandomBytes;
using hashfs_test::ReadFile;
using hashfs_test::RunResult;
using hashfs_test::WriteFile;

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/var/tmp/hashfs-cli-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    store_ = root_ + "/store";
    ASSERT_EQ(Hashfs({"init"}).code, 0);
  }
  void TearDown() override { std::system(("rm -rf " + Quote(root_)).c_str()); }

  RunResult Hashfs(const std::vector<std::string>& args) {
    std::string cmd = Quote(HASHFS_BINARY) + " --store " + Quote(store_);
    for (const auto& a : args) cmd += " " + Quote(a);
    return Shell(cmd);
  }
  static RunResult Shell(const std::string& cmd) { return hashfs_test::Shell(cmd); }
  nlohmann::json Json(const std::vector<std::string>& args) {
    RunResult r = Hashfs(args);
    EXPECT_EQ(r.code, 0) << r.err;
    return nlohmann::json::parse(r.out);
  }

  // A tree with every file type hashfs records.
  void MakeRichTree(const std::string& d) {
    ASSERT_EQ(mkdir(d.c_str(), 0755), 0);
    WriteFile(d + "/empty", "");
    WriteFile(d + "/small.txt", "hello world\n");
    WriteFile(d + "/big.bin", RandomBytes(9 << 20, 1));  // several chunks
    // Zeros over several maximal chunks (one zero chunk, repeated), a few
    // bytes in the middle, then more zeros and a tail.
    std::string sparse(9 << 20, '\0');
    sparse += "middle";
    sparse.resize(sparse.size() + (8 << 20), '\0');
    sparse += "tail";
    WriteFile(d + "/sparse", sparse);
    ASSERT_EQ(mkdir((d + "/sub").c_str(), 0750), 0);
    ASSERT_EQ(mkdir((d + "/sub/deeper").c_str(), 0700), 0);
    WriteFile(d + "/sub/deeper/file", "deep");
    ASSERT_EQ(chmod((d + "/sub/deeper/file").c_str(), 04755), 0);
    ASSERT_EQ(symlink("../small.txt", (d + "/sub/link").c_str()), 0);
    ASSERT_EQ(symlink("/etc/passwd", (d + "/abs-link").c_str()), 0);
    ASSERT_EQ(link((d + "/small.txt").c_str(), (d + "/sub/hard").c_str()), 0);
    ASSERT_EQ(link((d + "/small.txt").c_str(), (d + "/hard2").c_str()), 0);
    ASSERT_EQ(mkfifo((d + "/fifo").c_str(), 0640), 0);
    if (geteuid() == 0) {
      ASSERT_EQ(mknod((d + "/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
      ASSERT_EQ(mknod((d + "/blk").c_str(), S_IFBLK | 0600, makedev(7, 0)), 0);
      ASSERT_EQ(chown((d + "/sub/deeper/file").c_str(), 1234, 5678), 0);
      ASSERT_EQ(chmod((d + "/sub/deeper/file").c_str(), 04755), 0);
    }
    // xattrs (skipped silently where the filesystem lacks them)
    setxattr((d + "/small.txt").c_str(), "user.color", "blue", 4, 0);
    setxattr((d + "/sub").c_str(), "user.dir", "x", 1, 0);
    // A read-only directory with many files, so that restore's parallel
    // file writes must all land before its mode and times are set.
    ASSERT_EQ(mkdir((d + "/many").c_str(), 0755), 0);
    for (int i = 0; i < 300; i++) WriteFile(d + "/many/f" + std::to_string(i), RandomBytes(i * 97, 100 + i));
    ASSERT_EQ(mkdir((d + "/many/inner").c_str(), 0755), 0);
    WriteFile(d + "/many/inner/x", "x");
    struct timespec old[2] = {{900000000, 5}, {900000000, 5}};
    utimensat(AT_FDCWD, (d + "/many/inner").c_str(), old, 0);
    utimensat(AT_FDCWD, (d + "/many").c_str(), old, 0);
    ASSERT_EQ(chmod((d + "/many").c_str(), 0555), 0);
    struct timespec ts[2] = {{1000000000, 123456789}, {1000000000, 123456789}};
    utimensat(AT_FDCWD, (d + "/sub/deeper").c_str(), ts, 0);
    utimensat(AT_FDCWD, (d + "/sub/link").c_str(), ts, AT_SYMLINK_NOFOLLOW);
  }

  // path -> description of everything restore must reproduce.
  std::map<std::string, std::string> Describe(const std::string& top) {
    std::map<std::string, std::string> out;
    std::map<std::pair<dev_t, ino_t>, std::string> first_name;
    std::vector<std::string> stack = {""};
    while (!stack.empty()) {
      std::string rel = stack.back();
      stack.pop_back();
      std::string dir = rel.empty() ? top : top + "/" + rel;
      DIR* dp = opendir(dir.c_str());
      if (!dp) continue;
      while (auto* de = readdir(dp)) {
        std::string n = de->d_name;
        if (n == "." || n == "..") continue;
        std::string r = rel.empty() ? n : rel + "/" + n;
        std::string p = top + "/" + r;
        struct stat st;
        lstat(p.c_str(), &st);
        std::ostringstream d;
        d << std::oct << st.st_mode << std::dec << " " << st.st_uid << ":" << st.st_gid << " nlink=" << st.st_nlink;
        d << " mtime=" << st.st_mtim.tv_sec << "." << st.st_mtim.tv_nsec;
        if (S_ISREG(st.st_mode)) d << " size=" << st.st_size << " content=" << std::hash<std::string>{}(ReadFile(p));
        if (S_ISLNK(st.st_mode)) {
          char buf[4096];
          ssize_t l = readlink(p.c_str(), buf, sizeof buf);
          d << " -> " << std::string(buf, l > 0 ? l : 0);
        }
        if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) d << " rdev=" << major(st.st_rdev) << "," << minor(st.st_rdev);
        char names[4096];
        ssize_t nl = llistxattr(p.c_str(), names, sizeof names);
        for (ssize_t i = 0; i < nl;) {
          std::string xn(names + i);
          char val[1024];
          ssize_t vl = lgetxattr(p.c_str(), xn.c_str(), val, sizeof val);
          d << " x:" << xn << "=" << std::string(val, vl > 0 ? vl : 0);
          i += static_cast<ssize_t>(xn.size()) + 1;
        }
        if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
          auto key = std::make_pair(st.st_dev, st.st_ino);
          auto [it, inserted] = first_name.emplace(key, r);
          (void)inserted;
          // Names of one inode must map to one group: record the group's members.
          out["group:" + it->second] += r + ";";
        }
        out[r] = d.str();
        if (S_ISDIR(st.st_mode)) stack.push_back(r);
      }
      closedir(dp);
    }
    return out;
  }

  std::string root_, store_;
};

TEST_F(CliTest, BackupRestoreRoundTripEveryFileType) {
  std::string src = root_ + "/src";
  MakeRichTree(src);
  RunResult b = Hashfs({"backup", src, "--volume", "v", "--json"});
  ASSERT_EQ(b.code, 0) << b.err;
  auto j = nlohmann::json::parse(b.out);
  // empty, small.txt (3 names, one inode), big.bin, sparse, deeper/file, many/*
  EXPECT_EQ(j["files_new"], 5 + 301);
  std::string dst = root_ + "/dst";
  RunResult r = Hashfs({"restore", "v", dst});
  ASSERT_EQ(r.code, 0) << r.err;
  auto want = Describe(src), got = Describe(dst);
  EXPECT_EQ(want, got);
  // Sparse regions stay sparse.
  struct stat st;
  ASSERT_EQ(stat((dst + "/sparse").c_str(), &st), 0);
  EXPECT_LT(st.st_blocks * 512, 1 << 20);
}

TEST_F(CliTest, SecondIdenticalBackupAddsAlmostNothingAndInsertionAddsAboutOneChunk) {
  std::string src = root_ + "/src";
  ASSERT_EQ(mkdir(src.c_str(), 0755), 0);
  std::string big = RandomBytes(24 << 20, 7);
  WriteFile(src + "/big", big);
  for (int i = 0; i < 50; i++) WriteFile(src + "/f" + std::to_string(i), RandomBytes(5000, 100 + i));
  auto first = Json({"backup", src, "--volume", "v", "--json"});
  EXPECT_GT(first["bytes_added"].get<uint64_t>(), 24u << 20);
  auto second = Json({"backup", src, "--volume", "v", "--json"});
  EXPECT_EQ(second["files_unchanged"], 51);
  EXPECT_EQ(second["bytes_read"], 0);
  EXPECT_LT(second["bytes_added"].get<uint64_t>(), 64u << 10);
  // Insert 100 bytes in the middle of the big file.
  big.insert(12 << 20, std::string(100, 'x'));
  WriteFile(src + "/big", big);
  auto third = Json({"backup", src, "--volume", "v", "--json"});
  EXPECT_EQ(third["files_changed"], 1);
  // About one chunk (avg 1 MiB, max 4 MiB) plus metadata; far less than the file.
  EXPECT_LT(third["bytes_added"].get<uint64_t>(), 9u << 20);
  auto log = Json({"log", "v", "--json"});
  ASSERT_EQ(log.size(), 3u);
  // A fresh copy of the same data in another volume adds no chunks.
  std::string copy = root_ + "/copy";
  ASSERT_EQ(Shell("cp -a " + Quote(src) + " " + Quote(copy)).code, 0);
  auto fourth = Json({"backup", copy, "--volume", "w", "--json"});
  EXPECT_LT(fourth["bytes_added"].get<uint64_t>(), 64u << 10);
}

// An incremental backup reuses the previous tree of a directory whose entries
// all equal the previous ones. Every kind of change must still be seen, also
// those that keep a directory's entry count: a rename, a delete plus an
// add, a chmod, a change three levels down, a directory with hardlinks.
// After each backup, a restore must equal the source (content, type, mode,
// size, link count, mtime, symlink target).
TEST_F(CliTest, IncrementalBackupSeesEveryChangeBesideUnchangedDirectories) {
  std::string src = root_ + "/src";
  for (const char* d : {"", "/a", "/a/sub", "/a/sub/deep", "/b", "/c", "/quiet"})
    ASSERT_EQ(mkdir((src + d).c_str(), 0755), 0);
  for (int i = 0; i < 20; i++) {
    WriteFile(src + "/a/sub/deep/f" + std::to_string(i), "deep " + std::to_string(i));
    WriteFile(src + "/b/g" + std::to_string(i), "bee " + std::to_string(i));
    WriteFile(src + "/quiet/q" + std::to_string(i), "quiet " + std::to_string(i));
  }
  WriteFile(src + "/c/one", "linked");
  ASSERT_EQ(link((src + "/c/one").c_str(), (src + "/c/two").c_str()), 0);
  ASSERT_EQ(symlink("b/g1", (src + "/ln").c_str()), 0);
  auto listing = [&](const std::string& dir) {
    RunResult r = Shell("cd " + Quote(dir) + " && find . -printf '%p %y %m %s %n %T@ %l\\n' | LC_ALL=C sort");
    EXPECT_EQ(r.code, 0) << r.err;
    return r.out;
  };
  int round = 0;
  auto backup_and_check = [&](const std::string& what) {
    SCOPED_TRACE(what);
    auto j = Json({"backup", src, "--volume", "v", "--json"});
    std::string dest = root_ + "/restore" + std::to_string(round++);
    RunResult r = Hashfs({"restore", "v", dest});
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(Shell("diff -r --no-dereference " + Quote(src) + " " + Quote(dest)).code, 0);
    EXPECT_EQ(listing(dest), listing(src));
  };
  backup_and_check("first");
  backup_and_check("unchanged");
  ASSERT_EQ(rename((src + "/b/g3").c_str(), (src + "/b/renamed").c_str()), 0);
  backup_and_check("rename keeps the entry count");
  ASSERT_EQ(unlink((src + "/b/g4").c_str()), 0);
  WriteFile(src + "/b/added", "new");
  backup_and_check("delete plus add");
  ASSERT_EQ(unlink((src + "/b/g5").c_str()), 0);
  backup_and_check("delete only");
  ASSERT_EQ(chmod((src + "/a/sub/deep/f7").c_str(), 0600), 0);
  backup_and_check("chmod three levels down");
  WriteFile(src + "/a/sub/deep/f8", "deep 8 changed");
  struct timespec ts[2] = {{0, UTIME_OMIT}, {1'000'000, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, (src + "/a/sub").c_str(), ts, 0), 0);
  backup_and_check("content and a directory's mtime");
  WriteFile(src + "/c/two", "linked, changed");
  backup_and_check("hardlinked file changed");
  auto diff = Json({"diff", "v~1", "v", "--json"});
  std::set<std::string> paths;
  for (auto& e : diff) paths.insert(e["path"].get<std::string>());
  EXPECT_TRUE(paths.count("c/one") || paths.count("c/two")) << diff.dump();
  EXPECT_FALSE(paths.count("quiet")) << diff.dump();
}

TEST_F(CliTest, HistoryBrowseDiffSnapshotRevertForgetGc) {
  std::string src = root_ + "/src";
  ASSERT_EQ(mkdir(src.c_str(), 0755), 0);
  WriteFile(src + "/a", "one");
  WriteFile(src + "/b", "bee");
  ASSERT_EQ(Hashfs({"backup", src, "--volume", "v"}).code, 0);
  WriteFile(src + "/a", "two!");
  unlink((src + "/b").c_str());
  WriteFile(src + "/c", "sea");
  chmod((src + "/c").c_str(), 0600);
  ASSERT_EQ(Hashfs({"backup", src, "--volume", "v"}).code, 0);

  EXPECT_EQ(Hashfs({"cat", "v~1:a"}).out, "one");
  EXPECT_EQ(Hashfs({"cat", "v:a"}).out, "two!");
  auto ls = Json({"ls", "v", "--json"});
  ASSERT_EQ(ls.size(), 2u);
  EXPECT_EQ(ls[0]["name"], "a");
  EXPECT_EQ(ls[1]["name"], "c");
  EXPECT_EQ(ls[1]["mode"], 0600);

  auto diff = Json({"diff", "v~1", "v", "--json"});
  std::map<std::string, std::string> kinds;
  for (auto& e : diff) kinds[e["path"]] = e["kind"];
  EXPECT_EQ(kinds["a"], "modified");
  EXPECT_EQ(kinds["b"], "removed");
  EXPECT_EQ(kinds["c"], "added");

  ASSERT_EQ(Hashfs({"snapshot", "old", "v~1"}).code, 0);
  EXPECT_EQ(Hashfs({"snapshot", "old", "v"}).code, 1);  // exists
  EXPECT_EQ(Hashfs({"cat", "old:b"}).out, "bee");
  auto log = Json({"log", "v", "--json"});
  std::string id = log[1]["id"];
  EXPECT_EQ(Hashfs({"cat", id.substr(0, 10) + ":b"}).out, "bee");

  ASSERT_EQ(Hashfs({"revert", "v", "v~1"}).code, 0);
  EXPECT_EQ(Hashfs({"cat", "v:a"}).out, "one");
  EXPECT_EQ(Json({"log", "v", "--json"}).size(), 3u);  // history kept

  // Forget all but the head; the snapshot keeps v~1's data alive through gc.
  ASSERT_EQ(Hashfs({"forget", "v", "--keep-last", "1"}).code, 0);
  EXPECT_EQ(Json({"log", "v", "--json"}).size(), 1u);
  RunResult gc = Hashfs({"gc"});
  ASSERT_EQ(gc.code, 0) << gc.err;
  EXPECT_EQ(Hashfs({"cat", "old:b"}).out, "bee");
  EXPECT_EQ(Hashfs({"verify"}).code, 0);
}

// Flips one byte of the stored payload of every data chunk of `size` plain
// bytes, whether the chunk is a value of its own or in a pack.
void CorruptChunksOfSize(const std::string& store, uint64_t size) {
  MDB_env* env;
  ASSERT_EQ(mdb_env_create(&env), 0);
  mdb_env_set_maxdbs(env, 8);
  mdb_env_set_mapsize(env, 1ull << 30);
  ASSERT_EQ(mdb_env_open(env, store.c_str(), 0, 0600), 0);
  MDB_txn* txn;
  ASSERT_EQ(mdb_txn_begin(env, nullptr, 0, &txn), 0);
  MDB_dbi dbi, packs;
  ASSERT_EQ(mdb_dbi_open(txn, "objects", 0, &dbi), 0);
  ASSERT_EQ(mdb_dbi_open(txn, "packs", 0, &packs), 0);
  MDB_cursor* cur;
  ASSERT_EQ(mdb_cursor_open(txn, dbi, &cur), 0);
  MDB_val k, v;
  // Changed values by (database, key); packs are edited in place in a copy.
  std::map<std::pair<MDB_dbi, std::string>, std::string> changed;
  int flipped = 0;
  auto matches = [&](std::string_view val) {
    uint64_t plain = 0;
    for (int i = 7; i >= 0; i--) plain = plain << 8 | static_cast<uint8_t>(val[2 + i]);
    return val.size() > kStoredHeaderSize && val[1] == 0 && plain == size;
  };
  for (int rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
    std::string val(static_cast<char*>(v.mv_data), v.mv_size);
    if (IsPackPointer(val)) {
      auto p = DecodePackPointer(val);
      ASSERT_TRUE(p.ok());
      std::string pk = PackKey(p->pack);
      auto it = changed.find({packs, pk});
      if (it == changed.end()) {
        MDB_val kk{pk.size(), pk.data()}, pv;
        ASSERT_EQ(mdb_get(txn, packs, &kk, &pv), 0);
        it = changed.emplace(std::make_pair(packs, pk), std::string(static_cast<char*>(pv.mv_data), pv.mv_size)).first;
      }
      std::string& pack = it->second;
      ASSERT_LE(uint64_t{p->offset} + p->length, pack.size());
      if (matches(std::string_view(pack).substr(p->offset, p->length))) {
        pack[p->offset + p->length / 2] ^= 0x40;
        flipped++;
      }
    } else if (matches(val)) {
      val[val.size() / 2] ^= 0x40;
      flipped++;
      changed[{dbi, std::string(static_cast<char*>(k.mv_data), k.mv_size)}] = val;
    }
  }
  mdb_cursor_close(cur);
  for (auto& [where, val] : changed) {
    std::string key = where.second;
    MDB_val kk{key.size(), key.data()}, vv{val.size(), val.data()};
    ASSERT_EQ(mdb_put(txn, where.first, &kk, &vv, 0), 0);
  }
  ASSERT_EQ(mdb_txn_commit(txn), 0);
  mdb_env_close(env);
  ASSERT_GT(flipped, 0);
}

TEST_F(CliTest, CorruptChunkIsFoundByVerifyAndRestore) {
  std::string src = root_ + "/src";
  ASSERT_EQ(mkdir(src.c_str(), 0755), 0);
  ASSERT_EQ(mkdir((src + "/d").c_str(), 0755), 0);
  WriteFile(src + "/d/victim", RandomBytes(77777, 3));
  WriteFile(src + "/fine", RandomBytes(5000, 4));
  ASSERT_EQ(Hashfs({"backup", src, "--volume", "v"}).code, 0);
  CorruptChunksOfSize(store_, 77777);
  RunResult ver = Hashfs({"verify"});
  EXPECT_EQ(ver.code, 4);
  EXPECT_NE(ver.out.find("d/victim"), std::string::npos) << ver.out;
  RunResult cat = Hashfs({"cat", "v:d/victim"});
  EXPECT_EQ(cat.code, 1);
  EXPECT_TRUE(cat.out.empty());  // never wrong bytes
  std::string dst = root_ + "/dst";
  RunResult r = Hashfs({"restore", "v", dst});
  EXPECT_EQ(r.code, 3);
  EXPECT_NE(r.err.find("d/victim"), std::string::npos) << r.err;
  EXPECT_EQ(ReadFile(dst + "/fine"), ReadFile(src + "/fine"));
}

// Damage to LMDB's own pages (which carry no checksums): a node of the
// objects tree claims duplicates in a table without them, and liblmdb then
// follows a null cursor; hashfs must report it, never die of it.
TEST_F(CliTest, DamagedStoreFileIsReportedNotCrashedOn) {
  std::string src = root_ + "/src";
  ASSERT_EQ(mkdir(src.c_str(), 0755), 0);
  for (int i = 0; i < 400; i++) WriteFile(src + "/f" + std::to_string(i), RandomBytes(100 + i, 1000 + i));
  ASSERT_EQ(Hashfs({"backup", src, "--volume", "v"}).code, 0);

  std::string img = ReadFile(store_ + "/data.mdb");
  hashfs::LmdbCheckOptions o;
  o.file_size = img.size();
  o.record_pages = true;
  auto clean = hashfs::CheckLmdbFile(
      [&](uint64_t off, size_t n, char* out) {
        std::memcpy(out, img.data() + off, n);
        return hashfs::Status::Ok();
      },
      o);
  ASSERT_TRUE(clean.ok() && clean->ok());
  uint64_t leaf = 0;
  for (const auto& p : clean->pages)
    if (p.table == "objects" && p.kind == hashfs::LmdbPageUse::kLeaf) leaf = p.page;
  ASSERT_NE(leaf, 0u);
  const uint64_t page = leaf * clean->page_size;
  const uint64_t node = page + hashfs::LoadLE(img.data() + page + 16 + 2, 2);  // node 1
  hashfs::StoreLE(img.data() + node + 4, 0x04, 2);  // F_DUPDATA in a table without duplicates
  WriteFile(store_ + "/data.mdb", img);

  RunResult ver = Hashfs({"verify"});
  EXPECT_EQ(ver.code, 4) << ver.err;
  EXPECT_NE(ver.out.find("damaged store file: data.mdb page " + std::to_string(leaf) + " (objects): node 1 has flags 4"),
            std::string::npos)
      << ver.out;
  EXPECT_NE(ver.out.find("objects and references not checked"), std::string::npos) << ver.out;
  EXPECT_NE(ver.out.find("checked the store file only: DAMAGE FOUND"), std::string::npos) << ver.out;
  RunResult json = Hashfs({"verify", "--json"});
  EXPECT_EQ(json.code, 4);
  auto j = nlohmann::json::parse(json.out, nullptr, false);
  ASSERT_FALSE(j.is_discarded()) << json.out;
  EXPECT_EQ(j["ok"], false);
  ASSERT_EQ(j["store_damage"].size(), 1u) << json.out;
  EXPECT_EQ(j["objects_checked"], 0);
  RunResult gc = Hashfs({"gc"});
  EXPECT_EQ(gc.code, 4) << gc.err;
  EXPECT_NE(gc.err.find("gc does not write to a damaged store"), std::string::npos) << gc.err;
  // stats walks the objects through liblmdb, which faults on that node.
  RunResult stats = Hashfs({"stats"});
  EXPECT_EQ(stats.code, 4) << stats.err;
  EXPECT_EQ(stats.err,
            "hashfs: memory fault inside LMDB while reading the store: its data.mdb is damaged (LMDB keeps no "
            "checksums); 'hashfs verify' names the damaged pages\n");
}

TEST_F(CliTest, UnreadableFilesAreReportedAndSkipped) {
  // Runs the backup as an unprivileged user so permissions apply.
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch to an unprivileged uid";
  if (Shell("command -v setpriv").code != 0) GTEST_SKIP() << "setpriv not installed";
  std::string src = root_ + "/src";
  ASSERT_EQ(mkdir(src.c_str(), 0755), 0);
  WriteFile(src + "/ok", "readable");
  WriteFile(src + "/secret", "unreadable");
  ASSERT_EQ(chmod((src + "/secret").c_str(), 0), 0);
  ASSERT_EQ(Shell("chown -R 65534:65534 " + Quote(root_)).code, 0);
  ASSERT_EQ(chown((src + "/secret").c_str(), 0, 0), 0);
  RunResult r = Shell("setpriv --reuid=65534 --regid=65534 --clear-groups " + Quote(HASHFS_BINARY) +
                      " --store " + Quote(store_) + " backup " + Quote(src) + " --volume v");
  EXPECT_EQ(r.code, 3) << r.err;
  EXPECT_NE(r.err.find("secret"), std::string::npos) << r.err;
  EXPECT_EQ(Hashfs({"cat", "v:ok"}).out, "readable");
  EXPECT_EQ(Hashfs({"cat", "v:secret"}).code, 1);
}

// A process holding a remote's secrets is not dumpable: no core dump, and no
// ptrace or /proc/PID/mem by other processes of the same user, can expose
// them. Observable from outside: the files under /proc/PID (environ, mem,
// ...) of a non-dumpable process belong to root, not to the user it runs as. The command blocks
// reading its passphrase from a FIFO while the test looks.
TEST_F(CliTest, ProcessesHoldingSecretsAreNotDumpable) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch to an unprivileged uid";
  ASSERT_EQ(Shell("chown -R 65534:65534 " + Quote(root_)).code, 0);
  std::string fifo = root_ + "/pass.fifo", token = root_ + "/token";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  WriteFile(token, "a-token\n");
  ASSERT_EQ(chown(fifo.c_str(), 65534, 65534), 0);
  ASSERT_EQ(chown(token.c_str(), 65534, 65534), 0);
  for (bool token_in_env : {true, false}) {
    SCOPED_TRACE(token_in_env ? "token in $HASHFS_DISCORD_TOKEN" : "token from --token-file");
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(126);
      if (token_in_env)
        setenv("HASHFS_DISCORD_TOKEN", "a-token", 1);
      else
        unsetenv("HASHFS_DISCORD_TOKEN");
      unsetenv("HASHFS_PASSWORD");
      int null_fd = open("/dev/null", O_RDWR);
      dup2(null_fd, 0);
      dup2(null_fd, 1);
      dup2(null_fd, 2);
      std::vector<std::string> args = {HASHFS_BINARY, "--store", store_, "remote", "add", "origin", "discord",
                                       "--channel", "1", "--api-url", "http://127.0.0.1:9/api/v10",
                                       "--password-file", fifo};
      if (!token_in_env) args.insert(args.end(), {"--token-file", token});
      std::vector<char*> argv;
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(HASHFS_BINARY, argv.data());
      _exit(127);
    }
    // Wait until it reads the passphrase (a writer can open the FIFO once a
    // reader is in open()): by then it holds the token. It runs as 65534; if
    // it is non-dumpable its /proc/PID/environ is root's.
    int wfd = -1;
    for (int i = 0; i < 400 && wfd < 0; i++) {
      wfd = open(fifo.c_str(), O_WRONLY | O_NONBLOCK | O_CLOEXEC);
      if (wfd < 0) usleep(25 * 1000);
    }
    ASSERT_GE(wfd, 0) << "the command never opened its passphrase file";
    struct stat st {};
    std::string status_text = ReadFile("/proc/" + std::to_string(pid) + "/status");
    ASSERT_EQ(stat(("/proc/" + std::to_string(pid) + "/environ").c_str(), &st), 0);
    EXPECT_NE(status_text.find("Uid:\t65534"), std::string::npos) << status_text;
    EXPECT_EQ(st.st_uid, 0u) << "a process holding the Discord token is dumpable";
    close(wfd);
    int status = 0;
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
}

// kill -9 of a backup at a random point, repeatedly. Round 0 kills the first
// backup of 40 MiB after 5-400 ms. Each later round first rewrites 1-5 files
// and kills the backup after a random delay of up to 1.25 times what the same
// work took when it ran to completion, so kills land during the walk, the
// reads, the object writes, the commit, and after it. After each kill: the
// store opens and `verify` is clean; the head is the old head or a new commit
// whose parent is the old head (and then it restores to exactly the source);
// every head seen before is still in the history. If the head did not move, a
// recovery backup runs to completion (its duration calibrates the next kill)
// and must commit exactly the source. Every 25 rounds forget + gc bound the
// store. HASHFS_CRASH_ITERATIONS (default 8) rounds; HASHFS_CRASH_SEED
// (default 1234) seeds the changes and the delays (which also scale with
// measured durations, so a replay is close but not identical).
TEST_F(CliTest, KilledBackupLeavesPreviousHeadIntact) {
  const uint64_t rounds = EnvU64("HASHFS_CRASH_ITERATIONS", 8);
  const uint64_t seed = EnvU64("HASHFS_CRASH_SEED", 1234);
  SCOPED_TRACE("seed " + std::to_string(seed) + " (replay: HASHFS_CRASH_SEED=" + std::to_string(seed) +
               " HASHFS_CRASH_ITERATIONS=" + std::to_string(rounds) + ")");
  std::string src = root_ + "/src";
  ASSERT_EQ(mkdir(src.c_str(), 0755), 0);
  WriteFile(src + "/seed", "seed");
  ASSERT_EQ(Hashfs({"backup", src, "--volume", "v"}).code, 0);
  auto head = Json({"log", "v", "--json"})[0]["id"].get<std::string>();
  std::vector<std::string> heads = {head};  // every head seen (since the last forget)
  for (int i = 0; i < 40; i++) WriteFile(src + "/f" + std::to_string(i), RandomBytes(1 << 20, 50 + i));
  std::mt19937 rng(static_cast<uint32_t>(seed));
  double typical_ms = 100;  // a backup of one round's changes, run to completion
  uint64_t before_commit = 0, after_commit = 0, completed = 0;
  auto ms_since = [](std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  };
  // The head moved to a new commit: its parent is the old head and it holds exactly the source.
  auto check_new_head = [&](const nlohmann::json& log, const char* what) {
    EXPECT_EQ(log[0]["parent"], head) << what;
    head = log[0]["id"];
    heads.push_back(head);
    std::string dst = root_ + "/dst";
    RunResult r = Hashfs({"restore", "v", dst});
    EXPECT_EQ(r.code, 0) << r.err;
    EXPECT_EQ(Describe(src), Describe(dst)) << what << ": the new head differs from its source";
    Shell("rm -rf " + Quote(dst));
  };
  for (uint64_t round = 0; round < rounds; round++) {
    SCOPED_TRACE("round " + std::to_string(round));
    if (round > 0) {
      for (uint32_t k = 1 + rng() % 5; k > 0; k--)
        WriteFile(src + "/f" + std::to_string(rng() % 40), RandomBytes((256 << 10) + rng() % (2 << 20), rng()));
    }
    auto t0 = std::chrono::steady_clock::now();
    pid_t pid = fork();
    if (pid == 0) {
      int devnull = open("/dev/null", O_WRONLY);
      dup2(devnull, 1);
      dup2(devnull, 2);
      execl(HASHFS_BINARY, "hashfs", "--store", store_.c_str(), "backup", src.c_str(), "--volume", "v",
            static_cast<char*>(nullptr));
      _exit(127);
    }
    ASSERT_GT(pid, 0);
    const int delay_us =
        round == 0 ? std::uniform_int_distribution<int>(5000, 400000)(rng)
                   : std::uniform_int_distribution<int>(0, static_cast<int>(typical_ms * 1250))(rng);
    int st = 0;
    bool exited = false;
    while (!exited && std::chrono::steady_clock::now() - t0 < std::chrono::microseconds(delay_us)) {
      exited = waitpid(pid, &st, WNOHANG) == pid;
      if (!exited) std::this_thread::sleep_for(std::chrono::microseconds(500));
    }
    if (exited) {
      ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "backup failed on its own: status " << st;
      if (round > 0) typical_ms = 0.5 * typical_ms + 0.5 * ms_since(t0);
      completed++;
    } else {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
    }
    RunResult ver = Hashfs({"verify"});
    EXPECT_EQ(ver.code, 0) << ver.out << ver.err;
    auto log = Json({"log", "v", "--json"});
    ASSERT_FALSE(log.empty());
    // Either the backup finished (a new head whose parent is the old one) or not.
    if (log[0]["id"] != head) {
      if (!exited) after_commit++;
      check_new_head(log, "the killed or finished backup");
    } else {
      EXPECT_FALSE(exited) << "the backup exited 0 but the head did not move";
      before_commit++;
      // Recovery: the next backup runs to completion and commits the source.
      auto t1 = std::chrono::steady_clock::now();
      RunResult b = Hashfs({"backup", src, "--volume", "v"});
      ASSERT_EQ(b.code, 0) << "backup after a killed one: " << b.err;
      if (round > 0) typical_ms = 0.5 * typical_ms + 0.5 * ms_since(t1);
      log = Json({"log", "v", "--json"});
      ASSERT_NE(log[0]["id"], head) << "the backup after a killed one did not commit";
      check_new_head(log, "the backup after a killed one");
    }
    std::set<std::string> ids;
    for (auto& c : log) ids.insert(c["id"].get<std::string>());
    for (const auto& h : heads) {
      EXPECT_TRUE(ids.count(h)) << "head " << h << " vanished from the history";
    }
    if (HasFatalFailure() || (HasFailure() && rounds > 8)) break;
    if (round % 25 == 24) {  // keep the store small over hundreds of rounds
      ASSERT_EQ(Hashfs({"forget", "v", "--keep-last", "2"}).code, 0);
      ASSERT_EQ(Hashfs({"gc"}).code, 0);
      heads = {head};
    }
  }
  std::fprintf(stderr,
               "[crash] %llu rounds: %llu backups killed before their commit, %llu after it, %llu finished "
               "first; typical backup %.0f ms\n",
               static_cast<unsigned long long>(rounds), static_cast<unsigned long long>(before_commit),
               static_cast<unsigned long long>(after_commit), static_cast<unsigned long long>(completed),
               typical_ms);
  if (rounds >= 20) {
    EXPECT_GT(before_commit, rounds / 4) << "too few kills landed before the commit";
  }
}

TEST_F(CliTest, MisuseGivesOneLineAndDocumentedExitCode) {
  auto one_line = [](const RunResult& r) { return std::count(r.err.begin(), r.err.end(), '\n') == 1; };
  RunResult r = Hashfs({"backup"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(one_line(r)) << r.err;
  r = Hashfs({"frobnicate"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(one_line(r)) << r.err;
  r = Hashfs({"ls", "nosuchvolume"});
  EXPECT_EQ(r.code, 1);
  EXPECT_TRUE(one_line(r)) << r.err;
  r = Hashfs({"backup", root_, "--volume", "bad/name"});
  EXPECT_EQ(r.code, 2);
  EXPECT_TRUE(one_line(r)) << r.err;
  r = Hashfs({"init"});
  EXPECT_EQ(r.code, 1);  // already initialized
  r = Hashfs({"forget", "v"});
  EXPECT_EQ(r.code, 2);
  // Mount tuning out of range is refused before anything is mounted.
  for (std::vector<std::string> bad : {std::vector<std::string>{"--compression-level", "20"},
                                       {"--compression-level", "-1"},
                                       {"--dirty-limit", "0"},
                                       {"--dirty-limit", "lots"}}) {
    std::vector<std::string> args = {"mount", "v", root_};
    args.insert(args.end(), bad.begin(), bad.end());
    r = Hashfs(args);
    EXPECT_EQ(r.code, 2) << bad[0] << " " << bad[1];
    EXPECT_TRUE(one_line(r)) << r.err;
  }
  r = Shell(Quote(HASHFS_BINARY) + " --store " + Quote(root_ + "/nostore") + " log v");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("hashfs init"), std::string::npos);
  for (const char* cmd : {"init", "backup", "log", "snapshot", "snapshots", "volumes", "ls", "cat", "diff",
                          "restore", "revert", "forget", "gc", "verify", "stats"}) {
    r = Hashfs({cmd, "--help"});
    EXPECT_EQ(r.code, 0) << cmd;
    EXPECT_FALSE(r.out.empty()) << cmd;
  }
}

}  // namespace
