// Filesystem (the mount's FUSE-free core) driven directly, without a kernel
// or a mount: properties that a mount cannot show deterministically.
#include "fusefs/filesystem.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <mutex>

#include "cas/memory_store.h"
#include "tests/forwarding_store.h"
#include "tree/chunker.h"
#include "tree/codec.h"
#include "tree/dir_tree.h"
#include "tree/repository.h"

namespace hashfs::fusefs {
namespace {

using namespace std::chrono_literals;

// A store whose next Contains, once armed, parks inside the store until
// released. ObjectWriter::Put asks Contains of every object it has not seen,
// so the first new object anyone puts after Arm() parks its writer there.
class ParkingStore : public ForwardingStore {
 public:
  Result<bool> Contains(const Digest& d) override {
    std::unique_lock lk(mu_);
    if (armed_) {
      armed_ = false;
      parked_ = true;
      cv_.notify_all();
      cv_.wait(lk, [&] { return released_; });
    }
    lk.unlock();
    return ForwardingStore::Contains(d);
  }
  // Once armed with a digest, the next Get of it parks instead.
  Result<std::string> Get(const Digest& d) override {
    std::unique_lock lk(mu_);
    if (get_armed_ && d == get_digest_) {
      get_armed_ = false;
      parked_ = true;
      cv_.notify_all();
      cv_.wait(lk, [&] { return released_; });
    }
    lk.unlock();
    return ForwardingStore::Get(d);
  }
  void Arm() {
    std::lock_guard lk(mu_);
    armed_ = true;
    parked_ = released_ = false;
  }
  void ArmGet(const Digest& d) {
    std::lock_guard lk(mu_);
    get_armed_ = true;
    get_digest_ = d;
    parked_ = released_ = false;
  }
  bool WaitParked(std::chrono::seconds limit) {
    std::unique_lock lk(mu_);
    return cv_.wait_for(lk, limit, [&] { return parked_; });
  }
  void Release() {
    std::lock_guard lk(mu_);
    armed_ = get_armed_ = false;
    released_ = true;
    cv_.notify_all();
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool armed_ = false, parked_ = false, released_ = false;
  bool get_armed_ = false;
  Digest get_digest_;
};

class FilesystemTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(Repository::Init(store_, RepoConfig{}).ok());
    auto repo = Repository::Open(store_);
    ASSERT_TRUE(repo.ok()) << repo.status().ToString();
    repo_ = std::move(*repo);
    MountConfig cfg;
    cfg.volume = "vol";
    cfg.store_dir = "/";
    auto fs = Filesystem::Open(*repo_, cfg);
    ASSERT_TRUE(fs.ok()) << fs.status().ToString();
    fs_ = std::move(*fs);
  }
  void TearDown() override {
    store_.Release();  // never leave the committer parked
    fs_.reset();
  }

  // Names in the root of the volume's head commit.
  std::vector<std::string> HeadRootNames() {
    std::vector<std::string> names;
    auto head = repo_->Head("vol");
    EXPECT_TRUE(head.ok() && head->has_value());
    if (!head.ok() || !head->has_value()) return names;
    auto c = repo_->LoadCommit(**head);
    EXPECT_TRUE(c.ok());
    if (!c.ok()) return names;
    auto entries = dir_tree::ListSorted(repo_->getter(), c->root.content);
    EXPECT_TRUE(entries.ok()) << entries.status().ToString();
    if (entries.ok())
      for (const auto& e : *entries) names.push_back(e.name);
    return names;
  }

  // Starts a commit, waits until its first new object is parked in the
  // store, runs `requests` on another thread and expects them to finish
  // while it is parked (`what`: the commit step that must not hold the lock);
  // then releases the commit and expects it to succeed.
  void ExpectRequestsFinishWhileACommitIsParked(const std::function<Status()>& requests, const char* what) {
    store_.Arm();
    auto commit = std::async(std::launch::async, [&] { return fs_->Sync(); });
    ASSERT_TRUE(store_.WaitParked(30s)) << "the commit put no new object";
    auto done = std::async(std::launch::async, requests);
    const bool finished = done.wait_for(30s) == std::future_status::ready;
    store_.Release();
    EXPECT_TRUE(finished) << "requests waited for a commit's " << what << ": it holds the mount's lock";
    Status rs = done.get();
    EXPECT_TRUE(rs.ok()) << rs.ToString();
    Status cs = commit.get();
    ASSERT_TRUE(cs.ok()) << cs.ToString();
  }

