// ChunkCache: a bounded LRU cache of verified, decoded data chunks, shared by
// every open file of a mount so that sequential 128 KiB reads of a 1 MiB chunk
// fetch and decompress it once. Thread-safe.
#pragma once

#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "cas/digest.h"
#include "tree/dir_tree.h"

namespace hashfs::fusefs {

using ChunkBytes = std::shared_ptr<const std::string>;

class ChunkCache {
 public:
  ChunkCache(ObjectGetter get, size_t capacity_bytes) : get_(std::move(get)), capacity_(capacity_bytes) {}
  ChunkCache(const ChunkCache&) = delete;
  ChunkCache& operator=(const ChunkCache&) = delete;

  // The chunk's plain bytes, from the cache or the store (Corruption when the
  // stored bytes fail their hash: never wrong bytes).
  Result<ChunkBytes> Get(const Digest& d);
  // Adds bytes the caller knows hash to `d` (a chunk it just wrote).
  void Insert(const Digest& d, ChunkBytes bytes);

 private:
  void InsertLocked(const Digest& d, ChunkBytes bytes);
  ObjectGetter get_;
  const size_t capacity_;
  std::mutex mu_;
  size_t bytes_ = 0;
  std::list<std::pair<Digest, ChunkBytes>> lru_;  // front: most recent
  std::unordered_map<Digest, std::list<std::pair<Digest, ChunkBytes>>::iterator, DigestHash> index_;
};

}  // namespace hashfs::fusefs
