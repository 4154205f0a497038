#include "fusefs/filesystem.h"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/xattr.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>
#include <unordered_map>

#include <fmt/format.h>

#include "fusefs/chunk_cache.h"
#include "fusefs/file_content.h"
#include "fusefs/posix_acl.h"
#include "tree/file_manifest.h"
#include "tree/gc.h"
#include "tree/object_writer.h"

namespace hashfs::fusefs {

void LogLine(std::string_view line) noexcept {
  try {
    std::string l = "hashfs: ";
    l.append(line);
    l += '\n';
    (void)!fwrite(l.data(), 1, l.size(), stderr);
    (void)fflush(stderr);
  } catch (...) {
    // Out of memory while logging: nothing more to do.
  }
}

namespace {

constexpr uint64_t kMetaIno = 2;       // /.hashfs
constexpr uint64_t kHistoryIno = 3;    // /.hashfs/history
constexpr uint64_t kSnapshotsIno = 4;  // /.hashfs/snapshots
constexpr uint64_t kFirstIno = 16;
constexpr std::string_view kMetaName = ".hashfs";
constexpr double kFrozenTimeout = 3600.0;


Status Err(Status::Code c, std::string m) { return Status::Make(c, std::move(m)); }

Status CheckName(std::string_view name) {
  if (name.size() > kMaxNameLength) return Err(Status::Code::kNameTooLong, "name longer than 255 bytes");
  if (!IsValidEntryName(name)) return Status::InvalidArgument("invalid name");
  return Status::Ok();
}

struct Tree {
  bool read_only = false;
  Digest links;  // link-table root (live tree: as last committed)
  std::unordered_map<uint64_t, uint64_t> link_nodes;  // link id -> node id
  double timeout = kFrozenTimeout;
  uint64_t salt = 0;  // 0: the live tree; else mixes stored inode numbers (a past commit's view)
  size_t nodes = 0;   // nodes whose `tree` is this one: a past commit's Tree is freed at 0
};

// ------------------------------------------------------------ st_ino
// Inode numbers (design.md, "Inode numbers"). Every number hashfs derives
// or assigns has bit 63 set; 1-4 are the root and the .hashfs directories.
constexpr uint64_t kHashfsInoBit = 1ull << 63;

uint64_t Mix64(uint64_t x) {  // splitmix64's finalizer: a bijection
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

// The st_ino of name `name` in the directory numbered `parent`.
uint64_t DerivedIno(uint64_t parent, std::string_view name) {
  uint64_t h = Mix64(parent ^ 0x9e3779b97f4a7c15ULL ^ (uint64_t{name.size()} << 48));
  size_t i = 0;
  for (; i + 8 <= name.size(); i += 8) {
    uint64_t w = 0;
    for (size_t k = 0; k < 8; k++) w |= uint64_t{static_cast<uint8_t>(name[i + k])} << (8 * k);
    h = Mix64(h ^ w);
  }
  uint64_t w = 0;
  for (size_t k = 0; i + k < name.size(); k++) w |= uint64_t{static_cast<uint8_t>(name[i + k])} << (8 * k);
  return Mix64(h ^ w) | kHashfsInoBit;
}

// A stored or link-id number as seen in tree t (past commits get their own).
uint64_t InTree(const Tree* t, uint64_t ino) {
  return t->salt == 0 ? ino : Mix64(t->salt ^ Mix64(ino)) | kHashfsInoBit;
}

// An entry's st_ino: the number stored in source_ino by a mount (bit 63
// set), else derived from the parent's st_ino and the name.
uint64_t EntryIno(const Tree* t, uint64_t parent, std::string_view name, const Inode& a) {
  if (a.source_ino & kHashfsInoBit) return InTree(t, a.source_ino);
  return DerivedIno(parent, name);
}

// A hardlink group's st_ino: the stored number, else one from the link id.
uint64_t LinkIno(const Tree* t, uint64_t link_id, const Inode& rec) {
  if (rec.source_ino & kHashfsInoBit) return InTree(t, rec.source_ino);
  return InTree(t, Mix64(link_id ^ 0x6c696e6b5f69645fULL) | kHashfsInoBit);
}

uint64_t DigestWord(const Digest& d, size_t word) {
  uint64_t w = 0;  // little-endian
  for (size_t k = 0; k < 8; k++) w |= uint64_t{d.bytes[8 * word + k]} << (8 * k);
  return w;
}
// A past commit's root directory, and the salt of its view.
uint64_t FrozenRootIno(const Digest& commit) { return Mix64(DigestWord(commit, 0)) | kHashfsInoBit; }
uint64_t FrozenSalt(const Digest& commit) { return Mix64(DigestWord(commit, 1)) | 1; }

enum class Kind { kNormal, kMeta, kHistory, kSnapshots };

// A name in a loaded listing. `node` is 0 when the entry has no node (never
// made, or evicted): it is then read again from the directory's committed
// entry tree when needed.
struct ChildRef {
  uint64_t node = 0;
  uint64_t st_ino = 0;
  FileType type = FileType::kRegular;
};

struct Node {
  // Counted in its tree's `nodes` for its whole life. Impl destroys `nodes`
  // before the trees they point to.
  explicit Node(Tree* t) : tree(t) { tree->nodes++; }
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  ~Node() { tree->nodes--; }
  uint64_t ino = 0;     // node id: the kernel's handle, never reused in a mount
  uint64_t st_ino = 0;  // inode number reported by stat and readdir
  Tree* const tree;
  Kind kind = Kind::kNormal;
  Inode attr;  // type, mode, owner, times, size, xattrs; file chunks as last flushed
  uint64_t link_id = 0;
  uint32_t nlink = 1;  // non-directories: names in the tree
  int64_t atime_ns = 0;
  bool atime_set = false;  // atime set explicitly: not stored, so the node is kept
  uint64_t lookups = 0;
  uint32_t opens = 0;
  bool removed = false;  // directory removed (non-directories: nlink == 0)
  std::vector<std::pair<uint64_t, std::string>> names;  // (parent ino, name)
  // Directories.
  bool loaded = false;  // `children` holds the listing
  std::map<std::string, ChildRef, std::less<>> children;
  uint32_t subdirs = 0;
  bool subdirs_known = false;  // `subdirs` is right even when the listing is not loaded
  std::set<std::string> dirty_names;  // children whose entries differ from `base`
  Digest base;                        // entry-tree root as last committed
  // Regular files: present while open or changed.
  std::unique_ptr<FileContent> content;
  // Regular files with a manifest: bytes in whole zero windows of the
  // manifest `holes_of` (st_blocks; read once per node and manifest).
  Digest holes_of;
  uint64_t holes = 0;

  bool is_dir() const { return attr.type == FileType::kDirectory; }
};

// A renamed entry keeps its st_ino: a derived number (from the old name)
// is stored with the entry from now on. Hardlinks keep theirs in the record.
void KeepNumber(Node* n) {
  if (!n->link_id) n->attr.source_ino = n->st_ino;
}

struct Handle {
  uint64_t ino = 0;
  bool writable = false;
  bool append = false;
  bool wrote = false;
  uint64_t next_read = 0;  // where a sequential reader reads next (read-ahead)
};

// Read-ahead for sequential reads: chunks decoded ahead of the reader.
constexpr uint64_t kReadAheadBytes = 16u << 20;

struct DirHandle {
  uint64_t ino = 0;
  std::shared_ptr<const DirListing> listing;
};

}  // namespace

struct Filesystem::Impl {
  Repository& repo;
  MountConfig cfg;
  ChunkParams chunking;
  ObjectGetter get;
  // Preload reads chunk lists outside mu one at a time: a crafted file's
  // list may take about 1 GiB (max_open_chunks), and under mu they were serial.
  std::mutex open_load_mu;
  ChunkCache cache;
  DirNodeCache dir_cache{64u << 20};  // decoded HAMT nodes: commits and lookups of evicted names
  std::unique_ptr<WriterSession> session;

  mutable std::mutex mu;
  ObjectWriter writer;  // one for the mount's life: a failed write keeps its objects for the retry
  Tree live;
  std::map<Digest, std::unique_ptr<Tree>> frozen;        // past commits shown in .hashfs
  std::map<Digest, uint64_t> frozen_roots;              // commit -> root ino
  std::unordered_map<uint64_t, std::unique_ptr<Node>> nodes;
  uint64_t next_ino = kFirstIno;
  // Eviction (Sweep): listing entries held (approximate between sweeps), and
  // how many nodes may have become evictable since the last sweep (made,
  // forgotten, closed, committed).
  size_t listed_entries = 0;
  size_t sweep_credit = 0;
  std::chrono::steady_clock::time_point last_sweep{};
  bool commit_in_flight = false;  // a built commit has not landed: bases are stale
  uint64_t next_fh = 1;
  std::unordered_map<uint64_t, Handle> handles;
  std::unordered_map<uint64_t, DirHandle> dir_handles;
  Digest empty_dir;
  Digest head;
  std::set<uint64_t> content_dirty;  // files whose content changed since the last commit
  std::set<uint64_t> dirty_links;    // link ids whose records changed
  bool root_dirty = false;
  struct Counts {
    uint64_t created = 0, removed = 0, renamed = 0, written = 0, changed = 0;
  } counts;
  Invalidator inval;
  std::mt19937_64 rng{std::random_device{}()};
  // SEEK_HOLE: digests of all-zero tails by length (under mu). A zero chunk
  // is one window of zeros (ZeroChunkLength of max_size) or a file's tail.
  std::map<uint64_t, Digest> zero_digests;
  const uint64_t zero_window_chunk = ZeroChunkLength(chunking.max_size, chunking);
  // st_blocks: the chunk a whole window of zeros makes (what a hole is
  // stored as). Tails of zeros are not counted as holes there: telling them
  // apart costs a hash per file length.
  const Digest zero_window_digest = Sha256Of(std::string(static_cast<size_t>(zero_window_chunk), '\0'));
  bool IsZeroWindow(const ChunkRef& c) const { return c.size == zero_window_chunk && c.digest == zero_window_digest; }
  // Bytes of a regular file that st_blocks leaves out: holes past the
  // stored content not yet filled, and whole windows of zeros. Files whose
  // chunks are in a manifest read it once per node, up to kHoleCountMaxChunks
  // chunks (4 TiB of 4 MiB windows; a manifest's nodes can repeat, so a few
  // objects can claim any number of chunks, and getattr must stay quick):
  // past that, or if the manifest is unreadable (reads report that), the
  // file counts as having no holes.
  static constexpr uint64_t kHoleCountMaxChunks = 1u << 20;
  uint64_t HoleBytes(Node* n) {
    if (n->content) return n->content->HoleBytes([this](const ChunkRef& c, bool) { return IsZeroWindow(c); });
    if (n->attr.layout == ContentLayout::kInline) {
      uint64_t holes = 0;
      for (const ChunkRef& c : n->attr.chunks)
        if (IsZeroWindow(c)) holes += c.size;
      return holes;
    }
    if (n->holes_of == n->attr.content) return n->holes;
    uint64_t holes = 0, seen = 0;
    Status s = file_manifest::ForEachChunk(get, n->attr, [&](const ChunkRef& c, uint64_t) {
      if (++seen > kHoleCountMaxChunks) return Status::Make(Status::Code::kTooBig, "too many chunks to count holes");
      if (IsZeroWindow(c)) holes += c.size;
      return Status::Ok();
    });
    n->holes_of = n->attr.content;
    n->holes = s.ok() ? holes : 0;
    return n->holes;
  }
  bool IsZeroChunk(const ChunkRef& c, bool last) {
    if (c.size == zero_window_chunk) return c.digest == zero_window_digest;
    if (!last) return false;
    auto it = zero_digests.find(c.size);
    if (it == zero_digests.end()) {
      if (zero_digests.size() >= 64) zero_digests.clear();  // tails of many lengths: bounded
      it = zero_digests.emplace(c.size, Sha256Of(std::string(static_cast<size_t>(c.size), '\0'))).first;
    }
    return it->second == c.digest;
  }

