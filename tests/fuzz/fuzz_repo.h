// A small deterministic repository in a MemoryStore, built through the real
// write path (ObjectWriter, dir_tree, link_table, file_manifest, Repository),
// together with an independent model of it: which volumes, histories and
// snapshots exist, and what every path of every commit holds. Used by the
// REF fuzzer as its oracle and by the corpus generator as a source of real
// encoded objects and ref records.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cas/memory_store.h"
#include "tests/fuzz/fuzz_util.h"
#include "tree/dir_tree.h"
#include "tree/file_manifest.h"
#include "tree/object_writer.h"
#include "tree/repository.h"

namespace hashfs::fuzz {

// What LookupPath must return for a path: the entry as named in its parent
// (root: empty name) with hardlinks resolved (link_id 0).
struct ModelNode {
  Entry entry;
  std::map<std::string, ModelNode> kids;  // directories only
};

struct FuzzRepo {
  MemoryStore store;
  std::unique_ptr<Repository> repo;
  std::map<std::string, std::vector<Digest>> volumes;  // name -> history, oldest first
  std::map<std::string, Digest> snapshots;
  std::map<Digest, ModelNode> trees;  // commit -> its root
};

namespace repo_detail {

inline void Must(const Status& s) { FUZZ_CHECK_MSG(s.ok(), s.ToString()); }
template <typename T>
T Must(Result<T> r) {
  FUZZ_CHECK_MSG(r.ok(), r.status().ToString());
  return std::move(r).value();
}

inline Inode Attr(FileType t, uint32_t mode, int64_t salt) {
  Inode n;
  n.type = t;
  n.mode = mode;
  n.uid = 1000;
  n.gid = 1000;
  n.mtime_ns = 1763800000000000000 + salt;
  n.ctime_ns = 1763800000000000000 + salt;
  return n;
}

inline Entry File(ObjectWriter& w, std::string name, size_t chunks, int64_t salt) {
  Entry e;
  e.name = std::move(name);
  e.inode = Attr(FileType::kRegular, 0644, salt);
  e.inode.source_ino = static_cast<uint64_t>(100 + salt);
  std::vector<ChunkRef> refs;
  for (size_t i = 0; i < chunks; i++)
    refs.push_back({Sha256Of(e.name + "#" + std::to_string(i) + "#" + std::to_string(salt)), 1000 + i});
  Must(file_manifest::SetContent(w, std::move(refs), &e.inode));
  return e;
}

// Writes a directory of `kids` (model nodes) and returns its model node.
inline ModelNode Dir(ObjectWriter& w, std::string name, std::vector<ModelNode> kids,
                     const std::map<std::string, uint64_t>& link_ids = {}) {
  ModelNode m;
  std::vector<Entry> entries;
  for (auto& k : kids) {
    Entry stored = k.entry;
    if (auto it = link_ids.find(k.entry.name); it != link_ids.end()) {
      stored.link_id = it->second;
      stored.inode = Inode{};
      stored.inode.type = k.entry.inode.type;
    }
    entries.push_back(stored);
    std::string kname = k.entry.name;
    m.kids.emplace(kname, std::move(k));
  }
  m.entry.name = std::move(name);
  m.entry.inode = Attr(FileType::kDirectory, 0755, 7);
  m.entry.inode.content = Must(dir_tree::Build(w, std::move(entries)));
  return m;
}

inline ModelNode Leaf(Entry e) {
  ModelNode m;
  m.entry = std::move(e);
  return m;
}

// The tree of commit number `version` of a volume.
inline Digest MakeCommit(FuzzRepo& r, ObjectWriter& w, int version, const Digest& parent, const std::string& what) {
  std::vector<ModelNode> docs;
  docs.push_back(Leaf(File(w, "a.txt", 1, version)));
  docs.push_back(Leaf(File(w, "b.txt", 3, 0)));
  docs.push_back(Leaf(File(w, "manual.pdf", 40 + static_cast<size_t>(version), 0)));  // a manifest
  std::vector<ModelNode> big;  // > kHamtLeafMax entries: an internal trie node
  for (int i = 0; i < 600; i++) big.push_back(Leaf(File(w, "f" + std::to_string(i), 1, i)));

  std::vector<ModelNode> top;
  top.push_back(Dir(w, "docs", std::move(docs)));
  top.push_back(Dir(w, "big", std::move(big)));
  Entry link;
  link.name = "link";
  link.inode = Attr(FileType::kSymlink, 0777, 0);
  link.inode.symlink_target = "docs/a.txt";
  link.inode.size = link.inode.symlink_target.size();
  top.push_back(Leaf(link));
  Entry fifo;
  fifo.name = "pipe";
  fifo.inode = Attr(FileType::kFifo, 0600, 0);
  top.push_back(Leaf(fifo));
  Entry dev;
  dev.name = "tty0";
  dev.inode = Attr(FileType::kCharDevice, 0620, 0);
  dev.inode.rdev = 0x0400;
  top.push_back(Leaf(dev));
  Entry x = File(w, "with xattrs", 2, 0);
  x.inode.xattrs = {{"user.a", "1"}, {"user.b", std::string("\0\xff", 2)}};
  top.push_back(Leaf(x));
  // Two names of one hardlinked file, through the link table.
  Entry shared = File(w, "h1", 2, version);
  LinkRecord rec{1, 2, shared.inode};
  Entry h2 = shared;
  h2.name = "h2";
  top.push_back(Leaf(shared));
  top.push_back(Leaf(h2));
  if (version > 0) top.push_back(Leaf(File(w, "new-" + std::to_string(version), 1, version)));
  ModelNode root = Dir(w, "", std::move(top), {{"h1", 1}, {"h2", 1}});

  Commit c;
  c.root = root.entry.inode;
  c.links = Must(link_table::Build(w, {rec}));
  c.parent = parent;
  c.time_ns = 1763800000000000000 + version;
  c.description = what;
  Digest id = Must(w.Put(EncodeCommit(c), ObjectKind::kMeta));
  r.trees[id] = std::move(root);
  return id;
}

}  // namespace repo_detail

// Volumes "home" (3 commits), "work" (1), "v.2-x_y" (1); snapshots "snap-1"
// (= home~1) and "keep" (= work).
inline std::unique_ptr<FuzzRepo> BuildFuzzRepo() {
  using namespace repo_detail;
  auto r = std::make_unique<FuzzRepo>();
  RepoConfig cfg;
  cfg.chunking = ChunkParams{4096, 16384, 65536};
  Must(Repository::Init(r->store, cfg));
  r->repo = Must(Repository::Open(r->store));
  ObjectWriter w(r->store, 3);
  auto advance = [&](const std::string& vol, int version) {
    auto& hist = r->volumes[vol];
    Digest parent = hist.empty() ? Digest{} : hist.back();
    Digest id = MakeCommit(*r, w, version, parent, vol + " #" + std::to_string(version));
    Must(w.Flush());
    std::optional<Digest> expected;
    if (!hist.empty()) expected = hist.back();
    Must(r->repo->Advance(vol, expected, id, Must(r->repo->GcEpoch())));
    hist.push_back(id);
  };
  advance("home", 0);
  advance("home", 1);
  advance("home", 2);
  advance("work", 10);
  advance("v.2-x_y", 20);
  Must(r->repo->CreateSnapshot("snap-1", r->volumes["home"][1]));
  Must(r->repo->CreateSnapshot("keep", r->volumes["work"][0]));
  r->snapshots["snap-1"] = r->volumes["home"][1];
  r->snapshots["keep"] = r->volumes["work"][0];
  return r;
}

}  // namespace hashfs::fuzz