  // A 100 MiB sparse file (holes: a chunk per 4 MiB window, 25 > the 16
  // held inline, so a manifest) and a directory committed, then a fresh
  // mount that has read no file's chunks yet. Returns the file's inode in the
  // new mount (0 on failure) and sets `manifest` to its manifest root.
  uint64_t MakeSparseFileAndRemount(Digest* manifest) {
    auto created = fs_->Create(kRootIno, "sparse", 0644, O_WRONLY, me_);
    EXPECT_TRUE(created.ok()) << created.status().ToString();
    if (!created.ok()) return 0;
    SetAttrRequest grow;
    grow.size = uint64_t{100} << 20;
    EXPECT_TRUE(fs_->SetAttr(created->first.ino, grow).ok());
    EXPECT_TRUE(fs_->Release(created->first.ino, created->second).ok());
    EXPECT_TRUE(fs_->MakeDir(kRootIno, "d", 0755, me_).ok());
    EXPECT_TRUE(fs_->Sync().ok());
    fs_.reset();
    MountConfig cfg;
    cfg.volume = "vol";
    cfg.store_dir = "/";
    auto fs = Filesystem::Open(*repo_, cfg);
    EXPECT_TRUE(fs.ok()) << fs.status().ToString();
    if (!fs.ok()) return 0;
    fs_ = std::move(*fs);
    auto head = repo_->Head("vol");
    if (!head.ok() || !head->has_value()) return 0;
    auto c = repo_->LoadCommit(**head);
    if (!c.ok()) return 0;
    auto entries = dir_tree::ListSorted(repo_->getter(), c->root.content);
    if (!entries.ok()) return 0;
    auto e = std::find_if(entries->begin(), entries->end(), [](const Entry& x) { return x.name == "sparse"; });
    if (e == entries->end() || e->inode.layout != ContentLayout::kManifest) {
      ADD_FAILURE() << "the sparse file has no manifest";
      return 0;
    }
    *manifest = e->inode.content;
    auto looked = fs_->Lookup(kRootIno, "sparse");
    EXPECT_TRUE(looked.ok()) << looked.status().ToString();
    return looked.ok() ? looked->ino : 0;
  }
  // With a request on `ino` parked inside the store: a lookup, a getattr and
  // a whole create/write/close finish; then the store is released.
  void ExpectOthersFinish(uint64_t ino) {
    auto others = std::async(std::launch::async, [&]() -> Status {
      HASHFS_RETURN_IF_ERROR(fs_->Lookup(kRootIno, "d").status());
      HASHFS_RETURN_IF_ERROR(fs_->GetAttr(ino).status());
      HASHFS_ASSIGN_OR_RETURN(auto f, fs_->Create(kRootIno, "g", 0644, O_WRONLY, me_));
      HASHFS_RETURN_IF_ERROR(fs_->Write(f.first.ino, f.second, 0, "meanwhile", 9).status());
      return fs_->Release(f.first.ino, f.second);
    });
    const bool finished = others.wait_for(30s) == std::future_status::ready;
    store_.Release();
    EXPECT_TRUE(finished) << "requests waited for a manifest walk: it holds the mount's lock";
    Status os = others.get();
    EXPECT_TRUE(os.ok()) << os.ToString();
  }

  ParkingStore store_;
  std::unique_ptr<Repository> repo_;
  std::unique_ptr<Filesystem> fs_;
  const Caller me_{static_cast<uint32_t>(getuid()), static_cast<uint32_t>(getgid())};
};

// Opening or truncating a stored file reads its chunk list (manifest nodes:
// up to 2^24 chunks, or fetched from a remote in a lazy clone) before taking
// the mount's lock. Here the manifest root's read parks inside the store;
// other requests, another file's whole create/write/close among them, must
// finish meanwhile, and the open (or truncate) then succeeds. (Before: the
// walk ran under the lock, and these tests fail so, tried.)
TEST_F(FilesystemTest, OpeningAFileReadsItsChunkListOutsideTheLock) {
  Digest manifest;
  const uint64_t ino = MakeSparseFileAndRemount(&manifest);
  ASSERT_NE(ino, 0u);
  store_.ArmGet(manifest);
  auto opened = std::async(std::launch::async, [&] { return fs_->Open(ino, O_RDONLY); });
  ASSERT_TRUE(store_.WaitParked(30s)) << "the open read no manifest node";
  ExpectOthersFinish(ino);
  auto fh = opened.get();
  ASSERT_TRUE(fh.ok()) << fh.status().ToString();
  char buf[16];
  auto n = fs_->Read(ino, *fh, (uint64_t{100} << 20) - 8, 16, buf);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 8u);
  EXPECT_EQ(std::string(buf, 8), std::string(8, '\0'));
  ASSERT_TRUE(fs_->Release(ino, *fh).ok());
}

