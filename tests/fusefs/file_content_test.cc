// FileContent against a plain std::string model: random writes, truncates,
// flushes and background flushes; after every flush the content must read
// back exactly and the chunk list must be what chunking the whole file afresh
// gives (the incremental re-chunking contract in fusefs/file_content.h); a
// failed background flush loses nothing. Also the pure POSIX ACL helpers. No
// FUSE mount needed.
#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <random>
#include <set>
#include <tuple>

#include "cas/digest.h"
#include "cas/memory_store.h"
#include "fusefs/chunk_cache.h"
#include "fusefs/file_content.h"
#include "tests/forwarding_store.h"
#include "fusefs/posix_acl.h"
#include "tree/dir_tree.h"

namespace hashfs::fusefs {
namespace {

std::vector<ChunkRef> FreshChunks(const std::string& s, const ChunkParams& p) {
  std::vector<ChunkRef> out;
  size_t off = 0;
  while (off < s.size()) {
    size_t n = FindChunkBoundary(reinterpret_cast<const uint8_t*>(s.data()) + off, s.size() - off, p);
    out.push_back({Sha256Of(std::string_view(s).substr(off, n)), n});
    off += n;
  }
  return out;
}

std::string ReadAll(const FileContent& c, ChunkCache& cache) {
  std::string out(c.size(), '\0');
  Status s = c.Read(0, out.size(), out.data(), cache);
  EXPECT_TRUE(s.ok()) << s.ToString();
  return out;
}

// Compressible text of `n` bytes from a seeded vocabulary.
std::string RandomText(size_t n, uint64_t seed) {
  static const char* words[] = {"alpha ", "beta ", "gamma\n", "delta ", "epsilon ", "zeta ", "eta\n"};
  std::mt19937_64 rng(seed);
  std::string s;
  while (s.size() < n) s += words[rng() % 7];
  s.resize(n);
  return s;
}

// Small chunks, so that a few hundred KiB make many of them.
ChunkParams SmallChunks() {
  ChunkParams p;
  p.min_size = 2048;
  p.avg_size = 8192;
  p.max_size = 32768;
  return p;
}

// Chunks of 64 KiB-1 MiB: most are hashed and compressed by TBB tasks that
// read the flush's windows in place (chunks under 128 KiB are stored inline).
ChunkParams LargeChunks() {
  ChunkParams p;
  p.min_size = 64 * 1024;
  p.avg_size = 256 * 1024;
  p.max_size = 1024 * 1024;
  return p;
}

// (seed, large chunks): sizes and offsets scale with the chunk size.
class FileContentTest : public ::testing::TestWithParam<std::tuple<uint32_t, bool>> {};

TEST_P(FileContentTest, RandomEditsMatchModelAndFreshChunking) {
  const bool large = std::get<1>(GetParam());
  const ChunkParams p = large ? LargeChunks() : SmallChunks();
  const size_t scale = large ? 32 : 1;  // LargeChunks' max_size / SmallChunks'
  MemoryStore store;
  ObjectWriter w(store, 3);
  // Smaller than the file in the large case: reads must also go to the store.
  ChunkCache cache(GetterFor(w), large ? 4u << 20 : 8u << 20);
  std::mt19937_64 rng(std::get<0>(GetParam()));
  // Compressible but not repetitive: words from a small vocabulary.
  auto text = [&](size_t n) {
    static const char* words[] = {"alpha ", "beta ", "gamma\n", "delta ", "epsilon ", "zeta ", "eta\n"};
    std::string s;
    while (s.size() < n) s += words[rng() % 7];
    s.resize(n);
    return s;
  };
  std::string model = text(300000 * scale);
  FileContent c({});
  ASSERT_TRUE(c.Write(0, model.data(), model.size(), cache).ok());
  ASSERT_TRUE(c.Flush(w, p, cache).ok());
  ASSERT_EQ(c.base(), FreshChunks(model, p));
  int background = 0, adopted = 0;
  const int steps = large ? 120 : 300;
  for (int step = 0; step < steps; step++) {
    switch (rng() % 8) {
      case 0:
      case 1:
      case 2: {  // overwrite or extend at a random offset (sometimes past EOF: a hole)
        uint64_t off = rng() % (model.size() + 20000 * scale);
        std::string d = text(1 + rng() % (30000 * scale));
        ASSERT_TRUE(c.Write(off, d.data(), d.size(), cache).ok());
        if (model.size() < off + d.size()) model.resize(off + d.size(), '\0');
        model.replace(off, d.size(), d);
        break;
      }
      case 3: {  // truncate down or up
        uint64_t n = rng() % (model.size() + 50000 * scale);
        c.Truncate(n);
        model.resize(n, '\0');
        break;
      }
      case 4: {  // append
        std::string d = text(1 + rng() % (20000 * scale));
        ASSERT_TRUE(c.Write(model.size(), d.data(), d.size(), cache).ok());
        model += d;
        break;
      }
      case 5: {
        ASSERT_TRUE(c.Flush(w, p, cache).ok());
        ASSERT_FALSE(c.dirty());
        ASSERT_EQ(c.base(), FreshChunks(model, p)) << "step " << step;
        break;
      }
      case 6: {  // chunk the dirty pages out while the steps after go on
        bool had_pages = c.dirty_bytes() > 0;
        ASSERT_TRUE(c.FlushInBackground(w, p, cache).ok());
        ASSERT_EQ(c.dirty_bytes(), 0u);
        ASSERT_EQ(c.flushing(), had_pages);
        background += had_pages;
        break;
      }
      case 7: {  // wait for it: the base changes, the content does not
        bool was = c.flushing();
        ASSERT_TRUE(c.Settle().ok());
        ASSERT_FALSE(c.flushing());
        adopted += was;
        break;
      }
    }
    ASSERT_EQ(c.size(), model.size());
    if (step % 10 == 0) {
      ASSERT_EQ(ReadAll(c, cache), model) << "step " << step;
    }
    // A random clean or dirty sub-range.
    if (!model.empty()) {
      uint64_t off = rng() % model.size();
      size_t n = std::min<size_t>(model.size() - off, 1 + rng() % (100000 * scale));
      std::string got(n, '\0');
      ASSERT_TRUE(c.Read(off, n, got.data(), cache).ok());
      ASSERT_EQ(got, model.substr(off, n)) << "step " << step << " read at " << off;
    }
  }
  ASSERT_TRUE(c.Flush(w, p, cache).ok());
  ASSERT_EQ(c.base(), FreshChunks(model, p));
  EXPECT_GT(background, large ? 4 : 10);
  EXPECT_GT(adopted, large ? 0 : 3);
  ASSERT_TRUE(w.Flush().ok());
  // Every chunk is in the store with the bytes it names.
  for (const auto& ch : c.base()) {
    auto got = store.Get(ch.digest);
    ASSERT_TRUE(got.ok()) << got.status().ToString();
    ASSERT_EQ(got->size(), ch.size);
  }
}

INSTANTIATE_TEST_SUITE_P(SmallChunks, FileContentTest,
                         ::testing::Combine(::testing::Values(1u, 2u, 3u, 4u), ::testing::Values(false)));
// Two seeds: each takes 10-19 s under ThreadSanitizer.
INSTANTIATE_TEST_SUITE_P(LargeChunks, FileContentTest,
                         ::testing::Combine(::testing::Values(1u, 2u), ::testing::Values(true)));

// A flush caches the new chunks of a file of up to half the chunk cache's
// size (a file is often read soon after it is written), and not those of a
// larger one: they would push each other and everything else out, and
// copying them into the cache cost a sequential write a fifth of its CPU.
TEST(FileContentCacheTest, NewChunksAreCachedUnlessTheFileExceedsHalfTheCache) {
  const ChunkParams p = LargeChunks();
  MemoryStore store;
  ObjectWriter w(store, 3);
  std::atomic<int> loads{0};
  ObjectGetter from_store = GetterFor(w);
  ChunkCache cache(
      [&](const Digest& d) {
        loads++;
        return from_store(d);
      },
      16u << 20);
  for (const auto& [size, cached] : {std::pair<size_t, bool>{6u << 20, true}, {12u << 20, false}}) {
    SCOPED_TRACE(size);
    const std::string data = RandomText(size, size);
    FileContent c({});
    ASSERT_TRUE(c.Write(0, data.data(), data.size(), cache).ok());
    ASSERT_TRUE(c.Flush(w, p, cache).ok());
    ASSERT_GT(c.base().size(), 4u);
    loads = 0;
    EXPECT_EQ(ReadAll(c, cache), data);
    if (cached) {
      EXPECT_EQ(loads.load(), 0) << "a chunk just written was read from the store";
    } else {
      EXPECT_GT(loads.load(), 0);
    }
  }
}

// Holes (a file grown by truncate or by a write past its end) are chunked
// without being read: a chunk whose window lies wholly in a hole is the same
// for every such window. The chunk list must still be exactly what chunking
// the zeros gives, around dirty pages inside the hole, after a shrink
// (the base valid only up to the new size) and at the tail.
TEST(FileContentHoleTest, HolesChunkAsTheirZerosWould) {
  const ChunkParams p = SmallChunks();
  MemoryStore store;
  ObjectWriter w(store, 3);
  ChunkCache cache(GetterFor(w), 8u << 20);
  std::string model = RandomText(100000, 7);
  FileContent c({});
  ASSERT_TRUE(c.Write(0, model.data(), model.size(), cache).ok());
  ASSERT_TRUE(c.Flush(w, p, cache).ok());

  const uint64_t grown = model.size() + 10 * p.max_size + 777;
  c.Truncate(grown);
  model.resize(grown, '\0');
  for (uint64_t off : {uint64_t{200000}, uint64_t{300001}, grown - 10}) {
    std::string d = RandomText(5000, off);
    ASSERT_TRUE(c.Write(off, d.data(), d.size(), cache).ok());
    if (model.size() < off + d.size()) model.resize(off + d.size(), '\0');
    model.replace(off, d.size(), d);
  }
  ASSERT_TRUE(c.Flush(w, p, cache).ok());
  ASSERT_EQ(c.base(), FreshChunks(model, p));
  ASSERT_EQ(ReadAll(c, cache), model);

  // Shrink into the first text, grow again: the base is valid only up to
  // 50,000 bytes, and everything after is zeros.
  c.Truncate(50000);
  c.Truncate(600000);
  model.resize(50000);
  model.resize(600000, '\0');
  ASSERT_TRUE(c.Flush(w, p, cache).ok());
  ASSERT_EQ(c.base(), FreshChunks(model, p));
  ASSERT_EQ(ReadAll(c, cache), model);
}

// HoleBytes (st_blocks) counts what Seek calls holes: before a flush, the
// bytes past the base that no page covers; after it, the zero windows no page
// covers. A page written into a hole takes exactly its own bytes out of it,
// also once the count has been asked for before (the count is remembered).
TEST(FileContentHoleTest, HoleBytesCountsHolesAsSeekFindsThem) {
  const ChunkParams p;  // 4 MiB chunks at most
  MemoryStore store;
  ObjectWriter w(store, 3);
  ChunkCache cache(GetterFor(w), 8u << 20);
  const std::string window_zeros(ZeroChunkLength(p.max_size, p), '\0');
  const ChunkRef window{Sha256Of(window_zeros), window_zeros.size()};
  auto is_window = [&](const ChunkRef& c, bool) { return c == window; };
  const uint64_t size = 64ull << 20, at = 20ull << 20, page = FileContent::kPageSize;
  const std::string data = RandomText(1 << 20, 3);
  FileContent c({});
  c.Truncate(size);
  ASSERT_TRUE(c.Write(at, data.data(), data.size(), cache).ok());
  EXPECT_EQ(c.HoleBytes(is_window), size - data.size());
  ASSERT_TRUE(c.Flush(w, p, cache).ok());
  uint64_t windows = 0;
  for (const auto& ch : c.base()) windows += ch == window ? ch.size : 0;
  EXPECT_GE(windows, size - data.size() - 5 * p.max_size) << "zeros around the data and the tail";
  EXPECT_EQ(c.HoleBytes(is_window), windows);
  // Cross-check with Seek: the holes it finds add up to the same.
  uint64_t seek_holes = 0;
  for (uint64_t off = 0; off < size;) {
    const uint64_t h = c.Seek(off, /*data=*/false, is_window).value_or(size);
    const uint64_t d = h < size ? c.Seek(h, /*data=*/true, is_window).value_or(size) : size;
    seek_holes += d - h;
    off = d;
  }
  EXPECT_EQ(seek_holes, windows);
  // One byte written in the middle of a hole: one page less of it.
  ASSERT_TRUE(c.Write(50ull << 20, "x", 1, cache).ok());
  EXPECT_EQ(c.HoleBytes(is_window), windows - page);
  ASSERT_TRUE(c.Flush(w, p, cache).ok());
  EXPECT_LE(c.HoleBytes(is_window), windows - page);
  c.Truncate(size + (8ull << 20));  // grown: 8 MiB more past the base
  EXPECT_GE(c.HoleBytes(is_window), windows - 2 * p.max_size + (8ull << 20) - page);
}

// A terabyte-sized sparse file commits in moments: chunking its zeros (1 TiB
// read, hashed and compressed) would take far longer than the test's
// timeout. Its chunks are one zero chunk over and over, then the tail.
TEST(FileContentHoleTest, TerabyteHoleIsNotReadToBeChunked) {
  const ChunkParams p;  // the default sizes: 4 MiB chunks at most
  MemoryStore store;
  ObjectWriter w(store, 3);
  ChunkCache cache(GetterFor(w), 8u << 20);
  FileContent c({});
  ASSERT_TRUE(c.Write(0, "head", 4, cache).ok());
  const uint64_t size = 1ull << 40;
  c.Truncate(size);
  ASSERT_TRUE(c.Write(size - 4, "tail", 4, cache).ok());
  ASSERT_TRUE(c.Flush(w, p, cache).ok());
  ASSERT_EQ(c.size(), size);
  uint64_t total = 0;
  std::set<Digest> digests;
  for (const auto& ch : c.base()) {
    total += ch.size;
    digests.insert(ch.digest);
  }
  EXPECT_EQ(total, size);
  EXPECT_LE(digests.size(), 4u) << "the hole's chunks should all be one zero chunk";
  EXPECT_GE(c.base().size(), size / p.max_size);
  std::string got(8, '\x55');
  ASSERT_TRUE(c.Read(size / 2, 8, got.data(), cache).ok());
  EXPECT_EQ(got, std::string(8, '\0'));
  ASSERT_TRUE(c.Read(size - 6, 6, got.data(), cache).ok());
  EXPECT_EQ(got.substr(0, 6), std::string("\0\0tail", 6));
  ASSERT_TRUE(c.Read(0, 6, got.data(), cache).ok());
  EXPECT_EQ(got.substr(0, 6), std::string("head\0\0", 6));
  ASSERT_TRUE(w.Flush().ok());
  for (const auto& d : digests) EXPECT_TRUE(store.Get(d).ok());
}

// A MemoryStore whose batch writes can be made to fail.
class FailingStore final : public ForwardingStore {
 public:
  Status PutBatch(std::span<const PreparedObject> batch) override {
    if (fail_.load()) return Status::NoSpace("injected: disk full");
    return ForwardingStore::PutBatch(batch);
  }
  void set_fail(bool f) { fail_ = f; }

