// The inode table across commits and remounts, and everything that ties the
// mount to the store's history: the .hashfs view, --at mounts, the single
// read-write mount, revert and gc on a mounted volume, umount paths.
#include "fuse_test_util.h"

namespace fusetest {
namespace {

class HistoryTest : public FuseTest {
 protected:
  // Changes made within the group-commit window share one commit; any CLI
  // command first has the mount commit what is pending. Separates commits.
  void Settle() { ASSERT_EQ(Hashfs({"volumes"}).code, 0); }
  struct stat St(const std::string& p) {
    struct stat st;
    std::memset(&st, 0, sizeof st);
    if (lstat(p.c_str(), &st) != 0) ADD_FAILURE() << "lstat " << p << ": " << ErrName(errno);
    return st;
  }
  std::string Cat(const std::string& ref) {
    RunResult r = Hashfs({"cat", ref});
    return r.code == 0 ? r.out : "<hashfs cat " + ref + " exited " + std::to_string(r.code) + ": " + r.err + ">";
  }
  std::vector<std::string> List(const std::string& dir) {
    std::vector<std::string> v;
    DIR* d = opendir(dir.c_str());
    if (d == nullptr) {
      ADD_FAILURE() << "opendir " << dir << ": " << ErrName(errno);
      return v;
    }
    while (auto* de = readdir(d)) {
      std::string n = de->d_name;
      if (n != "." && n != "..") v.push_back(n);
    }
    closedir(d);
    return v;
  }
  bool WaitGone(pid_t pid, int seconds) {
    for (int i = 0; i < seconds * 20; i++) {
      if (!ProcessAlive(pid)) return true;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
};

TEST_F(HistoryTest, HardlinksPersistAcrossRemount) {
  ASSERT_TRUE(WriteFile(P("a"), "linked"));
  ASSERT_EQ(mkdir(P("sub").c_str(), 0755), 0);
  ASSERT_EQ(link(P("a").c_str(), P("b").c_str()), 0);
  ASSERT_EQ(link(P("a").c_str(), P("sub/c").c_str()), 0);
  ASSERT_TRUE(WriteFile(P("single"), "s"));
  ino_t ino = St(P("a")).st_ino;
  // Stable for the life of the mount, across commits.
  ASSERT_TRUE(WriteFile(P("other"), "x"));
  EXPECT_EQ(St(P("sub/c")).st_ino, ino);
  for (int round = 0; round < 2; round++) {
    SCOPED_TRACE(round);
    ASSERT_TRUE(Remount());
    struct stat a = St(P("a")), b = St(P("b")), c = round == 0 ? St(P("sub/c")) : a;
    EXPECT_EQ(a.st_nlink, round == 0 ? 3u : 2u);
    EXPECT_EQ(a.st_ino, b.st_ino);
    if (round == 0) {
      EXPECT_EQ(a.st_ino, c.st_ino);
    }
    EXPECT_NE(a.st_ino, St(P("single")).st_ino);
    // Still one inode after the remount: a write through one name shows through the others.
    ASSERT_TRUE(WriteFile(P("b"), "rewritten " + std::to_string(round)));
    EXPECT_EQ(ReadFile(P("a")), "rewritten " + std::to_string(round));
    if (round == 0) {
      EXPECT_EQ(ReadFile(P("sub/c")), "rewritten 0");
      ASSERT_EQ(unlink(P("sub/c").c_str()), 0);
      EXPECT_EQ(St(P("a")).st_nlink, 2u);
    }
  }
  // Down to one name: an ordinary file again, still with its content.
  ASSERT_EQ(unlink(P("a").c_str()), 0);
  ASSERT_TRUE(Remount());
  EXPECT_EQ(St(P("b")).st_nlink, 1u);
  EXPECT_EQ(ReadFile(P("b")), "rewritten 1");
  // Many hardlink groups at once.
  for (int i = 0; i < 50; i++) {
    ASSERT_TRUE(WriteFile(P("g" + std::to_string(i)), std::to_string(i)));
    for (int j = 0; j < i % 4; j++)
      ASSERT_EQ(link(P("g" + std::to_string(i)).c_str(), P("g" + std::to_string(i) + "_" + std::to_string(j)).c_str()),
                0);
  }
  auto before = DescribeTree(mnt_);
  ASSERT_TRUE(Remount());
  auto after = DescribeTree(mnt_);
  EXPECT_EQ(before, after) << DiffDescriptions(before, after);
}

TEST_F(HistoryTest, HardlinksAcrossSnapshotRestoreAndBackup) {
  HASHFS_ONLY();
  ASSERT_EQ(mkdir(P("sub").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(P("a"), "linked"));
  ASSERT_EQ(link(P("a").c_str(), P("b").c_str()), 0);
  ASSERT_EQ(link(P("a").c_str(), P("sub/c").c_str()), 0);
  RunResult r = Hashfs({"snapshot", "s1", kVolume});
  ASSERT_EQ(r.code, 0) << r.err;
  // Later changes do not touch the snapshot.
  ASSERT_TRUE(WriteFile(P("a"), "changed later"));
  ASSERT_EQ(unlink(P("b").c_str()), 0);
  std::string view = P(".hashfs/snapshots/s1");
  EXPECT_EQ(ReadFile(view + "/b"), "linked");
  struct stat a = St(view + "/a"), b = St(view + "/b"), c = St(view + "/sub/c");
  EXPECT_EQ(a.st_nlink, 3u);
  EXPECT_EQ(a.st_ino, b.st_ino);
  EXPECT_EQ(a.st_ino, c.st_ino);
  // restore keeps them linked.
  r = Hashfs({"restore", "s1", H("restored")});
  ASSERT_EQ(r.code, 0) << r.err;
  a = St(H("restored/a"));
  EXPECT_EQ(a.st_nlink, 3u);
  EXPECT_EQ(a.st_ino, St(H("restored/b")).st_ino);
  EXPECT_EQ(a.st_ino, St(H("restored/sub/c")).st_ino);
  EXPECT_EQ(ReadFile(H("restored/sub/c")), "linked");
  // A backup of the restored tree into another volume, mounted: still linked.
  r = Hashfs({"backup", H("restored"), "--volume", "copy"});
  ASSERT_EQ(r.code, 0) << r.err;
  std::string m2 = root_ + "/copy";
  ASSERT_TRUE(Mount("copy", m2));
  a = St(m2 + "/a");
  EXPECT_EQ(a.st_nlink, 3u);
  EXPECT_EQ(a.st_ino, St(m2 + "/sub/c").st_ino);
  ASSERT_TRUE(WriteFile(m2 + "/sub/c", "via copy"));
  EXPECT_EQ(ReadFile(m2 + "/b"), "via copy");
  ASSERT_TRUE(Unmount(m2));
  // And the current state of vol after a remount.
  ASSERT_TRUE(Remount());
  EXPECT_EQ(St(P("a")).st_nlink, 2u);
  EXPECT_EQ(ReadFile(P("sub/c")), "changed later");
}

TEST_F(HistoryTest, UnlinkAndRenameWhileOpen) {
  int fd = open(P("f").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "before-unlink;", 14), 14);
  ASSERT_EQ(fsync(fd), 0);
  ASSERT_EQ(unlink(P("f").c_str()), 0);
  struct stat st;
  EXPECT_EQ(lstat(P("f").c_str(), &st), -1);
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_nlink, 0u);
  ASSERT_EQ(write(fd, "after-unlink", 12), 12);
  // Other namespace operations (new commits) do not disturb the orphan.
  ASSERT_TRUE(WriteFile(P("f"), "a new file with the old name"));
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  std::string buf(100, '\0');
  ASSERT_EQ(pread(fd, buf.data(), buf.size(), 0), 26);
  EXPECT_EQ(buf.substr(0, 26), "before-unlink;after-unlink");
  ASSERT_EQ(ftruncate(fd, 6), 0);
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 6);
  EXPECT_EQ(fsync(fd), 0);
  EXPECT_EQ(ReadFile(P("f")), "a new file with the old name");
  ASSERT_EQ(close(fd), 0);
  EXPECT_EQ(ReadFile(P("f")), "a new file with the old name");