TEST_F(FilesystemTest, TruncatingAFileNotOpenReadsItsChunkListOutsideTheLock) {
  Digest manifest;
  const uint64_t ino = MakeSparseFileAndRemount(&manifest);
  ASSERT_NE(ino, 0u);
  store_.ArmGet(manifest);
  SetAttrRequest shrink;
  shrink.size = uint64_t{50} << 20;
  auto truncated = std::async(std::launch::async, [&] { return fs_->SetAttr(ino, shrink); });
  ASSERT_TRUE(store_.WaitParked(30s)) << "the truncate read no manifest node";
  ExpectOthersFinish(ino);
  auto st = truncated.get();
  ASSERT_TRUE(st.ok()) << st.status().ToString();
  EXPECT_EQ(st->st_size, int64_t{50} << 20);
  ASSERT_TRUE(fs_->Sync().ok());
  auto again = fs_->GetAttr(ino);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->st_size, int64_t{50} << 20);
}

// A commit plans under the mount's lock and writes its directories' new nodes
// without it (design.md, "From changes to commits"), so requests never wait
// for a commit's encoding, hashing, compression or store I/O. Here the
// commit's first new object parks inside the store; lookups, a mkdir and a
// whole create/write/close must still finish, and go into the next commit.
TEST_F(FilesystemTest, RequestsGoOnWhileACommitWritesItsDirectories) {
  ASSERT_TRUE(fs_->MakeDir(kRootIno, "a", 0755, me_).ok());
  ExpectRequestsFinishWhileACommitIsParked(
      [&]() -> Status {
        HASHFS_RETURN_IF_ERROR(fs_->Lookup(kRootIno, "a").status());
        HASHFS_RETURN_IF_ERROR(fs_->GetAttr(kRootIno).status());
        HASHFS_RETURN_IF_ERROR(fs_->MakeDir(kRootIno, "b", 0755, me_).status());
        HASHFS_ASSIGN_OR_RETURN(auto created, fs_->Create(kRootIno, "f", 0644, O_WRONLY, me_));
        const uint64_t ino = created.first.ino, fh = created.second;
        HASHFS_RETURN_IF_ERROR(fs_->Write(ino, fh, 0, "while parked", 12).status());
        HASHFS_RETURN_IF_ERROR(fs_->Flush(ino, fh));
        return fs_->Release(ino, fh);
      },
      "directory writes (Realize)");

  ASSERT_TRUE(fs_->Sync().ok());
  EXPECT_EQ(HeadRootNames(), (std::vector<std::string>{"a", "b", "f"}));
  auto f = fs_->Lookup(kRootIno, "f");
  ASSERT_TRUE(f.ok());
  auto fh = fs_->Open(f->ino, O_RDONLY);
  ASSERT_TRUE(fh.ok());
  char buf[32] = {};
  auto n = fs_->Read(f->ino, *fh, 0, sizeof buf, buf);
  ASSERT_TRUE(n.ok());
  EXPECT_EQ(std::string(buf, *n), "while parked");
  EXPECT_TRUE(fs_->Release(f->ino, *fh).ok());
}

// The committer chunks, hashes and compresses closed files with few dirty
// pages before it takes the mount's lock (PreflushContent): while the first
// chunk's object is parked in the store, other requests finish.
TEST_F(FilesystemTest, RequestsGoOnWhileACommitChunksClosedFiles) {
  auto created = fs_->Create(kRootIno, "small", 0644, O_WRONLY, me_);
  ASSERT_TRUE(created.ok());
  const std::string data(20000, 'x');
  ASSERT_TRUE(fs_->Write(created->first.ino, created->second, 0, data.data(), data.size()).ok());
  ASSERT_TRUE(fs_->Flush(created->first.ino, created->second).ok());
  ASSERT_TRUE(fs_->Release(created->first.ino, created->second).ok());
  ExpectRequestsFinishWhileACommitIsParked(
      [&]() -> Status {
        HASHFS_RETURN_IF_ERROR(fs_->Lookup(kRootIno, "small").status());
        return fs_->MakeDir(kRootIno, "d", 0755, me_).status();
      },
      "chunking of closed files (PreflushContent)");
  ASSERT_TRUE(fs_->Sync().ok());
  EXPECT_EQ(HeadRootNames(), (std::vector<std::string>{"d", "small"}));
}

