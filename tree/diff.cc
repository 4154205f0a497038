#include "tree/diff.h"

#include <algorithm>
#include <set>

#include "tree/walk.h"

namespace hashfs {

char DiffKindChar(DiffEntry::Kind k) {
  switch (k) {
    case DiffEntry::kAdded: return 'A';
    case DiffEntry::kRemoved: return 'D';
    case DiffEntry::kModified: return 'M';
    case DiffEntry::kMetadata: return 'm';
  }
  return '?';
}

namespace {

bool MetadataDiffers(const Inode& a, const Inode& b) {
  return a.mode != b.mode || a.uid != b.uid || a.gid != b.gid || a.mtime_ns != b.mtime_ns || a.xattrs != b.xattrs;
}

// Same type assumed; directories compare their entry tree.
bool ContentDiffers(const Inode& a, const Inode& b) {
  switch (a.type) {
    case FileType::kRegular:
      if (a.size != b.size || a.layout != b.layout) return true;
      return a.layout == ContentLayout::kInline ? a.chunks != b.chunks : a.content != b.content;
    case FileType::kSymlink: return a.symlink_target != b.symlink_target;
    case FileType::kCharDevice:
    case FileType::kBlockDevice: return a.rdev != b.rdev;
    case FileType::kDirectory: return a.content != b.content;
    case FileType::kFifo:
    case FileType::kSocket: return false;
  }
  return true;
}

class Differ {
 public:
  Differ(ObjectGetter get, const Commit& a, const Commit& b)
      : get_(std::move(get)), a_(a), b_(b), ra_(get_, a.links), rb_(get_, b.links) {}

  Result<std::vector<DiffEntry>> Run() {
    if (a_.root.type != FileType::kDirectory || b_.root.type != FileType::kDirectory)
      return Status::Corruption("commit root is not a directory");
    HASHFS_RETURN_IF_ERROR(FindChangedLinks());
    if (MetadataDiffers(a_.root, b_.root)) Emit(DiffEntry::kMetadata, ".", FileType::kDirectory, 0, 0);
    if (a_.root.content != b_.root.content) {
      work_.push_back({a_.root.content, b_.root.content, "", 1});
    } else {
      HASHFS_RETURN_IF_ERROR(ScanChangedLinks(a_.root.content, "", 0));
    }
    while (!work_.empty()) {
      Work w = std::move(work_.back());
      work_.pop_back();
      HASHFS_RETURN_IF_ERROR(CompareDirs(w));
    }
    std::sort(out_.begin(), out_.end(), [](const DiffEntry& x, const DiffEntry& y) { return x.path < y.path; });
    return std::move(out_);
  }

 private:
  // Two directories to compare; `depth` is the depth of their entries.
  struct Work {
    Digest a, b;
    std::string path;
    int depth;
  };

  void Emit(DiffEntry::Kind k, std::string path, FileType t, uint64_t old_size, uint64_t new_size) {
    out_.push_back(DiffEntry{k, std::move(path), t, old_size, new_size});
  }

  // Link ids whose records differ between the two tables: entries naming
  // them may differ even inside directories whose digests are equal.
  Status FindChangedLinks() {
    if (a_.links == b_.links) return Status::Ok();
    HASHFS_ASSIGN_OR_RETURN(auto ta, LoadLinkTable(get_, a_.links));
    HASHFS_ASSIGN_OR_RETURN(auto tb, LoadLinkTable(get_, b_.links));
    for (const auto& [id, rec] : ta) {
      auto it = tb.find(id);
      if (it == tb.end() || !(it->second.inode == rec.inode)) changed_ids_.insert(id);
    }
    for (const auto& [id, rec] : tb)
      if (!ta.count(id)) changed_ids_.insert(id);
    return Status::Ok();
  }

  // Reports changed hardlinked files in a subtree that is equal on both sides.
  Status ScanChangedLinks(const Digest& dir, const std::string& path, int depth) {
    if (changed_ids_.empty()) return Status::Ok();
    return WalkDir(get_, ra_, dir, path, depth, [&](const WalkEntry& e, bool*) -> Status {
      if (e.link_id == 0 || !changed_ids_.count(e.link_id)) return Status::Ok();
      auto ib = rb_.Resolve(e.entry);
      if (!ib.ok()) return ib.status().WithContext(std::string(e.path));
      CompareInodes(e.inode, **ib, std::string(e.path));
      return Status::Ok();
    });
  }

  // Lists `dir` (an entry at `depth`) and everything below it as added or removed.
  Status ListAll(LinkResolver& r, const Digest& dir, const std::string& path, int depth, DiffEntry::Kind k) {
    return WalkDir(get_, r, dir, path, depth, [&](const WalkEntry& e, bool*) -> Status {
      uint64_t sz = e.inode.size;
      Emit(k, std::string(e.path), e.inode.type, k == DiffEntry::kRemoved ? sz : 0, k == DiffEntry::kAdded ? sz : 0);
      return Status::Ok();
    });
  }

