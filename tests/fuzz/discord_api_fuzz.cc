// libFuzzer target: Discord's HTTP/JSON answers as the API client reads them
// (remote/discord_api.h, remote/rate_limiter.h).
//
// Input: mode (1 byte) % 6, then:
//   0 ParseMessage (a message object)       3 ParseRefreshedUrls (refresh-urls answer)
//   1 ParseMessageList (a list of them)     4 a response: ParseRateLimit and RateLimiter::Complete
//   2 ParseDiscordError (an error body)     5 call selector (1 byte) and a response that a fake
//                                             HttpClient returns to one DiscordApi call
// A response is written as text: "STATUS\nname: value\n...\n\nbody" (header
// names lower-cased, as the curl client stores them). In mode 5 a 429 is
// answered as 400: the client really waits on a 429 (up to 600 s), and the
// 429 handling itself is what mode 4 checks.
//
// Checks:
//  * Messages: refusals are Corruption; an accepted message has an id that is
//    exactly the JSON's (a canonical decimal string or an unsigned number,
//    never 0), a channel id and attachment ids that are exact or 0, every
//    object in "attachments" and nothing else, sizes exactly the JSON's
//    unsigned integers; writing it back as Discord would and parsing again
//    gives the same message. A list is accepted exactly when it is an array
//    of acceptable messages, and comes back sorted by id.
//  * Error bodies: the code is exactly the JSON's integer when it fits an
//    int, else -1; the message is the JSON's, else the first 200 bytes.
//  * Refresh answers: exactly the well-formed (original, refreshed) pairs.
//  * Rate limits: the bucket is the header's; remaining/limit are exactly the
//    header's decimal, or -1 when absent or malformed; every wait is finite,
//    in [0, 600] s (a 429's at least 0.05 s), the body's retry_after before
//    Retry-After, global from either; RateLimiter::Complete returns the wait
//    and leaves the bucket in that state (View), without overflowing time.
//  * API calls: exactly one request is sent; the outcome follows the status
//    as documented (2xx: the decoded answer, checked against the pure
//    decoders and, for a create, against the upload; 401/403 Permission, and
//    later calls fail the same way without a request; 413 / code 40005
//    TooBig; 404 NotFound, OK for a delete; else IOError). Downloads return
//    exactly the range asked or an error: Corruption for a short or
//    mismatched range answer, NotFound for 401/403/404/410.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "remote/discord_api.h"
#include "tests/fuzz/remote_fuzz.h"

namespace {

using namespace hashfs;
using namespace hashfs::remote;
using json = nlohmann::json;
using Code = Status::Code;

json Parse(std::string_view s) { return json::parse(s, nullptr, false); }

// An id read from `v` must be exact, or 0 when `zero_ok`.
void CheckId(const json& v, uint64_t got, bool zero_ok) {
  if (got == 0 && zero_ok) return;
  FUZZ_CHECK(got != 0);
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    FUZZ_CHECK_MSG(fuzz::IsCanonicalDecimal(s) && std::to_string(got) == s, "id '" + s + "' read as " + std::to_string(got));
  } else {
    FUZZ_CHECK(v.is_number_unsigned() && v.get<uint64_t>() == got);
  }
}

std::string Str(const json& o, const char* k) {
  return o.contains(k) && o[k].is_string() ? o[k].get<std::string>() : std::string();
}

void CheckMessageAgainst(const json& j, const DiscordMessage& m) {
  FUZZ_CHECK(j.is_object() && j.contains("id"));
  CheckId(j["id"], m.id, false);
  if (j.contains("channel_id")) CheckId(j["channel_id"], m.channel_id, true);
  else FUZZ_CHECK(m.channel_id == 0);
  FUZZ_CHECK(m.content == Str(j, "content") && m.nonce == Str(j, "nonce"));
  FUZZ_CHECK(m.pinned == (j.contains("pinned") && j["pinned"].is_boolean() && j["pinned"].get<bool>()));
  std::vector<const json*> objs;
  if (j.contains("attachments") && j["attachments"].is_array())
    for (const auto& a : j["attachments"])
      if (a.is_object()) objs.push_back(&a);
  FUZZ_CHECK(objs.size() == m.attachments.size());
  for (size_t i = 0; i < objs.size(); i++) {
    const json& a = *objs[i];
    const DiscordAttachment& at = m.attachments[i];
    if (a.contains("id")) CheckId(a["id"], at.id, true);
    else FUZZ_CHECK(at.id == 0);
    FUZZ_CHECK(at.filename == Str(a, "filename") && at.url == Str(a, "url"));
    bool sized = a.contains("size") && a["size"].is_number_unsigned();
    FUZZ_CHECK(at.size == (sized ? a["size"].get<uint64_t>() : 0));
  }
}

