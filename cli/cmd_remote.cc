// remote add/ls/stats/verify/gc, push, pull, clone: the offsite copy in Discord.
#include <sys/stat.h>

#include <chrono>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "cli/remote_open.h"

namespace hashfs::cli {
namespace {

using remote::DiscordRemote;
using remote::RemoteConfig;
using remote::TransferProgress;

struct RemoteArgs {
  std::string name, kind;
  std::vector<std::string> channels;
  std::string api_url = "https://discord.com/api/v10";
  uint64_t attachment_limit = 10ull << 20;
  uint64_t request_limit = 25ull << 20;
  RemoteCreds creds;
  std::vector<std::string> refs;
  bool all = false, json = false;
  double sample = 100, waste = 0.5;
};

// "push: 120/400 objects  30.0 MiB of 80.0 MiB  12.0 MiB/s  ETA 0:04  (waiting for rate limit)"
std::function<std::string()> Renderer(const char* verb, TransferProgress& p, DiscordRemote& r) {
  auto start = std::chrono::steady_clock::now();
  return [verb, &p, &r, start] {
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (p.phase == 0) return fmt::format("{}: listing the remote...", verb);
    if (p.phase == 2) return fmt::format("{}: publishing refs...", verb);
    double rate = secs > 0 ? p.bytes_done / secs : 0;
    std::string eta;
    if (p.bytes_total > 0 && rate > 0)
      eta = " ETA " + FormatEta((static_cast<double>(p.bytes_total) - static_cast<double>(p.bytes_done)) / rate);
    std::string total = p.bytes_total > 0 ? " of " + HumanBytes(p.bytes_total) : "";
    std::string wait = r.api().limiter().counters().waiting_now > 0 ? "  (waiting for rate limit)" : "";
    return fmt::format("{}: {}/{} objects  {}{}  {}/s{}{}", verb, p.objects_done.load(), p.objects_total.load(),
                       HumanBytes(p.bytes_done), total, HumanBytes(static_cast<uint64_t>(rate)), eta, wait);
  };
}

void PrintWarnings(DiscordRemote& r) {
  for (const auto& w : r.TakeWarnings()) fmt::print(stderr, "hashfs: warning: {}\n", w);
}

Result<std::vector<uint64_t>> ParseChannels(const std::vector<std::string>& v) {
  std::vector<uint64_t> out;
  for (const auto& s : v) {
    char* end = nullptr;
    uint64_t id = std::strtoull(s.c_str(), &end, 10);
    if (s.empty() || *end || id == 0) return Status::InvalidArgument("bad channel id '" + s + "'");
    out.push_back(id);
  }
  if (out.empty()) return Status::InvalidArgument("at least one --channel is needed");
  return out;
}

Result<RemoteConfig> ConfigFrom(const RemoteArgs& a) {
  if (a.kind != "discord") return Status::InvalidArgument("unknown remote kind '" + a.kind + "' (only 'discord')");
  RemoteConfig c;
  c.name = a.name;
  HASHFS_ASSIGN_OR_RETURN(c.channels, ParseChannels(a.channels));
  c.api_url = a.api_url;
  c.attachment_limit = a.attachment_limit;
  c.request_limit = a.request_limit;
  if (c.attachment_limit < remote::kMinPackLimit || c.request_limit < c.attachment_limit)
    return Status::InvalidArgument("--attachment-limit must be at least 65536 and at most --request-limit");
  return c;
}

int RunAdd(const GlobalOptions& g, const RemoteArgs& a) {
  auto cfg = ConfigFrom(a);
  if (!cfg.ok()) return Fail(cfg.status());
  auto o = OpenRepo(g);
  if (!o.ok()) return Fail(o.status());
  if (auto existing = LoadRemoteConfig(*o->store, a.name); existing.ok())
    return Fail("a remote named '" + a.name + "' already exists");
  auto token = ReadToken(a.creds);
  if (!token.ok()) return Fail(token.status());
  auto pass = ReadPassphrase(a.creds);
  if (!pass.ok()) return Fail(pass.status());
  auto r = DiscordRemote::Open(*o->store, *cfg, *token);
  if (!r.ok()) return Fail(r.status());
  if (Status s = (*r)->Unlock(*pass, /*create=*/true); !s.ok()) return Fail(s);
  if (Status s = (*r)->SaveConfig(); !s.ok()) return Fail(s);
  fmt::print("remote {}: discord, {} channel(s), key unlocked\n", a.name, cfg->channels.size());
  return kExitOk;
}

int RunPush(const GlobalOptions& g, const RemoteArgs& a) {
  auto o = OpenRepo(g);
  if (!o.ok()) return Fail(o.status());
  auto r = OpenRemote(*o->store, a.name, a.creds);
  if (!r.ok()) return Fail(r.status());
  TransferProgress p;
  auto start = std::chrono::steady_clock::now();
  Result<remote::PushReport> rep = Status::IOError("not run");
  {
    ProgressLine line(Renderer("push", p, **r));
    rep = (*r)->Push(*o->repo, a.refs, &p);
  }
  PrintWarnings(**r);
  if (!rep.ok()) return Fail(rep.status());
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  auto& api = (*r)->api();
  if (a.json) {
    nlohmann::json j = {{"objects_uploaded", rep->objects_uploaded}, {"objects_present", rep->objects_present},
                        {"bytes_uploaded", rep->bytes_uploaded},     {"packs", rep->packs},
                        {"messages", rep->messages},                 {"published", rep->published},
                        {"refs_seq", rep->refs_seq},                 {"requests", api.limiter().counters().requests.load()},
                        {"rate_limited", api.limiter().counters().rate_limited.load()},
                        {"retries", api.counters().retries.load()},  {"seconds", secs}};
    fmt::print("{}\n", j.dump(2));
    return kExitOk;
  }
  if (rep->nothing_to_do) {
    fmt::print("remote {} is up to date ({} objects already there)\n", a.name, rep->objects_present);
    return kExitOk;
  }
  fmt::print("pushed {} objects in {} packs ({} messages, {}) in {:.1f}s; {} already on the remote\n",
             rep->objects_uploaded, rep->packs, rep->messages, HumanBytes(rep->bytes_uploaded), secs,
             rep->objects_present);
  fmt::print("published refs #{}: {}\n", rep->refs_seq, fmt::join(rep->published, ", "));
  return kExitOk;
}

int ReportPull(const remote::PullReport& rep, double secs, const std::string& what) {
  fmt::print("{}: fetched {} objects ({}) in {:.1f}s\n", what, rep.objects_fetched, HumanBytes(rep.bytes_fetched),
             secs);
  if (!rep.updated.empty()) fmt::print("updated: {}\n", fmt::join(rep.updated, ", "));
  for (const auto& s : rep.skipped) fmt::print(stderr, "hashfs: not updated: {}\n", s);
  return rep.skipped.empty() ? kExitOk : kExitPartial;
}

int RunPull(const GlobalOptions& g, const RemoteArgs& a) {
  auto o = OpenRepo(g);
  if (!o.ok()) return Fail(o.status());
  auto r = OpenRemote(*o->store, a.name, a.creds);
  if (!r.ok()) return Fail(r.status());
  auto lazy = LazyRemoteName(*o->store);
  if (!lazy.ok()) return Fail(lazy.status());
  bool fetch_all = *lazy != a.name || a.all;
  if (fetch_all && a.all && *lazy == a.name) (void)(*r)->index().Delete("lazy");
  TransferProgress p;
  auto start = std::chrono::steady_clock::now();
  Result<remote::PullReport> rep = Status::IOError("not run");
  {
    ProgressLine line(Renderer("pull", p, **r));
    rep = (*r)->Pull(*o->repo, fetch_all, &p);
  }
  PrintWarnings(**r);
  if (!rep.ok()) return Fail(rep.status());
  return ReportPull(*rep, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(), "pull");
}

int RunClone(const GlobalOptions& g, const RemoteArgs& a) {
  auto cfg = ConfigFrom(a);
  if (!cfg.ok()) return Fail(cfg.status());
  std::string path = StorePath(g);
  for (size_t pos = 1; (pos = path.find('/', pos)) != std::string::npos; pos++) {
    std::string d = path.substr(0, pos);
    if (mkdir(d.c_str(), 0700) != 0 && errno != EEXIST) return Fail(Status::FromErrno(errno, "creating " + d));
  }
  LmdbOptions lo;
  lo.create_if_missing = true;
  auto store = LmdbStore::Open(path, lo);
  if (!store.ok()) return Fail(store.status());
  auto existing = Repository::Open(**store);
  if (existing.ok()) {
    auto vols = (*existing)->Volumes();
    auto snaps = (*existing)->Snapshots();
    auto remotes = remote::RemoteIndex::Names(**store);
    if (!vols.ok() || !snaps.ok() || !remotes.ok() || !vols->empty() || !snaps->empty() || !remotes->empty())
      return Fail("store " + path + " is not empty: clone needs a new or empty store", kExitUsage);
  } else if (!existing.status().IsNotFound()) {
    return Fail(existing.status());
  }
  auto token = ReadToken(a.creds);
  if (!token.ok()) return Fail(token.status());
  auto pass = ReadPassphrase(a.creds);
  if (!pass.ok()) return Fail(pass.status());
  auto r = DiscordRemote::Open(**store, *cfg, *token);
  if (!r.ok()) return Fail(r.status());
  DiscordRemote& rem = **r;
  if (Status s = rem.Unlock(*pass, /*create=*/false); !s.ok()) return Fail(s);
  TransferProgress p;
  auto start = std::chrono::steady_clock::now();
  Result<remote::PullReport> rep = Status::IOError("not run");
  {
    ProgressLine line(Renderer("clone", p, rem));
    auto run = [&]() -> Result<remote::PullReport> {
      HASHFS_RETURN_IF_ERROR(rem.SyncIndex(true, &p));
      HASHFS_ASSIGN_OR_RETURN(auto refs, rem.LatestRefs());
      if (!refs) return Status::NotFound("remote '" + a.name + "' has nothing published yet");
      if (!existing.ok()) {
        RepoConfig rc = refs->repo;
        HASHFS_RETURN_IF_ERROR(Repository::Init(**store, rc));
      }
      HASHFS_RETURN_IF_ERROR(rem.SaveConfig());
      if (!a.all) HASHFS_RETURN_IF_ERROR(rem.index().Put("lazy", "1"));
      HASHFS_ASSIGN_OR_RETURN(auto repo, Repository::Open(**store));
      return rem.Pull(*repo, a.all, &p);
    };
    rep = run();
  }
  PrintWarnings(rem);
  if (!rep.ok()) return Fail(rep.status());
  return ReportPull(*rep, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(),
                    a.all ? "clone" : "clone (objects on demand)");
}

int RunLs(const GlobalOptions& g, const RemoteArgs& a) {
  auto o = OpenRepo(g);
  if (!o.ok()) return Fail(o.status());
  auto r = OpenRemote(*o->store, a.name, a.creds);
  if (!r.ok()) return Fail(r.status());
  if (Status s = (*r)->SyncIndex(false); !s.ok()) return Fail(s);
  auto refs = (*r)->LatestRefs();
  PrintWarnings(**r);
  if (!refs.ok()) return Fail(refs.status());
  if (!*refs) {
    if (a.json)
      fmt::print("{{}}\n");
    else
      fmt::print("remote {} has nothing published\n", a.name);
    return kExitOk;
  }
  const auto& rr = **refs;
  if (a.json) {
    nlohmann::json vols = nlohmann::json::array(), snaps = nlohmann::json::array();
    for (const auto& [n, v] : rr.volumes)
      vols.push_back({{"name", n}, {"head", v.head.Hex()}, {"commits", v.history.size()}});
    for (const auto& [n, d] : rr.snapshots) snaps.push_back({{"name", n}, {"commit", d.Hex()}});
    nlohmann::json j = {{"seq", rr.seq}, {"time", FormatTime(rr.time_ns)}, {"volumes", vols}, {"snapshots", snaps}};
    fmt::print("{}\n", j.dump(2));
    return kExitOk;
  }
  fmt::print("refs #{} published {}\n", rr.seq, FormatTime(rr.time_ns));
  for (const auto& [n, v] : rr.volumes)
    fmt::print("volume   {:<24} {}  {} commits\n", n, v.head.Hex().substr(0, 12), v.history.size());
  for (const auto& [n, d] : rr.snapshots) fmt::print("snapshot {:<24} {}\n", n, d.Hex().substr(0, 12));
  return kExitOk;
}

int RunStats(const GlobalOptions& g, const RemoteArgs& a) {
  auto o = OpenRepoForReading(g);
  if (!o.ok()) return Fail(o.status());
  auto r = OpenRemote(*o->store, a.name, a.creds);
  if (!r.ok()) return Fail(r.status());
  auto st = (*r)->Stats(*o->repo);
  PrintWarnings(**r);
  if (!st.ok()) return Fail(st.status());
  const auto& s = *st;
  if (a.json) {
    nlohmann::json j = {{"messages", s.messages},     {"packs", s.packs},
                        {"pack_bytes", s.pack_bytes}, {"objects", s.objects},
                        {"live_objects", s.live_objects}, {"live_bytes", s.live_bytes},
                        {"dead_bytes", s.dead_bytes}, {"duplicate_objects", s.duplicate_objects},
                        {"refs_seq", s.refs_seq},     {"gc_generation", s.gc_generation},
                        {"volumes", s.volumes},       {"snapshots", s.snapshots}};
    fmt::print("{}\n", j.dump(2));
    return kExitOk;
  }
  fmt::print("messages:           {}\n", s.messages);
  fmt::print("packs:              {} ({})\n", s.packs, HumanBytes(s.pack_bytes));
  fmt::print("objects:            {} ({} live, {} stored twice)\n", s.objects, s.live_objects, s.duplicate_objects);
  fmt::print("live bytes:         {}\n", HumanBytes(s.live_bytes));
  fmt::print("waste:              {} ({:.1f}%)\n", HumanBytes(s.dead_bytes),
             s.pack_bytes ? 100.0 * double(s.dead_bytes) / double(s.pack_bytes) : 0.0);
  fmt::print("refs:               #{}, {} volumes, {} snapshots\n", s.refs_seq, s.volumes, s.snapshots);
  return kExitOk;
}

int RunVerify(const GlobalOptions& g, const RemoteArgs& a) {
  auto o = OpenRepoForReading(g);
  if (!o.ok()) return Fail(o.status());
  auto r = OpenRemote(*o->store, a.name, a.creds);
  if (!r.ok()) return Fail(r.status());
  TransferProgress p;
  Result<remote::RemoteVerifyReport> rep = Status::IOError("not run");
  {
    ProgressLine line([&p] { return fmt::format("verify: {}/{} packs", p.objects_done.load(), p.objects_total.load()); });
    rep = (*r)->Verify(*o->repo, a.sample, &p);
  }
  PrintWarnings(**r);
  if (!rep.ok()) return Fail(rep.status());
  if (a.json) {
    nlohmann::json j = {{"packs_total", rep->packs_total}, {"packs_checked", rep->packs_checked},
                        {"objects_checked", rep->objects_checked}, {"bytes_checked", rep->bytes_checked},
                        {"problems", rep->problems}, {"ok", rep->ok()}};
    fmt::print("{}\n", j.dump(2));
  } else {
    for (const auto& pr : rep->problems) fmt::print(stderr, "hashfs: {}\n", pr);
    fmt::print("checked {} of {} packs ({} objects, {}): {}\n", rep->packs_checked, rep->packs_total,
               rep->objects_checked, HumanBytes(rep->bytes_checked),
               rep->ok() ? "no problems" : fmt::format("{} problems", rep->problems.size()));
  }
  return rep->ok() ? kExitOk : kExitDamaged;
}

int RunGc(const GlobalOptions& g, const RemoteArgs& a) {
  auto o = OpenRepoForReading(g);
  if (!o.ok()) return Fail(o.status());
  auto r = OpenRemote(*o->store, a.name, a.creds);
  if (!r.ok()) return Fail(r.status());
  TransferProgress p;
  Result<remote::RemoteGcReport> rep = Status::IOError("not run");
  {
    ProgressLine line(Renderer("remote gc", p, **r));
    rep = (*r)->Gc(*o->repo, a.waste, &p);
  }
  PrintWarnings(**r);
  if (!rep.ok()) return Fail(rep.status());
  if (a.json) {
    nlohmann::json j = {{"messages_deleted", rep->messages_deleted}, {"packs_deleted", rep->packs_deleted},
                        {"packs_repacked", rep->packs_repacked},     {"objects_moved", rep->objects_moved},
                        {"bytes_freed", rep->bytes_freed},           {"refs_messages_deleted", rep->refs_messages_deleted}};
    fmt::print("{}\n", j.dump(2));
    return kExitOk;
  }
  fmt::print("deleted {} messages ({} packs, {}); repacked {} packs ({} objects); removed {} old ref-log messages\n",
             rep->messages_deleted, rep->packs_deleted, HumanBytes(rep->bytes_freed), rep->packs_repacked,
             rep->objects_moved, rep->refs_messages_deleted);
  return kExitOk;
}

void AddCreds(CLI::App* c, RemoteArgs& a) {
  c->add_option("--token-file", a.creds.token_file, "File holding the bot token (default: $HASHFS_DISCORD_TOKEN)");
  c->add_option("--password-file", a.creds.password_file, "File holding the passphrase (default: $HASHFS_PASSWORD, else a prompt)");
}

void AddTarget(CLI::App* c, RemoteArgs& a) {
  c->add_option("KIND", a.kind, "Remote kind: discord")->required();
  c->add_option("--channel", a.channels, "Channel id (repeatable: packs are spread over the channels)")->required();
  c->add_option("--api-url", a.api_url, "Discord API base URL");
  c->add_option("--attachment-limit", a.attachment_limit, "Largest attachment in bytes (default 10 MiB)");
  c->add_option("--request-limit", a.request_limit, "Largest message create in bytes (default 25 MiB)");
}

}  // namespace

void AddRemoteCommands(CLI::App& app, GlobalOptions& g, int* rc) {
  auto* rem = app.add_subcommand("remote", "Offsite copies in Discord: add, ls, stats, verify, gc");
  rem->require_subcommand(1);

  auto add = std::make_shared<RemoteArgs>();
  auto* c = rem->add_subcommand("add", "Configure a remote (creates its key on a new channel)");
  c->add_option("NAME", add->name, "Remote name")->required();
  AddTarget(c, *add);
  AddCreds(c, *add);
  c->callback([&g, rc, add] { *rc = RunAdd(g, *add); });

  auto ls = std::make_shared<RemoteArgs>();
  c = rem->add_subcommand("ls", "Refs and snapshots on the remote");
  c->add_option("NAME", ls->name, "Remote name")->required();
  c->add_flag("--json", ls->json, "Print JSON");
  AddCreds(c, *ls);
  c->callback([&g, rc, ls] { *rc = RunLs(g, *ls); });

  auto st = std::make_shared<RemoteArgs>();
  c = rem->add_subcommand("stats", "Packs, bytes, messages and waste on the remote");
  c->add_option("NAME", st->name, "Remote name")->required();
  c->add_flag("--json", st->json, "Print JSON");
  AddCreds(c, *st);
  c->callback([&g, rc, st] { *rc = RunStats(g, *st); });

  auto ve = std::make_shared<RemoteArgs>();
  c = rem->add_subcommand("verify", "Download packs and check every object (exit 4 on damage)");
  c->add_option("NAME", ve->name, "Remote name")->required();
  c->add_option("--sample", ve->sample, "Check this percentage of the packs (default 100)")->check(CLI::Range(0.0, 100.0));
  c->add_flag("--json", ve->json, "Print JSON");
  AddCreds(c, *ve);
  c->callback([&g, rc, ve] { *rc = RunVerify(g, *ve); });

  auto gc = std::make_shared<RemoteArgs>();
  c = rem->add_subcommand("gc", "Delete remote packs no published ref reaches; repack wasteful ones");
  c->add_option("NAME", gc->name, "Remote name")->required();
  c->add_option("--waste", gc->waste, "Repack packs more than this fraction dead (default 0.5)")->check(CLI::Range(0.0, 1.0));
  c->add_flag("--json", gc->json, "Print JSON");
  AddCreds(c, *gc);
  c->callback([&g, rc, gc] { *rc = RunGc(g, *gc); });

  auto push = std::make_shared<RemoteArgs>();
  c = app.add_subcommand("push", "Upload what the remote lacks, then publish the refs");
  c->add_option("NAME", push->name, "Remote name")->required();
  c->add_option("REFS", push->refs, "Volumes or snapshots (default: all)");
  c->add_flag("--json", push->json, "Print JSON");
  AddCreds(c, *push);
  c->callback([&g, rc, push] { *rc = RunPush(g, *push); });

  auto pull = std::make_shared<RemoteArgs>();
  c = app.add_subcommand("pull", "Fetch the remote's refs and the objects they reach");
  c->add_option("NAME", pull->name, "Remote name")->required();
  c->add_flag("--all", pull->all, "In a lazily cloned store: fetch every object now");
  AddCreds(c, *pull);
  c->callback([&g, rc, pull] { *rc = RunPull(g, *pull); });

  auto clone = std::make_shared<RemoteArgs>();
  c = app.add_subcommand("clone", "Make a new store from a remote (objects on demand unless --all)");
  c->add_option("NAME", clone->name, "Remote name")->required();
  AddTarget(c, *clone);
  c->add_flag("--all", clone->all, "Fetch every object now");
  AddCreds(c, *clone);
  c->callback([&g, rc, clone] { *rc = RunClone(g, *clone); });
}

}  // namespace hashfs::cli
