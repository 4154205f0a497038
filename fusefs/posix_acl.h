// The Linux xattr form of a POSIX access ACL ("system.posix_acl_access"):
// little-endian u32 version 2, then 8-byte entries {u16 tag, u16 perm, u32
// id}. hashfs stores ACLs as ordinary xattrs (the kernel enforces mode bits
// only, see design.md); these pure functions keep the file mode and the ACL
// in step the way a native Linux file system does: setting an ACL sets the
// mode's permission bits, chmod rewrites the ACL's owner, mask (or group)
// and other entries.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace hashfs::fusefs {

inline constexpr std::string_view kAclAccessXattr = "system.posix_acl_access";

// The permission bits (0777) an access ACL implies, or nullopt if `acl` is
// not a well-formed access ACL.
std::optional<uint32_t> AclPermissionBits(std::string_view acl);

// `acl` with its USER_OBJ, MASK (or GROUP_OBJ when there is no mask) and
// OTHER entries set from `mode`'s permission bits. Returns `acl` unchanged
// when it is malformed.
std::string AclWithMode(std::string_view acl, uint32_t mode);

}  // namespace hashfs::fusefs
