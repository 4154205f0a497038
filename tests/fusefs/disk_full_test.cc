// A store on a filesystem that fills up under a mount's writes: writes and
// fsync fail with ENOSPC (the daemon stays up), everything committed and
// everything written stays readable, `hashfs verify` is clean, `hashfs
// umount` refuses while the pending changes cannot commit, and once space is
// freed they commit without losing a byte.
#include "fuse_test_util.h"

namespace fusetest {
namespace {

class DiskFullTest : public FuseTest {
 protected:
  bool MountInSetUp() const override { return false; }

  void SetUp() override {
    FuseTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    if (!HashfsMode()) GTEST_SKIP() << "tests the hashfs store";
    char tmpl[] = "/var/tmp/hashfs-diskfull-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    small_ = tmpl;
    RunResult r = Shell("mount -t tmpfs -o size=40m,mode=0755 hashfs-test-tmpfs " + Quote(small_));
    ASSERT_EQ(r.code, 0) << "mounting a tmpfs: " << r.err;
    store_ = small_ + "/store";  // every later Hashfs() call uses this store
    r = Hashfs({"init"});
    ASSERT_EQ(r.code, 0) << r.err;
  }

  void TearDown() override {
    FuseTest::TearDown();  // unmounts the volume first
    if (!small_.empty()) {
      Shell("umount " + Quote(small_), 60);
      rmdir(small_.c_str());
    }
  }

  // Fills the store with one file's writes (fsync'd every 8 MiB, or never, so
  // that the dirty pages are chunked out by background flushes), then checks
  // the failure, the data, and recovery once space is freed.
  // With `plain_umount_while_full`, the volume is then unmounted with
  // fusermount3 -u while the disk is still full, and the daemon must keep
  // retrying its last commit until space is freed.
  void FillAndRecover(const std::vector<std::string>& mount_args, bool fsync_every_8_mib,
                      bool plain_umount_while_full = false);

