// Shared fixture and helpers for the FUSE mount tests (not a test file itself:
// only *_test.cc files are compiled). See tests/fusefs/README.md.
//
// Two targets:
//  - default: a real `hashfs mount` of a fresh store (needs root and /dev/fuse);
//  - HASHFS_FUSE_TEST_TARGET=native: the "mountpoint" is a plain directory on the
//    host filesystem and mount/umount are no-ops. This validates the tests
//    themselves against the kernel's own filesystem; hashfs-only tests skip.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <grp.h>
#include <linux/fs.h>
#include <poll.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tests/test_util.h"

namespace fusetest {

// HASHFS_FUSE_TEST_TARGET: unset or "hashfs" (a real hashfs mount), "native"
// (a plain host directory) or "passthrough" (libfuse's passthrough_ll example,
// path in HASHFS_FUSE_PASSTHROUGH: a second FUSE filesystem to check that the
// tests catch real FUSE behaviour).
inline std::string Target() {
  const char* t = std::getenv("HASHFS_FUSE_TEST_TARGET");
  return t == nullptr || *t == '\0' ? "hashfs" : t;
}
inline bool NativeMode() { return Target() == "native"; }
inline bool PassthroughMode() { return Target() == "passthrough"; }
inline bool HashfsMode() { return Target() == "hashfs"; }

// Skips a test that only makes sense on hashfs (history view, log, verify...).
#define HASHFS_ONLY()                                                                                         \
  do {                                                                                                        \
    if (!::fusetest::HashfsMode()) GTEST_SKIP() << "hashfs-specific (target " << ::fusetest::Target() << ")"; \
  } while (0)

// The shared helpers (tests/test_util.h), in this namespace.
using hashfs_test::EnvU64;
using hashfs_test::ErrName;
using hashfs_test::ErrOf;
using hashfs_test::HashFile;
using hashfs_test::Quote;
using hashfs_test::RandomBytes;
using hashfs_test::ReadAll;
using hashfs_test::ReadFile;
using hashfs_test::RunResult;
using hashfs_test::Shell;
using hashfs_test::WriteAll;
using hashfs_test::WriteFile;
using hashfs_test::XorshiftBytes;

// The number in a "Key:" line of /proc/PID/status (VmRSS, VmHWM: kB); 0 if
// there is none.
inline uint64_t StatusKb(const std::string& status, const std::string& key) {
  auto p = status.find("\n" + key + ":");
  if (p == std::string::npos) return 0;
  return std::strtoull(status.c_str() + p + key.size() + 2, nullptr, 10);
}

inline bool HaveProgram(const std::string& name) { return Shell("command -v " + Quote(name)).code == 0; }

// Runs fn in a forked child with the given credentials (all capabilities are
// dropped by the uid change) and returns what fn returned, or a string starting
// with "CHILD-FAILED" if the child could not switch, crashed or timed out.
inline std::string AsUser(uid_t uid, gid_t gid, const std::function<std::string()>& fn,
                          const std::vector<gid_t>& groups = {}, int timeout_s = 120) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return "CHILD-FAILED: pipe";
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    std::string res;
    if (setgroups(groups.size(), groups.data()) != 0 || setresgid(gid, gid, gid) != 0 ||
        setresuid(uid, uid, uid) != 0 || geteuid() != uid) {
      res = "CHILD-FAILED: cannot switch to uid " + std::to_string(uid) + ": " + ErrName(errno);
    } else {
      res = fn();
    }
    WriteAll(p[1], res.data(), res.size());
    _exit(0);
  }
  close(p[1]);
  if (pid < 0) {
    close(p[0]);
    return "CHILD-FAILED: fork";
  }
  std::string out;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  bool timed_out = false;
  for (;;) {
    int left = static_cast<int>(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count());
    if (left <= 0) {
      timed_out = true;
      break;
    }
    struct pollfd pfd = {p[0], POLLIN, 0};
    int pr = poll(&pfd, 1, left);
    if (pr < 0 && errno == EINTR) continue;
    if (pr <= 0) {
      timed_out = pr == 0;
      break;
    }
    char buf[4096];
    ssize_t n = read(p[0], buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  close(p[0]);
  if (timed_out) kill(pid, SIGKILL);
  int st = 0;
  waitpid(pid, &st, 0);
  if (timed_out) return "CHILD-FAILED: timeout; partial: " + out;
  if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) return "CHILD-FAILED: status " + std::to_string(st) + "; " + out;
  return out;
}

