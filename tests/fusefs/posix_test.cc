// POSIX conformance of the mounted filesystem, per operation and per errno.
// Runs against a real `hashfs mount` (default) or a host directory
// (HASHFS_FUSE_TEST_TARGET=native), where every test must pass as well.
#include <linux/falloc.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <sys/vfs.h>

#include "fuse_test_util.h"

namespace fusetest {
namespace {

class PosixTest : public FuseTest {
 protected:
  struct stat St(const std::string& p) {
    struct stat st;
    std::memset(&st, 0, sizeof st);
    if (lstat(p.c_str(), &st) != 0) ADD_FAILURE() << "lstat " << p << ": " << ErrName(errno);
    return st;
  }
  static bool After(const timespec& a, const timespec& b) {
    return a.tv_sec > b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec > b.tv_nsec);
  }
  static bool Same(const timespec& a, const timespec& b) { return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec; }
  static std::string Ts(const timespec& t) {
    char b[64];
    std::snprintf(b, sizeof b, "%lld.%09ld", static_cast<long long>(t.tv_sec), t.tv_nsec);
    return b;
  }
  // Lets the coarse kernel clock move on, so a timestamp update is visible.
  static void Tick() { std::this_thread::sleep_for(std::chrono::milliseconds(30)); }
  static std::string Pread(int fd, size_t n, off_t off) {
    std::string s(n, '\0');
    ssize_t r = pread(fd, s.data(), n, off);
    if (r < 0) return "<ERR:" + ErrName(errno) + ">";
    s.resize(static_cast<size_t>(r));
    return s;
  }
};

// lseek SEEK_DATA / SEEK_HOLE find a sparse file's holes before and after
// it is committed, after a remount and in the history view: a reported hole reads as zeros up to the
// next data, and the data is found. Granularity is the file system's (a
// block here, a page or a chunk in hashfs), so offsets are checked in bounds.
TEST_F(PosixTest, SeekDataAndSeekHoleFindTheHoles) {
  const off_t mid = 64 << 20, size = 200 << 20, slack = 8 << 20;
  int fd = open(P("holes").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, "head", 4, 0), 4);
  ASSERT_EQ(pwrite(fd, "mid", 3, mid), 3);
  ASSERT_EQ(ftruncate(fd, size), 0);
  errno = 0;
  EXPECT_EQ(lseek(fd, size, SEEK_DATA), -1);
  EXPECT_EQ(errno, ENXIO);
  ASSERT_EQ(close(fd), 0);

  // A page written through a shared mapping is data at once, though the
  // kernel has not written it back (hashfs reports no holes in a file open
  // for writing: it cannot see such pages).
  {
    const size_t len = 16 << 20;
    int wfd = open(P("mapped").c_str(), O_CREAT | O_RDWR, 0644);
    ASSERT_GE(wfd, 0);
    ASSERT_EQ(ftruncate(wfd, static_cast<off_t>(len)), 0);
    void* m = mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, wfd, 0);
    ASSERT_NE(m, MAP_FAILED) << ErrName(errno);
    static_cast<char*>(m)[8 << 20] = 'x';
    int rfd = open(P("mapped").c_str(), O_RDONLY);
    ASSERT_GE(rfd, 0);
    off_t d = lseek(rfd, 4 << 20, SEEK_DATA);
    EXPECT_NE(d, -1) << ErrName(errno);
    EXPECT_LE(d, 8 << 20) << "a page written through the mapping was skipped";
    close(rfd);
    munmap(m, len);
    close(wfd);
  }

  auto check = [&](const std::string& path, const std::string& when) {
    SCOPED_TRACE(when);
    int rfd = open(path.c_str(), O_RDONLY);
    ASSERT_GE(rfd, 0) << ErrName(errno);
    EXPECT_EQ(lseek(rfd, 0, SEEK_DATA), 0);
    off_t h = lseek(rfd, 0, SEEK_HOLE);
    EXPECT_GT(h, 0);
    EXPECT_LE(h, slack);
    off_t d = lseek(rfd, h, SEEK_DATA);
    EXPECT_GE(d, mid - slack);
    EXPECT_LE(d, mid);
    if (h > 0 && d > h) {
      EXPECT_EQ(Pread(rfd, static_cast<size_t>(d - h), h), std::string(static_cast<size_t>(d - h), '\0'));
    }
    EXPECT_EQ(Pread(rfd, 3, mid), "mid");
    off_t h2 = lseek(rfd, d, SEEK_HOLE);
    EXPECT_GT(h2, mid);
    EXPECT_LE(h2, mid + slack);
    errno = 0;
    EXPECT_EQ(lseek(rfd, h2, SEEK_DATA), -1) << "no data after the middle";
    EXPECT_EQ(errno, ENXIO);
    EXPECT_EQ(lseek(rfd, size - 1, SEEK_HOLE), size - 1);
    errno = 0;
    EXPECT_EQ(lseek(rfd, size, SEEK_HOLE), -1);
    EXPECT_EQ(errno, ENXIO);
    close(rfd);
  };
  check(P("holes"), "just written");
  ASSERT_TRUE(Remount());
  check(P("holes"), "committed, remounted");
  if (!NativeMode() && !PassthroughMode()) {
    auto ids = CommitIds();
    ASSERT_FALSE(ids.empty());
    check(P(".hashfs/history/" + ids.front() + "/holes"), "history view");
  }
}

// st_blocks counts stored data, not holes: before and after a commit, after
// a remount (the chunk list then comes from a manifest: more than 16 chunks)
// and in the history view. `cp` looks for holes only when st_blocks is below
// the size, so without this a sparse file (a VM image, say) copied out of the
// mount or out of history came out fully allocated. A dense file counts all
// of its bytes.
TEST_F(PosixTest, StBlocksCountsDataNotHolesSoCopiesStaySparse) {
  const off_t size = 256 << 20, at = 100 << 20, len = 1 << 20;
  const off_t most = 24 << 20;  // data plus a few windows of zeros around it and the tail
  const std::string data = RandomBytes(static_cast<size_t>(len), 7);
  int fd = open(P("sparse").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, size), 0);
  ASSERT_EQ(pwrite(fd, data.data(), data.size(), at), len);
  ASSERT_TRUE(WriteFile(P("dense"), RandomBytes(9 << 20, 8)));
  auto allocated = [](const std::string& path) -> off_t {
    struct stat st {};
    EXPECT_EQ(stat(path.c_str(), &st), 0) << path << ": " << ErrName(errno);
    return static_cast<off_t>(st.st_blocks) * 512;
  };
  int copies = 0;
  auto check = [&](const std::string& dir, const std::string& when) {
    SCOPED_TRACE(when);
    const off_t a = allocated(dir + "/sparse");
    EXPECT_GE(a, len);
    EXPECT_LT(a, most);
    EXPECT_GE(allocated(dir + "/dense"), 9 << 20);
    const std::string copy = host_ + "/copy" + std::to_string(copies++);
    RunResult r = Shell("cp --sparse=auto " + Quote(dir + "/sparse") + " " + Quote(copy), 120);
    ASSERT_EQ(r.code, 0) << r.err;
    EXPECT_LT(allocated(copy), most) << "cp wrote the holes out";
    RunResult c = Shell("cmp " + Quote(dir + "/sparse") + " " + Quote(copy), 120);
    EXPECT_EQ(c.code, 0) << c.out << c.err;
    unlink(copy.c_str());
  };
  check(mnt_, "written, open, not committed");
  ASSERT_EQ(fsync(fd), 0);
  ASSERT_EQ(close(fd), 0);
  check(mnt_, "committed");
  ASSERT_TRUE(Remount());
  check(mnt_, "remounted");
  if (!NativeMode() && !PassthroughMode()) {
    auto ids = CommitIds();
    ASSERT_FALSE(ids.empty());
    check(P(".hashfs/history/" + ids.front()), "history view");
  }
}

TEST_F(PosixTest, ErrnoConformanceAsRoot) {
  std::string d = P("conf");
  ASSERT_EQ(mkdir(d.c_str(), 0755), 0);
  auto bad = ErrnoConformance(d);
  EXPECT_TRUE(bad.empty()) << JoinLines(bad);
}

TEST_F(PosixTest, CreateExclTruncAppend) {
  std::string p = P("f");
  int fd = open(p.c_str(), O_CREAT | O_EXCL | O_RDWR, 0640);
  ASSERT_GE(fd, 0) << ErrName(errno);
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_TRUE(S_ISREG(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_size, 0);
  EXPECT_EQ(st.st_uid, 0u);
  EXPECT_EQ(st.st_gid, 0u);
  ASSERT_EQ(write(fd, "abcdef", 6), 6);
  ASSERT_EQ(close(fd), 0);
  EXPECT_EQ(open(p.c_str(), O_CREAT | O_EXCL | O_RDWR, 0640), -1);
  EXPECT_EQ(errno, EEXIST);
  // O_CREAT without O_EXCL opens the existing file untouched.
  fd = open(p.c_str(), O_CREAT | O_RDWR, 0600);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  EXPECT_EQ(st.st_size, 6);
  close(fd);
  EXPECT_EQ(ReadFile(p), "abcdef");

  // O_TRUNC empties it and updates mtime/ctime.
  struct stat before = St(p);
  Tick();
  fd = open(p.c_str(), O_WRONLY | O_TRUNC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 0);
  close(fd);
  st = St(p);
  EXPECT_EQ(st.st_size, 0);
  EXPECT_TRUE(After(st.st_mtim, before.st_mtim)) << Ts(st.st_mtim) << " vs " << Ts(before.st_mtim);
  EXPECT_TRUE(After(st.st_ctim, before.st_ctim));
  EXPECT_EQ(ReadFile(p), "");

  // O_APPEND: every write goes to the current end, whatever the offset.
  ASSERT_TRUE(WriteFile(p, "123"));
  int ap = open(p.c_str(), O_WRONLY | O_APPEND);
  int plain = open(p.c_str(), O_RDWR);
  ASSERT_GE(ap, 0);
  ASSERT_GE(plain, 0);
  ASSERT_EQ(lseek(ap, 0, SEEK_SET), 0);
  ASSERT_EQ(write(ap, "45", 2), 2);
  EXPECT_EQ(lseek(ap, 0, SEEK_CUR), 5);
  EXPECT_EQ(Pread(plain, 100, 0), "12345");
  ASSERT_EQ(pwrite(plain, "X", 1, 0), 1);
  ASSERT_EQ(write(ap, "6", 1), 1);
  EXPECT_EQ(Pread(plain, 100, 0), "X23456");
  ASSERT_EQ(pwrite(plain, "Z", 1, 10), 1);  // another fd extends the file with a hole
  ASSERT_EQ(write(ap, "7", 1), 1);
  EXPECT_EQ(Pread(plain, 100, 0), std::string("X23456\0\0\0\0Z7", 12));
  close(ap);
  close(plain);
  EXPECT_EQ(ReadFile(p), std::string("X23456\0\0\0\0Z7", 12));
  ASSERT_TRUE(Remount());
  EXPECT_EQ(ReadFile(p), std::string("X23456\0\0\0\0Z7", 12));
}

TEST_F(PosixTest, ReadWritePreadPwriteHolesAndOffsetsBeyond4GiB) {
  std::string p = P("sparse");
  int fd = open(p.c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, "hello", 5, 0), 5);
  ASSERT_EQ(pwrite(fd, "world", 5, 100000), 5);
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 100005);
  EXPECT_EQ(Pread(fd, 10, 50000), std::string(10, '\0'));
  EXPECT_EQ(Pread(fd, 7, 99998), std::string("\0\0world", 7));
  EXPECT_EQ(Pread(fd, 100, 100003), "ld");  // short read at EOF
  EXPECT_EQ(Pread(fd, 100, 100005), "");     // at EOF
  EXPECT_EQ(Pread(fd, 100, 200000), "");     // past EOF
  // read(2) advances the offset.
  ASSERT_EQ(lseek(fd, 0, SEEK_SET), 0);
  char buf[8];
  ASSERT_EQ(read(fd, buf, 3), 3);
  ASSERT_EQ(read(fd, buf + 3, 2), 2);
  EXPECT_EQ(std::string(buf, 5), "hello");
  EXPECT_EQ(lseek(fd, 0, SEEK_CUR), 5);
  EXPECT_EQ(lseek(fd, 0, SEEK_END), 100005);

  // Offsets beyond 4 GiB (and a write straddling the 4 GiB boundary).
  const off_t g4 = 4ll << 30, g5 = 5ll << 30;
  ASSERT_EQ(pwrite(fd, "big", 3, g5 + 3), 3) << ErrName(errno);
  ASSERT_EQ(pwrite(fd, "ABCDEFGH", 8, g4 - 4), 8) << ErrName(errno);
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, g5 + 6);
  EXPECT_EQ(Pread(fd, 8, g4 - 4), "ABCDEFGH");
  EXPECT_EQ(Pread(fd, 8, g4 + 4), std::string(8, '\0'));
  EXPECT_EQ(Pread(fd, 6, g5 + 1), std::string("\0\0big", 5));
  EXPECT_EQ(Pread(fd, 16, (3ll << 30) + 12345), std::string(16, '\0'));
  // 16 TiB (ext4's limit; Filesystem::kMaxFileSize) is the largest size:
  // past it EFBIG and nothing changes; a write across it is short, as on
  // ext4. (An exabyte of holes would be a chunk list of terabytes at commit.)
  const off_t t16 = off_t{1} << 44;
  EXPECT_EQ(pwrite(fd, "x", 1, t16), -1);
  EXPECT_EQ(errno, EFBIG) << ErrName(errno);
  EXPECT_EQ(ftruncate(fd, t16 + 1), -1);
  EXPECT_EQ(errno, EFBIG) << ErrName(errno);
  EXPECT_EQ(fallocate(fd, 0, t16 - 1, 2), -1);
  EXPECT_EQ(errno, EFBIG) << ErrName(errno);
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, g5 + 6);
  EXPECT_EQ(pwrite(fd, "xy", 2, t16 - 1), 1) << ErrName(errno);
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, t16);
  EXPECT_EQ(Pread(fd, 4, t16 - 2), std::string("\0x", 2));
  ASSERT_EQ(ftruncate(fd, g5 + 6), 0) << ErrName(errno);
  ASSERT_EQ(close(fd), 0);

  // A 3 MiB sequential write read back in odd-sized pieces.
  std::string data = RandomBytes(3 << 20, 42);
  ASSERT_TRUE(WriteFile(P("seq"), data));
  fd = open(P("seq").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  std::string back;
  std::mt19937 rng(7);
  for (;;) {
    std::string chunk(std::uniform_int_distribution<size_t>(1, 200000)(rng), '\0');
    ssize_t n = read(fd, chunk.data(), chunk.size());
    ASSERT_GE(n, 0);
    if (n == 0) break;
    back.append(chunk.data(), static_cast<size_t>(n));
  }
  close(fd);
  EXPECT_TRUE(back == data) << "sequential read-back differs";

  ASSERT_TRUE(Remount());
  fd = open(p.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, g5 + 6);
  EXPECT_EQ(Pread(fd, 5, 0), "hello");
  EXPECT_EQ(Pread(fd, 5, 100000), "world");
  EXPECT_EQ(Pread(fd, 8, g4 - 4), "ABCDEFGH");
  EXPECT_EQ(Pread(fd, 3, g5 + 3), "big");
  EXPECT_EQ(Pread(fd, 4096, 1 << 30), std::string(4096, '\0'));
  close(fd);
  EXPECT_EQ(HashFile(P("seq")), [&] {
    WriteFile(H("seq"), data);
    return HashFile(H("seq"));
  }());
  if (HashfsMode()) {
    // Holes are not stored as data.
    RunResult du = Shell("du -sm " + Quote(store_));
    EXPECT_LT(std::atoi(du.out.c_str()), 512) << "store size after a 5 GiB sparse file: " << du.out;
  }
}

