// Canonical byte encoding of tree objects (cereal portable binary, little
// endian), specified in design.md. Encode is a pure function: equal values give
// equal bytes. Decode never crashes, never allocates more than the input can
// hold, and reports malformed input as Corruption. Thread-safe.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "cas/status.h"
#include "tree/types.h"

namespace hashfs {

// The 4-byte prefix of every encoded tree object: 'h' 'f' <type> <version>.
enum class ObjectType : char {
  kDirNode = 'D',
  kFileNode = 'F',
  kLinkNode = 'L',
  kCommit = 'C',
};
inline constexpr char kCodecVersion = 1;

// Directory and link-table trees (dir_tree.h) are hash-array-mapped tries:
// a node is a leaf holding items, or an internal node with up to 16 children.
struct DirNode {
  bool leaf = true;
  std::vector<Entry> entries;  // leaf: sorted by name
  uint16_t bitmap = 0;         // internal: which of the 16 children exist
  std::vector<std::pair<Digest, uint64_t>> children;  // internal: (node, item count)
};
struct LinkNode {
  bool leaf = true;
  std::vector<LinkRecord> records;  // leaf: sorted by id
  uint16_t bitmap = 0;
  std::vector<std::pair<Digest, uint64_t>> children;
};
// File manifest tree node (file_manifest.h): level 0 lists chunks, higher
// levels list child nodes with the byte length each covers.
struct FileNode {
  uint8_t level = 0;
  std::vector<ChunkRef> refs;
};

std::string EncodeDirNode(const DirNode& n);
Result<DirNode> DecodeDirNode(std::string_view bytes);
std::string EncodeLinkNode(const LinkNode& n);
Result<LinkNode> DecodeLinkNode(std::string_view bytes);
std::string EncodeFileNode(const FileNode& n);
Result<FileNode> DecodeFileNode(std::string_view bytes);
std::string EncodeCommit(const Commit& c);
Result<Commit> DecodeCommit(std::string_view bytes);

}  // namespace hashfs
