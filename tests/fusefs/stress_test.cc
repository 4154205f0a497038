// Concurrent load on one store, for a bounded time: worker threads AND forked
// worker processes create, write (bytes to a few MiB, some fsync'd),
// overwrite, append, truncate, rename (files and directories, within and
// across directories, over existing files), hardlink and delete in their own
// subtrees of the read-write mount, each keeping an exact in-memory model of
// its subtree; at the same time, on the same store, CLI loops run `hashfs
// backup` of a host directory that is itself changing (into volume "other"),
// `log`, `ls`, `snapshot`, `cat`/`ls` of snapshots, `forget`, `gc` and one
// `verify`. Afterwards:
//  - no deadlock: every loop and worker ends within HASHFS_STRESS_GRACE s of
//    the end (then the FUSE connection is aborted; the fixture's watchdog is
//    the last resort); no CLI command times out;
//  - every CLI command exits as documented (0; backup 0 or 3 with only
//    vanished files skipped);
//  - every worker's model equals its subtree of the mount exactly (names,
//    types, modes, sizes, content, link counts, hardlink groups), while
//    mounted, after `hashfs umount` + remount, and in a restore of the head;
//  - `hashfs verify` exits 0 (mid-run, beside writers and gc, and at the end);
//  - every snapshot is still listable and its sampled file reads back the
//    bytes it had when the snapshot was taken; the last one restores;
//  - restored backup commits hold exactly what the host directory held
//    during that backup (a file stable during the backup is there with its
//    content; anything there had that name and content at some moment of
//    the backup; the append-only journal is a prefix no shorter than at the
//    start);
//  - the mount daemon's peak resident memory stays below HASHFS_STRESS_RSS_MIB.
//
// Knobs: HASHFS_STRESS_SECONDS (30), HASHFS_STRESS_THREADS (4),
// HASHFS_STRESS_PROCS (2), HASHFS_STRESS_SEED, HASHFS_STRESS_WORKER_MIB (24,
// data cap per worker), HASHFS_STRESS_RSS_MIB (1536), HASHFS_STRESS_GRACE
// (150), HASHFS_STRESS_RESTORES (8, backup commits restored and checked),
// HASHFS_STRESS_TRACE=1 (every CLI command and its exit code).
#include "fuse_test_util.h"

namespace fusetest {
namespace {

using Clock = std::chrono::steady_clock;

struct StressConfig {
  uint64_t seconds = EnvU64("HASHFS_STRESS_SECONDS", 30);
  uint64_t threads = EnvU64("HASHFS_STRESS_THREADS", 4);
  uint64_t procs = EnvU64("HASHFS_STRESS_PROCS", 2);
  uint64_t seed = EnvU64("HASHFS_STRESS_SEED", 20261201);
  uint64_t worker_bytes = EnvU64("HASHFS_STRESS_WORKER_MIB", 24) << 20;
  uint64_t max_entries = 250;  // names per worker subtree
  uint64_t rss_mib = EnvU64("HASHFS_STRESS_RSS_MIB", 1536);
  uint64_t grace = EnvU64("HASHFS_STRESS_GRACE", 150);
  uint64_t restores = EnvU64("HASHFS_STRESS_RESTORES", 8);
  bool trace = EnvU64("HASHFS_STRESS_TRACE", 0) != 0;
};

constexpr int kCliTimeout = 120;  // one CLI command; longer counts as a hang

// Deterministic bytes for a seed (xorshift64).
std::string Gen(uint64_t seed, size_t n) { return XorshiftBytes(seed * 0x9E3779B97F4A7C15ull ^ 0xD1B54A32D192ED03ull, n); }

std::string HashOf(std::string_view s) {
  std::ostringstream o;
  o << std::hex << std::hash<std::string_view>{}(s) << std::dec << "/" << s.size();
  return o.str();
}

std::string Oct(unsigned v) {
  std::ostringstream o;
  o << std::oct << v;
  return o.str();
}

// Whole content, bypassing (dropping) the kernel's page cache of the file so
// the read goes to the filesystem.
std::string ReadUncached(const std::string& p) {
  int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return "<ERR:" + ErrName(errno) + ">";
  posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
  std::string s;
  bool ok = ReadAll(fd, &s);
  int e = errno;
  close(fd);
  return ok ? s : "<ERR:" + ErrName(e) + ">";
}

// Description of the tree under `top` in the form Worker::Expected() gives:
// path -> "dir MODE" | "reg MODE nlink=N size=S hash=H" | "other MODE";
// "group:<first name>" -> "a;b;..." for each hardlinked inode.
std::map<std::string, std::string> DescribeSubtree(const std::string& top) {
  std::map<std::string, std::string> out;
  std::map<ino_t, std::vector<std::string>> groups;
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
      if (n != "." && n != "..") names.push_back(n);
    }
    closedir(dp);
    for (const auto& n : names) {
      std::string r = rel.empty() ? n : rel + "/" + n;
      std::string p = top + "/" + r;
      struct stat st;
      if (lstat(p.c_str(), &st) != 0) {
        out[r] = "<lstat " + ErrName(errno) + ">";
        continue;
      }
      std::string mode = Oct(st.st_mode & 07777);
      if (S_ISDIR(st.st_mode)) {
        out[r] = "dir " + mode;
        stack.push_back(r);
      } else if (S_ISREG(st.st_mode)) {
        std::string data = ReadUncached(p);
        out[r] = "reg " + mode + " nlink=" + std::to_string(st.st_nlink) + " size=" + std::to_string(st.st_size) +
                 " hash=" + HashOf(data);
        if (st.st_nlink > 1) groups[st.st_ino].push_back(r);
      } else {
        out[r] = "other " + Oct(st.st_mode);
      }
    }
  }
  for (auto& [ino, m] : groups) {
    std::sort(m.begin(), m.end());
    std::string v;
    for (const auto& x : m) v += x + ";";
    out["group:" + m[0]] = v;
  }
  return out;
}

// ---------------------------------------------------------------------------
// One worker: random operations in its own subtree `root` of the mount, with
// an exact model of what the subtree holds. Stops at the first unexpected
// result (recorded in failure()).
class Worker {
 public:
  Worker(std::string root, std::string label, uint64_t seed, uint64_t max_bytes, uint64_t max_entries,
         Clock::time_point end, const std::atomic<bool>* stop)
      : root_(std::move(root)),
        label_(std::move(label)),
        seed_(seed),
        rng_(seed),
        max_bytes_(max_bytes),
        max_entries_(max_entries),
        end_(end),
        stop_(stop) {}

  void Run() {
    if (mkdir(root_.c_str(), 0755) != 0) return Fail("mkdir of the worker root: " + ErrName(errno));
    while (failure_.empty() && Clock::now() < end_ && !(stop_ != nullptr && stop_->load())) {
      Step();
      ops_++;
    }
  }

  // The subtree as DescribeSubtree() must see it.
  std::map<std::string, std::string> Expected() const {
    std::map<std::string, std::string> out;
    std::map<uint64_t, std::vector<std::string>> members;
    for (const auto& [p, n] : ns_)
      if (!n.dir) members[n.ino].push_back(p);
    for (const auto& [p, n] : ns_) {
      if (n.dir) {
        out[p] = "dir 755";
      } else {
        const std::string& d = data_.at(n.ino);
        out[p] = "reg 644 nlink=" + std::to_string(members[n.ino].size()) + " size=" + std::to_string(d.size()) +
                 " hash=" + HashOf(d);
      }
    }
    for (auto& [ino, m] : members) {
      if (m.size() < 2) continue;
      std::sort(m.begin(), m.end());
      std::string v;
      for (const auto& x : m) v += x + ";";
      out["group:" + m[0]] = v;
    }
    return out;
  }