// The message as Discord would send it.
std::string Write(const DiscordMessage& m) {
  json atts = json::array();
  for (const auto& a : m.attachments)
    atts.push_back({{"id", std::to_string(a.id)}, {"filename", a.filename}, {"size", a.size}, {"url", a.url}});
  return json({{"id", std::to_string(m.id)},
               {"channel_id", std::to_string(m.channel_id)},
               {"content", m.content},
               {"nonce", m.nonce},
               {"pinned", m.pinned},
               {"attachments", atts}})
      .dump();
}

bool SameMessage(const DiscordMessage& a, const DiscordMessage& b) {
  if (a.id != b.id || a.channel_id != b.channel_id || a.content != b.content || a.nonce != b.nonce ||
      a.pinned != b.pinned || a.attachments.size() != b.attachments.size())
    return false;
  for (size_t i = 0; i < a.attachments.size(); i++) {
    const auto &x = a.attachments[i], &y = b.attachments[i];
    if (x.id != y.id || x.filename != y.filename || x.size != y.size || x.url != y.url) return false;
  }
  return true;
}

void Messages(std::string_view s) {
  auto m = ParseMessage(s);
  if (!m.ok()) {
    fuzz::CheckRefusal(m.status());
    return;
  }
  CheckMessageAgainst(Parse(s), *m);
  auto again = ParseMessage(Write(*m));
  FUZZ_CHECK_MSG(again.ok(), again.status().ToString());
  FUZZ_CHECK(SameMessage(*again, *m));
}

void Lists(std::string_view s) {
  auto l = ParseMessageList(s);
  json j = Parse(s);
  bool expect = j.is_array();
  std::vector<uint64_t> ids;
  if (expect) {
    for (const auto& e : j) {
      auto m = ParseMessage(e.dump());
      if (!m.ok()) {
        expect = false;
        break;
      }
      ids.push_back(m->id);
    }
  }
  FUZZ_CHECK(l.ok() == expect);
  if (!l.ok()) {
    fuzz::CheckRefusal(l.status());
    return;
  }
  std::sort(ids.begin(), ids.end());
  FUZZ_CHECK(l->size() == ids.size());
  for (size_t i = 0; i < ids.size(); i++) FUZZ_CHECK((*l)[i].id == ids[i]);
}

void Errors(std::string_view s) {
  DiscordError e = ParseDiscordError(s);
  json j = Parse(s);
  int code = -1;
  if (j.is_object() && j.contains("code")) {
    const json& c = j["code"];
    if (c.is_number_unsigned() && std::in_range<int>(c.get<uint64_t>())) code = static_cast<int>(c.get<uint64_t>());
    if (c.is_number_integer() && !c.is_number_unsigned() && std::in_range<int>(c.get<int64_t>()))
      code = static_cast<int>(c.get<int64_t>());
  }
  FUZZ_CHECK_MSG(e.code == code, "error code " + std::to_string(e.code) + " from " + std::string(s.substr(0, 100)));
  std::string msg = j.is_object() ? Str(j, "message") : std::string();
  FUZZ_CHECK(e.message == (msg.empty() ? std::string(s.substr(0, 200)) : msg));
}

void Refreshes(std::string_view s) {
  auto r = ParseRefreshedUrls(s);
  json j = Parse(s);
  bool shape = j.is_object() && j.contains("refreshed_urls") && j["refreshed_urls"].is_array();
  FUZZ_CHECK(r.ok() == shape);
  if (!r.ok()) {
    fuzz::CheckRefusal(r.status());
    return;
  }
  std::vector<std::pair<std::string, std::string>> want;
  for (const auto& e : j["refreshed_urls"])
    if (e.is_object() && e.contains("original") && e["original"].is_string() && e.contains("refreshed") &&
        e["refreshed"].is_string())
      want.emplace_back(e["original"].get<std::string>(), e["refreshed"].get<std::string>());
  FUZZ_CHECK(*r == want);
}

HttpResponse ReadResponse(std::string_view s) {
  HttpResponse r;
  auto nl = s.find('\n');
  std::string_view first = s.substr(0, nl);
  r.status = 0;
  for (size_t i = 0; i < first.size() && i < 3 && first[i] >= '0' && first[i] <= '9'; i++)
    r.status = r.status * 10 + (first[i] - '0');
  s = nl == std::string_view::npos ? std::string_view() : s.substr(nl + 1);
  while (!s.empty()) {
    nl = s.find('\n');
    std::string_view line = s.substr(0, nl);
    s = nl == std::string_view::npos ? std::string_view() : s.substr(nl + 1);
    if (line.empty()) break;
    auto colon = line.find(':');
    if (colon == std::string_view::npos) continue;
    std::string name(line.substr(0, colon));
    for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string_view v = line.substr(colon + 1);
    while (!v.empty() && v.front() == ' ') v.remove_prefix(1);
    r.headers[name] = std::string(v);
  }
  r.body = std::string(s);
  return r;
}

