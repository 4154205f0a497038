#include "remote/fetching_store.h"

namespace hashfs::remote {

FetchingStore::FetchingStore(ObjectStore& local, RemoteFactory factory, uint64_t readahead)
    : local_(local), factory_(std::move(factory)), readahead_(readahead) {}

FetchingStore::~FetchingStore() = default;

Result<DiscordRemote*> FetchingStore::Remote() {
  std::lock_guard lk(open_mu_);
  if (remote_) return remote_.get();
  if (!open_error_.ok()) return open_error_;
  auto r = factory_();
  if (!r.ok()) {
    open_error_ = r.status().WithContext("this store was cloned lazily and the object is not local yet");
    return open_error_;
  }
  remote_ = std::move(r).value();
  return remote_.get();
}

Result<std::string> FetchingStore::Get(const Digest& d) {
  auto r = local_.Get(d);
  if (r.ok() || !r.status().IsNotFound()) return r;
  HASHFS_ASSIGN_OR_RETURN(DiscordRemote * remote, Remote());
  std::lock_guard lk(stripes_[d.bytes[0] & 15]);
  r = local_.Get(d);  // another thread may have fetched it meanwhile
  if (r.ok() || !r.status().IsNotFound()) return r;
  auto f = remote->FetchObject(d, local_, readahead_);
  if (f.ok()) fetched_++;
  return f;
}

Result<ObjectInfo> FetchingStore::Info(const Digest& d) {
  auto r = local_.Info(d);
  if (r.ok() || !r.status().IsNotFound()) return r;
  HASHFS_RETURN_IF_ERROR(Get(d).status());
  return local_.Info(d);
}

}  // namespace hashfs::remote