  // Both sides are resolved and present at `path`; non-directories or a type change.
  void CompareInodes(const Inode& ia, const Inode& ib, std::string path) {
    if (ContentDiffers(ia, ib))
      Emit(DiffEntry::kModified, std::move(path), ib.type, ia.size, ib.size);
    else if (MetadataDiffers(ia, ib))
      Emit(DiffEntry::kMetadata, std::move(path), ib.type, ia.size, ib.size);
  }

  Status ComparePair(const Entry& ea, const Entry& eb, const std::string& dir_path, int depth) {
    if (ea == eb) {  // fast path: only a changed link record or links below can differ
      if (ea.link_id != 0) {
        if (!changed_ids_.count(ea.link_id)) return Status::Ok();
      } else if (ea.inode.type != FileType::kDirectory) {
        return Status::Ok();
      } else {
        return ScanChangedLinks(ea.inode.content, JoinPath(dir_path, ea.name), depth);
      }
    }
    std::string path = JoinPath(dir_path, ea.name);
    auto ra = ra_.Resolve(ea);
    if (!ra.ok()) return ra.status().WithContext(path);
    auto rb = rb_.Resolve(eb);
    if (!rb.ok()) return rb.status().WithContext(path);
    const Inode* ia = *ra;
    const Inode* ib = *rb;
    if (ia->type != ib->type) {
      Emit(DiffEntry::kModified, path, ib->type, ia->size, ib->size);
      if (ia->type == FileType::kDirectory) HASHFS_RETURN_IF_ERROR(ListAll(ra_, ia->content, path, depth, DiffEntry::kRemoved));
      if (ib->type == FileType::kDirectory) HASHFS_RETURN_IF_ERROR(ListAll(rb_, ib->content, path, depth, DiffEntry::kAdded));
      return Status::Ok();
    }
    if (ia->type != FileType::kDirectory) {
      CompareInodes(*ia, *ib, std::move(path));
      return Status::Ok();
    }
    if (MetadataDiffers(*ia, *ib)) Emit(DiffEntry::kMetadata, path, FileType::kDirectory, ia->size, ib->size);
    if (ia->content != ib->content) {
      work_.push_back({ia->content, ib->content, std::move(path), depth + 1});
      return Status::Ok();
    }
    return ScanChangedLinks(ia->content, path, depth);
  }

  Status CompareDirs(const Work& w) {
    auto la = dir_tree::ListSorted(get_, w.a);
    if (!la.ok()) return la.status().WithContext(w.path.empty() ? "." : w.path);
    auto lb = dir_tree::ListSorted(get_, w.b);
    if (!lb.ok()) return lb.status().WithContext(w.path.empty() ? "." : w.path);
    const std::vector<Entry>& ea = *la;
    const std::vector<Entry>& eb = *lb;
    if (w.depth > kMaxTreeDepth && !(ea.empty() && eb.empty()))
      return Status::Corruption("directory tree is deeper than " + std::to_string(kMaxTreeDepth) + " levels at '" +
                                w.path + "'");
    size_t i = 0, j = 0;
    while (i < ea.size() || j < eb.size()) {
      if (j == eb.size() || (i < ea.size() && ea[i].name < eb[j].name)) {
        HASHFS_RETURN_IF_ERROR(OneSide(ra_, ea[i++], w.path, w.depth, DiffEntry::kRemoved));
      } else if (i == ea.size() || eb[j].name < ea[i].name) {
        HASHFS_RETURN_IF_ERROR(OneSide(rb_, eb[j++], w.path, w.depth, DiffEntry::kAdded));
      } else {
        HASHFS_RETURN_IF_ERROR(ComparePair(ea[i++], eb[j++], w.path, w.depth));
      }
    }
    return Status::Ok();
  }

  Status OneSide(LinkResolver& r, const Entry& e, const std::string& dir_path, int depth, DiffEntry::Kind k) {
    std::string path = JoinPath(dir_path, e.name);
    auto resolved = r.Resolve(e);
    if (!resolved.ok()) return resolved.status().WithContext(path);
    const Inode* in = *resolved;
    Emit(k, path, in->type, k == DiffEntry::kRemoved ? in->size : 0, k == DiffEntry::kAdded ? in->size : 0);
    if (in->type == FileType::kDirectory) return ListAll(r, in->content, path, depth, k);
    return Status::Ok();
  }

  ObjectGetter get_;
  const Commit& a_;
  const Commit& b_;
  LinkResolver ra_, rb_;
  std::set<uint64_t> changed_ids_;
  std::vector<Work> work_;
  std::vector<DiffEntry> out_;
};

}  // namespace

Result<std::vector<DiffEntry>> DiffCommits(Repository& repo, const Commit& a, const Commit& b) {
  Differ d(repo.getter(), a, b);
  return d.Run();
}

}  // namespace hashfs
