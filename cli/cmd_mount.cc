// mount, umount, and the request channel `revert` uses to reach a running
// read-write mount.
#include <fcntl.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <thread>

#include "cli/cli.h"
#include "fusefs/filesystem.h"
#include "fusefs/fuse_mount.h"
#include "fusefs/mount_registry.h"

namespace hashfs::cli {
namespace {

// How long a daemon whose mount is gone keeps retrying its last commit on a
// full disk (and how much longer than that `hashfs umount` waits for it).
constexpr std::chrono::minutes kFinalCommitPatience{10};

struct MountArgs {
  std::string volume, mountpoint, at;
  bool read_only = false;
  bool foreground = false;
  bool allow_other = false;
  size_t inode_cache = fusefs::MountConfig{}.max_inodes;
  int compression_level = fusefs::MountConfig{}.zstd_level;
  size_t dirty_limit_mib = fusefs::MountConfig{}.max_dirty_bytes >> 20;
  std::vector<std::string> options;
};

std::string Now() {
  return FormatTime(WallClockNs());
}

// The daemon's log: never throws (the log may sit on a full disk).
void Log(const std::string& line) {
  std::string l = Now() + " " + line + "\n";
  (void)!fwrite(l.data(), 1, l.size(), stderr);
  (void)fflush(stderr);
}

// Writes one line to the parent waiting for the mount (background mode).
void Report(int fd, const std::string& line) {
  if (fd < 0) return;
  std::string l = line + "\n";
  (void)!write(fd, l.data(), l.size());
  close(fd);
}

// The mount itself: runs in the daemon (or in the foreground process).
// `ready_fd` receives "OK" once the kernel mount exists, or "ERR message".
int Serve(GlobalOptions g, const MountArgs& a, bool read_only, std::optional<Digest> at, int ready_fd) {
  g.sync_mounts = false;  // the daemon never waits on other mounts
  // A mount reads its B-tree's upper pages all the time; dropping them every
  // 16 MiB cost 10% of a tar -x. Its caches dwarf 64 MiB anyway.
  g.resident_map_budget = 64ull << 20;
  std::string store_dir = StorePath(g);
  auto fail = [&](const Status& s) {
    Log("mount failed: " + s.ToString());
    Report(ready_fd, "ERR " + (s.message().empty() ? s.ToString() : s.message()));
    return kExitError;
  };
  std::unique_ptr<fusefs::VolumeLock> lock;
  if (!read_only) {
    auto l = fusefs::VolumeLock::Acquire(store_dir, a.volume);
    if (!l.ok()) return fail(l.status());
    lock = std::move(*l);
  }
  auto o = OpenRepoForReading(g);
  if (!o.ok()) return fail(o.status());
  fusefs::MountConfig cfg;
  cfg.volume = a.volume;
  cfg.store_dir = store_dir;
  cfg.read_only = read_only;
  cfg.at = at;
  cfg.max_inodes = a.inode_cache;
  cfg.zstd_level = a.compression_level;
  cfg.max_dirty_bytes = a.dirty_limit_mib << 20;
  auto fs = fusefs::Filesystem::Open(*o->repo, cfg);
  if (!fs.ok()) return fail(fs.status());
  fusefs::MountRecord rec{getpid(), a.volume, read_only, a.mountpoint};
  if (Status s = fusefs::WriteMountRecord(store_dir, rec); !s.ok()) return fail(s);
  std::unique_ptr<fusefs::ControlServer> control;
  if (!read_only) {
    fusefs::Filesystem* f = fs->get();
    auto c = fusefs::ControlServer::Start(store_dir, a.volume, [f](const std::string& req) -> std::string {
      Status s;
      if (req == "sync") {
        s = f->Sync();
      } else if (req.rfind("revert ", 0) == 0 && req.size() >= 7 + 64) {
        auto commit = Digest::FromHex(req.substr(7, 64));
        s = commit.ok() ? f->Revert(*commit, req.size() > 72 ? req.substr(72) : "revert") : commit.status();
        Log("revert to " + req.substr(7, 12) + ": " + (s.ok() ? "done" : s.ToString()));
      } else {
        return "err unknown request";
      }
      return s.ok() ? "ok " + f->head().Hex() : "err " + s.ToString();
    });
    if (!c.ok()) {
      fusefs::RemoveMountRecord(store_dir, getpid());
      return fail(c.status());
    }
    control = std::move(*c);
  }

  fusefs::FuseOptions fo;
  fo.mountpoint = a.mountpoint;
  fo.fsname = "hashfs:" + a.volume + (at ? "@" + at->Hex().substr(0, 12) : "");
  fo.read_only = read_only;
  fo.allow_other = a.allow_other || geteuid() == 0;
  fo.extra = a.options;
  Status served = fusefs::ServeFuse(**fs, fo, [&](const Status& s) {
    if (s.ok()) {
      Log(fmt::format("mounted {} at {} ({}, pid {})", a.volume, a.mountpoint, read_only ? "read-only" : "read-write",
                      getpid()));
      Report(ready_fd, "OK");
    } else {
      Log("mount failed: " + s.ToString());
      Report(ready_fd, "ERR " + (s.message().empty() ? s.ToString() : s.message()));
    }
  });
  control.reset();
  Status synced = (*fs)->Sync();
  // The kernel has let go (a plain umount or fusermount3 -u, which cannot be
  // refused): on a full disk, wait for room rather than drop what is
  // pending. `hashfs umount` waits as long for this process.
  const auto give_up = std::chrono::steady_clock::now() + kFinalCommitPatience;
  for (int waited = 0; synced.code() == Status::Code::kNoSpace && std::chrono::steady_clock::now() < give_up;
       waited++) {
    if (waited % 60 == 0)
      Log(fmt::format("final commit: {}; retrying every second for up to {} minutes: free space in the store's "
                      "file system",
                      synced.ToString(), kFinalCommitPatience.count()));
    std::this_thread::sleep_for(std::chrono::seconds(1));
    synced = (*fs)->Sync();
  }
  Digest head = (*fs)->head();
  fs->reset();
  // The lock goes before the record: a lock held with no record would read
  // as a mount starting up, and a remount waiting for this daemon (see
  // VolumeLock::Acquire) would be refused while the process exits.
  lock.reset();
  fusefs::RemoveMountRecord(store_dir, getpid());
  if (!served.ok()) {
    Log("serving ended with an error: " + served.ToString());
    return kExitError;
  }
  if (!synced.ok()) {
    Log("final commit failed: " + synced.ToString());
    return kExitError;
  }
  Log(fmt::format("unmounted {}; head {}", a.mountpoint, head.Hex().substr(0, 12)));
  return kExitOk;
}

int RunMount(GlobalOptions g, MountArgs a) {
  // The daemon works from "/": every path it keeps must be absolute.
  g.store = std::filesystem::absolute(StorePath(g)).lexically_normal().string();
  char* real = realpath(a.mountpoint.c_str(), nullptr);
  if (!real) return Fail(Status::FromErrno(errno, "mount point " + a.mountpoint));
  a.mountpoint = real;
  free(real);
  struct stat st {};
  if (stat(a.mountpoint.c_str(), &st) != 0 || !S_ISDIR(st.st_mode))
    return Fail("mount point " + a.mountpoint + " is not a directory", kExitUsage);
  for (const auto& r : fusefs::ListMountRecords(StorePath(g)))
    if (r.mountpoint == a.mountpoint && fusefs::IsMountPoint(a.mountpoint))
      return Fail(fmt::format("{} is already a hashfs mount (volume {}, pid {})", a.mountpoint, r.volume, r.pid));

  // Validate everything a user can get wrong here, before forking, so the
  // error reaches the terminal.
  bool read_only = a.read_only || !a.at.empty();
  std::optional<Digest> at;
  {
    auto o = OpenRepoForReading(g);
    if (!o.ok()) return Fail(o.status());
    if (!a.at.empty()) {
      auto c = o->repo->Resolve(a.at);
      if (!c.ok()) return Fail(c.status());
      at = *c;
    } else {
      auto head = o->repo->Head(a.volume);
      if (!head.ok()) return Fail(head.status());
      if (!*head && read_only) return Fail("no volume named '" + a.volume + "'");
    }
    if (!read_only && fusefs::IsMountedReadWrite(StorePath(g), a.volume)) {
      // Busy with the holder's name, unless the holder is a daemon finishing
      // after an unmount: Acquire waits for that one, and the mount goes on.
      auto l = fusefs::VolumeLock::Acquire(StorePath(g), a.volume);
      if (!l.ok()) return Fail(l.status());
    }
  }  // the store is closed before fork: LMDB handles must not cross fork()

  if (a.foreground) return Serve(g, a, read_only, at, -1);

  std::string log_dir = StorePath(g) + "/logs";
  if (mkdir(log_dir.c_str(), 0700) != 0 && errno != EEXIST) return Fail(Status::FromErrno(errno, log_dir));
  std::string log_path = log_dir + "/mount-" + a.volume + ".log";
  int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (log_fd < 0) return Fail(Status::FromErrno(errno, log_path));

  int p[2];
  if (pipe2(p, O_CLOEXEC) != 0) return Fail(Status::FromErrno(errno, "pipe"));
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) return Fail(Status::FromErrno(errno, "fork"));
  if (pid == 0) {
    close(p[0]);
    setsid();
    int null_fd = open("/dev/null", O_RDWR);
    if (null_fd >= 0) {
      dup2(null_fd, 0);
      dup2(null_fd, 1);
      close(null_fd);
    }
    dup2(log_fd, 2);
    close(log_fd);
    if (chdir("/") != 0) {
      // Not fatal: the mount point and store paths are absolute.
    }
    _exit(Serve(g, a, read_only, at, p[1]));
  }
  close(p[1]);
  close(log_fd);
  std::string answer;
  char buf[512];
  for (ssize_t n; (n = read(p[0], buf, sizeof buf)) != 0;) {
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    answer.append(buf, static_cast<size_t>(n));
  }
  close(p[0]);
  while (!answer.empty() && answer.back() == '\n') answer.pop_back();
  if (answer == "OK") {
    fmt::print("mounted {} at {} ({}; pid {}; log {})\n", read_only ? (at ? a.at : a.volume) : a.volume, a.mountpoint,
               read_only ? "read-only" : "read-write", pid, log_path);
    return kExitOk;
  }
  int status = 0;
  waitpid(pid, &status, 0);
  if (answer.rfind("ERR ", 0) == 0) return Fail(answer.substr(4));
  return Fail("the mount process exited before the mount was ready; see " + log_path);
}


int RunUmount(const GlobalOptions& g, const std::string& mnt) {
  std::string path = mnt;
  if (char* real = realpath(mnt.c_str(), nullptr)) {
    path = real;
    free(real);
  }
  std::optional<fusefs::MountRecord> rec;
  for (const auto& r : fusefs::ListMountRecords(StorePath(g)))
    if (r.mountpoint == path) rec = r;

  // Commit first, while the mount still serves: once the kernel lets go, a
  // commit that fails (a full disk) can only be logged, and what was pending
  // is gone. A daemon that does not answer is unmounted all the same.
  if (rec && !rec->read_only) {
    auto r = fusefs::ControlRequest(StorePath(g), rec->volume, "sync");
    if (r.ok() && r->rfind("err", 0) == 0)
      return Fail(Status::IOError(fmt::format(
          "{} stays mounted: its pending changes could not be committed ({}); make room (or fix the cause) and run "
          "umount again, or 'fusermount3 -u {}' to unmount and drop them",
          path, r->substr(std::min<size_t>(4, r->size())), path)));
  }

  pid_t child = fork();
  if (child < 0) return Fail(Status::FromErrno(errno, "fork"));
  if (child == 0) {
    int null_fd = open("/dev/null", O_WRONLY);
    if (null_fd >= 0) dup2(null_fd, 2);
    execlp("fusermount3", "fusermount3", "-u", "--", path.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  bool unmounted = WIFEXITED(status) && WEXITSTATUS(status) == 0;
  if (!unmounted && umount2(path.c_str(), 0) == 0) unmounted = true;
  if (!unmounted) {
    int e = errno;
    if (e == EBUSY) return Fail(path + " is busy (a process has a file or directory open in it)");
    return Fail(Status::FromErrno(e, "unmounting " + path));
  }
  if (!rec) return kExitOk;  // not a mount of this store: nothing to wait for
  // The daemon commits what is pending once the kernel lets go; wait for it.
  auto deadline = std::chrono::steady_clock::now() + kFinalCommitPatience + std::chrono::minutes(1);
  while (fusefs::ProcessAlive(rec->pid)) {
    if (std::chrono::steady_clock::now() > deadline)
      return Fail(fmt::format("unmounted {}, but the mount process {} is still committing", path, rec->pid));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return kExitOk;
}

}  // namespace

Result<bool> RevertMountedVolume(const GlobalOptions& g, const std::string& volume, const Digest& commit,
                                 const std::string& description) {
  auto r = fusefs::ControlRequest(StorePath(g), volume, "revert " + commit.Hex() + " " + description);
  if (!r.ok()) {
    if (r.status().IsNotFound()) return false;
    return r.status();
  }
  if (r->rfind("ok", 0) == 0) return true;
  return Status::IOError("the mount of " + volume + " could not revert: " + r->substr(std::min<size_t>(4, r->size())));
}

void SyncMountedVolumes(const GlobalOptions& g) {
  if (!g.sync_mounts) return;
  std::string store_dir = StorePath(g);
  for (const auto& rec : fusefs::ListMountRecords(store_dir)) {
    if (rec.read_only) continue;
    auto r = fusefs::ControlRequest(store_dir, rec.volume, "sync");
    if (r.ok() && r->rfind("ok", 0) == 0) continue;
    if (!r.ok() && r.status().IsNotFound()) continue;
    fmt::print(stderr, "hashfs: warning: the mount of {} could not commit its pending changes: {}\n", rec.volume,
               r.ok() ? r->substr(std::min<size_t>(4, r->size())) : r.status().ToString());
  }
}

bool VolumeMountedReadWrite(const GlobalOptions& g, const std::string& volume) {
  return fusefs::IsMountedReadWrite(StorePath(g), volume);
}

void AddMountCommands(CLI::App& app, GlobalOptions& g, int* rc) {
  auto a = std::make_shared<MountArgs>();
  auto* m = app.add_subcommand("mount", "Mount a volume (read-write) or a past state (read-only)");
  m->add_option("VOLUME", a->volume, "Volume to mount (created on first read-write mount)")->required();
  m->add_option("MOUNTPOINT", a->mountpoint, "Directory to mount on")->required();
  m->add_flag("--read-only,-r", a->read_only, "Mount read-only");
  m->add_option("--at", a->at, "Mount REF (a commit, snapshot or VOLUME~N) read-only");
  m->add_flag("--foreground,-f", a->foreground, "Serve in this process until unmounted (log to stderr)");
  m->add_flag("--allow-other", a->allow_other, "Let other users access the mount (default when run as root)");
  m->add_option("--inode-cache", a->inode_cache,
                "Inodes kept in memory; beyond this, those the kernel has forgotten are evicted")
      ->capture_default_str()
      ->check(CLI::Range(size_t{16}, size_t{1} << 32));
  m->add_option("--compression-level", a->compression_level,
                "zstd level of what the mount writes (0: off; backup uses the store's level)")
      ->capture_default_str()
      ->check(CLI::Range(0, 19));
  m->add_option("--dirty-limit", a->dirty_limit_mib,
                "MiB of a file's unflushed writes held in memory before they are chunked out in the background")
      ->capture_default_str()
      ->check(CLI::Range(size_t{1}, size_t{4096}));
  m->add_option("-o", a->options, "FUSE mount option (repeatable)");
  m->callback([&g, rc, a] { *rc = RunMount(g, *a); });

  auto mnt = std::make_shared<std::string>();
  auto* u = app.add_subcommand("umount", "Unmount a hashfs mount, waiting until its last changes are committed");
  u->add_option("MOUNTPOINT", *mnt, "Mount point")->required();
  u->callback([&g, rc, mnt] { *rc = RunUmount(g, *mnt); });
}

}  // namespace hashfs::cli
