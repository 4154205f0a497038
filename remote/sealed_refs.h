// The published refs as they travel in a ref-log message (design.md "Messages
// on the channel" is normative).
//
//  * Format 2 (written): the refs JSON compressed as one zstd frame that
//    records its content size, cut into 1..kMaxRefsParts pieces of equal
//    size (the last may be shorter), piece i sealed as attachment
//    "refs-<seq>-<i>.bin" with aad RefsPartAad(seq, i, n). The header says n
//    ("parts"). Binding seq, i and n into the aad makes a part replayed under
//    another seq, moved, or left out fail to authenticate.
//  * Format 1 (read only): one attachment "refs-<seq>.bin" = the plain JSON
//    sealed with aad kRefsAadV1; its header has no "parts".
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "remote/remote_format.h"

namespace hashfs::remote {

inline constexpr std::string_view kRefsAadV1 = "hashfs-remote-refs-v1";
inline constexpr std::string_view kRefsAadV2 = "hashfs-remote-refs-v2";
// Largest refs JSON a reader inflates (about 3.5 million kept commits): and
// at most kMaxRefsInflation times the compressed size, so a frame cannot
// claim more memory than its own size justifies.
inline constexpr uint64_t kMaxRefsJsonSize = 256ull << 20;
inline constexpr uint64_t kMaxRefsInflation = 64;
// zstd level of the refs (hex digests compress to about half: ~38 bytes per
// kept commit instead of ~75).
inline constexpr int kRefsZstdLevel = 3;

// "hashfs-remote-refs-v2" | u64 seq | u32 part | u32 parts (big-endian).
std::string RefsPartAad(uint64_t seq, uint32_t part, uint32_t parts);
// Attachment name of part `part` of `parts`: "refs-<seq>-<part>.bin";
// format 1 (parts == 0): "refs-<seq>.bin".
std::string RefsPartName(uint64_t seq, uint32_t part, uint32_t parts);

// How many parts `compressed_size` bytes of compressed refs take when each
// sealed part is at most `part_limit` bytes and all of them `total_limit`:
// TooBig when more than kMaxRefsParts or the total would be needed.
Result<uint32_t> RefsPartCount(uint64_t compressed_size, uint64_t part_limit, uint64_t total_limit);

// The compressed refs JSON (one zstd frame with its content size).
Result<std::string> CompressRefs(const RemoteRefs& refs);
// The refs JSON of a compressed frame: Corruption unless it is exactly one
// frame whose recorded size is within the limits above and is what it holds.
Result<std::string> DecompressRefs(std::string_view frame);

// Format 2 attachments of `refs` (sealed under refs.seq), in part order.
Result<std::vector<std::string>> SealRefs(std::string_view enc_key, const RemoteRefs& refs, uint64_t part_limit,
                                          uint64_t total_limit);
// Opens one attachment: part `part` of `parts` of the refs of `seq` (format
// 1: parts == 0, the plain JSON). Corruption when it does not authenticate.
Result<std::string> OpenRefsPart(std::string_view enc_key, uint64_t seq, uint32_t part, uint32_t parts,
                                 std::string_view sealed);
// Opens the attachments of a ref-log message whose header says `seq` and
// `parts` (0: format 1), in part order. Corruption when a part does not
// authenticate (damaged, or the channel was tampered with), when the count
// is not `parts`, when the refs do not decode, or when their own seq is not
// `seq` (an older format-1 refs replayed under a newer number).
Result<RemoteRefs> OpenRefs(std::string_view enc_key, uint64_t seq, uint32_t parts,
                            const std::vector<std::string>& sealed);

}  // namespace hashfs::remote
