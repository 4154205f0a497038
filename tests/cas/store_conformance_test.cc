// One conformance suite for the ObjectStore contract (cas/object_store.h),
// run against every implementation: MemoryStore and LmdbStore.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "cas/lmdb_store.h"
#include "cas/memory_store.h"
#include "cas/object_codec.h"
#include "cas/object_store.h"
#include "tests/cas/cas_test_util.h"

namespace hashfs {
namespace {

using ::hashfs::testing::RandomBytes;
using ::hashfs::testing::TempDir;
using RefList = std::vector<std::pair<std::string, std::string>>;

// Owns one store under test and whatever it lives in.
class StoreHolder {
 public:
  virtual ~StoreHolder() = default;
  virtual ObjectStore* store() = 0;
};

class MemoryHolder final : public StoreHolder {
 public:
  ObjectStore* store() override { return &store_; }

 private:
  MemoryStore store_;
};

class LmdbHolder final : public StoreHolder {
 public:
  LmdbHolder() {
    LmdbOptions opts;
    opts.create_if_missing = true;
    auto r = LmdbStore::Open(dir_.Sub("store"), opts);
    if (!r.ok()) {
      ADD_FAILURE() << "LmdbStore::Open: " << r.status().ToString();
      return;
    }
    store_ = std::move(r).value();
  }
  ~LmdbHolder() override { store_.reset(); }  // close before the dir goes
  ObjectStore* store() override { return store_.get(); }

 private:
  TempDir dir_;  // destroyed after store_
  std::unique_ptr<LmdbStore> store_;
};

struct StoreFactory {
  std::string name;
  std::function<std::unique_ptr<StoreHolder>()> make;
};

void PrintTo(const StoreFactory& f, std::ostream* os) { *os << f.name; }

std::string FactoryName(const ::testing::TestParamInfo<StoreFactory>& info) { return info.param.name; }

class StoreConformanceTest : public ::testing::TestWithParam<StoreFactory> {
 protected:
  void SetUp() override {
    holder_ = GetParam().make();
    store_ = holder_->store();
    ASSERT_NE(store_, nullptr);
  }
  void TearDown() override { holder_.reset(); }

  Status Put(const std::vector<PreparedObject>& objs) { return store_->PutBatch(objs); }

