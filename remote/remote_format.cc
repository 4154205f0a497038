#include "remote/remote_format.h"

#include <nlohmann/json.hpp>

namespace hashfs::remote {
namespace {

using json = nlohmann::json;

uint64_t IdOf(const json& v) {
  if (v.is_string()) return std::strtoull(v.get_ref<const std::string&>().c_str(), nullptr, 10);
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  return 0;
}

json KdfJson(const ScryptParams& p) {
  return {{"alg", "scrypt"}, {"n", p.n}, {"r", p.r}, {"p", p.p}, {"salt", Base64Encode(p.salt)}};
}

Result<ScryptParams> KdfFrom(const json& j) {
  if (!j.is_object() || j.value("alg", "") != "scrypt") return Status::Unsupported("unknown key derivation");
  ScryptParams p;
  p.n = j.value("n", uint64_t{0});
  p.r = j.value("r", uint64_t{0});
  p.p = j.value("p", uint64_t{0});
  HASHFS_ASSIGN_OR_RETURN(p.salt, Base64Decode(j.value("salt", "")));
  return p;
}

template <typename F>
auto Guard(F f) -> decltype(f()) {
  try {
    return f();
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("malformed remote JSON: ") + e.what());
  }
}

}  // namespace

std::string RemoteConfig::ToJson() const {
  json ch = json::array();
  for (auto c : channels) ch.push_back(std::to_string(c));
  return json({{"name", name},
               {"kind", kind},
               {"channels", ch},
               {"api_url", api_url},
               {"attachment_limit", attachment_limit},
               {"request_limit", request_limit}})
      .dump();
}

Result<RemoteConfig> RemoteConfig::FromJson(std::string_view s) {
  return Guard([&]() -> Result<RemoteConfig> {
    json j = json::parse(s, nullptr, false);
    if (!j.is_object()) return Status::Corruption("remote config is not JSON");
    RemoteConfig c;
    c.name = j.value("name", "");
    c.kind = j.value("kind", "discord");
    const json chans = j.value("channels", json::array());
    for (const auto& v : chans) c.channels.push_back(IdOf(v));
    c.api_url = j.value("api_url", c.api_url);
    c.attachment_limit = j.value("attachment_limit", c.attachment_limit);
    c.request_limit = j.value("request_limit", c.request_limit);
    if (c.channels.empty()) return Status::Corruption("remote config has no channel");
    return c;
  });
}

std::string Manifest::Content() const {
  json ch = json::array();
  for (auto c : channels) ch.push_back(std::to_string(c));
  json j = {{"format", format}, {"kdf", KdfJson(kdf)}, {"key", Base64Encode(wrapped_key)}, {"channels", ch}};
  if (refs_message)
    j["refs"] = {{"channel", std::to_string(refs_channel)}, {"message", std::to_string(refs_message)}, {"seq", refs_seq}};
  return std::string(kManifestPrefix) + j.dump();
}

Result<Manifest> Manifest::Parse(std::string_view content) {
  if (!content.starts_with(kManifestPrefix)) return Status::NotFound("not a hashfs manifest");
  return Guard([&]() -> Result<Manifest> {
    json j = json::parse(content.substr(kManifestPrefix.size()), nullptr, false);
    if (!j.is_object()) return Status::Corruption("hashfs manifest is not JSON");
    Manifest m;
    m.format = j.value("format", 0);
    if (m.format != 1) return Status::Unsupported("remote manifest format " + std::to_string(m.format));
    HASHFS_ASSIGN_OR_RETURN(m.kdf, KdfFrom(j.value("kdf", json())));
    HASHFS_ASSIGN_OR_RETURN(m.wrapped_key, Base64Decode(j.value("key", "")));
    const json chans = j.value("channels", json::array());
    for (const auto& v : chans) m.channels.push_back(IdOf(v));
    if (j.contains("refs") && j["refs"].is_object()) {
      m.refs_channel = IdOf(j["refs"].value("channel", json()));
      m.refs_message = IdOf(j["refs"].value("message", json()));
      m.refs_seq = j["refs"].value("seq", uint64_t{0});
    }
    return m;
  });
}

