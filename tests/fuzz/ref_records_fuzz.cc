// libFuzzer target: every decoder of ref-table records in tree/repository.cc
// — the `config` JSON (Repository::Open), `vol/` head records, `hist/` keys
// and values, `snap/` values, `gc/epoch`, and `sess/` JSON session records
// (LiveSessionStarts) — on a hostile ref table.
//
// Input: records [u8 key length][key][u16 LE value length][value]..., put
// into a MemoryStore over a valid config and gc/epoch (so a record can also
// replace those). Checks:
//  * Open either succeeds with a configuration Init would have accepted, or
//    fails with Corruption/Unsupported (NotFound only without a config).
//  * Volumes() lists exactly the vol/ keys; Head(v) is the first 32 bytes of
//    vol/v when it succeeds; a malformed record is Corruption, never a crash.
//  * History(v) entries are exactly hist/v/ records, newest first with
//    strictly decreasing sequence numbers, each commit the record's value.
//  * Resolve(v) = Head(v); Resolve(v~N) = History(v)[N].
//  * Snapshots() lists exactly the snap/ keys with their values; KeptCommits()
//    is exactly the union of all hist/ and snap/ values.
//  * GcEpoch() reads gc/epoch; LiveSessionStarts() removes every sess/ record
//    it cannot parse and returns one start per record it keeps.
//  * Advance on a fresh name then on its own head moves the head exactly.
#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <cstring>

#include "cas/memory_store.h"
#include "tests/fuzz/fuzz_util.h"
#include "tree/repository.h"

namespace {

using namespace hashfs;
using RefMap = std::map<std::string, std::string>;

RefMap AllRefs(ObjectStore& s) {
  RefMap m;
  Status st = s.View([&](RefTxn& t) -> Status {
    HASHFS_ASSIGN_OR_RETURN(auto kv, t.List(""));
    for (auto& [k, v] : kv) m[k] = v;
    return Status::Ok();
  });
  FUZZ_CHECK(st.ok());
  return m;
}

bool IsErrorOf(const Status& s, std::initializer_list<Status::Code> codes) {
  if (s.ok() || s.message().empty()) return false;
  for (auto c : codes)
    if (s.code() == c) return true;
  return false;
}

uint64_t BE64(std::string_view s) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8 && i < s.size(); i++) v = v << 8 | static_cast<uint8_t>(s[i]);
  return v;
}

Digest First32(std::string_view v) {
  Digest d;
  std::memcpy(d.bytes.data(), v.data(), Digest::kSize);
  return d;
}