// Mount table lookup: is `mnt` a mount point, and of which fs type / device?
struct MountInfo {
  bool mounted = false;
  std::string fstype;
  unsigned major = 0, minor = 0;
};
inline MountInfo FindMount(const std::string& mnt) {
  MountInfo mi;
  std::ifstream in("/proc/self/mountinfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream ls(line);
    std::string id, parent, mm, root, mp;
    ls >> id >> parent >> mm >> root >> mp;
    if (mp != mnt) continue;
    std::string tok;
    while (ls >> tok && tok != "-") {
    }
    ls >> mi.fstype;
    mi.mounted = true;
    std::sscanf(mm.c_str(), "%u:%u", &mi.major, &mi.minor);  // last match wins (stacked mounts)
  }
  return mi;
}

// Description of a tree, for comparisons: relative path -> attributes.
struct DescribeOptions {
  bool mtime = false;       // include mtime of non-directories (and of directories if dir_mtime)
  bool dir_mtime = false;
  bool owner = true;
  bool content = true;
  bool xattrs = true;
  std::string xattr_prefix;  // only xattrs whose names start with this (e.g. "user.")
  bool dir_nlink = false;
  std::set<std::string> skip_names;  // names never descended into / listed (e.g. ".git")
};

inline std::string DescribeOne(const std::string& p, const struct stat& st, const DescribeOptions& o) {
  std::ostringstream d;
  d << std::oct << st.st_mode << std::dec;
  if (o.owner) d << " " << st.st_uid << ":" << st.st_gid;
  if (!S_ISDIR(st.st_mode) || o.dir_nlink) d << " nlink=" << st.st_nlink;
  if ((o.mtime && !S_ISDIR(st.st_mode)) || (o.dir_mtime && S_ISDIR(st.st_mode)))
    d << " mtime=" << st.st_mtim.tv_sec << "." << st.st_mtim.tv_nsec;
  if (S_ISREG(st.st_mode)) {
    d << " size=" << st.st_size;
    if (o.content) d << " content=" << HashFile(p);
  }
  if (S_ISLNK(st.st_mode)) {
    char buf[4097];
    ssize_t l = readlink(p.c_str(), buf, sizeof buf - 1);
    d << " size=" << st.st_size << " -> " << std::string(buf, l > 0 ? static_cast<size_t>(l) : 0);
  }
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) d << " rdev=" << major(st.st_rdev) << "," << minor(st.st_rdev);
  if (o.xattrs) {
    std::vector<char> names(65536);
    ssize_t nl = llistxattr(p.c_str(), names.data(), names.size());
    std::vector<std::string> sorted;
    for (ssize_t i = 0; i < nl;) {
      std::string xn(names.data() + i);
      i += static_cast<ssize_t>(xn.size()) + 1;
      if (xn.rfind(o.xattr_prefix, 0) == 0) sorted.push_back(xn);
    }
    std::sort(sorted.begin(), sorted.end());
    for (const auto& xn : sorted) {
      std::vector<char> val(65536);
      ssize_t vl = lgetxattr(p.c_str(), xn.c_str(), val.data(), val.size());
      d << " x:" << xn << "=" << (vl >= 0 ? std::string(val.data(), static_cast<size_t>(vl)) : "<" + ErrName(errno) + ">");
    }
  }
  return d.str();
}

// path -> description; hardlink groups appear as "group:<first path>" -> members.
inline std::map<std::string, std::string> DescribeTree(const std::string& top, const DescribeOptions& o = {}) {
  std::map<std::string, std::string> out;
  std::map<std::pair<dev_t, ino_t>, std::string> first_name;
  std::vector<std::string> stack = {""};
  while (!stack.empty()) {
    std::string rel = stack.back();
    stack.pop_back();
    std::string dir = rel.empty() ? top : top + "/" + rel;
    DIR* dp = opendir(dir.c_str());
    if (dp == nullptr) {
      out[rel + "/<opendir>"] = ErrName(errno);
      continue;
    }
    std::vector<std::string> names;
    while (auto* de = readdir(dp)) {
      std::string n = de->d_name;
      if (n == "." || n == ".." || o.skip_names.count(n)) continue;
      names.push_back(n);
    }
    closedir(dp);
    std::sort(names.begin(), names.end());
    for (const auto& n : names) {
      std::string r = rel.empty() ? n : rel + "/" + n;
      std::string p = top + "/" + r;
      struct stat st;
      if (lstat(p.c_str(), &st) != 0) {
        out[r] = "<lstat " + ErrName(errno) + ">";
        continue;
      }
      out[r] = DescribeOne(p, st, o);
      if (!S_ISDIR(st.st_mode) && st.st_nlink > 1) {
        auto [it, inserted] = first_name.emplace(std::make_pair(st.st_dev, st.st_ino), r);
        (void)inserted;
        out["group:" + it->second] += r + ";";
      }
      if (S_ISDIR(st.st_mode)) stack.push_back(r);
    }
  }
  return out;
}

