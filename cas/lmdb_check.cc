#include "cas/lmdb_check.h"

#include <algorithm>
#include <bit>
#include <cstring>
#include <string_view>

#include "cas/little_endian.h"

namespace hashfs {

static_assert(std::endian::native == std::endian::little,
              "LMDB writes host-endian pages; this check reads the little-endian layout");

namespace {

// liblmdb 0.9's on-disk layout (mdb.c; design.md, "The store file").
constexpr uint32_t kMagic = 0xBEEFC0DE;
constexpr uint32_t kDataVersion = 1;
constexpr size_t kPageHeader = 16;  // pgno u64, pad u16, flags u16, lower u16, upper u16 (or pages u32)
constexpr size_t kNodeHeader = 8;   // lo u16, hi u16, flags u16, ksize u16
constexpr size_t kMetaEnd = kPageHeader + 136;  // through mm_txnid
constexpr size_t kDbRecord = 48;    // MDB_db
constexpr uint64_t kInvalidPage = ~uint64_t{0};
constexpr uint16_t kBranch = 0x01, kLeaf = 0x02, kOverflow = 0x04, kMeta = 0x08;
constexpr uint16_t kTransientFlags = 0x10 | 0x4000 | 0x8000;  // P_DIRTY, P_LOOSE, P_KEEP
constexpr uint16_t kBigData = 0x01, kSubData = 0x02;
constexpr uint16_t kIntegerKey = 0x08;  // MDB_INTEGERKEY, the free list's keys
constexpr unsigned kMaxDepth = 32;      // liblmdb's CURSOR_STACK

struct DbRecord {
  uint16_t flags = 0;
  uint16_t depth = 0;
  uint64_t branch_pages = 0, leaf_pages = 0, overflow_pages = 0, entries = 0;
  uint64_t root = kInvalidPage;
};

DbRecord ParseDb(const char* p) {
  DbRecord d;
  d.flags = static_cast<uint16_t>(LoadLE(p + 4, 2));
  d.depth = static_cast<uint16_t>(LoadLE(p + 6, 2));
  d.branch_pages = LoadLE(p + 8, 8);
  d.leaf_pages = LoadLE(p + 16, 8);
  d.overflow_pages = LoadLE(p + 24, 8);
  d.entries = LoadLE(p + 32, 8);
  d.root = LoadLE(p + 40, 8);
  return d;
}

struct Meta {
  bool valid = false;
  std::string why;  // when not valid
  uint32_t page_size = 0;
  DbRecord free_db, main_db;
  uint64_t last_page = 0;
  uint64_t txnid = 0;
};

// The meta page `pgno` read from `buf` (kMetaEnd bytes).
Meta ParseMeta(const char* buf, uint64_t pgno) {
  Meta m;
  const uint64_t stored_pgno = LoadLE(buf, 8);
  const uint16_t flags = static_cast<uint16_t>(LoadLE(buf + 10, 2));
  const uint32_t magic = static_cast<uint32_t>(LoadLE(buf + 16, 4));
  const uint32_t version = static_cast<uint32_t>(LoadLE(buf + 20, 4));
  m.page_size = static_cast<uint32_t>(LoadLE(buf + 40, 4));  // mm_dbs[0].md_pad
  m.free_db = ParseDb(buf + 40);
  m.main_db = ParseDb(buf + 40 + kDbRecord);
  m.last_page = LoadLE(buf + 136, 8);
  m.txnid = LoadLE(buf + 144, 8);
  if (magic != kMagic) {
    m.why = "no LMDB magic number";
  } else if (version != kDataVersion) {
    m.why = "data version " + std::to_string(version) + " (this check reads version 1)";
  } else if (stored_pgno != pgno || (flags & ~kTransientFlags) != kMeta) {
    m.why = "its header is not that of meta page " + std::to_string(pgno);
  } else if (m.page_size < 256 || m.page_size > 65536 || !std::has_single_bit(m.page_size)) {
    m.why = "page size " + std::to_string(m.page_size);
  } else if (m.last_page < 1) {
    m.why = "last page " + std::to_string(m.last_page);
  } else {
    m.valid = true;
  }
  return m;
}

// liblmdb's default key order: bytes, then length.
int CompareBytes(std::string_view a, std::string_view b) {
  const size_t n = std::min(a.size(), b.size());
  if (n) {
    int c = std::memcmp(a.data(), b.data(), n);
    if (c) return c;
  }
  return a.size() < b.size() ? -1 : a.size() > b.size() ? 1 : 0;
}

// MDB_INTEGERKEY: native unsigned integers (the caller has checked sizes).
int CompareIntegers(std::string_view a, std::string_view b) {
  uint64_t x = LoadLE(a.data(), 8), y = LoadLE(b.data(), 8);
  return x < y ? -1 : x > y ? 1 : 0;
}

struct Bound {
  bool set = false;
  std::string_view key;
};

class Checker {
 public:
  Checker(const LmdbFileReader& read, const LmdbCheckOptions& opts, LmdbCheckReport* r)
      : read_(read), opts_(opts), r_(r) {}

