// Tests of the repository view of a store (tree/repository.h): config,
// volumes and history, snapshots, REF resolution, writer sessions. Every
// test runs against MemoryStore and against a real LmdbStore.
#include "tree/repository.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <unordered_map>

#include "cas/lmdb_store.h"
#include "cas/memory_store.h"
#include "test_util.h"

namespace hashfs {
namespace {

using testing::TempDir;

std::string HostName() {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

class RepositoryTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      dir_ = std::make_unique<TempDir>();
      LmdbOptions o;
      o.create_if_missing = true;
      o.initial_map_size = 64ull << 20;
      auto s = LmdbStore::Open(dir_->path() + "/store", o);
      ASSERT_TRUE(s.ok()) << s.status().ToString();
      store_ = std::move(*s);
    } else {
      store_ = std::make_unique<MemoryStore>();
    }
  }

  // Initializes the store and opens it.
  void InitRepo() {
    RepoConfig cfg;
    HFS_ASSERT_OK(Repository::Init(*store_, cfg));
    auto r = Repository::Open(*store_);
    ASSERT_TRUE(r.ok()) << r.status().ToString();
    repo_ = std::move(*r);
    w_ = std::make_unique<ObjectWriter>(*store_, 3);
  }

  // Writes a commit whose root is the empty directory; distinct per `n`.
  Digest MakeCommit(int n, const Digest& parent = Digest::Zero()) {
    auto empty = dir_tree::Empty(*w_);
    EXPECT_TRUE(empty.ok());
    Commit c;
    c.root.type = FileType::kDirectory;
    c.root.mode = 0755;
    c.root.content = *empty;
    c.parent = parent;
    c.time_ns = 1700000000000000000 + n;
    c.description = "commit " + std::to_string(n);
    auto d = w_->Put(EncodeCommit(c), ObjectKind::kMeta);
    EXPECT_TRUE(d.ok());
    EXPECT_TRUE(w_->Flush().ok());
    return *d;
  }

  uint64_t Epoch() {
    auto e = repo_->GcEpoch();
    EXPECT_TRUE(e.ok());
    return e.ok() ? *e : 0;
  }

  // Makes `n` commits on `vol`; returns them oldest first.
  std::vector<Digest> Commits(const std::string& vol, int n, int salt = 0) {
    std::vector<Digest> out;
    std::optional<Digest> head;
    for (int i = 0; i < n; i++) {
      Digest c = MakeCommit(salt * 1000 + i, head ? *head : Digest::Zero());
      Status s = repo_->Advance(vol, head, c, Epoch());
      EXPECT_TRUE(s.ok()) << s.ToString();
      head = c;
      out.push_back(c);
    }
    return out;
  }

  void BumpEpoch() {
    HFS_ASSERT_OK(store_->Update([](RefTxn& t) -> Status {
      HASHFS_ASSIGN_OR_RETURN(auto v, t.Get("gc/epoch"));
      uint64_t e = v ? DecodeBE64(*v) : 0;
      return t.Put("gc/epoch", EncodeBE64(e + 1));
    }));
  }

  std::optional<std::string> Ref(const std::string& key) {
    std::optional<std::string> out;
    EXPECT_TRUE(store_
                    ->View([&](RefTxn& t) -> Status {
                      HASHFS_ASSIGN_OR_RETURN(out, t.Get(key));
                      return Status::Ok();
                    })
                    .ok());
    return out;
  }

  std::vector<std::pair<std::string, std::string>> RefsWithPrefix(const std::string& prefix) {
    std::vector<std::pair<std::string, std::string>> out;
    EXPECT_TRUE(store_
                    ->View([&](RefTxn& t) -> Status {
                      HASHFS_ASSIGN_OR_RETURN(out, t.List(prefix));
                      return Status::Ok();
                    })
                    .ok());
    return out;
  }

  std::unique_ptr<TempDir> dir_;
  std::unique_ptr<ObjectStore> store_;
  std::unique_ptr<Repository> repo_;
  std::unique_ptr<ObjectWriter> w_;
};

// ------------------------------------------------------------- Init / Open