  // Rename while open, twice, across directories; writes land in the file.
  fd = open(P("g").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "one,", 4), 4);
  ASSERT_EQ(rename(P("g").c_str(), P("d/g2").c_str()), 0);
  ASSERT_EQ(write(fd, "two,", 4), 4);
  ASSERT_EQ(rename(P("d/g2").c_str(), P("g3").c_str()), 0);
  ASSERT_EQ(write(fd, "three", 5), 5);
  ASSERT_EQ(close(fd), 0);
  EXPECT_EQ(ReadFile(P("g3")), "one,two,three");
  EXPECT_EQ(lstat(P("g").c_str(), &st), -1);
  EXPECT_EQ(lstat(P("d/g2").c_str(), &st), -1);

  // The last name unlinked while a second descriptor and a mapping are open.
  ASSERT_TRUE(WriteFile(P("h"), std::string(8192, 'h')));
  int r1 = open(P("h").c_str(), O_RDONLY), w1 = open(P("h").c_str(), O_RDWR);
  ASSERT_GE(r1, 0);
  ASSERT_GE(w1, 0);
  ASSERT_EQ(rename(P("g3").c_str(), P("h").c_str()), 0);  // replaces h: its inode is orphaned
  ASSERT_EQ(pwrite(w1, "ORPHAN", 6, 0), 6);
  char b6[6];
  ASSERT_EQ(pread(r1, b6, 6, 0), 6);
  EXPECT_EQ(std::string(b6, 6), "ORPHAN");
  EXPECT_EQ(ReadFile(P("h")), "one,two,three");
  close(r1);
  close(w1);
  // 50 orphans at once.
  std::vector<int> fds;
  for (int i = 0; i < 50; i++) {
    std::string p = P("o" + std::to_string(i));
    ASSERT_TRUE(WriteFile(p, "orphan " + std::to_string(i)));
    fds.push_back(open(p.c_str(), O_RDWR));
    ASSERT_GE(fds.back(), 0);
    ASSERT_EQ(unlink(p.c_str()), 0);
  }
  for (int i = 0; i < 50; i++) {
    std::string want = "orphan " + std::to_string(i);
    std::string got(want.size(), '\0');
    EXPECT_EQ(pread(fds[static_cast<size_t>(i)], got.data(), got.size(), 0), static_cast<ssize_t>(want.size()));
    EXPECT_EQ(got, want);
    close(fds[static_cast<size_t>(i)]);
  }
  ASSERT_TRUE(Remount());
  EXPECT_EQ(ReadFile(P("h")), "one,two,three");
  EXPECT_EQ(lstat(P("o0").c_str(), &st), -1);
  EXPECT_EQ(List(mnt_).size(), 3u);  // f, d, h
}

TEST_F(HistoryTest, NewVolumeIsCreatedEmptyOnReadWriteMount) {
  HASHFS_ONLY();
  EXPECT_TRUE(List(mnt_).empty());
  RunResult r = Hashfs({"volumes", "--json"});
  ASSERT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("\"vol\""), std::string::npos) << r.out;
  // A read-only mount of a volume that does not exist fails.
  std::string m2 = root_ + "/m2";
  mkdir(m2.c_str(), 0755);
  r = Hashfs({"mount", "nosuchvolume", m2, "--read-only"}, 60);
  EXPECT_NE(r.code, 0);
  EXPECT_FALSE(FindMount(m2).mounted);
  if (FindMount(m2).mounted) Shell("fusermount3 -u -z " + Quote(m2));
}