  // Commit scheduling.
  uint64_t change_gen = 0;    // bumped by every change
  uint64_t durable_gen = 0;   // changes up to here are in the durable head
  bool quiet_pending = false; // changes recorded without bumping change_gen (writes)
  uint64_t attempted_gen = 0;
  Status last_commit_status;
  uint64_t attempts = 0;  // commit attempts finished (successful or not)
  bool urgent = false;
  bool stop = false;
  std::chrono::steady_clock::time_point first_change{};
  std::condition_variable wake;       // committer
  std::condition_variable committed;  // waiters in Sync
  std::mutex commit_mu;               // one commit at a time
  std::string pinned_sig;             // what the session's pin/ ref holds (BuildPin)
  std::string last_logged_failure;    // committer: last commit error logged
  std::thread committer;

  Impl(Repository& r, MountConfig c)
      : repo(r),
        cfg(std::move(c)),
        chunking(r.config().chunking),
        get(MountGetter()),
        cache(MountGetter(), cfg.chunk_cache_bytes),
        writer(r.store(), cfg.zstd_level) {}

  // Reads objects through the writer, so chunks it still holds (queued, or
  // kept after a failed write) stay readable; an object missing from the
  // store is damage (EIO), not a missing name (ENOENT).
  ObjectGetter MountGetter() {
    return [this](const Digest& d) -> Result<std::string> {
      Result<std::string> r = writer.Get(d);
      if (!r.ok() && r.status().IsNotFound()) return Status::Corruption("object " + d.Hex() + " is missing");
      return r;
    };
  }

  // ------------------------------------------------------------ nodes

  Node* Find(uint64_t ino) {
    auto it = nodes.find(ino);
    return it == nodes.end() ? nullptr : it->second.get();
  }
  Result<Node*> Get(uint64_t ino) {
    Node* n = Find(ino);
    if (!n) return Status::NotFound(fmt::format("no inode {}", ino));
    return n;
  }
  Node* NewNode(Tree* t, Inode attr, uint64_t st_ino) {
    auto n = std::make_unique<Node>(t);
    n->ino = next_ino++;
    n->st_ino = st_ino;
    sweep_credit++;
    n->atime_ns = attr.mtime_ns;
    n->attr = std::move(attr);
    if (n->is_dir()) n->base = n->attr.content;
    Node* raw = n.get();
    nodes.emplace(raw->ino, std::move(n));
    return raw;
  }
  Node* NewVirtual(uint64_t ino, Kind k) {
    auto n = std::make_unique<Node>(&live);
    n->ino = ino;
    n->st_ino = ino;
    n->kind = k;
    n->attr.type = FileType::kDirectory;
    n->attr.mode = 0555;
    n->attr.mtime_ns = n->attr.ctime_ns = n->atime_ns = WallClockNs();
    n->loaded = true;
    Node* raw = n.get();
    nodes.emplace(ino, std::move(n));
    return raw;
  }
  bool IsReadOnly(const Node* n) const { return n->tree->read_only || n->kind != Kind::kNormal; }
  Status Writable(const Node* n) const {
    if (IsReadOnly(n)) return Err(Status::Code::kReadOnly, "read-only");
    return Status::Ok();
  }

  // Deletes a node nothing refers to any more.
  void MaybeDelete(Node* n) {
    if (n->ino < kFirstIno || n->lookups > 0 || n->opens > 0) return;
    if (n->is_dir() ? !n->removed : n->nlink > 0) return;
    if (!n->names.empty()) return;
    if (n->link_id) {
      auto it = n->tree->link_nodes.find(n->link_id);
      if (it != n->tree->link_nodes.end() && it->second == n->ino) n->tree->link_nodes.erase(it);
    }
    nodes.erase(n->ino);
  }

  // ------------------------------------------------------- dirty state

  void Changed() {
    if (change_gen == durable_gen) first_change = std::chrono::steady_clock::now();
    change_gen++;
    wake.notify_one();
  }
  // The entry `name` of directory `parent` changed: marks it and the names
  // of every ancestor (a directory has exactly one name). A name already
  // marked means its ancestors are marked too.
  // With wake=false (writes inside an open file) the change is recorded but
  // does not start a commit: close, fsync, Sync or any other change does.
  void MarkName(uint64_t parent_ino, std::string name, bool start_commit = true) {
    if (start_commit) Changed();
    else quiet_pending = true;
    for (;;) {
      Node* p = Find(parent_ino);
      if (!p || p->tree != &live || p->kind != Kind::kNormal) return;
      if (!p->dirty_names.insert(name).second) return;
      if (p->ino == kRootIno || p->names.empty()) return;
      parent_ino = p->names[0].first;
      name = p->names[0].second;
    }
  }
  // The node's own attributes or content changed.
  void MarkDirty(Node* n, bool start_commit = true) {
    if (n->tree != &live || n->kind != Kind::kNormal) return;
    auto changed = [&] {
      if (start_commit) Changed();
      else quiet_pending = true;
    };
    if (n->ino == kRootIno) {
      root_dirty = true;
      changed();
      return;
    }
    if (n->link_id) {
      dirty_links.insert(n->link_id);
      changed();
      return;
    }
    for (const auto& [p, name] : n->names) MarkName(p, name, start_commit);
    if (n->names.empty()) changed();
  }
  // Turns quiet changes into a pending commit.
  void WakeQuiet() {
    if (quiet_pending) Changed();
  }

  // ------------------------------------------------------- directories

  // The link record hardlinked entry e of tree t names.
  Result<LinkRecord> LinkRecordOf(const Tree* t, const ::hashfs::Entry& e) {
    HASHFS_ASSIGN_OR_RETURN(auto rec, link_table::Lookup(get, t->links, e.link_id));
    if (!rec) return Status::Corruption(fmt::format("entry {} names missing link record {}", e.name, e.link_id));
    return std::move(*rec);
  }

  // Makes (or, for a hardlink, finds) the node of entry e of directory d
  // and records the name on it.
  Result<Node*> NodeForEntry(Node* d, ::hashfs::Entry& e) {
    Node* c = nullptr;
    if (e.link_id) {
      auto it = d->tree->link_nodes.find(e.link_id);
      if (it != d->tree->link_nodes.end()) c = Find(it->second);
      if (!c) {
        HASHFS_ASSIGN_OR_RETURN(LinkRecord rec, LinkRecordOf(d->tree, e));
        uint64_t st = LinkIno(d->tree, e.link_id, rec.inode);
        c = NewNode(d->tree, std::move(rec.inode), st);
        c->link_id = e.link_id;
        c->nlink = rec.nlink;
        d->tree->link_nodes[e.link_id] = c->ino;
      }
    } else {
      uint64_t st = EntryIno(d->tree, d->st_ino, e.name, e.inode);
      c = NewNode(d->tree, std::move(e.inode), st);
    }
    c->names.emplace_back(d->ino, e.name);
    return c;
  }

  // Loads d's listing. Entries get nodes while the table is under its
  // budget; the rest only a ChildRef (their node is made when named).
  Status LoadDir(Node* d) {
    if (d->loaded) return Status::Ok();
    if (!d->is_dir()) return Err(Status::Code::kNotDirectory, "not a directory");
    if (d->removed) {  // a removed directory lists nothing
      d->loaded = d->subdirs_known = true;
      d->subdirs = 0;
      return Status::Ok();
    }
    HASHFS_ASSIGN_OR_RETURN(std::vector<::hashfs::Entry> entries, dir_tree::ListSorted(get, d->base));
    std::map<std::string, ChildRef, std::less<>> children;
    uint32_t subdirs = 0;
    std::vector<Node*> made;  // undone if a later entry fails
    Status s;
    for (auto& e : entries) {
      ChildRef ref;
      ref.type = e.inode.type;
      Node* c = nullptr;
      if (e.link_id) {
        auto it = d->tree->link_nodes.find(e.link_id);
        if (it != d->tree->link_nodes.end()) c = Find(it->second);
      }
      if (c || nodes.size() < cfg.max_inodes) {
        bool existed = c != nullptr;
        auto r = NodeForEntry(d, e);
        if (!r.ok()) {
          s = r.status();
          break;
        }
        c = *r;
        if (!existed) made.push_back(c);
        ref.node = c->ino;
        ref.st_ino = c->st_ino;
      } else if (e.link_id) {
        auto rec = LinkRecordOf(d->tree, e);
        if (!rec.ok()) {
          s = rec.status();
          break;
        }
        ref.st_ino = LinkIno(d->tree, e.link_id, rec->inode);
      } else {
        ref.st_ino = EntryIno(d->tree, d->st_ino, e.name, e.inode);
      }
      if (ref.type == FileType::kDirectory) subdirs++;
      children.emplace(std::move(e.name), ref);
    }
    if (!s.ok()) {
      // Leave no node pointing at a listing that is not loaded.
      for (auto& [name, ref] : children) {
        if (!ref.node) continue;
        Node* c = Find(ref.node);
        if (!c) continue;
        auto it = std::find(c->names.begin(), c->names.end(), std::make_pair(d->ino, name));
        if (it != c->names.end()) c->names.erase(it);
      }
      for (Node* c : made) {
        if (c->link_id) d->tree->link_nodes.erase(c->link_id);
        nodes.erase(c->ino);
      }
      return s;
    }
    listed_entries += children.size();
    sweep_credit += children.size() / 8;
    d->children = std::move(children);
    d->subdirs = subdirs;
    d->loaded = d->subdirs_known = true;
    return Status::Ok();
  }

  Result<Node*> Dir(uint64_t ino) {
    HASHFS_ASSIGN_OR_RETURN(Node * d, Get(ino));
    if (!d->is_dir()) return Err(Status::Code::kNotDirectory, "not a directory");
    if (d->kind == Kind::kNormal) HASHFS_RETURN_IF_ERROR(LoadDir(d));
    return d;
  }

  // The node of d's entry `name` (d loaded), made from the committed entry
  // tree when it has none; nullptr when there is no such name.
  Result<Node*> Child(Node* d, std::string_view name) {
    auto it = d->children.find(name);
    if (it == d->children.end()) return nullptr;
    if (it->second.node) {
      if (Node* c = Find(it->second.node)) return c;
    }
    // Only entries equal to the committed tree lose their node (Evictable),
    // so `base` holds this one.
    HASHFS_ASSIGN_OR_RETURN(std::optional<::hashfs::Entry> e, dir_tree::Lookup(get, d->base, name, &dir_cache));
    if (!e) return Status::Corruption(fmt::format("entry {} is missing from its directory's tree", name));
    HASHFS_ASSIGN_OR_RETURN(Node * c, NodeForEntry(d, *e));
    it->second.node = c->ino;
    return c;
  }

  // ------------------------------------------------------- eviction

  // A node that may go: nothing refers to it by node id (kernel, handles),
  // and it equals what the committed tree holds for every name it has.
  bool Evictable(const Node* c) const {
    if (c->kind != Kind::kNormal || c->ino < kFirstIno || c->removed || c->names.empty()) return false;
    if (c->lookups > 0 || c->opens > 0 || c->atime_set) return false;
    if ((c->content && c->content->dirty()) || content_dirty.count(c->ino)) return false;
    if (c->is_dir() && (c->loaded || !c->dirty_names.empty())) return false;
    if (c->link_id && dirty_links.count(c->link_id)) return false;
    for (const auto& [p, name] : c->names) {
      auto it = nodes.find(p);
      if (it == nodes.end() || it->second->dirty_names.count(name)) return false;
    }
    return true;
  }

