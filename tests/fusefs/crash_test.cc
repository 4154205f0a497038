// kill -9 of the mount daemon during heavy writes and during a random
// operation sequence: after cleaning up the dead mount and remounting, every
// byte whose fsync returned is there, the tree is a state the operations
// passed through, and `hashfs verify` is clean. Seeded;
// HASHFS_CRASH_ITERATIONS (default 3), HASHFS_CRASH_WRITERS (default 3) and
// HASHFS_CRASH_RANDOM_ITERATIONS (default 4) scale it, HASHFS_CRASH_SEED
// replays one.
#include "fuse_test_util.h"

namespace fusetest {
namespace {

// Deterministic content for (seed, tag).
std::string Content(uint64_t seed, uint64_t tag, size_t n) {
  return XorshiftBytes((seed * 0x9E3779B97F4A7C15ull) ^ (tag * 0xC2B2AE3D27D4EB4Full) ^ 0x5851F42D4C957F2Dull, n);
}

constexpr size_t kRecord = 4096;

// What one writer does, until an operation fails (the daemon died). Every
// completed fsync is logged (host file, one line each) after it returned:
//   F <rel path> <size> <tag>          a new file, written, fsync'd, renamed into place, dir fsync'd
//   I <rel path> <off> <len> <tag>     intent to overwrite a range of a logged file
//   O <rel path> <off> <len> <tag>     ... that overwrite was fsync'd
//   J <rel path> <records>             the journal holds at least this many records
void Writer(const std::string& mnt, const std::string& dir, const std::string& log_path, uint64_t seed) {
  int log = open(log_path.c_str(), O_CREAT | O_WRONLY | O_APPEND | O_CLOEXEC, 0644);
  auto note = [&](const std::string& line) { WriteAll(log, (line + "\n").data(), line.size() + 1); };
  std::mt19937_64 rng(seed);
  std::string abs_dir = mnt + "/" + dir;
  if (mkdir(abs_dir.c_str(), 0755) != 0 && errno != EEXIST) return;
  int dfd = open(abs_dir.c_str(), O_RDONLY | O_DIRECTORY);
  std::string journal = dir + "/journal";
  int jfd = open((mnt + "/" + journal).c_str(), O_CREAT | O_WRONLY | O_APPEND, 0644);
  if (dfd < 0 || jfd < 0) return;
  std::vector<std::pair<std::string, size_t>> done_files;
  uint64_t records = 0;
  for (uint64_t i = 0;; i++) {
    uint64_t kind = rng() % 10;
    uint64_t tag = rng();
    if (kind < 5 || done_files.empty()) {
      uint64_t r = rng() % 100;
      size_t size = r < 70 ? rng() % (64 << 10) : r < 95 ? rng() % (1 << 20) : rng() % (4 << 20);
      std::string tmp = dir + "/.tmp" + std::to_string(i), fin = dir + "/f" + std::to_string(i);
      int fd = open((mnt + "/" + tmp).c_str(), O_CREAT | O_EXCL | O_WRONLY, 0644);
      if (fd < 0) return;
      std::string data = Content(seed, tag, size);
      bool ok = WriteAll(fd, data.data(), data.size()) && fsync(fd) == 0;
      ok = close(fd) == 0 && ok;
      if (!ok || rename((mnt + "/" + tmp).c_str(), (mnt + "/" + fin).c_str()) != 0 || fsync(dfd) != 0) return;
      note("F " + fin + " " + std::to_string(size) + " " + std::to_string(tag));
      done_files.emplace_back(fin, size);
    } else if (kind < 8) {
      auto& [path, size] = done_files[rng() % done_files.size()];
      size_t off = size ? rng() % (size + 1) : 0, len = 1 + rng() % (128 << 10);
      note("I " + path + " " + std::to_string(off) + " " + std::to_string(len) + " " + std::to_string(tag));
      int fd = open((mnt + "/" + path).c_str(), O_WRONLY);
      if (fd < 0) return;
      std::string data = Content(seed, tag, len);
      bool ok = pwrite(fd, data.data(), len, static_cast<off_t>(off)) == static_cast<ssize_t>(len) &&
                (rng() % 2 ? fsync(fd) : fdatasync(fd)) == 0;
      ok = close(fd) == 0 && ok;
      if (!ok) return;
      size = std::max(size, off + len);
      note("O " + path + " " + std::to_string(off) + " " + std::to_string(len) + " " + std::to_string(tag));
    } else {
      int n = 1 + static_cast<int>(rng() % 8);
      for (int k = 0; k < n; k++) {
        std::string rec = Content(seed ^ 0xABCDEF, records + static_cast<uint64_t>(k), kRecord);
        if (!WriteAll(jfd, rec.data(), rec.size())) return;
      }
      if (fsync(jfd) != 0) return;
      records += static_cast<uint64_t>(n);
      note("J " + journal + " " + std::to_string(records));
    }
  }
}

// ---------------------------------------------------------------------------
// A seeded random sequence of single-syscall operations (create, write at a
// random offset, truncate, rename, link, unlink, mkdir, rmdir, chmod,
// setxattr, removexattr, symlink, fsync) inside one directory `r<round>`.
// Every operation but a write changes the namespace in one FUSE request, and
// the mount commits snapshots of its state in order, so whatever root
// survives a kill -9 must equal the state after some prefix of the sequence:
// at least up to the last fsync that returned, at most up to the operation
// in flight. A write (open, one pwrite of at most 64 KiB, close) may reach
// the daemon as several requests, so a commit may hold its first pages only.
struct RandomOp {
  enum Kind { kMkdir, kCreate, kWrite, kTruncate, kRename, kLink, kUnlink, kRmdir, kChmod, kSetXattr,
              kRemoveXattr, kSymlink, kFsync };
  Kind kind;
  std::string a, b;  // paths relative to the root of the tree
  uint64_t x = 0, y = 0;
};

std::vector<RandomOp> RandomOps(uint64_t seed, const std::string& top, size_t n) {
  static const char* const kDirs[] = {"", "/a", "/b", "/a/c"};
  static const char* const kNames[] = {"f0", "f1", "f2", "f3", "f4", "d0", "d1"};
  std::mt19937_64 rng(seed);
  auto path = [&] { return top + kDirs[rng() % 4] + "/" + kNames[rng() % 7]; };
  std::vector<RandomOp> ops = {{RandomOp::kMkdir, top, "", 0755, 0},
                               {RandomOp::kMkdir, top + "/a", "", 0755, 0},
                               {RandomOp::kMkdir, top + "/b", "", 0755, 0},
                               {RandomOp::kMkdir, top + "/a/c", "", 0755, 0}};
  // Weights per kind, in enum order; fsync's is set per sequence so that
  // some sequences fsync every few operations and others every few hundred
  // (then the mount's own grouped commits, not fsync, decide what survives).
  int weight[] = {60, 100, 220, 60, 80, 50, 80, 40, 40, 40, 20, 30, 0};
  static const int kFsyncWeight[] = {50, 10, 2};
  weight[RandomOp::kFsync] = kFsyncWeight[seed % 3];
  int total = 0;
  for (int w : weight) total += w;
  while (ops.size() < n) {
    int r = static_cast<int>(rng() % static_cast<uint64_t>(total)), k = 0;
    while (r >= weight[k]) r -= weight[k++];
    RandomOp op{static_cast<RandomOp::Kind>(k), path(), ""};
    if (op.kind == RandomOp::kRename || op.kind == RandomOp::kLink) op.b = path();
    if (op.kind == RandomOp::kSymlink) op.b = "target" + std::to_string(rng() % 4);
    if (op.kind == RandomOp::kFsync) op.a = top;
    static const uint64_t kModes[] = {0644, 0600, 0755, 0640};
    op.x = rng();
    op.y = rng();
    if (op.kind == RandomOp::kCreate || op.kind == RandomOp::kChmod || op.kind == RandomOp::kMkdir)
      op.x = kModes[op.x % 4];
    ops.push_back(std::move(op));
  }
  return ops;
}

// What a kWrite operation writes: `data` at `off`.
struct WriteArgs {
  uint64_t off;
  std::string data;
};
WriteArgs WriteOf(const RandomOp& op) {
  return {op.x % (256 << 10), Content(op.x, op.y, 1 + op.y % (64 << 10))};
}

// Applies `op` under `root`; returns 0 or errno (ENOTCONN once the daemon is dead).
int ApplyRandomOp(const std::string& root, const RandomOp& op) {
  std::string a = root + "/" + op.a, b = root + "/" + op.b;
  auto rc = [](int r) { return r == 0 ? 0 : errno; };
  switch (op.kind) {
    case RandomOp::kMkdir:
      return rc(mkdir(a.c_str(), static_cast<mode_t>(op.x)));
    case RandomOp::kCreate: {
      int fd = open(a.c_str(), O_CREAT | O_EXCL | O_WRONLY, static_cast<mode_t>(op.x));
      if (fd < 0) return errno;
      return rc(close(fd));
    }
    case RandomOp::kWrite: {
      int fd = open(a.c_str(), O_WRONLY);
      if (fd < 0) return errno;
      const WriteArgs w = WriteOf(op);
      int e = pwrite(fd, w.data.data(), w.data.size(), static_cast<off_t>(w.off)) ==
                      static_cast<ssize_t>(w.data.size())
                  ? 0
                  : (errno ? errno : EIO);
      int c = close(fd) == 0 ? 0 : errno;
      return e ? e : c;
    }
    case RandomOp::kTruncate:
      return rc(truncate(a.c_str(), static_cast<off_t>(op.x % (300 << 10))));
    case RandomOp::kRename:
      return rc(rename(a.c_str(), b.c_str()));
    case RandomOp::kLink:
      return rc(link(a.c_str(), b.c_str()));
    case RandomOp::kUnlink:
      return rc(unlink(a.c_str()));
    case RandomOp::kRmdir:
      return rc(rmdir(a.c_str()));
    case RandomOp::kChmod:
      return rc(chmod(a.c_str(), static_cast<mode_t>(op.x)));
    case RandomOp::kSetXattr: {
      std::string name = "user.k" + std::to_string(op.x % 3), value = "v" + std::to_string(op.y % 1000);
      return rc(setxattr(a.c_str(), name.c_str(), value.data(), value.size(), 0));
    }
    case RandomOp::kRemoveXattr:
      return rc(removexattr(a.c_str(), ("user.k" + std::to_string(op.x % 3)).c_str()));
    case RandomOp::kSymlink:
      return rc(symlink(op.b.c_str(), a.c_str()));
    case RandomOp::kFsync: {
      int fd = open(a.c_str(), O_RDONLY | O_DIRECTORY);
      if (fd < 0) return errno;
      int e = fsync(fd) == 0 ? 0 : errno;
      close(fd);
      return e;
    }
  }
  return EINVAL;
}

// What a surviving tree must match (times are not compared: they differ
// between the mount and the host by construction).
std::map<std::string, std::string> DescribeForCrash(const std::string& top) {
  struct stat st;
  if (lstat(top.c_str(), &st) != 0) return {{"", "<absent>"}};
  DescribeOptions o;
  o.owner = false;
  o.xattr_prefix = "user.";
  return DescribeTree(top, o);
}

// The kernel may split one pwrite into several FUSE write requests (at page
// boundaries), and a grouped commit may fall between them: as POSIX allows
// after a crash, a file may then hold the write's first pages only. True if
// `got` equals the tree under `model` (the state before write `op`) with a
// page-aligned prefix of that write applied; the model is left as it was.
bool PartialWriteMatches(const std::string& model, const std::string& top, const RandomOp& op,
                         const std::map<std::string, std::string>& got) {
  if (op.kind != RandomOp::kWrite) return false;
  std::string path = model + "/" + op.a;
  int fd = open(path.c_str(), O_RDWR);
  if (fd < 0) return false;
  std::string old;
  bool ok = ReadAll(fd, &old);
  const WriteArgs w = WriteOf(op);
  bool matched = false;
  for (size_t j = 4096 - w.off % 4096; ok && !matched && j < w.data.size(); j += 4096) {
    ok = pwrite(fd, w.data.data(), j, static_cast<off_t>(w.off)) == static_cast<ssize_t>(j);
    matched = ok && DescribeForCrash(model + "/" + top) == got;
    ok = ok && ftruncate(fd, static_cast<off_t>(old.size())) == 0 &&
         pwrite(fd, old.data(), old.size(), 0) == static_cast<ssize_t>(old.size());
  }
  close(fd);
  return matched;
}

class CrashTest : public FuseTest {
 protected:
  // kill -9 of every daemon serving the store; returns their pids.
  std::vector<pid_t> KillDaemonsNow() {
    std::vector<pid_t> daemons = DaemonPids();
    for (pid_t d : daemons) kill(d, SIGKILL);
    return daemons;
  }