TEST_F(HistoryTest, CloseFsyncAndNamespaceOpsCommit) {
  HASHFS_ONLY();
  size_t n = CommitIds().size();
  auto newer = [&](const char* what) {
    size_t m = CommitIds().size();
    EXPECT_GT(m, n) << "no new commit after " << what;
    n = m;
  };
  int fd = open(P("f").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0);
  newer("create");
  ASSERT_EQ(write(fd, "v1", 2), 2);
  ASSERT_EQ(close(fd), 0);
  newer("close of a written file");
  EXPECT_EQ(Cat(std::string(kVolume) + ":f"), "v1");
  EXPECT_EQ(Cat(std::string(kVolume) + ":/f"), "v1");
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  newer("mkdir");
  ASSERT_EQ(rename(P("f").c_str(), P("d/f").c_str()), 0);
  newer("rename");
  EXPECT_EQ(Cat(std::string(kVolume) + ":d/f"), "v1");
  ASSERT_EQ(chmod(P("d/f").c_str(), 0600), 0);
  newer("chmod");
  ASSERT_EQ(setxattr(P("d/f").c_str(), "user.k", "v", 1, 0), 0);
  newer("setxattr");
  ASSERT_EQ(symlink("f", P("d/l").c_str()), 0);
  newer("symlink");
  ASSERT_EQ(link(P("d/f").c_str(), P("d/h").c_str()), 0);
  newer("link");
  ASSERT_EQ(unlink(P("d/h").c_str()), 0);
  newer("unlink");
  // fsync commits without close; a reader-only close does not need to.
  fd = open(P("d/f").c_str(), O_RDWR);
  ASSERT_EQ(pwrite(fd, "V2", 2, 0), 2);
  ASSERT_EQ(fsync(fd), 0);
  newer("fsync");
  EXPECT_EQ(Cat(std::string(kVolume) + ":d/f"), "V2");
  ASSERT_EQ(pwrite(fd, "three", 5, 2), 5);
  ASSERT_EQ(close(fd), 0);
  newer("second close");
  EXPECT_EQ(Cat(std::string(kVolume) + ":d/f"), "V2three");
  RunResult ls = Hashfs({"ls", std::string(kVolume) + ":d", "--json"});
  EXPECT_EQ(ls.code, 0);
  EXPECT_NE(ls.out.find("\"l\""), std::string::npos) << ls.out;
  // Writes are buffered: many small writes to one open file are not many commits.
  fd = open(P("many").c_str(), O_CREAT | O_WRONLY, 0644);
  n = CommitIds().size();
  for (int i = 0; i < 2000; i++) ASSERT_EQ(write(fd, "0123456789", 10), 10);
  size_t during = CommitIds().size();
  EXPECT_LE(during, n + 2) << "writes inside an open file must not each commit";
  ASSERT_EQ(close(fd), 0);
  EXPECT_EQ(Cat(std::string(kVolume) + ":many").size(), 20000u);
}

