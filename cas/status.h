// Status and Result<T>: the one error type used across every hashfs layer.
//
// A Status is either OK or carries a Code and a human-readable message. Errno
// values appear only at the FUSE boundary (fusefs), which maps Code -> errno.
// Status and Result are plain values: thread-compatible, not thread-safe.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace hashfs {

class Status {
 public:
  enum class Code : int {
    kOk = 0,
    kNotFound,         // object, ref, path or entry does not exist
    kCorruption,       // stored bytes fail their hash or do not decode
    kInvalidArgument,  // caller error: bad name, bad REF, malformed option
    kIOError,          // operating system or library I/O failure
    kNoSpace,          // disk or map full; nothing committed was lost
    kConflict,         // compare-and-swap lost a race; retry from fresh state
    kExists,           // name already taken
    kUnsupported,      // incompatible store format or unsupported feature
    kPermission,       // EACCES/EPERM-style refusal
    kBusy,             // resource in use (e.g. a volume already mounted rw)
    kStale,            // a garbage collection ran concurrently; revalidate
    // Filesystem namespace conditions (the FUSE layer maps each to its errno).
    kNotPermitted,     // operation not permitted to this caller (EPERM)
    kReadOnly,         // write to a read-only mount or history view (EROFS)
    kNotEmpty,         // directory not empty (ENOTEMPTY)
    kIsDirectory,      // a directory where a non-directory is needed (EISDIR)
    kNotDirectory,     // a non-directory where a directory is needed (ENOTDIR)
    kNameTooLong,      // name over 255 bytes (ENAMETOOLONG)
    kNoAttribute,      // no such extended attribute (ENODATA)
    kRange,            // a caller's buffer is too small (ERANGE)
    kCrossDevice,      // link or rename across mounts or views (EXDEV)
    kTooBig,           // size limit exceeded (EFBIG / E2BIG)
  };

  Status() = default;
  static Status Ok() { return Status(); }
  static Status NotFound(std::string m) { return Status(Code::kNotFound, std::move(m)); }
  static Status Corruption(std::string m) { return Status(Code::kCorruption, std::move(m)); }
  static Status InvalidArgument(std::string m) { return Status(Code::kInvalidArgument, std::move(m)); }
  static Status IOError(std::string m) { return Status(Code::kIOError, std::move(m)); }
  static Status NoSpace(std::string m) { return Status(Code::kNoSpace, std::move(m)); }
  static Status Conflict(std::string m) { return Status(Code::kConflict, std::move(m)); }
  static Status Exists(std::string m) { return Status(Code::kExists, std::move(m)); }
  static Status Unsupported(std::string m) { return Status(Code::kUnsupported, std::move(m)); }
  static Status Permission(std::string m) { return Status(Code::kPermission, std::move(m)); }
  static Status Busy(std::string m) { return Status(Code::kBusy, std::move(m)); }
  static Status Stale(std::string m) { return Status(Code::kStale, std::move(m)); }
  static Status Make(Code c, std::string m) { return Status(c, std::move(m)); }
  // IOError (or NoSpace for ENOSPC/EDQUOT) built from an errno value.
  static Status FromErrno(int err, std::string_view what);

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  bool IsNotFound() const { return code_ == Code::kNotFound; }
  bool IsCorruption() const { return code_ == Code::kCorruption; }

  // "corruption: <message>"; "ok" for OK.
  std::string ToString() const;
  // Returns a copy whose message is prefixed with "context: ".
  Status WithContext(std::string_view context) const;

 private:
  Status(Code c, std::string m) : code_(c), message_(std::move(m)) {}
  Code code_ = Code::kOk;
  std::string message_;
};

std::string_view CodeName(Status::Code c);

// Result<T> holds either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}  // NOLINT(google-explicit-constructor)
  Result(Status s) : v_(std::move(s)) {      // NOLINT(google-explicit-constructor)
    assert(!std::get<Status>(v_).ok() && "Result constructed from an OK status");
  }

  bool ok() const { return std::holds_alternative<T>(v_); }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<Status>(v_);
  }
  T& value() & { return std::get<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace hashfs

// Propagation helpers. HASHFS_ASSIGN_OR_RETURN(lhs, expr) declares/assigns lhs.
#define HASHFS_CONCAT_INNER(a, b) a##b
#define HASHFS_CONCAT(a, b) HASHFS_CONCAT_INNER(a, b)

#define HASHFS_RETURN_IF_ERROR_IMPL(tmp, expr) \
  do {                                         \
    ::hashfs::Status tmp = (expr);             \
    if (!tmp.ok()) return tmp;                 \
  } while (0)
#define HASHFS_RETURN_IF_ERROR(expr) HASHFS_RETURN_IF_ERROR_IMPL(HASHFS_CONCAT(_hashfs_st_, __COUNTER__), expr)

#define HASHFS_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                                 \
  if (!tmp.ok()) return tmp.status();                \
  lhs = std::move(tmp).value()

#define HASHFS_ASSIGN_OR_RETURN(lhs, expr) \
  HASHFS_ASSIGN_OR_RETURN_IMPL(HASHFS_CONCAT(_hashfs_r_, __COUNTER__), lhs, expr)
