// Objects too large for one attachment: a split object is uploaded as
// pieces (slices of its upload frame, each an entry of its own, named by
// the SHA-256 of its bytes and keyed by MasterKey::PieceKeyedId) plus a descriptor entry under the object's own
// keyed id that lists the pieces in order. Pure encode/decode, no I/O;
// thread-compatible. Byte layout (integers little-endian; design.md
// "Objects larger than a pack" is normative):
//
//   descriptor  "HFSPLIT1" (8) | u8 object kind | u64 frame size | u32 n |
//               n x (piece digest 32 | u32 piece length)
//
// with 2 <= n <= kMaxSplitPieces, every length >= 1, the lengths summing to
// the frame size, and the frame size at most kMaxSplitFrame. Decoders treat
// every byte as hostile.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "cas/object_store.h"

namespace hashfs::remote {

inline constexpr std::string_view kSplitMagic = "HFSPLIT1";
inline constexpr size_t kSplitHeaderSize = 8 + 1 + 8 + 4;
inline constexpr size_t kSplitPieceRecordSize = 32 + 4;
// A frame is an object's stored form: at most kMaxObjectSize plain bytes
// plus its 18-byte header (stored raw when zstd does not pay).
inline constexpr uint64_t kMaxSplitFrame = (64ull << 20) + 18;
// Enough for kMaxSplitFrame in pieces of a pack of the smallest limit
// (64 KiB: 65,343-byte pieces make 1,028), with room to spare.
inline constexpr uint32_t kMaxSplitPieces = 4096;

struct SplitPiece {
  Digest digest;  // SHA-256 of the piece's bytes
  uint32_t length = 0;
};

struct SplitDescriptor {
  ObjectKind kind = ObjectKind::kData;
  uint64_t frame_size = 0;
  std::vector<SplitPiece> pieces;
};

// Cuts `frame` into n = ceil(size / max_piece) slices of near-equal length
// (the first size % n one byte longer), n >= 2. `frame` must be longer than
// max_piece, max_piece > 0.
std::vector<std::string_view> CutFrame(std::string_view frame, uint64_t max_piece);
// The descriptor of `frame` cut into `pieces` (as CutFrame returned them).
SplitDescriptor DescribeSplit(ObjectKind kind, const std::vector<std::string_view>& pieces);

std::string EncodeSplitDescriptor(const SplitDescriptor& d);
// Corruption for anything EncodeSplitDescriptor could not have written.
Result<SplitDescriptor> DecodeSplitDescriptor(std::string_view v);

}  // namespace hashfs::remote
