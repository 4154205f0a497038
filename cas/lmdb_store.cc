#include "cas/lmdb_store.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <shared_mutex>
#include <unordered_map>
#include <vector>

#include "cas/lmdb_check.h"
#include "cas/lmdb_raii.h"
#include "cas/object_codec.h"
#include "cas/pack_pointer.h"

namespace hashfs {

namespace lmdb {
Status Error(int rc, std::string_view what) {
  std::string msg = std::string(what) + ": " + mdb_strerror(rc);
  switch (rc) {
    case MDB_MAP_FULL:
    case ENOSPC:
    case EDQUOT: return Status::NoSpace(msg);
    case MDB_NOTFOUND:
    case ENOENT: return Status::NotFound(msg);
    case MDB_CORRUPTED:
    case MDB_PAGE_NOTFOUND:
    case MDB_INVALID: return Status::Corruption(msg);
    case MDB_VERSION_MISMATCH: return Status::Unsupported(msg);
    case EACCES:
    case EPERM: return Status::Permission(msg);
    default: return Status::IOError(msg);
  }
}
}  // namespace lmdb

namespace {

// The resize lock of one open store: held shared by every live transaction of
// this process, exclusively while the map is resized (LMDB requires that no
// transaction of the process is active then). Writer-preferring, so a resize
// is not starved by back-to-back readers; re-entrant for shared holders on one
// thread (a Get inside a ForEachObject callback does not lock again), which a
// writer-preferring lock would otherwise turn into a deadlock. Meets the
// Lockable and SharedLockable requirements.
class ResizeLock {
 public:
  ResizeLock() {
    pthread_rwlockattr_t a;
    pthread_rwlockattr_init(&a);
    pthread_rwlockattr_setkind_np(&a, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init(&lock_, &a);
    pthread_rwlockattr_destroy(&a);
  }
  ~ResizeLock() { pthread_rwlock_destroy(&lock_); }
  ResizeLock(const ResizeLock&) = delete;
  ResizeLock& operator=(const ResizeLock&) = delete;

  void lock_shared() {
    if (Depth()++ == 0) pthread_rwlock_rdlock(&lock_);
  }
  void unlock_shared() {
    auto& depths = Depths();
    auto it = depths.find(this);
    if (--it->second == 0) {
      depths.erase(it);
      pthread_rwlock_unlock(&lock_);
    }
  }
  void lock() { pthread_rwlock_wrlock(&lock_); }
  void unlock() { pthread_rwlock_unlock(&lock_); }
  // True while this thread holds the lock shared (it then cannot resize).
  bool HeldSharedByThisThread() {
    auto& depths = Depths();
    auto it = depths.find(this);
    return it != depths.end() && it->second > 0;
  }

 private:
  static std::unordered_map<const ResizeLock*, int>& Depths() {
    thread_local std::unordered_map<const ResizeLock*, int> depths;
    return depths;
  }
  int& Depth() { return Depths()[this]; }
  pthread_rwlock_t lock_;
};

// Ref transaction over the "refs" database of a live LMDB transaction.
class LmdbRefTxn final : public RefTxn {
 public:
  LmdbRefTxn(MDB_txn* txn, MDB_dbi dbi, bool writable) : txn_(txn), dbi_(dbi), writable_(writable) {}

  Result<std::optional<std::string>> Get(std::string_view key) override {
    if (key.empty() || key.size() > 511) return Status::InvalidArgument("bad ref key length");
    MDB_val k = lmdb::Val(key), v;
    int rc = mdb_get(txn_, dbi_, &k, &v);
    if (rc == MDB_NOTFOUND) return std::optional<std::string>();
    if (rc) return lmdb::Error(rc, "reading ref");
    return std::optional<std::string>(std::string(lmdb::View(v)));
  }

  Result<std::vector<std::pair<std::string, std::string>>> List(std::string_view prefix,
                                                                size_t limit,
                                                                bool reverse) override {
    std::vector<std::pair<std::string, std::string>> out;
    int rc;
    lmdb::Cursor cur(txn_, dbi_, &rc);
    if (rc) return lmdb::Error(rc, "opening ref cursor");
    MDB_val k, v;
    auto matches = [&](const MDB_val& key) { return lmdb::View(key).starts_with(prefix); };
    if (!reverse) {
      k = lmdb::Val(prefix);
      rc = prefix.empty() ? mdb_cursor_get(cur.get(), &k, &v, MDB_FIRST)
                          : mdb_cursor_get(cur.get(), &k, &v, MDB_SET_RANGE);
      while (rc == 0 && matches(k)) {
        out.emplace_back(std::string(lmdb::View(k)), std::string(lmdb::View(v)));
        if (limit && out.size() == limit) break;
        rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT);
      }
    } else {
      // Position after the last key with this prefix, then walk backwards.
      std::string upper(prefix);
      while (!upper.empty() && static_cast<uint8_t>(upper.back()) == 0xff) upper.pop_back();
      if (!upper.empty()) {
        upper.back() = static_cast<char>(static_cast<uint8_t>(upper.back()) + 1);
        k = lmdb::Val(upper);
        rc = mdb_cursor_get(cur.get(), &k, &v, MDB_SET_RANGE);
        rc = rc == 0 ? mdb_cursor_get(cur.get(), &k, &v, MDB_PREV)
                     : mdb_cursor_get(cur.get(), &k, &v, MDB_LAST);
      } else {
        rc = mdb_cursor_get(cur.get(), &k, &v, MDB_LAST);
      }
      while (rc == 0 && matches(k)) {
        out.emplace_back(std::string(lmdb::View(k)), std::string(lmdb::View(v)));
        if (limit && out.size() == limit) break;
        rc = mdb_cursor_get(cur.get(), &k, &v, MDB_PREV);
      }
    }
    if (rc != 0 && rc != MDB_NOTFOUND) return lmdb::Error(rc, "listing refs");
    return out;
  }

