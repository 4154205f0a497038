// RateLimiter: Discord's per-route buckets and the global limit, learned
// from response headers (never hard-coded), so no request is ever sent into
// a bucket known to be exhausted.
//
//  * A route is "METHOD /path" with snowflakes after the top-level resource
//    replaced by ":id"; the major parameter (channel id) is kept separately.
//    X-RateLimit-Bucket maps routes to shared buckets; a bucket's state is
//    per (bucket, major parameter).
//  * One request at a time per bucket: each response's Remaining is then
//    exact. Requests on different buckets (e.g. different channels) run in
//    parallel.
//  * Remaining == 0 blocks the bucket until its reset (Reset-After, measured
//    from when the response arrived, plus a small margin).
//  * A 429 blocks its bucket (or, when global, every request) for
//    max(retry_after, Retry-After).
//  * A sliding one-second window keeps the whole client under the global
//    limit (requests per second).
// Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <string>

#include "remote/http_client.h"

namespace hashfs::remote {

struct RateLimitCounters {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> waits{0};          // times a request waited for a bucket or the global limit
  std::atomic<uint64_t> wait_ms{0};        // total time spent waiting
  std::atomic<uint64_t> rate_limited{0};   // 429 answers received
  std::atomic<int> waiting_now{0};         // requests currently waiting
};

class RateLimiter {
 public:
  using Clock = std::chrono::steady_clock;
  explicit RateLimiter(int global_per_second = 45) : global_per_second_(global_per_second) {}

  struct Permit {
    std::string route, major, key;
  };
  // Blocks until a request on `route` for `major` may be sent.
  Permit Acquire(const std::string& route, const std::string& major);
  // Records the response (nullptr: the request failed without a response).
  // Returns the seconds a 429 asked to wait (0 if not a 429).
  double Complete(const Permit& p, const HttpResponse* resp);

  RateLimitCounters& counters() { return counters_; }

  // For tests and diagnostics: the known state of a route's bucket.
  struct BucketView {
    std::string bucket;
    int limit = -1, remaining = -1;
    double reset_in = 0;
  };
  BucketView View(const std::string& route, const std::string& major);

 private:
  struct State {
    int limit = -1;
    int remaining = -1;  // -1: unknown
    Clock::time_point reset_at{};
    bool busy = false;
  };
  std::string KeyFor(const std::string& route, const std::string& major);

  const int global_per_second_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<std::string, std::string> route_bucket_;  // "route|major" -> bucket hash
  std::map<std::string, State> states_;
  std::deque<Clock::time_point> recent_;  // send times within the last second
  Clock::time_point global_blocked_until_{};
  RateLimitCounters counters_;
};

// Seconds from a header value like "1.234"; -1 if absent or malformed.
double ParseSeconds(const std::string& s);

// Longest wait any answer can impose (longer ones are cut to this).
inline constexpr double kMaxRateLimitWait = 600;

// What one response says about rate limits (untrusted; pure): the
// X-RateLimit-* headers, and for a 429 how long to wait (the body's precise
// retry_after, else Retry-After; at least 0.05 s) and whether the global
// limit was hit. Counts must be plain decimal integers (else absent); waits
// are at most kMaxRateLimitWait.
struct RateLimitInfo {
  std::string bucket;        // X-RateLimit-Bucket, "" if absent
  int remaining = -1;        // -1: absent or malformed
  int limit = -1;            // -1: absent or malformed (read only with remaining)
  double reset_after = -1;   // seconds; -1: absent or malformed
  bool limited = false;      // a 429
  double retry_after = 0;    // 429 only
  bool global = false;       // 429 only
};
RateLimitInfo ParseRateLimit(const HttpResponse& resp);

}  // namespace hashfs::remote
