// Tests of content-defined chunking (tree/chunker.h).
#include "tree/chunker.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <map>
#include <set>
#include <thread>

#include "cas/digest.h"
#include "test_util.h"

namespace hashfs {
namespace {

using testing::RandomBytes;
using testing::TempDir;

ChunkParams SmallParams() {
  ChunkParams p;
  p.min_size = 4 * 1024;
  p.avg_size = 16 * 1024;
  p.max_size = 64 * 1024;
  return p;
}

// Reference chunking of a whole in-memory buffer (at end of file).
std::vector<std::string> ChunkAll(const std::string& data, const ChunkParams& p) {
  std::vector<std::string> out;
  const auto* b = reinterpret_cast<const uint8_t*>(data.data());
  size_t pos = 0;
  while (pos < data.size()) {
    size_t n = FindChunkBoundary(b + pos, data.size() - pos, p);
    if (n == 0 || n > data.size() - pos) {
      ADD_FAILURE() << "bad boundary " << n << " at " << pos;
      break;
    }
    out.push_back(data.substr(pos, n));
    pos += n;
  }
  return out;
}

std::vector<size_t> Lengths(const std::vector<std::string>& chunks) {
  std::vector<size_t> v;
  for (const auto& c : chunks) v.push_back(c.size());
  return v;
}

// Chunks of `b` whose content does not occur among the chunks of `a`.
size_t NewChunks(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::set<Digest> sa;
  for (const auto& c : a) sa.insert(Sha256Of(c));
  size_t n = 0;
  for (const auto& c : b)
    if (!sa.count(Sha256Of(c))) n++;
  return n;
}

TEST(ChunkParamsTest, Validate) {
  EXPECT_TRUE(ChunkParams{}.Validate().ok());
  EXPECT_TRUE(SmallParams().Validate().ok());
  auto make = [](uint32_t mn, uint32_t avg, uint32_t mx) {
    ChunkParams p;
    p.min_size = mn;
    p.avg_size = avg;
    p.max_size = mx;
    return p;
  };
  EXPECT_TRUE(make(64, 128, 256).Validate().ok());
  EXPECT_TRUE(make(1 << 20, 4 << 20, 16 << 20).Validate().ok());
  const ChunkParams bad[] = {
      make(63, 128, 256),            // min below 64
      make(0, 128, 256),             // min 0
      make(128, 128, 256),           // min == avg
      make(256, 128, 512),           // min > avg
      make(64, 256, 256),            // avg == max
      make(64, 512, 256),            // avg > max
      make(64, 100, 256),            // avg not a power of two
      make(64, 3 << 10, 1 << 20),    // avg not a power of two
      make(64, 1 << 20, (16 << 20) + 1),  // max above 16 MiB
      make(64, 1 << 20, UINT32_MAX),
  };
  for (const auto& p : bad) {
    Status s = p.Validate();
    EXPECT_EQ(s.code(), Status::Code::kInvalidArgument)
        << p.min_size << "/" << p.avg_size << "/" << p.max_size << ": " << s.ToString();
  }
}

TEST(ChunkerTest, GearTableMatchesDocumentedDerivation) {
  const uint64_t* g = GearTable();
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g, GearTable());  // one table
  std::set<uint64_t> distinct;
  for (int i = 0; i < 256; i++) {
    std::string in = "hashfs-gear-v1";
    in.push_back(static_cast<char>(i));
    Digest d = Sha256Of(in);
    uint64_t want = 0;
    for (int b = 0; b < 8; b++) want = want << 8 | d.bytes[b];  // big-endian first 8 bytes
    EXPECT_EQ(g[i], want) << "entry " << i;
    distinct.insert(g[i]);
  }
  EXPECT_EQ(distinct.size(), 256u);
  // Pinned: the gear table decides every chunk boundary, so changing it
  // changes how every file is cut and breaks deduplication against existing
  // stores.
  EXPECT_EQ(Sha256Of(std::string("hashfs-gear-v1") + '\0').Prefix64(), g[0]);
  EXPECT_EQ(Sha256Of(std::string("hashfs-gear-v1") + '\xff').Prefix64(), g[255]);
}

TEST(ChunkerTest, BoundaryRespectsMinAndMax) {
  const ChunkParams p = SmallParams();
  const std::string data = RandomBytes(4 << 20, 1);
  const auto* b = reinterpret_cast<const uint8_t*>(data.data());
  // Inputs no longer than min_size are one chunk.
  for (size_t n : {size_t{0}, size_t{1}, size_t{100}, size_t{p.min_size}}) EXPECT_EQ(FindChunkBoundary(b, n, p), n);
  // From every start position, the boundary lies in (min, max].
  for (size_t off = 0; off + p.max_size * 2 < data.size(); off += 4099) {
    size_t n = FindChunkBoundary(b + off, data.size() - off, p);
    EXPECT_GT(n, p.min_size) << off;
    EXPECT_LE(n, p.max_size) << off;
  }
  // Short tails: never beyond the input.
  for (size_t n = p.min_size + 1; n < p.max_size; n += 997) {
    size_t r = FindChunkBoundary(b, n, p);
    EXPECT_LE(r, n);
    EXPECT_GT(r, p.min_size);
  }
  // Data with no boundary at all (all zero bytes give a constant fingerprint)
  // is cut at max_size.
  const std::string zeros(p.max_size * 3, '\0');
  auto zc = ChunkAll(zeros, p);
  for (size_t i = 0; i < zc.size(); i++) {
    EXPECT_LE(zc[i].size(), p.max_size);
    if (i + 1 < zc.size()) {
      EXPECT_GT(zc[i].size(), p.min_size);
    }
  }
}

TEST(ChunkerTest, Reassembles32MiBWithSaneAverage) {
  const ChunkParams p;  // defaults: 256 KiB / 1 MiB / 4 MiB
  const std::string data = RandomBytes(32 << 20, 2);
  auto chunks = ChunkAll(data, p);
  std::string joined;
  joined.reserve(data.size());
  for (size_t i = 0; i < chunks.size(); i++) {
    joined += chunks[i];
    EXPECT_LE(chunks[i].size(), p.max_size);
    if (i + 1 < chunks.size()) {
      EXPECT_GT(chunks[i].size(), p.min_size);
    }
  }
  EXPECT_TRUE(joined == data);
  double avg = static_cast<double>(data.size()) / static_cast<double>(chunks.size());
  EXPECT_GE(avg, 0.5 * p.avg_size) << chunks.size() << " chunks";
  EXPECT_LE(avg, 2.0 * p.avg_size) << chunks.size() << " chunks";
  // Normalized chunking: not every chunk is cut at max (that would mean the
  // masks never match).
  size_t at_max = 0;
  for (const auto& c : chunks) at_max += c.size() == p.max_size;
  EXPECT_LT(at_max, chunks.size() / 4);
}

TEST(ChunkerTest, SmallParamsAverage) {
  const ChunkParams p = SmallParams();
  const std::string data = RandomBytes(16 << 20, 3);
  auto chunks = ChunkAll(data, p);
  double avg = static_cast<double>(data.size()) / static_cast<double>(chunks.size());
  EXPECT_GE(avg, 0.5 * p.avg_size);
  EXPECT_LE(avg, 2.0 * p.avg_size);
}

// Pinned chunk lengths of a fixed pseudo-random input (std::mt19937_64 is
// fully specified by the standard). Changing the chunker changes these and
// breaks deduplication against data already stored.
TEST(ChunkerTest, PinnedBoundaries) {
  const std::string data = RandomBytes(256 * 1024, 42);
  auto lens = Lengths(ChunkAll(data, SmallParams()));
  std::vector<size_t> want = {17372, 23624, 23638, 22451, 19626, 29824, 19642,
                             17704, 20087, 17959, 9062,  16603, 16425, 8127};
  EXPECT_EQ(lens, want);
}

class ChunkerStabilityTest : public ::testing::TestWithParam<bool> {
 protected:
  ChunkParams Params() const { return GetParam() ? ChunkParams{} : SmallParams(); }
};

TEST_P(ChunkerStabilityTest, InsertInMiddle) {
  const ChunkParams p = Params();
  const std::string a = RandomBytes(16 << 20, 4);
  std::string b = a;
  b.insert(a.size() / 2, RandomBytes(100, 5));
  auto ca = ChunkAll(a, p), cb = ChunkAll(b, p);
  ASSERT_GT(ca.size(), 4u);
  EXPECT_LE(NewChunks(ca, cb), 3u) << "of " << cb.size();
  EXPECT_LE(NewChunks(cb, ca), 3u) << "of " << ca.size();
}

TEST_P(ChunkerStabilityTest, DeleteInMiddle) {
  const ChunkParams p = Params();
  const std::string a = RandomBytes(16 << 20, 6);
  std::string b = a;
  b.erase(a.size() / 3, 100);
  auto ca = ChunkAll(a, p), cb = ChunkAll(b, p);
  EXPECT_LE(NewChunks(ca, cb), 3u) << "of " << cb.size();
  EXPECT_LE(NewChunks(cb, ca), 3u) << "of " << ca.size();
}

TEST_P(ChunkerStabilityTest, PrependAtStart) {
  const ChunkParams p = Params();
  const std::string a = RandomBytes(16 << 20, 7);
  const std::string b = RandomBytes(100, 8) + a;
  auto ca = ChunkAll(a, p), cb = ChunkAll(b, p);
  EXPECT_LE(NewChunks(ca, cb), 3u) << "of " << cb.size();
  EXPECT_LE(NewChunks(cb, ca), 3u) << "of " << ca.size();
}

TEST_P(ChunkerStabilityTest, OverwriteOneByte) {
  const ChunkParams p = Params();
  const std::string a = RandomBytes(16 << 20, 9);
  std::string b = a;
  b[a.size() / 2 + 12345] ^= 0x5a;
  auto ca = ChunkAll(a, p), cb = ChunkAll(b, p);
  EXPECT_LE(NewChunks(ca, cb), 2u) << "of " << cb.size();
}

INSTANTIATE_TEST_SUITE_P(Params, ChunkerStabilityTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& pi) { return pi.param ? "Default" : "Small"; });