  Status Run() {
    r_->pages_in_file = 0;
    if (opts_.file_size < kMetaEnd) {
      Problem(0, "meta", "the file is " + std::to_string(opts_.file_size) + " bytes, shorter than a meta page");
      return Status::Ok();
    }
    char buf0[kMetaEnd], buf1[kMetaEnd];
    HASHFS_RETURN_IF_ERROR(read_(0, kMetaEnd, buf0));
    Meta m0 = ParseMeta(buf0, 0);
    if (!m0.valid) {
      Problem(0, "meta", "meta page 0 is damaged: " + m0.why);
      return Status::Ok();  // liblmdb finds meta page 1 through page 0's page size
    }
    Meta m1;
    if (opts_.file_size < uint64_t{m0.page_size} + kMetaEnd) {
      m1.why = "the file ends before it";
    } else {
      HASHFS_RETURN_IF_ERROR(read_(m0.page_size, kMetaEnd, buf1));
      m1 = ParseMeta(buf1, 1);
      if (m1.valid && m1.page_size != m0.page_size) {
        m1.valid = false;
        m1.why = "its page size differs from meta page 0's";
      }
    }
    // Both meta pages must be sound: liblmdb refuses to open a file with a
    // bad magic or version in either and otherwise uses the one with the
    // newer transaction, whatever else it holds.
    if (!m1.valid) Problem(1, "meta", "meta page 1 is damaged: " + m1.why);
    const Meta* pick = nullptr;
    uint64_t pick_pgno = 0;
    if (opts_.txnid != 0) {
      if (m0.valid && m0.txnid == opts_.txnid) pick = &m0;
      if (m1.valid && m1.txnid == opts_.txnid) pick = &m1, pick_pgno = 1;
      if (!pick) {
        if ((m0.valid && m0.txnid > opts_.txnid) || (m1.valid && m1.txnid > opts_.txnid))
          return Status::Busy("the store was written to during the check");
        if (m1.valid) Problem(0, "meta", "no meta page holds transaction " + std::to_string(opts_.txnid));
        return Status::Ok();
      }
    } else {
      pick = &m0;
      if (m1.valid && m1.txnid > m0.txnid) pick = &m1, pick_pgno = 1;
    }
    const Meta& m = *pick;
    psize_ = m.page_size;
    r_->txnid = m.txnid;
    r_->page_size = psize_;
    r_->pages_in_file = opts_.file_size / psize_;
    if (m.last_page >= r_->pages_in_file) {  // (last_page + 1 could wrap)
      Problem(pick_pgno, "meta",
              "the meta page says pages 0.." + std::to_string(m.last_page) + " are in use, the file holds " +
                  std::to_string(r_->pages_in_file) + " (truncated)");
      return Status::Ok();
    }
    r_->pages_used = m.last_page + 1;
    limit_ = r_->pages_used;
    reached_.assign(limit_, false);
    reached_[0] = reached_[1] = true;

    HASHFS_RETURN_IF_ERROR(Tree("main", m.main_db, pick_pgno));
    if (opts_.main_only) return Status::Ok();
    HASHFS_RETURN_IF_ERROR(Tree("free", m.free_db, pick_pgno));
    for (const auto& [name, db, page] : named_) HASHFS_RETURN_IF_ERROR(Tree(name, db, page));
    for (uint64_t p = 0; p < limit_; p++) {
      if (p < free_.size() && free_[p] && reached_[p])
        Problem(p, "free", "page " + std::to_string(p) + " is on the free list but in use");
    }
    return Status::Ok();
  }

 private:
  struct Walk {
    std::string table;
    bool integer_keys = false;
    bool main = false;
    bool free = false;
    DbRecord want;
    uint64_t branch_pages = 0, leaf_pages = 0, overflow_pages = 0, entries = 0;
  };

