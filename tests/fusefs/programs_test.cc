// Real programs inside the mount: tar, rsync, git, sqlite3, make + cc.
// A program that is not installed makes its test skip (.ci/deps installs them).
#include "fuse_test_util.h"

namespace fusetest {
namespace {

class ProgramsTest : public FuseTest {
 protected:
  RunResult Sh(const std::string& cmd, int timeout_s = 400) {
    // HOME on the host scratch dir so no user configuration leaks in (git, sqlite).
    return Shell("export HOME=" + Quote(host_) + " GIT_CONFIG_NOSYSTEM=1 LC_ALL=C; exec bash -c " + Quote(cmd),
                 timeout_s);
  }
  // Files with everything tar and rsync should carry: hardlinks, symlinks,
  // modes, owners, times, xattrs, empty dirs, long names, a sparse file.
  void MakeExtras(const std::string& d) {
    ASSERT_EQ(mkdir(d.c_str(), 0755), 0);
    ASSERT_TRUE(WriteFile(d + "/plain", "plain\n"));
    ASSERT_TRUE(WriteFile(d + "/random.bin", RandomBytes(3 << 20, 11)));
    ASSERT_EQ(link((d + "/plain").c_str(), (d + "/hardlink").c_str()), 0);
    ASSERT_EQ(mkdir((d + "/sub").c_str(), 0700), 0);
    ASSERT_EQ(link((d + "/plain").c_str(), (d + "/sub/hardlink2").c_str()), 0);
    ASSERT_EQ(symlink("../plain", (d + "/sub/symlink").c_str()), 0);
    ASSERT_EQ(symlink("/nonexistent/abs", (d + "/dangling").c_str()), 0);
    ASSERT_EQ(mkdir((d + "/empty").c_str(), 0750), 0);
    ASSERT_TRUE(WriteFile(d + "/" + std::string(200, 'L'), "long name"));
    ASSERT_TRUE(WriteFile(d + "/setuid", "s"));
    ASSERT_EQ(chmod((d + "/setuid").c_str(), 04755), 0);
    ASSERT_TRUE(WriteFile(d + "/owned", "o"));
    ASSERT_EQ(chown((d + "/owned").c_str(), 1234, 5678), 0);
    ASSERT_EQ(setxattr((d + "/plain").c_str(), "user.color", "blue", 4, 0), 0);
    ASSERT_EQ(setxattr((d + "/sub").c_str(), "user.dir", "yes", 3, 0), 0);
    ASSERT_EQ(mkfifo((d + "/fifo").c_str(), 0644), 0);
    int fd = open((d + "/sparse").c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(pwrite(fd, "end", 3, 20 << 20), 3);
    close(fd);
    struct timespec ts[2] = {{1234567890, 0}, {1234567890, 0}};
    ASSERT_EQ(utimensat(AT_FDCWD, (d + "/plain").c_str(), ts, 0), 0);
    ASSERT_EQ(utimensat(AT_FDCWD, (d + "/sub/symlink").c_str(), ts, AT_SYMLINK_NOFOLLOW), 0);
    ASSERT_EQ(utimensat(AT_FDCWD, (d + "/empty").c_str(), ts, 0), 0);
  }
  // Gives every entry under d a distinct old mtime: rsync does not set times
  // that it considers equal (same second), so fresh files would not compare.
  static void AgeTree(const std::string& d) {
    Shell("find " + Quote(d) + " -depth -print0 | xargs -0 touch -h -d @1400000000");
  }
  static DescribeOptions Full() {
    DescribeOptions o;
    o.mtime = true;
    o.dir_mtime = true;
    return o;
  }
};

TEST_F(ProgramsTest, TarExtractAndCreateRoundTrip) {
  for (const char* p : {"tar", "diff"})
    if (!HaveProgram(p)) GTEST_SKIP() << p << " not installed";
  // A few thousand real files (override with HASHFS_TAR_SOURCE=DIR for a soak).
  const char* src_env = std::getenv("HASHFS_TAR_SOURCE");
  std::string sources = src_env ? Quote(src_env)
                                : "-C /usr/include linux c++ x86_64-linux-gnu openssl";
  MakeExtras(H("extras"));
  RunResult r = Sh("tar --xattrs --xattrs-include='user.*' -cf " + Quote(H("in.tar")) + " " + sources + " -C " +
                   Quote(host_) + " extras");
  ASSERT_EQ(r.code, 0) << r.err;
  // Reference extraction on the host, then the same into the mount.
  ASSERT_EQ(mkdir(H("ref").c_str(), 0755), 0);
  r = Sh("tar --xattrs --xattrs-include='user.*' -xpf " + Quote(H("in.tar")) + " -C " + Quote(H("ref")));
  ASSERT_EQ(r.code, 0) << r.err;
  ASSERT_EQ(mkdir(P("x").c_str(), 0755), 0);
  auto t0 = std::chrono::steady_clock::now();
  r = Sh("tar --xattrs --xattrs-include='user.*' -xpf " + Quote(H("in.tar")) + " -C " + Quote(P("x")));
  ASSERT_EQ(r.code, 0) << r.err;
  std::fprintf(stderr, "[tar] extracted into the mount in %.1f s\n",
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  r = Sh("diff -r --no-dereference -x fifo " + Quote(H("ref")) + " " + Quote(P("x")));
  EXPECT_EQ(r.code, 0) << r.out.substr(0, 4000) << r.err.substr(0, 2000);
  auto want = DescribeTree(H("ref"), Full()), got = DescribeTree(P("x"), Full());
  EXPECT_EQ(want.size(), got.size());
  EXPECT_TRUE(want == got) << DiffDescriptions(want, got);
  // tar -c of both, sorted by name: identical listings (modes, owners, sizes, times, links).
  struct timespec top[2] = {{1500000000, 0}, {1500000000, 0}};
  ASSERT_EQ(utimensat(AT_FDCWD, P("x").c_str(), top, 0), 0);
  ASSERT_EQ(utimensat(AT_FDCWD, H("ref").c_str(), top, 0), 0);
  std::string list_cmd = " --sort=name --xattrs --format=posix --pax-option=delete=atime,delete=ctime -cf ";
  ASSERT_EQ(Sh("tar -C " + Quote(P("x")) + list_cmd + Quote(H("out.tar")) + " .").code, 0);
  ASSERT_EQ(Sh("tar -C " + Quote(H("ref")) + list_cmd + Quote(H("ref.tar")) + " .").code, 0);
  RunResult lo = Sh("tar --full-time -tvf " + Quote(H("out.tar")));
  RunResult lr = Sh("tar --full-time -tvf " + Quote(H("ref.tar")));
  ASSERT_EQ(lo.code, 0);
  EXPECT_GT(std::count(lr.out.begin(), lr.out.end(), '\n'), 2000);
  EXPECT_TRUE(lo.out == lr.out) << "tar listings differ; diff:\n"
                                << Sh("diff <(tar --full-time -tvf " + Quote(H("ref.tar")) + ") <(tar --full-time -tvf " +
                                      Quote(H("out.tar")) + ") | head -40")
                                       .out;
  // The archive made from the mount extracts to the same tree again.
  ASSERT_EQ(mkdir(H("again").c_str(), 0755), 0);
  ASSERT_EQ(Sh("tar --xattrs --xattrs-include='user.*' -xpf " + Quote(H("out.tar")) + " -C " + Quote(H("again"))).code,
            0);
  auto again = DescribeTree(H("again"), Full());
  EXPECT_TRUE(again == want) << DiffDescriptions(want, again);
  ASSERT_TRUE(Remount());
  got = DescribeTree(P("x"), Full());
  EXPECT_TRUE(want == got) << "after remount:\n" << DiffDescriptions(want, got);
}

TEST_F(ProgramsTest, RsyncInAndOutKeepsHardlinksXattrsAcls) {
  if (!HaveProgram("rsync")) GTEST_SKIP() << "rsync not installed";
  MakeExtras(H("src"));
  bool acl = HaveProgram("setfacl");
  if (acl) {
    ASSERT_EQ(Sh("setfacl -m u:1234:rw,g:77:r " + Quote(H("src/plain"))).code, 0);
    ASSERT_EQ(Sh("setfacl -d -m u:1234:rwx " + Quote(H("src/sub"))).code, 0);
  }
  for (int i = 0; i < 300; i++) ASSERT_TRUE(WriteFile(H("src/sub/n" + std::to_string(i)), RandomBytes(i * 37, i)));
  AgeTree(H("src"));
  RunResult r = Sh("rsync -aHAX " + Quote(H("src") + "/") + " " + Quote(P("dst") + "/"));
  ASSERT_EQ(r.code, 0) << r.err;
  auto want = DescribeTree(H("src"), Full()), got = DescribeTree(P("dst"), Full());
  EXPECT_TRUE(want == got) << DiffDescriptions(want, got);
  if (acl) {
    // Path order, not readdir order (which differs between file systems).
    RunResult a = Sh("cd " + Quote(H("src")) + " && find . -print0 | sort -z | xargs -0 getfacl -p 2>&1");
    RunResult b = Sh("cd " + Quote(P("dst")) + " && find . -print0 | sort -z | xargs -0 getfacl -p 2>&1");
    EXPECT_EQ(a.out, b.out);
  }
  // A second run finds nothing to do (sizes, times, modes, links all kept).
  r = Sh("rsync -aHAX --itemize-changes " + Quote(H("src") + "/") + " " + Quote(P("dst") + "/"));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "") << "rsync found differences on the second run";
  // Change a few things and sync again (in-place updates, deletions).
  ASSERT_TRUE(WriteFile(H("src/sub/n5"), "changed"));
  ASSERT_EQ(unlink(H("src/sub/n6").c_str()), 0);
  ASSERT_EQ(setxattr(H("src/plain").c_str(), "user.color", "red", 3, 0), 0);
  AgeTree(H("src/sub"));
  r = Sh("rsync -aHAX --delete " + Quote(H("src") + "/") + " " + Quote(P("dst") + "/"));
  EXPECT_EQ(r.code, 0) << r.err;
  r = Sh("rsync -aHAX --inplace --no-whole-file " + Quote(H("src") + "/") + " " + Quote(P("dst") + "/"));
  EXPECT_EQ(r.code, 0) << r.err;
  want = DescribeTree(H("src"), Full());
  got = DescribeTree(P("dst"), Full());
  EXPECT_TRUE(want == got) << DiffDescriptions(want, got);
  // And out again, after a remount.
  ASSERT_TRUE(Remount());
  r = Sh("rsync -aHAX " + Quote(P("dst") + "/") + " " + Quote(H("back") + "/"));
  ASSERT_EQ(r.code, 0) << r.err;
  auto back = DescribeTree(H("back"), Full());
  EXPECT_TRUE(want == back) << DiffDescriptions(want, back);
  r = Sh("rsync -aHAXc --itemize-changes --dry-run " + Quote(P("dst") + "/") + " " + Quote(H("src") + "/"));
  EXPECT_EQ(r.out, "") << "checksums differ";
}

TEST_F(ProgramsTest, GitInitAddCommitGcFsck) {
  if (!HaveProgram("git")) GTEST_SKIP() << "git not installed";
  std::string repo = P("repo");
  ASSERT_EQ(mkdir(repo.c_str(), 0755), 0);
  std::string git = "git -C " + Quote(repo) + " ";
  ASSERT_EQ(Sh(git + "init -q && " + git + "config user.email t@e.st && " + git + "config user.name T").code, 0);
  ASSERT_EQ(Sh("cp -r /usr/include/linux " + Quote(repo + "/src")).code, 0);
  RunResult r = Sh(git + "add -A && " + git + "commit -q -m first");
  ASSERT_EQ(r.code, 0) << r.err;
  for (int i = 0; i < 5; i++) {
    ASSERT_TRUE(WriteFile(repo + "/file" + std::to_string(i), RandomBytes(100000, i) + std::to_string(i)));
    ASSERT_EQ(Sh("echo change " + std::to_string(i) + " >> " + Quote(repo + "/src/kernel.h")).code, 0);
    r = Sh(git + "add -A && " + git + "commit -q -m change" + std::to_string(i));
    ASSERT_EQ(r.code, 0) << r.err;
  }
  ASSERT_EQ(Sh(git + "checkout -q -b branch && " + git + "rm -q -r src/netfilter && " + git + "commit -q -m rm").code,
            0);
  ASSERT_EQ(Sh(git + "checkout -q master 2>/dev/null || " + git + "checkout -q main").code, 0);
  r = Sh(git + "gc -q --aggressive --prune=now");
  EXPECT_EQ(r.code, 0) << r.err;
  r = Sh(git + "fsck --full --strict");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(r.err.find("error"), std::string::npos) << r.err;
  EXPECT_EQ(Sh(git + "rev-list --all --count").out, "7\n");
  EXPECT_EQ(Sh(git + "status --porcelain").out, "");
  // Clone out and back in; fsck both; a remount keeps everything.
  r = Sh("git clone -q " + Quote(repo) + " " + Quote(H("clone")) + " && git -C " + Quote(H("clone")) + " fsck --full");
  EXPECT_EQ(r.code, 0) << r.err;
  r = Sh("git clone -q --no-local " + Quote(H("clone")) + " " + Quote(P("clone2")) + " && git -C " +
         Quote(P("clone2")) + " fsck --full");
  EXPECT_EQ(r.code, 0) << r.err;
  ASSERT_TRUE(Remount());
  r = Sh(git + "fsck --full --strict");
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_EQ(Sh(git + "status --porcelain").out, "");
  EXPECT_EQ(Sh(git + "rev-list --all --count").out, "7\n");
}

// Starts argv with pipes on stdin and stdout.
pid_t Spawn(const std::vector<std::string>& argv, int* in_fd, int* out_fd) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(in[0], 0);
    dup2(out[1], 1);
    dup2(out[1], 2);
    std::vector<char*> a;
    for (const auto& s : argv) a.push_back(const_cast<char*>(s.c_str()));
    a.push_back(nullptr);
    execvp(a[0], a.data());
    _exit(127);
  }
  close(in[0]);
  close(out[1]);
  *in_fd = in[1];
  *out_fd = out[0];
  return pid;
}

// Whatever fd has to read right now (for diagnostics).
std::string ReadAvailable(int fd) {
  std::string got;
  for (;;) {
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, 0) <= 0) break;
    char buf[4096];
    ssize_t n = read(fd, buf, sizeof buf);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

TEST_F(ProgramsTest, Sqlite3TransactionsAndKillMidTransaction) {
  if (!HaveProgram("sqlite3")) GTEST_SKIP() << "sqlite3 not installed";
  ASSERT_EQ(mkdir(P("db").c_str(), 0755), 0);
  for (const char* mode : {"DELETE", "WAL"}) {
    SCOPED_TRACE(std::string("journal_mode=") + mode);
    std::string db = P(std::string("db/") + mode + ".db");
    auto sql = [&](const std::string& q) { return Sh("sqlite3 " + Quote(db) + " " + Quote(q)); };
    RunResult r = sql(std::string("PRAGMA journal_mode=") + mode +
                      "; CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX tv ON t(v);");
    ASSERT_EQ(r.code, 0) << r.err;
    long expected = 0;
    for (int tx = 0; tx < 10; tx++) {
      r = sql("BEGIN; WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<500) "
              "INSERT INTO t(v) SELECT hex(randomblob(100)) FROM c; COMMIT;");
      ASSERT_EQ(r.code, 0) << r.err;
      expected += 500;
    }
    r = sql("BEGIN; DELETE FROM t WHERE id % 3 = 0; ROLLBACK;");  // a rolled-back transaction
    ASSERT_EQ(r.code, 0) << r.err;
    r = sql("PRAGMA integrity_check; SELECT count(*) FROM t;");
    EXPECT_EQ(r.out, "ok\n" + std::to_string(expected) + "\n") << r.err;
    // A big transaction, killed after it has spilled pages into the database.
    int in = -1, out = -1;
    pid_t pid = Spawn({"sqlite3", db}, &in, &out);
    ASSERT_GT(pid, 0);
    std::string script =
        "PRAGMA cache_size=10;\n"
        "BEGIN;\n"
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x<8000) "
        "INSERT INTO t(v) SELECT hex(randomblob(300)) FROM c;\n"
        "UPDATE t SET v = 'x' || v WHERE id % 7 = 0;\n"
        ".system touch " + H("marker") + "\n";
    unlink(H("marker").c_str());
    ASSERT_TRUE(WriteAll(in, script.data(), script.size()));
    // Output to a pipe is buffered, so the marker is a file the shell touches.
    bool reached = false;
    for (int i = 0; i < 3000 && !reached; i++) {
      reached = access(H("marker").c_str(), F_OK) == 0;
      if (!reached) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    std::string got = ReadAvailable(out);
    kill(pid, SIGKILL);
    int st;
    waitpid(pid, &st, 0);
    close(in);
    close(out);
    ASSERT_TRUE(reached) << "sqlite3 never reached the middle of the transaction: " << got;
    struct stat js;
    std::string journal = db + (std::string(mode) == "WAL" ? "-wal" : "-journal");
    EXPECT_EQ(lstat(journal.c_str(), &js), 0) << "no " << journal << " left by the killed transaction";
    if (std::string(mode) == "DELETE") {
      ASSERT_TRUE(Remount());  // recover the hot journal after a remount
    }
    r = sql("PRAGMA integrity_check; SELECT count(*) FROM t;");
    EXPECT_EQ(r.out, "ok\n" + std::to_string(expected) + "\n") << r.err;
    // It still takes writes afterwards.
    r = sql("INSERT INTO t(v) VALUES('after'); PRAGMA wal_checkpoint(TRUNCATE); SELECT count(*) FROM t;");
    EXPECT_EQ(r.code, 0) << r.err;
    expected++;
    ASSERT_TRUE(Remount());
    r = sql("PRAGMA integrity_check; SELECT count(*) FROM t WHERE v='after'; SELECT count(*) FROM t;");
    EXPECT_EQ(r.out, "ok\n1\n" + std::to_string(expected) + "\n") << r.err;
  }
}

TEST_F(ProgramsTest, BuildSmallCProjectWithMake) {
  for (const char* p : {"make", "cc"})
    if (!HaveProgram(p)) GTEST_SKIP() << p << " not installed";
  std::string d = P("proj");
  ASSERT_EQ(mkdir(d.c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(d + "/util.h", "#pragma once\n#define FACTOR 6\nint mul(int a);\n"));
  ASSERT_TRUE(WriteFile(d + "/util.c", "#include \"util.h\"\nint mul(int a) { return a * FACTOR; }\n"));
  ASSERT_TRUE(WriteFile(d + "/main.c",
                        "#include <stdio.h>\n#include \"util.h\"\n"
                        "int main(void) { printf(\"%d\\n\", mul(7)); return 0; }\n"));
  for (int i = 0; i < 20; i++)
    ASSERT_TRUE(WriteFile(d + "/gen" + std::to_string(i) + ".c",
                          "int gen" + std::to_string(i) + "(int x) { return x + " + std::to_string(i) + "; }\n"));
  ASSERT_TRUE(WriteFile(d + "/Makefile",
                        "SRCS := $(wildcard *.c)\nOBJS := $(SRCS:.c=.o)\n"
                        "prog: $(OBJS)\n\t$(CC) -o $@ $^\n"
                        "%.o: %.c util.h\n\t$(CC) -O1 -c -o $@ $<\n"
                        "lib.a: $(OBJS)\n\tar rcs $@ $^\n"
                        "clean:\n\trm -f prog *.o lib.a\n"));
  RunResult r = Sh("make -C " + Quote(d) + " -j2 prog lib.a");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  r = Sh(Quote(d + "/prog"));
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "42\n");
  // Up to date: nothing rebuilt.
  r = Sh("make -C " + Quote(d) + " prog");
  EXPECT_NE(r.out.find("is up to date"), std::string::npos) << r.out;
  // Touching the header rebuilds everything that depends on it.
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  ASSERT_TRUE(WriteFile(d + "/util.h", "#pragma once\n#define FACTOR 10\nint mul(int a);\n"));
  r = Sh("make -C " + Quote(d) + " -j2 prog");
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_NE(r.out.find("util.o"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("main.o"), std::string::npos) << r.out;
  EXPECT_EQ(Sh(Quote(d + "/prog")).out, "70\n");
  ASSERT_TRUE(Remount());
  EXPECT_EQ(Sh(Quote(d + "/prog")).out, "70\n");
  r = Sh("make -C " + Quote(d) + " prog");
  EXPECT_NE(r.out.find("is up to date"), std::string::npos) << "after remount: " << r.out;
  r = Sh("make -C " + Quote(d) + " clean && make -C " + Quote(d) + " -j2 prog && " + Quote(d + "/prog"));
  EXPECT_EQ(r.code, 0) << r.err;
}

}  // namespace
}  // namespace fusetest
