#include "fusefs/chunk_cache.h"

namespace hashfs::fusefs {

Result<ChunkBytes> ChunkCache::Get(const Digest& d) {
  {
    std::lock_guard lk(mu_);
    auto it = index_.find(d);
    if (it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->second;
    }
  }
  // Fetch outside the lock: decompression must not serialize readers.
  HASHFS_ASSIGN_OR_RETURN(std::string plain, get_(d));
  auto bytes = std::make_shared<const std::string>(std::move(plain));
  std::lock_guard lk(mu_);
  InsertLocked(d, bytes);
  return bytes;
}

void ChunkCache::Insert(const Digest& d, ChunkBytes bytes) {
  std::lock_guard lk(mu_);
  InsertLocked(d, std::move(bytes));
}

void ChunkCache::InsertLocked(const Digest& d, ChunkBytes bytes) {
  if (index_.count(d)) return;
  if (bytes->size() > capacity_) return;
  bytes_ += bytes->size();
  lru_.emplace_front(d, std::move(bytes));
  index_[d] = lru_.begin();
  while (bytes_ > capacity_ && !lru_.empty()) {
    bytes_ -= lru_.back().second->size();
    index_.erase(lru_.back().first);
    lru_.pop_back();
  }
}

}  // namespace hashfs::fusefs