// A file written past the mount's per-file dirty limit has its dirty pages
// chunked out on another thread while writes go on (FileContent's frozen
// layer). Reads during that, overwrites of frozen pages, truncates (which
// wait for the background flush) and a remount must all see exactly the
// bytes written. The kernel's page cache is dropped before each read so the
// daemon serves it.
TEST_F(PosixTest, WritesPastTheDirtyLimitReadBackWhileChunkedInBackground) {
  ASSERT_TRUE(Remount({"--dirty-limit", "1"}));
  std::mt19937_64 rng(42);
  std::string model;
  const std::string path = P("big");
  int fd = open(path.c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0) << ErrName(errno);
  auto check_range = [&](const char* what, int i) {
    if (model.empty()) return;
    ASSERT_EQ(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    size_t a = rng() % model.size();
    size_t len = std::min<size_t>(model.size() - a, 1 + rng() % (1 << 20));
    ASSERT_TRUE(Pread(fd, len, static_cast<off_t>(a)) == model.substr(a, len))
        << what << " " << i << ": " << len << " bytes at " << a << " differ";
  };
  // Sequential: 8 MiB in 128 KiB writes, a read of earlier bytes after each.
  const std::string data = RandomBytes(8 << 20, 5);
  for (size_t off = 0, i = 0; off < data.size(); off += 128 << 10, i++) {
    size_t n = std::min<size_t>(128 << 10, data.size() - off);
    ASSERT_EQ(pwrite(fd, data.data() + off, n, static_cast<off_t>(off)), static_cast<ssize_t>(n)) << ErrName(errno);
    model.append(data, off, n);
    check_range("sequential write", static_cast<int>(i));
  }
  // Random overwrites (some past EOF: holes), truncates down and up, reads.
  for (int i = 0; i < 200; i++) {
    switch (rng() % 5) {
      case 0:
      case 1: {
        size_t off = rng() % (model.size() + (64 << 10));
        std::string d = RandomBytes(1 + rng() % (160 << 10), 100 + i);
        ASSERT_EQ(pwrite(fd, d.data(), d.size(), static_cast<off_t>(off)), static_cast<ssize_t>(d.size()));
        if (model.size() < off + d.size()) model.resize(off + d.size(), '\0');
        model.replace(off, d.size(), d);
        break;
      }
      case 2: {
        size_t n = model.size() / 2 + rng() % (model.size() / 2 + (1 << 20));
        ASSERT_EQ(ftruncate(fd, static_cast<off_t>(n)), 0) << ErrName(errno);
        model.resize(n, '\0');
        break;
      }
      default:
        check_range("random op", i);
    }
    if (HasFatalFailure()) return;
  }
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(static_cast<size_t>(st.st_size), model.size());
  ASSERT_EQ(fsync(fd), 0) << ErrName(errno);
  ASSERT_EQ(close(fd), 0);
  EXPECT_TRUE(ReadFile(path) == model) << "content differs after fsync";
  ASSERT_TRUE(Remount());
  EXPECT_TRUE(ReadFile(path) == model) << "content differs after a remount";
  if (HashfsMode()) {
    RunResult v = Hashfs({"verify"});
    EXPECT_EQ(v.code, 0) << v.out << v.err;
  }
}

TEST_F(PosixTest, TruncateAndFtruncateGrowAndShrink) {
  std::string p = P("t");
  std::string data = RandomBytes(10000, 1);
  ASSERT_TRUE(WriteFile(p, data));
  ASSERT_EQ(truncate(p.c_str(), 20000), 0);
  std::string got = ReadFile(p);
  ASSERT_EQ(got.size(), 20000u);
  EXPECT_TRUE(got.substr(0, 10000) == data);
  EXPECT_EQ(got.substr(10000), std::string(10000, '\0'));

  int fd = open(p.c_str(), O_RDWR);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 5000), 0);
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 5000);
  // Growing again must expose zeros, never the old bytes.
  ASSERT_EQ(ftruncate(fd, 8000), 0);
  got = ReadFile(p);
  ASSERT_EQ(got.size(), 8000u);
  EXPECT_TRUE(got.substr(0, 5000) == data.substr(0, 5000));
  EXPECT_EQ(got.substr(5000), std::string(3000, '\0')) << "old data reappeared after shrink+grow";
  // Truncate by path while the fd is open; the fd sees it.
  ASSERT_EQ(truncate(p.c_str(), 100), 0);
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 100);
  ASSERT_EQ(pwrite(fd, "end", 3, 300), 3);
  EXPECT_EQ(Pread(fd, 500, 0), data.substr(0, 100) + std::string(200, '\0') + "end");
  // Shrink inside a buffered write, then grow past it.
  ASSERT_EQ(pwrite(fd, std::string(1000, 'w').data(), 1000, 0), 1000);
  ASSERT_EQ(ftruncate(fd, 10), 0);
  ASSERT_EQ(ftruncate(fd, 2000), 0);
  EXPECT_EQ(Pread(fd, 3000, 0), std::string(10, 'w') + std::string(1990, '\0'));
  // Very large sizes.
  ASSERT_EQ(ftruncate(fd, 6ll << 30), 0) << ErrName(errno);
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 6ll << 30);
  EXPECT_EQ(Pread(fd, 10, (6ll << 30) - 10), std::string(10, '\0'));
  ASSERT_EQ(ftruncate(fd, 0), 0);
  close(fd);
  EXPECT_EQ(ReadFile(p), "");
  ASSERT_TRUE(WriteFile(p, "abcdefgh"));
  ASSERT_EQ(truncate(p.c_str(), 3), 0);
  ASSERT_TRUE(Remount());
  EXPECT_EQ(ReadFile(p), "abc");
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HASHFS_TEST_SANITIZED 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define HASHFS_TEST_SANITIZED 1
#endif
#endif

// Punching a hole holds no more dirty pages than --dirty-limit allows (it
// wrote the whole range as zero pages: punching 256 MiB held 256 MiB), both
// in the middle of a file and to its end (which drops the bytes instead of
// writing zeros). The holes read as zeros, the data around them stays,
// during and after a remount.
TEST_F(PosixTest, PunchHoleHoldsBoundedMemory) {
  if (!HashfsMode()) GTEST_SKIP() << "measures the hashfs daemon";
  ASSERT_TRUE(Remount({"--dirty-limit", "2"}));
  constexpr off_t kMiB = 1 << 20, kSize = 256 * kMiB;
  const std::string head = RandomBytes(kMiB, 1), tail = RandomBytes(kMiB, 2);
  auto fill = [&](const std::string& p) {
    int fd = open(p.c_str(), O_CREAT | O_RDWR, 0644);
    EXPECT_GE(fd, 0) << ErrName(errno);
    EXPECT_EQ(pwrite(fd, head.data(), kMiB, 0), kMiB);
    EXPECT_EQ(pwrite(fd, tail.data(), kMiB, kSize - kMiB), kMiB);
    EXPECT_EQ(fsync(fd), 0);
    return fd;
  };
  auto peak_kb = [&] {
    uint64_t kb = 0;
    for (pid_t pid : DaemonPids()) kb = std::max(kb, StatusKb(ReadFile("/proc/" + std::to_string(pid) + "/status"), "VmHWM"));
    return kb;
  };
  int a = fill(P("to_end")), b = fill(P("middle"));
  ASSERT_TRUE(a >= 0 && b >= 0);
  // Under a sanitizer the daemon's peak says little: ASan keeps freed memory
  // in quarantine (256 MiB), so only the contents are checked there.
#ifdef HASHFS_TEST_SANITIZED
  constexpr bool kMeasure = false;
#else
  constexpr bool kMeasure = true;
#endif
  const uint64_t before = peak_kb();
  ASSERT_GT(before, 0u);
  ASSERT_EQ(fallocate(a, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, kMiB / 2, kSize), 0) << ErrName(errno);
  if (kMeasure) {
    EXPECT_LT(peak_kb() - before, 32u << 10) << "punching 255.5 MiB to the end raised the daemon's peak by that much (kB)";
  }
  ASSERT_EQ(fallocate(b, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, kMiB / 2, kSize - kMiB), 0) << ErrName(errno);
  if (kMeasure) {
    EXPECT_LT(peak_kb() - before, 64u << 10) << "punching 255 MiB in the middle raised the daemon's peak by that much (kB)";
  }
  auto check = [&](int fd, bool to_end, const char* when) {
    struct stat st;
    ASSERT_EQ(fstat(fd, &st), 0);
    EXPECT_EQ(st.st_size, kSize) << when;
    ASSERT_EQ(posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED), 0);
    EXPECT_TRUE(Pread(fd, kMiB / 2, 0) == head.substr(0, kMiB / 2)) << when;
    EXPECT_TRUE(Pread(fd, kMiB, kMiB / 2) == std::string(kMiB, '\0')) << when;
    EXPECT_TRUE(Pread(fd, kMiB, kSize / 2) == std::string(kMiB, '\0')) << when;
    EXPECT_TRUE(Pread(fd, kMiB / 2, kSize - kMiB) == std::string(kMiB / 2, '\0')) << when;
    EXPECT_TRUE(Pread(fd, kMiB / 2, kSize - kMiB / 2) == (to_end ? std::string(kMiB / 2, '\0') : tail.substr(kMiB / 2)))
        << when;
  };
  check(a, true, "to the end, open");
  check(b, false, "in the middle, open");
  close(a);
  close(b);
  ASSERT_TRUE(Remount());
  a = open(P("to_end").c_str(), O_RDONLY);
  b = open(P("middle").c_str(), O_RDONLY);
  ASSERT_TRUE(a >= 0 && b >= 0);
  check(a, true, "to the end, after a remount");
  check(b, false, "in the middle, after a remount");
  close(a);
  close(b);
}

