#include "remote/remote_format.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <utility>

namespace hashfs::remote {
namespace {

using json = nlohmann::json;

// The JSON is hostile: anything malformed throws (Guard turns it into
// Corruption) instead of being read as some other value.

// An id: a decimal string (as written) or an unsigned number; null is 0.
uint64_t IdOf(const json& v) {
  if (v.is_null()) return 0;
  if (v.is_string())
    if (auto id = ParseDecimalId(v.get_ref<const std::string&>())) return *id;
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  throw std::out_of_range("malformed id " + v.dump());
}

// A list of channel ids ([] when absent); 0 is no channel.
std::vector<uint64_t> ChannelsOf(const json& j) {
  std::vector<uint64_t> out;
  const json chans = j.value("channels", json::array());
  if (!chans.is_array()) throw std::out_of_range("'channels' is not a list");
  for (const auto& v : chans) {
    out.push_back(IdOf(v));
    if (out.back() == 0) throw std::out_of_range("channel id 0");
  }
  return out;
}

// An integer. Anything but an integer that fits T throws: get<T>() converts
// 1e300 with undefined behaviour and wraps -1.
template <typename T>
T IntOf(const json& v, const char* what) {
  if (v.is_number_unsigned()) {
    if (std::in_range<T>(v.get<uint64_t>())) return static_cast<T>(v.get<uint64_t>());
  } else if (v.is_number_integer()) {
    if (std::in_range<T>(v.get<int64_t>())) return static_cast<T>(v.get<int64_t>());
  }
  throw std::out_of_range(std::string("'") + what + "' is not an integer in range");
}

// An integer field of object `j`, `dflt` when absent.
template <typename T>
T Int(const json& j, const char* key, T dflt) {
  if (!j.is_object()) throw std::out_of_range(std::string("not an object where '") + key + "' belongs");
  return j.contains(key) ? IntOf<T>(j.at(key), key) : dflt;
}

// A wrapped master key (design.md: 92 bytes); anything else is damage, not
// a wrong passphrase.
Result<std::string> WrappedKeyFrom(const json& j) {
  HASHFS_ASSIGN_OR_RETURN(std::string k, Base64Decode(j.value("key", "")));
  if (k.size() != MasterKey::kSize + kSealOverhead) return Status::Corruption("wrapped master key has the wrong size");
  return k;
}

json KdfJson(const ScryptParams& p) {
  return {{"alg", "scrypt"}, {"n", p.n}, {"r", p.r}, {"p", p.p}, {"salt", Base64Encode(p.salt)}};
}

Result<ScryptParams> KdfFrom(const json& j) {
  if (!j.is_object() || j.value("alg", "") != "scrypt") return Status::Unsupported("unknown key derivation");
  ScryptParams p;
  p.n = Int(j, "n", uint64_t{0});
  p.r = Int(j, "r", uint64_t{0});
  p.p = Int(j, "p", uint64_t{0});
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
    c.channels = ChannelsOf(j);
    c.api_url = j.value("api_url", c.api_url);
    c.attachment_limit = Int(j, "attachment_limit", c.attachment_limit);
    c.request_limit = Int(j, "request_limit", c.request_limit);
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
    m.format = Int(j, "format", 0);
    if (m.format != 1) return Status::Unsupported("remote manifest format " + std::to_string(m.format));
    HASHFS_ASSIGN_OR_RETURN(m.kdf, KdfFrom(j.value("kdf", json())));
    HASHFS_ASSIGN_OR_RETURN(m.wrapped_key, WrappedKeyFrom(j));
    m.channels = ChannelsOf(j);
    if (j.contains("refs") && j["refs"].is_object()) {
      m.refs_channel = IdOf(j["refs"].value("channel", json()));
      m.refs_message = IdOf(j["refs"].value("message", json()));
      m.refs_seq = Int(j["refs"], "seq", uint64_t{0});
    }
    // The pointer is a hint: without both a channel and a message there is
    // none (and Content omits it).
    if (m.refs_message == 0 || m.refs_channel == 0) m.refs_channel = m.refs_message = m.refs_seq = 0;
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
    if (!j.is_object() || Int(j, "format", 0) != 1) return Status::Corruption("remote refs are not format 1 JSON");
    RemoteRefs r;
    r.seq = Int(j, "seq", uint64_t{0});
    r.gc_generation = Int(j, "gen", uint64_t{0});
    r.time_ns = Int(j, "time_ns", int64_t{0});
    const json rc = j.value("repo", json::object());
    r.repo.chunking.min_size = Int(rc, "chunk_min", r.repo.chunking.min_size);
    r.repo.chunking.avg_size = Int(rc, "chunk_avg", r.repo.chunking.avg_size);
    r.repo.chunking.max_size = Int(rc, "chunk_max", r.repo.chunking.max_size);
    r.repo.zstd_level = Int(rc, "zstd_level", r.repo.zstd_level);
    // A clone creates its store with these: they must be what Init accepts.
    if (Status v = r.repo.chunking.Validate(); !v.ok()) return Status::Corruption("remote refs: " + v.message());
    if (r.repo.zstd_level < 0 || r.repo.zstd_level > 19)
      return Status::Corruption("remote refs: zstd level must be 0..19");
    auto name_ok = [](const std::string& name) -> Status {
      if (Status v = ValidateName(name); !v.ok()) return Status::Corruption("remote refs: " + v.message());
      return Status::Ok();
    };
    auto digest = [](const json& v) -> Result<Digest> {
      auto d = Digest::FromHex(v.get<std::string>());
      if (!d.ok()) return Status::Corruption("remote refs: " + d.status().message());
      return d;
    };
    const json vols = j.value("volumes", json::object());
    const json snaps = j.value("snapshots", json::object());
    for (const auto& [name, v] : vols.items()) {
      HASHFS_RETURN_IF_ERROR(name_ok(name));
      RemoteVolume vol;
      HASHFS_ASSIGN_OR_RETURN(vol.head, digest(v.at("head")));
      vol.head_seq = IntOf<uint64_t>(v.at("head_seq"), "head_seq");
      for (const auto& h : v.at("history")) {
        if (!h.is_array() || h.size() != 2) throw std::out_of_range("history entry is not [seq, commit]");
        HASHFS_ASSIGN_OR_RETURN(Digest d, digest(h.at(1)));
        vol.history.emplace_back(IntOf<uint64_t>(h.at(0), "history seq"), d);
      }
      // As push writes it: oldest first, strictly ascending, ending at the head.
      if (vol.history.empty() || vol.history.back() != std::make_pair(vol.head_seq, vol.head))
        return Status::Corruption("remote refs: volume " + name + "'s history does not end at its head");
      for (size_t i = 1; i < vol.history.size(); i++)
        if (vol.history[i - 1].first >= vol.history[i].first)
          return Status::Corruption("remote refs: volume " + name + "'s history is not in ascending order");
      r.volumes[name] = std::move(vol);
    }
    for (const auto& [name, v] : snaps.items()) {
      HASHFS_RETURN_IF_ERROR(name_ok(name));
      HASHFS_ASSIGN_OR_RETURN(Digest d, digest(v));
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
  json j = {{"seq", seq}, {"gen", gc_generation}, {"kdf", KdfJson(kdf)}, {"key", Base64Encode(wrapped_key)}};
  if (parts) j["parts"] = parts;
  return std::string(kRefsPrefix) + j.dump();
}

Result<RefLogHeader> RefLogHeader::Parse(std::string_view content) {
  if (!content.starts_with(kRefsPrefix)) return Status::NotFound("not a hashfs ref-log message");
  return Guard([&]() -> Result<RefLogHeader> {
    json j = json::parse(content.substr(kRefsPrefix.size()), nullptr, false);
    if (!j.is_object()) return Status::Corruption("ref-log header is not JSON");
    RefLogHeader h;
    h.seq = Int(j, "seq", uint64_t{0});
    h.gc_generation = Int(j, "gen", uint64_t{0});
    h.parts = Int(j, "parts", uint32_t{0});
    if (j.contains("parts") && (h.parts == 0 || h.parts > kMaxRefsParts))
      return Status::Corruption(fmt::format("ref-log header: 'parts' must be 1..{}", kMaxRefsParts));
    HASHFS_ASSIGN_OR_RETURN(h.kdf, KdfFrom(j.value("kdf", json())));
    HASHFS_ASSIGN_OR_RETURN(h.wrapped_key, WrappedKeyFrom(j));
    return h;
  });
}

std::string EncodeRefsPointer(const RefsPointer& p) {
  return json({{"channel", p.channel}, {"message", p.message}, {"seq", p.seq}, {"gen", p.gen}}).dump();
}

Result<RefsPointer> DecodeRefsPointer(std::string_view v) {
  auto j = json::parse(v, nullptr, false);
  if (!j.is_object()) return Status::Corruption("remote index refs pointer is not a JSON object");
  RefsPointer p;
  const std::pair<const char*, uint64_t*> fields[] = {
      {"channel", &p.channel}, {"message", &p.message}, {"seq", &p.seq}, {"gen", &p.gen}};
  for (const auto& [key, field] : fields) {
    if (!j.contains(key)) continue;
    // Only unsigned integers: value<uint64_t>() threw on strings and converted 1e300 with undefined behaviour.
    if (!j[key].is_number_unsigned()) return Status::Corruption(std::string("remote index refs pointer: bad ") + key);
    *field = j[key].get<uint64_t>();
  }
  return p;
}

}  // namespace hashfs::remote
