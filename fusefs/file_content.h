// FileContent: the bytes of one regular file while a mount changes it.
//
// The base is the file's immutable chunk list as last flushed; changes live in
// dirty 64 KiB pages in memory, plus the logical size. Flush() re-chunks only
// the regions around changes: it restarts content-defined chunking at the base
// boundary before the first change and stops at the first new boundary past
// the change that coincides with a base boundary, so the result is the same
// chunk list a fresh chunking of the whole file would give, at the cost of the
// edited neighbourhood. Bytes past the base (holes from truncate or sparse
// writes) read as zeros.
//
// FlushInBackground() hands the dirty pages to a background flush and keeps
// taking writes meanwhile: the pages it took are frozen (read-only, shared
// with the flushing thread) under the pages written since, and reads see
// through both layers to the base. Settle() waits for that flush and makes
// its chunk list the base, or, if it failed, puts the frozen pages back as
// dirty pages, so a failed background flush loses nothing. Every method that
// needs a settled content (Flush, Truncate) settles first.
// Not thread-safe: the owner serializes every call; a background flush uses
// only its frozen copy, the ObjectWriter and the ChunkCache (both
// thread-safe), and is waited for by Settle or the destructor.
#pragma once

#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "fusefs/chunk_cache.h"
#include "tree/chunker.h"
#include "tree/object_writer.h"
#include "tree/types.h"

namespace hashfs::fusefs {

class FileContent {
 public:
  static constexpr size_t kPageSize = 64 * 1024;

  explicit FileContent(std::vector<ChunkRef> base);
  // A copy shares the original's frozen pages but not its background flush;
  // its Settle puts those pages back as its own dirty pages. The destructor
  // waits for a background flush.
  FileContent(const FileContent&) = default;
  FileContent& operator=(const FileContent&) = delete;

  uint64_t size() const { return size_; }
  // True when the content differs from the chunk list last returned by
  // Flush (a settled background flush changes base() but stays dirty until
  // the next Flush, so that the owner learns of the new chunk list there).
  bool dirty() const {
    return !pages_.empty() || frozen_ || unpublished_ || size_ != base_size_ || base_valid_ < base_size_;
  }
  // Memory held by dirty pages written since the last (background) flush
  // began; frozen pages are not counted.
  size_t dirty_bytes() const { return pages_.size() * kPageSize; }
  // True while pages are frozen for a background flush (until Settle).
  bool flushing() const { return frozen_ != nullptr; }
  // The chunk list; describes the content only when !dirty().
  const std::vector<ChunkRef>& base() const { return base_; }
  // Changes with every Write, Truncate and Flush to a value no content of
  // the process had before (a copy keeps its original's until it changes);
  // 0 for content never changed.
  uint64_t generation() const { return generation_; }
  // True when [off, off + len) reads only base chunks or zeros (no dirty page).
  bool RangeIsClean(uint64_t off, size_t len) const;

  // A piece of a clean read: `n` bytes at `in_chunk` of chunk `digest`, or
  // `n` zero bytes when `zero`.
  struct Piece {
    ChunkRef chunk;
    uint64_t in_chunk = 0;
    size_t n = 0;
    bool zero = false;
  };
  // The pieces of [off, off + len); requires RangeIsClean(off, len). The
  // caller can then read them without holding the owner's lock.
  std::vector<Piece> PlanRead(uint64_t off, size_t len) const;
  static Status ExecuteRead(const std::vector<Piece>& plan, char* out, ChunkCache& cache);
  // Digests of the base chunks that hold [off, off + len), clipped to the
  // valid base (for read-ahead; no dirty-page check).
  std::vector<Digest> ChunksFrom(uint64_t off, uint64_t len) const;

  // SEEK_DATA (data true) / SEEK_HOLE: the first offset >= off that lies in
  // data, or in a hole (end of file counts as one); nullopt when off >= size()
  // or no data follows. A hole is a range no dirty page covers that reads as
  // zeros because it lies past the base or in a base chunk `is_zero` accepts
  // (given the chunk and whether it is the base's last); anything else is
  // data, zeros written by hand included.
  using ZeroChunkTest = std::function<bool(const ChunkRef&, bool last)>;
  std::optional<uint64_t> Seek(uint64_t off, bool data, const ZeroChunkTest& is_zero) const;
  // Bytes in holes as Seek finds them, for st_blocks. Remembered until the
  // content or its base changes (a large sparse file has many zero chunks).
  uint64_t HoleBytes(const ZeroChunkTest& is_zero) const;

