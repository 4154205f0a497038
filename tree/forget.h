// Forget: thins a volume's history by a retention policy (restic's
// semantics), after which garbage collection can reclaim what only the
// forgotten commits reached. Snapshots are separate refs and are never
// affected. SelectKept is pure and thread-safe; Forget is one read of the
// history and one atomic ref transaction.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "tree/repository.h"

namespace hashfs {

struct ForgetPolicy {
  int keep_last = 0;     // the N newest commits
  int keep_hourly = 0;   // the newest commit of each of the N most recent hours that have commits
  int keep_daily = 0;    // ... days
  int keep_weekly = 0;   // ... ISO-8601 weeks
  int keep_monthly = 0;  // ... calendar months
  bool empty() const { return keep_last <= 0 && keep_hourly <= 0 && keep_daily <= 0 && keep_weekly <= 0 && keep_monthly <= 0; }
};

// For commit times (unix nanoseconds) listed newest first, which to keep: the
// union of what each rule keeps, plus index 0 (the head) always. Hours, days,
// weeks and months are those of the local time zone. Negative counts are 0.
std::vector<bool> SelectKept(const std::vector<int64_t>& times_ns_newest_first, const ForgetPolicy& policy);

struct ForgetReport {
  std::vector<HistoryEntry> kept, removed;  // newest first
};

// Applies `policy` to the history of `volume` (newest first by sequence,
// each commit's own time_ns bucketed) and, unless dry_run, drops the removed
// entries. Entries whose commit cannot be read are kept. InvalidArgument for
// an empty policy (it would forget everything but the head).
Result<ForgetReport> Forget(Repository& repo, std::string_view volume, const ForgetPolicy& policy, bool dry_run);

}  // namespace hashfs