// A header integer must be exactly its decimal digits, else -1.
void CheckHeaderInt(const std::string& h, int got) {
  if (got == -1) return;
  FUZZ_CHECK_MSG(got >= 0 && !h.empty() && h.find_first_not_of("0123456789") == std::string::npos &&
                     std::stoull(h) == static_cast<uint64_t>(got),
                 "header '" + h + "' read as " + std::to_string(got));
}

void RateLimits(std::string_view s) {
  HttpResponse resp = ReadResponse(s);
  RateLimitInfo info = ParseRateLimit(resp);
  FUZZ_CHECK(info.bucket == resp.Header("x-ratelimit-bucket"));
  CheckHeaderInt(resp.Header("x-ratelimit-remaining"), info.remaining);
  CheckHeaderInt(resp.Header("x-ratelimit-limit"), info.limit);
  FUZZ_CHECK_MSG(info.reset_after == -1 || (std::isfinite(info.reset_after) && info.reset_after >= 0 &&
                                            info.reset_after <= 600),
                 "reset_after " + std::to_string(info.reset_after));
  FUZZ_CHECK(info.limited == (resp.status == 429));
  if (info.limited) {
    FUZZ_CHECK(std::isfinite(info.retry_after) && info.retry_after >= 0.05 && info.retry_after <= 600);
    json j = Parse(resp.body);
    bool body_global = j.is_object() && j.contains("global") && j["global"].is_boolean() && j["global"].get<bool>();
    bool hdr_global = resp.Header("x-ratelimit-global") == "true" || resp.Header("x-ratelimit-scope") == "global";
    FUZZ_CHECK(info.global == (body_global || hdr_global));
    double want = -1;
    if (j.is_object() && j.contains("retry_after") && j["retry_after"].is_number() && j["retry_after"].get<double>() >= 0)
      want = j["retry_after"].get<double>();
    else
      want = ParseSeconds(resp.Header("retry-after"));
    FUZZ_CHECK(info.retry_after == std::min(std::max(want, 0.05), 600.0));
  } else {
    FUZZ_CHECK(info.retry_after == 0 && !info.global);
  }

  RateLimiter rl(1000);
  RateLimiter::Permit p = rl.Acquire("GET /channels/{}/messages", "5");
  // Acquired now: after a global 429 it would (rightly) wait.
  RateLimiter::Permit p2 = rl.Acquire("GET /channels/{}/pins", "6");
  // A request that got no response changes nothing.
  FUZZ_CHECK(rl.Complete(p2, nullptr) == 0);
  double waited = rl.Complete(p, &resp);
  FUZZ_CHECK(waited == (info.limited ? info.retry_after : 0));
  RateLimiter::BucketView v = rl.View("GET /channels/{}/messages", "5");
  FUZZ_CHECK(v.bucket == info.bucket);
  FUZZ_CHECK(std::isfinite(v.reset_in) && v.reset_in <= 601);
  if (info.limited && !info.global) {
    FUZZ_CHECK(v.remaining == 0 && v.reset_in > info.retry_after - 1);
  } else if (info.remaining >= 0) {
    FUZZ_CHECK(v.remaining == info.remaining);
    if (info.limit >= 0) FUZZ_CHECK(v.limit == info.limit);
  }
}

class OneShotHttp final : public HttpClient {
 public:
  std::optional<HttpResponse> next;
  int sent = 0;
  Result<HttpResponse> Send(const HttpRequest&) override {
    sent++;
    if (!next) return Status::IOError("connection dropped");
    HttpResponse r = std::move(*next);
    next.reset();
    return r;
  }
};

