#define FUSE_USE_VERSION 312
#include "fusefs/fuse_mount.h"

#include <fuse3/fuse_lowlevel.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <exception>
#include <fstream>
#include <sstream>
#include <memory>

#include <fmt/format.h>

namespace hashfs::fusefs {

int ErrnoFor(const Status& s) {
  using C = Status::Code;
  switch (s.code()) {
    case C::kOk: return 0;
    case C::kNotFound: return ENOENT;
    case C::kExists: return EEXIST;
    case C::kPermission: return EACCES;
    case C::kNotPermitted: return EPERM;
    case C::kReadOnly: return EROFS;
    case C::kNotEmpty: return ENOTEMPTY;
    case C::kIsDirectory: return EISDIR;
    case C::kNotDirectory: return ENOTDIR;
    case C::kNameTooLong: return ENAMETOOLONG;
    case C::kNoAttribute: return ENODATA;
    case C::kRange: return ERANGE;
    case C::kCrossDevice: return EXDEV;
    case C::kTooBig: return EFBIG;
    case C::kNoSpace: return ENOSPC;
    case C::kInvalidArgument: return EINVAL;
    case C::kUnsupported: return EOPNOTSUPP;
    case C::kBusy: return EBUSY;
    case C::kCorruption:
    case C::kIOError:
    case C::kConflict:
    case C::kStale: return EIO;
  }
  return EIO;
}

namespace {

struct Context {
  Filesystem* fs;
  struct fuse_session* se = nullptr;
};

Filesystem& FS(fuse_req_t req) { return *static_cast<Context*>(fuse_req_userdata(req))->fs; }

// Logs what the user needs to know about (data errors), not ordinary misses.
void LogIfSerious(const char* op, const Status& s) {
  auto c = s.code();
  if (c == Status::Code::kCorruption || c == Status::Code::kIOError || c == Status::Code::kNoSpace ||
      c == Status::Code::kConflict || c == Status::Code::kStale)
    LogLine(std::string(op) + ": " + s.ToString());
}

void ReplyErr(fuse_req_t req, const char* op, const Status& s) {
  LogIfSerious(op, s);
  fuse_reply_err(req, ErrnoFor(s));
}

// Runs a callback body, turning any exception into EIO.
template <typename F>
void Guard(fuse_req_t req, const char* op, F&& body) {
  try {
    body();
  } catch (const std::exception& e) {
    LogLine(std::string(op) + ": internal error: " + e.what());
    fuse_reply_err(req, EIO);
  } catch (...) {
    LogLine(std::string(op) + ": internal error");
    fuse_reply_err(req, EIO);
  }
}

fuse_entry_param ToParam(const EntryOut& e) {
  fuse_entry_param p{};
  p.ino = e.ino;
  p.generation = 1;
  p.attr = e.attr;
  p.attr_timeout = e.timeout;
  p.entry_timeout = e.timeout;
  return p;
}

void ReplyEntry(fuse_req_t req, const char* op, const Result<EntryOut>& r) {
  if (!r.ok()) return ReplyErr(req, op, r.status());
  fuse_entry_param p = ToParam(*r);
  if (fuse_reply_entry(req, &p) != 0) FS(req).Forget(p.ino, 1);  // the kernel never got it
}

Caller CallerOf(fuse_req_t req) {
  const fuse_ctx* c = fuse_req_ctx(req);
  return Caller{c->uid, c->gid};
}


int64_t Ns(const timespec& t) { return int64_t{t.tv_sec} * 1'000'000'000 + t.tv_nsec; }

void OpInit(void* userdata, fuse_conn_info* conn) {
  (void)userdata;
  auto want = [&](unsigned cap) {
    if (conn->capable & cap) conn->want |= cap;
  };
  want(FUSE_CAP_ASYNC_READ);
  want(FUSE_CAP_ATOMIC_O_TRUNC);
  want(FUSE_CAP_READDIRPLUS);
  want(FUSE_CAP_READDIRPLUS_AUTO);
  want(FUSE_CAP_PARALLEL_DIROPS);
  want(FUSE_CAP_CACHE_SYMLINKS);
  conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
  conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;  // the kernel drops setuid/setgid (but see DropPrivileges)
  conn->max_write = 1u << 20;
  conn->max_read = 1u << 20;  // must equal the max_read mount option
  conn->max_readahead = 1u << 20;
  conn->max_background = 64;
  conn->congestion_threshold = 48;
}

void OpDestroy(void* userdata) {
  auto* ctx = static_cast<Context*>(userdata);
  Status s = ctx->fs->Sync();
  if (!s.ok()) LogLine("commit at unmount failed: " + s.ToString());
}

void OpLookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Guard(req, "lookup", [&] {
    auto r = FS(req).Lookup(parent, name);
    if (!r.ok() && r.status().IsNotFound()) {
      fuse_entry_param p{};
      p.ino = 0;
      p.entry_timeout = FS(req).read_only() ? 60.0 : 1.0;
      fuse_reply_entry(req, &p);
      return;
    }
    ReplyEntry(req, "lookup", r);
  });
}

void OpForget(fuse_req_t req, fuse_ino_t ino, uint64_t n) {
  try {
    FS(req).Forget(ino, n);
  } catch (...) {
  }
  fuse_reply_none(req);
}

void OpForgetMulti(fuse_req_t req, size_t count, fuse_forget_data* forgets) {
  try {
    for (size_t i = 0; i < count; i++) FS(req).Forget(forgets[i].ino, forgets[i].nlookup);
  } catch (...) {
  }
  fuse_reply_none(req);
}

void OpGetattr(fuse_req_t req, fuse_ino_t ino, fuse_file_info*) {
  Guard(req, "getattr", [&] {
    auto r = FS(req).GetAttr(ino);
    if (!r.ok()) return ReplyErr(req, "getattr", r.status());
    fuse_reply_attr(req, &*r, FS(req).read_only() ? 3600.0 : 10.0);
  });
}

// Whether the caller of req is in group gid (primary or supplementary).
// Supplementary groups come from /proc/PID/status ("Groups: g1 g2 ..."), not
// fuse_req_getgroups, which runs strstr over an unterminated buffer (libfuse
// 3.14; ASan's strict_string_checks reports it).
bool CallerInGroup(fuse_req_t req, gid_t gid) {
  const fuse_ctx* c = fuse_req_ctx(req);
  if (c->gid == gid) return true;
  std::ifstream status("/proc/" + std::to_string(c->pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("Groups:", 0) != 0) continue;
    std::istringstream in(line.substr(7));
    for (unsigned long g; in >> g;)
      if (g == gid) return true;
    break;
  }
  return false;
}

// Drops the setuid and setgid bits of a regular file that a caller without
// CAP_FSETID (uid 0 here) wrote, truncated, opened with O_TRUNC or
// fallocated: setuid always, setgid if the file is group-executable or the
// caller is outside its group (Linux's should_remove_suid and
// setattr_should_drop_sgid). The kernel's FUSE code does most of this itself
// before the request (FUSE_CAP_HANDLE_KILLPRIV is not negotiated: libfuse
// 3.14 never passes it to the kernel), but not all:
//  - it applies only the older setgid rule (group-executable), not the one
//    for callers outside the group (Linux >= 6.2);
//  - an O_TRUNC open drops nothing: with atomic O_TRUNC the kernel skips the
//    SETATTR that would carry the new mode.
void DropPrivileges(fuse_req_t req, fuse_ino_t ino) {
  if (fuse_req_ctx(req)->uid == 0) return;  // treated as CAP_FSETID
  auto st = FS(req).GetAttr(ino);
  if (!st.ok() || !S_ISREG(st->st_mode) || !(st->st_mode & (S_ISUID | S_ISGID))) return;
  mode_t drop = st->st_mode & S_ISUID;
  if ((st->st_mode & S_ISGID) && ((st->st_mode & S_IXGRP) || !CallerInGroup(req, st->st_gid))) drop |= S_ISGID;
  if (!drop) return;
  SetAttrRequest r;
  r.mode = st->st_mode & 07777 & ~drop;
  (void)FS(req).SetAttr(ino, r);
}

void OpSetattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int to_set, fuse_file_info*) {
  Guard(req, "setattr", [&] {
    SetAttrRequest r;
    if (to_set & FUSE_SET_ATTR_MODE) r.mode = attr->st_mode;
    if (to_set & FUSE_SET_ATTR_UID) r.uid = attr->st_uid;
    if (to_set & FUSE_SET_ATTR_GID) r.gid = attr->st_gid;
    if (to_set & FUSE_SET_ATTR_SIZE) r.size = static_cast<uint64_t>(attr->st_size);
    int64_t now = WallClockNs();
    if (to_set & FUSE_SET_ATTR_ATIME_NOW) r.atime_ns = now;
    else if (to_set & FUSE_SET_ATTR_ATIME) r.atime_ns = Ns(attr->st_atim);
    if (to_set & FUSE_SET_ATTR_MTIME_NOW) r.mtime_ns = now;
    else if (to_set & FUSE_SET_ATTR_MTIME) r.mtime_ns = Ns(attr->st_mtim);
    if (to_set & FUSE_SET_ATTR_CTIME) r.ctime_ns = Ns(attr->st_ctim);
    auto s = FS(req).SetAttr(ino, r);
    if (!s.ok()) return ReplyErr(req, "setattr", s.status());
    if (r.size && !r.mode) {
      DropPrivileges(req, ino);
      s = FS(req).GetAttr(ino);
      if (!s.ok()) return ReplyErr(req, "setattr", s.status());
    }
    fuse_reply_attr(req, &*s, 10.0);
  });
}

void OpReadlink(fuse_req_t req, fuse_ino_t ino) {
  Guard(req, "readlink", [&] {
    auto r = FS(req).ReadLink(ino);
    if (!r.ok()) return ReplyErr(req, "readlink", r.status());
    fuse_reply_readlink(req, r->c_str());
  });
}

void OpMknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  Guard(req, "mknod", [&] { ReplyEntry(req, "mknod", FS(req).MakeNode(parent, name, mode, rdev, CallerOf(req))); });
}

void OpMkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  Guard(req, "mkdir", [&] { ReplyEntry(req, "mkdir", FS(req).MakeDir(parent, name, mode, CallerOf(req))); });
}

void OpSymlink(fuse_req_t req, const char* link, fuse_ino_t parent, const char* name) {
  Guard(req, "symlink", [&] { ReplyEntry(req, "symlink", FS(req).Symlink(parent, name, link, CallerOf(req))); });
}

void OpLink(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char* newname) {
  Guard(req, "link", [&] { ReplyEntry(req, "link", FS(req).Link(ino, newparent, newname)); });
}

void OpUnlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Guard(req, "unlink", [&] {
    Status s = FS(req).Unlink(parent, name);
    if (!s.ok()) return ReplyErr(req, "unlink", s);
    fuse_reply_err(req, 0);
  });
}

void OpRmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Guard(req, "rmdir", [&] {
    Status s = FS(req).Rmdir(parent, name);
    if (!s.ok()) return ReplyErr(req, "rmdir", s);
    fuse_reply_err(req, 0);
  });
}

void OpRename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newparent, const char* newname,
              unsigned int flags) {
  Guard(req, "rename", [&] {
    Status s = FS(req).Rename(parent, name, newparent, newname, flags);
    if (!s.ok()) return ReplyErr(req, "rename", s);
    fuse_reply_err(req, 0);
  });
}

