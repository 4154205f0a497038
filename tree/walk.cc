#include "tree/walk.h"

#include <vector>

namespace hashfs {

std::string JoinPath(std::string_view dir, std::string_view name) {
  std::string out;
  out.reserve(dir.size() + 1 + name.size());
  out.append(dir);
  if (!dir.empty()) out.push_back('/');
  out.append(name);
  return out;
}

Result<std::map<uint64_t, LinkRecord>> LoadLinkTable(const ObjectGetter& get, const Digest& links) {
  std::map<uint64_t, LinkRecord> out;
  Status s = link_table::ForEach(get, links, [&](const LinkRecord& r) -> Status {
    if (!out.emplace(r.id, r).second)
      return Status::Corruption("link table holds record " + std::to_string(r.id) + " twice");
    return Status::Ok();
  });
  if (!s.ok()) return s.WithContext("link table " + links.Hex());
  return out;
}

Result<const Inode*> LinkResolver::Resolve(const Entry& e) {
  if (e.link_id == 0) return &e.inode;
  auto it = cache_.find(e.link_id);
  if (it != cache_.end()) return &it->second;
  HASHFS_ASSIGN_OR_RETURN(auto rec, link_table::Lookup(get_, links_, e.link_id));
  if (!rec)
    return Status::Corruption("hardlink record " + std::to_string(e.link_id) + " is missing from the link table");
  if (rec->inode.type != e.inode.type)
    return Status::Corruption("hardlink record " + std::to_string(e.link_id) + " has another type than its entry");
  return &cache_.emplace(e.link_id, std::move(rec->inode)).first->second;
}

namespace {

struct Frame {
  std::vector<Entry> entries;
  size_t next = 0;
  std::string path;
  int depth = 0;  // depth of this directory's entries
};

// Lists a directory whose entries are at `depth`; refuses entries deeper than
// kMaxTreeDepth (an empty directory there is fine).
Result<Frame> OpenDir(const ObjectGetter& get, const Digest& root, std::string path, int depth) {
  auto entries = dir_tree::ListSorted(get, root);
  if (!entries.ok()) return entries.status().WithContext(path.empty() ? "." : path);
  if (depth > kMaxTreeDepth && !entries->empty())
    return Status::Corruption("directory tree is deeper than " + std::to_string(kMaxTreeDepth) + " levels at '" +
                              path + "'");
  Frame f;
  f.entries = std::move(entries).value();
  f.path = std::move(path);
  f.depth = depth;
  return f;
}

}  // namespace

Status WalkDir(const ObjectGetter& get, LinkResolver& links, const Digest& dir_root, std::string_view base_path,
               int base_depth, const WalkFn& fn) {
  std::vector<Frame> stack;
  HASHFS_ASSIGN_OR_RETURN(Frame first, OpenDir(get, dir_root, std::string(base_path), base_depth + 1));
  stack.push_back(std::move(first));
  while (!stack.empty()) {
    Frame& top = stack.back();
    if (top.next == top.entries.size()) {
      stack.pop_back();
      continue;
    }
    const Entry& e = top.entries[top.next++];
    std::string path = JoinPath(top.path, e.name);
    auto inode = links.Resolve(e);
    if (!inode.ok()) return inode.status().WithContext(path);
    bool descend = true;
    HASHFS_RETURN_IF_ERROR(fn(WalkEntry{path, e, **inode, e.link_id, top.depth}, &descend));
    if (descend && (*inode)->type == FileType::kDirectory) {
      Digest child = (*inode)->content;
      int depth = top.depth + 1;  // `top` may dangle after push_back
      HASHFS_ASSIGN_OR_RETURN(Frame f, OpenDir(get, child, std::move(path), depth));
      stack.push_back(std::move(f));
    }
  }
  return Status::Ok();
}

Status WalkCommit(const ObjectGetter& get, const Commit& c, const WalkFn& fn) {
  if (c.root.type != FileType::kDirectory) return Status::Corruption("commit root is not a directory");
  LinkResolver links(get, c.links);
  return WalkDir(get, links, c.root.content, "", 0, fn);
}

}  // namespace hashfs
