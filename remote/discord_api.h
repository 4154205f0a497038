// DiscordApi: typed calls to Discord's REST API (v10) over an HttpClient,
// with the behaviour Discord requires of a client:
//  * every request goes through the RateLimiter (rate_limiter.h);
//  * 429 waits retry_after and retries; 5xx, code 130000 and dropped
//    connections retry with jittered exponential backoff;
//  * 401/403 stop at once with a Permission error, and every later call of
//    this client fails the same way without touching the network;
//  * 413 / code 40005 are TooBig, never retried;
//  * message creates carry a nonce with enforce_nonce, and a retried create
//    reuses it, so a create whose response was lost is not duplicated.
// Attachment downloads go to the signed URLs the API returns, without the
// bot token. Thread-safe.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "remote/http_client.h"
#include "remote/rate_limiter.h"

namespace hashfs::remote {

struct DiscordAttachment {
  uint64_t id = 0;
  std::string filename;
  uint64_t size = 0;
  std::string url;  // signed, expiring: never persisted
};

struct DiscordMessage {
  uint64_t id = 0;
  uint64_t channel_id = 0;
  std::string content;
  std::string nonce;
  bool pinned = false;
  std::vector<DiscordAttachment> attachments;
};

struct DiscordOptions {
  std::string api_url = "https://discord.com/api/v10";
  std::string token;  // bot token (never logged)
  int max_attempts = 8;            // per request, for retryable failures
  double backoff_base_seconds = 0.25;
  double backoff_max_seconds = 8;
  int global_per_second = 45;
};

struct UploadFile {
  std::string filename;
  std::string_view data;
};

struct DiscordCounters {
  std::atomic<uint64_t> retries{0};
  std::atomic<uint64_t> bytes_up{0};
  std::atomic<uint64_t> bytes_down{0};
  std::atomic<uint64_t> downloads{0};
};

class DiscordApi {
 public:
  DiscordApi(HttpClient& http, DiscordOptions opts);

  Result<DiscordMessage> CreateMessage(uint64_t channel, const std::string& content,
                                       const std::vector<UploadFile>& files);
  Result<DiscordMessage> GetMessage(uint64_t channel, uint64_t message);
  // Up to `limit` (1..100) messages after (or before) `anchor`, in ascending id order.
  Result<std::vector<DiscordMessage>> ListMessages(uint64_t channel, uint64_t after, int limit = 100);
  Result<std::vector<DiscordMessage>> ListMessagesBefore(uint64_t channel, uint64_t before, int limit = 100);
  Status EditMessage(uint64_t channel, uint64_t message, const std::string& content);
  Status DeleteMessage(uint64_t channel, uint64_t message);  // absent message is OK
  Status Pin(uint64_t channel, uint64_t message);
  Result<std::vector<DiscordMessage>> Pins(uint64_t channel);
  // POST /attachments/refresh-urls: original -> refreshed (1..50 URLs).
  Result<std::vector<std::pair<std::string, std::string>>> RefreshUrls(const std::vector<std::string>& urls);

  // GETs an attachment URL (optionally an inclusive byte range). NotFound when
  // the URL is expired or gone (the caller refreshes it); a 200 answer to a
  // range request is sliced. The returned bytes are untrusted.
  Result<std::string> Download(const std::string& url, std::optional<std::pair<uint64_t, uint64_t>> range);

  RateLimiter& limiter() { return limiter_; }
  DiscordCounters& counters() { return counters_; }

 private:
  struct Call {
    std::string method;
    std::string path;   // after api_url, e.g. "/channels/1/messages"
    std::string route;  // rate-limit route
    std::string major;
    std::string json;   // body (application/json) if non-empty
    std::vector<MultipartPart> parts;
    bool ok_404 = false;
  };
  Result<HttpResponse> Do(const Call& c);
  void Backoff(int attempt);
  Status Fatal();

  HttpClient& http_;
  DiscordOptions opts_;
  RateLimiter limiter_;
  DiscordCounters counters_;
  std::mutex fatal_mu_;
  Status fatal_;  // sticky 401/403
};

// Decoders of Discord's answers (untrusted bytes; pure, thread-safe).
// Parses a message object (strings for snowflakes, as Discord sends them).
Result<DiscordMessage> ParseMessage(std::string_view json);
// A JSON array of message objects, sorted by ascending id.
Result<std::vector<DiscordMessage>> ParseMessageList(std::string_view json);
// Discord's error body {"code": int, "message": str}. code is -1 when absent
// or not an int; message falls back to the first 200 bytes of the body.
struct DiscordError {
  int code = -1;
  std::string message;
};
DiscordError ParseDiscordError(std::string_view body);
// The answer of POST /attachments/refresh-urls: (original, refreshed) pairs;
// malformed elements are skipped.
Result<std::vector<std::pair<std::string, std::string>>> ParseRefreshedUrls(std::string_view json);
// Milliseconds since the Unix epoch encoded in a snowflake.
uint64_t SnowflakeMillis(uint64_t id);

}  // namespace hashfs::remote
