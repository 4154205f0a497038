#include "tree/verify.h"

#include <tbb/blocked_range.h>
#include <tbb/parallel_for.h>
#include <tbb/task_group.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <unordered_map>
#include <unordered_set>

#include "cas/object_codec.h"
#include "cas/tsan_sync.h"
#include "tree/dir_tree.h"
#include "tree/file_manifest.h"
#include "tree/walk.h"

namespace hashfs {
namespace {

constexpr size_t kBatchBytes = 8u << 20;
constexpr size_t kBatchItems = 4096;

// Pass 1: every stored object decodes and hashes to its name. The scan fills
// one batch while the previous one is checked by the TBB workers.
Status CheckAllObjects(ObjectStore& store, const std::function<void(uint64_t, uint64_t)>& progress,
                       VerifyReport* report, std::map<Digest, std::string>* bad) {
  uint64_t total = 0;
  if (progress) {
    HASHFS_RETURN_IF_ERROR(store.ForEachObject([&](const Digest&, std::string_view) {
      total++;
      return Status::Ok();
    }));
  }
  struct Item {
    Digest d;
    std::string stored;
  };
  std::vector<Item> filling, inflight;
  size_t filling_bytes = 0;
  std::mutex mu;
  std::atomic<uint64_t> done{0};
  tbb::task_group tg;
  bool running = false;
  // `filling` and `inflight` are handed to and from the tasks through TBB,
  // which TSan cannot see: the tag carries those hand-offs (cas/tsan_sync.h).
  // (Static, so that reading it is not itself an unordered access.)
  static const char handoff_tag = 0;
  auto launch = [&] {
    if (running) {
      tg.wait();
      TsanAcquire(&handoff_tag);
    }
    running = false;
    inflight.swap(filling);
    filling.clear();
    filling_bytes = 0;
    if (inflight.empty()) return;
    running = true;
    TsanRelease(&handoff_tag);
    tg.run([&] {
      TsanAcquire(&handoff_tag);
      tbb::parallel_for(tbb::blocked_range<size_t>(0, inflight.size()), [&](const tbb::blocked_range<size_t>& r) {
        TsanAcquire(&handoff_tag);
        for (size_t i = r.begin(); i != r.end(); ++i) {
          auto plain = DecodeStoredObject(inflight[i].d, inflight[i].stored);
          if (!plain.ok()) {
            std::lock_guard lk(mu);
            bad->emplace(inflight[i].d, plain.status().message());
          }
          done.fetch_add(1, std::memory_order_relaxed);
        }
        TsanRelease(&handoff_tag);
      });
      TsanRelease(&handoff_tag);
    });
  };
  Status s = store.ForEachObject([&](const Digest& d, std::string_view stored) {
    report->objects_checked++;
    report->bytes_checked += stored.size();
    filling.push_back({d, std::string(stored)});
    filling_bytes += stored.size();
    if (filling_bytes >= kBatchBytes || filling.size() >= kBatchItems) {
      launch();
      if (progress) progress(done.load(), std::max(total, report->objects_checked));
    }
    return Status::Ok();
  });
  launch();  // the last partial batch (after waiting for the previous one)
  if (running) {
    tg.wait();
    TsanAcquire(&handoff_tag);
  }
  HASHFS_RETURN_IF_ERROR(s);
  if (progress) progress(done.load(), std::max(total, report->objects_checked));
  return Status::Ok();
}

struct Problem {
  std::string path;  // relative to the directory being checked; "" is the directory itself
  std::string reason;
};

std::string Under(const std::string& name, const std::string& rel) { return rel.empty() ? name : name + "/" + rel; }

struct MemoKey {
  Digest dir;
  Digest links;  // zero when the subtree holds no hardlinks
  bool operator==(const MemoKey&) const = default;
};
struct MemoKeyHash {
  size_t operator()(const MemoKey& k) const noexcept { return DigestHash()(k.dir) ^ (DigestHash()(k.links) * 31); }
};
struct MemoVal {
  std::vector<Problem> problems;
  bool uses_links = false;
};

struct LinkCtx {
  Digest root;
  std::map<uint64_t, LinkRecord> records;
  std::string error;  // first failure reading the table, if any
  bool unfetched = false;  // lazy clone: (part of) the table is not fetched
};

// Pass 2: reads commits' trees, memoizing clean and damaged subtrees.
class TreeChecker {
 public:
  TreeChecker(ObjectStore& store, const std::map<Digest, std::string>& bad, bool lazy)
      : store_(store), bad_(bad), lazy_(lazy) {
    get_ = [this](const Digest& d) -> Result<std::string> {
      if (bad_.count(d)) return Status::Corruption("object " + d.Hex() + " is corrupt");
      auto r = store_.Get(d);
      if (!r.ok() && r.status().IsNotFound()) {
        if (lazy_) {
          std::lock_guard lk(unfetched_mu_);
          unfetched_.insert(d);
          return Status::NotFound("object " + d.Hex() + " is not fetched");
        }
        return Status::NotFound("object " + d.Hex() + " is missing");
      }
      return r;
    };
  }

