#include "remote/rate_limiter.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <cstdlib>

namespace hashfs::remote {
namespace {
constexpr auto kMargin = std::chrono::milliseconds(60);

RateLimiter::Clock::duration Secs(double s) {
  return std::chrono::duration_cast<RateLimiter::Clock::duration>(std::chrono::duration<double>(s));
}

// A count header: decimal digits only, within int; -1 otherwise (atoi read
// "abc" and "-3" as counts, and overflowed on long ones).
int Count(const std::string& s) {
  if (s.empty() || s.size() > 9 || s.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoi(s);
}
}  // namespace

double ParseSeconds(const std::string& s) {
  if (s.empty()) return -1;
  char* end = nullptr;
  double v = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || !std::isfinite(v) || v < 0) return -1;
  return v;
}

RateLimitInfo ParseRateLimit(const HttpResponse& resp) {
  RateLimitInfo info;
  info.bucket = resp.Header("x-ratelimit-bucket");
  info.remaining = Count(resp.Header("x-ratelimit-remaining"));
  if (info.remaining >= 0) info.limit = Count(resp.Header("x-ratelimit-limit"));
  info.reset_after = ParseSeconds(resp.Header("x-ratelimit-reset-after"));
  // Cut before it meets the clock: a huge wait overflows time_point.
  if (info.reset_after > kMaxRateLimitWait) info.reset_after = kMaxRateLimitWait;
  if (resp.status == 429) {
    info.limited = true;
    double hdr = ParseSeconds(resp.Header("retry-after"));
    double body_retry = -1;
    info.global = resp.Header("x-ratelimit-global") == "true" || resp.Header("x-ratelimit-scope") == "global";
    auto j = nlohmann::json::parse(resp.body, nullptr, false);
    if (j.is_object()) {
      if (j.contains("retry_after") && j["retry_after"].is_number()) body_retry = j["retry_after"].get<double>();
      if (j.contains("global") && j["global"].is_boolean() && j["global"].get<bool>()) info.global = true;
    }
    // The body's float is precise; Retry-After may be rounded up to whole seconds.
    info.retry_after = std::min(std::max(body_retry >= 0 ? body_retry : hdr, 0.05), kMaxRateLimitWait);
  }
  return info;
}

std::string RateLimiter::KeyFor(const std::string& route, const std::string& major) {
  auto it = route_bucket_.find(route + "|" + major);
  return (it == route_bucket_.end() ? "route:" + route : "bucket:" + it->second) + "|" + major;
}

RateLimiter::Permit RateLimiter::Acquire(const std::string& route, const std::string& major) {
  std::unique_lock lk(mu_);
  bool waited = false;
  Clock::time_point wait_start = Clock::now();
  for (;;) {
    std::string key = KeyFor(route, major);
    State& s = states_[key];
    Clock::time_point now = Clock::now();
    while (!recent_.empty() && now - recent_.front() >= std::chrono::seconds(1)) recent_.pop_front();
    Clock::time_point until{};
    if (global_blocked_until_ > now) until = global_blocked_until_;
    if (s.remaining == 0 && s.reset_at > now) until = std::max(until, s.reset_at);
    if (global_per_second_ > 0 && static_cast<int>(recent_.size()) >= global_per_second_)
      until = std::max(until, recent_.front() + std::chrono::seconds(1));
    if (!s.busy && until == Clock::time_point{}) {
      s.busy = true;
      if (s.remaining == 0) s.remaining = -1;  // its window has reset
      recent_.push_back(now);
      counters_.requests++;
      if (waited) {
        counters_.waiting_now--;
        counters_.wait_ms += static_cast<uint64_t>(
            std::chrono::duration_cast<std::chrono::milliseconds>(now - wait_start).count());
      }
      return Permit{route, major, key};
    }
    if (!waited) {
      waited = true;
      counters_.waits++;
      counters_.waiting_now++;
    }
    if (s.busy && until == Clock::time_point{})
      cv_.wait(lk);
    else
      cv_.wait_until(lk, until);
  }
}

double RateLimiter::Complete(const Permit& p, const HttpResponse* resp) {
  std::lock_guard lk(mu_);
  Clock::time_point now = Clock::now();
  states_[p.key].busy = false;
  double retry = 0;
  if (resp) {
    RateLimitInfo info = ParseRateLimit(*resp);
    std::string key = p.key;
    if (!info.bucket.empty()) {
      route_bucket_[p.route + "|" + p.major] = info.bucket;
      key = "bucket:" + info.bucket + "|" + p.major;
    }
    State& s = states_[key];
    if (info.remaining >= 0) {
      s.remaining = info.remaining;
      if (info.limit >= 0) s.limit = info.limit;
      if (info.reset_after >= 0) {
        s.reset_at = now + Secs(info.reset_after) + kMargin;
      } else if (s.remaining == 0) {
        s.reset_at = now + std::chrono::seconds(1);  // no reset given: be conservative
      }
    }
    if (info.limited) {
      counters_.rate_limited++;
      retry = info.retry_after;
      Clock::time_point until = now + Secs(retry) + kMargin;
      if (info.global) {
        global_blocked_until_ = std::max(global_blocked_until_, until);
      } else {
        s.remaining = 0;
        s.reset_at = std::max(s.reset_at, until);
      }
    }
  }
  cv_.notify_all();
  return retry;
}

RateLimiter::BucketView RateLimiter::View(const std::string& route, const std::string& major) {
  std::lock_guard lk(mu_);
  BucketView v;
  auto it = route_bucket_.find(route + "|" + major);
  if (it != route_bucket_.end()) v.bucket = it->second;
  const State& s = states_[KeyFor(route, major)];
  v.limit = s.limit;
  v.remaining = s.remaining;
  v.reset_in = std::chrono::duration<double>(s.reset_at - Clock::now()).count();
  return v;
}

}  // namespace hashfs::remote
