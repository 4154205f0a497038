// CheckLmdbFile: a structural check of an LMDB data file (data.mdb) as
// liblmdb 0.9 writes it on a 64-bit little-endian host, read through pread
// and never through LMDB itself.
//
// LMDB keeps no checksums: a flipped bit in a B-tree page header, a child
// page number or a node offset makes liblmdb read wild memory and the
// process dies of SIGSEGV. hashfs verifies every object by its hash, but the
// trees that find the objects are LMDB's; this check is how `hashfs verify`
// (and, for the main tree, every open of a store) finds such damage and
// reports it instead of crashing. It checks, for the snapshot of one meta
// page: every page reached has its own page number, a known type, sane
// bounds, nodes inside the page and keys in order (within the page and
// within the bounds its parent gives), branch pages above and leaf pages at
// the recorded depth, overflow runs of the recorded length inside the file,
// no page reached twice, the counts each table records (depth, branch, leaf
// and overflow pages, entries), and that no page on the free list is in use.
// design.md ("The store file") lists the layout it relies on.
//
// Pure function of the bytes `read` returns: safe on any input (a fuzz
// target runs it on arbitrary files), bounded by the file's size in time and
// memory. Thread-compatible.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "cas/status.h"

namespace hashfs {

// Reads exactly `n` bytes at `offset` of the data file into `out`.
using LmdbFileReader = std::function<Status(uint64_t offset, size_t n, char* out)>;

struct LmdbCheckOptions {
  uint64_t file_size = 0;
  // Check the snapshot of the meta page with this transaction id (the id of
  // a read transaction the caller holds, which keeps that snapshot's pages
  // from being reused); 0: the newer meta page. Busy if neither meta page
  // has it (a writer committed twice since: take a new read transaction).
  uint64_t txnid = 0;
  // Only the meta page and the main tree (the table of named tables): a few
  // pages, cheap enough for every open. Otherwise every table and the free
  // list too.
  bool main_only = false;
  size_t max_problems = 50;  // further problems are counted, not described
  bool record_pages = false;  // fill LmdbCheckReport::pages (tests, tools)
};

struct LmdbPageUse {
  enum Kind { kBranch, kLeaf, kOverflow };
  uint64_t page = 0;
  std::string table;
  Kind kind = kLeaf;
};

struct LmdbProblem {
  uint64_t page = 0;  // the damaged page (or the page holding the bad reference)
  std::string table;  // "meta", "main", "free" or the named table's name
  std::string what;
};

struct LmdbCheckReport {
  uint64_t txnid = 0;
  uint32_t page_size = 0;
  uint64_t pages_in_file = 0;    // file_size / page_size
  uint64_t pages_used = 0;       // meta's last page + 1
  uint64_t pages_reached = 0;    // by the checked trees, overflow runs included
  uint64_t pages_free = 0;       // listed on the free list (not main_only)
  std::vector<std::string> tables;  // named tables found in the main tree
  std::vector<LmdbProblem> problems;  // at most max_problems
  uint64_t problem_count = 0;
  std::vector<LmdbPageUse> pages;  // with record_pages: each page checked, in walk order
  bool ok() const { return problem_count == 0; }
  // Whether a table's tree (or its record, or the main tree that holds it)
  // is damaged, so that LMDB must not be asked to walk it.
  bool TableDamaged(const std::string& table) const;
};

// IOError if `read` fails; Busy as above; otherwise a report, damage or not.
Result<LmdbCheckReport> CheckLmdbFile(const LmdbFileReader& read, const LmdbCheckOptions& opts);

// "page N (table): what" for each problem, plus a line for the uncounted rest.
std::vector<std::string> DescribeProblems(const LmdbCheckReport& r);

}  // namespace hashfs
