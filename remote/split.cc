#include "remote/split.h"

#include <algorithm>
#include <cstring>

#include "cas/little_endian.h"

namespace hashfs::remote {

std::vector<std::string_view> CutFrame(std::string_view frame, uint64_t max_piece) {
  const uint64_t size = frame.size();
  const uint64_t n = std::max<uint64_t>(2, (size + max_piece - 1) / max_piece);
  std::vector<std::string_view> out;
  out.reserve(n);
  uint64_t at = 0;
  for (uint64_t i = 0; i < n; i++) {
    uint64_t len = size / n + (i < size % n ? 1 : 0);
    out.push_back(frame.substr(at, len));
    at += len;
  }
  return out;
}

SplitDescriptor DescribeSplit(ObjectKind kind, const std::vector<std::string_view>& pieces) {
  SplitDescriptor d;
  d.kind = kind;
  for (auto p : pieces) {
    d.pieces.push_back(SplitPiece{Sha256Of(p), static_cast<uint32_t>(p.size())});
    d.frame_size += p.size();
  }
  return d;
}

std::string EncodeSplitDescriptor(const SplitDescriptor& d) {
  std::string v(kSplitMagic);
  v.push_back(static_cast<char>(d.kind));
  AppendLE(&v, d.frame_size, 8);
  AppendLE(&v, d.pieces.size(), 4);
  for (const auto& p : d.pieces) {
    v.append(p.digest.AsBytes());
    AppendLE(&v, p.length, 4);
  }
  return v;
}

Result<SplitDescriptor> DecodeSplitDescriptor(std::string_view v) {
  if (v.size() < kSplitHeaderSize || v.substr(0, 8) != kSplitMagic)
    return Status::Corruption("split descriptor: bad magic or too short");
  SplitDescriptor d;
  auto kind = static_cast<uint8_t>(v[8]);
  if (kind > 1) return Status::Corruption("split descriptor: unknown object kind");
  d.kind = static_cast<ObjectKind>(kind);
  d.frame_size = LoadLE(v, 9, 8);
  uint64_t n = LoadLE(v, 17, 4);
  if (d.frame_size > kMaxSplitFrame) return Status::Corruption("split descriptor: frame too large");
  if (n < 2 || n > kMaxSplitPieces || n > d.frame_size)
    return Status::Corruption("split descriptor: piece count out of range");
  if (v.size() != kSplitHeaderSize + n * kSplitPieceRecordSize)
    return Status::Corruption("split descriptor: size does not match its piece count");
  uint64_t sum = 0;
  d.pieces.resize(n);
  for (uint64_t i = 0; i < n; i++) {
    size_t at = kSplitHeaderSize + i * kSplitPieceRecordSize;
    std::memcpy(d.pieces[i].digest.bytes.data(), v.data() + at, 32);
    d.pieces[i].length = static_cast<uint32_t>(LoadLE(v, at + 32, 4));
    if (d.pieces[i].length == 0) return Status::Corruption("split descriptor: empty piece");
    sum += d.pieces[i].length;
  }
  if (sum != d.frame_size) return Status::Corruption("split descriptor: piece lengths do not add up to the frame");
  return d;
}

}  // namespace hashfs::remote
