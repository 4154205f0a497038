// FetchingStore: an ObjectStore decorator for stores cloned lazily. Get() of
// an object missing locally fetches it from the remote with one Range request
// into its pack (plus read-ahead: the objects after it in the same pack, which
// push wrote in walk order, i.e. the next chunks of the same file), verifies
// it (AEAD, keyed name, SHA-256) and stores it in the local store, so each
// object crosses the network once. Everything else goes to the local store.
//
// The remote is opened on the first miss (credentials are read then), so
// reading what is already local needs no token or passphrase. A failure to
// open it is remembered and returned for every later miss. Contains() and
// ForEachObject() see only local objects. Thread-safe.
#pragma once

#include <array>
#include <atomic>
#include <functional>
#include <memory>
#include <mutex>

#include "cas/object_store.h"
#include "remote/discord_remote.h"

namespace hashfs::remote {

class FetchingStore final : public ObjectStore {
 public:
  using RemoteFactory = std::function<Result<std::unique_ptr<DiscordRemote>>()>;
  FetchingStore(ObjectStore& local, RemoteFactory factory, uint64_t readahead = 4ull << 20);
  ~FetchingStore() override;

  Result<std::string> Get(const Digest& d) override;
  Result<bool> Contains(const Digest& d) override { return local_.Contains(d); }
  Result<ObjectInfo> Info(const Digest& d) override;
  Status PutBatch(std::span<const PreparedObject> batch) override { return local_.PutBatch(batch); }
  Status ForEachObject(const std::function<Status(const Digest&, std::string_view stored)>& fn) override {
    return local_.ForEachObject(fn);
  }
  Status Sweep(const std::function<bool(const Digest&, const ObjectInfo&)>& should_delete, const RefTxnFn& then_fn,
               uint64_t* deleted) override {
    return local_.Sweep(should_delete, then_fn, deleted);
  }
  Status Update(const RefTxnFn& fn) override { return local_.Update(fn); }
  Status View(const RefTxnFn& fn) override { return local_.View(fn); }
  uint64_t DiskBytes() override { return local_.DiskBytes(); }
  Result<StructureCheck> CheckStructure() override { return local_.CheckStructure(); }

  uint64_t objects_fetched() const { return fetched_; }

 private:
  Result<DiscordRemote*> Remote();

  ObjectStore& local_;
  RemoteFactory factory_;
  const uint64_t readahead_;
  std::mutex open_mu_;
  std::unique_ptr<DiscordRemote> remote_;
  Status open_error_;
  std::array<std::mutex, 16> stripes_;  // one fetch per digest stripe at a time
  std::atomic<uint64_t> fetched_{0};
};

}  // namespace hashfs::remote