  void Evict(Node* c) {
    for (const auto& [p, name] : c->names) {
      Node* pn = Find(p);
      if (!pn) continue;
      auto it = pn->children.find(name);
      if (it != pn->children.end() && it->second.node == c->ino) it->second.node = 0;
    }
    if (c->link_id) {
      auto it = c->tree->link_nodes.find(c->link_id);
      if (it != c->tree->link_nodes.end() && it->second == c->ino) c->tree->link_nodes.erase(it);
    }
    nodes.erase(c->ino);
  }

  // Evicts d's evictable children, then drops d's listing when no child
  // has a node and no name is dirty. Returns the entries d still lists.
  size_t SweepListing(Node* d) {
    bool any_node = false;
    for (auto& [name, ref] : d->children) {
      if (!ref.node) continue;
      Node* c = Find(ref.node);
      if (!c) {
        ref.node = 0;
        continue;
      }
      if (Evictable(c)) Evict(c);
      else any_node = true;
    }
    if (any_node || !d->dirty_names.empty()) return d->children.size();
    d->children.clear();
    d->loaded = false;  // subdirs stays known
    return 0;
  }

  // Under mu, with no commit in flight: one pass over every loaded listing,
  // children before their directory.
  void Sweep() {
    size_t listed = 0;
    std::vector<Node*> roots;
    roots.push_back(Find(kRootIno));
    for (const auto& [commit, ino] : frozen_roots)
      if (Node* r = Find(ino)) roots.push_back(r);
    for (Node* root : roots) {
      std::vector<std::pair<Node*, bool>> stack{{root, false}};
      while (!stack.empty()) {
        auto [d, expanded] = stack.back();
        if (expanded) {
          stack.pop_back();
          if (d->loaded) listed += SweepListing(d);
          continue;
        }
        stack.back().second = true;
        for (const auto& [name, ref] : d->children) {
          if (!ref.node || ref.type != FileType::kDirectory) continue;
          Node* c = Find(ref.node);
          if (c && c->loaded && !c->names.empty() && c->names[0].first == d->ino) stack.emplace_back(c, false);
        }
      }
    }
    // Past commits' roots nothing refers to (numbers are derived, so a new
    // root node for the commit gets the same st_ino).
    for (auto it = frozen_roots.begin(); it != frozen_roots.end();) {
      Node* r = Find(it->second);
      if (r && (r->lookups > 0 || r->opens > 0 || r->loaded)) {
        ++it;
        continue;
      }
      if (r) nodes.erase(r->ino);
      it = frozen_roots.erase(it);
    }
    // A past commit's Tree once no node of it is left (its root gone above,
    // and with it, at the latest by this sweep, everything below it).
    std::erase_if(frozen, [](const auto& kv) { return kv.second->nodes == 0; });
    listed_entries = listed;
  }

  // A listing entry without a node costs about an eighth of a node.
  size_t Weight() const { return nodes.size() + listed_entries / 8; }

  // At a point where no operation holds a Node*: sweeps when the table is
  // over its budget and either min(half the table, the budget) nodes may
  // have become evictable since the last sweep (so a sweep's O(table) cost
  // is paid for by the changes before it), or any has and a second passed.
  void MaybeSweep() {
    if (commit_in_flight || sweep_credit == 0) return;
    size_t w = Weight();
    if (w <= cfg.max_inodes) return;
    auto now = std::chrono::steady_clock::now();
    if (sweep_credit < std::min(w / 2, cfg.max_inodes) && now - last_sweep < std::chrono::seconds(1)) return;
    Sweep();
    sweep_credit = 0;
    last_sweep = now;
  }

  // ------------------------------------------------------- attributes

  struct stat Stat(Node* n) {
    struct stat st {};
    st.st_ino = n->st_ino;
    st.st_mode = TypeBits(n->attr.type) | (n->attr.mode & 07777);
    if (n->is_dir()) {
      if (n->kind == Kind::kNormal && !n->subdirs_known) (void)LoadDir(n);
      st.st_nlink = 2 + n->subdirs;
      st.st_size = 4096;
    } else {
      st.st_nlink = n->nlink;
      st.st_size = static_cast<off_t>(n->content ? n->content->size() : n->attr.size);
      if (n->attr.type == FileType::kSymlink) st.st_size = static_cast<off_t>(n->attr.symlink_target.size());
    }
    st.st_uid = n->attr.uid;
    st.st_gid = n->attr.gid;
    st.st_rdev = n->attr.rdev;
    st.st_blksize = 128 * 1024;
    uint64_t stored = static_cast<uint64_t>(st.st_size);
    if (n->attr.type == FileType::kRegular) stored -= std::min(stored, HoleBytes(n));
    st.st_blocks = static_cast<blkcnt_t>((stored + 511) / 512);
    auto ts = [](int64_t ns) {
      timespec t;
      t.tv_sec = ns / 1'000'000'000;
      t.tv_nsec = ns % 1'000'000'000;
      if (t.tv_nsec < 0) {
        t.tv_sec--;
        t.tv_nsec += 1'000'000'000;
      }
      return t;
    };
    st.st_atim = ts(n->atime_ns);
    st.st_mtim = ts(n->attr.mtime_ns);
    st.st_ctim = ts(n->attr.ctime_ns);
    return st;
  }

  EntryOut MakeEntry(Node* n) {
    n->lookups++;
    EntryOut e;
    e.ino = n->ino;
    e.attr = Stat(n);
    e.timeout = IsReadOnly(n) && n->kind == Kind::kNormal ? kFrozenTimeout : cfg.entry_timeout;
    if (n->kind != Kind::kNormal) e.timeout = 1.0;
    return e;
  }

  void TouchDir(Node* d) {
    d->attr.mtime_ns = d->attr.ctime_ns = WallClockNs();
    MarkDirty(d);
  }

  // ------------------------------------------------------- file content

  // A file's content (its chunk list) from its attributes. Reads manifest
  // nodes from the store: needs no lock (get and cfg are fixed for the
  // mount's life).
  Result<std::unique_ptr<FileContent>> LoadContent(const Inode& attr) {
    if (attr.size > kMaxFileSize)
      return Err(Status::Code::kTooBig, fmt::format("file of {} bytes is larger than the mount serves", attr.size));
    std::vector<ChunkRef> chunks;
    HASHFS_RETURN_IF_ERROR(file_manifest::ForEachChunk(get, attr, [&](const ChunkRef& c, uint64_t) -> Status {
      if (chunks.size() >= cfg.max_open_chunks)
        return Status::Make(Status::Code::kTooBig, "file has more chunks than the mount holds open");
      chunks.push_back(c);
      return Status::Ok();
    }));
    auto content = std::make_unique<FileContent>(std::move(chunks));
    if (content->size() != attr.size) return Status::Corruption("file size does not match its chunks");
    return content;
  }

  Status EnsureContent(Node* n) {
    if (n->content) return Status::Ok();
    HASHFS_ASSIGN_OR_RETURN(n->content, LoadContent(n->attr));
    return Status::Ok();
  }

  // Whether content loaded from `a` is `b`'s too.
  static bool SameChunks(const Inode& a, const Inode& b) {
    return a.type == b.type && a.layout == b.layout && a.content == b.content && a.size == b.size &&
           a.chunks == b.chunks;
  }

  // A stored file's chunk list is read before the mount's lock is taken
  // (open, truncate): walking a large manifest (2^24 chunks at most:
  // seconds), or fetching its nodes from a remote in a lazy clone, must not
  // stall every other request. Preload takes mu only to copy the node's
  // attributes, then reads (one such read at a time, open_load_mu); Adopt,
  // under mu, installs the list only if the file still has no content and
  // the same chunks (else EnsureContent reads it again under mu).
  struct Preloaded {
    Inode seen;
    Result<std::unique_ptr<FileContent>> content;
  };
  std::optional<Preloaded> Preload(uint64_t ino) {
    std::optional<Inode> seen;
    {
      std::lock_guard lk(mu);
      Node* n = Find(ino);
      if (n && n->attr.type == FileType::kRegular && !n->content && n->attr.layout == ContentLayout::kManifest)
        seen = n->attr;
    }
    if (!seen) return std::nullopt;
    std::lock_guard ll(open_load_mu);
    auto content = LoadContent(*seen);
    return Preloaded{std::move(*seen), std::move(content)};
  }
  Status Adopt(Node* n, std::optional<Preloaded>& p) {
    if (!p || n->content || !SameChunks(n->attr, p->seen)) return Status::Ok();
    if (!p->content.ok()) return p->content.status();
    n->content = std::move(*p->content);
    return Status::Ok();
  }

  // Chunks, hashes and compresses the changed content of files with at most
  // kPreflushMaxDirty dirty bytes without holding mu, so that a commit does
  // not stall every other operation for that work (untarring many small
  // files, the lock was held 40% of the time, two thirds of it for this).
  // Each file is copied under mu, the copy flushed outside it, and adopted
  // (content and manifest) under mu only if the file did not change in
  // between; anything not adopted is flushed by Build as before. Objects of
  // a copy that is not adopted are unreferenced, and gc frees them.
  // The copies hold at most kPreflushMaxTotal dirty bytes together.
  // Committer only (holds commit_mu).
  static constexpr size_t kPreflushMaxDirty = 4u << 20;
  static constexpr size_t kPreflushMaxTotal = 64u << 20;
  void PreflushContent() {
    struct Copy {
      uint64_t ino;
      uint64_t generation;  // the original's; a replaced content has another
      std::unique_ptr<FileContent> content;
    };
    std::vector<Copy> copies;
    {
      std::lock_guard lk(mu);
      if (live.read_only || writer.failed()) return;
      size_t total = 0;
      for (uint64_t ino : content_dirty) {
        Node* n = Find(ino);
        if (!n || !n->content || !n->content->dirty() || n->content->flushing() ||
            n->content->dirty_bytes() > kPreflushMaxDirty)
          continue;
        if ((total += n->content->dirty_bytes()) > kPreflushMaxTotal) break;
        copies.push_back({ino, n->content->generation(), std::make_unique<FileContent>(*n->content)});
      }
    }
    for (Copy& c : copies)
      if (!c.content->Flush(writer, chunking, cache).ok()) c.content.reset();
    std::lock_guard lk(mu);
    for (Copy& c : copies) {
      if (!c.content) continue;
      Node* n = Find(c.ino);
      if (!n || !n->content || n->content->generation() != c.generation) continue;
      Inode a = n->attr;
      if (!file_manifest::SetContent(writer, c.content->base(), &a).ok()) continue;
      n->content = std::move(c.content);
      n->attr = std::move(a);
    }
  }

  // Bounds a file's dirty pages while it is being written: they are chunked,
  // hashed and compressed on another thread while writes go on (a second
  // batch waits for the first), so a sequential writer's copying overlaps
  // the chunking. The attributes learn the new chunk list at the next
  // FlushContent. With the writer failed (disk full) it flushes here, so
  // the write fails before it changes anything.
  Status ChunkOutDirtyPages(Node* n) {
    if (writer.failed()) return FlushContent(n);
    return n->content->FlushInBackground(writer, chunking, cache);
  }

  // Turns a file's changed content into chunks and updates its attributes.
  Status FlushContent(Node* n) {
    if (!n->content || !n->content->dirty()) return Status::Ok();
    HASHFS_RETURN_IF_ERROR(n->content->Flush(writer, chunking, cache));
    Inode& a = n->attr;
    HASHFS_RETURN_IF_ERROR(file_manifest::SetContent(writer, n->content->base(), &a));
    return Status::Ok();
  }

  // ------------------------------------------------------- namespace helpers