TEST_P(RepositoryTest, InitAndOpen) {
  EXPECT_EQ(Repository::Open(*store_).status().code(), Status::Code::kNotFound) << "empty store";
  RepoConfig cfg;
  cfg.chunking.min_size = 64 * 1024;
  cfg.chunking.avg_size = 256 * 1024;
  cfg.chunking.max_size = 1024 * 1024;
  cfg.zstd_level = 7;
  HFS_ASSERT_OK(Repository::Init(*store_, cfg));
  EXPECT_EQ(Repository::Init(*store_, RepoConfig{}).code(), Status::Code::kExists);
  HFS_ASSERT_OK_AND_ASSIGN(auto repo, Repository::Open(*store_));
  const RepoConfig& got = repo->config();
  EXPECT_EQ(got.chunking.min_size, cfg.chunking.min_size);
  EXPECT_EQ(got.chunking.avg_size, cfg.chunking.avg_size);
  EXPECT_EQ(got.chunking.max_size, cfg.chunking.max_size);
  EXPECT_EQ(got.zstd_level, 7);
  EXPECT_EQ(got.id.size(), 32u);
  EXPECT_EQ(got.id.find_first_not_of("0123456789abcdef"), std::string::npos) << got.id;
  EXPECT_GT(got.created_ns, 1600000000000000000);
  HFS_ASSERT_OK_AND_ASSIGN(uint64_t epoch, repo->GcEpoch());
  EXPECT_EQ(epoch, 0u);
  HFS_ASSERT_OK_AND_ASSIGN(auto vols, repo->Volumes());
  EXPECT_TRUE(vols.empty());
  // The config is JSON in the documented shape.
  auto raw = Ref("config");
  ASSERT_TRUE(raw.has_value());
  auto j = nlohmann::json::parse(*raw);
  EXPECT_EQ(j.at("format"), std::string(kRepoFormat));
  EXPECT_EQ(j.at("chunk_avg"), 256 * 1024);
  EXPECT_EQ(j.at("id"), got.id);
  auto ep = Ref("gc/epoch");
  ASSERT_TRUE(ep.has_value());
  EXPECT_EQ(*ep, std::string(8, '\0'));
  // A second store gets a different id.
  MemoryStore other;
  HFS_ASSERT_OK(Repository::Init(other, RepoConfig{}));
  HFS_ASSERT_OK_AND_ASSIGN(auto repo2, Repository::Open(other));
  EXPECT_NE(repo2->config().id, got.id);
}

TEST_P(RepositoryTest, InitRejectsBadConfig) {
  RepoConfig bad;
  bad.chunking.avg_size = 1000;  // not a power of two
  EXPECT_EQ(Repository::Init(*store_, bad).code(), Status::Code::kInvalidArgument);
  RepoConfig bad2;
  bad2.zstd_level = 20;
  EXPECT_EQ(Repository::Init(*store_, bad2).code(), Status::Code::kInvalidArgument);
  RepoConfig bad3;
  bad3.zstd_level = -1;
  EXPECT_EQ(Repository::Init(*store_, bad3).code(), Status::Code::kInvalidArgument);
  // Nothing was written.
  EXPECT_EQ(Repository::Open(*store_).status().code(), Status::Code::kNotFound);
}

TEST_P(RepositoryTest, OpenRefusesOtherFormatsAndMalformedConfig) {
  HFS_ASSERT_OK(Repository::Init(*store_, RepoConfig{}));
  auto raw = Ref("config");
  ASSERT_TRUE(raw.has_value());
  auto put_config = [&](const std::string& v) {
    HFS_ASSERT_OK(store_->Update([&](RefTxn& t) { return t.Put("config", v); }));
  };
  auto j = nlohmann::json::parse(*raw);
  j["format"] = "hashfs-repo-2";
  put_config(j.dump());
  EXPECT_EQ(Repository::Open(*store_).status().code(), Status::Code::kUnsupported);
  put_config("{not json");
  EXPECT_EQ(Repository::Open(*store_).status().code(), Status::Code::kCorruption);
  auto j2 = nlohmann::json::parse(*raw);
  j2.erase("chunk_min");
  put_config(j2.dump());
  EXPECT_EQ(Repository::Open(*store_).status().code(), Status::Code::kCorruption);
  auto j3 = nlohmann::json::parse(*raw);
  j3["chunk_avg"] = 1000;  // fails ChunkParams::Validate
  put_config(j3.dump());
  EXPECT_FALSE(Repository::Open(*store_).ok());
  put_config(*raw);
  HFS_EXPECT_OK(Repository::Open(*store_).status());
}

// ------------------------------------------------------------- ValidateName

TEST(ValidateNameTest, Cases) {
  for (const std::string& good :
       {std::string("a"), std::string("A"), std::string("0"), std::string("home"), std::string("vol-1.x_y"),
        std::string("2024-06-01"), std::string(128, 'v'), std::string("abcdefg"), std::string("deadbee"),
        std::string("deadbeefx"), std::string("x0123456789abcdef"), std::string("a..b"), std::string("a-")}) {
    EXPECT_TRUE(ValidateName(good).ok()) << good << ": " << ValidateName(good).ToString();
  }
  for (const std::string& bad :
       {std::string(""), std::string(129, 'v'), std::string("-a"), std::string(".a"), std::string("_a"),
        std::string("."), std::string(".."), std::string("a/b"), std::string("a b"), std::string("a~1"),
        std::string("a:b"), std::string("a\0b", 3), std::string("\xc3\xa9t\xc3\xa9"), std::string("a\n"),
        std::string("deadbeef"), std::string("DEADBEEF"), std::string("0123456789"), std::string("12345678"),
        std::string(64, 'a'), std::string("AbCdEf0123")}) {
    EXPECT_EQ(ValidateName(bad).code(), Status::Code::kInvalidArgument) << testing::ToHex(bad);
  }
}

