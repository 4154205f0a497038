#include "remote/http_client.h"

#include <curl/curl.h>

#include <algorithm>
#include <mutex>

namespace hashfs::remote {
namespace {

struct EasyFree {
  void operator()(CURL* c) const { curl_easy_cleanup(c); }
};
using Easy = std::unique_ptr<CURL, EasyFree>;
struct MimeFree {
  void operator()(curl_mime* m) const { curl_mime_free(m); }
};
struct SlistFree {
  void operator()(curl_slist* l) const { curl_slist_free_all(l); }
};

size_t WriteBody(char* p, size_t size, size_t n, void* ud) {
  auto* s = static_cast<std::string*>(ud);
  s->append(p, size * n);
  return size * n;
}

size_t WriteHeader(char* p, size_t size, size_t n, void* ud) {
  auto* r = static_cast<HttpResponse*>(ud);
  std::string_view line(p, size * n);
  if (line.starts_with("HTTP/")) {  // a new response (after 100-continue or a redirect)
    r->headers.clear();
    return size * n;
  }
  auto colon = line.find(':');
  if (colon == std::string_view::npos) return size * n;
  std::string name(line.substr(0, colon));
  std::transform(name.begin(), name.end(), name.begin(), [](unsigned char c) { return std::tolower(c); });
  std::string_view v = line.substr(colon + 1);
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == '\r' || v.back() == '\n' || v.back() == ' ')) v.remove_suffix(1);
  r->headers[name] = std::string(v);
  return size * n;
}

class CurlHttpClient final : public HttpClient {
 public:
  CurlHttpClient() {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
  }

  Result<HttpResponse> Send(const HttpRequest& req) override {
    Easy easy = Take();
    if (!easy) return Status::IOError("curl_easy_init failed");
    CURL* c = easy.get();
    curl_easy_reset(c);
    HttpResponse resp;
    char errbuf[CURL_ERROR_SIZE] = {0};
    curl_easy_setopt(c, CURLOPT_URL, req.url.c_str());
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(req.timeout_seconds * 1000));
    // A stalled transfer (under 1 KiB/s for 30 s) is a dropped connection.
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 30L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, WriteBody);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp.body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, WriteHeader);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &resp);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);

    std::unique_ptr<curl_slist, SlistFree> headers;
    auto add_header = [&headers](const std::string& h) {
      headers.reset(curl_slist_append(headers.release(), h.c_str()));
    };
    for (const auto& [k, v] : req.headers) add_header(k + ": " + v);
    add_header("Expect:");  // no 100-continue round trip before uploads

    std::unique_ptr<curl_mime, MimeFree> mime;
    if (!req.parts.empty()) {
      mime.reset(curl_mime_init(c));
      for (const auto& p : req.parts) {
        curl_mimepart* part = curl_mime_addpart(mime.get());
        curl_mime_name(part, p.name.c_str());
        curl_mime_data(part, p.data.data(), p.data.size());
        if (!p.filename.empty()) curl_mime_filename(part, p.filename.c_str());
        if (!p.content_type.empty()) curl_mime_type(part, p.content_type.c_str());
      }
      curl_easy_setopt(c, CURLOPT_MIMEPOST, mime.get());
      curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
    } else if (req.method == "GET") {
      curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    } else {
      curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req.method.c_str());
      if (!req.body.empty() || req.method == "POST" || req.method == "PATCH" || req.method == "PUT") {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, req.body.data());
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(req.body.size()));
      }
    }
    std::string range;
    if (req.range) {
      range = std::to_string(req.range->first) + "-" + std::to_string(req.range->second);
      curl_easy_setopt(c, CURLOPT_RANGE, range.c_str());
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers.get());
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
      // The handle's connection may be broken: drop the handle.
      return Status::IOError(std::string("HTTP ") + req.method + " failed: " +
                             (errbuf[0] ? errbuf : curl_easy_strerror(rc)));
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp.status);
    Give(std::move(easy));
    return resp;
  }

 private:
  Easy Take() {
    {
      std::lock_guard lk(mu_);
      if (!pool_.empty()) {
        Easy e = std::move(pool_.back());
        pool_.pop_back();
        return e;
      }
    }
    return Easy(curl_easy_init());
  }
  void Give(Easy e) {
    std::lock_guard lk(mu_);
    if (pool_.size() < 16) pool_.push_back(std::move(e));
  }

  std::mutex mu_;
  std::vector<Easy> pool_;
};

}  // namespace

std::string HttpResponse::Header(std::string_view name) const {
  auto it = headers.find(std::string(name));
  return it == headers.end() ? std::string() : it->second;
}

std::unique_ptr<HttpClient> MakeCurlHttpClient() { return std::make_unique<CurlHttpClient>(); }

}  // namespace hashfs::remote