  const std::string& failure() const { return failure_; }
  uint64_t ops() const { return ops_; }
  uint64_t bytes_written() const { return bytes_written_; }
  std::string Stats() const {
    std::string s;
    for (const auto& [k, v] : counts_) s += " " + k + ":" + std::to_string(v);
    return s;
  }

 private:
  struct Node {
    bool dir = false;
    uint64_t ino = 0;
  };

  uint64_t R(uint64_t n) { return n == 0 ? 0 : rng_() % n; }
  bool Chance(unsigned pct) { return R(100) < pct; }
  std::string A(const std::string& rel) const { return rel.empty() ? root_ : root_ + "/" + rel; }
  static std::string Join(const std::string& dir, const std::string& name) {
    return dir.empty() ? name : dir + "/" + name;
  }
  static size_t Depth(const std::string& rel) {
    return rel.empty() ? 0 : 1 + static_cast<size_t>(std::count(rel.begin(), rel.end(), '/'));
  }
  std::string Fresh(char kind) { return std::string(1, kind) + std::to_string(next_name_++); }

  std::vector<std::string> Files() const {
    std::vector<std::string> v;
    for (const auto& [p, n] : ns_)
      if (!n.dir) v.push_back(p);
    return v;
  }
  std::vector<std::string> Dirs(bool with_root) const {
    std::vector<std::string> v;
    if (with_root) v.push_back("");
    for (const auto& [p, n] : ns_)
      if (n.dir) v.push_back(p);
    return v;
  }
  template <typename T>
  const T& Pick(const std::vector<T>& v) {
    return v[R(v.size())];
  }
  uint64_t Bytes() const {
    uint64_t b = 0;
    for (const auto& [ino, d] : data_) b += d.size();
    return b;
  }

  // Sizes from bytes to a few MiB.
  size_t Size() {
    uint64_t r = R(100);
    return r < 45 ? R(4097) : r < 75 ? R(64 << 10) : r < 93 ? R(1 << 20) : R(4 << 20);
  }
  // Zeros, shared content (the same bytes in every worker: dedupe across
  // workers and against chunks of deleted files) or unique noise.
  std::string Data(size_t n) {
    uint64_t k = R(10);
    if (k == 0) return std::string(n, '\0');
    if (k <= 3) return Gen(0xB00 + R(16), n);
    return Gen(rng_(), n);
  }

  // Writes d at off (pwrite) or appended (off < 0), in pieces of random size.
  bool Write(int fd, const std::string& d, off_t off) {
    size_t done = 0;
    while (done < d.size()) {
      size_t n = std::min<size_t>(d.size() - done, 1 + R(Chance(50) ? 4096 : 256 << 10));
      ssize_t w = off < 0 ? write(fd, d.data() + done, n) : pwrite(fd, d.data() + done, n, off + static_cast<off_t>(done));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      done += static_cast<size_t>(w);
    }
    bytes_written_ += d.size();
    return true;
  }

  void Note(std::string what) {
    counts_[what.substr(0, what.find(' '))]++;
    recent_.push_back(std::to_string(ops_) + ": " + what);
    if (recent_.size() > 12) recent_.erase(recent_.begin());
  }
  void Fail(const std::string& what) {
    if (!failure_.empty()) return;
    std::ostringstream o;
    o << label_ << " (seed " << seed_ << ") op " << ops_ << ": " << what << "\n  recent operations:\n";
    for (const auto& r : recent_) o << "    " << r << "\n";
    failure_ = o.str();
  }
  // errno-reporting check of a system call's result.
  bool Ok(long rc, const std::string& call) {
    if (rc >= 0) return true;
    Fail(call + " failed: " + ErrName(errno));
    return false;
  }

  // Model: drops one name of a file.
  void DropName(const std::string& rel) {
    uint64_t ino = ns_.at(rel).ino;
    ns_.erase(rel);
    if (--links_[ino] == 0) {
      links_.erase(ino);
      data_.erase(ino);
    }
  }

  void Step() {
    bool over = Bytes() > max_bytes_ || ns_.size() > max_entries_;
    if (ns_.empty()) return Create();
    if (over) {
      uint64_t r = R(100);
      if (r < 45) return Unlink();
      if (r < 65) return RemoveDir();
      if (r < 85) return Truncate(true);
      return ReadCheck();
    }
    uint64_t r = R(100);
    if (r < 16) return Create();
    if (r < 24) return Overwrite();
    if (r < 29) return Rewrite();
    if (r < 36) return Append();
    if (r < 41) return Truncate(false);
    if (r < 51) return RenameFile();
    if (r < 56) return Link();
    if (r < 63) return Unlink();
    if (r < 68) return MakeDir();
    if (r < 71) return RemoveDir();
    if (r < 74) return RenameDir();
    if (r < 86) return ReadCheck();
    if (r < 94) return StatCheck();
    return ListCheck();
  }

