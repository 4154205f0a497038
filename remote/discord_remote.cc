#include "remote/discord_remote.h"

#include <fmt/format.h>

#include <algorithm>
#include <random>
#include <set>
#include <thread>
#include <unordered_set>

#include "cas/object_codec.h"
#include "remote/parallel.h"
#include "remote/sealed_refs.h"
#include "tree/gc.h"

namespace hashfs::remote {
namespace {

constexpr uint64_t kTailFetch = 8ull << 10;     // first guess at a pack trailer's size
constexpr uint64_t kMaxSpanGap = 1ull << 20;    // coalesce ranges closer than this
constexpr uint64_t kMaxSpan = 16ull << 20;      // largest single Range request
constexpr uint64_t kMultipartSlack = 64ull << 10;
constexpr int kDownloadThreads = 6;
constexpr size_t kMaxFilesPerMessage = 10;
constexpr int kVerifyDownloadAttempts = 3;

std::string PackFileName(const std::string& pack_id) { return HexEncode(pack_id) + std::string(kPackSuffix); }

std::optional<std::string> PackIdFromName(std::string_view name) {
  if (!name.ends_with(kPackSuffix)) return std::nullopt;
  name.remove_suffix(kPackSuffix.size());
  if (name.size() != kPackIdSize * 2) return std::nullopt;
  auto id = HexDecode(name);
  if (!id.ok()) return std::nullopt;
  return *id;
}

}  // namespace

DiscordRemote::DiscordRemote(ObjectStore& store, RemoteConfig cfg, std::unique_ptr<HttpClient> http,
                             std::string token)
    : store_(store), cfg_(std::move(cfg)), http_(std::move(http)), index_(store, cfg_.name) {
  DiscordOptions o;
  o.api_url = cfg_.api_url;
  o.token = std::move(token);
  api_ = std::make_unique<DiscordApi>(*http_, std::move(o));
  request_budget_ = cfg_.request_limit > 2 * kMultipartSlack ? cfg_.request_limit - kMultipartSlack
                                                             : cfg_.request_limit / 2;
  pack_limit_ = PackTarget();
  initial_attachment_limit_ = cfg_.attachment_limit;
}

DiscordRemote::~DiscordRemote() = default;

Result<std::unique_ptr<DiscordRemote>> DiscordRemote::Open(ObjectStore& store, RemoteConfig cfg, std::string token,
                                                           std::unique_ptr<HttpClient> http) {
  HASHFS_RETURN_IF_ERROR(ValidateName(cfg.name).WithContext("remote name"));
  if (cfg.kind != "discord") return Status::Unsupported("remote kind '" + cfg.kind + "' (only discord)");
  if (cfg.channels.empty()) return Status::InvalidArgument("a discord remote needs at least one --channel");
  if (token.empty()) return Status::InvalidArgument("no Discord bot token (set $HASHFS_DISCORD_TOKEN or --token-file)");
  if (cfg.attachment_limit < kMinPackLimit) return Status::InvalidArgument("attachment limit below 64 KiB");
  if (!http) http = MakeCurlHttpClient();
  return std::unique_ptr<DiscordRemote>(new DiscordRemote(store, std::move(cfg), std::move(http), std::move(token)));
}

std::vector<std::string> DiscordRemote::TakeWarnings() {
  std::lock_guard lk(warn_mu_);
  return std::exchange(warnings_, {});
}

void DiscordRemote::Warn(std::string w) {
  std::lock_guard lk(warn_mu_);
  warnings_.push_back(std::move(w));
}

uint64_t DiscordRemote::RequestBudget() const { return request_budget_.load(); }

// The pack size that fills a message best: k packs of budget/k bytes, each
// within the per-file limit, at most 10 per message.
uint64_t DiscordRemote::PackTarget() const {
  uint64_t budget = RequestBudget();
  uint64_t lim = cfg_.attachment_limit;
  uint64_t k = std::clamp<uint64_t>((budget + lim - 1) / lim, 1, kMaxFilesPerMessage);
  return std::max<uint64_t>(kMinPackLimit, std::min(lim, budget / k));
}

Status DiscordRemote::SaveConfig() { return index_.Put("config", cfg_.ToJson()); }

// ---------------------------------------------------------------------------
// Manifest and key

Status DiscordRemote::Unlock(std::string_view passphrase, bool create) {
  const uint64_t primary = cfg_.channels.front();
  HASHFS_ASSIGN_OR_RETURN(auto pins, api_->Pins(primary));
  std::optional<Manifest> found;
  for (const auto& m : pins) {
    auto mf = Manifest::Parse(m.content);
    if (mf.ok()) {
      found = std::move(mf).value();
      manifest_channel_ = primary;
      manifest_message_ = m.id;
      break;
    }
    if (!mf.status().IsNotFound()) return mf.status().WithContext("manifest message " + std::to_string(m.id));
  }
  if (!found) {
    // The pin is gone: every ref-log message carries the wrapped key too.
    uint64_t before = 0;
    for (int page = 0; page < 50 && !found; page++) {
      HASHFS_ASSIGN_OR_RETURN(auto msgs, api_->ListMessagesBefore(primary, before, 100));
      for (auto it = msgs.rbegin(); it != msgs.rend() && !found; ++it) {
        auto h = RefLogHeader::Parse(it->content);
        if (!h.ok()) continue;
        Manifest mf;
        mf.kdf = h->kdf;
        mf.wrapped_key = h->wrapped_key;
        mf.channels = cfg_.channels;
        mf.refs_channel = primary;
        mf.refs_message = it->id;
        mf.refs_seq = h->seq;
        found = mf;
      }
      if (msgs.size() < 100) break;
      before = msgs.front().id;
    }
  }
  if (!found) {
    if (!create)
      return Status::NotFound(fmt::format("channel {} holds no hashfs remote (no manifest pinned)", primary));
    Manifest mf;
    mf.kdf.salt = RandomBytes(16);
    HASHFS_ASSIGN_OR_RETURN(SecretBytes kek, DeriveKey(passphrase, mf.kdf));
    MasterKey mk = MasterKey::Generate();
    mf.wrapped_key = mk.Wrap(kek.view());
    mf.channels = cfg_.channels;
    HASHFS_ASSIGN_OR_RETURN(DiscordMessage m, api_->CreateMessage(primary, mf.Content(), {}));
    HASHFS_RETURN_IF_ERROR(api_->Pin(primary, m.id));
    manifest_ = mf;
    manifest_channel_ = primary;
    manifest_message_ = m.id;
    key_ = std::move(mk);
    return Status::Ok();
  }
  HASHFS_ASSIGN_OR_RETURN(SecretBytes kek, DeriveKey(passphrase, found->kdf));
  HASHFS_ASSIGN_OR_RETURN(MasterKey mk, MasterKey::Unwrap(kek.view(), found->wrapped_key));
  key_ = std::move(mk);
  manifest_ = std::move(*found);
  return Status::Ok();
}

// ---------------------------------------------------------------------------
// URLs and downloads

void DiscordRemote::CacheUrls(const DiscordMessage& m) {
  std::lock_guard lk(url_mu_);
  for (const auto& a : m.attachments)
    if (!a.url.empty()) urls_[a.id] = a.url;
}

Result<std::string> DiscordRemote::AttachmentUrl(const PackLocation& loc, bool refresh, const std::string& stale) {
  if (!refresh) {
    std::lock_guard lk(url_mu_);
    auto it = urls_.find(loc.attachment);
    if (it != urls_.end()) return it->second;
  }
  if (refresh && !stale.empty()) {
    auto r = api_->RefreshUrls({stale});
    if (r.ok() && !r->empty() && !r->front().second.empty() && r->front().second != stale) {
      std::lock_guard lk(url_mu_);
      urls_[loc.attachment] = r->front().second;
      return r->front().second;
    }
    if (!r.ok() && r.status().code() == Status::Code::kPermission) return r.status();
  }
  auto m = api_->GetMessage(loc.channel, loc.message);
  if (!m.ok()) {
    if (m.status().IsNotFound())
      return Status::NotFound(fmt::format("pack message {} is gone from channel {}", loc.message, loc.channel));
    return m.status();
  }
  CacheUrls(*m);
  for (const auto& a : m->attachments)
    if (a.id == loc.attachment) return a.url;
  return Status::NotFound(fmt::format("message {} has no attachment {}", loc.message, loc.attachment));
}

Result<std::string> DiscordRemote::DownloadAttachment(const PackLocation& loc,
                                                      std::optional<std::pair<uint64_t, uint64_t>> range) {
  std::string url;
  HASHFS_ASSIGN_OR_RETURN(url, AttachmentUrl(loc, false, ""));
  for (int attempt = 0;; attempt++) {
    auto r = api_->Download(url, range);
    if (r.ok() || !r.status().IsNotFound() || attempt >= 2) return r;
    // Expired (or otherwise refused) URL: get a fresh one and carry on.
    HASHFS_ASSIGN_OR_RETURN(url, AttachmentUrl(loc, true, url));
  }
}

Result<std::vector<PreparedObject>> DiscordRemote::FetchSpan(const PackRecord& pack, size_t first, size_t last) {
  const auto& es = pack.index.entries;
  if (first > last || last >= es.size()) return Status::InvalidArgument("bad pack span");
  uint64_t start = es[first].offset, end = es[last].offset + es[last].length;  // exclusive
  Status problem;
  for (int attempt = 0; attempt < kVerifyDownloadAttempts; attempt++) {
    auto bytes = DownloadAttachment(pack.loc, std::make_pair(start, end - 1));
    if (!bytes.ok()) {
      if (!bytes.status().IsCorruption()) return bytes.status();
      problem = bytes.status();
      continue;
    }
    std::vector<PreparedObject> out;
    out.reserve(last - first + 1);
    bool good = true;
    for (size_t i = first; i <= last; i++) {
      auto o = OpenEntry(*key_, pack.index.pack_id, es[i], std::string_view(*bytes).substr(es[i].offset - start, es[i].length));
      if (!o.ok()) {
        problem = o.status();
        good = false;
        break;
      }
      out.push_back(std::move(o).value());
    }
    if (good) return out;
  }
  return problem.WithContext(fmt::format("pack {} (message {}), still bad after {} downloads",
                                         HexEncode(pack.index.pack_id), pack.loc.message, kVerifyDownloadAttempts));
}

// ---------------------------------------------------------------------------
// Index sync

Result<RefsPointer> DiscordRemote::LoadPointer() {
  RefsPointer p;
  HASHFS_ASSIGN_OR_RETURN(auto v, index_.Get("refsptr"));
  if (v) {
    HASHFS_ASSIGN_OR_RETURN(p, DecodeRefsPointer(*v));
  }
  if (manifest_.refs_message && manifest_.refs_seq > p.seq) {
    p.channel = manifest_.refs_channel;
    p.message = manifest_.refs_message;
    p.seq = manifest_.refs_seq;
  }
  return p;
}

Status DiscordRemote::SavePointer(const RefsPointer& p) {
  return index_.Put("refsptr", EncodeRefsPointer(p));
}

Status DiscordRemote::IngestPack(const PackLocation& loc, const std::string& pack_id) {
  Status last;
  for (int attempt = 0; attempt < kVerifyDownloadAttempts; attempt++) {
    uint64_t take = std::min(loc.size, kTailFetch);
    auto tail = DownloadAttachment(loc, std::make_pair(loc.size - take, loc.size - 1));
    if (!tail.ok()) {
      if (!tail.status().IsCorruption()) return tail.status();
      last = tail.status();
      continue;
    }
    auto need = TrailerLength(*tail, loc.size);
    if (need.ok() && *need > tail->size()) {
      tail = DownloadAttachment(loc, std::make_pair(loc.size - *need, loc.size - 1));
      if (!tail.ok()) return tail.status();
    }
    auto idx = need.ok() ? DecodeTrailer(*key_, *tail, loc.size) : Result<PackIndex>(need.status());
    if (!idx.ok()) {
      last = idx.status();
      continue;
    }
    if (idx->pack_id != pack_id) {
      last = Status::Corruption("pack trailer names another pack than its file name");
      continue;
    }
    return index_.AddPacks({PackRecord{loc, std::move(idx).value()}});
  }
  return last;
}

Status DiscordRemote::SyncIndex(bool rebuild, TransferProgress* progress) {
  if (!key_) return Status::InvalidArgument("remote is locked");
  HASHFS_ASSIGN_OR_RETURN(RefsPointer ptr, LoadPointer());
  HASHFS_ASSIGN_OR_RETURN(auto gen_v, index_.Get("gen"));
  uint64_t local_gen = 0;
  if (gen_v) {
    HASHFS_ASSIGN_OR_RETURN(local_gen, DecodeDecimal(*gen_v));
  }
  if (rebuild) HASHFS_RETURN_IF_ERROR(index_.ClearObjects());
  refs_messages_.clear();
  struct Todo {
    PackLocation loc;
    std::string pack_id;
  };
  std::vector<Todo> todo;
  std::map<uint64_t, uint64_t> newest;
  for (uint64_t ch : cfg_.channels) {
    HASHFS_ASSIGN_OR_RETURN(uint64_t after, index_.Watermark(ch));
    newest[ch] = after;
    for (;;) {
      HASHFS_ASSIGN_OR_RETURN(auto msgs, api_->ListMessages(ch, after, 100));
      for (const auto& m : msgs) {
        CacheUrls(m);
        if (m.content == kPacksContent) {
          for (const auto& a : m.attachments) {
            auto id = PackIdFromName(a.filename);
            if (!id) continue;
            HASHFS_ASSIGN_OR_RETURN(bool have, index_.HasPack(*id));
            if (!have) todo.push_back({PackLocation{ch, m.id, a.id, a.size}, *id});
          }
        } else if (auto h = RefLogHeader::Parse(m.content); h.ok()) {
          refs_messages_.emplace_back(ch, m.id);
          if (h->seq > ptr.seq || (h->seq == ptr.seq && m.id > ptr.message)) {
            ptr = RefsPointer{ch, m.id, h->seq, h->gc_generation};
          }
        }
      }
      if (!msgs.empty()) after = msgs.back().id;
      if (msgs.size() < 100) break;
    }
    newest[ch] = after;
  }
  if (progress) {
    progress->objects_total += todo.size();
  }
  std::vector<Status> results(todo.size());
  HASHFS_RETURN_IF_ERROR(ParallelFor(todo.size(), kDownloadThreads, [&](size_t i) -> Status {
    Status s = IngestPack(todo[i].loc, todo[i].pack_id);
    if (progress) progress->objects_done++;
    if (s.IsCorruption()) {
      // A damaged pack is left out of the index: push uploads its objects
      // again, and verify reports it.
      Warn(fmt::format("pack {} in message {} is damaged and was ignored: {}", HexEncode(todo[i].pack_id),
                       todo[i].loc.message, s.message()));
      return Status::Ok();
    }
    return s;
  }));
  for (const auto& [ch, id] : newest) HASHFS_RETURN_IF_ERROR(index_.SetWatermark(ch, id));
  HASHFS_RETURN_IF_ERROR(SavePointer(ptr));
  if (ptr.message && !rebuild) {
    // A remote gc elsewhere may have deleted packs this index still lists.
    HASHFS_ASSIGN_OR_RETURN(auto refs, LatestRefs());
    if (refs && refs->gc_generation > local_gen) {
      HASHFS_RETURN_IF_ERROR(SyncIndex(true, progress));
      return index_.Put("gen", std::to_string(refs->gc_generation));
    }
  } else if (ptr.message && rebuild) {
    HASHFS_ASSIGN_OR_RETURN(auto refs, LatestRefs());
    if (refs) HASHFS_RETURN_IF_ERROR(index_.Put("gen", std::to_string(refs->gc_generation)));
  }
  return Status::Ok();
}

Result<std::optional<RemoteRefs>> DiscordRemote::LatestRefs() {
  HASHFS_ASSIGN_OR_RETURN(RefsPointer p, LoadPointer());
  if (!p.message) return std::optional<RemoteRefs>();
  HASHFS_ASSIGN_OR_RETURN(DiscordMessage m, api_->GetMessage(p.channel, p.message));
  CacheUrls(m);
  auto parsed = RefLogHeader::Parse(m.content);
  if (!parsed.ok())
    return Status::Corruption(fmt::format("ref-log message {} no longer reads as one: {}", m.id,
                                          parsed.status().message()));
  const RefLogHeader& h = *parsed;
  if (h.seq != p.seq)
    return Status::Corruption(fmt::format("ref-log message {} says seq {} where it was found as seq {}: the channel "
                                          "was tampered with",
                                          m.id, h.seq, p.seq));
  // The attachments by name, in part order; a missing name is damage.
  std::vector<PackLocation> locs;
  for (uint32_t i = 0; i < std::max<uint32_t>(h.parts, 1); i++) {
    std::string name = RefsPartName(h.seq, i, h.parts);
    auto a = std::find_if(m.attachments.begin(), m.attachments.end(),
                          [&](const DiscordAttachment& x) { return x.filename == name; });
    if (a == m.attachments.end())
      return Status::Corruption(fmt::format("ref-log message {} has no attachment {}", m.id, name));
    locs.push_back(PackLocation{p.channel, m.id, a->id, a->size});
  }
  if (m.attachments.size() != locs.size())
    return Status::Corruption(fmt::format("ref-log message {} has {} attachments, its header names {}", m.id,
                                          m.attachments.size(), locs.size()));
  // Each part authenticates alone: one damaged in transit is downloaded
  // again (3 tries), the others are kept.
  std::vector<std::string> sealed;
  for (uint32_t i = 0; i < locs.size(); i++) {
    Status last;
    for (int attempt = 0; attempt < kVerifyDownloadAttempts; attempt++) {
      HASHFS_ASSIGN_OR_RETURN(std::string b, DownloadAttachment(locs[i], std::nullopt));
      last = OpenRefsPart(key_->enc_key(), h.seq, i, h.parts, b).status();
      if (last.ok()) {
        sealed.push_back(std::move(b));
        break;
      }
    }
    if (!last.ok()) return last.WithContext("ref-log message " + std::to_string(p.message));
  }
  // The header chose this message; OpenRefs also checks that the sealed
  // refs are this seq's (a replayed older state is refused).
  auto r = OpenRefs(key_->enc_key(), h.seq, h.parts, sealed);
  if (!r.ok()) return r.status().WithContext("ref-log message " + std::to_string(p.message));
  return std::optional<RemoteRefs>(std::move(r).value());
}

// ---------------------------------------------------------------------------
// Push

Status DiscordRemote::UploadBatch(uint64_t channel, std::vector<Pack> packs, TransferProgress* progress,
                                  PushReport* report) {
  // Packs built before a 413 shrank the limit would be refused too: rebuild
  // them now rather than send them.
  std::vector<Pack> fit;
  for (auto& p : packs) {
    if (p.bytes.size() > pack_limit_.load())
      HASHFS_RETURN_IF_ERROR(Repack(channel, p, progress, report));
    else
      fit.push_back(std::move(p));
  }
  packs = std::move(fit);
  if (packs.empty()) return Status::Ok();
  std::vector<UploadFile> files;
  uint64_t total = 0;
  for (const auto& p : packs) {
    files.push_back({PackFileName(p.index.pack_id), p.bytes});
    total += p.bytes.size();
  }
  auto m = api_->CreateMessage(channel, std::string(kPacksContent), files);
  if (m.ok()) {
    CacheUrls(*m);
    std::vector<PackRecord> recs;
    for (size_t i = 0; i < packs.size(); i++) {
      PackLocation loc{channel, m->id, m->attachments[i].id, packs[i].bytes.size()};
      recs.push_back(PackRecord{loc, packs[i].index});
    }
    // Recorded as soon as the create returns: a killed push resumes from here.
    HASHFS_RETURN_IF_ERROR(index_.AddPacks(recs));
    uint64_t objects = 0;  // pieces are parts of an object, not objects
    for (const auto& p : packs)
      for (const auto& e : p.index.entries) objects += e.type != EntryType::kPiece;
    if (report) {
      std::lock_guard lk(warn_mu_);
      report->messages++;
      report->packs += packs.size();
      report->bytes_uploaded += total;
      report->objects_uploaded += objects;
    }
    if (progress) {
      progress->messages++;
      progress->packs += packs.size();
      progress->objects_done += objects;
      for (const auto& p : packs) progress->bytes_done += p.bytes.size();
    }
    return Status::Ok();
  }
  if (m.status().code() != Status::Code::kTooBig) return m.status();
  if (packs.size() > 1) {
    // The request was too big: send fewer attachments per message from now on.
    uint64_t b = request_budget_.load();
    while (total - 1 < b && !request_budget_.compare_exchange_weak(b, total - 1)) {
    }
    size_t half = packs.size() / 2;
    std::vector<Pack> a(std::make_move_iterator(packs.begin()), std::make_move_iterator(packs.begin() + half));
    std::vector<Pack> b2(std::make_move_iterator(packs.begin() + half), std::make_move_iterator(packs.end()));
    HASHFS_RETURN_IF_ERROR(UploadBatch(channel, std::move(a), progress, report));
    return UploadBatch(channel, std::move(b2), progress, report);
  }
  // One attachment too big: the per-file limit is lower than configured.
  // Shrink by a third (once per limit: packs built before an earlier shrink
  // are only rebuilt at the current limit), never below 64 KiB.
  const uint64_t size = packs[0].bytes.size();
  if (size <= kMinPackLimit)
    return m.status().WithContext(fmt::format("Discord refuses a {}-byte attachment", size));
  uint64_t cur = pack_limit_.load();
  if (size <= cur) {
    uint64_t smaller = std::max<uint64_t>(kMinPackLimit, size * 2 / 3);
    while (smaller < cur && !pack_limit_.compare_exchange_weak(cur, smaller)) {
    }
    cfg_.attachment_limit = std::min(cfg_.attachment_limit, pack_limit_.load());
    Warn(fmt::format("Discord refused a {}-byte attachment; packs are now at most {} bytes", size, pack_limit_.load()));
  }
  return Repack(channel, packs[0], progress, report);
}

Status DiscordRemote::Repack(uint64_t channel, const Pack& p, TransferProgress* progress, PushReport* report) {
  const uint64_t limit = pack_limit_.load();
  std::vector<Pack> repacked;
  std::unique_ptr<PackWriter> w;
  auto finish = [&] {
    auto [bytes, idx] = w->Finish();
    repacked.push_back(Pack{std::move(bytes), std::move(idx)});
    w.reset();
  };
  for (const auto& e : p.index.entries) {
    HASHFS_ASSIGN_OR_RETURN(std::string frame, UnsealEntry(*key_, p.index.pack_id, e,
                                                           std::string_view(p.bytes).substr(e.offset, e.length)));
    if (OneObjectPackSize(frame.size()) > limit) {
      if (e.type == EntryType::kSplit)
        return Status::Make(Status::Code::kTooBig,
                            fmt::format("a split descriptor of {} bytes does not fit in a {}-byte attachment",
                                        frame.size(), limit));
      std::lock_guard lk(split_mu_);
      if (e.type == EntryType::kObject)
        late_split_.push_back(e.digest);
      else
        resplit_ = true;
      continue;
    }
    if (w && !w->Fits(frame.size())) finish();
    if (!w) w = std::make_unique<PackWriter>(*key_, limit);
    w->Add(e.keyed_id, e.digest, e.kind, frame, e.type);
  }
  if (w) finish();
  for (auto& rp : repacked) {
    std::vector<Pack> one;
    one.push_back(std::move(rp));
    HASHFS_RETURN_IF_ERROR(UploadBatch(channel, std::move(one), progress, report));
  }
  return Status::Ok();
}

Status DiscordRemote::UploadItems(const std::function<Status(const ItemSink&)>& produce, TransferProgress* progress,
                                  PushReport* report) {
  const size_t nch = cfg_.channels.size();
  BoundedQueue<std::vector<Pack>> q(2 * nch);
  std::mutex err_mu;
  Status err;
  std::atomic<bool> failed{false};
  std::vector<std::thread> uploaders;
  for (size_t i = 0; i < nch; i++) {
    uploaders.emplace_back([&, ch = cfg_.channels[i]] {
      while (auto batch = q.Pop()) {
        if (failed) continue;
        Status s = UploadBatch(ch, std::move(*batch), progress, report);
        if (!s.ok()) {
          std::lock_guard lk(err_mu);
          if (err.ok()) err = s;
          failed = true;
          q.Abort();
        }
      }
    });
  }
  std::vector<Pack> batch;
  uint64_t batch_bytes = 0;
  std::unique_ptr<PackWriter> w;
  auto flush_batch = [&] {
    if (batch.empty()) return;
    q.Push(std::move(batch));
    batch.clear();
    batch_bytes = 0;
  };
  auto finish_pack = [&] {
    auto [bytes, idx] = w->Finish();
    w.reset();
    if (!batch.empty() && (batch.size() >= kMaxFilesPerMessage || batch_bytes + bytes.size() > RequestBudget()))
      flush_batch();
    batch_bytes += bytes.size();
    batch.push_back(Pack{std::move(bytes), std::move(idx)});
  };
  Status build;
  ItemSink emit = [&](const UploadItem& it) -> bool {
    if (failed || !build.ok()) return false;
    if (w && !w->Fits(it.frame.size())) finish_pack();
    if (!w) {
      w = std::make_unique<PackWriter>(*key_, pack_limit_.load());
      if (!w->Fits(it.frame.size())) {
        // The producer checked the size, but a 413 shrank the packs since:
        // as in UploadBatch, an object is split later, a piece cut again.
        if (it.type == EntryType::kSplit) {
          build = Status::Make(Status::Code::kTooBig,
                               fmt::format("a split descriptor of {} bytes does not fit in a {}-byte attachment",
                                           it.frame.size(), pack_limit_.load()));
          return false;
        }
        std::lock_guard lk(split_mu_);
        if (it.type == EntryType::kObject)
          late_split_.push_back(it.digest);
        else
          resplit_ = true;
        return true;
      }
    }
    w->Add(it.keyed_id, it.digest, it.kind, it.frame, it.type);
    return true;
  };
  Status produced = produce(emit);
  if (build.ok()) build = produced;
  if (build.ok() && w && !failed) finish_pack();
  if (build.ok()) flush_batch();
  if (!build.ok()) q.Abort();
  q.Close();
  for (auto& t : uploaders) t.join();
  if (!err.ok()) return err;
  return build;
}

Status DiscordRemote::UploadObjects(ObjectStore& src, int zstd_level, const std::vector<Digest>& digests,
                                    TransferProgress* progress, PushReport* report) {
  if (digests.empty()) return Status::Ok();
  {
    std::lock_guard lk(split_mu_);
    late_split_.clear();
    resplit_ = false;
  }
  auto frame_of = [&](const Digest& d) -> Result<std::pair<std::string, ObjectKind>> {
    HASHFS_ASSIGN_OR_RETURN(std::string plain, src.Get(d));
    HASHFS_ASSIGN_OR_RETURN(ObjectInfo info, src.Info(d));
    PreparedObject f = FrameForUpload(d, plain, info.kind, zstd_level);
    return std::make_pair(std::move(f.stored), info.kind);
  };
  // Whole objects; those larger than one pack wait for the second phase.
  std::vector<Digest> split;
  HASHFS_RETURN_IF_ERROR(UploadItems(
      [&](const ItemSink& emit) -> Status {
        for (const Digest& d : digests) {
          HASHFS_ASSIGN_OR_RETURN(auto f, frame_of(d));
          if (OneObjectPackSize(f.first.size()) > pack_limit_.load()) {
            split.push_back(d);
            continue;
          }
          if (!emit(UploadItem{key_->KeyedId(d), d, f.second, EntryType::kObject, std::move(f.first)})) break;
        }
        return Status::Ok();
      },
      progress, report));
  {
    std::lock_guard lk(split_mu_);
    split.insert(split.end(), late_split_.begin(), late_split_.end());  // Discord refused them whole
    late_split_.clear();
  }
  if (split.empty()) return Status::Ok();
  // Every piece of every split object is recorded before any descriptor is
  // uploaded: a descriptor on the remote never names a missing piece, and a
  // push killed in between uploads the object again (its descriptor, which
  // is what push looks for, is not there yet).
  std::vector<UploadItem> descriptors;
  for (int round = 0;; round++) {
    descriptors.clear();
    {
      std::lock_guard lk(split_mu_);
      resplit_ = false;
    }
    HASHFS_RETURN_IF_ERROR(UploadItems(
        [&](const ItemSink& emit) -> Status {
          const uint64_t max_piece = pack_limit_.load() - OneObjectPackSize(0);
          for (const Digest& d : split) {
            HASHFS_ASSIGN_OR_RETURN(auto f, frame_of(d));
            std::vector<std::string_view> pieces = CutFrame(f.first, max_piece);
            SplitDescriptor desc = DescribeSplit(f.second, pieces);
            for (size_t i = 0; i < pieces.size(); i++) {
              const Digest& pd = desc.pieces[i].digest;
              if (!emit(UploadItem{key_->PieceKeyedId(pd), pd, ObjectKind::kData, EntryType::kPiece, std::string(pieces[i])}))
                return Status::Ok();
            }
            descriptors.push_back(
                UploadItem{key_->KeyedId(d), d, ObjectKind::kData, EntryType::kSplit, EncodeSplitDescriptor(desc)});
          }
          return Status::Ok();
        },
        progress, report));
    std::lock_guard lk(split_mu_);
    if (!resplit_) break;
    if (round >= 8)
      return Status::Make(Status::Code::kTooBig, "Discord kept refusing attachments holding pieces of large objects");
  }
  return UploadItems(
      [&](const ItemSink& emit) -> Status {
        for (const auto& it : descriptors)
          if (!emit(it)) break;
        return Status::Ok();
      },
      progress, report);
}

Status DiscordRemote::PublishRefs(RemoteRefs refs) {
  HASHFS_ASSIGN_OR_RETURN(RefsPointer ptr, LoadPointer());
  refs.seq = std::max(refs.seq, ptr.seq) + 1;
  refs.time_ns = WallClockNs();
  HASHFS_ASSIGN_OR_RETURN(std::vector<std::string> sealed,
                          SealRefs(key_->enc_key(), refs, cfg_.attachment_limit, RequestBudget()));
  std::vector<UploadFile> files;
  RefLogHeader h;
  h.parts = static_cast<uint32_t>(sealed.size());
  for (uint32_t i = 0; i < h.parts; i++) files.push_back({RefsPartName(refs.seq, i, h.parts), sealed[i]});
  h.seq = refs.seq;
  h.gc_generation = refs.gc_generation;
  h.kdf = manifest_.kdf;
  h.wrapped_key = manifest_.wrapped_key;
  const uint64_t primary = cfg_.channels.front();
  HASHFS_ASSIGN_OR_RETURN(DiscordMessage m,
                          api_->CreateMessage(primary, h.Content(), files));
  CacheUrls(m);
  HASHFS_RETURN_IF_ERROR(SavePointer(RefsPointer{primary, m.id, refs.seq, refs.gc_generation}));
  HASHFS_RETURN_IF_ERROR(index_.Put("refs", refs.ToJson()));
  if (manifest_message_) {
    manifest_.refs_channel = primary;
    manifest_.refs_message = m.id;
    manifest_.refs_seq = refs.seq;
    // Best effort: a stale pointer only costs a fresh client a listing.
    Status s = api_->EditMessage(manifest_channel_, manifest_message_, manifest_.Content());
    if (!s.ok()) Warn("could not update the pinned manifest: " + s.ToString());
  }
  return Status::Ok();
}

Result<PushReport> DiscordRemote::Push(Repository& repo, const std::vector<std::string>& names,
                                       TransferProgress* progress) {
  PushReport report;
  if (progress) progress->phase = 0;
  HASHFS_RETURN_IF_ERROR(SyncIndex(false, nullptr));
  HASHFS_ASSIGN_OR_RETURN(auto latest, LatestRefs());
  RemoteRefs old = latest ? *latest : RemoteRefs{};
  RemoteRefs next = old;
  next.repo = repo.config();

  std::vector<std::string> vols, snaps;
  HASHFS_ASSIGN_OR_RETURN(auto all_vols, repo.Volumes());
  HASHFS_ASSIGN_OR_RETURN(auto all_snaps, repo.Snapshots());
  std::map<std::string, Digest> snap_map(all_snaps.begin(), all_snaps.end());
  if (names.empty()) {
    vols = all_vols;
    for (const auto& s : all_snaps) snaps.push_back(s.first);
  } else {
    for (const auto& n : names) {
      if (std::find(all_vols.begin(), all_vols.end(), n) != all_vols.end())
        vols.push_back(n);
      else if (snap_map.count(n))
        snaps.push_back(n);
      else
        return Status::NotFound("no volume or snapshot named '" + n + "'");
    }
  }
  std::vector<Digest> roots;
  for (const auto& v : vols) {
    HASHFS_ASSIGN_OR_RETURN(auto hist, repo.History(v));
    if (hist.empty()) continue;
    RemoteVolume rv;
    rv.head = hist.front().commit;
    rv.head_seq = hist.front().seq;
    for (auto it = hist.rbegin(); it != hist.rend(); ++it) rv.history.emplace_back(it->seq, it->commit);
    if (auto it = old.volumes.find(v); it != old.volumes.end() && it->second.head != rv.head) {
      bool known = std::any_of(rv.history.begin(), rv.history.end(),
                               [&](const auto& h) { return h.second == it->second.head; });
      if (!known)
        return Status::Conflict(fmt::format(
            "volume '{}' on the remote has commits this store lacks (pull first, or push under another name)", v));
    }
    for (const auto& h : rv.history) roots.push_back(h.second);
    next.volumes[v] = std::move(rv);
    report.published.push_back(v);
  }
  for (const auto& s : snaps) {
    const Digest& d = snap_map[s];
    if (auto it = old.snapshots.find(s); it != old.snapshots.end() && it->second != d)
      return Status::Conflict(fmt::format("snapshot '{}' names another commit on the remote", s));
    next.snapshots[s] = d;
    roots.push_back(d);
    report.published.push_back(s);
  }
  // The refs are compressed (about 38 bytes per kept commit) into at most
  // 10 attachments of one message: refuse before uploading anything rather
  // than after. (64 bytes of slack: PublishRefs sets seq and time_ns, which
  // may lengthen the compressed refs a little.)
  {
    HASHFS_ASSIGN_OR_RETURN(std::string z, CompressRefs(next));
    if (auto fit = RefsPartCount(z.size() + 64, cfg_.attachment_limit, RequestBudget()); !fit.ok()) {
      uint64_t commits = next.snapshots.size();
      for (const auto& [n, v] : next.volumes) commits += v.history.size();
      return Status::Make(Status::Code::kTooBig,
                          fmt::format("the remote's refs for {} kept commits would take {} compressed bytes, more "
                                      "than one message holds ({} attachments of {} bytes, {} bytes in all); drop "
                                      "old commits with 'hashfs forget' and push again",
                                      commits, z.size(), kMaxRefsParts, cfg_.attachment_limit, RequestBudget()));
    }
  }
  // Commits the remote already publishes are complete there (publication
  // follows upload, and remote gc keeps what published refs reach).
  std::vector<Digest> kept = old.KeptCommits();
  std::unordered_set<Digest, DigestHash> published(kept.begin(), kept.end());
  std::vector<Ref> walk_roots;
  {
    std::unordered_set<Digest, DigestHash> seen;
    for (const auto& d : roots)
      if (!published.count(d) && seen.insert(d).second) walk_roots.push_back({d, Role::kCommit});
  }
  HASHFS_ASSIGN_OR_RETURN(auto known, index_.AllKeyedIds());
  std::vector<Digest> uploads;
  std::unordered_set<Digest, DigestHash> queued;
  uint64_t bytes_total = 0;
  Status ws = Walk(repo.getter(), walk_roots, [&](const Ref& r) {
    if (known.count(key_->KeyedId(r.digest))) {
      report.objects_present++;
    } else if (queued.insert(r.digest).second) {
      uploads.push_back(r.digest);
      auto info = store_.Info(r.digest);
      if (info.ok()) bytes_total += info->stored_size;
    }
    return true;
  });
  HASHFS_RETURN_IF_ERROR(ws.WithContext("reading the objects to push"));
  if (progress) {
    progress->objects_total = uploads.size();
    progress->bytes_total = bytes_total;
    progress->phase = 1;
  }
  HASHFS_RETURN_IF_ERROR(UploadObjects(repo.store(), repo.config().zstd_level, uploads, progress, &report));
  if (cfg_.attachment_limit < initial_attachment_limit_) {
    HASHFS_RETURN_IF_ERROR(SaveConfig());  // remember the limit Discord enforces
  }
  bool changed = !uploads.empty() || !latest;
  for (const auto& [n, v] : next.volumes) {
    auto it = old.volumes.find(n);
    if (it == old.volumes.end() || it->second.head != v.head || it->second.history != v.history) changed = true;
  }
  if (next.snapshots != old.snapshots) changed = true;
  if (!changed) {
    report.nothing_to_do = true;
    report.refs_seq = old.seq;
    return report;
  }
  if (progress) progress->phase = 2;
  HASHFS_RETURN_IF_ERROR(PublishRefs(next));
  HASHFS_ASSIGN_OR_RETURN(RefsPointer p, LoadPointer());
  report.refs_seq = p.seq;
  return report;
}

// ---------------------------------------------------------------------------
// Pull, clone, lazy fetch

Status DiscordRemote::FetchDigests(const std::vector<Digest>& digests, ObjectStore& into,
                                   TransferProgress* progress, PullReport* report) {
  if (digests.empty()) return Status::Ok();
  std::map<std::string, std::vector<uint64_t>> by_pack;  // pack id -> offsets wanted
  std::vector<Digest> missing;
  for (const Digest& d : digests) {
    HASHFS_ASSIGN_OR_RETURN(auto loc, index_.Find(key_->KeyedId(d)));
    if (!loc)
      missing.push_back(d);
    else
      by_pack[loc->pack_id].push_back(loc->offset);
  }
  if (!missing.empty())
    return Status::NotFound(fmt::format("{} objects are not on remote '{}', e.g. {} (run 'hashfs remote verify {}')",
                                        missing.size(), cfg_.name, missing.front().Hex(), cfg_.name));
  struct Span {
    std::shared_ptr<PackRecord> pack;
    size_t first, last;
    std::unordered_set<uint64_t> wanted;
  };
  std::vector<Span> spans;
  for (auto& [pid, offs] : by_pack) {
    HASHFS_ASSIGN_OR_RETURN(auto rec, index_.GetPack(pid));
    if (!rec) return Status::Corruption("remote index lists an object in an unknown pack");
    auto pack = std::make_shared<PackRecord>(std::move(*rec));
    std::unordered_set<uint64_t> want(offs.begin(), offs.end());
    const auto& es = pack->index.entries;
    std::optional<Span> cur;
    for (size_t i = 0; i < es.size(); i++) {
      if (!want.count(es[i].offset)) continue;
      if (cur) {
        const auto& lastE = es[cur->last];
        uint64_t gap = es[i].offset - (lastE.offset + lastE.length);
        uint64_t span = es[i].offset + es[i].length - es[cur->first].offset;
        if (gap <= kMaxSpanGap && span <= kMaxSpan) {
          cur->last = i;
          cur->wanted.insert(es[i].offset);
          continue;
        }
        spans.push_back(std::move(*cur));
      }
      cur = Span{pack, i, i, {es[i].offset}};
    }
    if (cur) spans.push_back(std::move(*cur));
  }
  std::mutex mu;
  return ParallelFor(spans.size(), kDownloadThreads, [&](size_t i) -> Status {
    const Span& s = spans[i];
    HASHFS_ASSIGN_OR_RETURN(auto objs, FetchSpan(*s.pack, s.first, s.last));
    std::vector<PreparedObject> keep;
    uint64_t bytes = 0;
    for (size_t k = 0; k < objs.size(); k++) {
      const PackEntry& e = s.pack->index.entries[s.first + k];
      if (!s.wanted.count(e.offset)) continue;
      if (e.type == EntryType::kPiece) return Status::Corruption("remote index locates an object at a piece");
      if (e.type == EntryType::kSplit) {
        HASHFS_ASSIGN_OR_RETURN(objs[k], JoinSplit(e.digest, objs[k].stored));
      }
      bytes += objs[k].stored.size();
      keep.push_back(std::move(objs[k]));
    }
    HASHFS_RETURN_IF_ERROR(into.PutBatch(keep));
    if (progress) {
      progress->objects_done += keep.size();
      progress->bytes_done += bytes;
    }
    if (report) {
      std::lock_guard lk(mu);
      report->objects_fetched += keep.size();
      report->bytes_fetched += bytes;
    }
    return Status::Ok();
  });
}

Status DiscordRemote::FetchClosure(Repository& repo, const std::vector<Digest>& commits, bool recursive,
                                   TransferProgress* progress, PullReport* report) {
  ObjectStore& st = repo.store();
  std::unordered_set<Ref, RefHash, RefEq> seen;
  std::vector<Ref> frontier;
  for (const auto& c : commits)
    if (seen.insert(Ref{c, Role::kCommit}).second) frontier.push_back({c, Role::kCommit});
  while (!frontier.empty()) {
    std::vector<Digest> missing;
    std::unordered_set<Digest, DigestHash> asked;
    for (const auto& r : frontier) {
      HASHFS_ASSIGN_OR_RETURN(bool have, st.Contains(r.digest));
      if (!have && asked.insert(r.digest).second) missing.push_back(r.digest);
    }
    if (progress) progress->objects_total += missing.size();
    HASHFS_RETURN_IF_ERROR(FetchDigests(missing, st, progress, report));
    if (!recursive) break;
    std::vector<Ref> next;
    for (const auto& r : frontier) {
      if (r.role == Role::kChunk) continue;
      HASHFS_ASSIGN_OR_RETURN(std::string plain, st.Get(r.digest));
      HASHFS_ASSIGN_OR_RETURN(auto kids, Children(r, plain));
      for (const auto& k : kids)
        if (seen.insert(k).second) next.push_back(k);
    }
    frontier = std::move(next);
  }
  return Status::Ok();
}

Status DiscordRemote::ApplyRefs(Repository& repo, const RemoteRefs& refs, uint64_t epoch, PullReport* report) {
  PullReport local;
  Status s = repo.store().Update([&](RefTxn& t) -> Status {
    local = PullReport{};
    HASHFS_ASSIGN_OR_RETURN(auto ep, t.Get("gc/epoch"));
    if (ep && DecodeBE64(*ep) != epoch) return Status::Stale("a garbage collection ran during the pull");
    for (const auto& [name, rv] : refs.volumes) {
      HASHFS_ASSIGN_OR_RETURN(auto snap, t.Get("snap/" + name));
      if (snap) {
        local.skipped.push_back(name + ": a local snapshot has this name");
        continue;
      }
      HASHFS_ASSIGN_OR_RETURN(auto cur, t.Get("vol/" + name));
      bool write = false;
      if (!cur) {
        write = true;
      } else {
        if (cur->size() < 32) return Status::Corruption("volume ref " + name + " is malformed");
        HASHFS_ASSIGN_OR_RETURN(Digest head, Digest::FromBytes(cur->substr(0, 32)));
        if (head == rv.head) {
          local.unchanged.push_back(name);
        } else if (std::any_of(rv.history.begin(), rv.history.end(), [&](const auto& h) { return h.second == head; })) {
          write = true;
        } else {
          local.skipped.push_back(name + ": the local volume has commits the remote lacks (diverged)");
        }
      }
      if (!write) continue;
      HASHFS_RETURN_IF_ERROR(t.Put("vol/" + name, std::string(rv.head.AsBytes()) + EncodeBE64(rv.head_seq)));
      for (const auto& [seq, d] : rv.history)
        HASHFS_RETURN_IF_ERROR(t.Put("hist/" + name + "/" + EncodeBE64(seq), d.AsBytes()));
      local.updated.push_back(name);
    }
    for (const auto& [name, d] : refs.snapshots) {
      HASHFS_ASSIGN_OR_RETURN(auto vol, t.Get("vol/" + name));
      if (vol) {
        local.skipped.push_back(name + ": a local volume has this name");
        continue;
      }
      HASHFS_ASSIGN_OR_RETURN(auto cur, t.Get("snap/" + name));
      if (!cur) {
        HASHFS_RETURN_IF_ERROR(t.Put("snap/" + name, d.AsBytes()));
        local.updated.push_back(name);
      } else if (*cur == d.AsBytes()) {
        local.unchanged.push_back(name);
      } else {
        local.skipped.push_back(name + ": the local snapshot names another commit");
      }
    }
    return Status::Ok();
  });
  if (s.ok()) {
    report->updated = local.updated;
    report->unchanged = local.unchanged;
    report->skipped = local.skipped;
  }
  return s;
}

Result<PullReport> DiscordRemote::Pull(Repository& repo, bool fetch_objects, TransferProgress* progress) {
  PullReport report;
  if (progress) progress->phase = 0;
  HASHFS_RETURN_IF_ERROR(SyncIndex(false, nullptr));
  HASHFS_ASSIGN_OR_RETURN(auto refs, LatestRefs());
  if (!refs) return Status::NotFound("remote '" + cfg_.name + "' has no published refs yet (push first)");
  HASHFS_ASSIGN_OR_RETURN(auto session, WriterSession::Start(repo, "pull " + cfg_.name));
  if (progress) progress->phase = 1;
  for (int attempt = 0; attempt < 5; attempt++) {
    HASHFS_RETURN_IF_ERROR(FetchClosure(repo, refs->KeptCommits(), fetch_objects, progress, &report));
    Status s = ApplyRefs(repo, *refs, session->epoch(), &report);
    if (s.ok()) {
      HASHFS_RETURN_IF_ERROR(index_.Put("refs", refs->ToJson()));
      return report;
    }
    if (s.code() != Status::Code::kStale) return s;
    HASHFS_ASSIGN_OR_RETURN(uint64_t e, repo.GcEpoch());
    session->set_epoch(e);
  }
  return Status::Busy("garbage collection kept running during the pull; try again");
}

Result<std::pair<PackRecord, size_t>> DiscordRemote::Locate(const Digest& keyed_id, const std::string& what) {
  HASHFS_ASSIGN_OR_RETURN(auto loc, index_.Find(keyed_id));
  if (!loc) return Status::NotFound(what + " is not on remote '" + cfg_.name + "'");
  HASHFS_ASSIGN_OR_RETURN(auto rec, index_.GetPack(loc->pack_id));
  if (!rec) return Status::Corruption("remote index lists " + what + " in an unknown pack");
  const auto& es = rec->index.entries;
  size_t i = 0;
  while (i < es.size() && es[i].offset != loc->offset) i++;
  if (i == es.size() || es[i].keyed_id != keyed_id)
    return Status::Corruption("remote index locator of " + what + " does not match its pack");
  return std::make_pair(std::move(*rec), i);
}

Result<PreparedObject> DiscordRemote::JoinSplit(const Digest& d, std::string_view descriptor) {
  HASHFS_ASSIGN_OR_RETURN(SplitDescriptor desc, DecodeSplitDescriptor(descriptor));
  std::vector<std::string> parts(desc.pieces.size());
  HASHFS_RETURN_IF_ERROR(ParallelFor(parts.size(), kDownloadThreads, [&](size_t i) -> Status {
    const SplitPiece& p = desc.pieces[i];
    HASHFS_ASSIGN_OR_RETURN(auto at, Locate(key_->PieceKeyedId(p.digest),
                                            fmt::format("piece {} of {} of object {}", i + 1, parts.size(), d.Hex())));
    const PackEntry& e = at.first.index.entries[at.second];
    if (e.type != EntryType::kPiece || e.digest != p.digest)
      return Status::Corruption("remote index locates a piece of object " + d.Hex() + " at another entry");
    HASHFS_ASSIGN_OR_RETURN(auto got, FetchSpan(at.first, at.second, at.second));
    if (got[0].stored.size() != p.length)
      return Status::Corruption("a piece of object " + d.Hex() + " differs in length from its descriptor");
    parts[i] = std::move(got[0].stored);
    return Status::Ok();
  }));
  PreparedObject out;
  out.digest = d;
  out.stored.reserve(desc.frame_size);
  for (auto& p : parts) {
    out.stored.append(p);
    std::string().swap(p);
  }
  auto plain = DecodeStoredObject(d, out.stored);  // checks header, size, hash
  if (!plain.ok()) return plain.status().WithContext("split object " + d.Hex());
  StampFrameNow(&out.stored);
  return out;
}

Result<std::vector<std::string>> DiscordRemote::ExpandSplits(const std::vector<PackRecord>& packs,
                                                             std::unordered_set<Digest, DigestHash>* live,
                                                             std::unordered_map<Digest, Digest, DigestHash>* owner) {
  // The descriptors of live split objects, where the index locates them.
  std::vector<std::pair<const PackRecord*, size_t>> descs;
  for (const auto& p : packs)
    for (size_t i = 0; i < p.index.entries.size(); i++) {
      const PackEntry& e = p.index.entries[i];
      if (e.type != EntryType::kSplit || !live->count(e.keyed_id)) continue;
      HASHFS_ASSIGN_OR_RETURN(auto loc, index_.Find(e.keyed_id));
      if (loc && loc->pack_id == p.index.pack_id && loc->offset == e.offset) descs.emplace_back(&p, i);
    }
  std::vector<SplitDescriptor> decoded(descs.size());
  HASHFS_RETURN_IF_ERROR(ParallelFor(descs.size(), kDownloadThreads, [&](size_t k) -> Status {
    HASHFS_ASSIGN_OR_RETURN(auto got, FetchSpan(*descs[k].first, descs[k].second, descs[k].second));
    HASHFS_ASSIGN_OR_RETURN(decoded[k], DecodeSplitDescriptor(got[0].stored));
    return Status::Ok();
  }));
  std::vector<std::string> missing;
  for (size_t k = 0; k < descs.size(); k++) {
    const Digest& object = descs[k].first->index.entries[descs[k].second].digest;
    for (size_t i = 0; i < decoded[k].pieces.size(); i++) {
      Digest keyed = key_->PieceKeyedId(decoded[k].pieces[i].digest);
      HASHFS_ASSIGN_OR_RETURN(auto loc, index_.Find(keyed));
      if (!loc) missing.push_back(fmt::format("piece {} of {} of object {}", i + 1, decoded[k].pieces.size(), object.Hex()));
      live->insert(keyed);
      if (owner) owner->emplace(keyed, object);
    }
  }
  return missing;
}

Result<std::string> DiscordRemote::FetchObject(const Digest& d, ObjectStore& into, uint64_t readahead) {
  if (!key_) return Status::InvalidArgument("remote is locked");
  auto located = Locate(key_->KeyedId(d), "object " + d.Hex());
  if (!located.ok() && located.status().IsNotFound())
    return Status::NotFound("object " + d.Hex() + " is neither local nor on remote '" + cfg_.name + "'");
  HASHFS_ASSIGN_OR_RETURN(auto at, std::move(located));
  const PackRecord* rec = &at.first;
  const auto& es = rec->index.entries;
  const size_t i = at.second;
  if (es[i].type == EntryType::kPiece) return Status::Corruption("remote index locates an object at a piece");
  if (es[i].type == EntryType::kSplit) {
    HASHFS_ASSIGN_OR_RETURN(auto desc, FetchSpan(*rec, i, i));
    HASHFS_ASSIGN_OR_RETURN(PreparedObject o, JoinSplit(d, desc[0].stored));
    HASHFS_RETURN_IF_ERROR(into.PutBatch(std::span<const PreparedObject>(&o, 1)));
    return DecodeStoredObject(d, o.stored);
  }
  size_t j = i;
  uint64_t span = es[i].length;
  while (j + 1 < es.size() && span + es[j + 1].length + (es[j + 1].offset - es[j].offset - es[j].length) <= readahead) {
    span += es[j + 1].length + (es[j + 1].offset - es[j].offset - es[j].length);
    j++;
  }
  HASHFS_ASSIGN_OR_RETURN(auto objs, FetchSpan(*rec, i, j));
  // Read-ahead keeps whole objects only: pieces and descriptors are not objects.
  std::vector<PreparedObject> keep;
  for (size_t k = 0; k < objs.size(); k++)
    if (es[i + k].type == EntryType::kObject) keep.push_back(std::move(objs[k]));
  HASHFS_RETURN_IF_ERROR(into.PutBatch(keep));
  return DecodeStoredObject(d, keep[0].stored);
}

// ---------------------------------------------------------------------------
// Stats, verify, gc

Result<std::unordered_set<Digest, DigestHash>> DiscordRemote::Reachable(Repository& repo, const RemoteRefs& refs) {
  ObjectStore& st = repo.store();
  ObjectGetter get = [this, &st](const Digest& d) -> Result<std::string> {
    auto r = st.Get(d);
    if (r.ok() || !r.status().IsNotFound()) return r;
    return FetchObject(d, st);
  };
  std::vector<Ref> roots;
  for (const auto& c : refs.KeptCommits()) roots.push_back({c, Role::kCommit});
  std::unordered_set<Digest, DigestHash> out;
  HASHFS_RETURN_IF_ERROR(Walk(get, roots, [&](const Ref& r) {
    out.insert(key_->KeyedId(r.digest));
    return true;
  }));
  return out;
}

Result<RemoteStatsReport> DiscordRemote::Stats(Repository& repo) {
  RemoteStatsReport st;
  HASHFS_RETURN_IF_ERROR(SyncIndex(false, nullptr));
  HASHFS_ASSIGN_OR_RETURN(auto refs, LatestRefs());
  HASHFS_ASSIGN_OR_RETURN(auto packs, index_.AllPacks());
  std::set<std::pair<uint64_t, uint64_t>> msgs;
  std::unordered_map<Digest, int, DigestHash> copies;
  for (const auto& p : packs) {
    msgs.insert({p.loc.channel, p.loc.message});
    st.packs++;
    st.pack_bytes += p.loc.size;
    for (const auto& e : p.index.entries)
      if (e.type != EntryType::kPiece) copies[e.keyed_id]++;  // a split object counts once, by its descriptor
  }
  st.messages = msgs.size();
  st.objects = copies.size();
  for (const auto& [k, n] : copies)
    if (n > 1) st.duplicate_objects += n - 1;
  if (refs) {
    st.refs_seq = refs->seq;
    st.gc_generation = refs->gc_generation;
    st.volumes = refs->volumes.size();
    st.snapshots = refs->snapshots.size();
    HASHFS_ASSIGN_OR_RETURN(auto live, Reachable(repo, *refs));
    HASHFS_RETURN_IF_ERROR(ExpandSplits(packs, &live, nullptr).status());
    std::unordered_set<Digest, DigestHash> counted;
    for (const auto& p : packs)
      for (const auto& e : p.index.entries)
        if (live.count(e.keyed_id) && counted.insert(e.keyed_id).second) {
          st.live_objects += e.type != EntryType::kPiece;
          st.live_bytes += e.length;
        }
  }
  st.dead_bytes = st.pack_bytes > st.live_bytes ? st.pack_bytes - st.live_bytes : 0;
  return st;
}

Result<RemoteVerifyReport> DiscordRemote::Verify(Repository& repo, double sample_percent, TransferProgress* progress) {
  RemoteVerifyReport rep;
  HASHFS_RETURN_IF_ERROR(SyncIndex(false, nullptr));
  for (auto& w : TakeWarnings()) rep.problems.push_back(w);
  HASHFS_ASSIGN_OR_RETURN(auto refs, LatestRefs());
  HASHFS_ASSIGN_OR_RETURN(auto packs, index_.AllPacks());
  rep.packs_total = packs.size();
  std::vector<size_t> order(packs.size());
  for (size_t i = 0; i < order.size(); i++) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937_64(std::random_device{}()));
  size_t n = packs.size();
  if (sample_percent < 100) n = std::min(n, static_cast<size_t>(std::ceil(packs.size() * sample_percent / 100.0)));
  if (progress) {
    progress->objects_total = n;
    progress->phase = 1;
  }
  std::mutex mu;
  HASHFS_RETURN_IF_ERROR(ParallelFor(n, kDownloadThreads, [&](size_t k) -> Status {
    const PackRecord& p = packs[order[k]];
    Status last;
    bool good = false;
    for (int attempt = 0; attempt < kVerifyDownloadAttempts && !good; attempt++) {
      auto bytes = DownloadAttachment(p.loc, std::nullopt);
      if (!bytes.ok()) {
        if (!bytes.status().IsCorruption() && !bytes.status().IsNotFound()) return bytes.status();
        last = bytes.status();
        if (bytes.status().IsNotFound()) break;
        continue;
      }
      if (bytes->size() != p.loc.size) {
        last = Status::Corruption(fmt::format("attachment has {} bytes, expected {}", bytes->size(), p.loc.size));
        continue;
      }
      auto idx = DecodePack(*key_, *bytes);
      if (!idx.ok()) {
        last = idx.status();
        continue;
      }
      if (idx->pack_id != p.index.pack_id || idx->entries.size() != p.index.entries.size()) {
        last = Status::Corruption("pack differs from the index recorded for it");
        continue;
      }
      good = true;
      std::lock_guard lk(mu);
      rep.packs_checked++;
      rep.objects_checked += idx->entries.size();
      rep.bytes_checked += bytes->size();
    }
    if (progress) progress->objects_done++;
    if (!good) {
      std::lock_guard lk(mu);
      rep.problems.push_back(fmt::format("pack {} (channel {}, message {}): {}", HexEncode(p.index.pack_id),
                                         p.loc.channel, p.loc.message, last.ToString()));
    }
    return Status::Ok();
  }));
  // Objects too large for one pack: every descriptor on the channel, live
  // or not, names only pieces the channel has (push uploads descriptors last).
  {
    std::unordered_set<Digest, DigestHash> descriptors;
    for (const auto& p : packs)
      for (const auto& e : p.index.entries)
        if (e.type == EntryType::kSplit) descriptors.insert(e.keyed_id);
    auto missing = ExpandSplits(packs, &descriptors, nullptr);
    if (!missing.ok())
      rep.problems.push_back("reading split objects' descriptors: " + missing.status().ToString());
    else
      for (const auto& m : *missing) rep.problems.push_back(m + " is not on the remote");
  }
  if (refs) {
    // Completeness: everything the published refs reach must be indexed.
    HASHFS_ASSIGN_OR_RETURN(auto known, index_.AllKeyedIds());
    ObjectStore& st = repo.store();
    ObjectGetter get = [this, &st](const Digest& d) -> Result<std::string> {
      auto r = st.Get(d);
      if (r.ok() || !r.status().IsNotFound()) return r;
      return FetchObject(d, st);
    };
    std::vector<Ref> roots;
    for (const auto& c : refs->KeptCommits()) roots.push_back({c, Role::kCommit});
    Status ws = Walk(get, roots, [&](const Ref& r) {
      if (!known.count(key_->KeyedId(r.digest))) {
        rep.problems.push_back("object " + r.digest.Hex() + " reached by the published refs is not on the remote");
        return false;
      }
      return true;
    });
    if (!ws.ok()) rep.problems.push_back("walking the published refs: " + ws.ToString());
  }
  return rep;
}

