// ls, cat, diff.
#include <unistd.h>

#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "tree/diff.h"
#include "tree/file_manifest.h"
#include "tree/restore.h"

namespace hashfs::cli {
namespace {

struct Target {
  Opened o;
  Commit commit;
  Entry entry;
};

Result<Target> Locate(const GlobalOptions& g, const std::string& arg) {
  auto [ref, path] = SplitRefPath(arg);
  Target t;
  HASHFS_ASSIGN_OR_RETURN(t.o, OpenRepoForReading(g));
  HASHFS_ASSIGN_OR_RETURN(Digest id, t.o.repo->Resolve(ref));
  HASHFS_ASSIGN_OR_RETURN(t.commit, t.o.repo->LoadCommit(id));
  HASHFS_ASSIGN_OR_RETURN(t.entry, LookupPath(*t.o.repo, t.commit, path));
  return t;
}

nlohmann::json EntryJson(const std::string& name, const Inode& n, uint32_t nlink) {
  nlohmann::json j = {{"name", name},   {"type", std::string(1, FileTypeChar(n.type))},
                      {"mode", n.mode}, {"uid", n.uid},
                      {"gid", n.gid},   {"size", n.size},
                      {"mtime_ns", n.mtime_ns}, {"nlink", nlink}};
  if (n.type == FileType::kSymlink) j["target"] = n.symlink_target;
  if (n.type == FileType::kCharDevice || n.type == FileType::kBlockDevice) j["rdev"] = n.rdev;
  if (!n.xattrs.empty()) {
    nlohmann::json x = nlohmann::json::object();
    for (const auto& [k, v] : n.xattrs) x[k] = v;
    j["xattrs"] = x;
  }
  return j;
}

int RunLs(const GlobalOptions& g, const std::string& arg, bool longfmt, bool as_json) {
  auto t = Locate(g, arg);
  if (!t.ok()) return Fail(t.status());
  Repository& repo = *t->o.repo;
  std::vector<std::pair<std::string, std::pair<Inode, uint32_t>>> rows;
  if (t->entry.inode.type == FileType::kDirectory) {
    auto entries = dir_tree::ListSorted(repo.getter(), t->entry.inode.content);
    if (!entries.ok()) return Fail(entries.status());
    for (const auto& e : *entries) {
      Inode n = e.inode;
      uint32_t nlink = 1;
      if (e.link_id) {
        auto rec = link_table::Lookup(repo.getter(), t->commit.links, e.link_id);
        if (!rec.ok()) return Fail(rec.status());
        if (!*rec) return Fail("hardlink record of " + e.name + " is missing");
        n = (*rec)->inode;
        nlink = (*rec)->nlink;
      }
      rows.push_back({e.name, {n, nlink}});
    }
  } else {
    rows.push_back({t->entry.name, {t->entry.inode, 1}});
  }
  if (as_json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& [name, p] : rows) arr.push_back(EntryJson(name, p.first, p.second));
    fmt::print("{}\n", arr.dump(2));
    return kExitOk;
  }
  for (const auto& [name, p] : rows) {
    const Inode& n = p.first;
    if (!longfmt) {
      fmt::print("{}{}\n", name, n.type == FileType::kDirectory ? "/" : "");
      continue;
    }
    std::string size = (n.type == FileType::kCharDevice || n.type == FileType::kBlockDevice)
                           ? fmt::format("{},{}", n.rdev >> 8 & 0xfff, (n.rdev & 0xff) | (n.rdev >> 12 & 0xfff00))
                           : std::to_string(n.size);
    fmt::print("{} {:>3} {:>6} {:>6} {:>12} {} {}{}\n", ModeString(n), p.second, n.uid, n.gid, size,
               FormatTime(n.mtime_ns), name, n.type == FileType::kSymlink ? " -> " + n.symlink_target : "");
  }
  return kExitOk;
}

int RunCat(const GlobalOptions& g, const std::string& arg) {
  if (arg.find(':') == std::string::npos) return Fail("cat needs REF:PATH", kExitUsage);
  auto t = Locate(g, arg);
  if (!t.ok()) return Fail(t.status());
  const Inode& n = t->entry.inode;
  if (n.type != FileType::kRegular) return Fail(arg + " is not a regular file");
  ObjectGetter get = t->o.repo->getter();
  Status s = file_manifest::ForEachChunk(get, n, [&](const ChunkRef& c, uint64_t off) -> Status {
    auto data = get(c.digest);
    if (!data.ok()) return data.status().WithContext(fmt::format("offset {}", off));
    size_t done = 0;
    while (done < data->size()) {
      ssize_t w = write(STDOUT_FILENO, data->data() + done, data->size() - done);
      if (w < 0) {
        if (errno == EINTR) continue;
        return Status::FromErrno(errno, "writing to stdout");
      }
      done += static_cast<size_t>(w);
    }
    return Status::Ok();
  });
  if (!s.ok()) return Fail(s.WithContext(arg));
  return kExitOk;
}

const char* KindName(DiffEntry::Kind k) {
  switch (k) {
    case DiffEntry::kAdded: return "added";
    case DiffEntry::kRemoved: return "removed";
    case DiffEntry::kModified: return "modified";
    case DiffEntry::kMetadata: return "metadata";
  }
  return "?";
}

int RunDiff(const GlobalOptions& g, const std::string& a, const std::string& b, bool as_json) {
  auto o = OpenRepo(g);
  if (!o.ok()) return Fail(o.status());
  auto ia = o->repo->Resolve(a);
  if (!ia.ok()) return Fail(ia.status());
  auto ib = o->repo->Resolve(b);
  if (!ib.ok()) return Fail(ib.status());
  auto ca = o->repo->LoadCommit(*ia);
  if (!ca.ok()) return Fail(ca.status());
  auto cb = o->repo->LoadCommit(*ib);
  if (!cb.ok()) return Fail(cb.status());
  auto d = DiffCommits(*o->repo, *ca, *cb);
  if (!d.ok()) return Fail(d.status());
  if (as_json) {
    nlohmann::json arr = nlohmann::json::array();
    for (const auto& e : *d)
      arr.push_back({{"kind", KindName(e.kind)},
                     {"path", e.path},
                     {"type", std::string(1, FileTypeChar(e.type))},
                     {"old_size", e.old_size},
                     {"new_size", e.new_size}});
    fmt::print("{}\n", arr.dump(2));
    return kExitOk;
  }
  static const char kSigil[] = {'+', '-', 'M', 'm'};
  for (const auto& e : *d) {
    std::string sizes;
    if (e.kind == DiffEntry::kAdded) sizes = std::to_string(e.new_size);
    if (e.kind == DiffEntry::kRemoved) sizes = std::to_string(e.old_size);
    if (e.kind == DiffEntry::kModified || e.kind == DiffEntry::kMetadata)
      sizes = fmt::format("{} -> {}", e.old_size, e.new_size);
    fmt::print("{} {}{}  ({})\n", kSigil[e.kind], e.path, e.type == FileType::kDirectory ? "/" : "", sizes);
  }
  return kExitOk;
}

}  // namespace

