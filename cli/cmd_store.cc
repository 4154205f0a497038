// init, stats, gc, verify.
#include <sys/stat.h>

#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/remote_open.h"
#include "tree/gc.h"
#include "tree/stats.h"
#include "tree/verify.h"

namespace hashfs::cli {
namespace {

Status MakeParents(const std::string& path) {
  for (size_t pos = 1; (pos = path.find('/', pos)) != std::string::npos; pos++) {
    std::string p = path.substr(0, pos);
    if (mkdir(p.c_str(), 0700) != 0 && errno != EEXIST) return Status::FromErrno(errno, "creating " + p);
  }
  return Status::Ok();
}

int RunInit(const GlobalOptions& g, const RepoConfig& cfg) {
  std::string path = StorePath(g);
  if (Status s = MakeParents(path); !s.ok()) return Fail(s);
  LmdbOptions lo;
  lo.create_if_missing = true;
  auto store = LmdbStore::Open(path, lo);
  if (!store.ok()) return Fail(store.status());
  if (Status s = Repository::Init(**store, cfg); !s.ok()) return Fail(s.WithContext(path));
  fmt::print("initialized hashfs store at {}\n", path);
  return kExitOk;
}

int RunStats(const GlobalOptions& g, bool as_json) {
  auto o = OpenRepo(ForStoreWideWalks(g));
  if (!o.ok()) return Fail(o.status());
  auto st = ComputeStats(*o->repo);
  if (!st.ok()) return Fail(st.status());
  const StoreStats& s = *st;
  if (as_json) {
    nlohmann::json j = {{"objects", s.objects},           {"data_objects", s.data_objects},
                        {"meta_objects", s.meta_objects}, {"commits", s.commits},
                        {"volumes", s.volumes},           {"snapshots", s.snapshots},
                        {"logical_bytes", s.logical_bytes}, {"unique_bytes", s.unique_bytes},
                        {"stored_bytes", s.stored_bytes}, {"disk_bytes", s.disk_bytes},
                        {"dedupe_ratio", s.dedupe_ratio}, {"compression_ratio", s.compression_ratio}};
    fmt::print("{}\n", j.dump(2));
    return kExitOk;
  }
  fmt::print("volumes:            {}\n", s.volumes);
  fmt::print("snapshots:          {}\n", s.snapshots);
  fmt::print("commits kept:       {}\n", s.commits);
  fmt::print("objects:            {} ({} data, {} metadata)\n", s.objects, s.data_objects, s.meta_objects);
  fmt::print("logical bytes:      {}\n", HumanBytes(s.logical_bytes));
  fmt::print("unique bytes:       {}\n", HumanBytes(s.unique_bytes));
  fmt::print("stored bytes:       {}\n", HumanBytes(s.stored_bytes));
  fmt::print("on disk:            {}\n", HumanBytes(s.disk_bytes));
  fmt::print("dedupe ratio:       {:.2f}x\n", s.dedupe_ratio);
  fmt::print("compression ratio:  {:.2f}x\n", s.compression_ratio);
  return kExitOk;
}

int RunGc(const GlobalOptions& g) {
  auto o = OpenRepo(ForStoreWideWalks(g));
  if (!o.ok()) return Fail(o.status());
  auto lazy = LazyRemoteName(*o->store);
  if (!lazy.ok()) return Fail(lazy.status());
  GcOptions opts;
  opts.missing_is_unfetched = !lazy->empty();
  auto r = CollectGarbage(*o->repo, opts);
  if (!r.ok()) {
    int code = Fail(r.status());
    return r.status().IsCorruption() ? kExitDamaged : code;
  }
  for (const auto& p : r->problems) fmt::print(stderr, "hashfs: gc: {}\n", p);
  fmt::print("reachable objects: {}\ndeleted objects:   {} ({})\nkept (too young):  {}\n", r->reachable,
             r->deleted, HumanBytes(r->deleted_bytes), r->kept_young);
  if (!lazy->empty())
    fmt::print("not fetched:       {} (lazy clone of remote '{}'; they stay on the remote)\n", r->not_fetched, *lazy);
  return r->problems.empty() ? kExitOk : kExitDamaged;
}

int RunVerify(const GlobalOptions& g, bool as_json) {
  auto o = OpenRepo(ForStoreWideWalks(g));
  if (!o.ok()) {
    // A store too damaged to open (e.g. a truncated data.mdb) is damage found.
    int code = Fail(o.status());
    return o.status().IsCorruption() ? kExitDamaged : code;
  }
  auto lazy = LazyRemoteName(*o->store);
  if (!lazy.ok()) return Fail(lazy.status());
  VerifyOptions opts;
  opts.missing_is_unfetched = !lazy->empty();
  std::atomic<uint64_t> done{0}, total{0};
  Result<VerifyReport> r = Status::IOError("not run");
  {
    ProgressLine line([&] { return fmt::format("verifying objects {}/{}", done.load(), total.load()); });
    r = VerifyStore(
        *o->repo,
        [&](uint64_t d, uint64_t t) {
          done = d;
          total = t;
        },
        opts);
  }
  if (!r.ok()) return Fail(r.status());
  if (as_json) {
    nlohmann::json j = {{"ok", r->ok()},
                        {"store_damage", r->store_damage},
                        {"objects_checked", r->objects_checked},
                        {"bytes_checked", r->bytes_checked},
                        {"corrupt_objects", r->corrupt_objects},
                        {"damaged_paths", r->damaged_paths},
                        {"objects_not_fetched", r->objects_not_fetched}};
    fmt::print("{}\n", j.dump(2));
  } else {
    for (const auto& d : r->store_damage) fmt::print("damaged store file: {}\n", d);
    if (!r->objects_checked_at_all)
      fmt::print("objects and references not checked: the store's index of them is damaged (restore the store "
                 "directory from a copy, or clone it from a remote)\n");
    for (const auto& c : r->corrupt_objects) fmt::print("corrupt object: {}\n", c);
    for (const auto& p : r->damaged_paths) fmt::print("damaged: {}\n", p);
    if (r->objects_checked_at_all)
      fmt::print("checked {} objects ({}): {}\n", r->objects_checked, HumanBytes(r->bytes_checked),
                 r->ok() ? "no errors" : "DAMAGE FOUND");
    else
      fmt::print("checked the store file only: DAMAGE FOUND\n");
    if (!lazy->empty())
      fmt::print("{} reachable objects are not fetched yet (lazy clone of remote '{}'; 'hashfs remote verify {}' "
                 "checks the remote)\n",
                 r->objects_not_fetched, *lazy, *lazy);
  }
  return r->ok() ? kExitOk : kExitDamaged;
}

}  // namespace

void AddStoreCommands(CLI::App& app, GlobalOptions& g, int* rc) {
  auto cfg = std::make_shared<RepoConfig>();
  auto* init = app.add_subcommand("init", "Create a new store");
  init->add_option("--chunk-min", cfg->chunking.min_size, "Minimum chunk size in bytes")->capture_default_str();
  init->add_option("--chunk-avg", cfg->chunking.avg_size, "Average chunk size in bytes (a power of two)")->capture_default_str();
  init->add_option("--chunk-max", cfg->chunking.max_size, "Maximum chunk size in bytes")->capture_default_str();
  init->add_option("--compression-level", cfg->zstd_level, "zstd level for new objects (0: off)")
      ->capture_default_str()
      ->check(CLI::Range(0, 19));
  init->callback([&g, rc, cfg] { *rc = RunInit(g, *cfg); });

  auto stats_json = std::make_shared<bool>(false);
  auto* stats = app.add_subcommand("stats", "Show sizes, dedupe and compression ratios");
  stats->add_flag("--json", *stats_json, "Print JSON");
  stats->callback([&g, rc, stats_json] { *rc = RunStats(g, *stats_json); });

  auto* gc = app.add_subcommand("gc", "Free objects no kept commit or snapshot reaches (safe while in use)");
  gc->callback([&g, rc] { *rc = RunGc(g); });

  auto verify_json = std::make_shared<bool>(false);
  auto* verify = app.add_subcommand("verify", "Re-hash every object and check every reference");
  verify->add_flag("--json", *verify_json, "Print JSON");
  verify->callback([&g, rc, verify_json] { *rc = RunVerify(g, *verify_json); });
}

}  // namespace hashfs::cli
