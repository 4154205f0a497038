// A seeded, replayable random sequence of filesystem operations applied to the
// mount and to a directory on the host filesystem side by side. The result of
// every operation (return value, errno, data returned) must match; the
// metadata of the paths an operation touched is compared after every step and
// the whole trees (content, metadata, xattrs, hardlink groups) every
// HASHFS_RANDOM_COMPARE_EVERY steps, at the end, and after a remount.
//
// Knobs: HASHFS_RANDOM_OPS (total operations across the tests, default
// 100000), HASHFS_RANDOM_SEED (base seed), HASHFS_RANDOM_COMPARE_EVERY
// (default 1000), HASHFS_RANDOM_TRACE=1 (print every operation).
// A failure names the seed and step; rerun with the same seed to replay it.
#include <linux/falloc.h>

#include <deque>

#include "fuse_test_util.h"

namespace fusetest {
namespace {

uint64_t TotalOps() { return EnvU64("HASHFS_RANDOM_OPS", 100000); }
uint64_t BaseSeed() { return EnvU64("HASHFS_RANDOM_SEED", 20240601); }
uint64_t CompareEvery() { return std::max<uint64_t>(1, EnvU64("HASHFS_RANDOM_COMPARE_EVERY", 1000)); }
bool Trace() { return EnvU64("HASHFS_RANDOM_TRACE", 0) != 0; }

// Metadata of one path, as compared after every step.
std::string Meta(const std::string& p, bool follow = false) {
  struct stat st;
  if ((follow ? stat(p.c_str(), &st) : lstat(p.c_str(), &st)) != 0) return "<" + ErrName(errno) + ">";
  std::ostringstream d;
  d << (S_ISREG(st.st_mode) ? "reg" : S_ISDIR(st.st_mode) ? "dir" : S_ISLNK(st.st_mode) ? "lnk" : "other");
  d << " mode=" << std::oct << (st.st_mode & 07777) << std::dec << " own=" << st.st_uid << ":" << st.st_gid;
  if (!S_ISDIR(st.st_mode)) d << " nlink=" << st.st_nlink << " size=" << st.st_size;
  if (S_ISLNK(st.st_mode)) {
    char buf[4096];
    ssize_t n = readlink(p.c_str(), buf, sizeof buf);
    d << " -> " << std::string(buf, n > 0 ? static_cast<size_t>(n) : 0);
  }
  if (!S_ISLNK(st.st_mode)) {
    char names[4096];
    ssize_t n = listxattr(p.c_str(), names, sizeof names);
    std::vector<std::string> v;
    for (ssize_t i = 0; i < n;) {
      std::string x(names + i);
      i += static_cast<ssize_t>(x.size()) + 1;
      if (x.rfind("user.", 0) == 0) v.push_back(x);
    }
    std::sort(v.begin(), v.end());
    for (const auto& x : v) {
      char val[512];
      ssize_t vl = getxattr(p.c_str(), x.c_str(), val, sizeof val);
      d << " " << x << "=" << (vl >= 0 ? std::string(val, static_cast<size_t>(vl)) : "<" + ErrName(errno) + ">");
    }
  }
  if (S_ISREG(st.st_mode) && st.st_size <= (64 << 10)) d << " content=" << HashFile(p);
  return d.str();
}

class Engine {
 public:
  Engine(std::string a, std::string b, uint64_t seed, std::string label, std::string replay)
      : root_{std::move(a), std::move(b)}, seed_(seed), rng_(seed), label_(std::move(label)), replay_(std::move(replay)) {}
  ~Engine() { CloseAll(); }

  // Runs n operations; returns "" or a description of the first mismatch.
  // `midpoint` (optional) runs once halfway with every descriptor closed.
  std::string Run(uint64_t n, const std::function<std::string()>& midpoint = nullptr) {
    const uint64_t every = CompareEvery();
    for (step_ = 0; step_ < n && failure_.empty(); step_++) {
      OneOp();
      if (!failure_.empty()) break;
      if ((step_ + 1) % every == 0) CompareAll();
      if (midpoint && step_ == n / 2) {
        CloseAll();
        std::string m = midpoint();
        if (!m.empty()) Fail("midpoint", m);
        CompareAll();
      }
    }
    if (failure_.empty()) {
      CloseAll();
      CompareAll();
    }
    if (Trace() || EnvU64("HASHFS_RANDOM_STATS", 0)) {
      std::string s;
      for (const auto& [k, v] : stats_) s += " " + k + ":" + std::to_string(v);
      std::fprintf(stderr, "[%s] outcomes:%s\n", label_.c_str(), s.c_str());
    }
    return failure_;
  }

