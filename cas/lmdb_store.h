// LmdbStore: the embedded default ObjectStore, one LMDB environment in one
// store directory (data.mdb + lock.mdb).
//
// Layout (see design.md): named databases "objects" (32-byte digest ->
// stored object, object_codec.h, or for one under 256 KiB a pointer into a
// pack, pack_pointer.h), "packs" (id -> stored objects back to back), "refs"
// (the ref table) and "meta" ("format" -> kLmdbFormat). Sweep deletes dead
// packs and rewrites half-dead ones. Every write is one LMDB write transaction,
// durable (fsync'd) when the call returns. Several processes and any number
// of threads may use one store: LMDB's own locks serialize writers, readers
// never block. The memory map grows by doubling when it fills; a full disk
// fails the transaction with NoSpace and leaves the last commit intact.
// Opening checks the meta page and LMDB's main tree (a few page reads), so a
// damaged one is Corruption rather than a crash inside liblmdb;
// CheckStructure checks every tree.
#pragma once

#include <memory>
#include <string>

#include "cas/object_store.h"

namespace hashfs {

inline constexpr std::string_view kLmdbFormat = "hashfs-lmdb-2";
// The previous format (no packs); opening one upgrades its format record.
inline constexpr std::string_view kLmdbFormatWithoutPacks = "hashfs-lmdb-1";

struct LmdbOptions {
  bool create_if_missing = false;  // create the directory (mode 0700) and databases
  uint64_t initial_map_size = 1ull << 30;
  unsigned max_readers = 1022;
  // How far this process's resident part of the store's map may grow (pages
  // read through it stay mapped) before the mapping is dropped. Smaller keeps
  // RSS down; larger saves refaulting hot B-tree pages (a mount uses 64 MiB).
  uint64_t resident_map_budget = 16ull << 20;
};

class LmdbStore final : public ObjectStore {
 public:
  // NotFound if there is no store at `dir` and create_if_missing is false;
  // Unsupported if the store has another format.
  static Result<std::unique_ptr<LmdbStore>> Open(const std::string& dir, const LmdbOptions& opts);
  ~LmdbStore() override;

  Result<std::string> Get(const Digest& d) override;
  Result<bool> Contains(const Digest& d) override;
  Result<ObjectInfo> Info(const Digest& d) override;
  Status PutBatch(std::span<const PreparedObject> batch) override;
  Status ForEachObject(
      const std::function<Status(const Digest&, std::string_view stored)>& fn) override;
  Status Sweep(const std::function<bool(const Digest&, const ObjectInfo&)>& should_delete,
               const RefTxnFn& then_fn, uint64_t* deleted) override;
  Status Update(const RefTxnFn& fn) override;
  Status View(const RefTxnFn& fn) override;
  uint64_t DiskBytes() override;
  // A structural check of data.mdb (cas/lmdb_check.h) for the snapshot of a
  // read transaction held meanwhile; safe beside writers (retried if two
  // commits overtake it before it has read the meta page).
  Result<StructureCheck> CheckStructure() override;

  // Current memory-map size in bytes (grows on demand).
  uint64_t MapSize();

  class Impl;

 private:
  explicit LmdbStore(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace hashfs
