// Small concurrency helpers for the remote: a bounded queue that can be
// closed, and a ParallelFor that stops at the first error.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "cas/status.h"

namespace hashfs::remote {

template <typename T>
class BoundedQueue {
 public:
  explicit BoundedQueue(size_t cap) : cap_(cap) {}
  // False if the queue was closed (the item is dropped).
  bool Push(T v) {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return closed_ || q_.size() < cap_; });
    if (closed_) return false;
    q_.push_back(std::move(v));
    cv_.notify_all();
    return true;
  }
  // nullopt once closed and drained.
  std::optional<T> Pop() {
    std::unique_lock lk(mu_);
    cv_.wait(lk, [&] { return closed_ || !q_.empty(); });
    if (q_.empty()) return std::nullopt;
    T v = std::move(q_.front());
    q_.pop_front();
    cv_.notify_all();
    return v;
  }
  void Close() {
    std::lock_guard lk(mu_);
    closed_ = true;
    cv_.notify_all();
  }
  // Closes and drops what is queued (after an error).
  void Abort() {
    std::lock_guard lk(mu_);
    closed_ = true;
    q_.clear();
    cv_.notify_all();
  }

 private:
  size_t cap_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<T> q_;
  bool closed_ = false;
};

// Runs fn(i) for i in [0, n) on up to `threads` threads; returns the first
// error (the remaining items are skipped once one failed).
inline Status ParallelFor(size_t n, int threads, const std::function<Status(size_t)>& fn) {
  std::atomic<size_t> next{0};
  std::atomic<bool> failed{false};
  std::mutex mu;
  Status first;
  auto work = [&] {
    for (;;) {
      size_t i = next++;
      if (i >= n || failed) return;
      Status s = fn(i);
      if (!s.ok()) {
        std::lock_guard lk(mu);
        if (first.ok()) first = s;
        failed = true;
      }
    }
  };
  int t = static_cast<int>(std::min<size_t>(n, static_cast<size_t>(std::max(threads, 1))));
  std::vector<std::thread> ts;
  for (int i = 1; i < t; i++) ts.emplace_back(work);
  work();
  for (auto& th : ts) th.join();
  return first;
}

}  // namespace hashfs::remote