  void CloseAll() {
    for (auto& f : fds_) {
      close(f.fd[0]);
      close(f.fd[1]);
    }
    fds_.clear();
  }

  std::string CompareAll() {
    if (!failure_.empty()) return failure_;
    // Make the kernel forget what it caches, so the mount evicts and reloads
    // directory listings under the operations that follow.
    if (HashfsMode()) {
      sync();
      std::ofstream("/proc/sys/vm/drop_caches") << "2\n";
    }
    DescribeOptions o;
    o.owner = true;
    auto a = DescribeTree(root_[0], o), b = DescribeTree(root_[1], o);
    if (a != b) Fail("full tree comparison", "mount (first) vs host (second):\n" + DiffDescriptions(a, b));
    return failure_;
  }

  uint64_t ops_done() const { return step_; }

 private:
  struct OpenFile {
    int fd[2];
    std::string path;
    int flags;
  };

  uint64_t R(uint64_t n) { return n == 0 ? 0 : rng_() % n; }
  bool Chance(int pct) { return static_cast<int>(R(100)) < pct; }

  std::string Path() {
    static const char* dirs[] = {"d0", "d1", "d2"};
    static const char* leaves[] = {"f0", "f1", "f2", "f3", "f4", "f5", "d0", "d1", "d2", "s0", "s1"};
    uint64_t r = R(10), depth = r < 4 ? 0 : r < 8 ? 1 : 2;
    std::string p;
    for (uint64_t i = 0; i < depth; i++) p += (Chance(5) ? std::string("s0") : dirs[R(3)]) + std::string("/");
    return p + leaves[R(11)];
  }
  std::string DirPath() {
    std::string p = Path();
    auto slash = p.rfind('/');
    static const char* dirs[] = {"d0", "d1", "d2"};
    return (slash == std::string::npos ? "" : p.substr(0, slash + 1)) + dirs[R(3)];
  }
  uint64_t Offset() {
    uint64_t r = R(100);
    return r < 70 ? R(64 << 10) : r < 95 ? R(1 << 20) : R(16 << 20);
  }
  size_t Length() {
    uint64_t r = R(100);
    return r < 60 ? 1 + R(4096) : r < 90 ? 1 + R(32 << 10) : 1 + R(256 << 10);
  }
  std::string Data(size_t n) {
    std::string s(n, '\0');
    uint64_t kind = R(4), x = rng_() | 1;
    if (kind == 0) return s;  // zeros
    if (kind == 1) {          // a repeated short pattern (compressible)
      std::string pat = std::to_string(x % 100000) + "-";
      for (size_t i = 0; i < n; i++) s[i] = pat[i % pat.size()];
      return s;
    }
    for (size_t i = 0; i < n; i++) {  // xorshift noise
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      s[i] = static_cast<char>(x);
    }
    return s;
  }
  std::string Abs(int side, const std::string& rel) const { return root_[side] + "/" + rel; }
  static std::string Res(long rc, const std::string& data = "") {
    return rc >= 0 ? "ok " + std::to_string(rc) + (data.empty() ? "" : " " + data) : "err " + ErrName(errno);
  }
  static std::string Digest(const std::string& s) {
    return std::to_string(s.size()) + "#" + std::to_string(std::hash<std::string>{}(s));
  }

  void Fail(const std::string& what, const std::string& detail) {
    if (!failure_.empty()) return;
    std::ostringstream o;
    o << label_ << ": seed " << seed_ << ", step " << step_ << ": " << what << "\n" << detail << "\nlast operations:\n";
    for (const auto& r : recent_) o << "  " << r << "\n";
    o << "replay: " << replay_ << "\n";
    failure_ = o.str();
  }

