// ForwardingStore: an ObjectStore that passes every call on to another store
// (one it is given, or a MemoryStore of its own). Tests derive from it and
// override only the calls they instrument (fail, count, gate, hook).
// Header-only; not a test file. Thread-safe as the store it forwards to.
#pragma once

#include <memory>

#include "cas/memory_store.h"
#include "cas/object_store.h"

namespace hashfs {

class ForwardingStore : public ObjectStore {
 public:
  ForwardingStore() : owned_(std::make_unique<MemoryStore>()), inner_(*owned_) {}
  explicit ForwardingStore(ObjectStore& inner) : inner_(inner) {}

  Result<std::string> Get(const Digest& d) override { return inner_.Get(d); }
  Result<bool> Contains(const Digest& d) override { return inner_.Contains(d); }
  Result<ObjectInfo> Info(const Digest& d) override { return inner_.Info(d); }
  Status PutBatch(std::span<const PreparedObject> batch) override { return inner_.PutBatch(batch); }
  Status ForEachObject(const std::function<Status(const Digest&, std::string_view)>& fn) override {
    return inner_.ForEachObject(fn);
  }
  Status Sweep(const std::function<bool(const Digest&, const ObjectInfo&)>& should_delete, const RefTxnFn& then_fn,
               uint64_t* deleted) override {
    return inner_.Sweep(should_delete, then_fn, deleted);
  }
  Status Update(const RefTxnFn& fn) override { return inner_.Update(fn); }
  Status View(const RefTxnFn& fn) override { return inner_.View(fn); }
  uint64_t DiskBytes() override { return inner_.DiskBytes(); }
  Result<StructureCheck> CheckStructure() override { return inner_.CheckStructure(); }

 protected:
  ObjectStore& inner() { return inner_; }

 private:
  std::unique_ptr<MemoryStore> owned_;
  ObjectStore& inner_;
};

}  // namespace hashfs
