// Backup: records a host directory as one new commit on a volume.
//
// The walk, reading/chunking/hashing/compressing (in parallel on every core)
// and tree building run as one bounded pipeline, so memory stays flat however
// large the tree. A regular file whose size, mtime, ctime and inode number
// match the volume's previous head is not re-read. Files that cannot be read
// are reported and left out; everything else is committed. The head moves
// only after every object the new commit reaches is durable.
#pragma once

#include <sys/stat.h>

#include <atomic>
#include <string>
#include <vector>

#include "tree/repository.h"

namespace hashfs {

struct BackupOptions {
  // fnmatch(3) patterns. A pattern with a '/' is matched against the path
  // relative to the backed-up directory (a leading '/' anchors it there);
  // one without is matched against every name.
  std::vector<std::string> excludes;
  std::string description;  // commit description; a summary line if empty
  bool scan_totals = true;  // count files and bytes ahead (for an ETA)
};

// Live counters a caller may read from another thread while Backup runs.
struct BackupProgress {
  std::atomic<uint64_t> files_done{0};
  std::atomic<uint64_t> bytes_done{0};   // bytes of files processed (read or unchanged)
  std::atomic<uint64_t> bytes_read{0};
  std::atomic<uint64_t> total_files{0};  // from the scan, when scan_done
  std::atomic<uint64_t> total_bytes{0};
  std::atomic<bool> scan_done{false};
};

struct BackupReport {
  Digest commit;
  uint64_t files_new = 0, files_changed = 0, files_unchanged = 0;
  uint64_t dirs = 0, others = 0;  // directories; symlinks, devices, fifos, sockets
  uint64_t bytes_total = 0;       // logical bytes of the files in the commit
  uint64_t bytes_read = 0;
  uint64_t objects_added = 0;
  uint64_t bytes_added = 0;  // stored bytes added after dedupe and compression
  std::vector<std::string> errors;  // "path: reason" for everything left out
};

// Backs up `source` into `volume` (created on first use). The report's errors
// list what was skipped; the commit is made even when it is not empty.
Result<BackupReport> Backup(Repository& repo, const std::string& source, const std::string& volume,
                            const BackupOptions& opts, BackupProgress* progress = nullptr);

// Reads the inode attributes (not content) of `path` from `st` plus its
// extended attributes and symlink target. Shared with tests and the mount.
Result<Inode> InodeFromHost(const std::string& path, const struct stat& st);

}  // namespace hashfs
