// Shared helpers for the libFuzzer targets in tests/fuzz: an always-on check
// macro (independent of NDEBUG) and the structural invariants every decoded
// tree object must satisfy (design.md, tree/types.h limits).
#pragma once

#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "cas/status.h"
#include "tree/codec.h"
#include "tree/types.h"

// Aborts (a libFuzzer crash, saved as a reproducer) when `cond` is false.
#define FUZZ_CHECK(cond)                                                              \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "%s:%d: invariant violated: %s\n", __FILE__, __LINE__, #cond); \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)

#define FUZZ_CHECK_MSG(cond, msg)                                                     \
  do {                                                                                \
    if (!(cond)) {                                                                    \
      std::fprintf(stderr, "%s:%d: invariant violated: %s (%s)\n", __FILE__, __LINE__, #cond, \
                   std::string(msg).c_str());                                         \
      std::abort();                                                                   \
    }                                                                                 \
  } while (0)

namespace hashfs::fuzz {

inline std::string_view AsView(const uint8_t* data, size_t size) {
  return {reinterpret_cast<const char*>(data), size};
}

// A decoder's refusal must be a clear Corruption with a message.
inline void CheckRefusal(const Status& s) {
  FUZZ_CHECK_MSG(s.code() == Status::Code::kCorruption, s.ToString());
  FUZZ_CHECK(!s.message().empty());
}

inline void CheckInode(const Inode& n) {
  FUZZ_CHECK(IsValidFileType(static_cast<uint8_t>(n.type)));
  FUZZ_CHECK((n.mode & ~07777u) == 0);
  FUZZ_CHECK(n.symlink_target.size() <= kMaxSymlinkLength);
  if (n.type != FileType::kSymlink) FUZZ_CHECK(n.symlink_target.empty());
  if (n.type == FileType::kRegular) {
    FUZZ_CHECK(n.layout == ContentLayout::kInline || n.layout == ContentLayout::kManifest);
    if (n.layout == ContentLayout::kInline) {
      FUZZ_CHECK(n.chunks.size() <= kMaxInlineChunks);
      FUZZ_CHECK(n.content.IsZero());
      uint64_t total = 0;
      for (const auto& c : n.chunks) {
        FUZZ_CHECK(c.size > 0);
        FUZZ_CHECK(!__builtin_add_overflow(total, c.size, &total));
      }
      FUZZ_CHECK(total == n.size);
    } else {
      FUZZ_CHECK(n.chunks.empty());
    }
  } else {
    FUZZ_CHECK(n.layout == ContentLayout::kInline);
    FUZZ_CHECK(n.chunks.empty());
    if (n.type != FileType::kDirectory) FUZZ_CHECK(n.content.IsZero());
  }
  FUZZ_CHECK(n.xattrs.size() <= kMaxXattrs);
  for (size_t i = 0; i < n.xattrs.size(); i++) {
    const auto& [k, v] = n.xattrs[i];
    FUZZ_CHECK(!k.empty() && k.size() <= kMaxXattrNameLength);
    FUZZ_CHECK(v.size() <= kMaxXattrValueLength);
    if (i > 0) FUZZ_CHECK(n.xattrs[i - 1].first < k);  // sorted and unique
  }
}

inline void CheckEntry(const Entry& e) {
  FUZZ_CHECK(IsValidEntryName(e.name));
  if (e.link_id == 0) {
    CheckInode(e.inode);
  } else {
    // A hardlinked name carries only the type; never a directory.
    FUZZ_CHECK(e.inode.type != FileType::kDirectory);
    Inode only_type;
    only_type.type = e.inode.type;
    FUZZ_CHECK(e.inode == only_type);
  }
}

inline void CheckChildren(uint16_t bitmap, const std::vector<std::pair<Digest, uint64_t>>& children) {
  FUZZ_CHECK(bitmap != 0);
  FUZZ_CHECK(static_cast<size_t>(std::popcount(bitmap)) == children.size());
  for (const auto& c : children) FUZZ_CHECK(c.second > 0);
}

inline void CheckDirNode(const DirNode& n) {
  if (n.leaf) {
    FUZZ_CHECK(n.bitmap == 0 && n.children.empty());
    for (size_t i = 0; i < n.entries.size(); i++) {
      CheckEntry(n.entries[i]);
      if (i > 0) FUZZ_CHECK(n.entries[i - 1].name < n.entries[i].name);
    }
  } else {
    FUZZ_CHECK(n.entries.empty());
    CheckChildren(n.bitmap, n.children);
  }
}

inline void CheckLinkNode(const LinkNode& n) {
  if (n.leaf) {
    FUZZ_CHECK(n.bitmap == 0 && n.children.empty());
    for (size_t i = 0; i < n.records.size(); i++) {
      const LinkRecord& r = n.records[i];
      FUZZ_CHECK(r.id != 0);
      FUZZ_CHECK(r.inode.type != FileType::kDirectory);
      CheckInode(r.inode);
      if (i > 0) FUZZ_CHECK(n.records[i - 1].id < r.id);
    }
  } else {
    FUZZ_CHECK(n.records.empty());
    CheckChildren(n.bitmap, n.children);
  }
}

inline void CheckFileNode(const FileNode& n) {
  FUZZ_CHECK(n.level <= 8);
  FUZZ_CHECK(!n.refs.empty());
  for (const auto& r : n.refs) FUZZ_CHECK(r.size > 0);
}

inline void CheckCommit(const Commit& c) {
  FUZZ_CHECK(c.root.type == FileType::kDirectory);
  CheckInode(c.root);
  FUZZ_CHECK(c.description.size() <= kMaxDescriptionLength);
}

// Value equality for the node types (codec.h defines none for them).
inline bool Same(const DirNode& a, const DirNode& b) {
  return a.leaf == b.leaf && a.entries == b.entries && a.bitmap == b.bitmap && a.children == b.children;
}
inline bool Same(const LinkNode& a, const LinkNode& b) {
  return a.leaf == b.leaf && a.records == b.records && a.bitmap == b.bitmap && a.children == b.children;
}
inline bool Same(const FileNode& a, const FileNode& b) { return a.level == b.level && a.refs == b.refs; }
inline bool Same(const Commit& a, const Commit& b) { return a == b; }

// Every tree object starts 0x01 'f' TYPE VERSION; a decoder for one type must
// refuse the bytes of another, so exactly `expected` (or none) may accept.
inline void CheckOnlyOneDecoderAccepts(std::string_view bytes, ObjectType accepted) {
  if (accepted != ObjectType::kDirNode) FUZZ_CHECK(!DecodeDirNode(bytes).ok());
  if (accepted != ObjectType::kLinkNode) FUZZ_CHECK(!DecodeLinkNode(bytes).ok());
  if (accepted != ObjectType::kFileNode) FUZZ_CHECK(!DecodeFileNode(bytes).ok());
  if (accepted != ObjectType::kCommit) FUZZ_CHECK(!DecodeCommit(bytes).ok());
  FUZZ_CHECK(bytes.size() >= 4 && bytes[0] == 0x01 && bytes[1] == 'f' &&
             bytes[2] == static_cast<char>(accepted) && bytes[3] == kCodecVersion);
}

// The codec is canonical and self-delimiting: for every accepted input,
// decode -> encode gives the input back byte for byte, decoding that again
// gives an equal value, and no proper prefix of it is accepted.
template <typename T, typename DecodeFn, typename EncodeFn, typename CheckFn>
void CheckTreeDecoder(std::string_view bytes, ObjectType type, DecodeFn decode, EncodeFn encode, CheckFn check) {
  Result<T> r = decode(bytes);
  if (!r.ok()) {
    CheckRefusal(r.status());
    return;
  }
  check(*r);
  std::string again = encode(*r);
  FUZZ_CHECK_MSG(again == bytes, "decode->encode is not the identity");
  Result<T> r2 = decode(again);
  FUZZ_CHECK(r2.ok());
  FUZZ_CHECK(Same(*r2, *r));
  CheckOnlyOneDecoderAccepts(bytes, type);
  if (!bytes.empty()) {
    Result<T> shorter = decode(bytes.substr(0, bytes.size() - 1));
    FUZZ_CHECK(!shorter.ok());
    CheckRefusal(shorter.status());
  }
}

}  // namespace hashfs::fuzz
