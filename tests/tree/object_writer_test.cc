// Tests of the deduplicating, batching ObjectWriter (tree/object_writer.h).
#include "tree/object_writer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "cas/memory_store.h"
#include "tests/forwarding_store.h"
#include "test_util.h"

namespace hashfs {
namespace {

using testing::RandomBytes;

// A MemoryStore that records every PutBatch; it can be told to fail writes,
// and to park a Get of one digest until released.
class CountingStore final : public ForwardingStore {
 public:
  Result<std::string> Get(const Digest& d) override {
    {
      // A Get of the gated digest parks here until the gate opens.
      std::unique_lock lk(mu_);
      if (gated_ && *gated_ == d) {
        parked_++;
        cv_.notify_all();
        cv_.wait(lk, [&] { return !gated_; });
      }
    }
    return ForwardingStore::Get(d);
  }
  Status PutBatch(std::span<const PreparedObject> batch) override {
    if (fail_.load()) return Status::IOError("injected write failure");
    {
      std::lock_guard lk(mu_);
      batches_++;
      for (const auto& o : batch) writes_[o.digest]++;
    }
    return ForwardingStore::PutBatch(batch);
  }
  uint64_t DiskBytes() override { return 0; }

  size_t ObjectCount() {
    size_t n = 0;
    (void)ForEachObject([&](const Digest&, std::string_view) {
      n++;
      return Status::Ok();
    });
    return n;
  }
  int batches() {
    std::lock_guard lk(mu_);
    return batches_;
  }
  std::map<Digest, int> writes() {
    std::lock_guard lk(mu_);
    return writes_;
  }
  void set_fail(bool f) { fail_ = f; }
  void Gate(const Digest& d) {
    std::lock_guard lk(mu_);
    gated_ = d;
  }
  // Waits up to `seconds` for a Get to park at the gate.
  bool WaitParked(int seconds) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, std::chrono::seconds(seconds), [&] { return parked_ > 0; });
  }
  void Open() {
    std::lock_guard lk(mu_);
    gated_.reset();
    cv_.notify_all();
  }

 private:
  std::condition_variable cv_;
  std::optional<Digest> gated_;
  int parked_ = 0;
  std::mutex mu_;
  int batches_ = 0;
  std::map<Digest, int> writes_;
  std::atomic<bool> fail_{false};
};

TEST(ObjectWriterTest, DedupesIdenticalBytes) {
  CountingStore store;
  ObjectWriter w(store, 3);
  const std::string a = RandomBytes(5000, 1);
  HFS_ASSERT_OK_AND_ASSIGN(Digest d1, w.Put(a, ObjectKind::kData));
  HFS_ASSERT_OK_AND_ASSIGN(Digest d2, w.Put(a, ObjectKind::kData));
  EXPECT_EQ(d1, d2);
  EXPECT_EQ(d1, Sha256Of(a));
  EXPECT_EQ(w.stats().objects_added, 1u);
  EXPECT_EQ(w.stats().plain_bytes_added, a.size());
  HFS_ASSERT_OK(w.Flush());
  // Put again after the flush: already stored, nothing added.
  HFS_ASSERT_OK_AND_ASSIGN(Digest d3, w.Put(a, ObjectKind::kData));
  EXPECT_EQ(d3, d1);
  HFS_ASSERT_OK(w.Flush());
  EXPECT_EQ(w.stats().objects_added, 1u);
  EXPECT_EQ(store.ObjectCount(), 1u);
  EXPECT_EQ(store.writes()[d1], 1);

  // A second writer over the same store sees the object as present.
  ObjectWriter w2(store, 3);
  HFS_ASSERT_OK(w2.Put(a, ObjectKind::kData).status());
  HFS_ASSERT_OK(w2.Flush());
  EXPECT_EQ(w2.stats().objects_added, 0u);
  EXPECT_EQ(store.writes()[d1], 1);

  // The empty object is an object too.
  HFS_ASSERT_OK_AND_ASSIGN(Digest e, w.Put("", ObjectKind::kMeta));
  EXPECT_EQ(e, Sha256Of(""));
  HFS_ASSERT_OK(w.Flush());
  HFS_ASSERT_OK_AND_ASSIGN(std::string eb, store.Get(e));
  EXPECT_EQ(eb, "");
}

