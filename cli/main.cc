// hashfs: command-line entry point. Parses arguments with CLI11 and
// dispatches to the command groups; every failure is one line on stderr and
// a documented exit code (cli.h).
#include <cstdlib>
#include <exception>

#include "cas/lmdb_fault.h"
#include "cli/cli.h"
#include "cli/remote_open.h"

int main(int argc, char** argv) {
  using namespace hashfs::cli;
  hashfs::InstallLmdbFaultReporter(kExitDamaged);
  // Secrets in the environment are in this process's memory from exec on.
  for (const char* var : {"HASHFS_DISCORD_TOKEN", "HASHFS_PASSWORD"})
    if (const char* v = std::getenv(var); v && *v) ProtectSecrets();
  CLI::App app{"hashfs: a content-addressed, versioned filesystem and backup tool"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "hashfs 0.1.0");
  GlobalOptions g;
  app.add_option("--store", g.store, "Store directory (default: $HASHFS_STORE, else $XDG_DATA_HOME/hashfs)");
  int rc = kExitOk;
  AddStoreCommands(app, g, &rc);
  AddBackupCommands(app, g, &rc);
  AddHistoryCommands(app, g, &rc);
  AddBrowseCommands(app, g, &rc);
  AddRemoteCommands(app, g, &rc);
  AddMountCommands(app, g, &rc);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return Fail(std::string(e.what()) + " (see --help)", kExitUsage);
  } catch (const std::exception& e) {
    return Fail(std::string("internal error: ") + e.what(), kExitError);
  }
  return rc;
}