  std::string small_;
};

TEST_F(DiskFullTest, MountWritesFailWithEnospcAndLoseNothing) { FillAndRecover({}, true); }

// No fsync: the disk fills under a background flush; a later write (the one
// that would start the next) fails with ENOSPC and nothing is lost.
TEST_F(DiskFullTest, BackgroundFlushOnAFullDiskFailsALaterWriteAndLosesNothing) {
  FillAndRecover({"--dirty-limit", "4"}, false);
}

// fusermount3 -u while the disk is full cannot be refused: the daemon keeps
// what is pending and retries its last commit every second until there is
// room (before, it logged the failure and exited, and the bytes were lost).
TEST_F(DiskFullTest, PlainUmountOnAFullDiskWaitsForRoomAndLosesNothing) {
  FillAndRecover({"--dirty-limit", "4"}, false, /*plain_umount_while_full=*/true);
}

void DiskFullTest::FillAndRecover(const std::vector<std::string>& mount_args, bool fsync_every_8_mib,
                                  bool plain_umount_while_full) {
  ASSERT_TRUE(Mount(kVolume, mnt_, mount_args));
  const std::string before = RandomBytes(1 << 20, 1);
  ASSERT_TRUE(WriteFile(P("before"), before));
  {
    int fd = open(P("before").c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(fsync(fd), 0) << ErrName(errno);
    close(fd);
  }

  // Incompressible data, fsync'd every 8 MiB, until something fails.
  const std::string big_data = RandomBytes(160 << 20, 2);
  size_t written = 0;  // bytes whose write(2) returned in full
  int failure = 0;
  int fd = open(P("big").c_str(), O_CREAT | O_WRONLY, 0644);
  ASSERT_GE(fd, 0) << ErrName(errno);
  for (size_t off = 0; off < big_data.size() && failure == 0; off += 1 << 20) {
    ssize_t n = pwrite(fd, big_data.data() + off, 1 << 20, static_cast<off_t>(off));
    if (n != (1 << 20)) {
      failure = n < 0 ? errno : EIO;
      break;
    }
    written += static_cast<size_t>(n);
    if (fsync_every_8_mib && (off >> 20) % 8 == 7 && fsync(fd) != 0) failure = errno;
  }
  EXPECT_EQ(failure, ENOSPC) << "a full store must give ENOSPC, got " << ErrName(failure);
  ASSERT_GT(written, 0u);
  ASSERT_LT(written, big_data.size()) << "the 40 MiB filesystem never filled";
  close(fd);  // may report the failure again; the data stays in the mount

  // The daemon is alive and serves everything: what was committed and what
  // is still only in memory.
  ASSERT_TRUE(FindMount(mnt_).mounted) << "the mount died on a full disk";
  EXPECT_EQ(ReadFile(P("before")), before);
  std::string got = ReadFile(P("big"));
  ASSERT_EQ(got.size(), written) << got.substr(0, 80);
  EXPECT_TRUE(got == big_data.substr(0, written)) << "content of the file being written changed";
  // The store on disk is consistent while full.
  RunResult v = Hashfs({"verify"});
  EXPECT_EQ(v.code, 0) << v.out << v.err;

  // What is pending cannot commit now, so `hashfs umount` refuses and the
  // mount keeps serving it (before, the kernel mount went first, the daemon's
  // last commit failed into its log, umount said nothing, and those bytes
  // were gone).
  fd = open(P("big").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(fsync(fd), -1) << "nothing pending: the umount check below proves nothing";
  EXPECT_EQ(errno, ENOSPC) << ErrName(errno);
  close(fd);
  RunResult u = Hashfs({"umount", mnt_}, 120);
  EXPECT_EQ(u.code, 1) << u.out << u.err;
  EXPECT_NE(u.err.find("stays mounted"), std::string::npos) << u.err;
  ASSERT_TRUE(FindMount(mnt_).mounted) << "umount unmounted a volume whose pending changes could not commit";
  EXPECT_EQ(ReadFile(P("big")).size(), written);

  if (plain_umount_while_full) {
    std::vector<pid_t> daemons = DaemonPids();
    ASSERT_EQ(daemons.size(), 1u);
    RunResult f = Shell("fusermount3 -u " + Quote(mnt_), 60);
    ASSERT_EQ(f.code, 0) << f.err;
    mounts_.erase(std::remove(mounts_.begin(), mounts_.end(), mnt_), mounts_.end());
    std::this_thread::sleep_for(std::chrono::seconds(2));
    ASSERT_TRUE(ProcessAlive(daemons[0])) << "the daemon gave up its pending changes on a full disk";
    RunResult grow = Shell("mount -o remount,size=400m " + Quote(small_));
    ASSERT_EQ(grow.code, 0) << grow.err;
    for (int i = 0; i < 300 && ProcessAlive(daemons[0]); i++)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ASSERT_FALSE(ProcessAlive(daemons[0])) << "the daemon did not commit and exit once there was room";
    v = Hashfs({"verify"});
    EXPECT_EQ(v.code, 0) << v.out << v.err;
    ASSERT_TRUE(Mount(kVolume, mnt_, mount_args));
    EXPECT_EQ(ReadFile(P("before")), before);
    got = ReadFile(P("big"));
    EXPECT_EQ(got.size(), written);
    EXPECT_TRUE(got == big_data.substr(0, written)) << "bytes pending at the plain umount were lost";
    return;
  }

  // Free space: the pending changes commit and new writes work.
  RunResult r = Shell("mount -o remount,size=400m " + Quote(small_));
  ASSERT_EQ(r.code, 0) << r.err;
  const std::string after = RandomBytes(1 << 20, 3);
  ASSERT_TRUE(WriteFile(P("after"), after));
  fd = open(P("after").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  EXPECT_EQ(fsync(fd), 0) << "fsync after space was freed: " << ErrName(errno);
  close(fd);

  ASSERT_TRUE(Unmount(mnt_));
  v = Hashfs({"verify"});
  EXPECT_EQ(v.code, 0) << v.out << v.err;
  ASSERT_TRUE(Mount(kVolume, mnt_, mount_args));
  EXPECT_EQ(ReadFile(P("before")), before);
  EXPECT_EQ(ReadFile(P("after")), after);
  got = ReadFile(P("big"));
  EXPECT_EQ(got.size(), written);
  EXPECT_TRUE(got == big_data.substr(0, written)) << "bytes written before the disk filled were lost";
}

}  // namespace
}  // namespace fusetest
