// Value types of the tree layer: inodes, directory entries, chunk references,
// commits. Plain structs, no I/O. Their byte encoding is in codec.h and is
// specified in design.md.
#pragma once

#include <cstdint>
#include <ctime>
#include <string>
#include <utility>
#include <vector>

#include "cas/digest.h"

namespace hashfs {

enum class FileType : uint8_t {
  kRegular = 1,
  kDirectory = 2,
  kSymlink = 3,
  kFifo = 4,
  kCharDevice = 5,
  kBlockDevice = 6,
  kSocket = 7,
};
bool IsValidFileType(uint8_t t);
// 'f', 'd', 'l', 'p', 'c', 'b', 's' as in find -type.
char FileTypeChar(FileType t);

// One data chunk of a file: its object name and plain length.
struct ChunkRef {
  Digest digest;
  uint64_t size = 0;
  bool operator==(const ChunkRef&) const = default;
};

// How a regular file's chunk list is held.
enum class ContentLayout : uint8_t {
  kInline = 0,    // Inode::chunks holds the whole list (small files)
  kManifest = 1,  // Inode::content is the root of a manifest tree (file_manifest.h)
};

// The attributes that hardlinked names share. For directories `content` is
// the root of the directory's entry tree (dir_tree.h).
struct Inode {
  FileType type = FileType::kRegular;
  uint32_t mode = 0;  // permission bits, including setuid/setgid/sticky (07777)
  uint32_t uid = 0;
  uint32_t gid = 0;
  int64_t mtime_ns = 0;
  int64_t ctime_ns = 0;
  uint64_t size = 0;  // bytes for files, target length for symlinks, 0 otherwise
  uint64_t rdev = 0;  // device number for character and block devices
  uint64_t source_ino = 0;  // inode number where last seen: backed-up filesystem, or a mount (bit 63); 0 if none
  std::string symlink_target;
  ContentLayout layout = ContentLayout::kInline;
  Digest content;               // manifest root (kManifest) or directory root
  std::vector<ChunkRef> chunks;  // kInline only
  std::vector<std::pair<std::string, std::string>> xattrs;  // sorted by name, unique

  bool operator==(const Inode&) const = default;
};

// A name in a directory. link_id == 0: the inode is held inline. link_id != 0:
// a hardlinked file whose inode lives in the commit's link table under that
// id; `inode` then only carries the type.
struct Entry {
  std::string name;
  uint64_t link_id = 0;
  Inode inode;
  bool operator==(const Entry&) const = default;
};

// A link-table record: the shared inode of a hardlink group.
struct LinkRecord {
  uint64_t id = 0;
  uint32_t nlink = 0;  // names that refer to this record in the commit's tree
  Inode inode;
  bool operator==(const LinkRecord&) const = default;
};

// One state of a volume. `root` is the root directory's inode (its content is
// the root entry tree). `links` is the link-table root (zero digest: empty).
// `parent` is the previous head when this commit was made (zero: first); it is
// informative and not followed by garbage collection.
struct Commit {
  Inode root;
  Digest links;
  Digest parent;
  int64_t time_ns = 0;
  std::string description;
  bool operator==(const Commit&) const = default;
};

// The wall clock now (CLOCK_REALTIME) in nanoseconds since the Unix epoch:
// the unit of every *_ns time above.
inline int64_t WallClockNs() {
  timespec ts{};
  clock_gettime(CLOCK_REALTIME, &ts);
  return int64_t{ts.tv_sec} * 1'000'000'000 + ts.tv_nsec;
}

// Limits every decoder enforces (hostile or corrupt input is refused).
inline constexpr size_t kMaxNameLength = 255;
inline constexpr size_t kMaxSymlinkLength = 4096;
inline constexpr size_t kMaxXattrs = 1024;
inline constexpr size_t kMaxXattrNameLength = 255;
inline constexpr size_t kMaxXattrValueLength = 64 * 1024;
// Names plus values of all of one inode's xattrs, enforced where xattrs enter
// a store (the mount's setxattr, backup), not by decoders: a directory-trie
// leaf of kHamtLeafMax entries then stays within kMaxObjectSize (dir_tree.cc
// checks the arithmetic).
inline constexpr size_t kMaxXattrBytes = 96 * 1024;
inline constexpr size_t kMaxInlineChunks = 16;
inline constexpr size_t kMaxDescriptionLength = 4096;

// Names plus values of `xattrs` (what kMaxXattrBytes bounds).
size_t XattrBytes(const std::vector<std::pair<std::string, std::string>>& xattrs);

// A valid name for a directory entry: 1..255 bytes, no '/', no NUL, not "." or "..".
bool IsValidEntryName(std::string_view name);

// The S_IF* bits of st_mode for a file type.
uint32_t TypeBits(FileType t);

}  // namespace hashfs
