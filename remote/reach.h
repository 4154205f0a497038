// Typed reachability over tree objects, shared by push (what to upload),
// pull/clone (what to fetch, level by level) and remote gc (what is live).
// An object's role comes from the reference that reached it; Children()
// decodes one object and returns what it references. Pure, thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "cas/digest.h"
#include "cas/status.h"
#include "tree/dir_tree.h"

namespace hashfs::remote {

enum class Role : uint8_t { kCommit, kDir, kLink, kFile, kChunk };

struct Ref {
  Digest digest;
  Role role;
  uint8_t level = 255;  // kFile: expected manifest level (255: any)
};

// What `plain` (an object reached as `role`) references. Corruption if it
// does not decode as that role.
Result<std::vector<Ref>> Children(const Ref& r, std::string_view plain);

struct RefHash {
  size_t operator()(const Ref& r) const noexcept { return DigestHash{}(r.digest) ^ size_t(r.role); }
};
struct RefEq {
  bool operator()(const Ref& a, const Ref& b) const noexcept { return a.digest == b.digest && a.role == b.role; }
};

// Depth-first walk from `roots` through `get`, calling fn(ref) once per
// (digest, role), parents before children; fn returning false skips the
// object's children. Missing/undecodable objects fail the walk.
Status Walk(const ObjectGetter& get, const std::vector<Ref>& roots, const std::function<bool(const Ref&)>& fn);

}  // namespace hashfs::remote