void ApiCall(std::string_view s) {
  fuzz::Reader rd(s);
  const uint8_t call = rd.U8() % 7;
  HttpResponse resp = ReadResponse(rd.Rest());
  if (resp.status == 429) resp.status = 400;
  const HttpResponse sent_resp = resp;
  OneShotHttp http;
  http.next = resp;
  DiscordOptions o;
  o.api_url = "https://discord.test/api/v10";
  o.token = "token";
  o.max_attempts = 1;
  o.global_per_second = 1000;
  DiscordApi api(http, o);

  const long st = resp.status;
  const bool ok2xx = st >= 200 && st < 300;
  const DiscordError err = ParseDiscordError(resp.body);
  // The documented outcome of a non-2xx API answer.
  auto expected_failure = [&]() -> Code {
    if (st == 401 || st == 403) return Code::kPermission;
    if (st == 413 || err.code == 40005) return Code::kTooBig;
    if (st == 404) return Code::kNotFound;
    return Code::kIOError;
  };
  Status outcome;
  const std::string up1 = "abc", up2 = "hello";
  switch (call) {
    case 0: {
      auto r = api.CreateMessage(5, std::string(kPacksContent), {{"a.hfp", up1}, {"b.hfp", up2}});
      outcome = r.status();
      if (r.ok()) {
        FUZZ_CHECK(ok2xx);
        auto m = ParseMessage(sent_resp.body);
        FUZZ_CHECK(m.ok() && m->id == r->id);
        FUZZ_CHECK(r->attachments.size() == 2 && r->attachments[0].filename == "a.hfp" &&
                   r->attachments[1].filename == "b.hfp");
        FUZZ_CHECK(r->attachments[0].size == up1.size() && r->attachments[1].size == up2.size());
        FUZZ_CHECK(r->channel_id != 0);
      }
      break;
    }
    case 1: {
      auto r = api.GetMessage(5, 77);
      outcome = r.status();
      if (ok2xx) {
        auto m = ParseMessage(sent_resp.body);
        FUZZ_CHECK(r.ok() == m.ok());
        if (r.ok()) {
          if (m->channel_id == 0) m->channel_id = 5;
          FUZZ_CHECK(SameMessage(*r, *m));
        }
      }
      break;
    }
    case 2:
    case 6: {
      auto r = call == 2 ? api.ListMessages(5, 0) : api.Pins(5);
      outcome = r.status();
      if (ok2xx) {
        auto l = ParseMessageList(sent_resp.body);
        FUZZ_CHECK(r.ok() == l.ok());
        if (r.ok()) {
          FUZZ_CHECK(r->size() == l->size());
          for (size_t i = 0; i < r->size(); i++)
            FUZZ_CHECK((*r)[i].id == (*l)[i].id && (*r)[i].channel_id == ((*l)[i].channel_id ? (*l)[i].channel_id : 5));
        }
      }
      break;
    }
    case 3: {
      outcome = api.DeleteMessage(5, 77);
      // A 404 is success (already gone), unless its body says 40005, which
      // is TooBig whatever the status (discord_api.h).
      if (st == 404 && err.code != 40005) FUZZ_CHECK(outcome.ok());
      break;
    }
    case 4: {
      auto r = api.RefreshUrls({"https://cdn.test/a"});
      outcome = r.status();
      if (ok2xx) {
        auto p = ParseRefreshedUrls(sent_resp.body);
        FUZZ_CHECK(r.ok() == p.ok() && (!r.ok() || *r == *p));
      }
      break;
    }
    default: {
      const bool ranged = (s.size() % 2) == 0;
      std::optional<std::pair<uint64_t, uint64_t>> range;
      if (ranged) range = std::make_pair(uint64_t{10}, uint64_t{19});
      auto r = api.Download("https://cdn.test/a.hfp", range);
      outcome = r.status();
      FUZZ_CHECK(http.sent == 1);
      if (r.ok()) {
        FUZZ_CHECK(st == 200 || st == 206);
        if (!ranged) FUZZ_CHECK(*r == sent_resp.body);
        else if (st == 200) FUZZ_CHECK(*r == sent_resp.body.substr(10, 10));
        else FUZZ_CHECK(*r == sent_resp.body && r->size() == 10);
      } else if (st == 200 || st == 206) {
        FUZZ_CHECK(ranged);
        fuzz::CheckRefusal(r.status());
      } else if (st == 401 || st == 403 || st == 404 || st == 410) {
        FUZZ_CHECK(r.status().IsNotFound());
      } else if (st == 416) {
        fuzz::CheckRefusal(r.status());
      } else {
        FUZZ_CHECK(r.status().code() == Code::kIOError);
      }
      return;
    }
  }
  FUZZ_CHECK(http.sent == 1);
  if (ok2xx) {
    if (!outcome.ok()) fuzz::CheckRefusal(outcome);  // a malformed answer
  } else if (!(call == 3 && st == 404 && err.code != 40005)) {
    FUZZ_CHECK_MSG(!outcome.ok() && outcome.code() == expected_failure(),
                   "HTTP " + std::to_string(st) + " gave " + outcome.ToString());
  }
  // 401/403 poison the client: the next call fails the same way, unsent.
  // (A route no first call used: the answer may have exhausted that one's
  // bucket, and the client would rightly wait for its reset.)
  Status next = api.EditMessage(5, 78, "x");
  if (st == 401 || st == 403) {
    FUZZ_CHECK(next.code() == Code::kPermission && http.sent == 1);
  } else {
    FUZZ_CHECK(http.sent == 2 && next.code() == Code::kIOError);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view in = fuzz::AsView(data + 1, size - 1);
  switch (data[0] % 6) {
    case 0: Messages(in); break;
    case 1: Lists(in); break;
    case 2: Errors(in); break;
    case 3: Refreshes(in); break;
    case 4: RateLimits(in); break;
    default: ApiCall(in); break;
  }
  return 0;
}
