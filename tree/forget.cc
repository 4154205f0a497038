#include "tree/forget.h"

#include <ctime>
#include <cstdio>
#include <functional>
#include <optional>

namespace hashfs {
namespace {

struct LocalTime {
  int year, month, day, hour;  // month 1..12
  int iso_year, iso_week;
};

LocalTime ToLocal(int64_t ns) {
  int64_t secs = ns / 1000000000;
  if (ns % 1000000000 < 0) secs--;  // floor for times before 1970
  time_t t = static_cast<time_t>(secs);
  struct tm tm {};
  localtime_r(&t, &tm);
  LocalTime lt{};
  lt.year = tm.tm_year + 1900;
  lt.month = tm.tm_mon + 1;
  lt.day = tm.tm_mday;
  lt.hour = tm.tm_hour;
  char buf[32];
  if (strftime(buf, sizeof buf, "%G %V", &tm) > 0 && sscanf(buf, "%d %d", &lt.iso_year, &lt.iso_week) == 2) {
    return lt;
  }
  lt.iso_year = lt.year;
  lt.iso_week = tm.tm_yday / 7;
  return lt;
}

}  // namespace

std::vector<bool> SelectKept(const std::vector<int64_t>& times_ns_newest_first, const ForgetPolicy& policy) {
  const size_t n = times_ns_newest_first.size();
  std::vector<bool> keep(n, false);
  if (n == 0) return keep;
  keep[0] = true;
  for (size_t i = 0; i < n && static_cast<int64_t>(i) < policy.keep_last; i++) keep[i] = true;

  struct Bucket {
    int count;
    std::function<int64_t(const LocalTime&)> key;
    std::optional<int64_t> last;
  };
  Bucket buckets[] = {
      {policy.keep_hourly,
       [](const LocalTime& t) { return ((int64_t{t.year} * 100 + t.month) * 100 + t.day) * 100 + t.hour; }, {}},
      {policy.keep_daily, [](const LocalTime& t) { return (int64_t{t.year} * 100 + t.month) * 100 + t.day; }, {}},
      {policy.keep_weekly, [](const LocalTime& t) { return int64_t{t.iso_year} * 100 + t.iso_week; }, {}},
      {policy.keep_monthly, [](const LocalTime& t) { return int64_t{t.year} * 100 + t.month; }, {}},
  };
  for (size_t i = 0; i < n; i++) {
    LocalTime lt = ToLocal(times_ns_newest_first[i]);
    for (auto& b : buckets) {
      if (b.count <= 0) continue;
      int64_t k = b.key(lt);
      if (b.last && *b.last == k) continue;  // a newer commit already stands for this period
      b.last = k;
      b.count--;
      keep[i] = true;
    }
  }
  return keep;
}

Result<ForgetReport> Forget(Repository& repo, std::string_view volume, const ForgetPolicy& policy, bool dry_run) {
  if (policy.empty()) return Status::InvalidArgument("forget needs at least one keep rule");
  HASHFS_ASSIGN_OR_RETURN(auto history, repo.History(volume));
  // Entries whose commit cannot be read are kept and take no part in the policy.
  std::vector<size_t> timed;
  std::vector<int64_t> times;
  std::vector<bool> keep(history.size(), true);
  for (size_t i = 0; i < history.size(); i++) {
    auto c = repo.LoadCommit(history[i].commit);
    if (!c.ok()) {
      if (c.status().IsNotFound() || c.status().IsCorruption()) continue;
      return c.status();
    }
    timed.push_back(i);
    times.push_back(c->time_ns);
  }
  std::vector<bool> sel = SelectKept(times, policy);
  for (size_t j = 0; j < timed.size(); j++) keep[timed[j]] = sel[j];
  if (!history.empty()) keep[0] = true;  // the head, even if unreadable ones came first

  ForgetReport report;
  std::vector<uint64_t> drop;
  for (size_t i = 0; i < history.size(); i++) {
    if (keep[i]) {
      report.kept.push_back(history[i]);
    } else {
      report.removed.push_back(history[i]);
      drop.push_back(history[i].seq);
    }
  }
  if (!dry_run && !drop.empty()) HASHFS_RETURN_IF_ERROR(repo.DropHistory(volume, drop));
  return report;
}

}  // namespace hashfs
