// libFuzzer target: what the remote keeps besides packs (remote/remote_format.h)
// and the local remote index's records (remote/remote_index.h).
//
// Input: mode (1 byte) % 9, then the bytes to decode:
//   0 Manifest::Parse (pinned message content)      4 DecodePackRecord (remote/NAME/p/<id>)
//   1 RefLogHeader::Parse (ref-log message content)  5 DecodeLocation (remote/NAME/o/<keyed id>)
//   2 RemoteRefs::FromJson (decrypted refs JSON)     6 DecodeDecimal (remote/NAME/sync/<ch>, gen)
//   3 RemoteConfig::FromJson (remote/NAME/config)    7 DecodeRefsPointer (remote/NAME/refsptr)
//   8 DecompressRefs, and OpenRefs of the same bytes sealed as 1..3 parts
//     (the reassembled plaintext of a format-2 ref-log message)
//
// Checks:
//  * Manifest / ref-log header: NotFound exactly when the prefix is missing,
//    else a refusal is Corruption or Unsupported (format, KDF); an accepted
//    one has format 1, a wrapped key of 92 bytes (design.md), KDF parameters
//    that CheckScryptParams either refuses (InvalidArgument) or that need at
//    most 1 GiB, ids that are exactly the JSON's (canonical decimal strings,
//    never 0); Parse(Content()) gives the same value and the content is stable.
//  * Compressed refs: an accepted frame inflates within kMaxRefsJsonSize and
//    kMaxRefsInflation times its size; OpenRefs of the bytes sealed as parts
//    accepts exactly when the frame inflates to refs of the header's seq,
//    and gives those refs; refusals are Corruption.
//  * Refs: refusals are Corruption; accepted refs meet the documented limits
//    (valid names, non-empty strictly ascending history ending at the head,
//    valid chunking and zstd level), KeptCommits is exactly the named commits
//    sorted and unique, integers are exactly the JSON's, and
//    FromJson(ToJson(r)) == r with a stable encoding.
//  * Config: refusals are Corruption; accepted has channels (non-zero, exact),
//    limits exactly the JSON's; round-trips.
//  * Index records: a pack record is accepted only with the size its count
//    gives, with entries meeting the pack trailer's limits, and re-encodes to
//    the same bytes; a locator exactly when 28 bytes, re-encoding to the same
//    bytes; a sync mark / gc generation exactly when it is a canonical
//    decimal; a refs pointer only as a JSON object whose fields, when
//    present, are exactly its unsigned integers, round-tripping; refusals are
//    Corruption.
#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>

#include "tests/fuzz/remote_fuzz.h"

