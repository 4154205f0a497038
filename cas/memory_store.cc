#include "cas/memory_store.h"

#include <mutex>

#include "cas/object_codec.h"

namespace hashfs {
namespace {

using RefMap = std::map<std::string, std::string, std::less<>>;

class MapRefTxn final : public RefTxn {
 public:
  MapRefTxn(RefMap* m, bool writable) : m_(m), writable_(writable) {}
  Result<std::optional<std::string>> Get(std::string_view key) override {
    auto it = m_->find(key);
    if (it == m_->end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second);
  }
  Result<std::vector<std::pair<std::string, std::string>>> List(std::string_view prefix,
                                                                size_t limit,
                                                                bool reverse) override {
    std::vector<std::pair<std::string, std::string>> out;
    auto matches = [&](const std::string& k) { return k.compare(0, prefix.size(), prefix) == 0; };
    if (!reverse) {
      for (auto it = m_->lower_bound(prefix); it != m_->end() && matches(it->first); ++it) {
        out.emplace_back(it->first, it->second);
        if (limit && out.size() == limit) break;
      }
    } else {
      for (auto it = m_->rbegin(); it != m_->rend(); ++it) {
        if (it->first < prefix) break;
        if (!matches(it->first)) continue;
        out.emplace_back(it->first, it->second);
        if (limit && out.size() == limit) break;
      }
    }
    return out;
  }
  Status Put(std::string_view key, std::string_view value) override {
    if (!writable_) return Status::InvalidArgument("write in a read-only ref transaction");
    (*m_)[std::string(key)] = std::string(value);
    return Status::Ok();
  }
  Status Delete(std::string_view key) override {
    if (!writable_) return Status::InvalidArgument("write in a read-only ref transaction");
    auto it = m_->find(key);
    if (it != m_->end()) m_->erase(it);
    return Status::Ok();
  }

 private:
  RefMap* m_;
  bool writable_;
};

}  // namespace

Result<std::string> MemoryStore::Get(const Digest& d) {
  std::shared_lock lk(mu_);
  auto it = objects_.find(d);
  if (it == objects_.end()) return Status::NotFound("object " + d.Hex() + " not found");
  return DecodeStoredObject(d, it->second);
}

Result<bool> MemoryStore::Contains(const Digest& d) {
  std::shared_lock lk(mu_);
  return objects_.count(d) > 0;
}

Result<ObjectInfo> MemoryStore::Info(const Digest& d) {
  std::shared_lock lk(mu_);
  auto it = objects_.find(d);
  if (it == objects_.end()) return Status::NotFound("object " + d.Hex() + " not found");
  return ParseStoredHeader(it->second);
}

Status MemoryStore::PutBatch(std::span<const PreparedObject> batch) {
  for (const auto& o : batch) HASHFS_RETURN_IF_ERROR(CheckPrepared(o));
  std::lock_guard wl(write_mu_);
  std::unique_lock lk(mu_);
  for (const auto& o : batch) objects_.try_emplace(o.digest, o.stored);
  return Status::Ok();
}

Status MemoryStore::ForEachObject(
    const std::function<Status(const Digest&, std::string_view)>& fn) {
  std::shared_lock lk(mu_);
  for (const auto& [d, s] : objects_) HASHFS_RETURN_IF_ERROR(fn(d, s));
  return Status::Ok();
}

Status MemoryStore::Sweep(const std::function<bool(const Digest&, const ObjectInfo&)>& should_delete,
                          const RefTxnFn& then_fn, uint64_t* deleted) {
  std::lock_guard wl(write_mu_);
  std::vector<Digest> doomed;
  RefMap work;
  {
    std::shared_lock lk(mu_);
    for (const auto& [d, s] : objects_) {
      auto info = ParseStoredHeader(s);
      ObjectInfo i = info.ok() ? *info : ObjectInfo{};
      if (should_delete(d, i)) doomed.push_back(d);
    }
    work = refs_;
  }
  // then_fn may read objects (Get sees them as before the sweep); no writer
  // can run meanwhile.
  MapRefTxn txn(&work, true);
  HASHFS_RETURN_IF_ERROR(then_fn(txn));
  std::unique_lock lk(mu_);
  for (const auto& d : doomed) objects_.erase(d);
  refs_ = std::move(work);
  if (deleted) *deleted = doomed.size();
  return Status::Ok();
}

Status MemoryStore::Update(const RefTxnFn& fn) {
  std::lock_guard wl(write_mu_);
  std::unique_lock lk(mu_);
  RefMap work = refs_;
  MapRefTxn txn(&work, true);
  HASHFS_RETURN_IF_ERROR(fn(txn));
  refs_ = std::move(work);
  return Status::Ok();
}

Status MemoryStore::View(const RefTxnFn& fn) {
  std::shared_lock lk(mu_);
  MapRefTxn txn(&refs_, false);
  return fn(txn);
}

void MemoryStore::CorruptForTesting(const Digest& d, std::string stored) {
  std::unique_lock lk(mu_);
  objects_.at(d) = std::move(stored);
}

}  // namespace hashfs