  // Waits up to 60 s for child `k` (which sees errors once the daemon is
  // dead) to exit; a child still blocked then is a failure (and is killed).
  void WaitChild(pid_t k, const char* what) {
    int st = 0;
    for (int i = 0; i < 1200; i++) {
      if (waitpid(k, &st, WNOHANG) == k) return;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    ADD_FAILURE() << what << " " << k << " still blocked 60 s after the daemon was killed";
    kill(k, SIGKILL);
    waitpid(k, &st, 0);
  }

  // After a kill -9: waits for the daemons to be gone, detaches the dead
  // mount (fusermount3 -u -z) and mounts the volume again at mnt_.
  ::testing::AssertionResult CleanUpAndRemount(const std::vector<pid_t>& daemons) {
    for (pid_t d : daemons)
      for (int i = 0; i < 200 && ProcessAlive(d); i++) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    RunResult u = Shell("fusermount3 -u -z " + Quote(mnt_), 30);
    mounts_.erase(std::remove(mounts_.begin(), mounts_.end(), mnt_), mounts_.end());
    if (u.code != 0) return ::testing::AssertionFailure() << "fusermount3 -u -z: " << u.err;
    if (FindMount(mnt_).mounted) return ::testing::AssertionFailure() << mnt_ << " still mounted after -u -z";
    return Mount(kVolume, mnt_);
  }

  // Checks a writer's log against the remounted tree; returns problems.
  std::string CheckLog(const std::string& log_path, uint64_t seed, uint64_t* bytes) {
    std::ifstream in(log_path);
    std::string line, problems;
    struct Expect {
      std::string data;
      bool pending = false;  // an overwrite intent without its fsync
      size_t p_off = 0, p_len = 0;
      uint64_t p_tag = 0;
    };
    std::map<std::string, Expect> files;
    uint64_t journal_records = 0;
    std::string journal;
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      std::string k, path;
      ls >> k >> path;
      if (k == "F") {
        size_t size;
        uint64_t tag;
        ls >> size >> tag;
        files[path] = Expect{Content(seed, tag, size)};
      } else if (k == "I" || k == "O") {
        size_t off, len;
        uint64_t tag;
        ls >> off >> len >> tag;
        Expect& e = files[path];
        if (k == "I") {
          e.pending = true;
          e.p_off = off;
          e.p_len = len;
          e.p_tag = tag;
        } else {
          std::string d = Content(seed, tag, len);
          if (e.data.size() < off + len) e.data.resize(off + len, '\0');
          e.data.replace(off, len, d);
          e.pending = false;
        }
      } else if (k == "J") {
        ls >> journal_records;
        journal = path;
      }
    }
    for (const auto& [path, e] : files) {
      std::string got = ReadFile(P(path));
      *bytes += e.data.size();
      if (!e.pending) {
        if (got != e.data)
          problems += path + ": fsync'd content lost (want " + std::to_string(e.data.size()) + " bytes, got " +
                      std::to_string(got.size()) + (got.rfind("<ERR", 0) == 0 ? " " + got : "") + ")\n";
        continue;
      }
      // An overwrite was in flight: its range may hold the old or the new bytes.
      std::string after = e.data;
      if (after.size() < e.p_off + e.p_len) after.resize(e.p_off + e.p_len, '\0');
      after.replace(e.p_off, e.p_len, Content(seed, e.p_tag, e.p_len));
      if (got == e.data || got == after) continue;
      bool ok = got.size() == e.data.size() || got.size() == after.size();
      for (size_t i = 0; ok && i < got.size(); i++) {
        bool in_range = i >= e.p_off && i < e.p_off + e.p_len;
        char old_c = i < e.data.size() ? e.data[i] : '\0', new_c = after[i < after.size() ? i : 0];
        ok = in_range ? (got[i] == old_c || got[i] == new_c) : got[i] == old_c;
      }
      if (!ok) problems += path + ": content outside an in-flight overwrite changed or lost\n";
    }
    if (!journal.empty()) {
      std::string got = ReadFile(P(journal));
      if (got.size() < journal_records * kRecord) {
        problems += journal + ": " + std::to_string(got.size() / kRecord) + " records, " +
                    std::to_string(journal_records) + " were fsync'd\n";
      } else {
        for (uint64_t r = 0; r < journal_records; r++)
          if (got.compare(r * kRecord, kRecord, Content(seed ^ 0xABCDEF, r, kRecord)) != 0) {
            problems += journal + ": record " + std::to_string(r) + " damaged\n";
            break;
          }
      }
      *bytes += journal_records * kRecord;
    }
    return problems;
  }
};

TEST_F(CrashTest, KillDaemonDuringHeavyWritesKeepsEveryFsyncedByte) {
  if (NativeMode()) GTEST_SKIP() << "needs a daemon to kill";
  const uint64_t iterations = EnvU64("HASHFS_CRASH_ITERATIONS", 3);
  const int writers = static_cast<int>(EnvU64("HASHFS_CRASH_WRITERS", 3));
  const uint64_t base = EnvU64("HASHFS_CRASH_SEED", 777);
  for (uint64_t it = 0; it < iterations; it++) {
    const uint64_t seed = base + it;
    SCOPED_TRACE("crash iteration " + std::to_string(it) + ", seed " + std::to_string(seed) +
                 " (replay: HASHFS_CRASH_SEED=" + std::to_string(seed) + " HASHFS_CRASH_ITERATIONS=1)");
    std::mt19937_64 rng(seed);
    const int delay_ms = 400 + static_cast<int>(rng() % 1600);
    std::vector<pid_t> kids;
    std::vector<std::string> logs;
    std::vector<uint64_t> seeds;
    for (int w = 0; w < writers; w++) {
      std::string dir = "it" + std::to_string(it) + "w" + std::to_string(w);
      logs.push_back(H(dir + ".log"));
      seeds.push_back(seed * 1000 + static_cast<uint64_t>(w));
      pid_t pid = fork();
      if (pid == 0) {
        Writer(mnt_, dir, logs.back(), seeds.back());
        _exit(0);
      }
      ASSERT_GT(pid, 0);
      kids.push_back(pid);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(delay_ms));
    // A slow daemon (sanitizers, a loaded machine) may not have completed
    // any fsync yet: then the kill waits for the first one (up to 60 s), so
    // that the check below always has something to check.
    auto any_fsynced = [&] {
      for (const auto& l : logs)
        if (ReadFile(l).find('\n') != std::string::npos) return true;
      return false;
    };
    for (int i = 0; i < 3000 && !any_fsynced(); i++) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    std::vector<pid_t> daemons = KillDaemonsNow();
    ASSERT_FALSE(daemons.empty()) << "cannot find the mount daemon";
    // The writers see errors and stop.
    for (pid_t k : kids) WaitChild(k, "writer");
    ASSERT_TRUE(CleanUpAndRemount(daemons)) << "remount after kill -9 failed";
    uint64_t bytes = 0;
    size_t lines = 0;
    for (int w = 0; w < writers; w++) {
      std::string problems = CheckLog(logs[static_cast<size_t>(w)], seeds[static_cast<size_t>(w)], &bytes);
      EXPECT_EQ(problems, "") << "writer " << w;
      std::string l = ReadFile(logs[static_cast<size_t>(w)]);
      lines += static_cast<size_t>(std::count(l.begin(), l.end(), '\n'));
    }
    std::fprintf(stderr, "[crash] seed %llu: killed after %d ms; %zu fsync'd operations, %llu bytes checked\n",
                 static_cast<unsigned long long>(seed), delay_ms, lines, static_cast<unsigned long long>(bytes));
    EXPECT_GT(lines, 0u) << "no fsync completed before the kill: the test checked nothing";
    if (HashfsMode()) {
      RunResult v = Hashfs({"verify"});
      EXPECT_EQ(v.code, 0) << v.out << v.err;
    }
    // The remounted volume takes writes again.
    ASSERT_TRUE(WriteFile(P("after-crash-" + std::to_string(it)), "alive"));
    if (HasFatalFailure()) return;
  }
  ASSERT_TRUE(Unmount(mnt_));
  if (HashfsMode()) {
    RunResult v = Hashfs({"verify"});
    EXPECT_EQ(v.code, 0) << v.out << v.err;
  }
  ASSERT_TRUE(Mount(kVolume, mnt_));
  EXPECT_EQ(ReadFile(P("after-crash-0")), "alive");
}

// kill -9 of the daemon while one process applies a random operation
// sequence: after the remount the round's tree equals the state after some
// prefix of the sequence, no shorter than the last fsync that returned (or
// that state plus a page-aligned first part of the write that followed it:
// see PartialWriteMatches).
// HASHFS_CRASH_RANDOM_ITERATIONS (default 4) rounds, seeded from
// HASHFS_CRASH_SEED (each round prints its seed).
TEST_F(CrashTest, KillDuringRandomOperationsLeavesAPrefixOfThem) {
  if (NativeMode()) GTEST_SKIP() << "needs a daemon to kill";
  const uint64_t iterations = EnvU64("HASHFS_CRASH_RANDOM_ITERATIONS", 4);
  const uint64_t base = EnvU64("HASHFS_CRASH_SEED", 777);
  constexpr size_t kMaxOps = 200000;
  uint64_t applied_total = 0, partial_writes = 0;
  for (uint64_t it = 0; it < iterations; it++) {
    const uint64_t seed = base * 7919 + it;
    SCOPED_TRACE("random crash round " + std::to_string(it) + ", seed " + std::to_string(seed) +
                 " (replay: HASHFS_CRASH_SEED=" + std::to_string(base) + " HASHFS_CRASH_RANDOM_ITERATIONS=" +
                 std::to_string(it + 1) + ")");
    const std::string top = "r" + std::to_string(it);
    const std::vector<RandomOp> ops = RandomOps(seed, top, kMaxOps);
    std::mt19937_64 rng(seed);
    const int delay_ms = 200 + static_cast<int>(rng() % 1800);
    // The child reports, through a pipe, each operation it starts (2i) and
    // each fsync that returned (2i+1).
    int fds[2];
    ASSERT_EQ(pipe2(fds, O_CLOEXEC), 0);
    pid_t kid = fork();
    ASSERT_GE(kid, 0);
    if (kid == 0) {
      close(fds[0]);
      for (size_t i = 0; i < ops.size(); i++) {
        uint64_t rec = 2 * i;
        if (write(fds[1], &rec, sizeof rec) != sizeof rec) _exit(1);
        int e = ApplyRandomOp(mnt_, ops[i]);
        if (e == ENOTCONN || e == ECONNABORTED) _exit(0);
        if (ops[i].kind == RandomOp::kFsync && e == 0) {
          rec = 2 * i + 1;
          if (write(fds[1], &rec, sizeof rec) != sizeof rec) _exit(1);
        }
      }
      _exit(0);
    }
    close(fds[1]);
    int64_t last_started = -1, last_synced = -1;
    auto drain = [&](bool until_eof) {
      uint64_t rec;
      for (;;) {
        pollfd p{fds[0], POLLIN, 0};
        if (poll(&p, 1, until_eof ? 60000 : 0) <= 0) return;
        ssize_t r = read(fds[0], &rec, sizeof rec);
        if (r != static_cast<ssize_t>(sizeof rec)) return;
        if (rec % 2 == 0) last_started = static_cast<int64_t>(rec / 2);
        else last_synced = static_cast<int64_t>(rec / 2);
      }
    };
    auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms);
    while (std::chrono::steady_clock::now() < deadline) {
      drain(false);
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    // A slow daemon (sanitizers, a loaded machine): wait for a first fsync.
    for (int i = 0; i < 3000 && last_synced < 0; i++) {
      drain(false);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    std::vector<pid_t> daemons = KillDaemonsNow();
    ASSERT_FALSE(daemons.empty()) << "cannot find the mount daemon";
    WaitChild(kid, "operation process");
    drain(true);
    close(fds[0]);
    ASSERT_GE(last_synced, 0) << "no fsync returned before the kill: the round checks nothing";
    ASSERT_TRUE(CleanUpAndRemount(daemons)) << "remount after kill -9 failed";
    const auto got = DescribeForCrash(P(top));
    // Replay on the host: the state after k operations, for every k the
    // surviving root may hold: [last fsync that returned, last started + 1].
    const std::string model = H("model" + std::to_string(it));
    ASSERT_EQ(mkdir(model.c_str(), 0755), 0);
    const size_t lo = static_cast<size_t>(last_synced), hi = static_cast<size_t>(last_started) + 1;
    int64_t matched = -1;
    const uint64_t partial_before = partial_writes;
    std::map<std::string, std::string> at_lo;
    for (size_t k = 0; k <= hi && matched < 0; k++) {
      if (k >= lo) {
        auto want = DescribeForCrash(model + "/" + top);
        if (k == lo) at_lo = want;
        if (want == got) matched = static_cast<int64_t>(k);
        if (matched < 0 && k < hi && PartialWriteMatches(model, top, ops[k], got)) {
          matched = static_cast<int64_t>(k);
          partial_writes++;
        }
      }
      if (k < hi) ApplyRandomOp(model, ops[k]);
    }
    if (matched < 0) {
      // Diagnosis: is it an older state (an fsync'd change lost)?
      std::string older = "none";
      std::string m2 = H("model-scan" + std::to_string(it));
      mkdir(m2.c_str(), 0755);
      for (size_t k = 0; k < lo; k++) {
        if (DescribeForCrash(m2 + "/" + top) == got) older = std::to_string(k);
        ApplyRandomOp(m2, ops[k]);
      }
      ADD_FAILURE() << "the remounted tree is no state between operation " << lo << " (last fsync) and " << hi
                    << " (in flight at the kill); the last earlier state it equals: " << older
                    << "; against the state at the fsync:\n"
                    << DiffDescriptions(at_lo, got);
    }
    std::fprintf(stderr, "[crash] random round %llu, seed %llu: killed after %d ms, %lld operations started, last "
                         "fsync at %lld, tree matches the state after %lld%s\n",
                 static_cast<unsigned long long>(it), static_cast<unsigned long long>(seed), delay_ms,
                 static_cast<long long>(last_started + 1), static_cast<long long>(last_synced),
                 static_cast<long long>(matched), partial_writes > partial_before ? " (with part of the next write)" : "");
    applied_total += hi;
    if (HashfsMode()) {
      RunResult v = Hashfs({"verify"});
      EXPECT_EQ(v.code, 0) << v.out << v.err;
    }
    if (HasFailure()) return;
  }
  EXPECT_GT(applied_total, iterations * 10) << "the rounds ran almost no operations";
}

// A crash right after a burst of namespace operations with a final fsync of
// the directory: every entry created before that fsync survives.
TEST_F(CrashTest, KillAfterDirectoryFsyncKeepsNamespace) {
  if (NativeMode()) GTEST_SKIP() << "needs a daemon to kill";
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  for (int i = 0; i < 300; i++) {
    ASSERT_TRUE(WriteFile(P("d/n" + std::to_string(i)), std::to_string(i)));
    if (i % 3 == 0) {
      ASSERT_EQ(rename(P("d/n" + std::to_string(i)).c_str(), P("d/r" + std::to_string(i)).c_str()), 0);
    }
    if (i % 5 == 0) {
      ASSERT_EQ(mkdir(P("d/sub" + std::to_string(i)).c_str(), 0700), 0);
    }
  }
  int dfd = open(P("d").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(dfd, 0);
  ASSERT_EQ(fsync(dfd), 0);
  close(dfd);
  auto want = DescribeTree(P("d"));
  // Unsynced work after the fsync may or may not survive.
  int fd = open(P("unsynced").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_TRUE(WriteAll(fd, std::string(1 << 20, 'u').data(), 1 << 20));
  std::vector<pid_t> daemons = KillDaemonsNow();
  close(fd);
  ASSERT_TRUE(CleanUpAndRemount(daemons));
  auto got = DescribeTree(P("d"));
  EXPECT_EQ(want, got) << DiffDescriptions(want, got);
  if (HashfsMode()) {
    RunResult v = Hashfs({"verify"});
    EXPECT_EQ(v.code, 0) << v.out << v.err;
  }
}

}  // namespace
}  // namespace fusetest
