// Content-defined chunking (FastCDC with normalized chunking, gear hash).
// Boundaries depend only on the bytes near them, never on file offsets, so an
// insertion changes only the chunks around it. Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "cas/status.h"

namespace hashfs {

struct ChunkParams {
  uint32_t min_size = 256 * 1024;
  uint32_t avg_size = 1024 * 1024;  // a power of two
  uint32_t max_size = 4 * 1024 * 1024;
  // min < avg < max, avg a power of two, max <= 16 MiB.
  Status Validate() const;
};

// Length of the first chunk of data[0, n). When n < max_size and more data may
// follow (at_eof false) the caller must supply more bytes first; with
// at_eof true, a tail shorter than min_size is one chunk.
size_t FindChunkBoundary(const uint8_t* data, size_t n, const ChunkParams& p);

// The 256-entry gear table: entry i is the first 8 bytes (big-endian) of
// SHA-256("hashfs-gear-v1" || byte i).
const uint64_t* GearTable();

// Reads a file descriptor and yields its chunks in order. Not thread-safe.
class FdChunker {
 public:
  FdChunker(int fd, const ChunkParams& p);
  // Next chunk into *out; false at end of file. On a read error returns false
  // and status() is the error.
  bool Next(std::string* out);
  const Status& status() const { return status_; }
  uint64_t bytes_read() const { return bytes_read_; }

 private:
  bool Fill();
  int fd_;
  ChunkParams p_;
  std::unique_ptr<char[]> buf_;  // cap_ bytes, grown on demand up to 2 * max_size
  size_t cap_ = 0;
  size_t start_ = 0, end_ = 0;
  bool eof_ = false;
  uint64_t bytes_read_ = 0;
  Status status_;
};

}  // namespace hashfs