  // Reads exactly `len` bytes at `off`; the range must lie within size().
  Status Read(uint64_t off, size_t len, char* out, ChunkCache& cache) const;
  // Writes `len` bytes at `off`, growing the file as needed.
  Status Write(uint64_t off, const char* data, size_t len, ChunkCache& cache);
  // Sets the size; new bytes read as zeros. Settles first (a failed
  // background flush is not reported here: its pages are dirty again).
  void Truncate(uint64_t size);
  // Stores the chunks of every changed region through `w` and makes the
  // result the new base. Leaves the content unchanged on error. Boundaries
  // are found in this thread; hashing, compression and queueing run as TBB
  // tasks (isolated: the calling thread waits only on them), so `w` and
  // `cache` are used from several threads at once.
  // Settles first and returns the error of a failed background flush.
  Status Flush(ObjectWriter& w, const ChunkParams& p, ChunkCache& cache);
  // Settles, then freezes the dirty pages and starts chunking them out on
  // another thread (as Flush does, through `w` and `cache`, which must outlive
  // this content or its next Settle). Returns the error of the previous
  // background flush, if it failed, without starting another.
  Status FlushInBackground(ObjectWriter& w, const ChunkParams& p, ChunkCache& cache);
  // Waits for a background flush, if any. On success its chunk list becomes
  // the base (the content reads the same); on failure the frozen pages are
  // dirty pages again and the error is returned.
  Status Settle();

 private:
  // The new chunk list of the whole file (what Flush makes the base).
  Result<std::vector<ChunkRef>> Rechunk(ObjectWriter& w, const ChunkParams& p, ChunkCache& cache) const;
  // The run holding `off`: whether it is a hole (as Seek defines one) and
  // where it ends, at most at the next page or chunk boundary (not clipped
  // to size()).
  struct Run {
    bool hole;
    uint64_t end;
  };
  Run RunAt(uint64_t off, const ZeroChunkTest& is_zero) const;
  // Reads what lies under the dirty pages: the frozen layer if any, else the
  // base (zeros past it).
  Status ReadUnder(uint64_t off, size_t len, char* out, ChunkCache& cache) const;
  // Reads ignoring dirty pages: base chunks below base_valid_, zeros above.
  Status ReadBase(uint64_t off, size_t len, char* out, ChunkCache& cache) const;
  // Makes `base` the chunk list (base_, offsets_); returns its length.
  uint64_t SetChunks(std::vector<ChunkRef> base);
  void SetBase(std::vector<ChunkRef> base);

  std::vector<ChunkRef> base_;
  std::vector<uint64_t> offsets_;  // offsets_[i]: start of base_[i]; offsets_.back(): base_size_
  uint64_t base_size_ = 0;
  uint64_t base_valid_ = 0;  // base bytes at or past this offset are gone (shrinking truncate)
  uint64_t size_ = 0;
  // page index -> kPageSize bytes; bytes past size_ are always zero.
  std::map<uint64_t, std::string> pages_;
  // While a background flush runs: the content as it was when it began (same
  // base, the pages it took), read under pages_, and the flush's result.
  std::shared_ptr<const FileContent> frozen_;
  // The background flush's result: waited for on destruction, and not
  // shared by a copy (a copy starts with none).
  struct Job {
    std::future<Result<std::vector<ChunkRef>>> result;
    Job() = default;
    Job(const Job&) {}
    Job& operator=(const Job&) = delete;
    ~Job() {
      if (result.valid()) result.wait();
    }
  };
  Job job_;
  bool unpublished_ = false;  // base_ came from a background flush Flush has not reported
  mutable std::optional<uint64_t> hole_bytes_;  // HoleBytes' memo; reset by Changed and SetChunks
  uint64_t generation_ = 0;
  void Changed();
};

}  // namespace hashfs::fusefs
