#include "tree/dir_tree.h"

#include <algorithm>
#include <list>
#include <map>
#include <mutex>
#include <unordered_map>

#include "cas/object_codec.h"

namespace hashfs {

// The largest encoded entry or link record the write paths can make (codec.cc
// layout; 8-byte length prefixes): name, link id, the inode's fixed fields, a
// symlink target and an inline chunk list (only one of them occurs, both
// counted), and kMaxXattrs xattrs of kMaxXattrBytes in all. Leaves are kept
// within kHamtLeafMaxBytes, except at depth kMaxTrieDepth, where only the
// count bounds them: a leaf of kHamtLeafMax of them must be a storable object,
// or a directory's commit could fail for good.
constexpr size_t kMaxEncodedEntrySize = (8 + kMaxNameLength) + 8 + 53 + (8 + kMaxSymlinkLength) + 1 +
                                        (8 + kMaxInlineChunks * 40) + 8 + kMaxXattrs * 16 + kMaxXattrBytes;
static_assert(kHamtLeafMax * kMaxEncodedEntrySize + 4096 <= kMaxObjectSize,
              "a full directory-trie leaf could exceed the object size limit");
static_assert(kMaxEncodedEntrySize + 4096 <= kHamtLeafMaxBytes, "one entry must fit in a leaf");
// Only xattrs split a directory of at most kHamtLeafMax entries by bytes.
static_assert(kHamtLeafMax * (kMaxEncodedEntrySize - kMaxXattrs * 16 - kMaxXattrBytes) + 4096 <= kHamtLeafMaxBytes,
              "entries without xattrs could split a leaf by bytes");

ObjectGetter GetterFor(ObjectStore& s) {
  return [&s](const Digest& d) { return s.Get(d); };
}
ObjectGetter GetterFor(ObjectWriter& w) {
  return [&w](const Digest& d) { return w.Get(d); };
}

struct DirNodeCache::Impl {
  struct Slot {
    std::shared_ptr<const DirNode> node;
    size_t bytes = 0;
    std::list<Digest>::iterator lru;
  };
  size_t max_bytes;
  std::mutex mu;
  std::unordered_map<Digest, Slot, DigestHash> map;
  std::list<Digest> lru;  // most recently used first
  size_t bytes = 0;
  uint64_t hits = 0;
};

DirNodeCache::DirNodeCache(size_t max_bytes) : impl_(std::make_unique<Impl>()) { impl_->max_bytes = max_bytes; }
DirNodeCache::~DirNodeCache() = default;

std::shared_ptr<const DirNode> DirNodeCache::Find(const Digest& d) {
  std::lock_guard lk(impl_->mu);
  auto it = impl_->map.find(d);
  if (it == impl_->map.end()) return nullptr;
  impl_->hits++;
  impl_->lru.splice(impl_->lru.begin(), impl_->lru, it->second.lru);
  return it->second.node;
}

void DirNodeCache::Insert(const Digest& d, std::shared_ptr<const DirNode> node, size_t encoded_size) {
  size_t bytes = 4 * encoded_size + 64;
  Impl& m = *impl_;
  std::lock_guard lk(m.mu);
  if (bytes > m.max_bytes / 4 || m.map.count(d)) return;
  m.lru.push_front(d);
  m.map.emplace(d, Impl::Slot{std::move(node), bytes, m.lru.begin()});
  m.bytes += bytes;
  while (m.bytes > m.max_bytes && !m.lru.empty()) {
    auto it = m.map.find(m.lru.back());
    m.bytes -= it->second.bytes;
    m.map.erase(it);
    m.lru.pop_back();
  }
}

uint64_t DirNodeCache::hits() const {
  std::lock_guard lk(impl_->mu);
  return impl_->hits;
}

namespace {

constexpr int kMaxDepth = kMaxTrieDepth;

std::string LinkKey(uint64_t id) {
  std::string k(8, '\0');
  for (int i = 0; i < 8; i++) k[i] = static_cast<char>(id >> (56 - 8 * i));
  return k;
}

int Nibble(uint64_t h, int depth) { return static_cast<int>((h >> (60 - 4 * depth)) & 15); }

// Traits adapt the generic trie to directory entries and link records.
struct DirTraits {
  using Item = Entry;
  using Node = DirNode;
  using Cache = DirNodeCache;
  static const std::string& Key(const Entry& e) { return e.name; }
  static std::vector<Entry>& Items(DirNode& n) { return n.entries; }
  static const std::vector<Entry>& Items(const DirNode& n) { return n.entries; }
  static std::string Encode(const DirNode& n) { return EncodeDirNode(n); }
  static Result<DirNode> Decode(std::string_view b) { return DecodeDirNode(b); }
  static bool Less(const Entry& a, const Entry& b) { return a.name < b.name; }
};
// Link tables are small and read rarely: not cached.
struct NoCache {
  std::shared_ptr<const LinkNode> Find(const Digest&) { return nullptr; }
  void Insert(const Digest&, const std::shared_ptr<const LinkNode>&, size_t) {}
};
struct LinkTraits {
  using Item = LinkRecord;
  using Node = LinkNode;
  using Cache = NoCache;
  static std::string Key(const LinkRecord& r) { return LinkKey(r.id); }
  static std::vector<LinkRecord>& Items(LinkNode& n) { return n.records; }
  static const std::vector<LinkRecord>& Items(const LinkNode& n) { return n.records; }
  static std::string Encode(const LinkNode& n) { return EncodeLinkNode(n); }
  static Result<LinkNode> Decode(std::string_view b) { return DecodeLinkNode(b); }
  static bool Less(const LinkRecord& a, const LinkRecord& b) { return a.id < b.id; }
};

template <typename T>
struct Hamt {
  using Item = typename T::Item;
  using Node = typename T::Node;

