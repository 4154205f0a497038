#include "tree/repository.h"

#include <openssl/rand.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <nlohmann/json.hpp>
#include <set>
#include <stdexcept>
#include <utility>

namespace hashfs {

namespace {

using json = nlohmann::json;

std::string RandomHex(size_t bytes) {
  std::string raw(bytes, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes));
  static const char* kHex = "0123456789abcdef";
  std::string out;
  for (unsigned char c : raw) {
    out.push_back(kHex[c >> 4]);
    out.push_back(kHex[c & 15]);
  }
  return out;
}

std::string VolKey(std::string_view v) { return "vol/" + std::string(v); }
std::string SnapKey(std::string_view s) { return "snap/" + std::string(s); }
std::string HistPrefix(std::string_view v) { return "hist/" + std::string(v) + "/"; }
std::string HistKey(std::string_view v, uint64_t seq) { return HistPrefix(v) + EncodeBE64(seq); }

std::string HostName() {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

bool IsHex(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return std::isxdigit(static_cast<unsigned char>(c)); });
}

Result<Digest> DigestValue(const std::string& v, std::string_view key) {
  if (v.size() < Digest::kSize) return Status::Corruption("ref " + std::string(key) + " is malformed");
  return Digest::FromBytes(std::string_view(v).substr(0, Digest::kSize));
}

// An integer field of a stored JSON record. Anything but an integer that fits
// T is refused (throws, like json::at): get<T>() would convert 1e300 or -1
// with undefined or wrapped results.
template <typename T>
T IntField(const json& j, const char* key) {
  const json& v = j.at(key);
  if (v.is_number_unsigned()) {
    auto u = v.get<uint64_t>();
    if (std::in_range<T>(u)) return static_cast<T>(u);
  } else if (v.is_number_integer()) {
    auto i = v.get<int64_t>();
    if (std::in_range<T>(i)) return static_cast<T>(i);
  }
  throw std::out_of_range(std::string("'") + key + "' is not an integer in range");
}

}  // namespace

std::string EncodeBE64(uint64_t v) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; i++) s[i] = static_cast<char>(v >> (56 - 8 * i));
  return s;
}

uint64_t DecodeBE64(std::string_view s) {
  uint64_t v = 0;
  for (size_t i = 0; i < 8 && i < s.size(); i++) v = v << 8 | static_cast<uint8_t>(s[i]);
  return v;
}

Status ValidateName(std::string_view name) {
  if (name.empty() || name.size() > 128) return Status::InvalidArgument("name must be 1 to 128 characters");
  if (!std::isalnum(static_cast<unsigned char>(name[0])))
    return Status::InvalidArgument("name '" + std::string(name) + "' must start with a letter or digit");
  for (char c : name)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-')
      return Status::InvalidArgument("name '" + std::string(name) + "' may only hold letters, digits, '.', '_' and '-'");
  if (name.size() >= 8 && IsHex(name))
    return Status::InvalidArgument("name '" + std::string(name) + "' looks like a commit id");
  return Status::Ok();
}

Status Repository::Init(ObjectStore& store, RepoConfig cfg) {
  HASHFS_RETURN_IF_ERROR(cfg.chunking.Validate());
  if (cfg.zstd_level < 0 || cfg.zstd_level > 19) return Status::InvalidArgument("zstd level must be 0..19");
  cfg.id = RandomHex(16);
  cfg.created_ns = WallClockNs();
  json j = {{"format", kRepoFormat},
            {"id", cfg.id},
            {"created_ns", cfg.created_ns},
            {"chunk_min", cfg.chunking.min_size},
            {"chunk_avg", cfg.chunking.avg_size},
            {"chunk_max", cfg.chunking.max_size},
            {"zstd_level", cfg.zstd_level}};
  return store.Update([&](RefTxn& t) -> Status {
    HASHFS_ASSIGN_OR_RETURN(auto existing, t.Get("config"));
    if (existing) return Status::Exists("store is already initialized");
    HASHFS_RETURN_IF_ERROR(t.Put("config", j.dump()));
    return t.Put("gc/epoch", EncodeBE64(0));
  });
}

