#include "tree/stats.h"

#include <unordered_map>

#include "cas/object_codec.h"
#include "tree/walk.h"

namespace hashfs {
namespace {

// Logical bytes below directory trees, excluding hardlinked entries (those
// are counted once per commit from the link table). Memoized by digest.
class SizeCounter {
 public:
  explicit SizeCounter(ObjectGetter get) : get_(std::move(get)) {}

  Result<uint64_t> TreeBytes(const Digest& root) {
    if (auto it = dirs_.find(root); it != dirs_.end()) return it->second;
    struct Frame {
      Digest dir;
      std::vector<Entry> entries;
      size_t next = 0;
      uint64_t sum = 0;
    };
    std::vector<Frame> stack;
    auto open = [&](const Digest& d) -> Status {
      auto entries = dir_tree::ListSorted(get_, d);
      if (!entries.ok()) return entries.status().WithContext("directory " + d.Hex());
      if (stack.size() >= static_cast<size_t>(kMaxTreeDepth) && !entries->empty())
        return Status::Corruption("directory tree is deeper than " + std::to_string(kMaxTreeDepth) + " levels");
      stack.push_back(Frame{d, std::move(entries).value(), 0, 0});
      return Status::Ok();
    };
    HASHFS_RETURN_IF_ERROR(open(root));
    for (;;) {
      Frame& top = stack.back();
      if (top.next < top.entries.size()) {
        const Entry& e = top.entries[top.next++];
        if (e.link_id != 0) continue;
        if (e.inode.type == FileType::kRegular) {
          top.sum += e.inode.size;
        } else if (e.inode.type == FileType::kDirectory) {
          if (auto it = dirs_.find(e.inode.content); it != dirs_.end())
            top.sum += it->second;
          else
            HASHFS_RETURN_IF_ERROR(open(e.inode.content));  // invalidates `top`
        }
        continue;
      }
      uint64_t sum = top.sum;
      dirs_[top.dir] = sum;
      stack.pop_back();
      if (stack.empty()) return sum;
      stack.back().sum += sum;
    }
  }

  Result<uint64_t> LinkBytes(const Digest& links) {
    if (links.IsZero()) return uint64_t{0};
    if (auto it = links_.find(links); it != links_.end()) return it->second;
    uint64_t sum = 0;
    HASHFS_RETURN_IF_ERROR(link_table::ForEach(get_, links, [&](const LinkRecord& r) {
      if (r.inode.type == FileType::kRegular) sum += r.inode.size;
      return Status::Ok();
    }));
    links_[links] = sum;
    return sum;
  }

 private:
  ObjectGetter get_;
  std::unordered_map<Digest, uint64_t, DigestHash> dirs_;
  std::unordered_map<Digest, uint64_t, DigestHash> links_;
};

}  // namespace

Result<StoreStats> ComputeStats(Repository& repo) {
  StoreStats st;
  ObjectStore& store = repo.store();
  HASHFS_RETURN_IF_ERROR(store.ForEachObject([&](const Digest&, std::string_view stored) {
    st.objects++;
    st.stored_bytes += stored.size();
    auto info = ParseStoredHeader(stored);
    if (!info.ok()) return Status::Ok();  // counted; verify reports it
    if (info->kind == ObjectKind::kData) {
      st.data_objects++;
      st.unique_data_bytes += info->plain_size;
    } else {
      st.meta_objects++;
    }
    st.unique_bytes += info->plain_size;
    return Status::Ok();
  }));
  st.disk_bytes = store.DiskBytes();

  HASHFS_ASSIGN_OR_RETURN(auto volumes, repo.Volumes());
  st.volumes = volumes.size();
  HASHFS_ASSIGN_OR_RETURN(auto snaps, repo.Snapshots());
  st.snapshots = snaps.size();
  HASHFS_ASSIGN_OR_RETURN(auto kept, repo.KeptCommits());
  st.commits = kept.size();

  SizeCounter sizes(repo.getter());
  for (const auto& id : kept) {
    std::string ctx = "commit " + id.Hex();
    auto c = repo.LoadCommit(id);
    if (!c.ok()) return c.status().WithContext(ctx);
    if (c->root.type != FileType::kDirectory) return Status::Corruption(ctx + ": root is not a directory");
    auto tree = sizes.TreeBytes(c->root.content);
    if (!tree.ok()) return tree.status().WithContext(ctx);
    auto links = sizes.LinkBytes(c->links);
    if (!links.ok()) return links.status().WithContext(ctx);
    st.logical_bytes += *tree + *links;
  }
  if (st.unique_data_bytes) st.dedupe_ratio = static_cast<double>(st.logical_bytes) / st.unique_data_bytes;
  if (st.stored_bytes) st.compression_ratio = static_cast<double>(st.unique_bytes) / st.stored_bytes;
  return st;
}

}  // namespace hashfs