  Status Put(std::string_view key, std::string_view value) override {
    if (!writable_) return Status::InvalidArgument("write in a read-only ref transaction");
    if (key.empty() || key.size() > 511) return Status::InvalidArgument("bad ref key length");
    MDB_val k = lmdb::Val(key), v = lmdb::Val(value);
    int rc = mdb_put(txn_, dbi_, &k, &v, 0);
    if (rc) {
      last_rc = rc;
      return lmdb::Error(rc, "writing ref");
    }
    return Status::Ok();
  }

  Status Delete(std::string_view key) override {
    if (!writable_) return Status::InvalidArgument("write in a read-only ref transaction");
    MDB_val k = lmdb::Val(key);
    int rc = mdb_del(txn_, dbi_, &k, nullptr);
    if (rc && rc != MDB_NOTFOUND) {
      last_rc = rc;
      return lmdb::Error(rc, "deleting ref");
    }
    return Status::Ok();
  }

  int last_rc = 0;

 private:
  MDB_txn* txn_;
  MDB_dbi dbi_;
  bool writable_;
};

Digest DigestOfKey(const MDB_val& k) {
  Digest d;
  if (k.mv_size == Digest::kSize) std::memcpy(d.bytes.data(), k.mv_data, Digest::kSize);
  return d;
}

}  // namespace

class LmdbStore::Impl {
 public:
  std::string dir;
  MDB_env* env = nullptr;
  MDB_dbi objects = 0, refs = 0, meta = 0, packs = 0;

  ResizeLock resize_mu;
  std::atomic<uint64_t> mapped_read{0};  // bytes read through the map (NoteMappedRead)
  int statm_fd = -1;                     // /proc/self/statm, to measure what is mapped
  uint64_t map_budget = 16ull << 20;     // LmdbOptions::resident_map_budget
  // Resident file-backed bytes after the last drop (or at the first check).
  uint64_t file_rss_floor = ~uint64_t{0};
  std::string map_path;                  // absolute path of data.mdb as /proc/self/maps shows it
  std::atomic<uint64_t> map_gen{0};      // bumped (under resize_mu) whenever the map may move
  std::mutex map_range_mu;               // guards the cached range below
  uint64_t range_gen = ~uint64_t{0};     // map_gen the range was found for
  char* range_lo = nullptr;  // this environment's mapping of data.mdb
  size_t range_len = 0;

  void NoteMappedRead(size_t bytes, MDB_txn* txn);
  // Calls fn(value bytes) for a value read in an open transaction.
  template <typename Fn>
  auto ReadValue(MDB_txn* txn, const MDB_val& v, Fn&& fn);
  // If *v (an "objects" value of `d`) is a pack pointer, points *v at the
  // stored object inside its pack; Corruption if the pointer is malformed or
  // leads nowhere. Other values are left as they are. *v is valid until the
  // next write in `txn`.
  Status ResolvePacked(MDB_txn* txn, const Digest& d, MDB_val* v);
  // First id after the last pack (1 in a store without packs).
  Result<uint64_t> NextPackId(MDB_txn* txn, int* brc);
  // Bytes of a sweep's surviving objects, by pack id.
  using LiveBytes = std::unordered_map<uint64_t, uint64_t>;
  // Inside a sweep's transaction: deletes every pack no pointer uses and
  // returns the ids of those more than half dead, to rewrite.
  Result<std::set<uint64_t>> DeleteDeadPacks(MDB_txn* txn, int* brc, const LiveBytes& live);
  // After the sweep committed: copies the live objects of `packs` into new
  // packs, up to kPackTarget bytes per transaction. Their pointers are found
  // by one scan, so memory is per pointer of those packs only. A pointer that
  // changed since the scan (another gc moved or deleted it) is left alone.
  // NoSpace stops the rewriting without an error: freeing a pack needs room
  // for its live bytes first, and a later sweep finishes the job.
  Status RewritePacks(const std::set<uint64_t>& packs);

  // Reset read-only transactions kept for reuse (mdb_txn_renew is cheap).
  std::mutex pool_mu;
  std::vector<MDB_txn*> pool;

  ~Impl() {
    DrainPool();
    if (env) mdb_env_close(env);
    if (statm_fd >= 0) close(statm_fd);
  }

  void DrainPool() {
    std::lock_guard lk(pool_mu);
    for (MDB_txn* t : pool) mdb_txn_abort(t);
    pool.clear();
  }

  // Doubles the map (at least to `at_least`). Impossible while this thread
  // is inside a transaction of ours (a write nested in a scan callback):
  // that gets Busy rather than a deadlock.
  Status Grow(uint64_t at_least) {
    if (resize_mu.HeldSharedByThisThread())
      return Status::Busy("store map is full and cannot grow while this thread is scanning the store");
    std::unique_lock lk(resize_mu);
    DrainPool();
    MDB_envinfo info;
    mdb_env_info(env, &info);
    if (info.me_mapsize >= at_least) return Status::Ok();  // someone else grew it
    map_gen++;
    int rc = mdb_env_set_mapsize(env, info.me_mapsize * 2);
    if (rc) return lmdb::Error(rc, "growing the map");
    return Status::Ok();
  }