  struct Keyed {
    uint64_t hash;
    Item item;
  };

  static uint64_t HashKey(const std::string& key) { return Sha256Of(key).Prefix64(); }

  using Cache = typename T::Cache;

  static Result<Node> Load(const ObjectGetter& get, const Digest& d) {
    HASHFS_ASSIGN_OR_RETURN(std::string bytes, get(d));
    Result<Node> n = T::Decode(bytes);
    if (!n.ok()) return n.status().WithContext("node " + d.Hex());
    return n;
  }
  static Result<Node> LoadAt(const ObjectGetter& get, const Digest& d, int depth) {
    if (depth > kMaxDepth) return Status::Corruption("node " + d.Hex() + ": trie deeper than its hash");
    return Load(get, d);
  }
  // Read-only: through the cache when there is one (no copy of the node).
  static Result<std::shared_ptr<const Node>> LoadShared(const ObjectGetter& get, const Digest& d, Cache* cache) {
    if (cache) {
      if (auto hit = cache->Find(d)) return hit;
    }
    HASHFS_ASSIGN_OR_RETURN(std::string bytes, get(d));
    Result<Node> n = T::Decode(bytes);
    if (!n.ok()) return n.status().WithContext("node " + d.Hex());
    auto p = std::make_shared<const Node>(std::move(*n));
    if (cache) cache->Insert(d, p, bytes.size());
    return p;
  }
  // A copy to edit.
  static Result<Node> Load(const ObjectGetter& get, const Digest& d, Cache* cache) {
    if (!cache) return Load(get, d);
    HASHFS_ASSIGN_OR_RETURN(std::shared_ptr<const Node> p, LoadShared(get, d, cache));
    return Node(*p);
  }

  // Stores node n, whose encoding is `bytes`; with a cache, keeps its
  // decoded form there.
  static Result<Digest> StoreEncoded(ObjectWriter& w, Node&& n, const std::string& bytes, Cache* cache) {
    HASHFS_ASSIGN_OR_RETURN(Digest d, w.Put(bytes, ObjectKind::kMeta));
    if (cache) cache->Insert(d, std::make_shared<const Node>(std::move(n)), bytes.size());
    return d;
  }
  static Result<Digest> Store(ObjectWriter& w, Node&& n, Cache* cache) {
    std::string bytes = T::Encode(n);
    return StoreEncoded(w, std::move(n), bytes, cache);
  }

