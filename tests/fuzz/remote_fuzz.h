// Shared helpers for the libFuzzer targets of remote/ (pack, remote_format,
// crypto, discord_api) and their seed generator: fixed keys (so a target can
// seal the fuzz input and reach what follows decryption), an independent
// AES-256-GCM Seal/Unseal in design.md's layout written straight on OpenSSL's
// EVP API (a reference, not remote/crypto.cc), deterministic nonces (seeds
// must not change when regenerated), a pack assembler from a plaintext plan,
// the documented limits of decoded values, and value equality for the
// remote's structs (which define none).
#pragma once

#include <openssl/evp.h>

#include <algorithm>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "cas/digest.h"
#include "cas/object_codec.h"
#include "remote/crypto.h"
#include "remote/pack.h"
#include "remote/sealed_refs.h"
#include "remote/remote_format.h"
#include "remote/remote_index.h"
#include "tests/fuzz/fuzz_util.h"

namespace hashfs::fuzz {

// ---------------------------------------------------------------------------
// Input reading

// Reads fields off the front of a fuzz input; reads past the end give zeros /
// short strings (the fuzzer need not get lengths right to make progress).
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}
  uint64_t LE(int bytes) {
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= static_cast<uint64_t>(U8()) << (8 * i);
    return v;
  }
  uint8_t U8() {
    if (in_.empty()) return 0;
    auto c = static_cast<uint8_t>(in_[0]);
    in_.remove_prefix(1);
    return c;
  }
  std::string_view Bytes(size_t n) {
    n = std::min(n, in_.size());
    std::string_view out = in_.substr(0, n);
    in_.remove_prefix(n);
    return out;
  }
  std::string_view Rest() { return Bytes(in_.size()); }
  size_t left() const { return in_.size(); }

 private:
  std::string_view in_;
};

inline void PutLE(std::string* s, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++) s->push_back(static_cast<char>(v >> (8 * i)));
}
inline uint64_t GetLE(std::string_view s, size_t pos, int bytes) {
  uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; i--) v = v << 8 | static_cast<uint8_t>(s[pos + static_cast<size_t>(i)]);
  return v;
}

// A refusal must be a clean Status with a message, with one of `codes`.
inline void CheckRefusalIn(const Status& s, std::initializer_list<Status::Code> codes) {
  FUZZ_CHECK(!s.ok());
  FUZZ_CHECK_MSG(std::find(codes.begin(), codes.end(), s.code()) != codes.end(), s.ToString());
  FUZZ_CHECK(!s.message().empty());
}

template <typename T>
T MustOk(Result<T> r) {
  FUZZ_CHECK_MSG(r.ok(), r.status().ToString());
  return std::move(r).value();
}

// ---------------------------------------------------------------------------
// Keys

inline std::string Pattern(size_t n, unsigned mul, unsigned add) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; i++) s[i] = static_cast<char>((i * mul + add) & 0xff);
  return s;
}
// The master key every remote target uses, and a second one that must open nothing.
inline const remote::MasterKey& FixedKey() {
  static const remote::MasterKey k = MustOk(remote::MasterKey::FromBytes(Pattern(remote::MasterKey::kSize, 37, 11)));
  return k;
}
inline const remote::MasterKey& OtherKey() {
  static const remote::MasterKey k = MustOk(remote::MasterKey::FromBytes(Pattern(remote::MasterKey::kSize, 53, 7)));
  return k;
}
// A fixed passphrase key (what DeriveKey would give) for wrapped-key records.
inline std::string FixedKek() { return Pattern(32, 101, 3); }

// ---------------------------------------------------------------------------
// Reference AES-256-GCM in design.md's layout: nonce (12) | ciphertext | tag (16).

struct EvpFree {
  void operator()(EVP_CIPHER_CTX* c) const { EVP_CIPHER_CTX_free(c); }
};

inline const unsigned char* U(std::string_view s) { return reinterpret_cast<const unsigned char*>(s.data()); }

