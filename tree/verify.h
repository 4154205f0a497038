// Store verification: checks the store's own index structures (LMDB's
// B-trees; if they are damaged so that walking them is unsafe, it stops
// there), then checks every stored object against its name, then
// checks that every kept commit can be read completely, naming each path the
// damage affects.
//
// Pass 1 decodes and re-hashes every object (store.ForEachObject), in
// parallel on all cores. Pass 2 walks every commit of every volume history
// and every snapshot; each object a commit reaches must be present, must not
// have failed pass 1 and, for tree objects, must decode. Directory trie nodes
// shared between commits are checked once (memoized by digest, and by link
// table for subtrees holding hardlinks), so a commit that changed one entry
// costs one path of each trie it changed, not a walk of its whole tree.
// Read-only; safe beside writers and garbage collection (objects stored after
// pass 1 are trusted to be present-and-correct if present). Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tree/repository.h"

namespace hashfs {

struct VerifyReport {
  // Damage to the store's own index (ObjectStore::CheckStructure: LMDB's
  // B-tree pages), one line each, checked before anything else.
  std::vector<std::string> store_damage;
  // False when that damage leaves the objects or refs unsafe to walk: the
  // passes below did not run.
  bool objects_checked_at_all = true;
  uint64_t objects_checked = 0;
  uint64_t bytes_checked = 0;  // stored bytes read and verified in pass 1
  // "HEX: reason" for every object that failed pass 1, in digest order.
  std::vector<std::string> corrupt_objects;
  // "NAME@COMMIT:path: reason", NAME a volume or snapshot, COMMIT the first
  // 12 hex digits of the commit id, path relative to the commit root ("."
  // for the root itself or the commit object).
  std::vector<std::string> damaged_paths;
  // With VerifyOptions::missing_is_unfetched: reachable objects that are not
  // in the store (not counted as damage; their subtrees are not checked).
  uint64_t objects_not_fetched = 0;
  bool ok() const { return store_damage.empty() && corrupt_objects.empty() && damaged_paths.empty(); }
};

struct VerifyOptions {
  // The store is a lazy clone: an object missing locally is one not fetched
  // from the remote yet, not damage (`hashfs remote verify` checks those).
  bool missing_is_unfetched = false;
};

// `progress` (optional) is called from the calling thread during pass 1 with
// objects checked so far and the number of objects in the store.
Result<VerifyReport> VerifyStore(Repository& repo,
                                 std::function<void(uint64_t done, uint64_t total)> progress = {},
                                 const VerifyOptions& opts = {});

}  // namespace hashfs
