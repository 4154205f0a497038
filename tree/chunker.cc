#include "tree/chunker.h"

#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cstring>
#include <memory>

#include "cas/digest.h"

namespace hashfs {

Status ChunkParams::Validate() const {
  if (min_size < 64 || !(min_size < avg_size) || !(avg_size < max_size))
    return Status::InvalidArgument("chunk sizes must satisfy 64 <= min < avg < max");
  if (!std::has_single_bit(avg_size)) return Status::InvalidArgument("average chunk size must be a power of two");
  if (max_size > (16u << 20)) return Status::InvalidArgument("maximum chunk size is 16 MiB");
  return Status::Ok();
}

const uint64_t* GearTable() {
  static const auto table = [] {
    std::array<uint64_t, 256> t{};
    for (int i = 0; i < 256; i++) {
      std::string in = "hashfs-gear-v1";
      in.push_back(static_cast<char>(i));
      t[i] = Sha256Of(in).Prefix64();
    }
    return t;
  }();
  return table.data();
}

size_t FindChunkBoundary(const uint8_t* data, size_t n, const ChunkParams& p) {
  if (n <= p.min_size) return n;
  const uint64_t* gear = GearTable();
  // Normalized chunking: a harder mask (2 more bits) before the average size,
  // an easier one (2 fewer bits) after it. Masks use the top bits of the
  // fingerprint, which depend on the last 64 bytes.
  int bits = std::countr_zero(p.avg_size);
  uint64_t mask_s = ~0ull << (64 - (bits + 2));
  uint64_t mask_l = ~0ull << (64 - (bits - 2));
  size_t normal = std::min<size_t>(p.avg_size, n);
  size_t end = std::min<size_t>(p.max_size, n);
  uint64_t fp = 0;
  size_t i = p.min_size;
  for (; i < normal; i++) {
    fp = (fp << 1) + gear[data[i]];
    if (!(fp & mask_s)) return i + 1;
  }
  for (; i < end; i++) {
    fp = (fp << 1) + gear[data[i]];
    if (!(fp & mask_l)) return i + 1;
  }
  return end;
}

FdChunker::FdChunker(int fd, const ChunkParams& p) : fd_(fd), p_(p) {}

// Reads until 2 * max_size bytes are buffered or the file ends. The buffer
// starts small and grows only as far as the file needs (most files are far
// smaller than a chunk), without zero-filling.
bool FdChunker::Fill() {
  if (start_ > 0) {
    std::memmove(buf_.get(), buf_.get() + start_, end_ - start_);
    end_ -= start_;
    start_ = 0;
  }
  const size_t want = 2 * size_t{p_.max_size};
  while (!eof_ && end_ < want) {
    if (end_ == cap_) {
      size_t cap = std::min(want, std::max<size_t>(cap_ * 2, 64 * 1024));
      std::unique_ptr<char[]> bigger(new char[cap]);
      if (end_) std::memcpy(bigger.get(), buf_.get(), end_);
      buf_ = std::move(bigger);
      cap_ = cap;
    }
    ssize_t r = ::read(fd_, buf_.get() + end_, cap_ - end_);
    if (r < 0) {
      if (errno == EINTR) continue;
      status_ = Status::FromErrno(errno, "read");
      return false;
    }
    if (r == 0) {
      eof_ = true;
      break;
    }
    end_ += static_cast<size_t>(r);
    bytes_read_ += static_cast<uint64_t>(r);
  }
  return true;
}

bool FdChunker::Next(std::string* out) {
  if (!status_.ok()) return false;
  if (end_ - start_ < p_.max_size && !eof_) {
    if (!Fill()) return false;
  }
  size_t avail = end_ - start_;
  if (avail == 0) return false;
  size_t n = FindChunkBoundary(reinterpret_cast<const uint8_t*>(buf_.get() + start_), avail, p_);
  out->assign(buf_.get() + start_, n);
  start_ += n;
  return true;
}

}  // namespace hashfs
