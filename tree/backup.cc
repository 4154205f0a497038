#include "tree/backup.h"

#include <dirent.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <tbb/parallel_pipeline.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>

#include "cas/tsan_sync.h"
#include "tree/file_manifest.h"

namespace hashfs {

// Defined in gc.cc.
Status CheckComplete(Repository& repo, ObjectGetter get, const Digest& commit);

namespace {

int64_t Ns(const struct timespec& ts) { return int64_t{ts.tv_sec} * 1000000000 + ts.tv_nsec; }

FileType TypeOf(mode_t m) {
  if (S_ISREG(m)) return FileType::kRegular;
  if (S_ISDIR(m)) return FileType::kDirectory;
  if (S_ISLNK(m)) return FileType::kSymlink;
  if (S_ISFIFO(m)) return FileType::kFifo;
  if (S_ISCHR(m)) return FileType::kCharDevice;
  if (S_ISBLK(m)) return FileType::kBlockDevice;
  return FileType::kSocket;
}

Status ReadXattrs(const std::string& path, std::vector<std::pair<std::string, std::string>>* out) {
  std::string names(1024, '\0');
  ssize_t n;
  for (;;) {
    n = llistxattr(path.c_str(), names.data(), names.size());
    if (n >= 0) break;
    if (errno == ERANGE) {
      names.resize(names.size() * 4);
      continue;
    }
    if (errno == ENOTSUP || errno == ENOSYS) return Status::Ok();
    return Status::FromErrno(errno, "listing xattrs");
  }
  names.resize(static_cast<size_t>(n));
  size_t pos = 0;
  while (pos < names.size()) {
    std::string name(names.c_str() + pos);
    pos += name.size() + 1;
    if (name.empty()) continue;
    std::string value(256, '\0');
    for (;;) {
      ssize_t v = lgetxattr(path.c_str(), name.c_str(), value.data(), value.size());
      if (v >= 0) {
        value.resize(static_cast<size_t>(v));
        break;
      }
      if (errno == ERANGE) {
        value.resize(value.size() * 4);
        if (value.size() > kMaxXattrValueLength * 4) return Status::InvalidArgument("xattr value too large");
        continue;
      }
      if (errno == ENODATA) {
        value.clear();
        name.clear();
        break;
      }
      return Status::FromErrno(errno, "reading xattr " + name);
    }
    if (name.empty()) continue;
    if (name.size() > kMaxXattrNameLength || value.size() > kMaxXattrValueLength)
      return Status::InvalidArgument("xattr " + name + " exceeds hashfs limits");
    out->emplace_back(std::move(name), std::move(value));
  }
  std::sort(out->begin(), out->end());
  if (out->size() > kMaxXattrs) return Status::InvalidArgument("too many xattrs");
  if (size_t total = XattrBytes(*out); total > kMaxXattrBytes)
    return Status::InvalidArgument(
        fmt::format("xattrs of {} bytes in all exceed hashfs's limit of {} per file", total, kMaxXattrBytes));
  return Status::Ok();
}

struct Token {
  enum Kind { kEnter, kLeave, kItem, kLinkRef, kSkip } kind = kItem;
  std::string path;  // host path
  std::string name;
  struct stat st{};
  std::optional<Inode> prev;  // same path in the previous head, inode resolved
  uint64_t link_id = 0;
  Digest same_as;           // kEnter: Frame::same_as of this directory
  size_t prev_entries = 0;  // kEnter: Frame::prev_entries
  // Filled by the parallel stage.
  Inode inode;
  std::string error;
  enum Change { kNew, kChanged, kUnchanged } change = kNew;
};

// One directory being listed by the walker.
struct Frame {
  std::string path, rel;
  std::vector<std::string> names;
  size_t next = 0;
  std::unordered_map<std::string, Inode> prev;  // previous entries, links resolved
  // The previous tree and its entry count, when it was read whole and holds
  // no hardlink (else zero): a directory whose entries all equal these is
  // that tree again (the encoding is canonical).
  Digest same_as;
  size_t prev_entries = 0;
};

class Excluder {
 public:
  explicit Excluder(const std::vector<std::string>& pats) : pats_(pats) {}
  bool Excluded(const std::string& rel, const std::string& name) const {
    for (const auto& p : pats_) {
      if (p.find('/') == std::string::npos) {
        if (fnmatch(p.c_str(), name.c_str(), 0) == 0) return true;
      } else {
        std::string anchored = p[0] == '/' ? p.substr(1) : p;
        if (fnmatch(anchored.c_str(), rel.c_str(), FNM_PATHNAME) == 0) return true;
      }
    }
    return false;
  }