inline std::string RefSeal(std::string_view key, std::string_view nonce, std::string_view pt, std::string_view aad) {
  FUZZ_CHECK(key.size() == 32 && nonce.size() == 12);
  std::unique_ptr<EVP_CIPHER_CTX, EvpFree> ctx(EVP_CIPHER_CTX_new());
  std::string out(nonce);
  out.resize(12 + pt.size() + 16);
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  int len = 0;
  FUZZ_CHECK(EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1);
  FUZZ_CHECK(EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, 12, nullptr) == 1);
  FUZZ_CHECK(EVP_EncryptInit_ex(ctx.get(), nullptr, nullptr, U(key), U(nonce)) == 1);
  if (!aad.empty()) FUZZ_CHECK(EVP_EncryptUpdate(ctx.get(), nullptr, &len, U(aad), static_cast<int>(aad.size())) == 1);
  if (!pt.empty()) FUZZ_CHECK(EVP_EncryptUpdate(ctx.get(), o + 12, &len, U(pt), static_cast<int>(pt.size())) == 1);
  FUZZ_CHECK(EVP_EncryptFinal_ex(ctx.get(), o + 12 + pt.size(), &len) == 1);
  FUZZ_CHECK(EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, 16, o + 12 + pt.size()) == 1);
  return out;
}

inline std::optional<std::string> RefUnseal(std::string_view key, std::string_view sealed, std::string_view aad) {
  if (key.size() != 32 || sealed.size() < 28) return std::nullopt;
  size_t n = sealed.size() - 28;
  std::unique_ptr<EVP_CIPHER_CTX, EvpFree> ctx(EVP_CIPHER_CTX_new());
  std::string out(n, '\0');
  std::string tag(sealed.substr(12 + n));
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  int len = 0;
  bool ok = EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, nullptr, nullptr) == 1 &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_IVLEN, 12, nullptr) == 1 &&
            EVP_DecryptInit_ex(ctx.get(), nullptr, nullptr, U(key), U(sealed.substr(0, 12))) == 1 &&
            (aad.empty() || EVP_DecryptUpdate(ctx.get(), nullptr, &len, U(aad), static_cast<int>(aad.size())) == 1) &&
            (n == 0 || EVP_DecryptUpdate(ctx.get(), o, &len, U(sealed.substr(12, n)), static_cast<int>(n)) == 1) &&
            EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, 16, tag.data()) == 1 &&
            EVP_DecryptFinal_ex(ctx.get(), o + n, &len) == 1;
  if (!ok) return std::nullopt;
  return out;
}

// A deterministic nonce for test vectors (never reused with different data:
// it is derived from the data). Real sealing uses random nonces.
inline std::string DetNonce(std::string_view pt, std::string_view aad) {
  std::string m = "fuzz-nonce|" + std::string(aad) + "|" + std::string(pt);
  return std::string(Sha256Of(m).AsBytes().substr(0, 12));
}
inline std::string DetSeal(std::string_view key, std::string_view pt, std::string_view aad) {
  return RefSeal(key, DetNonce(pt, aad), pt, aad);
}

// ---------------------------------------------------------------------------
// Packs (pack.h layout, rebuilt here from design.md)

inline std::string EntryAad(std::string_view pack_id, const Digest& keyed) {
  return "hfe1" + std::string(pack_id) + std::string(keyed.AsBytes());
}
inline std::string IndexAad(std::string_view pack_id) { return "hfi1" + std::string(pack_id); }

// The record's kind byte per design.md: 0/1 an object of that kind, 2 a
// split descriptor, 3 a piece.
inline uint8_t ModelKindByte(const remote::PackEntry& e) {
  if (e.type == remote::EntryType::kSplit) return 2;
  if (e.type == remote::EntryType::kPiece) return 3;
  return static_cast<uint8_t>(e.kind);
}
inline void ModelSetKindByte(remote::PackEntry* e, uint8_t b) {
  e->type = b == 2 ? remote::EntryType::kSplit : b == 3 ? remote::EntryType::kPiece : remote::EntryType::kObject;
  e->kind = b == 1 ? ObjectKind::kMeta : ObjectKind::kData;
}

inline std::string EncodeIndexRecord(const remote::PackEntry& e) {
  std::string s(e.keyed_id.AsBytes());
  s.append(e.digest.AsBytes());
  PutLE(&s, e.offset, 8);
  PutLE(&s, e.length, 4);
  s.push_back(static_cast<char>(ModelKindByte(e)));
  return s;
}
// The plaintext of a pack index: u32 version 1 | u32 count | records.
inline std::string EncodeIndexPlain(const std::vector<remote::PackEntry>& es) {
  std::string s;
  PutLE(&s, remote::kPackIndexVersion, 4);
  PutLE(&s, es.size(), 4);
  for (const auto& e : es) s += EncodeIndexRecord(e);
  return s;
}

