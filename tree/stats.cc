#include "tree/stats.h"

#include <unordered_map>

#include "cas/object_codec.h"
#include "tree/dir_tree.h"
#include "tree/walk.h"

namespace hashfs {
namespace {

// Logical bytes below directory trees, excluding hardlinked entries (those
// are counted once per commit from the link table). Memoized by the digest of
// every trie node, not only of every directory: commits that change one
// entry of a large directory share all but one path of its trie, so each
// distinct node is read and decoded once however many commits hold it.
class SizeCounter {
 public:
  explicit SizeCounter(ObjectGetter get) : get_(std::move(get)) {}

  // `root` is a directory's tree: its trie's root node.
  Result<uint64_t> TreeBytes(const Digest& root) {
    if (auto it = dirs_.find(root); it != dirs_.end()) return it->second;
    // One frame per trie node being summed; a leaf's subdirectory entry
    // pushes that directory's root node. Iterative: trees may be deep.
    struct Frame {
      Digest node_digest;
      DirNode node;
      size_t next = 0;
      uint64_t sum = 0;
      int dir_depth;   // 1 for the root directory
      int trie_depth;  // 0 for a directory's root node
    };
    std::vector<Frame> stack;
    auto push = [&](const Digest& d, int dir_depth, int trie_depth) -> Status {
      auto node = dir_tree::LoadNode(get_, d, trie_depth);
      if (!node.ok()) return node.status().WithContext("directory " + d.Hex());
      if (dir_depth > kMaxTreeDepth && (!node->entries.empty() || !node->children.empty()))
        return Status::Corruption("directory tree is deeper than " + std::to_string(kMaxTreeDepth) + " levels");
      stack.push_back(Frame{d, std::move(node).value(), 0, 0, dir_depth, trie_depth});
      return Status::Ok();
    };
    HASHFS_RETURN_IF_ERROR(push(root, 1, 0));
    for (;;) {
      Frame& top = stack.back();
      if (!top.node.leaf && top.next < top.node.children.size()) {
        const Digest child = top.node.children[top.next++].first;
        if (auto it = dirs_.find(child); it != dirs_.end())
          top.sum += it->second;
        else
          HASHFS_RETURN_IF_ERROR(push(child, top.dir_depth, top.trie_depth + 1));  // invalidates `top`
        continue;
      }
      if (top.node.leaf && top.next < top.node.entries.size()) {
        const Entry& e = top.node.entries[top.next++];
        if (e.link_id != 0) continue;
        if (e.inode.type == FileType::kRegular) {
          top.sum += e.inode.size;
        } else if (e.inode.type == FileType::kDirectory) {
          const Digest sub = e.inode.content;
          if (auto it = dirs_.find(sub); it != dirs_.end())
            top.sum += it->second;
          else
            HASHFS_RETURN_IF_ERROR(push(sub, top.dir_depth + 1, 0));  // invalidates `top`
        }
        continue;
      }
      uint64_t sum = top.sum;
      dirs_[top.node_digest] = sum;
      stack.pop_back();
      if (stack.empty()) return sum;
      stack.back().sum += sum;
    }
  }

  // Regular-file bytes of a link table (zero digest: empty), memoized by node.
  Result<uint64_t> LinkBytes(const Digest& links, int trie_depth = 0) {
    if (links.IsZero()) return uint64_t{0};
    if (auto it = links_.find(links); it != links_.end()) return it->second;
    auto node = link_table::LoadNode(get_, links, trie_depth);
    if (!node.ok()) return node.status().WithContext("link table " + links.Hex());
    uint64_t sum = 0;
    for (const auto& r : node->records)
      if (r.inode.type == FileType::kRegular) sum += r.inode.size;
    for (const auto& c : node->children) {
      HASHFS_ASSIGN_OR_RETURN(uint64_t s, LinkBytes(c.first, trie_depth + 1));
      sum += s;
    }
    links_[links] = sum;
    return sum;
  }

 private:
  ObjectGetter get_;
  std::unordered_map<Digest, uint64_t, DigestHash> dirs_;   // directory trie node -> bytes below it
  std::unordered_map<Digest, uint64_t, DigestHash> links_;  // link table trie node -> bytes below it
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