 private:
  std::vector<std::string> pats_;
};

class BackupRun {
 public:
  BackupRun(Repository& repo, const std::string& source, const BackupOptions& opts, BackupProgress* progress)
      : repo_(repo),
        source_(source),
        opts_(opts),
        progress_(progress ? progress : &own_progress_),
        excluder_(opts.excludes),
        writer_(repo.store(), repo.config().zstd_level) {}

  Result<BackupReport> Run(const std::string& volume);

 private:
  Status LoadPrevious(const std::optional<Digest>& head);
  Status PushDir(const std::string& path, const std::string& rel, const Digest& prev_dir);
  // Walker: produces the next token or nullopt at the end.
  std::optional<Token> NextToken();
  void Process(Token& t);
  Status Consume(Token& t);
  void Scan();

  Repository& repo_;
  std::string source_;
  const BackupOptions& opts_;
  BackupProgress own_progress_;
  BackupProgress* progress_;
  Excluder excluder_;
  ObjectWriter writer_;

  Commit prev_commit_;
  bool has_prev_ = false;
  std::unordered_map<uint64_t, Inode> prev_links_;

  // Walker state.
  std::vector<Frame> frames_;
  bool started_ = false;
  std::map<std::pair<dev_t, ino_t>, uint64_t> hardlinks_;
  uint64_t next_link_id_ = 1;
  Status walk_error_;

