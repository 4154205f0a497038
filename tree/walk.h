// Depth-first walks over a commit's directory tree, resolving hardlinked
// entries through the commit's link table. Shared by diff, verify, stats and
// tools. Directories nested deeper than kMaxTreeDepth are refused as
// Corruption, so a hostile store cannot exhaust memory or time. The walk keeps
// its own stack (no recursion). Functions are thread-safe given a thread-safe
// getter; a LinkResolver is not thread-safe.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <string_view>
#include <unordered_map>

#include "tree/dir_tree.h"

namespace hashfs {

inline constexpr int kMaxTreeDepth = 4096;

// "dir" + "name" -> "dir/name"; an empty dir gives "name".
std::string JoinPath(std::string_view dir, std::string_view name);

// Every record of the link table at `links` (zero digest: empty), by id.
Result<std::map<uint64_t, LinkRecord>> LoadLinkTable(const ObjectGetter& get, const Digest& links);

// Resolves entries against one link table, caching the records it looked up.
class LinkResolver {
 public:
  LinkResolver(ObjectGetter get, const Digest& links) : get_(std::move(get)), links_(links) {}
  LinkResolver(const LinkResolver&) = delete;
  LinkResolver& operator=(const LinkResolver&) = delete;

  const Digest& links() const { return links_; }
  // The inode `e` stands for: its own when link_id is 0, else its link
  // record's (Corruption if the table has no such record). The pointer is
  // valid while the resolver and `e` live.
  Result<const Inode*> Resolve(const Entry& e);

 private:
  ObjectGetter get_;
  Digest links_;
  std::unordered_map<uint64_t, Inode> cache_;
};

struct WalkEntry {
  std::string_view path;  // relative to the walk's root: "dir/file"
  const Entry& entry;     // as stored (for link_id != 0 only the type is set)
  const Inode& inode;     // resolved
  uint64_t link_id;
  int depth;  // 1 for entries of the walk's root directory
};

// Called for every entry, parents before children, each directory's entries
// in name order. For a directory, setting *descend = false skips its
// contents. A non-OK status stops the walk and is returned.
using WalkFn = std::function<Status(const WalkEntry& e, bool* descend)>;

// Walks the directory entry tree `dir_root`; paths are JoinPath(base_path, ...)
// and depths count from base_depth + 1. Errors carry the failing path.
Status WalkDir(const ObjectGetter& get, LinkResolver& links, const Digest& dir_root, std::string_view base_path,
               int base_depth, const WalkFn& fn);
// Walks everything below the commit's root directory.
Status WalkCommit(const ObjectGetter& get, const Commit& c, const WalkFn& fn);

}  // namespace hashfs