// A manifest's nodes can repeat, so a few objects can describe a file of
// any size in any number of chunks. CraftedFile builds such a store: volume
// "vol" holds one file "huge" whose manifest has `levels` levels above
// `leaf`, each node repeating the level below 8192 times.
struct CraftedFile {
  MemoryStore store;
  std::unique_ptr<Repository> repo;
  uint64_t size = 0;

  void Build(const std::string& leaf, int levels) {
    ASSERT_TRUE(Repository::Init(store, RepoConfig{}).ok());
    auto r = Repository::Open(store);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    repo = std::move(*r);
    ObjectWriter w(store, 3);
    auto ld = w.Put(leaf, ObjectKind::kData);
    ASSERT_TRUE(ld.ok());
    ChunkRef ref{*ld, leaf.size()};
    for (int level = 0; level < levels; level++) {
      FileNode node;
      node.level = static_cast<uint8_t>(level);
      node.refs.assign(8192, ref);
      auto d = w.Put(EncodeFileNode(node), ObjectKind::kMeta);
      ASSERT_TRUE(d.ok());
      ref = {*d, ref.size * 8192};
    }
    size = ref.size;
    Inode file;
    file.type = FileType::kRegular;
    file.mode = 0644;
    file.layout = ContentLayout::kManifest;
    file.content = ref.digest;
    file.size = ref.size;
    auto root = dir_tree::Build(w, {Entry{"huge", 0, file}});
    ASSERT_TRUE(root.ok());
    Commit c;
    c.root.type = FileType::kDirectory;
    c.root.mode = 0755;
    c.root.content = *root;
    c.time_ns = 1;
    c.description = "crafted";
    auto id = w.Put(EncodeCommit(c), ObjectKind::kMeta);
    ASSERT_TRUE(id.ok());
    ASSERT_TRUE(w.Flush().ok());
    auto epoch = repo->GcEpoch();
    ASSERT_TRUE(epoch.ok());
    ASSERT_TRUE(repo->Advance("vol", std::nullopt, *id, *epoch).ok());
  }

  std::unique_ptr<Filesystem> Mount(uint64_t max_open_chunks = MountConfig{}.max_open_chunks) {
    MountConfig cfg;
    cfg.max_open_chunks = max_open_chunks;
    cfg.volume = "vol";
    cfg.store_dir = "/";
    cfg.read_only = true;
    auto fs = Filesystem::Open(*repo, cfg);
    EXPECT_TRUE(fs.ok()) << fs.status().ToString();
    return fs.ok() ? std::move(*fs) : nullptr;
  }
};

// Runs fn, or aborts the test binary if it has not returned after 120 s (a
// walk of 2^39 chunks cannot be stopped).
template <typename F>
auto WithinTwoMinutes(const char* what, F fn) {
  auto f = std::async(std::launch::async, fn);
  if (f.wait_for(120s) != std::future_status::ready) {
    std::fprintf(stderr, "%s did not finish in 120 s\n", what);
    std::abort();
  }
  return f.get();
}

// A file of 2 EiB in 2^39 chunks, from a crafted store, though a real sparse
// file that large would look the same. getattr counts holes for st_blocks by
// walking the manifest, under the mount's lock; it must give up after a
// bounded number of chunks (and count no holes), not walk them all. Without
// the bound the lookup below runs for hours.
TEST(FilesystemHostileTest, StatOfAFileClaimingExabytesStaysQuick) {
  CraftedFile crafted;
  const ChunkParams p;  // RepoConfig{}'s
  ASSERT_NO_FATAL_FAILURE(crafted.Build(std::string(ZeroChunkLength(p.max_size, p), '\0'), 3));
  ASSERT_EQ(crafted.size, uint64_t{1} << 61);
  auto fs = crafted.Mount();
  ASSERT_TRUE(fs);
  auto e = WithinTwoMinutes("lookup of a file claiming 2 EiB", [&] { return fs->Lookup(1, "huge"); });
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  EXPECT_EQ(static_cast<uint64_t>(e->attr.st_size), uint64_t{1} << 61);
  EXPECT_EQ(static_cast<uint64_t>(e->attr.st_blocks), (uint64_t{1} << 61) / 512) << "holes counted past the bound";
}

