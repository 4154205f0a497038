#include "tree/file_manifest.h"

#include <limits>

namespace hashfs::file_manifest {
namespace {

constexpr size_t kNodeMaxRefs = 8192;
constexpr uint64_t kBoundaryMask = 1023;

bool IsBoundary(const ChunkRef& r) { return (r.digest.Prefix64() & kBoundaryMask) == 0; }

Status Walk(const ObjectGetter& get, const Digest& d, int expect_level, uint64_t* offset, uint64_t limit,
            const std::function<Status(const ChunkRef&, uint64_t)>* chunk_fn,
            const std::function<Status(const Digest&)>* node_fn, const ChunkWalker* walker = nullptr) {
  if (node_fn) HASHFS_RETURN_IF_ERROR((*node_fn)(d));
  HASHFS_ASSIGN_OR_RETURN(std::string bytes, get(d));
  auto node = DecodeFileNode(bytes);
  if (!node.ok()) return node.status().WithContext("manifest " + d.Hex());
  if (expect_level >= 0 && node->level != expect_level)
    return Status::Corruption("manifest " + d.Hex() + " has the wrong level");
  for (const auto& r : node->refs) {
    if (node->level == 0) {
      if (chunk_fn) HASHFS_RETURN_IF_ERROR((*chunk_fn)(r, *offset));
      *offset += r.size;
      if (*offset > limit) return Status::Corruption("manifest " + d.Hex() + " is longer than its file");
    } else {
      uint64_t before = *offset;
      if (walker && walker->enter && !walker->enter(r.digest, *offset, r.size)) {
        if (r.size > limit - *offset) return Status::Corruption("manifest " + d.Hex() + " is longer than its file");
        *offset += r.size;
        continue;
      }
      HASHFS_RETURN_IF_ERROR(Walk(get, r.digest, node->level - 1, offset, limit, chunk_fn, node_fn, walker));
      if (*offset - before != r.size) return Status::Corruption("manifest " + d.Hex() + " has a wrong subtree size");
      if (walker && walker->leave) walker->leave(r.digest);
    }
  }
  return Status::Ok();
}

// The bytes under node d (of level expect_level, or any when -1), reading
// each node not in memo once.
Result<uint64_t> CheckNode(const ObjectGetter& get, const Digest& d, int expect_level, NodeMemo* memo,
                           const std::function<Status(const ChunkRef&)>& fn) {
  if (auto it = memo->find(d); it != memo->end()) {
    if (expect_level >= 0 && it->second.level != expect_level)
      return Status::Corruption("manifest " + d.Hex() + " has the wrong level");
    return it->second.size;
  }
  HASHFS_ASSIGN_OR_RETURN(std::string bytes, get(d));
  auto node = DecodeFileNode(bytes);
  if (!node.ok()) return node.status().WithContext("manifest " + d.Hex());
  if (expect_level >= 0 && node->level != expect_level)
    return Status::Corruption("manifest " + d.Hex() + " has the wrong level");
  uint64_t total = 0;
  for (const auto& r : node->refs) {
    uint64_t size = r.size;
    if (node->level == 0) {
      HASHFS_RETURN_IF_ERROR(fn(r));
    } else {
      HASHFS_ASSIGN_OR_RETURN(size, CheckNode(get, r.digest, node->level - 1, memo, fn));
      if (size != r.size) return Status::Corruption("manifest " + d.Hex() + " has a wrong subtree size");
    }
    if (size > std::numeric_limits<uint64_t>::max() - total)
      return Status::Corruption("manifest " + d.Hex() + " is longer than any file");
    total += size;
  }
  memo->emplace(d, NodeSummary{node->level, total});
  return total;
}

}  // namespace

Status SetContent(ObjectWriter& w, std::vector<ChunkRef> chunks, Inode* inode) {
  uint64_t total = 0;
  for (const auto& c : chunks) total += c.size;
  inode->size = total;
  if (chunks.size() <= kMaxInlineChunks) {
    inode->layout = ContentLayout::kInline;
    inode->content = Digest{};
    inode->chunks = std::move(chunks);
    return Status::Ok();
  }
  inode->layout = ContentLayout::kManifest;
  inode->chunks.clear();
  std::vector<ChunkRef> level_refs = std::move(chunks);
  for (uint8_t level = 0;; level++) {
    std::vector<ChunkRef> parents;
    FileNode node;
    node.level = level;
    uint64_t bytes = 0;
    auto flush = [&]() -> Status {
      HASHFS_ASSIGN_OR_RETURN(Digest d, w.Put(EncodeFileNode(node), ObjectKind::kMeta));
      parents.push_back({d, bytes});
      node.refs.clear();
      bytes = 0;
      return Status::Ok();
    };
    for (const auto& r : level_refs) {
      node.refs.push_back(r);
      bytes += r.size;
      if (IsBoundary(r) || node.refs.size() >= kNodeMaxRefs) HASHFS_RETURN_IF_ERROR(flush());
    }
    if (!node.refs.empty()) HASHFS_RETURN_IF_ERROR(flush());
    if (parents.size() == 1) {
      inode->content = parents[0].digest;
      return Status::Ok();
    }
    level_refs = std::move(parents);
  }
}

Status ForEachChunk(const ObjectGetter& get, const Inode& inode,
                    const std::function<Status(const ChunkRef&, uint64_t)>& fn) {
  ChunkWalker walker;
  walker.chunk = fn;
  return WalkChunks(get, inode, walker);
}

Status WalkChunks(const ObjectGetter& get, const Inode& inode, const ChunkWalker& walker) {
  if (inode.type != FileType::kRegular) return Status::InvalidArgument("not a regular file");
  uint64_t offset = 0;
  if (inode.layout == ContentLayout::kInline) {
    for (const auto& c : inode.chunks) {
      HASHFS_RETURN_IF_ERROR(walker.chunk(c, offset));
      offset += c.size;
    }
  } else {
    if (walker.enter && !walker.enter(inode.content, 0, inode.size)) return Status::Ok();
    HASHFS_RETURN_IF_ERROR(Walk(get, inode.content, -1, &offset, inode.size, &walker.chunk, nullptr, &walker));
  }
  if (offset != inode.size) return Status::Corruption("file content length differs from its size");
  if (inode.layout != ContentLayout::kInline && walker.leave) walker.leave(inode.content);
  return Status::Ok();
}

Result<std::vector<ChunkRef>> Chunks(const ObjectGetter& get, const Inode& inode) {
  std::vector<ChunkRef> out;
  HASHFS_RETURN_IF_ERROR(ForEachChunk(get, inode, [&](const ChunkRef& c, uint64_t) {
    out.push_back(c);
    return Status::Ok();
  }));
  return out;
}

Status ForEachNode(const ObjectGetter& get, const Inode& inode, const std::function<Status(const Digest&)>& fn) {
  if (inode.type != FileType::kRegular || inode.layout == ContentLayout::kInline) return Status::Ok();
  uint64_t offset = 0;
  return Walk(get, inode.content, -1, &offset, inode.size, nullptr, &fn);
}

Status CheckDistinctNodes(const ObjectGetter& get, const Inode& inode, NodeMemo* memo,
                          const std::function<Status(const ChunkRef&)>& fn) {
  if (inode.type != FileType::kRegular) return Status::InvalidArgument("not a regular file");
  uint64_t size = 0;
  if (inode.layout == ContentLayout::kInline) {
    for (const auto& c : inode.chunks) {
      HASHFS_RETURN_IF_ERROR(fn(c));
      if (c.size > std::numeric_limits<uint64_t>::max() - size)
        return Status::Corruption("file content length differs from its size");
      size += c.size;
    }
  } else {
    HASHFS_ASSIGN_OR_RETURN(size, CheckNode(get, inode.content, -1, memo, fn));
  }
  if (size != inode.size) return Status::Corruption("file content length differs from its size");
  return Status::Ok();
}

}  // namespace hashfs::file_manifest
