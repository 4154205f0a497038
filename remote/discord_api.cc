#include "remote/discord_api.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <random>
#include <thread>
#include <utility>

#include "remote/crypto.h"

namespace hashfs::remote {
namespace {

using json = nlohmann::json;
constexpr const char* kUserAgent = "DiscordBot (https://github.com/hashfs/hashfs, 0.1.0)";

// A snowflake (a decimal string, or an unsigned number); 0 if malformed.
uint64_t ToId(const json& v) {
  if (v.is_string()) return ParseDecimalId(v.get_ref<const std::string&>()).value_or(0);
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  return 0;
}

Result<DiscordMessage> FromJson(const json& j) {
  if (!j.is_object()) return Status::Corruption("Discord sent a message that is not a JSON object");
  DiscordMessage m;
  m.id = j.contains("id") ? ToId(j["id"]) : 0;
  if (m.id == 0) return Status::Corruption("Discord sent a message without an id");
  if (j.contains("channel_id")) m.channel_id = ToId(j["channel_id"]);
  if (j.contains("content") && j["content"].is_string()) m.content = j["content"].get<std::string>();
  if (j.contains("nonce") && j["nonce"].is_string()) m.nonce = j["nonce"].get<std::string>();
  if (j.contains("pinned") && j["pinned"].is_boolean()) m.pinned = j["pinned"].get<bool>();
  if (j.contains("attachments") && j["attachments"].is_array()) {
    for (const auto& a : j["attachments"]) {
      if (!a.is_object()) continue;
      DiscordAttachment at;
      at.id = a.contains("id") ? ToId(a["id"]) : 0;
      if (a.contains("filename") && a["filename"].is_string()) at.filename = a["filename"].get<std::string>();
      if (a.contains("size") && a["size"].is_number_unsigned()) at.size = a["size"].get<uint64_t>();
      if (a.contains("url") && a["url"].is_string()) at.url = a["url"].get<std::string>();
      m.attachments.push_back(std::move(at));
    }
  }
  return m;
}

}  // namespace

uint64_t SnowflakeMillis(uint64_t id) { return (id >> 22) + 1420070400000ull; }

Result<DiscordMessage> ParseMessage(std::string_view body) {
  json j = json::parse(body, nullptr, false);
  return FromJson(j);
}

Result<std::vector<DiscordMessage>> ParseMessageList(std::string_view body) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_array()) return Status::Corruption("Discord sent a message list that is not a JSON array");
  std::vector<DiscordMessage> out;
  for (const auto& e : j) {
    HASHFS_ASSIGN_OR_RETURN(auto m, FromJson(e));
    out.push_back(std::move(m));
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  return out;
}

DiscordError ParseDiscordError(std::string_view body) {
  json j = json::parse(body, nullptr, false);
  DiscordError e;
  if (j.is_object()) {
    // Only an int is a code: get<int>() would wrap 2^32 + 40005 into 40005 (TooBig).
    if (j.contains("code") && j["code"].is_number_integer()) {
      const json& c = j["code"];
      if (c.is_number_unsigned() ? std::in_range<int>(c.get<uint64_t>()) : std::in_range<int>(c.get<int64_t>()))
        e.code = static_cast<int>(c.get<int64_t>());
    }
    if (j.contains("message") && j["message"].is_string()) e.message = j["message"].get<std::string>();
  }
  if (e.message.empty()) e.message = std::string(body.substr(0, 200));
  return e;
}

Result<std::vector<std::pair<std::string, std::string>>> ParseRefreshedUrls(std::string_view body) {
  json j = json::parse(body, nullptr, false);
  if (!j.is_object() || !j.contains("refreshed_urls") || !j["refreshed_urls"].is_array())
    return Status::Corruption("Discord sent a malformed refresh-urls answer");
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& e : j["refreshed_urls"]) {
    if (!e.is_object() || !e.contains("original") || !e.contains("refreshed") || !e["original"].is_string() ||
        !e["refreshed"].is_string())
      continue;
    out.emplace_back(e["original"].get<std::string>(), e["refreshed"].get<std::string>());
  }
  return out;
}