  // The rule that makes a node with `count` items a leaf at `depth`, given
  // the size of their leaf encoding.
  static bool IsLeaf(size_t count, size_t leaf_bytes, int depth) {
    return depth >= kMaxDepth || (count <= kHamtLeafMax && leaf_bytes <= kHamtLeafMaxBytes);
  }

  // Sorts items by key and moves them into a leaf (their hashes stay).
  static Node LeafOf(std::vector<Keyed>& items) {
    std::sort(items.begin(), items.end(), [](const Keyed& a, const Keyed& b) { return T::Less(a.item, b.item); });
    Node leaf;
    leaf.leaf = true;
    auto& out = T::Items(leaf);
    out.reserve(items.size());
    for (auto& k : items) out.push_back(std::move(k.item));
    return leaf;
  }

  // Writes the canonical subtree for items (all sharing the hash prefix of
  // `depth` nibbles). Returns (digest, count).
  static Result<std::pair<Digest, uint64_t>> BuildKeyed(ObjectWriter& w, std::vector<Keyed>& items, int depth) {
    const uint64_t count = items.size();
    if (count <= kHamtLeafMax || depth >= kMaxDepth) {
      // A leaf unless its encoding is too large: encode it to see, and on
      // the way to splitting take the items back in the same order.
      Node leaf = LeafOf(items);
      auto& out = T::Items(leaf);
      std::string bytes = T::Encode(leaf);
      if (IsLeaf(count, bytes.size(), depth)) {
        HASHFS_ASSIGN_OR_RETURN(Digest d, w.Put(bytes, ObjectKind::kMeta));
        return std::make_pair(d, count);
      }
      for (size_t i = 0; i < items.size(); i++) items[i].item = std::move(out[i]);
    }
    Node n;
    n.leaf = false;
    std::array<std::vector<Keyed>, 16> parts;
    for (auto& k : items) parts[Nibble(k.hash, depth)].push_back(std::move(k));
    for (int i = 0; i < 16; i++) {
      if (parts[i].empty()) continue;
      HASHFS_ASSIGN_OR_RETURN(auto child, BuildKeyed(w, parts[i], depth + 1));
      n.bitmap |= static_cast<uint16_t>(1u << i);
      n.children.push_back(child);
    }
    HASHFS_ASSIGN_OR_RETURN(Digest d, w.Put(T::Encode(n), ObjectKind::kMeta));
    return std::make_pair(d, count);
  }

  static Result<Digest> Build(ObjectWriter& w, std::vector<Item> items) {
    std::vector<Keyed> keyed;
    keyed.reserve(items.size());
    for (auto& it : items) keyed.push_back({HashKey(T::Key(it)), std::move(it)});
    HASHFS_ASSIGN_OR_RETURN(auto r, BuildKeyed(w, keyed, 0));
    return r.first;
  }

  // Collects every item below node `d`.
  static Status Collect(const ObjectGetter& get, const Digest& d, std::vector<Keyed>* out) {
    HASHFS_ASSIGN_OR_RETURN(Node n, Load(get, d));
    if (n.leaf) {
      for (auto& it : T::Items(n)) out->push_back({HashKey(T::Key(it)), std::move(it)});
      return Status::Ok();
    }
    for (const auto& c : n.children) HASHFS_RETURN_IF_ERROR(Collect(get, c.first, out));
    return Status::Ok();
  }

  struct Edit {
    uint64_t hash;
    std::string key;
    std::optional<Item> item;
  };