void OpOpen(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Guard(req, "open", [&] {
    auto r = FS(req).Open(ino, fi->flags);
    if (!r.ok()) return ReplyErr(req, "open", r.status());
    if (fi->flags & O_TRUNC) DropPrivileges(req, ino);
    fi->fh = *r;
    fi->keep_cache = 1;  // every change goes through this mount; revert invalidates
    fi->noflush = 1;     // close(2) need not wait: Release does what Flush would (see OpFlush)
    if (fuse_reply_open(req, fi) != 0) (void)FS(req).Release(ino, fi->fh);
  });
}

void OpCreate(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, fuse_file_info* fi) {
  Guard(req, "create", [&] {
    auto r = FS(req).Create(parent, name, mode, fi->flags, CallerOf(req));
    if (!r.ok()) return ReplyErr(req, "create", r.status());
    fi->fh = r->second;
    fi->keep_cache = 1;
    fi->noflush = 1;
    fuse_entry_param p = ToParam(r->first);
    if (fuse_reply_create(req, &p, fi) != 0) {
      (void)FS(req).Release(p.ino, fi->fh);
      FS(req).Forget(p.ino, 1);
    }
  });
}

void OpRead(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  Guard(req, "read", [&] {
    std::unique_ptr<char[]> buf(new char[size]);
    auto r = FS(req).Read(ino, fi->fh, static_cast<uint64_t>(off), size, buf.get());
    if (!r.ok()) return ReplyErr(req, "read", r.status());
    fuse_reply_buf(req, buf.get(), *r);
  });
}

