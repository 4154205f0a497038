// What the remote keeps on the channel besides packs, and the remote's local
// configuration (design.md "Remote format" is normative):
//
//  * Manifest: a pinned message on the first channel whose content is
//      "hashfs:manifest:1 " + JSON {"format":1, "kdf":{"alg":"scrypt","n","r","p","salt"(b64)},
//                                    "key": b64(wrapped master key), "channels":["id",...],
//                                    "refs": {"channel":"id","message":"id","seq":N}}
//  * Pack messages: content "hashfs:packs:1", 1..10 attachments "<pack id hex>.hfp".
//  * Ref-log messages (append-only): content "hashfs:refs:1 " + JSON
//      {"seq":N, "gen":G, "kdf":{...}, "key":..., "parts":P} (the key is
//      repeated so a lost pin loses nothing) and P attachments holding the
//      sealed, compressed RemoteRefs JSON (remote/sealed_refs.h; no "parts":
//      the format-1 single attachment).
// Pure functions; thread-safe.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "remote/crypto.h"
#include "tree/repository.h"

namespace hashfs::remote {

inline constexpr std::string_view kManifestPrefix = "hashfs:manifest:1 ";
inline constexpr std::string_view kPacksContent = "hashfs:packs:1";
inline constexpr std::string_view kRefsPrefix = "hashfs:refs:1 ";
inline constexpr std::string_view kPackSuffix = ".hfp";
inline constexpr uint32_t kMaxRefsParts = 10;  // refs attachments per ref-log message (Discord's files per message)

// The remote's local configuration (ref table remote/NAME/config). No secrets.
struct RemoteConfig {
  std::string name;
  std::string kind = "discord";
  std::vector<uint64_t> channels;
  std::string api_url = "https://discord.com/api/v10";
  uint64_t attachment_limit = 10ull << 20;  // per file (pack), framing included
  uint64_t request_limit = 25ull << 20;     // per message create
  std::string ToJson() const;
  static Result<RemoteConfig> FromJson(std::string_view j);
};

struct Manifest {
  int format = 1;
  ScryptParams kdf;
  std::string wrapped_key;
  std::vector<uint64_t> channels;
  uint64_t refs_channel = 0, refs_message = 0, refs_seq = 0;
  std::string Content() const;
  static Result<Manifest> Parse(std::string_view content);  // NotFound if not a manifest
};

struct RemoteVolume {
  Digest head;
  uint64_t head_seq = 0;
  std::vector<std::pair<uint64_t, Digest>> history;  // (seq, commit), ascending seq
};

// The published refs: one snapshot of everything the remote keeps.
struct RemoteRefs {
  uint64_t seq = 0;
  uint64_t gc_generation = 0;  // bumped by every remote gc that deleted packs
  int64_t time_ns = 0;
  RepoConfig repo;  // chunking and compression of the pushing store (clone reuses them)
  std::map<std::string, RemoteVolume> volumes;
  std::map<std::string, Digest> snapshots;
  std::string ToJson() const;
  static Result<RemoteRefs> FromJson(std::string_view j);
  // Every commit a history entry or a snapshot names (what remote gc keeps).
  std::vector<Digest> KeptCommits() const;
};

// The local index's pointer to the newest ref-log message seen (ref table
// remote/NAME/refsptr, JSON); a value this did not write is Corruption.
struct RefsPointer {
  uint64_t channel = 0, message = 0, seq = 0, gen = 0;
};
std::string EncodeRefsPointer(const RefsPointer& p);
Result<RefsPointer> DecodeRefsPointer(std::string_view v);

// Ref-log message content ("hashfs:refs:1 {...}") and its parse.
struct RefLogHeader {
  uint64_t seq = 0, gc_generation = 0;
  uint32_t parts = 0;  // refs attachments, 1..kMaxRefsParts; 0: format 1 (one, uncompressed)
  ScryptParams kdf;
  std::string wrapped_key;
  std::string Content() const;
  static Result<RefLogHeader> Parse(std::string_view content);  // NotFound if not a ref-log message
};

}  // namespace hashfs::remote