// Human-readable difference of two descriptions (first `limit` differences).
inline std::string DiffDescriptions(const std::map<std::string, std::string>& a,
                                    const std::map<std::string, std::string>& b, size_t limit = 20) {
  std::ostringstream o;
  size_t n = 0;
  for (const auto& [k, v] : a) {
    auto it = b.find(k);
    if (it == b.end()) {
      if (n++ < limit) o << "  only in first:  " << k << " = " << v << "\n";
    } else if (it->second != v) {
      if (n++ < limit) o << "  differs: " << k << "\n     first:  " << v << "\n     second: " << it->second << "\n";
    }
  }
  for (const auto& [k, v] : b)
    if (!a.count(k) && n++ < limit) o << "  only in second: " << k << " = " << v << "\n";
  if (n > limit) o << "  ... " << (n - limit) << " more\n";
  return o.str();
}

// All processes (other than us) whose command line has an argument equal to
// one of `needles` and an argument containing "mount".
inline std::vector<pid_t> FindProcesses(const std::vector<std::string>& needles, bool require_mount = true) {
  std::vector<pid_t> pids;
  DIR* d = opendir("/proc");
  if (d == nullptr) return pids;
  while (auto* de = readdir(d)) {
    char* end;
    long pid = std::strtol(de->d_name, &end, 10);
    if (*end != '\0' || pid <= 0 || pid == getpid()) continue;
    std::string cmd = ReadFile(std::string("/proc/") + de->d_name + "/cmdline");
    if (cmd.rfind("<ERR", 0) == 0) continue;
    std::vector<std::string> args;
    std::string cur;
    for (char c : cmd) {
      if (c == '\0') {
        args.push_back(cur);
        cur.clear();
      } else {
        cur += c;
      }
    }
    if (!cur.empty()) args.push_back(cur);
    bool needle = false, mount = false;
    for (const auto& a : args) {
      for (const auto& n : needles)
        if (a == n) needle = true;
      if (a.find("mount") != std::string::npos) mount = true;
    }
    if (needle && (mount || !require_mount)) pids.push_back(static_cast<pid_t>(pid));
  }
  closedir(d);
  return pids;
}

inline bool ProcessAlive(pid_t pid) {
  std::string stat = ReadFile("/proc/" + std::to_string(pid) + "/stat");
  if (stat.rfind("<ERR", 0) == 0) return false;
  auto rp = stat.rfind(')');
  return rp == std::string::npos || rp + 2 >= stat.size() || stat[rp + 2] != 'Z';
}

// ---------------------------------------------------------------------------
// The fixture: a per-test temp dir holding the store, the mountpoint(s) and a
// host-filesystem scratch dir; volume kVolume mounted read-write at mnt_.
class FuseTest : public ::testing::Test {
 protected:
  static constexpr const char* kVolume = "vol";

  // Override to mount differently (or not at all) in SetUp.
  virtual bool MountInSetUp() const { return true; }

