#include "tree/chunker.h"

#include <sys/stat.h>
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

namespace {

// The boundary search, over bytes byte_at(0..n): one definition for data in
// memory and for a run of zeros.
template <class ByteAt>
size_t Boundary(ByteAt byte_at, size_t n, const ChunkParams& p) {
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
    fp = (fp << 1) + gear[byte_at(i)];
    if (!(fp & mask_s)) return i + 1;
  }
  for (; i < end; i++) {
    fp = (fp << 1) + gear[byte_at(i)];
    if (!(fp & mask_l)) return i + 1;
  }
  return end;
}

}  // namespace

size_t FindChunkBoundary(const uint8_t* data, size_t n, const ChunkParams& p) {
  return Boundary([data](size_t i) { return data[i]; }, n, p);
}

size_t ZeroChunkLength(size_t n, const ChunkParams& p) {
  return Boundary([](size_t) { return uint8_t{0}; }, n, p);
}

FdChunker::FdChunker(int fd, const ChunkParams& p, bool skip_holes) : fd_(fd), p_(p) {
  struct stat st;
  if (skip_holes && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) &&
      static_cast<uint64_t>(st.st_blocks) * 512 < static_cast<uint64_t>(st.st_size)) {
    holes_ = positional_ = true;
    size_ = static_cast<uint64_t>(st.st_size);
  }
}

// Whether [pos, pos + len) lies in one hole. Asks the file (SEEK_DATA, then
// SEEK_HOLE) only when pos passes the end of the region it last learned
// about (pos only grows); a file system that cannot say reports all data,
// and nothing is skipped.
bool FdChunker::WindowInHole(uint64_t pos, uint64_t len) {
  if (pos >= region_end_) {
    off_t data = lseek(fd_, static_cast<off_t>(pos), SEEK_DATA);
    if (data < 0) {
      if (errno != ENXIO) {  // not supported: read everything
        holes_ = false;
        return false;
      }
      data = static_cast<off_t>(size_);  // no data from pos on (pos + len <= size_)
    }
    if (static_cast<uint64_t>(data) > pos) {
      region_end_ = static_cast<uint64_t>(data);
      region_hole_ = true;
    } else {
      off_t hole = lseek(fd_, static_cast<off_t>(pos), SEEK_HOLE);
      if (hole < 0) {
        holes_ = false;
        return false;
      }
      region_end_ = std::max<uint64_t>(static_cast<uint64_t>(hole), pos + 1);
      region_hole_ = false;
    }
  }
  return region_hole_ && pos + len <= region_end_;
}

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
    ssize_t r = positional_ ? ::pread(fd_, buf_.get() + end_, cap_ - end_, static_cast<off_t>(off_))
                       : ::read(fd_, buf_.get() + end_, cap_ - end_);
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
    off_ += static_cast<uint64_t>(r);
    bytes_read_ += static_cast<uint64_t>(r);
  }
  return true;
}

bool FdChunker::Next(std::string* out) {
  if (!status_.ok()) return false;
  hole_chunk_ = 0;
  if (holes_) {
    // The chunk at pos depends only on its window, the bytes up to max_size
    // (or end of file) on. All hole: it is zeros of a length found without
    // them, and reading resumes after it.
    uint64_t pos = off_ - (end_ - start_);
    uint64_t want = pos < size_ ? std::min<uint64_t>(p_.max_size, size_ - pos) : 0;
    if (want > 0 && WindowInHole(pos, want)) {
      // The search runs over the whole window: once per length (a hole is
      // mostly windows of max_size).
      if (want != zero_window_) {
        zero_window_ = want;
        zero_chunk_ = ZeroChunkLength(static_cast<size_t>(want), p_);
      }
      hole_chunk_ = zero_chunk_;
      out->clear();
      start_ = end_ = 0;
      off_ = pos + hole_chunk_;
      eof_ = false;
      return true;
    }
  }
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