// Opening it is refused (EFBIG) before its chunk list is read: holding it
// would take terabytes of memory.
TEST(FilesystemHostileTest, OpeningAFileClaimingExabytesFailsAtOnce) {
  CraftedFile crafted;
  const ChunkParams p;
  ASSERT_NO_FATAL_FAILURE(crafted.Build(std::string(ZeroChunkLength(p.max_size, p), '\0'), 3));
  auto fs = crafted.Mount();
  ASSERT_TRUE(fs);
  auto e = fs->Lookup(1, "huge");
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  auto fh = WithinTwoMinutes("open of a file claiming 2 EiB", [&] { return fs->Open(e->ino, O_RDONLY); });
  ASSERT_FALSE(fh.ok());
  EXPECT_EQ(fh.status().code(), Status::Code::kTooBig) << fh.status().ToString();
}

// A small file (64 MiB) claiming 2^26 one-byte chunks: within the size
// limit, but its chunk list alone would take gigabytes. Opening it fails once
// max_open_chunks chunks are read (here 2^16, so the test is quick; the
// default 2^24 takes 7 s); without that cap it allocates ~4 GiB and succeeds.
TEST(FilesystemHostileTest, OpeningAFileOfTooManyChunksStopsAtTheCap) {
  CraftedFile crafted;
  ASSERT_NO_FATAL_FAILURE(crafted.Build("x", 2));
  ASSERT_EQ(crafted.size, uint64_t{1} << 26);  // bytes, and chunks
  ASSERT_GT(crafted.size, MountConfig{}.max_open_chunks);
  auto fs = crafted.Mount(uint64_t{1} << 16);
  ASSERT_TRUE(fs);
  auto e = fs->Lookup(1, "huge");
  ASSERT_TRUE(e.ok()) << e.status().ToString();
  auto fh = fs->Open(e->ino, O_RDONLY);
  ASSERT_FALSE(fh.ok());
  EXPECT_EQ(fh.status().code(), Status::Code::kTooBig) << fh.status().ToString();
}

// Writes, truncates and fallocates past kMaxFileSize fail with kTooBig and
// change nothing.
TEST_F(FilesystemTest, FilesStopAtTheMaximumSize) {
  auto created = fs_->Create(kRootIno, "f", 0644, O_RDWR, me_);
  ASSERT_TRUE(created.ok());
  const uint64_t ino = created->first.ino, fh = created->second, max = Filesystem::kMaxFileSize;
  ASSERT_TRUE(fs_->Write(ino, fh, 0, "abc", 3).ok());
  EXPECT_EQ(fs_->Write(ino, fh, max, "x", 1).status().code(), Status::Code::kTooBig);
  EXPECT_EQ(fs_->Write(ino, fh, UINT64_MAX - 1, "xy", 2).status().code(), Status::Code::kTooBig);
  SetAttrRequest r;
  r.size = max + 1;
  EXPECT_EQ(fs_->SetAttr(ino, r).status().code(), Status::Code::kTooBig);
  EXPECT_EQ(fs_->Fallocate(ino, 0, max - 1, 2).code(), Status::Code::kTooBig);
  EXPECT_EQ(fs_->Fallocate(ino, 0, 1, UINT64_MAX).code(), Status::Code::kTooBig);
  auto st = fs_->GetAttr(ino);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(st->st_size, 3);
  // A write across the maximum is short.
  auto n = fs_->Write(ino, fh, max - 1, "xy", 2);
  ASSERT_TRUE(n.ok()) << n.status().ToString();
  EXPECT_EQ(*n, 1u);
  st = fs_->GetAttr(ino);
  ASSERT_TRUE(st.ok());
  EXPECT_EQ(static_cast<uint64_t>(st->st_size), max);
  r.size = 3;
  ASSERT_TRUE(fs_->SetAttr(ino, r).ok());
  EXPECT_TRUE(fs_->Release(ino, fh).ok());
}

}  // namespace
}  // namespace hashfs::fusefs