void OpWrite(fuse_req_t req, fuse_ino_t ino, const char* data, size_t size, off_t off, fuse_file_info* fi) {
  Guard(req, "write", [&] {
    auto r = FS(req).Write(ino, fi->fh, static_cast<uint64_t>(off), data, size);
    if (!r.ok()) return ReplyErr(req, "write", r.status());
    DropPrivileges(req, ino);
    fuse_reply_write(req, *r);
  });
}

// Only SEEK_DATA and SEEK_HOLE reach the file system; the kernel does the rest.
void OpLseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, fuse_file_info*) {
  Guard(req, "lseek", [&] {
    if ((whence != SEEK_DATA && whence != SEEK_HOLE) || off < 0) return (void)fuse_reply_err(req, EINVAL);
    auto r = FS(req).Seek(ino, static_cast<uint64_t>(off), whence == SEEK_DATA);
    if (!r.ok()) return ReplyErr(req, "lseek", r.status());
    if (!*r) return (void)fuse_reply_err(req, ENXIO);
    fuse_reply_lseek(req, static_cast<off_t>(**r));
  });
}

// Files are opened with noflush (FOPEN_NOFLUSH, Linux >= 5.16), so close(2)
// sends no FLUSH: one round trip less per closed file (tar -x, cp -r). Nothing
// is lost: Flush only wakes the committer, which Release does too; locks are
// the kernel's own (no lock operations here); pages written through a shared
// mapping are written back at munmap, before the last Release. Older kernels
// ignore the flag and still send FLUSH.
void OpFlush(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Guard(req, "flush", [&] {
    Status s = FS(req).Flush(ino, fi->fh);
    fuse_reply_err(req, ErrnoFor(s));
  });
}

void OpRelease(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Guard(req, "release", [&] {
    Status s = FS(req).Release(ino, fi->fh);
    fuse_reply_err(req, ErrnoFor(s));
  });
}

void OpFsync(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
  Guard(req, "fsync", [&] {
    Status s = FS(req).Fsync(ino);
    if (!s.ok()) return ReplyErr(req, "fsync", s);
    fuse_reply_err(req, 0);
  });
}

void OpOpendir(fuse_req_t req, fuse_ino_t ino, fuse_file_info* fi) {
  Guard(req, "opendir", [&] {
    auto r = FS(req).OpenDir(ino);
    if (!r.ok()) return ReplyErr(req, "opendir", r.status());
    fi->fh = *r;
    if (fuse_reply_open(req, fi) != 0) FS(req).ReleaseDir(fi->fh);
  });
}

void DoReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi, bool plus) {
  const char* op = plus ? "readdirplus" : "readdir";
  Guard(req, op, [&] {
    auto r = FS(req).ReadDir(ino, fi->fh);
    if (!r.ok()) return ReplyErr(req, op, r.status());
    const DirListing& listing = **r;
    const auto& entries = listing.entries;
    std::unique_ptr<char[]> buf(new char[size]);
    size_t pos = 0;
    // Offsets: 0 ".", 1 "..", 2 + i the i-th entry of the snapshot.
    for (uint64_t i = static_cast<uint64_t>(off); i < entries.size() + 2; i++) {
      std::string name;
      struct stat st {};
      fuse_entry_param e{};
      bool counted = false;
      if (i < 2) {
        name = i == 0 ? "." : "..";
        // Directories do not know their parent (it is the kernel's dentry
        // cache that resolves ".."); d_ino 0 would hide the entry, so ".."
        // reports the root's number.
        st.st_ino = i == 0 ? listing.self_ino : kRootIno;
        st.st_mode = S_IFDIR;
        e.attr = st;
      } else {
        const DirEntryOut& de = entries[i - 2];
        name = de.name;
        st.st_ino = de.ino;
        st.st_mode = de.type_bits;
        if (plus) {
          auto le = FS(req).LookupForReaddirPlus(ino, de);
          if (!le.ok()) continue;  // removed since opendir
          e = ToParam(*le);
          counted = true;
        }
      }
      size_t n = plus ? fuse_add_direntry_plus(req, buf.get() + pos, size - pos, name.c_str(), &e,
                                                static_cast<off_t>(i + 1))
                      : fuse_add_direntry(req, buf.get() + pos, size - pos, name.c_str(), &st,
                                          static_cast<off_t>(i + 1));
      if (n > size - pos) {
        if (counted) FS(req).Forget(e.ino, 1);
        break;
      }
      pos += n;
    }
    fuse_reply_buf(req, buf.get(), pos);
  });
}

