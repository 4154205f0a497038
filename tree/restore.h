// Restore: writes a commit's tree (or part of it) into a host directory.
//
// Restores regular files (sparse where chunks are all zeros), directories,
// symlinks, hardlinks, fifos, sockets and device nodes, with modes, times,
// xattrs and (when running as root, or when asked) owners. Safe against
// hostile trees: names are validated, every path is opened relative to its
// parent directory with O_NOFOLLOW, so nothing is ever written outside DEST.
// Damaged content is reported with its path and the rest is restored.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "tree/repository.h"

namespace hashfs {

struct RestoreOptions {
  bool owners = false;  // chown to the recorded uid/gid (needs privileges)
};

struct RestoreProgress {
  std::atomic<uint64_t> files_done{0};
  std::atomic<uint64_t> bytes_done{0};
};

struct RestoreReport {
  uint64_t files = 0, dirs = 0, others = 0, bytes = 0;
  std::vector<std::string> errors;  // "path: reason"
};

// Restores `subpath` ("" or "/" for the whole tree) of `commit` into `dest`.
// A directory's contents go into dest (created if missing); a non-directory
// is restored as dest/<its name>.
Result<RestoreReport> Restore(Repository& repo, const Commit& commit, std::string_view subpath,
                              const std::string& dest, const RestoreOptions& opts,
                              RestoreProgress* progress = nullptr);

// Looks up `path` (components separated by '/') from the commit's root.
// The result's link_id is 0 (hardlinked inodes are resolved).
Result<Entry> LookupPath(Repository& repo, const Commit& commit, std::string_view path);

}  // namespace hashfs
