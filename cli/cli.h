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
  std::string store;  // --store, else $HASHFS_STORE, else $XDG_DATA_HOME/hashfs
};

// An open store and repository.
struct Opened {
  std::unique_ptr<LmdbStore> store;
  std::unique_ptr<Repository> repo;
};

std::string StorePath(const GlobalOptions& g);
Result<Opened> OpenRepo(const GlobalOptions& g);

// Prints "hashfs: <message>" on stderr and returns kExitError (or kExitUsage
// for InvalidArgument).
int Fail(const Status& s);
int Fail(const std::string& message, int code = kExitError);

// "REF[:PATH]" -> (ref, path); path is "" when absent.
std::pair<std::string, std::string> SplitRefPath(const std::string& arg);

std::string HumanBytes(uint64_t b);
std::string FormatTime(int64_t ns);  // local time, "2026-11-22 10:04:05"
std::string ModeString(const Inode& n);

// Registers each command group on the app; each returns the exit code via *rc.
void AddStoreCommands(CLI::App& app, GlobalOptions& g, int* rc);     // init, stats, gc, verify
void AddBackupCommands(CLI::App& app, GlobalOptions& g, int* rc);    // backup, restore
void AddHistoryCommands(CLI::App& app, GlobalOptions& g, int* rc);   // log, volumes, snapshot(s), revert, forget
void AddBrowseCommands(CLI::App& app, GlobalOptions& g, int* rc);    // ls, cat, diff

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