TEST(BigEndianTest, RoundTrip) {
  for (uint64_t v : {uint64_t{0}, uint64_t{1}, uint64_t{0x0102030405060708}, ~uint64_t{0}}) {
    std::string s = EncodeBE64(v);
    ASSERT_EQ(s.size(), 8u);
    EXPECT_EQ(DecodeBE64(s), v);
  }
  EXPECT_EQ(EncodeBE64(0x0102030405060708), std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
  // Byte order sorts like the number (history keys rely on it).
  EXPECT_LT(EncodeBE64(255), EncodeBE64(256));
}

// ------------------------------------------------------------------ Advance

TEST_P(RepositoryTest, AdvanceCompareAndSwap) {
  InitRepo();
  Digest c1 = MakeCommit(1), c2 = MakeCommit(2), c3 = MakeCommit(3);
  HFS_ASSERT_OK_AND_ASSIGN(auto none, repo_->Head("home"));
  EXPECT_FALSE(none.has_value());
  // First commit: expected nullopt.
  HFS_ASSERT_OK(repo_->Advance("home", std::nullopt, c1, Epoch()));
  HFS_ASSERT_OK_AND_ASSIGN(auto head, repo_->Head("home"));
  ASSERT_TRUE(head.has_value());
  EXPECT_EQ(*head, c1);
  // The documented ref layout.
  auto vol = Ref("vol/home");
  ASSERT_TRUE(vol.has_value());
  EXPECT_EQ(*vol, std::string(c1.AsBytes()) + EncodeBE64(0));
  auto h0 = Ref("hist/home/" + EncodeBE64(0));
  ASSERT_TRUE(h0.has_value());
  EXPECT_EQ(*h0, std::string(c1.AsBytes()));

  // "Volume must not exist yet" fails once it exists.
  EXPECT_EQ(repo_->Advance("home", std::nullopt, c2, Epoch()).code(), Status::Code::kConflict);
  // Wrong expected head.
  EXPECT_EQ(repo_->Advance("home", c3, c2, Epoch()).code(), Status::Code::kConflict);
  // Expected head on a volume that does not exist.
  EXPECT_EQ(repo_->Advance("other", c1, c2, Epoch()).code(), Status::Code::kConflict);
  HFS_ASSERT_OK_AND_ASSIGN(head, repo_->Head("home"));
  EXPECT_EQ(*head, c1) << "failed Advance moved the head";
  HFS_ASSERT_OK_AND_ASSIGN(auto other, repo_->Head("other"));
  EXPECT_FALSE(other.has_value());

  // Correct expected head.
  HFS_ASSERT_OK(repo_->Advance("home", c1, c2, Epoch()));
  HFS_ASSERT_OK_AND_ASSIGN(head, repo_->Head("home"));
  EXPECT_EQ(*head, c2);
  EXPECT_EQ(*Ref("vol/home"), std::string(c2.AsBytes()) + EncodeBE64(1));
  // The same commit twice in a row is a new history entry.
  HFS_ASSERT_OK(repo_->Advance("home", c2, c2, Epoch()));
  HFS_ASSERT_OK_AND_ASSIGN(auto hist, repo_->History("home"));
  ASSERT_EQ(hist.size(), 3u);
  EXPECT_EQ(hist[0].seq, 2u);

  // Invalid volume names are refused.
  EXPECT_EQ(repo_->Advance("a/b", std::nullopt, c1, Epoch()).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(repo_->Advance("deadbeef", std::nullopt, c1, Epoch()).code(), Status::Code::kInvalidArgument);
  HFS_ASSERT_OK_AND_ASSIGN(auto vols, repo_->Volumes());
  EXPECT_EQ(vols, (std::vector<std::string>{"home"}));
}

TEST_P(RepositoryTest, AdvanceIsStaleAfterGc) {
  InitRepo();
  Digest c1 = MakeCommit(1), c2 = MakeCommit(2);
  const uint64_t e0 = Epoch();
  HFS_ASSERT_OK(repo_->Advance("home", std::nullopt, c1, e0));
  BumpEpoch();
  EXPECT_EQ(Epoch(), e0 + 1);
  EXPECT_EQ(repo_->Advance("home", c1, c2, e0).code(), Status::Code::kStale);
  EXPECT_EQ(repo_->Advance("new", std::nullopt, c2, e0).code(), Status::Code::kStale);
  HFS_ASSERT_OK_AND_ASSIGN(auto head, repo_->Head("home"));
  EXPECT_EQ(*head, c1);
  HFS_ASSERT_OK_AND_ASSIGN(auto nh, repo_->Head("new"));
  EXPECT_FALSE(nh.has_value());
  // An epoch from the future is stale too.
  EXPECT_EQ(repo_->Advance("home", c1, c2, e0 + 5).code(), Status::Code::kStale);
  // With the new epoch it goes through.
  HFS_ASSERT_OK(repo_->Advance("home", c1, c2, e0 + 1));
}

// ------------------------------------------------------------------ History

TEST_P(RepositoryTest, HistoryNewestFirstWithLimit) {
  InitRepo();
  auto cs = Commits("home", 5);
  HFS_ASSERT_OK_AND_ASSIGN(auto all, repo_->History("home"));
  ASSERT_EQ(all.size(), 5u);
  for (size_t i = 0; i < 5; i++) {
    EXPECT_EQ(all[i].seq, 4 - i);
    EXPECT_EQ(all[i].commit, cs[4 - i]);
  }
  HFS_ASSERT_OK_AND_ASSIGN(auto two, repo_->History("home", 2));
  ASSERT_EQ(two.size(), 2u);
  EXPECT_EQ(two[0].commit, cs[4]);
  EXPECT_EQ(two[1].commit, cs[3]);
  HFS_ASSERT_OK_AND_ASSIGN(auto many, repo_->History("home", 100));
  EXPECT_EQ(many.size(), 5u);
  EXPECT_EQ(repo_->History("nosuch").status().code(), Status::Code::kNotFound);
}

TEST_P(RepositoryTest, HistoriesOfVolumesWithSharedPrefixesStaySeparate) {
  InitRepo();
  // "a" is a prefix of "a.b", "a0" and "ab": their hist/ keys must not mix.
  auto a = Commits("a", 3, 1);
  auto ab = Commits("ab", 2, 2);
  auto adot = Commits("a.b", 4, 3);
  auto a0 = Commits("a0", 1, 4);
  auto am = Commits("a-", 2, 5);
  HFS_ASSERT_OK_AND_ASSIGN(auto ha, repo_->History("a"));
  ASSERT_EQ(ha.size(), 3u);
  EXPECT_EQ(ha[0].commit, a[2]);
  EXPECT_EQ(ha[2].commit, a[0]);
  HFS_ASSERT_OK_AND_ASSIGN(auto ha1, repo_->History("a", 1));
  ASSERT_EQ(ha1.size(), 1u);
  EXPECT_EQ(ha1[0].commit, a[2]);
  HFS_ASSERT_OK_AND_ASSIGN(auto hab, repo_->History("ab"));
  EXPECT_EQ(hab.size(), 2u);
  HFS_ASSERT_OK_AND_ASSIGN(auto hadot, repo_->History("a.b", 1));
  ASSERT_EQ(hadot.size(), 1u);
  EXPECT_EQ(hadot[0].commit, adot[3]);
  HFS_ASSERT_OK_AND_ASSIGN(auto ha0, repo_->History("a0"));
  ASSERT_EQ(ha0.size(), 1u);
  EXPECT_EQ(ha0[0].commit, a0[0]);
  HFS_ASSERT_OK_AND_ASSIGN(auto ham, repo_->History("a-", 5));
  ASSERT_EQ(ham.size(), 2u);
  EXPECT_EQ(ham[0].commit, am[1]);
  HFS_ASSERT_OK_AND_ASSIGN(auto r, repo_->Resolve("a~2"));
  EXPECT_EQ(r, a[0]);
  EXPECT_EQ(repo_->Resolve("a~3").status().code(), Status::Code::kNotFound);
  HFS_ASSERT_OK_AND_ASSIGN(auto vols, repo_->Volumes());
  EXPECT_EQ(vols, (std::vector<std::string>{"a", "a-", "a.b", "a0", "ab"}));
}

TEST_P(RepositoryTest, HistoryBeyond255CommitsKeepsOrder) {
  InitRepo();
  // Sequence numbers crossing a byte boundary (255 -> 256) still sort. Start
  // from a volume whose head is seq 250 (as after 251 commits).
  Digest c = MakeCommit(1);
  HFS_ASSERT_OK(store_->Update([&](RefTxn& t) -> Status {
    HASHFS_RETURN_IF_ERROR(t.Put("vol/v", std::string(c.AsBytes()) + EncodeBE64(250)));
    for (uint64_t s = 0; s <= 250; s++) HASHFS_RETURN_IF_ERROR(t.Put("hist/v/" + EncodeBE64(s), c.AsBytes()));
    return Status::Ok();
  }));
  for (int i = 0; i < 10; i++) {
    Digest n = MakeCommit(100 + i);
    HFS_ASSERT_OK(repo_->Advance("v", c, n, Epoch()));
    c = n;
  }
  HFS_ASSERT_OK_AND_ASSIGN(auto h, repo_->History("v", 3));
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[0].seq, 260u);
  EXPECT_EQ(h[0].commit, c);
  EXPECT_EQ(h[1].seq, 259u);
  EXPECT_EQ(h[2].seq, 258u);
  HFS_ASSERT_OK_AND_ASSIGN(auto all, repo_->History("v"));
  ASSERT_EQ(all.size(), 261u);
  for (size_t i = 0; i < all.size(); i++) EXPECT_EQ(all[i].seq, 260 - i);
  HFS_ASSERT_OK_AND_ASSIGN(Digest r, repo_->Resolve("v~10"));
  EXPECT_EQ(r, all[10].commit);
}

TEST_P(RepositoryTest, DropHistoryNeverDropsTheHead) {
  InitRepo();
  auto cs = Commits("home", 5);
  HFS_ASSERT_OK(repo_->DropHistory("home", {0, 2}));
  HFS_ASSERT_OK_AND_ASSIGN(auto h, repo_->History("home"));
  ASSERT_EQ(h.size(), 3u);
  EXPECT_EQ(h[0].seq, 4u);
  EXPECT_EQ(h[1].seq, 3u);
  EXPECT_EQ(h[2].seq, 1u);
  // The head's seq is refused, and the whole call is atomic: seq 1 survives.
  EXPECT_EQ(repo_->DropHistory("home", {1, 4}).code(), Status::Code::kInvalidArgument);
  HFS_ASSERT_OK_AND_ASSIGN(h, repo_->History("home"));
  EXPECT_EQ(h.size(), 3u);
  HFS_ASSERT_OK_AND_ASSIGN(auto head, repo_->Head("home"));
  EXPECT_EQ(*head, cs[4]);
  // Dropping absent seqs is fine; unknown volume is NotFound.
  HFS_EXPECT_OK(repo_->DropHistory("home", {0, 2, 77}));
  EXPECT_EQ(repo_->DropHistory("nosuch", {0}).code(), Status::Code::kNotFound);
  // VOLUME~N counts kept history entries.
  HFS_ASSERT_OK_AND_ASSIGN(auto r2, repo_->Resolve("home~2"));
  EXPECT_EQ(r2, cs[1]);
  // Dropped commits are no longer kept.
  HFS_ASSERT_OK_AND_ASSIGN(auto kept, repo_->KeptCommits());
  std::set<Digest> ks(kept.begin(), kept.end());
  EXPECT_EQ(ks, (std::set<Digest>{cs[1], cs[3], cs[4]}));
  // The next commit continues the sequence after the head.
  Digest c6 = MakeCommit(99);
  HFS_ASSERT_OK(repo_->Advance("home", cs[4], c6, Epoch()));
  HFS_ASSERT_OK_AND_ASSIGN(h, repo_->History("home", 1));
  EXPECT_EQ(h[0].seq, 5u);
}

// ---------------------------------------------------------------- Snapshots

TEST_P(RepositoryTest, SnapshotsShareTheVolumeNamespace) {
  InitRepo();
  auto cs = Commits("home", 2);
  Digest other = MakeCommit(50);
  HFS_ASSERT_OK(repo_->CreateSnapshot("before-upgrade", cs[0]));
  EXPECT_EQ(repo_->CreateSnapshot("before-upgrade", cs[1]).code(), Status::Code::kExists);
  EXPECT_EQ(repo_->CreateSnapshot("home", cs[1]).code(), Status::Code::kExists) << "name of a volume";
  EXPECT_EQ(repo_->Advance("before-upgrade", std::nullopt, other, Epoch()).code(), Status::Code::kExists)
      << "name of a snapshot";
  HFS_ASSERT_OK_AND_ASSIGN(auto none, repo_->Head("before-upgrade"));
  EXPECT_FALSE(none.has_value());
  EXPECT_EQ(repo_->CreateSnapshot("bad/name", cs[0]).code(), Status::Code::kInvalidArgument);
  EXPECT_EQ(repo_->CreateSnapshot("cafebabe", cs[0]).code(), Status::Code::kInvalidArgument);

  HFS_ASSERT_OK(repo_->CreateSnapshot("also", other));
  HFS_ASSERT_OK_AND_ASSIGN(auto snaps, repo_->Snapshots());
  ASSERT_EQ(snaps.size(), 2u);
  EXPECT_EQ(snaps[0].first, "also");
  EXPECT_EQ(snaps[0].second, other);
  EXPECT_EQ(snaps[1].first, "before-upgrade");
  EXPECT_EQ(snaps[1].second, cs[0]);
  HFS_ASSERT_OK_AND_ASSIGN(auto r, repo_->Resolve("before-upgrade"));
  EXPECT_EQ(r, cs[0]);

  // KeptCommits: union of histories and snapshots, deduplicated.
  HFS_ASSERT_OK_AND_ASSIGN(auto kept, repo_->KeptCommits());
  EXPECT_EQ(kept.size(), 3u);
  std::set<Digest> ks(kept.begin(), kept.end());
  EXPECT_EQ(ks, (std::set<Digest>{cs[0], cs[1], other}));

  HFS_ASSERT_OK(repo_->DeleteSnapshot("before-upgrade"));
  EXPECT_EQ(repo_->DeleteSnapshot("before-upgrade").code(), Status::Code::kNotFound);
  EXPECT_EQ(repo_->Resolve("before-upgrade").status().code(), Status::Code::kNotFound);
  // The name is free again, for a volume too.
  HFS_ASSERT_OK(repo_->Advance("before-upgrade", std::nullopt, other, Epoch()));
  HFS_ASSERT_OK_AND_ASSIGN(kept, repo_->KeptCommits());
  EXPECT_EQ(kept.size(), 3u) << "cs[0] is still in home's history";
}

// ------------------------------------------------------------------ Resolve

TEST_P(RepositoryTest, Resolve) {
  InitRepo();
  auto cs = Commits("home", 4);
  HFS_ASSERT_OK_AND_ASSIGN(Digest r, repo_->Resolve("home"));
  EXPECT_EQ(r, cs[3]);
  HFS_ASSERT_OK_AND_ASSIGN(r, repo_->Resolve("home~0"));
  EXPECT_EQ(r, cs[3]);
  HFS_ASSERT_OK_AND_ASSIGN(r, repo_->Resolve("home~1"));
  EXPECT_EQ(r, cs[2]);
  HFS_ASSERT_OK_AND_ASSIGN(r, repo_->Resolve("home~3"));
  EXPECT_EQ(r, cs[0]);
  EXPECT_EQ(repo_->Resolve("home~4").status().code(), Status::Code::kNotFound);
  EXPECT_EQ(repo_->Resolve("home~99").status().code(), Status::Code::kNotFound);
  EXPECT_EQ(repo_->Resolve("home~999999999").status().code(), Status::Code::kNotFound);
  EXPECT_EQ(repo_->Resolve("nosuch~1").status().code(), Status::Code::kNotFound);
  for (std::string bad : {"home~", "home~x", "home~-1", "home~1~2", "home~+1", "home~1234567890", "~"}) {
    auto rr = repo_->Resolve(bad);
    EXPECT_FALSE(rr.ok()) << bad;
    if (!rr.ok()) {
      EXPECT_TRUE(rr.status().code() == Status::Code::kInvalidArgument ||
                  rr.status().code() == Status::Code::kNotFound)
          << bad << ": " << rr.status().ToString();
    }
  }
  EXPECT_EQ(repo_->Resolve("").status().code(), Status::Code::kInvalidArgument);

  // Commit id prefixes (>= 8 hex digits) of kept commits.
  const std::string hex = cs[1].Hex();
  HFS_ASSERT_OK_AND_ASSIGN(r, repo_->Resolve(hex));
  EXPECT_EQ(r, cs[1]);
  HFS_ASSERT_OK_AND_ASSIGN(r, repo_->Resolve(hex.substr(0, 8)));
  EXPECT_EQ(r, cs[1]);
  HFS_ASSERT_OK_AND_ASSIGN(r, repo_->Resolve(hex.substr(0, 20)));
  EXPECT_EQ(r, cs[1]);
  std::string upper = hex.substr(0, 12);
  for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  HFS_ASSERT_OK_AND_ASSIGN(r, repo_->Resolve(upper));
  EXPECT_EQ(r, cs[1]);
  // Too short to be an id (and not a name).
  EXPECT_EQ(repo_->Resolve(hex.substr(0, 7)).status().code(), Status::Code::kNotFound);
  // Longer than a digest.
  EXPECT_FALSE(repo_->Resolve(hex + "0").ok());
  // A commit that exists in the store but is not kept is not resolvable.
  Digest loose = MakeCommit(777);
  EXPECT_EQ(repo_->Resolve(loose.Hex().substr(0, 10)).status().code(), Status::Code::kNotFound);
  EXPECT_EQ(repo_->Resolve(loose.Hex()).status().code(), Status::Code::kNotFound);
  // No such prefix, garbage.
  std::string none = hex.substr(0, 8);
  none[0] = none[0] == '0' ? '1' : '0';
  bool collides = false;
  for (const auto& c : cs) collides |= c.Hex().starts_with(none);
  if (!collides) {
    EXPECT_EQ(repo_->Resolve(none).status().code(), Status::Code::kNotFound);
  }
  for (std::string garbage : {"!!", "no such thing", "home/x", "..", "zzzzzzzzzz"}) {
    auto g = repo_->Resolve(garbage);
    EXPECT_TRUE(g.status().code() == Status::Code::kNotFound || g.status().code() == Status::Code::kInvalidArgument)
        << garbage << ": " << g.status().ToString();
  }
  // Resolved commits load.
  HFS_ASSERT_OK_AND_ASSIGN(Commit c, repo_->LoadCommit(cs[2]));
  EXPECT_EQ(c.description, "commit 2");
  EXPECT_EQ(c.parent, cs[1]);
  EXPECT_EQ(repo_->LoadCommit(Sha256Of("nope")).status().code(), Status::Code::kNotFound);
  HFS_ASSERT_OK_AND_ASSIGN(Digest notcommit, w_->Put(EncodeDirNode(DirNode{}), ObjectKind::kMeta));
  HFS_ASSERT_OK(w_->Flush());
  EXPECT_EQ(repo_->LoadCommit(notcommit).status().code(), Status::Code::kCorruption);
}

TEST_P(RepositoryTest, ResolveAmbiguousPrefix) {
  InitRepo();
  // Find two commits whose ids share their first 8 hex digits (a birthday
  // search over ~2^16 encodings, well under a second).
  std::unordered_map<uint32_t, int> seen;
  auto encode = [&](int i) {
    Commit c;
    c.root.type = FileType::kDirectory;
    c.root.mode = 0755;
    c.root.content = Sha256Of("root");
    c.description = "birthday " + std::to_string(i);
    return EncodeCommit(c);
  };
  int a = -1, b = -1;
  for (int i = 0; i < 2000000 && a < 0; i++) {
    Digest d = Sha256Of(encode(i));
    uint32_t p = static_cast<uint32_t>(d.Prefix64() >> 32);
    auto [it, fresh] = seen.emplace(p, i);
    if (!fresh) {
      a = it->second;
      b = i;
    }
  }
  ASSERT_GE(a, 0) << "no 32-bit prefix collision found";
  HFS_ASSERT_OK_AND_ASSIGN(Digest da, w_->Put(encode(a), ObjectKind::kMeta));
  HFS_ASSERT_OK_AND_ASSIGN(Digest db, w_->Put(encode(b), ObjectKind::kMeta));
  HFS_ASSERT_OK(w_->Flush());
  ASSERT_EQ(da.Hex().substr(0, 8), db.Hex().substr(0, 8));
  HFS_ASSERT_OK(repo_->Advance("one", std::nullopt, da, Epoch()));
  // Only one of them is kept: the prefix is unique.
  HFS_ASSERT_OK_AND_ASSIGN(Digest r, repo_->Resolve(da.Hex().substr(0, 8)));
  EXPECT_EQ(r, da);
  HFS_ASSERT_OK(repo_->CreateSnapshot("two", db));
  auto amb = repo_->Resolve(da.Hex().substr(0, 8));
  EXPECT_EQ(amb.status().code(), Status::Code::kInvalidArgument) << amb.status().ToString();
  // A longer prefix that tells them apart resolves.
  size_t k = 8;
  while (da.Hex()[k] == db.Hex()[k]) k++;
  HFS_ASSERT_OK_AND_ASSIGN(r, repo_->Resolve(db.Hex().substr(0, k + 1)));
  EXPECT_EQ(r, db);
  // The same commit kept twice is not ambiguous with itself.
  HFS_ASSERT_OK(repo_->CreateSnapshot("one-again", da));
  HFS_ASSERT_OK_AND_ASSIGN(r, repo_->Resolve(da.Hex().substr(0, k + 1)));
  EXPECT_EQ(r, da);
}

// ------------------------------------------------------------ Writer sessions

TEST_P(RepositoryTest, WriterSessionRegistersAndUnregisters) {
  InitRepo();
  BumpEpoch();
  BumpEpoch();
  EXPECT_TRUE(RefsWithPrefix("sess/").empty());
  {
    HFS_ASSERT_OK_AND_ASSIGN(auto s, WriterSession::Start(*repo_, "backup home"));
    EXPECT_EQ(s->epoch(), 2u);
    auto recs = RefsWithPrefix("sess/");
    ASSERT_EQ(recs.size(), 1u);
    auto j = nlohmann::json::parse(recs[0].second);
    EXPECT_EQ(j.at("pid").get<int64_t>(), static_cast<int64_t>(getpid()));
    EXPECT_EQ(j.at("host").get<std::string>(), HostName());
    EXPECT_EQ(j.at("what").get<std::string>(), "backup home");
    int64_t start = j.at("start").get<int64_t>();
    EXPECT_NEAR(static_cast<double>(start), static_cast<double>(time(nullptr)), 5.0);
    {
      HFS_ASSERT_OK_AND_ASSIGN(auto s2, WriterSession::Start(*repo_, "mount"));
      EXPECT_EQ(RefsWithPrefix("sess/").size(), 2u);
      HFS_ASSERT_OK_AND_ASSIGN(auto live, LiveSessionStarts(*repo_));
      EXPECT_EQ(live.size(), 2u);
    }
    EXPECT_EQ(RefsWithPrefix("sess/").size(), 1u);
    HFS_ASSERT_OK_AND_ASSIGN(auto live, LiveSessionStarts(*repo_));
    ASSERT_EQ(live.size(), 1u);
    EXPECT_EQ(live[0], start);
    s->set_epoch(9);
    EXPECT_EQ(s->epoch(), 9u);
  }
  EXPECT_TRUE(RefsWithPrefix("sess/").empty()) << "destruction removes the record";
}

TEST_P(RepositoryTest, LiveSessionStartsRemovesDeadRecords) {
  InitRepo();
  // The pid of a child that has exited (and been reaped).
  pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) _exit(0);
  int status = 0;
  ASSERT_EQ(waitpid(child, &status, 0), child);

  auto put = [&](const std::string& key, const nlohmann::json& j) {
    HFS_ASSERT_OK(store_->Update([&](RefTxn& t) { return t.Put(key, j.dump()); }));
  };
  put("sess/dead", {{"pid", child}, {"host", HostName()}, {"start", 111}, {"what", "crashed backup"}});
  put("sess/elsewhere", {{"pid", child}, {"host", HostName() + "-other-host"}, {"start", 222}, {"what", "remote"}});
  put("sess/alive", {{"pid", getpid()}, {"host", HostName()}, {"start", 333}, {"what", "us"}});
  put("sess/parent", {{"pid", getppid()}, {"host", HostName()}, {"start", 444}, {"what", "our parent"}});
  HFS_ASSERT_OK(store_->Update([&](RefTxn& t) { return t.Put("sess/garbage", "{not json"); }));

  HFS_ASSERT_OK_AND_ASSIGN(auto live, LiveSessionStarts(*repo_));
  std::sort(live.begin(), live.end());
  // Another host's record cannot be checked and is kept; ours are checked.
  EXPECT_EQ(live, (std::vector<int64_t>{222, 333, 444}));
  auto recs = RefsWithPrefix("sess/");
  std::set<std::string> keys;
  for (const auto& [k, v] : recs) keys.insert(k);
  EXPECT_EQ(keys, (std::set<std::string>{"sess/alive", "sess/elsewhere", "sess/parent"}))
      << "the dead pid's record and the malformed record are removed";
}