  std::optional<std::string> GetRef(std::string_view key) {
    std::optional<std::string> out;
    Status s = store_->View([&](RefTxn& t) -> Status {
      HASHFS_ASSIGN_OR_RETURN(out, t.Get(key));
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  }
  Status PutRef(std::string_view key, std::string_view value) {
    return store_->Update([&](RefTxn& t) { return t.Put(key, value); });
  }
  RefList ListRefs(std::string_view prefix, size_t limit = 0, bool reverse = false) {
    RefList out;
    Status s = store_->View([&](RefTxn& t) -> Status {
      HASHFS_ASSIGN_OR_RETURN(out, t.List(prefix, limit, reverse));
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  }
  std::vector<Digest> AllDigests() {
    std::vector<Digest> out;
    Status s = store_->ForEachObject([&](const Digest& d, std::string_view) {
      out.push_back(d);
      return Status::Ok();
    });
    EXPECT_TRUE(s.ok()) << s.ToString();
    return out;
  }

  std::unique_ptr<StoreHolder> holder_;
  ObjectStore* store_ = nullptr;
};

// ----------------------------------------------------------------- objects

TEST_P(StoreConformanceTest, GetOfAbsentObjectIsNotFound) {
  Digest d = Sha256Of("never stored");
  CAS_EXPECT_CODE(store_->Get(d), kNotFound);
  CAS_EXPECT_CODE(store_->Info(d), kNotFound);
  auto c = store_->Contains(d);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_FALSE(*c);
  CAS_EXPECT_CODE(store_->Get(Digest::Zero()), kNotFound);
  EXPECT_TRUE(AllDigests().empty());
}

TEST_P(StoreConformanceTest, EmptyBatchIsOk) {
  CAS_EXPECT_OK(store_->PutBatch({}));
  EXPECT_TRUE(AllDigests().empty());
}

TEST_P(StoreConformanceTest, PutBatchThenGetContainsInfo) {
  std::vector<std::string> plains = {
      "",
      "small",
      RandomBytes(4096, 1),
      std::string(100000, 'c'),        // compresses
      RandomBytes(3 << 20, 2),         // multi-page in LMDB
  };
  std::vector<PreparedObject> batch;
  for (size_t i = 0; i < plains.size(); i++)
    batch.push_back(PrepareObject(plains[i], i % 2 ? ObjectKind::kMeta : ObjectKind::kData, 3));
  CAS_ASSERT_OK(Put(batch));
  for (size_t i = 0; i < plains.size(); i++) {
    const PreparedObject& o = batch[i];
    auto g = store_->Get(o.digest);
    ASSERT_TRUE(g.ok()) << i << ": " << g.status().ToString();
    EXPECT_EQ(*g, plains[i]) << i;
    auto c = store_->Contains(o.digest);
    ASSERT_TRUE(c.ok());
    EXPECT_TRUE(*c) << i;
    auto info = store_->Info(o.digest);
    ASSERT_TRUE(info.ok()) << info.status().ToString();
    auto expect = ParseStoredHeader(o.stored);
    ASSERT_TRUE(expect.ok());
    EXPECT_EQ(info->kind, i % 2 ? ObjectKind::kMeta : ObjectKind::kData) << i;
    EXPECT_EQ(info->compressed, expect->compressed) << i;
    EXPECT_EQ(info->plain_size, plains[i].size()) << i;
    EXPECT_EQ(info->stored_size, o.stored.size()) << i;
    EXPECT_EQ(info->write_time, expect->write_time) << i;
  }
  auto big = store_->Info(batch[3].digest);
  ASSERT_TRUE(big.ok());
  EXPECT_TRUE(big->compressed);
  EXPECT_LT(big->stored_size, 100000u);
}

TEST_P(StoreConformanceTest, ManySmallBatchesAllReadable) {
  std::vector<PreparedObject> all;
  for (int b = 0; b < 20; b++) {
    std::vector<PreparedObject> batch;
    for (int i = 0; i < 25; i++) {
      batch.push_back(PrepareObject(RandomBytes(100 + i * 37, b * 1000 + i), ObjectKind::kData, 3));
    }
    CAS_ASSERT_OK(Put(batch));
    all.insert(all.end(), batch.begin(), batch.end());
  }
  for (const auto& o : all) {
    auto g = store_->Get(o.digest);
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    EXPECT_EQ(Sha256Of(*g), o.digest);
  }
  EXPECT_EQ(AllDigests().size(), all.size());
}

TEST_P(StoreConformanceTest, PutBatchIsIdempotentAndKeepsFirstStoredBytes) {
  std::string plain = std::string(50000, 'x') + RandomBytes(100, 3);
  PreparedObject first = PrepareObject(plain, ObjectKind::kMeta, 3);  // compressed, kind meta
  ASSERT_EQ(first.stored[0], 1);
  CAS_ASSERT_OK(Put({first}));

  // Same digest, different (but valid) stored form: raw, kind data, other time.
  PreparedObject second = PrepareObject(plain, ObjectKind::kData, 0);
  second.stored.replace(10, 8, std::string(8, '\x7f'));
  ASSERT_EQ(second.digest, first.digest);
  ASSERT_NE(second.stored, first.stored);
  CAS_ASSERT_OK(Put({second}));
  CAS_ASSERT_OK(Put({second, first, second}));

  auto info = store_->Info(first.digest);
  ASSERT_TRUE(info.ok());
  EXPECT_TRUE(info->compressed);
  EXPECT_EQ(info->kind, ObjectKind::kMeta);
  EXPECT_EQ(info->stored_size, first.stored.size());
  std::string seen;
  CAS_ASSERT_OK(store_->ForEachObject([&](const Digest& d, std::string_view s) {
    if (d == first.digest) seen = std::string(s);
    return Status::Ok();
  }));
  EXPECT_EQ(seen, first.stored);
  auto g = store_->Get(first.digest);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(*g, plain);
  EXPECT_EQ(AllDigests().size(), 1u);

  // A corrupt re-put of an existing good object must not damage it either.
  PreparedObject evil = PrepareObjectWithDigest(first.digest, "evil bytes", ObjectKind::kData, 0);
  CAS_ASSERT_OK(Put({evil}));
  g = store_->Get(first.digest);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ(*g, plain);
}

TEST_P(StoreConformanceTest, DuplicateDigestWithinOneBatch) {
  PreparedObject a = PrepareObject("dup", ObjectKind::kData, 3);
  PreparedObject b = PrepareObject("other", ObjectKind::kData, 3);
  CAS_ASSERT_OK(Put({a, b, a, a}));
  EXPECT_EQ(AllDigests().size(), 2u);
  auto g = store_->Get(a.digest);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(*g, "dup");
}

TEST_P(StoreConformanceTest, StoredBytesNotMatchingDigestGetReturnsCorruption) {
  PreparedObject good = PrepareObject("good object", ObjectKind::kData, 3);
  Digest claimed = Sha256Of("what the caller thinks it stored");
  // Valid frame, wrong content.
  PreparedObject wrong_content = PrepareObjectWithDigest(claimed, "something else", ObjectKind::kData, 3);
  // Compressed frame, wrong content.
  Digest claimed2 = Sha256Of("second claim");
  PreparedObject wrong_zstd =
      PrepareObjectWithDigest(claimed2, std::string(10000, 'z'), ObjectKind::kData, 3);
  ASSERT_EQ(wrong_zstd.stored[0], 1);
  // Garbage that is not even a header.
  Digest claimed3 = Sha256Of("third claim");
  PreparedObject garbage{claimed3, "short"};
  // Bit-flipped payload of an otherwise right object.
  PreparedObject flipped = PrepareObject(RandomBytes(1000, 5), ObjectKind::kData, 3);
  flipped.stored[500] ^= 0x10;

  CAS_ASSERT_OK(Put({good, wrong_content, wrong_zstd, garbage, flipped}));

  for (const Digest& d : {claimed, claimed2, claimed3, flipped.digest}) {
    auto g = store_->Get(d);
    CAS_EXPECT_CODE(g, kCorruption) << d.Hex();
    auto c = store_->Contains(d);
    ASSERT_TRUE(c.ok());
    EXPECT_TRUE(*c);  // present, just bad
  }
  CAS_EXPECT_CODE(store_->Info(claimed3), kCorruption);
  EXPECT_TRUE(store_->Info(claimed).ok());
  auto g = store_->Get(good.digest);
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(*g, "good object");

  // ForEachObject hands out the raw stored bytes unverified.
  std::map<Digest, std::string> raw;
  CAS_ASSERT_OK(store_->ForEachObject([&](const Digest& d, std::string_view s) {
    raw[d] = std::string(s);
    return Status::Ok();
  }));
  EXPECT_EQ(raw.size(), 5u);
  EXPECT_EQ(raw[claimed3], "short");
  EXPECT_EQ(raw[flipped.digest], flipped.stored);
}

TEST_P(StoreConformanceTest, ForEachObjectVisitsAllInDigestOrder) {
  std::map<Digest, std::string> expect;
  for (int b = 0; b < 4; b++) {
    std::vector<PreparedObject> batch;
    for (int i = 0; i < 100; i++) {
      size_t size = (i % 10 == 0) ? 20000 + i : 10 + i;  // a few multi-page ones
      batch.push_back(PrepareObject(RandomBytes(size, b * 1000 + i), ObjectKind::kData, 3));
      expect[batch.back().digest] = batch.back().stored;
    }
    CAS_ASSERT_OK(Put(batch));
  }
  std::vector<Digest> order;
  CAS_ASSERT_OK(store_->ForEachObject([&](const Digest& d, std::string_view s) {
    order.push_back(d);
    auto it = expect.find(d);
    EXPECT_NE(it, expect.end()) << d.Hex();
    if (it != expect.end()) {
      EXPECT_EQ(s, it->second) << d.Hex();
    }
    return Status::Ok();
  }));
  ASSERT_EQ(order.size(), 400u);
  EXPECT_TRUE(std::is_sorted(order.begin(), order.end()));
  EXPECT_EQ(std::set<Digest>(order.begin(), order.end()).size(), 400u);
  // Byte order == Prefix64 order where prefixes differ.
  for (size_t i = 1; i < order.size(); i++) EXPECT_LE(order[i - 1].Prefix64(), order[i].Prefix64());
}

TEST_P(StoreConformanceTest, ForEachObjectStopsOnErrorAndReturnsIt) {
  std::vector<PreparedObject> batch;
  for (int i = 0; i < 50; i++) batch.push_back(PrepareObject(RandomBytes(32, i), ObjectKind::kData, 3));
  CAS_ASSERT_OK(Put(batch));
  int calls = 0;
  Status s = store_->ForEachObject([&](const Digest&, std::string_view) {
    if (++calls == 7) return Status::Conflict("stop here");
    return Status::Ok();
  });
  CAS_EXPECT_CODE(s, kConflict);
  EXPECT_EQ(s.message(), "stop here");
  EXPECT_EQ(calls, 7);
}

TEST_P(StoreConformanceTest, ForEachObjectSeesOneSnapshot) {
  std::vector<PreparedObject> batch, later;
  for (int i = 0; i < 200; i++) batch.push_back(PrepareObject(RandomBytes(64, i), ObjectKind::kData, 3));
  for (int i = 0; i < 200; i++) later.push_back(PrepareObject(RandomBytes(64, 10000 + i), ObjectKind::kData, 3));
  CAS_ASSERT_OK(Put(batch));
  std::thread writer;
  std::atomic<bool> write_done{false};
  size_t count = 0;
  CAS_ASSERT_OK(store_->ForEachObject([&](const Digest&, std::string_view) {
    if (count++ == 0) {
      writer = std::thread([&] {
        EXPECT_TRUE(store_->PutBatch(later).ok());
        write_done = true;
      });
      // Give the writer a chance to commit in the middle of the scan (it may
      // legitimately be blocked until the scan ends).
      for (int i = 0; i < 50 && !write_done; i++) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return Status::Ok();
  }));
  writer.join();
  EXPECT_EQ(count, 200u);
  EXPECT_EQ(AllDigests().size(), 400u);
}

// ------------------------------------------------------------------- sweep

TEST_P(StoreConformanceTest, SweepDeletesExactlyChosenAndRunsThenFnInSameTxn) {
  std::vector<PreparedObject> batch;
  for (int i = 0; i < 300; i++) {
    size_t size = (i % 17 == 0) ? 30000 : 50 + i;
    batch.push_back(PrepareObject(RandomBytes(size, i), i % 3 ? ObjectKind::kData : ObjectKind::kMeta, 3));
  }
  CAS_ASSERT_OK(Put(batch));
  CAS_ASSERT_OK(PutRef("gc/generation", "1"));
  CAS_ASSERT_OK(PutRef("keep", "me"));

  std::vector<Digest> sorted;
  for (auto& o : batch) sorted.push_back(o.digest);
  std::sort(sorted.begin(), sorted.end());
  // Delete: every third, plus a run of 20 consecutive, plus first and last.
  std::set<Digest> doomed;
  for (size_t i = 0; i < sorted.size(); i += 3) doomed.insert(sorted[i]);
  for (size_t i = 100; i < 120; i++) doomed.insert(sorted[i]);
  doomed.insert(sorted.front());
  doomed.insert(sorted.back());

  std::map<Digest, ObjectInfo> seen_info;
  uint64_t deleted = 12345;
  Status s = store_->Sweep(
      [&](const Digest& d, const ObjectInfo& info) {
        EXPECT_FALSE(seen_info.count(d)) << "visited twice: " << d.Hex();
        seen_info[d] = info;
        return doomed.count(d) > 0;
      },
      [&](RefTxn& t) -> Status {
        HASHFS_ASSIGN_OR_RETURN(auto gen, t.Get("gc/generation"));
        EXPECT_EQ(gen, std::optional<std::string>("1"));
        HASHFS_RETURN_IF_ERROR(t.Put("gc/generation", "2"));
        return t.Put("gc/last", "swept");
      },
      &deleted);
  CAS_ASSERT_OK(s);
  EXPECT_EQ(deleted, doomed.size());
  EXPECT_EQ(seen_info.size(), batch.size());  // every object considered once
  for (const auto& o : batch) {
    auto expect = ParseStoredHeader(o.stored);
    ASSERT_TRUE(expect.ok());
    EXPECT_EQ(seen_info[o.digest].plain_size, expect->plain_size);
    EXPECT_EQ(seen_info[o.digest].kind, expect->kind);
    EXPECT_EQ(seen_info[o.digest].stored_size, o.stored.size());
    bool gone = doomed.count(o.digest) > 0;
    auto c = store_->Contains(o.digest);
    ASSERT_TRUE(c.ok());
    EXPECT_EQ(*c, !gone) << o.digest.Hex();
    if (gone) {
      CAS_EXPECT_CODE(store_->Get(o.digest), kNotFound);
    } else {
      auto g = store_->Get(o.digest);
      EXPECT_TRUE(g.ok()) << g.status().ToString();
    }
  }
  EXPECT_EQ(AllDigests().size(), batch.size() - doomed.size());
  EXPECT_EQ(GetRef("gc/generation"), "2");
  EXPECT_EQ(GetRef("gc/last"), "swept");
  EXPECT_EQ(GetRef("keep"), "me");
}

TEST_P(StoreConformanceTest, SweepDeletingEverythingAndNothing) {
  std::vector<PreparedObject> batch;
  for (int i = 0; i < 120; i++) batch.push_back(PrepareObject(RandomBytes(200 + i, i), ObjectKind::kData, 3));
  CAS_ASSERT_OK(Put(batch));
  uint64_t deleted = 99;
  CAS_ASSERT_OK(store_->Sweep([](const Digest&, const ObjectInfo&) { return false; },
                              [](RefTxn&) { return Status::Ok(); }, &deleted));
  EXPECT_EQ(deleted, 0u);
  EXPECT_EQ(AllDigests().size(), 120u);
  CAS_ASSERT_OK(store_->Sweep([](const Digest&, const ObjectInfo&) { return true; },
                              [](RefTxn&) { return Status::Ok(); }, &deleted));
  EXPECT_EQ(deleted, 120u);
  EXPECT_TRUE(AllDigests().empty());
  for (const auto& o : batch) CAS_EXPECT_CODE(store_->Get(o.digest), kNotFound);
  // The store is still usable afterwards.
  CAS_ASSERT_OK(Put({batch[0]}));
  EXPECT_TRUE(store_->Get(batch[0].digest).ok());
  // deleted may be null.
  CAS_ASSERT_OK(store_->Sweep([](const Digest&, const ObjectInfo&) { return true; },
                              [](RefTxn&) { return Status::Ok(); }, nullptr));
  EXPECT_TRUE(AllDigests().empty());
}

TEST_P(StoreConformanceTest, SweepWithFailingThenFnDeletesNothingAndDiscardsRefWrites) {
  std::vector<PreparedObject> batch;
  for (int i = 0; i < 50; i++) batch.push_back(PrepareObject(RandomBytes(100, i), ObjectKind::kData, 3));
  CAS_ASSERT_OK(Put(batch));
  CAS_ASSERT_OK(PutRef("root", "old"));
  CAS_ASSERT_OK(PutRef("doomed-ref", "x"));
  uint64_t deleted = 777;
  Status s = store_->Sweep([](const Digest&, const ObjectInfo&) { return true; },
                           [](RefTxn& t) -> Status {
                             HASHFS_RETURN_IF_ERROR(t.Put("root", "new"));
                             HASHFS_RETURN_IF_ERROR(t.Put("added", "y"));
                             HASHFS_RETURN_IF_ERROR(t.Delete("doomed-ref"));
                             return Status::Stale("repository changed during gc");
                           },
                           &deleted);
  CAS_EXPECT_CODE(s, kStale);
  EXPECT_EQ(s.message(), "repository changed during gc");
  EXPECT_EQ(deleted, 777u) << "deleted count must not be reported for a failed sweep";
  EXPECT_EQ(AllDigests().size(), 50u);
  for (const auto& o : batch) {
    auto g = store_->Get(o.digest);
    EXPECT_TRUE(g.ok()) << g.status().ToString();
  }
  EXPECT_EQ(GetRef("root"), "old");
  EXPECT_EQ(GetRef("doomed-ref"), "x");
  EXPECT_EQ(GetRef("added"), std::nullopt);
}

// -------------------------------------------------------------------- refs

TEST_P(StoreConformanceTest, RefGetPutDelete) {
  EXPECT_EQ(GetRef("head"), std::nullopt);
  CAS_ASSERT_OK(store_->Update([](RefTxn& t) -> Status {
    HASHFS_ASSIGN_OR_RETURN(auto v, t.Get("head"));
    EXPECT_EQ(v, std::nullopt);
    HASHFS_RETURN_IF_ERROR(t.Put("head", "v1"));
    HASHFS_ASSIGN_OR_RETURN(v, t.Get("head"));  // read-your-writes
    EXPECT_EQ(v, std::optional<std::string>("v1"));
    HASHFS_RETURN_IF_ERROR(t.Put("head", "v2"));  // overwrite
    HASHFS_ASSIGN_OR_RETURN(v, t.Get("head"));
    EXPECT_EQ(v, std::optional<std::string>("v2"));
    return Status::Ok();
  }));
  EXPECT_EQ(GetRef("head"), "v2");
  CAS_ASSERT_OK(store_->Update([](RefTxn& t) -> Status {
    HASHFS_RETURN_IF_ERROR(t.Delete("head"));
    HASHFS_ASSIGN_OR_RETURN(auto v, t.Get("head"));
    EXPECT_EQ(v, std::nullopt);
    return t.Delete("never-existed");  // absent key is OK
  }));
  EXPECT_EQ(GetRef("head"), std::nullopt);
}

TEST_P(StoreConformanceTest, RefValuesAreBinarySafe) {
  std::string nul_value("a\0b\0", 4);
  std::string big_value = RandomBytes(200000, 1);
  std::string key_with_nul("k\0ey", 4);
  CAS_ASSERT_OK(PutRef("empty-value", ""));
  CAS_ASSERT_OK(PutRef("nul-value", nul_value));
  CAS_ASSERT_OK(PutRef("big-value", big_value));
  CAS_ASSERT_OK(PutRef(key_with_nul, "v"));
  CAS_ASSERT_OK(PutRef(std::string(511, 'L'), "long key"));
  EXPECT_EQ(GetRef("empty-value"), std::optional<std::string>(""));  // present, not absent
  EXPECT_EQ(GetRef("nul-value"), nul_value);
  EXPECT_EQ(GetRef("big-value"), big_value);
  EXPECT_EQ(GetRef(key_with_nul), "v");
  EXPECT_EQ(GetRef("k"), std::nullopt);
  EXPECT_EQ(GetRef(std::string(511, 'L')), "long key");
}

class RefListTest : public StoreConformanceTest {
 protected:
  void SetUp() override {
    StoreConformanceTest::SetUp();
    keys_ = {"a",      "a.",     "a/",     std::string("a/\0", 3), "a/1",      "a/2",    "a/20",
             "a/\x7f", "a/\x80", "a/\xfe", "a/\xff",               "a/\xff\x01", "a/\xff\xff",
             "a0",     "a00",    "b",      "\xff",                 "\xff\xff", "\xff\xff\xff", "`"};
    CAS_ASSERT_OK(store_->Update([&](RefTxn& t) -> Status {
      for (const auto& k : keys_) HASHFS_RETURN_IF_ERROR(t.Put(k, "v:" + k));
      return Status::Ok();
    }));
  }
  // Expected result computed independently from keys_.
  RefList Expected(std::string_view prefix, size_t limit = 0, bool reverse = false) {
    std::vector<std::string> ks;
    for (const auto& k : keys_)
      if (std::string_view(k).starts_with(prefix)) ks.push_back(k);
    std::sort(ks.begin(), ks.end());  // std::string compares as unsigned bytes via char_traits
    if (reverse) std::reverse(ks.begin(), ks.end());
    if (limit && ks.size() > limit) ks.resize(limit);
    RefList out;
    for (auto& k : ks) out.emplace_back(k, "v:" + k);
    return out;
  }
  std::vector<std::string> keys_;
};

std::string Printable(std::string_view s) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7f) {
      out += static_cast<char>(c);
    } else {
      char buf[8];
      snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out;
}

std::string Keys(const RefList& l) {
  std::string out = "[";
  for (auto& [k, v] : l) out += "\"" + Printable(k) + "\" ";
  return out + "]";
}

TEST_P(RefListTest, ForwardWithPrefix) {
  RefList got = ListRefs("a/");
  RefList want = Expected("a/");
  ASSERT_EQ(want.size(), 11u);  // sanity of the fixture
  EXPECT_EQ(got, want) << "got " << Keys(got) << " want " << Keys(want);
  EXPECT_EQ(got.front().first, "a/");
  EXPECT_EQ(got.back().first, "a/\xff\xff");
}

TEST_P(RefListTest, ReverseWithPrefix) {
  RefList got = ListRefs("a/", 0, true);
  RefList want = Expected("a/", 0, true);
  EXPECT_EQ(got, want) << "got " << Keys(got) << " want " << Keys(want);
}

TEST_P(RefListTest, Limits) {
  for (bool reverse : {false, true}) {
    for (size_t limit : {1ul, 2ul, 5ul, 11ul, 12ul, 100ul}) {
      RefList got = ListRefs("a/", limit, reverse);
      RefList want = Expected("a/", limit, reverse);
      EXPECT_EQ(got, want) << "limit " << limit << " reverse " << reverse << " got " << Keys(got);
    }
  }
}

TEST_P(RefListTest, PrefixEndingInFF) {
  for (bool reverse : {false, true}) {
    for (std::string prefix : {std::string("a/\xff"), std::string("a/\xff\xff"), std::string("\xff"),
                               std::string("\xff\xff"), std::string("a/\xfe")}) {
      RefList got = ListRefs(prefix, 0, reverse);
      RefList want = Expected(prefix, 0, reverse);
      EXPECT_FALSE(want.empty());
      EXPECT_EQ(got, want) << "prefix " << Printable(prefix) << " reverse " << reverse << " got " << Keys(got)
                           << " want " << Keys(want);
      RefList got1 = ListRefs(prefix, 1, reverse);
      EXPECT_EQ(got1, Expected(prefix, 1, reverse)) << "prefix " << Printable(prefix) << " reverse " << reverse;
    }
  }
}

TEST_P(RefListTest, KeysJustOutsidePrefixAreExcluded) {
  for (bool reverse : {false, true}) {
    for (std::string prefix : {"a", "a/", "a/2", "a0", "b", "`", "a.", "a/1"}) {
      RefList got = ListRefs(prefix, 0, reverse);
      RefList want = Expected(prefix, 0, reverse);
      EXPECT_EQ(got, want) << "prefix " << Printable(prefix) << " reverse " << reverse << " got " << Keys(got)
                           << " want " << Keys(want);
    }
  }
  RefList a0 = ListRefs("a0");
  ASSERT_EQ(a0.size(), 2u);
  EXPECT_EQ(a0[0].first, "a0");
  EXPECT_EQ(a0[1].first, "a00");
}

TEST_P(RefListTest, EmptyPrefixListsEverything) {
  EXPECT_EQ(ListRefs(""), Expected(""));
  EXPECT_EQ(ListRefs("", 0, true), Expected("", 0, true));
  EXPECT_EQ(ListRefs("", 3, false), Expected("", 3, false));
  EXPECT_EQ(ListRefs("", 3, true), Expected("", 3, true));
  EXPECT_EQ(ListRefs("").size(), keys_.size());
}

TEST_P(RefListTest, PrefixWithNoMatches) {
  for (bool reverse : {false, true}) {
    for (std::string prefix : {"zzz", "a/3", "0", "A", "a/\xff\xff\xff", "\xff\xff\xff\xff", "c"}) {
      EXPECT_TRUE(ListRefs(prefix, 0, reverse).empty()) << Printable(prefix) << " reverse " << reverse
                                                          << Keys(ListRefs(prefix, 0, reverse));
    }
  }
}

TEST_P(RefListTest, ListSeesUncommittedWritesOfItsOwnUpdate) {
  CAS_ASSERT_OK(store_->Update([&](RefTxn& t) -> Status {
    HASHFS_RETURN_IF_ERROR(t.Put("a/15", "new"));
    HASHFS_RETURN_IF_ERROR(t.Delete("a/2"));
    HASHFS_ASSIGN_OR_RETURN(RefList l, t.List("a/1"));
    EXPECT_EQ(l, (RefList{{"a/1", "v:a/1"}, {"a/15", "new"}}));
    HASHFS_ASSIGN_OR_RETURN(l, t.List("a/2", 0, true));
    EXPECT_EQ(l, (RefList{{"a/20", "v:a/20"}}));
    return Status::Ok();
  }));
  EXPECT_EQ(ListRefs("a/1").size(), 2u);
}

TEST_P(StoreConformanceTest, FailingUpdateLeavesNoWrites) {
  CAS_ASSERT_OK(PutRef("existing", "1"));
  CAS_ASSERT_OK(PutRef("to-delete", "2"));
  Status s = store_->Update([](RefTxn& t) -> Status {
    HASHFS_RETURN_IF_ERROR(t.Put("existing", "changed"));
    HASHFS_RETURN_IF_ERROR(t.Put("new", "n"));
    HASHFS_RETURN_IF_ERROR(t.Delete("to-delete"));
    return Status::Conflict("lost the race");
  });
  CAS_EXPECT_CODE(s, kConflict);
  EXPECT_EQ(s.message(), "lost the race");
  EXPECT_EQ(GetRef("existing"), "1");
  EXPECT_EQ(GetRef("to-delete"), "2");
  EXPECT_EQ(GetRef("new"), std::nullopt);
  EXPECT_EQ(ListRefs("").size(), 2u);
  // The store works normally afterwards.
  CAS_ASSERT_OK(PutRef("new", "n"));
  EXPECT_EQ(GetRef("new"), "n");
}

TEST_P(StoreConformanceTest, ViewRejectsWritesAndReturnsCallbackStatus) {
  CAS_ASSERT_OK(PutRef("k", "v"));
  Status put_status, del_status;
  CAS_ASSERT_OK(store_->View([&](RefTxn& t) -> Status {
    put_status = t.Put("k", "changed");
    del_status = t.Delete("k");
    HASHFS_ASSIGN_OR_RETURN(auto v, t.Get("k"));
    EXPECT_EQ(v, std::optional<std::string>("v"));
    return Status::Ok();
  }));
  CAS_EXPECT_CODE(put_status, kInvalidArgument);
  CAS_EXPECT_CODE(del_status, kInvalidArgument);
  EXPECT_EQ(GetRef("k"), "v");
  Status s = store_->View([](RefTxn&) { return Status::Busy("from the callback"); });
  CAS_EXPECT_CODE(s, kBusy);
  EXPECT_EQ(s.message(), "from the callback");
}

TEST_P(StoreConformanceTest, ConcurrentCompareAndSwapCounter) {
  constexpr int kThreads = 8, kIncrements = 200;
  CAS_ASSERT_OK(PutRef("counter", "0"));
  std::atomic<int> errors{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; t++) {
    ts.emplace_back([&] {
      for (int i = 0; i < kIncrements; i++) {
        Status s = store_->Update([](RefTxn& txn) -> Status {
          HASHFS_ASSIGN_OR_RETURN(auto v, txn.Get("counter"));
          if (!v) return Status::NotFound("counter vanished");
          int n = std::stoi(*v);
          std::this_thread::yield();  // widen the read-modify-write window
          return txn.Put("counter", std::to_string(n + 1));
        });
        if (!s.ok()) errors++;
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(GetRef("counter"), std::to_string(kThreads * kIncrements));
}

TEST_P(StoreConformanceTest, ViewNeverSeesHalfOfAnUpdate) {
  CAS_ASSERT_OK(store_->Update([](RefTxn& t) -> Status {
    HASHFS_RETURN_IF_ERROR(t.Put("x", "0"));
    return t.Put("y", "0");
  }));
  std::atomic<bool> stop{false};
  std::atomic<int> torn{0}, views{0}, started{0};
  constexpr int kReaders = 3;
  std::thread writer([&] {
    // Start once every reader is reading: on a loaded machine the 300
    // updates could otherwise all be done before any view began.
    while (started.load() < kReaders) std::this_thread::yield();
    for (int i = 1; i <= 300; i++) {
      Status s = store_->Update([&](RefTxn& t) -> Status {
        HASHFS_RETURN_IF_ERROR(t.Put("x", std::to_string(i)));
        std::this_thread::yield();
        return t.Put("y", std::to_string(i));
      });
      EXPECT_TRUE(s.ok()) << s.ToString();
    }
    stop = true;
  });
  std::vector<std::thread> readers;
  for (int r = 0; r < kReaders; r++) {
    readers.emplace_back([&] {
      bool first = true;
      while (first || !stop) {
        Status s = store_->View([&](RefTxn& t) -> Status {
          if (first) started++;
          first = false;
          HASHFS_ASSIGN_OR_RETURN(auto x, t.Get("x"));
          std::this_thread::yield();
          HASHFS_ASSIGN_OR_RETURN(auto y, t.Get("y"));
          if (x != y) torn++;
          return Status::Ok();
        });
        EXPECT_TRUE(s.ok()) << s.ToString();
        views++;
        // MemoryStore's std::shared_mutex prefers readers: back-to-back
        // overlapping readers would starve the writer forever.
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
    });
  }
  writer.join();
  for (auto& r : readers) r.join();
  EXPECT_EQ(torn.load(), 0);
  EXPECT_GE(views.load(), kReaders);
  EXPECT_EQ(GetRef("x"), "300");
}

TEST_P(StoreConformanceTest, ConcurrentPutBatchAndGet) {
  constexpr int kWriters = 4, kBatches = 15, kPerBatch = 10;
  // Pre-build every object so the threads only exercise the store.
  std::vector<std::vector<std::vector<PreparedObject>>> work(kWriters);
  std::vector<std::string> plains;
  std::vector<Digest> digests;
  for (int w = 0; w < kWriters; w++) {
    work[w].resize(kBatches);
    for (int b = 0; b < kBatches; b++) {
      for (int i = 0; i < kPerBatch; i++) {
        uint64_t seed = (w * 1000 + b) * 100 + i;
        std::string plain = (i % 3 == 0) ? std::string(5000 + i, static_cast<char>('a' + i)) + RandomBytes(10, seed)
                                         : RandomBytes(500 + i * 300, seed);
        work[w][b].push_back(PrepareObject(plain, ObjectKind::kData, 3));
        plains.push_back(plain);
        digests.push_back(work[w][b].back().digest);
      }
    }
  }
  std::map<Digest, size_t> index;
  for (size_t i = 0; i < digests.size(); i++) index[digests[i]] = i;

  std::atomic<int> writers_done{0}, errors{0};
  std::atomic<long> found{0};
  std::vector<std::thread> ts;
  for (int w = 0; w < kWriters; w++) {
    ts.emplace_back([&, w] {
      for (int b = 0; b < kBatches; b++) {
        Status s = store_->PutBatch(work[w][b]);
        if (!s.ok()) {
          ADD_FAILURE() << s.ToString();
          errors++;
        }
        // Once PutBatch returned, this thread must see every object.
        for (const auto& o : work[w][b]) {
          auto g = store_->Get(o.digest);
          if (!g.ok() || *g != plains[index.at(o.digest)]) errors++;
        }
      }
      writers_done++;
    });
  }
  for (int r = 0; r < 4; r++) {
    ts.emplace_back([&, r] {
      std::mt19937 rng(r);
      while (writers_done.load() < kWriters) {
        size_t i = rng() % digests.size();
        auto g = store_->Get(digests[i]);
        if (g.ok()) {
          if (*g != plains[i]) errors++;
          found++;
        } else if (!g.status().IsNotFound()) {
          ADD_FAILURE() << g.status().ToString();
          errors++;
        }
        auto c = store_->Contains(digests[i]);
        if (!c.ok()) errors++;
        std::this_thread::sleep_for(std::chrono::microseconds(100));  // see ViewNeverSeesHalfOfAnUpdate
      }
    });
  }
  for (auto& t : ts) t.join();
  EXPECT_EQ(errors.load(), 0);
  for (size_t i = 0; i < digests.size(); i++) {
    auto g = store_->Get(digests[i]);
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    EXPECT_EQ(*g, plains[i]);
  }
  EXPECT_EQ(AllDigests().size(), digests.size());
}

// Objects above kMaxObjectSize: the store must either refuse them or give them
// back (PutBatch refuses them with InvalidArgument).
TEST_P(StoreConformanceTest, OversizedObjectIsRefusedOrReadable) {
  std::string plain = RandomBytes(kMaxObjectSize + 1, 64);
  PreparedObject o = PrepareObject(plain, ObjectKind::kData, 0);
  Status s = store_->PutBatch({&o, 1});
  if (!s.ok()) {
    CAS_EXPECT_CODE(s, kInvalidArgument);
    return;
  }
  auto g = store_->Get(o.digest);
  ASSERT_TRUE(g.ok()) << "PutBatch accepted an object it cannot return: " << g.status().ToString();
  EXPECT_EQ(*g, plain);
}

TEST_P(StoreConformanceTest, MaxSizeObjectRoundTrips) {
  std::string plain = RandomBytes(kMaxObjectSize, 65);
  PreparedObject o = PrepareObject(plain, ObjectKind::kData, 0);
  CAS_ASSERT_OK(store_->PutBatch({&o, 1}));
  auto g = store_->Get(o.digest);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_TRUE(*g == plain);
}

const StoreFactory kFactories[] = {
    {"Memory", [] { return std::unique_ptr<StoreHolder>(new MemoryHolder()); }},
    {"Lmdb", [] { return std::unique_ptr<StoreHolder>(new LmdbHolder()); }},
};

INSTANTIATE_TEST_SUITE_P(AllStores, StoreConformanceTest, ::testing::ValuesIn(kFactories), FactoryName);
INSTANTIATE_TEST_SUITE_P(AllStores, RefListTest, ::testing::ValuesIn(kFactories), FactoryName);

}  // namespace
}  // namespace hashfs
