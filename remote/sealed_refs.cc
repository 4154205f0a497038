#include "remote/sealed_refs.h"

#include <fmt/format.h>
#include <zstd.h>

#include <algorithm>
#include <memory>

#include "remote/crypto.h"

namespace hashfs::remote {
namespace {

void PutBigEndian(std::string& out, uint64_t v, int bytes) {
  for (int i = bytes - 1; i >= 0; i--) out.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}

struct DCtxDeleter {
  void operator()(ZSTD_DCtx* d) const { ZSTD_freeDCtx(d); }
};

}  // namespace

std::string RefsPartAad(uint64_t seq, uint32_t part, uint32_t parts) {
  std::string aad(kRefsAadV2);
  PutBigEndian(aad, seq, 8);
  PutBigEndian(aad, part, 4);
  PutBigEndian(aad, parts, 4);
  return aad;
}

std::string RefsPartName(uint64_t seq, uint32_t part, uint32_t parts) {
  return parts == 0 ? fmt::format("refs-{}.bin", seq) : fmt::format("refs-{}-{}.bin", seq, part);
}

Result<uint32_t> RefsPartCount(uint64_t compressed_size, uint64_t part_limit, uint64_t total_limit) {
  if (part_limit <= kSealOverhead) return Status::InvalidArgument("attachment limit too small for the refs");
  uint64_t n = std::max<uint64_t>(1, (compressed_size + part_limit - kSealOverhead - 1) / (part_limit - kSealOverhead));
  if (n > kMaxRefsParts || compressed_size + n * kSealOverhead > total_limit)
    return Status::Make(Status::Code::kTooBig,
                        fmt::format("{} bytes of compressed refs do not fit in {} attachments of at most {} bytes "
                                    "and {} bytes in all",
                                    compressed_size, kMaxRefsParts, part_limit, total_limit));
  return static_cast<uint32_t>(n);
}

Result<std::string> CompressRefs(const RemoteRefs& refs) {
  std::string json = refs.ToJson();
  std::string out(ZSTD_compressBound(json.size()), '\0');
  // ZSTD_compress records the content size in the frame header.
  size_t n = ZSTD_compress(out.data(), out.size(), json.data(), json.size(), kRefsZstdLevel);
  if (ZSTD_isError(n)) return Status::IOError(std::string("compressing the refs: ") + ZSTD_getErrorName(n));
  out.resize(n);
  return out;
}

Result<std::string> DecompressRefs(std::string_view frame) {
  size_t frame_size = ZSTD_findFrameCompressedSize(frame.data(), frame.size());
  if (ZSTD_isError(frame_size) || frame_size != frame.size())
    return Status::Corruption("remote refs are not exactly one zstd frame");
  unsigned long long size = ZSTD_getFrameContentSize(frame.data(), frame.size());
  if (size == ZSTD_CONTENTSIZE_ERROR || size == ZSTD_CONTENTSIZE_UNKNOWN)
    return Status::Corruption("remote refs' zstd frame does not record its size");
  if (size > kMaxRefsJsonSize || size > kMaxRefsInflation * frame.size() + 4096)
    return Status::Corruption(fmt::format("remote refs claim {} bytes from a {}-byte frame", size, frame.size()));
  std::unique_ptr<ZSTD_DCtx, DCtxDeleter> dctx(ZSTD_createDCtx());
  if (!dctx) return Status::IOError("zstd: out of memory");
  std::string json(size, '\0');
  size_t n = ZSTD_decompressDCtx(dctx.get(), json.data(), json.size(), frame.data(), frame.size());
  if (ZSTD_isError(n) || n != size) return Status::Corruption("remote refs' zstd frame does not decompress");
  return json;
}

Result<std::vector<std::string>> SealRefs(std::string_view enc_key, const RemoteRefs& refs, uint64_t part_limit,
                                          uint64_t total_limit) {
  HASHFS_ASSIGN_OR_RETURN(std::string z, CompressRefs(refs));
  HASHFS_ASSIGN_OR_RETURN(uint32_t n, RefsPartCount(z.size(), part_limit, total_limit));
  const size_t piece = (z.size() + n - 1) / n;
  std::vector<std::string> out;
  for (uint32_t i = 0; i < n; i++) {
    std::string_view p = std::string_view(z).substr(std::min(z.size(), i * piece), piece);
    out.push_back(Seal(enc_key, p, RefsPartAad(refs.seq, i, n)));
  }
  return out;
}

Result<std::string> OpenRefsPart(std::string_view enc_key, uint64_t seq, uint32_t part, uint32_t parts,
                                 std::string_view sealed) {
  auto plain = Unseal(enc_key, sealed, parts == 0 ? std::string(kRefsAadV1) : RefsPartAad(seq, part, parts));
  if (plain.ok()) return plain;
  if (parts == 0)
    return Status::Corruption(fmt::format(
        "the refs of seq {} do not authenticate: damaged in transit, or the channel was tampered with", seq));
  return Status::Corruption(
      fmt::format("part {} of {} of the refs of seq {} does not authenticate: damaged in transit, or the channel "
                  "was tampered with (a part replayed, moved or left out)",
                  part, parts, seq));
}

Result<RemoteRefs> OpenRefs(std::string_view enc_key, uint64_t seq, uint32_t parts,
                            const std::vector<std::string>& sealed) {
  const uint32_t want = parts == 0 ? 1 : parts;
  if (parts > kMaxRefsParts || sealed.size() != want)
    return Status::Corruption(fmt::format("ref-log message has {} refs attachments, its header says {}",
                                          sealed.size(), want));
  std::string json;
  if (parts == 0) {
    HASHFS_ASSIGN_OR_RETURN(json, OpenRefsPart(enc_key, seq, 0, 0, sealed[0]));
  } else {
    std::string z;
    for (uint32_t i = 0; i < parts; i++) {
      HASHFS_ASSIGN_OR_RETURN(std::string piece, OpenRefsPart(enc_key, seq, i, parts, sealed[i]));
      z += piece;
    }
    HASHFS_ASSIGN_OR_RETURN(json, DecompressRefs(z));
  }
  HASHFS_ASSIGN_OR_RETURN(RemoteRefs r, RemoteRefs::FromJson(json));
  // The message's plaintext header chose these attachments; only the sealed
  // refs are authentic. Format 1 does not bind seq into its aad, so an older
  // refs attachment re-posted under a newer number shows here.
  if (r.seq != seq)
    return Status::Corruption(
        fmt::format("a ref-log message claims seq {} but its sealed refs are seq {}: the channel was tampered with "
                    "(a replayed, older state); refusing it",
                    seq, r.seq));
  return r;
}

}  // namespace hashfs::remote
