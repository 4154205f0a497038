// The chunk list of a regular file. Up to kMaxInlineChunks chunks are held in
// the inode itself; longer lists become a manifest tree of FileNode objects
// whose node boundaries are content-defined (a node ends after a reference
// whose digest's low 10 bits of Prefix64 are zero, or at 8192 references), so
// an edit to a huge file rewrites only nearby manifest nodes.
// Stateless and thread-safe.
#pragma once

#include <functional>
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
// Every chunk in order.
Result<std::vector<ChunkRef>> Chunks(const ObjectGetter& get, const Inode& inode);
// Calls fn for every manifest node digest of the inode (none when inline).
Status ForEachNode(const ObjectGetter& get, const Inode& inode, const std::function<Status(const Digest&)>& fn);
}  // namespace file_manifest

}  // namespace hashfs