  uint64_t unfetched() {
    std::lock_guard lk(unfetched_mu_);
    return unfetched_.size();
  }

  // Problems of one commit, paths relative to its root.
  const std::vector<Problem>& CheckCommit(const Digest& id) {
    auto it = commits_.find(id);
    if (it != commits_.end()) return it->second;
    std::vector<Problem> out;
    auto bytes = get_(id);
    if (!bytes.ok() && Unfetched(bytes.status())) {
      // not fetched: nothing local to check
    } else if (!bytes.ok()) {
      out.push_back({"", "commit object: " + bytes.status().message()});
    } else if (auto c = DecodeCommit(*bytes); !c.ok()) {
      out.push_back({"", "commit object: " + c.status().message()});
    } else if (c->root.type != FileType::kDirectory) {
      out.push_back({"", "commit root is not a directory"});
    } else {
      out = CheckTree(c->root.content, Links(c->links));
    }
    return commits_.emplace(id, std::move(out)).first->second;
  }

 private:
  // One node of a directory's trie being checked. A directory's root node
  // carries the directory's entry name; its inner nodes share its paths.
  struct Frame {
    Digest node;
    std::string name;  // dir_root: entry name in the parent directory ("" for the commit root)
    bool dir_root = false;
    DirNode n;         // empty if unreadable
    size_t next = 0;
    int dir_depth = 1;   // 1 for the commit's root directory
    int trie_depth = 0;  // 0 for a directory's root node
    std::vector<Problem> problems;  // paths relative to the node's directory
    bool uses_links = false;
  };

  const LinkCtx& Links(const Digest& root) {
    auto it = links_.find(root);
    if (it != links_.end()) return it->second;
    LinkCtx ctx;
    ctx.root = root;
    Status s = link_table::ForEach(get_, root, [&](const LinkRecord& r) {
      ctx.records.emplace(r.id, r);
      return Status::Ok();
    });
    if (!s.ok() && Unfetched(s)) ctx.unfetched = true;
    else if (!s.ok()) ctx.error = s.message();
    return links_.emplace(root, std::move(ctx)).first->second;
  }

  // A lookup that failed only because a lazy clone has not fetched it.
  bool Unfetched(const Status& s) const { return lazy_ && s.IsNotFound(); }

  std::optional<std::string> CheckChunk(const Digest& d) {
    if (bad_.count(d)) return "data object " + d.Hex() + " is corrupt";
    if (present_.count(d)) return std::nullopt;
    auto present = store_.Contains(d);
    if (!present.ok()) return "cannot check data object " + d.Hex() + ": " + present.status().message();
    if (!*present) {
      if (lazy_) {
        std::lock_guard lk(unfetched_mu_);
        unfetched_.insert(d);
        return std::nullopt;
      }
      return "data object " + d.Hex() + " is missing";
    }
    if (present_.size() >= kMaxPresentMemo) present_.clear();
    present_.insert(d);
    return std::nullopt;
  }

