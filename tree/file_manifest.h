// The chunk list of a regular file. Up to kMaxInlineChunks chunks are held in
// the inode itself; longer lists become a manifest tree of FileNode objects
// whose node boundaries are content-defined (a node ends after a reference
// whose digest's low 10 bits of Prefix64 are zero, or at 8192 references), so
// an edit to a huge file rewrites only nearby manifest nodes.
// Stateless and thread-safe.
#pragma once

#include <functional>
#include <unordered_map>
#include <vector>

#include "tree/dir_tree.h"

namespace hashfs {

namespace file_manifest {
// Sets inode->layout/chunks/content/size from `chunks`, writing manifest
// nodes through w when the list is long.
Status SetContent(ObjectWriter& w, std::vector<ChunkRef> chunks, Inode* inode);
// Calls fn(chunk, file_offset) for every chunk in order.
Status ForEachChunk(const ObjectGetter& get, const Inode& inode,
                    const std::function<Status(const ChunkRef&, uint64_t offset)>& fn);
// ForEachChunk that may skip manifest subtrees. enter(node, offset, size) is
// called before each manifest node's subtree is walked (the root too):
// false skips it (its bytes count as walked; nothing in it is read or
// checked), true walks it, and leave(node) is called once it was walked
// whole. Either may be empty. For readers that meet the same nodes again,
// e.g. restore skipping a subtree it found to be holes.
struct ChunkWalker {
  std::function<bool(const Digest& node, uint64_t offset, uint64_t size)> enter;
  std::function<void(const Digest& node)> leave;
  std::function<Status(const ChunkRef&, uint64_t offset)> chunk;
};
Status WalkChunks(const ObjectGetter& get, const Inode& inode, const ChunkWalker& walker);
// Every chunk in order.
Result<std::vector<ChunkRef>> Chunks(const ObjectGetter& get, const Inode& inode);
// Calls fn for every manifest node digest of the inode (none when inline).
Status ForEachNode(const ObjectGetter& get, const Inode& inode, const std::function<Status(const Digest&)>& fn);

// What CheckDistinctNodes learned about a manifest node: its level and the
// bytes its subtree holds.
struct NodeSummary {
  int level;
  uint64_t size;
};
using NodeMemo = std::unordered_map<Digest, NodeSummary, DigestHash>;
// Checks the inode's chunk list as ForEachChunk would (every node decodes,
// has the level its parent implies, every subtree adds up to the size its
// parent gives, the whole to the file's size), but reads each distinct node
// once: nodes may repeat (a file of zeros repeats them; a crafted manifest
// can claim 2^39 chunks in a few objects), so the cost is the number of
// distinct nodes and their references, not of chunks. fn is called for every
// reference of every distinct level-0 node (and every inline chunk). memo
// holds nodes already checked, and may be shared across files.
Status CheckDistinctNodes(const ObjectGetter& get, const Inode& inode, NodeMemo* memo,
                          const std::function<Status(const ChunkRef&)>& fn);
}  // namespace file_manifest

}  // namespace hashfs
