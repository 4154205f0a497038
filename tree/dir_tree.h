// Directory entry trees and link tables: canonical hash-array-mapped tries.
//
// A node holding at most kHamtLeafMax items whose leaf encoding is at most
// kHamtLeafMaxBytes is a leaf (items sorted by key); any other node is an
// internal node with up to 16 children chosen by the next 4 bits of the key's
// hash (SHA-256 of the key, most significant bits first), except at depth
// kMaxTrieDepth, where every node is a leaf. The shape depends only on the set
// of items, so equal directories have equal digests, and changing one entry
// rewrites one path of nodes: O(log n) nodes of at most kHamtLeafMaxBytes.
// Keys: an entry's name; a link record's id as 8 big-endian bytes.
// Functions are stateless and thread-safe given thread-safe reader/writer.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tree/codec.h"
#include "tree/object_writer.h"

namespace hashfs {

inline constexpr size_t kHamtLeafMax = 512;
// Leaves are also bounded in bytes, so a directory whose entries carry large
// xattrs is split too: no edit rewrites more than this per node, and every
// node fits one remote attachment at Discord's 10 MiB. No directory without
// xattrs reaches it (512 entries of the largest other encoding are about
// 2.5 MiB; a static_assert in dir_tree.cc checks it), so their shape is the
// one the count alone gives.
inline constexpr size_t kHamtLeafMaxBytes = 4u << 20;
// Deepest trie level: the 16 nibbles of a 64-bit hash prefix. A deeper node
// is corruption.
inline constexpr int kMaxTrieDepth = 16;

// Reads objects: an ObjectStore, or an ObjectWriter (read-your-writes).
using ObjectGetter = std::function<Result<std::string>(const Digest&)>;
ObjectGetter GetterFor(ObjectStore& s);
ObjectGetter GetterFor(ObjectWriter& w);

struct DirEdit {
  std::string name;
  std::optional<Entry> entry;  // nullopt: remove the name (absent: no-op)
};
struct LinkEdit {
  uint64_t id = 0;
  std::optional<LinkRecord> record;
};

// Decoded directory-tree nodes by digest, least recently used out first,
// bounded by an estimate of their memory (4x the encoded size). Objects are
// immutable, so an entry is never stale. A mount keeps one so that commits
// editing the same leaves, and lookups of names, skip reading, verifying
// and decoding them again. Thread-safe.
class DirNodeCache {
 public:
  explicit DirNodeCache(size_t max_bytes);
  ~DirNodeCache();
  DirNodeCache(const DirNodeCache&) = delete;
  DirNodeCache& operator=(const DirNodeCache&) = delete;

  std::shared_ptr<const DirNode> Find(const Digest& d);
  void Insert(const Digest& d, std::shared_ptr<const DirNode> node, size_t encoded_size);
  uint64_t hits() const;  // Finds that found the node

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

namespace dir_tree {
// Writes the tree for `entries` (unique valid names, any order); returns its root.
Result<Digest> Build(ObjectWriter& w, std::vector<Entry> entries);
// Root of the empty directory (written through w).
Result<Digest> Empty(ObjectWriter& w);
// Applies edits to the tree at `root`, writing only changed nodes. With a
// cache, nodes are read through it and the nodes written are added to it.
Result<Digest> Apply(ObjectWriter& w, const Digest& root, std::vector<DirEdit> edits,
                     DirNodeCache* cache = nullptr);
Result<std::optional<Entry>> Lookup(const ObjectGetter& get, const Digest& root, std::string_view name,
                                    DirNodeCache* cache = nullptr);
// Visits every entry in tree order (hash order across leaves, names within one).
Status ForEach(const ObjectGetter& get, const Digest& root, const std::function<Status(const Entry&)>& fn);
// Every entry, sorted by name.
Result<std::vector<Entry>> ListSorted(const ObjectGetter& get, const Digest& root);
// Digests of the tree's own nodes (not of what entries refer to).
Status ForEachNode(const ObjectGetter& get, const Digest& root, const std::function<Status(const Digest&)>& fn);
// One node, for walkers that memoize per node: `trie_depth` is its depth
// below the directory's root node (0). A read failure is returned as is; a
// node that does not decode or lies deeper than kMaxTrieDepth is Corruption
// with "node <hex>" in front.
Result<DirNode> LoadNode(const ObjectGetter& get, const Digest& d, int trie_depth);
}  // namespace dir_tree

namespace link_table {
// A zero digest is the empty link table.
Result<Digest> Build(ObjectWriter& w, std::vector<LinkRecord> records);
Result<Digest> Apply(ObjectWriter& w, const Digest& root, std::vector<LinkEdit> edits);
Result<std::optional<LinkRecord>> Lookup(const ObjectGetter& get, const Digest& root, uint64_t id);
Status ForEach(const ObjectGetter& get, const Digest& root, const std::function<Status(const LinkRecord&)>& fn);
Status ForEachNode(const ObjectGetter& get, const Digest& root, const std::function<Status(const Digest&)>& fn);
// As dir_tree::LoadNode, for a link table's node.
Result<LinkNode> LoadNode(const ObjectGetter& get, const Digest& d, int trie_depth);
}  // namespace link_table

}  // namespace hashfs
