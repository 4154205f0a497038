// libFuzzer target: the structural check of an LMDB data file
// (cas/lmdb_check.h) on arbitrary bytes as data.mdb.
//
// Checks:
//  * CheckLmdbFile never fails to run on a complete file (it reads only
//    inside the file it was told about: the reader refuses anything else),
//    and its report is consistent: ok() exactly when no problem was counted,
//    at most max_problems described, the pages it reached and found free
//    within the pages in use, and the main-only check finding nothing the
//    full check does not.
//  * Differential against liblmdb itself: when the full check passes,
//    liblmdb opens the same bytes (read-only, no lock file) and walks every
//    named table and every value without crashing. A crash here is damage
//    the check missed, which in hashfs would crash verify and every command.
#include <lmdb.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cas/lmdb_check.h"
#include "tests/fuzz/fuzz_util.h"

namespace {

using namespace hashfs;

Result<LmdbCheckReport> Run(std::string_view file, bool main_only) {
  LmdbCheckOptions o;
  o.file_size = file.size();
  o.main_only = main_only;
  return CheckLmdbFile(
      [&](uint64_t off, size_t n, char* out) -> Status {
        FUZZ_CHECK_MSG(off <= file.size() && n <= file.size() - off, "the check read outside the file");
        std::memcpy(out, file.data() + off, n);
        return Status::Ok();
      },
      o);
}

// Opens `file` with liblmdb and reads every value of every named table.
void WalkWithLmdb(std::string_view file) {
  static int fd = memfd_create("lmdb-fuzz", 0);
  FUZZ_CHECK(fd >= 0);
  FUZZ_CHECK(ftruncate(fd, 0) == 0);
  FUZZ_CHECK(pwrite(fd, file.data(), file.size(), 0) == static_cast<ssize_t>(file.size()));
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  MDB_env* env = nullptr;
  FUZZ_CHECK(mdb_env_create(&env) == 0);
  mdb_env_set_maxdbs(env, 16);
  if (mdb_env_open(env, path.c_str(), MDB_RDONLY | MDB_NOLOCK | MDB_NOSUBDIR | MDB_NORDAHEAD, 0600) != 0) {
    mdb_env_close(env);
    return;
  }
  MDB_txn* txn = nullptr;
  if (mdb_txn_begin(env, nullptr, MDB_RDONLY, &txn) == 0) {
    std::vector<std::string> names;
    MDB_dbi main_dbi;
    if (mdb_dbi_open(txn, nullptr, 0, &main_dbi) == 0) {
      MDB_cursor* c;
      if (mdb_cursor_open(txn, main_dbi, &c) == 0) {
        MDB_val k, v;
        for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT))
          names.emplace_back(static_cast<const char*>(k.mv_data), k.mv_size);
        mdb_cursor_close(c);
      }
    }
    volatile uint8_t sink = 0;
    for (const auto& name : names) {
      MDB_dbi dbi;
      if (mdb_dbi_open(txn, name.c_str(), 0, &dbi) != 0) continue;
      MDB_cursor* c;
      if (mdb_cursor_open(txn, dbi, &c) != 0) continue;
      MDB_val k, v;
      for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0; rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
        if (k.mv_size) sink = sink + static_cast<const uint8_t*>(k.mv_data)[k.mv_size - 1];
        if (v.mv_size) sink = sink + static_cast<const uint8_t*>(v.mv_data)[v.mv_size - 1];
      }
      mdb_cursor_close(c);
    }
    mdb_txn_abort(txn);
  }
  mdb_env_close(env);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view file = fuzz::AsView(data, size);
  auto full = Run(file, false);
  FUZZ_CHECK_MSG(full.ok(), "the check failed to run on a complete file");
  FUZZ_CHECK(full->ok() == (full->problem_count == 0));
  FUZZ_CHECK(full->problems.size() <= 50 && full->problems.size() <= full->problem_count);
  FUZZ_CHECK(full->pages_used <= full->pages_in_file || !full->ok());
  if (full->ok()) FUZZ_CHECK(full->pages_reached + full->pages_free <= full->pages_used);
  auto main_only = Run(file, true);
  FUZZ_CHECK(main_only.ok());
  if (full->ok()) FUZZ_CHECK(main_only->ok());
  (void)DescribeProblems(*full);
  if (full->ok()) WalkWithLmdb(file);
  return 0;
}