  std::optional<std::string> CheckFile(const Inode& in) {
    if (in.type != FileType::kRegular) return std::nullopt;
    if (in.layout == ContentLayout::kInline) {
      for (const auto& c : in.chunks)
        if (auto r = CheckChunk(c.digest)) return r;
      return std::nullopt;
    }
    auto key = std::make_pair(in.content, in.size);
    auto it = manifests_.find(key);
    if (it != manifests_.end()) return it->second;
    Status s = file_manifest::CheckDistinctNodes(get_, in, &nodes_, [&](const ChunkRef& c) -> Status {
      if (auto r = CheckChunk(c.digest)) return Status::Corruption(*r);
      return Status::Ok();
    });
    std::optional<std::string> out;
    if (!s.ok() && !Unfetched(s)) out = s.message();
    manifests_.emplace(key, out);
    return out;
  }

  const MemoVal* Memo(const Digest& dir, const Digest& links) const {
    auto it = memo_.find(MemoKey{dir, Digest{}});
    if (it != memo_.end()) return &it->second;
    if (links.IsZero()) return nullptr;
    it = memo_.find(MemoKey{dir, links});
    return it != memo_.end() ? &it->second : nullptr;
  }

  Frame Open(const Digest& node, std::string name, bool dir_root, int dir_depth, int trie_depth) {
    Frame f;
    f.node = node;
    f.name = std::move(name);
    f.dir_root = dir_root;
    f.dir_depth = dir_depth;
    f.trie_depth = trie_depth;
    auto n = dir_tree::LoadNode(get_, node, trie_depth);
    if (!n.ok()) {
      if (!Unfetched(n.status())) f.problems.push_back({"", "directory is unreadable: " + n.status().message()});
      return f;
    }
    f.n = std::move(n).value();
    return f;
  }

  // Problems in name order (the directory itself first): by the first path
  // component, then by position, so each entry's own problems keep their
  // order. (Indices with std::sort, not std::stable_sort: its temporary
  // buffer pairs operator new(nothrow) with operator delete, which ASan
  // reports.)
  static void SortProblems(std::vector<Problem>& ps) {
    if (ps.size() < 2) return;
    auto head = [](const Problem& p) { return std::string_view(p.path).substr(0, p.path.find('/')); };
    std::vector<size_t> order(ps.size());
    for (size_t i = 0; i < order.size(); i++) order[i] = i;
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
      int c = head(ps[a]).compare(head(ps[b]));
      return c < 0 || (c == 0 && a < b);
    });
    std::vector<Problem> sorted;
    sorted.reserve(ps.size());
    for (size_t i : order) sorted.push_back(std::move(ps[i]));
    ps = std::move(sorted);
  }

  // Walks the directory tree at `root` node by node: a trie node already
  // checked (in this commit or another) is not read again, so commits that
  // changed one entry of a large directory cost one path of its trie.
  std::vector<Problem> CheckTree(const Digest& root, const LinkCtx& links) {
    if (const MemoVal* m = Memo(root, links.root)) return m->problems;
    std::vector<Frame> stack;
    stack.push_back(Open(root, "", true, 1, 0));
    for (;;) {
      Frame& top = stack.back();
      if (!top.n.leaf && top.next < top.n.children.size()) {
        const Digest child = top.n.children[top.next++].first;
        if (const MemoVal* m = Memo(child, links.root)) {
          top.problems.insert(top.problems.end(), m->problems.begin(), m->problems.end());
          top.uses_links |= m->uses_links;
        } else {
          stack.push_back(Open(child, "", false, top.dir_depth, top.trie_depth + 1));  // invalidates `top`
        }
        continue;
      }
      if (top.n.leaf && top.next < top.n.entries.size()) {
        const Entry& e = top.n.entries[top.next++];
        const Inode* in = &e.inode;
        if (e.link_id != 0) {
          top.uses_links = true;
          auto rec = links.records.find(e.link_id);
          std::string id = std::to_string(e.link_id);
          if (rec == links.records.end()) {
            if (links.unfetched) continue;  // lazy clone: the record may be in an unfetched node
            top.problems.push_back({e.name, links.error.empty()
                                                ? "hardlink record " + id + " is missing from the link table"
                                                : "hardlink record " + id + " is unreadable: " + links.error});
            continue;
          }
          if (rec->second.inode.type != e.inode.type) {
            top.problems.push_back({e.name, "hardlink record " + id + " has another type than its entry"});
            continue;
          }
          in = &rec->second.inode;
        }
        if (in->type == FileType::kDirectory) {
          if (const MemoVal* m = Memo(in->content, links.root)) {
            for (const auto& p : m->problems) top.problems.push_back({Under(e.name, p.path), p.reason});
            top.uses_links |= m->uses_links;
          } else {
            Frame f = Open(in->content, e.name, true, top.dir_depth + 1, 0);
            if (f.dir_depth > kMaxTreeDepth && (!f.n.entries.empty() || !f.n.children.empty()))
              top.problems.push_back(
                  {e.name, "directory tree is deeper than " + std::to_string(kMaxTreeDepth) + " levels"});
            else
              stack.push_back(std::move(f));  // invalidates `top`
          }
        } else if (auto r = CheckFile(*in)) {
          top.problems.push_back({e.name, std::move(*r)});
        }
        continue;
      }
      Frame done = std::move(stack.back());
      stack.pop_back();
      SortProblems(done.problems);
      MemoVal& slot = memo_[MemoKey{done.node, done.uses_links ? links.root : Digest{}}];
      slot.problems = done.problems;
      slot.uses_links = done.uses_links;
      if (stack.empty()) return std::move(done.problems);
      Frame& parent = stack.back();
      for (auto& p : done.problems)
        parent.problems.push_back({done.dir_root ? Under(done.name, p.path) : std::move(p.path), std::move(p.reason)});
      parent.uses_links |= done.uses_links;
    }
  }

