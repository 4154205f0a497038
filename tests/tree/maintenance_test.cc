// Tests of the maintenance operations: tree walks, diff, garbage collection,
// CheckComplete, verify, stats, forget and restore (tree/walk.h, diff.h,
// gc.h, verify.h, stats.h, forget.h, restore.h), on a MemoryStore with real
// objects.
#include <gtest/gtest.h>
#include <tbb/global_control.h>

#include <algorithm>
#include <ctime>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <thread>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "tests/forwarding_store.h"
#include "cas/lmdb_store.h"
#include "cas/memory_store.h"
#include "cas/digest.h"
#include "cas/object_codec.h"
#include "test_util.h"
#include "tree/backup.h"
#include "tree/chunker.h"
#include "tree/diff.h"
#include "tree/file_manifest.h"
#include "tree/forget.h"
#include "tree/gc.h"
#include "tree/restore.h"
#include "tree/stats.h"
#include "tree/verify.h"
#include "tree/walk.h"

namespace hashfs {
namespace {

// Delegates to another store; runs a hook (once, or as often as it re-arms
// itself) right before each Sweep, to race garbage collection.
class HookedStore final : public ForwardingStore {
 public:
  explicit HookedStore(ObjectStore& inner) : ForwardingStore(inner) {}
  Status Sweep(const std::function<bool(const Digest&, const ObjectInfo&)>& should_delete, const RefTxnFn& then_fn,
               uint64_t* deleted) override {
    sweeps++;
    if (before_sweep) {
      auto hook = std::move(before_sweep);
      before_sweep = nullptr;
      hook();
    }
    return ForwardingStore::Sweep(should_delete, then_fn, deleted);
  }
  uint64_t DiskBytes() override { return 0; }

  Result<std::string> Get(const Digest& d) override {
    {
      std::lock_guard lk(gets_mu);
      gets[d]++;
    }
    return ForwardingStore::Get(d);
  }
  Result<bool> Contains(const Digest& d) override {
    {
      std::lock_guard lk(gets_mu);
      contains[d]++;
    }
    return ForwardingStore::Contains(d);
  }
  int GetsOf(const Digest& d) {
    std::lock_guard lk(gets_mu);
    auto it = gets.find(d);
    return it == gets.end() ? 0 : it->second;
  }
  // Get and Contains calls per digest since the last call.
  std::map<Digest, int> TakeReads() {
    std::lock_guard lk(gets_mu);
    std::map<Digest, int> out;
    for (auto* m : {&gets, &contains})
      for (const auto& [d, n] : *m) out[d] += n;
    gets.clear();
    contains.clear();
    return out;
  }

  std::function<void()> before_sweep;
  int sweeps = 0;
  std::mutex gets_mu;
  std::map<Digest, int> gets;      // Get calls per digest
  std::map<Digest, int> contains;  // Contains calls per digest
};

std::string PatchTime(std::string stored, uint64_t when) {
  for (int i = 0; i < 8; i++) stored[10 + i] = static_cast<char>(when >> (8 * i));
  return stored;
}

int64_t LocalNs(int y, int mon, int d, int h, int min = 0) {
  struct tm tm {};
  tm.tm_year = y - 1900;
  tm.tm_mon = mon - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = min;
  tm.tm_isdst = -1;
  return static_cast<int64_t>(mktime(&tm)) * 1000000000;
}

class MaintenanceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    RepoConfig cfg;
    cfg.zstd_level = 3;
    HFS_ASSERT_OK(Repository::Init(store_, cfg));
    auto r = Repository::Open(store_);
    HFS_ASSERT_OK(r.status());
    repo_ = std::move(r).value();
    w_ = std::make_unique<ObjectWriter>(store_, 3);
  }

  ChunkRef Chunk(std::string_view data) {
    auto d = w_->Put(data, ObjectKind::kData);
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return {d.ok() ? *d : Digest{}, data.size()};
  }

  Inode FileInode(std::string_view content, uint32_t mode = 0644, int64_t mtime = 1000) {
    Inode n;
    n.type = FileType::kRegular;
    n.mode = mode;
    n.uid = 1000;
    n.gid = 1000;
    n.mtime_ns = mtime;
    std::vector<ChunkRef> chunks;
    if (!content.empty()) chunks.push_back(Chunk(content));
    HFS_EXPECT_OK(file_manifest::SetContent(*w_, chunks, &n));
    return n;
  }
  // A regular file whose manifest root is `root` (written by hand).
  static Inode ManifestFileInode(const ChunkRef& root) {
    Inode in;
    in.type = FileType::kRegular;
    in.mode = 0644;
    in.layout = ContentLayout::kManifest;
    in.content = root.digest;
    in.size = root.size;
    return in;
  }
  // A file of `n` distinct chunks: more than kMaxInlineChunks makes a manifest.
  Inode BigFileInode(const std::string& tag, int n) {
    Inode in;
    in.type = FileType::kRegular;
    in.mode = 0644;
    std::vector<ChunkRef> chunks;
    for (int i = 0; i < n; i++) chunks.push_back(Chunk(tag + "-chunk-" + std::to_string(i)));
    HFS_EXPECT_OK(file_manifest::SetContent(*w_, chunks, &in));
    return in;
  }
  Inode DirInode(std::vector<Entry> kids, uint32_t mode = 0755) {
    Inode n;
    n.type = FileType::kDirectory;
    n.mode = mode;
    auto d = dir_tree::Build(*w_, std::move(kids));
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    if (d.ok()) n.content = *d;
    return n;
  }
  static Entry E(std::string name, Inode in) {
    Entry e;
    e.name = std::move(name);
    e.inode = std::move(in);
    return e;
  }
  Entry F(std::string name, std::string_view content, uint32_t mode = 0644, int64_t mtime = 1000) {
    return E(std::move(name), FileInode(content, mode, mtime));
  }
  Entry D(std::string name, std::vector<Entry> kids, uint32_t mode = 0755) {
    return E(std::move(name), DirInode(std::move(kids), mode));
  }
  static Entry Sym(std::string name, std::string target) {
    Inode n;
    n.type = FileType::kSymlink;
    n.mode = 0777;
    n.size = target.size();
    n.symlink_target = std::move(target);
    return E(std::move(name), std::move(n));
  }
  static Entry Hard(std::string name, uint64_t id) {
    Entry e;
    e.name = std::move(name);
    e.link_id = id;
    e.inode.type = FileType::kRegular;
    return e;
  }
  Digest Links(std::vector<LinkRecord> recs) {
    auto d = link_table::Build(*w_, std::move(recs));
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return d.ok() ? *d : Digest{};
  }

  Digest MakeCommit(std::vector<Entry> root, Digest links = {}, int64_t time_ns = 1, std::string desc = "") {
    Commit c;
    c.root = DirInode(std::move(root));
    c.links = links;
    c.time_ns = time_ns;
    c.description = std::move(desc);
    auto id = w_->Put(EncodeCommit(c), ObjectKind::kMeta);
    EXPECT_TRUE(id.ok());
    HFS_EXPECT_OK(w_->Flush());
    return id.ok() ? *id : Digest{};
  }
  Commit Load(const Digest& id) {
    auto c = repo_->LoadCommit(id);
    EXPECT_TRUE(c.ok()) << c.status().ToString();
    return c.ok() ? *c : Commit{};
  }
  void Advance(const std::string& vol, const Digest& c) {
    auto head = repo_->Head(vol);
    ASSERT_TRUE(head.ok());
    auto epoch = repo_->GcEpoch();
    ASSERT_TRUE(epoch.ok());
    HFS_ASSERT_OK(repo_->Advance(vol, *head, c, *epoch));
  }
  // Rewrites every stored object's write time to `when` (unix seconds).
  void AgeAll(uint64_t when) {
    HFS_ASSERT_OK(w_->Flush());
    std::vector<std::pair<Digest, std::string>> all;
    HFS_ASSERT_OK(mem_.ForEachObject([&](const Digest& d, std::string_view s) {
      all.emplace_back(d, std::string(s));
      return Status::Ok();
    }));
    for (auto& [d, s] : all) mem_.CorruptForTesting(d, PatchTime(std::move(s), when));
  }
  Digest PutOld(std::string_view plain, ObjectKind kind, uint64_t when) {
    PreparedObject o = PrepareObject(plain, kind, 0);
    o.stored = PatchTime(std::move(o.stored), when);
    HFS_EXPECT_OK(mem_.PutBatch(std::span<const PreparedObject>(&o, 1)));
    return o.digest;
  }
  bool Has(const Digest& d) {
    auto r = mem_.Contains(d);
    return r.ok() && *r;
  }
  uint64_t ObjectCount() {
    uint64_t n = 0;
    HFS_EXPECT_OK(mem_.ForEachObject([&](const Digest&, std::string_view) {
      n++;
      return Status::Ok();
    }));
    return n;
  }
  std::vector<DiffEntry> Diff(const Digest& a, const Digest& b) {
    auto d = DiffCommits(*repo_, Load(a), Load(b));
    EXPECT_TRUE(d.ok()) << d.status().ToString();
    return d.ok() ? *d : std::vector<DiffEntry>{};
  }

  static uint64_t Old() { return static_cast<uint64_t>(std::time(nullptr)) - 3600; }

  MemoryStore mem_;
  HookedStore store_{mem_};
  std::unique_ptr<Repository> repo_;
  std::unique_ptr<ObjectWriter> w_;
};

DiffEntry DE(DiffEntry::Kind k, std::string path, FileType t, uint64_t o, uint64_t n) {
  return DiffEntry{k, std::move(path), t, o, n};
}

// ---------------------------------------------------------------- walk