Result<std::unique_ptr<Repository>> Repository::Open(ObjectStore& store) {
  std::optional<std::string> raw;
  HASHFS_RETURN_IF_ERROR(store.View([&](RefTxn& t) -> Status {
    HASHFS_ASSIGN_OR_RETURN(raw, t.Get("config"));
    return Status::Ok();
  }));
  if (!raw) return Status::NotFound("store is not initialized (run 'hashfs init')");
  RepoConfig cfg;
  try {
    json j = json::parse(*raw);
    std::string format = j.at("format").get<std::string>();
    if (format != kRepoFormat)
      return Status::Unsupported("store has repository format '" + format + "', this hashfs reads '" +
                                 std::string(kRepoFormat) + "'");
    cfg.id = j.at("id").get<std::string>();
    cfg.created_ns = IntField<int64_t>(j, "created_ns");
    cfg.chunking.min_size = IntField<uint32_t>(j, "chunk_min");
    cfg.chunking.avg_size = IntField<uint32_t>(j, "chunk_avg");
    cfg.chunking.max_size = IntField<uint32_t>(j, "chunk_max");
    cfg.zstd_level = IntField<int>(j, "zstd_level");
  } catch (const std::exception& e) {
    return Status::Corruption(std::string("repository config is malformed: ") + e.what());
  }
  // A stored config Init would have refused is damage, not a caller error.
  if (Status v = cfg.chunking.Validate(); !v.ok()) return Status::Corruption("repository config: " + v.message());
  if (cfg.zstd_level < 0 || cfg.zstd_level > 19)
    return Status::Corruption("repository config: zstd level must be 0..19");
  return std::unique_ptr<Repository>(new Repository(store, std::move(cfg)));
}

Result<Commit> Repository::LoadCommit(const Digest& id) {
  HASHFS_ASSIGN_OR_RETURN(std::string bytes, store_.Get(id));
  auto c = DecodeCommit(bytes);
  if (!c.ok()) return c.status().WithContext("commit " + id.Hex());
  return c;
}

Result<std::optional<Digest>> Repository::Head(std::string_view volume) {
  std::optional<Digest> out;
  HASHFS_RETURN_IF_ERROR(store_.View([&](RefTxn& t) -> Status {
    HASHFS_ASSIGN_OR_RETURN(auto v, t.Get(VolKey(volume)));
    if (v) {
      HASHFS_ASSIGN_OR_RETURN(Digest d, DigestValue(*v, VolKey(volume)));
      out = d;
    }
    return Status::Ok();
  }));
  return out;
}

Result<std::vector<std::string>> Repository::Volumes() {
  std::vector<std::string> out;
  HASHFS_RETURN_IF_ERROR(store_.View([&](RefTxn& t) -> Status {
    HASHFS_ASSIGN_OR_RETURN(auto kv, t.List("vol/"));
    for (auto& [k, v] : kv) out.push_back(k.substr(4));
    return Status::Ok();
  }));
  return out;
}

Status Repository::Advance(std::string_view volume, std::optional<Digest> expected, const Digest& commit,
                           uint64_t gc_epoch) {
  HASHFS_RETURN_IF_ERROR(ValidateName(volume));
  return store_.Update([&](RefTxn& t) -> Status {
    HASHFS_ASSIGN_OR_RETURN(auto ep, t.Get("gc/epoch"));
    if (ep && DecodeBE64(*ep) != gc_epoch) return Status::Stale("a garbage collection ran meanwhile");
    HASHFS_ASSIGN_OR_RETURN(auto cur, t.Get(VolKey(volume)));
    uint64_t seq = 0;
    if (!cur) {
      if (expected) return Status::Conflict("volume '" + std::string(volume) + "' no longer exists");
      HASHFS_ASSIGN_OR_RETURN(auto snap, t.Get(SnapKey(volume)));
      if (snap) return Status::Exists("'" + std::string(volume) + "' is a snapshot name");
    } else {
      HASHFS_ASSIGN_OR_RETURN(Digest head, DigestValue(*cur, VolKey(volume)));
      if (!expected || *expected != head)
        return Status::Conflict("volume '" + std::string(volume) + "' head moved");
      seq = DecodeBE64(std::string_view(*cur).substr(Digest::kSize)) + 1;
    }
    std::string val(commit.AsBytes());
    val += EncodeBE64(seq);
    HASHFS_RETURN_IF_ERROR(t.Put(VolKey(volume), val));
    return t.Put(HistKey(volume, seq), commit.AsBytes());
  });
}

Result<std::vector<HistoryEntry>> Repository::History(std::string_view volume, size_t limit) {
  std::vector<HistoryEntry> out;
  bool exists = false;
  HASHFS_RETURN_IF_ERROR(store_.View([&](RefTxn& t) -> Status {
    HASHFS_ASSIGN_OR_RETURN(auto cur, t.Get(VolKey(volume)));
    exists = cur.has_value();
    std::string prefix = HistPrefix(volume);
    HASHFS_ASSIGN_OR_RETURN(auto kv, t.List(prefix, limit, /*reverse=*/true));
    for (auto& [k, v] : kv) {
      HASHFS_ASSIGN_OR_RETURN(Digest d, DigestValue(v, k));
      // SEQ is exactly 8 bytes; another length would alias a real entry's seq.
      std::string_view seq = std::string_view(k).substr(prefix.size());
      if (seq.size() != 8) return Status::Corruption("history key of volume '" + std::string(volume) + "' is malformed");
      out.push_back({DecodeBE64(seq), d});
    }
    return Status::Ok();
  }));
  if (!exists) return Status::NotFound("no volume named '" + std::string(volume) + "'");
  return out;
}

