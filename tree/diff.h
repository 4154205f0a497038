// Differences between two commits' trees.
//
// The comparison descends only where the trees differ: a directory whose
// entry tree digest and attributes are equal on both sides is skipped without
// being read (unless a hardlink record it may refer to changed). Stateless
// and thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tree/repository.h"

namespace hashfs {

struct DiffEntry {
  enum Kind {
    kAdded,     // only in the new commit
    kRemoved,   // only in the old commit
    kModified,  // content changed: chunk list, symlink target, device number, or the type
    kMetadata,  // only mode, uid, gid, mtime or xattrs changed (ctime and source_ino are ignored)
  };
  Kind kind = kModified;
  // Relative to the commit root, "dir/file"; "." is the root directory itself
  // (only ever kMetadata).
  std::string path;
  FileType type = FileType::kRegular;  // the new type; the old one for kRemoved
  uint64_t old_size = 0;               // Inode::size; 0 on the side where the path is absent
  uint64_t new_size = 0;
  bool operator==(const DiffEntry&) const = default;
};

// What changed from `a` (old) to `b` (new), sorted by path. A directory added
// or removed is listed together with everything below it; a path whose type
// changed is kModified and a directory's contents on either side are listed
// as removed/added below it. Hardlinked entries are compared by the inodes
// their link records hold. Fails (Corruption/NotFound with the path) if an
// object it needs cannot be read.
Result<std::vector<DiffEntry>> DiffCommits(Repository& repo, const Commit& a, const Commit& b);

// Single-letter codes for display: 'A', 'D', 'M', 'm'.
char DiffKindChar(DiffEntry::Kind k);

}  // namespace hashfs
