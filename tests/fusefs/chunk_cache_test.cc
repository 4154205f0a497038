// ChunkCache: one load per chunk however many readers ask at once, background
// prefetch, errors not cached.
#include "fusefs/chunk_cache.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <map>
#include <thread>
#include <vector>

namespace hashfs::fusefs {
namespace {

struct CountingGetter {
  std::map<Digest, std::string> objects;
  std::atomic<int> calls{0};
  std::atomic<bool> fail{false};
  ObjectGetter Getter() {
    return [this](const Digest& d) -> Result<std::string> {
      calls++;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a slow (cold) load
      if (fail) return Status::IOError("injected");
      auto it = objects.find(d);
      if (it == objects.end()) return Status::Corruption("missing");
      return it->second;
    };
  }
  Digest Add(const std::string& s) {
    Digest d = Sha256Of(s);
    objects[d] = s;
    return d;
  }
};

TEST(ChunkCacheTest, ConcurrentReadersShareOneLoad) {
  CountingGetter g;
  Digest d = g.Add(std::string(1 << 20, 'x'));
  ChunkCache cache(g.Getter(), 64 << 20);
  std::vector<std::thread> ts;
  std::atomic<int> ok{0};
  for (int i = 0; i < 8; i++)
    ts.emplace_back([&] {
      auto r = cache.Get(d);
      if (r.ok() && **r == std::string(1 << 20, 'x')) ok++;
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(ok.load(), 8);
  EXPECT_EQ(g.calls.load(), 1);
}

TEST(ChunkCacheTest, PrefetchLoadsInTheBackgroundOnce) {
  CountingGetter g;
  std::vector<Digest> ds;
  for (int i = 0; i < 4; i++) ds.push_back(g.Add("chunk " + std::to_string(i)));
  ChunkCache cache(g.Getter(), 64 << 20);
  cache.Prefetch(ds);
  cache.Prefetch(ds);  // already loading or cached: nothing new
  for (int i = 0; i < 4; i++) {
    auto r = cache.Get(ds[static_cast<size_t>(i)]);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    EXPECT_EQ(**r, "chunk " + std::to_string(i));
  }
  cache.Wait();
  EXPECT_EQ(g.calls.load(), 4);
  // At most kMaxPrefetching start at once; the rest are skipped, not queued.
  std::vector<Digest> many;
  for (int i = 0; i < 3 * ChunkCache::kMaxPrefetching; i++) many.push_back(g.Add("more " + std::to_string(i)));
  cache.Prefetch(many);
  cache.Wait();
  EXPECT_LE(g.calls.load(), 4 + ChunkCache::kMaxPrefetching);
}

TEST(ChunkCacheTest, FailuresAreReportedToEveryWaiterAndNotCached) {
  CountingGetter g;
  Digest d = g.Add("data");
  ChunkCache cache(g.Getter(), 64 << 20);
  g.fail = true;
  std::vector<std::thread> ts;
  std::atomic<int> failed{0};
  for (int i = 0; i < 4; i++)
    ts.emplace_back([&] {
      if (!cache.Get(d).ok()) failed++;
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(failed.load(), 4);
  g.fail = false;
  auto r = cache.Get(d);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(**r, "data");
}

}  // namespace
}  // namespace hashfs::fusefs
