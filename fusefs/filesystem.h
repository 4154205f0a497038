// Filesystem: the FUSE-free core of a hashfs mount. It serves one volume as
// a mutable POSIX namespace over immutable trees and turns changes into
// commits.
//
// State: an inode table (node id -> Node) holding the entries the kernel
// holds, has open or that changed, created lazily from the volume's head
// commit; directories load their listing (name -> node id, st_ino, type) on
// first use. Nodes and listings nothing needs are evicted once the table
// passes `max_inodes` (a sweep at the next safe point) and re-read from the
// committed tree when named again.
// Changes edit nodes in memory and mark the names on the path to the root
// dirty. A committer thread turns dirty state into new tree objects (only the
// changed HAMT paths and file regions), a commit and one atomic head swap
// (Repository::Advance), grouping changes that arrive within `group_commit`.
// fsync and Sync() wait until a commit holding every earlier change is
// durable. Hardlinked files share one node (key: link id) whose attributes
// live in the commit's link table.
//
// `.hashfs` at the root (reachable by name, not listed) is a read-only view
// of history: `.hashfs/history/<commit id>/` and `.hashfs/snapshots/<name>/`.
//
// Thread-safe: one mutex guards the namespace and file contents; reads of
// unchanged file regions and chunk decoding run outside it. The kernel's node
// ids are never reused within a mount; st_ino is derived from the entry (an
// assigned number stored in Inode::source_ino, else its parent's st_ino and
// its name), so it survives eviction, rename and remount (design.md, "Inode
// numbers"). Permission checks are the kernel's
// (the mount uses default_permissions); this class enforces POSIX namespace
// rules and errors.
#pragma once

#include <sys/stat.h>
#include <sys/statvfs.h>

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "tree/repository.h"

namespace hashfs::fusefs {

inline constexpr uint64_t kRootIno = 1;

// Writes "hashfs: <line>" to stderr (the mount's log). Never throws and
// ignores write errors: a log on a full disk must not take the mount down.
void LogLine(std::string_view line) noexcept;

struct MountConfig {
  std::string volume;
  std::string store_dir;          // for statfs
  bool read_only = false;
  std::optional<Digest> at;       // serve this commit (read-only) instead of the head
  int group_commit_ms = 20;       // changes within this window share one commit
  size_t chunk_cache_bytes = 256u << 20;
  // Per file: dirty pages beyond this are chunked out (in the background, so
  // a file may hold twice this while its previous batch is being chunked).
  size_t max_dirty_bytes = 64u << 20;
  double entry_timeout = 10.0;    // kernel cache timeouts for the live tree
  size_t max_inodes = 65536;      // inode-table size beyond which unneeded nodes are evicted
  // An open file's chunk list is held in memory (about 50 bytes a chunk):
  // opening a file of more chunks fails with kTooBig (EFBIG) before they are
  // all read, so a crafted store cannot make the mount allocate without
  // bound. 2^24 chunks hold 16 TiB at the default 1 MiB average chunk size,
  // and any file of holes up to kMaxFileSize (a chunk per 4 MiB window).
  uint64_t max_open_chunks = uint64_t{1} << 24;
  // zstd level of the objects the mount writes (0: none). Level 1, not the
  // store's (3 by default, which backup uses): on 2 cores the mount's
  // sequential write is bound by compression, and level 1 writes 1.3x as
  // fast for about 8% more stored bytes (bench/README.md). The level is not
  // part of the format: the digest is of the plain bytes.
  int zstd_level = 1;
};

struct Caller {
  uint32_t uid = 0;
  uint32_t gid = 0;
};

struct EntryOut {
  uint64_t ino = 0;  // node id (the kernel's handle); attr.st_ino is the inode number
  struct stat attr {};
  double timeout = 0;  // entry and attribute cache timeout, seconds
};

// What SetAttr changes (unset fields are left alone).
struct SetAttrRequest {
  std::optional<uint32_t> mode;
  std::optional<uint32_t> uid, gid;
  std::optional<uint64_t> size;
  std::optional<int64_t> atime_ns, mtime_ns;  // already resolved from UTIME_NOW
  std::optional<int64_t> ctime_ns;
};

struct DirEntryOut {
  std::string name;
  uint64_t ino;        // st_ino (d_ino)
  uint32_t type_bits;  // S_IFDIR, S_IFREG, ...
};

// What one open of a directory lists: a snapshot taken at opendir.
struct DirListing {
  uint64_t self_ino = 0;  // st_ino of the directory (".")
  std::vector<DirEntryOut> entries;
};

// Callbacks into the kernel, set by the FUSE layer: drop cached attributes
// and data of an inode, or a cached name.
struct Invalidator {
  std::function<void(uint64_t ino)> inode;
  std::function<void(uint64_t parent, const std::string& name)> entry;
};

class Filesystem {
 public:
  // The largest file the mount writes, truncates or opens: 16 TiB, ext4's
  // limit. Past it write, truncate and fallocate fail with kTooBig (EFBIG),
  // as does opening a larger file from the store (a crafted store can claim
  // any size; restore and cat have no such limit).
  static constexpr uint64_t kMaxFileSize = uint64_t{1} << 44;
  // Opens the volume (creating it empty when it does not exist and the mount
  // is read-write) and starts the committer. `repo` must outlive this.
  static Result<std::unique_ptr<Filesystem>> Open(Repository& repo, MountConfig cfg);
  ~Filesystem();  // commits what is pending (Sync) and stops the committer
  Filesystem(const Filesystem&) = delete;
  Filesystem& operator=(const Filesystem&) = delete;