// ------------------------------------------------------------------ FdChunker

std::vector<std::string> ChunkFd(int fd, const ChunkParams& p, Status* st, uint64_t* bytes_read) {
  FdChunker ch(fd, p);
  std::vector<std::string> out;
  std::string c;
  while (ch.Next(&c)) out.push_back(c);
  *st = ch.status();
  *bytes_read = ch.bytes_read();
  return out;
}

std::string WriteTemp(const TempDir& dir, const std::string& name, const std::string& data) {
  std::string path = dir.path() + "/" + name;
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  EXPECT_GE(fd, 0);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t w = ::write(fd, data.data() + off, data.size() - off);
    EXPECT_GT(w, 0);
    if (w <= 0) break;
    off += static_cast<size_t>(w);
  }
  ::close(fd);
  return path;
}

TEST(FdChunkerTest, FileMatchesWholeBufferChunking) {
  TempDir dir;
  struct Case {
    const char* name;
    std::string data;
    ChunkParams p;
  };
  const ChunkParams sp = SmallParams();
  std::vector<Case> cases = {
      {"empty", "", sp},
      {"one byte", "x", sp},
      {"below min", RandomBytes(1000, 10), sp},
      {"exactly min", RandomBytes(sp.min_size, 11), sp},
      {"min plus one", RandomBytes(sp.min_size + 1, 12), sp},
      {"exactly max", RandomBytes(sp.max_size, 13), sp},
      {"three max", std::string(3 * sp.max_size + 17, 'z'), sp},
      {"5 MiB small params", RandomBytes(5 << 20, 14), sp},
      {"9 MiB default params", RandomBytes(9 << 20, 15), ChunkParams{}},
      {"default below min", RandomBytes(100000, 16), ChunkParams{}},
  };
  for (const auto& c : cases) {
    std::string path = WriteTemp(dir, "f", c.data);
    int fd = ::open(path.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    Status st;
    uint64_t n = 0;
    auto got = ChunkFd(fd, c.p, &st, &n);
    ::close(fd);
    EXPECT_TRUE(st.ok()) << c.name << ": " << st.ToString();
    EXPECT_EQ(n, c.data.size()) << c.name;
    auto want = ChunkAll(c.data, c.p);
    EXPECT_EQ(Lengths(got), Lengths(want)) << c.name;
    EXPECT_TRUE(got == want) << c.name;
    if (c.data.empty()) {
      EXPECT_TRUE(got.empty());
    }
    if (!c.data.empty() && c.data.size() <= c.p.min_size) {
      ASSERT_EQ(got.size(), 1u) << c.name;
      EXPECT_EQ(got[0], c.data);
    }
  }
}

TEST(FdChunkerTest, PipeWithShortWritesMatchesWholeBufferChunking) {
  const ChunkParams p = SmallParams();
  const std::string data = RandomBytes(3 << 20, 17);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  std::thread writer([&] {
    size_t off = 0, step = 1;
    while (off < data.size()) {
      size_t n = std::min(data.size() - off, step);
      ssize_t w = ::write(fds[1], data.data() + off, n);
      if (w <= 0) break;
      off += static_cast<size_t>(w);
      step = step * 7 % 9973 + 1;  // irregular write sizes
    }
    ::close(fds[1]);
  });
  Status st;
  uint64_t n = 0;
  auto got = ChunkFd(fds[0], p, &st, &n);
  writer.join();
  ::close(fds[0]);
  EXPECT_TRUE(st.ok()) << st.ToString();
  EXPECT_EQ(n, data.size());
  auto want = ChunkAll(data, p);
  EXPECT_EQ(Lengths(got), Lengths(want));
  EXPECT_TRUE(got == want);
}

TEST(FdChunkerTest, EmptyPipe) {
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  ::close(fds[1]);
  FdChunker ch(fds[0], SmallParams());
  std::string c = "untouched";
  EXPECT_FALSE(ch.Next(&c));
  EXPECT_TRUE(ch.status().ok());
  EXPECT_EQ(ch.bytes_read(), 0u);
  EXPECT_FALSE(ch.Next(&c));  // stays at end
  ::close(fds[0]);
}

TEST(FdChunkerTest, ReadErrorIsReported) {
  TempDir dir;
  int fd = ::open(dir.path().c_str(), O_RDONLY | O_DIRECTORY);
  ASSERT_GE(fd, 0);
  FdChunker ch(fd, SmallParams());
  std::string c;
  EXPECT_FALSE(ch.Next(&c));
  EXPECT_FALSE(ch.status().ok());  // EISDIR
  EXPECT_EQ(ch.status().code(), Status::Code::kIOError) << ch.status().ToString();
  ::close(fd);
}

// ------------------------------------------------------------ holes

TEST(ZeroChunkLengthTest, EqualsChunkingThatManyZeros) {
  for (const ChunkParams& p : {SmallParams(), ChunkParams{}}) {
    const std::string zeros(p.max_size + 100, '\0');
    const auto* z = reinterpret_cast<const uint8_t*>(zeros.data());
    for (size_t n : {size_t{0}, size_t{1}, size_t{p.min_size} - 1, size_t{p.min_size}, size_t{p.min_size} + 1,
                     size_t{p.min_size} + 65, size_t{p.avg_size} - 1, size_t{p.avg_size}, size_t{p.avg_size} + 7,
                     size_t{p.max_size} - 1, size_t{p.max_size}, zeros.size()})
      EXPECT_EQ(ZeroChunkLength(n, p), FindChunkBoundary(z, n, p)) << n << " of max " << p.max_size;
  }
}

// Writes `data` at each offset of a file of `size` bytes made with ftruncate,
// so everything else is a hole. Returns its path; the file's bytes go to *all.
std::string WriteSparse(const TempDir& dir, uint64_t size, const std::map<uint64_t, std::string>& data,
                        std::string* all = nullptr) {
  std::string path = dir.path() + "/sparse";
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  EXPECT_GE(fd, 0);
  EXPECT_EQ(::ftruncate(fd, static_cast<off_t>(size)), 0);
  if (all) all->assign(static_cast<size_t>(size), '\0');
  for (const auto& [off, bytes] : data) {
    EXPECT_EQ(::pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(off)),
              static_cast<ssize_t>(bytes.size()));
    if (all) all->replace(static_cast<size_t>(off), bytes.size(), bytes);
  }
  ::close(fd);
  return path;
}

