#include "fusefs/file_content.h"

#include <tbb/task_arena.h>
#include <tbb/task_group.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cstring>
#include <deque>
#include <limits>
#include <memory>
#include <mutex>

#include "cas/digest.h"
#include "cas/tsan_sync.h"

namespace hashfs::fusefs {

FileContent::FileContent(std::vector<ChunkRef> base) {
  SetBase(std::move(base));
  generation_ = 0;
}

void FileContent::Changed() {
  static std::atomic<uint64_t> next{1};
  generation_ = next.fetch_add(1, std::memory_order_relaxed);
  hole_bytes_.reset();
}

uint64_t FileContent::SetChunks(std::vector<ChunkRef> base) {
  hole_bytes_.reset();
  base_ = std::move(base);
  offsets_.clear();
  offsets_.reserve(base_.size() + 1);
  uint64_t off = 0;
  for (const auto& c : base_) {
    offsets_.push_back(off);
    off += c.size;
  }
  offsets_.push_back(off);
  return off;
}

void FileContent::SetBase(std::vector<ChunkRef> base) {
  base_size_ = base_valid_ = size_ = SetChunks(std::move(base));
  pages_.clear();
  unpublished_ = false;
  Changed();
}

Status FileContent::Settle() {
  if (!frozen_) return Status::Ok();
  Status s;
  if (job_.result.valid()) {
    Result<std::vector<ChunkRef>> r = job_.result.get();
    if (r.ok()) {
      // The frozen content, now chunked (Rechunk checked that the chunks add
      // up to its size); the pages written since stay on top. No truncate ran
      // meanwhile (it settles first), so size_ is at least that size.
      base_size_ = base_valid_ = SetChunks(std::move(*r));
      frozen_.reset();
      unpublished_ = true;
      return Status::Ok();
    }
    s = r.status();
  }
  // Failed (or a copy, which has no flush of its own): the frozen pages are
  // dirty pages again, under the ones written since.
  for (const auto& [page, bytes] : frozen_->pages_) pages_.emplace(page, bytes);
  frozen_.reset();
  return s;
}

Status FileContent::ReadUnder(uint64_t off, size_t len, char* out, ChunkCache& cache) const {
  if (frozen_) return frozen_->Read(off, len, out, cache);
  return ReadBase(off, len, out, cache);
}

bool FileContent::RangeIsClean(uint64_t off, size_t len) const {
  if (len == 0) return true;
  auto it = pages_.lower_bound(off / kPageSize);
  if (it != pages_.end() && it->first <= (off + len - 1) / kPageSize) return false;
  return !frozen_ || frozen_->RangeIsClean(off, len);
}

FileContent::Run FileContent::RunAt(uint64_t off, const ZeroChunkTest& is_zero) const {
  auto it = pages_.lower_bound(off / kPageSize);
  if (it != pages_.end() && it->first == off / kPageSize) return {false, (it->first + 1) * kPageSize};
  const uint64_t next_page = it == pages_.end() ? UINT64_MAX : it->first * kPageSize;
  Run under{true, UINT64_MAX};  // past the base: zeros up to the next page
  if (frozen_) {
    under = frozen_->RunAt(off, is_zero);
  } else if (const uint64_t limit = std::min(base_valid_, base_size_); off < limit) {
    size_t i = static_cast<size_t>(std::upper_bound(offsets_.begin(), offsets_.end(), off) - offsets_.begin()) - 1;
    under = {is_zero(base_[i], i + 1 == base_.size()), std::min(offsets_[i + 1], limit)};
  }
  under.end = std::min(under.end, next_page);
  return under;
}

std::optional<uint64_t> FileContent::Seek(uint64_t off, bool data, const ZeroChunkTest& is_zero) const {
  if (off >= size_) return std::nullopt;
  while (off < size_) {
    Run r = RunAt(off, is_zero);
    if (r.hole != data) return off;
    off = std::max(r.end, off + 1);  // (runs end past off; never spin)
  }
  if (data) return std::nullopt;
  return size_;
}

uint64_t FileContent::HoleBytes(const ZeroChunkTest& is_zero) const {
  if (hole_bytes_) return *hole_bytes_;
  uint64_t holes = 0;
  for (uint64_t off = 0; off < size_;) {
    Run r = RunAt(off, is_zero);
    const uint64_t end = std::clamp(r.end, off + 1, size_);  // (runs end past off; never spin)
    if (r.hole) holes += end - off;
    off = end;
  }
  hole_bytes_ = holes;
  return holes;
}

Status FileContent::ReadBase(uint64_t off, size_t len, char* out, ChunkCache& cache) const {
  const uint64_t limit = std::min(base_valid_, base_size_);
  while (len > 0) {
    if (off >= limit) {
      std::memset(out, 0, len);
      return Status::Ok();
    }
    // The chunk holding `off`.
    size_t i = static_cast<size_t>(std::upper_bound(offsets_.begin(), offsets_.end(), off) - offsets_.begin()) - 1;
    HASHFS_ASSIGN_OR_RETURN(ChunkBytes bytes, cache.Get(base_[i].digest));
    if (bytes->size() != base_[i].size)
      return Status::Corruption("chunk " + base_[i].digest.Hex() + " has the wrong length");
    uint64_t in_chunk = off - offsets_[i];
    size_t n = static_cast<size_t>(std::min<uint64_t>({len, base_[i].size - in_chunk, limit - off}));
    std::memcpy(out, bytes->data() + in_chunk, n);
    out += n;
    off += n;
    len -= n;
  }
  return Status::Ok();
}

std::vector<FileContent::Piece> FileContent::PlanRead(uint64_t off, size_t len) const {
  std::vector<Piece> plan;
  const uint64_t limit = std::min(base_valid_, base_size_);
  while (len > 0) {
    if (off >= limit) {
      plan.push_back({ChunkRef{}, 0, len, true});
      break;
    }
    size_t i = static_cast<size_t>(std::upper_bound(offsets_.begin(), offsets_.end(), off) - offsets_.begin()) - 1;
    uint64_t in_chunk = off - offsets_[i];
    size_t n = static_cast<size_t>(std::min<uint64_t>({len, base_[i].size - in_chunk, limit - off}));
    plan.push_back({base_[i], in_chunk, n, false});
    off += n;
    len -= n;
  }
  return plan;
}

std::vector<Digest> FileContent::ChunksFrom(uint64_t off, uint64_t len) const {
  std::vector<Digest> out;
  const uint64_t limit = std::min(base_valid_, base_size_);
  if (off >= limit || base_.empty()) return out;
  const uint64_t end = std::min(limit, off + len);
  size_t i = static_cast<size_t>(std::upper_bound(offsets_.begin(), offsets_.end(), off) - offsets_.begin()) - 1;
  for (; i < base_.size() && offsets_[i] < end; i++) out.push_back(base_[i].digest);
  return out;
}

Status FileContent::ExecuteRead(const std::vector<Piece>& plan, char* out, ChunkCache& cache) {
  for (const auto& piece : plan) {
    if (piece.zero) {
      std::memset(out, 0, piece.n);
    } else {
      HASHFS_ASSIGN_OR_RETURN(ChunkBytes bytes, cache.Get(piece.chunk.digest));
      if (bytes->size() != piece.chunk.size)
        return Status::Corruption("chunk " + piece.chunk.digest.Hex() + " has the wrong length");
      std::memcpy(out, bytes->data() + piece.in_chunk, piece.n);
    }
    out += piece.n;
  }
  return Status::Ok();
}

Status FileContent::Read(uint64_t off, size_t len, char* out, ChunkCache& cache) const {
  while (len > 0) {
    uint64_t page = off / kPageSize;
    size_t in_page = off % kPageSize;
    size_t n = std::min(len, kPageSize - in_page);
    auto it = pages_.find(page);
    if (it != pages_.end()) {
      std::memcpy(out, it->second.data() + in_page, n);
    } else {
      // Extend the run over following clean pages to read chunks in one go.
      auto next = pages_.upper_bound(page);
      uint64_t run_end = off + len;
      if (next != pages_.end()) run_end = std::min(run_end, next->first * kPageSize);
      n = static_cast<size_t>(run_end - off);
      HASHFS_RETURN_IF_ERROR(ReadUnder(off, n, out, cache));
    }
    out += n;
    off += n;
    len -= n;
  }
  return Status::Ok();
}

Status FileContent::Write(uint64_t off, const char* data, size_t len, ChunkCache& cache) {
  if (len == 0) return Status::Ok();
  if (off > std::numeric_limits<uint64_t>::max() - len) return Status::Make(Status::Code::kTooBig, "offset too large");
  Changed();  // also when a page read below fails part way
  while (len > 0) {
    uint64_t page = off / kPageSize;
    size_t in_page = off % kPageSize;
    size_t n = std::min(len, kPageSize - in_page);
    auto it = pages_.find(page);
    if (it == pages_.end() && in_page == 0 && n == kPageSize) {
      // A new page wholly overwritten: copy it in once, no zero fill.
      pages_.emplace(page, std::string(data, kPageSize));
    } else {
      if (it == pages_.end()) {
        std::string bytes(kPageSize, '\0');
        uint64_t start = page * kPageSize;
        if (start < size_) {
          size_t keep = static_cast<size_t>(std::min<uint64_t>(kPageSize, size_ - start));
          HASHFS_RETURN_IF_ERROR(ReadUnder(start, keep, bytes.data(), cache));
        }
        it = pages_.emplace(page, std::move(bytes)).first;
      }
      std::memcpy(it->second.data() + in_page, data, n);
    }
    data += n;
    off += n;
    len -= n;
    size_ = std::max(size_, off);
  }
  return Status::Ok();
}

void FileContent::Truncate(uint64_t size) {
  (void)Settle();  // a failure leaves its pages dirty; the next flush reports
  Changed();
  if (size < size_) {
    base_valid_ = std::min(base_valid_, size);
    uint64_t first_gone = (size + kPageSize - 1) / kPageSize;
    pages_.erase(pages_.lower_bound(first_gone), pages_.end());
    if (size % kPageSize) {
      auto it = pages_.find(size / kPageSize);
      if (it != pages_.end()) {
        size_t from = size % kPageSize;
        std::memset(it->second.data() + from, 0, kPageSize - from);
      }
    }
  }
  size_ = size;
}

// Chunks below this size are hashed and compressed by the flushing thread
// itself, not handed to a TBB worker.
constexpr size_t kInlineChunk = 128 * 1024;

Status FileContent::Flush(ObjectWriter& w, const ChunkParams& p, ChunkCache& cache) {
  HASHFS_RETURN_IF_ERROR(Settle());
  if (!dirty()) return Status::Ok();
  HASHFS_ASSIGN_OR_RETURN(std::vector<ChunkRef> out, Rechunk(w, p, cache));
  SetBase(std::move(out));
  return Status::Ok();
}

Status FileContent::FlushInBackground(ObjectWriter& w, const ChunkParams& p, ChunkCache& cache) {
  HASHFS_RETURN_IF_ERROR(Settle());
  if (pages_.empty()) return Status::Ok();
  // The frozen layer: this content as it is now (a copy of the base and the
  // sizes, the pages moved, not copied); this one keeps its base and sizes
  // and starts over with no dirty pages.
  std::map<uint64_t, std::string> pages = std::move(pages_);
  pages_.clear();
  auto frozen = std::make_shared<FileContent>(*this);
  frozen->pages_ = std::move(pages);
  frozen_ = frozen;
  try {
    job_.result = std::async(std::launch::async,
                      [frozen = std::move(frozen), &w, p, &cache]() -> Result<std::vector<ChunkRef>> {
                        try {
                          return frozen->Rechunk(w, p, cache);
                        } catch (const std::exception& e) {
                          return Status::IOError(std::string("background flush: ") + e.what());
                        }
                      });
  } catch (const std::exception& e) {  // no thread to be had
    (void)Settle();                     // pages back
    return Status::IOError(std::string("background flush: ") + e.what());
  }
  return Status::Ok();
}

Result<std::vector<ChunkRef>> FileContent::Rechunk(ObjectWriter& w, const ChunkParams& p, ChunkCache& cache) const {
  constexpr uint64_t kEof = std::numeric_limits<uint64_t>::max();
  // Changed intervals, sorted and merged; the last one runs to end of file if
  // the size or the valid part of the base changed.
  std::vector<std::pair<uint64_t, uint64_t>> iv;
  for (const auto& [page, bytes] : pages_) {
    uint64_t a = page * kPageSize, b = std::min(a + kPageSize, size_);
    if (a >= b) continue;
    if (!iv.empty() && iv.back().second >= a)
      iv.back().second = std::max(iv.back().second, b);
    else
      iv.emplace_back(a, b);
  }
  if (size_ != base_size_ || base_valid_ < base_size_) {
    uint64_t t0 = std::min({base_valid_, base_size_, size_});
    while (!iv.empty() && iv.back().second >= t0) {
      t0 = std::min(t0, iv.back().first);
      iv.pop_back();
    }
    iv.emplace_back(t0, kEof);
  }

  const size_t n = base_.size();
  std::vector<ChunkRef> out;
  out.reserve(n + 8);
  // New chunks are found here, in order (content-defined boundaries need the
  // bytes in sequence), and hashed, compressed and queued in parallel; their
  // digests land in `fresh` and are copied into `out` once all are done.
  struct Fresh {
    size_t index;  // in out
    Digest digest;
  };
  std::deque<Fresh> fresh;  // stable addresses for the tasks
  // Changed regions are read into windows of up to 4 maximal chunks, two of
  // them used in turn: while the chunks of one are hashed, compressed and
  // queued by TBB tasks (which read them in place: no copy per chunk), the
  // next is filled. A window is refilled only after its own tasks are done,
  // so at most 8 maximal chunks' worth are in flight, and the two buffers
  // are reused for the whole flush (fresh memory is costly to touch).
  const uint64_t window = 4ull * p.max_size;
  std::mutex err_mu;
  Status err;
  struct Window {
    std::string bytes;
    tbb::task_group tasks;
  };
  std::array<Window, 2> windows;
  // Hashes and stores one chunk and records its digest.
  auto store = [&w, &err_mu, &err](std::string_view bytes, Digest* slot) -> Status {
    Digest dg = Sha256Of(bytes);
    Status s = w.PutWithDigest(dg, bytes, ObjectKind::kData);
    std::lock_guard lk(err_mu);
    if (!s.ok() && err.ok()) err = s;
    *slot = dg;
    return s;
  };
  // New chunks go into the chunk cache too (a file is often read soon after
  // it is written), unless the file is larger than half the cache: then its
  // chunks would mostly push each other and everything else out, and copying
  // them there (always into memory not touched lately) cost a sequential
  // write a fifth of its CPU time (bench/README.md, 2026-12-03).
  const bool cache_fresh = size_ <= cache.capacity() / 2;
  auto submit = [&](Window& win, std::string_view chunk) -> Status {
    fresh.push_back({out.size(), Digest{}});
    Digest* slot = &fresh.back().digest;
    out.push_back({Digest{}, chunk.size()});
    // A small chunk (most files are one) costs less than handing it to a
    // worker thread: waking one is a context switch each way.
    if (chunk.size() < kInlineChunk) {
      HASHFS_RETURN_IF_ERROR(store(chunk, slot));
      if (cache_fresh) cache.Insert(*slot, std::make_shared<const std::string>(chunk));
      return Status::Ok();
    }
    // A task reads the window's bytes and writes its slot; this thread
    // writes the bytes before the task runs and reads or overwrites them after
    // waiting. TBB orders both, but TSan cannot see TBB's hand-offs (libtbb is
    // not instrumented): the window's tag carries them (cas/tsan_sync.h).
    TsanRelease(&win);
    win.tasks.run([store, chunk, slot, &cache, cache_fresh, &win] {
      TsanAcquire(&win);
      if (store(chunk, slot).ok() && cache_fresh) cache.Insert(*slot, std::make_shared<const std::string>(chunk));
      TsanRelease(&win);
    });
    return Status::Ok();
  };
  // Waits for the tasks reading `win` (so it can be overwritten) and returns
  // the first error any task had.
  auto drain = [&](Window& win) -> Status {
    win.tasks.wait();
    TsanAcquire(&win);
    std::lock_guard lk(err_mu);
    return err;
  };

  // Holes: past the valid part of the base, bytes no dirty page covers are
  // zeros. A chunk that starts in a hole and whose whole window lies in it
  // depends only on the window's length (content-defined boundaries are a
  // function of the bytes from the chunk's start), so it is found once per
  // length and reused: a file truncated to a terabyte commits without reading,
  // hashing or compressing a terabyte of zeros. The chunk list is the same as
  // chunking those zeros would give.
  const uint64_t zeros_from = std::min(base_valid_, base_size_);
  auto in_hole = [&](uint64_t from, uint64_t len) {
    if (frozen_ || from < zeros_from) return false;  // (callers settle first: no frozen layer)
    auto it = pages_.lower_bound(from / kPageSize);
    return it == pages_.end() || it->first * kPageSize >= from + len;
  };
  std::map<uint64_t, ChunkRef> zero_chunks;  // window length -> the chunk it starts with
  auto zero_chunk = [&](uint64_t want) -> Result<ChunkRef> {
    auto found = zero_chunks.find(want);
    if (found != zero_chunks.end()) return found->second;
    const std::string zeros(ZeroChunkLength(static_cast<size_t>(want), p), '\0');
    ChunkRef ref{Sha256Of(zeros), zeros.size()};
    HASHFS_RETURN_IF_ERROR(w.PutWithDigest(ref.digest, zeros, ObjectKind::kData));
    zero_chunks.emplace(want, ref);
    return ref;
  };

  size_t i = 0;  // next base chunk
  size_t k = 0;  // next changed interval
  bool reached_eof = false;
  auto chunk_changes = [&]() -> Status {
    int cur = 0;  // the window holding the bytes from pos on
    std::string* buf = &windows[0].bytes;
    while (k < iv.size() && !reached_eof) {
      uint64_t d = iv[k].first;
      while (i < n && offsets_[i + 1] <= d) out.push_back(base_[i++]);
      // The last base chunk ended at end of file, not at a content boundary:
      // chunk it again together with what follows it.
      if (i == n && n > 0) {
        out.pop_back();
        i--;
      }
      uint64_t pos = offsets_[i];
      // (*buf)[at, buf->size()) holds the bytes from pos on: none yet. (A
      // window is never cleared: its tasks may still be reading it.)
      size_t at = buf->size();
      for (;;) {
        uint64_t want = std::min<uint64_t>(p.max_size, size_ - pos);
        if (want == 0) {
          reached_eof = true;
          break;
        }
        if (in_hole(pos, want)) {
          HASHFS_ASSIGN_OR_RETURN(ChunkRef z, zero_chunk(want));
          out.push_back(z);
          pos += z.size;
          at = buf->size();  // what it held lies before pos, or in the hole
        } else {
          size_t have = buf->size() - at;
          if (have < want) {
            // Refill: move to the other window once its tasks are done, and
            // read into it to the end of this change plus one chunk's worth,
            // at least `want`, at most `window`.
            Window& next = windows[1 - cur];
            HASHFS_RETURN_IF_ERROR(drain(next));
            next.bytes.assign(*buf, at, have);
            cur = 1 - cur;
            buf = &next.bytes;
            at = 0;
            uint64_t change_end = k >= iv.size()            ? pos + p.max_size
                                  : iv[k].second == kEof     ? size_
                                                             : std::max(iv[k].second, pos) + p.max_size;
            change_end = std::min(change_end, size_);
            uint64_t fill = std::clamp<uint64_t>(change_end - pos, want, std::max<uint64_t>(want, window));
            fill = std::min(fill, size_ - pos);
            buf->resize(static_cast<size_t>(fill));
            HASHFS_RETURN_IF_ERROR(Read(pos + have, buf->size() - have, buf->data() + have, cache));
          }
          size_t len =
              FindChunkBoundary(reinterpret_cast<const uint8_t*>(buf->data() + at), static_cast<size_t>(want), p);
          HASHFS_RETURN_IF_ERROR(submit(windows[cur], std::string_view(buf->data() + at, len)));
          pos += len;
          at += len;
        }
        while (k < iv.size() && iv[k].second <= pos) k++;
        if (k < iv.size() && iv[k].first <= pos) continue;  // still inside a change
        // Past the change: resynchronise at a base boundary whose following
        // bytes are unchanged.
        auto it = std::lower_bound(offsets_.begin(), offsets_.begin() + static_cast<std::ptrdiff_t>(n), pos);
        if (it != offsets_.begin() + static_cast<std::ptrdiff_t>(n) && *it == pos && pos < base_valid_) {
          i = static_cast<size_t>(it - offsets_.begin());
          break;
        }
      }
    }
    return Status::Ok();
  };
  Status s;
  // Isolated: while waiting, this thread (which holds the mount's lock) runs
  // only these tasks, never unrelated ones such as read-ahead.
  tbb::this_task_arena::isolate([&] {
    s = chunk_changes();
    for (Window& win : windows) {
      win.tasks.wait();
      TsanAcquire(&win);
    }
  });
  HASHFS_RETURN_IF_ERROR(s);
  {
    std::lock_guard lk(err_mu);
    HASHFS_RETURN_IF_ERROR(err);
    for (const auto& f : fresh) out[f.index].digest = f.digest;
  }
  if (!reached_eof)
    while (i < n) out.push_back(base_[i++]);
  uint64_t total = 0;
  for (const auto& c : out) total += c.size;
  if (total != size_) return Status::Corruption("re-chunked file has the wrong length");
  return out;
}

}  // namespace hashfs::fusefs
