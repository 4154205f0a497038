// ObjectStore: the content-addressed object store and the small ref table
// beside it. This is the only interface the upper layers (tree, fusefs, remote)
// use to reach storage.
//
// Contracts shared by every implementation:
//  * Objects are immutable and named by SHA-256 of their plain bytes. Get()
//    re-hashes what it read and returns Corruption instead of wrong bytes.
//  * PutBatch() is atomic and idempotent: after it returns OK every object in
//    the batch is durable; an object already present is left untouched.
//  * Refs are a small ordered key -> value table, the only mutable state. All
//    reads and writes made inside one Update() callback form one atomic,
//    serializable transaction (compare-and-swap is "read, compare, write" in
//    one callback). Update() is durable when it returns OK.
//  * Every method is thread-safe, and several processes may open one store.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "cas/digest.h"
#include "cas/status.h"

namespace hashfs {

// What kind of bytes an object holds; informative (stats, verify), never used
// to interpret the bytes.
enum class ObjectKind : uint8_t { kData = 0, kMeta = 1 };

// An object ready to be stored: hashed, compressed if that saved space, and
// framed with the stored-value header (see object_codec.h and design.md).
struct PreparedObject {
  Digest digest;
  std::string stored;
};

// Per-object facts read from the stored header without decompressing.
struct ObjectInfo {
  ObjectKind kind = ObjectKind::kData;
  bool compressed = false;
  uint64_t plain_size = 0;
  uint64_t stored_size = 0;  // header included
  uint64_t write_time = 0;   // unix seconds when first stored
};

// A transaction over the ref table, valid only inside an Update()/View() callback.
class RefTxn {
 public:
  virtual ~RefTxn() = default;
  virtual Result<std::optional<std::string>> Get(std::string_view key) = 0;
  // Keys with the given prefix in byte order (descending with `reverse`),
  // with their values; at most `limit` of them (0 = all).
  virtual Result<std::vector<std::pair<std::string, std::string>>> List(
      std::string_view prefix, size_t limit = 0, bool reverse = false) = 0;
  // Fails with InvalidArgument inside View().
  virtual Status Put(std::string_view key, std::string_view value) = 0;
  virtual Status Delete(std::string_view key) = 0;  // absent key is OK
};

using RefTxnFn = std::function<Status(RefTxn&)>;

// What ObjectStore::CheckStructure found.
struct StructureCheck {
  std::vector<std::string> problems;  // one line each; empty: nothing found
  // False if the store's lookups themselves are damaged (an LMDB B-tree of
  // objects, packs or refs), so that walking them could read wild memory:
  // verify stops after reporting, gc refuses.
  bool walkable = true;
};

class ObjectStore {
 public:
  virtual ~ObjectStore() = default;

  // Verified plain bytes. NotFound if absent; Corruption if the stored bytes
  // do not decode or do not hash to `d`.
  virtual Result<std::string> Get(const Digest& d) = 0;
  virtual Result<bool> Contains(const Digest& d) = 0;
  // Stored header facts; NotFound if absent.
  virtual Result<ObjectInfo> Info(const Digest& d) = 0;
  // Stores every object of the batch atomically (see contract above).
  virtual Status PutBatch(std::span<const PreparedObject> batch) = 0;
  // Calls fn for every object in digest order with its raw stored bytes (not
  // verified); fn returning non-OK stops the scan and is returned. The scan
  // sees one consistent snapshot. fn may call other methods of this store;
  // a write from fn that needs the LMDB map to grow fails with Busy (the map
  // cannot be resized while the scan's transaction is open).
  virtual Status ForEachObject(
      const std::function<Status(const Digest&, std::string_view stored)>& fn) = 0;
  // In ONE write transaction: deletes every object for which should_delete
  // returns true, then runs then_fn on the ref table. Nothing is deleted if
  // then_fn fails. Both callbacks may run more than once (the transaction is
  // retried after growing the map), so they must not have side effects beyond
  // the RefTxn. then_fn may read objects through Get/Contains/Info, which see
  // the store as it was before the sweep (deleted objects still readable);
  // it must not write objects (this thread holds the writer lock). Used by
  // garbage collection.
  virtual Status Sweep(const std::function<bool(const Digest&, const ObjectInfo&)>& should_delete,
                       const RefTxnFn& then_fn, uint64_t* deleted) = 0;

  // Runs fn in one atomic read-write transaction on the ref table.
  virtual Status Update(const RefTxnFn& fn) = 0;
  // Runs fn in one consistent read-only snapshot of the ref table.
  virtual Status View(const RefTxnFn& fn) = 0;

  // Bytes the store occupies on disk (0 if not on disk).
  virtual uint64_t DiskBytes() = 0;

  // Checks the store's own index structures, which the per-object hashes do
  // not cover (LMDB: every B-tree page of one snapshot, cas/lmdb_check.h).
  // Reads them all: as costly as reading the index, not the objects. A
  // non-OK status means the check could not run. A store with no such
  // structure (in memory) has nothing to report.
  virtual Result<StructureCheck> CheckStructure() { return StructureCheck{}; }
};

}  // namespace hashfs