INSTANTIATE_TEST_SUITE_P(Stores, RepositoryTest, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& pi) { return pi.param ? "Lmdb" : "Memory"; });

// The repository survives closing and reopening a real store.
TEST(RepositoryLmdbTest, ReopenKeepsEverything) {
  TempDir dir;
  LmdbOptions o;
  o.create_if_missing = true;
  o.initial_map_size = 64ull << 20;
  std::string id;
  Digest c;
  {
    auto s = LmdbStore::Open(dir.path() + "/s", o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    HFS_ASSERT_OK(Repository::Init(**s, RepoConfig{}));
    HFS_ASSERT_OK_AND_ASSIGN(auto repo, Repository::Open(**s));
    id = repo->config().id;
    ObjectWriter w(**s, 3);
    HFS_ASSERT_OK_AND_ASSIGN(Digest empty, dir_tree::Empty(w));
    Commit cm;
    cm.root.type = FileType::kDirectory;
    cm.root.content = empty;
    HFS_ASSERT_OK_AND_ASSIGN(c, w.Put(EncodeCommit(cm), ObjectKind::kMeta));
    HFS_ASSERT_OK(w.Flush());
    HFS_ASSERT_OK(repo->Advance("home", std::nullopt, c, 0));
    HFS_ASSERT_OK(repo->CreateSnapshot("snap", c));
  }
  o.create_if_missing = false;
  auto s = LmdbStore::Open(dir.path() + "/s", o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  EXPECT_EQ(Repository::Init(**s, RepoConfig{}).code(), Status::Code::kExists);
  HFS_ASSERT_OK_AND_ASSIGN(auto repo, Repository::Open(**s));
  EXPECT_EQ(repo->config().id, id);
  HFS_ASSERT_OK_AND_ASSIGN(Digest r, repo->Resolve("home"));
  EXPECT_EQ(r, c);
  HFS_ASSERT_OK_AND_ASSIGN(r, repo->Resolve("snap"));
  EXPECT_EQ(r, c);
  HFS_ASSERT_OK_AND_ASSIGN(Commit loaded, repo->LoadCommit(c));
  EXPECT_EQ(loaded.root.type, FileType::kDirectory);
}

}  // namespace
}  // namespace hashfs
