// Shared pieces of the hashfs command-line tool: exit codes, store opening,
// REF[:PATH] parsing, output helpers. The CLI is the composition root: it is
// the only layer that turns Status into exit codes and messages.
#pragma once

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include <memory>
#include <string>

#include "cas/lmdb_store.h"
#include "tree/repository.h"

namespace hashfs::cli {

// Documented exit codes (README.md, design.md).
enum Exit : int {
  kExitOk = 0,
  kExitError = 1,    // the operation failed; nothing was changed by it
  kExitUsage = 2,    // bad command line
  kExitPartial = 3,  // done, but some files were skipped or damaged (listed on stderr)
  kExitDamaged = 4,  // verify found damage
};

struct GlobalOptions {
  std::string store;         // --store, else $HASHFS_STORE, else $XDG_DATA_HOME/hashfs
  bool sync_mounts = true;   // OpenRepo* first asks read-write mounts to commit what is pending
  uint64_t resident_map_budget = LmdbOptions{}.resident_map_budget;  // for the store OpenRepo* opens
};

// g with the store mapping budget for commands that look objects up all
// over the store's B-tree (verify, stats, gc): 256 MiB instead of 16. With
// the kernel mapping a large page-cache folio per touch, 16 MiB fills within
// a few lookups, and every drop then refaults the tree's upper pages (verify
// of 30,000 commits: 14 s at 16 MiB, 1.7 s at 256). backup and restore keep
// 16 MiB (they re-touch little; their peak RSS is a benchmark target).
GlobalOptions ForStoreWideWalks(GlobalOptions g);

// An open store and repository.
struct Opened {
  std::unique_ptr<LmdbStore> store;
  std::unique_ptr<ObjectStore> reader;  // optional decorator repo reads through (remote fetch on demand)
  std::unique_ptr<Repository> repo;
};

std::string StorePath(const GlobalOptions& g);
// The existing store at StorePath(g), with g's options.
Result<std::unique_ptr<LmdbStore>> OpenStore(const GlobalOptions& g);
Result<Opened> OpenRepo(const GlobalOptions& g);
// As OpenRepo; when the store was cloned lazily from a remote, the repository
// reads through a fetching store (missing objects come from the remote; cli/remote_open.cc).
Result<Opened> OpenRepoForReading(const GlobalOptions& g);

// Prints "hashfs: <message>" on stderr and returns kExitError (or kExitUsage
// for InvalidArgument).
int Fail(const Status& s);
int Fail(const std::string& message, int code = kExitError);

// "REF[:PATH]" -> (ref, path); path is "" when absent.
std::pair<std::string, std::string> SplitRefPath(const std::string& arg);

std::string HumanBytes(uint64_t b);
std::string FormatTime(int64_t ns);  // local time, "2026-11-22 10:04:05"
// Remaining time for a progress line: "4:05", "1:02:03"; "--:--" when unknown (negative or absurd).
std::string FormatEta(double seconds);
std::string ModeString(const Inode& n);

// Registers each command group on the app; each returns the exit code via *rc.
void AddStoreCommands(CLI::App& app, GlobalOptions& g, int* rc);     // init, stats, gc, verify
void AddBackupCommands(CLI::App& app, GlobalOptions& g, int* rc);    // backup, restore
void AddHistoryCommands(CLI::App& app, GlobalOptions& g, int* rc);   // log, volumes, snapshot(s), revert, forget
void AddBrowseCommands(CLI::App& app, GlobalOptions& g, int* rc);    // ls, cat, diff
void AddRemoteCommands(CLI::App& app, GlobalOptions& g, int* rc);    // remote add/ls/stats/verify/gc, push, pull, clone
void AddMountCommands(CLI::App& app, GlobalOptions& g, int* rc);     // mount, umount

// True while a read-write mount serves VOLUME (cli/cmd_mount.cc).
bool VolumeMountedReadWrite(const GlobalOptions& g, const std::string& volume);
// When VOLUME is mounted read-write, asks the mount to make `commit`'s tree
// its head (the mount commits and invalidates the kernel's caches) and
// returns true once it has; false when no mount serves VOLUME.
Result<bool> RevertMountedVolume(const GlobalOptions& g, const std::string& volume, const Digest& commit,
                                 const std::string& description);
// Asks every read-write mount of the store to commit what is pending and
// waits, so the command that follows sees everything done in the mounts
// before it started (warns on stderr when a mount cannot commit).
void SyncMountedVolumes(const GlobalOptions& g);

// A status line on stderr, redrawn a few times a second while it lives, only
// when stderr is a terminal. `render` returns the line.
class ProgressLine {
 public:
  explicit ProgressLine(std::function<std::string()> render);
  ~ProgressLine();  // stops and clears the line

 private:
  struct State;
  std::unique_ptr<State> s_;
};

}  // namespace hashfs::cli