  void Problem(uint64_t page, const std::string& table, std::string what) {
    r_->problem_count++;
    if (r_->problems.size() < opts_.max_problems) r_->problems.push_back({page, table, std::move(what)});
  }

  // Claims pages [p, p + n): false (and a problem) if any is out of range or
  // already reached.
  bool Claim(uint64_t p, uint64_t n, uint64_t from, const std::string& table) {
    if (p < 2 || p >= limit_ || n > limit_ - p) {
      Problem(from, table,
              "refers to page " + std::to_string(p) + (n > 1 ? " (+" + std::to_string(n - 1) + ")" : "") +
                  ", outside the " + std::to_string(limit_) + " pages in use");
      return false;
    }
    for (uint64_t i = p; i < p + n; i++) {
      if (reached_[i]) {
        Problem(from, table, "refers to page " + std::to_string(i) + ", which is reached twice");
        return false;
      }
    }
    for (uint64_t i = p; i < p + n; i++) reached_[i] = true;
    r_->pages_reached += n;
    return true;
  }

  Status Tree(const std::string& table, const DbRecord& db, uint64_t record_page) {
    Walk w;
    w.table = table;
    w.main = table == "main";
    w.free = table == "free";
    w.want = db;
    const uint16_t allowed = w.free ? kIntegerKey : 0;
    if ((db.flags & ~allowed) != 0) {
      Problem(record_page, table, "its record has table flags " + std::to_string(db.flags));
      return Status::Ok();
    }
    w.integer_keys = (db.flags & kIntegerKey) != 0;
    if (db.root == kInvalidPage) {
      if (db.depth != 0 || db.entries != 0 || db.branch_pages != 0 || db.leaf_pages != 0 || db.overflow_pages != 0)
        Problem(record_page, table, "its record says it is empty but counts pages or entries");
      return Status::Ok();
    }
    if (db.depth < 1 || db.depth > kMaxDepth) {
      Problem(record_page, table, "its record has depth " + std::to_string(db.depth));
      return Status::Ok();
    }
    if (!Claim(db.root, 1, record_page, table)) return Status::Ok();
    const uint64_t before = r_->problem_count;
    HASHFS_RETURN_IF_ERROR(Page(w, db.root, 1, Bound{}, Bound{}));
    if (r_->problem_count != before) return Status::Ok();  // counts of a damaged tree say nothing more
    auto count = [&](const char* what, uint64_t want, uint64_t got) {
      if (want != got)
        Problem(record_page, table,
                std::string("its record counts ") + std::to_string(want) + " " + what + ", the tree has " +
                    std::to_string(got));
    };
    count("branch pages", db.branch_pages, w.branch_pages);
    count("leaf pages", db.leaf_pages, w.leaf_pages);
    count("overflow pages", db.overflow_pages, w.overflow_pages);
    count("entries", db.entries, w.entries);
    return Status::Ok();
  }

  Status ReadPage(uint64_t pgno, std::string* buf) {
    buf->resize(psize_);
    return read_(pgno * psize_, psize_, buf->data());
  }

