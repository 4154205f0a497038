// Remote plumbing shared by the remote commands and by commands that read a
// lazily cloned store: credentials and opening a configured remote.
// Secrets: the bot token comes from $HASHFS_DISCORD_TOKEN or --token-file,
// the passphrase from $HASHFS_PASSWORD, --password-file or a no-echo prompt
// on the terminal. Neither is ever printed, logged or stored.
#pragma once

#include <memory>
#include <string>

#include "cli/cli.h"
#include "remote/discord_remote.h"

namespace hashfs::cli {

struct RemoteCreds {
  std::string token_file;
  std::string password_file;
};

// Makes this process non-dumpable (prctl PR_SET_DUMPABLE 0): no core dump,
// and no ptrace or /proc/PID/mem access by other processes of the same user,
// can expose the token, passphrase or keys. Called by main() when a secret is
// in the environment and by ReadToken/ReadPassphrase before reading one.
void ProtectSecrets();
// Both call ProtectSecrets() first.
Result<std::string> ReadToken(const RemoteCreds& c);
Result<std::string> ReadPassphrase(const RemoteCreds& c);
Result<remote::RemoteConfig> LoadRemoteConfig(ObjectStore& store, const std::string& name);
// Opens the configured remote NAME and unlocks its key.
Result<std::unique_ptr<remote::DiscordRemote>> OpenRemote(ObjectStore& store, const std::string& name,
                                                          const RemoteCreds& c);
// The name of the remote a lazily cloned store fetches from ("" if none).
Result<std::string> LazyRemoteName(ObjectStore& store);

}  // namespace hashfs::cli