void OpReaddir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  DoReaddir(req, ino, size, off, fi, false);
}
void OpReaddirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, fuse_file_info* fi) {
  DoReaddir(req, ino, size, off, fi, true);
}

void OpReleasedir(fuse_req_t req, fuse_ino_t, fuse_file_info* fi) {
  Guard(req, "releasedir", [&] {
    FS(req).ReleaseDir(fi->fh);
    fuse_reply_err(req, 0);
  });
}

void OpFsyncdir(fuse_req_t req, fuse_ino_t ino, int, fuse_file_info*) {
  Guard(req, "fsyncdir", [&] {
    Status s = FS(req).Fsync(ino);
    if (!s.ok()) return ReplyErr(req, "fsyncdir", s);
    fuse_reply_err(req, 0);
  });
}

void OpStatfs(fuse_req_t req, fuse_ino_t) {
  Guard(req, "statfs", [&] {
    auto r = FS(req).StatFs();
    if (!r.ok()) return ReplyErr(req, "statfs", r.status());
    fuse_reply_statfs(req, &*r);
  });
}

// POSIX ACLs (system.posix_acl_*) are opaque xattrs to the kernel here; as
// on native file systems only the owner (or root) may change them.
bool MayChangeAcl(fuse_req_t req, fuse_ino_t ino, std::string_view name) {
  if (name.rfind("system.posix_acl_", 0) != 0) return true;
  const fuse_ctx* c = fuse_req_ctx(req);
  if (c->uid == 0) return true;
  auto st = FS(req).GetAttr(ino);
  return st.ok() && st->st_uid == c->uid;
}

void OpSetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags) {
  Guard(req, "setxattr", [&] {
    if (!MayChangeAcl(req, ino, name)) return fuse_reply_err(req, EPERM), void();
    Status s = FS(req).SetXattr(ino, name, std::string_view(value, size), flags);
    if (s.code() == Status::Code::kTooBig) return fuse_reply_err(req, E2BIG), void();
    if (!s.ok()) return ReplyErr(req, "setxattr", s);
    fuse_reply_err(req, 0);
  });
}

void OpGetxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  Guard(req, "getxattr", [&] {
    auto r = FS(req).GetXattr(ino, name);
    if (!r.ok()) return ReplyErr(req, "getxattr", r.status());
    if (size == 0) return fuse_reply_xattr(req, r->size()), void();
    if (size < r->size()) return fuse_reply_err(req, ERANGE), void();
    fuse_reply_buf(req, r->data(), r->size());
  });
}

void OpListxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  Guard(req, "listxattr", [&] {
    auto r = FS(req).ListXattr(ino);
    if (!r.ok()) return ReplyErr(req, "listxattr", r.status());
    std::string all;
    for (const auto& n : *r) {
      all += n;
      all.push_back('\0');
    }
    if (size == 0) return fuse_reply_xattr(req, all.size()), void();
    if (size < all.size()) return fuse_reply_err(req, ERANGE), void();
    fuse_reply_buf(req, all.data(), all.size());
  });
}

void OpRemovexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  Guard(req, "removexattr", [&] {
    if (!MayChangeAcl(req, ino, name)) return fuse_reply_err(req, EPERM), void();
    Status s = FS(req).RemoveXattr(ino, name);
    if (!s.ok()) return ReplyErr(req, "removexattr", s);
    fuse_reply_err(req, 0);
  });
}

void OpAccess(fuse_req_t req, fuse_ino_t ino, int) {
  // Permission bits are checked by the kernel (default_permissions); this
  // only answers whether the inode exists.
  Guard(req, "access", [&] {
    auto r = FS(req).GetAttr(ino);
    fuse_reply_err(req, r.ok() ? 0 : ErrnoFor(r.status()));
  });
}

void OpFallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length, fuse_file_info*) {
  Guard(req, "fallocate", [&] {
    Status s = FS(req).Fallocate(ino, mode, static_cast<uint64_t>(offset), static_cast<uint64_t>(length));
    if (!s.ok()) return ReplyErr(req, "fallocate", s);
    DropPrivileges(req, ino);
    fuse_reply_err(req, 0);
  });
}

