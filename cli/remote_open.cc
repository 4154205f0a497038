// OpenRepoForReading and the credential helpers of the remote commands.
#include "cli/remote_open.h"

#include <fcntl.h>
#include <sys/prctl.h>
#include <termios.h>
#include <unistd.h>

#include <fstream>
#include <sstream>

#include "remote/fetching_store.h"

namespace hashfs::cli {
namespace {

Result<std::string> FirstLine(const std::string& path, const char* what) {
  std::ifstream in(path);
  if (!in) return Status::InvalidArgument(std::string("cannot read ") + what + " file " + path);
  std::string line;
  std::getline(in, line);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.pop_back();
  if (line.empty()) return Status::InvalidArgument(std::string(what) + " file " + path + " is empty");
  return line;
}

Result<std::string> Prompt(const char* question) {
  int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
  if (fd < 0) return Status::InvalidArgument("no passphrase: set $HASHFS_PASSWORD or use --password-file");
  struct termios old;
  bool tty = tcgetattr(fd, &old) == 0;
  if (tty) {
    struct termios quiet = old;
    quiet.c_lflag &= ~static_cast<tcflag_t>(ECHO);
    tcsetattr(fd, TCSAFLUSH, &quiet);
  }
  (void)!write(fd, question, strlen(question));
  std::string line;
  char c;
  while (read(fd, &c, 1) == 1 && c != '\n') line += c;
  if (tty) tcsetattr(fd, TCSAFLUSH, &old);
  (void)!write(fd, "\n", 1);
  close(fd);
  if (line.empty()) return Status::InvalidArgument("empty passphrase");
  return line;
}

}  // namespace

void ProtectSecrets() { prctl(PR_SET_DUMPABLE, 0, 0, 0, 0); }

Result<std::string> ReadToken(const RemoteCreds& c) {
  ProtectSecrets();
  if (!c.token_file.empty()) return FirstLine(c.token_file, "token");
  if (const char* t = getenv("HASHFS_DISCORD_TOKEN"); t && *t) return std::string(t);
  return Status::InvalidArgument("no Discord bot token: set $HASHFS_DISCORD_TOKEN or use --token-file");
}

Result<std::string> ReadPassphrase(const RemoteCreds& c) {
  ProtectSecrets();
  if (!c.password_file.empty()) return FirstLine(c.password_file, "password");
  if (const char* p = getenv("HASHFS_PASSWORD"); p && *p) return std::string(p);
  if (!isatty(STDIN_FILENO) && !isatty(STDERR_FILENO))
    return Status::InvalidArgument("no passphrase: set $HASHFS_PASSWORD or use --password-file");
  return Prompt("hashfs remote passphrase: ");
}

Result<remote::RemoteConfig> LoadRemoteConfig(ObjectStore& store, const std::string& name) {
  HASHFS_RETURN_IF_ERROR(ValidateName(name).WithContext("remote name"));
  remote::RemoteIndex idx(store, name);
  HASHFS_ASSIGN_OR_RETURN(auto v, idx.Get("config"));
  if (!v) return Status::NotFound("no remote named '" + name + "' (see 'hashfs remote add')");
  return remote::RemoteConfig::FromJson(*v);
}

Result<std::unique_ptr<remote::DiscordRemote>> OpenRemote(ObjectStore& store, const std::string& name,
                                                          const RemoteCreds& c) {
  HASHFS_ASSIGN_OR_RETURN(auto cfg, LoadRemoteConfig(store, name));
  HASHFS_ASSIGN_OR_RETURN(std::string token, ReadToken(c));
  HASHFS_ASSIGN_OR_RETURN(std::string pass, ReadPassphrase(c));
  HASHFS_ASSIGN_OR_RETURN(auto r, remote::DiscordRemote::Open(store, std::move(cfg), std::move(token)));
  HASHFS_RETURN_IF_ERROR(r->Unlock(pass, /*create=*/false));
  return r;
}

Result<std::string> LazyRemoteName(ObjectStore& store) {
  HASHFS_ASSIGN_OR_RETURN(auto names, remote::RemoteIndex::Names(store));
  for (const auto& n : names) {
    remote::RemoteIndex idx(store, n);
    HASHFS_ASSIGN_OR_RETURN(auto v, idx.Get("lazy"));
    if (v && *v == "1") return n;
  }
  return std::string();
}

Result<Opened> OpenRepoForReading(const GlobalOptions& g) {
  SyncMountedVolumes(g);
  Opened o;
  HASHFS_ASSIGN_OR_RETURN(o.store, OpenStore(g));
  HASHFS_ASSIGN_OR_RETURN(std::string lazy, LazyRemoteName(*o.store));
  if (lazy.empty()) {
    HASHFS_ASSIGN_OR_RETURN(o.repo, Repository::Open(*o.store));
    return o;
  }
  LmdbStore* local = o.store.get();
  o.reader = std::make_unique<remote::FetchingStore>(
      *local, [local, lazy]() { return OpenRemote(*local, lazy, RemoteCreds{}); });
  HASHFS_ASSIGN_OR_RETURN(o.repo, Repository::Open(*o.reader));
  return o;
}

}  // namespace hashfs::cli
