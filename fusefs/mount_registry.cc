#include "fusefs/mount_registry.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <poll.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

#include "cas/digest.h"

namespace hashfs::fusefs {

namespace {

std::string MountsDir(const std::string& store_dir) { return store_dir + "/mounts"; }

Status EnsureDir(const std::string& d) {
  if (mkdir(d.c_str(), 0700) != 0 && errno != EEXIST) return Status::FromErrno(errno, "creating " + d);
  return Status::Ok();
}

std::optional<MountRecord> HolderRecord(const std::string& store_dir, const std::string& volume) {
  for (auto& r : ListMountRecords(store_dir))
    if (r.volume == volume && !r.read_only) return r;
  return std::nullopt;
}

std::string Holder(const std::string& store_dir, const std::string& volume) {
  auto r = HolderRecord(store_dir, volume);
  return r ? " at " + r->mountpoint + " (pid " + std::to_string(r->pid) + ")" : "";
}

}  // namespace

bool IsMountPoint(const std::string& path) {
  FILE* f = fopen("/proc/self/mountinfo", "re");
  if (!f) return false;
  char* line = nullptr;
  size_t cap = 0;
  bool found = false;
  while (!found && getline(&line, &cap, f) > 0) {
    // Field 5 is the mount point (octal escapes for space, tab, newline, backslash).
    std::string l = line;
    size_t pos = 0;
    for (int i = 0; i < 4 && pos != std::string::npos; i++) pos = l.find(' ', pos + 1);
    if (pos == std::string::npos) continue;
    size_t end = l.find(' ', pos + 1);
    std::string mp = l.substr(pos + 1, end == std::string::npos ? std::string::npos : end - pos - 1), un;
    for (size_t i = 0; i < mp.size(); i++) {
      if (mp[i] == '\\' && i + 3 < mp.size() && mp[i + 1] >= '0' && mp[i + 1] <= '3') {
        un += static_cast<char>(((mp[i + 1] - '0') << 6) | ((mp[i + 2] - '0') << 3) | (mp[i + 3] - '0'));
        i += 3;
      } else {
        un += mp[i];
      }
    }
    found = un == path;
  }
  free(line);
  fclose(f);
  return found;
}

Result<std::unique_ptr<VolumeLock>> VolumeLock::Acquire(const std::string& store_dir, const std::string& volume) {
  HASHFS_RETURN_IF_ERROR(EnsureDir(MountsDir(store_dir)));
  std::string path = MountsDir(store_dir) + "/" + volume + ".lock";
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Status::FromErrno(errno, "opening " + path);
  // The lock is refused at once only to a live holder whose mount point is
  // mounted: a read-write mount in service. Any other holder is waited for
  // (up to 30 s): a daemon finishing its last commit after `umount` or
  // `fusermount3 -u` (mount point gone), one starting up or exiting (no
  // record), or a process probing the lock (IsMountedReadWrite).
  for (int waited_ms = 0;; waited_ms += 50) {
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) break;
    int e = errno;
    if (e != EWOULDBLOCK) {
      close(fd);
      return Status::FromErrno(e, "locking " + path);
    }
    auto holder = HolderRecord(store_dir, volume);
    bool serving = holder && ProcessAlive(holder->pid) && IsMountPoint(holder->mountpoint);
    if (serving || waited_ms >= 30000) {
      close(fd);
      return Status::Busy("volume " + volume + " is already mounted read-write" + Holder(store_dir, volume) +
                          (serving  ? ""
                           : holder ? " (still finishing after 30 s)"
                                    : " (held for 30 s by a process with no mount record)"));
    }
    usleep(50 * 1000);
  }
  return std::unique_ptr<VolumeLock>(new VolumeLock(fd));
}

VolumeLock::~VolumeLock() { close(fd_); }

bool IsMountedReadWrite(const std::string& store_dir, const std::string& volume) {
  std::string path = MountsDir(store_dir) + "/" + volume + ".lock";
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool held = flock(fd, LOCK_SH | LOCK_NB) != 0 && errno == EWOULDBLOCK;
  close(fd);
  return held;
}

Status WriteMountRecord(const std::string& store_dir, const MountRecord& r) {
  HASHFS_RETURN_IF_ERROR(EnsureDir(MountsDir(store_dir)));
  std::string path = MountsDir(store_dir) + "/" + std::to_string(r.pid) + ".mount";
  std::string tmp = path + ".tmp";
  {
    int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return Status::FromErrno(errno, "writing " + tmp);
    std::string line = std::to_string(r.pid) + "\t" + r.volume + "\t" + (r.read_only ? "ro" : "rw") + "\t" +
                       r.mountpoint + "\n";
    bool ok = write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size());
    close(fd);
    if (!ok) return Status::IOError("writing " + tmp);
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) return Status::FromErrno(errno, "writing " + path);
  return Status::Ok();
}

void RemoveMountRecord(const std::string& store_dir, pid_t pid) {
  unlink((MountsDir(store_dir) + "/" + std::to_string(pid) + ".mount").c_str());
}