TEST(ObjectWriterTest, GetSeesUnflushedObjects) {
  CountingStore store;
  ObjectWriter w(store, 3);  // default batch size: nothing is written yet
  const std::string a = RandomBytes(1000, 2), b(100000, 'b');
  HFS_ASSERT_OK_AND_ASSIGN(Digest da, w.Put(a, ObjectKind::kData));
  const Digest db = Sha256Of(b);
  HFS_ASSERT_OK(w.PutWithDigest(db, b, ObjectKind::kMeta));
  HFS_ASSERT_OK_AND_ASSIGN(bool in_store, store.Contains(da));
  EXPECT_FALSE(in_store) << "written before Flush with a 32 MiB batch";
  EXPECT_EQ(store.batches(), 0);
  // Metadata objects are served from memory: no write.
  HFS_ASSERT_OK_AND_ASSIGN(std::string gb, w.Get(db));
  EXPECT_EQ(gb, b);
  EXPECT_EQ(store.batches(), 0);
  // Data chunks are not kept twice: a queued one is decoded from its
  // prepared (stored) form, still without a write.
  HFS_ASSERT_OK_AND_ASSIGN(std::string ga, w.Get(da));
  EXPECT_EQ(ga, a);
  EXPECT_EQ(store.batches(), 0);
  HFS_ASSERT_OK(w.Flush());
  HFS_ASSERT_OK_AND_ASSIGN(in_store, store.Contains(da));
  EXPECT_TRUE(in_store);
  HFS_ASSERT_OK_AND_ASSIGN(ga, w.Get(da));
  EXPECT_EQ(ga, a);
  EXPECT_EQ(w.Get(Sha256Of("absent")).status().code(), Status::Code::kNotFound);
}

TEST(ObjectWriterTest, FlushMakesObjectsVisibleInTheStore) {
  CountingStore store;
  ObjectWriter w(store, 3);
  const std::string a = RandomBytes(1000, 3);  // incompressible
  const std::string b(100000, 'b');            // compressible
  HFS_ASSERT_OK_AND_ASSIGN(Digest da, w.Put(a, ObjectKind::kData));
  HFS_ASSERT_OK_AND_ASSIGN(Digest db, w.Put(b, ObjectKind::kMeta));
  HFS_ASSERT_OK(w.Flush());
  EXPECT_EQ(store.batches(), 1);
  HFS_ASSERT_OK_AND_ASSIGN(std::string ga, store.Get(da));
  EXPECT_EQ(ga, a);
  HFS_ASSERT_OK_AND_ASSIGN(std::string gb, store.Get(db));
  EXPECT_EQ(gb, b);
  HFS_ASSERT_OK_AND_ASSIGN(ObjectInfo ia, store.Info(da));
  EXPECT_EQ(ia.kind, ObjectKind::kData);
  EXPECT_EQ(ia.plain_size, a.size());
  HFS_ASSERT_OK_AND_ASSIGN(ObjectInfo ib, store.Info(db));
  EXPECT_EQ(ib.kind, ObjectKind::kMeta);
  EXPECT_TRUE(ib.compressed);
  EXPECT_LT(ib.stored_size, b.size() / 10);
  // Stats count stored (compressed, framed) bytes.
  EXPECT_EQ(w.stats().plain_bytes_added, a.size() + b.size());
  EXPECT_EQ(w.stats().stored_bytes_added, ia.stored_size + ib.stored_size);
  // Still readable through the writer after the flush.
  HFS_ASSERT_OK_AND_ASSIGN(std::string again, w.Get(db));
  EXPECT_EQ(again, b);
  // Flushing again, or flushing nothing, is fine and writes nothing.
  HFS_ASSERT_OK(w.Flush());
  EXPECT_EQ(store.batches(), 1);
  ObjectWriter idle(store, 3);
  HFS_ASSERT_OK(idle.Flush());
  EXPECT_EQ(store.batches(), 1);
}

TEST(ObjectWriterTest, ZstdLevelZeroNeverCompresses) {
  CountingStore store;
  ObjectWriter w(store, 0);
  HFS_ASSERT_OK_AND_ASSIGN(Digest d, w.Put(std::string(100000, 'z'), ObjectKind::kData));
  HFS_ASSERT_OK(w.Flush());
  HFS_ASSERT_OK_AND_ASSIGN(ObjectInfo i, store.Info(d));
  EXPECT_FALSE(i.compressed);
}

