#include "remote/remote_index.h"

#include <cstring>
#include <set>

#include "cas/little_endian.h"
#include "remote/crypto.h"

namespace hashfs::remote {

std::string EncodeLocation(const ObjectLocation& l) {
  std::string v = l.pack_id;
  AppendLE(&v, l.offset, 8);
  AppendLE(&v, l.length, 4);
  return v;
}

Result<ObjectLocation> DecodeLocation(std::string_view v) {
  if (v.size() != kPackIdSize + 12) return Status::Corruption("remote index locator malformed");
  ObjectLocation l;
  l.pack_id = v.substr(0, kPackIdSize);
  l.offset = LoadLE(v, kPackIdSize, 8);
  l.length = static_cast<uint32_t>(LoadLE(v, kPackIdSize + 8, 4));
  return l;
}

Result<uint64_t> DecodeDecimal(std::string_view v) {
  auto id = ParseDecimalId(v);
  if (!id) return Status::Corruption("remote index value '" + std::string(v.substr(0, 40)) + "' is not a number");
  return *id;
}

std::string EncodePackRecord(const PackRecord& r) {
  std::string v;
  AppendLE(&v, r.loc.channel, 8);
  AppendLE(&v, r.loc.message, 8);
  AppendLE(&v, r.loc.attachment, 8);
  AppendLE(&v, r.loc.size, 8);
  AppendLE(&v, r.index.entries.size(), 4);
  for (const auto& e : r.index.entries) {
    v.append(e.keyed_id.AsBytes());
    v.append(e.digest.AsBytes());
    AppendLE(&v, e.offset, 8);
    AppendLE(&v, e.length, 4);
    v.push_back(static_cast<char>(KindByte(e)));
  }
  return v;
}

Result<PackRecord> DecodePackRecord(std::string_view pack_id, std::string_view v) {
  if (v.size() < 36) return Status::Corruption("remote index pack record too short");
  PackRecord r;
  r.loc.channel = LoadLE(v, 0, 8);
  r.loc.message = LoadLE(v, 8, 8);
  r.loc.attachment = LoadLE(v, 16, 8);
  r.loc.size = LoadLE(v, 24, 8);
  uint64_t n = LoadLE(v, 32, 4);
  if ((v.size() - 36) != n * kIndexRecordSize) return Status::Corruption("remote index pack record size mismatch");
  r.index.pack_id = std::string(pack_id);
  r.index.pack_size = r.loc.size;
  for (uint64_t i = 0; i < n; i++) {
    size_t at = 36 + i * kIndexRecordSize;
    PackEntry e;
    std::memcpy(e.keyed_id.bytes.data(), v.data() + at, 32);
    std::memcpy(e.digest.bytes.data(), v.data() + at + 32, 32);
    e.offset = LoadLE(v, at + 64, 8);
    e.length = static_cast<uint32_t>(LoadLE(v, at + 72, 4));
    if (!SetKindByte(&e, static_cast<uint8_t>(v[at + 76])).ok())
      return Status::Corruption("remote index pack record has an unknown kind");
    r.index.entries.push_back(e);
  }
  // The records came from the pack's trailer: the same limits hold.
  if (Status s = CheckPackEntries(r.index.entries, r.loc.size); !s.ok())
    return s.WithContext("remote index pack record");
  return r;
}

Status RemoteIndex::AddPacks(const std::vector<PackRecord>& packs) {
  if (packs.empty()) return Status::Ok();
  return store_.Update([&](RefTxn& t) -> Status {
    for (const auto& p : packs) {
      HASHFS_RETURN_IF_ERROR(t.Put(prefix_ + "p/" + HexEncode(p.index.pack_id), EncodePackRecord(p)));
      for (const auto& e : p.index.entries)
        HASHFS_RETURN_IF_ERROR(
            t.Put(prefix_ + "o/" + e.keyed_id.Hex(), EncodeLocation({p.index.pack_id, e.offset, e.length})));
    }
    return Status::Ok();
  });
}

Status RemoteIndex::RemovePacks(const std::vector<std::string>& pack_ids) {
  if (pack_ids.empty()) return Status::Ok();
  return store_.Update([&](RefTxn& t) -> Status {
    for (const auto& id : pack_ids) {
      std::string pk = prefix_ + "p/" + HexEncode(id);
      HASHFS_ASSIGN_OR_RETURN(auto v, t.Get(pk));
      if (!v) continue;
      HASHFS_ASSIGN_OR_RETURN(PackRecord r, DecodePackRecord(id, *v));
      for (const auto& e : r.index.entries) {
        std::string ok = prefix_ + "o/" + e.keyed_id.Hex();
        HASHFS_ASSIGN_OR_RETURN(auto loc, t.Get(ok));
        if (loc && loc->size() >= kPackIdSize && loc->substr(0, kPackIdSize) == id) HASHFS_RETURN_IF_ERROR(t.Delete(ok));
      }
      HASHFS_RETURN_IF_ERROR(t.Delete(pk));
    }
    return Status::Ok();
  });
}

Result<std::optional<ObjectLocation>> RemoteIndex::Find(const Digest& keyed_id) {
  std::optional<ObjectLocation> out;
  HASHFS_RETURN_IF_ERROR(store_.View([&](RefTxn& t) -> Status {
    HASHFS_ASSIGN_OR_RETURN(auto v, t.Get(prefix_ + "o/" + keyed_id.Hex()));
    if (!v) return Status::Ok();
    HASHFS_ASSIGN_OR_RETURN(out, DecodeLocation(*v));
    return Status::Ok();
  }));
  return out;
}

Result<std::optional<PackRecord>> RemoteIndex::GetPack(const std::string& pack_id) {
  std::optional<PackRecord> out;
  HASHFS_RETURN_IF_ERROR(store_.View([&](RefTxn& t) -> Status {
    HASHFS_ASSIGN_OR_RETURN(auto v, t.Get(prefix_ + "p/" + HexEncode(pack_id)));
    if (!v) return Status::Ok();
    HASHFS_ASSIGN_OR_RETURN(PackRecord r, DecodePackRecord(pack_id, *v));
    out = std::move(r);
    return Status::Ok();
  }));
  return out;
}

Result<bool> RemoteIndex::HasPack(const std::string& pack_id) {
  HASHFS_ASSIGN_OR_RETURN(auto v, Get("p/" + HexEncode(pack_id)));
  return v.has_value();
}

Result<std::vector<PackRecord>> RemoteIndex::AllPacks() {
  std::vector<PackRecord> out;
  HASHFS_RETURN_IF_ERROR(store_.View([&](RefTxn& t) -> Status {
    out.clear();
    HASHFS_ASSIGN_OR_RETURN(auto kv, t.List(prefix_ + "p/"));
    for (const auto& [k, v] : kv) {
      HASHFS_ASSIGN_OR_RETURN(std::string id, HexDecode(std::string_view(k).substr(prefix_.size() + 2)));
      HASHFS_ASSIGN_OR_RETURN(PackRecord r, DecodePackRecord(id, v));
      out.push_back(std::move(r));
    }
    return Status::Ok();
  }));
  return out;
}

Result<std::unordered_set<Digest, DigestHash>> RemoteIndex::AllKeyedIds() {
  std::unordered_set<Digest, DigestHash> out;
  HASHFS_RETURN_IF_ERROR(store_.View([&](RefTxn& t) -> Status {
    out.clear();
    HASHFS_ASSIGN_OR_RETURN(auto kv, t.List(prefix_ + "o/"));
    out.reserve(kv.size());
    for (const auto& kvp : kv) {
      HASHFS_ASSIGN_OR_RETURN(Digest d, Digest::FromHex(std::string_view(kvp.first).substr(prefix_.size() + 2)));
      out.insert(d);
    }
    return Status::Ok();
  }));
  return out;
}

Status RemoteIndex::ClearObjects() {
  return store_.Update([&](RefTxn& t) -> Status {
    for (const char* sub : {"o/", "p/", "sync/"}) {
      HASHFS_ASSIGN_OR_RETURN(auto kv, t.List(prefix_ + sub));
      for (const auto& kvp : kv) HASHFS_RETURN_IF_ERROR(t.Delete(kvp.first));
    }
    return Status::Ok();
  });
}

Result<uint64_t> RemoteIndex::Watermark(uint64_t channel) {
  HASHFS_ASSIGN_OR_RETURN(auto v, Get("sync/" + std::to_string(channel)));
  if (!v) return 0;
  return DecodeDecimal(*v);
}

Status RemoteIndex::SetWatermark(uint64_t channel, uint64_t message) {
  return Put("sync/" + std::to_string(channel), std::to_string(message));
}

Result<std::optional<std::string>> RemoteIndex::Get(std::string_view key) {
  std::optional<std::string> out;
  HASHFS_RETURN_IF_ERROR(store_.View([&](RefTxn& t) -> Status {
    HASHFS_ASSIGN_OR_RETURN(out, t.Get(prefix_ + std::string(key)));
    return Status::Ok();
  }));
  return out;
}

Status RemoteIndex::Put(std::string_view key, std::string_view value) {
  return store_.Update([&](RefTxn& t) { return t.Put(prefix_ + std::string(key), value); });
}

Status RemoteIndex::Delete(std::string_view key) {
  return store_.Update([&](RefTxn& t) { return t.Delete(prefix_ + std::string(key)); });
}

Result<std::vector<std::string>> RemoteIndex::Names(ObjectStore& store) {
  std::vector<std::string> out;
  HASHFS_RETURN_IF_ERROR(store.View([&](RefTxn& t) -> Status {
    out.clear();
    HASHFS_ASSIGN_OR_RETURN(auto kv, t.List("remote/"));
    for (const auto& kvp : kv) {
      std::string_view k = kvp.first;
      k.remove_prefix(7);
      auto slash = k.find('/');
      if (slash != std::string_view::npos && k.substr(slash) == "/config") out.emplace_back(k.substr(0, slash));
    }
    return Status::Ok();
  }));
  return out;
}

}  // namespace hashfs::remote