  // Builder state (serial output stage).
  struct DirBuild {
    std::string name;
    Inode inode;
    std::vector<Entry> entries;
    // The previous backup's inode of this directory, its tree
    // (Frame::same_as) and entry count; `same` while there is such a tree
    // and every entry so far equals its previous one.
    std::optional<Inode> prev;
    Digest same_as;
    size_t prev_entries = 0;
    bool same = false;
  };
  std::vector<DirBuild> building_;
  std::map<uint64_t, LinkRecord> links_;
  std::optional<Inode> root_;
  Status build_error_;
  BackupReport report_;
};

Status BackupRun::LoadPrevious(const std::optional<Digest>& head) {
  if (!head) return Status::Ok();
  HASHFS_ASSIGN_OR_RETURN(prev_commit_, repo_.LoadCommit(*head));
  has_prev_ = true;
  return link_table::ForEach(repo_.getter(), prev_commit_.links, [&](const LinkRecord& r) {
    prev_links_[r.id] = r.inode;
    return Status::Ok();
  });
}

Status BackupRun::PushDir(const std::string& path, const std::string& rel, const Digest& prev_dir) {
  Frame f;
  f.path = path;
  f.rel = rel;
  DIR* d = opendir(path.c_str());
  if (!d) return Status::FromErrno(errno, "opening directory");
  errno = 0;
  while (struct dirent* de = readdir(d)) {
    std::string n = de->d_name;
    if (n == "." || n == "..") continue;
    f.names.push_back(std::move(n));
  }
  int err = errno;
  closedir(d);
  if (err) return Status::FromErrno(err, "reading directory");
  std::sort(f.names.begin(), f.names.end());
  if (!prev_dir.IsZero()) {
    bool links = false;
    Status s = dir_tree::ForEach(repo_.getter(), prev_dir, [&](const Entry& e) {
      f.prev_entries++;
      links |= e.link_id != 0;
      if (e.link_id == 0) {
        f.prev.emplace(e.name, e.inode);
      } else if (auto it = prev_links_.find(e.link_id); it != prev_links_.end()) {
        f.prev.emplace(e.name, it->second);
      }
      return Status::Ok();
    });
    // A damaged previous tree only costs re-reading: carry on without it.
    if (!s.ok()) f.prev.clear();
    if (s.ok() && !links) f.same_as = prev_dir;
  }
  frames_.push_back(std::move(f));
  return Status::Ok();
}

std::optional<Token> BackupRun::NextToken() {
  if (!started_) {
    started_ = true;
    Token t;
    t.kind = Token::kEnter;
    t.path = source_;
    if (lstat(source_.c_str(), &t.st) != 0) {
      walk_error_ = Status::FromErrno(errno, source_);
      return std::nullopt;
    }
    if (!S_ISDIR(t.st.st_mode)) {
      walk_error_ = Status::InvalidArgument(source_ + " is not a directory");
      return std::nullopt;
    }
    Digest prev = has_prev_ ? prev_commit_.root.content : Digest{};
    if (Status s = PushDir(source_, "", prev); !s.ok()) {
      walk_error_ = s.WithContext(source_);
      return std::nullopt;
    }
    t.same_as = frames_.back().same_as;
    t.prev_entries = frames_.back().prev_entries;
    return t;
  }
  while (!frames_.empty()) {
    Frame& f = frames_.back();
    if (f.next == f.names.size()) {
      Token t;
      t.kind = Token::kLeave;
      frames_.pop_back();
      return t;
    }
    const std::string& name = f.names[f.next++];
    Token t;
    t.name = name;
    t.path = f.path == "/" ? "/" + name : f.path + "/" + name;
    std::string rel = f.rel.empty() ? name : f.rel + "/" + name;
    if (excluder_.Excluded(rel, name)) continue;
    if (name.size() > kMaxNameLength) {
      t.kind = Token::kSkip;
      t.error = "name longer than 255 bytes";
      return t;
    }
    if (lstat(t.path.c_str(), &t.st) != 0) {
      t.kind = Token::kSkip;
      t.error = std::strerror(errno);
      return t;
    }
    if (auto it = f.prev.find(name); it != f.prev.end()) t.prev = it->second;
    if (S_ISDIR(t.st.st_mode)) {
      Digest prev_dir = (t.prev && t.prev->type == FileType::kDirectory) ? t.prev->content : Digest{};
      Status s = PushDir(t.path, rel, prev_dir);
      if (!s.ok()) {
        t.kind = Token::kSkip;
        t.error = s.message();
        return t;
      }
      t.kind = Token::kEnter;
      t.same_as = frames_.back().same_as;
      t.prev_entries = frames_.back().prev_entries;
      return t;
    }
    if (t.st.st_nlink > 1) {
      auto key = std::make_pair(t.st.st_dev, t.st.st_ino);
      auto it = hardlinks_.find(key);
      if (it != hardlinks_.end()) {
        t.kind = Token::kLinkRef;
        t.link_id = it->second;
        return t;
      }
      t.link_id = next_link_id_++;
      hardlinks_.emplace(key, t.link_id);
    }
    t.kind = Token::kItem;
    return t;
  }
  return std::nullopt;
}

// Runs on any pipeline thread: reads and stores one item's content.
// Whether a regular file equals its previous backup (size, mtime, ctime and
// inode number from lstat): the walker sizes batches with it, Process skips
// reading such a file.
namespace {
bool LooksUnchanged(const Token& t) {
  const Inode* p = t.prev ? &*t.prev : nullptr;
  return p && p->type == FileType::kRegular && p->size == static_cast<uint64_t>(t.st.st_size) &&
         p->mtime_ns == Ns(t.st.st_mtim) && p->ctime_ns == Ns(t.st.st_ctim) && p->source_ino == t.st.st_ino;
}
}  // namespace

void BackupRun::Process(Token& t) {
  if (t.kind != Token::kItem && t.kind != Token::kEnter) return;
  auto attrs = InodeFromHost(t.path, t.st);
  if (!attrs.ok()) {
    t.error = attrs.status().message();
    return;
  }
  t.inode = std::move(attrs).value();
  if (t.kind == Token::kEnter || t.inode.type != FileType::kRegular) return;
  // t.inode's size, times and inode number come from t.st, so the walker's
  // guess is the decision.
  if (LooksUnchanged(t)) {
    t.inode = *t.prev;  // unchanged since the previous backup: reuse without reading
    t.change = Token::kUnchanged;
    progress_->bytes_done += t.inode.size;
    return;
  }
  t.change = t.prev ? Token::kChanged : Token::kNew;
  int fd = open(t.path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
  if (fd < 0 && errno == EPERM) fd = open(t.path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    t.error = std::strerror(errno);
    return;
  }
  posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  // Holes of sparse files are not read: their chunks are zeros of known
  // lengths, each hashed and stored once per file.
  FdChunker chunker(fd, repo_.config().chunking, /*skip_holes=*/true);
  std::vector<ChunkRef> chunks;
  std::map<uint64_t, Digest> zero_chunks;  // length -> digest
  std::string chunk;
  while (chunker.Next(&chunk)) {
    const uint64_t zeros = chunker.hole_chunk();
    if (zeros) {
      auto it = zero_chunks.find(zeros);
      if (it != zero_chunks.end()) {
        chunks.push_back({it->second, zeros});
        progress_->bytes_done += zeros;
        continue;
      }
      chunk.assign(static_cast<size_t>(zeros), '\0');  // the first of this length
    }
    Digest d = Sha256Of(chunk);
    Status s = writer_.PutWithDigest(d, chunk, ObjectKind::kData);
    if (!s.ok()) {
      t.error = s.ToString();
      close(fd);
      return;
    }
    if (zeros)
      zero_chunks.emplace(zeros, d);
    else
      progress_->bytes_read += chunk.size();
    chunks.push_back({d, chunk.size()});
    progress_->bytes_done += chunk.size();
  }
  close(fd);
  if (!chunker.status().ok()) {
    t.error = chunker.status().message();
    return;
  }
  Status s = file_manifest::SetContent(writer_, std::move(chunks), &t.inode);
  if (!s.ok()) t.error = s.ToString();
}

// Serial, in walk order: assembles directories bottom-up.
Status BackupRun::Consume(Token& t) {
  auto add_error = [&](const std::string& path, const std::string& why) {
    report_.errors.push_back(path + ": " + why);
  };
  switch (t.kind) {
    case Token::kSkip:
      add_error(t.path, t.error);
      return Status::Ok();
    case Token::kEnter:
      if (!t.error.empty()) {
        // Attributes unreadable: keep the contents, with neutral attributes.
        add_error(t.path, t.error);
        t.inode = Inode{};
        t.inode.type = FileType::kDirectory;
        t.inode.mode = 0700;
      }
      building_.push_back(
          {t.name, std::move(t.inode), {}, std::move(t.prev), t.same_as, t.prev_entries, !t.same_as.IsZero()});
      return Status::Ok();
    case Token::kLeave: {
      DirBuild b = std::move(building_.back());
      building_.pop_back();
      // Unchanged since the previous backup (same names, every entry equal):
      // its tree is the previous one, without encoding and hashing it again.
      if (b.same && b.entries.size() == b.prev_entries) {
        b.inode.content = b.same_as;
      } else {
        HASHFS_ASSIGN_OR_RETURN(b.inode.content, dir_tree::Build(writer_, std::move(b.entries)));
      }
      report_.dirs++;
      if (building_.empty()) {
        root_ = std::move(b.inode);
      } else {
        DirBuild& parent = building_.back();
        parent.same = parent.same && b.prev && *b.prev == b.inode;
        parent.entries.push_back(Entry{b.name, 0, std::move(b.inode)});
      }
      return Status::Ok();
    }
    case Token::kLinkRef: {
      building_.back().same = false;
      auto it = links_.find(t.link_id);
      if (it == links_.end()) return Status::Ok();  // the first name failed and was reported
      it->second.nlink++;
      Entry e;
      e.name = t.name;
      e.link_id = t.link_id;
      e.inode.type = it->second.inode.type;
      building_.back().entries.push_back(std::move(e));
      return Status::Ok();
    }
    case Token::kItem:
      break;
  }
  if (!t.error.empty()) {
    add_error(t.path, t.error);
    return Status::Ok();
  }
  if (t.inode.type == FileType::kRegular) {
    report_.bytes_total += t.inode.size;
    if (t.change == Token::kNew) report_.files_new++;
    if (t.change == Token::kChanged) report_.files_changed++;
    if (t.change == Token::kUnchanged) report_.files_unchanged++;
  } else {
    report_.others++;
  }
  progress_->files_done++;
  DirBuild& dir = building_.back();
  dir.same = dir.same && t.link_id == 0 && t.prev && *t.prev == t.inode;
  Entry e;
  e.name = t.name;
  if (t.link_id) {
    e.link_id = t.link_id;
    e.inode.type = t.inode.type;
    links_[t.link_id] = LinkRecord{t.link_id, 1, std::move(t.inode)};
  } else {
    e.inode = std::move(t.inode);
  }
  building_.back().entries.push_back(std::move(e));
  return Status::Ok();
}

// Several threads (kScanThreads) share one stack of directories: on a cold
// cache the scan is bound by the latency of reading directories and inodes,
// and a few reads in flight at once finish it, and warm the cache for the
// serial walker, sooner than one thread reading one at a time.
void BackupRun::Scan() {
  constexpr int kScanThreads = 4;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::pair<std::string, std::string>> stack = {{source_, ""}};
  int busy = 0;  // threads holding a directory popped from the stack
  std::atomic<uint64_t> files{0}, bytes{0};
  auto work = [&] {
    std::unique_lock lk(mu);
    for (;;) {
      cv.wait(lk, [&] { return !stack.empty() || busy == 0; });
      if (stack.empty()) return;  // and nobody can push more
      auto [path, rel] = std::move(stack.back());
      stack.pop_back();
      busy++;
      lk.unlock();
      std::vector<std::pair<std::string, std::string>> dirs;
      uint64_t f = 0, b = 0;
      if (DIR* d = opendir(path.c_str())) {
        while (struct dirent* de = readdir(d)) {
          std::string n = de->d_name;
          if (n == "." || n == "..") continue;
          std::string child = path == "/" ? "/" + n : path + "/" + n;
          std::string crel = rel.empty() ? n : rel + "/" + n;
          if (excluder_.Excluded(crel, n)) continue;
          struct stat st;
          if (lstat(child.c_str(), &st) != 0) continue;
          if (S_ISDIR(st.st_mode)) {
            dirs.emplace_back(std::move(child), std::move(crel));
          } else {
            f++;
            if (S_ISREG(st.st_mode)) b += static_cast<uint64_t>(st.st_size);
          }
        }
        closedir(d);
      }
      progress_->total_files = files += f;
      progress_->total_bytes = bytes += b;
      lk.lock();
      busy--;
      // Reversed, so the first subdirectory in listing order is popped first.
      for (auto it = dirs.rbegin(); it != dirs.rend(); ++it) stack.push_back(std::move(*it));
      cv.notify_all();
    }
  };
  std::vector<std::thread> threads;
  for (int i = 1; i < kScanThreads; i++) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();
  progress_->scan_done = true;
}

Result<BackupReport> BackupRun::Run(const std::string& volume) {
  HASHFS_RETURN_IF_ERROR(ValidateName(volume));
  HASHFS_ASSIGN_OR_RETURN(auto session, WriterSession::Start(repo_, "backup " + source_));
  HASHFS_ASSIGN_OR_RETURN(std::optional<Digest> head, repo_.Head(volume));
  HASHFS_RETURN_IF_ERROR(LoadPrevious(head));

  std::thread scanner;
  if (opts_.scan_totals) scanner = std::thread([this] { Scan(); });

  // Tokens travel in batches: up to 32, or fewer once the regular files in
  // the batch that will likely be read (their size, times or inode differ
  // from the previous backup's) reach 1 MiB. An incremental backup of
  // unchanged files then pays the pipeline's hand-offs (and TBB's idle
  // worker looking for work) once per 32 files, not per file; files that
  // need reading still spread over the cores in batches of ~1 MiB.
  using Batch = std::vector<Token>;
  size_t batches = std::max(4u, std::thread::hardware_concurrency() * 4);
  // The serial stages' state moves between threads, and each batch moves
  // between stages, through TBB's hand-offs, which TSan cannot see: these
  // tags (and each batch's address) carry them (cas/tsan_sync.h). (Static,
  // so that reading them is not itself an unordered access.)
  static const char produce_tag = 0, consume_tag = 0;
  TsanRelease(&produce_tag);
  TsanRelease(&consume_tag);
  try {
    tbb::parallel_pipeline(
        batches,
        tbb::make_filter<void, std::shared_ptr<Batch>>(
            tbb::filter_mode::serial_in_order,
            [&](tbb::flow_control& fc) -> std::shared_ptr<Batch> {
              TsanAcquire(&produce_tag);
              struct Done {
                const char* tag;
                ~Done() { TsanRelease(tag); }
              } done{&produce_tag};
              auto b = std::make_shared<Batch>();
              uint64_t to_read = 0;
              while (b->size() < 32 && to_read < (1u << 20)) {
                auto t = NextToken();
                if (!t) break;
                if (t->kind == Token::kItem && S_ISREG(t->st.st_mode) && !LooksUnchanged(*t))
                  to_read += static_cast<uint64_t>(t->st.st_size);
                b->push_back(std::move(*t));
              }
              if (b->empty()) {
                fc.stop();
                return nullptr;
              }
              TsanRelease(b.get());
              return b;
            }) &
            tbb::make_filter<std::shared_ptr<Batch>, std::shared_ptr<Batch>>(
                tbb::filter_mode::parallel,
                [&](std::shared_ptr<Batch> b) {
                  TsanAcquire(b.get());
                  for (Token& t : *b) Process(t);
                  TsanRelease(b.get());
                  return b;
                }) &
            tbb::make_filter<std::shared_ptr<Batch>, void>(tbb::filter_mode::serial_in_order,
                                                           [&](std::shared_ptr<Batch> b) {
                                                             TsanAcquire(b.get());
                                                             TsanAcquire(&consume_tag);
                                                             for (Token& t : *b) {
                                                               if (!build_error_.ok()) break;
                                                               build_error_ = Consume(t);
                                                             }
                                                             TsanRelease(&consume_tag);
                                                           }));
  } catch (const std::exception& e) {
    build_error_ = Status::IOError(std::string("backup pipeline failed: ") + e.what());
  }
  TsanAcquire(&produce_tag);
  TsanAcquire(&consume_tag);
  if (scanner.joinable()) scanner.join();
  HASHFS_RETURN_IF_ERROR(walk_error_);
  HASHFS_RETURN_IF_ERROR(build_error_);
  if (!root_) return Status::IOError("backup produced no root directory");

  std::vector<LinkRecord> records;
  for (auto& [id, r] : links_) records.push_back(std::move(r));
  Commit c;
  c.root = std::move(*root_);
  HASHFS_ASSIGN_OR_RETURN(c.links, link_table::Build(writer_, std::move(records)));
  if (head) c.parent = *head;
  c.time_ns = WallClockNs();
  c.description = opts_.description.empty()
                      ? fmt::format("backup of {}: {} new, {} changed, {} unchanged files", source_,
                                    report_.files_new, report_.files_changed, report_.files_unchanged)
                      : opts_.description;
  if (c.description.size() > kMaxDescriptionLength) c.description.resize(kMaxDescriptionLength);
  HASHFS_ASSIGN_OR_RETURN(report_.commit, writer_.Put(EncodeCommit(c), ObjectKind::kMeta));
  HASHFS_RETURN_IF_ERROR(writer_.Flush());

  for (int attempt = 0;; attempt++) {
    Status s = repo_.Advance(volume, head, report_.commit, session->epoch());
    if (s.ok()) break;
    if (s.code() != Status::Code::kStale || attempt >= 10) return s;
    // A garbage collection swept meanwhile: make sure nothing we reuse is gone.
    HASHFS_ASSIGN_OR_RETURN(uint64_t epoch, repo_.GcEpoch());
    Status complete = CheckComplete(repo_, repo_.getter(), report_.commit);
    if (!complete.ok())
      return complete.WithContext("a concurrent garbage collection removed data this backup reuses; run it again");
    session->set_epoch(epoch);
  }
  WriterStats ws = writer_.stats();
  report_.objects_added = ws.objects_added;
  report_.bytes_added = ws.stored_bytes_added;
  report_.bytes_read = progress_->bytes_read;
  return report_;
}

}  // namespace

Result<Inode> InodeFromHost(const std::string& path, const struct stat& st) {
  Inode n;
  n.type = TypeOf(st.st_mode);
  n.mode = st.st_mode & 07777;
  n.uid = st.st_uid;
  n.gid = st.st_gid;
  n.mtime_ns = Ns(st.st_mtim);
  n.ctime_ns = Ns(st.st_ctim);
  n.source_ino = st.st_ino;
  if (n.type == FileType::kCharDevice || n.type == FileType::kBlockDevice) n.rdev = st.st_rdev;
  if (n.type == FileType::kSymlink) {
    std::string target(std::max<size_t>(static_cast<size_t>(st.st_size), kMaxSymlinkLength) + 1, '\0');
    ssize_t r = readlink(path.c_str(), target.data(), target.size());
    if (r < 0) return Status::FromErrno(errno, "readlink");
    if (static_cast<size_t>(r) > kMaxSymlinkLength) return Status::InvalidArgument("symlink target too long");
    target.resize(static_cast<size_t>(r));
    n.symlink_target = std::move(target);
    n.size = n.symlink_target.size();
  }
  HASHFS_RETURN_IF_ERROR(ReadXattrs(path, &n.xattrs));
  return n;
}

Result<BackupReport> Backup(Repository& repo, const std::string& source, const std::string& volume,
                            const BackupOptions& opts, BackupProgress* progress) {
  std::string src = source;
  while (src.size() > 1 && src.back() == '/') src.pop_back();
  BackupRun run(repo, src, opts, progress);
  return run.Run(volume);
}

}  // namespace hashfs