// The object count alone closes a batch: tiny objects never reach the byte
// limit, and each one dirties a B-tree leaf of its own.
TEST(ObjectWriterTest, BatchObjectCountForcesIntermediateBatches) {
  CountingStore store;
  ObjectWriter w(store, 0, /*batch_bytes=*/1u << 30, /*batch_objects=*/10);
  for (int i = 0; i < 35; i++) HFS_ASSERT_OK(w.Put(RandomBytes(100, 500 + i), ObjectKind::kData).status());
  EXPECT_EQ(store.batches(), 3) << "one batch per 10 objects before any Flush";
  EXPECT_EQ(store.ObjectCount(), 30u);
  HFS_ASSERT_OK(w.Flush());
  EXPECT_EQ(store.ObjectCount(), 35u);
}

TEST(ObjectWriterTest, SmallBatchBytesForcesIntermediateBatches) {
  CountingStore store;
  ObjectWriter w(store, 0, /*batch_bytes=*/4096);
  std::vector<Digest> ds;
  for (int i = 0; i < 50; i++) {
    HFS_ASSERT_OK_AND_ASSIGN(Digest d, w.Put(RandomBytes(1000, 100 + i), ObjectKind::kData));
    ds.push_back(d);
  }
  // ~1018 stored bytes each: a batch every 5 objects, before any Flush.
  EXPECT_GE(store.batches(), 9);
  EXPECT_LE(store.batches(), 12);
  HFS_ASSERT_OK_AND_ASSIGN(bool first_in_store, store.Contains(ds[0]));
  EXPECT_TRUE(first_in_store) << "a full batch is written without waiting for Flush";
  HFS_ASSERT_OK(w.Flush());
  EXPECT_EQ(store.ObjectCount(), 50u);
  for (const auto& d : ds) {
    HFS_ASSERT_OK_AND_ASSIGN(std::string b, store.Get(d));
    EXPECT_EQ(Sha256Of(b), d);
    HFS_ASSERT_OK_AND_ASSIGN(std::string b2, w.Get(d));
    EXPECT_EQ(b2, b);
  }
  for (const auto& [d, n] : store.writes()) EXPECT_EQ(n, 1) << d.Hex();
}

constexpr int kThreads = 8;
constexpr int kDistinct = 3000;

std::vector<std::string> ConcurrencyObjects() {
  // Some objects are tiny, some larger; all distinct.
  std::vector<std::string> objects;
  for (int i = 0; i < kDistinct; i++) objects.push_back(RandomBytes(16 + (i * 37) % 3000, 1000 + i));
  return objects;
}

// The objects thread t puts, in its order: a random 3/4 of all (heavy overlap).
std::vector<int> ThreadOrder(int t) {
  std::mt19937_64 rng(t);
  std::vector<int> order(kDistinct);
  for (int i = 0; i < kDistinct; i++) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  order.resize(kDistinct * 3 / 4);
  return order;
}

std::set<int> AllPut() {
  std::set<int> put;
  for (int t = 0; t < kThreads; t++) {
    auto o = ThreadOrder(t);
    put.insert(o.begin(), o.end());
  }
  return put;
}

// Collects failures from worker threads (gtest assertions are per thread).
class Failures {
 public:
  void Add(std::string m) {
    std::lock_guard lk(mu_);
    n_++;
    if (msgs_.size() < 5) msgs_.push_back(std::move(m));
  }
  int count() const { return n_; }
  std::string text() const {
    std::string all;
    for (const auto& m : msgs_) all += m + "\n";
    return all;
  }

 private:
  std::mutex mu_;
  int n_ = 0;
  std::vector<std::string> msgs_;
};

// Runs 8 threads putting overlapping sets of objects (optionally reading
// them back); returns failures seen in the threads.
void RunConcurrentPuts(ObjectWriter& w, const std::vector<std::string>& objects, ObjectKind kind, bool read_back,
                       Failures* failures) {
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      std::mt19937_64 rng(100 + t);
      auto order = ThreadOrder(t);
      for (size_t k = 0; k < order.size(); k++) {
        const std::string& o = objects[order[k]];
        auto d = w.Put(o, kind);
        if (!d.ok() || *d != Sha256Of(o)) {
          failures->Add("Put: " + d.status().ToString());
          continue;
        }
        if (!read_back) continue;
        auto g = w.Get(*d);
        if (!g.ok() || *g != o) failures->Add("Get of own put: " + g.status().ToString());
        const std::string& earlier = objects[order[rng() % (k + 1)]];
        auto g2 = w.Get(Sha256Of(earlier));
        if (!g2.ok() || *g2 != earlier) failures->Add("Get of earlier put: " + g2.status().ToString());
      }
    });
  }
  for (auto& th : threads) th.join();
}

const size_t kBatchSizes[] = {2048, 64 * 1024, 32u << 20};