TEST_F(HistoryTest, HistoryViewListsCommitsNewestFirstAndServesOldVersions) {
  HASHFS_ONLY();
  ASSERT_TRUE(WriteFile(P("f"), "version one"));
  Settle();
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(P("d/inner"), "inner one"));
  Settle();
  ASSERT_TRUE(WriteFile(P("f"), "version two"));
  Settle();
  ASSERT_EQ(unlink(P("d/inner").c_str()), 0);
  Settle();
  ASSERT_TRUE(WriteFile(P("f"), "version three"));
  auto ids = CommitIds();
  ASSERT_GE(ids.size(), 4u);
  for (const auto& id : ids) EXPECT_EQ(id.size(), 64u) << id;
  // readdir order is newest first, and the listing is complete.
  EXPECT_EQ(List(P(".hashfs/history")), ids);
  // Every commit's view matches what `hashfs cat` says of that commit.
  std::string v1_id;
  for (const auto& id : ids) {
    std::string via_cli = Hashfs({"cat", id + ":f"}).out;
    RunResult r = Hashfs({"cat", id + ":f"});
    std::string via_view = ReadFile(P(".hashfs/history/" + id + "/f"));
    if (r.code != 0) {
      struct stat st;
      EXPECT_EQ(lstat(P(".hashfs/history/" + id + "/f").c_str(), &st), -1) << id;
      continue;
    }
    EXPECT_EQ(via_view, r.out) << id;
    if (r.out == "version one" && v1_id.empty()) v1_id = id;
  }
  ASSERT_FALSE(v1_id.empty());
  // Getting an old version back = copying it out of the view.
  RunResult cp = Shell("cp -a " + Quote(P(".hashfs/history/" + v1_id + "/f")) + " " + Quote(P("restored")));
  ASSERT_EQ(cp.code, 0) << cp.err;
  EXPECT_EQ(ReadFile(P("restored")), "version one");
  EXPECT_EQ(ReadFile(P(".hashfs/history/" + v1_id + "/d/inner")), "inner one");
  // The view stays current: the newest commit appears first.
  ASSERT_TRUE(WriteFile(P("f"), "version four"));
  auto ids2 = CommitIds();
  auto listed = List(P(".hashfs/history"));
  EXPECT_EQ(listed, ids2);
  ASSERT_FALSE(listed.empty());
  EXPECT_EQ(ReadFile(P(".hashfs/history/" + listed[0] + "/f")), "version four");
  // Unknown ids are not there.
  struct stat st;
  EXPECT_EQ(lstat(P(".hashfs/history/" + std::string(64, '0')).c_str(), &st), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(lstat(P(".hashfs/nonexistent").c_str(), &st), -1);
  EXPECT_EQ(errno, ENOENT);
  // Snapshots.
  ASSERT_EQ(Hashfs({"snapshot", "snap-old", v1_id}).code, 0);
  ASSERT_EQ(Hashfs({"snapshot", "snap-new", kVolume}).code, 0);
  auto snaps = List(P(".hashfs/snapshots"));
  std::sort(snaps.begin(), snaps.end());
  EXPECT_EQ(snaps, (std::vector<std::string>{"snap-new", "snap-old"}));
  EXPECT_EQ(ReadFile(P(".hashfs/snapshots/snap-old/f")), "version one");
  EXPECT_EQ(ReadFile(P(".hashfs/snapshots/snap-new/f")), "version four");
  // Metadata in the view is the commit's.
  EXPECT_EQ(St(P(".hashfs/snapshots/snap-old/d")).st_mode & 07777, 0755u);
  EXPECT_TRUE(S_ISREG(St(P(".hashfs/snapshots/snap-old/f")).st_mode));
  // After a remount, too.
  ASSERT_TRUE(Remount());
  EXPECT_EQ(List(P(".hashfs/history")), CommitIds());
  EXPECT_EQ(ReadFile(P(".hashfs/history/" + v1_id + "/f")), "version one");
  EXPECT_EQ(ReadFile(P(".hashfs/snapshots/snap-old/d/inner")), "inner one");
}