namespace {

using namespace hashfs;
using namespace hashfs::remote;
using json = nlohmann::json;

// The JSON object after `prefix`, parsed independently (null if none).
json Parsed(std::string_view s, std::string_view prefix = {}) {
  if (!s.starts_with(prefix)) return json();
  json j = json::parse(s.substr(prefix.size()), nullptr, false);
  return j.is_object() ? j : json();
}

// An accepted id must be exactly what the JSON holds there.
void CheckId(const json& v, uint64_t got) {
  FUZZ_CHECK(got != 0);
  if (v.is_string()) {
    const auto& s = v.get_ref<const std::string&>();
    FUZZ_CHECK_MSG(fuzz::IsCanonicalDecimal(s) && std::to_string(got) == s, "id '" + s + "' read as " + std::to_string(got));
  } else {
    FUZZ_CHECK(v.is_number_unsigned() && v.get<uint64_t>() == got);
  }
}

// An accepted integer field, if present, must be exactly the JSON's integer.
template <typename T>
void CheckInt(const json& j, const char* key, T got) {
  if (!j.is_object() || !j.contains(key)) return;
  const json& v = j[key];
  if (v.is_number_unsigned()) {
    FUZZ_CHECK_MSG(std::in_range<T>(v.get<uint64_t>()) && static_cast<T>(v.get<uint64_t>()) == got, key);
  } else {
    FUZZ_CHECK_MSG(v.is_number_integer() && std::in_range<T>(v.get<int64_t>()) && static_cast<T>(v.get<int64_t>()) == got,
                   key);
  }
}

void CheckKdfJson(const json& j, const ScryptParams& p) {
  FUZZ_CHECK(j.contains("kdf") && j["kdf"].is_object());
  CheckInt(j["kdf"], "n", p.n);
  CheckInt(j["kdf"], "r", p.r);
  CheckInt(j["kdf"], "p", p.p);
  fuzz::CheckAcceptedKdf(p);
}

void Manifests(std::string_view s) {
  auto m = Manifest::Parse(s);
  if (!s.starts_with(kManifestPrefix)) {
    FUZZ_CHECK(m.status().IsNotFound());
    return;
  }
  if (!m.ok()) {
    fuzz::CheckRefusalIn(m.status(), {Status::Code::kCorruption, Status::Code::kUnsupported});
    return;
  }
  json j = Parsed(s, kManifestPrefix);
  FUZZ_CHECK(m->format == 1);
  FUZZ_CHECK_MSG(m->wrapped_key.size() == MasterKey::kSize + kSealOverhead,
                 "wrapped key of " + std::to_string(m->wrapped_key.size()) + " bytes accepted");
  CheckKdfJson(j, m->kdf);
  FUZZ_CHECK(j["channels"].size() == m->channels.size() || !j["channels"].is_array());
  if (j.contains("channels") && j["channels"].is_array())
    for (size_t i = 0; i < m->channels.size(); i++) CheckId(j["channels"][i], m->channels[i]);
  if (m->refs_message) {
    CheckId(j["refs"]["message"], m->refs_message);
    CheckId(j["refs"]["channel"], m->refs_channel);
    CheckInt(j["refs"], "seq", m->refs_seq);
  }
  std::string c = m->Content();
  auto again = Manifest::Parse(c);
  FUZZ_CHECK_MSG(again.ok(), again.status().ToString());
  FUZZ_CHECK_MSG(fuzz::Same(*again, *m), "Parse(Content(m)) != m");
  FUZZ_CHECK(again->Content() == c);
}

void RefLogHeaders(std::string_view s) {
  auto h = RefLogHeader::Parse(s);
  if (!s.starts_with(kRefsPrefix)) {
    FUZZ_CHECK(h.status().IsNotFound());
    return;
  }
  if (!h.ok()) {
    fuzz::CheckRefusalIn(h.status(), {Status::Code::kCorruption, Status::Code::kUnsupported});
    return;
  }
  json j = Parsed(s, kRefsPrefix);
  FUZZ_CHECK_MSG(h->wrapped_key.size() == MasterKey::kSize + kSealOverhead,
                 "wrapped key of " + std::to_string(h->wrapped_key.size()) + " bytes accepted");
  CheckKdfJson(j, h->kdf);
  CheckInt(j, "seq", h->seq);
  CheckInt(j, "gen", h->gc_generation);
  CheckInt(j, "parts", h->parts);
  FUZZ_CHECK(h->parts <= kMaxRefsParts && (h->parts > 0 || !j.contains("parts")));
  std::string c = h->Content();
  auto again = RefLogHeader::Parse(c);
  FUZZ_CHECK_MSG(again.ok(), again.status().ToString());
  FUZZ_CHECK(fuzz::Same(*again, *h));
  FUZZ_CHECK(again->Content() == c);
}

void Refs(std::string_view s) {
  auto r = RemoteRefs::FromJson(s);
  if (!r.ok()) {
    fuzz::CheckRefusal(r.status());
    return;
  }
  json j = Parsed(s);
  CheckInt(j, "seq", r->seq);
  CheckInt(j, "gen", r->gc_generation);
  CheckInt(j, "time_ns", r->time_ns);
  if (j.contains("repo")) {
    CheckInt(j["repo"], "chunk_min", r->repo.chunking.min_size);
    CheckInt(j["repo"], "chunk_avg", r->repo.chunking.avg_size);
    CheckInt(j["repo"], "chunk_max", r->repo.chunking.max_size);
    CheckInt(j["repo"], "zstd_level", r->repo.zstd_level);
  }
  for (const auto& [name, v] : r->volumes) {
    const json& jv = j["volumes"][name];
    CheckInt(jv, "head_seq", v.head_seq);
    FUZZ_CHECK(jv["history"].size() == v.history.size());
    for (size_t i = 0; i < v.history.size(); i++) {
      const json& h = jv["history"][i];
      FUZZ_CHECK(h.is_array() && h[0].is_number_unsigned() && h[0].get<uint64_t>() == v.history[i].first);
    }
  }
  fuzz::CheckRemoteRefs(*r);
  fuzz::CheckRefsRoundTrip(*r);
}

void CompressedRefs(std::string_view s) {
  auto plain = DecompressRefs(s);
  if (plain.ok()) {
    FUZZ_CHECK(plain->size() <= kMaxRefsJsonSize && plain->size() <= kMaxRefsInflation * s.size() + 4096);
  } else {
    fuzz::CheckRefusal(plain.status());
  }
  constexpr uint64_t kSeq = 7;
  const uint32_t n = s.empty() ? 1 : 1 + static_cast<uint8_t>(s.back()) % 3;
  const size_t piece = (s.size() + n - 1) / n;
  std::vector<std::string> parts;
  for (uint32_t i = 0; i < n; i++)
    parts.push_back(fuzz::DetSeal(fuzz::FixedKey().enc_key(), s.substr(std::min(s.size(), i * piece), piece),
                                  RefsPartAad(kSeq, i, n)));
  auto opened = OpenRefs(fuzz::FixedKey().enc_key(), kSeq, n, parts);
  auto direct = plain.ok() ? RemoteRefs::FromJson(*plain) : Result<RemoteRefs>(plain.status());
  if (direct.ok() && direct->seq == kSeq) {
    FUZZ_CHECK_MSG(opened.ok(), opened.status().ToString());
    FUZZ_CHECK(fuzz::Same(*opened, *direct));
  } else {
    FUZZ_CHECK(!opened.ok());
    fuzz::CheckRefusal(opened.status());
  }
  if (plain.ok()) Refs(*plain);
}

void Configs(std::string_view s) {
  auto c = RemoteConfig::FromJson(s);
  if (!c.ok()) {
    fuzz::CheckRefusal(c.status());
    return;
  }
  json j = Parsed(s);
  FUZZ_CHECK(!c->channels.empty() && j["channels"].size() == c->channels.size());
  for (size_t i = 0; i < c->channels.size(); i++) CheckId(j["channels"][i], c->channels[i]);
  CheckInt(j, "attachment_limit", c->attachment_limit);
  CheckInt(j, "request_limit", c->request_limit);
  auto again = RemoteConfig::FromJson(c->ToJson());
  FUZZ_CHECK_MSG(again.ok(), again.status().ToString());
  FUZZ_CHECK(fuzz::Same(*again, *c));
  FUZZ_CHECK(again->ToJson() == c->ToJson());
}

void PackRecords(std::string_view v) {
  const std::string pack_id = fuzz::Pattern(kPackIdSize, 3, 1);
  auto r = DecodePackRecord(pack_id, v);
  if (!r.ok()) {
    fuzz::CheckRefusal(r.status());
    return;
  }
  FUZZ_CHECK(v.size() == 36 + kIndexRecordSize * r->index.entries.size());
  FUZZ_CHECK(r->index.pack_id == pack_id && r->index.pack_size == r->loc.size);
  FUZZ_CHECK_MSG(EncodePackRecord(*r) == v, "pack record re-encodes differently");
  // The records are a pack trailer's (remote_index.h): its limits hold.
  fuzz::CheckIndexLimits(r->index.entries, r->loc.size);
}

void Locations(std::string_view v) {
  auto l = DecodeLocation(v);
  FUZZ_CHECK(l.ok() == (v.size() == kPackIdSize + 12));
  if (!l.ok()) {
    fuzz::CheckRefusal(l.status());
    return;
  }
  FUZZ_CHECK(l->pack_id.size() == kPackIdSize);
  FUZZ_CHECK(EncodeLocation(*l) == v);
}

void Decimals(std::string_view v) {
  auto w = DecodeDecimal(v);
  FUZZ_CHECK_MSG(w.ok() == fuzz::IsCanonicalDecimal(v), "decimal '" + std::string(v) + "'");
  if (!w.ok()) {
    fuzz::CheckRefusal(w.status());
    return;
  }
  FUZZ_CHECK(std::to_string(*w) == v);
}

void RefsPointers(std::string_view v) {
  auto p = DecodeRefsPointer(v);
  if (!p.ok()) {
    fuzz::CheckRefusal(p.status());
    return;
  }
  json j = Parsed(v);
  FUZZ_CHECK(j.is_object());
  const std::pair<const char*, uint64_t> fields[] = {
      {"channel", p->channel}, {"message", p->message}, {"seq", p->seq}, {"gen", p->gen}};
  for (const auto& [key, got] : fields) {
    if (j.contains(key)) FUZZ_CHECK_MSG(j[key].is_number_unsigned() && j[key].get<uint64_t>() == got, key);
    else FUZZ_CHECK(got == 0);
  }
  auto again = DecodeRefsPointer(EncodeRefsPointer(*p));
  FUZZ_CHECK(again.ok() && again->channel == p->channel && again->message == p->message && again->seq == p->seq &&
             again->gen == p->gen);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  std::string_view in = fuzz::AsView(data + 1, size - 1);
  switch (data[0] % 9) {
    case 0: Manifests(in); break;
    case 1: RefLogHeaders(in); break;
    case 2: Refs(in); break;
    case 3: Configs(in); break;
    case 4: PackRecords(in); break;
    case 5: Locations(in); break;
    case 6: Decimals(in); break;
    case 7: RefsPointers(in); break;
    default: CompressedRefs(in); break;
  }
  return 0;
}
