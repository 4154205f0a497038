// Shared helpers for the tree-layer tests (not a test file itself: only
// *_test.cc files are compiled).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <ostream>
#include <random>
#include <string>
#include <vector>

#include "cas/digest.h"
#include "cas/status.h"
#include "tree/types.h"

namespace hashfs {
// Readable gtest output for status codes.
inline void PrintTo(Status::Code c, std::ostream* os) { *os << CodeName(c); }
}  // namespace hashfs

namespace hashfs::testing {

// Status-returning expressions (use .status() for a Result). Unique
// temporaries, so the macros nest (e.g. inside lambdas) without -Wshadow.
#define HFS_CHECK_OK_IMPL(tmp, expr, CHECK)                    \
  do {                                                         \
    const ::hashfs::Status tmp = (expr);                       \
    CHECK(tmp.ok()) << #expr << ": " << tmp.ToString();        \
  } while (0)
#define HFS_ASSERT_OK(expr) HFS_CHECK_OK_IMPL(HASHFS_CONCAT(_hfs_s_, __COUNTER__), expr, ASSERT_TRUE)
#define HFS_EXPECT_OK(expr) HFS_CHECK_OK_IMPL(HASHFS_CONCAT(_hfs_s_, __COUNTER__), expr, EXPECT_TRUE)

// ASSERT_OK_AND_ASSIGN(lhs, Result<T> expr)
#define HFS_AOA_IMPL(tmp, lhs, expr)                                           \
  auto tmp = (expr);                                                           \
  ASSERT_TRUE(tmp.ok()) << #expr << ": " << tmp.status().ToString();           \
  lhs = std::move(tmp).value()
#define HFS_ASSERT_OK_AND_ASSIGN(lhs, expr) HFS_AOA_IMPL(HASHFS_CONCAT(_hfs_r_, __COUNTER__), lhs, expr)

inline std::string CodeOf(const Status& s) { return std::string(CodeName(s.code())); }

// Deterministic pseudo-random bytes.
inline std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::string out(n, '\0');
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    std::memcpy(&out[i], &v, 8);
  }
  for (; i < n; i++) out[i] = static_cast<char>(rng());
  return out;
}

inline std::string ToHex(std::string_view s) {
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

inline std::string FromHex(std::string_view h) {
  std::string out;
  for (size_t i = 0; i + 1 < h.size(); i += 2) out.push_back(static_cast<char>(std::stoi(std::string(h.substr(i, 2)), nullptr, 16)));
  return out;
}

// A simple regular-file entry whose inode is held inline.
inline Entry FileEntry(const std::string& name, uint64_t salt = 0) {
  Entry e;
  e.name = name;
  e.inode.type = FileType::kRegular;
  e.inode.mode = 0644;
  e.inode.uid = 1000;
  e.inode.gid = 1000;
  e.inode.mtime_ns = 1700000000000000000 + static_cast<int64_t>(salt);
  e.inode.ctime_ns = 1700000000000000000;
  e.inode.size = 10 + salt;
  e.inode.chunks = {{Sha256Of(name), 10 + salt}};
  return e;
}

// A fresh temporary directory, removed on destruction.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "hashfs-tree-test-XXXXXX").string();
    char* p = ::mkdtemp(tmpl.data());
    if (p == nullptr) std::abort();
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace hashfs::testing