void AddBrowseCommands(CLI::App& app, GlobalOptions& g, int* rc) {
  auto arg = std::make_shared<std::string>();
  auto longfmt = std::make_shared<bool>(false);
  auto json = std::make_shared<bool>(false);
  auto* ls = app.add_subcommand("ls", "List a directory of a past or current state");
  ls->add_option("TARGET", *arg, "REF or REF:PATH")->required();
  ls->add_flag("-l,--long", *longfmt, "Long listing");
  ls->add_flag("--json", *json, "Print JSON");
  ls->callback([&g, rc, arg, longfmt, json] { *rc = RunLs(g, *arg, *longfmt, *json); });

  auto carg = std::make_shared<std::string>();
  auto* cat = app.add_subcommand("cat", "Write a file of a past or current state to stdout");
  cat->add_option("TARGET", *carg, "REF:PATH")->required();
  cat->callback([&g, rc, carg] { *rc = RunCat(g, *carg); });

  auto da = std::make_shared<std::string>();
  auto db = std::make_shared<std::string>();
  auto djson = std::make_shared<bool>(false);
  auto* diff = app.add_subcommand("diff", "Show what changed between two states");
  diff->add_option("FROM", *da, "REF")->required();
  diff->add_option("TO", *db, "REF")->required();
  diff->add_flag("--json", *djson, "Print JSON");
  diff->callback([&g, rc, da, db, djson] { *rc = RunDiff(g, *da, *db, *djson); });
}

}  // namespace hashfs::cli
