// DiscordRemote: an offsite copy of a store in one or more Discord channels.
//
// Order of operations (design.md "Remote format"):
//   push:  sync the local index with the channels (reconciles creates whose
//          answer was lost, even by a killed process) -> upload packs of every
//          object the pushed refs reach that the remote lacks, recording each
//          pack in the local index as its message create returns -> only then
//          append a ref-log message and point the pinned manifest at it.
//   pull:  sync -> read the newest ref-log -> fetch what the refs reach
//          (level by level, batched Range requests, parallel, every object
//          verified) -> update local refs (fast-forward only) in one
//          transaction, checked against garbage collection's epoch.
//   clone: the same into an empty store; without --all only commits are
//          fetched and the rest comes on demand (fetching_store.h).
// Secrets (token, passphrase, master key) live only in memory. Thread-safe
// for FetchObject; the other operations are meant to run one at a time.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "remote/discord_api.h"
#include "remote/pack.h"
#include "remote/reach.h"
#include "remote/remote_format.h"
#include "remote/remote_index.h"
#include "remote/split.h"
#include "tree/repository.h"

namespace hashfs::remote {

struct TransferProgress {
  std::atomic<uint64_t> objects_total{0}, objects_done{0};
  std::atomic<uint64_t> bytes_total{0}, bytes_done{0};
  std::atomic<uint64_t> packs{0}, messages{0};
  std::atomic<int> phase{0};  // 0 listing/scanning, 1 transferring, 2 publishing
};

struct PushReport {
  uint64_t objects_uploaded = 0, bytes_uploaded = 0, packs = 0, messages = 0;
  uint64_t objects_present = 0;  // reachable objects the remote already had
  std::vector<std::string> published;
  uint64_t refs_seq = 0;
  bool nothing_to_do = false;
};

struct PullReport {
  uint64_t objects_fetched = 0, bytes_fetched = 0;
  std::vector<std::string> updated, unchanged;
  std::vector<std::string> skipped;  // "name: reason"
};

struct RemoteStatsReport {
  uint64_t messages = 0, packs = 0, pack_bytes = 0, objects = 0;
  uint64_t live_objects = 0, live_bytes = 0, dead_bytes = 0, duplicate_objects = 0;
  uint64_t refs_seq = 0, gc_generation = 0, volumes = 0, snapshots = 0;
};

struct RemoteVerifyReport {
  uint64_t packs_total = 0, packs_checked = 0, objects_checked = 0, bytes_checked = 0;
  std::vector<std::string> problems;
  bool ok() const { return problems.empty(); }
};

struct RemoteGcReport {
  uint64_t messages_deleted = 0, packs_deleted = 0, packs_repacked = 0, objects_moved = 0;
  uint64_t bytes_freed = 0, refs_messages_deleted = 0;
};

class DiscordRemote {
 public:
  // No network access. `http` defaults to libcurl.
  static Result<std::unique_ptr<DiscordRemote>> Open(ObjectStore& store, RemoteConfig cfg, std::string token,
                                                     std::unique_ptr<HttpClient> http = nullptr);
  ~DiscordRemote();

  // Reads the manifest (pinned on the first channel; else the newest ref-log
  // message) and opens the master key with the passphrase. With `create`, a
  // channel without one gets a new master key and manifest. Permission on a
  // wrong passphrase or token; NotFound if there is no remote and !create.
  Status Unlock(std::string_view passphrase, bool create);
  // Writes the configuration into the store (remote/NAME/config).
  Status SaveConfig();

  // Lists the channels past the last seen message and indexes new packs
  // (one Range request per pack for its trailer). `rebuild` forgets the local
  // index first and lists everything.
  Status SyncIndex(bool rebuild, TransferProgress* progress = nullptr);
  // The newest published refs (nullopt: nothing published yet).
  Result<std::optional<RemoteRefs>> LatestRefs();

  // `names`: volumes or snapshots (empty: all of them).
  Result<PushReport> Push(Repository& repo, const std::vector<std::string>& names, TransferProgress* progress);
  Result<PullReport> Pull(Repository& repo, bool fetch_objects, TransferProgress* progress);
  // Fetches one object (plus up to `readahead` bytes of the objects after it
  // in its pack) into `into`; returns its verified plain bytes.
  Result<std::string> FetchObject(const Digest& d, ObjectStore& into, uint64_t readahead = 4ull << 20);

  Result<RemoteStatsReport> Stats(Repository& repo);
  Result<RemoteVerifyReport> Verify(Repository& repo, double sample_percent, TransferProgress* progress);
  // Deletes messages whose packs hold only objects no published ref reaches;
  // repacks packs whose dead fraction exceeds `waste_threshold` first.
  Result<RemoteGcReport> Gc(Repository& repo, double waste_threshold, TransferProgress* progress);

  const RemoteConfig& config() const { return cfg_; }
  DiscordApi& api() { return *api_; }
  RemoteIndex& index() { return index_; }
  const MasterKey& key() const { return *key_; }
  // Problems worth telling the user that did not stop the operation.
  std::vector<std::string> TakeWarnings();