Status Repository::DropHistory(std::string_view volume, const std::vector<uint64_t>& seqs) {
  return store_.Update([&](RefTxn& t) -> Status {
    HASHFS_ASSIGN_OR_RETURN(auto cur, t.Get(VolKey(volume)));
    if (!cur) return Status::NotFound("no volume named '" + std::string(volume) + "'");
    uint64_t head_seq = DecodeBE64(std::string_view(*cur).substr(Digest::kSize));
    for (uint64_t s : seqs) {
      if (s == head_seq) return Status::InvalidArgument("the head commit cannot be forgotten");
      HASHFS_RETURN_IF_ERROR(t.Delete(HistKey(volume, s)));
    }
    return Status::Ok();
  });
}

Status Repository::CreateSnapshot(std::string_view name, const Digest& commit) {
  HASHFS_RETURN_IF_ERROR(ValidateName(name));
  return store_.Update([&](RefTxn& t) -> Status {
    HASHFS_ASSIGN_OR_RETURN(auto s, t.Get(SnapKey(name)));
    if (s) return Status::Exists("snapshot '" + std::string(name) + "' already exists");
    HASHFS_ASSIGN_OR_RETURN(auto v, t.Get(VolKey(name)));
    if (v) return Status::Exists("'" + std::string(name) + "' is a volume name");
    return t.Put(SnapKey(name), commit.AsBytes());
  });
}

Status Repository::DeleteSnapshot(std::string_view name) {
  return store_.Update([&](RefTxn& t) -> Status {
    HASHFS_ASSIGN_OR_RETURN(auto s, t.Get(SnapKey(name)));
    if (!s) return Status::NotFound("no snapshot named '" + std::string(name) + "'");
    return t.Delete(SnapKey(name));
  });
}

Result<std::vector<std::pair<std::string, Digest>>> Repository::Snapshots() {
  std::vector<std::pair<std::string, Digest>> out;
  HASHFS_RETURN_IF_ERROR(store_.View([&](RefTxn& t) -> Status {
    HASHFS_ASSIGN_OR_RETURN(auto kv, t.List("snap/"));
    for (auto& [k, v] : kv) {
      HASHFS_ASSIGN_OR_RETURN(Digest d, DigestValue(v, k));
      out.emplace_back(k.substr(5), d);
    }
    return Status::Ok();
  }));
  return out;
}

Result<std::vector<Digest>> Repository::KeptCommits() {
  std::set<Digest> all;
  HASHFS_RETURN_IF_ERROR(store_.View([&](RefTxn& t) -> Status {
    HASHFS_ASSIGN_OR_RETURN(auto hist, t.List("hist/"));
    for (auto& [k, v] : hist) {
      HASHFS_ASSIGN_OR_RETURN(Digest d, DigestValue(v, k));
      all.insert(d);
    }
    HASHFS_ASSIGN_OR_RETURN(auto snaps, t.List("snap/"));
    for (auto& [k, v] : snaps) {
      HASHFS_ASSIGN_OR_RETURN(Digest d, DigestValue(v, k));
      all.insert(d);
    }
    return Status::Ok();
  }));
  return std::vector<Digest>(all.begin(), all.end());
}

Result<Digest> Repository::Resolve(std::string_view ref) {
  if (ref.empty()) return Status::InvalidArgument("empty REF");
  if (auto tilde = ref.find('~'); tilde != std::string_view::npos) {
    std::string_view vol = ref.substr(0, tilde), num = ref.substr(tilde + 1);
    if (num.empty() || num.size() > 9 || !std::all_of(num.begin(), num.end(), [](char c) { return c >= '0' && c <= '9'; }))
      return Status::InvalidArgument("REF '" + std::string(ref) + "': expected VOLUME~N with a number N");
    size_t n = std::stoul(std::string(num));
    HASHFS_ASSIGN_OR_RETURN(auto hist, History(vol, n + 1));
    if (hist.size() <= n)
      return Status::NotFound("volume '" + std::string(vol) + "' has only " + std::to_string(hist.size()) + " commits");
    return hist[n].commit;
  }
  HASHFS_ASSIGN_OR_RETURN(auto head, Head(ref));
  if (head) return *head;
  std::optional<Digest> snap;
  HASHFS_RETURN_IF_ERROR(store_.View([&](RefTxn& t) -> Status {
    HASHFS_ASSIGN_OR_RETURN(auto s, t.Get(SnapKey(ref)));
    if (s) {
      HASHFS_ASSIGN_OR_RETURN(Digest d, DigestValue(*s, SnapKey(ref)));
      snap = d;
    }
    return Status::Ok();
  }));
  if (snap) return *snap;
  if (ref.size() >= 8 && ref.size() <= 64 && IsHex(ref)) {
    std::string lower(ref);
    for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    HASHFS_ASSIGN_OR_RETURN(auto kept, KeptCommits());
    std::optional<Digest> found;
    for (const auto& d : kept) {
      if (d.Hex().starts_with(lower)) {
        if (found) return Status::InvalidArgument("commit id prefix '" + std::string(ref) + "' is ambiguous");
        found = d;
      }
    }
    if (found) return *found;
    return Status::NotFound("no kept commit has an id starting with '" + std::string(ref) + "'");
  }
  return Status::NotFound("no volume, snapshot or commit named '" + std::string(ref) + "'");
}