  // Applies edits (all under this node's prefix) to node d; returns the new
  // (digest, count); count 0 means the subtree became empty.
  static Result<std::pair<Digest, uint64_t>> ApplyAt(ObjectWriter& w, const ObjectGetter& get, const Digest& d,
                                                     std::vector<Edit>& edits, int depth, Cache* cache) {
    HASHFS_ASSIGN_OR_RETURN(Node n, Load(get, d, cache));
    if (n.leaf) {
      // Merge the sorted items (the decoder checks the order) with the edits
      // sorted by key (the last edit of a key wins): keys compare as bytes,
      // which is T::Less, so the result is in leaf order.
      // (Indices with std::sort, not std::stable_sort: its temporary buffer
      // pairs operator new(nothrow) with operator delete.)
      std::vector<size_t> order(edits.size());
      for (size_t k = 0; k < order.size(); k++) order[k] = k;
      std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
        int c = edits[a].key.compare(edits[b].key);
        return c < 0 || (c == 0 && a < b);
      });
      auto& in = T::Items(n);
      std::vector<Item> out;
      out.reserve(in.size() + edits.size());
      size_t i = 0;
      for (size_t k = 0; k < order.size(); k++) {
        Edit& e = edits[order[k]];
        if (k + 1 < order.size() && edits[order[k + 1]].key == e.key) continue;  // a later edit of this key
        while (i < in.size() && T::Key(in[i]) < e.key) out.push_back(std::move(in[i++]));
        if (i < in.size() && T::Key(in[i]) == e.key) i++;  // replaced or removed
        if (e.item) out.push_back(std::move(*e.item));
      }
      while (i < in.size()) out.push_back(std::move(in[i++]));
      if (out.empty()) return std::make_pair(Digest{}, uint64_t{0});
      if (out.size() <= kHamtLeafMax || depth >= kMaxDepth) {
        // Still a leaf unless its encoding grew too large: same bytes as
        // BuildKeyed, without a SHA-256 per item.
        Node leaf;
        leaf.leaf = true;
        T::Items(leaf) = std::move(out);
        const uint64_t count = T::Items(leaf).size();
        std::string bytes = T::Encode(leaf);
        if (IsLeaf(count, bytes.size(), depth)) {
          HASHFS_ASSIGN_OR_RETURN(Digest nd, StoreEncoded(w, std::move(leaf), bytes, cache));
          return std::make_pair(nd, count);
        }
        out = std::move(T::Items(leaf));
      }
      std::vector<Keyed> keyed;
      keyed.reserve(out.size());
      for (auto& it : out) {
        uint64_t h = HashKey(T::Key(it));
        keyed.push_back({h, std::move(it)});
      }
      return BuildKeyed(w, keyed, depth);
    }
    std::array<std::vector<Edit>, 16> parts;
    for (auto& e : edits) parts[Nibble(e.hash, depth)].push_back(std::move(e));
    std::array<std::pair<Digest, uint64_t>, 16> kids{};
    size_t ci = 0;
    for (int i = 0; i < 16; i++)
      if (n.bitmap & (1u << i)) kids[i] = n.children[ci++];
    uint64_t total = 0;
    for (int i = 0; i < 16; i++) {
      if (!parts[i].empty()) {
        if (kids[i].second == 0) {
          // New child: build it from the edits, applied in order (last wins).
          std::map<std::string, std::optional<Keyed>> uniq;
          for (auto& e : parts[i]) {
            if (e.item)
              uniq.insert_or_assign(e.key, Keyed{e.hash, std::move(*e.item)});
            else
              uniq.insert_or_assign(e.key, std::nullopt);
          }
          std::vector<Keyed> keyed;
          for (auto& [k, v] : uniq)
            if (v) keyed.push_back(std::move(*v));
          if (!keyed.empty()) {
            HASHFS_ASSIGN_OR_RETURN(kids[i], BuildKeyed(w, keyed, depth + 1));
          }
        } else {
          HASHFS_ASSIGN_OR_RETURN(kids[i], ApplyAt(w, get, kids[i].first, parts[i], depth + 1, cache));
        }
      }
      total += kids[i].second;
    }
    if (total == 0) return std::make_pair(Digest{}, uint64_t{0});
    if (total <= kHamtLeafMax) {
      // Few enough items for one leaf: collapse into it if its encoding is
      // small enough. Otherwise (entries with large xattrs) this node stays
      // internal, and the children, canonical already, are kept.
      std::vector<Keyed> all;
      for (int i = 0; i < 16; i++)
        if (kids[i].second) HASHFS_RETURN_IF_ERROR(Collect(get, kids[i].first, &all));
      Node leaf = LeafOf(all);
      std::string bytes = T::Encode(leaf);
      if (IsLeaf(total, bytes.size(), depth)) {
        HASHFS_ASSIGN_OR_RETURN(Digest nd, StoreEncoded(w, std::move(leaf), bytes, cache));
        return std::make_pair(nd, total);
      }
    }
    Node out;
    out.leaf = false;
    for (int i = 0; i < 16; i++) {
      if (!kids[i].second) continue;
      out.bitmap |= static_cast<uint16_t>(1u << i);
      out.children.push_back(kids[i]);
    }
    HASHFS_ASSIGN_OR_RETURN(Digest nd, Store(w, std::move(out), cache));
    return std::make_pair(nd, total);
  }

