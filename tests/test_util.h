// Helpers shared by the test folders (tests/cli, tests/remote, tests/fusefs):
// environment knobs, errno names, shell quoting, whole-file I/O,
// deterministic bytes, and running a shell command with a timeout.
// Header-only; not a test file (only *_test.cc files are compiled).
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <string_view>
#include <thread>

namespace hashfs_test {

inline uint64_t EnvU64(const char* name, uint64_t def) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return def;
  return std::strtoull(v, nullptr, 0);
}

inline std::string ErrName(int e) {
  if (e == 0) return "OK";
  const char* n = strerrorname_np(e);
  return n != nullptr ? n : "errno" + std::to_string(e);
}
// "OK" if rc >= 0, else the name of errno.
inline std::string ErrOf(long rc) { return rc >= 0 ? "OK" : ErrName(errno); }

inline std::string Quote(const std::string& s) {
  std::string q = "'";
  for (char c : s) {
    if (c == '\'')
      q += "'\\''";
    else
      q += c;
  }
  return q + "'";
}

inline bool ReadAll(int fd, std::string* out) {
  char buf[1 << 16];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof buf);
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    if (n == 0) return true;
    out->append(buf, static_cast<size_t>(n));
  }
}

inline bool WriteAll(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  return true;
}

// Whole file content; "<ERR:ENAME>" if it cannot be opened or read.
inline std::string ReadFile(const std::string& p) {
  int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return "<ERR:" + ErrName(errno) + ">";
  std::string s;
  bool ok = ReadAll(fd, &s);
  int e = errno;
  close(fd);
  return ok ? s : "<ERR:" + ErrName(e) + ">";
}

inline bool WriteFile(const std::string& p, const std::string& data, mode_t mode = 0644) {
  int fd = open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return false;
  bool ok = WriteAll(fd, data.data(), data.size());
  return close(fd) == 0 && ok;
}

// n bytes of xorshift64 output from state x (x != 0): cheap deterministic
// content for tests that must regenerate what they wrote.
inline std::string XorshiftBytes(uint64_t x, size_t n) {
  std::string s(n, '\0');
  if (x == 0) x = 1;
  for (size_t i = 0; i < n; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(s.data() + i, &x, std::min<size_t>(8, n - i));
  }
  return s;
}

inline std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = rng();
    std::memcpy(s.data() + i, &v, std::min<size_t>(8, n - i));
  }
  return s;
}

// Streaming content hash of a file (std::hash over 1 MiB blocks, combined).
inline std::string HashFile(const std::string& p) {
  int fd = open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return "<ERR:" + ErrName(errno) + ">";
  std::string buf(1 << 20, '\0');
  uint64_t h = 1469598103934665603ull, total = 0;
  for (;;) {
    ssize_t n = read(fd, buf.data(), buf.size());
    if (n < 0) {
      int e = errno;
      close(fd);
      return "<ERR:" + ErrName(e) + ">";
    }
    if (n == 0) break;
    total += static_cast<uint64_t>(n);
    h = (h ^ std::hash<std::string_view>{}(std::string_view(buf.data(), static_cast<size_t>(n)))) * 1099511628211ull;
  }
  close(fd);
  std::ostringstream o;
  o << std::hex << h << "/" << std::dec << total;
  return o.str();
}

struct RunResult {
  int code = -1;  // exit status, 128+signal, or -2 on timeout
  std::string out, err;
};

// Runs `cmd` with /bin/sh in its own process group; stdout/stderr go to
// unlinked temp files (so a daemon that inherits them cannot make us wait).
// On timeout the group is killed and code is -2.
inline RunResult Shell(const std::string& cmd, int timeout_s = 300) {
  RunResult r;
  char o[] = "/tmp/hashfs-fusetest-out-XXXXXX", e[] = "/tmp/hashfs-fusetest-err-XXXXXX";
  int ofd = mkostemp(o, O_CLOEXEC), efd = mkostemp(e, O_CLOEXEC);
  if (ofd < 0 || efd < 0) {
    r.err = "mkstemp failed";
    return r;
  }
  unlink(o);
  unlink(e);
  pid_t pid = fork();
  if (pid == 0) {
    setpgid(0, 0);
    int devnull = open("/dev/null", O_RDONLY);
    dup2(devnull, 0);
    dup2(ofd, 1);
    dup2(efd, 2);
    close_range(3, ~0u, 0);
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  if (pid > 0) setpgid(pid, pid);
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  int st = 0;
  bool timed_out = false;
  for (;;) {
    pid_t w = waitpid(pid, &st, WNOHANG);
    if (w == pid || w < 0) break;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(-pid, SIGKILL);
      kill(pid, SIGKILL);
      waitpid(pid, &st, 0);
      timed_out = true;
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (timed_out)
    r.code = -2;
  else if (WIFEXITED(st))
    r.code = WEXITSTATUS(st);
  else if (WIFSIGNALED(st))
    r.code = 128 + WTERMSIG(st);
  lseek(ofd, 0, SEEK_SET);
  lseek(efd, 0, SEEK_SET);
  ReadAll(ofd, &r.out);
  ReadAll(efd, &r.err);
  close(ofd);
  close(efd);
  if (timed_out) r.err += "\n[TIMEOUT after " + std::to_string(timeout_s) + " s: " + cmd + "]";
  return r;
}

}  // namespace hashfs_test