std::string RemoteRefs::ToJson() const {
  json vols = json::object();
  for (const auto& [name, v] : volumes) {
    json hist = json::array();
    for (const auto& [s, d] : v.history) hist.push_back({s, d.Hex()});
    vols[name] = {{"head", v.head.Hex()}, {"head_seq", v.head_seq}, {"history", hist}};
  }
  json snaps = json::object();
  for (const auto& [name, d] : snapshots) snaps[name] = d.Hex();
  json r = {{"chunk_min", repo.chunking.min_size},
            {"chunk_avg", repo.chunking.avg_size},
            {"chunk_max", repo.chunking.max_size},
            {"zstd_level", repo.zstd_level}};
  return json({{"format", 1},
               {"seq", seq},
               {"gen", gc_generation},
               {"time_ns", time_ns},
               {"repo", r},
               {"volumes", vols},
               {"snapshots", snaps}})
      .dump();
}

Result<RemoteRefs> RemoteRefs::FromJson(std::string_view s) {
  return Guard([&]() -> Result<RemoteRefs> {
    json j = json::parse(s, nullptr, false);
    if (!j.is_object() || j.value("format", 0) != 1) return Status::Corruption("remote refs are not format 1 JSON");
    RemoteRefs r;
    r.seq = j.value("seq", uint64_t{0});
    r.gc_generation = j.value("gen", uint64_t{0});
    r.time_ns = j.value("time_ns", int64_t{0});
    const json& rc = j.value("repo", json::object());
    r.repo.chunking.min_size = rc.value("chunk_min", r.repo.chunking.min_size);
    r.repo.chunking.avg_size = rc.value("chunk_avg", r.repo.chunking.avg_size);
    r.repo.chunking.max_size = rc.value("chunk_max", r.repo.chunking.max_size);
    r.repo.zstd_level = rc.value("zstd_level", r.repo.zstd_level);
    const json vols = j.value("volumes", json::object());
    const json snaps = j.value("snapshots", json::object());
    for (const auto& [name, v] : vols.items()) {
      HASHFS_RETURN_IF_ERROR(ValidateName(name));
      RemoteVolume vol;
      HASHFS_ASSIGN_OR_RETURN(vol.head, Digest::FromHex(v.at("head").get<std::string>()));
      vol.head_seq = v.at("head_seq").get<uint64_t>();
      for (const auto& h : v.at("history")) {
        HASHFS_ASSIGN_OR_RETURN(Digest d, Digest::FromHex(h.at(1).get<std::string>()));
        vol.history.emplace_back(h.at(0).get<uint64_t>(), d);
      }
      r.volumes[name] = std::move(vol);
    }
    for (const auto& [name, v] : snaps.items()) {
      HASHFS_RETURN_IF_ERROR(ValidateName(name));
      HASHFS_ASSIGN_OR_RETURN(Digest d, Digest::FromHex(v.get<std::string>()));
      r.snapshots[name] = d;
    }
    return r;
  });
}

std::vector<Digest> RemoteRefs::KeptCommits() const {
  std::vector<Digest> out;
  for (const auto& [name, v] : volumes) {
    out.push_back(v.head);
    for (const auto& h : v.history) out.push_back(h.second);
  }
  for (const auto& [name, d] : snapshots) out.push_back(d);
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

std::string RefLogHeader::Content() const {
  return std::string(kRefsPrefix) +
         json({{"seq", seq}, {"gen", gc_generation}, {"kdf", KdfJson(kdf)}, {"key", Base64Encode(wrapped_key)}}).dump();
}

Result<RefLogHeader> RefLogHeader::Parse(std::string_view content) {
  if (!content.starts_with(kRefsPrefix)) return Status::NotFound("not a hashfs ref-log message");
  return Guard([&]() -> Result<RefLogHeader> {
    json j = json::parse(content.substr(kRefsPrefix.size()), nullptr, false);
    if (!j.is_object()) return Status::Corruption("ref-log header is not JSON");
    RefLogHeader h;
    h.seq = j.value("seq", uint64_t{0});
    h.gc_generation = j.value("gen", uint64_t{0});
    HASHFS_ASSIGN_OR_RETURN(h.kdf, KdfFrom(j.value("kdf", json())));
    HASHFS_ASSIGN_OR_RETURN(h.wrapped_key, Base64Decode(j.value("key", "")));
    return h;
  });
}

}  // namespace hashfs::remote