 private:
  DiscordRemote(ObjectStore& store, RemoteConfig cfg, std::unique_ptr<HttpClient> http, std::string token);

  struct Pack {
    std::string bytes;
    PackIndex index;
  };
  // One pack entry to upload: an object, a split descriptor or a piece.
  struct UploadItem {
    Digest keyed_id, digest;
    ObjectKind kind = ObjectKind::kData;
    EntryType type = EntryType::kObject;
    std::string frame;
  };
  // Takes one item; false once the upload failed (stop producing).
  using ItemSink = std::function<bool(const UploadItem&)>;

  uint64_t PackTarget() const;
  uint64_t RequestBudget() const;
  // Downloads (part of) a pack's attachment, refreshing an expired URL.
  Result<std::string> DownloadAttachment(const PackLocation& loc, std::optional<std::pair<uint64_t, uint64_t>> range);
  Result<std::string> AttachmentUrl(const PackLocation& loc, bool refresh, const std::string& stale);
  void CacheUrls(const DiscordMessage& m);
  // Entries [first, last] of a pack, downloaded in one Range request and
  // verified; re-downloaded (up to 3 times) when a byte is wrong.
  Result<std::vector<PreparedObject>> FetchSpan(const PackRecord& pack, size_t first, size_t last);
  Status IngestPack(const PackLocation& loc, const std::string& pack_id);
  // Uploads `digests` (objects of `src`): whole objects first; then the
  // pieces of those too large for one pack; then, once every piece is
  // recorded, their descriptors (design.md "Objects larger than a pack").
  Status UploadObjects(ObjectStore& src, int zstd_level, const std::vector<Digest>& digests,
                       TransferProgress* progress, PushReport* report);
  // Packs what `produce` emits into messages and uploads them, one uploader
  // thread per channel; returns once all are recorded (or the first error).
  Status UploadItems(const std::function<Status(const ItemSink&)>& produce, TransferProgress* progress,
                     PushReport* report);
  Status UploadBatch(uint64_t channel, std::vector<Pack> packs, TransferProgress* progress, PushReport* report);
  // Rebuilds `p`'s entries into packs of the current limit and uploads them.
  // What no longer fits one pack goes back to UploadObjects: an object is
  // split, a piece means its object is cut again into smaller pieces.
  Status Repack(uint64_t channel, const Pack& p, TransferProgress* progress, PushReport* report);
  // The object `d` from its split descriptor: downloads its pieces, joins
  // them and checks the frame hashes to d (write time stamped now).
  Result<PreparedObject> JoinSplit(const Digest& d, std::string_view descriptor);
  // The entry of `d` (or of the piece) as located by the index: pack and position.
  Result<std::pair<PackRecord, size_t>> Locate(const Digest& keyed_id, const std::string& what);
  // Adds to `live` the keyed ids of the pieces of every split object whose
  // descriptor is in it (downloading the descriptors); `owner`, if given,
  // maps each piece's keyed id to its object's digest. Returns the pieces
  // the index lacks, described.
  Result<std::vector<std::string>> ExpandSplits(const std::vector<PackRecord>& packs,
                                                std::unordered_set<Digest, DigestHash>* live,
                                                std::unordered_map<Digest, Digest, DigestHash>* owner);
  Status PublishRefs(RemoteRefs refs);
  Status FetchDigests(const std::vector<Digest>& digests, ObjectStore& into, TransferProgress* progress,
                      PullReport* report);
  Status FetchClosure(Repository& repo, const std::vector<Digest>& commits, bool recursive,
                      TransferProgress* progress, PullReport* report);
  Status ApplyRefs(Repository& repo, const RemoteRefs& refs, uint64_t epoch, PullReport* report);
  // Keyed ids of every object the refs reach (fetching tree objects as needed).
  Result<std::unordered_set<Digest, DigestHash>> Reachable(Repository& repo, const RemoteRefs& refs);
  Result<RefsPointer> LoadPointer();
  Status SavePointer(const RefsPointer& p);
  void Warn(std::string w);

  ObjectStore& store_;
  RemoteConfig cfg_;
  std::unique_ptr<HttpClient> http_;
  std::unique_ptr<DiscordApi> api_;
  RemoteIndex index_;
  std::optional<MasterKey> key_;
  Manifest manifest_;
  uint64_t manifest_channel_ = 0, manifest_message_ = 0;
  std::atomic<uint64_t> pack_limit_{0};
  std::atomic<uint64_t> request_budget_{0};
  uint64_t initial_attachment_limit_ = 0;
  std::vector<std::pair<uint64_t, uint64_t>> refs_messages_;  // (channel, message) seen while listing

  // Set by UploadBatch when Discord refused an attachment and what it held
  // no longer fits one pack: objects to split, or pieces to cut again.
  std::mutex split_mu_;
  std::vector<Digest> late_split_;
  bool resplit_ = false;

  std::mutex url_mu_;
  std::unordered_map<uint64_t, std::string> urls_;  // attachment id -> signed URL (memory only)
  std::mutex warn_mu_;
  std::vector<std::string> warnings_;
};

}  // namespace hashfs::remote
