// Small RAII owners for LMDB handles, private to cas/. Not thread-safe: a
// transaction belongs to one thread at a time (the env uses MDB_NOTLS).
#pragma once

#include <lmdb.h>

#include <string>
#include <string_view>

#include "cas/status.h"

namespace hashfs::lmdb {

// Maps an LMDB return code to a Status ("what: mdb_strerror").
Status Error(int rc, std::string_view what);

inline MDB_val Val(std::string_view s) {
  return MDB_val{s.size(), const_cast<char*>(s.data())};
}
inline std::string_view View(const MDB_val& v) {
  return {static_cast<const char*>(v.mv_data), v.mv_size};
}

// Owns an MDB_txn; aborts it on destruction unless committed.
class Txn {
 public:
  Txn() = default;
  explicit Txn(MDB_txn* t) : t_(t) {}
  Txn(Txn&& o) noexcept : t_(o.t_) { o.t_ = nullptr; }
  Txn& operator=(Txn&& o) noexcept {
    if (this != &o) {
      Abort();
      t_ = o.t_;
      o.t_ = nullptr;
    }
    return *this;
  }
  Txn(const Txn&) = delete;
  Txn& operator=(const Txn&) = delete;
  ~Txn() { Abort(); }
  MDB_txn* get() const { return t_; }
  // Commits (the handle is released whatever the outcome); returns the mdb rc.
  int Commit() {
    int rc = mdb_txn_commit(t_);
    t_ = nullptr;
    return rc;
  }
  void Abort() {
    if (t_) mdb_txn_abort(t_);
    t_ = nullptr;
  }
  MDB_txn* Release() {
    MDB_txn* t = t_;
    t_ = nullptr;
    return t;
  }

 private:
  MDB_txn* t_ = nullptr;
};

// Owns an MDB_cursor.
class Cursor {
 public:
  Cursor(MDB_txn* txn, MDB_dbi dbi, int* rc) { *rc = mdb_cursor_open(txn, dbi, &c_); }
  Cursor(const Cursor&) = delete;
  Cursor& operator=(const Cursor&) = delete;
  ~Cursor() {
    if (c_) mdb_cursor_close(c_);
  }
  MDB_cursor* get() const { return c_; }

 private:
  MDB_cursor* c_ = nullptr;
};

}  // namespace hashfs::lmdb
