#include "tree/object_writer.h"

namespace hashfs {

ObjectWriter::ObjectWriter(ObjectStore& store, int zstd_level, size_t batch_bytes, size_t batch_objects)
    : store_(store), zstd_level_(zstd_level), batch_bytes_(batch_bytes), batch_objects_(batch_objects) {}

Result<Digest> ObjectWriter::Put(std::string_view plain, ObjectKind kind) {
  Digest d = Sha256Of(plain);
  HASHFS_RETURN_IF_ERROR(PutWithDigest(d, plain, kind));
  return d;
}

Status ObjectWriter::PutWithDigest(const Digest& d, std::string_view plain, ObjectKind kind) {
  {
    // Reserve the digest first, so that of several threads putting the same
    // object exactly one checks the store, stores and counts it.
    std::lock_guard lk(mu_);
    if (!failure_.ok()) return failure_;
    if (!queued_plain_.try_emplace(d, std::nullopt).second) return Status::Ok();
    preparing_++;
  }
  auto release = [&](bool keep_reservation) {
    if (!keep_reservation) queued_plain_.erase(d);
    preparing_--;
    drained_.notify_all();
  };
  Result<bool> present = store_.Contains(d);
  if (!present.ok() || *present) {
    std::lock_guard lk(mu_);
    release(false);
    return present.ok() ? Status::Ok() : present.status();
  }
  PreparedObject obj = PrepareObjectWithDigest(d, plain, kind, zstd_level_);
  std::vector<PreparedObject> full;
  {
    std::lock_guard lk(mu_);
    if (kind == ObjectKind::kMeta) queued_plain_[d].emplace(plain);
    pending_bytes_ += obj.stored.size();
    stats_.objects_added++;
    stats_.plain_bytes_added += plain.size();
    stats_.stored_bytes_added += obj.stored.size();
    pending_.push_back(std::move(obj));
    if (pending_bytes_ >= batch_bytes_ || pending_.size() >= batch_objects_) {
      full.swap(pending_);
      pending_bytes_ = 0;
      writing_++;
    }
    release(true);
  }
  if (!full.empty()) return WriteBatch(std::move(full));
  return Status::Ok();
}

// Stores one batch taken out of pending_ (the caller counted it in writing_).
Status ObjectWriter::WriteBatch(std::vector<PreparedObject> batch) {
  Status s;
  {
    std::lock_guard wl(write_mu_);
    s = store_.PutBatch(batch);
  }
  std::lock_guard lk(mu_);
  writing_--;
  drained_.notify_all();
  if (!s.ok()) {
    // Keep the objects (still reserved in queued_plain_) for the next Flush.
    failure_ = s;
    unwritten_.insert(unwritten_.end(), std::make_move_iterator(batch.begin()),
                      std::make_move_iterator(batch.end()));
    return s;
  }
  for (const auto& o : batch) queued_plain_.erase(o.digest);
  return Status::Ok();
}

const PreparedObject* ObjectWriter::FindQueuedLocked(const Digest& d) const {
  for (const auto* v : {&pending_, &unwritten_})
    for (const auto& o : *v)
      if (o.digest == d) return &o;
  return nullptr;
}

Result<std::string> ObjectWriter::Get(const Digest& d) {
  {
    std::unique_lock lk(mu_);
    auto it = queued_plain_.find(d);
    if (it != queued_plain_.end()) {
      if (it->second) return *it->second;
      // A queued data chunk: decode its prepared bytes (rare: readers normally
      // hit a cache), or wait for the batch that is being written right now.
      if (const PreparedObject* o = FindQueuedLocked(d)) return DecodeStoredObject(d, o->stored);
      drained_.wait(lk, [&] { return writing_ == 0 && preparing_ == 0; });
      if (const PreparedObject* o = FindQueuedLocked(d)) return DecodeStoredObject(d, o->stored);
    }
  }
  // Not queued (a digest leaves queued_plain_ only once its batch is stored):
  // read the store without the lock, so that reads (I/O, hashing,
  // decompression) serialize neither each other nor Puts.
  return store_.Get(d);
}

Status ObjectWriter::Flush() {
  std::vector<PreparedObject> batch;
  {
    std::unique_lock lk(mu_);
    // Objects other threads have accepted must reach pending_ first.
    drained_.wait(lk, [&] { return preparing_ == 0; });
    batch.swap(unwritten_);
    batch.insert(batch.end(), std::make_move_iterator(pending_.begin()), std::make_move_iterator(pending_.end()));
    pending_.clear();
    pending_bytes_ = 0;
    if (!batch.empty()) writing_++;
  }
  if (!batch.empty()) (void)WriteBatch(std::move(batch));  // a failure is kept in failure_
  // Wait for batches other threads took out and are still writing.
  std::unique_lock lk(mu_);
  drained_.wait(lk, [&] { return writing_ == 0; });
  if (unwritten_.empty()) failure_ = Status::Ok();
  return failure_;
}

bool ObjectWriter::failed() const {
  std::lock_guard lk(mu_);
  return !failure_.ok();
}

WriterStats ObjectWriter::stats() const {
  std::lock_guard lk(mu_);
  return stats_;
}

}  // namespace hashfs