// 8 threads put overlapping sets of objects: every distinct object ends up in
// the store exactly once and readable.
// A read of an object that is in the store (not queued) must not hold the
// writer's lock: while one Get waits inside the store (I/O on a cold store),
// other Gets and Puts go on. Deterministic: the store parks that Get until the
// others are done (a regression blocks them behind it and the test times out
// on the futures, not on a clock).
TEST(ObjectWriterTest, StoreReadsDoNotHoldTheWriterLock) {
  CountingStore store;
  ObjectWriter w(store, 3);
  auto slow = w.Put(RandomBytes(5000, 1), ObjectKind::kData);
  auto other = w.Put(RandomBytes(5000, 2), ObjectKind::kData);
  ASSERT_TRUE(slow.ok() && other.ok());
  ASSERT_TRUE(w.Flush().ok());
  store.Gate(*slow);
  auto parked = std::async(std::launch::async, [&] { return w.Get(*slow); });
  ASSERT_TRUE(store.WaitParked(30)) << "the gated Get never reached the store";
  auto rest = std::async(std::launch::async, [&]() -> Status {
    HASHFS_ASSIGN_OR_RETURN(std::string got, w.Get(*other));
    if (got != RandomBytes(5000, 2)) return Status::Corruption("wrong bytes");
    HASHFS_ASSIGN_OR_RETURN(Digest d, w.Put(RandomBytes(5000, 3), ObjectKind::kData));
    HASHFS_ASSIGN_OR_RETURN(std::string again, w.Get(d));
    return again == RandomBytes(5000, 3) ? Status::Ok() : Status::Corruption("wrong bytes");
  });
  bool done = rest.wait_for(std::chrono::seconds(30)) == std::future_status::ready;
  store.Open();  // release the parked Get either way, so the test can end
  ASSERT_TRUE(done) << "a Get and a Put waited for another thread's store read";
  EXPECT_TRUE(rest.get().ok());
  auto r = parked.get();
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(*r, RandomBytes(5000, 1));
}

TEST(ObjectWriterTest, ConcurrentOverlappingPutsStoreEachObjectOnce) {
  const auto objects = ConcurrencyObjects();
  const std::set<int> put = AllPut();
  for (size_t batch : kBatchSizes) {
    SCOPED_TRACE(batch);
    CountingStore store;
    ObjectWriter w(store, 1, batch);
    Failures failures;
    RunConcurrentPuts(w, objects, ObjectKind::kData, /*read_back=*/false, &failures);
    EXPECT_EQ(failures.count(), 0) << failures.text();
    HFS_ASSERT_OK(w.Flush());
    EXPECT_EQ(store.ObjectCount(), put.size());
    EXPECT_EQ(store.writes().size(), put.size());
    for (int i : put) {
      auto g = store.Get(Sha256Of(objects[i]));
      ASSERT_TRUE(g.ok()) << g.status().ToString();
      EXPECT_TRUE(*g == objects[i]);
    }
  }
}

// Stricter: Put "skips objects already stored or pending", so no object is
// handed to PutBatch twice and stats count each object once. A race makes
// this fail only sometimes, so several rounds are run.
TEST(ObjectWriterTest, ConcurrentOverlappingPutsWriteAndCountEachObjectOnce) {
  const auto objects = ConcurrencyObjects();
  const std::set<int> put = AllPut();
  for (int round = 0; round < 4; round++) {
    for (size_t batch : kBatchSizes) {
      SCOPED_TRACE("round " + std::to_string(round) + " batch " + std::to_string(batch));
      CountingStore store;
      ObjectWriter w(store, 1, batch);
      Failures failures;
      RunConcurrentPuts(w, objects, ObjectKind::kData, /*read_back=*/false, &failures);
      HFS_ASSERT_OK(w.Flush());
      int dup = 0;
      for (const auto& [d, n] : store.writes()) dup += n > 1;
      ASSERT_EQ(dup, 0) << "objects written by more than one PutBatch";
      ASSERT_EQ(w.stats().objects_added, put.size()) << "objects counted twice";
    }
  }
}

// Read-your-writes under concurrency: once Put returned OK, Get of that
// digest succeeds from any thread, whether the object is still queued, in a
// batch another thread is writing, or stored.
TEST(ObjectWriterTest, ConcurrentReadYourWritesMeta) {
  const auto objects = ConcurrencyObjects();
  for (size_t batch : kBatchSizes) {
    SCOPED_TRACE(batch);
    CountingStore store;
    ObjectWriter w(store, 1, batch);
    Failures failures;
    RunConcurrentPuts(w, objects, ObjectKind::kMeta, /*read_back=*/true, &failures);
    EXPECT_EQ(failures.count(), 0) << failures.text();
    HFS_ASSERT_OK(w.Flush());
  }
}