  Result<Node*> CreateChild(Node* d, std::string_view name, FileType type, uint32_t mode, const Caller& c) {
    HASHFS_RETURN_IF_ERROR(Writable(d));
    HASHFS_RETURN_IF_ERROR(CheckName(name));
    if (d->ino == kRootIno && name == kMetaName) return Status::Exists("reserved name");
    if (d->children.count(name)) return Status::Exists("file exists");
    Inode a;
    a.type = type;
    a.mode = mode & 07777;
    a.uid = c.uid;
    a.gid = c.gid;
    if (d->attr.mode & S_ISGID) {
      a.gid = d->attr.gid;
      if (type == FileType::kDirectory) a.mode |= S_ISGID;
    }
    a.mtime_ns = a.ctime_ns = WallClockNs();
    if (type == FileType::kDirectory) a.content = empty_dir;
    // A new number, stored with the entry so it survives eviction, rename
    // and remount (a derived one could equal a renamed file's).
    a.source_ino = rng() | kHashfsInoBit;
    uint64_t st = a.source_ino;
    Node* n = NewNode(d->tree, std::move(a), st);
    if (n->is_dir()) {
      n->loaded = n->subdirs_known = true;
      d->subdirs++;
    }
    n->names.emplace_back(d->ino, std::string(name));
    d->children.emplace(std::string(name), ChildRef{n->ino, n->st_ino, type});
    listed_entries++;
    counts.created++;
    MarkName(d->ino, std::string(name));
    TouchDir(d);
    return n;
  }

  // Removes the name (parent, name) of node n.
  void DropName(Node* d, const std::string& name, Node* n) {
    d->children.erase(name);
    if (listed_entries) listed_entries--;
    auto it = std::find(n->names.begin(), n->names.end(), std::make_pair(d->ino, name));
    if (it != n->names.end()) n->names.erase(it);
    if (n->is_dir()) {
      d->subdirs--;
      n->removed = true;
    } else {
      n->nlink--;
      n->attr.ctime_ns = WallClockNs();
      if (n->link_id) dirty_links.insert(n->link_id);
      if (n->nlink > 0) MarkDirty(n);
    }
    MarkName(d->ino, name);
    counts.removed++;
  }

  bool IsAncestor(Node* maybe_ancestor, Node* d) {
    for (Node* cur = d; cur;) {
      if (cur == maybe_ancestor) return true;
      if (cur->ino == kRootIno || cur->names.empty()) return false;
      cur = Find(cur->names[0].first);
    }
    return false;
  }

  // ------------------------------------------------------- virtual dirs

  Result<Node*> FrozenRoot(const Digest& commit_id, uint64_t parent, const std::string& name) {
    auto it = frozen_roots.find(commit_id);
    if (it != frozen_roots.end()) {
      if (Node* n = Find(it->second)) return n;
    }
    HASHFS_ASSIGN_OR_RETURN(Commit c, repo.LoadCommit(commit_id));
    auto& t = frozen[commit_id];
    if (!t) {
      t = std::make_unique<Tree>();
      t->read_only = true;
      t->links = c.links;
      t->timeout = kFrozenTimeout;
      t->salt = FrozenSalt(commit_id);
    }
    Node* n = NewNode(t.get(), c.root, FrozenRootIno(commit_id));
    n->names.emplace_back(parent, name);
    frozen_roots[commit_id] = n->ino;
    return n;
  }

  Result<Node*> LookupVirtual(Node* d, std::string_view name) {
    std::string nm(name);
    if (d->kind == Kind::kMeta) {
      if (name == "history") return Find(kHistoryIno);
      if (name == "snapshots") return Find(kSnapshotsIno);
      return Status::NotFound("no such entry");
    }
    if (d->kind == Kind::kHistory) {
      if (name.size() != 64) return Status::NotFound("not a commit id");
      auto dg = Digest::FromHex(name);
      if (!dg.ok()) return Status::NotFound("not a commit id");
      HASHFS_ASSIGN_OR_RETURN(auto hist, repo.History(cfg.volume));
      bool known = std::any_of(hist.begin(), hist.end(), [&](const HistoryEntry& h) { return h.commit == *dg; });
      if (!known) return Status::NotFound("no such commit in this volume's history");
      return FrozenRoot(*dg, d->ino, nm);
    }
    // Snapshots.
    HASHFS_ASSIGN_OR_RETURN(auto snaps, repo.Snapshots());
    for (const auto& [sname, commit] : snaps)
      if (sname == name) return FrozenRoot(commit, d->ino, nm);
    return Status::NotFound("no such snapshot");
  }

  Result<std::vector<DirEntryOut>> ListVirtual(Node* d) {
    std::vector<DirEntryOut> out;
    if (d->kind == Kind::kMeta) {
      out.push_back({"history", kHistoryIno, S_IFDIR});
      out.push_back({"snapshots", kSnapshotsIno, S_IFDIR});
    } else if (d->kind == Kind::kHistory) {
      HASHFS_ASSIGN_OR_RETURN(auto hist, repo.History(cfg.volume));
      for (const auto& h : hist) out.push_back({h.commit.Hex(), FrozenRootIno(h.commit), S_IFDIR});
    } else {
      HASHFS_ASSIGN_OR_RETURN(auto snaps, repo.Snapshots());
      for (const auto& [name, commit] : snaps) out.push_back({name, FrozenRootIno(commit), S_IFDIR});
    }
    return out;
  }

  // ------------------------------------------------------- commits

  // One changed directory of a commit: its edits, planned under mu from the
  // inode table, applied to `base` outside it (dir_tree::Apply re-encodes,
  // hashes and compresses the changed HAMT nodes: the costly part).
  struct DirPlan {
    uint64_t ino = 0;
    Digest base;
    std::vector<DirEdit> edits;
    // (edit index, plan index): that edit's entry is a subdirectory whose
    // content is the plan's result. Plans are in post-order (children first).
    std::vector<std::pair<size_t, size_t>> subdirs;
  };

  struct Built {
    uint64_t gen = 0;
    Digest commit;
    Digest root_content;
    Digest links;
    std::vector<std::pair<uint64_t, Digest>> new_bases;  // by ino: a node may go before the commit lands
    std::vector<std::pair<uint64_t, std::set<std::string>>> taken_names;
    std::set<uint64_t> taken_links;
    bool taken_root = false;
    bool noop = false;
    bool pin_changed = false;  // publish `pin` (or unpin when unset) before the head moves
    std::optional<Digest> pin;
    std::string pin_sig;
    // What Plan took and Realize turns into objects.
    std::vector<DirPlan> plans;  // the root's last, if the root changed
    std::optional<std::vector<LinkEdit>> link_edits;
    Digest base_links;
    Inode root_attr;
    Digest parent;
    std::string description;
  };

  // Under mu: the entry `c` has under `name`; a subdirectory with changes is
  // planned first and its index returned in *plan (else SIZE_MAX).
  Result<::hashfs::Entry> EntryFor(Node* c, const std::string& name, Built& b, size_t* plan) {
    *plan = SIZE_MAX;
    ::hashfs::Entry e;
    e.name = name;
    if (c->link_id) {
      e.link_id = c->link_id;
      e.inode.type = c->attr.type;
      return e;
    }
    e.inode = c->attr;
    if (c->is_dir()) {
      if (!c->dirty_names.empty()) {
        HASHFS_ASSIGN_OR_RETURN(*plan, PlanDir(c, b));
      } else {
        e.inode.content = c->base;
      }
    }
    return e;
  }

  // Under mu: takes d's changed names and plans their edits (subdirectories
  // first); returns the index of d's plan.
  Result<size_t> PlanDir(Node* d, Built& b) {
    std::set<std::string> names = std::move(d->dirty_names);
    d->dirty_names.clear();
    b.taken_names.emplace_back(d->ino, names);
    DirPlan plan;
    plan.ino = d->ino;
    plan.base = d->base;
    plan.edits.reserve(names.size());
    for (const auto& name : names) {
      HASHFS_ASSIGN_OR_RETURN(Node * c, Child(d, name));
      if (!c) {
        plan.edits.push_back({name, std::nullopt});
        continue;
      }
      size_t sub = SIZE_MAX;
      HASHFS_ASSIGN_OR_RETURN(auto e, EntryFor(c, name, b, &sub));
      plan.edits.push_back({name, std::move(e)});
      if (sub != SIZE_MAX) plan.subdirs.emplace_back(plan.edits.size() - 1, sub);
    }
    b.plans.push_back(std::move(plan));
    return b.plans.size() - 1;
  }

  // Puts back what a failed build or commit took.
  void Restore(Built& b) {
    for (auto& [ino, names] : b.taken_names)
      if (Node* n = Find(ino)) n->dirty_names.insert(names.begin(), names.end());
    dirty_links.insert(b.taken_links.begin(), b.taken_links.end());
    if (b.taken_root) root_dirty = true;
  }

  // Under mu: flushes what file contents are left, takes every change and
  // plans the commit; Realize (without mu) writes its objects. On error
  // nothing is taken.
  Result<Built> Plan(const std::string& description) {
    Built b;
    b.gen = change_gen;
    quiet_pending = false;  // everything dirty goes into this build
    // File contents first: they change the attributes entries carry.
    for (uint64_t ino : content_dirty) {
      Node* n = Find(ino);
      if (!n) continue;
      Status s = FlushContent(n);
      if (!s.ok()) return s;
    }
    content_dirty.clear();
    Node* root = Find(kRootIno);
    b.taken_root = root_dirty;
    root_dirty = false;
    b.root_attr = root->attr;
    b.root_attr.content = root->base;
    b.base_links = live.links;
    b.parent = head;
    b.description = description;
    Status s;
    if (!root->dirty_names.empty()) s = PlanDir(root, b).status();
    if (s.ok() && !dirty_links.empty()) {
      b.taken_links = std::move(dirty_links);
      dirty_links.clear();
      std::vector<LinkEdit> edits;
      for (uint64_t id : b.taken_links) {
        LinkEdit e;
        e.id = id;
        auto it = live.link_nodes.find(id);
        Node* n = it == live.link_nodes.end() ? nullptr : Find(it->second);
        if (n && n->nlink > 0) e.record = LinkRecord{id, n->nlink, n->attr};
        edits.push_back(std::move(e));
      }
      b.link_edits = std::move(edits);
    }
    if (s.ok()) s = BuildPin(b);
    if (!s.ok()) {
      Restore(b);
      return s;
    }
    return b;
  }

  // Without mu (commit_mu held): writes the planned directories bottom-up,
  // the link table and the commit object. The inode table is not touched;
  // the caller installs the results (or Restores on error).
  Status Realize(Built& b) {
    std::vector<Digest> results(b.plans.size());
    for (size_t i = 0; i < b.plans.size(); i++) {
      DirPlan& plan = b.plans[i];
      for (const auto& [edit, sub] : plan.subdirs) plan.edits[edit].entry->inode.content = results[sub];
      HASHFS_ASSIGN_OR_RETURN(results[i], dir_tree::Apply(writer, plan.base, std::move(plan.edits), &dir_cache));
      b.new_bases.emplace_back(plan.ino, results[i]);
    }
    if (!b.plans.empty() && b.plans.back().ino == kRootIno) b.root_attr.content = results.back();
    b.plans.clear();
    b.root_content = b.root_attr.content;
    b.links = b.base_links;
    if (b.link_edits) {
      HASHFS_ASSIGN_OR_RETURN(b.links, link_table::Apply(writer, b.base_links, std::move(*b.link_edits)));
      b.link_edits.reset();
    }
    HASHFS_ASSIGN_OR_RETURN(Commit head_commit, repo.LoadCommit(b.parent));
    if (head_commit.root == b.root_attr && head_commit.links == b.links) {
      b.noop = true;
      return Status::Ok();
    }
    Commit c;
    c.root = b.root_attr;
    c.links = b.links;
    c.parent = b.parent;
    c.time_ns = WallClockNs();
    c.description = b.description;
    HASHFS_ASSIGN_OR_RETURN(b.commit, writer.Put(EncodeCommit(c), ObjectKind::kMeta));
    return Status::Ok();
  }