  void Create() {
    auto dirs = Dirs(true);
    std::string rel = Join(Pick(dirs), Fresh('f'));
    std::string data = Data(Size());
    bool sync = Chance(20);
    Note("create " + rel + " size=" + std::to_string(data.size()) + (sync ? " fsync" : ""));
    int fd = open(A(rel).c_str(), O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
    if (!Ok(fd, "open(O_CREAT|O_EXCL) " + rel)) return;
    bool ok = Write(fd, data, 0);
    int e = errno;
    if (ok && sync && fsync(fd) != 0) {
      e = errno;
      close(fd);
      return Fail("fsync " + rel + ": " + ErrName(e));
    }
    if (close(fd) != 0 && ok) return Fail("close " + rel + ": " + ErrName(errno));
    if (!ok) return Fail("write " + rel + ": " + ErrName(e));
    uint64_t ino = next_ino_++;
    ns_[rel] = Node{false, ino};
    data_[ino] = std::move(data);
    links_[ino] = 1;
  }

  // pwrite of a random range (possibly past the end: a hole), maybe fsync.
  void Overwrite() {
    auto files = Files();
    if (files.empty()) return Create();
    const std::string& rel = Pick(files);
    std::string& d = data_[ns_[rel].ino];
    size_t off = Chance(10) ? d.size() + R(256 << 10) : R(d.size() + 1);
    std::string piece = Data(std::min<size_t>(Size(), 1 << 20));
    bool sync = Chance(20);
    Note("overwrite " + rel + " off=" + std::to_string(off) + " len=" + std::to_string(piece.size()) +
         (sync ? " fsync" : ""));
    int fd = open(A(rel).c_str(), O_WRONLY | O_CLOEXEC);
    if (!Ok(fd, "open(O_WRONLY) " + rel)) return;
    bool ok = Write(fd, piece, static_cast<off_t>(off));
    int e = errno;
    if (ok && sync && (Chance(50) ? fsync(fd) : fdatasync(fd)) != 0) {
      e = errno;
      close(fd);
      return Fail("fsync " + rel + ": " + ErrName(e));
    }
    if (close(fd) != 0 && ok) return Fail("close " + rel + ": " + ErrName(errno));
    if (!ok) return Fail("pwrite " + rel + ": " + ErrName(e));
    if (d.size() < off + piece.size()) d.resize(off + piece.size(), '\0');
    d.replace(off, piece.size(), piece);
  }

  // O_TRUNC and new content.
  void Rewrite() {
    auto files = Files();
    if (files.empty()) return Create();
    const std::string& rel = Pick(files);
    std::string data = Data(Size());
    Note("rewrite " + rel + " size=" + std::to_string(data.size()));
    int fd = open(A(rel).c_str(), O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (!Ok(fd, "open(O_TRUNC) " + rel)) return;
    bool ok = Write(fd, data, 0);
    int e = errno;
    if (close(fd) != 0 && ok) return Fail("close " + rel + ": " + ErrName(errno));
    if (!ok) return Fail("write " + rel + ": " + ErrName(e));
    data_[ns_[rel].ino] = std::move(data);
  }

  void Append() {
    auto files = Files();
    if (files.empty()) return Create();
    const std::string& rel = Pick(files);
    std::string piece = Data(Chance(70) ? 1 + R(8192) : Size());
    bool sync = Chance(25);
    Note("append " + rel + " len=" + std::to_string(piece.size()) + (sync ? " fsync" : ""));
    int fd = open(A(rel).c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (!Ok(fd, "open(O_APPEND) " + rel)) return;
    bool ok = Write(fd, piece, -1);
    int e = errno;
    if (ok && sync && fsync(fd) != 0) {
      e = errno;
      close(fd);
      return Fail("fsync " + rel + ": " + ErrName(e));
    }
    if (close(fd) != 0 && ok) return Fail("close " + rel + ": " + ErrName(errno));
    if (!ok) return Fail("append " + rel + ": " + ErrName(e));
    data_[ns_[rel].ino] += piece;
  }

  void Truncate(bool shrink) {
    auto files = Files();
    if (files.empty()) return Create();
    const std::string& rel = Pick(files);
    std::string& d = data_[ns_[rel].ino];
    size_t size = shrink || Chance(30) ? R(std::min<size_t>(d.size(), 64 << 10) + 1) : R(d.size() * 2 + 8192);
    bool by_fd = Chance(50);
    Note(std::string(by_fd ? "ftruncate " : "truncate ") + rel + " " + std::to_string(d.size()) + "->" +
         std::to_string(size));
    if (by_fd) {
      int fd = open(A(rel).c_str(), O_WRONLY | O_CLOEXEC);
      if (!Ok(fd, "open " + rel)) return;
      int rc = ftruncate(fd, static_cast<off_t>(size));
      int e = errno;
      close(fd);
      errno = e;
      if (!Ok(rc, "ftruncate " + rel)) return;
    } else if (!Ok(truncate(A(rel).c_str(), static_cast<off_t>(size)), "truncate " + rel)) {
      return;
    }
    d.resize(size, '\0');
  }

  // rename(2) of a file to a new name (same or another directory) or over an
  // existing file (which may be another name of the same inode: then POSIX
  // says nothing happens and both names stay).
  void RenameFile() {
    auto files = Files();
    if (files.empty()) return Create();
    std::string src = Pick(files);
    std::string dst = Chance(40) ? Pick(files) : Join(Pick(Dirs(true)), Fresh('f'));
    Note("rename " + src + " -> " + dst + (ns_.count(dst) ? " (over existing)" : ""));
    if (!Ok(rename(A(src).c_str(), A(dst).c_str()), "rename " + src + " -> " + dst)) return;
    Node n = ns_.at(src);
    if (auto it = ns_.find(dst); it != ns_.end()) {
      if (it->second.ino == n.ino) return;  // same inode: no-op
      DropName(dst);
    }
    ns_.erase(src);
    ns_[dst] = n;
  }

  void Link() {
    auto files = Files();
    if (files.empty()) return Create();
    const std::string& src = Pick(files);
    std::string dst = Join(Pick(Dirs(true)), Fresh('h'));
    Note("link " + src + " -> " + dst);
    if (!Ok(link(A(src).c_str(), A(dst).c_str()), "link " + src + " -> " + dst)) return;
    Node n = ns_.at(src);
    ns_[dst] = n;
    links_[n.ino]++;
  }

  void Unlink() {
    auto files = Files();
    if (files.empty()) return RemoveDir();
    std::string rel = Pick(files);
    Note("unlink " + rel);
    if (!Ok(unlink(A(rel).c_str()), "unlink " + rel)) return;
    DropName(rel);
  }

  void MakeDir() {
    std::vector<std::string> dirs;
    for (const auto& d : Dirs(true))
      if (Depth(d) < 4) dirs.push_back(d);
    std::string rel = Join(Pick(dirs), Fresh('d'));
    Note("mkdir " + rel);
    if (!Ok(mkdir(A(rel).c_str(), 0755), "mkdir " + rel)) return;
    ns_[rel] = Node{true, 0};
  }

  // rmdir of a directory, after deleting everything in it (deepest first).
  void RemoveDir() {
    auto dirs = Dirs(false);
    if (dirs.empty()) return MakeDir();
    std::string rel = Pick(dirs);
    std::vector<std::string> inside;
    for (auto it = ns_.lower_bound(rel + "/"); it != ns_.end() && it->first.rfind(rel + "/", 0) == 0; ++it)
      inside.push_back(it->first);
    Note("rm -r " + rel + " (" + std::to_string(inside.size()) + " entries)");
    // Reverse lexicographic order puts every child before its parent.
    for (auto it = inside.rbegin(); it != inside.rend(); ++it) {
      bool dir = ns_.at(*it).dir;
      if (!Ok(dir ? rmdir(A(*it).c_str()) : unlink(A(*it).c_str()), (dir ? "rmdir " : "unlink ") + *it)) return;
      if (dir)
        ns_.erase(*it);
      else
        DropName(*it);
    }
    if (!Ok(rmdir(A(rel).c_str()), "rmdir " + rel)) return;
    ns_.erase(rel);
  }

  // rename(2) of a directory (with its subtree) to a new name elsewhere, or
  // over an existing empty directory.
  void RenameDir() {
    auto dirs = Dirs(false);
    if (dirs.empty()) return MakeDir();
    std::string src = Pick(dirs);
    size_t height = 0;
    for (auto it = ns_.lower_bound(src + "/"); it != ns_.end() && it->first.rfind(src + "/", 0) == 0; ++it)
      height = std::max(height, Depth(it->first) - Depth(src));
    auto outside = [&](const std::string& d) { return d != src && d.rfind(src + "/", 0) != 0; };
    std::vector<std::string> empty_targets, parents;
    for (const auto& d : Dirs(true)) {
      if (!outside(d)) continue;
      if (Depth(d) + 1 + height <= 5) parents.push_back(d);
      if (d.empty() || Depth(d) + height > 5) continue;
      auto it = ns_.lower_bound(d + "/");
      if (it == ns_.end() || it->first.rfind(d + "/", 0) != 0) empty_targets.push_back(d);
    }
    std::string dst;
    if (!empty_targets.empty() && Chance(25))
      dst = Pick(empty_targets);
    else if (!parents.empty())
      dst = Join(Pick(parents), Fresh('d'));
    else
      return ListCheck();
    bool over = ns_.count(dst) != 0;
    Note("rename-dir " + src + " -> " + dst + (over ? " (over empty dir)" : ""));
    if (!Ok(rename(A(src).c_str(), A(dst).c_str()), "rename " + src + " -> " + dst)) return;
    if (over) ns_.erase(dst);
    std::vector<std::pair<std::string, Node>> moved;
    for (auto it = ns_.lower_bound(src); it != ns_.end();) {
      if (it->first != src && it->first.rfind(src + "/", 0) != 0) {
        if (it->first > src + "/\xff") break;
        ++it;
        continue;
      }
      moved.emplace_back(dst + it->first.substr(src.size()), it->second);
      it = ns_.erase(it);
    }
    for (auto& [p, n] : moved) ns_[p] = n;
  }

  void ReadCheck() {
    auto files = Files();
    if (files.empty()) return Create();
    const std::string& rel = Pick(files);
    Note("read " + rel);
    std::string got = ReadFile(A(rel));
    const std::string& want = data_.at(ns_.at(rel).ino);
    if (got == want) return;
    size_t i = 0;
    while (i < got.size() && i < want.size() && got[i] == want[i]) i++;
    Fail("content of " + rel + " differs from what was written: got " + std::to_string(got.size()) + " bytes" +
         (got.rfind("<ERR", 0) == 0 ? " " + got : "") + ", want " + std::to_string(want.size()) +
         ", first difference at offset " + std::to_string(i));
  }

  void StatCheck() {
    std::vector<std::string> all = {""};
    for (const auto& [p, n] : ns_) all.push_back(p);
    const std::string& rel = Pick(all);
    Note("stat " + rel);
    struct stat st;
    if (!Ok(lstat(A(rel).c_str(), &st), "lstat " + rel)) return;
    if (rel.empty() || ns_.at(rel).dir) {
      if (!S_ISDIR(st.st_mode) || (st.st_mode & 07777) != 0755)
        Fail("lstat " + rel + ": mode " + Oct(st.st_mode) + ", want a directory 0755");
      return;
    }
    uint64_t ino = ns_.at(rel).ino;
    std::ostringstream got, want;
    got << "mode " << Oct(st.st_mode) << " size " << st.st_size << " nlink " << st.st_nlink;
    want << "mode 100644 size " << data_.at(ino).size() << " nlink " << links_.at(ino);
    if (got.str() != want.str()) Fail("lstat " + rel + ": " + got.str() + ", want " + want.str());
  }

  void ListCheck() {
    auto dirs = Dirs(true);
    const std::string& rel = Pick(dirs);
    Note("readdir " + rel);
    std::set<std::string> want, got;
    std::string prefix = rel.empty() ? "" : rel + "/";
    for (auto it = ns_.lower_bound(prefix); it != ns_.end() && it->first.rfind(prefix, 0) == 0; ++it)
      if (it->first.find('/', prefix.size()) == std::string::npos) want.insert(it->first.substr(prefix.size()));
    DIR* dp = opendir(A(rel).c_str());
    if (dp == nullptr) return Fail("opendir " + rel + ": " + ErrName(errno));
    while (auto* de = readdir(dp)) {
      std::string n = de->d_name;
      if (n != "." && n != "..") got.insert(n);
    }
    closedir(dp);
    if (got == want) return;
    std::string d;
    for (const auto& n : want)
      if (!got.count(n)) d += " missing:" + n;
    for (const auto& n : got)
      if (!want.count(n)) d += " extra:" + n;
    Fail("readdir " + rel + " differs from the model:" + d);
  }

  std::string root_, label_;
  uint64_t seed_;
  std::mt19937_64 rng_;
  uint64_t max_bytes_, max_entries_;
  Clock::time_point end_;
  const std::atomic<bool>* stop_;
  std::map<std::string, Node> ns_;  // relative path -> node (the root "" is implicit)
  std::map<uint64_t, std::string> data_;
  std::map<uint64_t, uint64_t> links_;
  uint64_t next_ino_ = 1, next_name_ = 0, ops_ = 0, bytes_written_ = 0;
  std::map<std::string, uint64_t> counts_;
  std::vector<std::string> recent_;
  std::string failure_;
};

// ---------------------------------------------------------------------------
// The host directory the backup loop backs up while it changes: files in
// d0..d3 appear (written aside, renamed in), are replaced (renamed over),
// renamed (also over each other) and deleted, and a journal grows. Every
// namespace change happens under mu_ with a sequence number, so what a
// backup may hold is known from the numbers read before and after it. A
// file's content names itself: "cid=N\n" + Gen(N).
class HostSource {
 public:
  struct Window {
    uint64_t s0 = 0, s1 = 0;
    size_t journal0 = 0;
  };

  HostSource(std::string src, std::string tmp, uint64_t seed) : src_(std::move(src)), tmp_(std::move(tmp)), rng_(seed) {}

  bool Setup() {
    if (mkdir(src_.c_str(), 0755) != 0 || mkdir(tmp_.c_str(), 0755) != 0) return false;
    for (int i = 0; i < 4; i++)
      if (mkdir((src_ + "/d" + std::to_string(i)).c_str(), 0755) != 0) return false;
    if (!WriteFile(src_ + "/journal", "")) return false;
    for (int i = 0; i < 30; i++)
      if (!Step().empty()) return false;
    return true;
  }

  static std::string Content(uint64_t cid) {
    uint64_t h = cid * 0x9E3779B97F4A7C15ull;
    h ^= h >> 29;
    uint64_t r = h % 100;
    size_t n = r < 60 ? h % 4096 : r < 92 ? h % (128 << 10) : h % (1 << 20);
    return "cid=" + std::to_string(cid) + "\n" + Gen(cid ^ 0x5EED, n);
  }

  // One change; "" or what failed.
  std::string Step() {
    uint64_t r = rng_() % 100;
    std::vector<std::string> names;
    {
      std::lock_guard g(mu_);
      for (const auto& [n, c] : cur_) names.push_back(n);
    }
    if (names.size() > 120 && r < 60) r = 60;  // delete
    if (names.empty()) r = 0;
    if (r < 30 || (r < 45 && !names.empty())) {  // new file / replace an existing one
      std::string name = r < 30 ? "d" + std::to_string(rng_() % 4) + "/f" + std::to_string(next_name_++)
                                : names[rng_() % names.size()];
      uint64_t cid = ++next_cid_;
      std::string tmp = tmp_ + "/t";
      if (!WriteFile(tmp, Content(cid))) return "write " + tmp + ": " + ErrName(errno);
      std::lock_guard g(mu_);
      if (rename(tmp.c_str(), (src_ + "/" + name).c_str()) != 0) return "rename into " + name + ": " + ErrName(errno);
      Set(name, cid);
      return "";
    }
    if (r < 60) {  // rename, to a new name or over another file
      std::string from = names[rng_() % names.size()];
      std::string to = rng_() % 3 == 0 ? names[rng_() % names.size()]
                                       : "d" + std::to_string(rng_() % 4) + "/f" + std::to_string(next_name_++);
      if (to == from) return "";
      std::lock_guard g(mu_);
      if (rename((src_ + "/" + from).c_str(), (src_ + "/" + to).c_str()) != 0)
        return "rename " + from + " -> " + to + ": " + ErrName(errno);
      uint64_t cid = cur_.at(from);
      Set(from, 0);
      Set(to, cid);
      return "";
    }
    if (r < 85) {  // delete
      std::string name = names[rng_() % names.size()];
      std::lock_guard g(mu_);
      if (unlink((src_ + "/" + name).c_str()) != 0) return "unlink " + name + ": " + ErrName(errno);
      Set(name, 0);
      return "";
    }
    // append to the journal
    std::string rec = "record " + std::to_string(journal_records_++) + " " + Gen(rng_(), rng_() % 64) + "\n";
    std::lock_guard g(mu_);
    int fd = open((src_ + "/journal").c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
    if (fd < 0) return "open journal: " + ErrName(errno);
    bool ok = WriteAll(fd, rec.data(), rec.size());
    close(fd);
    if (!ok) return "append to journal failed";
    journal_ += rec;
    return "";
  }

  Window Begin() {
    std::lock_guard g(mu_);
    return Window{seq_, 0, journal_.size()};
  }
  uint64_t Seq() {
    std::lock_guard g(mu_);
    return seq_;
  }

  // Checks a restore of a backup taken during `w`; "" or the problems.
  std::string Check(const std::string& restored, const Window& w) {
    std::lock_guard g(mu_);
    std::string problems;
    auto problem = [&](const std::string& p) {
      if (std::count(problems.begin(), problems.end(), '\n') < 20) problems += "    " + p + "\n";
    };
    std::string jgot = ReadFile(restored + "/journal");
    if (jgot.size() < w.journal0 || journal_.compare(0, jgot.size(), jgot) != 0)
      problem("journal: " + std::to_string(jgot.size()) + " bytes, not a prefix of the journal at least " +
              std::to_string(w.journal0) + " long");
    std::set<std::string> seen;
    for (int i = 0; i < 4; i++) {
      std::string d = "d" + std::to_string(i);
      DIR* dp = opendir((restored + "/" + d).c_str());
      if (dp == nullptr) {
        problem(d + ": " + ErrName(errno));
        continue;
      }
      while (auto* de = readdir(dp)) {
        std::string n = de->d_name;
        if (n != "." && n != "..") seen.insert(d + "/" + n);
      }
      closedir(dp);
    }
    for (const auto& name : seen) {
      std::string got = ReadFile(restored + "/" + name);
      uint64_t cid = got.rfind("cid=", 0) == 0 ? std::strtoull(got.c_str() + 4, nullptr, 10) : 0;
      if (cid == 0 || got != Content(cid)) {
        problem(name + ": content is not a whole file the source ever held (" + std::to_string(got.size()) +
                " bytes)");
        continue;
      }
      auto allowed = Values(name, w);
      if (!allowed.count(cid))
        problem(name + ": holds cid " + std::to_string(cid) + ", which that name never had during the backup");
    }
    for (const auto& [name, h] : hist_) {
      uint64_t v0 = At(h, w.s0);
      bool changed = std::any_of(h.begin(), h.end(), [&](const auto& e) { return e.first > w.s0 && e.first <= w.s1; });
      if (v0 != 0 && !changed && !seen.count(name))
        problem(name + ": unchanged during the whole backup (cid " + std::to_string(v0) + ") but missing");
    }
    std::set<std::string> top;
    if (DIR* dp = opendir(restored.c_str())) {
      while (auto* de = readdir(dp)) top.insert(de->d_name);
      closedir(dp);
    }
    if (top != std::set<std::string>{".", "..", "d0", "d1", "d2", "d3", "journal"}) problem("unexpected top level");
    return problems;
  }

  uint64_t changes() {
    std::lock_guard g(mu_);
    return seq_;
  }

 private:
  void Set(const std::string& name, uint64_t cid) {  // under mu_
    ++seq_;
    hist_[name].emplace_back(seq_, cid);
    if (cid == 0)
      cur_.erase(name);
    else
      cur_[name] = cid;
  }
  static uint64_t At(const std::vector<std::pair<uint64_t, uint64_t>>& h, uint64_t s) {
    uint64_t v = 0;
    for (const auto& [seq, cid] : h)
      if (seq <= s) v = cid;
    return v;
  }
  std::set<uint64_t> Values(const std::string& name, const Window& w) {  // under mu_
    std::set<uint64_t> v;
    auto it = hist_.find(name);
    if (it == hist_.end()) return v;
    v.insert(At(it->second, w.s0));
    for (const auto& [seq, cid] : it->second)
      if (seq > w.s0 && seq <= w.s1) v.insert(cid);
    return v;
  }

  std::string src_, tmp_;
  std::mt19937_64 rng_;
  std::mutex mu_;
  uint64_t seq_ = 0, next_cid_ = 0, next_name_ = 0, journal_records_ = 0;
  std::map<std::string, std::vector<std::pair<uint64_t, uint64_t>>> hist_;  // name -> (seq, cid or 0)
  std::map<std::string, uint64_t> cur_;
  std::string journal_;
};

// Peak memory of the mount daemon, sampled from /proc/PID/status.
struct MemoryPeak {
  uint64_t rss_kb = 0, anon_kb = 0, hwm_kb = 0;
  uint64_t samples = 0;
};

class StressTest : public FuseTest {
 protected:
  struct Loop {
    std::string name;
    std::atomic<bool> done{false};
    std::mutex mu;
    std::string doing;
    void Doing(const std::string& d) {
      std::lock_guard g(mu);
      doing = d;
    }
  };

  void Failure(const std::string& f) {
    std::lock_guard g(fail_mu_);
    if (failures_.size() < 40) failures_.push_back(f);
    failed_ = true;
  }

  // One CLI command from a loop: a timeout is a hang.
  RunResult Cli(Loop& l, const std::vector<std::string>& args) {
    std::string cmd = "hashfs";
    for (const auto& a : args) cmd += " " + a;
    l.Doing(cmd);
    auto t0 = Clock::now();
    RunResult r = Hashfs(args, kCliTimeout);
    double s = std::chrono::duration<double>(Clock::now() - t0).count();
    l.Doing("");
    if (cfg_.trace) std::fprintf(stderr, "[stress %s] %s -> %d (%.2f s)\n", l.name.c_str(), cmd.c_str(), r.code, s);
    if (r.code == -2) Failure(l.name + ": `" + cmd + "` did not finish within " + std::to_string(kCliTimeout) + " s (hang)");
    {
      std::lock_guard g(fail_mu_);
      if (s > max_cli_s_) {
        max_cli_s_ = s;
        slowest_cli_ = cmd;
      }
      cli_counts_[args[0]]++;
    }
    return r;
  }
  void Expect0(Loop& l, const std::vector<std::string>& args, const RunResult& r) {
    if (r.code == 0 || r.code == -2) return;
    std::string cmd;
    for (const auto& a : args) cmd += " " + a;
    Failure(l.name + ": `hashfs" + cmd + "` exited " + std::to_string(r.code) + ": " + r.err.substr(0, 2000) +
            r.out.substr(0, 500));
  }
  // Sleeps up to ms, returning early when stopping.
  void Nap(uint64_t ms) {
    auto until = Clock::now() + std::chrono::milliseconds(ms);
    while (!stop_ && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  StressConfig cfg_;
  std::atomic<bool> stop_{false}, failed_{false};
  std::mutex fail_mu_;
  std::vector<std::string> failures_;
  double max_cli_s_ = 0;
  std::string slowest_cli_;
  std::map<std::string, uint64_t> cli_counts_;
};

struct BackupRecord {
  std::string commit;
  HostSource::Window w;
  bool partial = false;
};
struct SnapshotRecord {
  std::string name, file, hash;  // a file in it and its content when the snapshot was new
};

// Splits "path\tdesc" lines.
std::map<std::string, std::string> ReadDescription(const std::string& p) {
  std::map<std::string, std::string> m;
  std::istringstream in(ReadFile(p));
  std::string line;
  while (std::getline(in, line)) {
    auto t = line.find('\t');
    if (t != std::string::npos) m[line.substr(0, t)] = line.substr(t + 1);
  }
  return m;
}

TEST_F(StressTest, ConcurrentWorkersAndCliLoopsStayConsistentAndBounded) {
  HASHFS_ONLY();
  const StressConfig& c = cfg_;
  const std::string replay = "HASHFS_STRESS_SEED=" + std::to_string(c.seed) + " HASHFS_STRESS_SECONDS=" +
                             std::to_string(c.seconds) + " HASHFS_STRESS_THREADS=" + std::to_string(c.threads) +
                             " HASHFS_STRESS_PROCS=" + std::to_string(c.procs) +
                             " fusefs_tests --gtest_filter=StressTest.*";
  SCOPED_TRACE("stress seed " + std::to_string(c.seed) + " (replay, same sequences per worker; the interleaving " +
               "differs run to run): " + replay);
  const uint64_t watchdog = EnvU64("HASHFS_FUSE_TEST_TIMEOUT", 540);
  ASSERT_LT(c.seconds + c.grace + 200, watchdog)
      << "HASHFS_STRESS_SECONDS=" << c.seconds << " needs HASHFS_FUSE_TEST_TIMEOUT above " << c.seconds + c.grace + 200;
  const uint64_t workers = c.threads + c.procs;
  ASSERT_GT(workers, 0u);
  std::fprintf(stderr, "[stress] seed %llu: %llu s, %llu threads + %llu processes\n",
               static_cast<unsigned long long>(c.seed), static_cast<unsigned long long>(c.seconds),
               static_cast<unsigned long long>(c.threads), static_cast<unsigned long long>(c.procs));

  HostSource source(H("bsrc"), H("btmp"), c.seed ^ 0xBAC);
  ASSERT_TRUE(source.Setup()) << ErrName(errno);
  const auto t_start = Clock::now();
  const auto end = t_start + std::chrono::seconds(c.seconds);
  auto worker_root = [&](uint64_t k) { return P("w" + std::to_string(k)); };
  auto worker_seed = [&](uint64_t k) { return c.seed * 1000 + k; };

  // Processes first, while the only other thread (the watchdog) is idle.
  std::vector<pid_t> kids;
  for (uint64_t k = c.threads; k < workers; k++) {
    pid_t pid = fork();
    if (pid == 0) {
      Worker w(worker_root(k), "process w" + std::to_string(k), worker_seed(k), c.worker_bytes, c.max_entries, end,
               nullptr);
      w.Run();
      std::string exp;
      for (const auto& [p, d] : w.Expected()) exp += p + "\t" + d + "\n";
      std::string base = H("w" + std::to_string(k));
      bool ok = WriteFile(base + ".expect", exp) && WriteFile(base + ".failure", w.failure()) &&
                WriteFile(base + ".stats", std::to_string(w.ops()) + " ops, " +
                                               std::to_string(w.bytes_written() >> 20) + " MiB written;" + w.Stats());
      _exit(ok ? 0 : 1);
    }
    ASSERT_GT(pid, 0);
    kids.push_back(pid);
  }

  std::vector<std::unique_ptr<Loop>> loops;
  std::vector<std::thread> threads;
  auto start = [&](const std::string& name, std::function<void(Loop&)> fn) {
    loops.push_back(std::make_unique<Loop>());
    Loop* l = loops.back().get();
    l->name = name;
    threads.emplace_back([l, fn = std::move(fn)] {
      fn(*l);
      l->done = true;
    });
  };

  // Worker threads.
  std::vector<std::unique_ptr<Worker>> thread_workers;
  for (uint64_t k = 0; k < c.threads; k++) {
    thread_workers.push_back(std::make_unique<Worker>(worker_root(k), "thread w" + std::to_string(k), worker_seed(k),
                                                      c.worker_bytes, c.max_entries, end, &stop_));
    Worker* w = thread_workers.back().get();
    start("thread w" + std::to_string(k), [w](Loop&) { w->Run(); });
  }

  // Memory of the daemon.
  MemoryPeak mem;
  std::mutex mem_mu;
  start("memory sampler", [&](Loop&) {
    std::vector<pid_t> pids;
    for (uint64_t i = 0; !stop_; i++) {
      if (i % 8 == 0) pids = DaemonPids();
      for (pid_t p : pids) {
        std::string st = ReadFile("/proc/" + std::to_string(p) + "/status");
        std::lock_guard g(mem_mu);
        mem.rss_kb = std::max(mem.rss_kb, StatusKb(st, "VmRSS"));
        mem.anon_kb = std::max(mem.anon_kb, StatusKb(st, "RssAnon"));
        mem.hwm_kb = std::max(mem.hwm_kb, StatusKb(st, "VmHWM"));
        mem.samples++;
        if (i % 40 == 39)  // every 10 s: the trend, not only the peak
          std::fprintf(stderr, "[stress] %3.0f s: daemon VmRSS %.0f MiB, RssAnon %.0f MiB\n",
                       std::chrono::duration<double>(Clock::now() - t_start).count(), StatusKb(st, "VmRSS") / 1024.0,
                       StatusKb(st, "RssAnon") / 1024.0);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(250));
    }
  });

  // The changing host directory.
  start("host changer", [&](Loop& l) {
    std::mt19937_64 rng(c.seed ^ 0xC4A);
    while (!stop_) {
      std::string e = source.Step();
      if (!e.empty()) {
        Failure(l.name + ": " + e);
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2 + rng() % 12));
    }
  });

  // Backups of it into volume "other".
  std::vector<BackupRecord> backups;
  std::mutex backups_mu;
  start("backup loop", [&](Loop& l) {
    while (!stop_) {
      HostSource::Window w = source.Begin();
      std::vector<std::string> args = {"backup", H("bsrc"), "--volume", "other", "--json"};
      RunResult r = Cli(l, args);
      w.s1 = source.Seq();
      if (r.code == 3) {
        // Only files that vanished between listing and reading may be skipped.
        std::istringstream in(r.err);
        for (std::string line; std::getline(in, line);)
          if (line.find("skipped") != std::string::npos && line.find("No such file or directory") == std::string::npos)
            Failure(l.name + ": backup skipped an item for another reason than vanishing: " + line);
      } else if (r.code != 0) {
        Expect0(l, args, r);
        Nap(500);
        continue;
      }
      try {
        auto j = nlohmann::json::parse(r.out);
        std::lock_guard g(backups_mu);
        backups.push_back(BackupRecord{j.at("commit").get<std::string>(), w, r.code == 3});
      } catch (const std::exception& e) {
        Failure(l.name + ": bad backup JSON: " + e.what() + ": " + r.out.substr(0, 500));
      }
      Nap(100 + (backups.size() * 37) % 300);
    }
  });

  // log / ls of the live volume and of the backups' volume.
  start("history loop", [&](Loop& l) {
    while (!stop_) {
      std::vector<std::string> a1 = {"log", kVolume};
      RunResult r = Cli(l, a1);
      Expect0(l, a1, r);
      if (r.code == 0 && r.out.empty()) Failure(l.name + ": `hashfs log vol` printed nothing");
      std::vector<std::string> a2 = {"ls", kVolume};
      Expect0(l, a2, Cli(l, a2));
      bool have_other;
      {
        std::lock_guard g(backups_mu);
        have_other = !backups.empty();
      }
      if (have_other) {
        std::vector<std::string> a3 = {"log", "other", "-n", "5"};
        Expect0(l, a3, Cli(l, a3));
      }
      Nap(250);
    }
  });

  // Snapshots of the live volume (and of backup commits), ls and cat of them.
  std::vector<SnapshotRecord> snaps;
  std::vector<std::pair<std::string, BackupRecord>> backup_snaps;
  start("snapshot loop", [&](Loop& l) {
    std::mt19937_64 rng(c.seed ^ 0x5A9);
    for (uint64_t i = 1; !stop_; i++) {
      SnapshotRecord s{"s" + std::to_string(i), "", ""};
      std::vector<std::string> a = {"snapshot", s.name, kVolume};
      RunResult r = Cli(l, a);
      Expect0(l, a, r);
      if (r.code != 0) {
        Nap(1000);
        continue;
      }
      // Find a file: down from a random worker root, at most 4 levels.
      std::string dir = "w" + std::to_string(rng() % workers);
      for (int depth = 0; depth < 4 && s.file.empty(); depth++) {
        std::vector<std::string> la = {"ls", s.name + ":" + dir, "--json"};
        RunResult lr = Cli(l, la);
        if (lr.code != 0) {
          // The worker root may not exist yet in an early snapshot.
          if (depth > 0 || lr.err.find("o such") == std::string::npos) Expect0(l, la, lr);
          break;
        }
        std::vector<std::string> files, dirs;
        try {
          for (const auto& e : nlohmann::json::parse(lr.out)) {
            std::string n = e.at("name").get<std::string>();
            (e.at("type").get<std::string>() == "f" ? files : dirs).push_back(dir + "/" + n);
          }
        } catch (const std::exception& e) {
          Failure(l.name + ": bad ls JSON: " + e.what());
          break;
        }
        if (!files.empty()) {
          s.file = files[rng() % files.size()];
        } else if (!dirs.empty()) {
          dir = dirs[rng() % dirs.size()];
        } else {
          break;
        }
      }
      if (!s.file.empty()) {
        std::vector<std::string> ca = {"cat", s.name + ":" + s.file};
        RunResult cr = Cli(l, ca);
        Expect0(l, ca, cr);
        s.hash = HashOf(cr.out);
        if (cr.code != 0) s.file.clear();
      }
      snaps.push_back(s);
      // Pin a recent backup commit by name, so forget may drop the others.
      BackupRecord b;
      {
        std::lock_guard g(backups_mu);
        if (!backups.empty()) b = backups.back();
      }
      if (!b.commit.empty() && i % 2 == 0) {
        std::string bname = "b" + std::to_string(i);
        std::vector<std::string> ba = {"snapshot", bname, b.commit};
        RunResult br = Cli(l, ba);
        Expect0(l, ba, br);
        if (br.code == 0) backup_snaps.emplace_back(bname, b);
      }
      std::vector<std::string> sa = {"snapshots"};
      Expect0(l, sa, Cli(l, sa));
      Nap(800 + rng() % 1200);
    }
  });

  // forget + gc, and one verify beside everything else.
  start("gc loop", [&](Loop& l) {
    bool verified = false;
    for (uint64_t i = 0; !stop_; i++) {
      Nap(1000 + (i * 577) % 1500);
      if (stop_) break;
      if (i % 2 == 1) {
        std::vector<std::string> fa = {"forget", kVolume, "--keep-last", "30"};
        Expect0(l, fa, Cli(l, fa));
      }
      bool have_other;
      {
        std::lock_guard g(backups_mu);
        have_other = !backups.empty();
      }
      if (i % 3 == 2 && have_other) {
        std::vector<std::string> fa = {"forget", "other", "--keep-last", "3"};
        Expect0(l, fa, Cli(l, fa));
      }
      std::vector<std::string> ga = {"gc"};
      // The mount commits continuously: gc marks its new roots inside the
      // sweep and must complete every time.
      Expect0(l, ga, Cli(l, ga));
      if (!verified && Clock::now() > t_start + std::chrono::seconds(c.seconds) / 2) {
        verified = true;
        std::vector<std::string> va = {"verify"};
        Expect0(l, va, Cli(l, va));
      }
    }
  });

  // ---- Run until the end, then everything must finish within the grace time.
  while (Clock::now() < end) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  stop_ = true;
  const auto grace_end = Clock::now() + std::chrono::seconds(c.grace);
  std::map<pid_t, int> kid_status;
  for (;;) {
    for (pid_t k : kids) {
      int st = 0;
      if (!kid_status.count(k) && waitpid(k, &st, WNOHANG) == k) kid_status[k] = st;
    }
    bool all = kid_status.size() == kids.size();
    for (const auto& l : loops) all = all && l->done;
    if (all || Clock::now() > grace_end) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const double run_s = std::chrono::duration<double>(Clock::now() - t_start).count();
  std::string stuck;
  for (const auto& l : loops) {
    if (l->done) continue;
    std::lock_guard g(l->mu);
    stuck += "  " + l->name + (l->doing.empty() ? "" : " (in `" + l->doing + "`)") + "\n";
  }
  for (pid_t k : kids)
    if (!kid_status.count(k)) stuck += "  worker process " + std::to_string(k) + "\n";
  if (!stuck.empty()) {
    ADD_FAILURE() << "deadlock or hang: still running " << c.grace << " s after the end:\n" << stuck;
    DumpDaemonLogs();
    // Unblock everything: abort the FUSE connection, kill the daemon and the workers.
    MountInfo mi = FindMount(mnt_);
    if (mi.mounted) {
      int fd = open(("/sys/fs/fuse/connections/" + std::to_string(mi.minor) + "/abort").c_str(), O_WRONLY);
      if (fd >= 0) {
        (void)!write(fd, "1", 1);
        close(fd);
      }
    }
    KillDaemons(SIGKILL);
    for (pid_t k : kids)
      if (!kid_status.count(k)) {
        kill(k, SIGKILL);
        int st = 0;
        waitpid(k, &st, 0);
        kid_status[k] = st;
      }
  }
  for (auto& t : threads) t.join();

  // ---- Results of the run.
  for (const auto& f : failures_) ADD_FAILURE() << f;
  std::vector<std::map<std::string, std::string>> expected(workers);
  std::vector<bool> comparable(workers, true);
  std::string summary;
  for (uint64_t k = 0; k < workers; k++) {
    std::string fail, stats;
    if (k < c.threads) {
      const Worker& w = *thread_workers[k];
      fail = w.failure();
      expected[k] = w.Expected();
      stats = std::to_string(w.ops()) + " ops, " + std::to_string(w.bytes_written() >> 20) + " MiB written;" + w.Stats();
    } else {
      pid_t pid = kids[k - c.threads];
      int st = kid_status[pid];
      std::string base = H("w" + std::to_string(k));
      if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        ADD_FAILURE() << "worker process w" << k << " ended with status " << st;
        comparable[k] = false;
        continue;
      }
      fail = ReadFile(base + ".failure");
      expected[k] = ReadDescription(base + ".expect");
      stats = ReadFile(base + ".stats");
    }
    summary += "  w" + std::to_string(k) + (k < c.threads ? " (thread): " : " (process): ") + stats + "\n";
    if (!fail.empty()) {
      ADD_FAILURE() << "worker w" << k << ": " << fail;
      comparable[k] = false;  // its model stopped at the failure
    }
    if (stats.rfind("0 ops", 0) == 0) ADD_FAILURE() << "worker w" << k << " did no operation";
  }
  size_t partial = 0;
  for (const auto& b : backups) partial += b.partial ? 1 : 0;
  std::fprintf(stderr,
               "[stress] ran %.1f s; workers:\n%s[stress] %zu backups (%zu skipped vanished files), %llu host changes, "
               "%zu snapshots, CLI commands:",
               run_s, summary.c_str(), backups.size(), partial, static_cast<unsigned long long>(source.changes()),
               snaps.size());
  for (const auto& [k, v] : cli_counts_) std::fprintf(stderr, " %s:%llu", k.c_str(), static_cast<unsigned long long>(v));
  std::fprintf(stderr, "; slowest CLI command %.1f s (`%s`)\n", max_cli_s_, slowest_cli_.c_str());
  if (!stuck.empty()) return;
  EXPECT_GT(backups.size(), 0u) << "no backup finished during the run";
  EXPECT_GT(snaps.size(), 0u) << "no snapshot was taken during the run";
  EXPECT_GT(cli_counts_["gc"], 0u) << "no gc ran during the run";

  auto compare_all = [&](const std::string& when) {
    for (uint64_t k = 0; k < workers; k++) {
      if (!comparable[k]) continue;
      auto got = DescribeSubtree(worker_root(k));
      EXPECT_EQ(expected[k], got) << "worker w" << k << " " << when << ": model (first) vs mount (second):\n"
                                  << DiffDescriptions(expected[k], got);
    }
  };
  compare_all("at the end, still mounted");
  for (const auto& s : snaps) {
    struct stat st;
    EXPECT_EQ(lstat(P(".hashfs/snapshots/" + s.name).c_str(), &st), 0)
        << ".hashfs/snapshots/" << s.name << ": " << ErrName(errno);
  }
  {
    std::string status;
    for (pid_t p : DaemonPids()) status = ReadFile("/proc/" + std::to_string(p) + "/status");
    std::lock_guard g(mem_mu);
    mem.hwm_kb = std::max(mem.hwm_kb, StatusKb(status, "VmHWM"));
  }

  // ---- Unmount (commits everything), verify, remount, compare again.
  auto t_umount = Clock::now();
  ASSERT_TRUE(Unmount(mnt_));
  const double umount_s = std::chrono::duration<double>(Clock::now() - t_umount).count();
  RunResult v = Hashfs({"verify"});
  EXPECT_EQ(v.code, 0) << "verify after the run: " << v.out << v.err;
  ASSERT_TRUE(Mount(kVolume, mnt_));
  compare_all("after unmount + remount");

  // The head, restored, is the same tree (the final commit holds everything).
  ASSERT_EQ(Hashfs({"snapshot", "final", kVolume}).code, 0);
  {
    std::string dest = H("restore-final");
    RunResult r = Hashfs({"restore", "final", dest});
    EXPECT_EQ(r.code, 0) << r.err;
    for (uint64_t k = 0; k < workers && r.code == 0; k++) {
      if (!comparable[k]) continue;
      auto got = DescribeSubtree(dest + "/w" + std::to_string(k));
      EXPECT_EQ(expected[k], got) << "worker w" << k << ": model (first) vs restore of the final head (second):\n"
                                  << DiffDescriptions(expected[k], got);
    }
    Shell("rm -rf " + Quote(dest));
  }

  // ---- Every snapshot is still readable; the sampled file has its bytes.
  for (const auto& s : snaps) {
    RunResult r = Hashfs({"ls", s.name});
    EXPECT_EQ(r.code, 0) << "snapshot " << s.name << ": " << r.err;
    if (s.file.empty()) continue;
    r = Hashfs({"cat", s.name + ":" + s.file});
    EXPECT_EQ(r.code, 0) << s.name << ":" << s.file << ": " << r.err;
    EXPECT_EQ(HashOf(r.out), s.hash) << s.name << ":" << s.file << " changed since the snapshot was taken";
  }
  if (!snaps.empty()) {
    std::string dest = H("restore-snap");
    RunResult r = Hashfs({"restore", snaps.back().name, dest});
    EXPECT_EQ(r.code, 0) << "restore of snapshot " << snaps.back().name << ": " << r.err;
    Shell("rm -rf " + Quote(dest));
  }

  // ---- Backup commits restore to what the source held during the backup:
  // every snapshot-pinned one, the last, and the oldest still in the log,
  // up to HASHFS_STRESS_RESTORES.
  std::set<std::string> in_log;
  for (auto& e : Json({"log", "other", "--json"})) in_log.insert(e["id"].get<std::string>());
  std::vector<std::pair<std::string, BackupRecord>> to_check;  // ref, record
  if (!backups.empty()) {
    EXPECT_TRUE(in_log.count(backups.back().commit)) << "the last backup commit is not the head of its volume";
    to_check.emplace_back(backups.back().commit, backups.back());
  }
  for (const auto& b : backups)
    if (in_log.count(b.commit) && b.commit != backups.back().commit) {
      to_check.emplace_back(b.commit, b);
      break;
    }
  {
    // Snapshot-pinned ones, evenly spaced over the run.
    size_t n = backup_snaps.size(), want = std::min<size_t>(n, c.restores > 2 ? c.restores - 2 : 0);
    for (size_t i = 0; i < want; i++) to_check.push_back(backup_snaps[i * n / want]);
  }
  for (size_t i = 0; i < to_check.size() && i < std::max<uint64_t>(c.restores, 1); i++) {
    const auto& [ref, b] = to_check[i];
    std::string dest = H("restore-backup-" + std::to_string(i));
    RunResult r = Hashfs({"restore", ref, dest});
    EXPECT_EQ(r.code, 0) << "restore of backup " << ref << ": " << r.err;
    if (r.code == 0) {
      std::string problems = source.Check(dest, b.w);
      EXPECT_EQ(problems, "") << "backup " << b.commit << " (restored as " << ref << ", taken during host changes "
                              << b.w.s0 << ".." << b.w.s1 << ") differs from its source:\n"
                              << problems;
    }
    Shell("rm -rf " + Quote(dest));
  }

  // ---- Memory of the daemon.
  std::fprintf(stderr,
               "[stress] daemon memory: peak VmRSS %.1f MiB, peak RssAnon %.1f MiB, VmHWM %.1f MiB (%llu samples); "
               "umount took %.1f s; %zu backup commits checked\n",
               mem.rss_kb / 1024.0, mem.anon_kb / 1024.0, mem.hwm_kb / 1024.0,
               static_cast<unsigned long long>(mem.samples), umount_s,
               std::min<size_t>(to_check.size(), std::max<uint64_t>(c.restores, 1)));
  EXPECT_GT(mem.samples, 0u) << "the daemon's memory was never sampled";
  EXPECT_LT(std::max(mem.rss_kb, mem.hwm_kb), c.rss_mib << 10)
      << "the mount daemon's resident memory exceeded HASHFS_STRESS_RSS_MIB=" << c.rss_mib;
  RunResult v2 = Hashfs({"verify"});
  EXPECT_EQ(v2.code, 0) << v2.out << v2.err;
}

}  // namespace
}  // namespace fusetest