// A chunk list from FdChunker, each hole chunk spelled out as its zeros.
struct FdChunked {
  std::vector<std::string> chunks;
  size_t hole_chunks = 0;
  uint64_t bytes_read = 0;
  Status status;
};
FdChunked ChunkPath(const std::string& path, const ChunkParams& p, bool skip_holes) {
  FdChunked r;
  int fd = ::open(path.c_str(), O_RDONLY);
  EXPECT_GE(fd, 0);
  FdChunker ch(fd, p, skip_holes);
  std::string c;
  while (ch.Next(&c)) {
    if (ch.hole_chunk()) {
      EXPECT_TRUE(c.empty());
      r.chunks.push_back(std::string(ch.hole_chunk(), '\0'));
      r.hole_chunks++;
    } else {
      r.chunks.push_back(c);
    }
  }
  r.status = ch.status();
  r.bytes_read = ch.bytes_read();
  ::close(fd);
  return r;
}

// Skipping holes gives exactly the chunks reading them gives: holes at the
// start, between data, at the end, shorter than a chunk, and data at a chunk
// boundary inside a hole.
TEST(FdChunkerTest, SkippedHolesChunkAsReadingThemWould) {
  TempDir dir;
  const ChunkParams sp = SmallParams();
  struct Case {
    const char* name;
    uint64_t size;
    std::map<uint64_t, std::string> data;
  };
  std::vector<Case> cases = {
      {"hole only", 1 << 20, {}},
      {"hole then data", 1 << 20, {{(1 << 20) - 5000, RandomBytes(5000, 20)}}},
      {"data hole data hole", 3 << 20,
       {{0, RandomBytes(100000, 21)}, {1 << 20, RandomBytes(300000, 22)}, {2 << 20, "x"}}},
      {"short hole between", 1 << 20, {{0, RandomBytes(70000, 23)}, {75000, RandomBytes(200000, 24)}}},
      {"data on a max boundary", 2 << 20, {{sp.max_size * 8, RandomBytes(10, 25)}}},
      {"tail shorter than min", (1 << 20) + 100, {{0, RandomBytes(4096, 26)}}},
  };
  for (const auto& c : cases) {
    std::string all;
    std::string path = WriteSparse(dir, c.size, c.data, &all);
    struct stat st;
    ASSERT_EQ(::stat(path.c_str(), &st), 0);
    ASSERT_LT(static_cast<uint64_t>(st.st_blocks) * 512, c.size) << c.name << ": the test directory makes no holes";
    FdChunked skipped = ChunkPath(path, sp, true);
    FdChunked read = ChunkPath(path, sp, false);
    HFS_EXPECT_OK(skipped.status);
    HFS_EXPECT_OK(read.status);
    auto want = ChunkAll(all, sp);
    EXPECT_EQ(Lengths(skipped.chunks), Lengths(want)) << c.name;
    EXPECT_TRUE(skipped.chunks == want) << c.name;
    EXPECT_TRUE(read.chunks == want) << c.name;
    EXPECT_EQ(read.hole_chunks, 0u) << c.name;
    EXPECT_GT(skipped.hole_chunks, 0u) << c.name;
    EXPECT_LT(skipped.bytes_read, read.bytes_read) << c.name;
  }
}

