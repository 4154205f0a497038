// backup, restore.
#include <unistd.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/cli.h"
#include "tree/backup.h"
#include "tree/restore.h"

namespace hashfs::cli {
namespace {

struct BackupArgs {
  std::string dir, volume, description;
  std::vector<std::string> excludes;
  std::vector<std::string> exclude_files;
  bool json = false;
};

int RunBackup(const GlobalOptions& g, BackupArgs a) {
  for (const auto& f : a.exclude_files) {
    std::ifstream in(f);
    if (!in) return Fail("cannot read exclude file " + f, kExitUsage);
    for (std::string line; std::getline(in, line);) {
      if (line.empty() || line[0] == '#') continue;
      a.excludes.push_back(line);
    }
  }
  char* real = realpath(a.dir.c_str(), nullptr);
  if (!real) return Fail(Status::FromErrno(errno, a.dir));
  std::string source = real;
  free(real);
  if (VolumeMountedReadWrite(g, a.volume))
    return Fail("volume " + a.volume + " is mounted read-write; back up into another volume or unmount it first");
  auto o = OpenRepo(g);
  if (!o.ok()) return Fail(o.status());
  BackupOptions opts;
  opts.excludes = a.excludes;
  opts.description = a.description;
  BackupProgress progress;
  auto start = std::chrono::steady_clock::now();
  Result<BackupReport> r = Status::IOError("not run");
  {
    ProgressLine line([&] {
      double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      double rate = secs > 0 ? progress.bytes_done / secs : 0;
      std::string total = progress.scan_done ? fmt::format("/{}", progress.total_files.load()) : "";
      std::string eta;
      if (progress.scan_done && rate > 0)
        eta = " ETA " + FormatEta((static_cast<double>(progress.total_bytes) - progress.bytes_done) / rate);
      return fmt::format("files {}{}  {}{}  {}/s{}", progress.files_done.load(), total,
                         HumanBytes(progress.bytes_done),
                         progress.scan_done ? " of " + HumanBytes(progress.total_bytes) : "",
                         HumanBytes(static_cast<uint64_t>(rate)), eta);
    });
    r = Backup(*o->repo, source, a.volume, opts, &progress);
  }
  if (!r.ok()) return Fail(r.status());
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (const auto& e : r->errors) fmt::print(stderr, "hashfs: skipped {}\n", e);
  if (a.json) {
    nlohmann::json j = {{"commit", r->commit.Hex()},          {"volume", a.volume},
                        {"files_new", r->files_new},          {"files_changed", r->files_changed},
                        {"files_unchanged", r->files_unchanged}, {"dirs", r->dirs},
                        {"others", r->others},                {"bytes_total", r->bytes_total},
                        {"bytes_read", r->bytes_read},        {"bytes_added", r->bytes_added},
                        {"objects_added", r->objects_added},  {"errors", r->errors},
                        {"seconds", secs}};
    fmt::print("{}\n", j.dump(2));
  } else {
    fmt::print("commit {} on volume {}\n", r->commit.Hex().substr(0, 16), a.volume);
    fmt::print("files: {} new, {} changed, {} unchanged; {} directories, {} other\n", r->files_new,
               r->files_changed, r->files_unchanged, r->dirs, r->others);
    fmt::print("read {} of {}; added {} after dedupe and compression ({} objects) in {:.1f}s\n",
               HumanBytes(r->bytes_read), HumanBytes(r->bytes_total), HumanBytes(r->bytes_added),
               r->objects_added, secs);
    if (!r->errors.empty()) fmt::print("{} items could not be read and were skipped\n", r->errors.size());
  }
  return r->errors.empty() ? kExitOk : kExitPartial;
}

int RunRestore(const GlobalOptions& g, const std::string& src, const std::string& dest, bool owners,
               bool no_owners) {
  auto [ref, path] = SplitRefPath(src);
  auto o = OpenRepoForReading(g);
  if (!o.ok()) return Fail(o.status());
  auto id = o->repo->Resolve(ref);
  if (!id.ok()) return Fail(id.status());
  auto commit = o->repo->LoadCommit(*id);
  if (!commit.ok()) return Fail(commit.status());
  RestoreOptions opts;
  opts.owners = owners || (!no_owners && geteuid() == 0);
  RestoreProgress progress;
  Result<RestoreReport> r = Status::IOError("not run");
  {
    ProgressLine line([&] {
      return fmt::format("restored {} files, {}", progress.files_done.load(), HumanBytes(progress.bytes_done));
    });
    r = Restore(*o->repo, *commit, path, dest, opts, &progress);
  }
  if (!r.ok()) return Fail(r.status());
  for (const auto& e : r->errors) fmt::print(stderr, "hashfs: {}\n", e);
  fmt::print("restored {} files ({}), {} directories, {} other into {}\n", r->files, HumanBytes(r->bytes), r->dirs,
             r->others, dest);
  if (!r->errors.empty()) fmt::print("{} problems (listed above)\n", r->errors.size());
  return r->errors.empty() ? kExitOk : kExitPartial;
}

}  // namespace

void AddBackupCommands(CLI::App& app, GlobalOptions& g, int* rc) {
  auto a = std::make_shared<BackupArgs>();
  auto* b = app.add_subcommand("backup", "Record DIR as a new commit on a volume (incremental, deduplicated)");
  b->add_option("DIR", a->dir, "Directory to back up")->required();
  b->add_option("--volume,-v", a->volume, "Volume to commit to (created on first use)")->required();
  b->add_option("--exclude,-e", a->excludes, "fnmatch pattern to leave out (repeatable)");
  b->add_option("--exclude-file", a->exclude_files, "File with one exclude pattern per line");
  b->add_option("--message,-m", a->description, "Commit description");
  b->add_flag("--json", a->json, "Print the summary as JSON");
  b->callback([&g, rc, a] { *rc = RunBackup(g, *a); });

  auto src = std::make_shared<std::string>();
  auto dest = std::make_shared<std::string>();
  auto owners = std::make_shared<bool>(false);
  auto no_owners = std::make_shared<bool>(false);
  auto* r = app.add_subcommand("restore", "Restore REF[:PATH] into DEST");
  r->add_option("SOURCE", *src, "REF or REF:PATH")->required();
  r->add_option("DEST", *dest, "Destination directory (created if missing)")->required();
  r->add_flag("--owners", *owners, "Restore owners (default when run as root)");
  r->add_flag("--no-owners", *no_owners, "Do not restore owners");
  r->callback([&g, rc, src, dest, owners, no_owners] { *rc = RunRestore(g, *src, *dest, *owners, *no_owners); });
}

}  // namespace hashfs::cli