  // Applies f to the mount (side 0) then the host (side 1); results must match.
  bool Both(const std::string& desc, const std::function<std::string(int)>& f) {
    recent_.push_back(std::to_string(step_) + ": " + desc);
    if (recent_.size() > 25) recent_.pop_front();
    if (Trace()) std::fprintf(stderr, "[%s seed %llu] %llu: %s\n", label_.c_str(),
                              static_cast<unsigned long long>(seed_), static_cast<unsigned long long>(step_),
                              desc.c_str());
    std::string ra = f(0), rb = f(1);
    std::string kind = desc.substr(0, desc.find('(')) + (ra.rfind("err ", 0) == 0 ? " " + ra.substr(4, ra.find(' ', 4) - 4) : " ok");
    stats_[kind]++;
    if (ra != rb) {
      Fail(desc, "result on mount: " + ra + "\nresult on host:  " + rb);
      return false;
    }
    return true;
  }
  void CheckPaths(const std::vector<std::string>& rels, bool follow = false) {
    for (const auto& rel : rels) {
      std::string a = Meta(Abs(0, rel), follow), b = Meta(Abs(1, rel), follow);
      if (a != b) return Fail("metadata of " + rel, "mount: " + a + "\nhost:  " + b);
      auto slash = rel.rfind('/');
      if (slash != std::string::npos) {
        std::string pa = Meta(Abs(0, rel.substr(0, slash))), pb = Meta(Abs(1, rel.substr(0, slash)));
        if (pa != pb) return Fail("metadata of parent of " + rel, "mount: " + pa + "\nhost:  " + pb);
      }
    }
  }
  void CheckFd(size_t i) {
    struct stat sa, sb;
    int ra = fstat(fds_[i].fd[0], &sa), rb = fstat(fds_[i].fd[1], &sb);
    auto d = [](int rc, const struct stat& st) {
      if (rc != 0) return std::string("<err>");
      std::ostringstream o;
      o << "mode=" << std::oct << st.st_mode << std::dec;
      if (!S_ISDIR(st.st_mode)) o << " nlink=" << st.st_nlink << " size=" << st.st_size;  // dir sizes are fs-specific
      return o.str();
    };
    std::string a = d(ra, sa), b = d(rb, sb);
    if (a != b) Fail("fstat of fd opened on " + fds_[i].path, "mount: " + a + "\nhost:  " + b);
  }

  void OneOp() {
    static const std::vector<std::pair<int, int>> weights = {
        {0, 10}, {1, 5}, {2, 14}, {3, 6}, {4, 6}, {5, 2}, {6, 3}, {7, 3}, {8, 2}, {9, 3}, {10, 6}, {11, 4},
        {12, 6}, {13, 5}, {14, 4}, {15, 3}, {16, 4}, {17, 2}, {18, 2}, {19, 1}, {20, 3}, {21, 1}, {22, 2},
        {23, 2}, {24, 1}, {25, 2}, {26, 1}};
    static const int total = [] {
      int t = 0;
      for (auto& w : weights) t += w.second;
      return t;
    }();
    int r = static_cast<int>(R(static_cast<uint64_t>(total))), op = 0;
    for (auto& w : weights) {
      if (r < w.second) {
        op = w.first;
        break;
      }
      r -= w.second;
    }
    bool need_fd = (op >= 1 && op <= 6) || op == 8 || op == 9 || op == 25 || op == 26;
    if (need_fd && fds_.empty()) op = 0;
    switch (op) {
      case 0: return OpOpen();
      case 1: return OpClose();
      case 2: return OpPwrite();
      case 3: return OpWrite();
      case 4: return OpRead();
      case 5: return OpLseek();
      case 6: return OpFtruncate();
      case 7: return OpTruncate();
      case 8: return OpFsync();
      case 9: return OpFstat();
      case 10: return OpRename();
      case 11: return OpLink();
      case 12: return OpUnlink();
      case 13: return OpMkdir();
      case 14: return OpRmdir();
      case 15: return OpChmod();
      case 16: return OpSetxattr();
      case 17: return OpRemovexattr();
      case 18: return OpGetxattr();
      case 19: return OpListxattr();
      case 20: return OpSymlink();
      case 21: return OpReadlink();
      case 22: return OpStat();
      case 23: return OpReaddir();
      case 24: return OpUtimens();
      case 25: return OpReopen();
      case 26: return OpFallocate();
    }
  }