Result<uint64_t> Repository::GcEpoch() {
  uint64_t e = 0;
  HASHFS_RETURN_IF_ERROR(store_.View([&](RefTxn& t) -> Status {
    HASHFS_ASSIGN_OR_RETURN(auto v, t.Get("gc/epoch"));
    if (v) e = DecodeBE64(*v);
    return Status::Ok();
  }));
  return e;
}

Result<std::unique_ptr<WriterSession>> WriterSession::Start(Repository& repo, std::string_view what) {
  std::string id = RandomHex(8);
  json j = {{"pid", getpid()}, {"host", HostName()}, {"start", static_cast<int64_t>(time(nullptr))},
            {"what", std::string(what)}};
  uint64_t epoch = 0;
  HASHFS_RETURN_IF_ERROR(repo.store().Update([&](RefTxn& t) -> Status {
    HASHFS_ASSIGN_OR_RETURN(auto v, t.Get("gc/epoch"));
    if (v) epoch = DecodeBE64(*v);
    return t.Put("sess/" + id, j.dump());
  }));
  return std::unique_ptr<WriterSession>(new WriterSession(repo, id, epoch));
}

WriterSession::~WriterSession() {
  (void)repo_.store().Update([&](RefTxn& t) -> Status {
    HASHFS_RETURN_IF_ERROR(t.Delete("pin/" + id_));
    return t.Delete("sess/" + id_);
  });
}

Status WriterSession::Pin(const Digest& commit) {
  return repo_.store().Update([&](RefTxn& t) { return t.Put("pin/" + id_, std::string(commit.AsBytes())); });
}

Status WriterSession::Unpin() {
  return repo_.store().Update([&](RefTxn& t) { return t.Delete("pin/" + id_); });
}

Result<std::vector<Digest>> Repository::PinnedCommits() {
  std::vector<Digest> out;
  HASHFS_RETURN_IF_ERROR(store_.View([&](RefTxn& t) -> Status {
    HASHFS_ASSIGN_OR_RETURN(auto kv, t.List("pin/"));
    for (const auto& [k, v] : kv) {
      HASHFS_ASSIGN_OR_RETURN(Digest d, DigestValue(v, k));
      out.push_back(d);
    }
    return Status::Ok();
  }));
  return out;
}

Result<std::vector<int64_t>> LiveSessionStarts(Repository& repo) {
  std::vector<int64_t> live;
  std::vector<std::string> dead;
  std::string host = HostName();
  HASHFS_RETURN_IF_ERROR(repo.store().View([&](RefTxn& t) -> Status {
    HASHFS_ASSIGN_OR_RETURN(auto kv, t.List("sess/"));
    for (auto& [k, v] : kv) {
      try {
        json j = json::parse(v);
        auto pid = IntField<pid_t>(j, "pid");
        // 0 and negative values would make kill() probe process groups.
        if (pid <= 0) throw std::out_of_range("'pid' is not a process id");
        bool same_host = j.at("host").get<std::string>() == host;
        bool alive = !same_host || kill(pid, 0) == 0 || errno == EPERM;
        if (alive)
          live.push_back(IntField<int64_t>(j, "start"));
        else
          dead.push_back(k);
      } catch (const std::exception&) {
        dead.push_back(k);
      }
    }
    return Status::Ok();
  }));
  if (!dead.empty()) {
    HASHFS_RETURN_IF_ERROR(repo.store().Update([&](RefTxn& t) -> Status {
      for (const auto& k : dead) {
        HASHFS_RETURN_IF_ERROR(t.Delete(k));
        HASHFS_RETURN_IF_ERROR(t.Delete("pin/" + k.substr(5)));  // the dead session's pin
      }
      return Status::Ok();
    }));
  }
  return live;
}

}  // namespace hashfs
