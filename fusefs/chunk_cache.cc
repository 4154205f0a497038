#include "fusefs/chunk_cache.h"

namespace hashfs::fusefs {

ChunkCache::~ChunkCache() { Wait(); }

void ChunkCache::Wait() {
  arena_.execute([&] { background_.wait(); });
}

Result<ChunkBytes> ChunkCache::Get(const Digest& d) {
  std::promise<Result<ChunkBytes>> mine;
  {
    std::unique_lock lk(mu_);
    auto it = index_.find(d);
    if (it != index_.end()) {
      lru_.splice(lru_.begin(), lru_, it->second);
      return it->second->second;
    }
    auto l = loading_.find(d);
    if (l != loading_.end()) {
      Load wait = l->second;  // someone else is loading it: share the result
      lk.unlock();
      return wait.get();
    }
    loading_.emplace(d, mine.get_future().share());
  }
  // Fetch outside the lock: decompression must not serialize readers.
  Result<ChunkBytes> r = Status::IOError("not loaded");
  try {
    Result<std::string> plain = get_(d);
    if (plain.ok())
      r = std::make_shared<const std::string>(std::move(plain).value());
    else
      r = plain.status();
  } catch (const std::exception& e) {  // e.g. bad_alloc: never leave waiters hanging
    r = Status::IOError(std::string("loading chunk: ") + e.what());
  }
  std::lock_guard lk(mu_);
  if (r.ok()) InsertLocked(d, *r);
  mine.set_value(r);
  loading_.erase(d);
  return r;
}

void ChunkCache::Prefetch(const std::vector<Digest>& digests) {
  std::vector<Digest> todo;
  {
    std::lock_guard lk(mu_);
    for (const Digest& d : digests)
      if (!index_.count(d) && !loading_.count(d)) todo.push_back(d);
  }
  for (const Digest& d : todo) {
    if (prefetching_.fetch_add(1) >= kMaxPrefetching) {
      prefetching_--;
      return;
    }
    arena_.enqueue(background_.defer([this, d] {
      (void)Get(d);
      prefetching_--;
    }));
  }
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