  // Checks page `pgno` (already claimed) at `level` (1 = root), its keys in
  // [lo, hi), and everything below it.
  Status Page(Walk& w, uint64_t pgno, unsigned level, Bound lo, Bound hi) {
    std::string buf;
    HASHFS_RETURN_IF_ERROR(ReadPage(pgno, &buf));
    const char* p = buf.data();
    const std::string& t = w.table;
    if (LoadLE(p, 8) != pgno) {
      Problem(pgno, t, "the page holds page number " + std::to_string(LoadLE(p, 8)));
      return Status::Ok();
    }
    const uint16_t flags = static_cast<uint16_t>(LoadLE(p + 10, 2)) & ~kTransientFlags;
    const bool leaf = level == w.want.depth;
    if (flags != (leaf ? kLeaf : kBranch)) {
      Problem(pgno, t,
              "page type " + std::to_string(flags) + " where a " + (leaf ? "leaf" : "branch") +
                  " page belongs (level " + std::to_string(level) + " of " + std::to_string(w.want.depth) + ")");
      return Status::Ok();
    }
    const size_t lower = LoadLE(p + 12, 2), upper = LoadLE(p + 14, 2);
    if (lower < kPageHeader + 2 || (lower - kPageHeader) % 2 != 0 || upper > psize_ || lower > upper) {
      Problem(pgno, t, "free-space bounds " + std::to_string(lower) + ".." + std::to_string(upper));
      return Status::Ok();
    }
    const size_t n = (lower - kPageHeader) / 2;
    leaf ? w.leaf_pages++ : w.branch_pages++;
    if (opts_.record_pages) r_->pages.push_back({pgno, t, leaf ? LmdbPageUse::kLeaf : LmdbPageUse::kBranch});

    struct Node {
      uint64_t lohi;  // data size (leaf) or child page (branch)
      uint16_t flags;
      std::string_view key;
      const char* data;
    };
    std::vector<Node> nodes(n);
    for (size_t i = 0; i < n; i++) {
      const size_t off = LoadLE(p + kPageHeader + 2 * i, 2);
      if (off < upper || off % 2 != 0 || off + kNodeHeader > psize_) {
        Problem(pgno, t, "node " + std::to_string(i) + " at offset " + std::to_string(off) + " is outside its area");
        return Status::Ok();
      }
      Node& nd = nodes[i];
      const uint64_t lo16 = LoadLE(p + off, 2), hi16 = LoadLE(p + off + 2, 2);
      nd.flags = static_cast<uint16_t>(LoadLE(p + off + 4, 2));
      const size_t ksize = LoadLE(p + off + 6, 2);
      nd.lohi = leaf ? (lo16 | hi16 << 16) : (lo16 | hi16 << 16 | uint64_t{nd.flags} << 32);
      size_t dsize = 0;
      if (leaf) dsize = (nd.flags & kBigData) ? 8 : nd.lohi;
      if (off + kNodeHeader + ksize + dsize > psize_) {
        Problem(pgno, t, "node " + std::to_string(i) + " runs past the end of the page");
        return Status::Ok();
      }
      nd.key = std::string_view(p + off + kNodeHeader, ksize);
      nd.data = p + off + kNodeHeader + ksize;
      if (leaf && (nd.flags & ~(w.main ? kSubData : kBigData)) != 0) {
        Problem(pgno, t, "node " + std::to_string(i) + " has flags " + std::to_string(nd.flags));
        return Status::Ok();
      }
      const bool key_checked = leaf || i > 0;  // a branch page's first key is not used
      if (key_checked && w.integer_keys && ksize != 8) {
        Problem(pgno, t, "node " + std::to_string(i) + " has a " + std::to_string(ksize) + "-byte integer key");
        return Status::Ok();
      }
    }
    auto cmp = [&](std::string_view a, std::string_view b) {
      return w.integer_keys ? CompareIntegers(a, b) : CompareBytes(a, b);
    };
    for (size_t i = leaf ? 0 : 1; i < n; i++) {
      std::string_view k = nodes[i].key;
      bool bad = (lo.set && cmp(k, lo.key) < 0) || (hi.set && cmp(k, hi.key) >= 0);
      if (i > (leaf ? 0u : 1u) && cmp(nodes[i - 1].key, k) >= 0) bad = true;
      if (bad) {
        Problem(pgno, t, "node " + std::to_string(i) + "'s key is out of order");
        return Status::Ok();
      }
    }

    if (!leaf) {
      for (size_t i = 0; i < n; i++) {
        Bound clo = i == 0 ? lo : Bound{true, nodes[i].key};
        Bound chi = i + 1 < n ? Bound{true, nodes[i + 1].key} : hi;
        if (!Claim(nodes[i].lohi, 1, pgno, t)) continue;
        HASHFS_RETURN_IF_ERROR(Page(w, nodes[i].lohi, level + 1, clo, chi));
      }
      return Status::Ok();
    }
    w.entries += n;
    for (size_t i = 0; i < n; i++) {
      const Node& nd = nodes[i];
      std::string value;  // only for the free list and named-table records
      std::string_view data(nd.data, (nd.flags & kBigData) ? 8 : nd.lohi);
      if (nd.flags & kBigData) {
        HASHFS_RETURN_IF_ERROR(Overflow(w, pgno, i, LoadLE(nd.data, 8), nd.lohi, w.free ? &value : nullptr));
        data = value;
        if (!w.free) continue;
        if (value.size() != nd.lohi) continue;  // damaged run, reported
      }
      if (w.main && (nd.flags & kSubData)) {
        if (data.size() != kDbRecord) {
          Problem(pgno, t, "the record of table '" + std::string(nd.key) + "' is " + std::to_string(data.size()) +
                               " bytes");
          continue;
        }
        named_.push_back({std::string(nd.key), ParseDb(data.data()), pgno});
        r_->tables.emplace_back(nd.key);
      } else if (w.free) {
        FreeList(pgno, data);
      }
    }
    return Status::Ok();
  }