  static Result<Digest> Apply(ObjectWriter& w, const Digest& root, std::vector<Edit> edits, Cache* cache = nullptr) {
    if (edits.empty()) return root;
    ObjectGetter get = GetterFor(w);
    HASHFS_ASSIGN_OR_RETURN(auto r, ApplyAt(w, get, root, edits, 0, cache));
    if (r.second == 0) {
      Node empty;
      return w.Put(T::Encode(empty), ObjectKind::kMeta);
    }
    return r.first;
  }

  static Result<std::optional<Item>> Lookup(const ObjectGetter& get, const Digest& root, const std::string& key,
                                            Cache* cache = nullptr) {
    uint64_t h = HashKey(key);
    Digest d = root;
    for (int depth = 0;; depth++) {
      HASHFS_ASSIGN_OR_RETURN(std::shared_ptr<const Node> node, LoadShared(get, d, cache));
      const Node& n = *node;
      if (n.leaf) {
        for (const auto& it : T::Items(n))
          if (T::Key(it) == key) return std::optional<Item>(it);
        return std::optional<Item>();
      }
      if (depth >= kMaxDepth) return Status::Corruption("trie deeper than its hash");
      int nib = Nibble(h, depth);
      if (!(n.bitmap & (1u << nib))) return std::optional<Item>();
      int idx = std::popcount(static_cast<unsigned>(n.bitmap & ((1u << nib) - 1)));
      d = n.children[idx].first;
    }
  }

  static Status ForEach(const ObjectGetter& get, const Digest& root, const std::function<Status(const Item&)>& fn,
                        int depth = 0) {
    if (depth > kMaxDepth) return Status::Corruption("trie deeper than its hash");
    HASHFS_ASSIGN_OR_RETURN(Node n, Load(get, root));
    if (n.leaf) {
      for (const auto& it : T::Items(n)) HASHFS_RETURN_IF_ERROR(fn(it));
      return Status::Ok();
    }
    for (const auto& c : n.children) HASHFS_RETURN_IF_ERROR(ForEach(get, c.first, fn, depth + 1));
    return Status::Ok();
  }

  static Status ForEachNode(const ObjectGetter& get, const Digest& root, const std::function<Status(const Digest&)>& fn,
                            int depth = 0) {
    if (depth > kMaxDepth) return Status::Corruption("trie deeper than its hash");
    HASHFS_RETURN_IF_ERROR(fn(root));
    HASHFS_ASSIGN_OR_RETURN(Node n, Load(get, root));
    if (n.leaf) return Status::Ok();
    for (const auto& c : n.children) HASHFS_RETURN_IF_ERROR(ForEachNode(get, c.first, fn, depth + 1));
    return Status::Ok();
  }
};

using DirHamt = Hamt<DirTraits>;
using LinkHamt = Hamt<LinkTraits>;

}  // namespace

