// End-to-end tests: the real hashfs binary, over libcurl, against the
// Discord API emulator (tests/remote/discord_emulator.py) on 127.0.0.1.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include "cas/lmdb_store.h"
#include "remote/discord_remote.h"
#include "tests/test_util.h"
#include "tree/codec.h"
#include "tree/object_writer.h"
#include "tree/repository.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

using hashfs_test::RandomBytes;
using hashfs_test::ReadFile;
using hashfs_test::RunResult;
using hashfs_test::Shell;
using hashfs_test::WriteFile;

const char* kChannel = "100000000000000001";
const char* kChannel2 = "100000000000000002";

// Compares two trees: same names, types and file bytes.
void ExpectSameTree(const std::string& a, const std::string& b) {
  std::vector<std::string> na, nb;
  for (auto& e : fs::recursive_directory_iterator(a)) na.push_back(fs::relative(e.path(), a).string());
  for (auto& e : fs::recursive_directory_iterator(b)) nb.push_back(fs::relative(e.path(), b).string());
  std::sort(na.begin(), na.end());
  std::sort(nb.begin(), nb.end());
  ASSERT_EQ(na, nb);
  for (const auto& n : na) {
    if (fs::is_regular_file(a + "/" + n)) {
      EXPECT_EQ(ReadFile(a + "/" + n), ReadFile(b + "/" + n)) << n;
    }
  }
}

class Emulator {
 public:
  explicit Emulator(const std::string& args) {
    int fds[2];
    if (pipe(fds) != 0) abort();
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      dup2(fds[1], 1);
      close(fds[0]);
      std::string cmd = std::string("exec python3 ") + HASHFS_SOURCE_DIR +
                        "/tests/remote/discord_emulator.py --port 0 " + args + " 2>/dev/null";
      execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
      _exit(127);
    }
    close(fds[1]);
    FILE* f = fdopen(fds[0], "r");
    char line[256];
    while (fgets(line, sizeof line, f)) {
      if (std::strncmp(line, "PORT ", 5) == 0) {
        port_ = std::atoi(line + 5);
        break;
      }
    }
    fclose(f);
  }
  ~Emulator() {
    if (pid_ > 0) {
      kill(pid_, SIGTERM);
      waitpid(pid_, nullptr, 0);
    }
  }
  int port() const { return port_; }
  std::string api() const { return "http://127.0.0.1:" + std::to_string(port_) + "/api/v10"; }
  json Get(const std::string& path) const {
    std::string out = Curl("-s " + Base() + path);
    return json::parse(out, nullptr, false);
  }
  void Post(const std::string& path, const std::string& body) const {
    Curl("-s -X POST -H 'Content-Type: application/json' --data '" + body + "' " + Base() + path);
  }
  // A request to the Discord API as the bot (what anyone holding the token,
  // or Discord itself, can do to the channel); `args` are curl arguments
  // after the URL's path.
  std::string Bot(const std::string& path, const std::string& args = "") const {
    return Curl("-s -H 'Authorization: Bot test-token' " + args + " '" + api() + path + "'");
  }
  static std::string Fetch(const std::string& url, const std::string& to) { return Curl("-s -o '" + to + "' '" + url + "'"); }

 private:
  std::string Base() const { return "http://127.0.0.1:" + std::to_string(port_); }
  static std::string Curl(const std::string& args) {
    std::string out;
    FILE* p = popen(("curl " + args).c_str(), "r");
    if (!p) return out;
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
    pclose(p);
    return out;
  }
  pid_t pid_ = -1;
  int port_ = 0;
};

class RemoteE2E : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/hashfs-remote-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    fs::create_directories(dir_ + "/src/sub/deeper");
    WriteFile(dir_ + "/src/big.bin", RandomBytes(1'500'000, 1));
    WriteFile(dir_ + "/src/sub/mid.bin", RandomBytes(700'000, 2));
    std::string text;
    for (int i = 0; i < 40000; i++) text += "line " + std::to_string(i) + "\n";
    WriteFile(dir_ + "/src/sub/text.txt", text);
    for (int i = 0; i < 30; i++)
      WriteFile(dir_ + "/src/sub/deeper/small" + std::to_string(i), RandomBytes(100 + i * 50, 10 + i));
    fs::create_symlink("sub/text.txt", dir_ + "/src/link");
  }
  void TearDown() override { fs::remove_all(dir_); }

  // hashfs with the store at dir_/STORE and credentials from the environment.
  RunResult Hashfs(const std::string& store, const std::string& args, const std::string& env = "") {
    std::string cmd = "HASHFS_STORE=" + dir_ + "/" + store +
                      " HASHFS_DISCORD_TOKEN=test-token HASHFS_PASSWORD=hunter2 " + env + " " + HASHFS_BINARY +
                      " " + args;
    return Shell(cmd);
  }
  // A store with volume v1 backed up from src (chunks of 16..64 KiB so the
  // remote gets many objects and packs).
  void MakeStore(const std::string& store) {
    ASSERT_EQ(Hashfs(store, "init --chunk-min 16384 --chunk-avg 32768 --chunk-max 65536").code, 0);
    auto r = Hashfs(store, "backup " + dir_ + "/src --volume v1");
    ASSERT_EQ(r.code, 0) << r.err;
  }
  // A store with volume v1 holding src plus src/huge.bin, `bytes` random
  // bytes in chunks of up to 1 MiB: none fits a 64 KiB attachment.
  void MakeStoreOfLargeChunks(const std::string& store, size_t bytes, uint64_t seed) {
    ASSERT_EQ(Hashfs(store, "init --chunk-min 65536 --chunk-avg 262144 --chunk-max 1048576").code, 0);
    WriteFile(dir_ + "/src/huge.bin", RandomBytes(bytes, seed));
    auto r = Hashfs(store, "backup " + dir_ + "/src --volume v1");
    ASSERT_EQ(r.code, 0) << r.err;
  }
  std::string RemoteArgs(const Emulator& e, const std::string& extra = "") {
    return std::string("discord --channel ") + kChannel + " --api-url " + e.api() + " " + extra;
  }
  void AddRemote(const std::string& store, const Emulator& e, const std::string& extra = "") {
    auto r = Hashfs(store, "remote add origin " + RemoteArgs(e, extra));
    ASSERT_EQ(r.code, 0) << r.err;
  }
  void ExpectRestores(const std::string& store, const std::string& ref, const std::string& expected,
                      const std::string& env = "") {
    std::string out = dir_ + "/restore-" + store + "-" + std::to_string(restores_++);
    auto r = Hashfs(store, "restore " + ref + " " + out, env);
    ASSERT_EQ(r.code, 0) << r.out << r.err;
    ExpectSameTree(expected, out);
  }
  json Stats(const std::string& store) {
    auto r = Hashfs(store, "remote stats origin --json");
    EXPECT_EQ(r.code, 0) << r.err;
    return json::parse(r.out, nullptr, false);
  }

  std::string dir_;
  int restores_ = 0;
};

