#include "tree/restore.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <tbb/global_control.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <semaphore>
#include <set>
#include <thread>

#include "cas/tsan_sync.h"
#include "tree/file_manifest.h"
#include "tree/walk.h"

namespace hashfs {
namespace {

struct Fd {
  int fd = -1;
  Fd() = default;
  explicit Fd(int f) : fd(f) {}
  Fd(Fd&& o) noexcept : fd(o.fd) { o.fd = -1; }
  Fd& operator=(Fd&& o) noexcept {
    std::swap(fd, o.fd);
    return *this;
  }
  Fd(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) close(fd);
  }
};

struct timespec ToTs(int64_t ns) {
  struct timespec ts;
  ts.tv_sec = ns / 1000000000;
  ts.tv_nsec = ns % 1000000000;
  if (ts.tv_nsec < 0) {
    ts.tv_nsec += 1000000000;
    ts.tv_sec -= 1;
  }
  return ts;
}

bool AllZero(std::string_view s) {
  for (char c : s)
    if (c) return false;
  return true;
}

std::string ProcPath(int dirfd, const std::string& name) {
  return "/proc/self/fd/" + std::to_string(dirfd) + "/" + name;
}

class RestoreRun {
 public:
  RestoreRun(Repository& repo, const Commit& c, const RestoreOptions& o, RestoreProgress* p)
      : repo_(repo), get_(repo.getter()), commit_(c), opts_(o), progress_(p ? p : &own_) {}

  Status Run(const Entry& top, const std::string& dest);
  RestoreReport report;

 private:
  void Error(const std::string& path, const std::string& why) {
    std::lock_guard lk(mu_);
    report.errors.push_back(path + ": " + why);
  }
  Result<Inode> Resolve(const Entry& e);
  // A directory's child that is restored after the directory's listing.
  struct Sub {
    std::string name;
    Inode inode;
  };
  // A directory being restored. Its fd stays open until the last of its
  // files is written; whoever drops the last reference (the walker leaving
  // it, or a file task) sets its attributes.
  struct DirState {
    DirState(Fd f, std::string p, Inode d) : fd(std::move(f)), path(std::move(p)), dir(std::move(d)) {}
    Fd fd;
    std::string path;
    Inode dir;
    std::atomic<size_t> refs{1};  // the walker's, plus one per queued file
  };
  // Restores the tree of directory `dir`, open as dirfd (contents, then
  // attributes, depth first). An explicit stack, not recursion: a tree may
  // nest kMaxTreeDepth levels, which recursion under ASan did not fit in
  // an 8 MiB stack.
  void RestoreTree(int dirfd, const Inode& dir);
  // Lists `dir`, creates its symlinks, devices and fifos and its
  // subdirectories, and returns the subdirectories and regular files in
  // *dirs and *files; false if the directory is refused (too deep).
  // `comps_of(name)` gives the path components (below the destination) of
  // a child, for hardlinks.
  bool ListDir(int dirfd, const std::string& path,
               const std::function<std::vector<std::string>(const std::string&)>& comps_of, const Inode& dir,
               int depth, std::vector<Sub>* files, std::vector<Sub>* dirs);
  // Sets the directory's own attributes once its contents are in place.
  void FinishDir(int dirfd, const std::string& path, const Inode& dir);
  void RestoreFile(int dirfd, const std::string& name, const std::string& path, const Inode& inode);
  void CreateOther(int dirfd, const std::string& name, const std::string& path, const Inode& inode);
  // Sets owner, mode, xattrs and times of dirfd/name (fd >= 0: use it).
  void ApplyAttrs(int dirfd, const std::string& name, int fd, const std::string& path, const Inode& inode);
  // Removes dirfd/name if it exists and is not a directory.
  bool ClearName(int dirfd, const std::string& name, const std::string& path);
  void MakeLinks(int rootfd);

