// Shared helpers for the cas/ tests: status matchers, temp directories and
// deterministic pseudo-random payloads.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <ostream>
#include <random>
#include <string>

#include "cas/digest.h"
#include "cas/status.h"

namespace hashfs {

// Lets gtest print a Status / Digest in failure messages.
inline void PrintTo(const Status& s, std::ostream* os) { *os << s.ToString(); }
inline void PrintTo(const Digest& d, std::ostream* os) { *os << d.Hex(); }

}  // namespace hashfs

namespace hashfs::testing {

inline ::testing::AssertionResult IsOk(const Status& s) {
  if (s.ok()) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "status is " << s.ToString();
}
template <typename T>
::testing::AssertionResult IsOk(const Result<T>& r) {
  return IsOk(r.status());
}
inline ::testing::AssertionResult HasCode(const Status& s, Status::Code c) {
  if (s.code() == c) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "expected code '" << CodeName(c) << "' but status is "
                                       << s.ToString();
}
template <typename T>
::testing::AssertionResult HasCode(const Result<T>& r, Status::Code c) {
  if (r.ok()) return ::testing::AssertionFailure() << "expected code '" << CodeName(c) << "' but result is OK";
  return HasCode(r.status(), c);
}

#define CAS_ASSERT_OK(expr) ASSERT_TRUE(::hashfs::testing::IsOk(expr))
#define CAS_EXPECT_OK(expr) EXPECT_TRUE(::hashfs::testing::IsOk(expr))
#define CAS_EXPECT_CODE(expr, code) EXPECT_TRUE(::hashfs::testing::HasCode((expr), ::hashfs::Status::Code::code))
#define CAS_ASSERT_CODE(expr, code) ASSERT_TRUE(::hashfs::testing::HasCode((expr), ::hashfs::Status::Code::code))

// Incompressible bytes, deterministic in `seed`.
inline std::string RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed * 0x9E3779B97F4A7C15ull + 1);
  std::string s(n, '\0');
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t v = rng();
    std::memcpy(s.data() + i, &v, 8);
  }
  for (; i < n; i++) s[i] = static_cast<char>(rng());
  return s;
}

// A fresh directory under /tmp, recursively removed on destruction.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/hashfs_cas_test_XXXXXX";
    char* p = mkdtemp(tmpl);
    if (!p) std::abort();
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace hashfs::testing