// The main path, with every kind of fault on: push two volumes' worth of
// history and a snapshot, clone into a fresh store, restore byte-identical.
TEST_F(RemoteE2E, PushCloneRestoreWithFaults) {
  Emulator emu("--seed 11 --create-window 1 --faults "
               "5xx=0.05,drop=0.03,lost_create=0.08,flip=0.03,overloaded=0.03,truncate=0.02");
  ASSERT_GT(emu.port(), 0);
  MakeStore("a");
  ASSERT_EQ(Hashfs("a", "snapshot keep v1").code, 0);
  WriteFile(dir_ + "/src/sub/added.bin", RandomBytes(300'000, 3));
  ASSERT_EQ(Hashfs("a", "backup " + dir_ + "/src --volume v1").code, 0);
  // Small attachments and requests: many packs, several per message, many creates.
  AddRemote("a", emu, "--attachment-limit 131072 --request-limit 400000");
  auto push = Hashfs("a", "push origin --json");
  ASSERT_EQ(push.code, 0) << push.err;
  json pj = json::parse(push.out);
  EXPECT_GT(pj["packs"].get<int>(), 10);
  EXPECT_GT(pj["messages"].get<int>(), 5);
  EXPECT_LT(pj["messages"].get<int>(), pj["packs"].get<int>());  // several packs per message

  auto clone = Hashfs("b", "clone origin " + RemoteArgs(emu) + " --all");
  ASSERT_EQ(clone.code, 0) << clone.err;
  ExpectRestores("b", "v1", dir_ + "/src");
  auto snaps = Hashfs("b", "snapshots");
  EXPECT_NE(snaps.out.find("keep"), std::string::npos);
  auto log = Hashfs("b", "log v1");
  EXPECT_EQ(std::count(log.out.begin(), log.out.end(), '\n'), 2);
  EXPECT_EQ(Hashfs("b", "verify").code, 0);

  json st = emu.Get("/_emulator/stats");
  EXPECT_EQ(st["requests_into_exhausted_bucket"].get<int>(), 0);
  EXPECT_EQ(st["requests_during_global_retry_after"].get<int>(), 0);
  int faults = 0;
  for (auto& [k, v] : st["faults_injected"].items()) faults += v.get<int>();
  EXPECT_GT(faults, 3) << st.dump();
  // No pack was uploaded twice despite lost creates.
  json rs = Stats("a");
  EXPECT_EQ(rs["duplicate_objects"].get<int>(), 0);
  EXPECT_EQ(rs["packs"].get<int>(), pj["packs"].get<int>());
  EXPECT_EQ(st["attachments"].get<int>(), pj["packs"].get<int>() + 1);  // + one refs file
  // Everything verifies (flips are re-downloaded, not reported).
  auto ver = Hashfs("a", "remote verify origin");
  EXPECT_EQ(ver.code, 0) << ver.out << ver.err;
  // A second push has nothing to do.
  auto again = Hashfs("a", "push origin");
  EXPECT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.out.find("up to date"), std::string::npos) << again.out;
}

// Packs spread over two channels; rate limits tight enough to wait.
TEST_F(RemoteE2E, TwoChannelsAndTightRateLimits) {
  Emulator emu("--seed 5 --create-limit 2 --create-window 0.5 --route-limit 5 --route-window 0.5 --global-limit 20");
  MakeStore("a");
  auto r = Hashfs("a", std::string("remote add origin discord --channel ") + kChannel + " --channel " + kChannel2 +
                           " --api-url " + emu.api() + " --attachment-limit 131072 --request-limit 300000");
  ASSERT_EQ(r.code, 0) << r.err;
  auto push = Hashfs("a", "push origin");
  ASSERT_EQ(push.code, 0) << push.err;
  json msgs1 = emu.Get(std::string("/_emulator/channels/") + kChannel + "/messages");
  json msgs2 = emu.Get(std::string("/_emulator/channels/") + kChannel2 + "/messages");
  EXPECT_GT(msgs1.size(), 2u);
  EXPECT_GT(msgs2.size(), 2u);  // packs went to both channels
  auto clone = Hashfs("b", std::string("clone origin discord --channel ") + kChannel + " --channel " + kChannel2 +
                               " --api-url " + emu.api() + " --all");
  ASSERT_EQ(clone.code, 0) << clone.err;
  ExpectRestores("b", "v1", dir_ + "/src");
  json st = emu.Get("/_emulator/stats");
  EXPECT_EQ(st["requests_into_exhausted_bucket"].get<int>(), 0) << st.dump();
}

// Attachment URLs expire in the middle of a pull: the URLs the pull got from
// listing the channel are all expired by the time it downloads, so every
// download must refresh its URL and carry on.
TEST_F(RemoteE2E, UrlsExpireDuringPull) {
  Emulator emu("--seed 3 --create-window 1 --faults flip=0.02");
  MakeStore("a");
  AddRemote("a", emu, "--attachment-limit 131072 --request-limit 400000");
  ASSERT_EQ(Hashfs("a", "push origin").code, 0);
  auto clone = Hashfs("b", "clone origin " + RemoteArgs(emu));  // lazy: commits only
  ASSERT_EQ(clone.code, 0) << clone.err;
  {
    auto store = hashfs::LmdbStore::Open(dir_ + "/b", hashfs::LmdbOptions{});
    ASSERT_TRUE(store.ok());
    hashfs::remote::RemoteIndex idx(**store, "origin");
    auto cfg = hashfs::remote::RemoteConfig::FromJson(**idx.Get("config"));
    ASSERT_TRUE(cfg.ok());
    auto r = hashfs::remote::DiscordRemote::Open(**store, *cfg, "test-token");
    ASSERT_TRUE(r.ok());
    ASSERT_TRUE((*r)->Unlock("hunter2", false).ok());
    ASSERT_TRUE((*r)->SyncIndex(true).ok());  // lists every message: URLs cached in memory
    emu.Post("/_emulator/expire-urls", "{}");
    std::this_thread::sleep_for(std::chrono::milliseconds(1100));
    auto repo = hashfs::Repository::Open(**store);
    ASSERT_TRUE(repo.ok());
    auto pull = (*r)->Pull(**repo, /*fetch_objects=*/true, nullptr);
    ASSERT_TRUE(pull.ok()) << pull.status().ToString();
    EXPECT_GT(pull->objects_fetched, 50u);
  }
  json st = emu.Get("/_emulator/stats");
  EXPECT_GT(st["status_counts"].value("404", 0), 0) << "no URL expired during the pull: " << st.dump();
  EXPECT_GT(st["requests"].value("POST /attachments/refresh-urls", 0), 0);
  // Everything is local now: restore needs no network and no credentials.
  ExpectRestores("b", "v1", dir_ + "/src", "HASHFS_DISCORD_TOKEN= HASHFS_PASSWORD=");
}

// kill -9 in the middle of a push; the next push resumes without uploading
// any pack twice, and the result restores.
TEST_F(RemoteE2E, KillDuringPushThenResume) {
  Emulator emu("--seed 9 --create-limit 2 --create-window 0.6");
  MakeStore("a");
  AddRemote("a", emu, "--attachment-limit 98304 --request-limit 200000");
  std::string cmd = "HASHFS_STORE=" + dir_ + "/a HASHFS_DISCORD_TOKEN=test-token HASHFS_PASSWORD=hunter2 exec " +
                    HASHFS_BINARY + " push origin >/dev/null 2>&1";
  pid_t pid = fork();
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
    _exit(127);
  }
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    json st = emu.Get("/_emulator/stats");
    if (st.is_object() && st["creates"].get<int>() >= 6) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  kill(pid, SIGKILL);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFSIGNALED(status)) << "push finished before it could be killed";
  json before = emu.Get("/_emulator/stats");
  int attachments_before = before["attachments"].get<int>();
  EXPECT_GT(attachments_before, 5);
  EXPECT_EQ(Hashfs("a", "remote ls origin").out.find("v1"), std::string::npos);  // nothing published yet

  // The killed process may have just exhausted the create bucket; a new
  // process cannot know that before its first answer, so allow it one 429.
  emu.Post("/_emulator/reset-stats", "{}");
  auto resume = Hashfs("a", "push origin --json");
  ASSERT_EQ(resume.code, 0) << resume.err;
  json rj = json::parse(resume.out);
  json rs = Stats("a");
  EXPECT_EQ(rs["duplicate_objects"].get<int>(), 0) << rs.dump();
  json after = emu.Get("/_emulator/stats");
  // Every pack message on the channel is one the index knows: nothing re-sent.
  EXPECT_EQ(after["attachments"].get<int>(), rs["packs"].get<int>() + 1);
  EXPECT_EQ(rj["packs"].get<int>() + attachments_before, rs["packs"].get<int>());
  EXPECT_GT(rj["objects_present"].get<int>(), 0);
  EXPECT_LE(after["requests_into_exhausted_bucket"].get<int>(), 1);

  // Soak: HASHFS_PUSH_KILL_ITERATIONS - 1 more rounds (default none), seeded by
  // HASHFS_PUSH_KILL_SEED. Each round backs up new data, starts a push and
  // kills it after a random number of creates (1-4) or a random delay
  // (0-1.5 s); then the store verifies clean and the resumed push succeeds
  // without storing any object twice, every attachment on the channel being
  // a pack the index knows or one refs message per publish. The clone below
  // checks the final content.
  const char* iters_env = std::getenv("HASHFS_PUSH_KILL_ITERATIONS");
  const char* seed_env = std::getenv("HASHFS_PUSH_KILL_SEED");
  const int rounds = iters_env != nullptr && *iters_env != '\0' ? std::atoi(iters_env) : 1;
  const uint32_t seed = seed_env != nullptr && *seed_env != '\0' ? static_cast<uint32_t>(std::atoll(seed_env)) : 9;
  std::mt19937 rng(seed);
  int killed = 0;
  for (int round = 1; round < rounds && !HasFailure(); round++) {
    SCOPED_TRACE("push kill round " + std::to_string(round) + " (HASHFS_PUSH_KILL_SEED=" + std::to_string(seed) +
                 " HASHFS_PUSH_KILL_ITERATIONS=" + std::to_string(rounds) + ")");
    WriteFile(dir_ + "/src/round" + std::to_string(round) + ".bin", RandomBytes(100'000 + rng() % 400'000, rng()));
    if (round % 3 == 0) fs::remove(dir_ + "/src/round" + std::to_string(round - 2) + ".bin");
    auto b = Hashfs("a", "backup " + dir_ + "/src --volume v1");
    ASSERT_EQ(b.code, 0) << b.err;
    emu.Post("/_emulator/reset-stats", "{}");
    const int creates = rng() % 2 ? 1 + static_cast<int>(rng() % 4) : 0;
    const auto delay = std::chrono::milliseconds(rng() % 1500);
    pid_t p = fork();
    if (p == 0) {
      execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
      _exit(127);
    }
    ASSERT_GT(p, 0);
    auto t0 = std::chrono::steady_clock::now();
    int st = 0;
    bool exited = false;
    while (!exited && std::chrono::steady_clock::now() - t0 < std::chrono::seconds(60)) {
      exited = waitpid(p, &st, WNOHANG) == p;
      if (exited) break;
      if (creates > 0) {
        json s = emu.Get("/_emulator/stats");
        if (s.is_object() && s["creates"].get<int>() >= creates) break;
      } else if (std::chrono::steady_clock::now() - t0 >= delay) {
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (!exited) {
      kill(p, SIGKILL);
      waitpid(p, &st, 0);
      killed++;
    } else {
      EXPECT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) << "push failed on its own: status " << st;
    }
    auto ver = Hashfs("a", "verify");
    EXPECT_EQ(ver.code, 0) << ver.out << ver.err;
    auto again = Hashfs("a", "push origin --json");
    ASSERT_EQ(again.code, 0) << again.err;
    json ars = Stats("a");
    EXPECT_EQ(ars["duplicate_objects"].get<int>(), 0) << ars.dump();
    // Each publish leaves one refs message (remote gc prunes them, not push).
    EXPECT_EQ(emu.Get("/_emulator/stats")["attachments"].get<int>(),
              ars["packs"].get<int>() + ars["refs_seq"].get<int>())
        << "an attachment on the channel that the index does not know (uploaded twice?) " << ars.dump();
  }
  if (rounds > 1)
    std::fprintf(stderr, "[push-kill] %d extra rounds, %d pushes killed before they finished\n", rounds - 1, killed);
  emu.Post("/_emulator/reset-stats", "{}");
  auto clone = Hashfs("b", "clone origin " + RemoteArgs(emu) + " --all");
  ASSERT_EQ(clone.code, 0) << clone.err;
  ExpectRestores("b", "v1", dir_ + "/src");
  EXPECT_EQ(emu.Get("/_emulator/stats")["requests_into_exhausted_bucket"].get<int>(), 0);
}