Result<RemoteGcReport> DiscordRemote::Gc(Repository& repo, double waste_threshold, TransferProgress* progress) {
  RemoteGcReport rep;
  // A full listing: packs other clients uploaded are indexed too, and every
  // ref-log message is found.
  HASHFS_RETURN_IF_ERROR(SyncIndex(true, nullptr));
  HASHFS_ASSIGN_OR_RETURN(auto refs, LatestRefs());
  if (!refs) return Status::NotFound("remote '" + cfg_.name + "' has no published refs; nothing to collect");
  const uint64_t seq_at_start = refs->seq;
  HASHFS_ASSIGN_OR_RETURN(auto live, Reachable(repo, *refs));
  HASHFS_ASSIGN_OR_RETURN(auto packs, index_.AllPacks());
  // The pieces of live split objects are live; a repacked piece moves its
  // whole object.
  std::unordered_map<Digest, Digest, DigestHash> owner;
  HASHFS_RETURN_IF_ERROR(ExpandSplits(packs, &live, &owner).status());
  // Live entries of each pack: reachable and located in this pack (an
  // object stored twice lives where the index points).
  std::map<std::string, std::vector<PackEntry>> live_in;
  std::map<std::string, uint64_t> live_bytes;
  for (const auto& p : packs) {
    for (const auto& e : p.index.entries) {
      if (!live.count(e.keyed_id)) continue;
      HASHFS_ASSIGN_OR_RETURN(auto loc, index_.Find(e.keyed_id));
      if (loc && loc->pack_id == p.index.pack_id && loc->offset == e.offset) {
        live_in[p.index.pack_id].push_back(e);
        live_bytes[p.index.pack_id] += e.length;
      }
    }
  }
  // Repack partly dead packs above the threshold.
  std::vector<Digest> move;
  std::unordered_set<Digest, DigestHash> moving;
  std::set<std::string> repacked;
  for (const auto& p : packs) {
    uint64_t lb = live_bytes[p.index.pack_id];
    if (lb == 0 || p.loc.size == 0) continue;
    double waste = 1.0 - double(lb) / double(p.loc.size);
    if (waste > waste_threshold) {
      repacked.insert(p.index.pack_id);
      for (const auto& e : live_in[p.index.pack_id]) {
        Digest object = e.digest;
        if (e.type == EntryType::kPiece) {
          auto it = owner.find(e.keyed_id);
          if (it == owner.end()) return Status::Corruption("a live piece has no object");  // ExpandSplits made both
          object = it->second;
        }
        if (moving.insert(object).second) move.push_back(object);
      }
    }
  }
  if (!move.empty()) {
    // The objects must be local to be repacked: fetch what is not.
    std::vector<Digest> absent;
    for (const auto& d : move) {
      HASHFS_ASSIGN_OR_RETURN(bool have, repo.store().Contains(d));
      if (!have) absent.push_back(d);
    }
    HASHFS_RETURN_IF_ERROR(FetchDigests(absent, repo.store(), progress, nullptr));
    PushReport pr;
    HASHFS_RETURN_IF_ERROR(UploadObjects(repo.store(), refs->repo.zstd_level, move, progress, &pr));
    rep.packs_repacked = repacked.size();
    rep.objects_moved = move.size();
  }
  // Messages whose every pack is dead (or was repacked) go.
  std::map<std::pair<uint64_t, uint64_t>, std::vector<const PackRecord*>> by_msg;
  for (const auto& p : packs) by_msg[{p.loc.channel, p.loc.message}].push_back(&p);
  std::vector<std::pair<uint64_t, uint64_t>> doomed;
  std::vector<std::string> doomed_packs;
  uint64_t freed = 0;
  for (const auto& [m, ps] : by_msg) {
    bool dead = std::all_of(ps.begin(), ps.end(), [&](const PackRecord* p) {
      return live_bytes[p->index.pack_id] == 0 || repacked.count(p->index.pack_id);
    });
    if (!dead) continue;
    doomed.push_back(m);
    for (const auto* p : ps) {
      doomed_packs.push_back(p->index.pack_id);
      freed += p->loc.size;
    }
  }
  // Old ref-log messages: keep the newest three.
  HASHFS_ASSIGN_OR_RETURN(RefsPointer ptr, LoadPointer());
  std::vector<std::pair<uint64_t, uint64_t>> old_refs = refs_messages_;
  std::sort(old_refs.begin(), old_refs.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
  if (old_refs.size() > 3) old_refs.resize(old_refs.size() - 3); else old_refs.clear();
  std::erase_if(old_refs, [&](const auto& m) { return m.second == ptr.message; });
  if (doomed.empty() && old_refs.empty()) return rep;
  // Nothing may have been published since the reachability was computed.
  HASHFS_RETURN_IF_ERROR(SyncIndex(false, nullptr));
  HASHFS_ASSIGN_OR_RETURN(auto now_refs, LatestRefs());
  if (!now_refs || now_refs->seq != seq_at_start)
    return Status::Conflict("the remote's refs changed during gc (a push ran); nothing was deleted, run gc again");
  // Tell other clients their index is stale before anything disappears.
  RemoteRefs next = *now_refs;
  next.gc_generation++;
  if (!doomed.empty()) {
    HASHFS_RETURN_IF_ERROR(PublishRefs(next));
    HASHFS_RETURN_IF_ERROR(index_.Put("gen", std::to_string(next.gc_generation)));
  }
  for (const auto& [ch, id] : doomed) {
    HASHFS_RETURN_IF_ERROR(api_->DeleteMessage(ch, id));
    rep.messages_deleted++;
  }
  HASHFS_RETURN_IF_ERROR(index_.RemovePacks(doomed_packs));
  rep.packs_deleted = doomed_packs.size();
  rep.bytes_freed = freed;
  for (const auto& [ch, id] : old_refs) {
    HASHFS_RETURN_IF_ERROR(api_->DeleteMessage(ch, id));
    rep.refs_messages_deleted++;
  }
  return rep;
}

}  // namespace hashfs::remote
