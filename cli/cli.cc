#include "cli/cli.h"

#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <mutex>
#include <thread>

namespace hashfs::cli {

std::string StorePath(const GlobalOptions& g) {
  if (!g.store.empty()) return g.store;
  if (const char* s = getenv("HASHFS_STORE"); s && *s) return s;
  if (const char* x = getenv("XDG_DATA_HOME"); x && *x) return std::string(x) + "/hashfs";
  const char* home = getenv("HOME");
  return std::string(home && *home ? home : ".") + "/.local/share/hashfs";
}

GlobalOptions ForStoreWideWalks(GlobalOptions g) {
  g.resident_map_budget = std::max<uint64_t>(g.resident_map_budget, 256ull << 20);
  return g;
}

Result<std::unique_ptr<LmdbStore>> OpenStore(const GlobalOptions& g) {
  LmdbOptions lo;
  lo.resident_map_budget = g.resident_map_budget;
  return LmdbStore::Open(StorePath(g), lo);
}

Result<Opened> OpenRepo(const GlobalOptions& g) {
  SyncMountedVolumes(g);
  Opened o;
  HASHFS_ASSIGN_OR_RETURN(o.store, OpenStore(g));
  HASHFS_ASSIGN_OR_RETURN(o.repo, Repository::Open(*o.store));
  return o;
}

int Fail(const std::string& message, int code) {
  std::string m = message;
  for (char& c : m)
    if (c == '\n') c = ' ';
  fmt::print(stderr, "hashfs: {}\n", m);
  return code;
}

int Fail(const Status& s) {
  return Fail(s.message().empty() ? s.ToString() : s.message(),
              s.code() == Status::Code::kInvalidArgument ? kExitUsage : kExitError);
}

std::string HumanBytes(uint64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    u++;
  }
  return u == 0 ? fmt::format("{} B", b) : fmt::format("{:.2f} {}", v, units[u]);
}

std::string FormatEta(double seconds) {
  if (!(seconds >= 0) || seconds > 1e7) return "--:--";
  int s = static_cast<int>(seconds);
  return s >= 3600 ? fmt::format("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
                   : fmt::format("{}:{:02}", s / 60, s % 60);
}

std::string FormatTime(int64_t ns) {
  time_t t = static_cast<time_t>(ns / 1000000000);
  struct tm tm;
  localtime_r(&t, &tm);
  char buf[64];
  strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm);
  return buf;
}

std::string ModeString(const Inode& n) {
  std::string s = "-rwxrwxrwx";
  s[0] = n.type == FileType::kRegular ? '-' : FileTypeChar(n.type);
  for (int i = 0; i < 9; i++)
    if (!(n.mode & (1u << (8 - i)))) s[1 + i] = '-';
  if (n.mode & 04000) s[3] = (n.mode & 0100) ? 's' : 'S';
  if (n.mode & 02000) s[6] = (n.mode & 0010) ? 's' : 'S';
  if (n.mode & 01000) s[9] = (n.mode & 0001) ? 't' : 'T';
  return s;
}

struct ProgressLine::State {
  std::function<std::string()> render;
  std::mutex mu;
  std::condition_variable cv;
  bool stop = false;
  std::thread th;
};

ProgressLine::ProgressLine(std::function<std::string()> render) {
  if (!isatty(STDERR_FILENO)) return;
  s_ = std::make_unique<State>();
  s_->render = std::move(render);
  s_->th = std::thread([s = s_.get()] {
    std::unique_lock lk(s->mu);
    while (!s->cv.wait_for(lk, std::chrono::milliseconds(250), [s] { return s->stop; })) {
      std::string line = s->render();
      fmt::print(stderr, "\r\033[K{}", line);
      std::fflush(stderr);
    }
  });
}

ProgressLine::~ProgressLine() {
  if (!s_) return;
  {
    std::lock_guard lk(s_->mu);
    s_->stop = true;
  }
  s_->cv.notify_all();
  s_->th.join();
  fmt::print(stderr, "\r\033[K");
  std::fflush(stderr);
}

}  // namespace hashfs::cli
