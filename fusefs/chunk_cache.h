// ChunkCache: a bounded LRU cache of verified, decoded data chunks, shared by
// every open file of a mount so that sequential 128 KiB reads of a 1 MiB chunk
// fetch and decompress it once. Concurrent requests for one chunk share one
// load. Prefetch() loads chunks in the background (read-ahead for sequential
// reads, so the next chunks are decoded while the current one is served).
// Background loads run in a TBB arena of their own with kLoaders threads: a
// cold load mostly waits for the store's pages to come in (page faults on the
// LMDB map), so several in flight beat one per core; while a cache exists
// TBB's process-wide thread limit is raised so that arena gets its threads
// (other arenas keep their size).
// Thread-safe; the destructor waits for background loads.
#pragma once

#include <tbb/global_control.h>
#include <tbb/info.h>
#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include <atomic>
#include <future>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "cas/digest.h"
#include "tree/dir_tree.h"

namespace hashfs::fusefs {

using ChunkBytes = std::shared_ptr<const std::string>;

class ChunkCache {
 public:
  ChunkCache(ObjectGetter get, size_t capacity_bytes) : get_(std::move(get)), capacity_(capacity_bytes) {}
  ~ChunkCache();
  ChunkCache(const ChunkCache&) = delete;
  ChunkCache& operator=(const ChunkCache&) = delete;

  // The chunk's plain bytes, from the cache or the store (Corruption when the
  // stored bytes fail their hash: never wrong bytes).
  Result<ChunkBytes> Get(const Digest& d);
  // Adds bytes the caller knows hash to `d` (a chunk it just wrote).
  void Insert(const Digest& d, ChunkBytes bytes);
  size_t capacity() const { return capacity_; }
  // Starts loading each chunk that is neither cached nor loading, in the
  // background, up to kMaxPrefetching at a time (the rest are skipped).
  // Errors are not reported here; a later Get reports them.
  void Prefetch(const std::vector<Digest>& digests);

  // Waits for every background load (call before what the getter uses goes).
  void Wait();

  static constexpr int kMaxPrefetching = 16;
  static constexpr int kLoaders = 4;

 private:
  using Load = std::shared_future<Result<ChunkBytes>>;
  void InsertLocked(const Digest& d, ChunkBytes bytes);
  ObjectGetter get_;
  const size_t capacity_;
  std::mutex mu_;
  size_t bytes_ = 0;
  std::list<std::pair<Digest, ChunkBytes>> lru_;  // front: most recent
  std::unordered_map<Digest, std::list<std::pair<Digest, ChunkBytes>>::iterator, DigestHash> index_;
  std::unordered_map<Digest, Load, DigestHash> loading_;  // loads in progress
  std::atomic<int> prefetching_{0};
  tbb::global_control parallelism_{tbb::global_control::max_allowed_parallelism,
                                   static_cast<size_t>(oneapi::tbb::info::default_concurrency() + kLoaders)};
  tbb::task_arena arena_{kLoaders, 0};  // no slot reserved for callers: loads run on workers only
  tbb::task_group background_;
};

}  // namespace hashfs::fusefs
