#include "fusefs/posix_acl.h"

namespace hashfs::fusefs {
namespace {

constexpr uint32_t kVersion = 2;
constexpr uint16_t kUserObj = 0x01, kUser = 0x02, kGroupObj = 0x04, kGroup = 0x08, kMask = 0x10, kOther = 0x20;

uint32_t Le32(std::string_view s, size_t off) {
  return static_cast<uint32_t>(static_cast<uint8_t>(s[off])) |
         static_cast<uint32_t>(static_cast<uint8_t>(s[off + 1])) << 8 |
         static_cast<uint32_t>(static_cast<uint8_t>(s[off + 2])) << 16 |
         static_cast<uint32_t>(static_cast<uint8_t>(s[off + 3])) << 24;
}
uint16_t Le16(std::string_view s, size_t off) {
  return static_cast<uint16_t>(static_cast<uint8_t>(s[off]) | static_cast<uint8_t>(s[off + 1]) << 8);
}

struct Parsed {
  int user_obj = -1, group_obj = -1, mask = -1, other = -1;  // entry index
};

std::optional<Parsed> Parse(std::string_view acl) {
  if (acl.size() < 4 || (acl.size() - 4) % 8 != 0 || Le32(acl, 0) != kVersion) return std::nullopt;
  Parsed p;
  size_t n = (acl.size() - 4) / 8;
  for (size_t i = 0; i < n; i++) {
    uint16_t tag = Le16(acl, 4 + i * 8);
    uint16_t perm = Le16(acl, 4 + i * 8 + 2);
    if (perm & ~7u) return std::nullopt;
    int idx = static_cast<int>(i);
    auto once = [&](int& slot) {
      if (slot >= 0) return false;
      slot = idx;
      return true;
    };
    switch (tag) {
      case kUserObj: if (!once(p.user_obj)) return std::nullopt; break;
      case kGroupObj: if (!once(p.group_obj)) return std::nullopt; break;
      case kMask: if (!once(p.mask)) return std::nullopt; break;
      case kOther: if (!once(p.other)) return std::nullopt; break;
      case kUser: case kGroup: break;
      default: return std::nullopt;
    }
  }
  if (p.user_obj < 0 || p.group_obj < 0 || p.other < 0) return std::nullopt;
  return p;
}

uint32_t PermAt(std::string_view acl, int idx) { return Le16(acl, 4 + static_cast<size_t>(idx) * 8 + 2); }

}  // namespace

std::optional<uint32_t> AclPermissionBits(std::string_view acl) {
  auto p = Parse(acl);
  if (!p) return std::nullopt;
  int group = p->mask >= 0 ? p->mask : p->group_obj;
  return PermAt(acl, p->user_obj) << 6 | PermAt(acl, group) << 3 | PermAt(acl, p->other);
}

std::string AclWithMode(std::string_view acl, uint32_t mode) {
  auto p = Parse(acl);
  std::string out(acl);
  if (!p) return out;
  auto set = [&](int idx, uint32_t perm) {
    out[4 + static_cast<size_t>(idx) * 8 + 2] = static_cast<char>(perm & 7);
    out[4 + static_cast<size_t>(idx) * 8 + 3] = 0;
  };
  set(p->user_obj, mode >> 6);
  set(p->mask >= 0 ? p->mask : p->group_obj, mode >> 3);
  set(p->other, mode);
  return out;
}

}  // namespace hashfs::fusefs