  // Files open but in no tree this commit keeps (unlinked or detached while
  // open) are pinned: a commit of a directory holding them, named by the
  // session's pin/ ref, so gc keeps their chunks (tree/gc.h). Written only
  // when the set or their content changed.
  Status BuildPin(Built& b) {
    std::map<std::string, ::hashfs::Entry> orphans;
    for (const auto& [fh, h] : handles) {
      Node* n = Find(h.ino);
      if (!n || n->tree != &live || n->attr.type != FileType::kRegular || n->nlink > 0) continue;
      ::hashfs::Entry e;
      e.name = std::to_string(n->ino);
      e.inode = n->attr;
      orphans.emplace(e.name, std::move(e));
    }
    std::string sig;
    for (const auto& [name, e] : orphans) sig += name + ":" + EncodeEntryForPin(e) + ";";
    if (sig == pinned_sig) return Status::Ok();
    b.pin_changed = true;
    b.pin_sig = sig;
    if (orphans.empty()) return Status::Ok();  // unpin
    std::vector<::hashfs::Entry> entries;
    entries.reserve(orphans.size());
    for (auto& [name, e] : orphans) entries.push_back(std::move(e));
    HASHFS_ASSIGN_OR_RETURN(Digest dir, dir_tree::Build(writer, std::move(entries)));
    HASHFS_ASSIGN_OR_RETURN(Digest no_links, link_table::Build(writer, {}));
    Commit c;
    c.root.type = FileType::kDirectory;
    c.root.mode = 0700;
    c.root.content = dir;
    c.links = no_links;
    c.time_ns = WallClockNs();
    c.description = "mount pin: files open but unlinked";
    HASHFS_ASSIGN_OR_RETURN(Digest id, writer.Put(EncodeCommit(c), ObjectKind::kMeta));
    b.pin = id;
    return Status::Ok();
  }
  static std::string EncodeEntryForPin(const ::hashfs::Entry& e) {
    std::string s = e.inode.content.Hex() + "/" + std::to_string(e.inode.size);
    for (const auto& c : e.inode.chunks) s += "," + c.digest.Hex();
    return s;
  }

  std::string Describe() {
    std::vector<std::string> parts;
    if (counts.created) parts.push_back(fmt::format("{} created", counts.created));
    if (counts.written) parts.push_back(fmt::format("{} written", counts.written));
    if (counts.renamed) parts.push_back(fmt::format("{} renamed", counts.renamed));
    if (counts.removed) parts.push_back(fmt::format("{} removed", counts.removed));
    if (counts.changed) parts.push_back(fmt::format("{} changed", counts.changed));
    counts = {};
    std::string d = "mount";
    for (size_t i = 0; i < parts.size(); i++) d += (i ? ", " : ": ") + parts[i];
    return d;
  }

  // Under mu: records a commit attempt that failed before it built anything,
  // so that Sync waiters for the current changes get the error.
  Status FailedAttempt(const Status& s) {
    attempted_gen = std::max(attempted_gen, change_gen);
    attempts++;
    last_commit_status = s;
    committed.notify_all();
    return s;
  }

  // One commit of everything changed so far (or an explicit root for revert).
  // `replace`: commit that tree instead of the live one (revert);
  // `replace_epoch`: the gc epoch read before that tree was loaded.
  Status CommitOnce(const std::optional<Commit>& replace = std::nullopt, uint64_t replace_epoch = 0) {
    std::lock_guard cl(commit_mu);
    // After a failed write the writer holds what it could not store and
    // refuses more until a Flush gets it all out (e.g. once space is freed).
    if (writer.failed()) {
      Status fs = writer.Flush();
      if (!fs.ok()) {
        std::lock_guard lk(mu);
        return FailedAttempt(fs);
      }
    }
    if (!replace) PreflushContent();
    Built b;
    {
      std::lock_guard lk(mu);
      if (live.read_only) return Status::Ok();
      if (!replace) {
        if (change_gen == durable_gen) return Status::Ok();
        auto built = Plan(Describe());
        if (!built.ok()) return FailedAttempt(built.status());
        b = std::move(*built);
      } else {
        Commit c = *replace;
        c.parent = head;
        c.time_ns = WallClockNs();
        b.gen = change_gen;
        b.root_content = c.root.content;
        b.links = c.links;
        HASHFS_ASSIGN_OR_RETURN(b.commit, writer.Put(EncodeCommit(c), ObjectKind::kMeta));
      }
      commit_in_flight = true;  // no eviction until the bases below are current
    }
    // The directories' new nodes are written without mu, so requests go on
    // meanwhile (they change the inode table, not the plan).
    // A failure is handled below like one of the writes (Restore).
    Status s;
    if (!replace) s = Realize(b);
    if (s.ok() && b.pin_changed) {
      s = writer.Flush();
      if (s.ok()) s = b.pin ? session->Pin(*b.pin) : session->Unpin();
    }
    if (s.ok() && !b.noop) {
      s = writer.Flush();
      // A replacement tree loaded before a collection that the session's
      // epoch already reflects (another commit refreshed it) would pass
      // Advance's epoch check even if that collection deleted part of it
      // (a revert to a commit `forget` dropped): check it first.
      if (s.ok() && replace && replace_epoch < session->epoch()) {
        auto epoch = repo.GcEpoch();
        s = epoch.ok() ? CheckComplete(repo, get, b.commit) : epoch.status();
        if (!s.ok() && epoch.ok()) s = s.WithContext("a garbage collection removed data of the commit to revert to");
        if (s.ok()) session->set_epoch(*epoch);
      }
      for (int attempt = 0; s.ok(); attempt++) {
        s = repo.Advance(cfg.volume, head, b.commit, session->epoch());
        if (s.ok() || s.code() != Status::Code::kStale || attempt >= 10) break;
        auto epoch = repo.GcEpoch();
        if (!epoch.ok()) {
          s = epoch.status();
          break;
        }
        s = CheckComplete(repo, get, b.commit);
        if (!s.ok()) s = s.WithContext("a garbage collection removed data this commit reuses");
        session->set_epoch(*epoch);
      }
    }
    std::lock_guard lk(mu);
    commit_in_flight = false;
    attempted_gen = std::max(attempted_gen, b.gen);
    attempts++;
    last_commit_status = s;
    if (s.ok()) {
      if (b.pin_changed) pinned_sig = b.pin_sig;
      for (auto& [ino, d] : b.new_bases)
        if (Node* n = Find(ino)) n->base = d;
      for (const auto& [ino, names] : b.taken_names) sweep_credit += names.size();  // now clean
      if (!b.noop) {
        head = b.commit;
        live.links = b.links;
        Find(kRootIno)->base = b.root_content;
      }
      durable_gen = std::max(durable_gen, b.gen);
    } else {
      // Everything the build took is dirty again; the objects it wrote stay
      // in the writer (kept across a failed write) for the next attempt.
      Restore(b);
    }
    committed.notify_all();
    return s;
  }

  void CommitterLoop() {
    std::unique_lock lk(mu);
    while (!stop) {
      if (change_gen == durable_gen) {
        wake.wait(lk);
        continue;
      }
      auto due = first_change + std::chrono::milliseconds(cfg.group_commit_ms);
      if (!urgent && std::chrono::steady_clock::now() < due) {
        wake.wait_until(lk, due);
        continue;
      }
      urgent = false;
      lk.unlock();
      Status s;
      try {
        s = CommitOnce();
      } catch (const std::exception& e) {  // never let the committer thread die
        s = Status::IOError(std::string("commit: ") + e.what());
      }
      lk.lock();
      if (!s.ok()) {
        // Log a failure once per distinct message (a full disk repeats it every second).
        std::string msg = s.ToString();
        if (msg != last_logged_failure) LogLine("commit failed (changes kept in memory, retrying every second): " + msg);
        last_logged_failure = msg;
        wake.wait_for(lk, std::chrono::seconds(1), [&] { return stop || urgent; });
      } else if (!last_logged_failure.empty()) {
        LogLine("commits succeed again");
        last_logged_failure.clear();
      }
    }
  }