  // The overflow run of a leaf node's value: claims it and, if `value`,
  // reads the value.
  Status Overflow(Walk& w, uint64_t from, size_t node, uint64_t first, uint64_t dsize, std::string* value) {
    const uint64_t pages = (kPageHeader - 1 + dsize) / psize_ + 1;  // liblmdb's OVPAGES
    if (!Claim(first, pages, from, w.table)) return Status::Ok();
    char hdr[kPageHeader];
    HASHFS_RETURN_IF_ERROR(read_(first * psize_, kPageHeader, hdr));
    const uint16_t flags = static_cast<uint16_t>(LoadLE(hdr + 10, 2)) & ~kTransientFlags;
    if (LoadLE(hdr, 8) != first || flags != kOverflow || LoadLE(hdr + 12, 4) != pages) {
      Problem(first, w.table,
              "overflow page of node " + std::to_string(node) + " of page " + std::to_string(from) +
                  " has a wrong header (page " + std::to_string(LoadLE(hdr, 8)) + ", type " + std::to_string(flags) +
                  ", " + std::to_string(LoadLE(hdr + 12, 4)) + " pages where " + std::to_string(pages) +
                  " belong)");
      return Status::Ok();
    }
    w.overflow_pages += pages;
    if (opts_.record_pages) r_->pages.push_back({first, w.table, LmdbPageUse::kOverflow});
    if (value) {
      value->resize(dsize);
      HASHFS_RETURN_IF_ERROR(read_(first * psize_ + kPageHeader, dsize, value->data()));
    }
    return Status::Ok();
  }

  // A free-list record: a count, then that many page numbers.
  void FreeList(uint64_t from, std::string_view ids) {
    if (ids.size() < 8 || ids.size() % 8 != 0 || LoadLE(ids.data(), 8) != ids.size() / 8 - 1) {
      Problem(from, "free", "a free-list record of " + std::to_string(ids.size()) + " bytes is malformed");
      return;
    }
    if (free_.empty()) free_.assign(limit_, false);
    for (size_t i = 8; i < ids.size(); i += 8) {
      const uint64_t pg = LoadLE(ids.data() + i, 8);
      if (pg < 2 || pg >= limit_) {
        Problem(from, "free", "the free list holds page " + std::to_string(pg) + ", outside the pages in use");
        continue;
      }
      if (free_[pg]) {
        Problem(from, "free", "the free list holds page " + std::to_string(pg) + " twice");
        continue;
      }
      free_[pg] = true;
      r_->pages_free++;
    }
  }

  struct Named {
    std::string name;
    DbRecord db;
    uint64_t page;  // the main-tree page holding its record
  };

  const LmdbFileReader& read_;
  const LmdbCheckOptions& opts_;
  LmdbCheckReport* r_;
  uint32_t psize_ = 0;
  uint64_t limit_ = 0;  // pages in use
  std::vector<bool> reached_, free_;
  std::vector<Named> named_;
};

}  // namespace

bool LmdbCheckReport::TableDamaged(const std::string& table) const {
  // Counted-but-undescribed problems could be anywhere.
  if (problem_count > problems.size()) return true;
  for (const auto& p : problems)
    if (p.table == table || p.table == "main" || p.table == "meta") return true;
  return false;
}

Result<LmdbCheckReport> CheckLmdbFile(const LmdbFileReader& read, const LmdbCheckOptions& opts) {
  LmdbCheckReport r;
  Checker c(read, opts, &r);
  HASHFS_RETURN_IF_ERROR(c.Run());
  return r;
}

std::vector<std::string> DescribeProblems(const LmdbCheckReport& r) {
  std::vector<std::string> out;
  for (const auto& p : r.problems)
    out.push_back("data.mdb page " + std::to_string(p.page) + " (" + p.table + "): " + p.what);
  if (r.problem_count > r.problems.size())
    out.push_back("... and " + std::to_string(r.problem_count - r.problems.size()) + " more problems");
  return out;
}

}  // namespace hashfs