TEST_F(MaintenanceTest, WalkVisitsInOrderAndResolvesHardlinks) {
  Digest links = Links({LinkRecord{7, 2, FileInode("shared!")}});
  Digest c = MakeCommit({F("b.txt", "bb"), D("a", {F("x", "xxx"), Hard("h1", 7)}), Hard("h2", 7), Sym("s", "a/x")},
                        links);
  std::vector<std::string> seen;
  HFS_ASSERT_OK(WalkCommit(repo_->getter(), Load(c), [&](const WalkEntry& e, bool*) {
    seen.push_back(std::string(e.path) + ":" + FileTypeChar(e.inode.type) + ":" + std::to_string(e.inode.size) + ":" +
                   std::to_string(e.link_id) + ":" + std::to_string(e.depth));
    return Status::Ok();
  }));
  EXPECT_EQ(seen, (std::vector<std::string>{"a:d:0:0:1", "a/h1:f:7:7:2", "a/x:f:3:0:2", "b.txt:f:2:0:1",
                                             "h2:f:7:7:1", "s:l:3:0:1"}));

  // descend = false skips a directory's contents.
  seen.clear();
  HFS_ASSERT_OK(WalkCommit(repo_->getter(), Load(c), [&](const WalkEntry& e, bool* descend) {
    seen.push_back(std::string(e.path));
    *descend = false;
    return Status::Ok();
  }));
  EXPECT_EQ(seen, (std::vector<std::string>{"a", "b.txt", "h2", "s"}));
}

TEST_F(MaintenanceTest, WalkRefusesTreesDeeperThanTheLimit) {
  auto chain = [&](int depth) {
    Inode in = DirInode({});
    for (int i = 0; i < depth - 1; i++) in = DirInode({E("d", in)});
    return MakeCommit({E("d", in)});
  };
  Digest ok = chain(kMaxTreeDepth);
  size_t n = 0;
  HFS_ASSERT_OK(WalkCommit(repo_->getter(), Load(ok), [&](const WalkEntry&, bool*) {
    n++;
    return Status::Ok();
  }));
  EXPECT_EQ(n, static_cast<size_t>(kMaxTreeDepth));

  // Restore goes as deep: it walks with an explicit stack (recursing once
  // per level overflowed an 8 MiB stack under ASan).
  {
    char tmpl[] = "/tmp/hashfs-deep-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    std::string dest = std::string(tmpl) + "/out";
    auto r = Restore(*repo_, Load(ok), "", dest, RestoreOptions{});
    HFS_ASSERT_OK(r.status());
    EXPECT_TRUE(r->errors.empty()) << r->errors.front();
    EXPECT_EQ(r->dirs, static_cast<uint64_t>(kMaxTreeDepth) + 1);
    EXPECT_EQ(std::system(("rm -rf '" + std::string(tmpl) + "'").c_str()), 0);
  }

  Digest deep = chain(kMaxTreeDepth + 2);
  Status s = WalkCommit(repo_->getter(), Load(deep), [](const WalkEntry&, bool*) { return Status::Ok(); });
  EXPECT_EQ(s.code(), Status::Code::kCorruption) << s.ToString();

  // Diff against the empty tree must list everything: refused the same way.
  Digest empty = MakeCommit({});
  auto d = DiffCommits(*repo_, Load(empty), Load(deep));
  EXPECT_EQ(d.status().code(), Status::Code::kCorruption);
  // Verify names it instead of failing; GC keeps all of it.
  Advance("vol", deep);
  auto v = VerifyStore(*repo_);
  HFS_ASSERT_OK(v.status());
  ASSERT_EQ(v->damaged_paths.size(), 1u);
  EXPECT_NE(v->damaged_paths[0].find("deeper than"), std::string::npos) << v->damaged_paths[0];
  AgeAll(Old());
  auto gc = CollectGarbage(*repo_);
  HFS_ASSERT_OK(gc.status());
  HFS_EXPECT_OK(CheckComplete(*repo_, repo_->getter(), deep));
}

// ---------------------------------------------------------------- diff

// Restore hands files to TBB workers and bounds how many are in flight. An
// embedding program may limit TBB to one thread (the smallest
// max_allowed_parallelism wins), so no worker ever runs them: restore must
// still finish, running them itself, not wait for a free slot forever.
TEST_F(MaintenanceTest, RestoreFinishesWhenTbbHasNoWorkerThreads) {
  std::vector<Entry> files;
  const int n = 200;  // more than the in-flight bound (at most 4 x 32 threads)
  for (int i = 0; i < n; i++) files.push_back(F("f" + std::to_string(i), "content " + std::to_string(i)));
  Digest c = MakeCommit({D("d", std::move(files))});
  char tmpl[] = "/tmp/hashfs-oneth-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  std::string dest = std::string(tmpl) + "/out";
  {
    tbb::global_control one(tbb::global_control::max_allowed_parallelism, 1);
    auto r = Restore(*repo_, Load(c), "", dest, RestoreOptions{});
    HFS_ASSERT_OK(r.status());
    EXPECT_TRUE(r->errors.empty()) << r->errors.front();
    EXPECT_EQ(r->files, static_cast<uint64_t>(n));
  }
  for (int i = 0; i < n; i += 37) {
    std::ifstream in(dest + "/d/f" + std::to_string(i));
    std::string got((std::istreambuf_iterator<char>(in)), {});
    EXPECT_EQ(got, "content " + std::to_string(i));
  }
  EXPECT_EQ(std::system(("rm -rf '" + std::string(tmpl) + "'").c_str()), 0);
}

// The totals for the ETA (several scanner threads share one stack of
// directories) count exactly what the backup takes: every file, symlink and
// byte, excluded names left out, however the threads interleave.
TEST_F(MaintenanceTest, BackupScanTotalsCountWhatTheBackupTakes) {
  testing::TempDir td;
  const std::string src = td.path() + "/src";
  uint64_t files = 0, links = 0, bytes = 0;
  std::function<void(const std::string&, int)> make = [&](const std::string& dir, int depth) {
    ASSERT_EQ(mkdir(dir.c_str(), 0755), 0);
    for (int i = 0; i < 7; i++) {
      std::string content(static_cast<size_t>(files * 13 % 5000), 'x');
      std::ofstream(dir + "/f" + std::to_string(i)) << content;
      files++;
      bytes += content.size();
    }
    ASSERT_EQ(symlink("f0", (dir + "/link").c_str()), 0);
    links++;
    if (depth < 3)
      for (int i = 0; i < 4; i++) make(dir + "/d" + std::to_string(i), depth + 1);
  };
  make(src, 0);
  ASSERT_EQ(mkdir((src + "/d1/skip").c_str(), 0755), 0);
  std::ofstream(src + "/d1/skip/hidden") << "left out";
  BackupOptions opts;
  opts.excludes = {"skip"};
  for (int run = 0; run < 2; run++) {  // a first and an incremental backup
    BackupProgress progress;
    auto r = Backup(*repo_, src, "v", opts, &progress);
    HFS_ASSERT_OK(r.status());
    EXPECT_TRUE(r->errors.empty());
    ASSERT_TRUE(progress.scan_done);
    EXPECT_EQ(progress.total_files, files + links);
    EXPECT_EQ(progress.total_bytes, bytes);
    EXPECT_EQ(r->files_new + r->files_changed + r->files_unchanged, files);
    EXPECT_EQ(r->bytes_total, bytes);
    EXPECT_EQ(r->files_unchanged, run == 0 ? 0 : files);
  }
}

// A file whose xattrs exceed kMaxXattrBytes in all (tmpfs holds them; ext4
// does not) is reported and left out, like an unreadable file: stored, it
// could make its directory's listing too large to commit. Its neighbours are
// backed up, xattrs and all.
TEST_F(MaintenanceTest, BackupReportsAFileWhoseXattrsExceedTheLimit) {
  testing::TempDir td;
  const std::string src = td.path() + "/src";
  ASSERT_EQ(mkdir(src.c_str(), 0755), 0);
  if (mount("tmpfs", src.c_str(), "tmpfs", 0, "size=16m") != 0) GTEST_SKIP() << "needs root to mount a tmpfs";
  struct Unmount {
    std::string p;
    ~Unmount() { umount2(p.c_str(), MNT_DETACH); }
  } unmount{src};
  std::ofstream(src + "/big") << "big";
  std::ofstream(src + "/fits") << "fits";
  const std::string v = testing::RandomBytes(60000, 3);
  if (setxattr((src + "/big").c_str(), "user.a", v.data(), v.size(), 0) != 0)
    GTEST_SKIP() << "tmpfs here has no user xattrs";
  ASSERT_EQ(setxattr((src + "/big").c_str(), "user.b", v.data(), v.size(), 0), 0);
  ASSERT_EQ(setxattr((src + "/fits").c_str(), "user.a", v.data(), v.size(), 0), 0);
  auto r = Backup(*repo_, src, "v", BackupOptions{});
  HFS_ASSERT_OK(r.status());
  ASSERT_EQ(r->errors.size(), 1u);
  EXPECT_NE(r->errors[0].find("big"), std::string::npos) << r->errors[0];
  EXPECT_NE(r->errors[0].find("xattrs of 120012 bytes"), std::string::npos) << r->errors[0];
  std::map<std::string, Inode> files;
  Commit c = Load(r->commit);
  HFS_ASSERT_OK(dir_tree::ForEach(repo_->getter(), c.root.content, [&](const Entry& e) {
    files[e.name] = e.inode;
    return Status::Ok();
  }));
  ASSERT_EQ(files.size(), 1u);
  ASSERT_TRUE(files.count("fits"));
  ASSERT_EQ(files["fits"].xattrs.size(), 1u);
  EXPECT_EQ(files["fits"].xattrs[0].second, v);
}

