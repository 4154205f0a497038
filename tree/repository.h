// Repository: the hashfs view of a store — its configuration, volumes with
// their commit histories, snapshots, REF resolution, and the coordination
// records that let garbage collection run beside writers.
//
// Ref table keys (design.md has the byte layout):
//   config               JSON repository configuration
//   vol/NAME             head commit digest (32) + head history seq (8, BE)
//   hist/NAME/SEQ        commit digest; SEQ is 8 big-endian bytes
//   snap/NAME            commit digest
//   gc/epoch             8-byte BE counter, bumped by every GC sweep
//   sess/ID              JSON record of a live writer (pid, host, start)
//   pin/ID               commit digest a live writer session keeps from gc
// Every mutation is one ref transaction, so it is atomic and durable when
// the call returns. Thread-safe.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "cas/object_store.h"
#include "tree/chunker.h"
#include "tree/codec.h"
#include "tree/dir_tree.h"

namespace hashfs {

inline constexpr std::string_view kRepoFormat = "hashfs-repo-1";

struct RepoConfig {
  ChunkParams chunking;
  int zstd_level = 3;
  std::string id;  // random, hex; set by Init
  int64_t created_ns = 0;
};

struct HistoryEntry {
  uint64_t seq = 0;
  Digest commit;
};

// Names of volumes and snapshots (one namespace): 1..128 of [A-Za-z0-9._-],
// starting with a letter or digit, and not 8+ hex digits (those are commit ids).
Status ValidateName(std::string_view name);

class Repository {
 public:
  // Writes the configuration into an empty store. Exists if already initialized.
  static Status Init(ObjectStore& store, RepoConfig cfg);
  // NotFound if the store was never initialized, Unsupported on a format mismatch.
  static Result<std::unique_ptr<Repository>> Open(ObjectStore& store);

  ObjectStore& store() { return store_; }
  const RepoConfig& config() const { return cfg_; }
  ObjectGetter getter() { return GetterFor(store_); }

  Result<Commit> LoadCommit(const Digest& id);

  Result<std::optional<Digest>> Head(std::string_view volume);
  Result<std::vector<std::string>> Volumes();
  // Makes `commit` the head of `volume` and appends it to its history, if the
  // head is still `expected` (nullopt: the volume must not exist yet, and the
  // name must not be a snapshot). Conflict if the head moved; Stale if a
  // garbage collection swept since `gc_epoch` was read (the caller must check
  // its objects still exist, see gc.h, and retry with the new epoch).
  Status Advance(std::string_view volume, std::optional<Digest> expected, const Digest& commit,
                 uint64_t gc_epoch);
  // Newest first; at most `limit` entries (0: all).
  Result<std::vector<HistoryEntry>> History(std::string_view volume, size_t limit = 0);
  // Removes history entries (never the head's). Used by forget.
  Status DropHistory(std::string_view volume, const std::vector<uint64_t>& seqs);

  Status CreateSnapshot(std::string_view name, const Digest& commit);
  Status DeleteSnapshot(std::string_view name);
  Result<std::vector<std::pair<std::string, Digest>>> Snapshots();

  // Resolves a REF: VOLUME (its head), VOLUME~N (N commits before the head),
  // a snapshot name, or a unique prefix (>= 8 hex digits) of a kept commit id.
  Result<Digest> Resolve(std::string_view ref);

  // Every commit kept by a history or a snapshot (the GC roots), deduplicated.
  Result<std::vector<Digest>> KeptCommits();
  // Commits pinned by live writer sessions (pin/ refs); gc roots too.
  Result<std::vector<Digest>> PinnedCommits();

  Result<uint64_t> GcEpoch();

 private:
  Repository(ObjectStore& s, RepoConfig c) : store_(s), cfg_(std::move(c)) {}
  ObjectStore& store_;
  RepoConfig cfg_;
};

// A registered writer (backup, mount): while it lives, garbage collection
// keeps every object written since it started. Registration survives a crash
// as a record that GC discards once the process is gone.
class WriterSession {
 public:
  static Result<std::unique_ptr<WriterSession>> Start(Repository& repo, std::string_view what);
  ~WriterSession();
  WriterSession(const WriterSession&) = delete;
  WriterSession& operator=(const WriterSession&) = delete;
  // The GC epoch read when the session started (or last revalidated).
  uint64_t epoch() const { return epoch_; }
  void set_epoch(uint64_t e) { epoch_ = e; }
  // Keeps `commit` and everything it reaches from garbage collection for the
  // session's life (ref pin/ID; gc treats it as a root). A mount pins the
  // files that are open but in no committed tree (unlinked while open).
  Status Pin(const Digest& commit);
  Status Unpin();

 private:
  WriterSession(Repository& r, std::string id, uint64_t e) : repo_(r), id_(std::move(id)), epoch_(e) {}
  Repository& repo_;
  std::string id_;
  uint64_t epoch_;
};

// Live writer sessions' start times (unix seconds); removes records of
// processes that no longer exist on this host.
Result<std::vector<int64_t>> LiveSessionStarts(Repository& repo);

// Big-endian helpers shared by ref encodings.
std::string EncodeBE64(uint64_t v);
uint64_t DecodeBE64(std::string_view s);

}  // namespace hashfs