 private:
  std::atomic<bool> fail_{false};
};

// A content over a store that can be made to fail, with a model of its bytes.
class FileContentBackgroundTest : public ::testing::Test {
 protected:
  // Writes `bytes` at `off` (past the end: a hole) to the content and the model.
  void Write(uint64_t off, const std::string& bytes) {
    ASSERT_TRUE(c_.Write(off, bytes.data(), bytes.size(), cache_).ok());
    if (model_.size() < off + bytes.size()) model_.resize(off + bytes.size(), '\0');
    model_.replace(off, bytes.size(), bytes);
  }

  const ChunkParams p_ = SmallChunks();
  FailingStore store_;
  ObjectWriter w_{store_, 3, /*batch_bytes=*/1};  // every object is its own batch
  // Held by pointer: TBB members make ChunkCache's destructor noexcept(false),
  // which a fixture (whose destructor overrides a noexcept one) cannot hold.
  std::unique_ptr<ChunkCache> cache_ptr_ = std::make_unique<ChunkCache>(GetterFor(w_), 8u << 20);
  ChunkCache& cache_ = *cache_ptr_;
  FileContent c_{{}};
  std::string model_;
};

TEST_F(FileContentBackgroundTest, FailedBackgroundFlushLosesNothing) {
  Write(0, RandomText(400000, 7));
  ASSERT_TRUE(c_.Flush(w_, p_, cache_).ok());
  const std::vector<ChunkRef> committed = c_.base();

  // Overwrite the middle, start chunking it out on a full disk, and keep
  // writing (over the frozen pages too) while that fails.
  store_.set_fail(true);
  Write(150000, RandomText(100000, 8));
  ASSERT_TRUE(c_.FlushInBackground(w_, p_, cache_).ok());
  const std::string more = RandomText(30000, 9);
  Write(140000, more);
  Write(model_.size(), more);
  ASSERT_EQ(ReadAll(c_, cache_), model_);

  Status s = c_.Settle();
  ASSERT_EQ(s.code(), Status::Code::kNoSpace) << s.ToString();
  EXPECT_FALSE(c_.flushing());
  EXPECT_TRUE(c_.dirty());
  EXPECT_EQ(c_.base(), committed) << "a failed background flush must not change the base";
  ASSERT_EQ(ReadAll(c_, cache_), model_) << "the frozen pages must be dirty pages again";
  // The next flush reports the writer's failure the same way.
  ASSERT_FALSE(c_.Flush(w_, p_, cache_).ok());
  ASSERT_EQ(ReadAll(c_, cache_), model_);

  // Space again: the writer stores what it kept, and the content flushes.
  store_.set_fail(false);
  ASSERT_TRUE(w_.Flush().ok());
  ASSERT_TRUE(c_.Flush(w_, p_, cache_).ok());
  EXPECT_EQ(c_.base(), FreshChunks(model_, p_));
  ASSERT_EQ(ReadAll(c_, cache_), model_);
}

// SEEK_DATA / SEEK_HOLE over every layer: dirty pages, a frozen layer, base
// chunks (zero chunks are holes), zeros past the base. Whatever the layers,
// a reported hole reads as zeros up to the next data, and SEEK_DATA skips
// only zeros; and the holes are found where the file has them.
TEST_F(FileContentBackgroundTest, SeekFindsDataAndHolesInEveryLayer) {
  const auto is_zero = [](const ChunkRef& c, bool) {
    return c.digest == Sha256Of(std::string(static_cast<size_t>(c.size), '\0'));
  };
  // Checks every 4 KiB offset and the ones around `marks`; returns how many
  // distinct holes SEEK_HOLE found.
  auto check = [&](const char* state, std::vector<uint64_t> marks) -> size_t {
    const uint64_t size = c_.size();
    EXPECT_EQ(size, model_.size()) << state;
    for (uint64_t o = 0; o < size + 8192; o += 4096) marks.push_back(o);
    for (uint64_t m : std::vector<uint64_t>(marks)) {
      marks.push_back(m + 1);
      if (m > 0) marks.push_back(m - 1);
    }
    std::set<uint64_t> holes;
    for (uint64_t o : marks) {
      auto d = c_.Seek(o, true, is_zero);
      auto h = c_.Seek(o, false, is_zero);
      if (o >= size) {
        EXPECT_FALSE(d.has_value()) << state << " at " << o;
        EXPECT_FALSE(h.has_value()) << state << " at " << o;
        continue;
      }
      const uint64_t data_at = d.value_or(size);
      EXPECT_GE(data_at, o) << state;
      EXPECT_LE(data_at, size) << state;
      EXPECT_EQ(model_.find_first_not_of('\0', o) >= data_at, true)
          << state << ": SEEK_DATA from " << o << " skipped data (to " << data_at << ")";
      if (!h) {
        ADD_FAILURE() << state << ": no SEEK_HOLE result at " << o;
        continue;
      }
      EXPECT_GE(*h, o) << state;
      EXPECT_LE(*h, size) << state;
      if (*h < size) {
        // A hole: zeros up to where SEEK_DATA from there says data starts.
        auto next = c_.Seek(*h, true, is_zero);
        const uint64_t end = next.value_or(size);
        EXPECT_GT(end, *h) << state << ": a hole at " << *h << " is data";
        EXPECT_GE(model_.find_first_not_of('\0', *h), end) << state << ": hole at " << *h << " holds data";
        holes.insert(*h);
      }
    }
    return holes.size();
  };

  // Dirty pages over nothing: text, then a gap past the end (zeros past the
  // base, which is empty).
  Write(0, RandomText(100000, 21));
  const uint64_t far = 100000 + 10 * p_.max_size + 777;
  Write(far, RandomText(5000, 22));
  EXPECT_GE(check("dirty", {100000, far}), 1u);
  // Flushed: the gap is zero chunks of the base.
  ASSERT_TRUE(c_.Flush(w_, p_, cache_).ok());
  EXPECT_GE(check("flushed", {100000, far}), 1u);
  // Grown by truncate, a page written inside the new hole, then frozen for
  // a background flush with more writes on top.
  const uint64_t grown = far + 5000 + 6 * p_.max_size + 123;
  ASSERT_TRUE(c_.Settle().ok());
  c_.Truncate(grown);
  model_.resize(grown, '\0');
  const uint64_t mid = far + 5000 + 3 * p_.max_size;
  Write(mid, RandomText(3000, 23));
  ASSERT_TRUE(c_.FlushInBackground(w_, p_, cache_).ok());
  Write(50000, RandomText(2000, 24));  // over base data
  Write(far - 9 * p_.max_size, std::string(4096, '\0'));  // zeros written by hand: data
  ASSERT_TRUE(c_.flushing());
  EXPECT_GE(check("frozen", {far, mid, grown}), 2u);
  ASSERT_TRUE(c_.Settle().ok());
  ASSERT_TRUE(c_.Flush(w_, p_, cache_).ok());
  EXPECT_GE(check("flushed again", {far, mid, grown}), 2u);
  // No predicate accepts a chunk: only zeros past the base are holes.
  EXPECT_EQ(c_.Seek(0, false, [](const ChunkRef&, bool) { return false; }), std::optional<uint64_t>(grown));
}

TEST_F(FileContentBackgroundTest, SettledFlushStaysDirtyUntilFlushReportsIt) {
  Write(0, RandomText(200000, 11));
  ASSERT_TRUE(c_.FlushInBackground(w_, p_, cache_).ok());
  ASSERT_TRUE(c_.Settle().ok());
  // The base now holds every byte, yet the owner has not been told (its file
  // manifest is stale): the content must still say it is dirty.
  EXPECT_EQ(c_.base(), FreshChunks(model_, p_));
  EXPECT_EQ(c_.dirty_bytes(), 0u);
  EXPECT_TRUE(c_.dirty());
  // A copy (as the committer's pre-flush makes) keeps that.
  FileContent copy(c_);
  EXPECT_TRUE(copy.dirty());
  ASSERT_TRUE(c_.Flush(w_, p_, cache_).ok());
  EXPECT_FALSE(c_.dirty());
  EXPECT_EQ(c_.base(), FreshChunks(model_, p_));
  ASSERT_EQ(ReadAll(c_, cache_), model_);
}

TEST_F(FileContentBackgroundTest, CopyOfAFlushingContentReadsTheSame) {
  Write(0, RandomText(300000, 12));
  ASSERT_TRUE(c_.Flush(w_, p_, cache_).ok());
  const std::string d = RandomText(50000, 13);
  Write(70000, d);
  ASSERT_TRUE(c_.FlushInBackground(w_, p_, cache_).ok());
  Write(90000, d.substr(0, 1000));
  FileContent copy(c_);  // shares the frozen pages, not the flush
  ASSERT_EQ(ReadAll(copy, cache_), model_);
  ASSERT_TRUE(copy.Flush(w_, p_, cache_).ok());
  EXPECT_EQ(copy.base(), FreshChunks(model_, p_));
  ASSERT_TRUE(c_.Flush(w_, p_, cache_).ok());
  EXPECT_EQ(c_.base(), copy.base());
}

std::string Acl(std::vector<std::array<uint32_t, 3>> entries) {
  std::string s = {2, 0, 0, 0};
  for (auto [tag, perm, id] : entries) {
    s += static_cast<char>(tag & 0xff);
    s += static_cast<char>(tag >> 8);
    s += static_cast<char>(perm);
    s += '\0';
    for (int i = 0; i < 4; i++) s += static_cast<char>((id >> (8 * i)) & 0xff);
  }
  return s;
}

TEST(PosixAclTest, ModeBitsFromAclUseMaskWhenPresent) {
  // user::rw- user:1234:rwx group::r-- mask::r-x other::---
  std::string a = Acl({{0x01, 6, 0}, {0x02, 7, 1234}, {0x04, 4, 0}, {0x10, 5, 0}, {0x20, 0, 0}});
  EXPECT_EQ(AclPermissionBits(a), 0650u);
  std::string plain = Acl({{0x01, 7, 0}, {0x04, 5, 0}, {0x20, 4, 0}});
  EXPECT_EQ(AclPermissionBits(plain), 0754u);
}

TEST(PosixAclTest, ChmodRewritesOwnerMaskOther) {
  std::string a = Acl({{0x01, 6, 0}, {0x02, 7, 1234}, {0x04, 4, 0}, {0x10, 5, 0}, {0x20, 0, 0}});
  std::string b = AclWithMode(a, 0741);
  EXPECT_EQ(AclPermissionBits(b), 0741u);
  // Named entries and the group-owner entry are untouched (the mask moved).
  EXPECT_EQ(b.substr(4 + 8, 8), a.substr(4 + 8, 8));
  EXPECT_EQ(b.substr(4 + 16, 8), a.substr(4 + 16, 8));
}

TEST(PosixAclTest, MalformedAclsAreRefused) {
  EXPECT_FALSE(AclPermissionBits(""));
  EXPECT_FALSE(AclPermissionBits(std::string("\x01\0\0\0", 4)));                       // version 1
  EXPECT_FALSE(AclPermissionBits(Acl({{0x01, 6, 0}, {0x20, 0, 0}})));                   // no group
  EXPECT_FALSE(AclPermissionBits(Acl({{0x01, 6, 0}, {0x01, 6, 0}, {0x04, 4, 0}, {0x20, 0, 0}})));  // twice
  EXPECT_FALSE(AclPermissionBits(Acl({{0x01, 9, 0}, {0x04, 4, 0}, {0x20, 0, 0}})));    // perm > 7
  EXPECT_FALSE(AclPermissionBits(Acl({{0x40, 6, 0}, {0x04, 4, 0}, {0x20, 0, 0}})));    // unknown tag
  EXPECT_FALSE(AclPermissionBits(Acl({{0x01, 6, 0}, {0x04, 4, 0}, {0x20, 0, 0}}) + "x"));  // ragged
  std::string bad = "garbage";
  EXPECT_EQ(AclWithMode(bad, 0777), bad);
}

}  // namespace
}  // namespace hashfs::fusefs