  // A data file shorter than the pages its meta page says are in use (a
  // truncated copy, a torn restore) would make LMDB touch mapped pages past
  // the end of the file, which kills the process with SIGBUS: refuse it.
  Status CheckNotTruncated() {
    MDB_envinfo info;
    MDB_stat st;
    mdb_filehandle_t fd;
    struct stat fs;
    if (mdb_env_info(env, &info) != 0 || mdb_env_stat(env, &st) != 0 || mdb_env_get_fd(env, &fd) != 0 ||
        fstat(fd, &fs) != 0)
      return Status::IOError("store " + dir + ": cannot read the size of data.mdb");
    const uint64_t need = (static_cast<uint64_t>(info.me_last_pgno) + 1) * st.ms_psize;
    if (static_cast<uint64_t>(fs.st_size) < need)
      return Status::Corruption("store " + dir + ": data.mdb is truncated (" + std::to_string(fs.st_size) +
                                " bytes, its pages in use need " + std::to_string(need) +
                                "); restore the store directory from a copy");
    return Status::Ok();
  }

  // The structural check of data.mdb (lmdb_check.h) for the snapshot of a
  // read transaction held meanwhile (so none of its pages is reused). Busy
  // only if writers keep committing twice before the meta page is read.
  Result<LmdbCheckReport> CheckFile(bool main_only) {
    mdb_filehandle_t fd;
    if (mdb_env_get_fd(env, &fd) != 0) return Status::IOError("store " + dir + ": no file handle for data.mdb");
    LmdbFileReader read = [&](uint64_t offset, size_t n, char* out) -> Status {
      while (n > 0) {
        ssize_t got = pread(fd, out, n, static_cast<off_t>(offset));
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) return Status::FromErrno(errno, "reading " + dir + "/data.mdb");
        if (got == 0) return Status::IOError("reading " + dir + "/data.mdb: unexpected end of file");
        out += got;
        n -= static_cast<size_t>(got);
        offset += static_cast<uint64_t>(got);
      }
      return Status::Ok();
    };
    for (int attempt = 0;; attempt++) {
      ReadTxn txn(this);
      HASHFS_RETURN_IF_ERROR(txn.Begin());
      struct stat st;
      if (fstat(fd, &st) != 0) return Status::FromErrno(errno, "store " + dir + ": data.mdb");
      LmdbCheckOptions o;
      o.file_size = static_cast<uint64_t>(st.st_size);
      o.txnid = mdb_txn_id(txn.get());
      o.main_only = main_only;
      auto r = CheckLmdbFile(read, o);
      if (r.ok() || r.status().code() != Status::Code::kBusy || attempt == 50) return r;
    }
  }

  // Another process grew the map: adopt its size.
  Status AdoptForeignResize() {
    if (resize_mu.HeldSharedByThisThread())
      return Status::Busy("store map was grown by another process during a scan; retry the scan");
    std::unique_lock lk(resize_mu);
    DrainPool();
    map_gen++;
    int rc = mdb_env_set_mapsize(env, 0);
    if (rc) return lmdb::Error(rc, "adopting the grown map");
    return Status::Ok();
  }

  // lmdb::Error, except that EIO on a nearly full filesystem is reported as
  // NoSpace: liblmdb turns a short write into EIO ("short write, filesystem
  // full?").
  Status Fail(int rc, std::string_view what) {
    if (rc == EIO) {
      struct statvfs vfs;
      if (statvfs(dir.c_str(), &vfs) == 0 &&
          static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize < (64ull << 20))
        return Status::NoSpace(std::string(what) + ": filesystem full");
    }
    return lmdb::Error(rc, what);
  }

  uint64_t MapSize() {
    MDB_envinfo info;
    mdb_env_info(env, &info);
    return info.me_mapsize;
  }

  // A pooled read transaction plus the shared resize lock, released together.
  class ReadTxn {
   public:
    ReadTxn(Impl* impl) : impl_(impl) {}
    ReadTxn(const ReadTxn&) = delete;
    ReadTxn& operator=(const ReadTxn&) = delete;
    ~ReadTxn() {
      if (!txn_) return;
      mdb_txn_reset(txn_);
      std::lock_guard lk(impl_->pool_mu);
      impl_->pool.push_back(txn_);
    }
    Status Begin() {
      for (;;) {
        lock_ = std::shared_lock(impl_->resize_mu);
        MDB_txn* t = nullptr;
        {
          std::lock_guard lk(impl_->pool_mu);
          if (!impl_->pool.empty()) {
            t = impl_->pool.back();
            impl_->pool.pop_back();
          }
        }
        int rc;
        if (t) {
          rc = mdb_txn_renew(t);
          if (rc) mdb_txn_abort(t);
        } else {
          rc = mdb_txn_begin(impl_->env, nullptr, MDB_RDONLY, &t);
        }
        if (rc == MDB_MAP_RESIZED) {
          lock_.unlock();
          HASHFS_RETURN_IF_ERROR(impl_->AdoptForeignResize());
          continue;
        }
        if (rc) return lmdb::Error(rc, "beginning read transaction");
        txn_ = t;
        return Status::Ok();
      }
    }
    MDB_txn* get() const { return txn_; }

   private:
    Impl* impl_;
    MDB_txn* txn_ = nullptr;
    std::shared_lock<ResizeLock> lock_;
  };