fuse_lowlevel_ops MakeOps() {
  fuse_lowlevel_ops ops{};
  ops.init = OpInit;
  ops.destroy = OpDestroy;
  ops.lookup = OpLookup;
  ops.forget = OpForget;
  ops.forget_multi = OpForgetMulti;
  ops.getattr = OpGetattr;
  ops.setattr = OpSetattr;
  ops.readlink = OpReadlink;
  ops.mknod = OpMknod;
  ops.mkdir = OpMkdir;
  ops.symlink = OpSymlink;
  ops.link = OpLink;
  ops.unlink = OpUnlink;
  ops.rmdir = OpRmdir;
  ops.rename = OpRename;
  ops.open = OpOpen;
  ops.create = OpCreate;
  ops.read = OpRead;
  ops.write = OpWrite;
  ops.flush = OpFlush;
  ops.lseek = OpLseek;
  ops.release = OpRelease;
  ops.fsync = OpFsync;
  ops.opendir = OpOpendir;
  ops.readdir = OpReaddir;
  ops.readdirplus = OpReaddirplus;
  ops.releasedir = OpReleasedir;
  ops.fsyncdir = OpFsyncdir;
  ops.statfs = OpStatfs;
  ops.setxattr = OpSetxattr;
  ops.getxattr = OpGetxattr;
  ops.listxattr = OpListxattr;
  ops.removexattr = OpRemovexattr;
  ops.access = OpAccess;
  ops.fallocate = OpFallocate;
  return ops;
}

// RAII owners of libfuse objects.
struct SessionDeleter {
  void operator()(fuse_session* se) const { fuse_session_destroy(se); }
};
struct LoopConfigDeleter {
  void operator()(fuse_loop_config* c) const { fuse_loop_cfg_destroy(c); }
};

}  // namespace

Status ServeFuse(Filesystem& fs, const FuseOptions& opts, const std::function<void(const Status&)>& ready) {
  std::string o = "default_permissions,fsname=" + opts.fsname + ",subtype=hashfs,max_read=1048576";
  if (opts.allow_other) o += ",allow_other";
  if (opts.read_only) o += ",ro";
  for (const auto& x : opts.extra) o += "," + x;
  std::vector<std::string> argv_s = {"hashfs", "-o", o};
  std::vector<char*> argv;
  argv.reserve(argv_s.size());
  for (auto& s : argv_s) argv.push_back(s.data());
  fuse_args args = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());

  Context ctx{&fs};
  fuse_lowlevel_ops ops = MakeOps();
  std::unique_ptr<fuse_session, SessionDeleter> se(fuse_session_new(&args, &ops, sizeof(ops), &ctx));
  if (!se) {
    Status s = Status::InvalidArgument("cannot create the FUSE session (bad -o option?)");
    ready(s);
    return s;
  }
  ctx.se = se.get();
  if (fuse_set_signal_handlers(se.get()) != 0) {
    Status s = Status::IOError("cannot install signal handlers");
    ready(s);
    return s;
  }
  if (fuse_session_mount(se.get(), opts.mountpoint.c_str()) != 0) {
    fuse_remove_signal_handlers(se.get());
    Status s = Status::IOError("cannot mount at " + opts.mountpoint + " (see the log; is /dev/fuse available?)");
    ready(s);
    return s;
  }
  fs.SetInvalidator(Invalidator{
      [&ctx](uint64_t ino) { fuse_lowlevel_notify_inval_inode(ctx.se, ino, 0, 0); },
      [&ctx](uint64_t parent, const std::string& name) {
        fuse_lowlevel_notify_inval_entry(ctx.se, parent, name.c_str(), name.size());
      }});
  ready(Status::Ok());
  std::unique_ptr<fuse_loop_config, LoopConfigDeleter> cfg(fuse_loop_cfg_create());
  fuse_loop_cfg_set_clone_fd(cfg.get(), 0);
  fuse_loop_cfg_set_max_threads(cfg.get(), static_cast<unsigned>(opts.max_threads));
  int rc = fuse_session_loop_mt(se.get(), cfg.get());
  fs.SetInvalidator(Invalidator{});
  fuse_session_unmount(se.get());
  fuse_remove_signal_handlers(se.get());
  Status s = fs.Sync();
  if (!s.ok()) return s.WithContext("committing at unmount");
  if (rc != 0 && rc != SIGTERM && rc != SIGINT && rc != SIGHUP) return Status::IOError(fmt::format("FUSE loop ended with {}", rc));
  return Status::Ok();
}

}  // namespace hashfs::fusefs