DiscordApi::DiscordApi(HttpClient& http, DiscordOptions opts)
    : http_(http), opts_(std::move(opts)), limiter_(opts_.global_per_second) {
  while (!opts_.api_url.empty() && opts_.api_url.back() == '/') opts_.api_url.pop_back();
}

Status DiscordApi::Fatal() {
  std::lock_guard lk(fatal_mu_);
  return fatal_;
}

void DiscordApi::Backoff(int attempt) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  double cap = std::min(opts_.backoff_max_seconds, opts_.backoff_base_seconds * double(1u << std::min(attempt, 16)));
  double s = std::uniform_real_distribution<double>(cap / 2, cap)(rng);
  counters_.retries++;
  std::this_thread::sleep_for(std::chrono::duration<double>(s));
}

Result<HttpResponse> DiscordApi::Do(const Call& c) {
  if (Status f = Fatal(); !f.ok()) return f;
  HttpRequest req;
  req.method = c.method;
  req.url = opts_.api_url + c.path;
  req.headers = {{"Authorization", "Bot " + opts_.token}, {"User-Agent", kUserAgent}};
  if (!c.json.empty()) {
    req.headers.emplace_back("Content-Type", "application/json");
    req.body = c.json;
  }
  req.parts = c.parts;
  uint64_t upload = 0;
  for (const auto& p : c.parts) upload += p.data.size();
  int attempt = 0, limited = 0;
  Status last;
  for (;;) {
    RateLimiter::Permit permit = limiter_.Acquire(c.route, c.major);
    auto r = http_.Send(req);
    limiter_.Complete(permit, r.ok() ? &*r : nullptr);
    if (!r.ok()) {
      last = r.status();
    } else {
      const HttpResponse& resp = *r;
      if (resp.status >= 200 && resp.status < 300) {
        counters_.bytes_up += upload;
        return r;
      }
      auto [code, msg] = ParseDiscordError(resp.body);
      std::string what = fmt::format("Discord {} {}: HTTP {}{}: {}", c.method, c.route, resp.status,
                                     code >= 0 ? fmt::format(" (code {})", code) : "", msg);
      if (resp.status == 429) {
        // The limiter has blocked the bucket (or everything) for retry_after.
        if (++limited > 50) return Status::Busy(what + " (rate limited 50 times in a row)");
        continue;
      }
      if (resp.status == 401 || resp.status == 403) {
        Status s = Status::Permission(
            resp.status == 401
                ? "Discord rejected the bot token (401 Unauthorized): check $HASHFS_DISCORD_TOKEN or --token-file"
                : fmt::format("Discord refused access (403 Forbidden{}): the bot cannot use channel {} ({})",
                              code >= 0 ? fmt::format(", code {}", code) : "", c.major, msg));
        std::lock_guard lk(fatal_mu_);
        fatal_ = s;
        return s;
      }
      if (resp.status == 413 || code == 40005)
        return Status::Make(Status::Code::kTooBig, what + " (request entity too large)");
      if (resp.status == 404) {
        if (c.ok_404) return resp;
        return Status::NotFound(what);
      }
      if (resp.status >= 500 || code == 130000) {
        last = Status::IOError(what);
      } else {
        return Status::IOError(what);
      }
    }
    if (++attempt >= opts_.max_attempts) return last.WithContext(fmt::format("after {} attempts", attempt));
    Backoff(attempt);
  }
}