  void OpOpen() {
    if (fds_.size() >= 6) OpClose();
    std::string p = Path();
    int acc[] = {O_RDONLY, O_WRONLY, O_RDWR};
    int flags = acc[R(3)] | O_CLOEXEC;
    if (Chance(60)) {
      flags |= O_CREAT;
      if (Chance(20)) flags |= O_EXCL;
    }
    if (Chance(15)) flags |= O_TRUNC;
    if (Chance(15)) flags |= O_APPEND;
    if (Chance(5)) flags |= O_NOFOLLOW;
    if (Chance(3)) flags |= O_DIRECTORY;
    mode_t modes[] = {0600, 0644, 0755, 0400, 0640};
    mode_t mode = modes[R(5)];
    int fd[2] = {-1, -1};
    std::ostringstream desc;
    desc << "open(" << p << ", 0" << std::oct << flags << ", 0" << mode << ")";
    bool ok = Both(desc.str(), [&](int s) {
      fd[s] = open(Abs(s, p).c_str(), flags, mode);
      return Res(fd[s] >= 0 ? 0 : -1);
    });
    if (fd[0] >= 0 && fd[1] >= 0) {
      fds_.push_back({{fd[0], fd[1]}, p, flags});
    } else {
      if (fd[0] >= 0) close(fd[0]);
      if (fd[1] >= 0) close(fd[1]);
    }
    if (ok) CheckPaths({p});
  }
  size_t PickFd() { return static_cast<size_t>(R(fds_.size())); }
  std::string FdDesc(size_t i) { return "fd#" + std::to_string(i) + "(" + fds_[i].path + ")"; }
  void OpClose() {
    if (fds_.empty()) return;
    size_t i = PickFd();
    OpenFile f = fds_[i];
    fds_.erase(fds_.begin() + static_cast<long>(i));
    std::string p = f.path;
    if (Both("close(" + p + ")", [&](int s) { return Res(close(f.fd[s])); })) CheckPaths({p});
  }
  void OpPwrite() {
    size_t i = PickFd();
    uint64_t off = Offset();
    std::string data = Data(Length());
    if (Both("pwrite(" + FdDesc(i) + ", len " + std::to_string(data.size()) + ", off " + std::to_string(off) + ")",
             [&](int s) { return Res(pwrite(fds_[i].fd[s], data.data(), data.size(), static_cast<off_t>(off))); }))
      CheckFd(i);
  }
  void OpWrite() {
    size_t i = PickFd();
    std::string data = Data(Length());
    if (Both("write(" + FdDesc(i) + ", len " + std::to_string(data.size()) + ")", [&](int s) {
          long rc = write(fds_[i].fd[s], data.data(), data.size());
          std::string r = Res(rc);
          return r + " pos=" + std::to_string(lseek(fds_[i].fd[s], 0, SEEK_CUR));
        }))
      CheckFd(i);
  }
  void OpRead() {
    size_t i = PickFd();
    bool positional = Chance(70);
    uint64_t off = Offset();
    size_t len = Length();
    Both((positional ? "pread(" : "read(") + FdDesc(i) + ", len " + std::to_string(len) +
             (positional ? ", off " + std::to_string(off) : "") + ")",
         [&](int s) {
           std::string buf(len, '\0');
           long rc = positional ? pread(fds_[i].fd[s], buf.data(), len, static_cast<off_t>(off))
                                : read(fds_[i].fd[s], buf.data(), len);
           if (rc >= 0) buf.resize(static_cast<size_t>(rc));
           return Res(rc, rc >= 0 ? Digest(buf) : "");
         });
  }
  void OpLseek() {
    size_t i = PickFd();
    int whence = Chance(50) ? SEEK_SET : Chance(50) ? SEEK_END : SEEK_CUR;
    long off = static_cast<long>(Offset()) - (whence == SEEK_SET ? 0 : static_cast<long>(R(4096)));
    struct stat st;
    if (fstat(fds_[i].fd[1], &st) == 0 && S_ISDIR(st.st_mode)) {
      whence = SEEK_SET;  // directory offsets are opaque cookies, only 0 is portable
      off = 0;
    }
    Both("lseek(" + FdDesc(i) + ", " + std::to_string(off) + ", " + std::to_string(whence) + ")",
         [&](int s) { return Res(lseek(fds_[i].fd[s], off, whence)); });
  }
  void OpFtruncate() {
    size_t i = PickFd();
    uint64_t len = Chance(20) ? 0 : Offset();
    if (Both("ftruncate(" + FdDesc(i) + ", " + std::to_string(len) + ")",
             [&](int s) { return Res(ftruncate(fds_[i].fd[s], static_cast<off_t>(len))); }))
      CheckFd(i);
  }
  void OpTruncate() {
    std::string p = Path();
    uint64_t len = Chance(20) ? 0 : Offset();
    if (Both("truncate(" + p + ", " + std::to_string(len) + ")",
             [&](int s) { return Res(truncate(Abs(s, p).c_str(), static_cast<off_t>(len))); }))
      CheckPaths({p}, true);
  }
  void OpFsync() {
    size_t i = PickFd();
    bool data = Chance(30);
    Both(std::string(data ? "fdatasync(" : "fsync(") + FdDesc(i) + ")",
         [&](int s) { return Res(data ? fdatasync(fds_[i].fd[s]) : fsync(fds_[i].fd[s])); });
  }
  void OpFstat() {
    size_t i = PickFd();
    Both("fstat(" + FdDesc(i) + ")", [&](int) { return std::string(); });
    CheckFd(i);
  }
  void OpFallocate() {
    size_t i = PickFd();
    uint64_t off = Offset(), len = 1 + R(64 << 10);
    int mode = Chance(30) ? FALLOC_FL_KEEP_SIZE : 0;
    if (Both("fallocate(" + FdDesc(i) + ", " + std::to_string(mode) + ", " + std::to_string(off) + ", " +
                 std::to_string(len) + ")",
             [&](int s) {
               return Res(fallocate(fds_[i].fd[s], mode, static_cast<off_t>(off), static_cast<off_t>(len)));
             }))
      CheckFd(i);
  }
  void OpReopen() {
    size_t i = PickFd();
    std::string p = fds_[i].path;
    int flags = (fds_[i].flags & ~(O_CREAT | O_EXCL | O_TRUNC));
    bool ok = Both("reopen(" + FdDesc(i) + ")", [&](int s) {
      close(fds_[i].fd[s]);
      fds_[i].fd[s] = open(Abs(s, p).c_str(), flags);
      return Res(fds_[i].fd[s] >= 0 ? 0 : -1);
    });
    if (fds_[i].fd[0] < 0 || fds_[i].fd[1] < 0) {
      if (fds_[i].fd[0] >= 0) close(fds_[i].fd[0]);
      if (fds_[i].fd[1] >= 0) close(fds_[i].fd[1]);
      fds_.erase(fds_.begin() + static_cast<long>(i));
    }
    if (ok) CheckPaths({p});
  }
  void OpRename() {
    std::string a = Chance(30) ? DirPath() : Path(), b = Chance(30) ? DirPath() : Path();
    unsigned flags = Chance(75) ? 0 : Chance(50) ? RENAME_NOREPLACE : RENAME_EXCHANGE;
    if (Both("rename(" + a + ", " + b + ", flags " + std::to_string(flags) + ")", [&](int s) {
          return Res(syscall(SYS_renameat2, AT_FDCWD, Abs(s, a).c_str(), AT_FDCWD, Abs(s, b).c_str(), flags));
        }))
      CheckPaths({a, b});
  }
  void OpLink() {
    std::string a = Path(), b = Path();
    if (Both("link(" + a + ", " + b + ")", [&](int s) { return Res(link(Abs(s, a).c_str(), Abs(s, b).c_str())); }))
      CheckPaths({a, b});
  }
  void OpUnlink() {
    std::string p = Path();
    if (Both("unlink(" + p + ")", [&](int s) { return Res(unlink(Abs(s, p).c_str())); })) CheckPaths({p});
  }
  void OpMkdir() {
    std::string p = Chance(80) ? DirPath() : Path();
    mode_t mode = Chance(80) ? 0755 : static_cast<mode_t>(R(010000));
    std::ostringstream d;
    d << "mkdir(" << p << ", 0" << std::oct << mode << ")";
    if (Both(d.str(), [&](int s) { return Res(mkdir(Abs(s, p).c_str(), mode)); })) CheckPaths({p});
  }
  void OpRmdir() {
    std::string p = Chance(80) ? DirPath() : Path();
    if (Both("rmdir(" + p + ")", [&](int s) { return Res(rmdir(Abs(s, p).c_str())); })) CheckPaths({p});
  }
  void OpChmod() {
    std::string p = Path();
    mode_t mode = Chance(70) ? static_cast<mode_t>(R(01000)) : static_cast<mode_t>(R(010000));
    std::ostringstream d;
    d << "chmod(" << p << ", 0" << std::oct << mode << ")";
    if (Both(d.str(), [&](int s) { return Res(chmod(Abs(s, p).c_str(), mode)); })) CheckPaths({p}, true);
  }
  void OpSetxattr() {
    std::string p = Path(), name = "user.x" + std::to_string(R(3)), value = Data(R(64));
    int flags = Chance(60) ? 0 : Chance(50) ? XATTR_CREATE : XATTR_REPLACE;
    for (auto& c : value) c = static_cast<char>('a' + (static_cast<unsigned char>(c) % 26));
    if (Both("setxattr(" + p + ", " + name + ", len " + std::to_string(value.size()) + ", " +
                 std::to_string(flags) + ")",
             [&](int s) {
               return Res(setxattr(Abs(s, p).c_str(), name.c_str(), value.data(), value.size(), flags));
             }))
      CheckPaths({p}, true);
  }
  void OpRemovexattr() {
    std::string p = Path(), name = "user.x" + std::to_string(R(3));
    if (Both("removexattr(" + p + ", " + name + ")",
             [&](int s) { return Res(removexattr(Abs(s, p).c_str(), name.c_str())); }))
      CheckPaths({p}, true);
  }
  void OpGetxattr() {
    std::string p = Path(), name = "user.x" + std::to_string(R(3));
    size_t size = Chance(10) ? 0 : Chance(10) ? 2 : 256;
    Both("getxattr(" + p + ", " + name + ", " + std::to_string(size) + ")", [&](int s) {
      char buf[256];
      long rc = getxattr(Abs(s, p).c_str(), name.c_str(), size ? buf : nullptr, size);
      return Res(rc, rc > 0 && size ? std::string(buf, static_cast<size_t>(rc)) : "");
    });
  }
  void OpListxattr() {
    std::string p = Path();
    Both("listxattr(" + p + ")", [&](int s) {
      char buf[4096];
      long rc = listxattr(Abs(s, p).c_str(), buf, sizeof buf);
      if (rc < 0) return Res(rc);
      std::vector<std::string> v;
      for (long i = 0; i < rc;) {
        std::string x(buf + i);
        i += static_cast<long>(x.size()) + 1;
        if (x.rfind("user.", 0) == 0) v.push_back(x);
      }
      std::sort(v.begin(), v.end());
      std::string out = "ok";
      for (auto& x : v) out += " " + x;
      return out;
    });
  }
  void OpSymlink() {
    static const char* targets[] = {"f0", "f1", "d0", "d0/f2", "d1/d2/f3", "s0", "s1", "nonexistent", "d2/"};
    std::string p = Path(), t = targets[R(9)];
    if (Both("symlink(" + t + ", " + p + ")", [&](int s) { return Res(symlink(t.c_str(), Abs(s, p).c_str())); }))
      CheckPaths({p});
  }
  void OpReadlink() {
    std::string p = Path();
    Both("readlink(" + p + ")", [&](int s) {
      char buf[256];
      long rc = readlink(Abs(s, p).c_str(), buf, sizeof buf);
      return Res(rc, rc > 0 ? std::string(buf, static_cast<size_t>(rc)) : "");
    });
  }
  void OpStat() {
    std::string p = Path();
    bool follow = Chance(50);
    Both(std::string(follow ? "stat(" : "lstat(") + p + ")", [&](int s) { return Meta(Abs(s, p), follow); });
  }
  void OpReaddir() {
    std::string p = Chance(20) ? std::string(".") : DirPath();
    Both("readdir(" + p + ")", [&](int s) {
      DIR* dp = opendir(Abs(s, p).c_str());
      if (dp == nullptr) return Res(-1);
      std::vector<std::string> names;
      while (auto* de = readdir(dp)) {
        std::string n = de->d_name;
        struct stat st;
        // d_type must agree with lstat where it is given.
        if (de->d_type != DT_UNKNOWN && n != "." && n != ".." &&
            fstatat(dirfd(dp), de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
            static_cast<unsigned>(de->d_type) != ((st.st_mode & S_IFMT) >> 12))
          n += "(d_type mismatch)";
        names.push_back(n);
      }
      closedir(dp);
      std::sort(names.begin(), names.end());
      std::string out = "ok";
      for (auto& n : names) out += " " + n;
      return out;
    });
  }
  void OpUtimens() {
    std::string p = Path();
    int flags = Chance(30) ? AT_SYMLINK_NOFOLLOW : 0;
    struct timespec ts[2] = {{static_cast<time_t>(R(2000000000)), static_cast<long>(R(1000000000))},
                             {static_cast<time_t>(R(2000000000)), static_cast<long>(R(1000000000))}};
    if (Chance(20)) ts[0].tv_nsec = UTIME_OMIT;
    if (Both("utimensat(" + p + ", " + std::to_string(ts[1].tv_sec) + ", flags " + std::to_string(flags) + ")",
             [&](int s) {
               long rc = utimensat(AT_FDCWD, Abs(s, p).c_str(), ts, flags);
               struct stat st;
               std::string m;
               if (rc == 0 && (flags ? lstat(Abs(s, p).c_str(), &st) : stat(Abs(s, p).c_str(), &st)) == 0)
                 m = "mtime=" + std::to_string(st.st_mtim.tv_sec) + "." + std::to_string(st.st_mtim.tv_nsec);
               return Res(rc, m);
             }))
      CheckPaths({p});
  }

  std::string root_[2];
  uint64_t seed_;
  std::mt19937_64 rng_;
  std::string label_, replay_;
  uint64_t step_ = 0;
  std::vector<OpenFile> fds_;
  std::deque<std::string> recent_;
  std::string failure_;
  std::map<std::string, uint64_t> stats_;
};

class RandomOpsTest : public FuseTest {
 protected:
  // One single-threaded run of `n` operations with seed `seed`, remounting
  // halfway and at the end; `mount_args` for every mount of the run.
  void SingleThreaded(uint64_t seed, uint64_t n, const std::vector<std::string>& mount_args = {}) {
    if (!mount_args.empty() && HashfsMode()) {
      ASSERT_TRUE(Remount(mount_args));
    }
    std::string a = P("r"), b = H("r");
    ASSERT_EQ(mkdir(a.c_str(), 0755), 0);
    ASSERT_EQ(mkdir(b.c_str(), 0755), 0);
    std::fprintf(stderr, "[random ops] seed %llu, %llu operations\n", static_cast<unsigned long long>(seed),
                 static_cast<unsigned long long>(n));
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    Engine e(a, b, seed, "single-threaded",
             "HASHFS_RANDOM_SEED=" + std::to_string(BaseSeed()) + " HASHFS_RANDOM_OPS=" + std::to_string(TotalOps()) +
                 " fusefs_tests --gtest_filter=" + info->test_suite_name() + "." + info->name() +
                 " (HASHFS_RANDOM_TRACE=1 prints every operation)");
    auto t0 = std::chrono::steady_clock::now();
    std::string f = e.Run(n, [&]() -> std::string {
      auto r = Remount(mount_args);
      return r ? "" : std::string("remount failed: ") + r.message();
    });
    ASSERT_TRUE(f.empty()) << f;
    e.CloseAll();
    ASSERT_TRUE(Remount(mount_args));
    std::string after = e.CompareAll();
    ASSERT_TRUE(after.empty()) << "after the final remount: " << after;
    std::fprintf(stderr, "[random ops] seed %llu: %llu operations in %.1f s\n", static_cast<unsigned long long>(seed),
                 static_cast<unsigned long long>(n),
                 std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
};

// 3 x 20% + 40% (threads) = HASHFS_RANDOM_OPS operations in total.
TEST_F(RandomOpsTest, SingleThreadedSeedA) { SingleThreaded(BaseSeed() + 1, TotalOps() / 5); }
TEST_F(RandomOpsTest, SingleThreadedSeedB) { SingleThreaded(BaseSeed() + 2, TotalOps() / 5); }
// With the smallest inode table: every comparison (which makes the kernel
// forget its caches) lets the mount evict nodes and listings, so later
// operations run on entries re-read from the committed tree.
TEST_F(RandomOpsTest, SingleThreadedSeedC) {
  SingleThreaded(BaseSeed() + 3, TotalOps() / 5, {"--inode-cache", "16"});
}

TEST_F(RandomOpsTest, MultiThreadedSubtrees) {
  if (HashfsMode()) {
    ASSERT_TRUE(Remount({"--inode-cache", "16"}));  // as SeedC, under concurrency
  }
  const int threads = static_cast<int>(EnvU64("HASHFS_RANDOM_THREADS", 4));
  const uint64_t per_thread = TotalOps() * 2 / 5 / static_cast<uint64_t>(threads);
  ASSERT_EQ(mkdir(P("mt").c_str(), 0755), 0);
  ASSERT_EQ(mkdir(H("mt").c_str(), 0755), 0);
  std::vector<std::unique_ptr<Engine>> engines;
  for (int t = 0; t < threads; t++) {
    std::string sub = "mt/t" + std::to_string(t);
    ASSERT_EQ(mkdir(P(sub).c_str(), 0755), 0);
    ASSERT_EQ(mkdir(H(sub).c_str(), 0755), 0);
    uint64_t seed = BaseSeed() + 100 + static_cast<uint64_t>(t);
    engines.push_back(std::make_unique<Engine>(
        P(sub), H(sub), seed, "thread " + std::to_string(t),
        "HASHFS_RANDOM_SEED=" + std::to_string(BaseSeed()) + " HASHFS_RANDOM_OPS=" + std::to_string(TotalOps()) +
            " fusefs_tests --gtest_filter=RandomOpsTest.MultiThreadedSubtrees (threads interleave: a failure that "
            "depends on timing may need several runs; HASHFS_RANDOM_THREADS=1 serialises)"));
  }
  std::fprintf(stderr, "[random ops] %d threads x %llu operations, seeds %llu..\n", threads,
               static_cast<unsigned long long>(per_thread), static_cast<unsigned long long>(BaseSeed() + 100));
  std::vector<std::string> failures(static_cast<size_t>(threads));
  std::vector<std::thread> ts;
  auto t0 = std::chrono::steady_clock::now();
  for (int t = 0; t < threads; t++)
    ts.emplace_back([&, t] { failures[static_cast<size_t>(t)] = engines[static_cast<size_t>(t)]->Run(per_thread); });
  for (auto& t : ts) t.join();
  for (const auto& f : failures) EXPECT_TRUE(f.empty()) << f;
  std::fprintf(stderr, "[random ops] threads done in %.1f s\n",
               std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  DescribeOptions o;
  auto a = DescribeTree(P("mt"), o), b = DescribeTree(H("mt"), o);
  EXPECT_EQ(a, b) << DiffDescriptions(a, b);
  for (auto& e : engines) e->CloseAll();
  ASSERT_TRUE(Remount({"--inode-cache", "16"}));  // other targets ignore mount arguments
  auto c = DescribeTree(P("mt"), o);
  EXPECT_EQ(c, b) << "after remount:\n" << DiffDescriptions(c, b);
}

}  // namespace
}  // namespace fusetest