TEST_F(PosixTest, Fallocate) {
  std::string p = P("fa");
  int fd = open(p.c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pwrite(fd, std::string(4096, 'a').data(), 4096, 0), 4096);
  ASSERT_EQ(fallocate(fd, 0, 0, 65536), 0) << ErrName(errno);
  struct stat st;
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 65536);
  EXPECT_EQ(Pread(fd, 65536, 0), std::string(4096, 'a') + std::string(61440, '\0'));
  ASSERT_EQ(fallocate(fd, FALLOC_FL_KEEP_SIZE, 65536, 65536), 0) << ErrName(errno);
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 65536);
  ASSERT_EQ(fallocate(fd, 0, 100000, 10), 0);
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 100010);
  EXPECT_EQ(posix_fallocate(fd, 0, 200000), 0);
  ASSERT_EQ(fstat(fd, &st), 0);
  EXPECT_EQ(st.st_size, 200000);
  EXPECT_EQ(fallocate(fd, 0, 0, 0), -1);
  EXPECT_EQ(errno, EINVAL);
  // Punching holes is optional; if it succeeds the range must read as zeros.
  int r = fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 1024, 1024);
  if (r == 0) {
    EXPECT_EQ(Pread(fd, 3072, 0), std::string(1024, 'a') + std::string(1024, '\0') + std::string(1024, 'a'));
    ASSERT_EQ(fstat(fd, &st), 0);
    EXPECT_EQ(st.st_size, 200000);
  } else {
    EXPECT_EQ(errno, EOPNOTSUPP) << "punch hole failed with " << ErrName(errno);
  }
  close(fd);
  fd = open(p.c_str(), O_RDONLY);
  EXPECT_EQ(fallocate(fd, 0, 0, 10), -1);
  EXPECT_EQ(errno, EBADF);
  close(fd);
  ASSERT_TRUE(Remount());
  struct stat st2 = St(p);
  EXPECT_EQ(st2.st_size, 200000);
  EXPECT_EQ(ReadFile(p).substr(0, 1024), std::string(1024, 'a'));
}

TEST_F(PosixTest, UnlinkRemovesNameAndUpdatesCounts) {
  ASSERT_TRUE(WriteFile(P("a"), "x"));
  ASSERT_EQ(link(P("a").c_str(), P("b").c_str()), 0);
  EXPECT_EQ(St(P("a")).st_nlink, 2u);
  ASSERT_EQ(unlink(P("b").c_str()), 0);
  EXPECT_EQ(St(P("a")).st_nlink, 1u);
  struct stat st;
  EXPECT_EQ(lstat(P("b").c_str(), &st), -1);
  EXPECT_EQ(errno, ENOENT);
  ASSERT_EQ(unlink(P("a").c_str()), 0);
  EXPECT_EQ(lstat(P("a").c_str(), &st), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(unlink(P("a").c_str()), -1);
  EXPECT_EQ(errno, ENOENT);
  // Unlink symlinks, fifos and a file in a subdirectory; the directory ends empty.
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(P("d/f"), "x"));
  ASSERT_EQ(symlink("f", P("d/s").c_str()), 0);
  ASSERT_EQ(mkfifo(P("d/p").c_str(), 0600), 0);
  for (const char* n : {"d/f", "d/s", "d/p"}) EXPECT_EQ(unlink(P(n).c_str()), 0) << n;
  EXPECT_EQ(rmdir(P("d").c_str()), 0);
  ASSERT_TRUE(Remount());
  EXPECT_EQ(lstat(P("d").c_str(), &st), -1);
  EXPECT_EQ(lstat(P("a").c_str(), &st), -1);
}

