// log, volumes, snapshot, snapshots, revert, forget.
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "tree/forget.h"
#include "tree/gc.h"

namespace hashfs::cli {
namespace {

int RunLog(const GlobalOptions& g, const std::string& volume, size_t limit, bool as_json) {
  auto o = OpenRepo(g);
  if (!o.ok()) return Fail(o.status());
  auto hist = o->repo->History(volume, limit);
  if (!hist.ok()) return Fail(hist.status());
  // JSON is streamed one commit at a time, laid out as nlohmann's dump(2) of
  // the whole array would be: a volume may hold a million commits.
  if (as_json) fmt::print("{}", hist->empty() ? "[]" : "[\n");
  size_t n = 0;
  for (const auto& h : *hist) {
    auto c = o->repo->LoadCommit(h.commit);
    if (!c.ok()) return Fail(c.status());
    if (as_json) {
      nlohmann::json j = {{"id", h.commit.Hex()},
                          {"ref", fmt::format("{}~{}", volume, n)},
                          {"seq", h.seq},
                          {"time_ns", c->time_ns},
                          {"time", FormatTime(c->time_ns)},
                          {"parent", c->parent.IsZero() ? nlohmann::json(nullptr) : nlohmann::json(c->parent.Hex())},
                          {"root", c->root.content.Hex()},
                          {"description", c->description}};
      std::string text = j.dump(2);
      std::string indented = "  ";
      for (char ch : text) {
        indented += ch;
        if (ch == '\n') indented += "  ";
      }
      fmt::print("{}{}\n", indented, n + 1 < hist->size() ? "," : "");
    } else {
      fmt::print("{}  {}  {}~{:<3} {}\n", h.commit.Hex().substr(0, 12), FormatTime(c->time_ns), volume, n,
                 c->description);
    }
    n++;
  }
  if (as_json) fmt::print("{}\n", hist->empty() ? "" : "]");
  return kExitOk;
}

int RunVolumes(const GlobalOptions& g, bool as_json) {
  auto o = OpenRepo(g);
  if (!o.ok()) return Fail(o.status());
  auto vols = o->repo->Volumes();
  if (!vols.ok()) return Fail(vols.status());
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& v : *vols) {
    auto head = o->repo->Head(v);
    if (!head.ok() || !*head) continue;
    auto hist = o->repo->History(v);
    size_t count = hist.ok() ? hist->size() : 0;
    auto c = o->repo->LoadCommit(**head);
    int64_t t = c.ok() ? c->time_ns : 0;
    if (as_json)
      arr.push_back({{"name", v}, {"head", (*head)->Hex()}, {"commits", count}, {"time", FormatTime(t)}});
    else
      fmt::print("{:<24} {}  {} commits, last {}\n", v, (*head)->Hex().substr(0, 12), count, FormatTime(t));
  }
  if (as_json) fmt::print("{}\n", arr.dump(2));
  return kExitOk;
}

int RunSnapshot(const GlobalOptions& g, const std::string& name, const std::string& ref) {
  auto o = OpenRepo(g);
  if (!o.ok()) return Fail(o.status());
  // REF is resolved to a kept commit before the snapshot is written: a forget
  // + gc in between could delete the commit. So note the gc epoch first and,
  // if a collection swept meanwhile, check the commit is still complete (a
  // sweep after the snapshot was written keeps it: it re-reads the roots).
  auto epoch = o->repo->GcEpoch();
  if (!epoch.ok()) return Fail(epoch.status());
  auto id = o->repo->Resolve(ref);
  if (!id.ok()) return Fail(id.status());
  if (Status s = o->repo->CreateSnapshot(name, *id); !s.ok()) return Fail(s);
  auto after = o->repo->GcEpoch();
  if (!after.ok()) return Fail(after.status());
  if (*after != *epoch) {
    if (Status cs = CheckComplete(*o->repo, o->repo->getter(), *id); !cs.ok()) {
      (void)o->repo->DeleteSnapshot(name);
      return Fail(cs.WithContext("a garbage collection removed commit " + id->Hex().substr(0, 12) +
                                 " while the snapshot was taken; no snapshot created"));
    }
  }
  fmt::print("snapshot {} -> {}\n", name, id->Hex().substr(0, 12));
  return kExitOk;
}

int RunSnapshots(const GlobalOptions& g, bool as_json) {
  auto o = OpenRepo(g);
  if (!o.ok()) return Fail(o.status());
  auto snaps = o->repo->Snapshots();
  if (!snaps.ok()) return Fail(snaps.status());
  nlohmann::json arr = nlohmann::json::array();
  for (const auto& [name, id] : *snaps) {
    auto c = o->repo->LoadCommit(id);
    std::string when = c.ok() ? FormatTime(c->time_ns) : "?";
    std::string desc = c.ok() ? c->description : c.status().ToString();
    if (as_json)
      arr.push_back({{"name", name}, {"commit", id.Hex()}, {"time", when}, {"description", desc}});
    else
      fmt::print("{:<24} {}  {}  {}\n", name, id.Hex().substr(0, 12), when, desc);
  }
  if (as_json) fmt::print("{}\n", arr.dump(2));
  return kExitOk;
}

int RunRevert(const GlobalOptions& g, const std::string& volume, const std::string& ref) {
  auto o = OpenRepo(g);
  if (!o.ok()) return Fail(o.status());
  Repository& repo = *o->repo;
  // The session (and the gc epoch Advance checks) before REF is resolved: a
  // forget + gc between resolving and committing would otherwise go
  // unnoticed and leave a head whose tree was deleted.
  auto session = WriterSession::Start(repo, "revert " + volume);
  if (!session.ok()) return Fail(session.status());
  auto target = repo.Resolve(ref);
  if (!target.ok()) return Fail(target.status());
  auto tc = repo.LoadCommit(*target);
  if (!tc.ok()) return Fail(tc.status());
  std::string description = "revert to " + target->Hex().substr(0, 12) + " (" + ref + ")";
  auto mounted = RevertMountedVolume(g, volume, *target, description);
  if (!mounted.ok()) return Fail(mounted.status());
  if (*mounted) {
    auto head = repo.Head(volume);
    if (!head.ok()) return Fail(head.status());
    fmt::print("volume {} now at commit {} (tree of {}); the mount at it switched over\n", volume,
               *head ? (*head)->Hex().substr(0, 12) : "?", target->Hex().substr(0, 12));
    return kExitOk;
  }
  for (int attempt = 0; attempt < 20; attempt++) {
    auto head = repo.Head(volume);
    if (!head.ok()) return Fail(head.status());
    if (!*head) return Fail("no volume named '" + volume + "'");
    Commit c;
    c.root = tc->root;
    c.links = tc->links;
    c.parent = **head;
    c.time_ns = WallClockNs();
    c.description = description;
    ObjectWriter w(repo.store(), repo.config().zstd_level);
    auto id = w.Put(EncodeCommit(c), ObjectKind::kMeta);
    if (!id.ok()) return Fail(id.status());
    if (Status s = w.Flush(); !s.ok()) return Fail(s);
    Status s = repo.Advance(volume, *head, *id, (*session)->epoch());
    if (s.ok()) {
      fmt::print("volume {} now at commit {} (tree of {})\n", volume, id->Hex().substr(0, 12),
                 target->Hex().substr(0, 12));
      return kExitOk;
    }
    if (s.code() == Status::Code::kStale) {
      auto epoch = repo.GcEpoch();
      if (!epoch.ok()) return Fail(epoch.status());
      if (Status cs = CheckComplete(repo, repo.getter(), *id); !cs.ok()) return Fail(cs);
      (*session)->set_epoch(*epoch);
      continue;
    }
    if (s.code() != Status::Code::kConflict) return Fail(s);
  }
  return Fail("volume '" + volume + "' keeps changing; try again");
}

struct ForgetArgs {
  std::string volume;
  ForgetPolicy policy;
  bool dry_run = false;
};

int RunForget(const GlobalOptions& g, const ForgetArgs& a) {
  const ForgetPolicy& p = a.policy;
  if (p.keep_last <= 0 && p.keep_hourly <= 0 && p.keep_daily <= 0 && p.keep_weekly <= 0 && p.keep_monthly <= 0)
    return Fail("forget needs at least one --keep-* option", kExitUsage);
  auto o = OpenRepo(g);
  if (!o.ok()) return Fail(o.status());
  auto r = Forget(*o->repo, a.volume, a.policy, a.dry_run);
  if (!r.ok()) return Fail(r.status());
  fmt::print("{} {} commits, keeping {}{}\n", a.dry_run ? "would forget" : "forgot", r->removed.size(),
             r->kept.size(), a.dry_run ? "" : " (run 'hashfs gc' to free space)");
  for (const auto& h : r->removed) fmt::print("  - {}\n", h.commit.Hex().substr(0, 12));
  return kExitOk;
}

}  // namespace