namespace dir_tree {

Result<Digest> Build(ObjectWriter& w, std::vector<Entry> entries) {
  for (const auto& e : entries)
    if (!IsValidEntryName(e.name)) return Status::InvalidArgument("invalid entry name");
  return DirHamt::Build(w, std::move(entries));
}

Result<Digest> Empty(ObjectWriter& w) { return DirHamt::Build(w, {}); }

Result<Digest> Apply(ObjectWriter& w, const Digest& root, std::vector<DirEdit> edits, DirNodeCache* cache) {
  std::vector<DirHamt::Edit> es;
  es.reserve(edits.size());
  for (auto& e : edits) {
    if (!IsValidEntryName(e.name)) return Status::InvalidArgument("invalid entry name");
    if (e.entry && e.entry->name != e.name) return Status::InvalidArgument("edit name mismatch");
    es.push_back({DirHamt::HashKey(e.name), e.name, std::move(e.entry)});
  }
  return DirHamt::Apply(w, root, std::move(es), cache);
}

Result<std::optional<Entry>> Lookup(const ObjectGetter& get, const Digest& root, std::string_view name,
                                    DirNodeCache* cache) {
  return DirHamt::Lookup(get, root, std::string(name), cache);
}

Status ForEach(const ObjectGetter& get, const Digest& root, const std::function<Status(const Entry&)>& fn) {
  return DirHamt::ForEach(get, root, fn);
}

Result<std::vector<Entry>> ListSorted(const ObjectGetter& get, const Digest& root) {
  std::vector<Entry> out;
  HASHFS_RETURN_IF_ERROR(ForEach(get, root, [&](const Entry& e) {
    out.push_back(e);
    return Status::Ok();
  }));
  std::sort(out.begin(), out.end(), [](const Entry& a, const Entry& b) { return a.name < b.name; });
  return out;
}

Status ForEachNode(const ObjectGetter& get, const Digest& root, const std::function<Status(const Digest&)>& fn) {
  return DirHamt::ForEachNode(get, root, fn);
}

Result<DirNode> LoadNode(const ObjectGetter& get, const Digest& d, int trie_depth) {
  return DirHamt::LoadAt(get, d, trie_depth);
}

}  // namespace dir_tree

namespace link_table {

Result<Digest> Build(ObjectWriter& w, std::vector<LinkRecord> records) {
  if (records.empty()) return Digest{};
  return LinkHamt::Build(w, std::move(records));
}

Result<Digest> Apply(ObjectWriter& w, const Digest& root, std::vector<LinkEdit> edits) {
  if (root.IsZero()) {
    // Empty table: apply the edits in order (last edit of an id wins).
    std::map<uint64_t, std::optional<LinkRecord>> recs;
    for (auto& e : edits) recs.insert_or_assign(e.id, std::move(e.record));
    std::vector<LinkRecord> v;
    for (auto& [id, r] : recs)
      if (r) v.push_back(std::move(*r));
    return Build(w, std::move(v));
  }
  std::vector<LinkHamt::Edit> es;
  for (auto& e : edits) {
    std::string k = LinkKey(e.id);
    es.push_back({LinkHamt::HashKey(k), k, std::move(e.record)});
  }
  HASHFS_ASSIGN_OR_RETURN(Digest d, LinkHamt::Apply(w, root, std::move(es)));
  // The empty table is the zero digest.
  HASHFS_ASSIGN_OR_RETURN(std::string bytes, w.Get(d));
  HASHFS_ASSIGN_OR_RETURN(LinkNode n, DecodeLinkNode(bytes));
  if (n.leaf && n.records.empty()) return Digest{};
  return d;
}

Result<std::optional<LinkRecord>> Lookup(const ObjectGetter& get, const Digest& root, uint64_t id) {
  if (root.IsZero()) return std::optional<LinkRecord>();
  return LinkHamt::Lookup(get, root, LinkKey(id));
}

Status ForEach(const ObjectGetter& get, const Digest& root, const std::function<Status(const LinkRecord&)>& fn) {
  if (root.IsZero()) return Status::Ok();
  return LinkHamt::ForEach(get, root, fn);
}

Status ForEachNode(const ObjectGetter& get, const Digest& root, const std::function<Status(const Digest&)>& fn) {
  if (root.IsZero()) return Status::Ok();
  return LinkHamt::ForEachNode(get, root, fn);
}

Result<LinkNode> LoadNode(const ObjectGetter& get, const Digest& d, int trie_depth) {
  return LinkHamt::LoadAt(get, d, trie_depth);
}

}  // namespace link_table

}  // namespace hashfs