std::vector<MountRecord> ListMountRecords(const std::string& store_dir) {
  std::vector<MountRecord> out;
  std::string dir = MountsDir(store_dir);
  DIR* d = opendir(dir.c_str());
  if (!d) return out;
  std::vector<std::string> files;
  while (dirent* e = readdir(d)) {
    std::string n = e->d_name;
    if (n.size() > 6 && n.ends_with(".mount")) files.push_back(n);
  }
  closedir(d);
  for (const auto& f : files) {
    std::ifstream in(dir + "/" + f);
    std::string line;
    if (!std::getline(in, line)) continue;
    std::istringstream ls(line);
    MountRecord r;
    std::string pid, mode;
    if (!std::getline(ls, pid, '\t') || !std::getline(ls, r.volume, '\t') || !std::getline(ls, mode, '\t') ||
        !std::getline(ls, r.mountpoint))
      continue;
    try {
      r.pid = static_cast<pid_t>(std::stol(pid));
    } catch (...) {
      continue;
    }
    r.read_only = mode == "ro";
    if (r.pid <= 0 || !ProcessAlive(r.pid)) {
      unlink((dir + "/" + f).c_str());
      continue;
    }
    out.push_back(std::move(r));
  }
  return out;
}

bool ProcessAlive(pid_t pid) {
  if (kill(pid, 0) != 0 && errno == ESRCH) return false;
  // A zombie (dead, not yet reaped: common in containers whose init does not
  // reap) holds no locks and serves nothing.
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat;
  if (!std::getline(in, stat)) return true;
  auto paren = stat.rfind(')');
  return paren == std::string::npos || paren + 2 >= stat.size() || (stat[paren + 2] != 'Z' && stat[paren + 2] != 'X');
}

namespace {

// Abstract socket address: "\0hashfs-ctl/" + first 32 hex of SHA-256(store
// path) + "/" + volume (volume names are at most 128 bytes, so this fits).
sockaddr_un ControlAddress(const std::string& store_dir, const std::string& volume, socklen_t* len) {
  char* real = realpath(store_dir.c_str(), nullptr);
  std::string path = real ? real : store_dir;
  free(real);
  std::string name = "hashfs-ctl/" + Sha256Of(path).Hex().substr(0, 32) + "/" + volume;
  sockaddr_un a{};
  a.sun_family = AF_UNIX;
  size_t n = std::min(name.size(), sizeof(a.sun_path) - 1);
  std::memcpy(a.sun_path + 1, name.data(), n);
  *len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + n);
  return a;
}

bool WriteLine(int fd, const std::string& line) {
  std::string l = line + "\n";
  size_t off = 0;
  while (off < l.size()) {
    ssize_t n = send(fd, l.data() + off, l.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// Reads up to a newline (at most 64 KiB); false on EOF/error/timeout.
bool ReadLine(int fd, std::string* out, int timeout_ms) {
  out->clear();
  char buf[4096];
  while (out->size() < 65536) {
    pollfd p{fd, POLLIN, 0};
    int r = poll(&p, 1, timeout_ms);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return false;
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    out->append(buf, static_cast<size_t>(n));
    auto nl = out->find('\n');
    if (nl != std::string::npos) {
      out->resize(nl);
      return true;
    }
  }
  return false;
}

}  // namespace

Result<std::unique_ptr<ControlServer>> ControlServer::Start(const std::string& store_dir, const std::string& volume,
                                                            std::function<std::string(const std::string&)> handler) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno(errno, "control socket");
  socklen_t len = 0;
  sockaddr_un a = ControlAddress(store_dir, volume, &len);
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), len) != 0 || listen(fd, 16) != 0) {
    int e = errno;
    close(fd);
    if (e == EADDRINUSE) return Status::Busy("volume " + volume + " is already mounted read-write");
    return Status::FromErrno(e, "control socket");
  }
  return std::unique_ptr<ControlServer>(new ControlServer(fd, std::move(handler)));
}

ControlServer::ControlServer(int fd, std::function<std::string(const std::string&)> h)
    : fd_(fd), handler_(std::move(h)) {
  thread_ = std::thread([this] { Run(); });
}

ControlServer::~ControlServer() {
  shutdown(fd_, SHUT_RDWR);  // wakes accept()
  thread_.join();
  close(fd_);
}

void ControlServer::Run() {
  for (;;) {
    int c = accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      return;  // shut down
    }
    ucred cred{};
    socklen_t cl = sizeof cred;
    std::string line;
    if (getsockopt(c, SOL_SOCKET, SO_PEERCRED, &cred, &cl) != 0 || (cred.uid != 0 && cred.uid != geteuid())) {
      WriteLine(c, "err permission denied");
    } else if (ReadLine(c, &line, 10000)) {
      std::string answer;
      try {
        answer = handler_(line);
      } catch (const std::exception& e) {
        answer = std::string("err ") + e.what();
      }
      WriteLine(c, answer);
    }
    close(c);
  }
}

Result<std::string> ControlRequest(const std::string& store_dir, const std::string& volume,
                                   const std::string& request) {
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::FromErrno(errno, "control socket");
  socklen_t len = 0;
  sockaddr_un a = ControlAddress(store_dir, volume, &len);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), len) != 0) {
    close(fd);
    return Status::NotFound("no read-write mount of " + volume);
  }
  std::string answer;
  bool ok = WriteLine(fd, request) && ReadLine(fd, &answer, 5 * 60 * 1000);
  close(fd);
  if (!ok) return Status::IOError("the mount of " + volume + " did not answer");
  return answer;
}

}  // namespace hashfs::fusefs
