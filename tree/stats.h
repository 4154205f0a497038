// Repository statistics: object counts and sizes, and how much deduplication
// and compression save. Sizes below every directory trie node are memoized
// by digest, so many commits of one large tree cost about one walk plus the
// nodes each commit changed. Read-only; thread-safe.
#pragma once

#include <cstdint>

#include "tree/repository.h"

namespace hashfs {

struct StoreStats {
  uint64_t objects = 0, data_objects = 0, meta_objects = 0;
  uint64_t commits = 0;  // distinct kept commits (histories and snapshots)
  uint64_t volumes = 0, snapshots = 0;
  // Sum of regular file sizes over all kept commits: each commit counts every
  // file it holds, a hardlinked file once per commit.
  uint64_t logical_bytes = 0;
  uint64_t unique_bytes = 0;       // sum of plain sizes of all objects
  uint64_t unique_data_bytes = 0;  // the same over data objects (chunks) only
  uint64_t stored_bytes = 0;       // sum of stored sizes (headers included)
  uint64_t disk_bytes = 0;         // store.DiskBytes()
  double dedupe_ratio = 0;         // logical_bytes / unique_data_bytes (0 if no data)
  double compression_ratio = 0;    // unique_bytes / stored_bytes (0 if empty)
};

// Fails with the commit's context if a kept commit's tree cannot be read (run
// verify to find out what is damaged).
Result<StoreStats> ComputeStats(Repository& repo);

}  // namespace hashfs