  // Runs body(txn) in a write transaction and commits it, growing the map and
  // retrying when it fills. body returns OK or an error; *rc_out (if body
  // hit an LMDB error) lets us tell MAP_FULL from other failures.
  Status Write(const std::function<Status(MDB_txn*, int* rc)>& body) {
    for (;;) {
      std::shared_lock<ResizeLock> lk(resize_mu);
      MDB_txn* raw = nullptr;
      int rc = mdb_txn_begin(env, nullptr, 0, &raw);
      if (rc == MDB_MAP_RESIZED) {
        lk.unlock();
        HASHFS_RETURN_IF_ERROR(AdoptForeignResize());
        continue;
      }
      if (rc) return Fail(rc, "beginning write transaction");
      lmdb::Txn txn(raw);
      int body_rc = 0;
      Status s = body(txn.get(), &body_rc);
      if (!s.ok()) {
        txn.Abort();
        if (body_rc == MDB_MAP_FULL) {
          uint64_t want = MapSize() * 2;
          lk.unlock();
          HASHFS_RETURN_IF_ERROR(Grow(want));
          continue;
        }
        if (body_rc == EIO) return Fail(body_rc, "writing");
        return s;
      }
      rc = txn.Commit();
      if (rc == MDB_MAP_FULL) {
        uint64_t want = MapSize() * 2;
        lk.unlock();
        HASHFS_RETURN_IF_ERROR(Grow(want));
        continue;
      }
      if (rc) return Fail(rc, "committing");
      return Status::Ok();
    }
  }

  Status Open(const LmdbOptions& opts) {
    struct stat st;
    if (stat(dir.c_str(), &st) != 0) {
      if (errno != ENOENT) return Status::FromErrno(errno, "store " + dir);
      if (!opts.create_if_missing) return Status::NotFound("no store at " + dir + " (run 'hashfs init')");
      if (mkdir(dir.c_str(), 0700) != 0) return Status::FromErrno(errno, "creating store " + dir);
    } else if (!S_ISDIR(st.st_mode)) {
      return Status::InvalidArgument("store path " + dir + " is not a directory");
    }
    std::string data = dir + "/data.mdb";
    bool exists = stat(data.c_str(), &st) == 0;
    if (!exists && !opts.create_if_missing)
      return Status::NotFound("no store at " + dir + " (run 'hashfs init')");

    int rc = mdb_env_create(&env);
    if (rc) return lmdb::Error(rc, "mdb_env_create");
    mdb_env_set_maxdbs(env, 8);
    mdb_env_set_maxreaders(env, opts.max_readers);
    uint64_t map = opts.initial_map_size;
    if (exists) {
      // Never map less than the file holds (another process may have grown it).
      while (map < static_cast<uint64_t>(st.st_size) * 2) map *= 2;
    }
    mdb_env_set_mapsize(env, map);
    rc = mdb_env_open(env, dir.c_str(), MDB_NOTLS | MDB_NORDAHEAD, 0600);
    if (rc) return lmdb::Error(rc, "opening store " + dir);
    HASHFS_RETURN_IF_ERROR(CheckNotTruncated());
    // liblmdb trusts its pages: a damaged main tree would crash the first
    // mdb_dbi_open below. Checking it costs a page read or two.
    {
      HASHFS_ASSIGN_OR_RETURN(LmdbCheckReport check, CheckFile(/*main_only=*/true));
      if (!check.ok())
        return Status::Corruption("store " + dir + ": data.mdb is damaged: " + DescribeProblems(check)[0] +
                                  "; restore the store directory from a copy or clone it from a remote");
    }
    if (char* real = realpath((dir + "/data.mdb").c_str(), nullptr)) {
      map_path = real;
      std::free(real);
    }
    statm_fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    map_budget = opts.resident_map_budget;

    bool created = false;
    Status s = Write([&](MDB_txn* txn, int* brc) -> Status {
      unsigned flags = opts.create_if_missing ? MDB_CREATE : 0;
      int r = mdb_dbi_open(txn, "meta", flags, &meta);
      if (r == MDB_NOTFOUND) return Status::NotFound("no store at " + dir + " (run 'hashfs init')");
      if (r) return *brc = r, lmdb::Error(r, "opening meta database");
      MDB_val k = lmdb::Val("format"), v;
      r = mdb_get(txn, meta, &k, &v);
      if (r == MDB_NOTFOUND) {
        if (!opts.create_if_missing) return Status::Corruption("store " + dir + " has no format record");
        MDB_val nv = lmdb::Val(kLmdbFormat);
        if ((r = mdb_put(txn, meta, &k, &nv, 0))) return *brc = r, lmdb::Error(r, "writing format");
        created = true;
      } else if (r) {
        return *brc = r, lmdb::Error(r, "reading format");
      } else if (lmdb::View(v) == kLmdbFormatWithoutPacks) {
        // Format 1 is format 2 without packs: upgrade the record in place, so
        // a hashfs that cannot read packs refuses the store from now on.
        MDB_val nv = lmdb::Val(kLmdbFormat);
        if ((r = mdb_put(txn, meta, &k, &nv, 0))) return *brc = r, lmdb::Error(r, "upgrading format");
      } else if (lmdb::View(v) != kLmdbFormat) {
        return Status::Unsupported("store " + dir + " has format '" + std::string(lmdb::View(v)) +
                                   "', this hashfs reads '" + std::string(kLmdbFormat) + "'");
      }
      if ((r = mdb_dbi_open(txn, "objects", MDB_CREATE, &objects))) return *brc = r, lmdb::Error(r, "opening objects");
      if ((r = mdb_dbi_open(txn, "refs", MDB_CREATE, &refs))) return *brc = r, lmdb::Error(r, "opening refs");
      if ((r = mdb_dbi_open(txn, "packs", MDB_CREATE, &packs))) return *brc = r, lmdb::Error(r, "opening packs");
      return Status::Ok();
    });
    (void)created;
    return s;
  }
};

