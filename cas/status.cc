#include "cas/status.h"

#include <cerrno>
#include <cstring>

namespace hashfs {

std::string_view CodeName(Status::Code c) {
  switch (c) {
    case Status::Code::kOk: return "ok";
    case Status::Code::kNotFound: return "not found";
    case Status::Code::kCorruption: return "corruption";
    case Status::Code::kInvalidArgument: return "invalid argument";
    case Status::Code::kIOError: return "I/O error";
    case Status::Code::kNoSpace: return "no space";
    case Status::Code::kConflict: return "conflict";
    case Status::Code::kExists: return "exists";
    case Status::Code::kUnsupported: return "unsupported";
    case Status::Code::kPermission: return "permission denied";
    case Status::Code::kBusy: return "busy";
    case Status::Code::kStale: return "stale";
    case Status::Code::kNotPermitted: return "operation not permitted";
    case Status::Code::kReadOnly: return "read-only";
    case Status::Code::kNotEmpty: return "directory not empty";
    case Status::Code::kIsDirectory: return "is a directory";
    case Status::Code::kNotDirectory: return "not a directory";
    case Status::Code::kNameTooLong: return "name too long";
    case Status::Code::kNoAttribute: return "no such attribute";
    case Status::Code::kRange: return "result too large";
    case Status::Code::kCrossDevice: return "cross-device";
    case Status::Code::kTooBig: return "too big";
  }
  return "unknown";
}

Status Status::FromErrno(int err, std::string_view what) {
  std::string msg = std::string(what) + ": " + std::strerror(err);
  switch (err) {
    case ENOSPC:
    case EDQUOT: return NoSpace(std::move(msg));
    case ENOENT: return NotFound(std::move(msg));
    case EACCES:
    case EPERM: return Permission(std::move(msg));
    case EEXIST: return Exists(std::move(msg));
    default: return IOError(std::move(msg));
  }
}

std::string Status::ToString() const {
  if (ok()) return "ok";
  return std::string(CodeName(code_)) + ": " + message_;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  return Status(code_, std::string(context) + ": " + message_);
}

}  // namespace hashfs