Result<DiscordMessage> DiscordApi::CreateMessage(uint64_t channel, const std::string& content,
                                                 const std::vector<UploadFile>& files) {
  // Nonces are at most 25 characters; a retried create reuses this one.
  std::string nonce = HexEncode(RandomBytes(12));
  json payload = {{"content", content}, {"nonce", nonce}, {"enforce_nonce", true}};
  json atts = json::array();
  for (size_t i = 0; i < files.size(); i++) atts.push_back({{"id", i}, {"filename", files[i].filename}});
  payload["attachments"] = atts;
  std::string pj = payload.dump();
  Call c;
  c.method = "POST";
  c.path = fmt::format("/channels/{}/messages", channel);
  c.route = "POST /channels/{}/messages";
  c.major = std::to_string(channel);
  c.parts.push_back({"payload_json", "", "application/json", pj});
  std::vector<std::string> names;
  for (size_t i = 0; i < files.size(); i++) names.push_back(fmt::format("files[{}]", i));
  for (size_t i = 0; i < files.size(); i++)
    c.parts.push_back({names[i], files[i].filename, "application/octet-stream", files[i].data});
  HASHFS_ASSIGN_OR_RETURN(HttpResponse r, Do(c));
  HASHFS_ASSIGN_OR_RETURN(DiscordMessage m, ParseMessage(r.body));
  // The message (new, or the one a retried nonce found) must hold exactly what we sent.
  if (m.attachments.size() != files.size())
    return Status::Corruption(fmt::format("created message {} has {} attachments, sent {}", m.id,
                                          m.attachments.size(), files.size()));
  for (size_t i = 0; i < files.size(); i++) {
    const auto& a = m.attachments[i];
    if (a.filename != files[i].filename || (a.size != 0 && a.size != files[i].data.size()))
      return Status::Corruption(fmt::format("created message {} attachment {} does not match the upload", m.id, i));
    if (a.size == 0) m.attachments[i].size = files[i].data.size();
  }
  if (m.channel_id == 0) m.channel_id = channel;
  return m;
}

Result<DiscordMessage> DiscordApi::GetMessage(uint64_t channel, uint64_t message) {
  Call c{"GET", fmt::format("/channels/{}/messages/{}", channel, message), "GET /channels/{}/messages/:id",
         std::to_string(channel)};
  HASHFS_ASSIGN_OR_RETURN(HttpResponse r, Do(c));
  HASHFS_ASSIGN_OR_RETURN(DiscordMessage m, ParseMessage(r.body));
  if (m.channel_id == 0) m.channel_id = channel;
  return m;
}

Result<std::vector<DiscordMessage>> DiscordApi::ListMessages(uint64_t channel, uint64_t after, int limit) {
  Call c{"GET", fmt::format("/channels/{}/messages?after={}&limit={}", channel, after, std::clamp(limit, 1, 100)),
         "GET /channels/{}/messages", std::to_string(channel)};
  HASHFS_ASSIGN_OR_RETURN(HttpResponse r, Do(c));
  HASHFS_ASSIGN_OR_RETURN(auto v, ParseMessageList(r.body));
  for (auto& m : v)
    if (m.channel_id == 0) m.channel_id = channel;
  return v;
}

Result<std::vector<DiscordMessage>> DiscordApi::ListMessagesBefore(uint64_t channel, uint64_t before, int limit) {
  std::string q = before ? fmt::format("before={}&", before) : "";
  Call c{"GET", fmt::format("/channels/{}/messages?{}limit={}", channel, q, std::clamp(limit, 1, 100)),
         "GET /channels/{}/messages", std::to_string(channel)};
  HASHFS_ASSIGN_OR_RETURN(HttpResponse r, Do(c));
  HASHFS_ASSIGN_OR_RETURN(auto v, ParseMessageList(r.body));
  for (auto& m : v)
    if (m.channel_id == 0) m.channel_id = channel;
  return v;
}

Status DiscordApi::EditMessage(uint64_t channel, uint64_t message, const std::string& content) {
  Call c{"PATCH", fmt::format("/channels/{}/messages/{}", channel, message), "PATCH /channels/{}/messages/:id",
         std::to_string(channel)};
  c.json = json({{"content", content}}).dump();
  return Do(c).status();
}

