#include "tree/gc.h"

#include <algorithm>
#include <ctime>
#include <optional>
#include <unordered_map>

#include "tree/walk.h"

namespace hashfs {
namespace {

constexpr int kMaxSweepRetries = 10;
constexpr size_t kMaxMissingListed = 10;

// Marks everything commits reach. Tolerant mode (GC) records missing or
// undecodable objects as problems and goes on; strict mode (CheckComplete)
// returns the first one. Uses an explicit work stack, never recursion, and
// expands every tree node at most once per interpretation (a data chunk that
// happens to equal a node's bytes does not stop that node's expansion).
class Marker {
 public:
  enum Flag : uint8_t {
    kReached = 1,
    kCommitDone = 2,
    kDirDone = 4,
    kLinkDone = 8,
    kFileDone = 16,
    kChecked = 32,   // chunk existence checked (strict mode)
    kSeen = 64,      // present in the store during the current sweep
    kReported = 128  // already named in problems
  };
  using ChunkCheck = std::function<Status(const Digest&, const std::string& path)>;

  Marker(ObjectGetter get, bool tolerant, ChunkCheck check = {})
      : get_(std::move(get)), tolerant_(tolerant), check_(std::move(check)) {}

  Status MarkCommit(const Digest& c) {
    if (!Expand(c, kCommitDone)) return Status::Ok();
    ctx_ = "commit " + c.Hex().substr(0, 12);
    auto bytes = get_(c);
    if (!bytes.ok()) return Problem(c, bytes.status(), "");
    auto commit = DecodeCommit(*bytes);
    if (!commit.ok()) return Problem(c, commit.status(), "");
    if (commit->root.type != FileType::kDirectory)
      return Problem(c, Status::Corruption("commit root is not a directory"), "");
    work_.push_back({Work::kDir, commit->root.content, -1, ""});
    if (!commit->links.IsZero()) work_.push_back({Work::kLink, commit->links, -1, ""});
    return Drain();
  }

  bool CommitDone(const Digest& d) const {
    auto it = flags_.find(d);
    return it != flags_.end() && (it->second & kCommitDone);
  }
  std::unordered_map<Digest, uint8_t, DigestHash>& flags() { return flags_; }
  std::vector<std::string>& problems() { return problems_; }

 private:
  struct Work {
    enum What { kDir, kLink, kFile } what;
    Digest d;
    int level;         // kFile: expected manifest level (-1: any)
    std::string path;  // the directory or file the node belongs to
  };

  // Marks d reached; true if it was not yet expanded as `done`.
  bool Expand(const Digest& d, uint8_t done) {
    uint8_t& f = flags_[d];
    if (!(f & kReached) && newly_) newly_->push_back(d);
    f |= kReached;
    if (f & done) return false;
    f |= done;
    return true;
  }

  Status Problem(const Digest& d, const Status& s, std::string_view path) {
    std::string where = ctx_;
    if (!path.empty()) where += ": " + std::string(path);
    if (!tolerant_ || (!s.IsNotFound() && !s.IsCorruption())) return s.WithContext(where);
    flags_[d] |= kReported;
    if (unfetched_ok_ && s.IsNotFound()) {
      not_fetched_++;
      return Status::Ok();
    }
    problems_.push_back(where + ": " + s.message());
    return Status::Ok();
  }

  Status MarkChunk(const ChunkRef& c, const std::string& path) {
    uint8_t& f = flags_[c.digest];
    if (!(f & kReached) && newly_) newly_->push_back(c.digest);
    f |= kReached;
    if (check_ && !(f & kChecked)) {
      f |= kChecked;
      HASHFS_RETURN_IF_ERROR(check_(c.digest, path));
    }
    return Status::Ok();
  }

  Status MarkContent(const Inode& in, const std::string& path) {
    if (in.type == FileType::kDirectory) {
      work_.push_back({Work::kDir, in.content, -1, path});
    } else if (in.type == FileType::kRegular) {
      if (in.layout == ContentLayout::kInline) {
        for (const auto& c : in.chunks) HASHFS_RETURN_IF_ERROR(MarkChunk(c, path));
      } else {
        work_.push_back({Work::kFile, in.content, -1, path});
      }
    }
    return Status::Ok();
  }