  Repository& repo_;
  ObjectGetter get_;
  const Commit& commit_;
  const RestoreOptions& opts_;
  RestoreProgress own_;
  RestoreProgress* progress_;
  std::mutex mu_;
  // link id -> path components (relative to dest) of its first restored name.
  std::map<uint64_t, std::vector<std::string>> first_link_;
  // (dir components, name, link id) for further names of restored links.
  std::vector<std::pair<std::vector<std::string>, uint64_t>> pending_links_;
};

Result<Inode> RestoreRun::Resolve(const Entry& e) {
  if (e.link_id == 0) return e.inode;
  HASHFS_ASSIGN_OR_RETURN(auto rec, link_table::Lookup(get_, commit_.links, e.link_id));
  if (!rec) return Status::Corruption("hardlink record " + std::to_string(e.link_id) + " is missing");
  if (rec->inode.type != e.inode.type) return Status::Corruption("hardlink record type differs from its entry");
  return rec->inode;
}

bool RestoreRun::ClearName(int dirfd, const std::string& name, const std::string& path) {
  struct stat st;
  if (fstatat(dirfd, name.c_str(), &st, AT_SYMLINK_NOFOLLOW) != 0) return true;
  if (S_ISDIR(st.st_mode)) {
    Error(path, "a directory is in the way");
    return false;
  }
  if (unlinkat(dirfd, name.c_str(), 0) != 0) {
    Error(path, std::string("cannot replace: ") + std::strerror(errno));
    return false;
  }
  return true;
}

void RestoreRun::ApplyAttrs(int dirfd, const std::string& name, int fd, const std::string& path, const Inode& n) {
  bool link = n.type == FileType::kSymlink;
  if (opts_.owners) {
    int r = fd >= 0 ? fchown(fd, n.uid, n.gid) : fchownat(dirfd, name.c_str(), n.uid, n.gid, AT_SYMLINK_NOFOLLOW);
    if (r != 0) Error(path, std::string("chown: ") + std::strerror(errno));
  }
  if (!link) {
    // After chown, which may clear setuid/setgid bits.
    int r = fd >= 0 ? fchmod(fd, n.mode) : fchmodat(dirfd, name.c_str(), n.mode, 0);
    if (r != 0) Error(path, std::string("chmod: ") + std::strerror(errno));
  }
  for (const auto& [k, v] : n.xattrs) {
    int r = fd >= 0 ? fsetxattr(fd, k.c_str(), v.data(), v.size(), 0)
                    : lsetxattr(ProcPath(dirfd, name).c_str(), k.c_str(), v.data(), v.size(), 0);
    if (r != 0) Error(path, "xattr " + k + ": " + std::strerror(errno));
  }
  struct timespec ts[2] = {ToTs(n.mtime_ns), ToTs(n.mtime_ns)};
  int r = fd >= 0 ? futimens(fd, ts) : utimensat(dirfd, name.c_str(), ts, AT_SYMLINK_NOFOLLOW);
  if (r != 0) Error(path, std::string("times: ") + std::strerror(errno));
}

void RestoreRun::RestoreFile(int dirfd, const std::string& name, const std::string& path, const Inode& n) {
  if (!ClearName(dirfd, name, path)) return;
  Fd fd(openat(dirfd, name.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600));
  if (fd.fd < 0) {
    Error(path, std::string("create: ") + std::strerror(errno));
    return;
  }
  // A chunk found all zero is a hole wherever it recurs: a sparse file's
  // hole is one zero chunk many times over, fetched and checked once.
  std::optional<Digest> zero_chunk;
  // Likewise a manifest subtree that wrote nothing (all holes, or damaged
  // chunks already reported): where it recurs it is skipped whole. Manifest
  // nodes repeat in long runs of zeros, and a crafted store can claim 2^39
  // chunks in a few objects; this keeps such a walk to its distinct nodes.
  std::set<Digest> empty_nodes;
  std::vector<uint64_t> written_at_entry;  // per node being walked
  uint64_t written = 0;  // chunks that wrote bytes
  // Damaged chunks are listed up to kMaxChunkErrors per file, then counted.
  constexpr uint64_t kMaxChunkErrors = 20;
  uint64_t chunk_errors = 0;
  auto chunk_error = [&](uint64_t off, const std::string& why) {
    if (++chunk_errors <= kMaxChunkErrors) Error(path, "chunk at offset " + std::to_string(off) + ": " + why);
  };
  file_manifest::ChunkWalker walker;
  walker.enter = [&](const Digest& node, uint64_t, uint64_t size) {
    if (empty_nodes.count(node)) {
      progress_->bytes_done += size;
      return false;
    }
    written_at_entry.push_back(written);
    return true;
  };
  walker.leave = [&](const Digest& node) {
    if (written_at_entry.back() == written) empty_nodes.insert(node);
    written_at_entry.pop_back();
  };
  walker.chunk = [&](const ChunkRef& c, uint64_t off) -> Status {
    if (zero_chunk && c.digest == *zero_chunk) {
      progress_->bytes_done += c.size;
      return Status::Ok();
    }
    auto data = get_(c.digest);
    if (!data.ok()) {
      chunk_error(off, data.status().ToString());
      return Status::Ok();  // leave a hole, carry on with the rest
    }
    if (data->size() != c.size) {
      chunk_error(off, "wrong length");
      return Status::Ok();
    }
    // Write in 64 KiB pieces and leave all-zero pieces as holes (sparse files).
    constexpr size_t kPiece = 64 * 1024;
    bool wrote = false;
    for (size_t p = 0; p < data->size(); p += kPiece) {
      std::string_view piece = std::string_view(*data).substr(p, kPiece);
      if (AllZero(piece)) continue;
      wrote = true;
      size_t done = 0;
      while (done < piece.size()) {
        ssize_t w = pwrite(fd.fd, piece.data() + done, piece.size() - done, static_cast<off_t>(off + p + done));
        if (w < 0) {
          if (errno == EINTR) continue;
          return Status::FromErrno(errno, "write");
        }
        done += static_cast<size_t>(w);
      }
    }
    if (wrote)
      written++;
    else
      zero_chunk = c.digest;
    progress_->bytes_done += c.size;
    return Status::Ok();
  };
  Status s = file_manifest::WalkChunks(get_, n, walker);
  if (chunk_errors > kMaxChunkErrors)
    Error(path, std::to_string(chunk_errors - kMaxChunkErrors) + " more damaged chunk references not listed");
  if (!s.ok()) {
    Error(path, s.ToString());
    return;
  }
  if (ftruncate(fd.fd, static_cast<off_t>(n.size)) != 0) {
    Error(path, std::string("truncate: ") + std::strerror(errno));
    return;
  }
  ApplyAttrs(dirfd, name, fd.fd, path, n);
  progress_->files_done++;
  std::lock_guard lk(mu_);
  report.files++;
  report.bytes += n.size;
}

void RestoreRun::CreateOther(int dirfd, const std::string& name, const std::string& path, const Inode& n) {
  if (!ClearName(dirfd, name, path)) return;
  int r;
  if (n.type == FileType::kSymlink) {
    r = symlinkat(n.symlink_target.c_str(), dirfd, name.c_str());
  } else {
    dev_t dev = (n.type == FileType::kCharDevice || n.type == FileType::kBlockDevice) ? static_cast<dev_t>(n.rdev) : 0;
    r = mknodat(dirfd, name.c_str(), TypeBits(n.type) | (n.mode & 0777), dev);
  }
  if (r != 0) {
    Error(path, std::string("create: ") + std::strerror(errno));
    return;
  }
  ApplyAttrs(dirfd, name, -1, path, n);
  std::lock_guard lk(mu_);
  report.others++;
}

std::string ChildPath(const std::string& path, const std::string& name) {
  return path.empty() ? name : path + "/" + name;
}

bool RestoreRun::ListDir(int dirfd, const std::string& path,
                         const std::function<std::vector<std::string>(const std::string&)>& comps_of,
                         const Inode& dir, int depth, std::vector<Sub>* files, std::vector<Sub>* dirs) {
  if (depth > kMaxTreeDepth) {
    Error(path, "directory nesting deeper than " + std::to_string(kMaxTreeDepth) + " levels");
    return false;
  }
  std::vector<Entry> entries;
  Status s = dir_tree::ForEach(get_, dir.content, [&](const Entry& e) {
    entries.push_back(e);
    return Status::Ok();
  });
  if (!s.ok()) {
    Error(path.empty() ? "." : path, "directory listing: " + s.ToString());
    // Restore whatever was listed before the damage.
  }
  for (const Entry& e : entries) {
    std::string child = ChildPath(path, e.name);
    if (!IsValidEntryName(e.name)) {
      Error(child, "invalid name refused");
      continue;
    }
    if (e.link_id) {
      // The first name of a hardlinked file restores it; the others are
      // linked to it at the end.
      std::lock_guard lk(mu_);
      auto it = first_link_.find(e.link_id);
      if (it != first_link_.end()) {
        pending_links_.emplace_back(comps_of(e.name), e.link_id);
        continue;
      }
      first_link_.emplace(e.link_id, comps_of(e.name));
    }
    auto inode = Resolve(e);
    if (!inode.ok()) {
      Error(child, inode.status().ToString());
      continue;
    }
    switch (inode->type) {
      case FileType::kDirectory:
        if (mkdirat(dirfd, e.name.c_str(), 0700) != 0 && errno != EEXIST) {
          Error(child, std::string("mkdir: ") + std::strerror(errno));
          continue;
        }
        dirs->push_back({e.name, std::move(inode).value()});
        break;
      case FileType::kRegular:
        files->push_back({e.name, std::move(inode).value()});
        break;
      default:
        CreateOther(dirfd, e.name, child, *inode);
    }
  }
  return true;
}

void RestoreRun::FinishDir(int dirfd, const std::string& path, const Inode& dir) {
  ApplyAttrs(dirfd, ".", dirfd, path.empty() ? "." : path, dir);
  std::lock_guard lk(mu_);
  report.dirs++;
}

// Tag for TsanRelease/TsanAcquire around RestoreTree's file tasks.
const char kRestoreHandoff = 0;

// How many threads restore files: more than the cores, because a restore
// mostly waits (page faults on the store, writes into the page cache), and
// overlapping those waits is what makes it fast (5 GiB on 2 cores: 12.8-13.7 s
// instead of 18.7-19.4 s with a thread per core).
int RestoreThreads() {
  int hc = static_cast<int>(std::thread::hardware_concurrency());
  return std::clamp(3 * std::max(hc, 1), 4, 32);
}

void RestoreRun::RestoreTree(int dirfd, const Inode& dir) {
  const int threads = RestoreThreads();
  tbb::global_control parallelism(tbb::global_control::max_allowed_parallelism, static_cast<size_t>(threads));
  tbb::task_arena arena(threads);
  tbb::task_group tasks;
  // Files in flight, bounded so that queued files (each holding its
  // directory's fd open) stay few whatever the tree.
  std::counting_semaphore<> slots(4 * threads);

  // Drops one reference to a directory; the last one sets its attributes.
  auto release = [this](const std::shared_ptr<DirState>& d) {
    if (d->refs.fetch_sub(1) == 1) FinishDir(d->fd.fd, d->path, d->dir);
  };
  // Whatever happens to a file, its directory is released, or the
  // directory's attributes would never be set.
  auto run_file = [this, &release](const std::shared_ptr<DirState>& d, const Sub& file) {
    try {
      RestoreFile(d->fd.fd, file.name, ChildPath(d->path, file.name), file.inode);
    } catch (const std::exception& e) {
      Error(ChildPath(d->path, file.name), std::string("restore stopped: ") + e.what());
    }
    release(d);
  };
  // No slot freed for a second: maybe no TBB worker runs the tasks (a
  // program may limit TBB to one thread, and the smallest limit wins). From
  // then on the walker restores a file itself whenever no slot is free.
  bool stalled = false;
  auto spawn_file = [&](const std::shared_ptr<DirState>& d, Sub file) {
    d->refs++;
    bool slot = stalled ? slots.try_acquire() : slots.try_acquire_for(std::chrono::seconds(1));
    if (!slot) {
      stalled = true;
      run_file(d, file);
      return;
    }
    // The task's closure and what it points to move to a worker through
    // TBB, which TSan cannot see: the tag carries that (cas/tsan_sync.h).
    TsanRelease(&kRestoreHandoff);
    tasks.run([d, file = std::move(file), &run_file, &slots] {
      TsanAcquire(&kRestoreHandoff);
      run_file(d, file);
      TsanRelease(&kRestoreHandoff);
      slots.release();
    });
  };

  struct Frame {
    std::shared_ptr<DirState> dir;
    std::string name;  // in its parent ("" for the top)
    int depth;
    std::vector<Sub> dirs;
    size_t next = 0;
  };
  std::vector<Frame> stack;
  // Lists a directory and queues its regular files; then its subdirectories
  // are entered one by one. Its path components are the names on the stack
  // (below the top) and its own. Its attributes are set once it has been
  // left and its last file is written.
  auto enter = [&](Frame f) {
    auto comps_of = [&](const std::string& child) {
      std::vector<std::string> c;
      for (size_t i = 1; i < stack.size(); i++) c.push_back(stack[i].name);
      if (f.depth > 0) c.push_back(f.name);
      c.push_back(child);
      return c;
    };
    std::vector<Sub> files;
    if (!ListDir(f.dir->fd.fd, f.dir->path, comps_of, f.dir->dir, f.depth, &files, &f.dirs)) return;
    for (Sub& x : files) spawn_file(f.dir, std::move(x));
    stack.push_back(std::move(f));
  };
  auto walk = [&] {
    Fd top(dup(dirfd));
    if (top.fd < 0) return Error(".", std::string("dup: ") + std::strerror(errno));
    enter(Frame{std::make_shared<DirState>(std::move(top), "", dir), "", 0, {}, 0});
    while (!stack.empty()) {
      Frame& f = stack.back();
      if (f.next == f.dirs.size()) {
        release(f.dir);
        stack.pop_back();
        continue;
      }
      const Sub& d = f.dirs[f.next++];
      std::string child = ChildPath(f.dir->path, d.name);
      // Never follows a symlink put in the new directory's place.
      Fd sub(openat(f.dir->fd.fd, d.name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (sub.fd < 0) {
        Error(child, std::string("open directory: ") + std::strerror(errno));
        continue;
      }
      enter(Frame{std::make_shared<DirState>(std::move(sub), child, d.inode), d.name, f.depth + 1, {}, 0});
      // f may dangle now
    }
  };
  arena.execute([&] {
    try {
      walk();
    } catch (const std::exception& e) {
      Error(".", std::string("restore stopped: ") + e.what());
    }
    try {
      tasks.wait();
    } catch (const std::exception& e) {
      Error(".", std::string("restore stopped: ") + e.what());
    }
    TsanAcquire(&kRestoreHandoff);
  });
}

// Opens the directory at `comps` (all but the last component) below rootfd,
// never following a symlink.
int OpenParent(int rootfd, const std::vector<std::string>& comps) {
  int fd = dup(rootfd);
  for (size_t i = 0; i + 1 < comps.size() && fd >= 0; i++) {
    int next = openat(fd, comps[i].c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    close(fd);
    fd = next;
  }
  return fd;
}

std::string Join(const std::vector<std::string>& comps) {
  std::string s;
  for (const auto& c : comps) s += (s.empty() ? "" : "/") + c;
  return s;
}

void RestoreRun::MakeLinks(int rootfd) {
  for (const auto& [comps, id] : pending_links_) {
    const auto& first = first_link_.at(id);
    std::string path = Join(comps);
    Fd from(OpenParent(rootfd, first));
    Fd to(OpenParent(rootfd, comps));
    if (from.fd < 0 || to.fd < 0) {
      Error(path, std::string("hardlink: ") + std::strerror(errno));
      continue;
    }
    if (!ClearName(to.fd, comps.back(), path)) continue;
    if (linkat(from.fd, first.back().c_str(), to.fd, comps.back().c_str(), 0) != 0) {
      Error(path, std::string("hardlink to ") + Join(first) + ": " + std::strerror(errno));
      continue;
    }
    std::lock_guard lk(mu_);
    report.files++;
  }
}

Status RestoreRun::Run(const Entry& top, const std::string& dest) {
  if (mkdir(dest.c_str(), 0700) != 0 && errno != EEXIST) return Status::FromErrno(errno, "creating " + dest);
  Fd root(open(dest.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (root.fd < 0) return Status::FromErrno(errno, "opening " + dest);
  HASHFS_ASSIGN_OR_RETURN(Inode inode, Resolve(top));
  if (inode.type == FileType::kDirectory) {
    RestoreTree(root.fd, inode);
  } else {
    Entry single = top;
    single.link_id = 0;
    single.inode = inode;
    if (inode.type == FileType::kRegular)
      RestoreFile(root.fd, top.name, top.name, inode);
    else
      CreateOther(root.fd, top.name, top.name, inode);
  }
  MakeLinks(root.fd);
  // Directory times were set before their hardlinks were added: set them again.
  if (!pending_links_.empty() && inode.type == FileType::kDirectory) {
    for (const auto& [comps, id] : pending_links_) {
      (void)id;
      Fd parent(OpenParent(root.fd, comps));
      if (parent.fd < 0) continue;
      std::vector<std::string> dir_comps(comps.begin(), comps.end() - 1);
      auto e = dir_comps.empty() ? Result<Entry>(top) : LookupPath(repo_, commit_, Join(dir_comps));
      if (!e.ok()) continue;
      struct timespec ts[2] = {ToTs(e->inode.mtime_ns), ToTs(e->inode.mtime_ns)};
      futimens(parent.fd, ts);
    }
  }
  return Status::Ok();
}

}  // namespace

Result<Entry> LookupPath(Repository& repo, const Commit& commit, std::string_view path) {
  Entry cur;
  cur.inode = commit.root;
  ObjectGetter get = repo.getter();
  size_t pos = 0;
  std::string walked;
  while (pos <= path.size()) {
    size_t slash = path.find('/', pos);
    std::string_view comp = path.substr(pos, slash == std::string_view::npos ? std::string_view::npos : slash - pos);
    pos = slash == std::string_view::npos ? path.size() + 1 : slash + 1;
    if (comp.empty() || comp == ".") continue;
    if (comp == "..") return Status::InvalidArgument("'..' is not allowed in a path");
    if (cur.inode.type != FileType::kDirectory) return Status::NotFound(walked + " is not a directory");
    HASHFS_ASSIGN_OR_RETURN(auto e, dir_tree::Lookup(get, cur.inode.content, comp));
    walked += (walked.empty() ? "" : "/") + std::string(comp);
    if (!e) return Status::NotFound("no such file or directory: " + walked);
    cur = std::move(*e);
    if (cur.link_id) {
      HASHFS_ASSIGN_OR_RETURN(auto rec, link_table::Lookup(get, commit.links, cur.link_id));
      if (!rec) return Status::Corruption("hardlink record of " + walked + " is missing");
      cur.inode = rec->inode;
      cur.link_id = 0;
    }
  }
  return cur;
}

Result<RestoreReport> Restore(Repository& repo, const Commit& commit, std::string_view subpath,
                              const std::string& dest, const RestoreOptions& opts, RestoreProgress* progress) {
  HASHFS_ASSIGN_OR_RETURN(Entry top, LookupPath(repo, commit, subpath));
  if (top.name.empty()) top.name = "root";
  RestoreRun run(repo, commit, opts, progress);
  HASHFS_RETURN_IF_ERROR(run.Run(top, dest));
  return std::move(run.report);
}

}  // namespace hashfs