// A pack as plaintext: its id, the frames (each sealed under the keyed id
// `aad_ids[i]`) and the index plaintext (sealed as is).
struct PackPlan {
  std::string pack_id;                 // 16 bytes
  std::vector<std::string> frames;
  std::vector<Digest> aad_ids;         // one per frame
  std::string index_plain;
};

struct Placed {
  uint64_t offset = 0;
  uint32_t length = 0;
};

// Builds the pack bytes (deterministic nonces) and where each entry went.
inline std::string AssemblePack(const remote::MasterKey& key, const PackPlan& plan, std::vector<Placed>* placed) {
  std::string pack(remote::kPackMagic);
  pack += plan.pack_id;
  placed->clear();
  for (size_t i = 0; i < plan.frames.size(); i++) {
    std::string sealed = DetSeal(key.enc_key(), plan.frames[i], EntryAad(plan.pack_id, plan.aad_ids[i]));
    placed->push_back({pack.size(), static_cast<uint32_t>(sealed.size())});
    pack += sealed;
  }
  std::string idx = DetSeal(key.enc_key(), plan.index_plain, IndexAad(plan.pack_id));
  pack += idx;
  pack += plan.pack_id;
  PutLE(&pack, idx.size(), 4);
  pack += remote::kPackEndMagic;
  return pack;
}

// The documented limits of a decoded pack index for a pack of `pack_size`
// bytes whose index holds `count` records (design.md "Packs"): entries in
// increasing offset order, non-overlapping, each at least a sealed empty
// stored frame (28 + 18 bytes), between byte 24 and the sealed index (which
// with the footer takes 28 + 8 + 77 x count + 28 bytes), kinds 0..3, keyed ids
// unique.
inline void CheckIndexLimits(const std::vector<remote::PackEntry>& es, uint64_t pack_size) {
  const uint64_t trailer = remote::kSealOverhead + 8 + es.size() * remote::kIndexRecordSize + remote::kPackFooterSize;
  FUZZ_CHECK(pack_size >= remote::kPackHeaderSize + trailer);
  const uint64_t region_end = pack_size - trailer;
  uint64_t next = remote::kPackHeaderSize;
  std::set<Digest> seen;
  for (const auto& e : es) {
    FUZZ_CHECK(static_cast<uint8_t>(e.kind) <= 1);
    FUZZ_CHECK(e.type == remote::EntryType::kObject || e.kind == ObjectKind::kData);
    FUZZ_CHECK(e.offset >= next);
    FUZZ_CHECK(e.length >= remote::kSealOverhead + kStoredHeaderSize);
    FUZZ_CHECK(e.offset <= region_end && e.length <= region_end - e.offset);
    FUZZ_CHECK(seen.insert(e.keyed_id).second);
    next = e.offset + e.length;
  }
}

inline bool SameEntry(const remote::PackEntry& a, const remote::PackEntry& b) {
  return a.keyed_id == b.keyed_id && a.digest == b.digest && a.offset == b.offset && a.length == b.length &&
         a.kind == b.kind && a.type == b.type;
}
inline bool SameEntries(const std::vector<remote::PackEntry>& a, const std::vector<remote::PackEntry>& b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), SameEntry);
}

// ---------------------------------------------------------------------------
// Remote formats: limits and equality

inline bool IsCanonicalDecimal(std::string_view s) {
  if (s.empty() || s.size() > 20) return false;
  if (s.size() > 1 && s[0] == '0') return false;
  for (char c : s)
    if (c < '0' || c > '9') return false;
  return s.size() < 20 || s <= "18446744073709551615";
}

