// MemoryStore: an in-memory ObjectStore with the same contracts as LmdbStore
// (verification on read, atomic batches and ref transactions). For tests.
// Thread-safe. CorruptForTesting() lets tests damage a stored object.
#pragma once

#include <map>
#include <mutex>
#include <shared_mutex>

#include "cas/object_store.h"

namespace hashfs {

class MemoryStore final : public ObjectStore {
 public:
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
  uint64_t DiskBytes() override { return 0; }

  // Replaces the stored bytes of `d` (which must exist) with `stored`.
  void CorruptForTesting(const Digest& d, std::string stored);

 private:
  std::mutex write_mu_;  // serializes writers (PutBatch, Sweep, Update), like LMDB's writer lock
  std::shared_mutex mu_;  // guards the maps
  std::map<Digest, std::string> objects_;
  std::map<std::string, std::string, std::less<>> refs_;
};

}  // namespace hashfs