LmdbStore::LmdbStore(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
LmdbStore::~LmdbStore() = default;

Result<std::unique_ptr<LmdbStore>> LmdbStore::Open(const std::string& dir, const LmdbOptions& opts) {
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  HASHFS_RETURN_IF_ERROR(impl->Open(opts));
  return std::unique_ptr<LmdbStore>(new LmdbStore(std::move(impl)));
}

namespace {

// Values of more than a page live on LMDB overflow pages of the read-only
// file mapping. Reading a cold one through the map faults it in page by page
// (the environment is opened with MDB_NORDAHEAD, right for the B-tree's
// random lookups but slow for a multi-page value), so ask for the whole value
// at once first. Advice only: a failure changes speed, never results.
void AdviseWillNeed(const MDB_val& v) {
  static const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  if (v.mv_size < 2 * page) return;
  // Pointer arithmetic from the value's own pointer (no integer-to-pointer cast).
  char* p = static_cast<char*>(v.mv_data);
  const uintptr_t at = reinterpret_cast<uintptr_t>(p);
  char* a = p - (at & (page - 1));
  const uintptr_t b = (at + v.mv_size + page - 1) & ~(page - 1);
  (void)madvise(a, b - (at & ~(page - 1)), MADV_WILLNEED);
}

// What one B-tree lookup may map, as an estimate: a leaf page with its
// page-cache folio and fault-around neighbours. Only paces the measurements
// below; what is dropped is decided by what is actually resident.
constexpr size_t kLookupMapped = 256 * 1024;

// Bytes of file-backed pages resident in this process ("shared" of
// /proc/self/statm: file and shmem pages), or nullopt if unreadable.
std::optional<uint64_t> ResidentFileBytes(int statm_fd) {
  if (statm_fd < 0) return std::nullopt;
  char buf[256];
  ssize_t n = pread(statm_fd, buf, sizeof buf - 1, 0);
  if (n <= 0) return std::nullopt;
  buf[n] = '\0';
  unsigned long long size = 0, resident = 0, shared = 0;
  if (std::sscanf(buf, "%llu %llu %llu", &size, &resident, &shared) != 3) return std::nullopt;
  static const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  return static_cast<uint64_t>(shared) * page;
}

}  // namespace

// Pages read through the map stay mapped into this process, so reading or
// updating a big store (restore, verify, backup) would grow the resident set
// towards the size of the store. How much one touch maps depends on the
// kernel: with large page-cache folios a single fault can map a megabyte or
// more (measured: 1.2 MiB per random page touch on Linux 6.18), so it is
// measured, not estimated. After every kCheckEvery bytes of estimated mapping
// (value bytes read, plus kLookupMapped per lookup), the process's resident
// file-backed bytes are read from /proc/self/statm; once they exceed what
// they were after the last drop by LmdbOptions::resident_map_budget, the
// process's mapping of the whole map is dropped (MADV_DONTNEED on a shared
// read-only file mapping only removes page table entries; the page cache
// keeps the data and later reads fault it back in). Without statm every
// check drops.
// Callers hold resize_mu shared (a transaction is open), so the map cannot
// move meanwhile; its address range is looked up once per map generation in
// /proc/self/maps (LMDB reports it only with MDB_FIXEDMAP), as the mapping of
// data.mdb that contains a record read in `txn` (if that record is on a page
// the transaction copied, no mapping matches and nothing is advised), so only
// this environment's own mapping is ever advised.
// `bytes`: value bytes read; every call also counts one lookup (kLookupMapped).
void LmdbStore::Impl::NoteMappedRead(size_t bytes, MDB_txn* txn) {
  constexpr uint64_t kCheckEvery = 4ull << 20;
  uint64_t before = mapped_read.fetch_add(bytes + kLookupMapped, std::memory_order_relaxed);
  if (before / kCheckEvery == (before + bytes + kLookupMapped) / kCheckEvery) return;
  std::lock_guard lk(map_range_mu);
  std::optional<uint64_t> resident = ResidentFileBytes(statm_fd);
  if (resident) {
    if (file_rss_floor == ~uint64_t{0} || *resident < file_rss_floor) file_rss_floor = *resident;
    if (*resident < file_rss_floor + map_budget) return;
  }
  const uint64_t gen = map_gen.load();
  if (range_gen != gen) {
    // A pointer into the map: the format record (small, on a clean page).
    MDB_val k = lmdb::Val("format"), v;
    if (map_path.empty() || mdb_get(txn, meta, &k, &v) != 0) return;
    char* const inside = static_cast<char*>(v.mv_data);
    const auto at = reinterpret_cast<uintptr_t>(inside);
    FILE* f = std::fopen("/proc/self/maps", "re");
    if (!f) return;
    char line[4096 + 128];
    while (std::fgets(line, sizeof line, f)) {
      std::string_view l(line);
      if (!l.empty() && l.back() == '\n') l.remove_suffix(1);
      if (l.size() < map_path.size() || l.substr(l.size() - map_path.size()) != map_path) continue;
      unsigned long lo = 0, hi = 0;
      char perms[8] = {};
      if (std::sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) != 3) continue;
      if (at < lo || at >= hi || perms[1] == 'w' || perms[3] != 's') continue;
      range_lo = inside - (at - lo);  // the mapping's start, derived from a pointer into it
      range_len = hi - lo;
      range_gen = gen;
      break;
    }
    std::fclose(f);
    if (range_gen != gen) return;
  }
  (void)madvise(range_lo, range_len, MADV_DONTNEED);
  if (std::optional<uint64_t> after = ResidentFileBytes(statm_fd)) file_rss_floor = *after;
}

template <typename Fn>
auto LmdbStore::Impl::ReadValue(MDB_txn* txn, const MDB_val& v, Fn&& fn) {
  AdviseWillNeed(v);
  auto r = fn(lmdb::View(v));
  NoteMappedRead(v.mv_size, txn);
  return r;
}