  Status Drain() {
    while (!work_.empty()) {
      Work w = std::move(work_.back());
      work_.pop_back();
      uint8_t done = w.what == Work::kDir ? kDirDone : w.what == Work::kLink ? kLinkDone : kFileDone;
      if (!Expand(w.d, done)) continue;
      std::string_view where = w.what == Work::kLink ? std::string_view("link table")
                               : w.path.empty()      ? std::string_view(".")
                                                     : std::string_view(w.path);
      auto bytes = get_(w.d);
      if (!bytes.ok()) {
        HASHFS_RETURN_IF_ERROR(Problem(w.d, bytes.status(), where));
        continue;
      }
      switch (w.what) {
        case Work::kDir: {
          auto n = DecodeDirNode(*bytes);
          if (!n.ok()) {
            HASHFS_RETURN_IF_ERROR(Problem(w.d, n.status().WithContext("directory node " + w.d.Hex()), where));
            continue;
          }
          for (const auto& e : n->entries)
            if (e.link_id == 0) HASHFS_RETURN_IF_ERROR(MarkContent(e.inode, JoinPath(w.path, e.name)));
          for (const auto& c : n->children) work_.push_back({Work::kDir, c.first, -1, w.path});
          break;
        }
        case Work::kLink: {
          auto n = DecodeLinkNode(*bytes);
          if (!n.ok()) {
            HASHFS_RETURN_IF_ERROR(Problem(w.d, n.status().WithContext("link node " + w.d.Hex()), where));
            continue;
          }
          for (const auto& r : n->records)
            HASHFS_RETURN_IF_ERROR(MarkContent(r.inode, "hardlink record " + std::to_string(r.id)));
          for (const auto& c : n->children) work_.push_back({Work::kLink, c.first, -1, w.path});
          break;
        }
        case Work::kFile: {
          auto n = DecodeFileNode(*bytes);
          if (!n.ok()) {
            HASHFS_RETURN_IF_ERROR(Problem(w.d, n.status().WithContext("manifest " + w.d.Hex()), where));
            continue;
          }
          if (w.level >= 0 && n->level != w.level)
            HASHFS_RETURN_IF_ERROR(
                Problem(w.d, Status::Corruption("manifest " + w.d.Hex() + " has the wrong level"), where));
          for (const auto& r : n->refs) {
            if (n->level == 0)
              HASHFS_RETURN_IF_ERROR(MarkChunk(r, w.path));
            else
              work_.push_back({Work::kFile, r.digest, n->level - 1, w.path});
          }
          break;
        }
      }
    }
    return Status::Ok();
  }

  ObjectGetter get_;
  bool tolerant_;
  bool unfetched_ok_ = false;
  uint64_t not_fetched_ = 0;

 public:
  void set_unfetched_ok(bool v) { unfetched_ok_ = v; }
  // While set, every digest marked reached for the first time is appended.
  void set_newly_reached(std::vector<Digest>* v) { newly_ = v; }
  uint64_t not_fetched() const { return not_fetched_; }