// Remote gc deletes what no published ref reaches and keeps the rest.
TEST_F(RemoteE2E, RemoteGcKeepsEverythingReachable) {
  Emulator emu("--seed 4 --create-window 1");
  MakeStore("a");
  AddRemote("a", emu, "--attachment-limit 131072 --request-limit 400000");
  ASSERT_EQ(Hashfs("a", "push origin").code, 0);
  ASSERT_EQ(Hashfs("a", "snapshot keep v1").code, 0);
  fs::remove(dir_ + "/src/big.bin");
  WriteFile(dir_ + "/src/new.bin", RandomBytes(400'000, 7));
  ASSERT_EQ(Hashfs("a", "backup " + dir_ + "/src --volume v1").code, 0);
  ASSERT_EQ(Hashfs("a", "push origin v1").code, 0);
  // Nothing is unreachable yet (history keeps the first commit): gc deletes no pack.
  auto gc0 = Hashfs("a", "remote gc origin --json");
  ASSERT_EQ(gc0.code, 0) << gc0.err;
  EXPECT_EQ(json::parse(gc0.out)["packs_deleted"].get<int>(), 0);
  // Forget the first commit and drop the snapshot; publish that.
  ASSERT_EQ(Hashfs("a", "forget v1 --keep-last 1").code, 0);
  ASSERT_EQ(Hashfs("a", "push origin v1").code, 0);
  json s1 = Stats("a");
  EXPECT_GT(s1["dead_bytes"].get<int>(), 1'000'000) << s1.dump();  // big.bin is dead now
  auto gc = Hashfs("a", "remote gc origin --json");
  ASSERT_EQ(gc.code, 0) << gc.err;
  json gj = json::parse(gc.out);
  EXPECT_GT(gj["messages_deleted"].get<int>(), 0) << gj.dump();
  json s2 = Stats("a");
  EXPECT_LT(s2["dead_bytes"].get<int>(), s1["dead_bytes"].get<int>());
  EXPECT_EQ(s2["live_objects"].get<int>(), s1["live_objects"].get<int>());
  EXPECT_EQ(Hashfs("a", "remote verify origin").code, 0);
  // A fresh clone still has every published state.
  auto clone = Hashfs("b", "clone origin " + RemoteArgs(emu) + " --all");
  ASSERT_EQ(clone.code, 0) << clone.err;
  ExpectRestores("b", "v1", dir_ + "/src");
  // The snapshot was never pushed again: it is still published from the first push.
  fs::create_directories(dir_ + "/old");
}

TEST_F(RemoteE2E, WrongPassphraseAndWrongTokenFailClearly) {
  Emulator emu("--seed 2");
  MakeStore("a");
  AddRemote("a", emu);
  ASSERT_EQ(Hashfs("a", "push origin").code, 0);
  auto wp = Hashfs("b", "clone origin " + RemoteArgs(emu), "HASHFS_PASSWORD=not-it");
  EXPECT_NE(wp.code, 0);
  EXPECT_NE(wp.err.find("wrong passphrase"), std::string::npos) << wp.err;
  auto wt = Hashfs("c", "clone origin " + RemoteArgs(emu), "HASHFS_DISCORD_TOKEN=stolen-token-123");
  EXPECT_NE(wt.code, 0);
  EXPECT_NE(wt.err.find("401"), std::string::npos) << wt.err;
  EXPECT_EQ(wt.err.find("stolen-token-123"), std::string::npos);  // never printed
  auto pt = Hashfs("a", "push origin", "HASHFS_DISCORD_TOKEN=stolen-token-123");
  EXPECT_NE(pt.code, 0);
  EXPECT_NE(pt.err.find("token"), std::string::npos);
  // 401 stops at once: one request, not a retry loop.
  json st = emu.Get("/_emulator/stats");
  EXPECT_LE(st["unauthorized"].get<int>(), 2) << st.dump();
  // Nothing secret in the store's refs.
  std::string data = ReadFile(dir_ + "/a/data.mdb");
  EXPECT_EQ(data.find("hunter2"), std::string::npos);
  EXPECT_EQ(data.find("test-token"), std::string::npos);
}

// A lazy clone fetches objects only when read, verifies them, keeps them.
TEST_F(RemoteE2E, LazyCloneFetchesOnDemand) {
  Emulator emu("--seed 6 --create-window 1 --faults flip=0.05,truncate=0.02");
  MakeStore("a");
  AddRemote("a", emu, "--attachment-limit 262144");
  ASSERT_EQ(Hashfs("a", "push origin").code, 0);
  auto clone = Hashfs("b", "clone origin " + RemoteArgs(emu));
  ASSERT_EQ(clone.code, 0) << clone.err;
  json st0 = emu.Get("/_emulator/stats");
  uint64_t cdn0 = st0["bytes_downloaded"].get<uint64_t>();
  EXPECT_LT(cdn0, 200'000u);  // the clone fetched commits and trailers, not the data
  // Reading one small file fetches a little.
  auto cat = Hashfs("b", "cat v1:sub/deeper/small3");
  ASSERT_EQ(cat.code, 0) << cat.err;
  EXPECT_EQ(cat.out, ReadFile(dir_ + "/src/sub/deeper/small3"));
  uint64_t cdn1 = emu.Get("/_emulator/stats")["bytes_downloaded"].get<uint64_t>();
  EXPECT_GT(cdn1, cdn0);
  EXPECT_LT(cdn1 - cdn0, 1'500'000u);
  // Without credentials, what is local still reads; what is not fails clearly.
  auto nocreds = Shell("HASHFS_STORE=" + dir_ + "/b HASHFS_PASSWORD= HASHFS_DISCORD_TOKEN= " + HASHFS_BINARY +
                        " cat v1:big.bin </dev/null");
  EXPECT_NE(nocreds.code, 0);
  EXPECT_NE(nocreds.err.find("HASHFS_DISCORD_TOKEN"), std::string::npos) << nocreds.err;
  EXPECT_EQ(Shell("HASHFS_STORE=" + dir_ + "/b HASHFS_PASSWORD= HASHFS_DISCORD_TOKEN= " + HASHFS_BINARY +
                   " cat v1:sub/deeper/small3 </dev/null")
                .code,
            0);
  // verify and gc of the partial clone: what is not fetched is not damage
  // (and needs no network), what is local is checked and kept.
  std::string offline = "HASHFS_STORE=" + dir_ + "/b HASHFS_PASSWORD= HASHFS_DISCORD_TOKEN= " + HASHFS_BINARY;
  auto ver = Shell(offline + " verify --json </dev/null");
  EXPECT_EQ(ver.code, 0) << ver.out << ver.err;
  json vj = json::parse(ver.out);
  EXPECT_TRUE(vj["ok"].get<bool>());
  EXPECT_GT(vj["objects_not_fetched"].get<uint64_t>(), 0u);
  auto gc = Shell(offline + " gc </dev/null");
  EXPECT_EQ(gc.code, 0) << gc.out << gc.err;
  EXPECT_NE(gc.out.find("not fetched"), std::string::npos) << gc.out;
  EXPECT_EQ(Shell(offline + " cat v1:sub/deeper/small3 </dev/null").out, ReadFile(dir_ + "/src/sub/deeper/small3"));
  // A full restore fetches the rest, verified, and a second one needs no network.
  ExpectRestores("b", "v1", dir_ + "/src");
  auto ver2 = Shell(offline + " verify --json </dev/null");
  EXPECT_EQ(ver2.code, 0) << ver2.out << ver2.err;
  EXPECT_EQ(json::parse(ver2.out)["objects_not_fetched"].get<uint64_t>(), 0u) << ver2.out;
  uint64_t cdn2 = emu.Get("/_emulator/stats")["bytes_downloaded"].get<uint64_t>();
  ExpectRestores("b", "v1", dir_ + "/src", "HASHFS_DISCORD_TOKEN= HASHFS_PASSWORD=");
  EXPECT_EQ(emu.Get("/_emulator/stats")["bytes_downloaded"].get<uint64_t>(), cdn2);
}

// Discord is untrusted: someone who can post to the channel re-posts an
// older (authentic, sealed) refs attachment under a higher seq, to roll the
// remote back. Clients must refuse it, not follow it.
TEST_F(RemoteE2E, ReplayedOlderRefsUnderANewerSeqAreRefused) {
  Emulator emu("--seed 9 --create-limit 100 --create-window 0.1");
  MakeStore("a");
  AddRemote("a", emu);
  auto push = Hashfs("a", "push origin");
  ASSERT_EQ(push.code, 0) << push.err;
  WriteFile(dir_ + "/src/new.txt", "a second state");
  ASSERT_EQ(Hashfs("a", "backup " + dir_ + "/src --volume v1").code, 0);
  push = Hashfs("a", "push origin");
  ASSERT_EQ(push.code, 0) << push.err;

  // The oldest ref-log message and its sealed attachment.
  json msgs = emu.Get(std::string("/_emulator/channels/") + kChannel + "/messages");
  std::string first_id;
  json header;
  for (const auto& m : msgs) {
    std::string c = m["content"].get<std::string>();
    if (c.rfind("hashfs:refs:1 ", 0) != 0) continue;
    json h = json::parse(c.substr(14), nullptr, false);
    if (first_id.empty() || h["seq"].get<uint64_t>() < header["seq"].get<uint64_t>()) {
      first_id = m["id"].get<std::string>();
      header = h;
    }
  }
  ASSERT_FALSE(first_id.empty()) << msgs.dump();
  ASSERT_EQ(header["seq"].get<uint64_t>(), 1u);
  json full = json::parse(emu.Bot(std::string("/channels/") + kChannel + "/messages/" + first_id), nullptr, false);
  ASSERT_TRUE(full.contains("attachments") && full["attachments"].size() == 1) << full.dump();
  std::string sealed = dir_ + "/replayed.bin";
  Emulator::Fetch(full["attachments"][0]["url"].get<std::string>(), sealed);
  ASSERT_GT(fs::file_size(sealed), 0u);
  header["seq"] = 50;
  WriteFile(dir_ + "/payload.json", json{{"content", "hashfs:refs:1 " + header.dump()}}.dump());
  json posted = json::parse(emu.Bot(std::string("/channels/") + kChannel + "/messages",
                                    "-F 'payload_json=<" + dir_ + "/payload.json;type=application/json' -F 'files[0]=@" +
                                        sealed + ";filename=refs-50-0.bin'"),
                            nullptr, false);
  ASSERT_TRUE(posted.contains("id")) << posted.dump();

  auto clone = Hashfs("b", "clone origin " + RemoteArgs(emu) + " --all");
  EXPECT_NE(clone.code, 0) << "a fresh clone followed the replayed refs";
  EXPECT_NE(clone.err.find("tampered"), std::string::npos) << clone.err;
  auto pull = Hashfs("a", "pull origin");
  EXPECT_NE(pull.code, 0);
  // Each sealed part is bound to its seq: it does not authenticate as seq 50.
  EXPECT_NE(pull.err.find("of the refs of seq 50 does not authenticate"), std::string::npos) << pull.err;
  EXPECT_NE(pull.err.find("tampered"), std::string::npos) << pull.err;
  // The local store is untouched.
  ExpectRestores("a", "v1", dir_ + "/src");
}

// Discord allows less than configured: 413 shrinks the packs instead of looping.
TEST_F(RemoteE2E, TooLargeShrinksPacks) {
  Emulator emu("--seed 8 --create-window 1 --file-limit 120000 --request-limit 400000");
  MakeStore("a");
  AddRemote("a", emu, "--attachment-limit 1048576 --request-limit 4000000");
  auto push = Hashfs("a", "push origin");
  ASSERT_EQ(push.code, 0) << push.err;
  EXPECT_NE(push.err.find("refused"), std::string::npos) << push.err;
  json st = emu.Get("/_emulator/stats");
  // It converges: a few refusals per limit step and queued batch, no loop.
  EXPECT_LT(st["status_counts"].value("413", 0), 20) << st.dump();
  auto clone = Hashfs("b", "clone origin " + RemoteArgs(emu) + " --all");
  ASSERT_EQ(clone.code, 0) << clone.err;
  ExpectRestores("b", "v1", dir_ + "/src");
}

// `n` more commits of the head's tree on `volume` of store `name`, as a busy
// mount makes them.
void AddCommits(const std::string& store_dir, const std::string& volume, int n) {
  auto store = hashfs::LmdbStore::Open(store_dir, hashfs::LmdbOptions{});
  ASSERT_TRUE(store.ok()) << store.status().ToString();
  auto repo = hashfs::Repository::Open(**store);
  ASSERT_TRUE(repo.ok()) << repo.status().ToString();
  auto head = (*repo)->Head(volume);
  ASSERT_TRUE(head.ok() && head->has_value());
  hashfs::Digest cur = **head;
  auto c = (*repo)->LoadCommit(cur);
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  hashfs::Commit next = *c;
  hashfs::ObjectWriter w(**store, 3);
  for (int i = 0; i < n; i++) {
    next.parent = cur;
    next.time_ns++;
    next.description = "commit " + std::to_string(i);
    auto id = w.Put(hashfs::EncodeCommit(next), hashfs::ObjectKind::kMeta);
    ASSERT_TRUE(id.ok()) << id.status().ToString();
    ASSERT_TRUE(w.Flush().ok());
    auto epoch = (*repo)->GcEpoch();
    ASSERT_TRUE(epoch.ok());
    hashfs::Status s = (*repo)->Advance(volume, cur, *id, *epoch);
    ASSERT_TRUE(s.ok()) << s.ToString();
    cur = *id;
  }
}

// The published refs are compressed (about 38 bytes per kept commit) into at
// most 10 attachments of one message. A history longer than one message
// holds (4,001 commits, about 154 KB, against a 128 KiB request budget) is
// refused before anything is uploaded, with the way out named; after forget
// the push goes through and a clone restores.
TEST_F(RemoteE2E, PushRefusesRefsLargerThanAMessageBeforeUploading) {
  Emulator emu("--seed 12 --create-window 1");
  MakeStore("a");
  AddRemote("a", emu, "--attachment-limit 131072 --request-limit 196608");
  AddCommits(dir_ + "/a", "v1", 4000);
  auto push = Hashfs("a", "push origin");
  EXPECT_EQ(push.code, 1) << push.err;
  EXPECT_NE(push.err.find("4001 kept commits"), std::string::npos) << push.err;
  EXPECT_NE(push.err.find("hashfs forget"), std::string::npos) << push.err;
  EXPECT_EQ(emu.Get("/_emulator/stats")["attachments"].get<int>(), 0) << "nothing may be uploaded";

  auto forget = Hashfs("a", "forget v1 --keep-last 100");
  ASSERT_EQ(forget.code, 0) << forget.err;
  push = Hashfs("a", "push origin");
  ASSERT_EQ(push.code, 0) << push.err;
  auto clone = Hashfs("b", "clone origin " + RemoteArgs(emu) + " --all");
  ASSERT_EQ(clone.code, 0) << clone.err;
  auto log = Hashfs("b", "log v1 --json");
  ASSERT_EQ(log.code, 0) << log.err;
  EXPECT_EQ(json::parse(log.out).size(), 100u);
  ExpectRestores("b", "v1", dir_ + "/src");
}

// Refs larger than one attachment are cut into several (here 4,001 commits,
// about 154 KB compressed, against 128 KiB attachments): a fresh clone
// reassembles them, keeps the whole history, and later pushes and pulls go
// on from there.
TEST_F(RemoteE2E, LongHistoryRefsSpanSeveralAttachments) {
  Emulator emu("--seed 13 --create-window 1 --faults flip=0.05");
  MakeStore("a");
  AddRemote("a", emu, "--attachment-limit 131072 --request-limit 400000");
  AddCommits(dir_ + "/a", "v1", 4000);
  auto push = Hashfs("a", "push origin");
  ASSERT_EQ(push.code, 0) << push.err;
  // The newest ref-log message holds several parts, each within the limit.
  json msgs = emu.Get(std::string("/_emulator/channels/") + kChannel + "/messages");
  json newest;
  for (const auto& m : msgs)
    if (m["content"].get<std::string>().rfind("hashfs:refs:1 ", 0) == 0) newest = m;
  ASSERT_FALSE(newest.is_null()) << msgs.dump();
  json header = json::parse(newest["content"].get<std::string>().substr(14), nullptr, false);
  ASSERT_TRUE(header.contains("parts")) << header.dump();
  EXPECT_GE(header["parts"].get<int>(), 2);
  json full = json::parse(emu.Bot(std::string("/channels/") + kChannel + "/messages/" + newest["id"].get<std::string>()),
                          nullptr, false);
  ASSERT_EQ(full["attachments"].size(), header["parts"].get<size_t>()) << full.dump();
  for (const auto& a : full["attachments"]) EXPECT_LE(a["size"].get<uint64_t>(), 131072u) << a.dump();

  auto clone = Hashfs("b", "clone origin " + RemoteArgs(emu) + " --all");
  ASSERT_EQ(clone.code, 0) << clone.err;
  auto log = Hashfs("b", "log v1 --json");
  ASSERT_EQ(log.code, 0) << log.err;
  EXPECT_EQ(json::parse(log.out).size(), 4001u);
  ExpectRestores("b", "v1", dir_ + "/src");
  // One more commit on a, pushed and pulled into b.
  AddCommits(dir_ + "/a", "v1", 1);
  ASSERT_EQ(Hashfs("a", "push origin").code, 0);
  auto pull = Hashfs("b", "pull origin");
  ASSERT_EQ(pull.code, 0) << pull.err;
  log = Hashfs("b", "log v1 --json");
  ASSERT_EQ(log.code, 0) << log.err;
  EXPECT_EQ(json::parse(log.out).size(), 4002u);
}

// Objects larger than one attachment are split (design.md "Objects larger
// than a pack"): a store with incompressible chunks of up to 1 MiB pushes
// into 64 KiB attachments as pieces plus a descriptor per chunk, with
// damaged downloads on. A full clone and a lazy clone restore it
// byte-identical, remote verify and stats count the pieces, and a remote gc
// that repacks everything (pieces included) keeps every object whole.
// Before: push refused every such chunk ("does not fit in a 65536-byte
// attachment").
TEST_F(RemoteE2E, ObjectsLargerThanAnAttachmentAreSplit) {
  Emulator emu("--seed 14 --create-window 1 --faults flip=0.03 --file-limit 65536");
  MakeStoreOfLargeChunks("a", 3'000'000, 41);
  auto add = Hashfs("a", "remote add origin " + RemoteArgs(emu, "--attachment-limit 65536 --request-limit 400000"));
  ASSERT_EQ(add.code, 0) << add.err;
  EXPECT_EQ(add.err.find("warning"), std::string::npos) << add.err;
  auto push = Hashfs("a", "push origin --json");
  ASSERT_EQ(push.code, 0) << push.err;
  // Every attachment within the limit; some packs are all pieces.
  json msgs = emu.Get(std::string("/_emulator/channels/") + kChannel + "/messages");
  size_t attachments = 0;
  for (const auto& m : msgs)
    for (const auto& a : m["attachments"]) {
      EXPECT_LE(a["size"].get<uint64_t>(), 65536u) << a.dump();
      attachments++;
    }
  EXPECT_GT(attachments, 60u);  // 3 MB of random bytes in 64 KiB packs
  json st = Stats("a");
  auto local = Hashfs("a", "stats --json");
  ASSERT_EQ(local.code, 0) << local.err;
  // The remote counts objects, not pieces: as many as the store holds.
  EXPECT_EQ(st["objects"].get<uint64_t>(), json::parse(local.out)["objects"].get<uint64_t>()) << st.dump();
  EXPECT_EQ(st["live_objects"], st["objects"]) << st.dump();
  auto ver = Hashfs("a", "remote verify origin");
  EXPECT_EQ(ver.code, 0) << ver.out << ver.err;

  auto clone = Hashfs("b", "clone origin " + RemoteArgs(emu) + " --all");
  ASSERT_EQ(clone.code, 0) << clone.err;
  ExpectRestores("b", "v1", dir_ + "/src");
  EXPECT_EQ(Hashfs("b", "verify").code, 0);
  auto lazy = Hashfs("c", "clone origin " + RemoteArgs(emu));
  ASSERT_EQ(lazy.code, 0) << lazy.err;
  auto cat = Hashfs("c", "cat v1:huge.bin");
  ASSERT_EQ(cat.code, 0) << cat.err;
  EXPECT_TRUE(cat.out == ReadFile(dir_ + "/src/huge.bin"));

  // Repack every pack (--waste 0): the split objects move whole.
  auto gc = Hashfs("a", "remote gc origin --waste 0 --json");
  ASSERT_EQ(gc.code, 0) << gc.err;
  json gj = json::parse(gc.out);
  EXPECT_GT(gj["packs_repacked"].get<int>(), 0) << gj.dump();
  EXPECT_GT(gj["messages_deleted"].get<int>(), 0) << gj.dump();
  ver = Hashfs("a", "remote verify origin");
  EXPECT_EQ(ver.code, 0) << ver.out << ver.err;
  auto clone2 = Hashfs("d", "clone origin " + RemoteArgs(emu) + " --all");
  ASSERT_EQ(clone2.code, 0) << clone2.err;
  ExpectRestores("d", "v1", dir_ + "/src");

  // A message of pieces deleted from the channel: a fresh clone fails with
  // the piece named, and remote verify from a fresh index (built by listing
  // the channel) reports the piece its descriptor names and the channel lacks.
  std::vector<std::string> pack_msgs;
  for (const auto& m : emu.Get(std::string("/_emulator/channels/") + kChannel + "/messages"))
    if (m["content"].get<std::string>() == "hashfs:packs:1") pack_msgs.push_back(m["id"].get<std::string>());
  ASSERT_GT(pack_msgs.size(), 4u);
  std::sort(pack_msgs.begin(), pack_msgs.end(),
            [](const std::string& x, const std::string& y) { return x.size() != y.size() ? x.size() < y.size() : x < y; });
  emu.Bot(std::string("/channels/") + kChannel + "/messages/" + pack_msgs[pack_msgs.size() / 2], "-X DELETE");
  auto broken = Hashfs("e", "clone origin " + RemoteArgs(emu) + " --all");
  EXPECT_NE(broken.code, 0);
  EXPECT_NE(broken.err.find("piece"), std::string::npos) << broken.err;
  auto ver2 = Hashfs("e", "remote verify origin");
  EXPECT_NE(ver2.code, 0);
  EXPECT_NE((ver2.out + ver2.err).find("is not on the remote"), std::string::npos) << ver2.out << ver2.err;
}

// A push of split objects killed at several points, each followed by
// another push: descriptors go last, so a killed push never leaves a
// descriptor whose pieces are missing (remote verify clean after every
// kill), the final push completes, a remote gc (which may delete pieces the
// killed pushes left without a descriptor) keeps every object, and a clone
// restores byte-identical.
TEST_F(RemoteE2E, KillDuringPushOfSplitObjectsThenResume) {
  Emulator emu("--seed 16 --create-window 1");
  MakeStoreOfLargeChunks("a", 2'500'000, 47);
  AddRemote("a", emu, "--attachment-limit 65536 --request-limit 400000");
  const std::string cmd = "HASHFS_STORE=" + dir_ + "/a HASHFS_DISCORD_TOKEN=test-token HASHFS_PASSWORD=hunter2 exec " +
                          HASHFS_BINARY + " push origin >/dev/null 2>&1";
  int killed = 0;
  for (int creates : {2, 4, 6, 8}) {
    SCOPED_TRACE("killed after " + std::to_string(creates) + " message creates");
    emu.Post("/_emulator/reset-stats", "{}");
    pid_t pid = fork();
    if (pid == 0) {
      execl("/bin/sh", "sh", "-c", cmd.c_str(), nullptr);
      _exit(127);
    }
    ASSERT_GT(pid, 0);
    int st = 0;
    bool exited = false;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (!exited && std::chrono::steady_clock::now() < deadline) {
      exited = waitpid(pid, &st, WNOHANG) == pid;
      json s = emu.Get("/_emulator/stats");
      if (!exited && s.is_object() && s["creates"].get<int>() >= creates) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (!exited) {
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      killed++;
    }
    auto ver = Hashfs("a", "remote verify origin");
    EXPECT_EQ(ver.code, 0) << ver.out << ver.err;
  }
  EXPECT_GE(killed, 2);
  auto push = Hashfs("a", "push origin");
  ASSERT_EQ(push.code, 0) << push.err;
  auto ver = Hashfs("a", "remote verify origin");
  EXPECT_EQ(ver.code, 0) << ver.out << ver.err;
  json before = Stats("a");
  auto gc = Hashfs("a", "remote gc origin --json");
  ASSERT_EQ(gc.code, 0) << gc.err;
  json after = Stats("a");
  EXPECT_LE(after["dead_bytes"].get<uint64_t>(), before["dead_bytes"].get<uint64_t>()) << gc.out;
  EXPECT_EQ(after["live_objects"], before["live_objects"]);
  EXPECT_EQ(Hashfs("a", "remote verify origin").code, 0);
  auto clone = Hashfs("b", "clone origin " + RemoteArgs(emu) + " --all");
  ASSERT_EQ(clone.code, 0) << clone.err;
  ExpectRestores("b", "v1", dir_ + "/src");
}

// Discord takes less than configured and the store's chunks are larger than
// what it takes: the 413 answers shrink the packs and the chunks that no
// longer fit one are split, instead of failing the push.
TEST_F(RemoteE2E, TooLargeForEvenOneChunkSplitsIt) {
  Emulator emu("--seed 15 --create-window 1 --file-limit 100000");
  MakeStoreOfLargeChunks("a", 2'000'000, 43);
  AddRemote("a", emu, "--attachment-limit 2097152 --request-limit 4000000");
  auto push = Hashfs("a", "push origin");
  ASSERT_EQ(push.code, 0) << push.err;
  EXPECT_NE(push.err.find("refused"), std::string::npos) << push.err;
  EXPECT_LT(emu.Get("/_emulator/stats")["status_counts"].value("413", 0), 30) << push.err;
  EXPECT_EQ(Hashfs("a", "remote verify origin").code, 0);
  auto clone = Hashfs("b", "clone origin " + RemoteArgs(emu) + " --all");
  ASSERT_EQ(clone.code, 0) << clone.err;
  ExpectRestores("b", "v1", dir_ + "/src");
}

// A directory whose files carry large xattrs: 100 files of 90 KiB each,
// about 9 MB, which made one directory-trie leaf before leaves were bounded
// at 4 MiB, and push refused it ("does not fit in a 4983616-byte
// attachment"). Now its nodes fit 6 MiB attachments: it pushes, clones and
// restores with every xattr. tmpfs holds the xattrs (ext4 here holds 4 KiB).
TEST_F(RemoteE2E, DirectoryOfLargeXattrsFitsInAttachments) {
  struct Tmpfs {
    std::string path;
    bool mounted = false;
    explicit Tmpfs(std::string p) : path(std::move(p)) {
      fs::create_directories(path);
      mounted = mount("tmpfs", path.c_str(), "tmpfs", 0, "size=64m") == 0;
    }
    ~Tmpfs() {
      if (mounted) umount2(path.c_str(), MNT_DETACH);
    }
  };
  Tmpfs src(dir_ + "/xsrc"), out(dir_ + "/xout");
  if (!src.mounted || !out.mounted) GTEST_SKIP() << "needs root to mount a tmpfs";
  std::map<std::string, std::string> values;
  for (int i = 0; i < 100; i++) {
    std::string name = "f" + std::to_string(i);
    WriteFile(src.path + "/" + name, "file " + name);
    values[name] = RandomBytes(90 * 1024, 100 + i);  // two values: one is at most 64 KiB
    const std::string& v = values[name];
    if (setxattr((src.path + "/" + name).c_str(), "user.a", v.data(), v.size() / 2, 0) != 0 ||
        setxattr((src.path + "/" + name).c_str(), "user.b", v.data() + v.size() / 2, v.size() - v.size() / 2, 0) != 0)
      GTEST_SKIP() << "tmpfs here does not hold these xattrs: " << strerror(errno);
  }
  Emulator emu("--seed 21 --create-window 1");
  ASSERT_GT(emu.port(), 0);
  ASSERT_EQ(Hashfs("a", "init").code, 0);
  auto backup = Hashfs("a", "backup " + src.path + " --volume x");
  ASSERT_EQ(backup.code, 0) << backup.err;
  AddRemote("a", emu, "--attachment-limit 6291456 --request-limit 20000000");
  auto push = Hashfs("a", "push origin");
  ASSERT_EQ(push.code, 0) << push.err;
  auto clone = Hashfs("b", "clone origin " + RemoteArgs(emu) + " --all");
  ASSERT_EQ(clone.code, 0) << clone.err;
  EXPECT_EQ(Hashfs("b", "verify").code, 0);
  auto restore = Hashfs("b", "restore x " + out.path + "/r");
  ASSERT_EQ(restore.code, 0) << restore.out << restore.err;
  ExpectSameTree(src.path, out.path + "/r");
  for (const auto& [name, v] : values) {
    std::string got;
    for (const char* attr : {"user.a", "user.b"}) {
      std::string part(64 * 1024, '\0');
      ssize_t n = getxattr((out.path + "/r/" + name).c_str(), attr, part.data(), part.size());
      ASSERT_GT(n, 0) << name << " " << attr << ": " << strerror(errno);
      got += part.substr(0, static_cast<size_t>(n));
    }
    EXPECT_TRUE(got == v) << name;
  }
}

// A lazily cloned store mounted read-write: reads fetch what they need from
// the channel (verified), writes go to the local store.
TEST_F(RemoteE2E, LazyCloneMountsAndFetchesOnRead) {
  if (geteuid() != 0 || access("/dev/fuse", R_OK | W_OK) != 0) GTEST_SKIP() << "needs root and /dev/fuse";
  Emulator emu("--seed 9 --create-window 1 --faults flip=0.05");
  MakeStore("a");
  AddRemote("a", emu, "--attachment-limit 262144");
  ASSERT_EQ(Hashfs("a", "push origin").code, 0);
  auto clone = Hashfs("b", "clone origin " + RemoteArgs(emu));
  ASSERT_EQ(clone.code, 0) << clone.err;
  uint64_t cdn0 = emu.Get("/_emulator/stats")["bytes_downloaded"].get<uint64_t>();
  std::string mnt = dir_ + "/mnt";
  fs::create_directories(mnt);
  auto m = Hashfs("b", "mount v1 " + mnt);
  ASSERT_EQ(m.code, 0) << m.err;
  struct Unmount {  // never leave a mount behind (TearDown deletes dir_)
    std::string mnt;
    ~Unmount() { (void)!system(("fusermount3 -u -z " + mnt + " 2>/dev/null").c_str()); }
  } guard{mnt};
  EXPECT_EQ(ReadFile(mnt + "/sub/deeper/small7"), ReadFile(dir_ + "/src/sub/deeper/small7"));
  EXPECT_EQ(ReadFile(mnt + "/big.bin"), ReadFile(dir_ + "/src/big.bin"));
  EXPECT_EQ(ReadFile(mnt + "/sub/text.txt"), ReadFile(dir_ + "/src/sub/text.txt"));
  EXPECT_GT(emu.Get("/_emulator/stats")["bytes_downloaded"].get<uint64_t>(), cdn0 + 1'500'000);
  WriteFile(mnt + "/written-in-clone", "local change");
  auto u = Hashfs("b", "umount " + mnt);
  ASSERT_EQ(u.code, 0) << u.err;
  auto cat = Hashfs("b", "cat v1:written-in-clone");
  EXPECT_EQ(cat.out, "local change") << cat.err;
}

}  // namespace