TEST_F(PosixTest, DirectoryLinkCountIsTwoPlusSubdirectories) {
  ASSERT_EQ(mkdir(P("a").c_str(), 0755), 0);
  EXPECT_EQ(St(P("a")).st_nlink, 2u);
  ASSERT_EQ(mkdir(P("a/b").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(P("a/c").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(P("a/file"), "x"));
  EXPECT_EQ(St(P("a")).st_nlink, 4u);
  ASSERT_EQ(rmdir(P("a/b").c_str()), 0);
  EXPECT_EQ(St(P("a")).st_nlink, 3u);
  ASSERT_EQ(mkdir(P("z").c_str(), 0755), 0);
  ASSERT_EQ(rename(P("a/c").c_str(), P("z/c").c_str()), 0);
  EXPECT_EQ(St(P("a")).st_nlink, 2u);
  EXPECT_EQ(St(P("z")).st_nlink, 3u);
  ASSERT_TRUE(Remount());
  EXPECT_EQ(St(P("a")).st_nlink, 2u);
  EXPECT_EQ(St(P("z")).st_nlink, 3u);
}

TEST_F(PosixTest, MkdirRmdirModesAndContents) {
  ASSERT_EQ(mkdir(P("d").c_str(), 0750), 0);
  struct stat st = St(P("d"));
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0750u);
  ASSERT_EQ(mkdir(P("d/e").c_str(), 0777), 0);
  EXPECT_EQ(St(P("d/e")).st_mode & 07777, 0755u);  // umask 022
  ASSERT_EQ(mkdir(P("d/e/f").c_str(), 01777), 0);
  EXPECT_EQ(St(P("d/e/f")).st_mode & 07777, 01755u);
  EXPECT_EQ(rmdir(P("d").c_str()), -1);
  EXPECT_EQ(errno, ENOTEMPTY);
  EXPECT_EQ(rmdir(P("d/e").c_str()), -1);
  EXPECT_EQ(errno, ENOTEMPTY);
  EXPECT_EQ(rmdir(P("d/e/f").c_str()), 0);
  EXPECT_EQ(rmdir(P("d/e").c_str()), 0);
  // A directory holding only a hidden file is not empty.
  ASSERT_TRUE(WriteFile(P("d/.hidden"), ""));
  EXPECT_EQ(rmdir(P("d").c_str()), -1);
  EXPECT_EQ(errno, ENOTEMPTY);
  ASSERT_EQ(unlink(P("d/.hidden").c_str()), 0);
  EXPECT_EQ(rmdir(P("d").c_str()), 0);
  // 200 entries in one directory.
  ASSERT_EQ(mkdir(P("many").c_str(), 0755), 0);
  for (int i = 0; i < 200; i++) ASSERT_EQ(mkdir(P("many/sub" + std::to_string(i)).c_str(), 0755), 0);
  EXPECT_EQ(DescribeTree(P("many")).size(), 200u);
  for (int i = 0; i < 200; i++) ASSERT_EQ(rmdir(P("many/sub" + std::to_string(i)).c_str()), 0);
  EXPECT_EQ(rmdir(P("many").c_str()), 0);
}

TEST_F(PosixTest, RenameSemantics) {
  // Over a file: the source inode takes the name; an open fd of the victim still reads it.
  ASSERT_TRUE(WriteFile(P("a"), "AAA"));
  ASSERT_TRUE(WriteFile(P("b"), "BBB"));
  ino_t ino_a = St(P("a")).st_ino;
  int victim = open(P("b").c_str(), O_RDONLY);
  ASSERT_GE(victim, 0);
  ASSERT_EQ(rename(P("a").c_str(), P("b").c_str()), 0);
  EXPECT_EQ(St(P("b")).st_ino, ino_a);
  EXPECT_EQ(ReadFile(P("b")), "AAA");
  struct stat st;
  EXPECT_EQ(lstat(P("a").c_str(), &st), -1);
  std::string old(3, '\0');
  EXPECT_EQ(pread(victim, old.data(), 3, 0), 3);
  EXPECT_EQ(old, "BBB");
  ASSERT_EQ(fstat(victim, &st), 0);
  EXPECT_EQ(st.st_nlink, 0u);
  close(victim);

  // Directory with contents, across parents; parents' link counts follow.
  ASSERT_EQ(mkdir(P("src").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(P("src/tree").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(P("src/tree/sub").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(P("src/tree/sub/leaf"), "leaf"));
  ASSERT_EQ(mkdir(P("dst").c_str(), 0755), 0);
  ASSERT_EQ(rename(P("src/tree").c_str(), P("dst/moved").c_str()), 0);
  EXPECT_EQ(ReadFile(P("dst/moved/sub/leaf")), "leaf");
  EXPECT_EQ(lstat(P("src/tree").c_str(), &st), -1);
  EXPECT_EQ(errno, ENOENT);
  EXPECT_EQ(lstat(P("src/tree/sub/leaf").c_str(), &st), -1);

  // Over an empty directory.
  ASSERT_EQ(mkdir(P("empty").c_str(), 0700), 0);
  ASSERT_EQ(rename(P("dst/moved").c_str(), P("empty").c_str()), 0);
  EXPECT_EQ(ReadFile(P("empty/sub/leaf")), "leaf");
  EXPECT_EQ(St(P("empty")).st_mode & 07777, 0755u);

  // Onto a non-empty directory.
  ASSERT_EQ(mkdir(P("other").c_str(), 0755), 0);
  EXPECT_EQ(rename(P("other").c_str(), P("empty").c_str()), -1);
  EXPECT_EQ(errno, ENOTEMPTY);

  // Two names of one inode: rename is a no-op, both names stay.
  ASSERT_TRUE(WriteFile(P("h1"), "h"));
  ASSERT_EQ(link(P("h1").c_str(), P("h2").c_str()), 0);
  ASSERT_EQ(rename(P("h1").c_str(), P("h2").c_str()), 0);
  EXPECT_EQ(lstat(P("h1").c_str(), &st), 0);
  EXPECT_EQ(St(P("h2")).st_nlink, 2u);
  // Onto itself.
  EXPECT_EQ(rename(P("b").c_str(), P("b").c_str()), 0);
  EXPECT_EQ(ReadFile(P("b")), "AAA");

  // RENAME_NOREPLACE.
  ASSERT_TRUE(WriteFile(P("n1"), "n1"));
  EXPECT_EQ(syscall(SYS_renameat2, AT_FDCWD, P("n1").c_str(), AT_FDCWD, P("b").c_str(), RENAME_NOREPLACE), -1);
  EXPECT_EQ(errno, EEXIST);
  EXPECT_EQ(ReadFile(P("b")), "AAA");
  EXPECT_EQ(syscall(SYS_renameat2, AT_FDCWD, P("n1").c_str(), AT_FDCWD, P("n2").c_str(), RENAME_NOREPLACE), 0);
  EXPECT_EQ(ReadFile(P("n2")), "n1");

  // RENAME_EXCHANGE of two directories in different parents.
  ASSERT_EQ(mkdir(P("x").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(P("x/one").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(P("x/one/id"), "one"));
  ASSERT_EQ(mkdir(P("y").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(P("y/two").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(P("y/two/id"), "two"));
  ino_t i1 = St(P("x/one")).st_ino, i2 = St(P("y/two")).st_ino;
  ASSERT_EQ(syscall(SYS_renameat2, AT_FDCWD, P("x/one").c_str(), AT_FDCWD, P("y/two").c_str(), RENAME_EXCHANGE), 0)
      << ErrName(errno);
  EXPECT_EQ(ReadFile(P("x/one/id")), "two");
  EXPECT_EQ(ReadFile(P("y/two/id")), "one");
  EXPECT_EQ(St(P("x/one")).st_ino, i2);
  EXPECT_EQ(St(P("y/two")).st_ino, i1);

  ASSERT_TRUE(Remount());
  EXPECT_EQ(ReadFile(P("b")), "AAA");
  EXPECT_EQ(ReadFile(P("empty/sub/leaf")), "leaf");
  EXPECT_EQ(ReadFile(P("x/one/id")), "two");
  EXPECT_EQ(ReadFile(P("y/two/id")), "one");
  EXPECT_EQ(ReadFile(P("n2")), "n1");
  EXPECT_EQ(St(P("h2")).st_nlink, 2u);
  EXPECT_EQ(St(P("h1")).st_ino, St(P("h2")).st_ino);
}

TEST_F(PosixTest, HardLinksShareInodeAndCountNames) {
  ASSERT_TRUE(WriteFile(P("a"), "shared"));
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  struct stat a0 = St(P("a"));
  EXPECT_EQ(a0.st_nlink, 1u);
  Tick();
  ASSERT_EQ(link(P("a").c_str(), P("b").c_str()), 0);
  ASSERT_EQ(link(P("b").c_str(), P("d/c").c_str()), 0);
  struct stat a = St(P("a")), b = St(P("b")), c = St(P("d/c"));
  EXPECT_EQ(a.st_nlink, 3u);
  EXPECT_EQ(b.st_nlink, 3u);
  EXPECT_EQ(c.st_nlink, 3u);
  EXPECT_EQ(a.st_ino, a0.st_ino);
  EXPECT_EQ(b.st_ino, a.st_ino);
  EXPECT_EQ(c.st_ino, a.st_ino);
  EXPECT_TRUE(After(a.st_ctim, a0.st_ctim)) << "link must update the inode's ctime";
  EXPECT_TRUE(Same(a.st_mtim, a0.st_mtim)) << "link must not change mtime";
  // Data and metadata are shared.
  ASSERT_TRUE(WriteFile(P("d/c"), "changed via c"));
  EXPECT_EQ(ReadFile(P("a")), "changed via c");
  ASSERT_EQ(chmod(P("b").c_str(), 0600), 0);
  EXPECT_EQ(St(P("a")).st_mode & 07777, 0600u);
  ASSERT_EQ(setxattr(P("a").c_str(), "user.k", "v", 1, 0), 0);
  char v[4];
  EXPECT_EQ(getxattr(P("d/c").c_str(), "user.k", v, sizeof v), 1);
  ASSERT_EQ(unlink(P("a").c_str()), 0);
  EXPECT_EQ(St(P("b")).st_nlink, 2u);
  EXPECT_EQ(ReadFile(P("b")), "changed via c");
  // Hardlinks to symlinks and fifos are allowed too.
  ASSERT_EQ(symlink("b", P("sl").c_str()), 0);
  ASSERT_EQ(link(P("sl").c_str(), P("sl2").c_str()), 0);
  EXPECT_EQ(St(P("sl2")).st_nlink, 2u);
  EXPECT_TRUE(S_ISLNK(St(P("sl2")).st_mode));
  ASSERT_TRUE(Remount());
  EXPECT_EQ(St(P("b")).st_nlink, 2u);
  EXPECT_EQ(St(P("b")).st_ino, St(P("d/c")).st_ino);
  EXPECT_EQ(ReadFile(P("d/c")), "changed via c");
  EXPECT_EQ(St(P("sl")).st_nlink, 2u);
  EXPECT_EQ(St(P("sl")).st_ino, St(P("sl2")).st_ino);
}

TEST_F(PosixTest, SymlinksReadlinkAndLoops) {
  ASSERT_EQ(mkdir(P("dir").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(P("dir/file"), "through link"));
  ASSERT_EQ(symlink("dir", P("ld").c_str()), 0);
  EXPECT_EQ(ReadFile(P("ld/file")), "through link");
  struct stat st = St(P("ld"));
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_EQ(st.st_size, 3);
  EXPECT_EQ(st.st_mode & 0777, 0777u);
  struct stat followed;
  ASSERT_EQ(stat(P("ld").c_str(), &followed), 0);
  EXPECT_TRUE(S_ISDIR(followed.st_mode));
  // Long and absolute targets.
  std::string longt(4000, 'x');
  for (size_t i = 100; i < longt.size(); i += 100) longt[i] = '/';
  ASSERT_EQ(symlink(longt.c_str(), P("long").c_str()), 0);
  char buf[4200];
  ssize_t n = readlink(P("long").c_str(), buf, sizeof buf);
  ASSERT_EQ(n, 4000);
  EXPECT_EQ(std::string(buf, 4000), longt);
  EXPECT_EQ(readlink(P("long").c_str(), buf, 10), 10);  // truncated, no NUL
  EXPECT_EQ(std::string(buf, 10), longt.substr(0, 10));
  ASSERT_EQ(symlink((mnt_ + "/dir/file").c_str(), P("abs").c_str()), 0);
  EXPECT_EQ(ReadFile(P("abs")), "through link");
  // Symlink chains: 40 hops resolve, a cycle gives ELOOP.
  ASSERT_EQ(symlink("dir/file", P("c0").c_str()), 0);
  for (int i = 1; i < 30; i++)
    ASSERT_EQ(symlink(("c" + std::to_string(i - 1)).c_str(), P("c" + std::to_string(i)).c_str()), 0);
  EXPECT_EQ(ReadFile(P("c29")), "through link");
  ASSERT_EQ(symlink("self", P("self").c_str()), 0);
  EXPECT_EQ(open(P("self").c_str(), O_RDONLY), -1);
  EXPECT_EQ(errno, ELOOP);
  EXPECT_EQ(open(P("self/x").c_str(), O_RDONLY), -1);
  EXPECT_EQ(errno, ELOOP);
  // Symlink targets may contain anything but NUL; they are not normalised.
  ASSERT_EQ(symlink("./a//b/../c/", P("odd").c_str()), 0);
  n = readlink(P("odd").c_str(), buf, sizeof buf);
  EXPECT_EQ(std::string(buf, n > 0 ? static_cast<size_t>(n) : 0), "./a//b/../c/");
  ASSERT_TRUE(Remount());
  n = readlink(P("long").c_str(), buf, sizeof buf);
  ASSERT_EQ(n, 4000);
  EXPECT_EQ(std::string(buf, 4000), longt);
  EXPECT_EQ(ReadFile(P("c29")), "through link");
  EXPECT_EQ(St(P("ld")).st_size, 3);
}

TEST_F(PosixTest, NameTooLong) {
  std::string n255(255, 'a'), n256(256, 'a');
  ASSERT_TRUE(WriteFile(P(n255), "ok"));
  EXPECT_EQ(ReadFile(P(n255)), "ok");
  ASSERT_EQ(mkdir(P("d" + std::string(254, 'b')).c_str(), 0755), 0);
  struct stat st;
  for (auto r : {open(P(n256).c_str(), O_CREAT | O_WRONLY, 0644), mkdir(P(n256).c_str(), 0755),
                 symlink("x", P(n256).c_str()), link(P(n255).c_str(), P(n256).c_str()),
                 rename(P(n255).c_str(), P(n256).c_str()), lstat(P(n256).c_str(), &st),
                 mkfifo(P(n256).c_str(), 0644)}) {
    EXPECT_EQ(r, -1);
    EXPECT_EQ(errno, ENAMETOOLONG);
  }
  EXPECT_EQ(setxattr(P(n255).c_str(), ("user." + std::string(250, 'x')).c_str(), "v", 1, 0), 0);
  EXPECT_EQ(setxattr(P(n255).c_str(), ("user." + std::string(251, 'x')).c_str(), "v", 1, 0), -1);
  EXPECT_EQ(errno, ERANGE);  // xattr names are limited to 255 bytes
  ASSERT_TRUE(Remount());
  EXPECT_EQ(ReadFile(P(n255)), "ok");
}

TEST_F(PosixTest, MknodFifoSocketAndDevices) {
  ASSERT_EQ(mknod(P("fifo").c_str(), S_IFIFO | 0640, 0), 0);
  struct stat st = St(P("fifo"));
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  EXPECT_EQ(st.st_mode & 07777, 0640u);
  // Data flows through a fifo that lives in the mount.
  std::thread writer([&] {
    int w = open(P("fifo").c_str(), O_WRONLY);
    if (w >= 0) {
      (void)!write(w, "through fifo", 12);
      close(w);
    }
  });
  int r = open(P("fifo").c_str(), O_RDONLY);
  ASSERT_GE(r, 0);
  std::string got;
  ReadAll(r, &got);
  close(r);
  writer.join();
  EXPECT_EQ(got, "through fifo");

  // A unix socket bound in the mount.
  int srv = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un addr = {};
  addr.sun_family = AF_UNIX;
  std::string sp = P("sock");
  ASSERT_LT(sp.size(), sizeof addr.sun_path);
  std::strcpy(addr.sun_path, sp.c_str());
  ASSERT_EQ(bind(srv, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << ErrName(errno);
  ASSERT_EQ(listen(srv, 1), 0);
  EXPECT_TRUE(S_ISSOCK(St(sp).st_mode));
  int cli = socket(AF_UNIX, SOCK_STREAM, 0);
  ASSERT_EQ(connect(cli, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0) << ErrName(errno);
  int acc = accept(srv, nullptr, nullptr);
  ASSERT_GE(acc, 0);
  ASSERT_EQ(write(cli, "ping", 4), 4);
  char buf[8];
  EXPECT_EQ(read(acc, buf, 4), 4);
  EXPECT_EQ(std::string(buf, 4), "ping");
  close(acc);
  close(cli);
  close(srv);

  if (geteuid() == 0) {
    ASSERT_EQ(mknod(P("null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0) << ErrName(errno);
    ASSERT_EQ(mknod(P("blk").c_str(), S_IFBLK | 0600, makedev(7, 200)), 0) << ErrName(errno);
    ASSERT_EQ(mknod(P("bigdev").c_str(), S_IFCHR | 0600, makedev(300, 70000)), 0) << ErrName(errno);
    st = St(P("null"));
    EXPECT_TRUE(S_ISCHR(st.st_mode));
    EXPECT_EQ(st.st_rdev, makedev(1, 3));
    EXPECT_EQ(st.st_mode & 07777, 0644u);  // umask 022
    st = St(P("blk"));
    EXPECT_TRUE(S_ISBLK(st.st_mode));
    EXPECT_EQ(st.st_rdev, makedev(7, 200));
    EXPECT_EQ(St(P("bigdev")).st_rdev, makedev(300, 70000));
  }
  ASSERT_TRUE(Remount());
  EXPECT_TRUE(S_ISFIFO(St(P("fifo")).st_mode));
  EXPECT_TRUE(S_ISSOCK(St(P("sock")).st_mode));
  if (geteuid() == 0) {
    EXPECT_EQ(St(P("null")).st_rdev, makedev(1, 3));
    EXPECT_EQ(St(P("blk")).st_rdev, makedev(7, 200));
    EXPECT_TRUE(S_ISBLK(St(P("blk")).st_mode));
    EXPECT_EQ(St(P("bigdev")).st_rdev, makedev(300, 70000));
  }
}

TEST_F(PosixTest, ChmodChown) {
  ASSERT_TRUE(WriteFile(P("f"), "x"));
  for (mode_t m : {0000, 0644, 0777, 04755, 02755, 01777, 07777, 0401}) {
    ASSERT_EQ(chmod(P("f").c_str(), m), 0);
    EXPECT_EQ(St(P("f")).st_mode & 07777, m) << std::oct << m;
  }
  int fd = open(P("f").c_str(), O_RDONLY);
  ASSERT_EQ(fchmod(fd, 0640), 0);
  EXPECT_EQ(St(P("f")).st_mode & 07777, 0640u);
  ASSERT_EQ(chown(P("f").c_str(), 1234, 5678), 0);
  struct stat st = St(P("f"));
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 5678u);
  ASSERT_EQ(chown(P("f").c_str(), static_cast<uid_t>(-1), 99), 0);
  st = St(P("f"));
  EXPECT_EQ(st.st_uid, 1234u);
  EXPECT_EQ(st.st_gid, 99u);
  ASSERT_EQ(fchown(fd, 4000000000u, static_cast<gid_t>(-1)), 0);  // 32-bit ids
  EXPECT_EQ(St(P("f")).st_uid, 4000000000u);
  close(fd);
  // lchown changes the link, not the target.
  ASSERT_EQ(symlink("f", P("l").c_str()), 0);
  ASSERT_EQ(lchown(P("l").c_str(), 77, 88), 0);
  EXPECT_EQ(St(P("l")).st_uid, 77u);
  EXPECT_EQ(St(P("l")).st_gid, 88u);
  EXPECT_EQ(St(P("f")).st_gid, 99u);
  // chmod through a symlink changes the target.
  ASSERT_EQ(chmod(P("l").c_str(), 0604), 0);
  EXPECT_EQ(St(P("f")).st_mode & 07777, 0604u);
  EXPECT_EQ(St(P("l")).st_mode & 07777, 0777u);
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  ASSERT_EQ(chmod(P("d").c_str(), 03710), 0);
  ASSERT_EQ(chown(P("d").c_str(), 5, 6), 0);
  ASSERT_TRUE(Remount());
  st = St(P("f"));
  EXPECT_EQ(st.st_mode & 07777, 0604u);
  EXPECT_EQ(st.st_uid, 4000000000u);
  EXPECT_EQ(st.st_gid, 99u);
  EXPECT_EQ(St(P("l")).st_uid, 77u);
  st = St(P("d"));
  EXPECT_EQ(st.st_mode & 07777, 03710u);
  EXPECT_EQ(st.st_uid, 5u);
  EXPECT_EQ(st.st_gid, 6u);
}

TEST_F(PosixTest, UtimensatExplicitNowOmitAndNofollow) {
  ASSERT_TRUE(WriteFile(P("f"), "x"));
  struct timespec ts[2] = {{1000000000, 111111111}, {1500000000, 222222222}};
  struct stat before = St(P("f"));
  Tick();
  ASSERT_EQ(utimensat(AT_FDCWD, P("f").c_str(), ts, 0), 0);
  struct stat st = St(P("f"));
  EXPECT_EQ(st.st_mtim.tv_sec, 1500000000);
  EXPECT_EQ(st.st_mtim.tv_nsec, 222222222);
  EXPECT_TRUE(After(st.st_ctim, before.st_ctim)) << "utimensat must set ctime to now";
  // Only mtime changes with UTIME_OMIT for atime, and vice versa.
  struct timespec m_only[2] = {{0, UTIME_OMIT}, {1600000000, 5}};
  ASSERT_EQ(utimensat(AT_FDCWD, P("f").c_str(), m_only, 0), 0);
  EXPECT_EQ(St(P("f")).st_mtim.tv_sec, 1600000000);
  EXPECT_EQ(St(P("f")).st_mtim.tv_nsec, 5);
  struct timespec a_only[2] = {{1700000000, 6}, {0, UTIME_OMIT}};
  ASSERT_EQ(utimensat(AT_FDCWD, P("f").c_str(), a_only, 0), 0);
  EXPECT_EQ(St(P("f")).st_mtim.tv_sec, 1600000000);
  // Both omitted: nothing changes, not even ctime.
  struct stat s1 = St(P("f"));
  Tick();
  struct timespec omit[2] = {{0, UTIME_OMIT}, {0, UTIME_OMIT}};
  ASSERT_EQ(utimensat(AT_FDCWD, P("f").c_str(), omit, 0), 0);
  EXPECT_TRUE(Same(St(P("f")).st_ctim, s1.st_ctim));
  // UTIME_NOW and NULL.
  struct timespec t0;
  clock_gettime(CLOCK_REALTIME, &t0);
  struct timespec now[2] = {{0, UTIME_OMIT}, {0, UTIME_NOW}};
  ASSERT_EQ(utimensat(AT_FDCWD, P("f").c_str(), now, 0), 0);
  struct timespec t1;
  clock_gettime(CLOCK_REALTIME, &t1);
  st = St(P("f"));
  EXPECT_GE(st.st_mtim.tv_sec, t0.tv_sec - 1);
  EXPECT_LE(st.st_mtim.tv_sec, t1.tv_sec);
  ASSERT_EQ(utimensat(AT_FDCWD, P("f").c_str(), ts, 0), 0);
  ASSERT_EQ(utimensat(AT_FDCWD, P("f").c_str(), nullptr, 0), 0);
  EXPECT_GE(St(P("f")).st_mtim.tv_sec, t0.tv_sec - 1);
  // futimens on an open fd.
  int fd = open(P("f").c_str(), O_RDONLY);
  ASSERT_EQ(futimens(fd, ts), 0);
  close(fd);
  EXPECT_EQ(St(P("f")).st_mtim.tv_sec, 1500000000);
  // AT_SYMLINK_NOFOLLOW sets the link's own times.
  ASSERT_EQ(symlink("f", P("l").c_str()), 0);
  struct timespec lts[2] = {{1200000000, 0}, {1200000000, 7}};
  ASSERT_EQ(utimensat(AT_FDCWD, P("l").c_str(), lts, AT_SYMLINK_NOFOLLOW), 0);
  EXPECT_EQ(St(P("l")).st_mtim.tv_sec, 1200000000);
  EXPECT_EQ(St(P("l")).st_mtim.tv_nsec, 7);
  EXPECT_EQ(St(P("f")).st_mtim.tv_sec, 1500000000);
  // Directories too; negative (pre-1970) times.
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  struct timespec old[2] = {{-86400, 0}, {-86400, 500}};
  ASSERT_EQ(utimensat(AT_FDCWD, P("d").c_str(), old, 0), 0);
  EXPECT_EQ(St(P("d")).st_mtim.tv_sec, -86400);
  ASSERT_TRUE(Remount());
  EXPECT_EQ(St(P("f")).st_mtim.tv_sec, 1500000000);
  EXPECT_EQ(St(P("f")).st_mtim.tv_nsec, 222222222);
  EXPECT_EQ(St(P("l")).st_mtim.tv_nsec, 7);
  EXPECT_EQ(St(P("d")).st_mtim.tv_sec, -86400);
  EXPECT_EQ(St(P("d")).st_mtim.tv_nsec, 500);
}

TEST_F(PosixTest, AtimeSetByUtimensatIsReported) {
  ASSERT_TRUE(WriteFile(P("f"), "x"));
  struct timespec ts[2] = {{1000000000, 111111111}, {1500000000, 222222222}};
  ASSERT_EQ(utimensat(AT_FDCWD, P("f").c_str(), ts, 0), 0);
  struct stat st = St(P("f"));
  EXPECT_EQ(st.st_atim.tv_sec, 1000000000);
  EXPECT_EQ(st.st_atim.tv_nsec, 111111111);
}

TEST_F(PosixTest, Xattrs) {
  std::string f = P("f");
  ASSERT_TRUE(WriteFile(f, "x"));
  std::string bin("\0\1\2binary\0value\xff", 16);
  std::string big = RandomBytes(3000, 5);
  ASSERT_EQ(setxattr(f.c_str(), "user.a", "1", 1, 0), 0);
  ASSERT_EQ(setxattr(f.c_str(), "user.bin", bin.data(), bin.size(), 0), 0);
  ASSERT_EQ(setxattr(f.c_str(), "user.big", big.data(), big.size(), 0), 0);
  ASSERT_EQ(setxattr(f.c_str(), "user.empty", "", 0, 0), 0);
  if (geteuid() == 0) {
    ASSERT_EQ(setxattr(f.c_str(), "trusted.t", "tt", 2, 0), 0) << ErrName(errno);
  }
  auto list = [](const std::string& p) {
    std::vector<char> buf(65536);
    ssize_t n = listxattr(p.c_str(), buf.data(), buf.size());
    std::set<std::string> s;
    for (ssize_t i = 0; i < n;) {
      std::string x(buf.data() + i);
      i += static_cast<ssize_t>(x.size()) + 1;
      if (x.rfind("user.", 0) == 0 || x.rfind("trusted.", 0) == 0) s.insert(x);
    }
    return s;
  };
  std::set<std::string> want = {"user.a", "user.bin", "user.big", "user.empty"};
  if (geteuid() == 0) want.insert("trusted.t");
  EXPECT_EQ(list(f), want);
  ssize_t need = listxattr(f.c_str(), nullptr, 0);
  EXPECT_GT(need, 0);
  char tiny[4];
  EXPECT_EQ(listxattr(f.c_str(), tiny, sizeof tiny), -1);
  EXPECT_EQ(errno, ERANGE);
  auto get = [](const std::string& p, const char* n) {
    std::vector<char> buf(65536);
    ssize_t r = getxattr(p.c_str(), n, buf.data(), buf.size());
    return r < 0 ? "<" + ErrName(errno) + ">" : std::string(buf.data(), static_cast<size_t>(r));
  };
  EXPECT_EQ(get(f, "user.bin"), bin);
  EXPECT_EQ(get(f, "user.big"), big);
  EXPECT_EQ(get(f, "user.empty"), "");
  EXPECT_EQ(get(f, "user.nope"), "<ENODATA>");
  // Replace with a shorter value, remove.
  ASSERT_EQ(setxattr(f.c_str(), "user.big", "short", 5, XATTR_REPLACE), 0);
  EXPECT_EQ(get(f, "user.big"), "short");
  ASSERT_EQ(removexattr(f.c_str(), "user.a"), 0);
  EXPECT_EQ(get(f, "user.a"), "<ENODATA>");
  want.erase("user.a");
  EXPECT_EQ(list(f), want);
  // fd variants and directories.
  int fd = open(f.c_str(), O_RDONLY);
  ASSERT_EQ(fsetxattr(fd, "user.fd", "viafd", 5, 0), 0);
  char buf[16];
  EXPECT_EQ(fgetxattr(fd, "user.fd", buf, sizeof buf), 5);
  close(fd);
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  ASSERT_EQ(setxattr(P("d").c_str(), "user.dir", "dv", 2, 0), 0);
  EXPECT_EQ(get(P("d"), "user.dir"), "dv");
  // A new file has no user xattrs.
  ASSERT_TRUE(WriteFile(P("g"), ""));
  EXPECT_TRUE(list(P("g")).empty());
  ASSERT_TRUE(Remount());
  want.insert("user.fd");
  EXPECT_EQ(list(f), want);
  EXPECT_EQ(get(f, "user.bin"), bin);
  EXPECT_EQ(get(f, "user.big"), "short");
  EXPECT_EQ(get(P("d"), "user.dir"), "dv");
  if (geteuid() == 0) {
    EXPECT_EQ(get(f, "trusted.t"), "tt");
  }
}

// A file's xattrs are bounded together (kMaxXattrBytes, 96 KiB): setxattr
// past that is ENOSPC, as on ext4 when its xattr space is full. Without the
// bound a directory whose files carried 30 x 64 KiB each made a listing
// object over the 64 MiB object limit, and from then on no commit of the
// volume went through (fsync EINVAL, and unmount lost the pending changes).
// At the bound, a directory of 512 full files (one trie leaf, the largest)
// still commits, and everything is there after a remount.
TEST_F(PosixTest, XattrsOfAFileAreBoundedSoEveryDirectoryCommits) {
  HASHFS_ONLY();
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  const std::string v64 = RandomBytes(64 * 1024, 7);
  // What used to break commits: many large values per file.
  for (int f = 0; f < 40; f++) {
    std::string p = P("d/f" + std::to_string(f));
    ASSERT_TRUE(WriteFile(p, "x"));
    ASSERT_EQ(setxattr(p.c_str(), "user.x0", v64.data(), v64.size(), 0), 0) << ErrName(errno);
    errno = 0;
    EXPECT_EQ(setxattr(p.c_str(), "user.x1", v64.data(), v64.size(), 0), -1) << "past 96 KiB in all";
    EXPECT_EQ(errno, ENOSPC) << ErrName(errno);
  }
  // Up to the bound exactly: names + values = 96 KiB. Replacing a value
  // counts the new size instead of the old, and removing frees room.
  const std::string n0 = "user.a", n1 = "user.b";
  const std::string a = RandomBytes(48 * 1024 - n0.size(), 8), b = RandomBytes(48 * 1024 - n1.size(), 9);
  for (int f = 0; f < 512; f++) {
    std::string p = P("d/f" + std::to_string(f));
    if (f >= 40) {
      ASSERT_TRUE(WriteFile(p, "x"));
    }
    removexattr(p.c_str(), "user.x0");
    ASSERT_EQ(setxattr(p.c_str(), n0.c_str(), a.data(), a.size(), 0), 0) << f << ": " << ErrName(errno);
    ASSERT_EQ(setxattr(p.c_str(), n1.c_str(), b.data(), b.size(), 0), 0) << f << ": " << ErrName(errno);
  }
  std::string p0 = P("d/f0");
  errno = 0;
  EXPECT_EQ(setxattr(p0.c_str(), "user.c", "1", 1, 0), -1);
  EXPECT_EQ(errno, ENOSPC);
  EXPECT_EQ(setxattr(p0.c_str(), n1.c_str(), b.data(), b.size(), XATTR_REPLACE), 0) << ErrName(errno);
  int dfd = open(P("d").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(dfd, 0);
  EXPECT_EQ(fsync(dfd), 0) << "the directory's listing must commit: " << ErrName(errno);
  close(dfd);
  ASSERT_TRUE(Remount());
  std::vector<char> buf(65536);
  for (int f : {0, 39, 40, 511}) {
    std::string p = P("d/f" + std::to_string(f));
    ssize_t r = getxattr(p.c_str(), n1.c_str(), buf.data(), buf.size());
    ASSERT_EQ(r, static_cast<ssize_t>(b.size())) << f << ": " << ErrName(errno);
    EXPECT_EQ(std::string(buf.data(), b.size()), b);
    EXPECT_EQ(getxattr(p.c_str(), "user.x0", buf.data(), buf.size()), -1);
  }
  auto verify = Hashfs({"verify"});
  EXPECT_EQ(verify.code, 0) << verify.err;
}

TEST_F(PosixTest, Statfs) {
  struct statvfs sv;
  ASSERT_EQ(statvfs(mnt_.c_str(), &sv), 0);
  EXPECT_GT(sv.f_bsize, 0u);
  EXPECT_GT(sv.f_frsize, 0u);
  EXPECT_EQ(sv.f_namemax, 255u);
  EXPECT_GE(sv.f_blocks, sv.f_bfree);
  EXPECT_GE(sv.f_bfree, sv.f_bavail);
  EXPECT_GT(sv.f_bavail, 0u);
  EXPECT_GE(sv.f_files, sv.f_ffree);
  struct statfs sf;
  ASSERT_TRUE(WriteFile(P("f"), "x"));
  int fd = open(P("f").c_str(), O_RDONLY);
  ASSERT_EQ(fstatfs(fd, &sf), 0);
  close(fd);
  if (!NativeMode()) {
    EXPECT_EQ(static_cast<unsigned long>(sf.f_type), 0x65735546ul);  // FUSE_SUPER_MAGIC
  }
}

TEST_F(PosixTest, FsyncFdatasyncFsyncdir) {
  int fd = open(P("f").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(write(fd, "synced", 6), 6);
  EXPECT_EQ(fsync(fd), 0) << ErrName(errno);
  if (HashfsMode()) {
    // The fsync'd data is committed while the file is still open.
    RunResult c = Hashfs({"cat", std::string(kVolume) + ":f"});
    EXPECT_EQ(c.code, 0) << c.err;
    EXPECT_EQ(c.out, "synced");
  }
  ASSERT_EQ(write(fd, "+more", 5), 5);
  EXPECT_EQ(fdatasync(fd), 0) << ErrName(errno);
  if (HashfsMode()) {
    EXPECT_EQ(Hashfs({"cat", std::string(kVolume) + ":f"}).out, "synced+more");
  }
  close(fd);
  fd = open(P("f").c_str(), O_RDONLY);
  EXPECT_EQ(fsync(fd), 0);
  EXPECT_EQ(syncfs(fd), 0);
  close(fd);
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  int dfd = open(P("d").c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(dfd, 0);
  EXPECT_EQ(fsync(dfd), 0) << "fsyncdir: " << ErrName(errno);
  EXPECT_EQ(fdatasync(dfd), 0);
  close(dfd);
  dfd = open(mnt_.c_str(), O_RDONLY | O_DIRECTORY);
  EXPECT_EQ(fsync(dfd), 0);
  close(dfd);
  sync();
}

TEST_F(PosixTest, AccessChecks) {
  ASSERT_TRUE(WriteFile(P("rw"), "x", 0644));
  ASSERT_EQ(chmod(P("rw").c_str(), 0644), 0);
  ASSERT_TRUE(WriteFile(P("x"), "x"));
  ASSERT_EQ(chmod(P("x").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(P("none"), "x"));
  ASSERT_EQ(chmod(P("none").c_str(), 0), 0);
  ASSERT_EQ(mkdir(P("d").c_str(), 0), 0);
  EXPECT_EQ(access(P("rw").c_str(), F_OK), 0);
  EXPECT_EQ(access(P("rw").c_str(), R_OK | W_OK), 0);
  EXPECT_EQ(access(P("rw").c_str(), X_OK), -1);  // even root needs one x bit
  EXPECT_EQ(errno, EACCES);
  EXPECT_EQ(access(P("x").c_str(), X_OK), 0);
  EXPECT_EQ(access(P("none").c_str(), R_OK | W_OK), 0);  // root
  EXPECT_EQ(access(P("d").c_str(), R_OK | W_OK | X_OK), 0);
  EXPECT_EQ(access(P("missing").c_str(), F_OK), -1);
  EXPECT_EQ(errno, ENOENT);
  std::string r = AsUser(65534, 65534, [&] {
    std::string out;
    out += ErrOf(access(P("rw").c_str(), R_OK)) + " ";
    out += ErrOf(access(P("rw").c_str(), W_OK)) + " ";
    out += ErrOf(access(P("rw").c_str(), X_OK)) + " ";
    out += ErrOf(access(P("x").c_str(), X_OK)) + " ";
    out += ErrOf(access(P("none").c_str(), R_OK)) + " ";
    out += ErrOf(access(P("d").c_str(), X_OK)) + " ";
    out += ErrOf(access(P("d/anything").c_str(), F_OK));
    return out;
  });
  EXPECT_EQ(r, "OK EACCES EACCES OK EACCES EACCES EACCES");
}

// A raw getdents64 reader that consumes one entry at a time and can seek back
// to the d_off cookie of any entry it returned.
class DirReader {
 public:
  explicit DirReader(const std::string& path) : fd_(open(path.c_str(), O_RDONLY | O_DIRECTORY)) {}
  ~DirReader() {
    if (fd_ >= 0) close(fd_);
  }
  bool ok() const { return fd_ >= 0; }
  // Next name (skipping . and ..); false at the end or on error (err_ set).
  bool Next(std::string* name, off_t* cookie) {
    for (;;) {
      if (pos_ >= len_) {
        long n = syscall(SYS_getdents64, fd_, buf_, sizeof buf_);
        if (n < 0) {
          err_ = errno;
          return false;
        }
        if (n == 0) return false;
        len_ = static_cast<size_t>(n);
        pos_ = 0;
      }
      struct Dirent {
        uint64_t d_ino;
        int64_t d_off;
        unsigned short d_reclen;
        unsigned char d_type;
        char d_name[1];
      };
      auto* de = reinterpret_cast<Dirent*>(buf_ + pos_);
      pos_ += de->d_reclen;
      std::string n = de->d_name;
      if (n == "." || n == "..") continue;
      *name = n;
      *cookie = static_cast<off_t>(de->d_off);
      return true;
    }
  }
  bool Seek(off_t cookie) {
    pos_ = len_ = 0;
    return lseek(fd_, cookie, SEEK_SET) == cookie;
  }
  int err_ = 0;

 private:
  int fd_;
  alignas(8) char buf_[1024];  // small: many getdents calls, many FUSE readdir offsets
  size_t pos_ = 0, len_ = 0;
};

TEST_F(PosixTest, ReaddirStableOffsetsUnderConcurrentChange) {
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  const int kFiles = 1000;
  auto name = [](const std::string& prefix, int i) { return prefix + std::string(60, 'x') + std::to_string(i); };
  std::set<std::string> original;
  for (int i = 0; i < kFiles; i++) {
    ASSERT_TRUE(WriteFile(P("d/" + name("orig", i)), ""));
    original.insert(name("orig", i));
  }
  DirReader dr(P("d"));
  ASSERT_TRUE(dr.ok());
  std::vector<std::string> seen;
  std::string n;
  off_t cookie = 0, saved = 0;
  for (int i = 0; i < 300; i++) {
    ASSERT_TRUE(dr.Next(&n, &cookie)) << "entry " << i << ": " << ErrName(dr.err_);
    seen.push_back(n);
  }
  saved = cookie;
  // telldir/seekdir: re-reading from a saved cookie gives the same entries.
  std::vector<std::string> first, again;
  for (int i = 0; i < 20; i++) {
    ASSERT_TRUE(dr.Next(&n, &cookie));
    first.push_back(n);
  }
  ASSERT_TRUE(dr.Seek(saved));
  for (int i = 0; i < 20; i++) {
    ASSERT_TRUE(dr.Next(&n, &cookie));
    again.push_back(n);
  }
  EXPECT_EQ(first, again);
  ASSERT_TRUE(dr.Seek(saved));
  // Now change the directory under the open stream: add 500, remove 200 seen and 200 unseen.
  std::set<std::string> seen_set(seen.begin(), seen.end()), removed, added;
  int removed_seen = 0, removed_unseen = 0;
  for (const auto& o : original) {
    bool s = seen_set.count(o) > 0;
    if ((s && removed_seen < 200) || (!s && removed_unseen < 200 && (o.back() % 2 == 0))) {
      ASSERT_EQ(unlink(P("d/" + o).c_str()), 0);
      removed.insert(o);
      (s ? removed_seen : removed_unseen)++;
    }
  }
  for (int i = 0; i < 500; i++) {
    ASSERT_TRUE(WriteFile(P("d/" + name("new", i)), ""));
    added.insert(name("new", i));
  }
  while (dr.Next(&n, &cookie)) seen.push_back(n);
  EXPECT_EQ(dr.err_, 0) << ErrName(dr.err_);
  std::map<std::string, int> count;
  for (const auto& s : seen) count[s]++;
  for (const auto& [k, c] : count) {
    EXPECT_EQ(c, 1) << "entry returned " << c << " times: " << k;
    EXPECT_TRUE(original.count(k) || added.count(k)) << "never existed: " << k;
  }
  for (const auto& o : original)
    if (!removed.count(o)) {
      EXPECT_EQ(count[o], 1) << "entry present throughout was not returned: " << o;
    }
  // glibc's seekdir/telldir on a fresh stream, and a full listing after the changes.
  DIR* dp = opendir(P("d").c_str());
  ASSERT_NE(dp, nullptr);
  std::vector<std::string> all;
  long loc = -1;
  std::string at_loc;
  while (auto* de = readdir(dp)) {
    std::string s = de->d_name;
    if (s == "." || s == "..") continue;
    if (all.size() == 700) {
      at_loc = s;
    }
    all.push_back(s);
    if (all.size() == 700) loc = telldir(dp);
  }
  ASSERT_EQ(all.size(), static_cast<size_t>(kFiles) - removed.size() + added.size());
  ASSERT_GE(loc, 0);
  seekdir(dp, loc);
  auto* de = readdir(dp);
  ASSERT_NE(de, nullptr);
  EXPECT_EQ(std::string(de->d_name), all[700]);
  rewinddir(dp);
  size_t again_count = 0;
  while ((de = readdir(dp)) != nullptr) again_count += std::string(de->d_name) != "." && std::string(de->d_name) != "..";
  EXPECT_EQ(again_count, all.size());
  closedir(dp);
}

TEST_F(PosixTest, HistoryDirIsHiddenFromRootListingButReachable) {
  ASSERT_TRUE(WriteFile(P("f"), "x"));
  auto root = DescribeTree(mnt_, DescribeOptions{.content = false, .xattrs = false, .skip_names = {}});
  for (const auto& [k, v] : root) EXPECT_EQ(k.find(".hashfs"), std::string::npos) << k;
  HASHFS_ONLY();
  struct stat st;
  ASSERT_EQ(stat(P(".hashfs").c_str(), &st), 0) << ErrName(errno);
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(stat(P(".hashfs/history").c_str(), &st), 0);
  EXPECT_EQ(stat(P(".hashfs/snapshots").c_str(), &st), 0);
  // Only at the root.
  ASSERT_EQ(mkdir(P("sub").c_str(), 0755), 0);
  EXPECT_EQ(stat(P("sub/.hashfs").c_str(), &st), -1);
  EXPECT_EQ(errno, ENOENT);
}

TEST_F(PosixTest, SharedWritableMmap) {
  const size_t size = (1 << 20) + 123;
  std::string expect = RandomBytes(size, 9);
  int fd = open(P("m").c_str(), O_CREAT | O_RDWR, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, static_cast<off_t>(size)), 0);
  void* m = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  ASSERT_NE(m, MAP_FAILED) << ErrName(errno);
  std::memcpy(m, expect.data(), size);
  ASSERT_EQ(msync(m, size, MS_SYNC), 0) << ErrName(errno);
  // Visible through read(2) on another descriptor.
  int fd2 = open(P("m").c_str(), O_RDONLY);
  std::string got(size, '\0');
  ASSERT_EQ(pread(fd2, got.data(), size, 0), static_cast<ssize_t>(size));
  EXPECT_TRUE(got == expect) << "msync'd mmap writes not visible to read()";
  // write(2) is visible through the mapping.
  close(fd2);
  fd2 = open(P("m").c_str(), O_RDWR);
  ASSERT_EQ(pwrite(fd2, "WRITE", 5, 4096), 5);
  EXPECT_EQ(std::string(static_cast<char*>(m) + 4096, 5), "WRITE");
  expect.replace(4096, 5, "WRITE");
  // Change the last partial page and a middle page, then unmap without msync.
  std::memcpy(static_cast<char*>(m) + size - 10, "0123456789", 10);
  std::memcpy(static_cast<char*>(m) + 500000, "middle", 6);
  expect.replace(size - 10, 10, "0123456789");
  expect.replace(500000, 6, "middle");
  ASSERT_EQ(munmap(m, size), 0);
  close(fd2);
  ASSERT_EQ(close(fd), 0);
  EXPECT_TRUE(ReadFile(P("m")) == expect) << "content after munmap+close differs";
  if (HashfsMode()) {
    RunResult c = Hashfs({"cat", std::string(kVolume) + ":m"});
    EXPECT_EQ(c.code, 0) << c.err;
    EXPECT_TRUE(c.out == expect) << "committed content after munmap+close differs (size " << c.out.size() << ")";
  }
  ASSERT_TRUE(Remount());
  EXPECT_TRUE(ReadFile(P("m")) == expect) << "mmap writes lost across remount";
  // A private mapping never writes back.
  fd = open(P("m").c_str(), O_RDWR);
  m = mmap(nullptr, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE, fd, 0);
  ASSERT_NE(m, MAP_FAILED);
  std::memcpy(m, "private", 7);
  munmap(m, 4096);
  close(fd);
  EXPECT_TRUE(ReadFile(P("m")) == expect);
}

TEST_F(PosixTest, FlockAndFcntlLocks) {
  ASSERT_TRUE(WriteFile(P("lock"), std::string(1000, 'l')));
  int fd1 = open(P("lock").c_str(), O_RDWR), fd2 = open(P("lock").c_str(), O_RDWR);
  ASSERT_GE(fd1, 0);
  ASSERT_GE(fd2, 0);
  // flock: per open file description.
  EXPECT_EQ(flock(fd1, LOCK_EX | LOCK_NB), 0);
  EXPECT_EQ(flock(fd2, LOCK_EX | LOCK_NB), -1);
  EXPECT_EQ(errno, EWOULDBLOCK);
  EXPECT_EQ(flock(fd2, LOCK_SH | LOCK_NB), -1);
  EXPECT_EQ(flock(fd1, LOCK_UN), 0);
  EXPECT_EQ(flock(fd2, LOCK_SH | LOCK_NB), 0);
  EXPECT_EQ(flock(fd1, LOCK_SH | LOCK_NB), 0);
  EXPECT_EQ(flock(fd1, LOCK_EX | LOCK_NB), -1);
  EXPECT_EQ(flock(fd1, LOCK_UN), 0);
  EXPECT_EQ(flock(fd2, LOCK_UN), 0);
  // OFD locks between two descriptions in one process.
  struct flock fl = {};
  fl.l_type = F_WRLCK;
  fl.l_whence = SEEK_SET;
  fl.l_start = 0;
  fl.l_len = 100;
  EXPECT_EQ(fcntl(fd1, F_OFD_SETLK, &fl), 0) << ErrName(errno);
  EXPECT_EQ(fcntl(fd2, F_OFD_SETLK, &fl), -1);
  EXPECT_EQ(errno, EAGAIN);
  fl.l_type = F_UNLCK;
  EXPECT_EQ(fcntl(fd1, F_OFD_SETLK, &fl), 0);

  // POSIX record locks between processes.
  int to_child[2], to_parent[2];
  ASSERT_EQ(pipe(to_child), 0);
  ASSERT_EQ(pipe(to_parent), 0);
  pid_t child = fork();
  if (child == 0) {
    int fd = open(P("lock").c_str(), O_RDWR);
    struct flock l = {};
    l.l_type = F_WRLCK;
    l.l_whence = SEEK_SET;
    l.l_start = 0;
    l.l_len = 100;
    char ok = fcntl(fd, F_SETLK, &l) == 0 ? 'y' : 'n';
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) ok = 'f';
    (void)!write(to_parent[1], &ok, 1);
    char c;
    (void)!read(to_child[0], &c, 1);  // hold until told
    _exit(0);
  }
  char c = 0;
  ASSERT_EQ(read(to_parent[0], &c, 1), 1);
  ASSERT_EQ(c, 'y') << "child could not take its locks";
  struct flock l = {};
  l.l_type = F_WRLCK;
  l.l_whence = SEEK_SET;
  l.l_start = 50;
  l.l_len = 10;
  EXPECT_EQ(fcntl(fd1, F_SETLK, &l), -1);
  EXPECT_TRUE(errno == EAGAIN || errno == EACCES) << ErrName(errno);
  l.l_type = F_RDLCK;
  EXPECT_EQ(fcntl(fd1, F_SETLK, &l), -1);
  struct flock q = {};
  q.l_type = F_WRLCK;
  q.l_whence = SEEK_SET;
  q.l_start = 0;
  q.l_len = 1000;
  ASSERT_EQ(fcntl(fd1, F_GETLK, &q), 0);
  EXPECT_EQ(q.l_type, F_WRLCK);
  EXPECT_EQ(q.l_pid, child);
  EXPECT_EQ(q.l_start, 0);
  EXPECT_EQ(q.l_len, 100);
  l.l_type = F_WRLCK;
  l.l_start = 100;
  l.l_len = 100;
  EXPECT_EQ(fcntl(fd1, F_SETLK, &l), 0) << "non-overlapping range";
  EXPECT_EQ(flock(fd2, LOCK_EX | LOCK_NB), -1) << "flock held by the child";
  // F_SETLKW blocks until the child lets go.
  auto t0 = std::chrono::steady_clock::now();
  std::thread release([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    (void)!write(to_child[1], "x", 1);
  });
  l.l_start = 0;
  l.l_len = 100;
  EXPECT_EQ(fcntl(fd1, F_SETLKW, &l), 0) << ErrName(errno);
  auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_GE(waited, 250);
  release.join();
  int st;
  waitpid(child, &st, 0);
  EXPECT_EQ(flock(fd2, LOCK_EX | LOCK_NB), 0);
  close(fd1);
  close(fd2);
  for (int fd : {to_child[0], to_child[1], to_parent[0], to_parent[1]}) close(fd);
}

TEST_F(PosixTest, TimestampUpdateRules) {
  ASSERT_EQ(mkdir(P("d").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(P("d2").c_str(), 0755), 0);
  ASSERT_TRUE(WriteFile(P("d/f"), "initial"));
  struct stat f0, d0, f1, d1, e0;
  std::string cur = "d/f";  // where the file lives now
  auto snap = [&](const char* what) {
    (void)what;
    f0 = St(P(cur));
    d0 = St(P("d"));
    Tick();
  };
#define EXPECT_CHANGED(before, after, field, what) \
  EXPECT_TRUE(After(after.field, before.field)) << what << ": " #field " not updated (" << Ts(before.field) << ")"
#define EXPECT_KEPT(before, after, field, what) \
  EXPECT_TRUE(Same(after.field, before.field)) << what << ": " #field " changed " << Ts(before.field) << " -> " << Ts(after.field)

  snap("write");
  ASSERT_TRUE([&] {
    int fd = open(P("d/f").c_str(), O_WRONLY);
    bool ok = fd >= 0 && pwrite(fd, "W", 1, 0) == 1;
    struct stat mid;
    fstat(fd, &mid);
    EXPECT_CHANGED(f0, mid, st_mtim, "write (fstat before close)");
    return close(fd) == 0 && ok;
  }());
  f1 = St(P("d/f"));
  d1 = St(P("d"));
  EXPECT_CHANGED(f0, f1, st_mtim, "write");
  EXPECT_CHANGED(f0, f1, st_ctim, "write");
  EXPECT_KEPT(d0, d1, st_mtim, "write (parent)");

  snap("read");
  EXPECT_EQ(ReadFile(P("d/f")), "Wnitial");
  f1 = St(P("d/f"));
  EXPECT_KEPT(f0, f1, st_mtim, "read");
  EXPECT_KEPT(f0, f1, st_ctim, "read");

  snap("chmod");
  ASSERT_EQ(chmod(P("d/f").c_str(), 0600), 0);
  f1 = St(P("d/f"));
  EXPECT_KEPT(f0, f1, st_mtim, "chmod");
  EXPECT_CHANGED(f0, f1, st_ctim, "chmod");

  snap("chown");
  ASSERT_EQ(chown(P("d/f").c_str(), 12, 34), 0);
  f1 = St(P("d/f"));
  EXPECT_KEPT(f0, f1, st_mtim, "chown");
  EXPECT_CHANGED(f0, f1, st_ctim, "chown");

  snap("setxattr");
  ASSERT_EQ(setxattr(P("d/f").c_str(), "user.t", "1", 1, 0), 0);
  f1 = St(P("d/f"));
  EXPECT_KEPT(f0, f1, st_mtim, "setxattr");
  EXPECT_CHANGED(f0, f1, st_ctim, "setxattr");

  snap("removexattr");
  ASSERT_EQ(removexattr(P("d/f").c_str(), "user.t"), 0);
  f1 = St(P("d/f"));
  EXPECT_CHANGED(f0, f1, st_ctim, "removexattr");

  snap("link");
  ASSERT_EQ(link(P("d/f").c_str(), P("d/g").c_str()), 0);
  f1 = St(P("d/f"));
  d1 = St(P("d"));
  EXPECT_KEPT(f0, f1, st_mtim, "link");
  EXPECT_CHANGED(f0, f1, st_ctim, "link");
  EXPECT_CHANGED(d0, d1, st_mtim, "link (parent)");
  EXPECT_CHANGED(d0, d1, st_ctim, "link (parent)");

  snap("unlink");
  ASSERT_EQ(unlink(P("d/g").c_str()), 0);
  f1 = St(P("d/f"));
  d1 = St(P("d"));
  EXPECT_KEPT(f0, f1, st_mtim, "unlink of other name");
  EXPECT_CHANGED(f0, f1, st_ctim, "unlink of other name");
  EXPECT_CHANGED(d0, d1, st_mtim, "unlink (parent)");
  EXPECT_CHANGED(d0, d1, st_ctim, "unlink (parent)");

  snap("create");
  ASSERT_TRUE(WriteFile(P("d/new"), ""));
  d1 = St(P("d"));
  EXPECT_CHANGED(d0, d1, st_mtim, "create (parent)");
  EXPECT_CHANGED(d0, d1, st_ctim, "create (parent)");
  struct stat n = St(P("d/new"));
  EXPECT_TRUE(Same(n.st_mtim, n.st_ctim) || After(n.st_ctim, d0.st_mtim));

  snap("mkdir");
  ASSERT_EQ(mkdir(P("d/sub").c_str(), 0755), 0);
  d1 = St(P("d"));
  EXPECT_CHANGED(d0, d1, st_mtim, "mkdir (parent)");
  snap("rmdir");
  ASSERT_EQ(rmdir(P("d/sub").c_str()), 0);
  d1 = St(P("d"));
  EXPECT_CHANGED(d0, d1, st_mtim, "rmdir (parent)");
  snap("symlink");
  ASSERT_EQ(symlink("f", P("d/sl").c_str()), 0);
  d1 = St(P("d"));
  EXPECT_CHANGED(d0, d1, st_mtim, "symlink (parent)");

  snap("rename");
  e0 = St(P("d2"));
  ASSERT_EQ(rename(P("d/f").c_str(), P("d2/f").c_str()), 0);
  cur = "d2/f";
  f1 = St(P("d2/f"));
  d1 = St(P("d"));
  struct stat e1 = St(P("d2"));
  EXPECT_KEPT(f0, f1, st_mtim, "rename");
  EXPECT_CHANGED(f0, f1, st_ctim, "rename");
  EXPECT_CHANGED(d0, d1, st_mtim, "rename (source dir)");
  EXPECT_CHANGED(d0, d1, st_ctim, "rename (source dir)");
  EXPECT_CHANGED(e0, e1, st_mtim, "rename (target dir)");
  EXPECT_CHANGED(e0, e1, st_ctim, "rename (target dir)");

  snap("truncate");
  f0 = St(P("d2/f"));
  ASSERT_EQ(truncate(P("d2/f").c_str(), 2), 0);
  f1 = St(P("d2/f"));
  EXPECT_CHANGED(f0, f1, st_mtim, "truncate");
  EXPECT_CHANGED(f0, f1, st_ctim, "truncate");

  snap("O_TRUNC");
  f0 = St(P("d2/f"));
  close(open(P("d2/f").c_str(), O_WRONLY | O_TRUNC));
  f1 = St(P("d2/f"));
  EXPECT_CHANGED(f0, f1, st_mtim, "open O_TRUNC");
  EXPECT_CHANGED(f0, f1, st_ctim, "open O_TRUNC");

  snap("mmap");
  ASSERT_TRUE(WriteFile(P("d/mm"), std::string(8192, 'm')));
  f0 = St(P("d/mm"));
  Tick();
  {
    int fd = open(P("d/mm").c_str(), O_RDWR);
    void* m = mmap(nullptr, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    ASSERT_NE(m, MAP_FAILED);
    static_cast<char*>(m)[100] = 'X';
    ASSERT_EQ(msync(m, 8192, MS_SYNC), 0);
    f1 = St(P("d/mm"));
    munmap(m, 8192);
    close(fd);
  }
  EXPECT_CHANGED(f0, f1, st_mtim, "mmap write + msync");
  EXPECT_CHANGED(f0, f1, st_ctim, "mmap write + msync");

  snap("fallocate");
  f0 = St(P("d/mm"));
  {
    int fd = open(P("d/mm").c_str(), O_RDWR);
    ASSERT_EQ(fallocate(fd, 0, 0, 100000), 0);
    close(fd);
  }
  f1 = St(P("d/mm"));
  EXPECT_CHANGED(f0, f1, st_mtim, "fallocate growing the file");
  EXPECT_CHANGED(f0, f1, st_ctim, "fallocate growing the file");
#undef EXPECT_CHANGED
#undef EXPECT_KEPT
  // Times survive a remount unchanged.
  struct stat before = St(P("d2/f")), dir_before = St(P("d"));
  ASSERT_TRUE(Remount());
  struct stat after = St(P("d2/f")), dir_after = St(P("d"));
  EXPECT_TRUE(Same(before.st_mtim, after.st_mtim)) << Ts(before.st_mtim) << " -> " << Ts(after.st_mtim);
  EXPECT_TRUE(Same(before.st_ctim, after.st_ctim)) << Ts(before.st_ctim) << " -> " << Ts(after.st_ctim);
  EXPECT_TRUE(Same(dir_before.st_mtim, dir_after.st_mtim));
}

TEST_F(PosixTest, SetuidSetgidClearedOnWriteAndChown) {
  ASSERT_EQ(mkdir(P("pub").c_str(), 0777), 0);
  ASSERT_EQ(chmod(P("pub").c_str(), 0777), 0);
  auto mk = [&](const std::string& n, mode_t mode, uid_t u, gid_t g) {
    ASSERT_TRUE(WriteFile(P("pub/" + n), "0123456789"));
    ASSERT_EQ(chown(P("pub/" + n).c_str(), u, g), 0);
    ASSERT_EQ(chmod(P("pub/" + n).c_str(), mode), 0);
  };
  mk("other_x", 06777, 1000, 1000);    // written by a non-owner: both bits go (group-exec set)
  mk("other_nox", 06766, 1000, 65534);  // no group-exec, writer in the group: setgid stays, setuid goes
  mk("other_nox_nm", 06766, 1000, 1000);  // no group-exec, writer not in the group: both go
  mk("own", 06775, 65534, 65534);      // written by its owner, who is not privileged: cleared too
  mk("trunc", 06777, 1000, 1000);      // truncated by a non-owner
  mk("otrunc", 06777, 1000, 1000);     // opened with O_TRUNC by a non-owner
  mk("falloc", 06777, 1000, 1000);     // fallocate by a non-owner
  mk("chgrp", 06775, 65534, 65534);    // chown(2) by its unprivileged owner
  mk("chgrp_nox", 06764, 65534, 65534);  // the same without group-exec, owner in the group: setgid stays
  mk("root", 06777, 0, 0);             // written by root (CAP_FSETID): kept
  std::string r = AsUser(65534, 65534, [&] {
    std::string out;
    for (const char* n : {"other_x", "other_nox", "other_nox_nm", "own"}) {
      int fd = open(P(std::string("pub/") + n).c_str(), O_WRONLY);
      out += std::string(n) + ":" + ErrOf(fd >= 0 ? pwrite(fd, "w", 1, 3) : -1) + " ";
      if (fd >= 0) close(fd);
    }
    out += "trunc:" + ErrOf(truncate(P("pub/trunc").c_str(), 4));
    int fd = open(P("pub/otrunc").c_str(), O_WRONLY | O_TRUNC);
    out += " otrunc:" + ErrOf(fd);
    if (fd >= 0) close(fd);
    fd = open(P("pub/falloc").c_str(), O_WRONLY);
    out += " falloc:" + ErrOf(fd >= 0 ? fallocate(fd, 0, 0, 8192) : -1);
    if (fd >= 0) close(fd);
    out += " chgrp:" + ErrOf(chown(P("pub/chgrp").c_str(), static_cast<uid_t>(-1), 65534));
    out += " chgrp_nox:" + ErrOf(chown(P("pub/chgrp_nox").c_str(), static_cast<uid_t>(-1), 65534));
    return out;
  });
  EXPECT_EQ(r, "other_x:OK other_nox:OK other_nox_nm:OK own:OK trunc:OK otrunc:OK falloc:OK chgrp:OK chgrp_nox:OK");
  EXPECT_EQ(St(P("pub/other_x")).st_mode & 07777, 0777u);
  EXPECT_EQ(St(P("pub/other_nox")).st_mode & 07777, 02766u);
  EXPECT_EQ(St(P("pub/other_nox_nm")).st_mode & 07777, 0766u);
  EXPECT_EQ(St(P("pub/own")).st_mode & 07777, 0775u);
  EXPECT_EQ(St(P("pub/trunc")).st_mode & 07777, 0777u);
  EXPECT_EQ(St(P("pub/otrunc")).st_mode & 07777, 0777u);
  EXPECT_EQ(St(P("pub/otrunc")).st_size, 0);
  EXPECT_EQ(St(P("pub/falloc")).st_mode & 07777, 0777u);
  EXPECT_EQ(St(P("pub/falloc")).st_size, 8192);
  EXPECT_EQ(St(P("pub/chgrp")).st_mode & 07777, 0775u);
  EXPECT_EQ(St(P("pub/chgrp_nox")).st_mode & 07777, 02764u);
  {
    int fd = open(P("pub/root").c_str(), O_WRONLY);
    ASSERT_EQ(pwrite(fd, "r", 1, 0), 1);
    close(fd);
  }
  EXPECT_EQ(St(P("pub/root")).st_mode & 07777, 06777u);
  EXPECT_EQ(ReadFile(P("pub/other_x")), "012w456789");
  // chown clears them too, even by root; a directory keeps them.
  mk("chown", 06755, 1000, 1000);
  ASSERT_EQ(chown(P("pub/chown").c_str(), 1001, 1001), 0);
  EXPECT_EQ(St(P("pub/chown")).st_mode & 07777, 0755u);
  mk("chown_nox", 06745, 1000, 1000);
  ASSERT_EQ(chown(P("pub/chown_nox").c_str(), 1001, static_cast<gid_t>(-1)), 0);
  EXPECT_EQ(St(P("pub/chown_nox")).st_mode & 07777, 02745u);
  ASSERT_EQ(mkdir(P("pub/dir").c_str(), 0755), 0);
  ASSERT_EQ(chmod(P("pub/dir").c_str(), 06755), 0);
  ASSERT_EQ(chown(P("pub/dir").c_str(), 1001, 1001), 0);
  EXPECT_EQ(St(P("pub/dir")).st_mode & 07777, 06755u);
  ASSERT_TRUE(Remount());
  EXPECT_EQ(St(P("pub/other_x")).st_mode & 07777, 0777u);
  EXPECT_EQ(St(P("pub/root")).st_mode & 07777, 06777u);
  EXPECT_EQ(St(P("pub/chown")).st_mode & 07777, 0755u);
}

TEST_F(PosixTest, SetgidDirectoriesPropagateGroup) {
  ASSERT_EQ(mkdir(P("sg").c_str(), 0777), 0);
  ASSERT_EQ(chown(P("sg").c_str(), 0, 4321), 0);
  ASSERT_EQ(chmod(P("sg").c_str(), 02777), 0);
  ASSERT_TRUE(WriteFile(P("sg/rootfile"), "x"));
  ASSERT_EQ(mkdir(P("sg/rootdir").c_str(), 0755), 0);
  ASSERT_EQ(mkfifo(P("sg/fifo").c_str(), 0644), 0);
  ASSERT_EQ(symlink("rootfile", P("sg/sl").c_str()), 0);
  EXPECT_EQ(St(P("sg/rootfile")).st_gid, 4321u);
  EXPECT_EQ(St(P("sg/fifo")).st_gid, 4321u);
  EXPECT_EQ(St(P("sg/sl")).st_gid, 4321u);
  struct stat st = St(P("sg/rootdir"));
  EXPECT_EQ(st.st_gid, 4321u);
  EXPECT_EQ(st.st_mode & 07777, 02755u) << "a subdirectory inherits the setgid bit";
  std::string r = AsUser(65534, 65534, [&] {
    std::string out = ErrOf(WriteFile(P("sg/userfile"), "u") ? 0 : -1);
    out += " " + ErrOf(mkdir(P("sg/userdir").c_str(), 0755));
    out += " " + ErrOf(mkdir(P("sg/userdir/deeper").c_str(), 0700));
    int fd = open(P("sg/sgidreq").c_str(), O_CREAT | O_WRONLY, 02755);
    out += " " + ErrOf(fd);
    if (fd >= 0) close(fd);
    return out;
  });
  EXPECT_EQ(r, "OK OK OK OK");
  st = St(P("sg/userfile"));
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(st.st_gid, 4321u);
  st = St(P("sg/userdir"));
  EXPECT_EQ(st.st_uid, 65534u);
  EXPECT_EQ(st.st_gid, 4321u);
  EXPECT_EQ(st.st_mode & 07777, 02755u);
  st = St(P("sg/userdir/deeper"));
  EXPECT_EQ(st.st_gid, 4321u);
  EXPECT_EQ(st.st_mode & 07777, 02700u);
  // A non-member asking for setgid on a new file in a setgid dir does not get it.
  st = St(P("sg/sgidreq"));
  EXPECT_EQ(st.st_gid, 4321u);
  EXPECT_EQ(st.st_mode & 07777, 0755u);
  // Outside a setgid directory the creator's gid is used.
  ASSERT_EQ(mkdir(P("plain").c_str(), 0777), 0);
  ASSERT_EQ(chown(P("plain").c_str(), 0, 4321), 0);
  ASSERT_EQ(chmod(P("plain").c_str(), 0777), 0);
  AsUser(65534, 65534, [&] { return std::string(WriteFile(P("plain/u"), "") ? "" : "fail"); });
  EXPECT_EQ(St(P("plain/u")).st_gid, 65534u);
  ASSERT_TRUE(Remount());
  EXPECT_EQ(St(P("sg/userdir")).st_mode & 07777, 02755u);
  EXPECT_EQ(St(P("sg/userfile")).st_gid, 4321u);
}

TEST_F(PosixTest, NewFilesBelongToCallingUidAndGid) {
  ASSERT_EQ(mkdir(P("pub").c_str(), 0777), 0);
  ASSERT_EQ(chmod(P("pub").c_str(), 0777), 0);
  ASSERT_TRUE(WriteFile(P("pub/rootowned"), "r"));
  std::string r = AsUser(
      65534, 100,
      [&] {
        std::string out;
        out += ErrOf(WriteFile(P("pub/file"), "u") ? 0 : -1);
        out += " " + ErrOf(mkdir(P("pub/dir").c_str(), 0755));
        out += " " + ErrOf(symlink("file", P("pub/sl").c_str()));
        out += " " + ErrOf(mkfifo(P("pub/fifo").c_str(), 0644));
        out += " " + ErrOf(link(P("pub/file").c_str(), P("pub/hard").c_str()));
        return out;
      },
      {100, 4242});
  EXPECT_EQ(r, "OK OK OK OK OK");
  for (const char* n : {"pub/file", "pub/dir", "pub/sl", "pub/fifo", "pub/hard"}) {
    struct stat st = St(P(n));
    EXPECT_EQ(st.st_uid, 65534u) << n;
    EXPECT_EQ(st.st_gid, 100u) << n;  // the fsgid, not the uid nor a supplementary group
  }
  EXPECT_EQ(St(P("pub/rootowned")).st_uid, 0u);
  ASSERT_TRUE(Remount());
  EXPECT_EQ(St(P("pub/dir")).st_uid, 65534u);
  EXPECT_EQ(St(P("pub/sl")).st_gid, 100u);
}

TEST_F(PosixTest, UmaskIsApplied) {
  std::string r = AsUser(0, 0, [&] {
    umask(027);
    std::string out = ErrOf(WriteFile(P("f"), "", 0777) ? 0 : -1);
    out += " " + ErrOf(mkdir(P("d").c_str(), 0777));
    out += " " + ErrOf(mkfifo(P("p").c_str(), 0666));
    return out;
  });
  EXPECT_EQ(r, "OK OK OK");
  EXPECT_EQ(St(P("f")).st_mode & 07777, 0750u);
  EXPECT_EQ(St(P("d")).st_mode & 07777, 0750u);
  EXPECT_EQ(St(P("p")).st_mode & 07777, 0640u);
}

// Every kind of object, mode, owner, time and xattr comes back after a remount.
TEST_F(PosixTest, RichTreePersistsAcrossRemount) {
  ASSERT_EQ(mkdir(P("t").c_str(), 0755), 0);
  const std::string t = P("t");
  ASSERT_TRUE(WriteFile(t + "/empty", ""));
  ASSERT_TRUE(WriteFile(t + "/small", "hello\n"));
  ASSERT_TRUE(WriteFile(t + "/big", RandomBytes(9 << 20, 3)));
  {
    int fd = open((t + "/sparse").c_str(), O_CREAT | O_WRONLY, 0600);
    ASSERT_EQ(pwrite(fd, "tail", 4, 50 << 20), 4);
    close(fd);
  }
  ASSERT_EQ(mkdir((t + "/sub").c_str(), 0750), 0);
  ASSERT_EQ(mkdir((t + "/sub/deeper").c_str(), 0700), 0);
  ASSERT_TRUE(WriteFile(t + "/sub/deeper/file", "deep"));
  ASSERT_EQ(chown((t + "/sub/deeper/file").c_str(), 1234, 5678), 0);
  ASSERT_EQ(chmod((t + "/sub/deeper/file").c_str(), 04755), 0);
  ASSERT_EQ(symlink("../small", (t + "/sub/link").c_str()), 0);
  ASSERT_EQ(link((t + "/small").c_str(), (t + "/sub/hard").c_str()), 0);
  ASSERT_EQ(link((t + "/small").c_str(), (t + "/hard2").c_str()), 0);
  ASSERT_EQ(mkfifo((t + "/fifo").c_str(), 0640), 0);
  ASSERT_EQ(mknod((t + "/null").c_str(), S_IFCHR | 0666, makedev(1, 3)), 0);
  ASSERT_EQ(setxattr((t + "/small").c_str(), "user.color", "blue", 4, 0), 0);
  ASSERT_EQ(setxattr((t + "/sub").c_str(), "user.dir", "x", 1, 0), 0);
  struct timespec ts[2] = {{1000000000, 123456789}, {1000000000, 123456789}};
  ASSERT_EQ(utimensat(AT_FDCWD, (t + "/sub/deeper").c_str(), ts, 0), 0);
  ASSERT_EQ(utimensat(AT_FDCWD, (t + "/sub/link").c_str(), ts, AT_SYMLINK_NOFOLLOW), 0);
  DescribeOptions o;
  o.mtime = true;
  o.dir_mtime = true;
  o.dir_nlink = false;
  auto before = DescribeTree(t, o);
  ASSERT_TRUE(Remount());
  auto after = DescribeTree(t, o);
  EXPECT_EQ(before, after) << DiffDescriptions(before, after);
}

}  // namespace
}  // namespace fusetest