void AddHistoryCommands(CLI::App& app, GlobalOptions& g, int* rc) {
  auto vol = std::make_shared<std::string>();
  auto limit = std::make_shared<size_t>(0);
  auto json = std::make_shared<bool>(false);
  auto* log = app.add_subcommand("log", "Show a volume's commits, newest first");
  log->add_option("VOLUME", *vol, "Volume")->required();
  log->add_option("-n,--max-count", *limit, "Show at most N commits");
  log->add_flag("--json", *json, "Print JSON");
  log->callback([&g, rc, vol, limit, json] { *rc = RunLog(g, *vol, *limit, *json); });

  auto vjson = std::make_shared<bool>(false);
  auto* vols = app.add_subcommand("volumes", "List volumes");
  vols->add_flag("--json", *vjson, "Print JSON");
  vols->callback([&g, rc, vjson] { *rc = RunVolumes(g, *vjson); });

  auto sname = std::make_shared<std::string>();
  auto sref = std::make_shared<std::string>();
  auto* snap = app.add_subcommand("snapshot", "Name a commit: an immutable reference kept by gc");
  snap->add_option("NAME", *sname, "Snapshot name")->required();
  snap->add_option("REF", *sref, "Commit to name (volume, VOLUME~N, snapshot or commit id)")->required();
  snap->callback([&g, rc, sname, sref] { *rc = RunSnapshot(g, *sname, *sref); });

  auto sjson = std::make_shared<bool>(false);
  auto* snaps = app.add_subcommand("snapshots", "List snapshots");
  snaps->add_flag("--json", *sjson, "Print JSON");
  snaps->callback([&g, rc, sjson] { *rc = RunSnapshots(g, *sjson); });

  auto rvol = std::make_shared<std::string>();
  auto rref = std::make_shared<std::string>();
  auto* revert = app.add_subcommand("revert", "Make a new commit on VOLUME with REF's tree (history is kept)");
  revert->add_option("VOLUME", *rvol, "Volume")->required();
  revert->add_option("REF", *rref, "State to return to")->required();
  revert->callback([&g, rc, rvol, rref] { *rc = RunRevert(g, *rvol, *rref); });

  auto fa = std::make_shared<ForgetArgs>();
  auto* forget = app.add_subcommand("forget", "Drop old commits from a volume's history (snapshots are kept)");
  forget->add_option("VOLUME", fa->volume, "Volume")->required();
  forget->add_option("--keep-last", fa->policy.keep_last, "Keep the N newest commits")->check(CLI::NonNegativeNumber);
  forget->add_option("--keep-hourly", fa->policy.keep_hourly, "Keep the newest commit of each of the last N hours")->check(CLI::NonNegativeNumber);
  forget->add_option("--keep-daily", fa->policy.keep_daily, "... of each of the last N days")->check(CLI::NonNegativeNumber);
  forget->add_option("--keep-weekly", fa->policy.keep_weekly, "... of each of the last N weeks")->check(CLI::NonNegativeNumber);
  forget->add_option("--keep-monthly", fa->policy.keep_monthly, "... of each of the last N months")->check(CLI::NonNegativeNumber);
  forget->add_flag("--dry-run,-n", fa->dry_run, "Only show what would be forgotten");
  forget->callback([&g, rc, fa] { *rc = RunForget(g, *fa); });
}

}  // namespace hashfs::cli