void CheckVolume(Repository& repo, const RefMap& refs, const std::string& vol, std::set<Digest>* hist_commits) {
  const std::string& raw = refs.at("vol/" + vol);
  // Names a REF can spell (a hostile store may hold any key).
  bool plain_name = !vol.empty() && vol.find('~') == std::string::npos;
  Result<std::optional<Digest>> head = repo.Head(vol);
  if (head.ok()) {
    FUZZ_CHECK(head->has_value());
    FUZZ_CHECK(raw.size() >= Digest::kSize);
    FUZZ_CHECK(**head == First32(raw));
    if (plain_name) {
      // Another record cannot get in the way: vol/ is looked up first.
      Result<Digest> r = repo.Resolve(vol);
      FUZZ_CHECK(r.ok() && *r == **head);
    }
  } else {
    FUZZ_CHECK_MSG(IsErrorOf(head.status(), {Status::Code::kCorruption}), head.status().ToString());
  }

  Result<std::vector<HistoryEntry>> hist = repo.History(vol);
  std::string prefix = "hist/" + vol + "/";
  if (hist.ok()) {
    size_t expected = 0;
    for (auto it = refs.lower_bound(prefix); it != refs.end() && it->first.starts_with(prefix); ++it) expected++;
    FUZZ_CHECK(hist->size() == expected);
    for (size_t i = 0; i < hist->size(); i++) {
      const HistoryEntry& h = (*hist)[i];
      std::string key = prefix + EncodeBE64(h.seq);
      auto it = refs.find(key);
      FUZZ_CHECK_MSG(it != refs.end(), "history entry without its record");
      FUZZ_CHECK(it->second.size() >= Digest::kSize && First32(it->second) == h.commit);
      if (i > 0) FUZZ_CHECK_MSG((*hist)[i - 1].seq > h.seq, "history not strictly newest first");
      hist_commits->insert(h.commit);
    }
    for (size_t n : {size_t{0}, size_t{1}, size_t{2}}) {
      if (!plain_name) break;
      Result<Digest> r = repo.Resolve(vol + "~" + std::to_string(n));
      if (n < hist->size()) {
        FUZZ_CHECK(r.ok() && *r == (*hist)[n].commit);
      } else {
        FUZZ_CHECK(!r.ok() && r.status().code() == Status::Code::kNotFound);
      }
    }
    Result<std::vector<HistoryEntry>> two = repo.History(vol, 2);
    FUZZ_CHECK(two.ok() && two->size() == std::min<size_t>(2, hist->size()));
    for (size_t i = 0; i < two->size(); i++) FUZZ_CHECK((*two)[i].seq == (*hist)[i].seq);
  } else {
    FUZZ_CHECK_MSG(IsErrorOf(hist.status(), {Status::Code::kCorruption}), hist.status().ToString());
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  MemoryStore store;
  RepoConfig cfg;
  cfg.chunking = ChunkParams{4096, 16384, 65536};
  FUZZ_CHECK(Repository::Init(store, cfg).ok());

  // Apply the input's records.
  std::string_view in = fuzz::AsView(data, size);
  Status put = store.Update([&](RefTxn& t) -> Status {
    size_t p = 0;
    while (p < in.size()) {
      size_t klen = static_cast<uint8_t>(in[p++]);
      if (in.size() - p < klen + 2) break;
      std::string_view key = in.substr(p, klen);
      p += klen;
      size_t vlen = static_cast<uint8_t>(in[p]) | static_cast<size_t>(static_cast<uint8_t>(in[p + 1])) << 8;
      p += 2;
      if (in.size() - p < vlen) break;
      std::string_view value = in.substr(p, vlen);
      p += vlen;
      if (key.empty()) continue;
      HASHFS_RETURN_IF_ERROR(t.Put(key, value));
    }
    return Status::Ok();
  });
  FUZZ_CHECK(put.ok());
  RefMap refs = AllRefs(store);

  Result<std::unique_ptr<Repository>> opened = Repository::Open(store);
  if (!opened.ok()) {
    FUZZ_CHECK_MSG(IsErrorOf(opened.status(), {Status::Code::kCorruption, Status::Code::kUnsupported}),
                   opened.status().ToString());
    return 0;
  }
  Repository& repo = **opened;
  {
    // Open accepts only what Init would have written.
    const RepoConfig& c = repo.config();
    FUZZ_CHECK(c.chunking.Validate().ok());
    FUZZ_CHECK(c.zstd_level >= 0 && c.zstd_level <= 19);
    nlohmann::json j = nlohmann::json::parse(refs.at("config"));
    FUZZ_CHECK(j.at("format").get<std::string>() == kRepoFormat);
    FUZZ_CHECK(j.at("chunk_min") == c.chunking.min_size);
    FUZZ_CHECK(j.at("chunk_avg") == c.chunking.avg_size);
    FUZZ_CHECK(j.at("chunk_max") == c.chunking.max_size);
    FUZZ_CHECK(j.at("zstd_level") == c.zstd_level);
    FUZZ_CHECK(j.at("created_ns") == c.created_ns);
    FUZZ_CHECK(j.at("id").get<std::string>() == c.id);
  }

  // Volumes and their histories.
  Result<std::vector<std::string>> vols = repo.Volumes();
  FUZZ_CHECK(vols.ok());
  std::vector<std::string> want_vols;
  for (const auto& [k, v] : refs)
    if (k.starts_with("vol/")) want_vols.push_back(k.substr(4));
  FUZZ_CHECK(*vols == want_vols);
  std::set<Digest> hist_commits;
  for (const auto& v : *vols) CheckVolume(repo, refs, v, &hist_commits);

  // Snapshots and the GC roots.
  Result<std::vector<std::pair<std::string, Digest>>> snaps = repo.Snapshots();
  std::set<Digest> want_kept;
  bool malformed_root = false;
  for (const auto& [k, v] : refs) {
    if (!k.starts_with("hist/") && !k.starts_with("snap/")) continue;
    if (v.size() < Digest::kSize)
      malformed_root = true;
    else
      want_kept.insert(First32(v));
  }
  if (snaps.ok()) {
    size_t i = 0;
    for (const auto& [k, v] : refs) {
      if (!k.starts_with("snap/")) continue;
      FUZZ_CHECK(i < snaps->size());
      FUZZ_CHECK((*snaps)[i].first == k.substr(5));
      FUZZ_CHECK((*snaps)[i].second == First32(v));
      i++;
    }
    FUZZ_CHECK(i == snaps->size());
  } else {
    FUZZ_CHECK(IsErrorOf(snaps.status(), {Status::Code::kCorruption}));
  }
  Result<std::vector<Digest>> kept = repo.KeptCommits();
  if (kept.ok()) {
    FUZZ_CHECK(!malformed_root);
    FUZZ_CHECK(std::set<Digest>(kept->begin(), kept->end()) == want_kept);
    FUZZ_CHECK(kept->size() == want_kept.size());
    for (const auto& d : hist_commits) FUZZ_CHECK(want_kept.count(d));
  } else {
    FUZZ_CHECK(malformed_root);
    FUZZ_CHECK(IsErrorOf(kept.status(), {Status::Code::kCorruption}));
  }

  // GC epoch and writer sessions.
  Result<uint64_t> epoch = repo.GcEpoch();
  FUZZ_CHECK(epoch.ok());
  if (auto it = refs.find("gc/epoch"); it != refs.end()) FUZZ_CHECK(*epoch == BE64(it->second));
  Result<std::vector<int64_t>> live = LiveSessionStarts(repo);
  FUZZ_CHECK(live.ok());
  RefMap after = AllRefs(store);
  size_t sessions = 0;
  for (const auto& [k, v] : after) {
    if (!k.starts_with("sess/")) continue;
    sessions++;
    FUZZ_CHECK(refs.count(k));  // nothing added
    nlohmann::json j = nlohmann::json::parse(v, nullptr, /*allow_exceptions=*/false);
    FUZZ_CHECK_MSG(!j.is_discarded() && j.is_object() && j.contains("pid") && j.contains("host") && j.contains("start"),
                   "a kept session record does not parse: " + v);
  }
  FUZZ_CHECK(live->size() == sessions);

  // Advancing a fresh volume, then its own head.
  const std::string fresh = "fuzz-fresh-volume";
  if (!refs.count("vol/" + fresh) && !refs.count("snap/" + fresh)) {
    Digest c1 = Sha256Of("c1"), c2 = Sha256Of("c2");
    Status a1 = repo.Advance(fresh, std::nullopt, c1, *epoch);
    FUZZ_CHECK_MSG(a1.ok(), a1.ToString());
    Result<std::optional<Digest>> h1 = repo.Head(fresh);
    FUZZ_CHECK(h1.ok() && h1->has_value() && **h1 == c1);
    Status a2 = repo.Advance(fresh, c1, c2, *epoch);
    FUZZ_CHECK_MSG(a2.ok(), a2.ToString());
    Result<std::optional<Digest>> h2 = repo.Head(fresh);
    FUZZ_CHECK(h2.ok() && h2->has_value() && **h2 == c2);
    FUZZ_CHECK(repo.Advance(fresh, c1, c2, *epoch).code() == Status::Code::kConflict);
    FUZZ_CHECK(repo.Advance(fresh, c2, c1, *epoch + 1).code() == Status::Code::kStale);
  }
  return 0;
}