  void SetInvalidator(Invalidator inv);
  bool read_only() const;

  // Namespace. Every call that returns an EntryOut counts one kernel lookup.
  Result<EntryOut> Lookup(uint64_t parent, std::string_view name);
  void Forget(uint64_t ino, uint64_t nlookup);
  Result<struct stat> GetAttr(uint64_t ino);
  Result<struct stat> SetAttr(uint64_t ino, const SetAttrRequest& r);
  Result<std::string> ReadLink(uint64_t ino);
  Result<EntryOut> MakeNode(uint64_t parent, std::string_view name, uint32_t mode, uint64_t rdev, const Caller& c);
  Result<EntryOut> MakeDir(uint64_t parent, std::string_view name, uint32_t mode, const Caller& c);
  Result<EntryOut> Symlink(uint64_t parent, std::string_view name, std::string_view target, const Caller& c);
  Result<EntryOut> Link(uint64_t ino, uint64_t new_parent, std::string_view new_name);
  Status Unlink(uint64_t parent, std::string_view name);
  Status Rmdir(uint64_t parent, std::string_view name);
  // flags: 0, RENAME_NOREPLACE or RENAME_EXCHANGE.
  Status Rename(uint64_t parent, std::string_view name, uint64_t new_parent, std::string_view new_name,
                unsigned flags);

  // Files. Handles are per open; `writable` opens may change content.
  Result<uint64_t> Open(uint64_t ino, int flags);
  Result<std::pair<EntryOut, uint64_t>> Create(uint64_t parent, std::string_view name, uint32_t mode, int flags,
                                               const Caller& c);
  Result<size_t> Read(uint64_t ino, uint64_t fh, uint64_t off, size_t size, char* out);
  Result<size_t> Write(uint64_t ino, uint64_t fh, uint64_t off, const char* data, size_t size);
  // lseek SEEK_DATA (data true) / SEEK_HOLE, as FileContent::Seek: nullopt
  // is ENXIO (off at or past the end, or no data after it).
  Result<std::optional<uint64_t>> Seek(uint64_t ino, uint64_t off, bool data);
  Status Flush(uint64_t ino, uint64_t fh);    // close(2) of one descriptor
  Status Release(uint64_t ino, uint64_t fh);  // last close of the open
  Status Fsync(uint64_t ino);                 // durable when it returns OK
  Status Fallocate(uint64_t ino, int mode, uint64_t off, uint64_t len);

  // Directories: a listing snapshot per open, so offsets stay stable while
  // the directory changes.
  Result<uint64_t> OpenDir(uint64_t ino);
  // The open's snapshot (shared, immutable: readdir calls slice it without
  // copying). Entries are counted as kernel lookups by LookupForReaddirPlus.
  Result<std::shared_ptr<const DirListing>> ReadDir(uint64_t ino, uint64_t fh);
  Result<EntryOut> LookupForReaddirPlus(uint64_t ino, const DirEntryOut& e);
  void ReleaseDir(uint64_t fh);

  // Extended attributes.
  Result<std::string> GetXattr(uint64_t ino, std::string_view name);
  Result<std::vector<std::string>> ListXattr(uint64_t ino);
  Status SetXattr(uint64_t ino, std::string_view name, std::string_view value, int flags);
  Status RemoveXattr(uint64_t ino, std::string_view name);

  Result<struct statvfs> StatFs();

  // Commits everything changed so far and waits until it is durable.
  Status Sync();
  // Makes `commit`'s tree the volume's new head (a new commit; history is
  // kept), after committing pending changes; the kernel's caches are
  // invalidated. Used by `hashfs revert` on a mounted volume.
  Status Revert(const Digest& commit, const std::string& description);
  // The last durable head commit.
  Digest head() const;

  struct Impl;

 private:
  explicit Filesystem(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hashfs::fusefs