  Status WaitDurable(std::unique_lock<std::mutex>& lk, uint64_t target) {
    urgent = true;
    wake.notify_one();
    // A failure counts only from an attempt that finished after this call
    // (not a stale one from before space was freed).
    const uint64_t start = attempts;
    committed.wait(lk, [&] {
      return durable_gen >= target || (attempts > start && attempted_gen >= target && !last_commit_status.ok());
    });
    if (durable_gen >= target) return Status::Ok();
    return last_commit_status;
  }
};

// ------------------------------------------------------------ public API

Filesystem::Filesystem(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<Filesystem>> Filesystem::Open(Repository& repo, MountConfig cfg) {
  if (cfg.zstd_level < 0 || cfg.zstd_level > 19) return Status::InvalidArgument("zstd level must be 0..19");
  auto impl = std::make_unique<Impl>(repo, cfg);
  Impl& m = *impl;
  m.live.read_only = cfg.read_only || cfg.at.has_value();
  m.live.timeout = cfg.entry_timeout;
  if (!m.live.read_only) {
    HASHFS_ASSIGN_OR_RETURN(m.session, WriterSession::Start(repo, "mount " + cfg.volume));
  }
  HASHFS_ASSIGN_OR_RETURN(m.empty_dir, dir_tree::Empty(m.writer));
  Digest commit_id;
  if (cfg.at) {
    commit_id = *cfg.at;
  } else {
    HASHFS_ASSIGN_OR_RETURN(auto head, repo.Head(cfg.volume));
    if (!head) {
      if (m.live.read_only) return Status::NotFound("no volume named " + cfg.volume);
      Commit c;
      c.root.type = FileType::kDirectory;
      c.root.mode = 0755;
      c.root.uid = getuid();
      c.root.gid = getgid();
      c.root.mtime_ns = c.root.ctime_ns = WallClockNs();
      c.root.content = m.empty_dir;
      c.time_ns = WallClockNs();
      c.description = "new volume (mount)";
      HASHFS_ASSIGN_OR_RETURN(Digest id, m.writer.Put(EncodeCommit(c), ObjectKind::kMeta));
      HASHFS_RETURN_IF_ERROR(m.writer.Flush());
      HASHFS_RETURN_IF_ERROR(repo.Advance(cfg.volume, std::nullopt, id, m.session->epoch()));
      head = id;
    }
    commit_id = *head;
  }
  HASHFS_RETURN_IF_ERROR(m.writer.Flush());
  HASHFS_ASSIGN_OR_RETURN(Commit c, repo.LoadCommit(commit_id));
  if (c.root.type != FileType::kDirectory) return Status::Corruption("commit root is not a directory");
  m.head = commit_id;
  m.live.links = c.links;
  {
    auto root = std::make_unique<Node>(&m.live);
    root->ino = kRootIno;
    root->st_ino = kRootIno;
    root->attr = c.root;
    root->atime_ns = c.root.mtime_ns;
    root->base = c.root.content;
    root->lookups = 1;
    m.nodes.emplace(kRootIno, std::move(root));
  }
  m.NewVirtual(kMetaIno, Kind::kMeta)->names.emplace_back(kRootIno, std::string(kMetaName));
  m.NewVirtual(kHistoryIno, Kind::kHistory)->names.emplace_back(kMetaIno, "history");
  m.NewVirtual(kSnapshotsIno, Kind::kSnapshots)->names.emplace_back(kMetaIno, "snapshots");
  if (!m.live.read_only) m.committer = std::thread([&m] { m.CommitterLoop(); });
  return std::unique_ptr<Filesystem>(new Filesystem(std::move(impl)));
}

Filesystem::~Filesystem() {
  Impl& m = *impl_;
  if (m.committer.joinable()) {
    Status s = Sync();
    if (!s.ok()) LogLine("final commit failed: " + s.ToString());
    {
      std::lock_guard lk(m.mu);
      m.stop = true;
      m.wake.notify_all();
    }
    m.committer.join();
  }
  m.cache.Wait();  // background chunk loads use the writer
}

void Filesystem::SetInvalidator(Invalidator inv) {
  std::lock_guard lk(impl_->mu);
  impl_->inval = std::move(inv);
}

bool Filesystem::read_only() const { return impl_->live.read_only; }

Digest Filesystem::head() const {
  std::lock_guard lk(impl_->mu);
  return impl_->head;
}

Result<EntryOut> Filesystem::Lookup(uint64_t parent, std::string_view name) {
  Impl& m = *impl_;
  std::lock_guard lk(m.mu);
  m.MaybeSweep();
  if (name.size() > kMaxNameLength) return Err(Status::Code::kNameTooLong, "name too long");
  HASHFS_ASSIGN_OR_RETURN(Node * d, m.Dir(parent));
  if (d->kind != Kind::kNormal) {
    HASHFS_ASSIGN_OR_RETURN(Node * n, m.LookupVirtual(d, name));
    return m.MakeEntry(n);
  }
  if (d->ino == kRootIno && name == kMetaName) return m.MakeEntry(m.Find(kMetaIno));
  HASHFS_ASSIGN_OR_RETURN(Node * c, m.Child(d, name));
  if (!c) return Status::NotFound("no such entry");
  return m.MakeEntry(c);
}

void Filesystem::Forget(uint64_t ino, uint64_t nlookup) {
  Impl& m = *impl_;
  std::lock_guard lk(m.mu);
  Node* n = m.Find(ino);
  if (!n) return;
  n->lookups = n->lookups > nlookup ? n->lookups - nlookup : 0;
  if (n->lookups == 0) m.sweep_credit++;
  m.MaybeDelete(n);
  m.MaybeSweep();
}

Result<struct stat> Filesystem::GetAttr(uint64_t ino) {
  Impl& m = *impl_;
  std::lock_guard lk(m.mu);
  HASHFS_ASSIGN_OR_RETURN(Node * n, m.Get(ino));
  return m.Stat(n);
}

Result<struct stat> Filesystem::SetAttr(uint64_t ino, const SetAttrRequest& r) {
  Impl& m = *impl_;
  std::optional<Impl::Preloaded> loaded;
  if (r.size) loaded = m.Preload(ino);  // truncate(2) of a file not open: without mu
  std::lock_guard lk(m.mu);
  HASHFS_ASSIGN_OR_RETURN(Node * n, m.Get(ino));
  HASHFS_RETURN_IF_ERROR(m.Writable(n));
  int64_t now = WallClockNs();
  Inode& a = n->attr;
  if (r.size) {
    if (n->is_dir()) return Err(Status::Code::kIsDirectory, "is a directory");
    if (a.type != FileType::kRegular) return Status::InvalidArgument("not a regular file");
    if (*r.size > kMaxFileSize) return Err(Status::Code::kTooBig, "file too large");
    HASHFS_RETURN_IF_ERROR(m.Adopt(n, loaded));
    HASHFS_RETURN_IF_ERROR(m.EnsureContent(n));
    n->content->Truncate(*r.size);
    a.size = *r.size;
    a.mtime_ns = now;
    m.content_dirty.insert(ino);
    m.counts.written++;
  }
  if (r.mode) {
    a.mode = *r.mode & 07777;
    for (auto& [k, v] : a.xattrs)
      if (k == kAclAccessXattr) v = AclWithMode(v, a.mode);  // chmod updates the ACL (Linux)
  }
  if (r.uid) a.uid = *r.uid;
  if (r.gid) a.gid = *r.gid;
  if (r.mtime_ns) a.mtime_ns = *r.mtime_ns;
  if (r.atime_ns) {
    n->atime_ns = *r.atime_ns;
    n->atime_set = true;
  }
  a.ctime_ns = r.ctime_ns ? *r.ctime_ns : now;
  if (r.mode || r.uid || r.gid || r.mtime_ns) m.counts.changed++;
  m.MarkDirty(n);
  return m.Stat(n);
}

Result<std::string> Filesystem::ReadLink(uint64_t ino) {
  Impl& m = *impl_;
  std::lock_guard lk(m.mu);
  HASHFS_ASSIGN_OR_RETURN(Node * n, m.Get(ino));
  if (n->attr.type != FileType::kSymlink) return Status::InvalidArgument("not a symlink");
  return n->attr.symlink_target;
}

Result<EntryOut> Filesystem::MakeNode(uint64_t parent, std::string_view name, uint32_t mode, uint64_t rdev,
                                      const Caller& c) {
  Impl& m = *impl_;
  std::lock_guard lk(m.mu);
  m.MaybeSweep();
  HASHFS_ASSIGN_OR_RETURN(Node * d, m.Dir(parent));
  FileType t;
  switch (mode & S_IFMT) {
    case 0:
    case S_IFREG: t = FileType::kRegular; break;
    case S_IFIFO: t = FileType::kFifo; break;
    case S_IFCHR: t = FileType::kCharDevice; break;
    case S_IFBLK: t = FileType::kBlockDevice; break;
    case S_IFSOCK: t = FileType::kSocket; break;
    case S_IFDIR: return Status::InvalidArgument("use mkdir");
    default: return Status::InvalidArgument("unknown file type");
  }
  HASHFS_ASSIGN_OR_RETURN(Node * n, m.CreateChild(d, name, t, mode, c));
  if (t == FileType::kCharDevice || t == FileType::kBlockDevice) n->attr.rdev = rdev;
  return m.MakeEntry(n);
}

Result<EntryOut> Filesystem::MakeDir(uint64_t parent, std::string_view name, uint32_t mode, const Caller& c) {
  Impl& m = *impl_;
  std::lock_guard lk(m.mu);
  m.MaybeSweep();
  HASHFS_ASSIGN_OR_RETURN(Node * d, m.Dir(parent));
  HASHFS_ASSIGN_OR_RETURN(Node * n, m.CreateChild(d, name, FileType::kDirectory, mode, c));
  return m.MakeEntry(n);
}

Result<EntryOut> Filesystem::Symlink(uint64_t parent, std::string_view name, std::string_view target,
                                     const Caller& c) {
  Impl& m = *impl_;
  std::lock_guard lk(m.mu);
  m.MaybeSweep();
  if (target.empty() || target.size() > kMaxSymlinkLength || target.find('\0') != std::string_view::npos)
    return Err(Status::Code::kNameTooLong, "symlink target too long");
  HASHFS_ASSIGN_OR_RETURN(Node * d, m.Dir(parent));
  HASHFS_ASSIGN_OR_RETURN(Node * n, m.CreateChild(d, name, FileType::kSymlink, 0777, c));
  n->attr.symlink_target = std::string(target);
  n->attr.size = target.size();
  return m.MakeEntry(n);
}

Result<EntryOut> Filesystem::Link(uint64_t ino, uint64_t new_parent, std::string_view new_name) {
  Impl& m = *impl_;
  std::lock_guard lk(m.mu);
  HASHFS_ASSIGN_OR_RETURN(Node * n, m.Get(ino));
  HASHFS_ASSIGN_OR_RETURN(Node * d, m.Dir(new_parent));
  HASHFS_RETURN_IF_ERROR(m.Writable(d));
  if (n->tree != d->tree || n->kind != Kind::kNormal) return Err(Status::Code::kCrossDevice, "cross-device link");
  HASHFS_RETURN_IF_ERROR(m.Writable(n));
  if (n->is_dir()) return Err(Status::Code::kNotPermitted, "hard link to a directory");
  HASHFS_RETURN_IF_ERROR(CheckName(new_name));
  if (d->ino == kRootIno && new_name == kMetaName) return Status::Exists("reserved name");
  if (d->children.count(new_name)) return Status::Exists("file exists");
  if (n->nlink == 0) return Status::NotFound("file was removed");
  if (n->nlink >= 65000) return Err(Status::Code::kTooBig, "too many links");
  if (!n->link_id) {
    // Becomes a link group: its existing name now refers to a link record.
    uint64_t id;
    for (;;) {
      id = m.rng() | 1;
      if (m.live.link_nodes.count(id)) continue;
      HASHFS_ASSIGN_OR_RETURN(auto rec, link_table::Lookup(m.get, m.live.links, id));
      if (!rec) break;
    }
    // The record keeps the file's number: st_ino does not change when a
    // second name appears.
    n->attr.source_ino = n->st_ino;
    n->link_id = id;
    m.live.link_nodes[id] = n->ino;
    for (const auto& [p, name] : n->names) m.MarkName(p, name);
  }
  n->nlink++;
  n->names.emplace_back(d->ino, std::string(new_name));
  d->children.emplace(std::string(new_name), ChildRef{n->ino, n->st_ino, n->attr.type});
  m.listed_entries++;
  n->attr.ctime_ns = WallClockNs();
  m.dirty_links.insert(n->link_id);
  m.MarkName(d->ino, std::string(new_name));
  m.counts.created++;
  m.TouchDir(d);
  return m.MakeEntry(n);
}

Status Filesystem::Unlink(uint64_t parent, std::string_view name) {
  Impl& m = *impl_;
  std::lock_guard lk(m.mu);
  HASHFS_ASSIGN_OR_RETURN(Node * d, m.Dir(parent));
  HASHFS_RETURN_IF_ERROR(m.Writable(d));
  if (d->ino == kRootIno && name == kMetaName) return Err(Status::Code::kReadOnly, "read-only");
  HASHFS_ASSIGN_OR_RETURN(Node * n, m.Child(d, name));
  if (!n) return Status::NotFound("no such entry");
  if (n->is_dir()) return Err(Status::Code::kIsDirectory, "is a directory");
  m.DropName(d, std::string(name), n);
  m.TouchDir(d);
  m.MaybeDelete(n);
  return Status::Ok();
}

Status Filesystem::Rmdir(uint64_t parent, std::string_view name) {
  Impl& m = *impl_;
  std::lock_guard lk(m.mu);
  HASHFS_ASSIGN_OR_RETURN(Node * d, m.Dir(parent));
  HASHFS_RETURN_IF_ERROR(m.Writable(d));
  if (d->ino == kRootIno && name == kMetaName) return Err(Status::Code::kReadOnly, "read-only");
  HASHFS_ASSIGN_OR_RETURN(Node * n, m.Child(d, name));
  if (!n) return Status::NotFound("no such entry");
  if (!n->is_dir()) return Err(Status::Code::kNotDirectory, "not a directory");
  HASHFS_RETURN_IF_ERROR(m.LoadDir(n));
  if (!n->children.empty()) return Err(Status::Code::kNotEmpty, "directory not empty");
  m.DropName(d, std::string(name), n);
  m.TouchDir(d);
  m.MaybeDelete(n);
  return Status::Ok();
}

Status Filesystem::Rename(uint64_t parent, std::string_view name, uint64_t new_parent, std::string_view new_name,
                          unsigned flags) {
  Impl& m = *impl_;
  std::lock_guard lk(m.mu);
  if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) return Status::InvalidArgument("unsupported rename flags");
  if ((flags & RENAME_NOREPLACE) && (flags & RENAME_EXCHANGE)) return Status::InvalidArgument("conflicting flags");
  HASHFS_ASSIGN_OR_RETURN(Node * d1, m.Dir(parent));
  HASHFS_ASSIGN_OR_RETURN(Node * d2, m.Dir(new_parent));
  if (d1->tree != d2->tree || d1->kind != d2->kind) return Err(Status::Code::kCrossDevice, "cross-device rename");
  HASHFS_RETURN_IF_ERROR(m.Writable(d1));
  HASHFS_RETURN_IF_ERROR(m.Writable(d2));
  if ((d1->ino == kRootIno && name == kMetaName) || (d2->ino == kRootIno && new_name == kMetaName))
    return Err(Status::Code::kReadOnly, "read-only");
  HASHFS_RETURN_IF_ERROR(CheckName(new_name));
  HASHFS_ASSIGN_OR_RETURN(Node * src, m.Child(d1, name));
  if (!src) return Status::NotFound("no such entry");
  HASHFS_ASSIGN_OR_RETURN(Node * dst, m.Child(d2, new_name));
  std::string n1(name), n2(new_name);
  int64_t now = WallClockNs();
  if (flags & RENAME_EXCHANGE) {
    if (!dst) return Status::NotFound("no such entry");
    if (src == dst) return Status::Ok();
    if ((src->is_dir() && m.IsAncestor(src, d2)) || (dst->is_dir() && m.IsAncestor(dst, d1)))
      return Status::InvalidArgument("rename into own subdirectory");
    std::swap(d1->children.find(n1)->second, d2->children.find(n2)->second);
    KeepNumber(src);
    KeepNumber(dst);
    for (auto& nm : src->names)
      if (nm.first == d1->ino && nm.second == n1) nm = {d2->ino, n2};
    for (auto& nm : dst->names)
      if (nm.first == d2->ino && nm.second == n2) nm = {d1->ino, n1};
    if (src->is_dir() != dst->is_dir() && d1 != d2) {
      if (src->is_dir()) d1->subdirs--, d2->subdirs++;
      else d2->subdirs--, d1->subdirs++;
    }
    src->attr.ctime_ns = dst->attr.ctime_ns = now;
    m.MarkDirty(src);
    m.MarkDirty(dst);
    // Both names change even when the nodes are hardlinks (whose MarkDirty
    // only marks the link table).
    m.MarkName(d1->ino, n1);
    m.MarkName(d2->ino, n2);
    m.counts.renamed += 2;
    m.TouchDir(d1);
    if (d2 != d1) m.TouchDir(d2);
    return Status::Ok();
  }
  if (dst && (flags & RENAME_NOREPLACE)) return Status::Exists("file exists");
  if (src == dst) return Status::Ok();  // same file (or hardlinks of it): nothing to do
  if (src->is_dir()) {
    if (m.IsAncestor(src, d2)) return Status::InvalidArgument("rename into own subdirectory");
    if (dst) {
      if (!dst->is_dir()) return Err(Status::Code::kNotDirectory, "not a directory");
      HASHFS_RETURN_IF_ERROR(m.LoadDir(dst));
      if (!dst->children.empty()) return Err(Status::Code::kNotEmpty, "directory not empty");
    }
  } else if (dst && dst->is_dir()) {
    return Err(Status::Code::kIsDirectory, "is a directory");
  }
  if (dst) {
    m.DropName(d2, n2, dst);
    m.counts.removed--;
  }
  ChildRef ref = d1->children.find(n1)->second;
  d1->children.erase(n1);
  d2->children[n2] = ref;
  KeepNumber(src);
  for (auto& nm : src->names)
    if (nm.first == d1->ino && nm.second == n1) nm = {d2->ino, n2};
  if (src->is_dir() && d1 != d2) d1->subdirs--, d2->subdirs++;
  src->attr.ctime_ns = now;
  m.MarkName(d1->ino, n1);
  m.MarkName(d2->ino, n2);  // MarkDirty alone misses it for hardlinks
  m.MarkDirty(src);
  m.counts.renamed++;
  m.TouchDir(d1);
  if (d2 != d1) m.TouchDir(d2);
  if (dst) m.MaybeDelete(dst);
  return Status::Ok();
}

Result<uint64_t> Filesystem::Open(uint64_t ino, int flags) {
  Impl& m = *impl_;
  std::optional<Impl::Preloaded> loaded = m.Preload(ino);  // without mu
  std::lock_guard lk(m.mu);
  HASHFS_ASSIGN_OR_RETURN(Node * n, m.Get(ino));
  if (n->is_dir()) return Err(Status::Code::kIsDirectory, "is a directory");
  bool writable = (flags & O_ACCMODE) != O_RDONLY;
  // O_TRUNC truncates even with O_RDONLY (Linux; the kernel checked write permission).
  bool truncate = (flags & O_TRUNC) != 0;
  if (writable || truncate) HASHFS_RETURN_IF_ERROR(m.Writable(n));
  if (n->attr.type == FileType::kRegular) {
    HASHFS_RETURN_IF_ERROR(m.Adopt(n, loaded));
    HASHFS_RETURN_IF_ERROR(m.EnsureContent(n));
    if (truncate) {
      n->content->Truncate(0);
      n->attr.size = 0;
      n->attr.mtime_ns = n->attr.ctime_ns = WallClockNs();
      m.content_dirty.insert(ino);
      m.counts.written++;
      m.MarkDirty(n);
    }
  }
  n->opens++;
  uint64_t fh = m.next_fh++;
  m.handles[fh] = Handle{ino, writable, (flags & O_APPEND) != 0, false};
  return fh;
}

Result<std::pair<EntryOut, uint64_t>> Filesystem::Create(uint64_t parent, std::string_view name, uint32_t mode,
                                                         int flags, const Caller& c) {
  Impl& m = *impl_;
  std::lock_guard lk(m.mu);
  m.MaybeSweep();
  HASHFS_ASSIGN_OR_RETURN(Node * d, m.Dir(parent));
  HASHFS_ASSIGN_OR_RETURN(Node * n, m.CreateChild(d, name, FileType::kRegular, mode, c));
  n->content = std::make_unique<FileContent>(std::vector<ChunkRef>{});
  n->opens++;
  uint64_t fh = m.next_fh++;
  m.handles[fh] = Handle{n->ino, (flags & O_ACCMODE) != O_RDONLY, (flags & O_APPEND) != 0, false};
  return std::make_pair(m.MakeEntry(n), fh);
}

Result<size_t> Filesystem::Read(uint64_t ino, uint64_t fh, uint64_t off, size_t size, char* out) {
  Impl& m = *impl_;
  std::vector<FileContent::Piece> plan;
  std::vector<Digest> ahead;
  {
    std::lock_guard lk(m.mu);
    HASHFS_ASSIGN_OR_RETURN(Node * n, m.Get(ino));
    if (n->attr.type != FileType::kRegular) return Status::InvalidArgument("not a regular file");
    HASHFS_RETURN_IF_ERROR(m.EnsureContent(n));
    uint64_t fsize = n->content->size();
    if (off >= fsize) return size_t{0};
    size = static_cast<size_t>(std::min<uint64_t>(size, fsize - off));
    if (!n->content->RangeIsClean(off, size)) {
      HASHFS_RETURN_IF_ERROR(n->content->Read(off, size, out, m.cache));
      return size;
    }
    plan = n->content->PlanRead(off, size);
    // A read that starts where the handle's previous one ended is
    // sequential: have the next chunks decoded in the background.
    auto h = m.handles.find(fh);
    if (h != m.handles.end() && h->second.ino == ino) {
      bool sequential = off == h->second.next_read;
      h->second.next_read = off + size;
      if (sequential && off + size < fsize && n->content->RangeIsClean(off + size, 1))
        ahead = n->content->ChunksFrom(off + size, kReadAheadBytes);
    }
  }
  if (!ahead.empty()) m.cache.Prefetch(ahead);
  // Chunks are immutable: fetch and decode them without the lock.
  HASHFS_RETURN_IF_ERROR(FileContent::ExecuteRead(plan, out, m.cache));
  return size;
}

Result<std::optional<uint64_t>> Filesystem::Seek(uint64_t ino, uint64_t off, bool data) {
  Impl& m = *impl_;
  std::lock_guard lk(m.mu);
  HASHFS_ASSIGN_OR_RETURN(Node * n, m.Get(ino));
  if (n->attr.type != FileType::kRegular) return Status::InvalidArgument("not a regular file");
  HASHFS_RETURN_IF_ERROR(m.EnsureContent(n));
  // While the file is open for writing, pages written through a shared
  // mapping may sit in the kernel's page cache, unseen here (the kernel
  // does not write them back before asking): report no holes then, as a
  // file system without them would. They are written back before the last
  // such handle is released (munmap writes them).
  for (const auto& [fh, h] : m.handles) {
    if (h.ino != ino || !h.writable) continue;
    const uint64_t size = n->content->size();
    if (off >= size) return std::optional<uint64_t>();
    return std::optional<uint64_t>(data ? off : size);
  }
  return n->content->Seek(off, data, [&m](const ChunkRef& c, bool last) { return m.IsZeroChunk(c, last); });
}

Result<size_t> Filesystem::Write(uint64_t ino, uint64_t fh, uint64_t off, const char* data, size_t size) {
  Impl& m = *impl_;
  std::lock_guard lk(m.mu);
  auto h = m.handles.find(fh);
  if (h == m.handles.end() || h->second.ino != ino) return Status::InvalidArgument("bad file handle");
  if (!h->second.writable) return Status::Make(Status::Code::kInvalidArgument, "file not open for writing");
  HASHFS_ASSIGN_OR_RETURN(Node * n, m.Get(ino));
  HASHFS_RETURN_IF_ERROR(m.Writable(n));
  HASHFS_RETURN_IF_ERROR(m.EnsureContent(n));
  if (h->second.append) off = n->content->size();
  // As on ext4: bytes up to the maximum size are written (a short write),
  // a write starting at or past it fails.
  if (off >= kMaxFileSize) return Err(Status::Code::kTooBig, "file too large");
  size = static_cast<size_t>(std::min<uint64_t>(size, kMaxFileSize - off));
  // Bound the memory of dirty pages by chunking them out first: a failure
  // (e.g. ENOSPC) then fails this write before it changes anything.
  if (n->content->dirty_bytes() + size > m.cfg.max_dirty_bytes) HASHFS_RETURN_IF_ERROR(m.ChunkOutDirtyPages(n));
  HASHFS_RETURN_IF_ERROR(n->content->Write(off, data, size, m.cache));
  n->attr.size = n->content->size();
  n->attr.mtime_ns = n->attr.ctime_ns = WallClockNs();
  if (!h->second.wrote) m.counts.written++;
  h->second.wrote = true;
  m.content_dirty.insert(ino);
  m.MarkDirty(n, /*start_commit=*/false);  // committed at close or fsync, not per write
  return size;
}

Status Filesystem::Flush(uint64_t ino, uint64_t fh) {
  Impl& m = *impl_;
  std::lock_guard lk(m.mu);
  (void)ino;
  auto h = m.handles.find(fh);
  // A closed, written file is committed soon (grouped with others).
  if (h != m.handles.end() && h->second.wrote) m.WakeQuiet();
  return Status::Ok();
}

Status Filesystem::Release(uint64_t ino, uint64_t fh) {
  Impl& m = *impl_;
  std::lock_guard lk(m.mu);
  auto h = m.handles.find(fh);
  if (h != m.handles.end() && h->second.wrote) m.WakeQuiet();  // e.g. writes through mmap after close
  m.handles.erase(fh);
  Node* n = m.Find(ino);
  if (!n) return Status::Ok();
  if (n->opens) n->opens--;
  if (n->opens == 0) m.sweep_credit++;
  if (n->opens == 0 && n->content && !n->content->dirty() && !m.content_dirty.count(ino)) n->content.reset();
  m.MaybeDelete(n);
  return Status::Ok();
}

Status Filesystem::Fsync(uint64_t ino) {
  (void)ino;
  return Sync();
}

Status Filesystem::Fallocate(uint64_t ino, int mode, uint64_t off, uint64_t len) {
  Impl& m = *impl_;
  std::lock_guard lk(m.mu);
  HASHFS_ASSIGN_OR_RETURN(Node * n, m.Get(ino));
  HASHFS_RETURN_IF_ERROR(m.Writable(n));
  if (n->attr.type != FileType::kRegular) return Err(Status::Code::kIsDirectory, "not a regular file");
  HASHFS_RETURN_IF_ERROR(m.EnsureContent(n));
  uint64_t size = n->content->size();
  if (mode == 0 && (off > kMaxFileSize || len > kMaxFileSize - off))
    return Err(Status::Code::kTooBig, "file too large");
  if (mode == 0) {
    if (off + len > size) {
      n->content->Truncate(off + len);
      n->attr.size = off + len;
    }
  } else if (mode == FALLOC_FL_KEEP_SIZE) {
    return Status::Ok();  // no allocation to reserve in a content-addressed store
  } else if (mode == (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE)) {
    if (off >= size) return Status::Ok();
    uint64_t end = std::min(size, off + len);
    if (end == size) {
      // To the end of the file: drop the bytes and grow back, which reads
      // as zeros and holds no pages however long the range.
      n->content->Truncate(off);
      n->content->Truncate(size);
    } else {
      // Zeros written as by write(2), under the same bound on dirty pages
      // (punching gigabytes must not hold gigabytes of zero pages).
      std::string zeros(static_cast<size_t>(std::min<uint64_t>(end - off, 1u << 20)), '\0');
      for (uint64_t p = off; p < end;) {
        size_t n2 = static_cast<size_t>(std::min<uint64_t>(zeros.size(), end - p));
        if (n->content->dirty_bytes() + n2 > m.cfg.max_dirty_bytes) HASHFS_RETURN_IF_ERROR(m.ChunkOutDirtyPages(n));
        HASHFS_RETURN_IF_ERROR(n->content->Write(p, zeros.data(), n2, m.cache));
        p += n2;
      }
    }
  } else {
    return Status::Unsupported("fallocate mode not supported");
  }
  n->attr.mtime_ns = n->attr.ctime_ns = WallClockNs();
  m.content_dirty.insert(ino);
  m.counts.written++;
  m.MarkDirty(n);
  return Status::Ok();
}

Result<uint64_t> Filesystem::OpenDir(uint64_t ino) {
  Impl& m = *impl_;
  std::lock_guard lk(m.mu);
  m.MaybeSweep();
  HASHFS_ASSIGN_OR_RETURN(Node * d, m.Dir(ino));
  auto listing = std::make_shared<DirListing>();
  listing->self_ino = d->st_ino;
  if (d->kind != Kind::kNormal) {
    HASHFS_ASSIGN_OR_RETURN(listing->entries, m.ListVirtual(d));
  } else {
    listing->entries.reserve(d->children.size());
    for (const auto& [name, ref] : d->children) listing->entries.push_back({name, ref.st_ino, TypeBits(ref.type)});
  }
  DirHandle dh;
  dh.ino = ino;
  dh.listing = std::move(listing);
  uint64_t fh = m.next_fh++;
  m.dir_handles.emplace(fh, std::move(dh));
  return fh;
}

Result<std::shared_ptr<const DirListing>> Filesystem::ReadDir(uint64_t ino, uint64_t fh) {
  Impl& m = *impl_;
  std::lock_guard lk(m.mu);
  auto it = m.dir_handles.find(fh);
  if (it == m.dir_handles.end() || it->second.ino != ino) return Status::InvalidArgument("bad directory handle");
  return it->second.listing;
}

Result<EntryOut> Filesystem::LookupForReaddirPlus(uint64_t ino, const DirEntryOut& e) { return Lookup(ino, e.name); }

void Filesystem::ReleaseDir(uint64_t fh) {
  std::lock_guard lk(impl_->mu);
  impl_->dir_handles.erase(fh);
}

Result<std::string> Filesystem::GetXattr(uint64_t ino, std::string_view name) {
  Impl& m = *impl_;
  std::lock_guard lk(m.mu);
  HASHFS_ASSIGN_OR_RETURN(Node * n, m.Get(ino));
  // Diagnostics on /.hashfs: the inode table's nodes and listed entries, and
  // how many past commits' views it holds.
  if (ino == kMetaIno && name == "user.hashfs.inodes") return std::to_string(m.nodes.size());
  if (ino == kMetaIno && name == "user.hashfs.past_trees") return std::to_string(m.frozen.size());
  if (ino == kMetaIno && name == "user.hashfs.listed") {
    size_t listed = 0;
    for (const auto& [i, node] : m.nodes) listed += node->children.size();
    return std::to_string(listed);
  }
  for (const auto& [k, v] : n->attr.xattrs)
    if (k == name) return v;
  return Err(Status::Code::kNoAttribute, "no such attribute");
}

Result<std::vector<std::string>> Filesystem::ListXattr(uint64_t ino) {
  Impl& m = *impl_;
  std::lock_guard lk(m.mu);
  HASHFS_ASSIGN_OR_RETURN(Node * n, m.Get(ino));
  std::vector<std::string> out;
  for (const auto& [k, v] : n->attr.xattrs) out.push_back(k);
  return out;
}

Status Filesystem::SetXattr(uint64_t ino, std::string_view name, std::string_view value, int flags) {
  Impl& m = *impl_;
  std::lock_guard lk(m.mu);
  HASHFS_ASSIGN_OR_RETURN(Node * n, m.Get(ino));
  HASHFS_RETURN_IF_ERROR(m.Writable(n));
  if (name.empty() || name.size() > kMaxXattrNameLength) return Err(Status::Code::kRange, "bad attribute name");
  if (value.size() > kMaxXattrValueLength) return Err(Status::Code::kTooBig, "attribute value too large");
  auto& xs = n->attr.xattrs;
  auto it = std::lower_bound(xs.begin(), xs.end(), name,
                             [](const std::pair<std::string, std::string>& a, std::string_view b) { return a.first < b; });
  bool exists = it != xs.end() && it->first == name;
  if (exists && (flags & XATTR_CREATE)) return Status::Exists("attribute exists");
  if (!exists && (flags & XATTR_REPLACE)) return Err(Status::Code::kNoAttribute, "no such attribute");
  // All of a file's xattrs are bounded together (ENOSPC, as ext4 says when
  // its xattr space is full), so that no directory's listing outgrows an
  // object and stops committing.
  if (XattrBytes(xs) - (exists ? it->first.size() + it->second.size() : 0) + name.size() + value.size() >
      kMaxXattrBytes)
    return Status::NoSpace(fmt::format("a file's extended attributes are limited to {} bytes in all", kMaxXattrBytes));
  if (name == kAclAccessXattr) {
    // An access ACL sets the mode's permission bits; one that says no more
    // than the mode (3 entries) is not stored, as on native file systems.
    auto bits = AclPermissionBits(value);
    if (!bits) return Status::InvalidArgument("malformed POSIX ACL");
    n->attr.mode = (n->attr.mode & ~0777u) | *bits;
    if (value.size() == 4 + 3 * 8) {
      if (exists) xs.erase(it);
      n->attr.ctime_ns = WallClockNs();
      m.counts.changed++;
      m.MarkDirty(n);
      return Status::Ok();
    }
  }
  if (exists) {
    it->second = std::string(value);
  } else {
    if (xs.size() >= kMaxXattrs) return Status::NoSpace("too many attributes");
    xs.insert(it, {std::string(name), std::string(value)});
  }
  n->attr.ctime_ns = WallClockNs();
  m.counts.changed++;
  m.MarkDirty(n);
  return Status::Ok();
}

Status Filesystem::RemoveXattr(uint64_t ino, std::string_view name) {
  Impl& m = *impl_;
  std::lock_guard lk(m.mu);
  HASHFS_ASSIGN_OR_RETURN(Node * n, m.Get(ino));
  HASHFS_RETURN_IF_ERROR(m.Writable(n));
  auto& xs = n->attr.xattrs;
  auto it = std::find_if(xs.begin(), xs.end(), [&](const auto& p) { return p.first == name; });
  if (it == xs.end()) return Err(Status::Code::kNoAttribute, "no such attribute");
  xs.erase(it);
  n->attr.ctime_ns = WallClockNs();
  m.counts.changed++;
  m.MarkDirty(n);
  return Status::Ok();
}

Result<struct statvfs> Filesystem::StatFs() {
  struct statvfs v {};
  if (statvfs(impl_->cfg.store_dir.c_str(), &v) != 0) return Status::FromErrno(errno, "statfs");
  v.f_namemax = kMaxNameLength;
  return v;
}

Status Filesystem::Sync() {
  Impl& m = *impl_;
  if (m.live.read_only) return Status::Ok();
  std::unique_lock lk(m.mu);
  m.WakeQuiet();
  uint64_t target = m.change_gen;
  if (m.durable_gen >= target) return Status::Ok();
  return m.WaitDurable(lk, target);
}

Status Filesystem::Revert(const Digest& commit, const std::string& description) {
  Impl& m = *impl_;
  if (m.live.read_only) return Err(Status::Code::kReadOnly, "read-only mount");
  HASHFS_RETURN_IF_ERROR(Sync());
  // Read before loading: a collection after this point is caught when the
  // revert commits (see CommitOnce).
  HASHFS_ASSIGN_OR_RETURN(uint64_t epoch, m.repo.GcEpoch());
  HASHFS_ASSIGN_OR_RETURN(Commit target, m.repo.LoadCommit(commit));
  target.description = description;
  HASHFS_RETURN_IF_ERROR(m.CommitOnce(target, epoch));
  // Detach every live node from the namespace; the root starts over from the
  // new tree. Open files keep working, like files unlinked while open.
  std::vector<std::pair<uint64_t, std::string>> entries;
  std::vector<uint64_t> inodes;
  {
    std::lock_guard lk(m.mu);
    Node* root = m.Find(kRootIno);
    for (auto& [ino, n] : m.nodes) {
      if (n->tree != &m.live || n->kind != Kind::kNormal || ino == kRootIno) continue;
      for (auto& nm : n->names) entries.push_back(nm);
      inodes.push_back(ino);
      n->names.clear();
      n->nlink = 0;
      n->removed = true;
      n->dirty_names.clear();
      n->link_id = 0;
      n->children.clear();  // a removed directory lists nothing
      n->subdirs = 0;
      n->loaded = n->subdirs_known = n->is_dir();
    }
    m.live.link_nodes.clear();
    m.content_dirty.clear();
    m.dirty_links.clear();
    root->attr = target.root;
    root->base = target.root.content;
    root->children.clear();
    root->subdirs = 0;
    root->loaded = root->subdirs_known = false;
    root->dirty_names.clear();
    m.root_dirty = false;
    for (uint64_t ino : inodes)
      if (Node* n = m.Find(ino)) m.MaybeDelete(n);
    // Names of the new root may sit in the kernel as negative entries.
    if (m.LoadDir(root).ok())
      for (const auto& [name, ref] : root->children) entries.emplace_back(kRootIno, name);
  }
  if (m.inval.entry)
    for (auto& [p, name] : entries) m.inval.entry(p, name);
  if (m.inval.inode) {
    m.inval.inode(kRootIno);
    for (uint64_t ino : inodes) m.inval.inode(ino);
  }
  return Status::Ok();
}

}  // namespace hashfs::fusefs