Result<std::string> LmdbStore::Get(const Digest& d) {
  Impl::ReadTxn txn(impl_.get());
  HASHFS_RETURN_IF_ERROR(txn.Begin());
  MDB_val k = lmdb::Val(d.AsBytes()), v;
  int rc = mdb_get(txn.get(), impl_->objects, &k, &v);
  if (rc == MDB_NOTFOUND) return Status::NotFound("object " + d.Hex() + " not found");
  if (rc) return lmdb::Error(rc, "reading object " + d.Hex());
  HASHFS_RETURN_IF_ERROR(impl_->ResolvePacked(txn.get(), d, &v));
  return impl_->ReadValue(txn.get(), v, [&](std::string_view stored) { return DecodeStoredObject(d, stored); });
}

Result<bool> LmdbStore::Contains(const Digest& d) {
  Impl::ReadTxn txn(impl_.get());
  HASHFS_RETURN_IF_ERROR(txn.Begin());
  MDB_val k = lmdb::Val(d.AsBytes()), v;
  int rc = mdb_get(txn.get(), impl_->objects, &k, &v);
  impl_->NoteMappedRead(0, txn.get());  // counts the lookup's B-tree pages
  if (rc == MDB_NOTFOUND) return false;
  if (rc) return lmdb::Error(rc, "looking up object " + d.Hex());
  return true;
}

Result<ObjectInfo> LmdbStore::Info(const Digest& d) {
  Impl::ReadTxn txn(impl_.get());
  HASHFS_RETURN_IF_ERROR(txn.Begin());
  MDB_val k = lmdb::Val(d.AsBytes()), v;
  int rc = mdb_get(txn.get(), impl_->objects, &k, &v);
  if (rc == MDB_NOTFOUND) return Status::NotFound("object " + d.Hex() + " not found");
  if (rc) return lmdb::Error(rc, "reading object " + d.Hex());
  HASHFS_RETURN_IF_ERROR(impl_->ResolvePacked(txn.get(), d, &v));
  impl_->NoteMappedRead(0, txn.get());
  return ParseStoredHeader(lmdb::View(v));
}

// Objects that belong in a pack (pack_pointer.h) get a pointer each, written
// first with MDB_NOOVERWRITE so an object already present (or repeated in the
// batch) adds no bytes; the new ones are then copied into packs reserved at
// their exact size and appended after the last pack. The pointers and their
// packs commit in the same transaction.
Status LmdbStore::PutBatch(std::span<const PreparedObject> batch) {
  if (batch.empty()) return Status::Ok();
  for (const auto& o : batch) {
    HASHFS_RETURN_IF_ERROR(CheckPrepared(o));
    if (o.stored.size() > (1ull << 31)) return Status::InvalidArgument("stored object of absurd size");
  }
  return impl_->Write([&](MDB_txn* txn, int* brc) -> Status {
    HASHFS_ASSIGN_OR_RETURN(uint64_t pack, impl_->NextPackId(txn, brc));
    std::vector<const PreparedObject*> in_pack;
    size_t pack_bytes = 0;
    auto write_pack = [&]() -> Status {
      if (in_pack.empty()) return Status::Ok();
      std::string key = PackKey(pack);
      MDB_val k = lmdb::Val(key), v{pack_bytes, nullptr};
      int rc = mdb_put(txn, impl_->packs, &k, &v, MDB_RESERVE | MDB_APPEND);
      if (rc) return *brc = rc, lmdb::Error(rc, "storing a pack");
      char* out = static_cast<char*>(v.mv_data);
      for (const PreparedObject* o : in_pack) {
        out = std::copy(o->stored.begin(), o->stored.end(), out);
      }
      in_pack.clear();
      pack_bytes = 0;
      pack++;
      return Status::Ok();
    };
    for (const auto& o : batch) {
      MDB_val k = lmdb::Val(o.digest.AsBytes());
      if (!BelongsInPack(o.stored)) {
        MDB_val v = lmdb::Val(o.stored);
        int rc = mdb_put(txn, impl_->objects, &k, &v, MDB_NOOVERWRITE);
        // Each put maps B-tree pages; a batch may touch most leaves of the tree.
        impl_->NoteMappedRead(0, txn);
        if (rc && rc != MDB_KEYEXIST) return *brc = rc, lmdb::Error(rc, "storing object");
        continue;
      }
      if (!in_pack.empty() && pack_bytes + o.stored.size() > kPackTarget) HASHFS_RETURN_IF_ERROR(write_pack());
      std::string ptr = EncodePackPointer(
          {pack, static_cast<uint32_t>(pack_bytes), static_cast<uint32_t>(o.stored.size())});
      MDB_val v = lmdb::Val(ptr);
      int rc = mdb_put(txn, impl_->objects, &k, &v, MDB_NOOVERWRITE);
      impl_->NoteMappedRead(0, txn);
      if (rc == MDB_KEYEXIST) continue;
      if (rc) return *brc = rc, lmdb::Error(rc, "storing object");
      in_pack.push_back(&o);
      pack_bytes += o.stored.size();
    }
    return write_pack();
  });
}

