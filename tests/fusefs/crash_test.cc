// kill -9 of the mount daemon during heavy writes: after cleaning up the dead
// mount and remounting, every byte whose fsync returned is there and
// `hashfs verify` is clean. Seeded; HASHFS_CRASH_ITERATIONS (default 3) and
// HASHFS_CRASH_WRITERS (default 3) scale it, HASHFS_CRASH_SEED replays one.
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

class CrashTest : public FuseTest {
 protected:
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
    auto daemons = DaemonPids();
    ASSERT_FALSE(daemons.empty()) << "cannot find the mount daemon";
    for (pid_t d : daemons) kill(d, SIGKILL);
    // The writers see errors and stop; a writer stuck for 60 s is a failure.
    for (pid_t k : kids) {
      int st = 0;
      bool exited = false;
      for (int i = 0; i < 1200 && !exited; i++) {
        exited = waitpid(k, &st, WNOHANG) == k;
        if (!exited) std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      if (!exited) {
        ADD_FAILURE() << "writer " << k << " still blocked 60 s after the daemon was killed";
        kill(k, SIGKILL);
        waitpid(k, &st, 0);
      }
    }
    for (pid_t d : daemons)
      for (int i = 0; i < 200 && ProcessAlive(d); i++) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    RunResult u = Shell("fusermount3 -u -z " + Quote(mnt_), 30);
    EXPECT_EQ(u.code, 0) << u.err;
    mounts_.erase(std::remove(mounts_.begin(), mounts_.end(), mnt_), mounts_.end());
    ASSERT_FALSE(FindMount(mnt_).mounted);
    // Remount at the last committed root.
    ASSERT_TRUE(Mount(kVolume, mnt_)) << "remount after kill -9 failed";
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
  for (pid_t d : DaemonPids()) kill(d, SIGKILL);
  close(fd);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  Shell("fusermount3 -u -z " + Quote(mnt_), 30);
  mounts_.erase(std::remove(mounts_.begin(), mounts_.end(), mnt_), mounts_.end());
  ASSERT_TRUE(Mount(kVolume, mnt_));
  auto got = DescribeTree(P("d"));
  EXPECT_EQ(want, got) << DiffDescriptions(want, got);
  if (HashfsMode()) {
    RunResult v = Hashfs({"verify"});
    EXPECT_EQ(v.code, 0) << v.out << v.err;
  }
}

}  // namespace
}  // namespace fusetest