// A sparse file is backed up without reading its holes, into the same
// manifest as a dense file of the same bytes; restore fetches its zero chunk
// once however often it recurs, and leaves holes.
TEST_F(MaintenanceTest, SparseFileBacksUpAndRestoresWithoutItsHoles) {
  testing::TempDir td;
  const std::string src = td.path() + "/src";
  ASSERT_EQ(mkdir(src.c_str(), 0755), 0);
  const uint64_t size = 64 << 20;
  const std::map<uint64_t, std::string> data = {
      {0, testing::RandomBytes(300000, 1)}, {20 << 20, "middle"}, {size - 4, "tail"}};
  std::string all(size, '\0');
  int fd = open((src + "/sparse").c_str(), O_WRONLY | O_CREAT, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, static_cast<off_t>(size)), 0);
  for (const auto& [off, bytes] : data) {
    ASSERT_EQ(pwrite(fd, bytes.data(), bytes.size(), static_cast<off_t>(off)), static_cast<ssize_t>(bytes.size()));
    all.replace(off, bytes.size(), bytes);
  }
  close(fd);
  std::ofstream(src + "/dense", std::ios::binary) << all;
  struct stat st;
  ASSERT_EQ(stat((src + "/sparse").c_str(), &st), 0);
  ASSERT_LT(static_cast<uint64_t>(st.st_blocks) * 512, size / 4) << "the test directory makes no holes";

  auto r = Backup(*repo_, src, "v", BackupOptions{});
  HFS_ASSERT_OK(r.status());
  EXPECT_TRUE(r->errors.empty());
  EXPECT_EQ(r->bytes_total, 2 * size);
  // The dense file is read whole; of the sparse one, the data and at most a
  // few chunks' worth of zeros around it.
  EXPECT_LE(r->bytes_read, size + 6 * uint64_t{repo_->config().chunking.max_size});
  std::map<std::string, Inode> files;
  Commit c = Load(r->commit);
  HFS_ASSERT_OK(dir_tree::ForEach(repo_->getter(), c.root.content, [&](const Entry& e) {
    files[e.name] = e.inode;
    return Status::Ok();
  }));
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files["sparse"].size, size);
  EXPECT_EQ(files["sparse"].content, files["dense"].content);

  // The hole's zero chunk, as the chunker makes it for a whole window.
  const ChunkParams& p = repo_->config().chunking;
  const Digest zero = Sha256Of(std::string(ZeroChunkLength(p.max_size, p), '\0'));
  const std::string dest = td.path() + "/out";
  auto rr = Restore(*repo_, c, "sparse", dest, RestoreOptions{});
  HFS_ASSERT_OK(rr.status());
  EXPECT_TRUE(rr->errors.empty()) << rr->errors.front();
  EXPECT_EQ(store_.GetsOf(zero), 1);
  std::ifstream in(dest + "/sparse", std::ios::binary);
  std::string got((std::istreambuf_iterator<char>(in)), {});
  EXPECT_TRUE(got == all);
  ASSERT_EQ(stat((dest + "/sparse").c_str(), &st), 0);
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, size / 4);
}

