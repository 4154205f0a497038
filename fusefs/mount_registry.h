// Bookkeeping of a store's mounts, in STORE/mounts/ (mode 0700):
//  * VOLUME.lock: flock()ed exclusively by the daemon serving VOLUME
//    read-write, for the daemon's whole life. The kernel drops the lock when
//    the process dies (even by kill -9), so a crash never leaves a volume
//    "mounted". A second read-write mount, and `backup` into the volume, are
//    refused while it is held.
//  * PID.mount: one line per mount, "pid<TAB>volume<TAB>rw|ro<TAB>mountpoint",
//    read by `hashfs umount` to find the daemon to wait for.
//  * a control socket per read-write mount (abstract Unix socket named after
//    the store's path and the volume; only root and the daemon's uid may
//    talk to it): the CLI asks the mount to commit what is pending before it
//    reads the volume ("sync"), and `revert` asks it to switch trees.
#pragma once

#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cas/status.h"

namespace hashfs::fusefs {

class VolumeLock {
 public:
  // Busy (with the holder's mount point when known) if another process holds it.
  static Result<std::unique_ptr<VolumeLock>> Acquire(const std::string& store_dir, const std::string& volume);
  ~VolumeLock();
  VolumeLock(const VolumeLock&) = delete;
  VolumeLock& operator=(const VolumeLock&) = delete;

 private:
  explicit VolumeLock(int fd) : fd_(fd) {}
  int fd_;
};

// True while some process holds VOLUME's lock (a live read-write mount).
bool IsMountedReadWrite(const std::string& store_dir, const std::string& volume);

struct MountRecord {
  pid_t pid = 0;
  std::string volume;
  bool read_only = false;
  std::string mountpoint;
};

Status WriteMountRecord(const std::string& store_dir, const MountRecord& r);
void RemoveMountRecord(const std::string& store_dir, pid_t pid);
// Records of live processes (records of dead ones are removed).
std::vector<MountRecord> ListMountRecords(const std::string& store_dir);
// True if `pid` exists and is not a zombie.
bool ProcessAlive(pid_t pid);
// True if `path` is the mount point of some file system now (from
// /proc/self/mountinfo; never touches the file system itself).
bool IsMountPoint(const std::string& path);

// Serves one line-based request at a time on VOLUME's control socket, on its
// own thread, until destroyed. `handler` gets a request line (no newline) and
// returns the answer line: "ok ..." or "err MESSAGE".
class ControlServer {
 public:
  static Result<std::unique_ptr<ControlServer>> Start(const std::string& store_dir, const std::string& volume,
                                                      std::function<std::string(const std::string&)> handler);
  ~ControlServer();
  ControlServer(const ControlServer&) = delete;
  ControlServer& operator=(const ControlServer&) = delete;

 private:
  ControlServer(int fd, std::function<std::string(const std::string&)> h);
  void Run();
  int fd_;
  std::function<std::string(const std::string&)> handler_;
  std::thread thread_;
};

// Sends one request to the read-write mount of VOLUME and returns its answer
// line; NotFound when no mount of VOLUME listens.
Result<std::string> ControlRequest(const std::string& store_dir, const std::string& volume,
                                   const std::string& request);

}  // namespace hashfs::fusefs