Status LmdbStore::ForEachObject(const std::function<Status(const Digest&, std::string_view)>& fn) {
  Impl::ReadTxn txn(impl_.get());
  HASHFS_RETURN_IF_ERROR(txn.Begin());
  int rc;
  lmdb::Cursor cur(txn.get(), impl_->objects, &rc);
  if (rc) return lmdb::Error(rc, "opening object cursor");
  MDB_val k, v;
  for (rc = mdb_cursor_get(cur.get(), &k, &v, MDB_FIRST); rc == 0;
       rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) {
    if (k.mv_size != Digest::kSize) return Status::Corruption("object key of wrong length");
    const Digest d = DigestOfKey(k);
    // A pointer that leads nowhere is reported to fn as an empty (corrupt) object.
    if (!impl_->ResolvePacked(txn.get(), d, &v).ok()) v = MDB_val{0, nullptr};
    HASHFS_RETURN_IF_ERROR(
        impl_->ReadValue(txn.get(), v, [&](std::string_view stored) { return fn(d, stored); }));
  }
  if (rc != MDB_NOTFOUND) return lmdb::Error(rc, "scanning objects");
  return Status::Ok();
}

Status LmdbStore::Sweep(const std::function<bool(const Digest&, const ObjectInfo&)>& should_delete,
                        const RefTxnFn& then_fn, uint64_t* deleted) {
  uint64_t n = 0;
  std::set<uint64_t> half_dead;
  Status s = impl_->Write([&](MDB_txn* txn, int* brc) -> Status {
    n = 0;
    Impl::LiveBytes live;
    int rc;
    {
      lmdb::Cursor cur(txn, impl_->objects, &rc);
      if (rc) return *brc = rc, lmdb::Error(rc, "opening object cursor");
      MDB_val k, v;
      rc = mdb_cursor_get(cur.get(), &k, &v, MDB_FIRST);
      while (rc == 0) {
        const Digest d = DigestOfKey(k);
        std::optional<PackPointer> ptr;
        MDB_val stored = v;
        if (IsPackPointer(lmdb::View(v))) {
          auto p = DecodePackPointer(lmdb::View(v));
          if (p.ok()) ptr = *p;
          if (!impl_->ResolvePacked(txn, d, &stored).ok()) stored = MDB_val{0, nullptr};
        }
        auto info = ParseStoredHeader(lmdb::View(stored));
        ObjectInfo i = info.ok() ? *info : ObjectInfo{};
        if (should_delete(d, i)) {
          if ((rc = mdb_cursor_del(cur.get(), 0))) return *brc = rc, lmdb::Error(rc, "deleting object");
          n++;
          // After mdb_cursor_del, MDB_NEXT yields the item that followed.
        } else if (ptr) {
          live[ptr->pack] += ptr->length;
        }
        rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT);
      }
      if (rc != MDB_NOTFOUND) return *brc = rc, lmdb::Error(rc, "scanning objects");
    }
    LmdbRefTxn rt(txn, impl_->refs, true);
    Status st = then_fn(rt);
    *brc = rt.last_rc;
    if (!st.ok()) return st;
    auto r = impl_->DeleteDeadPacks(txn, brc, live);
    if (!r.ok()) return r.status();
    half_dead = std::move(*r);
    return Status::Ok();
  });
  if (!s.ok()) return s;
  if (deleted) *deleted = n;
  return impl_->RewritePacks(half_dead);
}

Status LmdbStore::Impl::ResolvePacked(MDB_txn* txn, const Digest& d, MDB_val* v) {
  if (!IsPackPointer(lmdb::View(*v))) return Status::Ok();
  auto p = DecodePackPointer(lmdb::View(*v));
  if (!p.ok()) return Status::Corruption("object " + d.Hex() + " has a malformed pack pointer");
  std::string key = PackKey(p->pack);
  MDB_val k = lmdb::Val(key), pv;
  int rc = mdb_get(txn, packs, &k, &pv);
  if (rc == MDB_NOTFOUND)
    return Status::Corruption("object " + d.Hex() + " is in pack " + std::to_string(p->pack) + ", which is missing");
  if (rc) return lmdb::Error(rc, "reading pack " + std::to_string(p->pack));
  if (static_cast<uint64_t>(p->offset) + p->length > pv.mv_size)
    return Status::Corruption("object " + d.Hex() + " points past the end of pack " + std::to_string(p->pack));
  v->mv_data = static_cast<char*>(pv.mv_data) + p->offset;
  v->mv_size = p->length;
  return Status::Ok();
}

Result<uint64_t> LmdbStore::Impl::NextPackId(MDB_txn* txn, int* brc) {
  int rc;
  lmdb::Cursor cur(txn, packs, &rc);
  if (rc) return *brc = rc, lmdb::Error(rc, "opening pack cursor");
  MDB_val k, v;
  rc = mdb_cursor_get(cur.get(), &k, &v, MDB_LAST);
  if (rc == MDB_NOTFOUND) return uint64_t{1};
  if (rc) return *brc = rc, lmdb::Error(rc, "reading the last pack");
  std::optional<uint64_t> id = PackIdOfKey(lmdb::View(k));
  if (!id || *id == ~uint64_t{0}) return Status::Corruption("pack key of wrong form");
  return *id + 1;
}

Result<std::set<uint64_t>> LmdbStore::Impl::DeleteDeadPacks(MDB_txn* txn, int* brc, const LiveBytes& live) {
  std::set<uint64_t> half_dead;
  int rc;
  lmdb::Cursor cur(txn, packs, &rc);
  if (rc) return *brc = rc, lmdb::Error(rc, "opening pack cursor");
  MDB_val k, v;
  rc = mdb_cursor_get(cur.get(), &k, &v, MDB_FIRST);
  while (rc == 0) {
    std::optional<uint64_t> id = PackIdOfKey(lmdb::View(k));
    auto it = id ? live.find(*id) : live.end();
    if (it == live.end()) {
      if ((rc = mdb_cursor_del(cur.get(), 0))) return *brc = rc, lmdb::Error(rc, "deleting a pack");
    } else if (it->second * 2 < v.mv_size) {
      half_dead.insert(*id);
    }
    rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT);
  }
  if (rc != MDB_NOTFOUND) return *brc = rc, lmdb::Error(rc, "scanning packs");
  return half_dead;
}

