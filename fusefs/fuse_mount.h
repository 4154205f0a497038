// The libfuse3 low-level binding of a Filesystem: the only file that knows
// FUSE, and the only place a Status becomes an errno. Every callback catches
// every exception (an exception never crosses into libfuse's C code) and
// replies EIO for it.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "fusefs/filesystem.h"

namespace hashfs::fusefs {

struct FuseOptions {
  std::string mountpoint;
  std::string fsname;                  // shown in /proc/mounts
  bool read_only = false;
  bool allow_other = false;            // serve every user (as root)
  std::vector<std::string> extra;      // user -o options, passed through
  int max_threads = 16;
};

// The errno a Status stands for at the FUSE boundary.
int ErrnoFor(const Status& s);

// Mounts `fs` and serves requests on a multithreaded loop until the file
// system is unmounted or SIGINT/SIGTERM/SIGHUP arrives. `ready` runs once the
// kernel mount exists (with OK), or with the error that prevented it.
// Commits pending changes (fs.Sync) before returning.
Status ServeFuse(Filesystem& fs, const FuseOptions& opts, const std::function<void(const Status&)>& ready);

}  // namespace hashfs::fusefs