// As above for data chunks, which are not kept in memory: reading a queued
// one forces a flush, which must also cover batches other threads have taken
// off the queue but not yet written.
TEST(ObjectWriterTest, ConcurrentReadYourWritesData) {
  const auto objects = ConcurrencyObjects();
  for (size_t batch : kBatchSizes) {
    SCOPED_TRACE(batch);
    CountingStore store;
    ObjectWriter w(store, 1, batch);
    Failures failures;
    RunConcurrentPuts(w, objects, ObjectKind::kData, /*read_back=*/true, &failures);
    EXPECT_EQ(failures.count(), 0) << failures.text();
    HFS_ASSERT_OK(w.Flush());
  }
}

// Flush "stores everything queued; durable when it returns OK": after a
// thread's Put calls returned and its Flush returned OK, each of those objects
// is in the store, even if another thread had queued it first and is still
// about to write the batch holding it.
TEST(ObjectWriterTest, ConcurrentFlushMakesOwnPutsDurable) {
  const auto objects = ConcurrencyObjects();
  for (size_t batch : kBatchSizes) {
    SCOPED_TRACE(batch);
    CountingStore store;
    ObjectWriter w(store, 1, batch);
    Failures failures;
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; t++) {
      threads.emplace_back([&, t] {
        auto order = ThreadOrder(t);
        std::vector<Digest> mine;
        for (size_t k = 0; k < order.size(); k++) {
          auto d = w.Put(objects[order[k]], ObjectKind::kData);
          if (!d.ok()) {
            failures.Add("Put: " + d.status().ToString());
            continue;
          }
          mine.push_back(*d);
          if (mine.size() == 25 || k + 1 == order.size()) {
            Status f = w.Flush();
            if (!f.ok()) failures.Add("Flush: " + f.ToString());
            for (const auto& md : mine) {
              auto c = store.Contains(md);
              if (!c.ok() || !*c) failures.Add("not in the store after Flush returned OK: " + md.Hex());
            }
            mine.clear();
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(failures.count(), 0) << failures.text();
  }
}

TEST(ObjectWriterTest, FailedWriteKeepsObjectsUntilAFlushSucceeds) {
  CountingStore store;
  ObjectWriter w(store, 0, /*batch_bytes=*/64);
  const std::string chunk(100, 'c');  // fills a batch: written (and failing) inside Put
  HFS_ASSERT_OK_AND_ASSIGN(Digest one, w.Put("one", ObjectKind::kData));
  HFS_ASSERT_OK_AND_ASSIGN(Digest meta, w.Put("meta", ObjectKind::kMeta));
  store.set_fail(true);
  Result<Digest> c = w.Put(chunk, ObjectKind::kData);
  EXPECT_EQ(c.status().code(), Status::Code::kIOError);
  EXPECT_TRUE(w.failed());
  EXPECT_EQ(w.Flush().code(), Status::Code::kIOError);
  EXPECT_EQ(store.ObjectCount(), 0u);
  // Nothing accepted is lost: every object is still readable (and verified).
  HFS_ASSERT_OK_AND_ASSIGN(std::string got, w.Get(one));
  EXPECT_EQ(got, "one");
  HFS_ASSERT_OK_AND_ASSIGN(got, w.Get(meta));
  EXPECT_EQ(got, "meta");
  HFS_ASSERT_OK_AND_ASSIGN(got, w.Get(Sha256Of(chunk)));
  EXPECT_EQ(got, chunk);
  // While failed, new objects are refused (memory stays bounded) ...
  EXPECT_EQ(w.Put("two", ObjectKind::kData).status().code(), Status::Code::kIOError);
  // ... and a Flush after the store recovers writes everything kept.
  store.set_fail(false);
  HFS_ASSERT_OK(w.Flush());
  EXPECT_FALSE(w.failed());
  EXPECT_EQ(store.ObjectCount(), 3u);
  for (const auto& d : {one, meta, Sha256Of(chunk)}) EXPECT_EQ(store.writes()[d], 1) << d.Hex();
  HFS_ASSERT_OK(w.Put("two", ObjectKind::kData).status());
  HFS_ASSERT_OK(w.Flush());
  EXPECT_EQ(store.ObjectCount(), 4u);
}

}  // namespace
}  // namespace hashfs
