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

// Length of the first chunk of n zero bytes: FindChunkBoundary of n zeros,
// without the caller supplying them. A hole's chunks are found with it
// (by backup and by the mount) without reading or allocating the hole.
size_t ZeroChunkLength(size_t n, const ChunkParams& p);

// The 256-entry gear table: entry i is the first 8 bytes (big-endian) of
// SHA-256("hashfs-gear-v1" || byte i).
const uint64_t* GearTable();

// Reads a file descriptor and yields its chunks in order. Not thread-safe.
class FdChunker {
 public:
  // With skip_holes, a regular file that has fewer blocks than its size is
  // asked for its holes (lseek SEEK_DATA): a chunk whose whole window lies in
  // a hole is not read (see hole_chunk). The chunks are the same either way.
  // Such a file is read with pread from offset 0, whatever the descriptor's
  // offset; anything else is read with read(2) from where it stands.
  FdChunker(int fd, const ChunkParams& p, bool skip_holes = false);
  // Next chunk into *out; false at end of file. On a read error returns false
  // and status() is the error.
  bool Next(std::string* out);
  // After Next returned true: 0 if *out holds the chunk; otherwise the chunk
  // lay in a hole, was not read, is this many zero bytes, and *out is empty.
  uint64_t hole_chunk() const { return hole_chunk_; }
  const Status& status() const { return status_; }
  uint64_t bytes_read() const { return bytes_read_; }

 private:
  bool Fill();
  bool WindowInHole(uint64_t pos, uint64_t len);
  int fd_;
  ChunkParams p_;
  bool holes_ = false;          // skip_holes and the file looks sparse
  bool positional_ = false;     // reads with pread at off_ (set with holes_, kept)
  uint64_t size_ = 0;           // the file's size when holes_ (fstat at the start)
  uint64_t off_ = 0;            // file offset of buf_[end_]
  uint64_t region_end_ = 0;     // up to here (from the last position asked) is
                                // all hole (region_hole_) or starts with data
  bool region_hole_ = false;
  uint64_t hole_chunk_ = 0;
  uint64_t zero_window_ = 0, zero_chunk_ = 0;  // ZeroChunkLength(zero_window_)
  std::unique_ptr<char[]> buf_;  // cap_ bytes, grown on demand up to 2 * max_size
  size_t cap_ = 0;
  size_t start_ = 0, end_ = 0;
  bool eof_ = false;
  uint64_t bytes_read_ = 0;
  Status status_;
};

}  // namespace hashfs
