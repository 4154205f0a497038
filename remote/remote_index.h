// RemoteIndex: this store's knowledge of a remote, kept in the store's own
// ref table under "remote/NAME/" (so it is transactional with the store and
// needs no second database):
//
//   remote/NAME/config           JSON RemoteConfig (remote_config.h); no secrets
//   remote/NAME/o/<keyed id hex> pack id (16) | u64 LE offset | u32 LE length
//   remote/NAME/p/<pack id hex>  u64 LE channel | u64 LE message | u64 LE attachment |
//                                u64 LE pack size | u32 LE count | count x index record
//                                (the pack trailer's records, pack.h)
//   remote/NAME/sync/<channel>   decimal id of the newest message already listed
//   remote/NAME/refsptr          JSON pointer to the newest ref-log message seen (remote_format.h)
//   remote/NAME/refs             the newest remote ref state seen (JSON, remote_format.h)
//   remote/NAME/gen              decimal gc generation the index was built under
//   remote/NAME/lazy             "1" when the store was cloned without --all
//
// Locators are channel, message and attachment ids: signed URLs are never
// stored. The index is a cache: it can always be rebuilt by listing the
// channels (every pack's trailer holds its own encrypted index).
// Thread-safe (each call is one store transaction).
#pragma once

#include <optional>
#include <string>
#include <unordered_set>
#include <vector>

#include "cas/object_store.h"
#include "remote/pack.h"

namespace hashfs::remote {

struct PackLocation {
  uint64_t channel = 0, message = 0, attachment = 0;
  uint64_t size = 0;
};

struct PackRecord {
  PackLocation loc;
  PackIndex index;
};

struct ObjectLocation {
  std::string pack_id;
  uint64_t offset = 0;
  uint32_t length = 0;
};

class RemoteIndex {
 public:
  RemoteIndex(ObjectStore& store, const std::string& name) : store_(store), prefix_("remote/" + name + "/") {}

  const std::string& prefix() const { return prefix_; }

  // Records packs and points each of their objects at them (a later pack
  // holding the same object replaces the locator). One transaction.
  Status AddPacks(const std::vector<PackRecord>& packs);
  // Forgets packs (deleted from the remote); locators pointing into them go too.
  Status RemovePacks(const std::vector<std::string>& pack_ids);
  Result<std::optional<ObjectLocation>> Find(const Digest& keyed_id);
  Result<std::optional<PackRecord>> GetPack(const std::string& pack_id);
  Result<bool> HasPack(const std::string& pack_id);
  Result<std::vector<PackRecord>> AllPacks();
  Result<std::unordered_set<Digest, DigestHash>> AllKeyedIds();
  // Drops every locator, pack and sync mark (before a rebuild).
  Status ClearObjects();

  Result<uint64_t> Watermark(uint64_t channel);
  Status SetWatermark(uint64_t channel, uint64_t message);

  Result<std::optional<std::string>> Get(std::string_view key);
  Status Put(std::string_view key, std::string_view value);
  Status Delete(std::string_view key);

  // Every remote name configured in `store` (keys remote/NAME/config).
  static Result<std::vector<std::string>> Names(ObjectStore& store);

 private:
  ObjectStore& store_;
  std::string prefix_;
};

// The values of the index's records. Decoders treat them as hostile: what
// the encoders could not have written is Corruption.
std::string EncodePackRecord(const PackRecord& r);
Result<PackRecord> DecodePackRecord(std::string_view pack_id, std::string_view v);
std::string EncodeLocation(const ObjectLocation& l);
Result<ObjectLocation> DecodeLocation(std::string_view v);
// remote/NAME/sync/<channel> and remote/NAME/gen: std::to_string's decimal.
Result<uint64_t> DecodeDecimal(std::string_view v);

}  // namespace hashfs::remote
