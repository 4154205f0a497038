// HttpClient: the seam between the remote and the network. One request in,
// one response out; a transport failure (refused or dropped connection,
// timeout, truncated body) is an IOError with the libcurl reason, an HTTP
// status of any value is a response. CurlHttpClient is the real one:
// thread-safe, a pool of reusable easy handles (keep-alive connections),
// multipart bodies through curl_mime, Range GETs.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "cas/status.h"

namespace hashfs::remote {

struct MultipartPart {
  std::string name;          // form field name, e.g. "payload_json", "files[0]"
  std::string filename;      // empty: a plain field
  std::string content_type;  // e.g. "application/json"
  std::string_view data;     // must stay valid during Send
};

struct HttpRequest {
  std::string method = "GET";
  std::string url;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;                   // sent when non-empty and parts is empty
  std::vector<MultipartPart> parts;   // multipart/form-data when non-empty
  std::optional<std::pair<uint64_t, uint64_t>> range;  // inclusive byte range
  double timeout_seconds = 300;       // whole request
};

struct HttpResponse {
  long status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::string Header(std::string_view name) const;  // "" if absent
};

class HttpClient {
 public:
  virtual ~HttpClient() = default;
  virtual Result<HttpResponse> Send(const HttpRequest& req) = 0;
};

std::unique_ptr<HttpClient> MakeCurlHttpClient();

}  // namespace hashfs::remote