// A terabyte-sized sparse file is chunked without reading its hole: what is
// read is the data and at most two buffers of zeros around each piece of it.
TEST(FdChunkerTest, TerabyteHoleIsNotRead) {
  TempDir dir;
  const ChunkParams p;  // default sizes
  const uint64_t size = uint64_t{1} << 40;
  std::string path = WriteSparse(dir, size, {{0, "head"}, {size - 4, "tail"}});
  {
    int fd = ::open(path.c_str(), O_RDONLY);
    ASSERT_GE(fd, 0);
    FdChunker ch(fd, p, true);
    std::string c, last;
    uint64_t total = 0, n = 0;
    while (ch.Next(&c)) {
      n++;
      total += ch.hole_chunk() ? ch.hole_chunk() : c.size();
      if (!ch.hole_chunk()) last = c;
      if (n == 1) {
        EXPECT_EQ(c.substr(0, 4), "head");
      }
    }
    HFS_ASSERT_OK(ch.status());
    EXPECT_EQ(total, size);
    ASSERT_GE(last.size(), 4u);
    EXPECT_EQ(last.substr(last.size() - 4), "tail");
    EXPECT_LE(ch.bytes_read(), 4 * uint64_t{p.max_size});
    ::close(fd);
  }
}

// skip_holes on something that is not a regular file reads it as before.
TEST(FdChunkerTest, SkipHolesOnAPipeReadsIt) {
  const std::string data = RandomBytes(200000, 27);
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  std::thread writer([&] {
    (void)!::write(fds[1], data.data(), data.size());
    ::close(fds[1]);
  });
  FdChunker ch(fds[0], SmallParams(), true);
  std::vector<std::string> got;
  std::string c;
  while (ch.Next(&c)) {
    EXPECT_EQ(ch.hole_chunk(), 0u);
    got.push_back(c);
  }
  writer.join();
  ::close(fds[0]);
  HFS_EXPECT_OK(ch.status());
  EXPECT_TRUE(got == ChunkAll(data, SmallParams()));
}

}  // namespace
}  // namespace hashfs
