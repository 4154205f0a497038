// The inode table under eviction. The mount runs with a small --inode-cache,
// and the kernel is made to forget what it caches (drop_caches). Checked:
// - the table shrinks back (nodes and listings of forgotten entries go);
// - st_ino does not change through eviction, rename or remount, and readdir's
//   d_ino equals stat's st_ino;
// - distinct files never share a number, and hardlinks always do;
// - open files, files unlinked while open and uncommitted changes lose nothing;
// - a past commit's view numbers its files apart from the live tree.
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>

#include "fuse_test_util.h"

namespace fusetest {
namespace {

constexpr const char* kBudget = "64";

class InodeTableTest : public FuseTest {
 protected:
  bool MountInSetUp() const override { return false; }
  void SetUp() override {
    FuseTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    HASHFS_ONLY();
    ASSERT_TRUE(Mount(kVolume, mnt_, {"--inode-cache", kBudget}));
  }

  // Waits for pending changes to commit (fsyncdir commits everything).
  void Commit() {
    int fd = open(mnt_.c_str(), O_RDONLY | O_DIRECTORY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(fsync(fd), 0) << ErrName(errno);
    close(fd);
  }

  // Makes the kernel forget every dentry and inode it does not use, then,
  // after the mount's one-second sweep interval, sends a lookup so the mount
  // reaches a point where it sweeps.
  void Forget() {
    Commit();
    std::ofstream("/proc/sys/vm/drop_caches") << "2\n";
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    struct stat st;
    (void)lstat(P("no-such-name").c_str(), &st);
  }

  // Forget() until `done()` holds, at most five rounds, calling `refill()`
  // before each (the mount sweeps only over its budget). The kernel sends
  // FORGET and RELEASE without waiting for them, and the multithreaded loop
  // may run the sweeping lookup before the last of them: one round can leave
  // a node the next round frees. Returns whether `done()` came to hold.
  bool ForgetUntil(const std::function<bool()>& done, const std::function<void()>& refill = [] {}) {
    for (int round = 0; round < 5; round++) {
      refill();
      Forget();
      if (done()) return true;
    }
    return false;
  }

  uint64_t Diag(const char* name) {
    char buf[64];
    ssize_t n = getxattr(P(".hashfs").c_str(), name, buf, sizeof buf - 1);
    if (n < 0) {
      ADD_FAILURE() << "getxattr " << name << ": " << ErrName(errno);
      return 0;
    }
    buf[n] = '\0';
    return std::strtoull(buf, nullptr, 10);
  }

  // Every path below `dir` (relative to the mount) -> st_ino, checking that
  // readdir's d_ino equals lstat's st_ino for each.
  void Walk(const std::string& rel, std::map<std::string, ino_t>& out) {
    std::string dir = rel.empty() ? mnt_ : P(rel);
    DIR* d = opendir(dir.c_str());
    ASSERT_NE(d, nullptr) << dir << ": " << ErrName(errno);
    std::vector<std::pair<std::string, unsigned char>> names;
    while (dirent* e = readdir(d)) {
      std::string name = e->d_name;
      if (name == "..") continue;
      std::string path = rel.empty() ? name : rel + "/" + name;
      struct stat st;
      ASSERT_EQ(lstat((dir + "/" + name).c_str(), &st), 0) << path;
      EXPECT_EQ(e->d_ino, st.st_ino) << "d_ino != st_ino for " << path;
      if (name == ".") continue;
      out[path] = st.st_ino;
      names.emplace_back(name, e->d_type);
    }
    closedir(d);
    for (const auto& [name, type] : names)
      if (type == DT_DIR) Walk(rel.empty() ? name : rel + "/" + name, out);
  }
  std::map<std::string, ino_t> Numbers() {
    std::map<std::string, ino_t> m;
    Walk("", m);
    return m;
  }
};

TEST_F(InodeTableTest, NumbersSurviveEvictionRenameAndRemount) {
  // 6 directories of 300 files, one of them 1,500 (over the budget many
  // times), symlinks, a fifo, a hardlink pair, a nested directory.
  for (int d = 0; d < 6; d++) {
    std::string dir = P("d" + std::to_string(d));
    ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
    for (int f = 0; f < (d == 0 ? 1500 : 300); f++)
      ASSERT_TRUE(WriteFile(dir + "/f" + std::to_string(f), "file " + std::to_string(d) + "/" + std::to_string(f)));
  }
  ASSERT_EQ(mkdir(P("d1/sub").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(P("d1/sub/deep"), "deep"));
  ASSERT_EQ(symlink("f1", P("d2/link").c_str()), 0);
  ASSERT_EQ(mkfifo(P("d2/fifo").c_str(), 0644), 0);
  ASSERT_EQ(link(P("d3/f0").c_str(), P("d4/hard").c_str()), 0);
  const auto before = Numbers();
  ASSERT_GT(before.size(), 3000u);

  // Renames keep numbers; a new file at an old name gets a new one.
  ASSERT_EQ(rename(P("d0/f0").c_str(), P("d5/moved").c_str()), 0);
  ASSERT_EQ(rename(P("d1").c_str(), P("d1renamed").c_str()), 0);
  ASSERT_TRUE(WriteFile(P("d0/f0"), "a new file at the old name"));
  std::map<std::string, ino_t> expect;
  for (const auto& [path, ino] : before) {
    std::string p = path;
    if (p == "d0/f0") p = "d5/moved";
    else if (p == "d1" || p.rfind("d1/", 0) == 0) p = "d1renamed" + p.substr(2);
    expect[p] = ino;
  }

  ForgetUntil([&] { return Diag("user.hashfs.inodes") < 200 && Diag("user.hashfs.listed") < 1000; });
  const uint64_t nodes = Diag("user.hashfs.inodes"), listed = Diag("user.hashfs.listed");
  std::fprintf(stderr, "[inode table] after the kernel forgot: %llu nodes, %llu listed entries\n",
               static_cast<unsigned long long>(nodes), static_cast<unsigned long long>(listed));
  EXPECT_LT(nodes, 200u) << "nodes of forgotten entries were not evicted";
  EXPECT_LT(listed, 1000u) << "listings of forgotten directories were not dropped";

  auto after = Numbers();
  ASSERT_TRUE(after.count("d0/f0"));
  ino_t fresh = after["d0/f0"];
  after.erase("d0/f0");
  EXPECT_EQ(after, expect);
  for (const auto& [path, ino] : after) EXPECT_NE(ino, fresh) << path << " shares the new file's number";
  EXPECT_EQ(ReadFile(P("d5/moved")), "file 0/0");
  EXPECT_EQ(ReadFile(P("d1renamed/sub/deep")), "deep");
  EXPECT_EQ(ReadFile(P("d0/f1499")), "file 0/1499");

  // Only hardlinks share a number.
  std::map<ino_t, std::vector<std::string>> by_ino;
  for (const auto& [path, ino] : Numbers()) by_ino[ino].push_back(path);
  for (const auto& [ino, paths] : by_ino) {
    if (paths.size() == 1) continue;
    EXPECT_EQ(paths, (std::vector<std::string>{"d3/f0", "d4/hard"})) << "share st_ino " << ino;
  }

  // A second name for a file does not change its number.
  ino_t single = after["d2/f7"];
  ASSERT_EQ(link(P("d2/f7").c_str(), P("d2/f7-link").c_str()), 0);
  Forget();
  struct stat st;
  ASSERT_EQ(lstat(P("d2/f7").c_str(), &st), 0);
  EXPECT_EQ(st.st_ino, single);
  EXPECT_EQ(st.st_nlink, 2u);

  // Numbers persist across a remount.
  const auto mounted = Numbers();
  ASSERT_TRUE(Remount({"--inode-cache", kBudget}));
  EXPECT_EQ(Numbers(), mounted);

  // A past commit's view has numbers of its own: copying an old version out
  // is not copying a file onto itself.
  auto ids = CommitIds();
  ASSERT_FALSE(ids.empty());
  std::string old = P(".hashfs/history/" + ids.front() + "/d5/moved");
  struct stat a, b;
  ASSERT_EQ(lstat(old.c_str(), &a), 0);
  ASSERT_EQ(lstat(P("d5/moved").c_str(), &b), 0);
  EXPECT_NE(a.st_ino, b.st_ino);
  RunResult cp = Shell("cp " + Quote(old) + " " + Quote(P("d5/moved")));
  EXPECT_EQ(cp.code, 0) << cp.err;
  // The view's numbers are stable too, and its own hardlinks share one.
  std::string hist = ".hashfs/history/" + ids.front();
  std::map<std::string, ino_t> h1;
  Walk(hist, h1);
  Forget();
  std::map<std::string, ino_t> h2;
  Walk(hist, h2);
  EXPECT_EQ(h1, h2);
  EXPECT_EQ(h2[hist + "/d3/f0"], h2[hist + "/d4/hard"]);
  EXPECT_NE(h2[hist + "/d3/f0"], mounted.at("d3/f0"));
}

TEST_F(InodeTableTest, OpenFilesAndPendingChangesSurviveEviction) {
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  for (int f = 0; f < 500; f++) ASSERT_TRUE(WriteFile(P("d/f" + std::to_string(f)), std::to_string(f)));
  int w = open(P("d/growing").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(w, 0);
  ASSERT_EQ(write(w, "first ", 6), 6);
  int gone = open(P("d/f3").c_str(), O_RDWR);
  ASSERT_GE(gone, 0);
  ASSERT_EQ(unlink(P("d/f3").c_str()), 0);
  ASSERT_EQ(setxattr(P("d/f9").c_str(), "user.k", "v", 1, 0), 0);
  ASSERT_EQ(chmod(P("d/f10").c_str(), 0600), 0);
  struct timespec ts[2] = {{1000, 0}, {UTIME_OMIT, UTIME_OMIT}};
  ASSERT_EQ(utimensat(AT_FDCWD, P("d/f11").c_str(), ts, 0), 0);
  Forget();
  ASSERT_EQ(write(w, "second", 6), 6);
  ASSERT_EQ(close(w), 0);
  EXPECT_EQ(ReadFile(P("d/growing")), "first second");
  char buf[8] = {};
  EXPECT_EQ(pread(gone, buf, sizeof buf, 0), 1);
  EXPECT_EQ(std::string(buf), "3");
  ASSERT_EQ(pwrite(gone, "33", 2, 0), 2);
  EXPECT_EQ(pread(gone, buf, sizeof buf, 0), 2);
  close(gone);
  Forget();
  struct stat st;
  EXPECT_NE(lstat(P("d/f3").c_str(), &st), 0);
  char v[4] = {};
  EXPECT_EQ(getxattr(P("d/f9").c_str(), "user.k", v, sizeof v), 1);
  ASSERT_EQ(lstat(P("d/f10").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0600u);
  ASSERT_EQ(lstat(P("d/f11").c_str(), &st), 0);
  EXPECT_EQ(st.st_atim.tv_sec, 1000);  // atime is not stored: the node was kept
  EXPECT_EQ(ReadFile(P("d/f499")), "499");
  // Everything still there after a remount, and verify is clean.
  ASSERT_TRUE(Remount({"--inode-cache", kBudget}));
  EXPECT_EQ(ReadFile(P("d/growing")), "first second");
  EXPECT_EQ(getxattr(P("d/f9").c_str(), "user.k", v, sizeof v), 1);
  std::set<std::string> names;
  DIR* d = opendir(P("d").c_str());
  ASSERT_NE(d, nullptr);
  while (dirent* e = readdir(d)) names.insert(e->d_name);
  closedir(d);
  EXPECT_EQ(names.size(), 2u + 500u);  // . .. f0..f499 without f3, plus growing
  RunResult v2 = Hashfs({"verify"});
  EXPECT_EQ(v2.code, 0) << v2.out << v2.err;
}

// Browsing many past commits must not grow the mount for good: once the
// kernel forgets a commit's view, its nodes and its per-commit record go,
// except for a view that still has an open file.
TEST_F(InodeTableTest, PastCommitViewsAreFreedOnceForgotten) {
  std::vector<std::string> commits;
  for (int i = 0; i < 12; i++) {
    ASSERT_TRUE(WriteFile(P("f"), "version " + std::to_string(i)));
    Commit();
    RunResult log = Hashfs({"log", kVolume, "--json"});
    ASSERT_EQ(log.code, 0) << log.err;
    auto j = nlohmann::json::parse(log.out);
    ASSERT_FALSE(j.empty());
    commits.push_back(j[0]["id"].get<std::string>());
  }
  for (size_t i = 0; i < commits.size(); i++)
    EXPECT_EQ(ReadFile(P(".hashfs/history/" + commits[i] + "/f")), "version " + std::to_string(i));
  EXPECT_GE(Diag("user.hashfs.past_trees"), commits.size());
  // The mount sweeps only over its budget: fill the table past it.
  ASSERT_EQ(mkdir(P("pad").c_str(), 0755), 0);
  for (int f = 0; f < 100; f++) ASSERT_TRUE(WriteFile(P("pad/f" + std::to_string(f)), "x"));
  auto Pad = [&] {
    struct stat st;
    for (int f = 0; f < 100; f++) ASSERT_EQ(lstat(P("pad/f" + std::to_string(f)).c_str(), &st), 0);
  };
  int held = open(P(".hashfs/history/" + commits[3] + "/f").c_str(), O_RDONLY);
  ASSERT_GE(held, 0);
  ForgetUntil([&] { return Diag("user.hashfs.past_trees") <= 1; }, Pad);
  EXPECT_EQ(Diag("user.hashfs.past_trees"), 1u);  // the view with the open file
  char buf[16] = {};
  EXPECT_EQ(pread(held, buf, sizeof buf - 1, 0), 9);
  EXPECT_EQ(std::string(buf), "version 3");
  close(held);
  ForgetUntil([&] { return Diag("user.hashfs.past_trees") == 0; }, Pad);
  EXPECT_EQ(Diag("user.hashfs.past_trees"), 0u);
  // A freed view comes back on the next lookup, with the same numbers.
  EXPECT_EQ(ReadFile(P(".hashfs/history/" + commits[5] + "/f")), "version 5");
  EXPECT_EQ(Diag("user.hashfs.past_trees"), 1u);
  RunResult v = Hashfs({"verify"});
  EXPECT_EQ(v.code, 0) << v.out << v.err;
}

}  // namespace
}  // namespace fusetest