 private:
  ChunkCheck check_;
  std::vector<Digest>* newly_ = nullptr;
  std::string ctx_;
  std::vector<Work> work_;
  std::unordered_map<Digest, uint8_t, DigestHash> flags_;
  std::vector<std::string> problems_;
};

Status MarkRoots(Repository& repo, Marker& m) {
  HASHFS_ASSIGN_OR_RETURN(auto roots, repo.KeptCommits());
  for (const auto& r : roots) HASHFS_RETURN_IF_ERROR(m.MarkCommit(r));
  HASHFS_ASSIGN_OR_RETURN(auto pinned, repo.PinnedCommits());
  for (const auto& r : pinned) HASHFS_RETURN_IF_ERROR(m.MarkCommit(r));
  return Status::Ok();
}

// Sweep counters. The store may rerun the sweep transaction (e.g. after
// growing its map), so they restart whenever the digest order restarts and
// are taken as final by then_fn.
struct SweepCounters {
  uint64_t reachable = 0, deleted_bytes = 0, kept_young = 0;
  std::optional<Digest> last;
  // Unmarked objects this sweep deletes / keeps as young, in scan order.
  std::vector<Digest> deleted, young;
};

}  // namespace

Result<GcReport> CollectGarbage(Repository& repo, const GcOptions& opts) {
  const int64_t start = static_cast<int64_t>(std::time(nullptr));
  // A sweep rewrites much of the store's index: on damaged B-trees (or a
  // free list that hands out pages still in use) it would spread the damage.
  HASHFS_ASSIGN_OR_RETURN(StructureCheck structure, repo.store().CheckStructure());
  if (!structure.problems.empty())
    return Status::Corruption("the store file is damaged (" + structure.problems[0] +
                              "); gc does not write to a damaged store ('hashfs verify' lists the damage)");
  HASHFS_ASSIGN_OR_RETURN(auto sessions, LiveSessionStarts(repo));
  int64_t cutoff = start;
  for (int64_t s : sessions) cutoff = std::min(cutoff, s);
  cutoff -= 2;

  Marker m(repo.getter(), /*tolerant=*/true);
  m.set_unfetched_ok(opts.missing_is_unfetched);
  HASHFS_RETURN_IF_ERROR(MarkRoots(repo, m));

  GcReport report;
  auto& flags = m.flags();
  SweepCounters cur, final_counts;
  auto should_delete = [&](const Digest& d, const ObjectInfo& info) -> bool {
    if (cur.last && !(*cur.last < d)) {  // the scan restarted
      cur = SweepCounters{};
      for (auto& [k, f] : flags) f &= static_cast<uint8_t>(~Marker::kSeen);
    }
    cur.last = d;
    auto it = flags.find(d);
    if (it != flags.end() && (it->second & Marker::kReached)) {
      it->second |= Marker::kSeen;
      cur.reachable++;
      return false;
    }
    if (static_cast<int64_t>(info.write_time) < cutoff) {
      cur.deleted_bytes += info.stored_size;
      cur.deleted.push_back(d);
      return true;
    }
    cur.kept_young++;
    cur.young.push_back(d);
    return false;
  };
  // Roots that appeared after marking (a mount or backup committed
  // meanwhile) are marked here, inside the sweep's transaction, where no
  // writer can add more. Reads see the store as before this sweep. Only if a
  // new root reaches an object this sweep deletes (e.g. a revert to a commit
  // `forget` dropped) is the sweep abandoned and retried.
  auto then_fn = [&](RefTxn& t) -> Status {
    std::vector<Digest> fresh;
    for (std::string_view prefix : {"hist/", "snap/", "pin/"}) {
      HASHFS_ASSIGN_OR_RETURN(auto kv, t.List(prefix));
      for (const auto& [k, v] : kv) {
        if (v.size() < Digest::kSize) return Status::Corruption("ref " + k + " is malformed");
        HASHFS_ASSIGN_OR_RETURN(Digest d, Digest::FromBytes(std::string_view(v).substr(0, Digest::kSize)));
        if (!m.CommitDone(d)) fresh.push_back(d);
      }
    }
    if (!fresh.empty()) {
      report.late_roots += fresh.size();
      for (auto* v : {&cur.deleted, &cur.young})
        if (!std::is_sorted(v->begin(), v->end())) std::sort(v->begin(), v->end());
      std::vector<Digest> newly;
      m.set_newly_reached(&newly);
      Status s;
      for (const auto& d : fresh)
        if (!(s = m.MarkCommit(d)).ok()) break;
      m.set_newly_reached(nullptr);
      HASHFS_RETURN_IF_ERROR(s);
      for (const auto& d : newly) {
        if (std::binary_search(cur.deleted.begin(), cur.deleted.end(), d))
          return Status::Stale("a commit kept during garbage collection reaches object " + d.Hex() +
                               ", which the sweep was deleting");
        if (std::binary_search(cur.young.begin(), cur.young.end(), d)) {
          flags[d] |= Marker::kSeen;
          cur.reachable++;
          cur.kept_young--;
        }
      }
    }
    final_counts = std::move(cur);
    cur = SweepCounters{};
    HASHFS_ASSIGN_OR_RETURN(auto ep, t.Get("gc/epoch"));
    return t.Put("gc/epoch", EncodeBE64((ep ? DecodeBE64(*ep) : 0) + 1));
  };

  uint64_t deleted = 0;
  for (int attempt = 0;; attempt++) {
    for (auto& [k, f] : flags) f &= static_cast<uint8_t>(~Marker::kSeen);
    cur = SweepCounters{};
    report.sweeps++;
    Status s = repo.store().Sweep(should_delete, then_fn, &deleted);
    if (s.ok()) break;
    if (s.code() != Status::Code::kStale || attempt >= kMaxSweepRetries) return s;
    HASHFS_RETURN_IF_ERROR(MarkRoots(repo, m));
  }

  report.reachable = final_counts.reachable;
  report.deleted = deleted;
  report.deleted_bytes = final_counts.deleted_bytes;
  report.kept_young = final_counts.kept_young;
  report.problems = std::move(m.problems());
  report.not_fetched = m.not_fetched();
  size_t missing = 0;
  for (const auto& [d, f] : flags) {
    if (!(f & Marker::kReached) || (f & (Marker::kSeen | Marker::kReported))) continue;
    if (opts.missing_is_unfetched) {
      report.not_fetched++;
      continue;
    }
    if (missing++ < kMaxMissingListed) report.problems.push_back("object " + d.Hex() + " is reachable but missing");
  }
  if (missing > kMaxMissingListed)
    report.problems.push_back(std::to_string(missing - kMaxMissingListed) + " more reachable objects are missing");
  return report;
}

Status CheckComplete(Repository& repo, ObjectGetter get, const Digest& commit) {
  ObjectStore& store = repo.store();
  auto check = [&store, &get](const Digest& d, const std::string& path) -> Status {
    HASHFS_ASSIGN_OR_RETURN(bool present, store.Contains(d));
    if (present) return Status::Ok();
    auto bytes = get(d);  // it may still be queued in a writer
    if (bytes.ok()) return Status::Ok();
    if (bytes.status().IsNotFound())
      return Status::NotFound("data object " + d.Hex() + " of '" + (path.empty() ? "." : path) + "' is missing");
    return bytes.status();
  };
  Marker m(get, /*tolerant=*/false, check);
  Status s = m.MarkCommit(commit);
  return s;
}

}  // namespace hashfs