inline bool Same(const remote::ScryptParams& a, const remote::ScryptParams& b) {
  return a.n == b.n && a.r == b.r && a.p == b.p && a.salt == b.salt;
}
inline bool Same(const remote::Manifest& a, const remote::Manifest& b) {
  return a.format == b.format && Same(a.kdf, b.kdf) && a.wrapped_key == b.wrapped_key && a.channels == b.channels &&
         a.refs_channel == b.refs_channel && a.refs_message == b.refs_message && a.refs_seq == b.refs_seq;
}
inline bool Same(const remote::RefLogHeader& a, const remote::RefLogHeader& b) {
  return a.seq == b.seq && a.gc_generation == b.gc_generation && a.parts == b.parts && Same(a.kdf, b.kdf) &&
         a.wrapped_key == b.wrapped_key;
}
inline bool Same(const remote::RemoteVolume& a, const remote::RemoteVolume& b) {
  return a.head == b.head && a.head_seq == b.head_seq && a.history == b.history;
}
inline bool Same(const remote::RemoteRefs& a, const remote::RemoteRefs& b) {
  if (a.seq != b.seq || a.gc_generation != b.gc_generation || a.time_ns != b.time_ns) return false;
  if (a.repo.chunking.min_size != b.repo.chunking.min_size || a.repo.chunking.avg_size != b.repo.chunking.avg_size ||
      a.repo.chunking.max_size != b.repo.chunking.max_size || a.repo.zstd_level != b.repo.zstd_level)
    return false;
  if (a.snapshots != b.snapshots || a.volumes.size() != b.volumes.size()) return false;
  for (const auto& [name, v] : a.volumes) {
    auto it = b.volumes.find(name);
    if (it == b.volumes.end() || !Same(v, it->second)) return false;
  }
  return true;
}
inline bool Same(const remote::RemoteConfig& a, const remote::RemoteConfig& b) {
  return a.name == b.name && a.kind == b.kind && a.channels == b.channels && a.api_url == b.api_url &&
         a.attachment_limit == b.attachment_limit && a.request_limit == b.request_limit;
}

// scrypt needs about 128 N r bytes: the most a hostile manifest may make a
// client allocate (crypto.h documents 1 GiB).
inline constexpr uint64_t kMaxKdfMemory = 1ull << 30;

// Documented limits of the KDF parameters a manifest or ref-log header
// carries, once CheckScryptParams accepted them (crypto.h): the ranges, and
// memory within kMaxKdfMemory.
inline void CheckAcceptedKdf(const remote::ScryptParams& p) {
  Status s = remote::CheckScryptParams(p);
  if (!s.ok()) {
    CheckRefusalIn(s, {Status::Code::kInvalidArgument});
    return;
  }
  FUZZ_CHECK(p.n >= (1u << 10) && p.n <= (1u << 22) && (p.n & (p.n - 1)) == 0);
  FUZZ_CHECK(p.r >= 1 && p.r <= 32 && p.p >= 1 && p.p <= 16);
  FUZZ_CHECK(!p.salt.empty() && p.salt.size() <= 64);
  FUZZ_CHECK_MSG(128 * p.n * p.r <= kMaxKdfMemory, "scrypt parameters accepted that need " +
                                                                  std::to_string((128 * p.n * p.r) >> 20) + " MiB");
}

// The published refs' documented limits (remote_format.h, design.md): valid
// names, each volume's history non-empty with strictly ascending seqs ending
// at its head, and the chunking / compression a clone would reuse valid.
inline void CheckRemoteRefs(const remote::RemoteRefs& r) {
  FUZZ_CHECK(r.repo.chunking.Validate().ok());
  FUZZ_CHECK(r.repo.zstd_level >= 0 && r.repo.zstd_level <= 19);
  std::set<Digest> kept;
  for (const auto& [name, v] : r.volumes) {
    FUZZ_CHECK(ValidateName(name).ok());
    FUZZ_CHECK(!v.history.empty());
    for (size_t i = 1; i < v.history.size(); i++) FUZZ_CHECK(v.history[i - 1].first < v.history[i].first);
    FUZZ_CHECK(v.history.back().first == v.head_seq && v.history.back().second == v.head);
    kept.insert(v.head);
    for (const auto& h : v.history) kept.insert(h.second);
  }
  for (const auto& [name, d] : r.snapshots) {
    FUZZ_CHECK(ValidateName(name).ok());
    kept.insert(d);
  }
  std::vector<Digest> k = r.KeptCommits();
  FUZZ_CHECK(std::vector<Digest>(kept.begin(), kept.end()) == k);  // sorted, unique, exactly these
}

// decode(encode(x)) == x and the encoding is stable, for a parsed refs.
inline void CheckRefsRoundTrip(const remote::RemoteRefs& r) {
  std::string j = r.ToJson();
  auto again = remote::RemoteRefs::FromJson(j);
  FUZZ_CHECK_MSG(again.ok(), again.status().ToString());
  FUZZ_CHECK(Same(*again, r));
  FUZZ_CHECK(again->ToJson() == j);
}

}  // namespace hashfs::fuzz
