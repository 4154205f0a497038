// Garbage collection: deletes objects no kept commit reaches, safely beside
// running writers (backups, mounts) in this and other processes.
//
// Protocol:
//  0. ObjectStore::CheckStructure first: gc refuses (Corruption) to sweep a
//     store whose index is damaged.
//  1. Roots are Repository::KeptCommits(): every commit named by a volume
//     history entry (hist/) or a snapshot (snap/), plus the commits live
//     writer sessions pin (pin/: a mount's open-but-unlinked files). Commit
//     `parent` links are not followed.
//  2. Mark: every object a root reaches is marked: the commit, the nodes of
//     every directory entry tree, each entry's content (inline chunks, or the
//     manifest nodes and their chunks), the link table's nodes and its
//     records' content. A tree node already expanded is not expanded again,
//     so shared subtrees cost one visit. A missing or undecodable object is
//     recorded in GcReport::problems and its subtree simply cannot be
//     descended; marking continues. Any other error (I/O) aborts the GC.
//  3. Cutoff = min(GC start, start of every live WriterSession) - 2 s. An
//     object written at or after the cutoff is never deleted: it may belong to
//     a commit a writer has not published yet.
//  4. Sweep, in ONE store write transaction: delete every object that is
//     unmarked and older than the cutoff; then re-read the roots (hist/,
//     snap/ and pin/ refs) in that same transaction. Roots that appeared
//     since marking (writers advanced meanwhile; no writer can advance now)
//     are marked there, reading the store as it was before the sweep. If one
//     of them reaches an object the sweep is deleting (e.g. a revert to a
//     commit `forget` dropped), abort the transaction (Stale), keep the marks
//     and sweep again (at most 10 retries). Otherwise bump "gc/epoch"
//     (8-byte big-endian).
//  5. Writers: Repository::Advance fails with Stale if gc/epoch changed since
//     the writer read it. The writer may have deduplicated against an object
//     the sweep removed, so it runs CheckComplete on its new commit and, if
//     that succeeds, retries Advance with the new epoch.
// Thread-safe; several collections may run at once (each is safe on its own).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tree/repository.h"

namespace hashfs {

struct GcReport {
  uint64_t reachable = 0;      // marked objects present in the store
  uint64_t deleted = 0;        // objects deleted
  uint64_t deleted_bytes = 0;  // their stored bytes
  uint64_t kept_young = 0;     // unmarked objects kept because they are newer than the cutoff
  int sweeps = 0;              // sweep attempts (more than 1 after Stale retries)
  uint64_t late_roots = 0;     // roots that appeared after marking, marked inside a sweep
  // Reachable objects that are missing or do not decode ("verify" names the
  // paths they damage). Nothing reachable is deleted either way.
  std::vector<std::string> problems;
  // With GcOptions::missing_is_unfetched: reachable objects not in the store.
  uint64_t not_fetched = 0;
};

struct GcOptions {
  // The store is a lazy clone: a reachable object missing locally is one not
  // fetched yet (not a problem). Objects under it cannot be marked through
  // it; any of them held locally (read-ahead of a fetch) is only a cached
  // copy of what the remote keeps, and may be freed.
  bool missing_is_unfetched = false;
};

// Runs the protocol above. Stale if 11 sweeps in a row were abandoned.
// repo's store must not write on Get (a plain local store, not one that
// fetches missing objects from a remote): step 4 reads inside the sweep.
Result<GcReport> CollectGarbage(Repository& repo, const GcOptions& opts = {});

// Checks that every object `commit` reaches can be read through `get` (data
// chunks: present in repo's store, or else readable through `get`). Returns
// NotFound naming the first missing object and the path that needs it, or
// Corruption if a tree object does not decode; OK if the commit is complete.
Status CheckComplete(Repository& repo, ObjectGetter get, const Digest& commit);

}  // namespace hashfs