  void SetUp() override {
    umask(022);
    char tmpl[] = "/var/tmp/hashfs-fuse-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    root_ = tmpl;
    ASSERT_EQ(chmod(root_.c_str(), 0755), 0);  // unprivileged users must reach the mountpoint
    store_ = root_ + "/store";
    mnt_ = root_ + "/mnt";
    host_ = root_ + "/host";
    ASSERT_EQ(mkdir(mnt_.c_str(), 0755), 0);
    ASSERT_EQ(mkdir(host_.c_str(), 0755), 0);
    StartWatchdog();
    if (!NativeMode()) {
      if (geteuid() != 0) GTEST_SKIP() << "real FUSE mount tests need root (or set HASHFS_FUSE_TEST_TARGET=native)";
      if (access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "/dev/fuse not available";
    }
    if (HashfsMode()) {
      RunResult r = Hashfs({"init"});
      ASSERT_EQ(r.code, 0) << r.err;
    }
    if (MountInSetUp()) {
      ASSERT_TRUE(Mount(kVolume, mnt_));
      ASSERT_EQ(chmod(mnt_.c_str(), 0755), 0);
    }
  }

  void TearDown() override {
    for (const auto& m : std::vector<std::string>(mounts_.rbegin(), mounts_.rend())) {
      RunResult r = PassthroughMode() ? Shell("fusermount3 -u " + Quote(m), 60) : Hashfs({"umount", m}, 60);
      if (r.code != 0 || FindMount(m).mounted) {
        std::fprintf(stderr, "[teardown] hashfs umount %s: code %d %s\n", m.c_str(), r.code, r.err.c_str());
        Shell("fusermount3 -u -z " + Quote(m), 30);
      }
    }
    mounts_.clear();
    KillDaemons(SIGKILL);
    for (int i = 0; i < 100 && !DaemonPids().empty(); i++) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    StopWatchdog();
    if (watchdog_fired_) ADD_FAILURE() << "watchdog fired: the test exceeded its time limit (HASHFS_FUSE_TEST_TIMEOUT)";
    if (HasFailure() && HashfsMode()) DumpDaemonLogs();
    if (!root_.empty()) {
      // Never delete through a mount that is somehow still there.
      std::string mi = ReadFile("/proc/self/mountinfo");
      if (mi.find(" " + root_ + "/") == std::string::npos) {
        if (std::getenv("HASHFS_FUSE_TEST_KEEP") == nullptr)
          Shell("rm -rf --one-file-system " + Quote(root_), 300);
        else
          std::fprintf(stderr, "[teardown] kept %s\n", root_.c_str());
      } else {
        std::fprintf(stderr, "[teardown] %s still has mounts; not removed\n", root_.c_str());
      }
    }
  }

  RunResult Hashfs(const std::vector<std::string>& args, int timeout_s = 300) {
    std::string cmd = Quote(HASHFS_BINARY) + " --store " + Quote(store_);
    for (const auto& a : args) cmd += " " + Quote(a);
    return Shell(cmd, timeout_s);
  }

  nlohmann::json Json(const std::vector<std::string>& args) {
    RunResult r = Hashfs(args);
    EXPECT_EQ(r.code, 0) << r.err;
    try {
      return nlohmann::json::parse(r.out);
    } catch (const std::exception& e) {
      ADD_FAILURE() << "bad json from hashfs " << args[0] << ": " << e.what() << "\n" << r.out;
      return nlohmann::json::array();
    }
  }
  // Commit ids of the volume, newest first.
  std::vector<std::string> CommitIds(const std::string& vol = kVolume) {
    std::vector<std::string> ids;
    for (auto& c : Json({"log", vol, "--json"})) ids.push_back(c["id"].get<std::string>());
    return ids;
  }

  // Mounts `vol` at `mnt` (created if missing). Native mode: nothing to do.
  ::testing::AssertionResult Mount(const std::string& vol, const std::string& mnt,
                                   const std::vector<std::string>& extra = {}) {
    mkdir(mnt.c_str(), 0755);
    if (NativeMode()) return ::testing::AssertionSuccess();
    RunResult r;
    if (PassthroughMode()) {
      const char* pt = std::getenv("HASHFS_FUSE_PASSTHROUGH");
      if (pt == nullptr) return ::testing::AssertionFailure() << "set HASHFS_FUSE_PASSTHROUGH";
      std::string backing = root_ + "/backing-" + vol;
      mkdir(backing.c_str(), 0755);
      r = Shell(Quote(pt) + " -o source=" + Quote(backing) + " -o xattr -o allow_other -o default_permissions " +
                    Quote(mnt),
                60);
    } else {
      std::vector<std::string> args = {"mount", vol, mnt};
      // HASHFS_TEST_INODE_CACHE=N: every mount evicts past N nodes (the
      // asan stage runs the whole suite so), unless the test sets its own.
      const char* cache = std::getenv("HASHFS_TEST_INODE_CACHE");
      if (cache != nullptr && *cache != '\0' && std::find(extra.begin(), extra.end(), "--inode-cache") == extra.end()) {
        args.emplace_back("--inode-cache");
        args.emplace_back(cache);
      }
      // HASHFS_TEST_DIRTY_LIMIT=MiB: every mount chunks a file's writes out
      // in the background past that many MiB (the asan stage runs the whole
      // suite with 2), unless the test sets its own.
      const char* dirty = std::getenv("HASHFS_TEST_DIRTY_LIMIT");
      if (dirty != nullptr && *dirty != '\0' && std::find(extra.begin(), extra.end(), "--dirty-limit") == extra.end()) {
        args.emplace_back("--dirty-limit");
        args.emplace_back(dirty);
      }
      args.insert(args.end(), extra.begin(), extra.end());
      r = Hashfs(args, 120);
    }
    if (r.code != 0)
      return ::testing::AssertionFailure() << "hashfs mount " << vol << " " << mnt << " exited " << r.code << ": "
                                           << r.err << r.out;
    MountInfo mi = FindMount(mnt);
    if (!mi.mounted || mi.fstype.rfind("fuse", 0) != 0) {
      return ::testing::AssertionFailure() << "hashfs mount returned 0 but " << mnt
                                           << " is not a FUSE mount (fstype '" << mi.fstype << "')";
    }
    mounts_.push_back(mnt);
    {
      std::lock_guard<std::mutex> g(mu_);
      conn_ids_.push_back(mi.minor);
    }
    return ::testing::AssertionSuccess();
  }

  // `hashfs umount`; checks that the mount is gone and its daemon exited.
  ::testing::AssertionResult Unmount(const std::string& mnt) {
    if (NativeMode()) return ::testing::AssertionSuccess();
    RunResult r = PassthroughMode() ? Shell("fusermount3 -u " + Quote(mnt), 60) : Hashfs({"umount", mnt}, 120);
    mounts_.erase(std::remove(mounts_.begin(), mounts_.end(), mnt), mounts_.end());
    if (r.code != 0) {
      Shell("fusermount3 -u -z " + Quote(mnt), 30);
      return ::testing::AssertionFailure() << "hashfs umount " << mnt << " exited " << r.code << ": " << r.err;
    }
    if (FindMount(mnt).mounted) {
      Shell("fusermount3 -u -z " + Quote(mnt), 30);
      return ::testing::AssertionFailure() << "hashfs umount returned 0 but " << mnt << " is still mounted";
    }
    return ::testing::AssertionSuccess();
  }

  ::testing::AssertionResult Remount(const std::vector<std::string>& extra = {}) {
    auto u = Unmount(mnt_);
    if (!u) return u;
    if (PassthroughMode()) std::this_thread::sleep_for(std::chrono::milliseconds(200));
    if (!NativeMode()) {
      // "returns after the daemon exited": nothing of ours may still serve it.
      for (pid_t p : FindProcesses({mnt_}, !PassthroughMode()))
        if (ProcessAlive(p))
          return ::testing::AssertionFailure() << "daemon pid " << p << " still alive after hashfs umount";
    }
    return Mount(kVolume, mnt_, extra);
  }

  std::string P(const std::string& rel) const { return mnt_ + "/" + rel; }
  std::string H(const std::string& rel) const { return host_ + "/" + rel; }

  std::vector<pid_t> DaemonPids() {
    std::vector<std::string> needles = {store_};
    if (PassthroughMode())
      for (const auto& m : mounts_) needles.push_back(m);
    return FindProcesses(needles, !PassthroughMode());
  }
  void KillDaemons(int sig) {
    for (pid_t p : DaemonPids()) kill(p, sig);
  }

  // The tails of the files in the store directory and in its logs/ (the
  // daemons' logs), for a failed test.
  void DumpDaemonLogs() {
    for (const std::string& dir : {store_, store_ + "/logs"}) {
      DIR* d = opendir(dir.c_str());
      if (d == nullptr) continue;
      while (auto* de = readdir(d)) {
        std::string n = de->d_name;
        if (n == "." || n == ".." || n == "data.mdb" || n == "lock.mdb") continue;
        std::string p = dir + "/" + n;
        struct stat st;
        if (stat(p.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > (64 << 20)) continue;
        std::string s = ReadFile(p);
        size_t pos = s.size();
        for (int lines = 0; lines < 40 && pos > 0; lines++) {
          pos = s.rfind('\n', pos - 1);
          if (pos == std::string::npos) {
            pos = 0;
            break;
          }
        }
        std::fprintf(stderr, "---- tail of %s ----\n%s\n----\n", p.c_str(), s.substr(pos).c_str());
      }
      closedir(d);
    }
  }

  // A hang in the filesystem must become a failure, not a stuck CI: after
  // HASHFS_FUSE_TEST_TIMEOUT seconds (default 540) the daemons are killed and
  // the FUSE connections aborted, so blocked system calls return.
  void StartWatchdog() {
    uint64_t limit = EnvU64("HASHFS_FUSE_TEST_TIMEOUT", 540);
    watchdog_ = std::thread([this, limit] {
      std::unique_lock<std::mutex> lk(mu_);
      if (cv_.wait_for(lk, std::chrono::seconds(limit), [this] { return stop_watchdog_; })) return;
      watchdog_fired_ = true;
      std::vector<unsigned> conns = conn_ids_;
      lk.unlock();
      std::fprintf(stderr, "[watchdog] test exceeded %llu s: killing daemons, aborting FUSE connections\n",
                   static_cast<unsigned long long>(limit));
      if (HashfsMode()) DumpDaemonLogs();
      KillDaemons(SIGKILL);
      for (unsigned c : conns) {
        int fd = open(("/sys/fs/fuse/connections/" + std::to_string(c) + "/abort").c_str(), O_WRONLY);
        if (fd >= 0) {
          (void)!write(fd, "1", 1);
          close(fd);
        }
      }
    });
  }
  void StopWatchdog() {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_watchdog_ = true;
    }
    cv_.notify_all();
    if (watchdog_.joinable()) watchdog_.join();
  }

  std::string root_, store_, mnt_, host_;
  std::vector<std::string> mounts_;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_watchdog_ = false;
  std::atomic<bool> watchdog_fired_{false};
  std::vector<unsigned> conn_ids_;
  std::thread watchdog_;
};

// ---------------------------------------------------------------------------
// Per-errno conformance of the namespace and xattr operations, run in an empty
// directory `dir` the caller can write to. Returns one line per mismatch. Used
// as root (posix_test) and as an unprivileged uid (permissions_test).
inline std::vector<std::string> ErrnoConformance(const std::string& dir) {
  std::vector<std::string> bad;
  auto check = [&bad](int line, const char* what, long rc, const std::string& want) {
    std::string got = ErrOf(rc);
    if (got != want) bad.push_back("line " + std::to_string(line) + ": " + what + ": want " + want + ", got " + got);
  };
#define ERRNO_IS(expr, want) check(__LINE__, #expr, static_cast<long>(expr), want)
  auto open_close = [](const std::string& p, int flags, mode_t mode = 0644) -> long {
    int fd = open(p.c_str(), flags | O_CLOEXEC, mode);
    if (fd < 0) return -1;
    close(fd);
    return 0;
  };
  auto renameat2_ = [](const std::string& a, const std::string& b, unsigned flags) -> long {
    return syscall(SYS_renameat2, AT_FDCWD, a.c_str(), AT_FDCWD, b.c_str(), flags);
  };
  const std::string f = dir + "/f", g = dir + "/g", d = dir + "/d", e = dir + "/e", nx = dir + "/nx";
  const std::string name255(255, 'n'), name256(256, 'n');
  if (!WriteFile(f, "hello")) {
    bad.push_back("cannot create " + f + ": " + ErrName(errno));
    return bad;
  }
  WriteFile(g, "world");
  // open
  ERRNO_IS(open_close(f, O_CREAT | O_EXCL | O_WRONLY), "EEXIST");
  ERRNO_IS(open_close(nx, O_RDONLY), "ENOENT");
  ERRNO_IS(open_close(nx + "/y", O_CREAT | O_WRONLY), "ENOENT");
  ERRNO_IS(open_close(f + "/y", O_RDONLY), "ENOTDIR");
  ERRNO_IS(open_close(f + "/y", O_CREAT | O_WRONLY), "ENOTDIR");
  ERRNO_IS(open_close(f, O_RDONLY | O_DIRECTORY), "ENOTDIR");
  ERRNO_IS(open_close(dir, O_WRONLY), "EISDIR");
  ERRNO_IS(open_close(dir, O_RDWR), "EISDIR");
  ERRNO_IS(open_close(dir + "/" + name255, O_CREAT | O_EXCL | O_WRONLY), "OK");
  ERRNO_IS(unlink((dir + "/" + name255).c_str()), "OK");
  ERRNO_IS(open_close(dir + "/" + name256, O_CREAT | O_WRONLY), "ENAMETOOLONG");
  {
    int fd = open(f.c_str(), O_RDONLY | O_CLOEXEC);
    char c = 'x';
    ERRNO_IS(write(fd, &c, 1), "EBADF");
    ERRNO_IS(ftruncate(fd, 0), "EINVAL");
    close(fd);
    fd = open(f.c_str(), O_WRONLY | O_CLOEXEC);
    ERRNO_IS(read(fd, &c, 1), "EBADF");
    close(fd);
  }
  // mkdir / rmdir / unlink
  ERRNO_IS(mkdir(d.c_str(), 0755), "OK");
  ERRNO_IS(mkdir(d.c_str(), 0755), "EEXIST");
  ERRNO_IS(mkdir(f.c_str(), 0755), "EEXIST");
  ERRNO_IS(mkdir((f + "/x").c_str(), 0755), "ENOTDIR");
  ERRNO_IS(mkdir((nx + "/x").c_str(), 0755), "ENOENT");
  ERRNO_IS(mkdir((dir + "/" + name256).c_str(), 0755), "ENAMETOOLONG");
  ERRNO_IS(mkdir((dir + "/" + name255).c_str(), 0755), "OK");
  ERRNO_IS(rmdir((dir + "/" + name255).c_str()), "OK");
  ERRNO_IS(rmdir(f.c_str()), "ENOTDIR");
  ERRNO_IS(rmdir(nx.c_str()), "ENOENT");
  WriteFile(d + "/inner", "x");
  ERRNO_IS(rmdir(d.c_str()), "ENOTEMPTY");
  ERRNO_IS(rmdir((d + "/.").c_str()), "EINVAL");
  ERRNO_IS(unlink(d.c_str()), "EISDIR");
  ERRNO_IS(unlink(nx.c_str()), "ENOENT");
  ERRNO_IS(unlink((f + "/x").c_str()), "ENOTDIR");
  // rename
  ERRNO_IS(mkdir((d + "/sub").c_str(), 0755), "OK");
  ERRNO_IS(rename(d.c_str(), (d + "/sub/into").c_str()), "EINVAL");
  ERRNO_IS(rename(f.c_str(), d.c_str()), "EISDIR");
  ERRNO_IS(rename(d.c_str(), f.c_str()), "ENOTDIR");
  ERRNO_IS(mkdir(e.c_str(), 0755), "OK");
  ERRNO_IS(rename(e.c_str(), d.c_str()), "ENOTEMPTY");
  ERRNO_IS(mkdir((dir + "/e2").c_str(), 0755), "OK");
  ERRNO_IS(rename((dir + "/e2").c_str(), e.c_str()), "OK");  // over an empty dir
  ERRNO_IS(access((dir + "/e2").c_str(), F_OK), "ENOENT");
  ERRNO_IS(rename(nx.c_str(), (dir + "/y").c_str()), "ENOENT");
  ERRNO_IS(rename(f.c_str(), (nx + "/y").c_str()), "ENOENT");
  ERRNO_IS(rename(f.c_str(), (dir + "/" + name256).c_str()), "ENAMETOOLONG");
  ERRNO_IS(renameat2_(f, g, RENAME_NOREPLACE), "EEXIST");
  ERRNO_IS(renameat2_(f, nx, RENAME_EXCHANGE), "ENOENT");
  ERRNO_IS(renameat2_(f, g, RENAME_EXCHANGE), "OK");
  if (ReadFile(f) != "world" || ReadFile(g) != "hello") bad.push_back("RENAME_EXCHANGE did not swap contents");
  ERRNO_IS(renameat2_(f, g, RENAME_EXCHANGE | RENAME_NOREPLACE), "EINVAL");
  ERRNO_IS(renameat2_(f, e, RENAME_EXCHANGE), "OK");  // file <-> directory
  {
    struct stat st;
    if (lstat(f.c_str(), &st) != 0 || !S_ISDIR(st.st_mode) || lstat(e.c_str(), &st) != 0 || !S_ISREG(st.st_mode))
      bad.push_back("RENAME_EXCHANGE of a file and a directory did not swap types");
    ERRNO_IS(renameat2_(f, e, RENAME_EXCHANGE), "OK");
  }
  // link
  ERRNO_IS(link(f.c_str(), (dir + "/h").c_str()), "OK");
  ERRNO_IS(link(f.c_str(), (dir + "/h").c_str()), "EEXIST");
  ERRNO_IS(link(d.c_str(), (dir + "/dl").c_str()), "EPERM");
  ERRNO_IS(link(nx.c_str(), (dir + "/z").c_str()), "ENOENT");
  ERRNO_IS(link(f.c_str(), (dir + "/" + name256).c_str()), "ENAMETOOLONG");
  // symlink / readlink / ELOOP
  const std::string s = dir + "/s";
  ERRNO_IS(symlink("f", s.c_str()), "OK");
  ERRNO_IS(symlink("other", s.c_str()), "EEXIST");
  ERRNO_IS(symlink("f", (dir + "/" + name256).c_str()), "ENAMETOOLONG");
  {
    char buf[64];
    ssize_t n = readlink(s.c_str(), buf, sizeof buf);
    if (n != 1 || buf[0] != 'f') bad.push_back("readlink(s) != \"f\"");
    ERRNO_IS(readlink(f.c_str(), buf, sizeof buf), "EINVAL");
    ERRNO_IS(readlink(nx.c_str(), buf, sizeof buf), "ENOENT");
  }
  ERRNO_IS(open_close(s, O_RDONLY | O_NOFOLLOW), "ELOOP");
  ERRNO_IS(open_close(s, O_CREAT | O_EXCL | O_WRONLY), "EEXIST");
  ERRNO_IS(symlink("l2", (dir + "/l1").c_str()), "OK");
  ERRNO_IS(symlink("l1", (dir + "/l2").c_str()), "OK");
  ERRNO_IS(open_close(dir + "/l1", O_RDONLY), "ELOOP");
  {
    struct stat st;
    ERRNO_IS(stat((dir + "/l1").c_str(), &st), "ELOOP");
    ERRNO_IS(stat((dir + "/" + name256).c_str(), &st), "ENAMETOOLONG");
    ERRNO_IS(lstat((dir + "/l1").c_str(), &st), "OK");
  }
  ERRNO_IS(symlink("dangling-target", (dir + "/dangling").c_str()), "OK");
  ERRNO_IS(open_close(dir + "/dangling", O_RDONLY), "ENOENT");
  ERRNO_IS(open_close(dir + "/dangling", O_CREAT | O_EXCL | O_WRONLY), "EEXIST");
  // truncate
  ERRNO_IS(truncate(d.c_str(), 0), "EISDIR");
  ERRNO_IS(truncate(f.c_str(), -1), "EINVAL");
  ERRNO_IS(truncate(nx.c_str(), 0), "ENOENT");
  // xattrs (user namespace)
  {
    const char* fp = f.c_str();
    char buf[64];
    ERRNO_IS(getxattr(fp, "user.nx", buf, sizeof buf), "ENODATA");
    ERRNO_IS(setxattr(fp, "user.a", "1", 1, XATTR_REPLACE), "ENODATA");
    ERRNO_IS(setxattr(fp, "user.a", "123", 3, XATTR_CREATE), "OK");
    ERRNO_IS(setxattr(fp, "user.a", "4", 1, XATTR_CREATE), "EEXIST");
    ERRNO_IS(setxattr(fp, "user.a", "456", 3, XATTR_REPLACE), "OK");
    ERRNO_IS(getxattr(fp, "user.a", buf, 1), "ERANGE");
    ssize_t n = getxattr(fp, "user.a", nullptr, 0);
    if (n != 3) bad.push_back("getxattr size query != 3: " + std::to_string(n));
    n = getxattr(fp, "user.a", buf, sizeof buf);
    if (n != 3 || std::string(buf, 3) != "456") bad.push_back("getxattr(user.a) != 456");
    ERRNO_IS(setxattr(fp, "user.empty", "", 0, 0), "OK");
    ERRNO_IS(getxattr(fp, "user.empty", buf, sizeof buf), "OK");
    ERRNO_IS(removexattr(fp, "user.nx"), "ENODATA");
    ERRNO_IS(removexattr(fp, "user.a"), "OK");
    ERRNO_IS(getxattr(fp, "user.a", buf, sizeof buf), "ENODATA");
    ERRNO_IS(lsetxattr(s.c_str(), "user.a", "1", 1, 0), "EPERM");  // no user xattrs on symlinks
    ERRNO_IS(getxattr(nx.c_str(), "user.a", buf, sizeof buf), "ENOENT");
    ERRNO_IS(setxattr(d.c_str(), "user.dir", "v", 1, 0), "OK");
  }
  // mknod
  ERRNO_IS(mknod((dir + "/fifo").c_str(), S_IFIFO | 0644, 0), "OK");
  ERRNO_IS(mknod((dir + "/fifo").c_str(), S_IFIFO | 0644, 0), "EEXIST");
  ERRNO_IS(mkfifo((dir + "/" + name256).c_str(), 0644), "ENAMETOOLONG");
  if (geteuid() == 0) {
    ERRNO_IS(mknod((dir + "/chr").c_str(), S_IFCHR | 0600, makedev(1, 3)), "OK");
  } else {
    ERRNO_IS(mknod((dir + "/chr").c_str(), S_IFCHR | 0600, makedev(1, 3)), "EPERM");
  }
  ERRNO_IS(access(nx.c_str(), F_OK), "ENOENT");
  ERRNO_IS(access(f.c_str(), F_OK), "OK");
#undef ERRNO_IS
  return bad;
}

inline std::string JoinLines(const std::vector<std::string>& v) {
  std::string s;
  for (const auto& x : v) s += x + "\n";
  return s;
}

}  // namespace fusetest
