// ObjectWriter: deduplicating, batching writes of new objects into an
// ObjectStore, with read-your-writes.
//
// Put() hashes, skips objects already stored or pending, compresses the rest
// and queues them; whenever `batch_bytes` or `batch_objects` are queued they
// are stored in one PutBatch (one LMDB transaction). The object count bounds
// the transaction's dirty B-tree pages (one leaf per small object at worst),
// the byte count its value pages. Nothing is durable before Flush() returns
// OK. Thread-safe: many threads may Put concurrently; compression runs in the
// calling thread, one batch is written at a time.
//
// A failed batch write (a full disk, an I/O error) loses nothing: the batch is
// kept in memory and readable through Get, Put refuses new objects with that
// error, and the next Flush writes every kept object again; once a Flush
// succeeds the writer accepts objects again. So a caller that saw a failure
// can wait for space and retry without re-creating what it had put.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "cas/object_codec.h"
#include "cas/object_store.h"

namespace hashfs {

struct WriterStats {
  uint64_t objects_added = 0;
  uint64_t plain_bytes_added = 0;
  uint64_t stored_bytes_added = 0;
};

class ObjectWriter {
 public:
  ObjectWriter(ObjectStore& store, int zstd_level, size_t batch_bytes = 4u << 20, size_t batch_objects = 512);
  ObjectWriter(const ObjectWriter&) = delete;
  ObjectWriter& operator=(const ObjectWriter&) = delete;

  // Stores `plain` unless present; returns its digest.
  Result<Digest> Put(std::string_view plain, ObjectKind kind);
  // As Put with a digest the caller computed over `plain`.
  Status PutWithDigest(const Digest& d, std::string_view plain, ObjectKind kind);
  // Reads an object, seeing objects still queued here (verified by hash).
  Result<std::string> Get(const Digest& d);
  // Stores everything queued, including batches whose write failed before;
  // durable when it returns OK.
  Status Flush();
  // True while a write failure has not been cleared by a successful Flush.
  bool failed() const;

  ObjectStore& store() { return store_; }
  WriterStats stats() const;

 private:
  Status WriteBatch(std::vector<PreparedObject> batch);
  // Under mu_: the stored bytes of a queued object, if it is in pending_ or
  // unwritten_.
  const PreparedObject* FindQueuedLocked(const Digest& d) const;

  ObjectStore& store_;
  const int zstd_level_;
  const size_t batch_bytes_;
  const size_t batch_objects_;

  mutable std::mutex mu_;
  // Digests queued or being written, with the plain bytes of metadata objects
  // (data chunks are not kept twice: a queued one is decoded from pending_).
  std::unordered_map<Digest, std::optional<std::string>, DigestHash> queued_plain_;
  std::vector<PreparedObject> pending_;
  size_t pending_bytes_ = 0;
  // Objects reserved in queued_plain_ but not yet in pending_ (being checked
  // or compressed), and batches taken out of pending_ but not yet stored.
  // Flush waits for both to drain so that an object some Put has reported as
  // accepted is durable when Flush returns.
  size_t preparing_ = 0;
  size_t writing_ = 0;
  std::condition_variable drained_;
  std::mutex write_mu_;  // one PutBatch at a time
  // Batches whose PutBatch failed, kept for the next Flush, and that failure
  // (cleared when a Flush has written them all).
  std::vector<PreparedObject> unwritten_;
  Status failure_;
  WriterStats stats_;
};

}  // namespace hashfs