  // Data objects found present, so that the chunks of files many commits
  // share are looked up once; cleared when full (~20 MiB).
  static constexpr size_t kMaxPresentMemo = 256 * 1024;

  ObjectStore& store_;
  const std::map<Digest, std::string>& bad_;
  const bool lazy_;
  std::mutex unfetched_mu_;
  std::set<Digest> unfetched_;  // lazy clone: reachable objects not in the store
  ObjectGetter get_;
  std::unordered_map<MemoKey, MemoVal, MemoKeyHash> memo_;  // by directory trie node
  std::unordered_set<Digest, DigestHash> present_;
  std::map<std::pair<Digest, uint64_t>, std::optional<std::string>> manifests_;
  file_manifest::NodeMemo nodes_;  // manifest nodes whose chunks are all intact
  std::unordered_map<Digest, LinkCtx, DigestHash> links_;
  std::unordered_map<Digest, std::vector<Problem>, DigestHash> commits_;
};

}  // namespace

Result<VerifyReport> VerifyStore(Repository& repo, std::function<void(uint64_t done, uint64_t total)> progress,
                                 const VerifyOptions& opts) {
  VerifyReport report;
  HASHFS_ASSIGN_OR_RETURN(StructureCheck structure, repo.store().CheckStructure());
  report.store_damage = std::move(structure.problems);
  if (!structure.walkable) {
    report.objects_checked_at_all = false;
    return report;
  }
  std::map<Digest, std::string> bad;
  HASHFS_RETURN_IF_ERROR(CheckAllObjects(repo.store(), progress, &report, &bad));
  for (const auto& [d, why] : bad) report.corrupt_objects.push_back(d.Hex() + ": " + why);

  // Every kept commit under each name that keeps it.
  std::vector<std::pair<std::string, Digest>> named;
  HASHFS_ASSIGN_OR_RETURN(auto volumes, repo.Volumes());
  for (const auto& v : volumes) {
    auto hist = repo.History(v);
    if (!hist.ok()) {
      if (hist.status().IsNotFound()) continue;  // removed meanwhile
      return hist.status();
    }
    for (const auto& h : *hist) named.emplace_back(v, h.commit);
  }
  HASHFS_ASSIGN_OR_RETURN(auto snaps, repo.Snapshots());
  for (auto& s : snaps) named.push_back(std::move(s));

  TreeChecker checker(repo.store(), bad, opts.missing_is_unfetched);
  std::set<std::pair<std::string, Digest>> seen;
  for (const auto& [name, commit] : named) {
    if (!seen.insert({name, commit}).second) continue;
    const auto& problems = checker.CheckCommit(commit);
    std::string prefix = name + "@" + commit.Hex().substr(0, 12) + ":";
    for (const auto& p : problems)
      report.damaged_paths.push_back(prefix + (p.path.empty() ? "." : p.path) + ": " + p.reason);
  }
  report.objects_not_fetched = checker.unfetched();
  return report;
}

}  // namespace hashfs
