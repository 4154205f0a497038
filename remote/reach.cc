#include "remote/reach.h"

#include "tree/codec.h"

namespace hashfs::remote {
namespace {

void InodeContent(const Inode& in, std::vector<Ref>* out) {
  if (in.type == FileType::kDirectory) {
    out->push_back({in.content, Role::kDir});
  } else if (in.type == FileType::kRegular) {
    if (in.layout == ContentLayout::kInline) {
      for (const auto& c : in.chunks) out->push_back({c.digest, Role::kChunk});
    } else {
      out->push_back({in.content, Role::kFile});
    }
  }
}

}  // namespace

Result<std::vector<Ref>> Children(const Ref& r, std::string_view plain) {
  std::vector<Ref> out;
  switch (r.role) {
    case Role::kChunk:
      break;
    case Role::kCommit: {
      HASHFS_ASSIGN_OR_RETURN(Commit c, DecodeCommit(plain));
      if (c.root.type != FileType::kDirectory) return Status::Corruption("commit root is not a directory");
      out.push_back({c.root.content, Role::kDir});
      if (!c.links.IsZero()) out.push_back({c.links, Role::kLink});
      break;
    }
    case Role::kDir: {
      HASHFS_ASSIGN_OR_RETURN(DirNode n, DecodeDirNode(plain));
      for (const auto& e : n.entries)
        if (e.link_id == 0) InodeContent(e.inode, &out);
      for (const auto& c : n.children) out.push_back({c.first, Role::kDir});
      break;
    }
    case Role::kLink: {
      HASHFS_ASSIGN_OR_RETURN(LinkNode n, DecodeLinkNode(plain));
      for (const auto& rec : n.records) InodeContent(rec.inode, &out);
      for (const auto& c : n.children) out.push_back({c.first, Role::kLink});
      break;
    }
    case Role::kFile: {
      HASHFS_ASSIGN_OR_RETURN(FileNode n, DecodeFileNode(plain));
      if (r.level != 255 && n.level != r.level) return Status::Corruption("file manifest node has the wrong level");
      for (const auto& c : n.refs) {
        if (n.level == 0)
          out.push_back({c.digest, Role::kChunk});
        else
          out.push_back({c.digest, Role::kFile, static_cast<uint8_t>(n.level - 1)});
      }
      break;
    }
  }
  return out;
}

Status Walk(const ObjectGetter& get, const std::vector<Ref>& roots, const std::function<bool(const Ref&)>& fn) {
  std::unordered_set<Ref, RefHash, RefEq> seen;
  std::vector<Ref> stack(roots.rbegin(), roots.rend());
  while (!stack.empty()) {
    Ref r = stack.back();
    stack.pop_back();
    if (!seen.insert(r).second) continue;
    if (!fn(r) || r.role == Role::kChunk) continue;
    auto bytes = get(r.digest);
    if (!bytes.ok()) return bytes.status();
    auto kids = Children(r, *bytes);
    if (!kids.ok()) return kids.status().WithContext("object " + r.digest.Hex());
    for (auto it = kids->rbegin(); it != kids->rend(); ++it) stack.push_back(*it);
  }
  return Status::Ok();
}

}  // namespace hashfs::remote