// Values read in a write transaction are valid only until its next write, so
// each transaction copies the live objects of its packs out first, then
// writes the new pack, the moved pointers and the deletions. Objects move
// with their stored bytes unchanged (write time included).
Status LmdbStore::Impl::RewritePacks(const std::set<uint64_t>& which) {
  if (which.empty()) return Status::Ok();
  std::map<uint64_t, std::vector<std::pair<Digest, PackPointer>>> pointers;
  {
    ReadTxn txn(this);
    HASHFS_RETURN_IF_ERROR(txn.Begin());
    int rc;
    lmdb::Cursor cur(txn.get(), objects, &rc);
    if (rc) return lmdb::Error(rc, "opening object cursor");
    MDB_val k, v;
    for (rc = mdb_cursor_get(cur.get(), &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(cur.get(), &k, &v, MDB_NEXT)) {
      if (!IsPackPointer(lmdb::View(v))) continue;
      auto p = DecodePackPointer(lmdb::View(v));
      if (p.ok() && which.count(p->pack)) pointers[p->pack].emplace_back(DigestOfKey(k), *p);
    }
    if (rc != MDB_NOTFOUND) return lmdb::Error(rc, "scanning objects");
  }
  std::vector<std::pair<uint64_t, std::vector<std::pair<Digest, PackPointer>>>> todo(pointers.begin(),
                                                                                      pointers.end());
  pointers.clear();
  size_t at = 0;
  while (at < todo.size()) {
    size_t end = at;
    Status s = Write([&](MDB_txn* txn, int* brc) -> Status {
      HASHFS_ASSIGN_OR_RETURN(uint64_t next, NextPackId(txn, brc));
      std::string buf;
      std::vector<std::pair<Digest, PackPointer>> moved;
      std::vector<uint64_t> emptied;
      int rc;
      for (end = at; end < todo.size() && buf.size() < kPackTarget; end++) {
        const auto& [id, ptrs] = todo[end];
        std::string key = PackKey(id);
        MDB_val k = lmdb::Val(key), v;
        rc = mdb_get(txn, packs, &k, &v);
        if (rc == MDB_NOTFOUND) continue;  // another gc got there first
        if (rc) return *brc = rc, lmdb::Error(rc, "reading a pack");
        const std::string_view pack = lmdb::View(v);
        for (const auto& [d, p] : ptrs) {
          MDB_val dk = lmdb::Val(d.AsBytes()), dv;
          if (mdb_get(txn, objects, &dk, &dv) != 0 || lmdb::View(dv) != EncodePackPointer(p)) continue;
          // A pointer past its pack's end stays as it is: verify reports it.
          if (static_cast<uint64_t>(p.offset) + p.length > pack.size()) continue;
          moved.emplace_back(d, PackPointer{next, static_cast<uint32_t>(buf.size()), p.length});
          buf.append(pack.substr(p.offset, p.length));
        }
        emptied.push_back(id);
      }
      if (!moved.empty()) {
        std::string key = PackKey(next);
        MDB_val k = lmdb::Val(key), v = lmdb::Val(buf);
        if ((rc = mdb_put(txn, packs, &k, &v, MDB_APPEND))) return *brc = rc, lmdb::Error(rc, "writing a pack");
        for (const auto& [d, p] : moved) {
          std::string ptr = EncodePackPointer(p);
          MDB_val dk = lmdb::Val(d.AsBytes()), dv = lmdb::Val(ptr);
          if ((rc = mdb_put(txn, objects, &dk, &dv, 0))) return *brc = rc, lmdb::Error(rc, "moving an object");
        }
      }
      for (uint64_t old : emptied) {
        std::string key = PackKey(old);
        MDB_val k = lmdb::Val(key);
        if ((rc = mdb_del(txn, packs, &k, nullptr))) return *brc = rc, lmdb::Error(rc, "deleting a pack");
      }
      return Status::Ok();
    });
    if (s.code() == Status::Code::kNoSpace) return Status::Ok();
    HASHFS_RETURN_IF_ERROR(s);
    at = end;
  }
  return Status::Ok();
}

Status LmdbStore::Update(const RefTxnFn& fn) {
  return impl_->Write([&](MDB_txn* txn, int* brc) -> Status {
    LmdbRefTxn rt(txn, impl_->refs, true);
    Status st = fn(rt);
    *brc = rt.last_rc;
    return st;
  });
}

Status LmdbStore::View(const RefTxnFn& fn) {
  Impl::ReadTxn txn(impl_.get());
  HASHFS_RETURN_IF_ERROR(txn.Begin());
  LmdbRefTxn rt(txn.get(), impl_->refs, false);
  return fn(rt);
}

uint64_t LmdbStore::DiskBytes() {
  struct stat st;
  if (stat((impl_->dir + "/data.mdb").c_str(), &st) != 0) return 0;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

uint64_t LmdbStore::MapSize() { return impl_->MapSize(); }

Result<StructureCheck> LmdbStore::CheckStructure() {
  HASHFS_ASSIGN_OR_RETURN(LmdbCheckReport r, impl_->CheckFile(/*main_only=*/false));
  StructureCheck out;
  out.problems = DescribeProblems(r);
  out.walkable = !(r.TableDamaged("objects") || r.TableDamaged("packs") || r.TableDamaged("refs"));
  return out;
}

}  // namespace hashfs