// Manifest nodes repeat (a long run of zeros repeats one node of 8192 zero
// windows; a crafted store can claim 2^39 chunks in a few objects). Restore
// skips a subtree it already walked and that wrote nothing (holes, or
// damaged chunks already reported), so it reads each such node once; and it
// lists at most 20 damaged chunks per file, then a count.
TEST_F(MaintenanceTest, RestoreSkipsRepeatedSubtreesThatWroteNothing) {
  const ChunkParams& p = repo_->config().chunking;
  ChunkRef zero = Chunk(std::string(ZeroChunkLength(p.max_size, p), '\0'));
  auto node = [&](uint8_t level, std::vector<ChunkRef> refs) -> ChunkRef {
    FileNode n;
    n.level = level;
    uint64_t bytes = 0;
    for (const auto& r : refs) bytes += r.size;
    n.refs = std::move(refs);
    auto d = w_->Put(EncodeFileNode(n), ObjectKind::kMeta);
    EXPECT_TRUE(d.ok());
    return {d.ok() ? *d : Digest{}, bytes};
  };
  // 16 x 32 GiB of holes, then a node with data: a 512 GiB sparse file.
  ChunkRef holes = node(0, std::vector<ChunkRef>(8192, zero));
  ChunkRef tail = node(0, {Chunk("the end"), Chunk("of the file")});
  std::vector<ChunkRef> top(16, holes);
  top.push_back(tail);
  ChunkRef sparse = node(1, top);
  // 16 x 8192 references to a chunk that is not stored.
  ChunkRef lost{Sha256Of("never stored"), 1000};
  ChunkRef damaged = node(1, std::vector<ChunkRef>(16, node(0, std::vector<ChunkRef>(8192, lost))));
  Digest c = MakeCommit({E("sparse", ManifestFileInode(sparse)), E("damaged", ManifestFileInode(damaged))});
  HFS_ASSERT_OK(w_->Flush());

  testing::TempDir td;
  const std::string dest = td.path() + "/out";
  auto rr = Restore(*repo_, Load(c), "", dest, RestoreOptions{});
  HFS_ASSERT_OK(rr.status());
  EXPECT_EQ(store_.GetsOf(holes.digest), 1) << "a subtree of holes was read again";
  EXPECT_EQ(store_.GetsOf(zero.digest), 1);
  struct stat st;
  ASSERT_EQ(stat((dest + "/sparse").c_str(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_size), sparse.size);
  EXPECT_LT(st.st_blocks, 1024) << "holes were written";
  std::string end(18, 'x');
  int fd = open((dest + "/sparse").c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(pread(fd, end.data(), end.size(), static_cast<off_t>(sparse.size - end.size())), 18);
  close(fd);
  EXPECT_EQ(end, "the endof the file");
  // The damaged file: 20 chunks listed, then how many more (of the first
  // node's 8192; the 15 repeats are skipped), nothing about "sparse".
  std::vector<std::string> about;
  for (const auto& e : rr->errors) {
    EXPECT_EQ(e.rfind("damaged: ", 0), 0u) << e;
    about.push_back(e);
  }
  ASSERT_EQ(about.size(), 21u);
  EXPECT_NE(about.back().find("8172 more damaged chunk references not listed"), std::string::npos) << about.back();
  EXPECT_EQ(store_.GetsOf(lost.digest), 8192);
}

TEST_F(MaintenanceTest, DiffAddRemoveModifyMetadata) {
  Digest a = MakeCommit({F("keep.txt", "same"), F("mod.txt", "old content"), F("meta.txt", "m"),
                         F("gone.txt", "bye!"), D("sub", {F("x", "x1")})});
  Digest b = MakeCommit({F("keep.txt", "same"), F("mod.txt", "new content!!"), F("meta.txt", "m", 0600),
                         F("new.txt", "hello"), D("sub", {F("x", "x1"), F("y", "yy")})});
  EXPECT_EQ(Diff(a, b), (std::vector<DiffEntry>{
                            DE(DiffEntry::kRemoved, "gone.txt", FileType::kRegular, 4, 0),
                            DE(DiffEntry::kMetadata, "meta.txt", FileType::kRegular, 1, 1),
                            DE(DiffEntry::kModified, "mod.txt", FileType::kRegular, 11, 13),
                            DE(DiffEntry::kAdded, "new.txt", FileType::kRegular, 0, 5),
                            DE(DiffEntry::kAdded, "sub/y", FileType::kRegular, 0, 2),
                        }));
  // And the other way round.
  EXPECT_EQ(Diff(b, a), (std::vector<DiffEntry>{
                            DE(DiffEntry::kAdded, "gone.txt", FileType::kRegular, 0, 4),
                            DE(DiffEntry::kMetadata, "meta.txt", FileType::kRegular, 1, 1),
                            DE(DiffEntry::kModified, "mod.txt", FileType::kRegular, 13, 11),
                            DE(DiffEntry::kRemoved, "new.txt", FileType::kRegular, 5, 0),
                            DE(DiffEntry::kRemoved, "sub/y", FileType::kRegular, 2, 0),
                        }));
  EXPECT_TRUE(Diff(a, a).empty());
}

TEST_F(MaintenanceTest, DiffTypeChangesAndNestedDirectoryAdded) {
  Digest a = MakeCommit({F("t", "file"), D("d", {F("f", "ff")}), Sym("l", "old"), F("dev", "")});
  Inode dev;
  dev.type = FileType::kCharDevice;
  dev.rdev = 0x0103;
  Digest b = MakeCommit({Sym("t", "target"), F("d", "now a file"), Sym("l", "new"),
                         D("nd", {F("a", "a"), D("deeper", {F("b", "bbb")})}), E("dev", dev)});
  EXPECT_EQ(Diff(a, b), (std::vector<DiffEntry>{
                            DE(DiffEntry::kModified, "d", FileType::kRegular, 0, 10),
                            DE(DiffEntry::kRemoved, "d/f", FileType::kRegular, 2, 0),
                            DE(DiffEntry::kModified, "dev", FileType::kCharDevice, 0, 0),
                            DE(DiffEntry::kModified, "l", FileType::kSymlink, 3, 3),
                            DE(DiffEntry::kAdded, "nd", FileType::kDirectory, 0, 0),
                            DE(DiffEntry::kAdded, "nd/a", FileType::kRegular, 0, 1),
                            DE(DiffEntry::kAdded, "nd/deeper", FileType::kDirectory, 0, 0),
                            DE(DiffEntry::kAdded, "nd/deeper/b", FileType::kRegular, 0, 3),
                            DE(DiffEntry::kModified, "t", FileType::kSymlink, 4, 6),
                        }));
}

TEST_F(MaintenanceTest, DiffMetadataRulesAndRoot) {
  Entry base = F("f", "data", 0644, 1000);
  Entry ctime = base;
  ctime.inode.ctime_ns = 999;
  ctime.inode.source_ino = 42;
  Entry xattr = F("g", "gg");
  Entry xattr2 = xattr;
  xattr2.inode.xattrs = {{"user.k", "v"}};
  Entry dev = E("dev", Inode{});
  dev.inode.type = FileType::kBlockDevice;
  dev.inode.rdev = 1;
  Entry dev2 = dev;
  dev2.inode.rdev = 2;
  Entry owner = F("o", "o");
  Entry owner2 = owner;
  owner2.inode.uid = 0;
  Digest a = MakeCommit({base, xattr, dev, owner, D("dir", {F("in", "i")}, 0755)});
  Digest b = MakeCommit({ctime, xattr2, dev2, owner2, D("dir", {F("in", "i")}, 0700)});
  EXPECT_EQ(Diff(a, b), (std::vector<DiffEntry>{
                            DE(DiffEntry::kModified, "dev", FileType::kBlockDevice, 0, 0),
                            DE(DiffEntry::kMetadata, "dir", FileType::kDirectory, 0, 0),
                            DE(DiffEntry::kMetadata, "g", FileType::kRegular, 2, 2),
                            DE(DiffEntry::kMetadata, "o", FileType::kRegular, 1, 1),
                        }));

  // The root directory's own attributes are reported as ".".
  Commit ca = Load(a), cb = Load(a);
  cb.root.mtime_ns = 5;
  auto d = DiffCommits(*repo_, ca, cb);
  HFS_ASSERT_OK(d.status());
  EXPECT_EQ(*d, (std::vector<DiffEntry>{DE(DiffEntry::kMetadata, ".", FileType::kDirectory, 0, 0)}));
}

TEST_F(MaintenanceTest, DiffPrunesEqualSubtreesWithoutReadingThem) {
  // "ghost" names a directory tree that is not in the store: equal on both
  // sides, it must not be read.
  Inode ghost;
  ghost.type = FileType::kDirectory;
  ghost.mode = 0755;
  ghost.content = Sha256Of("not stored anywhere");
  Digest a = MakeCommit({E("ghost", ghost), F("f", "1")});
  Digest b = MakeCommit({E("ghost", ghost), F("f", "22")});
  EXPECT_EQ(Diff(a, b),
            (std::vector<DiffEntry>{DE(DiffEntry::kModified, "f", FileType::kRegular, 1, 2)}));
  // ... but a changed one is read, and the failure names its path.
  Inode ghost2 = ghost;
  ghost2.content = Sha256Of("also not stored");
  Digest c = MakeCommit({E("ghost", ghost2), F("f", "22")});
  auto d = DiffCommits(*repo_, Load(a), Load(c));
  EXPECT_EQ(d.status().code(), Status::Code::kNotFound);
  EXPECT_NE(d.status().message().find("ghost"), std::string::npos) << d.status().ToString();
}

TEST_F(MaintenanceTest, DiffSeesChangedHardlinksInsideEqualDirectories) {
  Digest l1 = Links({LinkRecord{1, 2, FileInode("old")}, LinkRecord{2, 1, FileInode("same")}});
  Digest l2 = Links({LinkRecord{1, 2, FileInode("newer")}, LinkRecord{2, 1, FileInode("same")}});
  std::vector<Entry> tree = {D("sub", {Hard("h1", 1), Hard("k", 2)}), Hard("h2", 1), F("plain", "p")};
  Digest a = MakeCommit(tree, l1);
  Digest b = MakeCommit(tree, l2);
  EXPECT_EQ(Load(a).root, Load(b).root);
  EXPECT_EQ(Diff(a, b), (std::vector<DiffEntry>{
                            DE(DiffEntry::kModified, "h2", FileType::kRegular, 3, 5),
                            DE(DiffEntry::kModified, "sub/h1", FileType::kRegular, 3, 5),
                        }));
  // A file that becomes hardlinked with unchanged content is unchanged.
  Digest l4 = Links({LinkRecord{1, 2, FileInode("old")}, LinkRecord{2, 1, FileInode("same")},
                     LinkRecord{9, 1, FileInode("p")}});
  Digest c2 = MakeCommit({D("sub", {Hard("h1", 1), Hard("k", 2)}), Hard("h2", 1), Hard("plain", 9)}, l4);
  EXPECT_TRUE(Diff(a, c2).empty());
}

// ---------------------------------------------------------------- gc

TEST_F(MaintenanceTest, GcDeletesExactlyUnreachableOldObjects) {
  Digest links = Links({LinkRecord{3, 2, FileInode("hardlinked content")}});
  Digest c1 = MakeCommit({F("a.txt", "alpha"), D("sub", {F("b.txt", "beta"), Hard("h1", 3)}), Hard("h2", 3),
                          E("big", BigFileInode("big", 40)), Sym("s", "a.txt")},
                         links);
  Advance("vol", c1);
  ASSERT_EQ(Load(c1).root.type, FileType::kDirectory);
  uint64_t reachable = ObjectCount();
  Digest orphan_chunk = PutOld("orphan chunk", ObjectKind::kData, Old());
  // An unreachable old tree (a commit never published) goes too.
  Digest orphan_commit = MakeCommit({F("lost.txt", "lost")});
  AgeAll(Old());
  HFS_ASSERT_OK(w_->Put("young orphan", ObjectKind::kData).status());
  HFS_ASSERT_OK(w_->Flush());
  Digest young = Sha256Of("young orphan");
  uint64_t before = ObjectCount();
  ASSERT_EQ(before, reachable + 1 + 3 + 1);  // orphan chunk; orphan commit, root and chunk; young

  auto epoch = repo_->GcEpoch();
  HFS_ASSERT_OK(epoch.status());
  auto r = CollectGarbage(*repo_);
  HFS_ASSERT_OK(r.status());
  EXPECT_TRUE(r->problems.empty()) << r->problems[0];
  EXPECT_EQ(r->reachable, reachable);
  EXPECT_EQ(r->deleted, 4u);
  EXPECT_GT(r->deleted_bytes, 0u);
  EXPECT_EQ(r->kept_young, 1u);
  EXPECT_EQ(r->sweeps, 1);
  EXPECT_EQ(ObjectCount(), reachable + 1);
  EXPECT_FALSE(Has(orphan_chunk));
  EXPECT_FALSE(Has(orphan_commit));
  EXPECT_TRUE(Has(young));
  HFS_EXPECT_OK(CheckComplete(*repo_, repo_->getter(), c1));
  auto v = VerifyStore(*repo_);
  HFS_ASSERT_OK(v.status());
  EXPECT_TRUE(v->ok());
  EXPECT_EQ(*repo_->GcEpoch(), *epoch + 1);

  // A second run finds nothing more to delete.
  auto r2 = CollectGarbage(*repo_);
  HFS_ASSERT_OK(r2.status());
  EXPECT_EQ(r2->deleted, 0u);
  EXPECT_EQ(*repo_->GcEpoch(), *epoch + 2);
}

TEST_F(MaintenanceTest, GcKeepsObjectsOfLiveWriterSessions) {
  Digest c1 = MakeCommit({F("a", "a")});
  Advance("vol", c1);
  AgeAll(Old());
  // A session that started long ago protects everything written since.
  HFS_ASSERT_OK(store_.Update([&](RefTxn& t) {
    return t.Put("sess/test", "{\"pid\":" + std::to_string(getpid()) + ",\"host\":\"elsewhere\",\"start\":" +
                                  std::to_string(Old() - 100) + ",\"what\":\"test\"}");
  }));
  Digest pending = PutOld("written by the session", ObjectKind::kData, Old());
  auto r = CollectGarbage(*repo_);
  HFS_ASSERT_OK(r.status());
  EXPECT_EQ(r->deleted, 0u);
  EXPECT_EQ(r->kept_young, 1u);
  EXPECT_TRUE(Has(pending));
}

TEST_F(MaintenanceTest, GcKeepsPinnedCommitsAndDropsPinsOfDeadSessions) {
  Digest c1 = MakeCommit({F("a", "a")});
  Advance("vol", c1);
  Digest pinned = MakeCommit({F("open-but-unlinked", "still open somewhere")});
  AgeAll(Old());
  {
    auto session = WriterSession::Start(*repo_, "test pin");
    HFS_ASSERT_OK(session.status());
    HFS_ASSERT_OK((*session)->Pin(pinned));
    AgeAll(Old());  // make the pinned objects older than the session's start
    auto r = CollectGarbage(*repo_);
    HFS_ASSERT_OK(r.status());
    EXPECT_TRUE(Has(pinned));
    HFS_EXPECT_OK(CheckComplete(*repo_, repo_->getter(), pinned));
    HFS_ASSERT_OK((*session)->Unpin());
    r = CollectGarbage(*repo_);
    HFS_ASSERT_OK(r.status());
    EXPECT_FALSE(Has(pinned)) << "an unpinned, unreachable commit must go";
  }
  // A dead process's pin is dropped with its session record.
  pinned = MakeCommit({F("pinned by a dead process", "x")});
  AgeAll(Old());
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  HFS_ASSERT_OK(store_.Update([&](RefTxn& t) -> Status {
    Status s = t.Put("sess/dead", "{\"pid\":999999999,\"host\":\"" + std::string(host) +
                                      "\",\"start\":1,\"what\":\"x\"}");
    if (!s.ok()) return s;
    return t.Put("pin/dead", std::string(pinned.AsBytes()));
  }));
  auto r = CollectGarbage(*repo_);
  HFS_ASSERT_OK(r.status());
  auto pins = repo_->PinnedCommits();
  HFS_ASSERT_OK(pins.status());
  // The first collection may still honour it (it removes the dead record);
  // the next one does not.
  r = CollectGarbage(*repo_);
  HFS_ASSERT_OK(r.status());
  EXPECT_FALSE(Has(pinned));
  pins = repo_->PinnedCommits();
  HFS_ASSERT_OK(pins.status());
  EXPECT_TRUE(pins->empty());
}

TEST_F(MaintenanceTest, GcAfterForgetKeepsWhatSnapshotsReach) {
  Digest c1 = MakeCommit({F("common", "common"), F("v", "version 1")}, {}, LocalNs(2024, 3, 1, 12));
  Advance("vol", c1);
  Digest c2 = MakeCommit({F("common", "common"), F("v", "version 2")}, {}, LocalNs(2024, 3, 2, 12));
  Advance("vol", c2);
  Digest c3 = MakeCommit({F("common", "common"), F("v", "version 3")}, {}, LocalNs(2024, 3, 3, 12));
  Advance("vol", c3);
  HFS_ASSERT_OK(repo_->CreateSnapshot("first", c1));
  ForgetPolicy p;
  p.keep_last = 1;
  auto f = Forget(*repo_, "vol", p, /*dry_run=*/false);
  HFS_ASSERT_OK(f.status());
  ASSERT_EQ(f->removed.size(), 2u);
  AgeAll(Old());

  Commit commit2 = Load(c2);
  auto r = CollectGarbage(*repo_);
  HFS_ASSERT_OK(r.status());
  EXPECT_EQ(r->deleted, 3u);  // c2's commit, root directory and "version 2" chunk
  EXPECT_FALSE(Has(c2));
  EXPECT_FALSE(Has(commit2.root.content));
  EXPECT_FALSE(Has(Sha256Of("version 2")));
  HFS_EXPECT_OK(CheckComplete(*repo_, repo_->getter(), c1));
  HFS_EXPECT_OK(CheckComplete(*repo_, repo_->getter(), c3));
  EXPECT_EQ(CheckComplete(*repo_, repo_->getter(), c2).code(), Status::Code::kNotFound);
}

TEST_F(MaintenanceTest, GcRemarksWhenACommitAppearsBeforeTheSweep) {
  Digest c1 = MakeCommit({F("a", "one")});
  Advance("vol", c1);
  // c2 exists but is unreachable while GC marks; it becomes a root just
  // before the sweep transaction (a writer advancing concurrently).
  Digest c2 = MakeCommit({F("a", "one"), D("more", {F("b", "only in c2")})});
  Digest orphan = PutOld("orphan", ObjectKind::kData, Old());
  AgeAll(Old());
  store_.before_sweep = [&] { Advance("other", c2); };

  auto r = CollectGarbage(*repo_);
  HFS_ASSERT_OK(r.status());
  EXPECT_EQ(r->sweeps, 2);
  EXPECT_EQ(store_.sweeps, 2);
  EXPECT_EQ(r->deleted, 1u);
  EXPECT_FALSE(Has(orphan));
  HFS_EXPECT_OK(CheckComplete(*repo_, repo_->getter(), c2));
  HFS_EXPECT_OK(CheckComplete(*repo_, repo_->getter(), c1));
}

// A writer that commits between marking and every sweep (a busy mount) no
// longer makes gc retry: the new root is marked inside the sweep.
TEST_F(MaintenanceTest, GcMarksRootsThatAppearAfterMarkingInsideTheSweep) {
  Digest c1 = MakeCommit({F("a", "one"), D("d", {F("b", "two")})});
  Advance("vol", c1);
  Digest orphan = PutOld("orphan", ObjectKind::kData, Old());
  AgeAll(Old());
  int n = 0;
  Digest late;
  std::function<void()> hook = [&] {
    // New objects (young) over old, already marked ones.
    late = MakeCommit({F("a", "one"), D("d", {F("b", "two")}), F("new", "churn " + std::to_string(n++))});
    Advance("vol", late);
    store_.before_sweep = hook;
  };
  store_.before_sweep = hook;
  auto r = CollectGarbage(*repo_);
  HFS_ASSERT_OK(r.status());
  store_.before_sweep = nullptr;
  EXPECT_EQ(r->sweeps, 1);
  EXPECT_EQ(r->late_roots, 1u);
  EXPECT_EQ(r->deleted, 1u);
  EXPECT_EQ(r->kept_young, 0u) << "the late root's new objects count as reachable";
  EXPECT_EQ(r->reachable, ObjectCount());
  EXPECT_TRUE(r->problems.empty()) << r->problems[0];
  EXPECT_FALSE(Has(orphan));
  HFS_EXPECT_OK(CheckComplete(*repo_, repo_->getter(), late));
  HFS_EXPECT_OK(CheckComplete(*repo_, repo_->getter(), c1));
}

// A new root that reaches what the sweep deletes (old, unmarked objects: a
// revert to a commit `forget` dropped) abandons the sweep; if that happens
// before every sweep, gc gives up after 11 and deletes nothing.
TEST_F(MaintenanceTest, GcGivesUpWhenNewRootsKeepReachingWhatItDeletes) {
  Digest c1 = MakeCommit({F("a", "one")});
  Advance("vol", c1);
  int n = 0;
  Digest last;
  std::function<void()> hook = [&] {
    last = MakeCommit({F("a", "one"), F("resurrected", "old content " + std::to_string(n++))});
    AgeAll(Old());
    Advance("vol", last);
    store_.before_sweep = hook;
  };
  store_.before_sweep = hook;
  auto r = CollectGarbage(*repo_);
  EXPECT_EQ(r.status().code(), Status::Code::kStale) << r.status().ToString();
  EXPECT_NE(r.status().message().find("which the sweep was deleting"), std::string::npos) << r.status().ToString();
  EXPECT_EQ(store_.sweeps, 11);
  store_.before_sweep = nullptr;
  HFS_EXPECT_OK(CheckComplete(*repo_, repo_->getter(), last));
  auto r2 = CollectGarbage(*repo_);
  HFS_ASSERT_OK(r2.status());
  EXPECT_EQ(r2->sweeps, 1);
  HFS_EXPECT_OK(CheckComplete(*repo_, repo_->getter(), last));
}

TEST_F(MaintenanceTest, GcReportsMissingObjectsAndKeepsTheRest) {
  Inode lost_dir;
  lost_dir.type = FileType::kDirectory;
  lost_dir.content = Sha256Of("missing directory node");
  Entry lost_file = F("lost", "");
  lost_file.inode.chunks = {{Sha256Of("missing chunk"), 13}};
  lost_file.inode.size = 13;
  Digest c1 = MakeCommit({F("fine", "fine"), E("gone", lost_dir), D("sub", {lost_file})});
  Advance("vol", c1);
  uint64_t n = ObjectCount();
  AgeAll(Old());
  auto r = CollectGarbage(*repo_);
  HFS_ASSERT_OK(r.status());
  EXPECT_EQ(r->deleted, 0u);
  EXPECT_EQ(r->reachable, n);
  ASSERT_EQ(r->problems.size(), 2u);
  std::string all = r->problems[0] + "\n" + r->problems[1];
  EXPECT_NE(all.find("gone"), std::string::npos) << all;
  EXPECT_NE(all.find(Sha256Of("missing chunk").Hex()), std::string::npos) << all;
  EXPECT_EQ(ObjectCount(), n);
}

TEST_F(MaintenanceTest, CheckCompleteFindsMissingObjects) {
  Digest good = MakeCommit({F("a", "a"), E("big", BigFileInode("ok", 30)), D("d", {F("x", "x")})});
  HFS_EXPECT_OK(CheckComplete(*repo_, repo_->getter(), good));

  Entry lost = F("file", "");
  lost.inode.chunks = {{Sha256Of("never stored"), 12}};
  lost.inode.size = 12;
  Digest bad = MakeCommit({F("a", "a"), D("dir", {lost})});
  Status s = CheckComplete(*repo_, repo_->getter(), bad);
  EXPECT_EQ(s.code(), Status::Code::kNotFound);
  EXPECT_NE(s.message().find(Sha256Of("never stored").Hex()), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find("dir/file"), std::string::npos) << s.ToString();

  // A chunk inside a manifest, and a missing directory node.
  Inode big = BigFileInode("manifested", 30);
  ASSERT_EQ(big.layout, ContentLayout::kManifest);
  Digest c3 = MakeCommit({E("big", big)});
  HFS_ASSERT_OK(CheckComplete(*repo_, repo_->getter(), c3));
  std::vector<ChunkRef> refs;
  for (int i = 0; i < 30; i++) refs.push_back(Chunk("present-" + std::to_string(i)));
  refs.insert(refs.begin() + 20, ChunkRef{Sha256Of("absent from the manifest"), 24});
  Inode big2;
  big2.type = FileType::kRegular;
  HFS_ASSERT_OK(file_manifest::SetContent(*w_, refs, &big2));
  ASSERT_EQ(big2.layout, ContentLayout::kManifest);
  Digest c5 = MakeCommit({D("m", {E("big2", big2)})});
  s = CheckComplete(*repo_, repo_->getter(), c5);
  EXPECT_EQ(s.code(), Status::Code::kNotFound);
  EXPECT_NE(s.message().find("m/big2"), std::string::npos) << s.ToString();
  EXPECT_NE(s.message().find(Sha256Of("absent from the manifest").Hex()), std::string::npos) << s.ToString();

  Inode ghost;
  ghost.type = FileType::kDirectory;
  ghost.content = Sha256Of("no such node");
  Digest c4 = MakeCommit({D("p", {E("q", ghost)})});
  s = CheckComplete(*repo_, repo_->getter(), c4);
  EXPECT_EQ(s.code(), Status::Code::kNotFound);
  EXPECT_NE(s.message().find("p/q"), std::string::npos) << s.ToString();
  EXPECT_EQ(CheckComplete(*repo_, repo_->getter(), Sha256Of("no commit")).code(), Status::Code::kNotFound);

  // Data still queued in an ObjectWriter counts as present through its getter.
  ObjectWriter w(store_, 0, 1u << 30);
  auto queued = w.Put("queued chunk", ObjectKind::kData);
  HFS_ASSERT_OK(queued.status());
  Inode qf;
  qf.type = FileType::kRegular;
  qf.size = 12;
  qf.chunks = {{*queued, 12}};
  auto root = dir_tree::Build(w, {E("q", qf)});
  HFS_ASSERT_OK(root.status());
  Commit qc;
  qc.root.type = FileType::kDirectory;
  qc.root.content = *root;
  auto qid = w.Put(EncodeCommit(qc), ObjectKind::kMeta);
  HFS_ASSERT_OK(qid.status());
  HFS_EXPECT_OK(CheckComplete(*repo_, GetterFor(w), *qid));
}

// ---------------------------------------------------------------- verify

TEST_F(MaintenanceTest, VerifyCleanStore) {
  Digest links = Links({LinkRecord{1, 2, FileInode("hl")}});
  Digest c1 = MakeCommit({F("a", "a"), E("big", BigFileInode("b", 25)), Hard("h", 1), D("d", {Hard("h2", 1)})},
                         links);
  Advance("vol", c1);
  HFS_ASSERT_OK(repo_->CreateSnapshot("snap", c1));
  uint64_t last_done = 0, last_total = 0;
  auto v = VerifyStore(*repo_, [&](uint64_t d, uint64_t t) {
    last_done = d;
    last_total = t;
  });
  HFS_ASSERT_OK(v.status());
  EXPECT_TRUE(v->ok());
  EXPECT_EQ(v->objects_checked, ObjectCount());
  EXPECT_GT(v->bytes_checked, 0u);
  EXPECT_EQ(last_done, ObjectCount());
  EXPECT_EQ(last_total, ObjectCount());
}

TEST_F(MaintenanceTest, VerifyNamesTheDamagedPathInEveryCommit) {
  Digest links = Links({LinkRecord{5, 2, FileInode("linked data")}});
  std::vector<Entry> docs = {F("a.txt", "precious"), F("b.txt", "fine")};
  Digest c1 = MakeCommit({D("docs", docs), F("top", "v1"), Hard("h1", 5), D("x", {Hard("h2", 5)})}, links, 1);
  Advance("vol", c1);
  Digest c2 = MakeCommit({D("docs", docs), F("top", "v2"), Hard("h1", 5), D("x", {Hard("h2", 5)})}, links, 2);
  Advance("vol", c2);
  Digest c3 = MakeCommit({F("top", "v3")}, {}, 3);
  Advance("vol", c3);
  HFS_ASSERT_OK(repo_->CreateSnapshot("s1", c1));

  Digest bad = Sha256Of("precious");
  mem_.CorruptForTesting(bad, PrepareObject("tampered", ObjectKind::kData, 0).stored);
  Digest bad2 = Sha256Of("linked data");
  mem_.CorruptForTesting(bad2, PrepareObject("tampered 2", ObjectKind::kData, 0).stored);

  auto v = VerifyStore(*repo_);
  HFS_ASSERT_OK(v.status());
  EXPECT_FALSE(v->ok());
  ASSERT_EQ(v->corrupt_objects.size(), 2u);
  std::string objs = v->corrupt_objects[0] + v->corrupt_objects[1];
  EXPECT_NE(objs.find(bad.Hex()), std::string::npos);
  EXPECT_NE(objs.find(bad2.Hex()), std::string::npos);

  std::set<std::string> where;
  for (const auto& p : v->damaged_paths) where.insert(p.substr(0, p.find(": ")));
  auto at = [](const std::string& name, const Digest& c, const std::string& path) {
    return name + "@" + c.Hex().substr(0, 12) + ":" + path;
  };
  std::set<std::string> want;
  for (const auto& [name, c] : std::vector<std::pair<std::string, Digest>>{{"vol", c1}, {"vol", c2}, {"s1", c1}})
    for (const char* path : {"docs/a.txt", "h1", "x/h2"}) want.insert(at(name, c, path));
  EXPECT_EQ(where, want);
  EXPECT_EQ(v->damaged_paths.size(), want.size());
  for (const auto& p : v->damaged_paths) EXPECT_NE(p.find("corrupt"), std::string::npos) << p;
}

// A manifest whose nodes repeat (3 levels, each repeating the one below 8192
// times: 2^39 references to one chunk, a 2 EiB file in 4 objects, as a
// crafted store could hold) is verified by reading each node once: verify
// finishes at once, and names the file when its one chunk is damaged.
// Walking every chunk reference, as verify once did, takes hours.
TEST_F(MaintenanceTest, VerifyReadsRepeatedManifestNodesOnce) {
  ChunkRef ref = Chunk(std::string(4u << 20, 'z'));
  for (uint8_t level = 0; level < 3; level++) {
    FileNode node;
    node.level = level;
    node.refs.assign(8192, ref);
    auto d = w_->Put(EncodeFileNode(node), ObjectKind::kMeta);
    HFS_ASSERT_OK(d.status());
    ref = {*d, ref.size * 8192};
  }
  Inode huge = ManifestFileInode(ref);
  ASSERT_EQ(huge.size, uint64_t{1} << 61);
  Digest c1 = MakeCommit({E("huge", huge), E("again", huge), F("small", "fine")});
  Advance("vol", c1);
  auto started = std::chrono::steady_clock::now();
  auto v = VerifyStore(*repo_);
  HFS_ASSERT_OK(v.status());
  EXPECT_TRUE(v->ok()) << (v->damaged_paths.empty() ? "" : v->damaged_paths[0]);
  mem_.CorruptForTesting(Sha256Of(std::string(4u << 20, 'z')), "short");
  v = VerifyStore(*repo_);
  HFS_ASSERT_OK(v.status());
  std::set<std::string> where;
  for (const auto& p : v->damaged_paths) where.insert(p.substr(0, p.find(": ")));
  std::string at = "vol@" + c1.Hex().substr(0, 12) + ":";
  EXPECT_EQ(where, (std::set<std::string>{at + "again", at + "huge"}));
  // Not a timing test: a bound far above the milliseconds this takes, far
  // below the hours a walk of every reference would.
  EXPECT_LT(std::chrono::steady_clock::now() - started, std::chrono::minutes(5));
}

// A mount commits after every fsync or rename, so a volume's history holds
// many commits of one large directory that differ in one entry. verify and
// stats read each trie node and check each chunk once across all of them
// (a walk of every commit's whole tree, as both once did, took 30 minutes
// for 30,000 commits of a 1,000-file directory), and still name every
// commit that holds a damaged file.
TEST_F(MaintenanceTest, VerifyAndStatsReadEachTrieNodeOnceAcrossCommits) {
  constexpr int kFiles = 2000, kCommits = 40;
  std::vector<Entry> files;
  uint64_t bytes = 0;
  for (int i = 0; i < kFiles; i++) {
    files.push_back(F("f" + std::to_string(i), "file " + std::to_string(i)));
    bytes += files.back().inode.size;
  }
  uint64_t logical = 0;
  std::vector<Digest> commits;
  for (int c = 0; c < kCommits; c++) {
    // Commit c rewrites file c + 1 (file 0 stays the same throughout).
    Entry& e = files[static_cast<size_t>(c + 1)];
    bytes -= e.inode.size;
    e = F(e.name, "file " + std::to_string(c + 1) + " version " + std::to_string(c));
    bytes += e.inode.size;
    commits.push_back(MakeCommit({D("big", files), F("n", std::to_string(c))}, {}, c + 1));
    Advance("vol", commits.back());
    logical += bytes + std::to_string(c).size();
  }
  store_.TakeReads();
  auto st = ComputeStats(*repo_);
  HFS_ASSERT_OK(st.status());
  EXPECT_EQ(st->commits, uint64_t{kCommits});
  EXPECT_EQ(st->logical_bytes, logical);
  for (const auto& [d, n] : store_.TakeReads()) EXPECT_LE(n, 1) << "stats read " << d.Hex() << " " << n << " times";

  auto v = VerifyStore(*repo_);
  HFS_ASSERT_OK(v.status());
  EXPECT_TRUE(v->ok()) << (v->damaged_paths.empty() ? "" : v->damaged_paths[0]);
  for (const auto& [d, n] : store_.TakeReads()) EXPECT_LE(n, 1) << "verify read " << d.Hex() << " " << n << " times";

  // File 0 is in every commit; the version of file 21 written by commit 20
  // is in commits 20 and later.
  mem_.CorruptForTesting(Sha256Of("file 0"), PrepareObject("tampered", ObjectKind::kData, 0).stored);
  mem_.CorruptForTesting(Sha256Of("file 21 version 20"), PrepareObject("tampered", ObjectKind::kData, 0).stored);
  v = VerifyStore(*repo_);
  HFS_ASSERT_OK(v.status());
  std::vector<std::string> want;
  for (int c = 0; c < kCommits; c++) {
    std::string at = "vol@" + commits[static_cast<size_t>(c)].Hex().substr(0, 12) + ":big/";
    want.push_back(at + "f0");
    if (c >= 20) want.push_back(at + "f21");
  }
  std::vector<std::string> got;
  for (const auto& p : v->damaged_paths) {
    EXPECT_NE(p.find("corrupt"), std::string::npos) << p;
    got.push_back(p.substr(0, p.find(": ")));
  }
  std::sort(want.begin(), want.end());
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got, want);
}

TEST_F(MaintenanceTest, VerifyReportsMissingTreeObjectsAndManyObjects) {
  // Enough objects for several parallel batches.
  std::vector<Entry> many;
  for (int i = 0; i < 9000; i++) many.push_back(F("f" + std::to_string(i), "content " + std::to_string(i)));
  Digest c1 = MakeCommit({D("many", many), E("big", BigFileInode("m", 20))});
  Advance("vol", c1);
  mem_.CorruptForTesting(Sha256Of("content 4321"), "short");
  // A manifest node of "big" is damaged too.
  Inode big = BigFileInode("m", 20);
  ASSERT_EQ(big.layout, ContentLayout::kManifest);
  mem_.CorruptForTesting(big.content, PrepareObject("not a manifest", ObjectKind::kMeta, 0).stored);
  // A commit whose subdirectory node is missing.
  Inode ghost;
  ghost.type = FileType::kDirectory;
  ghost.content = Sha256Of("missing node");
  Digest c2 = MakeCommit({D("a", {E("b", ghost)})});
  HFS_ASSERT_OK(repo_->CreateSnapshot("s", c2));
  // A snapshot of a commit that is not stored at all.
  HFS_ASSERT_OK(repo_->CreateSnapshot("nothing", Sha256Of("no commit")));

  auto v = VerifyStore(*repo_);
  HFS_ASSERT_OK(v.status());
  EXPECT_EQ(v->objects_checked, ObjectCount());
  EXPECT_EQ(v->corrupt_objects.size(), 2u);
  std::string p1 = "vol@" + c1.Hex().substr(0, 12) + ":";
  std::string p2 = "s@" + c2.Hex().substr(0, 12) + ":a/b: ";
  std::string p3 = "nothing@" + Sha256Of("no commit").Hex().substr(0, 12) + ":.: ";
  ASSERT_EQ(v->damaged_paths.size(), 4u) << ::testing::PrintToString(v->damaged_paths);
  std::vector<std::string> got = v->damaged_paths;
  std::sort(got.begin(), got.end());
  EXPECT_EQ(got[0].rfind(p3, 0), 0u) << got[0];
  EXPECT_EQ(got[1].rfind(p2, 0), 0u) << got[1];
  EXPECT_EQ(got[2].rfind(p1 + "big: ", 0), 0u) << got[2];
  EXPECT_EQ(got[3].rfind(p1 + "many/f4321: ", 0), 0u) << got[3];
}

// ---------------------------------------------------------------- stats

TEST_F(MaintenanceTest, StatsCountsLogicalAndUniqueBytes) {
  std::string a(1000, 'a'), b(500, 'b'), c(300, 'c'), h(40, 'h');
  Digest links = Links({LinkRecord{1, 2, FileInode(h)}});
  Digest c1 = MakeCommit({F("a", a), D("sub", {F("b", b)})}, {}, 1);
  Advance("vol", c1);
  // c2 shares a and sub/b, adds c and a hardlinked pair (counted once).
  Digest c2 = MakeCommit({F("a", a), D("sub", {F("b", b), Hard("h1", 1)}), F("c", c), Hard("h2", 1), Sym("s", "a")},
                         links, 2);
  Advance("vol", c2);
  HFS_ASSERT_OK(repo_->CreateSnapshot("snap", c1));

  uint64_t objects = 0, data = 0, plain = 0, data_plain = 0, stored = 0;
  HFS_ASSERT_OK(mem_.ForEachObject([&](const Digest&, std::string_view s) {
    auto info = ParseStoredHeader(s);
    EXPECT_TRUE(info.ok());
    objects++;
    stored += s.size();
    plain += info->plain_size;
    if (info->kind == ObjectKind::kData) {
      data++;
      data_plain += info->plain_size;
    }
    return Status::Ok();
  }));

  auto st = ComputeStats(*repo_);
  HFS_ASSERT_OK(st.status());
  EXPECT_EQ(st->volumes, 1u);
  EXPECT_EQ(st->snapshots, 1u);
  EXPECT_EQ(st->commits, 2u);
  EXPECT_EQ(st->objects, objects);
  EXPECT_EQ(st->data_objects, 4u);
  EXPECT_EQ(st->data_objects, data);
  EXPECT_EQ(st->meta_objects, objects - data);
  EXPECT_EQ(st->logical_bytes, (1000u + 500) + (1000 + 500 + 300 + 40));
  EXPECT_EQ(st->unique_data_bytes, 1000u + 500 + 300 + 40);
  EXPECT_EQ(data_plain, 1840u);
  EXPECT_EQ(st->unique_bytes, plain);
  EXPECT_EQ(st->stored_bytes, stored);
  EXPECT_DOUBLE_EQ(st->dedupe_ratio, 3340.0 / 1840.0);
  EXPECT_DOUBLE_EQ(st->compression_ratio, static_cast<double>(plain) / static_cast<double>(stored));
  EXPECT_GT(st->compression_ratio, 1.0);  // runs of one byte compress
}

TEST_F(MaintenanceTest, StatsManyCommitsOfOneTreeAndEmptyStore) {
  auto empty = ComputeStats(*repo_);
  HFS_ASSERT_OK(empty.status());
  EXPECT_EQ(empty->logical_bytes, 0u);
  EXPECT_EQ(empty->dedupe_ratio, 0.0);

  std::vector<Entry> files;
  for (int i = 0; i < 50; i++) files.push_back(F("f" + std::to_string(i), std::string(100, 'x') + std::to_string(i)));
  Entry tree = D("tree", files);
  uint64_t per_commit = 0;
  for (int i = 0; i < 50; i++) per_commit += 100 + std::to_string(i).size();
  for (int i = 0; i < 100; i++) Advance("vol", MakeCommit({tree, F("n", std::to_string(i))}, {}, i));
  uint64_t ns_bytes = 0;
  for (int i = 0; i < 100; i++) ns_bytes += std::to_string(i).size();
  auto st = ComputeStats(*repo_);
  HFS_ASSERT_OK(st.status());
  EXPECT_EQ(st->commits, 100u);
  EXPECT_EQ(st->logical_bytes, 100 * per_commit + ns_bytes);
}

// ---------------------------------------------------------------- forget

struct SelectCase {
  const char* name;
  std::vector<int64_t> times;
  ForgetPolicy policy;
  std::vector<bool> want;
};

TEST(SelectKeptTest, TableDriven) {
  std::vector<int64_t> ten;
  for (int i = 0; i < 10; i++) ten.push_back(LocalNs(2024, 5, 10, 20 - i));
  // Three days, several commits each (newest first).
  std::vector<int64_t> days = {LocalNs(2024, 5, 3, 15), LocalNs(2024, 5, 3, 12), LocalNs(2024, 5, 3, 9),
                               LocalNs(2024, 5, 2, 18), LocalNs(2024, 5, 2, 8),  LocalNs(2024, 5, 1, 23),
                               LocalNs(2024, 5, 1, 1)};
  // Mon 2024-01-01 is ISO 2024-W01; Sun 2023-12-31 and Mon 2023-12-25 are 2023-W52.
  std::vector<int64_t> weeks = {LocalNs(2024, 1, 2, 12), LocalNs(2024, 1, 1, 12), LocalNs(2023, 12, 31, 12),
                                LocalNs(2023, 12, 25, 12), LocalNs(2023, 12, 24, 12), LocalNs(2023, 12, 17, 12)};
  std::vector<int64_t> months = {LocalNs(2024, 3, 5, 12), LocalNs(2024, 3, 1, 12), LocalNs(2024, 2, 20, 12),
                                 LocalNs(2024, 1, 31, 12), LocalNs(2023, 12, 31, 12)};
  std::vector<int64_t> hours = {LocalNs(2024, 5, 1, 10, 50), LocalNs(2024, 5, 1, 10, 5), LocalNs(2024, 5, 1, 9, 59),
                                LocalNs(2024, 5, 1, 9, 0), LocalNs(2024, 5, 1, 7, 30)};
  auto P = [](int last, int hourly, int daily, int weekly, int monthly) {
    ForgetPolicy p;
    p.keep_last = last;
    p.keep_hourly = hourly;
    p.keep_daily = daily;
    p.keep_weekly = weekly;
    p.keep_monthly = monthly;
    return p;
  };
  const bool T = true, F = false;
  std::vector<SelectCase> cases = {
      {"keep-last 3 of 10", ten, P(3, 0, 0, 0, 0), {T, T, T, F, F, F, F, F, F, F}},
      {"keep-last more than there are", {1, 0}, P(5, 0, 0, 0, 0), {T, T}},
      {"keep-daily 2 over 3 days", days, P(0, 0, 2, 0, 0), {T, F, F, T, F, F, F}},
      {"keep-daily 5 over 3 days", days, P(0, 0, 5, 0, 0), {T, F, F, T, F, T, F}},
      {"keep-last 2 + keep-daily 3", days, P(2, 0, 3, 0, 0), {T, T, F, T, F, T, F}},
      {"keep-hourly 2", hours, P(0, 2, 0, 0, 0), {T, F, T, F, F}},
      {"keep-hourly 9", hours, P(0, 9, 0, 0, 0), {T, F, T, F, T}},
      {"keep-weekly 2 (ISO weeks)", weeks, P(0, 0, 0, 2, 0), {T, F, T, F, F, F}},
      {"keep-weekly 4", weeks, P(0, 0, 0, 4, 0), {T, F, T, F, T, T}},
      {"keep-monthly 3", months, P(0, 0, 0, 0, 3), {T, F, T, T, F}},
      {"keep-monthly 2 + keep-weekly 1 + keep-last 1", months, P(1, 0, 0, 1, 2), {T, F, T, F, F}},
      {"empty policy keeps the head", days, P(0, 0, 0, 0, 0), {T, F, F, F, F, F, F}},
      {"head kept although older days win", {LocalNs(2024, 5, 3, 9), LocalNs(2024, 5, 2, 9)}, P(0, 0, 0, 0, 0),
       {T, F}},
      {"no commits", {}, P(3, 0, 0, 0, 0), {}},
  };
  for (const auto& c : cases) EXPECT_EQ(SelectKept(c.times, c.policy), c.want) << c.name;
}

TEST_F(MaintenanceTest, ForgetDropsHistoryEntries) {
  std::vector<Digest> ids;
  for (int d = 1; d <= 6; d++) {
    ids.push_back(MakeCommit({F("f", "day " + std::to_string(d))}, {}, LocalNs(2024, 6, d, 12)));
    Advance("vol", ids.back());
  }
  // Two commits on day 6: the older one loses to the head.
  ids.push_back(MakeCommit({F("f", "day 6 again")}, {}, LocalNs(2024, 6, 6, 18)));
  Advance("vol", ids.back());
  HFS_ASSERT_OK(repo_->CreateSnapshot("keepme", ids[0]));

  ForgetPolicy p;
  p.keep_daily = 3;
  auto dry = Forget(*repo_, "vol", p, /*dry_run=*/true);
  HFS_ASSERT_OK(dry.status());
  ASSERT_EQ(dry->kept.size(), 3u);
  EXPECT_EQ(dry->kept[0].commit, ids[6]);
  EXPECT_EQ(dry->kept[1].commit, ids[4]);
  EXPECT_EQ(dry->kept[2].commit, ids[3]);
  ASSERT_EQ(dry->removed.size(), 4u);
  EXPECT_EQ(dry->removed[0].commit, ids[5]);
  EXPECT_EQ(repo_->History("vol")->size(), 7u);

  auto r = Forget(*repo_, "vol", p, /*dry_run=*/false);
  HFS_ASSERT_OK(r.status());
  auto hist = repo_->History("vol");
  HFS_ASSERT_OK(hist.status());
  ASSERT_EQ(hist->size(), 3u);
  EXPECT_EQ((*hist)[0].commit, ids[6]);
  EXPECT_EQ((*hist)[2].commit, ids[3]);
  EXPECT_EQ(*repo_->Resolve("keepme"), ids[0]);
  auto head = repo_->Head("vol");
  EXPECT_EQ(**head, ids[6]);

  EXPECT_EQ(Forget(*repo_, "vol", ForgetPolicy{}, false).status().code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(Forget(*repo_, "novol", p, false).status().code(), Status::Code::kNotFound);
}

// ---------------------------------------------------------------- gc on LMDB
// The same protocol on a real LmdbStore: roots that appear after marking are
// marked with read transactions opened inside the sweep's write transaction.

class GcLmdbTest : public ::testing::Test {
 protected:
  void SetUp() override {
    LmdbOptions o;
    o.create_if_missing = true;
    o.initial_map_size = 64ull << 20;
    auto s = LmdbStore::Open(dir_.path() + "/store", o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    lmdb_ = std::move(*s);
    store_ = std::make_unique<HookedStore>(*lmdb_);
    HFS_ASSERT_OK(Repository::Init(*store_, RepoConfig{}));
    HFS_ASSERT_OK_AND_ASSIGN(repo_, Repository::Open(*store_));
  }

  // A commit whose root holds `files` (name -> content).
  static Result<Digest> MakeCommit(Repository& repo, const std::map<std::string, std::string>& files,
                                   const std::string& desc) {
    ObjectWriter w(repo.store(), 0);
    std::vector<Entry> entries;
    for (const auto& [name, content] : files) {
      Entry e;
      e.name = name;
      e.inode.type = FileType::kRegular;
      e.inode.mode = 0644;
      HASHFS_ASSIGN_OR_RETURN(Digest d, w.Put(content, ObjectKind::kData));
      HASHFS_RETURN_IF_ERROR(file_manifest::SetContent(w, {{d, content.size()}}, &e.inode));
      entries.push_back(std::move(e));
    }
    Commit c;
    c.root.type = FileType::kDirectory;
    c.root.mode = 0755;
    HASHFS_ASSIGN_OR_RETURN(c.root.content, dir_tree::Build(w, std::move(entries)));
    c.description = desc;
    HASHFS_ASSIGN_OR_RETURN(Digest id, w.Put(EncodeCommit(c), ObjectKind::kMeta));
    HASHFS_RETURN_IF_ERROR(w.Flush());
    return id;
  }
  // Makes c the head of "vol" the way writers do: on Stale, check the commit
  // is still complete and retry with the new epoch.
  static Status AdvanceVol(Repository& repo, const Digest& c) {
    for (;;) {
      HASHFS_ASSIGN_OR_RETURN(uint64_t epoch, repo.GcEpoch());
      HASHFS_ASSIGN_OR_RETURN(auto head, repo.Head("vol"));
      Status s = repo.Advance("vol", head, c, epoch);
      if (s.code() == Status::Code::kStale) {
        HASHFS_RETURN_IF_ERROR(CheckComplete(repo, repo.getter(), c));
        continue;
      }
      return s;
    }
  }
  void PutOld(std::string_view plain) {
    PreparedObject o = PrepareObject(plain, ObjectKind::kData, 0);
    o.stored = PatchTime(std::move(o.stored), static_cast<uint64_t>(std::time(nullptr)) - 3600);
    HFS_ASSERT_OK(lmdb_->PutBatch(std::span<const PreparedObject>(&o, 1)));
  }
  bool Has(const Digest& d) {
    auto r = lmdb_->Contains(d);
    return r.ok() && *r;
  }

  testing::TempDir dir_;
  std::unique_ptr<LmdbStore> lmdb_;
  std::unique_ptr<HookedStore> store_;
  std::unique_ptr<Repository> repo_;
};

TEST_F(GcLmdbTest, MarksARootCommittedBetweenMarkingAndTheSweep) {
  std::map<std::string, std::string> files;
  for (int i = 0; i < 50; i++) files["f" + std::to_string(i)] = "content " + std::to_string(i);
  HFS_ASSERT_OK_AND_ASSIGN(Digest base, MakeCommit(*repo_, files, "base"));
  HFS_ASSERT_OK(AdvanceVol(*repo_, base));
  PutOld("garbage");
  Digest late;
  int n = 0;
  std::function<void()> hook = [&] {
    files["new"] = "late " + std::to_string(n++);
    auto c = MakeCommit(*repo_, files, "late");
    HFS_ASSERT_OK(c.status());
    late = *c;
    HFS_ASSERT_OK(AdvanceVol(*repo_, late));
    store_->before_sweep = hook;
  };
  store_->before_sweep = hook;
  auto r = CollectGarbage(*repo_);
  store_->before_sweep = nullptr;
  HFS_ASSERT_OK(r.status());
  EXPECT_EQ(r->sweeps, 1);
  EXPECT_EQ(r->late_roots, 1u);
  EXPECT_EQ(r->deleted, 1u);
  EXPECT_FALSE(Has(Sha256Of("garbage")));
  EXPECT_TRUE(r->problems.empty()) << r->problems[0];
  HFS_EXPECT_OK(CheckComplete(*repo_, repo_->getter(), late));
}

// A writer committing as fast as it can beside repeated collections (the
// situation of a busy mount): every collection completes, nothing the
// writer's commits reach is lost.
TEST_F(GcLmdbTest, CompletesBesideAWriterThatCommitsContinuously) {
  std::map<std::string, std::string> files;
  for (int i = 0; i < 500; i++) files["f" + std::to_string(i)] = "content " + std::to_string(i);
  HFS_ASSERT_OK_AND_ASSIGN(Digest base, MakeCommit(*repo_, files, "base"));
  HFS_ASSERT_OK(AdvanceVol(*repo_, base));
  std::atomic<bool> stop{false};
  std::atomic<int> commits{0};
  Status writer_status;
  std::thread writer([&] {
    auto repo = Repository::Open(*store_);
    if (!repo.ok()) {
      writer_status = repo.status();
      return;
    }
    std::map<std::string, std::string> mine = files;
    for (int i = 0; !stop; i++) {
      mine["f" + std::to_string(i % 500)] = "rewritten " + std::to_string(i);
      auto c = MakeCommit(**repo, mine, "churn");
      Status s = c.ok() ? AdvanceVol(**repo, *c) : c.status();
      if (!s.ok()) {
        writer_status = s;
        return;
      }
      commits++;
    }
  });
  uint64_t late = 0;
  auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (int i = 0; (i < 5 || commits < 50) && std::chrono::steady_clock::now() < until; i++) {
    auto r = CollectGarbage(*repo_);
    HFS_EXPECT_OK(r.status());
    if (!r.ok()) break;
    EXPECT_TRUE(r->problems.empty()) << r->problems[0];
    late += r->late_roots;
  }
  stop = true;
  writer.join();
  HFS_ASSERT_OK(writer_status);
  EXPECT_GT(commits.load(), 0);
  std::printf("[gc beside a writer] %d commits, %llu roots marked inside a sweep\n", commits.load(),
              static_cast<unsigned long long>(late));
  HFS_ASSERT_OK_AND_ASSIGN(auto kept, repo_->KeptCommits());
  for (const auto& c : kept) HFS_EXPECT_OK(CheckComplete(*repo_, repo_->getter(), c));
}

}  // namespace
}  // namespace hashfs