TEST_F(HistoryTest, AtMountShowsPastStateReadOnlyBesideReadWrite) {
  HASHFS_ONLY();
  ASSERT_TRUE(WriteFile(P("f"), "old"));
  ASSERT_TRUE(WriteFile(P("gone"), "gone later"));
  auto ids_old = CommitIds();
  ASSERT_TRUE(WriteFile(P("f"), "new"));
  ASSERT_EQ(unlink(P("gone").c_str()), 0);
  std::string at = root_ + "/at";
  ASSERT_TRUE(Mount(kVolume, at, {"--at", ids_old[0]}));
  EXPECT_EQ(ReadFile(at + "/f"), "old");
  EXPECT_EQ(ReadFile(at + "/gone"), "gone later");
  EXPECT_EQ(ReadFile(P("f")), "new");
  EXPECT_EQ(ErrOf(open((at + "/f").c_str(), O_WRONLY)), "EROFS");
  EXPECT_EQ(ErrOf(mkdir((at + "/x").c_str(), 0755)), "EROFS");
  EXPECT_EQ(ErrOf(unlink((at + "/f").c_str())), "EROFS");
  // The read-write mount keeps working beside it, and the past mount does not move.
  ASSERT_TRUE(WriteFile(P("f"), "newer"));
  EXPECT_EQ(ReadFile(at + "/f"), "old");
  // VOLUME~N and snapshot names work as REFs too.
  ASSERT_EQ(Hashfs({"snapshot", "s", ids_old[0]}).code, 0);
  std::string at2 = root_ + "/at2";
  ASSERT_TRUE(Mount(kVolume, at2, {"--at", "s"}));
  EXPECT_EQ(ReadFile(at2 + "/f"), "old");
  ASSERT_TRUE(Unmount(at2));
  auto ids = CommitIds();
  ASSERT_GE(ids.size(), 2u);
  ASSERT_TRUE(Mount(kVolume, at2, {"--at", std::string(kVolume) + "~1"}));
  EXPECT_EQ(ReadFile(at2 + "/f"), Cat(ids[1] + ":f"));
  ASSERT_TRUE(Unmount(at2));
  ASSERT_TRUE(Unmount(at));
  // An unknown REF is refused.
  RunResult r = Hashfs({"mount", kVolume, at, "--at", "nosuchref"}, 60);
  EXPECT_NE(r.code, 0);
  EXPECT_FALSE(FindMount(at).mounted);
  if (FindMount(at).mounted) Shell("fusermount3 -u -z " + Quote(at));
}

TEST_F(HistoryTest, SecondReadWriteMountIsRefused) {
  HASHFS_ONLY();
  ASSERT_TRUE(WriteFile(P("f"), "first"));
  std::string m2 = root_ + "/m2";
  mkdir(m2.c_str(), 0755);
  RunResult r = Hashfs({"mount", kVolume, m2}, 60);
  EXPECT_NE(r.code, 0) << "a second read-write mount of one volume was accepted";
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "want a one-line message, got: " << r.err;
  bool leaked = FindMount(m2).mounted;
  EXPECT_FALSE(leaked);
  if (leaked) Shell("fusermount3 -u -z " + Quote(m2));
  EXPECT_EQ(ReadFile(P("f")), "first");
  ASSERT_TRUE(WriteFile(P("f"), "still writable"));
  // Read-only mounts beside it are fine; so is a read-write mount of another volume.
  ASSERT_TRUE(Mount(kVolume, m2, {"--read-only"}));
  EXPECT_EQ(ReadFile(m2 + "/f"), "still writable");
  std::string m3 = root_ + "/m3";
  ASSERT_TRUE(Mount("other", m3));
  ASSERT_TRUE(WriteFile(m3 + "/o", "other volume"));
  EXPECT_EQ(Cat("other:o"), "other volume");
  ASSERT_TRUE(Unmount(m3));
  ASSERT_TRUE(Unmount(m2));
  // Once the first is unmounted, the volume can be mounted read-write elsewhere.
  ASSERT_TRUE(Unmount(mnt_));
  ASSERT_TRUE(Mount(kVolume, m2));
  EXPECT_EQ(ReadFile(m2 + "/f"), "still writable");
  ASSERT_TRUE(Unmount(m2));
  ASSERT_TRUE(Mount(kVolume, mnt_));
}