Status DiscordApi::DeleteMessage(uint64_t channel, uint64_t message) {
  Call c{"DELETE", fmt::format("/channels/{}/messages/{}", channel, message), "DELETE /channels/{}/messages/:id",
         std::to_string(channel)};
  c.ok_404 = true;
  return Do(c).status();
}

Status DiscordApi::Pin(uint64_t channel, uint64_t message) {
  Call c{"PUT", fmt::format("/channels/{}/pins/{}", channel, message), "PUT /channels/{}/pins/:id",
         std::to_string(channel)};
  return Do(c).status();
}

Result<std::vector<DiscordMessage>> DiscordApi::Pins(uint64_t channel) {
  Call c{"GET", fmt::format("/channels/{}/pins", channel), "GET /channels/{}/pins", std::to_string(channel)};
  HASHFS_ASSIGN_OR_RETURN(HttpResponse r, Do(c));
  HASHFS_ASSIGN_OR_RETURN(auto v, ParseMessageList(r.body));
  for (auto& m : v)
    if (m.channel_id == 0) m.channel_id = channel;
  return v;
}

Result<std::vector<std::pair<std::string, std::string>>> DiscordApi::RefreshUrls(
    const std::vector<std::string>& urls) {
  Call c{"POST", "/attachments/refresh-urls", "POST /attachments/refresh-urls", ""};
  c.json = json({{"attachment_urls", urls}}).dump();
  HASHFS_ASSIGN_OR_RETURN(HttpResponse r, Do(c));
  return ParseRefreshedUrls(r.body);
}

Result<std::string> DiscordApi::Download(const std::string& url,
                                         std::optional<std::pair<uint64_t, uint64_t>> range) {
  if (Status f = Fatal(); !f.ok()) return f;
  HttpRequest req;
  req.url = url;
  req.range = range;
  req.headers = {{"User-Agent", kUserAgent}};  // never the bot token
  int attempt = 0, limited = 0;
  Status last;
  for (;;) {
    auto r = http_.Send(req);
    if (!r.ok()) {
      last = r.status();
    } else if (r->status == 200 || r->status == 206) {
      std::string body = std::move(r->body);
      counters_.bytes_down += body.size();
      counters_.downloads++;
      if (!range) return body;
      uint64_t want = range->second - range->first + 1;
      if (r->status == 200) {  // whole file: slice it
        if (body.size() < range->first + want) return Status::Corruption("attachment shorter than the range asked");
        return body.substr(range->first, want);
      }
      std::string cr = r->Header("content-range");  // "bytes a-b/n"
      uint64_t a = 0;
      if (cr.rfind("bytes ", 0) == 0) a = std::strtoull(cr.c_str() + 6, nullptr, 10);
      if (a != range->first || body.size() != want)
        return Status::Corruption(fmt::format("range answer does not match: asked {}-{}, got '{}' ({} bytes)",
                                              range->first, range->second, cr, body.size()));
      return body;
    } else if (r->status == 429) {
      double wait = std::max(ParseSeconds(r->Header("retry-after")), 0.1);
      if (++limited > 50) return Status::Busy("attachment downloads keep being rate limited");
      std::this_thread::sleep_for(std::chrono::duration<double>(std::min(wait, 60.0)));
      continue;
    } else if (r->status == 404 || r->status == 403 || r->status == 410 || r->status == 401) {
      return Status::NotFound(fmt::format("attachment URL answered HTTP {} (expired or gone)", r->status));
    } else if (r->status == 416) {
      return Status::Corruption("attachment is shorter than the range asked");
    } else {
      last = Status::IOError(fmt::format("attachment download: HTTP {}", r->status));
      if (r->status < 500) return last;
    }
    if (++attempt >= opts_.max_attempts) return last.WithContext(fmt::format("after {} attempts", attempt));
    Backoff(attempt);
  }
}

}  // namespace hashfs::remote