TEST_F(HistoryTest, RevertOnMountedVolumeSwitchesTree) {
  HASHFS_ONLY();
  ASSERT_TRUE(WriteFile(P("a"), "one"));
  ASSERT_EQ(mkdir(P("olddir").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(P("olddir/x"), "x"));
  std::string old_head = CommitIds()[0];
  ASSERT_TRUE(WriteFile(P("a"), "two, longer"));
  ASSERT_TRUE(WriteFile(P("b"), "only in new"));
  ASSERT_EQ(unlink(P("olddir/x").c_str()), 0);
  ASSERT_EQ(rmdir(P("olddir").c_str()), 0);
  // Warm the kernel's caches.
  EXPECT_EQ(ReadFile(P("a")), "two, longer");
  EXPECT_EQ(ReadFile(P("b")), "only in new");
  struct stat st;
  EXPECT_EQ(lstat(P("olddir").c_str(), &st), -1);
  auto listing = List(mnt_);
  EXPECT_EQ(listing.size(), 2u);
  RunResult r = Hashfs({"revert", kVolume, old_head});
  ASSERT_EQ(r.code, 0) << r.err;
  // Immediately visible: no stale data, attributes, names or negative entries.
  EXPECT_EQ(ReadFile(P("a")), "one");
  EXPECT_EQ(St(P("a")).st_size, 3);
  EXPECT_EQ(lstat(P("b").c_str(), &st), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(ReadFile(P("olddir/x")), "x");
  listing = List(mnt_);
  std::sort(listing.begin(), listing.end());
  EXPECT_EQ(listing, (std::vector<std::string>{"a", "olddir"}));
  // History keeps everything; the mount goes on from the reverted tree.
  ASSERT_TRUE(WriteFile(P("c"), "after revert"));
  EXPECT_EQ(Cat(std::string(kVolume) + ":a"), "one");
  EXPECT_EQ(Cat(std::string(kVolume) + ":c"), "after revert");
  EXPECT_NE(Hashfs({"cat", std::string(kVolume) + ":b"}).code, 0);
  ASSERT_TRUE(Remount());
  listing = List(mnt_);
  std::sort(listing.begin(), listing.end());
  EXPECT_EQ(listing, (std::vector<std::string>{"a", "c", "olddir"}));
  EXPECT_EQ(ReadFile(P("a")), "one");
}

TEST_F(HistoryTest, GcWhileMountedFreesNothingTheMountReaches) {
  HASHFS_ONLY();
  // Data written in an earlier session, so it is older than this mount's session.
  std::map<std::string, std::string> files;
  for (int i = 0; i < 20; i++) {
    std::string name = "f" + std::to_string(i);
    files[name] = RandomBytes(50000 + static_cast<size_t>(i) * 70000, 1000 + i);
    ASSERT_TRUE(WriteFile(P(name), files[name]));
  }
  std::string orphan = RandomBytes(3 << 20, 77), big = RandomBytes(6 << 20, 78);
  ASSERT_TRUE(WriteFile(P("orphan"), orphan));
  ASSERT_TRUE(WriteFile(P("big"), big));
  ASSERT_TRUE(WriteFile(P("renamed"), "rename me"));
  // gc never deletes objects younger than (start of the oldest live session -
  // 2 s), in whole seconds: let the data age past that before the new session.
  std::this_thread::sleep_for(std::chrono::milliseconds(3500));
  ASSERT_TRUE(Remount());
  // Now make the old objects reachable only through the mount's own state.
  int ofd = open(P("orphan").c_str(), O_RDONLY);
  ASSERT_GE(ofd, 0);
  ASSERT_EQ(unlink(P("orphan").c_str()), 0);
  int bfd = open(P("big").c_str(), O_RDWR);
  ASSERT_GE(bfd, 0);
  ASSERT_EQ(pwrite(bfd, "PATCH", 5, 3 << 20), 5);  // pending: old chunks + a patch
  big.replace(3 << 20, 5, "PATCH");
  ASSERT_EQ(rename(P("renamed").c_str(), P("moved").c_str()), 0);
  RunResult r = Hashfs({"forget", kVolume, "--keep-last", "1"});
  ASSERT_EQ(r.code, 0) << r.err;
  r = Hashfs({"gc"});
  ASSERT_EQ(r.code, 0) << r.out << r.err;
  // Everything reads back, through paths, the orphan's fd and the pending fd.
  for (const auto& [name, data] : files) EXPECT_TRUE(ReadFile(P(name)) == data) << name;
  std::string got(orphan.size(), '\0');
  EXPECT_EQ(pread(ofd, got.data(), got.size(), 0), static_cast<ssize_t>(orphan.size())) << ErrName(errno);
  EXPECT_TRUE(got == orphan) << "the unlinked-but-open file lost data to gc";
  close(ofd);
  got.assign(big.size(), '\0');
  EXPECT_EQ(pread(bfd, got.data(), got.size(), 0), static_cast<ssize_t>(big.size()));
  EXPECT_TRUE(got == big) << "the file with pending writes lost data to gc";
  ASSERT_EQ(close(bfd), 0);
  EXPECT_TRUE(Cat(std::string(kVolume) + ":big") == big);
  EXPECT_EQ(ReadFile(P("moved")), "rename me");
  r = Hashfs({"verify"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  ASSERT_TRUE(Remount());
  for (const auto& [name, data] : files) EXPECT_TRUE(ReadFile(P(name)) == data) << name << " after remount";
  EXPECT_TRUE(ReadFile(P("big")) == big);
  r = Hashfs({"verify"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
}

// `revert` of the mounted volume racing `forget` + `gc` of its history: after
// every revert the mount shows exactly the reverted-to state (no EIO, no
// stale name or data), gc frees what only forgotten commits reached, and
// afterwards, and after a remount, verify is clean and the mount holds the
// last state with the change made on top of it.
TEST_F(HistoryTest, RevertAndGcRacingOnAMountedVolume) {
  HASHFS_ONLY();
  constexpr int kGens = 6, kFiles = 8;
  std::vector<std::map<std::string, std::string>> gens(kGens);
  for (int g = 0; g < kGens; g++) {
    for (int i = 0; i < kFiles; i++) {
      std::string name = "f" + std::to_string(i);
      // Each generation rewrites half of the files. Odd generations get no
      // snapshot, so once forgotten, what only they hold is garbage.
      bool rewrite = g == 0 || (i + g) % 2 == 0;
      gens[g][name] = rewrite ? RandomBytes(20000 + 30000 * static_cast<size_t>(i), 1000 * g + i) : gens[g - 1][name];
      if (rewrite) {
        ASSERT_TRUE(WriteFile(P(name), gens[g][name]));
      }
    }
    if (g % 2 == 0) {
      ASSERT_EQ(Hashfs({"snapshot", "gen" + std::to_string(g), kVolume}).code, 0);
    }
  }
  // gc spares objects younger than the oldest live session (less 2 s): let
  // these age past a fresh session's start.
  std::this_thread::sleep_for(std::chrono::milliseconds(3500));
  ASSERT_TRUE(Remount());

  std::atomic<bool> stop{false};
  std::atomic<int> collections{0};
  std::atomic<uint64_t> deleted{0};
  std::thread collector([&] {
    while (!stop) {
      RunResult f = Hashfs({"forget", kVolume, "--keep-last", "1"});
      EXPECT_EQ(f.code, 0) << f.err;
      RunResult g = Hashfs({"gc"});
      EXPECT_EQ(g.code, 0) << g.out << g.err;
      if (auto at = g.out.find("deleted objects:"); at != std::string::npos)
        deleted += std::stoull(g.out.substr(at + 16));
      collections++;
    }
  });
  std::mt19937 rng(5);
  int last = kGens - 1;
  constexpr int kRounds = 40;
  for (int round = 0; round < kRounds; round++) {
    int g = 2 * static_cast<int>(rng() % 3);  // a snapshotted generation
    RunResult r = Hashfs({"revert", kVolume, "gen" + std::to_string(g)});
    ASSERT_EQ(r.code, 0) << r.err;
    last = g;
    for (const auto& [name, data] : gens[g]) EXPECT_TRUE(ReadFile(P(name)) == data) << name << " after revert to gen" << g;
    struct stat st;
    EXPECT_EQ(lstat(P("note").c_str(), &st), -1) << "a name from before the revert is still visible";
    // A change on top of the reverted tree (committed at close).
    ASSERT_TRUE(WriteFile(P("note"), "round " + std::to_string(round)));
  }
  stop = true;
  collector.join();
  EXPECT_GE(collections.load(), 2);
  std::printf("%d collections deleted %llu objects\n", collections.load(), static_cast<unsigned long long>(deleted.load()));
  EXPECT_GT(deleted.load(), 0u) << "gc never freed anything: the race was not exercised";
  auto check = [&](const std::string& when) {
    for (const auto& [name, data] : gens[last]) EXPECT_TRUE(ReadFile(P(name)) == data) << name << " " << when;
    EXPECT_EQ(ReadFile(P("note")), "round " + std::to_string(kRounds - 1)) << when;
    RunResult v = Hashfs({"verify"});
    EXPECT_EQ(v.code, 0) << when << ": " << v.out << v.err;
  };
  check("at the end");
  ASSERT_TRUE(Remount());
  check("after remount");
}

TEST_F(HistoryTest, UmountCommitsAndFusermountOrUmountAlsoWork) {
  HASHFS_ONLY();
  std::string data = RandomBytes(2 << 20, 5);
  ASSERT_TRUE(WriteFile(P("f"), data));
  ASSERT_TRUE(Unmount(mnt_));
  EXPECT_TRUE(Cat(std::string(kVolume) + ":f") == data);
  for (const char* how : {"fusermount3 -u", "umount"}) {
    SCOPED_TRACE(how);
    ASSERT_TRUE(Mount(kVolume, mnt_));
    auto pids = DaemonPids();
    ASSERT_FALSE(pids.empty()) << "cannot find the mount's daemon";
    ASSERT_TRUE(WriteFile(P(std::string("by-") + how[0]), how));
    RunResult r = Shell(std::string(how) + " " + Quote(mnt_), 60);
    ASSERT_EQ(r.code, 0) << r.err;
    mounts_.erase(std::remove(mounts_.begin(), mounts_.end(), mnt_), mounts_.end());
    for (pid_t p : pids) EXPECT_TRUE(WaitGone(p, 30)) << "daemon " << p << " did not exit after " << how;
    EXPECT_FALSE(FindMount(mnt_).mounted);
    EXPECT_EQ(Cat(std::string(kVolume) + ":by-" + how[0]), how);
  }
  ASSERT_TRUE(Mount(kVolume, mnt_));
  EXPECT_TRUE(ReadFile(P("f")) == data);
  EXPECT_EQ(ReadFile(P("by-f")), "fusermount3 -u");
  EXPECT_EQ(ReadFile(P("by-u")), "umount");
}

// `umount` returns while the daemon still commits what was pending; a mount
// right after it must wait for that daemon instead of refusing the volume as
// "already mounted read-write".
TEST_F(HistoryTest, RemountRightAfterPlainUmountWaitsForTheOldDaemon) {
  HASHFS_ONLY();
  for (int round = 0; round < 3; round++) {
    SCOPED_TRACE("round " + std::to_string(round));
    std::string data = RandomBytes(96 << 20, 40 + round);  // incompressible: a commit that takes a while
    ASSERT_TRUE(WriteFile(P("big"), data));
    auto pids = DaemonPids();
    RunResult r = Shell("umount " + Quote(mnt_), 60);
    ASSERT_EQ(r.code, 0) << r.err;
    mounts_.erase(std::remove(mounts_.begin(), mounts_.end(), mnt_), mounts_.end());
    ASSERT_TRUE(Mount(kVolume, mnt_)) << "remount right after umount was refused";
    for (pid_t p : pids) EXPECT_TRUE(WaitGone(p, 30)) << "old daemon " << p << " did not exit";
    EXPECT_TRUE(ReadFile(P("big")) == data);
  }
}

TEST_F(HistoryTest, CliKeepsWorkingWhileMounted) {
  HASHFS_ONLY();
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  Settle();
  ASSERT_TRUE(WriteFile(P("d/a"), "alpha"));
  Settle();
  ASSERT_TRUE(WriteFile(P("b"), RandomBytes(100000, 3)));
  Settle();
  ASSERT_EQ(link(P("b").c_str(), P("d/b2").c_str()), 0);
  ASSERT_EQ(symlink("d/a", P("sl").c_str()), 0);
  ASSERT_EQ(Hashfs({"log", kVolume}).code, 0);
  RunResult r = Hashfs({"ls", "-l", std::string(kVolume) + ":d"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("a"), std::string::npos);
  r = Hashfs({"diff", std::string(kVolume) + "~3", kVolume});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(Hashfs({"stats"}).code, 0);
  // restore of the mounted head equals the mount.
  r = Hashfs({"restore", kVolume, H("restored")});
  ASSERT_EQ(r.code, 0) << r.err;
  DescribeOptions o;
  o.mtime = true;
  auto a = DescribeTree(mnt_), b = DescribeTree(H("restored"));
  EXPECT_EQ(a, b) << DiffDescriptions(a, b);
  // backup into another volume while mounted, and of the mount itself.
  ASSERT_TRUE(WriteFile(H("src/x"), "x") || (mkdir(H("src").c_str(), 0755) == 0 && WriteFile(H("src/x"), "x")));
  r = Hashfs({"backup", H("src"), "--volume", "other"});
  EXPECT_EQ(r.code, 0) << r.err;
  r = Hashfs({"backup", mnt_, "--volume", "of-mount"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_TRUE(Cat("of-mount:b") == ReadFile(P("b")));
  r = Hashfs({"verify"});
  EXPECT_EQ(r.code, 0) << r.out << r.err;
}


}  // namespace
}  // namespace fusetest
